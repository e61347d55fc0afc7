//! How the causal log names message and actor types, and the opt-in to log what a message
//! carried.
//!
//! **Type labels.** A type is labelled by the last segment of its path, generics stripped
//! (`chat::server::Message` → `Message`), unless another type already has that label in this OS
//! process: then it gets the shortest suffix of its path that no other type has
//! (`ws::Message`), then its full name with generics (at once for another instance of a generic
//! type already labelled), then that name with `#2`, `#3`, ….
//! So a label names one type for the whole run of a process, and the first type of a name keeps
//! the short one. Labels are decided at first use, so which of two colliding types keeps the
//! short label depends on which one the process logged first.
//!
//! **Contents.** By default the log says which type a message was, not what it carried.
//! [`log_contents::<M>()`](log_contents) opts one message type in: from then on each local send
//! of an `M` (to a causal actor, or stamped with [`Stamped`](super::Stamped)) is labelled with
//! its `Debug` form, cut to [`MAX_CONTENT_LEN`] bytes:
//! `send Say to ChatServer: Say { room: "main", text: "hi" }`. Only what is opted in is
//! formatted, and only while a causal log is being written; a type never opted in costs one
//! relaxed atomic load per send.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

/// The longest content logged for one message, in bytes (longer ones are cut at a character
/// boundary and end with `…`).
pub const MAX_CONTENT_LEN: usize = 256;

#[derive(Default)]
struct Labels {
    by_type: HashMap<&'static str, &'static str>,
    taken: HashSet<&'static str>,
}

static LABELS: Mutex<Option<Labels>> = Mutex::new(None);

thread_local! {
    static CACHE: RefCell<HashMap<&'static str, &'static str>> = RefCell::new(HashMap::new());
}

/// The label of type `T` in this process's causal log (see the module docs for the rule).
pub(crate) fn type_label<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    if let Some(l) = CACHE.with(|c| c.borrow().get(full).copied()) {
        return l;
    }
    let label = {
        let mut guard = LABELS.lock().unwrap_or_else(|e| e.into_inner());
        let labels = guard.get_or_insert_with(Labels::default);
        match labels.by_type.get(full) {
            Some(&l) => l,
            None => {
                let l = choose(full, labels);
                labels.taken.insert(l);
                labels.by_type.insert(full, l);
                l
            }
        }
    };
    CACHE.with(|c| c.borrow_mut().insert(full, label));
    label
}

/// The first of the candidate labels for `full` that no other type has.
fn choose(full: &'static str, labels: &Labels) -> &'static str {
    let taken = &labels.taken;
    let base_of = |t: &'static str| t.split('<').next().unwrap_or(t);
    let base = base_of(full);
    // Another instance of the same generic type: only the full name tells them apart.
    let same_base = labels.by_type.keys().any(|&t| base_of(t) == base);
    let segments: Vec<&str> = base.split("::").collect();
    for k in (1..=segments.len()).filter(|_| !same_base) {
        // A suffix of `base` is a sub-slice of the `'static` name: no allocation.
        let start = base.len() - segments[segments.len() - k..].join("::").len();
        let candidate = &base[start..];
        if !taken.contains(candidate) {
            return candidate;
        }
    }
    if !taken.contains(full) {
        return full;
    }
    (2u64..)
        .map(|n| format!("{full}#{n}"))
        .find(|c| !taken.contains(c.as_str()))
        .map(|c| &*Box::leak(c.into_boxed_str()))
        .unwrap_or(full)
}

type Formatter = fn(&dyn Any) -> Option<String>;

static ANY_CONTENT: AtomicBool = AtomicBool::new(false);
static CONTENTS: RwLock<Option<HashMap<TypeId, Formatter>>> = RwLock::new(None);

/// Opts message type `M` in: from now on, the causal log labels every local send of an `M`
/// with what it carried (its `Debug` form, at most [`MAX_CONTENT_LEN`] bytes). For all the
/// process's threads; calling it again changes nothing.
///
/// ```
/// use actix::prelude::*;
///
/// #[derive(Message, Debug)]
/// #[rtype(result = "()")]
/// struct Say {
///     text: String,
/// }
///
/// actix_coord::intercept::log_contents::<Say>();
/// // Sends of `Say` now read `send Say to ChatServer: Say { text: "hi" }` in the log.
/// ```
pub fn log_contents<M: Debug + 'static>() {
    fn format<M: Debug + 'static>(m: &dyn Any) -> Option<String> {
        m.downcast_ref::<M>().map(|m| cut(format!("{m:?}")))
    }
    let mut guard = CONTENTS.write().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(HashMap::new)
        .insert(TypeId::of::<M>(), format::<M>);
    ANY_CONTENT.store(true, Ordering::Release);
}

/// Whether sends of message type `M` are labelled with their contents
/// ([`log_contents`]).
pub fn logs_contents<M: 'static>() -> bool {
    ANY_CONTENT.load(Ordering::Relaxed)
        && CONTENTS
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|m| m.contains_key(&TypeId::of::<M>()))
}

/// What `msg` carried, if its type was opted in with [`log_contents`].
pub(crate) fn content_of<M: 'static>(msg: &M) -> Option<String> {
    if !ANY_CONTENT.load(Ordering::Relaxed) {
        return None;
    }
    let f = *CONTENTS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()?
        .get(&TypeId::of::<M>())?;
    f(msg)
}

/// `s` cut to [`MAX_CONTENT_LEN`] bytes at a character boundary.
fn cut(mut s: String) -> String {
    if s.len() > MAX_CONTENT_LEN {
        let mut end = MAX_CONTENT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `label` followed by `: content` when there is one.
pub(crate) fn with_content(label: String, content: Option<&str>) -> String {
    match content {
        Some(c) => format!("{label}: {c}"),
        None => label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod a {
        pub struct Clash;
        pub mod deeper {
            pub struct Clash;
        }
    }
    mod b {
        pub struct Clash;
    }
    struct Generic<T>(T);

    #[test]
    fn colliding_short_names_get_distinct_labels_and_keep_them() {
        let first = type_label::<a::Clash>();
        let second = type_label::<b::Clash>();
        let third = type_label::<a::deeper::Clash>();
        assert_eq!(first, "Clash");
        assert_eq!(second, "b::Clash");
        assert_eq!(third, "deeper::Clash");
        assert_eq!(type_label::<a::Clash>(), "Clash", "stable");
        assert_eq!(type_label::<b::Clash>(), "b::Clash");
        // Same base path, different generics: the full name tells them apart.
        let g1 = type_label::<Generic<u8>>();
        let g2 = type_label::<Generic<u16>>();
        assert_ne!(g1, g2);
        assert!(g2.contains("u16"), "{g2}");
        // From another thread (its own cache), the same labels.
        let other = std::thread::spawn(|| (type_label::<b::Clash>(), type_label::<a::Clash>()))
            .join()
            .unwrap();
        assert_eq!(other, ("b::Clash", "Clash"));
    }

    #[derive(Debug)]
    struct Said {
        #[allow(dead_code)] // read through `Debug`
        text: String,
    }
    #[derive(Debug)]
    struct Quiet;

    #[test]
    fn contents_only_for_types_opted_in_and_cut_to_the_limit() {
        assert_eq!(content_of(&Quiet), None);
        log_contents::<Said>();
        assert!(logs_contents::<Said>() && !logs_contents::<Quiet>());
        let said = Said { text: "hi".into() };
        assert_eq!(content_of(&said).as_deref(), Some(r#"Said { text: "hi" }"#));
        assert_eq!(content_of(&Quiet), None);
        let long = Said {
            text: "é".repeat(400),
        };
        let c = content_of(&long).unwrap();
        assert!(
            c.len() <= MAX_CONTENT_LEN + '…'.len_utf8() && c.ends_with('…'),
            "{c}"
        );
        assert_eq!(with_content("send Said".into(), Some("x")), "send Said: x");
    }
}
