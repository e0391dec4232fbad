//! The session timers of every replica's agents: wrapup ending (autoReady), the grace of
//! a lost socket ending (logout), and sockets whose process died (nobody vouched for them
//! within the silence limit) counted as lost. Every replica runs this loop; each firing
//! is a session change under the session's lock that re-checks what is due, so two
//! replicas firing the same timer change it once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Agents;
use super::machine::Input;
use crate::domain::time::now_ms;

/// The longest sleep: timers set by other replicas are seen within this.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Runs the timers until `stop`.
pub(super) async fn run(agents: Arc<Agents>, mut stop: watch::Receiver<bool>) {
    let silence_ms = i64::from(agents.settings.cti_silence_secs) * 1000;
    let grace_ms = i64::from(agents.settings.cti_grace_secs) * 1000;
    let mut next_touch = 0;
    loop {
        let now = now_ms();
        if now >= next_touch {
            next_touch = now + silence_ms / 3;
            if let Err(e) = agents.store.touch_sockets(&agents.holder).await {
                tracing::warn!(error = %e, "agent sockets: cannot vouch for this process's sockets");
            }
            match agents.store.take_stale_sockets(now - silence_ms).await {
                Ok(lost) => {
                    for (app_id, agent_no) in lost {
                        let gone = agents
                            .change(&app_id, &agent_no, move |_| {
                                Ok((Some(Input::SocketGone { grace_ms }), ()))
                            })
                            .await;
                        if let Err(e) = gone {
                            tracing::warn!(error = %e, agent_no, "agent socket of a lost process: not recorded");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent sockets: cannot look for lost processes")
                }
            }
        }
        match agents.store.due_sessions(now, 200).await {
            Ok(due) => {
                for (app_id, agent_no) in due {
                    if let Err(e) = agents
                        .change(&app_id, &agent_no, move |_| Ok((Some(Input::Due), ())))
                        .await
                    {
                        tracing::warn!(error = %e, agent_no, "agent session timer: not applied");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "agent session timers: cannot read"),
        }
        let next_due = agents.store.next_session_due().await.ok().flatten();
        let wait = next_due
            .map(|due| Duration::from_millis((due - now_ms()).clamp(0, 1000) as u64))
            .unwrap_or(LOOK_EVERY)
            .min(LOOK_EVERY);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = agents.timer_set.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
