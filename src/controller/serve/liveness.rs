//! The watchdog behind `/livez`: the last resort when the leader stopped
//! making progress and nothing else brought it back.
//!
//! The bounded requests and the watcher's idle timeout
//! (`controller::client`) should reconnect a half-open connection within a
//! few minutes. If the leader is stuck all the same, a restart is the way out:
//! Kubernetes restarts the container on a failing liveness probe, and the
//! Lease passes on. `/livez` fails ([`decide`]) when all of these hold:
//!
//! * this replica leads (a follower reconciles nothing by design, so it is
//!   never stalled);
//! * there is work it is not getting done: the last reconcile passes failed
//!   (a streak of Kubernetes-side failures, conflicts included; cloud errors
//!   are recorded in status and count as completed passes), or resources
//!   wait for the first reconcile of their generation (the backlog);
//! * the ScaledCluster watch delivered no event for longer than the bound;
//! * and no reconcile pass completed for longer than the bound.
//!
//! Both silences count from when this replica became the leader at the
//! earliest. A quiet, healthy fleet has no failing passes and no backlog, so
//! a watch without events (the watcher's bookmarks are not events) never
//! fails the probe on its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Default bound: twice the watcher's idle timeout (2 x 295 s) plus a little,
/// so that the watch has had two chances to reconnect on its own first.
pub const DEFAULT_STALL: Duration = Duration::from_secs(600);

/// What the watchdog decides on: a snapshot of [`Liveness`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Since when this replica leads; `None`: it does not.
    pub leading_since: Option<Instant>,
    /// The last event of a ScaledCluster watch stream.
    pub last_watch_event: Option<Instant>,
    /// The last reconcile pass that completed without error.
    pub last_reconcile: Option<Instant>,
    /// Reconcile passes that failed in a row (0 after a completed one).
    pub failing_streak: u32,
    /// Resources waiting for the first reconcile of their generation.
    pub waiting: usize,
}

/// The watchdog's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Live,
    /// Stuck: no watch event for `watch_silent`, no completed reconcile for
    /// `reconcile_silent`, while passes fail or resources wait.
    Stalled {
        watch_silent: Duration,
        reconcile_silent: Duration,
        failing_streak: u32,
        waiting: usize,
    },
}

/// The watchdog's decision (see the module doc); `bound`: how long the watch
/// and the reconciles may both be silent while there is work.
pub fn decide(s: &Snapshot, now: Instant, bound: Duration) -> Verdict {
    let Some(since) = s.leading_since else {
        return Verdict::Live;
    };
    if s.failing_streak == 0 && s.waiting == 0 {
        return Verdict::Live;
    }
    let silent = |last: Option<Instant>| {
        let from = last.map_or(since, |t| t.max(since));
        now.saturating_duration_since(from)
    };
    let (watch_silent, reconcile_silent) = (silent(s.last_watch_event), silent(s.last_reconcile));
    if watch_silent > bound && reconcile_silent > bound {
        Verdict::Stalled {
            watch_silent,
            reconcile_silent,
            failing_streak: s.failing_streak,
            waiting: s.waiting,
        }
    } else {
        Verdict::Live
    }
}

#[derive(Default)]
struct Times {
    leading_since: Option<Instant>,
    last_watch_event: Option<Instant>,
    last_reconcile: Option<Instant>,
    failing_streak: u32,
}

/// What the watch streams, the reconciler and leader election report to the
/// watchdog. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Liveness {
    times: Arc<Mutex<Times>>,
    waiting: Arc<AtomicUsize>,
    bound: Duration,
    logged: Arc<AtomicBool>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new(DEFAULT_STALL)
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Liveness {
    pub fn new(bound: Duration) -> Self {
        Self {
            times: Arc::default(),
            waiting: Arc::default(),
            bound,
            logged: Arc::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Times) -> T) -> T {
        let mut times = match self.times.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut times)
    }

    /// This replica leads (from `at`) or not.
    pub fn set_leading(&self, leading: bool, at: Instant) {
        self.with(|t| t.leading_since = leading.then_some(at));
    }

    /// A ScaledCluster watch stream delivered an event.
    pub fn watch_event(&self, at: Instant) {
        self.with(|t| t.last_watch_event = Some(at));
    }

    /// A reconcile pass completed (`ok`) or failed.
    pub fn reconciled(&self, ok: bool, at: Instant) {
        self.with(|t| {
            if ok {
                t.last_reconcile = Some(at);
                t.failing_streak = 0;
            } else {
                t.failing_streak = t.failing_streak.saturating_add(1);
            }
        });
    }

    /// The backlog's size (`watch::backlog::Backlog::waiting`).
    pub fn set_waiting(&self, waiting: usize) {
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let waiting = self.waiting.load(Ordering::Relaxed);
        self.with(|t| Snapshot {
            leading_since: t.leading_since,
            last_watch_event: t.last_watch_event,
            last_reconcile: t.last_reconcile,
            failing_streak: t.failing_streak,
            waiting,
        })
    }

    /// The verdict now.
    pub fn verdict(&self) -> Verdict {
        decide(&self.snapshot(), Instant::now(), self.bound)
    }
}

/// `/livez` on `liveness`: 200 while [`Liveness::verdict`] is live, else 503
/// with the reason (and one error log line per stall).
pub fn router(liveness: Liveness) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .with_state(liveness)
}

async fn livez(State(liveness): State<Liveness>) -> Response {
    match liveness.verdict() {
        Verdict::Live => {
            liveness.logged.store(false, Ordering::Relaxed);
            (StatusCode::OK, "ok\n").into_response()
        }
        Verdict::Stalled {
            watch_silent,
            reconcile_silent,
            failing_streak,
            waiting,
        } => {
            let message = format!(
                "stalled: leading, {failing_streak} reconcile passes failed in a row and {waiting} resources wait, but no watch event for {}s and no completed reconcile for {}s (bound {}s); restart me so that the Lease passes on\n",
                watch_silent.as_secs(),
                reconcile_silent.as_secs(),
                liveness.bound.as_secs()
            );
            if !liveness.logged.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    failing_streak,
                    waiting,
                    watch_silent_s = watch_silent.as_secs(),
                    reconcile_silent_s = reconcile_silent.as_secs(),
                    "failing /livez: the leader makes no progress"
                );
            }
            (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(600);

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_watchdog_fails_only_a_stuck_leader() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + s(secs);
        let leader = Snapshot {
            leading_since: Some(t0),
            last_watch_event: Some(at(10)),
            last_reconcile: Some(at(20)),
            failing_streak: 60,
            waiting: 0,
        };
        let table: Vec<(&str, Snapshot, u64, bool)> = vec![
            (
                "the bug: passes fail, all silent",
                leader.clone(),
                700,
                true,
            ),
            ("within the bound", leader.clone(), 600, false),
            (
                "a follower is never stalled",
                Snapshot {
                    leading_since: None,
                    ..leader.clone()
                },
                10_000,
                false,
            ),
            (
                "nothing to do: a quiet fleet",
                Snapshot {
                    failing_streak: 0,
                    waiting: 0,
                    ..leader.clone()
                },
                10_000,
                false,
            ),
            (
                "resources wait, nothing fails",
                Snapshot {
                    failing_streak: 0,
                    waiting: 3,
                    ..leader.clone()
                },
                700,
                true,
            ),
            (
                "the watch delivers: not stuck",
                Snapshot {
                    last_watch_event: Some(at(650)),
                    ..leader.clone()
                },
                700,
                false,
            ),
            (
                "passes complete: not stuck",
                Snapshot {
                    last_reconcile: Some(at(650)),
                    ..leader.clone()
                },
                700,
                false,
            ),
            (
                "never any event or pass: counted from the start of leading",
                Snapshot {
                    leading_since: Some(at(200)),
                    last_watch_event: None,
                    last_reconcile: None,
                    ..leader.clone()
                },
                700,
                false,
            ),
            (
                "... and past the bound from there",
                Snapshot {
                    leading_since: Some(at(200)),
                    last_watch_event: None,
                    last_reconcile: None,
                    ..leader.clone()
                },
                801,
                true,
            ),
            (
                "old silences do not count before leading",
                Snapshot {
                    leading_since: Some(at(500)),
                    ..leader.clone()
                },
                1000,
                false,
            ),
        ];
        for (name, snapshot, now, stalled) in table {
            let verdict = decide(&snapshot, at(now), BOUND);
            assert_eq!(
                matches!(verdict, Verdict::Stalled { .. }),
                stalled,
                "{name}: {verdict:?}"
            );
        }
        assert_eq!(
            decide(&leader, at(700), BOUND),
            Verdict::Stalled {
                watch_silent: s(690),
                reconcile_silent: s(680),
                failing_streak: 60,
                waiting: 0
            }
        );
    }

    #[test]
    fn a_completed_pass_ends_the_streak() {
        let l = Liveness::new(BOUND);
        let t0 = Instant::now();
        l.set_leading(true, t0);
        l.reconciled(false, t0);
        l.reconciled(false, t0);
        assert_eq!(l.snapshot().failing_streak, 2);
        l.reconciled(true, t0 + s(1));
        let snap = l.snapshot();
        assert_eq!(
            (snap.failing_streak, snap.last_reconcile),
            (0, Some(t0 + s(1)))
        );
        l.set_waiting(4);
        l.watch_event(t0 + s(2));
        l.set_leading(false, t0 + s(3));
        let snap = l.snapshot();
        assert_eq!(
            (snap.waiting, snap.last_watch_event, snap.leading_since),
            (4, Some(t0 + s(2)), None)
        );
    }

    #[tokio::test]
    async fn livez_answers_503_with_the_reason_when_stalled() {
        use axum::body::Body;
        use tower::ServiceExt;
        let l = Liveness::new(Duration::ZERO);
        let get = |app: Router| async move {
            let response = app
                .oneshot(
                    axum::http::Request::get("/livez")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("response");
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 10_000)
                .await
                .expect("body");
            (status, String::from_utf8_lossy(&bytes).into_owned())
        };
        assert_eq!(get(router(l.clone())).await.0, 200, "a follower");
        l.set_leading(true, Instant::now() - s(5));
        assert_eq!(get(router(l.clone())).await.0, 200, "nothing to do");
        l.reconciled(false, Instant::now());
        let (status, body) = get(router(l.clone())).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("1 reconcile passes failed"), "{body}");
    }
}
