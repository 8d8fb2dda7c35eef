//! Choosing the store of record once and remembering it (DESIGN.md §7).
//!
//! At first start: the OS keyring when it answers, else the encrypted file store. The choice
//! is written to `<state>/store.json` and used from then on; if that store stops answering,
//! requests fail with an error naming it and the way out — nothing is ever written to
//! another store behind the user's back. `HELPERD_STORE` forces a kind explicitly; OpenBao
//! is only ever chosen that way (it needs `[openbao]` in config.toml), then remembered too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::FileStore;
use super::keyring::KeyringStore;
use super::openbao::OpenBaoStore;
use super::{SecretStore, StoreError, StoreKind};
use crate::fsutil;

/// The remembered choice, as written to `store.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreChoice {
    /// A [`StoreKind`] name.
    pub kind: String,
    /// The keyring service name the items are filed under.
    pub keyring_service: String,
}

/// Where the choice is remembered.
pub fn choice_file(state_dir: &Path) -> PathBuf {
    state_dir.join("store.json")
}

/// The keyring namespace: `helperd`, or one per `HELPERD_HOME` so sandboxes and tests
/// never see (or clobber) a user's real items.
pub fn keyring_service(helperd_home: Option<&Path>) -> String {
    match helperd_home {
        Some(home) => format!("helperd:{}", home.display()),
        None => "helperd".to_string(),
    }
}

/// The OS keyring kind of this platform: the Secret Service on Linux, the Keychain on
/// macOS, Credential Manager on Windows (elsewhere it answers "not supported on this
/// system", and the file store is chosen).
pub fn platform_keyring() -> StoreKind {
    super::keyring::PLATFORM_KIND
}

/// Opens the store of record: the remembered one, or (first start) the best that answers.
///
/// `forced` is `HELPERD_STORE`; `service` the keyring namespace for a first choice;
/// `config_file` the config.toml whose `[openbao]` the OpenBao store needs (read only when
/// that store is the one opened, so that a fixed file is picked up at the next open).
pub fn open_store(
    state_dir: &Path,
    data_dir: &Path,
    forced: Option<StoreKind>,
    service: &str,
    config_file: &Path,
) -> Result<(Arc<dyn SecretStore>, StoreChoice), StoreError> {
    let remembered = read_choice(state_dir)?;
    let (kind, service) = match (&remembered, forced) {
        (_, Some(kind)) => {
            let service = remembered
                .as_ref()
                .map(|c| c.keyring_service.clone())
                .unwrap_or_else(|| service.to_string());
            (kind, service)
        }
        (Some(choice), None) => {
            let kind = StoreKind::parse(&choice.kind).ok_or_else(|| StoreError::Corrupt {
                store: StoreKind::File,
                path: choice_file(state_dir).display().to_string(),
                detail: format!("unknown store kind {:?}", choice.kind),
            })?;
            (kind, choice.keyring_service.clone())
        }
        (None, None) => {
            let keyring = platform_keyring();
            match KeyringStore::open(keyring, service) {
                Ok(store) => {
                    let choice = remember(state_dir, keyring, service)?;
                    tracing::info!(store = %keyring, "chose the OS keyring as the store of record");
                    return Ok((Arc::new(store), choice));
                }
                Err(e) => {
                    tracing::info!(error = %e, "no OS keyring answers; choosing the encrypted file store");
                    (StoreKind::File, service.to_string())
                }
            }
        }
    };

    let store: Arc<dyn SecretStore> = match kind {
        StoreKind::File => Arc::new(FileStore::open(data_dir)?),
        StoreKind::OpenBao => Arc::new(open_openbao(config_file)?),
        keyring => Arc::new(KeyringStore::open(keyring, &service)?),
    };
    let choice = match remembered {
        Some(c) if c.kind == kind.name() => c,
        Some(c) => {
            // Explicitly forced to another kind: honour it, and keep the old choice on file.
            tracing::warn!(remembered = %c.kind, forced = %kind, "HELPERD_STORE overrides the remembered store");
            StoreChoice {
                kind: kind.name().into(),
                keyring_service: service,
            }
        }
        None => remember(state_dir, kind, &service)?,
    };
    Ok((store, choice))
}

/// The OpenBao store with the `[openbao]` settings of `config_file`, for this login name.
fn open_openbao(config_file: &Path) -> Result<OpenBaoStore, StoreError> {
    let not_set_up = |detail: String| StoreError::NotConfigured {
        store: StoreKind::OpenBao,
        detail,
    };
    let config = crate::config::file::load(config_file)
        .map_err(|e| not_set_up(format!("config.toml cannot be read ({e})")))?;
    let settings = config.openbao.ok_or_else(|| {
        not_set_up(format!(
            "HELPERD_STORE=openbao needs an [openbao] table in {}: add one with addresses \
             (or BAO_ADDR) and auth, see helperd.toml(5); no other store is used meanwhile",
            config_file.display()
        ))
    })?;
    OpenBaoStore::open(&settings, &super::openbao::login_name()?)
}

/// The kind remembered in `store.json`, when one is (for messages about a store that has
/// not opened yet).
pub fn remembered_kind(state_dir: &Path) -> Option<StoreKind> {
    StoreKind::parse(&read_choice(state_dir).ok()??.kind)
}

fn read_choice(state_dir: &Path) -> Result<Option<StoreChoice>, StoreError> {
    let path = choice_file(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            store: StoreKind::File,
            path: path.display().to_string(),
            detail: format!("not a store choice ({e}); fix or delete it to choose again"),
        })
}

fn remember(state_dir: &Path, kind: StoreKind, service: &str) -> Result<StoreChoice, StoreError> {
    let choice = StoreChoice {
        kind: kind.name().into(),
        keyring_service: service.into(),
    };
    let path = choice_file(state_dir);
    let json = serde_json::to_vec_pretty(&choice).expect("plain strings serialize");
    fsutil::create_private_dir(state_dir)
        .and_then(|()| fsutil::write_atomic(&path, &json))
        .map_err(|source| StoreError::Io {
            action: "write",
            path: path.display().to_string(),
            source,
        })?;
    Ok(choice)
}
