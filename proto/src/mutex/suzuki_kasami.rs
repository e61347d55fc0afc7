//! Suzuki–Kasami token-based mutual exclusion (Suzuki & Kasami 1985, "A Distributed Mutual
//! Exclusion Algorithm"), with an epoch on the token so that it can be regenerated after its
//! holder crashes.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`; `now` is unused.
//!
//! # The paper's algorithm
//! Each node `i` keeps `RN_i[1..N]`, the highest request number heard from each node. The single
//! token carries `LN[1..N]` (the number of each node's last satisfied request) and a queue `Q` of
//! nodes waiting for it.
//! 1. To enter, `i` holding the (idle) token enters at once: **0 messages**. Otherwise it
//!    increments `RN_i[i]` and broadcasts `REQUEST(i, n)`.
//! 2. On `REQUEST(j, n)`, node `i` sets `RN_i[j] = max(RN_i[j], n)`; if it holds the token idle
//!    and `RN_i[j] > LN[j]`, it sends the token to `j`.
//! 3. On exit, `i` sets `LN[i] = RN_i[i]`, appends to `Q` every `j` not in `Q` with
//!    `RN_i[j] > LN[j]`, and sends the token to the head of `Q`, if any.
//!
//! The paper writes `RN[j] = LN[j] + 1`: a node has one request at a time. Here a wait can be
//! cancelled and followed by a new request, so `RN[j]` may be `LN[j] + 2` or more (the
//! cancelled requests were never served); with the paper's test such a node was never queued
//! again (issue 11: `a_request_after_a_cancelled_wait_is_served`).
//!
//! A critical section costs N−1 requests and one token message: **N**, or **0** when the token is
//! already here.
//!
//! # Order
//! Not FIFO by request time. On exit the holder appends the outstanding requesters in node-id
//! order *starting after itself* (round robin), and the token queue is served first in, first
//! out. So a waiting node is served within N−1 handoffs (no starvation, bounded bypass), but a
//! later request can be served before an earlier one.
//!
//! # Fencing
//! The token counts grants: `seq` is incremented at each entry. A [`Fence`] is
//! `round << 32 | seq`, where `round` is the token's epoch round, so every owner's fence is
//! higher than the previous owner's, across regenerations too.
//!
//! # Holder crash and regeneration
//! A crashed holder loses the token. Regeneration must be decided by one node per epoch, or two
//! tokens appear. The decider is a *recovery leader*, by one of two rules:
//! * **the elected leader** ([`SuzukiKasami::with_external_leader`]): the shell tells the core
//!   who leads with [`SuzukiKasami::set_leader`] (the lock API feeds it from a bully
//!   [`LeaderView`](crate::election::LeaderView), see
//!   [`LockConfig`](super::LockConfig)). Only a node that leads in its own view recovers: when
//!   a peer goes down, and when it *becomes* the leader while it believes a member down (the
//!   previous leader may have crashed with the token, or before it could regenerate it). A node
//!   that stops leading abandons its recovery. Nobody regenerates while nobody leads.
//! * **the lowest live id** in this node's view (the default, with no election), on every
//!   peer-down.
//!
//! A node that sent the token to a peer later declared down (before seeing the token again)
//! must not be ignored: the token may have died in flight after the decider's last probe. That
//! node asks ([`SkMsg::Recover`], to every peer, since its view of who decides may be stale),
//! and the decider — the lowest live node, the leader, or a node that becomes leader later —
//! recovers. (Under the lowest-live rule the sender used to recover itself, which could open a
//! second epoch and regenerate twice for one crash.)
//!
//! 1. The recovery leader (if it does not hold the token itself) opens a new [`Epoch`]
//!    `(round + 1, leader)` and sends `PROBE(epoch)` to every live peer.
//! 2. A node receiving a probe of a newer epoch **adopts** it: from then on it rejects any token of
//!    an older epoch. If it holds the token, it re-stamps it with the new epoch. It answers with
//!    whether it has the token, its own request number and whether that request is waiting.
//! 3. When every live peer has answered and nobody has the token, the leader regenerates it in the
//!    new epoch, with `LN` rebuilt from the answers and the waiting nodes queued. The epoch's
//!    `leader` field names the node that regenerated it.
//!
//! A recovery leader whose recovery is running starts over (a newer epoch) when a peer goes down
//! that already answered (it may have had the token, or been sent it) or that it sent the token
//! to itself, and on a `Recover` from a node that had adopted the running epoch (it may have
//! reported the token before losing it). The death of a peer that has not answered yet only ends
//! the wait for it: whatever that peer had is reported by its receiver or rejected.
//!
//! Two recoveries may run at once (different leaders, so different epochs); each leader waits for
//! the other's answer, which it only gives after adopting the newer epoch (abandoning its own
//! older recovery) or after regenerating (then it reports the token). Either way at most one
//! token is made.
//!
//! A token in flight from the crashed holder either reaches a node before that node adopts the
//! new epoch (the node then reports it, and nothing is regenerated) or after (it is rejected). So
//! with crash-stop faults and an accurate failure detector there is **never more than one valid
//! token**, whichever rule decides; the stateright checks
//! `suzuki_kasami_never_two_valid_tokens_with_a_crash` and
//! `suzuki_kasami_elected_leader_never_two_valid_tokens_with_a_crash` verify it for N=3 (the
//! second also that only the leader regenerates, at most once per crash).
//! **A false suspicion of the holder makes two tokens**, whichever rule decides: the suspected
//! holder keeps its old-epoch token until it meets the new one (then it emits
//! [`LockEvent::Lost`]); the fence of the new epoch is higher, so a
//! [`FencedResource`](super::FencedResource) refuses the old holder's writes.

use super::{
    Fence, HelloKind, JOIN_RETRY, Join, LockCommand, LockError, LockEvent, LockState, LockTimer,
    MAX_FENCE_SEQ, check_fenced_members, make_fence,
};
use crate::protocol::CatchUp as _;
use crate::protocol::{ConfigError, EffectsOf, Membership, NodeId, PeerWire, Protocol};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// A token epoch: a round number and the node that opened it, ordered by `(round, leader)`.
///
/// Two recovery leaders can never open the same epoch, and a newer epoch supersedes every token
/// of an older one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch {
    /// Regeneration round, 0 for the initial token.
    pub round: u32,
    /// The node that opened this epoch (the lowest member for round 0).
    pub leader: NodeId,
}

/// The privilege: whoever holds it (in a current epoch) may enter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token {
    /// The epoch this token belongs to.
    pub epoch: Epoch,
    /// Grants made with this token in its epoch (saturating at
    /// [`MAX_FENCE_SEQ`](super::MAX_FENCE_SEQ): fences stop increasing after 16 777 215 grants
    /// in one epoch instead of overflowing).
    pub seq: u64,
    /// Handoffs of this token in its epoch; a token not newer than the last one seen here is a
    /// duplicate and is dropped.
    pub hop: u64,
    /// `LN`: per member (in sorted member order), the number of its last satisfied request.
    pub ln: Vec<u64>,
    /// `Q`: members waiting for the token, served in order.
    pub queue: VecDeque<NodeId>,
}

impl Token {
    /// The fence of the latest grant made with this token: `round.leader:seq`
    /// ([`make_fence`]), so two epochs of the same round opened by different members (two
    /// sides of a partition) never share a fence.
    pub fn fence(&self) -> Fence {
        make_fence(u64::from(self.epoch.round), self.epoch.leader, self.seq)
    }
}

/// Messages of [`SuzukiKasami`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SkMsg {
    /// Step 1: the sender's `n`-th request.
    Request {
        /// The sender's request number.
        n: u64,
    },
    /// The token itself.
    Token(Token),
    /// Recovery step 1: the sender opens `epoch` and asks who has the token.
    Probe {
        /// The epoch being opened.
        epoch: Epoch,
    },
    /// Recovery step 2: the answer to a probe.
    ProbeReply {
        /// The epoch probed.
        epoch: Epoch,
        /// Whether the sender holds the token (now re-stamped with `epoch`).
        has_token: bool,
        /// The sender's own request number `RN[sender]`.
        requests: u64,
        /// Whether the sender's latest request is still waiting.
        waiting: bool,
    },
    /// The sender handed the token to a peer it now believes down (the token may have died
    /// with it after the decider's last probe): the decider recovers — the lowest live node,
    /// or with [`SuzukiKasami::with_external_leader`] the elected leader (or the next one).
    Recover {
        /// The newest epoch the sender had adopted: a recovery of a newer epoch probes the
        /// sender after the loss, so it already covers it.
        epoch: Epoch,
    },
    /// The sender (re)started with empty state, as incarnation `incarnation`, and is catching
    /// up. A receiver that had met another incarnation of it handles that one as crashed (its
    /// token, if it had it, is recovered; it leaves the token queue) and answers with
    /// [`State`](Self::State).
    Hello {
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// The answer to a `Hello`, also sent to a peer seen up again.
    State {
        /// The sender's incarnation.
        incarnation: u64,
        /// The newest epoch the sender adopted.
        epoch: Epoch,
        /// The sender's `RN`, in member order (the newcomer numbers its requests above what
        /// its predecessor used, so that they count as outstanding).
        rn: Vec<u64>,
        /// The token's `LN` when the sender holds the token.
        ln: Option<Vec<u64>>,
        /// The incarnations the sender has met: `(member, incarnation)`.
        known: Vec<(NodeId, u64)>,
    },
}

impl PeerWire for SkMsg {
    const TAG: &'static str = "actix_coord.suzuki_kasami.v2";
}

/// Who decides a regeneration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Decider {
    /// The lowest live id in this node's view.
    LowestLive,
    /// The elected leader, as the shell last told this node ([`SuzukiKasami::set_leader`]).
    Elected {
        /// The leader, `None` while there is none.
        leader: Option<NodeId>,
        /// A [`SkMsg::Recover`] arrived while this node did not lead: recover when it does.
        asked: bool,
        /// How long this node must have been named leader, with no change, before it leads.
        settle: Duration,
        /// Named leader, waiting out `settle` ([`LockTimer::LeaderSettle`] armed).
        settling: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Recovery {
    epoch: Epoch,
    awaiting: BTreeSet<NodeId>,
    found: bool,
    /// Per answering node: (request number, waiting).
    answers: BTreeMap<NodeId, (u64, bool)>,
}

/// One member of Suzuki–Kasami mutual exclusion for one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SuzukiKasami {
    group: Membership,
    /// `RN`, indexed like `group.members()`.
    rn: Vec<u64>,
    token: Option<Token>,
    state: LockState,
    /// The newest epoch adopted: tokens of older epochs are rejected.
    epoch: Epoch,
    /// `(epoch, hop)` of the last token accepted, to drop duplicates.
    last_token: (Epoch, u64),
    recovery: Option<Recovery>,
    decider: Decider,
    /// Where this node last sent the token, until it comes back: if that node is declared down,
    /// the token may have died with it.
    sent_token_to: Option<NodeId>,
    join: Join,
    /// The initial token of the lowest member, kept aside while it catches up: it becomes the
    /// token only if no peer has met an earlier incarnation of this member nor seen any token
    /// (cluster boot); otherwise it is void (that incarnation may have used it).
    initial: Option<Token>,
    /// While catching up: a peer has met an earlier incarnation of this member.
    rejoined: bool,
    /// While catching up: a peer reported holding the token, or an epoch beyond the initial one.
    token_seen: bool,
    /// A recovery is wanted as soon as this node decides (asked by a `Recover` or a rejoin that
    /// found no token while it did not decide).
    wants_recovery: bool,
    /// Tokens this node regenerated.
    regenerated: u64,
}

impl SuzukiKasami {
    /// Member `me` of the group `members`; the lowest member starts with the token, once it
    /// has caught up with its peers and none of them has met an earlier incarnation of it.
    ///
    /// The member starts catching up (see [`LockTimer`]): it takes part once every peer has
    /// answered its `Hello` (sent by [`Protocol::on_start`]) or been declared down. Its
    /// incarnation is 0; [`with_incarnation`](Self::with_incarnation) sets another.
    ///
    /// # Errors
    /// [`ConfigError`] when the membership is invalid.
    pub fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Result<Self, ConfigError> {
        let group = Membership::new(me, members)?;
        check_fenced_members(group.members())?;
        let peers: Vec<NodeId> = group.peers().collect();
        let first = group.members()[0];
        let epoch = Epoch {
            round: 0,
            leader: first,
        };
        let token = (me == first).then(|| Token {
            epoch,
            seq: 0,
            hop: 0,
            ln: vec![0; group.len()],
            queue: VecDeque::new(),
        });
        Ok(Self {
            rn: vec![0; group.len()],
            group,
            token: None,
            state: LockState::Idle,
            epoch,
            last_token: (epoch, 0),
            recovery: None,
            decider: Decider::LowestLive,
            sent_token_to: None,
            join: Join::new(0, peers),
            initial: None,
            rejoined: false,
            token_seen: false,
            wants_recovery: false,
            regenerated: 0,
        }
        .boot(token))
    }

    fn boot(mut self, token: Option<Token>) -> Self {
        if self.join.active() {
            self.token = token; // alone in the group
        } else {
            self.token = None;
            self.initial = token;
        }
        self
    }

    /// This member's incarnation (a value the shell draws anew at every start): peers that met
    /// another incarnation of it handle that one as crashed.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.join.inc = incarnation;
        self
    }

    /// Whether this member has caught up with its peers and takes part in the algorithm.
    pub fn is_active(&self) -> bool {
        self.join.active()
    }

    /// Let an election decide regenerations instead of the "lowest live id" rule: the shell
    /// tells the core who leads with [`set_leader`](Self::set_leader), and only a node that
    /// leads in its own view starts a recovery (see "Holder crash and regeneration"). Until the
    /// first `set_leader`, nobody leads and nothing is regenerated.
    pub fn with_external_leader(mut self) -> Self {
        self.decider = Decider::Elected {
            leader: None,
            asked: false,
            settle: Duration::ZERO,
            settling: false,
        };
        self
    }

    /// With an elected leader: this node leads only once it has been named leader for `settle`
    /// with no change in between ([`LockTimer::LeaderSettle`]; zero, the default, leads at
    /// once). An election under a loaded machine can name a transient leader (a lower node
    /// whose OK from a higher one came late) that is deposed a moment later; without the wait
    /// each such leader would regenerate a lost token, each in a newer epoch — safe, but more
    /// than one regeneration. Losing the leadership takes effect at once. No effect without
    /// [`with_external_leader`](Self::with_external_leader).
    pub fn with_leader_settle(mut self, settle: Duration) -> Self {
        if let Decider::Elected { settle: s, .. } = &mut self.decider {
            *s = settle;
        }
        self
    }

    /// Whether regenerations are decided by an elected leader
    /// ([`with_external_leader`](Self::with_external_leader)).
    pub fn has_external_leader(&self) -> bool {
        matches!(self.decider, Decider::Elected { .. })
    }

    /// The elected leader as this node last heard of it (`None` while there is none, and always
    /// `None` without [`with_external_leader`](Self::with_external_leader)).
    pub fn leader(&self) -> Option<NodeId> {
        match self.decider {
            Decider::Elected { leader, .. } => leader,
            Decider::LowestLive => None,
        }
    }

    /// The election's verdict as this node now sees it: `leader` leads (`None`: nobody does,
    /// an election is running). Only with [`with_external_leader`](Self::with_external_leader);
    /// ignored otherwise, and a `leader` that is not a member counts as `None`.
    ///
    /// * This node **is named** leader: with a settle time
    ///   ([`with_leader_settle`](Self::with_leader_settle)) it arms
    ///   [`LockTimer::LeaderSettle`] and leads when it fires, unless another verdict came first
    ///   (naming it again restarts the wait); without one it leads at once.
    /// * This node **becomes** the leader: it starts a recovery if it believes a member down or
    ///   was asked to recover ([`SkMsg::Recover`]) while it did not lead: the previous leader
    ///   may have crashed with the token, or before it could regenerate it. A recovery that
    ///   finds the token regenerates nothing; with the token here, nothing happens.
    /// * This node **stops** leading (or is no longer named): it abandons a recovery it was
    ///   running (the next leader recovers), so a node that no longer leads never regenerates.
    pub fn set_leader(&mut self, leader: Option<NodeId>, out: &mut EffectsOf<Self>) {
        let leader = leader.filter(|&l| self.ix(l).is_some());
        let me = self.group.me();
        let Decider::Elected {
            leader: current,
            settle,
            settling,
            ..
        } = &mut self.decider
        else {
            return;
        };
        if leader == Some(me) && *current != Some(me) && !settle.is_zero() {
            *settling = true;
            out.set_timer(LockTimer::LeaderSettle, *settle);
            return;
        }
        if *settling {
            *settling = false;
            out.cancel_timer(LockTimer::LeaderSettle);
        }
        self.lead_as(leader, out);
    }

    /// The settle time ran out with this node still named leader: it leads.
    fn settled(&mut self, out: &mut EffectsOf<Self>) {
        let me = self.group.me();
        if let Decider::Elected { settling, .. } = &mut self.decider
            && *settling
        {
            *settling = false;
            self.lead_as(Some(me), out);
        }
    }

    /// Records `leader` as the leader: starts or abandons a recovery as this node becomes or
    /// stops being it.
    fn lead_as(&mut self, leader: Option<NodeId>, out: &mut EffectsOf<Self>) {
        let me = self.group.me();
        let Decider::Elected {
            leader: current,
            asked,
            ..
        } = &mut self.decider
        else {
            return;
        };
        let was = *current == Some(me);
        let now = leader == Some(me);
        *current = leader;
        let asked = *asked;
        if was && !now {
            self.recovery = None;
        }
        if now && !was && (asked || self.wants_recovery || !self.group.down().is_empty()) {
            self.start_recovery(out);
        }
    }

    /// Whether this node is the one that decides regenerations now (never while catching up).
    fn decides(&self) -> bool {
        if !self.join.active() {
            return false;
        }
        match self.decider {
            Decider::LowestLive => {
                self.group
                    .members()
                    .iter()
                    .find(|&&p| !self.group.is_down(p))
                    == Some(&self.group.me())
            }
            Decider::Elected { leader, .. } => leader == Some(self.group.me()),
        }
    }

    /// Where the local user stands.
    pub fn state(&self) -> LockState {
        self.state
    }

    /// Whether the local user holds the lock.
    pub fn is_held(&self) -> bool {
        matches!(self.state, LockState::Held { .. })
    }

    /// The token, if it is here.
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// The newest epoch this node adopted.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The newest token this node received, as `(epoch, hop)`: a token that is not newer is a
    /// duplicate (or superseded) and is dropped.
    pub fn last_token(&self) -> (Epoch, u64) {
        self.last_token
    }

    /// How many tokens this node regenerated (the initial token kept at cluster boot is not
    /// one).
    pub fn regenerations(&self) -> u64 {
        self.regenerated
    }

    fn ix(&self, id: NodeId) -> Option<usize> {
        self.group.ix(id)
    }

    /// Members after `me` in id order, wrapping around (the round-robin order of step 3).
    fn after_me(&self) -> impl Iterator<Item = NodeId> + '_ {
        let i = self.ix(self.group.me()).unwrap_or(0);
        let n = self.group.members().len();
        (1..n).map(move |k| self.group.members()[(i + k) % n])
    }

    fn enter(&mut self, out: &mut EffectsOf<Self>) {
        let Some(token) = self.token.as_mut() else {
            return;
        };
        token.seq = token.seq.saturating_add(1).min(MAX_FENCE_SEQ);
        let fence = token.fence();
        self.state = LockState::Held { fence };
        out.emit(LockEvent::Granted { fence });
    }

    // Step 3 (also used by an idle holder in step 2): queue the outstanding requesters, then hand
    // the token to the first live one.
    fn pass_token(&mut self, out: &mut EffectsOf<Self>) {
        if self.state != LockState::Idle || !self.join.active() {
            return;
        }
        let outstanding: Vec<NodeId> = {
            let Some(token) = self.token.as_ref() else {
                return;
            };
            self.after_me()
                .filter(|p| !self.group.is_down(*p) && !token.queue.contains(p))
                .filter(|&p| {
                    // Outstanding: a request newer than the last one served. The paper's
                    // `RN[j] = LN[j] + 1` assumes one request at a time; after a cancelled wait
                    // the next request has `RN[j] = LN[j] + 2` and must count too.
                    let i = self.group.ix(p).unwrap_or(0);
                    self.rn[i] > token.ln[i]
                })
                .collect()
        };
        let Some(mut token) = self.token.take() else {
            return;
        };
        token.queue.extend(outstanding);
        token.queue.retain(|&p| !self.group.is_down(p));
        match token.queue.pop_front() {
            Some(next) => {
                token.hop += 1;
                out.send(next, SkMsg::Token(token));
                self.sent_token_to = Some(next);
            }
            None => self.token = Some(token),
        }
    }

    /// Open a new epoch and probe the live peers, regenerating the token if nobody has it
    /// (recovery steps 1 and 3); a recovery this node was running is superseded. Called by the
    /// core itself on the node that decides (the lowest live one, or the elected leader with
    /// [`with_external_leader`](Self::with_external_leader)); a shell may call it too. Does
    /// nothing when the token is here.
    pub fn start_recovery(&mut self, out: &mut EffectsOf<Self>) {
        if self.token.is_some() || !self.join.active() {
            return;
        }
        if let Decider::Elected { asked, .. } = &mut self.decider {
            *asked = false;
        }
        self.wants_recovery = false;
        let epoch = Epoch {
            round: self.epoch.round.saturating_add(1),
            leader: self.group.me(),
        };
        self.epoch = epoch;
        let mut answers = BTreeMap::new();
        let own = self.rn[self.ix(self.group.me()).unwrap_or(0)];
        answers.insert(self.group.me(), (own, self.waiting()));
        self.recovery = Some(Recovery {
            epoch,
            awaiting: self.group.live_peers().collect(),
            found: false,
            answers,
        });
        // To the live peers only: a peer we think down must not adopt the epoch (if it is alive
        // after all, its old token stays distinguishable from the regenerated one).
        for p in self.group.live_peers().collect::<Vec<_>>() {
            out.send(p, SkMsg::Probe { epoch });
        }
        self.finish_recovery(out);
    }

    fn finish_recovery(&mut self, out: &mut EffectsOf<Self>) {
        if !self
            .recovery
            .as_ref()
            .is_some_and(|r| r.awaiting.is_empty())
        {
            return;
        }
        let Some(rec) = self.recovery.take() else {
            return;
        };
        if rec.found || self.token.is_some() {
            // The token lives on, perhaps regenerated elsewhere while we were cut off, counting
            // our wait as served.
            self.ask_again(out);
            return;
        }
        // Nobody has it: regenerate, in an epoch of its own. The probe's epoch is not enough:
        // a member that had the token may have taken that epoch for it on the probe and died
        // (or been cut off) inside before its answer arrived; in the probe's epoch the
        // regenerated token would issue that member's fence again.
        let epoch = Epoch {
            round: rec.epoch.round.saturating_add(1),
            leader: self.group.me(),
        };
        self.adopt(epoch);
        let mut ln = self.rn.clone();
        let mut queue = VecDeque::new();
        for (&node, &(requests, waiting)) in &rec.answers {
            // What the node itself reported is authoritative; a request of it that arrived here
            // after its answer stays outstanding (RN > LN + 0) and is queued on the next pass.
            let Some(i) = self.ix(node) else { continue };
            self.rn[i] = self.rn[i].max(requests);
            ln[i] = requests.saturating_sub(u64::from(waiting));
        }
        for p in self.after_me().collect::<Vec<_>>() {
            if rec.answers.get(&p).is_some_and(|&(_, waiting)| waiting) {
                queue.push_back(p);
            }
        }
        self.last_token = (epoch, 0);
        self.sent_token_to = None;
        self.regenerated += 1;
        self.token = Some(Token {
            epoch,
            seq: 0,
            hop: 0,
            ln,
            queue,
        });
        if self.state == LockState::Waiting {
            self.enter(out);
        } else {
            self.pass_token(out);
        }
    }

    /// A peer has seen `epoch`, newer than ours, which we were not probed for (we were cut
    /// off): a token we hold of an older epoch is void (the recovery regenerated it, or one
    /// running will find we have none). Held, it is lost ([`LockEvent::Lost`]). Waiting, we ask
    /// again with a new request number: the regenerated token counts the requests of members
    /// that did not answer the probe as served.
    fn superseded(&mut self, epoch: Epoch, out: &mut EffectsOf<Self>) {
        let stale = self.token.as_ref().is_some_and(|t| t.epoch < epoch);
        self.adopt(epoch);
        if stale {
            self.token = None;
            self.sent_token_to = None;
            if let LockState::Held { fence } = self.state {
                out.emit(LockEvent::Lost { fence });
                self.state = LockState::Idle;
            }
        }
        self.ask_again(out);
    }

    /// Waiting without the token: a new request, with a new number, to every peer. For a wait
    /// that a regeneration this node took no part in may have counted as served (it set `LN`
    /// to what it knew of `RN` for members it could not probe): the old number would be
    /// ignored for ever. A request too many costs at most one pass of the token.
    fn ask_again(&mut self, out: &mut EffectsOf<Self>) {
        if self.state == LockState::Waiting && self.token.is_none() && self.join.active() {
            let me = self.ix(self.group.me()).unwrap_or(0);
            self.rn[me] = self.rn[me].saturating_add(1);
            out.broadcast(SkMsg::Request { n: self.rn[me] });
        }
    }

    /// Whether this node's request is out (a wait recorded while catching up is not).
    fn waiting(&self) -> bool {
        self.state == LockState::Waiting && self.join.active()
    }

    fn hello(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        out.send(
            peer,
            SkMsg::Hello {
                incarnation: self.join.inc,
            },
        );
    }

    fn send_state(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        let mut known: Vec<(NodeId, u64)> = self.join.known.iter().map(|(&k, &v)| (k, v)).collect();
        known.push((self.group.me(), self.join.inc));
        out.send(
            peer,
            SkMsg::State {
                incarnation: self.join.inc,
                epoch: self.epoch,
                rn: self.rn.clone(),
                ln: self.token.as_ref().map(|t| t.ln.clone()),
                known,
            },
        );
        self.resend_mine(peer, out);
    }

    /// Our pending request, again, to `peer` (it may have dropped it).
    fn resend_mine(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        if self.waiting() && self.token.is_none() {
            let i = self.ix(self.group.me()).unwrap_or(0);
            out.send(peer, SkMsg::Request { n: self.rn[i] });
        }
    }

    /// Caught up: keep the initial token at cluster boot only, then act on a wait recorded
    /// meanwhile, a token received meanwhile, or a loss nobody else can repair.
    fn activated(&mut self, out: &mut EffectsOf<Self>) {
        out.cancel_timer(LockTimer::JoinRetry);
        let initial = self.initial.take();
        if !self.rejoined
            && !self.token_seen
            && self.token.is_none()
            && let Some(t) = initial
            && t.epoch == self.epoch
        {
            self.last_token = (t.epoch, t.hop);
            self.token = Some(t);
        }
        if self.rejoined && !self.token_seen && self.token.is_none() {
            // An earlier incarnation of this member may have died with the token; the peers
            // that decide handle that when they see the new incarnation, but this member may be
            // the one that decides now.
            self.wants_recovery = true;
        }
        let me = self.ix(self.group.me()).unwrap_or(0);
        if self.state == LockState::Waiting {
            if self.token.is_some() {
                self.enter(out);
            } else {
                self.rn[me] += 1;
                out.broadcast(SkMsg::Request { n: self.rn[me] });
            }
        } else if let Some(t) = self.token.as_mut() {
            t.ln[me] = t.ln[me].max(self.rn[me]);
            self.pass_token(out);
        }
        if self.decides() && (self.wants_recovery || !self.group.down().is_empty()) {
            self.start_recovery(out);
        }
    }

    /// `peer` is gone (declared down, or replaced by a new incarnation): drop it from the
    /// token queue and recover the token if it may have died with it.
    fn peer_lost(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        if let Some(t) = self.token.as_mut() {
            t.queue.retain(|&p| p != peer);
        }
        // A running recovery covers the death of a peer it still awaits (that peer never
        // reported, so any token it had is either reported by its receiver or rejected), not
        // of one that already answered: that peer may have had the token, or been sent it.
        let answered = self
            .recovery
            .as_ref()
            .is_some_and(|r| r.answers.contains_key(&peer));
        if let Some(rec) = self.recovery.as_mut() {
            rec.awaiting.remove(&peer);
            rec.answers.remove(&peer);
        }
        self.finish_recovery(out);
        // The token this node sent there may have died with it after the last probe.
        let token_went_there = self.sent_token_to == Some(peer);
        let needed = self.recovery.is_none() || answered || token_went_there;
        if self.decides() {
            if needed {
                self.start_recovery(out);
            }
        } else if token_went_there {
            // Only the decider regenerates: ask it (every peer, since this node's view of who
            // decides may be stale; under an election a non-leader remembers it for when it
            // leads). Recovering here as well would open a second epoch and could regenerate a
            // second time for one crash.
            self.sent_token_to = None;
            out.broadcast(SkMsg::Recover { epoch: self.epoch });
            // This node may be the next leader itself (while nobody leads): it must remember
            // too, since by the time it leads the dead member may be up again (restarted), and
            // nothing else would tell it the token is gone.
            if let Decider::Elected { asked, .. } = &mut self.decider {
                *asked = true;
            }
        }
    }

    /// A recovery running here covers a member that is up (again) too: it may hold the token,
    /// or have it on the way (a restart seen late, a false suspicion).
    fn include_in_recovery(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        if let Some(rec) = self.recovery.as_mut()
            && !rec.answers.contains_key(&peer)
            && rec.awaiting.insert(peer)
        {
            out.send(peer, SkMsg::Probe { epoch: rec.epoch });
        }
    }

    fn adopt(&mut self, epoch: Epoch) {
        if epoch > self.epoch {
            self.epoch = epoch;
            if self.recovery.as_ref().is_some_and(|r| r.epoch < epoch) {
                self.recovery = None;
            }
        }
    }

    fn well_formed(&self, t: &Token) -> bool {
        t.ln.len() == self.group.members().len() && t.queue.iter().all(|p| self.ix(*p).is_some())
    }

    fn receive_token(&mut self, token: Token, out: &mut EffectsOf<Self>) {
        if !self.well_formed(&token)
            || token.epoch < self.epoch
            || (token.epoch, token.hop) <= self.last_token
        {
            return; // malformed, superseded epoch, or duplicate
        }
        if let Some(mine) = &self.token {
            if mine.epoch >= token.epoch {
                return;
            }
            // Ours was superseded while we held it (we were falsely suspected).
            if let LockState::Held { fence } = self.state {
                out.emit(LockEvent::Lost { fence });
            }
            self.state = if self.state == LockState::Waiting {
                LockState::Waiting
            } else {
                LockState::Idle
            };
            self.token = None;
        }
        self.adopt(token.epoch);
        self.last_token = (token.epoch, token.hop);
        self.sent_token_to = None;
        self.token = Some(token);
        if !self.join.active() {
            return; // kept until caught up (see `activated`)
        }
        if self.state == LockState::Waiting {
            self.enter(out);
        } else {
            // A token for a cancelled request: count that request as served and pass it on.
            let i = self.ix(self.group.me()).unwrap_or(0);
            if let Some(t) = self.token.as_mut() {
                t.ln[i] = t.ln[i].max(self.rn[i]);
            }
            self.pass_token(out);
        }
    }
}

impl crate::protocol::CatchUp for SuzukiKasami {
    fn join(&self) -> &Join {
        &self.join
    }
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.hello(peer, out);
    }
}

impl Protocol for SuzukiKasami {
    type Msg = SkMsg;
    type Event = LockEvent;
    type Timer = LockTimer;
    type Command = LockCommand;
    type Error = LockError;

    fn id(&self) -> NodeId {
        self.group.me()
    }

    fn on_start(&mut self, _now: Duration, out: &mut EffectsOf<Self>) {
        self.greet_missing(LockTimer::JoinRetry, JOIN_RETRY, out);
    }

    fn on_command(
        &mut self,
        _now: Duration,
        cmd: LockCommand,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), LockError> {
        match cmd {
            // Step 1.
            LockCommand::Acquire => {
                self.state.wait()?;
                if !self.join.active() {
                    // Recorded: the request goes out once caught up (`activated`).
                } else if self.token.is_some() {
                    self.enter(out);
                } else {
                    let i = self.ix(self.group.me()).unwrap_or(0);
                    self.rn[i] += 1;
                    out.broadcast(SkMsg::Request { n: self.rn[i] });
                }
                Ok(())
            }
            // Step 3.
            LockCommand::Release => {
                let fence = self.state.release()?;
                let i = self.ix(self.group.me()).unwrap_or(0);
                if let Some(t) = self.token.as_mut() {
                    t.ln[i] = self.rn[i];
                }
                out.emit(LockEvent::Released { fence });
                self.pass_token(out);
                Ok(())
            }
            LockCommand::Cancel => {
                self.state.cancel()?;
                // The broadcast request cannot be recalled; if the token comes for it, it is
                // counted as served and passed on (see `receive_token`).
                out.emit(LockEvent::Cancelled);
                Ok(())
            }
        }
    }

    fn on_message(&mut self, _now: Duration, from: NodeId, msg: SkMsg, out: &mut EffectsOf<Self>) {
        if !self.group.is_live_peer(from) {
            return;
        }
        let Some(j) = self.ix(from) else { return };
        match msg {
            SkMsg::Hello { incarnation } => {
                if self.join.hello(from, incarnation) == HelloKind::New {
                    // The previous incarnation is gone: what it had is lost. The new one is up:
                    // a recovery started now probes it too (the token may be on its way there).
                    self.peer_lost(from, out);
                    self.include_in_recovery(from, out);
                }
                self.send_state(from, out);
            }
            SkMsg::State {
                incarnation,
                epoch,
                rn,
                ln,
                known,
            } => {
                if rn.len() != self.group.members().len()
                    || ln
                        .as_ref()
                        .is_some_and(|l| l.len() != self.group.members().len())
                {
                    return; // malformed
                }
                if self.join.active() {
                    // The peer was seen up again: a newer epoch it has seen voids our older
                    // token (it was regenerated while we were cut off, or is being), and it
                    // may have dropped our request.
                    let me = self.ix(self.group.me()).unwrap_or(0);
                    if epoch > self.epoch {
                        self.superseded(epoch, out);
                    } else if ln.as_ref().is_some_and(|l| l[me] >= self.rn[me]) {
                        // The peer's token counts our wait as served: ask again.
                        self.ask_again(out);
                    } else {
                        self.resend_mine(from, out);
                    }
                    return;
                }
                if !matches!(self.join.known.get(&from), Some(&i) if i == incarnation) {
                    // Met through its answer: its next `Hello` is a new incarnation.
                    self.join.known.insert(from, incarnation);
                }
                for (k, inc) in known {
                    if k == self.group.me() {
                        self.rejoined |= inc != self.join.inc;
                    } else if k != from && self.ix(k).is_some() {
                        self.join.known.entry(k).or_insert(inc);
                    }
                }
                for (mine, theirs) in self.rn.iter_mut().zip(&rn) {
                    *mine = (*mine).max(*theirs);
                }
                let me = self.ix(self.group.me()).unwrap_or(0);
                if let Some(l) = &ln {
                    self.rn[me] = self.rn[me].max(l[me]);
                }
                let boot_epoch = Epoch {
                    round: 0,
                    leader: self.group.members()[0],
                };
                self.token_seen |= ln.is_some() || epoch > boot_epoch;
                self.adopt(epoch);
                if self.join.answered(from) {
                    self.activated(out);
                }
            }
            // Step 2.
            SkMsg::Request { n } => {
                self.rn[j] = self.rn[j].max(n);
                self.pass_token(out);
            }
            SkMsg::Token(token) => self.receive_token(token, out),
            // Recovery step 2.
            SkMsg::Probe { epoch } => {
                if epoch.leader != from {
                    return;
                }
                if epoch < self.epoch {
                    // A recovery older than an epoch we adopted: its leader waits for our
                    // answer. Tell it the newer epoch (it starts over above it if that epoch's
                    // leader is gone).
                    let i = self.ix(self.group.me()).unwrap_or(0);
                    out.send(
                        from,
                        SkMsg::ProbeReply {
                            epoch: self.epoch,
                            has_token: self.token.is_some(),
                            requests: self.rn[i],
                            waiting: self.waiting(),
                        },
                    );
                    return;
                }
                self.adopt(epoch);
                if let Some(t) = self.token.as_mut() {
                    t.epoch = epoch;
                    self.last_token = (epoch, t.hop);
                }
                let i = self.ix(self.group.me()).unwrap_or(0);
                out.send(
                    from,
                    SkMsg::ProbeReply {
                        epoch,
                        has_token: self.token.is_some(),
                        requests: self.rn[i],
                        waiting: self.waiting(),
                    },
                );
            }
            SkMsg::Recover { epoch } => {
                if !self.decides() {
                    if let Decider::Elected { asked, .. } = &mut self.decider {
                        *asked = true;
                    }
                    if !self.join.active() {
                        self.wants_recovery = true;
                    }
                } else if self.recovery.as_ref().is_none_or(|r| r.epoch <= epoch) {
                    // No recovery running, or the sender had adopted the running one's epoch
                    // (it may have reported the token before losing it): start over.
                    self.start_recovery(out);
                }
            }
            // Recovery step 3.
            SkMsg::ProbeReply {
                epoch,
                has_token,
                requests,
                waiting,
            } => {
                if epoch > self.epoch && self.recovery.is_some() {
                    // Our probe was of an older epoch than one the peer adopted: ours is void.
                    // If the newer epoch's leader is gone, its recovery will not finish: the
                    // decider starts one above it.
                    self.superseded(epoch, out);
                    if self.token.is_none() && self.decides() && self.group.is_down(epoch.leader) {
                        self.start_recovery(out);
                    }
                    return;
                }
                let Some(rec) = self.recovery.as_mut() else {
                    return;
                };
                if rec.epoch != epoch || !rec.awaiting.remove(&from) {
                    return;
                }
                rec.found |= has_token;
                rec.answers.insert(from, (requests, waiting));
                self.finish_recovery(out);
            }
        }
    }

    fn on_timer(&mut self, now: Duration, timer: LockTimer, out: &mut EffectsOf<Self>) {
        match timer {
            LockTimer::JoinRetry => self.on_start(now, out),
            LockTimer::LeaderSettle => self.settled(out),
        }
    }

    fn on_peer_down(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.set_down(peer) {
            return;
        }
        if self.join.answered(peer) {
            self.activated(out);
        }
        self.peer_lost(peer, out);
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.set_up(peer) {
            return;
        }
        if self.join.await_again(peer) {
            self.hello(peer, out);
        }
        self.include_in_recovery(peer, out);
        // It may be a new incarnation, or have dropped our request while it believed us down.
        self.send_state(peer, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fence_parts;
    use super::*;
    use crate::mutex::test_support::{self, granted};
    use crate::testing::Net;

    fn net(n: u32) -> Net<SuzukiKasami> {
        test_support::net(n, SuzukiKasami::new)
    }

    #[test]
    fn n_messages_per_critical_section_or_zero_when_holding() {
        for n in [3u32, 5] {
            let mut net = net(n);
            net.command(2, LockCommand::Acquire).unwrap();
            net.run();
            assert_eq!(net.sent, n as usize, "N={n}");
            net.command(2, LockCommand::Release).unwrap();
            net.run();
            net.sent = 0;
            net.command(2, LockCommand::Acquire).unwrap();
            net.command(2, LockCommand::Release).unwrap();
            net.run();
            assert_eq!(net.sent, 0, "N={n}, token already here");
        }
    }

    #[test]
    fn a_request_after_a_cancelled_wait_is_served() {
        // Issue 11, first report: node 2 times out (cancels) while node 1 holds, asks again,
        // node 1 releases: node 2 must get the token (its RN is LN + 2 at the holder).
        for cancels in 1..=3 {
            let mut net = net(3);
            net.command(1, LockCommand::Acquire).unwrap();
            net.run();
            net.take_events();
            for _ in 0..cancels {
                net.command(2, LockCommand::Acquire).unwrap();
                net.run();
                net.command(2, LockCommand::Cancel).unwrap();
                net.run();
            }
            net.command(2, LockCommand::Acquire).unwrap();
            net.run();
            net.command(1, LockCommand::Release).unwrap();
            net.run();
            assert_eq!(
                granted(&net.take_events()).first().map(|g| g.0),
                Some(2),
                "after {cancels} cancelled waits"
            );
            assert!(net.nodes[1].is_held());
        }
    }

    #[test]
    fn token_seq_saturates_instead_of_overflowing() {
        // Issue 11, Why 11: `seq: u32 += 1` overflowed after 2^32 grants in one epoch.
        let mut net = net(3);
        net.nodes[0].token.as_mut().unwrap().seq = MAX_FENCE_SEQ;
        for _ in 0..2 {
            net.command(1, LockCommand::Acquire).unwrap();
            net.command(1, LockCommand::Release).unwrap();
        }
        let g = granted(&net.take_events());
        assert_eq!(g, vec![(1, make_fence(0, 1, MAX_FENCE_SEQ)); 2]);
    }

    /// Node `id` restarts: a fresh core (incarnation 1) replaces it, its peers see it down and
    /// up again, and it catches up.
    fn restart(net: &mut Net<SuzukiKasami>, id: NodeId) {
        net.queue.retain(|(from, to, _)| *from != id && *to != id);
        let members: Vec<NodeId> = (1..=net.nodes.len() as NodeId).collect();
        for o in members.iter().copied().filter(|&o| o != id) {
            detect(net, o, id);
        }
        net.nodes[id as usize - 1] = SuzukiKasami::new(id, members.iter().copied())
            .unwrap()
            .with_incarnation(1);
        net.start(id);
        for o in members.iter().copied().filter(|&o| o != id) {
            let mut out = EffectsOf::<SuzukiKasami>::new();
            net.nodes[o as usize - 1].on_peer_up(Duration::ZERO, id, &mut out);
            net.absorb(o, out);
        }
        net.run();
    }

    #[test]
    fn a_restarted_lowest_member_does_not_keep_the_initial_token() {
        // Issue 11, third report: member 2 holds; member 1 restarts and must not enter with a
        // second initial token (two holders, both with fence 1).
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        let held = granted(&net.take_events());
        restart(&mut net, 1);
        assert!(net.nodes[0].is_active() && net.nodes[0].token().is_none());
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        assert!(
            granted(&net.take_events()).is_empty(),
            "member 2 still holds"
        );
        net.command(2, LockCommand::Release).unwrap();
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(1, f)] if f > held[0].1),
            "{g:?} after {held:?}"
        );
    }

    #[test]
    fn a_restarted_idle_token_holder_is_recovered_in_a_new_epoch() {
        // Member 1 (the initial holder, idle) restarts: its token is gone; it is regenerated in
        // a newer epoch, with fences above the old ones.
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.command(1, LockCommand::Release).unwrap();
        let old = granted(&net.take_events());
        restart(&mut net, 1);
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(3, f)] if f > old[0].1 && fence_parts(f).0 >= 1),
            "{g:?} after {old:?}"
        );
        assert_eq!(holders(&net), vec![3]);
    }

    #[test]
    fn token_queue_is_served_round_robin_after_the_holder() {
        let mut net = net(4);
        net.command(1, LockCommand::Acquire).unwrap();
        net.command(2, LockCommand::Acquire).unwrap();
        net.command(4, LockCommand::Acquire).unwrap();
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        let mut order = vec![];
        for _ in 0..4 {
            let g = granted(&net.take_events());
            let &[(who, _)] = g.as_slice() else {
                panic!("one grant at a time: {g:?}")
            };
            order.push(who);
            net.command(who, LockCommand::Release).unwrap();
            net.run();
        }
        assert_eq!(order, vec![1, 2, 3, 4]);
    }

    #[test]
    fn fences_increase_from_owner_to_owner() {
        let mut net = net(3);
        let mut fences = vec![];
        for who in [2, 3, 1, 2] {
            net.command(who, LockCommand::Acquire).unwrap();
            net.run();
            fences.extend(granted(&net.take_events()).into_iter().map(|(_, f)| f));
            net.command(who, LockCommand::Release).unwrap();
            net.run();
        }
        assert_eq!(
            fences,
            (1..=4).map(|seq| make_fence(0, 1, seq)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn holder_crash_regenerates_once_in_a_new_epoch() {
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(2, make_fence(0, 1, 1))]);
        net.crash(2);
        net.run();
        let g = granted(&net.take_events());
        // The probe opened epoch (1, 1); the regenerated token has an epoch of its own, (2, 1).
        assert_eq!(g, vec![(3, make_fence(2, 1, 1))]);
        assert_eq!(
            net.nodes[2].epoch(),
            Epoch {
                round: 2,
                leader: 1
            }
        );
        assert!(net.nodes[0].token().is_none());
    }

    #[test]
    fn crash_of_a_non_holder_regenerates_nothing() {
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.take_events();
        net.crash(3);
        net.run();
        // 2 still holds; it re-stamped its token with the new epoch.
        assert!(net.nodes[1].is_held());
        assert_eq!(net.nodes[1].token().map(|t| t.epoch.round), Some(1));
        assert!(net.nodes[0].token().is_none());
    }

    #[test]
    fn token_of_an_older_epoch_is_rejected() {
        let mut a = SuzukiKasami::new(2, [1, 2, 3]).unwrap();
        let mut out = EffectsOf::<SuzukiKasami>::new();
        let new = Epoch {
            round: 1,
            leader: 1,
        };
        a.on_message(Duration::ZERO, 1, SkMsg::Probe { epoch: new }, &mut out);
        a.on_command(Duration::ZERO, LockCommand::Acquire, &mut out)
            .unwrap();
        out.clear();
        let old = Token {
            epoch: Epoch {
                round: 0,
                leader: 1,
            },
            seq: 5,
            hop: 9,
            ln: vec![0; 3],
            queue: VecDeque::new(),
        };
        a.on_message(Duration::ZERO, 3, SkMsg::Token(old), &mut out);
        assert!(out.is_empty());
        assert_eq!(a.state(), LockState::Waiting);
    }

    #[test]
    fn a_falsely_suspected_holder_loses_to_the_regenerated_token() {
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        let old = granted(&net.take_events());
        // 1 and 3 wrongly declare the holder 2 down; 1 regenerates, 3 enters in epoch 1.
        for id in [1, 3] {
            let mut out = EffectsOf::<SuzukiKasami>::new();
            net.nodes[id as usize - 1].on_peer_down(Duration::ZERO, 2, &mut out);
            net.absorb(id, out);
        }
        net.run();
        let new = granted(&net.take_events());
        assert_eq!(new.len(), 1);
        assert!(
            new[0].1 > old[0].1,
            "the new owner's fence is higher: {new:?} > {old:?}"
        );
        // Two tokens exist now (the documented cost of a false suspicion). When the new one
        // reaches 2, 2 learns it lost the lock.
        net.command(3, LockCommand::Release).unwrap();
        let token = net.nodes[2].token.take().map(|mut t| {
            t.hop += 1;
            t
        });
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[1].on_message(Duration::ZERO, 3, SkMsg::Token(token.unwrap()), &mut out);
        assert_eq!(
            out.events().next(),
            Some(&LockEvent::Lost { fence: old[0].1 })
        );
        assert!(!net.nodes[1].is_held());
        assert_eq!(net.nodes[1].epoch().round, 2);
    }

    #[test]
    fn a_waiter_cut_off_during_a_regeneration_is_served_when_seen_again() {
        // Member 3 waits, then is cut off (stopped): 1 and 2 declare it down, the holder 2
        // crashes and 1 regenerates without probing 3, counting 3's request as served. When 3
        // is seen again, the newer epoch in 1's state makes it ask again with a new number;
        // re-sending the old one would be ignored and 3 would starve.
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        let old = granted(&net.take_events());
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        net.down.push(3);
        detect(&mut net, 1, 3);
        detect(&mut net, 2, 3);
        net.run();
        net.down.push(2);
        detect(&mut net, 1, 2);
        net.run();
        assert!(net.nodes[0].epoch().round >= 1, "1 regenerated");
        assert!(net.nodes[0].token().is_some());
        assert!(granted(&net.take_events()).is_empty());
        // 3 runs again: 1 sees it up, 3 learns 2 is down.
        net.down.retain(|&d| d != 3);
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[0].on_peer_up(Duration::ZERO, 3, &mut out);
        net.absorb(1, out);
        detect(&mut net, 3, 2);
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(3, f)] if f > old[0].1),
            "3 is served with a higher fence: {g:?} after {old:?}"
        );
    }

    #[test]
    fn a_holder_cut_off_during_a_regeneration_learns_it_lost_the_lock() {
        // Member 3 holds and is cut off; 1 and 2 declare it down and 1 regenerates. When 3 is
        // seen again, 1's newer epoch voids 3's token: 3 reports the loss.
        let mut net = net(3);
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        let old = granted(&net.take_events());
        net.down.push(3);
        detect(&mut net, 1, 3);
        detect(&mut net, 2, 3);
        net.run();
        assert_eq!(net.nodes[0].epoch().round, 2, "1 regenerated");
        net.down.retain(|&d| d != 3);
        net.take_events();
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[0].on_peer_up(Duration::ZERO, 3, &mut out);
        net.absorb(1, out);
        net.run();
        let ev = net.take_events();
        assert!(
            ev.contains(&(3, LockEvent::Lost { fence: old[0].1 })),
            "{ev:?}"
        );
        assert!(!net.nodes[2].is_held() && net.nodes[2].token().is_none());
    }

    /// `n` nodes whose regenerations are decided by an election; every node is told that
    /// `leader` leads.
    fn elected_net(n: u32, leader: NodeId) -> Net<SuzukiKasami> {
        let mut net = Net::new(
            (1..=n)
                .map(|i| SuzukiKasami::new(i, 1..=n).unwrap().with_external_leader())
                .collect(),
        );
        for id in 1..=n {
            tell_leader(&mut net, id, Some(leader));
        }
        net.run();
        net
    }

    fn tell_leader(net: &mut Net<SuzukiKasami>, id: NodeId, leader: Option<NodeId>) {
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[id as usize - 1].set_leader(leader, &mut out);
        net.absorb(id, out);
    }

    /// Tells only `observer` that `crashed` is down (`crashed` must already be in `net.down`).
    fn detect(net: &mut Net<SuzukiKasami>, observer: NodeId, crashed: NodeId) {
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[observer as usize - 1].on_peer_down(Duration::ZERO, crashed, &mut out);
        net.absorb(observer, out);
    }

    fn holders(net: &Net<SuzukiKasami>) -> Vec<NodeId> {
        net.nodes
            .iter()
            .filter(|n| !net.down.contains(&n.id()) && n.token().is_some())
            .map(|n| n.id())
            .collect()
    }

    /// Delivers the first message in flight from `from` to `to` that `pick` selects.
    fn deliver(net: &mut Net<SuzukiKasami>, from: NodeId, to: NodeId, pick: fn(&SkMsg) -> bool) {
        let at = net
            .queue
            .iter()
            .position(|(f, t, m)| *f == from && *t == to && pick(m))
            .unwrap_or_else(|| panic!("a message {from} -> {to} in {:?}", net.queue));
        let (f, t, m) = net.queue.remove(at).unwrap();
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[t as usize - 1].on_message(Duration::ZERO, f, m, &mut out);
        net.absorb(t, out);
    }

    #[test]
    fn a_holder_that_took_the_probes_epoch_and_died_inside_is_succeeded_by_a_higher_fence() {
        // Found by the model check with a cut and a crash in one run: 1 holds the token, 1 and
        // 2 are cut apart; 2 probes in epoch (1, 2); after the heal 1 takes that epoch for its
        // token, enters, and dies before its answer arrives. 2 regenerated in the probe's epoch
        // and issued 1's fence again; the regenerated token now has an epoch of its own.
        let mut net = net(3);
        let cut = |net: &mut Net<SuzukiKasami>| {
            net.queue
                .retain(|(f, t, _)| !matches!((f, t), (1, 2) | (2, 1)));
        };
        net.command(2, LockCommand::Acquire).unwrap();
        cut(&mut net);
        detect(&mut net, 1, 2);
        detect(&mut net, 2, 1);
        cut(&mut net);
        deliver(&mut net, 2, 3, |m| matches!(m, SkMsg::Request { .. }));
        deliver(&mut net, 2, 3, |m| matches!(m, SkMsg::Probe { .. }));
        // The link heals: 2 sees 1 up and probes it too; 1 answers that it has the token.
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[1].on_peer_up(Duration::ZERO, 1, &mut out);
        net.absorb(2, out);
        // The probe reaches 1, whose driver first tells it 2 is up (a message from a member
        // it has down, on a live link).
        let mut out = EffectsOf::<SuzukiKasami>::new();
        net.nodes[0].on_peer_up(Duration::ZERO, 2, &mut out);
        net.absorb(1, out);
        deliver(&mut net, 2, 1, |m| matches!(m, SkMsg::Probe { .. }));
        net.command(1, LockCommand::Acquire).unwrap();
        let first = granted(&net.take_events());
        assert_eq!(first.len(), 1, "1 enters with its token: {first:?}");
        // 1 dies inside; 2 hears 3's answer, then learns 1 is down before 1's answer arrives.
        deliver(&mut net, 3, 2, |m| matches!(m, SkMsg::ProbeReply { .. }));
        net.down.push(1);
        net.queue.retain(|(f, _, _)| *f != 1);
        detect(&mut net, 2, 1);
        detect(&mut net, 3, 1);
        net.run();
        let next = granted(&net.take_events());
        assert!(
            matches!(next.as_slice(), &[(2, f)] if f > first[0].1),
            "2 is granted with a higher fence than 1's: {next:?} after {first:?}"
        );
    }

    #[test]
    fn a_probe_of_an_older_epoch_is_answered_and_the_decider_starts_over() {
        // Found by the model check with a cut and a crash in one run: 3 adopted 2's recovery
        // epoch (1, 2); 2 died; 1's own recovery had opened the older epoch (1, 1), whose probe
        // 3 ignored: 1 waited for ever.
        let mut net = net(3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        // 2 releases; the token to 1 is lost as the link 1-2 is cut.
        net.command(2, LockCommand::Release).unwrap();
        net.queue
            .retain(|(f, t, _)| !matches!((f, t), (1, 2) | (2, 1)));
        detect(&mut net, 2, 1);
        detect(&mut net, 1, 2);
        net.queue
            .retain(|(f, t, _)| !matches!((f, t), (1, 2) | (2, 1)));
        // 3 hears 2's probe first, then 1's (older) one; 2 dies before hearing back.
        deliver(
            &mut net,
            2,
            3,
            |m| matches!(m, SkMsg::Probe { epoch } if epoch.leader == 2),
        );
        net.down.push(2);
        net.queue.retain(|(f, t, _)| *f != 2 && *t != 2);
        detect(&mut net, 3, 2);
        net.run();
        let g = granted(&net.take_events());
        assert!(
            g.iter().any(|&(n, _)| n == 1),
            "1 is granted: {g:?}, {:?}",
            net.nodes[0]
        );
    }

    #[test]
    fn the_elected_leader_regenerates_and_the_lowest_live_node_does_not() {
        let mut net = elected_net(3, 3);
        assert_eq!(net.nodes[0].leader(), Some(3));
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(2, make_fence(0, 1, 1))]);
        net.crash(2);
        net.run();
        // Node 3 (the leader) probed in epoch (1, 3) and regenerated in (2, 3); node 1 got the
        // new token.
        assert_eq!(granted(&net.take_events()), vec![(1, make_fence(2, 3, 1))]);
        let e = Epoch {
            round: 2,
            leader: 3,
        };
        assert_eq!((net.nodes[0].epoch(), net.nodes[2].epoch()), (e, e));
        assert_eq!(holders(&net), vec![1]);
    }

    /// With a settle time, a node named leader leads only when [`LockTimer::LeaderSettle`]
    /// fires with nothing changed in between; a verdict in between cancels the wait (and a
    /// late expiry is then ignored), and naming it again restarts the wait.
    #[test]
    fn a_named_leader_leads_only_after_its_settle_time() {
        use crate::protocol::Effect;
        let settle = Duration::from_secs(1);
        let mut c = SuzukiKasami::new(3, 1..=3)
            .unwrap()
            .with_external_leader()
            .with_leader_settle(settle);
        let mut out = EffectsOf::<SuzukiKasami>::new();
        c.set_leader(Some(3), &mut out);
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [&Effect::SetTimer {
                timer: LockTimer::LeaderSettle,
                after: settle
            }]
        );
        assert_eq!(c.leader(), None, "not before the settle time");
        // Deposed while settling: the wait is cancelled, the other leader recorded at once.
        let mut out = EffectsOf::<SuzukiKasami>::new();
        c.set_leader(Some(2), &mut out);
        assert!(
            out.iter()
                .any(|e| *e == Effect::CancelTimer(LockTimer::LeaderSettle))
        );
        assert_eq!(c.leader(), Some(2));
        let mut out = EffectsOf::<SuzukiKasami>::new();
        c.on_timer(Duration::ZERO, LockTimer::LeaderSettle, &mut out);
        assert_eq!(c.leader(), Some(2), "a stale expiry changes nothing");
        // Named again, twice (a new term): the wait restarts, then it leads.
        for _ in 0..2 {
            let mut out = EffectsOf::<SuzukiKasami>::new();
            c.set_leader(Some(3), &mut out);
            assert!(matches!(
                out.iter().next(),
                Some(Effect::SetTimer {
                    timer: LockTimer::LeaderSettle,
                    ..
                })
            ));
            assert_eq!(c.leader(), Some(2));
        }
        c.on_timer(Duration::ZERO, LockTimer::LeaderSettle, &mut out);
        assert_eq!(c.leader(), Some(3));
        // Losing the leadership takes effect at once.
        let mut out = EffectsOf::<SuzukiKasami>::new();
        c.set_leader(None, &mut out);
        assert_eq!(c.leader(), None);
        assert!(out.is_empty());
    }

    #[test]
    fn nothing_is_regenerated_until_a_leader_is_elected() {
        let mut net = elected_net(3, 3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        // An election is running: nobody leads when the holder crashes.
        for id in [1, 3] {
            tell_leader(&mut net, id, None);
        }
        net.crash(2);
        net.run();
        assert!(holders(&net).is_empty());
        assert_eq!(net.nodes[0].epoch().round, 0);
        // Node 3 wins: it believes node 2 down, so it recovers.
        tell_leader(&mut net, 1, Some(3));
        tell_leader(&mut net, 3, Some(3));
        net.run();
        assert_eq!(holders(&net), vec![3]);
        assert_eq!(net.nodes[0].epoch().leader, 3);
    }

    #[test]
    fn a_leader_that_crashed_with_the_token_is_replaced_by_the_next_one_who_regenerates() {
        // Node 2 may learn that it leads before or after it learns that node 3 is down.
        for leader_first in [true, false] {
            let mut net = elected_net(3, 3);
            net.command(3, LockCommand::Acquire).unwrap();
            net.run();
            net.command(1, LockCommand::Acquire).unwrap();
            net.run();
            net.take_events();
            net.down.push(3);
            if leader_first {
                tell_leader(&mut net, 2, Some(2));
                net.run();
                assert!(holders(&net).is_empty(), "nobody down yet at node 2");
                detect(&mut net, 2, 3);
            } else {
                detect(&mut net, 2, 3);
                net.run();
                assert!(holders(&net).is_empty(), "node 2 does not lead yet");
                tell_leader(&mut net, 2, Some(2));
            }
            net.run();
            detect(&mut net, 1, 3);
            tell_leader(&mut net, 1, Some(2));
            net.run();
            assert_eq!(
                granted(&net.take_events()),
                vec![(1, make_fence(2, 2, 1))],
                "leader first: {leader_first}"
            );
            assert_eq!(net.nodes[0].epoch().leader, 2);
            assert_eq!(holders(&net), vec![1]);
        }
    }

    #[test]
    fn a_sender_whose_token_died_in_flight_asks_the_leader() {
        let mut net = elected_net(3, 3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.take_events();
        // Node 2 crashes; the leader learns it first and probes node 1, which has the token.
        net.down.push(2);
        detect(&mut net, 3, 2);
        net.run();
        assert_eq!(net.nodes[2].epoch().round, 1);
        assert!(
            holders(&net) == vec![1],
            "found at node 1: nothing regenerated"
        );
        // Node 1, not yet aware, hands the token to node 2: lost.
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        assert!(holders(&net).is_empty());
        // Node 1 learns it, does not regenerate itself, asks; the leader regenerates.
        detect(&mut net, 1, 2);
        assert!(
            net.queue
                .iter()
                .all(|(_, _, m)| matches!(m, SkMsg::Recover { .. }))
        );
        net.run();
        assert_eq!(holders(&net), vec![3]);
        // Node 1 took the probe's epoch; the regenerated token has the next one.
        let probe = Epoch {
            round: 2,
            leader: 3,
        };
        let regenerated = Epoch {
            round: 3,
            leader: 3,
        };
        assert_eq!(
            (net.nodes[0].epoch(), net.nodes[2].epoch()),
            (probe, regenerated)
        );
    }

    #[test]
    fn a_sender_whose_token_died_while_nobody_led_regenerates_when_it_leads() {
        // Seen in the multi-process restart run: member 3 sent the token to 2, 2 was killed
        // while the election was between leaders, 2 restarted before 3 was elected, and 3 then
        // led with nobody down and nothing asked: the token was never regenerated.
        let mut net = elected_net(3, 3);
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        for id in 1..=3 {
            tell_leader(&mut net, id, None);
        }
        net.command(3, LockCommand::Release).unwrap();
        // The token is on its way to 2, which dies with it.
        net.queue.retain(|(_, to, _)| *to != 2);
        net.down.push(2);
        detect(&mut net, 3, 2);
        detect(&mut net, 1, 2);
        net.run();
        // 2 restarts (a new incarnation) and catches up; then 3 is elected.
        net.down.retain(|&d| d != 2);
        net.nodes[1] = SuzukiKasami::new(2, 1..=3)
            .unwrap()
            .with_external_leader()
            .with_incarnation(1);
        net.start(2);
        for o in [1, 3] {
            let mut out = EffectsOf::<SuzukiKasami>::new();
            net.nodes[o as usize - 1].on_peer_up(Duration::ZERO, 2, &mut out);
            net.absorb(o, out);
        }
        net.run();
        for id in 1..=3 {
            tell_leader(&mut net, id, Some(3));
        }
        net.run();
        net.take_events();
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        let g = granted(&net.take_events());
        assert!(matches!(g.as_slice(), &[(1, _)]), "1 is served: {g:?}");
        assert_eq!(net.nodes[2].regenerations(), 1);
    }

    #[test]
    fn a_request_to_recover_waits_for_the_next_leader() {
        let mut net = elected_net(3, 3);
        // Nobody leads when node 3 is asked to recover: it remembers, and recovers once it
        // leads even though it believes nobody down.
        tell_leader(&mut net, 3, None);
        let mut out = EffectsOf::<SuzukiKasami>::new();
        let epoch = net.nodes[0].epoch();
        net.nodes[2].on_message(Duration::ZERO, 1, SkMsg::Recover { epoch }, &mut out);
        assert!(out.is_empty());
        tell_leader(&mut net, 3, Some(3));
        net.run();
        // The token was at node 1 all along: re-stamped, nothing regenerated.
        assert_eq!(holders(&net), vec![1]);
        assert_eq!(net.nodes[0].token().map(|t| t.epoch.leader), Some(3));
    }

    #[test]
    fn a_deposed_leader_abandons_its_recovery() {
        let mut net = elected_net(3, 3);
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.down.push(2);
        detect(&mut net, 3, 2);
        // Node 3's probe is in flight when it learns that node 1 leads now.
        tell_leader(&mut net, 3, Some(1));
        net.run();
        assert!(
            holders(&net).is_empty(),
            "a deposed leader regenerates nothing"
        );
        detect(&mut net, 1, 2);
        tell_leader(&mut net, 1, Some(1));
        net.run();
        assert_eq!(holders(&net), vec![1]);
        assert_eq!(net.nodes[0].epoch().leader, 1);
    }

    #[test]
    fn a_recovery_starts_over_when_a_peer_that_answered_dies() {
        // N = 4, leader 4. The token went 1 → 3 → 2; node 2 holds it.
        let mut net = elected_net(4, 4);
        for who in [3, 2] {
            net.command(who, LockCommand::Acquire).unwrap();
            net.run();
            if who == 3 {
                net.command(3, LockCommand::Release).unwrap();
                net.run();
            }
        }
        assert_eq!(holders(&net), vec![2]);
        // Node 3 crashes: the leader probes 1 and 2; node 2 answers "I have it" at once, the
        // probe to node 1 is slow.
        net.down.push(3);
        detect(&mut net, 4, 3);
        let to_1 = net.queue.iter().position(|(_, to, _)| *to == 1).unwrap();
        let slow = net.queue.remove(to_1).unwrap();
        net.run();
        // Node 1 sent the token to node 3 once: it asks the leader, which already covers it.
        detect(&mut net, 1, 3);
        net.run();
        assert_eq!(net.nodes[3].epoch().round, 1);
        // Then the holder crashes too, before node 1 answers: the running recovery would find
        // "node 2 has it" and regenerate nothing, so the leader starts over.
        net.down.push(2);
        detect(&mut net, 4, 2);
        net.queue.push_front(slow);
        net.run();
        detect(&mut net, 1, 2);
        net.run();
        assert_eq!(holders(&net), vec![4], "the token is regenerated once");
        assert_eq!(net.nodes[0].epoch().round, 2);
    }

    #[test]
    fn set_leader_is_ignored_under_the_lowest_live_rule() {
        let mut a = SuzukiKasami::new(3, [1, 2, 3]).unwrap();
        assert!(!a.has_external_leader());
        let mut out = EffectsOf::<SuzukiKasami>::new();
        a.on_peer_down(Duration::ZERO, 1, &mut out);
        out.clear();
        a.set_leader(Some(3), &mut out);
        assert!(out.is_empty());
        assert_eq!(a.leader(), None);
    }

    #[test]
    fn malformed_token_and_forged_probe_are_dropped() {
        let mut a = SuzukiKasami::new(2, [1, 2, 3]).unwrap();
        let mut out = EffectsOf::<SuzukiKasami>::new();
        let bad = Token {
            epoch: Epoch {
                round: 3,
                leader: 1,
            },
            seq: 0,
            hop: 1,
            ln: vec![0; 7],
            queue: VecDeque::from([42]),
        };
        a.on_message(Duration::ZERO, 1, SkMsg::Token(bad), &mut out);
        a.on_message(
            Duration::ZERO,
            3,
            SkMsg::Probe {
                epoch: Epoch {
                    round: 1,
                    leader: 1,
                },
            },
            &mut out,
        );
        assert!(out.is_empty());
        assert!(a.token().is_none());
        assert_eq!(a.epoch().round, 0);
    }
}
