//! `clusterscale-core`: the `ScaledCluster` resource, the pure planner, the
//! cloud trait and its typed errors, and the manifest parser. It names no
//! concrete cloud and holds no Kubernetes client; every other crate of the
//! workspace builds on it.

pub mod api;
pub mod clock;
pub mod cloud;
pub mod manifest;
pub mod plan;
// Fixture builders for tests and benches: `cfg(test)` here, the `testing`
// feature for other crates (in their `[dev-dependencies]`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;
