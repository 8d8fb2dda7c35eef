//! [`ProviderError`]: everything that can go wrong talking to a forge, worded for the user.
//!
//! No variant carries a secret: the fields are hosts, URLs, HTTP statuses, scope names and
//! OAuth error codes, and [`Protocol`](ProviderError::Protocol) details are written by
//! helperd (never a server's body or a JSON parser's message, which can quote a value).

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The host answered, and refused the token (or the refresh token).
    #[error("{host} rejected the token (HTTP {status}): {meaning}")]
    Rejected {
        /// The host that refused, `name[:port]`.
        host: String,
        /// The HTTP status it answered.
        status: u16,
        /// What the status means for the user, written by helperd.
        meaning: String,
    },
    /// The token lacks scopes git needs. Introspection reports them in
    /// [`TokenInfo::missing_git_scopes`](super::TokenInfo::missing_git_scopes) instead of
    /// failing, so that `--force` can store the token anyway; the caller turns them into
    /// this error when it refuses.
    #[error("the token lacks the scope(s) {}; create a token with them, or pass --force to store it anyway", .scopes.join(", "))]
    MissingScopes {
        /// The scopes the token lacks, as the forge names them.
        scopes: Vec<String>,
    },
    /// Connection refused, DNS failure, TLS failure, timeout: nothing usable came back.
    #[error(
        "cannot reach {url}: {detail}; check the network and the proxy settings \
         (HTTPS_PROXY, NO_PROXY), or pass --offline to skip the check"
    )]
    Unreachable {
        /// The URL that could not be reached (never with userinfo).
        url: String,
        /// What failed (connection, DNS, TLS, timeout), written by helperd.
        detail: String,
    },
    /// The device code expired before the user approved the login (`expired_token`).
    #[error("the login code expired before it was approved; run the login again")]
    Expired,
    /// The user declined the authorization (`access_denied`).
    #[error("the authorization was declined on the host's page")]
    AccessDenied,
    /// The OAuth app does not allow the device flow, or the host does not offer it.
    #[error(
        "the host does not allow the OAuth device flow for this app \
         (device_flow_disabled); ask the app's owner to enable it, or use a personal access token"
    )]
    DeviceFlowDisabled,
    /// No OAuth client id for this host, or the host does not know the one configured.
    #[error(
        "the OAuth app is not registered for {host}; ask your admin to register it in the \
         system policy ([[oauth_app]] host = \"{host}\", client_id = \"...\"), or use a \
         personal access token"
    )]
    OAuthNotRegistered {
        /// The host the app would be registered for, `name[:port]`.
        host: String,
    },
    /// The host refused the refresh token (expired, revoked or already used).
    #[error("{host} refused the refresh token (expired, revoked or already used); log in again")]
    RefreshRejected {
        /// The host that refused it, `name[:port]`.
        host: String,
    },
    /// The provider (or its API) cannot do this at all.
    #[error("{what}")]
    Unsupported {
        /// What cannot be done and what to do instead, a sentence for the user.
        what: String,
    },
    /// The host answered something helperd does not understand.
    #[error("unexpected answer: {detail}")]
    Protocol {
        /// What was unexpected, written by helperd (never the server's own words).
        detail: String,
    },
    /// The HTTP client could not be set up (TLS roots, proxy settings).
    #[error("cannot set up the HTTPS client: {detail}")]
    Setup {
        /// What could not be set up.
        detail: String,
    },
}
