//! GitHub App runtimes (issue 18, DESIGN.md §13): the daemon mints installation tokens
//! with the app's private key. A fake GitHub verifies each JWT with the app's public key
//! (an RSA key pair this test makes with `openssl`) and its iat/exp bounds against its own
//! clock (moved with the daemon's), mints ~520-character tokens, and the git HTTP test
//! server accepts only the token minted last: a real clone and push go through with it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_github_app::{
    bad_jwt, check_jwt, check_jwt_as, key_pair, FakeClock, APP_ID, INSTALLATION, MINT,
};
use crate::fake_provider::{FakeProvider, Reply};
use crate::git_server::{Account, GitServer};
use crate::util::no_proxy;
use crate::util::rfc3339;
use crate::util::*;

/// One test's world: the fake GitHub, the git server, a sandbox with runtime `ci`.
struct World {
    fake: FakeProvider,
    git: Arc<GitServer>,
    sb: Sandbox,
    pem: PathBuf,
    clock: FakeClock,
    minted: Arc<Mutex<Vec<String>>>,
    seen: Mutex<Vec<String>>,
}

fn world() -> Option<World> {
    let mut sb = Sandbox::new();
    no_proxy(&mut sb);
    let Some((pem, public)) = key_pair(sb.dir.path(), "app.private-key.pem") else {
        eprintln!("SKIPPED: openssl cannot make an RSA key pair here");
        return None;
    };
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let git = Arc::new(GitServer::start(&repos, Vec::new()));
    git.create_bare_repo("/acme/app.git");
    let fake = FakeProvider::start();
    let clock = FakeClock::default();
    let minted: Arc<Mutex<Vec<String>>> = Arc::default();
    let public = Arc::new(public);
    for (path, body) in [
        ("/app", json!({"id": APP_ID, "slug": "helperd-test-app"})),
        (
            "/orgs/acme/installation",
            json!({"id": INSTALLATION, "account": {"login": "acme"}}),
        ),
    ] {
        let (public, clock) = (public.clone(), clock.clone());
        fake.route_fn("GET", path, move |req| {
            match check_jwt(req, &public, &clock) {
                Ok(()) => Reply::json(200, body.clone()),
                Err(_) => bad_jwt(),
            }
        });
    }
    {
        let (public, clock, minted, git) =
            (public.clone(), clock.clone(), minted.clone(), git.clone());
        fake.route_fn("POST", MINT, move |req| {
            if check_jwt(req, &public, &clock).is_err() {
                return bad_jwt();
            }
            assert_eq!(req.header("x-github-api-version"), Some("2022-11-28"));
            assert_eq!(req.json()["permissions"], json!({"contents": "write"}));
            // Slow, so that concurrent fills all arrive while it is under way.
            std::thread::sleep(Duration::from_millis(500));
            let n = minted.lock().unwrap().len();
            // GitHub's new installation tokens are about 520 characters.
            let token = format!("ghs_{n}{}", "x7".repeat(258));
            minted.lock().unwrap().push(token.clone());
            git.set_accounts(vec![Account::new("/acme/", "x-access-token", &token)]);
            let expires = clock.now() + 3600;
            Reply::json(
                201,
                json!({
                    "token": token,
                    "expires_at": rfc3339(expires),
                    "permissions": {"contents": "write", "metadata": "read"},
                    "repository_selection": "all",
                }),
            )
        });
    }
    fake.route("DELETE", "/installation/token", vec![Reply::empty(204)]);
    let w = World {
        fake,
        git,
        sb,
        pem,
        clock,
        minted,
        seen: Mutex::new(Vec::new()),
    };
    w.ok(&[
        "runtime",
        "add",
        "ci",
        "--provider",
        "github",
        "--url",
        &w.git.url("/acme/"),
        "--api-url",
        &w.fake.url(),
        "--app-id",
        &APP_ID.to_string(),
        "--permission",
        "contents=write",
    ]);
    Some(w)
}

impl World {
    fn ctl(&self, args: &[&str]) -> Output {
        let out = self.sb.ctl().args(args).output().expect("helperctl runs");
        self.see(&stdout(&out));
        self.see(&stderr(&out));
        out
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "helperctl {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn see(&self, text: &str) {
        self.seen.lock().unwrap().push(text.to_string());
    }

    /// `git credential fill` for the repo; stderr is recorded (stdout is the token).
    fn fill(&self) -> Output {
        let mut c = self.sb.git();
        c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
        let out = run_with_stdin(
            c,
            format!("url={}\n", self.git.url("/acme/app.git")).as_bytes(),
        );
        self.see(&stderr(&out));
        out
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Output {
        let out = git_in(
            &self.sb,
            dir,
            &[&["-c", "credential.useHttpPath=true"], args].concat(),
        );
        self.see(&stderr(&out));
        out
    }

    fn mints(&self) -> usize {
        self.fake.hits("POST", MINT)
    }

    /// Moves the daemon's clock and the fake GitHub's together.
    fn advance(&self, secs: u64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
        self.sb.advance_clock(secs);
    }

    fn latest(&self) -> String {
        self.minted
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a token was minted")
    }

    fn app_status(&self) -> Value {
        let status: Value = serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        status["daemon"]["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "ci")
            .unwrap()["app"]
            .clone()
    }
}

#[test]
fn github_app_mints_once_for_many_fills_clones_pushes_and_re_mints() {
    let Some(w) = world() else { return };
    let key_text = std::fs::read_to_string(&w.pem).unwrap();
    let said = w.ok(&[
        "token",
        "set-app",
        "ci",
        "--key-file",
        w.pem.to_str().unwrap(),
    ]);
    assert_contains(&said, "installation 789", "set-app found the installation");
    std::fs::remove_file(&w.pem).unwrap();
    assert_eq!(w.mints(), 0, "nothing is minted before git asks");
    let list: Value = serde_json::from_str(&w.ok(&["runtime", "list", "--json"])).unwrap();
    assert_eq!(
        list[0]["app"],
        json!({"app_id": APP_ID, "client_id": null, "installation_id": null,
               "permissions": {"contents": "write"}}),
        "runtime list --json shows the app"
    );
    assert!(list[0]["rotate_days"].is_null() && list[0]["rotate_via"].is_null());

    // 64 concurrent fills: one mint, every fill gets that token.
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64).map(|_| s.spawn(|| w.fill())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(w.mints(), 1, "64 concurrent fills, exactly one mint");
    let first = w.latest();
    assert!(first.len() > 500, "a long token is served whole");
    for out in &outs {
        assert_eq!(
            served(out).as_deref(),
            Some(first.as_str()),
            "{}",
            stderr(out)
        );
        assert_eq!(
            value(&stdout(out), "username").as_deref(),
            Some("x-access-token")
        );
        assert!(value(&stdout(out), "password_expiry_utc").is_some());
    }

    // A real clone and push with the minted token; no new mint.
    let work = w.sb.dir.path().join("work");
    assert_ok(&w.git_in(
        w.sb.dir.path(),
        &["clone", "-q", &w.git.url("/acme/app.git"), "work"],
    ));
    std::fs::write(work.join("a.txt"), "a").unwrap();
    assert_ok(&w.git_in(&work, &["add", "a.txt"]));
    assert_ok(&w.git_in(&work, &["commit", "-q", "-m", "a"]));
    assert_ok(&w.git_in(&work, &["push", "-q", "origin", "main"]));
    assert_eq!(w.mints(), 1, "clone and push used the token in memory");

    let app = w.app_status();
    assert_eq!(app["app_id"], APP_ID);
    assert_eq!(app["installation"], INSTALLATION);
    assert_eq!(app["installation_from"], "discovered");
    let expires = app["token_expires"].as_u64().expect("a token is held");
    assert_eq!(app["next_mint"].as_u64(), Some(expires - 300));
    assert_eq!(
        value(&stdout(&outs[0]), "password_expiry_utc"),
        Some(expires.to_string()),
        "git gets the token's expires_at"
    );
    let human = w.ok(&["status"]);
    for words in [
        "GitHub App 123",
        "installation 789 (discovered)",
        "permissions contents=write",
        "token expires ",
        "next mint ",
    ] {
        assert_contains(&human, words, "status shows the app");
    }
    assert_lacks(
        &human,
        "next mint at the next git request",
        "a mint is scheduled",
    );

    // Past expires_at minus the margin: exactly one new mint.
    let now = w.sb.advance_clock(0);
    w.advance(expires - 300 - now + 1);
    assert_eq!(served(&w.fill()), Some(w.latest()));
    assert_eq!(w.mints(), 2, "one new mint before the old token expires");
    assert_ne!(w.latest(), first);
    assert_eq!(served(&w.fill()), Some(w.latest()));
    assert_eq!(w.mints(), 2);

    // git's erase after a 401: thrown away, minted again once.
    let second = w.latest();
    let mut c = w.sb.git();
    c.args(["-c", "credential.useHttpPath=true", "credential", "reject"]);
    let url = w.git.url("/acme/app.git");
    assert_ok(&run_with_stdin(
        c,
        format!("url={url}\nusername=x-access-token\npassword={second}\n").as_bytes(),
    ));
    assert_eq!(served(&w.fill()), Some(w.latest()));
    assert_eq!(w.mints(), 3, "an erase causes one re-mint");
    assert_ok(&w.git_in(&work, &["fetch", "-q", "origin"]));
    assert_eq!(w.mints(), 3);
    assert_eq!(
        w.fake.hits("GET", "/orgs/acme/installation"),
        1,
        "the installation was looked up once (by set-app) and recorded"
    );

    // The audit log: each mint (runtime, installation, permissions, expiry) and serve.
    let audit = w.ok(&["audit", "--json"]);
    let minted: Vec<&str> = audit.lines().filter(|l| l.contains("\"minted\"")).collect();
    assert_eq!(minted.len(), 3, "{audit}");
    for line in &minted {
        assert_contains(line, "\"runtime\":\"ci\"", "each mint names the runtime");
        assert_contains(line, "; expires 20", "and the token's expiry");
    }
    assert_contains(
        &audit,
        "installation 789",
        "the audit names the installation",
    );
    assert_contains(&audit, "contents=write", "the audit names the permissions");
    let serves = audit
        .lines()
        .filter(|l| l.contains("\"served\"") && l.contains("\"runtime\":\"ci\""))
        .count();
    assert!(serves >= 64 + 3, "each serve is audited: {serves}");

    // token remove --revoke revokes the live token.
    let said = w.ok(&["token", "remove", "ci", "--revoke"]);
    assert_contains(&said, "revoked", "the installation token was revoked");
    let revoked = w.fake.requests_to("DELETE", "/installation/token");
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0].header("authorization"),
        Some(format!("Bearer {}", w.latest()).as_str())
    );
    let refused = w.fill();
    assert!(served(&refused).is_none());
    assert_contains(
        &stderr(&refused),
        "token set-app ci",
        "without its key it says how to fix it",
    );

    // No key and no token in any file, log, audit line or status output.
    let key_line = key_text.lines().nth(3).unwrap().to_string();
    let mut texts = w.seen.lock().unwrap().clone();
    texts.push(w.sb.log());
    texts.push(audit);
    for file in files_under(&w.sb.helperd_home()) {
        texts.push(String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned());
    }
    let tokens = w.minted.lock().unwrap().clone();
    for text in &texts {
        assert_lacks(text, &key_line, "the private key");
        for t in &tokens {
            assert_lacks(text, t, "a minted token");
        }
    }
}

#[test]
fn github_app_errors_say_what_to_do() {
    let Some(w) = world() else { return };
    let pem = w.pem.to_str().unwrap().to_string();
    // GitHub rejects the key: nothing is stored.
    w.fake.route("GET", "/app", vec![bad_jwt()]);
    let out = w.ctl(&["token", "set-app", "ci", "--key-file", &pem]);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &stderr(&out),
        "private key is not one of this app's",
        "a rejected key",
    );
    // The clock: GitHub's Date says this machine is far ahead of it.
    w.fake.route(
        "GET",
        "/app",
        vec![bad_jwt().header("Date", "Sun, 06 Nov 1994 08:49:37 GMT")],
    );
    let out = w.ctl(&["token", "set-app", "ci", "--key-file", &pem]);
    assert_contains(
        &stderr(&out),
        "this machine's clock is",
        "a clock too far off",
    );
    assert_contains(&stderr(&out), "ahead of GitHub's", "which way");
    assert_contains(&stderr(&out), "(NTP)", "what to do");
    // The clock, as GitHub words a time claim it refuses (no Date to compare with).
    w.fake.route(
        "GET",
        "/app",
        vec![Reply::json(
            401,
            json!({"message": "'Expiration time' claim ('exp') is too far in the future",
                   "documentation_url": "https://docs.github.com/rest"}),
        )],
    );
    let out = w.ctl(&["token", "set-app", "ci", "--key-file", &pem]);
    assert_contains(
        &stderr(&out),
        "refused the app's JWT for its times (iat/exp): check this machine's clock",
        "a time claim refused",
    );
    // Not installed on the owner: the installation page.
    w.fake.route(
        "GET",
        "/app",
        vec![Reply::json(
            200,
            json!({"id": APP_ID, "slug": "helperd-test-app"}),
        )],
    );
    w.fake.route(
        "GET",
        "/orgs/acme/installation",
        vec![Reply::json(404, json!({"message": "Not Found"}))],
    );
    let out = w.ctl(&["token", "set-app", "ci", "--key-file", &pem]);
    assert_contains(
        &stderr(&out),
        "/apps/helperd-test-app/installations/new",
        "the installation page",
    );
    // acme is a user, not an organisation: GitHub answers 404 on /orgs, then the
    // installation is the user's.
    w.fake.route(
        "GET",
        "/users/acme/installation",
        vec![Reply::json(
            200,
            json!({"id": INSTALLATION, "account": {"login": "acme"}}),
        )],
    );
    let said = w.ok(&["token", "set-app", "ci", "--key-file", &pem]);
    assert_contains(&said, "installation 789", "found for the user");
    assert_eq!(w.fake.hits("GET", "/users/acme/installation"), 1);
    // Stored without the check; the mint is refused for permissions (422).
    w.ok(&["token", "set-app", "ci", "--key-file", &pem, "--offline"]);
    w.fake.route(
        "GET",
        "/orgs/acme/installation",
        vec![Reply::json(200, json!({"id": INSTALLATION}))],
    );
    w.fake.route(
        "POST",
        MINT,
        vec![Reply::json(
            422,
            json!({"message": "The permissions requested are not granted to this installation."}),
        )],
    );
    let out = w.fill();
    assert!(served(&out).is_none());
    assert_contains(&stderr(&out), "contents=write", "the permissions asked for");
    assert_eq!(w.mints(), 1);
    // Within the back-off, not asked again.
    assert!(served(&w.fill()).is_none());
    assert_eq!(w.mints(), 1);
    assert_contains(
        &w.ok(&["status"]),
        "last mint failed",
        "status shows the failure",
    );

    // After the back-off, at mint time as at set-app: the app uninstalled (404), then a
    // key GitHub rejects (401). Each is said to git's user.
    w.fake.route(
        "POST",
        MINT,
        vec![Reply::json(404, json!({"message": "Not Found"})), bad_jwt()],
    );
    w.advance(120);
    let out = w.fill();
    assert!(served(&out).is_none());
    assert_contains(
        &stderr(&out),
        "knows no installation 789 of this app (HTTP 404)",
        "an uninstalled app",
    );
    assert_contains(&stderr(&out), "reinstall it", "what to do");
    w.advance(120);
    let out = w.fill();
    assert!(served(&out).is_none());
    assert_contains(
        &stderr(&out),
        "private key is not one of this app's",
        "a key rejected at mint time",
    );
    assert_contains(&stderr(&out), "helperctl token set-app", "what to do");
    assert_eq!(w.mints(), 2, "one mint each (the route's hits start again)");
}

/// A runtime for one repository, with a PKCS#8 key and a client id: the JWT's `iss` is
/// the client id, the installation is the repository's (`GET /repos/acme/app/installation`)
/// and the token is narrowed to it (`repositories: ["app"]`). While GitHub takes its time
/// to mint, another runtime's fill is answered at once.
#[test]
fn github_app_for_one_repo_with_a_pkcs8_key_and_client_id_and_a_slow_github() {
    const CLIENT_ID: &str = "Iv23liTestClient";
    let mut sb = Sandbox::new();
    no_proxy(&mut sb);
    let Some((pkcs1, public)) = key_pair(sb.dir.path(), "pkcs1.pem") else {
        eprintln!("SKIPPED: openssl cannot make an RSA key pair here");
        return;
    };
    let pkcs8 = sb.dir.path().join("pkcs8.pem");
    assert_ok(
        &std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(&pkcs1)
            .arg("-out")
            .arg(&pkcs8)
            .output()
            .unwrap(),
    );
    assert_contains(
        &std::fs::read_to_string(&pkcs8).unwrap(),
        "BEGIN PRIVATE KEY",
        "PKCS#8",
    );
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let git = Arc::new(GitServer::start(&repos, Vec::new()));
    git.create_bare_repo("/acme/app.git");
    let fake = FakeProvider::start();
    let (public, clock) = (Arc::new(public), FakeClock::default());
    for (path, body) in [
        ("/app", json!({"id": APP_ID, "slug": "helperd-test-app"})),
        (
            "/repos/acme/app/installation",
            json!({"id": INSTALLATION, "account": {"login": "acme"}}),
        ),
    ] {
        let (public, clock) = (public.clone(), clock.clone());
        fake.route_fn("GET", path, move |req| {
            match check_jwt_as(req, &public, &clock, CLIENT_ID) {
                Ok(()) => Reply::json(200, body.clone()),
                Err(_) => bad_jwt(),
            }
        });
    }
    let token = format!("ghs_{}", "r9".repeat(258));
    {
        let (public, clock, git, token) =
            (public.clone(), clock.clone(), git.clone(), token.clone());
        fake.route_fn("POST", MINT, move |req| {
            if check_jwt_as(req, &public, &clock, CLIENT_ID).is_err() {
                return bad_jwt();
            }
            assert_eq!(req.json()["repositories"], json!(["app"]));
            git.set_accounts(vec![Account::new("/acme/", "x-access-token", &token)]);
            Reply::json(
                201,
                json!({"token": token, "expires_at": rfc3339(clock.now() + 3600),
                       "permissions": {"contents": "read", "metadata": "read"},
                       "repository_selection": "selected"}),
            )
            // GitHub taking its time.
            .delayed(Duration::from_secs(3))
        });
    }
    let url = git.url("/acme/app.git");
    ctl_ok(
        &sb,
        &[
            "runtime",
            "add",
            "ci",
            "--provider",
            "github",
            "--url",
            &url,
            "--api-url",
            &fake.url(),
            "--app-id",
            &APP_ID.to_string(),
            "--client-id",
            CLIENT_ID,
        ],
    );
    let said = ctl_ok(
        &sb,
        &[
            "token",
            "set-app",
            "ci",
            "--key-file",
            pkcs8.to_str().unwrap(),
        ],
    );
    assert_contains(&said, "installation 789", "found for the repository");
    generic_runtime_with_token(&sb, "other", "other.example", "bob", "other-secret");

    let fill = |url: String| {
        let mut c = sb.git();
        c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
        run_with_stdin(c, format!("url={url}\n").as_bytes())
    };
    std::thread::scope(|s| {
        let app = s.spawn(|| fill(url.clone()));
        assert!(
            wait_until(Duration::from_secs(10), || fake.hits("POST", MINT) == 1),
            "the mint is under way"
        );
        let started = std::time::Instant::now();
        let other = fill("https://other.example/x.git".into());
        let took = started.elapsed();
        assert_eq!(served(&other).as_deref(), Some("other-secret"));
        assert!(
            took < Duration::from_millis(2000),
            "another runtime waited {took:?} for GitHub"
        );
        let app = app.join().unwrap();
        assert_eq!(
            served(&app).as_deref(),
            Some(token.as_str()),
            "{}",
            stderr(&app)
        );
    });
    assert_ok(
        &sb.git()
            .current_dir(sb.dir.path())
            .args([
                "-c",
                "credential.useHttpPath=true",
                "clone",
                "-q",
                &url,
                "work",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(fake.hits("POST", MINT), 1);
    let audit = ctl_ok(&sb, &["audit", "--json"]);
    let minted: Vec<&str> = audit.lines().filter(|l| l.contains("\"minted\"")).collect();
    assert_eq!(minted.len(), 1, "{audit}");
    assert_contains(
        minted[0],
        "repositories app",
        "the audit names the repository",
    );
}
