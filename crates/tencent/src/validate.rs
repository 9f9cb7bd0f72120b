//! The rules of `spec.tencent` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules.

use clusterscale_core::api::validate::{non_empty, Violation};
use clusterscale_core::api::{TaskPoolSpec, TencentSpec};

/// The violations of `t` and `pools`; empty when valid.
pub fn validate(t: &TencentSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
    let mut out = non_empty(&[
        ("spec.tencent.instanceId", &t.instance_id),
        ("spec.tencent.region", &t.region),
    ]);
    if t.pay_mode != 0 && t.pay_mode != 1 {
        out.push(Violation::new(
            "spec.tencent.payMode",
            format!("must be 0 or 1 (got {})", t.pay_mode),
        ));
    }
    out.extend(non_empty(&[(
        "spec.tencent.credentialsSecretRef.name",
        &t.credentials_secret_ref.name,
    )]));
    if !pools.is_empty() {
        // Not yet: the client neither counts nor scales a pool.
        out.push(Violation::new(
            "spec.taskPools",
            "named pools are not supported for tencent by this version; remove spec.taskPools (spec.task is the cluster's Task nodes)",
        ));
    }
    out
}
