//! `tokens.json` in the state folder: every token's metadata (never a secret), written by
//! the daemon only, atomically.

use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::token::TokenBook;

/// `tokens.json` in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("tokens.json")
}

/// Reads the book; a missing file is an empty book.
pub fn load(state_dir: &Path) -> Result<TokenBook, String> {
    let path = path(state_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} cannot be read: {e}; fix or move it away",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenBook::default()),
        Err(e) => Err(format!("failed to read {}: {e}", path.display())),
    }
}

/// Writes the book atomically (mode 0600), creating `state_dir` if needed.
pub fn save(state_dir: &Path, book: &TokenBook) -> Result<(), String> {
    let path = path(state_dir);
    let json = serde_json::to_vec_pretty(book).expect("token metadata serializes");
    fsutil::create_private_dir(state_dir)
        .and_then(|()| fsutil::write_atomic(&path, &json))
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
}
