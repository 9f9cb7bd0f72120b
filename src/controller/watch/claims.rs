//! The duplicate-target index: remote cluster (`target_key`) -> the
//! ScaledClusters that claim it, oldest first. Kept up to date from the watch
//! streams (before the reflector), so that the duplicate check of a reconcile
//! is a map lookup instead of a scan of every cached object.

use std::collections::{BTreeSet, HashMap};

use kube::ResourceExt;

use super::index::{Entries, WatchIndex};
use clusterscale_core::api::ScaledCluster;

/// The order in which claims on one remote cluster are honoured: older
/// first; namespace/name breaks ties within the same second. (The derived
/// order compares the fields in this order.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimOrder {
    /// The creation time, in seconds since the epoch (`i64::MAX` when unset).
    pub created: i64,
    pub namespace: String,
    pub name: String,
}

/// The order in which claims on one remote cluster are honoured.
pub fn claim_order(c: &ScaledCluster) -> ClaimOrder {
    let created = c
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(i64::MAX);
    ClaimOrder {
        created,
        namespace: c.namespace().unwrap_or_default(),
        name: c.name_any(),
    }
}

#[derive(Clone, Debug)]
struct Claim {
    key: String,
    order: ClaimOrder,
}

/// The claims: by uid, and by remote target in claim order.
#[derive(Default, Debug)]
pub struct Claims {
    by_uid: HashMap<String, Claim>,
    by_key: HashMap<String, BTreeSet<(ClaimOrder, String)>>,
}

impl Entries for Claims {
    fn remove(&mut self, uid: &str) {
        if let Some(old) = self.by_uid.remove(uid) {
            if let Some(set) = self.by_key.get_mut(&old.key) {
                set.remove(&(old.order, uid.to_string()));
                if set.is_empty() {
                    self.by_key.remove(&old.key);
                }
            }
        }
    }

    fn insert(&mut self, uid: &str, cluster: &ScaledCluster) -> bool {
        // Only objects with a target claim anything.
        let Some(key) = crate::cloud::target_key(&cluster.spec) else {
            return false;
        };
        let order = claim_order(cluster);
        self.by_key
            .entry(key.clone())
            .or_default()
            .insert((order.clone(), uid.to_string()));
        self.by_uid.insert(uid.to_string(), Claim { key, order });
        true
    }
}

/// Remote target -> claimants.
pub type ClaimIndex = WatchIndex<Claims>;

impl WatchIndex<Claims> {
    /// The namespace/name of the oldest other live ScaledCluster that targets
    /// the same remote cluster as `cluster` and is older than it.
    pub fn older_claimant(&self, cluster: &ScaledCluster) -> Option<String> {
        let key = crate::cloud::target_key(&cluster.spec)?;
        let me = claim_order(cluster);
        let uid = cluster.metadata.uid.clone().unwrap_or_default();
        self.with(|claims| {
            claims
                .by_key
                .get(&key)?
                .iter()
                .take_while(|(order, _)| *order < me)
                .find(|(_, other)| *other != uid)
                .map(|(order, _)| format!("{}/{}", order.namespace, order.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::watch::ClusterOrInvalid;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::watcher::Event;

    fn cluster(ns: &str, name: &str, uid: &str, created: i64, target: &str) -> ScaledCluster {
        let mut c: ScaledCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "clusterscale.io/v1alpha1",
            "kind": "ScaledCluster",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "spec": {
                "tencent": {"region": "ap-guangzhou", "instanceId": target, "payMode": 0, "credentialsSecretRef": {"name": "creds"}},
                "core": {"count": 3}
            }
        }))
        .expect("fixture");
        c.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        c
    }

    fn g(c: &ScaledCluster) -> ClusterOrInvalid {
        kube::core::DeserializeGuard(Ok(c.clone()))
    }

    #[test]
    fn older_wins_and_younger_is_blocked() {
        let idx = ClaimIndex::new();
        let old = cluster("a", "old", "u1", 100, "emr-1");
        let young = cluster("b", "young", "u2", 200, "emr-1");
        let other = cluster("c", "other", "u3", 50, "emr-2");
        for c in [&young, &old, &other] {
            idx.observe(0, &Event::Apply(g(c)));
        }
        assert_eq!(idx.older_claimant(&young).as_deref(), Some("a/old"));
        assert_eq!(idx.older_claimant(&old), None);
        assert_eq!(idx.older_claimant(&other), None);
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn ties_within_a_second_go_by_namespace_then_name() {
        let idx = ClaimIndex::new();
        let x = cluster("ns", "x", "u1", 100, "emr-1");
        let y = cluster("ns", "y", "u2", 100, "emr-1");
        let z = cluster("aa", "z", "u3", 100, "emr-1");
        for c in [&x, &y, &z] {
            idx.observe(0, &Event::Apply(g(c)));
        }
        assert_eq!(idx.older_claimant(&z), None);
        assert_eq!(idx.older_claimant(&x).as_deref(), Some("aa/z"));
        assert_eq!(idx.older_claimant(&y).as_deref(), Some("aa/z"));
    }

    #[test]
    fn update_retargets_and_delete_releases() {
        let idx = ClaimIndex::new();
        let old = cluster("a", "old", "u1", 100, "emr-1");
        let young = cluster("b", "young", "u2", 200, "emr-1");
        idx.observe(0, &Event::Apply(g(&old)));
        idx.observe(0, &Event::Apply(g(&young)));
        assert!(idx.older_claimant(&young).is_some());

        // The old one moves to another cluster: the young one is free.
        let moved = cluster("a", "old", "u1", 100, "emr-9");
        idx.observe(0, &Event::Apply(g(&moved)));
        assert_eq!(idx.older_claimant(&young), None);

        // Back again, then being deleted (deletionTimestamp) releases the claim.
        idx.observe(0, &Event::Apply(g(&old)));
        assert!(idx.older_claimant(&young).is_some());
        let mut deleting = old.clone();
        deleting.metadata.deletion_timestamp = old.metadata.creation_timestamp.clone();
        idx.observe(0, &Event::Apply(g(&deleting)));
        assert_eq!(idx.older_claimant(&young), None);

        idx.observe(0, &Event::Apply(g(&old)));
        idx.observe(0, &Event::Delete(g(&old)));
        assert_eq!(idx.older_claimant(&young), None);
        assert_eq!(idx.len(), 1);
        idx.observe(0, &Event::Delete(g(&young)));
        assert!(idx.is_empty());
    }

    #[test]
    fn the_object_being_reconciled_never_blocks_itself() {
        let idx = ClaimIndex::new();
        let me = cluster("a", "me", "u1", 100, "emr-1");
        idx.observe(0, &Event::Apply(g(&me)));
        assert_eq!(idx.older_claimant(&me), None);
        // Even a stale cached copy with an older timestamp, same uid.
        let mut newer_copy = me.clone();
        newer_copy.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(500).unwrap()));
        assert_eq!(idx.older_claimant(&newer_copy), None);
    }

    #[test]
    fn relist_drops_what_vanished_from_that_source_only() {
        let idx = ClaimIndex::new();
        let a = cluster("a", "a", "u1", 100, "emr-1");
        let b = cluster("b", "b", "u2", 200, "emr-1");
        let c = cluster("c", "c", "u3", 300, "emr-1");
        idx.observe(0, &Event::Apply(g(&a)));
        idx.observe(1, &Event::Apply(g(&b)));
        idx.observe(0, &Event::Apply(g(&c)));
        // Source 0 relists and finds only c: a was deleted while the watch was down.
        idx.observe(0, &Event::Init);
        idx.observe(0, &Event::InitApply(g(&c)));
        idx.observe(0, &Event::InitDone);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.older_claimant(&c).as_deref(), Some("b/b"));
        assert_eq!(idx.older_claimant(&b), None);
    }

    #[test]
    fn undeserializable_and_targetless_objects_claim_nothing() {
        let idx = ClaimIndex::new();
        let a = cluster("a", "a", "u1", 100, "emr-1");
        let mut bad: ClusterOrInvalid = g(&a);
        bad.0 = Err(kube::core::error_boundary::InvalidObject {
            error: "wrong type".into(),
            metadata: a.metadata.clone(),
        });
        idx.observe(0, &Event::Apply(bad));
        assert!(idx.is_empty());
    }
}
