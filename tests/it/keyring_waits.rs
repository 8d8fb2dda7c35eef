//! A keyring that does not answer (issue 17, DESIGN.md §7): a real gnome-keyring-daemon,
//! frozen with SIGSTOP the way an unlock dialog or a Keychain prompt holds every call,
//! stalls only the writes that need it. Reads and `status` are answered from memory; a
//! `store` answers within its wait and says the write goes on; the write lands once the
//! keyring answers; only a pending write can be lost, and exactly it.
//!
//! A frozen disk under the encrypted file store (`fsfreeze` on a loop-mounted ext4, the
//! way a hung NFS home or a stalled disk holds every write) takes the same path.
//!
//! The daemon's waits are set short through its environment (the write wait 500 ms, the
//! read wait 1.5 s, the stop wait 1 s): time is an argument, never a long sleep here.

use std::process::Output;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::secret_service::{sandbox_on, SecretServiceSession};
use crate::util::{
    assert_contains, assert_lacks, assert_ok, audit_json, ctl_ok, stderr, stdout, value,
    wait_until, Sandbox,
};

/// What every read (and `status`) must be answered within while the keyring is frozen.
const READ_BOUND: Duration = Duration::from_secs(1);
const WRITE_WAIT_MS: u64 = 500;

const TOKEN_HOST: &str = "tok.example.com";
const TOKEN: &str = "kw-token-5d1c9e7b2a";

/// A sandbox on `ss`'s keyring (no store forced: the Secret Service is chosen), with short
/// store waits.
fn sandbox(ss: &SecretServiceSession, queue: Option<usize>) -> Sandbox {
    let mut sb = sandbox_on(ss);
    with_short_waits(&mut sb);
    if let Some(n) = queue {
        sb.env.push(("HELPERD_STORE_QUEUE".into(), n.to_string()));
    }
    sb
}

/// The daemon's store waits, short (see the module docs).
fn with_short_waits(sb: &mut Sandbox) {
    for (k, v) in [
        ("HELPERD_STORE_WRITE_WAIT_MS", WRITE_WAIT_MS.to_string()),
        ("HELPERD_STORE_READ_WAIT_MS", "1500".into()),
        ("HELPERD_STOP_WAIT_MS", "1000".into()),
    ] {
        sb.env.push((k.into(), v));
    }
}

fn password(host: &str) -> String {
    format!("pw-{host}-8c2f")
}

fn approve(sb: &Sandbox, host: &str) -> Output {
    sb.credential(
        "approve",
        &format!(
            "protocol=https\nhost={host}\nusername=alice\npassword={}\n\n",
            password(host)
        ),
    )
}

fn fill(sb: &Sandbox, host: &str) -> Output {
    sb.credential("fill", &format!("protocol=https\nhost={host}\n\n"))
}

/// Runs `f`, returning what it returned and how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

#[track_caller]
fn assert_quick(took: Duration, what: &str) {
    assert!(
        took < READ_BOUND,
        "{what} took {took:?} while the keyring was frozen; it must be answered from memory within {READ_BOUND:?}"
    );
}

/// `fill` for `host` answers within the bound with `expected` as the password.
#[track_caller]
fn assert_fill_quick(sb: &Sandbox, host: &str, expected: &str, what: &str) {
    let (out, took) = timed(|| fill(sb, host));
    assert_quick(took, what);
    assert_ok(&out);
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some(expected),
        "{what}: not served\nstderr: {}\nlog:\n{}",
        stderr(&out),
        sb.log()
    );
}

/// `status --json`, answered within the bound; the store's part.
#[track_caller]
fn store_status_quick(sb: &Sandbox) -> serde_json::Value {
    let (text, took) = timed(|| ctl_ok(sb, &["status", "--json"]));
    assert_quick(took, "helperctl status --json");
    for secret in [TOKEN.to_string(), password("a.example.com")] {
        assert_lacks(&text, &secret, "status --json");
    }
    let status: serde_json::Value = serde_json::from_str(&text).expect("status --json is JSON");
    status["daemon"]["store"].clone()
}

/// A runtime with a token in the keyring, read once (so it is in memory).
fn runtime_with_token(sb: &Sandbox) {
    crate::util::generic_runtime_with_token(sb, "work", TOKEN_HOST, "tok-user", TOKEN);
}

/// Everything the table of issue 17 lists, row by row, then the keyring wakes up.
#[test]
fn a_frozen_keyring_stalls_only_its_writes_and_the_write_lands_when_it_wakes() {
    let ss = SecretServiceSession::start();
    let sb = sandbox(&ss, None);
    assert_ok(&approve(&sb, "a.example.com"));
    runtime_with_token(&sb);
    assert_fill_quick(&sb, "a.example.com", &password("a.example.com"), "warm-up");
    assert_eq!(store_status_quick(&sb)["kind"], "secret-service");

    ss.freeze();
    assert_fill_quick(
        &sb,
        "a.example.com",
        &password("a.example.com"),
        "get of a plain credential read before",
    );
    assert_fill_quick(
        &sb,
        TOKEN_HOST,
        TOKEN,
        "get of a runtime's token read before",
    );

    // The store itself answers within its wait, and says what happens.
    let (out, took) = timed(|| approve(&sb, "b.example.com"));
    assert_ok(&out);
    assert!(
        took < Duration::from_millis(WRITE_WAIT_MS) + READ_BOUND,
        "store took {took:?}; it must answer within its wait ({WRITE_WAIT_MS} ms)"
    );
    let notice = stderr(&out);
    assert_contains(&notice, "has not answered", "the store's notice");
    assert_contains(&notice, "helperctl status", "the store's notice");
    assert_eq!(
        notice.lines().filter(|l| l.starts_with("helperd:")).count(),
        1,
        "one stderr line:\n{notice}"
    );

    assert_fill_quick(
        &sb,
        "b.example.com",
        &password("b.example.com"),
        "get of the credential just stored",
    );
    assert_fill_quick(
        &sb,
        "a.example.com",
        &password("a.example.com"),
        "get of the credential read before, after the store",
    );

    let store = store_status_quick(&sb);
    assert_eq!(store["state"], "waiting", "{store:#}");
    assert_eq!(store["kind"], "secret-service");
    assert!(store["waiting_secs"].is_u64(), "{store:#}");
    let pending = store["pending_writes"].as_array().expect("pending writes");
    assert_eq!(pending.len(), 1, "{store:#}");
    assert_contains(
        pending[0].as_str().unwrap(),
        "plain credentials",
        "the pending write",
    );
    let (human, took) = timed(|| ctl_ok(&sb, &["status"]));
    assert_quick(took, "helperctl status");
    assert_contains(&human, "waiting", "status");
    assert_contains(&human, "pending writes", "status");

    ss.thaw();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let store = store_status_quick(&sb);
            store["state"] == "ok" && store.get("pending_writes").is_none()
        }),
        "the pending write did not land after the keyring woke: {:#}",
        store_status_quick(&sb)
    );
    // In the keyring now: a new daemon reads it from there.
    let stopped = ctl_ok(&sb, &["daemon", "stop"]);
    assert_lacks(&stopped, "dropped", "daemon stop with nothing pending");
    assert_fill_quick(
        &sb,
        "b.example.com",
        &password("b.example.com"),
        "the landed credential after a restart",
    );
    for file in crate::util::files_under(&sb.helperd_home()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        for secret in [TOKEN.to_string(), password("b.example.com")] {
            assert_lacks(&text, &secret, &file.display().to_string());
        }
    }
}

/// git's `erase` while the keyring is frozen: made in memory at once (no longer served),
/// and audited as pending with how many it erased there, not as nothing erased.
#[test]
fn an_erase_while_the_keyring_is_frozen_is_audited_as_pending() {
    let ss = SecretServiceSession::start();
    let sb = sandbox(&ss, None);
    assert_ok(&approve(&sb, "a.example.com"));
    assert_fill_quick(&sb, "a.example.com", &password("a.example.com"), "warm-up");

    ss.freeze();
    let out = sb.credential(
        "reject",
        &format!(
            "protocol=https\nhost=a.example.com\nusername=alice\npassword={}\n\n",
            password("a.example.com")
        ),
    );
    assert_ok(&out);
    assert_contains(&stderr(&out), "has not answered", "the erase's notice");
    let (out, took) = timed(|| fill(&sb, "a.example.com"));
    assert_quick(took, "get of the credential erased in memory");
    assert!(
        value(&stdout(&out), "password").is_none(),
        "the erased credential is still served:\n{}",
        stdout(&out)
    );
    let events = audit_json(&sb, &[]);
    let erased: Vec<_> = events.iter().filter(|e| e["event"] == "erased").collect();
    assert_eq!(erased.len(), 1, "{events:#?}");
    assert_eq!(
        erased[0]["reason"],
        "1 plain credential(s) erased in memory; pending: written when the store answers",
        "{events:#?}"
    );
    ss.thaw();
}

/// A daemon killed while a write waits for the keyring loses exactly that write.
#[test]
fn a_daemon_killed_while_a_write_waits_loses_exactly_that_write() {
    let ss = SecretServiceSession::start();
    let sb = sandbox(&ss, None);
    assert_ok(&approve(&sb, "a.example.com"));
    runtime_with_token(&sb);
    assert_fill_quick(&sb, "a.example.com", &password("a.example.com"), "warm-up");

    ss.freeze();
    let out = approve(&sb, "c.example.com");
    assert_contains(&stderr(&out), "has not answered", "the store's notice");
    assert_fill_quick(
        &sb,
        "c.example.com",
        &password("c.example.com"),
        "served from memory",
    );
    sb.kill_daemon(Signal::SIGKILL);
    ss.thaw();

    // A new daemon: the pending credential is gone, everything else is there.
    let out = fill(&sb, "c.example.com");
    assert!(
        value(&stdout(&out), "password").is_none(),
        "the write the keyring never took was served after a restart:\n{}",
        stdout(&out)
    );
    assert_fill_quick(
        &sb,
        "a.example.com",
        &password("a.example.com"),
        "an acknowledged credential after the restart",
    );
    assert_fill_quick(
        &sb,
        TOKEN_HOST,
        TOKEN,
        "an acknowledged token after the restart",
    );
}

/// A full store queue refuses the next write at once, reads go on, and `daemon stop` waits
/// its bounded time and says what it drops.
#[test]
fn a_full_store_queue_refuses_at_once_and_stop_says_what_it_drops() {
    let ss = SecretServiceSession::start();
    // One write running, two queued behind it.
    let sb = sandbox(&ss, Some(2));
    assert_ok(&approve(&sb, "a.example.com"));
    assert_fill_quick(&sb, "a.example.com", &password("a.example.com"), "warm-up");

    ss.freeze();
    for host in ["d1.example.com", "d2.example.com", "d3.example.com"] {
        let out = approve(&sb, host);
        assert_contains(&stderr(&out), "has not answered", "a queued store");
    }
    let (out, took) = timed(|| approve(&sb, "d4.example.com"));
    assert_quick(took, "a store refused by a full queue");
    let refusal = stderr(&out);
    assert_contains(&refusal, "3 writes already wait", "the refusal");
    assert_contains(&refusal, "nothing was changed", "the refusal");
    let out = fill(&sb, "d4.example.com");
    assert!(
        value(&stdout(&out), "password").is_none(),
        "a refused store was served:\n{}",
        stdout(&out)
    );
    assert_fill_quick(
        &sb,
        "d3.example.com",
        &password("d3.example.com"),
        "a queued credential",
    );
    assert_fill_quick(
        &sb,
        "a.example.com",
        &password("a.example.com"),
        "a read beside a full queue",
    );
    let store = store_status_quick(&sb);
    assert_eq!(store["pending_writes"].as_array().map(Vec::len), Some(3));

    let (out, took) = timed(|| {
        let mut c = sb.ctl();
        c.args(["daemon", "stop"]);
        c.output().expect("helperctl runs")
    });
    assert_ok(&out);
    assert!(
        took < Duration::from_secs(5),
        "daemon stop took {took:?} with a 1 s stop wait"
    );
    let said = stderr(&out);
    assert_contains(&said, "helperd stopped", "daemon stop");
    assert_contains(&said, "3 pending write(s) dropped", "daemon stop");
    assert!(sb.daemon_pid().is_none(), "the daemon still runs");
    ss.thaw();
}

/// A small ext4 file system mounted (through a loop device) on a folder the test owns,
/// which the test can freeze (`fsfreeze -f`: every write to it waits, as on a hung NFS
/// home) and thaw. Dropping it thaws and unmounts, whatever state the test left it in.
struct FreezableDisk {
    mount: std::path::PathBuf,
    _image_dir: tempfile::TempDir,
    frozen: bool,
}

impl FreezableDisk {
    /// Mounts a fresh 16 MiB ext4 at `mount` (created, mode 0700). Needs root and loop
    /// devices, as CI has.
    #[track_caller]
    fn mount_at(mount: &std::path::Path) -> FreezableDisk {
        let image_dir = tempfile::tempdir().expect("a temp folder can be made");
        let image = image_dir.path().join("disk.img");
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?} failed (this test needs root and loop devices): {}",
                stderr(&out)
            );
        };
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(16 << 20))
            .expect("the image can be made");
        run("mkfs.ext4", &["-q".as_ref(), image.as_os_str()]);
        std::fs::create_dir_all(mount).expect("the mount point can be made");
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount.as_os_str(),
            ],
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(mount, std::fs::Permissions::from_mode(0o700))
            .expect("the mounted folder can be made private");
        FreezableDisk {
            mount: mount.to_path_buf(),
            _image_dir: image_dir,
            frozen: false,
        }
    }

    fn fsfreeze(&mut self, flag: &str) {
        let out = std::process::Command::new("fsfreeze")
            .arg(flag)
            .arg(&self.mount)
            .output()
            .expect("fsfreeze runs");
        assert!(out.status.success(), "fsfreeze {flag}: {}", stderr(&out));
        self.frozen = flag == "-f";
    }

    fn freeze(&mut self) {
        self.fsfreeze("-f");
    }

    fn thaw(&mut self) {
        self.fsfreeze("-u");
    }
}

impl Drop for FreezableDisk {
    fn drop(&mut self) {
        if self.frozen {
            let _ = std::process::Command::new("fsfreeze")
                .arg("-u")
                .arg(&self.mount)
                .status();
        }
        // Lazily: a daemon of the test may still have a file open there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

/// The encrypted file store on a frozen disk: reads and `status` from memory, `store`
/// within its wait with the notice, the write landing in `secrets.enc` after the thaw.
#[test]
fn a_frozen_disk_under_the_file_store_stalls_only_its_writes() {
    let mut sb = Sandbox::new();
    with_short_waits(&mut sb);
    let mut disk = FreezableDisk::mount_at(&sb.helperd_home().join("data"));
    assert_ok(&approve(&sb, "a.example.com"));
    runtime_with_token(&sb);
    assert_fill_quick(&sb, "a.example.com", &password("a.example.com"), "warm-up");
    assert_fill_quick(&sb, TOKEN_HOST, TOKEN, "warm-up");
    assert_eq!(store_status_quick(&sb)["kind"], "file");
    let secrets = sb.helperd_home().join("data/secrets.enc");
    let before = std::fs::metadata(&secrets)
        .expect("secrets.enc")
        .modified()
        .unwrap();

    disk.freeze();
    let (out, took) = timed(|| approve(&sb, "b.example.com"));
    assert_ok(&out);
    assert!(
        took < Duration::from_millis(WRITE_WAIT_MS) + READ_BOUND,
        "store took {took:?} on a frozen disk; it must answer within its wait"
    );
    assert_contains(&stderr(&out), "has not answered", "the store's notice");
    assert_fill_quick(
        &sb,
        "b.example.com",
        &password("b.example.com"),
        "the credential just stored, disk frozen",
    );
    assert_fill_quick(
        &sb,
        "a.example.com",
        &password("a.example.com"),
        "a credential read before, disk frozen",
    );
    assert_fill_quick(&sb, TOKEN_HOST, TOKEN, "a token read before, disk frozen");
    let store = store_status_quick(&sb);
    assert_eq!(store["state"], "waiting", "{store:#}");
    assert_eq!(store["pending_writes"].as_array().map(Vec::len), Some(1));

    disk.thaw();
    assert!(
        wait_until(Duration::from_secs(15), || {
            store_status_quick(&sb).get("pending_writes").is_none()
        }),
        "the pending write did not land after the thaw"
    );
    let after = std::fs::metadata(&secrets)
        .expect("secrets.enc")
        .modified()
        .unwrap();
    assert!(after > before, "secrets.enc was not written after the thaw");
    ctl_ok(&sb, &["daemon", "stop"]);
    assert_fill_quick(
        &sb,
        "b.example.com",
        &password("b.example.com"),
        "the landed credential, read from secrets.enc by a new daemon",
    );
}
