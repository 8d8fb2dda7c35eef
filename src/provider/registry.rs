//! The registry: the one place that maps a [`Provider`] to its [`ProviderDescriptor`].
//!
//! Every caller (`config`, `decision`, `ctl/`, `daemon/`, the rest of `provider/`) asks here
//! and never `match`es on the provider; the match below is the only one, and it has no
//! wildcard arm, so a new provider does not compile until it has a descriptor.
//!
//! The core (`config`, `decision`) may read this module and [`super::descriptor`] although
//! `provider/` is an edge: a descriptor is constant data, and reading it does no I/O. The
//! core only reads facts; the API functions a descriptor holds are `pub(crate)` and called
//! by [`ProviderClient`](super::ProviderClient) alone.

use super::descriptor::ProviderDescriptor;
use super::{bitbucket, bitbucket_server, generic, gitea, github, gitlab, Provider};

/// What helperd knows about `provider`.
pub fn descriptor(provider: Provider) -> &'static ProviderDescriptor {
    match provider {
        Provider::GitHub => &github::DESCRIPTOR,
        Provider::GitLab => &gitlab::DESCRIPTOR,
        Provider::Bitbucket => &bitbucket::DESCRIPTOR,
        Provider::BitbucketServer => &bitbucket_server::DESCRIPTOR,
        Provider::Gitea => &gitea::DESCRIPTOR,
        Provider::Generic => &generic::DESCRIPTOR,
    }
}

/// The provider a public host certainly is (`github.com`, `codeberg.org`); `None` for any
/// other host. `host` is compared without regard to case.
pub fn guess_by_host(host: &str) -> Option<Provider> {
    let host = host.to_ascii_lowercase();
    Provider::ALL
        .into_iter()
        .find(|p| descriptor(*p).host_guesses.contains(&host.as_str()))
}

#[cfg(test)]
mod tests;
