//! Runtimes (DESIGN.md §6, §8): the right token for each remote URL, chosen by URL prefix,
//! managed with `helperctl runtime|token|which|install|status`, with the real git, a real
//! git HTTP server and the real daemon.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::git_server::{Account, AuthAttempt, GitServer};
use crate::util::rfc3339;
use crate::util::{
    add_runtime, assert_contains, assert_lacks, config_path, ctl, ctl_ok, files_under, served,
    status_json, unix_now,
};
use crate::util::{assert_ok, run_with_stdin, stderr, stdout, value, wait_until, Sandbox};
use crate::util::{commit, git_in, git_ok, runtime_status};

/// The acme org's token: good for /acme/ and /acme-infra/ only.
const TOKEN_ACME: &str = "ghp_acmeTok3n0fTheW0rkOrg";
/// octocat's personal token: good for /octocat/ only.
const TOKEN_OSS: &str = "ghp_ossTok3n0fOctocatHimself";

const APP: &str = "/acme/app.git";
const OPS: &str = "/acme-infra/ops.git";
const DOTFILES: &str = "/octocat/dotfiles.git";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn read_config(sb: &Sandbox) -> String {
    fs::read_to_string(config_path(sb)).unwrap_or_default()
}

fn write_config(sb: &Sandbox, text: &str) {
    let path = config_path(sb);
    fs::create_dir_all(path.parent().expect("config.toml is in a folder")).unwrap();
    fs::write(&path, text).unwrap();
}

fn append_config(sb: &Sandbox, text: &str) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(config_path(sb))
        .expect("config.toml exists");
    file.write_all(text.as_bytes()).unwrap();
}

/// Runs `helperctl ARGS`, asserts exit code 1 (an error, DESIGN.md §8), returns stderr.
#[track_caller]
fn ctl_err(sb: &Sandbox, args: &[&str]) -> String {
    let out = ctl(sb, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "helperctl {args:?} should fail with exit code 1\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// `helperctl token set RUNTIME EXTRA...` with the secret on stdin.
fn token_set_output(sb: &Sandbox, runtime: &str, secret: &str, extra: &[&str]) -> Output {
    let mut c = sb.ctl();
    c.args(["token", "set", runtime, "--offline"]).args(extra);
    run_with_stdin(c, format!("{secret}\n").as_bytes())
}

#[track_caller]
fn token_set(sb: &Sandbox, runtime: &str, secret: &str, extra: &[&str]) {
    let out = token_set_output(sb, runtime, secret, extra);
    assert!(
        out.status.success(),
        "token set {runtime} failed\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
}

/// `git credential fill` for `url`, with paths sent (as `helperctl install` arranges for
/// path-routed hosts).
fn fill(sb: &Sandbox, url: &str) -> Output {
    sb.credential_with(
        &["credential.useHttpPath=true"],
        "fill",
        &format!("url={url}\n"),
    )
}

#[track_caller]
fn assert_serves(sb: &Sandbox, url: &str, username: &str, token: &str) {
    let out = fill(sb, url);
    assert!(
        out.status.success(),
        "git credential fill {url} failed\nstderr: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert_eq!(
        value(&text, "password").as_deref(),
        Some(token),
        "{url} must be served the right token\nstdout: {text}\nstderr: {}",
        stderr(&out)
    );
    assert_eq!(
        value(&text, "username").as_deref(),
        Some(username),
        "{url}: username\nstdout: {text}"
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

/// The 1-based line of the first line of `text` that contains `needle`.
#[track_caller]
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is in:\n{text}"))
        + 1
}

/// One git HTTP server holding the three repos, each accepting only its own token, and a
/// sandbox with runtimes `acme` (`/acme/`, `/acme-infra/`) and `oss` (the whole host, as
/// octocat), both with their tokens set.
struct ThreeRepos {
    // Declared first: the server stops before the sandbox folder goes.
    server: GitServer,
    sb: Sandbox,
}

impl ThreeRepos {
    fn url(&self, repo: &str) -> String {
        self.server.url(repo)
    }

    /// `http://127.0.0.1:PORT`
    fn base(&self) -> String {
        self.server.base_url()
    }

    /// The line git must be told to send paths to this host.
    fn fix_line(&self) -> String {
        format!(
            "git config --global credential.{}.useHttpPath true",
            self.base()
        )
    }

    /// Clones `repo` into `dir` (under the sandbox), with no prompt possible.
    fn clone(&self, repo: &str, dir: &str) -> Output {
        git_in(
            &self.sb,
            self.sb.dir.path(),
            &["clone", "-q", &self.url(repo), dir],
        )
    }

    fn work(&self, dir: &str) -> PathBuf {
        self.sb.dir.path().join(dir)
    }
}

/// The credentials the server accepts for a request path, as (username, token).
fn expected_credentials(path: &str) -> (&'static str, &'static str) {
    if path.starts_with("/acme/") || path.starts_with("/acme-infra/") {
        ("x-access-token", TOKEN_ACME)
    } else if path.starts_with("/octocat/") {
        ("octocat", TOKEN_OSS)
    } else {
        panic!("the tests only use the three repos, not {path}")
    }
}

/// The fixture; `install` runs `helperctl install` (credential.helper + useHttpPath).
fn setup_three_repos(install: bool) -> ThreeRepos {
    let sb = Sandbox::new();
    let repos = sb.dir.path().join("repos");
    fs::create_dir(&repos).unwrap();
    let server = GitServer::start(
        &repos,
        vec![
            Account::new("/acme/", "x-access-token", TOKEN_ACME),
            Account::new("/acme-infra/", "x-access-token", TOKEN_ACME),
            Account::new("/octocat/", "octocat", TOKEN_OSS),
        ],
    );
    for repo in [APP, OPS, DOTFILES] {
        server.create_bare_repo(repo);
    }
    let base = server.base_url();
    ctl_ok(
        &sb,
        &[
            "runtime",
            "add",
            "acme",
            "--provider",
            "github",
            "--url",
            &format!("{base}/acme/"),
            "--url",
            &format!("{base}/acme-infra/"),
        ],
    );
    ctl_ok(
        &sb,
        &[
            "runtime",
            "add",
            "oss",
            "--provider",
            "github",
            "--url",
            &format!("{base}/"),
            "--username",
            "octocat",
        ],
    );
    token_set(&sb, "acme", TOKEN_ACME, &["--name", "acme laptop"]);
    token_set(&sb, "oss", TOKEN_OSS, &["--name", "octocat pat"]);
    if install {
        ctl_ok(&sb, &["install"]);
    }
    ThreeRepos { server, sb }
}

/// Every request that carried credentials carried the ones for its own repo.
#[track_caller]
fn assert_only_right_tokens_sent(log: &[AuthAttempt]) {
    for attempt in log {
        let Some((user, password)) = &attempt.credentials else {
            continue;
        };
        let (want_user, want_token) = expected_credentials(&attempt.path);
        let leaked = if want_token == TOKEN_ACME {
            TOKEN_OSS
        } else {
            TOKEN_ACME
        };
        assert_ne!(
            password, leaked,
            "the wrong token was sent to {} {}",
            attempt.method, attempt.path
        );
        assert_eq!(
            (user.as_str(), password.as_str()),
            (want_user, want_token),
            "{} {} carried the wrong credentials",
            attempt.method,
            attempt.path
        );
        assert!(attempt.accepted, "refused: {attempt:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 1, 2: end to end with real git over HTTP
// ---------------------------------------------------------------------------------------

#[test]
fn clone_and_push_to_three_repos_each_get_their_own_token_without_a_prompt() {
    let f = setup_three_repos(true);
    let sb = &f.sb;
    for (repo, dir) in [(APP, "app"), (OPS, "ops"), (DOTFILES, "dotfiles")] {
        let out = f.clone(repo, dir);
        assert_ok(&out);
        let work = f.work(dir);
        commit(sb, &work, "README");
        git_ok(sb, &work, &["push", "-q", "origin", "HEAD:main"]);
        // A second round on the same clone: fetch, commit, push.
        git_ok(sb, &work, &["fetch", "-q", "origin"]);
        commit(sb, &work, "CHANGES");
        git_ok(sb, &work, &["push", "-q", "origin", "HEAD:main"]);
    }

    // What each server repo holds is what was pushed to it.
    for (repo, dir) in [(APP, "app"), (OPS, "ops"), (DOTFILES, "dotfiles")] {
        let check = format!("check-{dir}");
        assert_ok(&f.clone(repo, &check));
        for file in ["README", "CHANGES"] {
            assert!(
                f.work(&check).join(file).is_file(),
                "{file} pushed to {repo}"
            );
        }
    }

    let log = f.server.auth_log();
    assert_only_right_tokens_sent(&log);
    for repo in [APP, OPS, DOTFILES] {
        let pushed = log.iter().any(|a| {
            a.method == "POST" && a.path == format!("{repo}/git-receive-pack") && a.accepted
        });
        assert!(pushed, "a push to {repo} went through: {log:#?}");
    }
    assert!(
        log.iter().all(|a| a.credentials.is_some() || !a.accepted),
        "the server accepted nothing without credentials"
    );
}

#[test]
fn without_use_http_path_the_fix_line_is_printed_and_no_token_is_sent_until_install() {
    let f = setup_three_repos(false);
    let out = f.clone(APP, "app");
    assert!(
        !out.status.success(),
        "git sends no path, so helperd cannot choose and git has nothing to send"
    );
    let err = stderr(&out);
    assert_contains(&err, &f.fix_line(), "git's stderr");
    assert_contains(&err, "helperctl install", "git's stderr");
    let log = f.server.auth_log();
    assert!(!log.is_empty(), "git did reach the server");
    assert!(
        log.iter().all(|a| a.credentials.is_none()),
        "no credentials may be sent from a guess: {log:#?}"
    );

    // `helperctl install` writes exactly that line; the same clone then just works.
    let installed = ctl_ok(&f.sb, &["install"]);
    assert_contains(
        &installed,
        &format!("credential.{}.useHttpPath true", f.base()),
        "helperctl install's output",
    );
    f.server.clear_auth_log();
    let out = f.clone(APP, "app");
    assert_ok(&out);
    let log = f.server.auth_log();
    assert!(
        log.iter().any(|a| a.credentials.is_some() && a.accepted),
        "{log:#?}"
    );
    assert_only_right_tokens_sent(&log);
}

#[test]
fn install_is_idempotent_and_dry_run_changes_nothing() {
    let f = setup_three_repos(false);
    let sb = &f.sb;
    let key = format!("credential.{}.usehttppath", f.base());
    let global = |args: &[&str]| {
        let out = sb
            .git()
            .args(["config", "--global"])
            .args(args)
            .output()
            .expect("git runs");
        stdout(&out)
    };

    let dry = ctl_ok(sb, &["install", "--dry-run"]);
    assert_contains(&dry, "would run", "install --dry-run");
    assert_contains(&dry, "useHttpPath", "install --dry-run");
    assert_eq!(global(&["--get-all", &key]), "", "dry run wrote nothing");

    ctl_ok(sb, &["install"]);
    ctl_ok(sb, &["install"]);
    assert_eq!(
        global(&["--get-all", &key]),
        "true\n",
        "one useHttpPath line"
    );
    let helpers = global(&["--get-all", "credential.helper"]);
    assert_eq!(
        helpers.lines().count(),
        1,
        "one credential.helper: {helpers}"
    );
    let helper = Path::new(helpers.trim());
    assert!(
        helper.is_absolute() && helper.ends_with("git-credential-helperd"),
        "credential.helper is the client's absolute path: {helpers}"
    );
}

// ---------------------------------------------------------------------------------------
// 3: which
// ---------------------------------------------------------------------------------------

#[test]
fn which_names_the_runtime_of_each_url_and_the_most_specific_prefix_as_the_reason() {
    let f = setup_three_repos(false);
    let sb = &f.sb;
    let base = f.base();
    for (repo, runtime, prefix) in [
        (APP, "acme", format!("{base}/acme/")),
        (OPS, "acme", format!("{base}/acme-infra/")),
        (DOTFILES, "oss", format!("{base}/")),
    ] {
        let url = f.url(repo);
        let text = ctl_ok(sb, &["which", &url]);
        assert_contains(&text, &format!("-> runtime {runtime}"), "which");
        assert_contains(&text, &format!("prefix {prefix} is the"), "which");
        if runtime == "acme" {
            // oss's host-wide prefix matches too; acme's is longer.
            assert_contains(&text, "most specific", "which");
        }

        let json = ctl_ok(sb, &["which", "--json", &url]);
        let v: Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("which --json is JSON ({e}):\n{json}"));
        assert_eq!(v["runtime"], runtime, "{json}");
        assert_eq!(v["prefix"], prefix.as_str(), "{json}");
        assert_eq!(v["url"], url.as_str(), "{json}");
        assert!(
            v["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{json}"
        );
        assert_eq!(v["token"]["state"], "valid", "{json}");
    }
}

#[test]
fn which_with_a_username_other_than_the_runtimes_names_no_runtime_and_says_why() {
    let f = setup_three_repos(false);
    let sb = &f.sb;
    let url = f.url(DOTFILES).replace("http://", "http://someone@");
    let text = ctl_ok(sb, &["which", &url]);
    assert_contains(&text, "-> no runtime", "which");
    assert_contains(&text, "username differs", "which");
    assert_contains(&text, "\"someone\"", "which");
    assert_contains(&text, "\"octocat\"", "which");

    let json = ctl_ok(sb, &["which", "--json", &url]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(v["runtime"].is_null(), "{json}");
    let oss = v["candidates"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["runtime"] == "oss"))
        .unwrap_or_else(|| panic!("oss is among the candidates: {json}"));
    assert!(
        oss["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("username differs")),
        "{json}"
    );

    // The runtime's own username is fine.
    let url = f.url(DOTFILES).replace("http://", "http://octocat@");
    assert_contains(&ctl_ok(sb, &["which", &url]), "-> runtime oss", "which");
}

// ---------------------------------------------------------------------------------------
// 4: token link and removal
// ---------------------------------------------------------------------------------------

const TOKEN_SHARED: &str = "glpat-sharedTok3nForTwoRuntimes";

#[test]
fn a_linked_token_serves_both_runtimes_and_survives_removal_from_one() {
    let sb = Sandbox::new();
    add_runtime(&sb, "a", "github", "https://git.example/a/");
    add_runtime(&sb, "b", "github", "https://git.example/b/");
    token_set(&sb, "a", TOKEN_SHARED, &["--name", "shared one"]);
    let url_a = "https://git.example/a/repo.git";
    let url_b = "https://git.example/b/repo.git";
    let stderr_b = assert_serves_nothing(&sb, url_b);
    assert_contains(
        &stderr_b,
        "runtime b has no token",
        "fill for b before the link",
    );

    ctl_ok(&sb, &["token", "link", "b", "--from", "a"]);
    assert_serves(&sb, url_a, "x-access-token", TOKEN_SHARED);
    assert_serves(&sb, url_b, "x-access-token", TOKEN_SHARED);
    assert_eq!(
        runtime_status(&sb, "a")["token"]["shared_with"],
        serde_json::json!(["b"])
    );
    assert_eq!(
        runtime_status(&sb, "b")["token"]["shared_with"],
        serde_json::json!(["a"])
    );
    assert_eq!(
        runtime_status(&sb, "a")["token"]["id"],
        runtime_status(&sb, "b")["token"]["id"],
        "one token, stored once"
    );
    assert_contains(&ctl_ok(&sb, &["status"]), "shared with b", "status");

    // Taken away from a: b keeps it.
    let removed = ctl_ok(&sb, &["token", "remove", "a"]);
    assert_contains(&removed, "stays for b", "token remove a");
    let stderr_a = assert_serves_nothing(&sb, url_a);
    assert_contains(
        &stderr_a,
        "runtime a has no token",
        "fill for a after removal",
    );
    assert_serves(&sb, url_b, "x-access-token", TOKEN_SHARED);
    let b = runtime_status(&sb, "b");
    assert_eq!(b["token"]["shared_with"], serde_json::json!([]), "{b:#}");
    assert!(runtime_status(&sb, "a")["token"].is_null());

    // Taken away from b too: it is gone.
    let removed = ctl_ok(&sb, &["token", "remove", "b"]);
    assert_contains(&removed, "deleted", "token remove b");
    let stderr_b = assert_serves_nothing(&sb, url_b);
    assert_contains(
        &stderr_b,
        "runtime b has no token",
        "fill for b after removal",
    );
    assert!(runtime_status(&sb, "b")["token"].is_null());
    let again = ctl_err(&sb, &["token", "remove", "b"]);
    assert_contains(&again, "has no token", "a second token remove b");
}

// ---------------------------------------------------------------------------------------
// 5: config reload
// ---------------------------------------------------------------------------------------

const TOKEN_A: &str = "ghp_tokenOfRuntimeA_reload";
const TOKEN_C: &str = "ghp_tokenOfRuntimeC_reload";

const RUNTIME_C: &str = "
# added by hand, not with helperctl
[[runtime]]
name = \"c\"
provider = \"github\"
urls = [\"https://git.example/c/\"]
";

/// A sandbox with runtime `a` (all of git.example) holding TOKEN_A, and the daemon running.
fn reload_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    add_runtime(&sb, "a", "github", "https://git.example/");
    token_set(&sb, "a", TOKEN_A, &[]);
    assert!(sb.daemon_pid().is_some(), "token set started the daemon");
    sb
}

#[test]
fn a_hand_edit_of_the_config_is_used_by_the_next_request_without_a_restart() {
    let sb = reload_sandbox();
    let pid = sb.daemon_pid();
    let url_c = "https://git.example/c/repo.git";
    assert_serves(&sb, url_c, "x-access-token", TOKEN_A);

    append_config(&sb, RUNTIME_C);
    let err = assert_serves_nothing(&sb, url_c);
    assert_contains(
        &err,
        "runtime c has no token",
        "fill after adding runtime c",
    );
    token_set(&sb, "c", TOKEN_C, &[]);
    assert_serves(&sb, url_c, "x-access-token", TOKEN_C);
    assert_serves(
        &sb,
        "https://git.example/a/repo.git",
        "x-access-token",
        TOKEN_A,
    );
    assert_eq!(sb.daemon_pid(), pid, "the same daemon all along");
}

#[test]
fn a_broken_edit_keeps_the_last_good_config_serving_and_is_reported_once_to_git_and_in_status() {
    let sb = reload_sandbox();
    append_config(&sb, RUNTIME_C);
    token_set(&sb, "c", TOKEN_C, &[]);
    let good = read_config(&sb);
    let url_c = "https://git.example/c/repo.git";

    append_config(&sb, "\n[[runtime]]\nname = \"x\"\nprovider = \"githup\"\n");
    let line = line_of(&read_config(&sb), "githup");
    let location = format!("config.toml:{line}:");

    let out = fill(&sb, url_c);
    assert_eq!(
        served(&out).as_deref(),
        Some(TOKEN_C),
        "the last good config serves"
    );
    let err = stderr(&out);
    assert_contains(&err, &location, "git's stderr after the broken edit");
    assert_contains(&err, "unknown provider \"githup\"", "git's stderr");
    assert_eq!(err.matches("githup").count(), 1, "printed once:\n{err}");

    let out = fill(&sb, url_c);
    assert_eq!(served(&out).as_deref(), Some(TOKEN_C));
    assert_lacks(
        &stderr(&out),
        "githup",
        "git's stderr on the second request",
    );

    // Another broken version of the file is news: said once more, then not again.
    let broken = read_config(&sb).replace("\"githup\"", "\"gitlub\"");
    write_config(&sb, &broken);
    let err = stderr(&fill(&sb, url_c));
    assert_contains(
        &err,
        "unknown provider \"gitlub\"",
        "git's stderr, new broken edit",
    );
    assert_lacks(
        &stderr(&fill(&sb, url_c)),
        "gitlub",
        "git's stderr the time after",
    );
    write_config(&sb, &broken.replace("\"gitlub\"", "\"githup\""));

    let status = ctl_ok(&sb, &["status"]);
    assert_contains(&status, &location, "status");
    assert_contains(&status, "githup", "status");
    let json = status_json(&sb);
    let error = json["daemon"]["config"]["error"]
        .as_str()
        .unwrap_or_default();
    assert_contains(error, &location, "status --json daemon.config.error");
    assert_contains(error, "unknown provider \"githup\"", "daemon.config.error");
    let runtimes: Vec<&str> = json["daemon"]["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(runtimes, ["a", "c"], "the last good config is in force");

    let reload = ctl(&sb, &["daemon", "reload"]);
    assert!(!reload.status.success(), "reload of a broken file fails");
    assert_contains(&stderr(&reload), &location, "daemon reload's stderr");
    assert_contains(&stderr(&reload), "githup", "daemon reload's stderr");
    assert_eq!(served(&fill(&sb, url_c)).as_deref(), Some(TOKEN_C));

    // Fixed: the error is gone.
    write_config(&sb, &good);
    let status = ctl_ok(&sb, &["status"]);
    assert_lacks(&status, "githup", "status after the fix");
    assert_lacks(&status, "BROKEN", "status after the fix");
    assert!(status_json(&sb)["daemon"]["config"]["error"].is_null());
    assert_ok(&ctl(&sb, &["daemon", "reload"]));
    let out = fill(&sb, url_c);
    assert_eq!(served(&out).as_deref(), Some(TOKEN_C));
    assert_lacks(&stderr(&out), "config.toml", "git's stderr after the fix");
}

#[test]
fn a_broken_edit_is_still_reported_to_git_after_helperctl_status_showed_it() {
    let sb = reload_sandbox();
    append_config(&sb, "\n[[runtime]]\nname = \"x\"\nprovider = \"githup\"\n");
    assert_contains(&ctl_ok(&sb, &["status"]), "githup", "status");
    // The person pushing is not necessarily the one (or the script) that ran status.
    let out = fill(&sb, "https://git.example/a/repo.git");
    assert_eq!(served(&out).as_deref(), Some(TOKEN_A));
    assert_contains(&stderr(&out), "githup", "git's stderr after status");
}

#[test]
fn sighup_reloads_the_config() {
    let sb = reload_sandbox();
    append_config(&sb, RUNTIME_C);
    assert_eq!(
        runtime_status(&sb, "c")["urls"][0],
        "https://git.example/c/"
    );

    // An edit that keeps the file's size, inode and modification time: nothing but the
    // signal tells the daemon about it.
    let path = config_path(&sb);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let edited = read_config(&sb).replace("https://git.example/c/", "https://git.example/d/");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.write_all(edited.as_bytes()).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);

    let pid = sb.daemon_pid().expect("the daemon runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let reloaded = wait_until(Duration::from_secs(5), || {
        runtime_status(&sb, "c")["urls"][0] == "https://git.example/d/"
    });
    assert!(reloaded, "{:#}", runtime_status(&sb, "c"));
    assert_eq!(
        sb.daemon_pid(),
        Some(pid),
        "SIGHUP does not stop the daemon"
    );

    // A broken edit through SIGHUP shows in status.
    append_config(&sb, "\n[[runtime]]\nname = \"x\"\nprovider = \"githup\"\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let json = status_json(&sb);
    assert_contains(
        json["daemon"]["config"]["error"]
            .as_str()
            .unwrap_or_default(),
        "githup",
        "daemon.config.error",
    );
}

// ---------------------------------------------------------------------------------------
// 6, 7: config errors, and comments kept
// ---------------------------------------------------------------------------------------

#[test]
fn every_config_error_through_runtime_add_is_refused_and_leaves_the_file_untouched() {
    let sb = Sandbox::new();
    add_runtime(&sb, "acme", "github", "https://github.com/acme/");
    let before = fs::read(config_path(&sb)).unwrap();

    let add = |name: &str, extra: &[&str]| {
        let mut args = vec!["runtime", "add", name];
        args.extend_from_slice(extra);
        let err = ctl_err(&sb, &args);
        assert_eq!(
            fs::read(config_path(&sb)).unwrap(),
            before,
            "config.toml changed by a refused `helperctl {args:?}`"
        );
        err
    };

    // The same prefix, spelt differently: still the same prefix.
    let err = add(
        "other",
        &[
            "--provider",
            "github",
            "--url",
            "https://GitHub.com:443/acme",
        ],
    );
    assert_contains(&err, "https://github.com/acme/", "duplicate prefix");
    assert_contains(&err, "already used by runtime \"acme\"", "duplicate prefix");

    let err = add(
        "other",
        &["--provider", "github", "--url", "github.com/other/"],
    );
    assert_contains(&err, "\"github.com/other/\" is malformed", "malformed URL");
    assert_contains(&err, "scheme", "malformed URL");
    let err = add(
        "other",
        &["--provider", "github", "--url", "ftp://github.com/other/"],
    );
    assert_contains(&err, "malformed", "ftp URL");
    assert_contains(&err, "https or http", "ftp URL");
    let err = add(
        "other",
        &["--provider", "github", "--url", "https://git hub.com/"],
    );
    assert_contains(&err, "malformed", "host with a space");

    let err = add(
        "other",
        &["--provider", "githup", "--url", "https://x.example/"],
    );
    assert_contains(&err, "unknown provider \"githup\"", "unknown provider");
    assert_contains(
        &err,
        "github, gitlab, bitbucket, bitbucket-server, gitea, generic",
        "unknown provider",
    );

    let err = add(
        "acme",
        &["--provider", "github", "--url", "https://gitlab.com/"],
    );
    assert_contains(&err, "\"acme\"", "duplicate name");
    assert!(
        err.contains("twice") || err.contains("already"),
        "duplicate name says so: {err}"
    );

    let err = add(
        "bad name!",
        &["--provider", "github", "--url", "https://x.example/"],
    );
    assert_contains(&err, "\"bad name!\" is invalid", "invalid name");
    assert_contains(&err, "letters, digits", "invalid name");
}

#[test]
fn every_config_error_by_hand_shows_in_runtime_list_with_file_and_line() {
    let sb = Sandbox::new();
    let first = "# my runtimes\n[[runtime]]\nname = \"acme\"\nprovider = \"github\"\nurls = [\"https://github.com/acme/\"]\n\n";
    let cases: [(&str, &str, &str, &[&str]); 5] = [
        (
            "duplicate prefix",
            "[[runtime]]\nname = \"other\"\nprovider = \"github\"\nurls = [\"https://github.com/acme\"]\n",
            "https://github.com/acme\"",
            &["already used by runtime \"acme\""],
        ),
        (
            "malformed URL",
            "[[runtime]]\nname = \"other\"\nprovider = \"github\"\nurls = [\"github.com/x/\"]\n",
            "github.com/x/",
            &["\"github.com/x/\" is malformed"],
        ),
        (
            "unknown provider",
            "[[runtime]]\nname = \"other\"\nprovider = \"githup\"\nurls = [\"https://x.example/\"]\n",
            "githup",
            &["unknown provider \"githup\"", "bitbucket-server"],
        ),
        (
            "duplicate name",
            "[[runtime]]\nname = \"acme\"\nprovider = \"github\"\nurls = [\"https://x.example/\"]\n",
            "name = \"acme\"\nprovider = \"github\"\nurls = [\"https://x",
            &["\"acme\"", "twice"],
        ),
        (
            "invalid name",
            "[[runtime]]\nname = \"bad name\"\nprovider = \"github\"\nurls = [\"https://x.example/\"]\n",
            "bad name",
            &["\"bad name\" is invalid"],
        ),
    ];
    for (what, second, marker, problems) in cases {
        let text = format!("{first}{second}");
        write_config(&sb, &text);
        // The line of the offending value (for a duplicate name: the second `name =`).
        let offset = text
            .rfind(marker)
            .expect("the marker is in the case's text");
        let line = text[..offset].matches('\n').count() + 1;
        let err = ctl_err(&sb, &["runtime", "list"]);
        let path = config_path(&sb).display().to_string();
        assert_contains(&err, &format!("{path}:{line}:"), what);
        for problem in problems {
            assert_contains(&err, problem, what);
        }
        let err = ctl_err(&sb, &["runtime", "list", "--json"]);
        assert_contains(&err, &format!("{path}:{line}:"), what);
    }
}

#[test]
fn runtime_add_to_a_broken_file_names_the_files_own_error_and_changes_nothing() {
    let sb = Sandbox::new();
    let text = "[[runtime]]\nname = \"acme\"\nprovider = \"githup\"\nurls = [\"https://github.com/acme/\"]\n";
    write_config(&sb, text);
    let err = ctl_err(
        &sb,
        &[
            "runtime",
            "add",
            "oss",
            "--provider",
            "github",
            "--url",
            "https://github.com/",
        ],
    );
    let path = config_path(&sb).display().to_string();
    assert_contains(&err, "githup", "runtime add on a broken file");
    assert_contains(&err, &format!("{path}:3:"), "runtime add on a broken file");
    assert_eq!(read_config(&sb), text, "the broken file is left as it was");
}

#[test]
fn a_removed_runtime_takes_its_token_away_even_when_the_daemon_was_stopped() {
    let sb = Sandbox::new();
    let add = |url: &str| {
        ctl_ok(
            &sb,
            &["runtime", "add", "r", "--provider", "github", "--url", url],
        )
    };
    add("https://work.example/");
    token_set(&sb, "r", TOKEN_ACME, &[]);
    assert_serves(
        &sb,
        "https://work.example/o/r.git",
        "x-access-token",
        TOKEN_ACME,
    );

    ctl_ok(&sb, &["daemon", "stop"]);
    ctl_ok(&sb, &["runtime", "remove", "r"]);
    // A new runtime of the same name, for another server: the old token must not follow.
    add("https://elsewhere.example/");
    let err = assert_serves_nothing(&sb, "https://elsewhere.example/o/r.git");
    assert_contains(&err, "runtime r has no token", "fill for the new runtime r");
    assert!(runtime_status(&sb, "r")["token"].is_null());
}

const COMMENTED: &str = "# helperd config: my notes
# keep this header

[settings]
warn_days = 14 # two weeks

# the work identity
[[runtime]]
name = \"acme\"   # the org
provider = \"github\"
urls = [
  \"https://github.com/acme/\", # main org
]

# footer: written by hand
";

#[test]
fn runtime_add_and_remove_keep_the_users_comments() {
    let sb = Sandbox::new();
    write_config(&sb, COMMENTED);
    ctl_ok(
        &sb,
        &[
            "runtime",
            "add",
            "oss",
            "--provider",
            "github",
            "--url",
            "https://github.com/",
            "--username",
            "octocat",
        ],
    );
    let added = read_config(&sb);
    assert!(
        added.starts_with(COMMENTED),
        "the user's text is kept byte for byte:\n{added}"
    );
    assert_contains(&added, "name = \"oss\"", "config after add");
    let list = ctl_ok(&sb, &["runtime", "list"]);
    assert_contains(&list, "oss", "runtime list");
    assert_contains(&list, "acme", "runtime list");

    ctl_ok(&sb, &["runtime", "remove", "oss"]);
    assert_eq!(
        read_config(&sb),
        COMMENTED,
        "add then remove gives the user's file back"
    );

    // Removing the user's own runtime takes its table (and the comment on it) only.
    ctl_ok(&sb, &["runtime", "remove", "acme"]);
    let left = read_config(&sb);
    for kept in [
        "# helperd config: my notes",
        "# keep this header",
        "warn_days = 14 # two weeks",
        "# footer: written by hand",
    ] {
        assert_contains(&left, kept, "config after removing acme");
    }
    assert_lacks(&left, "acme", "config after removing acme");
}

// ---------------------------------------------------------------------------------------
// 8: no secret anywhere
// ---------------------------------------------------------------------------------------

#[test]
fn no_token_appears_in_status_which_json_list_logs_or_files_after_a_full_flow() {
    let f = setup_three_repos(true);
    let sb = &f.sb;
    assert_ok(&f.clone(APP, "app"));
    assert_ok(&f.clone(DOTFILES, "dotfiles"));
    ctl_ok(
        sb,
        &[
            "runtime",
            "add",
            "infra",
            "--provider",
            "github",
            "--url",
            &format!("{}/acme-infra/ops", f.base()),
        ],
    );
    ctl_ok(sb, &["token", "link", "infra", "--from", "acme"]);
    assert_ok(&f.clone(OPS, "ops"));
    assert_only_right_tokens_sent(&f.server.auth_log());

    let mut texts: Vec<(String, String)> = Vec::new();
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["runtime", "list"],
        vec!["runtime", "list", "--json"],
    ] {
        texts.push((format!("helperctl {args:?}"), ctl_ok(sb, &args)));
    }
    for url in [f.url(APP), f.url(OPS), f.url(DOTFILES)] {
        for json in [false, true] {
            let mut args = vec!["which"];
            if json {
                args.push("--json");
            }
            args.push(&url);
            let out = ctl(sb, &args);
            texts.push((format!("helperctl {args:?}"), stdout(&out) + &stderr(&out)));
        }
    }
    texts.push(("the daemon log".into(), sb.log()));
    assert!(
        sb.log().contains("TRACE") || sb.log().contains("DEBUG"),
        "the log is at trace level"
    );
    // Every file of the sandbox: helperd's config, state and store, git's config, the clones.
    for file in files_under(sb.dir.path()) {
        let bytes = fs::read(&file).unwrap_or_default();
        texts.push((
            file.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (what, text) in &texts {
        for token in [TOKEN_ACME, TOKEN_OSS] {
            assert!(!text.contains(token), "a token leaked into {what}:\n{text}");
        }
    }
}

#[test]
fn which_neither_prints_nor_logs_a_token_written_in_the_url() {
    let f = setup_three_repos(false);
    let sb = &f.sb;
    // CI remotes are often written with the token in them; `which` is asked about them.
    let url = f
        .url(APP)
        .replace("http://", &format!("http://x-access-token:{TOKEN_ACME}@"));
    for json in [false, true] {
        let mut args = vec!["which"];
        if json {
            args.push("--json");
        }
        args.push(&url);
        let out = ctl(sb, &args);
        assert_ok(&out);
        assert_contains(&stdout(&out), "acme", "which");
        assert_lacks(&stdout(&out), TOKEN_ACME, "which's stdout");
        assert_lacks(&stderr(&out), TOKEN_ACME, "which's stderr");
    }
    assert_lacks(&sb.log(), TOKEN_ACME, "the daemon log");
}

// ---------------------------------------------------------------------------------------
// 9, 10: Bearer-only tokens and usernames per provider
// ---------------------------------------------------------------------------------------

const TOKEN_BEARER: &str = "BBDC-bearerOnlyProjectTok3n";

#[test]
fn a_bearer_only_token_is_served_as_authtype_bearer_only_to_a_git_that_announces_it() {
    let sb = Sandbox::new();
    ctl_ok(
        &sb,
        &[
            "runtime",
            "add",
            "proj",
            "--provider",
            "bitbucket-server",
            "--url",
            "https://bb.example/",
            "--username",
            "u",
            "--auth",
            "bearer",
        ],
    );
    token_set(&sb, "proj", TOKEN_BEARER, &[]);

    let out = sb.credential(
        "fill",
        "capability[]=authtype\nprotocol=https\nhost=bb.example\n",
    );
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(
        value(&text, "authtype").as_deref(),
        Some("Bearer"),
        "{text}"
    );
    assert_eq!(
        value(&text, "credential").as_deref(),
        Some(TOKEN_BEARER),
        "{text}"
    );
    assert_eq!(value(&text, "password"), None, "{text}");

    let out = sb.credential("fill", "protocol=https\nhost=bb.example\n");
    let text = stdout(&out);
    assert_eq!(value(&text, "credential"), None, "{text}");
    assert_eq!(value(&text, "password"), None, "{text}");
    let err = stderr(&out);
    assert_contains(&err, "proj", "stderr without the capability");
    assert_contains(
        &err,
        "capability[]=authtype",
        "stderr without the capability",
    );
    assert_contains(&err, "2.46", "stderr without the capability");
}

const TOKEN_GL: &str = "glpat-usernameTestGitLab";
const TOKEN_GH: &str = "ghp_usernameTestGitHub";
const TOKEN_BB: &str = "ATBB-usernameTestBitbucket";

#[test]
fn each_provider_answers_with_its_documented_username_and_bitbucket_dc_needs_the_account() {
    let sb = Sandbox::new();
    for (name, provider, url) in [
        ("work-gl", "gitlab", "https://gitlab.example.com/"),
        ("gh", "github", "https://github.example.com/"),
        // Bitbucket Cloud API tokens: the static username Atlassian documents.
        ("bb", "bitbucket", "https://bitbucket.org/"),
    ] {
        ctl_ok(
            &sb,
            &["runtime", "add", name, "--provider", provider, "--url", url],
        );
    }
    let added = add_runtime(
        &sb,
        "dc",
        "bitbucket-server",
        "https://bitbucket.corp.example/",
    );
    assert_contains(
        &added,
        "username",
        "runtime add of a bitbucket-server runtime",
    );
    token_set(&sb, "work-gl", TOKEN_GL, &[]);
    token_set(&sb, "gh", TOKEN_GH, &[]);
    token_set(&sb, "bb", TOKEN_BB, &[]);
    token_set(&sb, "dc", TOKEN_DC, &[]);

    assert_serves(
        &sb,
        "https://gitlab.example.com/g/r.git",
        "oauth2",
        TOKEN_GL,
    );
    assert_serves(
        &sb,
        "https://github.example.com/o/r.git",
        "x-access-token",
        TOKEN_GH,
    );
    assert_serves(
        &sb,
        "https://bitbucket.org/ws/r.git",
        "x-bitbucket-api-token-auth",
        TOKEN_BB,
    );
    let err = assert_serves_nothing(&sb, "https://bitbucket.corp.example/scm/p/r.git");
    assert_contains(&err, "dc", "stderr for bitbucket-server");
    assert_contains(&err, "username", "stderr for bitbucket-server");
    assert_lacks(&err, TOKEN_DC, "stderr for bitbucket-server");

    let problem = runtime_status(&sb, "dc")["problem"].clone();
    assert!(
        problem.as_str().is_some_and(|p| p.contains("username")),
        "status --json names the problem: {problem}"
    );
    let status = ctl_ok(&sb, &["status"]);
    assert_contains(
        &status,
        "bitbucket-server tokens need your account username",
        "status",
    );
    assert!(runtime_status(&sb, "gh")["problem"].is_null());
    assert!(runtime_status(&sb, "bb")["problem"].is_null());
}

// ---------------------------------------------------------------------------------------
// 11: expiry
// ---------------------------------------------------------------------------------------

const TOKEN_EXP: &str = "ghp_soonExpiringTok3n";
const TOKEN_DC: &str = "BBDC-dataCenterTok3nXyz";

#[test]
fn an_expired_token_is_never_served() {
    let sb = Sandbox::new();
    add_runtime(&sb, "exp", "github", "https://git.example/");
    // A few seconds of life; long enough for a slow, busy machine to serve it once.
    let expires = unix_now() + 6;
    let stamp = rfc3339(expires);
    token_set(
        &sb,
        "exp",
        TOKEN_EXP,
        &["--name", "short-lived", "--expires", &stamp],
    );
    assert_eq!(
        runtime_status(&sb, "exp")["token"]["expires"],
        expires,
        "--expires {stamp} is that second"
    );

    let out = fill(&sb, "https://git.example/o/r.git");
    assert_eq!(served(&out).as_deref(), Some(TOKEN_EXP), "{}", stderr(&out));
    assert_eq!(
        value(&stdout(&out), "password_expiry_utc"),
        Some(expires.to_string()),
        "git learns the expiry too"
    );

    sb.advance_clock_past(expires);
    let err = assert_serves_nothing(&sb, "https://git.example/o/r.git");
    assert_contains(&err, "runtime exp", "stderr after expiry");
    assert_contains(&err, "expired", "stderr after expiry");
    assert_eq!(runtime_status(&sb, "exp")["token"]["state"], "expired");
}

#[test]
fn token_set_refuses_an_expiry_in_the_past_or_an_impossible_date() {
    let sb = Sandbox::new();
    add_runtime(&sb, "r", "github", "https://git.example/");
    let out = token_set_output(&sb, "r", "ghp_neverStored1", &["--expires", "2020-01-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_contains(
        &stderr(&out),
        "in the past",
        "token set --expires 2020-01-01",
    );

    let out = token_set_output(&sb, "r", "ghp_neverStored2", &["--expires", "2027-02-30"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_contains(&err, "--expires", "token set --expires 2027-02-30");
    assert_contains(
        &err,
        "day 30 does not exist",
        "token set --expires 2027-02-30",
    );

    assert!(
        runtime_status(&sb, "r")["token"].is_null(),
        "nothing was stored"
    );
    assert_serves_nothing(&sb, "https://git.example/o/r.git");
}

// ---------------------------------------------------------------------------------------
// Concurrent edits of config.toml
// ---------------------------------------------------------------------------------------

/// Runs `helperctl ARGS` for each of `args` at once (all started before any is waited
/// for); returns the outputs in the same order.
fn ctl_in_parallel(sb: &Sandbox, args: Vec<Vec<String>>) -> Vec<Output> {
    let children: Vec<_> = args
        .iter()
        .map(|a| {
            sb.ctl()
                .args(a)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("helperctl starts")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("helperctl finishes"))
        .collect()
}

#[test]
fn fifty_parallel_runtime_adds_then_removes_lose_no_update_and_keep_comments() {
    const N: usize = 50;
    let sb = Sandbox::new();
    let path = crate::util::config_path(&sb);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let comment = "# the team's runtimes: keep this line\n";
    fs::write(&path, comment).unwrap();

    let adds = (0..N)
        .map(|i| {
            ["runtime", "add", &format!("r{i}"), "--provider", "github"]
                .iter()
                .map(|s| s.to_string())
                .chain(["--url".into(), format!("https://h{i}.example/")])
                .collect()
        })
        .collect();
    for (i, out) in ctl_in_parallel(&sb, adds).iter().enumerate() {
        assert_ok(out);
        assert!(
            stdout(out).contains(&format!("added runtime r{i}")),
            "{}",
            stdout(out)
        );
    }
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(comment), "the comment is kept:\n{text}");
    let config = helperd::config::Config::parse(&text, &path).expect("the file stays valid");
    let mut names: Vec<_> = config.runtimes.iter().map(|r| r.name.clone()).collect();
    names.sort();
    let mut expected: Vec<_> = (0..N).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "every parallel add is in the file");

    let removes = (0..N)
        .map(|i| vec!["runtime".into(), "remove".into(), format!("r{i}")])
        .collect();
    for out in ctl_in_parallel(&sb, removes) {
        assert_ok(&out);
    }
    let text = fs::read_to_string(&path).unwrap();
    let config = helperd::config::Config::parse(&text, &path).expect("the file stays valid");
    assert_eq!(
        config.runtimes.len(),
        0,
        "every parallel remove took effect:\n{text}"
    );
    assert!(text.starts_with(comment), "the comment is kept:\n{text}");

    // An edit that cannot be applied says so and changes nothing.
    let before = fs::read(&path).unwrap();
    let out = crate::util::ctl(&sb, &["runtime", "remove", "nosuch"]);
    assert!(!out.status.success(), "removing a missing runtime fails");
    assert_eq!(fs::read(&path).unwrap(), before, "and changes nothing");
}

/// `last_used` is saved at most hourly while the daemon runs, and at once when it stops:
/// a stop loses no use.
#[test]
fn the_last_use_is_saved_when_the_daemon_stops() {
    let sb = Sandbox::new();
    add_runtime(&sb, "gl", "gitlab", "https://gl.example/");
    token_set(&sb, "gl", "glpat-LastUseSaved1", &[]);
    let query = "protocol=https\nhost=gl.example\n";
    assert_ok(&sb.credential("fill", query));
    let later = sb.advance_clock(90);
    assert_ok(&sb.credential("fill", query));
    let tokens = || -> Value {
        serde_json::from_slice(&fs::read(sb.helperd_home().join("state/tokens.json")).unwrap())
            .unwrap()
    };
    let before = tokens()["tokens"][0]["last_used"].as_u64();
    assert!(
        before.is_none_or(|b| b < later),
        "the last use waits for a later save: {before:?}"
    );
    ctl_ok(&sb, &["daemon", "stop"]);
    let after = tokens()["tokens"][0]["last_used"].as_u64().unwrap();
    assert!(after >= later, "saved at the stop: {after} >= {later}");
}

/// URLs with a password in them, whatever characters it holds, are never printed back.
#[test]
fn a_password_in_a_url_is_never_printed_whatever_it_holds() {
    let sb = Sandbox::new();
    for secret in ["Sec#ret1", "Sec?ret2", "Sec/ret3", "Sec@ret4", "Sec%40ret5"] {
        let url = format!("https://user:{secret}@h.example/org/");
        let mut outs = vec![
            crate::util::ctl(&sb, &["runtime", "add", "x", "--url", &url]),
            crate::util::ctl(
                &sb,
                &[
                    "runtime",
                    "add",
                    "y",
                    "--url",
                    "https://h.example/",
                    "--api-url",
                    &url,
                ],
            ),
            crate::util::ctl(&sb, &["which", &format!("{url}repo.git")]),
            crate::util::ctl(&sb, &["which", "--json", &format!("{url}repo.git")]),
        ];
        outs.push(crate::util::ctl(
            &sb,
            &["which", &url.replace("h.example", "h.example:bad")],
        ));
        for out in &outs {
            let said = stdout(out) + &stderr(out);
            let hidden = secret.trim_end_matches(char::is_numeric);
            assert!(!said.contains(hidden), "{secret:?} printed: {said}");
        }
    }
}

/// A config.toml that is broken when the daemon starts: no runtime is known, so no URL may
/// fall to the plain credentials; every git request gets the file's error until it is
/// fixed, and then works without a restart.
#[test]
fn a_broken_config_at_a_fresh_start_serves_nothing_until_it_is_fixed() {
    let sb = Sandbox::new();
    assert_ok(&sb.credential(
        "approve",
        "protocol=https\nhost=git.example\nusername=x-access-token\npassword=plain-pw-NotForTheRuntime\n",
    ));
    ctl_ok(&sb, &["daemon", "stop"]);
    let path = crate::util::config_path(&sb);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        &path,
        "[[runtime]]\nname = \"acme\"\nprovider = \"github\"\nurls = [\"https://git.example/\"\n",
    )
    .unwrap();
    let out = sb.credential("fill", "protocol=https\nhost=git.example\n");
    assert!(!out.status.success(), "nothing served");
    assert_eq!(
        value(&stdout(&out), "password"),
        None,
        "no fall-back to the plain credential"
    );
    let err = stderr(&out);
    assert!(
        err.contains("config.toml") && err.contains("serves nothing"),
        "{err}"
    );
    // Fixed: the runtime answers (it has no token yet: its own notice, still no plain).
    fs::write(
        &path,
        "[[runtime]]\nname = \"acme\"\nprovider = \"github\"\nurls = [\"https://git.example/\"]\n",
    )
    .unwrap();
    let out = sb.credential("fill", "protocol=https\nhost=git.example\n");
    assert_eq!(value(&stdout(&out), "password"), None);
    assert!(
        stderr(&out).contains("helperctl token set acme"),
        "{}",
        stderr(&out)
    );
}
