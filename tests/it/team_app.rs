//! Team runtimes that hold a GitHub App (issue 18, DESIGN.md §10 and §13): the admin
//! publishes the app's key to a real OpenBao dev server with `helperctl team publish
//! --app-id --key-file`; two runners (two HELPERD_HOMEs) each mint their own installation
//! tokens from the fake GitHub, which verifies every JWT with the public key of the key
//! it currently accepts. The admin replaces the key: both runners mint with the new one
//! after their next read (refresh_secs = 1, polled through `status` as the other team
//! tests do).

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::bao::{BaoDev, ROOT_TOKEN};
use crate::fake_github_app::{bad_jwt, check_jwt, key_pair, FakeClock, APP_ID, INSTALLATION, MINT};
use crate::fake_provider::{FakeProvider, Reply};
use crate::git_server::{Account, GitServer};
use crate::team_common::{
    team_runtime, team_sandbox_from, wait_for_openbao_error, wait_for_version, TEAM,
};
use crate::util::no_proxy;
use crate::util::rfc3339;
use crate::util::*;

/// One token the fake GitHub minted: the token, and which key signed the JWT.
#[derive(Clone)]
struct Mint {
    token: String,
    key: &'static str,
}

/// The fake GitHub: accepts JWTs signed by the key named in `accepted` only.
struct FakeApp {
    fake: FakeProvider,
    accepted: Arc<Mutex<(&'static str, Vec<u8>)>>,
    minted: Arc<Mutex<Vec<Mint>>>,
}

impl FakeApp {
    fn start(git: Arc<GitServer>, key: &'static str, public: Vec<u8>) -> FakeApp {
        let fake = FakeProvider::start();
        let accepted = Arc::new(Mutex::new((key, public)));
        let minted: Arc<Mutex<Vec<Mint>>> = Arc::default();
        let clock = FakeClock::default();
        let (a, c) = (accepted.clone(), clock.clone());
        fake.route_fn(
            "GET",
            "/orgs/acme/installation",
            move |req| match check_jwt(req, &a.lock().unwrap().1, &c) {
                Ok(()) => Reply::json(
                    200,
                    json!({"id": INSTALLATION, "account": {"login": "acme"}}),
                ),
                Err(_) => bad_jwt(),
            },
        );
        let (a, m) = (accepted.clone(), minted.clone());
        fake.route_fn("POST", MINT, move |req| {
            let (key, public) = a.lock().unwrap().clone();
            if check_jwt(req, &public, &clock).is_err() {
                return bad_jwt();
            }
            assert_eq!(req.json()["permissions"], json!({"contents": "write"}));
            let mut minted = m.lock().unwrap();
            let token = format!("ghs_team{}{}", minted.len(), "q4".repeat(256));
            minted.push(Mint {
                token: token.clone(),
                key,
            });
            // Every token minted so far stays valid at the git server (until it expires
            // at GitHub, an old token still works): which one a runner sends is the test.
            git.set_accounts(
                minted
                    .iter()
                    .map(|m| Account::new("/acme/", "x-access-token", &m.token))
                    .collect(),
            );
            Reply::json(
                201,
                json!({
                    "token": token,
                    "expires_at": rfc3339(clock.now() + 3600),
                    "permissions": {"contents": "write"},
                    "repository_selection": "all",
                }),
            )
        });
        FakeApp {
            fake,
            accepted,
            minted,
        }
    }

    fn minted(&self) -> Vec<Mint> {
        self.minted.lock().unwrap().clone()
    }
}

/// A runner (or the admin's machine): a daemon reading the team runtimes every second.
fn runner(bao: &BaoDev) -> Sandbox {
    runner_with(bao, "")
}

/// [`runner`] with more of `[openbao]`.
fn runner_with(bao: &BaoDev, openbao_extra: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    no_proxy(&mut sb);
    let extra = format!("refresh_secs = 1\n{openbao_extra}");
    team_sandbox_from(sb, ROOT_TOKEN, &[&bao.addr], &extra, "")
}

fn fill(sb: &Sandbox, git: &GitServer) -> Output {
    let mut c = sb.git();
    c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
    run_with_stdin(c, format!("url={}\n", git.url("/acme/app.git")).as_bytes())
}

/// `helperctl team publish ci` of the app with `key_file`; with `installation`, its
/// installation id (else each runner looks it up).
fn publish(
    sb: &Sandbox,
    git: &GitServer,
    api: &str,
    key_file: &Path,
    installation: bool,
) -> Output {
    let url = git.url("/acme/");
    let (app_id, id) = (APP_ID.to_string(), INSTALLATION.to_string());
    let key = key_file.to_str().unwrap();
    let mut c = sb.ctl();
    c.args(["team", "publish", "ci", "--url", &url, "--api-url", api])
        .args(["--app-id", &app_id, "--permission", "contents=write"])
        .args(["--key-file", key]);
    if installation {
        c.args(["--installation-id", &id]);
    }
    c.output().expect("helperctl runs")
}

fn app_status(sb: &Sandbox) -> Value {
    team_runtime(sb, "ci").expect("the team runtime is in status")["app"].clone()
}

/// The version of `secret/<TEAM>/<name>` in OpenBao, when it exists.
fn bao_version(bao: &BaoDev, name: &str) -> Option<u64> {
    let out = bao.cmd(&[
        "kv",
        "metadata",
        "get",
        "-format=json",
        &format!("secret/{TEAM}/{name}"),
    ]);
    if !out.status.success() {
        return None;
    }
    let meta: Value = serde_json::from_str(&stdout(&out)).ok()?;
    meta["data"]["current_version"].as_u64()
}

#[test]
fn a_team_app_key_serves_two_runners_and_its_replacement_reaches_both() {
    // The keys live outside every HELPERD_HOME, as the admin's download would.
    let keys = tempfile::tempdir().unwrap();
    let (Some((key_a, public_a)), Some((key_b, public_b))) = (
        key_pair(keys.path(), "a.pem"),
        key_pair(keys.path(), "b.pem"),
    ) else {
        eprintln!("SKIPPED: openssl cannot make an RSA key pair here");
        return;
    };
    let bao = BaoDev::start();
    let runners = [runner(&bao), runner(&bao)];
    let repos = runners[0].dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let git = Arc::new(GitServer::start(&repos, Vec::new()));
    git.create_bare_repo("/acme/app.git");
    let github = FakeApp::start(git.clone(), "A", public_a);
    let api = github.fake.url();
    let mut seen = Vec::new();

    // The admin publishes the app with key A (from the first runner's machine).
    let out = publish(&runners[0], &git, &api, &key_a, true);
    seen.push(stdout(&out) + &stderr(&out));
    assert_ok(&out);
    assert_contains(
        &stdout(&out),
        &format!("secret/{TEAM}/ci version 1"),
        "published",
    );
    for sb in &runners {
        wait_for_version(sb, "ci", 1);
    }
    // `team list` names the app, in its table as in its JSON.
    let table = ctl_ok(&runners[0], &["team", "list"]);
    let row = table.lines().find(|l| l.starts_with("ci ")).unwrap_or("");
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns.get(3..5), Some(&["minted", "123"][..]), "{table}");
    let listed: Value =
        serde_json::from_str(&ctl_ok(&runners[0], &["team", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["app_id"], APP_ID);
    seen.push(table);
    assert_eq!(
        github.fake.hits("POST", MINT),
        0,
        "nothing minted before git asks"
    );

    // Each runner mints its own token with key A, and serves it to git.
    let mut served_a = Vec::new();
    for sb in &runners {
        let out = fill(sb, &git);
        seen.push(stderr(&out));
        let token = served(&out).unwrap_or_else(|| panic!("no token: {}", stderr(&out)));
        assert_eq!(
            value(&stdout(&out), "username").as_deref(),
            Some("x-access-token")
        );
        assert!(value(&stdout(&out), "password_expiry_utc").is_some());
        served_a.push(token);
    }
    let minted = github.minted();
    assert_eq!(minted.len(), 2, "one mint per runner");
    assert!(minted.iter().all(|m| m.key == "A"));
    assert_ne!(served_a[0], served_a[1], "each runner has its own token");
    for t in &served_a {
        assert!(
            minted.iter().any(|m| m.token == *t),
            "served a minted token"
        );
    }
    // A second fill serves the token in memory; a real clone goes through with it.
    assert_eq!(
        served(&fill(&runners[1], &git)).as_ref(),
        Some(&served_a[1])
    );
    let clone = runners[1]
        .git()
        .current_dir(runners[1].dir.path())
        .args(["-c", "credential.useHttpPath=true", "clone", "-q"])
        .arg(git.url("/acme/app.git"))
        .arg("work")
        .output()
        .unwrap();
    seen.push(stderr(&clone));
    assert_ok(&clone);
    assert_eq!(github.fake.hits("POST", MINT), 2);

    // status shows it like a local app runtime, from the team entry.
    let app = app_status(&runners[0]);
    assert_eq!(app["app_id"], APP_ID);
    assert_eq!(app["installation"], INSTALLATION);
    assert_eq!(app["installation_from"], "team entry");
    assert_eq!(app["permissions"], json!(["contents=write"]));
    assert!(app["token_expires"].as_u64().is_some(), "{app}");
    let human = ctl_ok(&runners[0], &["status"]);
    assert_contains(&human, "GitHub App 123", "status shows the app");
    assert_contains(&human, "ci (team)", "status shows the team runtime");
    seen.push(human);

    // Its key is the admin's: this machine cannot replace it.
    let out = ctl(
        &runners[1],
        &[
            "token",
            "set-app",
            "ci",
            "--key-file",
            key_b.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert_contains(
        &stderr(&out),
        "ci is a team runtime, read from OpenBao",
        "set-app is refused",
    );

    // The admin replaces the key (and leaves the installation to each runner to look
    // up); GitHub now accepts only B.
    *github.accepted.lock().unwrap() = ("B", public_b);
    let out = publish(&runners[0], &git, &api, &key_b, false);
    seen.push(stdout(&out) + &stderr(&out));
    assert_ok(&out);
    for sb in &runners {
        wait_for_version(sb, "ci", 2);
    }
    // Both runners' next fills mint with B (the old tokens would still work at git: only
    // the new key's tokens may be served).
    for (sb, old) in runners.iter().zip(&served_a) {
        let out = fill(sb, &git);
        seen.push(stderr(&out));
        let token = served(&out).unwrap_or_else(|| panic!("no token: {}", stderr(&out)));
        assert_ne!(&token, old);
        let mint = github.minted().into_iter().find(|m| m.token == token);
        assert_eq!(mint.map(|m| m.key), Some("B"), "minted with the new key");
    }
    // A JWT signed with A after the switch would be one more (refused) hit.
    assert_eq!(github.fake.hits("POST", MINT), 4, "one new mint per runner");
    assert_eq!(
        github.fake.hits("GET", "/orgs/acme/installation"),
        2,
        "each runner looked the installation up once"
    );
    assert_eq!(app_status(&runners[1])["installation_from"], "discovered");
    assert!(served(&fill(&runners[1], &git)).is_some());
    assert_eq!(github.fake.hits("POST", MINT), 4);

    // git's erase after a 401 throws that runner's token away: one re-mint, with B.
    let erased = served(&fill(&runners[0], &git)).unwrap();
    let mut reject = runners[0].git();
    reject.args(["-c", "credential.useHttpPath=true", "credential", "reject"]);
    let url = git.url("/acme/app.git");
    assert_ok(&run_with_stdin(
        reject,
        format!("url={url}\nusername=x-access-token\npassword={erased}\n").as_bytes(),
    ));
    let after = served(&fill(&runners[0], &git)).unwrap();
    assert_ne!(after, erased);
    assert_eq!(
        github.fake.hits("POST", MINT),
        5,
        "an erase causes one re-mint"
    );
    assert_eq!(github.minted().last().map(|m| m.key), Some("B"));

    // A bad key file: a clear error, nothing written to OpenBao.
    let bad = keys.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN RSA PRIVATE KEY-----\nQUJDRA==\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = publish(&runners[0], &git, &api, &bad, true);
    assert!(!out.status.success());
    assert_contains(
        &stderr(&out),
        "not published: the field private_key: the private key cannot be used",
        "a key ring refuses",
    );
    let public_pem = keys.path().join("pub.pem");
    let made = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key_a)
        .arg("-out")
        .arg(&public_pem)
        .output()
        .unwrap();
    assert_ok(&made);
    let out = publish(&runners[0], &git, &api, &public_pem, true);
    assert!(!out.status.success());
    assert_contains(
        &stderr(&out),
        "found BEGIN PUBLIC KEY",
        "a public key is refused",
    );
    assert_eq!(bao_version(&bao, "ci"), Some(2), "nothing was written");

    // Written around helperctl (bao kv put, Terraform): the runners name the entry and
    // the field in status and their log, never the key; the good entry still serves.
    let garbage =
        "-----BEGIN RSA PRIVATE KEY-----\nR0FSQkFHRUtFWQ==\n-----END RSA PRIVATE KEY-----\n";
    bao.put(
        &format!("{TEAM}/broken"),
        json!({"provider": "github", "urls": [git.url("/other/")], "app_id": 5,
            "installation_id": 6, "private_key": garbage}),
    );
    let broken = format!("secret/{TEAM}/broken");
    for sb in &runners {
        let listed = wait_until(Duration::from_secs(20), || {
            status_json(sb)["daemon"]["openbao"]["invalid"]
                .to_string()
                .contains(&broken)
        });
        let invalid = status_json(sb)["daemon"]["openbao"]["invalid"].to_string();
        assert!(listed, "{invalid}");
        assert_contains(
            &invalid,
            "the field private_key: the private key cannot be used",
            "named",
        );
        assert_lacks(&invalid, "R0FSQkFHRUtFWQ", "the bad key");
        assert_lacks(&sb.log(), "R0FSQkFHRUtFWQ", "the bad key");
        assert_contains(&sb.log(), &broken, "the log names the entry");
    }
    assert!(served(&fill(&runners[0], &git)).is_some());

    // Revoked: the entry goes (there is no token to revoke at GitHub with a key), and
    // the runners stop serving it at their next read.
    let said = ctl_ok(&runners[0], &["team", "revoke", "ci", "--at-host"]);
    assert_contains(
        &said,
        "nothing to revoke at the host",
        "revoke --at-host says why",
    );
    seen.push(said);
    for sb in &runners {
        assert!(
            wait_until(Duration::from_secs(20), || team_runtime(sb, "ci").is_none()),
            "the revoked runtime is gone from status"
        );
        assert!(
            served(&fill(sb, &git)).is_none(),
            "a revoked entry is not served"
        );
    }

    // The audit log records each runner's mints (installation, permissions, expiry).
    let mut texts = seen;
    // Runner 0 minted with A, with B, and again after the erase; runner 1 with A and B.
    for (sb, expected) in runners.iter().zip([3, 2]) {
        let audit = ctl_ok(sb, &["audit", "--json"]);
        let mints = audit.lines().filter(|l| l.contains("\"minted\"")).count();
        assert_eq!(mints, expected, "{audit}");
        assert_contains(
            &audit,
            "installation 789",
            "the audit names the installation",
        );
        texts.push(audit);
        texts.push(stdout(&ctl(sb, &["status", "--json"])));
        texts.push(ctl_ok(sb, &["status"]));
        texts.push(sb.log());
        for file in files_under(&sb.helperd_home()) {
            texts.push(
                String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned(),
            );
        }
    }
    // No key and no token in any file under the HELPERD_HOMEs, log, audit or status.
    let key_lines: Vec<String> = [&key_a, &key_b]
        .iter()
        .map(|k| {
            std::fs::read_to_string(k)
                .unwrap()
                .lines()
                .nth(3)
                .unwrap()
                .to_string()
        })
        .collect();
    let tokens: Vec<String> = github.minted().into_iter().map(|m| m.token).collect();
    for text in &texts {
        for line in &key_lines {
            assert_lacks(text, line, "the app's private key");
        }
        for t in &tokens {
            assert_lacks(text, t, "a minted token");
        }
        assert_lacks(text, ROOT_TOKEN, "the OpenBao token");
    }
}

#[test]
fn while_openbao_is_down_a_team_app_token_serves_for_cache_secs_only() {
    let keys = tempfile::tempdir().unwrap();
    let Some((key, public)) = key_pair(keys.path(), "a.pem") else {
        eprintln!("SKIPPED: openssl cannot make an RSA key pair here");
        return;
    };
    let mut bao = BaoDev::start();
    let sb = runner_with(&bao, "cache_secs = 120");
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let git = Arc::new(GitServer::start(&repos, Vec::new()));
    git.create_bare_repo("/acme/app.git");
    let github = FakeApp::start(git.clone(), "A", public);
    assert_ok(&publish(&sb, &git, &github.fake.url(), &key, true));
    wait_for_version(&sb, "ci", 1);
    let token = served(&fill(&sb, &git)).expect("a minted token");

    bao.kill();
    wait_for_openbao_error(&sb);
    // The minted token serves from memory, as the entry's own secret would.
    assert_eq!(served(&fill(&sb, &git)), Some(token.clone()));
    // Past cache_secs (the daemon's clock moves, nobody waits): the token minted from the
    // entry is not served any more than the entry itself, and nothing new is minted.
    sb.advance_clock(121);
    let out = fill(&sb, &git);
    assert!(served(&out).is_none(), "not served after cache_secs");
    assert_contains(
        &stderr(&out),
        "OpenBao is unreachable",
        "the error names OpenBao",
    );
    assert_lacks(&stderr(&out), &token, "the token");
    assert_eq!(github.fake.hits("POST", MINT), 1);
}
