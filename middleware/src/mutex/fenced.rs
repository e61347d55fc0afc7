//! The fenced resource: the last line of defence of a distributed lock.
//!
//! Sans-IO and deterministic: no I/O, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`.
//!
//! A lock holder can be paused, partitioned or falsely declared dead while it still believes it
//! holds the lock; meanwhile the lock passes on. Kleppmann (2016) and Chubby's sequencers give the
//! remedy: every write carries the writer's fencing token, and the resource refuses a token lower
//! than the highest it has accepted. Equal tokens are accepted (the same owner writing again).
//!
//! ```
//! use actix_coord::mutex::{FenceError, FencedResource};
//!
//! let mut counter = FencedResource::new(0u64);
//! counter.write(1, |v| *v += 1).unwrap();          // owner with token 1
//! counter.write(2, |v| *v += 1).unwrap();          // next owner, token 2
//! assert_eq!(counter.write(1, |v| *v += 1),        // the old owner wakes up
//!            Err(FenceError::Stale { token: 1, highest: 2 }));
//! assert_eq!(*counter.get(), 2);
//! ```

use super::Fence;

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
}

/// A value guarded by fencing tokens: writes with a token lower than the highest seen are refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FencedResource<T> {
    value: T,
    highest: Option<Fence>,
}

impl<T> FencedResource<T> {
    /// A resource holding `value`, having seen no token yet.
    pub const fn new(value: T) -> Self {
        Self {
            value,
            highest: None,
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
        self.highest = Some(token);
        Ok(f(&mut self.value))
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
    fn any_first_token_is_accepted() {
        let r = FencedResource::new(());
        assert_eq!(r.check(0), Ok(()));
    }
}
