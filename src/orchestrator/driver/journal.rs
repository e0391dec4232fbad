//! The engine's writes as rows: leg states, new legs, ends, snapshots and the CDR, each
//! with the callbacks it implies (a conversation's status callbacks §6.1, the result or
//! CDR callback §5/§6.2, the batched feed §7), fenced by the call's epoch.

use crate::cdr::{ConversationCdr, LegFacts, NoticeCdr, StatusEvent, call_cause};
use crate::domain::CallKind;
use crate::domain::time::now_ms;
use crate::orchestrator::engine::{ByeType, CdrKind, Conversation, LegIdx, Status, Write};
use crate::orchestrator::unit::Unit;
use crate::store::journal::{
    CallWrite, CdrRow, ConversationEnd, Entry, Fence, Finish, LegFinal, LegState, NewLeg,
    OutboxRow, WaitingRow,
};

/// The rows of one step's writes.
pub(super) fn call_write(
    unit: &Unit,
    engine: &Conversation,
    writes: Vec<Write>,
    tz: chrono_tz::Tz,
) -> CallWrite {
    let render = Render { unit, engine, tz };
    let agents = super::agent_journal::agent_entries(unit, engine, &writes, tz);
    CallWrite {
        fence: Fence {
            epoch: unit.epoch,
            root: unit.first.id.clone(),
            conversation: unit.kind.is_conversation(),
        },
        account_sid: unit.first.account_sid.clone(),
        entries: writes
            .into_iter()
            .filter_map(|w| render.entry(w))
            .chain(agents)
            .collect(),
    }
}

struct Render<'a> {
    unit: &'a Unit,
    engine: &'a Conversation,
    tz: chrono_tz::Tz,
}

impl Render<'_> {
    /// The row of `write`, if it has one of its own (a hold is only an agent's event).
    fn entry(&self, write: Write) -> Option<Entry> {
        let legs = &self.engine.core.legs;
        Some(match write {
            Write::Held(..)
            | Write::Bridged(..)
            | Write::Conferenced(..)
            | Write::QueueEvent(_) => return None,
            Write::Waiting(stay) => Entry::Waiting {
                conversation_id: self.unit.id.clone(),
                row: stay.map(|(queue_sid, join_at, join_type)| WaitingRow {
                    app_id: self.unit.first.app_id.clone(),
                    queue_sid,
                    call_sid: legs[0].id.clone(),
                    user_number: super::agent_journal::agent_flow(self.engine)
                        .map(|f| f.plan().user_number.clone())
                        .unwrap_or_default(),
                    join_type,
                    join_at,
                }),
            },
            Write::Status(leg, status, at) => Entry::Leg {
                call_id: legs[leg].id.clone(),
                state: match status {
                    Status::Initiated | Status::Completed => LegState::Initiated,
                    Status::Ringing => LegState::Ringing,
                    Status::Answered => LegState::Answered,
                },
                at_ms: at,
                node: (status == Status::Initiated).then(|| legs[leg].node.clone()),
                callbacks: self.status(leg, status, at, None),
            },
            Write::NewLeg(leg) => {
                let l = &legs[leg];
                let first = &self.unit.first;
                Entry::NewLeg(
                    Box::new(NewLeg {
                        id: l.id.clone(),
                        request_id: first.request_id.clone(),
                        account_sid: first.account_sid.clone(),
                        app_id: first.app_id.clone(),
                        conversation_id: self.unit.id.clone(),
                        leg_seq: leg as i64,
                        to_number: l.to.clone(),
                        from_number: Some(l.from.clone()).filter(|f| !f.is_empty()),
                        userdata: first.userdata.clone(),
                        node: l.node.clone(),
                        start_at: l.start_ms,
                        agent_no: super::agent_journal::agent_flow(self.engine)
                            .and_then(|f| f.offer(leg))
                            .map(|o| o.offer.agent_no.clone()),
                    }),
                    self.status(leg, Status::Initiated, l.start_ms, None),
                )
            }
            Write::LegEnded(leg, facts) => {
                let callbacks = self.status(leg, Status::Completed, facts.end_ms, Some(&facts));
                Entry::LegEnded(self.final_of(&facts, None), callbacks)
            }
            Write::Snapshot(stage, data) => Entry::Conversation {
                id: self.unit.id.clone(),
                state: stage,
                snapshot: data.to_string(),
            },
            Write::Finish { ending, legs, kind } => self.finish(ending, legs, kind),
        })
    }

    fn final_of(&self, facts: &LegFacts, inputkey: Option<String>) -> LegFinal {
        LegFinal {
            call_id: facts.call_id.clone(),
            end_at: facts.end_ms,
            ring_at: facts.ring_ms,
            answer_at: facts.answer_ms,
            hangup_cause: facts.hangup_cause.clone(),
            sip_status: Some(facts.sip_status.clone()).filter(|s| !s.is_empty()),
            proto_cause: Some(facts.proto_cause.clone()).filter(|s| !s.is_empty()),
            cause: call_cause(facts.end),
            inputkey,
        }
    }

    /// The status callback of leg `leg` reaching `status` (conversations with a statusUrl).
    fn status(
        &self,
        leg: LegIdx,
        status: Status,
        at: i64,
        facts: Option<&LegFacts>,
    ) -> Vec<OutboxRow> {
        let unit = self.unit;
        let Some(url) = unit.status_url.as_deref().filter(|u| !u.is_empty()) else {
            return Vec::new();
        };
        let l = &self.engine.core.legs[leg];
        let body = StatusEvent {
            conversation_sid: &unit.id,
            api_version: &unit.api_version,
            account_sid: &unit.first.account_sid,
            app_sid: &unit.first.app_id,
            user_data: unit.first.userdata.as_deref().unwrap_or_default(),
            call_sid: &l.id,
            from: &l.from,
            to: &l.to,
            call_status: status.as_str(),
            at_ms: at,
            end: facts.map(|f| f.end),
        }
        .body(self.tz);
        vec![OutboxRow::new(
            &unit.first.account_sid,
            &unit.first.app_id,
            "status",
            url,
            &body,
            &unit.id,
        )]
    }

    fn finish(&self, ending: Vec<(LegIdx, LegFacts)>, legs: Vec<LegFacts>, kind: CdrKind) -> Entry {
        let unit = self.unit;
        let first = &unit.first;
        let mut callbacks = Vec::new();
        let (inputkey, conversation, body) = match (unit.kind, kind) {
            (CallKind::Click2Call, kind) => {
                let (bye, recording_ms) = match kind {
                    CdrKind::Click2Call { bye, recording_ms } => (bye, recording_ms),
                    _ => (ByeType::CallerNoAnswer, None),
                };
                let recording = recording_ms.map(|ms| (self.recording_url(), ms));
                for (leg, facts) in &ending {
                    callbacks.extend(self.status(
                        *leg,
                        Status::Completed,
                        facts.end_ms,
                        Some(facts),
                    ));
                }
                let body = ConversationCdr {
                    conversation_sid: &unit.id,
                    account_sid: &first.account_sid,
                    app_sid: &first.app_id,
                    recording_url: recording.as_ref().map_or("", |(u, _)| u.as_str()),
                    recording_secs: recording.as_ref().map_or(0, |(_, ms)| ms / 1000),
                    user_data: first.userdata.as_deref().unwrap_or_default(),
                    bye_type: bye.code(),
                    legs: &legs,
                }
                .body(self.tz);
                let end = ConversationEnd {
                    id: unit.id.clone(),
                    bye_type: bye.code(),
                    recording,
                };
                (None, Some(end), body)
            }
            (CallKind::Agent, kind) => {
                let (bye, recording_ms) = match kind {
                    CdrKind::Agent { bye, recording_ms } => (bye, recording_ms),
                    _ => (crate::domain::agent_call::AgentBye::MediaFailure, None),
                };
                let recording = recording_ms.map(|ms| (self.recording_url(), ms));
                let body = match super::agent_journal::agent_flow(self.engine) {
                    Some(flow) => super::agent_journal::agent_cdr(
                        unit,
                        self.engine,
                        flow,
                        &legs,
                        (bye.code(), recording.as_ref()),
                        self.tz,
                    ),
                    None => serde_json::Value::Null,
                };
                let end = ConversationEnd {
                    id: unit.id.clone(),
                    bye_type: bye.code(),
                    recording,
                };
                (None, Some(end), body)
            }
            (notice_or_captcha, kind) => {
                let inputkey = match kind {
                    CdrKind::Notice { inputkey } => inputkey.map(String::from),
                    _ => None,
                };
                let is_notice = notice_or_captcha == CallKind::Notice;
                let fallback;
                let leg = match legs.first() {
                    Some(leg) => leg,
                    None => {
                        fallback = self.engine.core.legs[0].facts(crate::cdr::LegEnd::Failed);
                        &fallback
                    }
                };
                let body = NoticeCdr {
                    requestid: &first.request_id,
                    appid: &first.app_id,
                    userdata: first.userdata.as_deref().unwrap_or_default(),
                    inputkey: is_notice.then(|| inputkey.as_deref().unwrap_or_default()),
                    leg,
                }
                .body(self.tz);
                (inputkey, None, body)
            }
        };
        callbacks.extend(self.cdr_callbacks(&body));
        let start = legs.first().map_or_else(now_ms, |l| l.start_ms);
        let ended = ending
            .iter()
            .map(|(leg, facts)| {
                let key = (*leg == 0).then(|| inputkey.clone()).flatten();
                self.final_of(facts, key)
            })
            .collect();
        Entry::Finish(Box::new(Finish {
            legs: ended,
            conversation,
            cdr: CdrRow {
                id: unit.id.clone(),
                account_sid: first.account_sid.clone(),
                app_id: first.app_id.clone(),
                kind: unit.kind,
                start_time: start,
                to_number: first.to_number.clone(),
                numbers: {
                    let mut numbers: Vec<String> = std::iter::once(first.to_number.clone())
                        .chain(legs.iter().map(|l| l.to.clone()))
                        .collect();
                    numbers.sort();
                    numbers.dedup();
                    numbers
                },
                body: body.to_string(),
                created_at: now_ms(),
            },
            callbacks,
        }))
    }

    /// Where a conversation's recording is fetched.
    fn recording_url(&self) -> String {
        let unit = self.unit;
        format!(
            "/Accounts/{}/Recordings/{}.wav",
            unit.first.account_sid, unit.id
        )
    }

    /// The CDR's callbacks: to the result/CDR URL (when set) and to the application's
    /// batched feed (when it has one), with `kind` added.
    fn cdr_callbacks(&self, body: &serde_json::Value) -> Vec<OutboxRow> {
        let unit = self.unit;
        let first = &unit.first;
        let app = unit.app.as_deref();
        let url = match unit.kind {
            CallKind::Click2Call | CallKind::Agent => unit.cdr_url.clone(),
            _ => app.and_then(|a| a.notify_url.clone()),
        };
        let mut rows = Vec::new();
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            rows.push(OutboxRow::new(
                &first.account_sid,
                &first.app_id,
                unit.kind.cdr_callback(),
                &url,
                body,
                &unit.id,
            ));
        }
        if let Some(feed) = app.and_then(|a| a.cdr_feed_url.as_deref()) {
            let mut item = body.clone();
            if let Some(map) = item.as_object_mut() {
                map.insert(
                    "kind".into(),
                    serde_json::Value::String(unit.kind.as_str().into()),
                );
            }
            rows.push(OutboxRow::new(
                &first.account_sid,
                &first.app_id,
                "feed",
                feed,
                &item,
                &format!("feed:{}", first.app_id),
            ));
        }
        rows
    }
}
