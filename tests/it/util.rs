//! The test harness: a sandbox per test (its own HOME, HELPERD_HOME and daemon), the real
//! binaries, and the real git configured to use helperd.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Where cargo put this package's binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_helperd"))
        .parent()
        .expect("binaries live in a folder")
        .to_path_buf()
}

/// The client binary lives in another workspace package, which `cargo test -p helperd`
/// does not build: build it once here so the tests never run a stale or missing client.
pub fn client_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    // scripts/test.sh builds the whole workspace first and says so.
    let prebuilt = std::env::var_os("HELPERD_TEST_PREBUILT").is_some();
    BUILD.call_once(|| {
        if prebuilt {
            return;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "git-credential-helperd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building git-credential-helperd failed");
    });
    let path = bin_dir().join("git-credential-helperd");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

pub fn ctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_helperctl"))
}

pub fn daemon_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_helperd"))
}

/// One sandbox: a temp folder holding HOME (git's config) and HELPERD_HOME.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Extra environment for every command (e.g. DBUS_SESSION_BUS_ADDRESS).
    pub env: Vec<(String, String)>,
    /// Variables removed from every command.
    pub env_remove: Vec<String>,
}

impl Sandbox {
    /// A sandbox with the file store forced (no keyring needed) and git set up to use
    /// the client by absolute path, as `helperctl install` does.
    pub fn new() -> Sandbox {
        let sb = Sandbox::bare();
        sb.set_store("file");
        sb.configure_git_helper(&client_bin().display().to_string());
        sb
    }

    /// A sandbox with no store forced and no git configuration.
    pub fn bare() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("hd")
            .tempdir()
            .expect("a temp folder can be made");
        std::fs::create_dir(dir.path().join("home")).expect("fresh temp folder");
        Sandbox {
            dir,
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    pub fn set_store(&self, kind: &str) -> &Self {
        // Written as a sandbox file read by `command`, so `&self` stays shareable.
        std::fs::write(self.dir.path().join("store-kind"), kind).expect("temp folder writable");
        self
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn helperd_home(&self) -> PathBuf {
        self.dir.path().join("h")
    }

    pub fn socket(&self) -> PathBuf {
        self.helperd_home().join("run/socket")
    }

    pub fn log_file(&self) -> PathBuf {
        self.helperd_home().join("state/helperd.log")
    }

    /// `credential.helper` in the sandbox's global git config.
    pub fn configure_git_helper(&self, helper: &str) {
        let out = self
            .git()
            .args(["config", "--global", "credential.helper", helper])
            .output()
            .expect("git runs");
        assert!(out.status.success(), "{out:?}");
    }

    /// A command with the sandbox's environment and nothing from the machine's git setup.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", self.home())
            .env("HELPERD_HOME", self.helperd_home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("HELPERD_LOG", "helperd=trace")
            // Tests move the daemon's clock instead of waiting for an expiry.
            .env("HELPERD_TEST_CLOCK", "1")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HELPERD_SOCKET")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .current_dir(self.dir.path());
        match std::fs::read_to_string(self.dir.path().join("store-kind")) {
            Ok(kind) => c.env("HELPERD_STORE", kind.trim()),
            Err(_) => c.env_remove("HELPERD_STORE"),
        };
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for k in &self.env_remove {
            c.env_remove(k);
        }
        c
    }

    pub fn git(&self) -> Command {
        self.command("git")
    }

    pub fn ctl(&self) -> Command {
        self.command(ctl_bin())
    }

    pub fn daemon(&self) -> Command {
        self.command(daemon_bin())
    }

    pub fn client(&self) -> Command {
        self.command(client_bin())
    }

    /// `git credential <op>` with `input` on stdin.
    pub fn credential(&self, op: &str, input: &str) -> Output {
        self.credential_with(&[], op, input)
    }

    /// `git -c k=v ... credential <op>`.
    pub fn credential_with(&self, config: &[&str], op: &str, input: &str) -> Output {
        let mut c = self.git();
        for kv in config {
            c.args(["-c", kv]);
        }
        c.args(["credential", op]);
        run_with_stdin(c, input.as_bytes())
    }

    /// Runs the client directly (as git would) with `input`.
    pub fn client_run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.client();
        c.args(args);
        run_with_stdin(c, input)
    }

    /// The running daemon's pid, from its lock file — only while the lock is held, so a
    /// stale pid (pids wrap around quickly on a busy machine) is never taken for a daemon.
    /// Moves the daemon's clock forward by `secs` (starting the daemon when none runs):
    /// what a test does instead of waiting for an expiry. Returns the daemon's `now`.
    pub fn advance_clock(&self, secs: u64) -> u64 {
        let out = self
            .ctl()
            .args(["debug", "advance-clock", &format!("{secs}s")])
            .output()
            .expect("helperctl runs");
        assert_ok(&out);
        let said = stdout(&out) + &stderr(&out);
        said.split_whitespace()
            .filter_map(|w| w.parse::<u64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("advance-clock says the daemon's time: {said}"))
    }

    /// Moves the daemon's clock just past `t` (Unix seconds), when it is not there yet.
    pub fn advance_clock_past(&self, t: u64) {
        let now = self.advance_clock(0);
        if now <= t {
            self.advance_clock(t - now + 1);
        }
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        let path = self.helperd_home().join("run/socket.lock");
        let file = std::fs::File::open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => {
                // Nobody holds it: no daemon.
                let _ = file.unlock();
                None
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                std::fs::read_to_string(&path).ok()?.trim().parse().ok()
            }
            Err(std::fs::TryLockError::Error(e)) => panic!("cannot check {}: {e}", path.display()),
        }
    }

    pub fn kill_daemon(&self, signal: nix::sys::signal::Signal) -> i32 {
        let pid = self.daemon_pid().expect("a daemon is running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal sent");
        wait_until(Duration::from_secs(5), || !process_alive(pid));
        pid
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Writes an executable script into the sandbox.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("temp folder writable");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("own file");
        path
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The daemon's log explains most failures; the sandbox is about to vanish.
            eprintln!(
                "--- daemon log ({}) ---\n{}",
                self.log_file().display(),
                self.log()
            );
        }
        if let Some(pid) = self.daemon_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub fn process_alive(pid: i32) -> bool {
    // A zombie still answers signal 0; /proc tells the truth. A killed multi-threaded
    // process shows its main thread as a zombie while its other threads still exit (and
    // still hold its sockets open): it is gone only when every thread is.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(|t| t.ok()).any(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    })
}

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

pub fn run_with_stdin(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("command starts");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("command runs");
    let _ = writer.join();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "command failed ({:?})\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Parses git's `key=value` output into pairs.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn value(text: &str, key: &str) -> Option<String> {
    pairs(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

// Shared by several test modules: one definition each.

/// Seconds since the Unix epoch (the daemon's own clock function).
pub fn unix_now() -> u64 {
    helperd::timefmt::unix_now()
}

#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what} should contain {needle:?}, but is:\n{haystack}"
    );
}

#[track_caller]
pub fn assert_lacks(haystack: &str, needle: &str, what: &str) {
    assert!(
        !haystack.contains(needle),
        "{what} must not contain {needle:?}, but is:\n{haystack}"
    );
}

/// Keeps the daemon's HTTP client off any proxy of the machine: the fakes are on 127.0.0.1
/// and must be reached directly whatever the machine running the tests has set.
pub fn no_proxy(sb: &mut Sandbox) {
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        sb.env_remove.push(var.into());
    }
    sb.env.push(("NO_PROXY".into(), "*".into()));
}

/// RFC 3339 UTC for Unix seconds (Howard Hinnant's `civil_from_days`).
pub fn rfc3339(unix: u64) -> String {
    let secs = unix % 86_400;
    let z = i64::try_from(unix / 86_400).expect("a date of this era") + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `2027-03-01`: the date (UTC) of Unix seconds.
pub fn date_of(unix: u64) -> String {
    rfc3339(unix)[..10].to_string()
}

/// A policy file (root-owned, 0644, in a 0755 folder) for `sb`'s commands.
pub fn with_policy(sb: &mut Sandbox, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = sb.dir.path().join("policy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    sb.env
        .push(("HELPERD_POLICY".into(), path.display().to_string()));
}

/// git `ARGS...` in `dir`, in the sandbox.
pub fn git_in(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    sb.git()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git runs")
}

/// Like [`git_in`]; git must succeed.
#[track_caller]
pub fn git_ok(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    let out = git_in(sb, dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Adds and commits a file `name` (holding its name) in the work tree `work`.
pub fn commit(sb: &Sandbox, work: &Path, name: &str) {
    std::fs::write(work.join(name), name).unwrap();
    git_ok(sb, work, &["add", name]);
    git_ok(sb, work, &["commit", "-q", "-m", name]);
}

/// The `status --json` entry of one runtime.
#[track_caller]
pub fn runtime_status(sb: &Sandbox, name: &str) -> serde_json::Value {
    let status = status_json(sb);
    status["daemon"]["runtimes"]
        .as_array()
        .unwrap_or_else(|| panic!("status --json has daemon.runtimes:\n{status:#}"))
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("status --json lists runtime {name}:\n{status:#}"))
}

/// A plain credential that git stores through the helper (`approve`) and asks for again
/// (`fill`); each test file has its own distinctive password, so that a leak is found.
pub struct PlainCred {
    pub host: &'static str,
    pub user: &'static str,
    pub password: &'static str,
}

impl PlainCred {
    /// What git sends to store or erase it.
    pub fn credential(&self) -> String {
        format!(
            "protocol=https\nhost={}\nusername={}\npassword={}\n\n",
            self.host, self.user, self.password
        )
    }

    /// What git sends to ask for it.
    pub fn query(&self) -> String {
        format!("protocol=https\nhost={}\n\n", self.host)
    }

    /// `git credential approve`, which must succeed quietly.
    #[track_caller]
    pub fn approve(&self, sb: &Sandbox) {
        let out = sb.credential("approve", &self.credential());
        assert_ok(&out);
        assert!(
            stderr(&out).is_empty(),
            "git credential approve printed on stderr: {}",
            stderr(&out)
        );
    }

    /// `git credential fill` serves it.
    #[track_caller]
    pub fn assert_served(&self, sb: &Sandbox) {
        let out = sb.credential("fill", &self.query());
        assert_ok(&out);
        let text = stdout(&out);
        assert_eq!(
            value(&text, "username").as_deref(),
            Some(self.user),
            "fill did not serve the stored username\nstdout: {text}\nstderr: {}\nlog:\n{}",
            stderr(&out),
            sb.log()
        );
        assert_eq!(
            value(&text, "password").as_deref(),
            Some(self.password),
            "fill did not serve the stored password\nstderr: {}",
            stderr(&out)
        );
    }

    /// `git credential fill` when helperd serves nothing: nothing on stdout, and git
    /// (terminal prompts disabled) gives up with exit code 128. Returns git's output for
    /// more checks.
    #[track_caller]
    pub fn fill_misses(&self, sb: &Sandbox) -> Output {
        let out = sb.credential("fill", &self.query());
        assert!(
            out.stdout.is_empty(),
            "fill printed something although nothing should be served: {}",
            stdout(&out)
        );
        assert_eq!(
            out.status.code(),
            Some(128),
            "git should give up on its own prompt (terminal prompts are disabled)\nstderr: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("terminal prompts disabled"),
            "git did not fall back to its own prompt\nstderr: {}",
            stderr(&out)
        );
        out
    }
}

/// `helperctl ARGS...` in the sandbox.
pub fn ctl(sb: &Sandbox, args: &[&str]) -> Output {
    sb.ctl().args(args).output().expect("helperctl runs")
}

/// `helperctl ARGS...`, which must succeed; its stdout.
#[track_caller]
pub fn ctl_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = ctl(sb, args);
    assert!(
        out.status.success(),
        "helperctl {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `helperctl audit --json EXTRA...`, one event per line.
#[track_caller]
pub fn audit_json(sb: &Sandbox, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["audit", "--json"];
    args.extend_from_slice(extra);
    let text = ctl_ok(sb, &args);
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("audit --json line is JSON ({e}): {l}\nall:\n{text}"))
        })
        .collect()
}

/// `helperctl runtime add NAME --provider PROVIDER --url URL`, which must succeed; its
/// stdout.
#[track_caller]
pub fn add_runtime(sb: &Sandbox, name: &str, provider: &str, url: &str) -> String {
    ctl_ok(
        sb,
        &["runtime", "add", name, "--provider", provider, "--url", url],
    )
}

/// A generic runtime `name` on `https://HOST/` with `username`, and `token` set for it
/// (`token set --offline`, piped): a runtime token with no provider to ask.
#[track_caller]
pub fn generic_runtime_with_token(
    sb: &Sandbox,
    name: &str,
    host: &str,
    username: &str,
    token: &str,
) {
    let url = format!("https://{host}/");
    ctl_ok(
        sb,
        &[
            "runtime",
            "add",
            name,
            "--provider",
            "generic",
            "--url",
            &url,
            "--username",
            username,
        ],
    );
    let mut c = sb.ctl();
    c.args(["token", "set", name, "--offline"]);
    assert_ok(&run_with_stdin(c, format!("{token}\n").as_bytes()));
}

#[track_caller]
pub fn status_json(sb: &Sandbox) -> serde_json::Value {
    let text = ctl_ok(sb, &["status", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json is JSON ({e}):\n{text}"))
}

/// The password git got in a `git credential fill`.
pub fn served(out: &Output) -> Option<String> {
    value(&stdout(out), "password")
}

pub fn config_path(sb: &Sandbox) -> PathBuf {
    sb.helperd_home().join("config/config.toml")
}

/// Every regular file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// The throwaway second user of the peer-credential and support tests.
pub const OTHER_USER: &str = "helperd-test";

/// Creates (once) [`OTHER_USER`]; its uid and gid. CI runs as root.
pub fn other_user() -> (u32, u32) {
    if nix::unistd::User::from_name(OTHER_USER).unwrap().is_none() {
        let out = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", OTHER_USER])
            .output()
            .expect("useradd runs (the tests run as root, as CI does)");
        // Another test may have created it meanwhile.
        assert!(
            out.status.success() || stderr(&out).contains("already exists"),
            "useradd failed: {}",
            stderr(&out)
        );
    }
    let user = nix::unistd::User::from_name(OTHER_USER)
        .unwrap()
        .expect("user exists");
    (user.uid.as_raw(), user.gid.as_raw())
}
