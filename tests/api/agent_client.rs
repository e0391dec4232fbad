//! An agent socket client for the tests: connects to `/v1/Applications/{appSid}/cti`,
//! sends request frames, and keeps the events it reads on the way to a reply.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for one frame.
const FRAME_WITHIN: Duration = Duration::from_secs(30);

/// One agent socket.
pub struct AgentSocket {
    stream: Stream,
    next_id: i64,
    /// Events read and not yet taken by a test.
    pub events: Vec<Value>,
    /// queueEvents read while waiting for events.
    pub queue_events: Vec<Value>,
}

/// What the server did to a socket: a frame, or closed it with a code.
#[derive(Debug, PartialEq)]
pub enum Got {
    /// A JSON text frame.
    Frame(Value),
    /// A close frame's code (or 1006 when the connection just ended).
    Closed(u16),
}

impl AgentSocket {
    /// Opens a socket for `agent_no` of `app_id` on the server at `address` (`http://…`).
    pub async fn open(address: &str, app_id: &str, agent_no: &str) -> Self {
        Self::open_with(address, app_id, agent_no, &[])
            .await
            .expect("upgrade")
    }

    /// Opens a socket with extra headers; the HTTP status if the upgrade is refused.
    pub async fn open_with(
        address: &str,
        app_id: &str,
        agent_no: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/v1/Applications/{app_id}/cti?agentNo={agent_no}",
            address.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request().expect("request");
        for (k, v) in headers {
            request.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Self {
                stream,
                next_id: 1,
                events: vec![],
                queue_events: vec![],
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("connect: {e}"),
        }
    }

    /// Sends a text frame as it is.
    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next frame or close, within the frame timeout.
    pub async fn next(&mut self) -> Got {
        // One deadline for the frame, however many pings come meanwhile.
        let deadline = tokio::time::Instant::now() + FRAME_WITHIN;
        loop {
            let read = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame within the timeout");
            match read {
                None | Some(Err(_)) => return Got::Closed(1006),
                Some(Ok(Message::Text(t))) => {
                    return Got::Frame(serde_json::from_str(&t).expect("JSON frame"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Got::Closed(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends `cmd` with `params` and returns its reply; events read before it are kept.
    pub async fn request(&mut self, cmd: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(json!({"id": id, "cmd": cmd, "params": params}).to_string())
            .await;
        loop {
            match self.next().await {
                Got::Frame(f) if f.get("type").is_some() => self.events.push(f),
                Got::Frame(f) => {
                    assert_eq!(f["id"], id, "replies come in order: {f}");
                    return f;
                }
                Got::Closed(code) => {
                    panic!("closed with {code} while waiting for the reply to {cmd}")
                }
            }
        }
    }

    /// `auth` with a password; the reply.
    pub async fn auth(&mut self, pwd: &str) -> Value {
        self.request("auth", json!({"pwd": pwd})).await
    }

    /// The next `n` events (those already read first); queueEvents (no seq, never
    /// replayed) are set aside in `queue_events`.
    pub async fn take_events(&mut self, n: usize) -> Vec<Value> {
        while self.events.len() < n {
            match self.next().await {
                Got::Frame(f) if f["type"] == "queueEvent" => self.queue_events.push(f),
                Got::Frame(f) => self.events.push(f),
                Got::Closed(code) => panic!("closed with {code} while waiting for events"),
            }
        }
        self.events.drain(..n).collect()
    }

    /// The next `n` queueEvents about callers (`joined`, `answered`, `abandoned`,
    /// `left`; others are set aside, and other events kept in `events`).
    pub async fn take_queue_moves(&mut self, n: usize) -> Vec<Value> {
        self.take_queue_events(n, &["joined", "answered", "abandoned", "left"])
            .await
    }

    /// The next `n` `agentState` queueEvents (others are set aside, and other events kept
    /// in `events`).
    pub async fn take_agent_states(&mut self, n: usize) -> Vec<Value> {
        self.take_queue_events(n, &["agentState"]).await
    }

    /// The next `n` queueEvents named one of `names`, in order; the other queueEvents
    /// (snapshots among them) stay in `queue_events`.
    async fn take_queue_events(&mut self, n: usize, names: &[&str]) -> Vec<Value> {
        let wanted = |f: &Value| {
            f["data"]["eventName"]
                .as_str()
                .is_some_and(|name| names.contains(&name))
        };
        loop {
            let queued: Vec<Value> = std::mem::take(&mut self.events);
            for f in queued {
                match f["type"] == "queueEvent" {
                    true => self.queue_events.push(f),
                    false => self.events.push(f),
                }
            }
            if self.queue_events.iter().filter(|f| wanted(f)).count() >= n {
                break;
            }
            match self.next().await {
                Got::Frame(f) => self.events.push(f),
                Got::Closed(code) => panic!("closed with {code} while waiting for queueEvents"),
            }
        }
        let mut taken = Vec::with_capacity(n);
        self.queue_events.retain(|f| {
            let take = taken.len() < n && wanted(f);
            if take {
                taken.push(f.clone());
            }
            !take
        });
        taken
    }

    /// Keeps every frame it reads (events and queueEvents, in order, after those already
    /// read) until `stop` changes or the socket closes; then returns them all.
    pub async fn record_until(
        &mut self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<Value> {
        let mut frames = std::mem::take(&mut self.events);
        loop {
            tokio::select! {
                read = self.stream.next() => match read {
                    Some(Ok(Message::Text(t))) => {
                        frames.push(serde_json::from_str(&t).expect("JSON frame"))
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => return frames,
                },
                _ = stop.changed() => return frames,
            }
        }
    }

    /// Reads until the socket closes; its close code (frames on the way are kept).
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.next().await {
                Got::Frame(f) => self.events.push(f),
                Got::Closed(code) => return code,
            }
        }
    }

    /// Reads the raw connection, answering nothing (not even pings, as a client whose
    /// network died would), until the server's close frame; its code.
    pub async fn close_code_unanswered(&mut self) -> u16 {
        use tokio::io::AsyncReadExt;
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = self.stream.get_mut() else {
            panic!("plain TCP expected");
        };
        let mut bytes = Vec::new();
        loop {
            // Server frames are unmasked; these are short (payload < 126 bytes).
            while bytes.len() >= 2 && bytes.len() >= 2 + usize::from(bytes[1] & 0x7f) {
                let len = usize::from(bytes[1] & 0x7f);
                if bytes[0] & 0x0f == 0x8 {
                    return if len >= 2 {
                        u16::from_be_bytes([bytes[2], bytes[3]])
                    } else {
                        1005
                    };
                }
                bytes.drain(..2 + len);
            }
            let mut buf = [0u8; 512];
            let n = tokio::time::timeout(FRAME_WITHIN, tcp.read(&mut buf))
                .await
                .expect("the server closes within the timeout")
                .expect("read");
            if n == 0 {
                return 1006;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self
            .stream
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}
