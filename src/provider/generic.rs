//! Any other git server: helperd serves its token to git and knows nothing else about it.
//!
//! This descriptor is where "unknown" is written down: no API (so nothing is asked there),
//! no token page, no OAuth login, no username convention. Each `None` below is a fact
//! about a server helperd cannot name, not a gap to fill.

use super::descriptor::{OAuth, ProviderDescriptor, Revoke};
use super::Provider;

/// A generic server, as the registry knows it.
pub(super) const DESCRIPTOR: ProviderDescriptor = ProviderDescriptor {
    provider: Provider::Generic,
    name: "generic",
    title: "a generic server",
    // The fallback for every host no other provider claims: never guessed by name.
    host_guesses: &[],
    // Nothing is known: the runtime must name the username.
    default_username: None,
    // Every server puts it elsewhere.
    token_page: None,
    git_scopes: "whatever your host needs for git over HTTPS",
    api: None,
    revoke: Revoke::ByHand {
        reason: "a generic server has no API helperd knows; revoke the token where it was \
                 created",
    },
    oauth: OAuth::Unavailable {
        why: "helperd cannot log in with OAuth on a generic server: it knows no API there",
    },
    github_apps: false,
};
