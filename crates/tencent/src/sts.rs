//! Tencent STS `AssumeRoleWithWebIdentity` (API 2018-08-13): a workload's
//! projected ServiceAccount token (a JWT) traded for temporary keys, the
//! [`Exchange`] behind a [`KeySource`](clusterscale_core::cloud::keys::KeySource)
//! on TKE (docs/credentials-design.md part 1).
//!
//! What is sent is what the SDKs send (design doc 1.1, 1.2):
//! - `POST https://sts.tencentcloudapi.com/` (or the configured endpoint;
//!   `http://` only for loopback), **unsigned**: `Authorization: SKIP`, no
//!   `X-TC-Token`;
//! - headers `Host`, `Content-Type: application/json`, `X-TC-Action`,
//!   `X-TC-Version: 2018-08-13`, `X-TC-Timestamp`, `X-TC-Region`,
//!   `X-TC-RequestClient`;
//! - body `{"ProviderId", "WebIdentityToken", "RoleArn", "RoleSessionName",
//!   "DurationSeconds"}`, the token being the file's contents as read.
//!
//! The answer's `Credentials{TmpSecretId, TmpSecretKey, Token}` become the
//! [`Keys`], expiring at `ExpiredTime` (Unix seconds; `Expiration`, the same
//! instant in ISO 8601, only when `ExpiredTime` is absent). A
//! `Response.Error` is classified by [`errors`](super::errors) with the STS
//! rules ([`STS_RULES`](super::errors::STS_RULES)), keeping the code and the
//! request id; an answer without a usable field is the crate's
//! `MalformedResponse`, naming the field, the action and the request id.
//!
//! The token file is read at every exchange, since the kubelet rotates a
//! projected token before it expires; a file that is missing, unreadable or
//! empty is an Auth error, `ClusterScale.TokenFileUnreadable`, naming the
//! path, and nothing is sent.
//!
//! No key, token or JWT is ever in a log line, a `Debug` output or an
//! error message: only the role, the provider, the request id and expiry.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::interpret::{parse_envelope, status_error};
use clusterscale_core::clock::{Clock, SystemClock};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_core::cloud::http::{self, malformed, parse_endpoint, transport_error, Endpoint};
use clusterscale_core::cloud::keys::{Exchange, Keys};
use clusterscale_core::cloud::provider::ConnectError;
use clusterscale_core::cloud::{CloudError, ErrorClass};

/// The SDKs' STS endpoint (the intranet one is `sts.internal.tencentcloudapi.com`).
pub const DEFAULT_ENDPOINT: &str = "https://sts.tencentcloudapi.com";
/// `X-TC-Action`.
pub const ACTION: &str = crate::errors::STS_ACTION;
/// `X-TC-Version` of STS.
pub const VERSION: &str = "2018-08-13";
/// `Authorization` of the unsigned exchange.
pub const AUTHORIZATION_SKIP: &str = "SKIP";
/// `RoleSessionName` unless configured.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "clusterscale";
/// `DurationSeconds` unless configured: the API's default.
pub const DEFAULT_DURATION_SECONDS: u32 = 7200;
/// The largest `DurationSeconds` the API documents (the Go SDK refuses
/// values outside `(0, 43200]` before sending). A role may cap it lower
/// (`InvalidParameter.OverTimeError`).
pub const MAX_DURATION_SECONDS: u32 = 43200;
/// The region sent when none is configured: the one the Go SDK always
/// sends (see [`WebIdentityConfig::from_env`]).
pub const FALLBACK_REGION: &str = "ap-guangzhou";
/// Our code for a token file that is missing, unreadable or empty.
pub const TOKEN_FILE_UNREADABLE: &str = "ClusterScale.TokenFileUnreadable";

/// `TKE_REGION`: the region (required by both SDKs).
pub const ENV_REGION: &str = "TKE_REGION";
/// `TKE_PROVIDER_ID`: `ProviderId`, the CAM OIDC provider.
pub const ENV_PROVIDER_ID: &str = "TKE_PROVIDER_ID";
/// `TKE_ROLE_ARN`: `RoleArn`.
pub const ENV_ROLE_ARN: &str = "TKE_ROLE_ARN";
/// `TKE_WEB_IDENTITY_TOKEN_FILE`: the projected token's path.
pub const ENV_TOKEN_FILE: &str = "TKE_WEB_IDENTITY_TOKEN_FILE";
/// `TKE_IDENTITY_TOKEN_FILE`: the name the Python SDK read before 2023;
/// accepted only when [`ENV_TOKEN_FILE`] is unset.
pub const ENV_TOKEN_FILE_OLD: &str = "TKE_IDENTITY_TOKEN_FILE";

/// `CLUSTERSCALE_TENCENT_STS_ENDPOINT`: the STS endpoint, e.g. the intranet
/// `https://sts.internal.tencentcloudapi.com`. Ours, not the SDKs': both
/// set the endpoint only in code ([`WebIdentityConfig::endpoint`]).
pub const ENV_ENDPOINT: &str = "CLUSTERSCALE_TENCENT_STS_ENDPOINT";
/// Every variable that asks for a web identity: any one of them set means
/// one is wanted, and then the required ones must all be.
pub const ENV_IDENTITY_VARS: &[&str] = &[
    ENV_REGION,
    ENV_PROVIDER_ID,
    ENV_ROLE_ARN,
    ENV_TOKEN_FILE,
    ENV_TOKEN_FILE_OLD,
];

/// Who to become, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentityConfig {
    /// STS endpoint, `https://host[:port]` (`http://` for loopback only).
    pub endpoint: String,
    /// `X-TC-Region`; empty: [`FALLBACK_REGION`].
    pub region: String,
    /// `RoleArn`, e.g. `qcs::cam::uin/100000000001:roleName/clusterscale`.
    pub role_arn: String,
    /// `ProviderId`, the CAM OIDC provider's name (on TKE, the cluster id).
    pub provider_id: String,
    /// `RoleSessionName`: 2 to 128 of `[A-Za-z0-9_+=,.@-]`.
    pub role_session_name: String,
    /// `DurationSeconds`: 1 to [`MAX_DURATION_SECONDS`].
    pub duration_seconds: u32,
    /// The projected ServiceAccount token, read at every exchange.
    pub token_file: PathBuf,
}

impl WebIdentityConfig {
    /// The default endpoint, session name and duration.
    pub fn new(
        region: impl Into<String>,
        role_arn: impl Into<String>,
        provider_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            region: region.into(),
            role_arn: role_arn.into(),
            provider_id: provider_id.into(),
            role_session_name: DEFAULT_ROLE_SESSION_NAME.to_string(),
            duration_seconds: DEFAULT_DURATION_SECONDS,
            token_file: token_file.into(),
        }
    }

    /// From the variables TKE's pod-identity webhook injects and the SDKs
    /// read: [`ENV_REGION`], [`ENV_PROVIDER_ID`], [`ENV_ROLE_ARN`] and
    /// [`ENV_TOKEN_FILE`] (else [`ENV_TOKEN_FILE_OLD`]). A missing one is an
    /// error naming it.
    ///
    /// The region quirk: the Go SDK's `DefaultTkeOIDCRoleArnProvider`
    /// requires `TKE_REGION` but then sends the constant `ap-guangzhou`
    /// (its `beforeRefresh` assigns the package's `regions.Guangzhou`); the
    /// Python SDK sends `TKE_REGION`. We send `TKE_REGION`, as the Python
    /// SDK does; STS evidently accepts `ap-guangzhou` for a token of any
    /// region, so that is the fallback when a region is empty
    /// (design doc 1.1).
    pub fn from_env() -> Result<Self, ConnectError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables;
    /// [`ENV_ENDPOINT`], when set, replaces the default endpoint.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let need = |name: &str| {
            get(name).ok_or_else(|| {
                ConnectError::Credential(format!(
                    "web identity: the environment variable {name} is not set"
                ))
            })
        };
        let token_file = get(ENV_TOKEN_FILE)
            .or_else(|| get(ENV_TOKEN_FILE_OLD))
            .ok_or_else(|| {
                ConnectError::Credential(format!(
                    "web identity: the environment variable {ENV_TOKEN_FILE} is not set \
                     (nor {ENV_TOKEN_FILE_OLD})"
                ))
            })?;
        let mut config = Self::new(
            need(ENV_REGION)?,
            need(ENV_ROLE_ARN)?,
            need(ENV_PROVIDER_ID)?,
            token_file,
        );
        if let Some(endpoint) = get(ENV_ENDPOINT) {
            config.endpoint = endpoint;
        }
        Ok(config)
    }

    /// [`from_vars`](Self::from_vars) when any of [`ENV_IDENTITY_VARS`] is
    /// set; `None` when none is (no web identity is asked for: the CLI then
    /// has no credentials at all, and says so).
    pub fn from_vars_if_set(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConnectError> {
        let set = |name: &&str| var(name).is_some_and(|v| !v.trim().is_empty());
        if !ENV_IDENTITY_VARS.iter().any(set) {
            return Ok(None);
        }
        Self::from_vars(var).map(Some)
    }

    /// [`from_vars_if_set`](Self::from_vars_if_set) of the process environment.
    pub fn from_env_if_set() -> Result<Option<Self>, ConnectError> {
        Self::from_vars_if_set(|name| std::env::var(name).ok())
    }
}

/// Settings of the exchange beyond its [`WebIdentityConfig`].
#[derive(Clone)]
pub struct ExchangeOptions {
    /// Source of `X-TC-Timestamp`; default the system clock.
    pub clock: Arc<dyn Clock>,
    /// The HTTP client; default [`http::client`].
    pub http: Option<reqwest::Client>,
}

impl Default for ExchangeOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            http: None,
        }
    }
}

impl fmt::Debug for ExchangeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeOptions").finish_non_exhaustive()
    }
}

/// `AssumeRoleWithWebIdentity` request body, fields in the SDK's order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithWebIdentityRequest {
    pub provider_id: String,
    /// The JWT. Secret.
    pub web_identity_token: String,
    pub role_arn: String,
    pub role_session_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

impl fmt::Debug for AssumeRoleWithWebIdentityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleWithWebIdentityRequest")
            .field("provider_id", &self.provider_id)
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .finish_non_exhaustive()
    }
}

/// `Credentials` of the answer. Every field is secret but the id, which is
/// key material all the same.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StsCredentials {
    pub token: String,
    pub tmp_secret_id: String,
    pub tmp_secret_key: String,
}

impl fmt::Debug for StsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsCredentials").finish_non_exhaustive()
    }
}

/// `AssumeRoleWithWebIdentity` answer (inside `Response`, before `RequestId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleWithWebIdentityResponse {
    pub credentials: StsCredentials,
    /// Unix seconds.
    pub expired_time: i64,
    /// The same instant, ISO 8601 UTC (`2018-12-04T09:06:16Z`).
    pub expiration: String,
}

/// The exchange of one account ([module docs](self)).
pub struct WebIdentityExchange {
    endpoint: Endpoint,
    region: String,
    role_arn: String,
    provider_id: String,
    role_session_name: String,
    duration_seconds: u32,
    token_file: PathBuf,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WebIdentityExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentityExchange")
            .field("endpoint", &self.endpoint.base)
            .field("region", &self.region)
            .field("role_arn", &self.role_arn)
            .field("provider_id", &self.provider_id)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, why: impl fmt::Display) -> ConnectError {
    ConnectError::Credential(format!("web identity: {field} {why}"))
}

fn session_name_ok(name: &str) -> bool {
    (2..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

impl WebIdentityExchange {
    /// Checks the configuration; makes no call and does not read the token
    /// file (it may not exist yet: the kubelet writes it).
    pub fn new(config: WebIdentityConfig, options: ExchangeOptions) -> Result<Self, ConnectError> {
        let url = match config.endpoint.trim() {
            "" => DEFAULT_ENDPOINT,
            e => e,
        };
        let endpoint =
            parse_endpoint("web identity: endpoint", url).map_err(ConnectError::Credential)?;
        if endpoint.insecure {
            tracing::warn!(endpoint = %endpoint.base, "STS endpoint uses plain http:// (loopback only: fakes and tests)");
        }
        let region = match config.region.trim() {
            "" => FALLBACK_REGION.to_string(),
            r if r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => r.to_string(),
            r => {
                return Err(invalid(
                    "region",
                    format!("{r:?} is not a region name (e.g. ap-guangzhou)"),
                ))
            }
        };
        let role_arn = config.role_arn.trim().to_string();
        if !role_arn.starts_with("qcs::cam::")
            || role_arn
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "roleArn",
                format!("{role_arn:?} is not a CAM role ARN (qcs::cam::uin/<uin>:roleName/<name>)"),
            ));
        }
        let provider_id = config.provider_id.trim().to_string();
        if provider_id.is_empty()
            || provider_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "providerId",
                format!("{provider_id:?} is not an OIDC provider name"),
            ));
        }
        let role_session_name = match config.role_session_name.trim() {
            "" => DEFAULT_ROLE_SESSION_NAME.to_string(),
            n if session_name_ok(n) => n.to_string(),
            n => {
                return Err(invalid(
                    "roleSessionName",
                    format!("{n:?} must be 2 to 128 of letters, digits and _+=,.@-"),
                ))
            }
        };
        if !(1..=MAX_DURATION_SECONDS).contains(&config.duration_seconds) {
            return Err(invalid(
                "durationSeconds",
                format!(
                    "must be between 1 and {MAX_DURATION_SECONDS}, got {}",
                    config.duration_seconds
                ),
            ));
        }
        if config.token_file.as_os_str().is_empty() {
            return Err(invalid("tokenFile", "must name the projected token's path"));
        }
        Ok(Self {
            endpoint,
            region,
            role_arn,
            provider_id,
            role_session_name,
            duration_seconds: config.duration_seconds,
            token_file: config.token_file,
            http: options.http.unwrap_or_else(http::client),
            clock: options.clock,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The token, as read; a refusal naming the path (never the content).
    fn read_token(&self) -> Result<SecretString, CloudError> {
        let path = self.token_file.display();
        let refuse = |why: String| {
            CloudError::new(
                ErrorClass::Auth,
                ACTION,
                TOKEN_FILE_UNREADABLE,
                format!("the web identity token file {path} {why}; nothing was sent to STS"),
            )
        };
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => refuse("does not exist".into()),
            std::io::ErrorKind::InvalidData => refuse("is not UTF-8 text".into()),
            _ => refuse(format!("cannot be read ({e})")),
        })?;
        if token.trim().is_empty() {
            return Err(refuse("is empty".into()));
        }
        Ok(SecretString::new(token))
    }

    /// The `Keys` of a successful answer's `Response`.
    fn keys(response: &Value, request_id: Option<String>) -> Result<Keys, CloudError> {
        let missing = |field: &str| {
            malformed(
                ACTION,
                request_id.clone(),
                format!("the answer has no {field} (a non-empty string)"),
            )
        };
        let credential = |name: &str| {
            response
                .get("Credentials")
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(SecretString::new)
                .ok_or_else(|| missing(&format!("Credentials.{name}")))
        };
        let id = credential("TmpSecretId")?;
        let secret = credential("TmpSecretKey")?;
        let token = credential("Token")?;
        let expired_time = response.get("ExpiredTime").and_then(|t| match t {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let expires_at = match expired_time {
            Some(t) => Timestamp::from_second(t).ok(),
            None => response
                .get("Expiration")
                .and_then(Value::as_str)
                .and_then(|e| e.trim().parse::<Timestamp>().ok()),
        }
        .ok_or_else(|| {
            malformed(
                ACTION,
                request_id.clone(),
                "the answer has no usable ExpiredTime (Unix seconds) nor Expiration",
            )
        })?;
        Ok(Keys {
            id,
            secret,
            token: Some(token),
            expires_at: Some(expires_at),
        })
    }
}

#[async_trait]
impl Exchange for WebIdentityExchange {
    async fn exchange(&self) -> Result<Keys, CloudError> {
        let token = self.read_token()?;
        let body = serde_json::to_vec(&AssumeRoleWithWebIdentityRequest {
            provider_id: self.provider_id.clone(),
            web_identity_token: token.expose().to_string(),
            role_arn: self.role_arn.clone(),
            role_session_name: self.role_session_name.clone(),
            duration_seconds: Some(i64::from(self.duration_seconds)),
        })
        .map_err(|e| {
            CloudError::new(
                ErrorClass::Invalid,
                ACTION,
                "ClusterScale.EncodeError",
                e.to_string(),
            )
        })?;
        let timestamp = self.clock.now().as_second();
        let started = std::time::Instant::now();
        let response = self
            .http
            .post(format!("{}/", self.endpoint.base))
            .header(HOST, &self.endpoint.host)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, HeaderValue::from_static(AUTHORIZATION_SKIP))
            .header("X-TC-Action", ACTION)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Region", &self.region)
            .header(
                "X-TC-RequestClient",
                concat!("clusterscale/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(ACTION, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(ACTION, &e))?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let result = if status == reqwest::StatusCode::OK {
            parse_envelope::<Value>(ACTION, &bytes).and_then(|(response, request_id)| {
                Self::keys(&response, request_id.clone()).map(|k| (k, request_id))
            })
        } else {
            Err(status_error(
                ACTION,
                status,
                &bytes,
                "the STS endpoint",
                false,
            ))
        };
        match result {
            Ok((keys, request_id)) => {
                tracing::info!(
                    identity = %self.identity(),
                    request_id = request_id.as_deref(),
                    expires_at = ?keys.expires_at,
                    elapsed_ms,
                    "temporary keys from STS AssumeRoleWithWebIdentity"
                );
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(
                    identity = %self.identity(),
                    code = %e.code,
                    request_id = e.request_id.as_deref(),
                    elapsed_ms,
                    "STS AssumeRoleWithWebIdentity refused"
                );
                Err(e)
            }
        }
    }

    fn identity(&self) -> String {
        format!(
            "role {} via OIDC provider {}",
            self.role_arn, self.provider_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ARN: &str = "qcs::cam::uin/100000000001:roleName/clusterscale";

    fn config(token_file: &str) -> WebIdentityConfig {
        WebIdentityConfig {
            endpoint: "http://127.0.0.1:9".into(),
            ..WebIdentityConfig::new("ap-shanghai", ARN, "cls-abc123", token_file)
        }
    }

    #[test]
    fn env_names_are_the_sdks_with_the_old_token_file_name_as_fallback() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        let all = [
            (ENV_REGION, "ap-shanghai"),
            (ENV_PROVIDER_ID, "cls-abc123"),
            (ENV_ROLE_ARN, ARN),
            (ENV_TOKEN_FILE, "/var/run/secrets/tke/token"),
            (ENV_TOKEN_FILE_OLD, "/old"),
        ];
        let c = WebIdentityConfig::from_vars(vars(&all)).unwrap();
        assert_eq!(
            (
                c.region.as_str(),
                c.provider_id.as_str(),
                c.role_arn.as_str()
            ),
            ("ap-shanghai", "cls-abc123", ARN)
        );
        assert_eq!(c.token_file, PathBuf::from("/var/run/secrets/tke/token"));
        assert_eq!(
            (
                c.endpoint.as_str(),
                c.role_session_name.as_str(),
                c.duration_seconds
            ),
            (
                DEFAULT_ENDPOINT,
                DEFAULT_ROLE_SESSION_NAME,
                DEFAULT_DURATION_SECONDS
            )
        );
        let old = WebIdentityConfig::from_vars(vars(&[all[0], all[1], all[2], all[4]])).unwrap();
        assert_eq!(old.token_file, PathBuf::from("/old"));
        let e = WebIdentityConfig::from_vars(vars(&[all[0], all[1], all[2]])).unwrap_err();
        assert!(e.to_string().contains(ENV_TOKEN_FILE), "{e}");
        let e = WebIdentityConfig::from_vars(vars(&[all[1], all[2], all[3]])).unwrap_err();
        assert!(e.to_string().contains(ENV_REGION), "{e}");
        // None of them: no web identity asked for; some: the missing one named.
        assert_eq!(
            WebIdentityConfig::from_vars_if_set(vars(&[])).unwrap(),
            None
        );
        assert_eq!(
            WebIdentityConfig::from_vars_if_set(vars(&[(ENV_REGION, " ")])).unwrap(),
            None
        );
        let e = WebIdentityConfig::from_vars_if_set(vars(&[all[1]])).unwrap_err();
        assert!(e.to_string().contains(ENV_TOKEN_FILE), "{e}");
        let e = WebIdentityConfig::from_vars_if_set(vars(&[all[0], all[2], all[3]])).unwrap_err();
        assert!(e.to_string().contains(ENV_PROVIDER_ID), "{e}");
        let with_endpoint = [&all[..4], &[(ENV_ENDPOINT, "http://127.0.0.1:9")]].concat();
        let c = WebIdentityConfig::from_vars_if_set(vars(&with_endpoint))
            .unwrap()
            .expect("asked for");
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
    }

    #[test]
    fn configuration_is_checked_before_any_call() {
        let ok = WebIdentityExchange::new(config("/t"), ExchangeOptions::default()).unwrap();
        assert_eq!(
            ok.identity(),
            format!("role {ARN} via OIDC provider cls-abc123")
        );
        let default = WebIdentityExchange::new(
            WebIdentityConfig::new("", ARN, "p", "/t"),
            ExchangeOptions::default(),
        )
        .unwrap();
        assert_eq!(default.endpoint().host, "sts.tencentcloudapi.com");
        assert_eq!(default.region, FALLBACK_REGION);
        type Change = Box<dyn Fn(&mut WebIdentityConfig)>;
        let bad: Vec<(&str, Change)> = vec![
            (
                "endpoint",
                Box::new(|c| c.endpoint = "http://10.0.0.1".into()),
            ),
            ("roleArn", Box::new(|c| c.role_arn = "role/x".into())),
            ("providerId", Box::new(|c| c.provider_id = " ".into())),
            (
                "roleSessionName",
                Box::new(|c| c.role_session_name = "a b".into()),
            ),
            (
                "roleSessionName",
                Box::new(|c| c.role_session_name = "x".into()),
            ),
            ("durationSeconds", Box::new(|c| c.duration_seconds = 0)),
            ("durationSeconds", Box::new(|c| c.duration_seconds = 43201)),
            ("region", Box::new(|c| c.region = "ap shanghai".into())),
            ("tokenFile", Box::new(|c| c.token_file = PathBuf::new())),
        ];
        for (field, change) in bad {
            let mut c = config("/t");
            change(&mut c);
            let e = WebIdentityExchange::new(c, ExchangeOptions::default()).unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let mut max = config("/t");
        max.duration_seconds = MAX_DURATION_SECONDS;
        assert!(WebIdentityExchange::new(max, ExchangeOptions::default()).is_ok());
    }

    #[tokio::test]
    async fn a_token_file_that_cannot_be_used_is_refused_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let missing = dir.join("missing");
        let empty = dir.join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        for (path, why) in [
            (&missing, "does not exist"),
            (&empty, "is empty"),
            (&dir, "cannot be read"),
        ] {
            let ex = WebIdentityExchange::new(
                config(path.to_str().unwrap()),
                ExchangeOptions::default(),
            )
            .unwrap();
            let e = ex.exchange().await.unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str(), e.action.as_str()),
                (ErrorClass::Auth, TOKEN_FILE_UNREADABLE, ACTION)
            );
            assert!(
                e.message.contains(&path.display().to_string()) && e.message.contains(why),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn answers_become_keys_or_malformed_errors_without_key_material() {
        let answer: Value = serde_json::from_str(
            r#"{"Credentials":{"Token":"tok-SECRET","TmpSecretId":"AKIDtmpSECRET","TmpSecretKey":"key-SECRET"},
                "ExpiredTime":1543914376,"Expiration":"2018-12-04T09:06:16Z","RequestId":"r-1"}"#,
        )
        .unwrap();
        let k = WebIdentityExchange::keys(&answer, Some("r-1".into())).unwrap();
        assert_eq!(
            (
                k.id.expose(),
                k.secret.expose(),
                k.token.as_ref().unwrap().expose()
            ),
            ("AKIDtmpSECRET", "key-SECRET", "tok-SECRET")
        );
        assert_eq!(
            k.expires_at,
            Some(Timestamp::from_second(1543914376).unwrap())
        );
        // Expiration alone.
        let mut only_iso = answer.clone();
        only_iso.as_object_mut().unwrap().remove("ExpiredTime");
        let k = WebIdentityExchange::keys(&only_iso, None).unwrap();
        assert_eq!(k.expires_at, Some("2018-12-04T09:06:16Z".parse().unwrap()));
        // A field of the wrong type or missing: named, never echoed.
        let mut wrong = answer.clone();
        wrong["Credentials"]["TmpSecretKey"] = serde_json::json!(12345);
        let e = WebIdentityExchange::keys(&wrong, Some("r-2".into())).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("MalformedResponse", Some("r-2"))
        );
        let shown = e.to_string();
        assert!(
            shown.contains("Credentials.TmpSecretKey") && shown.contains(ACTION),
            "{shown}"
        );
        assert!(
            !shown.contains("SECRET") && !shown.contains("12345"),
            "{shown}"
        );
        let mut no_time = only_iso;
        no_time["Expiration"] = serde_json::json!("soon");
        let e = WebIdentityExchange::keys(&no_time, Some("r-3".into())).unwrap_err();
        assert!(e.to_string().contains("ExpiredTime"), "{e}");
        let shown = format!(
            "{k:?} {:?}",
            serde_json::from_value::<AssumeRoleWithWebIdentityResponse>(answer).unwrap()
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn debug_shows_no_token() {
        let req = AssumeRoleWithWebIdentityRequest {
            provider_id: "p".into(),
            web_identity_token: "eyJhbGciOiJSUzI1NiJ9.SECRET.sig".into(),
            role_arn: ARN.into(),
            role_session_name: "s".into(),
            duration_seconds: Some(60),
        };
        let ex = WebIdentityExchange::new(config("/t"), ExchangeOptions::default()).unwrap();
        let shown = format!("{req:?} {ex:?}");
        assert!(!shown.contains("SECRET") && shown.contains(ARN), "{shown}");
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(
                r#"{{"ProviderId":"p","WebIdentityToken":"eyJhbGciOiJSUzI1NiJ9.SECRET.sig","RoleArn":"{ARN}","RoleSessionName":"s","DurationSeconds":60}}"#
            ),
            "the SDK's field names and order"
        );
    }
}
