//! Windows: what the Unix family does with modes, owners, termios, signals and fork.
//!
//! Files: the user's profile folders (`%APPDATA%`, `%LOCALAPPDATA%`) are closed to other
//! users by their inherited ACL, so helperd's folders and files inherit it and nothing is
//! set per file; modes and uids do not exist and are reported as unknown (`None`).
//! Starting in the background: there is no fork, so the launcher starts a second copy of
//! itself, detached, and relays its `ok`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Cryptography::{
    CryptProtectData, CryptUnprotectData, CRYPTPROTECT_UI_FORBIDDEN, CRYPT_INTEGER_BLOB,
};
use windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT;
use windows_sys::Win32::System::Console::{
    SetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use zeroize::{Zeroize, Zeroizing};

/// Set in the environment of the detached copy the launcher starts.
const DETACHED_CHILD: &str = "HELPERD_DETACHED_CHILD";

/// The system policy: in `%ProgramData%`, which only administrators may change files of
/// others in (its ACL is not checked yet: see the README).
pub const SYSTEM_POLICY_PATH: &str = r"C:\ProgramData\helperd\policy.toml";

/// The user this process runs as, as a number: the last part of its SID (the relative
/// identifier, as Cygwin and MSYS2 number Windows users). For naming and showing only;
/// users are compared by their whole SID.
pub fn current_uid() -> u32 {
    helperd_wire::os::sid::current()
        .map(|sid| sid.rid())
        .unwrap_or(0)
}

/// Folders inherit the profile's ACL.
pub fn private_dir_builder() -> DirBuilder {
    DirBuilder::new()
}

/// Files inherit the folder's ACL.
pub fn private_file_options() -> OpenOptions {
    OpenOptions::new()
}

/// Nothing is refused yet: the folders live in the user's profile, whose ACL closes them
/// to other users (checking the ACL itself is future work, see the README).
pub fn check_private_dir(dir: &Path) -> io::Result<()> {
    fs::metadata(dir).map(|_| ()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("failed to inspect {}: {e}", dir.display()),
        )
    })
}

/// Opens a link itself, never its target: the caller then refuses what is not a regular
/// file.
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
}

/// Links are opened, not refused, by [`no_follow`] (and then refused as not regular).
pub fn is_link_refusal(_e: &io::Error) -> bool {
    false
}

/// Nothing to claim: see the module docs.
pub fn claim_private_file(_path: &Path, _file: &File) -> io::Result<()> {
    Ok(())
}

/// Windows files have no mode bits.
pub fn mode_of(_meta: &fs::Metadata) -> Option<u32> {
    None
}

/// Windows files have no mode bits to set.
pub fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// Windows files have no uid.
pub fn owner_of(_meta: &fs::Metadata) -> Option<u32> {
    None
}

/// NTFS journals a rename; a folder cannot be flushed like a file.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Which file this is: its creation time tells a file replaced at the same path.
pub fn file_id(meta: &fs::Metadata) -> (u64, u64) {
    (meta.creation_time(), 0)
}

/// Changes whenever the file's content may have changed.
pub fn file_stamp(meta: &fs::Metadata) -> [i128; 5] {
    [
        i128::from(meta.last_write_time()),
        i128::from(meta.file_size()),
        i128::from(meta.creation_time()),
        i128::from(meta.file_attributes()),
        0,
    ]
}

/// This user's login name (`%USERNAME%`, as Windows sets it at logon).
pub fn login_name() -> Option<String> {
    std::env::var("USERNAME").ok().filter(|n| !n.is_empty())
}

/// Support access for another local user is Unix-only.
pub fn uid_of_user(_name: &str) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "support access for another local user is available on Linux and macOS only",
    ))
}

/// Nothing to set: a process of another user cannot open ours, and a crash dump is
/// written only where Windows Error Reporting is configured to keep one.
pub fn harden() {}

/// What protects the file store's key file here, for `status`.
pub const KEY_FILE_PROTECTION: &str = "key protected by DPAPI for your Windows account \
     (weaker: any program running as you can decrypt it)";

/// The file store's key protected by DPAPI for this Windows account (`CryptProtectData`,
/// user scope, never a dialog): only this account, on this machine or wherever its
/// profile roams with its DPAPI master keys, can open the result.
pub fn protect_key(key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    dpapi_protect(key, None).map(Some)
}

/// The key inside `protected` (see [`protect_key`]). An error when this account cannot
/// open it (another account's, another machine's) or it is damaged; the error never holds
/// any of the bytes.
pub fn unprotect_key(protected: &[u8]) -> io::Result<Zeroizing<Vec<u8>>> {
    dpapi_unprotect(protected, None)
}

/// Shown by DPAPI tools next to the blob; not secret.
const DPAPI_DESCRIPTION: &str = "helperd file store key";

/// Bytes DPAPI allocated (`LocalAlloc`) for its output: zeroed, since they may be a key,
/// and freed with `LocalFree` when dropped.
struct DpapiOutput(CRYPT_INTEGER_BLOB);

impl DpapiOutput {
    fn new() -> DpapiOutput {
        DpapiOutput(CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: std::ptr::null_mut(),
        })
    }

    fn bytes(&self) -> &[u8] {
        if self.0.pbData.is_null() {
            return &[];
        }
        // SAFETY: DPAPI set `pbData` to an allocation of `cbData` bytes that it owns until
        // `LocalFree` in `drop`.
        unsafe { std::slice::from_raw_parts(self.0.pbData, self.0.cbData as usize) }
    }
}

impl Drop for DpapiOutput {
    fn drop(&mut self) {
        if self.0.pbData.is_null() {
            return;
        }
        // SAFETY: as in `bytes`; nothing else refers to the allocation, which is freed once.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.pbData, self.0.cbData as usize).zeroize();
            LocalFree(self.0.pbData.cast());
        }
    }
}

/// `bytes` as DPAPI's input (which it only reads).
fn dpapi_input(bytes: &[u8]) -> io::Result<CRYPT_INTEGER_BLOB> {
    Ok(CRYPT_INTEGER_BLOB {
        cbData: u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large for DPAPI"))?,
        pbData: bytes.as_ptr().cast_mut(),
    })
}

/// `CryptProtectData` with this account's key; `entropy` is for tests only (a blob no
/// plain `unprotect_key` opens, as another account's).
fn dpapi_protect(data: &[u8], entropy: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let input = dpapi_input(data)?;
    let entropy = entropy.map(dpapi_input).transpose()?;
    let description: Vec<u16> = DPAPI_DESCRIPTION.encode_utf16().chain(Some(0)).collect();
    let mut output = DpapiOutput::new();
    // SAFETY: every pointer is valid for the call (inputs are only read; `output` is
    // written by DPAPI and freed by `DpapiOutput`); no prompt structure, so no dialog.
    let ok = unsafe {
        CryptProtectData(
            &input,
            description.as_ptr(),
            entropy.as_ref().map_or(std::ptr::null(), |e| e as *const _),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output.0,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("DPAPI could not protect the key (CryptProtectData: {e})"),
        ));
    }
    Ok(output.bytes().to_vec())
}

/// `CryptUnprotectData`; see [`unprotect_key`].
fn dpapi_unprotect(protected: &[u8], entropy: Option<&[u8]>) -> io::Result<Zeroizing<Vec<u8>>> {
    let input = dpapi_input(protected)?;
    let entropy = entropy.map(dpapi_input).transpose()?;
    let mut output = DpapiOutput::new();
    // SAFETY: as in `dpapi_protect`; no description is asked for.
    let ok = unsafe {
        CryptUnprotectData(
            &input,
            std::ptr::null_mut(),
            entropy.as_ref().map_or(std::ptr::null(), |e| e as *const _),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output.0,
        )
    };
    if ok == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "DPAPI could not open it for this Windows account: it was protected for \
                 another account or on another machine, or it is damaged \
                 (CryptUnprotectData: {e})"
            ),
        ));
    }
    // Copied once into a buffer that is zeroed on drop; DPAPI's copy is zeroed in `drop`.
    Ok(Zeroizing::new(output.bytes().to_vec()))
}

/// Reads a line on the console with echo off (Ctrl-C restores the console, then ends the
/// process). The bytes typed go into `line`.
pub fn read_hidden(prompt: &str, line: &mut Vec<u8>) -> io::Result<()> {
    let terminal = helperd_wire::os::Terminal::open()?;
    let typed = terminal.read_hidden_line(prompt)?;
    line.extend_from_slice(typed.as_bytes());
    typed.into_bytes().zeroize();
    Ok(())
}

/// Nothing to hold: console control events only arrive once a handler is installed.
pub fn hold_daemon_signals() -> io::Result<()> {
    Ok(())
}

/// What a console event asks of the daemon.
pub enum SignalAsks {
    /// Stop; the name for the log.
    Stop(&'static str),
    /// Never sent on Windows (there is no SIGHUP): `helperctl` reloads through a request.
    Reload,
}

/// The daemon's console event handlers (a daemon started in the background has no
/// console, and is stopped with `helperctl daemon stop`).
pub struct DaemonSignals {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
}

impl DaemonSignals {
    /// Installs the handlers.
    pub fn listen() -> io::Result<DaemonSignals> {
        Ok(DaemonSignals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
            ctrl_break: tokio::signal::windows::ctrl_break()?,
            close: tokio::signal::windows::ctrl_close()?,
        })
    }

    /// The next event.
    pub async fn next(&mut self) -> SignalAsks {
        tokio::select! {
            _ = self.ctrl_c.recv() => SignalAsks::Stop("Ctrl-C"),
            _ = self.ctrl_break.recv() => SignalAsks::Stop("Ctrl-Break"),
            _ = self.close.recv() => SignalAsks::Stop("console closed"),
        }
    }
}

/// What [`detach`] made of this process.
pub enum Detached {
    /// Never on Windows: the launcher finished in [`start_in_background`].
    Launcher {
        /// The daemon's pid.
        pid: u32,
    },
    /// The daemon in the foreground (never on Windows past `detach`).
    Daemon,
    /// The detached copy: it says `ok` to its launcher itself, then calls
    /// [`leave_launcher`].
    DaemonMustSayOk,
}

/// The launcher's half of starting in the background: starts this program again,
/// detached (no console, none of our handles), and waits for its `ok`. `Ok(true)`: the
/// daemon runs in that copy and this process is done; `Ok(false)`: this process is that
/// copy, and goes on to listen.
pub fn start_in_background() -> io::Result<bool> {
    if std::env::var_os(DETACHED_CHILD).is_some() {
        return Ok(false);
    }
    let me = std::env::current_exe()?;
    let mut command = helperd_wire::os::daemon_command(&me);
    command
        .args(std::env::args_os().skip(1))
        .env(DETACHED_CHILD, "1");
    helperd_wire::client::start_command(command, &me, helperd_wire::client::Launcher::IsTheDaemon)
        .map_err(io::Error::other)?;
    Ok(true)
}

/// The detached copy is the daemon; it announces itself (see [`Detached`]).
pub fn detach(_log: &File) -> io::Result<Detached> {
    Ok(Detached::DaemonMustSayOk)
}

/// After `ok`: the launcher's pipes are let go (it exits), stderr goes to `log`.
pub fn leave_launcher(log: &File) -> io::Result<()> {
    let null = OpenOptions::new().read(true).write(true).open("NUL")?;
    // The handles must outlive every later write through them: kept for the process's
    // life on purpose.
    let log = log.try_clone()?;
    // SAFETY: the handles are open and, leaked below, stay open for the process's life.
    unsafe {
        SetStdHandle(STD_INPUT_HANDLE, null.as_raw_handle());
        SetStdHandle(STD_OUTPUT_HANDLE, null.as_raw_handle());
        SetStdHandle(STD_ERROR_HANDLE, log.as_raw_handle());
    }
    std::mem::forget(null);
    std::mem::forget(log);
    let _ = io::stdout().flush();
    Ok(())
}

/// DPAPI under Wine (`scripts/windows.sh`), which implements `CryptProtectData`.
#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_key_round_trips_through_dpapi_and_the_blob_hides_it() {
        let protected = protect_key(KEY).unwrap().expect("Windows protects the key");
        assert!(protected.len() > KEY.len());
        assert!(
            !protected.windows(KEY.len()).any(|w| w == KEY),
            "the key is not in the blob in clear"
        );
        assert_eq!(unprotect_key(&protected).unwrap().as_slice(), KEY);
    }

    #[test]
    fn a_damaged_blob_or_one_this_account_cannot_open_is_a_clear_error() {
        let protected = protect_key(KEY).unwrap().unwrap();
        let mut damaged = protected.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x55;
        let e = unprotect_key(&damaged).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("another account"), "{e}");
        assert!(unprotect_key(&protected[..protected.len() / 2]).is_err());
        assert!(unprotect_key(b"").is_err());

        // Protected with other entropy: DPAPI refuses it as it refuses another account's
        // blob (Wine runs one account, so that case itself is not run here).
        let foreign = dpapi_protect(KEY, Some(b"another account")).unwrap();
        let e = unprotect_key(&foreign).unwrap_err();
        assert!(e.to_string().contains("CryptUnprotectData"), "{e}");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }
}
