//! The encrypted file store through the real binaries: chosen when no Secret Service
//! answers, key-file and passphrase protection, a bad `HELPERD_STORE`, and a client that
//! replaces a daemon speaking another protocol version.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{
    assert_ok, client_bin, run_with_stdin, stderr, stdout, wait_until, PlainCred, Sandbox,
};

const HOST: &str = "files.example.com";
const USER: &str = "bob";
/// Distinctive, so that any copy of it in a file, a log or an answer is found.
const PASSWORD: &str = "fs-Pa55word-c0ffee42";
const CRED: PlainCred = PlainCred {
    host: HOST,
    user: USER,
    password: PASSWORD,
};
const PASSPHRASE: &str = "correct horse battery staple";

fn secrets_file(sb: &Sandbox) -> PathBuf {
    sb.helperd_home().join("data/secrets.enc")
}

fn key_file(sb: &Sandbox) -> PathBuf {
    sb.helperd_home().join("data/secrets.key")
}

/// The one line the client printed for git (`helperd: ...`).
#[track_caller]
fn helperd_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("helperd: ")).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one helperd line on stderr:\n{err}"
    );
    lines[0].to_string()
}

#[track_caller]
fn ctl(sb: &Sandbox, args: &[&str], stdin: &str) -> Output {
    let mut c = sb.ctl();
    c.args(args);
    run_with_stdin(c, stdin.as_bytes())
}

#[track_caller]
fn store_status(sb: &Sandbox) -> serde_json::Value {
    let out = ctl(sb, &["status", "--json"], "");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        !text.contains(PASSWORD) && !text.contains(PASSPHRASE),
        "status --json shows a secret:\n{text}"
    );
    let status: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{text}"));
    assert_eq!(status["running"], true, "the daemon should run: {status:#}");
    status["daemon"]["store"].clone()
}

#[track_caller]
fn remembered_kind(sb: &Sandbox) -> String {
    let path = sb.helperd_home().join("state/store.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the store choice {} is missing: {e}", path.display()));
    let choice: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()));
    choice["kind"].as_str().unwrap_or_default().to_string()
}

/// Whether `needle` occurs anywhere in `path`'s bytes.
#[track_caller]
fn file_contains(path: &Path, needle: &str) -> bool {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[track_caller]
fn assert_no_secret_at_rest_or_in_log(sb: &Sandbox) {
    let secrets = secrets_file(sb);
    assert!(
        !file_contains(&secrets, PASSWORD),
        "{} holds the password in the clear",
        secrets.display()
    );
    let log = sb.log();
    assert!(
        !log.contains(PASSWORD) && !log.contains(PASSPHRASE),
        "the daemon log holds a secret:\n{log}"
    );
}

#[test]
fn without_a_secret_service_the_encrypted_file_is_chosen_and_remembered() {
    // No store forced; the harness removes DBUS_SESSION_BUS_ADDRESS, so no keyring answers.
    let sb = Sandbox::bare();
    sb.configure_git_helper(&client_bin().display().to_string());

    CRED.approve(&sb);
    CRED.assert_served(&sb);
    assert_eq!(remembered_kind(&sb), "file");

    let store = store_status(&sb);
    assert_eq!(store["kind"], "file", "store status: {store:#}");
    assert_eq!(store["state"], "ok", "store status: {store:#}");
    let protection = store["protection"].as_str().unwrap_or_default();
    assert!(
        protection.contains("key file") && protection.contains("weaker"),
        "status should call the key file the weaker protection: {protection:?}"
    );
    let out = ctl(&sb, &["status"], "");
    assert_ok(&out);
    assert!(
        stdout(&out).contains("weaker"),
        "the human status should say the key file is weaker:\n{}",
        stdout(&out)
    );

    let key = key_file(&sb);
    let mode = std::fs::metadata(&key)
        .unwrap_or_else(|e| panic!("the key file {} is missing: {e}", key.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} must be 0600", key.display());
    assert!(secrets_file(&sb).is_file(), "no secrets.enc was written");
    assert_no_secret_at_rest_or_in_log(&sb);

    // Remembered across daemons, and the credential survives them.
    let out = ctl(&sb, &["daemon", "restart"], "");
    assert_ok(&out);
    CRED.assert_served(&sb);
    assert_eq!(store_status(&sb)["kind"], "file");
}

#[test]
fn a_passphrase_locks_the_store_until_unlock() {
    let sb = Sandbox::new();
    CRED.approve(&sb);

    let out = ctl(
        &sb,
        &["store", "set-passphrase"],
        &format!("{PASSPHRASE}\n"),
    );
    assert_ok(&out);
    assert!(
        stdout(&out).contains("helperctl unlock"),
        "set-passphrase should say that each start needs `helperctl unlock`: {}",
        stdout(&out)
    );
    assert!(
        !key_file(&sb).exists(),
        "{} must be gone once a passphrase protects the store",
        key_file(&sb).display()
    );
    let protection = store_status(&sb)["protection"].clone();
    assert!(
        protection
            .as_str()
            .unwrap_or_default()
            .contains("passphrase"),
        "status should now report passphrase protection: {protection}"
    );
    // Still served until the daemon restarts: the key is in memory.
    CRED.assert_served(&sb);

    let out = ctl(&sb, &["daemon", "restart"], "");
    assert_ok(&out);
    let out = CRED.fill_misses(&sb);
    let line = helperd_line(&out);
    assert!(
        line.contains("locked") && line.contains("helperctl unlock"),
        "the client should say the store is locked and how to unlock it: {line}"
    );
    let store = store_status(&sb);
    assert_eq!(store["state"], "locked", "store status: {store:#}");

    let out = ctl(&sb, &["unlock"], "not the passphrase\n");
    assert!(
        !out.status.success(),
        "unlock with a wrong passphrase succeeded\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "unlock should say the passphrase is wrong: {}",
        stderr(&out)
    );
    for text in [stdout(&out), stderr(&out)] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(PASSPHRASE),
            "unlock printed a secret: {text}"
        );
    }
    CRED.fill_misses(&sb);

    let out = ctl(&sb, &["unlock"], &format!("{PASSPHRASE}\n"));
    assert_ok(&out);
    CRED.assert_served(&sb);
    assert_eq!(store_status(&sb)["state"], "ok");
    assert!(
        !key_file(&sb).exists(),
        "unlock must not bring the key file back"
    );
    assert_no_secret_at_rest_or_in_log(&sb);
    assert!(
        !file_contains(&secrets_file(&sb), PASSPHRASE),
        "secrets.enc holds the passphrase"
    );
}

#[test]
fn an_empty_passphrase_is_refused_and_nothing_changes() {
    let sb = Sandbox::new();
    CRED.approve(&sb);
    let before = std::fs::read(secrets_file(&sb)).expect("secrets.enc was written");

    let out = ctl(&sb, &["store", "set-passphrase"], "\n");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an empty passphrase must be refused\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("empty passphrase") && err.contains("nothing was changed"),
        "the refusal should say why and that nothing changed: {err}"
    );

    assert!(key_file(&sb).is_file(), "the key file must stay");
    assert_eq!(
        std::fs::read(secrets_file(&sb)).expect("secrets.enc still there"),
        before,
        "secrets.enc must not be rewritten"
    );
    let store = store_status(&sb);
    assert!(
        store["protection"]
            .as_str()
            .unwrap_or_default()
            .contains("key file"),
        "the store must still be protected by the key file: {store:#}"
    );
    // A new daemon opens it without any unlock.
    let out = ctl(&sb, &["daemon", "restart"], "");
    assert_ok(&out);
    CRED.assert_served(&sb);
}

#[test]
fn an_unknown_store_name_stops_the_daemon_and_git_falls_back() {
    let sb = Sandbox::new();
    sb.set_store("bogus");

    let out = sb.daemon().output().expect("helperd runs");
    assert!(
        !out.status.success(),
        "the daemon started with HELPERD_STORE=bogus"
    );
    let err = stderr(&out);
    for name in ["bogus", "file", "secret-service", "openbao"] {
        assert!(
            err.contains(name),
            "the daemon's refusal should name {name:?}: {err}"
        );
    }
    assert!(sb.daemon_pid().is_none(), "no daemon may be left running");

    // The client itself, as git runs it: one line, exit 0.
    let out = sb.client_run(&["get"], CRED.query().as_bytes());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "one line expected on stderr:\n{err}"
    );
    assert!(
        err.starts_with("helperd: ") && err.contains("bogus") && err.contains("secret-service"),
        "the line should name the bad value and the valid ones: {err}"
    );

    // Through git: the same line, then git's own prompt (disabled here).
    let out = CRED.fill_misses(&sb);
    let line = helperd_line(&out);
    assert!(line.contains("bogus"), "{line}");
    assert!(sb.daemon_pid().is_none(), "no daemon may be left running");
}

/// A daemon from an older installation: it answers everything with `version_mismatch`
/// except `shutdown`, which every version honours (DESIGN.md §4).
struct FakeOldDaemon {
    ops: mpsc::Receiver<String>,
    thread: std::thread::JoinHandle<()>,
}

impl FakeOldDaemon {
    fn start(socket: &Path) -> FakeOldDaemon {
        let dir = socket.parent().expect("the socket lives in a folder");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .expect("the run folder can be made");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("own folder");
        let listener = UnixListener::bind(socket)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", socket.display()));
        listener
            .set_nonblocking(true)
            .expect("a listener can be non-blocking");
        let socket = socket.to_path_buf();
        let (tx, ops) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // Never outlive a test that went wrong.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("the fake daemon cannot accept: {e}"),
                };
                let op = answer_as_old_daemon(stream);
                let stop = op == "shutdown";
                let _ = tx.send(op);
                if stop {
                    let _ = std::fs::remove_file(&socket);
                    return;
                }
            }
        });
        FakeOldDaemon { ops, thread }
    }
}

/// Answers one connection; returns the request's `op`.
fn answer_as_old_daemon(stream: UnixStream) -> String {
    stream
        .set_nonblocking(false)
        .expect("a stream can be blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout can be set");
    let mut line = String::new();
    let _ = BufReader::new(&stream).read_line(&mut line);
    let request: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    let op = request["op"].as_str().unwrap_or("<none>").to_string();
    let answer = if op == "shutdown" {
        r#"{"v":0,"result":"done"}"#
    } else {
        r#"{"v":0,"result":"error","code":"version_mismatch","message":"old"}"#
    };
    let _ = (&stream).write_all(format!("{answer}\n").as_bytes());
    op
}

#[test]
fn a_client_replaces_a_daemon_of_another_protocol_version() {
    let sb = Sandbox::new();
    CRED.approve(&sb);
    let out = ctl(&sb, &["daemon", "stop"], "");
    assert_ok(&out);
    assert!(
        wait_until(Duration::from_secs(5), || !sb.socket().exists()),
        "the stopped daemon left its socket behind"
    );

    let fake = FakeOldDaemon::start(&sb.socket());
    CRED.assert_served(&sb);

    let fake_ops: Vec<String> = {
        let mut ops = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(op) = fake
            .ops
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let done = op == "shutdown";
            ops.push(op);
            if done {
                break;
            }
        }
        ops
    };
    assert_eq!(
        fake_ops,
        ["git", "shutdown"],
        "the client should ask once, get version_mismatch, then shut the old daemon down"
    );
    fake.thread.join().expect("the fake daemon ran cleanly");
    let pid = sb.daemon_pid().expect("the client started a real daemon");
    assert!(crate::util::process_alive(pid));
    assert_eq!(store_status(&sb)["state"], "ok");
}
