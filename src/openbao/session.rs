//! When a login's token must be renewed (pure: time is an argument).

use super::Login;

/// What `status` shows of the session: never the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// `token`, `approle` or `jwt`.
    pub method: String,
    /// Unix seconds of the last login.
    pub logged_in_at: Option<u64>,
    /// Unix seconds when the token's lease ends, when it has one.
    pub lease_ends_at: Option<u64>,
    /// Renewals of the lease since the last login.
    pub renewals: u64,
    /// Logins since the daemon started (more than one: a renewal failed or a lease ended).
    pub logins: u64,
}

/// The lease is renewed once two thirds of it have passed, so a renewal that fails leaves
/// a third of the lease for logging in again.
pub fn renew_due(login: &Login, now: u64) -> bool {
    match login.lease_secs {
        None | Some(0) => false,
        Some(lease) => now >= login.obtained.saturating_add(lease.saturating_mul(2) / 3),
    }
}

/// The lease has ended: the token is useless, log in again.
pub fn expired(login: &Login, now: u64) -> bool {
    match login.lease_secs {
        None | Some(0) => false,
        Some(lease) => now >= login.obtained.saturating_add(lease),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn login(lease: Option<u64>) -> Login {
        Login {
            token: Secret::new("s.x"),
            lease_secs: lease,
            renewable: true,
            obtained: 1000,
        }
    }

    #[test]
    fn renewal_comes_at_two_thirds_of_the_lease_and_never_for_a_root_token() {
        let l = login(Some(3600));
        assert!(!renew_due(&l, 1000 + 2399));
        assert!(renew_due(&l, 1000 + 2400));
        assert!(!expired(&l, 1000 + 3599));
        assert!(expired(&l, 1000 + 3600));
        for l in [login(None), login(Some(0))] {
            assert!(!renew_due(&l, u64::MAX));
            assert!(!expired(&l, u64::MAX));
        }
    }
}
