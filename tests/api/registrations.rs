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

both_backends! {
    /// Two media nodes: the caller arrives on the first, the agent's device is registered
    /// on the second only, so the offer is dialled from the first through the second's
    /// internal profile (its `?sip=` address) and the two talk.
    async fn a_device_on_another_node_is_dialled_through_it(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (crate::processes::free_port(), crate::processes::free_port());
        let _first = crate::processes::sandbox(a, "1", dir.path());
        let _second = crate::processes::sandbox(b, "1", dir.path());
        let media = format!("esl://:ClueCon@127.0.0.1:{a},esl://:ClueCon@127.0.0.1:{b}?sip=127.0.0.1:5999");
        let (_server, address) =
            crate::processes::server_with(&db, a, dir.path(), &[("VOICEPAAS_MEDIA", media.as_str())]).await;
        let app = crate::processes::customer(&address, 10).await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "phoneType": "1", "queues": [{"queueSid": queue}]})).await;
        app.admin(reqwest::Method::PUT, "/admin/numbers/4008001000", Some(json!({"accountSid": app.sid}))).await;
        let r = app.cti(reqwest::Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "queue", "queueSid": queue}}))).await;
        assert!(r.status < 300, "{}", r.body);
        let node = |port: u16| async move {
            let (client, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", port, "ClueCon"));
            assert_eq!(incoming.recv().await, Some(Incoming::Connected));
            (client, incoming)
        };
        let (first, mut first_events) = node(a).await;
        let (second, _) = node(b).await;
        first.subscribe(&["CHANNEL_CREATE"]).await.unwrap();
        assert!(first.api("voicepaas_register 80001001@voicepaas.local 0").await.unwrap().starts_with("+OK"));
        assert!(second.api("voicepaas_register 80001001@voicepaas.local 120").await.unwrap().starts_with("+OK"));
        // The platform hears both before the agent logs in (a SIP phone must be registered).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut socket = ready(&app, "1001").await;
        let r = first.api("voicepaas_inbound 13800138000 4008001000").await.unwrap();
        assert!(r.starts_with("+OK"), "{r}");
        let events = socket.take_events(3).await;
        let names: Vec<&str> = events.iter().map(|e| e["data"]["eventName"].as_str().unwrap()).collect();
        assert_eq!(names, ["initiated", "ringing", "answered"], "{events:?}");
        assert_eq!(events[2]["data"]["isBridged"], "1");
        // The agent's leg was created on the caller's node, dialled through the other.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let dialled = loop {
            let Ok(Some(Incoming::Event(e))) = tokio::time::timeout_at(deadline, first_events.recv()).await else {
                panic!("no agent leg was created on the caller's node");
            };
            if let Some(dial) = e.get("variable_origination_dial_string").filter(|d| d.contains("80001001")) {
                break dial.to_string();
            }
        };
        assert_eq!(dialled, "sofia/internal/80001001@127.0.0.1:5999");
        socket.close().await;
    }
}
