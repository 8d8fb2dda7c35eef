//! The Windows suite: the real `.exe`s (client, daemon, helperctl) over the real named
//! pipe, run under Wine here by `scripts/wine-test.sh` (on Windows, `cargo test --test
//! windows` runs it as it is). Git itself is not run under Wine: the tests speak git's
//! credential protocol to `git-credential-helperd.exe` on its stdin, as git does.
//!
//! Wine runs one user, so the other-user checks (the pipe's DACL, the client's SID, the
//! server's SID) are covered by unit tests of the SID comparison only; the README says so.
#![cfg(windows)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one program may take under Wine before the test calls it hung. Generous:
/// Wine starts a process in a few hundred milliseconds, a loaded CI machine in more.
const HUNG: Duration = Duration::from_secs(30);

fn daemon_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_helperd"))
}

fn ctl_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_helperctl"))
}

/// The client lives in the `helper/` package; cargo builds it into the same folder.
fn client_exe() -> PathBuf {
    daemon_exe().with_file_name("git-credential-helperd.exe")
}

/// One daemon's world: its own `HELPERD_HOME` (so its own pipe), stopped when dropped.
struct Sandbox {
    home: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let home = std::env::temp_dir().join(format!(
            "helperd-wine-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        Sandbox { home }
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("HELPERD_HOME", &self.home)
            .env("HELPERD_TEST_CLOCK", "1")
            .env("HELPERD_LOG", "helperd=debug")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("HELPERD_SOCKET")
            .env_remove("HELPERD_STORE");
        c
    }

    /// `git-credential-helperd.exe ACTION` with `input` on stdin, as git runs it.
    fn git(&self, action: &str, input: &str) -> Output {
        let mut c = self.command(&client_exe());
        c.arg(action);
        run(c, input)
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut c = self.command(&ctl_exe());
        c.args(args);
        run(c, "")
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "helperctl {args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status_json(&self) -> serde_json::Value {
        let text = self.ctl_ok(&["status", "--json"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json ({e}): {text}"))
    }

    /// Every file helperd wrote, as text, for the no-secret checks.
    fn all_files_text(&self) -> String {
        fn walk(dir: &Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let mut text = String::new();
        walk(&self.home, &mut text);
        text
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.ctl(&["daemon", "stop"]);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Runs `command` with `input` on stdin and waits for it, its stdout and its stderr to
/// end, within [`HUNG`] (killed past it). A daemon that inherited the client's pipes would
/// hold them open and make this wait forever: that is one of the things these tests catch.
fn run(mut command: Command, input: &str) -> Output {
    use std::io::{Read, Write};
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the program starts");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + HUNG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the program runs") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not finish within {HUNG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let (stdout, stderr) = match (stdout.recv_timeout(left), stderr.recv_timeout(left)) {
        (Ok(out), Ok(err)) => (out, err),
        _ => panic!("{command:?} exited, but something still holds its output open"),
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn credential(host: &str, username: &str, password: &str) -> String {
    format!("protocol=https\nhost={host}\nusername={username}\npassword={password}\n\n")
}

fn query(host: &str) -> String {
    format!("protocol=https\nhost={host}\n\n")
}

#[test]
fn a_get_that_starts_the_daemon_returns_at_once() {
    let sb = Sandbox::new("start");
    assert_eq!(sb.status_json()["running"], false);
    let started = Instant::now();
    let out = sb.git("get", &query("example.com"));
    let took = started.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    // Nothing stored yet: no answer, and no complaint either.
    assert_eq!(stdout(&out), "");
    // `run` returned, so the daemon holds none of the client's pipes; and promptly.
    assert!(
        took < Duration::from_secs(15),
        "the first get took {took:?}"
    );
    let status = sb.status_json();
    assert_eq!(status["running"], true, "{status}");
    let pid = status["daemon"]["pid"].as_u64().unwrap();
    assert_ne!(pid, 0);
}

#[test]
fn store_get_and_erase_go_through_the_pipe() {
    let sb = Sandbox::new("sge");
    let out = sb.git("store", &credential("example.com", "bob", "s3cret-pipe"));
    assert!(out.status.success(), "{}", show(&out));
    let out = sb.git("get", &query("example.com"));
    assert_eq!(
        stdout(&out),
        "username=bob\npassword=s3cret-pipe\n",
        "{}",
        show(&out)
    );
    // Another host has nothing.
    assert_eq!(stdout(&sb.git("get", &query("other.example"))), "");
    let out = sb.git("erase", &credential("example.com", "bob", "s3cret-pipe"));
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(stdout(&sb.git("get", &query("example.com"))), "");
}

#[test]
fn a_credential_survives_a_daemon_restart() {
    let sb = Sandbox::new("restart");
    sb.git(
        "store",
        &credential("example.com", "ann", "kept-across-restarts"),
    );
    let first = sb.status_json()["daemon"]["pid"].as_u64().unwrap();
    assert!(sb.ctl_ok(&["daemon", "stop"]).is_empty());
    assert_eq!(sb.status_json()["running"], false);
    let out = sb.git("get", &query("example.com"));
    assert_eq!(
        stdout(&out),
        "username=ann\npassword=kept-across-restarts\n",
        "{}",
        show(&out)
    );
    let second = sb.status_json()["daemon"]["pid"].as_u64().unwrap();
    assert_ne!(first, second, "a new daemon answered");
}

#[test]
fn a_runtime_token_is_served_by_url_and_refused_once_expired() {
    let sb = Sandbox::new("runtime");
    let token = "glpat-wine-runtime-token-000111";
    sb.ctl_ok(&[
        "runtime",
        "add",
        "acme",
        "--provider",
        "generic",
        "--url",
        "https://git.example.com/acme/",
        "--username",
        "builder",
    ]);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30 * 86_400;
    let mut set = sb.command(&ctl_exe());
    set.args(["token", "set", "acme", "--offline", "--expires"])
        .arg(rfc3339_date(expires));
    let out = run(set, &format!("{token}\n"));
    assert!(out.status.success(), "{}", show(&out));

    let ask = "protocol=https\nhost=git.example.com\npath=acme/tools.git\n\n";
    let out = sb.git("get", ask);
    let answer = stdout(&out);
    assert!(
        answer.starts_with(&format!("username=builder\npassword={token}\n"))
            && answer.contains("password_expiry_utc="),
        "the runtime's token, with its expiry: {}",
        show(&out)
    );
    // Another owner on the same host is not this runtime's.
    let other = "protocol=https\nhost=git.example.com\npath=someone/else.git\n\n";
    assert!(!stdout(&sb.git("get", other)).contains(token));

    // 31 days later the token has expired: never handed to git again.
    sb.ctl_ok(&["debug", "advance-clock", "31d"]);
    let out = sb.git("get", ask);
    assert!(!stdout(&out).contains(token), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "git is told why: {}",
        show(&out)
    );
    // The token lives in Credential Manager: no file helperd wrote holds it.
    assert!(!sb.all_files_text().contains(token));
}

/// `2026-12-06`, for `--expires`.
fn rfc3339_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Credential Manager holds 2,560 bytes per item: the store splits larger values.
#[test]
fn a_3000_character_secret_round_trips() {
    let sb = Sandbox::new("long");
    let long: String = (0..3_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let out = sb.git("store", &credential("bitbucket.org", "x-token-auth", &long));
    assert!(out.status.success(), "{}", show(&out));
    sb.ctl_ok(&["daemon", "stop"]);
    let out = sb.git("get", &query("bitbucket.org"));
    assert_eq!(
        stdout(&out),
        format!("username=x-token-auth\npassword={long}\n"),
        "the whole secret, from the store of record: {}",
        show(&out)
    );
}

#[test]
fn a_second_server_on_the_same_pipe_name_is_refused() {
    let first = Sandbox::new("first");
    first.git("get", &query("example.com"));
    let pipe = first.status_json()["socket"].as_str().unwrap().to_string();
    assert!(pipe.starts_with(r"\\.\pipe\helperd-"), "{pipe}");

    // Another daemon (its own folders, so its own lock) told to serve that pipe name.
    let second = Sandbox::new("second");
    let mut squat = second.command(&daemon_exe());
    squat.arg("--foreground").env("HELPERD_SOCKET", &pipe);
    let out = run(squat, "");
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    // The first daemon still answers.
    assert_eq!(first.status_json()["running"], true);
}

#[test]
fn status_names_the_store_and_no_secret_lands_in_a_file() {
    let sb = Sandbox::new("status");
    let password = "never-in-a-log-7f3a";
    sb.git("store", &credential("example.com", "eve", password));
    let status = sb.status_json();
    let kind = status["daemon"]["store"]["kind"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ["wincred", "file"].contains(&kind.as_str()),
        "the store is named: {status}"
    );
    assert_eq!(status["daemon"]["store"]["state"], "ok", "{status}");
    assert_eq!(
        status["daemon"]["store"]["plain_credentials"], 1,
        "{status}"
    );
    let human = sb.ctl_ok(&["status"]);
    assert!(!human.contains(password) && !status.to_string().contains(password));
    let audit = sb.ctl_ok(&["audit"]);
    assert!(
        audit.contains("example.com") && !audit.contains(password),
        "{audit}"
    );
    // The secret is in Credential Manager; the log and the audit log never hold it.
    assert!(!sb.all_files_text().contains(password));
}
