//! Reading the system policy file (an edge: the rules themselves are pure, in
//! `crate::policy`). The policy restricts the user, so a file the user could have written
//! restricts nothing: [`load`] refuses the file when the file itself, or the folder holding
//! it, is not owned by root (uid 0), or is writable by group or others. A symlink is
//! followed only when its target passes the same checks, and the folder holding each link
//! must pass them too (whoever can write that folder can re-point the link). The checks on
//! the file are made on the opened file descriptor, so the text read is the text that was
//! checked. [`load_trusting`] takes the trusted owner as a parameter, so that tests (which
//! run as root in CI) can exercise the rule with a throwaway uid.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{Policy, PolicyError, POLICY_ENV};
use crate::os::SYSTEM_POLICY_PATH;

/// The policy file to use: `$HELPERD_POLICY` when set and not empty, else
/// [`SYSTEM_POLICY_PATH`].
pub fn policy_path() -> PathBuf {
    std::env::var_os(POLICY_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY_PATH))
}

/// Loads the policy file, trusting it only when root owns it and its folder and nobody
/// else can write either (see the module docs). A missing file is no policy: `Ok(None)`.
pub fn load(path: &Path) -> Result<Option<Policy>, PolicyError> {
    load_trusting(path, 0)
}

/// [`load`] with another trusted owner than root, for tests.
pub fn load_trusting(path: &Path, trusted_owner: u32) -> Result<Option<Policy>, PolicyError> {
    match read_trusted(path, trusted_owner)? {
        Some(text) => Policy::parse(&text, path).map(Some),
        None => Ok(None),
    }
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Symlinks followed at most, as the kernel's own limit (`ELOOP`).
const MAX_LINKS: usize = 40;

/// Reads the file after the trust checks; `None` when there is no file at all.
fn read_trusted(path: &Path, owner: u32) -> Result<Option<String>, PolicyError> {
    let Some(target) = follow_links(path, owner)? else {
        return Ok(None);
    };
    // O_NOFOLLOW: `target` was no link a moment ago, so one there now is a swap under us.
    // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; what is not a
    // regular file is refused just below, before anything is read.
    let mut file = crate::os::no_follow(fs::OpenOptions::new().read(true))
        .open(&target)
        .map_err(|e| io_error(path, e))?;
    // Checked on the open descriptor: the text read below is the file that was checked.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(io_error(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"),
        ));
    }
    check_trusted(path, &target, &meta, owner, "the file", 0o644)?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| io_error(path, e))?;
    Ok(Some(text))
}

/// Follows the symlinks at `path` one by one, checking the folder holding each link and
/// the file: whoever can write one of those folders can re-point a link or swap the file.
/// Returns the file reached (not a link), or `None` when `path` itself does not exist; a
/// dangling link is an error, not "no policy".
fn follow_links(path: &Path, owner: u32) -> Result<Option<PathBuf>, PolicyError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&current) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && current == path => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let why = format!("it links to {}, which does not exist", current.display());
                return Err(io_error(path, io::Error::new(e.kind(), why)));
            }
            Err(e) => return Err(io_error(path, e)),
            Ok(meta) => meta,
        };
        let folder = folder_of(&current);
        let folder_meta = fs::metadata(folder).map_err(|e| io_error(folder, e))?;
        // Named without `..` or links in messages and in the fix command.
        let shown = fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        check_trusted(path, &shown, &folder_meta, owner, "its folder", 0o755)?;
        if !meta.file_type().is_symlink() {
            return Ok(Some(current));
        }
        let target = fs::read_link(&current).map_err(|e| io_error(path, e))?;
        // A relative target is relative to the link's folder; an absolute one replaces it.
        current = folder.join(target);
    }
    let why = format!("more than {MAX_LINKS} symbolic links to follow");
    Err(io_error(path, io::Error::other(why)))
}

/// Refuses `target` (the policy file or a folder holding it) when it is not owned by
/// `owner` or group or others may write it. `mode`: the mode the fix sets.
fn check_trusted(
    policy: &Path,
    target: &Path,
    meta: &fs::Metadata,
    owner: u32,
    what: &str,
    mode: u32,
) -> Result<(), PolicyError> {
    let owner_name = if owner == 0 {
        "root".to_string()
    } else {
        format!("uid {owner}")
    };
    // Where files have no uid and mode (Windows), their access list says who may
    // change them.
    let writers = crate::os::untrusted_writers(target).map_err(|e| io_error(policy, e))?;
    if !writers.is_empty() {
        return Err(PolicyError::Untrusted {
            path: policy.display().to_string(),
            why: format!(
                "{what} {} may be changed by {}, so someone other than an administrator \
                 could have changed the policy",
                target.display(),
                writers.join(", ")
            ),
            fix: format!(
                "icacls \"{}\" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F \
                 *S-1-5-32-545:RX (as an administrator)",
                target.display()
            ),
        });
    }
    let why = match (crate::os::owner_of(meta), crate::os::mode_of(meta)) {
        (Some(uid), _) if uid != owner => format!(
            "{what} {} belongs to uid {uid}, not to {owner_name}",
            target.display(),
        ),
        (_, Some(mode)) if mode & 0o022 != 0 => format!(
            "{what} {} is writable by group or others (mode {mode:04o})",
            target.display(),
        ),
        _ => return Ok(()),
    };
    let chown = if owner == 0 {
        "root:root".to_string()
    } else {
        owner.to_string()
    };
    Err(PolicyError::Untrusted {
        path: policy.display().to_string(),
        why: format!("{why}, so someone other than {owner_name} could have changed the policy"),
        fix: format!(
            "sudo chown {chown} {t} && sudo chmod {mode:o} {t}",
            t = target.display()
        ),
    })
}

fn io_error(path: &Path, source: io::Error) -> PolicyError {
    PolicyError::Io {
        path: path.display().to_string(),
        source,
    }
}

// The rules tested below are about Unix file modes and owners (Windows: see `os::windows`).
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::policy::PolicySource;
    use std::os::unix::fs::PermissionsExt;

    /// A policy file in a fresh folder, both owned by us with the usual modes.
    fn policy_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temp folder can be made");
        set_mode(dir.path(), 0o755);
        let file = dir.path().join("policy.toml");
        fs::write(&file, text).expect("the temp folder is writable");
        set_mode(&file, 0o644);
        (dir, file)
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("we own the temp files");
    }

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn untrusted(result: Result<Option<Policy>, PolicyError>) -> (String, String, String) {
        match result {
            Err(PolicyError::Untrusted { path, why, fix }) => (path, why, fix),
            other => panic!("expected an Untrusted error, got {other:?}"),
        }
    }

    #[test]
    fn a_trusted_file_loads_and_a_missing_one_is_no_policy() {
        let (dir, file) = policy_dir("max_days = 30\n");
        let policy = load_trusting(&file, me()).unwrap().unwrap();
        assert_eq!(policy.max_days, Some(30));
        assert!(load_trusting(&dir.path().join("none.toml"), me())
            .unwrap()
            .is_none());
        if me() == 0 {
            assert_eq!(load(&file).unwrap().unwrap().max_days, Some(30));
        }
        // A parse error names the path given, not the resolved one.
        fs::write(&file, "max_days = 0\n").unwrap();
        let e = load_trusting(&file, me()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:1: max_days must be from 1 to 3650 days, not 0",
                file.display()
            )
        );
    }

    #[test]
    fn a_file_writable_by_others_is_refused() {
        let (_dir, file) = policy_dir("max_days = 30\n");
        for mode in [0o666, 0o664, 0o646] {
            set_mode(&file, mode);
            let (path, why, fix) = untrusted(load_trusting(&file, me()));
            let f = file.display();
            assert_eq!(path, f.to_string());
            assert!(
                why.starts_with(&format!(
                    "the file {f} is writable by group or others (mode {mode:04o}), so someone \
                     other than"
                )),
                "{why}"
            );
            assert!(
                fix.ends_with(&format!(" {f} && sudo chmod 644 {f}")),
                "{fix}"
            );
        }
    }

    #[test]
    fn a_folder_writable_by_others_is_refused() {
        let (dir, file) = policy_dir("max_days = 30\n");
        set_mode(dir.path(), 0o777);
        let (_, why, fix) = untrusted(load_trusting(&file, me()));
        let d = dir.path().display();
        assert!(
            why.starts_with(&format!(
                "its folder {d} is writable by group or others (mode 0777)"
            )),
            "{why}"
        );
        assert!(
            fix.ends_with(&format!(" {d} && sudo chmod 755 {d}")),
            "{fix}"
        );
    }

    #[test]
    fn a_symlink_is_followed_only_to_a_trusted_target() {
        let (good_dir, good) = policy_dir("max_days = 30\n");
        let (_link_dir, link_base) = policy_dir("");
        let link = link_base.with_file_name("link.toml");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert_eq!(
            load_trusting(&link, me()).unwrap().unwrap().max_days,
            Some(30)
        );
        // The target turns world-writable: refused through the link too.
        set_mode(&good, 0o666);
        let (path, why, _) = untrusted(load_trusting(&link, me()));
        assert_eq!(path, link.display().to_string());
        assert!(why.contains(&good.display().to_string()), "{why}");
        // The target's folder is loose.
        set_mode(&good, 0o644);
        set_mode(good_dir.path(), 0o757);
        let (_, why, _) = untrusted(load_trusting(&link, me()));
        assert!(why.starts_with("its folder"), "{why}");
        // A dangling link is an error, not "no policy".
        set_mode(good_dir.path(), 0o755);
        fs::remove_file(&good).unwrap();
        let e = load_trusting(&link, me()).unwrap_err();
        assert!(matches!(e, PolicyError::Io { .. }), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "it links to {}, which does not exist",
                good.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn every_link_of_a_chain_must_sit_in_a_trusted_folder() {
        let (_good_dir, good) = policy_dir("max_days = 30\n");
        let (loose, _) = policy_dir("");
        let (_first_dir, first_base) = policy_dir("");
        let middle = loose.path().join("middle.toml");
        let first = first_base.with_file_name("first.toml");
        std::os::unix::fs::symlink(&good, &middle).unwrap();
        // A relative link, resolved from the link's own folder.
        std::os::unix::fs::symlink(
            Path::new("..")
                .join(loose.path().file_name().unwrap())
                .join("middle.toml"),
            &first,
        )
        .unwrap();
        assert_eq!(
            load_trusting(&first, me()).unwrap().unwrap().max_days,
            Some(30)
        );
        set_mode(loose.path(), 0o775);
        let (path, why, _) = untrusted(load_trusting(&first, me()));
        assert_eq!(path, first.display().to_string());
        assert!(
            why.starts_with(&format!("its folder {}", loose.path().display())),
            "{why}"
        );
    }

    #[test]
    fn a_link_in_a_loose_folder_is_refused() {
        let (_good_dir, good) = policy_dir("max_days = 30\n");
        let (loose, _) = policy_dir("");
        set_mode(loose.path(), 0o777);
        let link = loose.path().join("link.toml");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        let (_, why, _) = untrusted(load_trusting(&link, me()));
        assert!(
            why.starts_with(&format!("its folder {}", loose.path().display())),
            "{why}"
        );
    }

    /// Needs root to hand files to another uid; CI runs as root.
    #[test]
    fn a_file_owned_by_another_uid_is_refused() {
        if me() != 0 {
            eprintln!("skipped: changing a file's owner needs root");
            return;
        }
        const NOBODY: u32 = 65_534;
        let nobody = Some(nix::unistd::Uid::from_raw(NOBODY));
        let (dir, file) = policy_dir("max_days = 30\n");
        nix::unistd::chown(&file, nobody, None).expect("root can chown");
        let (_, why, fix) = untrusted(load(&file));
        let f = file.display();
        assert_eq!(
            why,
            format!(
                "the file {f} belongs to uid 65534, not to root, so someone other than root \
                 could have changed the policy"
            )
        );
        assert_eq!(
            fix,
            format!("sudo chown root:root {f} && sudo chmod 644 {f}")
        );
        let e = load(&file).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "refusing the system policy {f}: the file {f} belongs to uid 65534"
            )),
            "{e}"
        );
        // Trusting that uid instead: the folder (still root's) is now the problem...
        let (_, why, _) = untrusted(load_trusting(&file, NOBODY));
        assert!(why.starts_with("its folder"), "{why}");
        // ...and once it is handed over too, the file is accepted.
        nix::unistd::chown(dir.path(), nobody, None).expect("root can chown");
        let policy = load_trusting(&file, NOBODY).unwrap().unwrap();
        assert_eq!(policy.max_days, Some(30));
        let (_, why, _) = untrusted(load(&file));
        assert!(why.contains("belongs to uid 65534, not to root"), "{why}");
    }

    #[test]
    fn the_path_comes_from_the_environment_or_the_default() {
        // Only reads the variable: tests must not set process-wide environment.
        let expected = std::env::var_os(POLICY_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from(SYSTEM_POLICY_PATH), PathBuf::from);
        assert_eq!(policy_path(), expected);
        assert_eq!(
            PolicySource::new("/p.toml").to_string(),
            "the system policy (/p.toml)"
        );
    }

    #[test]
    fn a_fifo_as_the_policy_is_refused_at_once() {
        let (dir, _) = policy_dir("max_days = 30\n");
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let path = fifo.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                load_trusting(&path, me())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        });
        // No writer ever opens the FIFO: a blocking open would never return.
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("loading a FIFO returns at once");
        let e = result.unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
