//! The handle over a broadcast member's driver.

use super::{
    BroadcastCommand, BroadcastError, BroadcastEvent, CausalBroadcast, Delivery, Payload,
    TotalOrderBroadcast,
};
use crate::driver::{At, Command, Driven, Driver, Observer, PeerWire, StartError};
use crate::protocol::NodeId;
use crate::trace::{self, FieldValue};
use actix::Addr;
use actix_coord_proto::schema::{self, field, kind};
use std::fmt::{self, Debug};
use std::sync::Arc;
use tokio::sync::broadcast;

/// A broadcast core a [`Broadcaster`] can run.
pub trait BroadcastCore:
    Driven<
        Command = BroadcastCommand<<Self as BroadcastCore>::Payload>,
        Event = BroadcastEvent<<Self as BroadcastCore>::Payload>,
        Error = BroadcastError,
        Msg: PeerWire,
    >
{
    /// What it carries.
    type Payload: Payload;
    /// `"causal"` or `"total"`, for the causal log.
    const ORDER: &'static str;
    /// The core as the incarnation `incarnation` of its member (see
    /// [`CausalBroadcast::with_incarnation`]).
    fn incarnation(self, incarnation: u64) -> Self;
}

impl<T: Payload> BroadcastCore for CausalBroadcast<T> {
    type Payload = T;
    const ORDER: &'static str = schema::ORDER_CAUSAL;
    fn incarnation(self, incarnation: u64) -> Self {
        self.with_incarnation(incarnation)
    }
}

impl<T: Payload> BroadcastCore for TotalOrderBroadcast<T> {
    type Payload = T;
    const ORDER: &'static str = schema::ORDER_TOTAL;
    fn incarnation(self, incarnation: u64) -> Self {
        self.with_incarnation(incarnation)
    }
}

/// How many deliveries a slow [`Deliveries`] subscriber may fall behind before it misses some
/// (it is then told how many, [`RecvError::Lagged`]).
pub const DELIVERY_BUFFER: usize = 4096;

/// A publication could not be handed to the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The member's actor has stopped (its system or node is gone).
    #[error("the broadcast actor has stopped")]
    Stopped,
    /// The member's mailbox is full: try again.
    #[error("the broadcast actor's mailbox is full")]
    Full,
    /// The member is still catching up with its peers (it has just started) and keeps as many
    /// publications waiting as it may: try again once it has caught up.
    #[error("the broadcast member is catching up, {queued} publications already waiting")]
    Backlog {
        /// Publications waiting.
        queued: usize,
    },
    /// The member refused the publication for another reason of its core.
    #[error(transparent)]
    Refused(BroadcastError),
}

impl From<BroadcastError> for PublishError {
    fn from(e: BroadcastError) -> Self {
        match e {
            BroadcastError::Backlog { queued } => Self::Backlog { queued },
            other => Self::Refused(other),
        }
    }
}

/// Why [`Deliveries::recv`] returned no delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// This subscriber fell behind and missed this many deliveries.
    #[error("missed {0} deliveries")]
    Lagged(u64),
    /// The member's actor has stopped.
    #[error("the broadcast actor has stopped")]
    Stopped,
}

/// The deliveries of one member, in its delivery order, from the moment of subscribing.
pub struct Deliveries<T>(broadcast::Receiver<Delivery<T>>);

impl<T: Clone> Deliveries<T> {
    /// The next delivery.
    ///
    /// # Errors
    /// [`RecvError::Lagged`] when this subscriber missed some (the next call goes on with the
    /// oldest still buffered), [`RecvError::Stopped`] when the member is gone.
    pub async fn recv(&mut self) -> Result<Delivery<T>, RecvError> {
        self.0.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Stopped,
        })
    }
}

struct Shared<P: BroadcastCore> {
    me: NodeId,
    group: Arc<str>,
    driver: Addr<Driver<P>>,
    /// Only for resubscribing: the one sender is the observer inside the driver.
    deliveries: broadcast::Receiver<Delivery<P::Payload>>,
}

/// A member of a broadcast group: publish to the group, subscribe to deliveries. Cheap to
/// clone.
pub struct Broadcaster<P: BroadcastCore> {
    shared: Arc<Shared<P>>,
}

impl<P: BroadcastCore> Clone for Broadcaster<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: BroadcastCore> Debug for Broadcaster<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcaster")
            .field(field::GROUP, &self.shared.group)
            .field(field::ORDER, &P::ORDER)
            .field("member", &self.shared.me)
            .finish()
    }
}

/// The driver's observer: logs publications and deliveries, feeds subscribers.
fn observer<T: Payload>(
    group: Arc<str>,
    order: &'static str,
) -> (
    Observer<BroadcastEvent<T>>,
    broadcast::Receiver<Delivery<T>>,
) {
    let (tx, rx) = broadcast::channel(DELIVERY_BUFFER);
    let observe = move |e: &BroadcastEvent<T>| match e {
        BroadcastEvent::Published { seq } => trace::event(
            kind::BROADCAST_PUBLISH,
            format!("publish {group}#{seq}"),
            [
                (field::GROUP, FieldValue::from(&*group)),
                (field::ORDER, order.into()),
                (field::SEQ, (*seq).into()),
            ],
        ),
        BroadcastEvent::Delivered(d) => {
            trace::event(
                kind::BROADCAST_DELIVER,
                format!("deliver {group} n{}#{} at {}", d.from, d.seq, d.order),
                [
                    (field::GROUP, FieldValue::from(&*group)),
                    (field::ORDER, order.into()),
                    (field::FROM, d.from.into()),
                    (field::SEQ, d.seq.into()),
                    (field::POSITION, d.order.into()),
                ],
            );
            let _ = tx.send(d.clone());
        }
        BroadcastEvent::Rejected { from, reason } => {
            tracing::warn!(target: "actix_coord::broadcast", group = %group, from, %reason, "broadcast message rejected");
        }
        BroadcastEvent::Unrecoverable {
            origin,
            member,
            first,
            below,
        } => {
            tracing::error!(target: "actix_coord::broadcast", group = %group, origin, member, first, below, "broadcasts lost for good: no longer in the origin's resend log");
        }
    };
    (Box::new(observe), rx)
}

impl<P: BroadcastCore> Broadcaster<P> {
    fn from_parts(
        me: NodeId,
        group: Arc<str>,
        driver: Addr<Driver<P>>,
        deliveries: broadcast::Receiver<Delivery<P::Payload>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                me,
                group,
                driver,
                deliveries,
            }),
        }
    }

    /// Starts `core`, member [`at.me()`](At::me) of `members`, in the group `group` (the same
    /// name on every member; it names the member in the causal log): on a node, whose
    /// membership events reach the core, or in this process ([`At::Local`]). Call on an actix
    /// arbiter.
    ///
    /// Every start is a new incarnation of the member (drawn at random): it catches up with
    /// the members already running before its publications go out (see the cores' docs).
    ///
    /// # Errors
    /// [`StartError::EmptyName`], [`StartError::WrongMember`] when `core` is another member
    /// than `at`'s, [`StartError::Register`] when `group` is taken on the node.
    pub fn start(
        at: At<'_, P>,
        group: &str,
        members: &[NodeId],
        core: P,
    ) -> Result<Self, StartError> {
        let me = at.me();
        let core = core.incarnation(rand::random::<u64>());
        let group_name: Arc<str> = Arc::from(group);
        let (observe, rx) = observer(group_name.clone(), P::ORDER);
        let member = at.start(group, core, members, Some(observe))?;
        Ok(Self::from_parts(me, group_name, member.addr, rx))
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.shared.me
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// The member's driver (for [`Inspect`](crate::driver::Inspect) and
    /// [`Subscribe`](crate::driver::Subscribe) to every event, rejections included).
    pub fn driver(&self) -> &Addr<Driver<P>> {
        &self.shared.driver
    }

    /// Broadcasts `payload` to the group; this member delivers it too, in order. Waits for
    /// room in the member's mailbox (and for the member to take it), so a fast publisher is
    /// slowed to the member's pace.
    ///
    /// # Errors
    /// [`PublishError::Stopped`] when the member's actor is gone, [`PublishError::Backlog`]
    /// when it is catching up and its waiting room is full.
    pub async fn publish(&self, payload: P::Payload) -> Result<(), PublishError> {
        let cmd = Command::<_, P::Error>::new(BroadcastCommand::Publish(payload));
        match self.shared.driver.send(cmd).await {
            Ok(result) => result.map_err(PublishError::from),
            Err(_) => Err(PublishError::Stopped),
        }
    }

    /// [`publish`](Self::publish) without waiting.
    ///
    /// # Errors
    /// [`PublishError::Full`] when the member's mailbox is full (nothing was sent: try again),
    /// [`PublishError::Stopped`] when the member's actor is gone.
    pub fn try_publish(&self, payload: P::Payload) -> Result<(), PublishError> {
        self.shared
            .driver
            .try_send(Command::<_, P::Error>::new(BroadcastCommand::Publish(
                payload,
            )))
            .map_err(|e| match e {
                actix::prelude::SendError::Full(_) => PublishError::Full,
                actix::prelude::SendError::Closed(_) => PublishError::Stopped,
            })
    }

    /// Every delivery from now on, in this member's delivery order. Subscribe before
    /// publishing to see one's own messages.
    pub fn subscribe(&self) -> Deliveries<P::Payload> {
        Deliveries(self.shared.deliveries.resubscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CausalConfig, TotalConfig};
    use super::*;
    use crate::driver::LocalLinks;
    use std::time::Duration;

    async fn take<T: Clone>(d: &mut Deliveries<T>, n: usize) -> Vec<Delivery<T>> {
        let mut v = Vec::new();
        while v.len() < n {
            let next = tokio::time::timeout(Duration::from_secs(10), d.recv())
                .await
                .expect("no delivery within 10 s")
                .expect("delivery");
            v.push(next);
        }
        v
    }

    #[actix_rt::test]
    async fn total_order_members_deliver_the_same_sequence() {
        let links = LocalLinks::<TotalOrderBroadcast<u32>>::new();
        let members = [1, 2, 3];
        let group: Vec<_> = members
            .iter()
            .map(|&id| {
                let core = TotalOrderBroadcast::new(id, members, TotalConfig::default()).unwrap();
                Broadcaster::start(At::Local(&links, id), "log", &members, core).unwrap()
            })
            .collect();
        let mut subs: Vec<_> = group.iter().map(|g| g.subscribe()).collect();
        for round in 0..20u32 {
            for g in &group {
                g.publish(round * 10 + g.id()).await.unwrap();
            }
        }
        let mut seqs = Vec::new();
        for s in &mut subs {
            let d = take(s, 60).await;
            assert!(d.iter().enumerate().all(|(i, x)| x.order == i as u64 + 1));
            seqs.push(
                d.into_iter()
                    .map(|x| (x.from, x.payload))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(seqs[0], seqs[1]);
        assert_eq!(seqs[0], seqs[2]);
    }

    #[actix_rt::test]
    async fn causal_members_deliver_each_publishers_messages_in_order() {
        let links = LocalLinks::<CausalBroadcast<String>>::new();
        let members = [1, 2, 3];
        let group: Vec<_> = members
            .iter()
            .map(|&id| {
                let core = CausalBroadcast::new(id, members, CausalConfig::default()).unwrap();
                Broadcaster::start(At::Local(&links, id), "chat", &members, core).unwrap()
            })
            .collect();
        let mut subs: Vec<_> = group.iter().map(|g| g.subscribe()).collect();
        for i in 0..10 {
            for g in &group {
                g.publish(format!("{}:{i}", g.id())).await.unwrap();
            }
        }
        for s in &mut subs {
            let d = take(s, 30).await;
            for m in members {
                let seqs: Vec<u64> = d.iter().filter(|x| x.from == m).map(|x| x.seq).collect();
                assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
            }
        }
        assert!(format!("{:?}", group[0]).contains("causal"));
    }

    #[actix_rt::test]
    async fn total_order_across_nodes_survives_a_member_going_away() {
        let nodes = crate::net::loopback_cluster(3).await;
        let members = [1, 2, 3];
        let group: Vec<_> = nodes
            .iter()
            .map(|n| {
                let core = TotalOrderBroadcast::<u64>::new(n.id(), members, TotalConfig::default())
                    .unwrap();
                Broadcaster::start(At::Node(n), "log", &members, core).unwrap()
            })
            .collect();
        let mut subs: Vec<_> = group.iter().map(|g| g.subscribe()).collect();
        for round in 0..10u64 {
            for g in &group {
                g.publish(round * 10 + u64::from(g.id())).await.unwrap();
            }
        }
        let mut seqs = Vec::new();
        for s in &mut subs {
            let d = take(s, 30).await;
            seqs.push(d.into_iter().map(|x| x.payload).collect::<Vec<_>>());
        }
        assert_eq!(seqs[0], seqs[1]);
        assert_eq!(seqs[0], seqs[2]);
        // Node 3 goes away: once the others see it down they stop waiting for it.
        nodes[2].shutdown();
        group[0].publish(1000).await.unwrap();
        group[1].publish(2000).await.unwrap();
        let a = take(&mut subs[0], 2).await;
        let b = take(&mut subs[1], 2).await;
        assert_eq!(a, b);
        assert_eq!(a[0].order, 31);
    }
}
