//! A consistent snapshot (Chandy–Lamport) of three bank branches that keep paying each other
//! while it is taken.
//!
//! Each branch starts with 100.00 and pays the next branch random amounts in a loop. Branch 1
//! takes snapshots meanwhile. A snapshot's balances alone do not add up to 300.00 — some money
//! is in flight between branches at the cut — but balances plus the payments recorded in the
//! channels always do: the cut is consistent.

use actix_coord::driver::{At, LocalLinks, StartError};
use actix_coord::protocol::{ConfigError, NodeId, SplitMix64};
use actix_coord::snapshot::{
    Application, ChandyLamport, GlobalSnapshot, Outbox, SnapshotConfig, Snapshots, TakeError,
};

/// A branch: its balance in cents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Branch {
    /// The balance, in cents.
    pub balance: u64,
}

impl Application for Branch {
    type Msg = u64;
    type Command = (NodeId, u64);
    type State = u64;
    fn on_command(&mut self, (to, cents): (NodeId, u64), out: &mut Outbox<u64>) {
        let cents = cents.min(self.balance);
        self.balance -= cents;
        out.send(to, cents);
    }
    fn on_message(&mut self, _from: NodeId, cents: u64, _out: &mut Outbox<u64>) {
        self.balance += cents;
    }
    fn state(&self) -> u64 {
        self.balance
    }
}

/// Why the demonstration failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A branch could not be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A branch could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A snapshot or a payment failed.
    #[error(transparent)]
    Take(#[from] TakeError),
    /// A snapshot did not add up.
    #[error("snapshot {0} holds {1} cents, not 30000")]
    Inconsistent(usize, u64),
}

/// What one snapshot saw: balances, and cents in flight.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Each branch's balance at the cut.
    pub balances: Vec<u64>,
    /// Cents recorded in flight at the cut.
    pub in_flight: u64,
}

fn seen(g: &GlobalSnapshot<u64, u64>) -> Seen {
    Seen {
        balances: g.members.values().map(|m| m.state).collect(),
        in_flight: g
            .members
            .values()
            .flat_map(|m| m.channels.values().flatten())
            .sum(),
    }
}

/// Lets every branch make `payments` payments while branch 1 takes `snapshots` snapshots;
/// returns what the snapshots saw.
///
/// # Errors
/// [`DemoError`] when a branch fails or a snapshot does not add up.
pub async fn run(payments: usize, snapshots: usize) -> Result<Vec<Seen>, DemoError> {
    let members = [1u32, 2, 3];
    let links = LocalLinks::<ChandyLamport<Branch>>::new();
    let mut branches = Vec::new();
    for id in members {
        let core = ChandyLamport::new(
            id,
            members,
            Branch { balance: 10_000 },
            SnapshotConfig::default(),
        )?;
        branches.push(Snapshots::start(
            At::Local(&links, id),
            "bank",
            &members,
            core,
        )?);
    }
    // Each branch pays the next one `payments` times, in its own task...
    let mut payers = Vec::new();
    for (k, b) in branches.iter().enumerate() {
        let (b, to) = (b.clone(), members[(k + 1) % members.len()]);
        payers.push(actix_rt::spawn(async move {
            let mut rng = SplitMix64::new(42 + k as u64);
            for _ in 0..payments {
                b.command((to, rng.next_u64() % 2_000)).await?;
            }
            Ok::<_, TakeError>(())
        }));
    }
    // ...while branch 1 takes snapshots, one after the other.
    let mut out = Vec::new();
    for k in 0..snapshots {
        let g = branches[0].take().await?;
        let v = seen(&g);
        let total = v.balances.iter().sum::<u64>() + v.in_flight;
        if total != 30_000 {
            return Err(DemoError::Inconsistent(k, total));
        }
        out.push(v);
    }
    for p in payers {
        p.await.map_err(|_| TakeError::Stopped)??;
    }
    Ok(out)
}

/// Runs the demonstration for the tour and returns its summary.
///
/// # Errors
/// As [`run`].
pub async fn tour_demo() -> Result<String, DemoError> {
    let seen = run(200, 6).await?;
    let cents = |c: u64| format!("{}.{:02}", c / 100, c % 100);
    let with_flight = seen.iter().filter(|s| s.in_flight > 0).count();
    let example = seen
        .iter()
        .find(|s| s.in_flight > 0)
        .or(seen.first())
        .map(|s| {
            format!(
                "e.g. balances {} + {} in flight",
                s.balances
                    .iter()
                    .map(|&b| cents(b))
                    .collect::<Vec<_>>()
                    .join(" + "),
                cents(s.in_flight)
            )
        })
        .unwrap_or_default();
    Ok(format!(
        "{} snapshots of 3 branches paying each other all along: every one holds exactly 300.00 \
         ({} with money in flight at the cut; {example})",
        seen.len(),
        with_flight
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn every_snapshot_adds_up() {
        let seen = run(200, 6).await.unwrap();
        assert_eq!(seen.len(), 6);
        for s in &seen {
            assert_eq!(s.balances.iter().sum::<u64>() + s.in_flight, 30_000);
        }
        assert!(tour_demo().await.unwrap().contains("exactly 300.00"));
    }
}
