//! The Tencent EMR client against the fake EMR endpoint, over real HTTP on
//! 127.0.0.1 with real reqwest and real TC3 signatures.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use clusterscale_core::api::{Direction, NodeGroup, OperationRecord, TencentSpec};
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::{
    Cloud, CloudError, ClusterState, ErrorClass, OperationProgress, ScaleRequest, Submitted,
};
use clusterscale_fakes::{
    FakeControl, FakeFaults, InjectedError, JournalLine, Malformed, TencentFake, TencentFakeConfig,
};
use clusterscale_sim::{SimConfig, SimModel};
use clusterscale_tencent::{sign, TencentCloud, TencentOptions};
use jiff::Timestamp;

const SECRET_ID: &str = "AKIDfakeTestSecretId000000000000000";
const SECRET_KEY: &str = "fakeTestSecretKey0000000000000000";
const INSTANCE: &str = "emr-test0001";
const OP_TIME: Duration = Duration::from_secs(60);

struct Env {
    model: Arc<SimModel>,
    model_clock: Arc<ManualClock>,
    control: Arc<FakeControl>,
    endpoint: String,
}

impl Env {
    /// A fake EMR endpoint over a model with `core`/`task` nodes.
    async fn start(core: i32, task: i32) -> Env {
        Self::start_with(core, task, |_| {}).await
    }

    async fn start_with(
        core: i32,
        task: i32,
        configure: impl FnOnce(&mut TencentFakeConfig),
    ) -> Env {
        Self::start_full(core, task, OP_TIME, configure).await.0
    }

    /// Also returns the fake, for its variants (unmanaged nodes, omitted fields).
    async fn start_full(
        core: i32,
        task: i32,
        op_time: Duration,
        configure: impl FnOnce(&mut TencentFakeConfig),
    ) -> (Env, Arc<TencentFake>) {
        let model_clock = Arc::new(ManualClock::new(Timestamp::now()));
        let config = SimConfig {
            initial_core: core,
            initial_task: task,
            operation_time: op_time,
            quota: None,
        };
        let model = Arc::new(SimModel::new(INSTANCE, config, model_clock.clone()));
        let mut fake_config = TencentFakeConfig::new(SECRET_ID, SECRET_KEY);
        configure(&mut fake_config);
        let fake = TencentFake::new(model.clone(), fake_config).expect("fake starts");
        let control = fake.control();
        let (listener, endpoint) = common::listen().await;
        let router = fake.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (
            Env {
                model,
                model_clock,
                control,
                endpoint,
            },
            Arc::new(fake),
        )
    }

    fn spec(&self) -> TencentSpec {
        spec(&self.endpoint)
    }

    fn client(&self) -> TencentCloud {
        self.client_with(creds(SECRET_ID, SECRET_KEY), options(20))
    }

    fn client_with(&self, credentials: Credentials, options: TencentOptions) -> TencentCloud {
        TencentCloud::new(&self.spec(), &credentials, options).expect("client")
    }

    fn journal(&self) -> Vec<JournalLine> {
        self.control.journal()
    }

    fn calls(&self, action: &str) -> Vec<JournalLine> {
        self.journal()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    /// Let the running operation finish.
    fn finish_operation(&self) {
        self.model_clock.advance(OP_TIME + Duration::from_secs(1));
    }
}

fn spec(endpoint: &str) -> TencentSpec {
    TencentSpec::test()
        .instance(INSTANCE)
        .secret("tencent-credentials")
        .endpoint(endpoint)
}

fn creds(id: &str, key: &str) -> Credentials {
    Credentials::new("test")
        .with("secretId", id)
        .with("secretKey", key)
}

/// Options with a private token bucket, so tests do not share budgets.
fn options(per_second: u32) -> TencentOptions {
    TencentOptions {
        rate_limit_per_second: per_second,
        rate_limits: Some(RateLimits::new(per_second)),
        ..TencentOptions::default()
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

fn record(submitted: &Submitted, group: NodeGroup, direction: Direction) -> OperationRecord {
    OperationRecord {
        group,
        direction,
        count: 1,
        from_count: 0,
        to_count: 1,
        ..OperationRecord::test()
            .started_at(Timestamp::now())
            .submitted(submitted)
    }
}

#[tokio::test]
async fn observe_counts_core_and_task_and_ignores_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let journal_file = dir.path().join("tencent.jsonl");
    let path = journal_file.clone();
    let env = Env::start_with(4, 3, move |c| c.options.journal_path = Some(path)).await;
    let observed = env.client().observe().await.expect("observe");
    assert_eq!(observed.state, ClusterState::Running);
    assert_eq!((observed.core, observed.task), (4, 3));
    assert_eq!(
        observed.nodes.len(),
        7,
        "the master node is not a Core/Task node"
    );
    assert!(observed
        .nodes
        .iter()
        .all(|n| n.id.starts_with("emr-vm-") && n.removable));
    let journal = env.journal();
    let actions: Vec<&str> = journal.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(
        actions,
        ["DescribeInstances", "DescribeClusterNodes"],
        "as few calls as possible"
    );
    assert!(journal
        .iter()
        .all(|l| l.outcome == "ok" && !l.write && l.request_id.len() == 36));
    assert_eq!(journal[1].params["Limit"], 100);
    let on_disk = std::fs::read_to_string(&journal_file).unwrap();
    assert_eq!(
        on_disk.lines().count(),
        2,
        "the JSON-lines journal file has every request"
    );
}

#[tokio::test]
async fn observe_pages_through_more_than_100_nodes() {
    let env = Env::start(3, 240).await;
    let observed = env.client().observe().await.expect("observe");
    assert_eq!((observed.core, observed.task), (3, 240));
    let offsets: Vec<i64> = env
        .calls("DescribeClusterNodes")
        .iter()
        .map(|l| l.params["Offset"].as_i64().unwrap())
        .collect();
    // Row offset 100 finds nothing new on a page-numbered server; the pager
    // switches to page numbers.
    assert_eq!(offsets, [0, 100, 1, 2]);
}

#[tokio::test]
async fn scale_out_task_then_core_is_tracked_by_trace_id_until_done() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    let submitted = cloud
        .scale_out(&request(NodeGroup::Task, 2, "cs-token-task"))
        .await
        .expect("scale out");
    assert!(submitted.request_id.is_some());
    assert_eq!(submitted.flow_id, None, "ScaleOutInstance answers FlowId 0");
    assert!(submitted.trace_id.is_some());
    let sent = &env.calls("ScaleOutInstance")[0];
    assert_eq!(sent.params["TaskCount"], 2);
    assert_eq!(sent.params.get("CoreCount"), None, "one group per request");
    assert_eq!(
        (
            &sent.params["ClientToken"],
            &sent.params["PayMode"],
            &sent.params["TimeUnit"],
            &sent.params["TimeSpan"]
        ),
        (
            &"cs-token-task".into(),
            &0.into(),
            &"s".into(),
            &3600.into()
        )
    );
    assert!(sent.write);

    let observed = cloud.observe().await.unwrap();
    assert_eq!(observed.state, ClusterState::Busy("4 scaling out".into()));
    let op = record(&submitted, NodeGroup::Task, Direction::Out);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Running
    );
    env.finish_operation();
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Succeeded
    );
    let flow_query = &env.calls("DescribeClusterFlowStatusDetail")[0];
    assert_eq!(flow_query.params["FlowParam"]["FKey"], "TraceId");
    let observed = cloud.observe().await.unwrap();
    assert_eq!(
        (observed.state, observed.core, observed.task),
        (ClusterState::Running, 3, 2)
    );

    cloud
        .scale_out(&request(NodeGroup::Core, 1, "cs-token-core"))
        .await
        .expect("scale out core");
    assert_eq!(env.calls("ScaleOutInstance")[1].params["CoreCount"], 1);
    env.finish_operation();
    let observed = cloud.observe().await.unwrap();
    assert_eq!((observed.core, observed.task), (4, 2));
}

#[tokio::test]
async fn scale_out_passes_billing_and_bootstrap_settings_through() {
    let env = Env::start(3, 0).await;
    let mut spec = env.spec();
    spec.pay_mode = 1;
    spec.time_span = Some(3);
    spec.pre_executed_file_settings = Some(vec![serde_json::json!({
        "Path": "https://bucket.cos.ap-guangzhou.myqcloud.com/bootstrap.sh",
        "WhenRun": "resourceAfter",
        "Args": ["--fast"]
    })]);
    let cloud = TencentCloud::new(&spec, &creds(SECRET_ID, SECRET_KEY), options(20)).unwrap();
    cloud
        .scale_out(&request(NodeGroup::Task, 1, "cs-monthly"))
        .await
        .expect("scale out");
    let sent = &env.calls("ScaleOutInstance")[0].params;
    assert_eq!(
        (&sent["PayMode"], &sent["TimeUnit"], &sent["TimeSpan"]),
        (&1.into(), &"m".into(), &3.into())
    );
    assert_eq!(
        sent["PreExecutedFileSettings"][0]["WhenRun"],
        "resourceAfter"
    );
}

#[tokio::test]
async fn scale_in_task_uses_terminate_tasks_with_preferred_nodes_first() {
    let env = Env::start(3, 4).await;
    let cloud = env.client();
    let observed = cloud.observe().await.unwrap();
    let mut tasks: Vec<_> = observed
        .nodes
        .iter()
        .filter(|n| n.group == NodeGroup::Task)
        .collect();
    tasks.sort_by_key(|n| n.added_order);
    let (oldest, newest) = (tasks[0].id.clone(), tasks[3].id.clone());
    let mut req = request(NodeGroup::Task, 2, "cs-in");
    req.prefer_nodes = vec!["emr-vm-gone0000".into(), oldest.clone()];
    let submitted = cloud.scale_in(&req).await.expect("scale in");
    assert_eq!(
        submitted.node_ids,
        [oldest.clone(), newest.clone()],
        "preferred first, then the newest"
    );
    assert_eq!(
        (submitted.flow_id.as_deref(), submitted.trace_id.as_deref()),
        (None, None)
    );
    let sent = &env.calls("TerminateTasks")[0];
    assert_eq!(
        sent.params["ResourceIds"],
        serde_json::json!([oldest, newest])
    );
    assert_eq!(sent.params["InstanceId"], INSTANCE);
    assert!(env.calls("TerminateClusterNodes").is_empty());

    let observed = cloud.observe().await.unwrap();
    assert_eq!(
        observed.state,
        ClusterState::Busy("16 destroying task nodes".into())
    );
    let op = record(&submitted, NodeGroup::Task, Direction::In);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Unknown,
        "TerminateTasks has no flow"
    );
    env.finish_operation();
    let observed = cloud.observe().await.unwrap();
    assert_eq!((observed.state, observed.task), (ClusterState::Running, 2));
    assert!(observed
        .nodes
        .iter()
        .all(|n| n.id != oldest && n.id != newest));
}

#[tokio::test]
async fn core_and_graceful_scale_in_use_terminate_cluster_nodes() {
    let env = Env::start(5, 2).await;
    let cloud = env.client();
    let mut req = request(NodeGroup::Core, 2, "cs-core-in");
    req.graceful_timeout_seconds = 600;
    let submitted = cloud.scale_in(&req).await.expect("scale in core");
    let sent = &env.calls("TerminateClusterNodes")[0].params;
    assert_eq!(
        (
            &sent["NodeFlag"],
            &sent["GraceDownFlag"],
            &sent["GraceDownTime"]
        ),
        (&"CORE".into(), &true.into(), &600.into())
    );
    let cvm_ids = sent["CvmInstanceIds"].as_array().unwrap();
    assert_eq!(cvm_ids.len(), 2);
    assert!(
        cvm_ids
            .iter()
            .all(|c| c.as_str().unwrap().starts_with("ins-")),
        "CVM ids (OrderNo)"
    );
    assert!(
        submitted.flow_id.is_some(),
        "TerminateClusterNodes answers a FlowId"
    );
    assert_eq!(submitted.node_ids.len(), 2);
    assert_eq!(
        cloud.observe().await.unwrap().state,
        ClusterState::Busy("24 scaling in".into())
    );
    let op = record(&submitted, NodeGroup::Core, Direction::In);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Running
    );
    env.finish_operation();
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Succeeded
    );
    assert_eq!(
        env.calls("DescribeClusterFlowStatusDetail")[0].params["FlowParam"]["FKey"],
        "FlowId"
    );
    assert_eq!(cloud.observe().await.unwrap().core, 3);

    // Task with graceful decommission also goes through TerminateClusterNodes.
    let mut req = request(NodeGroup::Task, 1, "cs-task-graceful");
    req.graceful_timeout_seconds = 60;
    cloud.scale_in(&req).await.expect("graceful task scale in");
    let sent = &env.calls("TerminateClusterNodes")[1].params;
    assert_eq!(
        (&sent["NodeFlag"], &sent["GraceDownTime"]),
        (&"TASK".into(), &60.into())
    );
    assert!(env.calls("TerminateTasks").is_empty());
}

#[tokio::test]
async fn core_never_goes_below_three_and_nothing_is_sent() {
    let env = Env::start(4, 0).await;
    let err = env
        .client()
        .scale_in(&request(NodeGroup::Core, 2, "cs-too-far"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Invalid, "ClusterScale.BelowMinimumCore")
    );
    assert!(err.message.contains("fewer than 3"), "{}", err.message);
    assert!(env.calls("TerminateClusterNodes").is_empty());
    assert!(env.model.writes().is_empty());
    let mut req = request(NodeGroup::Core, 1, "cs-bad-grace");
    req.graceful_timeout_seconds = 30;
    let err = env.client().scale_in(&req).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
}

#[tokio::test]
async fn busy_cluster_is_classified_busy_and_never_written_twice() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    cloud
        .scale_out(&request(NodeGroup::Task, 1, "cs-first"))
        .await
        .expect("first");
    let err = cloud
        .scale_out(&request(NodeGroup::Task, 1, "cs-second"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Busy, "ResourceInUse.InstanceInProcess")
    );
    assert!(err.request_id.is_some());
    let err = cloud
        .scale_in(&request(NodeGroup::Core, 0, "cs-zero"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid);
    let writes: Vec<_> = env.journal().into_iter().filter(|l| l.write).collect();
    assert_eq!(writes.len(), 1, "one write: {writes:?}");
    assert_eq!(env.model.writes().len(), 1);
    let refused = &env.calls("ScaleOutInstance")[1];
    assert_eq!(
        (refused.outcome.as_str(), refused.write),
        ("ResourceInUse.InstanceInProcess", false)
    );
}

#[tokio::test]
async fn lost_answer_is_retried_with_the_same_token_and_grows_once() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    env.model.with_faults(|f| f.lose_responses = 1);
    let req = request(NodeGroup::Task, 3, "cs-retry-token");
    let err = cloud.scale_out(&req).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Transient, "ServerNetworkError")
    );
    // The engine retries the same logical operation with the same token.
    let submitted = cloud.scale_out(&req).await.expect("retry");
    assert!(submitted.trace_id.is_some());
    env.finish_operation();
    assert_eq!(cloud.observe().await.unwrap().task, 3, "grew exactly once");
    assert_eq!(env.model.writes().len(), 1);
    let calls = env.calls("ScaleOutInstance");
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .all(|c| c.params["ClientToken"] == "cs-retry-token"));
    assert_eq!(
        (calls[0].outcome.as_str(), calls[0].write),
        ("HTTP 504", true)
    );
    assert_eq!((calls[1].outcome.as_str(), calls[1].write), ("ok", false));
}

#[tokio::test]
async fn injected_internal_error_is_transient_and_applies_nothing() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    env.control.set_faults(FakeFaults {
        transient_failure_rate: 1.0,
        ..FakeFaults::default()
    });
    let req = request(NodeGroup::Task, 1, "cs-internal");
    let err = cloud.scale_out(&req).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Transient, "InternalError")
    );
    assert!(env.model.writes().is_empty());
    env.control.set_faults(FakeFaults::default());
    env.control.inject(InjectedError {
        action: Some("ScaleOutInstance".into()),
        code: "ResourcesSoldOut.CvmSoldOut".into(),
        message: "The CVM is sold out.".into(),
        http_status: None,
    });
    let err = cloud.scale_out(&req).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str(), err.message.as_str()),
        (
            ErrorClass::Capacity,
            "ResourcesSoldOut.CvmSoldOut",
            "The CVM is sold out."
        )
    );
    cloud.scale_out(&req).await.expect("then accepted");
    assert_eq!(env.model.writes().len(), 1);
}

#[tokio::test]
async fn wrong_credentials_are_auth_errors_sent_once() {
    let env = Env::start(3, 0).await;
    let wrong_key = env.client_with(creds(SECRET_ID, "not-the-secret-key"), options(20));
    let err = wrong_key.observe().await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "AuthFailure.SignatureFailure")
    );
    assert!(!err.to_string().contains("not-the-secret-key"));
    let err = wrong_key
        .scale_out(&request(NodeGroup::Task, 1, "cs-auth"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Auth);
    assert_eq!(
        env.journal().len(),
        2,
        "one call per attempt: the client does not retry auth errors"
    );
    assert!(env.model.writes().is_empty());

    let wrong_id = env.client_with(creds("AKIDunknown", SECRET_KEY), options(20));
    let err = wrong_id.observe().await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "AuthFailure.SecretIdNotFound")
    );
    assert_eq!(env.journal().len(), 3);
}

#[tokio::test]
async fn clock_skew_is_signature_expire_with_a_hint() {
    let env = Env::start(3, 0).await;
    let skewed = Arc::new(ManualClock::new(
        Timestamp::now() - jiff::SignedDuration::from_secs(6 * 60),
    ));
    let cloud = env.client_with(
        creds(SECRET_ID, SECRET_KEY),
        TencentOptions {
            clock: skewed.clone() as Arc<dyn Clock>,
            ..options(20)
        },
    );
    let err = cloud.observe().await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "AuthFailure.SignatureExpire")
    );
    assert!(err.message.contains("clock"), "{}", err.message);
    skewed.advance(Duration::from_secs(2 * 60));
    cloud
        .observe()
        .await
        .expect("four minutes off is inside the window");
}

#[tokio::test]
async fn session_token_is_sent_as_x_tc_token() {
    let env = Env::start_with(3, 0, |c| {
        c.token = Some(clusterscale_core::cloud::credentials::SecretString::new(
            "sts-token-1",
        ))
    })
    .await;
    let without = env.client();
    let err = without.observe().await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "AuthFailure.TokenFailure")
    );
    let with = env.client_with(
        creds(SECRET_ID, SECRET_KEY).with("token", "sts-token-1"),
        options(20),
    );
    with.observe().await.expect("token accepted");
    let shown = format!("{with:?}");
    assert!(
        !shown.contains("sts-token-1") && !shown.contains(SECRET_KEY),
        "{shown}"
    );
}

/// Requests per calendar second of the fake's clock, per action.
fn per_second(journal: &[JournalLine]) -> BTreeMap<(String, i64), usize> {
    let mut counts = BTreeMap::new();
    for line in journal {
        *counts
            .entry((line.action.clone(), line.at.as_second()))
            .or_insert(0) += 1;
    }
    counts
}

/// The fake throttles above `FAKE_LIMIT` requests of one action in any
/// sliding second; the client is configured one below it. (At exactly equal
/// rates, transport jitter of a millisecond can squeeze N+1 arrivals into one
/// second of a strict server window, so an operator should leave a margin.)
#[tokio::test]
async fn client_rate_limit_keeps_every_second_under_the_fake_throttle() {
    const FAKE_LIMIT: u32 = 5;
    const CLIENT_LIMIT: u32 = 4;
    let env = Env::start_with(3, 0, |c| {
        c.options.faults.throttle_per_second = Some(FAKE_LIMIT);
    })
    .await;
    let cloud = Arc::new(env.client_with(creds(SECRET_ID, SECRET_KEY), options(CLIENT_LIMIT)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                cloud.observe().await.expect("never throttled");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let journal = env.journal();
    assert_eq!(journal.len(), 24);
    assert!(
        journal.iter().all(|l| l.outcome == "ok"),
        "no RequestLimitExceeded"
    );
    let worst = per_second(&journal).into_values().max().unwrap();
    assert!(
        worst <= FAKE_LIMIT as usize,
        "a second had {worst} requests of one action"
    );
    // The client's own pace: any CLIENT_LIMIT + 1 consecutive requests of one
    // action span at least a second, give or take 50 ms of transport jitter.
    for action in ["DescribeInstances", "DescribeClusterNodes"] {
        let mut at: Vec<Timestamp> = journal
            .iter()
            .filter(|l| l.action == action)
            .map(|l| l.at)
            .collect();
        at.sort();
        assert_eq!(at.len(), 12);
        for w in at.windows(CLIENT_LIMIT as usize + 1) {
            let span = w[w.len() - 1].duration_since(w[0]);
            assert!(
                span >= jiff::SignedDuration::from_millis(950),
                "{action}: {} requests in {span:?}",
                w.len()
            );
        }
    }
    // 12 requests per action at 4/s take at least 11/4 seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(2700),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fake_throttle_answers_request_limit_exceeded() {
    let env = Env::start_with(3, 0, |c| {
        c.options.faults.throttle_per_second = Some(2);
    })
    .await;
    // A client allowed far more than the fake accepts.
    let cloud = Arc::new(env.client_with(creds(SECRET_ID, SECRET_KEY), options(1000)));
    let results: Vec<Result<(), CloudError>> = futures::future::join_all((0..6).map(|_| {
        let cloud = cloud.clone();
        async move { cloud.describe_cluster().await.map(|_| ()) }
    }))
    .await;
    let throttled: Vec<&CloudError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!throttled.is_empty());
    assert!(throttled
        .iter()
        .all(|e| e.class == ErrorClass::Throttled && e.code == "RequestLimitExceeded"));
}

#[tokio::test]
async fn control_routes_drive_a_fake_over_http() {
    let env = Env::start(3, 0).await;
    let http = reqwest::Client::new();
    let faults: FakeFaults = http
        .put(format!("{}/_fake/faults", env.endpoint))
        .json(&serde_json::json!({"delayMs": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults.delay_ms, 1);
    let status = http
        .post(format!("{}/_fake/inject", env.endpoint))
        .json(&serde_json::json!({"action": "DescribeInstances", "code": "InternalError.CvmError", "message": "cvm down"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let err = env.client().observe().await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Transient, "InternalError.CvmError")
    );
    let journal: Vec<JournalLine> = http
        .get(format!("{}/_fake/journal", env.endpoint))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].outcome, "InternalError.CvmError");
    // Write faults through the same route: every write refused, reads untouched.
    let faults: FakeFaults = http
        .put(format!("{}/_fake/faults", env.endpoint))
        .json(&serde_json::json!({"writeRefusalRate": 1.0, "seed": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((faults.write_refusal_rate, faults.seed), (1.0, Some(3)));
    let cloud = env.client();
    assert_eq!(cloud.observe().await.unwrap().core, 3);
    let e = cloud
        .scale_out(&request(NodeGroup::Core, 1, "tok-ctl"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.effect),
        ("InternalError", clusterscale_core::cloud::Effect::Refused)
    );
    assert!(env.model.writes().is_empty());
}

/// A one-route server that records the request and answers `answer`.
async fn capture_server(answer: &'static str) -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body));
                answer
            }
        }),
    );
    let (listener, base) = common::listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test]
async fn malformed_answer_names_the_action_and_request_id() {
    let (base, _) = capture_server(
        r#"{"Response":{"TotalCnt":1,"ClusterList":"not a list","RequestId":"req-malformed-1"}}"#,
    )
    .await;
    let spec = spec(&base);
    let cloud = TencentCloud::new(&spec, &creds(SECRET_ID, SECRET_KEY), options(20)).unwrap();
    let err = cloud.observe().await.unwrap_err();
    assert_eq!(err.code, "MalformedResponse");
    assert_eq!(
        (err.action.as_str(), err.request_id.as_deref()),
        ("DescribeInstances", Some("req-malformed-1"))
    );
    let shown = err.to_string();
    assert!(
        shown.contains("DescribeInstances") && shown.contains("req-malformed-1"),
        "{shown}"
    );
}

/// The exact wire format: headers, body bytes of the SDK vector, and a
/// signature over exactly what was sent.
#[tokio::test]
async fn client_sends_the_sdk_wire_format() {
    let (base, seen) =
        capture_server(r#"{"Response":{"TotalCnt":0,"ClusterList":[],"RequestId":"r"}}"#).await;
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    let mut spec = spec(&base);
    spec.instance_id = "emr-abcd1234".into();
    let cloud = TencentCloud::new(
        &spec,
        &creds(SECRET_ID, SECRET_KEY).with("token", "sts-x"),
        TencentOptions {
            clock,
            ..options(20)
        },
    )
    .unwrap();
    let err = cloud.observe().await.unwrap_err();
    assert_eq!(err.code, "ClusterScale.InstanceNotListed");
    let (headers, body) = seen.lock().unwrap()[0].clone();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        &body[..],
        br#"{"InstanceIds":["emr-abcd1234"],"DisplayStrategy":"clusterList","Offset":0,"Limit":10,"ProjectId":-1}"#,
        "the body of SDK vector 1"
    );
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("host"), base.trim_start_matches("http://"));
    assert_eq!(h("x-tc-action"), "DescribeInstances");
    assert_eq!(h("x-tc-version"), "2019-01-03");
    assert_eq!(h("x-tc-timestamp"), "1700000000");
    assert_eq!(h("x-tc-region"), "ap-guangzhou");
    assert_eq!(h("x-tc-token"), "sts-x");
    let auth = sign::parse_authorization(&h("authorization")).expect("TC3 authorization");
    assert_eq!(
        (
            auth.secret_id.as_str(),
            auth.date.as_str(),
            auth.service.as_str()
        ),
        (SECRET_ID, "2023-11-14", "emr")
    );
    assert_eq!(auth.signed_headers, ["content-type", "host"]);
    sign::verify(
        &auth,
        SECRET_KEY,
        1_700_000_000,
        |n| headers.get(n).and_then(|v| v.to_str().ok()),
        &body,
    )
    .expect("signature over the exact bytes and Host sent");
}

/// A change made to a signed request's headers.
type HeaderTweak = fn(&mut HeaderMap);

/// Send `body` as `action`, signed as the SDK signs; `tweak` may then change
/// headers (unsigned X-TC-* headers keep the signature valid).
async fn raw(
    env: &Env,
    action: &str,
    body: &serde_json::Value,
    tweak: impl FnOnce(&mut HeaderMap),
) -> serde_json::Value {
    let payload = serde_json::to_vec(body).unwrap();
    let host = env.endpoint.trim_start_matches("http://");
    let timestamp = Timestamp::now().as_second();
    let signature = sign::sign(&sign::SigningInput {
        secret_id: SECRET_ID,
        secret_key: SECRET_KEY,
        service: "emr",
        host,
        content_type: "application/json",
        timestamp,
        payload: &payload,
    })
    .unwrap();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, value.parse().unwrap());
    };
    set("content-type", "application/json".into());
    set("authorization", signature.authorization);
    set("x-tc-action", action.into());
    set("x-tc-version", "2019-01-03".into());
    set("x-tc-timestamp", timestamp.to_string());
    set("x-tc-region", "ap-guangzhou".into());
    tweak(&mut headers);
    let response = reqwest::Client::new()
        .post(format!("{}/", env.endpoint))
        .headers(headers)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "errors arrive in HTTP 200 bodies");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(answer["Response"]["RequestId"].is_string(), "{answer}");
    answer
}

fn error_code(answer: &serde_json::Value) -> &str {
    answer["Response"]["Error"]["Code"].as_str().unwrap_or("ok")
}

#[tokio::test]
async fn fake_validates_requests_like_the_real_endpoint() {
    use serde_json::json;
    let env = Env::start(3, 1).await;
    let scale = |extra: serde_json::Value| {
        let mut body =
            json!({"TimeUnit": "s", "TimeSpan": 3600, "InstanceId": INSTANCE, "PayMode": 0});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 1, "CoreCount": 1})),
            "InvalidParameter.InvalidCountNum",
        ),
        (
            "ScaleOutInstance",
            scale(json!({})),
            "InvalidParameter.InvalidCount",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 21})),
            "InvalidParameter.InvalidTaskCount",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 1, "TimeUnit": "m"})),
            "InvalidParameter.InvalidTimeUnit",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 1, "TimeSpan": 60})),
            "InvalidParameter.InvalidTimeSpan",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 1, "PayMode": 3})),
            "InvalidParameter.InvalidPaymode",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": 1, "InstanceId": "emr-other"})),
            "ResourceNotFound.InstanceNotFound",
        ),
        (
            "ScaleOutInstance",
            json!({"TaskCount": 1}),
            "MissingParameter",
        ),
        (
            "ScaleOutInstance",
            scale(json!({"TaskCount": "one"})),
            "InvalidParameter",
        ),
        (
            "DescribeClusterNodes",
            json!({"InstanceId": INSTANCE, "NodeFlag": "all", "Limit": 101}),
            "InvalidParameter",
        ),
        (
            "DescribeInstances",
            json!({"DisplayStrategy": "monitorManage"}),
            "InvalidParameter.DisplayStrategyNotMatch",
        ),
        (
            "TerminateTasks",
            json!({"InstanceId": INSTANCE, "ResourceIds": ["emr-vm-nothere"]}),
            "InvalidParameter.InvalidResourceIds",
        ),
        (
            "TerminateClusterNodes",
            json!({"InstanceId": INSTANCE, "CvmInstanceIds": ["ins-00000001"], "NodeFlag": "MASTER"}),
            "InvalidParameter.InvalidNodeFlag",
        ),
        (
            "TerminateClusterNodes",
            json!({"InstanceId": INSTANCE, "CvmInstanceIds": ["ins-nothere"], "NodeFlag": "TASK"}),
            "ResourceNotFound.CvmInstanceNotFound",
        ),
        (
            "DescribeClusterFlowStatusDetail",
            json!({"InstanceId": INSTANCE, "FlowParam": {"FKey": "FlowId", "FValue": "424242"}}),
            "InvalidParameter.InvalidJobFlow",
        ),
        ("RunJobFlow", json!({}), "InvalidAction"),
    ];
    for (action, body, expected) in &cases {
        let answer = raw(&env, action, body, |_| {}).await;
        assert_eq!(error_code(&answer), *expected, "{action} {body}: {answer}");
    }
    let body = json!({"DisplayStrategy": "clusterList", "InstanceIds": [INSTANCE]});
    let header_cases: Vec<(&str, HeaderTweak)> = vec![
        ("NoSuchVersion", |h| {
            h.insert("x-tc-version", "2017-03-12".parse().unwrap());
        }),
        ("MissingParameter", |h| {
            h.remove("x-tc-region");
        }),
        ("AuthFailure.InvalidAuthorization", |h| {
            h.remove("authorization");
        }),
        ("AuthFailure.SignatureFailure", |h| {
            h.insert(
                "content-type",
                "application/json; charset=utf-8".parse().unwrap(),
            );
        }),
    ];
    for (expected, tweak) in header_cases {
        let answer = raw(&env, "DescribeInstances", &body, tweak).await;
        assert_eq!(error_code(&answer), expected, "{answer}");
    }
    let other = raw(
        &env,
        "DescribeInstances",
        &json!({"DisplayStrategy": "clusterList", "InstanceIds": ["emr-other"]}),
        |_| {},
    )
    .await;
    assert_eq!(
        (
            other["Response"]["TotalCnt"].as_i64(),
            other["Response"]["ClusterList"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    assert!(env.model.writes().is_empty(), "nothing invalid was applied");
}

// --- §1: a refused call is not a lost call ---------------------------------

use clusterscale_core::api::{Outcome, Phase, ScaledClusterSpec, ScaledClusterStatus};
use clusterscale_core::cloud::Effect;
use clusterscale_engine::{reconcile, EngineConfig, MemoryStore, Report, Target};

/// Seed of the write faults (same seed, same faults).
const FAULT_SEED: u64 = 11;

fn engine_spec(env: &Env, core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec::test()
        .tencent(env.spec())
        .counts(core, task)
}

/// One engine pass on the model's (manual) clock.
async fn pass(
    spec: &ScaledClusterSpec,
    status: &ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
) -> Report {
    let target = Target {
        uid: "uid-tencent-http",
        generation: 1,
        spec,
    };
    reconcile(
        target,
        status,
        cloud,
        clock,
        &mut MemoryStore::default(),
        &EngineConfig::default(),
    )
    .await
    .expect("status saved")
}

/// Passes until converged, the clock advanced by each pass's requeue.
async fn converge(
    spec: &ScaledClusterSpec,
    mut status: ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
) -> (Report, Duration, usize) {
    let start = clock.now();
    let mut passes = 0;
    loop {
        passes += 1;
        let r = pass(spec, &status, cloud, clock).await;
        let elapsed = Duration::try_from(start.duration_until(clock.now())).unwrap();
        if r.status.phase == Phase::Converged || elapsed >= Duration::from_secs(900) {
            return (r, elapsed, passes);
        }
        status = r.status.clone();
        clock.advance(r.requeue_after.unwrap_or(Duration::from_secs(10)));
    }
}

const WRITES: &[&str] = &[
    "ScaleOutInstance",
    "TerminateTasks",
    "TerminateClusterNodes",
];

fn write_calls(env: &Env) -> Vec<JournalLine> {
    env.journal()
        .into_iter()
        .filter(|l| WRITES.contains(&l.action.as_str()))
        .collect()
}

/// 30% of scale writes are refused with EMR's own `InternalError` envelope:
/// each refusal ends its operation at once, and the next one (a new
/// ClientToken, planned from a fresh observation) follows after the
/// Transient backoff. Converges within 120 s with exactly the two effective
/// operations (Core out, Task in).
#[tokio::test]
async fn thirty_percent_refused_with_internal_error_converges_within_120s_with_exact_writes() {
    let (env, _fake) = Env::start_full(3, 4, Duration::from_secs(20), |c| {
        c.options.faults = FakeFaults {
            write_refusal_rate: 0.3,
            seed: Some(FAULT_SEED),
            ..Default::default()
        }
    })
    .await;
    let cloud = env.client();
    let spec = engine_spec(&env, 5, 2);
    let (r, elapsed, passes) = converge(&spec, Default::default(), &cloud, &env.model_clock).await;
    let writes = write_calls(&env);
    let refused: Vec<_> = writes
        .iter()
        .filter(|l| l.outcome == "InternalError")
        .collect();
    let applied: Vec<_> = writes.iter().filter(|l| l.write).collect();
    println!(
        "tencent: 30% refusals: converged in {}s of clock ({passes} passes), {} writes sent, {} refused, {} applied",
        elapsed.as_secs(),
        writes.len(),
        refused.len(),
        applied.len()
    );
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    assert!(
        !refused.is_empty(),
        "the seed must refuse at least one write"
    );
    assert!(refused.iter().all(|l| l.http_status == 200 && !l.write));
    assert!(elapsed <= Duration::from_secs(120), "took {elapsed:?}");
    assert_eq!(
        applied.len(),
        2,
        "exactly the operations needed: {writes:?}"
    );
    assert_eq!(env.model.writes().len(), 2);
    // A refused operation is never re-sent with its token: every write
    // carries a token of its own, except that none is repeated.
    let tokens: Vec<_> = writes
        .iter()
        .filter_map(|l| l.params.get("ClientToken").and_then(|t| t.as_str()))
        .collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        tokens.len(),
        distinct.len(),
        "no same-token re-send: {tokens:?}"
    );
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.core, o.task), (5, 2));
}

/// An `InternalError` envelope is a refusal (effect Refused), a bare 504 and
/// a proxy's HTML 502 are unknown.
#[tokio::test]
async fn envelope_is_refused_bare_504_and_html_502_are_unknown() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    for (faults, code, effect) in [
        (
            FakeFaults {
                write_refusal_rate: 1.0,
                ..Default::default()
            },
            "InternalError",
            Effect::Refused,
        ),
        (
            FakeFaults {
                lost_answer_rate: 1.0,
                ..Default::default()
            },
            "ServerNetworkError",
            Effect::Unknown,
        ),
        (
            FakeFaults {
                lost_answer_rate: 1.0,
                lost_answer_reset: true,
                ..Default::default()
            },
            "NetworkError",
            Effect::Unknown,
        ),
        (
            FakeFaults {
                proxy_error_rate: 1.0,
                proxy_error_drops_write: true,
                ..Default::default()
            },
            "ServerNetworkError",
            Effect::Unknown,
        ),
    ] {
        env.control.set_faults(faults);
        let token = format!("t-{code}-{effect:?}");
        let e = cloud
            .scale_out(&request(NodeGroup::Task, 1, &token))
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.effect),
            (ErrorClass::Transient, code, effect),
            "{e}"
        );
        env.finish_operation();
    }
    env.control.set_faults(FakeFaults::default());
    let html = env.journal().into_iter().last().unwrap();
    assert_eq!((html.http_status, html.write), (502, false));
    // Refused: nothing; lost and reset: applied; dropped behind the proxy: nothing.
    assert_eq!(env.model.writes().len(), 2);
}

/// A lost answer (applied, then a bare gateway 504) and an HTML 502 page
/// (applied behind the proxy): the engine keeps the operation pending and
/// re-sends only with the same ClientToken, which EMR deduplicates; no
/// second operation ever starts.
#[tokio::test]
async fn lost_answer_and_html_502_cause_no_duplicate_operation() {
    for (name, faults) in [
        (
            "lost 504",
            FakeFaults {
                lost_answer_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "HTML 502",
            FakeFaults {
                proxy_error_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "connection reset",
            FakeFaults {
                lost_answer_rate: 1.0,
                lost_answer_reset: true,
                ..Default::default()
            },
        ),
    ] {
        let (env, _fake) = Env::start_full(3, 2, Duration::from_secs(20), |_| {}).await;
        env.control.set_faults(faults);
        let cloud = env.client();
        let spec = engine_spec(&env, 3, 4);
        let first = pass(&spec, &Default::default(), &cloud, &env.model_clock).await;
        let e = first.error.clone().expect("no clear answer");
        assert_eq!(e.effect, Effect::Unknown, "{name}: {e}");
        assert!(first.status.pending_operation.is_some(), "{name}");
        env.control.set_faults(FakeFaults::default());
        env.model_clock.advance(Duration::from_secs(10));
        let (r, elapsed, _) = converge(&spec, first.status, &cloud, &env.model_clock).await;
        let writes = write_calls(&env);
        println!(
            "tencent: {name}: converged after {}s more, {} write call(s), {} applied",
            elapsed.as_secs(),
            writes.len(),
            writes.iter().filter(|l| l.write).count()
        );
        assert_eq!(r.status.phase, Phase::Converged, "{name}");
        assert_eq!(
            env.model.writes().len(),
            1,
            "{name}: one operation: {writes:?}"
        );
        assert_eq!(writes.iter().filter(|l| l.write).count(), 1, "{name}");
        let tokens: Vec<_> = writes
            .iter()
            .map(|l| {
                l.params["ClientToken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert!(
            tokens.iter().all(|t| *t == tokens[0]),
            "{name}: every send of it carries its token: {tokens:?}"
        );
        assert_eq!(
            r.status.last_operation.and_then(|o| o.outcome),
            Some(Outcome::Succeeded),
            "{name}"
        );
    }
}

// --- §3/§4: optional fields, partial stages, nodes that are not ours -------

/// Nodes EMR's auto-scaling added (`AutoFlag` 1) and pod resources
/// (`HardwareResourceType` pod) are listed but never counted toward Core or
/// Task, are reported apart in `status.observed`, and are never chosen for
/// removal, although they are the newest and destroyable.
#[tokio::test]
async fn auto_scaled_and_pod_nodes_are_reported_apart_never_counted_nor_removed() {
    let (env, fake) = Env::start_full(4, 4, Duration::from_secs(20), |_| {}).await;
    fake.add_unmanaged_nodes(NodeGroup::Task, 2, 1);
    fake.add_unmanaged_nodes(NodeGroup::Core, 1, 0);
    let cloud = env.client();
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.core, o.task), (4, 4), "only the managed nodes count");
    assert_eq!(
        (
            o.unmanaged.auto_scaled_core,
            o.unmanaged.auto_scaled_task,
            o.unmanaged.pods
        ),
        (1, 2, 1)
    );
    let unmanaged_ids: Vec<String> = {
        let listed = raw_nodes(&env).await;
        listed
            .iter()
            .filter(|n| n["AutoFlag"] == 1 || n["HardwareResourceType"] == "pod")
            .flat_map(|n| {
                [n["EmrResourceId"].as_str(), n["OrderNo"].as_str()]
                    .into_iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(
        unmanaged_ids.len(),
        4 + 3,
        "3 auto (ids + CVM ids), 1 pod (id only)"
    );
    let mut spec = engine_spec(&env, 3, 2);
    spec.scale_in.allowed = true;
    let (r, _, _) = converge(&spec, Default::default(), &cloud, &env.model_clock).await;
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    let observed = r.status.observed.clone().unwrap();
    assert_eq!((observed.core, observed.task), (3, 2));
    assert_eq!(
        (
            observed.auto_scaled_core,
            observed.auto_scaled_task,
            observed.pod_nodes
        ),
        (Some(1), Some(2), Some(1))
    );
    let removals: Vec<JournalLine> = write_calls(&env)
        .into_iter()
        .filter(|l| l.action != "ScaleOutInstance")
        .collect();
    assert_eq!(removals.len(), 2, "{removals:?}");
    for l in &removals {
        let named = l.params.to_string();
        for id in &unmanaged_ids {
            assert!(!named.contains(id.as_str()), "{id} chosen: {named}");
        }
    }
    // The cloud's own nodes are still there.
    let o = cloud.observe().await.unwrap();
    assert_eq!(
        (
            o.core,
            o.task,
            o.unmanaged.auto_scaled_task,
            o.unmanaged.pods
        ),
        (3, 2, 2, 1)
    );
    // And the CRD status field names, as `kubectl get -o yaml` shows them.
    let shown = serde_json::to_value(&observed).unwrap();
    assert_eq!(
        (
            &shown["autoScaledTask"],
            &shown["autoScaledCore"],
            &shown["podNodes"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
}

/// The raw `NodeList` as the fake lists it.
async fn raw_nodes(env: &Env) -> Vec<serde_json::Value> {
    let answer = raw(
        env,
        "DescribeClusterNodes",
        &serde_json::json!({"InstanceId": INSTANCE, "NodeFlag": "all"}),
        |_| {},
    )
    .await;
    answer["Response"]["NodeList"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The SDK makes `ClusterId`, `Status`, `Flag` and `FlowTotalStatus`
/// optional. An answer without a field the decision does not need still
/// works; without one it needs, the error names the field, the action and
/// the request id.
#[tokio::test]
async fn missing_optional_fields_are_named_with_action_and_request_id() {
    let (env, fake) = Env::start_full(3, 2, Duration::from_secs(20), |_| {}).await;
    let cloud = env.client();
    // Not needed: everything still works.
    fake.omit_fields(&[
        "Ftitle",
        "ClusterName",
        "Config",
        "ApplyTime",
        "Destroyable",
        "AutoFlag",
        "HardwareResourceType",
        "FlowName",
        "StageDetails",
    ]);
    let o = cloud.observe().await.unwrap();
    assert_eq!(
        (o.state.clone(), o.core, o.task),
        (ClusterState::Running, 3, 2)
    );
    for (field, action, named) in [
        ("Status", "DescribeInstances", "ClusterInstancesInfo.Status"),
        (
            "ClusterId",
            "DescribeInstances",
            "ClusterInstancesInfo.ClusterId",
        ),
        ("Flag", "DescribeClusterNodes", "NodeHardwareInfo.Flag"),
    ] {
        fake.omit_fields(&[field]);
        let e = cloud.observe().await.unwrap_err();
        let last = env.calls(action).last().cloned().unwrap();
        assert_eq!(e.action, action, "{field}: {e}");
        assert_eq!(
            e.request_id.as_deref(),
            Some(last.request_id.as_str()),
            "{field}"
        );
        let shown = e.to_string();
        assert!(
            shown.contains(named) && shown.contains(action) && shown.contains(&last.request_id),
            "{field}: {shown}"
        );
    }
    fake.omit_fields(&[]);
    let sub = cloud
        .scale_out(&request(NodeGroup::Task, 1, "tok-flow"))
        .await
        .unwrap();
    let op = record(&sub, NodeGroup::Task, Direction::Out);
    fake.omit_fields(&["FlowTotalStatus"]);
    let e = cloud.operation_status(&op).await.unwrap_err();
    let last = env
        .calls("DescribeClusterFlowStatusDetail")
        .last()
        .cloned()
        .unwrap();
    assert_eq!(e.request_id.as_deref(), Some(last.request_id.as_str()));
    assert!(
        e.to_string().contains("FlowTotalStatus")
            && e.to_string().contains("DescribeClusterFlowStatusDetail"),
        "{e}"
    );
    // The engine still decides from state and counts.
    fake.omit_fields(&["FlowTotalStatus"]);
    let spec = engine_spec(&env, 3, 3);
    let mut status = ScaledClusterStatus::default();
    let mut pending = op.clone();
    pending.accepted = true;
    pending.from_count = 2;
    pending.to_count = 3;
    status.pending_operation = Some(Box::new(pending));
    env.finish_operation();
    let r = pass(&spec, &status, &cloud, &env.model_clock).await;
    assert_eq!(
        r.finished.and_then(|f| f.outcome),
        Some(Outcome::Succeeded),
        "counts decide without FlowTotalStatus"
    );
}

/// `StageInfoDetail.Status` 3 is "partially completed": the operation is
/// over, the counts decide; reached, it succeeds and says it was partial.
#[tokio::test]
async fn partially_completed_stage_is_decided_by_the_counts() {
    let (env, fake) = Env::start_full(3, 2, Duration::from_secs(20), |_| {}).await;
    fake.report_partial_stages(true);
    let cloud = env.client();
    let sub = cloud
        .scale_out(&request(NodeGroup::Task, 2, "tok-partial"))
        .await
        .unwrap();
    env.finish_operation();
    let op = record(&sub, NodeGroup::Task, Direction::Out);
    match cloud.operation_status(&op).await.unwrap() {
        OperationProgress::PartiallyCompleted(m) => assert!(
            m.contains("Apply For Resource") && m.contains("partially completed"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let spec = engine_spec(&env, 3, 4);
    let mut status = ScaledClusterStatus::default();
    let mut pending = op;
    pending.accepted = true;
    pending.from_count = 2;
    pending.to_count = 4;
    status.pending_operation = Some(Box::new(pending));
    let r = pass(&spec, &status, &cloud, &env.model_clock).await;
    let done = r.finished.expect("resolved");
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    assert!(
        done.message
            .unwrap_or_default()
            .contains("partially completed"),
        "the partial completion is said"
    );
}

/// The 30% run over ten seeds: every run converges within 120 s with exactly
/// the two effective operations, whatever the refusals fall on.
#[tokio::test]
async fn thirty_percent_refusals_over_ten_seeds() {
    let (mut worst, mut refusals, mut sent) = (Duration::ZERO, 0, 0);
    for seed in 1..=10u64 {
        let (env, _fake) = Env::start_full(3, 4, Duration::from_secs(20), |c| {
            c.options.faults = FakeFaults {
                write_refusal_rate: 0.3,
                seed: Some(seed),
                ..Default::default()
            }
        })
        .await;
        let cloud = env.client();
        let spec = engine_spec(&env, 5, 2);
        let (r, elapsed, _) = converge(&spec, Default::default(), &cloud, &env.model_clock).await;
        let writes = write_calls(&env);
        assert_eq!(r.status.phase, Phase::Converged, "seed {seed}");
        assert!(
            elapsed <= Duration::from_secs(120),
            "seed {seed}: {elapsed:?}"
        );
        assert_eq!(writes.iter().filter(|l| l.write).count(), 2, "seed {seed}");
        assert_eq!(env.model.writes().len(), 2, "seed {seed}");
        worst = worst.max(elapsed);
        refusals += writes
            .iter()
            .filter(|l| l.outcome == "InternalError")
            .count();
        sent += writes.len();
    }
    println!(
        "tencent: 30% refusals, 10 seeds: worst {}s of clock, {refusals} of {sent} writes refused, 20 applied",
        worst.as_secs()
    );
    assert!(refusals >= 3, "the seeds refuse some: {refusals} of {sent}");
}

/// A multi-instance fake (`TencentFake::fleet`) on 127.0.0.1; its instances
/// `emr-fleet00000`... are made on first use.
async fn start_fleet(n: usize, faults: FakeFaults) -> (Arc<TencentFake>, String, Arc<ManualClock>) {
    let model_clock = Arc::new(ManualClock::new(Timestamp::now()));
    let clock = model_clock.clone();
    let ids = clusterscale_fakes::cli::tencent_fleet_ids("fleet", n).unwrap();
    let make: clusterscale_fakes::tencent::ModelFactory =
        Arc::new(move |id: &str| common::model(id, 3, 0, OP_TIME, clock.clone()));
    let mut config = TencentFakeConfig::new(SECRET_ID, SECRET_KEY);
    config.options.faults = faults;
    let fake = TencentFake::fleet(ids, make, config).expect("fleet");
    let (listener, endpoint) = common::listen().await;
    let router = fake.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (Arc::new(fake), endpoint, model_clock)
}

fn fleet_client(endpoint: &str, instance: &str, per_second: u32) -> TencentCloud {
    let mut s = spec(endpoint);
    s.instance_id = instance.into();
    TencentCloud::new(&s, &creds(SECRET_ID, SECRET_KEY), options(per_second)).expect("client")
}

#[tokio::test]
async fn fleet_instances_are_independent_clusters_of_one_account() {
    let (fake, endpoint, clock) = start_fleet(3, FakeFaults::default()).await;
    let a = fleet_client(&endpoint, "emr-fleet00000", 20);
    let b = fleet_client(&endpoint, "emr-fleet00002", 20);
    a.scale_out(&request(NodeGroup::Task, 2, "fleet-a"))
        .await
        .expect("scale out a");
    let (oa, ob) = (a.observe().await.unwrap(), b.observe().await.unwrap());
    assert_eq!(oa.state, ClusterState::Busy("4 scaling out".into()));
    assert_eq!((ob.state, ob.core, ob.task), (ClusterState::Running, 3, 0));
    // b is not busy with a's operation: its own write is accepted.
    b.scale_out(&request(NodeGroup::Core, 1, "fleet-b"))
        .await
        .expect("scale out b");
    clock.advance(OP_TIME + Duration::from_secs(1));
    let (oa, ob) = (a.observe().await.unwrap(), b.observe().await.unwrap());
    assert_eq!((oa.core, oa.task, ob.core, ob.task), (3, 2, 4, 0));
    // The same ClientToken on another instance is another operation.
    b.scale_out(&request(NodeGroup::Task, 1, "fleet-a"))
        .await
        .expect("b reuses a's token");
    let models = fake.models();
    let ids: Vec<&str> = models.iter().map(|m| m.id()).collect();
    assert_eq!(
        ids,
        ["emr-fleet00000", "emr-fleet00002"],
        "made on first use"
    );
    assert_eq!(
        models.iter().map(|m| m.writes().len()).collect::<Vec<_>>(),
        [1, 2]
    );
    // An id outside the fleet is not found; the journal is the account's.
    let e = fleet_client(&endpoint, "emr-fleet00003", 20)
        .observe()
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    let journal = fake.control().journal();
    let writes: Vec<&str> = journal
        .iter()
        .filter(|l| l.write)
        .map(|l| l.params["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(
        writes,
        ["emr-fleet00000", "emr-fleet00002", "emr-fleet00002"]
    );
}

#[tokio::test]
async fn fleet_throttle_is_per_action_across_instances() {
    let (fake, endpoint, _) = start_fleet(
        10,
        FakeFaults {
            throttle_per_second: Some(5),
            ..Default::default()
        },
    )
    .await;
    // Clients with no effective limit of their own, one per instance.
    let clients: Vec<TencentCloud> = (0..10)
        .map(|i| fleet_client(&endpoint, &format!("emr-fleet{i:05}"), 1000))
        .collect();
    let started = Instant::now();
    let results = futures::future::join_all(clients.iter().map(|c| c.describe_cluster())).await;
    assert!(started.elapsed() < Duration::from_millis(900), "one window");
    let throttled: Vec<&CloudError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        (results.len() - throttled.len(), throttled.len()),
        (5, 5),
        "5 per second of DescribeInstances for the account, whichever instance: {throttled:?}"
    );
    for e in &throttled {
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (
                ErrorClass::Throttled,
                "RequestLimitExceeded",
                "DescribeInstances"
            )
        );
        assert!(
            e.request_id.is_some(),
            "the real envelope carries a RequestId"
        );
    }
    // Another action has its own window, shared by the same instances.
    let nodes = futures::future::join_all(clients.iter().map(|c| c.describe_nodes())).await;
    assert_eq!(nodes.iter().filter(|r| r.is_ok()).count(), 5);
    let limited = fake
        .control()
        .journal()
        .into_iter()
        .filter(|l| l.outcome == "RequestLimitExceeded")
        .count();
    assert_eq!(limited, 10);
}

fn malformed(kinds: &[Malformed], read: f64, write: f64) -> FakeFaults {
    FakeFaults {
        malformed_read_rate: read,
        malformed_write_rate: write,
        malformed_kinds: kinds.to_vec(),
        seed: Some(1),
        ..Default::default()
    }
}

/// Every malformed read answer is a Transient error naming the action (and
/// the request id where the answer still carries one); unknown fields are
/// accepted.
#[tokio::test]
async fn malformed_reads_are_transient_errors_naming_action_and_request_id() {
    let env = Env::start(3, 1).await;
    let cloud = env.client();
    for kind in Malformed::ALL {
        env.control.set_faults(malformed(&[kind], 1.0, 0.0));
        let got = cloud.observe().await;
        env.control.set_faults(FakeFaults::default());
        let last = env.journal().into_iter().last().unwrap();
        assert!(last.outcome.ends_with(&kind.note()), "{kind:?}: {last:?}");
        if kind == Malformed::UnknownFields {
            let o = got.unwrap_or_else(|e| panic!("unknown fields must be accepted: {e}"));
            assert_eq!((o.core, o.task), (3, 1));
            continue;
        }
        let e = got.expect_err(&format!("{kind:?} must not be taken as an answer"));
        assert_eq!(e.class, ErrorClass::Transient, "{kind:?}: {e}");
        assert_eq!(e.action, "DescribeInstances", "{kind:?}: {e}");
        assert!(e.to_string().contains("DescribeInstances"), "{kind:?}: {e}");
        if matches!(kind, Malformed::WrongType) {
            assert_eq!(
                e.request_id.as_deref(),
                Some(last.request_id.as_str()),
                "{kind:?}: the body still carries its RequestId: {e}"
            );
        }
    }
    // The flow query, too.
    let submitted = cloud
        .scale_out(&request(NodeGroup::Task, 1, "mal-flow"))
        .await
        .unwrap();
    let op = record(&submitted, NodeGroup::Task, Direction::Out);
    for kind in [
        Malformed::WrongType,
        Malformed::Truncated,
        Malformed::Html200,
    ] {
        env.control.set_faults(malformed(&[kind], 1.0, 0.0));
        let e = cloud.operation_status(&op).await.unwrap_err();
        assert_eq!(
            (e.class, e.action.as_str()),
            (ErrorClass::Transient, "DescribeClusterFlowStatusDetail"),
            "{kind:?}: {e}"
        );
    }
}

/// A malformed answer to a write that was applied is an unknown outcome,
/// never a refusal: the retry carries the same ClientToken and the cluster
/// grows once.
#[tokio::test]
async fn malformed_write_answers_are_unknown_and_never_write_twice() {
    for kind in Malformed::ALL {
        let env = Env::start(3, 0).await;
        let cloud = env.client();
        env.control.set_faults(malformed(&[kind], 0.0, 1.0));
        let first = cloud.scale_out(&request(NodeGroup::Task, 2, "mal-w")).await;
        assert_eq!(env.model.writes().len(), 1, "{kind:?}: applied once");
        match (kind, &first) {
            (Malformed::UnknownFields, Ok(s)) => assert!(s.trace_id.is_some()),
            (Malformed::UnknownFields, Err(e)) => panic!("unknown fields must be accepted: {e}"),
            (_, Ok(s)) => panic!("{kind:?} taken as an answer: {s:?}"),
            (_, Err(e)) => {
                assert_eq!(e.effect, Effect::Unknown, "{kind:?}: {e}");
                assert_eq!(e.action, "ScaleOutInstance", "{kind:?}: {e}");
            }
        }
        // The engine's retry: the same token, answered by the first flow.
        env.control.set_faults(FakeFaults::default());
        cloud
            .scale_out(&request(NodeGroup::Task, 2, "mal-w"))
            .await
            .expect("retry with the same token");
        env.finish_operation();
        let o = cloud.observe().await.unwrap();
        assert_eq!((o.core, o.task), (3, 2), "{kind:?}: grew once");
        assert_eq!(env.model.writes().len(), 1, "{kind:?}: one operation");
    }
}

#[tokio::test]
async fn malformed_answers_follow_the_seed_and_the_rate() {
    let env = Env::start(3, 0).await;
    let cloud = env.client();
    let run = |seed: u64| FakeFaults {
        malformed_read_rate: 0.3,
        seed: Some(seed),
        ..Default::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        env.control.set_faults(run(42));
        let before = env.journal().len();
        for _ in 0..40 {
            let _ = cloud.describe_cluster().await;
        }
        outcomes.push(
            env.journal()[before..]
                .iter()
                .map(|l| l.outcome.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(outcomes[0], outcomes[1], "same seed, same answers");
    let spoiled = outcomes[0]
        .iter()
        .filter(|o| o.contains("malformed"))
        .count();
    assert!((4..=22).contains(&spoiled), "{spoiled} of 40 at 30%");
}
