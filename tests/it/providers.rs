//! Providers (issue 5): `token set` asks the host whether the token works, which scopes it
//! has and when it expires; `token verify` re-checks; `token remove --revoke` revokes where
//! the API allows it; `helperctl login` runs the OAuth device flow, and the daemon refreshes
//! OAuth tokens before they expire (once, however many git processes ask). The real hosts
//! cannot be reached from CI, so a local fake forge ([`crate::fake_provider`]) answers what
//! GitHub, GitLab and Gitea document. Real binaries, the real git, the real daemon.

use std::cell::RefCell;
use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_provider::{self as fake, FakeProvider, Reply};
use crate::util::date_of;
use crate::util::{assert_contains, assert_lacks, config_path, files_under, served, unix_now};
use crate::util::{stderr, stdout, value, wait_until, Sandbox};

// Every secret of these tests, distinct per test so that one test's leak cannot hide
// behind another's. The `no_secret_*` checks search for each of them.
const GH_CLASSIC: &str = "ghp_Cl4ssicT0kenForTheProviderTests01";
const GH_CLASSIC_2: &str = "ghp_Cl4ssicT0kenForTheProviderTests02";
const GH_BAD: &str = "ghp_B4dT0kenTheHostRejectsOutright003";
const GH_NOSCOPE: &str = "ghp_N0RepoScopeT0kenForProviderTst04";
const GH_NOEXP: &str = "ghp_N0ExpiryT0kenForTheProviderTst05";
const GH_EXP: &str = "ghp_W1thExpiryT0kenForProviderTsts06";
const GH_REVOKE: &str = "ghp_T0kenToBeRevokedAtTheFakeHost007";
const GH_VERIFY_A: &str = "ghp_VerifyT0kenOfRuntimeAlphaXyz008";
const GH_VERIFY_B: &str = "ghp_VerifyT0kenOfRuntimeBravoXyz009";
const GH_OFFLINE: &str = "ghp_0fflineT0kenForTheUnreachable10";
const GL_PAT: &str = "glpat-G1tLabPatForProviderTests0011";
const GL_NOWRITE: &str = "glpat-G1tLabReadOnlyPatForTests0012";
const GL_BAD: &str = "glpat-G1tLabPatTheHostRejects00013";
const GL_REVOKE: &str = "glpat-G1tLabPatToBeRevoked0000014";
const GITEA_TOKEN: &str = "0123456789abcdef0123456789abcdef0giteaA";
const GITEA_NOSCOPE: &str = "0123456789abcdef0123456789abcdef0giteaB";
const GITEA_BAD: &str = "0123456789abcdef0123456789abcdef0giteaC";

const DEVICE_CODE: &str = "3584d83530557fdd1f46af8289938c8ef79f9dc5devc";
const USER_CODE: &str = "WDJB-MJHT";
const ACCESS_1: &str = "ghu_FirstAccessT0kenFromTheDeviceFl0w";
const REFRESH_1: &str =
    "ghr_FirstRefreshT0kenFromTheDeviceFl0wAbcdefghijklmnopqrstuvwxyz0123456789";
const ACCESS_2: &str = "ghu_SecondAccessT0kenFromTheRefresh22";
const REFRESH_2: &str = "ghr_SecondRefreshT0kenFromTheRefreshAbcdefghijklmnopqrstuvwxyz0123456789";
const GL_DEVICE_CODE: &str = "gl-device-code-0f8fad5bd9cb469fa16570867728950e";
const GL_ACCESS: &str = "gl0authAccessT0kenFromTheDeviceFlow99";
const GL_REFRESH: &str = "gl0authRefreshT0kenFromTheDeviceFlow9";

const GITEA_CODE: &str = "gitea-authorization-code-5b1f0e6c9d2a";
const GITEA_ACCESS: &str = "gto_GiteaOAuthAccessT0kenFromPkceLogin";
const GITEA_REFRESH: &str = "gtr_GiteaOAuthRefreshT0kenFromPkceLogin";

const CLIENT_ID: &str = "Iv1.fakeclient00001";

const ALL_SECRETS: &[&str] = &[
    GH_CLASSIC,
    GH_CLASSIC_2,
    GH_BAD,
    GH_NOSCOPE,
    GH_NOEXP,
    GH_EXP,
    GH_REVOKE,
    GH_VERIFY_A,
    GH_VERIFY_B,
    GH_OFFLINE,
    GL_PAT,
    GL_NOWRITE,
    GL_BAD,
    GL_REVOKE,
    GITEA_TOKEN,
    GITEA_NOSCOPE,
    GITEA_BAD,
    DEVICE_CODE,
    ACCESS_1,
    REFRESH_1,
    ACCESS_2,
    REFRESH_2,
    GL_DEVICE_CODE,
    GL_ACCESS,
    GL_REFRESH,
    GITEA_CODE,
    GITEA_ACCESS,
    GITEA_REFRESH,
];

/// GitHub's token endpoint serves both the device polls and the refreshes; the body's
/// `grant_type` tells them apart.
const TOKEN_PATH: &str = "/login/oauth/access_token";
const DEVICE_GRANT: &str = "grant_type=urn:ietf:params:oauth:grant-type:device_code";
const REFRESH_GRANT: &str = "grant_type=refresh_token";
const ACCESS_3: &str = "ghu_ThirdAccessT0kenFromTheRefresh333";
const REFRESH_3: &str = "ghr_ThirdRefreshT0kenFromTheRefreshAbcdefghijklmnopqrstuvwxyz01234567";

/// How long any one helperctl or git command may take before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

/// 12:00 UTC, `days` days from now.
fn noon_in(days: u64) -> u64 {
    (unix_now() / 86_400 + days) * 86_400 + 12 * 3600
}

/// 00:00 UTC, `days` days from now.
fn midnight_in(days: u64) -> u64 {
    (unix_now() / 86_400 + days) * 86_400
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// Runs `c` with `input` on stdin; kills it and fails the test if it takes longer than
/// `timeout` (a hung daemon or login must not hang the test run).
#[track_caller]
fn run_bounded(mut c: Command, input: &[u8], timeout: Duration) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{c:?}");
    let mut child = c.spawn().expect("the command starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// One test's world: a fake forge, a sandbox (its own daemon), and everything the user or
/// a log could see, kept to check that no secret is in it.
struct Fx {
    // Dropped after `Drop for Fx` stopped the daemon; the fake server before the sandbox.
    fake: FakeProvider,
    sb: Sandbox,
    seen: RefCell<Vec<(String, String)>>,
}

impl Fx {
    fn new() -> Fx {
        Fx::with_env(&[])
    }

    /// `env`: extra environment for every command (and so for the daemon they start).
    fn with_env(env: &[(&str, &str)]) -> Fx {
        let mut sb = Sandbox::new();
        // The daemon honours the proxy variables; the fake forge is on 127.0.0.1.
        crate::util::no_proxy(&mut sb);
        // The browser login opens the page with xdg-open on a desktop: not here.
        sb.env_remove.push("DISPLAY".to_string());
        sb.env_remove.push("WAYLAND_DISPLAY".to_string());
        for (k, v) in env {
            sb.env.push(((*k).to_string(), (*v).to_string()));
        }
        Fx {
            fake: FakeProvider::start(),
            sb,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// `http://127.0.0.1:PORT`
    fn base(&self) -> String {
        self.fake.url()
    }

    fn see(&self, what: &str, text: &str) {
        self.seen
            .borrow_mut()
            .push((what.to_string(), text.to_string()));
    }

    fn see_all(&self, what: &str, out: &Output) {
        self.see(&format!("{what} (stdout)"), &stdout(out));
        self.see(&format!("{what} (stderr)"), &stderr(out));
    }

    /// `helperctl ARGS` with `input` on stdin; stdout and stderr are recorded.
    fn ctl_in(&self, args: &[&str], input: &str) -> Output {
        let mut c = self.sb.ctl();
        c.args(args);
        let out = run_bounded(c, input.as_bytes(), COMMAND_TIMEOUT);
        self.see_all(&format!("helperctl {args:?}"), &out);
        out
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_in(args, "")
    }

    #[track_caller]
    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "helperctl {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Asserts exit code 1 (an error); returns stderr.
    #[track_caller]
    fn ctl_err(&self, args: &[&str]) -> String {
        check_err(args, &self.ctl(args))
    }

    /// `helperctl token set RUNTIME EXTRA...` (checked with the host unless EXTRA says
    /// `--offline`) with `secret` on stdin.
    fn token_set(&self, runtime: &str, secret: &str, extra: &[&str]) -> Output {
        let mut args = vec!["token", "set", runtime];
        args.extend_from_slice(extra);
        self.ctl_in(&args, &format!("{secret}\n"))
    }

    #[track_caller]
    fn token_set_ok(&self, runtime: &str, secret: &str, extra: &[&str]) -> String {
        let out = self.token_set(runtime, secret, extra);
        assert!(
            out.status.success(),
            "token set {runtime} {extra:?} failed ({:?})\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Asserts exit code 1; returns stderr.
    #[track_caller]
    fn token_set_err(&self, runtime: &str, secret: &str, extra: &[&str]) -> String {
        let out = self.token_set(runtime, secret, extra);
        check_err(&["token", "set", runtime], &out)
    }

    /// `helperctl runtime add NAME --provider P --url BASE/PATH --api-url BASE/API`.
    #[track_caller]
    fn add_runtime(&self, name: &str, provider: &str, path: &str, api_path: &str) {
        let url = format!("{}{path}", self.base());
        let api = format!("{}{api_path}", self.base());
        self.ctl_ok(&[
            "runtime",
            "add",
            name,
            "--provider",
            provider,
            "--url",
            &url,
            "--api-url",
            &api,
        ]);
    }

    /// Adds `oauth_client_id = "ID"` to runtime NAME's table in config.toml (there is no
    /// flag for it: an admin writes it); the daemon notices the change by itself.
    fn set_oauth_client_id(&self, runtime: &str, id: &str) {
        let path = config_path(&self.sb);
        let text = fs::read_to_string(&path).expect("config.toml exists");
        let anchor = format!("name = \"{runtime}\"\n");
        assert!(
            text.contains(&anchor),
            "config.toml has runtime {runtime}:\n{text}"
        );
        let text = text.replacen(&anchor, &format!("{anchor}oauth_client_id = \"{id}\"\n"), 1);
        fs::write(&path, text).expect("config.toml is writable");
    }

    /// `git credential fill` for `url` (paths sent); stderr is recorded (stdout is the
    /// credential, which is the point).
    fn fill(&self, url: &str) -> Output {
        let out = fill_in(&self.sb, url);
        self.see(
            &format!("git credential fill {url} (stderr)"),
            &stderr(&out),
        );
        out
    }

    /// `helperctl login RUNTIME`, bounded.
    fn login(&self, runtime: &str) -> Output {
        self.ctl(&["login", runtime])
    }

    #[track_caller]
    fn status_json(&self) -> Value {
        let text = self.ctl_ok(&["status", "--json"]);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status --json is JSON ({e}):\n{text}"))
    }

    /// The `token` of runtime NAME in `status --json` (`null` when it has none).
    #[track_caller]
    fn token_status(&self, runtime: &str) -> Value {
        let status = self.status_json();
        status["daemon"]["runtimes"]
            .as_array()
            .unwrap_or_else(|| panic!("status --json has daemon.runtimes:\n{status:#}"))
            .iter()
            .find(|r| r["name"] == runtime)
            .unwrap_or_else(|| panic!("status --json lists runtime {runtime}:\n{status:#}"))
            ["token"]
            .clone()
    }

    /// Checks that none of `secrets` appears in anything recorded, in the daemon's log, or
    /// in any file under HELPERD_HOME (the file store is encrypted: a secret in plain text
    /// there is a leak too).
    #[track_caller]
    fn assert_no_secret(&self, secrets: &[&str]) {
        let log = self.sb.log();
        assert!(!log.is_empty(), "the daemon logs (HELPERD_LOG=trace)");
        let mut all = self.seen.borrow().clone();
        all.push(("the daemon log".into(), log));
        for file in files_under(&self.sb.helperd_home()) {
            let bytes = fs::read(&file).unwrap_or_default();
            all.push((
                file.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        for (what, text) in &all {
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{what} contains the secret {secret:?}:\n{text}"
                );
            }
        }
    }

    /// Stops the daemon (bounded), so that no test leaves one behind.
    fn stop_daemon(&self) {
        if self.sb.daemon_pid().is_none() {
            return;
        }
        let mut c = self.sb.ctl();
        c.args(["daemon", "stop"]);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_bounded(c, b"", Duration::from_secs(15))
        }));
        wait_until(Duration::from_secs(5), || self.sb.daemon_pid().is_none());
        // Whatever is left, the sandbox's Drop kills (SIGKILL).
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- requests the fake forge received ---");
            for r in self.fake.requests() {
                eprintln!("{}\n", r.everything());
            }
        }
        self.stop_daemon();
        self.fake.stop();
    }
}

#[track_caller]
fn check_err(args: &[&str], out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "helperctl {args:?} should fail with exit code 1\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

fn fill_in(sb: &Sandbox, url: &str) -> Output {
    let mut c = sb.git();
    c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
    run_bounded(c, format!("url={url}\n").as_bytes(), COMMAND_TIMEOUT)
}

#[track_caller]
fn assert_serves(fx: &Fx, url: &str, username: &str, token: &str) {
    let out = fx.fill(url);
    assert!(
        out.status.success(),
        "git credential fill {url} failed\nstderr: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        value(&text, "password").as_deref() == Some(token)
            && value(&text, "username").as_deref() == Some(username),
        "{url} must be served {username} and the expected token\nstderr: {}",
        stderr(&out)
    );
}

/// Nothing is served for `url`; returns git's stderr (helperd's notice).
#[track_caller]
fn assert_serves_nothing(fx: &Fx, url: &str) -> String {
    let out = fx.fill(url);
    assert!(
        served(&out).is_none(),
        "{url} must be served nothing\nstderr: {}",
        stderr(&out)
    );
    stderr(&out)
}

#[track_caller]
fn assert_between(value: &Value, low: u64, high: u64, what: &str) {
    let v = value
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is a number, not {value}"));
    assert!(
        (low..=high).contains(&v),
        "{what} = {v} should be within [{low}, {high}]"
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A GitHub runtime `gh` for the whole fake host, its REST API at `api_path` (`""` for
/// the api.github.com layout, `/api/v3` for GitHub Enterprise Server).
fn github(api_path: &str) -> Fx {
    let fx = Fx::new();
    fx.add_runtime("gh", "github", "/", api_path);
    fx
}

// ---------------------------------------------------------------------------------------
// 1. GitHub classic token: scopes and expiry learned (both header forms)
// ---------------------------------------------------------------------------------------

/// The renewal prompt's "empty if it does not say": the daemon then takes the expiry the
/// host reports for the token just typed. (The prompt itself is driven in expiry.rs; this
/// sends the client's `renew` request as it would.)
#[test]
fn a_renewal_without_a_typed_expiry_takes_the_hosts() {
    use helperd::wire::client;
    use helperd::wire::wire::{Envelope, Reply, Request};
    let fx = github("");
    let expires = noon_in(45);
    let header = format!("{} 12:00:00 UTC", date_of(expires));
    fx.fake.route(
        "GET",
        "/user",
        vec![fake::github_user(Some("repo"), Some(&header))],
    );
    // A daemon must be running to take the request.
    fx.ctl_ok(&["daemon", "start"]);
    let input = format!(
        "protocol=http\nhost={}\n",
        fx.base().trim_start_matches("http://")
    );
    let request = Envelope::new(Request::Renew {
        runtime: "gh".into(),
        secret: GH_CLASSIC.into(),
        expires: None,
        input,
    });
    let answer = client::send(&fx.sb.socket(), &request).expect("the daemon answers");
    let Reply::Git { output } = answer.reply else {
        panic!("a git answer, got {:?}", answer.reply)
    };
    assert!(
        output.contains(&format!("password_expiry_utc={expires}")),
        "{output}"
    );
    assert_eq!(fx.token_status("gh")["expires"], expires);
}

#[test]
fn github_classic_token_records_scopes_and_utc_expiry() {
    let fx = github("");
    let expires = noon_in(200);
    let header = format!("{} 12:00:00 UTC", date_of(expires));
    fx.fake.route(
        "GET",
        "/user",
        vec![fake::github_user(Some("repo, read:org"), Some(&header))],
    );
    let before = unix_now();
    let said = fx.token_set_ok("gh", GH_CLASSIC, &["--name", "laptop"]);
    let after = unix_now();
    assert_contains(&said, &format!("expires {}", date_of(expires)), "token set");

    let t = fx.token_status("gh");
    assert_eq!(strings(&t["scopes"]), ["repo", "read:org"], "scopes: {t:#}");
    assert_eq!(t["expires"], expires, "the expiry from the header: {t:#}");
    assert_eq!(t["kind"], "classic PAT", "{t:#}");
    assert_eq!(t["login"], "octocat", "{t:#}");
    assert_eq!(t["oauth"], false, "{t:#}");
    assert_between(&t["checked_at"], before, after, "token.checked_at");

    // The host was asked once, the way GitHub documents, with the token.
    let asked = fx.fake.requests_to("GET", "/user");
    assert_eq!(asked.len(), 1, "one check: {asked:#?}");
    let r = &asked[0];
    assert!(
        r.header("authorization") == Some(&format!("Bearer {GH_CLASSIC}")),
        "GET /user carries `Authorization: Bearer <token>`"
    );
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert_contains(
        r.header("accept").unwrap_or_default(),
        "application/vnd.github+json",
        "Accept",
    );
    assert!(
        r.header("user-agent")
            .is_some_and(|ua| ua.starts_with("helperd/")),
        "User-Agent: {:?}",
        r.header("user-agent")
    );

    // And git gets it.
    assert_serves(
        &fx,
        &format!("{}/octo/app.git", fx.base()),
        "x-access-token",
        GH_CLASSIC,
    );
    fx.assert_no_secret(&[GH_CLASSIC]);
}

#[test]
fn github_enterprise_expiry_header_with_numeric_offset() {
    // GitHub Enterprise Server: REST API under /api/v3, expiry with the server's offset.
    let fx = github("/api/v3");
    let expires = noon_in(150);
    // 14:00 at +02:00 is 12:00 UTC.
    let header = format!("{} 14:00:00 +0200", date_of(expires));
    fx.fake.route(
        "GET",
        "/api/v3/user",
        vec![fake::github_user(Some("repo"), Some(&header))],
    );
    fx.token_set_ok("gh", GH_CLASSIC_2, &[]);
    let t = fx.token_status("gh");
    assert_eq!(t["expires"], expires, "+0200 read as an offset: {t:#}");
    assert_eq!(strings(&t["scopes"]), ["repo"], "{t:#}");
    assert_eq!(t["kind"], "classic PAT", "{t:#}");
    assert!(t["checked_at"].is_u64(), "checked_at is recorded: {t:#}");
    let asked = fx.fake.requests_to("GET", "/api/v3/user");
    assert_eq!(asked.len(), 1, "the check went to the api_url: {asked:#?}");
    assert!(asked[0].header("authorization") == Some(&format!("Bearer {GH_CLASSIC_2}")));
    assert!(
        fx.fake.requests_to("GET", "/user").is_empty(),
        "nothing asked outside the api_url"
    );
    fx.assert_no_secret(&[GH_CLASSIC_2]);
}

// ---------------------------------------------------------------------------------------
// 2. 401
// ---------------------------------------------------------------------------------------

#[test]
fn github_token_the_host_rejects_is_not_stored() {
    let fx = github("");
    fx.fake
        .route("GET", "/user", vec![fake::github_bad_credentials()]);
    let err = fx.token_set_err("gh", GH_BAD, &["--name", "typo"]);
    assert_contains(
        &err,
        &format!("{} rejected the token (HTTP 401)", fx.fake.host()),
        "token set of a rejected token",
    );
    assert_contains(&err, "invalid, expired or revoked", "what 401 means");
    assert_eq!(fx.fake.hits("GET", "/user"), 1);
    assert!(fx.token_status("gh").is_null(), "nothing is stored");
    let notice = assert_serves_nothing(&fx, &format!("{}/octo/app.git", fx.base()));
    assert_contains(&notice, "has no token yet", "git's notice");
    fx.assert_no_secret(&[GH_BAD]);
}

#[test]
fn gitlab_and_gitea_tokens_the_host_rejects_are_not_stored() {
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/gl/", "/api/v4");
    fx.add_runtime("tea", "gitea", "/tea/", "/api/v1");
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_unauthorized()],
    );
    fx.fake.route(
        "GET",
        "/api/v1/user",
        vec![Reply::json(
            401,
            serde_json::json!({"message": "user does not exist [uid: 0, name: ]", "url": "http://127.0.0.1/api/swagger"}),
        )],
    );
    let err = fx.token_set_err("gl", GL_BAD, &[]);
    assert_contains(&err, "rejected the token (HTTP 401)", "GitLab 401");
    let err = fx.token_set_err("tea", GITEA_BAD, &[]);
    assert_contains(&err, "rejected the token (HTTP 401)", "Gitea 401");
    let gl = &fx
        .fake
        .requests_to("GET", "/api/v4/personal_access_tokens/self")[0];
    assert!(gl.header("authorization") == Some(&format!("Bearer {GL_BAD}")));
    let tea = &fx.fake.requests_to("GET", "/api/v1/user")[0];
    assert!(
        tea.header("authorization") == Some(&format!("token {GITEA_BAD}")),
        "Gitea's documented `Authorization: token <t>`"
    );
    assert!(fx.token_status("gl").is_null());
    assert!(fx.token_status("tea").is_null());
    fx.assert_no_secret(&[GL_BAD, GITEA_BAD]);
}

// ---------------------------------------------------------------------------------------
// 3. Missing scope
// ---------------------------------------------------------------------------------------

#[test]
fn github_token_without_repo_scope_is_refused_unless_forced() {
    let fx = github("");
    fx.fake.route(
        "GET",
        "/user",
        vec![fake::github_user(Some("read:org"), None)],
    );
    let err = fx.token_set_err("gh", GH_NOSCOPE, &[]);
    assert_contains(&err, "repo", "the refusal names the missing scope");
    assert_contains(&err, "--force", "the refusal offers --force");
    assert_contains(&err, "nothing was stored", "the refusal");
    assert!(fx.token_status("gh").is_null(), "nothing is stored");

    let said = fx.token_set_ok("gh", GH_NOSCOPE, &["--force"]);
    assert_contains(&said, "set for runtime gh", "token set --force");
    let t = fx.token_status("gh");
    assert_eq!(strings(&t["scopes"]), ["read:org"], "{t:#}");
    let notes = strings(&t["notes"]).join("\n");
    assert_contains(&notes, "--force", "token.notes");
    assert_contains(&notes, "repo", "token.notes");
    assert_eq!(fx.fake.hits("GET", "/user"), 2, "each set asked the host");
    fx.assert_no_secret(&[GH_NOSCOPE]);
}

// ---------------------------------------------------------------------------------------
// 4. No expiry; --expires against the host's expiry
// ---------------------------------------------------------------------------------------

#[test]
fn github_token_without_expiry_and_expires_that_contradicts_the_host() {
    let fx = github("");
    fx.fake
        .route("GET", "/user", vec![fake::github_user(Some("repo"), None)]);
    let said = fx.token_set_ok("gh", GH_NOEXP, &["--name", "forever"]);
    assert_contains(&said, "no expiry", "token set");
    let t = fx.token_status("gh");
    assert!(t["expires"].is_null(), "no header, no expiry: {t:#}");
    assert_eq!(t["state"], "valid", "{t:#}");
    let first_id = t["id"].clone();

    // Now a token the host says expires on day D.
    let expires = noon_in(200);
    let header = format!("{} 12:00:00 UTC", date_of(expires));
    fx.fake.route(
        "GET",
        "/user",
        vec![fake::github_user(Some("repo"), Some(&header))],
    );
    let wrong = date_of(expires + 30 * 86_400);
    let err = fx.token_set_err("gh", GH_EXP, &["--expires", &wrong]);
    assert_contains(&err, "contradicts the host", "--expires against the host");
    assert_contains(&err, &date_of(expires), "the refusal names the host's date");
    assert_contains(&err, "nothing was stored", "the refusal");
    let t = fx.token_status("gh");
    assert_eq!(t["id"], first_id, "the old token stays: {t:#}");
    assert!(t["expires"].is_null(), "{t:#}");

    // The same date as the host's is no contradiction; the host's time wins.
    fx.token_set_ok("gh", GH_EXP, &["--expires", &date_of(expires)]);
    let t = fx.token_status("gh");
    assert_ne!(t["id"], first_id, "the new token replaced the old: {t:#}");
    assert_eq!(t["expires"], expires, "{t:#}");
    fx.assert_no_secret(&[GH_NOEXP, GH_EXP]);
}

// ---------------------------------------------------------------------------------------
// 5. GitLab
// ---------------------------------------------------------------------------------------

#[test]
fn gitlab_token_records_scopes_and_expiry_date() {
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/", "/api/v4");
    let expires = midnight_in(100);
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_self(
            &["read_repository", "write_repository"],
            Some(&date_of(expires)),
        )],
    );
    let before = unix_now();
    fx.token_set_ok("gl", GL_PAT, &[]);
    let after = unix_now();
    let t = fx.token_status("gl");
    assert_eq!(
        strings(&t["scopes"]),
        ["read_repository", "write_repository"],
        "{t:#}"
    );
    assert_eq!(
        t["expires"], expires,
        "expires_at is 00:00 UTC that day: {t:#}"
    );
    assert_eq!(t["kind"], "personal access token", "{t:#}");
    assert_between(&t["checked_at"], before, after, "token.checked_at");
    let asked = fx
        .fake
        .requests_to("GET", "/api/v4/personal_access_tokens/self");
    assert_eq!(asked.len(), 1);
    assert!(asked[0].header("authorization") == Some(&format!("Bearer {GL_PAT}")));
    // GitLab's git username for tokens is oauth2 (any non-empty name works).
    assert_serves(
        &fx,
        &format!("{}/group/app.git", fx.base()),
        "oauth2",
        GL_PAT,
    );
    fx.assert_no_secret(&[GL_PAT]);
}

/// `renew --rotate`: GitLab rotates the token itself
/// (https://docs.gitlab.com/api/personal_access_tokens/#rotate-a-personal-access-token);
/// the new token, with its new expiry, is what git gets next, and the old one is retired.
#[test]
fn gitlab_rotation_replaces_the_token_with_the_hosts_new_one() {
    const ROTATED: &str = "glpat-rotatedByTheHost9Qx";
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/", "/api/v4");
    let expires = midnight_in(30);
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_self(
            &["api", "write_repository"],
            Some(&date_of(expires)),
        )],
    );
    fx.token_set_ok("gl", GL_PAT, &[]);
    let new_expiry = midnight_in(90);
    fx.fake.route(
        "POST",
        "/api/v4/personal_access_tokens/self/rotate",
        vec![fake::Reply::json(
            200,
            serde_json::json!({
                "id": 43,
                "name": "helperd test token",
                "revoked": false,
                "scopes": ["api", "write_repository"],
                "active": true,
                "expires_at": date_of(new_expiry),
                "token": ROTATED,
            }),
        )],
    );
    let said = fx.ctl_ok(&["renew", "gl", "--rotate"]);
    assert_contains(&said, "rotated", "renew --rotate");
    let asked = fx
        .fake
        .requests_to("POST", "/api/v4/personal_access_tokens/self/rotate");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].header("authorization"),
        Some(format!("Bearer {GL_PAT}").as_str()),
        "the old token asks for its own rotation"
    );
    // The old token's lifetime again (30 days, set today), not GitLab's one-week default.
    let asked_expiry = asked[0].json()["expires_at"]
        .as_str()
        .expect("an expires_at date")
        .to_string();
    assert_eq!(asked_expiry, date_of(midnight_in(29)), "{asked_expiry}");
    let t = fx.token_status("gl");
    assert_eq!(t["expires"], new_expiry, "{t:#}");
    assert_serves(
        &fx,
        &format!("{}/group/app.git", fx.base()),
        "oauth2",
        ROTATED,
    );

    // A token without the scope to rotate itself: a clear error, nothing changes.
    fx.fake.route(
        "POST",
        "/api/v4/personal_access_tokens/self/rotate",
        vec![fake::Reply::json(
            403,
            serde_json::json!({"message": "403 Forbidden"}),
        )],
    );
    let err = fx.ctl_err(&["renew", "gl", "--rotate"]);
    assert_contains(&err, "self_rotate", "a refused rotation");
    assert_serves(
        &fx,
        &format!("{}/group/app.git", fx.base()),
        "oauth2",
        ROTATED,
    );
    fx.assert_no_secret(&[GL_PAT, ROTATED]);
}

#[test]
fn gitlab_token_without_write_repository_is_refused() {
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/", "/api/v4");
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_self(
            &["read_repository", "read_api"],
            Some(&date_of(midnight_in(30))),
        )],
    );
    let err = fx.token_set_err("gl", GL_NOWRITE, &[]);
    assert_contains(&err, "write_repository", "the refusal names the scope");
    assert_contains(&err, "--force", "the refusal offers --force");
    assert!(fx.token_status("gl").is_null(), "nothing is stored");
    fx.assert_no_secret(&[GL_NOWRITE]);
}

#[test]
fn gitea_token_is_checked_with_user_and_repo_search() {
    let fx = Fx::new();
    fx.add_runtime("tea", "gitea", "/", "/api/v1");
    fx.fake
        .route("GET", "/api/v1/user", vec![fake::gitea_user()]);
    // A scoped token without read:repository: Gitea's 403 names the scope.
    fx.fake.route(
        "GET",
        "/api/v1/repos/search",
        vec![
            Reply::json(
                403,
                serde_json::json!({
                    "message": "token does not have at least one of required scope(s): [read:repository]",
                    "url": "http://127.0.0.1/api/swagger",
                }),
            ),
            fake::gitea_repo_search(),
        ],
    );
    let err = fx.token_set_err("tea", GITEA_NOSCOPE, &[]);
    assert_contains(&err, "read:repository", "the refusal names the scope");
    assert!(fx.token_status("tea").is_null(), "nothing is stored");

    fx.token_set_ok("tea", GITEA_TOKEN, &[]);
    let t = fx.token_status("tea");
    assert_eq!(t["login"], "gitea-user", "{t:#}");
    assert!(t["expires"].is_null(), "Gitea reports no expiry: {t:#}");
    assert!(t["checked_at"].is_u64(), "{t:#}");
    let search = fx.fake.requests_to("GET", "/api/v1/repos/search");
    assert_eq!(search.len(), 2);
    assert!(search[1].header("authorization") == Some(&format!("token {GITEA_TOKEN}")));
    assert!(
        search[1]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("limit=")),
        "the query is recorded: {:?}",
        search[1].query
    );
    fx.assert_no_secret(&[GITEA_TOKEN, GITEA_NOSCOPE]);
}

// ---------------------------------------------------------------------------------------
// 6. Unreachable host
// ---------------------------------------------------------------------------------------

#[test]
fn unreachable_host_suggests_offline_and_offline_stores() {
    let fx = Fx::new();
    let closed = fake::closed_port_url();
    fx.ctl_ok(&[
        "runtime",
        "add",
        "gh",
        "--provider",
        "github",
        "--url",
        &format!("{closed}/"),
        "--api-url",
        &closed,
    ]);
    let err = fx.token_set_err("gh", GH_OFFLINE, &[]);
    assert_contains(&err, "cannot reach", "an unreachable host");
    assert_contains(&err, &closed, "the error names the URL");
    assert_contains(&err, "--offline", "the error suggests --offline");
    assert!(fx.token_status("gh").is_null(), "nothing is stored");

    fx.token_set_ok("gh", GH_OFFLINE, &["--offline"]);
    let t = fx.token_status("gh");
    assert!(t["checked_at"].is_null(), "not checked: {t:#}");
    assert_contains(
        &strings(&t["notes"]).join("\n"),
        "--offline",
        "token.notes of an --offline token",
    );
    fx.assert_no_secret(&[GH_OFFLINE]);
}

// ---------------------------------------------------------------------------------------
// 7. Device flow login
// ---------------------------------------------------------------------------------------

/// A GitHub runtime `gh` with an OAuth client id, its device code endpoint answering.
fn github_oauth() -> Fx {
    let fx = github("");
    fx.set_oauth_client_id("gh", CLIENT_ID);
    let base = fx.base();
    fx.fake.route(
        "POST",
        "/login/device/code",
        vec![fake::github_device_code(&base, DEVICE_CODE, USER_CODE)],
    );
    fx
}

#[test]
fn github_device_login_waits_through_pending_and_slow_down() {
    let fx = github_oauth();
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        DEVICE_GRANT,
        vec![
            fake::github_oauth_error("authorization_pending"),
            fake::github_slow_down(6),
            fake::github_tokens(ACCESS_1, Some(REFRESH_1), Some(28_800)),
        ],
    );
    let before = unix_now();
    let out = fx.login("gh");
    let after = unix_now();
    assert!(
        out.status.success(),
        "login succeeds\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert_contains(&shown, &format!("{}/login/device", fx.base()), "login");
    assert_contains(&shown, USER_CODE, "login");
    assert_contains(&stdout(&out), "logged in", "login");

    // The device code request and the three polls, as RFC 8628 and GitHub describe.
    let start = fx.fake.requests_to("POST", "/login/device/code");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].form_field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(start[0].form_field("scope").as_deref(), Some("repo"));
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, DEVICE_GRANT), 3);
    let polls = fx.fake.requests_to("POST", TOKEN_PATH);
    assert_eq!(polls.len(), 3, "three polls, no refresh");
    for p in &polls {
        assert_eq!(p.form_field("client_id").as_deref(), Some(CLIENT_ID));
        assert_eq!(p.form_field("device_code").as_deref(), Some(DEVICE_CODE));
        assert!(
            p.header("accept")
                .is_some_and(|a| a.contains("application/json")),
            "GitHub answers JSON only with Accept: application/json"
        );
    }
    // slow_down adds 5 s to the 1 s interval: the third poll waits about 6 s.
    let gap = polls[2].at.duration_since(polls[1].at);
    assert!(
        gap >= Duration::from_millis(5_500),
        "slow_down was honoured: {gap:?} between the 2nd and 3rd poll"
    );
    let first_gap = polls[1].at.duration_since(polls[0].at);
    assert!(
        first_gap >= Duration::from_millis(900),
        "the interval was honoured: {first_gap:?}"
    );

    let t = fx.token_status("gh");
    assert_eq!(t["oauth"], true, "{t:#}");
    assert_eq!(t["kind"], "OAuth token", "{t:#}");
    assert_between(
        &t["expires"],
        before + 28_800,
        after + 28_800,
        "token.expires",
    );
    assert_eq!(t["state"], "valid", "{t:#}");
    assert_serves(
        &fx,
        &format!("{}/octo/app.git", fx.base()),
        "x-access-token",
        ACCESS_1,
    );
    assert_eq!(
        fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT),
        0,
        "an 8-hour token is not refreshed"
    );
    fx.assert_no_secret(&[DEVICE_CODE, ACCESS_1, REFRESH_1]);
}

#[test]
fn github_device_login_with_expired_code_fails_clearly() {
    let fx = github_oauth();
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        DEVICE_GRANT,
        vec![
            fake::github_oauth_error("authorization_pending"),
            fake::github_oauth_error("expired_token"),
        ],
    );
    let out = fx.login("gh");
    let err = check_err(&["login", "gh"], &out);
    assert_contains(&err, "expired before it was approved", "login");
    assert_contains(&err, "login again", "login");
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, DEVICE_GRANT), 2);
    assert!(fx.token_status("gh").is_null(), "nothing is stored");
    // The login is over: another poll has nothing to poll.
    fx.assert_no_secret(&[DEVICE_CODE]);
}

#[test]
fn github_device_login_declined_fails_clearly() {
    let fx = github_oauth();
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        DEVICE_GRANT,
        vec![fake::github_oauth_error("access_denied")],
    );
    let out = fx.login("gh");
    let err = check_err(&["login", "gh"], &out);
    assert_contains(&err, "declined", "login");
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, DEVICE_GRANT), 1);
    assert!(fx.token_status("gh").is_null(), "nothing is stored");
    fx.assert_no_secret(&[DEVICE_CODE]);
}

#[test]
fn github_device_flow_disabled_fails_clearly() {
    let fx = github_oauth();
    fx.fake.route(
        "POST",
        "/login/device/code",
        vec![fake::github_oauth_error("device_flow_disabled")],
    );
    let out = fx.login("gh");
    let err = check_err(&["login", "gh"], &out);
    assert_contains(&err, "device_flow_disabled", "login");
    assert_contains(&err, "personal access token", "login");
    assert_eq!(fx.fake.hits("POST", TOKEN_PATH), 0, "no poll");
    fx.assert_no_secret(&[DEVICE_CODE]);
}

#[test]
fn gitlab_device_login_serves_the_oauth_token() {
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/", "/api/v4");
    fx.set_oauth_client_id("gl", CLIENT_ID);
    let base = fx.base();
    fx.fake.route(
        "POST",
        "/oauth/authorize_device",
        vec![fake::gitlab_device_code(&base, GL_DEVICE_CODE, "GLAB-CODE")],
    );
    fx.fake.route(
        "POST",
        "/oauth/token",
        vec![
            fake::gitlab_oauth_error("authorization_pending"),
            fake::gitlab_tokens(GL_ACCESS, GL_REFRESH),
        ],
    );
    let before = unix_now();
    let out = fx.login("gl");
    let after = unix_now();
    assert!(
        out.status.success(),
        "login succeeds\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let shown = stderr(&out);
    assert_contains(&shown, &format!("{base}/oauth/device"), "login");
    assert_contains(&shown, "GLAB-CODE", "login");
    assert_contains(
        &shown,
        &format!("{base}/oauth/device?user_code=GLAB-CODE"),
        "login shows verification_uri_complete",
    );
    let start = &fx.fake.requests_to("POST", "/oauth/authorize_device")[0];
    assert_eq!(start.form_field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        start.form_field("scope").as_deref(),
        Some("read_repository write_repository")
    );
    assert_eq!(fx.fake.hits("POST", "/oauth/token"), 2);
    let t = fx.token_status("gl");
    assert_eq!(t["oauth"], true, "{t:#}");
    assert_between(&t["expires"], before + 7200, after + 7200, "token.expires");
    assert_serves(&fx, &format!("{base}/group/app.git"), "oauth2", GL_ACCESS);
    fx.assert_no_secret(&[GL_DEVICE_CODE, GL_ACCESS, GL_REFRESH]);
}

/// The value of `name` in a URL's query, decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (fake::percent_decode(k) == name).then(|| fake::percent_decode(v))
    })
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)), with the system's `sha256sum`.
fn s256(verifier: &str) -> String {
    let out = run_bounded(
        Command::new("sha256sum"),
        verifier.as_bytes(),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "sha256sum runs");
    let hex = stdout(&out);
    let bytes: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("sha256sum prints hex"))
        .collect();
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            text.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    text
}

#[test]
fn gitea_browser_login_with_pkce() {
    let fx = Fx::new();
    let base = fx.base();
    fx.ctl_ok(&[
        "runtime",
        "add",
        "tea",
        "--provider",
        "gitea",
        "--url",
        &format!("{base}/"),
        "--api-url",
        &format!("{base}/api/v1"),
        "--username",
        "gitea-user",
    ]);
    // Without a registered OAuth app: the same clear refusal as for the device flow.
    let err = fx.ctl_err(&["login", "tea"]);
    assert_contains(
        &err,
        &format!("OAuth app is not registered for {}", fx.fake.host()),
        "gitea login without oauth_client_id",
    );
    fx.set_oauth_client_id("tea", CLIENT_ID);
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        "grant_type=authorization_code",
        vec![Reply::json(
            200,
            serde_json::json!({
                "access_token": GITEA_ACCESS,
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": GITEA_REFRESH,
            }),
        )],
    );

    // helperctl prints the page to open and waits for the browser's redirect; this test is
    // the browser (and the user who approves).
    let mut c = fx.sb.ctl();
    c.args(["login", "tea"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("helperctl starts");
    let err_pipe = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(err_pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("/login/oauth/authorize") => break line.trim().to_string(),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("helperctl login printed no authorization page");
            }
        }
    };
    assert!(
        page.starts_with(&format!("{base}/login/oauth/authorize?")),
        "the page is on the Gitea web host: {page}"
    );
    assert_eq!(query_param(&page, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(query_param(&page, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&page, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(&page, "code_challenge").expect("a PKCE challenge");
    let state = query_param(&page, "state").expect("a state");
    let redirect = query_param(&page, "redirect_uri").expect("a redirect URI");
    let authority = redirect
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .expect("an http://127.0.0.1:PORT/... redirect")
        .to_string();
    assert!(
        authority.starts_with("127.0.0.1:"),
        "loopback redirect: {redirect}"
    );

    // The host redirects the browser back with the code and the state.
    let path = redirect
        .strip_prefix(&format!("http://{authority}"))
        .unwrap_or("/");
    let mut browser = std::net::TcpStream::connect(&authority).expect("helperctl listens");
    browser
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout can be set");
    write!(
        browser,
        "GET {path}?code={GITEA_CODE}&state={state} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("the redirect is sent");
    let mut answer = String::new();
    let _ = browser.read_to_string(&mut answer);
    assert_contains(&answer, "logged in", "the page the browser shows");

    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("helperctl login did not finish after the redirect");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out_text = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out_text);
    }
    let err_text = reader.join().unwrap_or_default();
    fx.see("helperctl login tea (stdout)", &out_text);
    fx.see("helperctl login tea (stderr)", &err_text);
    assert!(status.success(), "login succeeds\n{out_text}\n{err_text}");
    assert_contains(&out_text, "logged in", "helperctl login tea");

    // The daemon exchanged the code with the verifier that matches the challenge.
    let exchanges = fx.fake.requests_to("POST", TOKEN_PATH);
    assert_eq!(exchanges.len(), 1, "one code exchange");
    let x = &exchanges[0];
    assert_eq!(
        x.form_field("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(x.form_field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(x.form_field("code").as_deref(), Some(GITEA_CODE));
    assert_eq!(x.form_field("redirect_uri"), Some(redirect.clone()));
    let verifier = x.form_field("code_verifier").expect("a PKCE verifier");
    assert!(
        (43..=128).contains(&verifier.len()),
        "RFC 7636 §4.1 verifier length: {}",
        verifier.len()
    );
    assert_eq!(
        s256(&verifier),
        challenge,
        "S256(verifier) is the challenge"
    );
    assert!(
        !page.contains(&verifier) && !err_text.contains(&verifier),
        "the verifier never leaves the daemon except to the token endpoint"
    );

    let t = fx.token_status("tea");
    assert_eq!(t["oauth"], true, "{t:#}");
    assert!(t["expires"].is_u64(), "{t:#}");
    assert_serves(
        &fx,
        &format!("{base}/org/app.git"),
        "gitea-user",
        GITEA_ACCESS,
    );
    fx.assert_no_secret(&[GITEA_CODE, GITEA_ACCESS, GITEA_REFRESH, &verifier]);
}

// ---------------------------------------------------------------------------------------
// 8. OAuth not registered
// ---------------------------------------------------------------------------------------

#[test]
fn login_without_an_oauth_app_says_it_is_not_registered() {
    let fx = github("");
    let err = fx.ctl_err(&["login", "gh"]);
    assert_contains(
        &err,
        &format!("OAuth app is not registered for {}", fx.fake.host()),
        "login without oauth_client_id",
    );
    assert_contains(&err, "ask your admin", "login without oauth_client_id");
    assert_contains(
        &err,
        "personal access token",
        "login without oauth_client_id",
    );
    assert!(
        fx.fake.requests().is_empty(),
        "nothing was asked of the host: {:#?}",
        fx.fake.requests()
    );

    // A client id the host does not know: GitHub answers 404 on /login/device/code.
    fx.set_oauth_client_id("gh", "Iv1.unknownclient");
    fx.fake.route(
        "POST",
        "/login/device/code",
        vec![Reply::json(404, serde_json::json!({"error": "Not Found"}))],
    );
    let err = fx.ctl_err(&["login", "gh"]);
    assert_contains(
        &err,
        &format!("OAuth app is not registered for {}", fx.fake.host()),
        "login with an unknown client id",
    );
    assert!(fx.token_status("gh").is_null());
    fx.assert_no_secret(ALL_SECRETS);
}

// ---------------------------------------------------------------------------------------
// 9. Refresh
// ---------------------------------------------------------------------------------------

/// Logs `gh` in with an access token that expires in `expires_in` seconds (inside the
/// 5-minute refresh window) and REFRESH_1.
#[track_caller]
fn login_with_short_token(fx: &Fx, expires_in: u64) {
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        DEVICE_GRANT,
        vec![fake::github_tokens(
            ACCESS_1,
            Some(REFRESH_1),
            Some(expires_in),
        )],
    );
    let out = fx.login("gh");
    assert!(
        out.status.success(),
        "login succeeds\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(fx.token_status("gh")["oauth"], true);
}

#[test]
fn concurrent_fills_cause_exactly_one_refresh() {
    let fx = github_oauth();
    login_with_short_token(&fx, 60);
    // The refresh answer is slow, so that every fill arrives while it is under way.
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        vec![fake::github_tokens(ACCESS_2, Some(REFRESH_2), Some(28_800))
            .delayed(Duration::from_millis(700))],
    );
    let url = format!("{}/octo/app.git", fx.base());
    let before = unix_now();
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| fill_in(&fx.sb, &url))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a fill thread does not panic"))
            .collect()
    });
    let after = unix_now();
    for (i, out) in outs.iter().enumerate() {
        fx.see(&format!("concurrent fill {i} (stderr)"), &stderr(out));
        assert!(
            served(out).as_deref() == Some(ACCESS_2),
            "fill {i} got the refreshed token (served: {}; stderr: {})",
            match served(out).as_deref() {
                Some(ACCESS_1) => "the OLD token",
                Some(_) => "another value",
                None => "nothing",
            },
            stderr(out)
        );
        assert_eq!(
            value(&stdout(out), "username").as_deref(),
            Some("x-access-token")
        );
    }
    assert_eq!(
        fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT),
        1,
        "eight concurrent fills, exactly one refresh"
    );
    let refresh = fx
        .fake
        .requests_to("POST", TOKEN_PATH)
        .into_iter()
        .find(|r| r.body.contains(REFRESH_GRANT))
        .expect("the refresh was recorded");
    assert_eq!(refresh.form_field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        refresh.form_field("refresh_token").as_deref(),
        Some(REFRESH_1),
        "the refresh token from the login was used"
    );
    assert!(
        refresh.header("authorization").is_none(),
        "public client: no client secret"
    );

    let t = fx.token_status("gh");
    assert_eq!(t["oauth"], true, "{t:#}");
    assert_between(
        &t["expires"],
        before + 28_800,
        after + 28_800,
        "the refreshed token's expiry",
    );
    // Fresh now: later fills neither refresh again nor serve the old token.
    assert_serves(&fx, &url, "x-access-token", ACCESS_2);
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT), 1);
    fx.assert_no_secret(&[DEVICE_CODE, ACCESS_1, REFRESH_1, ACCESS_2, REFRESH_2]);
}

#[test]
fn failed_refresh_of_an_expired_token_asks_for_renewal() {
    let fx = github_oauth();
    login_with_short_token(&fx, 2);
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        vec![fake::github_oauth_error("bad_refresh_token")],
    );
    let expires = fx.token_status("gh")["expires"]
        .as_u64()
        .expect("the OAuth token has an expiry");
    fx.sb.advance_clock_past(expires);
    let notice = assert_serves_nothing(&fx, &format!("{}/octo/app.git", fx.base()));
    assert_contains(&notice, "helperctl renew gh", "the renewal notice");
    assert!(fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT) >= 1);
    fx.assert_no_secret(&[DEVICE_CODE, ACCESS_1, REFRESH_1]);
}

#[test]
fn failed_refresh_serves_nothing_and_asks_for_renewal() {
    // The access token has 60 s left (inside the refresh window); the host refuses the
    // refresh token. The next fill must not carry on silently with a token that is about
    // to die and can no longer be renewed: it serves nothing and names `helperctl renew`.
    let fx = github_oauth();
    login_with_short_token(&fx, 60);
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        vec![fake::github_oauth_error("bad_refresh_token")],
    );
    let url = format!("{}/octo/app.git", fx.base());
    let out = fx.fill(&url);
    let refreshes = fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT);
    assert_eq!(refreshes, 1, "the refresh was tried once");
    let served_what = match served(&out).as_deref() {
        Some(ACCESS_1) => "the old access token",
        Some(_) => "another value",
        None => "nothing",
    };
    assert!(
        served(&out).is_none(),
        "after a failed refresh the fill must serve nothing, but served {served_what}\nstderr: {}",
        stderr(&out)
    );
    assert_contains(&stderr(&out), "helperctl renew gh", "the renewal notice");
    fx.assert_no_secret(&[DEVICE_CODE, ACCESS_1, REFRESH_1]);
}

// ---------------------------------------------------------------------------------------
// 10. Revoke
// ---------------------------------------------------------------------------------------

#[test]
fn github_token_remove_revoke_calls_the_revocation_api() {
    let fx = github("");
    fx.fake
        .route("GET", "/user", vec![fake::github_user(Some("repo"), None)]);
    // https://docs.github.com/en/rest/credentials/revoke : 202 Accepted.
    fx.fake
        .route("POST", "/credentials/revoke", vec![Reply::empty(202)]);
    fx.token_set_ok("gh", GH_REVOKE, &[]);
    let said = fx.ctl_ok(&["token", "remove", "gh", "--revoke"]);
    assert_contains(&said, "revoked at the host", "token remove --revoke");
    let asked = fx.fake.requests_to("POST", "/credentials/revoke");
    assert_eq!(asked.len(), 1, "one revocation: {asked:#?}");
    assert_eq!(
        asked[0].json(),
        serde_json::json!({"credentials": [GH_REVOKE]}),
        "the token travels in the body"
    );
    assert!(
        asked[0].header("authorization").is_none(),
        "the revocation API refuses authenticated requests"
    );
    assert!(fx.token_status("gh").is_null(), "the token is gone");
    fx.assert_no_secret(&[GH_REVOKE]);
}

#[test]
fn gitlab_token_remove_revoke_deletes_the_token_itself() {
    let fx = Fx::new();
    fx.add_runtime("gl", "gitlab", "/", "/api/v4");
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_self(&["api"], Some(&date_of(midnight_in(60))))],
    );
    fx.fake.route(
        "DELETE",
        "/api/v4/personal_access_tokens/self",
        vec![Reply::empty(204)],
    );
    fx.token_set_ok("gl", GL_REVOKE, &[]);
    let said = fx.ctl_ok(&["token", "remove", "gl", "--revoke"]);
    assert_contains(&said, "revoked at the host", "token remove --revoke");
    let asked = fx
        .fake
        .requests_to("DELETE", "/api/v4/personal_access_tokens/self");
    assert_eq!(asked.len(), 1);
    assert!(asked[0].header("authorization") == Some(&format!("Bearer {GL_REVOKE}")));
    assert!(fx.token_status("gl").is_null());
    fx.assert_no_secret(&[GL_REVOKE]);
}

#[test]
fn gitea_token_remove_revoke_says_where_to_delete_it() {
    let fx = Fx::new();
    fx.add_runtime("tea", "gitea", "/", "/api/v1");
    fx.fake
        .route("GET", "/api/v1/user", vec![fake::gitea_user()]);
    fx.fake.route(
        "GET",
        "/api/v1/repos/search",
        vec![fake::gitea_repo_search()],
    );
    fx.token_set_ok("tea", GITEA_TOKEN, &[]);
    let checks = fx.fake.requests().len();
    let said = fx.ctl_ok(&["token", "remove", "tea", "--revoke"]);
    assert_contains(&said, "cannot revoke", "token remove --revoke on Gitea");
    assert_contains(
        &said,
        &format!("{}/user/settings/applications", fx.base()),
        "the token page",
    );
    assert_lacks(&said, "was revoked", "token remove --revoke on Gitea");
    assert_eq!(
        fx.fake.requests().len(),
        checks,
        "nothing was sent to the host: {:#?}",
        fx.fake.requests()
    );
    assert!(
        fx.token_status("tea").is_null(),
        "removed here all the same"
    );
    fx.assert_no_secret(&[GITEA_TOKEN]);
}

#[test]
fn a_slow_revocation_does_not_hold_up_git() {
    // The revocation is an HTTP call to the host (up to 30 s); git requests for other
    // runtimes must not wait for it (src/daemon/providers.rs: HTTP calls are made without
    // the state lock for token set, verify, revoke and login polling).
    let fx = Fx::new();
    fx.add_runtime("alpha", "github", "/alpha/", "");
    fx.add_runtime("bravo", "github", "/bravo/", "");
    fx.fake
        .route("GET", "/user", vec![fake::github_user(Some("repo"), None)]);
    fx.fake.route(
        "POST",
        "/credentials/revoke",
        vec![Reply::empty(202).delayed(Duration::from_secs(4))],
    );
    fx.token_set_ok("alpha", GH_VERIFY_A, &[]);
    fx.token_set_ok("bravo", GH_VERIFY_B, &[]);
    let url = format!("{}/bravo/app.git", fx.base());
    let (fill_took, fill, revoke) = std::thread::scope(|s| {
        let revoking = s.spawn(|| {
            let mut c = fx.sb.ctl();
            c.args(["token", "remove", "alpha", "--revoke"]);
            run_bounded(c, b"", COMMAND_TIMEOUT)
        });
        assert!(
            fx.fake
                .wait_for_hits("POST", "/credentials/revoke", 1, Duration::from_secs(10)),
            "the revocation reached the host"
        );
        let started = Instant::now();
        let fill = fill_in(&fx.sb, &url);
        let took = started.elapsed();
        (took, fill, revoking.join().expect("the revoke thread ends"))
    });
    fx.see_all("token remove alpha --revoke", &revoke);
    fx.see("fill during the revocation (stderr)", &stderr(&fill));
    assert!(revoke.status.success(), "revoke: {}", stderr(&revoke));
    assert!(
        served(&fill).as_deref() == Some(GH_VERIFY_B),
        "bravo is served"
    );
    assert!(
        fill_took < Duration::from_secs(2),
        "a git request for another runtime waited {fill_took:?} for the revocation at the host"
    );
    fx.assert_no_secret(&[GH_VERIFY_A, GH_VERIFY_B]);
}

// ---------------------------------------------------------------------------------------
// 11. token verify
// ---------------------------------------------------------------------------------------

#[test]
fn token_verify_updates_what_the_host_says_and_marks_rejected_tokens() {
    let fx = Fx::new();
    fx.add_runtime("alpha", "github", "/alpha/", "");
    fx.add_runtime("bravo", "github", "/bravo/", "");
    fx.fake
        .route("GET", "/user", vec![fake::github_user(Some("repo"), None)]);
    fx.token_set_ok("alpha", GH_VERIFY_A, &[]);
    fx.token_set_ok("bravo", GH_VERIFY_B, &[]);
    let a0 = fx.token_status("alpha");
    let b0 = fx.token_status("bravo");
    let a0_checked = a0["checked_at"].as_u64().expect("checked when set");
    let b0_checked = b0["checked_at"].as_u64().expect("checked when set");

    // The scopes changed at the host; a second passes so checked_at can move.
    fx.fake.route(
        "GET",
        "/user",
        vec![fake::github_user(Some("repo, workflow"), None)],
    );
    let later = a0_checked.max(b0_checked);
    fx.sb.advance_clock_past(later);
    let said = fx.ctl_ok(&["token", "verify", "alpha"]);
    assert_contains(&said, "alpha: accepted by the host", "token verify alpha");
    assert_contains(&said, "repo,workflow", "token verify alpha");
    let a1 = fx.token_status("alpha");
    assert!(a1["checked_at"].as_u64() > Some(a0_checked), "{a1:#}");
    assert_eq!(strings(&a1["scopes"]), ["repo", "workflow"], "{a1:#}");
    let b1 = fx.token_status("bravo");
    assert_eq!(b1["checked_at"], b0_checked, "bravo was not asked: {b1:#}");
    assert_eq!(strings(&b1["scopes"]), ["repo"], "{b1:#}");

    fx.sb.advance_clock(2);
    let said = fx.ctl_ok(&["token", "verify", "--all"]);
    assert_contains(&said, "alpha: accepted by the host", "token verify --all");
    assert_contains(&said, "bravo: accepted by the host", "token verify --all");
    let b2 = fx.token_status("bravo");
    assert!(b2["checked_at"].as_u64() > Some(b0_checked), "{b2:#}");
    assert_eq!(strings(&b2["scopes"]), ["repo", "workflow"], "{b2:#}");
    let auths: Vec<String> = fx
        .fake
        .requests_to("GET", "/user")
        .iter()
        .filter_map(|r| r.header("authorization").map(String::from))
        .collect();
    assert_eq!(auths.len(), 5, "2 sets, 1 verify, 2 for --all");
    assert!(auths[3..].contains(&format!("Bearer {GH_VERIFY_A}")));
    assert!(auths[3..].contains(&format!("Bearer {GH_VERIFY_B}")));

    // The host now rejects alpha's token.
    fx.fake
        .route("GET", "/user", vec![fake::github_bad_credentials()]);
    // A rejected token is an error for scripts: exit 1, the reason on stderr.
    let said = fx.ctl_err(&["token", "verify", "alpha"]);
    assert_contains(&said, "alpha: REJECTED", "token verify of a revoked token");
    assert_contains(&said, "401", "token verify of a revoked token");
    let a3 = fx.token_status("alpha");
    assert_eq!(a3["state"], "rejected", "{a3:#}");
    assert_eq!(fx.token_status("bravo")["state"], "valid");
    let notice = assert_serves_nothing(&fx, &format!("{}/alpha/app.git", fx.base()));
    assert_contains(&notice, "rejected", "git's notice");
    assert_contains(&notice, "helperctl renew alpha", "git's notice");
    assert_serves(
        &fx,
        &format!("{}/bravo/app.git", fx.base()),
        "x-access-token",
        GH_VERIFY_B,
    );
    fx.assert_no_secret(&[GH_VERIFY_A, GH_VERIFY_B]);
}

// ---------------------------------------------------------------------------------------
// 12. No secret in any output or log
// ---------------------------------------------------------------------------------------

#[test]
fn no_token_refresh_token_or_device_code_appears_in_any_output_or_log() {
    // Every target at trace level (reqwest, hyper, rustls too), not just helperd's.
    let fx = Fx::with_env(&[("HELPERD_LOG", "trace")]);
    fx.add_runtime("gh", "github", "/", "");
    fx.add_runtime("gl", "gitlab", "/gl/", "/api/v4");
    let base = fx.base();

    // token set: accepted, rejected, missing scope (refused, then forced).
    let expires = noon_in(120);
    let header = format!("{} 12:00:00 UTC", date_of(expires));
    fx.fake.route(
        "GET",
        "/user",
        vec![
            fake::github_user(Some("repo"), Some(&header)),
            fake::github_bad_credentials(),
            fake::github_user(Some("read:org"), None),
            fake::github_user(Some("read:org"), None),
            fake::github_user(Some("repo"), Some(&header)),
        ],
    );
    fx.token_set_ok("gh", GH_CLASSIC, &[]);
    fx.token_set_err("gh", GH_BAD, &[]);
    fx.token_set_err("gh", GH_NOSCOPE, &[]);
    fx.token_set_ok("gh", GH_NOSCOPE, &["--force"]);
    fx.token_set_ok("gh", GH_REVOKE, &[]);
    fx.fake.route(
        "GET",
        "/api/v4/personal_access_tokens/self",
        vec![fake::gitlab_self(
            &["write_repository"],
            Some(&date_of(midnight_in(90))),
        )],
    );
    fx.token_set_ok("gl", GL_PAT, &[]);
    fx.ctl_ok(&["token", "verify", "--all"]);
    fx.ctl_ok(&["status"]);
    fx.ctl_ok(&["status", "--json"]);
    fx.ctl_ok(&["audit"]);
    fx.ctl_ok(&["which", &format!("{base}/octo/app.git")]);

    // Revoke (GitHub), then a device login and a refresh.
    fx.fake
        .route("POST", "/credentials/revoke", vec![Reply::empty(202)]);
    fx.ctl_ok(&["token", "remove", "gh", "--revoke"]);
    fx.set_oauth_client_id("gh", CLIENT_ID);
    fx.fake.route(
        "POST",
        "/login/device/code",
        vec![fake::github_device_code(&base, DEVICE_CODE, USER_CODE)],
    );
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        DEVICE_GRANT,
        vec![
            fake::github_oauth_error("authorization_pending"),
            fake::github_tokens(ACCESS_1, Some(REFRESH_1), Some(60)),
        ],
    );
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        vec![fake::github_tokens(ACCESS_2, Some(REFRESH_2), Some(28_800))],
    );
    let out = fx.login("gh");
    assert!(out.status.success(), "login: {}", stderr(&out));
    let url = format!("{base}/octo/app.git");
    assert_serves(&fx, &url, "x-access-token", ACCESS_2);
    fx.ctl_ok(&["token", "verify", "gh"]);
    fx.ctl_ok(&["status", "--json"]);
    fx.ctl_ok(&["audit", "--json"]);
    let bundle = fx.sb.dir.path().join("bundle.tar");
    fx.ctl_ok(&[
        "support",
        "bundle",
        "--output",
        bundle.to_str().expect("UTF-8 temp path"),
    ]);
    let bundle_bytes = fs::read(&bundle).expect("the bundle was written");
    fx.see(
        "the support bundle",
        &String::from_utf8_lossy(&bundle_bytes),
    );
    fx.ctl_ok(&["daemon", "stop"]);

    // The secrets did reach the host (so their absence elsewhere means something).
    let sent: String = fx
        .fake
        .requests()
        .iter()
        .map(fake::Request::everything)
        .collect();
    for secret in [
        GH_CLASSIC,
        GH_BAD,
        GH_NOSCOPE,
        GH_REVOKE,
        GL_PAT,
        DEVICE_CODE,
        REFRESH_1,
    ] {
        assert!(sent.contains(secret), "{secret} was sent to the host");
    }
    assert!(
        fx.sb.log().lines().count() > 20,
        "the daemon logged at trace level"
    );
    fx.assert_no_secret(ALL_SECRETS);
}

/// A token host that takes 20 s to answer a refresh delays only the requests for that
/// runtime: a plain credential and a PAT runtime on other hosts are served at once, and
/// the eight concurrent fills for the refreshing runtime share the one refresh.
#[test]
fn a_slow_refresh_delays_only_its_own_runtime() {
    const PLAIN_PW: &str = "plain-pw-SlowRefresh1";
    const PAT: &str = "ghp_pat_SlowRefresh2";
    let fx = github_oauth();
    login_with_short_token(&fx, 60);
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        vec![fake::github_tokens(ACCESS_2, Some(REFRESH_2), Some(28_800))
            .delayed(Duration::from_secs(20))],
    );
    fx.ctl_ok(&[
        "runtime",
        "add",
        "pat",
        "--provider",
        "github",
        "--url",
        "https://pat.example/",
    ]);
    let out = fx.token_set("pat", PAT, &["--offline"]);
    crate::util::assert_ok(&out);
    crate::util::assert_ok(&fx.sb.credential_with(
        &["credential.useHttpPath=true"],
        "approve",
        &format!(
            "protocol=https\nhost=plain.example\npath=repo.git\nusername=bob\npassword={PLAIN_PW}\n"
        ),
    ));

    let url = format!("{}/octo/app.git", fx.base());
    std::thread::scope(|s| {
        let fills: Vec<_> = (0..8).map(|_| s.spawn(|| fill_in(&fx.sb, &url))).collect();
        assert!(
            fx.fake
                .wait_for_hits("POST", TOKEN_PATH, 2, Duration::from_secs(10)),
            "the refresh reached the host (after the login's token request)"
        );
        // While the host sits on the refresh: other hosts are answered at once.
        let start = Instant::now();
        let plain = fill_in(&fx.sb, "https://plain.example/repo.git");
        let plain_took = start.elapsed();
        let start = Instant::now();
        let pat = fill_in(&fx.sb, "https://pat.example/org/repo.git");
        let pat_took = start.elapsed();
        assert_eq!(
            served(&plain).as_deref(),
            Some(PLAIN_PW),
            "{}",
            stderr(&plain)
        );
        assert_eq!(served(&pat).as_deref(), Some(PAT), "{}", stderr(&pat));
        assert!(
            plain_took < Duration::from_secs(1) && pat_took < Duration::from_secs(1),
            "a plain get took {plain_took:?} and a PAT get {pat_took:?} during the refresh"
        );
        assert_eq!(
            fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT),
            1,
            "the refresh is still under way"
        );
        for (i, fill) in fills.into_iter().enumerate() {
            let out = fill.join().expect("a fill thread does not panic");
            assert_eq!(
                served(&out).as_deref(),
                Some(ACCESS_2),
                "fill {i} waited for the one refresh: {}",
                stderr(&out)
            );
        }
    });
    assert_eq!(
        fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT),
        1,
        "eight concurrent fills, exactly one refresh"
    );
    fx.assert_no_secret(&[ACCESS_1, REFRESH_1, ACCESS_2, REFRESH_2, PAT, PLAIN_PW]);
}

/// A refresh whose new tokens cannot be saved loses nothing: the old token serves while
/// it is valid, and the new tokens (the host has made the old refresh token useless) are
/// kept in memory and saved at the next attempt, without asking the host again.
#[test]
fn a_refresh_whose_save_fails_keeps_the_new_tokens_for_the_next_attempt() {
    let fx = github_oauth();
    login_with_short_token(&fx, 60);
    let pid = fx.sb.daemon_pid().expect("the login started the daemon");
    // The file store writes `secrets.enc` through a temporary file: a folder in its place
    // makes every save fail (as a full or read-only disk would), whoever runs the test.
    let data = fx.sb.helperd_home().join("data");
    let blocker = fs::read_dir(&data)
        .expect("the file store's folder exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "enc"))
        .map(|p| p.with_extension("enc.tmp"))
        .expect("the file store holds secrets.enc");
    fs::create_dir(&blocker).expect("the blocker can be made");
    fx.fake.route_body(
        "POST",
        TOKEN_PATH,
        REFRESH_GRANT,
        // The second token lives only 2 minutes: due for its own refresh at once (the
        // provider reckons expiries on the wall clock, not on the test's moved one).
        vec![
            fake::github_tokens(ACCESS_2, Some(REFRESH_2), Some(120)),
            fake::github_tokens(ACCESS_3, Some(REFRESH_3), Some(28_800)),
        ],
    );
    let url = format!("{}/octo/app.git", fx.base());
    // Still valid for a minute: the old token is served while the new one cannot be kept.
    let out = fill_in(&fx.sb, &url);
    assert_eq!(served(&out).as_deref(), Some(ACCESS_1), "{}", stderr(&out));
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT), 1);
    assert_eq!(fx.sb.daemon_pid(), Some(pid), "the daemon survived");

    // The store works again; after the back-off the kept tokens are saved, the host is
    // not asked again.
    fs::remove_dir(&blocker).unwrap();
    fx.sb.advance_clock(61);
    let out = fill_in(&fx.sb, &url);
    assert_eq!(served(&out).as_deref(), Some(ACCESS_2), "{}", stderr(&out));
    assert_eq!(fx.fake.hits_body("POST", TOKEN_PATH, REFRESH_GRANT), 1);

    // The next refresh uses the refresh token the host handed out with them.
    let out = fill_in(&fx.sb, &url);
    assert_eq!(served(&out).as_deref(), Some(ACCESS_3), "{}", stderr(&out));
    let refreshes: Vec<_> = fx
        .fake
        .requests_to("POST", TOKEN_PATH)
        .into_iter()
        .filter(|r| r.body.contains(REFRESH_GRANT))
        .collect();
    assert_eq!(refreshes.len(), 2);
    assert_eq!(
        refreshes[1].form_field("refresh_token").as_deref(),
        Some(REFRESH_2),
        "the refresh token of the saved refresh was used"
    );
    fx.assert_no_secret(&[
        ACCESS_1, REFRESH_1, ACCESS_2, REFRESH_2, ACCESS_3, REFRESH_3,
    ]);
}

/// An OAuth app the administrator registered for the host in the system policy
/// (`[[oauth_app]]`) serves every runtime there that names no `oauth_client_id`.
#[test]
fn an_oauth_app_registered_in_the_policy_drives_a_device_login() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = github("");
    // Without it: not registered, and the error names the admin as the way out.
    let out = fx.login("gh");
    assert!(!out.status.success());
    assert_contains(
        &stderr(&out),
        "ask your admin",
        "login without an OAuth app",
    );
    assert_contains(&stderr(&out), "[[oauth_app]]", "login without an OAuth app");

    let host = fx.base().trim_start_matches("http://").to_string();
    let dir = fx.sb.dir.path().join("policy");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let policy = dir.join("policy.toml");
    fs::write(
        &policy,
        format!("[[oauth_app]]\nhost = \"{host}\"\nclient_id = \"{CLIENT_ID}\"\nscopes = [\"repo\", \"workflow\"]\n"),
    )
    .unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
    fx.sb
        .env
        .push(("HELPERD_POLICY".into(), policy.display().to_string()));
    fx.ctl_ok(&["daemon", "restart"]);
    let base = fx.base();
    fx.fake.route(
        "POST",
        "/login/device/code",
        vec![fake::github_device_code(&base, DEVICE_CODE, USER_CODE)],
    );
    login_with_short_token(&fx, 28_800);
    let asked = fx
        .fake
        .requests_to("POST", "/login/device/code")
        .into_iter()
        .last()
        .expect("the device code was asked for");
    assert_eq!(asked.form_field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(asked.form_field("scope").as_deref(), Some("repo workflow"));
    let status = fx.status_json();
    let gh = status["daemon"]["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "gh")
        .unwrap()
        .clone();
    assert_eq!(gh["oauth_app"], "policy", "{gh:#}");
    assert_eq!(gh["token"]["oauth"], true, "{gh:#}");
}
