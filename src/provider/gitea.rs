//! Gitea, and its fork Forgejo (Codeberg).
//!
//! - `GET /api/v1/user` with `Authorization: token <t>`
//!   (https://docs.gitea.com/development/api-usage#authentication) proves the token works:
//!   an unknown token is 401, and a scoped token without the scope an endpoint needs is 403
//!   with a message naming it: "token does not have at least one of required scope(s):
//!   [read:user]". `/user` needs `read:user`, which git does not, so a 403 there is only
//!   a note; `GET /repos/search` needs `read:repository`, which git does need.
//! - Gitea reports neither a token's scopes nor an expiry (tokens do not expire), and
//!   listing or deleting tokens (`/users/{username}/tokens`) takes the account password
//!   (basic authentication), not a token
//!   (https://docs.gitea.com/development/api-usage#generating-and-listing-api-tokens).
//! - OAuth: Gitea offers the authorization code flow with PKCE for public clients on a
//!   loopback redirect, and no device flow
//!   (https://docs.gitea.com/development/oauth2-provider); refresh works like elsewhere,
//!   at `/login/oauth/access_token`.

use reqwest::Method;
use serde::Deserialize;

use super::http::{Auth, Http, Reply};
use super::oauth;
use super::{OAuthTokens, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;

#[derive(Deserialize)]
struct User {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    message: Option<String>,
}

/// The scopes a 403 says are required, from `... required scope(s): [a b]` (Gitea joins
/// them with spaces, some versions with commas).
fn required_scopes(reply: &Reply) -> Option<Vec<String>> {
    if reply.status != 403 {
        return None;
    }
    let message = reply.json::<Message>().ok()?.message?;
    let (_, rest) = message.split_once("required scope")?;
    let inside = rest.split_once('[')?.1.split_once(']')?.0;
    let scopes: Vec<String> = oauth::split_scopes(inside)
        .into_iter()
        // Scope names are like `read:user`; anything else is not echoed.
        .filter(|s| {
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b':' || b == b'_')
        })
        .collect();
    (!scopes.is_empty()).then_some(scopes)
}

pub(super) async fn introspect(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let mut info = TokenInfo {
        kind: Some("access token".to_string()),
        notes: vec![
            "Gitea and Forgejo do not report a token's scopes or expiry; helperd does not \
             guess whether it may push (write:repository)"
                .to_string(),
        ],
        ..TokenInfo::default()
    };
    let url = format!("{}/user", target.api_base);
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Token(token))?)
        .await?;
    match (reply.status, required_scopes(&reply)) {
        (200, _) => info.login = reply.json::<User>()?.login,
        (403, Some(_)) => info.notes.push(
            "the token has no read:user scope, so helperd could not learn the account name; \
             git does not need it"
                .to_string(),
        ),
        _ => return Err(reply.rejected()),
    }
    let url = format!("{}/repos/search?limit=1", target.api_base);
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Token(token))?)
        .await?;
    match (reply.status, required_scopes(&reply)) {
        (200, _) => {}
        (403, Some(scopes)) => info.missing_git_scopes = scopes,
        _ => return Err(reply.rejected()),
    }
    Ok(info)
}

pub(super) fn revoke(target: &Target) -> RevokeOutcome {
    RevokeOutcome::NotSupported {
        reason: "Gitea and Forgejo delete tokens only when asked with the account's password, \
                 not with a token; delete it under Settings > Applications"
            .to_string(),
        token_page: target.token_page(),
    }
}

pub(super) fn no_device_flow() -> ProviderError {
    ProviderError::Unsupported {
        what: "Gitea and Forgejo have no OAuth device flow: they offer the authorization code \
               flow with PKCE on a loopback redirect instead"
            .to_string(),
    }
}

/// https://docs.gitea.com/development/oauth2-provider (refresh at the token endpoint).
pub(super) async fn refresh(
    http: &Http,
    target: &Target,
    client_id: &str,
    refresh_token: &Secret,
) -> Result<OAuthTokens, ProviderError> {
    let url = format!("{}/login/oauth/access_token", target.web_base);
    oauth::refresh(http, &url, client_id, refresh_token).await
}

#[cfg(test)]
mod tests;
