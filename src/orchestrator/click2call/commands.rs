//! The API's actions on a live conversation: cancelCall and addCall.

use super::*;

impl Conversation {
    pub(super) async fn on_command(&mut self, cmd: ConversationCommand) {
        match cmd {
            ConversationCommand::Cancel(reply) => {
                let verdict = if self.bye.is_some() {
                    Err(Refused::State("conversation has already ended".into()))
                } else {
                    self.cancel();
                    Ok(())
                };
                let _ = reply.send(verdict);
            }
            ConversationCommand::AddCall(add, reply) => {
                let verdict = self.add_call(*add).await;
                let _ = reply.send(verdict);
            }
        }
    }

    pub(super) fn cancel(&mut self) {
        self.bye = Some(bye::CANCELED);
        for p in &mut self.parties {
            if p.leg.as_ref().is_none_or(|l| !l.answered()) {
                p.canceled = true;
            }
        }
    }

    pub(super) async fn add_call(&mut self, add: AddCall) -> Result<(), Refused> {
        let parties = self.parties.iter().filter(|p| p.answered_live()).count();
        let why = if self.phase != Phase::Bridged {
            Some("the conversation has not been bridged yet")
        } else if self.adding.is_some() {
            Some("a party is being added")
        } else if parties != 2 {
            Some("the conversation has three parties")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Refused::State(format!("{ADD_CALL_RULE}; {why}")));
        }
        let node = self.caller_leg().map(|l| l.node.clone()).or_else(|| {
            self.parties.iter().find_map(|p| {
                p.leg
                    .as_ref()
                    .filter(|l| l.ended.is_none())
                    .map(|l| l.node.clone())
            })
        });
        let Some(node) = node.filter(|n| n.client.is_connected()) else {
            return Err(Refused::NoMedia);
        };
        let greet = self
            .prompt(add.dial.greet_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(0, greet).await;
        let from = add.dial.callee_cli.as_ref().map(ToString::to_string);
        let to = add.dial.callee.to_string();
        let seq = self
            .new_party(&to, from.clone())
            .await
            .map_err(|_| Refused::NoMedia)?;
        let dial = Dial {
            uuid: &self.parties[seq].id.clone(),
            to: &to,
            from: from.as_deref(),
            timeout_secs: add.timeout,
            dial_string: &self.ctx.settings.dial_string,
            vars: &[],
        };
        self.parties[seq].leg = Some(Leg::originate(node, &dial, self.ctx.settings.media_grace));
        self.adding = Some((seq, add));
        Ok(())
    }

    /// The added party answered: everyone into one conference.
    pub(super) async fn on_added(&mut self, i: usize) -> Result<(), String> {
        let Some((_, add)) = self.adding.take() else {
            return Ok(());
        };
        let room = format!("{}@default", self.id);
        if !self.in_conference {
            if let Some(caller) = self.caller_leg() {
                let _ = caller
                    .api(&format!(
                        "uuid_transfer {} -both conference:{room} inline",
                        caller.id
                    ))
                    .await;
            }
            self.in_conference = true;
        }
        if let Some(leg) = self.parties[i].leg.as_ref() {
            let _ = leg.execute("conference", &room).await;
        }
        let callee_voice = self
            .prompt(add.dial.callee_voice.as_ref().map(|p| p.as_str()))
            .await;
        let caller_voice = self
            .prompt(add.dial.caller_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(i, callee_voice).await;
        self.broadcast(0, caller_voice).await;
        if add.dial.record != RecordMode::Off {
            self.start_recording().await;
        }
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "three_way",
        })
        .await
    }
}
