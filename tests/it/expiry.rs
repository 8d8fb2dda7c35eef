//! Token expiry (issue 4, DESIGN.md §6.5): an expired or rejected token is never handed to
//! git, a token in the warning window is served with one notice a day, and renewal works at
//! the terminal (a real pseudo-terminal driven by Python's `pty`), at git's own prompt and
//! with `helperctl renew`; `helperctl status --check` gates on all of it. Real binaries, the
//! real git and the local git HTTP server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::git_server::{Account, AuthAttempt, GitServer};
use crate::util::rfc3339;
use crate::util::{assert_contains, assert_lacks, config_path, ctl, ctl_ok, status_json, unix_now};
use crate::util::{assert_ok, run_with_stdin, stderr, stdout, value, Sandbox};
use crate::util::{commit, git_in, git_ok};

/// The token the runtime had, expired (or revoked) by the time it matters.
const OLD: &str = "ghp_oldTok3nThatRanOut8Qz";
/// The token the user makes on the host's token page.
const NEW: &str = "ghp_newTok3nFromTheHost5Kw";
/// GitHub's username for token-only git over HTTPS (the runtime's default).
const USERNAME: &str = "x-access-token";
const RUNTIME: &str = "work";
const REPO: &str = "/team/app.git";
/// For tests that need no server: nothing ever connects to it.
const OFFLINE_URL: &str = "https://git.example/";

/// How long the pty driver waits for any one thing to appear.
const PTY_STEP_SECS: u64 = 30;

// ---------------------------------------------------------------------------------------
// Helpers (in the style of runtimes.rs)
// ---------------------------------------------------------------------------------------

/// `2027-03-01`: the date `days` days from now, and the Unix second helperd reads it as
/// (00:00 UTC that day).
fn date_in(days: u64) -> (String, u64) {
    let midnight = (unix_now() / 86_400 + days) * 86_400;
    (rfc3339(midnight)[..10].to_string(), midnight)
}

fn write_config(sb: &Sandbox, text: &str) {
    let path = config_path(sb);
    fs::create_dir_all(path.parent().expect("config.toml is in a folder")).unwrap();
    fs::write(&path, text).unwrap();
}

/// `helperctl status ARGS`: asserts the exit code, returns the output.
#[track_caller]
fn ctl_code(sb: &Sandbox, args: &[&str], code: i32) -> Output {
    let out = ctl(sb, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "helperctl {args:?} should exit {code}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

#[track_caller]
fn add_runtime(sb: &Sandbox, base_url: &str) {
    ctl_ok(
        sb,
        &[
            "runtime",
            "add",
            RUNTIME,
            "--provider",
            "github",
            "--url",
            base_url,
        ],
    );
}

/// `helperctl token set RUNTIME --name NAME [--expires EXPIRES]` with `secret` on stdin.
#[track_caller]
fn token_set(sb: &Sandbox, secret: &str, name: &str, expires: Option<&str>) -> Output {
    let mut c = sb.ctl();
    c.args(["token", "set", RUNTIME, "--offline", "--name", name]);
    if let Some(e) = expires {
        c.args(["--expires", e]);
    }
    let out = run_with_stdin(c, format!("{secret}\n").as_bytes());
    assert!(
        out.status.success(),
        "token set {RUNTIME} --expires {expires:?} failed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Sets `secret` with an expiry a few seconds ahead and waits until it has passed.
/// Returns the expiry (Unix seconds).
#[track_caller]
fn set_expired_token(sb: &Sandbox, secret: &str, name: &str) -> u64 {
    // The daemon is up before the clock starts, so its start-up does not eat the seconds.
    ctl_ok(sb, &["daemon", "start"]);
    let expires = unix_now() + 3;
    token_set(sb, secret, name, Some(&rfc3339(expires)));
    sb.advance_clock_past(expires);
    expires
}

/// `git credential fill` for `url` (no prompt possible: GIT_TERMINAL_PROMPT=0).
fn fill(sb: &Sandbox, url: &str) -> Output {
    sb.credential("fill", &format!("url={url}\n"))
}

/// The `token` of the runtime in `status --json` (`null` when it has none).
#[track_caller]
fn token_status(sb: &Sandbox) -> Value {
    let status = status_json(sb);
    status["daemon"]["runtimes"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has daemon.runtimes:\n{status:#}"))
        .iter()
        .find(|r| r["name"] == RUNTIME)
        .unwrap_or_else(|| panic!("status --json lists runtime {RUNTIME}:\n{status:#}"))["token"]
        .clone()
}

/// `<HELPERD_HOME>/state/tokens.json`.
#[track_caller]
fn tokens_json(sb: &Sandbox) -> Value {
    let path = sb.helperd_home().join("state/tokens.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("tokens.json is JSON ({e}):\n{text}"))
}

fn retired(sb: &Sandbox) -> Vec<Value> {
    tokens_json(sb)["retired"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The lines of `text` that helperd wrote (its notices start with `helperd:`), plus any
/// other line that mentions it.
fn helperd_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("helperd")).collect()
}

/// Everything a user or a log could see in a flow, to check that no secret is in it.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    /// stdout and stderr of a command whose stdout is not git's answer.
    fn all(&mut self, what: &str, out: &Output) {
        self.text(&format!("{what} (stdout)"), &stdout(out));
        self.err(what, out);
    }

    /// stderr only: stdout is the credential git asked for.
    fn err(&mut self, what: &str, out: &Output) {
        self.text(&format!("{what} (stderr)"), &stderr(out));
    }

    fn text(&mut self, what: &str, text: &str) {
        self.0.push((what.to_string(), text.to_string()));
    }

    /// Adds the daemon's log, tokens.json and config.toml, then checks that none of the
    /// `secrets` appears anywhere.
    #[track_caller]
    fn assert_no_secret(mut self, sb: &Sandbox, secrets: &[&str]) {
        self.text("the daemon log", &sb.log());
        let tokens = fs::read_to_string(sb.helperd_home().join("state/tokens.json"));
        self.text("tokens.json", &tokens.unwrap_or_default());
        self.text("config.toml", &fs::read_to_string(config_path(sb)).unwrap());
        assert!(!sb.log().is_empty(), "the daemon logs (HELPERD_LOG=trace)");
        for (what, text) in &self.0 {
            for secret in secrets {
                assert_lacks(text, secret, &format!("{what} (a secret!)"));
            }
        }
    }
}

/// A git HTTP server with one repo (holding one commit) that accepts `USERNAME` with
/// `accepted`, and a sandbox with runtime `work` for the whole server. The daemon runs.
struct Fixture {
    // Declared first: the server stops before the sandbox folder goes.
    server: GitServer,
    sb: Sandbox,
}

impl Fixture {
    fn new(accepted: &str) -> Fixture {
        Fixture::with_config(accepted, "")
    }

    /// `config` is written to config.toml before the runtime is added.
    fn with_config(accepted: &str, config: &str) -> Fixture {
        let sb = Sandbox::new();
        let repos = sb.dir.path().join("repos");
        fs::create_dir(&repos).unwrap();
        let server = GitServer::start(&repos, vec![Account::new("", USERNAME, accepted)]);
        server.create_bare_repo(REPO);
        // One commit, pushed through the file system: no credential involved.
        let seed = sb.dir.path().join("seed");
        git_ok(&sb, sb.dir.path(), &["init", "-q", "-b", "main", "seed"]);
        commit(&sb, &seed, "README");
        let bare = repos.join(REPO.trim_start_matches('/'));
        git_ok(&sb, &seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
        if !config.is_empty() {
            write_config(&sb, config);
        }
        add_runtime(&sb, &format!("{}/", server.base_url()));
        ctl_ok(&sb, &["daemon", "start"]);
        Fixture { server, sb }
    }

    fn url(&self) -> String {
        self.server.url(REPO)
    }

    /// A clone of the repo (through the file system, then pointed at the HTTP URL) with
    /// one new commit to push.
    fn work_with_commit(&self) -> PathBuf {
        let sb = &self.sb;
        let bare = self.server.root().join(REPO.trim_start_matches('/'));
        git_ok(
            sb,
            sb.dir.path(),
            &["clone", "-q", bare.to_str().unwrap(), "work"],
        );
        let work = sb.dir.path().join("work");
        git_ok(sb, &work, &["remote", "set-url", "origin", &self.url()]);
        commit(sb, &work, "CHANGES");
        work
    }

    /// The query git sends for this server (no path: useHttpPath is off).
    fn query(&self) -> String {
        format!("protocol=http\nhost=127.0.0.1:{}\n\n", self.server.port())
    }

    fn token_page(&self) -> String {
        format!("{}/settings/tokens", self.server.base_url())
    }
}

/// The passwords that reached the server.
fn passwords_sent(log: &[AuthAttempt]) -> Vec<String> {
    log.iter()
        .filter_map(|a| a.credentials.as_ref().map(|(_, p)| p.clone()))
        .collect()
}

/// Every request carrying credentials carried `USERNAME`/`token` and was accepted; and
/// a push went through when `pushed`.
#[track_caller]
fn assert_only_sent(log: &[AuthAttempt], token: &str, pushed: bool) {
    for a in log {
        if let Some((user, password)) = &a.credentials {
            assert!(
                user == USERNAME && password == token && a.accepted,
                "{} {} carried the wrong credentials (password is {}): {a:?}",
                a.method,
                a.path,
                if password == OLD {
                    "the OLD token"
                } else {
                    "not the expected one"
                }
            );
        }
    }
    if pushed {
        assert!(
            log.iter()
                .any(|a| a.method == "POST" && a.path.ends_with("/git-receive-pack") && a.accepted),
            "a push went through: {log:#?}"
        );
    }
}

/// A GIT_ASKPASS answering git's own prompts with `USERNAME` and `token`, logging the
/// prompts to `prompts.log`.
fn askpass(sb: &Sandbox, token: &str) -> PathBuf {
    let log = sb.dir.path().join("prompts.log");
    sb.script(
        "askpass.sh",
        &format!(
            "echo \"$1\" >> '{log}'\ncase \"$1\" in\n  Username*) echo {USERNAME} ;;\n  *) echo {token} ;;\nesac",
            log = log.display()
        ),
    )
}

/// An askpass that answers only git's password prompt (and fails any other): git must not
/// need to ask for a username at all.
fn askpass_password_only(sb: &Sandbox, token: &str) -> PathBuf {
    let log = sb.dir.path().join("prompts.log");
    sb.script(
        "askpass-password.sh",
        &format!(
            "echo \"$1\" >> '{log}'\ncase \"$1\" in\n  Password*) echo {token} ;;\n  *) exit 1 ;;\nesac",
            log = log.display()
        ),
    )
}

fn prompts(sb: &Sandbox) -> Vec<String> {
    fs::read_to_string(sb.dir.path().join("prompts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The pseudo-terminal driver
// ---------------------------------------------------------------------------------------

/// Runs a command on a new pseudo-terminal (its /dev/tty) and plays `steps` (JSON, argv 1)
/// against it: `expect` waits for a text (failing when one of `unless` shows up first),
/// `echo_off` checks that the terminal no longer echoes the moment that text is visible
/// (what is typed right away must not show), `send` types. Then it reads until the command ends. It prints the whole
/// transcript on stdout and exits with the command's code (128+N for signal N), or 101
/// with the reason on stderr when a step failed. Every wait is bounded (argv 2 seconds).
const PTY_DRIVER: &str = r#"
import json, os, pty, select, signal, sys, termios, time

steps = json.loads(sys.argv[1])
timeout = float(sys.argv[2])
cmd = sys.argv[3:]

pid, fd = pty.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)

buf = bytearray()
eof = False

def read_some(deadline):
    global eof
    left = deadline - time.monotonic()
    if left <= 0:
        return
    ready, _, _ = select.select([fd], [], [], min(left, 0.2))
    if not ready:
        return
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if data:
        buf.extend(data)
    else:
        eof = True

def finish(code, message=None):
    sys.stdout.buffer.write(bytes(buf))
    sys.stdout.flush()
    if message:
        sys.stderr.write("pty driver: " + message + "\n")
    sys.exit(code)

def give_up(message):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    finish(101, message)

pos = 0
for n, step in enumerate(steps):
    want = step.get("expect")
    if want is not None:
        deadline = time.monotonic() + timeout
        while True:
            i = buf.find(want.encode(), pos)
            end = i if i >= 0 else len(buf)
            for bad in step.get("unless", []):
                if buf.find(bad.encode(), pos, end) >= 0:
                    give_up("step %d: %r appeared instead of %r" % (n, bad, want))
            if i >= 0:
                pos = i + len(want)
                break
            if eof:
                give_up("step %d: the command ended before %r appeared" % (n, want))
            if time.monotonic() >= deadline:
                give_up("step %d: %r did not appear within %ds" % (n, want, timeout))
            read_some(deadline)
    if step.get("echo_off"):
        # Checked at once, not waited for: a typist starts as soon as the question shows.
        try:
            echo = termios.tcgetattr(fd)[3] & termios.ECHO
        except termios.error as e:
            give_up("step %d: cannot read the terminal's mode: %s" % (n, e))
        if echo:
            give_up("step %d: the terminal still echoes while asking for a secret" % n)
    send = step.get("send")
    if send is not None:
        os.write(fd, send.encode())

deadline = time.monotonic() + timeout
while not eof:
    if time.monotonic() >= deadline:
        give_up("the command did not end within %ds of the last step" % timeout)
    read_some(deadline)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
finish(code if code >= 0 else 128 - code)
"#;

/// What happened on the terminal.
pub(crate) struct PtyRun {
    /// The command's exit code; 101 when the driver gave up on a step.
    pub(crate) code: Option<i32>,
    /// Everything the terminal showed (`\r` removed).
    pub(crate) transcript: String,
    /// The driver's own complaint, if any.
    pub(crate) driver: String,
}

impl PtyRun {
    pub(crate) fn describe(&self) -> String {
        format!(
            "exit code {:?}\n--- driver ---\n{}\n--- terminal transcript ---\n{}\n--- end ---",
            self.code, self.driver, self.transcript
        )
    }
}

/// Runs `cmd` in `dir` on a fresh pseudo-terminal, with terminal prompts allowed (no
/// GIT_TERMINAL_PROMPT, no askpass: git's own prompt would show on the terminal too).
pub(crate) fn pty_run(sb: &Sandbox, dir: &Path, steps: Value, cmd: &[&str]) -> PtyRun {
    let mut c = sb.command("python3");
    c.current_dir(dir)
        .env_remove("GIT_TERMINAL_PROMPT")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env("TERM", "dumb")
        .arg("-c")
        .arg(PTY_DRIVER)
        .arg(steps.to_string())
        .arg(PTY_STEP_SECS.to_string())
        .args(cmd);
    let out = c.output().expect("python3 runs");
    PtyRun {
        code: out.status.code(),
        transcript: stdout(&out).replace('\r', ""),
        driver: stderr(&out),
    }
}

/// The steps of a renewal at our prompt: wait for it (never git's own prompt), type
/// `token` right away (echo must be off already), then `expiry` at the expiry question.
fn renewal_steps(token: &str, expiry: &str) -> Value {
    let git_prompts = ["Username for", "Password for"];
    json!([
        {"expect": format!("New token for runtime {RUNTIME}"), "unless": git_prompts,
         "echo_off": true, "send": format!("{token}\n")},
        {"expect": "When does it expire?", "unless": git_prompts, "send": format!("{expiry}\n")},
    ])
}

#[track_caller]
fn assert_pty_code(run: &PtyRun, code: i32, what: &str) {
    assert_eq!(run.code, Some(code), "{what}\n{}", run.describe());
}

// ---------------------------------------------------------------------------------------
// 1. Expired -> refused
// ---------------------------------------------------------------------------------------

#[test]
fn an_expired_token_is_refused_with_the_renew_command_and_never_sent() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    let mut seen = Seen::default();
    let expired = set_expired_token(sb, OLD, "laptop pat");
    let expired_on = format!("expired on {}", &rfc3339(expired)[..10]);

    let work = sb.dir.path().join("w");
    git_ok(sb, sb.dir.path(), &["init", "-q", "-b", "main", "w"]);
    git_ok(sb, &work, &["remote", "add", "origin", &f.url()]);
    let started = Instant::now();
    let out = git_in(sb, &work, &["fetch", "origin"]);
    let took = started.elapsed();
    seen.all("git fetch", &out);
    assert!(
        !out.status.success(),
        "the fetch cannot succeed without a token\n{}",
        stderr(&out)
    );
    assert!(
        took < Duration::from_secs(20),
        "nothing hangs: the fetch took {took:?}"
    );
    let err = stderr(&out);
    for needle in [
        "runtime work",
        "\"laptop pat\"",
        &expired_on,
        "`helperctl renew work`",
        "not sent",
    ] {
        assert_contains(&err, needle, "git fetch's stderr");
    }
    assert_contains(
        &err,
        &f.token_page(),
        "git fetch's stderr (where to create one)",
    );
    assert_eq!(
        passwords_sent(&f.server.auth_log()),
        Vec::<String>::new(),
        "no credential reached the server: {:#?}",
        f.server.auth_log()
    );

    // The client itself, as git runs it: no password on stdout, only the runtime's
    // username (so that git's own prompt asks for the password alone), the notice on
    // stderr, exit 0.
    let out = sb.client_run(&["get"], f.query().as_bytes());
    seen.all("git-credential-helperd get", &out);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("username={USERNAME}\n"),
        "only the username for git on stdout"
    );
    assert_contains(&stderr(&out), "helperctl renew work", "the client's stderr");

    // status agrees; the metadata is all there.
    let token = token_status(sb);
    assert_eq!(token["state"], "expired", "{token:#}");
    assert_eq!(token["name"], "laptop pat", "{token:#}");
    seen.assert_no_secret(sb, &[OLD, NEW]);
}

// ---------------------------------------------------------------------------------------
// 2. Warning window -> served with one notice a day
// ---------------------------------------------------------------------------------------

#[test]
fn a_token_in_the_warning_window_is_served_with_one_notice_a_day() {
    let f = Fixture::with_config(NEW, "[settings]\nwarn_days = 30\n");
    let sb = &f.sb;
    let mut seen = Seen::default();
    let (date, expires) = date_in(10);
    token_set(sb, NEW, "ten-day pat", Some(&date));
    assert_eq!(token_status(sb)["state"], "expiring");
    assert_eq!(token_status(sb)["expires"], expires);

    let work = sb.dir.path().join("w");
    git_ok(sb, sb.dir.path(), &["init", "-q", "-b", "main", "w"]);
    git_ok(sb, &work, &["remote", "add", "origin", &f.url()]);
    let day = unix_now() / 86_400;
    let first = git_ok(sb, &work, &["fetch", "-q", "origin"]);
    seen.all("first fetch", &first);
    let err = stderr(&first);
    let lines = helperd_lines(&err);
    assert_eq!(lines.len(), 1, "exactly one helperd line:\n{err}");
    for needle in ["runtime work", "\"ten-day pat\"", &date] {
        assert_contains(lines[0], needle, "the warning");
    }
    git_ok(sb, &work, &["rev-parse", "--verify", "origin/main"]);

    let second = git_ok(sb, &work, &["fetch", "-q", "origin"]);
    seen.all("second fetch", &second);
    if unix_now() / 86_400 == day {
        assert_eq!(
            helperd_lines(&stderr(&second)),
            Vec::<&str>::new(),
            "the second fetch the same day is silent"
        );
    }
    let log = f.server.auth_log();
    assert_only_sent(&log, NEW, false);
    assert!(
        log.iter().filter(|a| a.accepted).count() >= 2,
        "both fetches authenticated: {log:#?}"
    );
    seen.assert_no_secret(sb, &[NEW]);
}

/// The default window is 7 days: 3 days out warns, and so does a plain `git credential
/// fill` (git's stderr), once.
#[test]
fn the_default_warning_window_is_seven_days() {
    let sb = Sandbox::new();
    add_runtime(&sb, OFFLINE_URL);
    let (date, _) = date_in(3);
    token_set(&sb, NEW, "three-day pat", Some(&date));
    let out = fill(&sb, "https://git.example/o/r.git");
    assert_ok(&out);
    assert_eq!(value(&stdout(&out), "password").as_deref(), Some(NEW));
    let lines = helperd_lines(&stderr(&out)).len();
    assert_eq!(lines, 1, "one warning:\n{}", stderr(&out));
    assert_contains(&stderr(&out), &date, "the warning");

    let (date, _) = date_in(30);
    token_set(&sb, NEW, "month pat", Some(&date));
    let out = fill(&sb, "https://git.example/o/r.git");
    assert_ok(&out);
    assert_eq!(
        helperd_lines(&stderr(&out)),
        Vec::<&str>::new(),
        "30 days out is outside the default window"
    );
    assert_eq!(token_status(&sb)["state"], "valid");
}

/// "At most once a day per runtime" (DESIGN.md §6.5) holds across a daemon restart too.
#[test]
fn the_daily_warning_is_not_repeated_after_a_daemon_restart() {
    let sb = Sandbox::new();
    add_runtime(&sb, OFFLINE_URL);
    let (date, _) = date_in(3);
    token_set(&sb, NEW, "three-day pat", Some(&date));
    let day = unix_now() / 86_400;
    let out = fill(&sb, "https://git.example/o/r.git");
    assert_eq!(helperd_lines(&stderr(&out)).len(), 1, "{}", stderr(&out));

    ctl_ok(&sb, &["daemon", "restart"]);
    let out = fill(&sb, "https://git.example/o/r.git");
    assert_eq!(value(&stdout(&out), "password").as_deref(), Some(NEW));
    if unix_now() / 86_400 == day {
        assert_eq!(
            helperd_lines(&stderr(&out)),
            Vec::<&str>::new(),
            "already warned today; a restarted daemon must not warn again"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Rejected after a 401
// ---------------------------------------------------------------------------------------

#[test]
fn a_token_the_host_rejects_is_marked_rejected_kept_and_not_served_again() {
    let f = Fixture::new(OLD);
    let sb = &f.sb;
    let mut seen = Seen::default();
    let (date, expires) = date_in(90);
    token_set(sb, OLD, "laptop pat", Some(&date));
    let work = sb.dir.path().join("w");
    git_ok(sb, sb.dir.path(), &["init", "-q", "-b", "main", "w"]);
    git_ok(sb, &work, &["remote", "add", "origin", &f.url()]);
    let out = git_ok(sb, &work, &["fetch", "-q", "origin"]);
    seen.all("fetch while valid", &out);

    // Revoked at the host.
    f.server.set_accounts(vec![Account::new("", USERNAME, NEW)]);
    f.server.clear_auth_log();
    let out = git_in(sb, &work, &["fetch", "-q", "origin"]);
    seen.all("fetch after the revocation", &out);
    assert!(!out.status.success(), "the host says 401\n{}", stderr(&out));
    let log = f.server.auth_log();
    assert_eq!(
        log.iter().filter(|a| a.credentials.is_some()).count(),
        1,
        "git sent the revoked token once: {log:#?}"
    );

    // git erased it after the 401: the next request is told why and gets nothing.
    let out = fill(sb, &f.url());
    seen.err("git credential fill", &out);
    assert_eq!(value(&stdout(&out), "password"), None, "{}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "runtime work",
        "\"laptop pat\"",
        "rejected by the host",
        "`helperctl renew work`",
    ] {
        assert_contains(&err, needle, "git credential fill's stderr");
    }

    // And a real fetch does not send it again.
    f.server.clear_auth_log();
    let out = git_in(sb, &work, &["fetch", "-q", "origin"]);
    seen.all("fetch after the rejection", &out);
    assert!(!out.status.success());
    assert_eq!(
        passwords_sent(&f.server.auth_log()),
        Vec::<String>::new(),
        "the rejected token is not sent again"
    );
    assert_contains(&stderr(&out), "rejected by the host", "the fetch's stderr");

    let token = token_status(sb);
    assert_eq!(token["state"], "rejected", "{token:#}");
    assert_eq!(
        token["name"], "laptop pat",
        "the metadata is kept: {token:#}"
    );
    assert_eq!(
        token["expires"], expires,
        "the expiry is untouched: {token:#}"
    );
    let book = tokens_json(sb);
    let kept = &book["tokens"][0];
    assert!(
        kept["rejected_at"].is_u64(),
        "tokens.json says when: {book:#}"
    );
    assert_eq!(kept["runtimes"], json!([RUNTIME]), "{book:#}");
    seen.assert_no_secret(sb, &[OLD, NEW]);
}

// ---------------------------------------------------------------------------------------
// 4, 5. Renewal at the terminal
// ---------------------------------------------------------------------------------------

#[test]
fn an_expired_token_is_renewed_at_the_terminal_and_the_push_succeeds_in_one_command() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    let mut seen = Seen::default();
    let old_expires = set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();
    let (typed, typed_unix) = date_in(90);

    let run = pty_run(
        sb,
        &work,
        renewal_steps(NEW, &typed),
        &["git", "push", "origin", "HEAD:main"],
    );
    assert_pty_code(&run, 0, "the push succeeds after the renewal");
    let t = &run.transcript;
    seen.text("the push's terminal", t);
    // Our prompt said which token, when, where to make one and which scopes.
    for needle in [
        "runtime work",
        "\"laptop pat\"",
        &format!("expired on {}", &rfc3339(old_expires)[..10]),
        &f.token_page(),
        "Scopes git needs: classic token: repo",
        "helperd: stored the new token for runtime work",
    ] {
        assert_contains(t, needle, "the terminal");
    }
    assert_lacks(t, NEW, "the terminal (the token must not be echoed)");
    assert_lacks(t, "Username for", "the terminal (git's own prompt)");
    assert_only_sent(&f.server.auth_log(), NEW, true);

    let token = token_status(sb);
    assert_eq!(token["state"], "valid", "{token:#}");
    assert_eq!(token["expires"], typed_unix, "the typed expiry: {token:#}");
    let retired = retired(sb);
    assert_eq!(
        retired.len(),
        1,
        "the old record is kept: {:#}",
        tokens_json(sb)
    );
    assert_eq!(retired[0]["name"], "laptop pat");
    assert_eq!(
        retired[0]["expires"], old_expires,
        "its expiry is never edited"
    );
    assert!(
        retired[0]["replaced_at"]
            .as_u64()
            .is_some_and(|t| t >= old_expires),
        "it says when it was replaced: {:#}",
        retired[0]
    );

    // What the server has is what was pushed; the next push is silent and uses NEW.
    let check = sb.dir.path().join("check");
    git_ok(
        sb,
        sb.dir.path(),
        &["clone", "-q", &f.url(), check.to_str().unwrap()],
    );
    assert!(check.join("CHANGES").is_file(), "the commit was pushed");
    commit(sb, &work, "MORE");
    f.server.clear_auth_log();
    let out = git_ok(sb, &work, &["push", "-q", "origin", "HEAD:main"]);
    seen.all("the next push", &out);
    assert_eq!(helperd_lines(&stderr(&out)), Vec::<&str>::new());
    assert_only_sent(&f.server.auth_log(), NEW, true);
    seen.assert_no_secret(sb, &[OLD, NEW]);
}

#[test]
fn empty_input_at_the_terminal_prompt_skips_to_gits_own_prompt_and_stores_nothing() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    let mut seen = Seen::default();
    set_expired_token(sb, OLD, "laptop pat");
    let before = tokens_json(sb);
    let work = f.work_with_commit();

    let steps = json!([
        {"expect": format!("New token for runtime {RUNTIME}"),
         "unless": ["Username for", "Password for"], "echo_off": true, "send": "\n"},
        // git's own prompt runs next, for the password only (helperd gave git the
        // runtime's username); then the user gives up.
        {"expect": format!("Password for 'http://{USERNAME}@"),
         "unless": ["When does it expire?", "Username for"], "send": "\u{3}"},
    ]);
    let run = pty_run(sb, &work, steps, &["git", "push", "origin", "HEAD:main"]);
    seen.text("the push's terminal", &run.transcript);
    assert_ne!(run.code, Some(101), "the steps played\n{}", run.describe());
    assert_ne!(
        run.code,
        Some(0),
        "the push was abandoned\n{}",
        run.describe()
    );
    assert_contains(&run.transcript, "skipped", "the terminal");

    assert_eq!(tokens_json(sb), before, "nothing was stored");
    let token = token_status(sb);
    assert_eq!(token["state"], "expired", "{token:#}");
    assert_eq!(token["name"], "laptop pat", "{token:#}");
    assert_eq!(
        passwords_sent(&f.server.auth_log()),
        Vec::<String>::new(),
        "no credential reached the server"
    );
    seen.assert_no_secret(sb, &[OLD, NEW]);
}

/// A typo in the expiry stores nothing (no token with a made-up expiry) and the message
/// names what was typed.
#[test]
fn a_malformed_expiry_at_the_terminal_stores_nothing_and_names_what_was_typed() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    set_expired_token(sb, OLD, "laptop pat");
    let before = tokens_json(sb);
    let work = f.work_with_commit();

    let mut steps = renewal_steps(NEW, "tomorrow");
    steps.as_array_mut().expect("steps are a list").push(json!(
        {"expect": "\"tomorrow\"", "unless": ["Username for"], "send": "\u{3}"}
    ));
    let run = pty_run(sb, &work, steps, &["git", "push", "origin", "HEAD:main"]);
    assert_ne!(run.code, Some(101), "the steps played\n{}", run.describe());
    assert_lacks(&run.transcript, NEW, "the terminal");
    assert_eq!(tokens_json(sb), before, "nothing was stored");
    assert_eq!(
        passwords_sent(&f.server.auth_log()),
        Vec::<String>::new(),
        "no credential reached the server"
    );
}

/// A typo in the expiry does not throw the typed token away: the prompt says what was
/// wrong, asks for the expiry again, and the push goes on with the corrected one.
#[test]
fn a_mistyped_expiry_is_asked_again_and_the_push_still_succeeds() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();
    let (typed, typed_unix) = date_in(60);
    let mut steps = renewal_steps(NEW, "2027-02-30");
    steps.as_array_mut().expect("steps are a list").push(json!(
        {"expect": "try again", "unless": ["Username for"], "send": format!("{typed}\n")}
    ));
    let run = pty_run(sb, &work, steps, &["git", "push", "origin", "HEAD:main"]);
    assert_pty_code(&run, 0, "the push succeeds after the corrected expiry");
    assert_contains(
        &run.transcript,
        "does not exist",
        "the terminal names the typo",
    );
    assert_lacks(
        &run.transcript,
        NEW,
        "the terminal (the token must not be echoed)",
    );
    assert_only_sent(&f.server.auth_log(), NEW, true);
    let status = status_json(sb);
    let token = &status["daemon"]["runtimes"][0]["token"];
    assert_eq!(token["expires"], typed_unix, "{token:#}");
}

/// Ctrl-C at the hidden prompt abandons the push and gives the terminal its echo back, as
/// git's own password prompt does (the shell after it would not show what is typed).
#[test]
fn ctrl_c_at_the_hidden_prompt_gives_the_terminal_its_echo_back() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    set_expired_token(sb, OLD, "laptop pat");
    let before = tokens_json(sb);
    let work = f.work_with_commit();
    // The shell survives the Ctrl-C (a handler, which its children do not inherit) and
    // reports the terminal's mode afterwards. git dies of the Ctrl-C at once, while the
    // helper (its child) is still putting the terminal back: the shell gives it up to a
    // second (checking, not sleeping blindly) before it reports.
    let script = "trap : INT; git push origin HEAD:main; echo \"push exit $?\"; \
                  for i in 1 2 3 4 5 6 7 8 9 10; do stty -a | grep -q -- ' echo ' && break; sleep 0.1; done; \
                  stty -a";
    let steps = json!([{"expect": format!("New token for runtime {RUNTIME}"), "send": "\u{3}"}]);
    let run = pty_run(sb, &work, steps, &["sh", "-c", script]);
    assert_pty_code(&run, 0, "the shell reports the terminal's mode");
    assert_lacks(
        &run.transcript,
        "push exit 0",
        "the terminal (the push is abandoned)",
    );
    let modes: Vec<&str> = run
        .transcript
        .split_once("push exit")
        .map_or("", |(_, after)| after)
        .split_whitespace()
        .collect();
    assert!(
        modes.contains(&"echo") && !modes.contains(&"-echo"),
        "the terminal echoes again after Ctrl-C\n{}",
        run.describe()
    );
    assert_eq!(tokens_json(sb), before, "nothing was stored");
}

/// With a terminal present but prompts disabled (CI with a tty, scripts), there is no
/// dialog: the notice, and git fails at once.
#[test]
fn git_terminal_prompt_0_means_no_dialog_even_with_a_terminal() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();
    let run = pty_run(
        sb,
        &work,
        json!([]),
        &["env", "GIT_TERMINAL_PROMPT=0", "git", "fetch", "origin"],
    );
    assert!(
        run.code.is_some_and(|c| c != 0 && c != 101),
        "the fetch fails without waiting\n{}",
        run.describe()
    );
    assert_lacks(&run.transcript, "New token for runtime", "the terminal");
    assert_contains(&run.transcript, "`helperctl renew work`", "the terminal");
    assert_eq!(passwords_sent(&f.server.auth_log()), Vec::<String>::new());
}

/// `credential.interactive = false` (git 2.46+) also means no dialog, even in a terminal.
#[test]
fn credential_interactive_false_means_no_dialog_either() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();
    let run = pty_run(
        sb,
        &work,
        json!([]),
        &[
            "git",
            "-c",
            "credential.interactive=false",
            "fetch",
            "origin",
        ],
    );
    assert!(
        run.code.is_some_and(|c| c != 0 && c != 101),
        "the fetch fails without waiting\n{}",
        run.describe()
    );
    assert_lacks(&run.transcript, "New token for runtime", "the terminal");
    assert_contains(&run.transcript, "`helperctl renew work`", "the terminal");
    assert_eq!(passwords_sent(&f.server.auth_log()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// 6. Renewal through git's own prompt
// ---------------------------------------------------------------------------------------

#[test]
fn a_token_typed_at_gits_own_prompt_renews_the_runtime_and_the_next_push_is_silent() {
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    let mut seen = Seen::default();
    let old_expires = set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();

    // helperd answers the runtime's username without a password: git asks only for the
    // password, and the token typed there renews the runtime.
    let script = askpass_password_only(sb, NEW);
    let out = sb
        .git()
        .current_dir(&work)
        .env("GIT_ASKPASS", &script)
        .args(["push", "-q", "origin", "HEAD:main"])
        .output()
        .unwrap();
    seen.all("push with askpass", &out);
    assert_ok(&out);
    let asked = prompts(sb);
    assert_eq!(asked.len(), 1, "git asked for the password only: {asked:?}");
    assert!(
        asked[0].starts_with(&format!("Password for 'http://{USERNAME}@")),
        "git already knew the runtime's username: {asked:?}"
    );
    let err = stderr(&out);
    assert_contains(&err, "expired", "the push's stderr");
    assert_contains(
        &err,
        "stored the new token for runtime work",
        "the push's stderr",
    );
    assert_only_sent(&f.server.auth_log(), NEW, true);

    let token = token_status(sb);
    assert_eq!(token["state"], "valid", "{token:#}");
    let retired = retired(sb);
    assert_eq!(retired.len(), 1, "{:#}", tokens_json(sb));
    assert_eq!(retired[0]["expires"], old_expires);
    assert!(retired[0]["replaced_at"].is_u64());

    // No askpass any more: silent, and NEW is what goes out.
    commit(sb, &work, "MORE");
    f.server.clear_auth_log();
    let out = git_ok(sb, &work, &["push", "-q", "origin", "HEAD:main"]);
    seen.all("the next push", &out);
    assert_eq!(
        helperd_lines(&stderr(&out)),
        Vec::<&str>::new(),
        "the next push is silent"
    );
    assert_only_sent(&f.server.auth_log(), NEW, true);
    assert_eq!(prompts(sb).len(), 1, "no prompt the second time");
    assert_eq!(
        token_status(sb)["id"],
        token["id"],
        "still the renewed token"
    );
    seen.assert_no_secret(sb, &[OLD, NEW]);
}

// ---------------------------------------------------------------------------------------
// 7. helperctl renew
// ---------------------------------------------------------------------------------------

#[test]
fn helperctl_renew_shows_the_facts_and_stores_the_token_from_stdin() {
    let sb = Sandbox::new();
    let mut seen = Seen::default();
    add_runtime(&sb, OFFLINE_URL);
    let old_expires = set_expired_token(&sb, OLD, "laptop pat");
    let (date, expires) = date_in(60);

    let mut c = sb.ctl();
    c.args(["renew", RUNTIME, "--offline", "--expires", &date]);
    let out = run_with_stdin(c, format!("{NEW}\n").as_bytes());
    seen.all("helperctl renew", &out);
    assert_ok(&out);
    let err = stderr(&out);
    for needle in [
        "runtime work (github)",
        "laptop pat",
        "expired",
        &rfc3339(old_expires)[..10],
        "https://git.example/settings/tokens",
        "scopes git needs: classic token: repo",
    ] {
        assert_contains(&err, needle, "helperctl renew's stderr");
    }
    assert_contains(
        &stdout(&out),
        "set for runtime work",
        "helperctl renew's stdout",
    );

    let out = fill(&sb, "https://git.example/o/r.git");
    seen.err("fill", &out);
    assert_ok(&out);
    assert_eq!(value(&stdout(&out), "password").as_deref(), Some(NEW));
    assert_eq!(value(&stdout(&out), "username").as_deref(), Some(USERNAME));
    assert_eq!(
        value(&stdout(&out), "password_expiry_utc"),
        Some(expires.to_string())
    );
    assert_eq!(helperd_lines(&stderr(&out)), Vec::<&str>::new());

    let token = token_status(&sb);
    assert_eq!(token["state"], "valid", "{token:#}");
    assert_eq!(token["expires"], expires, "{token:#}");
    assert!(
        token["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("renewed")),
        "{token:#}"
    );
    let retired = retired(&sb);
    assert_eq!(retired.len(), 1, "{:#}", tokens_json(&sb));
    assert_eq!(retired[0]["name"], "laptop pat");
    assert!(retired[0]["replaced_at"].is_u64());

    // Refusals change nothing: no token, a bad expiry, an unknown runtime.
    let mut c = sb.ctl();
    c.args(["renew", RUNTIME, "--offline", "--expires", &date]);
    let out = run_with_stdin(c, b"\n");
    seen.all("helperctl renew (empty)", &out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut c = sb.ctl();
    c.args(["renew", RUNTIME, "--offline", "--expires", "2020-01-01"]);
    let out = run_with_stdin(c, b"ghp_neverStoredPast1\n");
    seen.all("helperctl renew (past)", &out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_contains(&stderr(&out), "in the past", "renew --expires 2020-01-01");
    let mut c = sb.ctl();
    c.args(["renew", "nope"]);
    let out = run_with_stdin(c, b"ghp_neverStoredNope1\n");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_contains(&stderr(&out), "no runtime named", "renew nope");
    assert_eq!(token_status(&sb)["id"], token["id"], "nothing changed");
    seen.assert_no_secret(&sb, &[OLD, NEW, "ghp_neverStored"]);
}

// ---------------------------------------------------------------------------------------
// 8. status --check
// ---------------------------------------------------------------------------------------

#[test]
fn status_check_exits_3_for_tokens_expiring_within_the_window_expired_or_rejected() {
    let sb = Sandbox::new();
    add_runtime(&sb, OFFLINE_URL);
    // No token at all, and a token without expiry: nothing to report.
    ctl_code(&sb, &["status", "--check"], 0);
    token_set(&sb, OLD, "forever pat", None);
    ctl_code(&sb, &["status", "--check"], 0);

    let (date, _) = date_in(300);
    token_set(&sb, OLD, "long pat", Some(&date));
    let out = ctl_code(&sb, &["status", "--check"], 0);
    assert_contains(&stdout(&out), "7 more days", "status --check");
    ctl_code(&sb, &["status", "--check", "100"], 0);
    let out = ctl_code(&sb, &["status", "--check", "400"], 3);
    for needle in ["work", "long pat", &date] {
        assert_contains(&stdout(&out), needle, "status --check 400");
    }
    let out = ctl_code(&sb, &["status", "--check", "--json"], 0);
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("--check --json is JSON ({e}): {}", stdout(&out)));
    assert_eq!(v["days"], 7, "{v:#}");
    assert_eq!(v["findings"], json!([]), "{v:#}");

    // Inside the default window (7 days).
    let (date, _) = date_in(3);
    token_set(&sb, OLD, "short pat", Some(&date));
    let out = ctl_code(&sb, &["status", "--check"], 3);
    assert_contains(&stdout(&out), &date, "status --check");
    ctl_code(&sb, &["status", "--check", "1"], 0);
    let out = ctl_code(&sb, &["status", "--json", "--check"], 3);
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("--check --json is JSON ({e}): {}", stdout(&out)));
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(1), "{v:#}");

    // Expired.
    set_expired_token(&sb, OLD, "expired pat");
    let out = ctl_code(&sb, &["status", "--check"], 3);
    assert_contains(&stdout(&out), "expired", "status --check");
    ctl_code(&sb, &["status", "--check", "0"], 3);

    // Rejected: git erases the token after a 401.
    let (date, _) = date_in(300);
    token_set(&sb, NEW, "revoked pat", Some(&date));
    ctl_code(&sb, &["status", "--check"], 0);
    let reject = format!("url=https://git.example/o/r.git\nusername={USERNAME}\npassword={NEW}\n");
    assert_ok(&sb.credential("reject", &reject));
    assert_eq!(token_status(&sb)["state"], "rejected");
    let out = ctl_code(&sb, &["status", "--check"], 3);
    assert_contains(&stdout(&out), "rejected", "status --check");
    ctl_code(&sb, &["status", "--check", "0"], 3);

    // Usage errors.
    let out = ctl_code(&sb, &["status", "--check", "abc"], 2);
    assert_contains(&stderr(&out), "abc", "status --check abc");
}

// ---------------------------------------------------------------------------------------
// 9. password_expiry_utc
// ---------------------------------------------------------------------------------------

#[test]
fn every_answer_carries_password_expiry_utc_equal_to_the_tokens_expiry() {
    let sb = Sandbox::new();
    add_runtime(&sb, OFFLINE_URL);
    let url = "https://git.example/o/r.git";

    #[track_caller]
    fn assert_expiry(sb: &Sandbox, url: &str, token: &str, expiry: Option<u64>) {
        let out = fill(sb, url);
        assert_ok(&out);
        let text = stdout(&out);
        assert_eq!(value(&text, "password").as_deref(), Some(token), "{text}");
        assert_eq!(
            value(&text, "password_expiry_utc"),
            expiry.map(|e| e.to_string()),
            "git credential fill:\n{text}"
        );
    }

    // RFC 3339 with an offset, a plain date (in the window), and no expiry at all.
    let at = unix_now() + 200 * 86_400 + 1234;
    let with_offset = format!("{}+02:00", &rfc3339(at + 7200)[..19]);
    token_set(&sb, OLD, "offset pat", Some(&with_offset));
    assert_expiry(&sb, url, OLD, Some(at));
    let (date, midnight) = date_in(5);
    token_set(&sb, OLD, "date pat", Some(&date));
    assert_expiry(&sb, url, OLD, Some(midnight));
    token_set(&sb, OLD, "forever pat", None);
    assert_expiry(&sb, url, OLD, None);

    // The answer to the request that was waiting for a renewal at the terminal.
    set_expired_token(&sb, OLD, "laptop pat");
    let (typed, typed_unix) = date_in(45);
    let cmd = format!("printf 'url={url}\\n\\n' | git credential fill");
    let run = pty_run(
        &sb,
        sb.dir.path(),
        renewal_steps(NEW, &typed),
        &["sh", "-c", &cmd],
    );
    assert_pty_code(&run, 0, "git credential fill gets the renewed token");
    let answer = run.transcript.replace('\r', "");
    assert_eq!(
        value(&answer, "password").as_deref(),
        Some(NEW),
        "{}",
        run.describe()
    );
    assert_eq!(
        value(&answer, "password_expiry_utc"),
        Some(typed_unix.to_string()),
        "{}",
        run.describe()
    );
    assert_expiry(&sb, url, NEW, Some(typed_unix));
}

// ---------------------------------------------------------------------------------------
// 10. No secret in any message
// ---------------------------------------------------------------------------------------

#[test]
fn no_token_appears_in_any_message_or_log_across_every_expiry_flow() {
    const NEW2: &str = "ghp_secondTok3nAfterRevoke7Yv";
    const NEW3: &str = "ghp_thirdTok3nAtGitsPrompt2Mn";
    let all = [OLD, NEW, NEW2, NEW3];
    let f = Fixture::new(NEW);
    let sb = &f.sb;
    let mut seen = Seen::default();
    let git = |what: &str, dir: &Path, args: &[&str], seen: &mut Seen| {
        let out = git_in(sb, dir, args);
        seen.all(what, &out);
        out
    };

    // Expired: refused by fetch and by fill.
    set_expired_token(sb, OLD, "laptop pat");
    let work = f.work_with_commit();
    let out = git("fetch (expired)", &work, &["fetch", "origin"], &mut seen);
    assert!(!out.status.success());
    seen.err("fill (expired)", &fill(sb, &f.url()));
    seen.all(
        "client get (expired)",
        &sb.client_run(&["get"], f.query().as_bytes()),
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "--check"],
        &["status", "--check", "--json"],
        &["which", &f.url()],
    ] {
        seen.all(&format!("helperctl {args:?}"), &ctl(sb, args));
    }

    // helperctl renew.
    let (date, _) = date_in(5);
    let mut c = sb.ctl();
    c.args(["renew", RUNTIME, "--offline", "--expires", &date]);
    let out = run_with_stdin(c, format!("{NEW}\n").as_bytes());
    seen.all("helperctl renew", &out);
    assert_ok(&out);

    // In the warning window: served with a notice.
    let out = git(
        "push (warning)",
        &work,
        &["push", "origin", "HEAD:main"],
        &mut seen,
    );
    assert_ok(&out);
    assert_contains(&stderr(&out), "expires on", "the push's warning");

    // Revoked at the host: rejected, then refused with the reason.
    f.server
        .set_accounts(vec![Account::new("", USERNAME, NEW2)]);
    let out = git("fetch (revoked)", &work, &["fetch", "origin"], &mut seen);
    assert!(!out.status.success());
    let out = fill(sb, &f.url());
    seen.err("fill (rejected)", &out);
    assert_contains(&stderr(&out), "rejected", "fill after the 401");
    seen.all("status (rejected)", &ctl(sb, &["status"]));

    // Renewed at the terminal.
    commit(sb, &work, "TERMINAL");
    let run = pty_run(
        sb,
        &work,
        renewal_steps(NEW2, &date_in(30).0),
        &["git", "push", "origin", "HEAD:main"],
    );
    assert_pty_code(&run, 0, "the push after the renewal at the terminal");
    seen.text("the push's terminal", &run.transcript);

    // Revoked again, renewed at git's own prompt.
    f.server
        .set_accounts(vec![Account::new("", USERNAME, NEW3)]);
    let out = git(
        "fetch (revoked again)",
        &work,
        &["fetch", "origin"],
        &mut seen,
    );
    assert!(!out.status.success());
    commit(sb, &work, "ASKPASS");
    let script = askpass(sb, NEW3);
    let out = sb
        .git()
        .current_dir(&work)
        .env("GIT_ASKPASS", &script)
        .args(["push", "origin", "HEAD:main"])
        .output()
        .unwrap();
    seen.all("push with askpass", &out);
    assert_ok(&out);
    let out = git("fetch (renewed)", &work, &["fetch", "origin"], &mut seen);
    assert_ok(&out);
    seen.all("status (end)", &ctl(sb, &["status"]));
    seen.all("status --json (end)", &ctl(sb, &["status", "--json"]));
    assert_eq!(token_status(sb)["state"], "valid");
    assert_eq!(retired(sb).len(), 3, "{:#}", tokens_json(sb));

    seen.assert_no_secret(sb, &all);
}
