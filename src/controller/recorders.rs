//! Event recorders, sharded by the object an Event is about.
//!
//! kube-runtime's [`Recorder`] keeps a cache of the Events it published (to
//! fold repeats into a series) and, on every `publish`, scans the whole cache
//! for expired entries under one write lock. With one recorder for the fleet
//! that is O(Events of the last 6 minutes) per Event, serialised across every
//! reconcile: at 10,000 resources it was a third of the operator's CPU (a
//! `perf` profile of `cargo bench --bench scale`, see docs/benchmarks.md).
//! Each object always maps to the same shard, so its Events still form the
//! same series; each scan is 1/[`SHARDS`] as long and publishes of different
//! shards do not wait for each other.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::Client;

/// Number of recorders.
pub const SHARDS: usize = 64;

pub struct Recorders {
    shards: Vec<Recorder>,
}

impl Recorders {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Recorder::new(client.clone(), reporter.clone()))
                .collect(),
        }
    }

    /// The shard of the object `reference` names (by namespace and name).
    pub fn shard(reference: &ObjectReference) -> usize {
        let mut h = DefaultHasher::new();
        reference.namespace.hash(&mut h);
        reference.name.hash(&mut h);
        (h.finish() % SHARDS as u64) as usize
    }

    /// Publish `event` about `reference` through its object's recorder.
    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        self.shards[Self::shard(reference)]
            .publish(event, reference)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(ns: &str, name: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn an_object_keeps_its_shard_and_the_fleet_spreads() {
        assert_eq!(
            Recorders::shard(&obj("data", "sc-1")),
            Recorders::shard(&obj("data", "sc-1"))
        );
        let mut used = std::collections::BTreeSet::new();
        for i in 0..1000 {
            used.insert(Recorders::shard(&obj("data", &format!("sc-{i}"))));
        }
        assert!(
            used.len() > SHARDS * 9 / 10,
            "{} of {SHARDS} shards used",
            used.len()
        );
    }
}
