//! Ordered broadcast: a replicated bank account kept in step by total-order broadcast, and a
//! conversation kept readable by causal broadcast.
//!
//! The account has three replicas. Each replica's clerk publishes operations at once, without
//! waiting for the others: deposits and "add 10 % interest", which do not commute (deposit then
//! interest is not interest then deposit). Every replica applies the operations in the order the
//! total-order group delivers them, and since that order is the same everywhere, the three
//! balances agree to the cent.
//!
//! The conversation has three members. Ann asks a question; Bob answers it as soon as it is
//! delivered to him; Cat must see the question before the answer, whatever the network does:
//! the answer's dependency vector names the question, and Cat holds the answer back until the
//! question is delivered.
//!
//! Every publication and delivery is a `broadcast.publish` / `broadcast.deliver` event in the
//! causal log, and `causal-log check` verifies that the account's replicas delivered in one order.

use actix_coord::broadcast::{
    Broadcaster, CausalBroadcast, CausalConfig, Deliveries, Delivery, RecvError, TotalConfig,
    TotalOrderBroadcast,
};
use actix_coord::driver::{At, LocalLinks, StartError};
use actix_coord::protocol::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An operation on the account, in cents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Add this many cents.
    Deposit(i64),
    /// Add this many percent, rounded down to the cent.
    Interest(i64),
}

impl Op {
    /// The balance after this operation.
    pub fn apply(self, balance: i64) -> i64 {
        match self {
            Op::Deposit(c) => balance + c,
            Op::Interest(p) => balance + balance * p / 100,
        }
    }
}

/// Why the demonstration failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A member could not be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A member could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A member stopped or a subscriber fell behind.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// A publication could not be handed over.
    #[error(transparent)]
    Publish(#[from] actix_coord::broadcast::PublishError),
    /// Something expected did not happen in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The replicas disagree (total order broken).
    #[error("replicas disagree: {0:?}")]
    Diverged(Vec<i64>),
}

/// What the demonstration saw.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Each replica's final balance, in cents.
    pub balances: Vec<i64>,
    /// The operations in the order every replica applied them: (replica, op).
    pub applied: Vec<(u32, Op)>,
    /// The balance had the clerks taken turns (all of replica 1's operations, then 2's, then
    /// 3's): the operations do not commute, so the order matters.
    pub clerk_by_clerk: i64,
    /// The conversation as Cat delivered it: (speaker, text).
    pub conversation: Vec<(u32, String)>,
}

async fn next<T: Clone>(d: &mut Deliveries<T>) -> Result<Delivery<T>, DemoError> {
    tokio::time::timeout(Duration::from_secs(10), d.recv())
        .await
        .map_err(|_| DemoError::Timeout("a delivery"))?
        .map_err(DemoError::from)
}

/// Runs both parts and returns what they saw.
///
/// # Errors
/// [`DemoError`] when a member fails, a delivery does not come within 10 s, or the replicas
/// disagree.
pub async fn run() -> Result<DemoReport, DemoError> {
    let members = [1u32, 2, 3];
    // The account: total order.
    let links = LocalLinks::<TotalOrderBroadcast<Op>>::new();
    let mut replicas = Vec::new();
    for id in members {
        let core = TotalOrderBroadcast::new(id, members, TotalConfig::default())?;
        replicas.push(Broadcaster::start(
            At::Local(&links, id),
            "account",
            &members,
            core,
        )?);
    }
    let mut subs: Vec<_> = replicas.iter().map(|r| r.subscribe()).collect();
    let plan = [
        [Op::Deposit(10_000), Op::Interest(10), Op::Deposit(500)],
        [Op::Interest(10), Op::Deposit(2_000), Op::Interest(5)],
        [Op::Deposit(-3_000), Op::Deposit(700), Op::Interest(10)],
    ];
    // Every clerk publishes at once: the three streams interleave.
    for k in 0..3 {
        for (r, ops) in replicas.iter().zip(&plan) {
            r.try_publish(ops[k])?;
        }
    }
    let mut balances = Vec::new();
    let mut orders = Vec::new();
    for s in &mut subs {
        let mut balance = 0;
        let mut order = Vec::new();
        for _ in 0..9 {
            let d = next(s).await?;
            balance = d.payload.apply(balance);
            order.push((d.from, d.payload));
        }
        balances.push(balance);
        orders.push(order);
    }
    if balances.iter().any(|&b| b != balances[0]) || orders.iter().any(|o| o != &orders[0]) {
        return Err(DemoError::Diverged(balances));
    }
    let clerk_by_clerk = plan.iter().flatten().fold(0, |b, op| op.apply(b));

    // The conversation: causal order.
    let links = LocalLinks::<CausalBroadcast<String>>::new();
    let mut people = Vec::new();
    for id in members {
        let core = CausalBroadcast::new(id, members, CausalConfig::default())?;
        people.push(Broadcaster::start(
            At::Local(&links, id),
            "chat",
            &members,
            core,
        )?);
    }
    let mut at_bob = people[1].subscribe();
    let mut at_cat = people[2].subscribe();
    people[0]
        .publish("Ann: is the concert on Friday?".to_owned())
        .await?;
    let question = next(&mut at_bob).await?;
    if question.from == 1 {
        people[1].publish("Bob: yes, at eight.".to_owned()).await?;
    }
    let mut conversation = Vec::new();
    for _ in 0..2 {
        let d = next(&mut at_cat).await?;
        conversation.push((d.from, d.payload));
    }
    Ok(DemoReport {
        balances,
        applied: orders.swap_remove(0),
        clerk_by_clerk,
        conversation,
    })
}

/// Runs the demonstration for the tour and returns its summary lines.
///
/// # Errors
/// As [`run`].
pub async fn tour_demo() -> Result<String, DemoError> {
    let r = run().await?;
    let cents = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let order: Vec<String> = r
        .applied
        .iter()
        .map(|(from, op)| match op {
            Op::Deposit(c) => format!("n{from} {}", cents(*c)),
            Op::Interest(p) => format!("n{from} +{p}%"),
        })
        .collect();
    Ok(format!(
        "total order: 3 replicas of an account, 9 operations published at once; every replica \
         applied them as [{}] and holds {} (clerk by clerk would give {})\n\
         causal order: Cat delivered {}",
        order.join(", "),
        cents(r.balances[0]),
        cents(r.clerk_by_clerk),
        r.conversation
            .iter()
            .map(|(_, t)| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" then ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn replicas_agree_and_the_answer_follows_the_question() {
        let r = run().await.unwrap();
        assert_eq!(r.balances.len(), 3);
        assert!(r.balances.iter().all(|&b| b == r.balances[0]));
        assert_eq!(r.applied.len(), 9);
        // Each clerk's own operations keep their order.
        for id in 1..=3 {
            let mine: Vec<Op> = r
                .applied
                .iter()
                .filter(|(f, _)| *f == id)
                .map(|x| x.1)
                .collect();
            assert_eq!(mine.len(), 3);
        }
        assert_eq!(r.conversation[0].0, 1);
        assert_eq!(r.conversation[1].0, 2);
        let text = tour_demo().await.unwrap();
        assert!(text.contains("Cat delivered \"Ann:"), "{text}");
    }
}
