//! Linux: the freedesktop Secret Service over D-Bus (GNOME Keyring, KWallet, KeePassXC).

use super::{Backend, StoreKind};

/// The store chosen at a first start when it answers.
pub const KIND: StoreKind = StoreKind::SecretService;

/// Connects to the Secret Service. Items hold any size a token reaches: nothing is split.
pub fn build(kind: StoreKind) -> Result<Backend, String> {
    match kind {
        StoreKind::SecretService => {
            if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
                return Err("no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)".into());
            }
            let store = zbus_secret_service_keyring_store::Store::new()
                .map_err(|e| format!("the Secret Service does not answer ({e})"))?;
            Ok(Backend {
                store,
                // What the keyring's own tools (seahorse, secret-tool) show.
                modifiers: |label| vec![("label", label.to_string())],
                split: None,
            })
        }
        other => Err(format!("the {other} store does not exist on Linux")),
    }
}

/// The way out when the store does not answer.
pub fn hint(kind: StoreKind) -> String {
    match kind {
        StoreKind::SecretService => "Start your keyring (e.g. gnome-keyring-daemon) in this \
            session, or set HELPERD_STORE=file to use the encrypted file store instead \
            (secrets already in the keyring stay there)"
            .into(),
        _ => "set HELPERD_STORE=secret-service or HELPERD_STORE=file".into(),
    }
}
