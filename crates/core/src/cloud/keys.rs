//! Signing keys: fixed ones (from a Secret), or temporary ones that an
//! [`Exchange`] trades a workload identity token for (Tencent STS
//! `AssumeRoleWithWebIdentity`, Huawei IAM id-token + `securitytokens`).
//!
//! A [`KeySource`] is shared by every client of one account, so that:
//! - keys are fetched on first use and refreshed ahead of expiry
//!   ([`refresh_at`]: at 80% of their lifetime or 5 minutes before expiry,
//!   whichever comes first, but never before half the lifetime);
//! - one exchange runs at a time per account: while it runs, callers that
//!   hold valid keys sign with them, the others wait for its outcome;
//! - a request is never signed with expired keys: keys within
//!   [`EXPIRY_MARGIN`] of their expiry are not handed out;
//! - a refused exchange is retried with backoff ([`RETRY_FIRST`] doubling to
//!   [`RETRY_MAX`]), not on every request; until then the refusal is
//!   returned as it came (the cloud's code and request id), unless keys
//!   still valid can sign.
//!
//! Key material stays in [`SecretString`]s: `Debug` of every type here
//! shows when keys expire, never what they are.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use super::credentials::SecretString;
use super::CloudError;
use crate::clock::Clock;

/// Keys within this of their expiry are not used to sign: a request signed
/// now must still be valid when the cloud checks it.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(15);
/// The first wait after a refused exchange.
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between two exchanges that fail.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// One set of signing keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// SecretId (Tencent) or AK (Huawei).
    pub id: SecretString,
    /// SecretKey (Tencent) or SK (Huawei).
    pub secret: SecretString,
    /// The session token of temporary keys: Tencent `X-TC-Token`, Huawei
    /// `X-Security-Token`.
    pub token: Option<SecretString>,
    /// When temporary keys expire; `None` for fixed keys.
    pub expires_at: Option<Timestamp>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("token", &self.token.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Fixed keys, with the optional session token of a Secret.
    pub fn fixed(id: SecretString, secret: SecretString, token: Option<SecretString>) -> Self {
        Self {
            id,
            secret,
            token,
            expires_at: None,
        }
    }

    /// Whether these keys may sign a request at `now`.
    pub fn usable(&self, now: Timestamp) -> bool {
        self.expires_at
            .is_none_or(|e| now + signed(EXPIRY_MARGIN) < e)
    }
}

/// Trades a workload identity for temporary keys. One per account.
#[async_trait]
pub trait Exchange: Send + Sync {
    /// New temporary keys, with their `expires_at`. An `Err` keeps the
    /// cloud's code and request id, as every [`CloudError`] does.
    async fn exchange(&self) -> Result<Keys, CloudError>;

    /// Who the keys are for, for status and logs (a role ARN and OIDC
    /// provider, an IdP and domain); never key material.
    fn identity(&self) -> String;
}

/// When keys issued at `issued` and expiring at `expires` are refreshed:
/// at 80% of their lifetime or 5 minutes before expiry, whichever comes
/// first, but not before half their lifetime (so that keys of a few
/// minutes are not exchanged again on every request).
pub fn refresh_at(issued: Timestamp, expires: Timestamp) -> Timestamp {
    let life = issued.duration_until(expires);
    let at_80 = issued + life.checked_mul(4).unwrap_or(life) / 5;
    let five_before = expires - SignedDuration::from_mins(5);
    let half = issued + life / 2;
    at_80.min(five_before).max(half)
}

/// What a [`KeySource`] can say about itself (for a CloudAccount's status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysReport {
    /// [`Exchange::identity`], or `"static keys"`.
    pub identity: String,
    /// When the current temporary keys expire.
    pub expires_at: Option<Timestamp>,
    /// When the last exchange succeeded.
    pub refreshed_at: Option<Timestamp>,
    /// Exchanges that succeeded, and that failed, since the source was made.
    pub exchanges: u64,
    pub failures: u64,
    /// The last exchange's error, while no later one has succeeded.
    pub last_error: Option<CloudError>,
}

/// Signing keys of one account ([module docs](self)).
pub struct KeySource {
    kind: Kind,
}

enum Kind {
    Fixed(Arc<Keys>),
    Exchanged(Box<Exchanged>),
}

struct Exchanged {
    exchange: Arc<dyn Exchange>,
    clock: Arc<dyn Clock>,
    /// The keys callers sign with, read without waiting for an exchange.
    current: RwLock<Option<Current>>,
    /// Held for the whole of an exchange: one at a time.
    refresh: tokio::sync::Mutex<Backoff>,
    report: RwLock<KeysReport>,
}

#[derive(Clone)]
struct Current {
    keys: Arc<Keys>,
    refresh_at: Timestamp,
}

#[derive(Default)]
struct Backoff {
    /// No exchange before this, after a refusal.
    retry_at: Option<Timestamp>,
    wait: Option<Duration>,
    last_error: Option<CloudError>,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed(k) => f.debug_tuple("KeySource::Fixed").field(k).finish(),
            Kind::Exchanged(e) => f
                .debug_struct("KeySource::Exchanged")
                .field("identity", &e.exchange.identity())
                .finish_non_exhaustive(),
        }
    }
}

impl KeySource {
    /// Keys that never change (a Secret's).
    pub fn fixed(keys: Keys) -> Self {
        Self {
            kind: Kind::Fixed(Arc::new(keys)),
        }
    }

    /// Temporary keys from `exchange`, timed by `clock`.
    pub fn exchanged(exchange: Arc<dyn Exchange>, clock: Arc<dyn Clock>) -> Self {
        let identity = exchange.identity();
        Self {
            kind: Kind::Exchanged(Box::new(Exchanged {
                exchange,
                clock,
                current: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(Backoff::default()),
                report: RwLock::new(KeysReport {
                    identity,
                    ..KeysReport::default()
                }),
            })),
        }
    }

    /// Keys to sign one request with now: valid past [`EXPIRY_MARGIN`].
    pub async fn keys(&self) -> Result<Arc<Keys>, CloudError> {
        match &self.kind {
            Kind::Fixed(k) => Ok(k.clone()),
            Kind::Exchanged(e) => e.keys().await,
        }
    }

    /// The keys of a fixed source (a Secret's), without waiting; `None` for
    /// exchanged keys, which change at every refresh. For what must stay
    /// the same across refreshes (a rate-limit budget, a hold-off): fixed
    /// keys are named by their id, exchanged ones by [`Exchange::identity`].
    pub fn fixed_keys(&self) -> Option<Arc<Keys>> {
        match &self.kind {
            Kind::Fixed(k) => Some(k.clone()),
            Kind::Exchanged(_) => None,
        }
    }

    /// The account these keys act as, stable across refreshes: the key
    /// that a client's rate-limit budget and hold-offs are kept under. Fixed
    /// keys are named by their id (SecretId, AK); exchanged ones by
    /// `exchanged:` and [`Exchange::identity`] (their ids change at every
    /// refresh), so that every client of one account, whichever
    /// `KeySource` it holds, draws from one budget.
    pub fn account(&self) -> String {
        match &self.kind {
            Kind::Fixed(k) => k.id.expose().trim().to_string(),
            Kind::Exchanged(e) => format!("exchanged:{}", e.exchange.identity()),
        }
    }

    /// Who the keys are for, their expiry, the last refresh and error.
    pub fn report(&self) -> KeysReport {
        match &self.kind {
            Kind::Fixed(_) => KeysReport {
                identity: "static keys".into(),
                ..KeysReport::default()
            },
            Kind::Exchanged(e) => e.report.read().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

impl Exchanged {
    fn snapshot(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn keys(&self) -> Result<Arc<Keys>, CloudError> {
        let now = self.clock.now();
        let held = self.snapshot();
        if let Some(c) = &held {
            if now < c.refresh_at && c.keys.usable(now) {
                return Ok(c.keys.clone());
            }
            if c.keys.usable(now) {
                // Due for a refresh but still valid: refresh unless another
                // caller already does; meanwhile sign with these.
                return match self.refresh.try_lock() {
                    Ok(backoff) => self.refresh(backoff).await,
                    Err(_) => Ok(c.keys.clone()),
                };
            }
        }
        // No keys that can sign: wait for the exchange in flight, or run one.
        let backoff = self.refresh.lock().await;
        self.refresh(backoff).await
    }

    /// With the refresh lock held: keys that a caller before us fetched, or
    /// an exchange (unless backing off), or the last refusal.
    async fn refresh(
        &self,
        mut backoff: tokio::sync::MutexGuard<'_, Backoff>,
    ) -> Result<Arc<Keys>, CloudError> {
        let now = self.clock.now();
        let held = self.snapshot().filter(|c| c.keys.usable(now));
        if let Some(c) = &held {
            if now < c.refresh_at {
                return Ok(c.keys.clone());
            }
        }
        if let (Some(retry_at), Some(e)) = (backoff.retry_at, &backoff.last_error) {
            if now < retry_at {
                return held.map(|c| c.keys).ok_or_else(|| e.clone());
            }
        }
        match self.exchange.exchange().await {
            Ok(keys) => {
                let issued = self.clock.now();
                let expires = keys.expires_at.unwrap_or(issued);
                let keys = Arc::new(keys);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Current {
                    keys: keys.clone(),
                    refresh_at: refresh_at(issued, expires),
                });
                *backoff = Backoff::default();
                let mut r = self.report.write().unwrap_or_else(|p| p.into_inner());
                r.expires_at = keys.expires_at;
                r.refreshed_at = Some(issued);
                r.exchanges += 1;
                r.last_error = None;
                drop(r);
                if !keys.usable(issued) {
                    // Keys that expire before they could be used: say so
                    // rather than sign with them.
                    return Err(CloudError::new(
                        super::ErrorClass::Auth,
                        "exchange",
                        "TemporaryKeysExpired",
                        format!(
                            "the temporary keys for {} expire at {expires}, less than {}s after they were issued",
                            self.exchange.identity(),
                            EXPIRY_MARGIN.as_secs()
                        ),
                    ));
                }
                Ok(keys)
            }
            Err(e) => {
                let wait = backoff.wait.map_or(RETRY_FIRST, |w| (w * 2).min(RETRY_MAX));
                backoff.wait = Some(wait);
                backoff.retry_at = Some(self.clock.now() + signed(wait));
                backoff.last_error = Some(e.clone());
                let mut r = self.report.write().unwrap_or_else(|p| p.into_inner());
                r.failures += 1;
                r.last_error = Some(e.clone());
                drop(r);
                held.map(|c| c.keys).ok_or(e)
            }
        }
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorClass;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// Hands out keys `k<n>` valid for `life`, or refuses while `refuse`;
    /// counts exchanges and the most that ran at once.
    struct Counting {
        clock: Arc<ManualClock>,
        life: SignedDuration,
        calls: AtomicU32,
        running: AtomicU32,
        most: AtomicU32,
        refuse: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Exchange for Counting {
        async fn exchange(&self) -> Result<Keys, CloudError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.refuse.load(Ordering::SeqCst) {
                return Err(CloudError::new(
                    ErrorClass::Auth,
                    "AssumeRoleWithWebIdentity",
                    "InvalidParameter.WebIdentityTokenError",
                    "token expired",
                )
                .with_request_id(Some(format!("req-{n}"))));
            }
            Ok(Keys {
                id: SecretString::new(format!("k{n}")),
                secret: SecretString::new(format!("s{n}")),
                token: Some(SecretString::new(format!("t{n}"))),
                expires_at: Some(self.clock.now() + self.life),
            })
        }

        fn identity(&self) -> String {
            "role r via provider p".into()
        }
    }

    fn source(life_secs: i64) -> (KeySource, Arc<Counting>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(ts(0)));
        let ex = Arc::new(Counting {
            clock: clock.clone(),
            life: SignedDuration::from_secs(life_secs),
            calls: AtomicU32::new(0),
            running: AtomicU32::new(0),
            most: AtomicU32::new(0),
            refuse: Default::default(),
        });
        (KeySource::exchanged(ex.clone(), clock.clone()), ex, clock)
    }

    #[test]
    fn refresh_times() {
        // 2 h: 80% (96 min) comes before 5 minutes before expiry (115 min).
        assert_eq!(refresh_at(ts(0), ts(7200)), ts(5760));
        // 20 min: 5 minutes before (15 min) comes before 80% (16 min).
        assert_eq!(refresh_at(ts(0), ts(1200)), ts(900));
        // 60 s: never before half the lifetime.
        assert_eq!(refresh_at(ts(0), ts(60)), ts(30));
    }

    #[tokio::test]
    async fn fetched_on_first_use_and_refreshed_ahead_of_expiry() {
        let (src, ex, clock) = source(60);
        assert!(src.fixed_keys().is_none());
        assert_eq!(ex.calls.load(Ordering::SeqCst), 0, "not before first use");
        assert_eq!(src.keys().await.unwrap().id.expose(), "k1");
        clock.advance(Duration::from_secs(29));
        assert_eq!(src.keys().await.unwrap().id.expose(), "k1");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            src.keys().await.unwrap().id.expose(),
            "k2",
            "refreshed at 30 s"
        );
        let r = src.report();
        assert_eq!((r.exchanges, r.failures), (2, 0));
        assert_eq!(r.expires_at, Some(ts(90)));
        assert_eq!(r.refreshed_at, Some(ts(30)));
        assert_eq!(r.identity, "role r via provider p");
    }

    /// Over ten minutes of 60 s keys, with 50 callers at each second: every
    /// key handed out is valid, and at most one exchange ran at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_exchange_at_a_time_and_never_expired_keys() {
        let (src, ex, clock) = source(60);
        let src = Arc::new(src);
        for _ in 0..600 {
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let src = src.clone();
                tasks.push(tokio::spawn(async move { src.keys().await }));
            }
            for t in tasks {
                let k = t.await.unwrap().unwrap();
                assert!(k.usable(clock.now()), "{k:?} at {}", clock.now());
            }
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(ex.most.load(Ordering::SeqCst), 1);
        // One exchange per 30 s, not one per request.
        let calls = ex.calls.load(Ordering::SeqCst);
        assert!((20..=21).contains(&calls), "{calls} exchanges");
    }

    #[tokio::test]
    async fn a_refusal_is_returned_with_its_code_and_retried_with_backoff() {
        let (src, ex, clock) = source(60);
        ex.refuse.store(true, Ordering::SeqCst);
        let e = src.keys().await.unwrap_err();
        assert_eq!(e.code, "InvalidParameter.WebIdentityTokenError");
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        // Within the backoff: the same error, no new exchange.
        let again = src.keys().await.unwrap_err();
        assert_eq!(again.request_id.as_deref(), Some("req-1"));
        assert_eq!(ex.calls.load(Ordering::SeqCst), 1);
        clock.advance(RETRY_FIRST);
        assert!(src.keys().await.is_err());
        assert_eq!(ex.calls.load(Ordering::SeqCst), 2);
        // The wait doubles.
        clock.advance(RETRY_FIRST);
        assert!(src.keys().await.is_err());
        assert_eq!(ex.calls.load(Ordering::SeqCst), 2);
        clock.advance(RETRY_FIRST);
        ex.refuse.store(false, Ordering::SeqCst);
        assert_eq!(src.keys().await.unwrap().id.expose(), "k3");
        let r = src.report();
        assert_eq!((r.exchanges, r.failures, r.last_error), (1, 2, None));
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_valid_keys_until_they_expire() {
        let (src, ex, clock) = source(60);
        assert_eq!(src.keys().await.unwrap().id.expose(), "k1");
        ex.refuse.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(30));
        // Refresh refused: the keys still valid sign.
        assert_eq!(src.keys().await.unwrap().id.expose(), "k1");
        assert!(src.report().last_error.is_some());
        // Past expiry minus the margin: never handed out.
        clock.advance(Duration::from_secs(16));
        let e = src.keys().await.unwrap_err();
        assert_eq!(e.code, "InvalidParameter.WebIdentityTokenError");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = Keys::fixed(
            SecretString::new("AKIDsecretid"),
            SecretString::new("verysecret"),
            Some(SecretString::new("sessiontoken")),
        );
        let shown = format!("{k:?} {:?}", KeySource::fixed(k.clone()));
        assert_eq!(
            KeySource::fixed(k.clone()).fixed_keys().as_deref(),
            Some(&k)
        );
        for s in ["AKIDsecretid", "verysecret", "sessiontoken"] {
            assert!(!shown.contains(s), "{shown}");
        }
    }
}
