//! The rules of `spec.simulated` ([`CloudProvider::validate`](clusterscale_core::cloud::provider::CloudProvider::validate)),
//! in the same words as the CRD's CEL rules.

use clusterscale_core::api::validate::Violation;
use clusterscale_core::api::{SimulatedSpec, TaskPoolSpec};

/// The violations of `s` and of the simulated blocks of `pools`; empty when valid.
pub fn validate(s: &SimulatedSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
    let mut out = Vec::new();
    if s.initial_core < 0 || s.initial_task < 0 {
        out.push(Violation::new(
            "spec.simulated.initialCore",
            "initialCore and initialTask must be >= 0",
        ));
    }
    if s.operation_seconds < 0 {
        out.push(Violation::new(
            "spec.simulated.operationSeconds",
            "must be >= 0",
        ));
    }
    for p in pools {
        if let Some(sp) = p.simulated.as_ref().filter(|sp| sp.initial_count < 0) {
            out.push(Violation::new(
                "spec.taskPools[].simulated.initialCount",
                format!("pool {}: must be >= 0 (got {})", p.name, sp.initial_count),
            ));
        }
    }
    out
}
