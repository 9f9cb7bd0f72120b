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

/// A limit of one action of a cloud that publishes it per window rather
/// than per second: at most `requests` requests in any `window` (MRS v2:
/// expand 60 per minute).
///
/// As a token bucket ([`Self::quota`]): half the requests may go at once,
/// the other half are spread evenly over the window. Of a bucket with burst
/// `b` refilled one every `t`, any window `w` sees at most `b + w / t`
/// requests (both ends counted), here `requests / 2 + requests / 2`, so no
/// window of `window` ever holds more than `requests`, after a pause or not
/// (a quota of 1: one per window). A full burst of `requests` followed by
/// an even rate would allow twice as many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionQuota {
    pub requests: NonZeroU32,
    pub window: Duration,
}

impl ActionQuota {
    /// At most `requests` (at least 1) in any `window`.
    pub fn new(requests: u32, window: Duration) -> Self {
        Self {
            requests: NonZeroU32::new(requests.max(1)).expect("at least 1"),
            window,
        }
    }

    /// At most `requests` in any minute.
    pub fn per_minute(requests: u32) -> Self {
        Self::new(requests, Duration::from_secs(60))
    }

    /// The bucket: a burst of half the requests (at least 1), the rest
    /// refilled evenly over the window (a quota of 1 is one per window).
    pub fn quota(&self) -> Quota {
        let n = self.requests.get();
        let burst = (n / 2).max(1);
        let refilled = (n - burst).max(1);
        let period = (self.window / refilled).max(Duration::from_nanos(1));
        Quota::with_period(period)
            .expect("a period above zero")
            .allow_burst(NonZeroU32::new(burst).expect("at least 1"))
    }
}

/// Token buckets keyed by (account, action): the clouds limit requests per
/// action and account (Tencent: 20/s per action; MRS v2: expand and shrink
/// 60/min, ListNodes 200/min).
///
/// Every action goes at `per_second` with a burst of 1 (never more than N in
/// any second), except the actions given an [`ActionQuota`]
/// ([`Self::with_quota`]), which go at their quota instead. Every request
/// acquires, each page of a paged list included, so a burst of pages or of
/// writes across the clusters of one account stays within the account's
/// limit.
#[derive(Clone)]
pub struct RateLimits {
    per_second: NonZeroU32,
    quotas: Arc<HashMap<String, ActionQuota>>,
    buckets: Arc<Mutex<Buckets>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_second", &self.per_second)
            .field("quotas", &self.quotas)
            .finish()
    }
}

impl RateLimits {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: NonZeroU32::new(per_second.max(1)).expect("at least 1"),
            quotas: Arc::default(),
            buckets: Arc::default(),
        }
    }

    /// `action` goes at `quota` instead of the per-second rate. For
    /// building: buckets made before (by an [`acquire`](Self::acquire))
    /// keep the rate they were made with.
    pub fn with_quota(mut self, action: &str, quota: ActionQuota) -> Self {
        Arc::make_mut(&mut self.quotas).insert(action.to_string(), quota);
        self
    }

    /// The quota of `action`, if it has its own.
    pub fn quota_of(&self, action: &str) -> Option<ActionQuota> {
        self.quotas.get(action).copied()
    }

    /// The bucket of (`account`, `action`), made on first use.
    fn bucket(&self, account: &str, action: &str) -> Arc<DefaultDirectRateLimiter> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry((account.to_string(), action.to_string()))
            .or_insert_with(|| {
                let quota = match self.quota_of(action) {
                    Some(q) => q.quota(),
                    // Burst of 1: requests are spread evenly, never more than N in any second.
                    None => Quota::per_second(self.per_second).allow_burst(NonZeroU32::MIN),
                };
                Arc::new(RateLimiter::direct(quota))
            })
            .clone()
    }

    /// Wait until a request of `action` for `account` may be sent.
    pub async fn acquire(&self, account: &str, action: &str) {
        self.bucket(account, action).until_ready().await;
    }

    /// Take a request of `action` for `account` if one may be sent now,
    /// without waiting.
    pub fn try_acquire(&self, account: &str, action: &str) -> bool {
        self.bucket(account, action).check().is_ok()
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

    #[test]
    fn an_action_quota_keeps_any_window_within_its_requests() {
        // 200 per minute: 100 at once, then one every 0.6 s.
        let q = ActionQuota::per_minute(200).quota();
        assert_eq!(q.burst_size().get(), 100);
        assert_eq!(q.replenish_interval(), Duration::from_millis(600));
        let q = ActionQuota::per_minute(60).quota();
        assert_eq!(
            (q.burst_size().get(), q.replenish_interval()),
            (30, Duration::from_secs(2))
        );
        // Small and odd quotas: burst + window / period is the quota (1:
        // one per window, two when a window's both ends are counted).
        for n in [1u32, 2, 3, 7] {
            let q = ActionQuota::new(n, Duration::from_secs(10)).quota();
            let in_window = q.burst_size().get()
                + (Duration::from_secs(10).as_nanos() / q.replenish_interval().as_nanos()) as u32;
            assert_eq!(in_window, n.max(2), "quota {n}");
        }
    }

    #[test]
    fn a_quota_applies_to_its_action_and_account_only() {
        // 6 an hour: 3 at once, then one every 20 minutes; nothing refills
        // while the test runs, so no timing is involved.
        let limits = RateLimits::new(5)
            .with_quota("GET nodes", ActionQuota::new(6, Duration::from_secs(3600)));
        assert_eq!(
            limits.quota_of("GET nodes"),
            Some(ActionQuota::new(6, Duration::from_secs(3600)))
        );
        assert_eq!(limits.quota_of("GET cluster_infos"), None);
        let taken = (0..4)
            .map(|_| limits.try_acquire("AK1", "GET nodes"))
            .collect::<Vec<_>>();
        assert_eq!(taken, [true, true, true, false], "the 4th waits");
        // Another account, and another action at the per-second rate (burst 1).
        assert!(limits.try_acquire("AK2", "GET nodes"));
        assert!(limits.try_acquire("AK1", "GET cluster_infos"));
        assert!(!limits.try_acquire("AK1", "GET cluster_infos"));
        // A clone shares the buckets (one budget per process).
        assert!(!limits.clone().try_acquire("AK1", "GET nodes"));
    }

    #[tokio::test]
    async fn acquire_waits_for_the_quota() {
        // 2 per 400 ms: 1 at once, then one every 400 ms.
        let limits = RateLimits::new(1000).with_quota(
            "POST expand",
            ActionQuota::new(2, Duration::from_millis(400)),
        );
        let start = std::time::Instant::now();
        for _ in 0..3 {
            limits.acquire("AK", "POST expand").await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(790),
            "{:?}",
            start.elapsed()
        );
    }
}
