//! Engine tests over the simulated cloud, a manual clock and an in-memory store.

use std::sync::Arc;

use super::*;
use clusterscale_core::api::CloudKind;
use clusterscale_core::api::{NodeGroup, TaskPoolSpec};
use clusterscale_core::clock::ManualClock;
use clusterscale_core::cloud::{Capabilities, ErrorClass, Submitted};
use clusterscale_sim::{SimConfig, SimModel, SimulatedCloud};

struct Harness {
    clock: Arc<ManualClock>,
    model: Arc<SimModel>,
    cloud: SimulatedCloud,
    store: MemoryStore,
    spec: ScaledClusterSpec,
    config: EngineConfig,
    events: Vec<EngineEvent>,
}

fn spec(core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec::simulated(core, task)
}

impl Harness {
    fn new(initial: (i32, i32), want: (i32, i32)) -> Self {
        let clock = Arc::new(ManualClock::default());
        let model = Arc::new(SimModel::new(
            "sim",
            SimConfig {
                initial_core: initial.0,
                initial_task: initial.1,
                operation_time: Duration::from_secs(30),
                quota: None,
            },
            clock.clone(),
        ));
        Self {
            clock,
            cloud: SimulatedCloud::new(model.clone()),
            model,
            store: MemoryStore::default(),
            spec: spec(want.0, want.1),
            config: EngineConfig::default(),
            events: Vec::new(),
        }
    }

    async fn pass(&mut self) -> Report {
        let cloud = self.cloud.clone();
        let report = self
            .pass_on(&cloud)
            .await
            .expect("memory store never fails");
        self.events.extend(report.events.clone());
        report
    }

    /// One pass on `cloud` (the simulated one, or a wrapper of it) from the
    /// stored status.
    async fn pass_on(&mut self, cloud: &dyn Cloud) -> Result<Report, EngineError> {
        let current = self.store.status.clone();
        let target = Target {
            uid: "uid-1",
            generation: 1,
            spec: &self.spec,
        };
        reconcile(
            target,
            &current,
            cloud,
            self.clock.as_ref(),
            &mut self.store,
            &self.config,
        )
        .await
    }

    /// Reconcile, advancing the clock by each requeue, until converged or `max` passes.
    async fn run(&mut self, max: usize) -> Report {
        let mut last = self.pass().await;
        for _ in 0..max {
            if last.status.phase == Phase::Converged {
                break;
            }
            self.clock
                .advance(last.requeue_after.unwrap_or(Duration::from_secs(10)));
            last = self.pass().await;
        }
        last
    }

    fn reasons(&self) -> Vec<String> {
        self.events.iter().map(|e| e.reason.clone()).collect()
    }
}

fn condition(status: &ScaledClusterStatus, t: &str) -> (String, String) {
    let c =
        conditions::find(&status.conditions, t).unwrap_or_else(|| panic!("condition {t} missing"));
    (c.status.clone(), c.reason.clone())
}

/// "Add 2 Task nodes to none".
fn task_out_0_to_2() -> clusterscale_core::plan::Operation {
    clusterscale_core::plan::Operation {
        group: NodeGroup::Task,
        pool: None,
        direction: Direction::Out,
        count: 2,
        from_count: 0,
        to_count: 2,
    }
}

/// The write-ahead record of "add 2 Task nodes" whose call was never confirmed.
fn unsent_task_out(token: &str, started: jiff::Timestamp) -> OperationRecord {
    OperationRecord::test()
        .id(token)
        .started_at(started)
        .unaccepted()
}

#[tokio::test]
async fn converges_core_first_then_task_with_events_and_conditions() {
    let mut h = Harness::new((3, 0), (6, 4));
    let r = h.run(50).await;
    assert_eq!(r.status.phase, Phase::Converged);
    let obs = r.status.observed.clone().unwrap();
    assert_eq!((obs.core, obs.task), (6, 4));
    let writes = h.model.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        writes[0].detail.starts_with("group=core count=3"),
        "{}",
        writes[0].detail
    );
    assert!(
        writes[1].detail.starts_with("group=task count=4"),
        "{}",
        writes[1].detail
    );
    assert_eq!(
        h.reasons(),
        [
            "ScaleOutStarted",
            "ScaleOutCompleted",
            "ScaleOutStarted",
            "ScaleOutCompleted"
        ]
    );
    assert_eq!(
        condition(&r.status, READY),
        ("True".into(), "Converged".into())
    );
    assert_eq!(condition(&r.status, PROGRESSING).0, "False");
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    assert_eq!(r.status.observed_generation, Some(1));
    assert!(r.status.plan.is_empty());
    assert_eq!(
        r.status.last_operation.as_ref().unwrap().outcome,
        Some(Outcome::Succeeded)
    );
}

#[tokio::test]
async fn shrinks_task_before_core_and_honours_max_step() {
    let mut h = Harness::new((5, 4), (3, 0));
    h.spec.max_step = 2;
    let r = h.run(50).await;
    assert_eq!(r.status.phase, Phase::Converged);
    let details: Vec<_> = h.model.writes().iter().map(|w| w.detail.clone()).collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details[0].starts_with("group=task count=2"));
    assert!(details[1].starts_with("group=task count=2"));
    assert!(details[2].starts_with("group=core count=2"));
}

#[tokio::test]
async fn status_is_not_saved_when_nothing_changed() {
    let mut h = Harness::new((3, 0), (3, 0));
    h.pass().await;
    let saves = h.store.saves;
    h.clock.advance(Duration::from_secs(300));
    h.pass().await;
    h.pass().await;
    assert_eq!(h.store.saves, saves, "a converged resync writes nothing");
}

#[tokio::test]
async fn invalid_spec_is_degraded_and_never_calls_the_cloud() {
    let mut h = Harness::new((3, 0), (2, 0));
    let r = h.pass().await;
    assert_eq!(
        condition(&r.status, DEGRADED),
        ("True".into(), "InvalidSpec".into())
    );
    let err = r.status.last_error.clone().unwrap();
    assert!(err.message.contains("spec.core.count"), "{}", err.message);
    assert!(h.model.journal().is_empty(), "no cloud call at all");
    assert_eq!(r.requeue_after, None);
    // The event is emitted once, not on every pass.
    h.pass().await;
    assert_eq!(h.reasons(), ["InvalidSpec"]);
    // Fixing the spec clears Degraded.
    h.spec.core.count = 3;
    let r = h.pass().await;
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    assert_eq!(r.status.last_error, None);
}

struct FailingStore;

#[async_trait]
impl StatusStore for FailingStore {
    async fn save(&mut self, _: &ScaledClusterStatus, _: StatusWrite) -> Result<(), StoreError> {
        Err(StoreError::new("apiserver unavailable"))
    }
}

#[tokio::test]
async fn no_write_ahead_no_call() {
    let h = Harness::new((3, 0), (3, 2));
    let target = Target {
        uid: "u",
        generation: 1,
        spec: &h.spec,
    };
    let r = reconcile(
        target,
        &ScaledClusterStatus::default(),
        &h.cloud,
        h.clock.as_ref(),
        &mut FailingStore,
        &h.config,
    )
    .await;
    // The error names the write that failed.
    match r {
        Err(e @ EngineError::WriteStatus { write, .. }) => {
            assert_eq!(write, StatusWrite::WriteAhead);
            assert!(!e.is_conflict());
            assert_eq!(
                e.to_string(),
                "saving the status (write-ahead): apiserver unavailable"
            );
        }
        other => panic!("the write-ahead failed, not {other:?}"),
    }
    assert!(
        h.model.writes().is_empty(),
        "the cloud was called without a saved write-ahead record"
    );
}

#[tokio::test]
async fn lost_answer_is_resent_with_the_same_token_and_applied_once() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.model.with_faults(|f| f.lose_responses = 1);
    let r = h.pass().await;
    let pending = r
        .status
        .pending_operation
        .clone()
        .expect("kept pending after an ambiguous error");
    assert!(!pending.accepted);
    assert_eq!(
        r.error.as_ref().map(|e| e.class),
        Some(ErrorClass::Transient)
    );
    // The cluster is busy with the (applied) operation: we wait, and never call again.
    h.clock.advance(Duration::from_secs(10));
    let r = h.pass().await;
    assert_eq!(
        r.status.pending_operation.as_ref().map(|p| p.id.clone()),
        Some(pending.id.clone())
    );
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1);
    assert_eq!(r.status.observed.unwrap().task, 2);
}

#[tokio::test]
async fn crash_after_write_ahead_resends_same_token_once() {
    // A previous process saved the write-ahead record and died before (or while) calling.
    let mut h = Harness::new((3, 0), (3, 2));
    let token = operation_token("uid-1", 1, 1, &task_out_0_to_2());
    let started = h.clock.now();
    h.store.status = ScaledClusterStatus {
        observed_generation: Some(1),
        step: 1,
        pending_operation: Some(Box::new(unsent_task_out(&token, started))),
        ..Default::default()
    };
    // Case A: the call had reached the cloud before the crash.
    h.model.scale_out(NodeGroup::Task, 2, Some(&token)).unwrap();
    let r = h.pass().await;
    assert!(r.started.is_none(), "busy cluster: no call");
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1, "{:?}", h.model.journal());
    assert_eq!(r.status.observed.unwrap().task, 2);
}

#[tokio::test]
async fn crash_before_the_call_resends_with_the_recorded_token() {
    let mut h = Harness::new((3, 0), (3, 2));
    let token = operation_token("uid-1", 1, 1, &task_out_0_to_2());
    h.store.status = ScaledClusterStatus {
        observed_generation: Some(1),
        step: 1,
        pending_operation: Some(Box::new(unsent_task_out(&token, h.clock.now()))),
        ..Default::default()
    };
    let r = h.pass().await;
    assert_eq!(
        r.started.as_ref().map(|s| s.id.clone()),
        Some(token.clone())
    );
    assert_eq!(r.started.unwrap().attempts, 2);
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    let writes = h.model.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].detail.contains(&token));
}

#[tokio::test]
async fn busy_refusal_is_not_degraded_and_retried_later() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.model.fail_next(
        "scale_out",
        CloudError::new(
            ErrorClass::Busy,
            "scale_out",
            "ResourceInUse.InstanceInProcess",
            "instance is in a flow",
        ),
    );
    let r = h.pass().await;
    assert!(r.status.pending_operation.is_none());
    assert_eq!(
        r.status.last_operation.as_ref().unwrap().outcome,
        Some(Outcome::Failed)
    );
    let err = r.status.last_error.clone().unwrap();
    assert_eq!(
        (err.code.as_str(), err.class.as_str()),
        ("ResourceInUse.InstanceInProcess", "Busy")
    );
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    assert_eq!(r.requeue_after, Some(ErrorClass::Busy.retry_after()));
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(r.status.last_error, None);
}

#[tokio::test]
async fn quota_error_keeps_the_cloud_code_and_degrades() {
    let mut h = Harness::new((3, 0), (3, 30));
    h.model = Arc::new(SimModel::new(
        "sim",
        SimConfig {
            quota: Some(10),
            ..SimConfig::default()
        },
        h.clock.clone(),
    ));
    h.cloud = SimulatedCloud::new(h.model.clone());
    let r = h.pass().await;
    let err = r.status.last_error.clone().unwrap();
    assert_eq!(
        (err.code.as_str(), err.class.as_str()),
        ("QuotaExceeded", "Quota")
    );
    assert_eq!(
        condition(&r.status, DEGRADED),
        ("True".into(), "Quota".into())
    );
    assert!(conditions::find(&r.status.conditions, DEGRADED)
        .unwrap()
        .message
        .contains("QuotaExceeded"));
    assert_eq!(h.reasons(), ["ScaleOutFailed", "Quota"]);
}

#[tokio::test]
async fn failed_operation_is_recorded_and_blocks() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.model.with_faults(|f| f.fail_operations = 1);
    h.pass().await;
    h.clock.advance(Duration::from_secs(31));
    let r = h.pass().await;
    assert_eq!(
        r.status.last_operation.as_ref().unwrap().outcome,
        Some(Outcome::Failed)
    );
    assert_eq!(r.status.phase, Phase::Blocked);
    assert!(
        h.reasons().contains(&"ScaleOutFailed".to_string()),
        "{:?}",
        h.reasons()
    );
    assert_eq!(
        condition(&r.status, DEGRADED),
        ("True".into(), "ClusterNotRunning".into())
    );
    // Blocked is reported once, not on every resync.
    h.clock.advance(Duration::from_secs(300));
    h.pass().await;
    assert_eq!(
        h.reasons()
            .iter()
            .filter(|r| *r == "ClusterNotRunning")
            .count(),
        1
    );
}

#[tokio::test]
async fn paused_reports_the_plan_but_never_acts() {
    let mut h = Harness::new((3, 0), (5, 2));
    h.spec.paused = true;
    let r = h.pass().await;
    assert_eq!(r.status.phase, Phase::Paused);
    assert_eq!(r.status.plan.len(), 2);
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    assert!(h.model.writes().is_empty());
}

#[tokio::test]
async fn cooldown_requeues_for_the_remaining_time() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.spec.cooldown_seconds = 120;
    h.spec.max_step = 1;
    h.pass().await;
    h.clock.advance(Duration::from_secs(30));
    let r = h.pass().await; // completes the first operation
    assert_eq!(r.status.phase, Phase::Waiting);
    assert_eq!(r.requeue_after, Some(Duration::from_secs(121)));
}

#[test]
fn tokens_are_deterministic_and_distinct() {
    let op = task_out_0_to_2();
    assert_eq!(
        operation_token("u", 1, 1, &op),
        operation_token("u", 1, 1, &op)
    );
    assert_ne!(
        operation_token("u", 1, 1, &op),
        operation_token("u", 1, 2, &op)
    );
    assert_ne!(
        operation_token("u", 1, 1, &op),
        operation_token("u", 2, 1, &op)
    );
    // The same uid, generation and step (two CLI runs without a uid) but a
    // different operation: a different token, or the cloud would drop it.
    let other = clusterscale_core::plan::Operation {
        from_count: 2,
        to_count: 4,
        ..op.clone()
    };
    assert_ne!(
        operation_token("u", 1, 1, &op),
        operation_token("u", 1, 1, &other)
    );
    assert!(operation_token("u", 1, 1, &op).len() <= 64);
}

#[tokio::test]
async fn without_idempotency_tokens_an_unconfirmed_call_is_never_resent() {
    // A cloud without idempotency tokens (Huawei MRS): after a crash between the
    // write-ahead record and the call, the engine only observes; once the settle
    // time has passed with no effect, the operation is declared not applied and
    // planned afresh under a new token.
    let mut h = Harness::new((3, 0), (3, 2));
    h.cloud = SimulatedCloud::new(h.model.clone()).with_capabilities(
        clusterscale_core::cloud::Capabilities {
            idempotent_scale_out: false,
            ..clusterscale_core::cloud::Capabilities::ALL
        },
    );
    let token = operation_token("uid-1", 1, 1, &task_out_0_to_2());
    h.store.status = ScaledClusterStatus {
        observed_generation: Some(1),
        step: 1,
        pending_operation: Some(Box::new(unsent_task_out(&token, h.clock.now()))),
        ..Default::default()
    };
    let r = h.pass().await;
    assert!(r.started.is_none(), "not re-sent");
    h.clock.advance(Duration::from_secs(30));
    let r = h.pass().await;
    assert!(r.started.is_none(), "not re-sent before the settle time");
    assert!(h.model.writes().is_empty());
    h.clock.advance(Duration::from_secs(31));
    let r = h.pass().await;
    assert_eq!(
        r.finished.as_ref().and_then(|f| f.outcome),
        Some(Outcome::NotApplied)
    );
    let started = r.started.expect("planned afresh");
    assert_ne!(started.id, token, "a new step, a new token");
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1);
}

#[tokio::test]
async fn an_unconfirmed_scale_in_is_never_resent() {
    // No cloud deduplicates scale-in calls: re-sending could remove other nodes.
    let mut h = Harness::new((3, 4), (3, 2));
    let op = clusterscale_core::plan::Operation {
        group: NodeGroup::Task,
        pool: None,
        direction: Direction::In,
        count: 2,
        from_count: 4,
        to_count: 2,
    };
    let token = operation_token("uid-1", 1, 1, &op);
    h.store.status = ScaledClusterStatus {
        observed_generation: Some(1),
        step: 1,
        pending_operation: Some(Box::new(OperationRecord {
            direction: Direction::In,
            from_count: 4,
            to_count: 2,
            ..unsent_task_out(&token, h.clock.now())
        })),
        ..Default::default()
    };
    let r = h.pass().await;
    assert!(r.started.is_none(), "not re-sent");
    h.clock.advance(Duration::from_secs(61));
    let r = h.pass().await;
    assert_eq!(
        r.finished.as_ref().and_then(|f| f.outcome),
        Some(Outcome::NotApplied)
    );
    assert!(
        r.started.is_some(),
        "planned afresh once the call is known not applied"
    );
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1);
}

#[tokio::test]
async fn a_refused_resend_keeps_the_pending_record() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.model.fail_next(
        "scale_out",
        CloudError::new(
            ErrorClass::Transient,
            "scale_out",
            "InternalError",
            "timeout",
        )
        .effect_unknown(),
    );
    let r = h.pass().await;
    let pending = r
        .status
        .pending_operation
        .clone()
        .expect("kept after an ambiguous error");
    // The re-send is refused as busy: that says nothing about the first send.
    h.model.fail_next(
        "scale_out",
        CloudError::new(
            ErrorClass::Busy,
            "scale_out",
            "ResourceInUse.InstanceInProcess",
            "instance is in a flow",
        ),
    );
    h.clock.advance(Duration::from_secs(10));
    let r = h.pass().await;
    let still = r.status.pending_operation.clone().expect("still pending");
    assert_eq!(still.id, pending.id);
    assert!(r.status.last_operation.is_none(), "no false Failed record");
    assert!(
        !h.reasons().iter().any(|e| e == "ScaleOutFailed"),
        "{:?}",
        h.reasons()
    );
    // No more re-sends; observation decides, then a fresh operation converges.
    h.clock.advance(Duration::from_secs(10));
    let r = h.pass().await;
    assert!(r.started.is_none());
    let r = h.run(30).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1);
}

fn operations_needed(from: i32, to: i32, max_step: i32) -> usize {
    let diff = (to - from).unsigned_abs() as i32;
    if diff == 0 {
        0
    } else if max_step <= 0 {
        1
    } else {
        ((diff + max_step - 1) / max_step) as usize
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Reconciling repeatedly against the simulated cloud (timed operations,
    /// busy lock, real engine) converges, with exactly the operations the
    /// difference needs, whenever the target is reachable.
    #[test]
    fn repeated_passes_converge_against_the_simulated_cloud(
        init_core in 3..40i32, init_task in 0..60i32,
        core in 3..40i32, task in 0..60i32, max_step in 0..8i32,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (status, writes) = runtime.block_on(async {
            let mut h = Harness::new((init_core, init_task), (core, task));
            h.spec.max_step = max_step;
            let r = h.run(400).await;
            (r.status, h.model.writes().len())
        });
        let observed = status.observed.clone().expect("observed");
        proptest::prop_assert_eq!(status.phase, Phase::Converged, "{:?}", status.message);
        proptest::prop_assert_eq!((observed.core, observed.task), (core, task));
        let needed = operations_needed(init_core, core, max_step) + operations_needed(init_task, task, max_step);
        proptest::prop_assert_eq!(writes, needed);
    }
}

/// A Transient error in the cloud's own envelope (effect Refused) ends the
/// operation at once: no pending record, no same-token re-send, no grace,
/// and no cooldown (nothing changed). After the class's backoff the next
/// pass observes afresh and plans a new operation with a new token.
#[tokio::test]
async fn refused_transient_is_over_at_once_and_replanned_with_a_new_token() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.spec.cooldown_seconds = 600;
    h.model.fail_next(
        "scale_out",
        CloudError::new(
            ErrorClass::Transient,
            "scale_out",
            "InternalError",
            "refused",
        ),
    );
    let r = h.pass().await;
    assert!(r.status.pending_operation.is_none(), "not held pending");
    let first = r.status.last_operation.clone().expect("recorded");
    assert!(!first.accepted);
    assert_eq!(first.outcome, Some(Outcome::Failed));
    assert_eq!(r.requeue_after, Some(ErrorClass::Transient.retry_after()));
    assert_eq!(
        r.status.phase,
        Phase::Waiting,
        "retryable: waits, not Failed"
    );
    h.clock.advance(ErrorClass::Transient.retry_after());
    let r = h.pass().await;
    let second = r
        .started
        .expect("a new operation at once, no cooldown after a refusal");
    assert_ne!(
        second.id, first.id,
        "a new token, never the refused one again"
    );
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(h.model.writes().len(), 1);
    let resends = h
        .model
        .journal()
        .iter()
        .filter(|j| j.action == "scale_out")
        .count();
    assert_eq!(resends, 2, "the refused call and the new one, nothing else");
}

/// A permanent refusal is `Failed` when the cloud refused, `Blocked` when the
/// client's own check refused before sending anything; the conditions are
/// the same (Ready False with the code, Degraded True with the class).
#[tokio::test]
async fn a_clients_own_check_blocks_and_a_clouds_refusal_fails() {
    for (blocked, phase) in [(false, Phase::Failed), (true, Phase::Blocked)] {
        let mut h = Harness::new((3, 0), (3, 2));
        let e = CloudError::new(
            ErrorClass::Invalid,
            "scale_out",
            "CloudAutoscalerConflict",
            "not sent: auto-scaling on",
        );
        h.model
            .fail_next("scale_out", if blocked { e.blocked_by_check() } else { e });
        let r = h.pass().await;
        assert_eq!(r.status.phase, phase, "blocked by check: {blocked}");
        let ready = conditions::find(&r.status.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "CloudAutoscalerConflict")
        );
        let degraded = conditions::find(&r.status.conditions, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "Invalid")
        );
    }
}

/// The same error with its effect unknown keeps the operation pending and
/// resolves it by observation (and, with a token, a same-token re-send).
#[tokio::test]
async fn unknown_effect_keeps_the_operation_pending() {
    let mut h = Harness::new((3, 0), (3, 2));
    h.model.fail_next(
        "scale_out",
        CloudError::new(ErrorClass::Transient, "scale_out", "Timeout", "timed out")
            .effect_unknown(),
    );
    let r = h.pass().await;
    let pending = r.status.pending_operation.clone().expect("pending");
    assert!(!pending.accepted);
    assert!(r.status.last_operation.is_none());
}

/// A cloud whose finished operations report partial completion, and whose
/// counts fall `short` of the target until told otherwise.
struct PartialCloud {
    inner: SimulatedCloud,
    short: std::sync::atomic::AtomicI32,
}

#[async_trait]
impl Cloud for PartialCloud {
    fn kind(&self) -> clusterscale_core::api::CloudKind {
        self.inner.kind()
    }
    fn capabilities(&self) -> clusterscale_core::cloud::Capabilities {
        self.inner.capabilities()
    }
    async fn observe_pools(
        &self,
        pools: &[clusterscale_core::api::TaskPoolSpec],
    ) -> Result<ObservedCluster, CloudError> {
        let mut o = self.inner.observe_pools(pools).await?;
        if o.state.is_running() && o.task > 0 {
            o.task -= self.short.load(std::sync::atomic::Ordering::SeqCst);
        }
        Ok(o)
    }
    async fn scale_out(
        &self,
        req: &ScaleRequest,
    ) -> Result<clusterscale_core::cloud::Submitted, CloudError> {
        self.inner.scale_out(req).await
    }
    async fn scale_in(
        &self,
        req: &ScaleRequest,
    ) -> Result<clusterscale_core::cloud::Submitted, CloudError> {
        self.inner.scale_in(req).await
    }
    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        Ok(match self.inner.operation_status(op).await? {
            OperationProgress::Succeeded => {
                OperationProgress::PartiallyCompleted("Apply For Resource: 1 of 2".into())
            }
            other => other,
        })
    }
}

/// Partially completed and short of the target: Failed, saying so; the rest
/// is planned afresh. Reached: Succeeded.
#[tokio::test]
async fn partially_completed_operation_is_decided_by_the_counts() {
    let h = Harness::new((3, 0), (3, 2));
    let cloud = PartialCloud {
        inner: SimulatedCloud::new(h.model.clone()),
        short: std::sync::atomic::AtomicI32::new(1),
    };
    let target = Target {
        uid: "uid-partial",
        generation: 1,
        spec: &h.spec,
    };
    let mut store = MemoryStore::default();
    let mut status = ScaledClusterStatus::default();
    let mut finished = None;
    for _ in 0..20 {
        let r = reconcile(
            target,
            &status,
            &cloud,
            h.clock.as_ref(),
            &mut store,
            &h.config,
        )
        .await
        .unwrap();
        status = r.status.clone();
        if let Some(f) = r.finished {
            finished = Some(f);
            break;
        }
        h.clock
            .advance(r.requeue_after.unwrap_or(Duration::from_secs(10)));
    }
    let f = finished.expect("resolved");
    assert_eq!(f.outcome, Some(Outcome::Failed), "{f:?}");
    let m = f.message.unwrap_or_default();
    assert!(
        m.contains("1 of 2") && m.contains("task is 1, not 2"),
        "{m}"
    );
    // The shortfall is made good by a new operation, which then reaches it.
    cloud.short.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut done = None;
    for _ in 0..20 {
        h.clock.advance(Duration::from_secs(10));
        let r = reconcile(
            target,
            &status,
            &cloud,
            h.clock.as_ref(),
            &mut store,
            &h.config,
        )
        .await
        .unwrap();
        status = r.status.clone();
        if let Some(f) = r.finished {
            done = Some(f);
            break;
        }
    }
    let f = done.expect("second resolved");
    assert_eq!(f.outcome, Some(Outcome::Succeeded), "{:?}", f.message);
}

/// The Events of `h` as (type, reason), from event `from` on.
fn events_since(h: &Harness, from: usize) -> Vec<(EventType, String)> {
    h.events[from..]
        .iter()
        .map(|e| (e.type_, e.reason.clone()))
        .collect()
}

fn transient(action: &str) -> CloudError {
    CloudError::new(ErrorClass::Transient, action, "InternalError", "try again")
        .with_request_id(Some("req-7".into()))
}

/// The table of README "What the conditions say", row by row: counts
/// reached, nothing pending.
#[tokio::test]
async fn conditions_table_converged_is_ready_and_quiet() {
    let mut h = Harness::new((3, 2), (3, 2));
    let r = h.pass().await;
    assert_eq!(
        condition(&r.status, READY),
        ("True".into(), "Converged".into())
    );
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    let before = h.events.len();
    h.clock.advance(Duration::from_secs(300));
    h.pass().await;
    assert_eq!(events_since(&h, before), [], "a resync says nothing");
}

/// An operation running: Ready False naming it, Degraded False, Normal at
/// start and end.
#[tokio::test]
async fn conditions_table_operation_is_normal_at_start_and_end() {
    let mut h = Harness::new((3, 0), (3, 2));
    let r = h.pass().await;
    assert_eq!(
        condition(&r.status, READY),
        ("False".into(), "OperationInProgress".into())
    );
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert!(
        h.events.iter().all(|e| e.type_ == EventType::Normal),
        "{:?}",
        h.events
    );
    assert_eq!(h.reasons(), ["ScaleOutStarted", "ScaleOutCompleted"]);
    // What each save recorded: of these, only the write-ahead record and
    // the outcome must be durable; a store may defer the acceptance and the
    // progress (the controller does).
    let durable: Vec<_> = h.store.writes.iter().filter(|w| !w.deferrable()).collect();
    assert_eq!(
        durable,
        [&StatusWrite::WriteAhead, &StatusWrite::Plan],
        "{:?}",
        h.store.writes
    );
    assert_eq!(
        h.store.writes[1],
        StatusWrite::Accepted,
        "{:?}",
        h.store.writes
    );
}

/// The acceptance's Event can be taken out of the pass that accepted the
/// call (a store that defers the acceptance holds it), and the outcome's
/// Event names the request id, so an operation told by that one Event alone
/// loses nothing.
#[tokio::test]
async fn the_acceptance_event_can_be_held_and_the_outcome_names_the_request_id() {
    let mut h = Harness::new((3, 0), (3, 2));
    let mut accepted = h.pass().await;
    let op = accepted
        .started
        .clone()
        .expect("the first pass starts the operation");
    let held = accepted.take_acceptance_events();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].reason, "ScaleOutStarted");
    assert_eq!(held[0].action, format!("ScaleOut {}", op.id));
    assert!(
        accepted
            .events
            .iter()
            .all(|e| e.reason != "ScaleOutStarted"),
        "{:?}",
        accepted.events
    );
    // A pass that started nothing has nothing to take.
    h.clock.advance(accepted.requeue_after.unwrap());
    let mut later = h.pass().await;
    assert!(later.take_acceptance_events().is_empty());
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    let done = h
        .events
        .iter()
        .find(|e| e.reason == "ScaleOutCompleted")
        .expect("a ScaleOutCompleted Event");
    let request_id = r.status.last_operation.unwrap().request_id.unwrap();
    assert!(
        done.message
            .ends_with(&format!(" (request id {request_id})")),
        "{}",
        done.message
    );
}

/// A retryable error: Ready unchanged and Degraded False for less than
/// `degraded_after` (one Normal Event per streak); past it, Degraded True
/// with the code and request id (one Warning); a pass that gets past it ends
/// the streak.
#[tokio::test]
async fn conditions_table_retryable_errors_degrade_only_when_they_persist() {
    let mut h = Harness::new((3, 2), (3, 2));
    h.config.degraded_after = Duration::from_secs(600);
    h.pass().await;
    let before = h.events.len();
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(120));
        h.model.fail_next("observe", transient("DescribeInstances"));
        let r = h.pass().await;
        assert_eq!(
            condition(&r.status, READY),
            ("True".into(), "Converged".into()),
            "Ready as it was"
        );
        assert_eq!(
            condition(&r.status, DEGRADED),
            ("False".into(), RETRYING.into())
        );
    }
    assert_eq!(
        events_since(&h, before),
        [(EventType::Normal, RETRYING.to_string())],
        "one Normal Event per streak"
    );
    // 360 s into the streak; 4 more minutes cross the 600 s.
    let before = h.events.len();
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(120));
        h.model.fail_next("observe", transient("DescribeInstances"));
        h.pass().await;
    }
    let r = h.store.status.clone();
    assert_eq!(condition(&r, DEGRADED), ("True".into(), "Transient".into()));
    assert_eq!(
        condition(&r, READY),
        ("False".into(), "InternalError".into())
    );
    let degraded = conditions::find(&r.conditions, DEGRADED).unwrap();
    assert!(
        degraded.message.contains("InternalError") && degraded.message.contains("req-7"),
        "{}",
        degraded.message
    );
    assert_eq!(
        events_since(&h, before),
        [(EventType::Warning, "Transient".to_string())],
        "one Warning when it persists"
    );
    // A pass that gets past it: the streak is over.
    h.clock.advance(Duration::from_secs(60));
    let r = h.pass().await;
    assert_eq!(condition(&r.status, READY).0, "True");
    assert_eq!(condition(&r.status, DEGRADED).0, "False");
    // The next error starts a new streak: not Degraded at once.
    h.clock.advance(Duration::from_secs(60));
    h.model.fail_next("observe", transient("DescribeInstances"));
    let r = h.pass().await;
    assert_eq!(
        condition(&r.status, DEGRADED),
        ("False".into(), RETRYING.into())
    );
}

/// A permanent error: Degraded True at once, one Warning per change.
#[tokio::test]
async fn conditions_table_permanent_errors_degrade_at_once() {
    let mut h = Harness::new((3, 2), (3, 2));
    h.pass().await;
    let before = h.events.len();
    let auth = || {
        CloudError::new(
            ErrorClass::Auth,
            "DescribeInstances",
            "AuthFailure.SignatureFailure",
            "bad signature",
        )
    };
    for _ in 0..2 {
        h.clock.advance(Duration::from_secs(60));
        h.model.fail_next("observe", auth());
        let r = h.pass().await;
        assert_eq!(
            condition(&r.status, DEGRADED),
            ("True".into(), "Auth".into())
        );
        assert_eq!(condition(&r.status, READY).0, "False");
    }
    assert_eq!(
        events_since(&h, before),
        [(EventType::Warning, "Auth".to_string())]
    );
}

/// The user's own choice (paused, dryRun, scale-in not allowed, a task
/// clamp): Ready False naming it, Degraded False, a Normal Event once.
#[tokio::test]
async fn conditions_table_users_choice_is_reported_not_degraded() {
    type Edit = fn(&mut ScaledClusterSpec);
    let cases: [(&str, (i32, i32), Edit); 5] = [
        ("Paused", (3, 4), |s| s.paused = true),
        ("DryRun", (3, 4), |s| s.dry_run = true),
        ("ScaleInDisallowed", (3, 0), |s| s.scale_in.allowed = false),
        (TASK_CLAMPED, (3, 2), |s| {
            s.task.count = 1;
            s.task.min = 2;
        }),
        (POOL_CLAMPED, (3, 2), |s| {
            // The simulated pool starts at 2, its min: at the clamp at once.
            s.task_pools = vec![TaskPoolSpec::simulated("batch", 1, 2).bounds(2, 10)];
        }),
    ];
    for (reason, want, edit) in cases {
        let mut h = Harness::new((3, 2), want);
        edit(&mut h.spec);
        for _ in 0..3 {
            let r = h.pass().await;
            assert_eq!(
                condition(&r.status, READY),
                ("False".into(), reason.into()),
                "{reason}"
            );
            assert_eq!(condition(&r.status, DEGRADED).0, "False", "{reason}");
            h.clock.advance(Duration::from_secs(300));
        }
        assert_eq!(
            events_since(&h, 0),
            [(EventType::Normal, reason.to_string())],
            "{reason}: once per change, not once per pass"
        );
        assert!(h.model.writes().is_empty(), "{reason}: no cloud write");
    }
}

/// The simulated cloud with what a test sets: the observed state (an MRS
/// cluster `abnormal` for one unhealthy node), or a fence that closes while
/// a scale-out waits inside the client, before its request.
#[derive(Debug)]
struct TestCloud {
    inner: SimulatedCloud,
    state: Option<ClusterState>,
    closes: Option<Arc<TestFence>>,
}

#[async_trait]
impl Cloud for TestCloud {
    fn kind(&self) -> CloudKind {
        self.inner.kind()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn observe_pools(
        &self,
        pools: &[clusterscale_core::api::TaskPoolSpec],
    ) -> Result<ObservedCluster, CloudError> {
        let mut o = self.inner.observe_pools(pools).await?;
        if let Some(state) = &self.state {
            o.state = state.clone();
        }
        Ok(o)
    }
    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        if let Some(fence) = &self.closes {
            fence.0.store(true, std::sync::atomic::Ordering::SeqCst);
            fence::check("ScaleOutInstance")?;
        }
        self.inner.scale_out(req).await
    }
    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        self.inner.scale_in(req).await
    }
    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        self.inner.operation_status(op).await
    }
}

/// Counts reached on an `abnormal` cluster: converged and Ready, with the
/// cloud's view beside it (ClusterHealthy False, Abnormal, one Warning);
/// counts not reached: no new operation while it is abnormal.
#[tokio::test]
async fn abnormal_cluster_at_its_counts_is_converged_and_reported_apart() {
    let abnormal =
        ClusterState::Unavailable("abnormal: 1 node(s) not running (node-task0002)".into());
    for (want, converged) in [((3, 2), true), ((3, 4), false)] {
        let mut h = Harness::new((3, 2), want);
        let cloud = TestCloud {
            inner: h.cloud.clone(),
            state: Some(abnormal.clone()),
            closes: None,
        };
        let mut events = Vec::new();
        for _ in 0..2 {
            let r = h.pass_on(&cloud).await.expect("memory store");
            events.extend(r.events.iter().map(|e| (e.type_, e.reason.clone())));
            h.clock.advance(Duration::from_secs(60));
        }
        let s = &h.store.status;
        assert_eq!(
            condition(s, CLUSTER_HEALTHY),
            ("False".into(), "Abnormal".into())
        );
        let healthy = conditions::find(&s.conditions, CLUSTER_HEALTHY).unwrap();
        assert!(
            healthy.message.contains("1 node(s) not running"),
            "{}",
            healthy.message
        );
        assert_eq!(condition(s, DEGRADED).0, "False");
        assert!(
            s.observed
                .as_ref()
                .and_then(|o| o.state.as_deref())
                .is_some_and(|st| st.contains("abnormal")),
            "{:?}",
            s.observed
        );
        assert_eq!(
            events
                .iter()
                .filter(|(t, r)| *t == EventType::Warning && r == "Abnormal")
                .count(),
            1,
            "one Warning: {events:?}"
        );
        if converged {
            assert_eq!(s.phase, Phase::Converged);
            assert_eq!(condition(s, READY), ("True".into(), "Converged".into()));
        } else {
            assert_ne!(s.phase, Phase::Converged);
            assert!(h.model.writes().is_empty(), "no operation while abnormal");
        }
    }
}

/// A fence that the test closes.
#[derive(Debug, Default)]
struct TestFence(std::sync::atomic::AtomicBool);

impl Fence for TestFence {
    fn is_open(&self) -> bool {
        !self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A closed fence stops the scale call in the task that would make it: the
/// write-ahead record is stored, the cloud is not called, nothing after it
/// is recorded; once open again (for whoever writes next) the same record
/// is sent with its token, once.
#[tokio::test]
async fn a_closed_fence_makes_no_cloud_call_and_records_nothing_more() {
    let mut h = Harness::new((3, 0), (3, 2));
    let fence = Arc::new(TestFence::default());
    fence.0.store(true, std::sync::atomic::Ordering::SeqCst);
    h.config.fence = fence.clone();
    let cloud = h.cloud.clone();
    let r = h.pass_on(&cloud).await;
    assert!(matches!(r, Err(EngineError::FenceClosed)), "{r:?}");
    assert!(
        h.model.writes().is_empty(),
        "no call through a closed fence"
    );
    let pending = h
        .store
        .status
        .pending_operation
        .clone()
        .expect("the write-ahead record was stored before the fence");
    assert!(!pending.accepted);
    let saved = h.store.status.clone();
    fence.0.store(false, std::sync::atomic::Ordering::SeqCst);
    h.clock.advance(Duration::from_secs(1));
    let r = h.run(20).await;
    assert_eq!(r.status.phase, Phase::Converged);
    let writes = h.model.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        saved.pending_operation.map(|p| p.id),
        r.status.last_operation.map(|o| o.id),
        "the stored record is the one sent"
    );
}

/// A fence that closes while a scale call waits inside the client (as in a
/// rate limiter or a pre-check read); the request then goes through the
/// clients' check: it is not sent, and the engine records nothing.
#[tokio::test]
async fn a_fence_that_closes_inside_the_call_stops_its_request() {
    let mut h = Harness::new((3, 0), (3, 2));
    let fence = Arc::new(TestFence::default());
    h.config.fence = fence.clone();
    let cloud = TestCloud {
        inner: h.cloud.clone(),
        state: None,
        closes: Some(fence),
    };
    let r = h.pass_on(&cloud).await;
    assert!(matches!(r, Err(EngineError::FenceClosed)), "{r:?}");
    assert!(h.model.writes().is_empty());
    let pending = h
        .store
        .status
        .pending_operation
        .clone()
        .expect("write-ahead");
    assert!(!pending.accepted && pending.finished_at.is_none());
    assert_eq!(h.store.status.last_error, None, "nothing recorded");
}

// ---- named pools ----

/// Core, then the default pool, then the pools in list order, one operation
/// at a time; every operation record, Event and status entry names its pool.
#[tokio::test]
async fn pools_converge_in_order_and_are_named_everywhere() {
    let mut h = Harness::new((3, 0), (4, 1));
    h.spec.task_pools = vec![
        TaskPoolSpec::simulated("batch", 2, 0),
        TaskPoolSpec::simulated("spot", 3, 1),
    ];
    let r = h.run(60).await;
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    assert_eq!(
        r.status.pools,
        vec![
            PoolStatus {
                name: "batch".into(),
                desired: 2,
                observed: Some(2)
            },
            PoolStatus {
                name: "spot".into(),
                desired: 3,
                observed: Some(3)
            },
        ]
    );
    assert_eq!(r.status.pools_summary.as_deref(), Some("2/2,3/3"));
    assert_eq!(
        condition(&r.status, READY),
        ("True".into(), "Converged".into())
    );
    assert!(
        r.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("pools batch 2, spot 3")),
        "{:?}",
        r.status.message
    );
    let writes: Vec<String> = h.model.writes().into_iter().map(|w| w.detail).collect();
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(writes[0].starts_with("group=core count=1"), "{writes:?}");
    assert!(writes[1].starts_with("group=task count=1"), "{writes:?}");
    assert!(
        writes[2].starts_with("group=task pool=batch count=2"),
        "{writes:?}"
    );
    assert!(
        writes[3].starts_with("group=task pool=spot count=2"),
        "{writes:?}"
    );
    let started: Vec<&EngineEvent> = h
        .events
        .iter()
        .filter(|e| e.reason == "ScaleOutStarted")
        .collect();
    assert_eq!(started.len(), 4);
    assert!(
        started[2]
            .message
            .starts_with("add 2 task node(s) of pool batch, 0 -> 2"),
        "{}",
        started[2].message
    );
    let last = r.status.last_operation.expect("last operation");
    assert_eq!(last.pool.as_deref(), Some("spot"));

    // Shrinking goes the other way: spot, batch, the default pool, Core.
    h.spec.core.count = 3;
    h.spec.task.count = 0;
    for p in &mut h.spec.task_pools {
        p.count = 0;
    }
    let r = h.run(60).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(r.status.pools_summary.as_deref(), Some("0/0,0/0"));
    let writes: Vec<String> = h.model.writes().into_iter().map(|w| w.detail).collect();
    let order: Vec<&str> = writes[4..]
        .iter()
        .map(|w| w.split(" count=").next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "group=task pool=spot",
            "group=task pool=batch",
            "group=task",
            "group=core"
        ]
    );
}

/// A pool the cloud cannot scale is passed over (its growth comes before
/// the default pool's shrinking in the route): the default pool still
/// converges, then the pool's block is reported (Unsupported) and nothing is
/// sent for it.
#[tokio::test]
async fn a_blocked_pool_does_not_starve_the_default_pool() {
    let mut h = Harness::new((3, 2), (3, 0));
    h.cloud = SimulatedCloud::new(h.model.clone()).with_capabilities(Capabilities {
        named_pools: false,
        ..Capabilities::ALL
    });
    h.spec.task_pools = vec![TaskPoolSpec::simulated("batch", 2, 0)];
    let first = h.pass().await;
    let started = first.started.clone().expect("the default pool grows");
    assert_eq!(
        (started.group, started.pool.clone(), started.direction),
        (NodeGroup::Task, None, Direction::In)
    );
    assert!(
        first
            .status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("passed over: Unsupported")),
        "{:?}",
        first.status.message
    );
    let mut r = first;
    for _ in 0..10 {
        h.clock.advance(Duration::from_secs(31));
        r = h.pass().await;
    }
    assert_eq!(r.status.phase, Phase::Blocked);
    assert_eq!(
        condition(&r.status, READY),
        ("False".into(), "Unsupported".into())
    );
    assert_eq!(r.status.pools_summary.as_deref(), Some("?/2"));
    assert_eq!(
        h.model.writes().len(),
        1,
        "only the default pool was scaled"
    );
    assert_eq!(r.status.observed.as_ref().map(|o| o.task), Some(0));
}

/// A pool's operation left pending across a restart is resolved by the
/// pool's count, and a pool's scale-in never names preferNodes.
#[tokio::test]
async fn a_pending_pool_operation_is_resolved_by_the_pools_count() {
    let mut h = Harness::new((3, 0), (3, 0));
    h.spec.task_pools = vec![TaskPoolSpec::simulated("batch", 0, 3)];
    h.spec.scale_in.prefer_nodes = vec!["sim-task-0001".into()];
    let r = h.pass().await;
    let started = r.started.expect("batch shrinks");
    assert_eq!(started.pool.as_deref(), Some("batch"));
    assert_eq!(started.direction, Direction::In);
    assert!(
        started.unmatched_preferred_nodes.is_empty(),
        "no preferNodes sent for a pool: {started:?}"
    );
    // A fresh pass (a restart) from the stored status: still pending, then resolved.
    h.clock.advance(Duration::from_secs(31));
    let r = h.pass().await;
    let finished = r.finished.expect("resolved");
    assert_eq!(finished.outcome, Some(Outcome::Succeeded));
    assert_eq!(finished.message.as_deref(), Some("pool batch is now 0"));
    let r = h.run(5).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert_eq!(r.status.pools_summary.as_deref(), Some("0/0"));
}

#[test]
fn a_pools_token_differs_from_the_default_pools() {
    let op = task_out_0_to_2();
    let pool = clusterscale_core::plan::Operation {
        pool: Some("batch".into()),
        ..op.clone()
    };
    assert_ne!(
        operation_token("u", 1, 1, &op),
        operation_token("u", 1, 1, &pool)
    );
    // The default pool's token is the one it had before pools existed.
    let digest = Sha256::digest(b"u/1/1/task/out/0/2");
    assert_eq!(
        operation_token("u", 1, 1, &op),
        format!("cs-{}-1", &hex::encode(digest)[..24])
    );
}

#[test]
fn ready_names_the_error_when_its_code_is_a_reason() {
    for (code, reason) in [
        ("PrepaidNodeGroup", "PrepaidNodeGroup"),
        ("UnknownNodeGroup", "UnknownNodeGroup"),
        ("CloudAutoscalerConflict", "CloudAutoscalerConflict"),
        ("InternalError", "InternalError"),
        ("AuthFailure.SignatureFailure", "Error"),
        ("12000065", "Error"),
        ("APIGW.0301", "Error"),
        ("", "Error"),
        ("lowercase", "Error"),
    ] {
        assert_eq!(ready_reason_of(code), reason, "{code}");
    }
}
