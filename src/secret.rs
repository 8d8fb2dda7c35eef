//! [`Secret`]: the only type that holds a password or token inside the daemon.
//!
//! Zeroized on drop, redacted in `Debug` and `Display`, and deliberately not `Serialize`,
//! so a secret cannot reach a log line, an error message or a JSON answer by accident.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (password, token, passphrase, key material in text form).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`; from here on it is zeroized on drop and never printed.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text. Call it only where the secret must leave: the git answer, the
    /// store, a provider request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (an empty token is refused, not stored).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Secret bytes (encryption keys), zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroized when this drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The key bytes, for the cipher; never log or persist them in the clear.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("ghp_supersecret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "ghp_supersecret");
        let b = SecretBytes::new(vec![1, 2, 3]);
        assert!(!format!("{b:?}").contains('1'));
    }
}
