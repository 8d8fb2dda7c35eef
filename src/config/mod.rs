//! `config.toml` (DESIGN.md §2): the user's runtimes and settings.
//!
//! The file is edited by hand, so every mistake is an error that names the file, the line
//! and the problem, and nothing is ignored: an unknown key is far more likely a typo of a
//! known one than a setting from the future. The first problem found is reported.
//! Parsed with `toml_edit`, whose spans give the line numbers. Pure apart from
//! [`file`](mod@file), which reads the file.
//!
//! Here: the types and [`Config::parse`], which reads `[settings]` and `[[runtime]]`.
//! [`openbao`] reads `[openbao]`; `parse.rs` holds [`ConfigError`] and the helpers both
//! parsers share; [`edit`] changes the file's text for `helperctl runtime add|remove`.

pub mod edit;
pub mod file;
pub mod openbao;
mod parse;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, Item, Table, TableLike};

use crate::location::UrlPrefix;
use crate::provider::descriptor::ApiUser;
use crate::provider::Provider;
use openbao::OpenBaoSettings;
pub use parse::ConfigError;
use parse::{check_keys, key_span, value_span, Cx};

/// How the token goes to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthScheme {
    /// username + password (the token), git's usual HTTP Basic.
    #[default]
    Basic,
    /// `Authorization: Bearer`, for tokens the server accepts only that way (Bitbucket DC
    /// project and repository tokens); needs git 2.46+ (`capability[]=authtype`).
    Bearer,
}

impl AuthScheme {
    /// The name used in `config.toml`.
    pub fn name(self) -> &'static str {
        match self {
            AuthScheme::Basic => "basic",
            AuthScheme::Bearer => "bearer",
        }
    }

    /// The scheme with this [`AuthScheme::name`].
    pub fn parse(s: &str) -> Option<AuthScheme> {
        [AuthScheme::Basic, AuthScheme::Bearer]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

/// One `[[runtime]]` table: a named set of URL prefixes served by one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Runtime name as written in config.toml; unique, used in status, commands and the audit log.
    pub name: String,
    /// The forge; decides the username convention, the token page and the API.
    pub provider: Provider,
    /// Never empty.
    pub urls: Vec<UrlPrefix>,
    /// The username sent to git; `None`: the provider's convention
    /// ([`RuntimeConfig::effective_username`]).
    pub username: Option<String>,
    /// The provider's API, when it is not the provider's default for the host (GitHub
    /// Enterprise, self-hosted GitLab...).
    pub api_url: Option<String>,
    /// How git sends the token: Basic (username + password) or Bearer (git 2.46+).
    pub auth: AuthScheme,
    /// The runtime's own OAuth app for `helperctl login`; takes precedence over the
    /// policy's `[[oauth_app]]`.
    pub oauth_client_id: Option<String>,
    /// May be used from remote machines through the forward socket (DESIGN.md §11).
    pub forward: bool,
    /// The Atlassian account email: Bitbucket Cloud's REST API takes an API token with it
    /// (git takes it with the username), so checking a token needs it.
    pub email: Option<String>,
    /// 1-based line of its `[[runtime]]` header, for messages (0 for a team runtime).
    pub line: usize,
    /// Set for a team runtime, read from OpenBao rather than `config.toml`.
    pub team: Option<TeamOrigin>,
    /// Set for a GitHub App runtime: the daemon mints its tokens (DESIGN.md §13).
    pub app: Option<GitHubApp>,
    /// GitLab: rotate the token through the host's self-rotate endpoint when it enters its
    /// last N days (issue 18; the policy's `rotate_days` is a floor, see
    /// [`crate::rotation::window_days`]).
    pub rotate_days: Option<u32>,
    /// GitLab: which self-rotate endpoint the token uses (`rotate_via`).
    pub rotate_via: RotateVia,
}

/// The kind of GitLab access token, which decides its self-rotate endpoint. GitLab's
/// `GET /personal_access_tokens/self` answers for all three alike and names no project or
/// group, so the runtime says it (`rotate_via = "project:acme/app"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RotateVia {
    /// A personal access token: `POST /personal_access_tokens/self/rotate`.
    #[default]
    Personal,
    /// A project access token: `POST /projects/:id/access_tokens/self/rotate`.
    Project(String),
    /// A group access token: `POST /groups/:id/access_tokens/self/rotate`.
    Group(String),
}

impl RotateVia {
    /// Reads `personal`, `project:ID-OR-PATH` or `group:ID-OR-PATH`.
    pub fn parse(text: &str) -> Result<RotateVia, String> {
        let bad = || {
            format!(
                "rotate_via must be \"personal\", \"project:ID\" or \"group:ID\" (an id or a path like acme/app), not {text:?}"
            )
        };
        let named = |rest: &str| {
            let rest = rest.trim();
            let ok = !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
            ok.then(|| rest.to_string()).ok_or_else(bad)
        };
        match text.split_once(':') {
            None if text == "personal" => Ok(RotateVia::Personal),
            Some(("project", rest)) => named(rest).map(RotateVia::Project),
            Some(("group", rest)) => named(rest).map(RotateVia::Group),
            _ => Err(bad()),
        }
    }

    /// The text `parse` reads, for the config file and `status`.
    pub fn text(&self) -> String {
        match self {
            RotateVia::Personal => "personal".into(),
            RotateVia::Project(p) => format!("project:{p}"),
            RotateVia::Group(g) => format!("group:{g}"),
        }
    }
}

/// A runtime's GitHub App (`app_id`, ...): its private key is the runtime's secret
/// (`helperctl token set-app`), and git gets installation tokens the daemon mints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubApp {
    /// The app's id (Settings > Developer settings > GitHub Apps > the app: "App ID").
    pub app_id: u64,
    /// The app's client id (`Iv23...`), which GitHub prefers as the JWT's `iss`.
    pub client_id: Option<String>,
    /// The installation to mint for; `None`: found from the URL prefixes' owner.
    pub installation_id: Option<u64>,
    /// Permissions asked for (`contents` -> `write`); empty: all the installation has.
    pub permissions: BTreeMap<String, String>,
}

impl GitHubApp {
    /// The JWT's `iss`: the client id, else the app id.
    pub fn issuer(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| self.app_id.to_string())
    }
}

/// An `api_url` (config.toml, or a team entry): http(s) with one host, kept as written
/// without its trailing `/` (its path matters). `Err`: why, with any password redacted.
pub fn parse_api_url(value: &str) -> Result<String, String> {
    // Parsed like a prefix for its error messages.
    let checked = UrlPrefix::parse(value).and_then(|p| match p.scheme.as_str() {
        "https" | "http" if !matches!(p.host, crate::location::HostPattern::Wildcard(_)) => Ok(()),
        "https" | "http" => Err("a wildcard host names no single server".to_string()),
        other => Err(format!("the scheme must be https or http, not {other:?}")),
    });
    match checked {
        Ok(()) => Ok(value.trim_end_matches('/').to_string()),
        Err(why) => Err(format!(
            "api_url {:?} is malformed: {why}",
            helperd_wire::url::redact_password(value)
        )),
    }
}

/// Whether `name = level` is a GitHub App permission as GitHub's API spells them
/// (`contents` = `read` | `write` | `admin`). Shared by config.toml and team entries.
pub fn valid_permission(name: &str, level: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && PERMISSION_LEVELS.contains(&level)
}

/// The rules a GitHub App runtime's other fields follow, wherever it is defined
/// (config.toml, a team entry). `Err`: the field at fault (`app_id` or `urls`) and why.
pub fn check_app_runtime(
    provider: Provider,
    urls: &[UrlPrefix],
    username: Option<&str>,
    auth: AuthScheme,
    installation_id: Option<u64>,
) -> Result<(), (&'static str, String)> {
    if !provider.descriptor().github_apps {
        return Err((
            "app_id",
            format!(
                "app_id: {} has no GitHub Apps (only provider = \"github\" runtimes hold one)",
                provider.descriptor().title
            ),
        ));
    }
    if username.is_some_and(|u| u != "x-access-token") || auth != AuthScheme::Basic {
        return Err((
            "app_id",
            "a GitHub App runtime sends git the username x-access-token with Basic auth; remove username and auth".into(),
        ));
    }
    let scope = app_scope(urls).map_err(|why| ("urls", why))?;
    if scope.owner.is_none() && installation_id.is_none() {
        return Err((
            "urls",
            "a GitHub App runtime needs urls naming the account it is installed on (https://github.com/acme/), or installation_id".into(),
        ));
    }
    Ok(())
}

/// What a GitHub App runtime's URL prefixes name: the one owner (account) and, when every
/// prefix names a repository, those repositories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppScope {
    /// The account all prefixes are under; `None` when a prefix names the whole host.
    pub owner: Option<String>,
    /// Repository names (without the owner), when every prefix names one; else empty.
    pub repositories: Vec<String>,
}

/// [`AppScope`] of URL prefixes; `Err`: they name more than one owner (an installation
/// belongs to one account).
pub fn app_scope(urls: &[UrlPrefix]) -> Result<AppScope, String> {
    let mut owners: Vec<&str> = Vec::new();
    let mut repositories = Vec::new();
    let mut every_prefix_names_a_repo = true;
    let mut whole_host = false;
    for u in urls {
        let mut parts = u.path.split('/').filter(|p| !p.is_empty());
        match parts.next() {
            None => {
                whole_host = true;
                every_prefix_names_a_repo = false;
            }
            Some(owner) => {
                if !owners.contains(&owner) {
                    owners.push(owner);
                }
                match parts.next() {
                    Some(repo) => {
                        let repo = repo.strip_suffix(".git").unwrap_or(repo).to_string();
                        if !repositories.contains(&repo) {
                            repositories.push(repo);
                        }
                    }
                    None => every_prefix_names_a_repo = false,
                }
            }
        }
    }
    if owners.len() > 1 {
        return Err(format!(
            "a GitHub App installation belongs to one account, and the urls name {}; make one runtime per account",
            owners.join(", ")
        ));
    }
    if !every_prefix_names_a_repo {
        repositories.clear();
    }
    Ok(AppScope {
        owner: owners
            .first()
            .filter(|_| !whole_host)
            .map(|o| o.to_string()),
        repositories,
    })
}

/// Where a team runtime came from (DESIGN.md §10): shown by `status` and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamOrigin {
    /// `<mount>/<team_path>/<name>`: what `bao kv get` takes.
    pub path: String,
    /// The KV version 2 version that was read.
    pub version: u64,
}

impl RuntimeConfig {
    /// Who a token is checked as at the provider's API: Bitbucket Cloud's takes the
    /// account email, the others the username git sends.
    pub fn api_user(&self) -> Option<&str> {
        let api = self.provider.descriptor().api.as_ref();
        match api.map(|api| api.user) {
            Some(ApiUser::Email) => self.email.as_deref(),
            Some(ApiUser::Username) | None => self.effective_username(),
        }
    }

    /// The username answered to git: the configured one, else the provider's convention.
    pub fn effective_username(&self) -> Option<&str> {
        self.username
            .as_deref()
            .or_else(|| self.provider.descriptor().default_username)
    }

    /// Basic auth with no username to send: the user must configure one.
    pub fn needs_username(&self) -> bool {
        self.effective_username().is_none() && self.auth == AuthScheme::Basic
    }
}

/// `[settings]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A token expiring within this many days is served with a warning.
    pub warn_days: u32,
    /// A token unused for this many days is reported as stale.
    pub stale_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            warn_days: 7,
            stale_days: 90,
        }
    }
}

/// The whole of `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// In file order.
    pub runtimes: Vec<RuntimeConfig>,
    /// `[settings]`, with defaults for what the file leaves out.
    pub settings: Settings,
    /// `[openbao]`, when the machine uses team runtimes or the OpenBao store.
    pub openbao: Option<OpenBaoSettings>,
}

/// `config.toml` in the config folder.
pub fn config_file(config_dir: &Path) -> PathBuf {
    config_dir.join("config.toml")
}

/// The keys a `[[runtime]]` table may have, in the order the docs list them.
const RUNTIME_KEYS: [&str; 15] = [
    "name",
    "provider",
    "urls",
    "username",
    "api_url",
    "auth",
    "oauth_client_id",
    "forward",
    "email",
    "app_id",
    "app_client_id",
    "installation_id",
    "permissions",
    "rotate_days",
    "rotate_via",
];

/// Permission levels GitHub takes in an installation token request.
const PERMISSION_LEVELS: [&str; 3] = ["read", "write", "admin"];

const SETTINGS_KEYS: [&str; 2] = ["warn_days", "stale_days"];

impl Config {
    /// Parses the text of `config.toml`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Cx::new(text, path);
        let doc = cx.document()?;
        let root = doc.as_table();
        let mut config = Config::default();
        for (key, item) in root.iter() {
            match key {
                "settings" => config.settings = parse_settings(&cx, item, value_span(root, key))?,
                "runtime" => config.runtimes = parse_runtimes(&cx, item, value_span(root, key))?,
                "openbao" => {
                    config.openbao = Some(openbao::parse(
                        &cx,
                        item,
                        value_span(root, key),
                    )?)
                }
                _ => {
                    return Err(cx.error(
                        key_span(root, key),
                        format!(
                            "unknown key {key:?}; config.toml has only [settings], [openbao] and [[runtime]] tables"
                        ),
                    ))
                }
            }
        }
        Ok(config)
    }

    /// The runtime with this name.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeConfig> {
        self.runtimes.iter().find(|r| r.name == name)
    }

    /// A local and a team runtime named `name` (DESIGN.md §10): the one place two runtimes
    /// share a name, which is refused rather than settled by a silent choice.
    pub fn name_conflict(&self, name: &str) -> Option<(&RuntimeConfig, &RuntimeConfig)> {
        let mut same = self.runtimes.iter().filter(|r| r.name == name);
        let first = same.next()?;
        same.next().map(|second| (first, second))
    }

    /// Base URLs (`https://github.com`) where some runtime prefix has a path: git must send
    /// paths there (`credential.<url>.useHttpPath`). Sorted, deduplicated; wildcard hosts
    /// appear as their pattern, which git's `credential.<url>` matching understands.
    pub fn hosts_needing_path(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .runtimes
            .iter()
            .flat_map(|r| r.urls.iter())
            .filter(|u| !u.path.is_empty())
            .map(UrlPrefix::base_url)
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// `span`: where `settings` is written, for an error about its type.
fn parse_settings(
    cx: &Cx<'_>,
    item: &Item,
    span: Option<Range<usize>>,
) -> Result<Settings, ConfigError> {
    let table = item
        .as_table_like()
        .ok_or_else(|| cx.error(span, "settings must be a table: [settings]".into()))?;
    check_keys(cx, table, &SETTINGS_KEYS, "[settings]")?;
    let mut settings = Settings::default();
    if let Some(days) = days_setting(cx, table, "warn_days")? {
        settings.warn_days = days;
    }
    if let Some(days) = days_setting(cx, table, "stale_days")? {
        settings.stale_days = days;
    }
    Ok(settings)
}

fn days_setting(cx: &Cx<'_>, table: &dyn TableLike, key: &str) -> Result<Option<u32>, ConfigError> {
    table
        .get(key)
        .map(|item| cx.days(key, item, value_span(table, key), 0))
        .transpose()
}

/// `span`: where `runtime` is written, for an error about its type.
fn parse_runtimes(
    cx: &Cx<'_>,
    item: &Item,
    span: Option<Range<usize>>,
) -> Result<Vec<RuntimeConfig>, ConfigError> {
    let tables: &ArrayOfTables = item.as_array_of_tables().ok_or_else(|| {
        cx.error(
            span,
            "runtime must be written as [[runtime]] tables (double brackets), one per runtime"
                .into(),
        )
    })?;
    let mut runtimes: Vec<RuntimeConfig> = Vec::new();
    // Canonical prefix -> (runtime name, line of the url): two runtimes may not share one.
    let mut prefixes: HashMap<String, (String, usize)> = HashMap::new();
    for table in tables.iter() {
        let runtime = parse_runtime(cx, table)?;
        if let Some(first) = runtimes.iter().find(|r| r.name == runtime.name) {
            return Err(cx.error(
                value_span(table, "name"),
                format!(
                    "runtime {:?} is defined twice (first at line {})",
                    runtime.name, first.line
                ),
            ));
        }
        check_shared_prefixes(cx, table, &runtime, &mut prefixes)?;
        runtimes.push(runtime);
    }
    Ok(runtimes)
}

/// DESIGN.md §6: two runtimes with the same prefix would make the choice a guess.
fn check_shared_prefixes(
    cx: &Cx<'_>,
    table: &Table,
    runtime: &RuntimeConfig,
    seen: &mut HashMap<String, (String, usize)>,
) -> Result<(), ConfigError> {
    let spans = url_spans(table);
    for (i, prefix) in runtime.urls.iter().enumerate() {
        let span = spans.get(i).cloned().flatten();
        let line = cx.line(span.clone()).unwrap_or(runtime.line);
        let canonical = prefix.to_string();
        if let Some((other, other_line)) = seen.get(&canonical) {
            let message = if *other == runtime.name {
                format!(
                    "runtime {:?}: url {canonical} is listed twice (first at line {other_line})",
                    runtime.name
                )
            } else {
                format!(
                    "runtime {:?}: url {canonical} is already used by runtime {other:?} (line {other_line})",
                    runtime.name
                )
            };
            return Err(cx.error(span, message));
        }
        seen.insert(canonical, (runtime.name.clone(), line));
    }
    Ok(())
}

/// Spans of the `urls` array's values, in order (the runtime was parsed, so it is one).
fn url_spans(table: &Table) -> Vec<Option<Range<usize>>> {
    table
        .get("urls")
        .and_then(Item::as_array)
        .map(|a| a.iter().map(toml_edit::Value::span).collect())
        .unwrap_or_default()
}

fn parse_runtime(cx: &Cx<'_>, table: &Table) -> Result<RuntimeConfig, ConfigError> {
    let header = table.span();
    let name = runtime_name(cx, table)?;
    let rt = RtCx {
        cx,
        table,
        name: &name,
    };
    check_keys(cx, table, &RUNTIME_KEYS, &format!("runtime {name:?}"))?;
    let provider = rt.provider()?;
    let urls = rt.urls()?;
    let username = rt.optional_text("username")?;
    let api_url = rt.api_url()?;
    let auth = rt.auth()?;
    let oauth_client_id = rt.optional_text("oauth_client_id")?;
    let forward = rt.flag("forward")?;
    let email = rt.optional_text("email")?;
    let app = rt.app(provider, &urls, username.as_deref(), auth)?;
    let (rotate_days, rotate_via) = rt.rotation(provider)?;
    Ok(RuntimeConfig {
        app,
        rotate_days,
        rotate_via,
        email,
        provider,
        urls,
        username,
        api_url,
        auth,
        oauth_client_id,
        forward,
        // A parsed table always has a header span; line 1 is a harmless fallback.
        line: cx.line(header).unwrap_or(1),
        name,
        team: None,
    })
}

/// Names appear in commands, file names of state and messages: keep them plain.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn runtime_name(cx: &Cx<'_>, table: &Table) -> Result<String, ConfigError> {
    let Some(item) = table.get("name") else {
        return Err(cx.error(
            table.span(),
            "[[runtime]] table has no name; add name = \"...\"".into(),
        ));
    };
    let span = value_span(table, "name");
    let name = item.as_str().ok_or_else(|| {
        cx.error(
            span.clone(),
            format!("runtime name must be a string, not {}", item.type_name()),
        )
    })?;
    if !valid_name(name) {
        return Err(cx.error(
            span,
            format!(
                "runtime name {name:?} is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'"
            ),
        ));
    }
    Ok(name.to_string())
}

/// One `[[runtime]]` table being read, once its name is known: errors start with it.
struct RtCx<'a> {
    cx: &'a Cx<'a>,
    table: &'a Table,
    name: &'a str,
}

impl RtCx<'_> {
    fn error(&self, span: Option<Range<usize>>, problem: String) -> ConfigError {
        self.cx
            .error(span, format!("runtime {:?}: {problem}", self.name))
    }

    fn missing(&self, key: &str, example: &str) -> ConfigError {
        self.error(
            self.table.span(),
            format!("{key} is missing; add {key} = {example}"),
        )
    }

    /// The string value of `key`, if present; any other type is an error.
    fn text(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) => Ok(Some(s)),
            None => Err(self.error(
                value_span(self.table, key),
                format!("{key} must be a string, not {}", item.type_name()),
            )),
        }
    }

    /// An optional `true`/`false` (absent: false).
    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(false);
        };
        item.as_bool().ok_or_else(|| {
            self.error(
                value_span(self.table, key),
                format!("{key} must be true or false, not {}", item.type_name()),
            )
        })
    }

    /// An optional free-text value: not empty, no control characters (it may be echoed to
    /// git, where a newline would forge a protocol line).
    fn optional_text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.text(key)? else {
            return Ok(None);
        };
        let problem = if value.is_empty() {
            Some(format!("{key} is empty; remove it or give a value"))
        } else if value.chars().any(char::is_control) {
            Some(format!("{key} contains a control character"))
        } else {
            None
        };
        match problem {
            Some(p) => Err(self.error(value_span(self.table, key), p)),
            None => Ok(Some(value.to_string())),
        }
    }

    fn provider(&self) -> Result<Provider, ConfigError> {
        let value = self
            .text("provider")?
            .ok_or_else(|| self.missing("provider", "\"github\""))?;
        Provider::parse(value).ok_or_else(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
            self.error(
                value_span(self.table, "provider"),
                format!(
                    "unknown provider {value:?}; use one of {} (gitea also serves Forgejo and Codeberg)",
                    names.join(", ")
                ),
            )
        })
    }

    fn urls(&self) -> Result<Vec<UrlPrefix>, ConfigError> {
        let example = "[\"https://github.com/acme/\"]";
        let item = self
            .table
            .get("urls")
            .ok_or_else(|| self.missing("urls", example))?;
        let span = value_span(self.table, "urls");
        let array = item.as_array().ok_or_else(|| {
            self.error(
                span.clone(),
                format!(
                    "urls must be an array of strings, like urls = {example}, not {}",
                    item.type_name()
                ),
            )
        })?;
        if array.is_empty() {
            return Err(self.error(span, "urls is empty; give at least one URL prefix".into()));
        }
        array.iter().map(|v| self.url(v)).collect()
    }

    fn url(&self, value: &toml_edit::Value) -> Result<UrlPrefix, ConfigError> {
        let text = value.as_str().ok_or_else(|| {
            self.error(
                value.span(),
                format!("urls must hold strings, not {}", value.type_name()),
            )
        })?;
        let prefix = UrlPrefix::parse(text).and_then(|p| {
            // A token only travels over HTTP(S); `htps://` must not be a silent no-match.
            if matches!(p.scheme.as_str(), "https" | "http") {
                Ok(p)
            } else {
                Err(format!(
                    "the scheme must be https or http, not {:?}",
                    p.scheme
                ))
            }
        });
        prefix.map_err(|why| {
            let shown = helperd_wire::url::redact_password(text);
            self.error(value.span(), format!("url {shown:?} is malformed: {why}"))
        })
    }

    fn api_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.text("api_url")? else {
            return Ok(None);
        };
        parse_api_url(value)
            .map(Some)
            .map_err(|why| self.error(value_span(self.table, "api_url"), why))
    }

    /// An optional whole number above 0.
    fn id(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_integer().map(u64::try_from) {
            Some(Ok(n)) if n > 0 => Ok(Some(n)),
            _ => Err(self.error(
                value_span(self.table, key),
                format!("{key} must be a whole number above 0 (as GitHub shows it)"),
            )),
        }
    }

    /// `rotate_days` and `rotate_via`: a GitLab runtime whose token rotates itself.
    fn rotation(&self, provider: Provider) -> Result<(Option<u32>, RotateVia), ConfigError> {
        let days = match self.table.get("rotate_days") {
            None => None,
            Some(item) => match item.as_integer() {
                Some(n) if (1..=i64::from(crate::rotation::GITLAB_MAX_DAYS)).contains(&n) => {
                    Some(n as u32)
                }
                _ => {
                    return Err(self.error(
                        value_span(self.table, "rotate_days"),
                        format!(
                            "rotate_days must be a whole number of days from 1 to {}",
                            crate::rotation::GITLAB_MAX_DAYS
                        ),
                    ))
                }
            },
        };
        let via = match self.text("rotate_via")? {
            None => RotateVia::Personal,
            Some(text) => RotateVia::parse(text)
                .map_err(|why| self.error(value_span(self.table, "rotate_via"), why))?,
        };
        let used = days.is_some() || self.table.contains_key("rotate_via");
        if used && provider != Provider::GitLab {
            let key = if days.is_some() {
                "rotate_days"
            } else {
                "rotate_via"
            };
            return Err(self.error(
                key_span(self.table, key),
                format!(
                    "{key}: only GitLab tokens rotate themselves (provider = \"gitlab\"), not {}",
                    provider.descriptor().title
                ),
            ));
        }
        Ok((days, via))
    }

    /// `app_id`, `app_client_id`, `installation_id`, `permissions`: a GitHub App runtime.
    fn app(
        &self,
        provider: Provider,
        urls: &[UrlPrefix],
        username: Option<&str>,
        auth: AuthScheme,
    ) -> Result<Option<GitHubApp>, ConfigError> {
        let Some(app_id) = self.id("app_id")? else {
            for key in ["app_client_id", "installation_id", "permissions"] {
                if self.table.contains_key(key) {
                    return Err(self.error(
                        key_span(self.table, key),
                        format!("{key} belongs to a GitHub App runtime; add app_id = ... too"),
                    ));
                }
            }
            return Ok(None);
        };
        let installation_id = self.id("installation_id")?;
        check_app_runtime(provider, urls, username, auth, installation_id)
            .map_err(|(key, why)| self.error(value_span(self.table, key), why))?;
        let mut permissions = BTreeMap::new();
        if let Some(item) = self.table.get("permissions") {
            let pspan = value_span(self.table, "permissions");
            let table = item.as_table_like().ok_or_else(|| {
                self.error(
                    pspan.clone(),
                    "permissions must be a table, like permissions = { contents = \"write\" }"
                        .into(),
                )
            })?;
            for (name, level) in table.iter() {
                let level = level.as_str().unwrap_or_default();
                if !valid_permission(name, level) {
                    return Err(self.error(
                        pspan,
                        format!(
                            "permissions: {name} = {level:?} is not a GitHub App permission; write name = \"read\", \"write\" or \"admin\" (names as GitHub's API spells them: contents, pull_requests, ...)"
                        ),
                    ));
                }
                permissions.insert(name.to_string(), level.to_string());
            }
        }
        Ok(Some(GitHubApp {
            app_id,
            client_id: self.optional_text("app_client_id")?,
            installation_id,
            permissions,
        }))
    }

    fn auth(&self) -> Result<AuthScheme, ConfigError> {
        let Some(value) = self.text("auth")? else {
            return Ok(AuthScheme::default());
        };
        AuthScheme::parse(value).ok_or_else(|| {
            self.error(
                value_span(self.table, "auth"),
                format!("auth must be \"basic\" or \"bearer\", not {value:?}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"# example
[settings]
warn_days = 7            # optional, default 7 (the expiry warning window)
stale_days = 90          # optional, default 90

[[runtime]]
name = "acme"
provider = "github"      # github | gitlab | bitbucket | bitbucket-server | gitea | generic
urls = ["https://github.com/acme/", "https://github.com/acme-infra/"]
username = "octocat"     # optional
api_url = "https://ghe.example.com/api/v3"   # optional
auth = "bearer"          # optional: "basic" (default) | "bearer" (Bearer-only tokens)
oauth_client_id = "Iv1.0123456789abcdef"  # optional
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/home/u/.config/helperd/config.toml"))
    }

    /// The error's line and message.
    fn error(text: &str) -> (Option<usize>, String) {
        let e = parse(text).expect_err("the config is invalid");
        assert_eq!(e.path, "/home/u/.config/helperd/config.toml");
        (e.line, e.message)
    }

    #[test]
    fn rotate_days_and_rotate_via_belong_to_gitlab() {
        let gl = |extra: &str| {
            format!("[[runtime]]\nname = \"gl\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example/\"]\n{extra}")
        };
        let c = parse(&gl("rotate_days = 14\nrotate_via = \"project:acme/app\"\n")).unwrap();
        assert_eq!(c.runtimes[0].rotate_days, Some(14));
        assert_eq!(
            c.runtimes[0].rotate_via,
            RotateVia::Project("acme/app".into())
        );
        let c = parse(&gl("rotate_days = 7\n")).unwrap();
        assert_eq!(c.runtimes[0].rotate_via, RotateVia::Personal);
        assert_eq!(parse(&gl("")).unwrap().runtimes[0].rotate_days, None);
        let (_, m) = error(&gl("rotate_days = 0\n"));
        assert!(
            m.contains("rotate_days must be a whole number of days from 1 to 365"),
            "{m}"
        );
        let (_, m) = error(&gl("rotate_via = \"team:1\"\n"));
        assert!(m.contains("rotate_via must be"), "{m}");
        let (_, m) = error(&runtime_with("a", "rotate_days = 7\n"));
        assert!(m.contains("only GitLab tokens rotate themselves"), "{m}");
        assert_eq!(RotateVia::parse("group:42").unwrap().text(), "group:42");
    }

    /// A valid runtime table, to which a test adds or changes one line.
    fn runtime_with(name: &str, extra: &str) -> String {
        format!("[[runtime]]\nname = \"{name}\"\nprovider = \"github\"\nurls = [\"https://github.com/{name}/\"]\n{extra}")
    }

    #[test]
    fn the_example_parses() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(
            config.settings,
            Settings {
                warn_days: 7,
                stale_days: 90
            }
        );
        let [rt] = config.runtimes.as_slice() else {
            panic!("one runtime: {config:?}")
        };
        assert_eq!(rt.name, "acme");
        assert_eq!(rt.provider, Provider::GitHub);
        let urls: Vec<String> = rt.urls.iter().map(ToString::to_string).collect();
        assert_eq!(
            urls,
            ["https://github.com/acme/", "https://github.com/acme-infra/"]
        );
        assert_eq!(rt.username.as_deref(), Some("octocat"));
        assert_eq!(
            rt.api_url.as_deref(),
            Some("https://ghe.example.com/api/v3")
        );
        assert_eq!(rt.auth, AuthScheme::Bearer);
        assert_eq!(rt.oauth_client_id.as_deref(), Some("Iv1.0123456789abcdef"));
        assert_eq!(rt.line, 6);
        assert_eq!(config.runtime("acme"), Some(rt));
        assert_eq!(config.runtime("other"), None);
    }

    #[test]
    fn defaults_and_empty_files() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing yet\n\n").unwrap(), Config::default());
        assert_eq!(
            Settings::default(),
            Settings {
                warn_days: 7,
                stale_days: 90
            }
        );
        let config = parse(&runtime_with("a", "")).unwrap();
        let rt = &config.runtimes[0];
        assert_eq!(
            (rt.username.as_deref(), rt.api_url.as_deref()),
            (None, None)
        );
        assert_eq!(rt.auth, AuthScheme::Basic);
        assert_eq!(rt.line, 1);
        assert_eq!(
            parse("[settings]\nwarn_days = 0\n")
                .unwrap()
                .settings
                .warn_days,
            0
        );
        assert_eq!(
            parse("settings = { stale_days = 3650 }\n")
                .unwrap()
                .settings
                .stale_days,
            3650
        );
    }

    #[test]
    fn every_error_names_its_line_and_problem() {
        let long_name = "a".repeat(65);
        #[rustfmt::skip]
        let cases: Vec<(String, usize, String)> = vec![
            ("[[runtime]]\nname = \"a\nprovider = \"github\"\n".into(), 2,
                "TOML syntax error: invalid basic string, expected `\"`".into()),
            ("[settings]\nwarn_days = 1\nwarn_days = 2\n".into(), 3, "TOML syntax error: duplicate key".into()),
            (runtime_with("acme", "").replace("\"github\"", "\"githup\""), 3,
                "runtime \"acme\": unknown provider \"githup\"; use one of github, gitlab, bitbucket, \
                 bitbucket-server, gitea, generic (gitea also serves Forgejo and Codeberg)".into()),
            ("[[runtime]]\nname = \"acme\"\nprovider = \"github\"\nurls = [\n  \"https://github.com/ok/\",\n  \"htps:/x\",\n]\n".into(), 6,
                "runtime \"acme\": url \"htps:/x\" is malformed: it has no scheme; write it like https://host/path".into()),
            (runtime_with("acme", "").replace("https://github.com/acme/", "htps://github.com/acme/"), 4,
                "runtime \"acme\": url \"htps://github.com/acme/\" is malformed: the scheme must be https or http, not \"htps\"".into()),
            (runtime_with("acme", "").replace("https://github.com/acme/", "https://*.example.com:x/"), 4,
                "runtime \"acme\": url \"https://*.example.com:x/\" is malformed: the port \"x\" is not a number from 1 to 65535".into()),
            (format!("{}\n{}", runtime_with("a", "").replace("github.com/a/", "GitHub.com/acme"),
                runtime_with("b", "").replace("github.com/b/", "github.com:443/acme/")), 9,
                "runtime \"b\": url https://github.com/acme/ is already used by runtime \"a\" (line 4)".into()),
            (runtime_with("a", "").replace("/a/\"]", "/a/\", \"https://github.com/a\"]"), 4,
                "runtime \"a\": url https://github.com/a/ is listed twice (first at line 4)".into()),
            (format!("{}\n{}", runtime_with("a", ""), runtime_with("a", "").replace("/a/", "/other/")), 7,
                "runtime \"a\" is defined twice (first at line 1)".into()),
            ("[[runtime]]\nprovider = \"github\"\n".into(), 1, "[[runtime]] table has no name; add name = \"...\"".into()),
            ("[[runtime]]\nname = \"a\"\nurls = []\n".into(), 1,
                "runtime \"a\": provider is missing; add provider = \"github\"".into()),
            ("\n[[runtime]]\nname = \"a\"\nprovider = \"github\"\n".into(), 2,
                "runtime \"a\": urls is missing; add urls = [\"https://github.com/acme/\"]".into()),
            ("[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = []\n".into(), 4,
                "runtime \"a\": urls is empty; give at least one URL prefix".into()),
            ("[[runtime]]\nname = \"a b\"\n".into(), 2,
                "runtime name \"a b\" is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'".into()),
            ("[[runtime]]\nname = \"\"\n".into(), 2,
                "runtime name \"\" is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'".into()),
            (format!("[[runtime]]\nname = \"{long_name}\"\n"), 2,
                format!("runtime name \"{long_name}\" is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'")),
            ("[[runtime]]\nname = \"acmé\"\n".into(), 2,
                "runtime name \"acmé\" is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-'".into()),
            (runtime_with("acme", "usernmae = \"bob\"\n"), 5,
                "runtime \"acme\": unknown key \"usernmae\"; known keys: name, provider, urls, username, api_url, auth, oauth_client_id, forward, email, app_id, app_client_id, installation_id, permissions, rotate_days, rotate_via".into()),
            ("[settings]\nwarn_day = 3\n".into(), 2,
                "[settings]: unknown key \"warn_day\"; known keys: warn_days, stale_days".into()),
            ("[[runtime]]\nname = 1\n".into(), 2, "runtime name must be a string, not integer".into()),
            (runtime_with("acme", "").replace("\"github\"", "[\"github\"]"), 3,
                "runtime \"acme\": provider must be a string, not array".into()),
            ("[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = \"https://github.com/\"\n".into(), 4,
                "runtime \"a\": urls must be an array of strings, like urls = [\"https://github.com/acme/\"], not string".into()),
            ("[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = [\"https://github.com/\", 1]\n".into(), 4,
                "runtime \"a\": urls must hold strings, not integer".into()),
            (runtime_with("acme", "username = true\n"), 5, "runtime \"acme\": username must be a string, not boolean".into()),
            (runtime_with("acme", "username = \"\"\n"), 5, "runtime \"acme\": username is empty; remove it or give a value".into()),
            (runtime_with("acme", "username = \"a\\nb\"\n"), 5, "runtime \"acme\": username contains a control character".into()),
            (runtime_with("acme", "auth = \"token\"\n"), 5,
                "runtime \"acme\": auth must be \"basic\" or \"bearer\", not \"token\"".into()),
            (runtime_with("acme", "api_url = \"ghe.example.com/api\"\n"), 5,
                "runtime \"acme\": api_url \"ghe.example.com/api\" is malformed: it has no scheme; write it like https://host/path".into()),
            (runtime_with("acme", "api_url = \"ftp://ghe.example.com/api\"\n"), 5,
                "runtime \"acme\": api_url \"ftp://ghe.example.com/api\" is malformed: the scheme must be https or http, not \"ftp\"".into()),
            ("[settings]\nwarn_days = \"7\"\n".into(), 2, "warn_days must be a whole number of days, not string".into()),
            ("[settings]\nwarn_days = 3651\n".into(), 2, "warn_days must be from 0 to 3650 days, not 3651".into()),
            ("[settings]\nstale_days = -1\n".into(), 2, "stale_days must be from 0 to 3650 days, not -1".into()),
            ("settings = 3\n".into(), 1, "settings must be a table: [settings]".into()),
            ("# typo\n[setting]\nwarn_days = 3\n".into(), 2,
                "unknown key \"setting\"; config.toml has only [settings], [openbao] and [[runtime]] tables".into()),
            ("warn_days = 3\n".into(), 1,
                "unknown key \"warn_days\"; config.toml has only [settings], [openbao] and [[runtime]] tables".into()),
            ("[runtime]\nname = \"a\"\n".into(), 1,
                "runtime must be written as [[runtime]] tables (double brackets), one per runtime".into()),
            ("[runtime.a]\nname = \"a\"\n".into(), 1,
                "runtime must be written as [[runtime]] tables (double brackets), one per runtime".into()),
            ("[[runtime]]\nname = \"a\"\n[runtime.extra]\n".into(), 3,
                "runtime \"a\": unknown key \"extra\"; known keys: name, provider, urls, username, api_url, auth, oauth_client_id, forward, email, app_id, app_client_id, installation_id, permissions, rotate_days, rotate_via".into()),
        ];
        for (text, line, message) in cases {
            assert_eq!(error(&text), (Some(line), message), "for:\n{text}");
        }
    }

    #[test]
    fn the_first_problem_is_reported() {
        let text = format!(
            "{}\n[settings]\nwarn_days = 9999\n",
            runtime_with("a", "bad = 1\n")
        );
        assert_eq!(error(&text).0, Some(5));
    }

    #[test]
    fn error_display_names_file_and_line() {
        let e = ConfigError {
            path: "/c/config.toml".into(),
            line: Some(3),
            message: "unknown key \"x\"".into(),
        };
        assert_eq!(e.to_string(), "/c/config.toml:3: unknown key \"x\"");
        let e = ConfigError { line: None, ..e };
        assert_eq!(e.to_string(), "/c/config.toml: unknown key \"x\"");
    }

    #[test]
    fn load_reads_the_file_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = config_file(dir.path());
        assert_eq!(path, dir.path().join("config.toml"));
        assert_eq!(file::load(&path).unwrap(), Config::default());
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(file::load(&path).unwrap().runtimes.len(), 1);
        std::fs::write(&path, "[setting]\n").unwrap();
        let e = file::load(&path).unwrap_err();
        assert_eq!(e.to_string(), format!("{}:1: unknown key \"setting\"; config.toml has only [settings], [openbao] and [[runtime]] tables", path.display()));
        // A folder where the file should be: a read error, not an empty config.
        let e = file::load(dir.path()).unwrap_err();
        assert_eq!(e.line, None);
        assert!(e.message.starts_with("cannot read the file: "), "{e}");
    }

    #[test]
    fn hosts_needing_path_are_sorted_and_distinct() {
        let text = [
            runtime_with("a", ""),
            "[[runtime]]\nname = \"b\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example.com/\", \"https://github.com:443/b2/\"]\n".into(),
            "[[runtime]]\nname = \"c\"\nprovider = \"gitea\"\nurls = [\"https://*.example.org/team/\", \"http://h.example:8080/x\"]\n".into(),
        ]
        .join("\n");
        let config = parse(&text).unwrap();
        assert_eq!(
            config.hosts_needing_path(),
            [
                "http://h.example:8080",
                "https://*.example.org",
                "https://github.com"
            ]
        );
        assert!(Config::default().hosts_needing_path().is_empty());
    }

    #[test]
    fn usernames_per_provider() {
        let mut rt = parse(&runtime_with("a", "")).unwrap().runtimes.remove(0);
        assert_eq!(rt.effective_username(), Some("x-access-token"));
        assert!(!rt.needs_username());
        rt.username = Some("octocat".into());
        assert_eq!(rt.effective_username(), Some("octocat"));
        rt.username = None;
        rt.provider = Provider::GitLab;
        assert_eq!(rt.effective_username(), Some("oauth2"));
        rt.provider = Provider::Bitbucket;
        assert_eq!(rt.effective_username(), Some("x-bitbucket-api-token-auth"));
        assert_eq!(rt.api_user(), None, "Bitbucket's API wants the email");
        rt.email = Some("me@example.com".into());
        assert_eq!(rt.api_user(), Some("me@example.com"));
        rt.email = None;
        for provider in [
            Provider::BitbucketServer,
            Provider::Gitea,
            Provider::Generic,
        ] {
            rt.provider = provider;
            assert_eq!(rt.effective_username(), None, "{provider}");
            rt.auth = AuthScheme::Basic;
            assert!(rt.needs_username(), "{provider}");
            rt.auth = AuthScheme::Bearer;
            assert!(
                !rt.needs_username(),
                "a Bearer token needs no username: {provider}"
            );
        }
    }

    #[test]
    fn auth_scheme_names() {
        assert_eq!(AuthScheme::parse("bearer"), Some(AuthScheme::Bearer));
        assert_eq!(AuthScheme::parse("Bearer"), None);
    }
}
