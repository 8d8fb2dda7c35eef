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

use super::descriptor::{Api, ApiUser, OAuth, PkceFlow, ProviderDescriptor, Revoke, TokenPage};
use super::http::{Auth, Http, Reply};
use super::oauth;
use super::{Provider, ProviderError, Target, TokenInfo};
use crate::secret::Secret;

/// Gitea and Forgejo, as the registry knows them.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::Gitea,
    name: "gitea",
    title: "Gitea/Forgejo",
    // Codeberg runs Forgejo; gitea.com runs Gitea.
    host_guesses: &["codeberg.org", "gitea.com"],
    // Gitea/Forgejo tokens are sent with the account's username.
    default_username: None,
    // Settings > Applications > Generate new token.
    token_page: Some(TokenPage::OnServer("/user/settings/applications")),
    // https://docs.gitea.com/development/oauth2-provider#scopes (token scopes)
    git_scopes: "write:repository",
    api: Some(Api {
        // https://docs.gitea.com/development/api-usage (the API lives at /api/v1).
        base: |web| format!("{web}/api/v1"),
        user: ApiUser::Username,
        introspect: |http, target, _user, token| Box::pin(introspect(http, target, token)),
        rotate: None,
    }),
    revoke: Revoke::ByHand {
        reason: "Gitea and Forgejo delete tokens only when asked with the account's password, \
                 not with a token; delete it under Settings > Applications",
    },
    // The authorization code flow with PKCE on a loopback redirect, and refresh at the
    // token endpoint (https://docs.gitea.com/development/oauth2-provider); no device flow.
    oauth: OAuth::BrowserPkce(PkceFlow {
        authorize_path: "/login/oauth/authorize",
        token_path: "/login/oauth/access_token",
        // The app's registration decides what its tokens may do.
        scopes: &[],
    }),
    github_apps: false,
};

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

#[cfg(test)]
mod tests;
