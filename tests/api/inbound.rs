//! Inbound calls (agents' contract §9, §11.1, §12): simulated callers from the sandbox.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestDb, assert_id};

both_backends! {
    /// `POST /admin/sandbox/inbound`: the operator's token, a granted number, the sandbox.
    async fn simulated_callers_need_a_granted_number_and_the_sandbox(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001000"}))).await;
        assert_eq!((a.status, &a.body["statusCode"]), (404, &json!("20005")), "{}", a.body);
        assert_eq!(a.body["error"], "number 4008001000 is not granted to an account");
        app.admin(Method::PUT, "/admin/numbers/4008001000", Some(json!({"accountSid": app.sid}))).await;
        let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001000"}))).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_id(&a.body["callSid"], "CA");
        for (body, error) in [
            (json!({"from": "x", "to": "4008001000"}), "invalid from: \"x\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"to": "4008001000"}), "missing from"),
            (json!({"from": "13800138000", "to": "4008001000", "via": "sip"}), "unknown field \"via\" (known: from, to)"),
        ] {
            let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(body)).await;
            assert_eq!((a.status, a.body["error"].as_str()), (400, Some(error)));
        }

        // On a FreeSWITCH node there are no simulated callers.
        let port = crate::agent_sessions::unregistering_media().await;
        let media = format!("esl://:ClueCon@127.0.0.1:{port}");
        let real = db.spawn(&[("VOICEPAAS_MEDIA", media.as_str())]).await;
        real.admin(Method::PUT, "/admin/numbers/4008001001", Some(json!({"accountSid": real.sid}))).await;
        let started = std::time::Instant::now();
        loop {
            let a = real.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001001"}))).await;
            if a.status == 404 {
                assert_eq!(a.body["error"], "simulated callers need the sandbox media server");
                break;
            }
            // Until the media connection is up: 503.
            assert_eq!(a.status, 503, "{}", a.body);
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Dials `callers` simulated callers to the numbers given (round-robin) on the sandbox at
/// `port` through the test's own Event Socket connection, and waits until every one has
/// ended; each channel's hangup cause.
async fn callers_end(port: u16, to: &[&str], callers: usize) -> Vec<String> {
    use voicepaas::esl::{EslClient, EslOptions, Incoming};
    let (client, mut incoming) = EslClient::start(EslOptions::new("127.0.0.1", port, "ClueCon"));
    assert_eq!(incoming.recv().await, Some(Incoming::Connected));
    client
        .subscribe(&["CHANNEL_HANGUP_COMPLETE"])
        .await
        .unwrap();
    let mut uuids = std::collections::HashSet::new();
    for n in 0..callers {
        let reply = client
            .api(&format!(
                "voicepaas_inbound 1380013{n:04} {}",
                to[n % to.len()]
            ))
            .await
            .unwrap();
        uuids.insert(reply.trim().trim_start_matches("+OK ").to_string());
    }
    let mut causes = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while causes.len() < callers {
        let notice = tokio::time::timeout_at(deadline, incoming.recv()).await;
        let Ok(Some(Incoming::Event(e))) = notice else {
            panic!(
                "only {} of {callers} callers ended: {causes:?}",
                causes.len()
            );
        };
        if e.unique_id().is_some_and(|u| uuids.contains(u)) {
            causes.push(e.hangup_cause().unwrap_or_default().to_string());
        }
    }
    causes
}

both_backends! {
    /// A number without a route — granted and unrouted, or granted to nobody — is refused
    /// with UNALLOCATED_NUMBER at once, as FreeSWITCH refuses an unknown number.
    async fn calls_to_unrouted_numbers_are_refused(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::processes::free_port();
        let _sandbox = crate::processes::sandbox(port, "1", dir.path());
        let (_server, address) = crate::processes::server(&db, port, dir.path(), "30").await;
        let app = crate::processes::customer(&address, 10).await;
        app.admin(Method::PUT, "/admin/numbers/4008001000", Some(json!({"accountSid": app.sid}))).await;
        let started = std::time::Instant::now();
        let causes = callers_end(port, &["4008001000", "4008009999"], 4).await;
        assert_eq!(causes, ["UNALLOCATED_NUMBER"; 4]);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused at once, not after the caller gave up");
        assert_eq!(db.text("SELECT CAST(COUNT(*) AS TEXT) FROM inbound_claims").await.as_deref(), Some("4"));
    }
}

/// Three replicas watch the same media server: each refused call is claimed by exactly
/// one of them (one claim row per channel, one hangup each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_handles_each_inbound_call() {
    let Some(db) = TestDb::postgres("api::inbound::one_replica_handles_each_inbound_call").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = crate::processes::free_port();
    let _sandbox = crate::processes::sandbox(port, "1", dir.path());
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(crate::processes::server(&db, port, dir.path(), "30").await);
    }
    let causes = callers_end(port, &["4008007000"], 30).await;
    assert_eq!(causes, vec!["UNALLOCATED_NUMBER".to_string(); 30]);
    // Every replica heard every park; the claims say one handled each.
    assert_eq!(
        db.text("SELECT CAST(COUNT(*) AS TEXT) FROM inbound_claims")
            .await
            .as_deref(),
        Some("30")
    );
    assert_eq!(
        db.text("SELECT CAST(COUNT(DISTINCT channel_uuid) AS TEXT) FROM inbound_claims")
            .await
            .as_deref(),
        Some("30")
    );
}

/// The database stops while callers dial in: each park is heard once, so the claim is
/// retried; once the database is back within a few seconds, every caller is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_database_outage_loses_no_caller() {
    let Some(pg) = crate::own_postgres::OwnPostgres::start(
        "api::inbound::a_short_database_outage_loses_no_caller",
    ) else {
        return;
    };
    let db = TestDb::at_postgres(pg.url());
    let dir = tempfile::tempdir().unwrap();
    let port = crate::processes::free_port();
    let _sandbox = crate::processes::sandbox(port, "1", dir.path());
    let (_server, _address) = crate::processes::server(&db, port, dir.path(), "30").await;
    pg.stop();
    let resume = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        pg.resume();
        pg
    });
    let causes = callers_end(port, &["4008005000"], 5).await;
    assert_eq!(causes, ["UNALLOCATED_NUMBER"; 5]);
    let _pg = resume.await.unwrap();
    assert_eq!(
        db.text("SELECT CAST(COUNT(*) AS TEXT) FROM inbound_claims")
            .await
            .as_deref(),
        Some("5")
    );
}
