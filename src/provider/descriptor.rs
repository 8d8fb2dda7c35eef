//! What helperd knows about one forge, as data: the [`ProviderDescriptor`] each forge's file
//! defines once, and that [`registry`](super::registry) hands to every caller.
//!
//! Facts are plain values; where forges behave differently (reading a token's scopes,
//! revoking it), the descriptor holds a function of the forge's file. Something a forge
//! lacks is an explicit `None` or a variant that says why, never a missing match arm.

use std::future::Future;
use std::pin::Pin;

use super::http::Http;
use super::{Provider, ProviderError, RotatedToken, Target, TokenInfo};
use crate::secret::Secret;

/// Everything helperd knows about one forge. One per forge, in its own file
/// (`provider/github.rs`: `DESCRIPTOR`), reached through
/// [`registry::descriptor`](super::registry::descriptor).
#[derive(Debug)]
pub struct ProviderDescriptor {
    /// The provider described; the registry's test checks each descriptor is filed under
    /// its own provider.
    pub provider: Provider,
    /// The name in `config.toml`, the policy and on the command line (`github`). Users
    /// write it: it never changes.
    pub name: &'static str,
    /// The forge as messages name it (`GitHub`, `Bitbucket Data Center`).
    pub title: &'static str,
    /// Public hosts that are certainly this forge, lower-case, from which `helperctl
    /// runtime add` guesses the provider of a URL. Empty: never guessed (self-hosted
    /// servers have any name).
    pub host_guesses: &'static [&'static str],
    /// The username git sends with a token when the runtime names none, per the forge's
    /// documented convention; `None` where the account's own username is needed.
    pub default_username: Option<&'static str>,
    /// Where a user creates a token; `None` only where no page is known (a generic server).
    pub token_page: Option<TokenPage>,
    /// The scopes git needs, as the user would tick them on the token page.
    pub git_scopes: &'static str,
    /// The forge's REST API; `None` for a server whose API helperd does not know, which it
    /// then never asks anything.
    pub api: Option<Api>,
    /// Whether helperd can revoke a token there, or where the user does it by hand.
    pub revoke: Revoke,
    /// How a user logs in with OAuth there, if at all.
    pub oauth: OAuth,
    /// Whether runtimes there may hold a GitHub App (installation tokens minted by the
    /// daemon, DESIGN.md §13) instead of a token: GitHub and GitHub Enterprise Server.
    pub github_apps: bool,
}

impl ProviderDescriptor {
    /// The token page for a server at `base_url` (`https://github.com`); `None` for a
    /// wildcard base URL, which names no single server, or where no page is known.
    pub fn token_page(&self, base_url: &str) -> Option<String> {
        let base = base_url.trim_end_matches('/');
        if base.contains('*') {
            return None;
        }
        match self.token_page? {
            TokenPage::OnServer(path) => Some(format!("{base}{path}")),
            TokenPage::Elsewhere(url) => Some(url.to_string()),
        }
    }

    /// The REST API's root for a web server at `web_base` (no trailing `/`); the web base
    /// itself where the API is unknown (nothing asks it then: see [`ProviderDescriptor::api`]).
    pub fn api_base(&self, web_base: &str) -> String {
        match &self.api {
            Some(api) => (api.base)(web_base),
            None => web_base.to_string(),
        }
    }
}

/// Where a forge's token page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPage {
    /// A path on the server itself, appended to its base URL (`/settings/tokens`).
    OnServer(&'static str),
    /// A page elsewhere, the same for every server (Bitbucket Cloud's tokens belong to the
    /// Atlassian account).
    Elsewhere(&'static str),
}

/// Who a token is checked as at the forge's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiUser {
    /// The username git sends (configured, else [`ProviderDescriptor::default_username`]).
    Username,
    /// The account's email (the runtime's `email`): Bitbucket Cloud's REST API takes an API
    /// token with it, whereas git takes it with the username.
    Email,
}

/// A future an API function returns: boxed so that every forge's function has one type
/// and fits in a descriptor.
pub(crate) type ApiFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// Asks the forge about a token: `(http, target, api user, token)`.
pub(crate) type IntrospectFn =
    for<'a> fn(&'a Http, &'a Target, Option<&'a str>, &'a Secret) -> ApiFuture<'a, TokenInfo>;

/// Revokes a token through the forge's API.
pub(crate) type RevokeFn =
    for<'a> fn(&'a Http, &'a Target, &'a Secret) -> ApiFuture<'a, super::RevokeOutcome>;

/// Has the forge replace a token with a new one (and revoke the old).
pub(crate) type RotateFn = for<'a> fn(
    &'a Http,
    &'a Target,
    &'a Secret,
    &'a super::RotateRequest,
) -> ApiFuture<'a, RotatedToken>;

/// A forge's REST API.
#[derive(Debug)]
pub struct Api {
    /// The API root for a web server at a base URL without trailing `/`; a runtime's
    /// `api_url` replaces it.
    pub base: fn(&str) -> String,
    /// Who a token is checked as.
    pub user: ApiUser,
    /// What the forge says about a token: whether it works, its scopes, its expiry.
    pub(crate) introspect: IntrospectFn,
    /// Token rotation through the API, where the forge offers it.
    pub(crate) rotate: Option<RotateFn>,
}

/// The forge file's function that revokes a token through its API (wrapped: only
/// [`ProviderClient`](super::ProviderClient) calls it).
#[derive(Debug, Clone, Copy)]
pub struct RevokeCall(pub(crate) RevokeFn);

/// Whether helperd can revoke a token at a forge.
#[derive(Debug)]
pub enum Revoke {
    /// Through the forge's API.
    Api(RevokeCall),
    /// Only by hand, on the token page, for this reason (shown to the user).
    ByHand {
        /// Why no API can do it.
        reason: &'static str,
    },
}

/// How a user logs in to a forge with OAuth. Endpoints are paths on the web server.
#[derive(Debug)]
pub enum OAuth {
    /// The device authorization grant (RFC 8628): a code to type on a page.
    Device(DeviceFlow),
    /// The authorization code flow with PKCE in the browser, redirected to a loopback
    /// address (RFC 7636, RFC 8252 §7.3).
    BrowserPkce(PkceFlow),
    /// No OAuth login helperd can use there.
    Unavailable {
        /// Why, and what to use instead (shown to the user).
        why: &'static str,
    },
}

impl OAuth {
    /// The token endpoint (device polls, code exchange, refresh), if the forge has a login.
    pub fn token_path(&self) -> Option<&'static str> {
        match self {
            OAuth::Device(flow) => Some(flow.token_path),
            OAuth::BrowserPkce(flow) => Some(flow.token_path),
            OAuth::Unavailable { .. } => None,
        }
    }

    /// The scopes a login asks for when the OAuth app names none: what git needs.
    pub fn scopes(&self) -> &'static [&'static str] {
        match self {
            OAuth::Device(flow) => flow.scopes,
            OAuth::BrowserPkce(flow) => flow.scopes,
            OAuth::Unavailable { .. } => &[],
        }
    }
}

/// The endpoints of a device login.
#[derive(Debug)]
pub struct DeviceFlow {
    /// Where a device code is requested.
    pub device_path: &'static str,
    /// Where the device code is exchanged for tokens, and tokens are refreshed.
    pub token_path: &'static str,
    /// The scopes git needs, asked for by default.
    pub scopes: &'static [&'static str],
    /// The error when the device endpoint answers 404: forges differ in what it means
    /// (GitHub: an unknown client id; GitLab: the flow is turned off or too new).
    pub(crate) not_found: fn(&Target) -> ProviderError,
}

/// The endpoints of a browser login with PKCE.
#[derive(Debug)]
pub struct PkceFlow {
    /// The page where the user approves the login.
    pub authorize_path: &'static str,
    /// Where the authorization code is exchanged for tokens, and tokens are refreshed.
    pub token_path: &'static str,
    /// The scopes asked for by default; empty where the forge grants the app's own.
    pub scopes: &'static [&'static str],
}
