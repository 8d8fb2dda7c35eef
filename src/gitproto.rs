//! The git credential-helper protocol: reading git's `key=value` request and writing an
//! answer (DESIGN.md §5, git's `credential.c` `credential_read`/`credential_write`).
//!
//! Input rules: every attribute git 2.47 sends is understood, unknown keys are ignored
//! (git's forward-compatibility rule), the first blank line ends the input, a line without
//! `=` is an error, values holding NUL, CR or LF are refused (the CVE-2020-5260 class), and
//! so is any line longer than [`MAX_LINE_BYTES`], whole, never split into a second line.
//! Error messages name the line number and key, never a value: values may be secrets.

use helperd_wire::url::{percent_decode, split_userinfo};

use crate::secret::Secret;

/// Longest request line accepted, newline excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One credential request (or credential to store) as git describes it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GitCredential {
    /// `https`, `http`, `ssh`...; git sends it with every request.
    pub protocol: Option<String>,
    /// Host name, with `:port` when git has one (e.g. `example.com:8443`).
    pub host: Option<String>,
    /// Repository path without the leading `/`; git sends it only with
    /// `credential.useHttpPath`.
    pub path: Option<String>,
    /// The username git has (from the URL or a previous helper).
    pub username: Option<String>,
    /// The password git stores or erases; secret.
    pub password: Option<Secret>,
    /// Unix seconds after which git stops using the password.
    pub password_expiry_utc: Option<u64>,
    /// An OAuth refresh token from another helper; kept with a plain credential. Secret.
    pub oauth_refresh_token: Option<Secret>,
    /// e.g. `Bearer`; with `credential`, used instead of username/password (git 2.46+).
    pub authtype: Option<String>,
    /// The pre-encoded credential that goes with `authtype`; secret.
    pub credential: Option<Secret>,
    /// git asks helpers not to store this credential.
    pub ephemeral: bool,
    /// `WWW-Authenticate` headers of the server's 401; informative only.
    pub wwwauth: Vec<String>,
    /// Opaque multistage-authentication state (`state[]`).
    pub state: Vec<String>,
    /// The caller announced `capability[]=authtype`.
    pub capability_authtype: bool,
    /// The caller announced `capability[]=state`.
    pub capability_state: bool,
    /// `continue=1`: multistage authentication goes on.
    pub multistage: bool,
    /// `quit=1`: stop asking further helpers.
    pub quit: bool,
}

/// Why git's input was refused. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A non-blank line without `=`.
    #[error("line {line} of git's request is not key=value")]
    NotKeyValue {
        /// 1-based line number in git's input.
        line: usize,
    },
    /// A line longer than [`MAX_LINE_BYTES`]; refused whole, never split.
    #[error("line {line} of git's request ({key}) is longer than {max} bytes; refusing the request", max = MAX_LINE_BYTES)]
    LineTooLong {
        /// 1-based line number in git's input.
        line: usize,
        /// The line's key, control characters masked and capped at 40 characters.
        key: String,
    },
    /// A value holds NUL, CR or LF (it could forge a protocol line).
    #[error("the value of {key} on line {line} of git's request contains a {what}; refusing the request")]
    ControlCharacter {
        /// 1-based line number in git's input.
        line: usize,
        /// The value's key, control characters masked and capped at 40 characters.
        key: String,
        /// Which character: `NUL byte`, `carriage return` or `newline`.
        what: &'static str,
    },
    /// A `url=` line that cannot be split into protocol, host and path.
    #[error("the url on line {line} of git's request cannot be parsed: {why}")]
    BadUrl {
        /// 1-based line number in git's input.
        line: usize,
        /// What is wrong with the URL; never the URL itself (it may carry a password).
        why: &'static str,
    },
}

/// The characters a value may never hold: they would end or forge a protocol line.
fn forbidden_character(value: &str) -> Option<&'static str> {
    value.chars().find_map(|c| match c {
        '\0' => Some("NUL byte"),
        '\r' => Some("carriage return"),
        '\n' => Some("newline"),
        _ => None,
    })
}

/// Key names appear in errors; cap them so a hostile key cannot flood a log line.
fn printable_key(key: &str) -> String {
    let mut k: String = key
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if key.chars().count() > 40 {
        k.push('…');
    }
    k
}

/// git's `git_config_bool` for the values git writes (`1`, `true`, ...).
fn parse_bool(value: &str) -> bool {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => true,
        "false" | "no" | "off" | "" => false,
        other => other.parse::<i64>().map(|n| n != 0).unwrap_or(false),
    }
}

impl GitCredential {
    /// Parses git's request text.
    pub fn parse(input: &str) -> Result<GitCredential, ParseError> {
        let mut c = GitCredential::default();
        for (index, raw) in input.split('\n').enumerate() {
            let line = index + 1;
            if raw.is_empty() {
                // The first blank line ends the request; a final "\n" also lands here.
                break;
            }
            let key_end = raw.find('=');
            if raw.len() > MAX_LINE_BYTES {
                let key = key_end.map(|i| &raw[..i]).unwrap_or("");
                return Err(ParseError::LineTooLong {
                    line,
                    key: printable_key(key),
                });
            }
            let Some(eq) = key_end else {
                return Err(ParseError::NotKeyValue { line });
            };
            let (key, value) = (&raw[..eq], &raw[eq + 1..]);
            if let Some(what) = forbidden_character(value) {
                return Err(ParseError::ControlCharacter {
                    line,
                    key: printable_key(key),
                    what,
                });
            }
            c.apply(line, key, value)?;
        }
        Ok(c)
    }

    fn apply(&mut self, line: usize, key: &str, value: &str) -> Result<(), ParseError> {
        let text = || Some(value.to_string());
        match key {
            "protocol" => self.protocol = text(),
            "host" => self.host = text(),
            "path" => self.path = text(),
            "username" => self.username = text(),
            "password" => self.password = Some(Secret::new(value)),
            "password_expiry_utc" => {
                // git: 0 or unparsable means "no expiry" (TIME_MAX).
                // Zero, garbage and anything past the year 9999 mean no expiry at all.
                self.password_expiry_utc = value
                    .parse::<u64>()
                    .ok()
                    .filter(|&t| t != 0 && t <= crate::timefmt::MAX_EXPIRY)
            }
            "oauth_refresh_token" => self.oauth_refresh_token = Some(Secret::new(value)),
            "authtype" => self.authtype = text(),
            "credential" => self.credential = Some(Secret::new(value)),
            "ephemeral" => self.ephemeral = parse_bool(value),
            "wwwauth[]" => self.wwwauth.push(value.to_string()),
            "state[]" => self.state.push(value.to_string()),
            "capability[]" => match value {
                "authtype" => self.capability_authtype = true,
                "state" => self.capability_state = true,
                _ => {}
            },
            "continue" => self.multistage = parse_bool(value),
            "quit" => self.quit = parse_bool(value),
            "url" => self.apply_url(line, value)?,
            // Unknown keys: ignored, as git does, so newer gits keep working.
            _ => {}
        }
        Ok(())
    }

    /// git's `credential_from_url`: a `url=` line replaces the location and identity parts.
    fn apply_url(&mut self, line: usize, url: &str) -> Result<(), ParseError> {
        let bad = |why| ParseError::BadUrl { line, why };
        // Where the userinfo ends is helperd_wire::url's one reading (git's, and a password
        // holding `/` stays a password rather than becoming a host and a path).
        let (scheme, userinfo, rest) = split_userinfo(url).ok_or(bad("it has no scheme"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let decode = |s: &str| percent_decode(s).ok_or(bad("it has a bad %-escape"));
        let (username, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(decode(u)?), Some(decode(p)?)),
                None => (Some(decode(info)?), None),
            },
            None => (None, None),
        };
        let path = match path {
            Some(p) => {
                let decoded = decode(p)?;
                let trimmed = decoded.trim_end_matches('/');
                (!trimmed.is_empty()).then(|| trimmed.to_string())
            }
            None => None,
        };
        let host = decode(host)?;
        for value in [
            Some(&host),
            username.as_ref(),
            password.as_ref(),
            path.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if forbidden_character(value).is_some() {
                return Err(bad("a part of it decodes to a control character"));
            }
        }
        self.protocol = Some(scheme.to_string());
        self.host = (!host.is_empty()).then_some(host);
        self.path = path;
        self.username = username;
        self.password = password.map(Secret::new);
        Ok(())
    }
}

/// Builds git's answer. Each value is checked as it is added: an answer never prints a
/// value it did not validate.
#[derive(Default)]
pub struct Answer {
    text: String,
}

/// A value that cannot be written to git (it would forge a line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to answer git: the value of {key} contains a {what}")]
pub struct UnsafeValue {
    /// The key whose value was refused.
    pub key: &'static str,
    /// Which character: `NUL byte`, `carriage return` or `newline`.
    pub what: &'static str,
}

impl Answer {
    /// An empty answer.
    pub fn new() -> Self {
        Answer::default()
    }

    /// Appends `key=value`, refusing a value with NUL, CR or LF (it would forge a line).
    pub fn push(&mut self, key: &'static str, value: &str) -> Result<(), UnsafeValue> {
        if let Some(what) = forbidden_character(value) {
            return Err(UnsafeValue { key, what });
        }
        self.make_room(key.len() + value.len() + 2);
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(value);
        self.text.push('\n');
        Ok(())
    }

    /// Room for `more` bytes. A grown buffer is a new one: the old one, which may hold a
    /// password already, is wiped before it is freed (a `String` that grows by itself
    /// frees it as it is). Starts at 128 bytes, which holds a user name and a token.
    fn make_room(&mut self, more: usize) {
        let needed = self.text.len() + more;
        if needed <= self.text.capacity() {
            return;
        }
        let mut grown = String::with_capacity(needed.max(2 * self.text.capacity()).max(128));
        grown.push_str(&self.text);
        zeroize::Zeroize::zeroize(&mut std::mem::replace(&mut self.text, grown));
    }

    /// The answer text; it holds secrets, so it leaves as a [`Secret`].
    pub fn finish(self) -> Secret {
        Secret::new(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_attribute() {
        let input = "capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=example.com:8443\npath=a/b.git\nusername=alice\npassword=s3cret\npassword_expiry_utc=2000000000\noauth_refresh_token=rt\nauthtype=Bearer\ncredential=tok\nephemeral=1\nwwwauth[]=Basic realm=\"x\"\nwwwauth[]=Bearer\nstate[]=helper:abc\ncontinue=true\nquit=0\n";
        let c = GitCredential::parse(input).unwrap();
        assert_eq!(c.protocol.as_deref(), Some("https"));
        assert_eq!(c.host.as_deref(), Some("example.com:8443"));
        assert_eq!(c.path.as_deref(), Some("a/b.git"));
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(c.password_expiry_utc, Some(2_000_000_000));
        assert_eq!(
            c.oauth_refresh_token.as_ref().map(Secret::expose),
            Some("rt")
        );
        assert_eq!(c.authtype.as_deref(), Some("Bearer"));
        assert_eq!(c.credential.as_ref().map(Secret::expose), Some("tok"));
        assert!(c.ephemeral && c.capability_authtype && c.capability_state && c.multistage);
        assert!(!c.quit);
        assert_eq!(c.wwwauth, vec!["Basic realm=\"x\"", "Bearer"]);
        assert_eq!(c.state, vec!["helper:abc"]);
    }

    /// An answer longer than its first buffer keeps every line, in order (its buffer is
    /// replaced, not grown in place: see `Answer::make_room`).
    #[test]
    fn a_long_answer_keeps_every_line() {
        let mut a = Answer::new();
        let long = "t".repeat(700);
        a.push("username", "x-access-token").unwrap();
        a.push("password", &long).unwrap();
        a.push("password_expiry_utc", "2000000000").unwrap();
        let text = a.finish();
        assert_eq!(
            text.expose(),
            format!("username=x-access-token\npassword={long}\npassword_expiry_utc=2000000000\n")
        );
    }

    #[test]
    fn blank_line_ends_input_and_unknown_keys_are_ignored() {
        let c = GitCredential::parse("future_key=1\nhost=a\n\nhost=b\n").unwrap();
        assert_eq!(c.host.as_deref(), Some("a"));
    }

    #[test]
    fn empty_username_is_a_username() {
        let c = GitCredential::parse("username=\n").unwrap();
        assert_eq!(c.username.as_deref(), Some(""));
    }

    #[test]
    fn expiry_zero_or_garbage_means_none() {
        for v in ["0", "soon", "-5", "18446744073709551615", "253402300800"] {
            let c = GitCredential::parse(&format!("password_expiry_utc={v}\n")).unwrap();
            assert_eq!(c.password_expiry_utc, None, "{v}");
        }
    }

    #[test]
    fn control_characters_are_refused_without_echoing_the_value() {
        for (input, what) in [
            ("password=ab\0cd\n", "NUL byte"),
            ("host=example.com\r\n", "carriage return"),
        ] {
            let err = GitCredential::parse(input).unwrap_err();
            assert!(
                matches!(&err, ParseError::ControlCharacter { what: w, .. } if *w == what),
                "{err:?}"
            );
            assert!(!err.to_string().contains("ab"), "{err}");
        }
    }

    #[test]
    fn a_line_without_equals_is_refused() {
        assert_eq!(
            GitCredential::parse("host=a\nnonsense\n"),
            Err(ParseError::NotKeyValue { line: 2 })
        );
    }

    #[test]
    fn over_long_line_is_refused_whole_not_split() {
        let mut long = "wwwauth[]=".to_string();
        long.push_str(&"A".repeat(MAX_LINE_BYTES));
        long.push_str("host=evil.example\n");
        let err = GitCredential::parse(&format!("host=good.example\n{long}")).unwrap_err();
        assert!(
            matches!(err, ParseError::LineTooLong { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn long_wwwauth_under_the_limit_cannot_inject_an_attribute() {
        // The classic attack: a value filling a fixed-size buffer so that its tail is read
        // as a second line. Here the tail stays inside the value.
        let value = format!("{}host=evil.example", "A".repeat(MAX_LINE_BYTES - 100));
        let input = format!("protocol=https\nhost=good.example\nwwwauth[]={value}\n");
        let c = GitCredential::parse(&input).unwrap();
        assert_eq!(c.host.as_deref(), Some("good.example"));
        assert_eq!(c.wwwauth, vec![value]);
    }

    #[test]
    fn url_fills_in_the_parts() {
        let c = GitCredential::parse("url=https://al%40ice:p%3Aw@Example.com:8443/org/repo.git/\n")
            .unwrap();
        assert_eq!(c.protocol.as_deref(), Some("https"));
        assert_eq!(c.host.as_deref(), Some("Example.com:8443"));
        assert_eq!(c.path.as_deref(), Some("org/repo.git"));
        assert_eq!(c.username.as_deref(), Some("al@ice"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("p:w"));
    }

    #[test]
    fn url_with_encoded_newline_is_refused() {
        let err = GitCredential::parse("url=https://example.com%0ahost=evil/\n").unwrap_err();
        assert!(matches!(err, ParseError::BadUrl { .. }), "{err:?}");
        assert!(GitCredential::parse("url=example.com\n").is_err());
    }

    #[test]
    fn answer_refuses_values_that_would_forge_lines() {
        let mut a = Answer::new();
        a.push("username", "alice").unwrap();
        assert_eq!(
            a.push("password", "x\nhost=evil"),
            Err(UnsafeValue {
                key: "password",
                what: "newline"
            })
        );
        assert_eq!(a.finish().expose(), "username=alice\n");
    }
}
