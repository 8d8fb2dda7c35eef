//! Private folders and atomic files: the few file-system rules every part shares.

use std::fs;
use std::io::{self, Write};

use crate::os;
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700 set at creation, or checks that an
/// existing `dir` is ours and closed to group and others, like git's
/// `credential-cache--daemon` does for its socket folder.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    match os::private_dir_builder().recursive(true).create(dir) {
        Ok(()) => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("failed to create {}: {e}", dir.display()),
            ))
        }
    }
    check_private_dir(dir)
}

/// Refuses a folder that another user owns or that group/others can reach.
pub fn check_private_dir(dir: &Path) -> io::Result<()> {
    os::check_private_dir(dir)
}

/// Writes `bytes` to `path` atomically and durably: a fresh private temporary file (0600),
/// fsync, rename over `path`, fsync of the folder. A crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with_mode(path, bytes, None)
}

/// [`write_atomic`] for a file the user owns and may have opened to others (config.toml,
/// an SSH config): the new file keeps the old one's mode (0600 when there was none).
pub fn write_atomic_keeping_mode(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mode = fs::metadata(path).ok().and_then(|m| os::mode_of(&m));
    write_atomic_with_mode(path, bytes, mode)
}

fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = os::private_file_options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(mode) = mode {
            os::set_mode(&file, mode)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        os::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Opens a file of the daemon's own folders with `options` (mode 0600 when created), never
/// through a symbolic link, never waiting on a FIFO or a device, and only when it is a
/// regular file of ours: a file planted there by someone else (a link to a file of theirs,
/// say) is refused, not written to or chmodded. A file of ours that others can read is
/// closed to them (0600).
pub fn open_private(path: &Path, options: &mut fs::OpenOptions) -> io::Result<fs::File> {
    let file = os::no_follow(options)
        .open(path)
        .map_err(|e| match os::is_link_refusal(&e) {
            true => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing {}: it is a symbolic link", path.display()),
            ),
            false => io::Error::new(e.kind(), format!("failed to open {}: {e}", path.display())),
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing {}: it is not a regular file", path.display()),
        ));
    }
    os::claim_private_file(path, &file)?;
    Ok(file)
}

/// Runs `f` while holding an exclusive lock on `lock_path` (created 0600 if missing;
/// `flock(2)` on Unix, `LockFileEx` on Windows), so that read-modify-write edits of one
/// file by several processes never interleave: each one reads what the one before it
/// wrote. The lock goes with the open file, so a killed editor never leaves it held.
pub fn with_file_lock<T>(lock_path: &Path, f: impl FnOnce() -> T) -> io::Result<T> {
    let file = os::private_file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)?;
    file.lock()?;
    let result = f();
    drop(file);
    Ok(result)
}
