//! The ticket office: box offices selling the seats of one concert under a distributed lock.
//!
//! Five box offices (members of an in-process lock cluster, linked by
//! [`LocalLinks`](actix_coord::driver::LocalLinks)) serve customers who each want one to four
//! seats. Inside the critical section an office looks at the seat map, picks the lowest free
//! seats, *pauses* (a customer hesitates: the office yields to the other tasks) and then books
//! them with its fencing token. Without the lock two offices would pick the same free seats during
//! the pause and sell them twice; with it every seat is sold once. The seat map is a
//! [`FencedResource`]: a booking with a token lower than the last one accepted is refused.

use actix_coord::driver::{At, LocalLinks, StartError};
use actix_coord::mutex::{
    AcquireError, DistributedLock, Fence, FencedResource, LockAlgorithm, fence_display,
};
use actix_coord::protocol::SplitMix64;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the sale failed.
#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
    /// The lock cluster could not be started.
    #[error(transparent)]
    Setup(#[from] StartError),
    /// An office could not get the lock.
    #[error("office {office}: {source}")]
    Acquire {
        /// The office.
        office: u32,
        /// Why.
        source: AcquireError,
    },
    /// A seat was sold twice (the lock failed).
    #[error("seat {seat} sold twice (offices {first} and {second})")]
    SoldTwice {
        /// The seat.
        seat: u32,
        /// The office that sold it first.
        first: u32,
        /// The office that sold it again.
        second: u32,
    },
    /// The seat map refused a stale fencing token (the lock failed).
    #[error("office {office}: {source}")]
    Stale {
        /// The office.
        office: u32,
        /// The refusal.
        source: actix_coord::mutex::FenceError,
    },
    /// A box office task ended abnormally.
    #[error("office {0} stopped")]
    Office(u32),
    /// Writing the seat map failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The sale did not end in time.
    #[error("the sale did not end in time")]
    Timeout,
}

/// What one office sold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfficeSummary {
    /// The office (its member id).
    pub office: u32,
    /// The seats it sold, in order of sale.
    pub seats: Vec<u32>,
    /// Customers served.
    pub customers: u32,
    /// The fencing tokens of its sales, in order.
    pub tokens: Vec<Fence>,
}

/// The outcome of a sale.
#[derive(Clone, Debug)]
pub struct SaleReport {
    /// The lock algorithm used.
    pub algorithm: LockAlgorithm,
    /// Per seat (index 0 is seat 1): the office that sold it.
    pub seat_map: Vec<Option<u32>>,
    /// Per office.
    pub offices: Vec<OfficeSummary>,
    /// How long the sale took.
    pub elapsed: Duration,
}

impl SaleReport {
    /// Seats sold.
    pub fn sold(&self) -> usize {
        self.seat_map.iter().flatten().count()
    }

    /// One line per office.
    pub fn summary(&self) -> Vec<String> {
        self.offices
            .iter()
            .map(|o| {
                format!(
                    "office {}: {:>3} seats to {:>2} customers, fencing tokens {}..{}",
                    o.office,
                    o.seats.len(),
                    o.customers,
                    fence_display(o.tokens.first().copied().unwrap_or(0)),
                    fence_display(o.tokens.last().copied().unwrap_or(0))
                )
            })
            .collect()
    }
}

/// The seat map, guarded by fencing tokens.
type Hall = Arc<Mutex<FencedResource<Vec<Option<u32>>>>>;

/// Sells `seats` seats through `offices` box offices under a lock running `algorithm`. Call
/// inside an actix system.
///
/// # Errors
/// [`TicketsError`] if the lock cannot be set up or fails (a seat sold twice, a stale token).
pub async fn sell(
    algorithm: LockAlgorithm,
    offices: u32,
    seats: u32,
) -> Result<SaleReport, TicketsError> {
    let started = Instant::now();
    let links = LocalLinks::new();
    let members: Vec<u32> = (1..=offices).collect();
    let hall: Hall = Arc::new(Mutex::new(FencedResource::new(vec![None; seats as usize])));
    let mut tasks = Vec::new();
    let mut locks = Vec::new();
    for &office in &members {
        let lock =
            DistributedLock::start(At::Local(&links, office), "concert", &members, algorithm)?;
        locks.push(lock.clone());
        tasks.push((
            office,
            actix_rt::spawn(box_office(office, lock, hall.clone())),
        ));
    }
    let mut report = SaleReport {
        algorithm,
        seat_map: Vec::new(),
        offices: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for (office, task) in tasks {
        let summary = task.await.map_err(|_| TicketsError::Office(office))??;
        report.offices.push(summary);
    }
    for l in &locks {
        l.stop();
    }
    report.seat_map = hall.lock().unwrap_or_else(|e| e.into_inner()).get().clone();
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn box_office(
    office: u32,
    lock: DistributedLock,
    hall: Hall,
) -> Result<OfficeSummary, TicketsError> {
    let mut rng = SplitMix64::new(u64::from(office));
    let mut me = OfficeSummary {
        office,
        ..OfficeSummary::default()
    };
    loop {
        let wants = 1 + (rng.next_u64() % 4) as usize;
        let guard = lock
            .acquire()
            .await
            .map_err(|source| TicketsError::Acquire { office, source })?;
        let token = guard.fencing_token();
        // Look at the map.
        let picked: Vec<usize> = {
            let h = hall.lock().unwrap_or_else(|e| e.into_inner());
            h.get()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_none())
                .map(|(i, _)| i)
                .take(wants)
                .collect()
        };
        if picked.is_empty() {
            return Ok(me); // sold out; the guard releases on drop
        }
        // The customer hesitates: other tasks run meanwhile.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        // Book, with the fencing token.
        {
            let mut h = hall.lock().unwrap_or_else(|e| e.into_inner());
            let booked = h
                .write(token, |map| {
                    for &i in &picked {
                        if let Some(first) = map[i] {
                            return Err(TicketsError::SoldTwice {
                                seat: i as u32 + 1,
                                first,
                                second: office,
                            });
                        }
                        map[i] = Some(office);
                    }
                    Ok(())
                })
                .map_err(|source| TicketsError::Stale { office, source })?;
            booked?;
        }
        me.seats.extend(picked.iter().map(|&i| i as u32 + 1));
        me.customers += 1;
        me.tokens.push(token);
        drop(guard);
    }
}

/// The tour's chapter on the lock: five box offices sell 100 seats under a Ricart–Agrawala
/// lock; writes the seat map to `out_dir/tickets.txt` and returns a few lines to print.
///
/// # Errors
/// As [`sell`], or when the seat map cannot be written, or when the sale takes over 10 s.
pub async fn tour_demo(out_dir: &Path) -> Result<String, TicketsError> {
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        sell(LockAlgorithm::RicartAgrawala, 5, 100),
    )
    .await
    .map_err(|_| TicketsError::Timeout)??;
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("tickets.txt");
    let mut map = String::new();
    for (i, s) in report.seat_map.iter().enumerate() {
        let _ = writeln!(map, "seat {:>3}: office {}", i + 1, s.unwrap_or(0));
    }
    std::fs::write(&path, map)?;
    let mut out = format!(
        "5 box offices sell 100 seats under one {} lock: {} sold, none twice, in {:.0} ms\n",
        report.algorithm,
        report.sold(),
        report.elapsed.as_secs_f64() * 1e3
    );
    for l in report.summary() {
        let _ = writeln!(out, "  {l}");
    }
    let _ = write!(out, "  seat map: {}", path.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn every_seat_is_sold_once_with_each_algorithm() {
        for a in LockAlgorithm::ALL {
            let r = tokio::time::timeout(Duration::from_secs(20), sell(a, 5, 100))
                .await
                .expect("the sale ends")
                .unwrap();
            assert_eq!(r.sold(), 100, "{a}");
            let mut all: Vec<u32> = r.offices.iter().flat_map(|o| o.seats.clone()).collect();
            all.sort_unstable();
            assert_eq!(all, (1..=100).collect::<Vec<_>>(), "{a}");
            let mut tokens: Vec<Fence> = r.offices.iter().flat_map(|o| o.tokens.clone()).collect();
            let n = tokens.len();
            tokens.sort_unstable();
            tokens.dedup();
            assert_eq!(tokens.len(), n, "{a}: a token used twice");
        }
    }

    #[actix_rt::test]
    async fn tour_demo_is_short() {
        let dir = std::env::temp_dir().join(format!("tickets-tour-{}", std::process::id()));
        let t = Instant::now();
        let text = tour_demo(&dir).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(text.contains("100 sold, none twice"), "{text}");
        assert_eq!(text.lines().count(), 7, "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
