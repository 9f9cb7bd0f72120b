//! The engine's status store in Kubernetes: the `status` subresource,
//! replaced whole by a JSON patch, conditional on the resourceVersion read.
//!
//! Not server-side apply: a profile of the apiserver under `cargo bench
//! --bench scale` at 10,000 resources (Go pprof, docs/benchmarks.md) put
//! 21% of its CPU in applying our status patches, half of it parsing the
//! apply body as YAML and half in structured-merge-diff, and status writes
//! are what bounds a fleet's convergence. The operator is the only writer of
//! this status and always writes all of it, so a replace under a
//! resourceVersion precondition says exactly what the apply said, without
//! the merge. The apiserver still records the field manager (an Update
//! entry for `clusterscale` on the status subresource).

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::api::{scale_selector, ScaledCluster, ScaledClusterStatus};
use crate::engine::{StatusStore, StoreError};

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
}

impl KubeStatusStore {
    /// `resource_version`: of the object the pass read its status from.
    pub fn new(
        api: Api<ScaledCluster>,
        name: impl Into<String>,
        resource_version: Option<String>,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            resource_version,
        }
    }
}

/// The JSON patch (RFC 6902) that makes `status` the whole status of the
/// ScaledCluster `name`, conditional on `resource_version` when given.
///
/// - The precondition is a `replace` of `metadata.resourceVersion`, not a
///   `test`: the apiserver then refuses a stale write with 409 Conflict, as
///   it does any update that names an old resourceVersion (a failed `test`
///   would be a 422 like any malformed patch).
/// - `add` on `/status` replaces the member if present and creates it if not
///   (a new object has no status).
/// - It always carries `status.selector`: a status without it breaks an HPA
///   or KEDA scaling through `/scale`.
pub fn status_patch(
    name: &str,
    status: &ScaledClusterStatus,
    resource_version: Option<&str>,
) -> Patch<()> {
    let status = ScaledClusterStatus {
        selector: Some(scale_selector(name)),
        ..status.clone()
    };
    let mut ops = Vec::with_capacity(2);
    if let Some(rv) = resource_version {
        ops.push(json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(json!({"op": "add", "path": "/status", "value": status}));
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).expect("a well-formed JSON patch");
    Patch::Json(patch)
}

/// The status subresource write: a JSON patch recorded under [`FIELD_MANAGER`].
pub fn status_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

#[async_trait]
impl StatusStore for KubeStatusStore {
    async fn save(&mut self, status: &ScaledClusterStatus) -> Result<(), StoreError> {
        let patch = status_patch(&self.name, status, self.resource_version.as_deref());
        match self
            .api
            .patch_status(&self.name, &status_params(), &patch)
            .await
        {
            Ok(written) => {
                self.resource_version = written.metadata.resource_version;
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
