//! What can go wrong talking to OpenBao, in words that name OpenBao and the addresses
//! tried (never a token).

/// A failed OpenBao call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaoError {
    /// `[openbao]` or the environment lacks something (no address, no token...).
    #[error("OpenBao: {0}")]
    Setup(String),
    /// No address answered: each with what went wrong.
    #[error("OpenBao is unreachable: tried {}", tried_list(.tried))]
    Unreachable {
        /// `(address, what happened)`, in the order tried.
        tried: Vec<(String, String)>,
    },
    /// OpenBao answered with an error that another node would repeat (403, 400...).
    #[error("OpenBao at {address} refused {what}: HTTP {code}{}", message_suffix(.message))]
    Refused {
        /// The node that answered.
        address: String,
        /// What was asked, e.g. `reading secret/helperd/runtimes/ci`.
        what: String,
        /// The HTTP status.
        code: u16,
        /// OpenBao's own error text.
        message: String,
    },
    /// Logging in failed (the credential files, or OpenBao's answer).
    #[error("OpenBao login ({method}) failed: {why}")]
    Login {
        /// `token`, `approle` or `jwt`.
        method: &'static str,
        /// Why, never the credential.
        why: String,
    },
}

impl BaoError {
    /// Whether the request never reached a node that could answer (the cached secrets
    /// may then be served, DESIGN.md §10).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BaoError::Unreachable { .. })
    }

    /// A 403: the token is not (or no longer) allowed; a login may help.
    pub fn is_denied(&self) -> bool {
        matches!(self, BaoError::Refused { code: 403, .. })
    }
}

fn tried_list(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "no address".into();
    }
    tried
        .iter()
        .map(|(address, why)| format!("{address} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn message_suffix(message: &str) -> String {
    match message.trim() {
        "" => String::new(),
        m => format!(" ({m})"),
    }
}
