//! Unit tests of the Berkeley machine.

use super::*;
use crate::protocol::{Effect, Effects};

/// One effect of the machine.
type Fx = Effect<BerkeleyMsg, Timer, BerkeleyEvent>;

/// The machine's inputs with `now` in ns, each returning its effects.
trait Drive {
    fn lead(&mut self, now: u64, master: Option<NodeId>) -> Vec<Fx>;
    fn recv(&mut self, now: u64, from: NodeId, msg: BerkeleyMsg) -> Vec<Fx>;
    fn fire(&mut self, now: u64, timer: Timer) -> Vec<Fx>;
    fn down(&mut self, now: u64, peer: NodeId) -> Vec<Fx>;
    fn up(&mut self, now: u64, peer: NodeId) -> Vec<Fx>;
    fn refused(&mut self, now: u64, delta_ns: i64) -> Vec<Fx>;
}

fn run(f: impl FnOnce(Duration, &mut Out)) -> Vec<Fx> {
    let mut out = Effects::new();
    f(Duration::ZERO, &mut out);
    out.into_iter().collect()
}

impl Drive for Berkeley {
    fn lead(&mut self, now: u64, master: Option<NodeId>) -> Vec<Fx> {
        let cmd = BerkeleyCommand::SetMaster(master);
        run(|_, out| {
            self.on_command(Duration::from_nanos(now), cmd, out)
                .unwrap()
        })
    }
    fn recv(&mut self, now: u64, from: NodeId, msg: BerkeleyMsg) -> Vec<Fx> {
        run(|_, out| self.on_message(Duration::from_nanos(now), from, msg, out))
    }
    fn fire(&mut self, now: u64, timer: Timer) -> Vec<Fx> {
        run(|_, out| self.on_timer(Duration::from_nanos(now), timer, out))
    }
    fn down(&mut self, now: u64, peer: NodeId) -> Vec<Fx> {
        run(|_, out| self.on_peer_down(Duration::from_nanos(now), peer, out))
    }
    fn up(&mut self, now: u64, peer: NodeId) -> Vec<Fx> {
        run(|_, out| self.on_peer_up(Duration::from_nanos(now), peer, out))
    }
    fn refused(&mut self, now: u64, delta_ns: i64) -> Vec<Fx> {
        let cmd = BerkeleyCommand::StepRefused { delta_ns };
        run(|_, out| {
            self.on_command(Duration::from_nanos(now), cmd, out)
                .unwrap()
        })
    }
}

fn step(delta_ns: i64) -> Fx {
    Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::Step { delta_ns }))
}

fn slew(delta_ns: i64, rate_ppm: f64) -> Fx {
    Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::Slew {
        delta_ns,
        rate_ppm,
    }))
}

fn freq(ppm: f64) -> Fx {
    Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::SetFrequency { ppm }))
}

/// Whether `fx` corrects the clock's time (a step or a slew).
fn corrects(fx: &Fx) -> bool {
    matches!(
        fx,
        Effect::Emit(BerkeleyEvent::Adjust(
            ClockAdjust::Step { .. } | ClockAdjust::Slew { .. }
        ))
    )
}

const MS: i64 = 1_000_000;

fn est(node: NodeId, offset_ns: i64) -> Estimate {
    Estimate {
        node,
        offset_ns,
        delay_ns: 200_000,
        noisy: false,
    }
}

fn sends(actions: &[Fx]) -> Vec<(NodeId, BerkeleyMsg)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Effect::Send { to, msg } => Some((*to, *msg)),
            _ => None,
        })
        .collect()
}

#[test]
fn default_config_is_valid_and_bad_ones_are_refused() {
    BerkeleyConfig::default().validate().unwrap();
    let c = BerkeleyConfig::default();
    assert_eq!(
        BerkeleyConfig {
            interval_ns: 0,
            ..c
        }
        .validate(),
        Err(ConfigError::ZeroDuration("interval_ns"))
    );
    assert_eq!(
        BerkeleyConfig {
            probes_per_round: 9,
            ..c
        }
        .validate(),
        Err(ConfigError::OutOfRange {
            what: "probes_per_round",
            value: "9".into(),
            range: "1..=8"
        })
    );
    assert!(matches!(
        BerkeleyConfig {
            collect_timeout_ns: c.interval_ns,
            ..c
        }
        .validate(),
        Err(ConfigError::Inconsistent(_))
    ));
    assert!(matches!(
        BerkeleyConfig {
            min_band_ns: 10,
            max_band_ns: 5,
            ..c
        }
        .validate(),
        Err(ConfigError::Inconsistent(_))
    ));
    assert!(matches!(
        BerkeleyConfig {
            slew_rate_ppm: f64::NAN,
            ..c
        }
        .validate(),
        Err(ConfigError::OutOfRange {
            what: "slew_rate_ppm",
            ..
        })
    ));
    assert!(
        Berkeley::new(
            BerkeleyConfig {
                min_freq_gain: 0.0,
                ..c
            },
            1,
            []
        )
        .is_err()
    );
}

#[test]
fn average_includes_everyone_when_all_agree() {
    let c = BerkeleyConfig::default();
    let e = [
        est(0, 0),
        est(1, 30 * MS),
        est(2, -60 * MS),
        est(3, 90 * MS),
    ];
    let a = fault_tolerant_average(&e, 4, &c).unwrap();
    assert_eq!(a.trusted, vec![0, 1, 2, 3]);
    assert!(a.excluded.is_empty());
    assert_eq!(a.average_ns, 15 * MS);
    assert_eq!(a.spread_ns, 150 * MS as u64);
}

#[test]
fn falsetickers_far_from_the_median_are_excluded() {
    let c = BerkeleyConfig::default();
    let e = [
        est(0, 0),
        est(1, 10_000),
        est(2, -20_000),
        est(3, 1_000 * MS), // +1 s
        est(4, 5_000),
        est(5, -160 * MS), // drifted 160 ms in one round
    ];
    let a = fault_tolerant_average(&e, 6, &c).unwrap();
    assert_eq!(a.excluded, vec![3, 5]);
    assert_eq!(a.average_ns, (10_000 - 20_000 + 5_000) / 4);
    assert_eq!(a.band_ns, c.min_band_ns);
}

#[test]
fn no_majority_means_no_agreement() {
    let c = BerkeleyConfig::default();
    // Three good clocks, five scattered bad ones: the band around the median holds 3 < 5.
    let e = [
        est(0, 0),
        est(1, 1_000),
        est(2, -1_000),
        est(3, 1_000 * MS),
        est(4, 2_000 * MS),
        est(5, 3_000 * MS),
        est(6, -1_000 * MS),
        est(7, -2_000 * MS),
    ];
    assert_eq!(
        fault_tolerant_average(&e, 8, &c),
        Err(NoMajority {
            agreeing: 3,
            needed: 5
        })
    );
    // Missing members count against the majority too.
    assert!(fault_tolerant_average(&e[..3], 8, &c).is_err());
    assert!(fault_tolerant_average(&[], 0, &c).is_err());
}

#[test]
fn extreme_offsets_do_not_overflow() {
    let c = BerkeleyConfig::default();
    let e = [est(0, i64::MIN), est(1, i64::MAX), est(2, 0)];
    let _ = fault_tolerant_average(&e, 3, &c);
    let mut m = Berkeley::new(c, 1, [2]).unwrap();
    m.lead(0, Some(2));
    let a = m.recv(
        5,
        2,
        BerkeleyMsg::Adjust {
            round: 1,
            delta_ns: i64::MIN,
        },
    );
    assert!(a.contains(&step(i64::MIN)));
    let a = m.recv(
        u64::MAX,
        2,
        BerkeleyMsg::Adjust {
            round: 2,
            delta_ns: i64::MAX,
        },
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::Slew { .. }))
    )));
}

/// Runs one round between a master (id 9) and members whose clocks are `offsets` ahead, with
/// a symmetric 100 µs path; returns the master's actions and the members' machines.
fn one_round(offsets: &[(NodeId, i64)]) -> (Vec<Fx>, Vec<Berkeley>) {
    let c = BerkeleyConfig::default();
    let ids: Vec<NodeId> = offsets.iter().map(|o| o.0).collect();
    let mut master = Berkeley::new(c, 9, ids.clone()).unwrap();
    let mut members: Vec<Berkeley> = ids
        .iter()
        .map(|&i| Berkeley::new(c, i, [9]).unwrap())
        .collect();
    for m in &mut members {
        m.lead(0, Some(9));
    }
    let base = 1_000 * SEC;
    let mut all = Vec::new();
    let mut pending = master.lead(base, Some(9));
    let mut now = base;
    let mut member_actions = Vec::new();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending.drain(..) {
            match &a {
                Effect::Send { to, msg } if *to != 9 => {
                    let k = ids.iter().position(|i| i == to).unwrap();
                    let local = (now as i64 + 100_000 + offsets[k].1) as u64;
                    for r in members[k].recv(local, 9, *msg) {
                        if let Effect::Send { msg, .. } = r {
                            next.extend(master.recv(now + 200_000, *to, msg));
                        } else {
                            member_actions.push(r);
                        }
                    }
                }
                Effect::SetTimer {
                    timer: Timer::Probe,
                    after,
                } => {
                    now += after.as_nanos() as u64;
                    next.extend(master.fire(now, Timer::Probe));
                }
                _ => {}
            }
            all.push(a);
        }
        pending = next;
    }
    all.extend(member_actions);
    (all, members)
}

#[test]
fn master_sends_each_member_the_signed_delta_to_the_average() {
    let (actions, members) = one_round(&[(1, 40 * MS), (2, -20 * MS), (3, 0)]);
    let adjusts: Vec<_> = sends(&actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            BerkeleyMsg::Adjust { delta_ns, .. } => Some((to, delta_ns)),
            _ => None,
        })
        .collect();
    // Offsets 0 (master), 40, −20, 0 ms: average 5 ms.
    assert_eq!(adjusts, vec![(1, -35 * MS), (2, 25 * MS), (3, 5 * MS)]);
    assert!(
        actions.contains(&step(5 * MS)),
        "the master corrects itself"
    );
    let probes = sends(&actions)
        .iter()
        .filter(|(_, m)| matches!(m, BerkeleyMsg::Probe { .. }))
        .count();
    assert_eq!(probes, 3 * FILTER_LEN);
    assert!(members.iter().all(|m| m.corrections() == 1));
    assert!(actions.iter().any(|a| matches!(
        a,
        Effect::Emit(BerkeleyEvent::RoundComplete { round: 1, .. })
    )));
}

#[test]
fn first_correction_steps_later_ones_slew_and_estimate_frequency() {
    let c = BerkeleyConfig::default();
    let mut m = Berkeley::new(c, 1, [2]).unwrap();
    m.lead(0, Some(2));
    let t0 = 100 * SEC;
    let a = m.recv(
        t0,
        2,
        BerkeleyMsg::Adjust {
            round: 1,
            delta_ns: -80 * MS,
        },
    );
    assert_eq!(a[0], step(-80 * MS));
    // 16 s later the clock is 1.6 ms ahead again: it runs 100 ppm fast.
    let t1 = t0 + 16 * SEC;
    let a = m.recv(
        t1,
        2,
        BerkeleyMsg::Adjust {
            round: 2,
            delta_ns: -1_600_000,
        },
    );
    assert_eq!(a[0], freq(-100.0));
    assert_eq!(a[1], slew(-1_600_000, 500.0));
    // A stale or repeated round is ignored; so is a non-master.
    assert!(
        m.recv(
            t1,
            2,
            BerkeleyMsg::Adjust {
                round: 2,
                delta_ns: 5
            }
        )
        .is_empty()
    );
    assert!(
        m.recv(
            t1,
            3,
            BerkeleyMsg::Adjust {
                round: 3,
                delta_ns: 5
            }
        )
        .is_empty()
    );
    // A slew still under way is not mistaken for drift: 1 s later, 1.1 ms of it is left.
    let a = m.recv(
        t1 + SEC,
        2,
        BerkeleyMsg::Adjust {
            round: 3,
            delta_ns: -1_100_000,
        },
    );
    assert!(
        !a.iter().any(|a| matches!(
            a,
            Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::SetFrequency { .. }))
        )),
        "too soon to estimate"
    );
    let t3 = t1 + SEC + 16 * SEC;
    let a = m.recv(
        t3,
        2,
        BerkeleyMsg::Adjust {
            round: 4,
            delta_ns: 0,
        },
    );
    assert_eq!(a[0], freq(-100.0));
}

#[test]
fn refused_step_becomes_a_slew() {
    let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2]).unwrap();
    m.lead(0, Some(2));
    let a = m.recv(
        SEC,
        2,
        BerkeleyMsg::Adjust {
            round: 1,
            delta_ns: -100 * MS,
        },
    );
    assert_eq!(a[0], step(-100 * MS));
    let a = m.refused(SEC, -100 * MS);
    assert_eq!(a, vec![slew(-100 * MS, 500.0)]);
    // 16 s later 92 ms of the 100 ms slew are left: a delta of −92 ms means no drift.
    let a = m.recv(
        17 * SEC,
        2,
        BerkeleyMsg::Adjust {
            round: 2,
            delta_ns: -92 * MS,
        },
    );
    assert_eq!(a[0], freq(0.0));
}

/// A master with no members yet finishes its rounds without correcting itself: before, it
/// emitted `Step{0}` and used up its one step, so a later member far off could only be
/// met by slewing.
#[test]
fn a_master_with_no_members_yet_keeps_its_step() {
    let mut m = Berkeley::new(BerkeleyConfig::default(), 9, []).unwrap();
    let mut acts = m.lead(SEC, Some(9));
    for k in 1..4u64 {
        acts.extend(m.fire(k * 20 * SEC, Timer::Collect));
        acts.extend(m.fire(k * 20 * SEC + 1, Timer::Poll));
    }
    assert!(!acts.iter().any(corrects), "{acts:?}");
    assert_eq!(m.discipline.corrections, 0);
}

#[test]
fn spurious_timers_and_bad_replies_are_ignored() {
    let mut m = Berkeley::new(BerkeleyConfig::default(), 9, [1]).unwrap();
    assert!(m.fire(0, Timer::Collect).is_empty());
    let start = m.lead(SEC, Some(9));
    assert!(m.is_armed(Timer::Poll) && m.is_armed(Timer::Collect) && m.is_armed(Timer::Probe));
    assert_eq!(m.current_round(), Some(1));
    let t1 = match sends(&start)[0].1 {
        BerkeleyMsg::Probe { t1, .. } => t1,
        _ => unreachable!(),
    };
    // Wrong T1, wrong round, a reply before the request, an unknown node: all dropped.
    let bad = [
        (
            1,
            BerkeleyMsg::Reply {
                round: 1,
                seq: 0,
                t1: t1 + 1,
                t2: 0,
                t3: 0,
            },
        ),
        (
            1,
            BerkeleyMsg::Reply {
                round: 7,
                seq: 0,
                t1,
                t2: 0,
                t3: 0,
            },
        ),
        (
            1,
            BerkeleyMsg::Reply {
                round: 1,
                seq: 99,
                t1,
                t2: 0,
                t3: 0,
            },
        ),
        (
            5,
            BerkeleyMsg::Reply {
                round: 1,
                seq: 0,
                t1,
                t2: 0,
                t3: 0,
            },
        ),
    ];
    for (from, msg) in bad {
        assert!(m.recv(SEC + 10, from, msg).is_empty());
    }
    assert!(
        m.recv(
            t1 - 1,
            1,
            BerkeleyMsg::Reply {
                round: 1,
                seq: 0,
                t1,
                t2: 0,
                t3: 0
            }
        )
        .is_empty()
    );
    // The collect timer closes the round with no answer: 1 of 2 is not a majority.
    let a = m.fire(2 * SEC, Timer::Collect);
    assert!(a.contains(&Effect::Emit(BerkeleyEvent::NoMajority {
        round: 1,
        agreeing: 1,
        needed: 2
    })));
    assert!(!m.is_armed(Timer::Probe));
    assert_eq!(m.current_round(), None);
    // The member dies: the master alone is the group; a round of its own clock alone
    // corrects nothing and keeps the step for when there is someone to compare with.
    m.down(3 * SEC, 1);
    let a = m.fire(17 * SEC, Timer::Poll);
    assert!(!a.iter().any(corrects), "{a:?}");
    assert_eq!(m.discipline.corrections, 0, "the step is still there");
}

#[test]
fn delay_gate_defers_a_late_sample_at_most_twice_in_a_row() {
    let c = BerkeleyConfig::default();
    let mut path = PathStats::default();
    // Three rounds to learn the path: nothing is judged noisy before.
    for d in [230_000, 200_000, 260_000] {
        assert!(!path.judge(d, &c));
    }
    // Typical excess 30 µs, gate max(2 × 30, 20) = 60 µs above the 200 µs floor.
    assert!(!path.judge(250_000, &c));
    assert!(path.judge(400_000, &c));
    assert!(path.judge(400_000, &c));
    assert!(
        !path.judge(400_000, &c),
        "a third deferral in a row is refused"
    );
    assert!(
        path.judge(900_000, &c),
        "the count restarts after a correction"
    );
    let off = BerkeleyConfig {
        delay_gate: 0.0,
        ..c
    };
    let mut path = PathStats::default();
    for d in [200_000, 200_000, 200_000, 200_000, 900_000] {
        assert!(!path.judge(d, &off));
    }
}

#[test]
fn noisy_estimates_count_in_the_average_and_are_reported_deferred() {
    let c = BerkeleyConfig::default();
    let mut e = [est(0, 0), est(1, 10_000), est(2, 20_000), est(3, 30_000)];
    e[2].noisy = true;
    let a = fault_tolerant_average(&e, 4, &c).unwrap();
    assert_eq!(a.average_ns, 15_000);
    assert_eq!(a.deferred, vec![2]);
    assert_eq!(a.trusted, vec![0, 1, 2, 3]);
}

#[test]
fn messages_round_trip_through_serde() {
    let msgs = [
        BerkeleyMsg::Probe {
            round: 1,
            seq: 2,
            t1: 3,
        },
        BerkeleyMsg::Reply {
            round: 1,
            seq: 2,
            t1: 3,
            t2: 4,
            t3: 5,
        },
        BerkeleyMsg::Adjust {
            round: 7,
            delta_ns: -100 * MS,
        },
    ];
    for m in msgs {
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<BerkeleyMsg>(&json).unwrap(), m);
    }
    assert!(serde_json::from_str::<BerkeleyMsg>(r#"{"Adjust":{"round":"x"}}"#).is_err());
}

#[test]
fn equal_states_hash_alike() {
    use std::collections::hash_map::DefaultHasher;
    let hash = |b: &Berkeley| {
        let mut h = DefaultHasher::new();
        b.hash(&mut h);
        h.finish()
    };
    let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2]).unwrap();
    m.lead(0, Some(2));
    let before = m.clone();
    m.recv(
        SEC,
        2,
        BerkeleyMsg::Adjust {
            round: 1,
            delta_ns: -MS,
        },
    );
    m.recv(
        17 * SEC,
        2,
        BerkeleyMsg::Adjust {
            round: 2,
            delta_ns: 0,
        },
    );
    assert_ne!(m, before);
    assert_eq!(m, m.clone());
    assert_eq!(hash(&m), hash(&m.clone()));
    // 0.0 == -0.0, so they must hash alike.
    let (mut a, mut b) = (m.clone(), m);
    a.discipline.freq_ppm = 0.0;
    b.discipline.freq_ppm = -0.0;
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
}

#[test]
fn a_deposed_master_stops_polling() {
    let mut m = Berkeley::new(BerkeleyConfig::default(), 9, [1, 2]).unwrap();
    m.lead(0, Some(9));
    let a = m.lead(5, Some(2));
    assert!(a.contains(&Effect::CancelTimer(Timer::Poll)));
    assert!(!m.is_master());
    assert!(m.fire(16 * SEC, Timer::Poll).is_empty());
}

#[test]
fn a_leader_flap_does_not_reopen_old_rounds_but_a_restart_does() {
    let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2, 3]).unwrap();
    let adjust = |round| BerkeleyMsg::Adjust {
        round,
        delta_ns: -MS,
    };
    m.lead(0, Some(3));
    assert!(!m.recv(SEC, 3, adjust(4)).is_empty());
    // 3 → 2 → 3: a duplicate of round 4, or an older round, is still stale.
    m.lead(2 * SEC, Some(2));
    m.lead(3 * SEC, Some(3));
    assert!(m.recv(4 * SEC, 3, adjust(4)).is_empty());
    assert!(m.recv(4 * SEC, 3, adjust(3)).is_empty());
    assert!(!m.recv(5 * SEC, 3, adjust(5)).is_empty());
    // Node 3 goes down and comes back: its new incarnation's round 1 is heard.
    m.down(6 * SEC, 3);
    m.up(7 * SEC, 3);
    assert!(!m.recv(8 * SEC, 3, adjust(1)).is_empty());
    assert_eq!(m.corrections(), 3);
}

#[test]
fn probes_go_to_one_member_at_a_time_in_turn_and_a_leaver_is_skipped() {
    let c = BerkeleyConfig::default();
    let mut m = Berkeley::new(c, 9, [1, 2, 3]).unwrap();
    let probe_to = |a: &[Fx]| -> Vec<(NodeId, u32)> {
        sends(a)
            .into_iter()
            .filter_map(|(to, msg)| match msg {
                BerkeleyMsg::Probe { seq, .. } => Some((to, seq)),
                _ => None,
            })
            .collect()
    };
    let gap = c.probe_spacing_ns / 3;
    let mut a = m.lead(0, Some(9));
    let mut got = probe_to(&a);
    let mut now = 0;
    for _ in 0..4 {
        assert!(a.contains(&Effect::SetTimer {
            timer: Timer::Probe,
            after: Duration::from_nanos(gap)
        }));
        now += gap;
        a = m.fire(now, Timer::Probe);
        got.extend(probe_to(&a));
    }
    assert_eq!(got, [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]);
    // Node 2 leaves: the others take turns; the round needs only their probes.
    m.down(now, 2);
    let mut rest = Vec::new();
    while m.is_armed(Timer::Probe) {
        now += gap;
        rest.extend(probe_to(&m.fire(now, Timer::Probe)));
    }
    assert_eq!(&rest[..3], [(3, 1), (1, 2), (3, 2)]);
    let count = |id| got.iter().chain(&rest).filter(|(to, _)| *to == id).count();
    assert_eq!((count(1), count(3)), (FILTER_LEN, FILTER_LEN));
}

#[test]
fn frequency_is_estimated_over_a_span_of_several_corrections() {
    // Rounds every 500 ms, frequency spans of 2 s: the error measured over 4 rounds.
    let c = BerkeleyConfig {
        min_freq_interval_ns: 2 * SEC,
        ..BerkeleyConfig::default()
    };
    let mut m = Berkeley::new(c, 1, [2]).unwrap();
    m.lead(0, Some(2));
    let adjust = |round, delta_ns| BerkeleyMsg::Adjust { round, delta_ns };
    m.recv(SEC, 2, adjust(1, -80 * MS));
    // 100 ppm fast: 50 µs per 500 ms, measured with ±20 µs of noise that cancels over the span.
    let deltas = [-70_000, -30_000, -60_000, -40_000];
    let mut freq = Vec::new();
    for (k, d) in deltas.iter().enumerate() {
        let now = SEC + (k as u64 + 1) * SEC / 2;
        let a = m.recv(now, 2, adjust(k as u64 + 2, *d));
        freq.extend(a.iter().filter_map(|a| match a {
            Effect::Emit(BerkeleyEvent::Adjust(ClockAdjust::SetFrequency { ppm })) => Some(*ppm),
            _ => None,
        }));
    }
    // One update, at the end of the span, from the sum of what each slew left undone.
    assert_eq!(freq.len(), 1, "{freq:?}");
    assert!((freq[0] - -100.0).abs() < 1.0, "{freq:?}");
}
