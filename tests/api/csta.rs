//! The CSTA vocabulary on agents' sockets (`?events=csta`, agents' contract §8.6): the
//! events of a dial-in as wellClient-style cstaEvents, numbers masked on request, other
//! `events` values refused before the upgrade.

use serde_json::{Value, json};

use crate::agent_client::AgentSocket;
use crate::agent_sessions::agent;
use crate::both_backends;
use crate::dial_in::{dial_in, route};
use crate::helpers::TestDb;
use crate::queues::create_queue;

both_backends! {
    async fn a_dial_in_in_the_csta_vocabulary(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        // Another vocabulary is refused before the upgrade.
        let refused = AgentSocket::open_with(&app.address, &app.app_id, "1001&events=xml", &[]).await;
        assert_eq!(refused.err(), Some(400));
        let mut socket = AgentSocket::open(&app.address, &app.app_id, "1001&events=csta").await;
        let auth = socket.request("auth", json!({"pwd": "s3cret!", "encryptNumber": "true"})).await;
        assert_eq!(auth["statusCode"], "00000", "{auth}");
        let login = socket.request("login", json!({})).await;
        assert_eq!(login["statusCode"], "00000", "{login}");
        dial_in(&app, "13800138000", "4008001000").await;
        let frames = socket.take_events(7).await;
        let names: Vec<&str> = frames.iter().map(|f| f["data"]["eventName"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["agentLoggedOn", "originated", "delivered", "established", "connectionCleared", "agentWorkingAfterCall", "agentReady"]
        );
        let device = format!("80001001@{}", app.app_id);
        let user = format!("138****8000@{}", app.app_id);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["type"], "cstaEvent", "{f}");
            assert_eq!(f["seq"], i as i64 + 1);
            let d = &f["data"];
            assert_eq!(d["serial"], i as i64 + 1);
            assert_eq!(d["namespace"], app.app_id.as_str());
            assert_eq!(d["srcDeviceId"], device.as_str());
            assert_eq!(d["agentId"], "1001");
            let t = d["eventTime"].as_str().unwrap();
            assert!(chrono::NaiveDateTime::parse_from_str(t, "%Y.%m.%d %H:%M:%S").is_ok(), "{t}");
            assert!(!f.to_string().contains("13800138000"), "masked: {f}");
        }
        assert_eq!(frames[0]["data"]["agentMode"], "Ready");
        assert_eq!(frames[0]["data"]["eventType"], "agent");
        let cv = frames[1]["data"]["callId"].as_str().unwrap();
        assert!(cv.starts_with("CV"), "{cv}");
        let delivered: &Value = &frames[2]["data"];
        assert_eq!(delivered["alertingDevice"], device.as_str());
        assert_eq!(delivered["callingDevice"], user.as_str());
        assert_eq!(delivered["calledDevice"], device.as_str());
        assert_eq!(delivered["localState"], "Alerting");
        assert_eq!(delivered["connectionId"], format!("{device}|{cv}"));
        assert_eq!(delivered["split"], queue.as_str());
        assert_eq!(delivered["eventType"], "csta");
        assert_eq!(frames[3]["data"]["answeringDevice"], device.as_str());
        assert_eq!(frames[3]["data"]["localState"], "Connect");
        assert_eq!(frames[4]["data"]["releasingDevice"], device.as_str());
        assert_eq!(frames[5]["data"]["agentMode"], "WorkNotReady");
        assert_eq!(frames[6]["data"]["agentMode"], "Ready");
        // A resumed csta socket replays in the same vocabulary.
        let sid = login["data"]["sessionSid"].as_str().unwrap();
        assert!(!sid.is_empty(), "{login}");
        let mut again = AgentSocket::open(&app.address, &app.app_id, "1001&events=csta").await;
        let auth = again.request("auth", json!({"pwd": "s3cret!", "sessionSid": sid, "lastSeq": "4"})).await;
        assert_eq!(auth["data"]["resumed"], "1", "{auth}");
        let replayed = again.take_events(3).await;
        for (got, sent) in replayed.iter().zip(&frames[4..]) {
            assert_eq!(got["type"], "cstaEvent");
            assert_eq!(got["seq"], sent["seq"]);
            assert_eq!(got["data"]["eventName"], sent["data"]["eventName"]);
            assert_eq!(got["data"]["eventTime"], sent["data"]["eventTime"]);
        }
        again.close().await;
        socket.close().await;
    }
}
