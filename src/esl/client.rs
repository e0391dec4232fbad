//! The inbound Event Socket client.
//!
//! One task owns the TCP connection. Handles ([`EslClient`], cheap to clone) send
//! commands through a bounded queue; replies are matched in order (a FIFO of pending
//! commands) and `bgapi` results by the Job-UUID we choose. Events go to the owner through
//! a bounded queue: when the owner is slow the reader waits (backpressure down to TCP),
//! so nothing is dropped silently. The owner must read events in a task other than the
//! one awaiting replies.
//!
//! On disconnect every pending `api`/`bgapi` fails at once ([`EslError::Disconnected`]),
//! the owner gets [`Incoming::Disconnected`], and the task reconnects with capped
//! exponential backoff, authenticates, replays the subscriptions and filters, and sends
//! [`Incoming::Reconnected`] with the channels that were live before, whose events may
//! have been missed (check them with `uuid_exists`). A connection silent for
//! `idle_probe` is probed with `api status`; no answer within `probe_timeout` counts as
//! dead. Commands sent while disconnected fail with [`EslError::NotConnected`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::codec::{CodecError, Decoder, Direction, Message};
use super::event::Event;

/// The command of a wire frame (past its `api `/`bgapi ` verb: `originate`, `uuid_kill`;
/// `event` for `event plain …`): the command label of the latency metric. A name not in
/// this list counts as `other`, so the label stays bounded.
fn command_of(wire: &[u8]) -> &'static str {
    const KNOWN: &[&str] = &[
        "originate",
        "sendmsg",
        "uuid_kill",
        "uuid_break",
        "uuid_broadcast",
        "uuid_bridge",
        "sched_hangup",
        "sched_broadcast",
        "uuid_record",
        "uuid_setvar",
        "uuid_getvar",
        "uuid_dump",
        "uuid_exists",
        "uuid_transfer",
        "uuid_send_dtmf",
        "uuid_recv_dtmf",
        "event",
        "filter",
        "nixevent",
        "noevents",
        "status",
        "show",
        "conference",
        "hupall",
    ];
    let line = wire.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line
        .strip_prefix(b"api ")
        .or_else(|| line.strip_prefix(b"bgapi "))
        .unwrap_or(line);
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    KNOWN
        .iter()
        .find(|k| k.as_bytes() == word)
        .copied()
        .unwrap_or("other")
}

/// A client-side failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EslError {
    /// There is no connection right now (reconnecting).
    #[error("not connected to the media server")]
    NotConnected,
    /// The connection dropped while the command was pending.
    #[error("connection to the media server lost: {0}")]
    Disconnected(String),
    /// No answer in time.
    #[error("no answer from the media server within {0:?}")]
    Timeout(Duration),
    /// The server answered `-ERR …`.
    #[error("media server refused: {0}")]
    Refused(String),
    /// Authentication failed (wrong password).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The client task has stopped.
    #[error("the event socket client has stopped")]
    Closed,
}

/// Why a live connection ended (its text is the reason told to waiting commands and in
/// [`Incoming::Disconnected`]).
#[derive(Debug, thiserror::Error)]
enum ConnectionLost {
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not Event Socket messages.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// The server closed the connection.
    #[error("closed by the server")]
    Closed,
    /// The server said goodbye (`text/disconnect-notice`).
    #[error("the server said goodbye")]
    Goodbye,
    /// A command went unanswered past its deadline.
    #[error("no answer within the timeout")]
    Unanswered,
    /// Whoever took the events is gone.
    #[error("the event receiver is gone")]
    ReceiverGone,
}

/// What the owner receives besides command replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A subscribed event.
    Event(Event),
    /// Connected (first time or again) and subscriptions replayed.
    Connected,
    /// The connection was lost; pending commands have failed.
    Disconnected(String),
    /// Reconnected: these channels were live before the loss, their events may be missing.
    Reconnected(Vec<String>),
}

/// Connection settings (`Debug` leaves the password out).
#[derive(Clone)]
pub struct EslOptions {
    /// Host of the Event Socket.
    pub host: String,
    /// Port (8021).
    pub port: u16,
    /// `auth` password.
    pub password: String,
    /// Longest wait for an `api` answer or a command reply.
    pub api_timeout: Duration,
    /// Longest wait for a `bgapi` job result.
    pub bgapi_timeout: Duration,
    /// Silence after which the connection is probed.
    pub idle_probe: Duration,
    /// Longest wait for the probe's answer.
    pub probe_timeout: Duration,
    /// First reconnect delay; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Events buffered for the owner.
    pub event_queue: usize,
}

impl std::fmt::Debug for EslOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EslOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"***")
            .field("api_timeout", &self.api_timeout)
            .field("bgapi_timeout", &self.bgapi_timeout)
            .finish_non_exhaustive()
    }
}

impl EslOptions {
    /// Defaults for `host:port` with `password`.
    pub fn new(host: impl Into<String>, port: u16, password: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            password: password.into(),
            api_timeout: Duration::from_secs(30),
            bgapi_timeout: Duration::from_secs(300),
            idle_probe: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            event_queue: 10_000,
        }
    }
}

/// Where the answer to a frame goes.
enum Answer {
    /// Handed back whole.
    Wait(oneshot::Sender<Result<Message, EslError>>),
    /// Told only when the command failed (`-ERR …`, or the connection lost).
    OnError(Box<dyn FnOnce(EslError) + Send>),
}

impl Answer {
    fn give(self, result: Result<Message, EslError>) {
        match self {
            Answer::Wait(reply) => {
                let _ = reply.send(result);
            }
            Answer::OnError(tell) => match result {
                Ok(message) => {
                    if let Err(e) = reply_text(&message) {
                        tell(e);
                    }
                }
                Err(e) => tell(e),
            },
        }
    }
}

/// Where a `bgapi` job's result goes.
enum JobAnswer {
    /// Handed back.
    Wait(oneshot::Sender<Result<String, EslError>>),
    /// Given to a function, from the connection's task.
    Call(Box<dyn FnOnce(Result<String, EslError>) + Send>),
}

impl JobAnswer {
    fn give(self, result: Result<String, EslError>) {
        match self {
            JobAnswer::Wait(tx) => {
                let _ = tx.send(result);
            }
            JobAnswer::Call(f) => f(result),
        }
    }
}

/// How a pending command is answered.
enum Pending {
    /// A command's reply (`command/reply` or `api/response`): where it goes, when it is
    /// due, and its metric label and start.
    Reply {
        answer: Answer,
        due: Instant,
        command: &'static str,
        sent: Instant,
    },
    /// The connection's own liveness probe.
    Probe(Instant),
}

impl Pending {
    fn due(&self) -> Instant {
        match self {
            Pending::Reply { due, .. } | Pending::Probe(due) => *due,
        }
    }
}

struct Request {
    wire: Vec<u8>,
    answer: Answer,
    job: Option<(String, JobAnswer)>,
}

/// Where a client's events and connection changes go.
enum Outlet {
    /// A bounded queue: a slow reader holds the connection back (nothing is dropped).
    Channel(mpsc::Sender<Incoming>),
    /// A function called from the connection's task (it must not block).
    Sink(Arc<dyn Fn(Incoming) + Send + Sync>),
}

impl Outlet {
    /// Hands `incoming` over; `false` when nobody listens any more.
    async fn give(&self, incoming: Incoming) -> bool {
        match self {
            Outlet::Channel(tx) => tx.send(incoming).await.is_ok(),
            Outlet::Sink(f) => {
                f(incoming);
                true
            }
        }
    }
}

/// What to replay after a reconnect.
#[derive(Default)]
struct Subscriptions {
    events: Vec<String>,
    filters: Vec<(String, String)>,
}

/// A handle to the Event Socket connection.
#[derive(Clone)]
pub struct EslClient {
    tx: mpsc::Sender<Request>,
    connected: Arc<AtomicBool>,
    subscriptions: Arc<Mutex<Subscriptions>>,
    options: Arc<EslOptions>,
}

/// Options of one `sendmsg … execute`.
#[derive(Debug, Clone, Default)]
pub struct Execute<'a> {
    /// Application name (`playback`, `say`, …).
    pub app: &'a str,
    /// Its argument.
    pub arg: &'a str,
    /// Later queued messages wait for this app.
    pub event_lock: bool,
    /// Echoed as `Application-UUID` in CHANNEL_EXECUTE[_COMPLETE].
    pub event_uuid: Option<&'a str>,
}

impl EslClient {
    /// Starts the connection task; it connects (and keeps reconnecting) in the background.
    /// Returns the handle and the owner's event stream.
    pub fn start(options: EslOptions) -> (EslClient, mpsc::Receiver<Incoming>) {
        let (events_tx, events_rx) = mpsc::channel(options.event_queue.max(1));
        (
            Self::start_to(options, Outlet::Channel(events_tx)),
            events_rx,
        )
    }

    /// Starts the connection task with `sink` called for every event and connection
    /// change, from the connection's own task (no queue in between; it must not block).
    pub fn start_with_sink(
        options: EslOptions,
        sink: Arc<dyn Fn(Incoming) + Send + Sync>,
    ) -> EslClient {
        Self::start_to(options, Outlet::Sink(sink))
    }

    fn start_to(options: EslOptions, outlet: Outlet) -> EslClient {
        let (tx, rx) = mpsc::channel(1024);
        let client = EslClient {
            tx,
            connected: Arc::new(AtomicBool::new(false)),
            subscriptions: Arc::new(Mutex::new(Subscriptions {
                events: vec!["BACKGROUND_JOB".into()],
                filters: vec![],
            })),
            options: Arc::new(options),
        };
        tokio::spawn(run(client.clone_inner(), rx, outlet));
        client
    }

    fn clone_inner(&self) -> Inner {
        Inner {
            connected: self.connected.clone(),
            subscriptions: self.subscriptions.clone(),
            options: self.options.clone(),
        }
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Queues a frame for the connection (frames queued one after another go out in that
    /// order), its answer going to `answer`.
    async fn enqueue(
        &self,
        wire: Vec<u8>,
        answer: Answer,
        job: Option<(String, JobAnswer)>,
    ) -> Result<(), EslError> {
        if !self.is_connected() {
            return Err(EslError::NotConnected);
        }
        self.tx
            .send(Request { wire, answer, job })
            .await
            .map_err(|_| EslError::Closed)
    }

    /// Queues a frame whose reply is handed back; returns its receiver.
    async fn enqueue_waiting(
        &self,
        wire: Vec<u8>,
        job: Option<(String, JobAnswer)>,
    ) -> Result<oneshot::Receiver<Result<Message, EslError>>, EslError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(wire, Answer::Wait(reply), job).await?;
        Ok(answer)
    }

    async fn send(&self, wire: Vec<u8>) -> Result<Message, EslError> {
        answered(self.enqueue_waiting(wire, None).await?).await
    }

    /// Sends a command (with optional header lines) and returns its `Reply-Text`;
    /// `-ERR …` becomes [`EslError::Refused`].
    pub async fn command(&self, line: &str, headers: &[(&str, &str)]) -> Result<String, EslError> {
        let reply = self.send(wire(line, headers)).await?;
        reply_text(&reply)
    }

    /// `api <cmd>`: the command's output (the body of `api/response`), as is.
    pub async fn api(&self, cmd: &str) -> Result<String, EslError> {
        self.send_api(cmd).await?.await
    }

    /// Sends `api <cmd>` now, in order with what this task sent before, and returns the
    /// future of its output.
    pub async fn send_api(
        &self,
        cmd: &str,
    ) -> Result<impl Future<Output = Result<String, EslError>> + Send + 'static, EslError> {
        let mut line = String::with_capacity(cmd.len() + 6);
        line.push_str("api ");
        line.push_str(cmd);
        let reply = self.enqueue_waiting(wire(&line, &[]), None).await?;
        Ok(async move { Ok(answered(reply).await?.body_text()) })
    }

    /// Sends `api <cmd>` now, in order with what this task sent before; only a failure is
    /// told, to `on_error`, from the connection's task.
    pub async fn send_api_detached(
        &self,
        cmd: &str,
        on_error: impl FnOnce(EslError) + Send + 'static,
    ) -> Result<(), EslError> {
        let mut line = String::with_capacity(cmd.len() + 6);
        line.push_str("api ");
        line.push_str(cmd);
        self.enqueue(wire(&line, &[]), Answer::OnError(Box::new(on_error)), None)
            .await
    }

    /// `bgapi <cmd>`: waits for the BACKGROUND_JOB and returns its output.
    pub async fn bgapi(&self, cmd: &str) -> Result<String, EslError> {
        self.send_bgapi(cmd).await?.await
    }

    /// Sends `bgapi <cmd>` now and returns the future of its job's output.
    pub async fn send_bgapi(
        &self,
        cmd: &str,
    ) -> Result<impl Future<Output = Result<String, EslError>> + Send + 'static, EslError> {
        let job_uuid = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let reply = self
            .enqueue_waiting(
                wire(&format!("bgapi {cmd}"), &[("Job-UUID", &job_uuid)]),
                Some((job_uuid, JobAnswer::Wait(tx))),
            )
            .await?;
        let limit = self.options.bgapi_timeout;
        Ok(async move {
            reply_text(&answered(reply).await?)?;
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(EslError::Closed),
                Err(_) => Err(EslError::Timeout(limit)),
            }
        })
    }

    /// Sends `bgapi <cmd>` now (with `job_uuid` as its Job-UUID); its job's output, or
    /// the failure of the command itself, goes to `on_result`, from the connection's task.
    /// The job's own wait is the caller's to bound.
    pub async fn send_bgapi_with(
        &self,
        cmd: &str,
        job_uuid: &str,
        on_result: impl FnOnce(Result<String, EslError>) + Send + 'static,
    ) -> Result<(), EslError> {
        let mut line = String::with_capacity(cmd.len() + 6);
        line.push_str("bgapi ");
        line.push_str(cmd);
        let on_result = std::sync::Arc::new(std::sync::Mutex::new(Some(on_result)));
        let on_error = {
            let f = on_result.clone();
            move |e: EslError| {
                if let Some(f) = f.lock().ok().and_then(|mut f| f.take()) {
                    f(Err(e));
                }
            }
        };
        let on_job = move |r: Result<String, EslError>| {
            if let Some(f) = on_result.lock().ok().and_then(|mut f| f.take()) {
                f(r);
            }
        };
        self.enqueue(
            wire(&line, &[("Job-UUID", job_uuid)]),
            Answer::OnError(Box::new(on_error)),
            Some((job_uuid.to_string(), JobAnswer::Call(Box::new(on_job)))),
        )
        .await
    }

    /// Subscribes to more events (`event plain …`); kept for reconnects.
    pub async fn subscribe(&self, events: &[&str]) -> Result<(), EslError> {
        {
            let mut subs = self.subscriptions.lock().await;
            for e in events {
                if !subs.events.iter().any(|x| x == e) {
                    subs.events.push(e.to_string());
                }
            }
        }
        self.command(&format!("event plain {}", events.join(" ")), &[])
            .await
            .map(|_| ())
    }

    /// Adds a filter (`filter <header> <value>`); kept for reconnects. The first filter
    /// also lets BACKGROUND_JOB through, or job results would vanish.
    pub async fn filter(&self, header: &str, value: &str) -> Result<(), EslError> {
        let first = {
            let mut subs = self.subscriptions.lock().await;
            let first = subs.filters.is_empty();
            if first {
                subs.filters
                    .push(("Event-Name".into(), "BACKGROUND_JOB".into()));
            }
            subs.filters.push((header.into(), value.into()));
            first
        };
        if first {
            self.command("filter Event-Name BACKGROUND_JOB", &[])
                .await?;
        }
        self.command(&format!("filter {header} {value}"), &[])
            .await
            .map(|_| ())
    }

    /// `sendmsg <uuid>` with `call-command: execute`.
    pub async fn execute(&self, uuid: &str, exec: Execute<'_>) -> Result<(), EslError> {
        self.send_execute(uuid, exec).await?.await
    }

    /// Sends `sendmsg <uuid>` (execute) now and returns the future of its acceptance.
    pub async fn send_execute(
        &self,
        uuid: &str,
        exec: Execute<'_>,
    ) -> Result<impl Future<Output = Result<(), EslError>> + Send + 'static, EslError> {
        let reply = self
            .enqueue_waiting(execute_frame(uuid, &exec), None)
            .await?;
        Ok(async move { reply_text(&answered(reply).await?).map(|_| ()) })
    }

    /// Sends `sendmsg <uuid>` (execute) now; only its refusal is told, to `on_error`, from
    /// the connection's task.
    pub async fn send_execute_detached(
        &self,
        uuid: &str,
        exec: Execute<'_>,
        on_error: impl FnOnce(EslError) + Send + 'static,
    ) -> Result<(), EslError> {
        let frame = execute_frame(uuid, &exec);
        self.enqueue(frame, Answer::OnError(Box::new(on_error)), None)
            .await
    }

    /// `sendmsg <uuid>` with `call-command: hangup`.
    pub async fn hangup(&self, uuid: &str, cause: &str) -> Result<(), EslError> {
        self.command(
            &format!("sendmsg {uuid}"),
            &[("call-command", "hangup"), ("hangup-cause", cause)],
        )
        .await
        .map(|_| ())
    }
}

/// The reply a frame got.
async fn answered(
    reply: oneshot::Receiver<Result<Message, EslError>>,
) -> Result<Message, EslError> {
    reply.await.map_err(|_| EslError::Closed)?
}

/// `sendmsg <uuid>` with `call-command: execute`.
fn execute_frame(uuid: &str, exec: &Execute<'_>) -> Vec<u8> {
    let mut headers = vec![("call-command", "execute"), ("execute-app-name", exec.app)];
    if !exec.arg.is_empty() {
        headers.push(("execute-app-arg", exec.arg));
    }
    if exec.event_lock {
        headers.push(("event-lock", "true"));
    }
    if let Some(id) = exec.event_uuid {
        headers.push(("event-uuid", id));
    }
    let mut line = String::with_capacity(8 + uuid.len());
    line.push_str("sendmsg ");
    line.push_str(uuid);
    wire(&line, &headers)
}

fn wire(line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let size = line.len()
        + 2
        + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    // A newline inside a command would start another command: cut it off.
    fn first_line(s: &str) -> &[u8] {
        let bytes = s.as_bytes();
        &bytes[..memchr::memchr2(b'\n', b'\r', bytes).unwrap_or(bytes.len())]
    }
    out.extend_from_slice(first_line(line));
    out.push(b'\n');
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(first_line(value));
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn reply_text(reply: &Message) -> Result<String, EslError> {
    let text = reply
        .headers
        .get("Reply-Text")
        .unwrap_or_default()
        .to_string();
    if text.starts_with("-ERR") {
        Err(EslError::Refused(text))
    } else {
        Ok(text)
    }
}

/// State shared between the handles and the connection task.
struct Inner {
    connected: Arc<AtomicBool>,
    subscriptions: Arc<Mutex<Subscriptions>>,
    options: Arc<EslOptions>,
}

async fn run(inner: Inner, mut rx: mpsc::Receiver<Request>, events: Outlet) {
    let mut delay = inner.options.reconnect_min;
    let mut live_before: Vec<String> = Vec::new();
    let mut ever_connected = false;
    loop {
        match connect(&inner).await {
            Ok((stream, decoder)) => {
                delay = inner.options.reconnect_min;
                inner.connected.store(true, Ordering::Relaxed);
                let notice = if ever_connected {
                    Incoming::Reconnected(std::mem::take(&mut live_before))
                } else {
                    Incoming::Connected
                };
                ever_connected = true;
                if !events.give(notice).await {
                    return;
                }
                let mut conn = Connection {
                    stream,
                    decoder,
                    pending: VecDeque::new(),
                    jobs: HashMap::new(),
                    live: HashSet::new(),
                    last_heard: Instant::now(),
                    timings: HashMap::new(),
                    node: format!("{}:{}", inner.options.host, inner.options.port),
                };
                let why = conn.serve(&inner.options, &mut rx, &events).await;
                inner.connected.store(false, Ordering::Relaxed);
                live_before = conn.live.into_iter().collect();
                live_before.sort();
                let why = match why {
                    Ok(()) => return, // every handle is gone
                    Err(why) => why.to_string(),
                };
                tracing::warn!(host = %inner.options.host, port = inner.options.port, reason = %why, "event socket lost");
                for pending in conn.pending {
                    if let Pending::Reply { answer, .. } = pending {
                        answer.give(Err(EslError::Disconnected(why.clone())));
                    }
                }
                for (_, job) in conn.jobs {
                    job.give(Err(EslError::Disconnected(why.clone())));
                }
                if !events.give(Incoming::Disconnected(why)).await {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(host = %inner.options.host, error = %e, "event socket connect failed")
            }
        }
        // Wait before the next attempt; whatever is asked meanwhile fails at once.
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                request = rx.recv() => match request {
                    Some(Request { answer, job, .. }) => {
                        answer.give(Err(EslError::NotConnected));
                        if let Some((_, job)) = job {
                            job.give(Err(EslError::NotConnected));
                        }
                    }
                    None => return,
                },
            }
        }
        delay = (delay * 2).min(inner.options.reconnect_max);
    }
}

/// Connects, reads the greeting, authenticates and replays subscriptions.
async fn connect(inner: &Inner) -> Result<(TcpStream, Decoder), EslError> {
    let options = &inner.options;
    let io = |e: std::io::Error| EslError::Disconnected(e.to_string());
    let mut stream = tokio::time::timeout(
        options.api_timeout,
        TcpStream::connect((options.host.as_str(), options.port)),
    )
    .await
    .map_err(|_| EslError::Timeout(options.api_timeout))?
    .map_err(io)?;
    let _ = stream.set_nodelay(true);
    let mut decoder = Decoder::new(Direction::FromServer);
    let greeting = read_message(&mut stream, &mut decoder, options.api_timeout).await?;
    if greeting.content_type() != "auth/request" {
        return Err(EslError::Auth(format!(
            "unexpected greeting {:?}",
            greeting.content_type()
        )));
    }
    let mut commands = vec![wire(&format!("auth {}", options.password), &[])];
    {
        let subs = inner.subscriptions.lock().await;
        commands.push(wire(&format!("event plain {}", subs.events.join(" ")), &[]));
        for (h, v) in &subs.filters {
            commands.push(wire(&format!("filter {h} {v}"), &[]));
        }
    }
    for (i, command) in commands.into_iter().enumerate() {
        stream.write_all(&command).await.map_err(io)?;
        let reply = read_message(&mut stream, &mut decoder, options.api_timeout).await?;
        let text = reply.headers.get("Reply-Text").unwrap_or_default();
        if i == 0 && !text.starts_with("+OK") {
            return Err(EslError::Auth(text.to_string()));
        }
    }
    Ok((stream, decoder))
}

async fn read_message(
    stream: &mut TcpStream,
    decoder: &mut Decoder,
    limit: Duration,
) -> Result<Message, EslError> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_message() {
            Ok(Some(m)) if m.content_type() == "text/event-plain" => continue,
            Ok(Some(m)) => return Ok(m),
            Ok(None) => {}
            Err(e) => return Err(EslError::Disconnected(e.to_string())),
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .map_err(|_| EslError::Timeout(limit))?
            .map_err(|e| EslError::Disconnected(e.to_string()))?;
        if n == 0 {
            return Err(EslError::Disconnected("closed by the server".into()));
        }
        decoder.feed(&buf[..n]);
    }
}

/// One live connection.
struct Connection {
    stream: TcpStream,
    decoder: Decoder,
    pending: VecDeque<Pending>,
    jobs: HashMap<String, JobAnswer>,
    /// Channels seen alive (not yet reported ended).
    live: HashSet<String>,
    last_heard: Instant,
    /// The latency histogram of each command, looked up once.
    timings: HashMap<&'static str, prometheus_client::metrics::histogram::Histogram>,
    node: String,
}

impl Connection {
    /// Serves until the connection fails (`Err(reason)`) or every handle is dropped (`Ok`).
    async fn serve(
        &mut self,
        options: &EslOptions,
        rx: &mut mpsc::Receiver<Request>,
        events: &Outlet,
    ) -> Result<(), ConnectionLost> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(message) = self.decoder.next_message()? {
                self.dispatch(message, events).await?;
            }
            let deadline = self.next_deadline(options);
            tokio::select! {
                read = self.stream.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Err(ConnectionLost::Closed);
                    }
                    self.last_heard = Instant::now();
                    self.decoder.feed(&buf[..n]);
                }
                request = rx.recv() => {
                    let Some(first) = request else { return Ok(()) };
                    // Everything queued goes out in one write.
                    let mut out = Vec::with_capacity(first.wire.len());
                    let mut next = Some(first);
                    while let Some(Request { wire, answer, job }) = next {
                        let now = Instant::now();
                        self.pending.push_back(Pending::Reply {
                            answer,
                            due: now + options.api_timeout,
                            command: command_of(&wire),
                            sent: now,
                        });
                        if let Some((id, job)) = job {
                            self.jobs.insert(id, job);
                        }
                        out.extend_from_slice(&wire);
                        next = if out.len() < 64 * 1024 { rx.try_recv().ok() } else { None };
                    }
                    self.stream.write_all(&out).await?;
                }
                _ = tokio::time::sleep_until(deadline) => self.on_deadline(options).await?,
            }
        }
    }

    fn next_deadline(&self, options: &EslOptions) -> Instant {
        let probe = if self.pending.iter().any(|p| matches!(p, Pending::Probe(_))) {
            Instant::now() + options.idle_probe
        } else {
            self.last_heard + options.idle_probe
        };
        let oldest = self.pending.front().map(Pending::due);
        oldest.map_or(probe, |at| at.min(probe))
    }

    async fn on_deadline(&mut self, options: &EslOptions) -> Result<(), ConnectionLost> {
        let now = Instant::now();
        if self.pending.front().is_some_and(|p| p.due() <= now) {
            // The server stopped answering: the connection is no longer trustworthy.
            return Err(ConnectionLost::Unanswered);
        }
        if self.last_heard + options.idle_probe <= now
            && !self.pending.iter().any(|p| matches!(p, Pending::Probe(_)))
        {
            self.stream.write_all(&wire("api status", &[])).await?;
            self.pending
                .push_back(Pending::Probe(now + options.probe_timeout));
        }
        Ok(())
    }

    async fn dispatch(&mut self, message: Message, events: &Outlet) -> Result<(), ConnectionLost> {
        match message.content_type() {
            "command/reply" | "api/response" => match self.pending.pop_front() {
                Some(Pending::Reply {
                    answer,
                    command,
                    sent,
                    ..
                }) => {
                    self.timing(command).observe(sent.elapsed().as_secs_f64());
                    answer.give(Ok(message));
                }
                Some(Pending::Probe(_)) | None => {}
            },
            "text/event-plain" => {
                let event = Event::parse_plain_owned(message.body.unwrap_or_default());
                let name = event.name();
                if name == "BACKGROUND_JOB"
                    && let Some(job) = event.job_uuid().and_then(|id| self.jobs.remove(id))
                {
                    job.give(Ok(event.body.unwrap_or_default()));
                    return Ok(());
                }
                if let Some(id) = event.unique_id().filter(|_| name.starts_with("CHANNEL_")) {
                    if matches!(name, "CHANNEL_DESTROY" | "CHANNEL_HANGUP_COMPLETE") {
                        self.live.remove(id);
                    } else if !self.live.contains(id) {
                        self.live.insert(id.to_string());
                    }
                }
                if !events.give(Incoming::Event(event)).await {
                    return Err(ConnectionLost::ReceiverGone);
                }
            }
            "text/disconnect-notice" => return Err(ConnectionLost::Goodbye),
            _ => {}
        }
        Ok(())
    }

    /// The latency histogram of `command` on this node.
    fn timing(
        &mut self,
        command: &'static str,
    ) -> &prometheus_client::metrics::histogram::Histogram {
        let node = &self.node;
        self.timings
            .entry(command)
            .or_insert_with(|| crate::telemetry::metrics::metrics().esl_histogram(node, command))
    }
}

#[cfg(test)]
mod tests {
    use super::{EslOptions, command_of};

    #[test]
    fn debug_leaves_the_password_out() {
        let shown = format!("{:?}", EslOptions::new("fs1", 8021, "s3cret-pw"));
        assert!(
            shown.contains("fs1") && !shown.contains("s3cret-pw"),
            "{shown}"
        );
    }

    #[test]
    fn command_labels_are_bounded() {
        assert_eq!(
            command_of(b"bgapi originate {x}sofia/gw/1 &park()\nJob-UUID: 1\n\n"),
            "originate"
        );
        assert_eq!(
            command_of(b"api uuid_kill CA1 NORMAL_CLEARING\n\n"),
            "uuid_kill"
        );
        assert_eq!(
            command_of(b"sendmsg CA1\ncall-command: execute\n\n"),
            "sendmsg"
        );
        assert_eq!(command_of(b"event plain ALL\n\n"), "event");
        assert_eq!(command_of(b"api NOT A COMMAND\n\n"), "other");
    }
}
