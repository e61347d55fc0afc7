//! Group broadcast with ordering guarantees: causal ([`CausalBroadcast`]) and total
//! ([`TotalOrderBroadcast`]).
//!
//! Both are sans-IO [`Protocol`](crate::protocol::Protocol) cores run by the generic
//! [`Driver`](crate::driver::Driver) (in one process over
//! [`LocalLinks`](crate::driver::LocalLinks), or across nodes with
//! [`Broadcaster::start`] with [`At::Node`](crate::driver::At::Node)), and share one interface: the command
//! [`BroadcastCommand::Publish`], the events [`BroadcastEvent`], and the handle [`Broadcaster`]
//! whose [`subscribe`](Broadcaster::subscribe) yields every [`Delivery`] in the group's order.
//!
//! | | causal | total |
//! |---|---|---|
//! | guarantee | a message is delivered after every message that causally precedes it | every member delivers the same messages in the same order |
//! | messages per broadcast | N−1 ((N−1)² with relay) | N(N−1) |
//! | latency | one hop | two hops (data, then acknowledgements) |
//! | channels | any order | FIFO |
//!
//! Every delivery is also a `broadcast.deliver` event in the causal log (fields `group`,
//! `order`, `from`, `seq`, `position`), and every publication a `broadcast.publish`, so
//! `causal-log` can check the order from the vector clocks.
//!
//! ```
//! use actix_coord::broadcast::{Broadcaster, CausalBroadcast, CausalConfig};
//! use actix_coord::driver::{At, LocalLinks};
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::<CausalBroadcast<String>>::new();
//! let members = [1, 2, 3];
//! let group: Vec<_> = members
//!     .iter()
//!     .map(|&id| {
//!         let core = CausalBroadcast::new(id, members, CausalConfig::default()).unwrap();
//!         Broadcaster::start(At::Local(&links, id), "chat", &members, core).unwrap()
//!     })
//!     .collect();
//! let mut at_3 = group[2].subscribe();
//! group[0].publish("hello".to_string()).await.unwrap();
//! let d = at_3.recv().await.unwrap();
//! assert_eq!((d.from, d.payload.as_str()), (1, "hello"));
//! # });
//! ```

mod api;

pub use actix_coord_proto::broadcast::*;
pub use api::{BroadcastCore, Broadcaster, Deliveries, PublishError, RecvError};
