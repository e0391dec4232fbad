//! The end of a conversation (its CDR and last statuses), and its journal writes with
//! their status callbacks (§6.1).

use super::*;

impl Conversation {
    pub(super) async fn finish(&mut self) -> Result<(), String> {
        for p in &mut self.parties {
            let live = p.live();
            if let Some(leg) = p.leg.as_mut().filter(|_| live) {
                let cause = if self.bye == Some(bye::CANCELED) {
                    CANCEL_CAUSE
                } else {
                    "NORMAL_CLEARING"
                };
                leg.hang_up(cause);
            }
        }
        for p in &mut self.parties {
            if let Some(leg) = p.leg.as_mut().filter(|_| !p.done) {
                leg.until_ended().await;
            }
        }
        if self.parties.is_empty() {
            // Canceled before its caller leg was ever dialled.
            self.parties.push(Party {
                id: self.first.id.clone(),
                from: self
                    .req
                    .call
                    .caller_cli
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                to: self.first.to_number.clone(),
                leg: None,
                canceled: true,
                done: false,
            });
        }
        let mut facts: Vec<LegFacts> = self.parties.iter().map(Party::facts).collect();
        if self.bye == Some(bye::MAX_DURATION) {
            // Every leg still talking was cut by the timer.
            for (f, p) in facts.iter_mut().zip(&self.parties) {
                if !p.done && f.end == LegEnd::Completed {
                    f.end = LegEnd::MaxDuration;
                }
            }
        }
        let mut legs = Vec::new();
        let mut callbacks = Vec::new();
        // The legs' last statuses in the order they ended.
        let mut order: Vec<usize> = (0..self.parties.len())
            .filter(|&i| !self.parties[i].done)
            .collect();
        order.sort_by_key(|&i| facts[i].end_ms);
        for &i in &order {
            let (p, f) = (&self.parties[i], &facts[i]);
            callbacks.extend(self.status(i, "completed", f.end_ms, Some(f.end)));
            legs.push(LegFinal {
                call_id: p.id.clone(),
                end_at: f.end_ms,
                hangup_cause: p
                    .leg
                    .as_ref()
                    .map_or_else(|| "ORIGINATOR_CANCEL".into(), |l| l.end().1),
                cause: call_cause(f.end),
                inputkey: None,
            });
        }
        // The recorder runs on the caller's channel and stops when it hangs up.
        let end_ms = facts.first().map_or_else(now_ms, |f| f.end_ms);
        let recording = self.recording.as_ref().map(|(path, start)| {
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (
                format!("/Accounts/{}/Recordings/{name}", self.first.account_sid),
                (end_ms - start).max(0),
            )
        });
        let bye_type = self.bye.unwrap_or(bye::CALLER_HUNG_UP);
        let body = ConversationCdr {
            conversation_sid: &self.id,
            account_sid: &self.first.account_sid,
            app_sid: &self.first.app_id,
            recording_url: recording.as_ref().map_or("", |(u, _)| u.as_str()),
            recording_secs: recording.as_ref().map_or(0, |(_, ms)| ms / 1000),
            user_data: self.first.userdata.as_deref().unwrap_or_default(),
            bye_type,
            legs: &facts,
        }
        .body(self.ctx.settings.timezone);
        let app = self.ctx.app(&self.first).await;
        callbacks.extend(Ctx::cdr_callbacks(
            &self.first,
            app.as_deref(),
            "click2call",
            self.cdr_url.as_deref(),
            &body,
            &self.id,
        ));
        let finish = Finish {
            legs,
            conversation: Some(ConversationEnd {
                id: self.id.clone(),
                bye_type,
                recording,
            }),
            cdr: CdrRow {
                id: self.id.clone(),
                account_sid: self.first.account_sid.clone(),
                app_id: self.first.app_id.clone(),
                kind: "click2call",
                start_time: facts.first().map_or_else(now_ms, |f| f.start_ms),
                to_number: self.first.to_number.clone(),
                body: body.to_string(),
                created_at: now_ms(),
            },
            callbacks,
        };
        self.write(Entry::Finish(Box::new(finish))).await
    }

    // ---- journal -----------------------------------------------------------------

    pub(super) async fn write(&self, entry: Entry) -> Result<(), String> {
        self.ctx.journal(entry).await
    }

    pub(super) async fn journal_state(&mut self, i: usize, state: LegState) -> Result<(), String> {
        let leg = self.parties[i].leg.as_ref().ok_or("no leg")?;
        let at = match state {
            LegState::Ringing => leg.ring_ms,
            LegState::Answered => leg.answer_ms,
            LegState::Initiated => Some(leg.start_ms),
        }
        .unwrap_or_else(now_ms);
        let callbacks = self.status(i, state.as_str(), at, None);
        self.write(Entry::Leg {
            call_id: self.parties[i].id.clone(),
            state,
            at_ms: at,
            node: None,
            callbacks,
        })
        .await
    }

    /// The status callback of party `i` reaching `status` (none without a statusUrl).
    pub(super) fn status(
        &self,
        i: usize,
        status: &str,
        at_ms: i64,
        end: Option<LegEnd>,
    ) -> Vec<OutboxRow> {
        let Some(url) = self.status_url.as_deref().filter(|u| !u.is_empty()) else {
            return Vec::new();
        };
        let p = &self.parties[i];
        let body = StatusEvent {
            conversation_sid: &self.id,
            api_version: &self.req.api_version,
            account_sid: &self.first.account_sid,
            app_sid: &self.first.app_id,
            user_data: self.first.userdata.as_deref().unwrap_or_default(),
            call_sid: &p.id,
            from: &p.from,
            to: &p.to,
            call_status: status,
            at_ms,
            end,
        }
        .body(self.ctx.settings.timezone);
        vec![OutboxRow::new(
            &self.first.account_sid,
            &self.first.app_id,
            "status",
            url,
            &body,
            &self.id,
        )]
    }
}
