//! Team runtimes from a real 3-node OpenBao Raft cluster (DESIGN.md §10, issue 10): the
//! runner keeps serving git through a leader change, keeps reading OpenBao through the
//! nodes left, and when every node is down serves what it read for `cache_secs` only.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bao_cluster::{BaoCluster, NODES};
use crate::team_common::{
    entry_for, team_runtime, team_sandbox_with_token, wait_for_version, TEAM,
};
use crate::util::{served, status_json, stderr, wait_until, Sandbox};

const TOKEN_V1: &str = "raft-tok-v1-Jm4sD";
const TOKEN_V2: &str = "raft-tok-v2-Wc9nT";
/// The git host the team runtime serves (git never contacts it in a `fill`).
const GIT_BASE: &str = "https://git.raft.test";

fn fill(sb: &Sandbox) -> std::process::Output {
    sb.credential(
        "fill",
        "protocol=https\nhost=git.raft.test\npath=team/app.git\n",
    )
}

/// A sandbox whose daemon reads the team runtimes from the cluster's nodes, in `order`.
fn raft_sandbox(cluster: &BaoCluster, order: &[usize], openbao_extra: &str) -> Sandbox {
    let addresses: Vec<String> = order.iter().map(|&i| cluster.addr(i)).collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    team_sandbox_with_token(&cluster.root_token, &addresses, openbao_extra, "")
}

/// One `git credential fill` of the load test.
struct Fill {
    started: Instant,
    /// The password git got, or git's stderr.
    got: Result<String, String>,
}

#[test]
fn a_thousand_fills_while_the_leader_is_killed_all_get_the_token_and_reads_go_on_through_the_survivors(
) {
    const FILLS: usize = 1000;
    const THREADS: usize = 4;
    const SPREAD: Duration = Duration::from_secs(60);
    const KILL_AT: Duration = Duration::from_secs(10);

    let test_start = Instant::now();
    let mut cluster = BaoCluster::start();
    let leader = cluster.leader().expect("the new cluster has a leader");
    // The leader first: it is the node the daemon talks to when it dies.
    let order: Vec<usize> = std::iter::once(leader)
        .chain((0..NODES).filter(|&i| i != leader))
        .collect();
    cluster.put(leader, &format!("{TEAM}/ci"), entry_for(GIT_BASE, TOKEN_V1));
    let sb = raft_sandbox(&cluster, &order, "refresh_secs = 1");
    wait_for_version(&sb, "ci", 1);
    assert_eq!(served(&fill(&sb)).as_deref(), Some(TOKEN_V1));

    let results: Mutex<Vec<Fill>> = Mutex::new(Vec::with_capacity(FILLS));
    let load_start = Instant::now();
    let (leader_change, new_leader, written_at, v2_seen_at) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let (sb, results) = (&sb, &results);
            s.spawn(move || {
                for k in (t..FILLS).step_by(THREADS) {
                    let due = load_start + SPREAD.mul_f64(k as f64 / FILLS as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let started = Instant::now();
                    let out = fill(sb);
                    let got = served(&out).ok_or_else(|| stderr(&out));
                    results.lock().unwrap().push(Fill { started, got });
                }
            });
        }

        // ~10 s in, the leader dies.
        std::thread::sleep(KILL_AT.saturating_sub(load_start.elapsed()));
        let killed_at = Instant::now();
        cluster.kill(leader);
        let new_leader = cluster.wait_for_leader(Duration::from_secs(30));
        let leader_change = killed_at.elapsed();
        assert_ne!(new_leader, leader);

        // The admin rotates the entry through a surviving node: the runner must still be
        // reading OpenBao (through the nodes left) to pick it up.
        cluster.put(
            new_leader,
            &format!("{TEAM}/ci"),
            entry_for(GIT_BASE, TOKEN_V2),
        );
        let written_at = Instant::now();
        let seen = wait_until(Duration::from_secs(20), || {
            team_runtime(&sb, "ci").is_some_and(|r| r["team"]["version"] == 2)
        });
        assert!(
            seen,
            "version 2, written through a surviving node, never showed: {:#}",
            status_json(&sb)
        );
        (leader_change, new_leader, written_at, Instant::now())
    });
    let load_time = load_start.elapsed();
    let pickup = v2_seen_at - written_at;

    let results = results.into_inner().unwrap();
    assert_eq!(results.len(), FILLS);
    let failures: Vec<&Fill> = results
        .iter()
        .filter(|f| !matches!(f.got.as_deref(), Ok(TOKEN_V1) | Ok(TOKEN_V2)))
        .collect();
    let stale: Vec<&Fill> = results
        .iter()
        .filter(|f| f.started > v2_seen_at && f.got.as_deref() != Ok(TOKEN_V2))
        .collect();
    let v2_served = results
        .iter()
        .filter(|f| f.got.as_deref() == Ok(TOKEN_V2))
        .count();
    // The daemon's trace log: each node skipped, and each read round that failed as a whole.
    let log = sb.log();
    let skipped = log.matches("OpenBao node did not answer").count();
    let failed_rounds = log
        .matches("reading the team runtimes from OpenBao failed")
        .count();
    eprintln!(
        "{FILLS} fills in {:.1} s ({THREADS} threads), {} failures; leader n{leader} killed \
         {:.1} s in, n{new_leader} leads {:.2} s later; version 2 served {:.2} s after it \
         was written ({v2_served} fills got it); the daemon skipped a node {skipped} times, \
         {failed_rounds} read rounds failed; whole test {:.1} s",
        load_time.as_secs_f64(),
        failures.len(),
        KILL_AT.as_secs_f64(),
        leader_change.as_secs_f64(),
        pickup.as_secs_f64(),
        test_start.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} of {FILLS} fills did not get the token; the first: {:?}",
        failures.len(),
        failures.first().map(|f| &f.got)
    );
    assert!(
        stale.is_empty(),
        "{} fills started after version 2 showed still got another answer: {:?}",
        stale.len(),
        stale.first().map(|f| &f.got)
    );
    // Picked up within a few refresh periods (refresh_secs = 1), through the survivors.
    assert!(
        pickup <= Duration::from_secs(5),
        "version 2 took {pickup:?} to be picked up"
    );

    // The daemon did meet the dead leader, went on to the next node, and never lacked an
    // answer: the standbys serve reads even before a new leader is elected.
    assert!(skipped >= 1, "the daemon never met the dead node:\n{log}");
    assert_eq!(failed_rounds, 0, "read rounds failed:\n{log}");

    let status = status_json(&sb);
    let openbao = &status["daemon"]["openbao"];
    assert!(
        openbao["error"].is_null(),
        "OpenBao reads are failing at the end: {status:#}"
    );
    assert!(openbao["failing_since"].is_null(), "{status:#}");
    assert!(!cluster.is_running(leader));
}

#[test]
fn with_every_node_down_secrets_serve_for_cache_secs_then_a_clear_error_and_a_restarted_quorum_serves_again(
) {
    let test_start = Instant::now();
    let mut cluster = BaoCluster::start();
    let leader = cluster.leader().expect("the new cluster has a leader");
    cluster.put(leader, &format!("{TEAM}/ci"), entry_for(GIT_BASE, TOKEN_V1));
    let order: Vec<usize> = (0..NODES).collect();
    let sb = raft_sandbox(&cluster, &order, "refresh_secs = 1\ncache_secs = 300");
    wait_for_version(&sb, "ci", 1);
    assert_eq!(served(&fill(&sb)).as_deref(), Some(TOKEN_V1));

    // Every node dies.
    for i in 0..NODES {
        cluster.kill(i);
    }
    let mut error = String::new();
    let reported = wait_until(Duration::from_secs(20), || {
        match status_json(&sb)["daemon"]["openbao"]["error"].as_str() {
            Some(e) => {
                error = e.to_string();
                true
            }
            None => false,
        }
    });
    assert!(
        reported,
        "status reports the failing OpenBao: {:#}",
        status_json(&sb)
    );
    assert!(error.contains("OpenBao is unreachable"), "{error}");

    // Within cache_secs: served from memory.
    let out = fill(&sb);
    assert_eq!(
        served(&out).as_deref(),
        Some(TOKEN_V1),
        "served from memory: {}",
        stderr(&out)
    );

    // Past cache_secs (the daemon's clock moves, nobody waits): a clear error, no token.
    sb.advance_clock(301);
    let out = fill(&sb);
    assert_eq!(served(&out), None, "not served after cache_secs");
    let err = stderr(&out);
    assert!(err.contains("OpenBao is unreachable"), "{err}");
    for i in 0..NODES {
        assert!(
            err.contains(&cluster.addr(i)),
            "names {}: {err}",
            cluster.addr(i)
        );
    }
    assert!(err.contains("cache_secs"), "{err}");
    assert!(!err.contains(TOKEN_V1), "{err}");

    // Two nodes come back (one alone has no quorum): Raft kept the data on disk, nobody
    // publishes again.
    let restart_at = Instant::now();
    cluster.restart(0);
    cluster.restart(1);
    let served_again = wait_until(Duration::from_secs(30), || {
        served(&fill(&sb)).as_deref() == Some(TOKEN_V1)
    });
    let back_after = restart_at.elapsed();
    assert!(
        served_again,
        "served again once a quorum answers: {:#}",
        status_json(&sb)
    );
    let status = status_json(&sb);
    assert!(status["daemon"]["openbao"]["error"].is_null(), "{status:#}");
    assert_eq!(team_runtime(&sb, "ci").unwrap()["team"]["version"], 1);
    eprintln!(
        "every node down: error reported, served from memory, refused after cache_secs; \
         2 nodes restarted and the token served again {:.1} s later; whole test {:.1} s",
        back_after.as_secs_f64(),
        test_start.elapsed().as_secs_f64()
    );
}
