//! Agents of an application (agents' contract §3.1), their queue memberships and their
//! tokens (§1). Passwords arrive here already hashed; the sipPwd is kept as it is, since
//! the SIP directory must derive its digest from it.

use serde_json::{Value, json};

use super::{Store, StoreError, Tx, on_pool, on_tx, on_write};
use crate::cdr::format_time;
use crate::domain::agent::{AgentRole, AgentSpec, Membership, NewAgent, PhoneType};
use crate::domain::credentials::new_sip_pwd;
use crate::domain::time::now_ms;

/// One agent as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRecord {
    /// Its application.
    pub app_id: String,
    /// Its number in the application.
    pub agent_no: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string of its password.
    pub pwd_hash: String,
    /// agent or supervisor.
    #[sqlx(try_from = "String")]
    pub role: AgentRole,
    /// The device login uses when it names none.
    #[sqlx(try_from = "i64")]
    pub phone_type: PhoneType,
    /// Its phone number for phoneType 2; `""` if none.
    pub pstn_number: String,
    /// Its SIP user, unique on the platform.
    pub sip_number: String,
    /// Its SIP password.
    pub sip_pwd: String,
    /// Seconds of wrapup.
    pub wrapup_time: i64,
    /// Whether its device answers by itself.
    pub auto_answer: bool,
    /// Its caller-id pool; `""` = the application's default.
    pub caller_id_pool_sid: String,
    /// A disabled agent cannot sign in.
    pub enabled: bool,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
    /// Its queues, in the order given.
    #[sqlx(skip)]
    pub queues: Vec<Membership>,
}

impl AgentRecord {
    /// The contract's shape (the password never appears).
    pub fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        let queues: Vec<Value> = self
            .queues
            .iter()
            .map(|m| json!({"queueSid": m.queue_sid, "skillLevel": m.skill_level}))
            .collect();
        json!({
            "agentNo": self.agent_no,
            "name": self.name,
            "role": self.role.as_str(),
            "phoneType": self.phone_type.code(),
            "pstnNumber": self.pstn_number,
            "sipNumber": self.sip_number,
            "sipPwd": self.sip_pwd,
            "queues": queues,
            "wrapupTime": self.wrapup_time,
            "autoAnswer": self.auto_answer,
            "callerIdPoolSid": self.caller_id_pool_sid,
            "enabled": self.enabled,
            "createdAt": format_time(self.created_at, tz),
            "updatedAt": format_time(self.updated_at, tz),
        })
    }
}

/// Why an agent could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AgentWriteError {
    /// The agentNo is taken in this application.
    #[error("agentNo already exists in this application")]
    Exists,
    /// No such agent.
    #[error("agent not found")]
    NotFound,
    /// The given sipNumber belongs to another agent.
    #[error("sipNumber already in use")]
    SipNumberTaken,
    /// A membership names a queue the application does not have.
    #[error("queue not found")]
    QueueNotFound,
    /// `callerIdPoolSid` names a pool the application does not have.
    #[error("caller-id pool not found")]
    PoolNotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AgentWriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Filters of the agent list.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Only members of this queue.
    pub queue_sid: Option<String>,
    /// Only agents of this role.
    pub role: Option<AgentRole>,
}

/// The columns of an [`AgentRecord`] of the table aliased `alias`.
pub(crate) fn agent_columns_of(alias: &str) -> String {
    AGENT_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of an [`AgentRecord`].
const AGENT_COLUMNS: &str = "app_id, agent_no, name, pwd_hash, role, phone_type, pstn_number, sip_number, sip_pwd, \
                             wrapup_time, auto_answer, caller_id_pool_sid, enabled, created_at, updated_at";

/// Checks that every membership's queue and the pool belong to application `app_id`; on
/// PostgreSQL the rows stay share-locked until the transaction ends, so they cannot be
/// deleted under the agent that names them.
async fn check_references(
    tx: &mut Tx<'_>,
    app_id: &str,
    spec: &AgentSpec,
) -> Result<(), AgentWriteError> {
    let lock = tx.for_share();
    let well_formed = crate::domain::ids::is_well_formed;
    if let Some(pool) = spec.caller_id_pool_sid.as_deref().filter(|p| !p.is_empty())
        && !well_formed(pool, "CP")
    {
        return Err(AgentWriteError::PoolNotFound);
    }
    for m in spec.queues.iter().flatten() {
        if !super::queues::queue_in_app(tx, app_id, &m.queue_sid).await? {
            return Err(AgentWriteError::QueueNotFound);
        }
    }
    if let Some(pool) = spec.caller_id_pool_sid.as_deref().filter(|p| !p.is_empty()) {
        let sql = format!(
            "SELECT pool_sid FROM caller_id_pools WHERE app_id = $1 AND pool_sid = $2{lock}"
        );
        let found: Option<String> = on_tx!(tx, |c| sqlx::query_scalar(&sql)
            .bind(app_id)
            .bind(pool)
            .fetch_optional(c)
            .await)?;
        if found.is_none() {
            return Err(AgentWriteError::PoolNotFound);
        }
    }
    Ok(())
}

async fn replace_memberships(
    tx: &mut Tx<'_>,
    app_id: &str,
    agent_no: &str,
    queues: &[Membership],
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| sqlx::query(
        "DELETE FROM agent_queues WHERE app_id = $1 AND agent_no = $2"
    )
    .bind(app_id)
    .bind(agent_no)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    for (position, m) in queues.iter().enumerate() {
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO agent_queues (app_id, agent_no, queue_sid, skill_level, position) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(&m.queue_sid)
        .bind(m.skill_level)
        .bind(position as i64)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// The next free sipNumber after `base` (numbers once handed out are never handed out
/// again; one given by hand is stepped over).
async fn next_sip_number(tx: &mut Tx<'_>, base: u32) -> Result<String, sqlx::Error> {
    let sql = format!(
        "UPDATE sip_number_seq SET last = {}(last, $1) + 1 WHERE id = 1 RETURNING last",
        tx.greatest()
    );
    loop {
        let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(&sql)
            .bind(i64::from(base))
            .fetch_one(c)
            .await)?;
        let number = n.to_string();
        let taken: Option<String> = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT agent_no FROM agents WHERE sip_number = $1"
        )
        .bind(&number)
        .fetch_optional(c)
        .await)?;
        if taken.is_none() {
            return Ok(number);
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Some(format!(
            "{} {}",
            db.message(),
            db.constraint().unwrap_or_default()
        )),
        _ => None,
    }
}

impl Store {
    /// Creates agent `new` in application `app_id` with the password hash given.
    pub async fn create_agent(
        &self,
        app_id: &str,
        new: &NewAgent,
        pwd_hash: &str,
        sip_number_base: u32,
    ) -> Result<AgentRecord, AgentWriteError> {
        let spec = &new.spec;
        let agent_no = new.agent_no.as_str();
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT agent_no FROM agents WHERE app_id = $1 AND agent_no = $2"
        )
        .bind(app_id)
        .bind(agent_no)
        .fetch_optional(c)
        .await)?;
        if exists.is_some() {
            return Err(AgentWriteError::Exists);
        }
        check_references(&mut tx, app_id, spec).await?;
        let sip_number = match &spec.sip_number {
            Some(n) => n.as_str().to_string(),
            None => next_sip_number(&mut tx, sip_number_base).await?,
        };
        let now = now_ms();
        let inserted = on_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO agents (app_id, agent_no, name, pwd_hash, role, phone_type, pstn_number, sip_number, sip_pwd, \
             wrapup_time, auto_answer, caller_id_pool_sid, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(spec.name.as_deref().unwrap_or_default())
        .bind(pwd_hash)
        .bind(spec.role.unwrap_or_default().as_str())
        .bind(spec.phone_type.unwrap_or_default().code())
        .bind(spec.pstn_number.clone().flatten().map(|n| n.as_str().to_string()).unwrap_or_default())
        .bind(&sip_number)
        .bind(new_sip_pwd())
        .bind(spec.wrapup_time.unwrap_or(15))
        .bind(spec.auto_answer.unwrap_or(false))
        .bind(spec.caller_id_pool_sid.as_deref().unwrap_or_default())
        .bind(spec.enabled.unwrap_or(true))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        });
        if let Err(e) = inserted {
            return Err(match is_unique_violation(&e) {
                Some(what) if what.contains("sip_number") => AgentWriteError::SipNumberTaken,
                Some(_) => AgentWriteError::Exists,
                None => e.into(),
            });
        }
        replace_memberships(
            &mut tx,
            app_id,
            agent_no,
            spec.queues.as_deref().unwrap_or_default(),
        )
        .await?;
        tx.commit().await?;
        self.find_agent(app_id, agent_no)
            .await?
            .ok_or(AgentWriteError::NotFound)
    }

    /// Applies `spec` (and a new password hash, if the change sets one) to an agent.
    pub async fn update_agent(
        &self,
        app_id: &str,
        agent_no: &str,
        spec: &AgentSpec,
        pwd_hash: Option<&str>,
    ) -> Result<AgentRecord, AgentWriteError> {
        let mut tx = self.begin_write().await?;
        check_references(&mut tx, app_id, spec).await?;
        let done = on_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE agents SET name = COALESCE($3, name), pwd_hash = COALESCE($4, pwd_hash), role = COALESCE($5, role), \
             phone_type = COALESCE($6, phone_type), pstn_number = COALESCE($7, pstn_number), \
             sip_pwd = COALESCE($8, sip_pwd), wrapup_time = COALESCE($9, wrapup_time), \
             auto_answer = COALESCE($10, auto_answer), caller_id_pool_sid = COALESCE($11, caller_id_pool_sid), \
             enabled = COALESCE($12, enabled), updated_at = $13 WHERE app_id = $1 AND agent_no = $2"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(spec.name.as_deref())
        .bind(pwd_hash)
        .bind(spec.role.map(AgentRole::as_str))
        .bind(spec.phone_type.map(PhoneType::code))
        .bind(spec.pstn_number.as_ref().map(|n| n.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default()))
        .bind(spec.rotate_sip_pwd.then(new_sip_pwd))
        .bind(spec.wrapup_time)
        .bind(spec.auto_answer)
        .bind(spec.caller_id_pool_sid.as_deref())
        .bind(spec.enabled)
        .bind(now_ms())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Err(AgentWriteError::NotFound);
        }
        if let Some(queues) = &spec.queues {
            replace_memberships(&mut tx, app_id, agent_no, queues).await?;
        }
        tx.commit().await?;
        self.find_agent(app_id, agent_no)
            .await?
            .ok_or(AgentWriteError::NotFound)
    }

    /// Agent `agent_no` of application `app_id` without its memberships (one read, for
    /// sessions and commands).
    pub async fn find_agent_alone(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE app_id = $1 AND agent_no = $2");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(agent_no)
            .fetch_optional(p)
            .await)?)
    }

    /// The agent whose device is `sip_number` (sipNumbers are unique across applications).
    pub async fn find_agent_by_sip_number(
        &self,
        sip_number: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE sip_number = $1 LIMIT 1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(sip_number)
            .fetch_optional(p)
            .await)?)
    }

    /// Agent `agent_no` of application `app_id`, with its memberships.
    pub async fn find_agent(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let Some(mut agent) = self.find_agent_alone(app_id, agent_no).await? else {
            return Ok(None);
        };
        agent.queues = self
            .memberships(app_id, agent_no, agent_no)
            .await?
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        Ok(Some(agent))
    }

    /// Memberships of the agents numbered `first..=last`, by agent then given order.
    async fn memberships(
        &self,
        app_id: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, Membership)>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT agent_no, queue_sid, skill_level FROM agent_queues WHERE app_id = $1 AND agent_no >= $2 \
             AND agent_no <= $3 ORDER BY agent_no, position"
        )
        .bind(app_id)
        .bind(first)
        .bind(last)
        .fetch_all(p)
        .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(agent_no, queue_sid, skill_level)| {
                (
                    agent_no,
                    Membership {
                        queue_sid,
                        skill_level,
                    },
                )
            })
            .collect())
    }

    /// Up to `limit` agents of `app_id` after agentNo `after`, by agentNo.
    pub async fn list_agents(
        &self,
        app_id: &str,
        filter: &AgentFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let columns = agent_columns_of("a");
        let sql = format!(
            "SELECT {columns} FROM agents a WHERE a.app_id = $1 AND a.agent_no > $2 \
             AND ($3 IS NULL OR a.role = $3) \
             AND ($4 IS NULL OR EXISTS (SELECT 1 FROM agent_queues q WHERE q.app_id = a.app_id \
             AND q.agent_no = a.agent_no AND q.queue_sid = $4)) ORDER BY a.agent_no LIMIT $5"
        );
        let mut agents: Vec<AgentRecord> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(after.unwrap_or(""))
            .bind(filter.role.map(AgentRole::as_str))
            .bind(filter.queue_sid.as_deref())
            .bind(limit)
            .fetch_all(p)
            .await)?;
        if let (Some(first), Some(last)) = (agents.first(), agents.last()) {
            let mut by_agent: std::collections::HashMap<String, Vec<Membership>> =
                Default::default();
            for (agent_no, m) in self
                .memberships(app_id, &first.agent_no, &last.agent_no)
                .await?
            {
                by_agent.entry(agent_no).or_default().push(m);
            }
            for agent in &mut agents {
                agent.queues = by_agent.remove(&agent.agent_no).unwrap_or_default();
            }
        }
        Ok(agents)
    }

    /// Removes an agent with its memberships and tokens; whether it existed.
    pub async fn delete_agent(&self, app_id: &str, agent_no: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM agent_queues WHERE app_id = $1 AND agent_no = $2",
            "DELETE FROM agent_tokens WHERE app_id = $1 AND agent_no = $2",
        ] {
            on_tx!(&mut tx, |c| sqlx::query(sql)
                .bind(app_id)
                .bind(agent_no)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        let done = on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM agents WHERE app_id = $1 AND agent_no = $2"
        )
        .bind(app_id)
        .bind(agent_no)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Stores a new token of an agent, as `token`'s keyed hash, valid until `expires_at`
    /// (Unix ms); whether the agent exists.
    pub async fn mint_agent_token(
        &self,
        app_id: &str,
        agent_no: &str,
        token: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = on_write!(self, |p| sqlx::query(
            "INSERT INTO agent_tokens (token_hash, app_id, agent_no, expires_at, created_at) \
             SELECT $1, app_id, agent_no, $4, $5 FROM agents WHERE app_id = $2 AND agent_no = $3"
        )
        .bind(self.hasher.hash(token))
        .bind(app_id)
        .bind(agent_no)
        .bind(expires_at)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Revokes every token of an agent.
    pub async fn revoke_agent_tokens(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "DELETE FROM agent_tokens WHERE app_id = $1 AND agent_no = $2"
        )
        .bind(app_id)
        .bind(agent_no)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
