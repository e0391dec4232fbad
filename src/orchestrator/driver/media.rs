//! The engine's media effects as Event Socket commands, and channel events and probe
//! answers as the engine's inputs. Every ESL string the orchestrator sends is made here.

use crate::esl::Event;
use crate::esl::event;
use crate::media::pool::INSTALL_VAR;
use crate::orchestrator::engine::{
    App, Dial, Endpoint, Hears, MediaCommand, MediaEvent, Probe, Signalling,
};

/// The `event-uuid` of application run `run` of driver generation `generation`; the run
/// number comes back in CHANNEL_EXECUTE_COMPLETE's `Application-UUID`.
pub fn run_uuid(generation: u64, run: u32) -> String {
    format!("g{generation:016x}r{run}")
}

/// The run number of an `Application-UUID`, if generation `generation` made it.
fn run_of(app_uuid: &str, generation: u64) -> Option<u32> {
    let rest = app_uuid.strip_prefix('g')?;
    let (gen_hex, run) = rest.split_once('r')?;
    (u64::from_str_radix(gen_hex, 16).ok()? == generation)
        .then(|| run.parse().ok())
        .flatten()
}

/// The engine's view of a channel event (for the channel's leg, in driver generation
/// `generation`), `stamp` being its `Event-Date-Timestamp` as the caller read it; `None`
/// for events the engine does not follow.
pub fn channel_event(event: &Event, generation: u64, stamp: Option<i64>) -> Option<MediaEvent> {
    let at = || stamp.unwrap_or_else(crate::domain::time::now_ms);
    Some(match event.name() {
        "CHANNEL_CREATE" => MediaEvent::Created {
            at: at(),
            name: event
                .get_exact(&event::CHANNEL_NAME)
                .filter(|n| n.len() <= 256)
                .unwrap_or_default()
                .to_string(),
        },
        "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => MediaEvent::Progress { at: at() },
        "CHANNEL_ANSWER" => MediaEvent::Answered { at: at() },
        "DTMF" => MediaEvent::Dtmf(
            event
                .dtmf_digit()?
                .chars()
                .next()
                .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))?,
        ),
        "CHANNEL_EXECUTE_COMPLETE" => MediaEvent::AppDone {
            run: event
                .application_uuid()
                .and_then(|id| run_of(id, generation)),
        },
        "CHANNEL_HANGUP" => MediaEvent::Hangup {
            seq: event.sequence().unwrap_or(u64::MAX),
            cause: cause(event),
        },
        "CHANNEL_HANGUP_COMPLETE" => MediaEvent::HangupComplete {
            at: at(),
            cause: cause(event),
            answered_at: event
                .get_exact(&event::ANSWER_UEPOCH)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|us| *us > 0)
                .map(|us| us / 1000),
            signalling: signalling(event),
        },
        _ => return None,
    })
}

/// The SIP facts of a channel's end. Values a media server sends that cannot be what
/// they claim (a status that is not three digits, a cause with odd characters or over 32
/// bytes) count as missing.
fn signalling(event: &Event) -> Signalling {
    Signalling {
        sip_status: event
            .get_exact(&event::SIP_TERM_STATUS)
            .filter(|s| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string),
        proto_cause: event
            .get_exact(&event::PROTO_HANGUP_CAUSE)
            .filter(|s| {
                (1..=32).contains(&s.len())
                    && s.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.')
                    })
            })
            .map(str::to_string),
    }
}

/// The hangup cause: a FreeSWITCH cause name (`NORMAL_CLEARING`, `USER_BUSY`, …). What a
/// media server sends that cannot be one (other characters, over 64 of them) counts as
/// missing, so nothing odd reaches the CDR.
fn cause(event: &Event) -> String {
    event
        .hangup_cause()
        .filter(|c| {
            (1..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .unwrap_or("NORMAL_CLEARING")
        .to_string()
}

/// How legs are dialled: the dial string template (`{number}` is the number), the
/// installation's tag, set on every channel so the platform's event filter lets through
/// only its own channels, and every channel's lifetime ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Dialing<'a> {
    /// `VOICEPAAS_DIAL_STRING`.
    pub template: &'a str,
    /// `VOICEPAAS_AGENT_DIAL_STRING`.
    pub device_template: &'a str,
    /// `VOICEPAAS_SIP_DOMAIN` (the device template's `{domain}`).
    pub sip_domain: &'a str,
    /// `VOICEPAAS_INSTALLATION`.
    pub installation: &'a str,
    /// `VOICEPAAS_CHANNEL_MAX_SECS`.
    pub max_secs: u32,
}

/// The hangup cause of a channel that reached `VOICEPAAS_CHANNEL_MAX_SECS`: the same as
/// maxDuration's, since to the customer both are a talk-time limit (`time-out`).
const CHANNEL_MAX_CAUSE: &str = crate::orchestrator::flows::click2call::MAX_DURATION_CAUSE;

/// `{vars}<dial string>` for leg `uuid`.
fn dial_target(uuid: &str, dial: &Dial, dialing: &Dialing<'_>) -> String {
    // playback_terminators=none: FreeSWITCH's default (`*`) would let a key silently cut
    // a notice's item short; keys are the flows' to handle (finishkey, repeatkey).
    // execute_on_originate runs as the channel is created: it hangs itself up `max_secs`
    // later, whatever becomes of this process. (No park_timeout: it clears
    // park_after_bridge.)
    let mut vars = format!(
        "{{origination_uuid={uuid},originate_timeout={},ignore_early_media={},playback_terminators=none,{INSTALL_VAR}={},execute_on_originate='sched_hangup +{} {}'",
        dial.timeout_secs,
        dial.ignore_early_media,
        dialing.installation,
        dialing.max_secs,
        CHANNEL_MAX_CAUSE
    );
    if let Some(from) = &dial.from {
        vars.push_str(",origination_caller_id_number=");
        vars.push_str(from);
    }
    if dial.auto_answer {
        vars.push_str(",sip_auto_answer=true");
    }
    if dial.park_after_bridge {
        vars.push_str(",park_after_bridge=true");
    }
    if let Some(e) = &dial.eavesdrop {
        vars.push_str(&format!(
            ",eavesdrop_enable_dtmf=true,eavesdrop_whisper_bleg={},eavesdrop_whisper_aleg={}",
            e.whisper_bleg, e.whisper_aleg
        ));
    }
    vars.push('}');
    match dial.endpoint {
        Endpoint::Number => vars.push_str(&dialing.template.replace("{number}", &dial.to)),
        Endpoint::Device => vars.push_str(
            &dialing
                .device_template
                .replace("{sipNumber}", &dial.to)
                .replace("{domain}", dialing.sip_domain),
        ),
    }
    vars
}

/// `originate … &park()` for leg `uuid` (sent with `bgapi`); a supervisor's leg
/// `… &eavesdrop(<target>)`.
pub fn originate(uuid: &str, dial: &Dial, dialing: &Dialing<'_>) -> String {
    let target = dial_target(uuid, dial, dialing);
    match &dial.eavesdrop {
        Some(e) => format!("originate {target} &eavesdrop({})", e.target),
        None => format!("originate {target} &park()"),
    }
}

/// The application name and argument of an [`App`] (`bridge` dials leg `target`).
pub fn application(
    app: &App,
    target: Option<&str>,
    dialing: &Dialing<'_>,
) -> (&'static str, String) {
    match app {
        App::Playback(file) => ("playback", file.clone()),
        App::Say(args) => ("say", args.clone()),
        App::Set(name, value) => ("set", format!("{name}={value}")),
        App::Bridge(_, dial) => (
            "bridge",
            dial_target(target.unwrap_or_default(), dial, dialing),
        ),
        App::Conference(room) => ("conference", room.clone()),
        App::Answer => ("answer", String::new()),
        App::OneKey(file, timeout_ms) => (
            "play_and_get_digits",
            format!("1 1 1 {timeout_ms} none {file} silence_stream://250 voicepaas_key [0-9*#]"),
        ),
    }
}

/// The `api` command of a [`MediaCommand`] on channel `uuid`.
pub fn api(uuid: &str, command: &MediaCommand) -> String {
    let hears = |h: &Hears| match h {
        Hears::This => "aleg",
        Hears::Both => "both",
    };
    match command {
        MediaCommand::Kill(cause) => format!("uuid_kill {uuid} {cause}"),
        MediaCommand::BreakAll => format!("uuid_break {uuid} all"),
        MediaCommand::Broadcast(file, h) => format!("uuid_broadcast {uuid} {file} {}", hears(h)),
        MediaCommand::HangupAfter(secs, cause) => format!("sched_hangup +{secs} {uuid} {cause}"),
        MediaCommand::BroadcastAfter(secs, file, h) => {
            format!("sched_broadcast +{secs} {uuid} {file} {}", hears(h))
        }
        MediaCommand::SetVar(name, value) => format!("uuid_setvar {uuid} {name} {value}"),
        MediaCommand::RecordStart(path) => format!("uuid_record {uuid} start {path}"),
        MediaCommand::SendDtmf(digits) => format!("uuid_send_dtmf {uuid} {digits}"),
        MediaCommand::Hold(true) => format!("uuid_hold {uuid}"),
        MediaCommand::Hold(false) => format!("uuid_hold off {uuid}"),
        MediaCommand::BridgeWith(other) => format!("uuid_bridge {uuid} {other}"),
        MediaCommand::BothToConference(room) => {
            format!("uuid_transfer {uuid} -both conference:{room} inline")
        }
        MediaCommand::ToConference(room) => {
            format!("uuid_transfer {uuid} conference:{room} inline")
        }
        MediaCommand::Park => format!("uuid_transfer {uuid} park inline"),
        MediaCommand::RecvDtmf(keys) => format!("uuid_recv_dtmf {uuid} {keys}"),
    }
}

/// Whether an `api` command's output says it worked.
pub fn succeeded(output: &str) -> bool {
    output.starts_with("+OK")
}

/// `uuid_dump <uuid> json`.
pub fn probe_command(uuid: &str) -> String {
    format!("uuid_dump {uuid} json")
}

/// What a `uuid_dump … json` answer says of the channel.
pub fn probe(output: &str) -> Probe {
    let output = output.trim();
    if output.starts_with("-ERR") {
        return Probe::Gone;
    }
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(output)
    else {
        return Probe::Unknown;
    };
    let micros = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|us| *us > 0)
            .map(|us| us / 1000)
    };
    if fields.get("Answer-State").and_then(|v| v.as_str()) == Some("hangup") {
        return Probe::Gone;
    }
    Probe::Alive {
        progress_at: micros("Caller-Channel-Progress-Time")
            .or_else(|| micros("Caller-Channel-Progress-Media-Time")),
        answered_at: micros("Caller-Channel-Answered-Time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_round_trip_within_their_generation() {
        let id = run_uuid(0xabc, 17);
        assert_eq!(run_of(&id, 0xabc), Some(17));
        assert_eq!(run_of(&id, 0xabd), None);
        assert_eq!(run_of("6c5c-…", 0xabc), None);
    }

    #[test]
    fn probes_read_uuid_dump() {
        assert_eq!(probe("-ERR No such channel!\n"), Probe::Gone);
        assert_eq!(probe("garbage"), Probe::Unknown);
        let alive = r#"{"Answer-State":"answered","Caller-Channel-Created-Time":"1796000311840876","Caller-Channel-Answered-Time":"1796000311840876","Caller-Channel-Progress-Time":"0"}"#;
        assert_eq!(
            probe(alive),
            Probe::Alive {
                progress_at: None,
                answered_at: Some(1_796_000_311_840)
            }
        );
    }

    #[test]
    fn signalling_keeps_only_what_it_can_be() {
        let end = |status: &str, proto: &str| {
            let e = Event::parse_plain(
                format!(
                    "Event-Name: CHANNEL_HANGUP_COMPLETE\nHangup-Cause: USER_BUSY\nvariable_sip_term_status: {status}\nvariable_proto_specific_hangup_cause: {proto}\n\n"
                )
                .as_bytes(),
            );
            match channel_event(&e, 1, e.timestamp_ms()) {
                Some(MediaEvent::HangupComplete { signalling, .. }) => signalling,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            end("486", "sip%3A486"),
            Signalling {
                sip_status: Some("486".into()),
                proto_cause: Some("sip:486".into())
            }
        );
        assert_eq!(end("4866", "sip:486 <script>"), Signalling::default());
        assert_eq!(end("abc", &"x".repeat(33)), Signalling::default());
    }

    #[test]
    fn commands() {
        let dialing = Dialing {
            template: "sofia/gateway/pstn/{number}",
            device_template: "user/{sipNumber}@{domain}",
            sip_domain: "voicepaas.local",
            installation: "shop1",
            max_secs: 14_400,
        };
        let device = Dial {
            to: "80000017".into(),
            from: Some("13800000001".into()),
            timeout_secs: 20,
            ignore_early_media: true,
            endpoint: Endpoint::Device,
            auto_answer: true,
            park_after_bridge: true,
            eavesdrop: None,
        };
        assert_eq!(
            originate("CA2", &device, &dialing),
            "originate {origination_uuid=CA2,originate_timeout=20,ignore_early_media=true,playback_terminators=none,voicepaas_install=shop1,execute_on_originate='sched_hangup +14400 ALLOTTED_TIMEOUT',origination_caller_id_number=13800000001,sip_auto_answer=true,park_after_bridge=true}user/80000017@voicepaas.local &park()"
        );
        let dial = Dial {
            to: "13800000001".into(),
            from: Some("0101".into()),
            timeout_secs: 45,
            ignore_early_media: true,
            ..Dial::default()
        };
        assert_eq!(
            originate(
                "CA1",
                &dial,
                &Dialing {
                    template: "sofia/gateway/pstn/{number}",
                    device_template: "user/{sipNumber}@{domain}",
                    sip_domain: "voicepaas.local",
                    installation: "shop1",
                    max_secs: 14_400,
                }
            ),
            "originate {origination_uuid=CA1,originate_timeout=45,ignore_early_media=true,playback_terminators=none,voicepaas_install=shop1,execute_on_originate='sched_hangup +14400 ALLOTTED_TIMEOUT',origination_caller_id_number=0101}sofia/gateway/pstn/13800000001 &park()"
        );
        assert_eq!(
            api(
                "CA1",
                &MediaCommand::HangupAfter(65, "ALLOTTED_TIMEOUT".into())
            ),
            "sched_hangup +65 CA1 ALLOTTED_TIMEOUT"
        );
    }
}
