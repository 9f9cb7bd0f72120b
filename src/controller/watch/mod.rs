//! State fed by the watch streams, before the reflector, so that a reconcile
//! asks a map instead of scanning every cached object. Nothing here knows
//! how a ScaledCluster is reconciled.
//!
//! - [`index`]: the watch protocol (applies, deletes, relists) over any
//!   [`index::Entries`], and the watched object, [`ClusterOrInvalid`];
//! - [`claims`]: remote cluster -> the ScaledClusters that claim it;
//! - [`backlog`]: per account, what comes before resyncs, and their budget.

pub mod backlog;
pub mod claims;
pub mod index;

pub use index::ClusterOrInvalid;
