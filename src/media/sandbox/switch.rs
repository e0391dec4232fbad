//! The sandbox's core, shared by every ESL connection: the channels, the event bus, the
//! conferences, and the API commands (`originate`, `uuid_*`, `status`, …).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::channel::{App, Channel, Command, Legs, Spawn};
use super::clock::SandboxClock;
use super::conference::Conferences;
use super::registrar::{Change, Registrar};
use crate::domain::PhoneNumber;
use crate::esl::Event;

/// Events buffered per listener before a slow one is cut off (FreeSWITCH kills listeners
/// that fall too far behind as well).
const EVENT_BUFFER: usize = 100_000;

/// Room for one event's headers: a channel event with its variables is 1–3 KB.
const EVENT_BYTES: usize = 4096;

/// How many connections subscribe to every event, and to each event name.
#[derive(Default)]
struct Interest {
    all: usize,
    names: HashMap<String, usize>,
}

/// The two date headers of the events of one second, formatted once for all of them.
#[derive(Default)]
struct EventDates {
    second: Option<i64>,
    local: String,
    gmt: String,
}

impl EventDates {
    /// The dates of the second holding `now_us`.
    fn at(&mut self, now_us: i64) -> &Self {
        let second = now_us.div_euclid(1_000_000);
        if self.second != Some(second) {
            let at = chrono::DateTime::<chrono::Utc>::from_timestamp(second, 0).unwrap_or_default();
            self.local = at.format("%Y-%m-%d %H:%M:%S").to_string();
            self.gmt = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            self.second = Some(second);
        }
        self
    }
}

/// The simulated FreeSWITCH.
pub struct Switch {
    /// The sandbox clock.
    pub clock: SandboxClock,
    core_uuid: String,
    sequence: AtomicU64,
    started_us: i64,
    sessions_since_start: AtomicU64,
    events: broadcast::Sender<Arc<Event>>,
    interest: Mutex<Interest>,
    dates: Mutex<EventDates>,
    channels: Mutex<HashMap<String, mpsc::Sender<Command>>>,
    conferences: Mutex<Conferences>,
    registrar: Mutex<Registrar>,
    /// Where relative recording paths go.
    pub recordings: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Switch {
    /// A switch on `clock`, writing relative recording paths under `recordings`.
    pub fn new(clock: SandboxClock, recordings: PathBuf) -> Arc<Self> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Arc::new(Self {
            started_us: clock.now_us(),
            clock,
            core_uuid: uuid::Uuid::new_v4().to_string(),
            sequence: AtomicU64::new(1),
            sessions_since_start: AtomicU64::new(0),
            events,
            interest: Mutex::new(Interest::default()),
            dates: Mutex::new(EventDates::default()),
            channels: Mutex::new(HashMap::new()),
            conferences: Mutex::new(Conferences::default()),
            registrar: Mutex::new(Registrar::default()),
            recordings,
        })
    }

    /// A new listener of every event.
    pub fn listen(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// An event with the headers every FreeSWITCH event starts with.
    pub fn base_event(&self, name: &str) -> Event {
        let now = self.clock.now_us();
        let mut e = Event::with_capacity(EVENT_BYTES);
        let h = &mut e;
        h.push("Event-Name", name);
        h.push("Core-UUID", &self.core_uuid);
        h.push("FreeSWITCH-Hostname", "voicepaas-sandbox");
        h.push("FreeSWITCH-Switchname", "voicepaas-sandbox");
        h.push("FreeSWITCH-IPv4", "127.0.0.1");
        h.push("FreeSWITCH-IPv6", "::1");
        {
            let mut dates = lock(&self.dates);
            let dates = dates.at(now);
            h.push("Event-Date-Local", &dates.local);
            h.push("Event-Date-GMT", &dates.gmt);
        }
        h.push("Event-Date-Timestamp", now.to_string());
        h.push("Event-Calling-File", "sandbox.rs");
        h.push("Event-Calling-Function", "sandbox");
        h.push("Event-Calling-Line-Number", "1");
        h.push(
            "Event-Sequence",
            self.sequence.fetch_add(1, Ordering::Relaxed).to_string(),
        );
        e
    }

    /// Fires event `name`: built by `build` and published when some connection subscribes
    /// to it (by name or to all), otherwise only numbered — it takes its sequence number,
    /// so the numbers listeners see keep FreeSWITCH's gaps, but nobody formats it.
    pub fn fire(&self, name: &str, build: impl FnOnce() -> Event) {
        if self.wanted(name) {
            self.publish(build());
        } else {
            self.sequence.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether some connection subscribes to events named `name` (or to all of them).
    fn wanted(&self, name: &str) -> bool {
        let interest = lock(&self.interest);
        interest.all > 0 || interest.names.contains_key(name)
    }

    /// Counts one connection's subscriptions (`all`, `names`) in what channels build
    /// (`add`), or out of it.
    pub fn count_interest(&self, all: bool, names: &HashSet<String>, add: bool) {
        let mut interest = lock(&self.interest);
        if all {
            interest.all = if add {
                interest.all + 1
            } else {
                interest.all.saturating_sub(1)
            };
        }
        for name in names {
            if add {
                *interest.names.entry(name.clone()).or_default() += 1;
            } else if let Some(count) = interest.names.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    interest.names.remove(name);
                }
            }
        }
    }

    /// Sends an event to every listener.
    pub fn publish(&self, event: Event) {
        let _ = self.events.send(Arc::new(event));
    }

    /// Publishes a HEARTBEAT every 20 s of sandbox time, as FreeSWITCH does, until `stop`.
    pub async fn heartbeat(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.clock.deadline(Duration::from_secs(20))) => {}
                _ = stop.changed() => return,
            }
            let mut e = self.base_event("HEARTBEAT");
            let up = Duration::from_micros((self.clock.now_us() - self.started_us).max(0) as u64);
            e.push("Event-Info", "System Ready");
            e.push(
                "Up-Time",
                format!(
                    "0 years, 0 days, 0 hours, {} minutes, {} seconds",
                    up.as_secs() / 60,
                    up.as_secs() % 60
                ),
            );
            e.push("Session-Count", lock(&self.channels).len().to_string());
            e.push(
                "Session-Since-Startup",
                self.sessions_since_start
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
            e.push("Heartbeat-Interval", "20");
            self.publish(e);
        }
    }

    /// Passes `command` to channel `uuid` (ignored if it is gone).
    pub fn tell(&self, uuid: &str, command: Command) -> bool {
        let sender = lock(&self.channels).get(uuid).cloned();
        match sender {
            Some(sender) => sender.try_send(command).is_ok(),
            None => false,
        }
    }

    /// Removes a destroyed channel.
    pub fn forget(&self, uuid: &str) {
        lock(&self.channels).remove(uuid);
    }

    fn exists(&self, uuid: &str) -> bool {
        lock(&self.channels).contains_key(uuid)
    }

    /// Starts a B leg for a `bridge` application of channel `a_leg`.
    pub fn originate_leg(self: &Arc<Self>, dial: &str, a_leg: &str) {
        let request = parse_originate(&format!("{dial} &park()"));
        self.start_channel(Spawn {
            uuid: request
                .vars
                .get("origination_uuid")
                .cloned()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            number: request.number,
            dial: request.dial,
            vars: request.vars,
            first_app: None,
            job: None,
            result: None,
            bridge_for: Some(a_leg.to_string()),
            caller: None,
        });
    }

    /// A simulated caller `from` dialling DID `to` (with the platform's `call_sid` for it,
    /// if given); the new channel's uuid.
    pub fn dial_in(self: &Arc<Self>, from: &str, to: &str, call_sid: Option<&str>) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let vars = call_sid
            .map(|sid| ("voicepaas_call_sid".to_string(), sid.to_string()))
            .into_iter()
            .collect();
        self.start_channel(Spawn {
            uuid: uuid.clone(),
            number: to.to_string(),
            dial: format!("sofia/sandbox/{to}"),
            vars,
            first_app: None,
            job: None,
            result: None,
            bridge_for: None,
            caller: Some(from.to_string()),
        });
        uuid
    }

    /// Agent device `device` dials `number` from its phone: as FreeSWITCH runs it, the
    /// directory's variables on the channel and the agents' context's extension parking
    /// it; the channel's uuid.
    pub fn agent_dial(self: &Arc<Self>, device: &str, number: &str) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let vars = [
            ("user_name", device),
            ("user_context", super::channel::AGENTS_CONTEXT),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        self.start_channel(Spawn {
            uuid: uuid.clone(),
            number: number.to_string(),
            dial: format!("sofia/sandbox/{number}"),
            vars,
            first_app: None,
            job: None,
            result: None,
            bridge_for: None,
            caller: Some(device.to_string()),
        });
        uuid
    }

    fn start_channel(self: &Arc<Self>, spawn: Spawn) {
        let uuid = spawn.uuid.clone();
        self.sessions_since_start.fetch_add(1, Ordering::Relaxed);
        let mut channels = lock(&self.channels);
        let sender = Channel::spawn(self.clone(), spawn);
        channels.insert(uuid, sender);
    }

    /// Whether device `user` can be reached (it did not unregister nor let its
    /// registration lapse).
    pub fn registered(&self, user: &str) -> bool {
        lock(&self.registrar).is_registered(user)
    }

    /// Device `user` of `domain` registers for `expires` seconds (0: unregisters); a
    /// registration not renewed by then lapses with `sofia::expire`.
    fn register(self: &Arc<Self>, user: &str, domain: &str, expires: u32) {
        let now = self.clock.now_us();
        let (change, until) = lock(&self.registrar).register(user, expires, now);
        let base = self.base_event("CUSTOM");
        self.publish(Registrar::event(change, user, domain, expires, base));
        let Some(until) = until else {
            return;
        };
        let (switch, user, domain) = (self.clone(), user.to_string(), domain.to_string());
        let deadline = self
            .clock
            .deadline(std::time::Duration::from_secs(u64::from(expires)));
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let now = switch.clock.now_us().max(until);
            if lock(&switch.registrar).lapse(&user, until, now) {
                let base = switch.base_event("CUSTOM");
                switch.publish(Registrar::event(Change::Expire, &user, &domain, 0, base));
            }
        });
    }

    /// Adds a channel (`uuid`, its channel name and caller number) to conference `room`
    /// (`name@profile`), with its maintenance events.
    pub fn join_conference(&self, room: &str, member: (&str, &str, &str)) {
        let events = lock(&self.conferences).join(room, member, || self.base_event("CUSTOM"));
        events.into_iter().for_each(|e| self.publish(e));
    }

    /// Removes a channel from a conference (the conference ends with its last member),
    /// with its maintenance events.
    pub fn leave_conference(&self, name: &str, uuid: &str) {
        let events = lock(&self.conferences).leave(name, uuid, || self.base_event("CUSTOM"));
        events.into_iter().for_each(|e| self.publish(e));
    }

    /// `bgapi <line>` with `job_uuid`: the result arrives as a BACKGROUND_JOB event.
    pub fn bgapi(self: &Arc<Self>, line: &str, job_uuid: String) {
        let (command, args) = line.split_once(' ').unwrap_or((line, ""));
        if command == "originate" {
            // The channel itself reports the result when it answers or fails.
            self.originate(
                args,
                Some((job_uuid, command.to_string(), args.to_string())),
                None,
            );
            return;
        }
        let switch = self.clone();
        let (command, args, line) = (command.to_string(), args.to_string(), line.to_string());
        tokio::spawn(async move {
            let output = switch.api(&line).await;
            let mut e = switch.base_event("BACKGROUND_JOB");
            e.push("Job-UUID", job_uuid);
            e.push("Job-Command", command);
            e.push("Job-Command-Arg", args);
            e.body = Some(output);
            switch.publish(e);
        });
    }

    fn originate(
        self: &Arc<Self>,
        args: &str,
        job: Option<(String, String, String)>,
        result: Option<oneshot::Sender<String>>,
    ) -> Option<String> {
        let request = parse_originate(args);
        if request.dial.is_empty() {
            return None;
        }
        let uuid = request
            .vars
            .get("origination_uuid")
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.exists(&uuid) {
            return None;
        }
        self.start_channel(Spawn {
            uuid: uuid.clone(),
            number: request.number,
            dial: request.dial,
            vars: request.vars,
            first_app: Some(request.app),
            job,
            result,
            bridge_for: None,
            caller: None,
        });
        Some(uuid)
    }

    /// Runs an API command; returns its output as FreeSWITCH would.
    pub async fn api(self: &Arc<Self>, line: &str) -> String {
        let line = line.trim();
        let (command, args) = line
            .split_once(' ')
            .map_or((line, ""), |(c, a)| (c, a.trim()));
        let arg = |i: usize| args.split_whitespace().nth(i).unwrap_or_default();
        let arg_or = |i: usize, default: &'static str| {
            Some(arg(i)).filter(|a| !a.is_empty()).unwrap_or(default)
        };
        let no_channel = "-ERR No such channel!\n".to_string();
        // Passes a command to a channel: `ok` if it exists, FreeSWITCH's "no such channel" if not.
        let told = |uuid: &str, command: Command, ok: &str| {
            if self.tell(uuid, command) {
                ok.to_string()
            } else {
                no_channel.clone()
            }
        };
        match command {
            "originate" => {
                let (tx, rx) = oneshot::channel();
                match self.originate(args, None, Some(tx)) {
                    None => "-ERR INVALID_GATEWAY\n".into(),
                    Some(_) => rx.await.unwrap_or_else(|_| "-ERR SYSTEM_SHUTDOWN\n".into()),
                }
            }
            "uuid_kill" => {
                let cause = arg_or(1, "NORMAL_CLEARING");
                told(arg(0), Command::Hangup(cause.into()), "+OK\n")
            }
            "uuid_exists" => self.exists(arg(0)).to_string(),
            // Sleeps on the sandbox clock, inline: the connection's events wait for the
            // reply, as they do on FreeSWITCH (esl-transcripts 89).
            "msleep" => match arg(0).parse::<u64>() {
                Ok(ms) => {
                    let until = self.clock.deadline(Duration::from_millis(ms));
                    tokio::time::sleep_until(until).await;
                    "+OK".into()
                }
                Err(_) => "-USAGE: <milliseconds>\n".into(),
            },
            // The sandbox's own: a simulated caller `from` dials DID `to` (agents' contract
            // §12), the platform's callSid for it riding along as `voicepaas_call_sid`;
            // FreeSWITCH answers an unknown command with `-ERR … Command not found!`.
            "voicepaas_inbound" => match (
                PhoneNumber::parse("from", arg(0)),
                PhoneNumber::parse("to", arg(1)),
            ) {
                (Ok(from), Ok(to)) => {
                    let call_sid = Some(arg(2)).filter(|s| !s.is_empty());
                    format!(
                        "+OK {}\n",
                        self.dial_in(from.as_str(), to.as_str(), call_sid)
                    )
                }
                _ => "-ERR usage: voicepaas_inbound <from> <to> [callSid]\n".into(),
            },
            // The sandbox's own: agent device `<sipNumber>` dials `<number>` from its
            // phone (agents' contract §11.2): the channel parks in the agents' context.
            "voicepaas_agent_dial" => match (
                PhoneNumber::parse("device", arg(0)),
                PhoneNumber::parse("number", arg(1)),
            ) {
                (Ok(device), Ok(number)) => {
                    format!(
                        "+OK {}\n",
                        self.agent_dial(device.as_str(), number.as_str())
                    )
                }
                _ => "-ERR usage: voicepaas_agent_dial <sipNumber> <number>\n".into(),
            },
            // Every agent's device counts as registered (agents' contract §12) unless it
            // was made to unregister or its registration lapsed.
            "sofia_contact" => {
                let user = arg(0).split('@').next().unwrap_or_default();
                lock(&self.registrar).contact_of(user)
            }
            // The sandbox's own: device `<user>@<domain>` registers for `expires` seconds
            // (0: unregisters), with the sofia:: events of a real registration.
            "voicepaas_register" => match (arg(0).split_once('@'), arg(1).parse::<u32>()) {
                (Some((user, domain)), Ok(expires)) if !user.is_empty() => {
                    self.register(user, domain, expires);
                    "+OK\n".into()
                }
                _ => "-ERR usage: voicepaas_register <user>@<domain> <expires>\n".into(),
            },
            // `uuid_break <uuid> [all]`: as FreeSWITCH, any flag naming `all`.
            "uuid_break" => told(
                arg(0),
                Command::Break {
                    all: arg(1).contains("all"),
                },
                "+OK\n",
            ),
            "uuid_hold" => match arg(0) {
                "off" => told(arg(1), Command::Hold(false), "+OK Success\n"),
                uuid => told(uuid, Command::Hold(true), "+OK Success\n"),
            },
            "uuid_transfer" => {
                // uuid_transfer <uuid> [-bleg|-both] <app:arg> inline
                let both = arg(1) == "-both";
                let dest = if arg(1).starts_with('-') {
                    arg(2)
                } else {
                    arg(1)
                };
                // `park inline` names an application without data.
                let (app, data) = dest.split_once(':').unwrap_or((dest, ""));
                match (app, data) {
                    (app, data) if !app.is_empty() && args.contains(" inline") => told(
                        arg(0),
                        Command::Transfer(
                            App {
                                name: app.to_string(),
                                arg: data.to_string(),
                                event_uuid: None,
                            },
                            both,
                        ),
                        "+OK\n",
                    ),
                    _ => {
                        "-ERR the sandbox transfers only to inline applications (app:arg inline)\n"
                            .into()
                    }
                }
            }
            "uuid_send_dtmf" | "uuid_recv_dtmf" => {
                let digits: String = arg(1)
                    .chars()
                    .filter(|c| c.is_ascii_digit() || "*#ABCD".contains(*c))
                    .collect();
                told(arg(0), Command::Dtmf(digits), "+OK\n")
            }
            "uuid_bridge" => {
                let (a, b) = (arg(0), arg(1));
                if !self.exists(a) || !self.exists(b) {
                    return "-ERR Invalid uuid\n".into();
                }
                // Only the originating leg reports CHANNEL_BRIDGE; the other just knows its partner.
                self.tell(a, Command::Bridged(b.to_string(), true));
                self.tell(b, Command::Bridged(a.to_string(), false));
                format!("+OK {b}\n")
            }
            "uuid_broadcast" => {
                let (uuid, path) = (arg(0), arg(1));
                told(
                    uuid,
                    Command::Broadcast(Duration::ZERO, broadcast_path(path), Legs::parse(arg(2))),
                    "+OK Message sent\n",
                )
            }
            "sched_broadcast" => {
                let Some(delay) = parse_delay(arg(0)) else {
                    return "-ERR Usage: sched_broadcast [[+]<time>|@time] <uuid> <path> [aleg|bleg|both]\n".into();
                };
                told(
                    arg(1),
                    Command::Broadcast(delay, broadcast_path(arg(2)), Legs::parse(arg(3))),
                    "+OK Message scheduled\n",
                )
            }
            "sched_hangup" => {
                let Some(delay) = parse_delay(arg(0)) else {
                    return "-ERR Usage: sched_hangup [+]<time> <uuid> [<cause>]\n".into();
                };
                let cause = arg_or(2, "ALLOTTED_TIMEOUT");
                told(
                    arg(1),
                    Command::ScheduleHangup(delay, cause.into()),
                    "+OK\n",
                )
            }
            "uuid_record" => {
                let start = match arg(1) {
                    "start" => true,
                    "stop" => false,
                    _ => {
                        return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n".into();
                    }
                };
                let path = self.recording_path(arg(2));
                told(arg(0), Command::Record { start, path }, "+OK Success\n")
            }
            "uuid_setvar" => {
                let value = args
                    .split_whitespace()
                    .skip(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                told(arg(0), Command::SetVar(arg(1).to_string(), value), "+OK\n")
            }
            "uuid_dump" => {
                let (tx, rx) = oneshot::channel();
                if !self.tell(arg(0), Command::Dump(tx)) {
                    return no_channel;
                }
                match rx.await {
                    Ok(event) if arg(1) == "json" => dump_json(&event),
                    Ok(event) => String::from_utf8_lossy(&event.encode_plain()).into_owned(),
                    Err(_) => no_channel,
                }
            }
            "uuid_getvar" => {
                let (tx, rx) = oneshot::channel();
                if !self.tell(arg(0), Command::GetVar(arg(1).to_string(), tx)) {
                    return no_channel;
                }
                rx.await.ok().flatten().unwrap_or_else(|| "_undef_".into())
            }
            "status" => self.status(),
            "version" => "FreeSWITCH Version 1.10.12-release~64bit (voicepaas sandbox)\n".into(),
            "show" if args.starts_with("channels") || args.starts_with("calls") => {
                self.show_channels(args.ends_with("as json")).await
            }
            "conference" => self.conference(args),
            "hupall" => {
                let uuids: Vec<String> = lock(&self.channels).keys().cloned().collect();
                let cause = arg_or(0, "MANAGER_REQUEST");
                for uuid in uuids {
                    self.tell(&uuid, Command::Hangup(cause.into()));
                }
                format!("+OK hangup all channels with cause {cause}\n")
            }
            "" => "-ERR no command given\n".into(),
            _ => format!("-ERR {command} Command not found!\n"),
        }
    }

    fn recording_path(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            self.recordings.join(path).display().to_string()
        }
    }

    fn status(&self) -> String {
        let up = Duration::from_micros((self.clock.now_us() - self.started_us).max(0) as u64);
        let live = lock(&self.channels).len();
        let s = up.as_secs();
        format!(
            "UP 0 years, {} days, {} hours, {} minutes, {} seconds, {} milliseconds, 0 microseconds\n\
             FreeSWITCH (Version 1.10.12-release voicepaas sandbox) is ready\n\
             {} session(s) since startup\n{live} session(s) - peak {live}, last 5min {live} \n\
             0 session(s) per Sec out of max 1000000, peak 0, last 5min 0 \n1000000 session(s) max\nmin idle cpu 0.00/100.00\n",
            s / 86_400,
            s / 3600 % 24,
            s / 60 % 60,
            s % 60,
            up.subsec_millis(),
            self.sessions_since_start.load(Ordering::Relaxed),
        )
    }

    /// `show channels [as json]`: a row per channel with FreeSWITCH's column names (a
    /// subset), built from each channel's dump, ordered by uuid.
    async fn show_channels(&self, json: bool) -> String {
        const COLUMNS: [&str; 10] = [
            "uuid",
            "direction",
            "created_epoch",
            "name",
            "state",
            "cid_num",
            "dest",
            "application",
            "application_data",
            "callstate",
        ];
        let mut uuids: Vec<String> = lock(&self.channels).keys().cloned().collect();
        uuids.sort();
        let mut rows: Vec<[String; 10]> = Vec::with_capacity(uuids.len());
        for uuid in &uuids {
            // A channel too busy to describe itself is still listed, by its uuid.
            let (tx, rx) = oneshot::channel();
            let dump = match self.tell(uuid, Command::Dump(tx)) {
                true => rx.await.ok(),
                false => None,
            };
            let field = |name: &str| {
                dump.as_ref()
                    .and_then(|d| d.get(name))
                    .unwrap_or_default()
                    .to_string()
            };
            let created_us: i64 = field("Caller-Channel-Created-Time").parse().unwrap_or(0);
            rows.push([
                uuid.clone(),
                field("Call-Direction"),
                (created_us / 1_000_000).to_string(),
                field("Channel-Name"),
                field("Channel-State"),
                field("Caller-Caller-ID-Number"),
                field("Caller-Destination-Number"),
                field("variable_current_application"),
                field("variable_current_application_data"),
                field("Channel-Call-State"),
            ]);
        }
        if json {
            if rows.is_empty() {
                return "{\"row_count\": 0}\n".into();
            }
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    COLUMNS
                        .iter()
                        .zip(row)
                        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
                        .collect::<serde_json::Map<_, _>>()
                        .into()
                })
                .collect();
            return format!(
                "{}\n",
                serde_json::json!({"row_count": rows.len(), "rows": rows})
            );
        }
        let mut out = format!("{}\n", COLUMNS.join(","));
        for row in &rows {
            out.push_str(&format!("{}\n", row.join(",")));
        }
        out.push_str(&format!("\n{} total.\n", rows.len()));
        out
    }

    /// `conference list`, `conference <name> list [count]`, `conference <name> kick|hup
    /// <all|member id|uuid>`.
    fn conference(&self, args: &str) -> String {
        let mut words = args.split_whitespace();
        let (name, action) = (
            words.next().unwrap_or("list"),
            words.next().unwrap_or("list"),
        );
        if name == "list" {
            return lock(&self.conferences).list_all();
        }
        let Some(list) = lock(&self.conferences).list(name) else {
            return format!("-ERR Conference {name} not found\n");
        };
        match (action, words.next()) {
            // The count alone, with no newline (esl-transcripts 83).
            ("list", Some("count")) => list.lines().count().to_string(),
            ("list", _) => list,
            ("kick" | "hup", target) => {
                let target = target.unwrap_or("all");
                // Each line: member id;channel;uuid;…
                for line in list.lines() {
                    let mut fields = line.split(';');
                    let (id, uuid) = (fields.next(), fields.nth(1));
                    if let (Some(id), Some(uuid)) = (id, uuid)
                        && (target == "all" || target == id || target == uuid)
                    {
                        self.tell(uuid, Command::Hangup("NORMAL_CLEARING".into()));
                    }
                }
                "+OK kicked\n".into()
            }
            _ => format!("-ERR unknown conference command {action}\n"),
        }
    }
}

/// `uuid_dump <uuid> json`: the headers as one JSON object, in order, no trailing newline.
fn dump_json(event: &Event) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in event.headers().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(name.to_string()).to_string());
        out.push(':');
        out.push_str(&serde_json::Value::String(value.to_string()).to_string());
    }
    out.push('}');
    out
}

/// `uuid_broadcast` takes a file or `app::args`; the sandbox plays files.
fn broadcast_path(path: &str) -> String {
    path.strip_prefix("playback::").unwrap_or(path).to_string()
}

/// `[+]<secs>`.
/// A `[+]<secs>` delay of `sched_hangup`/`sched_broadcast` (and `execute_on_originate`).
pub(super) fn parse_delay(s: &str) -> Option<Duration> {
    s.strip_prefix('+')
        .unwrap_or(s)
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// An `originate` command's parts.
#[derive(Debug, PartialEq)]
struct Originate {
    vars: HashMap<String, String>,
    dial: String,
    number: String,
    app: App,
}

/// Parses `{k=v,…}[k=v]<dial> &app(arg)|<exten> …`. The callee number is the last
/// `/`-separated segment of the dial string.
fn parse_originate(args: &str) -> Originate {
    let mut rest = args.trim();
    let mut vars = HashMap::new();
    while let Some(open) = rest.chars().next().filter(|c| *c == '{' || *c == '[') {
        let close = if open == '{' { '}' } else { ']' };
        let Some(end) = rest.find(close) else { break };
        for pair in split_unescaped(&rest[1..end]) {
            if let Some((k, v)) = pair.split_once('=') {
                let v = v.replace("\\,", ",");
                let v = v
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map_or(v.clone(), str::to_string);
                vars.insert(k.trim().to_string(), v);
            }
        }
        rest = &rest[end + 1..];
    }
    let (dial, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let number = dial
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    let target = after.split_whitespace().next().unwrap_or_default();
    let app = match target.strip_prefix('&') {
        Some(call) => {
            let (name, arg) = call.split_once('(').unwrap_or((call, ")"));
            App {
                name: name.to_string(),
                arg: arg.strip_suffix(')').unwrap_or(arg).to_string(),
                event_uuid: None,
            }
        }
        None => App {
            name: "park".into(),
            arg: String::new(),
            event_uuid: None,
        },
    };
    Originate {
        vars,
        dial: dial.to_string(),
        number,
        app,
    }
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        match c {
            ',' if !escaped => out.push(String::new()),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
        escaped = c == '\\' && !escaped;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_build_the_events_some_connection_subscribes_to() {
        let switch = Switch::new(SandboxClock::new(1.0), PathBuf::from("/tmp"));
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<HashSet<_>>();
        assert!(!switch.wanted("CHANNEL_ANSWER"));
        switch.count_interest(false, &names(&["CHANNEL_ANSWER", "DTMF"]), true);
        switch.count_interest(false, &names(&["CHANNEL_ANSWER"]), true);
        assert!(switch.wanted("CHANNEL_ANSWER") && switch.wanted("DTMF"));
        assert!(!switch.wanted("CHANNEL_STATE"));
        switch.count_interest(false, &names(&["CHANNEL_ANSWER", "DTMF"]), false);
        assert!(switch.wanted("CHANNEL_ANSWER") && !switch.wanted("DTMF"));
        switch.count_interest(true, &HashSet::new(), true);
        assert!(switch.wanted("CHANNEL_STATE"));
        switch.count_interest(true, &HashSet::new(), false);
        switch.count_interest(false, &names(&["CHANNEL_ANSWER"]), false);
        assert!(!switch.wanted("CHANNEL_ANSWER") && !switch.wanted("CHANNEL_STATE"));
        // An event fired for nobody still takes its sequence number.
        let seq = |e: &Event| e.get("Event-Sequence").unwrap().parse::<u64>().unwrap();
        let first = seq(&switch.base_event("CHANNEL_ANSWER"));
        switch.fire("CHANNEL_STATE", || unreachable!("nobody subscribes to it"));
        assert_eq!(seq(&switch.base_event("CHANNEL_ANSWER")), first + 2);
    }

    #[test]
    fn event_dates_are_those_of_the_events_second() {
        let mut dates = EventDates::default();
        let at = dates.at(1_764_646_304_999_999);
        assert_eq!(
            (at.local.as_str(), at.gmt.as_str()),
            ("2025-12-02 03:31:44", "Tue, 02 Dec 2025 03:31:44 GMT")
        );
        assert_eq!(dates.at(1_764_646_305_000_000).local, "2025-12-02 03:31:45");
    }

    #[test]
    fn originate_parts() {
        let o = parse_originate(
            "{origination_uuid=abc,origination_caller_id_number=0101,originate_timeout=45,x=a\\,b}sofia/gateway/pstn/13800009993 &park()",
        );
        assert_eq!(o.vars["origination_uuid"], "abc");
        assert_eq!(o.vars["x"], "a,b");
        assert_eq!(o.number, "13800009993");
        assert_eq!((o.app.name.as_str(), o.app.arg.as_str()), ("park", ""));
        let o = parse_originate("loopback/9664 &playback(tone_stream://%(1000,0,440))");
        assert_eq!(
            (o.number.as_str(), o.app.name.as_str()),
            ("9664", "playback")
        );
        assert_eq!(parse_originate("user/1000@example.com 9999").number, "1000");
        let o = parse_originate(
            "{execute_on_originate='sched_hangup +60 ALLOTTED_TIMEOUT',y=1}sofia/gateway/pstn/1 &park()",
        );
        assert_eq!(
            o.vars["execute_on_originate"],
            "sched_hangup +60 ALLOTTED_TIMEOUT"
        );
        assert_eq!(o.number, "1");
    }
}
