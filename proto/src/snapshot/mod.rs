//! Consistent global snapshots (Chandy–Lamport, 1985) of an application run as a sans-IO state
//! machine: see [`ChandyLamport`].

pub mod chandy_lamport;

pub use chandy_lamport::{
    Application, ChandyLamport, DONE_MEMORY, GlobalSnapshot, LocalSnapshot, Outbox,
    SnapshotCommand, SnapshotConfig, SnapshotError, SnapshotEvent, SnapshotId, SnapshotMsg,
};
