//! Per-resource exponential backoff with jitter for the retryable cloud error
//! classes (Transient, Throttled, Busy).
//!
//! The engine proposes a requeue delay for each failed pass (the class's
//! `ErrorClass::retry_after`, or the poll interval while an operation is
//! unconfirmed). That delay is the floor: consecutive failures of one resource
//! double it, up to [`CAP`], and a random jitter of up to the same amount
//! again is added so that resources failing together (a throttled account, a
//! cloud outage) spread their retries instead of coming back in lockstep. The
//! first pass that ends without a retryable error resets the resource.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::cloud::ErrorClass;

/// Largest delay before jitter (so at most twice this with jitter): well under
/// the default resync of 5 minutes.
pub const CAP: Duration = Duration::from_secs(150);

/// The classes that back off exponentially; the others keep their fixed,
/// already slow delays.
pub fn backs_off(class: ErrorClass) -> bool {
    class.retryable()
}

struct Entry {
    class: ErrorClass,
    floor: Duration,
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

    /// The delay after a pass of resource `key` that failed with `class`,
    /// where the engine proposed `floor`. A change of class (or floor) starts
    /// the growth again from the new floor.
    pub fn failed(&self, key: &str, class: ErrorClass, floor: Duration) -> Duration {
        let mut failing = self.lock();
        let entry = failing.entry(key.to_string()).or_insert_with(|| Entry {
            class,
            floor,
            delays: self.builder(floor).build(),
        });
        if entry.class != class || entry.floor != floor {
            *entry = Entry {
                class,
                floor,
                delays: self.builder(floor).build(),
            };
        }
        entry
            .delays
            .next()
            .unwrap_or(self.cap.max(floor))
            .max(floor)
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

    /// Each delay is within [base, 2*base) where base = min(floor * 2^n, cap).
    fn assert_in_band(d: Duration, base: Duration) {
        assert!(
            d >= base && d < base * 2,
            "{d:?} not in [{base:?}, {:?})",
            base * 2
        );
    }

    #[test]
    fn starts_at_the_class_floor_and_doubles_up_to_the_cap() {
        let b = Backoffs::new(S(150)).with_seed(7);
        let floor = ErrorClass::Transient.retry_after();
        assert_eq!(floor, S(10));
        let bases = [10, 20, 40, 80, 150, 150, 150];
        for base in bases {
            assert_in_band(b.failed("ns/a", ErrorClass::Transient, floor), S(base));
        }
    }

    #[test]
    fn every_retryable_class_keeps_its_floor() {
        for class in [
            ErrorClass::Throttled,
            ErrorClass::Busy,
            ErrorClass::Transient,
        ] {
            let b = Backoffs::default();
            let floor = class.retry_after();
            for _ in 0..20 {
                assert!(b.failed("ns/a", class, floor) >= floor);
            }
        }
    }

    #[test]
    fn a_floor_above_the_cap_wins() {
        let b = Backoffs::new(S(5)).with_seed(1);
        for _ in 0..5 {
            assert_in_band(b.failed("ns/a", ErrorClass::Busy, S(15)), S(15));
        }
    }

    #[test]
    fn success_resets_and_resources_are_independent() {
        let b = Backoffs::new(S(150)).with_seed(3);
        for _ in 0..4 {
            b.failed("ns/a", ErrorClass::Throttled, S(5));
        }
        // Another resource starts at its own floor.
        assert_in_band(b.failed("ns/b", ErrorClass::Throttled, S(5)), S(5));
        assert_in_band(b.failed("ns/a", ErrorClass::Throttled, S(5)), S(80));
        b.reset("ns/a");
        assert_in_band(b.failed("ns/a", ErrorClass::Throttled, S(5)), S(5));
        b.reset("ns/a");
        b.reset("ns/b");
        assert!(b.is_empty());
    }

    #[test]
    fn a_new_class_starts_from_its_own_floor() {
        let b = Backoffs::new(S(150)).with_seed(5);
        for _ in 0..4 {
            b.failed("ns/a", ErrorClass::Throttled, S(5));
        }
        assert_in_band(b.failed("ns/a", ErrorClass::Busy, S(15)), S(15));
        assert_in_band(b.failed("ns/a", ErrorClass::Busy, S(15)), S(30));
    }

    #[test]
    fn jitter_stays_in_bounds_and_actually_spreads() {
        // Unseeded, as in production.
        let mut first = Vec::new();
        for i in 0..200 {
            let b = Backoffs::default();
            let d = b.failed(&format!("r{i}"), ErrorClass::Transient, S(10));
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
            assert!(b.failed("x", ErrorClass::Transient, S(10)) < CAP * 2);
        }
    }

    #[test]
    fn only_transient_throttled_and_busy_back_off() {
        assert!(backs_off(ErrorClass::Transient));
        assert!(backs_off(ErrorClass::Throttled));
        assert!(backs_off(ErrorClass::Busy));
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
