//! Building blocks of the examples: the stories the tour tells.
#![warn(missing_docs)]

pub mod berkeley_demo;
pub mod broadcast_demo;
pub mod election;
pub mod post;
pub mod snapshot_demo;
pub mod story;
pub mod tickets;
pub mod workloads;
pub mod ws_chat;
