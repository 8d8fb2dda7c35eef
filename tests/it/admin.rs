//! Admin policy, audit log and support access (issue 6): every policy rule accepting and
//! refusing, a policy file the user could have written refused, the policy reloaded without
//! a restart, the audit trail of every decision (and never a secret in it), a SIGKILL during
//! heavy logging, the redacted support bundle, and read-only support access as another uid.
//! The real binaries, the real git and the local git HTTP server.
//!
//! The policy file of each test is `HELPERD_POLICY` pointing into a fresh folder of the
//! sandbox: the sandbox root is a root-owned 0700 temp folder and the tests run as root (as
//! CI does), so a 0755 folder holding a 0644 file passes the trust rule.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::git_server::{Account, GitServer};
use crate::util::runtime_status;
use crate::util::{self, assert_ok, run_with_stdin, stderr, stdout, wait_until, Sandbox};
use crate::util::{
    add_runtime, assert_contains, assert_lacks, audit_json, ctl_ok, files_under, other_user,
    served, status_json, unix_now, OTHER_USER,
};
use crate::util::{date_of, rfc3339};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The date `days` days from now (helperd reads it as 00:00 UTC that day).
fn date_in(days: u64) -> String {
    date_of((unix_now() / 86_400 + days) * 86_400)
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{} exists: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Points `HELPERD_POLICY` at `policy.toml` in a fresh 0755 folder of the sandbox; the file
/// itself is not written yet (no policy until [`write_policy`]). Call before the daemon
/// starts: the daemon reads the variable once.
fn policy_file(sb: &mut Sandbox) -> PathBuf {
    let dir = sb.dir.path().join("policy");
    fs::create_dir(&dir).expect("a fresh folder in the sandbox");
    set_mode(&dir, 0o755);
    let path = dir.join("policy.toml");
    sb.env
        .push(("HELPERD_POLICY".into(), path.display().to_string()));
    path
}

/// Replaces the policy file (0644) in one rename, as an administrator's tooling would.
fn write_policy(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.new");
    fs::write(&tmp, text).expect("the policy folder is writable by root");
    set_mode(&tmp, 0o644);
    fs::rename(&tmp, path).expect("rename within the policy folder");
}

/// Runs `helperctl ARGS` with `input` on stdin.
fn ctl_in(sb: &Sandbox, args: &[&str], input: &str) -> Output {
    let mut c = sb.ctl();
    c.args(args);
    run_with_stdin(c, input.as_bytes())
}

#[track_caller]
fn assert_ctl_in_ok(sb: &Sandbox, args: &[&str], input: &str) -> String {
    let out = ctl_in(sb, args, input);
    assert!(
        out.status.success(),
        "helperctl {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `--offline` when this helperctl's `token set` has it: then it asks the host whether a
/// token works, and the hosts of these tests are fake (or accept only git).
fn offline() -> &'static [&'static str] {
    static HAS_FLAG: OnceLock<bool> = OnceLock::new();
    let has = *HAS_FLAG.get_or_init(|| {
        let out = Command::new(util::ctl_bin())
            .args(["token", "set", "--help"])
            .output()
            .expect("helperctl runs");
        stdout(&out).contains("--offline")
    });
    if has {
        &["--offline"]
    } else {
        &[]
    }
}

/// `helperctl token set RUNTIME EXTRA...` with the secret on stdin.
fn token_set_output(sb: &Sandbox, runtime: &str, secret: &str, extra: &[&str]) -> Output {
    let mut c = sb.ctl();
    c.args(["token", "set", runtime])
        .args(offline())
        .args(extra);
    run_with_stdin(c, format!("{secret}\n").as_bytes())
}

#[track_caller]
fn token_set(sb: &Sandbox, runtime: &str, secret: &str, extra: &[&str]) {
    let out = token_set_output(sb, runtime, secret, extra);
    assert!(
        out.status.success(),
        "token set {runtime} {extra:?} failed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
}

/// `helperctl token set` that the policy must refuse: exit 1; returns stderr.
#[track_caller]
fn token_set_refused(sb: &Sandbox, runtime: &str, secret: &str, extra: &[&str]) -> String {
    let out = token_set_output(sb, runtime, secret, extra);
    assert_eq!(
        out.status.code(),
        Some(1),
        "token set {runtime} {extra:?} should be refused\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert_lacks(&err, secret, "the refusal");
    err
}

/// `git credential fill` for `url`; `with_path` sends the path (credential.useHttpPath).
fn fill_url(sb: &Sandbox, url: &str, with_path: bool) -> Output {
    let config: &[&str] = if with_path {
        &["credential.useHttpPath=true"]
    } else {
        &[]
    };
    sb.credential_with(config, "fill", &format!("url={url}\n"))
}

fn fill(sb: &Sandbox, url: &str) -> Output {
    fill_url(sb, url, true)
}

#[track_caller]
fn assert_serves(sb: &Sandbox, url: &str, secret: &str) {
    let out = fill(sb, url);
    assert_eq!(
        served(&out).as_deref(),
        Some(secret),
        "{url} must be served its token\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
}

/// Nothing is served for `url`; returns git's stderr (which carries helperd's notice).
#[track_caller]
fn assert_serves_nothing(sb: &Sandbox, url: &str) -> String {
    let out = fill(sb, url);
    assert_eq!(
        served(&out),
        None,
        "{url} must be served nothing\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn audit_dump(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The real path of a binary, as the daemon reads it from `/proc/<pid>/exe`.
fn real_path(path: &Path) -> String {
    fs::canonicalize(path)
        .unwrap_or_else(|e| panic!("{} exists: {e}", path.display()))
        .display()
        .to_string()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// Asserts that no file under `dir` holds any of `secrets` (byte strings, searched raw).
/// Returns how many files were searched.
#[track_caller]
fn assert_no_secret_in_files(dir: &Path, secrets: &[(&str, Vec<u8>)]) -> usize {
    let files = files_under(dir);
    for file in &files {
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("{} readable: {e}", file.display()));
        for (what, secret) in secrets {
            assert!(
                !contains_bytes(&bytes, secret),
                "{what} leaked into {}:\n{}",
                file.display(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    files.len()
}

#[track_caller]
fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to create a second user and to own the policy file (CI runs as \
         root)"
    );
}

/// The other user's side of support access: copies of the binaries in the sandbox that
/// they can run (the checkout may not be reachable by them), the sandbox made passable.
struct Visitor {
    uid: u32,
    gid: u32,
    ctl: PathBuf,
    client: PathBuf,
}

impl Visitor {
    fn new(sb: &Sandbox) -> Visitor {
        let (uid, gid) = other_user();
        set_mode(sb.dir.path(), 0o711);
        let ctl = sb.dir.path().join("helperctl");
        let client = sb.dir.path().join("git-credential-helperd");
        for (from, to) in [(util::ctl_bin(), &ctl), (util::client_bin(), &client)] {
            fs::copy(&from, to).expect("copy a binary into the sandbox");
            set_mode(to, 0o755);
        }
        Visitor {
            uid,
            gid,
            ctl,
            client,
        }
    }

    /// `program ARGS` as the other user, with an empty environment but for PATH, HOME and
    /// HELPERD_SOCKET.
    fn run(&self, socket: &Path, program: &Path, args: &[&str], input: &str) -> Output {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "env", "-i", "PATH=/usr/bin:/bin"])
            .arg(format!("HELPERD_SOCKET={}", socket.display()))
            .arg("HOME=/nonexistent")
            .arg(program)
            .args(args)
            .current_dir("/");
        run_with_stdin(c, input.as_bytes())
    }

    fn ctl(&self, socket: &Path, args: &[&str]) -> Output {
        self.run(socket, &self.ctl, args, "")
    }
}

/// The support socket named in `support enable`'s output (`HELPERD_SOCKET=<path> ...`).
#[track_caller]
fn support_socket_of(enable_output: &str) -> PathBuf {
    let path = enable_output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("HELPERD_SOCKET="))
        .unwrap_or_else(|| panic!("support enable prints the socket:\n{enable_output}"));
    PathBuf::from(path)
}

// ---------------------------------------------------------------------------------------
// 1. Each policy rule, accepting and refusing
// ---------------------------------------------------------------------------------------

const TOKEN_POLICY: &str = "ghp_policyRuleTok3nQ7";

#[test]
fn require_expiry_refuses_a_token_without_expiry_and_accepts_one_with() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "require_expiry = true\n");
    add_runtime(&sb, "work", "github", "https://git.example/");

    let err = token_set_refused(&sb, "work", TOKEN_POLICY, &["--name", "no expiry"]);
    assert_contains(&err, &policy.display().to_string(), "the refusal");
    assert_contains(
        &err,
        "requires every token to have an expiry",
        "the refusal",
    );
    assert_contains(&err, "--expires", "the refusal");
    assert_contains(&err, "nothing was stored", "the refusal");
    assert!(
        runtime_status(&sb, "work")["token"].is_null(),
        "nothing was stored"
    );
    assert_serves_nothing(&sb, "https://git.example/o/r.git");

    let expires = date_in(30);
    token_set(
        &sb,
        "work",
        TOKEN_POLICY,
        &["--name", "with expiry", "--expires", &expires],
    );
    assert_serves(&sb, "https://git.example/o/r.git", TOKEN_POLICY);

    let status = status_json(&sb);
    let shown = &status["daemon"]["policy"];
    assert_eq!(shown["path"], policy.display().to_string(), "{status:#}");
    assert_eq!(shown["rules"], serde_json::json!(["require_expiry = true"]));
    assert!(shown["error"].is_null(), "{status:#}");
    let human = ctl_ok(&sb, &["status"]);
    assert_contains(&human, &policy.display().to_string(), "status");
    assert_contains(&human, "require_expiry = true", "status");
}

#[test]
fn max_days_refuses_a_later_expiry_naming_the_latest_allowed_date() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "max_days = 30\n");
    add_runtime(&sb, "work", "github", "https://git.example/");

    let before = date_of(unix_now() + 30 * 86_400);
    let err = token_set_refused(&sb, "work", TOKEN_POLICY, &["--expires", &date_in(60)]);
    let after = date_of(unix_now() + 30 * 86_400);
    assert_contains(&err, &policy.display().to_string(), "the max_days refusal");
    assert_contains(&err, "at most 30 days", "the max_days refusal");
    assert!(
        err.contains(&format!("the latest allowed expiry is {before}"))
            || err.contains(&format!("the latest allowed expiry is {after}")),
        "the refusal names the latest allowed date ({before}):\n{err}"
    );
    assert_contains(&err, "nothing was stored", "the max_days refusal");

    // No expiry at all is further away than any date.
    let err = token_set_refused(&sb, "work", TOKEN_POLICY, &[]);
    assert_contains(
        &err,
        "at most 30 days",
        "the refusal of a token with no expiry",
    );
    assert_contains(
        &err,
        "has no expiry",
        "the refusal of a token with no expiry",
    );
    assert!(runtime_status(&sb, "work")["token"].is_null());

    token_set(&sb, "work", TOKEN_POLICY, &["--expires", &date_in(20)]);
    assert_serves(&sb, "https://git.example/o/r.git", TOKEN_POLICY);
    assert!(
        runtime_status(&sb, "work")["token"]["policy_violation"].is_null(),
        "a token within max_days violates nothing"
    );
}

#[test]
fn warn_days_of_the_policy_is_a_floor_for_the_users_warning_window() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    let repos = sb.dir.path().join("repos");
    fs::create_dir(&repos).unwrap();
    let server = GitServer::start(
        &repos,
        vec![Account::new("", "x-access-token", TOKEN_POLICY)],
    );
    server.create_bare_repo("/team/app.git");
    // One commit in the served repo, pushed through the file system (no auth involved).
    let seed = sb.dir.path().join("seed");
    assert_ok(
        &sb.git()
            .args(["init", "-q", "-b", "main"])
            .arg(&seed)
            .output()
            .unwrap(),
    );
    fs::write(seed.join("README"), "hello").unwrap();
    for args in [vec!["add", "README"], vec!["commit", "-q", "-m", "seed"]] {
        assert_ok(&sb.git().current_dir(&seed).args(&args).output().unwrap());
    }
    let bare = repos.join("team/app.git");
    assert_ok(
        &sb.git()
            .current_dir(&seed)
            .args(["push", "-q"])
            .arg(&bare)
            .arg("HEAD:main")
            .output()
            .unwrap(),
    );

    let config = sb.helperd_home().join("config/config.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, "[settings]\nwarn_days = 7\n").unwrap();
    add_runtime(&sb, "work", "github", &format!("{}/", server.base_url()));
    let expires = date_in(20);
    token_set(
        &sb,
        "work",
        TOKEN_POLICY,
        &["--name", "ci", "--expires", &expires],
    );
    // The user's window alone: 20 days away is not close yet.
    assert_eq!(runtime_status(&sb, "work")["token"]["state"], "valid");

    write_policy(&policy, "warn_days = 30\n");
    let status = status_json(&sb);
    assert_eq!(
        status["daemon"]["config"]["warn_days"], 30,
        "the effective window is the policy's floor: {status:#}"
    );
    assert_eq!(runtime_status(&sb, "work")["token"]["state"], "expiring");

    let work = sb.dir.path().join("work");
    assert_ok(&sb.git().args(["init", "-q"]).arg(&work).output().unwrap());
    let out = sb
        .git()
        .current_dir(&work)
        .args(["fetch", "-q", &server.url("/team/app.git"), "main"])
        .output()
        .unwrap();
    assert_ok(&out);
    let err = stderr(&out);
    assert_contains(&err, &format!("expires on {expires}"), "the fetch's stderr");
    assert_contains(&err, "runtime work", "the fetch's stderr");
    assert_lacks(&err, TOKEN_POLICY, "the fetch's stderr");
}

#[test]
fn allowed_providers_refuses_a_runtime_of_another_provider_when_git_asks() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "allowed_providers = [\"github\"]\n");
    add_runtime(&sb, "gh", "github", "https://github.example/");
    add_runtime(&sb, "gl", "gitlab", "https://gitlab.example/");
    token_set(&sb, "gh", "ghp_allowedProvider1", &[]);
    token_set(&sb, "gl", "glpat-refusedProvider2", &[]);

    assert_serves(
        &sb,
        "https://github.example/o/r.git",
        "ghp_allowedProvider1",
    );
    let err = assert_serves_nothing(&sb, "https://gitlab.example/g/r.git");
    assert_contains(&err, &policy.display().to_string(), "git's stderr");
    assert_contains(&err, "allows only runtimes for github", "git's stderr");
    assert_contains(&err, "runtime gl", "git's stderr");
    assert_lacks(&err, "glpat-refusedProvider2", "git's stderr");

    let problem = runtime_status(&sb, "gl")["problem"].clone();
    assert!(
        problem
            .as_str()
            .is_some_and(|p| p.contains("allows only runtimes for github")
                && p.contains(&policy.display().to_string())),
        "status --json names the problem: {problem}"
    );
    assert!(runtime_status(&sb, "gh")["problem"].is_null());
    assert_contains(
        &ctl_ok(&sb, &["status"]),
        "allows only runtimes for github",
        "status",
    );
}

#[test]
fn allowed_hosts_refuses_a_runtime_outside_the_list_and_a_wildcard_allows_its_hosts() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "allowed_hosts = [\"*.corp.example\"]\n");
    add_runtime(&sb, "corp", "github", "https://git.corp.example/");
    add_runtime(&sb, "ext", "github", "https://git.other.example/");
    token_set(&sb, "corp", "ghp_corpHostAllowed1", &[]);
    token_set(&sb, "ext", "ghp_otherHostRefused2", &[]);

    assert_serves(
        &sb,
        "https://git.corp.example/o/r.git",
        "ghp_corpHostAllowed1",
    );
    let err = assert_serves_nothing(&sb, "https://git.other.example/o/r.git");
    assert_contains(&err, &policy.display().to_string(), "git's stderr");
    assert_contains(
        &err,
        "allows runtimes only on *.corp.example",
        "git's stderr",
    );
    assert_contains(&err, "git.other.example", "git's stderr");
    assert_lacks(&err, "ghp_otherHostRefused2", "git's stderr");

    let problem = runtime_status(&sb, "ext")["problem"].clone();
    assert!(
        problem.as_str().is_some_and(
            |p| p.contains("git.other.example") && p.contains(&policy.display().to_string())
        ),
        "status --json names the problem: {problem}"
    );
    assert!(runtime_status(&sb, "corp")["problem"].is_null());
    assert_contains(&ctl_ok(&sb, &["status"]), "git.other.example", "status");
}

#[test]
fn store_plain_credentials_false_keeps_nothing_outside_the_runtimes() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "store_plain_credentials = false\n");
    let cred = "protocol=https\nhost=plain.example\nusername=alice\npassword=plain-pw-Refused9\n";

    let out = sb.credential("approve", cred);
    assert_ok(&out);
    let err = stderr(&out);
    assert_contains(&err, "not stored", "approve's stderr");
    assert_contains(&err, &policy.display().to_string(), "approve's stderr");
    assert_contains(&err, "store_plain_credentials = false", "approve's stderr");
    assert_contains(&err, "helperctl runtime add", "approve's stderr");
    assert_lacks(&err, "plain-pw-Refused9", "approve's stderr");

    let out = sb.credential("fill", "protocol=https\nhost=plain.example\n");
    assert_eq!(served(&out), None, "nothing was kept: {}", stdout(&out));
    assert_eq!(
        status_json(&sb)["daemon"]["store"]["plain_credentials"],
        0,
        "no plain credential in the store"
    );

    // Without the rule, the same approve is kept.
    write_policy(&policy, "store_plain_credentials = true\n");
    assert_ok(&sb.credential("approve", cred));
    let out = sb.credential("fill", "protocol=https\nhost=plain.example\n");
    assert_eq!(served(&out).as_deref(), Some("plain-pw-Refused9"));
}

const PASSPHRASE: &str = "correct horse battery staple 42";

#[test]
fn min_store_passphrase_refuses_the_key_file_store_until_set_passphrase_and_unlock() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "min_store = \"passphrase\"\n");
    let cred = "protocol=https\nhost=plain.example\nusername=alice\npassword=plain-pw-MinStore3\n";
    let query = "protocol=https\nhost=plain.example\n";

    let out = sb.credential("approve", cred);
    let err = stderr(&out);
    assert_contains(&err, &policy.display().to_string(), "approve's stderr");
    assert_contains(&err, "min_store = \"passphrase\"", "approve's stderr");
    assert_contains(&err, "helperctl store set-passphrase", "approve's stderr");
    let out = sb.credential("fill", query);
    assert_eq!(served(&out), None, "{}", stdout(&out));
    let err = stderr(&out);
    assert_contains(&err, "helperctl store set-passphrase", "fill's stderr");
    assert_contains(&err, "key file", "fill's stderr");

    let said = assert_ctl_in_ok(
        &sb,
        &["store", "set-passphrase"],
        &format!("{PASSPHRASE}\n"),
    );
    assert_contains(&said, "helperctl unlock", "set-passphrase");
    assert_ok(&sb.credential("approve", cred));
    let out = sb.credential("fill", query);
    assert_eq!(
        served(&out).as_deref(),
        Some("plain-pw-MinStore3"),
        "{}",
        stderr(&out)
    );

    // After a restart the store is locked, then unlocked: still allowed.
    ctl_ok(&sb, &["daemon", "restart"]);
    assert_eq!(served(&sb.credential("fill", query)), None, "locked");
    assert_ctl_in_ok(&sb, &["unlock"], &format!("{PASSPHRASE}\n"));
    let out = sb.credential("fill", query);
    assert_eq!(
        served(&out).as_deref(),
        Some("plain-pw-MinStore3"),
        "{}",
        stderr(&out)
    );
    let events = audit_json(&sb, &[]);
    assert!(
        events_of(&events, "policy_violation")
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("min_store")),
        "the refusals are audited:\n{}",
        audit_dump(&events)
    );
}

/// `min_store` is about where secrets are kept: `helperctl token set` into the key-file
/// store must be refused as git's `store` is.
#[test]
fn min_store_passphrase_also_refuses_token_set_into_the_key_file_store() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "min_store = \"passphrase\"\n");
    add_runtime(&sb, "work", "github", "https://git.example/");
    let out = token_set_output(&sb, "work", "ghp_minStoreTokenSet4", &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "token set into the key-file store must be refused under min_store = \"passphrase\"\n\
         stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_contains(
        &stderr(&out),
        "helperctl store set-passphrase",
        "the refusal",
    );
    assert!(runtime_status(&sb, "work")["token"].is_null());
}

// ---------------------------------------------------------------------------------------
// 2. A token set before the policy keeps working, flagged
// ---------------------------------------------------------------------------------------

#[test]
fn a_token_set_before_the_policy_keeps_working_and_is_flagged() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    add_runtime(&sb, "work", "github", "https://git.example/");
    token_set(
        &sb,
        "work",
        "ghp_setBeforePolicy5",
        &["--name", "old laptop"],
    );
    assert_serves(&sb, "https://git.example/o/r.git", "ghp_setBeforePolicy5");

    write_policy(&policy, "require_expiry = true\n");
    assert_serves(&sb, "https://git.example/o/r.git", "ghp_setBeforePolicy5");
    let token = runtime_status(&sb, "work")["token"].clone();
    let violation = token["policy_violation"].as_str().unwrap_or_else(|| {
        panic!("status --json flags the token that breaks the new policy: {token:#}")
    });
    assert_contains(violation, "\"old laptop\"", "the policy_violation");
    assert_contains(violation, "has no expiry", "the policy_violation");
    assert_contains(
        violation,
        &policy.display().to_string(),
        "the policy_violation",
    );
    assert_contains(violation, "keeps working", "the policy_violation");
    assert_contains(
        violation,
        "helperctl token set work",
        "the policy_violation",
    );
    assert_eq!(token["state"], "valid", "it still works: {token:#}");

    let human = ctl_ok(&sb, &["status"]);
    assert_contains(
        &human,
        "! policy: token \"old laptop\" has no expiry",
        "status",
    );
}

// ---------------------------------------------------------------------------------------
// 3. A policy file the user could have written
// ---------------------------------------------------------------------------------------

#[test]
fn a_user_writable_policy_file_is_refused_and_not_enforced() {
    assert_root();
    let (uid, _) = other_user();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    let shown = policy.display().to_string();
    write_policy(&policy, "require_expiry = true\n");
    set_mode(&policy, 0o666);
    add_runtime(&sb, "work", "github", "https://git.example/");
    ctl_ok(&sb, &["daemon", "start"]);

    let status = status_json(&sb);
    let error = status["daemon"]["policy"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("status --json shows the policy error: {status:#}"))
        .to_string();
    for needle in [
        &format!("refusing the system policy {shown}"),
        "writable by group or others (mode 0666)",
        "someone other than root could have changed the policy",
        &format!("sudo chown root:root {shown} && sudo chmod 644 {shown}"),
    ] {
        assert_contains(&error, needle, "the policy error");
    }
    assert_eq!(status["daemon"]["policy"]["rules"], serde_json::json!([]));
    let human = ctl_ok(&sb, &["status"]);
    assert_contains(&human, "REFUSED", "status");
    assert_contains(&human, "chmod 644", "status");
    // Not enforced: a token without expiry is accepted.
    token_set(&sb, "work", "ghp_looseFileNotEnforced6", &[]);
    assert_serves(
        &sb,
        "https://git.example/o/r.git",
        "ghp_looseFileNotEnforced6",
    );

    // Root's again: in force.
    set_mode(&policy, 0o644);
    let status = status_json(&sb);
    assert!(status["daemon"]["policy"]["error"].is_null(), "{status:#}");
    assert_eq!(
        status["daemon"]["policy"]["rules"],
        serde_json::json!(["require_expiry = true"])
    );
    token_set_refused(&sb, "work", "ghp_refusedOnceTrusted7", &[]);

    // Handed to the user and loosened by them: refused, and its rules are not enforced
    // (the last trusted policy stays in force).
    nix::unistd::chown(&policy, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    fs::write(&policy, "allowed_providers = [\"gitlab\"]\n").unwrap();
    let status = status_json(&sb);
    let error = status["daemon"]["policy"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("status --json shows the policy error: {status:#}"))
        .to_string();
    assert_contains(
        &error,
        &format!("belongs to uid {uid}, not to root"),
        "the policy error",
    );
    assert_contains(&error, "sudo chown root:root", "the policy error");
    assert_eq!(
        status["daemon"]["policy"]["rules"],
        serde_json::json!(["require_expiry = true"]),
        "the last trusted policy stays in force"
    );
    assert_serves(
        &sb,
        "https://git.example/o/r.git",
        "ghp_looseFileNotEnforced6",
    );
    assert!(runtime_status(&sb, "work")["problem"].is_null());
}

// ---------------------------------------------------------------------------------------
// 4. Reload without restart
// ---------------------------------------------------------------------------------------

#[test]
fn a_policy_change_applies_to_the_next_token_set_without_a_restart() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "# no rule yet\n");
    add_runtime(&sb, "work", "github", "https://git.example/");
    token_set(&sb, "work", "ghp_beforeTheRule8", &[]);
    let pid = sb.daemon_pid().expect("token set started the daemon");

    write_policy(&policy, "require_expiry = true\n");
    // Straight to `token set`: no git request or status in between to refresh anything.
    let err = token_set_refused(&sb, "work", "ghp_afterTheRule9", &[]);
    assert_contains(
        &err,
        "requires every token to have an expiry",
        "the refusal",
    );
    assert_eq!(
        sb.daemon_pid(),
        Some(pid),
        "the same daemon, never restarted"
    );

    token_set(
        &sb,
        "work",
        "ghp_afterTheRule9",
        &["--expires", &date_in(10)],
    );
    write_policy(&policy, "max_days = 5\n");
    let err = token_set_refused(
        &sb,
        "work",
        "ghp_tooLongNow10",
        &["--expires", &date_in(10)],
    );
    assert_contains(&err, "at most 5 days", "the refusal");
    assert_eq!(
        sb.daemon_pid(),
        Some(pid),
        "the same daemon, never restarted"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Audit events
// ---------------------------------------------------------------------------------------

const TOKEN_ACME: &str = "ghp_auditAcmeTok3nK2";
const TOKEN_EXP: &str = "ghp_auditShortLived9P";
const TOKEN_RENEW: &str = "ghp_auditRenewedAtPrompt4";
const TOKEN_REFUSED: &str = "ghp_auditRefusedByPolicy7";
const PLAIN_PW: &str = "plain-pw-Audit5xx";

#[test]
fn every_decision_is_audited_with_its_fields_and_helperctl_audit_filters() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    let visitor = Visitor::new(&sb);
    add_runtime(&sb, "acme", "github", "https://git.example/acme/");
    add_runtime(&sb, "beta", "github", "https://git.example/beta/");
    add_runtime(&sb, "exp", "github", "https://exp.example/");
    ctl_ok(&sb, &["daemon", "start"]);

    // token_set, one that expires in seconds, token_linked.
    let expires = unix_now() + 3;
    token_set(
        &sb,
        "exp",
        TOKEN_EXP,
        &["--name", "short-lived", "--expires", &rfc3339(expires)],
    );
    token_set(&sb, "acme", TOKEN_ACME, &["--name", "acme laptop"]);
    ctl_ok(&sb, &["token", "link", "beta", "--from", "acme"]);
    // served.
    assert_serves(&sb, "https://git.example/acme/app.git", TOKEN_ACME);
    // refused: ambiguous path (two runtimes on the host, git sends no path).
    let out = fill_url(&sb, "https://git.example/acme/app.git", false);
    assert_eq!(served(&out), None, "{}", stderr(&out));
    // stored and erased plain credentials (the URL carries them: never logged).
    let plain_url = format!("url=https://alice:{PLAIN_PW}@plain.example/repo.git\n");
    assert_ok(&sb.credential("approve", &plain_url));
    assert_ok(&sb.credential("reject", &plain_url));
    // refused: expired.
    sb.advance_clock_past(expires);
    let err = assert_serves_nothing(&sb, "https://exp.example/o/r.git");
    assert_contains(&err, "expired", "git's stderr");
    // renewed through git's store.
    let out = sb.credential(
        "approve",
        &format!(
            "protocol=https\nhost=exp.example\nusername=x-access-token\npassword={TOKEN_RENEW}\n"
        ),
    );
    assert_ok(&out);
    assert_contains(&stderr(&out), "stored the new token", "approve's stderr");
    assert_serves(&sb, "https://exp.example/o/r.git", TOKEN_RENEW);
    // token_removed.
    ctl_ok(&sb, &["token", "remove", "beta"]);
    // policy violations: from git (host not allowed) and from token set (no expiry).
    write_policy(
        &policy,
        "require_expiry = true\nallowed_hosts = [\"allowed.example\"]\n",
    );
    let err = assert_serves_nothing(&sb, "https://git.example/acme/app.git");
    assert_contains(&err, &policy.display().to_string(), "git's stderr");
    // (The git request above made the daemon read the new policy; that `token set` alone
    // does too is the reload test's business.)
    token_set_refused(&sb, "acme", TOKEN_REFUSED, &["--name", "refused"]);
    fs::remove_file(&policy).unwrap();
    // support granted, used, revoked.
    let enabled = ctl_ok(
        &sb,
        &["support", "enable", "--user", OTHER_USER, "--for", "1h"],
    );
    let support = support_socket_of(&enabled);
    assert_ok(&visitor.ctl(&support, &["status"]));
    ctl_ok(&sb, &["support", "disable"]);

    let events = audit_json(&sb, &[]);
    let dump = audit_dump(&events);
    let client = real_path(&util::client_bin());
    let helperctl = real_path(&util::ctl_bin());
    let visitor_ctl = real_path(&visitor.ctl);
    let mut problems: Vec<String> = Vec::new();
    let mut expect =
        |what: &str, kind: &str, pick: &dyn Fn(&Value) -> bool, fields: &[(&str, Value)]| {
            let found = events_of(&events, kind);
            let Some(e) = found.iter().find(|e| pick(e)) else {
                problems.push(format!("no {kind} event for {what}"));
                return;
            };
            for (field, want) in fields {
                let got = &e[*field];
                let ok = match want {
                    // `true`: present, whatever the value.
                    Value::Bool(true) => !got.is_null(),
                    _ => got == want,
                };
                if !ok {
                    problems.push(format!(
                        "{what}: {kind} event has {field} = {got}, expected {}: {e}",
                        if *want == Value::Bool(true) {
                            "a value".to_string()
                        } else {
                            want.to_string()
                        }
                    ));
                }
            }
            if let Some(pid) = e["peer_pid"].as_i64() {
                if pid <= 0 {
                    problems.push(format!("{what}: peer_pid {pid} is not a pid: {e}"));
                }
            }
        };
    let s = |v: &str| Value::from(v);
    let any = Value::Bool(true);
    let reason_has = |needle: &'static str| {
        move |e: &Value| e["reason"].as_str().is_some_and(|r| r.contains(needle))
    };
    expect(
        "a token served to git",
        "served",
        &|e| e["runtime"] == "acme",
        &[
            ("token", s("acme laptop")),
            ("url", s("https://git.example/acme/app.git")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "an expired token",
        "refused",
        &reason_has("expired"),
        &[
            ("runtime", s("exp")),
            ("token", s("short-lived")),
            ("url", s("https://exp.example/o/r.git")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "an ambiguous path",
        "refused",
        &reason_has("ambiguous path"),
        &[
            ("url", s("https://git.example")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    // A refusal by the policy is one event (one per request): the policy_violation
    // expected below.
    expect(
        "a stored plain credential",
        "stored",
        &|_| true,
        &[
            ("url", s("https://plain.example")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "an erased plain credential",
        "erased",
        &|_| true,
        &[
            ("url", s("https://plain.example")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "a renewal through git's store",
        "renewed",
        &|_| true,
        &[
            ("runtime", s("exp")),
            ("token", s("entered at git's prompt")),
            ("url", s("https://exp.example")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "helperctl token set",
        "token_set",
        &|e| e["runtime"] == "acme",
        &[
            ("token", s("acme laptop")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&helperctl)),
        ],
    );
    expect(
        "helperctl token link",
        "token_linked",
        &|_| true,
        &[
            ("runtime", s("beta")),
            ("token", s("acme laptop")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&helperctl)),
        ],
    );
    expect(
        "helperctl token remove",
        "token_removed",
        &|_| true,
        &[
            ("runtime", s("beta")),
            ("token", s("acme laptop")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&helperctl)),
        ],
    );
    expect(
        "a runtime the policy refuses, when git asks",
        "policy_violation",
        &reason_has("allows runtimes only on"),
        &[
            ("runtime", s("acme")),
            ("url", s("https://git.example/acme/app.git")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&client)),
        ],
    );
    expect(
        "a token set the policy refuses",
        "policy_violation",
        &reason_has("requires every token to have an expiry"),
        &[
            ("runtime", s("acme")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&helperctl)),
        ],
    );
    expect(
        "support enable",
        "support_granted",
        &reason_has(OTHER_USER),
        &[("peer_pid", any.clone()), ("peer_exe", s(&helperctl))],
    );
    expect(
        "support used by the granted user",
        "support_used",
        &|e| e["peer_uid"] == visitor.uid,
        &[
            ("reason", s("status")),
            ("peer_pid", any.clone()),
            ("peer_exe", s(&visitor_ctl)),
        ],
    );
    expect(
        "support disable",
        "support_revoked",
        &|_| true,
        &[("peer_pid", any.clone()), ("peer_exe", s(&helperctl))],
    );
    for e in &events {
        let url = e["url"].as_str().unwrap_or("");
        if url.contains('@') || url.contains('?') || url.contains("alice") {
            problems.push(format!("a URL with credentials or a query: {e}"));
        }
    }
    for secret in [TOKEN_ACME, TOKEN_EXP, TOKEN_RENEW, TOKEN_REFUSED, PLAIN_PW] {
        if dump.contains(secret) {
            problems.push(format!("the secret {secret} is in the audit log"));
        }
    }
    assert!(
        problems.is_empty(),
        "audit problems:\n  {}\n\nthe audit log:\n{dump}",
        problems.join("\n  ")
    );

    // --runtime
    let acme = audit_json(&sb, &["--runtime", "acme"]);
    assert!(!acme.is_empty(), "acme has events:\n{dump}");
    assert!(acme.len() < events.len(), "--runtime filters");
    assert!(
        acme.iter().all(|e| e["runtime"] == "acme"),
        "{}",
        audit_dump(&acme)
    );
    assert_eq!(
        acme.len(),
        events.iter().filter(|e| e["runtime"] == "acme").count()
    );
    // --since
    assert_eq!(audit_json(&sb, &["--since", "1h"]), events);
    assert!(audit_json(&sb, &["--since", "2999-01-01"]).is_empty());
    assert_eq!(
        ctl_ok(&sb, &["audit", "--since", "2999-01-01"]),
        "no audit events\n"
    );
    // The human table: a header, then one aligned row per event.
    let table = ctl_ok(&sb, &["audit"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), events.len() + 1, "{table}");
    let header = lines[0];
    let mut at = 0;
    for column in [
        "TIME (UTC)",
        "EVENT",
        "RUNTIME",
        "TOKEN",
        "URL",
        "PEER",
        "REASON",
    ] {
        let i = header[at..]
            .find(column)
            .unwrap_or_else(|| panic!("the header has {column} in order: {header}"));
        at += i + column.len();
    }
    let url_col = header.find("URL").unwrap();
    let served_row = lines
        .iter()
        .find(|l| l.contains(" served ") && l.contains("acme laptop"))
        .unwrap_or_else(|| panic!("a served row:\n{table}"));
    assert_eq!(
        served_row.get(url_col..url_col + 8),
        Some("https://"),
        "columns are aligned:\n{table}"
    );
    assert_contains(served_row, &client, "the served row's PEER");
    for secret in [TOKEN_ACME, TOKEN_RENEW, PLAIN_PW] {
        assert_lacks(&table, secret, "the audit table");
    }
}

// ---------------------------------------------------------------------------------------
// 6. No secret in the state folder after a full end-to-end run
// ---------------------------------------------------------------------------------------

const E2E_OLD: &str = "ghp_e2eOldTok3nExpiring1";
const E2E_NEW: &str = "ghp_e2eNewTok3nRenewed2";
const E2E_EXTRA: &str = "ghp_e2eExtraTok3nRemoved3";
const E2E_PLAIN: &str = "plain-e2e-Passw0rd-4";
const E2E_PLAIN_NEW: &str = "plain-e2e-Rotated-5";
const E2E_APPROVED: &str = "plain-e2e-Approved-6";

/// A GIT_ASKPASS answering `username` and `password`.
fn askpass(sb: &Sandbox, name: &str, username: &str, password: &str) -> PathBuf {
    sb.script(
        name,
        &format!(
            "case \"$1\" in\n  Username*) echo '{username}' ;;\n  *) echo '{password}' ;;\nesac"
        ),
    )
}

fn git_at(sb: &Sandbox, dir: &Path, args: &[&str], askpass: Option<&Path>) -> Output {
    let mut c = sb.git();
    c.current_dir(dir).args(args);
    if let Some(a) = askpass {
        c.env("GIT_ASKPASS", a);
    }
    c.output().expect("git runs")
}

#[track_caller]
fn git_ok_at(sb: &Sandbox, dir: &Path, args: &[&str], askpass: Option<&Path>) -> Output {
    let out = git_at(sb, dir, args, askpass);
    assert!(
        out.status.success(),
        "git {args:?} failed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn commit(sb: &Sandbox, work: &Path, name: &str) {
    fs::write(work.join(name), name).unwrap();
    git_ok_at(sb, work, &["add", name], None);
    git_ok_at(sb, work, &["commit", "-q", "-m", name], None);
}

#[test]
fn no_secret_reaches_the_state_folder_after_a_full_end_to_end_run() {
    let sb = Sandbox::new();
    let root = sb.dir.path().to_path_buf();
    let repos = root.join("repos");
    fs::create_dir(&repos).unwrap();
    // A host with a runtime, and another whose credentials git keeps as plain ones.
    let tokens = GitServer::start(&repos, vec![Account::new("", "x-access-token", E2E_OLD)]);
    let plain = GitServer::start(&repos, vec![Account::new("", "alice", E2E_PLAIN)]);
    tokens.create_bare_repo("/team/app.git");
    plain.create_bare_repo("/solo/notes.git");
    add_runtime(&sb, "work", "github", &format!("{}/", tokens.base_url()));
    add_runtime(&sb, "spare", "github", "https://spare.example/");
    ctl_ok(&sb, &["daemon", "start"]);
    let expires = unix_now() + 5;
    token_set(
        &sb,
        "work",
        E2E_OLD,
        &["--name", "old", "--expires", &rfc3339(expires)],
    );
    token_set(&sb, "spare", E2E_EXTRA, &[]);

    // Runtime: clone and push with the token.
    git_ok_at(
        &sb,
        &root,
        &["clone", "-q", &tokens.url("/team/app.git"), "app"],
        None,
    );
    let app = root.join("app");
    commit(&sb, &app, "one");
    git_ok_at(&sb, &app, &["push", "-q", "origin", "HEAD:main"], None);

    // Plain: git asks once (GIT_ASKPASS) and stores through helperd; then silent.
    let ask_plain = askpass(&sb, "ask-plain.sh", "alice", E2E_PLAIN);
    git_ok_at(
        &sb,
        &root,
        &["clone", "-q", &plain.url("/solo/notes.git"), "notes"],
        Some(&ask_plain),
    );
    let notes = root.join("notes");
    commit(&sb, &notes, "n1");
    git_ok_at(&sb, &notes, &["push", "-q", "origin", "HEAD:main"], None);
    // A plain credential given by git credential approve.
    assert_ok(&sb.credential(
        "approve",
        &format!("protocol=https\nhost=other.example\nusername=bob\npassword={E2E_APPROVED}\n"),
    ));

    // The runtime's token expires; the host now takes the new one, which the user types at
    // git's prompt: refused (expired), then renewed through git's store.
    sb.advance_clock_past(expires);
    tokens.set_accounts(vec![Account::new("", "x-access-token", E2E_NEW)]);
    let ask_new = askpass(&sb, "ask-new.sh", "x-access-token", E2E_NEW);
    let out = git_ok_at(&sb, &app, &["fetch", "-q", "origin"], Some(&ask_new));
    assert_contains(&stderr(&out), "expired", "the fetch after expiry");
    commit(&sb, &app, "two");
    git_ok_at(&sb, &app, &["push", "-q", "origin", "HEAD:main"], None);
    assert_eq!(
        runtime_status(&sb, "work")["token"]["name"],
        "entered at git's prompt"
    );

    // Errors: the plain password is rotated on the host: 401, git erases it.
    plain.set_accounts(vec![Account::new("", "alice", E2E_PLAIN_NEW)]);
    let out = git_at(&sb, &notes, &["fetch", "-q", "origin"], None);
    assert!(!out.status.success(), "the old password is refused");
    // The host revokes the runtime's token: 401, git erases it (marked rejected).
    tokens.set_accounts(vec![Account::new(
        "",
        "x-access-token",
        "ghp_hostOnlyNever",
    )]);
    let out = git_at(&sb, &app, &["fetch", "-q", "origin"], None);
    assert!(!out.status.success());
    let ask_rotated = askpass(&sb, "ask-rotated.sh", "alice", E2E_PLAIN_NEW);
    git_ok_at(&sb, &notes, &["fetch", "-q", "origin"], Some(&ask_rotated));
    ctl_ok(&sb, &["token", "remove", "spare"]);
    assert_serves_nothing(&sb, "https://spare.example/o/r.git");

    let events = audit_json(&sb, &[]);
    for kind in [
        "served",
        "refused",
        "stored",
        "erased",
        "renewed",
        "token_set",
        "token_removed",
    ] {
        assert!(
            !events_of(&events, kind).is_empty(),
            "the run produced a {kind} event:\n{}",
            audit_dump(&events)
        );
    }
    let state = sb.helperd_home().join("state");
    let secrets: Vec<(&str, Vec<u8>)> = [
        ("the expired token", E2E_OLD),
        ("the renewed token", E2E_NEW),
        ("the removed token", E2E_EXTRA),
        ("the plain password", E2E_PLAIN),
        ("the rotated plain password", E2E_PLAIN_NEW),
        ("the approved password", E2E_APPROVED),
    ]
    .into_iter()
    .map(|(what, s)| (what, s.as_bytes().to_vec()))
    .collect();
    let searched = assert_no_secret_in_files(&state, &secrets);
    for name in ["audit.log", "tokens.json", "helperd.log"] {
        assert!(
            state.join(name).is_file(),
            "{name} is among the {searched} files searched"
        );
    }
    assert!(sb.log().contains("TRACE") || sb.log().contains("DEBUG"));
    let dump = audit_dump(&events);
    for (what, secret) in &secrets {
        assert!(
            !dump.contains(std::str::from_utf8(secret).unwrap()),
            "{what} is in `helperctl audit --json`"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. The log file: 0600, across daemon restarts
// ---------------------------------------------------------------------------------------

#[test]
fn the_audit_log_is_0600_and_is_read_across_daemon_restarts() {
    let sb = Sandbox::new();
    add_runtime(&sb, "work", "github", "https://git.example/");
    token_set(
        &sb,
        "work",
        "ghp_restartTok3n11",
        &["--name", "first daemon"],
    );
    let first = sb.daemon_pid().expect("a daemon");
    let log = sb.helperd_home().join("state/audit.log");
    assert_eq!(mode_of(&log), 0o600, "{}", log.display());

    // Loosened by hand (a restored backup): the next daemon tightens it again.
    set_mode(&log, 0o644);
    ctl_ok(&sb, &["daemon", "restart"]);
    token_set(
        &sb,
        "work",
        "ghp_restartTok3n12",
        &["--name", "second daemon"],
    );
    let second = sb.daemon_pid().expect("a daemon");
    assert_ne!(first, second, "a new daemon");
    assert_eq!(mode_of(&log), 0o600, "{}", log.display());

    let set: Vec<Value> = audit_json(&sb, &[])
        .into_iter()
        .filter(|e| e["event"] == "token_set")
        .collect();
    let names: Vec<&Value> = set.iter().map(|e| &e["token"]).collect();
    assert_eq!(
        names,
        [&Value::from("first daemon"), &Value::from("second daemon")],
        "{}",
        audit_dump(&set)
    );
}

// ---------------------------------------------------------------------------------------
// 8. SIGKILL during heavy logging
// ---------------------------------------------------------------------------------------

#[test]
fn a_sigkill_during_heavy_logging_leaves_only_whole_lines() {
    const THREADS: usize = 4;
    const EACH: usize = 100;
    let sb = Sandbox::new();
    add_runtime(&sb, "work", "github", "https://git.example/");
    token_set(&sb, "work", "ghp_heavyLoggingTok3n13", &["--name", "busy"]);
    let log = sb.helperd_home().join("state/audit.log");
    let lines = || {
        fs::read(&log)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    };

    let killed = std::thread::scope(|scope| {
        for t in 0..THREADS {
            let sb = &sb;
            scope.spawn(move || {
                for i in 0..EACH {
                    // A long path: longer lines, more bytes in flight.
                    let url = format!(
                        "https://git.example/team-{t}/{}/repo-{i}.git",
                        "deep/".repeat(20)
                    );
                    let _ = fill(sb, &url);
                }
            });
        }
        // Mid-way: many events written, many requests still to come.
        assert!(
            wait_until(Duration::from_secs(120), || lines() >= THREADS * EACH / 4),
            "the requests produce audit events ({} lines)",
            lines()
        );
        let killed = sb.kill_daemon(Signal::SIGKILL);
        (killed, lines())
    });
    let (killed, at_kill) = killed;
    assert!(!util::process_alive(killed));
    assert!(
        lines() > at_kill,
        "the kill came in the middle: requests went on after it ({at_kill} lines then, {} now)",
        lines()
    );

    let bytes = fs::read(&log).expect("audit.log exists");
    assert_eq!(
        bytes.last(),
        Some(&b'\n'),
        "the log ends with a whole line (no torn last line)"
    );
    let text = String::from_utf8(bytes).expect("audit.log is UTF-8");
    let mut served = 0;
    for (n, line) in text.lines().enumerate() {
        let e: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("line {} is not a whole event ({err}): {line:?}", n + 1));
        assert!(e["event"].is_string() && e["ts"].is_u64(), "{line}");
        if e["event"] == "served" {
            served += 1;
        }
    }
    // The clients started a new daemon after the kill; most requests were served.
    assert!(
        served >= THREADS * EACH / 2,
        "{served} served events of {} requests",
        THREADS * EACH
    );
    assert!(
        text.lines().count() <= THREADS * EACH + 10,
        "no duplicated lines"
    );
}

// ---------------------------------------------------------------------------------------
// 9. The support bundle holds no secret
// ---------------------------------------------------------------------------------------

const BUNDLE_TOKEN: &str = "ghp_bundleRuntimeTok3n14";
const BUNDLE_TOKEN2: &str = "glpat-bundleSecondTok3n15";
const BUNDLE_PW: &str = "plain-bundle-Passw0rd-16";
const BUNDLE_REFRESH: &str = "refresh-bundle-OauthRt-17";
const BUNDLE_PW2: &str = "plain-bundle-Oauth-18";

#[test]
fn the_support_bundle_holds_no_secret() {
    assert_root();
    let mut sb = Sandbox::new();
    let policy = policy_file(&mut sb);
    write_policy(&policy, "max_days = 365\nwarn_days = 14\n");
    add_runtime(&sb, "work", "github", "https://git.example/");
    add_runtime(&sb, "lab", "gitlab", "https://gitlab.example/");
    token_set(
        &sb,
        "work",
        BUNDLE_TOKEN,
        &["--name", "laptop", "--expires", &date_in(90)],
    );
    token_set(&sb, "lab", BUNDLE_TOKEN2, &["--expires", &date_in(10)]);
    assert_serves(&sb, "https://git.example/o/r.git", BUNDLE_TOKEN);
    assert_serves(&sb, "https://gitlab.example/g/r.git", BUNDLE_TOKEN2);
    let refused = token_set_refused(&sb, "work", "ghp_bundleRefused19", &[]);
    assert_contains(&refused, "nothing was stored", "the refusal");
    assert_ok(&sb.credential(
        "approve",
        &format!("protocol=https\nhost=plain.example\nusername=alice\npassword={BUNDLE_PW}\n"),
    ));
    assert_ok(&sb.credential(
        "approve",
        &format!(
            "protocol=https\nhost=oauth.example\nusername=bob\npassword={BUNDLE_PW2}\n\
             oauth_refresh_token={BUNDLE_REFRESH}\n"
        ),
    ));
    let out = sb.credential("fill", "protocol=https\nhost=plain.example\n");
    assert_eq!(served(&out).as_deref(), Some(BUNDLE_PW));

    let key_path = sb.helperd_home().join("data/secrets.key");
    let key = fs::read(&key_path)
        .unwrap_or_else(|e| panic!("the file store's key {} exists: {e}", key_path.display()));
    assert_eq!(key.len(), 32, "the key file holds a 32-byte key");

    let bundle = sb.dir.path().join("bundle.tar");
    let printed = ctl_ok(
        &sb,
        &[
            "support",
            "bundle",
            "--output",
            &bundle.display().to_string(),
        ],
    );
    assert_eq!(printed.trim_end(), bundle.display().to_string());
    assert_eq!(
        fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600,
        "the bundle quotes the 0600 audit log: 0600 too"
    );
    let out_dir = sb.dir.path().join("unpacked");
    fs::create_dir(&out_dir).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&out_dir)
        .output()
        .expect("tar runs");
    assert_ok(&out);

    let files = files_under(&out_dir);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&out_dir).unwrap().display().to_string())
        .collect();
    for want in [
        "status.json",
        "audit.jsonl",
        "config.toml",
        "environment.txt",
        "daemon-log-tail.txt",
    ] {
        assert!(
            names
                .iter()
                .any(|n| Path::new(n).file_name() == Some(want.as_ref())),
            "the bundle has {want}: {names:?}"
        );
    }
    let read = |name: &str| {
        let path = files
            .iter()
            .find(|f| f.file_name() == Some(name.as_ref()))
            .unwrap();
        fs::read_to_string(path).unwrap()
    };
    // The bundle is useful: the facts support needs are in it.
    let status: Value = serde_json::from_str(&read("status.json")).expect("status.json is JSON");
    assert_eq!(status["runtimes"][0]["name"], "work", "{status:#}");
    assert_eq!(status["runtimes"][0]["token"]["name"], "laptop");
    assert_eq!(status["policy"]["path"], policy.display().to_string());
    let audit = read("audit.jsonl");
    assert!(
        audit.lines().count() >= 4,
        "recent audit events are included:\n{audit}"
    );
    for line in audit.lines() {
        serde_json::from_str::<Value>(line).expect("audit.jsonl is JSON lines");
    }
    assert_contains(
        &read("config.toml"),
        "https://gitlab.example/",
        "config.toml",
    );
    assert_contains(
        &read("environment.txt"),
        "HELPERD_POLICY: set",
        "environment.txt",
    );
    assert!(
        !read("daemon-log-tail.txt").is_empty(),
        "the daemon log tail is included"
    );

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the runtime token", BUNDLE_TOKEN.into()),
        ("the second runtime token", BUNDLE_TOKEN2.into()),
        ("the token the policy refused", "ghp_bundleRefused19".into()),
        ("the plain password", BUNDLE_PW.into()),
        ("the oauth password", BUNDLE_PW2.into()),
        ("the refresh token", BUNDLE_REFRESH.into()),
        ("the file store's key", key.clone()),
        ("the file store's key in hex", hex(&key, false).into_bytes()),
        ("the file store's key in HEX", hex(&key, true).into_bytes()),
    ];
    let searched = assert_no_secret_in_files(&out_dir, &secrets);
    assert!(searched >= 5);
    // The archive itself too (headers, padding).
    let raw = fs::read(&bundle).unwrap();
    for (what, secret) in &secrets {
        assert!(
            !contains_bytes(&raw, secret),
            "{what} is in {}",
            bundle.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 10. Support access as another uid
// ---------------------------------------------------------------------------------------

#[test]
fn support_access_lets_another_user_read_status_and_audit_only_until_disabled_or_expired() {
    assert_root();
    let sb = Sandbox::new();
    let visitor = Visitor::new(&sb);
    add_runtime(&sb, "work", "github", "https://git.example/");
    token_set(&sb, "work", "ghp_supportTok3n20", &["--name", "original"]);
    assert_ok(&sb.credential(
        "approve",
        "protocol=https\nhost=example.com\nusername=alice\npassword=plain-support-Pw21\n",
    ));
    let pid = sb.daemon_pid().expect("a daemon");

    let enabled = ctl_ok(
        &sb,
        &["support", "enable", "--user", OTHER_USER, "--for", "1h"],
    );
    let socket = support_socket_of(&enabled);
    assert_contains(&enabled, OTHER_USER, "support enable's output");
    assert!(socket.exists(), "{} exists", socket.display());
    let status = status_json(&sb);
    assert_eq!(status["daemon"]["support"]["user"], OTHER_USER);
    assert_eq!(status["daemon"]["support"]["uid"], visitor.uid);
    assert_eq!(
        status["daemon"]["support"]["socket"],
        socket.display().to_string()
    );
    assert_contains(&ctl_ok(&sb, &["status"]), "support access", "status");

    // Read-only status and audit work for them.
    let out = visitor.ctl(&socket, &["status"]);
    assert_ok(&out);
    assert_contains(
        &stdout(&out),
        &format!("running (pid {pid}"),
        "their status",
    );
    assert_contains(&stdout(&out), "original", "their status");
    let out = visitor.ctl(&socket, &["status", "--json"]);
    assert_ok(&out);
    let theirs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(theirs["daemon"]["pid"], pid);
    let out = visitor.ctl(&socket, &["audit"]);
    assert_ok(&out);
    assert_contains(&stdout(&out), "support_granted", "their audit");
    let out = visitor.ctl(&socket, &["audit", "--json", "--runtime", "work"]);
    assert_ok(&out);
    assert_contains(&stdout(&out), "\"token_set\"", "their audit --json");

    // Anything else is refused: token set...
    let out = visitor.run(
        &socket,
        &visitor.ctl,
        &["token", "set", "work", "--name", "intruder"],
        "ghp_intruderTok3n22\n",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "token set must fail: {}",
        stdout(&out)
    );
    assert_contains(&stderr(&out), "read-only", "their token set");
    assert_eq!(runtime_status(&sb, "work")["token"]["name"], "original");
    // ...git's get...
    let out = visitor.run(
        &socket,
        &visitor.client,
        &["get"],
        "protocol=https\nhost=example.com\n",
    );
    assert_eq!(stdout(&out), "", "no credential through the support socket");
    assert_contains(&stderr(&out), "read-only", "their get");
    assert_lacks(&stderr(&out), "plain-support-Pw21", "their get");
    let out = visitor.run(
        &socket,
        &visitor.client,
        &["get"],
        "protocol=https\nhost=git.example\n",
    );
    assert_eq!(stdout(&out), "", "no token through the support socket");
    // ...and shutdown, which every daemon otherwise honours.
    let shutdown = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                    s.sendall(b'{\"op\":\"shutdown\"}\\n')\nprint(s.recv(65536).decode())";
    let out = visitor.run(
        &socket,
        Path::new("/usr/bin/python3"),
        &["-c", shutdown, &socket.display().to_string()],
        "",
    );
    assert_ok(&out);
    assert_contains(&stdout(&out), "read-only", "the answer to shutdown");
    assert!(util::process_alive(pid), "the daemon still runs");
    assert_eq!(sb.daemon_pid(), Some(pid));

    // Root is another uid than the granted one: refused.
    let out = sb
        .ctl()
        .env("HELPERD_SOCKET", &socket)
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_contains(&stderr(&out), "not granted to you", "root's status");

    // disable: gone at once.
    let out = ctl_ok(&sb, &["support", "disable"]);
    assert_contains(&out, "ended", "support disable");
    assert!(
        wait_until(Duration::from_secs(5), || !socket.exists()),
        "the support socket is removed"
    );
    let out = visitor.ctl(&socket, &["status", "--json"]);
    assert_ok(&out);
    let theirs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(theirs["running"], false, "{theirs:#}");
    let out = visitor.ctl(&socket, &["audit"]);
    assert!(
        !out.status.success(),
        "audit after disable: {}",
        stdout(&out)
    );
    assert_lacks(&stdout(&out), "support_granted", "audit after disable");
    assert!(status_json(&sb)["daemon"]["support"].is_null());

    // --for 2s: ends by itself.
    let enabled = ctl_ok(
        &sb,
        &["support", "enable", "--user", OTHER_USER, "--for", "2s"],
    );
    let socket = support_socket_of(&enabled);
    assert!(
        wait_until(Duration::from_secs(15), || !socket.exists()),
        "the support socket is removed after 2s"
    );
    let out = visitor.ctl(&socket, &["audit"]);
    assert!(
        !out.status.success(),
        "audit after expiry: {}",
        stdout(&out)
    );
    assert!(status_json(&sb)["daemon"]["support"].is_null());

    // Every use is audited, with the user's uid.
    let events = audit_json(&sb, &[]);
    let dump = audit_dump(&events);
    let used: Vec<&Value> = events_of(&events, "support_used");
    let theirs: Vec<&&Value> = used
        .iter()
        .filter(|e| e["peer_uid"] == visitor.uid)
        .collect();
    let visitor_ctl = real_path(&visitor.ctl);
    let visitor_client = real_path(&visitor.client);
    for (reason, exe) in [
        ("status", &visitor_ctl),
        ("audit", &visitor_ctl),
        ("refused: a request that is not read-only", &visitor_ctl),
        ("refused: a request that is not read-only", &visitor_client),
    ] {
        assert!(
            theirs
                .iter()
                .any(|e| e["reason"] == reason && e["peer_exe"] == exe.as_str()),
            "a support_used event ({reason}, {exe}):\n{dump}"
        );
    }
    assert!(theirs.len() >= 8, "each use is audited:\n{dump}");
    assert!(
        used.iter()
            .any(|e| e["peer_uid"] == 0 && e["reason"] == "refused: not the granted user"),
        "root's attempt is audited:\n{dump}"
    );
    assert_eq!(events_of(&events, "support_granted").len(), 2, "{dump}");
    let revoked = events_of(&events, "support_revoked");
    assert_eq!(revoked.len(), 2, "{dump}");
    assert!(
        revoked.iter().any(|e| e["reason"] == "expired"),
        "the expiry is audited:\n{dump}"
    );
}
