//! The causal log's schema: the kind of every semantic event the services log, and the names of
//! its fields.
//!
//! The writers (the runtime's service observers) and the reader (the `causal-log` tool's checks
//! and diagram) both take these constants from here, so a renamed kind or field cannot leave
//! the checker looking for the old one. `docs/log-format.md` describes the line formats.
//!
//! | kind | fields | logged when |
//! |---|---|---|
//! | [`LOCK_ENTER`](kind::LOCK_ENTER) | `resource`, `fence`, `token` | a lock member is granted its critical section |
//! | [`LOCK_EXIT`](kind::LOCK_EXIT) | `resource`, `fence`, `token`, `lost` (`true` when lost) | it leaves it, or loses it |
//! | [`LOCK_REGENERATE`](kind::LOCK_REGENERATE) | `resource`, `round`, `leader` | it regenerates a lost Suzuki–Kasami token |
//! | [`LEADER_ELECTED`](kind::LEADER_ELECTED) | `leader`, `term`, `round`, `election` (when named) | a member recognises a leader |
//! | [`BROADCAST_PUBLISH`](kind::BROADCAST_PUBLISH) | `group`, `order`, `seq` | a member publishes |
//! | [`BROADCAST_DELIVER`](kind::BROADCAST_DELIVER) | `group`, `order`, `from`, `seq`, `position` | a member delivers |
//! | [`SCOPE_UNSCOPED`](kind::SCOPE_UNSCOPED) | `session`, `message` | a websocket session handles a message outside its process scope |
//!
//! `fence` is the fencing token as a number, `token` the same shown as `round.opener:seq`;
//! `term` is the election's ballot as one number (`round << 32 | leader`); `order` is
//! [`ORDER_CAUSAL`] or [`ORDER_TOTAL`].

/// Event kinds.
pub mod kind {
    /// A lock member enters its critical section.
    pub const LOCK_ENTER: &str = "lock.enter";
    /// A lock member leaves its critical section (or loses it: field `lost`).
    pub const LOCK_EXIT: &str = "lock.exit";
    /// A lock member regenerates a lost Suzuki–Kasami token.
    pub const LOCK_REGENERATE: &str = "lock.regenerate";
    /// The prefix every lock event's kind starts with.
    pub const LOCK_PREFIX: &str = "lock.";
    /// A member recognises a leader.
    pub const LEADER_ELECTED: &str = "leader.elected";
    /// The prefix every election event's kind starts with.
    pub const LEADER_PREFIX: &str = "leader.";
    /// A broadcast member publishes.
    pub const BROADCAST_PUBLISH: &str = "broadcast.publish";
    /// A broadcast member delivers.
    pub const BROADCAST_DELIVER: &str = "broadcast.deliver";
    /// A websocket session handles a message outside its process scope.
    pub const SCOPE_UNSCOPED: &str = "scope.unscoped";
}

/// Field names.
pub mod field {
    /// The locked resource's name.
    pub const RESOURCE: &str = "resource";
    /// The fencing token, as a number.
    pub const FENCE: &str = "fence";
    /// The fencing token, shown as `round.opener:seq`.
    pub const TOKEN: &str = "token";
    /// `true` on a `lock.exit` that is a loss.
    pub const LOST: &str = "lost";
    /// A Suzuki–Kasami epoch's or an election term's round.
    pub const ROUND: &str = "round";
    /// The member that leads: an epoch's opener, or the elected leader.
    pub const LEADER: &str = "leader";
    /// An election term as one number.
    pub const TERM: &str = "term";
    /// The election's name, when it has one.
    pub const ELECTION: &str = "election";
    /// The broadcast group's name.
    pub const GROUP: &str = "group";
    /// The broadcast's order: [`ORDER_CAUSAL`](super::ORDER_CAUSAL) or
    /// [`ORDER_TOTAL`](super::ORDER_TOTAL).
    pub const ORDER: &str = "order";
    /// The member that published a delivered broadcast.
    pub const FROM: &str = "from";
    /// A broadcast's number among its publisher's.
    pub const SEQ: &str = "seq";
    /// A delivery's position among the member's deliveries.
    pub const POSITION: &str = "position";
    /// The websocket session's name.
    pub const SESSION: &str = "session";
    /// The message type's short name.
    pub const MESSAGE: &str = "message";
}

/// The `order` of a causal broadcast.
pub const ORDER_CAUSAL: &str = "causal";
/// The `order` of a total-order broadcast.
pub const ORDER_TOTAL: &str = "total";
