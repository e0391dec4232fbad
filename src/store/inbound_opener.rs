//! Inbound claims committed in groups (as the journal does for calls): the DID channels
//! that park together are claimed, and the conversations and user legs of the routed ones
//! opened, in one transaction with a few multi-row statements, instead of a transaction
//! each. A batch
//! that fails is retried one claim at a time, so one bad row cannot sink the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};

use super::accounts::count_live;
use super::inbound::NewInbound;
use super::values::{self, Val};
use super::{Pool, StoreError, Tx, WriteGate, WriterQueue};
use crate::domain::time::now_ms;
use crate::media::pool::ParkedCall;

/// Most claims committed in one transaction.
const MAX_BATCH: usize = 128;
/// Claims waiting for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 4096;

/// One parked channel to claim (and open, if routed).
pub(crate) struct Opening {
    /// The channel.
    pub call: ParkedCall,
    /// The claiming process.
    pub claimed_by: String,
    /// Its conversation and user leg (`None`: claimed to be refused).
    pub new: Option<NewInbound>,
}

type Job = (Opening, oneshot::Sender<Result<bool, StoreError>>);

/// The queue claims are submitted to.
#[derive(Clone)]
pub(crate) struct InboundOpener {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for InboundOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboundOpener")
    }
}

impl InboundOpener {
    /// Starts the writer task(s).
    pub(crate) fn start(pool: Pool, gate: WriteGate) -> Self {
        let tx = super::start_writers(&pool, QUEUE_DEPTH, |rx| {
            writer(pool.clone(), gate.clone(), rx)
        });
        Self { tx }
    }

    /// Claims (and opens) `opening`: `true` for exactly one claimant of a channel.
    pub(crate) async fn open(&self, opening: Opening) -> Result<bool, StoreError> {
        super::submit(&self.tx, |reply| (opening, reply)).await
    }
}

async fn writer(pool: Pool, gate: WriteGate, rx: WriterQueue<Job>) {
    loop {
        let Some(batch) = super::next_batch(&mut *rx.lock().await, MAX_BATCH).await else {
            return;
        };
        let (openings, replies): (Vec<Opening>, Vec<_>) = batch.into_iter().unzip();
        let all: Vec<&Opening> = openings.iter().collect();
        match write(&pool, &gate, &all).await {
            Ok(claimed) => {
                for (reply, claimed) in replies.into_iter().zip(claimed) {
                    let _ = reply.send(Ok(claimed));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, batch = openings.len(), "inbound claims failed together; retrying one by one");
                for (opening, reply) in openings.iter().zip(replies) {
                    let alone = write(&pool, &gate, &[opening]).await;
                    let _ = reply.send(alone.map(|c| c[0]).map_err(StoreError::Db));
                }
            }
        }
    }
}

/// Claims and opens `openings` in one transaction: whether each was claimed (a channel
/// another replica claimed, or named twice in the batch, is claimed once).
async fn write(
    pool: &Pool,
    gate: &WriteGate,
    openings: &[&Opening],
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = gate.begin(pool).await?;
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, o) in openings.iter().enumerate() {
        first.entry(o.call.uuid.as_str()).or_insert(i);
    }
    let now = now_ms();
    let fresh: Vec<&Opening> = openings
        .iter()
        .enumerate()
        .filter(|(i, o)| first[o.call.uuid.as_str()] == *i)
        .map(|(_, o)| *o)
        .collect();
    let rows: Vec<Vec<Val<'_>>> = fresh
        .iter()
        .map(|o| {
            vec![
                Val::Text(Some(&o.call.uuid)),
                Val::Text(Some(&o.call.node)),
                Val::Text(Some(&o.call.did)),
                Val::Text(Some(&o.call.caller)),
                Val::Text(Some(&o.claimed_by)),
                Val::Int(Some(now)),
            ]
        })
        .collect();
    let won: HashSet<String> = values::run(
        &mut tx,
        |_, v| {
            format!(
                "INSERT INTO inbound_claims (channel_uuid, node, did, caller, claimed_by, claimed_at) {} \
                 ON CONFLICT (channel_uuid) DO NOTHING RETURNING channel_uuid",
                &v[1..v.len() - 1]
            )
        },
        &[],
        6,
        &rows,
        None,
        true,
    )
    .await?
    .into_iter()
    .collect();
    let opened: Vec<(&ParkedCall, &NewInbound)> = fresh
        .into_iter()
        .filter(|o| won.contains(&o.call.uuid))
        .filter_map(|o| Some((&o.call, o.new.as_ref()?)))
        .collect();
    open_conversations(&mut tx, &opened).await?;
    tx.commit().await?;
    Ok(openings
        .iter()
        .enumerate()
        .map(|(i, o)| first[o.call.uuid.as_str()] == i && won.contains(&o.call.uuid))
        .collect())
}

/// The claimed channels' conversations and user legs; each counts toward its account's
/// live calls (a dial-in is never refused for them).
async fn open_conversations(
    tx: &mut Tx<'_>,
    opened: &[(&ParkedCall, &NewInbound)],
) -> Result<(), sqlx::Error> {
    if opened.is_empty() {
        return Ok(());
    }
    let conversations: Vec<Vec<Val<'_>>> = opened
        .iter()
        .map(|(_, n)| {
            vec![
                Val::Text(Some(&n.conversation_id)),
                Val::Text(Some(&n.request_id)),
                Val::Text(Some(&n.account_sid)),
                Val::Text(Some(&n.app_id)),
                Val::Text(Some("dialing")),
                Val::Int(Some(n.created_at)),
            ]
        })
        .collect();
    values::insert(
        tx,
        "conversations (id, request_id, account_sid, app_id, state, created_at)",
        6,
        &conversations,
    )
    .await?;
    let legs: Vec<Vec<Val<'_>>> = opened
        .iter()
        .map(|(call, n)| {
            vec![
                Val::Text(Some(&n.leg_id)),
                Val::Text(Some(&n.request_id)),
                Val::Text(Some(&n.account_sid)),
                Val::Text(Some(&n.app_id)),
                Val::Text(Some(crate::domain::CallKind::Agent.as_str())),
                Val::Text(Some(&n.conversation_id)),
                Val::Int(Some(0)),
                Val::Text(Some("initiated")),
                Val::Text(Some(&call.did)),
                Val::Text(Some(&call.caller)),
                Val::Text(Some(&n.params)),
                Val::Int(Some(n.epoch)),
                Val::Text(Some(&call.node)),
                Val::Int(Some(n.created_at)),
                Val::Int(Some(n.created_at)),
                Val::Int(Some(n.created_at)),
                Val::Text(Some(&call.uuid)),
            ]
        })
        .collect();
    values::insert(
        tx,
        "calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, \
         from_number, params, epoch, node, start_at, created_at, updated_at, channel_uuid)",
        17,
        &legs,
    )
    .await?;
    let arrivals: Vec<crate::agents::push::EventPush> = opened
        .iter()
        .filter_map(|(_, n)| n.arrival.clone())
        .collect();
    if let Some(first) = opened.first() {
        super::event_push::insert_pushes(tx, &arrivals, first.1.created_at).await?;
    }
    let mut per_account: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, n) in opened {
        *per_account.entry(n.account_sid.as_str()).or_default() += 1;
    }
    count_live(tx, &per_account).await
}
