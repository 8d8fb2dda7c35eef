//! GitHub (github.com and GitHub Enterprise Server through `api_url`).
//!
//! - Introspection: `GET /user`. Classic scopes come in `X-OAuth-Scopes`, the expiry in
//!   `GitHub-Authentication-Token-Expiration`, the kind from the token's prefix.
//! - Revocation: `POST /credentials/revoke` (no authentication) for PATs and OAuth/App user
//!   tokens; `DELETE /installation/token` for installation tokens.
//! - Device flow and refresh on the web host (`/login/device/code`,
//!   `/login/oauth/access_token`), see [`super::oauth`].

use reqwest::header::HeaderName;
use reqwest::Method;
use serde::Deserialize;

use super::descriptor::{
    Api, ApiUser, DeviceFlow, OAuth, ProviderDescriptor, Revoke, RevokeCall, TokenPage,
};
use super::http::{Auth, Http, Reply};
use super::oauth;
use super::{Provider, ProviderError, RevokeOutcome, Target, TokenInfo};
use crate::secret::Secret;
use crate::timefmt;

/// GitHub, as the registry knows it.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::GitHub,
    name: "github",
    title: "GitHub",
    host_guesses: &["github.com"],
    // GitHub documents `x-access-token` as the username for token-only HTTPS git access
    // ("Authenticating as a GitHub App installation":
    // `git clone https://x-access-token:TOKEN@github.com/owner/repo.git`); a PAT is
    // accepted with any username.
    default_username: Some("x-access-token"),
    // docs.github.com "Managing your personal access tokens": Settings > Developer
    // settings > Personal access tokens, at /settings/tokens (the same path on GitHub
    // Enterprise Server).
    token_page: Some(TokenPage::OnServer("/settings/tokens")),
    // https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens
    git_scopes: "classic token: repo; fine-grained token: Contents read and write",
    api: Some(Api {
        base: api_base,
        user: ApiUser::Username,
        introspect: |http, target, _user, token| Box::pin(introspect(http, target, token)),
        rotate: None,
    }),
    revoke: Revoke::Api(RevokeCall(|http, target, token| {
        Box::pin(revoke(http, target, token))
    })),
    // Device flow and refresh on the web host:
    // https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
    // (step 1 `/login/device/code`, step 3 `/login/oauth/access_token`);
    // https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens :
    // `client_secret` is required "unless the user access token was generated with the
    // device flow", which is how helperd gets them.
    oauth: OAuth::Device(DeviceFlow {
        device_path: "/login/device/code",
        token_path: "/login/oauth/access_token",
        // https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps
        scopes: &["repo"],
        // GitHub answers 404 for a client id it does not know.
        not_found: super::oauth_not_registered,
    }),
    // https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation
    github_apps: true,
};

/// https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api
/// (github.com: api.github.com; GitHub Enterprise Server: http(s)://HOSTNAME/api/v3).
fn api_base(web: &str) -> String {
    if web == "https://github.com" {
        "https://api.github.com".to_string()
    } else {
        format!("{web}/api/v3")
    }
}

/// https://docs.github.com/en/rest/about-the-rest-api/api-versions : pin the version so a
/// future default cannot change the answers this code reads.
const API_VERSION: &str = "2022-11-28";

/// What a token's prefix says it is, per
/// https://github.blog/changelog/2021-03-31-authentication-token-format-updates-are-generally-available/
/// (ghp_ PAT, gho_ OAuth app, ghu_ GitHub App user-to-server, ghs_ GitHub App
/// server-to-server, ghr_ refresh) and github_pat_ for fine-grained PATs
/// (https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Classic,
    FineGrained,
    OAuthApp,
    AppUser,
    Installation,
    Unknown,
}

impl Kind {
    fn of(token: &str) -> Kind {
        if token.starts_with("github_pat_") {
            Kind::FineGrained
        } else if token.starts_with("ghp_") {
            Kind::Classic
        } else if token.starts_with("gho_") {
            Kind::OAuthApp
        } else if token.starts_with("ghu_") {
            Kind::AppUser
        } else if token.starts_with("ghs_") {
            Kind::Installation
        } else {
            Kind::Unknown
        }
    }

    fn name(self) -> Option<&'static str> {
        match self {
            Kind::Classic => Some("classic PAT"),
            Kind::FineGrained => Some("fine-grained PAT"),
            Kind::OAuthApp => Some("OAuth app token"),
            Kind::AppUser => Some("GitHub App user token"),
            Kind::Installation => Some("installation token"),
            Kind::Unknown => None,
        }
    }

    /// Tokens whose access is fine-grained permissions, not scopes: GitHub cannot report
    /// them, and `X-OAuth-Scopes` (empty or absent) would be misleading.
    fn has_permissions_not_scopes(self) -> bool {
        matches!(self, Kind::FineGrained | Kind::AppUser | Kind::Installation)
    }
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
}

fn api_request(
    http: &Http,
    method: Method,
    url: &str,
    auth: Auth<'_>,
) -> Result<reqwest::RequestBuilder, ProviderError> {
    // https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api
    // recommends this media type.
    Ok(http
        .request_accepting(method, url, auth, "application/vnd.github+json")?
        .header(HeaderName::from_static("x-github-api-version"), API_VERSION))
}

/// `GET {api}/user` with `Authorization: Bearer`, which GitHub accepts for every token
/// type (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api).
pub(super) async fn introspect(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<TokenInfo, ProviderError> {
    let kind = Kind::of(token.expose());
    let url = format!("{}/user", target.api_base);
    let reply = http
        .send(api_request(http, Method::GET, &url, Auth::Bearer(token))?)
        .await?;
    let mut info = TokenInfo {
        kind: kind.name().map(String::from),
        ..TokenInfo::default()
    };
    match reply.status {
        200 => info.login = reply.json::<User>()?.login,
        // An installation token acts as an app, not a user: `/user` answers 403 "Resource
        // not accessible by integration", yet the token authenticated (a bad one is 401).
        403 if kind == Kind::Installation => info
            .notes
            .push("an installation token acts as an app and has no user login".to_string()),
        // "Authenticating with invalid credentials will initially return 401"
        // (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api#failed-login-limit).
        _ => return Err(reply.rejected()),
    }
    read_scopes(&reply, kind, &mut info);
    read_expiry(&reply, &mut info);
    Ok(info)
}

/// Classic scopes from `X-OAuth-Scopes`
/// (https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps#checking-granted-scopes).
/// git needs `repo` for private repositories ("Grants full access to public and private
/// repositories"); `public_repo` covers public ones only.
fn read_scopes(reply: &Reply, kind: Kind, info: &mut TokenInfo) {
    if kind.has_permissions_not_scopes() {
        info.notes.push(
            "fine-grained tokens cannot report their permissions; helperd does not guess \
             (git needs Contents: read and write on the repositories)"
                .to_string(),
        );
        return;
    }
    let Some(header) = reply.header("x-oauth-scopes") else {
        info.notes
            .push("GitHub did not report the token's scopes; helperd does not guess".to_string());
        return;
    };
    let scopes = oauth::split_scopes(header);
    if !scopes.iter().any(|s| s == "repo") {
        info.missing_git_scopes.push("repo".to_string());
        if scopes.iter().any(|s| s == "public_repo") {
            info.notes
                .push("public_repo lets git reach public repositories only".to_string());
        }
    }
    info.scopes = Some(scopes);
}

/// `GitHub-Authentication-Token-Expiration`, sent with every API answer to a request made
/// with a token that expires ("The time and date of expiration will be returned in the
/// response header when a PAT with expiration is used",
/// https://github.com/github/roadmap/issues/203); no header means no expiry.
fn read_expiry(reply: &Reply, info: &mut TokenInfo) {
    let Some(value) = reply.header("github-authentication-token-expiration") else {
        return;
    };
    match parse_expiration(value) {
        Some(at) => info.expires = Some(at),
        // The value is a date the server wrote: safe to show, and the user needs it.
        None => info.notes.push(format!(
            "GitHub reported an expiry helperd cannot read ({value:?}); enter it with --expires"
        )),
    }
}

/// `2026-04-01 12:00:00 UTC` (github.com) or `2026-04-01 12:00:00 +0200` (the form
/// GitHub Enterprise Server sends with the server's offset), to Unix seconds.
fn parse_expiration(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let (date, clock, zone) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let offset = match zone {
        "UTC" | "GMT" | "Z" => "Z".to_string(),
        _ => {
            let (sign, digits) = zone.split_at_checked(1)?;
            let digits = digits.replace(':', "");
            if !matches!(sign, "+" | "-")
                || digits.len() != 4
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            format!("{sign}{}:{}", &digits[..2], &digits[2..])
        }
    };
    timefmt::parse_expiry(&format!("{date}T{clock}{offset}")).ok()
}

#[derive(serde::Serialize)]
struct RevokeBody<'a> {
    credentials: [&'a str; 1],
}

/// Revokes at GitHub. See the module comment for the two endpoints.
pub(super) async fn revoke(
    http: &Http,
    target: &Target,
    token: &Secret,
) -> Result<RevokeOutcome, ProviderError> {
    let not_supported = |reason: &str| RevokeOutcome::NotSupported {
        reason: reason.to_string(),
        token_page: target.token_page(),
    };
    match Kind::of(token.expose()) {
        // https://docs.github.com/en/rest/apps/installations#revoke-an-installation-access-token
        Kind::Installation => app::revoke_installation_token(http, target, token)
            .await
            .map(|()| RevokeOutcome::Revoked),
        Kind::Unknown => Ok(not_supported(
            "GitHub's revocation API accepts only tokens in the current formats (ghp_, \
             github_pat_, gho_, ghu_); revoke this one on the token page",
        )),
        _ => {
            // https://docs.github.com/en/rest/credentials/revoke#revoke-a-list-of-credentials :
            // "Any authenticated requests will return a 403", so no Authorization; 202
            // Accepted; the owner is notified. The token travels in the body only.
            let url = format!("{}/credentials/revoke", target.api_base);
            let body = RevokeBody {
                credentials: [token.expose()],
            };
            let request = api_request(http, Method::POST, &url, Auth::None)?.json(&body);
            let reply = http.send(request).await?;
            match reply.status {
                200..=299 => Ok(RevokeOutcome::Revoked),
                // GitHub Enterprise Servers older than the endpoint answer 404.
                404 => Ok(not_supported(
                    "this GitHub server does not offer the credential revocation API",
                )),
                422 => Err(reply.rejected_because(
                    "GitHub refused the revocation (validation failed, or the hourly limit \
                     of 60 revocations was reached); revoke it on the token page",
                )),
                _ => Err(reply.rejected()),
            }
        }
    }
}

pub(super) mod app;

#[cfg(test)]
mod tests;
