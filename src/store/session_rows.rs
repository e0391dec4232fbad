//! The writes of a batch of agent-session changes, gathered while the changes are decided
//! (each on the session as the changes before it left it) and then written in a few
//! statements whatever the batch's size: the sessions' rows in one `UPDATE … FROM (VALUES
//! …)` and one `INSERT`, their events in one `INSERT`, the notices in one `SELECT
//! pg_notify(…)`. A statement per change made a batch as slow as its round trips; under
//! load (hundreds of callers a second, five changes each) that was the database's
//! bottleneck.

use std::collections::HashMap;

use super::Tx;
use super::agent_sessions::{
    AGENT_CHANNEL, Committed, KEPT_EVENTS, SessionWrite, StoredSession, TRIM_EVERY, events_notice,
};
use super::values::{self, Val};
use crate::agents::push::{EventKind, EventPush, agent_key};

/// A session as a batch leaves it.
struct Row {
    sid: String,
    app_id: String,
    agent_no: String,
    /// Started in this batch (inserted, not updated).
    new: bool,
    json: String,
    agent_state: &'static str,
    due_at: Option<i64>,
    ended_at: Option<i64>,
    last_seq: i64,
    /// Its agentState changed at least once in the batch (`state_since` moves).
    moved: bool,
}

/// A locked session as the batch's changes so far left it: the row and its agentState.
pub(crate) type Held = (StoredSession, String);

/// The writes of one batch, written by [`SessionRows::write`].
pub(crate) struct SessionRows {
    now: i64,
    rows: Vec<Row>,
    by_sid: HashMap<String, usize>,
    /// (session, seq, frame).
    events: Vec<(String, i64, String)>,
    /// (session, the last seq to delete).
    trims: Vec<(String, i64)>,
    notices: Vec<String>,
    /// (application, agent, kind, data, channel) of every event, for the `eventUrl` push.
    pushed: Vec<Pushed>,
}

impl SessionRows {
    /// Nothing yet; `now` (Unix ms) stamps every row.
    pub(crate) fn new(now: i64) -> Self {
        SessionRows {
            now,
            rows: Vec::new(),
            by_sid: HashMap::new(),
            events: Vec::new(),
            trims: Vec::new(),
            notices: Vec::new(),
            pushed: Vec::new(),
        }
    }

    /// Adds a change of `current` (a new session gets `new_sid`): what it commits and the
    /// session it leaves.
    pub(crate) fn add(
        &mut self,
        (app_id, agent_no, new_sid): (&str, &str, &str),
        current: Option<Held>,
        write: &SessionWrite,
    ) -> (Committed, Option<Held>) {
        let events = write.events.len() as i64;
        let (sid, first_seq) = match (&current, &write.session) {
            (None, None) => {
                let nothing = Committed {
                    session_sid: None,
                    last_seq: 0,
                    notice: None,
                };
                return (nothing, None);
            }
            (None, Some(state)) => {
                self.put(Row {
                    sid: new_sid.to_string(),
                    app_id: app_id.to_string(),
                    agent_no: agent_no.to_string(),
                    new: true,
                    json: state.json.clone(),
                    agent_state: state.agent_state,
                    due_at: state.due_at,
                    ended_at: None,
                    last_seq: events,
                    moved: true,
                });
                (new_sid.to_string(), 1)
            }
            (Some((row, stored_state)), state) => {
                let (json, agent_state, due_at, ended_at) = match state {
                    Some(s) => (s.json.clone(), s.agent_state, s.due_at, None),
                    None => (row.session.clone(), "offline", None, Some(self.now)),
                };
                let moved = agent_state != stored_state;
                let last_seq = row.last_seq + events;
                match self.by_sid.get(&row.session_sid) {
                    Some(&i) => {
                        let r = &mut self.rows[i];
                        (r.json, r.agent_state, r.due_at, r.ended_at) =
                            (json, agent_state, due_at, ended_at);
                        r.last_seq = last_seq;
                        r.moved |= moved;
                    }
                    None => self.put(Row {
                        sid: row.session_sid.clone(),
                        app_id: app_id.to_string(),
                        agent_no: agent_no.to_string(),
                        new: false,
                        json,
                        agent_state,
                        due_at,
                        ended_at,
                        last_seq,
                        moved,
                    }),
                }
                (row.session_sid.clone(), row.last_seq + 1)
            }
        };
        for (kind, data, channel) in &write.events {
            if let Some(kind) = EventKind::from_type(kind) {
                self.pushed.push(Pushed {
                    app_id: app_id.to_string(),
                    agent_no: agent_no.to_string(),
                    kind,
                    data: data.clone(),
                    channel: channel.clone(),
                });
            }
        }
        let frames: Vec<(i64, String)> = write
            .events
            .iter()
            .enumerate()
            .map(|(i, (kind, data, _))| {
                let seq = first_seq + i as i64;
                (seq, super::agent_sessions::frame(kind, seq, data))
            })
            .collect();
        let last_seq = first_seq + events - 1;
        // Older events go once every TRIM_EVERY seqs, not with each change.
        let trim_due = (first_seq - 1) / TRIM_EVERY != last_seq / TRIM_EVERY;
        if events > 0 && last_seq > KEPT_EVENTS && trim_due {
            self.trims.push((sid.clone(), last_seq - KEPT_EVENTS));
        }
        let notice = (events > 0).then(|| events_notice(app_id, agent_no, &sid, &frames));
        if let Some(notice) = &notice {
            self.notices.push(notice.clone());
        }
        self.events.extend(
            frames
                .into_iter()
                .map(|(seq, frame)| (sid.clone(), seq, frame)),
        );
        let after = write.session.as_ref().map(|state| {
            let stored = StoredSession {
                session_sid: sid.clone(),
                session: state.json.clone(),
                last_seq,
            };
            (stored, state.agent_state.to_string())
        });
        let committed = Committed {
            session_sid: Some(sid),
            last_seq,
            notice,
        };
        (committed, after)
    }

    fn put(&mut self, row: Row) {
        self.by_sid.insert(row.sid.clone(), self.rows.len());
        self.rows.push(row);
    }

    /// Writes everything added, in `tx`: sessions ended or changed before sessions
    /// started (an agent's new session may follow its ended one), then events, trims,
    /// notices (PostgreSQL; sent at commit, in order) and the events' push to their
    /// applications' `eventUrl`. Whether it added callbacks to the outbox.
    pub(crate) async fn write(self, tx: &mut Tx<'_>) -> Result<bool, sqlx::Error> {
        let now = self.now;
        let changed: Vec<Vec<Val<'_>>> = self
            .rows
            .iter()
            .filter(|r| !r.new)
            .map(|r| {
                vec![
                    Val::Text(Some(&r.sid)),
                    Val::Text(Some(&r.json)),
                    Val::Text(Some(r.agent_state)),
                    Val::Int(Some(r.last_seq)),
                    Val::Int(r.due_at),
                    Val::Int(r.ended_at),
                    Val::Int(Some(i64::from(r.moved))),
                ]
            })
            .collect();
        if !changed.is_empty() {
            let pad = [
                Val::Text(Some("")),
                Val::Text(Some("")),
                Val::Text(Some("")),
                Val::Int(Some(0)),
                Val::Int(None),
                Val::Int(None),
                Val::Int(Some(0)),
            ];
            values::run(
                tx,
                |h, v| {
                    format!(
                        "UPDATE agent_sessions SET session = v.column2, agent_state = v.column3, \
                         last_seq = v.column4, due_at = v.column5, ended_at = v.column6, updated_at = {}, \
                         state_since = CASE WHEN v.column7 = 1 THEN {} ELSE agent_sessions.state_since END \
                         FROM {v} AS v WHERE agent_sessions.session_sid = v.column1",
                        h[0], h[1]
                    )
                },
                &[Val::Int(Some(now)), Val::Int(Some(now))],
                7,
                &changed,
                Some(&pad),
                false,
            )
            .await?;
        }
        let started: Vec<Vec<Val<'_>>> = self
            .rows
            .iter()
            .filter(|r| r.new)
            .map(|r| {
                vec![
                    Val::Text(Some(&r.sid)),
                    Val::Text(Some(&r.app_id)),
                    Val::Text(Some(&r.agent_no)),
                    Val::Text(Some(&r.json)),
                    Val::Text(Some(r.agent_state)),
                    Val::Int(Some(r.last_seq)),
                    Val::Int(r.due_at),
                    Val::Int(r.ended_at),
                    Val::Int(Some(now)),
                    Val::Int(Some(now)),
                    Val::Int(Some(now)),
                ]
            })
            .collect();
        values::insert(
            tx,
            "agent_sessions (session_sid, app_id, agent_no, session, agent_state, last_seq, due_at, \
             ended_at, created_at, updated_at, state_since)",
            11,
            &started,
        )
        .await?;
        let events: Vec<Vec<Val<'_>>> = self
            .events
            .iter()
            .map(|(sid, seq, frame)| {
                vec![
                    Val::Text(Some(sid)),
                    Val::Int(Some(*seq)),
                    Val::Text(Some(frame)),
                    Val::Int(Some(now)),
                ]
            })
            .collect();
        values::insert(
            tx,
            "agent_events (session_sid, seq, frame, created_at)",
            4,
            &events,
        )
        .await?;
        for (sid, upto) in &self.trims {
            super::agent_sessions::trim_events(tx, sid, *upto).await?;
        }
        if matches!(tx, Tx::Postgres(_)) && !self.notices.is_empty() {
            let notices: Vec<Vec<Val<'_>>> = self
                .notices
                .iter()
                .map(|n| vec![Val::Text(Some(n))])
                .collect();
            values::run(
                tx,
                |h, v| format!("SELECT pg_notify({}, v.column1) FROM {v} AS v", h[0]),
                &[Val::Text(Some(AGENT_CHANNEL))],
                1,
                &notices,
                None,
                false,
            )
            .await?;
        }
        push_events(tx, &self.pushed, now).await
    }
}

/// An agent's event for its application's `eventUrl`.
struct Pushed {
    app_id: String,
    agent_no: String,
    kind: EventKind,
    data: String,
    channel: String,
}

/// The pushes of `events` to their applications' `eventUrl`, keyed per agent; whether
/// any was written.
async fn push_events(tx: &mut Tx<'_>, events: &[Pushed], now: i64) -> Result<bool, sqlx::Error> {
    if events.is_empty() {
        return Ok(false);
    }
    let mut apps: Vec<&str> = events.iter().map(|e| e.app_id.as_str()).collect();
    apps.sort_unstable();
    apps.dedup();
    let targets = super::event_push::push_targets(tx, &apps).await?;
    if targets.is_empty() {
        return Ok(false);
    }
    let pushes: Vec<EventPush> = events
        .iter()
        .filter_map(|e| {
            Some(EventPush {
                target: targets.get(&e.app_id)?.clone(),
                ordering_key: agent_key(&e.app_id, &e.agent_no),
                kind: e.kind,
                data: e.data.clone(),
                channel: e.channel.clone(),
            })
        })
        .collect();
    super::event_push::insert_pushes(tx, &pushes, now).await
}
