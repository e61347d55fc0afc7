//! Process names: unique within the OS process (a repeated name gets `#2`, `#3`, …), the
//! documented default of explicit processes, and `ExplicitProcess: Debug`.
//!
//! Names are process-wide and tests run in parallel, so each test uses names of its own.

use actix::prelude::*;
use actix_coord::CausalContext;
use actix_coord::intercept::{CausalBuilder, ExplicitProcess};

#[derive(Message)]
#[rtype(result = "String")]
struct Name;

struct Session;

impl Actor for Session {
    type Context = CausalContext<Self>;
}

impl Handler<Name> for Session {
    type Result = String;
    fn handle(&mut self, _: Name, ctx: &mut Self::Context) -> String {
        ctx.process_name().to_string()
    }
}

#[test]
fn repeated_names_get_a_suffix() {
    let names: Vec<String> = System::new().block_on(async {
        let mut names = Vec::new();
        for _ in 0..3 {
            let s = CausalBuilder::new()
                .name("names test session")
                .start(Session);
            names.push(s.send(Name).await.unwrap());
        }
        names
    });
    assert_eq!(
        names,
        [
            "names_test_session",
            "names_test_session#2",
            "names_test_session#3"
        ]
    );
    // Explicit processes share the rule (and the names already taken).
    let e = ExplicitProcess::with_name("names test session");
    assert_eq!(&*e.name(), "names_test_session#4");
    // A name that looks like a suffixed one is a name like any other.
    let a = ExplicitProcess::with_name("names-test-explicit#2");
    let b = ExplicitProcess::with_name("names-test-explicit");
    let c = ExplicitProcess::with_name("names-test-explicit");
    assert_eq!(
        [&*a.name(), &*b.name(), &*c.name()],
        [
            "names-test-explicit#2",
            "names-test-explicit",
            "names-test-explicit#3"
        ]
    );
}

#[test]
fn default_explicit_names_are_as_documented() {
    let a = ExplicitProcess::default();
    let b = ExplicitProcess::default();
    for p in [&a, &b] {
        let n = p.name();
        let k = n
            .strip_prefix("ExplicitProcess#")
            .unwrap_or_else(|| panic!("{n}"));
        assert!(k.parse::<u32>().is_ok_and(|k| k >= 1), "{n}");
    }
    assert_ne!(a.name(), b.name());
}

#[test]
fn actors_holding_an_explicit_process_derive_debug() {
    #[derive(Debug)]
    struct Registry {
        process: ExplicitProcess,
        entries: u32,
    }
    let r = Registry {
        process: ExplicitProcess::with_name("names-test-registry"),
        entries: 2,
    };
    assert_eq!(r.entries, 2);
    let text = format!("{r:?}");
    assert!(
        text.contains("ExplicitProcess { id: ")
            && text.contains("name: \"names-test-registry\" }")
            && text.contains("entries: 2"),
        "{text}"
    );
    assert_eq!(
        format!("{}", r.process.id()),
        text.split("id: ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
    );
}
