//! macOS: the user's login keychain, through `apple-native-keyring-store` (its `keychain`
//! module, the "legacy" file keychains every process may use; the "protected data" store
//! needs a signed, sandboxed application). Compiled and linted here, never run: there is
//! no Mac (DESIGN.md §12).
//!
//! An item is a generic password with service = the namespace and account = the key;
//! Keychain Access shows it under the service name. Items hold any size a token reaches:
//! nothing is split.

use super::{Backend, StoreKind};

/// The store chosen at a first start when it answers.
pub const KIND: StoreKind = StoreKind::Keychain;

/// Opens the login keychain (the store's default, `User` domain).
pub fn build(kind: StoreKind) -> Result<Backend, String> {
    match kind {
        StoreKind::Keychain => {
            let store = apple_native_keyring_store::keychain::Store::new()
                .map_err(|e| format!("the login keychain does not answer ({e})"))?;
            Ok(Backend {
                store,
                // The store takes no modifier but `keychain` (which we leave at `User`).
                modifiers: |_label| Vec::new(),
                split: None,
            })
        }
        other => Err(format!("the {other} store does not exist on macOS")),
    }
}

/// The way out when the store does not answer.
pub fn hint(kind: StoreKind) -> String {
    match kind {
        StoreKind::Keychain => "Unlock your login keychain (Keychain Access, or `security \
            unlock-keychain`) and allow helperd when macOS asks, or set HELPERD_STORE=file to \
            use the encrypted file store instead (secrets already in the keychain stay there)"
            .into(),
        _ => "set HELPERD_STORE=keychain or HELPERD_STORE=file".into(),
    }
}
