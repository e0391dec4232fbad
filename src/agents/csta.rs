//! The CSTA vocabulary of agents' sockets opened with `?events=csta` (agents' contract
//! §8.6): call and status events as wellClient-style `cstaEvent` frames with the seed-002
//! fields. Pure: a frame in, a frame out.

use serde_json::{Map, Value, json};

use crate::domain::agent_call::mask_number;

use super::push::spaced_time;

/// The numbers of the socket's agent, for status events (which carry none).
#[derive(Debug, Clone, Default)]
pub struct AgentDevice {
    /// The agent's sipNumber.
    pub sip_number: String,
    /// Its pstnNumber.
    pub pstn_number: String,
}

impl AgentDevice {
    /// The number of the device phone type `phone_type` (`"3"` the WebPhone's sipNumber,
    /// `"1"` a SIP phone's, `"2"` the pstnNumber).
    fn number(&self, phone_type: &str) -> &str {
        match phone_type {
            "2" if !self.pstn_number.is_empty() => &self.pstn_number,
            _ => &self.sip_number,
        }
    }
}

/// `frame` (a callEvent or statusEvent, unmasked) as the `cstaEvent` frame of the same
/// seq, users' numbers masked when `masked`; `None` for any other frame (sent as it is).
pub fn csta_frame(frame: &str, agent: &AgentDevice, masked: bool) -> Option<String> {
    let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(frame) else {
        return None;
    };
    let seq = frame.get("seq").and_then(Value::as_i64)?;
    let Some(Value::Object(data)) = frame.get("data") else {
        return None;
    };
    let data = match frame.get("type").and_then(Value::as_str)? {
        "callEvent" => call_event(data, seq, masked),
        "statusEvent" => status_event(data, seq, agent),
        _ => return None,
    };
    Some(json!({"type": "cstaEvent", "seq": seq, "data": data}).to_string())
}

fn text<'a>(data: &'a Map<String, Value>, field: &str) -> &'a str {
    data.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// `{number}@{appSid}` (`""` when there is no number).
fn device(number: &str, app: &str) -> String {
    match number {
        "" => String::new(),
        n => format!("{n}@{app}"),
    }
}

/// What every cstaEvent carries.
fn common(
    data: &Map<String, Value>,
    name: &str,
    kind: &str,
    seq: i64,
    src: &str,
) -> Map<String, Value> {
    let app = text(data, "appSid");
    let mut out = Map::new();
    out.insert("eventName".into(), json!(name));
    out.insert(
        "eventTime".into(),
        json!(spaced_time(text(data, "timestamp"), '.')),
    );
    out.insert("eventType".into(), json!(kind));
    out.insert("serial".into(), json!(seq));
    out.insert("namespace".into(), json!(app));
    out.insert("srcDeviceId".into(), json!(src));
    out.insert("agentId".into(), json!(text(data, "agentNo")));
    out
}

fn status_event(data: &Map<String, Value>, seq: i64, agent: &AgentDevice) -> Value {
    let app = text(data, "appSid");
    let src = device(agent.number(text(data, "phoneType")), app);
    let (name, mode) = match text(data, "eventName") {
        "login" => (
            "agentLoggedOn",
            match text(data, "workStatus") {
                "ready" => "Ready",
                _ => "NotReady",
            },
        ),
        "logout" => ("agentLoggedOff", "Logout"),
        "ready" | "autoReady" => ("agentReady", "Ready"),
        "pause" => ("agentNotReady", "NotReady"),
        "completed" => ("agentWorkingAfterCall", "WorkNotReady"),
        _ => ("agentStateChanged", "Unknown"),
    };
    let mut out = common(data, name, "agent", seq, &src);
    out.insert("deviceId".into(), json!(src));
    out.insert("agentMode".into(), json!(mode));
    out.insert("devices".into(), json!({"Voice": src}));
    if name == "agentNotReady" {
        out.insert("reason".into(), json!(text(data, "pauseCause")));
    }
    Value::Object(out)
}

fn call_event(data: &Map<String, Value>, seq: i64, masked: bool) -> Value {
    let app = text(data, "appSid");
    let agent = device(text(data, "agentNumber"), app);
    let user_number = match masked {
        true => mask_number(text(data, "userNumber")),
        false => text(data, "userNumber").to_string(),
    };
    let user = device(&user_number, app);
    let subtype = text(data, "callSubtype");
    let co_agent = device(text(data, "coAgentNo"), app);
    // The device whose connection the event is about.
    let leg = match subtype {
        "1" => user.clone(),
        "5" if !co_agent.is_empty() => co_agent.clone(),
        _ => agent.clone(),
    };
    // Who calls whom: the agent calls out (its own dial-out, callOut, a consult it
    // places); otherwise the user calls the agent.
    let outward = matches!(text(data, "callType"), "3" | "4") || subtype == "5";
    let (calling, called) = match outward {
        true => (
            agent.clone(),
            if subtype == "2" {
                user.clone()
            } else {
                leg.clone()
            },
        ),
        false => (user.clone(), leg.clone()),
    };
    let initiated_by_agent = subtype == "2" && matches!(text(data, "callType"), "3" | "4");
    let (name, state): (&str, &str) = match text(data, "eventName") {
        "initiated" if initiated_by_agent => ("serviceInitiated", "Initiate"),
        "initiated" => ("originated", "Initiate"),
        "ringing" => ("delivered", "Alerting"),
        "answered" => ("established", "Connect"),
        "held" => ("held", "Hold"),
        "retrieved" => ("retrieved", "Connect"),
        "conferenced" => ("conferenced", "Connect"),
        "completed" if text(data, "completedCause") == "transferred" => ("transferred", "Idle"),
        "completed" => ("connectionCleared", "Idle"),
        _ => ("failed", "Fail"),
    };
    let mut out = common(data, name, "csta", seq, &agent);
    let call_id = text(data, "conversationSid");
    out.insert("deviceId".into(), json!(leg));
    out.insert("agentMode".into(), json!(""));
    out.insert("callId".into(), json!(call_id));
    out.insert("connectionId".into(), json!(format!("{leg}|{call_id}")));
    out.insert("localState".into(), json!(state));
    let mut put = |field: &str, value: &str| {
        out.insert(field.into(), json!(value));
    };
    // The call's two ends, on every event of its setting up.
    if matches!(name, "originated" | "delivered" | "established") {
        put("callingDevice", &calling);
        put("calledDevice", &called);
    }
    match name {
        "serviceInitiated" => put("initiatedDevice", &agent),
        "originated" => {}
        "delivered" => put("alertingDevice", &leg),
        "established" => put("answeringDevice", &leg),
        "held" => put("holdingDevice", &agent),
        "retrieved" => put("retrievingDevice", &agent),
        "conferenced" => {
            put("conferencingDevice", &agent);
            put("addedParty", &leg);
        }
        "transferred" => {
            put("transferringDevice", &agent);
            put("transferredToDevice", &co_agent);
        }
        "connectionCleared" => put("releasingDevice", &leg),
        _ => put("cause", text(data, "failedCause")),
    }
    put("userData", text(data, "userData"));
    put("split", text(data, "queueSid"));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentDevice {
        AgentDevice {
            sip_number: "8002".into(),
            pstn_number: "13900000000".into(),
        }
    }

    fn csta(frame: Value, masked: bool) -> Value {
        let out = csta_frame(&frame.to_string(), &agent(), masked).expect("translated");
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn a_login_is_agent_logged_on_as_the_seed_shows_it() {
        let f = json!({"type": "statusEvent", "seq": 3, "data": {"eventName": "login", "appSid": "zhen04.cc",
            "agentNo": "5002", "workStatus": "ready", "pauseCause": "", "phoneType": "1", "timestamp": "20170318141324"}});
        let c = csta(f, false);
        assert_eq!(c["type"], "cstaEvent");
        assert_eq!(c["seq"], 3);
        assert_eq!(
            c["data"],
            json!({"eventName": "agentLoggedOn", "eventTime": "2017.03.18 14:13:24", "eventType": "agent", "serial": 3,
                   "namespace": "zhen04.cc", "srcDeviceId": "8002@zhen04.cc", "deviceId": "8002@zhen04.cc",
                   "agentId": "5002", "agentMode": "Ready", "devices": {"Voice": "8002@zhen04.cc"}})
        );
    }

    #[test]
    fn status_events_map_to_agent_modes() {
        for (name, work, want, mode) in [
            ("login", "pause", "agentLoggedOn", "NotReady"),
            ("logout", "offline", "agentLoggedOff", "Logout"),
            ("ready", "ready", "agentReady", "Ready"),
            ("autoReady", "ready", "agentReady", "Ready"),
            ("pause", "pause", "agentNotReady", "NotReady"),
            (
                "completed",
                "pause",
                "agentWorkingAfterCall",
                "WorkNotReady",
            ),
        ] {
            let f = json!({"type": "statusEvent", "seq": 1, "data": {"eventName": name, "appSid": "a", "agentNo": "5002",
                "workStatus": work, "pauseCause": "lunch", "phoneType": "2", "timestamp": "20170318141324"}});
            let c = csta(f, false);
            assert_eq!(c["data"]["eventName"], want, "{name}");
            assert_eq!(c["data"]["agentMode"], mode, "{name}");
            assert_eq!(
                c["data"]["srcDeviceId"], "13900000000@a",
                "a PSTN agent's device"
            );
            assert_eq!(c["data"].get("reason").is_some(), want == "agentNotReady");
        }
    }

    fn call(name: &str, call_type: &str, subtype: &str) -> Value {
        json!({"type": "callEvent", "seq": 9, "data": {"eventName": name, "appSid": "zhen04.cc", "agentNo": "5002",
            "agentNumber": "8002", "conversationSid": "CV1", "callSid": "CA1", "failedCause": "no-answer",
            "completedCause": "", "callType": call_type, "callSubtype": subtype, "userNumber": "13800138000",
            "coAgentNo": "8003", "userData": "order 7", "timestamp": "20170318141415", "queueSid": "QU1"}})
    }

    #[test]
    fn call_events_map_to_csta_names_and_devices() {
        let c = csta(call("ringing", "1", "2"), false);
        let d = &c["data"];
        assert_eq!(d["eventName"], "delivered");
        assert_eq!(d["eventType"], "csta");
        assert_eq!(d["srcDeviceId"], "8002@zhen04.cc");
        assert_eq!(d["deviceId"], "8002@zhen04.cc");
        assert_eq!(d["alertingDevice"], "8002@zhen04.cc");
        assert_eq!(d["callingDevice"], "13800138000@zhen04.cc");
        assert_eq!(d["callId"], "CV1");
        assert_eq!(d["connectionId"], "8002@zhen04.cc|CV1");
        assert_eq!(d["localState"], "Alerting");
        assert_eq!(d["split"], "QU1");
        assert_eq!(d["userData"], "order 7");
        for (name, ct, cst, want, state) in [
            ("initiated", "4", "2", "serviceInitiated", "Initiate"),
            ("initiated", "3", "2", "serviceInitiated", "Initiate"),
            ("initiated", "4", "1", "originated", "Initiate"),
            ("initiated", "1", "5", "originated", "Initiate"),
            ("answered", "1", "2", "established", "Connect"),
            ("held", "1", "2", "held", "Hold"),
            ("retrieved", "1", "2", "retrieved", "Connect"),
            ("conferenced", "1", "4", "conferenced", "Connect"),
            ("completed", "1", "2", "connectionCleared", "Idle"),
            ("failed", "1", "2", "failed", "Fail"),
        ] {
            let d = csta(call(name, ct, cst), false)["data"].clone();
            assert_eq!(
                (
                    d["eventName"].as_str().unwrap(),
                    d["localState"].as_str().unwrap()
                ),
                (want, state),
                "{name} {ct}/{cst}"
            );
        }
        let d = csta(call("initiated", "4", "1"), false)["data"].clone();
        assert_eq!(
            (d["callingDevice"].as_str(), d["calledDevice"].as_str()),
            (Some("8002@zhen04.cc"), Some("13800138000@zhen04.cc"))
        );
        assert_eq!(
            csta(call("failed", "1", "2"), false)["data"]["cause"],
            "no-answer"
        );
        let mut t = call("completed", "1", "2");
        t["data"]["completedCause"] = json!("transferred");
        let d = csta(t, false)["data"].clone();
        assert_eq!(d["eventName"], "transferred");
        assert_eq!(d["transferringDevice"], "8002@zhen04.cc");
        assert_eq!(d["transferredToDevice"], "8003@zhen04.cc");
    }

    #[test]
    fn users_numbers_are_masked_in_device_fields() {
        let d = csta(call("ringing", "1", "2"), true)["data"].clone();
        assert_eq!(d["callingDevice"], "138****8000@zhen04.cc");
        assert!(!d.to_string().contains("13800138000"));
    }

    #[test]
    fn other_frames_are_left_alone() {
        let agent = agent();
        assert_eq!(
            csta_frame(r#"{"id":1,"statusCode":"00000"}"#, &agent, false),
            None
        );
        assert_eq!(
            csta_frame(r#"{"type":"queueEvent","data":{}}"#, &agent, false),
            None
        );
        assert_eq!(csta_frame("not json", &agent, false), None);
    }
}
