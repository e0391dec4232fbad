//! `voicepaas agent …`: agents of an application, on the database directly, with the same
//! rules as the agent API (agents' contract §3.1, §1 tokens).

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::print;
use crate::agents::Agents;
use crate::agents::machine::{Input, LogoutCause};
use crate::config::Settings;
use crate::domain::Fields;
use crate::domain::IdGenerator;
use crate::domain::agent::{AgentSpec, NewAgent};
use crate::domain::credentials::{hash_password, new_agent_token};
use crate::domain::time::now_ms;
use crate::store::Store;
use crate::store::agents::AgentFilter;

/// The agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent; prints it (with its sipNumber and sipPwd).
    Create {
        #[command(flatten)]
        target: Target,
        /// The password (6-64 characters).
        #[arg(long)]
        pwd: String,
        #[command(flatten)]
        fields: AgentFlags,
    },
    /// List the agents of an application.
    List {
        #[command(flatten)]
        app: AppTarget,
    },
    /// Change an agent's fields; `--enabled false` also logs it out.
    Update {
        #[command(flatten)]
        target: Target,
        /// A new password.
        #[arg(long)]
        pwd: Option<String>,
        /// Hand out a new sipPwd.
        #[arg(long)]
        rotate_sip_pwd: bool,
        /// Enable or disable the agent.
        #[arg(long)]
        enabled: Option<bool>,
        #[command(flatten)]
        fields: AgentFlags,
    },
    /// Delete an agent (refused while it is logged in).
    Delete {
        #[command(flatten)]
        target: Target,
    },
    /// Mint a token for the agent's socket; prints it (shown only here).
    Token {
        #[command(flatten)]
        target: Target,
        /// Seconds it is valid (60-86400).
        #[arg(long, default_value_t = 600)]
        ttl: i64,
    },
}

/// The application: owner account and appId.
#[derive(Debug, Args)]
pub struct AppTarget {
    /// Owner AccountSid.
    #[arg(long)]
    account: String,
    /// The appId.
    #[arg(long)]
    app: String,
}

/// One agent of an application.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    app: AppTarget,
    /// The agentNo.
    #[arg(long)]
    agent_no: String,
}

/// Agent fields as flags.
#[derive(Debug, Args)]
pub struct AgentFlags {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// agent or supervisor.
    #[arg(long)]
    role: Option<String>,
    /// 1 SIP phone, 2 ordinary phone, 3 WebPhone.
    #[arg(long)]
    phone_type: Option<i64>,
    /// The ordinary phone's number ("" clears).
    #[arg(long)]
    pstn_number: Option<String>,
    /// Seconds of wrapup (0-3600).
    #[arg(long)]
    wrapup_time: Option<i64>,
}

impl AgentFlags {
    fn into_body(self, body: &mut Map<String, Value>) {
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                body.insert(key.to_string(), v);
            }
        };
        set("name", self.name.map(Value::from));
        set("role", self.role.map(Value::from));
        set("phoneType", self.phone_type.map(Value::from));
        set("pstnNumber", self.pstn_number.map(Value::from));
        set("wrapupTime", self.wrapup_time.map(Value::from));
    }
}

/// Why an agent command failed; its text is what the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum AgentCliError {
    /// The application is not the account's.
    #[error("application {app} not found in account {account}")]
    AppNotFound {
        /// The appId given.
        app: String,
        /// The AccountSid given.
        account: String,
    },
    /// No such agent.
    #[error("agent {0} not found")]
    AgentNotFound(String),
    /// The agent is logged in (it cannot be deleted).
    #[error("agent {0} is logged in (log it out or disable it first)")]
    LoggedIn(String),
    /// A value breaks the agent API's rules.
    #[error("{0}")]
    Param(#[from] crate::domain::ParamError),
    /// The password could not be hashed.
    #[error("pwd cannot be stored: {0}")]
    Password(crate::domain::credentials::PasswordHashError),
    /// The agent could not be written (exists, sipNumber taken, unknown queue or pool).
    #[error(transparent)]
    Write(#[from] crate::store::agents::AgentWriteError),
    /// The logout of a disabled agent failed.
    #[error(transparent)]
    Logout(#[from] crate::agents::error::CommandError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

async fn app_of(store: &Store, target: &AppTarget) -> Result<String, AgentCliError> {
    let app = store.find_app(&target.account, &target.app).await?;
    app.map(|app| app.app_id.clone())
        .ok_or_else(|| AgentCliError::AppNotFound {
            app: target.app.clone(),
            account: target.account.clone(),
        })
}

/// Runs an agent command.
pub async fn run(
    store: &Store,
    settings: &Settings,
    command: AgentCommand,
) -> Result<(), AgentCliError> {
    let tz = settings.timezone;
    match command {
        AgentCommand::Create {
            target,
            pwd,
            fields,
        } => {
            let app_id = app_of(store, &target.app).await?;
            let mut body = Map::new();
            body.insert("agentNo".into(), target.agent_no.into());
            body.insert("pwd".into(), pwd.into());
            fields.into_body(&mut body);
            let new = NewAgent::parse(Fields(&body))?;
            let hash = hash_password(new.spec.pwd.as_deref().unwrap_or_default())
                .map_err(AgentCliError::Password)?;
            let agent = store
                .create_agent(&app_id, &new, &hash, settings.sip_number_base)
                .await?;
            print(&agent.to_json(tz));
        }
        AgentCommand::List { app } => {
            let app_id = app_of(store, &app).await?;
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_agents(&app_id, &AgentFilter::default(), after.as_deref(), 1000)
                    .await?;
                let done = page.len() < 1000;
                after = page.last().map(|a| a.agent_no.clone());
                all.extend(page.iter().map(|a| a.to_json(tz)));
                if done {
                    break;
                }
            }
            print(&json!({"agents": all}));
        }
        AgentCommand::Update {
            target,
            pwd,
            rotate_sip_pwd,
            enabled,
            fields,
        } => {
            let app_id = app_of(store, &target.app).await?;
            let mut body = Map::new();
            fields.into_body(&mut body);
            if let Some(pwd) = pwd {
                body.insert("pwd".into(), pwd.into());
            }
            if rotate_sip_pwd {
                body.insert("rotateSipPwd".into(), true.into());
            }
            if let Some(enabled) = enabled {
                body.insert("enabled".into(), enabled.into());
            }
            let spec = AgentSpec::parse_change(Fields(&body), &target.agent_no)?;
            let hash = spec
                .pwd
                .as_deref()
                .map(hash_password)
                .transpose()
                .map_err(AgentCliError::Password)?;
            let agent = store
                .update_agent(&app_id, &target.agent_no, &spec, hash.as_deref())
                .await?;
            if enabled == Some(false) {
                let agents = Agents::start(
                    store.clone(),
                    settings.clone(),
                    std::sync::Arc::new(IdGenerator::new(settings.node_id)),
                    None,
                )
                .await;
                let logged_out = agents
                    .change(&app_id, &target.agent_no, move |current| {
                        let logout = Input::Logout {
                            cause: LogoutCause::Disabled,
                            forced_by: String::new(),
                        };
                        Ok((current.is_some().then_some(logout), ()))
                    })
                    .await;
                agents.stop();
                logged_out?;
            }
            print(&agent.to_json(tz));
        }
        AgentCommand::Delete { target } => {
            let app_id = app_of(store, &target.app).await?;
            if store
                .live_session(&app_id, &target.agent_no)
                .await?
                .is_some()
            {
                return Err(AgentCliError::LoggedIn(target.agent_no));
            }
            if !store.delete_agent(&app_id, &target.agent_no).await? {
                return Err(AgentCliError::AgentNotFound(target.agent_no));
            }
            print(&json!({"deleted": target.agent_no}));
        }
        AgentCommand::Token { target, ttl } => {
            let app_id = app_of(store, &target.app).await?;
            if !(60..=86_400).contains(&ttl) {
                return Err(crate::domain::ParamError::new("ttl must be 60-86400").into());
            }
            let token = new_agent_token();
            let expires_at = now_ms() + ttl * 1000;
            if !store
                .mint_agent_token(&app_id, &target.agent_no, &token, expires_at)
                .await?
            {
                return Err(AgentCliError::AgentNotFound(target.agent_no));
            }
            print(&json!({"token": token, "expiresAt": crate::cdr::format_time(expires_at, tz)}));
        }
    }
    Ok(())
}
