//! No key material in any log line of a Huawei workload-identity client:
//! every event of every crate, at every level, captured while a client
//! exchanges a JWT for temporary keys, signs MRS requests with them,
//! refreshes them, and meets refusals.
//!
//! A test binary of its own, with one test: `tracing`'s per-thread
//! subscriber sees every event only when no other test thread registers
//! the same call sites at the same time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clusterscale_core::api::HuaweiSpec;
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::keys::{KeySource, Keys};
use clusterscale_core::cloud::Cloud;
use clusterscale_fakes::huawei::{FakeFederation, HuaweiFake, HuaweiFakeConfig};
use clusterscale_fakes::oidc::testing::{token, ISSUER, PUBLIC_KEY_PEM};
use clusterscale_fakes::oidc::OidcProvider;
use clusterscale_fakes::FakeOptions;
use clusterscale_huawei::federation::{IdTokenConfig, IdTokenExchange};
use clusterscale_huawei::HuaweiCloud;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const CLUSTER: &str = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d";
const AUDIENCE: &str = "clusterscale-iam";
const SUB: &str = "system:serviceaccount:clusterscale:clusterscale";

/// Log lines, captured.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn no_key_material_in_any_log_line() {
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // This thread runs the test, the fake and the clients (one runtime thread).
    let _logging = tracing::subscriber::set_default(subscriber);

    let clock = Arc::new(ManualClock::default());
    let model = common::model("mrs-logs", 3, 0, Duration::from_secs(30), clock.clone());
    let provider = OidcProvider::from_pem(ISSUER, PUBLIC_KEY_PEM).expect("test key");
    let mut federation = FakeFederation::new(provider, "cce-idp", AUDIENCE);
    federation.key_lifetime = Some(Duration::from_secs(60));
    let fake = HuaweiFake::new(
        model,
        HuaweiFakeConfig {
            options: FakeOptions {
                clock: clock.clone(),
                ..FakeOptions::default()
            },
            project_id: Some(PROJECT.into()),
            cluster_id: Some(CLUSTER.into()),
            access_keys: Vec::new(),
            users: Vec::new(),
            federation: Some(federation),
            ..HuaweiFakeConfig::default()
        },
    )
    .expect("fake");
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.clone().serve(listener));
    let spec = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(base.clone())
        .iam_endpoint(base.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let write = |aud: &str| {
        let now = clock.now().as_second();
        let jwt = token(SUB, aud, now, now + 3600);
        std::fs::write(&file, &jwt).expect("token file");
        jwt
    };
    let source = |idp: &str| {
        IdTokenExchange::new(
            IdTokenConfig::new(idp, file.clone())
                .iam_endpoint(base.clone())
                .duration_seconds(900),
        )
        .expect("config")
        .into_key_source(clock.clone())
    };
    let client = |keys: &Arc<KeySource>| {
        HuaweiCloud::with_key_source(&spec, keys.clone())
            .expect("client")
            .with_clock(clock.clone())
            .with_rate_limits(RateLimits::new(10_000))
            .with_auth_hold_off(Duration::ZERO)
    };

    let mut jwts = vec![write(AUDIENCE)];
    let shared = source("cce-idp");
    let cloud = client(&shared);
    cloud.observe().await.expect("observe");
    let first = shared.keys().await.expect("keys");
    // Refreshed at 30 s; at 61 s the first keys have expired.
    clock.advance(Duration::from_secs(30));
    cloud.observe().await.expect("observe");
    clock.advance(Duration::from_secs(31));
    cloud.observe().await.expect("observe");
    let second = shared.keys().await.expect("keys");
    assert_ne!(first.id, second.id);
    // Refusals: a JWT for another audience, an unknown IdP, a missing file,
    // the temporary AK without its security token, expired keys.
    jwts.push(write("another-audience"));
    assert!(client(&source("cce-idp")).observe().await.is_err());
    assert!(client(&source("unknown-idp")).observe().await.is_err());
    std::fs::remove_file(&file).unwrap();
    assert!(client(&source("cce-idp")).observe().await.is_err());
    let without_token = Arc::new(KeySource::fixed(Keys::fixed(
        second.id.clone(),
        second.secret.clone(),
        None,
    )));
    assert!(client(&without_token).observe().await.is_err());
    let expired = Arc::new(KeySource::fixed((*first).clone()));
    assert!(client(&expired).observe().await.is_err());

    let logged = logs.text();
    for expected in [
        "IAM issued temporary keys",
        "authentication failed",
        "fake Huawei MRS + IAM listening",
    ] {
        assert!(
            logged.contains(expected),
            "{expected:?} not logged:\n{logged}"
        );
    }
    let mut secrets: Vec<(&str, String)> = jwts.iter().map(|j| ("JWT", j.clone())).collect();
    for k in [&first, &second] {
        secrets.push(("AK", k.id.expose().to_string()));
        secrets.push(("SK", k.secret.expose().to_string()));
        secrets.push((
            "security token",
            k.token.as_ref().unwrap().expose().to_string(),
        ));
    }
    for (what, secret) in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "{what} logged:\n{logged}"
        );
    }
    // The fake's IAM tokens start so.
    assert!(!logged.contains("MIIFED"), "IAM token logged:\n{logged}");
}
