//! A receiver that never answers in time holds only its own host's in-flight budget: with
//! hundreds of its callbacks due, another host's callbacks still arrive at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::helpers::TestDb;
use crate::receiver::Receiver;

both_backends! {
    /// 300 result callbacks to a host answering after 20 s (past the 15 s timeout), then 5
    /// to another host: those 5 arrive within seconds, not after the slow host's queue.
    async fn a_slow_host_does_not_hold_back_others(db: TestDb) {
        let slow = Receiver::start().await;
        slow.delay_all(Duration::from_secs(20));
        let fast = Receiver::start().await;
        let app = db
            .spawn(&[("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"), ("VOICEPAAS_SANDBOX_SPEED", "20")])
            .await;
        app.set_limits(json!({"cps": 1000, "maxConcurrentCalls": 100000, "maxQueuedCalls": 100000})).await;
        // Two hosts: the same receiver machine under two names.
        let slow_app = app.create_app(&app.sid, json!({"name": "slow", "notifyUrl": format!("{}/r", slow.base)})).await;
        let fast_url = format!("{}/r", fast.base.replace("127.0.0.1", "localhost"));
        let fast_app = app.create_app(&app.sid, json!({"name": "fast", "notifyUrl": fast_url})).await;
        let path = app.account_path("BatchVoiceNotices");
        for batch in 0..3 {
            let to: Vec<String> = (0..100).map(|i| format!("138{:04}9990", batch * 100 + i)).collect();
            let body = json!({"appid": slow_app["appId"], "to": to.join(","), "contents": [{"type": "digits", "content": "1"}]});
            let a = app.post(&path, &body).await;
            assert_eq!(a.code(), "0", "{}", a.body);
        }
        // The slow host has its budget in flight.
        slow.wait_for(16, Duration::from_secs(30)).await;
        let started = Instant::now();
        let to: Vec<String> = (0..5).map(|i| format!("139{i:04}9990")).collect();
        let body = json!({"appid": fast_app["appId"], "to": to.join(","), "contents": [{"type": "digits", "content": "1"}]});
        let a = app.post(&path, &body).await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let got = fast.wait_for(5, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 5);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
