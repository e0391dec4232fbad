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

use super::codec::{Decoder, Direction, Message};
use super::event::Event;

/// The first word of a wire frame's command, past its `api `/`bgapi ` verb (`originate`,
/// `uuid_kill`; `event` for `event plain …`): the command label of the latency metric.
fn command_of(wire: &[u8]) -> String {
    let line = wire.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line
        .strip_prefix("api ")
        .or_else(|| line.strip_prefix("bgapi "))
        .unwrap_or(&line);
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
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

/// Connection settings.
#[derive(Debug, Clone)]
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

/// How a pending command is answered.
enum Pending {
    /// `command/reply` or `api/response`, handed back whole.
    Reply(oneshot::Sender<Result<Message, EslError>>, Instant),
    /// The connection's own liveness probe.
    Probe(Instant),
}

enum Request {
    Send {
        wire: Vec<u8>,
        reply: oneshot::Sender<Result<Message, EslError>>,
        job: Option<(String, oneshot::Sender<Result<String, EslError>>)>,
    },
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
    /// `host:port`, the node label of the command latency metric.
    node: Arc<str>,
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
        let (tx, rx) = mpsc::channel(1024);
        let (events_tx, events_rx) = mpsc::channel(options.event_queue.max(1));
        let client = EslClient {
            tx,
            connected: Arc::new(AtomicBool::new(false)),
            subscriptions: Arc::new(Mutex::new(Subscriptions {
                events: vec!["BACKGROUND_JOB".into()],
                filters: vec![],
            })),
            node: format!("{}:{}", options.host, options.port).into(),
            options: Arc::new(options),
        };
        tokio::spawn(run(client.clone_inner(), rx, events_tx));
        (client, events_rx)
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
    /// order) and returns the receivers of its reply and of its job's result.
    async fn enqueue(&self, wire: Vec<u8>, job: Option<String>) -> Result<Queued, EslError> {
        if !self.is_connected() {
            return Err(EslError::NotConnected);
        }
        let (reply, answer) = oneshot::channel();
        let (job, result) = match job {
            Some(id) => {
                let (tx, rx) = oneshot::channel();
                (Some((id, tx)), Some(rx))
            }
            None => (None, None),
        };
        let command = command_of(&wire);
        self.tx
            .send(Request::Send { wire, reply, job })
            .await
            .map_err(|_| EslError::Closed)?;
        Ok(Queued {
            answer,
            result,
            command,
            node: self.node.clone(),
            started: Instant::now(),
            bgapi_timeout: self.options.bgapi_timeout,
        })
    }

    async fn send(&self, wire: Vec<u8>) -> Result<Message, EslError> {
        self.enqueue(wire, None).await?.reply().await
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
        let queued = self.enqueue(wire(&line, &[]), None).await?;
        Ok(async move { Ok(queued.reply().await?.body_text()) })
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
        let queued = self
            .enqueue(
                wire(&format!("bgapi {cmd}"), &[("Job-UUID", &job_uuid)]),
                Some(job_uuid),
            )
            .await?;
        Ok(queued.job())
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
        let queued = self.enqueue(wire(&line, &headers), None).await?;
        Ok(async move { reply_text(&queued.reply().await?).map(|_| ()) })
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

/// A frame queued on the connection: the receivers of its reply and job.
struct Queued {
    answer: oneshot::Receiver<Result<Message, EslError>>,
    result: Option<oneshot::Receiver<Result<String, EslError>>>,
    command: String,
    node: Arc<str>,
    started: Instant,
    bgapi_timeout: Duration,
}

impl Queued {
    /// The reply (command/reply or api/response).
    async fn reply(self) -> Result<Message, EslError> {
        let result = self.answer.await.map_err(|_| EslError::Closed)?;
        crate::telemetry::metrics::metrics().esl_command(
            &self.node,
            &self.command,
            self.started.elapsed(),
        );
        result
    }

    /// The job's output (after its reply said `+OK`).
    fn job(mut self) -> impl Future<Output = Result<String, EslError>> + Send + 'static {
        let result = self.result.take();
        let limit = self.bgapi_timeout;
        async move {
            reply_text(&self.reply().await?)?;
            let Some(result) = result else {
                return Err(EslError::Closed);
            };
            match tokio::time::timeout(limit, result).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(EslError::Closed),
                Err(_) => Err(EslError::Timeout(limit)),
            }
        }
    }
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
        s.split(['\n', '\r']).next().unwrap_or_default().as_bytes()
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

async fn run(inner: Inner, mut rx: mpsc::Receiver<Request>, events: mpsc::Sender<Incoming>) {
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
                if events.send(notice).await.is_err() {
                    return;
                }
                let mut conn = Connection {
                    stream,
                    decoder,
                    pending: VecDeque::new(),
                    jobs: HashMap::new(),
                    live: HashSet::new(),
                    last_heard: Instant::now(),
                };
                let why = conn.serve(&inner.options, &mut rx, &events).await;
                inner.connected.store(false, Ordering::Relaxed);
                live_before = conn.live.into_iter().collect();
                live_before.sort();
                let why = match why {
                    Ok(()) => return, // every handle is gone
                    Err(why) => why,
                };
                tracing::warn!(host = %inner.options.host, port = inner.options.port, reason = %why, "event socket lost");
                for pending in conn.pending {
                    if let Pending::Reply(reply, _) = pending {
                        let _ = reply.send(Err(EslError::Disconnected(why.clone())));
                    }
                }
                for (_, job) in conn.jobs {
                    let _ = job.send(Err(EslError::Disconnected(why.clone())));
                }
                if events.send(Incoming::Disconnected(why)).await.is_err() {
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
                    Some(Request::Send { reply, job, .. }) => {
                        let _ = reply.send(Err(EslError::NotConnected));
                        drop(job);
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
    jobs: HashMap<String, oneshot::Sender<Result<String, EslError>>>,
    /// Channels seen alive (created and not yet destroyed).
    live: HashSet<String>,
    last_heard: Instant,
}

impl Connection {
    /// Serves until the connection fails (`Err(reason)`) or every handle is dropped (`Ok`).
    async fn serve(
        &mut self,
        options: &EslOptions,
        rx: &mut mpsc::Receiver<Request>,
        events: &mpsc::Sender<Incoming>,
    ) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(message) = self.decoder.next_message().map_err(|e| e.to_string())? {
                self.dispatch(message, events).await?;
            }
            let deadline = self.next_deadline(options);
            tokio::select! {
                read = self.stream.read(&mut buf) => {
                    let n = read.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("closed by the server".into());
                    }
                    self.last_heard = Instant::now();
                    self.decoder.feed(&buf[..n]);
                }
                request = rx.recv() => {
                    let Some(Request::Send { wire, reply, job }) = request else { return Ok(()) };
                    self.stream.write_all(&wire).await.map_err(|e| e.to_string())?;
                    self.pending.push_back(Pending::Reply(reply, Instant::now() + options.api_timeout));
                    if let Some((id, job)) = job {
                        self.jobs.insert(id, job);
                    }
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
        let oldest = self.pending.front().map(|p| match p {
            Pending::Reply(_, at) | Pending::Probe(at) => *at,
        });
        oldest.map_or(probe, |at| at.min(probe))
    }

    async fn on_deadline(&mut self, options: &EslOptions) -> Result<(), String> {
        let now = Instant::now();
        if let Some(Pending::Reply(_, at) | Pending::Probe(at)) = self.pending.front()
            && *at <= now
        {
            // The server stopped answering: the connection is no longer trustworthy.
            return Err("no answer within the timeout".into());
        }
        if self.last_heard + options.idle_probe <= now
            && !self.pending.iter().any(|p| matches!(p, Pending::Probe(_)))
        {
            self.stream
                .write_all(&wire("api status", &[]))
                .await
                .map_err(|e| e.to_string())?;
            self.pending
                .push_back(Pending::Probe(now + options.probe_timeout));
        }
        Ok(())
    }

    async fn dispatch(
        &mut self,
        message: Message,
        events: &mpsc::Sender<Incoming>,
    ) -> Result<(), String> {
        match message.content_type() {
            "command/reply" | "api/response" => match self.pending.pop_front() {
                Some(Pending::Reply(reply, _)) => {
                    let _ = reply.send(Ok(message));
                }
                Some(Pending::Probe(_)) | None => {}
            },
            "text/event-plain" => {
                let event = Event::parse_plain_owned(message.body.unwrap_or_default());
                if event.name() == "BACKGROUND_JOB"
                    && let Some(job) = event.job_uuid().and_then(|id| self.jobs.remove(id))
                {
                    let _ = job.send(Ok(event.body.unwrap_or_default()));
                    return Ok(());
                }
                if let Some(id) = event
                    .unique_id()
                    .filter(|_| event.name().starts_with("CHANNEL_"))
                {
                    if event.name() == "CHANNEL_DESTROY" {
                        self.live.remove(id);
                    } else {
                        self.live.insert(id.to_string());
                    }
                }
                events
                    .send(Incoming::Event(event))
                    .await
                    .map_err(|_| "the event receiver is gone".to_string())?;
            }
            "text/disconnect-notice" => return Err("the server said goodbye".into()),
            _ => {}
        }
        Ok(())
    }
}
