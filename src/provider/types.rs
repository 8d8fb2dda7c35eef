//! What the providers report: plain data, no I/O.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// What the host says about a token. Holds no secret, so it may be stored and shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The account the token acts as, when the host says.
    pub login: Option<String>,
    /// `None`: the host cannot report them (GitHub fine-grained tokens, Gitea...), which
    /// is not the same as `Some(vec![])`, a token the host says has no scope.
    pub scopes: Option<Vec<String>>,
    /// Unix seconds; `None`: no expiry, or the host does not report it (see `notes`).
    pub expires: Option<u64>,
    /// "classic PAT", "fine-grained PAT", "OAuth app token", ...
    pub kind: Option<String>,
    /// What the user should know that the fields cannot say.
    pub notes: Vec<String>,
    /// Scopes git needs (to fetch and push private repositories) that the token lacks, as
    /// far as the host lets helperd know; empty when nothing is known to be missing.
    pub missing_git_scopes: Vec<String>,
}

/// The outcome of a revocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The host accepted the revocation.
    Revoked,
    /// The host's API cannot revoke this token; the user must do it on the token page.
    NotSupported {
        /// Why the API cannot revoke it, for the user.
        reason: String,
        /// Where to revoke it by hand, when known.
        token_page: Option<String>,
    },
}

/// The start of an OAuth device authorization grant (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// Secret: whoever holds it can collect the token once the user approves.
    pub device_code: Secret,
    /// What the user types on the verification page.
    pub user_code: String,
    /// The page where the user types [`DeviceCode::user_code`].
    pub verification_uri: String,
    /// The page with the code already filled in, when the host offers one (GitLab).
    pub verification_uri_complete: Option<String>,
    /// Seconds to wait between polls (5 when the host does not say, RFC 8628 §3.2).
    pub interval: u64,
    /// Seconds until the codes expire.
    pub expires_in: u64,
}

/// One poll of the token endpoint during a device login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// The user has not approved yet: poll again after the interval.
    Pending,
    /// Polling too fast: add 5 seconds to the interval (RFC 8628 §3.5), then poll again.
    SlowDown,
    /// Approved.
    Done(OAuthTokens),
}

/// Tokens from an OAuth token endpoint (device grant or refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthTokens {
    /// The token git sends.
    pub access_token: Secret,
    /// Present when the access token expires; every GitLab refresh returns a new one,
    /// and GitHub's is single-use too: always keep the latest.
    pub refresh_token: Option<Secret>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    /// Unix seconds (GitHub's `refresh_token_expires_in`: six months).
    pub refresh_expires_at: Option<u64>,
    /// The scopes granted, as the host names them (may differ from those asked for).
    pub scopes: Vec<String>,
}
