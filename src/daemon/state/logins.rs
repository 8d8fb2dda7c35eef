//! OAuth logins waiting for the user's approval, by runtime: a device code to poll with,
//! or (browser login) the PKCE verifier and state to finish with. Held only for a map
//! operation, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::secret::Secret;

/// One runtime's login in progress: a device flow, or a browser flow (`browser` is set).
pub struct PendingLogin {
    /// The device code to poll with; empty for a browser login. Secret.
    pub device_code: Secret,
    /// The OAuth client id the login was started with; the token is recorded under it.
    pub client_id: String,
    /// Seconds between device polls; raised by 5 each time the host says "slow down".
    pub interval: u64,
    /// Unix seconds (the daemon's clock).
    pub deadline: u64,
    /// Set for a browser (PKCE) login.
    pub browser: Option<BrowserLogin>,
}

/// What finishing a browser login with PKCE needs.
pub struct BrowserLogin {
    /// The PKCE code verifier (RFC 7636); secret until the code exchange.
    pub verifier: Secret,
    /// The random `state` sent to the host; the redirect must carry it back.
    pub state: String,
    /// The loopback address the host redirects to; the exchange must name it again.
    pub redirect_uri: String,
}

/// Pending logins, by runtime name; one per runtime (a new start replaces it).
#[derive(Default)]
pub struct Logins(Mutex<HashMap<String, PendingLogin>>);

impl Logins {
    /// Runs `f` on the map; `f` must not block.
    pub fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, PendingLogin>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
