//! IAM token authentication (the seed's `X-Auth-Token`).
//!
//! `POST {iam}/v3/auth/tokens?nocatalog=true` with a password identity scoped
//! to the project; IAM answers 201 with the token in the `X-Subject-Token`
//! header and `token.expires_at` in the body (cloud-apis.md B4). The token is
//! cached and reused until [`REFRESH_MARGIN`] before it expires. The client
//! drops it ([`TokenSource::invalidate`]) when MRS rejects it and fetches a
//! new one once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;

use super::errors;
use super::wire::{TokenRequest, TokenResponse};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_core::cloud::http::{malformed, transport_error, Endpoint};
use clusterscale_core::cloud::{CloudError, ErrorClass};

/// Path of the IAM token API.
pub const TOKEN_PATH: &str = "/v3/auth/tokens";
/// Response header that carries the token.
pub const SUBJECT_TOKEN_HEADER: &str = "X-Subject-Token";
/// Request header that carries the token to MRS.
pub const AUTH_TOKEN_HEADER: &str = "X-Auth-Token";
/// A cached token is replaced this long before it expires (tokens live 24 h).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Action name in errors.
pub const ACTION: &str = "IAM POST /v3/auth/tokens";

/// An IAM user's password credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordCredentials {
    /// IAM user name.
    pub username: String,
    pub password: SecretString,
    /// Account (domain) name the user belongs to.
    pub domain_name: String,
}

/// A token and when to stop using it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedToken {
    pub token: SecretString,
    pub expires_at: Timestamp,
    /// Fetch a new token from this moment on.
    pub refresh_at: Timestamp,
}

impl CachedToken {
    /// Cache a token that expires at `expires_at`, fetched at `now`: refresh
    /// [`REFRESH_MARGIN`] early, or halfway through a lifetime shorter than
    /// twice that margin.
    pub fn new(token: SecretString, expires_at: Timestamp, now: Timestamp) -> Self {
        let margin = SignedDuration::try_from(REFRESH_MARGIN).unwrap_or(SignedDuration::ZERO);
        let lifetime = expires_at.duration_since(now);
        let early = if lifetime > margin * 2 {
            margin
        } else {
            lifetime / 2
        };
        Self {
            token,
            expires_at,
            refresh_at: expires_at - early,
        }
    }

    pub fn fresh(&self, now: Timestamp) -> bool {
        now < self.refresh_at
    }
}

/// Fetches and caches one project-scoped token.
#[derive(Debug)]
pub struct TokenSource {
    iam: Endpoint,
    user: PasswordCredentials,
    project_id: String,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    fetches: AtomicU64,
}

impl TokenSource {
    pub fn new(iam: Endpoint, user: PasswordCredentials, project_id: impl Into<String>) -> Self {
        Self {
            iam,
            user,
            project_id: project_id.into(),
            cache: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// The IAM endpoint in use.
    pub fn iam(&self) -> &Endpoint {
        &self.iam
    }

    /// A key that identifies these credentials without revealing them.
    pub fn account_key(&self) -> String {
        format!("{}@{}", self.user.username, self.user.domain_name)
    }

    /// The user's credentials.
    pub fn user(&self) -> &PasswordCredentials {
        &self.user
    }

    /// How many tokens were fetched so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one while fresh, else a new one.
    /// Concurrent callers share one fetch.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        now: Timestamp,
    ) -> Result<SecretString, CloudError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| c.fresh(now)) {
            return Ok(cached.token.clone());
        }
        let fetched = self.fetch(http, now).await?;
        let token = fetched.token.clone();
        *cache = Some(fetched);
        Ok(token)
    }

    /// Drop `stale` from the cache (no-op if another caller already replaced it).
    pub async fn invalidate(&self, stale: &SecretString) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == stale) {
            *cache = None;
        }
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        now: Timestamp,
    ) -> Result<CachedToken, CloudError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let body = TokenRequest::password(
            &self.user.username,
            self.user.password.expose(),
            &self.user.domain_name,
            &self.project_id,
        );
        tracing::debug!(iam = %self.iam.base, request = %body, "fetching an IAM token");
        let url = format!("{}{TOKEN_PATH}?nocatalog=true", self.iam.base);
        let response = http
            .post(url)
            .header(reqwest::header::HOST, &self.iam.host)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json;charset=utf8",
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(ACTION, &e))?;
        let status = response.status();
        let request_id = super::errors::request_id(response.headers());
        let token = response
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(ACTION, &e))?;
        if !status.is_success() {
            let mut e = errors::from_response(ACTION, status, request_id, &bytes);
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                e.class = ErrorClass::Auth;
                e.message = format!(
                    "IAM refused password authentication for user {:?} of domain {:?}: {}",
                    self.user.username, self.user.domain_name, e.message
                );
            }
            return Err(e);
        }
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            malformed(
                ACTION,
                request_id.clone(),
                format!("no {SUBJECT_TOKEN_HEADER} header"),
            )
        })?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| malformed(ACTION, request_id.clone(), e))?;
        let expires_at: Timestamp = parsed.token.expires_at.parse().map_err(|e| {
            malformed(
                ACTION,
                request_id.clone(),
                format!("token.expires_at {:?}: {e}", parsed.token.expires_at),
            )
        })?;
        if expires_at <= now {
            return Err(malformed(
                ACTION,
                request_id,
                format!("token.expires_at {expires_at} is not in the future (clock skew?)"),
            ));
        }
        Ok(CachedToken::new(SecretString::new(token), expires_at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_shortly_before_expiry() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let day = now + SignedDuration::from_hours(24);
        let t = CachedToken::new(SecretString::new("t"), day, now);
        assert_eq!(t.refresh_at, day - SignedDuration::from_mins(5));
        assert!(t.fresh(now + SignedDuration::from_hours(23)));
        assert!(!t.fresh(day - SignedDuration::from_mins(4)));
        // A short-lived token is refreshed halfway.
        let short = now + SignedDuration::from_secs(60);
        let t = CachedToken::new(SecretString::new("t"), short, now);
        assert_eq!(t.refresh_at, now + SignedDuration::from_secs(30));
    }
}
