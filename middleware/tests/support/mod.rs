//! Shared pieces of the model-checking tests (each test file includes this with `mod support;`
//! and uses what it needs, hence `dead_code` allowed).

#[allow(dead_code)]
pub mod channels;
