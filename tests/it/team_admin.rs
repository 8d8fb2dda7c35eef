//! The admin's and the runners' logins for team runtimes (DESIGN.md §10), against a real
//! `bao server -dev`: `helperctl team publish|list|revoke` under the admin policy of
//! `contrib/openbao/`, and runners logging in with a token file, AppRole or a JWT under
//! the runner policy, renewing their lease and logging in again when it cannot be renewed.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::bao::BaoDev;
use crate::git_server::{Account, GitServer};
use crate::team::{entry, fill, team_sandbox, TOKEN_V1};
use crate::team_common::{
    team_runtime, team_sandbox_with_token as team_sandbox_as, wait_for_version, TEAM, USER,
};
use crate::util::with_policy;
use crate::util::{ctl, run_with_stdin, status_json, stderr, stdout, wait_until, Sandbox};

const PUBLISHED: &str = "published-tok-Wv5nC";

/// Writes the policies of `contrib/openbao/` into `bao` and returns a token of `policy`.
fn token_with_policy(bao: &BaoDev, policy: &str) -> String {
    install_policies(bao);
    bao.ok(&[
        "token",
        "create",
        &format!("-policy=helperd-{policy}"),
        "-field=token",
    ])
    .trim()
    .to_string()
}

fn install_policies(bao: &BaoDev) {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/openbao");
    for name in ["runner", "admin"] {
        let file = contrib.join(format!("{name}.hcl"));
        bao.ok(&[
            "policy",
            "write",
            &format!("helperd-{name}"),
            &file.display().to_string(),
        ]);
    }
}

/// `helperctl team publish ARGS` with the token on stdin.
fn publish(sb: &Sandbox, args: &[&str], token: &str) -> std::process::Output {
    let mut c = sb.ctl();
    c.args(["team", "publish"]).args(args).arg("--from-stdin");
    run_with_stdin(c, format!("{token}\n").as_bytes())
}

#[test]
fn the_admin_publishes_under_the_policy_lists_and_revokes_and_runners_follow() {
    let bao = BaoDev::start();
    let admin_token = token_with_policy(&bao, "admin");
    let runner_token = token_with_policy(&bao, "runner");
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, PUBLISHED)]);
    let url = format!("{}/", server.base_url());
    let mut admin = team_sandbox_as(&admin_token, &[&bao.addr], "", "");
    with_policy(&mut admin, "require_expiry = true\nmax_days = 90\n");
    let define = [
        "ci",
        "--provider",
        "generic",
        "--url",
        &url,
        "--username",
        USER,
    ];

    // The policy refuses a token without an expiry, and one too far out; nothing is written.
    let out = publish(&admin, &define, PUBLISHED);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("requires every token to have an expiry"),
        "{}",
        stderr(&out)
    );
    let far = crate::util::unix_now() + 200 * 86_400;
    let far = format!("@{far}");
    let far_date = stdout(
        &std::process::Command::new("date")
            .args(["-u", "-d", &far, "+%Y-%m-%d"])
            .output()
            .unwrap(),
    );
    let out = publish(
        &admin,
        &[&define[..], &["--expires", far_date.trim()]].concat(),
        PUBLISHED,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("at most 90 days"), "{}", stderr(&out));
    assert!(
        !bao.cmd(&["kv", "get", &format!("secret/{TEAM}/ci")])
            .status
            .success(),
        "nothing was published"
    );
    assert!(!stderr(&out).contains(PUBLISHED) && !stdout(&out).contains(PUBLISHED));

    // Within the policy: published, and a runner (runner policy) serves it.
    let soon = crate::util::unix_now() + 30 * 86_400;
    let soon_date = stdout(
        &std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{soon}"), "+%Y-%m-%d"])
            .output()
            .unwrap(),
    );
    let out = publish(
        &admin,
        &[
            &define[..],
            &["--expires", soon_date.trim(), "--scope", "repo"],
        ]
        .concat(),
        PUBLISHED,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("published secret/{TEAM}/ci version 1")),
        "{}",
        stdout(&out)
    );
    let runner = team_sandbox_as(&runner_token, &[&bao.addr], "refresh_secs = 1", "");
    wait_for_version(&runner, "ci", 1);
    assert!(stdout(&fill(&runner, &server)).contains(PUBLISHED));

    // `team list`: the entry without its token.
    let list = ctl(&admin, &["team", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stdout(&list).contains("ci") && stdout(&list).contains(&url),
        "{}",
        stdout(&list)
    );
    let listed: Value =
        serde_json::from_str(&stdout(&ctl(&admin, &["team", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(listed[0]["scopes"], json!(["repo"]));
    assert!(!stdout(&list).contains(PUBLISHED) && !listed.to_string().contains(PUBLISHED));

    // The runner policy cannot write, the admin policy cannot read a user's own secrets.
    bao.put(
        "helperd/users/ana/plain-credentials",
        json!({"value": "user-secret"}),
    );
    let as_admin = std::process::Command::new(crate::bao::bao_bin())
        .args(["kv", "get", "secret/helperd/users/ana/plain-credentials"])
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &admin_token)
        .output()
        .unwrap();
    assert!(
        !as_admin.status.success(),
        "the admin policy does not reach user_path"
    );
    let mut runner_publish = runner.ctl();
    runner_publish.args(["team", "publish"]).args(define).args([
        "--from-stdin",
        "--expires",
        soon_date.trim(),
    ]);
    let out = run_with_stdin(runner_publish, b"x\n");
    assert!(!out.status.success(), "a runner cannot publish");
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));

    // Revoked: the entry is gone, and the runner stops serving it.
    let out = ctl(&admin, &["team", "revoke", "ci", "--at-host"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("could not be revoked at the host"),
        "generic has no API: {}",
        stdout(&out)
    );
    assert!(wait_until(Duration::from_secs(20), || team_runtime(
        &runner, "ci"
    )
    .is_none()));
    assert!(!stdout(&fill(&runner, &server)).contains(PUBLISHED));
    let out = ctl(&admin, &["team", "revoke", "ci"]);
    assert!(
        !out.status.success() && stderr(&out).contains("no team runtime ci"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn team_commands_without_openbao_say_what_to_write() {
    let sb = Sandbox::new();
    let out = ctl(&sb, &["team", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[openbao]") && stderr(&out).contains("team_path"),
        "{}",
        stderr(&out)
    );
}

/// Enables AppRole with a role under the runner policy; its `(role_id, secret_id)`.
fn approle(bao: &BaoDev, ttl: &str, max_ttl: &str) -> (String, String) {
    install_policies(bao);
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/ci",
        "token_policies=helperd-runner",
        &format!("token_ttl={ttl}"),
        &format!("token_max_ttl={max_ttl}"),
    ]);
    let role_id = bao.ok(&["read", "-field=role_id", "auth/approle/role/ci/role-id"]);
    let secret_id = bao.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/ci/secret-id",
    ]);
    (role_id.trim().to_string(), secret_id.trim().to_string())
}

#[test]
fn an_approle_runner_renews_its_lease_and_logs_in_again_when_it_cannot() {
    let bao = BaoDev::start();
    // A lease of 3 s renewable up to 8 s: renewed at 2 s, 4 s..., then a new login.
    let (role_id, secret_id) = approle(&bao, "3s", "8s");
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    let secret_file = repos.path().join("secret-id");
    std::fs::write(&secret_file, format!("{secret_id}\n")).unwrap();
    let extra = format!(
        "refresh_secs = 1\nauth = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"{}\"",
        secret_file.display()
    );
    let sb = team_sandbox_as("not-a-token", &[&bao.addr], &extra, "");
    wait_for_version(&sb, "ci", 1);
    let openbao = || status_json(&sb)["daemon"]["openbao"].clone();
    assert_eq!(openbao()["auth"], "approle");
    // OpenBao's leases run on its own clock: these waits are for its TTLs.
    assert!(
        wait_until(Duration::from_secs(15), || openbao()["renewals"].as_u64()
            >= Some(1)),
        "the lease was renewed: {}",
        openbao()
    );
    assert!(
        wait_until(Duration::from_secs(20), || openbao()["logins"].as_u64()
            >= Some(2)),
        "a new login once the lease could not be renewed further: {}",
        openbao()
    );
    assert!(openbao()["error"].is_null(), "{}", openbao());
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V1));
    let files = crate::team::daemon_files(&sb);
    assert!(
        !files.contains(&secret_id),
        "the secret id is not copied anywhere"
    );
}

#[test]
fn a_wrong_approle_secret_is_a_clear_error_without_the_secret() {
    let bao = BaoDev::start();
    let (role_id, _) = approle(&bao, "1h", "2h");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, "wrong-secret-id-Zq9\n").unwrap();
    let extra = format!(
        "refresh_secs = 1\nauth = \"approle\"\nrole_id = \"{role_id}\"\nsecret_id_file = \"{}\"",
        secret_file.display()
    );
    let sb = team_sandbox(&[&bao.addr], &extra, "");
    assert!(wait_until(Duration::from_secs(20), || status_json(&sb)
        ["daemon"]["openbao"]["error"]
        .is_string()));
    let error = status_json(&sb)["daemon"]["openbao"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("OpenBao login (approle) failed"), "{error}");
    assert!(!error.contains("wrong-secret-id-Zq9"), "{error}");
}

/// base64url without padding (JWT's encoding).
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    let url = b64url(bytes).replace('-', "+").replace('_', "/");
    let pad = (4 - url.len() % 4) % 4;
    url + &"=".repeat(pad)
}

#[test]
fn a_ci_job_logs_in_with_its_jwt() {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let bao = BaoDev::start();
    install_policies(&bao);
    // The CI system's signing key (ES256); OpenBao checks job tokens against its public key.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo of a P-256 key: a fixed header, then the point.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(key.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        b64(&spki)
    );
    let dir = tempfile::tempdir().unwrap();
    let pem_file = dir.path().join("ci.pem");
    std::fs::write(&pem_file, pem).unwrap();
    bao.ok(&["auth", "enable", "jwt"]);
    bao.ok(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", pem_file.display()),
    ]);
    bao.ok(&[
        "write",
        "auth/jwt/role/ci-runner",
        "role_type=jwt",
        "bound_audiences=helperd",
        "user_claim=sub",
        "token_policies=helperd-runner",
        "token_ttl=1h",
    ]);
    let now = crate::util::unix_now();
    let header = b64url(br#"{"alg":"ES256","typ":"JWT"}"#);
    let claims = b64url(
        json!({"sub": "job-42", "aud": "helperd", "iat": now, "nbf": now - 5, "exp": now + 600})
            .to_string()
            .as_bytes(),
    );
    let signed = format!("{header}.{claims}");
    let signature = key.sign(&rng, signed.as_bytes()).unwrap();
    let jwt = format!("{signed}.{}", b64url(signature.as_ref()));
    let jwt_file = dir.path().join("id_token");
    std::fs::write(&jwt_file, &jwt).unwrap();

    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    let extra = format!(
        "refresh_secs = 1\nauth = \"jwt\"\nrole = \"ci-runner\"\njwt_file = \"{}\"",
        jwt_file.display()
    );
    let sb = team_sandbox_as("not-a-token", &[&bao.addr], &extra, "");
    wait_for_version(&sb, "ci", 1);
    assert_eq!(status_json(&sb)["daemon"]["openbao"]["auth"], "jwt");
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V1));
    assert!(
        !crate::team::daemon_files(&sb).contains(&jwt),
        "the job token is not copied anywhere"
    );
}

#[test]
fn a_token_file_is_read_at_each_login() {
    let bao = BaoDev::start();
    let runner_token = token_with_policy(&bao, "runner");
    let repos = tempfile::tempdir().unwrap();
    let server = GitServer::start(repos.path(), vec![Account::new("", USER, TOKEN_V1)]);
    bao.put(&format!("{TEAM}/ci"), entry(&server, TOKEN_V1));
    let token_file = repos.path().join("bao-token");
    std::fs::write(&token_file, format!("{runner_token}\n")).unwrap();
    let extra = format!(
        "refresh_secs = 1\ntoken_file = \"{}\"",
        token_file.display()
    );
    let sb = team_sandbox_as("not-a-token", &[&bao.addr], &extra, "");
    wait_for_version(&sb, "ci", 1);
    assert!(stdout(&fill(&sb, &server)).contains(TOKEN_V1));
    assert!(!crate::team::daemon_files(&sb).contains(&runner_token));
}
