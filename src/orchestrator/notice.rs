//! The voice notice (API.md §2): after answer, play `contents` `times` times; the finish
//! key stops playback and plays `finishvoice`; the repeat key restarts from the top;
//! remember the last key; hang up when done.

use std::sync::Arc;

use chrono::TimeZone;

use super::ivr::{self, Played};
use super::{Ctx, Placement};
use crate::domain::notice::{ContentItem, DtmfKey, NoticeScript};

/// Most restarts by the repeat key in one call (a stuck key cannot hold the line forever).
const MAX_REPEATS: u32 = 10;

/// States of a notice call.
enum State {
    /// Playing item `item` of pass `pass`.
    Playing { pass: u8, item: usize },
    /// The finish key was pressed: play `finishvoice`.
    Finishing,
    /// Done: hang up.
    Done,
}

/// Runs a notice call to its end.
pub(super) async fn run(ctx: &Arc<Ctx>, placement: Placement) -> Result<(), String> {
    let call = &placement.call;
    let script: NoticeScript =
        serde_json::from_str(&call.params).map_err(|e| format!("stored script: {e}"))?;
    let mut leg = ivr::place(ctx, &placement).await.ok();
    let mut last_key: Option<char> = None;
    let answered = leg.as_mut().filter(|l| l.answered() && l.ended.is_none());
    // What to play is worked out once per call; a prompt deleted since the call was
    // accepted ends it (hung up, with its CDR) instead of leaving it unfinished.
    let playable = match answered {
        Some(leg) => match render_script(ctx, &call.app_id, &script).await {
            Ok(rendered) => Some((leg, rendered)),
            Err(e) => {
                tracing::error!(call = %call.id, error = %e, "notice cannot be played");
                None
            }
        },
        None => None,
    };
    if let Some((leg, (items, finishvoice))) = playable {
        let hits = |key: Option<DtmfKey>, k: char| match key {
            Some(DtmfKey::Any) => true,
            Some(DtmfKey::Key(c)) => c == k,
            None => false,
        };
        let mut repeats = 0;
        let mut state = State::Playing { pass: 0, item: 0 };
        loop {
            state = match state {
                State::Playing { pass, .. } if pass >= script.times => State::Done,
                State::Playing { pass, item } if item >= items.len() => State::Playing {
                    pass: pass + 1,
                    item: 0,
                },
                State::Playing { pass, item } => {
                    let (app, arg) = &items[item];
                    let can_repeat = repeats < MAX_REPEATS;
                    let played = ivr::play(
                        leg,
                        app,
                        arg,
                        |k| hits(script.finishkey, k) || (can_repeat && hits(script.repeatkey, k)),
                        |k| last_key = Some(k),
                    )
                    .await;
                    match played {
                        Played::Done => State::Playing {
                            pass,
                            item: item + 1,
                        },
                        Played::Interrupted(k) if hits(script.finishkey, k) => State::Finishing,
                        Played::Interrupted(_) => {
                            repeats += 1;
                            State::Playing { pass, item: 0 }
                        }
                        Played::Ended => break,
                    }
                }
                State::Finishing => {
                    if let Some(path) = &finishvoice
                        && let Played::Ended =
                            ivr::play(leg, "playback", path, |_| false, |k| last_key = Some(k))
                                .await
                    {
                        break;
                    }
                    State::Done
                }
                State::Done => break,
            };
        }
    }
    let inputkey = last_key.map(String::from);
    ivr::finish(ctx, call, leg, inputkey, "notice").await
}

/// The application and argument of each content item, and the `finishvoice` file (if
/// it can still be had).
async fn render_script(
    ctx: &Ctx,
    app_id: &str,
    script: &NoticeScript,
) -> Result<(Vec<(&'static str, String)>, Option<String>), String> {
    let mut items = Vec::with_capacity(script.contents.len());
    for item in &script.contents {
        items.push(render(ctx, app_id, item).await?);
    }
    let finishvoice = match &script.finishvoice {
        Some(voice) => match ctx.prompts.path(app_id, voice.as_str()).await {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!(error = %e, "finishvoice unavailable; the finish key just ends the call");
                None
            }
        },
        None => None,
    };
    Ok((items, finishvoice))
}

/// The application and argument that play one content item: a prompt file, or `say`
/// in Mandarin with the item's type and method.
async fn render(
    ctx: &Ctx,
    app_id: &str,
    item: &ContentItem,
) -> Result<(&'static str, String), String> {
    Ok(match item {
        ContentItem::Voice(name) => (
            "playback",
            ctx.prompts
                .path(app_id, name.as_str())
                .await
                .map_err(|e| e.to_string())?,
        ),
        ContentItem::Time(date) => (
            "say",
            format!(
                "zh CURRENT_DATE PRONOUNCED {}",
                date_epoch(date, ctx.settings.timezone)
            ),
        ),
        ContentItem::Money(amount) => ("say", format!("zh CURRENCY PRONOUNCED {amount}")),
        ContentItem::Number(n) => ("say", format!("zh NUMBER PRONOUNCED {n}")),
        ContentItem::Digits(d) => ("say", format!("zh NUMBER ITERATED {d}")),
    })
}

/// `YYYY-MM-DD` → epoch seconds of its midnight in the platform time zone (what
/// FreeSWITCH's `CURRENT_DATE` reads).
fn date_epoch(date: &str, tz: chrono_tz::Tz) -> i64 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_the_platform_zone() {
        assert_eq!(
            date_epoch("2024-01-02", chrono_tz::Asia::Shanghai),
            1_704_124_800
        );
        assert_eq!(date_epoch("2024-01-02", chrono_tz::UTC), 1_704_153_600);
    }
}
