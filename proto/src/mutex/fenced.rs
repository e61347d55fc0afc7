//! The fenced resource: the last line of defence of a distributed lock.
//!
//! Sans-IO and deterministic: no I/O, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`.
//!
//! A lock holder can be paused, partitioned or falsely declared dead while it still believes it
//! holds the lock; meanwhile the lock passes on. Kleppmann (2016) and Chubby's sequencers give the
//! remedy: every write carries the writer's fencing token, and the resource refuses a token lower
//! than the highest it has accepted. Equal tokens are accepted from the same ownership:
//! [`write`](FencedResource::write) takes the token alone (one ownership, one fence, so an equal
//! token is the same owner), [`write_by`](FencedResource::write_by) also names the writer and
//! refuses an equal token from a **different** owner (`FenceError::Foreign`): if a bug or a fault
//! ever gave two owners the same fence, the second is refused instead of trusted.
//!
//! The check and the write must be one step at the resource. A `FencedResource` kept in memory
//! is; one persisted elsewhere (a file, a row) needs that store's compare-and-swap around its
//! check. A writer that checks, pauses, and writes later would otherwise put back a value read
//! before every write made meanwhile (the counter workload of the examples commits with a hard
//! link for this reason).
//!
//! ```
//! use actix_coord_proto::mutex::{FenceError, FencedResource};
//!
//! let mut counter = FencedResource::new(0u64);
//! counter.write(1, |v| *v += 1).unwrap();          // owner with token 1
//! counter.write(2, |v| *v += 1).unwrap();          // next owner, token 2
//! assert_eq!(counter.write(1, |v| *v += 1),        // the old owner wakes up
//!            Err(FenceError::Stale { token: 1, highest: 2 }));
//! assert_eq!(*counter.get(), 2);
//! ```

use super::Fence;
use crate::protocol::NodeId;

/// A write refused by a [`FencedResource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The token is lower than the highest accepted: its owner has lost the lock.
    #[error("stale fencing token {token} (highest accepted {highest})")]
    Stale {
        /// The refused token.
        token: Fence,
        /// The highest token accepted so far.
        highest: Fence,
    },
    /// The token equals the highest accepted, but another owner wrote with it: two ownerships
    /// with one fence, refused.
    #[error("fencing token {token} already used by member {owner}, refused for member {writer}")]
    Foreign {
        /// The refused token.
        token: Fence,
        /// Who wrote with it first.
        owner: NodeId,
        /// Who tried to write with it now.
        writer: NodeId,
    },
}

/// A value guarded by fencing tokens: writes with a token lower than the highest seen are refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FencedResource<T> {
    value: T,
    highest: Option<Fence>,
    /// Who wrote with `highest`, when the writer named itself ([`write_by`](Self::write_by)).
    owner: Option<NodeId>,
}

impl<T> FencedResource<T> {
    /// A resource holding `value`, having seen no token yet.
    pub const fn new(value: T) -> Self {
        Self {
            value,
            highest: None,
            owner: None,
        }
    }

    /// Check `token` without writing.
    ///
    /// # Errors
    /// [`FenceError::Stale`] when `token` is lower than the highest accepted.
    pub fn check(&self, token: Fence) -> Result<(), FenceError> {
        match self.highest {
            Some(highest) if token < highest => Err(FenceError::Stale { token, highest }),
            _ => Ok(()),
        }
    }

    /// Apply `f` to the value if `token` is not stale, and remember `token`.
    ///
    /// # Errors
    /// [`FenceError::Stale`] when `token` is lower than the highest accepted; the value and the
    /// highest token are unchanged.
    pub fn write<R>(&mut self, token: Fence, f: impl FnOnce(&mut T) -> R) -> Result<R, FenceError> {
        self.check(token)?;
        if self.highest != Some(token) {
            self.owner = None;
        }
        self.highest = Some(token);
        Ok(f(&mut self.value))
    }

    /// Check `token` from `writer` without writing: as [`check`](Self::check), and an equal
    /// token is accepted only from the member that wrote with it first.
    ///
    /// # Errors
    /// [`FenceError::Stale`] when `token` is lower than the highest accepted,
    /// [`FenceError::Foreign`] when it equals it and another member wrote with it.
    pub fn check_by(&self, writer: NodeId, token: Fence) -> Result<(), FenceError> {
        self.check(token)?;
        match (self.highest, self.owner) {
            (Some(h), Some(owner)) if h == token && owner != writer => Err(FenceError::Foreign {
                token,
                owner,
                writer,
            }),
            _ => Ok(()),
        }
    }

    /// Apply `f` to the value if `writer`'s `token` is neither stale nor another owner's, and
    /// remember both.
    ///
    /// ```
    /// use actix_coord_proto::mutex::{FenceError, FencedResource};
    ///
    /// let mut r = FencedResource::new(0u64);
    /// r.write_by(2, 7, |v| *v += 1).unwrap();
    /// r.write_by(2, 7, |v| *v += 1).unwrap();                 // the same owner again
    /// assert_eq!(r.write_by(1, 7, |v| *v += 1),                // another owner, same fence
    ///            Err(FenceError::Foreign { token: 7, owner: 2, writer: 1 }));
    /// assert_eq!(*r.get(), 2);
    /// ```
    ///
    /// # Errors
    /// As [`check_by`](Self::check_by); the value, the highest token and its owner are unchanged.
    pub fn write_by<R>(
        &mut self,
        writer: NodeId,
        token: Fence,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, FenceError> {
        self.check_by(writer, token)?;
        self.highest = Some(token);
        self.owner = Some(writer);
        Ok(f(&mut self.value))
    }

    /// The member that wrote with the highest token, when it named itself.
    pub fn owner(&self) -> Option<NodeId> {
        self.owner
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The highest token accepted so far.
    pub fn highest(&self) -> Option<Fence> {
        self.highest
    }

    /// The value, giving up the guard.
    pub fn into_inner(self) -> T {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_token_is_refused_and_changes_nothing() {
        let mut r = FencedResource::new(vec![]);
        r.write(5, |v| v.push(5)).unwrap();
        assert_eq!(
            r.write(4, |v| v.push(4)),
            Err(FenceError::Stale {
                token: 4,
                highest: 5
            })
        );
        assert_eq!(r.get(), &vec![5]);
        assert_eq!(r.highest(), Some(5));
    }

    #[test]
    fn equal_token_is_the_same_owner_and_accepted() {
        let mut r = FencedResource::new(0);
        r.write(3, |v| *v += 1).unwrap();
        r.write(3, |v| *v += 1).unwrap();
        assert_eq!(r.into_inner(), 2);
    }

    #[test]
    fn an_equal_fence_from_another_owner_is_refused() {
        // Issue 11, third report: two holders with the same fence must not both write.
        let mut r = FencedResource::new(vec![]);
        r.write_by(2, 1, |v| v.push(2)).unwrap();
        assert_eq!(
            r.write_by(1, 1, |v| v.push(1)),
            Err(FenceError::Foreign {
                token: 1,
                owner: 2,
                writer: 1
            })
        );
        r.write_by(2, 1, |v| v.push(2)).unwrap();
        assert_eq!(
            r.write_by(1, 0, |v| v.push(1)),
            Err(FenceError::Stale {
                token: 0,
                highest: 1
            })
        );
        r.write_by(1, 2, |v| v.push(1)).unwrap();
        assert_eq!((r.get().clone(), r.owner()), (vec![2, 2, 1], Some(1)));
    }

    #[test]
    fn any_first_token_is_accepted() {
        let r = FencedResource::new(());
        assert_eq!(r.check(0), Ok(()));
    }
}
