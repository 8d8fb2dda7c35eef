//! `[openbao]` in `config.toml` (DESIGN.md §10): where the team's OpenBao lives, how this
//! machine logs in to it, and which KV v2 paths hold the team's runtimes and the user's
//! own secrets. Plain data and its parser; talking to OpenBao is `crate::openbao`'s job.

use std::ops::Range;
use std::path::PathBuf;

use toml_edit::{Item, TableLike};

use super::parse::{check_keys, value_span, ConfigError, Cx};

/// How often team entries are re-read when `refresh_secs` is not set.
pub const DEFAULT_REFRESH_SECS: u64 = 30;
/// How long secrets read from OpenBao stay servable while no node answers, by default.
pub const DEFAULT_CACHE_SECS: u64 = 600;
/// Where the user's own secrets live under `HELPERD_STORE=openbao`, by default.
pub const DEFAULT_USER_PATH: &str = "helperd/users/{user}";

/// `[openbao]`: helperd is a client of OpenBao (or Vault) and never a secret server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBaoSettings {
    /// Tried in order; empty means `BAO_ADDR`, else `VAULT_ADDR`, at the time of use.
    pub addresses: Vec<String>,
    /// The KV version 2 mount, e.g. `secret`.
    pub mount: String,
    /// Every entry directly below this path is a team runtime; `None`: no team runtimes.
    pub team_path: Option<String>,
    /// The user's own secrets under `HELPERD_STORE=openbao`; `{user}` is the login name.
    pub user_path: String,
    /// Team entries are re-read this often (and at once after git reports a 401).
    pub refresh_secs: u64,
    /// Secrets already read stay servable this long while no node answers; 0: never.
    pub cache_secs: u64,
    /// How this machine logs in.
    pub auth: BaoAuth,
}

/// The OpenBao auth method this machine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaoAuth {
    /// A token: from `token_file` when set (read at each login, so a rotated file is
    /// picked up), else `BAO_TOKEN` / `VAULT_TOKEN` of the daemon's environment.
    Token {
        /// A file whose first line is the token.
        token_file: Option<PathBuf>,
    },
    /// AppRole, for CI runners.
    AppRole {
        /// The role's id (not a secret: it names the role).
        role_id: String,
        /// A file whose first line is the secret id.
        secret_id_file: PathBuf,
        /// Where the method is mounted (`approle` unless enabled elsewhere).
        mount_path: String,
    },
    /// JWT, for CI systems that issue OIDC job tokens.
    Jwt {
        /// The OpenBao role the job's JWT is checked against.
        role: String,
        /// A file whose first line is the JWT (CI systems rewrite it for each job).
        jwt_file: PathBuf,
        /// Where the method is mounted (`jwt` unless enabled elsewhere).
        mount_path: String,
    },
}

impl BaoAuth {
    /// The method's name, as written in `auth = "..."`.
    pub fn name(&self) -> &'static str {
        match self {
            BaoAuth::Token { .. } => "token",
            BaoAuth::AppRole { .. } => "approle",
            BaoAuth::Jwt { .. } => "jwt",
        }
    }
}

impl OpenBaoSettings {
    /// The addresses to try, in order: the configured ones, else `BAO_ADDR`, else
    /// `VAULT_ADDR` (the variables OpenBao's and Vault's own CLIs read).
    pub fn effective_addresses(&self) -> Vec<String> {
        if !self.addresses.is_empty() {
            return self.addresses.clone();
        }
        ["BAO_ADDR", "VAULT_ADDR"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|a| !a.trim().is_empty()))
            .map(|a| vec![a.trim().trim_end_matches('/').to_string()])
            .unwrap_or_default()
    }

    /// `user_path` for `user`.
    pub fn user_path_for(&self, user: &str) -> String {
        self.user_path.replace("{user}", user)
    }
}

/// The keys of the auth methods' settings: each method takes some of them and refuses the
/// others (`auth()`).
const AUTH_KEYS: [&str; 6] = [
    "token_file",
    "role_id",
    "secret_id_file",
    "role",
    "jwt_file",
    "mount_path",
];

/// The keys `[openbao]` may have, in the order the docs list them: the auth method's
/// settings follow `auth`.
const KEYS: [&str; 14] = {
    let before = [
        "addresses",
        "mount",
        "team_path",
        "user_path",
        "refresh_secs",
        "cache_secs",
        "auth",
    ];
    let after = ["ca_cert"];
    let mut keys = [""; 14];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = if i < before.len() {
            before[i]
        } else if i < before.len() + AUTH_KEYS.len() {
            AUTH_KEYS[i - before.len()]
        } else {
            after[i - before.len() - AUTH_KEYS.len()]
        };
        i += 1;
    }
    keys
};

/// Longest `refresh_secs` / `cache_secs`: a day; more is surely a typo.
const MAX_SECS: i64 = 86_400;

/// Reads `[openbao]`; `cx` names the file and its lines in messages.
pub(super) fn parse(
    cx: &Cx<'_>,
    item: &Item,
    span: Option<Range<usize>>,
) -> Result<OpenBaoSettings, ConfigError> {
    let table = item
        .as_table_like()
        .ok_or_else(|| cx.error(span, "openbao must be a table: [openbao]".into()))?;
    check_keys(cx, table, &KEYS, "[openbao]")?;
    if table.contains_key("ca_cert") {
        return Err(at(
            cx,
            table,
            "ca_cert",
            "ca_cert is not supported yet; add the CA to the system's trust store".into(),
        ));
    }
    let t = Tab { cx, table };
    let addresses = t.addresses()?;
    let mount = t.kv_path("mount")?.unwrap_or_else(|| "secret".into());
    let team_path = t.kv_path("team_path")?;
    let user_path = t
        .kv_path("user_path")?
        .unwrap_or_else(|| DEFAULT_USER_PATH.into());
    let refresh_secs = t.secs("refresh_secs", 1)?.unwrap_or(DEFAULT_REFRESH_SECS);
    let cache_secs = t.secs("cache_secs", 0)?.unwrap_or(DEFAULT_CACHE_SECS);
    let auth = t.auth()?;
    Ok(OpenBaoSettings {
        addresses,
        mount,
        team_path,
        user_path,
        refresh_secs,
        cache_secs,
        auth,
    })
}

/// An error about `key`'s value in `[openbao]`.
fn at(cx: &Cx<'_>, table: &dyn TableLike, key: &str, message: String) -> ConfigError {
    cx.error(value_span(table, key), format!("[openbao]: {message}"))
}

/// The `[openbao]` table being read.
struct Tab<'a> {
    cx: &'a Cx<'a>,
    table: &'a dyn TableLike,
}

impl Tab<'_> {
    fn err(&self, key: &str, message: String) -> ConfigError {
        at(self.cx, self.table, key, message)
    }

    fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) if s.trim().is_empty() => {
                Err(self.err(key, format!("{key} is empty; remove it or give a value")))
            }
            Some(s) if s.chars().any(char::is_control) => {
                Err(self.err(key, format!("{key} contains a control character")))
            }
            Some(s) => Ok(Some(s.trim().to_string())),
            None => Err(self.err(
                key,
                format!("{key} must be a string, not {}", item.type_name()),
            )),
        }
    }

    /// A credential file: an absolute path (the daemon's working folder is nobody's
    /// business).
    fn file(&self, key: &str, value: String) -> Result<PathBuf, ConfigError> {
        if !value.starts_with('/') {
            return Err(self.err(
                key,
                format!("{key} must be an absolute path, not {value:?}"),
            ));
        }
        Ok(PathBuf::from(value))
    }

    /// A credential file the auth method cannot do without.
    fn required_file(
        &self,
        key: &str,
        method: &str,
        example: &str,
    ) -> Result<PathBuf, ConfigError> {
        let value = self.required(key, method, example)?;
        self.file(key, value)
    }

    fn required(&self, key: &str, method: &str, example: &str) -> Result<String, ConfigError> {
        self.text(key)?.ok_or_else(|| {
            self.cx.error(
                None,
                format!("[openbao]: auth = \"{method}\" needs {key}; add {key} = {example}"),
            )
        })
    }

    /// A KV path: segments without `..`, no leading or trailing `/`.
    fn kv_path(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.text(key)? else {
            return Ok(None);
        };
        let trimmed = value.trim_matches('/').to_string();
        if trimmed.is_empty()
            || trimmed
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(self.err(
                key,
                format!("{key} {value:?} is not a KV path like \"helperd/runtimes\""),
            ));
        }
        Ok(Some(trimmed))
    }

    fn addresses(&self) -> Result<Vec<String>, ConfigError> {
        let Some(item) = self.table.get("addresses") else {
            return Ok(Vec::new());
        };
        let example = "[\"https://bao1.corp:8200\", \"https://bao2.corp:8200\"]";
        let array = item.as_array().ok_or_else(|| {
            self.err(
                "addresses",
                format!(
                    "addresses must be a list of URLs, like addresses = {example}, not {}",
                    item.type_name()
                ),
            )
        })?;
        if array.is_empty() {
            return Err(self.err(
                "addresses",
                "addresses is empty; give at least one, or remove it to use BAO_ADDR".into(),
            ));
        }
        let mut out = Vec::new();
        for value in array.iter() {
            let text = value.as_str().ok_or_else(|| {
                self.err(
                    "addresses",
                    format!("addresses must hold strings, not {}", value.type_name()),
                )
            })?;
            out.push(check_address(text).map_err(|why| self.err("addresses", why))?);
        }
        Ok(out)
    }

    fn secs(&self, key: &str, min: i64) -> Result<Option<u64>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        let n = item.as_integer().ok_or_else(|| {
            self.err(
                key,
                format!(
                    "{key} must be a whole number of seconds, not {}",
                    item.type_name()
                ),
            )
        })?;
        if !(min..=MAX_SECS).contains(&n) {
            return Err(self.err(
                key,
                format!("{key} must be from {min} to {MAX_SECS} seconds, not {n}"),
            ));
        }
        Ok(Some(n as u64))
    }

    fn auth(&self) -> Result<BaoAuth, ConfigError> {
        let method = self.text("auth")?.unwrap_or_else(|| "token".into());
        let only = |allowed: &[&str]| -> Result<(), ConfigError> {
            match AUTH_KEYS
                .iter()
                .find(|k| !allowed.contains(k) && self.table.contains_key(k))
            {
                Some(k) => Err(self.err(k, format!("{k} does not belong to auth = \"{method}\""))),
                None => Ok(()),
            }
        };
        let mount_path = |default: &str| -> Result<String, ConfigError> {
            Ok(self
                .kv_path("mount_path")?
                .unwrap_or_else(|| default.to_string()))
        };
        match method.as_str() {
            "token" => {
                only(&["token_file"])?;
                Ok(BaoAuth::Token {
                    token_file: self
                        .text("token_file")?
                        .map(|f| self.file("token_file", f))
                        .transpose()?,
                })
            }
            "approle" => {
                only(&["role_id", "secret_id_file", "mount_path"])?;
                Ok(BaoAuth::AppRole {
                    role_id: self.required("role_id", "approle", "\"...\"")?,
                    secret_id_file: self.required_file(
                        "secret_id_file",
                        "approle",
                        "\"/etc/helperd/secret-id\"",
                    )?,
                    mount_path: mount_path("approle")?,
                })
            }
            "jwt" => {
                only(&["role", "jwt_file", "mount_path"])?;
                Ok(BaoAuth::Jwt {
                    role: self.required("role", "jwt", "\"ci-runner\"")?,
                    jwt_file: self.required_file("jwt_file", "jwt", "\"/run/ci/id_token\"")?,
                    mount_path: mount_path("jwt")?,
                })
            }
            other => Err(self.err(
                "auth",
                format!("auth must be \"token\", \"approle\" or \"jwt\", not {other:?}"),
            )),
        }
    }
}

/// An OpenBao address: `http(s)://host[:port]`, no userinfo, no path; kept without a
/// trailing `/`.
pub fn check_address(text: &str) -> Result<String, String> {
    let shown = helperd_wire::url::redact_password(text);
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| format!("address {shown:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "address {shown:?} must start with https:// (or http:// on a test machine)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "address {shown:?} must not carry a username or password; use auth = ..."
        ));
    }
    if url.host_str().is_none() || !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err(format!(
            "address {shown:?} must be only scheme, host and port, like \"https://bao.corp:8200\""
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(body: &str) -> Result<OpenBaoSettings, ConfigError> {
        let text = format!("[openbao]\n{body}");
        crate::config::Config::parse(&text, std::path::Path::new("config.toml"))
            .map(|c| c.openbao.expect("the table is there"))
    }

    #[test]
    fn defaults_follow_design_section_10() {
        let s = parse_text("").unwrap();
        assert_eq!(s.mount, "secret");
        assert_eq!(s.team_path, None);
        assert_eq!(s.user_path, "helperd/users/{user}");
        assert_eq!((s.refresh_secs, s.cache_secs), (30, 600));
        assert_eq!(s.auth, BaoAuth::Token { token_file: None });
        assert_eq!(s.user_path_for("ana"), "helperd/users/ana");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_keys_in_the_docs_order() {
        let err = parse_text("adress = \"http://b:8200\"\n").unwrap_err();
        assert_eq!(
            err.message,
            "[openbao]: unknown key \"adress\"; known keys: addresses, mount, team_path, \
             user_path, refresh_secs, cache_secs, auth, token_file, role_id, secret_id_file, \
             role, jwt_file, mount_path, ca_cert"
        );
    }

    #[test]
    fn every_auth_method_reads_its_keys() {
        let s = parse_text("addresses = [\"http://127.0.0.1:8200/\", \"https://b.corp:8200\"]\nteam_path = \"/helperd/runtimes/\"\nauth = \"approle\"\nrole_id = \"r1\"\nsecret_id_file = \"/s\"\n").unwrap();
        assert_eq!(
            s.addresses,
            ["http://127.0.0.1:8200", "https://b.corp:8200"]
        );
        assert_eq!(s.team_path.as_deref(), Some("helperd/runtimes"));
        assert_eq!(
            s.auth,
            BaoAuth::AppRole {
                role_id: "r1".into(),
                secret_id_file: "/s".into(),
                mount_path: "approle".into()
            }
        );
        let s = parse_text(
            "auth = \"jwt\"\nrole = \"ci\"\njwt_file = \"/j\"\nmount_path = \"gitlab-jwt\"\n",
        )
        .unwrap();
        assert_eq!(
            s.auth,
            BaoAuth::Jwt {
                role: "ci".into(),
                jwt_file: "/j".into(),
                mount_path: "gitlab-jwt".into()
            }
        );
    }

    #[test]
    fn bad_values_name_line_and_fix_and_never_a_password() {
        let cases = [
            (
                "refresh_secs = 0\n",
                2,
                "refresh_secs must be from 1 to 86400 seconds, not 0",
            ),
            (
                "cache_secs = \"10\"\n",
                2,
                "cache_secs must be a whole number of seconds, not string",
            ),
            (
                "auth = \"ldap\"\n",
                2,
                "auth must be \"token\", \"approle\" or \"jwt\", not \"ldap\"",
            ),
            (
                "auth = \"approle\"\nrole_id = \"x\"\n",
                0,
                "auth = \"approle\" needs secret_id_file",
            ),
            (
                "auth = \"token\"\nrole = \"x\"\n",
                3,
                "role does not belong to auth = \"token\"",
            ),
            ("team_path = \"a/../b\"\n", 2, "is not a KV path"),
            ("addresses = [\"ftp://x\"]\n", 2, "must start with https://"),
            ("adresses = []\n", 2, "unknown key \"adresses\""),
            ("addresses = []\n", 2, "addresses is empty"),
            (
                "token_file = \"bao-token\"\n",
                2,
                "token_file must be an absolute path",
            ),
        ];
        for (body, line, want) in cases {
            let e = parse_text(body).unwrap_err();
            assert!(e.message.contains(want), "{body}: {}", e.message);
            if line > 0 {
                assert_eq!(e.line, Some(line), "{body}");
            }
        }
        let e = parse_text("addresses = [\"https://u:hunter2@b.corp/\"]\n").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
