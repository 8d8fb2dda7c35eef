//! An in-memory `keyring-core` store for the tests, with Credential Manager's habits: a
//! per-item limit counted in UTF-16 bytes (2,560), refused with keyring-core's `TooLong`,
//! and only the `target` and `persistence` modifiers taken. It can be told to fail every
//! write after a number of them (a crash half-way), and it logs what was written where.
//! keyring-core's own `mock` store has no size limit and takes no modifiers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use keyring_core::api::{CredentialApi, CredentialStoreApi};
use keyring_core::attributes::parse_attributes;
use keyring_core::{Credential, Entry, Error, Result};

use super::chunked::Limit;
use super::Backend;

/// Credential Manager's `CRED_MAX_CREDENTIAL_BLOB_SIZE`.
pub const WINDOWS_BLOB_BYTES: usize = 2560;

/// What the fake holds, shared by the store, its entries and the test.
#[derive(Debug, Default)]
pub struct State {
    /// (service, user) -> (password, persistence modifier it was written with)
    pub items: BTreeMap<(String, String), (String, Option<String>)>,
    /// Writes and removes that still succeed; `None`: all of them.
    pub writes_left: Option<usize>,
    /// `write <user>` / `remove <user>`, in order.
    pub log: Vec<String>,
}

impl State {
    /// Counts one write or remove, or fails it when none is left.
    fn change(&mut self) -> Result<()> {
        match &mut self.writes_left {
            Some(0) => Err(Error::PlatformFailure("the fake keyring is gone".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The fake keyring.
#[derive(Debug, Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    max_utf16_bytes: usize,
}

impl Fake {
    /// An empty keyring refusing items larger than Credential Manager's.
    pub fn windows() -> Fake {
        Fake {
            state: Arc::default(),
            max_utf16_bytes: WINDOWS_BLOB_BYTES,
        }
    }

    /// The store helperd would build over this keyring, splitting at `split`.
    pub fn backend(&self, split: Option<Limit>) -> Backend {
        Backend {
            store: Arc::new(self.clone()),
            modifiers: |_label| vec![("persistence", "Local".to_string())],
            split,
        }
    }

    /// The keyring's contents and log.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("a test panicked holding the fake keyring")
    }

    /// The users (keys) of every item, in order.
    pub fn names(&self) -> Vec<String> {
        self.state()
            .items
            .keys()
            .map(|(_, user)| user.clone())
            .collect()
    }
}

impl CredentialStoreApi for Fake {
    fn vendor(&self) -> String {
        "helperd test fake".into()
    }

    fn id(&self) -> String {
        "fake".into()
    }

    fn build(
        &self,
        service: &str,
        user: &str,
        modifiers: Option<&HashMap<&str, &str>>,
    ) -> Result<Entry> {
        let mods = parse_attributes(&["target", "persistence"], modifiers)?;
        Ok(Entry::new_with_credential(Arc::new(Cred {
            fake: self.clone(),
            service: service.into(),
            user: user.into(),
            persistence: mods.get("persistence").cloned(),
        })))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[derive(Debug)]
struct Cred {
    fake: Fake,
    service: String,
    user: String,
    persistence: Option<String>,
}

impl Cred {
    fn id(&self) -> (String, String) {
        (self.service.clone(), self.user.clone())
    }
}

impl CredentialApi for Cred {
    fn set_password(&self, password: &str) -> Result<()> {
        // As windows-native-keyring-store does: the password as UTF-16, checked in bytes.
        if 2 * password.encode_utf16().count() > self.fake.max_utf16_bytes {
            return Err(Error::TooLong(
                "password encoded as UTF-16".into(),
                self.fake.max_utf16_bytes as u32,
            ));
        }
        let mut state = self.fake.state();
        state.change()?;
        state.log.push(format!("write {}", self.user));
        let value = (password.to_string(), self.persistence.clone());
        state.items.insert(self.id(), value);
        Ok(())
    }

    fn set_secret(&self, _secret: &[u8]) -> Result<()> {
        Err(Error::NotSupportedByStore(
            "helperd writes passwords".into(),
        ))
    }

    fn get_password(&self) -> Result<String> {
        let state = self.fake.state();
        state
            .items
            .get(&self.id())
            .map(|(value, _)| value.clone())
            .ok_or(Error::NoEntry)
    }

    fn get_secret(&self) -> Result<Vec<u8>> {
        self.get_password().map(String::into_bytes)
    }

    fn delete_credential(&self) -> Result<()> {
        let mut state = self.fake.state();
        if !state.items.contains_key(&self.id()) {
            return Err(Error::NoEntry);
        }
        state.change()?;
        match state.items.remove(&self.id()) {
            Some(_) => {
                state.log.push(format!("remove {}", self.user));
                Ok(())
            }
            None => Err(Error::NoEntry),
        }
    }

    fn get_credential(&self) -> Result<Option<Arc<Credential>>> {
        self.get_password().map(|_| None)
    }

    fn get_specifiers(&self) -> Option<(String, String)> {
        Some(self.id())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
