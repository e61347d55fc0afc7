//! Workloads of the `node` binary that live in their own files.

pub mod berkeley;
