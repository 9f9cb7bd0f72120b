//! Workload identity: a projected ServiceAccount token (a JWT) exchanged for
//! temporary AK/SK through IAM OIDC federation (CCE workload identity;
//! docs/credentials-design.md part 2).
//!
//! [`IdTokenExchange`] is the [`Exchange`] of a [`KeySource`]. Each exchange
//! reads the token file again (the kubelet rotates it) and makes two IAM
//! calls, neither signed, as huaweicloud-sdk-go-v3 sends them:
//!
//! 1. `POST {iam}/v3.0/OS-AUTH/id-token/tokens` ([`ACTION_ID_TOKEN`]), header
//!    `X-Idp-Id`, body `{"auth":{"id_token":{"id":"<JWT>"}}}` (plus `scope`
//!    when one is configured): HTTP 201 with the IAM token in
//!    `X-Subject-Token` and `token.expires_at` in the body;
//! 2. `POST {iam}/v3.0/OS-CREDENTIAL/securitytokens`
//!    ([`ACTION_SECURITY_TOKEN`]), body `{"auth":{"identity":{"methods":
//!    ["token"],"token":{"id":"<IAM token>","duration_seconds":N}}}}`: HTTP
//!    201 with `credential.{access, secret, securitytoken, expires_at}`.
//!
//! The IAM token lives only within one exchange. MRS requests are then
//! signed with `access`/`secret` and carry (and sign) `X-Security-Token`
//! ([`crate::client`]).
//!
//! Errors (the document's 2.7; IAM's codes for these two APIs are not
//! documented, so the class follows the HTTP status, **inference**): 400
//! and 404 `Invalid`, 401 and 403 `Auth`, 429 or `APIGW.0308` `Throttled`,
//! `APIGW.0301` `Auth`, 5xx and transport failures `Transient`; each keeps
//! IAM's code (`error_code`, or the nested `error.code`), message and
//! `X-Request-Id`. An answer without `X-Subject-Token`, `expires_at` or a
//! credential is `MalformedResponse` (naming the action and request id). A
//! token file that is missing, unreadable or empty is `Auth`
//! [`TOKEN_FILE_UNREADABLE`], and nothing is sent.
//!
//! Nothing here logs, or puts into an error or `Debug`, the JWT, the IAM
//! token or the keys: only the identity provider, the token file's path,
//! request ids and expiry times.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use reqwest::StatusCode;

use super::errors;
use super::token::SUBJECT_TOKEN_HEADER;
use super::wire::{
    IdOrName, IdTokenAuth, IdTokenRequest, IdTokenScope, SecretId, SecurityTokenRequest,
    SecurityTokenResponse, TokenResponse,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_core::cloud::http::{self, malformed, parse_endpoint, transport_error, Endpoint};
use clusterscale_core::cloud::keys::{Exchange, KeySource, Keys};
use clusterscale_core::cloud::provider::ConnectError;
use clusterscale_core::cloud::{CloudError, ErrorClass};

/// Step 1: ID token to IAM token.
pub const ID_TOKEN_PATH: &str = "/v3.0/OS-AUTH/id-token/tokens";
/// Step 2: IAM token to temporary AK/SK.
pub const SECURITY_TOKENS_PATH: &str = "/v3.0/OS-CREDENTIAL/securitytokens";
/// The header naming the identity provider in step 1.
pub const IDP_HEADER: &str = "X-Idp-Id";
/// `Content-Type` of both calls.
pub const CONTENT_TYPE: &str = "application/json;charset=UTF-8";
/// Actions (the SDK's operation names), in errors.
pub const ACTION_ID_TOKEN: &str = "CreateTokenWithIdToken";
pub const ACTION_SECURITY_TOKEN: &str = "CreateTemporaryAccessKeyByToken";
/// The SDK's IAM endpoint for federation (global).
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";
/// The keys' lifetime asked for: the SDK's (6 h).
pub const DEFAULT_DURATION_SECONDS: u32 = 21_600;
/// What IAM accepts for `duration_seconds` (15 min to 24 h).
pub const MIN_DURATION_SECONDS: u32 = 900;
pub const MAX_DURATION_SECONDS: u32 = 86_400;
/// The code of a token file that is missing, unreadable or empty.
pub const TOKEN_FILE_UNREADABLE: &str = "TokenFileUnreadable";

/// The SDK's environment variables (`core/auth/provider/env_provider.go`).
pub const ENV_IDP_ID: &str = "HUAWEICLOUD_SDK_IDP_ID";
pub const ENV_ID_TOKEN_FILE: &str = "HUAWEICLOUD_SDK_ID_TOKEN_FILE";
pub const ENV_PROJECT_ID: &str = "HUAWEICLOUD_SDK_PROJECT_ID";
pub const ENV_DOMAIN_ID: &str = "HUAWEICLOUD_SDK_DOMAIN_ID";
pub const ENV_IAM_ENDPOINT: &str = "HUAWEICLOUD_SDK_IAM_ENDPOINT";

/// `auth.scope` of step 1. Step 2 needs nothing from it: it takes any IAM
/// token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// No scope: an unscoped token, what the SDK's federation sends.
    #[default]
    Unscoped,
    ProjectId(String),
    ProjectName(String),
    DomainId(String),
    DomainName(String),
}

impl Scope {
    fn wire(&self) -> Option<IdTokenScope> {
        let id = |v: &String| IdOrName {
            id: Some(v.clone()),
            name: None,
        };
        let name = |v: &String| IdOrName {
            id: None,
            name: Some(v.clone()),
        };
        let (project, domain) = match self {
            Scope::Unscoped => return None,
            Scope::ProjectId(v) => (Some(id(v)), None),
            Scope::ProjectName(v) => (Some(name(v)), None),
            Scope::DomainId(v) => (None, Some(id(v))),
            Scope::DomainName(v) => (None, Some(name(v))),
        };
        Some(IdTokenScope { project, domain })
    }

    fn value(&self) -> Option<&str> {
        match self {
            Scope::Unscoped => None,
            Scope::ProjectId(v)
            | Scope::ProjectName(v)
            | Scope::DomainId(v)
            | Scope::DomainName(v) => Some(v),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Unscoped => f.write_str("unscoped"),
            Scope::ProjectId(v) => write!(f, "project id {v}"),
            Scope::ProjectName(v) => write!(f, "project {v}"),
            Scope::DomainId(v) => write!(f, "domain id {v}"),
            Scope::DomainName(v) => write!(f, "domain {v}"),
        }
    }
}

/// What an [`IdTokenExchange`] needs. No secret: the token is in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenConfig {
    /// `https://host` (`http://` only for loopback); the scheme may be left
    /// out, as the SDK allows (https is added). Default
    /// [`DEFAULT_IAM_ENDPOINT`].
    pub iam_endpoint: String,
    /// The IAM identity provider (`X-Idp-Id`; its id is its name).
    pub idp_id: String,
    /// The projected ServiceAccount token, read at every exchange.
    pub token_file: PathBuf,
    pub scope: Scope,
    /// The keys' lifetime asked for, [`MIN_DURATION_SECONDS`] to
    /// [`MAX_DURATION_SECONDS`]. Keys may come back shorter-lived: the
    /// refresh follows their `expires_at`, never this.
    pub duration_seconds: u32,
}

impl IdTokenConfig {
    /// The SDK's defaults: the global endpoint, unscoped, 6 h.
    pub fn new(idp_id: impl Into<String>, token_file: impl Into<PathBuf>) -> Self {
        Self {
            iam_endpoint: DEFAULT_IAM_ENDPOINT.to_string(),
            idp_id: idp_id.into(),
            token_file: token_file.into(),
            scope: Scope::Unscoped,
            duration_seconds: DEFAULT_DURATION_SECONDS,
        }
    }

    pub fn iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_endpoint = url.into();
        self
    }

    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn duration_seconds(mut self, seconds: u32) -> Self {
        self.duration_seconds = seconds;
        self
    }

    /// From the SDK's variables, read through `var`: `None` when neither
    /// [`ENV_IDP_ID`] nor [`ENV_ID_TOKEN_FILE`] is set; an error when only
    /// one is (the SDK wants both or neither). [`ENV_IAM_ENDPOINT`]
    /// overrides the endpoint. [`ENV_PROJECT_ID`], else [`ENV_DOMAIN_ID`],
    /// scopes the IAM token (the body the SDK's test asserts for a
    /// project); neither: unscoped.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<IdTokenConfig>, ConnectError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (idp, file) = match (get(ENV_IDP_ID), get(ENV_ID_TOKEN_FILE)) {
            (None, None) => return Ok(None),
            (Some(idp), Some(file)) => (idp, file),
            (Some(_), None) => {
                return Err(ConnectError::Credential(format!(
                    "{ENV_IDP_ID} is set but {ENV_ID_TOKEN_FILE} is not: set both or neither"
                )))
            }
            (None, Some(_)) => {
                return Err(ConnectError::Credential(format!(
                    "{ENV_ID_TOKEN_FILE} is set but {ENV_IDP_ID} is not: set both or neither"
                )))
            }
        };
        let mut config = IdTokenConfig::new(idp, file);
        if let Some(url) = get(ENV_IAM_ENDPOINT) {
            config.iam_endpoint = url;
        }
        config.scope = match (get(ENV_PROJECT_ID), get(ENV_DOMAIN_ID)) {
            (Some(p), _) => Scope::ProjectId(p),
            (None, Some(d)) => Scope::DomainId(d),
            (None, None) => Scope::Unscoped,
        };
        Ok(Some(config))
    }

    /// [`Self::from_vars`] of the process environment.
    pub fn from_env() -> Result<Option<IdTokenConfig>, ConnectError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// Trades the token file's JWT for temporary keys ([module docs](self)).
pub struct IdTokenExchange {
    config: IdTokenConfig,
    iam: Endpoint,
    http: reqwest::Client,
}

impl fmt::Debug for IdTokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenExchange")
            .field("iam", &self.iam.base)
            .field("idp_id", &self.config.idp_id)
            .field("token_file", &self.config.token_file)
            .field("scope", &self.config.scope)
            .field("duration_seconds", &self.config.duration_seconds)
            .finish()
    }
}

impl IdTokenExchange {
    /// Checks the configuration; reads nothing and sends nothing.
    pub fn new(config: IdTokenConfig) -> Result<Self, ConnectError> {
        let bad = |m: String| Err(ConnectError::Credential(m));
        if config.idp_id.trim().is_empty() {
            return bad("the identity provider id (X-Idp-Id) must not be empty".into());
        }
        if config.token_file.as_os_str().is_empty() {
            return bad("the ID token file must be named".into());
        }
        if !(MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&config.duration_seconds) {
            return bad(format!(
                "duration_seconds {} is outside IAM's {MIN_DURATION_SECONDS}..={MAX_DURATION_SECONDS}",
                config.duration_seconds
            ));
        }
        if config.scope.value().is_some_and(|v| v.trim().is_empty()) {
            return bad(format!(
                "the token's scope ({}) names nothing",
                config.scope
            ));
        }
        let url = config.iam_endpoint.trim();
        let url = if url.is_empty() {
            DEFAULT_IAM_ENDPOINT.to_string()
        } else if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        };
        let iam = parse_endpoint("the IAM endpoint", &url).map_err(ConnectError::Credential)?;
        let config = IdTokenConfig {
            idp_id: config.idp_id.trim().to_string(),
            ..config
        };
        Ok(Self {
            config,
            iam,
            http: http::client(),
        })
    }

    /// From the SDK's environment variables ([`IdTokenConfig::from_vars`]).
    pub fn from_env() -> Result<Option<Self>, ConnectError> {
        IdTokenConfig::from_env()?.map(Self::new).transpose()
    }

    /// Send through `http` (shared with other clients).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn config(&self) -> &IdTokenConfig {
        &self.config
    }

    /// The IAM endpoint in use.
    pub fn iam(&self) -> &Endpoint {
        &self.iam
    }

    /// A key source on this exchange, timed by `clock`, for every client of
    /// the account to share.
    pub fn into_key_source(self, clock: Arc<dyn Clock>) -> Arc<KeySource> {
        Arc::new(KeySource::exchanged(Arc::new(self), clock))
    }

    /// The JWT, trimmed (as the SDK does). Its content never appears in an
    /// error.
    fn read_token(&self) -> Result<String, CloudError> {
        let path = &self.config.token_file;
        let unreadable = |why: String| {
            CloudError::new(
                ErrorClass::Auth,
                ACTION_ID_TOKEN,
                TOKEN_FILE_UNREADABLE,
                format!(
                    "not sent: the ID token file {} {why} (identity provider {})",
                    path.display(),
                    self.config.idp_id
                ),
            )
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| unreadable(format!("cannot be read: {e}")))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(unreadable("is empty".into()));
        }
        Ok(token.to_string())
    }

    /// One unsigned POST to IAM: its request id, the `X-Subject-Token`
    /// header, and the body of a 2xx answer; any other answer is IAM's
    /// refusal ([`Self::refusal`]).
    async fn post(
        &self,
        action: &'static str,
        path: &str,
        idp: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, CloudError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.iam.base))
            .header(reqwest::header::HOST, &self.iam.host)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        if let Some(idp) = idp {
            request = request.header(IDP_HEADER, idp);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(action, &e))?;
        let status = response.status();
        let request_id = errors::request_id(response.headers());
        let subject_token = response
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|t| SecretString::new(t.trim()));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(action, &e).with_request_id(request_id.clone()))?;
        if !status.is_success() {
            return Err(self.refusal(action, status, request_id, &bytes));
        }
        Ok(Answer {
            request_id,
            subject_token,
            bytes: bytes.to_vec(),
        })
    }

    /// Step 1: the IAM token.
    async fn iam_token(&self, jwt: String) -> Result<SecretString, CloudError> {
        let action = ACTION_ID_TOKEN;
        let body = IdTokenRequest {
            auth: IdTokenAuth {
                id_token: SecretId { id: jwt },
                scope: self.config.scope.wire(),
            },
        };
        let bytes = encode(action, &body)?;
        drop(body);
        let Answer {
            request_id,
            subject_token: token,
            bytes,
        } = self
            .post(action, ID_TOKEN_PATH, Some(&self.config.idp_id), bytes)
            .await?;
        let token = token.filter(|t| !t.expose().is_empty()).ok_or_else(|| {
            malformed(
                action,
                request_id.clone(),
                format!("no {SUBJECT_TOKEN_HEADER} header"),
            )
        })?;
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(action, request_id.clone(), json_error(&e, "a token")))?;
        if parsed.token.expires_at.trim().is_empty() {
            return Err(malformed(action, request_id, "no token.expires_at"));
        }
        tracing::debug!(
            idp = %self.config.idp_id,
            request_id = ?request_id,
            iam_token_expires_at = %parsed.token.expires_at,
            "IAM accepted the ID token"
        );
        Ok(token)
    }

    /// Step 2: temporary keys.
    async fn temporary_keys(&self, iam_token: &SecretString) -> Result<Keys, CloudError> {
        let action = ACTION_SECURITY_TOKEN;
        let body =
            SecurityTokenRequest::new(iam_token.expose(), i64::from(self.config.duration_seconds));
        let bytes = encode(action, &body)?;
        drop(body);
        let Answer {
            request_id, bytes, ..
        } = self.post(action, SECURITY_TOKENS_PATH, None, bytes).await?;
        let parsed: SecurityTokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(action, request_id.clone(), json_error(&e, "a credential")))?;
        let c = parsed.credential;
        for (field, value) in [
            ("access", &c.access),
            ("secret", &c.secret),
            ("securitytoken", &c.securitytoken),
        ] {
            if value.trim().is_empty() {
                return Err(malformed(
                    action,
                    request_id,
                    format!("credential.{field} is empty"),
                ));
            }
        }
        let expires_at: Timestamp = c.expires_at.trim().parse().map_err(|e| {
            malformed(
                action,
                request_id.clone(),
                format!("credential.expires_at {:?}: {e}", c.expires_at),
            )
        })?;
        tracing::info!(
            identity = %self.identity(),
            request_id = ?request_id,
            %expires_at,
            "IAM issued temporary keys"
        );
        Ok(Keys {
            id: SecretString::new(c.access.trim()),
            secret: SecretString::new(c.secret.trim()),
            token: Some(SecretString::new(c.securitytoken.trim())),
            expires_at: Some(expires_at),
        })
    }

    /// An IAM error answer: its code, message and request id, classed by
    /// the HTTP status ([module docs](self)).
    fn refusal(
        &self,
        action: &str,
        status: StatusCode,
        request_id: Option<String>,
        body: &[u8],
    ) -> CloudError {
        let mut e = errors::from_response(action, status, request_id, body);
        e.class = class_of(status, &e.code);
        let what = if action == ACTION_ID_TOKEN {
            format!(
                "the ID token of {} for identity provider {}",
                self.config.token_file.display(),
                self.config.idp_id
            )
        } else {
            format!(
                "temporary keys for the IAM token of identity provider {}",
                self.config.idp_id
            )
        };
        e.message = format!(
            "IAM refused {what} (HTTP {}): {}",
            status.as_u16(),
            e.message
        );
        e
    }
}

/// The class of an IAM refusal ([module docs](self)).
pub fn class_of(status: StatusCode, code: &str) -> ErrorClass {
    match code {
        "APIGW.0308" | "APIG.0308" => return ErrorClass::Throttled,
        "APIGW.0301" | "APIG.0301" => return ErrorClass::Auth,
        _ => {}
    }
    match status.as_u16() {
        429 => ErrorClass::Throttled,
        401 | 403 => ErrorClass::Auth,
        s if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Invalid,
    }
}

fn encode<T: serde::Serialize>(action: &str, body: &T) -> Result<Vec<u8>, CloudError> {
    serde_json::to_vec(body).map_err(|e| {
        CloudError::new(
            ErrorClass::Invalid,
            action,
            "EncodeError",
            format!("cannot encode the request body: {:?}", e.classify()),
        )
    })
}

/// A JSON error without the text it quotes (which could be a key).
fn json_error(e: &serde_json::Error, what: &str) -> String {
    format!(
        "the body is not {what} ({:?} error at line {} column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[async_trait]
impl Exchange for IdTokenExchange {
    async fn exchange(&self) -> Result<Keys, CloudError> {
        let jwt = self.read_token()?;
        let iam_token = self.iam_token(jwt).await?;
        self.temporary_keys(&iam_token).await
    }

    /// The identity provider, the IAM endpoint and the scope.
    fn identity(&self) -> String {
        format!(
            "IAM identity provider {} at {}, {}",
            self.config.idp_id, self.iam.host, self.config.scope
        )
    }
}

/// What [`IdTokenExchange::post`] read of a 2xx answer.
struct Answer {
    request_id: Option<String>,
    subject_token: Option<SecretString>,
    bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_bodies_are_the_sdks() {
        let body = |scope: Scope| {
            serde_json::to_string(&IdTokenRequest {
                auth: IdTokenAuth {
                    id_token: SecretId { id: "JWT".into() },
                    scope: scope.wire(),
                },
            })
            .unwrap()
        };
        assert_eq!(
            body(Scope::Unscoped),
            r#"{"auth":{"id_token":{"id":"JWT"}}}"#
        );
        assert_eq!(
            body(Scope::ProjectId("p1".into())),
            r#"{"auth":{"id_token":{"id":"JWT"},"scope":{"project":{"id":"p1"}}}}"#
        );
        assert_eq!(
            body(Scope::DomainName("acme".into())),
            r#"{"auth":{"id_token":{"id":"JWT"},"scope":{"domain":{"name":"acme"}}}}"#
        );
        assert_eq!(
            serde_json::to_string(&SecurityTokenRequest::new("TOK", 21600)).unwrap(),
            r#"{"auth":{"identity":{"methods":["token"],"token":{"id":"TOK","duration_seconds":21600}}}}"#
        );
    }

    #[test]
    fn configuration_is_checked() {
        let ok = IdTokenExchange::new(IdTokenConfig::new("cce-idp", "/var/run/token")).unwrap();
        assert_eq!(ok.iam().base, DEFAULT_IAM_ENDPOINT);
        assert_eq!(
            ok.identity(),
            "IAM identity provider cce-idp at iam.myhuaweicloud.com, unscoped"
        );
        // The SDK adds https:// to a bare host.
        let c = IdTokenConfig::new("i", "/t").iam_endpoint("iam.cn-north-4.myhuaweicloud.com");
        assert_eq!(
            IdTokenExchange::new(c).unwrap().iam().base,
            "https://iam.cn-north-4.myhuaweicloud.com"
        );
        let loopback = IdTokenConfig::new("i", "/t").iam_endpoint("http://127.0.0.1:9");
        assert!(IdTokenExchange::new(loopback).unwrap().iam().insecure);
        for (bad, says) in [
            (IdTokenConfig::new(" ", "/t"), "identity provider"),
            (IdTokenConfig::new("i", ""), "token file"),
            (
                IdTokenConfig::new("i", "/t").duration_seconds(899),
                "899 is outside",
            ),
            (
                IdTokenConfig::new("i", "/t").duration_seconds(86_401),
                "86401 is outside",
            ),
            (
                IdTokenConfig::new("i", "/t").iam_endpoint("http://iam.example.com"),
                "loopback",
            ),
            (
                IdTokenConfig::new("i", "/t").scope(Scope::ProjectId(" ".into())),
                "scope",
            ),
        ] {
            let e = IdTokenExchange::new(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        for d in [900, 86_400] {
            assert!(
                IdTokenExchange::new(IdTokenConfig::new("i", "/t").duration_seconds(d)).is_ok()
            );
        }
    }

    #[test]
    fn the_sdks_environment_variables() {
        assert_eq!(IdTokenConfig::from_vars(vars(&[])).unwrap(), None);
        let c = IdTokenConfig::from_vars(vars(&[
            (ENV_IDP_ID, "cce-idp"),
            (ENV_ID_TOKEN_FILE, "/var/run/secrets/tokens/oidc-token\n"),
            (ENV_PROJECT_ID, "0123"),
            (ENV_DOMAIN_ID, "d-9"),
            (
                ENV_IAM_ENDPOINT,
                "https://iam.ap-southeast-1.myhuaweicloud.com",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.idp_id, "cce-idp");
        assert_eq!(
            c.token_file,
            PathBuf::from("/var/run/secrets/tokens/oidc-token")
        );
        assert_eq!(c.scope, Scope::ProjectId("0123".into()));
        assert_eq!(
            c.iam_endpoint,
            "https://iam.ap-southeast-1.myhuaweicloud.com"
        );
        assert_eq!(c.duration_seconds, DEFAULT_DURATION_SECONDS);
        let c = IdTokenConfig::from_vars(vars(&[
            (ENV_IDP_ID, "i"),
            (ENV_ID_TOKEN_FILE, "/t"),
            (ENV_DOMAIN_ID, "d-9"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.scope, c.iam_endpoint.as_str()),
            (Scope::DomainId("d-9".into()), DEFAULT_IAM_ENDPOINT)
        );
        for one in [(ENV_IDP_ID, "i"), (ENV_ID_TOKEN_FILE, "/t")] {
            let e = IdTokenConfig::from_vars(vars(&[one]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("both or neither"), "{e}");
        }
    }

    #[test]
    fn refusals_are_classed_by_status() {
        let s = |n| StatusCode::from_u16(n).unwrap();
        assert_eq!(class_of(s(400), "IAM.0011"), ErrorClass::Invalid);
        assert_eq!(class_of(s(401), "401"), ErrorClass::Auth);
        assert_eq!(class_of(s(403), "IAM.0003"), ErrorClass::Auth);
        assert_eq!(class_of(s(404), "IAM.0004"), ErrorClass::Invalid);
        assert_eq!(class_of(s(429), "HTTP429"), ErrorClass::Throttled);
        assert_eq!(class_of(s(400), "APIGW.0308"), ErrorClass::Throttled);
        assert_eq!(class_of(s(400), "APIGW.0301"), ErrorClass::Auth);
        assert_eq!(class_of(s(500), "IAM.0006"), ErrorClass::Transient);
        assert_eq!(class_of(s(503), "HTTP503"), ErrorClass::Transient);
    }

    #[tokio::test]
    async fn a_missing_or_empty_token_file_sends_nothing() {
        let dir = std::env::temp_dir().join(format!("hw-federation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Nothing listens on port 1: a request would fail as a transport error.
        let exchange = |file: PathBuf| {
            IdTokenExchange::new(
                IdTokenConfig::new("cce-idp", file).iam_endpoint("http://127.0.0.1:1"),
            )
            .unwrap()
        };
        let missing = dir.join("missing");
        let e = exchange(missing.clone()).exchange().await.unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (ErrorClass::Auth, TOKEN_FILE_UNREADABLE, ACTION_ID_TOKEN)
        );
        assert!(e.message.contains(&missing.display().to_string()), "{e}");
        let empty = dir.join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let e = exchange(empty).exchange().await.unwrap_err();
        assert_eq!(e.code, TOKEN_FILE_UNREADABLE);
        assert!(e.message.contains("is empty"), "{e}");
        // A file that is there: the request is made (and fails to connect).
        let there = dir.join("there");
        std::fs::write(&there, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n").unwrap();
        let e = exchange(there).exchange().await.unwrap_err();
        assert_eq!(e.code, "ConnectError", "{e}");
        assert!(!e.to_string().contains("eyJhbGciOiJSUzI1NiJ9"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = crate::wire::TemporaryCredential {
            access: "TMPAK".into(),
            secret: "TMPSK".into(),
            securitytoken: "TMPTOKEN".into(),
            expires_at: "2020-01-08T03:50:07.574000Z".into(),
        };
        let r = SecurityTokenRequest::new("IAMTOKEN", 900);
        let i = IdTokenRequest {
            auth: IdTokenAuth {
                id_token: SecretId { id: "JWT".into() },
                scope: None,
            },
        };
        let shown = format!("{c:?} {r:?} {i:?}");
        for secret in ["TMPAK", "TMPSK", "TMPTOKEN", "IAMTOKEN", "JWT"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("2020-01-08T03:50:07.574000Z"));
    }

    #[test]
    fn expiry_with_a_fraction_parses() {
        for t in [
            "2020-01-08T03:50:07.574000Z",
            "2020-01-08T03:50:07Z",
            "2020-01-08T03:50:07.5Z",
        ] {
            assert!(t.parse::<Timestamp>().is_ok(), "{t}");
        }
    }
}
