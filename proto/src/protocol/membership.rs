//! [`Membership`]: who a core is, who its group is, and which peers its shell declared down.

use super::{ConfigError, NodeId};
use std::collections::BTreeSet;

/// A core's view of its group: its own id, the configured members (sorted, itself included)
/// and the peers the shell's failure detector declared down.
///
/// Every core keeps one. The failure detector may be wrong (a false suspicion), so "down" only
/// means "not waited for"; a peer that speaks again is up ([`set_up`](Self::set_up)).
///
/// ```
/// use actix_coord_proto::protocol::Membership;
///
/// let mut m = Membership::new(2, [3, 1, 2]).unwrap();
/// assert_eq!(m.members(), &[1, 2, 3]);
/// assert!(m.set_down(3));
/// assert_eq!(m.live_peers().collect::<Vec<_>>(), [1]);
/// assert!(!m.set_down(2), "a member never declares itself down");
/// assert!(m.set_up(3));
/// assert_eq!(m.live_peers().collect::<Vec<_>>(), [1, 3]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    me: NodeId,
    members: Vec<NodeId>,
    down: BTreeSet<NodeId>,
}

impl Membership {
    /// Member `me` of `members`: `me` must be among them, with no duplicates
    /// ([`ConfigError::NotAMember`], [`ConfigError::Duplicate`]).
    pub fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Result<Self, ConfigError> {
        let mut v: Vec<NodeId> = members.into_iter().collect();
        v.sort_unstable();
        if let Some(w) = v.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Duplicate(w[0]));
        }
        if v.binary_search(&me).is_err() {
            return Err(ConfigError::NotAMember(me));
        }
        Ok(Self {
            me,
            members: v,
            down: BTreeSet::new(),
        })
    }

    /// The group of `members` with `me` added and duplicates dropped: for a shell that takes
    /// the membership its core already validated, and must not fail on it.
    pub fn including(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Self {
        let mut v: Vec<NodeId> = members.into_iter().chain([me]).collect();
        v.sort_unstable();
        v.dedup();
        Self {
            me,
            members: v,
            down: BTreeSet::new(),
        }
    }

    /// This member's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Every configured member, itself included, in id order.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// How many members are configured.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group is empty: never, since it holds this member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The position of `id` among [`members`](Self::members), if it is one.
    pub fn ix(&self, id: NodeId) -> Option<usize> {
        self.members.binary_search(&id).ok()
    }

    /// Whether `id` is a configured member (this one included).
    pub fn is_member(&self, id: NodeId) -> bool {
        self.ix(id).is_some()
    }

    /// Whether `id` is a configured member other than this one, down or not.
    pub fn is_peer(&self, id: NodeId) -> bool {
        id != self.me && self.is_member(id)
    }

    /// Whether `id` is a peer not declared down.
    pub fn is_live_peer(&self, id: NodeId) -> bool {
        self.is_peer(id) && !self.down.contains(&id)
    }

    /// Whether `id` is declared down.
    pub fn is_down(&self, id: NodeId) -> bool {
        self.down.contains(&id)
    }

    /// The peers declared down, in id order.
    pub fn down(&self) -> &BTreeSet<NodeId> {
        &self.down
    }

    /// Every member but this one, in id order.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(move |&p| p != self.me)
    }

    /// The peers not declared down, in id order.
    pub fn live_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers().filter(move |p| !self.down.contains(p))
    }

    /// `peer` is declared down; true if it was a live peer. Neither this member nor a stranger
    /// is ever recorded as down.
    pub fn set_down(&mut self, peer: NodeId) -> bool {
        self.is_peer(peer) && self.down.insert(peer)
    }

    /// `peer` is up (declared so, or heard from); true if it is a peer (down before or not),
    /// false for this member and strangers.
    pub fn set_up(&mut self, peer: NodeId) -> bool {
        if !self.is_peer(peer) {
            return false;
        }
        self.down.remove(&peer);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_validated() {
        assert_eq!(Membership::new(2, [3, 1, 2]).unwrap().members(), &[1, 2, 3]);
        assert_eq!(
            Membership::new(4, [3, 1, 2]),
            Err(ConfigError::NotAMember(4))
        );
        assert_eq!(
            Membership::new(1, [1, 2, 1]),
            Err(ConfigError::Duplicate(1))
        );
    }

    #[test]
    fn including_never_fails() {
        assert_eq!(Membership::including(4, [3, 1, 3]).members(), &[1, 3, 4]);
        assert_eq!(
            Membership::including(1, [1, 2]),
            Membership::new(1, [1, 2]).unwrap()
        );
    }

    #[test]
    fn down_and_up() {
        let mut m = Membership::new(1, [1, 2, 3]).unwrap();
        assert!(!m.set_down(1));
        assert!(!m.set_down(9));
        assert!(m.down().is_empty());
        assert!(m.set_down(2));
        assert!(!m.set_down(2), "already down");
        assert!(m.is_peer(2) && !m.is_live_peer(2) && m.is_down(2));
        assert_eq!(m.peers().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(m.live_peers().collect::<Vec<_>>(), [3]);
        assert!(m.set_up(2));
        assert!(m.set_up(3), "up while up is still a peer");
        assert!(!m.set_up(1) && !m.set_up(9));
        assert_eq!(m.live_peers().collect::<Vec<_>>(), [2, 3]);
    }
}
