//! A conversation taken over from a process that stopped.

use super::*;

impl Conversation {
    /// Taken over from a process that stopped: bridged conversations are followed to
    /// their end; any other is ended (its legs hung up).
    pub(super) async fn reattach(&mut self) -> Result<(), String> {
        let legs = self
            .ctx
            .store
            .conversation_legs(&self.id)
            .await
            .map_err(|e| e.to_string())?;
        for rec in &legs {
            // A node no longer configured is asked anyway (by another node): the
            // channel is not found there, and the leg ends as lost.
            let node = rec
                .node
                .as_deref()
                .and_then(|n| self.ctx.media.node(n))
                .or_else(|| self.ctx.media.any());
            let unfinished = matches!(rec.state.as_str(), "initiated" | "ringing" | "answered");
            let leg = match node.filter(|_| unfinished) {
                Some(node) => {
                    let mut leg = Leg::follow(
                        &rec.id,
                        node,
                        rec.start_at.unwrap_or_else(now_ms),
                        self.ctx.settings.media_grace,
                    );
                    leg.ring_ms = rec.ring_at;
                    leg.answer_ms = rec.answer_at;
                    leg.check_exists();
                    Some(leg)
                }
                None => None,
            };
            self.parties.push(Party {
                id: rec.id.clone(),
                from: rec.from_number.clone().unwrap_or_default(),
                to: rec.to_number.clone(),
                leg,
                canceled: false,
                done: !unfinished,
            });
        }
        let answered = |i: usize| {
            self.parties
                .get(i)
                .and_then(|p| p.leg.as_ref())
                .is_some_and(Leg::answered)
        };
        if answered(0) && answered(1) {
            self.phase = Phase::Bridged;
            self.in_conference = self.parties.len() > 2;
        } else {
            self.bye = Some(if answered(0) {
                bye::CALLEE_NO_ANSWER
            } else {
                bye::CALLER_NO_ANSWER
            });
        }
        Ok(())
    }
}
