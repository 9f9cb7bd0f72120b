//! The provider seam: everything the rest of the operator needs to know
//! about one cloud, in one trait, and the one exhaustive `match` on
//! [`CloudKind`] that lists them ([`provider`]).
//!
//! A cloud implements [`CloudProvider`] in its own module (the spec type it
//! reads, its Secret keys, its environment credentials, its target key, its
//! capabilities and how its client is built); [`Provider`] is the same seen
//! through a spec, for callers that do not know which cloud they hold.
//! Adding a cloud: its module, a [`CloudKind`] variant and its spec field,
//! and an arm in [`provider`]; the compiler points at anything else.

use std::sync::Arc;

use serde::Serialize;

use super::connect::ConnectOptions;
use super::credentials::Credentials;
use super::huawei::HuaweiProvider;
use super::simulated::SimulatedProvider;
use super::tencent::TencentProvider;
use super::{Capabilities, Cloud};
use crate::api::{CloudKind, ScaledClusterSpec, SecretRef};
use crate::clock::Clock;

/// The Secret keys a cloud accepts: any one complete set will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretKeys {
    pub sets: &'static [&'static [&'static str]],
    /// How an error names them.
    pub expected: &'static str,
}

/// What a client is built with, beyond the spec's block.
pub struct Connect<'a> {
    /// A name for in-process state (the simulated model).
    pub name: &'a str,
    pub creds: &'a Credentials,
    pub clock: Arc<dyn Clock>,
    pub options: ConnectOptions,
}

/// One cloud, as the operator outside its module sees it.
pub trait CloudProvider: Sync + 'static {
    const KIND: CloudKind;
    /// The spec's block for this cloud (`spec.tencent`, ...).
    type Spec: Serialize;
    const SECRET_KEYS: SecretKeys;
    /// What the planner may ask of it (the client reports the same).
    const CAPABILITIES: Capabilities;

    fn block(spec: &ScaledClusterSpec) -> Option<&Self::Spec>;
    /// The Secret the block names, when the cloud needs credentials.
    fn secret_ref(block: &Self::Spec) -> Option<&SecretRef>;
    /// Credentials from the environment variables the vendor's SDKs read (the CLI).
    fn credentials_from_env() -> Credentials;
    /// A stable key for the remote cluster, to find two resources aimed at
    /// the same one; `None` when it cannot be shared.
    fn target_key(block: &Self::Spec) -> Option<String>;
    /// Build the client. Errors name the spec field or credential key.
    fn connect(block: &Self::Spec, with: Connect<'_>) -> Result<Arc<dyn Cloud>, String>;
}

/// A [`CloudProvider`] seen through a whole spec.
pub trait Provider: Sync {
    fn kind(&self) -> CloudKind;
    /// The block the client is built from, as JSON (a cache fingerprint);
    /// `None` when the spec has no block for this cloud.
    fn block_json(&self, spec: &ScaledClusterSpec) -> Option<Vec<u8>>;
    fn secret_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str>;
    fn secret_keys(&self) -> SecretKeys;
    fn credentials_from_env(&self) -> Credentials;
    fn target_key(&self, spec: &ScaledClusterSpec) -> Option<String>;
    fn capabilities(&self) -> Capabilities;
    fn connect(
        &self,
        spec: &ScaledClusterSpec,
        with: Connect<'_>,
    ) -> Result<Arc<dyn Cloud>, String>;
}

impl<P: CloudProvider> Provider for P {
    fn kind(&self) -> CloudKind {
        P::KIND
    }

    fn block_json(&self, spec: &ScaledClusterSpec) -> Option<Vec<u8>> {
        P::block(spec).map(|b| serde_json::to_vec(b).unwrap_or_default())
    }

    fn secret_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str> {
        P::block(spec)
            .and_then(P::secret_ref)
            .map(|r| r.name.as_str())
    }

    fn secret_keys(&self) -> SecretKeys {
        P::SECRET_KEYS
    }

    fn credentials_from_env(&self) -> Credentials {
        P::credentials_from_env()
    }

    fn target_key(&self, spec: &ScaledClusterSpec) -> Option<String> {
        P::block(spec).and_then(P::target_key)
    }

    fn capabilities(&self) -> Capabilities {
        P::CAPABILITIES
    }

    fn connect(
        &self,
        spec: &ScaledClusterSpec,
        with: Connect<'_>,
    ) -> Result<Arc<dyn Cloud>, String> {
        match P::block(spec) {
            Some(block) => P::connect(block, with),
            None => Err(format!("spec.{} is not set", P::KIND)),
        }
    }
}

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
