//! The Huawei MRS client against the in-process fake MRS + IAM, over real
//! HTTP on 127.0.0.1, with real signatures and tokens.
//!
//! The model runs on a manual clock (operations finish when a test says so);
//! signatures and tokens use the wall clock on both sides.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clusterscale_core::api::{
    HuaweiSpec, HuaweiTaskNodeSpec, NodeGroup, Outcome, Phase, ScaledClusterSpec,
    ScaledClusterStatus,
};
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::{Cloud, ClusterState, ErrorClass, OperationProgress, ScaleRequest};
use clusterscale_engine::{reconcile, EngineConfig, MemoryStore, Report, Target};
use clusterscale_fakes::huawei::{
    FakeAccessKey, FakeUser, HostStyle, HuaweiFake, HuaweiFakeConfig, ACTION_HOSTS, ACTION_RESIZE,
    ACTION_SHOW, ACTION_TOKEN,
};
use clusterscale_fakes::JournalLine;
use clusterscale_huawei::wire::{ClusterDetail, ClusterDetailResponse, NodeGroupV10};
use clusterscale_huawei::HuaweiCloud;
use clusterscale_sim::SimModel;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const CLUSTER: &str = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d";
const SK: &str = "HwTestSecretKey000000000000000000000000001";
const USER: &str = "ops";
const PASSWORD: &str = "correct horse battery staple";
const DOMAIN: &str = "acme";
const OP_TIME: Duration = Duration::from_secs(30);

struct Env {
    fake: HuaweiFake,
    model: Arc<SimModel>,
    clock: Arc<ManualClock>,
    spec: HuaweiSpec,
    /// This test's AK (each test has its own, so rate limits and hold-offs never mix).
    ak: String,
}

async fn start(name: &str, core: i32, task: i32) -> Env {
    start_with(name, core, task, |_| {}).await
}

async fn start_with(
    name: &str,
    core: i32,
    task: i32,
    tweak: impl FnOnce(&mut HuaweiFakeConfig),
) -> Env {
    start_full(name, core, task, OP_TIME, tweak).await
}

async fn start_full(
    name: &str,
    core: i32,
    task: i32,
    op_time: Duration,
    tweak: impl FnOnce(&mut HuaweiFakeConfig),
) -> Env {
    let clock = Arc::new(ManualClock::default());
    let model = common::model("mrs-test", core, task, op_time, clock.clone());
    let ak = format!("HWTESTAK{}", name.to_ascii_uppercase().replace('_', ""));
    let mut config = HuaweiFakeConfig {
        project_id: Some(PROJECT.into()),
        cluster_id: Some(CLUSTER.into()),
        access_keys: vec![FakeAccessKey {
            access_key: ak.clone(),
            secret_key: SK.into(),
            security_token: None,
        }],
        users: vec![FakeUser {
            username: format!("{USER}-{name}"),
            password: PASSWORD.into(),
            domain_name: DOMAIN.into(),
        }],
        ..HuaweiFakeConfig::default()
    };
    tweak(&mut config);
    let fake = HuaweiFake::new(model.clone(), config).expect("fake starts");
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.clone().serve(listener));
    let spec = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(base.clone())
        .iam_endpoint(base);
    Env {
        fake,
        model,
        clock,
        spec,
        ak,
    }
}

impl Env {
    fn aksk(&self) -> Credentials {
        Credentials::new("test secret")
            .with("accessKey", &self.ak)
            .with("secretKey", SK)
    }

    fn password(&self, name: &str) -> Credentials {
        Credentials::new("test secret")
            .with("username", format!("{USER}-{name}"))
            .with("password", PASSWORD)
            .with("domainName", DOMAIN)
    }

    fn client(&self, creds: &Credentials) -> HuaweiCloud {
        HuaweiCloud::new(&self.spec, creds).expect("client builds")
    }

    fn finish_operation(&self) {
        self.clock.advance(OP_TIME);
    }

    fn lines(&self, action: &str) -> Vec<JournalLine> {
        self.fake
            .journal()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    fn resizes(&self) -> Vec<JournalLine> {
        self.lines(ACTION_RESIZE)
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

async fn scale_all_ways(env: &Env, cloud: &HuaweiCloud) {
    let o = cloud.observe().await.expect("observe");
    assert_eq!(
        (o.state.clone(), o.core, o.task),
        (ClusterState::Running, 4, 2)
    );

    let sub = cloud
        .scale_out(&req(NodeGroup::Core, 2, 4, "op-1"))
        .await
        .expect("core out");
    assert!(sub.request_id.is_some(), "the X-Request-Id is kept");
    assert!(matches!(
        cloud.observe().await.unwrap().state,
        ClusterState::Busy(_)
    ));
    env.finish_operation();
    assert_eq!(cloud.observe().await.unwrap().core, 6);

    cloud
        .scale_in(&req(NodeGroup::Task, 1, 2, "op-2"))
        .await
        .expect("task in");
    env.finish_operation();
    assert_eq!(cloud.observe().await.unwrap().task, 1);

    cloud
        .scale_in(&req(NodeGroup::Core, 2, 6, "op-3"))
        .await
        .expect("core in");
    env.finish_operation();
    assert_eq!(cloud.observe().await.unwrap().core, 4);

    cloud
        .scale_out(&req(NodeGroup::Task, 3, 1, "op-4"))
        .await
        .expect("task out");
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.state, o.core, o.task), (ClusterState::Running, 4, 4));

    let resizes = env.resizes();
    assert_eq!(resizes.len(), 4);
    assert!(resizes
        .iter()
        .all(|l| l.write && l.outcome == "ok" && l.http_status == 200));
    let params: Vec<(String, String, i64)> = resizes
        .iter()
        .map(|l| {
            let p = &l.params["body"]["parameters"];
            (
                p["scale_type"].as_str().unwrap().to_string(),
                p["node_group"].as_str().unwrap().to_string(),
                p["instances"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        params,
        vec![
            ("scale_out".into(), "core_node_analysis_group".into(), 2),
            ("scale_in".into(), "task_node_analysis_group".into(), 1),
            ("scale_in".into(), "core_node_analysis_group".into(), 2),
            ("scale_out".into(), "task_node_analysis_group".into(), 3),
        ],
        "node groups are the cluster's own names"
    );
    let body = &resizes[0].params["body"];
    assert_eq!(body["service_id"], "");
    assert_eq!(body["plan_id"], "");
    assert_eq!(body["previous_values"]["plan_id"], "");
    assert_eq!(body["parameters"]["node_id"], "node_orderadd");
    assert_eq!(body["parameters"]["order_id"], "");
    // skip_bootstrap_scripts only when true; scale_without_start on scale-out only.
    assert!(body["parameters"].get("skip_bootstrap_scripts").is_none());
    assert_eq!(body["parameters"]["scale_without_start"], false);
    for scale_in in [&resizes[1], &resizes[2]] {
        let p = &scale_in.params["body"]["parameters"];
        assert_eq!(p["scale_type"], "scale_in");
        assert!(
            p.get("skip_bootstrap_scripts").is_none() && p.get("scale_without_start").is_none(),
            "no flag on scale-in: {p}"
        );
    }
    assert!(body["parameters"].get("task_node_info").is_none());
    assert!(body["parameters"].get("server_ids").is_none());
    assert_eq!(env.model.writes().len(), 4);
}

#[tokio::test]
async fn aksk_scale_out_and_in_core_and_task() {
    let env = start("aksk_all", 4, 2).await;
    let cloud = env.client(&env.aksk());
    assert_eq!(cloud.auth_mode(), "ak-sk");
    scale_all_ways(&env, &cloud).await;
    assert!(env.lines(ACTION_TOKEN).is_empty());
    assert!(env
        .fake
        .journal()
        .iter()
        .all(|l| l.params["principal"] == format!("ak:{}", env.ak)));
}

#[tokio::test]
async fn token_scale_out_and_in_core_and_task() {
    let env = start("token_all", 4, 2).await;
    let cloud = env.client(&env.password("token_all"));
    assert_eq!(cloud.auth_mode(), "token");
    scale_all_ways(&env, &cloud).await;
    assert_eq!(cloud.tokens_fetched(), 1, "the token is cached");
    let tokens = env.lines(ACTION_TOKEN);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].http_status, 201);
    assert!(
        !tokens[0].params.to_string().contains(PASSWORD),
        "the journal never shows the password"
    );
    assert!(env
        .fake
        .journal()
        .iter()
        .filter(|l| l.action != ACTION_TOKEN)
        .all(|l| l.params["principal"] == "token"));
}

#[tokio::test]
async fn security_token_is_sent_and_signed() {
    let env = start_with("sts", 3, 0, |c| {
        c.access_keys[0].security_token = Some("sts-token-value".into())
    })
    .await;
    let with = env.aksk().with("securityToken", "sts-token-value");
    env.client(&with)
        .observe()
        .await
        .expect("temporary credentials work");
    let without = env.client(&env.aksk()).with_auth_hold_off(Duration::ZERO);
    let e = without.observe().await.unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "APIGW.0301"));
}

#[tokio::test]
async fn task_zero_to_n_sends_task_node_info() {
    let mut env = start("zero_to_n", 3, 0).await;
    env.spec.task_node_spec = Some(HuaweiTaskNodeSpec {
        node_size: "c6.4xlarge.4.linux.bigdata".into(),
        data_volume_type: "SSD".into(),
        data_volume_count: 2,
        data_volume_size: 800,
    });
    let cloud = env.client(&env.aksk());
    let o = cloud.observe().await.unwrap();
    assert_eq!(o.task, 0);
    cloud
        .scale_out(&req(NodeGroup::Task, 2, 0, "op-1"))
        .await
        .expect("0 -> 2");
    let body = &env.resizes()[0].params["body"]["parameters"];
    assert_eq!(
        body["node_group"], "task_node_analysis_group",
        "named after the Core group"
    );
    assert_eq!(
        body["task_node_info"]["node_size"],
        "c6.4xlarge.4.linux.bigdata"
    );
    assert_eq!(body["task_node_info"]["data_volume_type"], "SSD");
    assert_eq!(body["task_node_info"]["data_volume_count"], 2);
    assert_eq!(body["task_node_info"]["data_volume_size"], 800);
    env.finish_operation();
    assert_eq!(cloud.observe().await.unwrap().task, 2);
    // Growing an existing Task group sends no task_node_info.
    cloud
        .scale_out(&req(NodeGroup::Task, 1, 2, "op-2"))
        .await
        .unwrap();
    assert!(env.resizes()[1].params["body"]["parameters"]
        .get("task_node_info")
        .is_none());
}

#[tokio::test]
async fn task_zero_to_n_without_spec_is_invalid_before_any_call() {
    let env = start("zero_no_spec", 3, 0).await;
    let cloud = env.client(&env.aksk());
    cloud.observe().await.unwrap();
    let before = env.fake.requests();
    let e = cloud
        .scale_out(&req(NodeGroup::Task, 2, 0, "op-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "TaskNodeSpecMissing")
    );
    assert!(
        e.message.contains("spec.huawei.taskNodeSpec"),
        "{}",
        e.message
    );
    assert_eq!(env.fake.requests(), before, "no request at all");
    // The fake refuses the same thing with 12000002 when a client skips the check.
    assert!(env.resizes().is_empty());
}

#[tokio::test]
async fn server_ids_are_honoured() {
    let env = start("server_ids", 3, 4).await;
    let cloud = env.client(&env.aksk());
    let hosts = cloud.list_hosts().await.unwrap();
    let task_ids: Vec<String> = hosts
        .iter()
        .filter(|h| h.host_type == "TaskNode")
        .map(|h| h.id.clone())
        .collect();
    assert_eq!(task_ids.len(), 4);
    cloud.observe().await.unwrap();
    let mut r = req(NodeGroup::Task, 2, 4, "op-1");
    r.prefer_nodes = vec![
        task_ids[1].clone(),
        "no-such-node".into(),
        task_ids[1].clone(),
    ];
    let sub = cloud.scale_in(&r).await.expect("scale in");
    assert_eq!(sub.node_ids.len(), 2);
    assert_eq!(
        sub.node_ids[0], task_ids[1],
        "the preferred node comes first"
    );
    let sent: Vec<String> = env.resizes()[0].params["body"]["parameters"]["server_ids"]
        .as_array()
        .expect("server_ids sent")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, sub.node_ids);
    env.finish_operation();
    let left: Vec<String> = env
        .model
        .nodes()
        .into_iter()
        .filter(|n| n.group == NodeGroup::Task)
        .map(|n| n.id)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(
        sent.iter().all(|id| !left.contains(id)),
        "exactly the named nodes were removed"
    );
    // Core scale-in never sends server_ids.
    let mut r = req(NodeGroup::Core, 1, 3, "op-2");
    r.prefer_nodes = vec!["whatever".into()];
    let env_core = start("server_ids_core", 4, 0).await;
    let cloud = env_core.client(&env_core.aksk());
    cloud.observe().await.unwrap();
    cloud.scale_in(&r).await.unwrap();
    assert!(env_core.resizes()[0].params["body"]["parameters"]
        .get("server_ids")
        .is_none());
    // No preferred node left: MRS chooses (no server_ids).
    let env_gone = start("server_ids_gone", 3, 2).await;
    let cloud = env_gone.client(&env_gone.aksk());
    cloud.observe().await.unwrap();
    let mut r = req(NodeGroup::Task, 1, 2, "op-3");
    r.prefer_nodes = vec!["long-gone-node".into()];
    let sub = cloud.scale_in(&r).await.unwrap();
    assert!(sub.node_ids.is_empty());
    assert!(env_gone.resizes()[0].params["body"]["parameters"]
        .get("server_ids")
        .is_none());
}

#[tokio::test]
async fn busy_lock_12000018_never_leads_to_a_second_write() {
    let env = start("busy", 4, 0).await;
    let cloud = env.client(&env.aksk());
    cloud.observe().await.unwrap();
    // Somebody else starts a resize after our observation.
    env.model
        .scale_out(NodeGroup::Core, 1, None)
        .expect("other operation");
    let e = cloud
        .scale_out(&req(NodeGroup::Core, 2, 4, "op-1"))
        .await
        .unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Busy, "12000018"));
    assert!(e.request_id.is_some());
    let resizes = env.resizes();
    assert_eq!(resizes.len(), 1, "one PUT, not retried");
    assert!(!resizes[0].write);
    // The next attempt observes first, sees the cluster busy and sends nothing.
    let e = cloud
        .scale_out(&req(NodeGroup::Core, 2, 4, "op-2"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Busy, "PrecheckNotRunning")
    );
    assert_eq!(env.resizes().len(), 1);
    assert_eq!(
        env.model.writes().len(),
        1,
        "only the other operation changed the cluster"
    );
    env.finish_operation();
    cloud
        .scale_out(&req(NodeGroup::Core, 2, 5, "op-3"))
        .await
        .expect("idle again");
    assert_eq!(env.model.writes().len(), 2);
}

#[tokio::test]
async fn not_running_12000017() {
    let env = start("not_running", 4, 0).await;
    let cloud = env.client(&env.aksk());
    cloud.observe().await.unwrap();
    env.fake.set_cluster_state(Some("frozen"));
    let e = cloud
        .scale_out(&req(NodeGroup::Core, 1, 4, "op-1"))
        .await
        .unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Busy, "12000017"));
    assert!(matches!(
        cloud.observe().await.unwrap().state,
        ClusterState::Unavailable(_)
    ));
    assert!(env.model.writes().is_empty());
}

#[tokio::test]
async fn bad_signature_is_reported_without_hot_retries() {
    let env = start("bad_sig", 3, 0).await;
    let wrong = Credentials::new("test secret")
        .with("accessKey", &env.ak)
        .with("secretKey", "not-the-secret-key");
    let cloud = env.client(&wrong);
    let e = cloud.observe().await.unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "APIGW.0301"));
    assert!(e.request_id.is_some());
    for _ in 0..5 {
        let again = cloud.observe().await.unwrap_err();
        assert_eq!(again.class, ErrorClass::Auth);
        assert!(again.message.contains("not sent"), "{}", again.message);
    }
    // Another client with the same wrong credentials is held off too.
    let other = env.client(&wrong);
    assert!(other
        .scale_out(&req(NodeGroup::Task, 1, 0, "x"))
        .await
        .is_err());
    assert_eq!(env.fake.requests(), 1, "one request in all");
    assert_eq!(cloud.requests_sent() + other.requests_sent(), 1);
    // Corrected credentials are used at once.
    env.client(&env.aksk())
        .observe()
        .await
        .expect("good credentials work");
}

#[tokio::test]
async fn fake_locks_an_access_key_after_five_bad_signatures() {
    let env = start("lock", 3, 0).await;
    let wrong = Credentials::new("t")
        .with("accessKey", &env.ak)
        .with("secretKey", "wrong");
    let cloud = env.client(&wrong).with_auth_hold_off(Duration::ZERO);
    for _ in 0..5 {
        assert_eq!(cloud.observe().await.unwrap_err().code, "APIGW.0301");
    }
    assert!(env.fake.is_locked(&env.ak));
    let good = env.client(&env.aksk()).with_auth_hold_off(Duration::ZERO);
    let e = good.observe().await.unwrap_err();
    assert!(e.message.contains("locked"), "{}", e.message);
}

#[tokio::test]
async fn bounds_are_checked_before_any_call() {
    let env = start("bounds", 3, 497).await;
    let cloud = env.client(&env.aksk());
    let o = cloud.observe().await.unwrap();
    assert_eq!(o.core + o.task, 500);
    let after_observe = env.fake.journal().len();
    let e = cloud
        .scale_out(&req(NodeGroup::Task, 1, 497, "op-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "PrecheckMaxTotal")
    );
    assert!(e.message.contains("500"), "{}", e.message);
    let e = cloud
        .scale_out(&req(NodeGroup::Core, 1, 3, "op-2"))
        .await
        .unwrap_err();
    assert_eq!(e.code, "PrecheckMaxTotal");
    let e = cloud
        .scale_in(&req(NodeGroup::Core, 1, 3, "op-3"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "PrecheckMinCore")
    );
    assert!(e.message.contains("at least 3"), "{}", e.message);
    assert_eq!(
        env.fake.journal().len(),
        after_observe,
        "the journal shows no request after the observation"
    );
    assert!(env.model.writes().is_empty());
}

/// MRS allows growth of at most 500 minus the current Core+Task. The planner
/// never plans more than that room, so the client's own pre-check (against
/// the live counts) is tested here directly: one node beyond the room is
/// refused as Invalid with no PUT; exactly the room is sent.
#[tokio::test]
async fn scale_out_beyond_the_room_left_is_refused_without_a_put() {
    let env = start("room", 3, 490).await;
    let cloud = env.client(&env.aksk());
    let o = cloud.observe().await.unwrap();
    assert_eq!(o.core + o.task, 493);
    let after_observe = env.fake.journal().len();
    for (group, from) in [(NodeGroup::Task, 490), (NodeGroup::Core, 3)] {
        let e = cloud
            .scale_out(&req(group, 8, from, "op-over"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.action.as_str()),
            (ErrorClass::Invalid, "PrecheckMaxTotal", "PUT cluster_infos")
        );
        assert!(
            e.message.starts_with("not sent:") && e.message.contains("at most 7 can be added"),
            "{}",
            e.message
        );
        assert!(e.request_id.is_none(), "no request, so no request id");
    }
    assert!(env.resizes().is_empty(), "no PUT: {:?}", env.fake.journal());
    assert_eq!(env.fake.journal().len(), after_observe);
    cloud
        .scale_out(&req(NodeGroup::Task, 7, 490, "op-room"))
        .await
        .expect("exactly the room left");
    let resizes = env.resizes();
    assert_eq!(resizes.len(), 1);
    assert_eq!(resizes[0].params["body"]["parameters"]["instances"], 7);
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.core, o.task), (3, 497));
}

/// A correctly signed raw PUT, bypassing the client's pre-checks.
async fn raw_put(env: &Env, body: serde_json::Value) -> (u16, serde_json::Value) {
    use clusterscale_huawei::sign;
    let base = env.spec.endpoint.clone().unwrap();
    let host = base.trim_start_matches("http://").to_string();
    let path = format!("/v1.1/{PROJECT}/cluster_infos/{CLUSTER}");
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Host".to_string(), host),
        ("X-Project-Id".to_string(), PROJECT.to_string()),
        (
            "X-Sdk-Date".to_string(),
            sign::format_sdk_date(jiff::Timestamp::now()),
        ),
    ];
    let parts = sign::RequestParts {
        method: "PUT",
        path: &path,
        query: &[],
        headers: &headers,
        body: &bytes,
    };
    let signed = sign::sign(&env.ak, SK, &parts).unwrap();
    let mut r = reqwest::Client::new()
        .put(format!("{base}{path}"))
        .body(bytes);
    for (k, v) in &headers {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r
        .header("Authorization", signed.authorization)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn resize_body(scale_type: &str, group: &str, instances: i64) -> serde_json::Value {
    serde_json::json!({
        "service_id": "", "plan_id": "", "previous_values": {"plan_id": ""},
        "parameters": {"order_id": "", "scale_type": scale_type, "node_id": "node_orderadd",
            "node_group": group, "instances": instances,
            "skip_bootstrap_scripts": false, "scale_without_start": false}
    })
}

#[tokio::test]
async fn fake_enforces_the_seed_rules_for_any_client() {
    let env = start("fake_rules", 3, 0).await;
    let core = "core_node_analysis_group";
    let task = "task_node_analysis_group";
    let code = |v: &serde_json::Value| v["error_code"].as_str().unwrap_or_default().to_string();
    // Core below 3.
    let (status, v) = raw_put(&env, resize_body("scale_in", core, 1)).await;
    assert_eq!((status, code(&v).as_str()), (400, "12000002"), "{v}");
    assert!(
        v["error_msg"].as_str().unwrap().contains("more than 3"),
        "{v}"
    );
    // More than 500 in all.
    let (status, v) = raw_put(&env, resize_body("scale_out", core, 498)).await;
    assert_eq!((status, code(&v).as_str()), (400, "12000002"), "{v}");
    // Task 0 -> n without task_node_info.
    let (_, v) = raw_put(&env, resize_body("scale_out", task, 1)).await;
    assert_eq!(code(&v), "12000002");
    assert!(
        v["error_msg"].as_str().unwrap().contains("task_node_info"),
        "{v}"
    );
    // Wrong shape: node_id, group, instances, missing previous_values, server_ids for Core.
    let mut b = resize_body("scale_out", core, 1);
    b["parameters"]["node_id"] = "node_other".into();
    assert_eq!(code(&raw_put(&env, b).await.1), "12000002");
    assert_eq!(
        code(
            &raw_put(&env, resize_body("scale_out", "core_node_default_group", 1))
                .await
                .1
        ),
        "12000002"
    );
    assert_eq!(
        code(&raw_put(&env, resize_body("scale_out", core, 0)).await.1),
        "12000002"
    );
    let mut b = resize_body("scale_out", core, 1);
    b.as_object_mut().unwrap().remove("previous_values");
    assert_eq!(code(&raw_put(&env, b).await.1), "12000002");
    let mut b = resize_body("scale_out", core, 1);
    b["parameters"]["server_ids"] = serde_json::json!(["x"]);
    assert_eq!(code(&raw_put(&env, b).await.1), "12000002");
    assert!(env.model.writes().is_empty());
    // A valid one, then the same while it runs: 12000018.
    let (status, v) = raw_put(&env, resize_body("scale_out", core, 1)).await;
    assert_eq!(
        (status, v.clone()),
        (200, serde_json::json!({"result": "succeeded"}))
    );
    let (status, v) = raw_put(&env, resize_body("scale_out", core, 1)).await;
    assert_eq!((status, code(&v).as_str()), (400, "12000018"));
    assert_eq!(env.model.writes().len(), 1);
}

#[tokio::test]
async fn token_is_refreshed_once_on_401_then_reported() {
    let env = start("refresh", 3, 0).await;
    let cloud = env.client(&env.password("refresh"));
    cloud.observe().await.unwrap();
    assert_eq!(cloud.tokens_fetched(), 1);
    // IAM invalidates the token: one 401, one new token, the request repeated.
    env.fake.revoke_tokens();
    cloud.observe().await.expect("refreshed");
    assert_eq!(cloud.tokens_fetched(), 2);
    let shows: Vec<u16> = env
        .lines(ACTION_SHOW)
        .iter()
        .map(|l| l.http_status)
        .collect();
    assert_eq!(shows, vec![200, 401, 200]);
    // MRS.102 (token invalid) is handled the same way.
    env.fake.inject(
        ACTION_SHOW,
        "MRS.102",
        "Token is null or invalid, try again later",
    );
    cloud.observe().await.expect("refreshed after MRS.102");
    assert_eq!(cloud.tokens_fetched(), 3);
    // Rejected twice in a row: refreshed once, then reported, then held off.
    env.fake
        .inject(ACTION_SHOW, "12000001", "identity verification invalid");
    env.fake
        .inject(ACTION_SHOW, "12000001", "identity verification invalid");
    let before = env.lines(ACTION_SHOW).len();
    let e = cloud.observe().await.unwrap_err();
    assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "12000001"));
    assert_eq!(cloud.tokens_fetched(), 4);
    assert_eq!(
        env.lines(ACTION_SHOW).len(),
        before + 2,
        "the request, and one repeat"
    );
    let held = cloud.observe().await.unwrap_err();
    assert!(held.message.contains("not sent"), "{}", held.message);
    assert_eq!(env.lines(ACTION_SHOW).len(), before + 2);
}

#[tokio::test]
async fn wrong_password_is_auth_and_not_retried() {
    let env = start("bad_password", 3, 0).await;
    let creds = Credentials::new("t")
        .with("username", "ops-bad_password")
        .with("password", "nope")
        .with("domainName", DOMAIN);
    let cloud = env.client(&creds);
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Auth);
    assert!(e.message.contains("ops-bad_password"), "{}", e.message);
    assert!(!e.message.contains("nope"));
    cloud.observe().await.unwrap_err();
    assert_eq!(env.lines(ACTION_TOKEN).len(), 1);
    assert!(env.lines(ACTION_SHOW).is_empty());
}

#[tokio::test]
async fn failed_resize_shows_as_scaling_error() {
    let env = start("scaling_error", 3, 0).await;
    let cloud = env.client(&env.aksk());
    cloud.observe().await.unwrap();
    env.model.with_faults(|f| f.fail_operations = 1);
    cloud
        .scale_out(&req(NodeGroup::Core, 2, 3, "op-1"))
        .await
        .unwrap();
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    assert_eq!(o.state, ClusterState::Running);
    assert_eq!(o.core, 3);
    let failed = o.last_resize_failed.expect("scaling-error reported");
    assert!(failed.contains("Cluster expansion failed"), "{failed}");
    // The cluster stays resizable, and the next accepted resize clears the error.
    cloud
        .scale_out(&req(NodeGroup::Core, 2, 3, "op-2"))
        .await
        .unwrap();
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.core, o.last_resize_failed), (5, None));
}

/// A lost answer is reported as unclear and never repeated: not by the
/// client, and not by the engine (MRS has no idempotency token), which
/// resolves the operation by observing the cluster.
#[tokio::test]
async fn lost_answer_is_resolved_by_observation_not_repeated() {
    let env = start("lost", 3, 0).await;
    let cloud = env.client(&env.aksk());
    assert!(!cloud.capabilities().idempotent_scale_out);
    let spec = engine_spec(env.spec.clone(), 4, 0);
    env.model.with_faults(|f| f.lose_responses = 1);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    let e = r.error.expect("the answer was lost");
    assert_eq!(
        (e.class, e.action.as_str()),
        (ErrorClass::Transient, "PUT cluster_infos")
    );
    let pending = r.status.pending_operation.clone().expect("kept pending");
    assert!(!pending.accepted);
    assert_eq!(env.resizes().len(), 1);
    // The resize runs: observation shows it, nothing is sent again.
    env.clock.advance(Duration::from_secs(10));
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    assert!(r.finished.is_none() && r.status.pending_operation.is_some());
    env.finish_operation();
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    let done = r.finished.expect("resolved by observation");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{:?}", done.message);
    assert_eq!(cloud.observe().await.unwrap().core, 4);
    assert_eq!(env.resizes().len(), 1, "one PUT in all");
    assert_eq!(env.model.writes().len(), 1);
}

/// A `ScaledCluster` spec for `huawei` with Core `core` and Task `task`, and
/// a cooldown that keeps a test's passes to one operation.
fn engine_spec(huawei: HuaweiSpec, core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec::test()
        .huawei(huawei)
        .counts(core, task)
        .cooldown_seconds(600)
}

/// One engine pass, as the controller runs it, on `clock`.
async fn pass(
    spec: &ScaledClusterSpec,
    status: &ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
) -> Report {
    let target = Target {
        uid: "uid-huawei-http",
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

/// A stand-in MRS endpoint whose cluster detail the test sets: it accepts
/// every resize (`{"result": "succeeded"}`) and shows nothing of it, as MRS
/// may for a while after accepting one; it has no auto-scaling policy (`[]`,
/// read before each resize). Signatures are not checked.
struct StubMrs {
    spec: HuaweiSpec,
    detail: Arc<Mutex<ClusterDetail>>,
    puts: Arc<AtomicUsize>,
}

impl StubMrs {
    async fn start() -> Self {
        let detail = Arc::new(Mutex::new(ClusterDetail::default()));
        let puts = Arc::new(AtomicUsize::new(0));
        let (shown, counted) = (detail.clone(), puts.clone());
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri| {
                let (shown, counted) = (shown.clone(), counted.clone());
                async move {
                    if method == axum::http::Method::PUT {
                        counted.fetch_add(1, Ordering::SeqCst);
                        axum::Json(serde_json::json!({"result": "succeeded"}))
                    } else if uri.path().contains("/autoscaling-policy/") {
                        axum::Json(serde_json::json!([]))
                    } else {
                        let cluster = shown.lock().unwrap().clone();
                        axum::Json(serde_json::to_value(ClusterDetailResponse { cluster }).unwrap())
                    }
                }
            },
        );
        let (listener, base) = common::listen().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        let spec = HuaweiSpec::test().cluster(PROJECT, CLUSTER).endpoint(base);
        Self { spec, detail, puts }
    }

    /// Show `clusterState`, `scale` and Core `core` (no Task group); a
    /// `scaling-error` comes with MRS's "Cluster expansion failed".
    fn show(&self, state: &str, scale: &str, core: i64) {
        *self.detail.lock().unwrap() = ClusterDetail {
            cluster_id: CLUSTER.into(),
            cluster_state: state.into(),
            scale: scale.into(),
            stage_desc: if scale == "scaling-error" {
                "Cluster expansion failed".into()
            } else {
                String::new()
            },
            core_node_num: Some(core),
            node_groups: vec![NodeGroupV10 {
                group_name: "core_node_analysis_group".into(),
                node_num: Some(core),
                ..Default::default()
            }],
            ..Default::default()
        };
    }

    /// A client with its own AK (rate limits and hold-offs never mix).
    fn client(&self, ak: &str) -> HuaweiCloud {
        let creds = Credentials::new("stub")
            .with("accessKey", ak)
            .with("secretKey", SK);
        HuaweiCloud::new(&self.spec, &creds).expect("client builds")
    }

    fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }
}

const EXPANSION_FAILED: &str = "scaling-error: Cluster expansion failed";

/// A `scaling-error` left over from an earlier resize stays until the next
/// resize starts, and MRS may take a while to show a resize it accepted: in
/// that time the old error is not the new operation's. Once the cluster was
/// busy, a `scaling-error` is the operation's own.
#[tokio::test]
async fn earlier_scaling_error_does_not_fail_the_next_resize() {
    let stub = StubMrs::start().await;
    stub.show("running", "scaling-error", 3);
    let cloud = stub.client("HWSTUBAKEARLIER");
    let clock = ManualClock::default();
    let spec = engine_spec(stub.spec.clone(), 4, 0);
    assert_eq!(
        cloud.observe().await.unwrap().last_resize_failed.as_deref(),
        Some(EXPANSION_FAILED),
        "reported as MRS shows it"
    );
    let r = pass(&spec, &Default::default(), &cloud, &clock).await;
    let op = r.started.clone().expect("Core 3 -> 4 sent");
    assert!(op.accepted);
    assert_eq!(stub.puts(), 1);

    // MRS still shows the earlier failure only: the operation is not failed.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(10));
        let r = pass(&spec, &r.status, &cloud, &clock).await;
        assert!(r.finished.is_none(), "{:?}", r.finished);
        assert_eq!(r.status.phase, Phase::ScalingOut);
        assert_eq!(r.status.pending_operation.as_deref(), Some(&op));
    }
    assert_eq!(cloud.observe().await.unwrap().last_resize_failed, None);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Unknown
    );

    // The resize starts, then fails: that failure is the operation's.
    stub.show("scaling-out", "scaling-out", 3);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Running
    );
    clock.advance(Duration::from_secs(10));
    let r = pass(&spec, &r.status, &cloud, &clock).await;
    assert!(r.finished.is_none());
    stub.show("running", "scaling-error", 3);
    assert_eq!(
        cloud.operation_status(&op).await.unwrap(),
        OperationProgress::Failed(EXPANSION_FAILED.into())
    );
    clock.advance(Duration::from_secs(10));
    let r = pass(&spec, &r.status, &cloud, &clock).await;
    let done = r.finished.expect("resolved");
    assert_eq!(done.outcome, Some(Outcome::Failed));
    assert_eq!(done.message.as_deref(), Some(EXPANSION_FAILED));
    assert_eq!(stub.puts(), 1);
}

/// With the earlier error still shown and nothing else, the engine's
/// acceptance grace decides: the operation does not wait forever.
#[tokio::test]
async fn earlier_scaling_error_and_nothing_shown_ends_after_the_grace() {
    let stub = StubMrs::start().await;
    stub.show("running", "scaling-error", 3);
    let cloud = stub.client("HWSTUBAKGRACE");
    let clock = ManualClock::default();
    let spec = engine_spec(stub.spec.clone(), 4, 0);
    let r = pass(&spec, &Default::default(), &cloud, &clock).await;
    assert!(r.started.is_some_and(|op| op.accepted));
    let grace = cloud.capabilities().acceptance_grace;
    assert_eq!(grace, Duration::from_secs(120));
    clock.advance(grace - Duration::from_secs(1));
    let r = pass(&spec, &r.status, &cloud, &clock).await;
    assert!(r.finished.is_none(), "{:?}", r.finished);
    clock.advance(Duration::from_secs(1));
    let r = pass(&spec, &r.status, &cloud, &clock).await;
    let done = r.finished.expect("resolved after the grace");
    assert_eq!(done.outcome, Some(Outcome::Failed));
    let message = done.message.unwrap_or_default();
    assert!(message.contains("idle but core is 3, not 4"), "{message}");
    assert_eq!(stub.puts(), 1);
}

/// A reached target wins over a `scaling-error`, also for a client that does
/// not know which error was shown before the resize (after a restart).
#[tokio::test]
async fn reached_target_wins_over_a_scaling_error() {
    let stub = StubMrs::start().await;
    stub.show("running", "scaling-error", 3);
    let clock = ManualClock::default();
    let spec = engine_spec(stub.spec.clone(), 4, 0);
    let r = pass(
        &spec,
        &Default::default(),
        &stub.client("HWSTUBAKREACHED"),
        &clock,
    )
    .await;
    let op = r.started.clone().expect("sent");
    stub.show("running", "scaling-error", 4);
    let restarted = stub.client("HWSTUBAKREACHED");
    assert_eq!(
        restarted
            .observe()
            .await
            .unwrap()
            .last_resize_failed
            .as_deref(),
        Some(EXPANSION_FAILED)
    );
    assert_eq!(
        restarted.operation_status(&op).await.unwrap(),
        OperationProgress::Unknown
    );
    clock.advance(Duration::from_secs(10));
    let r = pass(&spec, &r.status, &restarted, &clock).await;
    let done = r.finished.expect("resolved");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{:?}", done.message);
}

#[tokio::test]
async fn hosts_are_read_page_by_page() {
    let env = start("hosts", 3, 150).await;
    let cloud = env.client(&env.aksk());
    let hosts = cloud.list_hosts().await.unwrap();
    assert_eq!(hosts.len(), 2 + 3 + 150);
    assert_eq!(env.lines(ACTION_HOSTS).len(), 2);
    let mut ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), hosts.len());
}

#[tokio::test]
async fn error_classes_and_request_ids_come_through() {
    let env = start("errors", 3, 0).await;
    let cloud = env.client(&env.aksk());
    env.fake.inject(ACTION_SHOW, "APIGW.0308", "");
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Throttled, "APIGW.0308")
    );
    env.fake.inject(ACTION_SHOW, "MRS.300", "System error");
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str(), e.message.as_str()),
        (ErrorClass::Transient, "MRS.300", "System error")
    );
    let journal = env.fake.journal();
    assert_eq!(
        e.request_id.as_deref(),
        Some(journal.last().unwrap().request_id.as_str())
    );
    env.fake
        .control()
        .inject(clusterscale_fakes::InjectedError {
            action: Some(ACTION_SHOW.into()),
            code: String::new(),
            message: String::new(),
            http_status: Some(502),
        });
    let e = cloud.observe().await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Transient, "HTTP502")
    );
    // Another cluster id: 12000003.
    let mut other = env.spec.clone();
    other.cluster_id = "00000000-0000-0000-0000-000000000000".into();
    let e = HuaweiCloud::new(&other, &env.aksk())
        .unwrap()
        .observe()
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::NotFound, "12000003")
    );
}

#[tokio::test]
async fn malformed_body_names_the_action_and_request_id() {
    use axum::http::HeaderValue;
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(|| async {
        let mut r = "this is not json".into_response();
        r.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("req-malformed-1"));
        r
    });
    let (listener, base) = common::listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = start("malformed", 3, 0).await;
    let mut spec = env.spec.clone();
    spec.endpoint = Some(base);
    let e = HuaweiCloud::new(&spec, &env.aksk())
        .unwrap()
        .observe()
        .await
        .unwrap_err();
    assert_eq!(e.code, "MalformedResponse");
    assert_eq!(e.action, "GET cluster_infos");
    assert_eq!(e.request_id.as_deref(), Some("req-malformed-1"));
    assert!(e.to_string().contains("req-malformed-1"));
}

#[test]
fn signing_vectors_reproduce_through_the_public_api() {
    use clusterscale_huawei::sign::{sign, RequestParts};
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/huawei_sdk_hmac.json"))
            .expect("vectors parse");
    for v in all["vectors"].as_array().unwrap() {
        let i = &v["inputs"];
        let headers: Vec<(String, String)> = i["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let query: Vec<(String, String)> = i["query_params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = |x: &serde_json::Value| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                };
                (s(&p[0]), s(&p[1]))
            })
            .collect();
        let body = hex::decode(i["body_hex"].as_str().unwrap()).unwrap();
        let parts = RequestParts {
            method: i["method"].as_str().unwrap(),
            path: i["path"].as_str().unwrap(),
            query: &query,
            headers: &headers,
            body: &body,
        };
        let signed = sign(i["ak"].as_str().unwrap(), i["sk"].as_str().unwrap(), &parts).unwrap();
        assert_eq!(
            signed.authorization,
            v["expected"]["authorization"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
}

/// issue 9 §2: an operation that ends with the cluster `abnormal` succeeded
/// once its counts arrived; while abnormal, the plan waits and says how many
/// nodes are not running, and nothing is sent.
#[tokio::test]
async fn abnormal_after_an_operation_succeeds_then_the_plan_waits() {
    let env = start("abnormal_after", 3, 0).await;
    let cloud = env.client(&env.aksk());
    let mut spec = engine_spec(env.spec.clone(), 4, 0);
    spec.cooldown_seconds = 0;
    env.fake.end_next_operation_abnormal(1);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    assert!(r.started.is_some(), "{:?}", r.error);
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    assert_eq!(
        (o.state.clone(), o.core),
        (
            ClusterState::Unavailable("abnormal: 1 node not running (node-ana-core0004)".into()),
            4
        ),
        "the host list says which node is down"
    );
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    let done = r.finished.clone().expect("resolved");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{:?}", done.message);
    assert!(done.message.unwrap().contains("abnormal"));
    // At its counts: converged and Ready; the cloud's view apart.
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    let condition = |t: &str| {
        r.status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    assert_eq!(
        condition("Ready"),
        Some(("True".into(), "Converged".into()))
    );
    assert_eq!(
        condition("ClusterHealthy"),
        Some(("False".into(), "Abnormal".into()))
    );

    // More wanted while abnormal: the plan waits with the reason, no PUT.
    spec.core.count = 5;
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    assert!(r.started.is_none() && r.error.is_none(), "{:?}", r.error);
    let message = r.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("1 node not running"),
        "status message: {message}"
    );
    assert_eq!(env.resizes().len(), 1);
    // A client that sends anyway is refused by the fake, as MRS would.
    let (status, body) = raw_put(
        &env,
        resize_body("scale_out", "core_node_analysis_group", 1),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("12000080"))
    );

    // Healthy again: the next resize goes out.
    env.fake.clear_abnormal();
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    assert!(r.started.is_some(), "{:?}", r.status.message);
    assert_eq!(env.model.writes().len(), 2);
}

/// Without a host list the reason is still clear; a lost answer whose resize
/// ended `abnormal` with its counts is Succeeded too, with one PUT.
#[tokio::test]
async fn abnormal_after_a_lost_answer_succeeds_by_counts() {
    let env = start("abnormal_lost", 3, 0).await;
    let cloud = env.client(&env.aksk());
    let spec = engine_spec(env.spec.clone(), 4, 0);
    env.model.with_faults(|f| f.lose_responses = 1);
    env.fake.end_next_operation_abnormal(0);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    assert!(r.error.is_some() && !r.status.pending_operation.clone().unwrap().accepted);
    env.finish_operation();
    let o = cloud.observe().await.unwrap();
    // Every host runs, so the detail cannot name any.
    assert_eq!(
        o.state,
        ClusterState::Unavailable("abnormal: some nodes are not running".into())
    );
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    let done = r.finished.expect("resolved by counts");
    assert_eq!(done.outcome, Some(Outcome::Succeeded), "{:?}", done.message);
    assert_eq!(env.resizes().len(), 1);
}

/// issue 9 §2: the codes added after the review, each through the fake.
#[tokio::test]
async fn new_error_codes_are_classified() {
    let env = start("new_codes", 4, 2).await;
    let cloud = env.client(&env.aksk());
    for (code, class) in [
        ("12000012", ErrorClass::Busy),
        ("12000065", ErrorClass::Billing),
        ("12000068", ErrorClass::Busy),
        ("12000080", ErrorClass::Busy),
        ("12000090", ErrorClass::Capacity),
    ] {
        env.fake.inject(ACTION_RESIZE, code, "refused by the fake");
        let e = cloud
            .scale_out(&req(NodeGroup::Task, 1, 2, "op"))
            .await
            .expect_err(code);
        assert_eq!((e.code.as_str(), e.class), (code, class), "{e}");
        assert!(e.request_id.is_some(), "{code}");
        if code == "12000065" {
            assert!(
                e.message
                    .starts_with("yearly/monthly (prepaid) clusters cannot be resized"),
                "{}",
                e.message
            );
            assert!(e.retry_after() >= Duration::from_secs(900));
        }
    }
    assert_eq!(env.model.writes().len(), 0);
}

/// issue 9 §2: hosts listed the reference's way (`Core`/`Task`, `ACTIVE`, no
/// group name) are understood; preferNodes is honoured, and a preferred node
/// that is not a Task host is reported, not dropped.
#[tokio::test]
async fn otc_host_types_keep_prefer_nodes() {
    let env = start("otc_hosts", 3, 3).await;
    env.fake.set_host_style(HostStyle::Otc);
    let cloud = env.client(&env.aksk());
    let hosts = cloud.list_hosts().await.unwrap();
    assert!(hosts
        .iter()
        .all(|h| h.status == "ACTIVE" && h.node_group_name.is_none()));
    let task_ids: Vec<String> = hosts
        .iter()
        .filter(|h| h.host_type == "Task")
        .map(|h| h.id.clone())
        .collect();
    assert_eq!(task_ids.len(), 3);
    cloud.observe().await.unwrap();
    let mut r = req(NodeGroup::Task, 1, 3, "op-1");
    r.prefer_nodes = vec!["gone".into(), task_ids[0].clone()];
    let sub = cloud.scale_in(&r).await.unwrap();
    assert_eq!(sub.node_ids, vec![task_ids[0].clone()]);
    assert_eq!(sub.unmatched_preferred, vec!["gone".to_string()]);
    assert_eq!(
        env.resizes()[0].params["body"]["parameters"]["server_ids"],
        serde_json::json!([task_ids[0]])
    );
}

/// issue 9 §2: unmatched preferred nodes land in the operation record
/// (status) and in a warning Event.
#[tokio::test]
async fn unmatched_prefer_nodes_are_in_status_and_an_event() {
    let env = start("unmatched", 3, 2).await;
    let cloud = env.client(&env.aksk());
    let mut spec = engine_spec(env.spec.clone(), 3, 1);
    spec.scale_in.allowed = true;
    spec.scale_in.prefer_nodes = vec!["long-gone-node".into()];
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    let started = r.started.clone().expect("scale-in started");
    assert_eq!(started.unmatched_preferred_nodes, vec!["long-gone-node"]);
    assert_eq!(
        r.status
            .pending_operation
            .as_ref()
            .unwrap()
            .unmatched_preferred_nodes,
        vec!["long-gone-node"]
    );
    let event = r
        .events
        .iter()
        .find(|e| e.reason == "PreferredNodesUnmatched")
        .expect("an event");
    assert!(
        event.message.contains("long-gone-node"),
        "{}",
        event.message
    );
    assert!(env.resizes()[0].params["body"]["parameters"]
        .get("server_ids")
        .is_none());
}

/// issue 9 §2: skip_bootstrap_scripts only when true; neither flag on scale-in.
#[tokio::test]
async fn bootstrap_flags_only_on_scale_out() {
    let mut env = start("flags", 4, 2).await;
    env.spec.skip_bootstrap_scripts = true;
    env.spec.scale_without_start = true;
    let cloud = env.client(&env.aksk());
    cloud
        .scale_out(&req(NodeGroup::Task, 1, 2, "op-1"))
        .await
        .unwrap();
    env.finish_operation();
    cloud.observe().await.unwrap();
    cloud
        .scale_in(&req(NodeGroup::Core, 1, 4, "op-2"))
        .await
        .unwrap();
    let resizes = env.resizes();
    let out = &resizes[0].params["body"]["parameters"];
    assert_eq!(
        (&out["skip_bootstrap_scripts"], &out["scale_without_start"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    let scale_in = &resizes[1].params["body"]["parameters"];
    assert!(scale_in.get("skip_bootstrap_scripts").is_none());
    assert!(scale_in.get("scale_without_start").is_none());
}

// --- §1: a refused call is not a lost call ---------------------------------

/// Seed of the write faults in these tests (the fake's sequence is
/// deterministic: same seed, same sequence of faults).
const FAULT_SEED: u64 = 11;

/// A fake whose operations take `op_time` on the manual clock.
async fn start_timed(name: &str, core: i32, task: i32, op_time: Duration) -> Env {
    start_full(name, core, task, op_time, |_| {}).await
}

/// Reconcile on the manual clock until converged, advancing the clock by
/// each pass's requeue (as the controller would wait). Returns the last
/// report, the clock time it took, and how many passes.
async fn converge(
    spec: &ScaledClusterSpec,
    cloud: &dyn Cloud,
    clock: &ManualClock,
    limit: Duration,
) -> (Report, Duration, usize) {
    let start = clock.now();
    let mut status = ScaledClusterStatus::default();
    let mut passes = 0;
    loop {
        passes += 1;
        let r = pass(spec, &status, cloud, clock).await;
        let elapsed = Duration::try_from(start.duration_until(clock.now())).unwrap();
        if r.status.phase == Phase::Converged || elapsed >= limit {
            return (r, elapsed, passes);
        }
        status = r.status.clone();
        clock.advance(r.requeue_after.unwrap_or(Duration::from_secs(10)));
    }
}

fn spec_for(env: &Env, core: i32, task: i32) -> ScaledClusterSpec {
    let mut spec = engine_spec(env.spec.clone(), core, task);
    spec.cooldown_seconds = 0;
    spec
}

/// 30% of resizes are refused with MRS's own body (HTTP 500 `MRS.300`): each
/// refusal is over at once and is planned again from a fresh observation
/// after the Transient backoff, without the 120 s acceptance grace. The
/// cluster converges well within 120 s, with exactly the two resizes needed.
#[tokio::test]
async fn thirty_percent_refused_with_mrs_body_converges_within_120s_with_exact_writes() {
    let env = start_timed("refused30", 3, 4, Duration::from_secs(20)).await;
    env.fake
        .control()
        .set_faults(clusterscale_fakes::FakeFaults {
            write_refusal_rate: 0.3,
            seed: Some(FAULT_SEED),
            ..Default::default()
        });
    let cloud = env.client(&env.aksk());
    let spec = spec_for(&env, 5, 2);
    let (r, elapsed, passes) = converge(&spec, &cloud, &env.clock, Duration::from_secs(600)).await;
    let resizes = env.resizes();
    let refused: Vec<_> = resizes.iter().filter(|l| l.outcome == "MRS.300").collect();
    let applied: Vec<_> = resizes.iter().filter(|l| l.write).collect();
    println!(
        "huawei: 30% refusals: converged in {}s of clock ({passes} passes), {} resizes sent, {} refused, {} applied",
        elapsed.as_secs(),
        resizes.len(),
        refused.len(),
        applied.len()
    );
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    assert!(
        !refused.is_empty(),
        "the seed must refuse at least one resize"
    );
    assert!(refused.iter().all(|l| l.http_status == 500 && !l.write));
    assert!(elapsed <= Duration::from_secs(120), "took {elapsed:?}");
    assert_eq!(applied.len(), 2, "exactly the resizes needed: {resizes:?}");
    assert_eq!(env.model.writes().len(), 2);
    assert_eq!(resizes.len(), applied.len() + refused.len());
    let o = cloud.observe().await.unwrap();
    assert_eq!((o.core, o.task), (5, 2));
}

/// The refusal itself: effect Refused, class Transient, nothing applied; the
/// engine ends the operation at once (no grace) and the next pass sends a
/// new one.
#[tokio::test]
async fn mrs_error_body_is_a_refusal_and_is_not_held_for_the_grace() {
    let env = start("refusedone", 3, 0).await;
    env.fake
        .control()
        .set_faults(clusterscale_fakes::FakeFaults {
            write_refusal_rate: 1.0,
            ..Default::default()
        });
    let cloud = env.client(&env.aksk());
    let spec = spec_for(&env, 4, 0);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str(), e.effect),
        (
            ErrorClass::Transient,
            "MRS.300",
            clusterscale_core::cloud::Effect::Refused
        )
    );
    assert!(
        r.status.pending_operation.is_none(),
        "not held for the grace"
    );
    assert_eq!(
        r.status.last_operation.as_ref().map(|o| o.accepted),
        Some(false)
    );
    assert_eq!(r.requeue_after, Some(ErrorClass::Transient.retry_after()));
    env.fake.control().set_faults(Default::default());
    env.clock.advance(ErrorClass::Transient.retry_after());
    let r = pass(&spec, &r.status, &cloud, &env.clock).await;
    assert!(r.started.is_some(), "a new resize right after the backoff");
    assert_eq!(env.model.writes().len(), 1);
}

/// A lost answer (`504 APIGW.0201` after the resize was applied) and a
/// proxy's HTML 502 page (applied behind it) leave the outcome unknown: the
/// engine resolves it by observation and never sends the resize again.
#[tokio::test]
async fn lost_answer_and_html_502_cause_no_duplicate_resize() {
    for (name, faults) in [
        (
            "lost504",
            clusterscale_fakes::FakeFaults {
                lost_answer_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "proxy502",
            clusterscale_fakes::FakeFaults {
                proxy_error_rate: 1.0,
                ..Default::default()
            },
        ),
        (
            "reset",
            clusterscale_fakes::FakeFaults {
                lost_answer_rate: 1.0,
                lost_answer_reset: true,
                ..Default::default()
            },
        ),
    ] {
        let env = start_timed(name, 3, 2, Duration::from_secs(20)).await;
        env.fake.control().set_faults(faults);
        let cloud = env.client(&env.aksk());
        let spec = spec_for(&env, 3, 4);
        let first = pass(&spec, &Default::default(), &cloud, &env.clock).await;
        let e = first.error.clone().expect("no clear answer");
        assert_eq!(
            e.effect,
            clusterscale_core::cloud::Effect::Unknown,
            "{name}: {e}"
        );
        assert!(first.status.pending_operation.is_some(), "{name}");
        let (r, elapsed, _) = converge_from(&spec, first.status, &cloud, &env.clock).await;
        let resizes = env.resizes();
        println!(
            "huawei: {name}: converged after {}s, {} resize(s) sent",
            elapsed.as_secs(),
            resizes.len()
        );
        assert_eq!(r.status.phase, Phase::Converged, "{name}");
        assert_eq!(resizes.len(), 1, "{name}: never sent twice: {resizes:?}");
        assert_eq!(env.model.writes().len(), 1, "{name}");
        assert_eq!(
            r.status.last_operation.and_then(|o| o.outcome),
            Some(Outcome::Succeeded),
            "{name}"
        );
    }
}

/// A proxy 502 whose write was dropped: unknown too, so the engine waits the
/// acceptance grace before it declares it not applied, then sends one new
/// resize. Exactly one applied in all.
#[tokio::test]
async fn html_502_with_the_write_dropped_waits_the_grace_then_applies_once() {
    let env = start_timed("proxydrop", 3, 2, Duration::from_secs(20)).await;
    env.fake
        .control()
        .set_faults(clusterscale_fakes::FakeFaults {
            proxy_error_rate: 1.0,
            proxy_error_drops_write: true,
            ..Default::default()
        });
    let cloud = env.client(&env.aksk());
    let spec = spec_for(&env, 3, 4);
    let first = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    assert!(first.error.unwrap().may_have_applied());
    env.fake.control().set_faults(Default::default());
    let (r, elapsed, _) = converge_from(&spec, first.status, &cloud, &env.clock).await;
    assert_eq!(r.status.phase, Phase::Converged);
    assert!(
        elapsed >= clusterscale_huawei::client::ACCEPT_GRACE,
        "an unknown outcome waits the grace: {elapsed:?}"
    );
    let resizes = env.resizes();
    assert_eq!(resizes.len(), 2, "{resizes:?}");
    assert_eq!(resizes.iter().filter(|l| l.write).count(), 1);
    assert_eq!(env.model.writes().len(), 1);
}

async fn converge_from(
    spec: &ScaledClusterSpec,
    mut status: ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
) -> (Report, Duration, usize) {
    let start = clock.now();
    let mut passes = 0;
    loop {
        clock.advance(Duration::from_secs(10));
        passes += 1;
        let r = pass(spec, &status, cloud, clock).await;
        let elapsed = Duration::try_from(start.duration_until(clock.now())).unwrap();
        if r.status.phase == Phase::Converged || elapsed >= Duration::from_secs(600) {
            return (r, elapsed, passes);
        }
        status = r.status.clone();
    }
}

/// The 30% run over ten seeds: every run converges within 120 s with exactly
/// the two resizes needed, whatever the refusals fall on.
#[tokio::test]
async fn thirty_percent_refusals_over_ten_seeds() {
    let (mut worst, mut refusals, mut sent) = (Duration::ZERO, 0, 0);
    for seed in 1..=10u64 {
        let env = start_timed(&format!("seeds{seed}"), 3, 4, Duration::from_secs(20)).await;
        env.fake
            .control()
            .set_faults(clusterscale_fakes::FakeFaults {
                write_refusal_rate: 0.3,
                seed: Some(seed),
                ..Default::default()
            });
        let cloud = env.client(&env.aksk());
        let spec = spec_for(&env, 5, 2);
        let (r, elapsed, _) = converge(&spec, &cloud, &env.clock, Duration::from_secs(600)).await;
        let resizes = env.resizes();
        assert_eq!(r.status.phase, Phase::Converged, "seed {seed}");
        assert!(
            elapsed <= Duration::from_secs(120),
            "seed {seed}: {elapsed:?}"
        );
        assert_eq!(resizes.iter().filter(|l| l.write).count(), 2, "seed {seed}");
        assert_eq!(env.model.writes().len(), 2, "seed {seed}");
        worst = worst.max(elapsed);
        refusals += resizes.iter().filter(|l| l.outcome == "MRS.300").count();
        sent += resizes.len();
    }
    println!(
        "huawei: 30% refusals, 10 seeds: worst {}s of clock, {refusals} of {sent} resizes refused, 20 applied",
        worst.as_secs()
    );
    assert!(refusals >= 3, "the seeds refuse some: {refusals} of {sent}");
}

/// A multi-instance fake (`HuaweiFake::fleet`): `n` clusters of one account,
/// each made on first use over the shared clock.
async fn start_fleet(
    name: &str,
    n: usize,
) -> (HuaweiFake, Vec<HuaweiSpec>, Arc<ManualClock>, String) {
    let clock = Arc::new(ManualClock::default());
    let model_clock = clock.clone();
    let ids = clusterscale_fakes::cli::huawei_fleet_ids("f1ee7000", n).unwrap();
    let make: clusterscale_fakes::huawei::ModelFactory =
        Arc::new(move |id: &str| common::model(id, 3, 0, OP_TIME, model_clock.clone()));
    let ak = format!("HWTESTAK{}", name.to_ascii_uppercase().replace('_', ""));
    let config = HuaweiFakeConfig {
        project_id: Some(PROJECT.into()),
        access_keys: vec![FakeAccessKey {
            access_key: ak.clone(),
            secret_key: SK.into(),
            security_token: None,
        }],
        ..HuaweiFakeConfig::default()
    };
    let fake = HuaweiFake::fleet(ids.clone(), make, config).expect("fleet");
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.clone().serve(listener));
    let specs = ids
        .iter()
        .map(|id| HuaweiSpec {
            task_node_spec: Some(HuaweiTaskNodeSpec {
                node_size: "c6.4xlarge.4.linux.bigdata".into(),
                data_volume_type: "SATA".into(),
                data_volume_count: 1,
                data_volume_size: 600,
            }),
            ..HuaweiSpec::test()
                .cluster(PROJECT, id)
                .endpoint(base.clone())
                .iam_endpoint(base.clone())
        })
        .collect();
    (fake, specs, clock, ak)
}

fn fleet_creds(ak: &str) -> Credentials {
    Credentials::new("test secret")
        .with("accessKey", ak)
        .with("secretKey", SK)
}

#[tokio::test]
async fn fleet_clusters_are_independent_and_share_the_account_throttle() {
    let (fake, specs, clock, ak) = start_fleet("fleet_hw", 4).await;
    let creds = fleet_creds(&ak);
    let a = HuaweiCloud::new(&specs[0], &creds).unwrap();
    let b = HuaweiCloud::new(&specs[3], &creds).unwrap();
    let mut req = ScaleRequest {
        group: NodeGroup::Core,
        pool: None,
        count: 2,
        from_count: 3,
        token: "hw-fleet-a".into(),
        prefer_nodes: Vec::new(),
        graceful_timeout_seconds: 0,
    };
    a.scale_out(&req).await.expect("resize a");
    assert!(matches!(
        a.observe().await.unwrap().state,
        ClusterState::Busy(_)
    ));
    let ob = b.observe().await.unwrap();
    assert_eq!((ob.state, ob.core), (ClusterState::Running, 3));
    req.count = 1;
    req.token = "hw-fleet-b".into();
    b.scale_out(&req).await.expect("resize b while a is busy");
    clock.advance(OP_TIME + Duration::from_secs(1));
    assert_eq!(a.observe().await.unwrap().core, 5);
    assert_eq!(b.observe().await.unwrap().core, 4);
    let ids: Vec<String> = fake.models().iter().map(|m| m.id().to_string()).collect();
    assert_eq!(
        ids,
        [specs[0].cluster_id.clone(), specs[3].cluster_id.clone()]
    );
    let mut other = specs[0].clone();
    other.cluster_id = "f1ee7000-0000-4000-8000-000000000099".into();
    let e = HuaweiCloud::new(&other, &creds)
        .unwrap()
        .observe()
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");

    // One throttle window per action for the account, across clusters.
    fake.control().set_faults(clusterscale_fakes::FakeFaults {
        throttle_per_second: Some(2),
        ..Default::default()
    });
    let before = fake.journal().len();
    let clients: Vec<HuaweiCloud> = specs
        .iter()
        .map(|s| HuaweiCloud::new(s, &creds).unwrap())
        .collect();
    let results = futures::future::join_all(clients.iter().map(|c| c.cluster_detail())).await;
    let lines = &fake.journal()[before..];
    let ok = lines.iter().filter(|l| l.outcome == "ok").count();
    let throttled: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(ok <= 2, "at most 2 per second for the account: {lines:?}");
    assert!(!throttled.is_empty());
    for e in throttled {
        assert_eq!(e.class, ErrorClass::Throttled, "{e}");
        assert!(e.request_id.is_some(), "{e}");
    }
}

/// Malformed answers from MRS: a Transient error naming the action and the
/// `X-Request-Id`; unknown fields accepted; a malformed answer to an applied
/// resize is an unknown outcome, never a refusal.
#[tokio::test]
async fn malformed_answers_name_action_and_request_id() {
    use clusterscale_core::cloud::Effect;
    use clusterscale_fakes::{FakeFaults, Malformed};
    let env = start("malformed_hw", 3, 1).await;
    let cloud = env.client(&env.aksk());
    for kind in Malformed::ALL {
        env.fake.control().set_faults(FakeFaults {
            malformed_read_rate: 1.0,
            malformed_kinds: vec![kind],
            ..Default::default()
        });
        let got = cloud.observe().await;
        env.fake.control().set_faults(FakeFaults::default());
        let last = env.fake.journal().into_iter().last().unwrap();
        assert!(last.outcome.ends_with(&kind.note()), "{kind:?}: {last:?}");
        if kind == Malformed::UnknownFields {
            let o = got.unwrap_or_else(|e| panic!("unknown fields must be accepted: {e}"));
            assert_eq!((o.core, o.task), (3, 1));
            continue;
        }
        let e = got.expect_err(&format!("{kind:?} taken as an answer"));
        assert_eq!(e.class, ErrorClass::Transient, "{kind:?}: {e}");
        assert!(
            [ACTION_SHOW, ACTION_HOSTS].contains(&e.action.as_str())
                || e.action.contains("cluster_infos")
                || e.action.contains("hosts"),
            "{kind:?}: {e}"
        );
        assert_eq!(
            e.request_id.as_deref(),
            Some(last.request_id.as_str()),
            "{kind:?}: X-Request-Id is named: {e}"
        );
    }
    for kind in Malformed::ALL {
        let before = env.model.writes().len();
        env.fake.control().set_faults(FakeFaults {
            malformed_write_rate: 1.0,
            malformed_kinds: vec![kind],
            ..Default::default()
        });
        let observed = cloud.observe().await.unwrap();
        let got = cloud
            .scale_out(&ScaleRequest {
                group: NodeGroup::Task,
                pool: None,
                count: 1,
                from_count: observed.task,
                token: format!("hw-mal-{}", kind.name()),
                prefer_nodes: Vec::new(),
                graceful_timeout_seconds: 0,
            })
            .await;
        env.fake.control().set_faults(FakeFaults::default());
        assert_eq!(
            env.model.writes().len(),
            before + 1,
            "{kind:?}: applied once"
        );
        match (kind, got) {
            (Malformed::UnknownFields, r) => {
                r.unwrap_or_else(|e| panic!("unknown fields must be accepted: {e}"));
            }
            (_, Ok(s)) => panic!("{kind:?} taken as an answer: {s:?}"),
            (_, Err(e)) => {
                assert_eq!(e.effect, Effect::Unknown, "{kind:?}: {e}");
                assert!(e.request_id.is_some(), "{kind:?}: {e}");
            }
        }
        env.finish_operation();
    }
}

/// The fake refuses a v1.1 resize of a custom cluster, as MRS does ("not
/// custom clusters"); the client never sends one (huawei_groups_http.rs).
#[tokio::test]
async fn fake_refuses_a_v11_resize_of_a_custom_cluster() {
    use clusterscale_fakes::huawei::{FakeClusterType, CUSTOM_V11_REFUSAL};
    let env = start_with("custom_v11", 3, 2, |c| {
        c.cluster_type = FakeClusterType::Custom(4)
    })
    .await;
    let (status, v) = raw_put(&env, resize_body("scale_out", "node_group_3", 1)).await;
    assert_eq!(
        (status, v["error_code"].as_str()),
        (400, Some(CUSTOM_V11_REFUSAL))
    );
    assert_eq!(env.model.write_count(), 0);
}
