//! clusterscale: declare Core and Task node counts of managed Hadoop clusters
//! (Tencent Cloud EMR, Huawei Cloud MRS) in a Kubernetes resource, and let a
//! controller converge the real cluster to them, one safe operation at a time.
//!
//! This crate is the operator: the controller, the CLI and telemetry, over
//! the workspace's crates (`clusterscale-core` for the resource, the planner
//! and the cloud trait; `clusterscale-engine` for one pass; one crate per
//! cloud). [`cloud`] is the one place that lists the clouds.

pub mod cli;
pub mod cloud;
pub mod controller;
pub mod telemetry;
