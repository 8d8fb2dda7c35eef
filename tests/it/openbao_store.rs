//! OpenBao as the store of record for the user's own secrets (`HELPERD_STORE=openbao`,
//! DESIGN.md §10): plain credentials and `helperctl token set` tokens round trip through a
//! real OpenBao under `user_path`, nothing reaches the local folders, the choice is
//! remembered, and an OpenBao that is down (or not configured) is a clear error with no
//! fall-back to another store.

use std::process::Output;
use std::time::Duration;

use crate::bao::{BaoDev, ROOT_TOKEN};
use crate::bao_cluster::BaoCluster;
use crate::util::{
    assert_ok, config_path, files_under, run_with_stdin, served, status_json, stderr, stdout,
    Sandbox,
};

const HOST: &str = "bao-plain.example.com";
const USER: &str = "carol";
/// Distinctive, so that any copy of it in a file or a log is found.
const PASSWORD: &str = "bao-Pa55word-5eaf00d";
const OTHER_PASSWORD: &str = "bao-Pa55word-0ther-77";
const TOKEN_HOST: &str = "bao-tok.example.com";
const TOKEN: &str = "bao-tok-Zq81xW-secret";

fn login_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("the test user has a passwd entry")
        .name
}

/// The user's folder in OpenBao, as `bao kv` names it.
fn user_folder() -> String {
    format!("secret/helperd/users/{}", login_name())
}

/// A sandbox with `HELPERD_STORE=openbao`, `[openbao]` naming `addr`, and `token` in
/// BAO_TOKEN; the daemon is not started yet.
fn bao_sandbox(addr: &str, token: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_store("openbao");
    sb.env.push(("BAO_TOKEN".into(), token.into()));
    let path = config_path(&sb);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("[openbao]\naddresses = [{addr:?}]\n")).unwrap();
    sb
}

fn credential(password: &str) -> String {
    format!("protocol=https\nhost={HOST}\nusername={USER}\npassword={password}\n\n")
}

fn fill(sb: &Sandbox, host: &str) -> Output {
    sb.credential("fill", &format!("protocol=https\nhost={host}\n\n"))
}

#[track_caller]
fn assert_plain_served(sb: &Sandbox, password: &str) {
    let out = fill(sb, HOST);
    assert_eq!(
        served(&out).as_deref(),
        Some(password),
        "fill did not serve the stored password\nstderr: {}\nlog:\n{}",
        stderr(&out),
        sb.log()
    );
}

#[track_caller]
fn assert_token_served(sb: &Sandbox) {
    let out = fill(sb, TOKEN_HOST);
    assert_eq!(
        served(&out).as_deref(),
        Some(TOKEN),
        "fill did not serve the token\nstderr: {}\nlog:\n{}",
        stderr(&out),
        sb.log()
    );
}

fn set_token(sb: &Sandbox) {
    crate::util::generic_runtime_with_token(sb, "work", TOKEN_HOST, "tok-user", TOKEN);
}

/// The one line the client printed for git (`helperd: ...`).
#[track_caller]
fn helperd_line(out: &Output) -> String {
    let err = stderr(out);
    err.lines()
        .find(|l| l.starts_with("helperd: "))
        .unwrap_or_else(|| panic!("no helperd line on stderr:\n{err}"))
        .to_string()
}

fn remembered_kind(sb: &Sandbox) -> Option<String> {
    let text = std::fs::read_to_string(sb.helperd_home().join("state/store.json")).ok()?;
    let choice: serde_json::Value = serde_json::from_str(&text).ok()?;
    choice["kind"].as_str().map(str::to_string)
}

/// Every file of the daemon's (config, state with the trace-level log, data), for the
/// no-secret search.
#[track_caller]
fn assert_no_secret_on_this_machine(sb: &Sandbox, secrets: &[&str]) {
    for f in files_under(&sb.helperd_home()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds {secret}",
                f.display()
            );
        }
    }
    assert!(
        !sb.helperd_home().join("data/secrets.enc").exists(),
        "the encrypted file store was written although OpenBao is the store"
    );
}

#[test]
fn openbao_keeps_plain_credentials_and_tokens_under_user_path_and_is_remembered() {
    let bao = BaoDev::start();
    let sb = bao_sandbox(&bao.addr, ROOT_TOKEN);

    // git's approve, then fill.
    let out = sb.credential("approve", &credential(PASSWORD));
    assert_ok(&out);
    assert!(stderr(&out).is_empty(), "approve: {}", stderr(&out));
    assert_plain_served(&sb, PASSWORD);
    // A token set with helperctl, served to git.
    set_token(&sb);
    assert_token_served(&sb);
    assert_eq!(remembered_kind(&sb).as_deref(), Some("openbao"));

    // In OpenBao, one entry per key under user_path (read with the bao CLI).
    let folder = user_folder();
    let plain = bao.ok(&[
        "kv",
        "get",
        "-field=value",
        &format!("{folder}/plain-credentials"),
    ]);
    assert!(plain.contains(PASSWORD), "plain-credentials: {plain}");
    let ids = bao.ok(&["kv", "list", "-format=json", &format!("{folder}/token")]);
    let ids: Vec<String> = serde_json::from_str(&ids).unwrap();
    let id = ids
        .iter()
        .find(|i| !i.ends_with('/'))
        .unwrap_or_else(|| panic!("no token entry under {folder}/token: {ids:?}"));
    let token = bao.ok(&["kv", "get", "-field=value", &format!("{folder}/token/{id}")]);
    assert_eq!(token.trim(), TOKEN);

    // status: the kind, and where (never a secret).
    let status = status_json(&sb);
    let store = &status["daemon"]["store"];
    assert_eq!(store["kind"], "openbao", "{store:#}");
    assert_eq!(store["state"], "ok", "{store:#}");
    assert_eq!(store["location"], folder, "{store:#}");
    assert_eq!(store["plain_credentials"], 1, "{store:#}");
    let human = crate::util::ctl_ok(&sb, &["status"]);
    assert!(human.contains("openbao (in OpenBao"), "{human}");
    assert!(human.contains(&folder), "{human}");
    for text in [status.to_string(), human] {
        for secret in [PASSWORD, TOKEN, ROOT_TOKEN] {
            assert!(!text.contains(secret), "status shows {secret}:\n{text}");
        }
    }

    // A new daemon without HELPERD_STORE: the remembered OpenBao serves the same secrets.
    std::fs::remove_file(sb.dir.path().join("store-kind")).unwrap();
    crate::util::ctl_ok(&sb, &["daemon", "restart"]);
    assert_plain_served(&sb, PASSWORD);
    assert_token_served(&sb);
    assert_eq!(status_json(&sb)["daemon"]["store"]["kind"], "openbao");

    // Replaced, the old password is gone from OpenBao, history included.
    assert_ok(&sb.credential("approve", &credential(OTHER_PASSWORD)));
    assert_plain_served(&sb, OTHER_PASSWORD);
    let metadata = bao.ok(&[
        "kv",
        "metadata",
        "get",
        "-format=json",
        &format!("{folder}/plain-credentials"),
    ]);
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["data"]["max_versions"], 1, "{metadata:#}");
    let old = bao.cmd(&[
        "kv",
        "get",
        "-version=1",
        "-field=value",
        &format!("{folder}/plain-credentials"),
    ]);
    assert!(!stdout(&old).contains(PASSWORD), "version 1 is kept");

    // A removed token's entry is deleted.
    crate::util::ctl_ok(&sb, &["token", "remove", "work"]);
    let gone = bao.cmd(&["kv", "get", &format!("{folder}/token/{id}")]);
    assert!(!gone.status.success(), "the token's entry is still there");

    assert_no_secret_on_this_machine(&sb, &[PASSWORD, OTHER_PASSWORD, TOKEN, ROOT_TOKEN]);
}

#[test]
fn openbao_down_is_a_clear_error_never_a_fall_back_and_nothing_is_lost() {
    // One Raft node: unlike a dev server, it keeps its data when killed and restarted.
    let mut bao = BaoCluster::start_with(1);
    let sb = bao_sandbox(&bao.addr(0), &bao.root_token.clone());
    assert_ok(&sb.credential("approve", &credential(PASSWORD)));
    set_token(&sb);
    assert_plain_served(&sb, PASSWORD);
    assert_token_served(&sb);

    bao.kill(0);
    let port = bao.addr(0).rsplit(':').next().unwrap().to_string();
    // git stores another credential: refused, naming OpenBao and the address tried.
    let out = sb.credential("approve", &credential(OTHER_PASSWORD));
    let line = helperd_line(&out);
    assert!(line.contains("OpenBao is unreachable"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    // A plain credential is not served: the store is read again and does not answer.
    crate::util::ctl_ok(&sb, &["daemon", "restart"]);
    let out = fill(&sb, HOST);
    assert_eq!(served(&out), None, "served while OpenBao is down");
    let line = helperd_line(&out);
    assert!(
        line.contains("openbao store is unavailable") && line.contains("OpenBao is unreachable"),
        "{line}"
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    let store = status_json(&sb)["daemon"]["store"].clone();
    assert_eq!(store["kind"], "openbao", "{store:#}");
    assert_eq!(store["state"], "unavailable", "{store:#}");
    assert!(
        store["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("OpenBao is unreachable"),
        "{store:#}"
    );
    // Nothing went elsewhere meanwhile.
    assert_eq!(remembered_kind(&sb).as_deref(), Some("openbao"));
    assert_no_secret_on_this_machine(&sb, &[PASSWORD, OTHER_PASSWORD, TOKEN]);

    // Back: everything stored before is there; what was refused was not stored.
    bao.restart(0);
    bao.wait_for_leader(Duration::from_secs(30));
    assert_plain_served(&sb, PASSWORD);
    assert_token_served(&sb);
    assert_ok(&sb.credential("approve", &credential(OTHER_PASSWORD)));
    assert_plain_served(&sb, OTHER_PASSWORD);
    assert_eq!(status_json(&sb)["daemon"]["store"]["state"], "ok");
}

#[test]
fn the_openbao_store_without_an_openbao_table_is_a_clear_error() {
    let sb = Sandbox::new();
    sb.set_store("openbao");

    let out = sb.credential("approve", &credential(PASSWORD));
    let line = helperd_line(&out);
    assert!(
        line.contains("[openbao]") && line.contains("config.toml"),
        "the error names [openbao] and config.toml: {line}"
    );
    let out = fill(&sb, HOST);
    assert_eq!(served(&out), None);
    assert!(helperd_line(&out).contains("[openbao]"));

    let store = status_json(&sb)["daemon"]["store"].clone();
    assert_eq!(store["kind"], "openbao", "{store:#}");
    assert_eq!(store["state"], "unavailable", "{store:#}");
    let problem = store["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains(&config_path(&sb).display().to_string()),
        "names the config file: {problem}"
    );
    // No other store was chosen, opened or remembered.
    assert_eq!(remembered_kind(&sb), None);
    assert!(!sb.helperd_home().join("data/secrets.enc").exists());
    assert!(!sb.helperd_home().join("data/secrets.key").exists());
}

/// `bao token create` for a token with only `policy`; the token.
fn token_with_policy(bao: &BaoDev, name: &str, policy: &str) -> String {
    let out = bao.cmd_stdin(&["policy", "write", name, "-"], policy);
    assert_ok(&out);
    bao.ok(&[
        "token",
        "create",
        &format!("-policy={name}"),
        "-field=token",
    ])
    .trim()
    .to_string()
}

#[test]
fn the_documented_user_policy_is_enough_and_a_token_without_it_gets_a_clear_refusal() {
    let bao = BaoDev::start();
    let name = login_name();
    // Exactly what README and the error's hint ask for.
    let user = token_with_policy(
        &bao,
        "helperd-user",
        &format!(
            "path \"secret/data/helperd/users/{name}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n\
             path \"secret/metadata/helperd/users/{name}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n"
        ),
    );
    let sb = bao_sandbox(&bao.addr, &user);
    assert_ok(&sb.credential("approve", &credential(PASSWORD)));
    assert_plain_served(&sb, PASSWORD);
    set_token(&sb);
    assert_token_served(&sb);
    crate::util::ctl_ok(&sb, &["token", "remove", "work"]);

    // An admin's token for team runtimes only sees nothing of the user's secrets.
    let admin = token_with_policy(
        &bao,
        "helperd-admin",
        "path \"secret/data/helperd/runtimes/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\"] }\n",
    );
    let mut c = std::process::Command::new(crate::bao::bao_bin());
    c.args([
        "kv",
        "get",
        "-field=value",
        &format!("{}/plain-credentials", user_folder()),
    ])
    .env("BAO_ADDR", &bao.addr)
    .env("BAO_TOKEN", &admin);
    let out = run_with_stdin(c, b"");
    assert!(!out.status.success(), "the admin read the user's secrets");
    assert!(!stdout(&out).contains(PASSWORD));

    // helperd with that token: refused, saying what the policy must grant.
    let other = bao_sandbox(&bao.addr, &admin);
    let out = other.credential("approve", &credential(OTHER_PASSWORD));
    let line = helperd_line(&out);
    assert!(line.contains("HTTP 403"), "{line}");
    assert!(
        line.contains(&format!("secret/data/helperd/users/{name}/*")),
        "names the paths to grant: {line}"
    );
    assert!(!line.contains(&admin), "{line}");
}
