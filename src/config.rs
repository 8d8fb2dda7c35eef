//! `config.toml` (DESIGN.md §2): the user's runtimes and settings.
//!
//! The file is edited by hand, so every mistake is an error that names the file, the line
//! and the problem, and nothing is ignored: an unknown key is far more likely a typo of a
//! known one than a setting from the future. The first problem found is reported.
//! Parsed with `toml_edit`, whose spans give the line numbers. Pure apart from
//! [`Config::load`], which reads the file.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, Item, Table, TableLike};

use crate::runtime::UrlPrefix;

/// The forge behind a runtime: decides the username convention, the token page and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
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
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::BitbucketServer => "bitbucket-server",
            Provider::Gitea => "gitea",
            Provider::Generic => "generic",
        }
    }

    /// The provider with this [`Provider::name`]; exact, lower-case.
    pub fn parse(s: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Username git sends with a PAT when none is configured, per the provider's documented
    /// convention; `None` where the account's own username is needed.
    pub fn default_username(self) -> Option<&'static str> {
        match self {
            // GitHub documents `x-access-token` as the username for token-only HTTPS git
            // access ("Authenticating as a GitHub App installation":
            // `git clone https://x-access-token:TOKEN@github.com/owner/repo.git`); a PAT
            // is accepted with any username.
            Provider::GitHub => Some("x-access-token"),
            // GitLab: "Git over HTTPS: any non-blank value as a username, the personal
            // access token as the password" (docs.gitlab.com user/profile/
            // personal_access_tokens), and OAuth tokens used the magic `oauth2` username
            // (docs.gitlab.com api/oauth2 "Access Git over HTTPS with access token"), so
            // `oauth2` suits both.
            Provider::GitLab => Some("oauth2"),
            // Bitbucket Cloud API tokens and Bitbucket Data Center HTTP access tokens
            // authenticate as the account: git must send the account's username
            // (support.atlassian.com bitbucket-cloud/docs/using-api-tokens; confluence
            // "Managing HTTP access tokens"). Gitea/Forgejo tokens are sent with the
            // account's username as well. Generic: nothing is known.
            Provider::Bitbucket
            | Provider::BitbucketServer
            | Provider::Gitea
            | Provider::Generic => None,
        }
    }

    /// Where a user creates a token, for a server at `base_url` (`https://github.com`);
    /// `None` for a generic server or a wildcard base URL, which names no single server.
    pub fn token_page(self, base_url: &str) -> Option<String> {
        let base = base_url.trim_end_matches('/');
        if base.contains('*') {
            return None;
        }
        match self {
            // docs.github.com "Managing your personal access tokens": Settings >
            // Developer settings > Personal access tokens, at /settings/tokens (the same
            // path on GitHub Enterprise Server).
            Provider::GitHub => Some(format!("{base}/settings/tokens")),
            // GitLab 16.x moved the page from /-/profile/personal_access_tokens to
            // /-/user_settings/personal_access_tokens (the old path is a 404 on gitlab.com).
            Provider::GitLab => Some(format!("{base}/-/user_settings/personal_access_tokens")),
            // Bitbucket Cloud API tokens belong to the Atlassian account, not to
            // bitbucket.org: support.atlassian.com bitbucket-cloud/docs/using-api-tokens.
            Provider::Bitbucket => {
                Some("https://id.atlassian.com/manage-profile/security/api-tokens".to_string())
            }
            // Bitbucket Data Center: Manage account > HTTP access tokens (confluence
            // "Managing HTTP access tokens").
            Provider::BitbucketServer => {
                Some(format!("{base}/plugins/servlet/access-tokens/manage"))
            }
            // Gitea and Forgejo: Settings > Applications > Generate new token.
            Provider::Gitea => Some(format!("{base}/user/settings/applications")),
            Provider::Generic => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    pub name: String,
    pub provider: Provider,
    /// Never empty.
    pub urls: Vec<UrlPrefix>,
    pub username: Option<String>,
    /// The provider's API, when it is not the provider's default for the host (GitHub
    /// Enterprise, self-hosted GitLab...).
    pub api_url: Option<String>,
    pub auth: AuthScheme,
    pub oauth_client_id: Option<String>,
    /// 1-based line of its `[[runtime]]` header, for messages.
    pub line: usize,
}

impl RuntimeConfig {
    /// The username answered to git: the configured one, else the provider's convention.
    pub fn effective_username(&self) -> Option<&str> {
        self.username
            .as_deref()
            .or_else(|| self.provider.default_username())
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
    pub settings: Settings,
}

/// A problem in `config.toml`: the file, the line when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", line_suffix(.line))]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// `config.toml` in the config folder.
pub fn config_file(config_dir: &Path) -> PathBuf {
    config_dir.join("config.toml")
}

/// Largest `warn_days` / `stale_days`: ten years; more is surely a typo.
const MAX_DAYS: i64 = 3650;

/// The keys a `[[runtime]]` table may have, in the order the docs list them.
const RUNTIME_KEYS: [&str; 7] = [
    "name",
    "provider",
    "urls",
    "username",
    "api_url",
    "auth",
    "oauth_client_id",
];

const SETTINGS_KEYS: [&str; 2] = ["warn_days", "stale_days"];

impl Config {
    /// Parses the text of `config.toml`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Cx {
            text,
            path: path.display().to_string(),
        };
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            cx.error(
                e.span(),
                format!("TOML syntax error: {}", e.message().trim_end()),
            )
        })?;
        let root = doc.as_table();
        let mut config = Config::default();
        for (key, item) in root.iter() {
            match key {
                "settings" => config.settings = parse_settings(&cx, item)?,
                "runtime" => config.runtimes = parse_runtimes(&cx, item)?,
                _ => {
                    return Err(cx.error(
                        key_span(root, key),
                        format!(
                            "unknown key {key:?}; config.toml has only [settings] and [[runtime]] tables"
                        ),
                    ))
                }
            }
        }
        Ok(config)
    }

    /// Reads and parses the file; a missing file is an empty config (nothing set up yet).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(ConfigError {
                path: path.display().to_string(),
                line: None,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }

    /// The runtime with this name.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeConfig> {
        self.runtimes.iter().find(|r| r.name == name)
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

/// What every error needs: the text (for line numbers) and the file's name.
struct Cx<'a> {
    text: &'a str,
    path: String,
}

impl Cx<'_> {
    /// 1-based line of a byte offset.
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        let start = span?.start.min(self.text.len());
        Some(
            self.text.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        )
    }

    fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: self.line(span),
            message,
        }
    }
}

fn key_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table.key(key).and_then(|k| k.span())
}

/// The span of a key's value, else of the key (a table value has no span of its own).
fn value_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table
        .get(key)
        .and_then(Item::span)
        .or_else(|| key_span(table, key))
}

fn parse_settings(cx: &Cx<'_>, item: &Item) -> Result<Settings, ConfigError> {
    let table = item
        .as_table_like()
        .ok_or_else(|| cx.error(item.span(), "settings must be a table: [settings]".into()))?;
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
    let Some(item) = table.get(key) else {
        return Ok(None);
    };
    let span = value_span(table, key);
    let days = item.as_integer().ok_or_else(|| {
        cx.error(
            span.clone(),
            format!(
                "{key} must be a whole number of days, not {}",
                item.type_name()
            ),
        )
    })?;
    match u32::try_from(days) {
        Ok(d) if days <= MAX_DAYS => Ok(Some(d)),
        _ => Err(cx.error(
            span,
            format!("{key} must be from 0 to {MAX_DAYS} days, not {days}"),
        )),
    }
}

/// Refuses keys not in `known`: a misspelt key must not be silently ignored.
fn check_keys(
    cx: &Cx<'_>,
    table: &dyn TableLike,
    known: &[&str],
    what: &str,
) -> Result<(), ConfigError> {
    match table.iter().find(|(k, _)| !known.contains(k)) {
        None => Ok(()),
        Some((key, _)) => Err(cx.error(
            key_span(table, key),
            format!(
                "{what}: unknown key {key:?}; known keys: {}",
                known.join(", ")
            ),
        )),
    }
}

fn parse_runtimes(cx: &Cx<'_>, item: &Item) -> Result<Vec<RuntimeConfig>, ConfigError> {
    let tables: &ArrayOfTables = item.as_array_of_tables().ok_or_else(|| {
        cx.error(
            item.span(),
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
    Ok(RuntimeConfig {
        provider,
        urls,
        username,
        api_url,
        auth,
        oauth_client_id,
        // A parsed table always has a header span; line 1 is a harmless fallback.
        line: cx.line(header).unwrap_or(1),
        name,
    })
}

/// Names appear in commands, file names of state and messages: keep them plain.
fn valid_name(name: &str) -> bool {
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
        prefix.map_err(|why| self.error(value.span(), format!("url {text:?} is malformed: {why}")))
    }

    fn api_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.text("api_url")? else {
            return Ok(None);
        };
        // Parsed like a prefix for its error messages; kept as written (its path matters).
        let checked = UrlPrefix::parse(value).and_then(|p| match p.scheme.as_str() {
            "https" | "http" if !matches!(p.host, crate::runtime::HostPattern::Wildcard(_)) => {
                Ok(())
            }
            "https" | "http" => Err("a wildcard host names no single server".to_string()),
            other => Err(format!("the scheme must be https or http, not {other:?}")),
        });
        match checked {
            Ok(()) => Ok(Some(value.trim_end_matches('/').to_string())),
            Err(why) => Err(self.error(
                value_span(self.table, "api_url"),
                format!("api_url {value:?} is malformed: {why}"),
            )),
        }
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
