//! Running plain futures as a causal process.

use super::process::{self, Shared};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that runs as the process that created it (see [`InProcessExt`]).
pub struct InProcess<F> {
    inner: Pin<Box<F>>,
    process: Option<Shared>,
}

impl<F: Future> Future for InProcess<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _in = this.process.as_ref().map(process::enter);
        this.inner.as_mut().poll(cx)
    }
}

/// Runs a plain future as the current causal process, like `tracing`'s `in_current_span`.
///
/// Futures an actor spawns through its context (`ctx.spawn`, `ctx.wait`, `run_later`,
/// `run_interval`, `ResponseActFuture`) run as the actor by themselves. A plain future handed to
/// `actix::spawn` or returned in a `ResponseFuture` runs on its own task; wrap it so its sends are
/// the actor's sends:
///
/// ```
/// use actix_coord::intercept::InProcessExt;
/// let fut = async { /* sends here are stamped by the creating process */ }.in_current_process();
/// # drop(fut);
/// ```
pub trait InProcessExt: Future + Sized {
    /// Wraps `self` to run as the process current now (nothing changes outside causal actors).
    fn in_current_process(self) -> InProcess<Self> {
        InProcess {
            inner: Box::pin(self),
            process: process::current_shared(),
        }
    }
}

impl<F: Future> InProcessExt for F {}
