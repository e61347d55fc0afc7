//! An actor written for plain actix: it relays messages along a chain and asks a question.
use actix::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Forward along the chain `hops` more times.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward {
    pub hops: u32,
}

/// A question; the answer is 7.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct Ask;

/// Ask `next`, then tell `other` the answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick;

/// A note carrying an answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Note(pub u32);

pub struct Relay {
    pub next: Option<Addr<Relay>>,
    pub other: Option<Addr<Relay>>,
    pub done: Arc<AtomicUsize>,
}

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<Forward> for Relay {
    type Result = ();
    fn handle(&mut self, m: Forward, _ctx: &mut Self::Context) {
        match &self.next {
            Some(next) if m.hops > 0 => next.do_send(Forward { hops: m.hops - 1 }),
            _ => {
                self.done.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

impl Handler<Ask> for Relay {
    type Result = u32;
    fn handle(&mut self, _: Ask, _ctx: &mut Self::Context) -> u32 {
        7
    }
}

impl Handler<Kick> for Relay {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Kick, _ctx: &mut Self::Context) -> Self::Result {
        let ask = self.next.as_ref().expect("a next actor").send(Ask);
        Box::pin(ask.into_actor(self).map(|answer, act, _ctx| {
            if let Some(other) = &act.other {
                other.do_send(Note(answer.unwrap_or(0)));
            }
        }))
    }
}

impl Handler<Note> for Relay {
    type Result = ();
    fn handle(&mut self, m: Note, _ctx: &mut Self::Context) {
        assert_eq!(m.0, 7);
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn start(
    next: Option<Addr<Relay>>,
    other: Option<Addr<Relay>>,
    done: Arc<AtomicUsize>,
) -> Addr<Relay> {
    Relay { next, other, done }.start()
}
