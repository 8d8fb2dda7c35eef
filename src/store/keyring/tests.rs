use super::fake::Fake;
use super::*;

#[test]
fn keychain_and_wincred_are_store_names() {
    for (name, kind) in [
        ("keychain", StoreKind::Keychain),
        ("wincred", StoreKind::Wincred),
        ("secret-service", StoreKind::SecretService),
    ] {
        assert_eq!(StoreKind::parse(name), Some(kind));
        assert_eq!(kind.name(), name);
        assert_eq!(
            kind.strength(false),
            crate::policy::StoreStrength::Keyring,
            "{name} counts as a keyring for min_store"
        );
    }
}

#[test]
fn each_os_chooses_its_own_keyring_first() {
    let expected = if cfg!(target_os = "macos") {
        StoreKind::Keychain
    } else if cfg!(windows) {
        StoreKind::Wincred
    } else {
        StoreKind::SecretService
    };
    assert_eq!(PLATFORM_KIND, expected);
    assert_eq!(crate::store::choice::platform_keyring(), expected);
}

#[test]
fn a_store_that_does_not_split_keeps_one_item_per_key() {
    let fake = Fake::windows();
    let s = KeyringStore::with_backend(StoreKind::Keychain, "helperd", fake.backend(None))
        .expect("the fake keyring answers");
    s.set("token/a", &Secret::new("ghp_x")).expect("written");
    assert_eq!(
        s.get("token/a").expect("read").expect("there").expose(),
        "ghp_x"
    );
    assert_eq!(fake.names(), ["token/a"]);
    s.delete("token/a").expect("deleted");
    s.delete("token/a").expect("deleting nothing is fine");
    assert!(s.get("token/a").expect("read").is_none());
}

#[test]
fn keyring_errors_never_carry_the_items_bytes() {
    let fake = Fake::windows();
    let s = KeyringStore::with_backend(StoreKind::Wincred, "helperd", fake.backend(None))
        .expect("the fake keyring answers");
    let secret = "ghp_s3cr3t_value_that_must_not_leak";
    for e in [
        KeyringError::BadEncoding(secret.as_bytes().to_vec()),
        KeyringError::BadDataFormat(secret.as_bytes().to_vec(), "bad".into()),
        KeyringError::TooLong("password encoded as UTF-16".into(), 2560),
    ] {
        let message = s.error(e).to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(message.contains("wincred"), "{message}");
    }
}
