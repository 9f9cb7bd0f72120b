//! The engine's status store in Kubernetes: the `status` subresource,
//! written with server-side apply under one field manager.

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::api::{ScaledCluster, ScaledClusterStatus};
use crate::engine::{StatusStore, StoreError};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "clusterscale";

/// Writes one resource's status. The engine calls `save` only when the
/// status changed, and before every cloud call (the write-ahead record).
pub struct KubeStatusStore {
    api: Api<ScaledCluster>,
    name: String,
}

impl KubeStatusStore {
    pub fn new(api: Api<ScaledCluster>, name: impl Into<String>) -> Self {
        Self {
            api,
            name: name.into(),
        }
    }
}

/// The server-side-apply body for a status.
pub fn status_patch(status: &ScaledClusterStatus) -> serde_json::Value {
    json!({
        "apiVersion": "clusterscale.io/v1alpha1",
        "kind": "ScaledCluster",
        "status": status,
    })
}

#[async_trait]
impl StatusStore for KubeStatusStore {
    async fn save(&mut self, status: &ScaledClusterStatus) -> Result<(), StoreError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api
            .patch_status(&self.name, &params, &Patch::Apply(status_patch(status)))
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("patching status of {}: {e}", self.name)))
    }
}
