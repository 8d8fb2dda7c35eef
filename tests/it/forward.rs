//! Forwarding over SSH (DESIGN.md §11), with a real OpenSSH server started by the test on
//! 127.0.0.1 (its own host key, config and authorized key; never the machine's sshd or
//! keys) and `ssh -R` to the laptop's forward socket. The "remote" side is the same
//! machine under a separate HOME and a bare environment (`env -i`), so it sees only the
//! forwarded socket.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::expiry::pty_run;
use crate::git_server::{Account, GitServer};
use crate::util::{
    add_runtime, assert_contains, assert_lacks, assert_ok, audit_json, client_bin, ctl, ctl_ok,
    run_with_stdin, stderr, stdout, value, wait_until, Sandbox,
};

const TOKEN_FWD: &str = "ghp_forwardedTokenAbc123";
const TOKEN_HOME: &str = "ghp_homeOnlyTokenXyz789";
const TOKEN_NEW: &str = "ghp_renewedThroughTheForward42";
const PLAIN_PW: &str = "plain-pw-NeverForwarded7";
const USER: &str = "x-access-token";

/// A private sshd on 127.0.0.1, for this test only.
struct SshServer {
    dir: PathBuf,
    port: u16,
    child: Child,
}

fn require(tool: &str, package: &str) {
    assert!(
        Path::new(tool).exists() || which(tool),
        "the forwarding tests need {tool} (package {package}); scripts/test.sh installs it"
    );
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl SshServer {
    fn start(dir: &Path) -> SshServer {
        require("/usr/sbin/sshd", "openssh-server");
        require("ssh", "openssh-client");
        assert!(
            nix::unistd::geteuid().is_root(),
            "the forwarding tests start sshd, which needs root (CI runs as root)"
        );
        let dir = dir.join("sshd");
        fs::create_dir_all(&dir).unwrap();
        for key in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .output()
                .expect("ssh-keygen runs");
            assert_ok(&out);
        }
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        // Privilege separation wants this folder; it is the package's own, not ours.
        fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n\
             AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n",
            d = dir.display()
        );
        fs::write(dir.join("sshd_config"), config).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd starts");
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "sshd listens on {port}");
        SshServer { dir, port, child }
    }

    /// `ssh` to the server as root with `-R remote:local`, running `remote_command`.
    fn ssh(&self, remote: &Path, local: &Path, tty: bool) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-i"])
            .arg(self.dir.join("user_key"))
            .args(["-p", &self.port.to_string()])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .args(["-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR"])
            .arg("-R")
            .arg(format!("{}:{}", remote.display(), local.display()));
        if tty {
            c.arg("-tt");
        }
        c.arg("root@127.0.0.1");
        c
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two git hosts (two ports): one whose runtime is forwarded, one whose is not.
struct Fixture {
    sb: Sandbox,
    fwd: GitServer,
    home: GitServer,
    ssh: SshServer,
    /// The forward's end on the "remote machine".
    remote_socket: PathBuf,
    remote_home: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let sb = Sandbox::new();
        let root = sb.dir.path();
        for d in ["repos-fwd", "repos-home", "remote-home"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        let fwd = GitServer::start(
            &root.join("repos-fwd"),
            vec![Account::new("/", USER, TOKEN_FWD)],
        );
        let home = GitServer::start(
            &root.join("repos-home"),
            vec![Account::new("/", USER, TOKEN_HOME)],
        );
        fwd.create_bare_repo("team/app.git");
        home.create_bare_repo("me/private.git");
        let add = |name: &str, url: &str, forward: bool| {
            let mut args = vec!["runtime", "add", name, "--provider", "github", "--url", url];
            if forward {
                args.push("--forward");
            }
            ctl_ok(&sb, &args);
        };
        add("fwd", &format!("{}/", fwd.base_url()), true);
        add("home", &format!("{}/", home.base_url()), false);
        token_set(&sb, "fwd", TOKEN_FWD);
        token_set(&sb, "home", TOKEN_HOME);
        assert_ok(&sb.credential(
            "approve",
            &format!("protocol=https\nhost=plain.example\nusername=bob\npassword={PLAIN_PW}\n"),
        ));
        let ssh = SshServer::start(root);
        let forward = forward_socket(&sb);
        assert!(
            wait_until(Duration::from_secs(10), || forward.exists()),
            "the daemon opens {} while a runtime is forwarded",
            forward.display()
        );
        Fixture {
            remote_socket: root.join("remote-home").join("forward.sock"),
            remote_home: root.join("remote-home"),
            sb,
            fwd,
            home,
            ssh,
        }
    }

    /// A shell command for the remote side: a bare environment with its own HOME, git
    /// set up as `helperctl forward` says (the client with `--socket`).
    fn remote(&self, script: &str) -> String {
        format!(
            "cd {home} && env -i HOME={home} PATH=/usr/local/bin:/usr/bin:/bin TERM=dumb \
             GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=R GIT_AUTHOR_EMAIL=r@example.invalid \
             GIT_COMMITTER_NAME=R GIT_COMMITTER_EMAIL=r@example.invalid \
             GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=credential.helper \
             GIT_CONFIG_VALUE_0='{client} --socket {sock}' \
             sh -c '{script}'",
            home = self.remote_home.display(),
            client = client_bin().display(),
            sock = self.remote_socket.display(),
        )
    }

    /// Runs `script` on the remote side through `ssh -R`, without a terminal.
    fn run_remote(&self, script: &str) -> Output {
        let mut c = self
            .ssh
            .ssh(&self.remote_socket, &forward_socket(&self.sb), false);
        c.arg(self.remote(script)).env("GIT_TERMINAL_PROMPT", "0");
        run_with_stdin(c, b"")
    }

    /// Every file the laptop's helperd wrote, and what the remote side printed.
    fn assert_no_secret_leaked(&self, outputs: &[&Output], secrets: &[&str]) {
        let mut texts = vec![self.sb.log()];
        for file in crate::util::files_under(&self.sb.helperd_home().join("state")) {
            texts.push(String::from_utf8_lossy(&fs::read(&file).unwrap_or_default()).into_owned());
        }
        for out in outputs {
            texts.push(stdout(out) + &stderr(out));
        }
        for text in &texts {
            for secret in secrets {
                assert_lacks(
                    text,
                    secret,
                    "the daemon's files and the remote side's output",
                );
            }
        }
    }
}

fn forward_socket(sb: &Sandbox) -> PathBuf {
    sb.socket().with_file_name("forward.socket")
}

fn token_set(sb: &Sandbox, runtime: &str, token: &str) {
    let mut c = sb.ctl();
    c.args(["token", "set", runtime, "--offline"]);
    assert_ok(&run_with_stdin(c, token.as_bytes()));
}

#[test]
fn a_remote_machine_clones_and_pushes_with_the_forwarded_runtime_only() {
    let f = Fixture::new();
    let app = f.fwd.url("team/app.git");
    let out = f.run_remote(&format!(
        "git clone -q {app} work && cd work && echo hi > f && git add f && git commit -qm one && git push -q origin HEAD:main"
    ));
    assert_ok(&out);
    let sent: Vec<_> = f
        .fwd
        .auth_log()
        .into_iter()
        .filter_map(|a| a.credentials)
        .collect();
    assert!(!sent.is_empty(), "git on the remote side sent credentials");
    for (user, password) in &sent {
        assert_eq!((user.as_str(), password.as_str()), (USER, TOKEN_FWD));
    }

    // The runtime that is not forwarded, and a plain credential: nothing, and the same
    // words for both (the remote side learns nothing about what exists).
    let private = f.home.url("me/private.git");
    let refused_runtime = f.run_remote(&format!("echo url={private} | git credential fill"));
    assert!(
        !refused_runtime.status.success(),
        "nothing filled for the home runtime"
    );
    let refused_plain =
        f.run_remote("printf \"protocol=https\\nhost=plain.example\\n\" | git credential fill");
    assert!(
        !refused_plain.status.success(),
        "nothing filled for a plain credential"
    );
    let words = |o: &Output| {
        stderr(o)
            .lines()
            .find(|l| l.starts_with("helperd:"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("a helperd notice: {}", stderr(o)))
    };
    assert_contains(
        &words(&refused_runtime),
        "nothing is forwarded for this URL",
        "the notice",
    );
    assert_eq!(
        words(&refused_runtime),
        words(&refused_plain),
        "the same words"
    );
    assert_lacks(
        &stderr(&refused_runtime),
        "home",
        "the notice names no runtime",
    );
    assert!(
        f.home.auth_log().iter().all(|a| a.credentials.is_none()),
        "the home host never saw a credential"
    );

    // helperctl's requests are refused through the forward.
    let mut raw = UnixStream::connect(forward_socket(&f.sb)).unwrap();
    raw.write_all(b"{\"v\":2,\"op\":\"status\"}\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert_contains(&answer, "forbidden", "status through the forward socket");
    assert_lacks(&answer, "\"runtimes\"", "status through the forward socket");

    // Audited as forwarded; status counts them.
    let events = audit_json(&f.sb, &[]);
    let forwarded: Vec<_> = events.iter().filter(|e| e["via"] == "forward").collect();
    assert!(
        forwarded
            .iter()
            .any(|e| e["event"] == "served" && e["runtime"] == "fwd"),
        "a served event via forward: {events:#?}"
    );
    assert!(
        forwarded
            .iter()
            .any(|e| e["event"] == "refused" && e["reason"] == "not forwarded"),
        "the refusals are audited: {events:#?}"
    );
    let status = crate::util::status_json(&f.sb);
    let fw = &status["daemon"]["forward"];
    assert_eq!(fw["open"], true, "{fw:#}");
    assert!(fw["served"].as_u64().unwrap_or(0) >= 3, "{fw:#}");
    f.assert_no_secret_leaked(
        &[&out, &refused_runtime, &refused_plain],
        &[TOKEN_FWD, TOKEN_HOME, PLAIN_PW],
    );
}

#[test]
fn the_renewal_prompt_works_through_the_forward_in_the_remote_terminal() {
    let f = Fixture::new();
    // The forwarded token expires; the host now wants the new one.
    let expires = crate::util::unix_now() + 60;
    let mut c = f.sb.ctl();
    c.args(["token", "set", "fwd", "--offline", "--expires"])
        .arg(helperd::timefmt::format_rfc3339(expires));
    assert_ok(&run_with_stdin(c, TOKEN_FWD.as_bytes()));
    f.sb.advance_clock_past(expires);
    f.fwd.set_accounts(vec![Account::new("/", USER, TOKEN_NEW)]);

    let app = f.fwd.url("team/app.git");
    let mut ssh = f.ssh.ssh(&f.remote_socket, &forward_socket(&f.sb), true);
    ssh.arg(f.remote(&format!("git clone -q {app} work && echo CLONED")));
    let program = ssh.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = ssh
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut argv = vec![program.as_str()];
    argv.extend(args.iter().map(String::as_str));
    let steps = json!([
        {"expect": "New token for runtime fwd", "unless": ["Username for", "Password for"],
         "echo_off": true, "send": format!("{TOKEN_NEW}\n")},
        {"expect": "When does it expire?", "unless": ["Username for", "Password for"],
         "send": "\n"},
        {"expect": "CLONED", "unless": ["Username for", "Password for"]},
    ]);
    let run = pty_run(&f.sb, f.sb.dir.path(), steps, &argv);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_lacks(
        &run.transcript,
        TOKEN_NEW,
        "the remote terminal (echo was off)",
    );
    let token = &crate::util::status_json(&f.sb)["daemon"]["runtimes"][0]["token"];
    assert_eq!(
        token["state"], "valid",
        "the laptop has the new token: {token:#}"
    );
    let events = audit_json(&f.sb, &[]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "renewed" && e["via"] == "forward" && e["runtime"] == "fwd"),
        "the renewal is audited as forwarded: {events:#?}"
    );
}

#[test]
fn a_connection_killed_mid_request_ends_the_remote_client_and_the_daemon_goes_on() {
    let f = Fixture::new();
    let pid = f.sb.daemon_pid().expect("the daemon runs");
    let done = f.remote_home.join("client.done");
    // The remote client runs detached from the session, so that it outlives the SSH
    // connection and records how it ended.
    // In a file of its own (it is the same machine), started with setsid: the session's
    // hang-up must not be what ends it.
    let detached = f.remote_home.join("ask.sh");
    fs::write(
        &detached,
        format!(
            "printf 'protocol=http\\nhost=127.0.0.1:{port}\\n' | {client} --socket {sock} get > {home}/client.out 2> {home}/client.err\necho $? > {done}\n",
            port = f.fwd.port(),
            client = client_bin().display(),
            sock = f.remote_socket.display(),
            home = f.remote_home.display(),
            done = done.display(),
        ),
    )
    .unwrap();
    let script = format!(
        "setsid sh {} < /dev/null > /dev/null 2>&1 & sleep 30",
        detached.display()
    );
    // The daemon is frozen: the request stays unanswered while the connection dies.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let mut ssh = f.ssh.ssh(&f.remote_socket, &forward_socket(&f.sb), false);
    ssh.arg(f.remote(&script))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut session = ssh.spawn().expect("ssh starts");
    let asked = wait_until(Duration::from_secs(10), || {
        fs::read_dir(&f.remote_home)
            .is_ok_and(|d| d.flatten().any(|e| e.file_name() == "client.err"))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(asked, "the remote client started");
    let killed = Instant::now();
    session.kill().unwrap();
    let _ = session.wait();
    let ended = wait_until(Duration::from_secs(15), || done.exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    assert!(ended, "the remote client ended after the connection died");
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "within the timeout ({:?})",
        killed.elapsed()
    );
    assert_eq!(
        fs::read_to_string(&done).unwrap().trim(),
        "0",
        "exit 0: git goes on"
    );
    let err = fs::read_to_string(f.remote_home.join("client.err")).unwrap();
    assert_contains(&err, "helperd:", "the remote client's one line");
    // It had reached the daemon (the request was under way), not found nothing there.
    assert_lacks(&err, "no helperd is forwarded", "the remote client's line");
    assert_contains(
        &err,
        "without a complete answer",
        "the remote client's line",
    );
    assert_eq!(
        fs::read_to_string(f.remote_home.join("client.out")).unwrap(),
        "",
        "nothing for git"
    );
    // The laptop's daemon is the same one, and serves.
    assert_eq!(f.sb.daemon_pid(), Some(pid));
    let out =
        f.sb.credential("fill", &format!("url={}\n", f.fwd.url("team/app.git")));
    assert_ok(&out);
    assert_eq!(value(&stdout(&out), "password").as_deref(), Some(TOKEN_FWD));
}

#[test]
fn the_policy_closes_the_forward_socket_and_the_client_never_starts_a_daemon() {
    let mut f = Fixture::new();
    let forward = forward_socket(&f.sb);
    assert!(forward.exists());
    let dir = f.sb.dir.path().join("policy");
    fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let policy = dir.join("policy.toml");
    fs::write(&policy, "allow_forwarding = false\n").unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
    // The policy is named at the daemon's start (HELPERD_POLICY): restart with it.
    f.sb.env
        .push(("HELPERD_POLICY".into(), policy.display().to_string()));
    ctl_ok(&f.sb, &["daemon", "restart"]);
    assert!(
        wait_until(Duration::from_secs(5), || crate::util::status_json(&f.sb)
            ["daemon"]["forward"]["closed_because"]
            .is_string()),
        "status says why it is closed"
    );
    assert!(
        !forward.exists(),
        "no forward socket under allow_forwarding = false"
    );
    let fw = &crate::util::status_json(&f.sb)["daemon"]["forward"];
    assert_eq!(fw["open"], false);
    assert_contains(
        fw["closed_because"].as_str().unwrap(),
        "allow_forwarding = false",
        "status",
    );

    // The remote client with nothing forwarded: one line, exit 0, no daemon started.
    let lonely = Sandbox::new();
    let mut c = lonely.client();
    c.args(["--socket", &f.remote_socket.display().to_string(), "get"]);
    let out = run_with_stdin(c, b"protocol=https\nhost=example.com\n");
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_contains(
        &err,
        "no helperd is forwarded on this connection",
        "the client",
    );
    assert_eq!(lonely.daemon_pid(), None, "--socket never starts a daemon");
}

#[test]
fn helperctl_forward_prints_and_installs_the_ssh_block_and_runtime_set_toggles_it() {
    let sb = Sandbox::new();
    add_runtime(&sb, "acme", "github", "https://github.com/acme/");
    let printed = ctl_ok(&sb, &["forward", "devbox"]);
    let local = forward_socket(&sb);
    assert_contains(
        &printed,
        &format!(
            "RemoteForward /tmp/helperd-forward-%r.sock {}",
            local.display()
        ),
        "helperctl forward",
    );
    assert_contains(&printed, "StreamLocalBindUnlink yes", "helperctl forward");
    assert_contains(
        &printed,
        "--socket /tmp/helperd-forward-$USER.sock",
        "the remote command",
    );
    assert_contains(&printed, "no runtime is marked forward = true", "the hint");

    let ssh_config = sb.home().join(".ssh").join("config");
    fs::create_dir_all(ssh_config.parent().unwrap()).unwrap();
    let mine = "# my hosts\nHost work\n    User me\n";
    fs::write(&ssh_config, mine).unwrap();
    ctl_ok(&sb, &["forward", "devbox", "--install"]);
    let text = fs::read_to_string(&ssh_config).unwrap();
    assert!(
        text.starts_with(mine),
        "the other lines stay byte for byte:\n{text}"
    );
    assert_contains(&text, "Host devbox\n", "~/.ssh/config");
    let again = ctl(&sb, &["forward", "devbox", "--install"]);
    assert!(
        !again.status.success(),
        "a second block for devbox is refused"
    );
    assert_contains(
        &stderr(&again),
        "already has a `Host devbox` block",
        "the refusal",
    );
    assert_eq!(
        fs::read_to_string(&ssh_config).unwrap(),
        text,
        "nothing changed"
    );
    let bad = ctl(&sb, &["forward", "devbox", "--remote-socket", "~/fwd.sock"]);
    assert!(!bad.status.success(), "a relative remote path is refused");

    // runtime set turns forwarding on and off; the daemon opens and closes the socket.
    ctl_ok(&sb, &["daemon", "start"]);
    assert!(
        !local.exists(),
        "no forward socket without a forwarded runtime"
    );
    ctl_ok(&sb, &["runtime", "set", "acme", "--forward"]);
    assert!(
        wait_until(Duration::from_secs(5), || local.exists()),
        "opened"
    );
    let list: serde_json::Value =
        serde_json::from_str(&ctl_ok(&sb, &["runtime", "list", "--json"])).unwrap();
    assert_eq!(list[0]["forward"], true);
    ctl_ok(&sb, &["runtime", "set", "acme", "--no-forward"]);
    assert!(
        wait_until(Duration::from_secs(5), || !local.exists()),
        "closed"
    );
    let missing = ctl(&sb, &["runtime", "set", "nosuch", "--forward"]);
    assert!(!missing.status.success());
}

/// A socket at the forward's path that someone else put there (a shared /tmp on the
/// remote machine) gets nothing: git's request may carry a password.
#[test]
fn the_client_sends_nothing_to_a_socket_that_is_not_its_own() {
    let (uid, gid) = crate::util::other_user();
    let sb = Sandbox::new();
    let squatted = sb.dir.path().join("squatted.sock");
    let listener = std::os::unix::net::UnixListener::bind(&squatted).unwrap();
    listener.set_nonblocking(true).unwrap();
    nix::unistd::chown(
        &squatted,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .unwrap();
    let mut c = sb.client();
    c.args(["--socket", &squatted.display().to_string(), "store"]);
    let out = run_with_stdin(
        c,
        format!("protocol=https\nhost=example.com\nusername=u\npassword={PLAIN_PW}\n").as_bytes(),
    );
    assert_ok(&out);
    assert_contains(
        &stderr(&out),
        &format!("belongs to uid {uid}"),
        "the client",
    );
    assert_contains(&stderr(&out), "nothing was sent", "the client");
    assert!(
        listener.accept().is_err(),
        "the client did not even connect to someone else's socket"
    );
}
