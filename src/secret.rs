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

/// A stack buffer for bytes read off a socket (a request may carry a password), wiped
/// when dropped: only the part any read wrote to, since the rest still holds the zeros it
/// started with. Wiping a whole 512-byte buffer one volatile byte at a time cost a `get`
/// more instructions than parsing its request (callgrind, `scripts/request_cost.sh`).
pub struct ReadBuffer<const N: usize> {
    bytes: [u8; N],
    /// How far reads may have written: everything past it is still zero.
    written: usize,
}

impl<const N: usize> ReadBuffer<N> {
    /// A zeroed buffer.
    pub fn new() -> Self {
        ReadBuffer {
            bytes: [0; N],
            written: 0,
        }
    }

    /// Lets `read` write into the first `limit` bytes (at most the buffer's size) and
    /// return how many it wrote, at the front; those are then wiped on drop. A failed
    /// read wrote nothing.
    pub fn read_with<E>(
        &mut self,
        limit: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let limit = limit.min(N);
        let n = read(&mut self.bytes[..limit])?.min(limit);
        self.written = self.written.max(n);
        Ok(n)
    }

    /// The first `len` bytes (at most the buffer's size).
    pub fn first(&self, len: usize) -> &[u8] {
        &self.bytes[..len.min(N)]
    }
}

impl<const N: usize> Default for ReadBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ReadBuffer<N> {
    fn wipe(&mut self) {
        self.bytes[..self.written].zeroize();
    }
}

impl<const N: usize> Drop for ReadBuffer<N> {
    fn drop(&mut self) {
        self.wipe();
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

    #[test]
    fn a_read_buffer_wipes_what_any_read_wrote() {
        let mut buffer = ReadBuffer::<16>::new();
        let wrote = buffer.read_with(16, |b| {
            b[..10].copy_from_slice(b"password=x");
            Ok::<_, ()>(10)
        });
        assert_eq!(wrote, Ok(10));
        // A shorter read later: the longer one's bytes are still to be wiped.
        let wrote = buffer.read_with(4, |b| {
            b.copy_from_slice(b"pass");
            Ok::<_, ()>(4)
        });
        assert_eq!((wrote, buffer.first(4)), (Ok(4), &b"pass"[..]));
        // A read that claims more than its room counts only its room; a failed one,
        // nothing.
        assert_eq!(buffer.read_with(2, |_| Ok::<_, ()>(99)), Ok(2));
        assert_eq!(
            buffer.read_with(16, |_| Err::<usize, _>("gone")),
            Err("gone")
        );
        assert_eq!(buffer.written, 10);
        // What dropping it does.
        buffer.wipe();
        assert_eq!(buffer.bytes, [0; 16]);
    }
}
