//! Team runtimes (DESIGN.md §10): what one KV v2 entry under `team_path` means, and how
//! the team's runtimes join the local ones. Pure: the entries arrive as JSON already read
//! from OpenBao (`openbao/` is the edge that reads them), and nothing here does I/O.
//!
//! A team runtime becomes an ordinary [`RuntimeConfig`] (marked with its [`TeamOrigin`])
//! and an ordinary [`TokenMeta`] whose id starts with [`TOKEN_ID_PREFIX`], so that the one
//! decision (`decision.rs`) applies to it every rule it applies to local runtimes. Its
//! secret never touches `tokens.json` or the store: the daemon keeps it in memory.

pub mod app;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::{valid_name, AuthScheme, Config, RuntimeConfig, TeamOrigin};
use crate::location::UrlPrefix;
use crate::provider::Provider;
use crate::secret::Secret;
use crate::timefmt::parse_expiry;
use crate::token::{TokenBook, TokenMeta, TEAM_APP_KEY_KIND};

/// Token ids of team tokens start with this; the rest is `<name>@<version>.<created>`, so
/// that a new version is a new token (a rejection mark does not outlive a rotation).
pub const TOKEN_ID_PREFIX: &str = "openbao:";

/// Whether a token id names a team token (whose secret is in memory, not in the store).
pub fn is_team_token(id: &str) -> bool {
    id.starts_with(TOKEN_ID_PREFIX)
}

/// The fields a token entry may have.
const TOKEN_ENTRY_FIELDS: [&str; 10] = [
    "provider",
    "urls",
    "token",
    "username",
    "expires",
    "scopes",
    "token_name",
    "auth",
    "email",
    "api_url",
];

/// The fields an entry may have; anything else is refused, so a typo is not ignored.
/// A token entry's, then [`app::APP_FIELDS`], which make it a GitHub App entry instead
/// (and refuse the token's own, see [`app`]).
pub const ENTRY_FIELDS: [&str; 15] = {
    let mut all = [""; 15];
    let mut i = 0;
    while i < all.len() {
        all[i] = if i < TOKEN_ENTRY_FIELDS.len() {
            TOKEN_ENTRY_FIELDS[i]
        } else {
            app::APP_FIELDS[i - TOKEN_ENTRY_FIELDS.len()]
        };
        i += 1;
    }
    all
};

/// One team runtime as read: its runtime, its token's metadata, and the secret (the
/// token, or for a GitHub App entry the app's private key in PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRuntime {
    /// Routing and provider facts, marked with where it came from.
    pub runtime: RuntimeConfig,
    /// Expiry, scopes and name of its token; the id is `openbao:<name>@<version>.<created>`.
    pub token: TokenMeta,
    /// The token itself: kept in memory only.
    pub secret: Secret,
}

/// What the KV version 2 metadata says of the version that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryVersion {
    /// KV version 2 `metadata.version`.
    pub version: u64,
    /// `metadata.created_time`, Unix seconds: when it was published.
    pub created: u64,
}

/// Reads one entry. `name` is its key under `team_path`; `path` is `<mount>/<team_path>/<name>`
/// for messages. The error never contains the token.
pub fn parse_entry(
    name: &str,
    path: &str,
    data: &Map<String, Value>,
    at: EntryVersion,
) -> Result<TeamRuntime, String> {
    if !valid_name(name) {
        return Err(format!(
            "the entry name {name:?} is not a runtime name (1 to 64 ASCII letters, digits, '.', '_' or '-')"
        ));
    }
    if let Some(field) = data.keys().find(|k| !ENTRY_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {field:?}; known fields: {}",
            ENTRY_FIELDS.join(", ")
        ));
    }
    let provider_name = text(data, "provider")?.ok_or("the field provider is missing")?;
    let provider = Provider::parse(&provider_name)
        .ok_or_else(|| format!("unknown provider {provider_name:?}"))?;
    let urls = urls(data)?;
    let auth = match text(data, "auth")?.as_deref() {
        None => AuthScheme::default(),
        Some(a) => AuthScheme::parse(a)
            .ok_or_else(|| format!("auth must be \"basic\" or \"bearer\", not {a:?}"))?,
    };
    let username = text(data, "username")?;
    let (app, secret) = if app::is_app_entry(data) {
        let (app, key) = app::parse_app(data, provider, &urls, username.as_deref(), auth)?;
        (Some(app), key)
    } else {
        let token = text(data, "token")?.ok_or("the field token is missing")?;
        (None, Secret::new(token))
    };
    let api_url = match text(data, "api_url")? {
        None => None,
        Some(u) => Some(crate::config::parse_api_url(&u)?),
    };
    let expires = match text(data, "expires")? {
        None => None,
        Some(e) => Some(parse_expiry(&e).map_err(|why| format!("expires: {why}"))?),
    };
    let runtime = RuntimeConfig {
        name: name.to_string(),
        provider,
        urls,
        username,
        api_url,
        auth,
        oauth_client_id: None,
        forward: false,
        email: text(data, "email")?,
        line: 0,
        team: Some(TeamOrigin {
            path: path.to_string(),
            version: at.version,
        }),
        app,
        rotate_days: None,
        rotate_via: Default::default(),
    };
    let mut hosts: Vec<String> = runtime.urls.iter().map(UrlPrefix::base_url).collect();
    hosts.sort();
    hosts.dedup();
    let token_meta = TokenMeta {
        // The version's creation time too: a revoked entry published again starts at
        // version 1, and must not inherit the old version 1's rejection mark.
        id: format!("{TOKEN_ID_PREFIX}{name}@{}.{}", at.version, at.created),
        // Status and the audit log name a team token by its KV path and version
        // (DESIGN.md §10); the admin's own name for it is kept as a note.
        name: Some(format!("{path} v{}", at.version)),
        scopes: list(data, "scopes")?,
        created: at.created,
        expires,
        last_used: None,
        rejected_at: None,
        runtimes: vec![name.to_string()],
        hosts: BTreeMap::from([(name.to_string(), hosts)]),
        warned_on: BTreeMap::new(),
        checked_at: None,
        kind: Some(
            match runtime.app {
                Some(_) => TEAM_APP_KEY_KIND,
                None => "team token (OpenBao)",
            }
            .into(),
        ),
        login: None,
        notes: text(data, "token_name")?
            .map(|n| vec![format!("token name: {n}")])
            .unwrap_or_default(),
        oauth_client_id: None,
        refresh_expires_at: None,
        replaced_at: None,
        app_installation: None,
        app_slug: None,
        rotation_started: None,
    };
    Ok(TeamRuntime {
        runtime,
        token: token_meta,
        secret,
    })
}

/// A string field: present, not empty, no control characters (it may reach git).
fn text(data: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("the field {key} is empty")),
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(format!("the field {key} contains a control character"))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(format!(
            "the field {key} must be a string, not {}",
            type_name(other)
        )),
    }
}

/// A list of strings, or one string with commas (what `bao kv put k=a,b` writes).
fn list(data: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = match data.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(format!(
                    "the field {key} must hold strings, not {}",
                    type_name(other)
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "the field {key} must be a list of strings, not {}",
                type_name(other)
            ))
        }
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

fn urls(data: &Map<String, Value>) -> Result<Vec<UrlPrefix>, String> {
    let texts = list(data, "urls")?;
    if texts.is_empty() {
        return Err("the field urls is missing or empty".into());
    }
    texts
        .iter()
        .map(|t| {
            let shown = helperd_wire::url::redact_password(t);
            match UrlPrefix::parse(t) {
                Ok(p) if matches!(p.scheme.as_str(), "https" | "http") => Ok(p),
                Ok(p) => Err(format!(
                    "url {shown:?}: the scheme must be https or http, not {:?}",
                    p.scheme
                )),
                Err(why) => Err(format!("url {shown:?} is malformed: {why}")),
            }
        })
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// KV version 2's `created_time` (`2026-11-29T10:00:00.123456789Z`), Unix seconds.
pub fn parse_created_time(text: &str) -> Option<u64> {
    // The fraction of a second is dropped: expiries are whole seconds.
    let whole = match text.split_once('.') {
        Some((head, tail)) => {
            let zone = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}{zone}")
        }
        None => text.to_string(),
    };
    parse_expiry(&whole).ok()
}

/// What this machine noted about team tokens, kept in memory beside the snapshot (team
/// tokens have no record in `tokens.json`). Keyed by token id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalMarks {
    /// Tokens git reported as refused by the host, with when (Unix seconds).
    pub rejected: BTreeMap<String, u64>,
    /// The day (Unix days) the expiry warning was last shown, per token: at most once a
    /// day, as for local tokens.
    pub warned_on: BTreeMap<String, u64>,
}

impl LocalMarks {
    /// The marks of the tokens `live` keeps (those still read from OpenBao).
    pub fn only_for(&self, live: impl Fn(&str) -> bool) -> LocalMarks {
        let keep = |m: &BTreeMap<String, u64>| {
            m.iter()
                .filter(|(id, _)| live(id))
                .map(|(id, v)| (id.clone(), *v))
                .collect()
        };
        LocalMarks {
            rejected: keep(&self.rejected),
            warned_on: keep(&self.warned_on),
        }
    }
}

/// The local configuration and token book with the team's runtimes added, each team token
/// with this machine's [`LocalMarks`]; and the team runtimes left out, with why.
///
/// A team runtime named like a local one is added all the same: [`Config::name_conflict`]
/// then refuses both, rather than one silently winning. One whose URL prefix another
/// runtime already has is left out (two runtimes on one prefix would be a silent tie;
/// `config.toml` refuses it too): `status` lists it.
pub fn overlay(
    config: &Config,
    book: &TokenBook,
    team: &[TeamRuntime],
    marks: &LocalMarks,
) -> (Config, TokenBook, Vec<(String, String)>) {
    let mut config = config.clone();
    let mut book = book.clone();
    let mut left_out = Vec::new();
    for entry in team {
        // A name clash is reported as such (both refused), whatever the prefixes.
        let same_name = config.runtime(&entry.runtime.name).is_some();
        let taken = entry
            .runtime
            .urls
            .iter()
            .filter(|_| !same_name)
            .find_map(|prefix| {
                config
                    .runtimes
                    .iter()
                    .find(|other| other.urls.contains(prefix))
                    .map(|other| (prefix, other))
            });
        if let Some((prefix, other)) = taken {
            let path = entry
                .runtime
                .team
                .as_ref()
                .map(|t| t.path.clone())
                .unwrap_or_default();
            left_out.push((
                path,
                format!(
                    "its URL prefix {prefix} is already runtime {}'s; not served",
                    other.name
                ),
            ));
            continue;
        }
        config.runtimes.push(entry.runtime.clone());
        let mut token = entry.token.clone();
        token.rejected_at = marks.rejected.get(&token.id).copied();
        if let Some(day) = marks.warned_on.get(&token.id) {
            token.warned_on.insert(entry.runtime.name.clone(), *day);
        }
        book.tokens.push(token);
    }
    (config, book, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AT: EntryVersion = EntryVersion {
        version: 3,
        created: 1_800_000_000,
    };

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_unknown_field_is_refused_naming_the_known_ones() {
        let e = parse_entry(
            "ci",
            "p",
            &data(json!({"provider": "gitlab", "urls": "https://gitlab.corp/ci/", "tokn": "x"})),
            AT,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "unknown field \"tokn\"; known fields: provider, urls, token, username, expires, \
             scopes, token_name, auth, email, api_url, app_id, installation_id, client_id, \
             private_key, permissions"
        );
    }

    #[test]
    fn an_entry_becomes_a_runtime_and_a_token() {
        let e = parse_entry(
            "ci",
            "secret/helperd/runtimes/ci",
            &data(json!({"provider": "gitlab", "urls": "https://gitlab.corp/ci/, https://gitlab.corp/ops/",
                "token": "glpat-s3cret", "expires": "2027-01-31", "scopes": ["read_repository", "write_repository"],
                "username": "ci-bot"})),
            AT,
        )
        .unwrap();
        assert_eq!(e.runtime.provider, Provider::GitLab);
        assert_eq!(e.runtime.urls.len(), 2);
        assert_eq!(e.runtime.username.as_deref(), Some("ci-bot"));
        assert_eq!(
            e.runtime.team,
            Some(TeamOrigin {
                path: "secret/helperd/runtimes/ci".into(),
                version: 3
            })
        );
        assert_eq!(e.token.id, "openbao:ci@3.1800000000");
        assert!(is_team_token(&e.token.id));
        assert_eq!(e.token.expires, Some(parse_expiry("2027-01-31").unwrap()));
        assert_eq!(e.token.scopes, ["read_repository", "write_repository"]);
        assert_eq!(
            e.token.name.as_deref(),
            Some("secret/helperd/runtimes/ci v3")
        );
        assert_eq!(e.token.hosts["ci"], ["https://gitlab.corp"]);
        assert_eq!(e.secret.expose(), "glpat-s3cret");
    }

    #[test]
    fn bad_entries_say_why_and_never_quote_the_token() {
        let good = json!({"provider": "github", "urls": ["https://github.com/acme/"], "token": "ghp_SECRET"});
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "ci",
                json!({"urls": ["https://github.com/"], "token": "ghp_SECRET"}),
                "provider is missing",
            ),
            (
                "ci",
                json!({"provider": "gitbucket", "urls": ["https://x/"], "token": "ghp_SECRET"}),
                "unknown provider",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": [], "token": "ghp_SECRET"}),
                "urls is missing or empty",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["ssh://x/"], "token": "ghp_SECRET"}),
                "scheme must be https",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["https://x/"]}),
                "token is missing",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["https://x/"], "token": "ghp_SECRET\n"}),
                "control character",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["https://x/"], "token": "ghp_SECRET", "expires": "soon"}),
                "expires:",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["https://x/"], "token": "ghp_SECRET", "tokn": 1}),
                "unknown field \"tokn\"",
            ),
            (
                "ci",
                json!({"provider": "github", "urls": ["https://x/"], "token": 7}),
                "token must be a string",
            ),
            ("c i", good.clone(), "not a runtime name"),
        ];
        for (name, v, want) in cases {
            let e = parse_entry(name, "secret/t/ci", &data(v.clone()), AT).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
            assert!(!e.contains("SECRET"), "{v}: {e}");
        }
        assert!(parse_entry("ci", "p", &data(good), AT).is_ok());
    }

    #[test]
    fn created_time_keeps_whole_seconds() {
        assert_eq!(
            parse_created_time("2027-01-01T00:00:05.123456789Z"),
            Some(parse_expiry("2027-01-01T00:00:05Z").unwrap())
        );
        assert_eq!(
            parse_created_time("2027-01-01T00:00:05Z"),
            Some(parse_expiry("2027-01-01T00:00:05Z").unwrap())
        );
        assert_eq!(parse_created_time("yesterday"), None);
    }

    #[test]
    fn overlay_adds_team_runtimes_and_keeps_a_name_clash_visible() {
        let local = Config::parse(
            "[[runtime]]\nname = \"ci\"\nprovider = \"github\"\nurls = [\"https://github.com/acme/\"]\n",
            std::path::Path::new("config.toml"),
        )
        .unwrap();
        let team = parse_entry(
            "ci",
            "secret/t/ci",
            &data(
                json!({"provider": "github", "urls": ["https://github.com/team/"], "token": "t"}),
            ),
            AT,
        )
        .unwrap();
        let other = parse_entry(
            "ops",
            "secret/t/ops",
            &data(json!({"provider": "github", "urls": ["https://github.com/ops/"], "token": "t"})),
            AT,
        )
        .unwrap();
        let same_prefix = parse_entry(
            "ci2",
            "secret/t/ci2",
            &data(
                json!({"provider": "github", "urls": ["https://github.com/acme/"], "token": "t"}),
            ),
            AT,
        )
        .unwrap();
        let marks = LocalMarks {
            rejected: BTreeMap::from([("openbao:ops@3.1800000000".to_string(), 5)]),
            warned_on: BTreeMap::from([("openbao:ci@3.1800000000".to_string(), 20_000)]),
        };
        let (config, book, left_out) = overlay(
            &local,
            &TokenBook::default(),
            &[team, other, same_prefix],
            &marks,
        );
        assert_eq!(config.runtimes.len(), 3, "ci2 left out");
        assert_eq!(left_out.len(), 1);
        assert!(
            left_out[0]
                .1
                .contains("https://github.com/acme/ is already runtime ci's"),
            "{left_out:?}"
        );
        assert!(config.name_conflict("ci").is_some());
        assert!(config.name_conflict("ops").is_none());
        assert_eq!(book.for_runtime("ops").unwrap().rejected_at, Some(5));
        assert_eq!(book.for_runtime("ci").unwrap().rejected_at, None);
        let team_ci = book
            .tokens
            .iter()
            .find(|t| t.id == "openbao:ci@3.1800000000")
            .unwrap();
        assert_eq!(team_ci.warned_on["ci"], 20_000);
    }
}
