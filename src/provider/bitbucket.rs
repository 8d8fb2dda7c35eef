//! Bitbucket Cloud (bitbucket.org).
//!
//! API tokens (https://support.atlassian.com/bitbucket-cloud/docs/using-api-tokens/) are
//! sent by git with the Bitbucket username, but by the REST API with the Atlassian account
//! **email** ("To authenticate with Bitbucket Cloud using an API token, you will need the
//! API token and your Atlassian account email"). Introspection therefore takes the email
//! as its username; a username without `@` that the API refuses gets a message saying so.
//! Granted scopes come back in `x-oauth-scopes`
//! (https://support.atlassian.com/bitbucket-cloud/kb/how-to-fetch-the-scope-of-a-token-via-command-line/).
//! No API reports a token's expiry or revokes one.

use reqwest::Method;
use serde::Deserialize;

use super::descriptor::{Api, ApiUser, OAuth, ProviderDescriptor, Revoke, TokenPage};
use super::http::{Auth, Http};
use super::oauth;
use super::{Provider, ProviderError, Target, TokenInfo};
use crate::secret::Secret;

/// Bitbucket Cloud, as the registry knows it.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::Bitbucket,
    name: "bitbucket",
    title: "Bitbucket Cloud",
    host_guesses: &["bitbucket.org"],
    // Bitbucket Cloud API tokens: "you can also use the static username
    // `x-bitbucket-api-token-auth`" instead of the account's username
    // (support.atlassian.com bitbucket-cloud/docs/using-api-tokens); app passwords, which
    // needed the username, are gone since 2026-07-28.
    default_username: Some("x-bitbucket-api-token-auth"),
    // Bitbucket Cloud API tokens belong to the Atlassian account, not to bitbucket.org:
    // support.atlassian.com bitbucket-cloud/docs/using-api-tokens.
    token_page: Some(TokenPage::Elsewhere(
        "https://id.atlassian.com/manage-profile/security/api-tokens",
    )),
    // https://support.atlassian.com/bitbucket-cloud/docs/api-token-permissions/
    git_scopes: "read:repository:bitbucket, write:repository:bitbucket",
    api: Some(Api {
        // https://developer.atlassian.com/cloud/bitbucket/rest/intro/ : Bitbucket Cloud's
        // API has one home whatever the web prefix.
        base: |_web| "https://api.bitbucket.org/2.0".to_string(),
        user: ApiUser::Email,
        introspect: |http, target, email, token| Box::pin(introspect(http, target, email, token)),
        rotate: None,
    }),
    // No Bitbucket Cloud API revokes an API token: they belong to the Atlassian account
    // and are managed on its page only.
    revoke: Revoke::ByHand {
        reason: "Bitbucket Cloud has no API to revoke an API token; revoke it on the \
                 Atlassian account's token page",
    },
    oauth: OAuth::Unavailable {
        why: "Bitbucket Cloud offers no OAuth device flow; use an API token",
    },
    github_apps: false,
};

/// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-users/#api-user-get
#[derive(Deserialize)]
struct User {
    username: Option<String>,
}

pub(super) async fn introspect(
    http: &Http,
    target: &Target,
    email: Option<&str>,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let Some(email) = email else {
        return Err(ProviderError::Unsupported {
            what: "checking a Bitbucket Cloud API token needs the Atlassian account email \
                   (Bitbucket's API takes the token with the email, git with the username): \
                   add `email = \"you@example.com\"` to the runtime (or `runtime add --email`)"
                .to_string(),
        });
    };
    let url = format!("{}/user", target.api_base);
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Basic(email, token))?)
        .await?;
    let mut info = TokenInfo {
        kind: Some("API token".to_string()),
        notes: vec![
            "Bitbucket Cloud does not report when an API token expires; enter the date shown \
             on the token page with --expires"
                .to_string(),
        ],
        ..TokenInfo::default()
    };
    match reply.status {
        200 => info.login = reply.json::<User>()?.username,
        // Authenticated (a bad token is 401) but without read:user:bitbucket, which git
        // does not need.
        403 => info.notes.push(
            "the token cannot read the account (no read:user:bitbucket scope), so helperd \
             could not learn its username; git does not need that scope"
                .to_string(),
        ),
        401 if !email.contains('@') => {
            return Err(reply.rejected_because(format!(
                "the token is invalid, expired or revoked, or {email:?} is not the Atlassian \
                 account email, which Bitbucket's API needs with an API token"
            )))
        }
        _ => return Err(reply.rejected()),
    }
    if let Some(header) = reply.header("x-oauth-scopes") {
        let scopes = oauth::split_scopes(header);
        info.missing_git_scopes = missing_git_scopes(&scopes);
        info.scopes = Some(scopes);
    }
    Ok(info)
}

/// API tokens name scopes `read:repository:bitbucket` / `write:repository:bitbucket` and git
/// needs both to fetch and push (Atlassian support: "you'll need to tick both
/// read:repository:bitbucket and write:repository:bitbucket",
/// https://community.atlassian.com/forums/Bitbucket-questions/Git-Access-with-API-Token/qaq-p/3057268);
/// app passwords and OAuth use `repository` / `repository:write`, where write implies read
/// (https://developer.atlassian.com/cloud/bitbucket/bitbucket-cloud-rest-api-scopes/).
fn missing_git_scopes(scopes: &[String]) -> Vec<String> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if scopes.iter().any(|s| s.ends_with(":bitbucket")) {
        ["read:repository:bitbucket", "write:repository:bitbucket"]
            .into_iter()
            .filter(|s| !has(s))
            .map(String::from)
            .collect()
    } else if has("repository:write") || has("repository:admin") {
        Vec::new()
    } else {
        vec!["repository:write".to_string()]
    }
}

#[cfg(test)]
mod tests;
