//! Private folders and atomic files: the few file-system rules every part shares.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) with mode 0700 set at creation, or checks that an
/// existing `dir` is ours and closed to group and others, like git's
/// `credential-cache--daemon` does for its socket folder.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
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
    let meta = fs::metadata(dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("failed to inspect {}: {e}", dir.display()),
        )
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {}: it belongs to uid {}, not to you (uid {me})",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to use {dir}: group or others can reach it (mode {mode:04o}); \
                 other users could reach your credentials. Fix it with: chmod 700 {dir}",
                dir = dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a fresh temporary file with `mode`,
/// fsync, rename over `path`, fsync of the folder. A crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
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
    use nix::fcntl::OFlag;
    let file = options
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::libc::ELOOP => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing {}: it is a symbolic link", path.display()),
            ),
            _ => io::Error::new(e.kind(), format!("failed to open {}: {e}", path.display())),
        })?;
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing {}: it is not a regular file", path.display()),
        ));
    }
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing {}: it belongs to uid {}, not to you (uid {me})",
                path.display(),
                meta.uid()
            ),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Runs `f` while holding an exclusive `flock(2)` on `lock_path` (created 0600 if
/// missing), so that read-modify-write edits of one file by several processes never
/// interleave: each one reads what the one before it wrote. The lock goes with the file
/// descriptor, so a killed editor never leaves it held.
pub fn with_file_lock<T>(lock_path: &Path, f: impl FnOnce() -> T) -> io::Result<T> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)?;
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    Ok(f())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_private_refuses_links_fifos_and_files_of_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs.txt");
        fs::write(&theirs, "not yours\n").unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&theirs, &link).unwrap();
        let e = open_private(&link, fs::OpenOptions::new().append(true).create(true)).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&theirs).unwrap(), "not yours\n");
        assert_eq!(
            fs::metadata(&theirs).unwrap().permissions().mode() & 0o777,
            0o644,
            "not chmodded"
        );

        let fifo = dir.path().join("helperd.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_private(&fifo, fs::OpenOptions::new().read(true)).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        if nix::unistd::geteuid().is_root() {
            let foreign = dir.path().join("socket.lock");
            fs::write(&foreign, "").unwrap();
            nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let e = open_private(&foreign, fs::OpenOptions::new().read(true)).unwrap_err();
            assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        }

        let mine = dir.path().join("mine.log");
        fs::write(&mine, "").unwrap();
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o644)).unwrap();
        open_private(&mine, fs::OpenOptions::new().append(true)).unwrap();
        assert_eq!(
            fs::metadata(&mine).unwrap().permissions().mode() & 0o777,
            0o600,
            "closed to others"
        );
    }

    #[test]
    fn creates_0700_and_refuses_loose_folders() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let err = create_private_dir(&dir).unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_with_mode() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
