//! One cloud client per ScaledCluster, reused across reconciles (so that
//! token caches and rate limits survive) and rebuilt when the spec's cloud
//! block or the Secret changes. Simulated clusters live here too: their
//! model is in memory and starts afresh when the operator restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::cloud::provider;
use crate::controller::accounts::Signing;
use clusterscale_core::api::{CloudKind, ScaledCluster, ScaledClusterSpec};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::provider::{ConnectError, ConnectOptions};
use clusterscale_core::cloud::Cloud;

struct Entry {
    fingerprint: Fingerprint,
    cloud: Arc<dyn Cloud>,
}

/// Cache of cloud clients, keyed by resource uid.
#[derive(Default)]
pub struct CloudCache {
    entries: Mutex<HashMap<String, Entry>>,
    options: ConnectOptions,
}

impl CloudCache {
    /// A cache whose clients are built with `options` (rate limits, ...).
    pub fn new(options: ConnectOptions) -> Self {
        Self {
            entries: Mutex::default(),
            options,
        }
    }

    /// The client for `cluster`, built from `signing` when the fingerprint changed.
    pub fn get(
        &self,
        cluster: &ScaledCluster,
        signing: &Signing,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn Cloud>, ConnectError> {
        let uid = cluster.metadata.uid.clone().unwrap_or_default();
        let fingerprint = fingerprint(cluster, signing);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get(&uid) {
            if e.fingerprint == fingerprint {
                return Ok(e.cloud.clone());
            }
        }
        let cloud = build(cluster, signing, clock, self.options.clone())?;
        entries.insert(
            uid,
            Entry {
                fingerprint,
                cloud: cloud.clone(),
            },
        );
        Ok(cloud)
    }

    /// Drop the client of a deleted resource.
    pub fn forget(&self, uid: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}

/// SHA-256, kept as bytes: one entry per cluster, so no hex string each.
type Fingerprint = [u8; 32];

/// A hash of everything the client is built from; secret values are hashed,
/// never kept. A CloudAccount's shared key source counts by identity: a new
/// one (the account's spec changed) rebuilds the client.
fn fingerprint(cluster: &ScaledCluster, signing: &Signing) -> Fingerprint {
    let creds = &signing.creds;
    // Every field of the spec, named: a new one (a new cloud's block) does
    // not compile until it is sorted into the client's inputs or not.
    let ScaledClusterSpec {
        tencent: _,
        huawei: _,
        simulated: _,
        core: _,
        task: _,
        // Not an input of the client: each call names the pools it means
        // (`Cloud::observe_pools`, `ScaleRequest::pool`).
        task_pools: _,
        scale_in: _,
        max_step: _,
        cooldown_seconds: _,
        paused: _,
        dry_run: _,
    } = &cluster.spec;
    let mut h = Sha256::new();
    // The cloud blocks: each provider's own, in the one list of clouds.
    for kind in CloudKind::ALL {
        h.update(kind.as_str().as_bytes());
        h.update([0]);
        if let Some(block) = provider(kind).block_json(&cluster.spec) {
            h.update(block);
        }
        h.update([0]);
    }
    for key in creds.keys() {
        h.update(key.as_bytes());
        h.update([0]);
        if let Some(v) = creds.get(key) {
            h.update(v.expose().as_bytes());
        }
        h.update([0]);
    }
    if let Some(keys) = &signing.keys {
        h.update(format!("keysource@{:p}", Arc::as_ptr(keys)).as_bytes());
    }
    h.finalize().into()
}

/// Build the client for a resource's cloud.
pub fn build(
    cluster: &ScaledCluster,
    signing: &Signing,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, ConnectError> {
    let name = format!(
        "{}-{}",
        cluster.metadata.namespace.as_deref().unwrap_or("default"),
        cluster.metadata.name.as_deref().unwrap_or("sim")
    );
    crate::cloud::connect(
        &cluster.spec,
        &name,
        &signing.creds,
        signing.keys.clone(),
        clock,
        options,
    )
}
