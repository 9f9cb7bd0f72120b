//! The clouds, as the operator sees them: the one `match` that lists them
//! ([`provider`]), and the client for a spec's cloud ([`connect`]), one place
//! for the CLI and the controller. The trait and types are
//! `clusterscale-core`'s; each cloud is its own crate.

use std::sync::Arc;

use clusterscale_core::api::{CloudKind, ScaledClusterSpec};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::provider::{Connect, ConnectOptions, Provider};
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

/// The client for the spec's cloud, with `creds` from a Secret or the
/// environment; `name` names in-process state (the simulated model, which
/// starts afresh with each client). Errors name the spec field or credential key.
pub fn connect(
    spec: &ScaledClusterSpec,
    name: &str,
    creds: &Credentials,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, String> {
    let Some(provider) = of(spec) else {
        return Err(format!(
            "spec: exactly one of {} must be set",
            CloudKind::choices()
        ));
    };
    provider.connect(
        spec,
        Connect {
            name,
            creds,
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
    use clusterscale_core::api::{HuaweiSpec, TencentSpec};

    fn tencent() -> ScaledClusterSpec {
        ScaledClusterSpec::test().tencent(TencentSpec::test())
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
