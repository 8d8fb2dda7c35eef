//! GitHub Apps (DESIGN.md §13, issue 18): the app's private key, the RS256 JWT it signs,
//! and the installation tokens the daemon mints with it.
//!
//! - The key: the PEM GitHub's "Generate a private key" downloads (PKCS#1, `BEGIN RSA
//!   PRIVATE KEY`), or PKCS#8 (`BEGIN PRIVATE KEY`). Read and used with *ring*, the crypto
//!   rustls already brings; the decoded DER is zeroized.
//! - The JWT (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app):
//!   RS256, `iat` 60 seconds in the past "to allow for clock drift", `exp` "no more than
//!   10 minutes into the future", `iss` the app's client id (or its app id).
//! - Installation tokens (https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app):
//!   `POST /app/installations/{id}/access_tokens` with the JWT, optionally narrowed by
//!   `permissions` and `repositories`; 201 with `token`, `expires_at` (one hour),
//!   `permissions`, `repository_selection`. Their length is not fixed (about 520
//!   characters since 2025): nothing here assumes one.
//! - The installation of an owner or repository, with the JWT: `GET /orgs/{org}/installation`,
//!   `/users/{user}/installation`, `/repos/{owner}/{repo}/installation`.
//! - `DELETE /installation/token` with the installation token revokes it.
//!
//! Nothing here logs; errors never quote a key, a JWT, a token or a server's body.

use std::collections::BTreeMap;

use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::super::http::{Auth, Http, Reply};
use super::super::oauth::SecretText;
use super::super::{ProviderError, Target};
use super::api_request;
use crate::secret::Secret;
use helperd_wire::url::percent_encode_segment;

/// The way out GitHub's refusal of a JWT names for a local key. The daemon puts the
/// admin's `team publish` in its place for a team entry's key (`daemon::git::mint`).
pub const LOCAL_KEY_FIX: &str = "run `helperctl token set-app`";

/// `iat` this far in the past: GitHub's own advice against clock drift.
pub const JWT_BACKDATE_SECS: u64 = 60;
/// `exp` this far ahead of now; GitHub refuses more than 10 minutes (from its own clock).
pub const JWT_LIFETIME_SECS: u64 = 540;

/// An app's private key, parsed. Holds *ring*'s key pair (whose memory *ring* owns).
pub struct AppKey {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

/// Why a private key cannot be used. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or a PEM of something else.
    #[error("this is not a GitHub App private key: expected a PEM file with BEGIN RSA PRIVATE KEY (as GitHub downloads it) or BEGIN PRIVATE KEY (PKCS#8){found}")]
    NotAKey {
        /// What was found instead, e.g. ` (found BEGIN PUBLIC KEY)`.
        found: String,
    },
    /// PEM of the right kind whose content *ring* refuses.
    #[error("the private key cannot be used for RS256: {why}")]
    Rejected {
        /// *ring*'s reason (a fixed description, never key material).
        why: String,
    },
}

impl AppKey {
    /// Reads a PEM key: PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    pub fn from_pem(pem: &Secret) -> Result<AppKey, KeyError> {
        let text = pem.expose();
        let (label, der) = pem_block(text).ok_or_else(|| KeyError::NotAKey {
            found: first_label(text)
                .map(|l| format!(" (found BEGIN {l})"))
                .unwrap_or_default(),
        })?;
        let pair = match label {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => {
                return Err(KeyError::NotAKey {
                    found: format!(" (found BEGIN {other})"),
                })
            }
        }
        .map_err(|e| KeyError::Rejected { why: e.to_string() })?;
        Ok(AppKey { pair })
    }

    /// A JWT that authenticates as the app (`iss`) from `now` (the daemon's clock): valid
    /// from `now - 60` to `now + 540` seconds.
    pub fn jwt(&self, iss: &str, now: u64) -> Result<Secret, KeyError> {
        let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iat": now.saturating_sub(JWT_BACKDATE_SECS),
            "exp": now.saturating_add(JWT_LIFETIME_SECS),
            "iss": iss,
        });
        let mut text = Zeroizing::new(format!(
            "{header}.{}",
            b64url(claims.to_string().as_bytes())
        ));
        let mut signature = Zeroizing::new(vec![0u8; self.pair.public().modulus_len()]);
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                text.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError::Rejected {
                why: "signing failed".into(),
            })?;
        text.push('.');
        text.push_str(&b64url(&signature));
        Ok(Secret::new(text.as_str()))
    }
}

/// A team entry's app key (`private_key`), checked where entries are read (the daemon's
/// team reader) and written (`team publish`): the pure parser of entries cannot use the
/// crypto. `Err` names the field, never quotes the key. A token entry passes.
pub fn check_team_key(entry: &crate::team::TeamRuntime) -> Result<(), String> {
    match entry.runtime.app {
        Some(_) => AppKey::from_pem(&entry.secret)
            .map(drop)
            .map_err(crate::team::app::bad_key),
        None => Ok(()),
    }
}

/// The first PEM block's label and its decoded content (zeroized on drop).
fn pem_block(text: &str) -> Option<(&str, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let der = b64_decode(&body[..end])?;
    Some((label, der))
}

fn first_label(text: &str) -> Option<&str> {
    let rest = &text[text.find("-----BEGIN ")? + "-----BEGIN ".len()..];
    rest.find("-----").map(|end| &rest[..end])
}

/// Standard base64 (whitespace ignored, padding optional), zeroized on drop.
fn b64_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// base64url without padding (RFC 7515 §2).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// What `GET /app` says about the app the JWT is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// The app id.
    pub id: u64,
    /// The app's URL name: its pages are `/apps/{slug}`.
    pub slug: Option<String>,
}

/// An installation found for an owner or repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The installation id.
    pub id: u64,
    /// The account it is installed on.
    pub account: Option<String>,
}

/// A minted installation token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationToken {
    /// The token git sends (any length).
    pub token: Secret,
    /// Unix seconds.
    pub expires_at: u64,
    /// `name=level` as GitHub granted them.
    pub permissions: Vec<String>,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
}

/// Where an installation is looked for: what a runtime's URL prefixes name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner<'a> {
    /// An organisation or a user (not known which: both are asked).
    Account(&'a str),
    /// One repository.
    Repo(&'a str, &'a str),
}

#[derive(Deserialize)]
struct AppBody {
    id: u64,
    slug: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    login: Option<String>,
}

#[derive(Deserialize)]
struct InstallationBody {
    id: u64,
    account: Option<Account>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: SecretText,
    expires_at: String,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    repository_selection: Option<String>,
}

/// `GET /app`: checks the key (a 401 is the key or the clock) and learns the slug.
pub(crate) async fn about(
    http: &Http,
    target: &Target,
    jwt: &Secret,
    now: u64,
) -> Result<AppInfo, ProviderError> {
    let url = format!("{}/app", target.api_base);
    let reply = http
        .send(api_request(http, Method::GET, &url, Auth::Bearer(jwt))?)
        .await?;
    match reply.status {
        200 => {
            let body: AppBody = reply.json()?;
            Ok(AppInfo {
                id: body.id,
                slug: body.slug,
            })
        }
        _ => Err(jwt_refused(&reply, now)),
    }
}

/// Finds the app's installation for `owner`: the organisation, else the user (GitHub
/// answers 404 on the path of the other kind), or the repository.
pub(crate) async fn find_installation(
    http: &Http,
    target: &Target,
    jwt: &Secret,
    owner: &Owner<'_>,
    now: u64,
) -> Result<Installation, ProviderError> {
    let paths: Vec<String> = match owner {
        Owner::Account(login) => vec![
            format!("/orgs/{}/installation", percent_encode_segment(login)),
            format!("/users/{}/installation", percent_encode_segment(login)),
        ],
        Owner::Repo(o, r) => vec![format!(
            "/repos/{}/{}/installation",
            percent_encode_segment(o),
            percent_encode_segment(r)
        )],
    };
    for path in &paths {
        let url = format!("{}{path}", target.api_base);
        let reply = http
            .send(api_request(http, Method::GET, &url, Auth::Bearer(jwt))?)
            .await?;
        match reply.status {
            200 => {
                let body: InstallationBody = reply.json()?;
                return Ok(Installation {
                    id: body.id,
                    account: body.account.and_then(|a| a.login),
                });
            }
            404 => continue,
            _ => return Err(jwt_refused(&reply, now)),
        }
    }
    let what = match owner {
        Owner::Account(login) => login.to_string(),
        Owner::Repo(o, r) => format!("{o}/{r}"),
    };
    Err(ProviderError::Unsupported {
        what: format!(
            "the GitHub App is not installed on {what} ({} answered 404); install it there \
             (the app's page, Install App), or set the runtime's installation_id",
            target.web_host()
        ),
    })
}

/// `POST /app/installations/{id}/access_tokens`, narrowed by `permissions` (`name` ->
/// `read`/`write`/`admin`) and `repositories` (names, without the owner).
pub(crate) async fn mint(
    http: &Http,
    target: &Target,
    jwt: &Secret,
    installation: u64,
    permissions: &BTreeMap<String, String>,
    repositories: &[String],
    now: u64,
) -> Result<InstallationToken, ProviderError> {
    let url = format!(
        "{}/app/installations/{installation}/access_tokens",
        target.api_base
    );
    let mut body = serde_json::Map::new();
    if !permissions.is_empty() {
        body.insert("permissions".into(), serde_json::json!(permissions));
    }
    if !repositories.is_empty() {
        body.insert("repositories".into(), serde_json::json!(repositories));
    }
    let request = api_request(http, Method::POST, &url, Auth::Bearer(jwt))?
        .json(&serde_json::Value::Object(body));
    let reply = http.send(request).await?;
    match reply.status {
        201 | 200 => {
            let body: TokenBody = reply.json()?;
            let expires_at = crate::timefmt::parse_expiry(&body.expires_at).map_err(|_| {
                ProviderError::Protocol {
                    detail: format!("{} answered an expires_at helperd cannot read", reply.url),
                }
            })?;
            Ok(InstallationToken {
                token: body.token.0,
                expires_at,
                permissions: body
                    .permissions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                repository_selection: body.repository_selection,
            })
        }
        404 => Err(ProviderError::Unsupported {
            what: format!(
                "{} knows no installation {installation} of this app (HTTP 404): the app was \
                 uninstalled, or the installation id is wrong; reinstall it, or fix the \
                 runtime's installation_id",
                reply.host
            ),
        }),
        422 => Err(ProviderError::Unsupported {
            what: format!(
                "{} refused the token's permissions or repositories (HTTP 422): the \
                 installation lacks {}{}; grant them in the app's settings (and have the \
                 owner accept them), or change the runtime's permissions",
                reply.host,
                if permissions.is_empty() {
                    "what was asked".to_string()
                } else {
                    permissions
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                if repositories.is_empty() {
                    String::new()
                } else {
                    format!(" or access to {}", repositories.join(", "))
                }
            ),
        }),
        _ => Err(jwt_refused(&reply, now)),
    }
}

/// `DELETE /installation/token` with the token itself.
pub(crate) async fn revoke_installation_token(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<(), ProviderError> {
    let url = format!("{}/installation/token", target.api_base);
    let reply = http
        .send(api_request(
            http,
            Method::DELETE,
            &url,
            Auth::Bearer(token),
        )?)
        .await?;
    match reply.status {
        204 => Ok(()),
        _ => Err(reply.rejected()),
    }
}

/// The error for a JWT GitHub refused: a clock too far off (GitHub's `Date` says so, or
/// its message names a time claim), else a key it does not know.
fn jwt_refused(reply: &Reply, now: u64) -> ProviderError {
    if reply.status != 401 {
        return reply.rejected();
    }
    let skew = reply
        .header("date")
        .and_then(crate::timefmt::parse_http_date)
        .map(|theirs| theirs as i64 - now as i64)
        .filter(|d| d.unsigned_abs() > 30);
    // GitHub's messages for a bad time claim ("'Expiration time' claim ('exp') is too far
    // in the future", "'Issued at' claim ('iat') must be ...") are fixed texts; only
    // whether one was given is used, never quoted.
    let body = String::from_utf8_lossy(&reply.body);
    let time_claim = body.contains("claim ('exp')") || body.contains("claim ('iat')");
    match skew {
        Some(d) => reply.rejected_because(format!(
            "GitHub refused the app's JWT: this machine's clock is {} s {} GitHub's; set the \
             clock right (NTP), GitHub allows JWTs at most 10 minutes ahead",
            d.unsigned_abs(),
            if d > 0 { "behind" } else { "ahead of" }
        )),
        None if time_claim => reply.rejected_because(
            "GitHub refused the app's JWT for its times (iat/exp): check this machine's clock \
             (NTP)",
        ),
        None => reply.rejected_because(format!(
            "GitHub rejected the app's JWT: the private key is not one of this app's (deleted \
             or regenerated?), or the app id / client id is wrong; download a new key from the \
             app's settings and {LOCAL_KEY_FIX}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_and_decode_round_trip() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64_decode("Zm9v\nYmE=").unwrap().as_slice(), b"fooba");
        assert!(b64_decode("Zm9v*").is_none());
    }

    #[test]
    fn a_team_entry_with_a_bad_key_names_the_field_without_quoting_it() {
        let data = serde_json::json!({"provider": "github", "urls": ["https://github.com/acme/"],
            "app_id": 1, "private_key": "-----BEGIN RSA PRIVATE KEY-----\nU0VDUkVUS0VZ\n-----END RSA PRIVATE KEY-----\n"});
        let at = crate::team::EntryVersion {
            version: 1,
            created: 0,
        };
        let entry = crate::team::parse_entry("ci", "p", data.as_object().unwrap(), at).unwrap();
        let e = check_team_key(&entry).unwrap_err();
        assert!(
            e.starts_with("the field private_key: the private key cannot be used"),
            "{e}"
        );
        assert!(!e.contains("U0VDUkVUS0VZ"), "{e}");
        let mut token = data.as_object().unwrap().clone();
        for f in ["app_id", "private_key"] {
            token.remove(f);
        }
        token.insert("token".into(), "t".into());
        let entry = crate::team::parse_entry("ci", "p", &token, at).unwrap();
        assert_eq!(check_team_key(&entry), Ok(()));
    }

    #[test]
    fn not_a_key_is_said_without_quoting_it() {
        let e = AppKey::from_pem(&Secret::new("ghp_secret")).unwrap_err();
        assert!(!e.to_string().contains("ghp_secret"), "{e}");
        let e = AppKey::from_pem(&Secret::new(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("found BEGIN PUBLIC KEY"), "{e}");
        let e = AppKey::from_pem(&Secret::new(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        ))
        .unwrap_err();
        assert!(matches!(e, KeyError::Rejected { .. }), "{e}");
    }
}
