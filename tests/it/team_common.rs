//! What the team-runtime tests share (tests/it/team.rs against a dev server,
//! tests/it/raft.rs against a 3-node Raft cluster): the sandbox, the KV entry, and reading
//! a team runtime back from `status --json`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{config_path, status_json, wait_until, Sandbox};

/// Where the team runtimes live below the `secret/` mount.
pub const TEAM: &str = "helperd/runtimes";
/// The username every team entry names.
pub const USER: &str = "ci-bot";

/// A sandbox whose helperd reads team runtimes from `addresses` with `token` in BAO_TOKEN,
/// with `openbao_extra` added to `[openbao]` and `rest` after it; the daemon is started.
pub fn team_sandbox_with_token(
    token: &str,
    addresses: &[&str],
    openbao_extra: &str,
    rest: &str,
) -> Sandbox {
    team_sandbox_from(Sandbox::new(), token, addresses, openbao_extra, rest)
}

/// [`team_sandbox_with_token`] for a sandbox the caller prepared (its environment).
pub fn team_sandbox_from(
    mut sb: Sandbox,
    token: &str,
    addresses: &[&str],
    openbao_extra: &str,
    rest: &str,
) -> Sandbox {
    sb.env.push(("BAO_TOKEN".into(), token.into()));
    let addresses: Vec<String> = addresses.iter().map(|a| format!("{a:?}")).collect();
    let config = format!(
        "[openbao]\naddresses = [{}]\nteam_path = \"{TEAM}\"\n{openbao_extra}\n{rest}",
        addresses.join(", ")
    );
    let path = config_path(&sb);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, config).unwrap();
    crate::util::ctl_ok(&sb, &["daemon", "start"]);
    sb
}

/// A team entry serving every URL below `base_url` (no trailing slash) with `token`.
pub fn entry_for(base_url: &str, token: &str) -> Value {
    json!({
        "provider": "generic",
        "urls": [format!("{base_url}/")],
        "username": USER,
        "token": token,
        "expires": "2099-01-01",
        "scopes": ["repo"],
    })
}

/// The team runtime `name` as `status --json` shows it, when it is there.
pub fn team_runtime(sb: &Sandbox, name: &str) -> Option<Value> {
    status_json(sb)["daemon"]["runtimes"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name && r["team"].is_object())
        .cloned()
}

/// Waits (up to 20 s) until `status` shows version `version` of team runtime `name`.
#[track_caller]
pub fn wait_for_version(sb: &Sandbox, name: &str, version: u64) {
    let seen = wait_until(Duration::from_secs(20), || {
        team_runtime(sb, name).is_some_and(|r| r["team"]["version"] == version)
    });
    assert!(
        seen,
        "version {version} of {name} never showed: {:#}",
        status_json(sb)
    );
}

/// Waits (up to 20 s) until `status` reports OpenBao failing (after the test stopped it).
#[track_caller]
pub fn wait_for_openbao_error(sb: &Sandbox) {
    assert!(
        wait_until(Duration::from_secs(20), || status_json(sb)["daemon"]
            ["openbao"]["error"]
            .is_string()),
        "status reports the failing OpenBao: {:#}",
        status_json(sb)
    );
}
