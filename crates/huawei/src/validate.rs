//! The rules of `spec.huawei` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules.

use clusterscale_core::api::validate::{non_empty, Violation};
use clusterscale_core::api::{HuaweiSpec, TaskPoolSpec};

/// The violations of `h` and `pools`; empty when valid.
pub fn validate(h: &HuaweiSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
    let mut out = non_empty(&[
        ("spec.huawei.region", &h.region),
        ("spec.huawei.projectId", &h.project_id),
        ("spec.huawei.clusterId", &h.cluster_id),
        (
            "spec.huawei.credentialsSecretRef.name",
            &h.credentials_secret_ref.name,
        ),
    ]);
    let mut pool_rules = Vec::new();
    for p in pools {
        match &p.huawei {
            None => pool_rules.push(Violation::new(
                "spec.taskPools[].huawei.nodeGroup",
                format!(
                    "pool {}: required on a huawei cluster (the pool's MRS node group)",
                    p.name
                ),
            )),
            Some(g) if !is_node_group(&g.node_group) => pool_rules.push(Violation::new(
                "spec.taskPools[].huawei.nodeGroup",
                format!(
                    "pool {}: must be 1-64 letters, digits, '_' or '-' (got {:?})",
                    p.name, g.node_group
                ),
            )),
            Some(_) => {}
        }
    }
    if pool_rules.is_empty() && !pools.is_empty() {
        // Not yet: the client neither counts nor scales a node group by name.
        pool_rules.push(Violation::new(
            "spec.taskPools",
            "named pools are not supported for huawei by this version; remove spec.taskPools (spec.huawei.taskNodeGroup is the cluster's Task group)",
        ));
    }
    out.extend(pool_rules);
    out
}

/// An MRS node group name: 1-64 of `[A-Za-z0-9_-]`.
fn is_node_group(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
