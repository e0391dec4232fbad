//! Position announcements (agents' contract §3.2 `announce`, §9): every `everySeconds` of
//! waiting the caller's music stops, the prompt and its position play, and the music
//! comes back; watched from a second Event Socket connection to the in-process sandbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use voicepaas::esl::{EslClient, EslOptions, Incoming};

use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::dial_in::{cdr_of_leg, dial_in, route};
use crate::helpers::TestDb;
use crate::queues::create_queue;

/// What a channel ran: (channel uuid, application, its data).
type Executed = Arc<Mutex<Vec<(String, String, String)>>>;

both_backends! {
    /// Two callers wait (the only member is paused): at 30 s each hears the prompt and
    /// its own position — 1 for the first, 2 for the second — between two stretches of
    /// music; both hang up waiting (byeType 7).
    async fn waiting_callers_hear_their_positions(db: TestDb) {
        let (app, media) = db.spawn_observed(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let media = media.expect("the in-process sandbox");
        let wav = voicepaas::domain::prompt::build_wav(8000, &[0; 8000]);
        let path = format!("/Accounts/{}/Applications/{}/Prompts/position.wav", app.sid, app.app_id);
        assert_eq!(app.send(reqwest::Method::PUT, &path, Some(wav)).await.code(), "0");
        let queue = create_queue(&app, json!({"name": "sales", "maxWaitSeconds": 0,
            "announce": {"everySeconds": 30, "prompt": "position.wav"}})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        assert_eq!(command(&app, "1001", "login", json!({"workStatus": "2"})).await.status, 200);

        let (observer, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", media.port(), "ClueCon"));
        assert_eq!(incoming.recv().await, Some(Incoming::Connected));
        observer.subscribe(&["CHANNEL_EXECUTE"]).await.unwrap();
        let executed: Executed = Arc::default();
        let sink = executed.clone();
        tokio::spawn(async move {
            while let Some(notice) = incoming.recv().await {
                if let Incoming::Event(e) = notice {
                    let field = |name: &str| e.get(name).unwrap_or_default().to_string();
                    let uuid = e.unique_id().unwrap_or_default().to_string();
                    sink.lock().unwrap().push((uuid, field("Application"), field("Application-Data")));
                }
            }
        });

        let first = dial_in(&app, "13800138001", "4008001000").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = dial_in(&app, "13800138002", "4008001000").await;
        for leg in [&first, &second] {
            let cdr = cdr_of_leg(&app, &db, leg).await;
            assert_eq!(cdr["byeType"], "7", "{cdr}");
        }
        let executed = executed.lock().unwrap().clone();
        for (leg, position) in [(&first, 1), (&second, 2)] {
            let channel = db
                .text(&format!("SELECT channel_uuid FROM calls WHERE id = '{leg}'"))
                .await
                .unwrap();
            let heard: Vec<(String, String)> = executed
                .iter()
                .filter(|(uuid, app, _)| *uuid == channel && ["endless_playback", "playback", "say"].contains(&app.as_str()))
                .map(|(_, app, data)| (app.clone(), data.clone()))
                .collect();
            let names: Vec<&str> = heard.iter().map(|(app, _)| app.as_str()).collect();
            assert!(names.len() >= 4, "{executed:?}");
            assert_eq!(names[..4], ["endless_playback", "playback", "say", "endless_playback"], "{heard:?}");
            assert!(heard[1].1.ends_with("-position.wav"), "{heard:?}");
            assert_eq!(heard[2].1, format!("zh NUMBER PRONOUNCED {position}"), "{heard:?}");
            assert_eq!(heard[0].1, heard[3].1, "the same music again: {heard:?}");
        }
    }
}
