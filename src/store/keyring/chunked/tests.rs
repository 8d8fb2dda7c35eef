//! The split store over a fake Credential Manager (`../fake.rs`): same 2,560-byte limit,
//! same UTF-16 count, and writes that can be made to fail half-way.

use proptest::prelude::*;

use super::super::fake::Fake;
use super::super::KeyringStore;
use super::*;
use crate::gitproto::GitCredential;
use crate::plain::PlainTable;
use crate::store::{SecretStore, StoreError, StoreKind};

const SERVICE: &str = "helperd:/tmp/test";

fn store(fake: &Fake) -> KeyringStore {
    KeyringStore::with_backend(
        StoreKind::Wincred,
        SERVICE,
        fake.backend(Some(CREDENTIAL_MANAGER)),
    )
    .expect("the fake keyring answers")
}

/// A token-like secret of `len` chars that no message would contain by chance.
fn token(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(x >> 58) as usize] as char
        })
        .collect()
}

/// No 12 chars of `secret` in a row appear in `message`.
fn assert_no_secret(message: &str, secret: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(12) {
        let piece: String = window.iter().collect();
        assert!(
            !message.contains(&piece),
            "the message holds a piece of the secret: {message}"
        );
    }
}

fn get(s: &KeyringStore, key: &str) -> Option<String> {
    s.get(key)
        .expect("the value reads")
        .map(|v| v.expose().to_string())
}

fn set(s: &KeyringStore, key: &str, value: &str) {
    s.set(key, &Secret::new(value))
        .expect("the value is written");
}

fn corrupt_detail(result: Result<Option<Secret>, StoreError>, secret: &str) -> String {
    match result {
        Err(e @ StoreError::Corrupt { .. }) => {
            let message = e.to_string();
            assert_no_secret(&message, secret);
            message
        }
        Err(other) => panic!("expected a corrupt-store error, got {other}"),
        Ok(Some(_)) => panic!("a value was served from an incomplete set of parts"),
        Ok(None) => panic!("the value vanished instead of being refused"),
    }
}

#[test]
fn a_refresh_token_of_3000_chars_round_trips() {
    let fake = Fake::windows();
    let refresh = token(3000, 1);

    // What the store refuses in one item (6,000 bytes of UTF-16), and says so without it.
    let unsplit = KeyringStore::with_backend(StoreKind::Wincred, SERVICE, fake.backend(None))
        .expect("the fake keyring answers");
    let err = unsplit
        .set("token/gh/refresh", &Secret::new(refresh.clone()))
        .expect_err("one item cannot hold 3,000 chars");
    assert!(err.to_string().contains("2560"), "{err}");
    assert_no_secret(&err.to_string(), &refresh);
    assert!(fake.names().is_empty());

    let s = store(&fake);
    set(&s, "token/gh/refresh", &refresh);
    assert_eq!(
        fake.names(),
        [
            "token/gh/refresh",
            "token/gh/refresh#a1",
            "token/gh/refresh#a2"
        ],
        "6,000 bytes in items of 2,048"
    );
    assert_eq!(
        get(&s, "token/gh/refresh").as_deref(),
        Some(refresh.as_str())
    );
    // Every item went in with local persistence (does not roam).
    for (_, persistence) in fake.state().items.values() {
        assert_eq!(persistence.as_deref(), Some("Local"));
    }
    // A GitHub app token (~520 chars) stays one plain item.
    let app = token(520, 2);
    set(&s, "token/app", &app);
    let state = fake.state();
    let (item, _) = &state.items[&(SERVICE.to_string(), "token/app".to_string())];
    assert_eq!(item, &app);
}

#[test]
fn a_table_of_200_plain_credentials_round_trips() {
    let fake = Fake::windows();
    let s = store(&fake);
    let now = 1_800_000_000;
    let mut table = PlainTable::default();
    for i in 0..200 {
        let input = format!(
            "protocol=https\nhost=git{i}.example.com\nusername=user{i}\npassword={}\n\
             password_expiry_utc={}\noauth_refresh_token={}\n",
            token(40 + i % 60, i as u64),
            now + 86_400 * (i as u64 + 1),
            token(if i % 10 == 0 { 400 } else { 0 }, 1000 + i as u64),
        );
        let request = GitCredential::parse(&input).expect("a valid git credential");
        table.store(&request, (i % 3 == 0).then_some(3600), now);
    }
    assert_eq!(table.len_alive(now), 200);
    let blob = table.to_blob();
    assert!(
        blob.expose().len() > 20 * 1024,
        "a realistic table: {} bytes",
        blob.expose().len()
    );

    s.set(PLAIN_KEY, &blob).expect("the table is written");
    let parts = fake.names().len();
    assert!(parts > 10, "{parts} items");
    let back = s.get(PLAIN_KEY).expect("it reads").expect("it is there");
    assert_eq!(back.expose(), blob.expose());
    assert_eq!(PlainTable::from_blob(&back).expect("it decodes"), table);

    // One host more: still one value, the old set of parts gone.
    let request =
        GitCredential::parse("protocol=https\nhost=new.example\nusername=u\npassword=p\n")
            .expect("a valid git credential");
    table.store(&request, None, now);
    s.set(PLAIN_KEY, &table.to_blob()).expect("written again");
    assert!(
        fake.names().iter().all(|n| !n.contains("#a")),
        "{:?}",
        fake.names()
    );
    let back = s.get(PLAIN_KEY).expect("it reads").expect("it is there");
    assert_eq!(PlainTable::from_blob(&back).expect("it decodes"), table);
}

const PLAIN_KEY: &str = "plain-credentials";

#[test]
fn shrinking_a_value_removes_its_stale_parts() {
    let fake = Fake::windows();
    let s = store(&fake);
    let key = "token/bb/refresh";
    set(&s, key, &token(10_000, 3));
    assert_eq!(fake.names().len(), 10, "20,000 bytes: {:?}", fake.names());

    let smaller = token(2500, 4);
    set(&s, key, &smaller);
    assert_eq!(
        fake.names(),
        [key, "token/bb/refresh#b1", "token/bb/refresh#b2"]
    );
    assert_eq!(get(&s, key).as_deref(), Some(smaller.as_str()));

    let short = token(100, 5);
    set(&s, key, &short);
    assert_eq!(fake.names(), [key]);
    assert_eq!(get(&s, key).as_deref(), Some(short.as_str()));

    set(&s, key, &token(5000, 6));
    s.delete(key).expect("deleted");
    assert!(fake.names().is_empty(), "{:?}", fake.names());
    assert_eq!(get(&s, key), None);
    s.delete(key).expect("deleting nothing is fine");
}

#[test]
fn a_missing_part_is_an_error_never_a_shorter_secret() {
    let fake = Fake::windows();
    let s = store(&fake);
    let key = "token/x";
    let secret = token(6000, 7);
    set(&s, key, &secret);
    fake.state()
        .items
        .remove(&(SERVICE.to_string(), "token/x#a2".to_string()))
        .expect("the part was there");
    let message = corrupt_detail(s.get(key), &secret);
    assert!(
        message.contains("part 3 of 6") && message.contains("missing"),
        "{message}"
    );

    // Writing it anew repairs it.
    set(&s, key, &secret);
    assert_eq!(get(&s, key).as_deref(), Some(secret.as_str()));
}

#[test]
fn a_part_that_does_not_belong_is_refused() {
    let fake = Fake::windows();
    let s = store(&fake);
    let key = "token/y";
    let secret = token(3000, 8);
    set(&s, key, &secret);
    let part = (SERVICE.to_string(), "token/y#a1".to_string());

    // Same length, other content (a part left by another write).
    let original = fake.state().items[&part].0.clone();
    let other = token(original.chars().count(), 9);
    fake.state().items.get_mut(&part).expect("there").0 = other;
    let message = corrupt_detail(s.get(key), &secret);
    assert!(message.contains("checksum"), "{message}");

    // Shorter: the length in the header tells.
    fake.state().items.get_mut(&part).expect("there").0 = original[..100].to_string();
    let message = corrupt_detail(s.get(key), &secret);
    assert!(message.contains("bytes its header says"), "{message}");

    // Longer.
    fake.state().items.get_mut(&part).expect("there").0 = original.clone() + "x";
    let message = corrupt_detail(s.get(key), &secret);
    assert!(
        message.contains("longer than its split header says"),
        "{message}"
    );

    // A head whose header is damaged.
    let head = (SERVICE.to_string(), key.to_string());
    let damaged = fake.state().items[&head].0.replacen(":a:", ":a:x", 1);
    fake.state().items.get_mut(&head).expect("there").0 = damaged;
    let message = corrupt_detail(s.get(key), &secret);
    assert!(message.contains("bad part count"), "{message}");

    // A header that claims more than any set of parts holds: refused before allocating.
    let huge = format!(
        "{MAGIC}{VERSION}:a:0002:9999999999:{}\n",
        "0".repeat(DIGEST_HEX)
    );
    fake.state().items.get_mut(&head).expect("there").0 = huge;
    let message = corrupt_detail(s.get(key), &secret);
    assert!(message.contains("more than parts can hold"), "{message}");
}

#[test]
fn a_value_without_a_header_still_reads() {
    let fake = Fake::windows();
    let s = store(&fake);
    // As an older helperd (or another tool) left it: the value alone in its item.
    let old = token(1200, 10);
    fake.state().items.insert(
        (SERVICE.to_string(), "token/old".to_string()),
        (old.clone(), None),
    );
    assert_eq!(get(&s, "token/old").as_deref(), Some(old.as_str()));

    // A short value is written the same way: no header at all.
    set(&s, "token/short", "ghp_short");
    let state = fake.state();
    let (item, _) = &state.items[&(SERVICE.to_string(), "token/short".to_string())];
    assert_eq!(item, "ghp_short");
}

#[test]
fn a_value_that_starts_like_a_header_round_trips() {
    let fake = Fake::windows();
    let s = store(&fake);
    for value in [
        MAGIC.to_string(),
        format!(
            "{MAGIC}1:a:0002:0000000005:{}\nhello",
            "0".repeat(DIGEST_HEX)
        ),
    ] {
        set(&s, "odd", &value);
        assert_eq!(get(&s, "odd").as_deref(), Some(value.as_str()));
    }
    assert_eq!(get(&s, "probe"), None);
}

#[test]
fn a_value_of_non_ascii_text_is_cut_between_chars() {
    let fake = Fake::windows();
    let s = store(&fake);
    // 4-byte UTF-8 chars that are surrogate pairs in UTF-16, with 1- and 2-byte ones.
    let value: String = "a😀é€𝄞".repeat(700);
    set(&s, "k", &value);
    assert!(fake.names().len() > 3);
    assert_eq!(get(&s, "k").as_deref(), Some(value.as_str()));
    for (item, _) in fake.state().items.values() {
        assert!(2 * item.encode_utf16().count() <= CREDENTIAL_MANAGER.max);
    }
}

/// Every change the fake allows before it fails: the writes and removes of one `set`.
fn changes(fake: &Fake, write: impl FnOnce()) -> usize {
    let before = fake.state().log.len();
    write();
    fake.state().log.len() - before
}

#[test]
fn a_write_that_stops_half_way_leaves_the_old_or_the_new_value() {
    let key = "plain-credentials";
    let cases = [
        (token(7000, 11), token(9000, 12)), // split -> larger split
        (token(9000, 13), token(3000, 14)), // split -> smaller split
        (token(5000, 15), token(50, 16)),   // split -> one item
        (token(50, 17), token(5000, 18)),   // one item -> split
    ];
    for (old, new) in cases {
        // How many changes a complete write takes from this starting point.
        let total = {
            let fake = Fake::windows();
            let s = store(&fake);
            set(&s, key, &old);
            changes(&fake, || set(&s, key, &new))
        };
        for allowed in 0..total {
            let fake = Fake::windows();
            let s = store(&fake);
            set(&s, key, &old);
            fake.state().writes_left = Some(allowed);
            let err = s
                .set(key, &Secret::new(new.clone()))
                .expect_err("the keyring went away half-way");
            assert_no_secret(&err.to_string(), &new);
            assert_no_secret(&err.to_string(), &old);
            fake.state().writes_left = None;

            let now = get(&s, key).expect("old or new, never nothing");
            assert!(
                now == old || now == new,
                "after {allowed} of {total} changes: neither value ({} chars)",
                now.len()
            );
            // The next write cleans up whatever the broken one left.
            set(&s, key, &new);
            assert_eq!(get(&s, key).as_deref(), Some(new.as_str()));
            let expected = store_layout(&new);
            assert_eq!(fake.names().len(), expected, "{:?}", fake.names());
        }
    }
}

/// Items a value takes on its own.
fn store_layout(value: &str) -> usize {
    let fake = Fake::windows();
    set(&store(&fake), "plain-credentials", value);
    fake.names().len()
}

#[test]
fn a_delete_that_stops_half_way_leaves_nothing_readable() {
    let fake = Fake::windows();
    let s = store(&fake);
    let secret = token(9000, 19);
    set(&s, "k", &secret);
    fake.state().writes_left = Some(2);
    s.delete("k").expect_err("the keyring went away half-way");
    fake.state().writes_left = None;
    assert_eq!(get(&s, "k"), None, "the head goes first");
    s.delete("k").expect("deleting again");
    assert!(fake.names().is_empty(), "{:?}", fake.names());
}

#[test]
fn the_split_keeps_every_item_under_the_limit_at_its_edges() {
    let limit = Limit {
        max: 256,
        measure: Measure::Utf16Bytes,
    };
    let header_units = Header {
        slot: 'a',
        parts: 0,
        len: 0,
        digest: "0".repeat(DIGEST_HEX),
    }
    .encode()
    .encode_utf16()
    .count();
    let room = 128 - header_units;
    for len in [
        0,
        1,
        room - 1,
        room,
        room + 1,
        127,
        128,
        129,
        room + 128,
        room + 129,
        500,
    ] {
        let value = token(len, len as u64);
        let pieces = split(&value, limit, limit.max - 2 * header_units);
        assert_eq!(pieces.concat(), value);
        assert!(2 * pieces[0].len() <= limit.max - 2 * header_units);
        assert!(pieces.iter().all(|p| 2 * p.len() <= limit.max));
        assert!(pieces.iter().skip(1).all(|p| !p.is_empty()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_value_round_trips_and_deletes_completely(
        first in ".{0,6000}",
        second in ".{0,6000}",
    ) {
        let fake = Fake::windows();
        let s = store(&fake);
        set(&s, "k", &first);
        prop_assert_eq!(get(&s, "k"), Some(first.clone()));
        set(&s, "k", &second);
        prop_assert_eq!(get(&s, "k"), Some(second.clone()));
        prop_assert_eq!(fake.names().len(), store_layout(&second));
        s.delete("k").expect("deleted");
        prop_assert!(fake.names().is_empty());
    }
}
