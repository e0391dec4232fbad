//! cancelCall and addCall, wherever the conversation is driven. This process's own
//! conversations get the order directly. Otherwise the command is written to the
//! database, the replicas are told (PostgreSQL `NOTIFY`), and the replica driving the
//! conversation takes it, carries it out and writes the verdict, which the API waits for.
//! A command no replica has taken yet (the conversation's process died) is carried out by
//! whichever process takes the conversation over. SQLite has one process: its remote path
//! only serves conversations being taken over.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Ctx;
use super::engine::{Command, ENDED, Input, Refusal};
use super::flows::orders::AgentOrder;
use crate::domain::click2call::AddCall;
use crate::store::StoreError;
use crate::store::conversations::ConversationState;

/// How long the API waits for the verdict of a command sent to another replica.
const VERDICT_WAIT: Duration = Duration::from_secs(5);
/// How often it looks.
const VERDICT_POLL: Duration = Duration::from_millis(20);
/// How often the replicas are told again while no verdict came.
const RENOTIFY: Duration = Duration::from_millis(500);
/// The notification channel replicas listen on (payload: the conversation id).
pub const CHANNEL: &str = "voicepaas_commands";

/// Why a conversation refused a command.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not allowed in the current state (10007).
    #[error("{0}")]
    State(String),
    /// The conversation's media server (or its replica) could not do it (10005).
    #[error("{0}")]
    NoMedia(String),
    /// The database failed; nothing was done (HTTP 503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] StoreError),
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::State(why) => Refused::State(why),
            Refusal::NoMedia => Refused::NoMedia("no media server available".into()),
        }
    }
}

/// A command as written for another replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Wire {
    Cancel,
    AddCall(AddCall),
    Agent(String, AgentOrder),
}

/// cancelCall.
pub(super) async fn cancel(ctx: &Arc<Ctx>, id: &str) -> Result<(), Refused> {
    if let Some(verdict) = ctx.order(id, Command::Cancel) {
        return answered(verdict).await;
    }
    if ctx.lease.valid()
        && let Some(call) = ctx.store.claim_queued_conversation(id, ctx.epoch()).await?
    {
        // Never dialled: the conversation ends at once, with its caller leg canceled.
        let built = ctx.fresh(call, 0).await;
        let verdict = ctx.launch(built, vec![Input::Start], Some(Command::Cancel));
        return match verdict {
            Some(v) => answered(v).await,
            None => Ok(()),
        };
    }
    if ended(ctx, id).await? {
        return Err(Refused::State(ENDED.into()));
    }
    // Written down, it is carried out by whoever drives the conversation now or later:
    // answered as accepted even if no verdict comes in time.
    match remote(ctx, id, &Wire::Cancel).await? {
        Some(verdict) => verdict.map_err(Refused::from),
        None => Ok(()),
    }
}

/// addCall.
pub(super) async fn add_call(ctx: &Arc<Ctx>, id: &str, add: AddCall) -> Result<(), Refused> {
    if let Some(app) = ctx.app_of(id) {
        let party = ctx.resolve_add(&app, &add).await;
        if let Some(verdict) = ctx.order(id, Command::AddCall(Box::new(party))) {
            return answered(verdict).await;
        }
    }
    if ended(ctx, id).await? {
        return Err(Refused::State(ENDED.into()));
    }
    match remote(ctx, id, &Wire::AddCall(add)).await? {
        Some(verdict) => verdict.map_err(Refused::from),
        None => Err(Refused::NoMedia(
            "the replica driving the conversation did not answer in time; nothing was done".into(),
        )),
    }
}

/// An agent's command on its conversation.
pub(super) async fn agent_order(
    ctx: &Arc<Ctx>,
    id: &str,
    agent_no: &str,
    order: AgentOrder,
) -> Result<(), Refused> {
    if let Some(verdict) = ctx.order(id, Command::Agent(agent_no.to_string(), order.clone())) {
        return answered(verdict).await;
    }
    if ended(ctx, id).await? {
        return Err(Refused::State(ENDED.into()));
    }
    let hangup = matches!(order, AgentOrder::Hangup | AgentOrder::ForceHangup);
    match remote(ctx, id, &Wire::Agent(agent_no.to_string(), order)).await? {
        Some(verdict) => verdict.map_err(Refused::from),
        // Written down, a hangup is carried out by whoever drives the call.
        None if hangup => Ok(()),
        None => Err(Refused::NoMedia(
            "the replica driving the conversation did not answer in time".into(),
        )),
    }
}

async fn answered(
    verdict: tokio::sync::oneshot::Receiver<Result<(), Refusal>>,
) -> Result<(), Refused> {
    match tokio::time::timeout(VERDICT_WAIT * 2, verdict).await {
        Ok(Ok(verdict)) => verdict.map_err(Refused::from),
        // The driver stopped (its call ended, or this process lost its lease).
        Ok(Err(_)) => Err(Refused::State(ENDED.into())),
        Err(_) => Err(Refused::NoMedia(
            "the conversation did not answer in time".into(),
        )),
    }
}

async fn ended(ctx: &Ctx, id: &str) -> Result<bool, StoreError> {
    Ok(matches!(
        ctx.store.conversation_state_of(id).await?,
        None | Some(ConversationState::Ended)
    ))
}

/// Writes the command for the replica driving conversation `id` and waits for its
/// verdict; `None` when none came in time (an addCall is then withdrawn if nobody took it).
async fn remote(
    ctx: &Arc<Ctx>,
    id: &str,
    command: &Wire,
) -> Result<Option<Result<(), Refusal>>, StoreError> {
    let json = serde_json::to_string(command).unwrap_or_default();
    let cmd = ctx.store.queue_command(id, &json).await?;
    let mut deadline = Instant::now() + VERDICT_WAIT;
    let mut told = Instant::now();
    let mut delivered = false;
    ctx.store.notify_command(CHANNEL, id).await?;
    loop {
        if !delivered && ctx.drives(id) {
            // Its driver started here after the command was looked for.
            deliver(ctx, id).await;
            delivered = true;
        } else if told.elapsed() >= RENOTIFY {
            // A replica that started driving it just after the last notice.
            ctx.store.notify_command(CHANNEL, id).await?;
            told = Instant::now();
        }
        if let Some(verdict) = ctx.store.command_verdict(cmd).await? {
            let verdict = serde_json::from_str(&verdict).unwrap_or_else(|_| Err(Refusal::ended()));
            return Ok(Some(verdict));
        }
        if Instant::now() >= deadline {
            match command {
                // A hangup taken late still ends the call: answered as accepted.
                Wire::Cancel | Wire::Agent(_, AgentOrder::Hangup | AgentOrder::ForceHangup) => {
                    return Ok(None);
                }
                Wire::Agent(..) if ctx.store.withdraw_command(cmd).await? => return Ok(None),
                Wire::Agent(..) => deadline += VERDICT_WAIT,
                Wire::AddCall(_) if ctx.store.withdraw_command(cmd).await? => return Ok(None),
                // Taken: its verdict is on its way.
                Wire::AddCall(_) => deadline += VERDICT_WAIT,
            }
        }
        tokio::time::sleep(VERDICT_POLL).await;
    }
}

/// Carries out the commands waiting for conversation `id`, which this process drives.
pub(super) async fn deliver(ctx: &Arc<Ctx>, id: &str) {
    let commands = match ctx.store.take_commands(id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(conversation = id, error = %e, "could not read its commands");
            return;
        }
    };
    for (cmd, json) in commands {
        let command = match serde_json::from_str::<Wire>(&json) {
            Ok(Wire::Cancel) => Command::Cancel,
            Ok(Wire::Agent(agent_no, order)) => Command::Agent(agent_no, order),
            Ok(Wire::AddCall(add)) => match ctx.app_of(id) {
                Some(app) => Command::AddCall(Box::new(ctx.resolve_add(&app, &add).await)),
                None => Command::Cancel,
            },
            Err(e) => {
                tracing::error!(conversation = id, error = %e, "unreadable command skipped");
                settle(ctx, cmd, &Err(Refusal::State("unreadable command".into()))).await;
                continue;
            }
        };
        let verdict = match ctx.order(id, command) {
            Some(verdict) => verdict.await.ok(),
            None => None,
        };
        match verdict {
            Some(verdict) => settle(ctx, cmd, &verdict).await,
            // Not driven here after all: left for whoever drives it.
            None => {
                if let Err(e) = ctx.store.requeue_command(cmd).await {
                    tracing::warn!(error = %e, "could not give a command back");
                }
            }
        }
    }
}

async fn settle(ctx: &Ctx, cmd: i64, verdict: &Result<(), Refusal>) {
    let json = serde_json::to_string(verdict).unwrap_or_default();
    if let Err(e) = ctx.store.settle_command(cmd, &json).await {
        tracing::warn!(error = %e, "could not write a command's verdict");
    }
}

/// Delivers the commands of every conversation this process drives that has some waiting
/// (notifications can be missed).
pub(super) async fn sweep(ctx: &Arc<Ctx>) {
    let waiting = match ctx.store.conversations_with_commands().await {
        Ok(w) => w,
        Err(_) => return,
    };
    for id in waiting.into_iter().filter(|id| ctx.drives(id)) {
        let ctx = ctx.clone();
        tokio::spawn(async move { deliver(&ctx, &id).await });
    }
}

/// Listens for commands written by other replicas (PostgreSQL only).
pub(super) fn listen(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        loop {
            let mut listener = match ctx.store.listen(CHANNEL).await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for commands; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                match listener.recv().await {
                    Ok(note) => {
                        let id = note.payload().to_string();
                        if ctx.drives(&id) {
                            let ctx = ctx.clone();
                            tokio::spawn(async move { deliver(&ctx, &id).await });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "command listener lost; reconnecting");
                        break;
                    }
                }
            }
        }
    });
}
