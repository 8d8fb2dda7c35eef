//! Systems without a keyring helperd supports (BSDs...): every keyring answers "not
//! supported", and a first start chooses the encrypted file store.

use super::{Backend, StoreKind};

/// The kind a first start tries (and is told is not supported here).
pub const KIND: StoreKind = StoreKind::SecretService;

/// Refuses: there is no keyring to build.
pub fn build(kind: StoreKind) -> Result<Backend, String> {
    Err(format!("the {kind} store is not supported on this system"))
}

/// The way out.
pub fn hint(_kind: StoreKind) -> String {
    "set HELPERD_STORE=file to use the encrypted file store".into()
}
