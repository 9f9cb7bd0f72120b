//! The one place that lists the clouds: [`provider`] maps each
//! [`CloudKind`] to its crate's [`CloudProvider`]. Adding a cloud is its
//! crate, a `CloudKind` variant and one arm here; the compiler flags the rest.

pub use clusterscale_core::cloud::provider::*;

use super::huawei::HuaweiProvider;
use super::simulated::SimulatedProvider;
use super::tencent::TencentProvider;
use crate::api::{CloudKind, ScaledClusterSpec};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HuaweiSpec, TencentSpec};

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
