//! Dialling a conversation's legs: the caller, the callee (with the `bridge`
//! application from the caller's channel), and the prompts they hear.

use super::*;

impl Conversation {
    pub(super) fn dial_settings(&self) -> &CalleeDial {
        &self.req.call.dial
    }

    pub(super) async fn dial_caller(&mut self) -> Result<(), String> {
        let from = self.req.call.caller_cli.as_ref().map(ToString::to_string);
        self.parties.push(Party {
            id: self.first.id.clone(),
            from: from.clone().unwrap_or_default(),
            to: self.first.to_number.clone(),
            leg: None,
            canceled: false,
            done: false,
        });
        let Some(node) = self.ctx.media.pick() else {
            self.bye = Some(bye::CALLER_NO_ANSWER);
            return Ok(());
        };
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "dialing",
        })
        .await?;
        let at = node.now_ms();
        let callbacks = self.status(0, LegState::Initiated.as_str(), at, None);
        self.write(Entry::Leg {
            call_id: self.first.id.clone(),
            state: LegState::Initiated,
            at_ms: at,
            node: Some(node.name.clone()),
            callbacks,
        })
        .await?;
        let dial = Dial {
            uuid: &self.first.id,
            to: &self.first.to_number,
            from: from.as_deref(),
            timeout_secs: self.answer_timeout,
            dial_string: &self.ctx.settings.dial_string,
            vars: &[],
        };
        self.parties[0].leg = Some(Leg::originate(node, &dial, self.ctx.settings.media_grace));
        Ok(())
    }

    /// A leg dialled from the caller's channel (`bridge`) or parked (an added party):
    /// journaled as `initiated` first.
    pub(super) async fn new_party(
        &mut self,
        to: &str,
        from: Option<String>,
    ) -> Result<usize, String> {
        let now = chrono::Utc::now();
        let id = self.ctx.ids.call(now).to_string();
        let seq = self.parties.len();
        let node = self
            .caller_leg()
            .map(|l| l.node.clone())
            .ok_or("caller leg missing")?;
        self.parties.push(Party {
            id: id.clone(),
            from: from.clone().unwrap_or_default(),
            to: to.to_string(),
            leg: None,
            canceled: false,
            done: false,
        });
        let at = node.now_ms();
        let callbacks = self.status(seq, LegState::Initiated.as_str(), at, None);
        let leg = NewLeg {
            id,
            request_id: self.first.request_id.clone(),
            account_sid: self.first.account_sid.clone(),
            app_id: self.first.app_id.clone(),
            conversation_id: self.id.clone(),
            leg_seq: seq as i64,
            to_number: to.to_string(),
            from_number: from,
            userdata: self.first.userdata.clone(),
            owner: self.ctx.instance.clone(),
            node: node.name.clone(),
            start_at: at,
        };
        self.write(Entry::NewLeg(Box::new(leg), callbacks)).await?;
        Ok(seq)
    }

    pub(super) fn caller_leg(&self) -> Option<&Leg> {
        self.parties.first().and_then(|p| p.leg.as_ref())
    }

    pub(super) async fn dial_callee(&mut self) -> Result<(), String> {
        let dial = self.dial_settings().clone();
        let from = dial
            .callee_cli
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| Some(self.first.to_number.clone()));
        let seq = self
            .new_party(&dial.callee.to_string(), from.clone())
            .await?;
        let uuid = self.parties[seq].id.clone();
        let caller = self.caller_leg().ok_or("caller leg missing")?;
        let node = caller.node.clone();
        let platform = dial.ringback_mode == RingbackMode::Platform;
        if platform {
            let ringback = self
                .prompt_or(
                    dial.ringback_voice.as_ref().map(|p| p.as_str()),
                    Builtin::Ringback,
                )
                .await;
            let _ = caller.execute("set", &format!("ringback={ringback}")).await;
        }
        let mut vars = vec![
            format!("origination_uuid={uuid}"),
            format!("originate_timeout={}", self.answer_timeout),
            format!("ignore_early_media={platform}"),
        ];
        if let Some(from) = &from {
            vars.push(format!("origination_caller_id_number={from}"));
        }
        let arg = format!(
            "{{{}}}{}",
            vars.join(","),
            self.ctx
                .settings
                .dial_string
                .replace("{number}", &dial.callee.to_string())
        );
        // Registered before the bridge starts, so no event of the new channel is missed.
        let leg = Leg::follow(
            &uuid,
            node.clone(),
            node.now_ms(),
            self.ctx.settings.media_grace,
        );
        self.parties[seq].leg = Some(leg);
        let caller = self.caller_leg().ok_or("caller leg missing")?;
        if caller.execute("bridge", &arg).await.is_err() {
            self.parties[seq].leg = None;
        }
        self.phase = Phase::DialCallee;
        Ok(())
    }

    pub(super) async fn prompt_or(&self, name: Option<&str>, builtin: Builtin) -> String {
        match name {
            Some(name) => match self.ctx.prompts.path(&self.first.app_id, name).await {
                Ok(path) => path,
                Err(e) => {
                    tracing::warn!(conversation = %self.id, error = %e, "prompt unavailable; built-in used");
                    self.ctx.prompts.builtin(builtin)
                }
            },
            None => self.ctx.prompts.builtin(builtin),
        }
    }

    pub(super) async fn prompt(&self, name: Option<&str>) -> Option<String> {
        let name = name?;
        self.ctx.prompts.path(&self.first.app_id, name).await.ok()
    }

    pub(super) async fn broadcast(&self, party: usize, path: Option<String>) {
        if let (Some(path), Some(leg)) =
            (path, self.parties.get(party).and_then(|p| p.leg.as_ref()))
        {
            let _ = leg
                .api(&format!("uuid_broadcast {} {path} aleg", leg.id))
                .await;
        }
    }
}
