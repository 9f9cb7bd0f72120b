//! Huawei Cloud MRS, API v1.1 (cloud-apis.md part B) and v2 node groups (part C1).
//!
//! - [`sign`]: AK/SK `SDK-HMAC-SHA256` signing (and verification, for the fake).
//! - [`token`]: IAM password tokens, cached, refreshed once when rejected.
//! - [`federation`]: workload identity, a projected ServiceAccount token
//!   exchanged for temporary AK/SK through IAM OIDC federation.
//! - [`wire`]: request and response bodies.
//! - [`errors`]: the error-code table.
//! - [`client`]: [`HuaweiCloud`], the [`Cloud`](clusterscale_core::cloud::Cloud) implementation.
//! - [`interpret`]: cluster detail and hosts to state, counts, progress, pre-checks and the hosts a scale-in names; pure, no I/O.
//!
//! # Credentials
//!
//! The keys present in the Secret (or the environment, see
//! [`credentials_from_env`]) choose the authentication:
//!
//! | Secret key      | Environment variable              | Mode                     |
//! |-----------------|-----------------------------------|--------------------------|
//! | `accessKey`     | `HUAWEICLOUD_SDK_AK`              | AK/SK (preferred)        |
//! | `secretKey`     | `HUAWEICLOUD_SDK_SK`              | AK/SK                    |
//! | `securityToken` | `HUAWEICLOUD_SDK_SECURITY_TOKEN`  | AK/SK, temporary (optional) |
//! | `username`      | `HUAWEICLOUD_USERNAME`            | IAM token                |
//! | `password`      | `HUAWEICLOUD_PASSWORD`            | IAM token                |
//! | `domainName`    | `HUAWEICLOUD_DOMAIN_NAME`         | IAM token                |
//!
//! When `accessKey` or `secretKey` is present, AK/SK is used (and both are
//! required); otherwise `username`, `password` and `domainName` are all
//! required and an IAM token is obtained. The token is scoped to
//! `spec.huawei.projectId`.
//!
//! Without long-lived keys, a client signs with temporary keys from a
//! shared [`KeySource`](clusterscale_core::cloud::keys::KeySource) on a
//! [`federation::IdTokenExchange`] (the SDK's `HUAWEICLOUD_SDK_IDP_ID` and
//! `HUAWEICLOUD_SDK_ID_TOKEN_FILE`): [`HuaweiCloud::with_key_source`].

pub mod client;
pub mod errors;
pub mod federation;
pub mod interpret;
pub mod sign;
pub mod token;
pub mod validate;
pub mod wire;

pub use client::{ClusterGroups, ExpandOptions, HuaweiCloud, NodeListing, ShrinkOptions};
pub use interpret::{GroupResizeOutcome, MrsClusterType, NodeGroups, ReadError};

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::account::{CloudAccountSpec, DEFAULT_TOKEN_FILE};
use clusterscale_core::api::validate::Violation;
use clusterscale_core::api::{
    AccountRef, CloudKind, HuaweiSpec, ScaledClusterSpec, SecretRef, TaskPoolSpec,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::{Credentials, MissingCredential, SecretString};
use clusterscale_core::cloud::http::{parse_endpoint, Endpoint};
use clusterscale_core::cloud::keys::Exchange;
use clusterscale_core::cloud::provider::{
    CloudProvider, Connect, ConnectError, NoKnobs, SecretKeys,
};
use clusterscale_core::cloud::{Capabilities, Cloud};

/// Secret key: access key id (AK/SK mode).
pub const KEY_ACCESS_KEY: &str = "accessKey";
/// Secret key: secret access key (AK/SK mode).
pub const KEY_SECRET_KEY: &str = "secretKey";
/// Secret key: security token of temporary AK/SK (optional).
pub const KEY_SECURITY_TOKEN: &str = "securityToken";
/// Secret key: IAM user name (token mode).
pub const KEY_USERNAME: &str = "username";
/// Secret key: IAM user password (token mode).
pub const KEY_PASSWORD: &str = "password";
/// Secret key: account (domain) name of the IAM user (token mode).
pub const KEY_DOMAIN_NAME: &str = "domainName";

/// Environment variables read by [`credentials_from_env`], as
/// `(Secret key, variable)` pairs.
pub const ENV_VARS: &[(&str, &str)] = &[
    (KEY_ACCESS_KEY, "HUAWEICLOUD_SDK_AK"),
    (KEY_SECRET_KEY, "HUAWEICLOUD_SDK_SK"),
    (KEY_SECURITY_TOKEN, "HUAWEICLOUD_SDK_SECURITY_TOKEN"),
    (KEY_USERNAME, "HUAWEICLOUD_USERNAME"),
    (KEY_PASSWORD, "HUAWEICLOUD_PASSWORD"),
    (KEY_DOMAIN_NAME, "HUAWEICLOUD_DOMAIN_NAME"),
];

/// Huawei credentials from the environment (for the CLI), under the same key
/// names as the Secret.
pub fn credentials_from_env() -> Credentials {
    Credentials::from_env(ENV_VARS)
}

/// Huawei Cloud MRS behind the provider seam.
#[derive(Clone, Copy, Debug, Default)]
pub struct HuaweiProvider;

impl CloudProvider for HuaweiProvider {
    const KIND: CloudKind = CloudKind::Huawei;
    type Spec = HuaweiSpec;
    type Knobs = NoKnobs;
    const SECRET_KEYS: SecretKeys = SecretKeys {
        sets: &[
            &[KEY_ACCESS_KEY, KEY_SECRET_KEY],
            &[KEY_USERNAME, KEY_PASSWORD, KEY_DOMAIN_NAME],
        ],
        expected: "accessKey, secretKey (optional securityToken), or username, password, domainName for IAM tokens",
    };
    const CAPABILITIES: Capabilities = Capabilities {
        scale_out_core: true,
        scale_out_task: true,
        scale_in_core: true,
        scale_in_task: true,
        // Each pool is an MRS node group (`spec.taskPools[].huawei.nodeGroup`),
        // counted from ShowClusterDetails and resized by v2 expand/shrink.
        named_pools: true,
        graceful_scale_in: false,
        max_out_per_call: None,
        // MRS has no idempotency token: the engine never re-sends a resize.
        idempotent_scale_out: false,
        token_window: Duration::ZERO,
        acceptance_grace: client::ACCEPT_GRACE,
    };

    fn block(spec: &ScaledClusterSpec) -> Option<&HuaweiSpec> {
        spec.huawei.as_deref()
    }

    fn validate(block: &HuaweiSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
        validate::validate(block, pools)
    }

    fn secret_ref(block: &HuaweiSpec) -> Option<&SecretRef> {
        block.credentials_secret_ref.as_ref()
    }

    fn account_ref(block: &HuaweiSpec) -> Option<&AccountRef> {
        block.account_ref.as_ref()
    }

    fn credentials_from_env() -> Credentials {
        credentials_from_env()
    }

    /// The AK, else the IAM user (`domainName/username`).
    fn account_id(creds: &Credentials) -> Option<String> {
        let value = |key| creds.get(key).map(|v| v.expose().trim().to_string());
        value(KEY_ACCESS_KEY).or_else(|| {
            let user = value(KEY_USERNAME)?;
            Some(format!(
                "{}/{user}",
                value(KEY_DOMAIN_NAME).unwrap_or_default()
            ))
        })
    }

    fn target_key(h: &HuaweiSpec) -> Option<String> {
        Some(format!(
            "huawei/{}/{}/{}",
            h.region, h.project_id, h.cluster_id
        ))
    }

    fn connect(block: &HuaweiSpec, with: Connect<'_>) -> Result<Arc<dyn Cloud>, ConnectError> {
        let cloud = match with.keys {
            Some(keys) => HuaweiCloud::with_key_source(block, keys)?,
            None => HuaweiCloud::new(block, with.creds)?,
        };
        let mut cloud = cloud.with_clock(with.clock);
        if let Some(http) = with.options.http {
            cloud = cloud.with_http(http);
        }
        Ok(Arc::new(cloud))
    }

    /// `spec.huawei.workloadIdentity`: IAM id-token, then `securitytokens`.
    /// The IAM token is scoped to `projectId`, else the domain (`domainId`
    /// or `domainName`), else unscoped.
    fn account_exchange(
        account: &CloudAccountSpec,
        http: Option<reqwest::Client>,
        _clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let Some(wi) = account
            .huawei
            .as_ref()
            .and_then(|h| h.workload_identity.as_ref())
        else {
            return Ok(None);
        };
        let named = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let scope = match (
            named(&wi.project_id),
            named(&wi.domain_id),
            named(&wi.domain_name),
        ) {
            (Some(p), _, _) => federation::Scope::ProjectId(p),
            (None, Some(d), _) => federation::Scope::DomainId(d),
            (None, None, Some(d)) => federation::Scope::DomainName(d),
            (None, None, None) => federation::Scope::Unscoped,
        };
        let mut config = federation::IdTokenConfig::new(
            wi.idp_id.clone(),
            wi.token_file.as_deref().unwrap_or(DEFAULT_TOKEN_FILE),
        )
        .scope(scope)
        .duration_seconds(
            u32::try_from(wi.duration_seconds).unwrap_or(federation::DEFAULT_DURATION_SECONDS),
        );
        if let Some(url) = named(&wi.iam_endpoint) {
            config = config.iam_endpoint(url);
        }
        let mut exchange = federation::IdTokenExchange::new(config)?;
        if let Some(http) = http {
            exchange = exchange.with_http(http);
        }
        Ok(Some(Arc::new(exchange)))
    }

    fn environment_help() -> String {
        format!(
            "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (static keys), or {} and {} (workload identity)",
            federation::ENV_IDP_ID,
            federation::ENV_ID_TOKEN_FILE
        )
    }

    /// The SDK's variables (`HUAWEICLOUD_SDK_IDP_ID`, ...;
    /// [`federation::IdTokenConfig::from_vars`]).
    fn exchange_from_env(
        http: Option<reqwest::Client>,
        _clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let Some(mut exchange) = federation::IdTokenExchange::from_env()? else {
            return Ok(None);
        };
        if let Some(http) = http {
            exchange = exchange.with_http(http);
        }
        Ok(Some(Arc::new(exchange)))
    }

    fn observations_per_second(_: &NoKnobs) -> Option<u32> {
        Some(client::REQUESTS_PER_SECOND)
    }
}

/// The MRS endpoint: `spec.huawei.endpoint` (http:// only for loopback) or
/// `https://mrs.{region}.myhuaweicloud.com`.
pub fn mrs_endpoint(spec: &HuaweiSpec) -> Result<Endpoint, ConnectError> {
    let url = match &spec.endpoint {
        Some(e) if !e.trim().is_empty() => e.trim().to_string(),
        _ => format!("https://mrs.{}.myhuaweicloud.com", spec.region),
    };
    parse_endpoint("spec.huawei.endpoint", &url).map_err(ConnectError::Spec)
}

/// The IAM endpoint: `spec.huawei.iamEndpoint` (http:// only for loopback)
/// or `https://iam.{region}.myhuaweicloud.com`.
pub fn iam_endpoint(spec: &HuaweiSpec) -> Result<Endpoint, ConnectError> {
    let url = match &spec.iam_endpoint {
        Some(e) if !e.trim().is_empty() => e.trim().to_string(),
        _ => format!("https://iam.{}.myhuaweicloud.com", spec.region),
    };
    parse_endpoint("spec.huawei.iamEndpoint", &url).map_err(ConnectError::Spec)
}

/// The AK/SK pair.
#[derive(Clone, PartialEq, Eq)]
pub struct AkSk {
    pub access_key: String,
    pub secret_key: SecretString,
    /// Present for temporary credentials; sent (and signed) as `X-Security-Token`.
    pub security_token: Option<SecretString>,
}

impl std::fmt::Debug for AkSk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AkSk")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field("temporary", &self.security_token.is_some())
            .finish()
    }
}

/// Which authentication the credentials select.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthConfig {
    AkSk(AkSk),
    Password(token::PasswordCredentials),
}

impl AuthConfig {
    /// Choose by the keys present (see the module docs).
    pub fn from_credentials(creds: &Credentials) -> Result<Self, ConnectError> {
        if creds.has(KEY_ACCESS_KEY) || creds.has(KEY_SECRET_KEY) {
            return Ok(AuthConfig::AkSk(AkSk {
                access_key: creds.require(KEY_ACCESS_KEY)?.expose().trim().to_string(),
                secret_key: creds.require(KEY_SECRET_KEY)?.clone(),
                security_token: creds.get(KEY_SECURITY_TOKEN).cloned(),
            }));
        }
        if creds.has(KEY_USERNAME) || creds.has(KEY_PASSWORD) || creds.has(KEY_DOMAIN_NAME) {
            return Ok(AuthConfig::Password(token::PasswordCredentials {
                username: creds.require(KEY_USERNAME)?.expose().trim().to_string(),
                password: creds.require(KEY_PASSWORD)?.clone(),
                domain_name: creds.require(KEY_DOMAIN_NAME)?.expose().trim().to_string(),
            }));
        }
        // Neither set: name what AK/SK (the recommended mode) needs.
        Err(MissingCredential {
            key: format!(
                "{KEY_ACCESS_KEY}/{KEY_SECRET_KEY} (or {KEY_USERNAME}/{KEY_PASSWORD}/{KEY_DOMAIN_NAME})"
            ),
            origin: creds.source.clone(),
        }
        .into())
    }

    /// `ak-sk` or `token`, for logs and status.
    pub fn mode(&self) -> &'static str {
        match self {
            AuthConfig::AkSk(_) => "ak-sk",
            AuthConfig::Password(_) => "token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> HuaweiSpec {
        HuaweiSpec::test().cluster(
            "0123456789abcdef0123456789abcdef",
            "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d",
        )
    }

    #[test]
    fn default_and_overridden_endpoints() {
        let mut s = spec();
        assert_eq!(
            mrs_endpoint(&s).unwrap().base,
            "https://mrs.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(
            iam_endpoint(&s).unwrap().base,
            "https://iam.cn-north-4.myhuaweicloud.com"
        );
        s.endpoint = Some("http://127.0.0.1:9000".into());
        s.iam_endpoint = Some("http://127.0.0.1:9001/".into());
        assert_eq!(mrs_endpoint(&s).unwrap().host, "127.0.0.1:9000");
        assert_eq!(iam_endpoint(&s).unwrap().host, "127.0.0.1:9001");
        s.endpoint = Some("http://mrs.example.com".into());
        let e = mrs_endpoint(&s).unwrap_err().to_string();
        assert!(
            e.contains("spec.huawei.endpoint") && e.contains("loopback"),
            "{e}"
        );
        s.iam_endpoint = Some("http://10.1.1.1".into());
        assert!(iam_endpoint(&s)
            .unwrap_err()
            .to_string()
            .contains("spec.huawei.iamEndpoint"));
    }

    #[test]
    fn secret_keys_choose_the_auth() {
        let c = Credentials::new("secret ns/hw")
            .with("accessKey", "AK")
            .with("secretKey", "SK\n");
        match AuthConfig::from_credentials(&c).unwrap() {
            AuthConfig::AkSk(a) => {
                assert_eq!(a.access_key, "AK");
                assert_eq!(a.secret_key.expose(), "SK");
                assert!(a.security_token.is_none());
                assert!(!format!("{a:?}").contains("\"SK\""));
            }
            other => panic!("{other:?}"),
        }
        let c = c.with("securityToken", "STS");
        assert!(matches!(
            AuthConfig::from_credentials(&c).unwrap(),
            AuthConfig::AkSk(AkSk {
                security_token: Some(_),
                ..
            })
        ));
        let c = Credentials::new("secret ns/hw").with("accessKey", "AK");
        let e = AuthConfig::from_credentials(&c).unwrap_err().to_string();
        assert!(e.contains("secretKey") && e.contains("ns/hw"), "{e}");

        let c = Credentials::new("secret ns/hw")
            .with("username", "ops")
            .with("password", "pw")
            .with("domainName", "acme");
        let a = AuthConfig::from_credentials(&c).unwrap();
        assert_eq!(a.mode(), "token");
        assert!(!format!("{a:?}").contains("pw\""));
        let c = Credentials::new("secret ns/hw")
            .with("username", "ops")
            .with("password", "pw");
        assert!(AuthConfig::from_credentials(&c)
            .unwrap_err()
            .to_string()
            .contains("domainName"));

        let e = AuthConfig::from_credentials(&Credentials::new("environment"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("accessKey") && e.contains("username") && e.contains("environment"),
            "{e}"
        );
    }

    #[test]
    fn env_names_are_the_documented_ones() {
        let names: Vec<&str> = ENV_VARS.iter().map(|(_, v)| *v).collect();
        for n in [
            "HUAWEICLOUD_SDK_AK",
            "HUAWEICLOUD_SDK_SK",
            "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        ] {
            assert!(names.contains(&n));
        }
    }
}
