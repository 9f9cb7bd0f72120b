//! Tencent Cloud EMR, API 2019-01-03 (cloud-apis.md part A).
//!
//! - [`sign`]: TC3-HMAC-SHA256 signing (and verification, for the fake).
//! - [`wire`]: request and response bodies of the six actions used.
//! - [`errors`]: the error-code table.
//! - [`client`]: [`TencentCloud`], the [`Cloud`](clusterscale_core::cloud::Cloud) implementation.
//! - [`interpret`]: answers to state, progress, counts and scale-in choice; pure, no I/O.
//! - [`sts`]: STS `AssumeRoleWithWebIdentity`, a workload identity token
//!   traded for temporary keys ([`sts::WebIdentityExchange`]).
//!
//! # Credentials
//!
//! | Secret key  | Environment variable          | Meaning                           |
//! |-------------|-------------------------------|-----------------------------------|
//! | `secretId`  | `TENCENTCLOUD_SECRET_ID`      | SecretId (required)               |
//! | `secretKey` | `TENCENTCLOUD_SECRET_KEY`     | SecretKey (required)              |
//! | `token`     | `TENCENTCLOUD_SESSION_TOKEN`  | STS token, sent as `X-TC-Token`   |
//!
//! The environment variable names are the ones the official SDKs read.
//!
//! Without long-lived keys (TKE workload identity), a
//! [`KeySource::exchanged`](clusterscale_core::cloud::keys::KeySource::exchanged)
//! over a [`sts::WebIdentityExchange`] (configured from `TKE_REGION`,
//! `TKE_PROVIDER_ID`, `TKE_ROLE_ARN` and `TKE_WEB_IDENTITY_TOKEN_FILE`)
//! hands out temporary keys, which sign with their token as `X-TC-Token`;
//! clients share it through [`TencentCloud::with_key_source`].

pub mod client;
pub mod errors;
pub mod interpret;
pub mod sign;
pub mod sts;
pub mod validate;
pub mod wire;

pub use client::{PoolChargeType, PoolScaleOut, TencentCloud, TencentOptions};

use std::sync::Arc;

use clusterscale_core::api::account::{CloudAccountSpec, DEFAULT_TOKEN_FILE};
use clusterscale_core::api::validate::Violation;
use clusterscale_core::api::{
    AccountRef, CloudKind, ScaledClusterSpec, SecretRef, TaskPoolSpec, TencentSpec,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::http::{parse_endpoint, Endpoint};
use clusterscale_core::cloud::keys::Exchange;
use clusterscale_core::cloud::provider::{CloudProvider, Connect, ConnectError, SecretKeys};
use clusterscale_core::cloud::{Capabilities, Cloud};

/// The default API endpoint (the international site is `emr.intl.tencentcloudapi.com`).
pub const DEFAULT_ENDPOINT: &str = "https://emr.tencentcloudapi.com";
/// The service name in the credential scope.
pub const SERVICE: &str = "emr";
/// Requests per second per (SecretId, action), as Tencent documents for the scaling actions.
pub const DEFAULT_RATE_LIMIT: u32 = 20;

/// Secret key: SecretId.
pub const KEY_SECRET_ID: &str = "secretId";
/// Secret key: SecretKey.
pub const KEY_SECRET_KEY: &str = "secretKey";
/// Secret key: STS session token (optional).
pub const KEY_TOKEN: &str = "token";

/// Environment variables read by [`credentials_from_env`], as `(Secret key, variable)` pairs.
pub const ENV_VARS: &[(&str, &str)] = &[
    (KEY_SECRET_ID, "TENCENTCLOUD_SECRET_ID"),
    (KEY_SECRET_KEY, "TENCENTCLOUD_SECRET_KEY"),
    (KEY_TOKEN, "TENCENTCLOUD_SESSION_TOKEN"),
];

/// Tencent credentials from the environment (for the CLI), under the same key
/// names as the Secret.
pub fn credentials_from_env() -> Credentials {
    Credentials::from_env(ENV_VARS)
}

/// Tencent's command-line knobs: flags of `run`, `plan` and `apply`.
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
// No argument group: several clouds' knobs are flattened into one command.
#[group(skip)]
pub struct TencentKnobs {
    /// Tencent requests per second per (SecretId, action); EMR allows 20.
    #[arg(
        long = "tencent-rate-limit",
        value_name = "TENCENT_RATE_LIMIT",
        default_value_t = DEFAULT_RATE_LIMIT
    )]
    pub rate_limit: u32,
}

impl Default for TencentKnobs {
    fn default() -> Self {
        Self {
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

/// Tencent Cloud EMR behind the provider seam.
#[derive(Clone, Copy, Debug, Default)]
pub struct TencentProvider;

impl CloudProvider for TencentProvider {
    const KIND: CloudKind = CloudKind::Tencent;
    type Spec = TencentSpec;
    type Knobs = TencentKnobs;
    const SECRET_KEYS: SecretKeys = SecretKeys {
        sets: &[&[KEY_SECRET_ID, KEY_SECRET_KEY]],
        expected: "secretId, secretKey (optional token)",
    };
    const CAPABILITIES: Capabilities = Capabilities {
        max_out_per_call: Some(client::MAX_OUT_PER_CALL),
        token_window: client::CLIENT_TOKEN_WINDOW,
        // spec.taskPools: a pool is the Task nodes tagged with its name (client.rs).
        named_pools: true,
        ..Capabilities::ALL
    };

    fn block(spec: &ScaledClusterSpec) -> Option<&TencentSpec> {
        spec.tencent.as_deref()
    }

    fn validate(block: &TencentSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
        validate::validate(block, pools)
    }

    fn secret_ref(block: &TencentSpec) -> Option<&SecretRef> {
        block.credentials_secret_ref.as_ref()
    }

    fn account_ref(block: &TencentSpec) -> Option<&AccountRef> {
        block.account_ref.as_ref()
    }

    fn credentials_from_env() -> Credentials {
        credentials_from_env()
    }

    /// The SecretId.
    fn account_id(creds: &Credentials) -> Option<String> {
        creds
            .get(KEY_SECRET_ID)
            .map(|id| id.expose().trim().to_string())
    }

    fn target_key(t: &TencentSpec) -> Option<String> {
        Some(format!("tencent/{}/{}", t.region, t.instance_id))
    }

    fn connect(block: &TencentSpec, with: Connect<'_>) -> Result<Arc<dyn Cloud>, ConnectError> {
        let options = TencentOptions {
            clock: with.clock,
            rate_limit_per_second: Self::knobs(&with.options).rate_limit.max(1),
            http: with.options.http,
            ..TencentOptions::default()
        };
        match with.keys {
            Some(keys) => TencentCloud::with_key_source(block, keys, options),
            None => TencentCloud::new(block, with.creds, options),
        }
        .map(|c| Arc::new(c) as Arc<dyn Cloud>)
    }

    /// `spec.tencent.workloadIdentity`: STS `AssumeRoleWithWebIdentity`.
    fn account_exchange(
        account: &CloudAccountSpec,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let Some(wi) = account
            .tencent
            .as_ref()
            .and_then(|t| t.workload_identity.as_ref())
        else {
            return Ok(None);
        };
        let mut config = sts::WebIdentityConfig::new(
            wi.region.clone(),
            wi.role_arn.clone(),
            wi.provider_id.clone(),
            wi.token_file.as_deref().unwrap_or(DEFAULT_TOKEN_FILE),
        );
        if let Some(endpoint) = wi.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            config.endpoint = endpoint.trim().to_string();
        }
        config.duration_seconds =
            u32::try_from(wi.session_duration_seconds).unwrap_or(sts::DEFAULT_DURATION_SECONDS);
        let exchange = sts::WebIdentityExchange::new(config, sts::ExchangeOptions { clock, http })?;
        Ok(Some(Arc::new(exchange)))
    }

    fn environment_help() -> String {
        format!(
            "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (static keys), or {}, {}, {} and {} (workload identity)",
            sts::ENV_REGION,
            sts::ENV_PROVIDER_ID,
            sts::ENV_ROLE_ARN,
            sts::ENV_TOKEN_FILE
        )
    }

    /// TKE's variables (`TKE_ROLE_ARN`, ...; [`sts::WebIdentityConfig::from_env`]).
    fn exchange_from_env(
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let Some(config) = sts::WebIdentityConfig::from_env_if_set()? else {
            return Ok(None);
        };
        let exchange = sts::WebIdentityExchange::new(config, sts::ExchangeOptions { clock, http })?;
        Ok(Some(Arc::new(exchange)))
    }

    /// One observation is one `DescribeInstances` and one `DescribeClusterNodes`
    /// (per 100 nodes), with or without Task pools.
    fn observations_per_second(knobs: &TencentKnobs) -> Option<u32> {
        Some(knobs.rate_limit.max(1))
    }
}

/// The EMR endpoint: `spec.tencent.endpoint` (http:// only for loopback) or
/// [`DEFAULT_ENDPOINT`].
pub fn endpoint(spec: &TencentSpec) -> Result<Endpoint, ConnectError> {
    let url = match &spec.endpoint {
        Some(e) if !e.trim().is_empty() => e.trim(),
        _ => DEFAULT_ENDPOINT,
    };
    parse_endpoint("spec.tencent.endpoint", url).map_err(ConnectError::Spec)
}
