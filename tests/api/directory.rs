//! `POST /freeswitch/directory` (agents' contract §11.3) as FreeSWITCH's mod_xml_curl
//! calls it: its real form fields, HTTP Basic `freeswitch:<secret>`; an enabled agent's
//! sipNumber gets its entry with the a1-hash, anything else FreeSWITCH's `not found`.

use md5::{Digest, Md5};
use serde_json::json;

use crate::agent_sessions::agent;
use crate::both_backends;
use crate::helpers::{TestApp, TestDb};

const NOT_FOUND: &str = "<document type=\"freeswitch/xml\"><section name=\"result\"><result status=\"not found\"/></section></document>";

/// The form mod_xml_curl posts when a phone REGISTERs as `user` in `domain`.
fn register_form(user: &str, domain: &str) -> String {
    let fields = [
        ("hostname", "fs1"),
        ("section", "directory"),
        ("tag_name", "domain"),
        ("key_name", "name"),
        ("key_value", domain),
        ("Event-Name", "REQUEST_PARAMS"),
        ("Core-UUID", "9224ae4a-3827-48be-8d1d-0669241177a8"),
        ("FreeSWITCH-Hostname", "fs1"),
        ("Event-Calling-File", "sofia_reg.c"),
        ("action", "sip_auth"),
        ("sip_profile", "internal"),
        ("sip_user_agent", "JsSIP 3.10.1"),
        ("sip_auth_username", user),
        ("sip_auth_realm", domain),
        ("sip_auth_method", "REGISTER"),
        ("user", user),
        ("domain", domain),
        ("ip", "192.0.2.7"),
    ];
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Posts `form` with `credentials` (`None`: none); the status and the body.
async fn ask(app: &TestApp, form: String, credentials: Option<(&str, &str)>) -> (u16, String) {
    let mut request = app
        .client
        .post(format!("{}/freeswitch/directory", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

both_backends! {
    async fn the_directory_serves_enabled_agents_to_freeswitch(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_FS_DIRECTORY_SECRET", "fs-s3cret")]).await;
        let created = agent(&app, "1001", json!({})).await;
        let (sip, pwd) = (created["sipNumber"].as_str().unwrap(), created["sipPwd"].as_str().unwrap());
        let secret = Some(("freeswitch", "fs-s3cret"));
        let (status, xml) = ask(&app, register_form(sip, "voicepaas.local"), secret).await;
        let a1: String = Md5::digest(format!("{sip}:voicepaas.local:{pwd}")).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(status, 200);
        assert_eq!(
            xml,
            format!(
                "<document type=\"freeswitch/xml\"><section name=\"directory\"><domain name=\"voicepaas.local\">\
                 <user id=\"{sip}\"><params><param name=\"a1-hash\" value=\"{a1}\"/>\
                 <param name=\"dial-string\" value=\"{{presence_id=${{dialed_user}}@${{dialed_domain}}}}${{sofia_contact(*/${{dialed_user}}@${{dialed_domain}})}}\"/>\
                 </params><variables><variable name=\"user_context\" value=\"voicepaas_agents\"/>\
                 <variable name=\"voicepaas_agent\" value=\"{}/1001\"/></variables></user></domain></section></document>",
                app.app_id
            )
        );
        assert!(!xml.contains(pwd), "the password never leaves");
        // Anything else is "not found": another user, another domain, another section, a
        // disabled agent.
        let other_section = register_form(sip, "voicepaas.local").replace("section=directory", "section=dialplan");
        for form in [register_form("80999999", "voicepaas.local"), register_form(sip, "example.com"), other_section] {
            assert_eq!(ask(&app, form.clone(), secret).await, (200, NOT_FOUND.to_string()), "{form}");
        }
        let disabled = app.cti(reqwest::Method::PATCH, "Agents/1001", Some(json!({"enabled": false}))).await;
        assert_eq!(disabled.status, 200, "{}", disabled.body);
        assert_eq!(ask(&app, register_form(sip, "voicepaas.local"), secret).await, (200, NOT_FOUND.to_string()));
        // Wrong or missing credentials: 401.
        for credentials in [None, Some(("freeswitch", "nope")), Some(("admin", "fs-s3cret"))] {
            assert_eq!(ask(&app, register_form(sip, "voicepaas.local"), credentials).await.0, 401);
        }
    }
}

both_backends! {
    /// Without VOICEPAAS_FS_DIRECTORY_SECRET there is no directory: 404.
    async fn no_secret_no_directory(db: TestDb) {
        let app = db.spawn(&[]).await;
        let (status, _) = ask(&app, register_form("80000001", "voicepaas.local"), Some(("freeswitch", ""))).await;
        assert_eq!(status, 404);
    }
}
