//! Which runtime answers a git request (DESIGN.md §6 steps 2–4): the routing rules between
//! the runtimes' URL prefixes and a request's location (both from `crate::location`).
//! Pure: no I/O.

use crate::config::{Config, RuntimeConfig};
pub use crate::location::{HostPattern, Location, UrlPrefix};

/// The outcome of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// This runtime's token answers, because of this prefix.
    Runtime {
        /// The runtime that answers.
        runtime: &'a RuntimeConfig,
        /// Its URL prefix that matched (the most specific one).
        prefix: &'a UrlPrefix,
    },
    /// Runtimes on this host differ by path and git sent no path: nothing may be served
    /// from a guess.
    NeedsPath {
        /// The exact command that makes git send paths for this host, e.g.
        /// `git config --global credential.https://github.com.useHttpPath true`.
        fix: String,
        /// The runtimes that could have answered, in file order.
        runtimes: Vec<&'a str>,
    },
    /// No runtime claims this location: the plain stored credentials answer (§6 step 7).
    NoRuntime,
}

/// Why one (runtime, prefix) pair on the request's host did or did not answer; what
/// `helperctl which` explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateNote {
    /// Runtime name as written in config.toml.
    pub runtime: String,
    /// The prefix's canonical text.
    pub prefix: String,
    /// Why this pair did or did not answer.
    pub outcome: Outcome,
}

/// See [`CandidateNote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This pair answers.
    Chosen,
    /// It matches, but a more specific prefix does too.
    LessSpecific,
    /// The request names another user than the runtime's (§6 step 4).
    UsernameDiffers {
        /// The username in git's request.
        request: String,
        /// The username the runtime uses (configured, or its provider's convention).
        runtime: String,
    },
    /// It could answer, but git sent no path to decide with.
    NeedsPath,
}

/// One (runtime, prefix) pair that matches the request's scheme and host.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    runtime: &'a RuntimeConfig,
    prefix: &'a UrlPrefix,
}

impl<'a> Candidate<'a> {
    fn note(&self, outcome: Outcome) -> CandidateNote {
        CandidateNote {
            runtime: self.runtime.name.clone(),
            prefix: self.prefix.to_string(),
            outcome,
        }
    }

    /// The runtime's username when the request names a different one.
    fn username_conflict(&self, requested: Option<&str>) -> Option<Outcome> {
        let (request, runtime) = (requested?, self.runtime.effective_username()?);
        (request != runtime).then(|| Outcome::UsernameDiffers {
            request: request.to_string(),
            runtime: runtime.to_string(),
        })
    }
}

/// Chooses the runtime for a request (DESIGN.md §6 steps 2–4), with a note for every
/// (runtime, prefix) pair on the request's host that could have been relevant.
///
/// Pairs whose path does not match are left out of the notes: on a host with many
/// org prefixes they would only bury the reason that matters.
pub fn route<'a>(
    config: &'a Config,
    loc: &Location,
    username: Option<&str>,
) -> (Route<'a>, Vec<CandidateNote>) {
    let mut notes = Vec::new();
    let mut eligible = Vec::new();
    for candidate in relevant_candidates(config, loc) {
        match candidate.username_conflict(username) {
            Some(outcome) => notes.push(candidate.note(outcome)),
            None => eligible.push(candidate),
        }
    }
    if loc.path.is_none() && eligible.iter().any(|c| !c.prefix.path.is_empty()) {
        return (needs_path(loc, &eligible, &mut notes), notes);
    }
    let Some(best) = most_specific(&eligible) else {
        return (Route::NoRuntime, notes);
    };
    for (i, candidate) in eligible.iter().enumerate() {
        let outcome = if i == best {
            Outcome::Chosen
        } else {
            Outcome::LessSpecific
        };
        notes.push(candidate.note(outcome));
    }
    let chosen = eligible[best];
    let route = Route::Runtime {
        runtime: chosen.runtime,
        prefix: chosen.prefix,
    };
    (route, notes)
}

/// Pairs on the request's host, in file order, whose path matches too; without a path in
/// the request every pair on the host is relevant, since any of them might have answered.
fn relevant_candidates<'a>(config: &'a Config, loc: &Location) -> Vec<Candidate<'a>> {
    config
        .runtimes
        .iter()
        .flat_map(|runtime| {
            runtime
                .urls
                .iter()
                .map(move |prefix| Candidate { runtime, prefix })
        })
        .filter(|c| c.prefix.matches_host(loc))
        .filter(|c| loc.path.is_none() || c.prefix.matches(loc))
        .collect()
}

fn needs_path<'a>(
    loc: &Location,
    eligible: &[Candidate<'a>],
    notes: &mut Vec<CandidateNote>,
) -> Route<'a> {
    let mut runtimes: Vec<&'a str> = Vec::new();
    for candidate in eligible {
        notes.push(candidate.note(Outcome::NeedsPath));
        if !runtimes.contains(&candidate.runtime.name.as_str()) {
            runtimes.push(&candidate.runtime.name);
        }
    }
    Route::NeedsPath {
        fix: use_http_path_command(&loc.base_url()),
        runtimes,
    }
}

/// The `git config` line that makes git send paths for `base_url`.
pub fn use_http_path_command(base_url: &str) -> String {
    format!("git config --global credential.{base_url}.useHttpPath true")
}

/// Index of the most specific candidate; the first in file order wins a tie (a valid
/// config has none, but the answer must never depend on hash order or chance).
fn most_specific(candidates: &[Candidate<'_>]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let better = match best {
            None => true,
            Some(b) => candidate.prefix.specificity() > candidates[b].prefix.specificity(),
        };
        if better {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthScheme;
    use crate::location::testing::{git, prefix, GitRequest};
    use crate::provider::Provider;
    use proptest::prelude::*;

    fn runtime(
        name: &str,
        urls: &[&str],
        username: Option<&str>,
        provider: Provider,
    ) -> RuntimeConfig {
        RuntimeConfig {
            name: name.to_string(),
            provider,
            urls: urls.iter().map(|u| prefix(u)).collect(),
            username: username.map(str::to_string),
            api_url: None,
            auth: AuthScheme::Basic,
            oauth_client_id: None,
            forward: false,
            email: None,
            line: 1,
            team: None,
            app: None,
            rotate_days: None,
            rotate_via: Default::default(),
        }
    }

    fn sample_config() -> Config {
        Config {
            runtimes: vec![
                runtime(
                    "acme",
                    &["https://github.com/acme/", "https://github.com/acme-infra/"],
                    None,
                    Provider::GitHub,
                ),
                runtime(
                    "oss",
                    &["https://github.com/"],
                    Some("octocat"),
                    Provider::GitHub,
                ),
                runtime(
                    "app",
                    &["https://github.com/acme/app/"],
                    None,
                    Provider::GitHub,
                ),
                runtime(
                    "gl",
                    &["https://gitlab.example.com/"],
                    None,
                    Provider::GitLab,
                ),
                runtime(
                    "bb",
                    &["https://*.bb.example.com/"],
                    None,
                    Provider::BitbucketServer,
                ),
                runtime(
                    "team",
                    &["https://git.example.org/team/"],
                    None,
                    Provider::Generic,
                ),
            ],
            settings: Default::default(),
            openbao: None,
        }
    }

    /// What a route came to, as plain text for table comparison.
    fn summary(route: &Route<'_>) -> String {
        match route {
            Route::Runtime { runtime, prefix } => format!("{} {prefix}", runtime.name),
            Route::NeedsPath { fix, runtimes } => {
                format!("needs path [{}] {fix}", runtimes.join(","))
            }
            Route::NoRuntime => "none".to_string(),
        }
    }

    #[test]
    fn routing_table() {
        let config = sample_config();
        let gh_fix = "git config --global credential.https://github.com.useHttpPath true";
        #[rustfmt::skip]
        let cases: Vec<(GitRequest<'_>, Option<&str>, String)> = vec![
            // most specific wins: host-wide vs org vs repo prefix
            (("https", "github.com", Some("acme/api.git")), None, "acme https://github.com/acme/".into()),
            (("https", "github.com", Some("acme/app.git")), None, "app https://github.com/acme/app/".into()),
            (("https", "github.com", Some("acme/app/sub")), None, "app https://github.com/acme/app/".into()),
            (("https", "github.com", Some("acme-infra/ops")), None, "acme https://github.com/acme-infra/".into()),
            (("https", "github.com", Some("octocat/dotfiles")), None, "oss https://github.com/".into()),
            (("https", "github.com", Some("acme")), None, "acme https://github.com/acme/".into()),
            // no path on a host where runtimes differ by path: the fix, never a guess
            (("https", "github.com", None), None, format!("needs path [acme,oss,app] {gh_fix}")),
            (("https", "GitHub.com:443", None), None, format!("needs path [acme,oss,app] {gh_fix}")),
            (("https", "git.example.org", None), None,
                "needs path [team] git config --global credential.https://git.example.org.useHttpPath true".into()),
            // username filter
            (("https", "github.com", Some("acme/api")), Some("x-access-token"), "acme https://github.com/acme/".into()),
            (("https", "github.com", Some("acme/api")), Some("octocat"), "oss https://github.com/".into()),
            (("https", "github.com", Some("octocat/x")), Some("bob"), "none".into()),
            // the username leaves only the host-wide runtime: no path needed
            (("https", "github.com", None), Some("octocat"), "oss https://github.com/".into()),
            (("https", "gitlab.example.com", None), None, "gl https://gitlab.example.com/".into()),
            (("https", "gitlab.example.com", Some("g/p")), Some("oauth2"), "gl https://gitlab.example.com/".into()),
            (("https", "gitlab.example.com", None), Some("someone"), "none".into()),
            // a runtime without a username is not filtered by one
            (("https", "x.bb.example.com", Some("p/r")), Some("alice"), "bb https://*.bb.example.com/".into()),
            (("https", "bb.example.com", None), None, "none".into()),
            // no runtime
            (("https", "git.example.org", Some("other/x")), None, "none".into()),
            (("http", "github.com", Some("acme/api")), None, "none".into()),
            (("https", "github.com:8443", Some("acme/api")), None, "none".into()),
            (("https", "example.net", None), None, "none".into()),
        ];
        for ((proto, host, path), user, expected) in cases {
            let loc = git(proto, host, path);
            let (route, _) = route(&config, &loc, user);
            assert_eq!(summary(&route), expected, "{loc} user {user:?}");
        }
    }

    #[test]
    fn routing_notes_explain_every_relevant_pair() {
        let config = sample_config();
        let note = |runtime: &str, prefix: &str, outcome| CandidateNote {
            runtime: runtime.into(),
            prefix: prefix.into(),
            outcome,
        };
        let (_, notes) = route(&config, &git("https", "github.com", Some("acme/app")), None);
        assert_eq!(
            notes,
            vec![
                note("acme", "https://github.com/acme/", Outcome::LessSpecific),
                note("oss", "https://github.com/", Outcome::LessSpecific),
                note("app", "https://github.com/acme/app/", Outcome::Chosen),
            ]
        );
        let (_, notes) = route(
            &config,
            &git("https", "github.com", Some("acme/x")),
            Some("octocat"),
        );
        assert_eq!(
            notes,
            vec![
                note(
                    "acme",
                    "https://github.com/acme/",
                    Outcome::UsernameDiffers {
                        request: "octocat".into(),
                        runtime: "x-access-token".into()
                    }
                ),
                note("oss", "https://github.com/", Outcome::Chosen),
            ]
        );
        let (_, notes) = route(&config, &git("https", "github.com", None), None);
        assert_eq!(notes.len(), 4, "every pair on the host: {notes:?}");
        assert!(notes.iter().all(|n| n.outcome == Outcome::NeedsPath));
    }

    #[test]
    fn a_tie_goes_to_the_first_runtime_in_the_file() {
        // Config::parse refuses this; routing must still not depend on chance.
        let config = Config {
            runtimes: vec![
                runtime("first", &["https://github.com/"], None, Provider::Generic),
                runtime("second", &["https://github.com/"], None, Provider::Generic),
            ],
            settings: Default::default(),
            openbao: None,
        };
        let (route, _) = route(&config, &git("https", "github.com", None), None);
        assert_eq!(summary(&route), "first https://github.com/");
    }

    // Few hosts and path segments, so that several prefixes often match one location.
    fn host_strategy() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a.com", "b.a.com", "*.a.com", "a.com:8443"])
    }

    fn path_strategy(segments: Vec<&'static str>, max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(segments), 0..max)
            .prop_map(|segments| segments.join("/"))
    }

    /// Distinct prefixes (by canonical text), spread over runtimes of one or two prefixes,
    /// some with a username.
    fn config_strategy() -> impl Strategy<Value = Config> {
        let pair = (host_strategy(), path_strategy(vec!["x", "y", "x-y"], 3));
        let user = prop::option::of(prop::sample::select(vec!["x-access-token", "bob"]));
        prop::collection::vec((pair, prop::bool::ANY, user), 1..10).prop_map(|entries| {
            let mut seen = std::collections::HashSet::new();
            let mut runtimes: Vec<RuntimeConfig> = Vec::new();
            for ((host, path), join_previous, user) in entries {
                let p = prefix(&format!("https://{host}/{path}"));
                if !seen.insert(p.to_string()) {
                    continue;
                }
                match runtimes.last_mut() {
                    Some(last) if join_previous && last.urls.len() < 2 => last.urls.push(p),
                    _ => {
                        let name = format!("r{}", runtimes.len());
                        let mut rt = runtime(&name, &[], user, Provider::Generic);
                        rt.urls.push(p);
                        runtimes.push(rt);
                    }
                }
            }
            Config {
                runtimes,
                settings: Default::default(),
                openbao: None,
            }
        })
    }

    fn location_strategy() -> impl Strategy<Value = Location> {
        let hosts = vec!["a.com", "b.a.com", "c.a.com", "a.com:8443", "c.b.a.com"];
        let path = path_strategy(vec!["x", "y", "x-y", "y.git"], 4);
        (prop::sample::select(hosts), prop::option::of(path))
            .prop_map(|(host, path)| git("https", host, path.as_deref()))
    }

    fn chosen(route: &Route<'_>) -> Option<(String, String)> {
        match route {
            Route::Runtime { runtime, prefix } => Some((runtime.name.clone(), prefix.to_string())),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn most_specific_wins(config in config_strategy(), loc in location_strategy()) {
            let all: Vec<&UrlPrefix> = config.runtimes.iter().flat_map(|r| &r.urls).collect();
            // No username in the request: every runtime competes.
            let (route, _) = route(&config, &loc, None);
            match route {
                Route::Runtime { prefix, .. } => {
                    prop_assert!(prefix.matches(&loc));
                    for other in all.iter().filter(|p| p.matches(&loc) && **p != prefix) {
                        prop_assert!(other.specificity() < prefix.specificity(), "{other} vs {prefix}");
                    }
                }
                Route::NeedsPath { .. } => {
                    prop_assert!(loc.path.is_none());
                    prop_assert!(all.iter().any(|p| p.matches_host(&loc) && !p.path.is_empty()));
                }
                Route::NoRuntime => {
                    prop_assert!(all.iter().all(|p| !p.matches(&loc)));
                }
            }
        }

        #[test]
        fn routing_ignores_the_order_of_runtimes(
            (config, shuffled) in config_strategy().prop_flat_map(|c| {
                let runtimes = c.runtimes.clone();
                (Just(c), Just(runtimes).prop_shuffle())
            }),
            loc in location_strategy(),
            user in prop::option::of(prop::sample::select(vec!["x-access-token", "bob"])),
        ) {
            let shuffled = Config { runtimes: shuffled, settings: config.settings, openbao: None };
            let (a, _) = route(&config, &loc, user);
            let (b, _) = route(&shuffled, &loc, user);
            prop_assert_eq!(chosen(&a), chosen(&b));
            prop_assert_eq!(matches!(a, Route::NoRuntime), matches!(b, Route::NoRuntime));
            prop_assert_eq!(matches!(a, Route::NeedsPath { .. }), matches!(b, Route::NeedsPath { .. }));
            // And the same input gives the same answer every time.
            let (again, _) = route(&config, &loc, user);
            prop_assert_eq!(chosen(&a), chosen(&again));
        }

        #[test]
        fn canonical_text_round_trips(host in host_strategy(), path in "[a-z~ %?#.-]{0,12}(/[a-z.]{1,5}){0,3}") {
            let encoded: String = path.replace('%', "%25").replace(' ', "%20").replace('?', "%3F").replace('#', "%23");
            if let Ok(p) = UrlPrefix::parse(&format!("https://{host}/{encoded}")) {
                let again = UrlPrefix::parse(&p.to_string());
                prop_assert_eq!(again, Ok(p));
            }
        }
    }
}
