//! The registry is complete: every provider has a descriptor with every fact filled in,
//! and what a forge lacks is said on purpose.

use super::*;
use crate::provider::descriptor::{OAuth, Revoke};

/// `Provider::ALL` lists every provider once. The match has no wildcard arm: a new provider
/// does not compile here until it is given a place in `ALL`.
#[test]
fn all_lists_every_provider_once() {
    fn position(p: Provider) -> usize {
        match p {
            Provider::GitHub => 0,
            Provider::GitLab => 1,
            Provider::Bitbucket => 2,
            Provider::BitbucketServer => 3,
            Provider::Gitea => 4,
            Provider::Generic => 5,
        }
    }
    assert_eq!(Provider::ALL.len(), 6);
    for (i, p) in Provider::ALL.into_iter().enumerate() {
        assert_eq!(position(p), i, "{p:?} is out of place in Provider::ALL");
    }
}

/// The provider registry completeness test: a descriptor with an empty or missing fact
/// fails here, naming the provider and the field.
#[test]
fn every_provider_has_a_complete_descriptor() {
    let mut problems = Vec::new();
    let mut names = Vec::new();
    for p in Provider::ALL {
        let d = descriptor(p);
        let mut lacks = |field: &str| problems.push(format!("{p:?}: {field}"));
        if d.provider != p {
            lacks("provider (filed under another provider)");
        }
        if d.name.is_empty() || d.name != d.name.to_ascii_lowercase() || d.name.contains(' ') {
            lacks("name (lower-case, no spaces)");
        }
        if d.title.is_empty() {
            lacks("title");
        }
        if d.git_scopes.is_empty() {
            lacks("git_scopes");
        }
        if let Revoke::ByHand { reason } = d.revoke {
            if reason.is_empty() {
                lacks("revoke reason");
            }
        }
        match &d.oauth {
            OAuth::Device(flow) => {
                for (field, path) in [
                    ("device_path", flow.device_path),
                    ("token_path", flow.token_path),
                ] {
                    if !path.starts_with('/') {
                        lacks(field);
                    }
                }
                if flow.scopes.is_empty() {
                    lacks("device flow scopes");
                }
            }
            OAuth::BrowserPkce(flow) => {
                for (field, path) in [
                    ("authorize_path", flow.authorize_path),
                    ("token_path", flow.token_path),
                ] {
                    if !path.starts_with('/') {
                        lacks(field);
                    }
                }
            }
            OAuth::Unavailable { why } => {
                if why.is_empty() {
                    lacks("oauth why");
                }
            }
        }
        if d.host_guesses
            .iter()
            .any(|h| h.is_empty() || *h != h.to_ascii_lowercase())
        {
            lacks("host_guesses (lower-case host names)");
        }
        // A generic server is the one provider about which nothing is known: no API, no
        // token page, no host to guess. Every forge has all three (Bitbucket Data Center
        // is self-hosted only, so it has no public host to guess).
        if p != Provider::Generic {
            if d.api.is_none() {
                lacks("api");
            }
            if d.token_page.is_none() {
                lacks("token_page");
            }
            if d.host_guesses.is_empty() && p != Provider::BitbucketServer {
                lacks("host_guesses");
            }
        }
        if let Some(api) = &d.api {
            let base = (api.base)("https://git.example.com");
            if !base.starts_with("https://") || base.ends_with('/') {
                lacks("api.base (an https URL without a trailing /)");
            }
        }
        names.push(d.name);
    }
    names.sort_unstable();
    names.dedup();
    if names.len() != Provider::ALL.len() {
        problems.push("two providers share a name".to_string());
    }
    assert!(
        problems.is_empty(),
        "incomplete descriptors:\n{}",
        problems.join("\n")
    );
}

/// A generic server is never asked anything: it is exactly the provider without an API,
/// token page or OAuth login.
#[test]
fn a_generic_server_lacks_what_no_one_can_know() {
    let d = descriptor(Provider::Generic);
    assert!(d.api.is_none());
    assert!(d.token_page.is_none());
    assert!(d.default_username.is_none());
    assert!(d.host_guesses.is_empty());
    assert!(matches!(d.oauth, OAuth::Unavailable { .. }));
}

/// Names in `config.toml` are what users wrote: they never change.
#[test]
fn config_names_are_stable() {
    let names: Vec<&str> = Provider::ALL.iter().map(|p| descriptor(*p).name).collect();
    assert_eq!(
        names,
        [
            "github",
            "gitlab",
            "bitbucket",
            "bitbucket-server",
            "gitea",
            "generic"
        ]
    );
}

#[test]
fn hosts_are_guessed_only_for_public_instances() {
    assert_eq!(guess_by_host("GitHub.com"), Some(Provider::GitHub));
    assert_eq!(guess_by_host("codeberg.org"), Some(Provider::Gitea));
    assert_eq!(guess_by_host("gitea.com"), Some(Provider::Gitea));
    assert_eq!(guess_by_host("bitbucket.org"), Some(Provider::Bitbucket));
    assert_eq!(guess_by_host("git.example.com"), None);
    assert_eq!(guess_by_host(""), None);
}

/// What a login asks for by default, per forge (was a match in the daemon's login).
#[test]
fn login_scopes_are_what_git_needs() {
    assert_eq!(descriptor(Provider::GitHub).oauth.scopes(), ["repo"]);
    assert_eq!(
        descriptor(Provider::GitLab).oauth.scopes(),
        ["read_repository", "write_repository"]
    );
    for p in [
        Provider::Bitbucket,
        Provider::BitbucketServer,
        Provider::Gitea,
        Provider::Generic,
    ] {
        assert!(descriptor(p).oauth.scopes().is_empty(), "{p:?}");
    }
}
