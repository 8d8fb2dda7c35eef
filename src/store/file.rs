//! The encrypted file store (DESIGN.md §7): the store of record when no OS keyring answers.
//!
//! All secrets live in one file, `secrets.enc`, as a JSON object `{"key": "secret", ...}`
//! encrypted with XChaCha20-Poly1305. The 32-byte key comes either from a random key file
//! (`secrets.key`: `status` reports it as the weaker choice) or from a passphrase through
//! argon2id, in which case the store is locked until `helperctl unlock`.
//!
//! The key file holds what the OS makes of the key (`os::protect_key`): on Unix the 32
//! bytes themselves, protected by the file's mode (0600: anyone who can read the user's
//! files can decrypt); on Windows [`PROTECTED_KEY_MAGIC`] and then a DPAPI blob that only
//! the user's Windows account opens. A key file of 32 plain bytes on Windows (written by
//! an older build) is still read, and rewritten protected at once.
//!
//! File format, all integers little-endian:
//!
//! ```text
//! "HELPERD-STORE"  13 bytes  magic
//! 1                 1 byte   format version
//! protection        1 byte   0 = key file, 1 = passphrase
//! (passphrase only) m_cost KiB u32, t_cost u32, p_cost u32, 16-byte salt
//! nonce            24 bytes  fresh random on every write
//! ciphertext       rest      JSON object, with the 16-byte Poly1305 tag
//! ```
//!
//! Everything before the nonce is the AEAD's associated data, so a header cannot be
//! swapped or edited (weaker argon2 parameters, another salt, another protection) without
//! the decryption failing.
//!
//! The daemon is the only writer, so after `open` (key file) or `unlock` (passphrase) the
//! map in memory is the truth and the file is only ever written, atomically, never re-read.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use super::{SecretStore, StoreError, StoreKind};
use crate::secret::{Secret, SecretBytes};

/// Name of the encrypted map inside the data directory.
pub const SECRETS_FILE: &str = "secrets.enc";
/// Name of the key file inside the data directory (key-file protection only).
pub const KEY_FILE: &str = "secrets.key";
/// Name of the file a write goes to before it is renamed over [`SECRETS_FILE`].
const TMP_FILE: &str = "secrets.enc.tmp";

/// A key file of plain key bytes where the OS could protect it (Windows: one written by an
/// older build, which could not be rewritten protected).
const PROTECTION_PLAIN_KEY_FILE: &str =
    "key in a plain key file (weaker: anyone who can read your files can decrypt it)";
const PROTECTION_PASSPHRASE: &str = "encrypted file, key derived from your passphrase (argon2id)";

const MAGIC: &[u8; 13] = b"HELPERD-STORE";
/// The start of a key file whose key the OS protects; what follows is the OS's blob.
pub const PROTECTED_KEY_MAGIC: &[u8; 18] = b"HELPERD-KEY-DPAPI\n";
/// Far more than a DPAPI blob of a 32-byte key (a few hundred bytes).
const MAX_KEY_FILE_LEN: usize = 4096;
const VERSION: u8 = 1;
const MODE_KEY_FILE: u8 = 0;
const MODE_PASSPHRASE: u8 = 1;
const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_FILE_HEADER_LEN: usize = MAGIC.len() + 2;
const PASSPHRASE_HEADER_LEN: usize = KEY_FILE_HEADER_LEN + 12 + SALT_LEN;

// The header's argon2 parameters are read before anything authenticates them, so a damaged
// header must not make the daemon allocate gigabytes or spin for hours. These bounds are far
// above anything this crate writes.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 64;

/// Argon2id cost parameters for deriving the key from a passphrase.
///
/// They only apply when a passphrase is set: they are recorded in the file's header, and
/// reading always uses the header's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's recommended minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
    pub const RECOMMENDED: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Cheap parameters that keep tests fast. Never use them for a real store.
    pub fn for_tests() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// The argon2 parameters, or `None` when argon2 or this store's bounds reject them.
    fn argon2_params(self) -> Option<Params> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return None;
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEY_LEN)).ok()
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::RECOMMENDED
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m={} KiB, t={}, p={}",
            self.m_cost_kib, self.t_cost, self.p_cost
        )
    }
}

/// How the file's key is protected; it is what the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    KeyFile,
    Passphrase {
        params: KdfParams,
        salt: [u8; SALT_LEN],
    },
}

impl Protection {
    fn header(&self) -> Vec<u8> {
        let mut header = Vec::with_capacity(PASSPHRASE_HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        match self {
            Protection::KeyFile => header.push(MODE_KEY_FILE),
            Protection::Passphrase { params, salt } => {
                header.push(MODE_PASSPHRASE);
                header.extend_from_slice(&params.m_cost_kib.to_le_bytes());
                header.extend_from_slice(&params.t_cost.to_le_bytes());
                header.extend_from_slice(&params.p_cost.to_le_bytes());
                header.extend_from_slice(salt);
            }
        }
        header
    }

    /// Parses the header at the start of `file`; returns the protection and the header's
    /// length, or what is wrong in words for a `Corrupt` error.
    fn parse(file: &[u8]) -> Result<(Protection, usize), String> {
        if file.len() < KEY_FILE_HEADER_LEN || &file[..MAGIC.len()] != MAGIC {
            return Err("it is not a helperd secrets file (bad magic)".into());
        }
        let version = file[MAGIC.len()];
        if version != VERSION {
            return Err(format!(
                "unknown format version {version} (this helperd reads version {VERSION})"
            ));
        }
        let (protection, header_len) = match file[MAGIC.len() + 1] {
            MODE_KEY_FILE => (Protection::KeyFile, KEY_FILE_HEADER_LEN),
            MODE_PASSPHRASE => {
                if file.len() < PASSPHRASE_HEADER_LEN {
                    return Err("the file is truncated".into());
                }
                let u32_at = |at: usize| {
                    let bytes: [u8; 4] = file[at..at + 4]
                        .try_into()
                        .expect("a 4-byte range converts to [u8; 4]");
                    u32::from_le_bytes(bytes)
                };
                let params = KdfParams {
                    m_cost_kib: u32_at(KEY_FILE_HEADER_LEN),
                    t_cost: u32_at(KEY_FILE_HEADER_LEN + 4),
                    p_cost: u32_at(KEY_FILE_HEADER_LEN + 8),
                };
                if params.argon2_params().is_none() {
                    return Err(format!("invalid argon2id parameters ({params})"));
                }
                let salt = file[KEY_FILE_HEADER_LEN + 12..PASSPHRASE_HEADER_LEN]
                    .try_into()
                    .expect("the range is SALT_LEN bytes long");
                (
                    Protection::Passphrase { params, salt },
                    PASSPHRASE_HEADER_LEN,
                )
            }
            other => return Err(format!("unknown protection mode {other}")),
        };
        if file.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err("the file is truncated".into());
        }
        Ok((protection, header_len))
    }
}

enum State {
    /// The key is known and the map decrypted (key file, or passphrase after `unlock`).
    Open {
        protection: Protection,
        key: SecretBytes,
        map: BTreeMap<String, Secret>,
    },
    /// Passphrase-protected and not unlocked yet. The file as read at open is kept: the
    /// daemon is the only writer, so it cannot have changed since.
    Locked {
        params: KdfParams,
        salt: [u8; SALT_LEN],
        header_len: usize,
        file: Vec<u8>,
    },
}

/// Secrets in an encrypted file in the data directory. See the module documentation.
pub struct FileStore {
    files: Files,
    /// What `status` says of the key file while the store is key-file protected.
    key_file_protection: &'static str,
    /// For new passphrases only; reading uses the parameters in the header.
    kdf: KdfParams,
    state: Mutex<State>,
}

/// The store's files, and everything that reads or writes them.
struct Files {
    dir: PathBuf,
    secrets_path: PathBuf,
    key_path: PathBuf,
    tmp_path: PathBuf,
}

impl FileStore {
    /// Opens the store in `data_dir`, creating the directory (0700) if it is missing.
    ///
    /// An existing `secrets.enc` is read: with a key file it is decrypted now, with a
    /// passphrase the store stays locked until [`SecretStore::unlock`]. With neither a
    /// secrets file nor a key file yet, a new random key file (0600) is created.
    pub fn open(data_dir: &Path) -> Result<FileStore, StoreError> {
        FileStore::open_with_kdf_params(data_dir, KdfParams::RECOMMENDED)
    }

    /// [`FileStore::open`], with the argon2id parameters used when a passphrase is set
    /// (tests use [`KdfParams::for_tests`]).
    pub fn open_with_kdf_params(data_dir: &Path, kdf: KdfParams) -> Result<FileStore, StoreError> {
        if kdf.argon2_params().is_none() {
            return Err(StoreError::NotSupported {
                store: StoreKind::File,
                what: format!("argon2id parameters {kdf}"),
            });
        }
        crate::os::private_dir_builder()
            .recursive(true)
            .create(data_dir)
            .map_err(|e| io_error("create", data_dir, e))?;
        // The same rule as the state and socket folders: the key file and the secrets live
        // here, so a folder others can reach, or that is not ours, is refused.
        crate::fsutil::check_private_dir(data_dir).map_err(|e| StoreError::Unavailable {
            store: StoreKind::File,
            detail: e.to_string(),
            hint: "nothing was read from it or written to it".into(),
        })?;
        let files = Files {
            dir: data_dir.to_path_buf(),
            secrets_path: data_dir.join(SECRETS_FILE),
            key_path: data_dir.join(KEY_FILE),
            tmp_path: data_dir.join(TMP_FILE),
        };
        let (state, key_file_protection) = files.load()?;
        Ok(FileStore {
            files,
            key_file_protection,
            kdf,
            state: Mutex::new(state),
        })
    }

    /// The encrypted secrets file (it may not exist yet).
    pub fn secrets_path(&self) -> &Path {
        &self.files.secrets_path
    }

    /// Changes `key` in the open map (`change` returns its previous value) and writes the
    /// file. A failed write puts the previous value back: the file still holds it, and
    /// memory must agree with it.
    fn change_key(
        &self,
        key: &str,
        change: impl FnOnce(&mut BTreeMap<String, Secret>) -> Option<Secret>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock_state();
        let State::Open {
            protection,
            key: file_key,
            map,
        } = &mut *state
        else {
            return Err(StoreError::Locked {
                store: StoreKind::File,
            });
        };
        let previous = change(map);
        if let Err(e) = self.files.write(protection, file_key, map) {
            match previous {
                Some(previous) => map.insert(key.to_string(), previous),
                None => map.remove(key),
            };
            return Err(e);
        }
        Ok(())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every method changes the state only after the file write succeeded (or undoes the
        // change when it failed), so a panic elsewhere never leaves a half-updated state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a key file held.
enum KeyFileForm {
    /// The key bytes themselves.
    Plain,
    /// The key as the OS protected it.
    Protected,
}

impl Files {
    /// The state, and what protects the key file (for `status`).
    fn load(&self) -> Result<(State, &'static str), StoreError> {
        let file = match fs::read(&self.secrets_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (key, key_file_protection) = match self.read_key_file()? {
                    Some((key, form)) => {
                        let protection = self.protect_plain_key_file(&key, form);
                        (key, protection)
                    }
                    None => (self.create_key_file()?, crate::os::KEY_FILE_PROTECTION),
                };
                let state = State::Open {
                    protection: Protection::KeyFile,
                    key,
                    map: BTreeMap::new(),
                };
                return Ok((state, key_file_protection));
            }
            Err(e) => return Err(io_error("read", &self.secrets_path, e)),
        };
        let (protection, header_len) =
            Protection::parse(&file).map_err(|detail| self.corrupt(&self.secrets_path, detail))?;
        match protection {
            Protection::KeyFile => {
                let (key, form) = self
                    .read_key_file()?
                    .ok_or_else(|| StoreError::Unavailable {
                        store: StoreKind::File,
                        detail: format!(
                            "{} is encrypted with the key file {}, which is missing",
                            self.secrets_path.display(),
                            self.key_path.display()
                        ),
                        hint: format!(
                            "restore {} from a backup; {} was left untouched",
                            self.key_path.display(),
                            self.secrets_path.display()
                        ),
                    })?;
                let plaintext = decrypt(&key, &file, header_len).ok_or_else(|| {
                    self.corrupt(
                        &self.secrets_path,
                        format!(
                            "decryption failed: the file is damaged or was not encrypted \
                             with the key in {}",
                            self.key_path.display()
                        ),
                    )
                })?;
                let map = self.parse_map(&plaintext)?;
                // Only now: a key that does not decrypt the file is not worth protecting.
                let key_file_protection = self.protect_plain_key_file(&key, form);
                let state = State::Open {
                    protection,
                    key,
                    map,
                };
                Ok((state, key_file_protection))
            }
            // A leftover key file (a crash between the switch to a passphrase and its
            // removal) is left alone here: only a successful unlock proves that the header
            // really says "passphrase" and was not damaged into saying it.
            Protection::Passphrase { params, salt } => Ok((
                State::Locked {
                    params,
                    salt,
                    header_len,
                    file,
                },
                crate::os::KEY_FILE_PROTECTION,
            )),
        }
    }

    /// The key in the key file and the form it was kept in, or `None` when there is no
    /// key file.
    fn read_key_file(&self) -> Result<Option<(SecretBytes, KeyFileForm)>, StoreError> {
        let mut file = match File::open(&self.key_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", &self.key_path, e)),
        };
        // The mode of the file we opened, not of whatever the path points to a moment later.
        let mode = crate::os::mode_of(
            &file
                .metadata()
                .map_err(|e| io_error("inspect", &self.key_path, e))?,
        );
        if let Some(mode) = mode.filter(|mode| mode & 0o077 != 0) {
            return Err(StoreError::Unavailable {
                store: StoreKind::File,
                detail: format!(
                    "{} is readable by group or others (mode {:04o})",
                    self.key_path.display(),
                    mode & 0o7777
                ),
                hint: format!("run `chmod 600 {}`", self.key_path.display()),
            });
        }
        // One byte more than the largest key file, to tell "too long"; a buffer of fixed
        // size because `read_to_end` may reallocate and leave copies of a plain key behind.
        let mut buf = Zeroizing::new(vec![0u8; MAX_KEY_FILE_LEN + 1]);
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read", &self.key_path, e)),
            }
        }
        let contents = &buf[..len];
        let (mut key, form) = match contents.strip_prefix(PROTECTED_KEY_MAGIC.as_slice()) {
            Some(protected) => {
                let key =
                    crate::os::unprotect_key(protected).map_err(|e| StoreError::Unavailable {
                        store: StoreKind::File,
                        detail: format!(
                            "cannot read the key file {}: {e}",
                            self.key_path.display()
                        ),
                        hint: format!(
                            "sign in as the Windows account that created it, or restore {} \
                             from a backup; {} was left untouched",
                            self.key_path.display(),
                            self.secrets_path.display()
                        ),
                    })?;
                (key, KeyFileForm::Protected)
            }
            None => (Zeroizing::new(contents.to_vec()), KeyFileForm::Plain),
        };
        if key.len() != KEY_LEN {
            let holds = if len > MAX_KEY_FILE_LEN {
                format!("more than {MAX_KEY_FILE_LEN} bytes")
            } else {
                format!("{} bytes", key.len())
            };
            return Err(self.corrupt(
                &self.key_path,
                format!("the key file holds {holds}, a key is {KEY_LEN}"),
            ));
        }
        // Moved, not copied: `key` is left empty.
        Ok(Some((SecretBytes::new(std::mem::take(&mut *key)), form)))
    }

    /// What the key file holds for `key`: the OS's protected form, or the key itself.
    fn key_file_contents(&self, key: &SecretBytes) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let protected = crate::os::protect_key(key.expose())
            .map_err(|e| io_error("protect the key for", &self.key_path, e))?;
        Ok(Zeroizing::new(match protected {
            Some(blob) => [PROTECTED_KEY_MAGIC.as_slice(), &blob].concat(),
            None => key.expose().to_vec(),
        }))
    }

    /// A plain key file where the OS can protect the key (one written by an older build)
    /// is rewritten protected; if that fails it keeps working as it is, and `status` says
    /// so. Returns what protects the key file now.
    fn protect_plain_key_file(&self, key: &SecretBytes, form: KeyFileForm) -> &'static str {
        if matches!(form, KeyFileForm::Protected) {
            return crate::os::KEY_FILE_PROTECTION;
        }
        let blob = match crate::os::protect_key(key.expose()) {
            Ok(Some(blob)) => blob,
            // Nothing more to do here: the file's mode protects it.
            Ok(None) => return crate::os::KEY_FILE_PROTECTION,
            Err(e) => {
                tracing::warn!(error = %e, path = %self.key_path.display(), "the plain key file stays plain");
                return PROTECTION_PLAIN_KEY_FILE;
            }
        };
        let contents = [PROTECTED_KEY_MAGIC.as_slice(), &blob].concat();
        // Atomic: a crash leaves the plain key or the protected one, never neither. The
        // plain bytes may remain in the disk's free space, as with any rewritten file.
        match crate::fsutil::write_atomic(&self.key_path, &contents) {
            Ok(()) => {
                tracing::info!(path = %self.key_path.display(), "the plain key file is now protected by the OS");
                crate::os::KEY_FILE_PROTECTION
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %self.key_path.display(), "the plain key file stays plain");
                PROTECTION_PLAIN_KEY_FILE
            }
        }
    }

    fn create_key_file(&self) -> Result<SecretBytes, StoreError> {
        // Filled in place and then moved: a stack array copied into a Vec would leave an
        // unzeroized copy behind.
        let mut bytes = vec![0u8; KEY_LEN];
        getrandom_for(&mut bytes, &self.key_path)?;
        let key = SecretBytes::new(bytes);
        // Protected before the file exists: a failure leaves nothing behind.
        let contents = self.key_file_contents(&key)?;
        let mut file = crate::os::private_file_options()
            .write(true)
            .create_new(true)
            .open(&self.key_path)
            .map_err(|e| io_error("create", &self.key_path, e))?;
        let written = file
            .write_all(&contents)
            .map_err(|e| io_error("write", &self.key_path, e))
            .and_then(|()| {
                file.sync_all()
                    .map_err(|e| io_error("sync", &self.key_path, e))
            });
        if let Err(e) = written {
            // A short key file would make every later open fail as corrupt; without it the
            // next open simply creates a new one. Nothing was encrypted with this key yet.
            drop(file);
            let _ = fs::remove_file(&self.key_path);
            return Err(e);
        }
        sync_dir(&self.dir)?;
        Ok(key)
    }

    /// Overwrites the key file with zeros, then removes it. A missing key file is fine.
    fn wipe_key_file(&self) -> Result<(), StoreError> {
        let mut file = match OpenOptions::new().write(true).open(&self.key_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("open", &self.key_path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io_error("inspect", &self.key_path, e))?
            .len();
        // Far larger than a key; a huge file is not ours to fill with zeros for minutes.
        let zeros = vec![0u8; usize::try_from(len.min(4096)).unwrap_or(4096)];
        file.write_all(&zeros)
            .map_err(|e| io_error("overwrite", &self.key_path, e))?;
        file.sync_all()
            .map_err(|e| io_error("sync", &self.key_path, e))?;
        drop(file);
        fs::remove_file(&self.key_path).map_err(|e| io_error("remove", &self.key_path, e))?;
        sync_dir(&self.dir)
    }

    fn parse_map(&self, plaintext: &[u8]) -> Result<BTreeMap<String, Secret>, StoreError> {
        // serde_json's own message may quote the offending value, which may be a secret:
        // only its position goes into the error.
        let map: BTreeMap<String, String> = serde_json::from_slice(plaintext).map_err(|e| {
            self.corrupt(
                &self.secrets_path,
                format!(
                    "the decrypted data is not a JSON object of strings (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        // Moving each String into a Secret copies nothing, so no unzeroized copy is left.
        Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }

    /// Encrypts `map` under `key` with `protection`'s header and replaces the file
    /// atomically and durably.
    fn write(
        &self,
        protection: &Protection,
        key: &SecretBytes,
        map: &BTreeMap<String, Secret>,
    ) -> Result<(), StoreError> {
        let header = protection.header();
        let plaintext = serialize_map(map);
        let nonce = random_bytes::<NONCE_LEN>(&self.secrets_path)?;
        let cipher = XChaCha20Poly1305::new_from_slice(key.expose())
            .expect("every key is KEY_LEN (32) bytes: checked when read, or generated");
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &header,
                },
            )
            .expect("XChaCha20-Poly1305 only refuses messages of 256 GiB and more");
        let mut contents = header;
        contents.extend_from_slice(&nonce);
        contents.extend_from_slice(&ciphertext);
        self.replace_file(&contents)
    }

    fn replace_file(&self, contents: &[u8]) -> Result<(), StoreError> {
        // A stale temporary file (a crash mid-write) would make `create_new` fail forever.
        match fs::remove_file(&self.tmp_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &self.tmp_path, e)),
        }
        let written = crate::os::private_file_options()
            .write(true)
            .create_new(true)
            .open(&self.tmp_path)
            .map_err(|e| io_error("create", &self.tmp_path, e))
            .and_then(|mut file| {
                file.write_all(contents)
                    .map_err(|e| io_error("write", &self.tmp_path, e))?;
                file.sync_all()
                    .map_err(|e| io_error("sync", &self.tmp_path, e))
            })
            .and_then(|()| {
                fs::rename(&self.tmp_path, &self.secrets_path)
                    .map_err(|e| io_error("rename", &self.tmp_path, e))
            });
        if let Err(e) = written {
            // Best effort: the old secrets file is intact either way, and the next write
            // removes a leftover.
            let _ = fs::remove_file(&self.tmp_path);
            return Err(e);
        }
        sync_dir(&self.dir)
    }

    fn corrupt(&self, path: &Path, detail: String) -> StoreError {
        StoreError::Corrupt {
            store: StoreKind::File,
            path: path.display().to_string(),
            detail,
        }
    }
}

impl SecretStore for FileStore {
    fn kind(&self) -> StoreKind {
        StoreKind::File
    }

    fn protection(&self) -> String {
        match &*self.lock_state() {
            State::Open {
                protection: Protection::KeyFile,
                ..
            } => format!("encrypted file, {}", self.key_file_protection),
            State::Open { .. } | State::Locked { .. } => PROTECTION_PASSPHRASE.to_string(),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Secret>, StoreError> {
        match &*self.lock_state() {
            State::Open { map, .. } => Ok(map.get(key).cloned()),
            State::Locked { .. } => Err(StoreError::Locked {
                store: StoreKind::File,
            }),
        }
    }

    fn set(&self, key: &str, value: &Secret) -> Result<(), StoreError> {
        self.change_key(key, |map| map.insert(key.to_string(), value.clone()))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.change_key(key, |map| map.remove(key))
    }

    fn is_locked(&self) -> bool {
        matches!(&*self.lock_state(), State::Locked { .. })
    }

    fn unlock(&self, passphrase: &Secret) -> Result<(), StoreError> {
        let mut state = self.lock_state();
        match &*state {
            State::Open {
                protection: Protection::KeyFile,
                ..
            } => Err(StoreError::NotSupported {
                store: StoreKind::File,
                what: "unlocking: this store is protected by a key file, not a passphrase".into(),
            }),
            // Already unlocked: still answer whether this is the passphrase, so a mistyped
            // one is never confirmed as right.
            State::Open {
                protection: Protection::Passphrase { params, salt },
                key,
                ..
            } => {
                if derive_key(passphrase, *params, salt) == *key {
                    Ok(())
                } else {
                    Err(StoreError::WrongPassphrase {
                        store: StoreKind::File,
                    })
                }
            }
            State::Locked {
                params,
                salt,
                header_len,
                file,
            } => {
                let key = derive_key(passphrase, *params, salt);
                let plaintext =
                    decrypt(&key, file, *header_len).ok_or(StoreError::WrongPassphrase {
                        store: StoreKind::File,
                    })?;
                let map = self.files.parse_map(&plaintext)?;
                *state = State::Open {
                    protection: Protection::Passphrase {
                        params: *params,
                        salt: *salt,
                    },
                    key,
                    map,
                };
                drop(state);
                // The file is now proven passphrase-protected, so a key file left by a crash
                // during `set_passphrase` decrypts nothing current: removing it is tidying,
                // and failing to is no reason to refuse the unlock.
                let _ = self.files.wipe_key_file();
                Ok(())
            }
        }
    }

    fn set_passphrase(&self, passphrase: &Secret) -> Result<(), StoreError> {
        if passphrase.is_empty() {
            return Err(StoreError::NotSupported {
                store: StoreKind::File,
                what: "an empty passphrase".into(),
            });
        }
        let mut state = self.lock_state();
        let State::Open {
            protection,
            key,
            map,
        } = &mut *state
        else {
            return Err(StoreError::Locked {
                store: StoreKind::File,
            });
        };
        // A new salt on every change, so the same passphrase never yields the same key twice.
        let salt = random_bytes::<SALT_LEN>(&self.files.secrets_path)?;
        let new_protection = Protection::Passphrase {
            params: self.kdf,
            salt,
        };
        let new_key = derive_key(passphrase, self.kdf, &salt);
        self.files.write(&new_protection, &new_key, map)?;
        *protection = new_protection;
        *key = new_key;
        drop(state);
        // The passphrase is in effect even if this fails, but the failure is still reported: an
        // old copy of the secrets file (a backup) can be decrypted with the key file.
        self.files.wipe_key_file()
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the map, nor the key: only what `status` may show anyway. `try_lock`, so
        // that formatting while a method holds the lock cannot deadlock.
        let protection = match self.state.try_lock() {
            Ok(state) => describe(&state),
            Err(TryLockError::Poisoned(poisoned)) => describe(&poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => "<busy>",
        };
        f.debug_struct("FileStore")
            .field("dir", &self.files.dir)
            .field("protection", &protection)
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

fn describe(state: &State) -> &'static str {
    match state {
        State::Open {
            protection: Protection::KeyFile,
            ..
        } => "key file",
        State::Open { .. } => "passphrase, unlocked",
        State::Locked { .. } => "passphrase, locked",
    }
}

/// The argon2id key for `passphrase`. `params` were validated (at open or when parsing
/// the header) and the salt is 16 bytes, which argon2 accepts.
fn derive_key(passphrase: &Secret, params: KdfParams, salt: &[u8; SALT_LEN]) -> SecretBytes {
    let params = params
        .argon2_params()
        .expect("the parameters were validated when the store was opened or the header read");
    // Our own working memory, because argon2 is built without its `zeroize` feature and
    // would free ~19 MiB of blocks from which the key can be recomputed.
    let mut blocks = vec![Block::default(); params.block_count()];
    // Hashed straight into the Vec that becomes the key, so no copy is left behind.
    let mut key = vec![0u8; KEY_LEN];
    let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(
            passphrase.expose().as_bytes(),
            salt,
            &mut key,
            &mut blocks,
        );
    for block in &mut blocks {
        block.as_mut().zeroize();
    }
    let key = SecretBytes::new(key);
    result.expect("argon2 accepts validated parameters, a 16-byte salt and a 32-byte output");
    key
}

/// How the store reads a secrets file, for the fuzzer (`fuzz/`): the header, then, for a
/// key-file store, decryption under `key` and the map's JSON. Returns how many secrets the
/// file holds; `None` for a file the store would refuse. Must never panic.
#[doc(hidden)]
pub fn read_for_fuzzing(file: &[u8], key: &[u8; KEY_LEN]) -> Option<usize> {
    let (protection, header_len) = Protection::parse(file).ok()?;
    match protection {
        Protection::KeyFile => {
            let plaintext = decrypt(&SecretBytes::new(key.to_vec()), file, header_len)?;
            serde_json::from_slice::<BTreeMap<String, String>>(&plaintext)
                .ok()
                .map(|m| m.len())
        }
        // Reading it needs the passphrase and argon2: the header is what faces the bytes.
        Protection::Passphrase { .. } => Some(0),
    }
}

/// The plaintext of `file`, or `None` when authentication fails.
fn decrypt(key: &SecretBytes, file: &[u8], header_len: usize) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = XChaCha20Poly1305::new_from_slice(key.expose())
        .expect("every key is KEY_LEN (32) bytes: checked when read, or derived");
    let (header, rest) = file.split_at(header_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: header,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

fn serialize_map(map: &BTreeMap<String, Secret>) -> Zeroizing<Vec<u8>> {
    // Sized for the worst case (every byte escaped as `\u00XX`, plus quotes, colon and
    // comma) so the buffer never reallocates and leaves an unzeroized copy behind.
    let capacity = 2 + map
        .iter()
        .map(|(k, v)| 6 * (k.len() + v.expose().len()) + 6)
        .sum::<usize>();
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    let view: BTreeMap<&str, &str> = map.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    serde_json::to_writer(&mut *buf, &view)
        .expect("a map of strings always serializes, and writing to a Vec cannot fail");
    buf
}

/// Random bytes (nonces, salts), not secret.
fn random_bytes<const N: usize>(for_path: &Path) -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom_for(&mut bytes, for_path)?;
    Ok(bytes)
}

fn getrandom_for(bytes: &mut [u8], for_path: &Path) -> Result<(), StoreError> {
    getrandom::getrandom(bytes).map_err(|e| {
        io_error(
            "get random bytes for",
            for_path,
            io::Error::other(e.to_string()),
        )
    })
}

/// Makes a rename or a creation in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::os::sync_dir(dir).map_err(|e| io_error("sync", dir, e))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

// The rules tested below are about Unix file modes and owners (Windows: see `os::windows`).
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    const TOKEN: &str = "ghp_Sup3rSecretTokenValue0123456789";

    fn open(dir: &Path) -> FileStore {
        FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).expect("open the store")
    }

    /// A temporary folder closed to others, as the daemon's data folder must be.
    fn private_tempdir() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        tmp
    }

    /// Writes the fuzzer's seed (`fuzz/corpus/store_file/`): a real `secrets.enc` under the
    /// fuzz target's fixed key. Run by hand: `cargo test -p helperd --lib write_fuzz_seed
    /// -- --ignored`.
    #[test]
    #[ignore = "writes the fuzz seed corpus; run by hand"]
    fn write_fuzz_seed() {
        let tmp = private_tempdir();
        let key = *b"helperd fuzzing key, 32 bytes!!!";
        let key_path = tmp.path().join(KEY_FILE);
        fs::write(&key_path, key).unwrap();
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        let store = open(tmp.path());
        store.set("token/abc", &Secret::new(TOKEN)).unwrap();
        store.set("plain-credentials", &Secret::new("[]")).unwrap();
        let file = fs::read(tmp.path().join(SECRETS_FILE)).unwrap();
        assert_eq!(read_for_fuzzing(&file, &key), Some(2));
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/store_file");
        fs::create_dir_all(&corpus).unwrap();
        fs::write(corpus.join("two-secrets.enc"), &file).unwrap();
        fs::write(corpus.join("header-only.enc"), &file[..16.min(file.len())]).unwrap();
    }

    #[test]
    fn a_data_folder_others_can_reach_is_refused_and_left_alone() {
        let tmp = private_tempdir();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let Err(e) = FileStore::open_with_kdf_params(tmp.path(), KdfParams::for_tests()) else {
            panic!("a 0755 data folder is refused");
        };
        assert!(e.to_string().contains("chmod 700"), "{e}");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "no key file was written"
        );
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn pass(p: &str) -> Secret {
        Secret::new(p)
    }

    /// A store in passphrase mode holding TOKEN under "token/a", reopened (so locked).
    fn passphrase_store(dir: &Path) -> FileStore {
        let store = open(dir);
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        store.set_passphrase(&pass("correct horse")).unwrap();
        drop(store);
        open(dir)
    }

    #[test]
    fn round_trip_survives_a_reopen() {
        let tmp = private_tempdir();
        let dir = tmp.path().join("data");
        let store = open(&dir);
        assert_eq!(store.kind(), StoreKind::File);
        assert!(!store.is_locked());
        assert_eq!(store.get("token/a").unwrap(), None);
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        store.set("token/b", &Secret::new("other")).unwrap();
        store.set("token/b", &Secret::new("replaced")).unwrap();
        store.set("gone", &Secret::new("x")).unwrap();
        store.delete("gone").unwrap();
        store.delete("never-there").unwrap();
        drop(store);

        let store = open(&dir);
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
        assert_eq!(store.get("token/b").unwrap().unwrap().expose(), "replaced");
        assert_eq!(store.get("gone").unwrap(), None);
        assert!(!dir.join(TMP_FILE).exists());
        assert_eq!(mode(&dir.join(SECRETS_FILE)), 0o600);
    }

    #[test]
    fn creates_a_0600_key_file_in_a_0700_dir() {
        let tmp = private_tempdir();
        let dir = tmp.path().join("nested").join("data");
        let store = open(&dir);
        assert_eq!(mode(&dir), 0o700);
        let key_path = dir.join(KEY_FILE);
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(fs::read(&key_path).unwrap().len(), KEY_LEN);
        assert_eq!(
            store.protection(),
            "encrypted file, key in a 0600 key file \
             (weaker: anyone who can read your files can decrypt it)"
        );
        // No secrets file until something is stored.
        assert!(!dir.join(SECRETS_FILE).exists());
    }

    #[test]
    fn refuses_a_key_file_others_can_read() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        open(dir).set("k", &Secret::new(TOKEN)).unwrap();
        let key_path = dir.join(KEY_FILE);
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).unwrap_err();
        match &err {
            StoreError::Unavailable {
                store,
                detail,
                hint,
            } => {
                assert_eq!(*store, StoreKind::File);
                assert_eq!(
                    *detail,
                    format!(
                        "{} is readable by group or others (mode 0644)",
                        key_path.display()
                    )
                );
                assert_eq!(*hint, format!("run `chmod 600 {}`", key_path.display()));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(open(dir).get("k").unwrap().unwrap().expose(), TOKEN);
    }

    #[test]
    fn missing_key_file_is_unavailable_and_nothing_is_overwritten() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        open(dir).set("k", &Secret::new(TOKEN)).unwrap();
        let before = fs::read(dir.join(SECRETS_FILE)).unwrap();
        fs::remove_file(dir.join(KEY_FILE)).unwrap();
        let err = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert_eq!(fs::read(dir.join(SECRETS_FILE)).unwrap(), before);
        assert!(!dir.join(KEY_FILE).exists(), "no new key file was made");
    }

    #[test]
    fn passphrase_mode_locks_and_unlocks() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        let store = open(dir);
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        store.set_passphrase(&pass("correct horse")).unwrap();
        assert!(
            !store.is_locked(),
            "setting a passphrase keeps the store open"
        );
        assert!(!dir.join(KEY_FILE).exists(), "the key file is removed");
        assert_eq!(store.protection(), PROTECTION_PASSPHRASE);
        store.set("token/b", &Secret::new("after")).unwrap();
        drop(store);

        let store = open(dir);
        assert!(store.is_locked());
        assert_eq!(
            store.protection(),
            "encrypted file, key derived from your passphrase (argon2id)"
        );
        assert!(!dir.join(KEY_FILE).exists(), "open makes no new key file");
        assert!(matches!(
            store.get("token/a"),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            store.set("x", &Secret::new("y")),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(store.delete("x"), Err(StoreError::Locked { .. })));
        assert!(matches!(
            store.set_passphrase(&pass("new")),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            store.unlock(&pass("wrong horse")),
            Err(StoreError::WrongPassphrase { .. })
        ));
        assert!(store.is_locked());

        store.unlock(&pass("correct horse")).unwrap();
        assert!(!store.is_locked());
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
        assert_eq!(store.get("token/b").unwrap().unwrap().expose(), "after");
        // Unlocking again checks the passphrase rather than confirming anything.
        store.unlock(&pass("correct horse")).unwrap();
        assert!(matches!(
            store.unlock(&pass("wrong horse")),
            Err(StoreError::WrongPassphrase { .. })
        ));

        // Changing the passphrase: the old one stops working.
        store.set_passphrase(&pass("battery staple")).unwrap();
        drop(store);
        let store = open(dir);
        assert!(matches!(
            store.unlock(&pass("correct horse")),
            Err(StoreError::WrongPassphrase { .. })
        ));
        store.unlock(&pass("battery staple")).unwrap();
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
    }

    #[test]
    fn reading_uses_the_header_kdf_params() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        let store = open(dir);
        store.set("k", &Secret::new(TOKEN)).unwrap();
        store.set_passphrase(&pass("pw")).unwrap();
        drop(store);
        // Opened with other parameters; the cheap ones in the header still decrypt.
        let store = FileStore::open_with_kdf_params(
            dir,
            KdfParams {
                m_cost_kib: 128,
                t_cost: 3,
                p_cost: 2,
            },
        )
        .unwrap();
        store.unlock(&pass("pw")).unwrap();
        assert_eq!(store.get("k").unwrap().unwrap().expose(), TOKEN);
    }

    #[test]
    fn empty_passphrase_is_refused() {
        let tmp = private_tempdir();
        let store = open(tmp.path());
        let err = store.set_passphrase(&pass("")).unwrap_err();
        assert!(
            matches!(&err, StoreError::NotSupported { what, .. } if what == "an empty passphrase"),
            "{err:?}"
        );
        assert!(tmp.path().join(KEY_FILE).exists());
        assert_eq!(
            store.protection(),
            format!("encrypted file, {}", crate::os::KEY_FILE_PROTECTION)
        );
    }

    #[test]
    fn unlock_of_a_key_file_store_is_not_supported() {
        let tmp = private_tempdir();
        let store = open(tmp.path());
        assert!(matches!(
            store.unlock(&pass("pw")),
            Err(StoreError::NotSupported { .. })
        ));
    }

    #[test]
    fn leftover_key_file_is_removed_by_a_successful_unlock_only() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        let key_copy = {
            let store = open(dir);
            let key = fs::read(dir.join(KEY_FILE)).unwrap();
            store.set("k", &Secret::new(TOKEN)).unwrap();
            store.set_passphrase(&pass("pw")).unwrap();
            key
        };
        // As if the daemon died between the rename and the key file's removal.
        let key_path = dir.join(KEY_FILE);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap()
            .write_all(&key_copy)
            .unwrap();
        let store = open(dir);
        assert!(store.is_locked());
        assert!(key_path.exists(), "open alone does not trust the header");
        assert!(store.unlock(&pass("nope")).is_err());
        assert!(key_path.exists());
        store.unlock(&pass("pw")).unwrap();
        assert!(!key_path.exists());
    }

    #[test]
    fn corrupted_ciphertext_is_reported_and_left_untouched() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        open(dir).set("k", &Secret::new(TOKEN)).unwrap();
        let path = dir.join(SECRETS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let err = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).unwrap_err();
        match &err {
            StoreError::Corrupt { store, path: p, .. } => {
                assert_eq!(*store, StoreKind::File);
                assert_eq!(*p, path.display().to_string());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(!err.to_string().contains(TOKEN));
        assert_eq!(fs::read(&path).unwrap(), bytes, "the file is unchanged");
        assert!(dir.join(KEY_FILE).exists());
    }

    #[test]
    fn bad_header_is_corrupt() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        open(dir).set("k", &Secret::new(TOKEN)).unwrap();
        let path = dir.join(SECRETS_FILE);
        let good = fs::read(&path).unwrap();
        for (at, value) in [(0, b'X'), (MAGIC.len(), 2), (MAGIC.len() + 1, 7)] {
            let mut bytes = good.clone();
            bytes[at] = value;
            fs::write(&path, &bytes).unwrap();
            let err = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).unwrap_err();
            assert!(
                matches!(err, StoreError::Corrupt { .. }),
                "byte {at}: {err:?}"
            );
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }
        fs::write(&path, &good[..KEY_FILE_HEADER_LEN + 10]).unwrap();
        let err = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn secrets_never_reach_the_disk_or_debug_in_clear() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        let store = open(dir);
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!debug.contains("token/a"), "{debug}");
        for entry in fs::read_dir(dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            assert!(!contains(&bytes, TOKEN.as_bytes()));
            assert!(!contains(&bytes, b"ghp_"));
        }
        store.set_passphrase(&pass("pw")).unwrap();
        let bytes = fs::read(dir.join(SECRETS_FILE)).unwrap();
        assert!(!contains(&bytes, TOKEN.as_bytes()));
        assert!(!contains(&bytes, b"pw\0"));
        assert!(!format!("{store:?}").contains(TOKEN));
    }

    #[test]
    fn every_write_uses_a_fresh_nonce() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        let store = open(dir);
        store.set("k", &Secret::new(TOKEN)).unwrap();
        let first = fs::read(dir.join(SECRETS_FILE)).unwrap();
        store.set("k", &Secret::new(TOKEN)).unwrap();
        let second = fs::read(dir.join(SECRETS_FILE)).unwrap();
        let nonce = KEY_FILE_HEADER_LEN..KEY_FILE_HEADER_LEN + NONCE_LEN;
        assert_ne!(first[nonce.clone()], second[nonce]);
    }

    #[test]
    fn tampered_passphrase_header_is_detected() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        drop(passphrase_store(dir));
        let path = dir.join(SECRETS_FILE);
        let good = fs::read(&path).unwrap();
        let salt_at = KEY_FILE_HEADER_LEN + 12;
        let t_cost_at = KEY_FILE_HEADER_LEN + 4;

        // Another salt, or cheaper parameters: the right passphrase no longer decrypts.
        for (at, value) in [(salt_at, good[salt_at] ^ 0x01), (t_cost_at, 2)] {
            let mut bytes = good.clone();
            bytes[at] = value;
            fs::write(&path, &bytes).unwrap();
            let store = open(dir);
            assert!(store.is_locked());
            assert!(
                matches!(
                    store.unlock(&pass("correct horse")),
                    Err(StoreError::WrongPassphrase { .. })
                ),
                "byte {at}"
            );
            assert_eq!(fs::read(&path).unwrap(), bytes);
        }

        // Passphrase -> key file: there is no key file to decrypt with.
        let mut bytes = good.clone();
        bytes[MAGIC.len() + 1] = MODE_KEY_FILE;
        fs::write(&path, &bytes).unwrap();
        assert!(FileStore::open_with_kdf_params(dir, KdfParams::for_tests()).is_err());
        assert_eq!(fs::read(&path).unwrap(), bytes);

        fs::write(&path, &good).unwrap();
        let store = open(dir);
        store.unlock(&pass("correct horse")).unwrap();
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
    }

    #[test]
    fn tampered_key_file_header_is_detected() {
        let tmp = private_tempdir();
        let dir = tmp.path();
        open(dir).set("k", &Secret::new(TOKEN)).unwrap();
        let path = dir.join(SECRETS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[MAGIC.len() + 1] = MODE_PASSPHRASE;
        fs::write(&path, &bytes).unwrap();
        // The nonce now reads as argon2 parameters: either refused outright, or a locked
        // store that no passphrase opens. Either way the key file survives.
        if let Ok(store) = FileStore::open_with_kdf_params(dir, KdfParams::for_tests()) {
            assert!(store.is_locked());
            assert!(store.unlock(&pass("anything")).is_err());
        }
        assert!(dir.join(KEY_FILE).exists());
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

/// The key file on every OS (under Wine for Windows: `scripts/windows.sh`): what the OS
/// makes of the key, and key files written by older builds.
#[cfg(test)]
mod key_file_tests {
    use super::*;

    const TOKEN: &str = "ghp_Sup3rSecretTokenValue0123456789";

    /// A data folder as the daemon makes it (0700 on Unix).
    fn data_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        crate::os::private_dir_builder().create(&dir).unwrap();
        (tmp, dir)
    }

    fn open(dir: &Path) -> Result<FileStore, StoreError> {
        FileStore::open_with_kdf_params(dir, KdfParams::for_tests())
    }

    /// Whether this OS protects the key (Windows), or keeps it plain under the file's mode.
    fn os_protects() -> bool {
        crate::os::protect_key(&[7; KEY_LEN]).unwrap().is_some()
    }

    #[test]
    fn the_key_file_holds_what_the_os_makes_of_the_key() {
        let (_tmp, dir) = data_dir();
        let store = open(&dir).unwrap();
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        assert_eq!(
            store.protection(),
            format!("encrypted file, {}", crate::os::KEY_FILE_PROTECTION)
        );
        drop(store);
        let contents = fs::read(dir.join(KEY_FILE)).unwrap();
        if os_protects() {
            assert!(contents.starts_with(PROTECTED_KEY_MAGIC), "{contents:?}");
            assert!(store_protection_says(&dir, "DPAPI"));
        } else {
            assert_eq!(contents.len(), KEY_LEN);
            assert!(store_protection_says(&dir, "0600 key file"));
        }
        let store = open(&dir).unwrap();
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
    }

    fn store_protection_says(dir: &Path, what: &str) -> bool {
        open(dir).unwrap().protection().contains(what)
    }

    /// Written by an older build (Windows) or as Unix keeps it: 32 plain bytes. It opens;
    /// where the OS protects keys it is rewritten protected, and the same secrets open.
    #[test]
    fn a_plain_key_file_still_opens_and_is_protected_where_the_os_can() {
        let (_tmp, dir) = data_dir();
        let key = *b"an older build's key, 32 bytes!!";
        let mut options = crate::os::private_file_options();
        options.write(true).create_new(true);
        options
            .open(dir.join(KEY_FILE))
            .unwrap()
            .write_all(&key)
            .unwrap();
        let store = open(&dir).unwrap();
        store.set("token/a", &Secret::new(TOKEN)).unwrap();
        drop(store);
        let contents = fs::read(dir.join(KEY_FILE)).unwrap();
        let secrets = fs::read(dir.join(SECRETS_FILE)).unwrap();
        assert_eq!(
            read_for_fuzzing(&secrets, &key),
            Some(1),
            "the old key still encrypts the secrets"
        );
        if os_protects() {
            assert!(contents.starts_with(PROTECTED_KEY_MAGIC));
            assert!(
                !contents.windows(KEY_LEN).any(|w| w == key),
                "no plain key left"
            );
        } else {
            assert_eq!(contents, key);
        }
        let store = open(&dir).unwrap();
        assert_eq!(store.get("token/a").unwrap().unwrap().expose(), TOKEN);
        assert_eq!(
            store.protection(),
            format!("encrypted file, {}", crate::os::KEY_FILE_PROTECTION)
        );
    }

    /// A damaged protected key file (or one another account protected, or one copied from
    /// Windows to Unix) is a clear error that names the file, holds none of its bytes, and
    /// leaves both files as they were.
    #[test]
    fn a_protected_key_this_account_cannot_open_is_a_clear_error() {
        let (_tmp, dir) = data_dir();
        open(&dir)
            .unwrap()
            .set("token/a", &Secret::new(TOKEN))
            .unwrap();
        let key_path = dir.join(KEY_FILE);
        let mut contents = fs::read(&key_path).unwrap();
        if !contents.starts_with(PROTECTED_KEY_MAGIC) {
            // Unix: a key file as Windows writes it (a blob Unix cannot open).
            contents = [PROTECTED_KEY_MAGIC.as_slice(), &[0x42; 200]].concat();
        }
        let last = contents.len() - 1;
        contents[last] ^= 0x55;
        fs::write(&key_path, &contents).unwrap();
        let secrets = fs::read(dir.join(SECRETS_FILE)).unwrap();
        let e = open(&dir).unwrap_err();
        let StoreError::Unavailable { detail, hint, .. } = &e else {
            panic!("expected Unavailable, got {e:?}");
        };
        assert!(
            detail.starts_with(&format!("cannot read the key file {}", key_path.display())),
            "{detail}"
        );
        assert!(detail.contains("DPAPI"), "{detail}");
        assert!(hint.contains("left untouched"), "{hint}");
        assert_eq!(fs::read(&key_path).unwrap(), contents);
        assert_eq!(fs::read(dir.join(SECRETS_FILE)).unwrap(), secrets);
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_corrupt() {
        for len in [0, KEY_LEN - 1, KEY_LEN + 1, MAX_KEY_FILE_LEN + 10] {
            let (_tmp, dir) = data_dir();
            let mut options = crate::os::private_file_options();
            options.write(true).create_new(true);
            options
                .open(dir.join(KEY_FILE))
                .unwrap()
                .write_all(&vec![1; len])
                .unwrap();
            let e = open(&dir).unwrap_err();
            assert!(matches!(e, StoreError::Corrupt { .. }), "{len}: {e:?}");
            assert!(e.to_string().contains("a key is 32"), "{e}");
        }
    }
}
