//! The controller's own copy of the CRD's rules.
//!
//! The apiserver enforces the CEL rules at admission, but an old apiserver
//! (1.20 drops `x-kubernetes-validations`) or an object stored before a rule
//! existed can still hold an invalid spec. Each violation names the field and
//! the rule, in the same words as the CEL messages.
//!
//! [`validate_spec`] checks the cloud-neutral rules; each cloud checks its
//! own block's (`CloudProvider::validate`, in the cloud's crate), and the
//! operator asks both (`clusterscale::cloud::validate`).

use super::{CloudKind, ScaledClusterSpec, MAX_TOTAL, MIN_CORE};

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending field, e.g. `spec.core.count`.
    pub field: &'static str,
    /// The rule, in words.
    pub message: String,
}

impl Violation {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The violations of the fields in `fields` that are empty (or blank).
pub fn non_empty(fields: &[(&'static str, &str)]) -> Vec<Violation> {
    fields
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(field, _)| Violation::new(field, "must not be empty"))
        .collect()
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The violations of the cloud-neutral rules of `spec` (every field but
/// the cloud's block); empty when valid.
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
    out
}

/// One line naming every violation, for conditions, events and CLI errors.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every refusal of [`crate::testing::refusals`] names its field, and every
/// field of the rules has a refusal case: tested where every cloud's rules
/// are within reach, in the operator crate (`clusterscale::cloud`).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_specs_have_no_violation() {
        assert_eq!(validate_spec(&ScaledClusterSpec::simulated(3, 0)), []);
        assert_eq!(validate_spec(&ScaledClusterSpec::simulated(3, 497)), []);
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
