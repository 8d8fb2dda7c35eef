//! Table tests of every branch of [`decide`], and property tests of the promises that
//! must hold whatever the request, configuration, tokens and time.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::policy::Policy;

/// 2026-11-22 00:00 UTC.
const NOW: u64 = 1_795_305_600;
const DAY: u64 = 86_400;

const CONFIG: &str = r#"
[[runtime]]
name = "acme"
provider = "github"
urls = ["https://github.com/acme/"]

[[runtime]]
name = "oss"
provider = "github"
urls = ["https://github.com/"]
username = "octocat"

[[runtime]]
name = "dc"
provider = "bitbucket-server"
urls = ["https://bb.example/"]
auth = "bearer"

[[runtime]]
name = "gen"
provider = "generic"
urls = ["https://gen.example/"]

[[runtime]]
name = "left"
provider = "github"
urls = ["https://split.example/left/"]

[[runtime]]
name = "right"
provider = "github"
urls = ["https://split.example/right/"]

[[runtime]]
name = "bot"
provider = "github"
urls = ["https://github.com/botorg/"]
app_id = 123
permissions = { contents = "write" }
"#;

fn config() -> Config {
    Config::parse(CONFIG, Path::new("config.toml")).expect("the test config is valid")
}

fn token(id: &str, runtime: &str, host: &str, expires: Option<u64>) -> TokenMeta {
    let mut t = TokenMeta::new(Some(format!("{id} token")), NOW - 10 * DAY, expires);
    t.id = id.to_string();
    t.runtimes = vec![runtime.to_string()];
    t.hosts
        .insert(runtime.to_string(), vec![format!("https://{host}")]);
    t
}

/// acme: valid; oss: expiring in 2 days; dc: valid Bearer; gen: valid (no username).
fn book() -> TokenBook {
    TokenBook {
        tokens: vec![
            token("a", "acme", "github.com", Some(NOW + 100 * DAY)),
            token("o", "oss", "github.com", Some(NOW + 2 * DAY)),
            token("d", "dc", "bb.example", None),
            token("g", "gen", "gen.example", None),
            token("l", "left", "split.example", None),
            token("k", "bot", "github.com", None),
        ],
        retired: Vec::new(),
    }
}

fn request(text: &str) -> GitCredential {
    GitCredential::parse(text).expect("the test request is valid")
}

fn request_of(text: &str) -> GitCredential {
    request(text)
}

fn plain_table() -> PlainTable {
    let mut t = PlainTable::default();
    let cred = request("protocol=https\nhost=plain.example\nusername=bob\npassword=pw-bob\n");
    t.store(&cred, None, NOW);
    t
}

/// The facts of one test; the fields default to a healthy daemon.
struct Case {
    action: GitAction,
    via: Via,
    config_broken: Option<String>,
    team_unread: Option<String>,
    request: GitCredential,
    config: Config,
    policy: Option<Policy>,
    strength: Option<StoreStrength>,
    book: Result<TokenBook, String>,
    plain: Option<Result<PlainTable, StoreProblem>>,
    backoff: HashMap<String, u64>,
    mints: Mints,
    rotation_failed: HashSet<String>,
    allow_refresh: bool,
    now: u64,
}

impl Case {
    fn new(action: GitAction, input: &str) -> Case {
        Case {
            action,
            via: Via::Local,
            config_broken: None,
            team_unread: None,
            request: request(input),
            config: config(),
            policy: None,
            strength: Some(StoreStrength::Keyring),
            book: Ok(book()),
            plain: Some(Ok(plain_table())),
            backoff: HashMap::new(),
            mints: Mints::new(),
            rotation_failed: HashSet::new(),
            allow_refresh: true,
            now: NOW,
        }
    }

    fn get(url_lines: &str) -> Case {
        Case::new(GitAction::Get, url_lines)
    }

    fn decide(&self) -> Decision {
        let source = Path::new("/etc/helperd/policy.toml");
        let plain = match &self.plain {
            Some(Ok(t)) => PlainView::Read(t),
            Some(Err(p)) => PlainView::Unavailable(p),
            None => PlainView::NotRead,
        };
        decide(&Facts {
            action: self.action,
            via: self.via,
            request: &self.request,
            lifetime: Some(60),
            config: &self.config,
            config_broken: self.config_broken.as_deref(),
            team_unread: self.team_unread.as_deref(),
            config_path: Path::new("/home/me/.config/helperd/config.toml"),
            policy: self
                .policy
                .as_ref()
                .map(|policy| PolicyInForce { policy, source }),
            store_strength: self.strength,
            book: self.book.as_ref().map_err(String::as_str),
            plain,
            refresh_backoff: &self.backoff,
            mints: &self.mints,
            rotation_failed: &self.rotation_failed,
            allow_refresh: self.allow_refresh,
            now: self.now,
        })
    }
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, Path::new("/etc/helperd/policy.toml")).expect("the test policy is valid")
}

fn served(d: &Decision) -> &ServeToken {
    match d {
        Decision::ServeToken(s) => s,
        other => panic!("expected a served token, got {other:?}"),
    }
}

fn refusal(d: &Decision) -> &Refusal {
    match d {
        Decision::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn serves_the_most_specific_runtimes_token_with_its_username_and_expiry() {
    let d = Case::get("protocol=https\nhost=github.com\npath=acme/app.git\n").decide();
    let s = served(&d);
    assert_eq!((s.runtime.as_str(), s.token_id.as_str()), ("acme", "a"));
    assert_eq!(s.username.as_deref(), Some("x-access-token"));
    assert_eq!(s.expires, Some(NOW + 100 * DAY));
    assert_eq!(s.warning, None);
    let answer = s.answer(&Secret::new("ghp_secret")).unwrap();
    assert_eq!(
        answer.expose(),
        format!(
            "username=x-access-token\npassword=ghp_secret\npassword_expiry_utc={}\n",
            NOW + 100 * DAY
        )
    );
}

#[test]
fn a_token_in_the_warning_window_is_served_with_a_warning_once_a_day() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=other/x.git\n");
    let d = case.decide();
    let s = served(&d);
    assert_eq!(s.runtime, "oss");
    let warning = s.warning.as_deref().expect("a warning inside the window");
    assert!(warning.contains("expires on") && warning.contains("helperctl renew oss"));
    // Warned today already: served without it.
    if let Ok(book) = &mut case.book {
        book.for_runtime_mut("oss")
            .unwrap()
            .warned_on
            .insert("oss".into(), NOW / DAY);
    }
    assert_eq!(served(&case.decide()).warning, None);
}

#[test]
fn a_token_that_rotates_itself_gets_no_renewal_warning_until_its_rotation_fails() {
    let rotating = |rotate_days: &str, policy_text: Option<&str>| {
        let mut case = Case::get("protocol=https\nhost=gitlab.example\npath=acme/app.git\n");
        case.config = Config::parse(
            &format!(
                "{CONFIG}\n[[runtime]]\nname = \"gl\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example/\"]\n{rotate_days}"
            ),
            Path::new("config.toml"),
        )
        .unwrap();
        case.policy = policy_text.map(policy);
        if let Ok(book) = &mut case.book {
            book.tokens
                .push(token("r", "gl", "gitlab.example", Some(NOW + 2 * DAY)));
        }
        case
    };
    let warning = |case: &Case| served(&case.decide()).warning.clone();
    // Rotating (its own rotate_days, or the policy's floor): the daemon renews it.
    assert_eq!(warning(&rotating("rotate_days = 7\n", None)), None);
    assert_eq!(warning(&rotating("", Some("rotate_days = 7\n"))), None);
    // While a rotation runs (its mark saved): still none.
    let mut running = rotating("rotate_days = 7\n", None);
    if let Ok(book) = &mut running.book {
        book.for_runtime_mut("gl").unwrap().rotation_started = Some(NOW - 1);
    }
    assert_eq!(warning(&running), None);
    // Its last rotation failed: the normal warning.
    let mut failed = rotating("rotate_days = 7\n", None);
    failed.rotation_failed.insert("r".into());
    let text = warning(&failed).expect("a failed rotation warns");
    assert!(
        text.contains("expires on") && text.contains("helperctl renew gl"),
        "{text}"
    );
    // Not rotating: the normal warning.
    assert!(warning(&rotating("", None)).is_some());
}

#[test]
fn expired_and_rejected_tokens_are_refused_with_renewal_and_username_for_gits_prompt() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/app.git\n");
    case.now = NOW + 101 * DAY;
    let d = case.decide();
    let r = refusal(&d);
    assert_eq!(r.reason, RefuseReason::Expired);
    assert_eq!(r.username.as_deref(), Some("x-access-token"));
    let renewal = r.renewal.as_ref().expect("a renewal is offered");
    assert_eq!(renewal.runtime, "acme");
    assert!(r
        .notice
        .as_deref()
        .unwrap()
        .contains("helperctl renew acme"));
    assert_eq!(r.reason.error(), None, "a refusal is a miss, not an error");

    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/app.git\n");
    if let Ok(book) = &mut case.book {
        book.for_runtime_mut("acme").unwrap().rejected_at = Some(NOW - DAY);
    }
    let d = case.decide();
    assert_eq!(refusal(&d).reason, RefuseReason::Rejected);
    assert!(refusal(&d).renewal.is_some());
}

#[test]
fn a_bearer_token_needs_the_capability_and_is_answered_as_authtype() {
    let d = Case::get("protocol=https\nhost=bb.example\n").decide();
    assert_eq!(refusal(&d).reason, RefuseReason::BearerNeedsCapability);
    assert_eq!(refusal(&d).username, None);
    let d = Case::get("capability[]=authtype\nprotocol=https\nhost=bb.example\n").decide();
    let s = served(&d);
    assert!(s.bearer && s.username.is_none());
    let answer = s.answer(&Secret::new("BBDC-x")).unwrap();
    assert_eq!(
        answer.expose(),
        "capability[]=authtype\nauthtype=Bearer\ncredential=BBDC-x\n"
    );
}

#[test]
fn a_generic_runtime_without_username_is_refused_naming_the_config_file() {
    let d = Case::get("protocol=https\nhost=gen.example\n").decide();
    let r = refusal(&d);
    assert_eq!(r.reason, RefuseReason::UsernameNeeded);
    assert!(r.notice.as_deref().unwrap().contains("config.toml"));
}

#[test]
fn a_runtime_without_token_is_refused_with_the_command_to_set_one() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    case.book = Ok(TokenBook::default());
    let d = case.decide();
    let r = refusal(&d);
    assert_eq!(r.reason, RefuseReason::NoToken);
    assert!(r
        .notice
        .as_deref()
        .unwrap()
        .contains("helperctl token set acme"));
    assert_eq!(r.username.as_deref(), Some("x-access-token"));
}

#[test]
fn a_runtime_repointed_at_other_hosts_does_not_take_its_token_along() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    if let Ok(book) = &mut case.book {
        book.for_runtime_mut("acme")
            .unwrap()
            .hosts
            .insert("acme".into(), vec!["https://elsewhere.example".into()]);
    }
    assert_eq!(refusal(&case.decide()).reason, RefuseReason::Repointed);
}

#[test]
fn unreadable_token_metadata_is_an_internal_error() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    case.book = Err("tokens.json cannot be read".into());
    let d = case.decide();
    let (kind, message) = refusal(&d).reason.error().expect("an error");
    assert_eq!(kind, RefusalError::Internal);
    assert!(message.contains("tokens.json"));
}

#[test]
fn without_a_path_runtimes_that_differ_by_path_are_not_guessed() {
    let d = Case::get("protocol=https\nhost=split.example\n").decide();
    let r = refusal(&d);
    assert!(
        matches!(&r.reason, RefuseReason::AmbiguousPath { runtimes } if runtimes == &["left", "right"])
    );
    assert!(r.notice.as_deref().unwrap().contains("useHttpPath true"));
    // A store or erase without a path changes nothing.
    let store = Case::new(
        GitAction::Store,
        "protocol=https\nhost=split.example\nusername=x-access-token\npassword=new\n",
    );
    assert_eq!(store.decide(), Decision::Nothing);
    let erase = Case::new(GitAction::Erase, "protocol=https\nhost=split.example\n");
    assert_eq!(erase.decide(), Decision::Nothing);
}

#[test]
fn a_username_that_differs_makes_the_runtime_step_aside() {
    // oss wants octocat; alice's request falls through to the plain credentials.
    let d =
        Case::get("protocol=https\nhost=github.com\npath=alice/x.git\nusername=alice\n").decide();
    assert_eq!(d, Decision::Nothing);
}

#[test]
fn plain_credentials_answer_urls_no_runtime_claims() {
    let d = Case::get("protocol=https\nhost=plain.example\n").decide();
    match d {
        Decision::ServePlain { answer } => {
            assert_eq!(answer.expose(), "username=bob\npassword=pw-bob\n")
        }
        other => panic!("expected a plain credential, got {other:?}"),
    }
    assert_eq!(
        Case::get("protocol=https\nhost=nothing.example\n").decide(),
        Decision::Nothing
    );
    let mut not_read = Case::get("protocol=https\nhost=plain.example\n");
    not_read.plain = None;
    assert_eq!(not_read.decide(), Decision::ReadPlain);
    let mut locked = Case::get("protocol=https\nhost=plain.example\n");
    locked.plain = Some(Err(StoreProblem {
        locked: true,
        message: "the file store is locked: run `helperctl unlock`".into(),
    }));
    let d = locked.decide();
    assert_eq!(
        refusal(&d).reason.error().unwrap().0,
        RefusalError::StoreLocked
    );
}

#[test]
fn plain_store_and_erase_are_decided_without_reading_the_table() {
    let mut store = Case::new(
        GitAction::Store,
        "protocol=https\nhost=plain.example\nusername=bob\npassword=new\n",
    );
    store.plain = None;
    assert_eq!(store.decide(), Decision::StorePlain { lifetime: Some(60) });
    let mut erase = Case::new(GitAction::Erase, "protocol=https\nhost=plain.example\n");
    erase.plain = None;
    assert_eq!(erase.decide(), Decision::ErasePlain);
}

#[test]
fn the_policy_refuses_plain_stores_weak_stores_and_forbidden_runtimes() {
    let mut store = Case::new(
        GitAction::Store,
        "protocol=https\nhost=plain.example\nusername=bob\npassword=new\n",
    );
    store.policy = Some(policy("store_plain_credentials = false\n"));
    let d = store.decide();
    assert!(matches!(
        refusal(&d).reason,
        RefuseReason::PlainStoreForbidden { .. }
    ));

    let mut weak = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    weak.policy = Some(policy("min_store = \"keyring\"\n"));
    weak.strength = Some(StoreStrength::KeyFile);
    let d = weak.decide();
    assert_eq!(refusal(&d).reason.error().unwrap().0, RefusalError::Policy);
    // An erase only takes secrets away: allowed whatever the store.
    let mut erase = Case::new(GitAction::Erase, "protocol=https\nhost=plain.example\n");
    erase.policy = weak.policy.clone();
    erase.strength = weak.strength;
    assert_eq!(erase.decide(), Decision::ErasePlain);

    let mut host = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    host.policy = Some(policy("allowed_hosts = [\"gitlab.example\"]\n"));
    let d = host.decide();
    assert_eq!(refusal(&d).reason, RefuseReason::RuntimePolicy);
    let event = d
        .audit_event("https://github.com/acme/x.git", Done::AsDecided, NOW)
        .unwrap();
    assert_eq!(event.event, kind::POLICY_VIOLATION);
}

#[test]
fn git_store_renews_only_a_token_that_may_not_be_served() {
    let input = "protocol=https\nhost=github.com\npath=acme/x.git\nusername=x-access-token\npassword=new-token\npassword_expiry_utc=1900000000\n";
    // A valid token: git confirms what it was given.
    assert_eq!(
        Case::new(GitAction::Store, input).decide(),
        Decision::Nothing
    );
    let mut expired = Case::new(GitAction::Store, input);
    expired.now = NOW + 200 * DAY;
    match expired.decide() {
        Decision::RenewToken(r) => {
            assert_eq!(r.runtime, "acme");
            assert_eq!(r.secret.expose(), "new-token");
            assert_eq!(r.expires, Some(1_900_000_000));
        }
        other => panic!("expected a renewal, got {other:?}"),
    }
    let mut none = Case::new(GitAction::Store, input);
    none.book = Ok(TokenBook::default());
    assert!(matches!(none.decide(), Decision::RenewToken(_)));
    // A Bearer runtime takes `credential`, not `password`.
    let bearer =
        "capability[]=authtype\nprotocol=https\nhost=bb.example\nauthtype=Bearer\ncredential=new\n";
    let mut b = Case::new(GitAction::Store, bearer);
    if let Ok(book) = &mut b.book {
        book.for_runtime_mut("dc").unwrap().rejected_at = Some(NOW);
    }
    assert!(matches!(b.decide(), Decision::RenewToken(_)));
}

#[test]
fn git_erase_marks_the_runtimes_token_rejected_only_if_it_is_ours() {
    let d = Case::new(
        GitAction::Erase,
        "protocol=https\nhost=github.com\npath=acme/x.git\nusername=x-access-token\npassword=what-git-sent\n",
    )
    .decide();
    match &d {
        Decision::MarkRejected(m) => {
            assert_eq!((m.runtime.as_str(), m.token_id.as_str()), ("acme", "a"));
            assert_eq!(
                m.only_if_secret_is.as_ref().map(Secret::expose),
                Some("what-git-sent")
            );
        }
        other => panic!("expected MarkRejected, got {other:?}"),
    }
    assert!(d.audit_event("u", Done::NotOurs, NOW).is_none());
    assert_eq!(
        d.audit_event("u", Done::AsDecided, NOW).unwrap().event,
        kind::ERASED
    );
}

#[test]
fn an_oauth_token_due_for_refresh_is_refreshed_first_unless_backing_off() {
    let mut case = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n");
    if let Ok(book) = &mut case.book {
        let t = book.for_runtime_mut("acme").unwrap();
        t.oauth_client_id = Some("client".into());
        t.expires = Some(NOW + 60);
    }
    assert_eq!(
        case.decide(),
        Decision::Refresh {
            runtime: "acme".into(),
            token_id: "a".into()
        }
    );
    // Second look after the attempt: the still-valid token is served.
    case.allow_refresh = false;
    assert_eq!(served(&case.decide()).token_id, "a");
    case.allow_refresh = true;
    case.backoff.insert("a".into(), NOW + 30);
    assert_eq!(served(&case.decide()).token_id, "a");
    // Expired and not refreshable now (the host failed a moment ago): refused with a
    // renewal.
    case.now = NOW + 61;
    case.backoff.insert("a".into(), NOW + 120);
    assert_eq!(refusal(&case.decide()).reason, RefuseReason::Expired);
}

#[test]
fn each_decision_makes_at_most_one_audit_event_without_a_secret() {
    let served = Case::get("protocol=https\nhost=github.com\npath=acme/x.git\n").decide();
    let e = served
        .audit_event("https://github.com/acme/x.git", Done::AsDecided, NOW)
        .unwrap();
    assert_eq!(
        (e.event.as_str(), e.runtime.as_deref()),
        (kind::SERVED, Some("acme"))
    );
    let plain = Case::get("protocol=https\nhost=plain.example\n").decide();
    let line = plain
        .audit_event("https://plain.example", Done::AsDecided, NOW)
        .unwrap()
        .to_line();
    assert!(!line.contains("pw-bob"), "{line}");
    assert!(Decision::Nothing
        .audit_event("u", Done::AsDecided, NOW)
        .is_none());
    let stored = Decision::StorePlain { lifetime: None };
    assert!(stored.audit_event("u", Done::NothingKept, NOW).is_none());
    assert!(Decision::ErasePlain
        .audit_event("u", Done::Erased(0), NOW)
        .is_none());
}

#[test]
fn an_erase_whose_write_waits_is_audited_as_pending_with_what_it_erased_in_memory() {
    let reason = |done| {
        let event = Decision::ErasePlain
            .audit_event("https://plain.example", done, NOW)
            .expect("audited");
        assert_eq!(event.event, kind::ERASED);
        event.reason.expect("a reason")
    };
    assert_eq!(reason(Done::Erased(2)), "2 plain credential(s)");
    assert_eq!(
        reason(Done::ErasePending(Some(1))),
        "1 plain credential(s) erased in memory; pending: written when the store answers"
    );
    assert_eq!(
        reason(Done::ErasePending(None)),
        "pending: the store has not answered; how many is known once it has read the plain credentials"
    );
}

// --- Properties ---------------------------------------------------------------------

fn runtime_strategy() -> impl Strategy<Value = String> {
    let hosts = prop::sample::select(vec!["github.com", "gitlab.example", "bb.example"]);
    let paths = prop::sample::select(vec!["", "acme/", "acme/app/", "oss/"]);
    let auth = prop::sample::select(vec!["basic", "bearer"]);
    (hosts, paths, auth, any::<bool>(), any::<bool>())
        .prop_map(|(host, path, auth, user, forward)| {
            let user = if user { "username = \"me\"\n" } else { "" };
            format!(
                "provider = \"generic\"\nurls = [\"https://{host}/{path}\"]\nauth = \"{auth}\"\n{user}forward = {forward}\n"
            )
        })
}

/// A configuration of up to 4 runtimes with distinct prefixes.
fn config_strategy() -> impl Strategy<Value = Config> {
    prop::collection::vec(runtime_strategy(), 1..5).prop_filter_map(
        "prefixes must be distinct",
        |bodies| {
            let text: String = bodies
                .iter()
                .enumerate()
                .map(|(i, b)| format!("[[runtime]]\nname = \"r{i}\"\n{b}\n"))
                .collect();
            Config::parse(&text, Path::new("config.toml")).ok()
        },
    )
}

/// For each runtime, maybe a token: expiry around NOW, maybe rejected.
fn book_strategy(runtimes: usize) -> impl Strategy<Value = TokenBook> {
    let one = (any::<bool>(), prop::option::of(-5i64..5), any::<bool>());
    prop::collection::vec(one, runtimes).prop_map(|tokens| {
        let mut book = TokenBook::default();
        let config_hosts = [
            "https://github.com",
            "https://gitlab.example",
            "https://bb.example",
        ];
        for (i, (has, expiry_days, rejected)) in tokens.into_iter().enumerate() {
            if !has {
                continue;
            }
            let expires = expiry_days.map(|d| (NOW as i64 + d * DAY as i64) as u64);
            let mut t = TokenMeta::new(None, NOW - 30 * DAY, expires);
            t.id = format!("t{i}");
            t.rejected_at = rejected.then_some(NOW - DAY);
            let name = format!("r{i}");
            t.runtimes = vec![name.clone()];
            t.hosts
                .insert(name, config_hosts.iter().map(|h| h.to_string()).collect());
            book.tokens.push(t);
        }
        book
    })
}

fn request_strategy() -> impl Strategy<Value = GitCredential> {
    let hosts = prop::sample::select(vec![
        "github.com",
        "gitlab.example",
        "bb.example",
        "other.example",
    ]);
    let paths = prop::option::of(prop::sample::select(vec![
        "acme/app.git",
        "acme/x.git",
        "oss/y.git",
        "z.git",
    ]));
    let users = prop::option::of(prop::sample::select(vec!["me", "you"]));
    (hosts, paths, users, any::<bool>()).prop_map(|(host, path, user, cap)| {
        let mut text = String::new();
        if cap {
            text.push_str("capability[]=authtype\n");
        }
        text.push_str(&format!("protocol=https\nhost={host}\n"));
        if let Some(p) = path {
            text.push_str(&format!("path={p}\n"));
        }
        if let Some(u) = user {
            text.push_str(&format!("username={u}\n"));
        }
        request(&text)
    })
}

fn policy_strategy() -> impl Strategy<Value = Option<Policy>> {
    prop::option::of(prop::sample::select(vec![
        "allowed_hosts = [\"github.com\"]\n",
        "allowed_providers = [\"github\"]\n",
        "min_store = \"keyring\"\n",
        "require_expiry = true\n",
        "allow_forwarding = false\n",
    ]))
    .prop_map(|text| text.map(policy))
}

fn world() -> impl Strategy<Value = (Config, TokenBook, GitCredential, Option<Policy>, i64)> {
    config_strategy().prop_flat_map(|config| {
        let n = config.runtimes.len();
        (
            Just(config),
            book_strategy(n),
            request_strategy(),
            policy_strategy(),
            -6i64..6,
        )
    })
}

fn decide_get(
    config: &Config,
    book: &TokenBook,
    request: &GitCredential,
    policy: Option<&Policy>,
    now: u64,
    via: Via,
) -> Decision {
    // A plain credential for every host, so that serving one is possible at all.
    let mut table = PlainTable::default();
    for host in [
        "github.com",
        "gitlab.example",
        "bb.example",
        "other.example",
    ] {
        let cred = request_of(&format!(
            "protocol=https\nhost={host}\nusername=me\npassword=plain-pw\n"
        ));
        table.store(&cred, None, NOW);
    }
    let backoff = HashMap::new();
    let mints = Mints::new();
    let rotation_failed = HashSet::new();
    decide(&Facts {
        action: GitAction::Get,
        via,
        request,
        lifetime: None,
        config,
        config_broken: None,
        team_unread: None,
        config_path: Path::new("config.toml"),
        policy: policy.map(|policy| PolicyInForce {
            policy,
            source: Path::new("/etc/helperd/policy.toml"),
        }),
        store_strength: Some(StoreStrength::KeyFile),
        book: Ok(book),
        plain: PlainView::Read(&table),
        refresh_backoff: &backoff,
        mints: &mints,
        rotation_failed: &rotation_failed,
        allow_refresh: true,
        now,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// An expired or rejected token is never served; a token is never served to a URL
    /// outside its runtime's prefixes; authtype never goes to a request without the
    /// capability; a policy violation is never served.
    #[test]
    fn served_tokens_keep_every_promise(
        (config, book, request, policy, day) in world()
    ) {
        let now = (NOW as i64 + day * DAY as i64) as u64;
        let decision = decide_get(&config, &book, &request, policy.as_ref(), now, Via::Local);
        let Decision::ServeToken(s) = decision else { return Ok(()); };
        let token = book.tokens.iter().find(|t| t.id == s.token_id).expect("a served token is in the book");
        prop_assert!(token.rejected_at.is_none(), "served a rejected token");
        prop_assert!(token.expires.is_none_or(|t| now < t), "served an expired token");
        prop_assert!(token.runtimes.contains(&s.runtime));
        let rt = config.runtime(&s.runtime).expect("served for a configured runtime");
        let loc = Location::from_git(request.protocol.as_deref(), request.host.as_deref(), request.path.as_deref()).unwrap();
        prop_assert!(rt.urls.iter().any(|p| p.matches(&loc) || (loc.path.is_none() && p.matches_host(&loc))),
            "served {} to {loc} outside its prefixes", s.runtime);
        let answer = s.answer(&Secret::new("sekret")).unwrap();
        if !request.capability_authtype {
            prop_assert!(!answer.expose().contains("authtype"), "authtype without the capability");
            prop_assert!(!answer.expose().contains("credential="));
        }
        if let Some(p) = &policy {
            let source = Path::new("/etc/helperd/policy.toml");
            prop_assert!(p.check_runtime(rt, source).is_ok(), "served a runtime the policy forbids");
            prop_assert!(p.check_store(StoreStrength::KeyFile, source).is_ok(), "served through a store the policy forbids");
        }
    }

    /// A refused token never leaves: the refusal's answer has no password, and the token
    /// is never named in it.
    #[test]
    fn refusals_carry_no_secret((config, book, request, policy, day) in world()) {
        let now = (NOW as i64 + day * DAY as i64) as u64;
        if let Decision::Refuse(r) = decide_get(&config, &book, &request, policy.as_ref(), now, Via::Local) {
            for text in [r.notice.as_deref(), r.renewal.as_ref().map(|o| o.text.as_str())].into_iter().flatten() {
                prop_assert!(!text.contains("sekret"));
            }
        }
    }

    /// Through the forward socket: only a runtime marked `forward = true` is ever served,
    /// never a plain credential, never with forwarding forbidden by the policy; and every
    /// other request gets the same words, whatever exists.
    #[test]
    fn forwarded_requests_get_only_forwarded_runtimes((config, book, request, policy, day) in world()) {
        let now = (NOW as i64 + day * DAY as i64) as u64;
        let decision = decide_get(&config, &book, &request, policy.as_ref(), now, Via::Forward);
        match &decision {
            Decision::ServePlain { .. } => prop_assert!(false, "a plain credential was forwarded"),
            Decision::ServeToken(s) => {
                prop_assert!(config.runtime(&s.runtime).unwrap().forward, "{} is not forwarded", s.runtime);
                prop_assert!(policy.as_ref().is_none_or(|p| p.allow_forwarding));
            }
            Decision::Refuse(r) if r.reason == RefuseReason::NotForwarded => {
                prop_assert_eq!(r, &not_forwarded(), "the same words whatever the reason");
            }
            _ => {}
        }
    }
}

#[test]
fn forwarded_requests_reach_forwarded_runtimes_only_and_learn_nothing_else() {
    let forwarded = CONFIG.replace(
        "name = \"acme\"\nprovider = \"github\"",
        "name = \"acme\"\nforward = true\nprovider = \"github\"",
    );
    let config = Config::parse(&forwarded, Path::new("config.toml")).unwrap();
    let forward = |input: &str, action: GitAction| {
        let mut case = Case::new(action, input);
        case.config = config.clone();
        case.via = Via::Forward;
        case
    };
    let acme = "protocol=https\nhost=github.com\npath=acme/app.git\n";
    assert_eq!(
        served(&forward(acme, GitAction::Get).decide()).runtime,
        "acme"
    );
    // Not forwarded: another runtime, a plain credential, no runtime, an ambiguous host.
    let words = not_forwarded();
    for input in [
        "protocol=https\nhost=github.com\npath=other/x.git\n",
        "protocol=https\nhost=plain.example\n",
        "protocol=https\nhost=nothing.example\n",
        "protocol=https\nhost=split.example\n",
    ] {
        assert_eq!(
            forward(input, GitAction::Get).decide(),
            Decision::Refuse(words.clone()),
            "{input}"
        );
    }
    // No plain store or erase through the forward either.
    let store = "protocol=https\nhost=plain.example\nusername=bob\npassword=x\n";
    assert_eq!(
        forward(store, GitAction::Store).decide(),
        Decision::Refuse(words.clone())
    );
    assert_eq!(
        forward(store, GitAction::Erase).decide(),
        Decision::Refuse(words.clone())
    );
    // A 401 through the forward marks the forwarded runtime's token rejected.
    assert!(matches!(
        forward("protocol=https\nhost=github.com\npath=acme/app.git\nusername=x-access-token\npassword=p\n", GitAction::Erase).decide(),
        Decision::MarkRejected(_)
    ));
    // The policy closes forwarding whatever the config says.
    let mut closed = forward(acme, GitAction::Get);
    closed.policy = Some(policy("allow_forwarding = false\n"));
    assert_eq!(closed.decide(), Decision::Refuse(words));
    let event = Decision::Refuse(not_forwarded())
        .audit_event("u", Done::AsDecided, NOW)
        .unwrap();
    assert_eq!(event.reason.as_deref(), Some("not forwarded"));
}

#[test]
fn the_forward_socket_opens_only_with_a_forwarded_runtime_and_a_policy_that_allows_it() {
    let mut config = config();
    assert!(forwarding(&config, None, None)
        .unwrap_err()
        .contains("no runtime"));
    config.runtimes[0].forward = true;
    assert_eq!(forwarding(&config, None, None), Ok(()));
    let closed = policy("allow_forwarding = false\n");
    let source = Path::new("/etc/helperd/policy.toml");
    let in_force = Some(PolicyInForce {
        policy: &closed,
        source,
    });
    assert!(forwarding(&config, in_force, None)
        .unwrap_err()
        .contains("allow_forwarding = false"));
    // A policy file that exists but was refused may forbid it: closed, to be safe.
    let refused = forwarding(&config, None, Some("it is writable by others"));
    assert!(refused.unwrap_err().contains("refused"));
}

#[test]
fn with_no_configuration_read_nothing_falls_to_the_plain_credentials() {
    let mut case = Case::get("protocol=https\nhost=plain.example\n");
    case.config_broken = Some("config.toml:3: TOML syntax error".into());
    let d = case.decide();
    let (kind, message) = refusal(&d).reason.error().expect("an error");
    assert_eq!(kind, RefusalError::Config);
    assert!(
        message.contains("config.toml:3") && message.contains("serves nothing"),
        "{message}"
    );
}

/// A GitHub App runtime's state in memory: a token `serial` expiring at `expires_at`.
fn minted(serial: u64, expires_at: u64) -> Mints {
    let mut m = Mints::new();
    m.insert(
        "bot".into(),
        MintView {
            key_id: "k".into(),
            token: Some(MintedView {
                serial,
                expires_at,
                installation: 789,
            }),
            failure: None,
        },
    );
    m
}

const BOT: &str = "protocol=https\nhost=github.com\npath=botorg/app.git\n";

#[test]
fn a_github_app_runtime_mints_then_serves_the_minted_token() {
    let mut case = Case::get(BOT);
    assert_eq!(
        case.decide(),
        Decision::Mint {
            runtime: "bot".into(),
            key_id: "k".into()
        }
    );
    case.mints = minted(4, NOW + 3600);
    let Decision::ServeToken(serve) = case.decide() else {
        panic!("served: {:?}", case.decide())
    };
    assert_eq!(serve.minted, Some(4));
    assert_eq!(serve.username.as_deref(), Some("x-access-token"));
    assert_eq!(serve.expires, Some(NOW + 3600));
    assert_eq!(serve.token_id, "k");
    // Within the margin: minted anew; if that fails, the old one serves while valid.
    case.mints = minted(4, NOW + MINT_AHEAD_SECS);
    assert!(matches!(case.decide(), Decision::Mint { .. }));
    case.allow_refresh = false;
    assert!(matches!(
        case.decide(),
        Decision::ServeToken(ServeToken {
            minted: Some(4),
            ..
        })
    ));
    // Expired and the mint failed: refused with why.
    case.mints = minted(4, NOW);
    case.mints.get_mut("bot").unwrap().failure = Some(("GitHub said no".into(), NOW + 60));
    case.allow_refresh = true;
    let Decision::Refuse(r) = case.decide() else {
        panic!("refused: {:?}", case.decide())
    };
    assert_eq!(r.reason, RefuseReason::NotMinted);
    assert!(r.notice.unwrap().contains("GitHub said no"));
    assert!(
        r.renewal.is_none() && r.username.is_none(),
        "nothing to type: it is minted"
    );
    // A token minted with another key is not served.
    case.mints = minted(4, NOW + 3600);
    case.mints.get_mut("bot").unwrap().key_id = "old".into();
    assert!(matches!(case.decide(), Decision::Mint { .. }));
}

#[test]
fn a_github_app_runtime_without_its_key_says_set_app() {
    let mut case = Case::get(BOT);
    case.book.as_mut().unwrap().tokens.retain(|t| t.id != "k");
    let Decision::Refuse(r) = case.decide() else {
        panic!("refused: {:?}", case.decide())
    };
    assert!(r.notice.unwrap().contains("helperctl token set-app bot"));
}

#[test]
fn a_github_app_token_erased_is_dropped_and_a_store_changes_nothing() {
    let mut case = Case::new(
        GitAction::Erase,
        &format!("{BOT}username=x-access-token\npassword=ghs_x\n"),
    );
    case.mints = minted(9, NOW + 3600);
    let Decision::DropMinted(d) = case.decide() else {
        panic!("dropped: {:?}", case.decide())
    };
    assert_eq!((d.serial, d.runtime.as_str()), (9, "bot"));
    assert_eq!(d.only_if_secret_is, Some(Secret::new("ghs_x")));
    case.mints = Mints::new();
    assert_eq!(case.decide(), Decision::Nothing);
    case.action = GitAction::Store;
    assert_eq!(
        case.decide(),
        Decision::Nothing,
        "a typed password never replaces the key"
    );
}
