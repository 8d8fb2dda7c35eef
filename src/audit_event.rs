//! One audit event (DESIGN.md §1, §3): plain data, built by the decision and the
//! services, written by the audit log (`crate::audit`, an edge). Pure: no I/O.
//!
//! What it must never hold is a secret: events carry a token's *name* (or id), a URL with
//! its userinfo and query stripped (enforced again when the event is serialised, so a URL
//! assigned directly to the field cannot leak a password either), and peer facts.

use serde::{Deserialize, Serialize, Serializer};

/// The names of events, so the writers and the tests agree on the spelling.
pub mod kind {
    /// A token or plain credential was handed to git.
    pub const SERVED: &str = "served";
    /// A request was refused; the reason says why (expired, rejected, policy, ambiguous path).
    pub const REFUSED: &str = "refused";
    /// git stored a credential.
    pub const STORED: &str = "stored";
    /// git erased a credential.
    pub const ERASED: &str = "erased";
    /// An expired or rejected token was replaced.
    pub const RENEWED: &str = "renewed";
    /// A token was stored for a runtime (`helperctl token set`, `helperctl login`).
    pub const TOKEN_SET: &str = "token_set";
    /// A runtime was authorised for another runtime's token (`helperctl token link`).
    pub const TOKEN_LINKED: &str = "token_linked";
    /// A runtime's token was taken away (`helperctl token remove`).
    pub const TOKEN_REMOVED: &str = "token_removed";
    /// The provider was asked about a token again (`helperctl token verify`).
    pub const TOKEN_VERIFIED: &str = "token_verified";
    /// A token was revoked at the host (`helperctl token remove --revoke`).
    pub const TOKEN_REVOKED: &str = "token_revoked";
    /// The admin policy refused a token or a request.
    pub const POLICY_VIOLATION: &str = "policy_violation";
    /// Another local user was given read-only support access.
    pub const SUPPORT_GRANTED: &str = "support_granted";
    /// The support socket was used (or a connection to it refused).
    pub const SUPPORT_USED: &str = "support_used";
    /// Support access ended, by the user or by expiry.
    pub const SUPPORT_REVOKED: &str = "support_revoked";
    /// The daemon minted a GitHub App installation token (runtime, installation,
    /// permissions, expiry; never the token or the key).
    pub const MINTED: &str = "minted";
    /// The daemon had GitLab rotate a runtime's token (runtime, old and new expiry; never
    /// a token).
    pub const ROTATED: &str = "rotated";
    /// A rotation the daemon started cannot be finished: the host rotated the token but
    /// the new one never reached helperd (the daemon stopped mid-rotation), so the user
    /// must renew it.
    pub const ROTATION_LOST: &str = "rotation_lost";
    /// A broken `config.toml`. Reserved: no code writes this kind yet.
    pub const CONFIG_ERROR: &str = "config_error";
}

/// One decision. Never holds a secret: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix seconds.
    pub ts: u64,
    /// One of [`kind`].
    pub event: String,
    /// The runtime (config.toml name) the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The token's name, else its id; never the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Redacted again when serialised ([`redact_url`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted_url"
    )]
    pub url: Option<String>,
    /// Why it happened, in words (a refusal's reason, the rule broken...); never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pid of the peer process on the socket, when the OS tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<i32>,
    /// The peer's executable path, looked up while it was still connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_exe: Option<String>,
    /// Uid of the peer process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_uid: Option<u32>,
    /// How the request came, when not through the main socket: `forward` (from a remote
    /// machine, DESIGN.md §11) or `support`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// serde calls this with a reference to the field, hence `&Option`.
fn serialize_redacted_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&redact_url(url)),
        None => s.serialize_none(),
    }
}

impl AuditEvent {
    /// An event with only its time and kind; the builder methods add the rest.
    pub fn new(event: impl Into<String>, ts: u64) -> Self {
        AuditEvent {
            ts,
            event: event.into(),
            runtime: None,
            token: None,
            url: None,
            reason: None,
            peer_pid: None,
            peer_exe: None,
            peer_uid: None,
            via: None,
        }
    }

    /// The runtime (config.toml name) the event is about.
    pub fn runtime(mut self, runtime: impl Into<String>) -> Self {
        self.runtime = Some(runtime.into());
        self
    }

    /// The token's name (or id when it has none); never the secret.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The URL, with credentials and query stripped.
    pub fn url(mut self, url: &str) -> Self {
        self.url = Some(redact_url(url));
        self
    }

    /// Why it happened, in words; never a secret.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// How the request came (`forward`, `support`).
    pub fn via(mut self, via: &str) -> Self {
        self.via = Some(via.to_string());
        self
    }

    /// The peer process and its executable (which the daemon looks up while the peer is
    /// still connected, so that its pid cannot have been reused).
    pub fn peer_process(mut self, pid: i32, uid: u32, exe: Option<String>) -> Self {
        self.peer_pid = Some(pid);
        self.peer_uid = Some(uid);
        self.peer_exe = exe;
        self
    }

    /// The JSON line written to the log, with its `\n`. serde_json escapes every control
    /// character, so the line has no other newline.
    pub fn to_line(&self) -> String {
        let mut line = Vec::new();
        self.write_line(&mut line);
        String::from_utf8(line).expect("serde_json writes UTF-8")
    }

    /// Appends [`AuditEvent::to_line`] to `out`: a batch of events becomes one buffer,
    /// without a string of its own for each line.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // What `serde_json::to_writer` writes for the derived `Serialize` (a test holds
        // them to it), written field by field: every git request writes a line, and
        // serde's escaping looks at every byte of every key and value one at a time.
        out.extend_from_slice(b"{\"ts\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.ts).as_bytes());
        out.extend_from_slice(b",\"event\":");
        crate::json_string::push(out, &self.event);
        let text = |out: &mut Vec<u8>, key: &[u8], value: Option<&str>| {
            if let Some(value) = value {
                out.extend_from_slice(key);
                crate::json_string::push(out, value);
            }
        };
        text(out, b",\"runtime\":", self.runtime.as_deref());
        text(out, b",\"token\":", self.token.as_deref());
        let url = self.url.as_deref().map(redact_url);
        text(out, b",\"url\":", url.as_deref());
        text(out, b",\"reason\":", self.reason.as_deref());
        if let Some(pid) = self.peer_pid {
            out.extend_from_slice(b",\"peer_pid\":");
            out.extend_from_slice(itoa::Buffer::new().format(pid).as_bytes());
        }
        text(out, b",\"peer_exe\":", self.peer_exe.as_deref());
        if let Some(uid) = self.peer_uid {
            out.extend_from_slice(b",\"peer_uid\":");
            out.extend_from_slice(itoa::Buffer::new().format(uid).as_bytes());
        }
        text(out, b",\"via\":", self.via.as_deref());
        out.extend_from_slice(b"}\n");
    }
}

/// Strips what could carry a credential from a URL before it is logged: the userinfo
/// (`user:password@`), the query (`?private_token=...`) and the fragment;
/// [`helperd_wire::url::redact_for_log`], the one reading of URLs every output uses.
pub fn redact_url(url: &str) -> String {
    helperd_wire::url::redact_for_log(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line written by hand is the line `serde_json` writes for the derived
    /// `Serialize`, for every field present or missing and strings that need escaping.
    #[test]
    fn the_hand_written_line_is_serdes() {
        let bare = AuditEvent::new(kind::SERVED, 0);
        let full = AuditEvent::new(kind::REFUSED, u64::MAX)
            .runtime("acme")
            .token("ci token")
            .url("https://user:pw@github.com/acme/app.git?private_token=x#f")
            .reason("expired \"yesterday\"\n\t\\ \u{1} \u{7f} é ✓")
            .via("forward")
            .peer_process(-1, u32::MAX, Some("/usr/bin/git \"odd\"".into()));
        let mut url_set_directly = AuditEvent::new(kind::STORED, 7);
        url_set_directly.url = Some("https://u:secret@host/p".into());
        url_set_directly.peer_pid = Some(42);
        for event in [bare, full, url_set_directly] {
            let mut line = Vec::new();
            event.write_line(&mut line);
            let mut expected = serde_json::to_vec(&event).unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(expected).unwrap()
            );
            assert!(!event.to_line().contains("secret") && !event.to_line().contains("pw@"));
        }
    }
}
