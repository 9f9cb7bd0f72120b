//! Workload identity on Huawei Cloud, end to end over real HTTP on
//! 127.0.0.1: a projected ServiceAccount token (a JWT signed by the test
//! key of `oidc::testing`) exchanged by the client's `IdTokenExchange` with
//! the fake IAM for temporary keys, which every MRS request is then signed
//! with; the fake verifies the JWT, the signatures, the security token and
//! the keys' expiry.
//!
//! The fake's clock, the model's, the key source's and the client's are one
//! `ManualClock`: the tests drive key lifetimes by advancing it.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::{HuaweiSpec, NodeGroup};
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::keys::{KeySource, Keys, RETRY_FIRST};
use clusterscale_core::cloud::{Cloud, CloudError, ClusterState, ErrorClass, ScaleRequest};
use clusterscale_fakes::huawei::{
    FakeFederation, HuaweiFake, HuaweiFakeConfig, ACTION_ID_TOKEN, ACTION_SECURITY_TOKEN,
    ACTION_SHOW,
};
use clusterscale_fakes::oidc::testing::{token, ISSUER, PUBLIC_KEY_PEM};
use clusterscale_fakes::oidc::OidcProvider;
use clusterscale_fakes::{FakeOptions, InjectedError, JournalLine, Malformed};
use clusterscale_huawei::federation::{
    IdTokenConfig, IdTokenExchange, ACTION_ID_TOKEN as CLIENT_ID_TOKEN,
    ACTION_SECURITY_TOKEN as CLIENT_SECURITY_TOKEN, TOKEN_FILE_UNREADABLE,
};
use clusterscale_huawei::HuaweiCloud;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const CLUSTER: &str = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d";
const IDP: &str = "cce-workload-identity";
const AUDIENCE: &str = "clusterscale-iam";
const SUB: &str = "system:serviceaccount:clusterscale:clusterscale";
const OP_TIME: Duration = Duration::from_secs(30);

struct Env {
    fake: HuaweiFake,
    clock: Arc<ManualClock>,
    spec: HuaweiSpec,
    base: String,
    dir: tempfile::TempDir,
}

async fn start(tweak: impl FnOnce(&mut FakeFederation)) -> Env {
    let clock = Arc::new(ManualClock::default());
    let model = common::model("mrs-federation", 3, 1, OP_TIME, clock.clone());
    let provider = OidcProvider::from_pem(ISSUER, PUBLIC_KEY_PEM).expect("test key");
    let mut federation = FakeFederation::new(provider, IDP, AUDIENCE);
    tweak(&mut federation);
    let config = HuaweiFakeConfig {
        options: FakeOptions {
            clock: clock.clone(),
            ..FakeOptions::default()
        },
        project_id: Some(PROJECT.into()),
        cluster_id: Some(CLUSTER.into()),
        // No long-lived keys at all: only temporary ones sign.
        access_keys: Vec::new(),
        users: Vec::new(),
        federation: Some(federation),
        ..HuaweiFakeConfig::default()
    };
    let fake = HuaweiFake::new(model, config).expect("fake starts");
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.clone().serve(listener));
    let spec = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(base.clone())
        .iam_endpoint(base.clone());
    let env = Env {
        fake,
        clock,
        spec,
        base,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    env.write_token(AUDIENCE, 0, 3600);
    env
}

impl Env {
    fn now(&self) -> i64 {
        self.clock.now().as_second()
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    /// A projected token for `audience`, issued `from` and expiring `to`
    /// seconds from now, as the kubelet writes it (with a newline).
    fn write_token(&self, audience: &str, from: i64, to: i64) -> String {
        let jwt = token(SUB, audience, self.now() + from, self.now() + to);
        std::fs::write(self.token_file(), format!("{jwt}\n")).expect("token file");
        jwt
    }

    fn exchange_for(&self, idp: &str, file: PathBuf) -> IdTokenExchange {
        IdTokenExchange::new(
            IdTokenConfig::new(idp, file)
                .iam_endpoint(self.base.clone())
                .duration_seconds(900),
        )
        .expect("exchange config")
    }

    fn source(&self) -> Arc<KeySource> {
        self.exchange_for(IDP, self.token_file())
            .into_key_source(self.clock.clone())
    }

    fn client(&self, source: &Arc<KeySource>) -> HuaweiCloud {
        HuaweiCloud::with_key_source(&self.spec, source.clone())
            .expect("client builds")
            .with_clock(self.clock.clone())
            // The tests make hundreds of requests in a few seconds.
            .with_rate_limits(RateLimits::new(100_000))
    }

    fn lines(&self, action: &str) -> Vec<JournalLine> {
        self.fake
            .journal()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    fn mrs_lines(&self) -> Vec<JournalLine> {
        self.fake
            .journal()
            .into_iter()
            .filter(|l| l.action != ACTION_ID_TOKEN && l.action != ACTION_SECURITY_TOKEN)
            .collect()
    }

    /// Every MRS request was accepted, signed by a temporary AK that was
    /// valid when the request arrived (and so, as the fake checks, with
    /// its security token).
    fn assert_signed_by_valid_temporary_keys(&self) {
        let keys = self.fake.temporary_keys();
        let lines = self.mrs_lines();
        assert!(!lines.is_empty());
        for l in &lines {
            assert_eq!(l.outcome, "ok", "{l:?}");
            let principal = l.params["principal"].as_str().unwrap_or_default();
            let ak = principal.strip_prefix("ak:").expect("signed with an AK");
            let key = keys
                .iter()
                .find(|k| k.access_key == ak)
                .unwrap_or_else(|| panic!("{ak} is not a temporary key the fake issued"));
            assert!(
                key.issued_at <= l.at && l.at < key.expires_at,
                "{ak} (issued {}, expires {}) used at {}",
                key.issued_at,
                key.expires_at,
                l.at
            );
            assert_eq!(key.subject, SUB);
        }
    }
}

fn req(group: NodeGroup, count: i32, from: i32, token: &str) -> ScaleRequest {
    ScaleRequest {
        group,
        pool: None,
        count,
        from_count: from,
        token: token.into(),
        prefer_nodes: vec![],
        graceful_timeout_seconds: 0,
    }
}

/// (a) A client on exchanged keys observes and scales; every MRS request is
/// signed by the temporary AK with its security token; the IAM calls are
/// the SDK's.
#[tokio::test]
async fn a_client_on_exchanged_keys_observes_and_scales() {
    let env = start(|_| {}).await;
    let source = env.source();
    let cloud = env.client(&source);
    assert_eq!(cloud.auth_mode(), "workload-identity");
    assert!(env.fake.journal().is_empty(), "nothing before first use");

    let o = cloud.observe().await.expect("observe");
    assert_eq!((o.state, o.core, o.task), (ClusterState::Running, 3, 1));
    cloud
        .scale_out(&req(NodeGroup::Core, 2, 3, "op-1"))
        .await
        .expect("scale out");
    env.clock.advance(OP_TIME);
    assert_eq!(cloud.observe().await.expect("observe").core, 5);
    cloud
        .scale_in(&req(NodeGroup::Task, 1, 1, "op-2"))
        .await
        .expect("scale in");
    env.clock.advance(OP_TIME);
    assert_eq!(cloud.observe().await.expect("observe").task, 0);

    // One exchange: 900 s keys, refreshed at 720 s; a minute has passed.
    let stats = env.fake.exchange_stats();
    assert_eq!(
        (
            stats.id_token_calls,
            stats.security_token_calls,
            stats.keys_issued
        ),
        (1, 1, 1)
    );
    let keys = env.fake.temporary_keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys[0].expires_at.as_second() - keys[0].issued_at.as_second(),
        900
    );
    env.assert_signed_by_valid_temporary_keys();
    assert_eq!(
        env.mrs_lines().iter().filter(|l| l.write).count(),
        2,
        "both resizes were written"
    );

    // The two IAM calls, as the SDK makes them; the journal shows neither
    // the JWT nor the IAM token.
    let step1 = &env.lines(ACTION_ID_TOKEN)[0];
    assert_eq!((step1.http_status, step1.outcome.as_str()), (201, "ok"));
    assert_eq!(step1.params["path"], "/v3.0/OS-AUTH/id-token/tokens");
    assert_eq!(step1.params["principal"], format!("idp:{IDP} sub:{SUB}"));
    assert_eq!(step1.params["body"]["auth"]["id_token"]["id"], "<redacted>");
    assert!(
        step1.params["body"]["auth"].get("scope").is_none(),
        "unscoped"
    );
    let step2 = &env.lines(ACTION_SECURITY_TOKEN)[0];
    assert_eq!(step2.http_status, 201);
    assert_eq!(step2.params["path"], "/v3.0/OS-CREDENTIAL/securitytokens");
    let identity = &step2.params["body"]["auth"]["identity"];
    assert_eq!(identity["methods"], serde_json::json!(["token"]));
    assert_eq!(identity["token"]["id"], "<redacted>");
    assert_eq!(identity["token"]["duration_seconds"], 900);

    let report = source.report();
    assert_eq!(report.exchanges, 1);
    assert_eq!(report.expires_at, Some(keys[0].expires_at));
    assert!(report.identity.contains(IDP), "{}", report.identity);
}

/// (b) Keys that expire 60 s after issue, over five simulated minutes,
/// with three clients sharing one key source observing at once every 2 s:
/// every request accepted, never with expired keys, one exchange at a time,
/// and one exchange per half lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_second_keys_over_five_minutes() {
    let env = start(|f| {
        f.key_lifetime = Some(Duration::from_secs(60));
        // Each IAM call takes a while: exchanges that overlapped would be seen.
        f.delay = Duration::from_millis(20);
    })
    .await;
    let source = env.source();
    let clients: Vec<Arc<HuaweiCloud>> = (0..3).map(|_| Arc::new(env.client(&source))).collect();
    let step = Duration::from_secs(2);
    let span = Duration::from_secs(300);
    let steps = span.as_secs() / step.as_secs();
    for _ in 0..=steps {
        let mut calls = Vec::new();
        for c in &clients {
            for _ in 0..2 {
                let c = c.clone();
                calls.push(tokio::spawn(async move { c.observe().await }));
            }
        }
        for call in calls {
            let o = call
                .await
                .expect("task")
                .expect("every observation succeeds");
            assert_eq!(o.core, 3);
        }
        env.clock.advance(step);
    }
    let stats = env.fake.exchange_stats();
    assert_eq!(stats.most_at_once, 1, "one exchange call at a time");
    // Refreshed at half the lifetime (30 s): at 0, 30, ..., 300 s.
    let expected = 1 + span.as_secs() / 30;
    assert_eq!(stats.keys_issued, expected, "{stats:?}");
    assert_eq!(stats.id_token_calls, expected);
    assert_eq!(env.mrs_lines().len() as u64, (steps + 1) * 6);
    env.assert_signed_by_valid_temporary_keys();
    // Every key was used, each until the next one came.
    let used: std::collections::BTreeSet<String> = env
        .mrs_lines()
        .iter()
        .map(|l| l.params["principal"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(used.len() as u64, expected);
    assert_eq!(source.report().failures, 0);

    // The count does see overlapping exchanges: two accounts' sources
    // exchanging at the same time.
    let (a, b) = (env.source(), env.source());
    let (ka, kb) = tokio::join!(a.keys(), b.keys());
    assert!(ka.is_ok() && kb.is_ok());
    assert_eq!(env.fake.exchange_stats().most_at_once, 2);
}

fn assert_refused_before_mrs(env: &Env, cloud: &HuaweiCloud, e: &CloudError) {
    assert_eq!(cloud.requests_sent(), 0, "no MRS request: {e}");
    assert!(env.mrs_lines().is_empty(), "{:?}", env.mrs_lines());
    assert!(!e.may_have_applied(), "nothing was sent to MRS: {e}");
}

/// (c) Refused exchanges, each with IAM's status, code and request id, and
/// no MRS request; an unreadable token file sends no IAM request either.
#[tokio::test]
async fn refused_exchanges_send_nothing_to_mrs() {
    // Wrong audience: 401.
    let env = start(|_| {}).await;
    env.write_token("sts.tencentcloudapi.com", 0, 3600);
    let cloud = env.client(&env.source());
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.action.as_str()),
        (ErrorClass::Auth, "401", CLIENT_ID_TOKEN)
    );
    assert!(
        e.message.contains("HTTP 401") && e.message.contains("audience"),
        "{e}"
    );
    let line = &env.lines(ACTION_ID_TOKEN)[0];
    assert_eq!(line.http_status, 401);
    assert_eq!(e.request_id.as_deref(), Some(line.request_id.as_str()));
    assert_refused_before_mrs(&env, &cloud, &e);
    assert!(env.lines(ACTION_SECURITY_TOKEN).is_empty());

    // An expired JWT: 401.
    let env = start(|_| {}).await;
    env.write_token(AUDIENCE, -3600, -10);
    let cloud = env.client(&env.source());
    let e = cloud.observe().await.unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "401"));
    assert!(e.message.contains("expired"), "{e}");
    assert_eq!(
        e.request_id.as_deref(),
        Some(env.lines(ACTION_ID_TOKEN)[0].request_id.as_str())
    );
    assert_refused_before_mrs(&env, &cloud, &e);

    // A JWT that expires while it waits: valid when written, refused later.
    let env = start(|_| {}).await;
    env.write_token(AUDIENCE, 0, 60);
    env.clock.advance(Duration::from_secs(61));
    let cloud = env.client(&env.source());
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(e.code, "401");
    assert_refused_before_mrs(&env, &cloud, &e);

    // Another identity provider: 404 IAM.0004, a configuration error.
    let env = start(|_| {}).await;
    let source = env
        .exchange_for("another-idp", env.token_file())
        .into_key_source(env.clock.clone());
    let cloud = env.client(&source);
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "IAM.0004")
    );
    assert!(
        e.message.contains("another-idp") && e.message.contains("HTTP 404"),
        "{e}"
    );
    assert_eq!(
        e.request_id.as_deref(),
        Some(env.lines(ACTION_ID_TOKEN)[0].request_id.as_str())
    );
    assert_refused_before_mrs(&env, &cloud, &e);

    // A subject no mapping rule admits: 403.
    let env = start(|f| f.subjects = vec!["system:serviceaccount:other:sa".into()]).await;
    let cloud = env.client(&env.source());
    let e = cloud.observe().await.unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "403"));
    assert_refused_before_mrs(&env, &cloud, &e);

    // A token file that is not there: nothing is sent at all.
    let env = start(|_| {}).await;
    let missing = env.dir.path().join("no-such-token");
    let source = env
        .exchange_for(IDP, missing.clone())
        .into_key_source(env.clock.clone());
    let cloud = env.client(&source);
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.action.as_str()),
        (ErrorClass::Auth, TOKEN_FILE_UNREADABLE, CLIENT_ID_TOKEN)
    );
    assert!(e.message.contains(&missing.display().to_string()), "{e}");
    assert!(env.fake.journal().is_empty(), "no request of any kind");
    assert_eq!(cloud.requests_sent(), 0);
    // An empty one neither.
    std::fs::write(env.token_file(), "\n").unwrap();
    let source = env.source();
    let e = env.client(&source).observe().await.unwrap_err();
    assert_eq!(e.code, TOKEN_FILE_UNREADABLE);
    assert!(env.fake.journal().is_empty());
}

/// IAM's throttling, outage and malformed answers, through the wire.
#[tokio::test]
async fn throttled_failing_and_malformed_answers_are_classed() {
    let env = start(|_| {}).await;
    let inject = |code: &str, action: &str, status: Option<u16>| {
        env.fake.control().inject(InjectedError {
            action: Some(action.to_string()),
            code: code.to_string(),
            message: String::new(),
            http_status: status,
        })
    };
    let refused = |e: &CloudError, class: ErrorClass, code: &str, action: &str| {
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (class, code, action),
            "{e}"
        );
        assert!(e.request_id.is_some(), "{e}");
    };
    inject("APIGW.0308", ACTION_ID_TOKEN, None);
    let e = env.client(&env.source()).observe().await.unwrap_err();
    refused(&e, ErrorClass::Throttled, "APIGW.0308", CLIENT_ID_TOKEN);
    inject("", ACTION_SECURITY_TOKEN, Some(503));
    let e = env.client(&env.source()).observe().await.unwrap_err();
    refused(&e, ErrorClass::Transient, "HTTP503", CLIENT_SECURITY_TOKEN);
    // An HTML page where the credential should be.
    env.fake
        .control()
        .set_faults(clusterscale_fakes::FakeFaults {
            malformed_read_rate: 1.0,
            malformed_kinds: vec![Malformed::Html200],
            ..Default::default()
        });
    let e = env.client(&env.source()).observe().await.unwrap_err();
    refused(
        &e,
        ErrorClass::Transient,
        "MalformedResponse",
        CLIENT_ID_TOKEN,
    );
    assert!(e.message.contains(CLIENT_ID_TOKEN), "{e}");
    assert!(env.mrs_lines().is_empty());
}

/// (d) A refused exchange is retried with backoff, not on every request;
/// keys that come back are used at once.
#[tokio::test]
async fn a_refused_exchange_is_retried_with_backoff() {
    let env = start(|_| {}).await;
    env.write_token("wrong-audience", 0, 3600);
    let source = env.source();
    let cloud = env.client(&source);
    let first = cloud.observe().await.unwrap_err();
    assert_eq!(first.code, "401");
    // Within the backoff: the same refusal, no new exchange.
    let again = cloud.observe().await.unwrap_err();
    assert_eq!(
        (again.code.as_str(), again.request_id.as_deref()),
        ("401", first.request_id.as_deref())
    );
    let other = env.client(&source).observe().await.unwrap_err();
    assert_eq!(other.request_id, first.request_id, "shared by every client");
    assert_eq!(env.fake.exchange_stats().id_token_calls, 1);
    // After the first wait: one more exchange, refused again.
    env.clock.advance(RETRY_FIRST);
    let second = cloud.observe().await.unwrap_err();
    assert_ne!(second.request_id, first.request_id);
    assert_eq!(env.fake.exchange_stats().id_token_calls, 2);
    // The wait doubled: a corrected token is not tried before it ends.
    env.write_token(AUDIENCE, 0, 3600);
    env.clock.advance(RETRY_FIRST);
    assert!(cloud.observe().await.is_err());
    assert_eq!(env.fake.exchange_stats().id_token_calls, 2);
    env.clock.advance(RETRY_FIRST);
    let o = cloud
        .observe()
        .await
        .expect("the corrected token is exchanged");
    assert_eq!(o.core, 3);
    let stats = env.fake.exchange_stats();
    assert_eq!((stats.id_token_calls, stats.keys_issued), (3, 1));
    let report = source.report();
    assert_eq!((report.exchanges, report.failures), (1, 2));
    assert!(report.last_error.is_none());
    // No MRS hold-off came of the refusals: the MRS request went at once.
    assert_eq!(cloud.requests_sent(), 1);
    env.assert_signed_by_valid_temporary_keys();
}

/// The fake refuses an MRS request with the temporary AK but without its
/// security token, with another token, or after the keys expired.
#[tokio::test]
async fn mrs_checks_the_security_token_and_the_expiry() {
    let env = start(|f| f.key_lifetime = Some(Duration::from_secs(60))).await;
    let source = env.source();
    env.client(&source).observe().await.expect("observe");
    let keys = source.keys().await.expect("keys");
    let with = |token: Option<&str>| {
        let fixed = Arc::new(KeySource::fixed(Keys::fixed(
            keys.id.clone(),
            keys.secret.clone(),
            token.map(SecretString::new),
        )));
        env.client(&fixed).with_auth_hold_off(Duration::ZERO)
    };
    let refused = |e: CloudError, says: &str| {
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (ErrorClass::Auth, "APIGW.0301", "GET cluster_infos"),
            "{e}"
        );
        assert!(e.message.contains(says), "{e}");
    };
    refused(with(None).observe().await.unwrap_err(), "ak not exist");
    refused(
        with(Some("another-security-token"))
            .observe()
            .await
            .unwrap_err(),
        "verify aksk signature fail",
    );
    let token = keys.token.as_ref().map(|t| t.expose().to_string());
    with(token.as_deref())
        .observe()
        .await
        .expect("the same keys, fixed, still sign");
    env.clock.advance(Duration::from_secs(60));
    refused(
        with(token.as_deref()).observe().await.unwrap_err(),
        "signature expired",
    );
    // The shared source had refreshed long before: its client signs.
    env.client(&source).observe().await.expect("fresh keys");
    assert_eq!(env.fake.exchange_stats().keys_issued, 2);
    assert!(env
        .lines(ACTION_SHOW)
        .iter()
        .filter(|l| l.outcome != "ok")
        .all(|l| l.http_status == 401));
}

/// (e) No JWT, IAM token, AK, SK or security token in any `Debug` or error
/// message, nor (but the AK id) in the fake's journal. (Log lines:
/// `huawei_federation_logs.rs`, a test binary of its own.)
#[tokio::test]
async fn no_key_material_in_debug_errors_or_the_journal() {
    let env = start(|f| f.key_lifetime = Some(Duration::from_secs(60))).await;
    let jwt = env.write_token(AUDIENCE, 0, 3600);
    let source = env.source();
    let cloud = env.client(&source);
    cloud.observe().await.expect("observe");
    let keys = source.keys().await.expect("keys");
    let ak = keys.id.expose().to_string();
    let sk = keys.secret.expose().to_string();
    let security_token = keys.token.as_ref().unwrap().expose().to_string();

    let mut shown = vec![
        format!("{cloud:?}"),
        format!("{source:?}"),
        format!("{keys:?}"),
        format!("{:?}", source.report()),
        format!("{:?}", env.exchange_for(IDP, env.token_file())),
    ];
    // Errors of every kind: a refused JWT, a refused MRS request with the
    // temporary AK, a missing file.
    env.write_token("wrong", 0, 3600);
    let refused = env.client(&env.source()).observe().await.unwrap_err();
    let no_token = env
        .client(&Arc::new(KeySource::fixed(Keys::fixed(
            keys.id.clone(),
            keys.secret.clone(),
            None,
        ))))
        .with_auth_hold_off(Duration::ZERO)
        .observe()
        .await
        .unwrap_err();
    let missing = env
        .client(
            &env.exchange_for(IDP, env.dir.path().join("gone"))
                .into_key_source(env.clock.clone()),
        )
        .observe()
        .await
        .unwrap_err();
    for e in [&refused, &no_token, &missing] {
        shown.push(e.to_string());
        shown.push(format!("{e:?}"));
    }
    let text = shown.join("\n");
    for (what, secret) in [
        ("JWT", jwt.as_str()),
        ("AK", ak.as_str()),
        ("SK", sk.as_str()),
        ("security token", security_token.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} shown:\n{text}");
    }
    // The fake's IAM tokens start so.
    assert!(!text.contains("MIIFED"), "IAM token shown:\n{text}");

    let journal = serde_json::to_string(&env.fake.journal()).unwrap();
    for (what, secret) in [
        ("JWT", jwt.as_str()),
        ("SK", sk.as_str()),
        ("security token", security_token.as_str()),
    ] {
        assert!(!journal.contains(secret), "{what} journaled");
    }
    assert!(!journal.contains("MIIFED"), "IAM token journaled");
    assert!(
        journal.contains(&format!("ak:{ak}")),
        "the AK id is journaled"
    );
}
