//! The Secret Service as the store of record, against a real gnome-keyring-daemon on a
//! private D-Bus session that each test starts for itself (TESTING.md, "A real Secret
//! Service, headless").
//!
//! The session is hermetic: its own bus (a config with no service directories, so nothing
//! is auto-activated behind the test's back), its own HOME for the keyring files, and a
//! fixed bus socket path, so a session stopped and started again comes back at the same
//! address with the same keyring.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::util::{
    assert_ok, client_bin, run_with_stdin, stderr, stdout, wait_until, PlainCred, Sandbox,
};

/// The keyring password the fixture unlocks the login keyring with.
const KEYRING_PASSWORD: &str = "pw";

/// How long a bus or keyring daemon may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The programs these tests need, and the Debian packages that hold them.
const NEEDED: [(&str, &str); 3] = [
    ("dbus-daemon", "dbus"),
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
];

/// A private D-Bus session with an unlocked gnome-keyring answering as the Secret Service.
///
/// Both daemons are children of the test, each in its own process group, so `Drop` can
/// stop and reap them whatever state they are in.
pub struct SecretServiceSession {
    /// Holds the keyring's HOME, the bus config and socket, and the daemons' logs.
    dir: tempfile::TempDir,
    /// `DBUS_SESSION_BUS_ADDRESS` of the session; the same across `stop`/`resume`.
    pub address: String,
    dbus: Option<Child>,
    keyring: Option<Child>,
    /// The daemons' stdout, kept open so that they never write into a closed pipe.
    _outputs: Vec<BufReader<ChildStdout>>,
}

impl SecretServiceSession {
    /// Starts a fresh session: a new bus and an unlocked, empty login keyring.
    #[track_caller]
    pub fn start() -> SecretServiceSession {
        require_tools();
        let dir = tempfile::Builder::new()
            .prefix("ss")
            .tempdir()
            .expect("a temp folder can be made");
        std::fs::create_dir(dir.path().join("home")).expect("fresh temp folder");
        let bus = dir.path().join("bus");
        let mut session = SecretServiceSession {
            address: format!("unix:path={}", bus.display()),
            dir,
            dbus: None,
            keyring: None,
            _outputs: Vec::new(),
        };
        session.resume();
        session
    }

    /// The HOME the keyring keeps its files under (`.local/share/keyrings`).
    pub fn keyring_home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Makes every command of `sb` use this session.
    pub fn attach(&self, sb: &mut Sandbox) {
        sb.env
            .push(("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()));
    }

    /// Starts the bus and the keyring (again, after [`stop`](Self::stop)): same address,
    /// same HOME, hence the same keyring files, unlocked with the same password.
    #[track_caller]
    pub fn resume(&mut self) {
        assert!(
            self.dbus.is_none() && self.keyring.is_none(),
            "the session is already running"
        );
        let bus = self.dir.path().join("bus");
        // A bus killed hard leaves its socket file behind, and a new bus cannot bind over it.
        let _ = std::fs::remove_file(&bus);
        let config = self.dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&bus)).expect("temp folder writable");

        let mut dbus = self.command("dbus-daemon");
        dbus.arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.log("dbus.log"));
        let (dbus, line, out) = spawn_and_read_line(dbus, "dbus-daemon");
        self.dbus = Some(dbus);
        self._outputs.extend(out);
        assert!(
            line.trim_start().starts_with("unix:path="),
            "dbus-daemon did not print its address (got {line:?}); its log:\n{}",
            self.read_log("dbus.log")
        );

        let mut keyring = self.command("gnome-keyring-daemon");
        keyring
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(self.log("keyring.log"));
        // The password goes on stdin, which is then closed: the daemon reads to its end.
        let (keyring, line, out) = spawn_and_read_line_with(keyring, "gnome-keyring-daemon", |c| {
            let mut stdin = c.stdin.take().expect("stdin was piped");
            stdin
                .write_all(KEYRING_PASSWORD.as_bytes())
                .expect("gnome-keyring-daemon reads its password");
        });
        self.keyring = Some(keyring);
        self._outputs.extend(out);
        assert!(
            line.starts_with("GNOME_KEYRING_CONTROL="),
            "gnome-keyring-daemon did not start (printed {line:?}); its log:\n{}",
            self.read_log("keyring.log")
        );

        // Ready when a real client can store and read back an item.
        let answered = wait_until(START_TIMEOUT, || {
            let stored = self
                .secret_tool(
                    &["store", "--label=fixture probe", "helperd-fixture", "probe"],
                    b"ok",
                )
                .status
                .success();
            stored && {
                let out = self.secret_tool(&["lookup", "helperd-fixture", "probe"], b"");
                out.status.success() && stdout(&out).trim() == "ok"
            }
        });
        assert!(
            answered,
            "the Secret Service on {} does not answer secret-tool; keyring log:\n{}\nbus log:\n{}",
            self.address,
            self.read_log("keyring.log"),
            self.read_log("dbus.log")
        );
    }

    /// Freezes the keyring (SIGSTOP): it neither answers nor drops anything, as when it
    /// waits for a person to answer an unlock dialog (TESTING.md, "A keyring that does not
    /// answer"). The bus goes on.
    pub fn freeze(&self) {
        self.signal_keyring(Signal::SIGSTOP);
    }

    /// Lets a frozen keyring go on (SIGCONT): it answers what waited for it.
    pub fn thaw(&self) {
        self.signal_keyring(Signal::SIGCONT);
    }

    fn signal_keyring(&self, signal: Signal) {
        let keyring = self.keyring.as_ref().expect("the keyring is running");
        killpg(Pid::from_raw(keyring.id() as i32), signal).expect("the keyring can be signalled");
    }

    /// Stops the keyring and the bus: from now on nothing answers at the address.
    pub fn stop(&mut self) {
        if self.keyring.is_some() {
            // A frozen keyring would hold its SIGTERM until the kill.
            self.thaw();
        }
        for child in [self.keyring.take(), self.dbus.take()]
            .into_iter()
            .flatten()
        {
            stop_child(child);
        }
        self._outputs.clear();
    }

    /// Runs `secret-tool` on this session with `input` on stdin.
    pub fn secret_tool(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.command("secret-tool");
        c.args(args).env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        run_with_stdin(c, input)
    }

    /// A command with a minimal, machine-independent environment.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.keyring_home())
            .env("LANG", "C.UTF-8")
            .current_dir(self.dir.path())
            // Its own group, so stopping it reaches anything it started.
            .process_group(0);
        c
    }

    fn log(&self, name: &str) -> File {
        File::create(self.dir.path().join(name)).expect("temp folder writable")
    }

    fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for SecretServiceSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A session bus like the system's `session.conf`, listening at `socket`, with no service
/// directories: nothing (e.g. a second, locked gnome-keyring) is ever auto-activated.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// Fails (never skips) when the machine lacks the Secret Service tools.
#[track_caller]
fn require_tools() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = NEEDED
        .iter()
        .filter(|(program, _)| !std::env::split_paths(&path).any(|d| d.join(program).is_file()))
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the Secret Service tests need a real gnome-keyring on D-Bus, but these are not on \
         PATH: {}; install them (CI does): \
         `sudo apt-get install -y gnome-keyring libsecret-tools dbus dbus-x11`",
        missing.join(", ")
    );
}

fn spawn_and_read_line(c: Command, what: &str) -> (Child, String, Option<BufReader<ChildStdout>>) {
    spawn_and_read_line_with(c, what, |_| {})
}

/// Spawns `c`, lets `feed` write to it, then waits for its first line of stdout.
fn spawn_and_read_line_with(
    mut c: Command,
    what: &str,
    feed: impl FnOnce(&mut Child),
) -> (Child, String, Option<BufReader<ChildStdout>>) {
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    feed(&mut child);
    let out = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = mpsc::channel();
    // A thread, because a pipe has no read timeout.
    std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send((line, reader));
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok((line, reader)) => (child, line.trim_end().to_string(), Some(reader)),
        Err(_) => {
            stop_child(child);
            panic!("{what} printed nothing within {START_TIMEOUT:?}");
        }
    }
}

/// SIGTERM to the child's process group, SIGKILL if it lingers, and reap it.
fn stop_child(mut child: Child) {
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; make sure nothing else of its group stays behind.
            let _ = killpg(group, Signal::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------
// The tests.

const HOST: &str = "git.example.com";
const USER: &str = "alice";
/// Distinctive, so that any leak of it into a log, a file or an answer is found.
const PASSWORD: &str = "ss-Pa55word-7f3e9a1c";
const CRED: PlainCred = PlainCred {
    host: HOST,
    user: USER,
    password: PASSWORD,
};

/// A sandbox with no store forced, git set up to use the client, on `ss`'s bus.
pub fn sandbox_on(ss: &SecretServiceSession) -> Sandbox {
    let mut sb = Sandbox::bare();
    sb.configure_git_helper(&client_bin().display().to_string());
    ss.attach(&mut sb);
    sb
}

#[track_caller]
fn status_json(sb: &Sandbox) -> serde_json::Value {
    let out = sb
        .ctl()
        .args(["status", "--json"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        !text.contains(PASSWORD),
        "status --json shows the secret:\n{text}"
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{text}"))
}

#[track_caller]
fn store_status(sb: &Sandbox) -> serde_json::Value {
    let status = status_json(sb);
    assert_eq!(
        status["running"], true,
        "the daemon should be running: {status:#}"
    );
    status["daemon"]["store"].clone()
}

#[track_caller]
fn remembered_store(sb: &Sandbox) -> serde_json::Value {
    let path = sb.helperd_home().join("state/store.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the store choice {} is missing: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

/// The keyring namespace of this sandbox (src/store/choice.rs `keyring_service`).
fn keyring_service(sb: &Sandbox) -> String {
    format!("helperd:{}", sb.helperd_home().display())
}

#[track_caller]
fn assert_no_file_store(sb: &Sandbox) {
    let secrets = sb.helperd_home().join("data/secrets.enc");
    assert!(
        !secrets.exists(),
        "{} was written although the store of record is the Secret Service",
        secrets.display()
    );
    let key = sb.helperd_home().join("data/secrets.key");
    assert!(
        !key.exists(),
        "{} was created although the store of record is the Secret Service",
        key.display()
    );
}

#[track_caller]
fn assert_log_has_no_secret(sb: &Sandbox) {
    let log = sb.log();
    assert!(
        !log.is_empty(),
        "the daemon log {} is empty: the leak check would prove nothing",
        sb.log_file().display()
    );
    assert!(
        !log.contains(PASSWORD),
        "the daemon log holds the secret:\n{log}"
    );
}

#[test]
fn first_start_chooses_the_secret_service_and_remembers_it() {
    let ss = SecretServiceSession::start();
    let sb = sandbox_on(&ss);

    let out = sb
        .ctl()
        .args(["daemon", "start"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    let store = store_status(&sb);
    assert_eq!(store["kind"], "secret-service", "store status: {store:#}");
    assert_eq!(store["state"], "ok", "store status: {store:#}");
    assert_eq!(store["protection"], "OS keyring", "store status: {store:#}");

    let choice = remembered_store(&sb);
    assert_eq!(choice["kind"], "secret-service", "store.json: {choice:#}");
    assert_eq!(
        choice["keyring_service"],
        keyring_service(&sb).as_str(),
        "store.json: {choice:#}"
    );
    assert_no_file_store(&sb);
}

#[test]
fn stores_serves_and_erases_like_the_file_store() {
    let ss = SecretServiceSession::start();
    let sb = sandbox_on(&ss);

    CRED.approve(&sb);
    CRED.assert_served(&sb);

    let out = sb.credential("reject", &CRED.credential());
    assert_ok(&out);
    CRED.fill_misses(&sb);

    // Stored again after an erase: the keyring item is written anew, not stuck deleted.
    CRED.approve(&sb);
    CRED.assert_served(&sb);
    assert_eq!(store_status(&sb)["plain_credentials"], 1);
    assert_no_file_store(&sb);
}

#[test]
fn credentials_survive_a_killed_daemon_and_live_in_the_keyring() {
    let ss = SecretServiceSession::start();
    let sb = sandbox_on(&ss);

    CRED.approve(&sb);
    let killed = sb.kill_daemon(Signal::SIGKILL);
    CRED.assert_served(&sb);
    let restarted = sb.daemon_pid().expect("the client restarted the daemon");
    assert_ne!(killed, restarted, "the daemon should be a new process");

    // Really in the keyring, under this sandbox's namespace.
    let service = keyring_service(&sb);
    let out = ss.secret_tool(&["search", "--all", "service", &service], b"");
    assert_ok(&out);
    let items = stdout(&out);
    assert!(
        items.contains("secret = ") && items.contains(PASSWORD),
        "secret-tool finds no item holding the credential under service={service}\n\
         stdout: {items}\nstderr: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("attribute.username = plain-credentials"),
        "the item is not filed under the plain-credentials key\nstderr: {}",
        stderr(&out)
    );
    assert_no_file_store(&sb);
    assert_eq!(remembered_store(&sb)["kind"], "secret-service");
}

#[test]
fn an_unreachable_remembered_keyring_is_an_error_never_a_silent_switch() {
    let mut ss = SecretServiceSession::start();
    let mut sb = sandbox_on(&ss);
    CRED.approve(&sb);
    assert_eq!(remembered_store(&sb)["kind"], "secret-service");

    let out = sb
        .ctl()
        .args(["daemon", "stop"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    ss.stop();

    // The client starts a daemon, which cannot reach the remembered store.
    let out = CRED.fill_misses(&sb);
    assert_unreachable_message(&stderr(&out));

    let store = store_status(&sb);
    assert_eq!(store["state"], "unavailable", "store status: {store:#}");
    assert_eq!(
        store["kind"], "secret-service",
        "status names the remembered store"
    );
    let problem = store["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("secret-service") && problem.contains("HELPERD_STORE=file"),
        "the status problem should name the store and the way out: {store:#}"
    );
    assert_no_file_store(&sb);
    assert_eq!(
        remembered_store(&sb)["kind"],
        "secret-service",
        "the remembered choice must not change"
    );

    // No session at all (no DBUS_SESSION_BUS_ADDRESS): the same error, still no switch.
    let out = sb
        .ctl()
        .args(["daemon", "stop"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    sb.env_remove.push("DBUS_SESSION_BUS_ADDRESS".into());
    let out = CRED.fill_misses(&sb);
    assert_unreachable_message(&stderr(&out));
    assert_no_file_store(&sb);
    assert_eq!(remembered_store(&sb)["kind"], "secret-service");

    // The keyring comes back (same HOME, so the same keyring files): nothing was lost. The
    // running daemon reopens the store on the next request; a new one does too.
    sb.env_remove.clear();
    let out = sb
        .ctl()
        .args(["daemon", "stop"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    let out = CRED.fill_misses(&sb);
    assert_unreachable_message(&stderr(&out));
    ss.resume();
    CRED.assert_served(&sb);
    assert_eq!(store_status(&sb)["state"], "ok");
    sb.kill_daemon(Signal::SIGKILL);
    CRED.assert_served(&sb);
    assert_no_file_store(&sb);
}

/// The client's one line for git when the remembered keyring does not answer.
#[track_caller]
fn assert_unreachable_message(stderr: &str) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("helperd: "))
        .unwrap_or_else(|| panic!("the client printed no helperd line\nstderr: {stderr}"));
    assert!(
        line.contains("secret-service") && line.contains("unavailable"),
        "the message should name the unreachable store: {line}"
    );
    assert!(
        line.contains("HELPERD_STORE=file"),
        "the message should name the way out (HELPERD_STORE=file): {line}"
    );
    assert!(
        !line.contains(PASSWORD),
        "the message holds the secret: {line}"
    );
}

#[test]
fn the_secret_never_reaches_the_log_or_status() {
    let ss = SecretServiceSession::start();
    let sb = sandbox_on(&ss);

    CRED.approve(&sb);
    CRED.assert_served(&sb);
    sb.kill_daemon(Signal::SIGKILL);
    CRED.assert_served(&sb);
    let out = sb.credential("reject", &CRED.credential());
    assert_ok(&out);

    // `status_json` checks the JSON itself; the human form too.
    let store = store_status(&sb);
    assert_eq!(store["kind"], "secret-service");
    let out = sb.ctl().arg("status").output().expect("helperctl runs");
    assert_ok(&out);
    assert!(
        !stdout(&out).contains(PASSWORD),
        "status shows the secret:\n{}",
        stdout(&out)
    );
    assert!(
        sb.log().contains("store of record open"),
        "the log should show the traced store work:\n{}",
        sb.log()
    );
    assert_log_has_no_secret(&sb);
}
