//! The agent socket (agents' contract §4): `GET /v1/Applications/{appSid}/cti?agentNo=…`
//! upgrades to a WebSocket whose first frame must be `auth`; then requests get one reply
//! each and the agent's events follow in seq order. One socket per agent: the latest
//! `auth` wins and the one before is closed with 4002.

use std::time::{Duration, Instant};

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session as Ws};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::CtiError;
use crate::agents::Agents;
use crate::agents::bus::{Notice, Subscription, attached_payload};
use crate::agents::commands::Origin;
use crate::agents::csta::{AgentDevice, csta_frame};
use crate::agents::error::CommandError;
use crate::agents::events::mask_frame;
use crate::agents::machine::{CommandName, Input};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::domain::credentials::verify_password;
use crate::domain::time::now_ms;
use crate::store::agent_sessions::AuthFailures;
use crate::store::agents::AgentRecord;
use crate::store::applications::ApplicationRecord;

/// Largest text frame (else close 1009).
const MAX_FRAME: usize = 64 * 1024;
/// The first frame must come within this (else close 4003).
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Failed password attempts counted together.
const FAILURE_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Failures allowed in a window before each attempt must wait.
const FREE_FAILURES: i64 = 5;
/// Events read per look.
const BATCH: i64 = 200;

/// Query of the socket URL.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketQuery {
    agent_no: Option<String>,
    events: Option<String>,
}

fn close(code: u16) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Other(code),
        description: None,
    })
}

/// A reply frame.
fn reply(id: &Value, result: &Result<Value, CommandError>) -> String {
    match result {
        Ok(data) => json!({"id": id, "statusCode": "00000", "statusMsg": "success", "data": data}),
        Err(e) => json!({"id": id, "statusCode": e.code(), "statusMsg": e.to_string(), "data": {}}),
    }
    .to_string()
}

/// `GET /v1/Applications/{appSid}/cti?agentNo=…`: the upgrade, refused over HTTP when the
/// application is unknown (10003), `agentNo` is missing or `events` is not served
/// (10004), or the page's origin is not among the application's `allowedOrigins`.
pub async fn connect(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    payload: Payload,
) -> HttpResponse {
    let app_id = path.into_inner();
    let checked = async {
        let q: SocketQuery = super::query(&req)?;
        let agent_no = q
            .agent_no
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ApiError::Param("missing agentNo".into()))?;
        let agent_no = crate::domain::agent::AgentNo::parse("agentNo", &agent_no)?
            .as_str()
            .to_string();
        let csta = match q.events.as_deref().unwrap_or_default() {
            "" => false,
            "csta" => true,
            other => {
                return Err(ApiError::Param(format!(
                    "events={} is not served (csta, or none for the contract's JSON events)",
                    crate::domain::phone::printable(other)
                ))
                .into());
            }
        };
        let app = state
            .store
            .find_app_by_id(&app_id)
            .await?
            .ok_or_else(|| ApiError::App("applicationSid not found".into()))?;
        let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
        if let Some(origin) = origin
            && !app.cti.allowed_origins.0.is_empty()
            && !app
                .cti
                .allowed_origins
                .0
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
        {
            return Err(CtiError::OriginRefused);
        }
        Ok::<_, CtiError>((app, agent_no, csta))
    };
    let (app, agent_no, csta) = match checked.await {
        Ok(found) => found,
        Err(e) => return e.response(),
    };
    let (response, ws, stream) = match actix_ws::handle(&req, payload) {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return CtiError::from(ApiError::Param("expected a WebSocket upgrade".into()))
                .response();
        }
    };
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let stream = stream
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME);
    let agents = state.agents.clone();
    actix_web::rt::spawn(async move {
        let socket = Socket {
            agents,
            app,
            agent_no,
            address,
            ws,
            stream,
            socket_id: uuid::Uuid::new_v4().simple().to_string(),
            masked: false,
            csta: csta.then(AgentDevice::default),
        };
        socket.run().await;
    });
    response
}

/// One agent socket's task.
struct Socket {
    agents: std::sync::Arc<Agents>,
    app: std::sync::Arc<ApplicationRecord>,
    agent_no: String,
    address: String,
    ws: Ws,
    stream: AggregatedMessageStream,
    socket_id: String,
    /// Users' numbers are masked in what this socket sends (§8.5).
    masked: bool,
    /// Opened with `?events=csta`: call and status events go as cstaEvents (§8.6), for
    /// this agent's device.
    csta: Option<AgentDevice>,
}

/// A frame read: a request, or why the socket must close.
enum Read {
    Request(Value, String, Map<String, Value>),
    Unreadable,
    Closed(Option<u16>),
    Control,
}

/// An authenticated socket: whose it is and how far its events went.
struct Attached {
    agent: AgentRecord,
    by_token: bool,
    subscription: Subscription,
    /// The session whose events the socket follows, and the last seq sent.
    following: Option<(String, i64)>,
}

impl Socket {
    async fn read(&mut self) -> Read {
        match self.stream.recv().await {
            None => Read::Closed(None),
            Some(Err(actix_ws::ProtocolError::Overflow)) => Read::Closed(Some(1009)),
            Some(Err(_)) => Read::Closed(Some(1002)),
            Some(Ok(AggregatedMessage::Text(text))) => {
                let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(&text) else {
                    return Read::Unreadable;
                };
                let id = frame
                    .get("id")
                    .cloned()
                    .filter(Value::is_i64)
                    .unwrap_or(Value::Null);
                let cmd = frame
                    .get("cmd")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let params = match frame.get("params") {
                    Some(Value::Object(p)) => p.clone(),
                    _ => Map::new(),
                };
                Read::Request(id, cmd, params)
            }
            Some(Ok(AggregatedMessage::Binary(_))) => Read::Unreadable,
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = self.ws.pong(&bytes).await;
                Read::Control
            }
            Some(Ok(AggregatedMessage::Pong(_))) => Read::Control,
            Some(Ok(AggregatedMessage::Close(_))) => Read::Closed(None),
        }
    }

    async fn send(&mut self, text: String) -> bool {
        let csta = self
            .csta
            .as_ref()
            .and_then(|device| csta_frame(&text, device, self.masked));
        let text = match (csta, self.masked) {
            (Some(csta), _) => csta,
            (None, true) => mask_frame(text),
            (None, false) => text,
        };
        self.ws.text(text).await.is_ok()
    }

    async fn run(mut self) {
        let first = tokio::time::timeout(AUTH_WITHIN, async {
            loop {
                match self.read().await {
                    Read::Control => continue,
                    other => return other,
                }
            }
        })
        .await;
        let (id, params) = match first {
            Err(_) => return self.finish(None, 4003).await,
            Ok(Read::Closed(code)) => return self.finish(None, code.unwrap_or(1000)).await,
            Ok(Read::Unreadable) => {
                let _ = self.send(unreadable()).await;
                return self.finish(None, 4003).await;
            }
            Ok(Read::Request(id, cmd, _)) if cmd != "auth" => {
                let _ = self.send(reply(&id, &Err(CommandError::AuthFirst))).await;
                return self.finish(None, 4003).await;
            }
            Ok(Read::Request(id, _, params)) => (id, params),
            Ok(Read::Control) => return self.finish(None, 1000).await,
        };
        let attached = match self.authenticate(&id, &params).await {
            Ok(attached) => attached,
            Err(e) => {
                let _ = self.send(reply(&id, &Err(e))).await;
                return self.finish(None, 4001).await;
            }
        };
        self.serve(attached).await;
    }

    /// Checks the auth frame, attaches the socket to the agent and answers (with the
    /// replay of a resumed session's later events).
    async fn authenticate(
        &mut self,
        id: &Value,
        params: &Map<String, Value>,
    ) -> Result<Attached, CommandError> {
        let text = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let store = self.agents.store().clone();
        let (agent, by_token) = match (text("pwd"), text("token")) {
            (Some(pwd), None) => {
                let agent = store
                    .find_agent_alone(&self.app.app_id, &self.agent_no)
                    .await?;
                self.check_password(agent.as_ref(), pwd).await?;
                (agent, false)
            }
            (None, Some(token)) => (
                store
                    .agent_by_token(&self.app.app_id, &self.agent_no, token)
                    .await?,
                true,
            ),
            _ => {
                return Err(CommandError::Param(
                    "auth needs exactly one of pwd and token".into(),
                ));
            }
        };
        let agent = agent.ok_or(CommandError::AuthFailed)?;
        if !agent.enabled {
            return Err(CommandError::AgentDisabled);
        }
        self.masked = self.app.cti.encrypt_number || text("encryptNumber") == Some("true");
        if let Some(device) = self.csta.as_mut() {
            device.sip_number = agent.sip_number.clone();
            device.pstn_number = agent.pstn_number.clone();
        }
        let subscription = self
            .agents
            .bus()
            .subscribe(&self.app.app_id, &self.agent_no);
        let notice = attached_payload(&self.app.app_id, &self.agent_no, &self.socket_id);
        store
            .attach_socket(
                &self.app.app_id,
                &self.agent_no,
                &self.socket_id,
                self.agents.holder(),
                &notice,
            )
            .await?;
        self.agents.bus().deliver(&notice);
        // A logged-in agent's socket is back (its grace ends). An offline agent has nothing
        // to change: the attach above already shows a REST login that a socket is there.
        let (current, changed) = if store
            .live_session(&self.app.app_id, &self.agent_no)
            .await?
            .is_some()
        {
            self.agents
                .change(&self.app.app_id, &self.agent_no, move |current| {
                    let sid = current.as_ref().map(|c| (c.sid.to_string(), c.last_seq));
                    Ok((current.is_some().then_some(Input::SocketBack), sid))
                })
                .await?
        } else {
            (
                None,
                crate::agents::Changed {
                    session: None,
                    sid: String::new(),
                    last_seq: 0,
                },
            )
        };
        let asked = text("sessionSid").zip(text("lastSeq").and_then(|s| s.parse::<i64>().ok()));
        let (mut following, resumed, gap) = match (&current, asked) {
            (Some((sid, _)), Some((asked_sid, last_seq))) if sid == asked_sid && last_seq >= 0 => {
                let oldest = store.oldest_kept_seq(sid).await?;
                let gap = oldest.is_some_and(|o| last_seq + 1 < o);
                (
                    Some((sid.clone(), if gap { 0 } else { last_seq })),
                    true,
                    gap,
                )
            }
            (Some((sid, last_seq)), _) => (Some((sid.clone(), *last_seq)), false, false),
            (None, _) => (None, false, false),
        };
        let mut data = self.agents.initial_data(
            &agent,
            changed
                .session
                .as_ref()
                .map(|s| (changed.sid.as_str(), s, changed.last_seq)),
            resumed,
        );
        if gap {
            data["gap"] = "1".into();
        }
        if !by_token {
            store
                .clear_auth_failures(&self.app.app_id, &self.agent_no, &self.address)
                .await?;
        }
        if !self.send(reply(id, &Ok(data))).await {
            return Err(CommandError::AuthFailed);
        }
        if resumed {
            self.flush_session(&mut following).await;
        }
        Ok(Attached {
            agent,
            by_token,
            subscription,
            following,
        })
    }

    /// Verifies a password, throttled per (agent, address): after 5 failures within 10
    /// minutes each attempt waits 1, 2, 4 … 60 s after the last failure.
    async fn check_password(
        &self,
        agent: Option<&AgentRecord>,
        pwd: &str,
    ) -> Result<(), CommandError> {
        let store = self.agents.store();
        let now = now_ms();
        let (app_id, agent_no, address) = (&self.app.app_id, &self.agent_no, &self.address);
        let failures = store
            .auth_failures(app_id, agent_no, address)
            .await?
            .filter(|f| f.window_start > now - FAILURE_WINDOW_MS);
        if let Some(f) = failures
            && f.failures >= FREE_FAILURES
        {
            let wait_ms = (1000_i64 << (f.failures - FREE_FAILURES).min(6)).min(60_000);
            if now < f.last_at + wait_ms {
                return Err(CommandError::TooManyAttempts);
            }
        }
        // An unknown agent costs the same time as a wrong password.
        let stored = agent.map_or_else(|| DUMMY_HASH.clone(), |a| a.pwd_hash.clone());
        let pwd = pwd.to_string();
        let ok = actix_web::web::block(move || verify_password(&pwd, &stored))
            .await
            .unwrap_or(false)
            && agent.is_some();
        if ok {
            return Ok(());
        }
        let counted = failures.unwrap_or(AuthFailures {
            failures: 0,
            window_start: now,
            last_at: now,
        });
        store
            .set_auth_failures(
                app_id,
                agent_no,
                address,
                AuthFailures {
                    failures: counted.failures + 1,
                    window_start: counted.window_start,
                    last_at: now,
                },
            )
            .await?;
        Err(CommandError::AuthFailed)
    }

    /// Sends the events of the session the socket follows, then those of the agent's
    /// next session if that one ended; 4005 if one of them logged the agent out for being
    /// disabled (the socket closes once that event is sent).
    async fn flush_session(&mut self, following: &mut Option<(String, i64)>) -> Option<u16> {
        let store = self.agents.store().clone();
        let mut disabled = false;
        loop {
            self.send_new_events(following, &mut disabled).await?;
            let Ok(live) = store.live_session(&self.app.app_id, &self.agent_no).await else {
                return None;
            };
            let live = live.map(|l| l.session_sid);
            if live.is_some() && live.as_deref() == following.as_ref().map(|(sid, _)| sid.as_str())
            {
                return disabled.then_some(4005);
            }
            // The followed session ended after the events above were read: its last
            // events (the logout among them) were written with its end, so they are there
            // to read now.
            self.send_new_events(following, &mut disabled).await?;
            match live {
                Some(sid) => *following = Some((sid, 0)),
                None => {
                    *following = None;
                    return disabled.then_some(4005);
                }
            }
        }
    }

    /// Sends what the followed session has after what was sent of it; notes a logout for
    /// being disabled in `disabled`. `None` when the database or the socket failed.
    async fn send_new_events(
        &mut self,
        following: &mut Option<(String, i64)>,
        disabled: &mut bool,
    ) -> Option<()> {
        let Some((sid, sent)) = following.as_mut() else {
            return Some(());
        };
        let store = self.agents.store().clone();
        loop {
            let frames = store.session_events(sid, *sent, BATCH).await.ok()?;
            let done = (frames.len() as i64) < BATCH;
            for (seq, frame) in frames {
                *disabled |= logs_out_disabled(&frame);
                if !self.send(frame).await {
                    return None;
                }
                *sent = seq;
            }
            if done {
                return Some(());
            }
        }
    }

    async fn serve(mut self, mut attached: Attached) {
        self.watch_queues(&attached).await;
        let silence = Duration::from_secs(u64::from(self.agents.settings().cti_silence_secs));
        let mut heartbeat = tokio::time::interval(silence * 4 / 9);
        heartbeat.reset();
        let mut stopping = self.agents.stopping();
        let mut heard = Instant::now();
        let code = loop {
            tokio::select! {
                read = self.read() => {
                    heard = Instant::now();
                    match read {
                        Read::Closed(code) => break code.unwrap_or(1000),
                        Read::Control => {}
                        Read::Unreadable => {
                            if !self.send(unreadable()).await { break 1000; }
                        }
                        Read::Request(id, cmd, params) => {
                            let result = if cmd == "auth" {
                                Err(CommandError::Param("this socket is already authenticated".into()))
                            } else {
                                self.agents
                                    .run(&self.app.app_id, &attached.agent, &cmd, &params, Origin::Socket, true)
                                    .await
                            };
                            // The events the command caused follow from the notices (in
                            // the channel already), after the reply.
                            if !self.send(reply(&id, &result)).await { break 1000; }
                            let monitoring = matches!(CommandName::from_wire(&cmd), Some(CommandName::MonitorQueues | CommandName::UnmonitorQueues));
                            if result.is_ok() && monitoring {
                                self.watch_queues(&attached).await;
                            }
                        }
                    }
                }
                notice = attached.subscription.notices.recv() => match notice {
                    Some(Notice::Attached { socket_id }) if socket_id != self.socket_id => {
                        let kicked = json!({"type": "connEvent", "data": {"connEvent": "kicked_out", "statusCode": "20112"}});
                        let _ = self.send(kicked.to_string()).await;
                        let _ = self.ws.close(close(4002)).await;
                        return;
                    }
                    Some(Notice::TokensRevoked) if attached.by_token => break 4001,
                    Some(Notice::Events { sid, frames }) => {
                        if let Some(code) = self.deliver(&mut attached, &sid, frames).await { break code; }
                    }
                    Some(Notice::Queue(frame)) => {
                        if !self.send(frame).await { break 1000; }
                    }
                    Some(_) => {
                        if let Some(code) = self.follow(&mut attached).await { break code; }
                    }
                    None => break 1011,
                },
                _ = heartbeat.tick() => {
                    if heard.elapsed() >= silence {
                        break 4004;
                    }
                    if self.ws.ping(b"").await.is_err() { break 1000; }
                }
                _ = stopping.changed() => break 1001,
            }
        };
        self.finish(Some(attached), code).await;
    }

    /// Registers the queues the agent's session monitors (kept across reconnects).
    async fn watch_queues(&self, attached: &Attached) {
        let agent_no = &attached.agent.agent_no;
        let monitored = self.agents.monitored(&self.app.app_id, agent_no).await;
        attached.subscription.monitor(monitored);
    }

    /// Sends the frames a notice carried when they continue what the socket sent of the
    /// session it follows; otherwise reads what is new from the database.
    async fn deliver(
        &mut self,
        attached: &mut Attached,
        sid: &str,
        frames: Vec<(i64, String)>,
    ) -> Option<u16> {
        // A socket following no session (all sent of any before) takes up a new session
        // from its first event.
        let (following, sent) = match attached.following.clone() {
            Some(followed) => followed,
            None if frames.first().is_some_and(|(seq, _)| *seq == 1) => (sid.to_string(), 0),
            None => return self.follow(attached).await,
        };
        let fresh: Vec<_> = frames.into_iter().filter(|(seq, _)| *seq > sent).collect();
        if following != sid || fresh.first().is_none_or(|(seq, _)| *seq != sent + 1) {
            return self.follow(attached).await;
        }
        let mut disabled = false;
        for (seq, frame) in fresh {
            disabled |= logs_out_disabled(&frame);
            if !self.send(frame).await {
                return None;
            }
            attached.following = Some((sid.to_string(), seq));
        }
        disabled.then_some(4005)
    }

    /// Sends what the agent's sessions have new; a close code when the agent was logged
    /// out for being disabled (4005).
    async fn follow(&mut self, attached: &mut Attached) -> Option<u16> {
        self.flush_session(&mut attached.following).await
    }

    /// Closes with `code` and, if the socket was the agent's, detaches it so the grace
    /// period of a logged-in agent starts.
    async fn finish(self, attached: Option<Attached>, code: u16) {
        let _ = self.ws.close(close(code)).await;
        let Some(_attached) = attached else { return };
        let store = self.agents.store();
        match store
            .detach_socket(&self.app.app_id, &self.agent_no, &self.socket_id)
            .await
        {
            Ok(true) => {
                let grace_ms = i64::from(self.agents.settings().cti_grace_secs) * 1000;
                let gone = self
                    .agents
                    .change(&self.app.app_id, &self.agent_no, move |current| {
                        Ok((
                            current.is_some().then_some(Input::SocketGone { grace_ms }),
                            (),
                        ))
                    })
                    .await;
                if let Err(e) = gone {
                    tracing::warn!(error = %e, agent_no = self.agent_no, "agent socket closed: grace not started");
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, agent_no = self.agent_no, "agent socket closed: not detached")
            }
        }
    }
}

/// Whether an event frame (as stored and sent) is the logout of a disabled agent, after
/// which its socket closes (4005).
fn logs_out_disabled(frame: &str) -> bool {
    frame.contains(r#""eventName":"logout""#) && frame.contains(r#""logoutCause":"disabled""#)
}

/// The reply to an unreadable frame.
fn unreadable() -> String {
    json!({"id": "", "statusCode": "10002", "statusMsg": "frame is not a JSON object", "data": {}})
        .to_string()
}

/// An Argon2id hash of a random password, verified against when the agent does not
/// exist, so an unknown agentNo takes as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::domain::credentials::hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default()
});
