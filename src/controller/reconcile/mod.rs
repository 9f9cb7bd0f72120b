//! One reconcile of one ScaledCluster, the Kubernetes side of an engine pass.
//!
//! - [`reconciler`]: the pass itself, and the requeue;
//! - [`secrets`], [`clouds`]: the credentials and the cached cloud client;
//! - [`instrumented`]: that client, timed and counted;
//! - [`status`]: the status subresource as the engine's store;
//! - [`events`]: the Event recorder;
//! - [`backoff`]: the per-resource backoff of retryable cloud errors.

pub mod backoff;
pub mod clouds;
pub mod events;
pub mod instrumented;
pub mod reconciler;
pub mod secrets;
pub mod status;
