//! Processes, their clocks, and the "current process" of a thread.
//!
//! Every causal actor instance is one process. While its actor is polled, the process is the
//! thread's *current process*: a send made then is that process's send event, a message
//! delivered then is its receive event. Code running outside any causal actor (`main`, tests,
//! plain actors) belongs to its node's *external* process.

use crate::clock::{
    ClockError, HlcError, HlcTimestamp, HybridClock, LamportClock, ProcessId, VectorClock,
};
use crate::ticks::{self, EventKind, TickRecord};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{HashMap, VecDeque};
use std::mem::MaybeUninit;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Which clocks a process keeps and puts on its messages. The Lamport clock is always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClockSet {
    /// Keep a vector clock (exact happened-before; needed for ShiViz logs).
    pub vector: bool,
    /// Keep a hybrid logical clock.
    pub hybrid: bool,
}

impl ClockSet {
    /// Lamport, vector and hybrid clocks (the default).
    pub const ALL: ClockSet = ClockSet {
        vector: true,
        hybrid: true,
    };
    /// The Lamport clock alone: the cheapest stamp (a varint).
    pub const LAMPORT_ONLY: ClockSet = ClockSet {
        vector: false,
        hybrid: false,
    };
}

impl Default for ClockSet {
    fn default() -> Self {
        Self::ALL
    }
}

/// The clocks carried by one message: the sender and its clocks at the send event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The sending process.
    pub from: ProcessId,
    /// Sender's Lamport time at the send.
    pub lamport: u64,
    /// Sender's vector clock at the send, if it keeps one. Shared, not copied: the sender
    /// copies its clock only if it ticks again while a stamp still holds the old one.
    pub vector: Option<Arc<VectorClock>>,
    /// Sender's HLC timestamp at the send, if it keeps one.
    pub hlc: Option<HlcTimestamp>,
}

impl Stamp {
    /// The sender's own event number of the send (its vector entry, or its Lamport time when it
    /// keeps no vector clock): with [`from`](Self::from) it identifies the message.
    pub fn seq(&self) -> u64 {
        match &self.vector {
            Some(v) => v.get(self.from),
            None => self.lamport,
        }
    }
}

/// A copy of a process's clocks, as a handler sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clocks {
    /// The process.
    pub process: ProcessId,
    /// Lamport time of its last event.
    pub lamport: u64,
    /// Vector clock after its last event (empty when it keeps none).
    pub vector: VectorClock,
    /// HLC timestamp of its last event (0 when it keeps none).
    pub hlc: HlcTimestamp,
}

/// Why a received stamp could not be merged in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A logical counter in the stamp is absurd; nothing was merged.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The HLC timestamp is too far ahead; Lamport and vector clocks were merged, the HLC ticked
    /// locally instead.
    #[error(transparent)]
    Hlc(#[from] HlcError),
}

/// The mutable state of one process: identity and clocks.
#[derive(Debug)]
pub(crate) struct ProcessState {
    pub(crate) id: ProcessId,
    pub(crate) name: Arc<str>,
    set: ClockSet,
    lamport: LamportClock,
    vector: Arc<VectorClock>,
    hlc: HybridClock,
    /// Number of events of this process (equals `vector[id]` when a vector is kept).
    events: u64,
    /// The sender of the last message merged.
    pub(crate) sender: Option<ProcessId>,
    /// Where the own entry was in the vector clock last time.
    own_hint: usize,
    /// Physical time shared by the HLC events of the handler being run (see
    /// [`ProcessState::event_time_ms`]).
    poll_time: PollTime,
    /// The physical clock this process's HLC reads, when not the process-wide one.
    time: ProcessTime,
}

/// A physical clock for the HLC: milliseconds since the Unix epoch.
pub(crate) type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A process's own physical clock, if it has one ([`CausalBuilder::time_source`](super::CausalBuilder::time_source)).
#[derive(Clone, Default)]
pub(crate) struct ProcessTime(pub(crate) Option<TimeSource>);

impl std::fmt::Debug for ProcessTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProcessTime(own)"
        } else {
            "ProcessTime(process-wide)"
        })
    }
}

/// How HLC events of a process read physical time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PollTime {
    /// Outside a poll of the process's actor: every event reads the clock.
    PerEvent,
    /// Inside a poll: the first HLC event of each handler reads the clock, the next share it.
    NotRead,
    /// Inside a poll: the reading of the current handler.
    Read(u64),
}

impl ProcessState {
    pub(crate) fn new(id: ProcessId, name: Arc<str>, set: ClockSet) -> Self {
        Self {
            id,
            name,
            set,
            lamport: LamportClock::new(),
            vector: Arc::default(),
            hlc: HybridClock::with_max_offset(max_offset_ms()),
            events: 0,
            sender: None,
            own_hint: 0,
            poll_time: PollTime::PerEvent,
            time: ProcessTime::default(),
        }
    }

    /// This process's HLC reads `time` instead of the process-wide clock, and refuses
    /// timestamps more than `max_offset_ms` ahead instead of the process-wide maximum (each
    /// `None`: the process-wide setting).
    pub(crate) fn with_time(mut self, time: ProcessTime, max_offset_ms: Option<u32>) -> Self {
        self.time = time;
        if let Some(ms) = max_offset_ms {
            self.hlc = HybridClock::with_max_offset(u64::from(ms));
        }
        self
    }

    /// Physical time for this process's HLC, in ms since the Unix epoch.
    fn physical_ms(&self) -> u64 {
        match &self.time.0 {
            Some(f) => f(),
            None => physical_now_ms(),
        }
    }

    pub(crate) fn clocks(&self) -> Clocks {
        Clocks {
            process: self.id,
            lamport: self.lamport.time(),
            vector: (*self.vector).clone(),
            hlc: self.hlc.last(),
        }
    }

    #[inline]
    fn tick_own(&mut self) {
        self.events += 1;
        if self.set.vector {
            Arc::make_mut(&mut self.vector).tick_hinted(self.id, &mut self.own_hint);
        }
    }

    /// Physical time for an HLC event: read once per handler while the actor is polled (and once
    /// per poll for the reply merges and continuations outside handlers), afresh otherwise.
    ///
    /// Sharing a reading keeps every HLC law: [`HybridClock`] issues strictly increasing
    /// timestamps whatever physical time it is given (a stalled reading only advances the
    /// counter), so send and receive stamps still strictly increase. The reading is at most one
    /// handler old: `l` may trail physical time at the event by up to the handler's run time (as
    /// if the handler ran at once), and the maximum-offset check of a received timestamp is that
    /// much stricter, never looser.
    fn event_time_ms(&mut self) -> u64 {
        match self.poll_time {
            PollTime::Read(t) => t,
            PollTime::NotRead => {
                let t = self.physical_ms();
                self.poll_time = PollTime::Read(t);
                t
            }
            PollTime::PerEvent => self.physical_ms(),
        }
    }

    /// A handler starts: its HLC events read physical time afresh (once).
    #[inline]
    pub(crate) fn new_handler(&mut self) {
        if self.poll_time != PollTime::PerEvent {
            self.poll_time = PollTime::NotRead;
        }
    }

    /// A send event: tick every clock and return the stamp for the message.
    ///
    /// Inlined into the senders: the clock steps are a few instructions, and what is rare (the
    /// HLC's reading of time, logging) is out of line.
    #[inline(always)]
    pub(crate) fn send(&mut self, what: &dyn Fn() -> String) -> Stamp {
        self.lamport.tick();
        self.tick_own();
        let hlc = if self.set.hybrid {
            Some(self.hlc_send())
        } else {
            None
        };
        let stamp = Stamp {
            from: self.id,
            lamport: self.lamport.time(),
            vector: self.set.vector.then(|| self.vector.clone()),
            hlc,
        };
        if logging() {
            self.logged_send(&stamp, what);
        }
        stamp
    }

    /// The HLC's send event.
    #[inline(never)]
    fn hlc_send(&mut self) -> HlcTimestamp {
        let pt = self.event_time_ms();
        self.hlc.now(pt)
    }

    /// A send event's trace and log record.
    #[cold]
    #[inline(never)]
    fn logged_send(&self, stamp: &Stamp, what: &dyn Fn() -> String) {
        tracing::trace!(target: "actix_coord::tick", kind = "send", process = %self.id, lamport = stamp.lamport);
        if ticks::active() {
            self.record(EventKind::Send, what(), Some((self.id, stamp.seq())), None);
        }
    }

    /// A receive event: merge `stamp` (from untrusted input: its counters are checked), then tick.
    pub(crate) fn receive(
        &mut self,
        stamp: &Stamp,
        what: &dyn Fn() -> String,
    ) -> Result<(), MergeError> {
        if let Some(v) = &stamp.vector
            && let Some(value) = v.max_counter().filter(|&c| c > crate::clock::MAX_COUNTER)
        {
            return Err(ClockError::Absurd { value }.into());
        }
        self.receive_trusted(stamp, what)
    }

    /// A receive event of a stamp this OS process made itself (no range check needed).
    /// Inlined as [`send`](Self::send) is.
    #[inline(always)]
    pub(crate) fn receive_trusted(
        &mut self,
        stamp: &Stamp,
        what: &dyn Fn() -> String,
    ) -> Result<(), MergeError> {
        self.lamport.merge(stamp.lamport)?;
        self.sender = Some(stamp.from);
        // The merge and the tick under one `make_mut`.
        self.events += 1;
        if self.set.vector {
            let own = Arc::make_mut(&mut self.vector);
            if let Some(v) = &stamp.vector {
                own.merge(v);
            }
            own.tick_hinted(self.id, &mut self.own_hint);
        }
        let result = if self.set.hybrid {
            self.hlc_receive(stamp)
        } else {
            Ok(())
        };
        if logging() {
            self.logged_receive(stamp, what);
        }
        result
    }

    /// The HLC's receive event: a timestamp beyond the maximum offset is not merged (the HLC
    /// still ticks), and the error says so.
    #[inline(never)]
    fn hlc_receive(&mut self, stamp: &Stamp) -> Result<(), MergeError> {
        let pt = self.event_time_ms();
        match stamp.hlc.map(|h| self.hlc.update(h, pt)) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                self.hlc.now(pt);
                Err(e.into())
            }
            None => {
                self.hlc.now(pt);
                Ok(())
            }
        }
    }

    /// A receive event's trace and log record.
    #[cold]
    #[inline(never)]
    fn logged_receive(&self, stamp: &Stamp, what: &dyn Fn() -> String) {
        tracing::trace!(target: "actix_coord::tick", kind = "receive", process = %self.id, lamport = self.lamport.time(), from = %stamp.from);
        if ticks::active() {
            let msg = Some((stamp.from, stamp.seq()));
            self.record(EventKind::Receive, what(), msg, Some(stamp.from));
        }
    }

    /// A local event (a user `tracing` event or a semantic event).
    pub(crate) fn local(
        &mut self,
        kind: EventKind,
        text: String,
        fields: Vec<(String, ticks::FieldValue)>,
    ) {
        if let Some(r) = self.local_record(kind, text, fields) {
            ticks::record(r);
        }
    }

    /// A local event, returning its record (when a causal log is active) for the caller to
    /// write: the layer itself, which cannot reach the dispatcher while it handles an event.
    pub(crate) fn local_record(
        &mut self,
        kind: EventKind,
        text: String,
        fields: Vec<(String, ticks::FieldValue)>,
    ) -> Option<TickRecord> {
        self.lamport.tick();
        self.tick_own();
        if self.set.hybrid {
            let pt = self.event_time_ms();
            self.hlc.now(pt);
        }
        ticks::active().then(|| {
            let mut r = self.make_record(kind, text, None, None);
            r.fields = fields;
            r
        })
    }

    fn make_record(
        &self,
        kind: EventKind,
        event: String,
        msg: Option<(ProcessId, u64)>,
        peer: Option<ProcessId>,
    ) -> TickRecord {
        TickRecord {
            process: self.id,
            host: self.name.clone(),
            kind,
            event,
            event_number: self.events,
            lamport: self.lamport.time(),
            vector: self.vector.clone(),
            hlc: self.hlc.last(),
            msg,
            peer,
            fields: Vec::new(),
        }
    }

    fn record(
        &self,
        kind: EventKind,
        event: String,
        msg: Option<(ProcessId, u64)>,
        peer: Option<ProcessId>,
    ) {
        ticks::record(self.make_record(kind, event, msg, peer));
    }
}

/// Whether a tick is traced or logged: a causal log is alive, or `tracing` may want the
/// `actix_coord::tick` events (one load each).
#[inline]
fn logging() -> bool {
    ticks::active() || tracing::level_enabled!(tracing::Level::TRACE)
}

/// Names a message type for the log, computed only when a log is written.
pub(crate) type Label = fn() -> &'static str;

/// Stamps of replies addressed to one process, pushed by responders (on any thread) before
/// they release the reply itself, and merged by the process before it next runs.
///
/// The common case is one reply in flight: its stamp goes to a single lock-free slot. A stamp
/// that finds the slot taken, or finds older stamps waiting in the queue, goes to the queue, so
/// stamps pushed one after another are popped in that order (the slot, when full, always holds
/// the oldest stamp: it is filled only while the queue is empty).
pub(crate) struct ReplyInbox {
    /// `EMPTY`, `BUSY` (being written) or `FULL`.
    state: AtomicU8,
    /// Written by the pusher that moved `state` from `EMPTY` to `BUSY`; read by the owning
    /// process (the one consumer) when `state` is `FULL`. Initialised exactly when `FULL`.
    slot: UnsafeCell<MaybeUninit<(Stamp, Label)>>,
    queue: Mutex<VecDeque<(Stamp, Label)>>,
    nonempty: AtomicBool,
}

const EMPTY: u8 = 0;
const BUSY: u8 = 1;
const FULL: u8 = 2;

// SAFETY: the slot is written only by the one pusher that won the transition into `BUSY`, read
// only by the single consumer after it saw `FULL`, and handed over with Release/Acquire on
// `state`; `Stamp` and `Label` are `Send`.
unsafe impl Sync for ReplyInbox {}

impl Default for ReplyInbox {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            slot: UnsafeCell::new(MaybeUninit::uninit()),
            queue: Mutex::default(),
            nonempty: AtomicBool::new(false),
        }
    }
}

impl ReplyInbox {
    /// Queues the stamp of a reply; call before handing over the reply.
    #[inline]
    pub(crate) fn push(&self, stamp: Stamp, label: Label) {
        if !self.nonempty.load(Ordering::Acquire)
            && self
                .state
                .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            // SAFETY: this thread moved the slot from EMPTY to BUSY, so it alone owns it, and
            // it holds no value.
            unsafe { (*self.slot.get()).write((stamp, label)) };
            self.state.store(FULL, Ordering::Release);
            return;
        }
        self.push_queued(stamp, label);
    }

    /// [`push`](Self::push) when the slot is taken or older stamps wait in the queue.
    #[cold]
    #[inline(never)]
    fn push_queued(&self, stamp: Stamp, label: Label) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back((stamp, label));
        self.nonempty.store(true, Ordering::Release);
    }

    /// Whether a stamp may be waiting (one or two loads; the owner checks before [`pop`]).
    #[inline]
    fn maybe_nonempty(&self) -> bool {
        self.state.load(Ordering::Acquire) != EMPTY || self.nonempty.load(Ordering::Acquire)
    }

    /// The oldest queued stamp, if any. Only the owning process pops (one consumer).
    fn pop(&self) -> Option<(Stamp, Label)> {
        // Only pushers move the slot out of EMPTY, and only this (single) consumer moves it out
        // of FULL, so FULL observed here stays FULL until the store below.
        if self.state.load(Ordering::Acquire) == FULL {
            // SAFETY: FULL was published with Release after the value was written; no pusher
            // touches a FULL slot, and there is no other popper.
            let item = unsafe { (*self.slot.get()).assume_init_read() };
            self.state.store(EMPTY, Ordering::Release);
            return Some(item);
        }
        if !self.nonempty.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let item = q.pop_front();
        if q.is_empty() {
            self.nonempty.store(false, Ordering::Release);
        }
        item
    }
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        if *self.state.get_mut() == FULL {
            // SAFETY: FULL means the slot holds a value, and `&mut self` means nobody else
            // can touch it.
            unsafe { self.slot.get_mut().assume_init_drop() };
        }
    }
}

/// A causal actor's process: its state, and the inbox of reply stamps. Shared between the
/// actor's context and the futures it spawns, on one thread.
pub(crate) struct ProcessCell {
    pub(crate) state: RefCell<ProcessState>,
    pub(crate) inbox: Arc<ReplyInbox>,
    /// The process keeps an HLC (`state.set.hybrid`, read without borrowing).
    hybrid: bool,
    /// A send or receive outside this process's scope was already reported (once per process).
    pub(crate) unscoped_reported: Cell<bool>,
}

impl ProcessCell {
    pub(crate) fn new(state: ProcessState) -> Self {
        Self {
            hybrid: state.set.hybrid,
            state: RefCell::new(state),
            inbox: Arc::default(),
            unscoped_reported: Cell::new(false),
        }
    }

    /// Switches how HLC events read physical time: shared per handler during a poll, per event
    /// otherwise. Only processes with an HLC pay for it.
    #[inline]
    fn set_poll_time(&self, shared: bool) {
        if self.hybrid
            && let Ok(mut st) = self.state.try_borrow_mut()
        {
            st.poll_time = if shared {
                PollTime::NotRead
            } else {
                PollTime::PerEvent
            };
        }
    }

    /// Merges the stamps of replies that have arrived: each is a receive event.
    #[inline]
    pub(crate) fn merge_replies(&self) {
        if self.inbox.maybe_nonempty() {
            self.merge_replies_slow();
        }
    }

    #[inline(never)]
    fn merge_replies_slow(&self) {
        // One borrow for the whole batch (the common case is one stamp), released around a
        // warning so that the causal layer logs it as this process's event.
        let mut state = self.state.borrow_mut();
        while let Some((stamp, label)) = self.inbox.pop() {
            let merged = state.receive_trusted(&stamp, &|| format!("reply to {}", label()));
            if let Err(e) = merged {
                drop(state);
                tracing::warn!(target: "actix_coord::intercept", error = %e, "reply clock not merged");
                state = self.state.borrow_mut();
            }
            if !self.inbox.maybe_nonempty() {
                break;
            }
        }
    }
}

/// A shared process cell.
pub(crate) type Shared = Rc<ProcessCell>;

thread_local! {
    /// The process of the causal actor (or bound future) being polled on this thread. Set only
    /// by the guards below, which keep the cell alive for as long as it is set.
    static CURRENT: Cell<*const ProcessCell> = const { Cell::new(std::ptr::null()) };
}

/// Makes `process` the thread's current process until the guard drops, after merging the
/// replies it has received. This is a poll of the process's actor (or of a future bound to
/// it): until the guard drops, its HLC events share one reading of physical time per handler.
#[inline]
pub(crate) fn enter(process: &Shared) -> EnterGuard<'_> {
    process.set_poll_time(true);
    process.merge_replies();
    let prev = CURRENT.with(|c| c.replace(Rc::as_ptr(process)));
    EnterGuard { prev, process }
}

/// Restores the previous current process on drop; borrows the process so it outlives the guard.
pub(crate) struct EnterGuard<'a> {
    prev: *const ProcessCell,
    process: &'a ProcessCell,
}

impl Drop for EnterGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
        self.process.set_poll_time(false);
    }
}

/// [`enter`] with an owned handle, for guards handed to users: even if such a guard is leaked,
/// the process it set stays alive.
pub(crate) fn enter_owned(process: Shared) -> OwnedEnterGuard {
    process.merge_replies();
    let prev = CURRENT.with(|c| c.replace(Rc::as_ptr(&process)));
    OwnedEnterGuard {
        prev,
        _process: process,
    }
}

/// Restores the previous current process on drop, then releases its process.
pub(crate) struct OwnedEnterGuard {
    prev: *const ProcessCell,
    _process: Shared,
}

impl Drop for OwnedEnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// The current process cell, if any. The reference is valid while the guard that set it lives,
/// which is longer than any use on this thread inside the poll it covers.
fn current_cell<'a>() -> Option<&'a ProcessCell> {
    let p = CURRENT.with(|c| c.get());
    // SAFETY: a non-null CURRENT was set by a live `EnterGuard`/`OwnedEnterGuard` on this thread,
    // which keeps the `Rc<ProcessCell>` it points into alive until it restores the previous value.
    unsafe { p.as_ref() }
}

/// The thread's current causal process, if code is running inside a causal actor.
pub(crate) fn current_shared() -> Option<Shared> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` comes from `Rc::as_ptr` of an `Rc` kept alive by a live guard (see above);
    // taking a new strong reference to it is sound.
    unsafe {
        Rc::increment_strong_count(p);
        Some(Rc::from_raw(p))
    }
}

/// A semantic event of the current process (the body of `trace::event`): a local event that
/// ticks its clocks, with `kind` (`"local"` is a plain local event).
pub(crate) fn event(kind: &str, text: String, fields: Vec<(String, ticks::FieldValue)>) {
    let kind = match kind {
        "local" => EventKind::Local,
        k => EventKind::Semantic(std::borrow::Cow::Owned(k.to_owned())),
    };
    with_current(|p| p.local(kind, text, fields));
}

/// Runs `f` on the current process's state, or on the default node's external process.
pub(crate) fn with_current<R>(f: impl FnOnce(&mut ProcessState) -> R) -> R {
    with_current_cell(|state, _| f(state))
}

/// Runs `f` on the current process's state and reply inbox (`None` for the external process).
#[inline]
pub(crate) fn with_current_cell<R>(
    f: impl FnOnce(&mut ProcessState, Option<&Arc<ReplyInbox>>) -> R,
) -> R {
    match current_cell() {
        Some(cell) => f(&mut cell.state.borrow_mut(), Some(&cell.inbox)),
        None => with_external(default_node(), |ext| {
            let mut guard = ext.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard, None)
        }),
    }
}

/// Whether `cell` is the thread's current process.
pub(crate) fn is_current(cell: &ProcessCell) -> bool {
    std::ptr::eq(CURRENT.with(|c| c.get()), cell)
}

/// Whether code on this thread is running inside a causal actor.
pub fn in_causal_actor() -> bool {
    current_cell().is_some()
}

/// The clocks of the current process: the causal actor being run, or the external process.
pub fn current_clocks() -> Clocks {
    with_current(|p| p.clocks())
}

/// The id of the current process: the causal actor being run, or the external process.
pub fn current_process() -> ProcessId {
    with_current(|p| p.id)
}

/// Records a send event of the current process (causal actor or external) and returns the
/// stamp to put on the message.
///
/// The crate's context does this by itself for local messages; transports call it for
/// messages that leave the process. `what` describes the message for the causal log.
pub fn stamp_send(what: &str) -> Stamp {
    with_current(|p| p.send(&|| what.to_owned()))
}

/// Records a receive event of the current process: merges `stamp` into its clocks and ticks.
///
/// # Errors
/// See [`MergeError`]; with [`MergeError::Clock`] nothing was merged or recorded.
pub fn receive_stamp(stamp: &Stamp, what: &str) -> Result<(), MergeError> {
    with_current(|p| p.receive(stamp, &|| what.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Identity: node ids, local indices, names.

static DEFAULT_NODE: AtomicU32 = AtomicU32::new(0);
static NEXT_LOCAL: AtomicU32 = AtomicU32::new(1);

/// Sets the node id given to processes started without one, and used for sends made outside any
/// actor. Default 0. Set it once, before starting actors.
pub fn set_default_node(node: u32) {
    DEFAULT_NODE.store(node, Ordering::Relaxed);
}

/// The node id given to processes started without one.
pub fn default_node() -> u32 {
    DEFAULT_NODE.load(Ordering::Relaxed)
}

static INCARNATION: AtomicU32 = AtomicU32::new(0);

/// Sets this OS process's incarnation: 0 (the default) at a member's first start, one more at
/// each restart. It goes into the id of every process started afterwards
/// ([`ProcessId::incarnation`]) and, when not 0, into its name (`lock~2`), so that a restarted
/// member's vector-clock entries and log names never collide with its predecessor's and the
/// logs of both can be merged and checked as one run.
///
/// Set it once, first thing, before starting actors or sending: processes already started keep
/// their ids. [`Incarnation::claim`](super::Incarnation::claim) keeps the count in a file, so that
/// nobody has to.
///
/// ```
/// use actix_coord::intercept::{incarnation, set_incarnation};
///
/// set_incarnation(2);
/// assert_eq!(incarnation(), 2);
/// ```
pub fn set_incarnation(incarnation: u32) {
    INCARNATION.store(incarnation, Ordering::Relaxed);
}

/// This OS process's incarnation (see [`set_incarnation`]).
pub fn incarnation() -> u32 {
    INCARNATION.load(Ordering::Relaxed)
}

/// A fresh local index, unique within this OS process (so several nodes in one OS process never
/// share a process id).
pub(crate) fn next_local() -> u32 {
    NEXT_LOCAL.fetch_add(1, Ordering::Relaxed)
}

/// A fresh process id on `node`, in this OS process's incarnation.
pub(crate) fn fresh_id(node: u32) -> ProcessId {
    ProcessId::of(node, incarnation(), next_local())
}

/// Per type-name instance counters, for default names `Type#k`.
fn next_type_index(type_name: &'static str) -> u32 {
    static COUNTERS: OnceLock<Mutex<HashMap<&'static str, u32>>> = OnceLock::new();
    let mut map = COUNTERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let n = map.entry(type_name).or_insert(0);
    *n += 1;
    *n
}

/// Default process name for an actor type: its last path segment and an instance index.
pub(crate) fn default_name<A>() -> String {
    let full = std::any::type_name::<A>();
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    format!("{short}#{}", next_type_index(short))
}

/// The name of a new local process: `name` made fit for logs ([`sanitize_name`]), marked with
/// the incarnation when it is not 0 (`name~2`), and unique within this OS process. The first
/// process to ask for a name gets it as it is; each later one
/// gets the first free of `name#2`, `name#3`, … (so `with_name("Session")` three times gives
/// `Session`, `Session#2`, `Session#3`). Names are never given back: a process started after
/// another one stopped does not take its name either, since its counters start again at 1.
/// Costs one entry per process started.
pub(crate) fn unique_name(name: &str) -> Arc<str> {
    #[derive(Default)]
    struct Taken {
        names: std::collections::HashSet<Arc<str>>,
        next_suffix: HashMap<Arc<str>, u32>,
    }
    static TAKEN: OnceLock<Mutex<Taken>> = OnceLock::new();
    let base = match incarnation() {
        0 => sanitize_name(name),
        k => sanitize_name(&format!("{name}~{k}")),
    };
    let mut taken = TAKEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Taken { names, next_suffix } = &mut *taken;
    if names.insert(base.clone()) {
        return base;
    }
    let k = next_suffix.entry(base.clone()).or_insert(2);
    loop {
        let candidate: Arc<str> = Arc::from(format!("{base}#{k}"));
        *k += 1;
        if names.insert(candidate.clone()) {
            return candidate;
        }
    }
}

/// A name fit for logs: whitespace becomes `_` (ShiViz's host regex is `\S*`).
pub(crate) fn sanitize_name(name: &str) -> Arc<str> {
    let s: String = name
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if s.is_empty() {
        Arc::from("_")
    } else {
        Arc::from(s)
    }
}

// ---------------------------------------------------------------------------------------------
// External processes.

type ExternalMap = RwLock<HashMap<u32, Arc<Mutex<ProcessState>>>>;

fn externals() -> &'static ExternalMap {
    static EXTERNALS: OnceLock<ExternalMap> = OnceLock::new();
    EXTERNALS.get_or_init(Default::default)
}

static EXTERNAL_NAME: RwLock<Option<String>> = RwLock::new(None);

/// Names the external processes (default `external`, or `external@N` on node N ≠ 0; made
/// unique like every process name, see [`CausalBuilder::name`](super::CausalBuilder::name)).
///
/// Call it before the first send from outside an actor; later calls rename only nodes whose
/// external process has not sent yet.
pub fn set_external_name(name: &str) {
    *EXTERNAL_NAME.write().unwrap_or_else(|e| e.into_inner()) = Some(name.to_owned());
}

thread_local! {
    /// The external process this thread used last, and its node: sends from outside actors
    /// skip the lookup in the shared map (external processes are never removed from it).
    static LAST_EXTERNAL: RefCell<Option<(u32, Arc<Mutex<ProcessState>>)>> =
        const { RefCell::new(None) };
}

/// Runs `f` on the external process of `node` (looked up once per thread and node).
fn with_external<R>(node: u32, f: impl FnOnce(&Mutex<ProcessState>) -> R) -> R {
    let ext = LAST_EXTERNAL.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((n, p)) if *n == node => p.clone(),
            _ => {
                let p = external_process(node);
                *last = Some((node, p.clone()));
                p
            }
        }
    });
    f(&ext)
}

/// The external process of `node`, created on first use.
pub(crate) fn external_process(node: u32) -> Arc<Mutex<ProcessState>> {
    if let Some(p) = externals()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&node)
    {
        return p.clone();
    }
    let mut map = externals().write().unwrap_or_else(|e| e.into_inner());
    map.entry(node)
        .or_insert_with(|| {
            let base = EXTERNAL_NAME
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "external".to_owned());
            let name = if node == 0 {
                base
            } else {
                format!("{base}@{node}")
            };
            let id = ProcessId::of(node, incarnation(), 0);
            let name = unique_name(&name);
            ticks::register_name(id, name.clone());
            Arc::new(Mutex::new(ProcessState::new(id, name, ClockSet::ALL)))
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Physical time for the HLC.

static TIME_SOURCE: RwLock<Option<TimeSource>> = RwLock::new(None);
static MAX_OFFSET_MS: AtomicU32 = AtomicU32::new(crate::clock::DEFAULT_MAX_OFFSET_MS as u32);

/// Replaces the physical clock the HLCs read (milliseconds since the Unix epoch); by default the
/// system's real-time clock. Processes created afterwards and existing ones read it from then on,
/// except those started with a clock of their own
/// ([`CausalBuilder::time_source`](super::CausalBuilder::time_source)).
pub fn set_time_source(source: impl Fn() -> u64 + Send + Sync + 'static) {
    *TIME_SOURCE.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(source));
    CUSTOM_TIME.store(true, Ordering::Release);
}

/// Whether [`set_time_source`] was called (skips the lock on the common path).
static CUSTOM_TIME: AtomicBool = AtomicBool::new(false);

/// Sets the HLC maximum offset (ms) for processes created afterwards. Default 500 ms. A process
/// started with [`CausalBuilder::max_offset_ms`](super::CausalBuilder::max_offset_ms) keeps its
/// own.
pub fn set_max_offset_ms(ms: u32) {
    MAX_OFFSET_MS.store(ms, Ordering::Relaxed);
}

fn max_offset_ms() -> u64 {
    u64::from(MAX_OFFSET_MS.load(Ordering::Relaxed))
}

/// Physical time for HLC ticks, in ms since the Unix epoch.
pub fn physical_now_ms() -> u64 {
    if !CUSTOM_TIME.load(Ordering::Acquire) {
        return system_ms();
    }
    if let Some(f) = TIME_SOURCE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return f();
    }
    system_ms()
}

/// Milliseconds since the Unix epoch from the one `clock_gettime` wrapper,
/// [`SystemClock::realtime`](crate::clock::physical::SystemClock::realtime).
fn system_ms() -> u64 {
    use crate::clock::physical::{HardwareClock, SystemClock};
    SystemClock::realtime().now_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(from: u32, n: u64) -> Stamp {
        Stamp {
            from: ProcessId::new(1, from),
            lamport: n,
            vector: Some(Arc::new(
                VectorClock::from_entries([(ProcessId::new(1, from), n)]).unwrap(),
            )),
            hlc: None,
        }
    }

    fn label() -> &'static str {
        "Test"
    }

    fn drain(inbox: &ReplyInbox) -> Vec<u64> {
        std::iter::from_fn(|| inbox.pop().map(|(s, _)| s.lamport)).collect()
    }

    #[test]
    fn a_handler_shares_one_reading_of_physical_time_and_hlc_stamps_still_increase() {
        let id = ProcessId::new(1, 1);
        let mut p = ProcessState::new(id, Arc::from("p"), ClockSet::ALL);
        // Outside a poll: every event reads the clock, and a new handler changes nothing.
        p.new_handler();
        let a = p.send(&String::new).hlc.unwrap();
        assert_eq!(p.poll_time, PollTime::PerEvent);
        // Inside a poll: the first event reads the clock, the next ones share the reading.
        p.poll_time = PollTime::NotRead;
        let b = p.send(&String::new).hlc.unwrap();
        let PollTime::Read(t) = p.poll_time else {
            panic!("the first event of the handler reads physical time");
        };
        assert!(b.physical_ms() >= t);
        let other = Stamp {
            from: ProcessId::new(1, 2),
            lamport: 1,
            vector: None,
            hlc: Some(b),
        };
        p.receive_trusted(&other, &String::new).unwrap();
        let c = p.clocks().hlc;
        let d = p.send(&String::new).hlc.unwrap();
        assert_eq!(p.poll_time, PollTime::Read(t));
        // Send and receive stamps strictly increase all the same.
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        // The next handler reads again.
        p.new_handler();
        assert_eq!(p.poll_time, PollTime::NotRead);
        assert!(p.send(&String::new).hlc.unwrap() > d);
    }

    #[test]
    fn reply_inbox_pops_in_push_order_across_slot_and_queue() {
        let inbox = ReplyInbox::default();
        assert!(!inbox.maybe_nonempty());
        inbox.push(stamp(1, 1), label); // the slot
        inbox.push(stamp(1, 2), label); // the queue: the slot is full
        assert_eq!(inbox.pop().map(|(s, _)| s.lamport), Some(1));
        inbox.push(stamp(1, 3), label); // the queue: older stamps wait there
        assert_eq!(drain(&inbox), vec![2, 3]);
        assert!(!inbox.maybe_nonempty());
        inbox.push(stamp(1, 4), label); // the slot again, once all is drained
        assert!(inbox.maybe_nonempty());
        assert_eq!(drain(&inbox), vec![4]);
        // A stamp left in the slot is dropped with the inbox (its vector clock is released).
        let v = stamp(1, 5);
        let clock = v.vector.clone().unwrap();
        inbox.push(v, label);
        drop(inbox);
        assert_eq!(Arc::strong_count(&clock), 1);
    }

    #[test]
    fn reply_inbox_keeps_each_pushers_order_under_concurrency() {
        const PUSHERS: u32 = 4;
        const EACH: u64 = 5_000;
        let inbox = Arc::new(ReplyInbox::default());
        let handles: Vec<_> = (1..=PUSHERS)
            .map(|p| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for n in 1..=EACH {
                        inbox.push(stamp(p, n), label);
                    }
                })
            })
            .collect();
        let mut last = vec![0u64; PUSHERS as usize + 1];
        let mut got = 0;
        while got < u64::from(PUSHERS) * EACH {
            match inbox.pop() {
                Some((s, _)) => {
                    let p = s.from.local as usize;
                    assert_eq!(s.lamport, last[p] + 1, "pusher {p} out of order");
                    last[p] = s.lamport;
                    got += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(inbox.pop().is_none());
    }
}
