//! The daemon's life: socket and folder modes, one daemon per socket, stale sockets,
//! signals, auto-start, peers of another uid, hardening.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::util::other_user;
use crate::util::{self, assert_ok, stderr, stdout, value, wait_until, Sandbox};

const ALICE: &str = "protocol=https\nhost=example.com\nusername=alice\npassword=pw-daemon-1\n";
const QUERY: &str = "protocol=https\nhost=example.com\n";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("path exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn socket_folder_is_0700_and_socket_is_0600() {
    let sb = Sandbox::new();
    assert_ok(&sb.credential("approve", ALICE));
    assert_eq!(mode(&sb.helperd_home().join("run")), 0o700);
    assert_eq!(mode(&sb.socket()), 0o600);
    assert_eq!(mode(&sb.helperd_home().join("state")), 0o700);
    assert_eq!(mode(&sb.helperd_home().join("data")), 0o700);
}

/// A folder opened to others after the daemon started is named in `status` (the daemon
/// refuses such folders at start; on Windows, where the profile's ACL protects them, this
/// is the only check).
#[test]
fn status_names_a_data_folder_others_can_reach() {
    let sb = Sandbox::new();
    assert_ok(&sb.credential("approve", ALICE));
    let status = util::status_json(&sb);
    assert!(
        status["daemon"].get("exposed_folders").is_none(),
        "{status}"
    );
    let data = sb.helperd_home().join("data");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = util::status_json(&sb);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let exposed = status["daemon"]["exposed_folders"].to_string();
    assert!(
        exposed.contains(&*data.to_string_lossy()) && exposed.contains("mode 0755"),
        "{status}"
    );
    let human = util::ctl_ok(&sb, &["status"]);
    assert!(!human.contains("exposed folder"), "closed again: {human}");
}

#[test]
fn an_existing_loose_socket_folder_is_refused_with_the_fix() {
    let sb = Sandbox::new();
    let run = sb.helperd_home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = sb.daemon().arg("--foreground").output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("chmod 700") && err.contains(&run.display().to_string()),
        "{err}"
    );
    assert!(!sb.socket().exists());

    // git's helper call: one clear line, exit 0, nothing on stdout; git falls back.
    let out = sb.client_run(&["get"], QUERY.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("helperd:") && err.contains("chmod 700"),
        "{err}"
    );
}

#[test]
fn a_second_daemon_says_one_is_running_and_fails() {
    let sb = Sandbox::new();
    assert_ok(&sb.ctl().args(["daemon", "start"]).output().unwrap());
    let first = sb.daemon_pid().expect("daemon running");

    let out = sb.daemon().output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("already running") && err.contains(&first.to_string()),
        "{err}"
    );
    assert_eq!(
        sb.daemon_pid(),
        Some(first),
        "the first daemon keeps running"
    );
}

#[test]
fn foreground_prints_ok_once_it_listens() {
    let sb = Sandbox::new();
    let mut child = sb
        .daemon()
        .arg("--foreground")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ok\n");
    assert!(sb.socket().exists(), "socket exists once ok is printed");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_and_sigint_close_and_remove_the_socket() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let sb = Sandbox::new();
        assert_ok(&sb.ctl().args(["daemon", "start"]).output().unwrap());
        assert!(sb.socket().exists());
        sb.kill_daemon(signal);
        assert!(!sb.socket().exists(), "{signal}: socket removed");
        assert!(sb.log().contains("shutting down"), "{}", sb.log());
    }
}

#[test]
fn a_stale_socket_left_by_a_killed_daemon_is_reclaimed() {
    let sb = Sandbox::new();
    assert_ok(&sb.credential("approve", ALICE));
    let old = sb.kill_daemon(Signal::SIGKILL);
    assert!(sb.socket().exists(), "SIGKILL leaves the socket behind");

    let out = sb.credential("fill", QUERY);
    assert_ok(&out);
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-daemon-1")
    );
    let new = sb.daemon_pid().expect("a new daemon");
    assert_ne!(new, old);
    assert!(
        sb.log().contains("reclaimed a stale socket"),
        "{}",
        sb.log()
    );
}

#[test]
fn the_client_starts_the_daemon_when_none_listens() {
    let sb = Sandbox::new();
    assert_eq!(sb.daemon_pid(), None);
    let out = sb.client_run(&["get"], QUERY.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "",
        "a miss prints nothing, even on first start"
    );
    assert!(sb.daemon_pid().is_some());
}

#[test]
fn helperctl_daemon_stop_and_restart() {
    let sb = Sandbox::new();
    assert_ok(&sb.ctl().args(["daemon", "start"]).output().unwrap());
    let first = sb.daemon_pid().unwrap();
    assert_ok(&sb.ctl().args(["daemon", "restart"]).output().unwrap());
    let second = sb.daemon_pid().unwrap();
    assert_ne!(first, second);
    assert!(!util::process_alive(first));
    assert_ok(&sb.ctl().args(["daemon", "stop"]).output().unwrap());
    assert!(wait_until(Duration::from_secs(5), || !util::process_alive(
        second
    )));
    let out = sb.ctl().args(["status"]).output().unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("not running"), "{}", stdout(&out));
}

#[test]
fn core_dumps_are_disabled_in_the_daemon() {
    let sb = Sandbox::new();
    assert_ok(&sb.ctl().args(["daemon", "start"]).output().unwrap());
    let pid = sb.daemon_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("limits lists the core size");
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

#[test]
fn a_connection_from_another_uid_is_refused_and_logged() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to create a second user (CI runs as root)"
    );
    let sb = Sandbox::new();
    assert_ok(&sb.credential("approve", ALICE));
    let (uid, gid) = other_user();

    // Open the path on purpose so the peer check is what stops the other user.
    for dir in [
        sb.dir.path().to_path_buf(),
        sb.helperd_home(),
        sb.helperd_home().join("run"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(sb.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy inside the sandbox: the checkout itself may not be reachable by that user.
    let client = sb.dir.path().join("git-credential-helperd");
    std::fs::copy(util::client_bin(), &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
    ])
    .arg(&client)
    .arg("get")
    .env_clear()
    .env("HELPERD_SOCKET", sb.socket())
    .env("HOME", "/nonexistent");
    let out = util::run_with_stdin(cmd, QUERY.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "no credential for another user");
    assert!(
        stderr(&out).contains("belongs to another user"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("pw-daemon-1"));
    let log = sb.log();
    assert!(
        log.contains("refused a connection from another user")
            && log.contains(&format!("peer_uid={uid}")),
        "{log}"
    );
}

/// systemd socket activation, done the way systemd does it: a listening socket on fd 3,
/// LISTEN_PID and LISTEN_FDS set for the daemon's own pid (Python plays systemd here).
#[test]
fn the_daemon_accepts_a_socket_passed_by_systemd() {
    let sb = Sandbox::new();
    let run = sb.helperd_home().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let activator = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDS"] = "1"
os.execv(sys.argv[2], [sys.argv[2], "--foreground"])
"#;
    let mut child = sb
        .command("python3")
        .args(["-c", activator])
        .arg(sb.socket())
        .arg(util::daemon_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ok\n");

    assert_ok(&sb.credential("approve", ALICE));
    let out = sb.credential("fill", QUERY);
    assert_ok(&out);
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-daemon-1")
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        sb.socket().exists(),
        "systemd owns the socket file; the daemon leaves it"
    );
}

/// HELPERD_HOME on a small filesystem of its own, unmounted (after the daemon stops) when
/// the test ends.
struct SmallDisk<'a> {
    sb: &'a Sandbox,
    mount: std::path::PathBuf,
}

impl<'a> SmallDisk<'a> {
    fn mount(sb: &'a Sandbox) -> SmallDisk<'a> {
        let mount = sb.helperd_home();
        std::fs::create_dir_all(&mount).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
            .arg(&mount)
            .output()
            .expect("mount runs (the tests run as root, as CI does)");
        assert_ok(&out);
        SmallDisk { sb, mount }
    }

    /// Fills the filesystem to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.mount.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let small = [0u8; 1];
        while f.write_all(&small).is_ok() {}
    }
}

impl Drop for SmallDisk<'_> {
    fn drop(&mut self) {
        let _ = self.sb.ctl().args(["daemon", "stop"]).output();
        if let Some(pid) = self.sb.daemon_pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = std::process::Command::new("umount")
            .arg(&self.mount)
            .output();
    }
}

#[test]
fn a_full_disk_stops_neither_the_daemon_nor_gets_and_loses_nothing() {
    let sb = Sandbox::new();
    let disk = SmallDisk::mount(&sb);
    let stored = "protocol=https\nhost=kept.example\nusername=alice\npassword=pw-KeptOnFullDisk1\n";
    assert_ok(&sb.credential("approve", stored));
    let pid = sb.daemon_pid().expect("the daemon runs");
    disk.fill();
    // Every request logs (HELPERD_LOG=helperd=trace in the tests): none of it fits now.
    for round in 0..30 {
        let out = sb.credential("fill", "protocol=https\nhost=kept.example\n");
        assert_ok(&out);
        assert_eq!(
            value(&stdout(&out), "password").as_deref(),
            Some("pw-KeptOnFullDisk1"),
            "get {round} on a full disk: {}",
            stderr(&out)
        );
    }
    assert_eq!(sb.daemon_pid(), Some(pid), "the same daemon, still running");
    // A write is refused clearly, and what was stored stays.
    let out = sb.credential(
        "approve",
        "protocol=https\nhost=new.example\nusername=bob\npassword=pw-NoRoomForThis2\n",
    );
    assert_contains_any(&stderr(&out), &["No space left", "no space"]);
    let out = sb.credential("fill", "protocol=https\nhost=kept.example\n");
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-KeptOnFullDisk1")
    );
    let status = util::status_json(&sb);
    assert!(
        status["daemon"]["log_lines_lost"].as_u64().unwrap_or(0) > 0,
        "status counts the lost log lines: {status:#}"
    );
}

#[track_caller]
fn assert_contains_any(text: &str, needles: &[&str]) {
    assert!(
        needles.iter().any(|n| text.contains(n)),
        "expected one of {needles:?} in: {text}"
    );
}

/// A symbolic link planted in the state folder (say `audit.log` -> a file of someone
/// else's) is never followed: the target is neither written nor chmodded, and the daemon
/// serves on (the audit problem reaches its log).
#[test]
fn a_link_planted_in_the_state_folder_is_not_followed() {
    let sb = Sandbox::new();
    let state = sb.helperd_home().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = sb.dir.path().join("victim.txt");
    std::fs::write(&target, "untouched\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&target, state.join("audit.log")).unwrap();
    assert_ok(&sb.credential(
        "approve",
        "protocol=https\nhost=linked.example\nusername=a\npassword=pw-Planted1\n",
    ));
    let out = sb.credential("fill", "protocol=https\nhost=linked.example\n");
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-Planted1")
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644,
        "the link's target was not chmodded"
    );
    assert!(
        sb.log().contains("symbolic link"),
        "the daemon says why: {}",
        sb.log()
    );
}
