//! An in-memory index of the watched ScaledClusters, kept up to date from the
//! watch streams (before the reflector), so that a reconcile asks a map
//! instead of scanning every cached object. [`WatchIndex`] follows the
//! watch protocol (applies, deletes, and the relist that replaces one
//! stream's objects); what is indexed is an [`Entries`]: the duplicate-target
//! claims ([`super::claims`]) and the backlog ([`super::backlog`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use kube::runtime::watcher::Event;
use kube::ResourceExt;

use kube::core::DeserializeGuard;

use clusterscale_core::api::ScaledCluster;

/// What the watch streams carry: a ScaledCluster, or the error of an object
/// that does not deserialize as one (reported on the object, not dropped).
pub type ClusterOrInvalid = DeserializeGuard<ScaledCluster>;

/// What an index holds per live, deserializable ScaledCluster.
pub trait Entries: Default {
    /// Index `cluster` under `uid`; `false` when it holds nothing for it.
    /// Called only after [`Entries::remove`] of the same uid.
    fn insert(&mut self, uid: &str, cluster: &ScaledCluster) -> bool;
    /// Forget whatever is held under `uid`.
    fn remove(&mut self, uid: &str);
}

#[derive(Default, Debug)]
struct State<E> {
    entries: E,
    /// uid -> the watch stream (one per watched namespace) that reported it.
    source: HashMap<String, usize>,
    /// uids listed since each source's last `Init`, for the relist swap.
    relisting: HashMap<usize, HashSet<String>>,
}

impl<E: Entries> State<E> {
    fn remove(&mut self, uid: &str) {
        if self.source.remove(uid).is_some() {
            self.entries.remove(uid);
        }
    }

    fn apply(&mut self, source: usize, obj: &ClusterOrInvalid) {
        let Some(uid) = obj.uid() else {
            return;
        };
        self.remove(&uid);
        // Only live, deserializable objects are indexed.
        let Ok(cluster) = obj.0.as_ref() else {
            return;
        };
        if cluster.metadata.deletion_timestamp.is_some() {
            return;
        }
        if self.entries.insert(&uid, cluster) {
            self.source.insert(uid, source);
        }
    }
}

/// An index fed by the watch streams. Cheap to share (`Arc`); every method
/// takes the lock briefly.
#[derive(Default, Debug)]
pub struct WatchIndex<E> {
    state: Mutex<State<E>>,
}

impl<E: Entries> WatchIndex<E> {
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // A panic while holding the lock leaves a consistent map (every update
        // is a remove then an insert): keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the entries under the lock.
    pub fn with<T>(&self, f: impl FnOnce(&E) -> T) -> T {
        f(&self.lock().entries)
    }

    /// Feed one event of watch stream `source`, in stream order.
    pub fn observe(&self, source: usize, event: &Event<ClusterOrInvalid>) {
        let mut s = self.lock();
        match event {
            Event::Apply(obj) => s.apply(source, obj),
            Event::Delete(obj) => {
                if let Some(uid) = obj.uid() {
                    s.remove(&uid);
                }
            }
            Event::Init => {
                s.relisting.insert(source, HashSet::new());
            }
            Event::InitApply(obj) => {
                s.apply(source, obj);
                if let Some(uid) = obj.uid() {
                    s.relisting.entry(source).or_default().insert(uid);
                }
            }
            Event::InitDone => {
                // Whatever this source held and the relist did not return was
                // deleted while the watch was down.
                let seen = s.relisting.remove(&source).unwrap_or_default();
                let gone: Vec<String> = s
                    .source
                    .iter()
                    .filter(|(uid, from)| **from == source && !seen.contains(*uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    s.remove(&uid);
                }
            }
        }
    }

    /// Number of objects indexed.
    pub fn len(&self) -> usize {
        self.lock().source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
