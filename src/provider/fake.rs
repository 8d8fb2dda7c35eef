//! A tiny HTTP/1.1 server on 127.0.0.1 for the provider tests: routes by method and path
//! (the query is ignored for matching, kept in the record), answers each route's replies
//! in order (the last one repeats), records every request and counts hits.
//!
//! tokio only, one connection at a time per task, `Connection: close` on every answer:
//! enough for a client that sends one small request per connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One canned answer.
#[derive(Debug, Clone)]
pub(crate) struct FakeReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl FakeReply {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: serde_json::Value) -> FakeReply {
        FakeReply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// An answer without a body.
    pub(crate) fn empty(status: u16) -> FakeReply {
        FakeReply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> FakeReply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Route {
    method: String,
    path: String,
    replies: VecDeque<FakeReply>,
    last: FakeReply,
    hits: usize,
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    requests: Vec<Recorded>,
}

/// The server; stops when dropped.
pub(crate) struct FakeServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub(crate) async fn start() -> FakeServer {
        // Port 0: the OS picks a free port, so tests can run in parallel.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 succeeds on any test machine");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    // A client that goes away mid-request is the client's problem.
                    let _ = serve(stream, state).await;
                });
            }
        });
        FakeServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `method path` with `replies` in order; the last one repeats.
    pub(crate) fn route(&self, method: &str, path: &str, replies: Vec<FakeReply>) {
        let mut replies: VecDeque<FakeReply> = replies.into();
        let last = replies
            .back()
            .cloned()
            .expect("a route needs at least one reply");
        if replies.len() == 1 {
            replies.clear();
        }
        self.lock().routes.push(Route {
            method: method.into(),
            path: path.into(),
            replies,
            last,
            hits: 0,
        });
    }

    /// How many requests `method path` received.
    pub(crate) fn hits(&self, method: &str, path: &str) -> usize {
        self.lock()
            .routes
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.hits)
            .sum()
    }

    /// Every request so far, in order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a test thread panicked: that test has failed already.
        self.state
            .lock()
            .expect("the fake server's state is not poisoned")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request, answers it, closes.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let path = target.split('?').next().unwrap_or_default().to_string();
    let reply = {
        let mut state = state
            .lock()
            .expect("the fake server's state is not poisoned");
        state.requests.push(Recorded {
            method: method.clone(),
            target: target.clone(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        match state
            .routes
            .iter_mut()
            .find(|r| r.method == method && r.path == path)
        {
            Some(route) => {
                route.hits += 1;
                route
                    .replies
                    .pop_front()
                    .unwrap_or_else(|| route.last.clone())
            }
            None => FakeReply::json(404, serde_json::json!({"message": "no such route"})),
        }
    };
    let mut out = format!("HTTP/1.1 {} Fake\r\n", reply.status);
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.body.len(),
        reply.body
    ));
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// A URL where nothing listens: a port bound, then released.
pub(crate) fn closed_port_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 succeeds");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    drop(listener);
    format!("http://{addr}")
}

/// A [`Target`](super::Target) on the fake server: the web base is the server, the API
/// under `api_path` (`/api/v3`, `/api/v4`, ...).
pub(crate) fn target(
    provider: crate::provider::Provider,
    server: &FakeServer,
    api_path: &str,
) -> super::Target {
    super::Target {
        provider,
        web_base: server.url(),
        api_base: format!("{}{api_path}", server.url()),
    }
}
