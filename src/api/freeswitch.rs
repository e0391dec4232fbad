//! `POST /freeswitch/directory` (agents' contract §11.3): FreeSWITCH's mod_xml_curl asks
//! for a SIP user. An enabled agent's sipNumber in `VOICEPAAS_SIP_DOMAIN` gets its
//! directory entry — the a1-hash of `sipNumber:domain:sipPwd` (the password never leaves),
//! the dial-string that finds its registration, the agents' dialplan context and
//! `voicepaas_agent` = `{appSid}/{agentNo}`; anything else is FreeSWITCH's "not found".
//! HTTP Basic `freeswitch:<VOICEPAAS_FS_DIRECTORY_SECRET>`: unset 404, wrong 401.

use std::collections::HashMap;

use actix_web::web::{Bytes, Data};
use actix_web::{HttpRequest, HttpResponse};
use md5::{Digest, Md5};

use super::AppState;
use super::auth::{DirectoryRefusal, freeswitch};
use crate::store::agents::AgentRecord;

/// FreeSWITCH's answer when the directory has no such user.
const NOT_FOUND: &str = "<document type=\"freeswitch/xml\"><section name=\"result\"><result status=\"not found\"/></section></document>";

/// `POST /freeswitch/directory` with mod_xml_curl's form fields.
pub async fn directory(state: Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    match freeswitch(&state, &req) {
        Err(DirectoryRefusal::Disabled) => return HttpResponse::NotFound().finish(),
        Err(DirectoryRefusal::BadSecret) => {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Basic realm=\"voicepaas\""))
                .finish();
        }
        Ok(()) => {}
    }
    // The first of each field, as FreeSWITCH sends each once.
    let mut fields: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let domain = state.settings.sip_domain.as_str();
    let asked = field("section") == "directory" && field("domain") == domain;
    let user = field("user");
    let agent = match asked && !user.is_empty() {
        true => match state.store.find_agent_by_sip_number(user).await {
            Ok(agent) => agent.filter(|a| a.enabled),
            Err(e) => {
                tracing::warn!(error = %e, "directory lookup failed; FreeSWITCH will ask again");
                return HttpResponse::ServiceUnavailable().finish();
            }
        },
        false => None,
    };
    let xml = agent.map_or_else(|| NOT_FOUND.to_string(), |a| entry(&a, domain));
    HttpResponse::Ok().content_type("text/xml").body(xml)
}

/// The directory entry of `agent` in `domain`.
fn entry(agent: &AgentRecord, domain: &str) -> String {
    let a1 = Md5::digest(format!("{}:{domain}:{}", agent.sip_number, agent.sip_pwd));
    let a1: String = a1.iter().map(|b| format!("{b:02x}")).collect();
    let (user, domain) = (xml_escape(&agent.sip_number), xml_escape(domain));
    let agent_var = xml_escape(&format!("{}/{}", agent.app_id, agent.agent_no));
    format!(
        "<document type=\"freeswitch/xml\"><section name=\"directory\"><domain name=\"{domain}\">\
         <user id=\"{user}\"><params>\
         <param name=\"a1-hash\" value=\"{a1}\"/>\
         <param name=\"dial-string\" value=\"{{presence_id=${{dialed_user}}@${{dialed_domain}}}}${{sofia_contact(*/${{dialed_user}}@${{dialed_domain}})}}\"/>\
         </params><variables>\
         <variable name=\"user_context\" value=\"voicepaas_agents\"/>\
         <variable name=\"voicepaas_agent\" value=\"{agent_var}\"/>\
         </variables></user></domain></section></document>"
    )
}

/// `text` safe inside an XML attribute.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
