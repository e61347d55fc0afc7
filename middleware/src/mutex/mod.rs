//! Distributed locks as actors: a lock actor per node for a named resource, and the
//! [`DistributedLock`] handle that acquires it.
//!
//! The three sans-IO cores ([`LamportMutex`], [`RicartAgrawala`], [`SuzukiKasami`]), the one
//! core over them ([`AnyLock`]), the fencing tokens and [`FencedResource`] live in
//! `actix_coord_proto::mutex` and are re-exported here; that module's docs teach the
//! algorithms, their costs and their faults. This one adds the runtime: the handle, its
//! guard, its options and its errors (see [`DistributedLock`] for what the API promises).

mod api;

pub use actix_coord_proto::mutex::*;
pub use api::{
    AcquireError, DEFAULT_LEADER_SETTLE, DistributedLock, LOCK_EVENT_BUFFER, LockConfig, LockGuard,
    ReleaseError, lock_actor_name,
};
