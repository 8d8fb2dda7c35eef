//! Bitbucket Data Center (formerly Bitbucket Server).
//!
//! HTTP access tokens (https://confluence.atlassian.com/bitbucketserver091/http-access-tokens-1443038354.html)
//! are sent as Bearer: personal tokens accept Basic too, but project and repository tokens
//! are Bearer-only ("you can use the project and repository level token only with Bearer
//! authentication"). A request proves the token works; Bitbucket names the account it acts
//! as in the `X-AUSERNAME` response header.
//!
//! No endpoint says which token made a request, and tokens are listed by account
//! (`GET /rest/access-tokens/latest/users/{userSlug}`, the "fetch the list of all tokens"
//! step of https://confluence.atlassian.com/display/BitbucketServerKB/How+to+renew+personal+access+tokens+via+REST+API%27s+in+Bitbucket+Server).
//! When the account has exactly one token, the request was made with it, and its
//! `permissions` and expiry are reported; otherwise helperd says it cannot tell.
//! A token cannot create, change or delete tokens ("You can't use a token to perform
//! changes on behalf of a user"), so revocation is on the token page.

use reqwest::Method;
use serde::Deserialize;

use super::descriptor::{self, Api, ApiUser, OAuth, ProviderDescriptor, Revoke};
use super::http::{Auth, Http};
use super::{Provider, ProviderError, Target, TokenInfo};
use crate::secret::Secret;
use helperd_wire::url::percent_encode_segment;

/// Bitbucket Data Center, as the registry knows it.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::BitbucketServer,
    name: "bitbucket-server",
    title: "Bitbucket Data Center",
    // Self-hosted only: any host name.
    host_guesses: &[],
    // HTTP access tokens authenticate as the account: git must send the account's
    // username (confluence "Managing HTTP access tokens").
    default_username: None,
    // Manage account > HTTP access tokens (confluence "Managing HTTP access tokens").
    token_page: Some(descriptor::TokenPage::OnServer(
        "/plugins/servlet/access-tokens/manage",
    )),
    // https://confluence.atlassian.com/bitbucketserver/http-access-tokens-939515499.html
    git_scopes: "repository write (REPO_WRITE) or project write",
    api: Some(Api {
        // https://developer.atlassian.com/server/bitbucket/rest/ : `/rest/api/latest/...`
        // and `/rest/access-tokens/latest/...` share the `/rest` root.
        base: |web| format!("{web}/rest"),
        user: ApiUser::Username,
        introspect: |http, target, user, token| Box::pin(introspect(http, target, user, token)),
        rotate: None,
    }),
    // Tokens cannot delete tokens (module comment): the user revokes it on the page.
    revoke: Revoke::ByHand {
        reason: "Bitbucket Data Center does not let a token revoke tokens; revoke it under \
                 Manage account > HTTP access tokens (project and repository tokens: in \
                 their settings)",
    },
    oauth: OAuth::Unavailable {
        why: "Bitbucket Data Center offers no OAuth device flow; use an HTTP access token",
    },
    github_apps: false,
};

/// `GET /rest/api/latest/users/{userSlug}`.
#[derive(Deserialize)]
struct User {
    name: Option<String>,
    slug: Option<String>,
}

/// A page of `GET /rest/access-tokens/latest/users/{userSlug}`.
#[derive(Deserialize)]
struct TokenPage {
    #[serde(default)]
    values: Vec<AccessToken>,
    #[serde(default = "yes", rename = "isLastPage")]
    is_last_page: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessToken {
    #[serde(default)]
    permissions: Vec<String>,
    /// Milliseconds since the epoch.
    created_date: Option<u64>,
    expiry_days: Option<u64>,
    /// Milliseconds since the epoch, when the server sends it.
    expiry_date: Option<u64>,
}

pub(super) async fn introspect(
    http: &Http,
    target: &Target,
    username: Option<&str>,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    // Any authenticated endpoint proves the token: a bad one is 401 everywhere. The user's
    // own record also gives the slug the token list is filed under.
    let url = match username {
        Some(name) => format!(
            "{}/api/latest/users/{}",
            target.api_base,
            percent_encode_segment(name)
        ),
        None => format!("{}/api/latest/projects?limit=1", target.api_base),
    };
    let reply = http
        .send(http.request(Method::GET, &url, Auth::Bearer(token))?)
        .await?;
    if reply.status != 200 {
        return Err(reply.rejected());
    }
    let acting = reply.header("x-ausername").map(String::from);
    let user: Option<User> = match username {
        Some(_) => Some(reply.json()?),
        None => None,
    };
    let mut info = TokenInfo {
        kind: Some("HTTP access token".to_string()),
        login: acting.clone(),
        ..TokenInfo::default()
    };
    let acting_is_user = match (&acting, &user) {
        (Some(acting), Some(user)) => user
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(acting)),
        _ => false,
    };
    if !acting_is_user {
        info.notes.push(cannot_tell());
        return Ok(info);
    }
    // acting_is_user needs a user.
    let slug = user.and_then(|u| u.slug.or(u.name)).unwrap_or_default();
    let list_url = format!(
        "{}/access-tokens/latest/users/{}",
        target.api_base,
        percent_encode_segment(&slug)
    );
    let list = http
        .send(http.request(Method::GET, &list_url, Auth::Bearer(token))?)
        .await?;
    if list.status != 200 {
        info.notes.push(format!(
            "Bitbucket did not list the account's tokens (HTTP {}); {}",
            list.status,
            cannot_tell()
        ));
        return Ok(info);
    }
    let page: TokenPage = list.json()?;
    match &page.values[..] {
        [only] if page.is_last_page => describe(only, &mut info),
        values => info.notes.push(format!(
            "the account has {}{} HTTP access tokens; {}",
            values.len(),
            if page.is_last_page { "" } else { "+" },
            cannot_tell()
        )),
    }
    Ok(info)
}

fn cannot_tell() -> String {
    "Bitbucket does not say which token made a request, so helperd cannot report its \
     permissions or expiry; see the token page and enter the expiry with --expires"
        .to_string()
}

/// The one token of the account: its permissions as scopes, and its expiry.
fn describe(token: &AccessToken, info: &mut TokenInfo) {
    info.notes
        .push("the account has one HTTP access token, so it is this one".to_string());
    let expires = token.expiry_date.map(|ms| ms / 1000).or_else(|| {
        let created = token.created_date? / 1000;
        Some(created.saturating_add(token.expiry_days?.saturating_mul(86_400)))
    });
    match expires {
        Some(at) => info.expires = Some(at),
        None => info.notes.push("the token does not expire".to_string()),
    }
    // "Repository write: push, pull, and clone repositories"; project write or admin
    // implies repository write ("A token's repository permission must be as high as its
    // project permission"), https://confluence.atlassian.com/bitbucketserver0717/personal-access-tokens-1087535496.html
    let can_push = token.permissions.iter().any(|p| {
        matches!(
            p.as_str(),
            "REPO_WRITE" | "REPO_ADMIN" | "PROJECT_WRITE" | "PROJECT_ADMIN"
        )
    });
    if !can_push {
        info.missing_git_scopes.push("REPO_WRITE".to_string());
    }
    info.scopes = Some(token.permissions.clone());
}

#[cfg(test)]
mod tests;
