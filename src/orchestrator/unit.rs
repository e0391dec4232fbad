//! A call as the driver needs it: what does not change while it runs ([`Unit`]: ids,
//! account, application, URLs, the fencing epoch), and its engine, built from a claimed leg
//! (fresh) or from what is stored (taken over). Prompts are resolved to files here, so the
//! engine never waits for the database.

use std::sync::Arc;

use chrono::TimeZone;

use super::Ctx;
use super::engine::{App, Conversation, Core, Dial, Ended, Leg, Limits, Signalling, Status};
use super::flows::agent::{AgentFlow, Plan as ConversationPlan, TalkRules};
use super::flows::click2call::{AddParty, CalleePlan, Click2CallFlow, Plan};
use super::flows::ivr::{IvrFlow, IvrKind, Keys, Script};
use super::flows::{Flow, StoredAgentConversation};
use super::prompts::Builtin;
use crate::cdr::LegEnd;
use crate::domain::CallKind;
use crate::domain::agent_call::{AgentCall, CallType};
use crate::domain::captcha::{CaptchaScript, Lang};
use crate::domain::click2call::{AddCall, RingbackMode, StoredClick2Call};
use crate::domain::notice::{ContentItem, NoticeScript};
use crate::store::applications::ApplicationRecord;
use crate::store::placing::{CallRecord, StoredCall};

/// What a call's driver knows that does not change while it runs.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// `CA…` of a notice or captcha, `CV…` of a conversation.
    pub id: String,
    /// Its kind.
    pub kind: CallKind,
    /// Its first leg as accepted (request, account, application, userdata).
    pub first: CallRecord,
    /// The lease epoch its writes are fenced with.
    pub epoch: i64,
    /// The driver's generation (its application runs carry it).
    pub generation: u64,
    /// `apiVersion` of a conversation's status callbacks.
    pub api_version: String,
    /// A conversation's statusUrl (the request's, or else the application's).
    pub status_url: Option<String>,
    /// A conversation's cdrUrl (the request's, or else the application's).
    pub cdr_url: Option<String>,
    /// The application as last read.
    pub app: Option<Arc<ApplicationRecord>>,
}

/// A call ready to be driven.
pub(crate) struct Built {
    pub unit: Unit,
    pub engine: Conversation,
}

impl Ctx {
    fn limits(&self) -> Limits {
        Limits {
            node_grace_ms: self.settings.media_grace.as_millis() as i64,
            ..Limits::default()
        }
    }

    /// A claimed call, to be dialled.
    pub(crate) async fn fresh(&self, call: CallRecord, answer_timeout: i64) -> Built {
        let node = self
            .media
            .pick()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let now = self.media.now_ms_on(&node);
        let leg = Leg::new(
            call.id.clone(),
            node,
            call.from_number.clone().unwrap_or_default(),
            call.to_number.clone(),
            now,
        );
        let (unit, flow) = self.unit_and_flow(call, answer_timeout, None).await;
        let mut core = Core::new(unit.id.clone(), vec![leg], self.limits(), self.ids.clone());
        core.now = now;
        core.quiet_progress = !unit.kind.is_conversation();
        Built {
            unit,
            engine: Conversation::new(core, flow),
        }
    }

    /// A conversation just opened on a parked channel (a caller's, or an agent phone's
    /// dialling out) whose first leg is `first`, the channel named `channel_name`.
    pub(crate) async fn inbound(&self, first: CallRecord, channel_name: &str) -> Built {
        let now = self
            .media
            .now_ms_on(first.node.as_deref().unwrap_or_default());
        let mut leg = leg_of(&first, now);
        leg.channel_name = channel_name.to_string();
        let (unit, flow) = self.unit_and_flow(first, 0, None).await;
        let mut core = Core::new(unit.id.clone(), vec![leg], self.limits(), self.ids.clone());
        core.now = now;
        Built {
            unit,
            engine: Conversation::new(core, flow),
        }
    }

    /// A call taken over, from its stored legs and snapshot.
    pub(crate) async fn restored(&self, stored: StoredCall) -> Option<Built> {
        let first = stored.legs.first()?.clone();
        let now = self
            .media
            .now_ms_on(first.node.as_deref().unwrap_or_default());
        let legs: Vec<Leg> = stored.legs.iter().map(|r| leg_of(r, now)).collect();
        let (unit, flow) = self
            .unit_and_flow(first, stored.answer_timeout, Some(stored.snapshot))
            .await;
        let mut core = Core::new(unit.id.clone(), legs, self.limits(), self.ids.clone());
        core.now = now;
        core.quiet_progress = !unit.kind.is_conversation();
        Some(Built {
            unit,
            engine: Conversation::restored(core, flow),
        })
    }

    /// The unit and flow of `call` (`resumed`: a takeover, with the snapshot if any).
    async fn unit_and_flow(
        &self,
        call: CallRecord,
        answer_timeout: i64,
        resumed: Option<Option<String>>,
    ) -> (Unit, Flow) {
        let kind = CallKind::parse(&call.kind).unwrap_or(CallKind::Notice);
        let app = self.app(&call.account_sid, &call.app_id).await;
        let answer_timeout = answer_timeout.clamp(1, 600) as u32;
        let dial = Dial {
            to: call.to_number.clone(),
            from: call.from_number.clone(),
            timeout_secs: answer_timeout,
            ignore_early_media: true,
            ..Dial::default()
        };
        let mut unit = Unit {
            id: call
                .conversation_id
                .clone()
                .unwrap_or_else(|| call.id.clone()),
            kind,
            epoch: self.epoch(),
            generation: self.next_generation(),
            api_version: String::new(),
            status_url: None,
            cdr_url: None,
            app,
            first: call,
        };
        let flow = match kind {
            CallKind::Notice => Flow::Ivr(self.notice(&unit.first, dial).await),
            CallKind::Captcha => Flow::Ivr(self.captcha(&unit.first, dial)),
            CallKind::Click2Call => {
                let stored: Option<StoredClick2Call> = serde_json::from_str(&unit.first.params)
                    .map_err(|e| tracing::error!(call = %unit.id, error = %e, "stored click-to-call unreadable"))
                    .ok();
                let plan = match &stored {
                    Some(stored) => self.plan(&unit, stored, answer_timeout).await,
                    None => self.fallback_plan(&unit, answer_timeout),
                };
                if let Some(stored) = &stored {
                    let app = unit.app.as_deref();
                    unit.api_version = stored.api_version.clone();
                    unit.status_url = stored
                        .call
                        .status_url
                        .as_ref()
                        .map(|u| u.as_str().to_string())
                        .or_else(|| app.and_then(|a| a.status_url.clone()));
                    unit.cdr_url = stored
                        .call
                        .cdr_url
                        .as_ref()
                        .map(|u| u.as_str().to_string())
                        .or_else(|| app.and_then(|a| a.cdr_url.clone()));
                }
                Flow::Click2Call(Box::new(match resumed {
                    Some(snapshot) => {
                        Click2CallFlow::resumed(plan, snapshot_of(&unit.id, snapshot))
                    }
                    None => Click2CallFlow::new(plan),
                }))
            }
            CallKind::Agent => {
                unit.cdr_url = unit.app.as_deref().and_then(|a| a.cdr_url.clone());
                let stored = serde_json::from_str::<StoredAgentConversation>(&unit.first.params)
                    .unwrap_or_else(|e| {
                        tracing::error!(call = %unit.id, error = %e, "stored agent call unreadable; it fails");
                        StoredAgentConversation::CallOut(Box::new(unreadable_agent_call()))
                    });
                let cti = unit.app.as_deref().map(|a| &a.cti);
                let (plan, max_call_duration, record) = match stored {
                    StoredAgentConversation::Inbound { inbound } => (
                        *inbound,
                        cti.map_or(0, |c| c.max_call_duration.clamp(0, 86_400) as u32),
                        cti.is_some_and(|c| c.record_agent_calls),
                    ),
                    // A callOut keeps the settings it was placed with.
                    StoredAgentConversation::CallOut(call) => {
                        let (max, record) = (call.max_call_duration, call.record);
                        let failure = self.prompts.builtin(Builtin::Failure);
                        (ConversationPlan::call_out(*call, failure), max, record)
                    }
                };
                let rules = TalkRules {
                    music_on_hold: self.hold_music(&unit).await,
                    max_call_duration,
                    recording: record.then(|| self.recording_path(&unit.id)),
                    conference_profile: self.settings.conference_profile.clone(),
                };
                let user_data = unit.first.userdata.clone().unwrap_or_default();
                let flow = AgentFlow::new(plan, rules, user_data);
                Flow::Agent(Box::new(match resumed {
                    Some(snapshot) => flow.resumed(snapshot_of(&unit.id, snapshot)),
                    None => flow,
                }))
            }
        };
        // The script is in the flow now; the call need not carry its text.
        unit.first.params = String::new();
        (unit, flow)
    }

    /// What the user of an agent call hears on hold: the application's musicOnHold, or
    /// FreeSWITCH's own music on hold.
    async fn hold_music(&self, unit: &Unit) -> String {
        let name = unit
            .app
            .as_deref()
            .map(|a| a.cti.music_on_hold.clone())
            .filter(|m| !m.is_empty());
        let name = name.and_then(|n| crate::domain::PromptName::parse("musicOnHold", &n).ok());
        match self.prompt(&unit.first.app_id, name.as_ref()).await {
            Some(path) => path,
            None => FREESWITCH_MUSIC_ON_HOLD.into(),
        }
    }

    async fn notice(&self, call: &CallRecord, dial: Dial) -> IvrFlow {
        let script: Option<NoticeScript> = serde_json::from_str(&call.params)
            .map_err(|e| tracing::error!(call = %call.id, error = %e, "stored notice unreadable"))
            .ok();
        let Some(script) = script else {
            return IvrFlow::new(
                IvrKind::Captcha,
                Script {
                    items: None,
                    times: 1,
                },
                dial,
            );
        };
        let mut items = Some(Vec::with_capacity(script.contents.len()));
        for item in &script.contents {
            match self.render(&call.app_id, item).await {
                Ok(app) => items.iter_mut().for_each(|i| i.push(app.clone())),
                Err(e) => {
                    // A prompt deleted after acceptance: the call is hung up once answered.
                    tracing::error!(call = %call.id, error = %e, "notice cannot be played");
                    items = None;
                }
            }
        }
        let finishvoice = match &script.finishvoice {
            Some(voice) => match self.prompts.path(&call.app_id, voice.as_str()).await {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::warn!(error = %e, "finishvoice unavailable; the finish key just ends the call");
                    None
                }
            },
            None => None,
        };
        let keys = Keys {
            finish: script.finishkey,
            repeat: script.repeatkey,
            finishvoice,
        };
        IvrFlow::new(
            IvrKind::Notice(keys),
            Script {
                items,
                times: script.times,
            },
            dial,
        )
    }

    /// The application that plays one content item: a prompt file, or `say` in Mandarin
    /// with the item's type and method.
    async fn render(
        &self,
        app_id: &str,
        item: &ContentItem,
    ) -> Result<App, super::prompts::PromptError> {
        Ok(match item {
            ContentItem::Voice(name) => {
                App::Playback(self.prompts.path(app_id, name.as_str()).await?)
            }
            ContentItem::Time(date) => App::Say(format!(
                "zh CURRENT_DATE PRONOUNCED {}",
                date_epoch(date, self.settings.timezone)
            )),
            ContentItem::Money(amount) => App::Say(format!("zh CURRENCY PRONOUNCED {amount}")),
            ContentItem::Number(n) => App::Say(format!("zh NUMBER PRONOUNCED {n}")),
            ContentItem::Digits(d) => App::Say(format!("zh NUMBER ITERATED {d}")),
        })
    }

    /// A captcha: the intro, then the code spelled three times. The code goes to the media
    /// server only; it is never written to a log line.
    fn captcha(&self, call: &CallRecord, dial: Dial) -> IvrFlow {
        let items = serde_json::from_str::<CaptchaScript>(&call.params)
            .ok()
            .map(|script| {
                let lang = match script.lang {
                    Lang::Zh => "zh",
                    Lang::En => "en",
                };
                let code: String = script.code.chars().collect();
                let spell = App::Say(format!("{lang} NAME_SPELLED ITERATED {code}"));
                let intro = App::Playback(self.prompts.builtin(Builtin::CaptchaIntro));
                vec![intro, spell.clone(), spell.clone(), spell]
            });
        IvrFlow::new(IvrKind::Captcha, Script { items, times: 1 }, dial)
    }

    async fn plan(&self, unit: &Unit, stored: &StoredClick2Call, answer_timeout: u32) -> Plan {
        let call = &stored.call;
        let dial = &call.dial;
        let app_id = &unit.first.app_id;
        let platform = dial.ringback_mode == RingbackMode::Platform;
        let ringback = match platform {
            true => Some(
                self.prompt_or(app_id, dial.ringback_voice.as_ref(), Builtin::Ringback)
                    .await,
            ),
            false => None,
        };
        Plan {
            caller: Dial {
                to: unit.first.to_number.clone(),
                from: call.caller_cli.as_ref().map(ToString::to_string),
                timeout_secs: answer_timeout,
                ignore_early_media: true,
                ..Dial::default()
            },
            callee: CalleePlan {
                to: dial.callee.to_string(),
                from: dial
                    .callee_cli
                    .as_ref()
                    .map_or_else(|| unit.first.to_number.clone(), ToString::to_string),
                greet: self.prompt(app_id, dial.greet_voice.as_ref()).await,
                ringback,
                fail_voice: self
                    .prompt_or(app_id, dial.fail_voice.as_ref(), Builtin::Failure)
                    .await,
                callee_voice: self.prompt(app_id, dial.callee_voice.as_ref()).await,
                caller_voice: self.prompt(app_id, dial.caller_voice.as_ref()).await,
                record: dial.record,
            },
            answer_timeout,
            max_duration: call.max_duration,
            last_minute: self
                .prompt_or(app_id, call.last_min_voice.as_ref(), Builtin::LastMinute)
                .await,
            recording_path: self.recording_path(&unit.id),
        }
    }

    /// The plan of a conversation whose stored request cannot be read: it is ended at once.
    fn fallback_plan(&self, unit: &Unit, answer_timeout: u32) -> Plan {
        Plan {
            caller: Dial {
                to: unit.first.to_number.clone(),
                from: None,
                timeout_secs: answer_timeout,
                ignore_early_media: true,
                ..Dial::default()
            },
            callee: CalleePlan {
                to: String::new(),
                from: String::new(),
                greet: None,
                ringback: None,
                fail_voice: self.prompts.builtin(Builtin::Failure),
                callee_voice: None,
                caller_voice: None,
                record: crate::domain::click2call::RecordMode::Off,
            },
            answer_timeout,
            max_duration: None,
            last_minute: self.prompts.builtin(Builtin::LastMinute),
            recording_path: self.recording_path(&unit.id),
        }
    }

    fn recording_path(&self, id: &str) -> String {
        let path = self.settings.recordings_dir.join(format!("{id}.wav"));
        std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// An addCall with its prompts resolved for application `app_id`.
    pub(crate) async fn resolve_add(&self, app_id: &str, add: &AddCall) -> AddParty {
        let dial = &add.dial;
        let platform = dial.ringback_mode == RingbackMode::Platform;
        let fail_voice = match platform {
            true => Some(
                self.prompt_or(app_id, dial.fail_voice.as_ref(), Builtin::Failure)
                    .await,
            ),
            false => None,
        };
        AddParty {
            to: dial.callee.to_string(),
            from: dial.callee_cli.as_ref().map(ToString::to_string),
            timeout: add.timeout,
            greet: self.prompt(app_id, dial.greet_voice.as_ref()).await,
            fail_voice,
            callee_voice: self.prompt(app_id, dial.callee_voice.as_ref()).await,
            caller_voice: self.prompt(app_id, dial.caller_voice.as_ref()).await,
            record: dial.record,
        }
    }

    pub(crate) async fn prompt(
        &self,
        app_id: &str,
        name: Option<&crate::domain::PromptName>,
    ) -> Option<String> {
        let name = name?;
        match self.prompts.path(app_id, name.as_str()).await {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!(error = %e, "prompt unavailable; not played");
                None
            }
        }
    }

    async fn prompt_or(
        &self,
        app_id: &str,
        name: Option<&crate::domain::PromptName>,
        builtin: Builtin,
    ) -> String {
        match self.prompt(app_id, name).await {
            Some(path) => path,
            None => self.prompts.builtin(builtin),
        }
    }
}

/// A conversation's stored snapshot, read as its flow's state (`None` when it has none or
/// it cannot be read: the flow resumes from the legs alone).
fn snapshot_of<T: serde::de::DeserializeOwned>(id: &str, snapshot: Option<String>) -> Option<T> {
    snapshot.as_deref().and_then(|s| {
        serde_json::from_str(s)
            .map_err(|e| tracing::error!(call = %id, error = %e, "snapshot unreadable; resumed from the legs alone"))
            .ok()
    })
}

/// An agent call whose stored request cannot be read: nothing to dial, so it fails at once.
fn unreadable_agent_call() -> AgentCall {
    AgentCall {
        call_type: CallType::CallOut,
        agent_no: String::new(),
        agent_number: String::new(),
        phone_type: crate::domain::agent::PhoneType::Pstn,
        user_number: String::new(),
        display_num: String::new(),
        caller_id: None,
        agent_ring_timeout: 1,
        answer_timeout: 1,
        max_call_duration: 0,
        wrapup_time: 0,
        masked: false,
        record: false,
    }
}

/// FreeSWITCH's stock music on hold (`local_stream://moh`), the built-in musicOnHold.
pub(crate) const FREESWITCH_MUSIC_ON_HOLD: &str = "local_stream://moh";

/// A stored leg as the engine knows it.
pub(crate) fn leg_of(row: &CallRecord, now: i64) -> Leg {
    let mut leg = Leg::new(
        row.id.clone(),
        row.node.clone().unwrap_or_default(),
        row.from_number.clone().unwrap_or_default(),
        row.to_number.clone(),
        row.start_at.unwrap_or(now),
    );
    if let Some(channel) = &row.channel_uuid {
        leg.channel = channel.clone();
    }
    leg.ring_ms = row.ring_at;
    leg.answer_ms = row.answer_at;
    leg.dialed = !matches!(row.state.as_str(), "queued" | "placing");
    leg.reported = match row.state.as_str() {
        "initiated" => Some(Status::Initiated),
        "ringing" => Some(Status::Ringing),
        "answered" => Some(Status::Answered),
        "completed" => Some(Status::Completed),
        _ => None,
    };
    if let Some(end) = row.end_at {
        let cause = row.hangup_cause.clone().unwrap_or_default();
        leg.hangup = Some((0, cause.clone()));
        leg.ended = Some(Ended {
            at: end,
            cause,
            signalling: Signalling {
                sip_status: row.sip_status.clone(),
                proto_cause: row.proto_cause.clone(),
            },
        });
        leg.settled = row
            .cause
            .as_deref()
            .and_then(|c| LegEnd::from_call_cause(c, row.answer_at.is_some()));
    }
    leg
}

/// `YYYY-MM-DD` → epoch seconds of its midnight in the platform time zone (what
/// FreeSWITCH's `CURRENT_DATE` reads).
fn date_epoch(date: &str, tz: chrono_tz::Tz) -> i64 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_the_platform_zone() {
        assert_eq!(
            date_epoch("2024-01-02", chrono_tz::Asia::Shanghai),
            1_704_124_800
        );
        assert_eq!(date_epoch("2024-01-02", chrono_tz::UTC), 1_704_153_600);
    }
}
