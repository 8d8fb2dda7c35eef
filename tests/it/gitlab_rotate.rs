//! GitLab tokens that rotate themselves (issue 18). A fake GitLab rotates as GitLab
//! documents (https://docs.gitlab.com/api/personal_access_tokens/#rotate-a-personal-access-token):
//! the old token is revoked at once, the new one is answered with its `expires_at` date,
//! and rotating with an already rotated token revokes its successor too (gitlab#524639).
//! The git HTTP test server accepts only the tokens the fake holds active, so a real clone
//! and push show which token works. The fake counts rotations per token.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_provider::{FakeProvider, Reply, Request};
use crate::git_server::{Account, GitServer};
use crate::util::*;

const ROTATE: &str = "/api/v4/personal_access_tokens/self/rotate";
/// A project access token's own endpoint, the project named by its URL-encoded path.
const PROJECT_ROTATE: &str = "/api/v4/projects/acme%2Fapp/access_tokens/self/rotate";
/// A group access token's, the (sub)group named by its URL-encoded path.
const GROUP_ROTATE: &str = "/api/v4/groups/acme%2Fplatform/access_tokens/self/rotate";
const SELF: &str = "/api/v4/personal_access_tokens/self";
const ORIGINAL: &str = "glpat-originalTokenOfTheTest0001";
const DAY: u64 = 86_400;

struct Tok {
    secret: String,
    expires_at: String,
    active: bool,
    successor: Option<usize>,
}

/// The fake GitLab's tokens and its behaviour switches.
#[derive(Default)]
struct Gl {
    tokens: Vec<Tok>,
    /// Rotation requests per token secret.
    rotations: HashMap<String, usize>,
    /// Answer rotations with this status (a token without the scope: 403).
    fail: Option<u16>,
    /// Hold the rotation's answer this long, after the host rotated.
    hold: Duration,
}

impl Gl {
    fn find(&self, secret: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t.secret == secret)
    }
}

struct World {
    fake: FakeProvider,
    git: Arc<GitServer>,
    sb: Sandbox,
    gl: Arc<Mutex<Gl>>,
    seen: Mutex<Vec<String>>,
    /// The rotation endpoint of the token's kind.
    rotate: &'static str,
}

fn bearer(req: &Request) -> String {
    req.header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

fn unauthorized() -> Reply {
    Reply::json(401, json!({"message": "401 Unauthorized"}))
}

/// The git server takes exactly the tokens GitLab holds active.
fn sync_accounts(gl: &Gl, git: &GitServer) {
    git.set_accounts(
        gl.tokens
            .iter()
            .filter(|t| t.active)
            .map(|t| Account::new("/acme/", "oauth2", &t.secret))
            .collect(),
    );
}

/// A world with runtime `gl` (rotate_days 7) holding ORIGINAL, a personal access token
/// which expires in 30 days.
fn world() -> World {
    world_with(&["--rotate-days", "7"], ROTATE, None)
}

/// Like [`world`], with these `runtime add` arguments (instead of `--rotate-days 7`), the
/// endpoint they rotate through, and a system policy.
fn world_with(extra: &[&str], rotate: &'static str, policy: Option<&str>) -> World {
    let mut sb = Sandbox::new();
    no_proxy(&mut sb);
    if let Some(text) = policy {
        with_policy(&mut sb, text);
    }
    let repos = sb.dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let git = Arc::new(GitServer::start(&repos, Vec::new()));
    git.create_bare_repo("/acme/app.git");
    let fake = FakeProvider::start();
    let gl = Arc::new(Mutex::new(Gl::default()));
    gl.lock().unwrap().tokens.push(Tok {
        secret: ORIGINAL.into(),
        expires_at: date_of(unix_now() + 30 * DAY),
        active: true,
        successor: None,
    });
    sync_accounts(&gl.lock().unwrap(), &git);
    {
        let gl = gl.clone();
        fake.route_fn("GET", SELF, move |req| {
            let gl = gl.lock().unwrap();
            match gl.find(&bearer(req)).map(|i| &gl.tokens[i]) {
                Some(t) if t.active => Reply::json(
                    200,
                    json!({"id": 42, "name": "ci", "revoked": false, "active": true,
                           "scopes": ["api", "write_repository"], "expires_at": t.expires_at}),
                ),
                _ => unauthorized(),
            }
        });
    }
    {
        let (gl, git) = (gl.clone(), git.clone());
        fake.route_fn("POST", rotate, move |req| {
            let mut gl = gl.lock().unwrap();
            let secret = bearer(req);
            *gl.rotations.entry(secret.clone()).or_default() += 1;
            if let Some(status) = gl.fail {
                return Reply::json(status, json!({"message": format!("{status} Forbidden")}));
            }
            let Some(i) = gl.find(&secret) else {
                return unauthorized();
            };
            if !gl.tokens[i].active {
                // gitlab#524639: a rotated token used to rotate again revokes its
                // successors.
                let mut next = gl.tokens[i].successor;
                while let Some(n) = next {
                    gl.tokens[n].active = false;
                    next = gl.tokens[n].successor;
                }
                sync_accounts(&gl, &git);
                return unauthorized();
            }
            let expires_at = req.json()["expires_at"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| date_of(unix_now() + 7 * DAY));
            let n = gl.tokens.len();
            let new = format!("glpat-rotated{n}ByTheFakeHostZq{n}");
            gl.tokens[i].active = false;
            gl.tokens[i].successor = Some(n);
            gl.tokens.push(Tok {
                secret: new.clone(),
                expires_at: expires_at.clone(),
                active: true,
                successor: None,
            });
            sync_accounts(&gl, &git);
            // Rotated at the host before the answer leaves: a daemon killed while it waits
            // loses the new token, as with a real network.
            Reply::json(
                200,
                json!({"id": 40 + n, "name": "ci", "revoked": false, "active": true,
                       "scopes": ["api", "write_repository"], "expires_at": expires_at,
                       "token": new}),
            )
            .delayed(gl.hold)
        });
    }
    let w = World {
        fake,
        git,
        sb,
        gl,
        seen: Mutex::new(Vec::new()),
        rotate,
    };
    w.add_runtime("gl", "/acme/", extra);
    let mut c = w.sb.ctl();
    c.args(["token", "set", "gl"]);
    let out = run_with_stdin(c, format!("{ORIGINAL}\n").as_bytes());
    w.see(&out);
    assert_ok(&out);
    w
}

impl World {
    /// `runtime add NAME` for the repos under `path` of the git server, on the fake
    /// GitLab's API, with these extra arguments.
    fn add_runtime(&self, name: &str, path: &str, extra: &[&str]) {
        let (url, api) = (self.git.url(path), format!("{}/api/v4", self.fake.url()));
        let mut args = vec![
            "runtime",
            "add",
            name,
            "--provider",
            "gitlab",
            "--url",
            &url,
            "--api-url",
            &api,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    fn see(&self, out: &Output) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(stdout(out));
        seen.push(stderr(out));
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.sb.ctl().args(args).output().expect("helperctl runs");
        self.see(&out);
        assert!(
            out.status.success(),
            "helperctl {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `git credential fill` for the repo; the output's stderr is recorded.
    fn fill(&self) -> Output {
        let mut c = self.sb.git();
        c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
        let out = run_with_stdin(
            c,
            format!("url={}\n", self.git.url("/acme/app.git")).as_bytes(),
        );
        self.seen.lock().unwrap().push(stderr(&out));
        out
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Output {
        let out = git_in(
            &self.sb,
            dir,
            &[&["-c", "credential.useHttpPath=true"], args].concat(),
        );
        self.seen.lock().unwrap().push(stderr(&out));
        out
    }

    fn rotate_hits(&self) -> usize {
        self.fake.hits("POST", self.rotate)
    }

    fn rotations_of(&self, secret: &str) -> usize {
        self.gl
            .lock()
            .unwrap()
            .rotations
            .get(secret)
            .copied()
            .unwrap_or(0)
    }

    fn active(&self) -> Vec<String> {
        let gl = self.gl.lock().unwrap();
        gl.tokens
            .iter()
            .filter(|t| t.active)
            .map(|t| t.secret.clone())
            .collect()
    }

    fn all_secrets(&self) -> Vec<String> {
        let gl = self.gl.lock().unwrap();
        gl.tokens.iter().map(|t| t.secret.clone()).collect()
    }

    fn runtime_status(&self) -> Value {
        let status: Value = serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        status["daemon"]["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "gl")
            .unwrap()
            .clone()
    }

    /// Moves the daemon's clock into the rotation window (7 days before expiry); returns
    /// when the window starts.
    fn enter_window(&self) -> u64 {
        let rt = self.runtime_status();
        let due = rt["rotation"]["due_at"].as_u64().expect("a due time");
        assert_eq!(rt["rotation"]["state"], "scheduled", "{rt:#}");
        assert_eq!(rt["token"]["expires"].as_u64().unwrap() - 7 * DAY, due);
        self.sb.advance_clock_past(due);
        due
    }

    /// Waits until the status says the rotation is in `state`.
    #[track_caller]
    fn wait_rotation_state(&self, state: &str) -> Value {
        let mut last = Value::Null;
        let reached = wait_until(Duration::from_secs(20), || {
            last = self.runtime_status();
            last["rotation"]["state"] == state
        });
        assert!(reached, "rotation state {state}: {last:#}");
        last
    }

    /// No token of the fake in any file, log, audit line or output seen.
    fn assert_no_secret(&self) {
        let mut texts = self.seen.lock().unwrap().clone();
        texts.push(self.sb.log());
        texts.push(self.ok(&["audit", "--json"]));
        texts.push(self.ok(&["status"]));
        for file in files_under(&self.sb.helperd_home()) {
            texts.push(
                String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned(),
            );
        }
        for secret in self.all_secrets() {
            for text in &texts {
                assert_lacks(text, &secret, "a GitLab token");
            }
        }
    }
}

#[test]
fn gitlab_token_rotates_itself_once_inside_its_window_and_the_new_one_pushes() {
    let w = world();
    // Outside the window: served, nothing rotated.
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.rotate_hits(), 0);
    let human = w.ok(&["status"]);
    assert_contains(&human, "rotates itself 7 days before expiry", "status");
    assert_contains(&human, "next rotation 20", "status says when it is due");

    // Inside the window: many concurrent fills get the current token at once, and cause
    // one rotation in the background.
    w.gl.lock().unwrap().hold = Duration::from_millis(800);
    w.enter_window();
    let outs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16).map(|_| s.spawn(|| w.fill())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(
            served(out).is_some(),
            "every fill is served: {}",
            stderr(out)
        );
        // The daemon renews it: no "make a new one" for a token that rotates itself.
        assert_lacks(&stderr(out), "helperctl renew", "a renewal warning");
    }
    let rt = w.wait_rotation_state("scheduled");
    assert_eq!(w.rotate_hits(), 1, "one rotation for 16 fills");
    assert_eq!(w.rotations_of(ORIGINAL), 1);
    let new = w.active();
    assert_eq!(new.len(), 1);
    let new = new[0].clone();
    assert_ne!(new, ORIGINAL);
    // The new expiry: a date within the old token's lifetime from now.
    let asked = w.fake.requests_to("POST", w.rotate);
    let expires_at = asked[0].json()["expires_at"].as_str().unwrap().to_string();
    assert_eq!(rt["token"]["expires"].as_u64().unwrap() % DAY, 0, "{rt:#}");
    assert_eq!(
        date_of(rt["token"]["expires"].as_u64().unwrap()),
        expires_at
    );

    // The new token is served, and it is the one in the store: a real clone and push.
    assert_eq!(served(&w.fill()).as_deref(), Some(new.as_str()));
    let work = w.sb.dir.path().join("work");
    assert_ok(&w.git_in(
        w.sb.dir.path(),
        &["clone", "-q", &w.git.url("/acme/app.git"), "work"],
    ));
    std::fs::write(work.join("a.txt"), "a").unwrap();
    assert_ok(&w.git_in(&work, &["add", "a.txt"]));
    assert_ok(&w.git_in(&work, &["commit", "-q", "-m", "a"]));
    assert_ok(&w.git_in(&work, &["push", "-q", "origin", "main"]));
    // Still one rotation: the new token is far from its window.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.rotate_hits(), 1);

    // A restarted daemon serves the new token from the store, and rotates nothing.
    w.sb.kill_daemon(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(served(&w.fill()).as_deref(), Some(new.as_str()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.rotate_hits(), 1);

    let audit = w.ok(&["audit", "--json"]);
    let rotated: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"rotated\""))
        .collect();
    assert_eq!(rotated.len(), 1, "{audit}");
    assert_contains(
        rotated[0],
        "\"runtime\":\"gl\"",
        "the audit names the runtime",
    );
    assert_contains(
        rotated[0],
        &format!("new expiry {expires_at}"),
        "the audit has the new expiry",
    );
    w.assert_no_secret();
}

#[test]
fn gitlab_rotation_interrupted_by_a_kill_never_rotates_the_old_token_again() {
    let w = world();
    w.gl.lock().unwrap().hold = Duration::from_secs(8);
    let due = w.enter_window();
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    // The host rotated and holds its answer: the daemon dies before it has the new token.
    assert!(wait_until(Duration::from_secs(10), || w.rotate_hits() == 1));
    w.sb.kill_daemon(nix::sys::signal::Signal::SIGKILL);
    let tokens = std::fs::read_to_string(w.sb.helperd_home().join("state/tokens.json"))
        .expect("tokens.json");
    assert_contains(
        &tokens,
        "rotation_started",
        "the mark was saved before the POST",
    );
    let lost = w.active();
    assert_eq!(lost.len(), 1, "the host rotated");

    // Restarted, with its clock moved into the window again (a daemon that forgot the
    // mark would rotate with the old token now, and GitLab would revoke the new one): it
    // asks whether the old token still works (a read), learns it was rotated, and asks
    // the user.
    w.sb.advance_clock_past(due);
    let first = w.fill();
    assert!(
        served(&first).is_none() || served(&first).as_deref() == Some(ORIGINAL),
        "nothing but the old token can be served: {}",
        stderr(&first)
    );
    // Time for a wrong second rotation to happen, were there one.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        w.rotate_hits(),
        1,
        "never a second rotation with the old token"
    );
    assert_eq!(w.active(), lost, "the host's new token was never revoked");
    let rt = w.wait_rotation_state("lost");
    assert_eq!(rt["token"]["state"], "rejected", "{rt:#}");
    let refused = w.fill();
    assert!(served(&refused).is_none(), "{}", stdout(&refused));
    assert_contains(&stderr(&refused), "renew", "the user is told what to do");
    assert_contains(
        &w.ok(&["status"]),
        "interrupted rotation",
        "status says why",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.rotate_hits(), 1, "never a second rotation");
    assert_eq!(w.rotations_of(ORIGINAL), 1);
    assert_eq!(w.active(), lost, "the host's new token was never revoked");
    let audit = w.ok(&["audit", "--json"]);
    assert_contains(
        &audit,
        "\"rotation_lost\"",
        "the audit has the lost rotation",
    );

    // The user renews: the new token serves, rotations start from it.
    let mut c = w.sb.ctl();
    c.args(["token", "set", "gl"]);
    let out = run_with_stdin(c, format!("{}\n", lost[0]).as_bytes());
    w.see(&out);
    assert_ok(&out);
    assert_eq!(served(&w.fill()).as_deref(), Some(lost[0].as_str()));
    w.assert_no_secret();
}

#[test]
fn gitlab_rotation_interrupted_before_the_host_rotated_is_resumed_once() {
    let w = world();
    w.enter_window();
    // The host is down: no answer at all, the daemon cannot know whether it rotated.
    w.fake.route(
        "POST",
        ROTATE,
        vec![Reply::json(503, json!({"message": "down"})).delayed(Duration::from_secs(8))],
    );
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    assert!(wait_until(Duration::from_secs(10), || w.rotate_hits() == 1));
    w.sb.kill_daemon(nix::sys::signal::Signal::SIGKILL);
    // The host comes back, rotating as GitLab does.
    let (gl, git) = (w.gl.clone(), w.git.clone());
    w.fake.route_fn("POST", ROTATE, move |req| {
        let mut gl = gl.lock().unwrap();
        let secret = bearer(req);
        *gl.rotations.entry(secret.clone()).or_default() += 1;
        let Some(i) = gl.find(&secret).filter(|&i| gl.tokens[i].active) else {
            return unauthorized();
        };
        let new = "glpat-rotatedAfterTheRestartQ7".to_string();
        gl.tokens[i].active = false;
        gl.tokens.push(Tok {
            secret: new.clone(),
            expires_at: req.json()["expires_at"].as_str().unwrap().to_string(),
            active: true,
            successor: None,
        });
        sync_accounts(&gl, &git);
        Reply::json(200, json!({"token": new, "expires_at": gl.tokens.last().unwrap().expires_at, "scopes": ["api"]}))
    });
    // Restarted with the real clock (outside the window): the old token still works at
    // the host, so the mark is cleared; nothing is due, so nothing rotates.
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    w.wait_rotation_state("scheduled");
    assert!(
        w.fake.hits("GET", SELF) >= 2,
        "the host was asked about the old token"
    );
    assert_eq!(
        w.rotations_of(ORIGINAL),
        0,
        "the restarted daemon rotated nothing yet"
    );
    // In the window again: one rotation, then the new token serves.
    w.enter_window();
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    assert!(wait_until(Duration::from_secs(10), || w
        .rotations_of(ORIGINAL)
        == 1));
    w.wait_rotation_state("scheduled");
    assert_eq!(
        served(&w.fill()).as_deref(),
        Some("glpat-rotatedAfterTheRestartQ7")
    );
    assert_eq!(w.rotations_of(ORIGINAL), 1);
    w.assert_no_secret();
}

#[test]
fn gitlab_rotation_refused_with_403_backs_off_and_keeps_serving() {
    let w = world();
    w.gl.lock().unwrap().fail = Some(403);
    w.enter_window();
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    let rt = w.wait_rotation_state("failed");
    assert_eq!(w.rotate_hits(), 1);
    let r = &rt["rotation"];
    assert_eq!(r["failures"], 1, "{rt:#}");
    assert_contains(
        r["error"].as_str().unwrap(),
        "self_rotate",
        "the missing scope",
    );
    let now = w.sb.advance_clock(0);
    let retry = r["retry_at"].as_u64().unwrap();
    assert!(retry > now && retry <= now + 60, "{retry} vs {now}");
    assert_contains(&w.ok(&["status"]), "last rotation failed", "status text");
    // A failed rotation becomes the normal expiry warning; the token serves.
    let out = w.fill();
    assert_eq!(served(&out).as_deref(), Some(ORIGINAL));
    assert_contains(&stderr(&out), "expires on", "the expiry warning");
    assert_contains(&stderr(&out), "helperctl renew gl", "what to do");

    // Within the back-off: served with the old token, a real push goes through, the host
    // is not asked again.
    let work = w.sb.dir.path().join("work");
    assert_ok(&w.git_in(
        w.sb.dir.path(),
        &["clone", "-q", &w.git.url("/acme/app.git"), "work"],
    ));
    std::fs::write(work.join("b.txt"), "b").unwrap();
    assert_ok(&w.git_in(&work, &["add", "b.txt"]));
    assert_ok(&w.git_in(&work, &["commit", "-q", "-m", "b"]));
    assert_ok(&w.git_in(&work, &["push", "-q", "origin", "main"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.rotate_hits(), 1, "no retry within the back-off");

    // After the back-off: tried again, and the next wait is longer.
    w.sb.advance_clock_past(retry);
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    assert!(wait_until(Duration::from_secs(10), || w.rotate_hits() == 2));
    let mut rt = Value::Null;
    assert!(wait_until(Duration::from_secs(10), || {
        rt = w.runtime_status();
        rt["rotation"]["failures"] == 2
    }));
    let retry2 = rt["rotation"]["retry_at"].as_u64().unwrap();
    let now = w.sb.advance_clock(0);
    assert!(
        retry2 > now + 60 && retry2 <= now + 120,
        "{retry2} vs {now}"
    );

    // The scope is fixed at the host: the next attempt rotates.
    w.gl.lock().unwrap().fail = None;
    w.sb.advance_clock_past(retry2);
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    w.wait_rotation_state("scheduled");
    let new = w.active();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], ORIGINAL);
    assert_eq!(served(&w.fill()).as_deref(), Some(new[0].as_str()));
    assert_eq!(w.rotations_of(ORIGINAL), 3);
    w.assert_no_secret();
}

/// A project or group access token (`--rotate-via VIA`) rotates through its own
/// endpoint, never the personal one; `runtime list --json` and status say which.
fn rotates_through(via: &str, endpoint: &'static str) {
    let w = world_with(&["--rotate-days", "7", "--rotate-via", via], endpoint, None);
    let config = std::fs::read_to_string(config_path(&w.sb)).unwrap();
    assert_contains(&config, &format!("rotate_via = \"{via}\""), "config.toml");
    let list: Value = serde_json::from_str(&w.ok(&["runtime", "list", "--json"])).unwrap();
    assert_eq!(list[0]["rotate_days"], 7, "{list:#}");
    assert_eq!(list[0]["rotate_via"], via, "{list:#}");
    assert_eq!(w.runtime_status()["rotation"]["via"], via);
    w.enter_window();
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    w.wait_rotation_state("scheduled");
    assert_eq!(w.rotate_hits(), 1);
    assert_eq!(w.fake.hits("POST", ROTATE), 0, "not the personal endpoint");
    let new = w.active();
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], ORIGINAL);
    assert_eq!(served(&w.fill()).as_deref(), Some(new[0].as_str()));
    w.assert_no_secret();
}

#[test]
fn gitlab_project_access_token_rotates_through_the_projects_endpoint() {
    rotates_through("project:acme/app", PROJECT_ROTATE);
}

#[test]
fn gitlab_group_access_token_rotates_through_the_groups_endpoint() {
    rotates_through("group:acme/platform", GROUP_ROTATE);
}

#[test]
fn gitlab_policy_rotate_days_turns_rotation_on_and_max_days_sets_the_new_expiry() {
    let w = world_with(&[], ROTATE, Some("rotate_days = 10\nmax_days = 40\n"));
    let rt = w.runtime_status();
    assert_eq!(rt["rotation"]["days"], 10, "the policy's floor: {rt:#}");
    let expires = rt["token"]["expires"].as_u64().unwrap();
    let due = rt["rotation"]["due_at"].as_u64().unwrap();
    assert_eq!(due, expires - 10 * DAY);
    w.sb.advance_clock_past(due);
    let now = w.sb.advance_clock(0);
    assert_eq!(served(&w.fill()).as_deref(), Some(ORIGINAL));
    let rt = w.wait_rotation_state("scheduled");
    assert_eq!(w.rotate_hits(), 1);
    // The policy's max_days from the rotation, as a date: never beyond what it allows.
    let new_expiry = rt["token"]["expires"].as_u64().unwrap();
    assert_eq!(new_expiry % DAY, 0);
    assert!(
        new_expiry <= now + 40 * DAY + 5 && new_expiry > now + 39 * DAY - 5,
        "{new_expiry} vs {now}"
    );
    assert!(rt["token"]["policy_violation"].is_null(), "{rt:#}");
    w.assert_no_secret();
}

/// `renew --rotate` moves every runtime that shares the token to the new one, as the
/// rotator does: the host revoked the old token for all of them.
#[test]
fn renew_rotate_moves_every_runtime_that_shares_the_token() {
    let w = world();
    w.add_runtime("gl2", "/other/", &[]);
    w.ok(&["token", "link", "gl2", "--from", "gl"]);
    let said = w.ok(&["renew", "gl", "--rotate"]);
    assert_contains(&said, "rotated", "renew --rotate");
    let active = w.active();
    assert_eq!(active.len(), 1, "one token is active at the host");
    assert_ne!(active[0], ORIGINAL, "the old token is revoked");
    for repo in ["/acme/app.git", "/other/lib.git"] {
        let mut c = w.sb.git();
        c.args(["-c", "credential.useHttpPath=true", "credential", "fill"]);
        let out = run_with_stdin(c, format!("url={}\n", w.git.url(repo)).as_bytes());
        w.seen.lock().unwrap().push(stderr(&out));
        assert_eq!(
            value(&stdout(&out), "password").as_deref(),
            Some(active[0].as_str()),
            "{repo} is served the new token\n{}",
            stderr(&out)
        );
    }
    w.assert_no_secret();
}
