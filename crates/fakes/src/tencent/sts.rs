//! The fake's Tencent STS: `AssumeRoleWithWebIdentity` (API 2018-08-13,
//! docs/credentials-design.md part 1), served on the same `POST /` as EMR
//! when [`TencentFakeConfig::sts`](super::TencentFakeConfig::sts) is set,
//! and the temporary keys it hands out.
//!
//! What it checks, in this order, and how it refuses (every refusal is an
//! HTTP 200 `Response.Error`, as the real STS answers):
//! - `X-TC-Version` `2018-08-13` (`NoSuchVersion`, `MissingParameter`);
//! - `Authorization: SKIP`: the exchange is unsigned, and only this action
//!   is accepted unsigned (`AuthFailure.InvalidAuthorization`; the fake
//!   does not verify a signed exchange, which the SDKs never send);
//! - the account's injected faults, throttle and transient rate
//!   ([`FakeControl::admit`](crate::FakeControl::admit)), as for EMR;
//! - the body's fields (`MissingParameter`, `InvalidParameter`), the
//!   session name (`InvalidParameter.ParamError`) and `DurationSeconds`
//!   in 1..=43200 (`InvalidParameter.OverTimeError`, inference from the
//!   SDK's `errors.go`);
//! - `ProviderId` is the configured provider (`InvalidParameter.ParamError`:
//!   design doc 1.7 files a wrong provider under it; **UNVERIFIED** which
//!   code the real STS gives);
//! - `RoleArn` is the configured role (`ResourceNotFound.RoleNotFound`, "the
//!   role does not exist", from the product's error list; **UNVERIFIED**
//!   that this action answers it rather than `InternalError.GetRoleError`);
//! - the JWT, with [`OidcProvider::verify`] against the fake's clock for the
//!   configured audience (`InvalidParameter.WebIdentityTokenError`, message
//!   `WebIdentityToken error. | id token error | <reason>`: the shape, and
//!   `Expired token`, as the real STS answered in tencentcloud-sdk-go PR
//!   #253; the other reasons are the fake's words);
//! - when a subject is configured (the trust policy's `oidc:sub`), the
//!   token's `sub` (`UnauthorizedOperation`).
//!
//! An accepted exchange answers `Credentials{Token, TmpSecretId,
//! TmpSecretKey}` (random), `ExpiredTime` = the fake's now + the key
//! lifetime, and `Expiration`, the same instant in ISO 8601. EMR requests
//! signed with a temporary SecretId are then checked by the EMR handler
//! (see [`IssuedKey`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use jiff::Timestamp;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{header_str, injected_reply, parse, Reply};
use crate::oidc::{OidcProvider, TokenRefusal};
use crate::{Admission, FakeControl};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_tencent::sts::{
    AssumeRoleWithWebIdentityRequest, AssumeRoleWithWebIdentityResponse, StsCredentials,
    AUTHORIZATION_SKIP, MAX_DURATION_SECONDS, VERSION,
};

/// The CAM OIDC provider's default client id (design doc 1.4).
pub const DEFAULT_AUDIENCE: &str = "sts.cloud.tencent.com";

/// The fake STS's account: who may become which role, and for how long.
#[derive(Clone, Debug)]
pub struct StsFakeConfig {
    /// The issuer and key the tokens are verified against.
    pub provider: OidcProvider,
    /// The one `ProviderId` accepted.
    pub provider_id: String,
    /// The one `RoleArn` accepted.
    pub role_arn: String,
    /// The audience a token must carry (the provider's client id).
    pub audience: String,
    /// When set, the only `sub` the role trusts (`oidc:sub`).
    pub subject: Option<String>,
    /// How long issued keys live, on the fake's clock (not the request's
    /// `DurationSeconds`: tests want short keys).
    pub key_lifetime: Duration,
    /// How long each exchange takes before it answers, so that exchanges
    /// that overlap show in [`StsStats::most_concurrent`].
    pub exchange_delay: Duration,
}

impl StsFakeConfig {
    /// Keys of 2 hours, the default audience, any subject, no delay.
    pub fn new(
        provider: OidcProvider,
        provider_id: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            provider_id: provider_id.into(),
            role_arn: role_arn.into(),
            audience: DEFAULT_AUDIENCE.to_string(),
            subject: None,
            key_lifetime: Duration::from_secs(7200),
            exchange_delay: Duration::ZERO,
        }
    }
}

/// What the fake STS has seen (`GET /_fake/sts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StsStats {
    /// `AssumeRoleWithWebIdentity` requests received.
    pub requests: u64,
    /// Keys issued (accepted exchanges).
    pub issued: u64,
    /// Requests refused (`requests - issued`).
    pub refused: u64,
    /// The most exchanges that were in progress at once.
    pub most_concurrent: u32,
}

/// Temporary keys the fake issued. An EMR request signed with `TmpSecretId`
/// must carry `token` as `X-TC-Token`, be signed with `secret_key`, and
/// arrive before `expires` on the fake's clock; otherwise it is refused
/// `AuthFailure.TokenFailure` (verified for a wrong token:
/// tencentcloud-sdk-go's integration test of temporary credentials expects
/// it, "Token verification failed"; **UNVERIFIED** for expired keys, which
/// design doc 1.6 expects to fail with it too).
#[derive(Clone)]
pub(super) struct IssuedKey {
    /// 1 for the first keys issued, 2 for the next, ...
    pub(super) serial: u64,
    pub(super) secret_key: SecretString,
    pub(super) token: SecretString,
    pub(super) expires: Timestamp,
}

/// The account's STS: shared by every instance of a fleet.
pub(super) struct StsState {
    config: StsFakeConfig,
    issued: Mutex<HashMap<String, IssuedKey>>,
    requests: AtomicU64,
    accepted: AtomicU64,
    running: AtomicU32,
    most: AtomicU32,
}

impl std::fmt::Debug for StsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsState")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Counts an exchange in progress while it lives.
struct Running<'a>(&'a AtomicU32);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn random(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), len)
    )
}

fn session_name_ok(name: &str) -> bool {
    (2..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

impl StsState {
    pub(super) fn new(config: StsFakeConfig) -> Self {
        Self {
            config,
            issued: Mutex::default(),
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            running: AtomicU32::new(0),
            most: AtomicU32::new(0),
        }
    }

    pub(super) fn stats(&self) -> StsStats {
        let requests = self.requests.load(Ordering::SeqCst);
        let issued = self.accepted.load(Ordering::SeqCst);
        StsStats {
            requests,
            issued,
            refused: requests.saturating_sub(issued),
            most_concurrent: self.most.load(Ordering::SeqCst),
        }
    }

    /// Every TmpSecretKey and Token issued so far: what a test greps its
    /// logs, Events and statuses for (`GET /_fake/sts/issued`). Only a fake
    /// hands out the secrets it issued.
    pub(super) fn issued_secrets(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .values()
            .flat_map(|k| {
                [
                    k.secret_key.expose().to_string(),
                    k.token.expose().to_string(),
                ]
            })
            .collect()
    }

    /// The keys issued with this `TmpSecretId`, if any.
    pub(super) fn lookup(&self, secret_id: &str) -> Option<IssuedKey> {
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(secret_id)
            .cloned()
    }

    /// One exchange, checked as the module docs say, at `now`.
    pub(super) async fn assume_role(
        &self,
        headers: &HeaderMap,
        parsed: Option<Value>,
        now: Timestamp,
        control: &FakeControl,
    ) -> Reply {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(running, Ordering::SeqCst);
        let _running = Running(&self.running);
        if !self.config.exchange_delay.is_zero() {
            tokio::time::sleep(self.config.exchange_delay).await;
        }
        let reply = self.check(headers, parsed, now, control);
        if matches!(reply, Reply::Ok(_)) {
            self.accepted.fetch_add(1, Ordering::SeqCst);
        }
        reply
    }

    fn check(
        &self,
        headers: &HeaderMap,
        parsed: Option<Value>,
        now: Timestamp,
        control: &FakeControl,
    ) -> Reply {
        match header_str(headers, "x-tc-version") {
            Some(VERSION) => {}
            Some(v) => {
                return Reply::error(
                    "NoSuchVersion",
                    format!("The API version `{v}` does not exist."),
                )
            }
            None => {
                return Reply::error(
                    "MissingParameter",
                    "The request is missing the X-TC-Version header.",
                )
            }
        }
        if header_str(headers, "authorization") != Some(AUTHORIZATION_SKIP) {
            return Reply::error(
                "AuthFailure.InvalidAuthorization",
                "AssumeRoleWithWebIdentity is called unsigned: the Authorization header must be SKIP.",
            );
        }
        match control.admit(clusterscale_tencent::sts::ACTION) {
            Admission::Proceed => {}
            Admission::Inject(e) => return injected_reply(e),
            Admission::Throttle { limit } => {
                return Reply::error(
                    "RequestLimitExceeded",
                    format!("Your current request times exceed the frequency limit `{limit}` per second of `AssumeRoleWithWebIdentity`."),
                )
            }
            Admission::Transient => {
                return Reply::error(
                    "InternalError.SystemError",
                    "An internal error has occurred (injected). Retry your request.",
                )
            }
        }
        let params = match parsed {
            Some(v @ Value::Object(_)) => v,
            _ => return Reply::error("InvalidParameter", "The request body is not a JSON object."),
        };
        let req: AssumeRoleWithWebIdentityRequest = match parse(&params) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        if !session_name_ok(&req.role_session_name) {
            return Reply::error(
                "InvalidParameter.ParamError",
                "RoleSessionName must be 2 to 128 of letters, digits and _+=,.@-.",
            );
        }
        if let Some(d) = req.duration_seconds {
            if !(1..=i64::from(MAX_DURATION_SECONDS)).contains(&d) {
                return Reply::error(
                    "InvalidParameter.OverTimeError",
                    format!("DurationSeconds {d} exceeds the threshold ({MAX_DURATION_SECONDS})."),
                );
            }
        }
        if req.provider_id != self.config.provider_id {
            return Reply::error(
                "InvalidParameter.ParamError",
                format!(
                    "The identity provider `{}` does not exist.",
                    req.provider_id
                ),
            );
        }
        if req.role_arn != self.config.role_arn {
            return Reply::error(
                "ResourceNotFound.RoleNotFound",
                format!("The role `{}` does not exist.", req.role_arn),
            );
        }
        let claims =
            match self
                .config
                .provider
                .verify(&req.web_identity_token, &self.config.audience, now)
            {
                Ok(c) => c,
                Err(refusal) => {
                    let reason = match refusal {
                        TokenRefusal::Expired { .. } => "Expired token".to_string(),
                        other => other.to_string(),
                    };
                    return Reply::error(
                        "InvalidParameter.WebIdentityTokenError",
                        format!("WebIdentityToken error. | id token error | {reason}"),
                    );
                }
            };
        if let Some(sub) = &self.config.subject {
            if &claims.sub != sub {
                return Reply::error(
                    "UnauthorizedOperation",
                    format!(
                        "The role's trust policy does not allow `{}` to assume it.",
                        claims.sub
                    ),
                );
            }
        }
        let expires = now
            + jiff::SignedDuration::try_from(self.config.key_lifetime)
                .unwrap_or(jiff::SignedDuration::MAX);
        let tmp_secret_id = random("AKID", 32);
        let secret_key = random("", 32);
        let token = random("", 96);
        let serial = {
            let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            let serial = issued.len() as u64 + 1;
            issued.insert(
                tmp_secret_id.clone(),
                IssuedKey {
                    serial,
                    secret_key: SecretString::new(secret_key.clone()),
                    token: SecretString::new(token.clone()),
                    expires,
                },
            );
            serial
        };
        tracing::debug!(serial, %expires, "fake STS issued temporary keys");
        Reply::ok(AssumeRoleWithWebIdentityResponse {
            credentials: StsCredentials {
                token,
                tmp_secret_id,
                tmp_secret_key: secret_key,
            },
            expired_time: expires.as_second(),
            expiration: expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }
}
