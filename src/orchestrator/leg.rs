//! One call leg on a media node: originate it, follow its channel's events, run
//! applications on it, hang it up. Timings come from the media server's event clock, so
//! they agree with FreeSWITCH's (and the sandbox's) own records.
//!
//! [`Leg::next`] is cancel-safe: conversations select over several legs at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::esl::{EslError, Event, Execute};
use crate::media::pool::{LegSignal, MediaNode, Registration};

use crate::cdr::MEDIA_LOST;

/// What happened to a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegUpdate {
    /// The far end rings (first progress).
    Ringing,
    /// Answered.
    Answered,
    /// The far end pressed a key.
    Key(char),
    /// An application started with `event_uuid` finished, with its response.
    AppDone(String, String),
    /// A recording stopped: file path.
    RecordStopped(String),
    /// The channel is gone; see [`Leg::ended`].
    Ended,
}

/// How to dial.
#[derive(Debug, Clone)]
pub struct Dial<'a> {
    /// The channel uuid (our `CA…` id).
    pub uuid: &'a str,
    /// The number.
    pub to: &'a str,
    /// Caller id to show, if any.
    pub from: Option<&'a str>,
    /// Seconds the far end may ring (`originate_timeout`).
    pub timeout_secs: u32,
    /// `VOICEPAAS_DIAL_STRING` (`{number}` is replaced).
    pub dial_string: &'a str,
    /// Extra channel variables (`ringback`, …), already escaped.
    pub vars: &'a [(&'a str, String)],
}

/// A live (or just ended) leg.
pub struct Leg {
    /// `CA…`, also the channel uuid.
    pub id: String,
    /// Its media node.
    pub node: Arc<MediaNode>,
    reg: Registration,
    /// When it was dialled (Unix ms, media clock once known).
    pub start_ms: i64,
    /// When it started ringing.
    pub ring_ms: Option<i64>,
    /// When it was answered.
    pub answer_ms: Option<i64>,
    /// When and why it ended.
    pub ended: Option<(i64, String)>,
    /// The leg ends with this cause at this instant unless its channel reports first
    /// (its media node was lost; its originate failed).
    deadline: Option<(Instant, String)>,
    grace: Duration,
    /// A hangup was asked for with this cause.
    kill: Option<String>,
    /// The media server's `Event-Sequence` and cause of the channel's hangup.
    hangup: Option<(u64, String)>,
}

/// How long a failed originate waits for its channel's own hangup events (they carry
/// the media server's times) before it ends with the job's cause.
const JOB_FAILURE_WAIT: Duration = Duration::from_secs(2);

impl Leg {
    /// Registers for the channel's events and sends `bgapi originate … &park()`.
    pub fn originate(node: Arc<MediaNode>, dial: &Dial<'_>, grace: Duration) -> Leg {
        let reg = node.register(dial.uuid);
        let mut vars = vec![
            format!("origination_uuid={}", dial.uuid),
            format!("originate_timeout={}", dial.timeout_secs),
            "ignore_early_media=true".to_string(),
        ];
        if let Some(from) = dial.from {
            vars.push(format!("origination_caller_id_number={from}"));
        }
        vars.extend(dial.vars.iter().map(|(k, v)| format!("{k}={v}")));
        let cmd = format!(
            "originate {{{}}}{} &park()",
            vars.join(","),
            dial.dial_string.replace("{number}", dial.to)
        );
        let client = node.client.clone();
        let tx = reg.tx.clone();
        tokio::spawn(async move {
            let outcome = client.bgapi(&cmd).await;
            let failed = match outcome {
                Ok(body) if body.starts_with("+OK") => None,
                Ok(body) => Some(cause_of(&body)),
                Err(EslError::Refused(body)) => Some(cause_of(&body)),
                Err(e) => Some(format!("ESL:{e}")),
            };
            if let Some(cause) = failed {
                let _ = tx.send(LegSignal::JobFailed(cause));
            }
        });
        let start = node.now_ms();
        Self::with(dial.uuid, node, reg, start, grace)
    }

    /// Follows a channel this leg did not originate: one another command creates (the
    /// `bridge` application's B leg) or one that already exists (taken over after a
    /// restart; ask [`Leg::check_exists`]).
    pub fn follow(id: &str, node: Arc<MediaNode>, start_ms: i64, grace: Duration) -> Leg {
        let reg = node.register(id);
        Self::with(id, node, reg, start_ms, grace)
    }

    fn with(
        id: &str,
        node: Arc<MediaNode>,
        reg: Registration,
        start_ms: i64,
        grace: Duration,
    ) -> Leg {
        Leg {
            id: id.to_string(),
            node,
            reg,
            start_ms,
            ring_ms: None,
            answer_ms: None,
            ended: None,
            deadline: None,
            grace,
            kill: None,
            hangup: None,
        }
    }

    /// Asks the node whether the channel still exists; the answer arrives through
    /// [`Leg::next`] (the leg ends as lost if it does not).
    pub fn check_exists(&self) {
        let client = self.node.client.clone();
        let tx = self.reg.tx.clone();
        let uuid = self.id.clone();
        tokio::spawn(async move {
            let exists = matches!(client.api(&format!("uuid_exists {uuid}")).await, Ok(ref s) if s.trim() == "true");
            let _ = tx.send(LegSignal::Exists(exists));
        });
    }

    /// The next thing that happened to the leg. After [`LegUpdate::Ended`] it keeps
    /// answering `Ended`.
    pub async fn next(&mut self) -> LegUpdate {
        loop {
            if self.ended.is_some() {
                return LegUpdate::Ended;
            }
            let signal = match self.deadline.clone() {
                Some((at, cause)) => {
                    tokio::select! {
                        s = self.reg.rx.recv() => s,
                        _ = tokio::time::sleep_until(at) => {
                            self.end_now(&cause);
                            return LegUpdate::Ended;
                        }
                    }
                }
                None => self.reg.rx.recv().await,
            };
            let Some(signal) = signal else {
                self.end_now(MEDIA_LOST);
                return LegUpdate::Ended;
            };
            if let Some(update) = self.on_signal(signal) {
                return update;
            }
        }
    }

    fn on_signal(&mut self, signal: LegSignal) -> Option<LegUpdate> {
        let event = match signal {
            LegSignal::NodeDown => {
                if self.deadline.is_none() {
                    self.deadline = Some((Instant::now() + self.grace, MEDIA_LOST.into()));
                }
                return None;
            }
            LegSignal::NodeUp => {
                if self.deadline.as_ref().is_some_and(|(_, c)| c == MEDIA_LOST) {
                    self.check_exists();
                }
                return None;
            }
            LegSignal::JobFailed(cause) => {
                // The channel's own hangup events carry the times; they normally follow
                // (or were routed a moment after the job's result).
                if self.deadline.is_none() {
                    self.deadline = Some((Instant::now() + JOB_FAILURE_WAIT, cause));
                }
                return None;
            }
            LegSignal::Exists(true) => {
                if self.deadline.as_ref().is_some_and(|(_, c)| c == MEDIA_LOST) {
                    self.deadline = None;
                }
                return None;
            }
            LegSignal::Exists(false) => {
                self.end_now(MEDIA_LOST);
                return Some(LegUpdate::Ended);
            }
            LegSignal::Event(e) => e,
        };
        let at = event.timestamp_ms().unwrap_or_else(|| self.node.now_ms());
        match event.name() {
            "CHANNEL_CREATE" => {
                self.start_ms = at;
                // A hangup asked for before the channel existed found nothing to kill.
                self.send_kill();
                None
            }
            "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" if self.ring_ms.is_none() => {
                self.ring_ms = Some(at);
                Some(LegUpdate::Ringing)
            }
            "CHANNEL_ANSWER" if self.answer_ms.is_none() => {
                self.answer_ms = Some(at);
                Some(LegUpdate::Answered)
            }
            "DTMF" => event
                .dtmf_digit()
                .and_then(|d| d.chars().next())
                .map(LegUpdate::Key),
            "CHANNEL_EXECUTE_COMPLETE" => event.application_uuid().map(|id| {
                LegUpdate::AppDone(
                    id.to_string(),
                    event.application_response().unwrap_or_default().to_string(),
                )
            }),
            "RECORD_STOP" => event
                .get("Record-File-Path")
                .map(|p| LegUpdate::RecordStopped(p.to_string())),
            "CHANNEL_HANGUP" => {
                self.note_hangup(&event);
                None
            }
            "CHANNEL_HANGUP_COMPLETE" => {
                self.note_hangup(&event);
                if self.answer_ms.is_none()
                    && let Some(us) = event.variable_i64("answer_uepoch").filter(|us| *us > 0)
                {
                    self.answer_ms = Some(us / 1000);
                }
                let cause = event
                    .hangup_cause()
                    .unwrap_or("NORMAL_CLEARING")
                    .to_string();
                self.ended = Some((at, cause));
                Some(LegUpdate::Ended)
            }
            _ => None,
        }
    }

    fn note_hangup(&mut self, event: &Event) {
        if self.hangup.is_none() {
            let cause = event
                .hangup_cause()
                .unwrap_or("NORMAL_CLEARING")
                .to_string();
            self.hangup = Some((event.sequence().unwrap_or(u64::MAX), cause));
        }
    }

    /// Where the channel's hangup stands in the node's event order, and its cause: of two
    /// bridged channels, the one whose far end hung up comes first.
    pub fn hangup_order(&self) -> Option<(u64, &str)> {
        self.hangup
            .as_ref()
            .map(|(seq, cause)| (*seq, cause.as_str()))
    }

    fn end_now(&mut self, cause: &str) {
        if self.ended.is_none() {
            self.ended = Some((self.node.now_ms().max(self.start_ms), cause.to_string()));
        }
    }

    /// Whether the leg was answered.
    pub fn answered(&self) -> bool {
        self.answer_ms.is_some()
    }

    /// Runs an application on the channel; its end arrives as [`LegUpdate::AppDone`]
    /// with the returned id.
    pub async fn execute(&self, app: &str, arg: &str) -> Result<String, EslError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.node
            .client
            .execute(
                &self.id,
                Execute {
                    app,
                    arg,
                    event_lock: true,
                    event_uuid: Some(&id),
                },
            )
            .await?;
        Ok(id)
    }

    /// An `api` command on the leg's node.
    pub async fn api(&self, cmd: &str) -> Result<String, EslError> {
        self.node.client.api(cmd).await
    }

    /// Hangs the channel up (`uuid_kill`); its end arrives as [`LegUpdate::Ended`]. A
    /// channel the media server has not created yet (originate still on its way) is
    /// killed as soon as it shows up.
    pub fn hang_up(&mut self, cause: &str) {
        if self.ended.is_some() {
            return;
        }
        self.kill = Some(cause.to_string());
        self.send_kill();
    }

    fn send_kill(&self) {
        let Some(cause) = self.kill.clone() else {
            return;
        };
        let client = self.node.client.clone();
        let cmd = format!("uuid_kill {} {cause}", self.id);
        tokio::spawn(async move {
            if let Err(e) = client.api(&cmd).await {
                tracing::debug!(error = %e, "uuid_kill failed");
            }
        });
    }

    /// Waits until the leg has ended (after a hangup was asked for).
    pub async fn until_ended(&mut self) {
        while self.next().await != LegUpdate::Ended {}
    }

    /// When it ended and the cause (only after [`LegUpdate::Ended`]).
    pub fn end(&self) -> (i64, String) {
        self.ended
            .clone()
            .unwrap_or_else(|| (self.node.now_ms(), "NORMAL_CLEARING".into()))
    }
}

/// `-ERR USER_BUSY\n` → `USER_BUSY`.
fn cause_of(body: &str) -> String {
    let cause = body.trim().trim_start_matches("-ERR").trim();
    if cause.is_empty() {
        "NORMAL_TEMPORARY_FAILURE".into()
    } else {
        cause.to_string()
    }
}
