//! Consistent global snapshots (Chandy–Lamport) of an application run as a sans-IO state
//! machine.
//!
//! The application implements [`Application`] (its messages, its commands, its recordable
//! state); [`ChandyLamport`] runs it, passes its messages through, and takes snapshots of the
//! whole group on request. [`Snapshots`] is the handle over a member's driver: send the
//! application commands, read it, and [`take`](Snapshots::take) a snapshot, which resolves to a
//! [`GlobalSnapshot`] — every member's state and the messages that were in flight.
//!
//! ```
//! use actix_coord::driver::{At, LocalLinks};
//! use actix_coord::protocol::NodeId;
//! use actix_coord::snapshot::{Application, ChandyLamport, Outbox, SnapshotConfig, Snapshots};
//!
//! /// Members hold money and pay each other.
//! #[derive(Clone, Debug, PartialEq, Eq, Hash)]
//! struct Bank { balance: u64 }
//!
//! impl Application for Bank {
//!     type Msg = u64;                  // an amount paid
//!     type Command = (NodeId, u64);    // pay someone
//!     type State = u64;                // the balance
//!     fn on_command(&mut self, (to, amount): (NodeId, u64), out: &mut Outbox<u64>) {
//!         let amount = amount.min(self.balance);
//!         self.balance -= amount;
//!         out.send(to, amount);
//!     }
//!     fn on_message(&mut self, _from: NodeId, amount: u64, _out: &mut Outbox<u64>) {
//!         self.balance += amount;
//!     }
//!     fn state(&self) -> u64 { self.balance }
//! }
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::<ChandyLamport<Bank>>::new();
//! let members = [1, 2, 3];
//! let banks: Vec<_> = members.iter().map(|&id| {
//!     let core = ChandyLamport::new(id, members, Bank { balance: 100 },
//!                                   SnapshotConfig::default()).unwrap();
//!     Snapshots::start(At::Local(&links, id), "bank", &members, core).unwrap()
//! }).collect();
//! banks[0].command((2, 30)).await.unwrap();
//! let snapshot = banks[2].take().await.unwrap();
//! let total: u64 = snapshot.members.values()
//!     .map(|m| m.state + m.channels.values().flatten().sum::<u64>())
//!     .sum();
//! assert_eq!(total, 300);             // money is neither created nor lost by the cut
//! # });
//! ```

pub use actix_coord_proto::snapshot::*;

use crate::driver::{At, Command, Driver, Inspect, StartError, Subscribe};
use crate::protocol::NodeId;
use actix::Addr;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An [`Application`] a [`Snapshots`] handle can run: its types can travel between actors and
/// nodes.
pub trait Runnable:
    Application<
        Msg: Eq + Hash + Send + Unpin + 'static,
        Command: Send + Unpin + 'static,
        State: Eq + Hash + Send + Unpin + 'static,
    > + Send
    + Unpin
    + 'static
{
}

impl<A> Runnable for A where
    A: Application<
            Msg: Eq + Hash + Send + Unpin + 'static,
            Command: Send + Unpin + 'static,
            State: Eq + Hash + Send + Unpin + 'static,
        > + Send
        + Unpin
        + 'static
{
}

/// Why a snapshot or a command did not happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// The member refused to start it.
    #[error(transparent)]
    Refused(#[from] SnapshotError),
    /// A member went down while it was under way.
    #[error("snapshot {id:?} abandoned: member {down} went down")]
    Aborted {
        /// Which snapshot.
        id: SnapshotId,
        /// The member that went down.
        down: NodeId,
    },
    /// A member refused a marker of it (too many snapshots under way there); it was abandoned
    /// everywhere.
    #[error("snapshot {id:?} refused by member {by} (too many under way there)")]
    RefusedBy {
        /// Which snapshot.
        id: SnapshotId,
        /// The member that refused it.
        by: NodeId,
    },
    /// It did not complete within the time given to [`Snapshots::take_within`]; it was
    /// abandoned everywhere.
    #[error("snapshot {0:?} did not complete in time")]
    TimedOut(SnapshotId),
    /// The member's actor has stopped.
    #[error("the snapshot actor has stopped")]
    Stopped,
}

/// How long [`Snapshots::take`] waits for a snapshot before abandoning it (30 s).
pub const DEFAULT_TAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A member running an application under Chandy–Lamport snapshots. Cheap to clone.
pub struct Snapshots<A: Runnable> {
    me: NodeId,
    driver: Addr<Driver<ChandyLamport<A>>>,
    next: Arc<AtomicU64>,
}

impl<A: Runnable> Clone for Snapshots<A> {
    fn clone(&self) -> Self {
        Self {
            me: self.me,
            driver: self.driver.clone(),
            next: self.next.clone(),
        }
    }
}

impl<A: Runnable> std::fmt::Debug for Snapshots<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("member", &self.me)
            .finish()
    }
}

impl<A: Runnable> Snapshots<A> {
    /// Starts `core`, member [`at.me()`](At::me) of `members`, in the group `group` (the same
    /// name on every member; it names the member in the causal log): on a node, whose
    /// membership events reach the core, or in this process ([`At::Local`]). Call on an actix
    /// arbiter.
    ///
    /// # Errors
    /// [`StartError::EmptyName`], [`StartError::WrongMember`] when `core` is another member
    /// than `at`'s, [`StartError::Register`] when `group` is taken on the node.
    pub fn start(
        at: At<'_, ChandyLamport<A>>,
        group: &str,
        members: &[NodeId],
        core: ChandyLamport<A>,
    ) -> Result<Self, StartError> {
        let me = at.me();
        let member = at.start(group, core, members, None)?;
        Ok(Self::new(me, member.addr))
    }

    fn new(me: NodeId, driver: Addr<Driver<ChandyLamport<A>>>) -> Self {
        // Numbers only need to increase per initiator; starting from the wall clock keeps them
        // increasing across restarts of a member too.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Self {
            me,
            driver,
            next: Arc::new(AtomicU64::new(start)),
        }
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The member's driver.
    pub fn driver(&self) -> &Addr<Driver<ChandyLamport<A>>> {
        &self.driver
    }

    /// Hands `cmd` to the application.
    ///
    /// # Errors
    /// [`TakeError::Stopped`] when the member's actor is gone.
    pub async fn command(&self, cmd: A::Command) -> Result<(), TakeError> {
        let c = Command::<_, SnapshotError>::new(SnapshotCommand::App(cmd));
        match self.driver.send(c).await {
            Ok(r) => r.map_err(TakeError::from),
            Err(_) => Err(TakeError::Stopped),
        }
    }

    /// Reads the application (`f` runs inside the member's actor).
    ///
    /// # Errors
    /// [`TakeError::Stopped`] when the member's actor is gone.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&A) -> R + Send + 'static,
    ) -> Result<R, TakeError> {
        self.driver
            .send(Inspect(Box::new(move |c: &ChandyLamport<A>| f(c.app()))))
            .await
            .map_err(|_| TakeError::Stopped)
    }

    /// Takes a snapshot of the whole group, with this member as initiator, and waits for it
    /// for at most [`DEFAULT_TAKE_TIMEOUT`] (see [`take_within`](Self::take_within)).
    ///
    /// # Errors
    /// [`TakeError`]: refused (too many under way here or at a member, a member down),
    /// abandoned, timed out, or the actor is gone.
    pub async fn take(&self) -> Result<GlobalSnapshot<A::State, A::Msg>, TakeError> {
        self.take_within(DEFAULT_TAKE_TIMEOUT).await
    }

    /// As [`take`](Self::take), waiting at most `timeout`: then the snapshot is abandoned on
    /// every member (their places freed) and [`TakeError::TimedOut`] returned.
    ///
    /// # Errors
    /// As [`take`](Self::take).
    pub async fn take_within(
        &self,
        timeout: std::time::Duration,
    ) -> Result<GlobalSnapshot<A::State, A::Msg>, TakeError> {
        let mut events = self
            .driver
            .send(Subscribe::default())
            .await
            .map_err(|_| TakeError::Stopped)?;
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let c = Command::<_, SnapshotError>::new(SnapshotCommand::Start { number });
        self.driver
            .send(c)
            .await
            .map_err(|_| TakeError::Stopped)??;
        let id = SnapshotId {
            initiator: self.me,
            number,
        };
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(SnapshotEvent::Complete(g)) if g.id == id => return Ok(g),
                    Ok(SnapshotEvent::Aborted { id: a, down }) if a == id => {
                        return Err(TakeError::Aborted { id, down });
                    }
                    Ok(SnapshotEvent::Refused { id: a, by }) if a == id => {
                        return Err(TakeError::RefusedBy { id, by });
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(TakeError::Stopped);
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                let c = Command::<_, SnapshotError>::new(SnapshotCommand::Abandon { number });
                let _ = self.driver.send(c).await;
                Err(TakeError::TimedOut(id))
            }
        }
    }
}
