//! Shared pieces of the tests: the model checks' harness, real nodes (each test file includes this with `mod support;`
//! and uses what it needs, hence `dead_code` allowed).

#[allow(dead_code)]
pub mod nodes;

#[allow(dead_code)]
pub mod harness;

#[allow(dead_code)]
pub mod election;
