//! The controller's reconcile against a scripted API server (tower-test):
//! the exact requests, in order, with their bodies, for the main paths.
//!
//! The pattern is kube-rs/controller-rs's `ApiServerVerifier`: a `kube::Client`
//! over `tower_test::mock::pair()`, and a task that takes each request in
//! turn, asserts its method, URI and body, answers it, and finally asserts
//! that nothing else arrives.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::core::error_boundary::InvalidObject;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::accounts::Accounts;
use super::reconcile::clouds::CloudCache;
use super::reconcile::events::Recorder;
use super::reconcile::reconciler::{self, Context};
use super::reconcile::secrets::SecretScope;
use super::reconcile::status::Deferred;
use super::serve::metrics::Metrics;
use super::watch::ClusterOrInvalid;
use clusterscale_core::api::account::CloudAccount;
use clusterscale_core::api::{ScaledCluster, ScaledClusterStatus};
use clusterscale_core::clock::ManualClock;
use clusterscale_engine::{operation_token, EngineConfig};

const NS: &str = "analytics";
const NAME: &str = "emr-prod";
const UID: &str = "6f1c1a9e-0c1b-4d7e-9d55-2b8f7c1d0a11";
const GENERATION: i64 = 3;

const STATUS_URI: &str = "/apis/clusterscale.io/v1alpha1/namespaces/analytics/scaledclusters/emr-prod/status?&force=true&fieldManager=clusterscale";
const EVENTS_URI: &str = "/apis/events.k8s.io/v1/namespaces/analytics/events?";
const STATUS_GET_URI: &str =
    "/apis/clusterscale.io/v1alpha1/namespaces/analytics/scaledclusters/emr-prod/status";
const OBJECT_URI: &str =
    "/apis/clusterscale.io/v1alpha1/namespaces/analytics/scaledclusters/emr-prod";
const SECRET_URI: &str = "/api/v1/namespaces/analytics/secrets/emr-creds";

/// Each verifier step, and each reconcile, must finish within this.
const STEP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the verifier waits to be sure no further request comes.
const QUIET: Duration = Duration::from_millis(200);

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The reply to one request, computed from its JSON body.
type Reply = Box<dyn FnOnce(&Value) -> (StatusCode, Value) + Send>;

/// One expected request and the answer the fake API server gives.
struct Expect {
    method: Method,
    uri: &'static str,
    reply: Reply,
}

/// The API server's `Status` failure answer.
fn failure(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": reason, "code": code.as_u16(),
            "message": message,
        }),
    )
}

impl Expect {
    /// The SSA status patch; the API server answers with `object` carrying the applied status.
    /// Every status patch carries the scale subresource's selector.
    fn status_patch(object: &ScaledCluster) -> Self {
        let selector = clusterscale_core::api::scale_selector(&object.name_any());
        let mut object = serde_json::to_value(object).expect("object serialises");
        Self {
            method: Method::PATCH,
            uri: STATUS_URI,
            reply: Box::new(move |body| {
                assert_eq!(
                    body["status"]["selector"], selector,
                    "a status patch without status.selector removes it, and HPA/KEDA stop"
                );
                object["status"] = body["status"].clone();
                (StatusCode::OK, object)
            }),
        }
    }

    /// A read of the status subresource; the API server answers with `object`.
    fn status_get(object: Value) -> Self {
        Self {
            method: Method::GET,
            uri: STATUS_GET_URI,
            reply: Box::new(move |_| (StatusCode::OK, object.clone())),
        }
    }

    /// An events.k8s.io/v1 create; the API server echoes the event.
    fn event() -> Self {
        Self {
            method: Method::POST,
            uri: EVENTS_URI,
            reply: Box::new(|body| (StatusCode::CREATED, body.clone())),
        }
    }

    /// A read of the credentials Secret, which does not exist.
    fn secret_not_found() -> Self {
        Self {
            method: Method::GET,
            uri: SECRET_URI,
            reply: Box::new(|_| {
                failure(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "secrets \"emr-creds\" not found",
                )
            }),
        }
    }
}

/// Answers `script` in order, asserting each request's method and URI, then
/// asserts that nothing else arrives. Yields the handle back (for a second
/// reconcile over the same client) and the request bodies in order.
fn verify(
    mut handle: ApiServerHandle,
    script: Vec<Expect>,
) -> JoinHandle<(ApiServerHandle, Vec<Value>)> {
    tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (i, expect) in script.into_iter().enumerate() {
            let what = format!("request #{} ({} {})", i + 1, expect.method, expect.uri);
            let (request, send) = timeout(STEP_TIMEOUT, handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("{what}: never arrived within {STEP_TIMEOUT:?}"))
                .unwrap_or_else(|| panic!("{what}: the client went away first"));
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).expect("request body is JSON")
            };
            assert_eq!(
                (&parts.method, parts.uri.to_string().as_str()),
                (&expect.method, expect.uri),
                "{what}: got {} {} with body {body}",
                parts.method,
                parts.uri
            );
            let (status, reply) = (expect.reply)(&body);
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&reply).expect("reply")))
                .expect("response");
            send.send_response(response);
            bodies.push(body);
        }
        if let Ok(Some((request, _))) = timeout(QUIET, handle.next_request()).await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            panic!(
                "unexpected request after the {} expected: {} {} {}",
                bodies.len(),
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&bytes)
            );
        }
        (handle, bodies)
    })
}

/// The clock of every test: deliberately not on a whole second, so that the
/// status round trip through JSON (Time has second precision) is exercised.
fn start() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("timestamp") + SignedDuration::from_millis(250)
}

/// `start()` as the API server stores it.
const START_JSON: &str = "2023-11-14T22:13:20Z";

fn context(
    claims: Arc<crate::controller::watch::claims::ClaimIndex>,
) -> (Arc<Context>, ApiServerHandle, Arc<ManualClock>) {
    context_with(claims, &[], SecretScope::ClusterWide)
}

/// [`context`] with these CloudAccounts in the accounts' cache, and a
/// Secret scope.
fn context_with(
    claims: Arc<crate::controller::watch::claims::ClaimIndex>,
    accounts: &[CloudAccount],
    scope: SecretScope,
) -> (Arc<Context>, ApiServerHandle, Arc<ManualClock>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(ManualClock::new(start()));
    let (account_store, mut writer) = kube::runtime::reflector::store::<CloudAccount>();
    for a in accounts {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(a.clone()));
    }
    let metrics = Metrics::default();
    let ctx = Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "clusterscale".into(),
                instance: Some("clusterscale-0".into()),
            },
            metrics.clone(),
        ),
        client,
        metrics,
        clouds: CloudCache::default(),
        clock: clock.clone(),
        engine: EngineConfig::default(),
        claims,
        backoffs: Default::default(),
        backlog: Default::default(),
        liveness: Default::default(),
        accounts: Arc::new(Accounts::new(account_store, scope, clock.clone(), None)),
        deferred: Arc::default(),
    };
    (Arc::new(ctx), handle, clock)
}

fn cluster_named(name: &str, uid: &str, created: &str, spec: Value) -> ScaledCluster {
    serde_json::from_value(json!({
        "apiVersion": "clusterscale.io/v1alpha1",
        "kind": "ScaledCluster",
        "metadata": {
            "name": name, "namespace": NS, "uid": uid, "generation": GENERATION,
            "resourceVersion": "4711", "creationTimestamp": created
        },
        "spec": spec
    }))
    .expect("a valid ScaledCluster")
}

fn cluster(spec: Value) -> ScaledCluster {
    cluster_named(NAME, UID, "2023-11-01T00:00:00Z", spec)
}

fn tencent_spec() -> Value {
    json!({
        "tencent": {
            "region": "ap-guangzhou", "instanceId": "emr-b3zor8nr",
            "credentialsSecretRef": {"name": "emr-creds"}
        },
        "core": {"count": 3},
        "task": {"count": 2}
    })
}

/// The object as the watch delivers it after the API server applied `patch`.
fn with_applied_status(obj: &ScaledCluster, patch: &Value) -> ScaledCluster {
    let mut next = obj.clone();
    let status: ScaledClusterStatus =
        serde_json::from_value(patch["status"].clone()).expect("the patched status deserialises");
    next.status = Some(status);
    next
}

/// Run one reconcile against `script`; returns its result, the request bodies and the handle.
async fn run(
    ctx: &Arc<Context>,
    handle: ApiServerHandle,
    obj: ClusterOrInvalid,
    script: Vec<Expect>,
) -> (Action, Vec<Value>, ApiServerHandle) {
    let verifier = verify(handle, script);
    let result = timeout(
        STEP_TIMEOUT,
        reconciler::reconcile(Arc::new(obj), ctx.clone()),
    )
    .await;
    // The verifier's verdict first: its messages say which request was wrong.
    let (handle, bodies) = match verifier.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("verifier task: {e}"),
    };
    let action = result
        .unwrap_or_else(|_| panic!("reconcile did not finish within {STEP_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("reconcile failed: {e}"));
    (action, bodies, handle)
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

/// Asserts an apply patch's envelope (SSA needs apiVersion and kind) and returns its status.
fn applied_status(body: &Value) -> &Value {
    assert_eq!(body["apiVersion"], "clusterscale.io/v1alpha1", "{body}");
    assert_eq!(body["kind"], "ScaledCluster", "{body}");
    assert!(
        body.get("spec").is_none(),
        "a status patch carries no spec: {body}"
    );
    &body["status"]
}

fn assert_event(body: &Value, type_: &str, reason: &str) {
    assert_eq!(body["type"], type_, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["reportingController"], "clusterscale", "{body}");
    assert_eq!(body["reportingInstance"], "clusterscale-0", "{body}");
    assert_eq!(body["metadata"]["namespace"], NS, "{body}");
    let regarding = &body["regarding"];
    assert_eq!(
        regarding["apiVersion"], "clusterscale.io/v1alpha1",
        "{body}"
    );
    assert_eq!(regarding["kind"], "ScaledCluster", "{body}");
    assert_eq!(regarding["namespace"], NS, "{body}");
    assert_eq!(regarding["name"], NAME, "{body}");
    assert_eq!(regarding["uid"], UID, "{body}");
}

fn assert_degraded(status: &Value, reason: &str, message_has: &str) {
    assert_eq!(status["phase"], "Failed", "{status}");
    assert_eq!(status["observedGeneration"], GENERATION, "{status}");
    let degraded = condition(status, "Degraded");
    assert_eq!(degraded["status"], "True", "{status}");
    assert_eq!(degraded["reason"], reason, "{status}");
    let message = degraded["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_has),
        "Degraded message {message:?} should name {message_has:?}"
    );
    assert_eq!(degraded["lastTransitionTime"], START_JSON, "{status}");
    let ready = condition(status, "Ready");
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], reason, "{status}");
    assert_eq!(
        condition(status, "Progressing")["status"],
        "False",
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message_has),
        "status.message should name {message_has:?}: {status}"
    );
}

/// A simulated cluster whose one operation, Task 0 -> 2, takes 30 s.
fn task_out_0_to_2_in_30s() -> ScaledCluster {
    cluster(json!({
        "simulated": {"initialCore": 3, "initialTask": 0, "operationSeconds": 30},
        "core": {"count": 3},
        "task": {"count": 2}
    }))
}

#[tokio::test]
async fn scale_out_writes_ahead_then_keeps_the_acceptance_and_its_event_for_the_next_write() {
    let (ctx, handle, _) = context(Default::default());
    let obj = task_out_0_to_2_in_30s();
    let (action, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        // The write-ahead record alone: the acceptance is not written on its
        // own (crash safety does without it), nor its Event.
        vec![Expect::status_patch(&obj)],
    )
    .await;
    assert_eq!(action, Action::requeue(EngineConfig::default().poll));
    let token = operation_token(
        UID,
        GENERATION,
        1,
        &clusterscale_core::plan::Operation {
            group: clusterscale_core::api::NodeGroup::Task,
            pool: None,
            direction: clusterscale_core::api::Direction::Out,
            count: 2,
            from_count: 0,
            to_count: 2,
        },
    );

    // 1. The write-ahead record: the operation, not yet accepted, before any cloud call.
    let ahead = applied_status(&bodies[0]);
    assert_eq!(ahead["phase"], "ScalingOut", "{ahead}");
    assert_eq!(ahead["observedGeneration"], GENERATION, "{ahead}");
    assert_eq!(ahead["cloud"], "simulated", "{ahead}");
    assert_eq!(ahead["step"], 1, "{ahead}");
    assert_eq!(ahead["observed"]["core"], 3, "{ahead}");
    assert_eq!(ahead["observed"]["task"], 0, "{ahead}");
    let pending = &ahead["pendingOperation"];
    assert_eq!(pending["id"], token.as_str(), "{ahead}");
    assert_eq!(pending["group"], "task", "{ahead}");
    assert_eq!(pending["direction"], "out", "{ahead}");
    assert_eq!(pending["count"], 2, "{ahead}");
    assert_eq!(pending["fromCount"], 0, "{ahead}");
    assert_eq!(pending["toCount"], 2, "{ahead}");
    assert_eq!(pending["accepted"], false, "{ahead}");
    assert_eq!(pending["attempts"], 1, "{ahead}");
    assert_eq!(pending["startedAt"], START_JSON, "{ahead}");
    assert!(
        pending.get("requestId").is_none(),
        "no request id before the call: {ahead}"
    );
    assert_eq!(condition(ahead, "Progressing")["status"], "True", "{ahead}");
    assert_eq!(
        condition(ahead, "Progressing")["reason"],
        "OperationStarting"
    );
    assert_eq!(condition(ahead, "Ready")["status"], "False", "{ahead}");
    assert_eq!(condition(ahead, "Degraded")["status"], "False", "{ahead}");
    for c in ahead["conditions"].as_array().expect("conditions") {
        assert_eq!(c["observedGeneration"], GENERATION, "{c}");
    }

    // 2. The cloud accepted: the same operation, now with the cloud's ids,
    // kept for the next pass, which starts from it while the stored status
    // is the write-ahead record, and writes it with its own write.
    assert_eq!(ctx.deferred.len(), 1);
    let stored: ScaledClusterStatus =
        serde_json::from_value(ahead.clone()).expect("the stored status");
    let kept = ctx.deferred.current(UID, &stored);
    assert_ne!(kept, stored, "the acceptance is kept");
    let accepted = serde_json::to_value(&kept).expect("json");
    let accepted = &accepted;
    assert_eq!(accepted["phase"], "ScalingOut", "{accepted}");
    assert_eq!(accepted["observedGeneration"], GENERATION, "{accepted}");
    let pending = &accepted["pendingOperation"];
    assert_eq!(pending["id"], token.as_str(), "{accepted}");
    assert_eq!(pending["accepted"], true, "{accepted}");
    assert!(pending["requestId"].is_string(), "{accepted}");
    assert!(pending["flowId"].is_string(), "{accepted}");
    assert_eq!(
        condition(accepted, "Progressing")["status"],
        "True",
        "{accepted}"
    );
    assert_eq!(
        condition(accepted, "Progressing")["reason"],
        "OperationInProgress"
    );
    assert_eq!(
        condition(accepted, "Ready")["status"],
        "False",
        "{accepted}"
    );
    assert_eq!(
        condition(accepted, "Degraded")["status"],
        "False",
        "{accepted}"
    );
    assert!(accepted.get("lastError").is_none(), "{accepted}");

    // Another stored status (a newer write, a stale read) does not take it.
    let other = ScaledClusterStatus {
        step: 7,
        ..stored.clone()
    };
    assert_eq!(ctx.deferred.current(UID, &other), other);

    assert_eq!(
        ctx.recorder.queued(),
        0,
        "the ScaleOutStarted Event is held"
    );
}

/// A long operation: once its kept acceptance is due, it is written on its
/// own, and the held ScaleOutStarted Event follows it.
#[tokio::test]
async fn a_due_acceptance_is_written_and_its_event_follows() {
    let (ctx, handle, _) = context(Default::default());
    let ctx = Arc::new(Context {
        deferred: Arc::new(Deferred::writing_after(Duration::ZERO)),
        ..Arc::try_unwrap(ctx).unwrap_or_else(|_| panic!("one context"))
    });
    let obj = task_out_0_to_2_in_30s();
    let (_, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![
            Expect::status_patch(&obj),
            Expect::status_patch(&obj),
            Expect::event(),
        ],
    )
    .await;
    let accepted = applied_status(&bodies[1]);
    let pending = &accepted["pendingOperation"];
    assert_eq!(pending["accepted"], true, "{accepted}");
    let request_id = pending["requestId"].as_str().expect("a request id");
    let token = pending["id"].as_str().expect("the operation id");
    let event = &bodies[2];
    assert_event(event, "Normal", "ScaleOutStarted");
    assert_eq!(event["action"], format!("ScaleOut {token}"), "{event}");
    let note = event["note"].as_str().unwrap_or_default();
    assert!(note.contains("add 2 task node(s), 0 -> 2"), "{note}");
    assert!(note.contains(token), "{note}");
    assert!(note.contains(request_id), "{note}");
    assert_eq!(ctx.deferred.len(), 0);
}

#[tokio::test]
async fn the_kept_acceptance_spares_the_running_passes_a_write_and_rides_on_the_outcome() {
    let (ctx, handle, clock) = context(Default::default());
    let obj = task_out_0_to_2_in_30s();
    let (_, bodies, handle) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![Expect::status_patch(&obj)],
    )
    .await;
    // Running, 10 s later, on the stored write-ahead record: the pass starts
    // from the kept acceptance, so it neither re-sends nor writes.
    clock.advance(Duration::from_secs(10));
    let obj = with_applied_status(&obj, &bodies[0]);
    let (action, running, handle) =
        run(&ctx, handle, DeserializeGuard(Ok(obj.clone())), vec![]).await;
    assert!(running.is_empty(), "{running:?}");
    assert_eq!(action, Action::requeue(EngineConfig::default().poll));
    assert_eq!(ctx.deferred.len(), 1);
    // Done: one write, the outcome, which carries the acceptance's ids.
    clock.advance(Duration::from_secs(25));
    let (_, done, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![Expect::status_patch(&obj), Expect::event()],
    )
    .await;
    let status = applied_status(&done[0]);
    assert!(status.get("pendingOperation").is_none(), "{status}");
    let last = &status["lastOperation"];
    assert_eq!(last["accepted"], true, "{status}");
    assert_eq!(last["outcome"], "Succeeded", "{status}");
    assert!(last["requestId"].is_string(), "{status}");
    assert_eq!(condition(status, "Ready")["status"], "True", "{status}");
    // One Event for the operation: the outcome, naming the request id; the
    // held ScaleOutStarted is merged into it.
    assert_event(&done[1], "Normal", "ScaleOutCompleted");
    let note = done[1]["note"].as_str().unwrap_or_default();
    let request_id = last["requestId"].as_str().unwrap_or_default();
    assert!(note.contains(&format!("request id {request_id}")), "{note}");
    assert_eq!(ctx.deferred.len(), 0, "nothing left waiting");
    let scrape = ctx.metrics.encode();
    assert!(
        scrape.contains("clusterscale_events_total{outcome=\"merged\"} 1"),
        "{scrape}"
    );
}

#[tokio::test]
async fn a_converged_cluster_whose_status_is_current_causes_no_request() {
    let (ctx, handle, clock) = context(Default::default());
    let obj = cluster(json!({
        "simulated": {"initialCore": 3, "initialTask": 2},
        "core": {"count": 3},
        "task": {"count": 2}
    }));
    // First pass: no status yet, so the converged status is written once, without an event.
    let (action, bodies, handle) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![Expect::status_patch(&obj)],
    )
    .await;
    assert_eq!(action, Action::requeue(EngineConfig::default().resync));
    let status = applied_status(&bodies[0]);
    assert_eq!(status["phase"], "Converged", "{status}");
    assert_eq!(status["observedGeneration"], GENERATION, "{status}");
    assert_eq!(condition(status, "Ready")["status"], "True", "{status}");
    assert_eq!(
        condition(status, "Progressing")["status"],
        "False",
        "{status}"
    );
    assert_eq!(condition(status, "Degraded")["status"], "False", "{status}");
    assert!(status.get("pendingOperation").is_none(), "{status}");

    // Second pass, with the status as the API server stored it (and a later clock):
    // nothing changed, so nothing is written and nothing is announced.
    clock.advance(Duration::from_secs(30));
    let obj = with_applied_status(&obj, &bodies[0]);
    let (action, bodies, _) = run(&ctx, handle, DeserializeGuard(Ok(obj)), vec![]).await;
    assert!(bodies.is_empty());
    assert_eq!(action, Action::requeue(EngineConfig::default().resync));
}

#[tokio::test]
async fn a_missing_secret_is_reported_once_and_rechecked_quietly() {
    let (ctx, handle, clock) = context(Default::default());
    let obj = cluster(tencent_spec());
    let (action, bodies, handle) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![
            Expect::secret_not_found(),
            Expect::status_patch(&obj),
            Expect::event(),
        ],
    )
    .await;
    // Re-checked on the resync (and at once by the Secret watch when it appears).
    assert_eq!(action, Action::requeue(EngineConfig::default().resync));
    let status = applied_status(&bodies[1]);
    assert_degraded(
        status,
        "CredentialsMissing",
        "Secret analytics/emr-creds not found",
    );
    assert_eq!(status["cloud"], "tencent", "{status}");
    assert_eq!(
        status["lastError"]["code"], "CredentialsMissing",
        "{status}"
    );
    assert!(status.get("pendingOperation").is_none(), "{status}");
    let event = &bodies[2];
    assert_event(event, "Warning", "CredentialsMissing");
    assert_eq!(
        event["note"], "Secret analytics/emr-creds not found",
        "{event}"
    );

    // Still missing on the next pass: the Secret is read again, but the status
    // is the same and the event is not repeated.
    clock.advance(Duration::from_secs(30));
    let obj = with_applied_status(&obj, &bodies[1]);
    let (action, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj)),
        vec![Expect::secret_not_found()],
    )
    .await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(action, Action::requeue(EngineConfig::default().resync));
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_waits_for_a_change() {
    let (ctx, handle, _) = context(Default::default());
    let obj = cluster(json!({
        "simulated": {},
        "core": {"count": 2},
        "task": {"count": 1}
    }));
    let (action, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![Expect::status_patch(&obj), Expect::event()],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = applied_status(&bodies[0]);
    assert_degraded(
        status,
        "InvalidSpec",
        "spec.core.count: must be at least 3 (got 2)",
    );
    assert_eq!(status["lastError"]["class"], "InvalidSpec", "{status}");
    assert!(
        status.get("observed").is_none(),
        "the cloud is not observed: {status}"
    );
    assert_event(&bodies[1], "Warning", "InvalidSpec");
    assert_eq!(bodies[1]["action"], "Validate", "{}", bodies[1]);
    let note = bodies[1]["note"].as_str().unwrap_or_default();
    assert!(note.contains("spec.core.count"), "{note}");
}

/// Every refusal of `crate::cloud::validate` (the cloud-neutral rules and each cloud's) ends in a Degraded
/// condition, a Ready=False condition, lastError and a Warning Event that
/// name the offending field, without touching a Secret or the cloud.
#[tokio::test]
async fn every_refused_spec_names_its_field_in_the_conditions() {
    for (field, words, spec) in clusterscale_core::testing::refusals() {
        let (ctx, handle, _) = context(Default::default());
        let obj = cluster(serde_json::to_value(&spec).expect("spec serialises"));
        let (action, bodies, _) = run(
            &ctx,
            handle,
            DeserializeGuard(Ok(obj.clone())),
            vec![Expect::status_patch(&obj), Expect::event()],
        )
        .await;
        assert_eq!(action, Action::await_change(), "{field}");
        let status = applied_status(&bodies[0]);
        let named = format!("{field}: ");
        assert_degraded(status, "InvalidSpec", &named);
        let ready = condition(status, "Ready")["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            ready.contains(&named) && ready.contains(words),
            "{field}: Ready {ready:?}"
        );
        let last = status["lastError"]["message"].as_str().unwrap_or_default();
        assert!(last.contains(&named), "{field}: lastError {status}");
        assert_event(&bodies[1], "Warning", "InvalidSpec");
        let note = bodies[1]["note"].as_str().unwrap_or_default();
        assert!(note.contains(&named), "{field}: event note {note:?}");
    }
}

#[tokio::test]
async fn an_object_that_does_not_deserialize_is_reported_on_itself() {
    let (ctx, handle, clock) = context(Default::default());
    let obj = cluster(json!({"simulated": {}, "core": {"count": 3}}));
    let invalid = InvalidObject {
        error: "spec.core.count: invalid type: string \"three\", expected i32".into(),
        metadata: obj.metadata.clone(),
    };
    let stored = serde_json::to_value(&obj).expect("object serialises");
    let (action, bodies, handle) = run(
        &ctx,
        handle,
        DeserializeGuard(Err(invalid.clone())),
        vec![
            Expect::status_get(stored.clone()),
            Expect::status_patch(&obj),
            Expect::event(),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    let status = applied_status(&bodies[1]);
    assert_degraded(
        status,
        "InvalidSpec",
        "invalid type: string \"three\", expected i32",
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the object does not match the ScaledCluster schema"),
        "{status}"
    );
    for c in status["conditions"].as_array().expect("conditions") {
        assert_eq!(c["observedGeneration"], GENERATION, "{c}");
    }
    assert_event(&bodies[2], "Warning", "InvalidSpec");
    let note = bodies[2]["note"].as_str().unwrap_or_default();
    assert!(note.contains("expected i32"), "{note}");

    // The same object again, its report already stored: only the read, no
    // second write and no second event.
    let mut reported = stored;
    reported["status"] = status.clone();
    clock.advance(Duration::from_secs(30));
    let (action, _, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Err(invalid)),
        vec![Expect::status_get(reported)],
    )
    .await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn the_younger_of_two_claimants_of_one_cluster_does_not_touch_it() {
    let older = cluster_named(
        "emr-prod-old",
        "0b7d3c52-51e4-4a57-9d3c-5d2f2e6b8a01",
        "2023-10-01T00:00:00Z",
        tencent_spec(),
    );
    let obj = cluster(tencent_spec());
    let claims = Arc::new(crate::controller::watch::claims::ClaimIndex::new());
    for o in [&older, &obj] {
        claims.observe(0, &watcher::Event::Apply(DeserializeGuard(Ok(o.clone()))));
    }
    let (ctx, handle, _) = context(claims);
    // No Secret read: a blocked resource does not dereference its credentials.
    let (action, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(obj.clone())),
        vec![Expect::status_patch(&obj), Expect::event()],
    )
    .await;
    assert_eq!(action, Action::requeue(EngineConfig::default().resync));
    let status = applied_status(&bodies[0]);
    assert_degraded(
        status,
        "DuplicateTarget",
        "ScaledCluster analytics/emr-prod-old",
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("tencent/ap-guangzhou/emr-b3zor8nr is also managed by"),
        "{status}"
    );
    assert_event(&bodies[1], "Warning", "DuplicateTarget");
}

#[tokio::test]
async fn a_stale_read_loses_the_compare_and_swap_and_stops() {
    // The watch cache lagged behind our own last write: the write-ahead patch
    // carries the resourceVersion the pass read, the API server refuses it,
    // and the pass stops there (the engine calls the cloud only after the
    // write-ahead save succeeds): no event, no second patch.
    let (ctx, handle, _) = context(Default::default());
    let mut obj = cluster(json!({
        "simulated": {"initialCore": 3, "initialTask": 0},
        "core": {"count": 3},
        "task": {"count": 2}
    }));
    obj.metadata.resource_version = Some("41".into());
    let conflict = status_conflict();
    // The fresh read finds the object as the cache had it: nothing to run
    // again on, so the conflict stands.
    let fresh_read = read_returns(&obj);
    let verifier = verify(handle, vec![conflict, fresh_read]);
    let result = timeout(
        STEP_TIMEOUT,
        reconciler::reconcile(Arc::new(DeserializeGuard(Ok(obj))), ctx.clone()),
    )
    .await
    .expect("reconcile finishes");
    let (_, bodies) = verifier.await.expect("verifier");
    assert_eq!(
        bodies[0]["metadata"]["resourceVersion"], "41",
        "{}",
        bodies[0]
    );
    assert!(
        !applied_status(&bodies[0])["pendingOperation"].is_null(),
        "the refused write was the write-ahead record: {}",
        bodies[0]
    );
    let error = result.expect_err("a lost compare-and-swap is an error");
    assert!(error.is_conflict(), "{error}");
    assert_eq!(
        reconciler::error_policy(
            Arc::new(DeserializeGuard(Ok(cluster(
                json!({"simulated": {}, "core": {"count": 3}})
            )))),
            &error,
            ctx
        ),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn a_lost_compare_and_swap_reads_the_object_fresh_and_runs_the_pass_on_it_once() {
    // The cache is stale (resourceVersion 41); the apiserver has 42. The
    // write-ahead patch on 41 loses; the object read fresh has 42, and the
    // pass runs again on it: its write-ahead record goes out on 42, and only
    // then the cloud call (its acceptance and Event kept for the next write).
    let (ctx, handle, _) = context(Default::default());
    let mut stale = task_out_0_to_2_in_30s();
    stale.metadata.resource_version = Some("41".into());
    let mut fresh = stale.clone();
    fresh.metadata.resource_version = Some("42".into());
    let conflict = status_conflict();
    let fresh_read = read_returns(&fresh);
    let (action, bodies, _) = run(
        &ctx,
        handle,
        DeserializeGuard(Ok(stale)),
        vec![conflict, fresh_read, Expect::status_patch(&fresh)],
    )
    .await;
    assert_eq!(action, Action::requeue(EngineConfig::default().poll));
    assert_eq!(
        bodies[0]["metadata"]["resourceVersion"], "41",
        "{}",
        bodies[0]
    );
    assert_eq!(
        bodies[2]["metadata"]["resourceVersion"], "42",
        "{}",
        bodies[2]
    );
    let ahead = applied_status(&bodies[2]);
    assert_eq!(ahead["pendingOperation"]["accepted"], false, "{ahead}");
    let stored: ScaledClusterStatus = serde_json::from_value(ahead.clone()).expect("status");
    let kept = ctx.deferred.current(UID, &stored);
    assert!(
        kept.pending_operation.as_ref().is_some_and(|p| p.accepted),
        "{kept:?}"
    );
}

/// The apiserver refuses a status patch: the object changed since it was read.
fn status_conflict() -> Expect {
    Expect {
        method: Method::PATCH,
        uri: STATUS_URI,
        reply: Box::new(|_| {
            failure(
                StatusCode::CONFLICT,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        }),
    }
}

/// A GET of the object answers `obj`.
fn read_returns(obj: &ScaledCluster) -> Expect {
    let json = serde_json::to_value(obj).expect("object");
    Expect {
        method: Method::GET,
        uri: OBJECT_URI,
        reply: Box::new(move |_| (StatusCode::OK, json)),
    }
}
