//! What a conversation does when its legs ring, answer, finish an application or end:
//! the byeType rules of §6.2 and the conference rules of addCall.

use super::*;

impl Conversation {
    pub(super) async fn on_update(&mut self, i: usize, update: LegUpdate) -> Result<(), String> {
        match update {
            LegUpdate::Ringing => {
                self.journal_state(i, LegState::Ringing).await?;
                if i == 1 && self.dial_settings().record == RecordMode::FromCalleeRinging {
                    self.start_recording().await;
                }
            }
            LegUpdate::Answered => {
                self.journal_state(i, LegState::Answered).await?;
                self.on_answered(i).await?;
            }
            LegUpdate::AppDone(id, _) => match &self.phase {
                Phase::Greeting(g) if *g == id => self.dial_callee().await?,
                Phase::FailVoice(f) if *f == id => self.bye = Some(bye::CALLEE_NO_ANSWER),
                _ => {}
            },
            LegUpdate::Ended => self.on_ended(i).await?,
            LegUpdate::Key(_) | LegUpdate::RecordStopped(_) => {}
        }
        Ok(())
    }

    pub(super) async fn on_answered(&mut self, i: usize) -> Result<(), String> {
        if i == 0 && self.phase == Phase::DialCaller {
            let greet = self
                .prompt(
                    self.dial_settings()
                        .greet_voice
                        .as_ref()
                        .map(|p| p.as_str()),
                )
                .await;
            match (greet, self.caller_leg()) {
                (Some(path), Some(leg)) => {
                    let id = leg.execute("playback", &path).await.unwrap_or_default();
                    self.phase = Phase::Greeting(id);
                }
                _ => self.dial_callee().await?,
            }
        } else if i == 1 && self.phase == Phase::DialCallee {
            self.on_bridged().await?;
        } else if self.adding.as_ref().is_some_and(|(p, _)| *p == i) {
            self.on_added(i).await?;
        }
        Ok(())
    }

    pub(super) async fn on_bridged(&mut self) -> Result<(), String> {
        self.phase = Phase::Bridged;
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "bridged",
        })
        .await?;
        let dial = self.dial_settings().clone();
        if dial.record == RecordMode::FromCalleeAnswer {
            self.start_recording().await;
        }
        let callee_voice = self
            .prompt(dial.callee_voice.as_ref().map(|p| p.as_str()))
            .await;
        let caller_voice = self
            .prompt(dial.caller_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(1, callee_voice).await;
        self.broadcast(0, caller_voice).await;
        if let (Some(max), Some(caller)) = (self.req.call.max_duration, self.caller_leg()) {
            let _ = caller
                .api(&format!(
                    "sched_hangup +{max} {} {MAX_DURATION_CAUSE}",
                    caller.id
                ))
                .await;
            if max > 60 {
                let last = self
                    .prompt_or(
                        self.req.call.last_min_voice.as_ref().map(|p| p.as_str()),
                        Builtin::LastMinute,
                    )
                    .await;
                let caller = self.caller_leg().ok_or("caller leg missing")?;
                let _ = caller
                    .api(&format!(
                        "sched_broadcast +{} {} {last} both",
                        max - 60,
                        caller.id
                    ))
                    .await;
            }
        }
        Ok(())
    }

    pub(super) async fn start_recording(&mut self) {
        if self.recording.is_some() {
            return;
        }
        let Some(caller) = self.caller_leg() else {
            return;
        };
        let path = self
            .ctx
            .settings
            .recordings_dir
            .join(format!("{}.wav", self.id));
        let path = std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string();
        if caller
            .api(&format!("uuid_record {} start {path}", caller.id))
            .await
            .is_ok()
        {
            let at = caller.node.now_ms();
            self.recording = Some((path, at));
        }
    }

    pub(super) async fn on_ended(&mut self, ended: usize) -> Result<(), String> {
        if self.bye.is_some() {
            return Ok(());
        }
        // Bridged channels end together; what counts is who hung up first, which the
        // media server's event order tells (the partner's hangup follows).
        let (i, cause) = self
            .parties
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.done)
            .filter_map(|(j, p)| {
                p.leg
                    .as_ref()?
                    .hangup_order()
                    .map(|(seq, c)| (seq, j, c.to_string()))
            })
            .min()
            .map(|(_, j, c)| (j, c))
            .unwrap_or_else(|| {
                let cause = self.parties[ended]
                    .leg
                    .as_ref()
                    .map(|l| l.end().1)
                    .unwrap_or_default();
                (ended, cause)
            });
        if cause == CANCEL_CAUSE {
            self.cancel();
            return Ok(());
        }
        if cause == MAX_DURATION_CAUSE {
            self.bye = Some(bye::MAX_DURATION);
            return Ok(());
        }
        let answered = self.parties[i].leg.as_ref().is_some_and(Leg::answered);
        if i == 0 {
            self.bye = Some(match self.phase {
                Phase::DialCaller => bye::CALLER_NO_ANSWER,
                Phase::Greeting(_) => bye::CALLER_HUNG_UP,
                Phase::DialCallee => {
                    if let Some(callee) = self.parties.get_mut(1) {
                        callee.canceled = true;
                    }
                    bye::CALLER_HUNG_UP_DIALING
                }
                Phase::FailVoice(_) => bye::CALLEE_NO_ANSWER,
                Phase::Bridged if self.in_conference && self.others_live(0) >= 2 => {
                    return self.party_left(0).await;
                }
                Phase::Bridged => bye::CALLER_HUNG_UP,
            });
        } else if i == 1 {
            if !answered && self.phase == Phase::DialCallee {
                if self.dial_settings().ringback_mode == RingbackMode::Platform {
                    let fail = self
                        .prompt_or(
                            self.dial_settings().fail_voice.as_ref().map(|p| p.as_str()),
                            Builtin::Failure,
                        )
                        .await;
                    if let Some(caller) = self.caller_leg().filter(|l| l.ended.is_none())
                        && let Ok(id) = caller.execute("playback", &fail).await
                    {
                        self.phase = Phase::FailVoice(id);
                        return Ok(());
                    }
                }
                self.bye = Some(bye::CALLEE_NO_ANSWER);
            } else {
                self.bye = Some(bye::CALLEE_HUNG_UP);
            }
        } else {
            let pending = self.adding.as_ref().is_some_and(|(p, _)| *p == i);
            if pending {
                let add = self.adding.take().map(|(_, a)| a);
                self.party_left(i).await?;
                if let Some(add) = add.filter(|a| a.dial.ringback_mode == RingbackMode::Platform) {
                    let fail = self
                        .prompt_or(
                            add.dial.fail_voice.as_ref().map(|p| p.as_str()),
                            Builtin::Failure,
                        )
                        .await;
                    self.broadcast(0, Some(fail)).await;
                }
            } else if self.others_live(i) >= 2 {
                self.party_left(i).await?;
            } else {
                self.bye = Some(bye::CALLEE_HUNG_UP);
            }
        }
        Ok(())
    }

    /// Live parties other than `i`.
    pub(super) fn others_live(&self, i: usize) -> usize {
        self.parties
            .iter()
            .enumerate()
            .filter(|(j, p)| *j != i && p.live())
            .count()
    }

    /// A party left a conversation that goes on: its `completed` now.
    pub(super) async fn party_left(&mut self, i: usize) -> Result<(), String> {
        let party = &self.parties[i];
        let facts = party.facts();
        let cause = party.leg.as_ref().map(|l| l.end().1).unwrap_or_default();
        let callbacks = self.status(i, "completed", facts.end_ms, Some(facts.end));
        self.write(Entry::LegEnded(
            LegFinal {
                call_id: facts.call_id.clone(),
                end_at: facts.end_ms,
                hangup_cause: cause,
                cause: call_cause(facts.end),
                inputkey: None,
            },
            callbacks,
        ))
        .await?;
        self.parties[i].done = true;
        if self.in_conference
            && self.adding.is_none()
            && self.parties.iter().filter(|p| p.live()).count() == 2
        {
            self.write(Entry::Conversation {
                id: self.id.clone(),
                state: "bridged",
            })
            .await?;
        }
        Ok(())
    }
}
