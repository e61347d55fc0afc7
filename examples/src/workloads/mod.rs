//! Workloads of the `node` binary and their building blocks.

pub mod berkeley;
pub mod counter;
pub mod election;
