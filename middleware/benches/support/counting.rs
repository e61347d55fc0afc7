//! A global allocator that counts allocations (every thread) while switched on, for the bench
//! binaries (`#[path]`-included by each): allocations per message or per round trip, live heap
//! bytes of a structure. Off, it costs one relaxed load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);

/// Counts while on; otherwise the system allocator with one relaxed load more.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(l.size() as i64, Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if ON.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(l.size() as i64, Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ON.load(Relaxed) {
            LIVE.fetch_sub(l.size() as i64, Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if ON.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            LIVE.fetch_add(new as i64 - l.size() as i64, Relaxed);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, new) }
    }
}

/// Switches counting on; returns the counters to give [`stop`].
pub fn start() -> (u64, i64) {
    let at = (ALLOCS.load(Relaxed), LIVE.load(Relaxed));
    ON.store(true, Relaxed);
    at
}

/// Switches counting off: allocations made, and the change in live heap bytes, since
/// `start` returned `at`.
pub fn stop(at: (u64, i64)) -> (u64, i64) {
    ON.store(false, Relaxed);
    (ALLOCS.load(Relaxed) - at.0, LIVE.load(Relaxed) - at.1)
}

/// Allocations made, and the change in live heap bytes, while `f` runs (all threads).
pub fn count<T>(f: impl FnOnce() -> T) -> (T, u64, i64) {
    let at = start();
    let out = f();
    let (a, l) = stop(at);
    (out, a, l)
}
