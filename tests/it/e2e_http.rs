//! End to end: the real git against a real git HTTP server on 127.0.0.1 that demands Basic
//! auth, with helperd as git's credential helper.

use std::path::Path;

use nix::sys::signal::Signal;

use crate::git_server::{Account, GitServer};
use crate::util::{assert_ok, stderr, stdout, Sandbox};

const USER: &str = "alice";
const TOKEN: &str = "tok-e2e-Zx81qk";

/// A GIT_ASKPASS that answers git's prompts and counts them.
fn askpass(sb: &Sandbox) -> std::path::PathBuf {
    let log = sb.dir.path().join("prompts.log");
    sb.script(
        "askpass.sh",
        &format!(
            "echo \"$1\" >> '{log}'\ncase \"$1\" in\n  Username*) echo {USER} ;;\n  *) echo {TOKEN} ;;\nesac",
            log = log.display()
        ),
    )
}

fn prompts(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.dir.path().join("prompts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn git_in(sb: &Sandbox, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = sb.git();
    c.current_dir(dir).args(args);
    if let Some(path) = &askpass_path(sb) {
        c.env("GIT_ASKPASS", path);
    }
    c.output().expect("git runs")
}

fn askpass_path(sb: &Sandbox) -> Option<std::path::PathBuf> {
    let p = sb.dir.path().join("askpass.sh");
    p.exists().then_some(p)
}

fn commit(sb: &Sandbox, work: &Path, name: &str) {
    std::fs::write(work.join(name), name).unwrap();
    assert_ok(&git_in(sb, work, &["add", name]));
    assert_ok(&git_in(sb, work, &["commit", "-q", "-m", name]));
}

#[test]
fn clone_push_daemon_killed_push_again_prompts_only_once() {
    let sb = Sandbox::new();
    askpass(&sb);
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let server = GitServer::start(&repos, vec![Account::new("", USER, TOKEN)]);
    server.create_bare_repo("/private.git");
    let url = server.url("/private.git");

    // First contact: git asks once (its own prompt, here GIT_ASKPASS) and stores via helperd.
    let out = git_in(&sb, sb.dir.path(), &["clone", "-q", &url, "work"]);
    assert_ok(&out);
    assert_eq!(
        prompts(&sb).len(),
        2,
        "username and password asked once: {:?}",
        prompts(&sb)
    );
    let work = sb.dir.path().join("work");

    commit(&sb, &work, "one.txt");
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));

    // The daemon dies hard; the next push must still be silent.
    sb.kill_daemon(Signal::SIGKILL);
    commit(&sb, &work, "two.txt");
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));

    // A new user session after a reboot: the runtime folder (tmpfs) is gone, the daemon too.
    sb.kill_daemon(Signal::SIGKILL);
    std::fs::remove_dir_all(sb.helperd_home().join("run")).unwrap();
    commit(&sb, &work, "three.txt");
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));
    let out = git_in(&sb, &work, &["fetch", "-q", "origin"]);
    assert_ok(&out);

    assert_eq!(
        prompts(&sb).len(),
        2,
        "no prompt after the first: {:?}",
        prompts(&sb)
    );
    let log = server.auth_log();
    let sent_wrong = log
        .iter()
        .filter(|a| a.credentials.is_some() && !a.accepted)
        .count();
    assert_eq!(sent_wrong, 0, "git never sent a wrong credential: {log:?}");
    assert!(log.iter().filter(|a| a.accepted).count() >= 4);

    // What the server has is what we pushed.
    let check = git_in(&sb, sb.dir.path(), &["clone", "-q", &url, "check"]);
    assert_ok(&check);
    for f in ["one.txt", "two.txt", "three.txt"] {
        assert!(sb.dir.path().join("check").join(f).exists(), "{f} pushed");
    }

    // No secret in the daemon's log (trace level), in status, or in git's output.
    let status = sb.ctl().args(["status", "--json"]).output().unwrap();
    assert_ok(&status);
    for (what, text) in [
        ("daemon log", sb.log()),
        ("status --json", stdout(&status)),
        ("git stderr", stderr(&out)),
    ] {
        assert!(
            !text.contains(TOKEN),
            "the token leaked into the {what}:\n{text}"
        );
    }
}

#[test]
fn a_revoked_password_is_erased_after_the_401() {
    let sb = Sandbox::new();
    askpass(&sb);
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let server = GitServer::start(&repos, vec![Account::new("", USER, TOKEN)]);
    server.create_bare_repo("/r.git");
    let url = server.url("/r.git");
    assert_ok(&git_in(&sb, sb.dir.path(), &["clone", "-q", &url, "work"]));

    // The host revokes the token: git's erase removes it from helperd after the 401.
    server.set_accounts(vec![Account::new("", USER, "new-token")]);
    std::fs::remove_file(sb.dir.path().join("askpass.sh")).unwrap();
    let work = sb.dir.path().join("work");
    let out = git_in(&sb, &work, &["fetch", "-q", "origin"]);
    assert!(!out.status.success());

    let query = format!("protocol=http\nhost=127.0.0.1:{}\n", server.port());
    let out = sb.client_run(&["get"], query.as_bytes());
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "the rejected credential is gone");
}
