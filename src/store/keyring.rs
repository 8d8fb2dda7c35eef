//! The OS keyring as the store of record, through the `keyring-core` family of crates
//! (DESIGN.md §7): the Secret Service on Linux. The platform store is built explicitly;
//! there is no silent mock. The macOS Keychain and Windows Credential Manager stores were
//! removed until CI can compile and test them (no macOS SDK or Windows build of the
//! daemon here); elsewhere the file store (or OpenBao) is the store of record.
//!
//! Each secret is one keyring item: service = the remembered namespace (`helperd`, or
//! `helperd:<HELPERD_HOME>` for sandboxes, so test runs never touch a user's items),
//! user = the key. Calls block on D-Bus: the daemon makes them on `spawn_blocking`.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::{SecretStore, StoreError, StoreKind};
use crate::secret::Secret;

/// A keyring-backed store.
pub struct KeyringStore {
    kind: StoreKind,
    service: String,
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringStore")
            .field("kind", &self.kind)
            .field("service", &self.service)
            .finish()
    }
}

impl KeyringStore {
    /// Connects to the platform keyring of `kind` and checks that it answers.
    pub fn open(kind: StoreKind, service: &str) -> Result<KeyringStore, StoreError> {
        let store = platform::build(kind).map_err(|detail| unavailable(kind, detail))?;
        let s = KeyringStore {
            kind,
            service: service.to_string(),
            store,
        };
        // A keyring can be reachable yet refuse every read (locked, no default collection):
        // find out now, with a key that is never written.
        s.get("probe")?;
        Ok(s)
    }

    fn entry(&self, key: &str) -> Result<Entry, StoreError> {
        let label = format!("helperd {key} ({})", self.service);
        let modifiers = HashMap::from([("label", label.as_str())]);
        self.store
            .build(&self.service, key, Some(&modifiers))
            .map_err(|e| self.error(e))
    }

    /// Maps a keyring error to ours, never carrying secret bytes (some variants hold them).
    fn error(&self, e: KeyringError) -> StoreError {
        let detail = match &e {
            KeyringError::BadEncoding(_) => "an item holds a value that is not UTF-8".to_string(),
            KeyringError::BadDataFormat(_, _) => "an item's data has an unexpected format".into(),
            KeyringError::Ambiguous(items) => {
                format!("{} items match one key; remove the duplicates", items.len())
            }
            KeyringError::NoStorageAccess(inner) => {
                format!("the keyring refused access ({inner}); is it locked?")
            }
            other => other.to_string(),
        };
        unavailable(self.kind, detail)
    }
}

fn unavailable(kind: StoreKind, detail: String) -> StoreError {
    StoreError::Unavailable {
        store: kind,
        detail,
        hint: platform::hint(kind),
    }
}

impl SecretStore for KeyringStore {
    fn kind(&self) -> StoreKind {
        self.kind
    }

    fn protection(&self) -> String {
        "OS keyring".into()
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        match self.entry(key)?.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    fn set(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        self.entry(key)?
            .set_password(value.expose())
            .map_err(|e| self.error(e))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub fn build(kind: StoreKind) -> Result<Arc<CredentialStore>, String> {
        match kind {
            StoreKind::SecretService => {
                if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
                    return Err("no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)".into());
                }
                let store = zbus_secret_service_keyring_store::Store::new()
                    .map_err(|e| format!("the Secret Service does not answer ({e})"))?;
                Ok(store)
            }
            other => Err(format!("the {other} store does not exist on Linux")),
        }
    }

    pub fn hint(kind: StoreKind) -> String {
        match kind {
            StoreKind::SecretService => "Start your keyring (e.g. gnome-keyring-daemon) in this \
                session, or set HELPERD_STORE=file to use the encrypted file store instead \
                (secrets already in the keyring stay there)"
                .into(),
            _ => "set HELPERD_STORE=secret-service or HELPERD_STORE=file".into(),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    //! Error fallback for systems without a supported keyring.
    use super::*;

    pub fn build(kind: StoreKind) -> Result<Arc<CredentialStore>, String> {
        Err(format!("the {kind} store is not supported on this system"))
    }

    pub fn hint(_kind: StoreKind) -> String {
        "set HELPERD_STORE=file to use the encrypted file store".into()
    }
}
