//! Agents' devices followed from the media servers' registration events (agents'
//! contract §11.3, esl-transcripts 86): a WebPhone agent (phoneType 3) takes offers only
//! while its sipNumber is registered, and hears of a caller as soon as it registers.
//! The sandbox's `voicepaas_register` plays the device.

use std::time::Duration;

use serde_json::json;
use voicepaas::esl::{EslClient, EslOptions, Incoming};

use crate::agent_calls::ready;
use crate::agent_sessions::agent;
use crate::both_backends;
use crate::dial_in::{dial_in, route};
use crate::helpers::TestDb;
use crate::queues::create_queue;

both_backends! {
    async fn a_webphone_takes_offers_only_while_registered(db: TestDb) {
        // The sandbox's own pace: the caller stays 60 s after the platform answers.
        let (app, media) = db.spawn_observed(&[]).await;
        let media = media.expect("the in-process sandbox");
        let queue = create_queue(&app, json!({"name": "web", "maxWaitSeconds": 0})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "phoneType": "3", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let (device, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", media.port(), "ClueCon"));
        assert_eq!(incoming.recv().await, Some(Incoming::Connected));
        // The browser is closed: its registration is gone.
        let r = device.api("voicepaas_register 80001001@voicepaas.local 0").await.unwrap();
        assert!(r.starts_with("+OK"), "{r}");
        let mut socket = ready(&app, "1001").await;
        dial_in(&app, "13800138000", "4008001000").await;
        // Ready, but not offered: the caller waits (checked twice over the matchmaker's
        // periodic look).
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let live = app.cti(reqwest::Method::GET, &format!("Queues/{queue}/Live"), None).await;
            assert_eq!(live.body["queue"]["waitingCount"], 1, "{}", live.body);
            assert_eq!(live.body["queue"]["agents"][0]["agentState"], "ready", "{}", live.body);
        }
        // The WebPhone registers: the offer follows at once.
        let registered = std::time::Instant::now();
        let r = device.api("voicepaas_register 80001001@voicepaas.local 120").await.unwrap();
        assert!(r.starts_with("+OK"), "{r}");
        let events = socket.take_events(2).await;
        assert_eq!(events[0]["data"]["eventName"], "initiated", "{events:?}");
        assert_eq!(events[0]["data"]["callType"], "1");
        assert!(registered.elapsed() < Duration::from_millis(1500), "heard of at once, not at the next look: {:?}", registered.elapsed());
        socket.close().await;
    }
}
