//! GitLab tokens that rotate themselves (issue 18): the pure rules. When a rotation is
//! due, what expiry the new token asks for, and how long a failed rotation waits. No I/O:
//! the daemon's rotator (`daemon::rotator`) carries these out, with `now` as an argument.

use crate::config::{RotateVia, RuntimeConfig};
use crate::policy::Policy;
use crate::provider::Provider;
use crate::token::TokenMeta;
use helperd_wire::url::percent_encode_segment;

const DAY: u64 = 86_400;

/// The longest lifetime GitLab gives a new access token by default (an instance may allow
/// less; its 400 then shows in `status` and the rotation is retried with back-off).
pub const GITLAB_MAX_DAYS: u32 = 365;

/// The first wait after a failed rotation; doubled after each further failure.
pub const RETRY_FIRST_SECS: u64 = 60;
/// The longest wait between two attempts.
pub const RETRY_MAX_SECS: u64 = 6 * 3600;

/// The rotation window in days for a runtime: the larger of the runtime's `rotate_days`
/// and the policy's `rotate_days` floor (an admin's floor turns rotation on for every
/// GitLab runtime, as its `warn_days` raises every user's warning window). `None`: the
/// runtime's token is never rotated by the daemon.
pub fn window_days(rt: &RuntimeConfig, policy: Option<&Policy>) -> Option<u32> {
    if rt.provider != Provider::GitLab || rt.team.is_some() || rt.app.is_some() {
        return None;
    }
    let floor = policy.and_then(|p| p.rotate_days);
    match (rt.rotate_days, floor) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// When `token` enters its rotation window of `days` days, when it is one the daemon may
/// rotate: a token with an expiry, not an OAuth token (those are refreshed), not rejected.
pub fn due_at(token: &TokenMeta, days: u32) -> Option<u64> {
    if token.oauth_client_id.is_some() || token.rejected_at.is_some() {
        return None;
    }
    let expires = token.expires?;
    Some(expires.saturating_sub(u64::from(days) * DAY))
}

/// Whether the rotation of `token` is due at `now` (inside the window, not yet expired:
/// an expired token cannot rotate itself).
pub fn is_due(token: &TokenMeta, days: u32, now: u64) -> bool {
    match (due_at(token, days), token.expires) {
        (Some(due), Some(expires)) => now >= due && now < expires,
        _ => false,
    }
}

/// The expiry (00:00 UTC of a day: GitLab expiries are dates) the new token asks for.
///
/// Its lifetime: the policy's `max_days` when set, else the old token's own lifetime
/// (`expires - created`, in whole days), at most [`GITLAB_MAX_DAYS`]. The date is rounded
/// down, so the token never outlives what the policy allows. `Err` when that date would be
/// inside the rotation window already (the new token would be rotated at once, again and
/// again): then the daemon does not rotate, and says why.
pub fn new_expiry(
    old: &TokenMeta,
    days: u32,
    max_days: Option<u32>,
    now: u64,
) -> Result<u64, String> {
    let lifetime = match max_days {
        // What the policy allows, all of it.
        Some(max) => u64::from(max),
        None => old
            .expires
            .map(|e| e.saturating_sub(old.created) / DAY)
            .unwrap_or(u64::from(GITLAB_MAX_DAYS)),
    }
    .clamp(1, u64::from(GITLAB_MAX_DAYS));
    let date = (now.saturating_add(lifetime * DAY)) / DAY * DAY;
    if date <= now.saturating_add(u64::from(days) * DAY) {
        return Err(format!(
            "a new token would live {lifetime} day(s), not more than rotate_days ({days}): \
             it would be rotated again at once; lower rotate_days"
        ));
    }
    Ok(date)
}

/// How long to wait after the `failures`-th failed attempt in a row (1 = the first).
pub fn retry_after(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(20);
    RETRY_FIRST_SECS
        .saturating_mul(1 << doublings)
        .min(RETRY_MAX_SECS)
}

/// The path (under the API root) of the self-rotate endpoint for a token of kind `via`.
/// The project or group (an id or a `group/project` path) is URL-encoded as GitLab asks.
pub fn endpoint(via: &RotateVia) -> String {
    match via {
        RotateVia::Personal => "/personal_access_tokens/self/rotate".to_string(),
        RotateVia::Project(p) => format!(
            "/projects/{}/access_tokens/self/rotate",
            percent_encode_segment(p)
        ),
        RotateVia::Group(g) => format!(
            "/groups/{}/access_tokens/self/rotate",
            percent_encode_segment(g)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn token(created: u64, expires: Option<u64>) -> TokenMeta {
        TokenMeta::new(None, created, expires)
    }

    fn gitlab(rotate_days: Option<u32>) -> RuntimeConfig {
        let text = match rotate_days {
            Some(n) => format!(
                "[[runtime]]\nname = \"gl\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example/\"]\nrotate_days = {n}\n"
            ),
            None => "[[runtime]]\nname = \"gl\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example/\"]\n".to_string(),
        };
        crate::config::Config::parse(&text, std::path::Path::new("c.toml"))
            .unwrap()
            .runtimes
            .remove(0)
    }

    #[test]
    fn the_window_is_the_larger_of_runtime_and_policy() {
        let floor = Policy {
            rotate_days: Some(10),
            ..Policy::default()
        };
        assert_eq!(window_days(&gitlab(None), None), None);
        assert_eq!(window_days(&gitlab(Some(5)), None), Some(5));
        assert_eq!(window_days(&gitlab(Some(5)), Some(&floor)), Some(10));
        assert_eq!(window_days(&gitlab(Some(20)), Some(&floor)), Some(20));
        // The policy's floor alone turns rotation on.
        assert_eq!(window_days(&gitlab(None), Some(&floor)), Some(10));
        // Not GitLab: never.
        let mut gh = gitlab(Some(5));
        gh.provider = Provider::GitHub;
        assert_eq!(window_days(&gh, Some(&floor)), None);
    }

    #[test]
    fn due_inside_the_last_days_before_expiry_only() {
        let expires = NOW + 10 * DAY;
        let t = token(NOW - 80 * DAY, Some(expires));
        assert_eq!(due_at(&t, 7), Some(expires - 7 * DAY));
        assert!(!is_due(&t, 7, NOW));
        assert!(!is_due(&t, 7, expires - 7 * DAY - 1));
        assert!(is_due(&t, 7, expires - 7 * DAY));
        assert!(is_due(&t, 7, expires - 1));
        // Expired: it cannot rotate itself any more.
        assert!(!is_due(&t, 7, expires));
        // No expiry, OAuth, rejected: never.
        assert!(!is_due(&token(NOW, None), 7, NOW));
        let mut oauth = t.clone();
        oauth.oauth_client_id = Some("app".into());
        assert!(!is_due(&oauth, 7, expires - DAY));
        let mut rejected = t;
        rejected.rejected_at = Some(NOW);
        assert!(!is_due(&rejected, 7, expires - DAY));
    }

    #[test]
    fn the_new_expiry_is_a_date_within_the_policy() {
        let old = token(NOW - 85 * DAY, Some(NOW + 5 * DAY));
        // The old token's own lifetime (90 days), as a date (00:00 UTC).
        let e = new_expiry(&old, 7, None, NOW).unwrap();
        assert_eq!(e % DAY, 0);
        assert!(e <= NOW + 90 * DAY && e > NOW + 89 * DAY);
        // The policy's max_days: all of it, and never more.
        let e = new_expiry(&old, 7, Some(30), NOW).unwrap();
        assert_eq!(e % DAY, 0);
        assert!(e <= NOW + 30 * DAY && e > NOW + 29 * DAY);
        // GitLab's cap.
        let long = token(NOW - 900 * DAY, Some(NOW + 5 * DAY));
        let e = new_expiry(&long, 7, None, NOW).unwrap();
        assert!(e <= NOW + 365 * DAY);
        let e = new_expiry(&long, 7, Some(3000), NOW).unwrap();
        assert!(e <= NOW + 365 * DAY);
        // A lifetime inside the window would rotate again at once: refused.
        let err = new_expiry(&old, 30, Some(30), NOW).unwrap_err();
        assert!(err.contains("rotate_days"), "{err}");
    }

    #[test]
    fn retries_back_off_and_stop_growing() {
        assert_eq!(retry_after(1), 60);
        assert_eq!(retry_after(2), 120);
        assert_eq!(retry_after(3), 240);
        assert_eq!(retry_after(50), RETRY_MAX_SECS);
        assert_eq!(retry_after(0), 60);
    }

    #[test]
    fn endpoints_per_kind() {
        assert_eq!(
            endpoint(&RotateVia::Personal),
            "/personal_access_tokens/self/rotate"
        );
        assert_eq!(
            endpoint(&RotateVia::Project("acme/app".into())),
            "/projects/acme%2Fapp/access_tokens/self/rotate"
        );
        assert_eq!(
            endpoint(&RotateVia::Group("42".into())),
            "/groups/42/access_tokens/self/rotate"
        );
    }
}
