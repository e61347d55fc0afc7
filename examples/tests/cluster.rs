//! Multi-process tests of the `node` binary on 127.0.0.1: a 3-node ping run whose merged logs
//! must form one vector-clock history, and a `kill -9` / restart of a member.
//!
//! All waits are deadlines on events (process exit, an output line, a membership event).

use actix::prelude::*;
use actix_coord::net::{Node, NodeEvent, RemoteAddr, RemoteError};
use actix_coord::remote_message;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;
use support::Members;

const NODE: &str = env!("CARGO_BIN_EXE_node");

fn log_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("actix-coord-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// How a node process secures its links.
enum Security {
    /// `--secret`.
    Secret,
    /// `--tls-*` files from this folder (written by `node gen-certs`).
    Tls(PathBuf),
}

/// Runs `node gen-certs --out DIR --nodes 1..3` and returns the folder.
fn gen_certs(dir: &Path) -> PathBuf {
    let out = Command::new(NODE)
        .args(["gen-certs", "--nodes", "1..3", "--out"])
        .arg(dir)
        .output()
        .expect("run gen-certs");
    assert!(out.status.success(), "{out:?}");
    for f in ["ca.pem", "ca-key.pem", "node1.pem", "node3-key.pem"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    dir.to_owned()
}

/// A running node process, its stdout lines arriving on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(id: u32, members: &mut Members, dir: &Path, workload: &str) -> Proc {
        Self::spawn_with(id, members, dir, workload, &Security::Secret, &[])
    }

    fn spawn_with(
        id: u32,
        members: &mut Members,
        dir: &Path,
        workload: &str,
        security: &Security,
        extra: &[&str],
    ) -> Proc {
        let mut cmd = Command::new(NODE);
        match security {
            Security::Secret => {
                cmd.args(["--secret", "integration secret"]);
            }
            Security::Tls(certs) => {
                cmd.arg("--tls-cert")
                    .arg(certs.join(format!("node{id}.pem")))
                    .arg("--tls-key")
                    .arg(certs.join(format!("node{id}-key.pem")))
                    .arg("--tls-ca")
                    .arg(certs.join("ca.pem"));
            }
        }
        cmd.arg("--log-dir")
            .arg(dir)
            .args(["--workload", workload, "--count", "10"])
            .args(extra);
        if !extra.contains(&"--wait-secs") {
            cmd.args(["--wait-secs", "20"]);
        }
        let (child, out) = members.spawn(id, &mut cmd);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Waits for an output line containing `what`.
    fn expect_line(&self, what: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line {what:?} within {within:?}"),
            }
        }
    }

    /// As [`expect_line`](Self::expect_line), without blocking the async runtime.
    async fn expect_line_async(&self, what: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            match self.lines.try_recv() {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => continue,
                Err(mpsc::TryRecvError::Empty) => {}
                Err(e) => panic!("no line {what:?}: {e}"),
            }
            assert!(Instant::now() < end, "no line {what:?} within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn wait_exit(&mut self, within: Duration) -> i32 {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "node did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_jsonl(dir: &Path) -> Vec<Value> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                v.push(serde_json::from_str(l).unwrap());
            }
        }
    }
    v
}

fn clock(e: &Value) -> HashMap<String, u64> {
    e["clock"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn three_node_processes_form_one_consistent_vector_clock_history() {
    let dir = log_dir("ping");
    let mut members = Members::new(1..=3);
    let mut procs: Vec<Proc> = (1..=3)
        .map(|i| Proc::spawn(i, &mut members, &dir, "ping"))
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        let line = p.expect_line("request/replies", Duration::from_secs(60));
        assert!(line.contains("20 request/replies with 2 peers"), "{line}");
        assert!(line.contains(" 0 errors"), "{line}");
        assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "node {}", i + 1);
    }
    for i in 1..=3 {
        assert!(dir.join(format!("node{i}.log")).exists());
    }
    let events = read_jsonl(&dir);
    // Pair each receive with its send by message id: the receive's clock dominates the send's,
    // and is strictly later on the receiver's own entry.
    let sends: HashMap<&str, &Value> = events
        .iter()
        .filter(|e| e["kind"] == "send")
        .map(|e| (e["msg"].as_str().unwrap(), e))
        .collect();
    let mut cross_node = 0;
    let mut receives = 0;
    for r in events.iter().filter(|e| e["kind"] == "receive") {
        receives += 1;
        let id = r["msg"].as_str().unwrap();
        let s = sends.get(id).unwrap_or_else(|| panic!("no send for {id}"));
        let (rc, sc) = (clock(r), clock(s));
        for (k, v) in &sc {
            assert!(
                rc.get(k).copied().unwrap_or(0) >= *v,
                "{id}: {k} {rc:?} < {sc:?}"
            );
        }
        let host = r["host"].as_str().unwrap();
        assert!(rc[host] > sc.get(host).copied().unwrap_or(0));
        if r["process"].as_str().unwrap().split('.').next()
            != s["process"].as_str().unwrap().split('.').next()
        {
            cross_node += 1;
        }
    }
    // 3 nodes × 2 peers × (10 pings + 1 done) requests, each a request and a reply.
    assert_eq!(cross_node, 3 * 2 * 11 * 2);
    assert_eq!(receives, sends.len());
    // ShiViz's rule: a host's k-th event has clock[host] == k.
    let mut count: HashMap<String, u64> = HashMap::new();
    for e in &events {
        let host = e["host"].as_str().unwrap().to_owned();
        let k = count.entry(host.clone()).or_default();
        *k += 1;
        assert_eq!(clock(e)[&host], *k, "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);
remote_message!(Ping);

async fn event(
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    want: NodeEvent,
    within: Duration,
) {
    tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(e)
                    if std::mem::discriminant(&e) == std::mem::discriminant(&want)
                        && e_node(&e) == e_node(&want) =>
                {
                    return;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} within {within:?}"));
}

fn e_node(e: &NodeEvent) -> u32 {
    match e {
        NodeEvent::MemberUp { node }
        | NodeEvent::MemberDown { node, .. }
        | NodeEvent::Reconnected { node }
        | NodeEvent::TellsLost { node, .. } => *node,
    }
}

#[actix_rt::test]
async fn kill_9_is_detected_within_the_timeout_and_a_restart_resumes_traffic() {
    let dir = log_dir("kill");
    // Node 1 runs in this process; 2 and 3 are `node --workload serve` processes. Every node
    // binds port 0; 2 and 3 dial the members started before them.
    let node1 = Node::builder()
        .id(1)
        .listen("127.0.0.1:0")
        .secret("integration secret")
        .member(2)
        .member(3)
        .start()
        .await
        .unwrap();
    let mut members = Members::new(1..=3);
    members.addrs.insert(1, node1.local_addr().to_owned());
    let mut ev = node1.subscribe();
    let mut p2 = Proc::spawn(2, &mut members, &dir, "serve");
    let p3 = Proc::spawn(3, &mut members, &dir, "serve");
    let up = Duration::from_secs(20);
    event(&mut ev, NodeEvent::MemberUp { node: 2 }, up).await;
    p3.expect_line_async("event MemberUp 2", up).await;
    let to2: RemoteAddr<Ping> = RemoteAddr::new(&node1, 2, "pong");
    let end = Instant::now() + up;
    while !node1.is_up(3) {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(to2.send(Ping(1)).await, Ok(2));

    // kill -9 node 2.
    p2.child.kill().unwrap();
    let killed = Instant::now();
    event(
        &mut ev,
        NodeEvent::MemberDown {
            node: 2,
            reason: actix_coord::net::DownReason::Closed,
        },
        Duration::from_secs(1),
    )
    .await;
    assert!(killed.elapsed() <= Duration::from_secs(1));
    p3.expect_line_async("event MemberDown 2", Duration::from_secs(1))
        .await;
    // Sends to the dead member fail fast.
    let t = Instant::now();
    assert_eq!(to2.send(Ping(1)).await, Err(RemoteError::PeerDown(2)));
    assert!(t.elapsed() < Duration::from_millis(100));

    // Restart: MemberUp on both survivors, and traffic resumes.
    // The new incarnation binds a new port and dials both survivors.
    let _p2b = Proc::spawn(2, &mut members, &dir, "serve");
    event(&mut ev, NodeEvent::MemberUp { node: 2 }, up).await;
    p3.expect_line_async("event MemberUp 2", up).await;
    assert_eq!(to2.send(Ping(41)).await, Ok(42));
    node1.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three `node` processes with certificates from `node gen-certs` run the ping and the counter
/// workloads over mutual TLS; a node whose certificate comes from another CA is refused by both
/// and nothing it sends reaches an actor.
#[test]
fn three_processes_over_mutual_tls_and_a_foreign_ca_is_refused() {
    let dir = log_dir("tls");
    let certs = gen_certs(&dir.join("certs"));
    let tls = Security::Tls(certs.clone());

    // Ping over TLS.
    let mut members = Members::new(1..=3);
    let mut procs: Vec<Proc> = (1..=3)
        .map(|i| Proc::spawn_with(i, &mut members, &dir.join("ping"), "ping", &tls, &[]))
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        let line = p.expect_line("request/replies", Duration::from_secs(60));
        assert!(line.contains("20 request/replies with 2 peers"), "{line}");
        assert!(line.contains(" 0 errors"), "{line}");
        assert_eq!(p.wait_exit(Duration::from_secs(10)), 0, "node {}", i + 1);
    }

    // The counter over TLS: 3 × 10 acquisitions of a Ricart–Agrawala lock.
    let resource = dir.join("counter");
    let res = resource.to_str().unwrap().to_owned();
    let counter = [
        "--lock",
        "ricart-agrawala",
        "--iterations",
        "10",
        "--resource",
        res.as_str(),
    ];
    let mut members = Members::new(1..=3);
    let mut procs: Vec<Proc> = (1..=3)
        .map(|i| {
            Proc::spawn_with(
                i,
                &mut members,
                &dir.join("counter-logs"),
                "counter",
                &tls,
                &counter,
            )
        })
        .collect();
    for (i, p) in procs.iter_mut().enumerate() {
        assert_eq!(
            p.wait_exit(Duration::from_secs(60)),
            0,
            "counter node {}",
            i + 1
        );
    }
    let file = std::fs::read_to_string(&resource).unwrap();
    assert!(file.starts_with("30 "), "counter file: {file:?}");

    // A foreign CA: node 3 holds a certificate for node-3 signed by another CA.
    let foreign = gen_certs(&dir.join("foreign"));
    let mut members = Members::new(1..=3);
    let serve: Vec<Proc> = (1..=2)
        .map(|i| Proc::spawn_with(i, &mut members, &dir.join("serve"), "serve", &tls, &[]))
        .collect();
    serve[1].expect_line("event MemberUp 1", Duration::from_secs(20));
    let mut bad = Proc::spawn_with(
        3,
        &mut members,
        &dir.join("serve"),
        "ping",
        &Security::Tls(foreign),
        &["--wait-secs", "2"],
    );
    // It never sees its peers up, gives up, and exits 1.
    assert_eq!(bad.wait_exit(Duration::from_secs(30)), 1);
    for p in &serve {
        while let Ok(l) = p.lines.try_recv() {
            assert!(!l.contains("MemberUp 3"), "{l}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
