//! OAuth 2.0 pieces shared by the providers: the device authorization grant (RFC 8628) and
//! the refresh grant (RFC 6749 §6), for public clients (a client id, no secret).
//!
//! GitHub and GitLab follow the RFCs with two GitHub quirks handled here: its token
//! endpoint answers errors with HTTP 200 (so the body is checked for `error` whatever the
//! status), and it needs `Accept: application/json` to answer JSON at all
//! (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow).
//! Old GitHub examples send `expires_in` as a string, so numbers are read either way
//! (https://developer.github.com/changes/2020-04-30-expiring-user-to-server-access-tokens-for-github-apps).

use reqwest::Method;
use serde::{Deserialize, Deserializer};

use super::http::{Auth, Http, Reply};
use super::{DeviceCode, DevicePoll, OAuthTokens, ProviderError};
use crate::secret::Secret;
use crate::timefmt::unix_now;

/// RFC 8628 §3.4: `grant_type` of the device access token request.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
const DEFAULT_INTERVAL: u64 = 5;

/// A string field that is a secret: deserialized straight into a [`Secret`], so the token
/// is zeroized even when a later field fails to parse.
struct SecretField(Secret);

/// [`SecretField`] for other modules' answer bodies.
pub(crate) struct SecretText(pub(crate) Secret);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretText(Secret::new(s)))
    }
}

impl<'de> Deserialize<'de> for SecretField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretField(Secret::new(s)))
    }
}

/// A number, or a number in a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flex {
    Number(u64),
    Text(String),
}

impl Flex {
    fn get(&self) -> Option<u64> {
        match self {
            Flex::Number(n) => Some(*n),
            Flex::Text(s) => s.trim().parse().ok(),
        }
    }
}

fn flex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Flex>::deserialize(d)?.and_then(|f| f.get()))
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Deserialize)]
struct DeviceCodeBody {
    device_code: SecretField,
    user_code: String,
    // `verification_url` is the name some early implementations used.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "flex")]
    interval: Option<u64>,
    #[serde(default, deserialize_with = "flex")]
    expires_in: Option<u64>,
}

/// RFC 6749 §5.1 access token response (plus GitHub's `refresh_token_expires_in`).
#[derive(Deserialize)]
struct TokenBody {
    access_token: SecretField,
    refresh_token: Option<SecretField>,
    #[serde(default, deserialize_with = "flex")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "flex")]
    refresh_token_expires_in: Option<u64>,
    scope: Option<String>,
}

/// RFC 6749 §5.2 error response; only the code is read (descriptions are free text).
#[derive(Deserialize)]
struct ErrorProbe {
    error: Option<String>,
}

/// The OAuth error code in a body, if it has one; codes are short ASCII words, and
/// anything else is not echoed.
fn error_code(reply: &Reply) -> Option<String> {
    let probe: ErrorProbe = serde_json::from_slice(&reply.body).ok()?;
    let code = probe.error?;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    Some(if plain {
        code
    } else {
        "an unrecognised error".to_string()
    })
}

/// The errors every OAuth endpoint can give for a client id the host does not know
/// (RFC 6749 §5.2 `invalid_client`/`unauthorized_client`; GitHub's
/// `incorrect_client_credentials`).
fn client_error(host: &str, code: &str) -> Option<ProviderError> {
    matches!(
        code,
        "invalid_client" | "unauthorized_client" | "incorrect_client_credentials"
    )
    .then(|| ProviderError::OAuthNotRegistered {
        host: host.to_string(),
    })
}

/// Scopes as GitHub (`repo,gist`) or the RFC (`api read_user`) write them.
pub(crate) fn split_scopes(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// RFC 8628 §3.1: asks for a device code. `not_found` is what a 404 means on this host
/// (an unknown client id on GitHub; no device flow on a GitLab before 17.1).
pub(crate) async fn device_start(
    http: &Http,
    url: &str,
    client_id: &str,
    scopes: &[&str],
    not_found: ProviderError,
) -> Result<DeviceCode, ProviderError> {
    let scope = scopes.join(" ");
    let request = http
        .request(Method::POST, url, Auth::None)?
        .form(&[("client_id", client_id), ("scope", scope.as_str())]);
    let reply = http.send(request).await?;
    // Before the body: GitHub answers an unknown client id with 404 and a body
    // `{"error":"Not Found"}`, which is not an OAuth error code.
    if reply.status == 404 && error_code(&reply).as_deref() != Some("device_flow_disabled") {
        return Err(not_found);
    }
    if let Some(code) = error_code(&reply) {
        return Err(match code.as_str() {
            "device_flow_disabled" => ProviderError::DeviceFlowDisabled,
            other => client_error(&reply.host, other).unwrap_or_else(|| ProviderError::Protocol {
                detail: format!("{} refused to start the device login ({other})", reply.host),
            }),
        });
    }
    if reply.status == 404 {
        return Err(not_found);
    }
    if !reply.is_success() {
        return Err(ProviderError::Protocol {
            detail: format!(
                "{} answered HTTP {} to the device login request",
                reply.host, reply.status
            ),
        });
    }
    let body: DeviceCodeBody = reply.json()?;
    Ok(DeviceCode {
        device_code: body.device_code.0,
        user_code: body.user_code,
        verification_uri: body.verification_uri,
        verification_uri_complete: body.verification_uri_complete,
        interval: body.interval.unwrap_or(DEFAULT_INTERVAL),
        // RFC 8628 makes expires_in required; GitHub documents 900 s as its default.
        expires_in: body.expires_in.unwrap_or(900),
    })
}

/// RFC 8628 §3.4/§3.5: one poll of the token endpoint.
pub(crate) async fn device_poll(
    http: &Http,
    url: &str,
    client_id: &str,
    device_code: &Secret,
) -> Result<DevicePoll, ProviderError> {
    let request = http.request(Method::POST, url, Auth::None)?.form(&[
        ("client_id", client_id),
        ("device_code", device_code.expose()),
        ("grant_type", DEVICE_GRANT),
    ]);
    let reply = http.send(request).await?;
    if let Some(code) = error_code(&reply) {
        return match code.as_str() {
            "authorization_pending" => Ok(DevicePoll::Pending),
            "slow_down" => Ok(DevicePoll::SlowDown),
            "expired_token" => Err(ProviderError::Expired),
            "access_denied" => Err(ProviderError::AccessDenied),
            "device_flow_disabled" => Err(ProviderError::DeviceFlowDisabled),
            other => {
                Err(
                    client_error(&reply.host, other).unwrap_or_else(|| ProviderError::Protocol {
                        detail: format!("{} refused the device login ({other})", reply.host),
                    }),
                )
            }
        };
    }
    tokens(&reply).map(DevicePoll::Done)
}

/// RFC 6749 §6: a new access token (and, on GitHub and GitLab, a new refresh token) for a
/// refresh token.
pub(crate) async fn refresh(
    http: &Http,
    url: &str,
    client_id: &str,
    refresh_token: &Secret,
) -> Result<OAuthTokens, ProviderError> {
    let request = http.request(Method::POST, url, Auth::None)?.form(&[
        ("client_id", client_id),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ]);
    let reply = http.send(request).await?;
    if let Some(code) = error_code(&reply) {
        return Err(match code.as_str() {
            // RFC 6749 §5.2 invalid_grant; GitHub says bad_refresh_token.
            "invalid_grant" | "bad_refresh_token" => ProviderError::RefreshRejected {
                host: reply.host.clone(),
            },
            other => client_error(&reply.host, other).unwrap_or_else(|| ProviderError::Protocol {
                detail: format!("{} refused the refresh ({other})", reply.host),
            }),
        });
    }
    tokens(&reply)
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the tokens for an authorization code, for a
/// public client (no secret; the verifier proves it is the same client).
pub(crate) async fn exchange_code(
    http: &Http,
    url: &str,
    client_id: &str,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<OAuthTokens, ProviderError> {
    let request = http.request(Method::POST, url, Auth::None)?.form(&[
        ("client_id", client_id),
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("code_verifier", verifier.expose()),
        ("redirect_uri", redirect_uri),
    ]);
    let reply = http.send(request).await?;
    if let Some(code) = error_code(&reply) {
        return Err(match code.as_str() {
            "invalid_grant" => ProviderError::Protocol {
                detail: format!(
                    "{} refused the authorization code (expired, used, or for another client)",
                    reply.host
                ),
            },
            other => client_error(&reply.host, other).unwrap_or_else(|| ProviderError::Protocol {
                detail: format!("{} refused the login ({other})", reply.host),
            }),
        });
    }
    tokens(&reply)
}

/// A successful token response.
fn tokens(reply: &Reply) -> Result<OAuthTokens, ProviderError> {
    if !reply.is_success() {
        return Err(ProviderError::Protocol {
            detail: format!(
                "{} answered HTTP {} from its token endpoint",
                reply.host, reply.status
            ),
        });
    }
    let body: TokenBody = reply.json()?;
    let now = unix_now();
    Ok(OAuthTokens {
        access_token: body.access_token.0,
        refresh_token: body.refresh_token.map(|r| r.0),
        expires_at: body.expires_in.map(|s| now.saturating_add(s)),
        refresh_expires_at: body.refresh_token_expires_in.map(|s| now.saturating_add(s)),
        scopes: body.scope.as_deref().map(split_scopes).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_commas_and_spaces() {
        assert_eq!(split_scopes("repo, gist"), ["repo", "gist"]);
        assert_eq!(split_scopes("api read_user"), ["api", "read_user"]);
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn numbers_may_be_strings() {
        let body: TokenBody = serde_json::from_str(
            r#"{"access_token":"a","expires_in":"28800","refresh_token_expires_in":15811200}"#,
        )
        .unwrap();
        assert_eq!(body.expires_in, Some(28800));
        assert_eq!(body.refresh_token_expires_in, Some(15811200));
    }
}
