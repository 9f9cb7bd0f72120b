//! Prometheus metrics of the controller. The cloud calls are counted by
//! `reconcile::instrumented::InstrumentedCloud`.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `clusterscale_reconciles_total` | counter | `outcome` |
//! | `clusterscale_reconcile_duration_seconds` | histogram | |
//! | `clusterscale_errors_total` | counter | `class` |
//! | `clusterscale_cloud_calls_total` | counter | `cloud`, `action`, `outcome` |
//! | `clusterscale_cloud_call_duration_seconds` | histogram | `cloud`, `action` |
//! | `clusterscale_nodes` | gauge | `namespace`, `name`, `group`, `pool` (named pools only), `kind` |
//! | `clusterscale_operations_total` | counter | `cloud`, `direction`, `outcome` |
//! | `clusterscale_condition` | gauge | `namespace`, `name`, `type` |
//! | `clusterscale_last_observed_timestamp_seconds` | gauge | `namespace`, `name` |
//! | `clusterscale_paused` | gauge (only while 1) | `namespace`, `name` |
//! | `clusterscale_build_info` | gauge | `version`, `revision` |
//! | `clusterscale_leader` | gauge | |
//! | `clusterscale_backlog` | gauge | |
//! | `clusterscale_events_total` | counter | `outcome` |
//! | `clusterscale_events_queued` | gauge | |
//! | `clusterscale_last_reconcile_timestamp_seconds` | gauge | |
//! | `clusterscale_last_watch_event_timestamp_seconds` | gauge | |
//!
//! The two timestamps are Unix times in seconds (0 until the first one):
//! the last reconcile pass that completed without error, and the last event
//! of a ScaledCluster watch stream (an object, a relist's start or end; the
//! watcher's bookmarks are not events). `time() - ` either is how long it has
//! been; `serve::liveness` fails `/livez` on the same facts.
//!
//! Label values come from small fixed sets (outcomes, [`ErrorClass`] names,
//! cloud kinds, actions), except `namespace`/`name` of `clusterscale_nodes`,
//! whose series are removed with [`Metrics::forget`] when the resource is
//! deleted (and `pool`, the names of `spec.taskPools`, whose series are
//! removed when the pool leaves the spec). Core and the default Task pool
//! have no `pool` label, so their series are those of before pools existed;
//! a named pool's are `group="task",pool="<name>"`.
//!
//! The process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, ...) are those of the other clients' process
//! collectors ([`process`]).
//!
//! `clusterscale_nodes`, `clusterscale_condition` and
//! `clusterscale_last_observed_timestamp_seconds` have series per resource
//! (four, four and one each); `--per-resource-metrics=false` drops them all
//! for fleets whose scrape or series budget they would strain. They are not kept as `Family`s,
//! which hold a map entry and a copy of every label value per series, but as
//! one record per resource ([`resources`]), written out as the same series
//! on each scrape.

mod process;
mod resources;

use resources::ResourceGauges;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use clusterscale_core::api::{CloudKind, Direction, FailureClass, NodeGroup, Precondition};
use clusterscale_core::cloud::ErrorClass;

/// Content type of [`Metrics::encode`]'s output (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `action` label values of the cloud call metrics.
pub mod action {
    pub const OBSERVE: &str = "observe";
    pub const SCALE_OUT: &str = "scale_out";
    pub const SCALE_IN: &str = "scale_in";
    pub const OPERATION_STATUS: &str = "operation_status";
}

/// `outcome` label value of a successful cloud call.
pub const OK: &str = "ok";

/// `outcome` label values of `clusterscale_events_total`.
/// `merged`: an operation's `ScaleOutStarted`/`ScaleInStarted` not
/// written because the operation ended before its acceptance was; the
/// outcome's Event names the same request id.
pub const EVENT_OUTCOMES: [&str; 5] = ["written", "folded", "merged", "dropped", "failed"];

/// Buckets of a reconcile's duration, in seconds (a pass makes one to three
/// cloud calls and a status write).
const RECONCILE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of one cloud call's duration, in seconds.
const CLOUD_CALL_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

/// The commit the binary was built from (`build.rs`: `CLUSTERSCALE_REVISION`,
/// else `git rev-parse`), or `unknown`.
pub const REVISION: &str = env!("CLUSTERSCALE_REVISION");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudCallLabels {
    cloud: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloudActionLabels {
    cloud: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    cloud: String,
    direction: String,
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn cloud_call_histogram() -> Histogram {
    Histogram::new(CLOUD_CALL_BUCKETS)
}

struct Inner {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_duration: Histogram,
    errors: Family<ClassLabels, Counter>,
    cloud_calls: Family<CloudCallLabels, Counter>,
    cloud_call_duration: HistogramFamily<CloudActionLabels>,
    /// `clusterscale_nodes` and `clusterscale_condition`.
    resources: Arc<ResourceGauges>,
    operations: Family<OperationLabels, Counter>,
    leader: Gauge,
    backlog: Gauge,
    events: Family<OutcomeLabels, Counter>,
    events_queued: Gauge,
    last_reconcile: Gauge<f64, AtomicU64>,
    last_watch_event: Gauge<f64, AtomicU64>,
    /// The length of the last scrape's text, to size the next one's buffer.
    last_scrape: AtomicUsize,
    /// The length of the last gzip scrape, to size the next one.
    last_scrape_gzip: AtomicUsize,
    /// Whether the per-resource series (`clusterscale_nodes`,
    /// `clusterscale_condition`, `clusterscale_last_observed_timestamp_seconds`)
    /// are kept (`--per-resource-metrics`).
    per_resource: AtomicBool,
}

/// The `class` label of `clusterscale_errors_total`: a typed class, never a bare string.
pub trait ErrorLabel {
    fn error_label(&self) -> &str;
}

impl ErrorLabel for ErrorClass {
    fn error_label(&self) -> &str {
        self.as_str()
    }
}

impl ErrorLabel for Precondition {
    fn error_label(&self) -> &str {
        self.as_str()
    }
}

impl ErrorLabel for FailureClass {
    fn error_label(&self) -> &str {
        self.as_str()
    }
}

/// The controller's metrics. Cheap to clone; clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (and no series yet,
    /// except the two unlabelled ones).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "clusterscale_reconciles",
            "Reconcile passes, by outcome",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "clusterscale_reconcile_duration",
            "Duration of one reconcile pass",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        // Every outcome and class from 0, not from its first occurrence: a
        // rate or a ratio over them (the chart's alerts, the dashboard) then
        // has series to work on before anything went wrong.
        for outcome in ["ok", "error", "deferred_backlog", "deferred_budget"] {
            let _ = reconciles.get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            });
        }
        let errors = Family::<ClassLabels, Counter>::default();
        let classes = ErrorClass::ALL.iter().map(|c| c.as_str());
        for class in classes.chain(Precondition::ALL.iter().map(|p| p.as_str())) {
            let _ = errors.get_or_create(&ClassLabels {
                class: class.to_string(),
            });
        }
        registry.register(
            "clusterscale_errors",
            "Reconcile errors, by class (cloud error class or controller error)",
            errors.clone(),
        );
        let cloud_calls = Family::<CloudCallLabels, Counter>::default();
        registry.register(
            "clusterscale_cloud_calls",
            "Cloud API calls, by cloud, action and outcome (ok or error class)",
            cloud_calls.clone(),
        );
        let cloud_call_duration: HistogramFamily<CloudActionLabels> =
            Family::new_with_constructor(cloud_call_histogram);
        registry.register_with_unit(
            "clusterscale_cloud_call_duration",
            "Duration of one cloud call, retries and rate-limit waits included",
            Unit::Seconds,
            cloud_call_duration.clone(),
        );
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "clusterscale_operations",
            "Scale operations, by cloud, direction and outcome",
            operations.clone(),
        );
        // clusterscale_nodes, clusterscale_condition and
        // clusterscale_last_observed_timestamp_seconds.
        let resources = Arc::new(ResourceGauges::default());
        registry.register_collector(Box::new(resources.clone()));
        registry.register_collector(Box::new(process::ProcessCollector));
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                revision: REVISION.to_string(),
            })
            .set(1);
        registry.register(
            "clusterscale_build_info",
            "1, labelled with the operator's version and the commit it was built from",
            build_info,
        );
        let leader = Gauge::default();
        registry.register(
            "clusterscale_leader",
            "1 while this replica is the leader (or leader election is off), else 0",
            leader.clone(),
        );
        let backlog = Gauge::default();
        registry.register(
            "clusterscale_backlog",
            "Resources whose current generation waits for its first reconcile (new or changed); while an account has some, its resyncs wait",
            backlog.clone(),
        );
        let events = Family::<OutcomeLabels, Counter>::default();
        for outcome in EVENT_OUTCOMES {
            let _ = events.get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            });
        }
        registry.register(
            "clusterscale_events",
            "Events handed to the recorder, by outcome: written (a create or a series patch), folded (into a waiting write of the same series), dropped (the queue was full), failed (the apiserver refused the write)",
            events.clone(),
        );
        let events_queued = Gauge::default();
        registry.register(
            "clusterscale_events_queued",
            "Event writes waiting for the recorder's writer",
            events_queued.clone(),
        );
        let last_reconcile = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "clusterscale_last_reconcile_timestamp",
            "Unix time of the last reconcile pass that completed without error (0: none yet)",
            Unit::Seconds,
            last_reconcile.clone(),
        );
        let last_watch_event = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "clusterscale_last_watch_event_timestamp",
            "Unix time of the last event of a ScaledCluster watch stream (0: none yet)",
            Unit::Seconds,
            last_watch_event.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                reconciles,
                reconcile_duration,
                errors,
                cloud_calls,
                cloud_call_duration,
                resources,
                operations,
                leader,
                backlog,
                events,
                events_queued,
                last_reconcile,
                last_watch_event,
                last_scrape: AtomicUsize::new(0),
                last_scrape_gzip: AtomicUsize::new(0),
                per_resource: AtomicBool::new(true),
            }),
        }
    }

    /// A resync was deferred (for its account's backlog or its budget,
    /// `reason` says which: `deferred_backlog`, `deferred_budget`): counted
    /// as a reconcile with that outcome, but not timed (it did no work).
    pub fn deferred(&self, reason: &str) {
        self.inner
            .reconciles
            .get_or_create(&OutcomeLabels {
                outcome: reason.to_string(),
            })
            .inc();
    }

    /// The backlog's size (`watch::backlog::Backlog::waiting`).
    pub fn set_backlog(&self, waiting: usize) {
        self.inner.backlog.set(waiting as i64);
    }

    /// One Event handed to the recorder ended as `outcome`, one of
    /// [`EVENT_OUTCOMES`].
    pub fn event(&self, outcome: &str) {
        self.inner
            .events
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Event writes waiting.
    pub fn set_events_queued(&self, waiting: usize) {
        self.inner.events_queued.set(waiting as i64);
    }

    /// One reconcile pass ended with `outcome` (e.g. `ok`, `requeue`,
    /// `error`) after `duration`.
    pub fn reconcile(&self, outcome: &str, duration: Duration) {
        let i = &self.inner;
        i.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        i.reconcile_duration.observe(duration.as_secs_f64());
    }

    /// A reconcile failed with an error of `class` (an [`ErrorClass`], a
    /// [`Precondition`](clusterscale_core::api::Precondition), or the controller's own).
    pub fn error(&self, class: &(impl ErrorLabel + ?Sized)) {
        self.inner
            .errors
            .get_or_create(&ClassLabels {
                class: class.error_label().to_string(),
            })
            .inc();
    }

    /// One cloud call of `action` ended with `outcome` (`ok` or the error
    /// class) after `duration`.
    pub fn cloud_call(&self, cloud: CloudKind, action: &str, outcome: &str, duration: Duration) {
        let i = &self.inner;
        i.cloud_calls
            .get_or_create(&CloudCallLabels {
                cloud: cloud.as_str().to_string(),
                action: action.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        i.cloud_call_duration
            .get_or_create(&CloudActionLabels {
                cloud: cloud.as_str().to_string(),
                action: action.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Keep (the default) or drop the per-resource series. Dropping them
    /// removes those already kept.
    pub fn set_per_resource(&self, on: bool) {
        self.inner.per_resource.store(on, Ordering::Relaxed);
        if !on {
            self.inner.resources.clear();
        }
    }

    fn per_resource(&self) -> bool {
        self.inner.per_resource.load(Ordering::Relaxed)
    }

    /// When the resource's cloud cluster was last observed successfully
    /// (`status.observed.at`); `None` keeps the last value.
    pub fn observed_at(&self, namespace: &str, name: &str, at: Option<jiff::Timestamp>) {
        let Some(at) = at else { return };
        if !self.per_resource() {
            return;
        }
        self.inner.resources.update(namespace, name, |r| {
            r.last_observed = Some(at.as_second());
        });
    }

    /// Whether the resource is held by its spec (phase Paused: `paused` or
    /// `dryRun`); a held resource's Ready False is its user's choice.
    pub fn paused(&self, namespace: &str, name: &str, paused: bool) {
        if !self.per_resource() {
            return;
        }
        if paused {
            self.inner
                .resources
                .update(namespace, name, |r| r.paused = true);
        } else {
            self.inner
                .resources
                .update_existing(namespace, name, |r| r.paused = false);
        }
    }

    /// The desired and observed node counts of one group of one resource.
    /// `observed` is `None` when the cluster could not be read; the observed
    /// series is then removed rather than left at a stale value.
    pub fn nodes(
        &self,
        namespace: &str,
        name: &str,
        group: NodeGroup,
        desired: i32,
        observed: Option<i32>,
    ) {
        if !self.per_resource() {
            return;
        }
        self.inner.resources.update(namespace, name, |r| {
            r.groups[resources::group_index(group)] = resources::Counts {
                desired: Some(desired),
                observed,
            };
        });
    }

    /// The desired and observed node counts of each named pool of one
    /// resource (`(pool, desired, observed)`); the series of a pool no
    /// longer listed are removed.
    pub fn pool_nodes(&self, namespace: &str, name: &str, pools: &[(&str, i32, Option<i32>)]) {
        if !self.per_resource() {
            return;
        }
        let set = |r: &mut resources::Resource| {
            r.pools
                .retain(|known, _| pools.iter().any(|(p, ..)| **p == **known));
            for (pool, desired, observed) in pools {
                let counts = resources::Counts {
                    desired: Some(*desired),
                    observed: *observed,
                };
                match r.pools.get_mut(*pool) {
                    Some(c) => *c = counts,
                    None => {
                        r.pools.insert((*pool).into(), counts);
                    }
                }
            }
        };
        if pools.is_empty() {
            // Nothing to add: a resource without a record keeps none.
            self.inner.resources.update_existing(namespace, name, set);
        } else {
            self.inner.resources.update(namespace, name, set);
        }
    }

    /// The resource's conditions, as `clusterscale_condition{type}` 1 (True)
    /// or 0. A type not listed keeps its series (until [`Metrics::forget`]).
    pub fn conditions(
        &self,
        namespace: &str,
        name: &str,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ) {
        if conditions.is_empty() || !self.per_resource() {
            return;
        }
        self.inner.resources.update(namespace, name, |r| {
            for c in conditions {
                let status = c.status == "True";
                match resources::CONDITION_TYPES
                    .iter()
                    .position(|t| *t == c.type_)
                {
                    Some(i) => r.conditions[i] = Some(status),
                    None => match r.other_conditions.iter_mut().find(|(t, _)| **t == *c.type_) {
                        Some((_, s)) => *s = status,
                        None => r.other_conditions.push((c.type_.as_str().into(), status)),
                    },
                }
            }
        });
    }

    /// Removes every series of a deleted resource: its node counts (pools
    /// included) and its conditions.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.inner.resources.remove(namespace, name);
    }

    /// A scale operation in `direction` ended (or was submitted) with
    /// `outcome` (e.g. `submitted`, `succeeded`, `failed`).
    pub fn operation(&self, cloud: CloudKind, direction: Direction, outcome: &str) {
        self.inner
            .operations
            .get_or_create(&OperationLabels {
                cloud: cloud.as_str().to_string(),
                direction: direction.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A reconcile pass completed without error at `at`.
    pub fn reconciled_at(&self, at: SystemTime) {
        self.inner.last_reconcile.set(unix_seconds(at));
    }

    /// A ScaledCluster watch stream delivered an event at `at`.
    pub fn watch_event_at(&self, at: SystemTime) {
        self.inner.last_watch_event.set(unix_seconds(at));
    }

    /// Whether this replica leads (1) or not (0).
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// [`Metrics::encode`], gzip-compressed as it is encoded: the text is
    /// never held whole (about 6 MB at 10,000 resources, where the
    /// compressed scrape is about a tenth of that). Prometheus asks for gzip.
    pub fn encode_gzip(&self) -> Vec<u8> {
        let last = self.inner.last_scrape_gzip.load(Ordering::Relaxed);
        let out = Vec::with_capacity(last + last / 16);
        let mut gzip = Gzip(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::fast(),
        ));
        if let Err(e) = prometheus_client::encoding::text::encode(&mut gzip, &self.inner.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        match gzip.0.finish() {
            Ok(out) => {
                self.inner
                    .last_scrape_gzip
                    .store(out.len(), Ordering::Relaxed);
                out
            }
            // Writing to a Vec cannot fail.
            Err(e) => {
                tracing::error!(error = %e, "compressing metrics failed");
                Vec::new()
            }
        }
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]),
    /// ending with `# EOF`.
    pub fn encode(&self) -> String {
        // At 10,000 resources the text is about 6 MB. Sized from the last
        // scrape (the first one counts its length in a pass that keeps
        // nothing), it is written into one buffer of about its size rather
        // than through a doubling one, up to twice as large.
        let last = self.inner.last_scrape.load(Ordering::Relaxed);
        let capacity = if last > 0 {
            last + last / 16
        } else {
            let mut length = Length(0);
            let _ = prometheus_client::encoding::text::encode(&mut length, &self.inner.registry);
            length.0
        };
        let mut out = String::with_capacity(capacity);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            // Writing to a String cannot fail; a failing metric encoder
            // would be a bug, not a reason to fail the scrape outright.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        self.inner.last_scrape.store(out.len(), Ordering::Relaxed);
        out
    }
}

/// A text writer into a gzip stream.
struct Gzip(flate2::write::GzEncoder<Vec<u8>>);

impl std::fmt::Write for Gzip {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        std::io::Write::write_all(&mut self.0, s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

/// A writer that only counts what it is given.
struct Length(usize);

impl std::fmt::Write for Length {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The value of the sample line of `text` that starts with `series `
/// (exact series name and labels), if any.
#[cfg(test)]
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(
        type_: &str,
        status: &str,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "r".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    const FAMILIES: [&str; 12] = [
        "clusterscale_reconciles",
        "clusterscale_reconcile_duration_seconds",
        "clusterscale_errors",
        "clusterscale_cloud_calls",
        "clusterscale_cloud_call_duration_seconds",
        "clusterscale_nodes",
        "clusterscale_condition",
        "clusterscale_operations",
        "clusterscale_leader",
        "clusterscale_backlog",
        "clusterscale_last_reconcile_timestamp_seconds",
        "clusterscale_last_watch_event_timestamp_seconds",
    ];

    #[test]
    fn fresh_registry_has_unlabelled_metrics_and_eof() {
        // Labelled families appear with their first series; the two
        // unlabelled metrics are there from the start.
        let text = Metrics::new().encode();
        assert!(text.contains("# TYPE clusterscale_reconcile_duration_seconds histogram"));
        assert!(text.contains("# UNIT clusterscale_reconcile_duration_seconds seconds"));
        assert!(text.contains("# TYPE clusterscale_leader gauge"));
        assert_eq!(sample(&text, "clusterscale_leader"), Some(0.0));
        for name in [
            "clusterscale_last_reconcile_timestamp_seconds",
            "clusterscale_last_watch_event_timestamp_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{text}");
            assert!(text.contains(&format!("# UNIT {name} seconds")), "{text}");
            assert_eq!(sample(&text, name), Some(0.0), "{name}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn build_info_and_the_process_are_there_from_the_start() {
        let text = Metrics::new().encode();
        let build = format!(
            "clusterscale_build_info{{version=\"{}\",revision=\"{REVISION}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &build), Some(1.0), "{text}");
        assert!(!REVISION.is_empty());
        assert!(
            text.contains("# TYPE process_cpu_seconds counter"),
            "{text}"
        );
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
            "process_start_time_seconds",
        ] {
            let v = sample(&text, name).unwrap_or_else(|| panic!("no {name}: {text}"));
            assert!(v >= 0.0, "{name} {v}");
        }
        assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    }

    #[test]
    fn the_last_observation_is_per_resource_and_can_be_turned_off() {
        let m = Metrics::new();
        let at = jiff::Timestamp::from_second(1_700_000_123).unwrap();
        m.observed_at("ns-a", "x", Some(at));
        m.observed_at("ns-b", "x", Some(at + jiff::SignedDuration::from_secs(5)));
        m.observed_at("ns-b", "y", None);
        m.conditions("ns-a", "x", &[condition("Ready", "True")]);
        let text = m.encode();
        assert!(
            text.contains("# TYPE clusterscale_last_observed_timestamp_seconds gauge"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "clusterscale_last_observed_timestamp_seconds{namespace=\"ns-a\",name=\"x\"}"
            ),
            Some(1_700_000_123.0)
        );
        assert_eq!(
            sample(
                &text,
                "clusterscale_last_observed_timestamp_seconds{namespace=\"ns-b\",name=\"x\"}"
            ),
            Some(1_700_000_128.0)
        );
        assert!(
            !text.contains("name=\"y\""),
            "no observation, no series: {text}"
        );
        m.set_per_resource(false);
        m.observed_at("ns-a", "x", Some(at));
        m.conditions("ns-a", "x", &[condition("Ready", "True")]);
        m.nodes("ns-a", "x", NodeGroup::Core, 3, Some(3));
        let text = m.encode();
        for family in [
            "clusterscale_last_observed_timestamp_seconds",
            "clusterscale_condition",
            "clusterscale_nodes",
        ] {
            assert!(!text.contains(family), "{family} is per resource: {text}");
        }
        assert!(text.contains("clusterscale_build_info"));
    }

    #[test]
    fn liveness_timestamps_are_unix_seconds() {
        let m = Metrics::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        m.reconciled_at(at);
        m.watch_event_at(at + Duration::from_secs(2));
        let text = m.encode();
        assert_eq!(
            sample(&text, "clusterscale_last_reconcile_timestamp_seconds"),
            Some(1_700_000_000.5)
        );
        assert_eq!(
            sample(&text, "clusterscale_last_watch_event_timestamp_seconds"),
            Some(1_700_000_002.5)
        );
    }

    /// Every series the chart's Grafana dashboard queries is one the operator
    /// exports (after one sample of each family), and the dashboard shows
    /// each family the issue asks for.
    #[test]
    fn dashboard_queries_only_exported_metrics() {
        let m = Metrics::new();
        m.reconcile("ok", Duration::from_millis(3));
        m.error(&ErrorClass::Throttled);
        m.cloud_call(
            CloudKind::Huawei,
            action::OBSERVE,
            "ok",
            Duration::from_millis(50),
        );
        m.nodes("ops", "emr-a", NodeGroup::Core, 3, Some(3));
        m.conditions("ops", "emr-a", &[condition("Ready", "True")]);
        m.observed_at("ops", "emr-a", Some(jiff::Timestamp::UNIX_EPOCH));
        m.operation(CloudKind::Tencent, Direction::Out, "succeeded");
        let exported: std::collections::BTreeSet<String> = m
            .encode()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/clusterscale/files/dashboard.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard"))
                .expect("the dashboard is JSON");
        let mut queried = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                let mut rest = expr;
                while let Some(at) = rest.find("clusterscale_") {
                    let name: String = rest[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    rest = &rest[at + name.len()..];
                    queried.insert(name);
                }
            }
        }
        let unknown: Vec<_> = queried.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries unexported series {unknown:?}; exported: {exported:?}"
        );
        for wanted in [
            "clusterscale_nodes",
            "clusterscale_operations_total",
            "clusterscale_errors_total",
            "clusterscale_reconcile_duration_seconds_bucket",
            "clusterscale_cloud_call_duration_seconds_bucket",
            "clusterscale_leader",
            "clusterscale_last_reconcile_timestamp_seconds",
            "clusterscale_last_watch_event_timestamp_seconds",
            "clusterscale_condition",
            "clusterscale_last_observed_timestamp_seconds",
            "clusterscale_build_info",
        ] {
            assert!(
                queried.contains(wanted),
                "the dashboard does not show {wanted}"
            );
        }
    }

    #[test]
    fn encode_contains_recorded_series() {
        let m = Metrics::new();
        m.reconcile("ok", Duration::from_millis(30));
        m.reconcile("ok", Duration::from_millis(70));
        m.reconcile("error", Duration::from_secs(2));
        m.error(&ErrorClass::Throttled);
        m.cloud_call(
            CloudKind::Tencent,
            action::SCALE_OUT,
            "ok",
            Duration::from_millis(300),
        );
        m.nodes("ops", "emr-a", NodeGroup::Task, 5, Some(3));
        m.conditions("ops", "emr-a", &[condition("Ready", "True")]);
        m.operation(CloudKind::Huawei, Direction::In, "succeeded");
        m.set_leader(true);
        m.reconciled_at(SystemTime::now());
        m.watch_event_at(SystemTime::now());
        let text = m.encode();
        for name in FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} in {text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name} help");
        }

        assert_eq!(
            sample(&text, r#"clusterscale_reconciles_total{outcome="ok"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"clusterscale_reconciles_total{outcome="error"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "clusterscale_reconcile_duration_seconds_count"),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_reconcile_duration_seconds_bucket{le="0.1"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"clusterscale_errors_total{class="Throttled"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_cloud_calls_total{cloud="tencent",action="scale_out",outcome="ok"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_cloud_call_duration_seconds_count{cloud="tencent",action="scale_out"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_nodes{namespace="ops",name="emr-a",group="task",kind="desired"}"#
            ),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_nodes{namespace="ops",name="emr-a",group="task",kind="observed"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_operations_total{cloud="huawei",direction="in",outcome="succeeded"}"#
            ),
            Some(1.0)
        );
        assert_eq!(sample(&text, "clusterscale_leader"), Some(1.0));
        m.set_leader(false);
        assert_eq!(sample(&m.encode(), "clusterscale_leader"), Some(0.0));
    }

    #[test]
    fn named_pools_have_a_pool_label_and_leave_with_the_spec() {
        let m = Metrics::new();
        m.nodes("ops", "emr-a", NodeGroup::Task, 2, Some(2));
        m.pool_nodes("ops", "emr-a", &[("batch", 2, Some(1)), ("spot", 10, None)]);
        let text = m.encode();
        // The default pool's series is as it was before pools existed.
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_nodes{namespace="ops",name="emr-a",group="task",kind="desired"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_nodes{namespace="ops",name="emr-a",group="task",pool="batch",kind="observed"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_nodes{namespace="ops",name="emr-a",group="task",pool="spot",kind="desired"}"#
            ),
            Some(10.0)
        );
        assert!(!text.contains(r#"pool="spot",kind="observed""#), "{text}");
        // spot leaves the spec: its series go, batch's stay.
        m.pool_nodes("ops", "emr-a", &[("batch", 2, Some(2))]);
        let text = m.encode();
        assert!(!text.contains(r#"pool="spot""#), "{text}");
        assert!(
            text.contains(r#"pool="batch",kind="observed"} 2"#),
            "{text}"
        );
        m.forget("ops", "emr-a");
        assert!(!m.encode().contains("emr-a"));
    }

    /// The per-resource records are written out as exactly the lines that
    /// the two `Family`s they replace wrote for the same calls (the same
    /// name, help, labels in the same order, and values).
    #[test]
    fn per_resource_series_are_those_of_the_families_they_replace() {
        let m = Metrics::new();
        m.nodes("ops", "emr-a", NodeGroup::Core, 3, Some(3));
        m.nodes("ops", "emr-a", NodeGroup::Task, 5, None);
        m.pool_nodes("ops", "emr-a", &[("batch", 2, Some(1)), ("spot", 4, None)]);
        m.nodes("dev", "emr-b", NodeGroup::Core, 4, Some(4));
        m.nodes("dev", "emr-b", NodeGroup::Task, 0, Some(0));
        m.conditions(
            "ops",
            "emr-a",
            &[
                condition("Ready", "False"),
                condition("Degraded", "True"),
                condition("Custom", "True"),
            ],
        );
        m.conditions("dev", "emr-b", &[condition("Ready", "True")]);
        // Progressing is set, then the next pass does not list it: it stays.
        m.conditions("dev", "emr-b", &[condition("Progressing", "True")]);
        m.conditions("dev", "emr-b", &[condition("Ready", "True")]);

        let mut reference = Registry::default();
        let nodes = Family::<Vec<(String, String)>, Gauge>::default();
        let conditions = Family::<Vec<(String, String)>, Gauge>::default();
        reference.register(resources::NODES, resources::NODES_HELP, nodes.clone());
        reference.register(
            resources::CONDITION,
            resources::CONDITION_HELP,
            conditions.clone(),
        );
        let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (ns, name, group, pool, kind, v) in [
            ("ops", "emr-a", "core", None, "desired", 3),
            ("ops", "emr-a", "core", None, "observed", 3),
            ("ops", "emr-a", "task", None, "desired", 5),
            ("ops", "emr-a", "task", Some("batch"), "desired", 2),
            ("ops", "emr-a", "task", Some("batch"), "observed", 1),
            ("ops", "emr-a", "task", Some("spot"), "desired", 4),
            ("dev", "emr-b", "core", None, "desired", 4),
            ("dev", "emr-b", "core", None, "observed", 4),
            ("dev", "emr-b", "task", None, "desired", 0),
            ("dev", "emr-b", "task", None, "observed", 0),
        ] {
            let mut pairs = vec![("namespace", ns), ("name", name), ("group", group)];
            if let Some(p) = pool {
                pairs.push(("pool", p));
            }
            pairs.push(("kind", kind));
            nodes.get_or_create(&labels(&pairs)).set(v);
        }
        for (ns, name, type_, v) in [
            ("ops", "emr-a", "Ready", 0),
            ("ops", "emr-a", "Degraded", 1),
            ("ops", "emr-a", "Custom", 1),
            ("dev", "emr-b", "Ready", 1),
            ("dev", "emr-b", "Progressing", 1),
        ] {
            let pairs = [("namespace", ns), ("name", name), ("type", type_)];
            conditions.get_or_create(&labels(&pairs)).set(v);
        }
        let mut expected = String::new();
        prometheus_client::encoding::text::encode(&mut expected, &reference).expect("encodes");

        let ours = |text: &str| -> Vec<String> {
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| {
                    [resources::NODES, resources::CONDITION]
                        .iter()
                        .any(|f| l.contains(&format!("{f} ")) || l.contains(&format!("{f}{{")))
                })
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        let got = ours(&m.encode());
        assert_eq!(got, ours(&expected));
        assert_eq!(got.len(), 4 + 10 + 5, "{got:#?}");

        // A deleted resource leaves no series, whatever its condition types.
        m.forget("ops", "emr-a");
        m.forget("dev", "emr-b");
        assert!(ours(&m.encode()).is_empty(), "{}", m.encode());
        // And a later pass without pools does not bring a record back.
        m.pool_nodes("ops", "emr-a", &[]);
        assert!(ours(&m.encode()).is_empty(), "{}", m.encode());
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.nodes("ops", "a\"b\\c", NodeGroup::Core, 3, Some(3));
        let text = m.encode();
        assert!(
            text.contains(r#"name="a\"b\\c""#),
            "quotes and backslashes escaped: {text}"
        );
    }

    #[test]
    fn unknown_observed_count_drops_the_series() {
        let m = Metrics::new();
        m.nodes("ops", "emr-a", NodeGroup::Core, 4, Some(3));
        m.nodes("ops", "emr-a", NodeGroup::Core, 4, None);
        let text = m.encode();
        assert!(text.contains(r#"group="core",kind="desired"} 4"#));
        assert!(!text.contains(r#"kind="observed""#), "{text}");
    }

    #[test]
    fn forget_removes_only_that_resources_gauges() {
        let m = Metrics::new();
        for group in [NodeGroup::Core, NodeGroup::Task] {
            m.nodes("ops", "emr-a", group, 3, Some(3));
            m.nodes("ops", "emr-b", group, 4, Some(4));
        }
        let condition =
            |type_: &str, status: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: type_.into(),
                status: status.into(),
                reason: "r".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
            };
        let both = [condition("Ready", "False"), condition("Degraded", "True")];
        m.conditions("ops", "emr-a", &both);
        m.conditions("ops", "emr-b", &both);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_condition{namespace="ops",name="emr-a",type="Degraded"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_condition{namespace="ops",name="emr-a",type="Ready"}"#
            ),
            Some(0.0)
        );
        m.forget("ops", "emr-a");
        let text = m.encode();
        assert!(!text.contains(r#"name="emr-a""#), "{text}");
        assert_eq!(text.matches(r#"name="emr-b""#).count(), 6);
        // Forgetting something unknown is harmless.
        m.forget("nowhere", "nothing");
    }
}
