//! The rules of `spec.huawei` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules.

use clusterscale_core::api::validate::{non_empty, Violation};
use clusterscale_core::api::HuaweiSpec;

/// The violations of `h`; empty when valid.
pub fn validate(h: &HuaweiSpec) -> Vec<Violation> {
    non_empty(&[
        ("spec.huawei.region", &h.region),
        ("spec.huawei.projectId", &h.project_id),
        ("spec.huawei.clusterId", &h.cluster_id),
        (
            "spec.huawei.credentialsSecretRef.name",
            &h.credentials_secret_ref.name,
        ),
    ])
}
