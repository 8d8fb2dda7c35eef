//! A test-only git smart-HTTP server: a small HTTP/1.1 server written with std only that puts
//! HTTP Basic authentication in front of `git http-backend`, so integration tests can run the
//! real git against a real remote that asks for credentials.
//!
//! Every request is recorded in an auth log (path, the credentials it carried, whether they
//! were accepted), and the accepted credentials can be changed at run time to simulate a revoked
//! token.
//!
//! Usage, copied from the end-to-end tests this file was developed against (`git_server` is
//! this module, e.g. `#[path = "util/git_server.rs"] mod git_server;` in a test crate):
//!
//! ```ignore
//! use std::path::Path;
//! use std::process::{Command, Output};
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use git_server::{Account, AuthAttempt, GitServer};
//!
//! /// Runs git in `dir` isolated from the machine's and the user's configuration.
//! fn git(home: &Path, dir: &Path, args: &[&str]) -> Output {
//!     git_with_env(home, dir, args, &[])
//! }
//!
//! fn git_with_env(home: &Path, dir: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Output {
//!     let mut command = Command::new("git");
//!     command
//!         .args(args)
//!         .current_dir(dir)
//!         .env("HOME", home)
//!         .env("GIT_CONFIG_NOSYSTEM", "1")
//!         .env("GIT_TERMINAL_PROMPT", "0")
//!         .env_remove("GIT_ASKPASS")
//!         .env_remove("SSH_ASKPASS")
//!         .env("GIT_AUTHOR_NAME", "Test")
//!         .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
//!         .env("GIT_COMMITTER_NAME", "Test")
//!         .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
//!     for (name, value) in envs {
//!         command.env(name, value);
//!     }
//!     command
//!         .output()
//!         .expect("git is installed on the test machine")
//! }
//!
//! fn assert_success(out: &Output) {
//!     assert!(
//!         out.status.success(),
//!         "git failed: {}\n{}",
//!         String::from_utf8_lossy(&out.stdout),
//!         String::from_utf8_lossy(&out.stderr)
//!     );
//! }
//!
//! /// Incompressible bytes (xorshift), so the pushed pack is as large as the file.
//! fn random_bytes(len: usize) -> Vec<u8> {
//!     let mut state = SystemTime::now()
//!         .duration_since(UNIX_EPOCH)
//!         .expect("the clock is after 1970")
//!         .as_nanos() as u64
//!         | 1;
//!     (0..len)
//!         .map(|_| {
//!             state ^= state << 13;
//!             state ^= state >> 7;
//!             state ^= state << 17;
//!             (state >> 24) as u8
//!         })
//!         .collect()
//! }
//!
//! fn with_credentials(url: &str, user: &str, password: &str) -> String {
//!     url.replace("http://", &format!("http://{user}:{password}@"))
//! }
//!
//! #[test]
//! fn clone_push_and_clone_again_through_basic_auth() {
//!     let root = tempfile::tempdir().unwrap();
//!     let home = tempfile::tempdir().unwrap();
//!     let work = tempfile::tempdir().unwrap();
//!     let server = GitServer::start(root.path(), vec![Account::new("/acme/", "alice", "s3cret")]);
//!     server.create_bare_repo("/acme/app.git");
//!     let url = with_credentials(&server.url("/acme/app.git"), "alice", "s3cret");
//!
//!     // Clone the empty repo, commit a 100 KB incompressible file and push it with a tiny
//!     // http.postBuffer, which makes git send the pack with `Transfer-Encoding: chunked`.
//!     assert_success(&git(home.path(), work.path(), &["clone", &url, "first"]));
//!     let first = work.path().join("first");
//!     let payload = random_bytes(100 * 1024);
//!     std::fs::write(first.join("blob.bin"), &payload).unwrap();
//!     assert_success(&git(home.path(), &first, &["add", "blob.bin"]));
//!     assert_success(&git(home.path(), &first, &["commit", "-m", "blob"]));
//!     let trace = work.path().join("push-trace.txt");
//!     let push = ["-c", "http.postBuffer=1024", "push", "origin", "main"];
//!     let out = git_with_env(home.path(), &first, &push, &[("GIT_TRACE_CURL", &trace)]);
//!     assert_success(&out);
//!     let trace = std::fs::read_to_string(trace).unwrap();
//!     assert!(
//!         trace.contains("Transfer-Encoding: chunked"),
//!         "push was not chunked"
//!     );
//!
//!     // A second clone sees the pushed file.
//!     assert_success(&git(home.path(), work.path(), &["clone", &url, "second"]));
//!     assert_eq!(
//!         std::fs::read(work.path().join("second/blob.bin")).unwrap(),
//!         payload
//!     );
//!
//!     let log = server.auth_log();
//!     assert!(log.iter().any(|attempt| attempt.method == "POST"
//!         && attempt.path == "/acme/app.git/git-receive-pack"
//!         && attempt.accepted
//!         && attempt.credentials == Some(("alice".into(), "s3cret".into()))));
//!     // git asks without credentials first and only sends them after a 401.
//!     assert!(log
//!         .iter()
//!         .any(|attempt| attempt.credentials.is_none() && !attempt.accepted));
//! }
//!
//! #[test]
//! fn wrong_password_is_refused_with_401_and_logged() {
//!     let root = tempfile::tempdir().unwrap();
//!     let home = tempfile::tempdir().unwrap();
//!     let work = tempfile::tempdir().unwrap();
//!     let server = GitServer::start(root.path(), vec![Account::new("", "alice", "s3cret")]);
//!     server.create_bare_repo("/acme/app.git");
//!     let url = with_credentials(&server.url("/acme/app.git"), "alice", "wrong");
//!     let trace = work.path().join("trace.txt");
//!     let out = git_with_env(
//!         home.path(),
//!         work.path(),
//!         &["clone", &url, "third"],
//!         &[("GIT_TRACE_CURL", &trace)],
//!     );
//!     assert!(!out.status.success());
//!     let stderr = String::from_utf8_lossy(&out.stderr);
//!     assert!(stderr.contains("Authentication failed"), "{stderr}");
//!     let trace = std::fs::read_to_string(trace).unwrap();
//!     assert!(trace.contains("HTTP/1.1 401 Unauthorized"));
//!     assert!(trace.contains("WWW-Authenticate: Basic realm=\"helperd-test\""));
//!     let log = server.auth_log();
//!     assert!(log.contains(&AuthAttempt {
//!         method: "GET".into(),
//!         path: "/acme/app.git/info/refs".into(),
//!         query: "service=git-upload-pack".into(),
//!         credentials: Some(("alice".into(), "wrong".into())),
//!         accepted: false,
//!     }));
//!     assert!(log.iter().all(|attempt| !attempt.accepted));
//! }
//! ```
//!
//! Caveats: request paths are compared and passed on as sent (no percent-decoding), bodies and
//! responses are held in memory whole, and `git` is the one found on `PATH`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The realm sent in every `WWW-Authenticate` challenge.
pub const REALM: &str = "helperd-test";

/// Longest request line or header line accepted; longer ones are treated as malformed.
const MAX_LINE: u64 = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body accepted (after de-chunking); far above what a test pushes.
const MAX_BODY: u64 = 1 << 30;

/// Credentials accepted for the repos whose path starts with `prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// A prefix of the request path, e.g. `"/acme/"`; `""` matches every path.
    pub prefix: String,
    pub username: String,
    pub password: String,
}

impl Account {
    pub fn new(prefix: &str, username: &str, password: &str) -> Account {
        Account {
            prefix: prefix.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request path without the query string, e.g. `/acme/app.git/info/refs`.
    pub path: String,
    /// The query string without `?` (empty when there is none), e.g. `service=git-upload-pack`.
    pub query: String,
    /// The decoded `Authorization: Basic` credentials, or `None` when the request carried no
    /// (well-formed) Basic credentials.
    pub credentials: Option<(String, String)>,
    /// Whether the request was passed on to `git http-backend` rather than answered with 401.
    pub accepted: bool,
}

/// State shared between the test, the accept thread and the connection threads.
struct Shared {
    root: PathBuf,
    backend: PathBuf,
    accounts: Mutex<Vec<Account>>,
    log: Mutex<Vec<AuthAttempt>>,
    stopping: AtomicBool,
    next_connection: AtomicU64,
    /// Open connections, so that dropping the server can cut them off.
    connections: Mutex<HashMap<u64, TcpStream>>,
}

/// Locks a mutex even if a connection thread panicked while holding it: the data (a list of
/// accounts, log entries or sockets) is never left half-updated, and one broken connection
/// must not take the whole server down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn is_accepted(&self, path: &str, credentials: Option<&(String, String)>) -> bool {
        let Some((username, password)) = credentials else {
            return false;
        };
        lock(&self.accounts).iter().any(|account| {
            path.starts_with(&account.prefix)
                && account.username == *username
                && account.password == *password
        })
    }

    fn forget_connection(&self, id: u64) {
        lock(&self.connections).remove(&id);
    }
}

/// A running server; dropping it stops accepting and closes the open connections.
pub struct GitServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl GitServer {
    /// Starts a server on 127.0.0.1:<random port> serving the bare repos under `root` through
    /// `git http-backend`. `accounts` are the credentials accepted, each for a path prefix.
    pub fn start(root: &Path, accounts: Vec<Account>) -> GitServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding to a free loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            backend: find_http_backend(),
            accounts: Mutex::new(accounts),
            log: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_connection: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("git-server-{}", addr.port()))
            .spawn(move || accept_loop(&accept_shared, &listener))
            .expect("spawning a thread only fails when the OS is out of resources");
        GitServer {
            shared,
            addr,
            accept_thread: Some(accept_thread),
        }
    }

    /// The URL of a repo, e.g. `url("/acme/app.git")` is `http://127.0.0.1:PORT/acme/app.git`.
    pub fn url(&self, repo_path: &str) -> String {
        format!("{}/{}", self.base_url(), repo_path.trim_start_matches('/'))
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The directory the repos are served from.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Every request received so far, oldest first, accepted or not (a request whose request
    /// line or headers cannot be parsed is not one: its connection is just closed).
    pub fn auth_log(&self) -> Vec<AuthAttempt> {
        lock(&self.shared.log).clone()
    }

    /// Empties the auth log, e.g. between the steps of a test.
    pub fn clear_auth_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Replaces the accepted credentials; the next request is checked against the new ones.
    pub fn set_accounts(&self, accounts: Vec<Account>) {
        *lock(&self.shared.accounts) = accounts;
    }

    /// Creates a bare repo at `repo_path` under the root (`git init --bare -b main`) that
    /// accepts pushes over HTTP (`http.receivepack true`). Panics if git fails.
    pub fn create_bare_repo(&self, repo_path: &str) {
        let dir = self.shared.root.join(repo_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("creating the repo directory under the root");
        let dir = dir.to_str().expect("test repo paths are UTF-8");
        run_git(&["init", "--quiet", "--bare", "-b", "main", dir]);
        // http-backend refuses pushes from a client it did not authenticate itself unless the
        // repo says so; this server does the authentication.
        run_git(&["-C", dir, "config", "http.receivepack", "true"]);
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() has no timeout; a connection of our own wakes it up to see the flag.
        // An error means the listener is gone already, so there is nothing to wake.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5));
        if let Some(accept_thread) = self.accept_thread.take() {
            // The accept loop does not panic; if it somehow did, the test has already failed
            // louder elsewhere and a drop must not panic again.
            let _ = accept_thread.join();
        }
        // After the join no connection can be added any more; cut off the open ones so their
        // threads end instead of waiting for a client that may never speak again.
        for (_, connection) in lock(&self.shared.connections).drain() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// Runs a git command for set-up, isolated from the machine's and user's configuration.
fn run_git(args: &[&str]) -> Vec<u8> {
    let output = Command::new("git")
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("git is installed on the test machine");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The `git-http-backend` program that belongs to the `git` on PATH.
fn find_http_backend() -> PathBuf {
    let exec_path = run_git(&["--exec-path"]);
    let exec_path = String::from_utf8(exec_path).expect("git prints its exec path as UTF-8");
    let backend = Path::new(exec_path.trim()).join("git-http-backend");
    assert!(
        backend.is_file(),
        "no git-http-backend at {}",
        backend.display()
    );
    backend
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => spawn_connection(shared, stream),
            // Transient (e.g. the client gave up, or out of file descriptors): back off a
            // little rather than spin, and keep serving.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
    // Registered here, on the accept thread, so that Drop (which joins this thread first)
    // sees every connection. Without a clone the connection cannot be cut off; serve it anyway.
    if let Ok(clone) = stream.try_clone() {
        lock(&shared.connections).insert(id, clone);
    }
    let connection_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("git-server-conn-{id}"))
        .spawn(move || {
            // Any error (malformed request, client gone) just ends this connection.
            let _ = serve_connection(&connection_shared, stream);
            connection_shared.forget_connection(id);
        });
    if spawned.is_err() {
        // No thread to serve it: dropping the registered clone closes the connection.
        shared.forget_connection(id);
    }
}

/// Serves requests on one connection until the client closes it or asks to
/// (HTTP/1.1 keep-alive: git reuses connections between requests).
fn serve_connection(shared: &Shared, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(head) = read_head(&mut reader)? {
        if !serve_request(shared, &head, &mut reader, &mut writer)? {
            break;
        }
    }
    Ok(())
}

/// The request line and headers of one request.
#[derive(Debug)]
struct RequestHead {
    method: String,
    path: String,
    query: String,
    version: String,
    /// Header names in lower case, in the order received.
    headers: Vec<(String, String)>,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn has_header_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    }

    fn keep_alive(&self) -> bool {
        if self.has_header_token("connection", "close") {
            false
        } else {
            // HTTP/1.1 keeps the connection by default, HTTP/1.0 only when asked.
            self.version == "HTTP/1.1" || self.has_header_token("connection", "keep-alive")
        }
    }
}

/// Answers one request; returns whether the connection stays open for another.
fn serve_request(
    shared: &Shared,
    head: &RequestHead,
    reader: &mut impl BufRead,
    writer: &mut impl Write,
) -> io::Result<bool> {
    let credentials = head.header("authorization").and_then(parse_basic_auth);
    let accepted = shared.is_accepted(&head.path, credentials.as_ref());
    lock(&shared.log).push(AuthAttempt {
        method: head.method.clone(),
        path: head.path.clone(),
        query: head.query.clone(),
        credentials: credentials.clone(),
        accepted,
    });
    let expects_continue = head.has_header_token("expect", "100-continue");
    let keep_alive = head.keep_alive();
    let Some((username, _)) = credentials.filter(|_| accepted) else {
        if expects_continue {
            // The client is waiting to hear whether to send the body; whether it then sends
            // it anyway is up to the client, so the connection cannot be reused safely.
            write_unauthorized(writer, false)?;
            return Ok(false);
        }
        // Drain the body so the next request on this connection starts where it should.
        read_body(head, reader)?;
        write_unauthorized(writer, keep_alive)?;
        return Ok(keep_alive);
    };
    if expects_continue {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let body = read_body(head, reader)?;
    let response = run_http_backend(shared, head, &username, &body);
    write_response(writer, &response, keep_alive)?;
    Ok(keep_alive)
}

/// Reads the request line and headers; `None` on a clean end of stream between requests.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<RequestHead>> {
    let Some(request_line) = read_line(reader)? else {
        return Ok(None);
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("request line"));
    };
    if !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(malformed("request target or version"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Some(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version: version.to_owned(),
        headers: read_headers(reader)?,
    }))
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| malformed("end of stream in headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return Err(malformed("too many headers"));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| malformed("header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
}

/// Reads one line without its CRLF (or bare LF); `None` at end of stream before any byte.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(malformed("line too long or cut off"));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| malformed("line is not UTF-8"))
}

/// Reads the body as framed by `Transfer-Encoding: chunked` or `Content-Length` (none: empty).
fn read_body(head: &RequestHead, reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    if let Some(encoding) = head.header("transfer-encoding") {
        // chunked takes precedence over Content-Length (RFC 9112 6.3); no other coding is
        // used by git, so anything else is treated as malformed.
        if !encoding.eq_ignore_ascii_case("chunked") {
            return Err(malformed("transfer coding"));
        }
        return read_chunked(reader);
    }
    let length = match head.header("content-length") {
        Some(value) => value
            .parse::<u64>()
            .map_err(|_| malformed("Content-Length"))?,
        None => 0,
    };
    let mut body = Vec::new();
    read_exactly(reader, length, &mut body)?;
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| malformed("end of stream in chunks"))?;
        // Chunk extensions (";name=value") carry nothing git needs.
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| malformed("chunk size"))?;
        if size == 0 {
            // Skip any trailer fields up to the blank line that ends the message.
            read_headers(reader)?;
            return Ok(body);
        }
        read_exactly(reader, size, &mut body)?;
        if read_line(reader)?.as_deref() != Some("") {
            return Err(malformed("chunk not followed by CRLF"));
        }
    }
}

/// Appends exactly `length` bytes from `reader` to `body`.
fn read_exactly(reader: &mut impl Read, length: u64, body: &mut Vec<u8>) -> io::Result<()> {
    if length > MAX_BODY.saturating_sub(body.len() as u64) {
        return Err(malformed("body too large"));
    }
    let read = reader.by_ref().take(length).read_to_end(body)?;
    if read as u64 != length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

/// Decodes `Basic base64(user:password)`; `None` for any other scheme or a malformed value.
fn parse_basic_auth(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = decode_base64(encoded.trim())?;
    // Lossy, so that odd bytes still show up in the auth log rather than vanish.
    let decoded = String::from_utf8_lossy(&decoded);
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// Decodes standard base64 (RFC 4648 alphabet, padding optional).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=');
    let mut decoded = Vec::with_capacity(digits.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in digits.bytes() {
        buffer = (buffer << 6) | u32::from(base64_value(byte)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Truncation intended: the low 8 bits above the `bits` left over are the byte.
            decoded.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // 2 or 4 leftover bits are the padding of a final group; 6 means a lone digit, which
    // cannot encode a byte.
    (bits < 6).then_some(decoded)
}

fn base64_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// A response to send: status line text, headers, body.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn plain(status: &str, message: &str) -> Response {
        Response {
            status: status.to_owned(),
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: message.as_bytes().to_vec(),
        }
    }
}

fn write_unauthorized(writer: &mut impl Write, keep_alive: bool) -> io::Result<()> {
    let response = Response {
        status: "401 Unauthorized".to_owned(),
        headers: vec![(
            "WWW-Authenticate".to_owned(),
            format!("Basic realm=\"{REALM}\""),
        )],
        body: Vec::new(),
    };
    write_response(writer, &response, keep_alive)
}

fn write_response(
    writer: &mut impl Write,
    response: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    let mut message = format!("HTTP/1.1 {}\r\n", response.status);
    for (name, value) in &response.headers {
        message.push_str(&format!("{name}: {value}\r\n"));
    }
    message.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if !keep_alive {
        message.push_str("Connection: close\r\n");
    }
    message.push_str("\r\n");
    let mut bytes = message.into_bytes();
    bytes.extend_from_slice(&response.body);
    // One write: git's client must never see a head without its body because of us.
    writer.write_all(&bytes)?;
    writer.flush()
}

/// Runs `git http-backend` as a CGI program for an accepted request and turns its output into
/// a response (500 if it cannot run, 502 if its output is not CGI).
fn run_http_backend(shared: &Shared, head: &RequestHead, username: &str, body: &[u8]) -> Response {
    let output = match cgi_command(shared, head, username, body.len()).spawn() {
        Ok(child) => feed_and_wait(child, body),
        Err(error) => return Response::plain("500 Internal Server Error", &error.to_string()),
    };
    let output = match output {
        Ok(output) => output,
        Err(error) => return Response::plain("500 Internal Server Error", &error.to_string()),
    };
    if !output.stderr.is_empty() {
        // Shown with the output of a failing test; http-backend explains its errors here.
        eprintln!(
            "git-http-backend {} {}: {}",
            head.method,
            head.path,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    parse_cgi_output(&output.stdout).unwrap_or_else(|| {
        let message = format!("git http-backend gave no CGI response ({})", output.status);
        Response::plain("502 Bad Gateway", &message)
    })
}

fn cgi_command(shared: &Shared, head: &RequestHead, username: &str, length: usize) -> Command {
    let mut command = Command::new(&shared.backend);
    // Only what a CGI program gets from a web server (plus PATH and HOME), so the test
    // process's environment (e.g. GIT_DIR set by a test) cannot change how the server behaves.
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        // Neither the machine's nor the user's git configuration may change the server; the
        // repo's own config (http.receivepack) still applies.
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &head.path)
        .env("QUERY_STRING", &head.query)
        .env("REQUEST_METHOD", &head.method)
        .env("CONTENT_LENGTH", length.to_string())
        .env("REMOTE_USER", username)
        .env("REMOTE_ADDR", "127.0.0.1");
    let forwarded = [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ];
    for (header, variable) in forwarded {
        if let Some(value) = head.header(header) {
            command.env(variable, value);
        }
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Writes `body` to the child's stdin from another thread while collecting its output: a
/// large body and a large output would otherwise fill both pipes and deadlock.
fn feed_and_wait(mut child: std::process::Child, body: &[u8]) -> io::Result<std::process::Output> {
    let mut stdin = child.stdin.take().expect("stdin was configured as piped");
    thread::scope(|scope| {
        scope.spawn(move || {
            // http-backend may stop reading early (e.g. on an error it reports on stdout);
            // the broken pipe that follows is not ours to report. Dropping stdin sends EOF.
            let _ = stdin.write_all(body);
        });
        child.wait_with_output()
    })
}

/// Splits CGI output into headers (`Status:` gives the status, default 200) and body. Framing
/// headers are dropped because the response is re-framed with its own Content-Length.
fn parse_cgi_output(output: &[u8]) -> Option<Response> {
    let (head, body) = split_cgi_head(output)?;
    let head = std::str::from_utf8(head).ok()?;
    let mut response = Response {
        status: "200 OK".to_owned(),
        headers: Vec::new(),
        body: body.to_vec(),
    };
    for line in head.lines() {
        let (name, value) = line.split_once(':')?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            response.status = value.to_owned();
        } else if !is_framing_header(name) {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let code = response.status.get(..3)?;
    code.bytes().all(|b| b.is_ascii_digit()).then_some(response)
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
}

/// Splits at the first empty line; CGI programs may end lines with CRLF or a bare LF.
fn split_cgi_head(output: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = 0;
    while let Some(offset) = output[start..].iter().position(|&b| b == b'\n') {
        let line = &output[start..start + offset];
        let next = start + offset + 1;
        if line.is_empty() || line == b"\r" {
            return Some((&output[..start], &output[next..]));
        }
        start = next;
    }
    None
}
