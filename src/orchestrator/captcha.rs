//! The voice captcha (API.md §4): after answer, an intro prompt, then the code read
//! character by character, and the code repeated twice more (three readings in all).
//! The code goes to the media server only; it is never written to a log line.

use std::sync::Arc;

use super::ivr::{self, Played};
use super::prompts::Builtin;
use super::{Ctx, Placement};
use crate::domain::captcha::{CaptchaScript, Lang};

/// How many times the code is read.
const READINGS: usize = 3;

/// Runs a captcha call to its end.
pub(super) async fn run(ctx: &Arc<Ctx>, placement: Placement) -> Result<(), String> {
    let call = &placement.call;
    let script: CaptchaScript = serde_json::from_str(&call.params)
        .map_err(|_| "stored captcha script unreadable".to_string())?;
    let mut leg = ivr::place(ctx, &placement).await.ok();
    if let Some(leg) = leg.as_mut().filter(|l| l.answered() && l.ended.is_none()) {
        let lang = match script.lang {
            Lang::Zh => "zh",
            Lang::En => "en",
        };
        let code: String = script.code.chars().collect();
        let spell = format!("{lang} NAME_SPELLED ITERATED {code}");
        let intro = ctx.prompts.builtin(Builtin::CaptchaIntro);
        let steps = std::iter::once(("playback", intro.as_str()))
            .chain(std::iter::repeat_n(("say", spell.as_str()), READINGS));
        for (app, arg) in steps {
            if let Played::Ended = ivr::play(leg, app, arg, |_| false, |_| {}).await {
                break;
            }
        }
    }
    ivr::finish(ctx, call, leg, None, "captcha").await
}
