//! A member's incarnation kept in a file, so that a restarted member takes a new one by itself.
//!
//! The file is `DIR/incarnation`, text, three lines:
//!
//! ```text
//! actix-coord incarnation v1
//! node 3
//! last 2
//! ```
//!
//! `last` is the incarnation of the latest start. [`Incarnation::claim`] reads it (a missing
//! file is a first start: 0), writes `last + 1` in its place (to a temporary file, synced, then
//! renamed over the old one and the folder synced, so a crash leaves the old count or the new
//! one, never a torn file), and holds an exclusive lock on `DIR/incarnation.lock` until the
//! [`Incarnation`] is dropped: a second live process claiming the same member's folder is
//! refused ([`IncarnationError::InUse`]). The kernel drops the lock of a killed process, so a
//! restart after `kill -9` claims the folder at once.
//!
//! Without a folder every start is incarnation 0: a restarted member's processes then reuse
//! their predecessor's ids and names, and the logs of the two cannot be checked as one run
//! (everything else holds: the coordination services tell incarnations apart on their own).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// The file's first line.
const MAGIC: &str = "actix-coord incarnation v1";

/// Why a member's incarnation could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum IncarnationError {
    /// The folder or a file in it could not be read or written.
    #[error("incarnation file {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not an incarnation file of this format.
    #[error("incarnation file {path}: line {line}: expected {expected:?}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The first line that is wrong (1-based).
        line: usize,
        /// What that line should look like.
        expected: &'static str,
    },
    /// The folder belongs to another member.
    #[error("incarnation file {path} belongs to node {found}, not node {node}")]
    OtherNode {
        /// The file.
        path: PathBuf,
        /// The member that claimed it.
        node: u32,
        /// The member the file names.
        found: u32,
    },
    /// Another live process holds the folder.
    #[error("{path} is held by another running process of this member")]
    InUse {
        /// The lock file.
        path: PathBuf,
    },
    /// Every incarnation number has been used.
    #[error("incarnation file {path}: no incarnation left after {last}")]
    Exhausted {
        /// The file.
        path: PathBuf,
        /// The last one used.
        last: u32,
    },
}

/// A member's incarnation, claimed from its state folder; holds the folder until dropped.
///
/// ```
/// use actix_coord::intercept::{Incarnation, set_incarnation};
///
/// let dir = std::env::temp_dir().join(format!("incarnation-doc-{}", std::process::id()));
/// let first = Incarnation::claim(&dir, 3)?;
/// assert_eq!(first.number(), 0);
/// set_incarnation(first.number()); // before starting actors
/// drop(first); // the process ends (or is killed)
/// assert_eq!(Incarnation::claim(&dir, 3)?.number(), 1); // its restart
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), actix_coord::intercept::IncarnationError>(())
/// ```
#[derive(Debug)]
pub struct Incarnation {
    number: u32,
    /// The open lock file: the lock lasts as long as it is open.
    _lock: File,
}

impl Incarnation {
    /// Claims the next incarnation of member `node` from folder `dir` (created if missing).
    ///
    /// # Errors
    /// [`IncarnationError`]: the folder cannot be used, its file is not one or names another
    /// node, or another live process holds it.
    pub fn claim(dir: &Path, node: u32) -> Result<Self, IncarnationError> {
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IncarnationError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock_path = dir.join("incarnation.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        // SAFETY: `flock` on a file descriptor this function owns, open for its whole call.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                IncarnationError::InUse { path: lock_path }
            } else {
                IncarnationError::Io {
                    path: lock_path,
                    source: e,
                }
            });
        }
        let path = dir.join("incarnation");
        let number = match fs::read_to_string(&path) {
            Ok(text) => {
                let last = parse(&path, &text, node)?;
                last.checked_add(1).ok_or(IncarnationError::Exhausted {
                    path: path.clone(),
                    last,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_at(&path)(e)),
        };
        let tmp = dir.join("incarnation.tmp");
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        write!(f, "{MAGIC}\nnode {node}\nlast {number}\n").map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
        Ok(Self {
            number,
            _lock: lock,
        })
    }

    /// The incarnation claimed: 0 at the first start.
    pub fn number(&self) -> u32 {
        self.number
    }
}

/// The `last` of an incarnation file of `node`.
fn parse(path: &Path, text: &str, node: u32) -> Result<u32, IncarnationError> {
    let mut lines = text.lines();
    let bad = |line, expected| IncarnationError::Malformed {
        path: path.to_path_buf(),
        line,
        expected,
    };
    if lines.next() != Some(MAGIC) {
        return Err(bad(1, MAGIC));
    }
    let found = lines
        .next()
        .and_then(|l| l.strip_prefix("node "))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| bad(2, "node N"))?;
    if found != node {
        return Err(IncarnationError::OtherNode {
            path: path.to_path_buf(),
            node,
            found,
        });
    }
    let last = lines
        .next()
        .and_then(|l| l.strip_prefix("last "))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| bad(3, "last N"))?;
    if lines.next().is_some() {
        return Err(bad(4, "the end of the file"));
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "actix-coord-incarnation-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn each_claim_after_the_last_is_one_more() {
        let d = dir("count");
        for k in 0..3 {
            assert_eq!(Incarnation::claim(&d, 5).unwrap().number(), k);
        }
        assert_eq!(
            fs::read_to_string(d.join("incarnation")).unwrap(),
            "actix-coord incarnation v1\nnode 5\nlast 2\n"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_folder_held_or_of_another_node_or_torn_is_refused() {
        let d = dir("refused");
        let held = Incarnation::claim(&d, 1).unwrap();
        assert!(matches!(
            Incarnation::claim(&d, 1),
            Err(IncarnationError::InUse { .. })
        ));
        drop(held);
        assert!(matches!(
            Incarnation::claim(&d, 2),
            Err(IncarnationError::OtherNode {
                node: 2,
                found: 1,
                ..
            })
        ));
        for (text, line) in [
            ("", 1),
            ("actix-coord incarnation v1\nnode 1\n", 3),
            ("actix-coord incarnation v1\nnode 1\nlast -1\n", 3),
            ("actix-coord incarnation v1\nnode x\nlast 1\n", 2),
            ("actix-coord incarnation v1\nnode 1\nlast 1\nmore\n", 4),
        ] {
            fs::write(d.join("incarnation"), text).unwrap();
            match Incarnation::claim(&d, 1) {
                Err(IncarnationError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        fs::write(
            d.join("incarnation"),
            format!("{MAGIC}\nnode 1\nlast {}\n", u32::MAX),
        )
        .unwrap();
        assert!(matches!(
            Incarnation::claim(&d, 1),
            Err(IncarnationError::Exhausted { .. })
        ));
        fs::remove_dir_all(&d).unwrap();
    }
}
