//! What notices and captchas share: one leg dialled, followed to its answer, a script
//! played to it, and at the end the result callback / CDR of §5.

use std::sync::Arc;

use super::leg::{Dial, Leg, LegUpdate};
use super::{Ctx, Placement};
use crate::cdr::{LegEnd, LegFacts, MEDIA_LOST, NoticeCdr, call_cause};
use crate::domain::time::now_ms;
use crate::store::journal::{CdrRow, Entry, Finish, LegFinal, LegState};
use crate::store::placing::CallRecord;

/// A leg dialled and followed until it was answered or ended (journaling each step).
pub(super) async fn place(ctx: &Arc<Ctx>, placement: &Placement) -> Result<Leg, String> {
    let call = &placement.call;
    let resumed = call.state != "placing";
    let node = match (&call.node, resumed) {
        (Some(name), true) => ctx.media.node(name),
        _ => ctx.media.pick(),
    };
    let Some(node) = node else {
        return Err(MEDIA_LOST.into());
    };
    let mut leg = if resumed {
        let start = call.start_at.unwrap_or_else(|| node.now_ms());
        let mut leg = Leg::follow(&call.id, node, start, ctx.settings.media_grace);
        leg.ring_ms = call.ring_at;
        leg.answer_ms = call.answer_at;
        leg.check_exists();
        leg
    } else {
        let dial = Dial {
            uuid: &call.id,
            to: &call.to_number,
            from: call.from_number.as_deref(),
            timeout_secs: placement.answer_timeout,
            dial_string: &ctx.settings.dial_string,
            vars: &[],
        };
        ctx.journal(Entry::Leg {
            call_id: call.id.clone(),
            state: LegState::Initiated,
            at_ms: node.now_ms(),
            node: Some(node.name.clone()),
            callbacks: vec![],
        })
        .await?;
        Leg::originate(node, &dial, ctx.settings.media_grace)
    };
    while !leg.answered() {
        match leg.next().await {
            LegUpdate::Ringing => journal_state(ctx, call, LegState::Ringing, leg.ring_ms).await?,
            LegUpdate::Answered => {
                journal_state(ctx, call, LegState::Answered, leg.answer_ms).await?
            }
            LegUpdate::Ended => break,
            _ => {}
        }
    }
    Ok(leg)
}

async fn journal_state(
    ctx: &Ctx,
    call: &CallRecord,
    state: LegState,
    at: Option<i64>,
) -> Result<(), String> {
    ctx.journal(Entry::Leg {
        call_id: call.id.clone(),
        state,
        at_ms: at.unwrap_or_else(now_ms),
        node: None,
        callbacks: vec![],
    })
    .await
}

/// How playing one application ended.
pub(super) enum Played {
    /// It finished.
    Done,
    /// A key interrupted it (the app was stopped with `uuid_break`).
    Interrupted(char),
    /// The leg is gone.
    Ended,
}

/// Plays one application to the end, or until a key for which `interrupts` says yes
/// (then stops it). Every key pressed is reported to `on_key`.
pub(super) async fn play(
    leg: &mut Leg,
    app: &str,
    arg: &str,
    interrupts: impl Fn(char) -> bool,
    mut on_key: impl FnMut(char),
) -> Played {
    let Ok(id) = leg.execute(app, arg).await else {
        return Played::Ended;
    };
    let mut interrupted = None;
    loop {
        match leg.next().await {
            LegUpdate::AppDone(done, _) if done == id => {
                return interrupted.map_or(Played::Done, Played::Interrupted);
            }
            LegUpdate::Key(k) => {
                on_key(k);
                if interrupted.is_none() && interrupts(k) {
                    interrupted = Some(k);
                    if leg.api(&format!("uuid_break {}", leg.id)).await.is_err() {
                        return Played::Ended;
                    }
                }
            }
            LegUpdate::Ended => return Played::Ended,
            _ => {}
        }
    }
}

/// Hangs up (if still up), waits for the end, and writes the leg's end, its CDR and
/// callbacks (§5) in one transaction. `inputkey` is `None` for captchas.
pub(super) async fn finish(
    ctx: &Arc<Ctx>,
    call: &CallRecord,
    mut leg: Option<Leg>,
    inputkey: Option<String>,
    kind: &'static str,
) -> Result<(), String> {
    let (facts, hangup_cause) = match leg.as_mut() {
        Some(leg) => {
            leg.hang_up("NORMAL_CLEARING");
            leg.until_ended().await;
            let (end_ms, cause) = leg.end();
            let facts = LegFacts {
                call_id: call.id.clone(),
                from: call.from_number.clone().unwrap_or_default(),
                to: call.to_number.clone(),
                start_ms: leg.start_ms,
                ring_ms: leg.ring_ms,
                answer_ms: leg.answer_ms,
                end_ms: end_ms.max(leg.start_ms),
                end: LegEnd::classify(leg.answered(), &cause, false),
            };
            (facts, cause)
        }
        None => {
            let now = now_ms();
            let facts = LegFacts {
                call_id: call.id.clone(),
                from: call.from_number.clone().unwrap_or_default(),
                to: call.to_number.clone(),
                start_ms: now,
                ring_ms: None,
                answer_ms: None,
                end_ms: now,
                end: LegEnd::Failed,
            };
            (facts, MEDIA_LOST.to_string())
        }
    };
    let body = NoticeCdr {
        requestid: &call.request_id,
        appid: &call.app_id,
        userdata: call.userdata.as_deref().unwrap_or_default(),
        inputkey: (kind == "notice").then(|| inputkey.as_deref().unwrap_or_default()),
        leg: &facts,
    }
    .body(ctx.settings.timezone);
    let app = ctx.app(call).await;
    let notify = app.as_ref().and_then(|a| a.notify_url.as_deref());
    let callbacks = Ctx::cdr_callbacks(call, app.as_deref(), kind, notify, &body, &call.id);
    let finish = Finish {
        legs: vec![LegFinal {
            call_id: call.id.clone(),
            end_at: facts.end_ms,
            hangup_cause,
            cause: call_cause(facts.end),
            inputkey,
        }],
        conversation: None,
        cdr: CdrRow {
            id: call.id.clone(),
            account_sid: call.account_sid.clone(),
            app_id: call.app_id.clone(),
            kind,
            start_time: facts.start_ms,
            to_number: call.to_number.clone(),
            body: body.to_string(),
            created_at: now_ms(),
        },
        callbacks,
    };
    ctx.journal(Entry::Finish(Box::new(finish))).await
}
