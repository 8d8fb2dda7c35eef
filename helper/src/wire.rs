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
    /// The sender's [`PROTOCOL_VERSION`]; checked before anything else in the request.
    pub v: u32,
    /// What is asked; flattened, so `op` sits next to `v` in one JSON object.
    #[serde(flatten)]
    pub request: Request,
}

impl Envelope {
    /// Wraps `request` with this build's [`PROTOCOL_VERSION`].
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
    /// Look up a credential for git's request (`git credential fill`).
    Get,
    /// git reports a credential that worked: kept as a plain credential, or it renews a
    /// runtime whose token cannot be served (typed at git's prompt).
    Store,
    /// git reports a rejected credential (a 401): plain ones are removed, a runtime's token
    /// is marked rejected.
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
        /// The git action the helper was invoked with.
        action: GitAction,
        /// git's standard input (`key=value` lines), unparsed; the daemon validates it.
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
    Unlock {
        /// The store passphrase as typed; secret, redacted in `Debug`.
        passphrase: String,
    },
    /// Protect the file store with a passphrase instead of a key file
    /// (`helperctl store set-passphrase`).
    SetPassphrase {
        /// The new store passphrase; secret, redacted in `Debug`.
        passphrase: String,
    },
    /// Re-read `config.toml` now (`helperctl daemon reload`, SIGHUP).
    Reload,
    /// Which runtime answers this URL, and why (`helperctl which`).
    Which {
        /// The URL to route, as the user gave it; may carry userinfo (redacted in `Debug`).
        url: String,
    },
    /// A new token for a runtime (`helperctl token set`).
    TokenSet {
        /// The runtime (name in config.toml) the token is for.
        runtime: String,
        /// The name the user gave the token (e.g. its name on the host's token page).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
        /// Scopes the user says the token has; the provider's answer replaces them when checked.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// The token itself; secret, redacted in `Debug`.
        secret: String,
        /// Do not ask the provider about the token.
        #[serde(default)]
        offline: bool,
        /// Store it even when the provider says it lacks scopes git needs (recorded).
        #[serde(default)]
        force: bool,
    },
    /// A GitHub App's private key for a runtime with `app_id` (`helperctl token set-app`):
    /// the daemon stores it like a token's secret and mints installation tokens with it.
    TokenSetApp {
        /// The GitHub App runtime.
        runtime: String,
        /// The PEM text (PKCS#1 or PKCS#8); secret, redacted in `Debug`.
        key: String,
        /// Do not ask GitHub whether the key works (nor look up the installation).
        #[serde(default)]
        offline: bool,
    },
    /// Ask the provider about the token of `runtime` again (or of every runtime).
    TokenVerify {
        /// `None`: every runtime that has a token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
    },
    /// Start an OAuth login for `runtime` (`helperctl login`): the daemon asks the host for
    /// a device code and keeps it; the answer is what the user must see.
    LoginStart {
        /// The runtime to log in for.
        runtime: String,
    },
    /// Poll the host once for the login started for `runtime`.
    LoginPoll {
        /// The runtime whose pending login to poll.
        runtime: String,
    },
    /// Start a browser login with PKCE (Gitea, Forgejo, Codeberg): the daemon keeps the
    /// verifier and answers the page to open; the host redirects to `redirect_uri`.
    LoginBrowserStart {
        /// The runtime to log in for.
        runtime: String,
        /// The loopback address the client listens on for the host's redirect.
        redirect_uri: String,
    },
    /// The authorization code the host redirected with: the daemon exchanges it.
    LoginBrowserFinish {
        /// The runtime the login was started for.
        runtime: String,
        /// The authorization code from the redirect; secret, redacted in `Debug`.
        code: String,
        /// The `state` parameter from the redirect; the daemon checks it against the one it sent.
        state: String,
    },
    /// Rotate the runtime's token at the host (GitLab): a new token, a new expiry.
    TokenRotate {
        /// The runtime whose token to rotate.
        runtime: String,
    },
    /// Authorise `from`'s token for `runtime` too (`helperctl token link`).
    TokenLink {
        /// The runtime that gets the token.
        runtime: String,
        /// The runtime whose token it gets.
        from: String,
    },
    /// Take the token away from `runtime` (`helperctl token remove`); with `revoke`, also
    /// revoke it at the host where the API allows it.
    TokenRemove {
        /// The runtime to take the token from; the token survives if other runtimes still use it.
        runtime: String,
        /// Also revoke the token at the host (only where the API allows it).
        #[serde(default)]
        revoke: bool,
    },
    /// Audit events (`helperctl audit`), oldest first.
    Audit {
        /// Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        /// Only events of this runtime.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
    },
    /// Let local user `user` (uid `uid`) run read-only `status` and `audit` against this
    /// daemon through a second socket, for `duration_secs` (`helperctl support enable`).
    SupportEnable {
        /// Local user name being granted access.
        user: String,
        /// That user's uid; the support socket checks the peer's uid against it.
        uid: u32,
        /// How long the grant lasts, in seconds.
        duration_secs: u64,
    },
    /// End support access now (`helperctl support disable`).
    SupportDisable,
    /// Moves the daemon's clock forward by `secs` (`helperctl debug advance-clock`), so
    /// that tests see tokens expire without waiting. Refused unless the daemon was started
    /// with `HELPERD_TEST_CLOCK=1`.
    AdvanceClock {
        /// Seconds to add to the daemon's clock.
        secs: u64,
    },
    /// The user typed a new token at the client's renewal prompt: store it for `runtime`
    /// and answer git's original request (`input`) with it.
    Renew {
        /// The runtime the renewal prompt was for.
        runtime: String,
        /// The new token as typed; secret, redacted in `Debug`.
        secret: String,
        /// As the user typed it (a date or an RFC 3339 time); the daemon parses it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
        /// git's original standard input, answered with the new token; redacted in `Debug`.
        input: String,
    },
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    /// The daemon's [`PROTOCOL_VERSION`]; a client seeing another one restarts the daemon.
    pub v: u32,
    /// The answer itself; flattened, so `result` sits next to `v`.
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
    /// The runtime whose token needs renewing.
    pub runtime: String,
    /// Which token expired (or was rejected) and when, where to make a new one, which
    /// scopes git needs.
    pub text: String,
}

impl Response {
    /// A response carrying `reply`, with this build's [`PROTOCOL_VERSION`] and no notice.
    pub fn new(reply: Reply) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            reply,
            notice: None,
            prompt: None,
        }
    }

    /// An error response; `message` is for humans, `code` for programs.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::new(Reply::Error {
            code,
            message: message.into(),
        })
    }

    /// Sets (or clears) the text the client prints on standard error.
    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    /// Sets (or clears) the renewal the client should ask for on the terminal.
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
        /// The `key=value` lines for git's standard output; secret, redacted in `Debug`.
        output: String,
    },
    // Boxed: these are large, and every other answer would pay for their size.
    /// The daemon's state for `helperctl status`.
    Status {
        /// The report (boxed: it is large).
        status: Box<StatusReport>,
    },
    /// Which runtime answers a URL (`helperctl which`).
    Which {
        /// The report (boxed: it is large).
        which: Box<WhichReport>,
    },
    /// Audit events as JSON objects (fields documented in README.md); never secrets.
    Audit {
        /// One JSON object per event, oldest first.
        events: Vec<serde_json::Value>,
    },
    /// A step of an OAuth device login.
    Login {
        /// Where the login stands (boxed: it is large).
        login: Box<LoginStep>,
    },
    /// The request was carried out and has nothing to report.
    Done,
    /// The request failed.
    Error {
        /// What kind of failure; programs branch on it.
        code: ErrorCode,
        /// What went wrong and, where possible, the fix; for humans.
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
            Request::TokenSetApp {
                runtime,
                key: _,
                offline,
            } => f
                .debug_struct("TokenSetApp")
                .field("runtime", runtime)
                .field("key", &"<redacted>")
                .field("offline", offline)
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
        /// The code the user types at `verification_uri`.
        user_code: String,
        /// The page where the user enters `user_code`.
        verification_uri: String,
        /// `verification_uri` with the code already filled in, when the host offers one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verification_uri_complete: Option<String>,
        /// Seconds between polls.
        interval: u64,
        /// Seconds until the code expires.
        expires_in: u64,
    },
    /// Not approved yet: poll again after `interval` seconds.
    Pending {
        /// Seconds to wait before the next poll.
        interval: u64,
    },
    /// Open this page in a browser; the host redirects back to the loopback address.
    Browser {
        /// The host's authorization page, with PKCE challenge and `state`.
        url: String,
    },
    /// Approved; the token is stored.
    Done {
        /// What to tell the user (which token was stored, until when).
        message: String,
    },
}

/// Fixed, machine-readable error codes (DESIGN.md §4). Messages are for humans; scripts
/// and the client branch on the code.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request's `v` is not the daemon's [`PROTOCOL_VERSION`]; the client restarts the daemon.
    VersionMismatch,
    /// The request was malformed or its arguments make no sense (unknown runtime, bad URL...).
    BadRequest,
    /// The peer may not ask this (another user, the support or forward socket's limits).
    Forbidden,
    /// A token has expired. Not produced by the current daemon; kept for wire compatibility.
    TokenExpired,
    /// The store is locked: `helperctl unlock` first.
    StoreLocked,
    /// The store cannot be opened or read.
    StoreUnavailable,
    /// The admin policy forbids it.
    Policy,
    /// `config.toml` is broken; the last good configuration stays in force.
    Config,
    /// The provider refused the token or the request, or could not be reached.
    Provider,
    /// A bug or an unexpected I/O failure in the daemon.
    Internal,
}

/// What `helperctl status` shows about the daemon. Stable field names: `--json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusReport {
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's crate version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The daemon's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Path of the daemon's main socket.
    pub socket: String,
    /// The secret store and whether it can be used.
    pub store: StoreStatus,
    /// Which `config.toml` is in force and whether it loaded.
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
    /// The team's OpenBao, when `[openbao]` names a `team_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openbao: Option<OpenBaoStatus>,
    /// helperd's folders that other users may reach, each as `<folder>: <who>` (on Unix
    /// the daemon refuses such folders at start; on Windows the profile's ACL is what
    /// protects them, so an ACL that lets others in is reported here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_folders: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The forward socket (DESIGN.md §11).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardStatus {
    /// Path of the forward socket (whether or not it is open).
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
    /// Path of the policy file in force (or of the refused one).
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
    /// Local user name that was granted access.
    pub user: String,
    /// That user's uid; only connections from it are answered.
    pub uid: u32,
    /// Unix seconds.
    pub until: u64,
    /// Path of the support socket.
    pub socket: String,
}

/// The configuration in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigStatus {
    /// Path of the `config.toml` in force.
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
    /// Runtime name as written in config.toml; unique.
    pub name: String,
    /// Provider name (`github`, `gitlab`, ...).
    pub provider: String,
    /// The URL prefixes the runtime answers for.
    pub urls: Vec<String>,
    /// The username git will send (configured, or the provider's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `basic` or `bearer`.
    pub auth: String,
    /// The token authorised for this runtime, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
    /// What stops this runtime from working, and the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Where `helperctl login` takes the OAuth client id from: `runtime` (its
    /// `oauth_client_id`) or `policy` (an `[[oauth_app]]` of the system policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_app: Option<String>,
    /// Set for a team runtime: where in OpenBao it was read (DESIGN.md §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamSource>,
    /// Set for a GitHub App runtime: the app and its minted token (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppStatus>,
    /// Set for a GitLab runtime whose token rotates itself (issue 18). Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
}

/// A GitLab runtime's self-rotation: when it is due, and how the last attempt went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RotationStatus {
    /// The window in days (the runtime's `rotate_days`, raised to the policy's floor).
    pub days: u32,
    /// The token's kind: `personal`, `project:ID` or `group:ID`.
    pub via: String,
    /// `scheduled` (due at `due_at`), `due` (at the next look), `in_flight`, `failed`
    /// (retried at `retry_at`), `interrupted` (a rotation was started and not finished;
    /// the host is asked whether it rotated before anything else), `lost` (the host
    /// rotated it and the new token never reached helperd: renew it), `not_rotatable`
    /// (no token, no expiry, an OAuth token, or expired).
    pub state: String,
    /// When the token enters its rotation window (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<u64>,
    /// The next attempt after a failure (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// Failed attempts in a row.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub failures: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// A GitHub App runtime's app and installation token (DESIGN.md §13). Never a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppStatus {
    /// The app's id.
    pub app_id: u64,
    /// The app's client id, when configured (the JWT's issuer then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The installation minted for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<u64>,
    /// Where the installation id comes from: `config` or `discovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_from: Option<String>,
    /// Permissions asked for (`name=level`); empty: all the installation has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// The installation token held in memory now: when it expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<u64>,
    /// When it was minted (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_at: Option<u64>,
    /// When the next token is minted (Unix seconds): a few minutes before the current one
    /// expires, or after a failure's back-off; absent: at the next git request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_mint: Option<u64>,
    /// Why the last mint failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tokens minted since the daemon started.
    pub mints: u64,
}

/// Where a team runtime lives in OpenBao.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TeamSource {
    /// `<mount>/<team_path>/<name>`, what `bao kv get` takes.
    pub path: String,
    /// The KV version 2 version being served.
    pub version: u64,
}

/// The team's OpenBao, as this daemon sees it (DESIGN.md §10). Never a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenBaoStatus {
    /// `<mount>/<team_path>`: where the team runtimes are read.
    pub source: String,
    /// The addresses tried, in order.
    pub addresses: Vec<String>,
    /// `token`, `approle` or `jwt`.
    pub auth: String,
    /// Unix seconds of the last complete read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<u64>,
    /// Since when every read has failed (Unix seconds), and the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<u64>,
    /// The last read's error, naming OpenBao and the addresses tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Until when (Unix seconds) secrets read earlier are still served while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_until: Option<u64>,
    /// Entries under the team path that are not runtimes: `path: why`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<String>,
    /// Logins since the daemon started.
    #[serde(default)]
    pub logins: u64,
    /// Lease renewals since the last login.
    #[serde(default)]
    pub renewals: u64,
    /// When the login's lease ends (Unix seconds), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ends_at: Option<u64>,
}

/// A token's metadata; never the secret. Times are Unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenStatus {
    /// The token's random, stable id (its store key is `token/<id>`).
    pub id: String,
    /// The name the user gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scopes the provider reported (or the user gave with `--offline`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When it was stored (Unix seconds).
    pub created: u64,
    /// When it expires (Unix seconds); `None`: never, or not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// When git was last served it (Unix seconds).
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
    /// The URL asked about, with any password redacted.
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
    /// The token the chosen runtime would serve, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
}

/// One runtime considered by `helperctl which`, and why it won or lost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhichCandidate {
    /// Runtime name as written in config.toml.
    pub runtime: String,
    /// The runtime's URL prefix that matched the URL.
    pub prefix: String,
    /// `chosen`, `less specific`, `username differs (...)`, `needs path`.
    pub outcome: String,
}

/// The secret store of record, as the daemon sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreStatus {
    /// `file`, `secret-service`, `keychain`, `wincred` or `openbao`.
    pub kind: String,
    /// Where the secrets are when the kind alone does not say it: for `openbao`, the KV
    /// path `<mount>/<user_path>` of the user's entries. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// How the secrets are protected at rest, in words (e.g. "OS keyring",
    /// "encrypted file, key in a 0600 key file (weaker)").
    pub protection: String,
    /// `ok`, `locked`, `waiting` (a store call has been outstanding longer than a git
    /// `store` waits: an unlock dialog?) or `unavailable`.
    pub state: String,
    /// With `waiting`: how long the oldest outstanding store call has been running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_secs: Option<u64>,
    /// Writes queued for the store and not yet landed, oldest first, in words (never a
    /// secret). They are served from memory meanwhile, and are what a daemon stopped
    /// before the store answers loses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_writes: Vec<String>,
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
