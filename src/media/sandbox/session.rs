//! One Event Socket connection to the sandbox, answered as FreeSWITCH's mod_event_socket
//! answers (ESL.md §1–2): `auth/request` greeting, `command/reply`, `api/response`,
//! `text/event-plain` events through the connection's subscriptions and filters,
//! `text/disconnect-notice` on exit. Garbage or oversized input ends this connection only.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;

use super::channel::{App, Command};
use super::switch::Switch;
use crate::esl::Event;
use crate::esl::codec::{Decoder, Direction, Headers, Message};

/// FreeSWITCH drops a connection that has not authenticated within this long.
const AUTH_TIMEOUT: Duration = Duration::from_secs(25);
const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// What this connection listens to. Its subscriptions are counted in the switch's
/// interest while it lives, so channels build the events it will receive.
struct Listening {
    switch: Arc<Switch>,
    all: bool,
    names: HashSet<String>,
    filters: Vec<(String, String)>,
}

impl Listening {
    fn new(switch: Arc<Switch>) -> Self {
        Listening {
            switch,
            all: false,
            names: HashSet::new(),
            filters: Vec::new(),
        }
    }

    /// Changes the subscriptions (`all`, `names`), keeping the switch's count in step.
    fn subscribe(&mut self, change: impl FnOnce(&mut bool, &mut HashSet<String>)) {
        self.switch.count_interest(self.all, &self.names, false);
        change(&mut self.all, &mut self.names);
        self.switch.count_interest(self.all, &self.names, true);
    }

    fn wants(&self, event: &Event) -> bool {
        // A CUSTOM event by its subclass (`event plain CUSTOM conference::maintenance`).
        let name = match event.name() {
            "CUSTOM" => event.get("Event-Subclass").unwrap_or_default(),
            name => name,
        };
        (self.all || self.names.contains(name))
            && (self.filters.is_empty()
                || self
                    .filters
                    .iter()
                    .any(|(h, v)| event.get(h).is_some_and(|x| x.eq_ignore_ascii_case(v))))
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.switch.count_interest(self.all, &self.names, false);
    }
}

fn reply(text: &str) -> Vec<u8> {
    let mut headers = Headers::default();
    headers.push("Content-Type", "command/reply");
    headers.push("Reply-Text", text);
    Message {
        command: None,
        headers,
        body: None,
    }
    .encode()
}

fn with_body(content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let mut headers = Headers::default();
    if content_type == "text/event-plain" {
        // FreeSWITCH writes an event's length first, a reply's after its type.
        headers.push("Content-Length", "");
    }
    headers.push("Content-Type", content_type);
    Message {
        command: None,
        headers,
        body: Some(body),
    }
    .encode()
}

/// Serves one connection until it closes.
pub async fn serve(
    switch: Arc<Switch>,
    mut stream: TcpStream,
    password: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut events = switch.listen();
    let mut decoder = Decoder::new(Direction::FromClient);
    let mut listening = Listening::new(switch.clone());
    let mut authed = false;
    let auth_deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let mut buf = vec![0u8; 16 * 1024];
    if stream
        .write_all(&with_headers_only("auth/request"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        // Everything already received, in order.
        loop {
            let message = match decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => return, // garbage: drop this connection
            };
            match handle(&switch, &message, &mut authed, &mut listening, &password).await {
                Reply::Send(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Reply::Close(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream
                        .write_all(&with_body(
                            "text/disconnect-notice",
                            GOODBYE.as_bytes().to_vec(),
                        ))
                        .await;
                    return;
                }
            }
        }
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => decoder.feed(&buf[..n]),
            },
            event = events.recv(), if authed => match event {
                Ok(event) => {
                    if listening.wants(&event) {
                        let bytes = with_body("text/event-plain", event.encode_plain());
                        if stream.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                }
                // Too slow to keep up: cut off, as FreeSWITCH does.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            _ = stop.changed() => return,
            _ = tokio::time::sleep_until(auth_deadline), if !authed => {
                let _ = stream.write_all(&with_body("text/disconnect-notice", GOODBYE.as_bytes().to_vec())).await;
                return;
            }
        }
    }
}

fn with_headers_only(content_type: &str) -> Vec<u8> {
    let mut headers = Headers::default();
    headers.push("Content-Type", content_type);
    Message {
        command: None,
        headers,
        body: None,
    }
    .encode()
}

enum Reply {
    Send(Vec<u8>),
    Close(Vec<u8>),
}

async fn handle(
    switch: &Arc<Switch>,
    message: &Message,
    authed: &mut bool,
    listening: &mut Listening,
    password: &str,
) -> Reply {
    let line = message.command.clone().unwrap_or_default();
    let (command, args) = line
        .split_once(' ')
        .map_or((line.as_str(), ""), |(c, a)| (c, a.trim()));
    let command = command.to_ascii_lowercase();
    if !*authed {
        return match command.as_str() {
            "auth" if args == password => {
                *authed = true;
                Reply::Send(reply("+OK accepted"))
            }
            "auth" => Reply::Close(reply("-ERR invalid")),
            "exit" => Reply::Close(reply("+OK bye")),
            _ => Reply::Send(reply("-ERR command not found")),
        };
    }
    let ok = |text: String| Reply::Send(reply(&text));
    match command.as_str() {
        "api" => Reply::Send(with_body(
            "api/response",
            switch.api(args).await.into_bytes(),
        )),
        "bgapi" => {
            let job_uuid = message
                .headers
                .get("Job-UUID")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            // The reply goes out before the job can finish: the job runs on the event bus.
            let mut headers = Headers::default();
            headers.push("Content-Type", "command/reply");
            headers.push("Reply-Text", format!("+OK Job-UUID: {job_uuid}"));
            headers.push("Job-UUID", job_uuid.clone());
            switch.bgapi(args, job_uuid);
            Reply::Send(
                Message {
                    command: None,
                    headers,
                    body: None,
                }
                .encode(),
            )
        }
        "event" => {
            let mut words = args.split_whitespace().peekable();
            if let Some(format) = words
                .peek()
                .copied()
                .filter(|w| ["plain", "json", "xml"].contains(w))
            {
                if format != "plain" {
                    return ok(format!(
                        "-ERR the sandbox speaks event plain only, not {format}"
                    ));
                }
                words.next();
            }
            let names: Vec<&str> = words.collect();
            if names.is_empty() {
                return ok("-ERR no keywords supplied".into());
            }
            listening.subscribe(|all, subscribed| {
                for name in names {
                    if name.eq_ignore_ascii_case("ALL") {
                        *all = true;
                    } else {
                        subscribed.insert(name.to_string());
                    }
                }
            });
            ok("+OK event listener enabled plain".into())
        }
        "nixevent" => {
            listening.subscribe(|all, subscribed| {
                for name in args.split_whitespace() {
                    if name.eq_ignore_ascii_case("ALL") {
                        *all = false;
                    }
                    subscribed.remove(name);
                }
            });
            ok("+OK events nixed".into())
        }
        "noevents" => {
            listening.subscribe(|all, subscribed| {
                *all = false;
                subscribed.clear();
            });
            ok("+OK no longer listening for events".into())
        }
        "filter" => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("delete"), Some("all"), _) => {
                    listening.filters.clear();
                    ok("+OK filter deleted. [all]".into())
                }
                (Some("delete"), Some(header), value) => {
                    listening.filters.retain(|(h, v)| {
                        !(h.eq_ignore_ascii_case(header) && value.is_none_or(|x| x == v))
                    });
                    ok(format!(
                        "+OK filter deleted. [{header}][{}]",
                        value.unwrap_or_default()
                    ))
                }
                (Some(header), Some(_), _) => {
                    let value = args[header.len()..].trim().to_string();
                    listening.filters.push((header.to_string(), value.clone()));
                    ok(format!("+OK filter added. [{header}]=[{value}]"))
                }
                _ => ok("-ERR invalid filter".into()),
            }
        }
        "myevents" => {
            listening.subscribe(|all, _| *all = true);
            listening
                .filters
                .push(("Unique-ID".into(), args.to_string()));
            ok("+OK Events Enabled".into())
        }
        "sendmsg" => {
            let uuid = args.split_whitespace().next().unwrap_or_default();
            let h = &message.headers;
            let command = match h.get("call-command").unwrap_or("execute") {
                "hangup" => Command::Hangup(
                    h.get("hangup-cause")
                        .unwrap_or("NORMAL_CLEARING")
                        .to_string(),
                ),
                _ => {
                    let body_arg = message
                        .body
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).trim().to_string());
                    Command::Execute(App {
                        name: h.get("execute-app-name").unwrap_or_default().to_string(),
                        arg: h
                            .get("execute-app-arg")
                            .map(str::to_string)
                            .or(body_arg)
                            .unwrap_or_default(),
                        event_uuid: h.get("event-uuid").map(str::to_string),
                    })
                }
            };
            if switch.tell(uuid, command) {
                ok("+OK".into())
            } else {
                ok(format!("-ERR invalid session id [{uuid}]"))
            }
        }
        "log" => ok(format!(
            "+OK log level {0} [{0}]",
            if args.is_empty() { "7" } else { args }
        )),
        "nolog" => ok("+OK no longer logging".into()),
        "linger" | "nolinger" => ok("+OK".into()),
        "exit" => Reply::Close(reply("+OK bye")),
        _ => ok("-ERR command not found".into()),
    }
}
