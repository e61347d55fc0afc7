//! What the multi-process tests share: starting `node` processes on port 0.
//!
//! A member binds port 0 and prints the address it bound (`listening HOST:PORT`) as its first
//! line; members are started one after the other, each given the addresses of those already
//! running and the bare ids of those still to come (they dial it). No port is ever picked in
//! advance, so no other process can take it in between.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The members of a test cluster: every id, and the address of each one started so far.
#[derive(Debug, Clone)]
pub struct Members {
    /// Every member's id.
    pub all: Vec<u32>,
    /// The bound address of each member started so far (the latest incarnation's).
    pub addrs: BTreeMap<u32, String>,
}

impl Members {
    /// A cluster of these ids, none started.
    pub fn new(all: impl IntoIterator<Item = u32>) -> Members {
        Members {
            all: all.into_iter().collect(),
            addrs: BTreeMap::new(),
        }
    }

    /// Adds `--listen 127.0.0.1:0` and one `--peer` per other member to `cmd`, spawns it with
    /// its standard output piped, waits for its `listening` line and records the address.
    /// Returns the child and its output, positioned after that line.
    ///
    /// # Panics
    /// When the process cannot be spawned or exits before it prints its address.
    pub fn spawn(&mut self, id: u32, cmd: &mut Command) -> (Child, BufReader<ChildStdout>) {
        cmd.args(["--id", &id.to_string()])
            .args(["--listen", "127.0.0.1:0"]);
        for &p in &self.all {
            if p == id {
                continue;
            }
            match self.addrs.get(&p) {
                Some(a) => cmd.args(["--peer", &format!("{p}={a}")]),
                None => cmd.args(["--peer", &p.to_string()]),
            };
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).expect("read the node's output");
            assert!(n > 0, "node {id} exited before printing its address");
            if let Some(addr) = line.trim().strip_prefix("listening ") {
                self.addrs.insert(id, addr.to_owned());
                break;
            }
        }
        (child, out)
    }
}

/// Removes a test's folder when the test ends well; a failed test keeps it for inspection.
#[derive(Debug)]
#[allow(dead_code)] // not every test file keeps a folder
pub struct RemovedOnSuccess(pub std::path::PathBuf);

impl Drop for RemovedOnSuccess {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
