//! Windows: Credential Manager, through `windows-native-keyring-store`.
//!
//! An item is a generic credential whose target name is `<key>.<service>` (the crate's
//! default layout: user, `.`, service) and whose user name is the key.
//!
//! Persistence: the crate writes `CRED_PERSIST_ENTERPRISE` unless the entry is built with
//! the `persistence` modifier (`Session`, `Local` or `Enterprise`; windows-native-keyring-
//! store 1.1 `src/store.rs` `build`, mapped to the Win32 constants in `src/utils.rs`
//! `CredPersist`). Enterprise credentials roam with a domain user's roaming profile; helperd
//! asks for `Local` (`CRED_PERSIST_LOCAL_MACHINE`): the tokens stay on this machine.
//!
//! Size: a credential's blob holds at most 2,560 bytes, a password stored as UTF-16: 1,280
//! ASCII characters. GitHub app tokens (~520 characters) fit; Bitbucket refresh tokens
//! (2,500+) and the plain-credential table do not, so values are split over several items
//! of at most [`CREDENTIAL_MANAGER`] ([`super::chunked`]).

use super::chunked::CREDENTIAL_MANAGER;
use super::{Backend, StoreKind};

/// The store chosen at a first start when it answers.
pub const KIND: StoreKind = StoreKind::Wincred;

/// Opens Credential Manager with the crate's default target layout.
pub fn build(kind: StoreKind) -> Result<Backend, String> {
    match kind {
        StoreKind::Wincred => {
            let store = windows_native_keyring_store::Store::new()
                .map_err(|e| format!("Credential Manager does not answer ({e})"))?;
            Ok(Backend {
                store,
                // No label: the crate takes only `target` and `persistence`.
                modifiers: |_label| vec![("persistence", "Local".to_string())],
                split: Some(CREDENTIAL_MANAGER),
            })
        }
        other => Err(format!("the {other} store does not exist on Windows")),
    }
}

/// The way out when the store does not answer.
pub fn hint(kind: StoreKind) -> String {
    match kind {
        StoreKind::Wincred => "Credential Manager needs an interactive logon session with a \
            loaded user profile (not a service account without one); or set \
            HELPERD_STORE=file to use the encrypted file store instead (secrets already in \
            Credential Manager stay there)"
            .into(),
        _ => "set HELPERD_STORE=wincred or HELPERD_STORE=file".into(),
    }
}

/// Against the real Credential Manager (under Wine in CI), in a namespace of the test's own.
#[cfg(test)]
mod tests {
    use keyring_core::api::CredentialStoreApi;

    use super::super::KeyringStore;
    use super::*;
    use crate::secret::Secret;
    use crate::store::SecretStore;

    #[test]
    fn a_3000_char_refresh_token_round_trips_through_credential_manager() {
        let service = format!("helperd:unit-test-{}", std::process::id());
        let store = KeyringStore::open(KIND, &service).expect("Credential Manager answers");
        let raw = windows_native_keyring_store::Store::new().expect("the crate's store");
        let item = |user: &str| raw.build(&service, user, None).expect("an entry");
        let key = "token/bb/refresh";
        let refresh: String = (0..3000u32)
            .map(|i| char::from(b'A' + (i * 7 % 26) as u8))
            .collect();

        // One item cannot hold it: what the split is for.
        let err = item("direct")
            .set_password(&refresh)
            .expect_err("3,000 chars are 6,000 bytes of UTF-16");
        assert!(err.to_string().contains("2560"), "{err}");

        store
            .set(key, &Secret::new(refresh.clone()))
            .expect("written split");
        let back = store.get(key).expect("read").expect("there");
        assert_eq!(back.expose(), refresh);
        for user in [key, "token/bb/refresh#a1", "token/bb/refresh#a2"] {
            let attributes = item(user).get_attributes().expect("the item exists");
            assert_eq!(attributes["persistence"], "Local", "{user} must not roam");
        }
        assert!(item("token/bb/refresh#a3").get_password().is_err());

        store.set(key, &Secret::new("short")).expect("shrunk");
        assert_eq!(
            store.get(key).expect("read").expect("there").expose(),
            "short"
        );
        assert!(item("token/bb/refresh#a1").get_password().is_err());

        store.delete(key).expect("deleted");
        assert!(store.get(key).expect("read").is_none());
    }
}
