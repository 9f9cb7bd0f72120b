//! The controller: `clusterscale run`.
//!
//! - [`watch`]: state fed by the watch streams, before the reflector: the
//!   index they share, the duplicate-target claims and the backlog. It knows
//!   nothing of reconciling.
//! - [`reconcile`]: one pass of one ScaledCluster: credentials, the cloud
//!   client, the engine pass, the status writes, Events and the backoff.
//! - [`accounts`]: CloudAccounts: a cluster's keys from an account's Secret
//!   or workload identity, and the account's own status.
//! - [`serve`]: what the replica serves: `/metrics`, `/healthz`, `/readyz`.
//! - [`client`]: the Kubernetes client, every request bounded in time.
//! - [`run`]: the wiring of the three, and leader election.

pub mod accounts;
pub mod client;
pub mod reconcile;
pub mod run;
pub mod selector;
pub mod serve;
pub mod watch;

#[cfg(test)]
mod tests;
