//! The reconcile engine, independent of Kubernetes:
//! validate -> observe -> resolve the pending operation -> plan ->
//! write-ahead -> execute -> record.
//!
//! The engine works against a [`StatusStore`]: an in-memory one for the CLI
//! and tests, the status subresource in the controller. Before any scale call
//! the pending operation (with its idempotency token) is saved; if that save
//! fails, the call is not made. After a crash the pending operation is
//! resolved by observing the cloud, never by calling it again blindly: the
//! only repeat is the same request with the same token, within the window in
//! which the cloud deduplicates it, while the cluster still shows no trace of it.
//!
//! A failed call's [`Effect`](clusterscale_core::cloud::Effect) decides which path it
//! takes: refused (the cloud's own error envelope, or never sent) ends the
//! operation at once, and the next pass plans anew after the class's backoff;
//! unknown (no answer, a gateway's 5xx, an unreadable body) keeps it pending,
//! to be resolved as after a crash. Whether to retry at all is the class's
//! [`retryable`](clusterscale_core::cloud::ErrorClass::retryable), a separate question.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use clusterscale_core::api::conditions::{self, Desired, DEGRADED, PROGRESSING, READY};
use clusterscale_core::api::validate::{describe, validate_spec};
use clusterscale_core::api::{
    nodes_of, Direction, ErrorClass, ErrorRecord, FailureClass, HeldWrite, NodeGroup,
    ObservedStatus, OperationRecord, Outcome, Phase, PoolNodes, PoolStatus, Precondition,
    ScaledClusterSpec, ScaledClusterStatus, TaskPoolSpec, MAX_TOTAL,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::fence::{self, AlwaysOpen, Fence};
use clusterscale_core::cloud::{
    Cloud, CloudError, ClusterState, ObservedCluster, OperationProgress, ScaleRequest,
};
use clusterscale_core::plan::{self, NextMove, Operation, PlanInput, ReasonKind};

pub mod resolve;

use resolve::Resolution;

/// Where status lives between reconciles.
#[async_trait]
pub trait StatusStore: Send {
    /// Persist `status`, which `write` records. Must be durable before it
    /// returns, except for a write that crash safety does not need
    /// ([`StatusWrite::deferrable`]), which a store may keep and write
    /// later: the engine makes cloud calls only after the write-ahead record
    /// is saved.
    async fn save(
        &mut self,
        status: &ScaledClusterStatus,
        write: StatusWrite,
    ) -> Result<(), StoreError>;
}

/// The status could not be saved.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    /// Somebody else changed the resource since it was read: nothing was
    /// written, and the pass must start again from fresh state.
    pub conflict: bool,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            conflict: false,
        }
    }
}

/// A status store in memory (CLI, tests).
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    pub status: ScaledClusterStatus,
    /// How many saves happened (a save is skipped when nothing changed).
    pub saves: usize,
    /// What each save recorded, in order.
    pub writes: Vec<StatusWrite>,
}

#[async_trait]
impl StatusStore for MemoryStore {
    async fn save(
        &mut self,
        status: &ScaledClusterStatus,
        write: StatusWrite,
    ) -> Result<(), StoreError> {
        self.status = status.clone();
        self.saves += 1;
        self.writes.push(write);
        Ok(())
    }
}

/// Timings of the loop.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Poll interval while an operation runs or the cluster is busy.
    pub poll: Duration,
    /// Resync interval when converged or blocked, to catch drift made outside.
    pub resync: Duration,
    /// How long an unconfirmed call may show no effect before it is declared not applied.
    pub settle: Duration,
    /// How long errors that retrying gets past (throttled, busy, transient,
    /// sold out) may persist before the resource reports Degraded.
    pub degraded_after: Duration,
    /// Checked immediately before every scale call and every request of it
    /// (`clusterscale_core::cloud::fence`): closed, nothing is sent
    /// ([`EngineError::FenceClosed`]).
    pub fence: Arc<dyn Fence>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(10),
            resync: Duration::from_secs(300),
            settle: Duration::from_secs(60),
            degraded_after: DEGRADED_AFTER,
            fence: Arc::new(AlwaysOpen),
        }
    }
}

/// The default of [`EngineConfig::degraded_after`].
pub const DEGRADED_AFTER: Duration = Duration::from_secs(600);

/// The condition that reports the cloud's own view of the cluster's health,
/// apart from whether the counts are reached.
pub const CLUSTER_HEALTHY: &str = "ClusterHealthy";

/// Ready's reason for an error with no operation in flight: the error's code
/// when it is one CamelCase word (what blocks the cluster, by name:
/// `PrepaidNodeGroup`, `UnknownNodeGroup`, `CloudAutoscalerConflict`, or a
/// cloud's `InternalError`), else `Error` (codes with dots or digits first,
/// `AuthFailure.SignatureFailure`, `12000065`, are not condition reasons).
fn ready_reason_of(code: &str) -> &str {
    let mut chars = code.chars();
    let camel = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && code.len() <= 64;
    if camel {
        code
    } else {
        "Error"
    }
}

/// The Ready reason of a cluster at its clamped Task count that differs from
/// `spec.task.count` (outside `[task.min, task.max]`).
pub const TASK_CLAMPED: &str = "TaskClamped";

/// The Ready reason of a cluster at the clamped count of a named pool that
/// differs from its `spec.taskPools[].count` (outside its `[min, max]`).
pub const POOL_CLAMPED: &str = "PoolClamped";

/// The Degraded reason while errors that retrying gets past persist for
/// less than [`EngineConfig::degraded_after`].
pub const RETRYING: &str = "Retrying";

/// The resource being reconciled.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// metadata.uid (part of the idempotency token).
    pub uid: &'a str,
    /// metadata.generation.
    pub generation: i64,
    pub spec: &'a ScaledClusterSpec,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An event worth telling a person about. The engine emits each once per
/// transition, not once per requeue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineEvent {
    pub type_: EventType,
    /// CamelCase, e.g. ScaleOutStarted.
    pub reason: String,
    /// e.g. ScaleOut, Observe.
    pub action: String,
    pub message: String,
}

impl EngineEvent {
    fn normal(reason: &str, action: &str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason: reason.into(),
            action: action.into(),
            message: message.into(),
        }
    }

    fn warning(reason: &str, action: &str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason: reason.into(),
            action: action.into(),
            message: message.into(),
        }
    }
}

/// The outcome of one reconcile.
#[derive(Clone, Debug)]
pub struct Report {
    pub status: ScaledClusterStatus,
    /// When to look again; `None` means "only when the resource changes".
    pub requeue_after: Option<Duration>,
    pub events: Vec<EngineEvent>,
    /// The cloud error of this pass, if any (for metrics and the CLI).
    pub error: Option<CloudError>,
    /// The operation started in this pass, if any.
    pub started: Option<OperationRecord>,
    /// The operation resolved in this pass, if any.
    pub finished: Option<OperationRecord>,
    /// The last observation of this pass.
    pub observed: Option<ObservedCluster>,
}

impl Report {
    /// Take out the Event that says the call of [`Report::started`] was
    /// accepted (`ScaleOutStarted`, `ScaleInStarted`). It says what the
    /// acceptance write says, and that write is deferrable
    /// ([`StatusWrite::Accepted`]): a status store that defers the write can
    /// hold the Event with it, and drop it when the operation ends first,
    /// since the outcome's Event carries the same request id.
    pub fn take_acceptance_events(&mut self) -> Vec<EngineEvent> {
        let Some(op) = &self.started else {
            return Vec::new();
        };
        let verb = verb(op.direction);
        let (reason, action) = (format!("{verb}Started"), op_action(verb, op));
        let (taken, kept) = std::mem::take(&mut self.events)
            .into_iter()
            .partition(|e| e.reason == reason && e.action == action);
        self.events = kept;
        taken
    }
}

/// Things a reconcile can fail on that are not the cloud's answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A status write failed, and the pass stopped there: nothing after it
    /// happened (after a failed write-ahead, no cloud call).
    #[error("saving the status ({write}): {source}")]
    WriteStatus {
        write: StatusWrite,
        #[source]
        source: StoreError,
    },
    /// The fence was closed immediately before a scale call: no call was
    /// made and nothing recorded after the write-ahead record, which whoever
    /// writes next resolves by observation.
    #[error(
        "the fence closed before the cloud call (this process may no longer write): no call made"
    )]
    FenceClosed,
}

impl EngineError {
    /// The status changed underneath (a lost compare-and-swap): nothing was
    /// written, and the pass must start again from fresh state.
    pub fn is_conflict(&self) -> bool {
        match self {
            EngineError::WriteStatus { source, .. } => source.conflict,
            EngineError::FenceClosed => false,
        }
    }
}

/// Which status write of a pass: each records a different step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// The spec, its credentials or its claim on the cluster cannot be used.
    Precondition,
    /// An observation of the cluster failed.
    ObserveFailed,
    /// The pending operation still runs.
    Progress,
    /// What the plan decided: converged, waiting or blocked.
    Plan,
    /// The write-ahead record of an operation, before its cloud call.
    WriteAhead,
    /// The cloud accepted an operation's call: its request and flow ids.
    Accepted,
    /// The cloud's answer to an operation's call, other than an acceptance:
    /// a refusal, or no answer.
    CallOutcome,
}

impl StatusWrite {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusWrite::Precondition => "precondition",
            StatusWrite::ObserveFailed => "observation failed",
            StatusWrite::Progress => "progress",
            StatusWrite::Plan => "plan",
            StatusWrite::WriteAhead => "write-ahead",
            StatusWrite::Accepted => "accepted",
            StatusWrite::CallOutcome => "call outcome",
        }
    }

    /// Whether crash safety does without this write, so that a store may
    /// defer it (write it with the next one, or after a while):
    /// - an accepted call: after a crash the pending record is the
    ///   write-ahead one, and the resolver tells accepted from not by
    ///   observing the cloud, as for a crash between the call and this
    ///   write; the request and flow ids ride on the outcome's write;
    /// - a running operation's progress: the next pass observes it again.
    ///
    /// Everything else is durable at once: the write-ahead record (no call
    /// without it), a refusal or an unknown answer (the next pass must not
    /// plan on a stale pending record), and every outcome.
    pub fn deferrable(self) -> bool {
        matches!(self, StatusWrite::Accepted | StatusWrite::Progress)
    }
}

impl fmt::Display for StatusWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The deterministic idempotency token of one logical operation: a function
/// of the resource's uid, its generation, the step number and the operation
/// itself, so that a retry of the same operation carries the same token and a
/// different operation never does (two CLI runs without a uid, say). Tencent
/// requires a ClientToken of at most 64 characters.
pub fn operation_token(uid: &str, generation: i64, step: i64, op: &Operation) -> String {
    // A named pool's operations hash its name too; Core's and the default
    // pool's are hashed as before pools existed.
    let group = match &op.pool {
        None => op.group.as_str().to_string(),
        Some(pool) => format!("{}:{pool}", op.group.as_str()),
    };
    let digest = Sha256::digest(
        format!(
            "{uid}/{generation}/{step}/{group}/{}/{}/{}",
            op.direction.as_str(),
            op.from_count,
            op.to_count
        )
        .as_bytes(),
    );
    format!("cs-{}-{step}", &hex::encode(digest)[..24])
}

/// How many times one operation's call is sent at most (the first send and
/// re-sends with the same token).
const MAX_SENDS: i32 = 5;

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn since(now: Timestamp, then: &Time) -> Duration {
    let d = then.0.duration_until(now);
    Duration::try_from(d).unwrap_or_default()
}

/// One pass of the loop. Cloud errors are recorded in the status and
/// reported in [`Report::error`]; only a failed status save is an `Err`.
pub async fn reconcile(
    target: Target<'_>,
    current: &ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &dyn Clock,
    store: &mut dyn StatusStore,
    config: &EngineConfig,
) -> Result<Report, EngineError> {
    let mut pass = Pass::new(target, current, clock, config);
    let requeue = pass.run(cloud, store).await?;
    Ok(pass.into_report(requeue))
}

/// Record a failure that happens before the cloud is reached (missing
/// credentials, duplicate target, a client that cannot be built), with the
/// same conditions and event rules as the engine's own.
pub async fn record_precondition_failure(
    target: Target<'_>,
    current: &ScaledClusterStatus,
    clock: &dyn Clock,
    store: &mut dyn StatusStore,
    reason: Precondition,
    message: &str,
) -> Result<Report, EngineError> {
    let config = EngineConfig::default();
    let mut pass = Pass::new(target, current, clock, &config);
    pass.fail_precondition(reason, message);
    pass.commit(store, StatusWrite::Precondition).await?;
    Ok(pass.into_report(None))
}

struct Pass<'a> {
    target: Target<'a>,
    previous: ScaledClusterStatus,
    status: ScaledClusterStatus,
    now: Timestamp,
    events: Vec<EngineEvent>,
    error: Option<CloudError>,
    started: Option<OperationRecord>,
    finished: Option<OperationRecord>,
    observed: Option<ObservedCluster>,
    config: &'a EngineConfig,
}

impl<'a> Pass<'a> {
    fn new(
        target: Target<'a>,
        current: &ScaledClusterStatus,
        clock: &dyn Clock,
        config: &'a EngineConfig,
    ) -> Self {
        Self {
            target,
            previous: current.clone(),
            status: current.clone(),
            now: clock.now(),
            events: Vec::new(),
            error: None,
            started: None,
            finished: None,
            observed: None,
            config,
        }
    }

    fn into_report(self, requeue_after: Option<Duration>) -> Report {
        Report {
            status: self.status,
            requeue_after,
            events: self.events,
            error: self.error,
            started: self.started,
            finished: self.finished,
            observed: self.observed,
        }
    }

    async fn run(
        &mut self,
        cloud: &dyn Cloud,
        store: &mut dyn StatusStore,
    ) -> Result<Option<Duration>, EngineError> {
        let spec = self.target.spec;
        self.status.cloud = spec.cloud().map(|c| c.as_str().to_string());
        if self.status.observed_generation != Some(self.target.generation) {
            // A new generation starts its own step count (the token includes the generation).
            self.status.step = 0;
        }
        // A hold lasts for its generation: any spec change lifts it.
        let generation = self.target.generation;
        self.status
            .held_writes
            .retain(|h| h.generation == generation);

        // 1. Validate.
        let violations = validate_spec(spec);
        if !violations.is_empty() {
            self.fail_precondition(Precondition::InvalidSpec, &describe(&violations));
            self.commit(store, StatusWrite::Precondition).await?;
            return Ok(None);
        }

        // 2. Observe.
        let observed = match cloud.observe_pools(&spec.task_pools).await {
            Ok(o) => o,
            Err(e) => {
                let wait = e.retry_after();
                self.cloud_error(e);
                self.set_conditions_for_error();
                self.commit(store, StatusWrite::ObserveFailed).await?;
                return Ok(Some(wait));
            }
        };
        self.record_observed(&observed);
        self.observed = Some(observed.clone());

        // 3. Resolve our pending operation.
        if let Some(pending) = self.status.pending_operation.as_deref().cloned() {
            match self.resolve(cloud, &pending, &observed).await {
                Resolution::StillRunning(message) => {
                    self.set_phase(phase_of(pending.direction), message.clone());
                    self.set_conditions(false, "OperationInProgress", &message, true, None);
                    self.commit(store, StatusWrite::Progress).await?;
                    return Ok(Some(self.config.poll));
                }
                Resolution::Resend => return self.resend(cloud, store, pending).await,
                Resolution::Finished(outcome, message) => {
                    let mut record = pending;
                    record.finished_at = Some(time(self.now));
                    record.outcome = Some(outcome);
                    record.message = Some(message);
                    self.finish(record);
                }
            }
        }

        // 4. Plan.
        // Cooldown counts from the last operation the cloud accepted (or
        // that took effect): a refused or not-applied call changed nothing.
        let last_finished = self
            .status
            .last_operation
            .as_ref()
            .filter(|o| o.accepted || o.outcome == Some(Outcome::Succeeded))
            .and_then(|o| o.finished_at.as_ref())
            .map(|t| t.0);
        let plan = plan::plan(&PlanInput {
            spec,
            observed: &observed,
            pending: self.status.pending_operation.as_deref(),
            last_finished,
            now: self.now,
            capabilities: cloud.capabilities(),
            held: &self.status.held_writes,
        });
        self.status.plan = plan.steps.clone();
        let clamp = plan.clamps().map(|c| format!(" ({c})")).unwrap_or_default();

        match plan.next {
            NextMove::Converged => {
                let pools: Vec<String> = spec
                    .task_pools
                    .iter()
                    .map(|p| {
                        let n = observed.count_of(NodeGroup::Task, Some(&p.name));
                        format!("{} {n}", p.name)
                    })
                    .collect();
                let pools = if pools.is_empty() {
                    String::new()
                } else {
                    format!(" / pools {}", pools.join(", "))
                };
                let msg = format!(
                    "Core {} / Task {}{pools} as desired{clamp}",
                    observed.core, observed.task
                );
                self.set_phase(Phase::Converged, msg.clone());
                self.status.last_error = None;
                let clamped = if plan.clamp.is_some() {
                    Some(TASK_CLAMPED)
                } else if !plan.pool_clamps.is_empty() {
                    Some(POOL_CLAMPED)
                } else {
                    None
                };
                if let Some(reason) = clamped {
                    // At the clamped count, which the spec's own min or max
                    // chose (task.min/max, or a pool's): not Ready for the
                    // count asked, not Degraded.
                    self.users_choice(reason, &msg);
                    self.set_conditions(false, reason, &msg, false, None);
                } else {
                    self.set_conditions(true, "Converged", &msg, false, None);
                }
                self.commit(store, StatusWrite::Plan).await?;
                Ok(Some(self.config.resync))
            }
            NextMove::Wait(reason) => {
                let msg = format!("{}{clamp}", reason.message);
                self.set_phase(Phase::Waiting, msg.clone());
                self.set_conditions(false, reason.kind.as_str(), &msg, true, None);
                self.commit(store, StatusWrite::Plan).await?;
                let wait = match reason.kind {
                    ReasonKind::Cooldown => {
                        let ready = last_finished.unwrap_or(self.now)
                            + SignedDuration::from_secs(i64::from(spec.cooldown_seconds.max(0)));
                        Duration::try_from(self.now.duration_until(ready)).unwrap_or_default()
                            + Duration::from_secs(1)
                    }
                    _ => self.config.poll,
                };
                Ok(Some(wait))
            }
            NextMove::Blocked(reason) => {
                let msg = format!("{}{clamp}", reason.message);
                let (phase, degraded) = match reason.kind {
                    ReasonKind::Paused | ReasonKind::DryRun => (Phase::Paused, None),
                    _ => (Phase::Blocked, Some(reason.code())),
                };
                let degraded = degraded.filter(|_| !reason.kind.users_choice());
                if reason.kind.users_choice() {
                    self.users_choice(reason.kind.as_str(), &msg);
                } else {
                    let changed = self.previous.phase != phase
                        || self.previous.message.as_deref() != Some(msg.as_str());
                    // A hold was reported once, with its order, by the
                    // Warning of the call that opened it.
                    if changed && reason.kind != ReasonKind::Held {
                        self.events
                            .push(EngineEvent::warning(reason.code(), "Plan", msg.clone()));
                    }
                }
                self.set_phase(phase, msg.clone());
                self.set_conditions(
                    false,
                    reason.code(),
                    &msg,
                    false,
                    degraded.map(|d| (d, msg.as_str())),
                );
                self.commit(store, StatusWrite::Plan).await?;
                Ok(Some(self.config.resync))
            }
            NextMove::Execute(op) => self.execute(cloud, store, op, &plan.passed_over).await,
        }
    }

    /// Write-ahead, then call.
    async fn execute(
        &mut self,
        cloud: &dyn Cloud,
        store: &mut dyn StatusStore,
        op: Operation,
        passed_over: &[plan::Reason],
    ) -> Result<Option<Duration>, EngineError> {
        let step = self.status.step + 1;
        let token = operation_token(self.target.uid, self.target.generation, step, &op);
        let record = OperationRecord {
            id: token,
            group: op.group,
            pool: op.pool.clone(),
            direction: op.direction,
            count: op.count,
            from_count: op.from_count,
            to_count: op.to_count,
            started_at: time(self.now),
            accepted: false,
            attempts: 1,
            request_id: None,
            flow_id: None,
            trace_id: None,
            node_ids: Vec::new(),
            unmatched_preferred_nodes: vec![],
            finished_at: None,
            outcome: None,
            message: None,
        };
        self.status.step = step;
        // A blocked group passed over for this one is said, not hidden.
        let message = if passed_over.is_empty() {
            format!("{op}")
        } else {
            let passed_over: Vec<String> = passed_over.iter().map(ToString::to_string).collect();
            format!("{op}; passed over: {}", passed_over.join("; "))
        };
        self.write_ahead_then_call(cloud, store, record, "OperationStarting", message)
            .await
    }

    /// Save the pending record (the write-ahead: without it, no call), then call.
    async fn write_ahead_then_call(
        &mut self,
        cloud: &dyn Cloud,
        store: &mut dyn StatusStore,
        record: OperationRecord,
        reason: &str,
        message: String,
    ) -> Result<Option<Duration>, EngineError> {
        self.status.pending_operation = Some(Box::new(record.clone()));
        self.set_phase(phase_of(record.direction), message.clone());
        // Degraded as it was: starting a call says nothing new about the last
        // error. Clearing it here would flap a Degraded condition (and repeat
        // its Warning) each time a permanently refused call is tried again.
        let degraded = conditions::find(&self.status.conditions, DEGRADED).map_or_else(
            || Desired::new(DEGRADED, false, "AsExpected", ""),
            |c| Desired::new(DEGRADED, c.status == "True", &c.reason, c.message.clone()),
        );
        self.set_conditions_with(false, reason, &message, true, degraded);
        self.commit(store, StatusWrite::WriteAhead).await?;
        self.call(cloud, store, record).await
    }

    /// Send (or re-send, with the same token) the pending operation's call.
    async fn call(
        &mut self,
        cloud: &dyn Cloud,
        store: &mut dyn StatusStore,
        mut record: OperationRecord,
    ) -> Result<Option<Duration>, EngineError> {
        let spec = self.target.spec;
        // A named pool's definition as the spec holds it now; a pool removed
        // from the spec since the write-ahead record keeps only its name.
        let pool = record.pool.as_deref().map(|name| {
            spec.pool(name)
                .cloned()
                .unwrap_or_else(|| TaskPoolSpec::named(name, record.to_count))
        });
        let req = ScaleRequest {
            group: record.group,
            // preferNodes are Core's and the default Task pool's.
            prefer_nodes: if pool.is_some() {
                Vec::new()
            } else {
                spec.scale_in.prefer_nodes.clone()
            },
            pool,
            count: record.count,
            from_count: record.from_count,
            token: record.id.clone(),
            graceful_timeout_seconds: spec.scale_in.graceful_timeout_seconds,
        };
        if !self.config.fence.is_open() {
            return Err(EngineError::FenceClosed);
        }
        let result = fence::scope(self.config.fence.clone(), async {
            match record.direction {
                Direction::Out => cloud.scale_out(&req).await,
                Direction::In => cloud.scale_in(&req).await,
            }
        })
        .await;
        if matches!(&result, Err(e) if fence::closed(e)) {
            // Inside the call (a rate limiter, a token fetch, a pre-check
            // read): nothing was sent; record nothing.
            return Err(EngineError::FenceClosed);
        }
        let verb = verb(record.direction);
        match result {
            Ok(sub) => {
                record.accepted = true;
                record.request_id = sub.request_id;
                record.flow_id = sub.flow_id;
                record.trace_id = sub.trace_id;
                record.node_ids = sub.node_ids;
                record.unmatched_preferred_nodes = sub.unmatched_preferred;
                let msg = describe_op(&record);
                self.events.push(EngineEvent::normal(
                    &format!("{verb}Started"),
                    &op_action(verb, &record),
                    with_request_id(msg.clone(), &record),
                ));
                if !record.unmatched_preferred_nodes.is_empty() {
                    // Never dropped in silence: in the record (status) and an Event.
                    self.events.push(EngineEvent::warning(
                        "PreferredNodesUnmatched",
                        &op_action(verb, &record),
                        format!(
                            "spec.scaleIn.preferNodes not named for removal (not a node of the {} group, \
                             or the cloud takes no node ids for it): {}",
                            nodes_of(record.group, record.pool.as_deref()).trim_end_matches(" node(s)"),
                            record.unmatched_preferred_nodes.join(", ")
                        ),
                    ));
                }
                self.status.pending_operation = Some(Box::new(record.clone()));
                self.status.last_error = None;
                self.set_conditions(false, "OperationInProgress", &msg, true, None);
                self.started = Some(record);
                self.commit(store, StatusWrite::Accepted).await?;
                Ok(Some(self.config.poll))
            }
            Err(e) if !e.may_have_applied() && record.attempts > 1 => {
                // A refused re-send proves only that the re-send did nothing,
                // not the first send whose answer was lost (a "busy" answer even
                // suggests it runs). Stop sending; observation decides.
                let wait = self.config.poll;
                record.attempts = MAX_SENDS;
                record.message = Some(format!("re-send refused, resolving by observation: {e}"));
                self.status.pending_operation = Some(Box::new(record));
                self.cloud_error(e);
                self.set_conditions_for_error();
                self.commit(store, StatusWrite::CallOutcome).await?;
                Ok(Some(wait))
            }
            Err(e) if !e.may_have_applied() => {
                // The cloud refused in its own words (or the call never left):
                // nothing happened, the operation is over. Whatever its class,
                // the next try is a new operation (new token), planned from a
                // fresh observation after the class's backoff: no acceptance
                // grace, no re-send of this one.
                let wait = e.retry_after();
                record.finished_at = Some(time(self.now));
                record.outcome = Some(Outcome::Failed);
                record.message = Some(e.to_string());
                // A refusal that retrying gets past is part of normal life
                // (Normal); the others need help (Warning).
                let event = if e.class.heals_by_retry() {
                    EngineEvent::normal
                } else {
                    EngineEvent::warning
                };
                self.events.push(event(
                    &format!("{verb}Failed"),
                    &op_action(verb, &record),
                    e.to_string(),
                ));
                if let Some(order_id) = e.opened_order().map(str::to_string) {
                    // Another call would open another order: the group is
                    // written no more in this generation.
                    self.status.held_writes.push(HeldWrite {
                        group: record.group,
                        pool: record.pool.clone(),
                        generation: self.target.generation,
                        reason: e.code.clone(),
                        order_id: Some(order_id.clone()),
                        request_id: e.request_id.clone(),
                        message: format!(
                            "{} opened order {order_id} (request id {}); nothing scales until it is paid, \
                             and the controller sends nothing more to this group until the spec changes: \
                             pay or cancel the order in the console",
                            e.action,
                            e.request_id.as_deref().unwrap_or("none")
                        ),
                        since: time(self.now),
                    });
                }
                self.status.pending_operation = None;
                self.status.last_operation = Some(record.clone());
                self.finished = Some(record);
                // A refusal that a retry can get past (throttled, busy,
                // transient) waits; only the others fail.
                let phase = if e.class.retryable() {
                    Phase::Waiting
                } else if e.is_blocked_by_check() {
                    Phase::Blocked
                } else {
                    Phase::Failed
                };
                self.cloud_error(e);
                self.set_phase(
                    phase,
                    self.status
                        .last_error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                );
                self.set_conditions_for_error();
                self.commit(store, StatusWrite::CallOutcome).await?;
                Ok(Some(wait))
            }
            Err(e) => {
                // Effect unknown (timeout, a gateway's 5xx, a lost or unreadable
                // answer): the call may have been applied. Keep the pending record; the next pass resolves it by
                // observation and re-sends only with the same token.
                let wait = e.retry_after().min(self.config.poll);
                record.message = Some(format!("unconfirmed: {e}"));
                self.status.pending_operation = Some(Box::new(record));
                self.cloud_error(e);
                self.set_conditions_for_error();
                self.commit(store, StatusWrite::CallOutcome).await?;
                Ok(Some(wait))
            }
        }
    }

    async fn resend(
        &mut self,
        cloud: &dyn Cloud,
        store: &mut dyn StatusStore,
        mut record: OperationRecord,
    ) -> Result<Option<Duration>, EngineError> {
        record.attempts += 1;
        let msg = format!(
            "re-sending {} with the same token (attempt {})",
            describe_op(&record),
            record.attempts
        );
        self.write_ahead_then_call(cloud, store, record, "OperationRetrying", msg)
            .await
    }

    /// What became of our pending operation: the operation's progress when
    /// the facts call for it, then the pure decision ([`resolve::resolve`]).
    async fn resolve(
        &self,
        cloud: &dyn Cloud,
        pending: &OperationRecord,
        observed: &ObservedCluster,
    ) -> Resolution {
        let progress = if resolve::needs_operation_status(pending, observed) {
            // A failed lookup is no answer: state and counts decide without it.
            Some(
                cloud
                    .operation_status(pending)
                    .await
                    .unwrap_or(OperationProgress::Unknown),
            )
        } else {
            None
        };
        resolve::resolve(&resolve::Facts {
            pending,
            observed,
            progress,
            age: since(self.now, &pending.started_at),
            settle: self.config.settle,
            capabilities: cloud.capabilities(),
        })
    }

    fn finish(&mut self, record: OperationRecord) {
        let verb = verb(record.direction);
        let msg = format!(
            "{}: {}",
            describe_op(&record),
            record.message.clone().unwrap_or_default()
        );
        // The outcome's Event names the request id too: it may be the only
        // Event of the operation (see `Report::take_acceptance_events`).
        let note = with_request_id(msg.clone(), &record);
        match record.outcome {
            Some(Outcome::Succeeded) => self.events.push(EngineEvent::normal(
                &format!("{verb}Completed"),
                &op_action(verb, &record),
                note,
            )),
            Some(Outcome::NotApplied) => self.events.push(EngineEvent::normal(
                &format!("{verb}NotApplied"),
                &op_action(verb, &record),
                note,
            )),
            _ => {
                self.events.push(EngineEvent::warning(
                    &format!("{verb}Failed"),
                    &op_action(verb, &record),
                    note,
                ));
                self.status.last_error = Some(Box::new(ErrorRecord {
                    code: "OperationFailed".into(),
                    message: msg,
                    request_id: record.request_id.clone(),
                    class: FailureClass::OperationFailed,
                    action: Some(verb.into()),
                    at: time(self.now),
                }));
            }
        }
        self.status.pending_operation = None;
        self.status.last_operation = Some(record.clone());
        self.finished = Some(record);
    }

    fn record_observed(&mut self, o: &ObservedCluster) {
        let state = Some(match &o.state {
            ClusterState::Running => "running".to_string(),
            other => format!("{}: {}", other.kind(), other.detail()),
        });
        let some = |n: i32| (n > 0).then_some(n);
        let (auto_scaled_core, auto_scaled_task, pod_nodes) = (
            some(o.unmanaged.auto_scaled_core),
            some(o.unmanaged.auto_scaled_task),
            some(o.unmanaged.pods),
        );
        let pools: Vec<PoolStatus> = self
            .target
            .spec
            .task_pools
            .iter()
            .map(|p| PoolStatus {
                name: p.name.clone(),
                desired: plan::desired_pool(p).0,
                observed: o.pools.get(&p.name).copied(),
            })
            .collect();
        self.status.pools_summary = PoolStatus::summary(&pools);
        self.status.pools = pools;
        let unlisted_pools: Vec<PoolNodes> = o
            .unmanaged
            .unlisted_pools
            .iter()
            .map(|(name, &nodes)| PoolNodes {
                name: name.clone(),
                nodes,
            })
            .collect();
        let prev_unlisted = self
            .status
            .observed
            .as_ref()
            .map_or(&[][..], |p| &p.unlisted_pools);
        if !unlisted_pools.is_empty() && prev_unlisted != unlisted_pools.as_slice() {
            let listed: Vec<String> = unlisted_pools
                .iter()
                .map(|p| format!("{} ({} node(s))", p.name, p.nodes))
                .collect();
            self.events.push(EngineEvent::warning(
                "UnlistedPoolNodes",
                "Observe",
                format!(
                    "Task nodes of pools that spec.taskPools does not list: {}; in no pool and never \
                     removed, but counted toward the {MAX_TOTAL}-node limit. Add the pool back to manage \
                     them, or remove them in the cloud's console",
                    listed.join(", ")
                ),
            ));
        }
        let same = self.status.observed.as_ref().is_some_and(|prev| {
            prev.core == o.core
                && prev.task == o.task
                && prev.state == state
                && prev.auto_scaled_core == auto_scaled_core
                && prev.auto_scaled_task == auto_scaled_task
                && prev.pod_nodes == pod_nodes
                && prev.unlisted_pools == unlisted_pools
        });
        if !same {
            self.status.observed = Some(ObservedStatus {
                state,
                core: o.core,
                task: o.task,
                auto_scaled_core,
                auto_scaled_task,
                pod_nodes,
                unlisted_pools,
                at: Some(time(self.now)),
            });
        }
    }

    /// Record a cloud error in `lastError`; [`Pass::set_conditions_for_error`]
    /// then says what it means. `lastError.at` is when this error was first
    /// seen or, for errors that retrying gets past, when their streak began
    /// (a streak: such errors one after another, with no pass in between that
    /// got past them).
    fn cloud_error(&mut self, e: CloudError) {
        let same_as_before = self.status.last_error.as_ref().filter(|prev| {
            prev.code == e.code
                && prev.message == e.message
                && prev.action.as_deref() == Some(e.action.as_str())
        });
        let streak = self
            .previous
            .last_error
            .as_ref()
            .filter(|_| e.class.heals_by_retry() && self.previous_retrying());
        let at = same_as_before
            .or(streak)
            .map(|p| p.at.clone())
            .unwrap_or_else(|| time(self.now));
        self.status.last_error = Some(Box::new(ErrorRecord {
            code: e.code.clone(),
            message: e.message.clone(),
            request_id: e.request_id.clone(),
            class: e.class.into(),
            action: Some(e.action.clone()),
            at,
        }));
        self.error = Some(e);
    }

    fn fail_precondition(&mut self, reason: Precondition, message: &str) {
        let code = reason.as_str();
        let changed = self
            .previous
            .last_error
            .as_ref()
            .is_none_or(|p| p.code != code || p.message != message);
        if changed {
            self.events
                .push(EngineEvent::warning(code, "Validate", message.to_string()));
        }
        let at = if changed {
            time(self.now)
        } else {
            self.previous
                .last_error
                .as_ref()
                .map(|p| p.at.clone())
                .unwrap_or_else(|| time(self.now))
        };
        self.status.cloud = self.target.spec.cloud().map(|c| c.as_str().to_string());
        self.status.last_error = Some(Box::new(ErrorRecord {
            code: code.to_string(),
            message: message.to_string(),
            request_id: None,
            class: reason.into(),
            action: None,
            at,
        }));
        self.set_phase(Phase::Failed, message.to_string());
        self.set_conditions(
            false,
            code,
            message,
            self.status.pending_operation.is_some(),
            Some((code, message)),
        );
    }

    /// Whether the previous pass ended in an error that retrying gets past:
    /// the streak such an error continues.
    fn previous_retrying(&self) -> bool {
        let Some(prev) = &self.previous.last_error else {
            return false;
        };
        let retryable = prev.class.cloud().is_some_and(ErrorClass::heals_by_retry);
        let degraded = conditions::find(&self.previous.conditions, DEGRADED);
        retryable
            && degraded.is_some_and(|c| {
                (c.status == "False" && c.reason == RETRYING)
                    || (c.status == "True" && c.reason == prev.class.as_str())
            })
    }

    /// The conditions and Events of the error in `lastError`:
    /// - one that retrying gets past, for less than `degraded_after` since its
    ///   streak began: Ready as it was, Degraded False (`Retrying`), a Normal
    ///   Event when the streak begins;
    /// - the same past `degraded_after`: Ready False, Degraded True with the
    ///   last code and request id, a Warning Event once;
    /// - any other: Ready False, Degraded True, a Warning Event per change of
    ///   the error.
    fn set_conditions_for_error(&mut self) {
        let Some(e) = self.status.last_error.clone() else {
            return;
        };
        let action = e.action.as_deref().unwrap_or("cloud call");
        let request = e
            .request_id
            .as_deref()
            .map(|r| format!(" (request id {r})"))
            .unwrap_or_default();
        let msg = format!("{action} {}: {}{request}", e.code, e.message);
        let progressing = self.status.pending_operation.is_some();
        let ready_reason = if progressing {
            "OperationInProgress"
        } else {
            ready_reason_of(&e.code)
        };
        let class = e.class.as_str();
        let was_degraded = conditions::find(&self.previous.conditions, DEGRADED)
            .is_some_and(|c| c.status == "True");
        let heals = e.class.cloud().is_some_and(ErrorClass::heals_by_retry);
        if heals {
            let since =
                SignedDuration::try_from(self.config.degraded_after).unwrap_or(SignedDuration::MAX);
            let persisting = self.now.duration_since(e.at.0) >= since;
            let begins = !self.previous_retrying();
            if !persisting {
                if begins {
                    self.events
                        .push(EngineEvent::normal(RETRYING, action, msg.clone()));
                }
                let retrying = format!(
                    "{msg}; retrying since {}, Degraded after {}s",
                    e.at.0,
                    self.config.degraded_after.as_secs()
                );
                // Ready stays as it was: a retry is expected to get past it.
                let ready = conditions::find(&self.status.conditions, READY)
                    .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()));
                let (ready, reason, message) =
                    ready.unwrap_or((false, ready_reason.to_string(), msg.clone()));
                let degraded = Desired::new(DEGRADED, false, RETRYING, retrying);
                self.set_conditions_with(ready, &reason, &message, progressing, degraded);
                return;
            }
            let persisted = format!("{msg}; failing since {}", e.at.0);
            if !was_degraded {
                self.events
                    .push(EngineEvent::warning(class, action, persisted.clone()));
            }
            self.set_conditions(
                false,
                ready_reason,
                &msg,
                progressing,
                Some((class, persisted.as_str())),
            );
            return;
        }
        let changed = self
            .previous
            .last_error
            .as_ref()
            .is_none_or(|prev| prev.code != e.code || prev.action.as_deref() != Some(action))
            || !was_degraded;
        if changed {
            self.events
                .push(EngineEvent::warning(class, action, msg.clone()));
        }
        self.set_conditions(
            false,
            ready_reason,
            &msg,
            progressing,
            Some((class, msg.as_str())),
        );
    }

    /// A block or clamp that the spec chose: a Normal Event when it begins or
    /// its message changes, never once per pass.
    fn users_choice(&mut self, reason: &str, message: &str) {
        let ready = conditions::find(&self.previous.conditions, READY);
        let changed = ready.is_none_or(|c| c.reason != reason || c.message != message);
        if changed {
            self.events
                .push(EngineEvent::normal(reason, "Plan", message.to_string()));
        }
    }

    /// `ClusterHealthy` from the cloud's own view of the cluster, and a
    /// Warning Event when it turns unhealthy (or the reason changes).
    fn health(&self, state: &ClusterState) -> Desired {
        match state {
            ClusterState::Running => Desired::new(CLUSTER_HEALTHY, true, "Running", ""),
            ClusterState::Busy(d) => Desired::new(CLUSTER_HEALTHY, true, "Busy", d.clone()),
            ClusterState::Failed(d) => Desired::new(CLUSTER_HEALTHY, false, "Failed", d.clone()),
            ClusterState::Unavailable(d) if d.starts_with("abnormal") => {
                Desired::new(CLUSTER_HEALTHY, false, "Abnormal", d.clone())
            }
            ClusterState::Unavailable(d) => {
                Desired::new(CLUSTER_HEALTHY, false, "Unavailable", d.clone())
            }
        }
    }

    fn set_phase(&mut self, phase: Phase, message: String) {
        self.status.phase = phase;
        self.status.message = Some(message);
    }

    /// Ready, Progressing, Degraded (True with `degraded`'s class and
    /// message, else False) and ClusterHealthy.
    fn set_conditions(
        &mut self,
        ready: bool,
        reason: &str,
        message: &str,
        progressing: bool,
        degraded: Option<(&str, &str)>,
    ) {
        let degraded = match degraded {
            Some((class, msg)) => Desired::new(DEGRADED, true, class, msg),
            None => Desired::new(DEGRADED, false, "AsExpected", ""),
        };
        self.set_conditions_with(ready, reason, message, progressing, degraded);
    }

    fn set_conditions_with(
        &mut self,
        ready: bool,
        reason: &str,
        message: &str,
        progressing: bool,
        degraded: Desired,
    ) {
        // The cloud's view of the cluster: from this pass's observation, else as it was.
        let health = match &self.observed {
            Some(o) => Some(self.health(&o.state)),
            None => conditions::find(&self.status.conditions, CLUSTER_HEALTHY).map(|c| Desired {
                type_: CLUSTER_HEALTHY,
                status: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            }),
        };
        if let Some(h) = health.as_ref().filter(|h| !h.status) {
            let before = conditions::find(&self.previous.conditions, CLUSTER_HEALTHY);
            let announced = self
                .events
                .iter()
                .any(|e| e.reason == h.reason && e.action == "Observe");
            if !announced && before.is_none_or(|c| c.status == "True" || c.reason != h.reason) {
                self.events.push(EngineEvent::warning(
                    &h.reason,
                    "Observe",
                    format!("the cloud reports the cluster {}: {}", h.reason, h.message),
                ));
            }
        }
        let desired = [
            Desired::new(READY, ready, reason, message),
            Desired::new(
                PROGRESSING,
                progressing,
                if progressing { reason } else { "Idle" },
                if progressing { message } else { "" },
            ),
            degraded,
        ];
        let desired: Vec<Desired> = desired.into_iter().chain(health).collect();
        self.status.conditions = conditions::merge(
            &self.status.conditions,
            &desired,
            Some(self.target.generation),
            time(self.now),
        );
    }

    /// Save when anything changed; `write` names the step it records.
    async fn commit(
        &mut self,
        store: &mut dyn StatusStore,
        write: StatusWrite,
    ) -> Result<(), EngineError> {
        self.status.observed_generation = Some(self.target.generation);
        if self.status != self.previous {
            store
                .save(&self.status, write)
                .await
                .map_err(|source| EngineError::WriteStatus { write, source })?;
            self.previous = self.status.clone();
        }
        Ok(())
    }
}

fn phase_of(d: Direction) -> Phase {
    match d {
        Direction::Out => Phase::ScalingOut,
        Direction::In => Phase::ScalingIn,
    }
}

fn verb(d: Direction) -> &'static str {
    match d {
        Direction::Out => "ScaleOut",
        Direction::In => "ScaleIn",
    }
}

/// The event action of an operation's events: the verb and the operation id.
/// Kubernetes folds events with the same reason and action into one series
/// that keeps the first note; the id keeps each operation's events apart.
fn op_action(verb: &str, r: &OperationRecord) -> String {
    format!("{verb} {}", r.id)
}

/// `message`, then the record's request id when the cloud gave one.
fn with_request_id(message: String, r: &OperationRecord) -> String {
    match r.request_id.as_deref() {
        Some(id) => format!("{message} (request id {id})"),
        None => message,
    }
}

fn describe_op(r: &OperationRecord) -> String {
    let what = match r.direction {
        Direction::Out => "add",
        Direction::In => "remove",
    };
    let nodes = if r.node_ids.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.node_ids.join(", "))
    };
    format!(
        "{what} {} {}, {} -> {}{nodes} (operation {})",
        r.count,
        nodes_of(r.group, r.pool.as_deref()),
        r.from_count,
        r.to_count,
        r.id
    )
}

#[cfg(test)]
mod tests;
