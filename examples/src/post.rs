//! Part 2 of the tour: three nodes on loopback ports in one process, the same causality
//! across the network.
//!
//! A clerk on node 1 asks the archive on node 2 for a record (a remote request whose reply
//! carries the archive's clocks back), then files a note with the registry on node 3 (a remote
//! tell). Because the reply is merged before the clerk goes on, the archive's answer happened
//! before the registry's receipt, though the archive and the registry never talk. Every frame
//! carries Lamport, vector and hybrid clocks; the handshake authenticates both ends with the
//! cluster secret.

use actix::prelude::*;
use actix_coord::intercept::{CausalBuilder, CausalContext};
use actix_coord::net::{Node, NodeEvent, RemoteAddr, RemoteError};
use actix_coord::{remote_actor, remote_message};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Ask the archive for a record.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "String")]
pub struct Fetch(pub String);

/// File a note.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct File(pub String);

/// Start the clerk's errand.
#[derive(Message)]
#[rtype(result = "Result<String, RemoteError>")]
pub struct Errand;

remote_message!(Fetch = "tour.fetch", File = "tour.file");

/// The archive answers with a record.
pub struct Archive;
impl Actor for Archive {
    type Context = CausalContext<Self>;
}
impl Handler<Fetch> for Archive {
    type Result = String;
    fn handle(&mut self, m: Fetch, _: &mut Self::Context) -> String {
        tracing::info!(record = %m.0, "finds the record");
        format!("{}: risotto, 1978", m.0)
    }
}
remote_actor!(Archive: Fetch);

/// The registry files notes.
pub struct Registry {
    filed: Option<tokio::sync::oneshot::Sender<()>>,
}
impl Actor for Registry {
    type Context = CausalContext<Self>;
}
impl Handler<File> for Registry {
    type Result = ();
    fn handle(&mut self, m: File, _: &mut Self::Context) {
        tracing::info!(note = %m.0, "files the note");
        if let Some(tx) = self.filed.take() {
            let _ = tx.send(());
        }
    }
}
remote_actor!(Registry: File);

/// The clerk asks the archive, then writes to the registry.
pub struct Clerk {
    archive: RemoteAddr<Fetch>,
    registry: RemoteAddr<File>,
}
impl Actor for Clerk {
    type Context = CausalContext<Self>;
}
impl Handler<Errand> for Clerk {
    type Result = ResponseActFuture<Self, Result<String, RemoteError>>;
    fn handle(&mut self, _: Errand, _: &mut Self::Context) -> Self::Result {
        let ask = self.archive.send(Fetch("the cookbook".into()));
        Box::pin(
            actix::fut::wrap_future::<_, Self>(ask).map(|record, act, _| {
                let record = record?;
                tracing::info!(%record, "reads the record");
                act.registry.do_send(File(format!("seen: {record}")))?;
                Ok(record)
            }),
        )
    }
}

/// Waits until `node` sees every peer in `peers` up, with a deadline.
async fn all_up(node: &Node, peers: &[u32]) -> Result<(), String> {
    let mut events = node.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !peers.iter().all(|p| node.is_up(*p)) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(NodeEvent::MemberUp { .. } | NodeEvent::Reconnected { .. })) | Ok(Ok(_)) => {}
            Ok(Err(_)) => {}
            Err(_) => return Err(format!("node {} did not see {peers:?} up", node.id())),
        }
    }
    Ok(())
}

/// Runs part 2: returns the record the clerk read. The nodes are shut down at the end.
///
/// # Errors
/// A node could not start or connect, or a remote call failed.
pub async fn run() -> Result<String, Box<dyn std::error::Error>> {
    // Mutual TLS 1.3: a development CA signs one certificate per node, each naming its node.
    let ca = actix_coord::net::DevCa::new()?;
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=3u32 {
        let mut b = Node::builder()
            .id(id)
            .listen("127.0.0.1:0")
            .tls(ca.node_identity(id)?);
        for n in &nodes {
            b = b.peer(n.id(), n.local_addr());
        }
        for later in id + 1..=3 {
            b = b.member(later);
        }
        nodes.push(b.start().await?);
    }
    for n in &nodes {
        let others: Vec<u32> = nodes
            .iter()
            .map(Node::id)
            .filter(|&i| i != n.id())
            .collect();
        all_up(n, &others).await?;
    }
    let archive = CausalBuilder::new()
        .node(2)
        .name("archive@n2")
        .start(Archive);
    nodes[1].register("archive", archive)?;
    let (filed_tx, filed_rx) = tokio::sync::oneshot::channel();
    let registry = CausalBuilder::new()
        .node(3)
        .name("registry@n3")
        .start(Registry {
            filed: Some(filed_tx),
        });
    nodes[2].register("registry", registry)?;
    let clerk = CausalBuilder::new().node(1).name("clerk@n1").start(Clerk {
        archive: RemoteAddr::new(&nodes[0], 2, "archive"),
        registry: RemoteAddr::new(&nodes[0], 3, "registry"),
    });
    let record = clerk.send(Errand).await??;
    tokio::time::timeout(Duration::from_secs(10), filed_rx).await??;
    for n in &nodes {
        n.shutdown();
    }
    Ok(record)
}
