//! The rules of `spec.tencent` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules, and of each Task pool's
//! `tencent` block (`spec.taskPools[].tencent`).
//!
//! A pool's block is optional: without it the pool is POSTPAID_BY_HOUR Task
//! nodes of the cluster's default spec, with no YARN label. `chargeType` is
//! an enum, so a value other than POSTPAID_BY_HOUR or SPOTPAID never
//! deserializes. The two strings are checked here:
//!
//! - `instanceType`, when set: 1-64 letters, digits, '.', '-' or '_' (CVM
//!   instance types are `FAMILY.SIZE`, e.g. `SA5.2XLARGE32`). Whether the
//!   cluster allows it is the cloud's to say at scale-out
//!   (`ResourceUnavailable.ResourceSpecNotDefaultSpec`, a permanent error
//!   naming this field).
//! - `yarnNodeLabel`, when set: a YARN node label. EMR documents no charset of
//!   its own for `ScaleOutCluster.YarnNodeLabel`; YARN's (`NodeLabelUtil`:
//!   `^[0-9a-zA-Z][0-9a-zA-Z-_]*`, at most 255 characters) is the one the
//!   label must pass in the ResourceManager, so it is the rule here.

use clusterscale_core::api::validate::{credential_source, non_empty, CredentialFields, Violation};
use clusterscale_core::api::{TaskPoolSpec, TencentSpec};

/// Longest `instanceType` accepted.
pub const MAX_INSTANCE_TYPE_LEN: usize = 64;
/// Longest YARN node label (YARN's `NodeLabelUtil.MAX_LABEL_LENGTH`).
pub const MAX_YARN_LABEL_LEN: usize = 255;

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
    out.extend(credential_source(
        &CredentialFields {
            block: "spec.tencent",
            secret_name: "spec.tencent.credentialsSecretRef.name",
            account_name: "spec.tencent.accountRef.name",
        },
        t.credentials_secret_ref.as_ref(),
        t.account_ref.as_ref(),
    ));
    for p in pools {
        let Some(block) = &p.tencent else { continue };
        if let Some(ty) = &block.instance_type {
            if !is_instance_type(ty) {
                out.push(Violation::new(
                    "spec.taskPools[].tencent.instanceType",
                    format!(
                        "pool {}: must be 1-{MAX_INSTANCE_TYPE_LEN} letters, digits, '.', '-' or '_', \
                         a CVM instance type such as SA5.2XLARGE32 (got {ty:?}); leave it unset for the cluster's default spec",
                        p.name
                    ),
                ));
            }
        }
        if let Some(label) = &block.yarn_node_label {
            if !is_yarn_label(label) {
                out.push(Violation::new(
                    "spec.taskPools[].tencent.yarnNodeLabel",
                    format!(
                        "pool {}: must be a YARN node label: 1-{MAX_YARN_LABEL_LEN} letters, digits, '-' or '_', \
                         starting with a letter or digit (got {label:?})",
                        p.name
                    ),
                ));
            }
        }
    }
    out
}

/// A CVM instance type: 1-64 of `[A-Za-z0-9._-]`.
fn is_instance_type(s: &str) -> bool {
    (1..=MAX_INSTANCE_TYPE_LEN).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A YARN node label: `^[0-9a-zA-Z][0-9a-zA-Z-_]*$`, at most 255 characters.
fn is_yarn_label(s: &str) -> bool {
    (1..=MAX_YARN_LABEL_LEN).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_and_yarn_labels() {
        for ok in ["SA5.2XLARGE32", "S5.LARGE8", "BMSA2.24XLARGE384", "CVM.S5"] {
            assert!(is_instance_type(ok), "{ok}");
        }
        for bad in ["", " ", "SA5 2XLARGE", "S5.LARGE8\n", &"S".repeat(65)] {
            assert!(!is_instance_type(bad), "{bad:?}");
        }
        for ok in ["spot", "spot_pool-1", "0day", &"a".repeat(255)] {
            assert!(is_yarn_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-spot",
            "_x",
            "spot.pool",
            "spot pool",
            &"a".repeat(256),
        ] {
            assert!(!is_yarn_label(bad), "{bad:?}");
        }
    }
}
