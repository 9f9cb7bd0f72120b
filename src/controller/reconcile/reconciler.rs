//! The controller's reconcile: the Kubernetes side of one engine pass.
//!
//! dereference (credentials, duplicate check, cloud client) -> engine pass
//! (validate, observe, plan, write-ahead, execute, record into the status
//! subresource) -> publish the pass's events -> requeue by what happened.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{error, info, warn, Instrument};

use super::backoff::{backs_off, Backoffs, Failure};
use super::clouds::CloudCache;
use super::events::Recorder;
use super::instrumented::InstrumentedCloud;
use super::secrets;
use super::status::{status_patch, Deferred, KubeStatusStore, FIELD_MANAGER};
use crate::controller::accounts::{account_of, Accounts};
use crate::controller::serve::liveness::Liveness;
use crate::controller::serve::metrics::{ErrorLabel, Metrics};
use crate::controller::watch::backlog::{self, Backlog, DeferReason, PassAdmission};
use crate::controller::watch::claims::ClaimIndex;
use crate::controller::watch::ClusterOrInvalid;
use clusterscale_core::api::conditions::{self, Desired};
use clusterscale_core::api::validate::describe;
use clusterscale_core::api::{NodeGroup, Precondition, ScaledCluster, ScaledClusterStatus};
use clusterscale_core::clock::Clock;
use clusterscale_engine::{EngineConfig, EngineError, EngineEvent, EventType, Report, Target};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Shared state of every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub clouds: CloudCache,
    pub clock: Arc<dyn Clock>,
    pub engine: EngineConfig,
    /// Remote target -> claimants, fed by the watch streams: the duplicate-target check.
    pub claims: Arc<ClaimIndex>,
    /// Per-resource exponential backoff of the retryable cloud errors.
    pub backoffs: Backoffs,
    /// Per account, fed by the watch streams: new and changed resources and
    /// overdue polls, ahead of which resyncs wait, and the resyncs' budget slots.
    pub backlog: Arc<Backlog>,
    /// What `/livez` decides on: each pass's outcome goes in.
    pub liveness: Liveness,
    /// CloudAccounts, and the Secret scope: where each cluster's keys come from.
    pub accounts: Arc<Accounts>,
    /// Statuses kept instead of written (an accepted call, progress): see
    /// [`super::status`].
    pub deferred: Arc<Deferred>,
}

/// A failure of the Kubernetes side, named after the step that failed (the
/// engine records cloud errors in status itself).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One of the engine's status writes (it names which).
    #[error(transparent)]
    WriteStatus(EngineError),
    /// The lease fence closed immediately before a cloud call: no call was
    /// made; the process exits as on lease loss.
    #[error(transparent)]
    Fenced(EngineError),
    /// Reading the status of an object that does not deserialize.
    #[error("reading the status of an object that does not deserialize: {0}")]
    ReadInvalidStatus(#[source] kube::Error),
    /// Writing the status of an object that does not deserialize.
    #[error("writing the status of an object that does not deserialize: {0}")]
    WriteInvalidStatus(#[source] kube::Error),
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::WriteStatus { .. } => Error::WriteStatus(e),
            EngineError::FenceClosed => Error::Fenced(e),
        }
    }
}

impl ErrorLabel for Error {
    fn error_label(&self) -> &str {
        self.metric_label()
    }
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            _ if self.is_conflict() => "Conflict",
            Error::WriteStatus(_) => "StatusWrite",
            Error::Fenced(_) => "Fenced",
            Error::ReadInvalidStatus(_) | Error::WriteInvalidStatus(_) => "Kube",
        }
    }

    /// A status write lost a compare-and-swap: nothing was written.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::WriteStatus(e) if e.is_conflict())
    }
}

/// Reconcile one object.
pub async fn reconcile(obj: Arc<ClusterOrInvalid>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    if let Ok(cluster) = &obj.0 {
        if let PassAdmission::Defer {
            after,
            reason,
            warn,
        } = ctx.backlog.decide(cluster, std::time::Instant::now())
        {
            if warn {
                let secret = backlog::account(cluster).secret;
                match reason {
                    DeferReason::Backlog { waiting, overdue } => warn!(
                        %namespace, account_secret = %secret, waiting, overdue,
                        "resyncs deferred: resources of this account wait for their first reconcile (waiting) or their operation's poll (overdue); if this lasts, the fleet is past the account's request budget: split it across accounts or raise --resync-seconds"
                    ),
                    DeferReason::Budget { per_second } => warn!(
                        %namespace, account_secret = %secret, observations_per_second = per_second,
                        "resyncs deferred: this account's resyncs use its whole request budget, so the fleet is past the account's ceiling (observations per second x --resync-seconds) and each resource is resynced less often than --resync-seconds: split the fleet across accounts or raise --resync-seconds"
                    ),
                }
            }
            ctx.metrics.deferred(reason.metric_label());
            return Ok(Action::requeue(after));
        }
    }
    let span = tracing::info_span!("reconcile", namespace = %namespace, scaledcluster = %name);
    let start = std::time::Instant::now();
    let result = async {
        match &obj.0 {
            Ok(cluster) => reconcile_cluster(cluster, &ctx).await,
            Err(invalid) => report_undeserializable(&obj, &invalid.error, &ctx).await,
        }
    }
    .instrument(span)
    .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconcile(outcome, start.elapsed());
    ctx.liveness
        .reconciled(result.is_ok(), std::time::Instant::now());
    if result.is_ok() {
        ctx.metrics.reconciled_at(std::time::SystemTime::now());
    }
    result
}

/// Requeue after a Kubernetes-side failure; at once after a write conflict
/// that a fresh read did not resolve (the pass already ran again on the
/// object read fresh, if it had changed).
pub fn error_policy(_obj: Arc<ClusterOrInvalid>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(error);
    if error.is_conflict() {
        info!(error = %error, "status changed underneath; starting over");
        return Action::requeue(Duration::from_secs(1));
    }
    if matches!(error, Error::Fenced(_)) {
        // The lease's renewal task ends the process within a retry period;
        // until then nothing more is tried for this resource.
        error!(error = %error, "the leader lease no longer covers a cloud write; not writing, exiting as on lease loss");
        return Action::await_change();
    }
    warn!(error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// One pass; if one of its status writes loses the compare-and-swap, read
/// the object fresh from the apiserver (the watch cache may be stale: a
/// half-open watch connection delivers nothing, not even our own last write)
/// and, if its resourceVersion differs from the one the pass started from,
/// run the pass again on it, once. The write-ahead rule holds either way: the
/// second pass's writes are compare-and-swaps on the fresh resourceVersion, and
/// a conflict there goes to `error_policy` as before.
async fn reconcile_cluster(cluster: &ScaledCluster, ctx: &Context) -> Result<Action, Error> {
    match pass(cluster, ctx).await {
        Err(conflict) if conflict.is_conflict() => match read_fresh(cluster, ctx).await {
            Some(fresh) => {
                info!(
                    cached = cluster.metadata.resource_version.as_deref().unwrap_or_default(),
                    fresh = fresh.metadata.resource_version.as_deref().unwrap_or_default(),
                    "status changed underneath; running the pass again on the object read fresh from the apiserver"
                );
                pass(&fresh, ctx).await
            }
            None => Err(conflict),
        },
        other => other,
    }
}

/// `cluster` as the apiserver has it now, if its resourceVersion differs
/// from the cached one (resourceVersions are opaque: compared for equality
/// only). `None` when it is the same or cannot be read.
async fn read_fresh(cluster: &ScaledCluster, ctx: &Context) -> Option<ScaledCluster> {
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<ScaledCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get(&cluster.name_any()).await {
        Ok(fresh) if fresh.metadata.resource_version != cluster.metadata.resource_version => {
            Some(fresh)
        }
        Ok(_) => None,
        Err(e) => {
            warn!(error = %e, "reading the object after a lost compare-and-swap failed");
            None
        }
    }
}

async fn pass(cluster: &ScaledCluster, ctx: &Context) -> Result<Action, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    if cluster.metadata.deletion_timestamp.is_some() {
        // We own nothing in the cloud: deleting the resource leaves the cluster as it is.
        ctx.clouds.forget(&uid);
        ctx.backoffs.reset(&uid);
        ctx.backlog.forget(&uid);
        ctx.metrics.forget(&namespace, &name);
        ctx.deferred.forget(&uid);
        return Ok(Action::await_change());
    }
    let api: Api<ScaledCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut store = KubeStatusStore::new(api, cluster, ctx.deferred.clone());
    let stored = cluster.status.clone().unwrap_or_default();
    let current = ctx.deferred.current(&uid, &stored);
    let target = Target {
        uid: &uid,
        generation: cluster.metadata.generation.unwrap_or(0),
        spec: &cluster.spec,
    };
    // Dereference: the spec's own rules, the same remote cluster claimed twice,
    // the Secret, the client. Any failure is recorded without touching the cloud.
    let violations = crate::cloud::validate(&cluster.spec);
    let blocked = if !violations.is_empty() {
        Some((Precondition::InvalidSpec, describe(&violations)))
    } else {
        ctx.claims.older_claimant(cluster).map(|winner| {
            (
                Precondition::DuplicateTarget,
                format!(
                    "{} is also managed by ScaledCluster {winner}, which is older; this resource will not act until that one is deleted or retargeted",
                    crate::cloud::target_key(&cluster.spec).unwrap_or_default()
                ),
            )
        })
    };
    let cloud = match blocked {
        Some(b) => Err(b),
        None => match ctx
            .accounts
            .signing(&ctx.client, &namespace, &cluster.spec)
            .await
        {
            Err(unresolved) => Err(unresolved),
            Ok(signing) => {
                ctx.backlog.learn(cluster, signing.account_id.as_deref());
                ctx.clouds
                    .get(cluster, &signing, ctx.clock.clone())
                    .map_err(|e| (e.precondition(), e.to_string()))
            }
        },
    };
    let mut report = match cloud {
        Err((reason, message)) => {
            info!(class = reason.as_str(), %message, "not reconciling");
            ctx.metrics.error(&reason);
            let mut report = clusterscale_engine::record_precondition_failure(
                target,
                &current,
                ctx.clock.as_ref(),
                &mut store,
                reason,
                &message,
            )
            .await?;
            // A spec problem waits for a spec change; the others are re-checked
            // (the Secret watch also triggers at once when the Secret appears).
            if !reason.waits_for_spec_change() {
                report.requeue_after = Some(ctx.engine.resync);
            }
            report
        }
        Ok(cloud) => {
            let cloud = InstrumentedCloud::new(cloud, ctx.metrics.clone());
            clusterscale_engine::reconcile(
                target,
                &current,
                &cloud,
                ctx.clock.as_ref(),
                &mut store,
                &ctx.engine,
            )
            .await?
        }
    };
    // The acceptance's Event follows the deferred acceptance.
    if let Some(op) = report.started.as_ref().map(|op| op.id.clone()) {
        let held = report.take_acceptance_events();
        store.hold(&op, held);
    }
    // A long operation's deferred acceptance or progress, once due. A
    // failure loses nothing: it stays deferred, and the next pass tries again.
    if let Err(e) = store.flush_due().await {
        warn!(error = %e, "writing the deferred status failed");
    }
    let (released, merged) = store.take_released();
    for _ in 0..merged {
        ctx.metrics.event("merged");
    }
    let reference = cluster.object_ref(&());
    publish(ctx, reference.clone(), &released);
    publish(ctx, reference, &report.events);
    record_metrics(ctx, cluster, &report);
    let requeue = requeue_after(&ctx.backoffs, &uid, target.generation, &report);
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// When to look again: the engine's delay, grown by the resource's backoff
/// while it keeps failing on the same call with a retryable class (the
/// engine's delay is the floor; see [`super::backoff`] for what one streak is).
fn requeue_after(
    backoffs: &Backoffs,
    uid: &str,
    generation: i64,
    report: &Report,
) -> Option<Duration> {
    match (&report.error, report.requeue_after) {
        (Some(e), Some(floor)) if backs_off(e.class) => {
            let retry = backoffs.failed(
                uid,
                Failure {
                    class: e.class,
                    action: e.action.clone(),
                    floor,
                    generation,
                },
            );
            info!(
                class = e.class.as_str(),
                action = %e.action,
                streak = retry.streak,
                retry_in_ms = retry.delay.as_millis() as u64,
                "backing off"
            );
            Some(retry.delay)
        }
        _ => {
            backoffs.reset(uid);
            report.requeue_after
        }
    }
}

/// Queue the pass's events for the recorder's writer, never waiting for
/// the apiserver. The engine emits each once per transition; the recorder
/// folds repeats into a series.
fn publish(
    ctx: &Context,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    events: &[EngineEvent],
) {
    for e in events {
        let event = Event {
            type_: match e.type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: e.reason.clone(),
            note: Some(truncate(&e.message, 1000)),
            action: e.action.clone(),
            secondary: None,
        };
        ctx.recorder.publish(event, reference.clone());
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn record_metrics(ctx: &Context, cluster: &ScaledCluster, report: &Report) {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let cloud = cluster.spec.cloud();
    let (task, _) = clusterscale_core::plan::desired_task(&cluster.spec);
    let observed = report.observed.as_ref();
    ctx.metrics
        .conditions(&namespace, &name, &report.status.conditions);
    ctx.metrics.paused(
        &namespace,
        &name,
        report.status.phase == clusterscale_core::api::Phase::Paused,
    );
    let observed_at = report.status.observed.as_ref().and_then(|o| o.at.as_ref());
    ctx.metrics
        .observed_at(&namespace, &name, observed_at.map(|t| t.0));
    ctx.metrics.nodes(
        &namespace,
        &name,
        NodeGroup::Core,
        cluster.spec.core.count,
        observed.map(|o| o.core),
    );
    ctx.metrics.nodes(
        &namespace,
        &name,
        NodeGroup::Task,
        task,
        observed.map(|o| o.task),
    );
    let pools: Vec<(&str, i32, Option<i32>)> = cluster
        .spec
        .task_pools
        .iter()
        .map(|p| {
            let (desired, _) = clusterscale_core::plan::desired_pool(p);
            let seen = observed.and_then(|o| o.pools.get(&p.name).copied());
            (p.name.as_str(), desired, seen)
        })
        .collect();
    ctx.metrics.pool_nodes(&namespace, &name, &pools);
    if let Some(e) = &report.error {
        ctx.metrics.error(&e.class);
    }
    if let Some(op) = &report.finished {
        let outcome = op
            .outcome
            .map(|o| format!("{o:?}"))
            .unwrap_or_else(|| "Unknown".into());
        if let Some(cloud) = cloud {
            ctx.metrics.operation(cloud, op.direction, &outcome);
        }
    }
}

/// An object that does not even deserialize (a wrong type stored on an old
/// apiserver, say): report it on the object itself rather than breaking the watch.
async fn report_undeserializable(
    obj: &ClusterOrInvalid,
    error: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let message = format!("the object does not match the ScaledCluster schema: {error}");
    warn!(%message, "invalid object");
    let reason = Precondition::InvalidSpec;
    ctx.metrics.error(&reason);
    let ar = ApiResource::erase::<ScaledCluster>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
    // The watch gives us only the metadata of such an object: read its status
    // so that the conditions keep their transition times and an unchanged
    // report is neither written nor announced again.
    let current = api
        .get_status(&name)
        .await
        .map_err(Error::ReadInvalidStatus)?;
    let current_status = current.data.get("status");
    let current_conditions: Vec<Condition> = current_status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let current_message = current_status
        .and_then(|s| s.get("message"))
        .and_then(|m| m.as_str());
    let conditions = conditions::merge(
        &current_conditions,
        &[
            Desired::new(conditions::READY, false, reason.as_str(), &message),
            Desired::new(conditions::PROGRESSING, false, "Idle", ""),
            Desired::new(conditions::DEGRADED, true, reason.as_str(), &message),
        ],
        obj.meta().generation,
        Time(ctx.clock.now()),
    );
    if current_message == Some(message.as_str()) && current_conditions == conditions {
        return Ok(Action::await_change());
    }
    let status = ScaledClusterStatus {
        observed_generation: obj.meta().generation,
        phase: clusterscale_core::api::Phase::Failed,
        message: Some(message.clone()),
        conditions,
        ..Default::default()
    };
    let patch = status_patch(&name, &status, None);
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::WriteInvalidStatus)?;
    let reference = ObjectRef::<ClusterOrInvalid>::from_obj(obj).erase();
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(ScaledCluster::api_version(&()).into_owned()),
        kind: Some(ScaledCluster::kind(&()).into_owned()),
        name: Some(reference.name),
        namespace: reference.namespace,
        uid: obj.meta().uid.clone(),
        ..Default::default()
    };
    publish(
        ctx,
        reference,
        &[EngineEvent {
            type_: EventType::Warning,
            reason: reason.as_str().into(),
            action: "Validate".into(),
            message,
        }],
    );
    Ok(Action::await_change())
}

/// The ScaledClusters in `stores` that use Secret `namespace/name`: named
/// by their own `credentialsSecretRef`, or by the `secretRef` of the
/// CloudAccount they name.
pub fn clusters_using_secret(
    stores: &[Store<ClusterOrInvalid>],
    accounts: &Accounts,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<ClusterOrInvalid>> {
    let via_accounts: Vec<String> = accounts
        .all()
        .iter()
        .filter(|a| {
            a.spec
                .secret_ref()
                .is_some_and(|s| s.namespace == namespace && s.name == name)
        })
        .map(|a| a.name_any())
        .collect();
    stores
        .iter()
        .flat_map(|s| s.state())
        .filter(|g| {
            let Ok(c) = g.0.as_ref() else { return false };
            let own = g.namespace().as_deref() == Some(namespace)
                && secrets::secret_name(&c.spec).is_some_and(|s| s == name);
            own || account_of(&c.spec).is_some_and(|a| via_accounts.iter().any(|v| v == a))
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::cloud::{CloudError, ErrorClass};

    fn report(error: Option<(ErrorClass, &str)>, requeue_s: Option<u64>) -> Report {
        Report {
            status: Default::default(),
            requeue_after: requeue_s.map(Duration::from_secs),
            events: Vec::new(),
            error: error.map(|(class, action)| CloudError::new(class, action, "Code", "message")),
            started: None,
            finished: None,
            observed: None,
        }
    }

    enum Want {
        /// Backing off: within [base, 2 * base) seconds, still failing.
        Band(u64),
        /// The engine's delay as it is, and the backoff reset.
        Exact(Option<u64>),
    }

    #[test]
    fn requeue_grows_by_streak_and_otherwise_keeps_the_engines_delay() {
        use ErrorClass::{Auth, Throttled, Transient};
        use Want::{Band, Exact};
        let describe = "DescribeInstances";
        let scale = "ScaleOutInstance";
        let table = [
            (
                "first failure: the floor",
                Some((Transient, describe)),
                Some(10),
                1,
                Band(10),
            ),
            (
                "the same call again",
                Some((Transient, describe)),
                Some(10),
                1,
                Band(20),
            ),
            (
                "and again",
                Some((Transient, describe)),
                Some(10),
                1,
                Band(40),
            ),
            (
                "the spec changed",
                Some((Transient, describe)),
                Some(10),
                2,
                Band(10),
            ),
            (
                "again, in the new generation",
                Some((Transient, describe)),
                Some(10),
                2,
                Band(20),
            ),
            (
                "the observation passed, the write failed",
                Some((Transient, scale)),
                Some(10),
                2,
                Band(10),
            ),
            (
                "the write again, throttled",
                Some((Throttled, scale)),
                Some(5),
                2,
                Band(5),
            ),
            (
                "throttled again",
                Some((Throttled, scale)),
                Some(5),
                2,
                Band(10),
            ),
            (
                "not retryable: the class's own delay",
                Some((Auth, describe)),
                Some(600),
                2,
                Exact(Some(600)),
            ),
            (
                "after the reset, the floor",
                Some((Transient, describe)),
                Some(10),
                2,
                Band(10),
            ),
            ("converged: resync", None, Some(300), 2, Exact(Some(300))),
            (
                "again failing",
                Some((Transient, describe)),
                Some(10),
                2,
                Band(10),
            ),
            (
                "nothing proposed: wait for a change",
                Some((Transient, describe)),
                None,
                2,
                Exact(None),
            ),
        ];
        let backoffs = Backoffs::default().with_seed(11);
        for (name, error, requeue_s, generation, want) in table {
            let got = requeue_after(&backoffs, "uid-1", generation, &report(error, requeue_s));
            match want {
                Band(base) => {
                    let base = Duration::from_secs(base);
                    assert!(
                        got.is_some_and(|d| d >= base && d < base * 2),
                        "{name}: {got:?}, want [{base:?}, {:?})",
                        base * 2
                    );
                    assert_eq!(backoffs.len(), 1, "{name}");
                }
                Exact(s) => {
                    assert_eq!(got, s.map(Duration::from_secs), "{name}");
                    assert!(backoffs.is_empty(), "{name}: not reset");
                }
            }
        }
    }
}
