//! The controller's own copy of the CRD's rules.
//!
//! The apiserver enforces the CEL rules at admission, but an old apiserver
//! (1.20 drops `x-kubernetes-validations`) or an object stored before a rule
//! existed can still hold an invalid spec. Each violation names the field and
//! the rule, in the same words as the CEL messages.

use super::{
    CloudKind, HuaweiSpec, ScaledClusterSpec, SimulatedSpec, TencentSpec, MAX_TOTAL, MIN_CORE,
};

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `spec.core.count`.
    pub field: &'static str,
    /// The rule, in words.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All violations of `spec`; empty when valid.
pub fn validate_spec(spec: &ScaledClusterSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut bad = |field: &'static str, message: String| out.push(Violation { field, message });

    let clouds = CloudKind::ALL
        .into_iter()
        .filter(|k| spec.has_block(*k))
        .count();
    if clouds != 1 {
        bad(
            "spec",
            format!(
                "exactly one of {} must be set (found {clouds})",
                CloudKind::choices()
            ),
        );
    }
    if spec.core.count < MIN_CORE {
        bad(
            "spec.core.count",
            format!("must be at least {MIN_CORE} (got {})", spec.core.count),
        );
    }
    if spec.task.count < 0 {
        bad(
            "spec.task.count",
            format!("must be >= 0 (got {})", spec.task.count),
        );
    }
    if spec.task.min < 0 {
        bad(
            "spec.task.min",
            format!("must be >= 0 (got {})", spec.task.min),
        );
    }
    if !(0..=MAX_TOTAL).contains(&spec.task.max) {
        bad(
            "spec.task.max",
            format!("must be between 0 and {MAX_TOTAL} (got {})", spec.task.max),
        );
    }
    if spec.task.min > spec.task.max {
        bad(
            "spec.task.min",
            format!(
                "must be <= spec.task.max (min {} > max {})",
                spec.task.min, spec.task.max
            ),
        );
    }
    let total = i64::from(spec.core.count) + i64::from(spec.task.count);
    if total > i64::from(MAX_TOTAL) {
        bad(
            "spec.core.count + spec.task.count",
            format!("must be at most {MAX_TOTAL} (got {total})"),
        );
    }
    if spec.max_step < 0 {
        bad(
            "spec.maxStep",
            format!("must be >= 0 (got {})", spec.max_step),
        );
    }
    if spec.cooldown_seconds < 0 {
        bad(
            "spec.cooldownSeconds",
            format!("must be >= 0 (got {})", spec.cooldown_seconds),
        );
    }
    let grace = spec.scale_in.graceful_timeout_seconds;
    if grace != 0 && !(60..=1800).contains(&grace) {
        bad(
            "spec.scaleIn.gracefulTimeoutSeconds",
            format!("must be 0 or between 60 and 1800 (got {grace})"),
        );
    }
    for kind in CloudKind::ALL {
        validate_block(spec, kind, &mut bad);
    }
    out
}

/// The rules of the block of cloud `kind`, when it is set.
fn validate_block(
    spec: &ScaledClusterSpec,
    kind: CloudKind,
    bad: &mut dyn FnMut(&'static str, String),
) {
    match kind {
        CloudKind::Tencent => {
            if let Some(t) = &spec.tencent {
                validate_tencent(t, bad);
            }
        }
        CloudKind::Huawei => {
            if let Some(h) = &spec.huawei {
                validate_huawei(h, bad);
            }
        }
        CloudKind::Simulated => {
            if let Some(s) = &spec.simulated {
                validate_simulated(s, bad);
            }
        }
    }
}

fn validate_tencent(t: &TencentSpec, bad: &mut dyn FnMut(&'static str, String)) {
    if t.instance_id.trim().is_empty() {
        bad("spec.tencent.instanceId", "must not be empty".into());
    }
    if t.region.trim().is_empty() {
        bad("spec.tencent.region", "must not be empty".into());
    }
    if t.pay_mode != 0 && t.pay_mode != 1 {
        bad(
            "spec.tencent.payMode",
            format!("must be 0 or 1 (got {})", t.pay_mode),
        );
    }
    if t.credentials_secret_ref.name.trim().is_empty() {
        bad(
            "spec.tencent.credentialsSecretRef.name",
            "must not be empty".into(),
        );
    }
}

fn validate_huawei(h: &HuaweiSpec, bad: &mut dyn FnMut(&'static str, String)) {
    for (field, value) in [
        ("spec.huawei.region", &h.region),
        ("spec.huawei.projectId", &h.project_id),
        ("spec.huawei.clusterId", &h.cluster_id),
        (
            "spec.huawei.credentialsSecretRef.name",
            &h.credentials_secret_ref.name,
        ),
    ] {
        if value.trim().is_empty() {
            bad(field, "must not be empty".into());
        }
    }
}

fn validate_simulated(s: &SimulatedSpec, bad: &mut dyn FnMut(&'static str, String)) {
    if s.initial_core < 0 || s.initial_task < 0 {
        bad(
            "spec.simulated.initialCore",
            "initialCore and initialTask must be >= 0".into(),
        );
    }
    if s.operation_seconds < 0 {
        bad("spec.simulated.operationSeconds", "must be >= 0".into());
    }
}

/// One line naming every violation, for conditions, events and CLI errors.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::refusals;

    #[test]
    fn valid_specs_have_no_violation() {
        assert_eq!(validate_spec(&ScaledClusterSpec::simulated(3, 0)), []);
        assert_eq!(validate_spec(&ScaledClusterSpec::simulated(3, 497)), []);
    }

    #[test]
    fn every_refusal_names_its_field() {
        for (field, words, spec) in refusals() {
            let v = validate_spec(&spec);
            assert_eq!(
                v.len(),
                1,
                "{field} ({words}): want exactly one violation, got {v:?}"
            );
            assert_eq!(v[0].field, field, "{v:?}");
            assert!(
                v[0].message.contains(words),
                "{field}: {:?} should contain {words:?}",
                v[0].message
            );
            let line = describe(&v);
            assert!(line.starts_with(&format!("{field}: ")), "{line}");
        }
    }

    /// Every field name this file's rules report has a case in [`refusals`](crate::testing::refusals):
    /// a new rule without a test fails here.
    #[test]
    fn every_field_in_the_rules_has_a_refusal_case() {
        let source = include_str!("validate.rs");
        let rules = &source[..source.find("#[cfg(test)]").expect("test section")];
        let fields: std::collections::BTreeSet<&str> = rules
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|lit| {
                lit.starts_with("spec")
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | ' '))
            })
            .collect();
        let covered: std::collections::BTreeSet<&str> = refusals().iter().map(|r| r.0).collect();
        assert!(fields.len() >= 19, "found only {fields:?}");
        assert_eq!(fields, covered);
    }

    #[test]
    fn violations_add_up_and_each_is_described() {
        let mut spec = ScaledClusterSpec::simulated(2, -1);
        spec.max_step = -1;
        let v = validate_spec(&spec);
        let fields: Vec<&str> = v.iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            ["spec.core.count", "spec.task.count", "spec.maxStep"]
        );
        assert_eq!(describe(&v).matches("; ").count(), 2);
    }
}
