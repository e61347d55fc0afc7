//! Workloads of the `node` binary that live in the library (so examples and tests share them).

pub mod election;
