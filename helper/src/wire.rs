//! The wire format between the clients (`git-credential-helperd`, `helperctl`) and the daemon.
//!
//! One JSON object per line, one request and one response per connection (DESIGN.md §4).
//! Both ends use these types, so they cannot drift apart. Bump [`PROTOCOL_VERSION`] by hand
//! whenever a change is not backwards compatible; the client then restarts an old daemon.

use serde::{Deserialize, Serialize};

/// Version of the request/response format. A daemon answers a request with a different
/// version with [`ErrorCode::VersionMismatch`], except [`Request::Shutdown`], which every
/// version must honour so that a newer client can replace an older daemon.
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest request or response line either end reads, newline included.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A request together with the protocol version the sender speaks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

impl Envelope {
    pub fn new(request: Request) -> Self {
        Envelope {
            v: PROTOCOL_VERSION,
            request,
        }
    }
}

/// The git action the helper was called with (`git-credential-helperd <action>`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GitAction {
    Get,
    Store,
    Erase,
}

impl GitAction {
    /// Parses the action word git passes; unknown actions are `None` (git's rule: a helper
    /// ignores actions it does not know).
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "get" => Some(GitAction::Get),
            "store" => Some(GitAction::Store),
            "erase" => Some(GitAction::Erase),
            _ => None,
        }
    }
}

/// Everything a client may ask the daemon.
///
/// `Debug` is written by hand: git's input and passphrases are secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A git credential-helper call, with git's standard input forwarded unparsed.
    Git {
        action: GitAction,
        input: String,
        /// Lifetime in seconds of plain credentials stored by this call
        /// (`git-credential-helperd --timeout=N`, like git's `credential-cache --timeout`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Daemon and store facts for `helperctl status`; never carries a secret.
    Status,
    /// Ask the daemon to close its socket and exit.
    Shutdown,
    /// Unlock a passphrase-protected file store (`helperctl unlock`).
    Unlock { passphrase: String },
    /// Protect the file store with a passphrase instead of a key file
    /// (`helperctl store set-passphrase`).
    SetPassphrase { passphrase: String },
    /// Re-read `config.toml` now (`helperctl daemon reload`, SIGHUP).
    Reload,
    /// Which runtime answers this URL, and why (`helperctl which`).
    Which { url: String },
    /// A new token for a runtime (`helperctl token set`).
    TokenSet {
        runtime: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        secret: String,
        /// Do not ask the provider about the token.
        #[serde(default)]
        offline: bool,
        /// Store it even when the provider says it lacks scopes git needs (recorded).
        #[serde(default)]
        force: bool,
    },
    /// Ask the provider about the token of `runtime` again (or of every runtime).
    TokenVerify {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
    },
    /// Start an OAuth login for `runtime` (`helperctl login`): the daemon asks the host for
    /// a device code and keeps it; the answer is what the user must see.
    LoginStart { runtime: String },
    /// Poll the host once for the login started for `runtime`.
    LoginPoll { runtime: String },
    /// Start a browser login with PKCE (Gitea, Forgejo, Codeberg): the daemon keeps the
    /// verifier and answers the page to open; the host redirects to `redirect_uri`.
    LoginBrowserStart {
        runtime: String,
        redirect_uri: String,
    },
    /// The authorization code the host redirected with: the daemon exchanges it.
    LoginBrowserFinish {
        runtime: String,
        code: String,
        state: String,
    },
    /// Rotate the runtime's token at the host (GitLab): a new token, a new expiry.
    TokenRotate { runtime: String },
    /// Authorise `from`'s token for `runtime` too (`helperctl token link`).
    TokenLink { runtime: String, from: String },
    /// Take the token away from `runtime` (`helperctl token remove`); with `revoke`, also
    /// revoke it at the host where the API allows it.
    TokenRemove {
        runtime: String,
        #[serde(default)]
        revoke: bool,
    },
    /// Audit events (`helperctl audit`), oldest first.
    Audit {
        /// Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
    },
    /// Let local user `user` (uid `uid`) run read-only `status` and `audit` against this
    /// daemon through a second socket, for `duration_secs` (`helperctl support enable`).
    SupportEnable {
        user: String,
        uid: u32,
        duration_secs: u64,
    },
    /// End support access now (`helperctl support disable`).
    SupportDisable,
    /// Moves the daemon's clock forward by `secs` (`helperctl debug advance-clock`), so
    /// that tests see tokens expire without waiting. Refused unless the daemon was started
    /// with `HELPERD_TEST_CLOCK=1`.
    AdvanceClock { secs: u64 },
    /// The user typed a new token at the client's renewal prompt: store it for `runtime`
    /// and answer git's original request (`input`) with it.
    Renew {
        runtime: String,
        secret: String,
        /// As the user typed it (a date or an RFC 3339 time); the daemon parses it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
        input: String,
    },
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub v: u32,
    #[serde(flatten)]
    pub reply: Reply,
    /// Text the client prints on its standard error (warnings, hints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// A renewal the client should ask for on the terminal; without one, it prints
    /// `notice` instead (which says the same and how to renew later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Box<RenewalPrompt>>,
}

/// What the client shows on `/dev/tty` to ask for a new token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenewalPrompt {
    pub runtime: String,
    /// Which token expired (or was rejected) and when, where to make a new one, which
    /// scopes git needs.
    pub text: String,
}

impl Response {
    pub fn new(reply: Reply) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            reply,
            notice: None,
            prompt: None,
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::new(Reply::Error {
            code,
            message: message.into(),
        })
    }

    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    pub fn with_prompt(mut self, prompt: Option<RenewalPrompt>) -> Self {
        self.prompt = prompt.map(Box::new);
        self
    }
}

/// The body of a [`Response`].
///
/// `Debug` is written by hand: the git output carries the password.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// Text for git's standard input, already validated (may be empty: a miss).
    Git {
        output: String,
    },
    // Boxed: these are large, and every other answer would pay for their size.
    Status {
        status: Box<StatusReport>,
    },
    Which {
        which: Box<WhichReport>,
    },
    /// Audit events as JSON objects (fields documented in README.md); never secrets.
    Audit {
        events: Vec<serde_json::Value>,
    },
    /// A step of an OAuth device login.
    Login {
        login: Box<LoginStep>,
    },
    /// The request was carried out and has nothing to report.
    Done,
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every variant is named, so a new variant must decide what is secret.
        match self {
            Request::Git {
                action,
                input: _,
                timeout_secs,
            } => f
                .debug_struct("Git")
                .field("action", action)
                .field("input", &"<redacted>")
                .field("timeout_secs", timeout_secs)
                .finish(),
            Request::Status => f.write_str("Status"),
            Request::Shutdown => f.write_str("Shutdown"),
            Request::Unlock { passphrase: _ } => f.write_str("Unlock { passphrase: <redacted> }"),
            Request::SetPassphrase { passphrase: _ } => {
                f.write_str("SetPassphrase { passphrase: <redacted> }")
            }
            Request::Reload => f.write_str("Reload"),
            Request::AdvanceClock { secs } => {
                f.debug_struct("AdvanceClock").field("secs", secs).finish()
            }
            Request::Which { url } => f
                .debug_struct("Which")
                .field("url", &crate::url::redact_password(url))
                .finish(),
            Request::TokenSet {
                runtime,
                name,
                expires,
                scopes,
                secret: _,
                offline,
                force,
            } => f
                .debug_struct("TokenSet")
                .field("runtime", runtime)
                .field("name", name)
                .field("expires", expires)
                .field("scopes", scopes)
                .field("secret", &"<redacted>")
                .field("offline", offline)
                .field("force", force)
                .finish(),
            Request::TokenVerify { runtime } => f
                .debug_struct("TokenVerify")
                .field("runtime", runtime)
                .finish(),
            Request::LoginStart { runtime } => f
                .debug_struct("LoginStart")
                .field("runtime", runtime)
                .finish(),
            Request::LoginPoll { runtime } => f
                .debug_struct("LoginPoll")
                .field("runtime", runtime)
                .finish(),
            Request::LoginBrowserStart {
                runtime,
                redirect_uri,
            } => f
                .debug_struct("LoginBrowserStart")
                .field("runtime", runtime)
                .field("redirect_uri", redirect_uri)
                .finish(),
            Request::LoginBrowserFinish {
                runtime,
                code: _,
                state: _,
            } => f
                .debug_struct("LoginBrowserFinish")
                .field("runtime", runtime)
                .field("code", &"<redacted>")
                .finish(),
            Request::TokenRotate { runtime } => f
                .debug_struct("TokenRotate")
                .field("runtime", runtime)
                .finish(),
            Request::TokenLink { runtime, from } => f
                .debug_struct("TokenLink")
                .field("runtime", runtime)
                .field("from", from)
                .finish(),
            Request::TokenRemove { runtime, revoke } => f
                .debug_struct("TokenRemove")
                .field("runtime", runtime)
                .field("revoke", revoke)
                .finish(),
            Request::Audit { since, runtime } => f
                .debug_struct("Audit")
                .field("since", since)
                .field("runtime", runtime)
                .finish(),
            Request::SupportEnable {
                user,
                uid,
                duration_secs,
            } => f
                .debug_struct("SupportEnable")
                .field("user", user)
                .field("uid", uid)
                .field("duration_secs", duration_secs)
                .finish(),
            Request::SupportDisable => f.write_str("SupportDisable"),
            Request::Renew {
                runtime,
                secret: _,
                expires,
                input: _,
            } => f
                .debug_struct("Renew")
                .field("runtime", runtime)
                .field("secret", &"<redacted>")
                .field("expires", expires)
                .field("input", &"<redacted>")
                .finish(),
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Git { output: _ } => f.write_str("Git { output: <redacted> }"),
            Reply::Status { status } => f.debug_struct("Status").field("status", status).finish(),
            Reply::Which { which } => f.debug_struct("Which").field("which", which).finish(),
            Reply::Audit { events } => write!(f, "Audit {{ {} events }}", events.len()),
            Reply::Login { login } => f.debug_struct("Login").field("login", login).finish(),
            Reply::Done => f.write_str("Done"),
            Reply::Error { code, message } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .finish(),
        }
    }
}

/// What a device login needs from the user, or where it stands. Never a secret (the
/// device code stays in the daemon).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum LoginStep {
    /// Show the user where to go and what to type.
    Code {
        user_code: String,
        verification_uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification_uri_complete: Option<String>,
        /// Seconds between polls.
        interval: u64,
        /// Seconds until the code expires.
        expires_in: u64,
    },
    /// Not approved yet: poll again after `interval` seconds.
    Pending { interval: u64 },
    /// Open this page in a browser; the host redirects back to the loopback address.
    Browser { url: String },
    /// Approved; the token is stored.
    Done { message: String },
}

/// Fixed, machine-readable error codes (DESIGN.md §4). Messages are for humans; scripts
/// and the client branch on the code.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    VersionMismatch,
    BadRequest,
    Forbidden,
    TokenExpired,
    StoreLocked,
    StoreUnavailable,
    Policy,
    /// `config.toml` is broken; the last good configuration stays in force.
    Config,
    /// The provider refused the token or the request, or could not be reached.
    Provider,
    Internal,
}

/// What `helperctl status` shows about the daemon. Stable field names: `--json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    pub pid: u32,
    pub version: String,
    pub protocol: u32,
    pub uptime_secs: u64,
    pub socket: String,
    pub store: StoreStatus,
    #[serde(default)]
    pub config: ConfigStatus,
    /// Every runtime of the configuration in force, in file order.
    #[serde(default)]
    pub runtimes: Vec<RuntimeStatus>,
    /// The admin policy in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyStatus>,
    /// Support access granted with `helperctl support enable`, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportStatus>,
    /// The forward socket for remote machines (`helperctl forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardStatus>,
    /// Daemon log lines that could not be written since start (a full disk).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_lines_lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The forward socket (DESIGN.md §11).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardStatus {
    pub socket: String,
    /// Listening now.
    pub open: bool,
    /// Forwarded git requests served since the daemon started.
    pub served: u64,
    /// Why it is closed: no runtime is marked `forward = true`, or the policy forbids it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_because: Option<String>,
}

/// The admin policy in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyStatus {
    pub path: String,
    /// Each rule in force as `name = value`.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Why a policy file was refused (the last trusted policy, if any, stays in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Support access in force.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SupportStatus {
    pub user: String,
    pub uid: u32,
    /// Unix seconds.
    pub until: u64,
    pub socket: String,
}

/// The configuration in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigStatus {
    pub path: String,
    /// The expiry warning window, in days.
    pub warn_days: u32,
    /// Why the file on disk is not in force (the last good configuration still serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One runtime and its token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuntimeStatus {
    pub name: String,
    pub provider: String,
    pub urls: Vec<String>,
    /// The username git will send (configured, or the provider's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `basic` or `bearer`.
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
    /// What stops this runtime from working, and the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Where `helperctl login` takes the OAuth client id from: `runtime` (its
    /// `oauth_client_id`) or `policy` (an `[[oauth_app]]` of the system policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_app: Option<String>,
}

/// A token's metadata; never the secret. Times are Unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenStatus {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
    /// `valid`, `expiring`, `expired` or `rejected`.
    pub state: String,
    /// Other runtimes authorised for the same token (`helperctl token link`).
    #[serde(default)]
    pub shared_with: Vec<String>,
    /// How this token breaks the admin policy (set before the policy existed: it keeps
    /// working until it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_violation: Option<String>,
    /// "not used since …, consider removing it", when unused for the stale window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
    /// When the provider was last asked about the token (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
    /// What the provider says it is ("classic PAT", "OAuth app token", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The account the provider says the token acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// What the provider reported that the fields cannot say, and `--force` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// An OAuth token the daemon refreshes by itself.
    #[serde(default)]
    pub oauth: bool,
}

/// Which runtime answers a URL, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhichReport {
    pub url: String,
    /// The runtime that answers, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The URL prefix that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// One sentence: why this runtime, or why none.
    pub reason: String,
    /// The `git config` line that makes git send paths, when that is what is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Every runtime whose prefixes were considered, with the outcome.
    #[serde(default)]
    pub candidates: Vec<WhichCandidate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhichCandidate {
    pub runtime: String,
    pub prefix: String,
    /// `chosen`, `less specific`, `username differs (...)`, `needs path`.
    pub outcome: String,
}

/// The secret store of record, as the daemon sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreStatus {
    /// `file` or `secret-service` (or `keychain`, `wincred` on those systems).
    pub kind: String,
    /// How the secrets are protected at rest, in words (e.g. "OS keyring",
    /// "encrypted file, key in a 0600 key file (weaker)").
    pub protection: String,
    /// `ok`, `locked` or `unavailable`.
    pub state: String,
    /// Why the store is locked or unavailable, and the way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Number of plain credentials stored through git's `store` (none when the store
    /// cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_credentials: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_one_flat_tagged_object() {
        let env = Envelope::new(Request::Git {
            action: GitAction::Get,
            input: "protocol=https\nhost=example.com\n".into(),
            timeout_secs: None,
        });
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(
            json,
            r#"{"v":2,"op":"git","action":"get","input":"protocol=https\nhost=example.com\n"}"#
        );
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn shutdown_parses_whatever_the_version() {
        let env: Envelope = serde_json::from_str(r#"{"v":99,"op":"shutdown"}"#).unwrap();
        assert_eq!(env.request, Request::Shutdown);
        assert_eq!(env.v, 99);
    }

    #[test]
    fn error_reply_carries_code_and_notice() {
        let resp = Response::error(ErrorCode::StoreLocked, "run helperctl unlock")
            .with_notice(Some("hint".into()));
        let json = serde_json::to_string(&resp).unwrap();
        assert_eq!(
            json,
            r#"{"v":2,"result":"error","code":"store_locked","message":"run helperctl unlock","notice":"hint"}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), resp);
    }

    #[test]
    fn userinfo_passwords_are_redacted() {
        let which = Request::Which {
            url: "https://u:hunter2@h/".into(),
        };
        assert!(!format!("{which:?}").contains("hunter2"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let req = Request::Git {
            action: GitAction::Store,
            input: "password=hunter2\n".into(),
            timeout_secs: Some(5),
        };
        let unlock = Request::Unlock {
            passphrase: "hunter2".into(),
        };
        let token = Request::TokenSet {
            runtime: "acme".into(),
            name: None,
            expires: None,
            scopes: vec![],
            secret: "hunter2".into(),
            offline: false,
            force: false,
        };
        let reply = Reply::Git {
            output: "password=hunter2\n".into(),
        };
        for text in [
            format!("{req:?}"),
            format!("{unlock:?}"),
            format!("{token:?}"),
            format!("{reply:?}"),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
