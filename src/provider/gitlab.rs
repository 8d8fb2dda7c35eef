//! GitLab (gitlab.com and self-managed).
//!
//! - Introspection: `GET /personal_access_tokens/self` for personal (and project/group)
//!   access tokens; an OAuth token is not one of those, so on 404 `GET /oauth/token/info`
//!   on the web host says what it is.
//! - Revocation: `DELETE /personal_access_tokens/self`.
//! - Device authorization grant and refresh at `/oauth/authorize_device` and
//!   `/oauth/token` (https://docs.gitlab.com/api/oauth2/#device-authorization-grant-flow);
//!   access tokens last two hours and every refresh returns a new refresh token
//!   (https://docs.gitlab.com/api/oauth2/).

use reqwest::Method;
use serde::Deserialize;

use super::descriptor::{
    Api, ApiUser, DeviceFlow, OAuth, ProviderDescriptor, Revoke, RevokeCall, TokenPage,
};
use super::http::{Auth, Http};
use super::oauth;
use super::{Provider, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;
use crate::timefmt;

/// GitLab, as the registry knows it.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::GitLab,
    name: "gitlab",
    title: "GitLab",
    host_guesses: &["gitlab.com"],
    // GitLab: "Git over HTTPS: any non-blank value as a username, the personal access
    // token as the password" (docs.gitlab.com user/profile/personal_access_tokens), and
    // OAuth tokens used the magic `oauth2` username (docs.gitlab.com api/oauth2 "Access
    // Git over HTTPS with access token"), so `oauth2` suits both.
    default_username: Some("oauth2"),
    // GitLab 16.x moved the page from /-/profile/personal_access_tokens to
    // /-/user_settings/personal_access_tokens (the old path is a 404 on gitlab.com).
    token_page: Some(TokenPage::OnServer(
        "/-/user_settings/personal_access_tokens",
    )),
    // https://docs.gitlab.com/user/profile/personal_access_tokens/#personal-access-token-scopes
    git_scopes: "read_repository, write_repository",
    api: Some(Api {
        // https://docs.gitlab.com/api/rest/ ("/api/v4" on every instance).
        base: |web| format!("{web}/api/v4"),
        user: ApiUser::Username,
        introspect: |http, target, _user, token| Box::pin(introspect(http, target, token)),
        rotate: Some(|http, target, token, request| Box::pin(rotate(http, target, token, request))),
    }),
    revoke: Revoke::Api(RevokeCall(|http, target, token| {
        Box::pin(revoke(http, target, token))
    })),
    oauth: OAuth::Device(DeviceFlow {
        device_path: "/oauth/authorize_device",
        // https://docs.gitlab.com/api/oauth2/#authorization-code-flow (step "refresh"):
        // public clients send no secret.
        token_path: "/oauth/token",
        // https://docs.gitlab.com/integration/oauth_provider/#view-all-authorized-applications (scopes)
        scopes: &["read_repository", "write_repository"],
        // The endpoint exists from GitLab 17.1 on (and an admin can turn the flow off).
        not_found: |_| ProviderError::DeviceFlowDisabled,
    }),
    github_apps: false,
};

/// https://docs.gitlab.com/api/personal_access_tokens/#get-details-on-a-personal-access-token
#[derive(Deserialize)]
struct SelfToken {
    #[serde(default)]
    scopes: Vec<String>,
    /// A date (`2026-04-01`) or null.
    expires_at: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    revoked: bool,
}

fn yes() -> bool {
    true
}

/// A list of scopes, or one space-separated string.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Scopes {
    List(Vec<String>),
    Text(String),
    #[default]
    None,
}

impl Scopes {
    fn into_vec(self) -> Vec<String> {
        match self {
            Scopes::List(list) => list,
            Scopes::Text(text) => oauth::split_scopes(&text),
            Scopes::None => Vec::new(),
        }
    }
}

/// Doorkeeper's token info (https://docs.gitlab.com/api/oauth2/#retrieve-the-token-information):
/// `scope` (older) or `scopes`, `expires_in` (older) or `expires_in_seconds`.
#[derive(Deserialize)]
struct OAuthInfo {
    #[serde(default, alias = "scopes")]
    scope: Scopes,
    #[serde(alias = "expires_in_seconds")]
    expires_in: Option<u64>,
}

pub(super) async fn introspect(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    // GitLab takes a PAT as `Authorization: Bearer` as well as `PRIVATE-TOKEN`, and an
    // OAuth token only as Bearer (https://docs.gitlab.com/api/rest/authentication/).
    let url = format!("{}/personal_access_tokens/self", target.api_base);
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Bearer(token))?)
        .await?;
    match reply.status {
        200 => {}
        404 => return introspect_oauth(http, target, token).await,
        _ => return Err(reply.rejected()),
    }
    let body: SelfToken = reply.json()?;
    if body.revoked {
        return Err(reply.rejected_because("GitLab reports the token as revoked"));
    }
    if !body.active {
        return Err(reply.rejected_because("GitLab reports the token as inactive (expired)"));
    }
    let mut info = TokenInfo {
        kind: Some("personal access token".to_string()),
        ..TokenInfo::default()
    };
    match body.expires_at.as_deref() {
        // A date: the token stops working at 00:00 UTC that day, the reading timefmt
        // uses for a bare date.
        Some(date) => match timefmt::parse_expiry(date) {
            Ok(at) => info.expires = Some(at),
            Err(_) => info.notes.push(format!(
                "GitLab reported an expiry helperd cannot read ({date:?}); enter it with --expires"
            )),
        },
        None => info.notes.push("the token does not expire".to_string()),
    }
    git_scopes(&body.scopes, &mut info);
    info.scopes = Some(body.scopes);
    Ok(info)
}

/// An OAuth access token (from `helperctl login`): its scopes and remaining lifetime.
async fn introspect_oauth(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let url = format!("{}/oauth/token/info", target.web_base);
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Bearer(token))?)
        .await?;
    if reply.status != 200 {
        return Err(reply.rejected());
    }
    let body: OAuthInfo = reply.json()?;
    let mut info = TokenInfo {
        kind: Some("OAuth token".to_string()),
        expires: body
            .expires_in
            .map(|s| timefmt::unix_now().saturating_add(s)),
        ..TokenInfo::default()
    };
    let scopes = body.scope.into_vec();
    git_scopes(&scopes, &mut info);
    info.scopes = Some(scopes);
    Ok(info)
}

/// git over HTTPS needs `write_repository` to push (it includes read), or `api`, which
/// includes it (https://docs.gitlab.com/security/tokens/access_token_scopes/; the split of
/// write_repository out of api kept api's repository access:
/// https://gitlab.com/gitlab-org/gitlab-foss/-/merge_requests/26021).
fn git_scopes(scopes: &[String], info: &mut TokenInfo) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("api") || has("write_repository") {
        return;
    }
    info.missing_git_scopes.push("write_repository".to_string());
    if has("read_repository") {
        info.notes
            .push("read_repository lets git fetch but not push".to_string());
    }
}

/// https://docs.gitlab.com/api/personal_access_tokens/#revoke-a-personal-access-token
/// (`DELETE /personal_access_tokens/self`, 204).
pub(super) async fn revoke(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<RevokeOutcome, ProviderError> {
    let url = format!("{}/personal_access_tokens/self", target.api_base);
    let reply = http
        .send(http.request(Method::DELETE, &url, Auth::Bearer(token))?)
        .await?;
    match reply.status {
        200..=299 => Ok(RevokeOutcome::Revoked),
        // The endpoint is for access tokens; it does not exist on old servers either.
        403 | 404 => Ok(RevokeOutcome::NotSupported {
            reason: format!(
                "GitLab did not let this token revoke itself (HTTP {}: an OAuth token, a \
                 token without the api scope, or a server without this endpoint)",
                reply.status
            ),
            token_page: target.token_page(),
        }),
        _ => Err(reply.rejected()),
    }
}

/// https://docs.gitlab.com/api/personal_access_tokens/#rotate-a-personal-access-token
/// (`POST /personal_access_tokens/self/rotate`, 200 with the new token; the old one is
/// revoked; needs the `api` or `self_rotate` scope), and the project and group access
/// tokens' own (`POST /projects/:id/access_tokens/self/rotate`,
/// `POST /groups/:id/access_tokens/self/rotate`, same answer). `expires_at` is a date
/// (`YYYY-MM-DD`); without it GitLab gives the new token one week.
pub(super) async fn rotate(
    http: &Http,
    target: &Target,
    token: &Secret,
    request: &super::RotateRequest,
) -> Result<super::RotatedToken, ProviderError> {
    #[derive(Deserialize)]
    struct Rotated {
        token: oauth::SecretText,
        expires_at: Option<String>,
        #[serde(default)]
        scopes: Vec<String>,
    }
    let url = format!(
        "{}{}",
        target.api_base,
        crate::rotation::endpoint(&request.via)
    );
    let mut post = http.request(Method::POST, &url, Auth::Bearer(token))?;
    if let Some(at) = request.expires_at {
        post = post.json(&serde_json::json!({ "expires_at": timefmt::format_date(at) }));
    }
    let reply = http.send(post).await?;
    match reply.status {
        200..=299 => {
            let body: Rotated = reply.json()?;
            let expires = match body.expires_at.as_deref() {
                Some(date) => Some(timefmt::parse_expiry(date).map_err(|e| ProviderError::Protocol {
                    detail: format!("GitLab sent an unreadable expires_at ({e})"),
                })?),
                None => None,
            };
            Ok(super::RotatedToken {
                token: body.token.0,
                expires,
                scopes: body.scopes,
            })
        }
        403 => Err(ProviderError::MissingScopes {
            scopes: vec!["api or self_rotate (to rotate itself)".into()],
        }),
        404 => Err(ProviderError::Unsupported {
            what: "this GitLab cannot rotate the token through its API (an OAuth token, or a                    server before 16.0); use `helperctl renew` with a new token"
                .into(),
        }),
        _ => Err(reply.rejected()),
    }
}

#[cfg(test)]
mod tests;
