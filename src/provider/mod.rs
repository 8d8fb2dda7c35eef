//! Provider APIs (DESIGN.md §3, issue 5): what a forge says about a token (does it work,
//! its scopes, its expiry), revocation where the API allows it, and the OAuth device flow
//! with refresh.
//!
//! # Providers as data
//!
//! Each forge is one file (`github.rs`, `gitlab.rs`, `bitbucket.rs`, `bitbucket_server.rs`,
//! `gitea.rs`, `generic.rs`) holding one [`ProviderDescriptor`] named `DESCRIPTOR`: its
//! config name, host guesses, default username, token page, the scopes git needs, API base,
//! token introspection, revocation and OAuth endpoints, with comments citing the
//! documentation each fact relies on. The [`registry`] maps a [`Provider`] to its
//! descriptor; `config`, `decision`, `ctl/`, `daemon/` and [`ProviderClient`] ask it and
//! never `match` on the provider. `registry::tests` fails when a descriptor lacks a fact.
//!
//! Adding a forge, e.g. Azure DevOps, is one file and one registry line (plus the config
//! name, which users write):
//!
//! 1. `provider/azure_devops.rs` with `pub(super) const DESCRIPTOR: ProviderDescriptor`:
//!    name `azure-devops`, host guess `dev.azure.com`, its token page (User settings >
//!    Personal access tokens), the git scopes ("Code: Read & write"), an
//!    [`descriptor::Api`] whose `introspect` asks its REST API about a token (or `api:
//!    None` at first), `Revoke::ByHand` and `OAuth::Unavailable` until helperd supports
//!    more, each with a comment citing Microsoft's documentation;
//! 2. the variant `Provider::AzureDevOps` in `kind.rs` and in `Provider::ALL`;
//! 3. `Provider::AzureDevOps => &azure_devops::DESCRIPTOR` in [`registry::descriptor`]
//!    (the compiler points at it, and at the completeness test's list).
//!
//! # The client
//!
//! One [`ProviderClient`] (reqwest over rustls, see [`http`]) serves every provider; a
//! [`Target`] says where the provider of a runtime lives. Nothing here logs, no error
//! message contains a secret, and secrets travel as [`Secret`]s.
//!
//! The tests run every provider against a local fake server ([`fake`]) that answers what
//! the documentation says the real hosts answer: the real hosts cannot be reached from CI.

mod bitbucket;
mod bitbucket_server;
pub mod descriptor;
mod error;
#[cfg(test)]
mod fake;
mod generic;
mod gitea;
mod github;
mod gitlab;
mod http;
mod kind;
mod oauth;
pub mod registry;
mod types;

pub use descriptor::ProviderDescriptor;
pub use error::ProviderError;
pub use github::app::{
    check_team_key, AppInfo, AppKey, Installation, InstallationToken, KeyError, Owner,
    JWT_BACKDATE_SECS, JWT_LIFETIME_SECS, LOCAL_KEY_FIX,
};
pub use kind::Provider;
pub use registry::descriptor;
pub use types::{DeviceCode, DevicePoll, OAuthTokens, RevokeOutcome, TokenInfo};

use crate::config::RuntimeConfig;
use crate::policy::{OAuthApp, Policy};
use crate::secret::Secret;
use descriptor::{OAuth, Revoke, RevokeCall};

/// A token issued by a rotation.
#[derive(Debug)]
pub struct RotatedToken {
    /// The new token; the old one is revoked.
    pub token: Secret,
    /// Unix seconds.
    pub expires: Option<u64>,
    /// The new token's scopes, as the host names them.
    pub scopes: Vec<String>,
}

/// What a rotation asks for: which self-rotate endpoint, and the new expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotateRequest {
    /// The token's kind (GitLab: personal, project or group access token).
    pub via: crate::config::RotateVia,
    /// The new token's expiry (Unix seconds, sent as its UTC date); `None`: the host's
    /// default (GitLab: one week).
    pub expires_at: Option<u64>,
}

/// Where a runtime's provider lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The forge there; its descriptor says how to talk to it.
    pub provider: Provider,
    /// The web server, e.g. `https://github.com`: OAuth endpoints and token pages.
    pub web_base: String,
    /// The REST API, without a trailing `/`: `https://api.github.com`,
    /// `https://host/api/v3` (GitHub Enterprise Server), `https://host/api/v4` (GitLab),
    /// `https://api.bitbucket.org/2.0`, `https://host/rest` (Bitbucket Data Center),
    /// `https://host/api/v1` (Gitea, Forgejo).
    pub api_base: String,
}

impl Target {
    /// The provider of `rt` at the base URL of its first URL prefix; the runtime's
    /// `api_url`, when set, replaces the default API location (needed for a server under a
    /// path, e.g. Bitbucket Data Center at `https://host/bitbucket`).
    pub fn for_runtime(rt: &RuntimeConfig) -> Target {
        // `config` guarantees at least one prefix.
        let web_base = rt.urls.first().map(|u| u.base_url()).unwrap_or_default();
        let api_base = rt
            .api_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| descriptor(rt.provider).api_base(&web_base));
        Target {
            provider: rt.provider,
            web_base,
            api_base,
        }
    }

    /// The page where the user manages tokens, for messages.
    pub fn token_page(&self) -> Option<String> {
        descriptor(self.provider).token_page(&self.web_base)
    }

    /// `name[:port]` of the web host, for messages and the policy's OAuth apps.
    pub fn web_host(&self) -> String {
        let rest = helperd_wire::url::split_userinfo(&self.web_base)
            .map_or(self.web_base.as_str(), |(_, _, rest)| rest);
        rest.split('/').next().unwrap_or(rest).to_string()
    }

    /// A wildcard prefix (`https://*.example.com`) names no server to ask.
    fn check(&self) -> Result<(), ProviderError> {
        if self.web_base.contains('*') || self.api_base.contains('*') {
            return Err(ProviderError::Unsupported {
                what: format!(
                    "{} is a wildcard and names no single server to ask; \
                     set the runtime's api_url, or pass --offline",
                    self.web_base
                ),
            });
        }
        Ok(())
    }
}

/// The OAuth client id to use for `rt`: the runtime's `oauth_client_id`.
///
/// There is no built-in default, because no provider publishes a public client id for
/// tools such as helperd: GitHub and GitLab expect each tool (or each admin) to register its
/// own OAuth app; Gitea and Forgejo pre-register applications only for two named helpers,
/// Git Credential Manager and git-credential-oauth
/// (https://forgejo.org/docs/latest/admin/oauth2-provider/), whose ids belong to those
/// tools; Bitbucket needs a consumer registered per workspace. `None` therefore means
/// "the OAuth app is not registered for this host" ([`ProviderError::OAuthNotRegistered`]).
pub fn oauth_client_id(rt: &RuntimeConfig) -> Option<String> {
    rt.oauth_client_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(String::from)
}

/// Where the OAuth app that logs in to a runtime is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthAppSource<'p> {
    /// The runtime's own `oauth_client_id`.
    Runtime(String),
    /// The app the administrator registered for the runtime's host in the system policy.
    Policy(&'p OAuthApp),
}

/// The OAuth app for `rt`: its own client id, else the policy's app for its host; `None`
/// when neither is registered ([`oauth_not_registered`]).
pub fn oauth_app<'p>(rt: &RuntimeConfig, policy: Option<&'p Policy>) -> Option<OAuthAppSource<'p>> {
    if let Some(client_id) = oauth_client_id(rt) {
        return Some(OAuthAppSource::Runtime(client_id));
    }
    policy?
        .oauth_app(&Target::for_runtime(rt).web_host())
        .map(OAuthAppSource::Policy)
}

/// The error for a runtime without an OAuth client id, naming its host.
pub fn oauth_not_registered(target: &Target) -> ProviderError {
    ProviderError::OAuthNotRegistered {
        host: target.web_host(),
    }
}

/// Talks to the providers. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct ProviderClient {
    http: http::Http,
}

impl ProviderClient {
    /// A client that honours the proxy environment variables (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY`), connects within 10 s, finishes each request within 30 s,
    /// and sends `User-Agent: helperd/<version>`.
    pub fn new() -> Result<ProviderClient, ProviderError> {
        Ok(ProviderClient {
            http: http::Http::new(true)?,
        })
    }

    /// For the tests: never proxied, whatever the environment says, so that a developer's
    /// `HTTPS_PROXY` cannot send the fake servers' traffic elsewhere.
    #[cfg(test)]
    pub(crate) fn unproxied() -> ProviderClient {
        ProviderClient {
            // Only fails when TLS cannot be set up, which the tests would report anyway.
            http: http::Http::new(false).expect("the HTTP client builds without a proxy"),
        }
    }

    /// What the host says about `token`: whether it works, its scopes, its expiry.
    ///
    /// `username` is used where the provider's API needs one: Bitbucket Cloud (the
    /// Atlassian account **email**, which its REST API takes with an API token, whereas git
    /// takes the Bitbucket username) and Bitbucket Data Center (the account, to look up its
    /// tokens). A token the host refuses is [`ProviderError::Rejected`]; scopes git needs
    /// that the token lacks are listed in [`TokenInfo::missing_git_scopes`] rather than
    /// being an error, so the caller can offer `--force`.
    pub async fn introspect(
        &self,
        target: &Target,
        username: Option<&str>,
        token: &Secret,
    ) -> Result<TokenInfo, ProviderError> {
        target.check()?;
        let forge = descriptor(target.provider);
        match &forge.api {
            Some(api) => (api.introspect)(&self.http, target, username, token).await,
            None => Err(no_api(forge, "check a token")),
        }
    }

    /// Revokes `token` at the host where its API allows it; otherwise
    /// [`RevokeOutcome::NotSupported`] says why and where to do it by hand.
    pub async fn revoke(
        &self,
        target: &Target,
        token: &Secret,
    ) -> Result<RevokeOutcome, ProviderError> {
        target.check()?;
        match descriptor(target.provider).revoke {
            Revoke::Api(RevokeCall(revoke)) => revoke(&self.http, target, token).await,
            Revoke::ByHand { reason } => Ok(RevokeOutcome::NotSupported {
                reason: reason.to_string(),
                token_page: target.token_page(),
            }),
        }
    }

    /// Starts an OAuth device authorization grant (GitHub, GitLab). Show the user
    /// `verification_uri` and `user_code`, then call [`device_poll`](Self::device_poll)
    /// every `interval` seconds.
    pub async fn device_start(
        &self,
        target: &Target,
        client_id: &str,
        scopes: &[&str],
    ) -> Result<DeviceCode, ProviderError> {
        target.check()?;
        let flow = device_flow(target)?;
        let url = format!("{}{}", target.web_base, flow.device_path);
        let not_found = (flow.not_found)(target);
        oauth::device_start(&self.http, &url, client_id, scopes, not_found).await
    }

    /// One poll: [`DevicePoll::Pending`] (wait `interval`), [`DevicePoll::SlowDown`] (add
    /// 5 s to the interval, RFC 8628 §3.5), or the tokens.
    pub async fn device_poll(
        &self,
        target: &Target,
        client_id: &str,
        device_code: &Secret,
    ) -> Result<DevicePoll, ProviderError> {
        target.check()?;
        let flow = device_flow(target)?;
        let url = format!("{}{}", target.web_base, flow.token_path);
        oauth::device_poll(&self.http, &url, client_id, device_code).await
    }

    /// The page where the user approves a login with PKCE (Gitea, Forgejo, Codeberg): the
    /// authorization code flow for public clients, redirected to `redirect_uri` on the
    /// loopback interface (https://docs.gitea.com/development/oauth2-provider, RFC 7636,
    /// RFC 8252 §7.3).
    pub fn authorize_url(
        &self,
        target: &Target,
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
        state: &str,
    ) -> Result<String, ProviderError> {
        target.check()?;
        let flow = pkce_flow(target)?;
        let base = format!("{}{}", target.web_base, flow.authorize_path);
        let url = reqwest::Url::parse_with_params(
            &base,
            &[
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("response_type", "code"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("state", state),
            ],
        )
        .map_err(|e| ProviderError::Protocol {
            detail: format!("cannot build the login URL ({e})"),
        })?;
        Ok(url.to_string())
    }

    /// The tokens for the authorization code of a PKCE login (Gitea, Forgejo, Codeberg).
    pub async fn exchange_code(
        &self,
        target: &Target,
        client_id: &str,
        code: &Secret,
        verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ProviderError> {
        target.check()?;
        let flow = pkce_flow(target)?;
        let url = format!("{}{}", target.web_base, flow.token_path);
        oauth::exchange_code(&self.http, &url, client_id, code, verifier, redirect_uri).await
    }

    /// Rotates a GitLab token: the host revokes it and issues a new one with a new expiry.
    pub async fn rotate(
        &self,
        target: &Target,
        token: &Secret,
        request: &RotateRequest,
    ) -> Result<RotatedToken, ProviderError> {
        target.check()?;
        let forge = descriptor(target.provider);
        match forge.api.as_ref().and_then(|api| api.rotate) {
            Some(rotate) => rotate(&self.http, target, token, request).await,
            None => Err(ProviderError::Unsupported {
                what: format!(
                    "{} cannot rotate a token through its API; make a new token and run \
                     `helperctl renew`",
                    forge.title
                ),
            }),
        }
    }

    /// Exchanges a refresh token for new tokens (GitHub expiring user tokens, GitLab, and
    /// Gitea/Forgejo OAuth tokens). Keep the returned refresh token: the old one is spent.
    pub async fn refresh(
        &self,
        target: &Target,
        client_id: &str,
        refresh_token: &Secret,
    ) -> Result<OAuthTokens, ProviderError> {
        target.check()?;
        let forge = descriptor(target.provider);
        match forge.oauth.token_path() {
            Some(path) => {
                let url = format!("{}{path}", target.web_base);
                oauth::refresh(&self.http, &url, client_id, refresh_token).await
            }
            None => Err(ProviderError::Unsupported {
                what: format!(
                    "helperd does not log in to {} with OAuth, so it has no refresh token to \
                     use",
                    forge.title
                ),
            }),
        }
    }
}

impl ProviderClient {
    /// Fails unless the target's forge has GitHub Apps.
    fn apps(target: &Target) -> Result<(), ProviderError> {
        target.check()?;
        let forge = descriptor(target.provider);
        match forge.github_apps {
            true => Ok(()),
            false => Err(ProviderError::Unsupported {
                what: format!("{} has no GitHub Apps", forge.title),
            }),
        }
    }

    /// `GET /app` with the app's JWT: checks the key, learns the app's slug. `now`: the
    /// daemon's clock, to tell a skewed clock from a wrong key.
    pub async fn app_info(
        &self,
        target: &Target,
        jwt: &Secret,
        now: u64,
    ) -> Result<AppInfo, ProviderError> {
        Self::apps(target)?;
        github::app::about(&self.http, target, jwt, now).await
    }

    /// The app's installation on an account or repository.
    pub async fn find_installation(
        &self,
        target: &Target,
        jwt: &Secret,
        owner: &Owner<'_>,
        now: u64,
    ) -> Result<Installation, ProviderError> {
        Self::apps(target)?;
        github::app::find_installation(&self.http, target, jwt, owner, now).await
    }

    /// Mints an installation token, narrowed by `permissions` and `repositories`.
    pub async fn mint_installation_token(
        &self,
        target: &Target,
        jwt: &Secret,
        installation: u64,
        permissions: &std::collections::BTreeMap<String, String>,
        repositories: &[String],
        now: u64,
    ) -> Result<InstallationToken, ProviderError> {
        Self::apps(target)?;
        github::app::mint(
            &self.http,
            target,
            jwt,
            installation,
            permissions,
            repositories,
            now,
        )
        .await
    }

    /// Revokes an installation token (`DELETE /installation/token`).
    pub async fn revoke_installation_token(
        &self,
        target: &Target,
        token: &Secret,
    ) -> Result<(), ProviderError> {
        Self::apps(target)?;
        github::app::revoke_installation_token(&self.http, target, token).await
    }
}

/// The error for asking something of a forge whose API helperd does not know.
fn no_api(forge: &ProviderDescriptor, what: &str) -> ProviderError {
    ProviderError::Unsupported {
        what: format!(
            "helperd cannot {what} on {}: it knows no API there",
            forge.title
        ),
    }
}

/// The target's device login, or why it has none.
fn device_flow(target: &Target) -> Result<&'static descriptor::DeviceFlow, ProviderError> {
    match &descriptor(target.provider).oauth {
        OAuth::Device(flow) => Ok(flow),
        OAuth::BrowserPkce(_) => Err(ProviderError::Unsupported {
            what: format!(
                "{} has no OAuth device flow: it offers the authorization code flow with \
                 PKCE on a loopback redirect instead",
                descriptor(target.provider).title
            ),
        }),
        OAuth::Unavailable { why } => Err(ProviderError::Unsupported {
            what: why.to_string(),
        }),
    }
}

/// The target's browser login with PKCE, or why it has none.
fn pkce_flow(target: &Target) -> Result<&'static descriptor::PkceFlow, ProviderError> {
    match &descriptor(target.provider).oauth {
        OAuth::BrowserPkce(flow) => Ok(flow),
        OAuth::Device(_) => Err(ProviderError::Unsupported {
            what: format!(
                "{} logs in with the OAuth device flow, not the browser login (PKCE)",
                descriptor(target.provider).title
            ),
        }),
        OAuth::Unavailable { why } => Err(ProviderError::Unsupported {
            what: why.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
