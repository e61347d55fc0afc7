//! Building blocks of the examples: the stories the tour tells.
#![warn(missing_docs)]

pub mod election;
pub mod story;
pub mod workloads;
