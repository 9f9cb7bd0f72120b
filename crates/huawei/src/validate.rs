//! The rules of `spec.huawei` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules. That a pool's node group is
//! its own (not `coreNodeGroup`, not `taskNodeGroup`, not another pool's) is
//! checked here only: the controller reports it as `InvalidSpec`, and a pool
//! on a group the cluster chose itself is refused at observation
//! (`NodeGroupConflict`, [`interpret_pools`](crate::interpret::interpret_pools)).

use clusterscale_core::api::validate::{credential_source, non_empty, CredentialFields, Violation};
use clusterscale_core::api::{HuaweiSpec, TaskPoolSpec};

/// The violations of `h` and `pools`; empty when valid.
pub fn validate(h: &HuaweiSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
    let mut out = non_empty(&[
        ("spec.huawei.region", &h.region),
        ("spec.huawei.projectId", &h.project_id),
        ("spec.huawei.clusterId", &h.cluster_id),
    ]);
    out.extend(credential_source(
        &CredentialFields {
            block: "spec.huawei",
            secret_name: "spec.huawei.credentialsSecretRef.name",
            account_name: "spec.huawei.accountRef.name",
        },
        h.credentials_secret_ref.as_ref(),
        h.account_ref.as_ref(),
    ));
    fn named(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|g| !g.is_empty())
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for p in pools {
        match &p.huawei {
            None => out.push(Violation::new(
                "spec.taskPools[].huawei.nodeGroup",
                format!(
                    "pool {}: required on a huawei cluster (the pool's MRS node group)",
                    p.name
                ),
            )),
            Some(g) if !is_node_group(&g.node_group) => out.push(Violation::new(
                "spec.taskPools[].huawei.nodeGroup",
                format!(
                    "pool {}: must be 1-64 letters, digits, '_' or '-' (got {:?})",
                    p.name, g.node_group
                ),
            )),
            Some(g) => {
                let group = g.node_group.as_str();
                // Its nodes would be counted twice, and written by two owners.
                let taken = if named(&h.core_node_group) == Some(group) {
                    Some("spec.huawei.coreNodeGroup (the Core group)".to_string())
                } else if named(&h.task_node_group) == Some(group) {
                    Some("spec.huawei.taskNodeGroup (the default Task pool's group)".to_string())
                } else {
                    seen.iter()
                        .find(|(_, other)| *other == group)
                        .map(|(name, _)| format!("pool {name}'s node group too"))
                };
                match taken {
                    Some(by) => out.push(Violation::new(
                        "spec.taskPools[].huawei.nodeGroup",
                        format!(
                            "pool {}: node group {group} is {by}; each pool needs a node group of its own",
                            p.name
                        ),
                    )),
                    None => seen.push((&p.name, group)),
                }
            }
        }
    }
    out
}

/// An MRS node group name: 1-64 of `[A-Za-z0-9_-]`.
fn is_node_group(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::api::HuaweiPoolSpec;

    fn pool(name: &str, group: &str) -> TaskPoolSpec {
        TaskPoolSpec {
            huawei: Some(HuaweiPoolSpec {
                node_group: group.into(),
            }),
            ..TaskPoolSpec::named(name, 1)
        }
    }

    #[test]
    fn pools_are_allowed_each_on_a_group_of_its_own() {
        let mut h = HuaweiSpec::test();
        assert_eq!(
            validate(&h, &[pool("a", "node_group_3"), pool("b", "node_group_4")]),
            []
        );
        h.core_node_group = Some("node_group_2".into());
        h.task_node_group = Some("node_group_3".into());
        let v = validate(&h, &[pool("a", "node_group_3"), pool("b", "node_group_2")]);
        let messages: Vec<&str> = v.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "pool a: node group node_group_3 is spec.huawei.taskNodeGroup (the default Task pool's group); each pool needs a node group of its own",
                "pool b: node group node_group_2 is spec.huawei.coreNodeGroup (the Core group); each pool needs a node group of its own",
            ]
        );
        let v = validate(&HuaweiSpec::test(), &[pool("a", "g"), pool("b", "g")]);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message
                .contains("pool b: node group g is pool a's node group too"),
            "{v:?}"
        );
    }
}
