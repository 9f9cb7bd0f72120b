//! Temporary keys on Tencent: the client on a shared `KeySource` whose
//! exchange is STS `AssumeRoleWithWebIdentity`, against the fake EMR + STS
//! endpoint, over real HTTP on 127.0.0.1 with real TC3 signatures that the
//! fake verifies with the temporary SecretKey it issued. One `ManualClock`
//! is the model's, the fake's, the clients' and the `KeySource`'s, so that
//! minutes of key lifetimes pass in milliseconds.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use clusterscale_core::api::{NodeGroup, TencentSpec};
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::keys::{Exchange, KeySource, Keys, RETRY_FIRST};
use clusterscale_core::cloud::{Cloud, CloudError, ErrorClass, ScaleRequest};
use clusterscale_fakes::oidc::{testing, OidcProvider};
use clusterscale_fakes::{
    key_fingerprint, FakeControl, JournalLine, StsFakeConfig, StsStats, TencentFake,
    TencentFakeConfig,
};
use clusterscale_sim::SimModel;
use clusterscale_tencent::sts::{self, ExchangeOptions, WebIdentityConfig, WebIdentityExchange};
use clusterscale_tencent::{TencentCloud, TencentOptions};
use jiff::Timestamp;

const SECRET_ID: &str = "AKIDstaticTestSecretId000000000001";
const SECRET_KEY: &str = "staticTestSecretKey00000000000001";
const INSTANCE: &str = "emr-sts00001";
const PROVIDER_ID: &str = "cls-sts00001";
const ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/clusterscale";
const AUDIENCE: &str = "sts.cloud.tencent.com";
const SUB: &str = "system:serviceaccount:clusterscale:clusterscale";
const OP_TIME: Duration = Duration::from_secs(10);

/// The fake EMR + STS endpoint, a token file, and one clock for all.
struct Env {
    clock: Arc<ManualClock>,
    model: Arc<SimModel>,
    fake: Arc<TencentFake>,
    control: Arc<FakeControl>,
    endpoint: String,
    _dir: tempfile::TempDir,
    token_file: PathBuf,
    /// The JWT in the token file.
    jwt: String,
}

impl Env {
    /// Keys of `key_lifetime`; each exchange takes `delay` (real time).
    async fn start(key_lifetime: Duration, delay: Duration) -> Env {
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let model = common::model(INSTANCE, 3, 2, OP_TIME, clock.clone());
        let provider = OidcProvider::from_pem(testing::ISSUER, testing::PUBLIC_KEY_PEM).unwrap();
        let mut sts = StsFakeConfig::new(provider, PROVIDER_ID, ROLE_ARN);
        sts.audience = AUDIENCE.into();
        sts.subject = Some(SUB.into());
        sts.key_lifetime = key_lifetime;
        sts.exchange_delay = delay;
        let mut config = TencentFakeConfig::new(SECRET_ID, SECRET_KEY);
        config.sts = Some(sts);
        config.options.clock = clock.clone();
        let fake = TencentFake::new(model.clone(), config).expect("fake starts");
        let control = fake.control();
        let (listener, endpoint) = common::listen().await;
        let router = fake.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        let mut env = Env {
            clock,
            model,
            fake: Arc::new(fake),
            control,
            endpoint,
            _dir: dir,
            token_file,
            jwt: String::new(),
        };
        env.write_token(AUDIENCE, 3600);
        env
    }

    /// A token for `audience`, valid from 10 s ago for `valid_for` seconds
    /// (negative: expired), written to the token file.
    fn write_token(&mut self, audience: &str, valid_for: i64) {
        let now = self.clock.now().as_second();
        self.jwt = testing::token(SUB, audience, now - 10, now + valid_for);
        std::fs::write(&self.token_file, &self.jwt).unwrap();
    }

    fn exchange_config(&self) -> WebIdentityConfig {
        WebIdentityConfig {
            endpoint: self.endpoint.clone(),
            ..WebIdentityConfig::new("ap-guangzhou", ROLE_ARN, PROVIDER_ID, &self.token_file)
        }
    }

    fn exchange(&self, config: WebIdentityConfig) -> Arc<WebIdentityExchange> {
        Arc::new(
            WebIdentityExchange::new(
                config,
                ExchangeOptions {
                    clock: self.clock.clone(),
                    http: None,
                },
            )
            .expect("exchange"),
        )
    }

    /// One account's keys, from its exchange.
    fn key_source(&self, config: WebIdentityConfig) -> Arc<KeySource> {
        Arc::new(KeySource::exchanged(
            self.exchange(config),
            self.clock.clone(),
        ))
    }

    fn spec(&self) -> TencentSpec {
        TencentSpec::test()
            .instance(INSTANCE)
            .secret("unused")
            .endpoint(&self.endpoint)
    }

    fn client(&self, keys: &Arc<KeySource>) -> TencentCloud {
        TencentCloud::with_key_source(
            &self.spec(),
            keys.clone(),
            TencentOptions {
                rate_limit_per_second: 10_000,
                rate_limits: Some(RateLimits::new(10_000)),
                clock: self.clock.clone(),
                ..TencentOptions::default()
            },
        )
        .expect("client")
    }

    fn journal(&self) -> Vec<JournalLine> {
        self.control.journal()
    }

    fn emr_lines(&self) -> Vec<JournalLine> {
        self.journal()
            .into_iter()
            .filter(|l| l.action != sts::ACTION)
            .collect()
    }

    fn sts(&self) -> StsStats {
        self.fake.sts_stats()
    }
}

fn request(group: NodeGroup, count: i32, token: &str) -> ScaleRequest {
    ScaleRequest {
        group,
        pool: None,
        count,
        from_count: 0,
        token: token.into(),
        prefer_nodes: Vec::new(),
        graceful_timeout_seconds: 0,
    }
}

/// Nothing secret in `shown`: none of `keys`, not the JWT.
fn assert_no_secrets(shown: &str, keys: &[&Keys], jwt: &str) {
    for k in keys {
        for secret in [
            k.id.expose(),
            k.secret.expose(),
            k.token.as_ref().map_or("", SecretString::expose),
        ] {
            assert!(
                secret.is_empty() || !shown.contains(secret),
                "key material in: {shown}"
            );
        }
    }
    assert!(!shown.contains(jwt), "the JWT in: {shown}");
    // Any JWT at all (its header starts `eyJ`).
    assert!(!shown.contains("eyJ"), "a JWT in: {shown}");
}

/// (a) A client on a `KeySource` over the STS exchange observes and scales;
/// every EMR request is signed by the temporary SecretId, with its token.
#[tokio::test]
async fn a_client_on_exchanged_keys_observes_and_scales() {
    let started = Instant::now();
    let env = Env::start(Duration::from_secs(3600), Duration::ZERO).await;
    let keys = env.key_source(env.exchange_config());
    let client = env.client(&keys);
    assert_eq!(env.sts().requests, 0, "no exchange before the first use");
    let observed = client.observe().await.expect("observe");
    assert_eq!((observed.core, observed.task), (3, 2));
    let submitted = client
        .scale_out(&request(NodeGroup::Task, 2, "sts-scale-1"))
        .await
        .expect("scale out");
    assert!(submitted.request_id.is_some());
    env.clock.advance(OP_TIME + Duration::from_secs(1));
    let observed = client.observe().await.expect("observe after");
    assert_eq!(observed.task, 4);

    assert_eq!(
        env.sts(),
        StsStats {
            requests: 1,
            issued: 1,
            refused: 0,
            most_concurrent: 1
        }
    );
    let current = keys.keys().await.unwrap();
    assert!(current.token.is_some() && current.expires_at.is_some());
    let journal = env.journal();
    assert_eq!(journal[0].action, sts::ACTION);
    assert_eq!(journal[0].outcome, "ok");
    assert_eq!(journal[0].signed_by, None, "the exchange is unsigned");
    assert_eq!(journal[0].params["WebIdentityToken"], "<redacted>");
    assert_eq!(journal[0].params["RoleArn"], ROLE_ARN);
    let emr = env.emr_lines();
    assert!(emr.len() >= 5, "{emr:?}");
    assert!(emr.iter().any(|l| l.write), "the scale-out was a write");
    for line in &emr {
        assert_eq!(line.outcome, "ok", "{line:?}");
        let by = line.signed_by.as_ref().expect("signed");
        assert_eq!(by.key, "sts#1", "{line:?}");
        assert_eq!(by.fingerprint, key_fingerprint(current.id.expose()));
    }
    assert_eq!(env.model.observe().unwrap().task, 4);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// (b) Keys of 60 s, over six simulated minutes, with three clients of one
/// account each making four concurrent observations every 5 s: every
/// request accepted and signed with keys valid when it arrived, one
/// exchange at a time, and one exchange per 30 s (keys are refreshed at
/// half their lifetime: `keys::refresh_at`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_lived_keys_are_refreshed_one_exchange_at_a_time() {
    const LIFETIME: i64 = 60;
    const STEP: u64 = 5;
    const STEPS: u64 = 72;
    let started = Instant::now();
    let env = Env::start(
        Duration::from_secs(LIFETIME as u64),
        Duration::from_millis(20),
    )
    .await;
    let keys = env.key_source(env.exchange_config());
    let clients: Vec<Arc<TencentCloud>> = (0..3).map(|_| Arc::new(env.client(&keys))).collect();
    let t0 = env.clock.now();
    for _ in 0..STEPS {
        let mut tasks = Vec::new();
        for client in &clients {
            for _ in 0..4 {
                let client = client.clone();
                tasks.push(tokio::spawn(async move { client.observe().await }));
            }
        }
        for t in tasks {
            let observed = t.await.unwrap().expect("every observation succeeds");
            assert_eq!(observed.core, 3);
        }
        env.clock.advance(Duration::from_secs(STEP));
    }
    let stats = env.sts();
    assert_eq!(
        stats.most_concurrent, 1,
        "one exchange at a time: {stats:?}"
    );
    // Exchanges at 0, 30, 60, ..., 330 s.
    let last = (STEPS - 1) * STEP;
    let expected = 1 + last / (LIFETIME as u64 / 2);
    assert_eq!((stats.issued, stats.refused), (expected, 0), "{stats:?}");
    let emr = env.emr_lines();
    assert_eq!(
        emr.len() as u64,
        STEPS * 12 * 2,
        "two requests per observation"
    );
    for line in &emr {
        assert_eq!(line.outcome, "ok", "{line:?}");
        let by = line.signed_by.as_ref().expect("signed");
        let n: i64 = by
            .key
            .strip_prefix("sts#")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not temporary keys: {line:?}"));
        let issued = t0 + jiff::SignedDuration::from_secs((n - 1) * LIFETIME / 2);
        let expires = issued + jiff::SignedDuration::from_secs(LIFETIME);
        assert!(
            line.at >= issued && line.at < expires,
            "{line:?} signed with keys #{n} valid {issued}..{expires}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// (c) Refusals: a clear error with the cloud's code and request id, and no
/// EMR request at all (so no write).
#[tokio::test]
async fn refused_exchanges_send_nothing_to_emr() {
    let started = Instant::now();
    // Wrong audience, expired JWT.
    for (audience, valid_for, reason) in [
        ("someone-else", 3600, "audience"),
        (AUDIENCE, -5, "Expired token"),
    ] {
        let mut env = Env::start(Duration::from_secs(3600), Duration::ZERO).await;
        env.write_token(audience, valid_for);
        let keys = env.key_source(env.exchange_config());
        let client = env.client(&keys);
        let e = client.observe().await.unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (
                ErrorClass::Auth,
                "InvalidParameter.WebIdentityTokenError",
                sts::ACTION
            ),
            "{e}"
        );
        assert!(e.message.contains(reason), "{e}");
        let journal = env.journal();
        assert_eq!(journal.len(), 1, "{journal:?}");
        assert_eq!(
            e.request_id.as_deref(),
            Some(journal[0].request_id.as_str())
        );
        assert_eq!(journal[0].outcome, "InvalidParameter.WebIdentityTokenError");
        let w = client
            .scale_out(&request(NodeGroup::Task, 1, "t-1"))
            .await
            .unwrap_err();
        assert_eq!(w.code, e.code);
        assert!(!w.may_have_applied(), "no EMR request was sent");
        assert!(env.emr_lines().is_empty());
        assert_eq!(env.model.write_count(), 0);
        assert_no_secrets(&format!("{e} {e:?} {w}"), &[], &env.jwt);
    }
    // An unknown role, an unknown provider.
    let env = Env::start(Duration::from_secs(3600), Duration::ZERO).await;
    let cases = [
        (
            WebIdentityConfig {
                role_arn: "qcs::cam::uin/100000000001:roleName/nobody".into(),
                ..env.exchange_config()
            },
            "ResourceNotFound.RoleNotFound",
        ),
        (
            WebIdentityConfig {
                provider_id: "cls-unknown".into(),
                ..env.exchange_config()
            },
            "InvalidParameter.ParamError",
        ),
    ];
    for (config, code) in cases {
        let client = env.client(&env.key_source(config));
        let e = client.observe().await.unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (ErrorClass::Invalid, code, sts::ACTION),
            "{e}"
        );
        let id = e.request_id.clone().expect("the STS request id");
        assert!(e.to_string().contains(&id), "{e}");
        assert_no_secrets(&format!("{e} {e:?}"), &[], &env.jwt);
    }
    assert_eq!(env.sts().refused, 2);
    assert!(env.emr_lines().is_empty());
    // A missing token file: no STS request either.
    let env = Env::start(Duration::from_secs(3600), Duration::ZERO).await;
    std::fs::remove_file(&env.token_file).unwrap();
    let client = env.client(&env.key_source(env.exchange_config()));
    let e = client.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Auth, sts::TOKEN_FILE_UNREADABLE)
    );
    assert!(
        e.message.contains(&env.token_file.display().to_string()),
        "{e}"
    );
    assert!(env.journal().is_empty(), "nothing sent anywhere");
    assert_eq!(env.sts().requests, 0);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// (d) After a refusal, no new exchange until the backoff is over; the
/// token file is read again at the next one.
#[tokio::test]
async fn a_refusal_is_backed_off() {
    let mut env = Env::start(Duration::from_secs(3600), Duration::ZERO).await;
    env.write_token("someone-else", 3600);
    let keys = env.key_source(env.exchange_config());
    let client = env.client(&keys);
    let first = client.observe().await.unwrap_err();
    assert_eq!(first.code, "InvalidParameter.WebIdentityTokenError");
    // Within the backoff: the same refusal, no new exchange.
    env.write_token(AUDIENCE, 3600);
    env.clock.advance(RETRY_FIRST - Duration::from_secs(1));
    let again = client.observe().await.unwrap_err();
    assert_eq!(
        (again.code.as_str(), again.request_id.as_deref()),
        (first.code.as_str(), first.request_id.as_deref())
    );
    assert_eq!(env.sts().requests, 1);
    let report = keys.report();
    assert_eq!((report.exchanges, report.failures), (0, 1));
    // After it: a new exchange, with the new token.
    env.clock.advance(Duration::from_secs(1));
    client.observe().await.expect("the new token is accepted");
    assert_eq!((env.sts().requests, env.sts().issued), (2, 1));
    assert!(env.emr_lines().iter().all(|l| l.outcome == "ok"));
    assert_eq!(keys.report().last_error, None);
}

/// The fake's own checks of temporary keys: the token must come with them,
/// and they must not have expired.
#[tokio::test]
async fn the_fake_refuses_temporary_keys_without_their_token_or_expired() {
    let env = Env::start(Duration::from_secs(60), Duration::ZERO).await;
    let issued = env
        .exchange(env.exchange_config())
        .exchange()
        .await
        .unwrap();
    let fixed = |token: Option<&str>| {
        let keys = Arc::new(KeySource::fixed(Keys::fixed(
            issued.id.clone(),
            issued.secret.clone(),
            token.map(SecretString::new),
        )));
        env.client(&keys)
    };
    let refused = |e: CloudError| (e.class, e.code);
    let token_failure = (ErrorClass::Auth, "AuthFailure.TokenFailure".to_string());
    assert_eq!(
        refused(fixed(None).observe().await.unwrap_err()),
        token_failure
    );
    assert_eq!(
        refused(fixed(Some("not-the-token")).observe().await.unwrap_err()),
        token_failure
    );
    let right = fixed(issued.token.as_ref().map(SecretString::expose));
    right.observe().await.expect("the keys with their token");
    env.clock.advance(Duration::from_secs(60));
    assert_eq!(refused(right.observe().await.unwrap_err()), token_failure);
    let journal = env.emr_lines();
    assert!(journal
        .iter()
        .all(|l| l.signed_by.as_ref().map(|b| b.key.as_str()) == Some("sts#1")));
    assert_eq!(
        journal.iter().filter(|l| l.outcome == "ok").count(),
        2,
        "{journal:?}"
    );
}

/// (e) `Debug` of the client, the exchange and the `KeySource`, every
/// error, the journal and the STS answer's request id: no key, token or JWT.
#[tokio::test]
async fn no_key_material_in_debug_errors_or_the_journal() {
    let mut env = Env::start(Duration::from_secs(60), Duration::ZERO).await;
    let exchange = env.exchange(env.exchange_config());
    let keys = Arc::new(KeySource::exchanged(exchange.clone(), env.clock.clone()));
    let client = env.client(&keys);
    client.observe().await.unwrap();
    let current = keys.keys().await.unwrap();
    // A refused refresh while the keys still sign, then with none left.
    env.write_token("someone-else", 3600);
    env.clock.advance(Duration::from_secs(40));
    client.observe().await.expect("the keys still valid sign");
    let refused_refresh = keys.report().last_error.expect("the refresh was refused");
    env.clock.advance(Duration::from_secs(10));
    let errors: Vec<CloudError> = vec![
        refused_refresh,
        client.observe().await.unwrap_err(),
        exchange.exchange().await.unwrap_err(),
    ];
    assert!(errors
        .iter()
        .all(|e| e.code == "InvalidParameter.WebIdentityTokenError"));
    let shown = format!(
        "{client:?} {exchange:?} {keys:?} {:?} {current:?} {} {errors:?} {}",
        keys.report(),
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::to_string(&env.journal()).unwrap()
    );
    assert!(shown.contains(ROLE_ARN), "{shown}");
    assert_no_secrets(&shown, &[&current], &env.jwt);
}

/// The exchange sends what the SDK sends: unsigned, `Authorization: SKIP`,
/// the STS version and action, the body's fields; the answer becomes keys.
#[tokio::test]
async fn the_exchange_sends_the_sdk_wire_format() {
    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;
    let seen: Seen = Arc::default();
    let captured = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let captured = captured.clone();
            async move {
                captured.lock().unwrap().push((headers, body));
                r#"{"Response":{"Credentials":{"Token":"tok","TmpSecretId":"AKIDtmp","TmpSecretKey":"key"},"ExpiredTime":1700007200,"Expiration":"2023-11-15T00:13:20Z","RequestId":"r-wire"}}"#
            }
        }),
    );
    let (listener, base) = common::listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "header.claims.signature").unwrap();
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    let exchange = WebIdentityExchange::new(
        WebIdentityConfig {
            endpoint: base.clone(),
            ..WebIdentityConfig::new("ap-shanghai", ROLE_ARN, PROVIDER_ID, &token_file)
        },
        ExchangeOptions { clock, http: None },
    )
    .unwrap();
    let keys = exchange.exchange().await.unwrap();
    assert_eq!(
        (
            keys.id.expose(),
            keys.secret.expose(),
            keys.token.as_ref().unwrap().expose()
        ),
        ("AKIDtmp", "key", "tok")
    );
    assert_eq!(
        keys.expires_at,
        Some(Timestamp::from_second(1_700_007_200).unwrap())
    );
    let (headers, body) = seen.lock().unwrap()[0].clone();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h("authorization"), "SKIP");
    assert_eq!(h("x-tc-action"), "AssumeRoleWithWebIdentity");
    assert_eq!(h("x-tc-version"), "2018-08-13");
    assert_eq!(h("x-tc-timestamp"), "1700000000");
    assert_eq!(h("x-tc-region"), "ap-shanghai");
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("host"), base.trim_start_matches("http://"));
    assert!(headers.get("x-tc-token").is_none());
    assert!(h("x-tc-requestclient").starts_with("clusterscale/"));
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!(
            r#"{{"ProviderId":"{PROVIDER_ID}","WebIdentityToken":"header.claims.signature","RoleArn":"{ROLE_ARN}","RoleSessionName":"clusterscale","DurationSeconds":7200}}"#
        )
    );
}
