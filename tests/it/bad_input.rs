//! Bad input, through the client and straight on the daemon's socket: each gets one clear
//! error (or a clean miss) that never quotes the input, and the same daemon goes on
//! serving the next client. No secret planted in bad input ever reaches the daemon's log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use helperd::wire::wire::PROTOCOL_VERSION;

use crate::util::{assert_ok, stderr, stdout, value, Sandbox};

/// Planted in every bad input: it must never come back on stderr, in a reply or in the log.
const SECRET: &str = "SECRET-abc";

/// The credential every case checks is still served afterwards.
const GOOD: &str = "protocol=https\nhost=good.example\nusername=alice\npassword=pw-good-7731\n";
const GOOD_PASSWORD: &str = "pw-good-7731";

/// How long a raw client waits for the daemon's reply before the test fails.
const REPLY_WAIT: Duration = Duration::from_secs(20);

/// A sandbox whose daemon runs and holds [`GOOD`].
struct Serving {
    sb: Sandbox,
    pid: i32,
}

impl Serving {
    #[track_caller]
    fn new() -> Serving {
        let mut sb = Sandbox::new();
        // A short request timeout, so that the silent-client tests need not wait 10 s.
        sb.env
            .push(("HELPERD_REQUEST_TIMEOUT_MS".into(), "1500".into()));
        assert_ok(&sb.credential("approve", GOOD));
        let pid = sb.daemon_pid().expect("git's approve started the daemon");
        let s = Serving { sb, pid };
        s.assert_still_serving();
        s
    }

    /// The same daemon (not one the client restarted) serves [`GOOD`] through git.
    #[track_caller]
    fn assert_still_serving(&self) {
        let out = self
            .sb
            .credential("fill", "protocol=https\nhost=good.example\n");
        assert_ok(&out);
        assert_eq!(
            value(&stdout(&out), "password").as_deref(),
            Some(GOOD_PASSWORD),
            "the stored credential is no longer served; git printed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(
            self.sb.daemon_pid(),
            Some(self.pid),
            "the daemon that took the bad input is gone"
        );
    }

    /// Neither the planted secret nor the good password is in the daemon's log.
    #[track_caller]
    fn assert_log_clean(&self) {
        let log = self.sb.log();
        assert!(!log.is_empty(), "the daemon wrote no log at all");
        for secret in [SECRET, GOOD_PASSWORD] {
            assert!(
                !log.contains(secret),
                "the daemon's log holds {secret:?}:\n{log}"
            );
        }
    }

    /// Runs the client as git would, with `input` on its stdin.
    fn client(&self, action: &str, input: &[u8]) -> Output {
        self.sb.client_run(&[action], input)
    }

    /// A miss for `host`: nothing stored for it by the bad request.
    #[track_caller]
    fn assert_nothing_stored_for(&self, host: &str) {
        let out = self.client("get", format!("protocol=https\nhost={host}\n").as_bytes());
        assert_ok(&out);
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "a credential for {host} was kept from a refused request:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    /// Sends `bytes` on a fresh connection (from a thread, so a daemon that stops reading
    /// cannot block the test), optionally closes the writing half, and returns the reply.
    #[track_caller]
    fn raw(&self, bytes: Vec<u8>, close_write: bool) -> Value {
        let stream = self.connect();
        let mut writer = stream.try_clone().expect("a socket can be cloned");
        let sender = std::thread::spawn(move || {
            // The daemon may hang up before reading everything: that is its right.
            let _ = writer.write_all(&bytes);
            if close_write {
                let _ = writer.shutdown(Shutdown::Write);
            }
        });
        let reply = read_reply(stream);
        sender.join().expect("the sender thread does not panic");
        reply
    }

    #[track_caller]
    fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(self.sb.socket()).expect("the daemon listens");
        stream
            .set_read_timeout(Some(REPLY_WAIT))
            .expect("a timeout can be set");
        stream
    }
}

/// Reads one reply line and parses it.
#[track_caller]
fn read_reply(stream: UnixStream) -> Value {
    let mut line = Vec::new();
    // The daemon may reset the connection after its reply (unread input): keep what came.
    let read = BufReader::new(stream).read_until(b'\n', &mut line);
    assert!(
        line.ends_with(b"\n"),
        "no complete reply from the daemon ({read:?}): {:?}",
        String::from_utf8_lossy(&line)
    );
    serde_json::from_slice(&line).unwrap_or_else(|e| {
        panic!(
            "the reply is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&line)
        )
    })
}

/// The reply is an error with `code` whose message contains `says`, and quotes no secret.
#[track_caller]
fn assert_error_reply(reply: &Value, code: &str, says: &str) {
    assert_eq!(reply["v"], PROTOCOL_VERSION, "{reply}");
    assert_eq!(reply["result"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "the message should say {says:?}: {reply}"
    );
    assert!(
        !reply.to_string().contains(SECRET),
        "the reply quotes the input: {reply}"
    );
}

/// The client refused the request as git's helpers must: nothing on stdout, one line on
/// stderr that starts with `helperd:`, names `problem` and quotes nothing; exit 0.
#[track_caller]
fn assert_refused(out: &Output, problem: &str) {
    assert_ok(out);
    assert!(
        out.stdout.is_empty(),
        "a refused request was answered: {:?}",
        stdout(out)
    );
    let err = stderr(out);
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr: {err:?}"
    );
    assert!(err.starts_with("helperd:"), "{err:?}");
    assert!(
        err.contains(problem),
        "stderr should name {problem:?}: {err:?}"
    );
    assert!(
        !err.contains(SECRET),
        "stderr quotes the bad value: {err:?}"
    );
}

// The cases, each a function so that one test can run them all in a single sandbox.

fn nul_in_a_value(s: &Serving) {
    let input = format!("protocol=https\nhost=nul.example\nusername=u\npassword={SECRET}\0def\n");
    assert_refused(&s.client("store", input.as_bytes()), "NUL byte");
    s.assert_nothing_stored_for("nul.example");
}

fn cr_in_the_host(s: &Serving) {
    // Were the CR stripped or ignored, this would be served the good credential.
    let input = format!("protocol=https\nhost=good.example\r\nusername=alice\npassword={SECRET}\n");
    assert_refused(&s.client("get", input.as_bytes()), "carriage return");
}

fn cr_in_a_password(s: &Serving) {
    let input = format!("protocol=https\nhost=cr.example\nusername=u\npassword={SECRET}\rdef\n");
    assert_refused(&s.client("store", input.as_bytes()), "carriage return");
    s.assert_nothing_stored_for("cr.example");
}

fn a_line_without_equals(s: &Serving) {
    let input = format!("protocol=https\nhost=noeq.example\n{SECRET}\nusername=u\npassword=p\n");
    assert_refused(&s.client("store", input.as_bytes()), "not key=value");
    s.assert_nothing_stored_for("noeq.example");
}

fn invalid_utf8(s: &Serving) {
    let mut input =
        format!("protocol=https\nhost=utf8.example\nusername=u\npassword={SECRET}").into_bytes();
    input.extend_from_slice(b"\xff\xfe\n");
    assert_refused(&s.client("store", &input), "UTF-8");
    s.assert_nothing_stored_for("utf8.example");
}

fn a_huge_request(s: &Serving) {
    // Many lines, each under the 64 KiB line limit, adding up to more than the client reads.
    let line = format!("wwwauth[]={}\n", SECRET.repeat(6000));
    let input = format!("protocol=https\nhost=good.example\n{}", line.repeat(10));
    assert_refused(&s.client("get", input.as_bytes()), "larger than");
}

fn ten_mib_of_garbage(s: &Serving) {
    // No newline: the daemon must stop reading at its 1 MiB cap rather than buffer it all.
    let garbage: Vec<u8> = format!("{SECRET}\x01\x7f\u{fffd}")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(10 * 1024 * 1024)
        .collect();
    let reply = s.raw(garbage, false);
    assert_error_reply(&reply, "bad_request", "larger than");
}

fn a_truncated_request(s: &Serving) {
    let request = serde_json::json!({
        "v": PROTOCOL_VERSION,
        "op": "git",
        "action": "store",
        "input": format!("protocol=https\nhost=trunc.example\nusername=u\npassword={SECRET}\n"),
    });
    let reply = s.raw(request.to_string().into_bytes(), true);
    assert_error_reply(&reply, "bad_request", "truncated");
    s.assert_nothing_stored_for("trunc.example");
}

fn an_unknown_op(s: &Serving) {
    let request = format!(
        "{{\"v\":{PROTOCOL_VERSION},\"op\":\"frobnicate\",\"input\":\"password={SECRET}\"}}\n"
    );
    let reply = s.raw(request.into_bytes(), false);
    assert_error_reply(&reply, "bad_request", "frobnicate");
}

fn a_malformed_known_op(s: &Serving) {
    let request = format!(
        "{{\"v\":{PROTOCOL_VERSION},\"op\":\"git\",\"action\":\"{SECRET}\",\"input\":\"\"}}\n"
    );
    let reply = s.raw(request.into_bytes(), false);
    assert_error_reply(&reply, "bad_request", "malformed git request");
}

fn a_wrong_protocol_version(s: &Serving) {
    let reply = s.raw(b"{\"v\":999,\"op\":\"status\"}\n".to_vec(), false);
    assert_error_reply(&reply, "version_mismatch", "999");
    // A git request in a version the daemon does not speak is not carried out.
    let request = serde_json::json!({
        "v": 999,
        "op": "git",
        "action": "store",
        "input": format!("protocol=https\nhost=v999.example\nusername=u\npassword={SECRET}\n"),
    });
    let reply = s.raw(format!("{request}\n").into_bytes(), false);
    assert_error_reply(&reply, "version_mismatch", "999");
    s.assert_nothing_stored_for("v999.example");
}

fn a_line_that_is_not_json(s: &Serving) {
    let reply = s.raw(format!("password={SECRET} hello\n").into_bytes(), false);
    assert_error_reply(&reply, "bad_request", "not JSON");
}

fn a_client_that_hangs_up_at_once(s: &Serving) {
    drop(s.connect());
}

fn a_silent_client_while_another_is_served(s: &Serving) {
    let mut silent = s.connect();
    s.assert_still_serving();
    let status = s.raw(
        format!("{{\"v\":{PROTOCOL_VERSION},\"op\":\"status\"}}\n").into_bytes(),
        false,
    );
    assert_eq!(status["result"], "status", "{status}");
    // Nothing was said to the silent client meanwhile: it is still waited for.
    silent
        .set_nonblocking(true)
        .expect("a socket can be made non-blocking");
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the silent client was answered or closed early: {read:?}"
    );
}

/// One kind of bad input, with its assertions.
type Case = fn(&Serving);

/// Every case, by name.
const CASES: &[(&str, Case)] = &[
    ("NUL in a value", nul_in_a_value),
    ("CR in the host", cr_in_the_host),
    ("CR in a password", cr_in_a_password),
    ("a line without =", a_line_without_equals),
    ("invalid UTF-8", invalid_utf8),
    ("a huge request", a_huge_request),
    ("10 MiB of garbage", ten_mib_of_garbage),
    ("a truncated request", a_truncated_request),
    ("an unknown op", an_unknown_op),
    ("a malformed known op", a_malformed_known_op),
    ("a wrong protocol version", a_wrong_protocol_version),
    ("a line that is not JSON", a_line_that_is_not_json),
    (
        "a client that hangs up at once",
        a_client_that_hangs_up_at_once,
    ),
    ("a silent client", a_silent_client_while_another_is_served),
];

/// One case in a fresh sandbox, then the daemon must still serve and log no secret.
#[track_caller]
fn check(case: Case) {
    let s = Serving::new();
    case(&s);
    s.assert_still_serving();
    s.assert_log_clean();
}

#[test]
fn a_nul_in_a_value_is_refused_without_echoing_it() {
    check(nul_in_a_value);
}

#[test]
fn a_carriage_return_in_the_host_is_refused() {
    check(cr_in_the_host);
}

#[test]
fn a_carriage_return_in_a_password_is_refused_without_echoing_it() {
    check(cr_in_a_password);
}

#[test]
fn a_line_without_equals_is_refused_without_echoing_it() {
    check(a_line_without_equals);
}

#[test]
fn invalid_utf8_is_refused_without_echoing_it() {
    check(invalid_utf8);
}

#[test]
fn a_request_too_large_for_the_client_is_refused() {
    check(a_huge_request);
}

#[test]
fn ten_mib_of_garbage_gets_bad_request_after_the_1_mib_cap() {
    check(ten_mib_of_garbage);
}

#[test]
fn a_request_without_its_final_newline_is_refused_as_truncated() {
    check(a_truncated_request);
}

#[test]
fn an_unknown_op_is_refused_by_name() {
    check(an_unknown_op);
}

#[test]
fn a_known_op_with_bad_fields_is_refused_without_quoting_them() {
    check(a_malformed_known_op);
}

#[test]
fn a_wrong_protocol_version_gets_version_mismatch() {
    check(a_wrong_protocol_version);
}

#[test]
fn a_line_that_is_not_json_is_refused() {
    check(a_line_that_is_not_json);
}

#[test]
fn a_client_that_hangs_up_at_once_costs_nothing() {
    check(a_client_that_hangs_up_at_once);
}

#[test]
fn a_silent_client_does_not_hold_up_others() {
    check(a_silent_client_while_another_is_served);
}

#[test]
fn a_silent_client_is_dropped_after_the_request_timeout() {
    let s = Serving::new();
    let mut silent = s.connect();
    let start = Instant::now();
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    let waited = start.elapsed();
    assert!(
        matches!(read, Ok(0)),
        "expected the daemon to close the silent connection, got {read:?} after {waited:?}"
    );
    // The daemon was started with HELPERD_REQUEST_TIMEOUT_MS=1500 (see `Serving`).
    assert!(
        waited >= Duration::from_millis(1400) && waited < REPLY_WAIT,
        "the silent client was dropped after {waited:?}, not after the request timeout"
    );
    s.assert_still_serving();
}

#[test]
fn the_daemon_survives_every_bad_input_in_a_row_and_logs_no_secret() {
    let s = Serving::new();
    for (name, case) in CASES {
        case(&s);
        // A failure here names the case that broke the daemon.
        let out =
            s.sb.credential("fill", "protocol=https\nhost=good.example\n");
        assert!(
            value(&stdout(&out), "password").as_deref() == Some(GOOD_PASSWORD),
            "after {name}, the good credential is no longer served:\n{}",
            stderr(&out)
        );
    }
    s.assert_still_serving();
    s.assert_log_clean();
    let log = s.sb.log();
    assert!(
        log.contains("refused"),
        "the daemon logged none of the refusals:\n{log}"
    );
}

/// Expiries past the year 9999 are no dates: git's is dropped, a token's is refused.
#[test]
fn expiries_past_the_year_9999_are_refused_or_dropped() {
    let sb = Sandbox::new();
    let huge = u64::MAX.to_string();
    assert_ok(&sb.credential(
        "approve",
        &format!("protocol=https\nhost=far.example\nusername=a\npassword=pw-far\npassword_expiry_utc={huge}\n"),
    ));
    let out = sb.credential("fill", "protocol=https\nhost=far.example\n");
    assert_eq!(value(&stdout(&out), "password").as_deref(), Some("pw-far"));
    assert_eq!(
        value(&stdout(&out), "password_expiry_utc"),
        None,
        "{}",
        stdout(&out)
    );

    crate::util::add_runtime(&sb, "far", "gitlab", "https://gl.example/");
    let request = helperd::wire::wire::Envelope::new(helperd::wire::wire::Request::TokenSet {
        runtime: "far".into(),
        name: None,
        expires: Some(u64::MAX),
        scopes: Vec::new(),
        secret: "glpat-TooFarAway9".into(),
        offline: true,
        force: false,
    });
    let answer = helperd::wire::client::send(&sb.socket(), &request).expect("the daemon answers");
    match answer.reply {
        helperd::wire::wire::Reply::Error { message, .. } => {
            assert!(message.contains("year 9999"), "{message}")
        }
        other => panic!("a token expiring after 9999 was taken: {other:?}"),
    }
}
