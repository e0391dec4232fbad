//! The `voicepaas` binary's subcommands, working directly on the database.

use std::process::Command;

use serde_json::Value;

use crate::both_backends;

pub fn voicepaas(db: &crate::helpers::TestDb, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voicepaas"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("VOICEPAAS_LOG", "warn")
        .env_remove("VOICEPAAS_CONFIG")
        .output()
        .expect("run voicepaas");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

both_backends! {
    /// Accounts and applications made with the CLI work against the server; a disabled
    /// account fails authentication once the server's one-second cache has passed.
    async fn cli_accounts_and_apps(db: TestDb) {
        let (code, _, _) = voicepaas(&db, &["migrate"]);
        assert_eq!(code, 0);
        let (code, account, err) = voicepaas(&db, &["account", "create", "--name", "cli co"]);
        assert_eq!(code, 0, "{err}");
        let sid = account["accountSid"].as_str().unwrap().to_string();
        let token = account["authToken"].as_str().unwrap().to_string();
        let (code, app, err) = voicepaas(&db, &["app", "create", "--account", &sid, "--name", "cli app", "--notify-url", "https://example.com/n",
                                              "--allowed-caller-id", "01080001001"]);
        assert_eq!(code, 0, "{err}");
        let app_id = app["appId"].as_str().unwrap().to_string();
        assert!(app["signingSecret"].as_str().unwrap().starts_with("whsec_"));
        assert_eq!(app["allowedCallerIds"], serde_json::json!(["01080001001"]));

        let (code, _, err) = voicepaas(&db, &["app", "update", "--account", &sid, "--app", &app_id, "--notify-url", "ftp://x"]);
        assert_eq!(code, 1);
        assert!(err.contains("notifyUrl must be an http or https URL"), "{err}");
        // A private target is refused as the operator API refuses it, naming the setting.
        let (code, _, err) = voicepaas(&db, &["app", "update", "--account", &sid, "--app", &app_id, "--cdr-url", "http://127.0.0.1:9000/cdr"]);
        assert_eq!(code, 1);
        assert!(err.contains("cdrUrl must not point to a private or reserved address (set VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS=true"), "{err}");
        let (code, updated, _) = voicepaas(&db, &["app", "update", "--account", &sid, "--app", &app_id, "--status-url", "https://example.com/s"]);
        assert_eq!((code, &updated["statusUrl"]), (0, &serde_json::json!("https://example.com/s")));
        let (_, apps, _) = voicepaas(&db, &["app", "list", "--account", &sid]);
        assert_eq!(apps["applications"].as_array().unwrap().len(), 1);
        let (_, accounts, _) = voicepaas(&db, &["account", "list"]);
        assert!(accounts["accounts"].as_array().unwrap().iter().any(|a| a["accountSid"] == sid.as_str()));

        let server = db.spawn(&[]).await;
        let body = serde_json::json!({"appid": app_id, "to": "13800138000", "contents": [{"type": "digits", "content": "1"}]});
        let path = format!("/Accounts/{sid}/VoiceNotices");
        assert_eq!(server.post_as(&path, &body, &sid, &token, &[]).await.code(), "0");
        let (code, disabled, _) = voicepaas(&db, &["account", "disable", &sid]);
        assert_eq!((code, &disabled["enabled"]), (0, &Value::Bool(false)));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(server.post_as(&path, &body, &sid, &token, &[]).await.code(), "-1");
    }
}

/// A bad setting stops the process with a message naming the variable.
#[test]
fn bad_configuration_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_voicepaas"))
        .arg("migrate")
        .env("VOICEPAAS_NODE_ID", "abc")
        .env_remove("VOICEPAAS_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("VOICEPAAS_NODE_ID: expected a number 0-99999 or auto, got \"abc\""),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voicepaas.env");
    std::fs::write(&file, "VOICEPAAS_TIMEZONE=Nowhere/City\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voicepaas"))
        .arg("migrate")
        .env("VOICEPAAS_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VOICEPAAS_TIMEZONE: unknown time zone"));
}

both_backends! {
    /// `voicepaas agent …`: create, list, update (disabling logs the agent out), token,
    /// delete; refusals name what is wrong.
    async fn cli_agents(db: TestDb) {
        let server = db.spawn(&[]).await;
        let (sid, app) = (server.sid.clone(), server.app_id.clone());
        let target = ["--account", sid.as_str(), "--app", app.as_str(), "--agent-no", "1001"];
        let (code, agent, err) = voicepaas(&db, &[&["agent", "create"][..], &target, &["--pwd", "s3cret!", "--name", "Li Lei", "--wrapup-time", "5"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!((agent["sipNumber"].as_str(), agent["wrapupTime"].as_i64()), (Some("80000001"), Some(5)));
        let (code, _, err) = voicepaas(&db, &[&["agent", "create"][..], &target, &["--pwd", "s3cret!"]].concat());
        assert_eq!(code, 1);
        assert!(err.contains("agentNo already exists in this application"), "{err}");
        let (code, _, err) = voicepaas(&db, &[&["agent", "create"][..], &target[..4], &["--agent-no", "1002", "--pwd", "short"]].concat());
        assert_eq!(code, 1);
        assert!(err.contains("pwd must be 6-64 characters"), "{err}");
        let (_, list, _) = voicepaas(&db, &["agent", "list", "--account", &sid, "--app", &app]);
        assert_eq!(list["agents"].as_array().unwrap().len(), 1);
        let (code, token, _) = voicepaas(&db, &[&["agent", "token"][..], &target].concat());
        assert_eq!(code, 0);
        assert!(token["token"].as_str().unwrap().starts_with("agt_"));

        // Logged in over REST, the agent cannot be deleted; disabling it logs it out.
        let a = server.cti(reqwest::Method::POST, "Agents/1001/Commands", Some(serde_json::json!({"cmd": "login"}))).await;
        assert_eq!(a.code(), "00000");
        let (code, _, err) = voicepaas(&db, &[&["agent", "delete"][..], &target].concat());
        assert_eq!(code, 1);
        assert!(err.contains("is logged in"), "{err}");
        let (code, updated, err) = voicepaas(&db, &[&["agent", "update"][..], &target, &["--enabled", "false"]].concat());
        assert_eq!((code, updated["enabled"].as_bool()), (0, Some(false)), "{err}");
        let a = server.cti(reqwest::Method::POST, "Agents/1001/Commands", Some(serde_json::json!({"cmd": "getState"}))).await;
        assert_eq!(a.body["data"]["agentState"], "offline");
        let (code, deleted, _) = voicepaas(&db, &[&["agent", "delete"][..], &target].concat());
        assert_eq!((code, deleted["deleted"].as_str()), (0, Some("1001")));
    }
}
