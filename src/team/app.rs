//! Team entries that hold a GitHub App instead of a token (issue 18): `app_id`, optional
//! `installation_id` and `client_id`, `private_key` (PEM, PKCS#1 or PKCS#8) and optional
//! `permissions`. Every runner mints its own installation tokens with the key, as for a
//! local app runtime; the key itself stays in memory (it is the team token's secret).
//!
//! Pure: the key is kept as text here. Whether it is an RSA key is checked at the edges
//! that read or write entries (the daemon's team reader and `team publish`, through
//! `provider::check_team_key`), with the crypto of `provider::github`, which the core may
//! not import.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::{check_app_runtime, valid_permission, AuthScheme, GitHubApp};
use crate::location::UrlPrefix;
use crate::provider::Provider;
use crate::secret::Secret;

/// The fields that make an entry a GitHub App entry.
pub const APP_FIELDS: [&str; 5] = [
    "app_id",
    "installation_id",
    "client_id",
    "private_key",
    "permissions",
];

/// Fields of a token entry that mean nothing for an app entry: the key has no expiry
/// and the minted tokens' permissions are `permissions`. Refused rather than ignored.
const TOKEN_ONLY_FIELDS: [&str; 4] = ["token", "expires", "scopes", "token_name"];

/// Whether the entry holds an app (any of [`APP_FIELDS`]) rather than a token.
pub fn is_app_entry(data: &Map<String, Value>) -> bool {
    APP_FIELDS.iter().any(|f| data.contains_key(*f))
}

/// The app and its key, checked with the rules of a local app runtime. `Err`: why,
/// naming the field, never quoting the key.
pub fn parse_app(
    data: &Map<String, Value>,
    provider: Provider,
    urls: &[UrlPrefix],
    username: Option<&str>,
    auth: AuthScheme,
) -> Result<(GitHubApp, Secret), String> {
    if let Some(f) = TOKEN_ONLY_FIELDS.iter().find(|f| data.contains_key(**f)) {
        return Err(format!(
            "the field {f} does not go with app_id/private_key: a GitHub App entry's tokens are minted by each runner"
        ));
    }
    let app_id = id(data, "app_id")?.ok_or("the field app_id is missing (private_key needs it)")?;
    let installation_id = id(data, "installation_id")?;
    check_app_runtime(provider, urls, username, auth, installation_id).map_err(|(_, why)| why)?;
    let client_id = match data.get("client_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && !s.chars().any(char::is_control) => {
            Some(s.trim().to_string())
        }
        Some(_) => return Err("the field client_id must be a non-empty string (Iv23...)".into()),
    };
    let pem = match data.get("private_key") {
        Some(Value::String(s)) if !s.trim().is_empty() => Secret::new(s.as_str()),
        Some(Value::String(_)) => return Err("the field private_key is empty".into()),
        Some(_) => return Err("the field private_key must be a string (the PEM text)".into()),
        None => return Err("the field private_key is missing (app_id needs it)".into()),
    };
    Ok((
        GitHubApp {
            app_id,
            client_id,
            installation_id,
            permissions: permissions(data)?,
        },
        pem,
    ))
}

/// The message for a `private_key` the key parser refused (`why` never quotes the key):
/// the same words from the team reader and from `team publish`.
pub fn bad_key(why: impl std::fmt::Display) -> String {
    format!("the field private_key: {why}")
}

/// A whole number above 0: a JSON number, or digits in a string (`bao kv put app_id=123`
/// writes strings).
fn id(data: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    let n = match data.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "the field {key} must be a whole number above 0 (as GitHub shows it)"
        )),
    }
}

/// `permissions`: a table `{"contents": "write"}`, or `name=level` items (a list, or
/// one string with commas, as `bao kv put permissions=contents=write,issues=read` writes).
fn permissions(data: &Map<String, Value>) -> Result<BTreeMap<String, String>, String> {
    let pairs: Vec<(String, String)> = match data.get("permissions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(table)) => table
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        Some(Value::String(s)) => pairs_of(s.split(','))?,
        Some(Value::Array(items)) => {
            // Each item a string: another value is refused, not skipped as if empty.
            let items: Vec<&str> = items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or("the field permissions must hold name=level strings")
                })
                .collect::<Result<_, _>>()?;
            pairs_of(items.into_iter())?
        }
        Some(_) => return Err("the field permissions must be a table or name=level items".into()),
    };
    let mut out = BTreeMap::new();
    for (name, level) in pairs {
        if !valid_permission(&name, &level) {
            return Err(format!(
                "permissions: {name} = {level:?} is not a GitHub App permission; write name=read, write or admin (names as GitHub's API spells them: contents, pull_requests, ...)"
            ));
        }
        out.insert(name, level);
    }
    Ok(out)
}

fn pairs_of<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, String> {
    items
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|i| {
            i.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("permissions: {i:?} is not name=level"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{parse_entry, EntryVersion};
    use serde_json::{json, Value};

    const AT: EntryVersion = EntryVersion {
        version: 2,
        created: 1_800_000_000,
    };

    /// A PKCS#1 key made by openssl for this test only; `None` (SKIPPED) without openssl.
    fn test_key() -> Option<String> {
        let out = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).ok())
            .flatten()
    }

    fn parse(v: Value) -> Result<super::super::TeamRuntime, String> {
        parse_entry("ci", "secret/t/ci", v.as_object().unwrap(), AT)
    }

    #[test]
    fn an_app_entry_becomes_an_app_runtime_whose_secret_is_the_key() {
        let Some(pem) = test_key() else {
            eprintln!("SKIPPED: no openssl to make an RSA key");
            return;
        };
        let e = parse(
            json!({"provider": "github", "urls": ["https://github.com/acme/"],
            "app_id": "123", "installation_id": 789, "client_id": "Iv23abc",
            "permissions": "contents=write, issues=read", "private_key": pem,
            "api_url": "https://ghe.corp/api/v3/"}),
        )
        .unwrap();
        let app = e.runtime.app.as_ref().unwrap();
        assert_eq!(app.app_id, 123);
        assert_eq!(app.installation_id, Some(789));
        assert_eq!(app.issuer(), "Iv23abc");
        assert_eq!(app.permissions["contents"], "write");
        assert_eq!(app.permissions["issues"], "read");
        assert_eq!(
            e.runtime.api_url.as_deref(),
            Some("https://ghe.corp/api/v3")
        );
        assert_eq!(e.runtime.effective_username(), Some("x-access-token"));
        assert_eq!(e.secret.expose(), pem);
        assert_eq!(e.token.id, "openbao:ci@2.1800000000");
        assert_eq!(
            e.token.kind.as_deref(),
            Some(crate::token::TEAM_APP_KEY_KIND)
        );
        // A permissions table works as well as name=level items.
        let e = parse(
            json!({"provider": "github", "urls": ["https://github.com/acme/"],
            "app_id": 123, "permissions": {"contents": "read"}, "private_key": pem}),
        )
        .unwrap();
        assert_eq!(e.runtime.app.unwrap().permissions["contents"], "read");
    }

    #[test]
    fn bad_app_entries_name_the_field_and_never_quote_the_key() {
        let pem = test_key();
        let key = pem.clone().unwrap_or_else(|| {
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".into()
        });
        let ok = |extra: Value| {
            let mut v = json!({"provider": "github", "urls": ["https://github.com/acme/"],
                "app_id": 123, "private_key": key});
            for (k, x) in extra.as_object().unwrap() {
                if x.is_null() {
                    v.as_object_mut().unwrap().remove(k);
                } else {
                    v[k] = x.clone();
                }
            }
            v
        };
        let mut cases = vec![
            (ok(json!({"private_key": " "})), "private_key is empty"),
            (
                ok(json!({"private_key": 5})),
                "private_key must be a string",
            ),
            (ok(json!({"app_id": null})), "app_id is missing"),
            (ok(json!({"private_key": null})), "private_key is missing"),
            (
                ok(json!({"app_id": "abc"})),
                "app_id must be a whole number",
            ),
            (
                ok(json!({"token": "ghp_x"})),
                "the field token does not go with app_id",
            ),
            (
                ok(json!({"expires": "2030-01-01"})),
                "the field expires does not go with app_id",
            ),
            (ok(json!({"provider": "gitlab"})), "has no GitHub Apps"),
            (ok(json!({"username": "bot"})), "username x-access-token"),
            (
                ok(json!({"urls": ["https://github.com/"]})),
                "or installation_id",
            ),
            (
                ok(json!({"permissions": "contents=all"})),
                "permissions: contents = \"all\"",
            ),
            (
                ok(json!({"permissions": ["contents=write", 5]})),
                "permissions must hold name=level strings",
            ),
            (
                ok(json!({"permissions": {"contents": 5}})),
                "permissions: contents = \"\"",
            ),
            (
                ok(json!({"api_url": "ftp://x/"})),
                "api_url \"ftp://x/\" is malformed",
            ),
        ];
        if pem.is_some() {
            cases.push((ok(json!({})), ""));
        }
        for (v, want) in cases {
            match (parse(v.clone()), want) {
                (Ok(_), "") => {}
                (Ok(_), _) => panic!("{want}: accepted"),
                (Err(e), _) => {
                    assert!(!want.is_empty() && e.contains(want), "{want}: {e}");
                    assert!(!e.contains("SECRETKEYTEXT"), "{e}");
                    let body = key.lines().nth(2).unwrap_or("SECRETKEYTEXT");
                    assert!(!e.contains(body), "{e}");
                }
            }
        }
    }
}
