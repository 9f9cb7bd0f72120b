//! What every HTTP cloud client shares: endpoint rules, the HTTP client,
//! rate limits and transport errors.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{CloudError, Effect, ErrorClass};

/// A parsed API endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host[:port]` or `http://127.0.0.1:port`, without a trailing slash.
    pub base: String,
    /// The Host header value, exactly as sent and signed (`host` or `host:port`).
    pub host: String,
    /// True for plain http (loopback only).
    pub insecure: bool,
}

/// Parse an endpoint. `https://` is always accepted; `http://` only for a
/// loopback address (127.0.0.0/8, ::1, localhost), for fakes and tests.
pub fn parse_endpoint(field: &str, url: &str) -> Result<Endpoint, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{field}: {url:?} is not a URL (expected https://host)"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{field}: {url:?} has no host"));
    }
    if !rest
        .trim_start_matches(authority)
        .trim_matches('/')
        .is_empty()
    {
        return Err(format!("{field}: {url:?} must not have a path"));
    }
    let hostname = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    let insecure = match scheme {
        "https" => false,
        "http" if is_loopback(hostname) => true,
        "http" => {
            return Err(format!(
                "{field}: http:// is allowed only for loopback addresses, not {hostname:?}; use https://"
            ))
        }
        other => return Err(format!("{field}: unsupported scheme {other:?}")),
    };
    Ok(Endpoint {
        base: format!("{scheme}://{authority}"),
        host: authority.to_string(),
        insecure,
    })
}

fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client every cloud uses: rustls, timeouts, no proxies from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("clusterscale/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// A transport failure (connect, timeout, body) as a Transient cloud error.
///
/// Its [`Effect`]: a connection that could not be opened carried no request
/// ([`Effect::Refused`]); a timeout, a reset or a body that broke off after
/// the request was sent leaves the outcome unknown ([`Effect::Unknown`]).
pub fn transport_error(action: &str, e: &reqwest::Error) -> CloudError {
    let (code, effect) = if e.is_connect() {
        ("ConnectError", Effect::Refused)
    } else if e.is_timeout() {
        ("Timeout", Effect::Unknown)
    } else {
        ("NetworkError", Effect::Unknown)
    };
    CloudError::new(ErrorClass::Transient, action, code, e.to_string()).with_effect(effect)
}

/// A response body we could not understand: names the action and request id.
/// Whoever wrote it, we cannot tell what it says: the outcome is unknown.
pub fn malformed(
    action: &str,
    request_id: Option<String>,
    detail: impl std::fmt::Display,
) -> CloudError {
    CloudError::new(
        ErrorClass::Transient,
        action,
        "MalformedResponse",
        format!("malformed response to {action}: {detail}"),
    )
    .with_request_id(request_id)
    .effect_unknown()
}

type Buckets = HashMap<(String, String), Arc<DefaultDirectRateLimiter>>;

/// Token buckets keyed by (account, action): the clouds limit requests per
/// action and account (Tencent: 20/s per action).
#[derive(Clone)]
pub struct RateLimits {
    per_second: NonZeroU32,
    buckets: Arc<Mutex<Buckets>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_second", &self.per_second)
            .finish()
    }
}

impl RateLimits {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: NonZeroU32::new(per_second.max(1)).expect("at least 1"),
            buckets: Arc::default(),
        }
    }

    /// Wait until a request of `action` for `account` may be sent.
    pub async fn acquire(&self, account: &str, action: &str) {
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets
                .entry((account.to_string(), action.to_string()))
                // Burst of 1: requests are spread evenly, never more than N in any second.
                .or_insert_with(|| {
                    let quota = Quota::per_second(self.per_second).allow_burst(NonZeroU32::MIN);
                    Arc::new(RateLimiter::direct(quota))
                })
                .clone()
        };
        bucket.until_ready().await;
    }
}

/// Shared across every client of the process, so that two resources using
/// one account share its budget.
pub fn shared_rate_limits(per_second: u32) -> RateLimits {
    static LIMITS: std::sync::OnceLock<Mutex<HashMap<u32, RateLimits>>> =
        std::sync::OnceLock::new();
    let map = LIMITS.get_or_init(Mutex::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(per_second)
        .or_insert_with(|| RateLimits::new(per_second))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = parse_endpoint("spec.tencent.endpoint", "https://emr.tencentcloudapi.com").unwrap();
        assert_eq!(
            (e.host.as_str(), e.insecure),
            ("emr.tencentcloudapi.com", false)
        );
        let e = parse_endpoint("f", "http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (e.base.as_str(), e.host.as_str(), e.insecure),
            ("http://127.0.0.1:8080", "127.0.0.1:8080", true)
        );
        assert!(parse_endpoint("f", "http://127.9.9.9:1").is_ok());
        assert!(parse_endpoint("f", "http://[::1]:1").is_ok());
        let err = parse_endpoint("spec.tencent.endpoint", "http://10.0.0.1:80").unwrap_err();
        assert!(
            err.contains("spec.tencent.endpoint") && err.contains("loopback"),
            "{err}"
        );
        assert!(parse_endpoint("f", "emr.tencentcloudapi.com").is_err());
        assert!(parse_endpoint("f", "https://h/x").is_err());
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests() {
        let limits = RateLimits::new(20);
        let start = std::time::Instant::now();
        for _ in 0..21 {
            limits.acquire("AKID", "DescribeInstances").await;
        }
        // 21 requests at 20/s with no burst need at least one second.
        assert!(
            start.elapsed() >= Duration::from_millis(990),
            "{:?}",
            start.elapsed()
        );
        let other = std::time::Instant::now();
        limits.acquire("AKID", "ScaleOutInstance").await;
        assert!(
            other.elapsed() < Duration::from_millis(40),
            "other actions have their own bucket"
        );
    }
}
