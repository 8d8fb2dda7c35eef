//! [`Provider`]: which forge a runtime talks to, as `config.toml` and the command line name
//! it. Next to the descriptors because that is all it is: a key into the [`registry`]
//! (its name, too, is the descriptor's). `config` reads it; it reads nothing of `config`.

use std::fmt;

use super::descriptor::ProviderDescriptor;
use super::registry;

/// The forge behind a runtime, as `config.toml` names it. What helperd knows about each
/// (username convention, token page, API) is its [`Provider::descriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// github.com or GitHub Enterprise Server.
    GitHub,
    /// gitlab.com or a self-managed GitLab.
    GitLab,
    /// Bitbucket Cloud (bitbucket.org).
    Bitbucket,
    /// Bitbucket Data Center (formerly Bitbucket Server).
    BitbucketServer,
    /// Gitea, and its fork Forgejo (Codeberg).
    Gitea,
    /// Any other server: a token, no API.
    Generic,
}

impl Provider {
    /// Every provider, in the order the docs and error messages list them.
    pub const ALL: [Provider; 6] = [
        Provider::GitHub,
        Provider::GitLab,
        Provider::Bitbucket,
        Provider::BitbucketServer,
        Provider::Gitea,
        Provider::Generic,
    ];

    /// The name used in `config.toml` and on the command line.
    pub fn name(self) -> &'static str {
        self.descriptor().name
    }

    /// The provider with this [`Provider::name`]; exact, lower-case.
    pub fn parse(s: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Everything helperd knows about this forge (usernames, token page, API, OAuth).
    pub fn descriptor(self) -> &'static ProviderDescriptor {
        registry::descriptor(self)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_and_token_pages() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Provider::parse("GitHub"), None);
        #[rustfmt::skip]
        let cases = [
            (Provider::GitHub, "https://github.com", Some("https://github.com/settings/tokens")),
            (Provider::GitHub, "https://ghe.example.com/", Some("https://ghe.example.com/settings/tokens")),
            (Provider::GitLab, "https://gitlab.example.com", Some("https://gitlab.example.com/-/user_settings/personal_access_tokens")),
            (Provider::Bitbucket, "https://bitbucket.org", Some("https://id.atlassian.com/manage-profile/security/api-tokens")),
            (Provider::BitbucketServer, "https://bb.example.com:7990", Some("https://bb.example.com:7990/plugins/servlet/access-tokens/manage")),
            (Provider::Gitea, "https://codeberg.org", Some("https://codeberg.org/user/settings/applications")),
            (Provider::Generic, "https://git.example.com", None),
            (Provider::GitHub, "https://*.example.com", None),
        ];
        for (provider, base, page) in cases {
            assert_eq!(
                provider.descriptor().token_page(base).as_deref(),
                page,
                "{provider} {base}"
            );
        }
    }
}
