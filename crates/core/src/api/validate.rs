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

use super::{CloudKind, ScaledClusterSpec, TaskPoolSpec, MAX_TOTAL, MIN_CORE};

/// At most this many `spec.taskPools`.
pub const MAX_POOLS: usize = 8;

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

/// The fields of a cloud block's credentials choice, as literals (the
/// refusal table covers each).
pub struct CredentialFields {
    /// The block, e.g. `spec.tencent`: both or neither set.
    pub block: &'static str,
    pub secret_name: &'static str,
    pub account_name: &'static str,
}

/// Exactly one of `credentialsSecretRef` and `accountRef`, and the one set
/// names something: the words of the block's CEL rule.
pub fn credential_source(
    fields: &CredentialFields,
    secret: Option<&crate::api::SecretRef>,
    account: Option<&crate::api::AccountRef>,
) -> Vec<Violation> {
    match (secret, account) {
        (Some(s), None) => non_empty(&[(fields.secret_name, &s.name)]),
        (None, Some(a)) => non_empty(&[(fields.account_name, &a.name)]),
        _ => vec![Violation::new(
            fields.block,
            "exactly one of credentialsSecretRef or accountRef must be set",
        )],
    }
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
    let with_pools = total
        + spec
            .task_pools
            .iter()
            .map(|p| i64::from(p.count))
            .sum::<i64>();
    if total > i64::from(MAX_TOTAL) {
        bad(
            "spec.core.count + spec.task.count",
            format!("must be at most {MAX_TOTAL} (got {total})"),
        );
    } else if with_pools > i64::from(MAX_TOTAL) {
        bad(
            "spec.core.count + spec.task.count + spec.taskPools[].count",
            format!("must be at most {MAX_TOTAL} (got {with_pools})"),
        );
    }
    if spec.task_pools.len() > MAX_POOLS {
        bad(
            "spec.taskPools",
            format!(
                "must have at most {MAX_POOLS} pools (got {})",
                spec.task_pools.len()
            ),
        );
    }
    for (i, pool) in spec.task_pools.iter().enumerate() {
        let first = spec.task_pools.iter().position(|p| p.name == pool.name);
        pool_rules(pool, first != Some(i), spec, &mut bad);
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

/// Whether `name` is a DNS label (RFC 1123): 1-63 of lowercase letters,
/// digits and '-', starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.chars().all(|c| ok(c) || c == '-')
        && name.starts_with(ok)
        && name.ends_with(ok)
}

/// The cloud-neutral rules of one pool; `repeated` when an earlier pool has its name.
fn pool_rules(
    pool: &TaskPoolSpec,
    repeated: bool,
    spec: &ScaledClusterSpec,
    bad: &mut impl FnMut(&'static str, String),
) {
    let name = &pool.name;
    if !is_dns_label(name) {
        bad(
            "spec.taskPools[].name",
            format!("must be a DNS label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit (got {name:?})"),
        );
    } else if name == "task" {
        bad(
            "spec.taskPools[].name",
            "must not be task (the default Task pool's name)".to_string(),
        );
    } else if repeated {
        bad(
            "spec.taskPools[].name",
            format!("must be unique ({name:?} appears twice)"),
        );
    }
    if pool.count < 0 {
        bad(
            "spec.taskPools[].count",
            format!("pool {name}: must be >= 0 (got {})", pool.count),
        );
    }
    if pool.min < 0 {
        bad(
            "spec.taskPools[].min",
            format!("pool {name}: must be >= 0 (got {})", pool.min),
        );
    }
    if !(0..=MAX_TOTAL).contains(&pool.max) {
        bad(
            "spec.taskPools[].max",
            format!(
                "pool {name}: must be between 0 and {MAX_TOTAL} (got {})",
                pool.max
            ),
        );
    }
    if pool.min > pool.max {
        bad(
            "spec.taskPools[].min",
            format!(
                "pool {name}: must be <= spec.taskPools[].max (min {} > max {})",
                pool.min, pool.max
            ),
        );
    }
    let foreign: Vec<&str> = CloudKind::ALL
        .into_iter()
        .filter(|k| pool.has_block(*k) && !spec.has_block(*k))
        .map(CloudKind::as_str)
        .collect();
    if !foreign.is_empty() {
        bad(
            "spec.taskPools[]",
            format!(
                "pool {name}: sets {}, but a pool may set only the block of the spec's cloud",
                foreign.join(" and ")
            ),
        );
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

    #[test]
    fn dns_labels() {
        for good in ["a", "batch", "spot-1", "0a", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Batch", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn pools_count_toward_500_and_are_named_once() {
        let mut spec = ScaledClusterSpec::simulated(3, 400);
        spec.task_pools = vec![TaskPoolSpec::named("a", 50), TaskPoolSpec::named("b", 47)];
        assert_eq!(validate_spec(&spec), []);
        spec.task_pools[1].count = 48;
        let v = validate_spec(&spec);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("(got 501)"), "{v:?}");
        spec.task_pools[1].count = 0;
        spec.task_pools[1].name = "a".into();
        let v = validate_spec(&spec);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "spec.taskPools[].name");
    }
}
