//! clusterscale: declare Core and Task node counts of managed Hadoop clusters
//! (Tencent Cloud EMR, Huawei Cloud MRS) in a Kubernetes resource, and let a
//! controller converge the real cluster to them, one safe operation at a time.

pub mod api;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod controller;
pub mod engine;
pub mod fake;
pub mod manifest;
pub mod plan;
pub mod telemetry;
pub mod testing;
