//! The OpenBao (Vault API) edge (DESIGN.md §10): helperd as a client of the team's
//! OpenBao, through the `vaultrs` crate. Logs in (token, AppRole or JWT), renews the
//! login's lease, tries the configured addresses in order, and reads and writes KV
//! version 2 entries. What an entry means is `team.rs`'s business; when to read is the
//! daemon's (`daemon/state/team_watch.rs`).
//!
//! Nothing here logs a secret or puts one in an error: OpenBao's own error texts are
//! passed on (they never echo a secret), tokens travel as [`Secret`]s.

mod client;
mod error;
mod session;

pub use client::{BaoClient, KvEntry};
pub use error::BaoError;
pub use session::{renew_due, SessionInfo};

use crate::secret::Secret;

/// The OpenBao token this process holds, and what OpenBao said of it.
#[derive(Clone)]
pub struct Login {
    /// Sent as `X-Vault-Token`.
    pub token: Secret,
    /// The token's lease in seconds from `obtained`; `None`: it does not expire (root).
    pub lease_secs: Option<u64>,
    /// Whether `token/renew-self` may extend it.
    pub renewable: bool,
    /// When it was obtained or last renewed (Unix seconds, the daemon's clock).
    pub obtained: u64,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("token", &"<redacted>")
            .field("lease_secs", &self.lease_secs)
            .field("renewable", &self.renewable)
            .field("obtained", &self.obtained)
            .finish()
    }
}
