//! OAuth logins waiting for the user's approval, by runtime: a device code to poll with,
//! or (browser login) the PKCE verifier and state to finish with. Held only for a map
//! operation, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::secret::Secret;

pub struct PendingLogin {
    pub device_code: Secret,
    pub client_id: String,
    pub interval: u64,
    /// Unix seconds (the daemon's clock).
    pub deadline: u64,
    pub browser: Option<BrowserLogin>,
}

pub struct BrowserLogin {
    pub verifier: Secret,
    pub state: String,
    pub redirect_uri: String,
}

#[derive(Default)]
pub struct Logins(Mutex<HashMap<String, PendingLogin>>);

impl Logins {
    /// Runs `f` on the map; `f` must not block.
    pub fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, PendingLogin>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
