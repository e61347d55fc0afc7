//! One lock API over the three algorithms: a lock actor per node for a named resource, and a
//! [`DistributedLock`] handle that acquires it.
//!
//! The algorithm is a configuration value ([`LockAlgorithm`]): [`AnyLock`] is a sans-IO core
//! that runs [`LamportMutex`], [`RicartAgrawala`] or [`SuzukiKasami`] behind one
//! [`Protocol`], and a generic [`Driver`] runs it as a causal actor, in process
//! ([`At::Local`], over [`LocalLinks`](crate::driver::LocalLinks)) or across nodes
//! ([`At::Node`]): [`DistributedLock::start`].
//!
//! ```
//! use actix_coord::driver::{At, LocalLinks};
//! use actix_coord::mutex::{DistributedLock, LockAlgorithm};
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::new();
//! let members = [1, 2, 3];
//! let locks: Vec<DistributedLock> = members
//!     .iter()
//!     .map(|&me| {
//!         DistributedLock::start(At::Local(&links, me), "seats", &members, LockAlgorithm::RicartAgrawala)
//!             .unwrap()
//!     })
//!     .collect();
//! let first = locks[0].acquire().await.unwrap();
//! let token = first.fencing_token();
//! assert!(locks[0].is_held());
//! drop(first); // released
//! let second = locks[2].acquire().await.unwrap();
//! assert!(second.fencing_token() > token);
//! # });
//! ```
//!
//! # What the API promises
//! * `acquire().await` waits for the lock and returns a [`LockGuard`];
//!   [`try_acquire`](DistributedLock::try_acquire) waits at most a given time. A wait that times
//!   out, or whose future is dropped, **withdraws its request** (`LockCommand::Cancel`); if the
//!   grant raced with the withdrawal, the lock is released at once.
//! * The guard releases on drop, or explicitly with [`LockGuard::release`].
//! * [`LockGuard::fencing_token`] is strictly greater than the previous owner's (see
//!   [`Fence`]); pass it with every write to the protected resource, which must refuse lower
//!   tokens ([`FencedResource`](super::FencedResource)).
//! * Tasks of one process that share a handle (it is `Clone`) queue locally, first come first
//!   served, and take turns in the distributed algorithm one at a time.
//! * Events: [`DistributedLock::events`] streams every `Granted`, `Released`, `Cancelled` and
//!   `Lost` of this member.
//! * Fairness: FIFO by `(Lamport timestamp, node id)` for Lamport and Ricart–Agrawala; round
//!   robin after the holder for Suzuki–Kasami (see [`SuzukiKasami`]'s "Order").
//!
//! # Causal log
//! The driver's observer logs `lock.enter` on each grant and `lock.exit` on each release (or
//! loss, with `lost = true`), both with fields `resource` and `fence`, as semantic events of the
//! lock actor's process; and `lock.regenerate` (fields `resource`, `round`, `leader`) when this
//! member regenerates a lost Suzuki–Kasami token. `causal-log check` verifies from the vector
//! clocks that sections never overlap and that fences increase along happened-before.
//!
//! # Faults
//! Members declared down by the node's failure detector are dropped from the algorithm (see
//! the [module docs](super) on false suspicions). A lost Suzuki–Kasami token is regenerated once,
//! in a new epoch; tokens of older epochs are rejected. Who decides the regeneration:
//! * with [`LockConfig::with_recovery_leader`] (this member's
//!   [`LeaderView`] of a bully [`Election`](crate::election::Election)), **the elected
//!   leader** only: a task started with the lock actor ([`LeaderView::follow`]) sends it every
//!   leader the view shows ([`AnyLockCommand::Leader`]) until the actor stops; the core leads
//!   once it has been named for [`LockConfig::leader_settle`] with no change (its own timer),
//!   and recovers when it leads and a peer goes down, or when it becomes the leader while a
//!   member is down (see [`SuzukiKasami::set_leader`]);
//! * otherwise (a [`LockConfig`] without a recovery leader, or a bare [`LockAlgorithm`]) the
//!   **lowest live member**, a deterministic rule among the survivors that needs no election.
//!
//! Either way the regenerating member logs `lock.regenerate`, whose `leader` field is its own
//! id, and counts it in [`DistributedLock::regenerations`].

use super::{
    AnyLock, AnyLockCommand, AnyLockEvent, Fence, LockAlgorithm, LockCommand, LockError, LockEvent,
    fence_display,
};
use crate::driver::{At, Command, Driver, Member, StartError};
use crate::election::LeaderView;
use crate::protocol::{ConfigError, NodeId};
use crate::trace::{self, FieldValue};
use actix::prelude::*;
use actix_coord_proto::schema::{field, kind};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex as LocalQueue, OwnedMutexGuard, broadcast, watch};

/// Why an acquisition failed (the request is withdrawn in every case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// [`DistributedLock::try_acquire`]'s time ran out.
    #[error("timed out waiting for the lock")]
    Timeout,
    /// The lock actor refused the request (it already has one from a user that bypassed
    /// this handle).
    #[error(transparent)]
    Refused(#[from] LockError),
    /// The lock actor has stopped.
    #[error("the lock actor has stopped")]
    Stopped,
}

/// Why a release failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// This ownership had already ended: the lock was lost (its token superseded).
    #[error("the lock was no longer held (lost)")]
    NotHeld,
    /// The lock actor has stopped.
    #[error("the lock actor has stopped")]
    Stopped,
}

/// How a lock actor runs: its algorithm, and the settings of its token recovery, for
/// [`DistributedLock::start`].
///
/// ```
/// use actix_coord::election::LeaderView;
/// use actix_coord::mutex::{LockAlgorithm, LockConfig};
///
/// fn config(view: LeaderView) -> LockConfig {
///     LockConfig::new(LockAlgorithm::SuzukiKasami).with_recovery_leader(view)
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockConfig {
    /// The algorithm.
    pub algorithm: LockAlgorithm,
    /// Suzuki–Kasami: this member's view of the election whose leader alone regenerates a lost
    /// token. `None` (the default): the lowest live member does. Ignored by Lamport and
    /// Ricart–Agrawala.
    pub recovery_leader: Option<LeaderView>,
    /// How long this member must have been leader, without a change, before it may regenerate
    /// a lost token (default [`DEFAULT_LEADER_SETTLE`]). An election under a loaded machine can
    /// name a transient leader (a lower node whose OK from a higher one came late) that is
    /// deposed a moment later; without the wait each such leader would regenerate, each in a
    /// newer epoch — safe, but more than one regeneration. Losing the leadership is told at once.
    pub leader_settle: Duration,
}

/// The default of [`LockConfig::leader_settle`]: 1 s, above the bully election's default
/// answer + coordinator timeouts (150 + 300 ms).
pub const DEFAULT_LEADER_SETTLE: Duration = Duration::from_secs(1);

impl From<LockAlgorithm> for LockConfig {
    fn from(algorithm: LockAlgorithm) -> Self {
        Self::new(algorithm)
    }
}

impl LockConfig {
    /// `algorithm`, the lowest live member regenerating a lost token.
    pub fn new(algorithm: LockAlgorithm) -> Self {
        Self {
            algorithm,
            recovery_leader: None,
            leader_settle: DEFAULT_LEADER_SETTLE,
        }
    }

    /// Sets [`leader_settle`](Self::leader_settle).
    pub fn with_leader_settle(mut self, settle: Duration) -> Self {
        self.leader_settle = settle;
        self
    }

    /// Regenerate a lost Suzuki–Kasami token only on the leader of `view`'s election.
    pub fn with_recovery_leader(mut self, view: LeaderView) -> Self {
        self.recovery_leader = Some(view);
        self
    }

    /// The core for member `me`, set up as this says.
    fn core(&self, me: NodeId, members: &[NodeId]) -> Result<AnyLock, ConfigError> {
        let algorithm = self.algorithm;
        // A new incarnation at every start: peers that met a previous one forget it.
        let core = AnyLock::new(algorithm, me, members.iter().copied())?
            .with_incarnation(rand::random::<u64>());
        Ok(match (&self.recovery_leader, algorithm) {
            (Some(_), LockAlgorithm::SuzukiKasami) => core
                .with_external_leader()
                .with_leader_settle(self.leader_settle),
            _ => core,
        })
    }

    /// Starts what the configuration needs next to the lock actor `addr`.
    fn start_helpers(&self, addr: &Addr<Driver<AnyLock>>, alive: &watch::Receiver<Option<Fence>>) {
        if let (Some(view), LockAlgorithm::SuzukiKasami) = (&self.recovery_leader, self.algorithm) {
            follow_leader(view, addr.clone(), alive.clone());
        }
    }
}

/// Tells the lock actor `addr` every leader `view` shows ([`AnyLockCommand::Leader`]), the
/// current one first, through [`LeaderView::follow`]; the core waits out its settle time before
/// it leads ([`LockConfig::leader_settle`], a timer of the core). Ends when the lock actor stops
/// (its observer, which holds the sender of `alive`, is dropped) or the election does (then the
/// lock is told that nobody leads).
fn follow_leader(
    view: &LeaderView,
    addr: Addr<Driver<AnyLock>>,
    mut alive: watch::Receiver<Option<Fence>>,
) {
    view.follow(
        addr,
        |_, now| vec![AnyLockCommand::Leader(now.map(|(l, _)| l))],
        async move { stopped(&mut alive).await },
    );
}

/// Resolves when the sender of `rx` is gone.
async fn stopped<T>(rx: &mut watch::Receiver<T>) {
    while rx.changed().await.is_ok() {}
}

struct Shared {
    resource: Arc<str>,
    algorithm: LockAlgorithm,
    me: NodeId,
    addr: Addr<Driver<AnyLock>>,
    queue: Arc<LocalQueue<()>>,
    held: watch::Receiver<Option<Fence>>,
    /// Only for [`broadcast::Receiver::resubscribe`]: the one sender is the lock actor's
    /// observer, so waits see the channel close when the actor stops.
    events: broadcast::Receiver<LockEvent>,
    regenerations: Arc<AtomicU64>,
    member: Member<AnyLock>,
}

/// A handle on this member's lock actor for one resource. Cheap to clone; every clone shares
/// the same lock actor and local queue.
#[derive(Clone)]
pub struct DistributedLock {
    shared: Arc<Shared>,
}

impl fmt::Debug for DistributedLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedLock")
            .field("resource", &self.shared.resource)
            .field("algorithm", &self.shared.algorithm)
            .field("member", &self.shared.me)
            .field("held", &*self.shared.held.borrow())
            .finish()
    }
}

/// How many lock events a slow [`DistributedLock::events`] subscriber may fall behind.
pub const LOCK_EVENT_BUFFER: usize = 1024;

/// The name of the lock actor of `resource` on a node.
pub fn lock_actor_name(resource: &str) -> String {
    format!("lock/{resource}")
}

type Parts = (
    crate::driver::Observer<AnyLockEvent>,
    watch::Receiver<Option<Fence>>,
    broadcast::Receiver<LockEvent>,
    Arc<AtomicU64>,
);

/// The driver's observer: logs the semantic events and updates the handle's view.
fn observer(resource: Arc<str>) -> Parts {
    let (held_tx, held_rx) = watch::channel(None);
    let (tx, events) = broadcast::channel(LOCK_EVENT_BUFFER);
    let regenerations = Arc::new(AtomicU64::new(0));
    let count = regenerations.clone();
    let res = move || (field::RESOURCE, FieldValue::from(&*resource));
    let token = |fence: Fence| {
        (
            field::TOKEN,
            FieldValue::from(&*fence_display(fence).to_string()),
        )
    };
    let observe = move |ev: &AnyLockEvent| match *ev {
        AnyLockEvent::Lock(lock_event) => {
            match lock_event {
                LockEvent::Granted { fence } => {
                    trace::event(
                        kind::LOCK_ENTER,
                        kind::LOCK_ENTER,
                        [res(), (field::FENCE, fence.into()), token(fence)],
                    );
                    held_tx.send_replace(Some(fence));
                }
                LockEvent::Released { fence } => {
                    held_tx.send_replace(None);
                    trace::event(
                        kind::LOCK_EXIT,
                        kind::LOCK_EXIT,
                        [res(), (field::FENCE, fence.into()), token(fence)],
                    );
                }
                LockEvent::Lost { fence } => {
                    held_tx.send_replace(None);
                    trace::event(
                        kind::LOCK_EXIT,
                        "lock.exit (lost)",
                        [
                            res(),
                            (field::FENCE, fence.into()),
                            token(fence),
                            (field::LOST, true.into()),
                        ],
                    );
                }
                LockEvent::Cancelled => {}
            }
            let _ = tx.send(lock_event);
        }
        AnyLockEvent::Regenerated { epoch } => {
            count.fetch_add(1, Ordering::Relaxed);
            trace::event(
                kind::LOCK_REGENERATE,
                kind::LOCK_REGENERATE,
                [
                    res(),
                    (field::ROUND, epoch.round.into()),
                    (field::LEADER, epoch.leader.into()),
                ],
            );
        }
    };
    (Box::new(observe), held_rx, events, regenerations)
}

impl DistributedLock {
    /// Starts member [`at.me()`](At::me)'s lock actor for `resource` among `members`, running
    /// `config`'s algorithm (a [`LockAlgorithm`] converts). On a node it is registered as
    /// [`lock_actor_name`]`(resource)` and the node's membership events reach the algorithm (a
    /// member declared down stops counting); in this process ([`At::Local`]) peers are declared
    /// down by sending the lock actors [`PeerStatus::Down`](crate::driver::PeerStatus). Every
    /// member must start the same. Call on an actix arbiter.
    ///
    /// With [`LockConfig::with_recovery_leader`]`(election.view())` (an
    /// [`Election`](crate::election::Election) of the same members; in one process, the member
    /// with the same id), a lost Suzuki–Kasami token is regenerated only by the elected leader,
    /// in a new epoch:
    ///
    /// ```no_run
    /// use actix_coord::driver::At;
    /// use actix_coord::election::{BullyConfig, Election};
    /// use actix_coord::mutex::{DistributedLock, LockAlgorithm, LockConfig};
    /// # async fn f(node: actix_coord::net::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// let members = [1, 2, 3];
    /// let election = Election::start(At::Node(&node), "election", &members, BullyConfig::default())?;
    /// let lock = DistributedLock::start(
    ///     At::Node(&node),
    ///     "counter",
    ///     &members,
    ///     LockConfig::new(LockAlgorithm::SuzukiKasami).with_recovery_leader(election.view()),
    /// )?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StartError::EmptyName`] for an empty resource name, [`StartError::Config`] for an
    /// invalid membership, [`StartError::Register`] for a lock actor of that resource already
    /// registered on the node.
    pub fn start(
        at: At<'_, AnyLock>,
        resource: &str,
        members: &[NodeId],
        config: impl Into<LockConfig>,
    ) -> Result<Self, StartError> {
        let config = config.into();
        if resource.is_empty() {
            // Its actor name, `lock/`, is not: refuse the resource itself.
            return Err(StartError::EmptyName);
        }
        let me = at.me();
        let core = config.core(me, members)?;
        let resource: Arc<str> = Arc::from(resource);
        let (observe, held, events, regenerations) = observer(resource.clone());
        let member = at.start(&lock_actor_name(&resource), core, members, Some(observe))?;
        config.start_helpers(&member.addr, &held);
        Ok(Self::new(
            resource,
            config.algorithm,
            me,
            held,
            events,
            regenerations,
            member,
        ))
    }

    fn new(
        resource: Arc<str>,
        algorithm: LockAlgorithm,
        me: NodeId,
        held: watch::Receiver<Option<Fence>>,
        events: broadcast::Receiver<LockEvent>,
        regenerations: Arc<AtomicU64>,
        member: Member<AnyLock>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                resource,
                algorithm,
                me,
                addr: member.addr.clone(),
                queue: Arc::new(LocalQueue::new(())),
                held,
                events,
                regenerations,
                member,
            }),
        }
    }

    /// The resource this lock protects.
    pub fn resource(&self) -> &str {
        &self.shared.resource
    }

    /// The algorithm it runs.
    pub fn algorithm(&self) -> LockAlgorithm {
        self.shared.algorithm
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.shared.me
    }

    /// The lock actor (to [`Inspect`](crate::driver::Inspect) its [`AnyLock`], for instance).
    pub fn actor(&self) -> &Addr<Driver<AnyLock>> {
        &self.shared.addr
    }

    /// Whether this member holds the lock now.
    pub fn is_held(&self) -> bool {
        self.shared.held.borrow().is_some()
    }

    /// How many Suzuki–Kasami tokens this member regenerated.
    pub fn regenerations(&self) -> u64 {
        self.shared.regenerations.load(Ordering::Relaxed)
    }

    /// Every lock event of this member from now on: `Granted`, `Released`, `Cancelled`, `Lost`.
    /// A subscriber more than [`LOCK_EVENT_BUFFER`] events behind is told it lagged.
    pub fn events(&self) -> broadcast::Receiver<LockEvent> {
        self.shared.events.resubscribe()
    }

    /// Waits for the lock.
    ///
    /// # Errors
    /// [`AcquireError::Stopped`] when the lock actor has stopped; [`AcquireError::Refused`] when
    /// someone bypassed this handle and already asked the lock actor.
    pub async fn acquire(&self) -> Result<LockGuard, AcquireError> {
        self.acquire_until(None).await
    }

    /// Waits at most `timeout` for the lock; on timeout the request is withdrawn.
    ///
    /// # Errors
    /// [`AcquireError::Timeout`], or as [`acquire`](Self::acquire).
    pub async fn try_acquire(&self, timeout: Duration) -> Result<LockGuard, AcquireError> {
        self.acquire_until(Some(tokio::time::Instant::now() + timeout))
            .await
    }

    async fn acquire_until(
        &self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<LockGuard, AcquireError> {
        let s = &self.shared;
        let turn = s.queue.clone().lock_owned();
        let permit = match deadline {
            None => turn.await,
            Some(d) => tokio::time::timeout_at(d, turn)
                .await
                .map_err(|_| AcquireError::Timeout)?,
        };
        let mut rx = s.events.resubscribe();
        let asked = s
            .addr
            .send(Command::new(AnyLockCommand::Lock(LockCommand::Acquire)));
        // From here on a dropped future withdraws the request (once it was accepted).
        let mut withdraw = WithdrawOnDrop(Some(s.addr.clone()));
        match asked.await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => {
                withdraw.0 = None; // not our request: leave it alone
                return Err(AcquireError::Refused(refused));
            }
            Err(_) => return Err(AcquireError::Stopped),
        }
        let held = s.held.clone();
        let granted = async move {
            loop {
                match rx.recv().await {
                    Ok(LockEvent::Granted { fence }) => return Ok(fence),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(fence) = *held.borrow() {
                            return Ok(fence);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(AcquireError::Stopped),
                }
            }
        };
        let fence = match deadline {
            None => granted.await?,
            Some(d) => match tokio::time::timeout_at(d, granted).await {
                Ok(r) => r?,
                Err(_) => {
                    withdraw.0 = None;
                    let _ = s.addr.send(Command::new(AnyLockCommand::Withdraw)).await;
                    return Err(AcquireError::Timeout);
                }
            },
        };
        withdraw.0 = None;
        Ok(LockGuard {
            fence,
            lock: self.clone(),
            permit: Some(permit),
            released: false,
        })
    }

    /// Stops this member's lock actor and unregisters it. Its peers see it as gone only through
    /// the failure detector (when the node itself leaves).
    pub fn stop(&self) {
        self.shared.member.stop();
    }
}

/// Withdraws the request of an acquisition whose future was dropped while waiting.
struct WithdrawOnDrop(Option<Addr<Driver<AnyLock>>>);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        if let Some(addr) = self.0.take() {
            addr.do_send(Command::new(AnyLockCommand::Withdraw));
        }
    }
}

/// One ownership of a [`DistributedLock`]; released on drop or with
/// [`release`](Self::release).
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    fence: Fence,
    lock: DistributedLock,
    permit: Option<OwnedMutexGuard<()>>,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("resource", &self.lock.resource())
            .field("fence", &self.fence)
            .finish()
    }
}

impl LockGuard {
    /// The fencing token of this ownership: strictly greater than the previous owner's. Send it
    /// with every write to the protected resource.
    pub fn fencing_token(&self) -> Fence {
        self.fence
    }

    /// The resource held.
    pub fn resource(&self) -> &str {
        self.lock.resource()
    }

    /// Whether this ownership is still current (false once released or
    /// [lost](LockEvent::Lost)).
    pub fn is_held(&self) -> bool {
        *self.lock.shared.held.borrow() == Some(self.fence)
    }

    /// Releases the lock and waits until the lock actor has done it.
    ///
    /// # Errors
    /// [`ReleaseError::NotHeld`] when the ownership was lost meanwhile;
    /// [`ReleaseError::Stopped`] when the lock actor has stopped.
    pub async fn release(mut self) -> Result<(), ReleaseError> {
        self.released = true;
        let r = self
            .lock
            .shared
            .addr
            .send(Command::new(AnyLockCommand::ReleaseFence(self.fence)))
            .await;
        self.permit.take();
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ReleaseError::NotHeld),
            Err(_) => Err(ReleaseError::Stopped),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            // Sent before the local queue's permit is dropped: the next local user's acquire
            // reaches the lock actor after this release.
            self.lock
                .shared
                .addr
                .do_send(Command::new(AnyLockCommand::ReleaseFence(self.fence)));
        }
        self.permit.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Inspect;
    use crate::driver::LocalLinks;
    use crate::mutex::{LockState, SuzukiKasami};

    fn cluster(algorithm: LockAlgorithm, n: u32) -> Vec<DistributedLock> {
        let links = LocalLinks::new();
        let members: Vec<NodeId> = (1..=n).collect();
        members
            .iter()
            .map(|&me| {
                DistributedLock::start(At::Local(&links, me), "r", &members, algorithm).unwrap()
            })
            .collect()
    }

    #[actix_rt::test]
    async fn every_algorithm_grants_in_turn_with_strictly_increasing_tokens() {
        for a in LockAlgorithm::ALL {
            let locks = cluster(a, 3);
            let mut last = None;
            for round in 0..3 {
                for l in &locks {
                    let g = tokio::time::timeout(Duration::from_secs(5), l.acquire())
                        .await
                        .expect("granted in time")
                        .unwrap();
                    assert!(g.is_held() && l.is_held());
                    let t = g.fencing_token();
                    assert!(
                        last.is_none_or(|p| t > p),
                        "{a} round {round}: {t} after {last:?}"
                    );
                    last = Some(t);
                    if round % 2 == 0 {
                        g.release().await.unwrap();
                    } else {
                        drop(g);
                    }
                }
            }
        }
    }

    #[actix_rt::test]
    async fn try_acquire_times_out_and_withdraws_its_request() {
        for a in LockAlgorithm::ALL {
            let locks = cluster(a, 3);
            let g = locks[0].acquire().await.unwrap();
            let t0 = g.fencing_token();
            let mut ev = locks[1].events();
            assert_eq!(
                locks[1].try_acquire(Duration::from_millis(50)).await.err(),
                Some(AcquireError::Timeout)
            );
            let cancelled = tokio::time::timeout(Duration::from_secs(5), ev.recv()).await;
            assert!(
                matches!(cancelled, Ok(Ok(LockEvent::Cancelled))),
                "{a}: {cancelled:?}"
            );
            g.release().await.unwrap();
            // The withdrawn request does not block the others: node 3 gets the lock.
            let g3 = tokio::time::timeout(Duration::from_secs(5), locks[2].acquire())
                .await
                .expect("node 3 granted")
                .unwrap();
            assert!(g3.fencing_token() > t0, "{a}");
            let state = locks[1]
                .actor()
                .send(Inspect(Box::new(|c: &AnyLock| c.state())))
                .await
                .unwrap();
            assert_eq!(state, LockState::Idle, "{a}");
        }
    }

    #[actix_rt::test]
    async fn a_dropped_acquire_withdraws_and_local_users_queue() {
        for a in LockAlgorithm::ALL {
            let locks = cluster(a, 2);
            let g = locks[0].acquire().await.unwrap();
            // A wait on node 2 dropped before the grant.
            let pending = locks[1].acquire();
            assert!(
                tokio::time::timeout(Duration::from_millis(20), pending)
                    .await
                    .is_err()
            );
            drop(g);
            // Two local users of node 1 take turns.
            let other = locks[0].clone();
            let first = locks[0].acquire().await.unwrap();
            let second = actix_rt::spawn(async move {
                let g = other.acquire().await.unwrap();
                g.fencing_token()
            });
            let t1 = first.fencing_token();
            drop(first);
            let t2 = tokio::time::timeout(Duration::from_secs(5), second)
                .await
                .expect("second local user granted")
                .unwrap();
            assert!(t2 > t1, "{a}: {t2} after {t1}");
        }
    }

    #[actix_rt::test]
    async fn a_wait_ends_when_the_lock_actor_stops() {
        let locks = cluster(LockAlgorithm::Lamport, 2);
        let g = locks[0].acquire().await.unwrap();
        let waiting = locks[1].clone();
        let wait = actix_rt::spawn(async move { waiting.acquire().await.err() });
        let mut ev = locks[1].events();
        locks[1].stop();
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(5), ev.recv()).await,
            Ok(Err(broadcast::error::RecvError::Closed))
        ));
        let r = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the wait ends")
            .unwrap();
        assert_eq!(r, Some(AcquireError::Stopped));
        assert_eq!(locks[1].acquire().await.err(), Some(AcquireError::Stopped));
        drop(g);
    }

    /// In one process: bully elections and Suzuki–Kasami locks over `LocalLinks`, each lock
    /// given its own member's `LeaderView`. A member "crashes" by leaving both links and being
    /// declared down to the others.
    struct ElectedCluster {
        elections: Vec<crate::election::Election>,
        election_links: LocalLinks<crate::election::Bully>,
        locks: Vec<DistributedLock>,
        crashed: Vec<NodeId>,
    }

    impl ElectedCluster {
        async fn start(n: u32) -> Self {
            let members: Vec<NodeId> = (1..=n).collect();
            let election_links = LocalLinks::new();
            let elections = crate::election::start_local(&election_links, &members);
            let links = LocalLinks::new();
            let locks = members
                .iter()
                .map(|&me| {
                    let view = elections[me as usize - 1].view();
                    DistributedLock::start(
                        At::Local(&links, me),
                        "r",
                        &members,
                        LockConfig::new(LockAlgorithm::SuzukiKasami).with_recovery_leader(view),
                    )
                    .unwrap()
                })
                .collect();
            let c = Self {
                elections,
                election_links,
                locks,
                crashed: Vec::new(),
            };
            c.wait_leader(n).await;
            c
        }

        fn live(&self) -> Vec<usize> {
            (0..self.locks.len())
                .filter(|&i| !self.crashed.contains(&(i as NodeId + 1)))
                .collect()
        }

        /// Waits until every live member recognises `leader`, and its lock core heard it too.
        async fn wait_leader(&self, leader: NodeId) {
            let within = Duration::from_secs(10);
            for i in self.live() {
                let mut w = self.elections[i].watch();
                tokio::time::timeout(within, w.wait_for(|l| l.is_some_and(|(l, _)| l == leader)))
                    .await
                    .expect("a leader in time")
                    .unwrap();
            }
            let deadline = tokio::time::Instant::now() + within;
            for i in self.live() {
                while self.locks[i]
                    .actor()
                    .send(Inspect(Box::new(|c: &AnyLock| {
                        c.suzuki_kasami().and_then(SuzukiKasami::leader)
                    })))
                    .await
                    .unwrap()
                    != Some(leader)
                {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "lock {} never heard of leader {leader}",
                        i + 1
                    );
                    tokio::task::yield_now().await;
                }
            }
        }

        /// Member `id` stops: it leaves both links and the others are told it is down.
        fn crash(&mut self, id: NodeId) {
            use crate::driver::PeerStatus;
            self.election_links.unregister(id);
            self.locks[id as usize - 1].stop();
            self.crashed.push(id);
            for i in self.live() {
                self.elections[i].driver().do_send(PeerStatus::Down(id));
                self.locks[i].actor().do_send(PeerStatus::Down(id));
            }
        }
    }

    #[actix_rt::test]
    async fn an_elected_leader_regenerates_the_token_of_a_crashed_holder() {
        let mut c = ElectedCluster::start(3).await;
        let held = c.locks[1].acquire().await.unwrap();
        let old = held.fencing_token();
        let waiter = c.locks[0].clone();
        let wait =
            actix_rt::spawn(async move { waiter.acquire().await.map(|g| g.fencing_token()) });
        std::mem::forget(held); // node 2 dies inside its critical section
        c.crash(2);
        let fence = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("node 1 granted the regenerated token")
            .unwrap()
            .unwrap();
        assert!(fence >> 32 >= 1 && fence > old, "{fence:#x} after {old:#x}");
        // The leader (node 3) regenerated it, not the lowest live member (node 1).
        assert_eq!(
            [c.locks[0].regenerations(), c.locks[2].regenerations()],
            [0, 1]
        );
    }

    #[actix_rt::test]
    async fn the_next_leader_regenerates_when_the_leader_crashes_with_the_token() {
        let mut c = ElectedCluster::start(3).await;
        let held = c.locks[2].acquire().await.unwrap();
        let old = held.fencing_token();
        std::mem::forget(held);
        c.crash(3);
        c.wait_leader(2).await;
        let g = tokio::time::timeout(Duration::from_secs(10), c.locks[0].acquire())
            .await
            .expect("node 1 granted the regenerated token")
            .unwrap();
        assert!(g.fencing_token() > old);
        assert_eq!(
            [c.locks[0].regenerations(), c.locks[1].regenerations()],
            [0, 1]
        );
        let epoch = c.locks[0]
            .actor()
            .send(Inspect(Box::new(|c: &AnyLock| {
                c.suzuki_kasami().map(SuzukiKasami::epoch)
            })))
            .await
            .unwrap();
        assert_eq!(epoch.map(|e| e.leader), Some(2));
    }
}
