//! A fake forge for the provider tests: a std-only HTTP/1.1 server on 127.0.0.1 (threads
//! and a `TcpListener`) that answers what GitHub, GitLab and Gitea document, so the real
//! daemon can be tested without reaching the real hosts.
//!
//! Routes match the method and the path (the query is ignored for matching, and kept in
//! the record), optionally also a piece of the request body (one URL serves both the device
//! polls and the refreshes on GitHub: `grant_type` tells them apart). Each route answers its
//! replies in order, the last one repeating. Every request is recorded (method, path, query,
//! headers, body) and every route counts its hits. Each answer closes the connection.
//!
//! The server stops when dropped: the accept loop polls a stop flag, and every connection
//! thread has read and write timeouts, so stopping is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a connection may stay silent before its thread gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Biggest request accepted (the daemon's are all tiny).
const MAX_REQUEST: usize = 1 << 20;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to widen race windows).
    pub delay: Duration,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// An answer without a body (`204 No Content`, ...).
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query (without `?`), if any.
    pub query: Option<String>,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// When the request had been read.
    pub at: Instant,
}

impl Request {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` fields, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        self.body
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// One form field, decoded.
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Everything the client sent, as one text (to search for secrets).
    pub fn everything(&self) -> String {
        let mut text = format!(
            "{} {}?{}\n",
            self.method,
            self.path,
            self.query.as_deref().unwrap_or("")
        );
        for (n, v) in &self.headers {
            text.push_str(&format!("{n}: {v}\n"));
        }
        text.push_str(&self.body);
        text
    }
}

struct Route {
    method: String,
    path: String,
    /// Matches only requests whose (decoded) body contains this.
    body_contains: Option<String>,
    replies: Vec<Reply>,
    /// Answers computed from the request (a JWT checked, an expiry from a clock), instead
    /// of `replies`.
    handler: Option<Handler>,
    next: usize,
    hits: usize,
}

/// A route that computes its answer from the request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

impl Route {
    fn matches(&self, req: &Request) -> bool {
        self.method == req.method
            && self.path == req.path
            && self.body_contains.as_deref().is_none_or(|needle| {
                req.body.contains(needle) || percent_decode(&req.body).contains(needle)
            })
    }

    /// The next reply: in order, then the last one again.
    fn take(&mut self) -> Reply {
        let i = self.next.min(self.replies.len() - 1);
        self.next += 1;
        self.replies[i].clone()
    }
}

#[derive(Default)]
struct State {
    routes: Vec<Route>,
    requests: Vec<Request>,
}

/// The server. Stops (boundedly) when dropped.
pub struct FakeProvider {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FakeProvider {
    pub fn start() -> FakeProvider {
        // Port 0: the OS picks a free port, so tests run in parallel.
        let listener = TcpListener::bind("127.0.0.1:0").expect("127.0.0.1:0 can be bound");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        // Non-blocking accept, polled, so that the stop flag is seen within a few ms.
        listener
            .set_nonblocking(true)
            .expect("a listener can be made non-blocking");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            let connections = Arc::clone(&connections);
            std::thread::Builder::new()
                .name(format!("fake-provider-{}", addr.port()))
                .spawn(move || accept_loop(listener, state, stop, connections))
                .expect("a thread can be started")
        };
        FakeProvider {
            addr,
            state,
            stop,
            acceptor: Some(acceptor),
            connections,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`: the host as helperd names it in messages.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Answers `method path` with `replies` in order, the last one repeating. Replaces an
    /// earlier route for the same method and path (hits start again from 0).
    pub fn route(&self, method: &str, path: &str, replies: Vec<Reply>) {
        self.add(method, path, None, replies);
    }

    /// Like [`route`](Self::route), for requests whose body contains `needle` (raw or
    /// URL-decoded). Routes with a body condition are tried before the plain route.
    pub fn route_body(&self, method: &str, path: &str, needle: &str, replies: Vec<Reply>) {
        self.add(method, path, Some(needle.to_string()), replies);
    }

    /// A route whose answer `handler` computes from each request.
    pub fn route_fn(
        &self,
        method: &str,
        path: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) {
        self.add(method, path, None, vec![Reply::empty(500)]);
        let mut state = self.lock();
        if let Some(r) = state
            .routes
            .iter_mut()
            .find(|r| r.method == method && r.path == path && r.body_contains.is_none())
        {
            r.handler = Some(Arc::new(handler));
        }
    }

    fn add(&self, method: &str, path: &str, needle: Option<String>, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a route needs at least one reply");
        let mut state = self.lock();
        state
            .routes
            .retain(|r| !(r.method == method && r.path == path && r.body_contains == needle));
        let route = Route {
            method: method.into(),
            path: path.into(),
            body_contains: needle,
            replies,
            handler: None,
            next: 0,
            hits: 0,
        };
        // Body-specific routes first, so they win over the catch-all of their path.
        if route.body_contains.is_some() {
            state.routes.insert(0, route);
        } else {
            state.routes.push(route);
        }
    }

    /// Requests answered by the route(s) of `method path` (any body condition).
    pub fn hits(&self, method: &str, path: &str) -> usize {
        self.lock()
            .routes
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.hits)
            .sum()
    }

    /// Requests answered by the route of `method path` with the body condition `needle`.
    pub fn hits_body(&self, method: &str, path: &str, needle: &str) -> usize {
        self.lock()
            .routes
            .iter()
            .filter(|r| {
                r.method == method && r.path == path && r.body_contains.as_deref() == Some(needle)
            })
            .map(|r| r.hits)
            .sum()
    }

    /// Every request so far, in order (including those no route answered: 404).
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The requests to `method path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// Waits (at most `timeout`) until `method path` was hit `n` times.
    pub fn wait_for_hits(&self, method: &str, path: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.hits(method, path) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Stops accepting, then waits (at most a few seconds) for open connections to end.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + IO_TIMEOUT + Duration::from_secs(1);
        let threads = std::mem::take(&mut *lock(&self.connections));
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A poisoned lock only means a connection thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = Arc::clone(&state);
                let handle = std::thread::spawn(move || {
                    // A client that goes away mid-request is the client's business.
                    let _ = serve(stream, &state);
                });
                let mut all = lock(&connections);
                all.retain(|t| !t.is_finished());
                all.push(handle);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads one request, answers it, closes the connection.
fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.trim_end().split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    if method.is_empty() {
        return Ok(());
    }
    let mut headers = Vec::new();
    let mut total = line.len();
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h)?;
        total += n;
        if n == 0 || h == "\r\n" || h == "\n" || total > MAX_REQUEST {
            break;
        }
        if let Some((name, value)) = h.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        read_chunked(&mut reader)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(MAX_REQUEST);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.clone(), None),
    };
    let request = Request {
        method,
        path,
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let state_ref = state;
    let reply = {
        let mut state = lock(state_ref);
        let reply = match state.routes.iter_mut().find(|r| r.matches(&request)) {
            Some(route) => {
                route.hits += 1;
                match route.handler.clone() {
                    Some(h) => {
                        // Computed outside the lock: a handler may take its time.
                        drop(state);
                        let reply = h(&request);
                        state = lock(state_ref);
                        reply
                    }
                    None => route.take(),
                }
            }
            None => Reply::json(404, serde_json::json!({"message": "Not Found"})),
        };
        state.requests.push(request);
        reply
    };
    if !reply.delay.is_zero() {
        std::thread::sleep(reply.delay);
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.push_str(&reply.body);
    let mut stream = stream;
    stream.write_all(out.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        if size == 0 || body.len() + size > MAX_REQUEST {
            // The trailer (usually empty) ends with a blank line.
            let mut rest = String::new();
            let _ = reader.read_line(&mut rest);
            return Ok(body);
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        body.extend_from_slice(&chunk);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Fake",
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                Some(Ok(b)) => {
                    out.push(b);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL where nothing listens: a port bound, then released.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("127.0.0.1:0 can be bound");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------
// The documented answers
// ---------------------------------------------------------------------------------------

/// GitHub `GET /user` (https://docs.github.com/en/rest/users/users#get-the-authenticated-user):
/// the user, with the classic token's scopes in `X-OAuth-Scopes`
/// (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps)
/// and, for a token that expires, `GitHub-Authentication-Token-Expiration`.
pub fn github_user(scopes: Option<&str>, expiration: Option<&str>) -> Reply {
    let mut reply = Reply::json(
        200,
        serde_json::json!({
            "login": "octocat",
            "id": 1,
            "node_id": "MDQ6VXNlcjE=",
            "type": "User",
            "site_admin": false,
            "name": "monalisa octocat",
        }),
    )
    .header("X-GitHub-Media-Type", "github.v3; format=json")
    .header("X-Accepted-OAuth-Scopes", "");
    if let Some(s) = scopes {
        reply = reply.header("X-OAuth-Scopes", s);
    }
    if let Some(e) = expiration {
        reply = reply.header("GitHub-Authentication-Token-Expiration", e);
    }
    reply
}

/// GitHub's answer to a bad token (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api#failed-login-limit).
pub fn github_bad_credentials() -> Reply {
    Reply::json(
        401,
        serde_json::json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }),
    )
}

/// GitHub `POST /login/device/code` (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow).
pub fn github_device_code(base: &str, device_code: &str, user_code: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{base}/login/device"),
            "expires_in": 900,
            "interval": 1,
        }),
    )
}

/// An OAuth error as GitHub sends it: HTTP 200 with `error` in the body.
pub fn github_oauth_error(code: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "error": code,
            "error_description": format!("fake description of {code}"),
            "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
        }),
    )
}

/// GitHub's `slow_down`: the error and the new interval (the old one + 5).
pub fn github_slow_down(interval: u64) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "error": "slow_down",
            "error_description": "Too many requests have been made in the same timeframe.",
            "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
            "interval": interval,
        }),
    )
}

/// GitHub's token answer for an expiring user token
/// (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens).
pub fn github_tokens(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> Reply {
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "bearer",
        "scope": "repo",
    });
    if let Some(r) = refresh {
        body["refresh_token"] = Value::from(r);
        body["refresh_token_expires_in"] = Value::from(15_811_200u64);
    }
    if let Some(e) = expires_in {
        body["expires_in"] = Value::from(e);
    }
    Reply::json(200, body)
}

/// GitLab `GET /personal_access_tokens/self`
/// (https://docs.gitlab.com/api/personal_access_tokens/#get-details-on-a-personal-access-token).
pub fn gitlab_self(scopes: &[&str], expires_at: Option<&str>) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "id": 42,
            "name": "helperd test token",
            "revoked": false,
            "created_at": "2026-01-01T10:00:00.000Z",
            "description": "",
            "scopes": scopes,
            "user_id": 3,
            "last_used_at": null,
            "active": true,
            "expires_at": expires_at,
        }),
    )
}

/// GitLab's 401 (`{"message":"401 Unauthorized"}`).
pub fn gitlab_unauthorized() -> Reply {
    Reply::json(401, serde_json::json!({"message": "401 Unauthorized"}))
}

/// GitLab `POST /oauth/authorize_device` (https://docs.gitlab.com/api/oauth2/#device-authorization-grant-flow).
pub fn gitlab_device_code(base: &str, device_code: &str, user_code: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{base}/oauth/device"),
            "verification_uri_complete": format!("{base}/oauth/device?user_code={user_code}"),
            "expires_in": 300,
            "interval": 1,
        }),
    )
}

/// An RFC 6749 §5.2 error as GitLab (Doorkeeper) sends it: HTTP 400.
pub fn gitlab_oauth_error(code: &str) -> Reply {
    Reply::json(
        400,
        serde_json::json!({
            "error": code,
            "error_description": format!("fake description of {code}"),
        }),
    )
}

/// GitLab's token answer: two-hour access tokens, a new refresh token every time.
pub fn gitlab_tokens(access: &str, refresh: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 7200,
            "refresh_token": refresh,
            "scope": "read_repository write_repository",
            "created_at": 1_700_000_000u64,
        }),
    )
}

/// Gitea `GET /api/v1/user` (https://docs.gitea.com/api/1.22/#tag/user/operation/userGetCurrent).
pub fn gitea_user() -> Reply {
    Reply::json(
        200,
        serde_json::json!({
            "id": 1,
            "login": "gitea-user",
            "full_name": "",
            "email": "gitea-user@example.invalid",
            "is_admin": false,
        }),
    )
}

/// Gitea `GET /api/v1/repos/search`.
pub fn gitea_repo_search() -> Reply {
    Reply::json(200, serde_json::json!({"ok": true, "data": []}))
}
