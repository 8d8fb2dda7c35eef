//! Team runtimes from a real OpenBao (DESIGN.md §10): `bao server -dev` on 127.0.0.1,
//! the real git against the git HTTP test server, helperd in between.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bao::{BaoDev, ROOT_TOKEN};
use crate::git_server::{Account, GitServer};
use crate::team_common::{
    entry_for, team_runtime, team_sandbox_with_token, wait_for_openbao_error, wait_for_version,
    TEAM, USER,
};
use crate::util::{assert_ok, files_under, status_json, stderr, stdout, wait_until, Sandbox};
use crate::util::{commit, git_in};

pub const TOKEN_V1: &str = "team-tok-v1-Qp3xZ";
const TOKEN_V2: &str = "team-tok-v2-Hr8wL";

/// A sandbox whose helperd reads team runtimes from the dev servers at `addresses`.
pub fn team_sandbox(addresses: &[&str], openbao_extra: &str, rest: &str) -> Sandbox {
    team_sandbox_with_token(ROOT_TOKEN, addresses, openbao_extra, rest)
}

/// A team entry for the git server's whole host.
pub fn entry(server: &GitServer, token: &str) -> Value {
    entry_for(&server.base_url(), token)
}

pub fn fill(sb: &Sandbox, server: &GitServer) -> std::process::Output {
    sb.credential(
        "fill",
        &format!(
            "protocol=http\nhost=127.0.0.1:{}\npath=app.git\n",
            server.port()
        ),
    )
}

/// Every file of the daemon's, for the no-secret search.
pub fn daemon_files(sb: &Sandbox) -> String {
    let mut all = String::new();
    for f in files_under(&sb.helperd_home()) {
        if let Ok(bytes) = std::fs::read(&f) {
            all.push_str(&format!(
                "== {}\n{}\n",
                f.display(),
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    all
}

#[test]
fn a_team_runtime_serves_git_and_follows_rotation_and_deletion() {
    let bao = BaoDev::start();
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1", "");
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let server = GitServer::start(&repos, vec![Account::new("", USER, TOKEN_V1)]);
    server.create_bare_repo("/app.git");
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));

    wait_for_version(&sb, "ci", 1);
    let rt = team_runtime(&sb, "ci").unwrap();
    assert_eq!(rt["team"]["path"], format!("secret/{TEAM}/ci"));
    assert_eq!(rt["token"]["expires"], json!(4_070_908_800u64));
    let human = crate::util::ctl_ok(&sb, &["status"]);
    assert!(human.contains("ci (team)"), "{human}");
    assert!(
        human.contains(&format!("from OpenBao secret/{TEAM}/ci (KV v2, version 1)")),
        "{human}"
    );
    let which = crate::util::ctl_ok(&sb, &["which", &server.url("/app.git")]);
    assert!(which.contains("team runtime, read from OpenBao"), "{which}");
    // Its token is the admin's: this machine cannot replace it.
    let mut set = sb.ctl();
    set.args(["token", "set", "ci", "--offline"]);
    let out = crate::util::run_with_stdin(set, b"local-attempt\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ci is a team runtime, read from OpenBao"),
        "{}",
        stderr(&out)
    );

    // The real git clones and pushes with the team token, without a prompt.
    let work = sb.dir.path().join("work");
    assert_ok(&git_in(
        &sb,
        sb.dir.path(),
        &["clone", "-q", &server.url("/app.git"), "work"],
    ));
    commit(&sb, &work, "one.txt");
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));

    // The admin rotates: the host takes only the new token, OpenBao has it as version 2.
    server.set_accounts(vec![Account::new("", USER, TOKEN_V2)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V2));
    wait_for_version(&sb, "ci", 2);
    commit(&sb, &work, "two.txt");
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V2));

    // The admin deletes the entry: no longer served.
    bao.ok(&["kv", "metadata", "delete", &format!("secret/{TEAM}/ci")]);
    assert!(
        wait_until(Duration::from_secs(20), || team_runtime(&sb, "ci")
            .is_none()),
        "the deleted runtime is gone from status"
    );
    let out = fill(&sb, &server);
    assert!(
        !stdout(&out).contains(TOKEN_V2),
        "a revoked runtime's token is not served"
    );

    // The audit log names the KV path and version of each token served.
    let audit = std::fs::read_to_string(sb.helperd_home().join("state/audit.log")).unwrap();
    assert!(audit.contains(&format!("secret/{TEAM}/ci v1")), "{audit}");
    assert!(audit.contains(&format!("secret/{TEAM}/ci v2")), "{audit}");

    // No secret anywhere: state and data folders, the trace-level log, status.
    let everything = daemon_files(&sb) + &stdout(&crate::util::ctl(&sb, &["status", "--json"]));
    for secret in [TOKEN_V1, TOKEN_V2, ROOT_TOKEN] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn a_401_makes_the_runner_read_openbao_again_at_once() {
    let bao = BaoDev::start();
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    server.create_bare_repo("/app.git");
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    // An hour between reads: only the 401 can explain a quick pick-up.
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 3600", "");
    wait_for_version(&sb, "ci", 1);
    assert_ok(&git_in(
        &sb,
        sb.dir.path(),
        &["clone", "-q", &server.url("/app.git"), "work"],
    ));

    // Rotated at the host and in OpenBao; this runner still has version 1.
    server.set_accounts(vec![Account::new("", USER, TOKEN_V2)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V2));
    let work = sb.dir.path().join("work");
    commit(&sb, &work, "one.txt");
    let failed = git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]);
    assert!(
        !failed.status.success(),
        "the old token is refused by the host"
    );
    // git's erase after the 401 made helperd read the entry again at once.
    wait_for_version(&sb, "ci", 2);
    assert_ok(&git_in(&sb, &work, &["push", "-q", "origin", "HEAD:main"]));
}

#[test]
fn while_openbao_is_down_secrets_are_served_for_cache_secs_then_a_clear_error() {
    let mut bao = BaoDev::start();
    let port = bao.port();
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1\ncache_secs = 120", "");
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let server = GitServer::start(&repos, vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    wait_for_version(&sb, "ci", 1);

    bao.kill();
    wait_for_openbao_error(&sb);
    let out = fill(&sb, &server);
    assert!(
        stdout(&out).contains(TOKEN_V1),
        "served from memory: {}",
        stderr(&out)
    );

    // Past cache_secs (the daemon's clock moves, nobody waits).
    sb.advance_clock(121);
    let out = fill(&sb, &server);
    assert!(
        !stdout(&out).contains(TOKEN_V1),
        "not served after cache_secs"
    );
    let err = stderr(&out);
    assert!(err.contains("OpenBao is unreachable"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "names the address tried: {err}"
    );
    assert!(!err.contains(TOKEN_V1));

    // OpenBao is back (a dev server forgets everything: the admin publishes again).
    let bao = BaoDev::start_on(port);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    assert!(
        wait_until(Duration::from_secs(20), || stdout(&fill(&sb, &server))
            .contains(TOKEN_V1)),
        "served again once OpenBao answers"
    );
}

#[test]
fn addresses_are_tried_in_order_past_a_dead_one() {
    let bao = BaoDev::start();
    let dead = format!("http://127.0.0.1:{}", crate::bao::free_port());
    let sb = team_sandbox(&[&dead, &bao.addr], "refresh_secs = 1", "");
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir(&repos).unwrap();
    let server = GitServer::start(&repos, vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    wait_for_version(&sb, "ci", 1);
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V1));
    assert_eq!(
        status_json(&sb)["daemon"]["openbao"]["addresses"],
        json!([dead, bao.addr])
    );
}

#[test]
fn a_local_and_a_team_runtime_with_one_name_is_an_error_never_a_choice() {
    let bao = BaoDev::start();
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    let local = format!(
        "[[runtime]]\nname = \"ci\"\nprovider = \"generic\"\nusername = \"{USER}\"\nurls = [\"{}/\"]\n",
        server.base_url()
    );
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1", &local);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    wait_for_version(&sb, "ci", 1);
    let status = status_json(&sb);
    let problems: Vec<&Value> = status["daemon"]["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "ci")
        .map(|r| &r["problem"])
        .collect();
    assert_eq!(problems.len(), 2, "both are listed: {status:#}");
    for p in problems {
        assert!(
            p.as_str().unwrap().contains("defined both in"),
            "{status:#}"
        );
    }
    let out = fill(&sb, &server);
    assert!(!stdout(&out).contains(TOKEN_V1), "neither is served");
    assert!(
        stderr(&out).contains("is defined both in"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_team_entry_is_listed_without_its_token_and_the_others_still_serve() {
    let bao = BaoDev::start();
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1", "");
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(
        &format!("{TEAM}/broken"),
        json!({"provider": "gitbucket", "urls": ["https://x/"], "token": TOKEN_V2}),
    );
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    wait_for_version(&sb, "ci", 1);
    let status = status_json(&sb);
    let invalid = status["daemon"]["openbao"]["invalid"].to_string();
    assert!(invalid.contains("broken: unknown provider"), "{status:#}");
    assert!(!status.to_string().contains(TOKEN_V2));
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V1));
}

#[test]
fn a_team_token_near_its_expiry_warns_once_a_day() {
    let bao = BaoDev::start();
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    // Three days left, written in RFC 3339 as an admin would (built with `date`).
    let at = format!("@{}", crate::util::unix_now() + 3 * 86_400);
    let date = std::process::Command::new("date")
        .args(["-u", "-d", &at, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let mut soon = entry(&server, TOKEN_V1);
    soon["expires"] = json!(stdout(&date).trim());
    bao.put(&format!("{TEAM}/ci"), soon);
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1", "");
    wait_for_version(&sb, "ci", 1);
    let first = fill(&sb, &server);
    assert!(stdout(&first).contains(TOKEN_V1));
    assert!(
        stderr(&first).contains("expires"),
        "warned: {}",
        stderr(&first)
    );
    let second = fill(&sb, &server);
    assert!(stdout(&second).contains(TOKEN_V1));
    assert!(
        !stderr(&second).contains("expires"),
        "once a day: {}",
        stderr(&second)
    );
    sb.advance_clock(86_400);
    assert!(
        stderr(&fill(&sb, &server)).contains("expires"),
        "again the next day"
    );
}

#[test]
fn the_first_request_of_a_daemon_git_just_started_gets_the_team_token() {
    let bao = BaoDev::start();
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    let sb = team_sandbox(&[&bao.addr], "", "");
    crate::util::ctl_ok(&sb, &["daemon", "stop"]);
    // No daemon: the client starts one for this very request.
    let out = fill(&sb, &server);
    assert!(
        stdout(&out).contains(TOKEN_V1),
        "served at once: {}",
        stderr(&out)
    );
}

#[test]
fn while_openbao_was_never_read_no_url_falls_to_the_plain_credentials() {
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    // OpenBao is down when the daemon starts.
    let port = crate::bao::free_port();
    let sb = team_sandbox(
        &[&format!("http://127.0.0.1:{port}")],
        "refresh_secs = 1",
        "",
    );
    let out = fill(&sb, &server);
    assert!(
        !out.status.success(),
        "nothing is answered from the plain credentials"
    );
    let err = stderr(&out);
    assert!(
        err.contains("OpenBao is unreachable") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(
        err.contains("have not been read since the daemon started"),
        "{err}"
    );
    // OpenBao comes up with the team's entry: served.
    let bao = BaoDev::start_on(port);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    assert!(
        wait_until(Duration::from_secs(20), || stdout(&fill(&sb, &server))
            .contains(TOKEN_V1)),
        "served once OpenBao answers"
    );
}

#[test]
fn a_mount_that_does_not_exist_is_an_error_not_an_empty_team() {
    let bao = BaoDev::start();
    let sb = team_sandbox(&[&bao.addr], "refresh_secs = 1\nmount = \"nosuch\"", "");
    assert!(
        wait_until(Duration::from_secs(20), || {
            status_json(&sb)["daemon"]["openbao"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 404") && e.contains("nosuch"))
        }),
        "status names the missing mount: {:#}",
        status_json(&sb)["daemon"]["openbao"]
    );
}
