//! The engine's status store in Kubernetes: the `status` subresource,
//! written with server-side apply under one field manager.
//!
//! Measured and declined: a JSON patch (`replace` of the resourceVersion,
//! `add` of `/status`) instead of the apply. In a Go pprof of the apiserver
//! at 10,000 resources (`cargo bench --bench scale`, docs/benchmarks.md) the
//! apply's patch step was 21% of the apiserver's CPU and the JSON patch's
//! 16%, but the apiserver's CPU over the whole convergence moved from 212 s
//! to 210 s and all-Ready not at all: either way it decodes, validates and
//! re-encodes the whole object and updates managedFields.
//!
//! Two writes per operation, the two crash safety needs: the write-ahead
//! record before the cloud call, and the outcome after it. The writes the
//! engine calls deferrable ([`StatusWrite::deferrable`]: the call's
//! acceptance, a running operation's progress) are kept in [`Deferred`]
//! instead, and the next pass starts from them when the stored status is
//! still the one they were made on; they reach the apiserver with the next
//! write, or on their own once they are [`PROGRESS_EVERY`] old, so that a
//! long operation still shows its request id and progress. A crash loses
//! them, which is a crash between the call and its acceptance's write: the
//! resolver tells accepted from not by observing the cloud.
//!
//! The acceptance's Event (`ScaleOutStarted`) is held with the deferred
//! acceptance ([`KubeStatusStore::hold`]) and follows it: published when a
//! write shows the operation still running, dropped when the write is the
//! operation's outcome, whose Event names the same request id. So an
//! operation that ends within [`PROGRESS_EVERY`] has one Event, and a long
//! one has both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde_json::json;

use clusterscale_core::api::{scale_selector, ScaledCluster, ScaledClusterStatus};
use clusterscale_engine::{EngineEvent, StatusStore, StatusWrite, StoreError};

/// How long a deferred status may wait before it is written on its own.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// A status kept instead of written, and the stored status it was made on.
#[derive(Clone, Debug)]
struct Kept {
    base: ScaledClusterStatus,
    status: ScaledClusterStatus,
    since: Instant,
    /// The acceptance's Events, and the operation they are about.
    held: Option<Held>,
}

/// Events held with a deferred acceptance.
#[derive(Clone, Debug)]
struct Held {
    operation: String,
    events: Vec<EngineEvent>,
}

/// The deferred statuses of the fleet, by resource uid: at most one per
/// resource with an operation in flight, dropped at its next write.
#[derive(Debug)]
pub struct Deferred {
    kept: Mutex<HashMap<String, Kept>>,
    /// How long a deferred status may wait ([`PROGRESS_EVERY`]).
    every: Duration,
}

impl Default for Deferred {
    fn default() -> Self {
        Self::writing_after(PROGRESS_EVERY)
    }
}

impl Deferred {
    /// Deferred statuses that are written on their own once `every` old.
    pub fn writing_after(every: Duration) -> Self {
        Self {
            kept: Mutex::default(),
            every,
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status a pass of `uid` starts from: the deferred one when the
    /// stored status is still the one it was made on, else the stored one.
    pub fn current(&self, uid: &str, stored: &ScaledClusterStatus) -> ScaledClusterStatus {
        match self.kept().get(uid) {
            Some(k) if &k.base == stored => k.status.clone(),
            _ => stored.clone(),
        }
    }

    /// Statuses waiting to be written.
    pub fn len(&self) -> usize {
        self.kept().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.kept().is_empty()
    }

    /// Drop the deferred status of a deleted resource.
    pub fn forget(&self, uid: &str) {
        self.kept().remove(uid);
    }
}

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "clusterscale";

/// Writes one resource's status. The engine calls `save` only when the
/// status changed, and before every cloud call (the write-ahead record).
///
/// Every write is a compare-and-swap on the resourceVersion the pass started
/// from (then on the one each write returns): a pass that began from a stale
/// watch cache, or a second writer, gets 409 Conflict and writes nothing, so
/// it can never make a cloud call on a status that no longer holds (the
/// pending operation and the step of a write that the cache had not shown yet).
pub struct KubeStatusStore {
    api: Api<ScaledCluster>,
    name: String,
    resource_version: Option<String>,
    uid: String,
    /// The status as stored: what a deferred status is made on.
    stored: ScaledClusterStatus,
    deferred: Arc<Deferred>,
    /// Held Events a write made due: to publish after the pass.
    released: Vec<EngineEvent>,
    /// Held Events a write made moot (the operation's outcome was written).
    merged: usize,
}

impl KubeStatusStore {
    /// `resource_version` and `stored`: of the object the pass read its
    /// status from.
    pub fn new(api: Api<ScaledCluster>, cluster: &ScaledCluster, deferred: Arc<Deferred>) -> Self {
        Self {
            api,
            name: cluster.metadata.name.clone().unwrap_or_default(),
            resource_version: cluster.metadata.resource_version.clone(),
            uid: cluster.metadata.uid.clone().unwrap_or_default(),
            stored: cluster.status.clone().unwrap_or_default(),
            deferred,
            released: Vec::new(),
            merged: 0,
        }
    }

    /// Hold `events`, the acceptance Events of `operation`, with the deferred
    /// acceptance of this pass; with none deferred, they are due at once.
    pub fn hold(&mut self, operation: &str, events: Vec<EngineEvent>) {
        if events.is_empty() {
            return;
        }
        let mut kept = self.deferred.kept();
        match kept.get_mut(&self.uid).filter(|k| k.base == self.stored) {
            Some(k) => {
                k.held = Some(Held {
                    operation: operation.to_string(),
                    events,
                })
            }
            None => self.released.extend(events),
        }
    }

    /// The held Events that this pass's writes made due, to publish, and how
    /// many they made moot.
    pub fn take_released(&mut self) -> (Vec<EngineEvent>, usize) {
        (
            std::mem::take(&mut self.released),
            std::mem::take(&mut self.merged),
        )
    }

    /// Write the deferred status once it is [`PROGRESS_EVERY`] old (a long
    /// operation's request id and progress, and its held Events), after the
    /// pass.
    pub async fn flush_due(&mut self) -> Result<(), StoreError> {
        let due = self
            .deferred
            .kept()
            .get(&self.uid)
            .filter(|k| k.base == self.stored && k.since.elapsed() >= self.deferred.every)
            .map(|k| k.status.clone());
        match due {
            Some(status) => self.write(&status).await,
            None => Ok(()),
        }
    }

    /// The apiserver write: a compare-and-swap on the resourceVersion.
    async fn write(&mut self, status: &ScaledClusterStatus) -> Result<(), StoreError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let patch = status_patch(&self.name, status, self.resource_version.as_deref());
        match self
            .api
            .patch_status(&self.name, &params, &Patch::Apply(patch))
            .await
        {
            Ok(written) => {
                self.resource_version = written.metadata.resource_version;
                self.stored = as_stored(&self.name, status);
                let held = self.deferred.kept().remove(&self.uid).and_then(|k| k.held);
                if let Some(held) = held {
                    let running = status
                        .pending_operation
                        .as_ref()
                        .is_some_and(|p| p.id == held.operation);
                    if running {
                        self.released.extend(held.events);
                    } else {
                        self.merged += held.events.len();
                    }
                }
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Err(StoreError {
                message: format!(
                    "status of {} changed since it was read; starting over: {}",
                    self.name, e.message
                ),
                conflict: true,
            }),
            Err(e) => Err(StoreError::new(format!(
                "patching status of {}: {e}",
                self.name
            ))),
        }
    }
}

/// `status` as the apiserver stores it and a pass reads it back: with
/// `selector`, and its times at the second (the wire format's precision).
pub fn as_stored(name: &str, status: &ScaledClusterStatus) -> ScaledClusterStatus {
    let status = ScaledClusterStatus {
        selector: Some(scale_selector(name)),
        ..status.clone()
    };
    serde_json::to_value(&status)
        .and_then(serde_json::from_value)
        .unwrap_or(status)
}

/// The server-side-apply body for the status of the ScaledCluster `name`,
/// conditional on `resource_version` when given. It always carries
/// `status.selector`: an apply that left it out would remove it, and an HPA
/// or KEDA scaling through `/scale` stops without it.
pub fn status_patch(
    name: &str,
    status: &ScaledClusterStatus,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let status = ScaledClusterStatus {
        selector: Some(scale_selector(name)),
        ..status.clone()
    };
    let mut patch = json!({
        "apiVersion": ScaledCluster::api_version(&()),
        "kind": ScaledCluster::kind(&()),
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    patch
}

#[async_trait]
impl StatusStore for KubeStatusStore {
    async fn save(
        &mut self,
        status: &ScaledClusterStatus,
        write: StatusWrite,
    ) -> Result<(), StoreError> {
        if write.deferrable() && !self.uid.is_empty() {
            let mut kept = self.deferred.kept();
            let (since, held) = kept
                .remove(&self.uid)
                .filter(|k| k.base == self.stored)
                .map_or((Instant::now(), None), |k| (k.since, k.held));
            kept.insert(
                self.uid.clone(),
                Kept {
                    base: self.stored.clone(),
                    status: status.clone(),
                    since,
                    held,
                },
            );
            return Ok(());
        }
        self.write(status).await
    }
}
