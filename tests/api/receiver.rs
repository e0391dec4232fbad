//! A local webhook receiver for tests: a small HTTP/1.1 server that answers with the
//! statuses it is told to (then 200) and keeps every request it got.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path of the request line.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("json body")
    }
}

/// A scripted answer: status, extra headers, and how long to wait before answering.
type Answer = (u16, Vec<(String, String)>, Duration);

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    body: Arc<Mutex<Vec<u8>>>,
    delay: Arc<Mutex<Duration>>,
}

impl Receiver {
    /// Starts listening on a free loopback port.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let receiver = Receiver {
            base: format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port()),
            got: Arc::default(),
            script: Arc::default(),
            body: Arc::new(Mutex::new(b"ok".to_vec())),
            delay: Arc::default(),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end - 4]).to_string();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .unwrap_or_default()
                        .split(' ')
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                        .collect();
                    let body =
                        String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                    r.got.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                        at: Instant::now(),
                    });
                    let next = r.script.lock().unwrap().pop_front();
                    let (status, extra, delay) =
                        next.unwrap_or_else(|| (200, vec![], *r.delay.lock().unwrap()));
                    tokio::time::sleep(delay).await;
                    let body = r.body.lock().unwrap().clone();
                    let mut answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in extra {
                        answer.push_str(&format!("{k}: {v}\r\n"));
                    }
                    answer.push_str("\r\n");
                    let mut answer = answer.into_bytes();
                    answer.extend_from_slice(&body);
                    let _ = socket.write_all(&answer).await;
                });
            }
        });
        receiver
    }

    /// The next requests are answered with these statuses (then 200).
    pub fn answer_with(&self, statuses: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| (*s, vec![], Duration::ZERO)));
    }

    /// The next request is answered with this status and header.
    pub fn answer_with_header(&self, status: u16, name: &str, value: &str) {
        self.script.lock().unwrap().push_back((
            status,
            vec![(name.into(), value.into())],
            Duration::ZERO,
        ));
    }

    /// The next request is answered with `status` only after `delay`.
    pub fn answer_after(&self, status: u16, delay: Duration) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, vec![], delay));
    }

    /// Every later unscripted answer comes only after `delay`.
    pub fn delay_all(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Every later answer carries `body` (instead of `ok`).
    pub fn answer_body(&self, body: &[u8]) {
        *self.body.lock().unwrap() = body.to_vec();
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until `n` requests have arrived; returns them all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {n} requests after {limit:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
