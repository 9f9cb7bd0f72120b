//! Per-resource exponential backoff with jitter for the retryable cloud error
//! classes (Transient, Throttled, Busy).
//!
//! The engine proposes a requeue delay for each failed pass (the class's
//! `ErrorClass::retry_after`, or the poll interval while an operation is
//! unconfirmed). That delay is the floor: consecutive failures of the same
//! thing double it, up to [`CAP`], and a random jitter of up to the same
//! amount again is added so that resources failing together (a throttled
//! account, a cloud outage) spread their retries instead of coming back in
//! lockstep.
//!
//! # What one streak is
//!
//! A pass makes several cloud calls (observe, the operation's status, the
//! scale call), so with independent faults on each call nearly every pass has
//! *some* failure, and a streak of "passes with an error" climbs to the cap
//! even though every call keeps getting through most of the time. The streak
//! therefore counts consecutive passes that failed on **the same call**
//! ([`CloudError::action`](clusterscale_core::cloud::CloudError::action), e.g.
//! `DescribeInstances` or `ScaleOutInstance`) with the same class and floor,
//! for the same generation of the resource ([`Failure`]). Anything else starts
//! a new streak at the floor:
//!
//! - a failure on another call: when that call comes later in the pass, the
//!   one that failed before has just succeeded (the pass got past it); when it
//!   comes earlier, the call that failed before was not even tried again;
//! - another class or floor: the cloud says something else now;
//! - a new generation: a spec change is a new request, and its first failed
//!   pass is retried at the floor rather than at the old streak's cap (which
//!   could leave the change waiting up to twice the cap);
//! - a pass without a retryable error ([`Backoffs::reset`]).
//!
//! A call that fails pass after pass (a cloud that is down, one action
//! throttled while the reads pass) still climbs to the cap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use clusterscale_core::cloud::ErrorClass;

/// Largest delay before jitter (so at most twice this with jitter): well under
/// the default resync of 5 minutes.
pub const CAP: Duration = Duration::from_secs(150);

/// The classes that back off exponentially; the others keep their fixed,
/// already slow delays.
pub fn backs_off(class: ErrorClass) -> bool {
    class.retryable()
}

/// What a pass failed on. Consecutive failed passes of a resource grow one
/// streak only while this stays the same (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    /// The call that failed (`CloudError::action`).
    pub action: String,
    /// The engine's proposed delay: the streak's first delay, before jitter.
    pub floor: Duration,
    /// `metadata.generation` of the resource in that pass.
    pub generation: i64,
}

/// The delay after one failed pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// When to try again, jitter included.
    pub delay: Duration,
    /// Failed passes in the current streak, this one included (1 = at the floor).
    pub streak: u32,
}

struct Entry {
    failure: Failure,
    streak: u32,
    delays: ExponentialBackoff,
}

/// Backoff state of every resource that is currently failing.
pub struct Backoffs {
    cap: Duration,
    seed: Option<u64>,
    failing: Mutex<HashMap<String, Entry>>,
}

impl Default for Backoffs {
    fn default() -> Self {
        Self::new(CAP)
    }
}

impl Backoffs {
    pub fn new(cap: Duration) -> Self {
        Self {
            cap,
            seed: None,
            failing: Mutex::new(HashMap::new()),
        }
    }

    /// Deterministic jitter (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    fn builder(&self, floor: Duration) -> ExponentialBuilder {
        let b = ExponentialBuilder::default()
            .with_min_delay(floor)
            .with_factor(2.0)
            .with_max_delay(self.cap.max(floor))
            .without_max_times()
            .with_jitter();
        match self.seed {
            Some(seed) => b.with_jitter_seed(seed),
            None => b,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The delay after a pass of resource `key` that failed on `failure`:
    /// the next of the current streak when the pass before failed on the
    /// same thing, else the first of a new streak (the floor, plus jitter).
    pub fn failed(&self, key: &str, failure: Failure) -> Retry {
        let mut failing = self.lock();
        let floor = failure.floor;
        let fresh = || Entry {
            failure: failure.clone(),
            streak: 0,
            delays: self.builder(floor).build(),
        };
        let entry = failing.entry(key.to_string()).or_insert_with(fresh);
        if entry.failure != failure {
            *entry = fresh();
        }
        entry.streak = entry.streak.saturating_add(1);
        let delay = entry
            .delays
            .next()
            .unwrap_or(self.cap.max(floor))
            .max(floor);
        Retry {
            delay,
            streak: entry.streak,
        }
    }

    /// The resource's pass ended without a retryable error: start over next time.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Resources currently backing off.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn failure(action: &str, class: ErrorClass, floor: u64, generation: i64) -> Failure {
        Failure {
            class,
            action: action.into(),
            floor: S(floor),
            generation,
        }
    }

    /// Each delay is within [base, 2*base) where base = min(floor * 2^n, cap).
    fn assert_in_band(d: Duration, base: Duration) {
        assert!(
            d >= base && d < base * 2,
            "{d:?} not in [{base:?}, {:?})",
            base * 2
        );
    }

    const DESCRIBE: &str = "DescribeInstances";
    const NODES: &str = "DescribeClusterNodes";
    const SCALE: &str = "ScaleOutInstance";

    enum Step {
        /// A pass failed on (action, class, floor, generation); the expected
        /// delay before jitter and streak length.
        Fail(&'static str, ErrorClass, u64, i64, u64, u32),
        /// A pass without a retryable error.
        Clean,
    }
    use ErrorClass::{Busy, Throttled, Transient};
    use Step::{Clean, Fail};

    #[test]
    fn a_streak_grows_only_while_the_same_thing_fails() {
        let table: &[(&str, &[Step])] = &[
            (
                "the same call failing again and again climbs to the cap and stays",
                &[
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Fail(DESCRIBE, Transient, 10, 1, 20, 2),
                    Fail(DESCRIBE, Transient, 10, 1, 40, 3),
                    Fail(DESCRIBE, Transient, 10, 1, 80, 4),
                    Fail(DESCRIBE, Transient, 10, 1, 150, 5),
                    Fail(DESCRIBE, Transient, 10, 1, 150, 6),
                    Fail(DESCRIBE, Transient, 10, 1, 150, 7),
                ],
            ),
            (
                // The fault run: every call fails now and then; a pass that
                // got past the call that failed before starts over.
                "a failure further on in the pass starts over at the floor",
                &[
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Fail(DESCRIBE, Transient, 10, 1, 20, 2),
                    Fail(NODES, Transient, 10, 1, 10, 1),
                    Fail(SCALE, Transient, 10, 1, 10, 1),
                    Fail(SCALE, Transient, 10, 1, 20, 2),
                    Fail(SCALE, Transient, 10, 1, 40, 3),
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Fail(NODES, Transient, 10, 1, 10, 1),
                ],
            ),
            (
                "a write throttled pass after pass backs off although the reads pass",
                &[
                    Fail(SCALE, Throttled, 5, 1, 5, 1),
                    Fail(SCALE, Throttled, 5, 1, 10, 2),
                    Fail(SCALE, Throttled, 5, 1, 20, 3),
                    Fail(SCALE, Throttled, 5, 1, 40, 4),
                ],
            ),
            (
                "a spec change starts over, and then grows again",
                &[
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Fail(DESCRIBE, Transient, 10, 1, 20, 2),
                    Fail(DESCRIBE, Transient, 10, 1, 40, 3),
                    Fail(DESCRIBE, Transient, 10, 1, 80, 4),
                    Fail(DESCRIBE, Transient, 10, 1, 150, 5),
                    Fail(DESCRIBE, Transient, 10, 2, 10, 1),
                    Fail(DESCRIBE, Transient, 10, 2, 20, 2),
                ],
            ),
            (
                "another class starts from its own floor",
                &[
                    Fail(SCALE, Throttled, 5, 1, 5, 1),
                    Fail(SCALE, Throttled, 5, 1, 10, 2),
                    Fail(SCALE, Throttled, 5, 1, 20, 3),
                    Fail(SCALE, Busy, 15, 1, 15, 1),
                    Fail(SCALE, Busy, 15, 1, 30, 2),
                ],
            ),
            (
                // An unconfirmed write proposes the poll interval, not the class's delay.
                "another floor starts over",
                &[
                    Fail(SCALE, Transient, 10, 1, 10, 1),
                    Fail(SCALE, Transient, 10, 1, 20, 2),
                    Fail(SCALE, Transient, 1, 1, 1, 1),
                    Fail(SCALE, Transient, 1, 1, 2, 2),
                ],
            ),
            (
                "a pass without a retryable error resets",
                &[
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Fail(DESCRIBE, Transient, 10, 1, 20, 2),
                    Fail(DESCRIBE, Transient, 10, 1, 40, 3),
                    Clean,
                    Fail(DESCRIBE, Transient, 10, 1, 10, 1),
                    Clean,
                ],
            ),
        ];
        for (name, steps) in table {
            let b = Backoffs::new(S(150)).with_seed(7);
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    Fail(action, class, floor, generation, base, streak) => {
                        let r = b.failed("ns/a", failure(action, class, floor, generation));
                        assert!(
                            r.delay >= S(base) && r.delay < S(base) * 2 && r.streak == streak,
                            "{name}, pass {i}: {r:?}, want [{base}s, {}s) at streak {streak}",
                            base * 2
                        );
                    }
                    Clean => b.reset("ns/a"),
                }
            }
            assert_eq!(b.is_empty(), matches!(steps.last(), Some(Clean)), "{name}");
        }
    }

    #[test]
    fn every_retryable_class_keeps_its_floor() {
        for class in [Throttled, Busy, Transient] {
            let b = Backoffs::default();
            let floor = class.retry_after();
            for i in 0..20 {
                // The same call, and calls that alternate.
                let action = if i % 3 == 0 { SCALE } else { DESCRIBE };
                let f = Failure {
                    class,
                    action: action.into(),
                    floor,
                    generation: 1,
                };
                assert!(b.failed("ns/a", f).delay >= floor);
            }
        }
    }

    #[test]
    fn a_floor_above_the_cap_wins() {
        let b = Backoffs::new(S(5)).with_seed(1);
        for _ in 0..5 {
            let r = b.failed("ns/a", failure(SCALE, Busy, 15, 1));
            assert_in_band(r.delay, S(15));
        }
    }

    #[test]
    fn resources_are_independent() {
        let b = Backoffs::new(S(150)).with_seed(3);
        let f = || failure(DESCRIBE, Throttled, 5, 1);
        for _ in 0..4 {
            b.failed("ns/a", f());
        }
        // Another resource, failing on the same thing, starts at its own floor
        // and does not break the first one's streak.
        assert_in_band(b.failed("ns/b", f()).delay, S(5));
        assert_in_band(b.failed("ns/a", f()).delay, S(80));
        b.reset("ns/a");
        assert_in_band(b.failed("ns/b", f()).delay, S(10));
        assert_in_band(b.failed("ns/a", f()).delay, S(5));
        b.reset("ns/a");
        b.reset("ns/b");
        assert!(b.is_empty());
    }

    #[test]
    fn jitter_stays_in_bounds_and_actually_spreads() {
        // Unseeded, as in production.
        let mut first = Vec::new();
        for i in 0..200 {
            let b = Backoffs::default();
            let d = b
                .failed(&format!("r{i}"), failure(DESCRIBE, Transient, 10, 1))
                .delay;
            assert_in_band(d, S(10));
            first.push(d);
        }
        first.sort();
        first.dedup();
        assert!(
            first.len() > 100,
            "jitter too coarse: {} distinct",
            first.len()
        );
        // At the cap: never more than twice the cap.
        let b = Backoffs::default();
        for _ in 0..50 {
            let d = b.failed("x", failure(DESCRIBE, Transient, 10, 1)).delay;
            assert!(d < CAP * 2);
        }
    }

    #[test]
    fn only_transient_throttled_and_busy_back_off() {
        assert!(backs_off(Transient));
        assert!(backs_off(Throttled));
        assert!(backs_off(Busy));
        for c in [
            ErrorClass::Capacity,
            ErrorClass::Quota,
            ErrorClass::Auth,
            ErrorClass::Invalid,
            ErrorClass::NotFound,
            ErrorClass::Billing,
        ] {
            assert!(!backs_off(c));
        }
    }
}
