//! The fake IAM's OIDC federation (docs/credentials-design.md part 2): the
//! two calls of CCE workload identity, and the temporary keys MRS requests
//! are then signed with.
//!
//! - `POST /v3.0/OS-AUTH/id-token/tokens` ([`ACTION_ID_TOKEN`]): `X-Idp-Id`
//!   must name the configured identity provider, and the JWT of
//!   `auth.id_token.id` must verify ([`OidcProvider::verify`]: RS256 against
//!   the issuer's key; `iss`, `aud`, `exp`, `nbf` on the fake's clock). The
//!   answer is 201 with a new IAM token in `X-Subject-Token`, valid for
//!   [`HuaweiFakeConfig::token_ttl`](super::HuaweiFakeConfig::token_ttl).
//! - `POST /v3.0/OS-CREDENTIAL/securitytokens` ([`ACTION_SECURITY_TOKEN`]):
//!   the IAM token (the `X-Auth-Token` header, else `auth.identity.token.id`)
//!   must be one of those, unexpired; the answer is 201 with a new random
//!   `access`, `secret` and `securitytoken`, and `expires_at` after
//!   [`FakeFederation::key_lifetime`] (else the request's
//!   `duration_seconds`, else IAM's default 900) on the fake's clock.
//!
//! An MRS request signed with a temporary AK must carry its
//! `X-Security-Token` (signed, like every header the SDK sends) and come
//! before the keys expire; the signature is checked with the temporary SK.
//! Otherwise it is refused `401 APIGW.0301`, as the gateway refuses bad
//! credentials.
//!
//! Refusals of the two IAM calls. IAM documents no codes for these APIs
//! (the document's 2.7); the shapes are IAM's, the choice per case is ours
//! **(inference)**:
//! - no `X-Idp-Id`, or a scope naming nothing: 400 `IAM.0007` ("Request
//!   parameter %(key)s is invalid.", IAM's error-code list);
//! - a body that is not the API's: 400 `IAM.0011` ("Request body is
//!   invalid.");
//! - an unknown identity provider: 404 `IAM.0004` ("Could not find
//!   %(target)s: %(target_id)s.");
//! - a JWT that does not verify, an IAM token that is unknown or expired:
//!   401 with Keystone's nested body, `{"error": {"code": 401, "message",
//!   "title": "Unauthorized"}}` (as the fake's password tokens); the
//!   message says which check failed, which real IAM may not;
//! - a subject no mapping rule admits ([`FakeFederation::subjects`]): 403,
//!   nested, `"title": "Forbidden"`.
//!
//! The journal names who called (`idp:<id> sub:<subject>`, then
//! `sub:<subject>`), and for MRS requests the AK that signed (`ak:<AK>`,
//! the id only); request bodies are journaled with the JWT and the IAM
//! token redacted. [`super::HuaweiFake::exchange_stats`] counts the calls,
//! the keys issued and the most exchange calls that ran at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::{header, Account, Answer, Inner};
use crate::oidc::OidcProvider;
use clusterscale_huawei::federation::{IDP_HEADER, ID_TOKEN_PATH, SECURITY_TOKENS_PATH};
use clusterscale_huawei::token::{AUTH_TOKEN_HEADER, SUBJECT_TOKEN_HEADER};
use clusterscale_huawei::wire::{IdTokenRequest, SecurityTokenRequest};

pub use clusterscale_huawei::federation::{ACTION_ID_TOKEN, ACTION_SECURITY_TOKEN};

/// IAM's default `duration_seconds`, and its range.
const DEFAULT_DURATION: i64 = 900;
const DURATIONS: std::ops::RangeInclusive<i64> = 900..=86_400;

/// The identity provider the fake IAM federates with.
#[derive(Clone, Debug)]
pub struct FakeFederation {
    /// The issuer and its public key (a cluster's `sa.pub`, or
    /// [`crate::oidc::testing`]'s).
    pub provider: OidcProvider,
    /// `X-Idp-Id` accepted.
    pub idp_id: String,
    /// The audience the tokens must carry (the IdP's client id).
    pub audience: String,
    /// Lifetime of the keys handed out, whatever `duration_seconds` asks
    /// (tests: keys of 60 s, below IAM's 900 s minimum); `None`: the
    /// request's `duration_seconds`, else 900.
    pub key_lifetime: Option<Duration>,
    /// Subjects a mapping rule admits (`system:serviceaccount:<ns>:<sa>`);
    /// empty: any.
    pub subjects: Vec<String>,
    /// How long each of the two calls takes (so that overlapping exchanges
    /// overlap on the wire).
    pub delay: Duration,
}

impl FakeFederation {
    pub fn new(
        provider: OidcProvider,
        idp_id: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            idp_id: idp_id.into(),
            audience: audience.into(),
            key_lifetime: None,
            subjects: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// What the fake IAM counted of the exchanges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// `id-token/tokens` calls received, refused or not.
    pub id_token_calls: u64,
    /// `securitytokens` calls received, refused or not.
    pub security_token_calls: u64,
    /// Temporary keys handed out.
    pub keys_issued: u64,
    /// The most calls of either kind handled at once.
    pub most_at_once: u32,
}

/// Temporary keys handed out: the AK (an id), never the SK or the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedKey {
    pub access_key: String,
    pub subject: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

struct TemporaryKey {
    issued: IssuedKey,
    secret_key: String,
    security_token: String,
}

impl std::fmt::Debug for TemporaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryKey")
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

struct IamToken {
    subject: String,
    expires_at: Timestamp,
}

impl std::fmt::Debug for IamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamToken")
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The account's federation state (shared by a fleet's clusters).
#[derive(Debug, Default)]
pub(super) struct FederationState {
    /// IAM tokens of step 1, by token (keys of the map are not shown).
    iam_tokens: HashMap<String, IamToken>,
    /// Temporary keys of step 2, by AK.
    keys: HashMap<String, TemporaryKey>,
    running: u32,
    stats: ExchangeStats,
}

impl FederationState {
    pub(super) fn stats(&self) -> ExchangeStats {
        self.stats
    }

    /// The secret halves (SK, security token) of every key handed out:
    /// what a test greps its logs, Events and statuses for. Only a fake
    /// hands out the secrets it issued.
    pub(super) fn issued_secrets(&self) -> Vec<String> {
        self.keys
            .values()
            .flat_map(|k| [k.secret_key.clone(), k.security_token.clone()])
            .collect()
    }

    /// Every key handed out, oldest first.
    pub(super) fn issued(&self) -> Vec<IssuedKey> {
        let mut v: Vec<IssuedKey> = self.keys.values().map(|k| k.issued.clone()).collect();
        v.sort_by_key(|k| k.issued_at);
        v
    }
}

/// Whether `path` is one of the two federation calls.
pub(super) fn is_federation_path(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p == ID_TOKEN_PATH || p == SECURITY_TOKENS_PATH
}

/// A federation call being handled: counted while it lives.
pub(super) struct Running(Arc<Mutex<Account>>);

impl Running {
    pub(super) fn start(account: &Arc<Mutex<Account>>) -> Self {
        let mut a = account.lock().unwrap_or_else(|e| e.into_inner());
        a.federation.running += 1;
        a.federation.stats.most_at_once = a.federation.stats.most_at_once.max(a.federation.running);
        drop(a);
        Self(account.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap_or_else(|e| e.into_inner());
        a.federation.running = a.federation.running.saturating_sub(1);
    }
}

/// The answer to a federation call, `None` for any other path (or when
/// the fake has no federation): `(answer, action, principal)`.
pub(super) fn route(
    inner: &Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<(Answer, &'static str, String)> {
    let fed = inner.opts.federation.as_ref()?;
    let p = path.trim_end_matches('/');
    let action = if p == ID_TOKEN_PATH {
        ACTION_ID_TOKEN
    } else if p == SECURITY_TOKENS_PATH {
        ACTION_SECURITY_TOKEN
    } else {
        return None;
    };
    {
        let mut a = inner.account();
        match action {
            ACTION_ID_TOKEN => a.federation.stats.id_token_calls += 1,
            _ => a.federation.stats.security_token_calls += 1,
        }
    }
    if method != Method::POST {
        return Some((
            Answer::error(StatusCode::METHOD_NOT_ALLOWED, "IAM.0001", "use POST"),
            action,
            String::new(),
        ));
    }
    if let Some(a) = super::injected(inner, action) {
        return Some((a, action, String::new()));
    }
    let (answer, who) = match action {
        ACTION_ID_TOKEN => id_token(inner, fed, headers, body),
        _ => security_token(inner, fed, headers, body),
    };
    Some((answer, action, who))
}

/// `400 IAM.0007`.
fn invalid_parameter(key: &str) -> Answer {
    Answer::error(
        StatusCode::BAD_REQUEST,
        "IAM.0007",
        format!("Request parameter {key} is invalid."),
    )
}

/// `400 IAM.0011`.
fn invalid_body(detail: String) -> Answer {
    let mut a = Answer::error(
        StatusCode::BAD_REQUEST,
        "IAM.0011",
        "Request body is invalid.",
    );
    a.detail = format!("Request body is invalid: {detail}");
    a
}

/// Keystone's nested error body (`{"error": {"code": 401, ...}}`).
fn keystone(status: StatusCode, message: String) -> Answer {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut a = Answer::error(status, &status.as_u16().to_string(), message.clone());
    a.body = json!({"error": {"code": status.as_u16(), "message": message, "title": title}});
    a
}

fn timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Random uppercase letters and digits.
fn random_text(len: usize, upper: bool) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let set = if upper { UPPER } else { MIXED };
    (0..len)
        .map(|_| set[rand::random_range(0..set.len())] as char)
        .collect()
}

/// Step 1: the ID token for an IAM token.
fn id_token(
    inner: &Inner,
    fed: &FakeFederation,
    headers: &HeaderMap,
    body: &[u8],
) -> (Answer, String) {
    let Some(idp) = header(headers, IDP_HEADER)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return (invalid_parameter(IDP_HEADER), String::new());
    };
    let who = format!("idp:{idp}");
    if idp != fed.idp_id {
        return (
            Answer::error(
                StatusCode::NOT_FOUND,
                "IAM.0004",
                format!("Could not find identity provider: {idp}."),
            ),
            who,
        );
    }
    let request: IdTokenRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return (invalid_body(format!("{:?}", e.classify())), who),
    };
    if let Some(scope) = &request.auth.scope {
        let names_one = |r: &Option<clusterscale_huawei::wire::IdOrName>| {
            r.as_ref().is_some_and(|r| {
                r.id.as_deref().is_some_and(|v| !v.is_empty())
                    || r.name.as_deref().is_some_and(|v| !v.is_empty())
            })
        };
        if names_one(&scope.project) == names_one(&scope.domain) {
            return (invalid_parameter("auth.scope"), who);
        }
    }
    let now = inner.options.clock.now();
    let claims = match fed
        .provider
        .verify(request.auth.id_token.id.trim(), &fed.audience, now)
    {
        Ok(c) => c,
        Err(refusal) => {
            return (
                keystone(
                    StatusCode::UNAUTHORIZED,
                    format!("The ID token is invalid: {refusal}"),
                ),
                who,
            )
        }
    };
    let who = format!("idp:{idp} sub:{}", claims.sub);
    if !fed.subjects.is_empty() && !fed.subjects.contains(&claims.sub) {
        return (
            keystone(
                StatusCode::FORBIDDEN,
                format!(
                    "No mapping rule of identity provider {idp} matches the subject {}.",
                    claims.sub
                ),
            ),
            who,
        );
    }
    let ttl =
        SignedDuration::try_from(inner.opts.token_ttl).unwrap_or(SignedDuration::from_hours(24));
    let expires_at = now + ttl;
    let token = format!("MIIFED{}", random_text(64, false));
    {
        let mut a = inner.account();
        a.federation.iam_tokens.retain(|_, t| t.expires_at > now);
        a.federation.iam_tokens.insert(
            token.clone(),
            IamToken {
                subject: claims.sub.clone(),
                expires_at,
            },
        );
    }
    let mut a = Answer::ok(
        StatusCode::CREATED,
        json!({"token": {
            "expires_at": timestamp(expires_at),
            "issued_at": timestamp(now),
            "methods": ["mapped"],
            "user": {
                "OS-FEDERATION": {
                    "identity_provider": {"id": idp},
                    "protocol": {"id": "oidc"},
                    "groups": []
                },
                "name": claims.sub,
            }
        }}),
    );
    a.extra_header = Some((SUBJECT_TOKEN_HEADER, token));
    a.detail = format!("IAM token for {}, expires {expires_at}", claims.sub);
    (a, who)
}

/// Step 2: the IAM token for temporary keys.
fn security_token(
    inner: &Inner,
    fed: &FakeFederation,
    headers: &HeaderMap,
    body: &[u8],
) -> (Answer, String) {
    let request: SecurityTokenRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return (invalid_body(format!("{:?}", e.classify())), String::new()),
    };
    let identity = &request.auth.identity;
    if !identity.methods.iter().any(|m| m == "token") {
        return (invalid_parameter("auth.identity.methods"), String::new());
    }
    let duration = identity.token.as_ref().and_then(|t| t.duration_seconds);
    if duration.is_some_and(|d| !DURATIONS.contains(&d)) {
        return (
            invalid_parameter("auth.identity.token.duration_seconds"),
            String::new(),
        );
    }
    // The header takes precedence over the body (IAM's API reference).
    let token = header(headers, AUTH_TOKEN_HEADER)
        .map(str::to_string)
        .or_else(|| identity.token.as_ref().and_then(|t| t.id.clone()))
        .filter(|t| !t.trim().is_empty());
    let Some(token) = token else {
        return (invalid_parameter("auth.identity.token.id"), String::new());
    };
    let now = inner.options.clock.now();
    let subject = {
        let a = inner.account();
        a.federation
            .iam_tokens
            .get(token.trim())
            .filter(|t| t.expires_at > now)
            .map(|t| t.subject.clone())
    };
    let Some(subject) = subject else {
        return (
            keystone(
                StatusCode::UNAUTHORIZED,
                "The IAM token is invalid or expired.".into(),
            ),
            String::new(),
        );
    };
    let who = format!("sub:{subject}");
    let lifetime = fed
        .key_lifetime
        .and_then(|l| SignedDuration::try_from(l).ok())
        .unwrap_or_else(|| SignedDuration::from_secs(duration.unwrap_or(DEFAULT_DURATION)));
    let expires_at = now + lifetime;
    let access_key = random_text(20, true);
    let secret_key = random_text(40, false);
    let security_token = format!("gQpjbi1ub3J0aC00{}", random_text(160, false));
    {
        let mut a = inner.account();
        // Keys expired a day ago are forgotten (an AK IAM no longer knows).
        a.federation
            .keys
            .retain(|_, k| k.issued.expires_at + SignedDuration::from_hours(24) > now);
        a.federation.keys.insert(
            access_key.clone(),
            TemporaryKey {
                issued: IssuedKey {
                    access_key: access_key.clone(),
                    subject: subject.clone(),
                    issued_at: now,
                    expires_at,
                },
                secret_key: secret_key.clone(),
                security_token: security_token.clone(),
            },
        );
        a.federation.stats.keys_issued += 1;
    }
    let mut a = Answer::ok(
        StatusCode::CREATED,
        json!({"credential": {
            "access": access_key,
            "secret": secret_key,
            "securitytoken": security_token,
            "expires_at": timestamp(expires_at),
        }}),
    );
    a.detail = format!("temporary keys {access_key} for {subject}, expire {expires_at}");
    (a, who)
}

/// The SK of temporary key `access_key`, when the request carries its
/// security token and the keys have not expired; else the gateway's
/// message. `None`: not a temporary key.
pub(super) fn temporary_secret(
    inner: &Inner,
    access_key: &str,
    headers: &HeaderMap,
) -> Option<Result<String, String>> {
    let a = inner.account();
    let key = a.federation.keys.get(access_key)?;
    // The gateway's messages for these cases are not documented: the texts
    // are those it gives for an AK it cannot find, a signature that does
    // not verify, and an expired AK/SK (support.huaweicloud.com API
    // signing and APIG FAQs); their use here is **inference**.
    Some(match header(headers, "x-security-token") {
        None => Err("Get secretKey failed,ak:******,err:ak not exist".into()),
        Some(t) if t != key.security_token => Err("verify aksk signature fail".into()),
        Some(_) if key.issued.expires_at <= inner.options.clock.now() => {
            Err("calc ak sk signature fail:signature expired".into())
        }
        Some(_) => Ok(key.secret_key.clone()),
    })
}

/// The journaled request body without the JWT or the IAM token: the `id`
/// of any `id_token` or `token` object.
pub(super) fn redact_token_ids(v: &mut Value) {
    if let Value::Object(map) = v {
        for (k, child) in map.iter_mut() {
            if k == "id_token" || k == "token" {
                if let Some(id) = child.get_mut("id") {
                    *id = Value::String("<redacted>".into());
                }
            }
            redact_token_ids(child);
        }
    } else if let Value::Array(items) = v {
        items.iter_mut().for_each(redact_token_ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journaled_bodies_hide_the_tokens() {
        let mut v =
            json!({"auth": {"id_token": {"id": "eyJ.jwt"}, "scope": {"project": {"id": "p1"}}}});
        redact_token_ids(&mut v);
        assert_eq!(v["auth"]["id_token"]["id"], "<redacted>");
        assert_eq!(v["auth"]["scope"]["project"]["id"], "p1");
        let mut v = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "MIIF", "duration_seconds": 900}}}});
        redact_token_ids(&mut v);
        assert_eq!(v["auth"]["identity"]["token"]["id"], "<redacted>");
        assert_eq!(v["auth"]["identity"]["token"]["duration_seconds"], 900);
    }

    #[test]
    fn keystone_bodies_are_nested() {
        let a = keystone(StatusCode::UNAUTHORIZED, "no".into());
        assert_eq!(
            a.body,
            json!({"error": {"code": 401, "message": "no", "title": "Unauthorized"}})
        );
        assert_eq!(a.code.as_deref(), Some("401"));
    }
}
