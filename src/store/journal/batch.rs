//! One batch of journal writes in one transaction, in a few statements whatever its size:
//! the fences of the conversations written in one, the conversations ended in one, the new
//! legs in one, every leg state change in one, every leg end in one, the CDRs, callbacks
//! and agent sessions' rows in one each ([`values`]). A call write whose
//! fence no longer holds (another process took the call over) is skipped whole.

use std::collections::{BTreeMap, HashSet};

use super::{
    CallWrite, CdrRow, ConversationEnd, Entry, Job, LegFinal, LegState, NewLeg, OutboxRow,
    WaitingRow,
};
use crate::agents::push::EventPush;
use crate::domain::time::now_ms;
use crate::store::accounts::count_live;
use crate::store::deliveries::{Attempt, Delivery, Outcome, write_attempts};
use crate::store::session_writer::{self, Change, apply_changes};
use crate::store::text;
use crate::store::values::{self, Val};
use crate::store::{Pool, Tx, WriteGate};

/// What a batch did: for each job whether it was applied, and whether the outbox has
/// something new to send.
pub(super) struct Written {
    pub applied: Vec<bool>,
    pub callbacks: bool,
    /// Notices of agent changes, for this process's sockets.
    pub notices: Vec<String>,
}

/// A leg's state changes in a batch, merged (the latest state, every time given).
struct StateChange<'a> {
    id: &'a str,
    epoch: i64,
    state: LegState,
    at: [Option<i64>; 3],
    node: Option<&'a str>,
}

/// The rows a batch adds besides the calls': snapshots, CDRs, callbacks, live-leg counts.
#[derive(Default)]
struct Additions<'a> {
    snapshots: Vec<(&'a str, &'a str, &'a str)>,
    cdrs: Vec<&'a CdrRow>,
    outbox: Vec<&'a OutboxRow>,
    pushes: Vec<EventPush>,
    live: BTreeMap<&'a str, i64>,
}

/// Writes `jobs` in one transaction.
pub(super) async fn write(
    pool: &Pool,
    gate: &WriteGate,
    jobs: &[Job],
) -> Result<Written, sqlx::Error> {
    let mut tx = gate.begin(pool).await?;
    let now = now_ms();
    let calls: Vec<(usize, &CallWrite)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match j {
            Job::Call(w, _) => Some((i, w)),
            Job::Attempt(..) => None,
        })
        .collect();
    let mut applied = vec![true; jobs.len()];
    guard_conversations(&mut tx, &calls, &mut applied, now).await?;
    end_conversations(&mut tx, &calls, &mut applied, now).await?;
    let live: Vec<&CallWrite> = calls
        .iter()
        .filter(|(i, _)| applied[*i])
        .map(|(_, w)| *w)
        .collect();
    // New legs, then every state change, then every end (a leg's own writes keep order).
    insert_legs(&mut tx, &live, now).await?;
    let changed = change_states(&mut tx, &live, now).await?;
    let ended = end_legs(&mut tx, &live, now).await?;
    // A notice's or captcha's write holds if its one row took every change.
    for (i, w) in &calls {
        if !w.fence.conversation && applied[*i] {
            applied[*i] = w.entries.iter().all(|e| match e {
                Entry::Leg { call_id, .. } => changed.contains(call_id),
                Entry::Finish(f) => f.legs.iter().all(|l| ended.contains(&l.call_id)),
                Entry::LegEnded(l, _) => ended.contains(&l.call_id),
                Entry::NewLeg(..)
                | Entry::Conversation { .. }
                | Entry::Agent { .. }
                | Entry::Pushes(_)
                | Entry::Waiting { .. } => true,
            });
        }
    }
    let added = additions(calls.iter().filter(|(i, _)| applied[*i]).map(|(_, w)| *w));
    save_snapshots(&mut tx, &added.snapshots).await?;
    write_waiting(
        &mut tx,
        calls.iter().filter(|(i, _)| applied[*i]).map(|(_, w)| *w),
    )
    .await?;
    let (notices, pushed) = change_agents(
        &mut tx,
        calls.iter().filter(|(i, _)| applied[*i]).map(|(_, w)| *w),
    )
    .await?;
    insert_cdrs(&mut tx, &added.cdrs).await?;
    insert_outbox(&mut tx, &added.outbox).await?;
    // The conversations' own pushes after their agents' (a conversation's end follows its
    // agent's last event).
    let conversations_pushed =
        crate::store::event_push::insert_pushes(&mut tx, &added.pushes, now).await?;
    let attempts: Vec<&(Delivery, Attempt, Outcome)> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Attempt(a, _) => Some(&**a),
            Job::Call(..) => None,
        })
        .collect();
    if !attempts.is_empty() {
        write_attempts(&mut tx, &attempts, now).await?;
    }
    count_live(&mut tx, &added.live).await?;
    tx.commit().await?;
    Ok(Written {
        applied,
        // New callbacks, or an attempt recorded (the next callback of its key may be due).
        callbacks: !added.outbox.is_empty()
            || !attempts.is_empty()
            || pushed
            || conversations_pushed,
        notices,
    })
}

/// Every conversation's last snapshot of the batch in one statement (per chunk); an ended
/// conversation keeps its final one.
async fn save_snapshots(
    tx: &mut Tx<'_>,
    snapshots: &[(&str, &str, &str)],
) -> Result<(), sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = snapshots
        .iter()
        .map(|(id, state, snapshot)| {
            vec![
                Val::Text(Some(id)),
                Val::Text(Some(state)),
                Val::Text(Some(snapshot)),
            ]
        })
        .collect();
    let pad = [Val::Text(Some("")), Val::Text(Some("")), Val::Text(None)];
    values::run(
        tx,
        |_, v| {
            format!(
                "UPDATE conversations SET state = v.column2, snapshot = v.column3 FROM {v} AS v \
             WHERE conversations.id = v.column1 AND conversations.state <> 'ended'"
            )
        },
        &[],
        3,
        &rows,
        Some(&pad),
        false,
    )
    .await
    .map(|_| ())
}

/// The queues' waiting callers the calls change (a conversation's last word counts): one
/// statement forgets them all, one adds those who wait now.
async fn write_waiting<'a>(
    tx: &mut Tx<'_>,
    calls: impl Iterator<Item = &'a CallWrite>,
) -> Result<(), sqlx::Error> {
    let mut last: Vec<(&str, Option<&WaitingRow>)> = Vec::new();
    for entry in calls.flat_map(|w| &w.entries) {
        let Entry::Waiting {
            conversation_id,
            row,
        } = entry
        else {
            continue;
        };
        last.retain(|(id, _)| *id != conversation_id.as_str());
        last.push((conversation_id, row.as_ref()));
    }
    if last.is_empty() {
        return Ok(());
    }
    let ids: Vec<Vec<Val<'_>>> = last
        .iter()
        .map(|(id, _)| vec![Val::Text(Some(id))])
        .collect();
    forget_waiting(tx, &ids).await?;
    let rows: Vec<Vec<Val<'_>>> = last
        .iter()
        .filter_map(|(id, row)| {
            let row = (*row)?;
            Some(vec![
                Val::Text(Some(id)),
                Val::Text(Some(&row.app_id)),
                Val::Text(Some(&row.queue_sid)),
                Val::Text(Some(&row.call_sid)),
                Val::Text(Some(&row.user_number)),
                Val::Int(Some(row.join_type)),
                Val::Int(Some(row.join_at)),
            ])
        })
        .collect();
    values::insert(
        tx,
        "queue_waiting (conversation_id, app_id, queue_sid, call_sid, user_number, join_type, join_at)",
        7,
        &rows,
    )
    .await
}

/// The agent sessions the calls change, under their locks, in the calls' order.
async fn change_agents<'a>(
    tx: &mut Tx<'_>,
    calls: impl Iterator<Item = &'a CallWrite>,
) -> Result<(Vec<String>, bool), sqlx::Error> {
    let changes: Vec<Change<'_>> = calls
        .flat_map(|w| &w.entries)
        .filter_map(|entry| match entry {
            // A call's change names the agent's live session: it never starts one.
            Entry::Agent {
                app_id,
                agent_no,
                change,
            } => Some(Change {
                app_id,
                agent_no,
                new_sid: "",
                decide: &*change.0,
            }),
            _ => None,
        })
        .collect();
    if changes.is_empty() {
        return Ok((Vec::new(), false));
    }
    let applied = apply_changes(tx, &changes).await?;
    let notices = applied
        .outcomes
        .into_iter()
        .filter_map(|outcome| match outcome {
            session_writer::Outcome::Written(committed) => committed.notice,
            _ => None,
        })
        .collect();
    Ok((notices, applied.pushed))
}

/// Conversations: their caller leg must still carry the writer's epoch (locked until the
/// commit, so no takeover slips in between).
async fn guard_conversations(
    tx: &mut Tx<'_>,
    calls: &[(usize, &CallWrite)],
    applied: &mut [bool],
    now: i64,
) -> Result<(), sqlx::Error> {
    let guarded: Vec<&(usize, &CallWrite)> =
        calls.iter().filter(|(_, w)| w.fence.conversation).collect();
    if guarded.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Val<'_>>> = guarded
        .iter()
        .map(|(_, w)| {
            vec![
                Val::Text(Some(&w.fence.root)),
                Val::Int(Some(w.fence.epoch)),
            ]
        })
        .collect();
    let held: HashSet<String> = values::run(
        tx,
        |h, v| format!("UPDATE calls SET updated_at = {} FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 RETURNING calls.id", h[0]),
        &[Val::Int(Some(now))],
        2,
        &rows,
        Some(&[Val::Text(Some("")), Val::Int(Some(-1))]),
        true,
    )
    .await?
    .into_iter()
    .collect();
    for (i, w) in guarded {
        applied[*i] = held.contains(&w.fence.root);
    }
    Ok(())
}

/// A conversation ends once: a second end (already over) is not applied.
async fn end_conversations(
    tx: &mut Tx<'_>,
    calls: &[(usize, &CallWrite)],
    applied: &mut [bool],
    now: i64,
) -> Result<(), sqlx::Error> {
    // (job, its end); a conversation ended twice in one batch: the later end is refused.
    let mut ends: Vec<(usize, &ConversationEnd)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, w) in calls {
        let mine = w.entries.iter().filter_map(|e| match e {
            Entry::Finish(f) => f.conversation.as_ref(),
            _ => None,
        });
        for end in mine {
            if !seen.insert(&end.id) {
                applied[*i] = false;
            } else if applied[*i] {
                ends.push((*i, end));
            }
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    let ids: Vec<Vec<Val<'_>>> = ends
        .iter()
        .map(|(_, end)| vec![Val::Text(Some(&end.id))])
        .collect();
    forget_waiting(tx, &ids).await?;
    let rows: Vec<Vec<Val<'_>>> = ends
        .iter()
        .map(|(_, end)| {
            let (url, ms) = end
                .recording
                .as_ref()
                .map(|(u, ms)| (u.as_str(), *ms))
                .unzip();
            vec![
                Val::Text(Some(&end.id)),
                Val::Int(Some(i64::from(end.bye_type))),
                Val::Text(url),
                Val::Int(ms),
            ]
        })
        .collect();
    let pad = [
        Val::Text(Some("")),
        Val::Int(Some(0)),
        Val::Text(None),
        Val::Int(None),
    ];
    let ended: HashSet<String> = values::run(
        tx,
        |h, v| {
            format!(
                "UPDATE conversations SET state = 'ended', bye_type = v.column2, ended_at = {}, \
                 recording_url = v.column3, recording_ms = v.column4 FROM {v} AS v \
                 WHERE conversations.id = v.column1 AND conversations.state <> 'ended' RETURNING conversations.id",
                h[0]
            )
        },
        &[Val::Int(Some(now))],
        4,
        &rows,
        Some(&pad),
        true,
    )
    .await?
    .into_iter()
    .collect();
    for (i, end) in ends {
        if !ended.contains(&end.id) {
            applied[i] = false;
        }
    }
    Ok(())
}

/// Conversations `ids`' callers wait in no queue.
async fn forget_waiting(tx: &mut Tx<'_>, ids: &[Vec<Val<'_>>]) -> Result<(), sqlx::Error> {
    values::run(
        tx,
        |_, v| {
            format!(
                "DELETE FROM queue_waiting WHERE conversation_id IN (SELECT column1 FROM {v} AS v)"
            )
        },
        &[],
        1,
        ids,
        Some(&[Val::Text(Some(""))]),
        false,
    )
    .await
    .map(|_| ())
}

/// Every leg state change of `writes` in one statement (several per leg merged); the
/// legs that took them.
async fn change_states(
    tx: &mut Tx<'_>,
    writes: &[&CallWrite],
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    let mut states: Vec<StateChange<'_>> = Vec::new();
    for w in writes {
        for entry in &w.entries {
            let Entry::Leg {
                call_id,
                state,
                at_ms,
                node,
                ..
            } = entry
            else {
                continue;
            };
            let slot = match states.iter().position(|s| s.id == call_id.as_str()) {
                Some(at) => &mut states[at],
                None => {
                    states.push(StateChange {
                        id: call_id,
                        epoch: w.fence.epoch,
                        state: *state,
                        at: [None; 3],
                        node: None,
                    });
                    states.last_mut().expect("just pushed")
                }
            };
            slot.state = slot.state.max(*state);
            slot.at[*state as usize] = Some(*at_ms);
            slot.node = slot.node.or(node.as_deref());
        }
    }
    if states.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Vec<Val<'_>>> = states
        .iter()
        .map(|s| {
            vec![
                Val::Text(Some(s.id)),
                Val::Int(Some(s.epoch)),
                Val::Text(Some(s.state.as_str())),
                Val::Int(s.at[0]),
                Val::Int(s.at[1]),
                Val::Int(s.at[2]),
                Val::Text(s.node),
            ]
        })
        .collect();
    let pad = [
        Val::Text(Some("")),
        Val::Int(Some(-1)),
        Val::Text(Some("")),
        Val::Int(None),
        Val::Int(None),
        Val::Int(None),
        Val::Text(None),
    ];
    Ok(values::run(
        tx,
        |h, v| format!(
            "UPDATE calls SET state = v.column3, start_at = COALESCE(v.column4, calls.start_at), \
             ring_at = COALESCE(v.column5, calls.ring_at), answer_at = COALESCE(v.column6, calls.answer_at), \
             node = COALESCE(v.column7, calls.node), updated_at = {} \
             FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 AND calls.end_at IS NULL RETURNING calls.id",
            h[0]
        ),
        &[Val::Int(Some(now))],
        7,
        &rows,
        Some(&pad),
        true,
    )
    .await?
    .into_iter()
    .collect())
}

/// Every leg end of `writes` in one statement; the legs that took them. A notice's or
/// captcha's script (a captcha's code among it) is not kept once its one leg has ended.
async fn end_legs(
    tx: &mut Tx<'_>,
    writes: &[&CallWrite],
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    let ends: Vec<(&LegFinal, i64)> = writes
        .iter()
        .flat_map(|w| {
            w.entries.iter().flat_map(move |e| {
                let legs: Vec<&LegFinal> = match e {
                    Entry::LegEnded(leg, _) => vec![leg],
                    Entry::Finish(f) => f.legs.iter().collect(),
                    _ => vec![],
                };
                legs.into_iter().map(move |l| (l, w.fence.epoch))
            })
        })
        .collect();
    if ends.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<Vec<Val<'_>>> = ends
        .iter()
        .map(|(leg, epoch)| {
            vec![
                Val::Text(Some(&leg.call_id)),
                Val::Int(Some(*epoch)),
                Val::Int(Some(leg.end_at)),
                Val::Text(Some(&leg.hangup_cause)),
                Val::Text(Some(leg.cause)),
                Val::Text(leg.inputkey.as_deref()),
                Val::Text(leg.sip_status.as_deref()),
                Val::Int(leg.ring_at),
                Val::Int(leg.answer_at),
                Val::Text(leg.proto_cause.as_deref()),
            ]
        })
        .collect();
    let pad = [
        Val::Text(Some("")),
        Val::Int(Some(-1)),
        Val::Int(Some(0)),
        Val::Text(Some("")),
        Val::Text(Some("")),
        Val::Text(None),
        Val::Text(None),
        Val::Int(None),
        Val::Int(None),
        Val::Text(None),
    ];
    Ok(values::run(
        tx,
        |h, v| format!(
            "UPDATE calls SET state = 'completed', end_at = v.column3, hangup_cause = v.column4, cause = v.column5, \
             inputkey = v.column6, sip_status = v.column7, ring_at = COALESCE(calls.ring_at, v.column8), \
             answer_at = COALESCE(calls.answer_at, v.column9), proto_cause = v.column10, updated_at = {}, \
             params = CASE WHEN calls.conversation_id IS NULL THEN '{{}}' ELSE calls.params END \
             FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 AND calls.end_at IS NULL RETURNING calls.id",
            h[0]
        ),
        &[Val::Int(Some(now))],
        10,
        &rows,
        Some(&pad),
        true,
    )
    .await?
    .into_iter()
    .collect())
}

/// What the applied writes add: the last snapshot of each conversation, CDRs, callbacks
/// and each account's change of live legs.
fn additions<'a>(writes: impl Iterator<Item = &'a CallWrite>) -> Additions<'a> {
    let mut added = Additions::default();
    for w in writes {
        let delta = added.live.entry(w.account_sid.as_str()).or_default();
        for entry in &w.entries {
            match entry {
                Entry::Leg { callbacks, .. } => added.outbox.extend(callbacks),
                Entry::NewLeg(_, callbacks) => {
                    *delta += 1;
                    added.outbox.extend(callbacks);
                }
                Entry::LegEnded(_, callbacks) => {
                    *delta -= 1;
                    added.outbox.extend(callbacks);
                }
                Entry::Conversation {
                    id,
                    state,
                    snapshot,
                } => {
                    added.snapshots.retain(|s| s.0 != id.as_str());
                    added.snapshots.push((id, state, snapshot));
                }
                Entry::Finish(f) => {
                    *delta -= f.legs.len() as i64;
                    added.cdrs.push(&f.cdr);
                    added.outbox.extend(&f.callbacks);
                }
                Entry::Pushes(pushes) => added.pushes.extend(pushes.iter().cloned()),
                Entry::Agent { .. } | Entry::Waiting { .. } => {}
            }
        }
    }
    added
}

/// The new legs of `writes`, in one statement per chunk.
async fn insert_legs(tx: &mut Tx<'_>, writes: &[&CallWrite], now: i64) -> Result<(), sqlx::Error> {
    let legs: Vec<(&NewLeg, i64, Option<std::borrow::Cow<'_, str>>)> = writes
        .iter()
        .flat_map(|w| {
            w.entries.iter().filter_map(|entry| match entry {
                Entry::NewLeg(leg, _) => Some((
                    &**leg,
                    w.fence.epoch,
                    leg.userdata.as_deref().map(text::encode),
                )),
                _ => None,
            })
        })
        .collect();
    let rows: Vec<Vec<Val<'_>>> = legs
        .iter()
        .map(|(leg, epoch, userdata)| {
            vec![
                Val::Text(Some(&leg.id)),
                Val::Text(Some(&leg.request_id)),
                Val::Text(Some(&leg.account_sid)),
                Val::Text(Some(&leg.app_id)),
                Val::Text(Some("click2call")),
                Val::Text(Some(&leg.conversation_id)),
                Val::Int(Some(leg.leg_seq)),
                Val::Text(Some("initiated")),
                Val::Text(Some(&leg.to_number)),
                Val::Text(leg.from_number.as_deref()),
                Val::Text(userdata.as_deref()),
                Val::Text(Some("{}")),
                Val::Int(Some(*epoch)),
                Val::Text(Some(&leg.node)),
                Val::Int(Some(leg.start_at)),
                Val::Int(Some(now)),
                Val::Int(Some(now)),
                Val::Text(leg.agent_no.as_deref()),
            ]
        })
        .collect();
    values::insert(
        tx,
        "calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, \
         from_number, userdata, params, epoch, node, start_at, created_at, updated_at, agent_no)",
        18,
        &rows,
    )
    .await
}

async fn insert_cdrs(tx: &mut Tx<'_>, cdrs: &[&CdrRow]) -> Result<(), sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = cdrs
        .iter()
        .map(|c| {
            vec![
                Val::Text(Some(&c.id)),
                Val::Text(Some(&c.account_sid)),
                Val::Text(Some(&c.app_id)),
                Val::Text(Some(c.kind.as_str())),
                Val::Int(Some(c.start_time)),
                Val::Text(Some(&c.to_number)),
                Val::Text(Some(&c.body)),
                Val::Int(Some(c.created_at)),
            ]
        })
        .collect();
    values::insert(
        tx,
        "cdrs (id, account_sid, app_id, kind, start_time, to_number, body, created_at)",
        8,
        &rows,
    )
    .await?;
    let numbers: Vec<Vec<Val<'_>>> = cdrs
        .iter()
        .flat_map(|c| {
            c.numbers.iter().map(|n| {
                vec![
                    Val::Text(Some(&c.account_sid)),
                    Val::Text(Some(n)),
                    Val::Int(Some(c.start_time)),
                    Val::Text(Some(&c.id)),
                ]
            })
        })
        .collect();
    values::insert(
        tx,
        "cdr_numbers (account_sid, number, start_time, cdr_id)",
        4,
        &numbers,
    )
    .await
}

/// Inserts callbacks into the outbox.
pub(crate) async fn insert_outbox(
    tx: &mut Tx<'_>,
    outbox: &[&OutboxRow],
) -> Result<(), sqlx::Error> {
    insert_rows(tx, outbox, "").await
}

/// Inserts `outbox` rows, leaving out those whose webhook id is already in the outbox
/// (an event sent once per leg).
pub(crate) async fn insert_outbox_once(
    tx: &mut Tx<'_>,
    outbox: &[&OutboxRow],
) -> Result<(), sqlx::Error> {
    insert_rows(tx, outbox, " ON CONFLICT (webhook_id) DO NOTHING").await
}

async fn insert_rows(
    tx: &mut Tx<'_>,
    outbox: &[&OutboxRow],
    on_conflict: &str,
) -> Result<(), sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = outbox
        .iter()
        .map(|o| {
            vec![
                Val::Text(Some(&o.webhook_id)),
                Val::Text(Some(&o.account_sid)),
                Val::Text(Some(&o.app_id)),
                Val::Text(Some(o.kind)),
                Val::Text(Some(&o.target_url)),
                Val::Text(Some(&o.target_host)),
                Val::Text(Some(&o.body)),
                Val::Text(Some(&o.ordering_key)),
                Val::Int(Some(o.next_attempt_at)),
                Val::Int(Some(o.created_at)),
            ]
        })
        .collect();
    let into = "outbox (webhook_id, account_sid, app_id, kind, target_url, target_host, body, ordering_key, next_attempt_at, created_at)";
    let sql =
        |_: &[String], v: &str| format!("INSERT INTO {into} {}{on_conflict}", &v[1..v.len() - 1]);
    values::run(tx, sql, &[], 10, &rows, None, false)
        .await
        .map(|_| ())
}
