//! The clouds, as the operator sees them: the one `match` that lists them
//! ([`provider`]), and what the CLI and the controller ask of a spec's
//! cloud through it: its rules ([`validate`]), its command-line knobs
//! ([`CloudArgs`]) and its client ([`connect`]). The trait and types are
//! `clusterscale-core`'s; each cloud is its own crate.

use std::sync::Arc;

use clusterscale_core::api::validate::{validate_spec, Violation};
use clusterscale_core::api::{CloudKind, ScaledClusterSpec};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::keys::KeySource;
use clusterscale_core::cloud::provider::{
    Connect, ConnectError, ConnectOptions, KnobsByKind, Provider,
};
use clusterscale_core::cloud::Cloud;
use clusterscale_huawei::HuaweiProvider;
use clusterscale_sim::SimulatedProvider;
use clusterscale_tencent::TencentProvider;

/// The provider of `kind`: the one place that lists the clouds.
pub fn provider(kind: CloudKind) -> &'static dyn Provider {
    match kind {
        CloudKind::Tencent => &TencentProvider,
        CloudKind::Huawei => &HuaweiProvider,
        CloudKind::Simulated => &SimulatedProvider,
    }
}

/// The provider of the cloud `spec` targets, when exactly one block is set.
pub fn of(spec: &ScaledClusterSpec) -> Option<&'static dyn Provider> {
    spec.cloud().map(provider)
}

/// A stable key for the remote cluster `spec` targets, used to detect two
/// resources pointing at the same cluster ([`Provider::target_key`]).
pub fn target_key(spec: &ScaledClusterSpec) -> Option<String> {
    of(spec)?.target_key(spec)
}

/// Every rule `spec` breaks: the cloud-neutral ones, then its cloud's.
pub fn validate(spec: &ScaledClusterSpec) -> Vec<Violation> {
    let mut violations = validate_spec(spec);
    if let Some(p) = of(spec) {
        violations.extend(p.validate(spec));
    }
    violations
}

/// Every cloud's command-line knobs (`--tencent-rate-limit`, ...), flattened
/// into `run`, `plan` and `apply`: each provider adds its own flags
/// ([`Provider::augment_args`]) and reads them back.
#[derive(Clone, Debug, Default)]
pub struct CloudArgs {
    knobs: KnobsByKind,
}

impl CloudArgs {
    /// The options the clients are built with: these knobs, and `http`.
    pub fn options(&self, http: Option<reqwest::Client>) -> ConnectOptions {
        ConnectOptions {
            knobs: self.knobs.clone(),
            http,
        }
    }
}

impl clap::FromArgMatches for CloudArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut knobs = KnobsByKind::default();
        for kind in CloudKind::ALL {
            knobs.set_erased(kind, provider(kind).knobs_from(matches)?);
        }
        Ok(Self { knobs })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for CloudArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        CloudKind::ALL
            .into_iter()
            .fold(cmd, |cmd, kind| provider(kind).augment_args(cmd))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The client for the spec's cloud, with `creds` from a Secret or the
/// environment, or the shared `keys` of a CloudAccount's workload identity;
/// `name` names in-process state (the simulated model, which starts afresh
/// with each client). Errors name the spec field or credential key, and say
/// which of the two is wrong ([`ConnectError::precondition`]).
pub fn connect(
    spec: &ScaledClusterSpec,
    name: &str,
    creds: &Credentials,
    keys: Option<Arc<KeySource>>,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, ConnectError> {
    let Some(provider) = of(spec) else {
        return Err(ConnectError::NoCloud {
            choices: CloudKind::choices(),
        });
    };
    provider.connect(
        spec,
        Connect {
            name,
            creds,
            keys,
            clock,
            options,
        },
    )
}

/// Credentials for `spec` from the environment variables the vendors' SDKs use.
pub fn credentials_from_env(spec: &ScaledClusterSpec) -> Credentials {
    match of(spec) {
        Some(p) => p.credentials_from_env(),
        None => Credentials::new("environment"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::api::validate::describe;
    use clusterscale_core::api::{HuaweiSpec, TencentSpec};
    use clusterscale_core::testing::refusals;

    #[test]
    fn every_refusal_names_its_field() {
        for (field, words, spec) in refusals() {
            let v = validate(&spec);
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

    /// Every field name the rules report (the cloud-neutral ones and each
    /// cloud's) has a case in `refusals`: a new rule without a test fails here.
    #[test]
    fn every_field_in_the_rules_has_a_refusal_case() {
        let core = include_str!("../crates/core/src/api/validate.rs");
        let sources = [
            &core[..core.find("#[cfg(test)]").expect("test section")],
            include_str!("../crates/tencent/src/validate.rs"),
            include_str!("../crates/huawei/src/validate.rs"),
            include_str!("../crates/sim/src/validate.rs"),
        ];
        assert_eq!(
            sources.len(),
            1 + CloudKind::ALL.len(),
            "every cloud's validate.rs is scanned"
        );
        let fields: std::collections::BTreeSet<&str> = sources
            .iter()
            .flat_map(|rules| rules.split('"').skip(1).step_by(2))
            .filter(|lit| {
                lit.starts_with("spec")
                    && lit.chars().all(|c| {
                        // `[]`: a field of every item of a list (`spec.taskPools[].count`).
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | ' ' | '[' | ']')
                    })
            })
            .collect();
        let covered: std::collections::BTreeSet<&str> = refusals().iter().map(|r| r.0).collect();
        assert!(fields.len() >= 19, "found only {fields:?}");
        assert_eq!(fields, covered);
    }

    fn tencent() -> ScaledClusterSpec {
        ScaledClusterSpec::test().tencent(TencentSpec::test())
    }

    /// Every client that sends requests checks the fence immediately before
    /// each one leaves (`clusterscale_core::cloud::fence::check`); the
    /// simulated cloud sends none.
    #[test]
    fn every_cloud_client_checks_the_fence_before_sending() {
        let clients = [
            (
                CloudKind::Tencent,
                include_str!("../crates/tencent/src/client.rs"),
            ),
            (
                CloudKind::Huawei,
                include_str!("../crates/huawei/src/client.rs"),
            ),
        ];
        assert_eq!(
            clients.len() + 1,
            CloudKind::ALL.len(),
            "every cloud but the simulated one is listed here"
        );
        for (kind, source) in clients {
            assert!(
                source.contains("fence::check(action)?;"),
                "{kind}: no fence check before its requests"
            );
        }
    }

    /// A client that cannot be built says which input is wrong: a missing
    /// credential reports as credentials, an unusable field as the spec.
    #[test]
    fn connect_errors_name_the_input_at_fault() {
        use clusterscale_core::api::Precondition;
        use clusterscale_core::clock::SystemClock;
        let attempt = |spec: &ScaledClusterSpec, creds: &Credentials| {
            connect(
                spec,
                "t",
                creds,
                None,
                Arc::new(SystemClock),
                ConnectOptions::default(),
            )
            .err()
            .expect("refused")
        };
        let keys = Credentials::new("test")
            .with("secretId", "AKID")
            .with("secretKey", "key");
        let e = attempt(&tencent(), &Credentials::new("Secret data/tc"));
        assert!(
            matches!(&e, ConnectError::MissingCredential(m) if m.key == "secretId"),
            "{e:?}"
        );
        assert_eq!(e.precondition(), Precondition::CredentialsMissing);

        let mut spec = tencent();
        if let Some(t) = spec.tencent.as_mut() {
            t.endpoint = Some("ftp://emr.example.com/path".into());
        }
        let e = attempt(&spec, &keys);
        assert!(e.to_string().contains("spec.tencent.endpoint"), "{e}");
        assert_eq!(e.precondition(), Precondition::InvalidSpec);

        let huawei = ScaledClusterSpec::test().huawei(HuaweiSpec::test());
        let e = attempt(&huawei, &Credentials::new("Secret data/hw"));
        assert_eq!(e.precondition(), Precondition::CredentialsMissing, "{e}");

        let mut none = tencent();
        none.tencent = None;
        none.simulated = None;
        let e = attempt(&none, &keys);
        assert!(matches!(e, ConnectError::NoCloud { .. }), "{e:?}");
        assert_eq!(e.precondition(), Precondition::InvalidSpec);
    }

    #[test]
    fn every_kind_has_its_own_provider() {
        for kind in CloudKind::ALL {
            assert_eq!(provider(kind).kind(), kind);
        }
        assert_eq!(CloudKind::choices(), "tencent, huawei or simulated");
    }

    #[test]
    fn providers_read_their_own_block() {
        let t = tencent();
        let h = ScaledClusterSpec::test().huawei(HuaweiSpec::test());
        let s = ScaledClusterSpec::test();
        assert_eq!(
            of(&t).unwrap().target_key(&t).as_deref(),
            Some("tencent/ap-guangzhou/emr-1")
        );
        assert_eq!(
            of(&h).unwrap().target_key(&h).as_deref(),
            Some("huawei/cn-north-4/p/c")
        );
        assert_eq!(of(&s).unwrap().target_key(&s), None);
        assert_eq!(of(&t).unwrap().secret_name(&t), Some("tc"));
        assert_eq!(of(&h).unwrap().secret_name(&h), Some("hw"));
        assert_eq!(of(&s).unwrap().secret_name(&s), None);
        assert!(provider(CloudKind::Huawei).block_json(&t).is_none());
        assert!(provider(CloudKind::Tencent).block_json(&t).is_some());
    }

    #[test]
    fn the_token_window_is_the_clouds_own() {
        assert_eq!(
            provider(CloudKind::Tencent)
                .capabilities()
                .token_window
                .as_secs(),
            240
        );
        assert!(
            !provider(CloudKind::Huawei)
                .capabilities()
                .idempotent_scale_out
        );
    }
}
