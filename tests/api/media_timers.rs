//! What the media server plays in a conversation, watched from a second Event Socket
//! connection to a standalone sandbox: `calleeVoice` / `callerVoice` right after the
//! bridge, and the last-minute prompt 60 s before `maxDuration` (a `sched_broadcast`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use voicepaas::esl::{EslClient, EslOptions, Incoming};

use crate::both_backends;
use crate::helpers::*;
use crate::processes::*;

both_backends! {
    async fn prompts_played_in_a_conversation(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let _sandbox = sandbox(media_port, "20", dir.path());
        let (_server, address) = server(&db, media_port, dir.path(), "10").await;
        let app = customer(&address, 100).await;
        for name in ["cv.wav", "kv.wav"] {
            let wav = voicepaas::domain::prompt::build_wav(8000, &[0; 8000]);
            let path = format!("/Accounts/{}/Applications/{}/Prompts/{name}", app.sid, app.app_id);
            assert_eq!(app.send(reqwest::Method::PUT, &path, Some(wav)).await.code(), "0");
        }
        // An observer on the media server: every PLAYBACK_START, by channel.
        let (observer, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", media_port, "ClueCon"));
        assert_eq!(incoming.recv().await, Some(Incoming::Connected));
        observer.subscribe(&["PLAYBACK_START"]).await.unwrap();
        let played: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let sink = played.clone();
        tokio::spawn(async move {
            while let Some(notice) = incoming.recv().await {
                if let Incoming::Event(e) = notice {
                    let uuid = e.unique_id().unwrap_or_default().to_string();
                    let file = e.get("Playback-File-Path").unwrap_or_default().to_string();
                    sink.lock().unwrap().push((uuid, file));
                }
            }
        });

        let body = json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002",
                          "maxDuration": 65, "calleeVoice": "cv.wav", "callerVoice": "kv.wav"});
        let a = app.post(&app.ctc_path(), &body).await;
        assert_eq!(a.code(), "00000", "{}", a.body);
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let store = db.store().await;
        let cdr = wait_cdr(&store, &cv).await;
        // The sandbox's caller hangs up 30 s after answering, before maxDuration.
        assert_eq!(cdr["byeType"], "3", "{cdr}");
        let caller = cdr["cdrs"][0]["callSid"].as_str().unwrap().to_string();
        let callee = cdr["cdrs"][1]["callSid"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let played = played.lock().unwrap().clone();
        let heard = |uuid: &str, suffix: &str| played.iter().any(|(u, f)| u == uuid && f.ends_with(suffix));
        assert!(heard(&callee, "-cv.wav"), "calleeVoice to the callee: {played:?}");
        assert!(heard(&caller, "-kv.wav"), "callerVoice to the caller: {played:?}");
        assert!(heard(&caller, "builtin/last-minute.wav"), "the last-minute prompt: {played:?}");
        assert!(heard(&callee, "builtin/last-minute.wav"), "the last-minute prompt to both: {played:?}");
    }
}
