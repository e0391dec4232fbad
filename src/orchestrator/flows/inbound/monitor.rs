//! Supervisors listening in on a connected caller's agent (agents' contract §7.2): the
//! supervisor's device is dialled into `eavesdrop` on the agent's channel, answering by
//! itself, with the mode's whisper variables; a later `monitor`/`whisper`/`barge` on the
//! same agent sends the mode's key to the supervisor's channel (`uuid_recv_dtmf`), and
//! the keys heard on that channel — from the platform or the supervisor's own keypad —
//! are what change the mode. The agent's socket hears nothing of it.

use serde::{Deserialize, Serialize};

use super::InboundFlow;
use crate::domain::agent_call::MonitorMode;
use crate::orchestrator::engine::{Core, Dial, Eavesdrop, LegIdx, MediaCommand, Refusal, Write};
use crate::orchestrator::flows::agent_call::Supervision;

/// A supervisor's leg: whom it listens to, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitor {
    /// The agent's leg listened to.
    pub target: LegIdx,
    /// How.
    pub mode: MonitorMode,
}

impl InboundFlow {
    /// Whether `leg` is a supervisor's.
    pub(super) fn is_monitor_leg(&self, leg: LegIdx) -> bool {
        self.offer(leg).is_some_and(|o| o.monitor.is_some())
    }

    /// `monitor`, `whisper` or `barge` on the agent of connected leg `target`.
    pub(super) fn supervise(
        &mut self,
        core: &mut Core,
        target: LegIdx,
        supervision: Supervision,
    ) -> Result<(), Refusal> {
        let listening = self
            .state
            .offers
            .iter()
            .rev()
            .find(|o| {
                o.offer.agent_no == supervision.supervisor
                    && o.monitor.is_some_and(|m| m.target == target)
                    && core.legs[o.leg].is_live()
            })
            .map(|o| o.leg);
        match (listening, supervision.offer) {
            // Listening already: the mode's key; its DTMF event changes the mode.
            (Some(leg), _) => {
                let key = supervision.mode.key().to_string();
                core.media(leg, MediaCommand::RecvDtmf(key));
                Ok(())
            }
            (None, Some(offer)) => {
                let leg = Self::leg_for(core, &offer);
                let mode = supervision.mode;
                let dial = Dial {
                    to: offer.agent_number.clone(),
                    from: offer.shown.clone(),
                    timeout_secs: self.plan.agent_ring_secs,
                    ignore_early_media: true,
                    endpoint: offer.endpoint,
                    auto_answer: true,
                    park_after_bridge: true,
                    eavesdrop: Some(Eavesdrop {
                        target: core.legs[target].channel.clone(),
                        whisper_bleg: mode != MonitorMode::Monitor,
                        whisper_aleg: mode == MonitorMode::Barge,
                    }),
                };
                self.push_offer(leg, offer, None, None);
                if let Some(o) = self.state.offers.last_mut() {
                    o.monitor = Some(Monitor { target, mode });
                }
                self.snapshot(core);
                core.originate(leg, dial, true);
                Ok(())
            }
            (None, None) => Err(Refusal::State(
                "the supervisor does not listen to this agent".into(),
            )),
        }
    }

    /// The supervisor's device answered: it listens.
    pub(super) fn monitor_answered(&mut self, core: &mut Core, leg: LegIdx) {
        if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
            o.bridged_at.get_or_insert(core.now);
        }
        self.snapshot(core);
    }

    /// A key on a supervisor's channel: a mode's key changes the mode (`answered` again
    /// for the supervisor, with the new monitorMode).
    pub(super) fn monitor_key(&mut self, core: &mut Core, leg: LegIdx, key: char) {
        let Some(mode) = MonitorMode::of_key(key) else {
            return;
        };
        let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) else {
            return;
        };
        match &mut o.monitor {
            Some(m) if m.mode != mode && o.bridged_at.is_some() => m.mode = mode,
            _ => return,
        }
        core.journal(Write::Bridged(leg, core.now));
        self.snapshot(core);
    }

    /// Agent leg `leg` ended while the call goes on: whoever listened to it stops.
    pub(super) fn stop_monitors_of(&mut self, core: &mut Core, leg: LegIdx) {
        let listeners: Vec<LegIdx> = self
            .state
            .offers
            .iter()
            .filter(|o| o.monitor.is_some_and(|m| m.target == leg))
            .map(|o| o.leg)
            .collect();
        for listener in listeners {
            core.hang_up(listener, "NORMAL_CLEARING");
        }
    }
}
