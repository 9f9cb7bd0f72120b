//! The provider seam: everything the rest of the operator needs to know
//! about one cloud, in one trait.
//!
//! A cloud implements [`CloudProvider`] in its own crate (the spec type it
//! reads, its Secret keys, its environment credentials, its target key, its
//! capabilities and how its client is built); [`Provider`] is the same seen
//! through a spec, for callers that do not know which cloud they hold. The
//! one exhaustive `match` on [`CloudKind`] that lists the providers is
//! `clusterscale::cloud::provider`, in the operator crate, the only
//! crate that depends on every cloud.

use std::sync::Arc;

use serde::Serialize;

use super::credentials::Credentials;
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

/// Client settings that come from the command line rather than the spec.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Tencent requests per second per (SecretId, action); `None`: the
    /// client's default (EMR allows 20).
    pub tencent_rate_limit: Option<u32>,
    /// The HTTP client that every cloud client built with these options
    /// shares: one connection pool per endpoint host and one TLS
    /// configuration, rather than one per ScaledCluster (each rustls
    /// configuration holds its own copy of the webpki roots: at 1,000
    /// Tencent clusters that was half the operator's memory). `None`: each
    /// client makes its own ([`super::http::client`]).
    pub http: Option<reqwest::Client>,
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
    /// Observations per second one account allows (its per-action request
    /// rate, each action being called about once per observation); `None`:
    /// no limit. The controller admits resyncs within it.
    fn observations_per_second(options: &ConnectOptions) -> Option<u32>;
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
    fn observations_per_second(&self, options: &ConnectOptions) -> Option<u32>;
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

    fn observations_per_second(&self, options: &ConnectOptions) -> Option<u32> {
        P::observations_per_second(options)
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
