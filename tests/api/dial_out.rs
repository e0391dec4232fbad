//! Agents' phones dialling out (agents' contract §11.2, callType 3): the phone's call
//! parks in the agents' context, the platform dials the user from it, and the conversation
//! is the agent's as a callOut's is; a phone whose agent may not call now is refused with
//! CALL_REJECTED. The sandbox's `voicepaas_agent_dial` plays the phone.

use std::time::Duration;

use serde_json::json;
use voicepaas::esl::{EslClient, EslOptions, Incoming};

use crate::agent_calls::{agent_cdr, ready, script};
use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::helpers::TestDb;

both_backends! {
    async fn an_agent_dials_out_from_its_phone(db: TestDb) {
        let (app, media) = db.spawn_observed(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let media = media.expect("the in-process sandbox");
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "phoneType": "1"})).await;
        let mut socket = ready(&app, "1001").await;
        let (phone, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", media.port(), "ClueCon"));
        assert_eq!(incoming.recv().await, Some(Incoming::Connected));
        phone.subscribe(&["CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]).await.unwrap();
        // The user answers and hangs up 2 s later.
        let r = phone.api("voicepaas_agent_dial 80001001 13800009995").await.unwrap();
        let channel = r.trim().strip_prefix("+OK ").unwrap_or_else(|| panic!("{r}")).to_string();
        let (names, frames) = script(&mut socket, 9, 1).await;
        assert_eq!(
            names,
            ["initiated/2", "initiated/1", "ringing/1", "answered/1+", "answered/2+", "completed/1", "completed/2",
             "st completed", "st autoReady"]
        );
        for f in &frames[..7] {
            assert_eq!(f["data"]["callType"], "3", "{f}");
            assert_eq!(f["data"]["userNumber"], "13800009995", "{f}");
            assert_eq!(f["data"]["agentNumber"], "80001001", "{f}");
        }
        let cv = frames[0]["data"]["conversationSid"].as_str().unwrap().to_string();
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!(cdr["callType"], "3", "{cdr}");
        assert_eq!(cdr["agentNo"], "1001", "{cdr}");
        assert_eq!(cdr["userNumber"], "13800009995", "{cdr}");
        assert_eq!(cdr["cdrs"][0]["callSid"], frames[0]["data"]["callSid"], "the phone's leg is the agent's: {cdr}");
        assert_eq!(cdr["cdrs"][0]["role"], "agent", "{cdr}");
        assert_eq!(cdr["cdrs"][1]["role"], "user", "{cdr}");
        // The phone's channel was answered when the user answered, and is gone.
        let mut answered = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(Some(Incoming::Event(e))) = tokio::time::timeout_at(deadline, incoming.recv()).await else {
                panic!("the phone's channel did not end");
            };
            if e.unique_id() != Some(channel.as_str()) {
                continue;
            }
            match e.name() {
                "CHANNEL_ANSWER" => answered = true,
                "CHANNEL_HANGUP_COMPLETE" => break,
                _ => {}
            }
        }
        assert!(answered);

        // Logged out, the phone may not call: refused.
        assert_eq!(command(&app, "1001", "logout", json!({})).await.status, 200);
        let r = phone.api("voicepaas_agent_dial 80001001 13800138000").await.unwrap();
        let refused = r.trim().strip_prefix("+OK ").unwrap().to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(Some(Incoming::Event(e))) = tokio::time::timeout_at(deadline, incoming.recv()).await else {
                panic!("the refused call did not end");
            };
            if e.unique_id() == Some(refused.as_str()) && e.name() == "CHANNEL_HANGUP_COMPLETE" {
                assert_eq!(e.hangup_cause(), Some("CALL_REJECTED"));
                break;
            }
        }
        socket.close().await;
    }
}
