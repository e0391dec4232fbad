//! Agent events into the outbox for the applications' `eventUrl` (agents' contract §5):
//! each ordering key numbers its events from 1 in the transaction that writes them (one
//! upsert per batch), and the rows go out through the webhook dispatcher like any other
//! callback (signed, retried, in order per key).

use std::collections::{BTreeMap, HashMap};

use crate::agents::push::{EventPush, PushTarget, Ready};
use crate::domain::cti::EventFormat;

use super::Tx;
use super::journal::{OutboxRow, host_of, new_webhook_id};
use super::values::{self, Val};

/// An application's push settings as read in a batch.
#[derive(sqlx::FromRow)]
struct TargetRow {
    app_id: String,
    account_sid: String,
    cti_event_url: String,
    cti_event_format: String,
}

/// The push targets of `app_ids` that have an `eventUrl`, by application.
pub(crate) async fn push_targets(
    tx: &mut Tx<'_>,
    app_ids: &[&str],
) -> Result<HashMap<String, PushTarget>, sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = app_ids.iter().map(|id| vec![Val::Text(Some(id))]).collect();
    let found: Vec<TargetRow> = values::fetch(
        tx,
        |v| {
            format!(
                "SELECT app_id, account_sid, cti_event_url, cti_event_format FROM applications \
                 WHERE cti_event_url IS NOT NULL AND cti_event_url <> '' \
                 AND app_id IN (SELECT column1 FROM {v} AS v)"
            )
        },
        1,
        &rows,
        &[Val::Text(Some(""))],
    )
    .await?;
    Ok(found
        .into_iter()
        .map(|r| {
            let target = PushTarget {
                account_sid: r.account_sid,
                app_id: r.app_id.clone(),
                url: r.cti_event_url,
                format: EventFormat::from_word(&r.cti_event_format).unwrap_or_default(),
            };
            (r.app_id, target)
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct Numbered {
    ordering_key: String,
    last_seq: i64,
}

/// Numbers `pushes` per ordering key (after what each key sent before) and writes their
/// outbox rows, in order; whether there were any. Events their format does not send take
/// no number.
pub(crate) async fn insert_pushes(
    tx: &mut Tx<'_>,
    pushes: &[EventPush],
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sent: Vec<Ready<'_>> = pushes.iter().filter_map(EventPush::prepare).collect();
    if sent.is_empty() {
        return Ok(false);
    }
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &sent {
        *counts.entry(p.push().ordering_key.as_str()).or_default() += 1;
    }
    let rows: Vec<Vec<Val<'_>>> = counts
        .iter()
        .map(|(key, n)| {
            vec![
                Val::Text(Some(key)),
                Val::Int(Some(*n)),
                Val::Int(Some(now)),
            ]
        })
        .collect();
    // Padding rows (an empty key) insert nothing.
    let numbered: Vec<Numbered> = values::fetch(
        tx,
        |v| {
            format!(
                "INSERT INTO event_push_seqs (ordering_key, last_seq, updated_at) \
                 SELECT v.column1, v.column2, v.column3 FROM {v} AS v WHERE v.column1 <> '' \
                 ON CONFLICT (ordering_key) DO UPDATE SET last_seq = event_push_seqs.last_seq + excluded.last_seq, \
                 updated_at = excluded.updated_at \
                 RETURNING ordering_key, last_seq"
            )
        },
        3,
        &rows,
        &[Val::Text(Some("")), Val::Int(Some(0)), Val::Int(Some(0))],
    )
    .await?;
    // Each key's first number in this batch.
    let mut next: HashMap<&str, i64> = numbered
        .iter()
        .map(|n| {
            (
                n.ordering_key.as_str(),
                n.last_seq - counts.get(n.ordering_key.as_str()).copied().unwrap_or(0) + 1,
            )
        })
        .collect();
    let mut outbox = Vec::with_capacity(sent.len());
    for ready in &sent {
        let p = ready.push();
        let Some(seq) = next.get_mut(p.ordering_key.as_str()) else {
            continue;
        };
        let rendered = ready.render(*seq);
        *seq += 1;
        outbox.push(OutboxRow {
            webhook_id: rendered.fixed_id.unwrap_or_else(new_webhook_id),
            account_sid: p.target.account_sid.clone(),
            app_id: p.target.app_id.clone(),
            kind: rendered.outbox_kind,
            target_url: p.target.url.clone(),
            target_host: host_of(&p.target.url),
            body: rendered.body,
            ordering_key: p.ordering_key.clone(),
            next_attempt_at: now,
            created_at: now,
        });
    }
    let refs: Vec<&OutboxRow> = outbox.iter().collect();
    super::journal::insert_outbox_once(tx, &refs).await?;
    Ok(true)
}
