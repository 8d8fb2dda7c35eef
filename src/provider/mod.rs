//! Provider APIs (DESIGN.md §3, issue 5): what a forge says about a token (does it work,
//! its scopes, its expiry), revocation where the API allows it, and the OAuth device flow
//! with refresh.
//!
//! One [`ProviderClient`] (reqwest over rustls, see [`http`]) serves every provider; a
//! [`Target`] says where the provider of a runtime lives. Each provider is one file whose
//! comments cite the documentation its behaviour relies on. Nothing here logs, no error
//! message contains a secret, and secrets travel as [`Secret`]s.
//!
//! The tests run every provider against a local fake server ([`fake`]) that answers what
//! the documentation says the real hosts answer: the real hosts cannot be reached from CI.

mod bitbucket;
mod bitbucket_server;
mod error;
#[cfg(test)]
mod fake;
mod gitea;
mod github;
mod gitlab;
mod http;
mod oauth;
mod types;

pub use error::ProviderError;
pub use types::{DeviceCode, DevicePoll, OAuthTokens, RevokeOutcome, TokenInfo};

use crate::config::{Provider, RuntimeConfig};
use crate::policy::{OAuthApp, Policy};
use crate::secret::Secret;

/// A token issued by a rotation.
#[derive(Debug)]
pub struct RotatedToken {
    pub token: Secret,
    /// Unix seconds.
    pub expires: Option<u64>,
    pub scopes: Vec<String>,
}

/// Where a runtime's provider lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
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
        // config.rs guarantees at least one prefix.
        let web_base = rt.urls.first().map(|u| u.base_url()).unwrap_or_default();
        let api_base = rt
            .api_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| default_api_base(rt.provider, &web_base));
        Target {
            provider: rt.provider,
            web_base,
            api_base,
        }
    }

    /// The page where the user manages tokens, for messages.
    pub fn token_page(&self) -> Option<String> {
        self.provider.token_page(&self.web_base)
    }

    /// The host part of the web base, for messages.
    /// `name[:port]` of the web host.
    pub fn web_host(&self) -> String {
        let rest = self
            .web_base
            .split_once("://")
            .map_or(self.web_base.as_str(), |(_, rest)| rest);
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

fn default_api_base(provider: Provider, web: &str) -> String {
    match provider {
        // https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api
        // (github.com: api.github.com; GitHub Enterprise Server: http(s)://HOSTNAME/api/v3).
        Provider::GitHub if web == "https://github.com" => "https://api.github.com".to_string(),
        Provider::GitHub => format!("{web}/api/v3"),
        // https://docs.gitlab.com/api/rest/ ("/api/v4" on every instance).
        Provider::GitLab => format!("{web}/api/v4"),
        // https://developer.atlassian.com/cloud/bitbucket/rest/intro/ : Bitbucket Cloud's
        // API has one home whatever the web prefix.
        Provider::Bitbucket => "https://api.bitbucket.org/2.0".to_string(),
        // https://developer.atlassian.com/server/bitbucket/rest/ : `/rest/api/latest/...`
        // and `/rest/access-tokens/latest/...` share the `/rest` root.
        Provider::BitbucketServer => format!("{web}/rest"),
        // https://docs.gitea.com/development/api-usage (the API lives at /api/v1).
        Provider::Gitea => format!("{web}/api/v1"),
        Provider::Generic => web.to_string(),
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
        match target.provider {
            Provider::GitHub => github::introspect(&self.http, target, token).await,
            Provider::GitLab => gitlab::introspect(&self.http, target, token).await,
            Provider::Bitbucket => bitbucket::introspect(&self.http, target, username, token).await,
            Provider::BitbucketServer => {
                bitbucket_server::introspect(&self.http, target, username, token).await
            }
            Provider::Gitea => gitea::introspect(&self.http, target, token).await,
            Provider::Generic => Err(generic("check a token")),
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
        match target.provider {
            Provider::GitHub => github::revoke(&self.http, target, token).await,
            Provider::GitLab => gitlab::revoke(&self.http, target, token).await,
            Provider::Bitbucket => Ok(bitbucket::revoke(target)),
            Provider::BitbucketServer => Ok(bitbucket_server::revoke(target)),
            Provider::Gitea => Ok(gitea::revoke(target)),
            Provider::Generic => Ok(RevokeOutcome::NotSupported {
                reason: "a generic server has no API helperd knows; revoke the token where \
                         it was created"
                    .to_string(),
                token_page: None,
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
        match target.provider {
            Provider::GitHub => github::device_start(&self.http, target, client_id, scopes).await,
            Provider::GitLab => gitlab::device_start(&self.http, target, client_id, scopes).await,
            Provider::Bitbucket => Err(bitbucket::no_device_flow()),
            Provider::BitbucketServer => Err(bitbucket_server::no_device_flow()),
            Provider::Gitea => Err(gitea::no_device_flow()),
            Provider::Generic => Err(generic("log in with OAuth")),
        }
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
        match target.provider {
            Provider::GitHub => {
                github::device_poll(&self.http, target, client_id, device_code).await
            }
            Provider::GitLab => {
                gitlab::device_poll(&self.http, target, client_id, device_code).await
            }
            Provider::Bitbucket => Err(bitbucket::no_device_flow()),
            Provider::BitbucketServer => Err(bitbucket_server::no_device_flow()),
            Provider::Gitea => Err(gitea::no_device_flow()),
            Provider::Generic => Err(generic("log in with OAuth")),
        }
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
        match target.provider {
            Provider::Gitea => {
                let base = format!("{}/login/oauth/authorize", target.web_base);
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
            _ => Err(ProviderError::Unsupported {
                what: "the browser login (PKCE) is for Gitea, Forgejo and Codeberg; GitHub \
                       and GitLab use the device flow"
                    .into(),
            }),
        }
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
        match target.provider {
            Provider::Gitea => {
                let url = format!("{}/login/oauth/access_token", target.web_base);
                oauth::exchange_code(&self.http, &url, client_id, code, verifier, redirect_uri)
                    .await
            }
            _ => Err(ProviderError::Unsupported {
                what: "the browser login (PKCE) is for Gitea, Forgejo and Codeberg".into(),
            }),
        }
    }

    /// Rotates a GitLab token: the host revokes it and issues a new one with a new expiry.
    pub async fn rotate(
        &self,
        target: &Target,
        token: &Secret,
    ) -> Result<RotatedToken, ProviderError> {
        target.check()?;
        match target.provider {
            Provider::GitLab => gitlab::rotate(&self.http, target, token).await,
            _ => Err(ProviderError::Unsupported {
                what: "only GitLab can rotate a token through its API; make a new token and \
                       run `helperctl renew`"
                    .into(),
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
        match target.provider {
            Provider::GitHub => github::refresh(&self.http, target, client_id, refresh_token).await,
            Provider::GitLab => gitlab::refresh(&self.http, target, client_id, refresh_token).await,
            Provider::Gitea => gitea::refresh(&self.http, target, client_id, refresh_token).await,
            Provider::Bitbucket | Provider::BitbucketServer => Err(ProviderError::Unsupported {
                what: "helperd does not log in to Bitbucket with OAuth, so it has no refresh \
                       token to use"
                    .to_string(),
            }),
            Provider::Generic => Err(generic("refresh an OAuth token")),
        }
    }
}

fn generic(what: &str) -> ProviderError {
    ProviderError::Unsupported {
        what: format!("helperd cannot {what} on a generic server: it knows no API there"),
    }
}

#[cfg(test)]
mod tests;
