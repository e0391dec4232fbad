//! Prompts (API.md §9): upload with WAV checks, list, delete.

use reqwest::Method;

use crate::both_backends;

both_backends! {
    /// Upload, list, replace, delete; unknown prompts are HTTP 404 with -7.
    async fn prompt_lifecycle(db: TestDb) {
        let app = db.spawn(&[]).await;
        let base = format!("/Accounts/{}/Applications/{}/Prompts", app.sid, app.app_id);
        let wav = voicepaas::domain::prompt::build_wav(16000, &[0; 8000]);
        let a = app.send(Method::PUT, &format!("{base}/hello.wav"), Some(wav.clone())).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "0", "succ"));
        assert_eq!(a.body["prompt"], serde_json::json!({"name": "hello.wav", "size": wav.len(), "sampleRate": 16000, "durationMs": 500}));
        app.upload_prompt("a.wav").await;
        app.upload_prompt("hello.wav").await;
        let a = app.send(Method::GET, &base, None).await;
        let names: Vec<&str> = a.body["prompts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.wav", "hello.wav"]);
        assert_eq!(a.body["prompts"][1]["durationMs"], 1000);

        let a = app.send(Method::DELETE, &format!("{base}/a.wav"), None).await;
        assert_eq!((a.status, a.code()), (200, "0"));
        let a = app.send(Method::DELETE, &format!("{base}/a.wav"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "-7", "prompt \"a.wav\" not found"));
    }
}

both_backends! {
    /// Bad names and bad audio are -4 with the reason; over 10 MB is 413; foreign apps -3.
    async fn prompt_checks(db: TestDb) {
        let app = db.spawn(&[]).await;
        let base = format!("/Accounts/{}/Applications/{}/Prompts", app.sid, app.app_id);
        let good = voicepaas::domain::prompt::build_wav(8000, &[0; 800]);
        let a = app.send(Method::PUT, &format!("{base}/hello.mp3"), Some(good.clone())).await;
        assert_eq!((a.code(), a.msg()), ("-4", "invalid name: \"hello.mp3\" (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)"));
        let a = app.send(Method::PUT, &format!("{base}/x.wav"), Some(voicepaas::domain::prompt::build_wav(44100, &[0; 10]))).await;
        assert_eq!((a.code(), a.msg()), ("-4", "invalid WAV: sample rate 44100 (must be 8000 or 16000)"));
        let a = app.send(Method::PUT, &format!("{base}/x.wav"), Some(b"ID3 not a wav".to_vec())).await;
        assert_eq!((a.code(), a.msg()), ("-4", "invalid WAV: not a RIFF/WAVE file"));
        let a = app.send(Method::PUT, &format!("{base}/x.wav"), Some(vec![0; 10 * 1024 * 1024 + 1])).await;
        assert_eq!((a.status, a.code()), (413, "-4"));
        let (other, _) = app.create_account("other").await;
        let theirs = app.create_app(&other, serde_json::json!({"name": "t"})).await;
        let a = app.send(Method::PUT, &format!("/Accounts/{}/Applications/{}/Prompts/x.wav", app.sid, theirs["appId"].as_str().unwrap()), Some(good)).await;
        assert_eq!((a.code(), a.msg()), ("-3", "appid not found in this account"));
    }
}

both_backends! {
    /// A prompt deleted while its notice waited in the queue: the notice cannot play what
    /// it was asked to, so it is not placed and its result says it failed (`result` 1,
    /// `reason` 2), not that it played.
    async fn a_notice_whose_prompt_is_gone_fails(db: TestDb) {
        let app = db.spawn(&[]).await;
        let store = db.store().await;
        app.upload_prompt("gone.wav").await;
        app.occupy_line(&store).await;
        let notice = serde_json::json!({"appid": app.app_id, "to": "13800000001", "contents": [{"type": "voice", "content": "gone.wav"}]});
        let a = app.post(&app.account_path("VoiceNotices"), &notice).await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let callid = a.body["callid"].as_str().unwrap().to_string();
        let a = app.send(Method::DELETE, &format!("/Accounts/{}/Applications/{}/Prompts/gone.wav", app.sid, app.app_id), None).await;
        assert_eq!(a.code(), "0");
        app.set_limits(serde_json::json!({"maxConcurrentCalls": 2})).await;
        let cdr = crate::helpers::wait_cdr(&store, &callid).await;
        let outcome = ["result", "reason", "answertime", "ringtime", "duration"].map(|f| cdr[f].as_str().unwrap_or("?").to_string());
        assert_eq!(outcome, ["1", "2", "", "", "0"].map(String::from), "{cdr}");
    }
}
