//! Agent sessions as stored (agents' contract §4, §6): each agent's live session, its last
//! 500 events with their seq, the socket attached to each agent, failed password attempts.
//! What a session holds is the `agents` module's business: here it is JSON text.
//!
//! A change of a session runs in one transaction that holds the session row (on
//! PostgreSQL `FOR UPDATE`; on SQLite the single writer), so commands and call events
//! arriving at any replica are applied one at a time, and the events they cause get
//! consecutive seqs. On PostgreSQL the transaction also sends a `NOTIFY` on
//! [`AGENT_CHANNEL`], delivered at commit, for the replica holding the agent's socket.

use std::collections::HashMap;

use super::session_rows::Held;
use super::session_writer::{Decide, Outcome};
use super::values::{self, Val};
use super::{Store, StoreError, Tx, on_pool, on_tx, on_write};
use crate::domain::time::now_ms;

/// The PostgreSQL notification channel of agent events and socket changes.
pub const AGENT_CHANNEL: &str = "voicepaas_agents";
/// Events kept per session for resuming (at least; up to [`TRIM_EVERY`] more).
pub const KEPT_EVENTS: i64 = 500;
/// Seqs between two trims of a session's older events.
pub(crate) const TRIM_EVERY: i64 = 50;

/// An agent's live session as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredSession {
    /// `AG…`.
    pub session_sid: String,
    /// The state machine's session, JSON.
    pub session: String,
    /// The seq of its latest event.
    pub last_seq: i64,
}

/// A session's state after a change.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// The state machine's session, JSON.
    pub json: String,
    /// `agentState`, for queries.
    pub agent_state: &'static str,
    /// Its next timer, Unix ms.
    pub due_at: Option<i64>,
}

/// What a change writes.
#[derive(Debug, Clone, Default)]
pub struct SessionWrite {
    /// The session after the change; `None` ends it (or leaves the agent offline).
    pub session: Option<SessionState>,
    /// Events to append: (type, data JSON object, the leg's channel name for the
    /// `eventUrl` push — `""` for status events), in order.
    pub events: Vec<(&'static str, String, String)>,
    /// A conversation the change starts (callOut), written in the same transaction.
    pub call: Option<super::agent_calls::NewAgentCall>,
}

/// What a committed change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The session the events went to (`None`: the agent was and stays offline).
    pub session_sid: Option<String>,
    /// Its latest seq after the change.
    pub last_seq: i64,
    /// The notice sent on [`AGENT_CHANNEL`] (see [`events_notice`]), when events were written.
    pub notice: Option<String>,
}

/// Largest notice that carries its frames (PostgreSQL takes payloads under 8000 bytes).
const NOTICE_WITH_FRAMES: usize = 7000;

/// The notice that an agent's session has new events: `E`, appSid, agentNo, the session
/// and, when they fit, the frames themselves (seq, frame …), tab-separated (a frame's JSON
/// has no raw tab), so the holder of the socket need not read them back.
pub fn events_notice(app_id: &str, agent_no: &str, sid: &str, frames: &[(i64, String)]) -> String {
    let mut notice = format!("E\t{app_id}\t{agent_no}\t{sid}");
    let size: usize = frames.iter().map(|(_, f)| f.len() + 24).sum();
    if notice.len() + size <= NOTICE_WITH_FRAMES {
        for (seq, frame) in frames {
            notice.push_str(&format!("\t{seq}\t{frame}"));
        }
    }
    notice
}

/// Failed password attempts of one (agent, address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct AuthFailures {
    /// How many since `window_start`.
    pub failures: i64,
    /// When the counted run began, Unix ms.
    pub window_start: i64,
    /// The latest, Unix ms.
    pub last_at: i64,
}

/// An event as sent on the socket.
pub(crate) fn frame(kind: &str, seq: i64, data: &str) -> String {
    format!(r#"{{"type":"{kind}","seq":{seq},"data":{data}}}"#)
}

async fn notify(tx: &mut Tx<'_>, payload: &str) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(AGENT_CHANNEL)
            .bind(payload)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// The live sessions of `agents` (app_id, agent_no) with their agentState, read and held
/// until the transaction ends (PostgreSQL `FOR UPDATE`; SQLite's single writer holds
/// everything), in one statement per chunk of agents.
pub(crate) async fn lock_sessions(
    tx: &mut Tx<'_>,
    agents: &[(&str, &str)],
) -> Result<HashMap<(String, String), Held>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Locked {
        app_id: String,
        agent_no: String,
        session_sid: String,
        session: String,
        last_seq: i64,
        agent_state: String,
    }
    let rows: Vec<Vec<Val<'_>>> = agents
        .iter()
        .map(|(app_id, agent_no)| vec![Val::Text(Some(app_id)), Val::Text(Some(agent_no))])
        .collect();
    let lock = tx.for_update();
    let found: Vec<Locked> = values::fetch(
        tx,
        |v| {
            format!(
                "SELECT app_id, agent_no, session_sid, session, last_seq, agent_state FROM agent_sessions \
                 WHERE ended_at IS NULL AND (app_id, agent_no) IN (SELECT column1, column2 FROM {v} AS v){lock}"
            )
        },
        2,
        &rows,
        &[Val::Text(Some("")), Val::Text(Some(""))],
    )
    .await?;
    Ok(found
        .into_iter()
        .map(|l| {
            let session = StoredSession {
                session_sid: l.session_sid,
                session: l.session,
                last_seq: l.last_seq,
            };
            ((l.app_id, l.agent_no), (session, l.agent_state))
        })
        .collect())
}

/// Deletes the events of session `sid` up to seq `upto` (kept: the last [`KEPT_EVENTS`]).
pub(crate) async fn trim_events(tx: &mut Tx<'_>, sid: &str, upto: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| sqlx::query(
        "DELETE FROM agent_events WHERE session_sid = $1 AND seq <= $2"
    )
    .bind(sid)
    .bind(upto)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

impl Store {
    /// The live session of an agent, if it is logged in.
    pub async fn live_session(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT session_sid, session, last_seq FROM agent_sessions WHERE app_id = $1 AND agent_no = $2 AND ended_at IS NULL"
        )
        .bind(app_id)
        .bind(agent_no)
        .fetch_optional(p)
        .await
        })?)
    }

    /// Changes an agent's session: `decide` sees the live session (or `None`) and says
    /// what to write (`None`: nothing, the change is refused); a new session gets
    /// `new_sid`. Changes arriving together are committed together, each under its
    /// session's lock; concurrent first logins on PostgreSQL meet at the unique index and
    /// the loser decides again.
    pub async fn change_session(
        &self,
        app_id: &str,
        agent_no: &str,
        new_sid: &str,
        decide: Decide,
    ) -> Result<Outcome, StoreError> {
        self.sessions
            .change(app_id, agent_no, new_sid, decide)
            .await
    }

    /// Sends `payload` on [`AGENT_CHANNEL`] (PostgreSQL; SQLite has one process).
    pub async fn notify_agents(&self, payload: &str) -> Result<(), StoreError> {
        if let Some(pool) = self.postgres_pool() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(AGENT_CHANNEL)
                .bind(payload)
                .execute(&pool)
                .await?;
        }
        Ok(())
    }

    /// Events of session `sid` after seq `after`, in order, at most `limit`: (seq, frame).
    pub async fn session_events(
        &self,
        sid: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT seq, frame FROM agent_events WHERE session_sid = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )
        .bind(sid)
        .bind(after)
        .bind(limit)
        .fetch_all(p)
        .await
        })?)
    }

    /// The oldest seq still kept of session `sid`.
    pub async fn oldest_kept_seq(&self, sid: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT MIN(seq) FROM agent_events WHERE session_sid = $1"
        )
        .bind(sid)
        .fetch_one(p)
        .await)?)
    }

    /// Attaches socket `socket_id` (held by process `holder`) to an agent, replacing any
    /// other; tells the other's holder on PostgreSQL with `notice`.
    pub async fn attach_socket(
        &self,
        app_id: &str,
        agent_no: &str,
        socket_id: &str,
        holder: &str,
        notice: &str,
    ) -> Result<(), StoreError> {
        const UPSERT: &str = "INSERT INTO agent_sockets (app_id, agent_no, socket_id, holder) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, agent_no) DO UPDATE SET socket_id = excluded.socket_id, holder = excluded.holder";
        if self.postgres_pool().is_none() {
            // SQLite: one statement, no transaction around it (nobody else listens).
            on_write!(self, |p| sqlx::query(UPSERT)
                .bind(app_id)
                .bind(agent_no)
                .bind(socket_id)
                .bind(holder)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, |c| sqlx::query(UPSERT)
            .bind(app_id)
            .bind(agent_no)
            .bind(socket_id)
            .bind(holder)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        notify(&mut tx, notice).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Detaches socket `socket_id` from its agent; whether it was the attached one.
    pub async fn detach_socket(
        &self,
        app_id: &str,
        agent_no: &str,
        socket_id: &str,
    ) -> Result<bool, StoreError> {
        let done = on_write!(self, |p| sqlx::query(
            "DELETE FROM agent_sockets WHERE app_id = $1 AND agent_no = $2 AND socket_id = $3"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(socket_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The socket attached to an agent, if any.
    pub async fn attached_socket(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT socket_id FROM agent_sockets WHERE app_id = $1 AND agent_no = $2"
        )
        .bind(app_id)
        .bind(agent_no)
        .fetch_optional(p)
        .await)?)
    }

    /// Vouches for every socket process `holder` holds (one row per process).
    pub async fn touch_sockets(&self, holder: &str) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "INSERT INTO agent_holders (holder, seen_at) VALUES ($1, $2) \
             ON CONFLICT (holder) DO UPDATE SET seen_at = excluded.seen_at"
        )
        .bind(holder)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Sockets whose process has not vouched for them since `before` (it is gone),
    /// removed, with that process's row: the agents they belonged to, as (app_id, agent_no).
    /// A socket whose process never vouched counts as gone too (the process vouches before
    /// it accepts any socket).
    pub async fn take_stale_sockets(
        &self,
        before: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let stale: Vec<(String, String, String)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT s.app_id, s.agent_no, s.socket_id FROM agent_sockets s LEFT JOIN agent_holders h \
             ON h.holder = s.holder WHERE h.seen_at IS NULL OR h.seen_at < $1 LIMIT 500"
        )
        .bind(before)
        .fetch_all(p)
        .await
        })?;
        let mut agents = Vec::with_capacity(stale.len());
        for (app_id, agent_no, socket_id) in stale {
            if self.detach_socket(&app_id, &agent_no, &socket_id).await? {
                agents.push((app_id, agent_no));
            }
        }
        if agents.is_empty() {
            on_write!(self, |p| {
                sqlx::query(
                "DELETE FROM agent_holders WHERE seen_at < $1 AND holder NOT IN (SELECT holder FROM agent_sockets)"
            )
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        Ok(agents)
    }

    /// Agents whose session has a timer due by `now`, at most `limit`.
    pub async fn due_sessions(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT app_id, agent_no FROM agent_sessions WHERE ended_at IS NULL AND due_at IS NOT NULL AND due_at <= $1 \
             ORDER BY due_at LIMIT $2"
        )
        .bind(now)
        .bind(limit)
        .fetch_all(p)
        .await
        })?)
    }

    /// The earliest session timer, Unix ms.
    pub async fn next_session_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT MIN(due_at) FROM agent_sessions WHERE ended_at IS NULL AND due_at IS NOT NULL"
        )
        .fetch_one(p)
        .await)?)
    }

    /// The agent whose live token `token` is (one read: the token and the agent).
    pub async fn agent_by_token(
        &self,
        app_id: &str,
        agent_no: &str,
        token: &str,
    ) -> Result<Option<crate::store::agents::AgentRecord>, StoreError> {
        let columns = crate::store::agents::agent_columns_of("a");
        let sql = format!(
            "SELECT {columns} FROM agent_tokens t JOIN agents a ON a.app_id = t.app_id AND a.agent_no = t.agent_no \
             WHERE t.token_hash = $1 AND t.app_id = $2 AND t.agent_no = $3 AND t.expires_at > $4"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(self.hasher.hash(token))
            .bind(app_id)
            .bind(agent_no)
            .bind(now_ms())
            .fetch_optional(p)
            .await)?)
    }

    /// Failed password attempts of (agent, address), if any.
    pub async fn auth_failures(
        &self,
        app_id: &str,
        agent_no: &str,
        address: &str,
    ) -> Result<Option<AuthFailures>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT failures, window_start, last_at FROM agent_auth_failures WHERE app_id = $1 AND agent_no = $2 AND address = $3"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(address)
        .fetch_optional(p)
        .await
        })?)
    }

    /// Records the failed attempts of (agent, address) as `failures`.
    pub async fn set_auth_failures(
        &self,
        app_id: &str,
        agent_no: &str,
        address: &str,
        failures: AuthFailures,
    ) -> Result<(), StoreError> {
        on_write!(self, |p| {
            sqlx::query(
            "INSERT INTO agent_auth_failures (app_id, agent_no, address, failures, window_start, last_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_id, agent_no, address) DO UPDATE SET \
             failures = excluded.failures, window_start = excluded.window_start, last_at = excluded.last_at"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(address)
        .bind(failures.failures)
        .bind(failures.window_start)
        .bind(failures.last_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Forgets the failed attempts of (agent, address) after a success.
    pub async fn clear_auth_failures(
        &self,
        app_id: &str,
        agent_no: &str,
        address: &str,
    ) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "DELETE FROM agent_auth_failures WHERE app_id = $1 AND agent_no = $2 AND address = $3"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(address)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
