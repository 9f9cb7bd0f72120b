//! clusterscale: declare Core and Task node counts of managed Hadoop clusters
//! (Tencent Cloud EMR, Huawei Cloud MRS) in a Kubernetes resource, and let a
//! controller converge the real cluster to them, one safe operation at a time.
//!
//! This crate is the operator: the controller, the CLI and telemetry, over
//! the workspace's crates, which it re-exports under their old paths
//! (`clusterscale::api`, `clusterscale::cloud::tencent`, ...). It never links
//! `clusterscale-fakes`; the fake clouds are the separate
//! `clusterscale-fake-cloud` binary.

pub use clusterscale_core::{api, clock, manifest, plan};
pub use clusterscale_engine as engine;

pub mod cli;
pub mod cloud;
pub mod controller;
pub mod telemetry;
