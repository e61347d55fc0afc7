//! The cook, the letter and the cookbook: part 1 of the tour.
//!
//! Four actors written as plain actix actors, except for their context line
//! (`type Context = CausalContext<Self>`). Their `tracing::info!` events become local events of
//! the causal log.

use actix::prelude::*;
use actix_coord::intercept::{CausalBuilder, CausalContext};
use std::time::Duration;
use tokio::sync::oneshot;

/// Ask the library for a book.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Borrow(pub &'static str);

/// Give a book back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Return(pub &'static str);

/// The library lends its one cookbook.
pub struct Library {
    on_shelf: bool,
}

impl Actor for Library {
    type Context = CausalContext<Self>;
}

impl Handler<Borrow> for Library {
    type Result = Option<String>;
    fn handle(&mut self, m: Borrow, _: &mut Self::Context) -> Option<String> {
        if m.0 == "cookbook" && self.on_shelf {
            self.on_shelf = false;
            tracing::info!(book = m.0, "lends the cookbook");
            Some("risotto: onions, rice, stock, parmesan".into())
        } else {
            tracing::info!(book = m.0, "the book is out");
            None
        }
    }
}

impl Handler<Return> for Library {
    type Result = ();
    fn handle(&mut self, m: Return, _: &mut Self::Context) {
        self.on_shelf = true;
        tracing::info!(book = m.0, "the cookbook is back on the shelf");
    }
}

/// A letter between friends.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Letter(pub String);

/// Start cooking.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CookDinner;

/// The cook borrows the cookbook, cooks, writes to the reader and returns the book.
pub struct Cook {
    library: Addr<Library>,
    reader: Addr<Reader>,
}

impl Actor for Cook {
    type Context = CausalContext<Self>;
}

impl Handler<CookDinner> for Cook {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: CookDinner, _: &mut Self::Context) -> Self::Result {
        tracing::info!("wants to cook risotto");
        let borrow = self.library.send(Borrow("cookbook"));
        Box::pin(borrow.into_actor(self).map(|recipe, act, _| {
            let recipe = recipe.ok().flatten().unwrap_or_default();
            tracing::info!(%recipe, "reads the recipe");
            tracing::info!("chops the onions");
            tracing::info!("dinner is served");
            act.reader
                .do_send(Letter("try the risotto in the library's cookbook".into()));
            act.library.do_send(Return("cookbook"));
        }))
    }
}

/// The reader waits for a letter, then borrows and reads the cookbook.
pub struct Reader {
    library: Addr<Library>,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Reader {
    type Context = CausalContext<Self>;
}

impl Handler<Letter> for Reader {
    type Result = ();
    fn handle(&mut self, m: Letter, ctx: &mut Self::Context) {
        tracing::info!(letter = %m.0, "reads the letter");
        self.try_borrow(ctx);
    }
}

impl Reader {
    /// Borrows the cookbook; if it is still out, tries again a little later.
    fn try_borrow(&mut self, ctx: &mut CausalContext<Self>) {
        let borrow = self.library.send(Borrow("cookbook"));
        ctx.spawn(
            borrow
                .into_actor(self)
                .map(|book, act, ctx| match book.ok().flatten() {
                    Some(_) => {
                        tracing::info!("reads the cookbook");
                        act.library.do_send(Return("cookbook"));
                        if let Some(done) = act.done.take() {
                            let _ = done.send(());
                        }
                    }
                    None => {
                        ctx.run_later(Duration::from_millis(2), |act, ctx| act.try_borrow(ctx));
                    }
                }),
        );
    }
}

/// The gardener waters the garden a few times, talking to no one.
pub struct Gardener {
    rounds: u32,
    done: Option<oneshot::Sender<()>>,
}

impl Actor for Gardener {
    type Context = CausalContext<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!("takes the watering can");
        ctx.run_interval(Duration::from_millis(1), |act, ctx| {
            // Missed ticks arrive in a burst within one poll, even after `stop`: count.
            if act.rounds == 3 {
                return;
            }
            act.rounds += 1;
            tracing::info!(round = act.rounds, "waters the roses");
            if act.rounds == 3 {
                if let Some(done) = act.done.take() {
                    let _ = done.send(());
                }
                ctx.stop();
            }
        });
    }
}

/// Runs the story to its end.
///
/// # Errors
/// An actor stopped before the story ended.
pub async fn run() -> Result<(), MailboxError> {
    let library = CausalBuilder::new()
        .name("library")
        .start(Library { on_shelf: true });
    let (read_tx, read_rx) = oneshot::channel();
    let reader = CausalBuilder::new().name("reader").start(Reader {
        library: library.clone(),
        done: Some(read_tx),
    });
    let cook = CausalBuilder::new().name("cook").start(Cook {
        library: library.clone(),
        reader: reader.clone(),
    });
    let (garden_tx, garden_rx) = oneshot::channel();
    CausalBuilder::new().name("gardener").start(Gardener {
        rounds: 0,
        done: Some(garden_tx),
    });
    cook.send(CookDinner).await?;
    read_rx.await.map_err(|_| MailboxError::Closed)?;
    garden_rx.await.map_err(|_| MailboxError::Closed)?;
    Ok(())
}

/// The tour's causal summary: pairs of story events and how they are related, decided by the
/// vector clocks of `log`.
///
/// # Errors
/// A story event is missing from the log.
pub fn summarize(log: &causal_log::Log) -> Result<Vec<String>, String> {
    let find = |host: &str, text: &str| {
        log.events()
            .iter()
            .position(|e| log.host_name(e.host) == host && e.text.starts_with(text))
            .ok_or_else(|| format!("no event {host}: {text:?} in the log"))
    };
    let pairs = [
        (
            ("cook", "dinner is served"),
            ("reader", "reads the cookbook"),
        ),
        (("cook", "reads the recipe"), ("reader", "reads the letter")),
        (
            ("library", "lends the cookbook"),
            ("cook", "chops the onions"),
        ),
        (
            ("gardener", "waters the roses"),
            ("cook", "dinner is served"),
        ),
        (
            ("gardener", "waters the roses"),
            ("reader", "reads the cookbook"),
        ),
        (
            ("archive@n2", "finds the record"),
            ("registry@n3", "files the note"),
        ),
        (
            ("cook", "dinner is served"),
            ("registry@n3", "files the note"),
        ),
    ];
    let mut lines = Vec::new();
    for ((h1, t1), (h2, t2)) in pairs {
        let (a, b) = (find(h1, t1)?, find(h2, t2)?);
        let rel = if log.happened_before(a, b) {
            "happened before"
        } else if log.happened_before(b, a) {
            "happened after"
        } else {
            "is concurrent with"
        };
        lines.push(format!("{h1}: \"{t1}\" {rel} {h2}: \"{t2}\""));
    }
    Ok(lines)
}
