//! Node groups on Huawei MRS: the client's v2 calls (expand, shrink,
//! ListNodes, auto-scaling policies) and ShowClusterDetails' `clusterType`
//! and `nodeGroups`, against the in-process fake over real HTTP on
//! 127.0.0.1 with real AK/SK signatures. The model runs on a manual clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::conditions::{find, DEGRADED, READY};
use clusterscale_core::api::{
    HuaweiPoolSpec, HuaweiSpec, NodeGroup, Phase, ScaledClusterSpec, ScaledClusterStatus,
    TaskPoolSpec,
};
use clusterscale_core::clock::ManualClock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::http::{ActionQuota, RateLimits};
use clusterscale_core::cloud::Effect;
use clusterscale_core::cloud::{Cloud, ClusterState, ErrorClass, ScaleRequest};
use clusterscale_engine::{reconcile, EngineConfig, EventType, MemoryStore, Report, Target};
use clusterscale_fakes::huawei::{
    FakeAccessKey, FakeClusterType, FakePolicy, HuaweiFake, HuaweiFakeConfig, V2RateLimits,
    ACTION_EXPAND, ACTION_NODES, ACTION_POLICY, ACTION_RESIZE, ACTION_SHOW, ACTION_SHRINK,
};
use clusterscale_fakes::{FakeFaults, InjectedError, JournalLine};
use clusterscale_huawei::interpret::{autoscaled_groups, nodes_by_group, policy_of};
use clusterscale_huawei::wire::{
    ACTION_EXPAND as WIRE_EXPAND, ACTION_NODES as WIRE_NODES, ACTION_SHRINK as WIRE_SHRINK,
};
use clusterscale_huawei::{
    ExpandOptions, GroupResizeOutcome, HuaweiCloud, MrsClusterType, ShrinkOptions,
};
use clusterscale_sim::SimModel;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const CLUSTER: &str = "b1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d";
const SK: &str = "HwGroupsSecretKey00000000000000000000001";
const OP_TIME: Duration = Duration::from_secs(30);

struct Env {
    fake: HuaweiFake,
    model: Arc<SimModel>,
    clock: Arc<ManualClock>,
    spec: HuaweiSpec,
    base: String,
    ak: String,
}

async fn start(
    name: &str,
    core: i32,
    task: i32,
    cluster_type: FakeClusterType,
    tweak: impl FnOnce(&mut HuaweiFakeConfig),
) -> Env {
    let clock = Arc::new(ManualClock::default());
    let model = common::model("mrs-groups", core, task, OP_TIME, clock.clone());
    let ak = format!("HWGROUPS{}", name.to_ascii_uppercase().replace('_', ""));
    let mut config = HuaweiFakeConfig {
        project_id: Some(PROJECT.into()),
        cluster_id: Some(CLUSTER.into()),
        access_keys: vec![FakeAccessKey {
            access_key: ak.clone(),
            secret_key: SK.into(),
            security_token: None,
        }],
        cluster_type,
        ..HuaweiFakeConfig::default()
    };
    tweak(&mut config);
    let fake = HuaweiFake::new(model.clone(), config).unwrap();
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.clone().serve(listener));
    let spec = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(base.clone())
        .iam_endpoint(base.clone());
    Env {
        fake,
        model,
        clock,
        spec,
        base,
        ak,
    }
}

impl Env {
    fn client_with(&self, sk: &str) -> HuaweiCloud {
        let creds = Credentials::new("test")
            .with("accessKey", &self.ak)
            .with("secretKey", sk);
        HuaweiCloud::new(&self.spec, &creds).unwrap()
    }

    fn client(&self) -> HuaweiCloud {
        self.client_with(SK)
    }

    fn lines(&self, action: &str) -> Vec<JournalLine> {
        self.fake
            .journal()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    fn count(&self, group: &str) -> i32 {
        self.fake
            .group_counts()
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(_, n)| n)
            .unwrap_or_else(|| panic!("no group {group}"))
    }

    fn finish_operation(&self) {
        self.clock.advance(OP_TIME);
    }
}

async fn counts_of(client: &HuaweiCloud) -> Vec<(String, Option<i64>)> {
    client
        .node_groups()
        .await
        .unwrap()
        .groups
        .into_iter()
        .map(|g| (g.name, g.count))
        .collect()
}

#[tokio::test]
async fn hybrid_clusters_report_their_type_and_every_group() {
    let env = start("hybrid", 4, 2, FakeClusterType::Hybrid, |_| {}).await;
    let client = env.client();
    let groups = client.node_groups().await.unwrap();
    assert_eq!(groups.cluster_type, Some(MrsClusterType::Hybrid));
    assert_eq!(
        counts_of(&client).await,
        vec![
            ("master_node_default_group".to_string(), Some(2)),
            ("core_node_analysis_group".to_string(), Some(2)),
            ("core_node_streaming_group".to_string(), Some(2)),
            ("task_node_analysis_group".to_string(), Some(1)),
            ("task_node_streaming_group".to_string(), Some(1)),
        ]
    );
    // Today's observation (v1.1) counts the groups its resizes target: the
    // analysis ones, when a cluster has several of a role.
    let observed = client.observe().await.unwrap();
    assert_eq!((observed.core, observed.task), (2, 1));
    for (t, code) in [
        (FakeClusterType::Analysis, 0),
        (FakeClusterType::Streaming, 1),
        (FakeClusterType::Custom(4), 3),
    ] {
        let env = start(&format!("type{code}"), 3, 0, t, |_| {}).await;
        let g = env.client().node_groups().await.unwrap();
        assert_eq!(g.cluster_type, Some(MrsClusterType::from_code(code)));
    }
}

#[tokio::test]
async fn v2_expand_grows_only_the_named_group_after_the_operation_time() {
    let env = start("expand", 4, 2, FakeClusterType::Hybrid, |_| {}).await;
    let client = env.client();
    let sent = client.requests_sent();
    let outcome = client
        .expand_node_group("task_node_streaming_group", 3, &ExpandOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        GroupResizeOutcome::Accepted {
            request_id: Some(_)
        }
    ));
    assert_eq!(client.requests_sent(), sent + 1);
    let line = &env.lines(ACTION_EXPAND)[0];
    assert!(line.write);
    let body = &line.params["body"];
    assert_eq!(body["node_group_name"], "task_node_streaming_group");
    assert_eq!(body["count"], 3);
    // Always sent: v2 skips the scripts when it is absent.
    assert_eq!(body["skip_bootstrap_scripts"], false);
    assert_eq!(body["scale_without_start"], false);
    assert!(body.get("az_code").is_none());
    // scaling-out until the operation time has passed, then running.
    let busy = client.observe().await.unwrap();
    assert!(
        matches!(busy.state, ClusterState::Busy(_)),
        "{:?}",
        busy.state
    );
    assert_eq!(env.count("task_node_streaming_group"), 1);
    env.finish_operation();
    let done = client.observe().await.unwrap();
    assert_eq!(done.state, ClusterState::Running);
    assert_eq!(
        done.task, 1,
        "task_node_analysis_group, which v1.1 observes"
    );
    assert_eq!(env.count("task_node_streaming_group"), 4);
    assert_eq!(env.count("task_node_analysis_group"), 1);
    // The caller's flags go as given.
    client
        .expand_node_group(
            "core_node_streaming_group",
            1,
            &ExpandOptions {
                skip_bootstrap_scripts: true,
                scale_without_start: true,
                az_code: Some("cn-north-4a".into()),
            },
        )
        .await
        .unwrap();
    let body = &env.lines(ACTION_EXPAND)[1].params["body"];
    assert_eq!(
        (
            &body["skip_bootstrap_scripts"],
            &body["scale_without_start"],
            &body["az_code"]
        ),
        (
            &serde_json::json!(true),
            &serde_json::json!(true),
            &serde_json::json!("cn-north-4a")
        )
    );
    // A second write while the first runs: busy, nothing started.
    let busy = client
        .expand_node_group("task_node_analysis_group", 1, &ExpandOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (busy.class, busy.code.as_str()),
        (ErrorClass::Busy, "12000018")
    );
    env.finish_operation();
    assert_eq!(env.count("core_node_streaming_group"), 3);
    assert_eq!(env.count("core_node_analysis_group"), 2);
}

#[tokio::test]
async fn v2_shrink_removes_only_that_groups_nodes() {
    let env = start("shrink", 4, 4, FakeClusterType::Hybrid, |_| {}).await;
    let client = env.client();
    let before = client
        .list_nodes(Some("task_node_analysis_group"))
        .await
        .unwrap();
    assert_eq!(before.nodes.len(), 2);
    client
        .shrink_node_group("task_node_analysis_group", 2, &ShrinkOptions::default())
        .await
        .unwrap();
    let body = &env.lines(ACTION_SHRINK)[0].params["body"];
    assert_eq!(body["count"], 2);
    assert!(body.get("resource_ids").is_none());
    let busy = client.observe().await.unwrap();
    assert!(matches!(busy.state, ClusterState::Busy(ref d) if d.contains("scaling-in")));
    env.finish_operation();
    assert_eq!(env.count("task_node_analysis_group"), 0);
    assert_eq!(env.count("task_node_streaming_group"), 2);
    assert_eq!(client.observe().await.unwrap().task, 0);
    // Core keeps at least 3 in all.
    let err = client
        .shrink_node_group("core_node_analysis_group", 2, &ShrinkOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Invalid, "12000002")
    );
    // Not a group of the cluster; the master group; a bad name (not sent).
    for (group, sent) in [
        ("node_group_7", true),
        ("master_node_default_group", true),
        ("bad name!", false),
    ] {
        let before = client.requests_sent();
        let err = client
            .shrink_node_group(group, 1, &ShrinkOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid, "{group}: {err}");
        assert_eq!(client.requests_sent() > before, sent, "{group}");
    }
    assert_eq!(env.model.write_count(), 1);
}

#[tokio::test]
async fn prepaid_groups_answer_an_order_and_nothing_scales() {
    let env = start("prepaid", 3, 2, FakeClusterType::Analysis, |c| {
        c.groups.prepaid = vec!["task_node_analysis_group".into()];
    })
    .await;
    let client = env.client();
    let outcome = client
        .expand_node_group("task_node_analysis_group", 2, &ExpandOptions::default())
        .await
        .unwrap();
    let GroupResizeOutcome::OrderPending {
        order_id,
        request_id,
    } = outcome
    else {
        panic!("expected an order, got {outcome:?}");
    };
    assert!(
        order_id.starts_with("CS") && request_id.is_some(),
        "{order_id}"
    );
    assert!(!env.lines(ACTION_EXPAND)[0].write);
    env.finish_operation();
    assert_eq!(env.model.write_count(), 0);
    assert_eq!(client.observe().await.unwrap().task, 2);
    // Listed as on-period; a shrink is refused as a billing matter.
    let listing = client.list_nodes(None).await.unwrap();
    let by = nodes_by_group(&listing.nodes);
    assert_eq!(by["task_node_analysis_group"].on_period, 2);
    assert_eq!(by["core_node_analysis_group"].on_quantity, 3);
    let err = client
        .shrink_node_group("task_node_analysis_group", 1, &ShrinkOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Billing, "12000065")
    );
    // The control route makes the group pay-per-use again.
    let status = reqwest::Client::new()
        .put(format!("{}/_fake/prepaid", env.base))
        .json(&serde_json::json!({"groups": []}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let outcome = client
        .expand_node_group("task_node_analysis_group", 1, &ExpandOptions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, GroupResizeOutcome::Accepted { .. }));
}

#[tokio::test]
async fn list_nodes_reads_every_page_one_request_each() {
    let env = start("pages", 150, 100, FakeClusterType::Analysis, |_| {}).await;
    let client = env.client();
    let sent = client.requests_sent();
    let listing = client.list_nodes(None).await.unwrap();
    assert_eq!(listing.nodes.len(), 252, "2 masters, 150 Core, 100 Task");
    assert_eq!(listing.total, Some(252));
    assert_eq!(listing.calls, 3);
    assert_eq!(client.requests_sent(), sent + 3);
    let pages: Vec<(String, String)> = env
        .lines(ACTION_NODES)
        .iter()
        .map(|l| {
            (
                l.params["query"]["offset"].as_str().unwrap().to_string(),
                l.params["query"]["limit"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pages,
        [("1", "100"), ("2", "100"), ("3", "100")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let n = &listing.nodes[5];
    assert!(n.resource_id.is_some() && n.server_info.is_some() && n.node_status.is_some());
    let by = nodes_by_group(&listing.nodes);
    assert_eq!(by["master_node_default_group"].total, 2);
    assert_eq!(by["core_node_analysis_group"].total, 150);
    assert_eq!(by["task_node_analysis_group"].total, 100);
    // One group: the filter is the query's node_group.
    let task = client
        .list_nodes(Some("task_node_analysis_group"))
        .await
        .unwrap();
    assert_eq!((task.nodes.len(), task.calls), (100, 1));
    assert!(task
        .nodes
        .iter()
        .all(|n| n.node_type.as_deref() == Some("Task")));
}

#[tokio::test]
async fn auto_scaling_policies_name_their_groups() {
    let env = start("policy", 3, 1, FakeClusterType::Streaming, |c| {
        c.groups.policies = vec![FakePolicy {
            group: "task_node_streaming_group".into(),
            enabled: true,
            min: 1,
            max: 6,
        }];
    })
    .await;
    let client = env.client();
    let policies = client.autoscaling_policies().await.unwrap();
    assert_eq!(
        autoscaled_groups(&policies),
        vec!["task_node_streaming_group"]
    );
    let p = policy_of(&policies, "task_node_streaming_group").unwrap();
    assert_eq!((p.min_capacity, p.max_capacity), (1, 6));
    // Turned off through the control route; none at all.
    env.fake.set_policies(vec![FakePolicy {
        group: "task_node_streaming_group".into(),
        enabled: false,
        min: 0,
        max: 0,
    }]);
    assert!(autoscaled_groups(&client.autoscaling_policies().await.unwrap()).is_empty());
    let status = reqwest::Client::new()
        .put(format!("{}/_fake/autoscaling", env.base))
        .json(&serde_json::json!({"policies": []}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    assert!(client.autoscaling_policies().await.unwrap().is_empty());
}

#[tokio::test]
async fn custom_clusters_refuse_v11_resizes_and_scale_through_v2() {
    let env = start("custom", 3, 2, FakeClusterType::Custom(5), |_| {}).await;
    let client = env.client();
    let names: Vec<String> = counts_of(&client)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "node_group_1",
            "node_group_2",
            "node_group_3",
            "node_group_4",
            "node_group_5"
        ]
    );
    // Through the trait, a custom cluster is never sent a v1.1 resize: without
    // spec.huawei.coreNodeGroup it is refused before any write, naming the
    // field and the groups (the fake's own v1.1 refusal: huawei_http.rs).
    let err = client
        .scale_out(&ScaleRequest {
            group: NodeGroup::Task,
            pool: None,
            count: 1,
            from_count: 2,
            token: "op-1".into(),
            prefer_nodes: Vec::new(),
            graceful_timeout_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Invalid, "NodeGroupRequired")
    );
    assert!(
        err.message.contains("spec.huawei.coreNodeGroup")
            && err.message.contains("node_group_5 (0)"),
        "{}",
        err.message
    );
    assert!(env.lines(ACTION_RESIZE).is_empty());
    assert_eq!(env.model.write_count(), 0);
    // v2 expand of a Task group works.
    client
        .expand_node_group("node_group_4", 2, &ExpandOptions::default())
        .await
        .unwrap();
    env.finish_operation();
    // The 2 initial Task nodes went to node_group_3 and node_group_4.
    let counts = counts_of(&client).await;
    assert_eq!(
        counts,
        vec![
            ("node_group_1".to_string(), Some(2)),
            ("node_group_2".to_string(), Some(3)),
            ("node_group_3".to_string(), Some(1)),
            ("node_group_4".to_string(), Some(3)),
            ("node_group_5".to_string(), Some(0)),
        ]
    );
}

#[tokio::test]
async fn throttling_and_bad_signatures_on_v2_routes() {
    let env = start("throttle", 3, 1, FakeClusterType::Analysis, |_| {}).await;
    let client = env.client();
    // Injected: the gateway's 429 APIGW.0308.
    env.fake.inject(ACTION_EXPAND, "APIGW.0308", "throttled");
    let err = client
        .expand_node_group("task_node_analysis_group", 1, &ExpandOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Throttled, "APIGW.0308")
    );
    assert!(!err.may_have_applied());
    assert_eq!(env.model.write_count(), 0);
    // Over the limit: each page is a request and counts.
    env.fake.control().set_faults(FakeFaults {
        throttle_per_second: Some(1),
        ..FakeFaults::default()
    });
    let _ = client.list_nodes(None).await;
    let err = client.list_nodes(None).await.unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Throttled, "APIGW.0308")
    );
    env.fake.control().set_faults(FakeFaults::default());
    // A bad signature is refused before anything happens.
    let wrong = env.client_with("HwWrongSecretKey0000000000000000000000001");
    let err = wrong
        .shrink_node_group("task_node_analysis_group", 1, &ShrinkOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "APIGW.0301")
    );
    assert_eq!(env.model.write_count(), 0);
}

/// A correctly signed raw GET of ListNodes, bypassing the client (and its
/// rate limiter): `(status, X-Request-Id, body)`.
async fn raw_list_nodes(env: &Env) -> (u16, String, serde_json::Value) {
    use clusterscale_huawei::sign;
    let host = env.base.trim_start_matches("http://").to_string();
    let path = format!("/v2/{PROJECT}/clusters/{CLUSTER}/nodes");
    let query = vec![
        ("limit".to_string(), "100".to_string()),
        ("offset".to_string(), "1".to_string()),
    ];
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
        method: "GET",
        path: &path,
        query: &query,
        headers: &headers,
        body: b"",
    };
    let signed = sign::sign(&env.ak, SK, &parts).unwrap();
    let mut r = reqwest::Client::new().get(format!(
        "{}{path}?{}",
        env.base,
        sign::canonical_query(&query)
    ));
    for (k, v) in &headers {
        r = r.header(k.as_str(), v.as_str());
    }
    let resp = r
        .header("Authorization", signed.authorization)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, id, resp.json().await.unwrap())
}

/// MRS v2's own limits, per account, in the fake (small ones here): over
/// one, the gateway's `429 APIGW.0308`, Throttled and Refused, naming the
/// action and the request id; the group unchanged, nothing applied. The
/// other actions are not limited by them.
#[tokio::test]
async fn over_mrs_v2_limits_the_gateway_answers_429_and_nothing_is_applied() {
    let env = start("v2limits", 3, 2, FakeClusterType::Analysis, |c| {
        c.v2_rate_limits = Some(V2RateLimits {
            expand: 1,
            shrink: 1,
            list_nodes: 2,
            window: Duration::from_secs(600),
        });
    })
    .await;
    let client = env.client();
    let group = "task_node_analysis_group";
    let refused = |err: &clusterscale_core::cloud::CloudError, action: &str, fake_action: &str| {
        assert_eq!(
            (err.class, err.code.as_str(), err.effect),
            (ErrorClass::Throttled, "APIGW.0308", Effect::Refused),
            "{err}"
        );
        assert_eq!(err.action, action);
        assert!(
            err.message.contains("policy user over ratelimit") && err.message.contains("limit:"),
            "{err}"
        );
        let line = env.lines(fake_action).pop().unwrap();
        assert_eq!(err.request_id.as_deref(), Some(line.request_id.as_str()));
        assert_eq!(
            (line.http_status, line.outcome.as_str(), line.write),
            (429, "APIGW.0308", false)
        );
        let shown = err.to_string();
        assert!(
            shown.contains(action) && shown.contains(&line.request_id),
            "the error names the action and the request id: {shown}"
        );
    };
    // Expand: the first is applied, the second refused by the gateway.
    client
        .expand_node_group(group, 1, &ExpandOptions::default())
        .await
        .unwrap();
    env.finish_operation();
    assert_eq!(env.count(group), 3);
    let writes = env.model.write_count();
    let err = client
        .expand_node_group(group, 1, &ExpandOptions::default())
        .await
        .unwrap_err();
    refused(&err, WIRE_EXPAND, ACTION_EXPAND);
    env.finish_operation();
    assert_eq!(env.count(group), 3, "the group did not change");
    assert_eq!(env.model.write_count(), writes, "nothing applied");
    // Shrink: its own limit (the expand's is used up).
    client
        .shrink_node_group(group, 1, &ShrinkOptions::default())
        .await
        .unwrap();
    env.finish_operation();
    assert_eq!(env.count(group), 2);
    let err = client
        .shrink_node_group(group, 1, &ShrinkOptions::default())
        .await
        .unwrap_err();
    refused(&err, WIRE_SHRINK, ACTION_SHRINK);
    env.finish_operation();
    assert_eq!(env.count(group), 2, "the group did not change");
    assert_eq!(env.model.write_count(), writes + 1);
    // ListNodes: every page counts; the third request is refused.
    client.list_nodes(Some(group)).await.unwrap();
    client.list_nodes(None).await.unwrap();
    let err = client.list_nodes(None).await.unwrap_err();
    refused(&err, WIRE_NODES, ACTION_NODES);
    // The gateway's own body, with the request id of the header.
    let (status, id, body) = raw_list_nodes(&env).await;
    assert_eq!(status, 429);
    assert_eq!(body["error_code"], "APIGW.0308");
    assert_eq!(body["request_id"], id.as_str());
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("The throttling threshold has been reached: policy user over ratelimit,limit:2,time:10 minute"),
        "{body}"
    );
    // The other actions have no such limit.
    for _ in 0..3 {
        client.observe().await.unwrap();
        client.autoscaling_policies().await.unwrap();
    }
    // By default, MRS's own limits.
    assert_eq!(
        HuaweiFakeConfig::default().v2_rate_limits,
        Some(V2RateLimits {
            expand: 60,
            shrink: 60,
            list_nodes: 200,
            window: Duration::from_secs(60)
        })
    );
}

/// The client's limiter keeps a burst of ListNodes pages (a group of 300
/// nodes, 3 pages a listing; two listings at once, by two clients of one
/// account) within the fake's limit of 4 a second: without it, the fake
/// refuses the 5th page.
#[tokio::test]
async fn the_client_keeps_a_burst_of_list_nodes_pages_within_the_limit() {
    let env = start("pagelimit", 3, 300, FakeClusterType::Analysis, |c| {
        c.v2_rate_limits = Some(V2RateLimits {
            list_nodes: 4,
            window: Duration::from_secs(1),
            ..V2RateLimits::MRS
        });
    })
    .await;
    let group = "task_node_analysis_group";
    let throttled = |env: &Env| {
        env.lines(ACTION_NODES)
            .iter()
            .filter(|l| l.http_status == 429)
            .count()
    };
    // MRS's own quota (200 a minute, 100 at once): the 5th page is refused.
    let unpaced = env.client();
    assert_eq!(unpaced.list_nodes(Some(group)).await.unwrap().calls, 3);
    let err = unpaced.list_nodes(Some(group)).await.unwrap_err();
    assert_eq!(err.code, "APIGW.0308");
    assert_eq!(throttled(&env), 1);
    // The fake's window empties.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A quota matching the fake's, shared by two clients of the account.
    let limits =
        RateLimits::new(5).with_quota(WIRE_NODES, ActionQuota::new(4, Duration::from_secs(1)));
    let a = env.client().with_rate_limits(limits.clone());
    let b = env.client().with_rate_limits(limits);
    let start = std::time::Instant::now();
    let (x, y) = tokio::join!(a.list_nodes(Some(group)), b.list_nodes(Some(group)));
    let elapsed = start.elapsed();
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        (x.nodes.len(), x.calls, y.nodes.len(), y.calls),
        (300, 3, 300, 3)
    );
    assert_eq!(throttled(&env), 1, "no page refused");
    // 2 pages at once, then one every 0.5 s.
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
}

// --- the Cloud trait over node groups, through engine passes ---------------

fn pool(name: &str, count: i32, group: &str) -> TaskPoolSpec {
    TaskPoolSpec {
        huawei: Some(HuaweiPoolSpec {
            node_group: group.into(),
        }),
        ..TaskPoolSpec::named(name, count)
    }
}

fn engine_spec(env: &Env, core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec::test()
        .huawei(env.spec.clone())
        .counts(core, task)
}

/// One engine pass, as the controller runs it, on the env's clock.
async fn pass(
    env: &Env,
    spec: &ScaledClusterSpec,
    status: &ScaledClusterStatus,
    cloud: &dyn Cloud,
    generation: i64,
) -> Report {
    reconcile(
        Target {
            uid: "uid-huawei-groups",
            generation,
            spec,
        },
        status,
        cloud,
        env.clock.as_ref(),
        &mut MemoryStore::default(),
        &EngineConfig::default(),
    )
    .await
    .expect("status saved")
}

/// Passes from `status` until converged, each after the previous pass's
/// requeue on the manual clock (as the controller waits).
async fn converge(
    env: &Env,
    spec: &ScaledClusterSpec,
    cloud: &dyn Cloud,
    status: ScaledClusterStatus,
) -> Report {
    let mut status = status;
    for _ in 0..60 {
        let r = pass(env, spec, &status, cloud, 1).await;
        if r.status.phase == Phase::Converged {
            return r;
        }
        assert!(r.error.is_none(), "{:?}\n{:?}", r.error, r.status);
        status = r.status.clone();
        env.clock
            .advance(r.requeue_after.unwrap_or(Duration::from_secs(10)));
    }
    panic!("not converged: {status:?}");
}

/// `(node_group_name, count)` of every journaled write of `action`.
fn written(env: &Env, action: &str) -> Vec<(String, i64)> {
    env.lines(action)
        .iter()
        .filter(|l| l.write)
        .map(|l| {
            let b = &l.params["body"];
            (
                b["node_group_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                b["count"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The v1.1 resizes that reached the fake: (scale_type, node_group, instances).
fn v11_puts(env: &Env) -> Vec<(String, String, i64)> {
    env.lines(ACTION_RESIZE)
        .iter()
        .filter(|l| l.write)
        .map(|l| {
            let p = &l.params["body"]["parameters"];
            (
                p["scale_type"].as_str().unwrap().to_string(),
                p["node_group"].as_str().unwrap().to_string(),
                p["instances"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn condition(r: &Report, type_: &str) -> (String, String, String) {
    let c = find(&r.status.conditions, type_).unwrap_or_else(|| panic!("no {type_}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn warnings(r: &Report) -> Vec<String> {
    r.events
        .iter()
        .filter(|e| e.type_ == EventType::Warning)
        .map(|e| format!("{}: {}", e.reason, e.message))
        .collect()
}

/// A custom cluster: Core and Task converge by v2 expand and shrink only,
/// each write preceded by the group's policy and billing reads, and an
/// observation is one ShowClusterDetails.
#[tokio::test]
async fn custom_cluster_converges_core_and_task_by_v2_only() {
    let mut env = start("custom_engine", 3, 2, FakeClusterType::Custom(5), |_| {}).await;
    env.spec.core_node_group = Some("node_group_2".into());
    env.spec.task_node_group = Some("node_group_3".into());
    let cloud = env.client();
    // node_group_3 has 1 of the 2 initial Task nodes, node_group_4 the other.
    let r = converge(&env, &engine_spec(&env, 5, 3), &cloud, Default::default()).await;
    let o = r.status.observed.as_ref().unwrap();
    assert_eq!((o.core, o.task), (5, 3));
    assert_eq!(env.count("node_group_2"), 5);
    assert_eq!(env.count("node_group_3"), 3);
    assert_eq!(env.count("node_group_4"), 1, "not managed: untouched");
    assert!(env.lines(ACTION_RESIZE).is_empty(), "no v1.1 PUT");
    assert_eq!(
        written(&env, ACTION_EXPAND),
        [
            ("node_group_2".to_string(), 2),
            ("node_group_3".to_string(), 2)
        ]
    );
    for l in env.lines(ACTION_EXPAND) {
        let b = &l.params["body"];
        // Sent explicitly: v2 skips the bootstrap scripts when it is absent.
        assert_eq!(b["skip_bootstrap_scripts"], serde_json::json!(false));
        assert_eq!(b["scale_without_start"], serde_json::json!(false));
    }
    // The policy and the group's nodes are read before each write, never to observe.
    assert_eq!(env.lines(ACTION_POLICY).len(), 2);
    assert_eq!(env.lines(ACTION_NODES).len(), 2);
    let before = env.fake.journal().len();
    let again = pass(&env, &engine_spec(&env, 5, 3), &r.status, &cloud, 1).await;
    assert_eq!(again.status.phase, Phase::Converged);
    let new: Vec<String> = env.fake.journal()[before..]
        .iter()
        .map(|l| l.action.clone())
        .collect();
    assert_eq!(new, [ACTION_SHOW], "one read per observation");

    // Scale in: Task first, then Core, both by v2 shrink.
    let r = converge(&env, &engine_spec(&env, 4, 1), &cloud, r.status).await;
    let o = r.status.observed.as_ref().unwrap();
    assert_eq!((o.core, o.task), (4, 1));
    assert_eq!(
        written(&env, ACTION_SHRINK),
        [
            ("node_group_3".to_string(), 2),
            ("node_group_2".to_string(), 1)
        ]
    );
    assert!(env.lines(ACTION_RESIZE).is_empty());
    assert_eq!(env.count("node_group_4"), 1);
}

/// A hybrid cluster with a pool on `task_node_streaming_group`: the default
/// Task group (analysis) by v1.1, the pool by v2; both converge, counted apart.
#[tokio::test]
async fn hybrid_cluster_pool_on_the_streaming_task_group() {
    let env = start("hybrid_pool", 6, 2, FakeClusterType::Hybrid, |_| {}).await;
    let cloud = env.client();
    let spec = engine_spec(&env, 3, 3).with_pool(pool("stream", 4, "task_node_streaming_group"));
    let r = converge(&env, &spec, &cloud, Default::default()).await;
    let o = r.status.observed.as_ref().unwrap();
    assert_eq!((o.core, o.task), (3, 3));
    assert_eq!(r.status.pools[0].observed, Some(4));
    assert_eq!(r.status.pools_summary.as_deref(), Some("4/4"));
    assert_eq!(env.count("task_node_analysis_group"), 3);
    assert_eq!(env.count("task_node_streaming_group"), 4);
    let puts: Vec<(String, i64)> = v11_puts(&env)
        .into_iter()
        .map(|(_, group, n)| (group, n))
        .collect();
    assert_eq!(puts, [("task_node_analysis_group".to_string(), 2)]);
    assert_eq!(
        written(&env, ACTION_EXPAND),
        [("task_node_streaming_group".to_string(), 3)]
    );
}

/// An analysis cluster: Core and Task still go by v1.1 (server_ids for
/// preferNodes included), a pool on an added Task group by v2.
#[tokio::test]
async fn analysis_cluster_keeps_v11_and_a_pool_uses_v2() {
    let env = start("analysis_pool", 3, 2, FakeClusterType::Analysis, |c| {
        c.extra_task_groups = vec!["task_node_spot_group".into()];
    })
    .await;
    let cloud = env.client();
    let spec = engine_spec(&env, 4, 3).with_pool(pool("spot", 2, "task_node_spot_group"));
    let r = converge(&env, &spec, &cloud, Default::default()).await;
    let o = r.status.observed.as_ref().unwrap();
    assert_eq!((o.core, o.task), (4, 3));
    assert_eq!(r.status.pools[0].observed, Some(2));
    let puts = v11_puts;
    assert_eq!(
        puts(&env),
        [
            ("scale_out".into(), "core_node_analysis_group".into(), 1),
            ("scale_out".into(), "task_node_analysis_group".into(), 1)
        ]
    );
    assert_eq!(
        written(&env, ACTION_EXPAND),
        [("task_node_spot_group".to_string(), 2)]
    );
    // Task scale-in with preferNodes stays v1.1 (server_ids); the pool shrinks by v2.
    let hosts = cloud.list_hosts().await.unwrap();
    let preferred = hosts
        .iter()
        .find(|h| h.node_group_name.as_deref() == Some("task_node_analysis_group"))
        .unwrap()
        .id
        .clone();
    let mut spec = engine_spec(&env, 4, 2).with_pool(pool("spot", 1, "task_node_spot_group"));
    spec.scale_in.prefer_nodes = vec![preferred.clone()];
    converge(&env, &spec, &cloud, r.status).await;
    let all = puts(&env);
    assert_eq!(
        all[2],
        ("scale_in".into(), "task_node_analysis_group".into(), 1)
    );
    let put = env
        .lines(ACTION_RESIZE)
        .into_iter()
        .filter(|l| l.write)
        .nth(2)
        .unwrap();
    assert_eq!(
        params_server_ids(&put),
        vec![preferred],
        "the preferred node named"
    );
    assert_eq!(
        written(&env, ACTION_SHRINK),
        [("task_node_spot_group".to_string(), 1)]
    );
    assert_eq!(env.count("task_node_spot_group"), 1);
}

fn params_server_ids(l: &JournalLine) -> Vec<String> {
    l.params["body"]["parameters"]["server_ids"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Prepaid groups: one with nodes billed on-period is refused before any
/// write; an empty one whose expand still answers an order is reported once,
/// with the order id, and held in status: never sent again in that
/// generation, not after the Billing backoff, not by a restarted controller.
#[tokio::test]
async fn prepaid_groups_are_never_written_and_an_order_is_never_resent() {
    let mut env = start("prepaid_engine", 3, 1, FakeClusterType::Custom(4), |c| {
        c.groups.prepaid = vec!["node_group_3".into(), "node_group_4".into()];
    })
    .await;
    env.spec.core_node_group = Some("node_group_2".into());
    env.spec.task_node_group = Some("node_group_3".into());
    let cloud = env.client();
    // The pool's group is empty: nothing tells its billing before the expand.
    let spec = engine_spec(&env, 3, 1).with_pool(pool("reserved", 1, "node_group_4"));
    let r = pass(&env, &spec, &Default::default(), &cloud, 1).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Billing, "PrepaidNodeGroup")
    );
    assert!(
        e.message.contains("node group node_group_4") && e.message.contains("order CS"),
        "{e}"
    );
    assert!(e.request_id.is_some());
    assert_eq!(env.lines(ACTION_EXPAND).len(), 1);
    assert_eq!(env.model.write_count(), 0, "nothing scales");
    let (status, reason, message) = condition(&r, DEGRADED);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Billing"));
    assert!(
        message.contains("PrepaidNodeGroup") && message.contains("order CS"),
        "{message}"
    );
    let first = warnings(&r);
    assert!(
        first
            .iter()
            .any(|w| w.starts_with("Billing: ") && w.contains("order CS")),
        "{first:?}"
    );
    assert_eq!(
        r.status.last_error.as_ref().unwrap().code,
        "PrepaidNodeGroup"
    );
    let opened = |r: &Report| {
        r.events
            .iter()
            .filter(|e| e.message.contains("MRS opened order"))
            .count()
    };
    assert_eq!(opened(&r), 2, "ScaleOutFailed and Degraded's Warning");
    // The hold is in status, so it outlives the process: passes of a new
    // client each (a restarted controller), after the Billing backoff, plan
    // the pool's step, find it held and send nothing, and say so without
    // a new Warning.
    let held = &r.status.held_writes;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (
            held[0].pool.as_deref(),
            held[0].generation,
            held[0].reason.as_str()
        ),
        (Some("reserved"), 1, "PrepaidNodeGroup")
    );
    assert!(held[0].order_id.as_deref().unwrap().starts_with("CS"));
    assert_eq!(held[0].request_id, e.request_id);
    let mut status = r.status.clone();
    let mut requeue = r.requeue_after.unwrap();
    for _ in 0..3 {
        env.clock.advance(requeue);
        let restarted = env.client();
        let r = pass(&env, &spec, &status, &restarted, 1).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.status.phase, Phase::Blocked);
        let (ready, reason, message) = condition(&r, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", "PrepaidNodeGroup")
        );
        assert!(
            message.contains("1 task node(s) of pool reserved not added")
                && message.contains("order CS"),
            "{message}"
        );
        assert_eq!(condition(&r, DEGRADED).1, "PrepaidNodeGroup");
        assert_eq!(opened(&r), 0, "reported once");
        assert!(warnings(&r).is_empty(), "{:?}", warnings(&r));
        assert_eq!(r.status.held_writes, status.held_writes);
        requeue = r.requeue_after.unwrap();
        status = r.status.clone();
    }
    assert_eq!(
        env.lines(ACTION_EXPAND).len(),
        1,
        "the order is never re-sent"
    );
    // A group with nodes billed on-period: refused from ListNodes, no write.
    let spec = engine_spec(&env, 3, 2).with_pool(pool("reserved", 1, "node_group_4"));
    let r = pass(&env, &spec, &status, &cloud, 2).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Billing, "PrepaidNodeGroup")
    );
    assert!(
        e.message.contains("node group node_group_3") && e.message.contains("on-period"),
        "{e}"
    );
    assert_eq!(env.lines(ACTION_EXPAND).len(), 1);
    assert_eq!(
        env.lines(ACTION_NODES).last().unwrap().params["query"]["node_group"],
        "node_group_3"
    );
    assert!(
        r.status.held_writes.is_empty(),
        "a new generation lifts the hold"
    );
}

/// MRS's own auto-scaling on a managed group: CloudAutoscalerConflict naming
/// the group and the policy's bounds, nothing written.
#[tokio::test]
async fn an_enabled_policy_on_a_managed_group_is_a_conflict() {
    let mut env = start("policy_engine", 3, 1, FakeClusterType::Custom(4), |c| {
        c.groups.policies = vec![FakePolicy {
            group: "node_group_3".into(),
            enabled: true,
            min: 1,
            max: 6,
        }];
    })
    .await;
    env.spec.core_node_group = Some("node_group_2".into());
    env.spec.task_node_group = Some("node_group_3".into());
    let cloud = env.client();
    let spec = engine_spec(&env, 3, 3);
    let r = pass(&env, &spec, &Default::default(), &cloud, 1).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "CloudAutoscalerConflict")
    );
    assert!(
        e.message.contains("node group node_group_3") && e.message.contains("(min 1, max 6)"),
        "{e}"
    );
    assert!(env.lines(ACTION_EXPAND).is_empty() && env.lines(ACTION_NODES).is_empty());
    assert_eq!(env.model.write_count(), 0);
    let (status, reason, _) = condition(&r, DEGRADED);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Invalid"));
    assert_eq!(condition(&r, READY).0, "False");
    // Disabled: the same spec converges.
    env.fake.set_policies(vec![FakePolicy {
        group: "node_group_3".into(),
        enabled: false,
        min: 0,
        max: 0,
    }]);
    env.clock.advance(r.requeue_after.unwrap());
    let r = converge(&env, &spec, &cloud, r.status).await;
    assert_eq!(r.status.observed.as_ref().unwrap().task, 3);
    assert_eq!(
        written(&env, ACTION_EXPAND),
        [("node_group_3".to_string(), 2)]
    );
}

/// The v1.1 path checks the policy as v2 does: an analysis cluster whose
/// default Task group has MRS auto-scaling enabled is refused a Task
/// resize (CloudAutoscalerConflict naming the group and the policy's
/// bounds, no PUT), while its Core group, which has no policy, still
/// scales; disabled, the Task resize proceeds by v1.1. The policy is read
/// before each write only, never to observe.
#[tokio::test]
async fn an_enabled_policy_on_a_v11_group_is_a_conflict() {
    let env = start("policy_v11", 3, 1, FakeClusterType::Analysis, |c| {
        c.groups.policies = vec![FakePolicy {
            group: "task_node_analysis_group".into(),
            enabled: true,
            min: 1,
            max: 6,
        }];
    })
    .await;
    let cloud = env.client();
    let request = |group: NodeGroup, count: i32, from_count: i32| ScaleRequest {
        group,
        pool: None,
        count,
        from_count,
        token: format!("op-{}-{count}", group.as_str()),
        prefer_nodes: Vec::new(),
        graceful_timeout_seconds: 0,
    };
    // The read failing (a proxy's 502 page: unknown for a write) is
    // reported, as not applied: no write was sent.
    env.fake.control().inject(InjectedError {
        action: Some(ACTION_POLICY.into()),
        code: String::new(),
        message: "bad gateway".into(),
        http_status: Some(502),
    });
    let err = cloud
        .scale_out(&request(NodeGroup::Task, 2, 1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.effect, err.action.as_str()),
        (
            ErrorClass::Transient,
            Effect::Refused,
            "GET autoscaling-policy"
        ),
        "{err}"
    );
    assert!(env.lines(ACTION_RESIZE).is_empty());
    // Through the trait: refused before the PUT.
    let err = cloud
        .scale_out(&request(NodeGroup::Task, 2, 1))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str(), err.action.as_str()),
        (
            ErrorClass::Invalid,
            "CloudAutoscalerConflict",
            "PUT cluster_infos"
        )
    );
    assert!(
        err.message.starts_with("not sent")
            && err.message.contains("node group task_node_analysis_group")
            && err.message.contains("(min 1, max 6)"),
        "{err}"
    );
    assert!(!err.may_have_applied());
    assert_eq!(env.lines(ACTION_POLICY).len(), 2);
    assert!(env.lines(ACTION_RESIZE).is_empty(), "no write reached MRS");
    assert_eq!(env.model.write_count(), 0);
    // Through the engine: Degraded Invalid, Ready False, nothing written.
    let spec = engine_spec(&env, 3, 3);
    let r = pass(&env, &spec, &Default::default(), &cloud, 1).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "CloudAutoscalerConflict")
    );
    let (status, reason, _) = condition(&r, DEGRADED);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Invalid"));
    assert_eq!(condition(&r, READY).0, "False");
    assert!(env.lines(ACTION_RESIZE).is_empty());
    assert_eq!(env.model.write_count(), 0);
    // Core has no policy: its v1.1 resize goes through, after the read.
    cloud
        .scale_out(&request(NodeGroup::Core, 1, 3))
        .await
        .unwrap();
    env.finish_operation();
    assert_eq!(env.count("core_node_analysis_group"), 4);
    assert_eq!(env.lines(ACTION_POLICY).len(), 4);
    // Observing never reads it.
    let before = env.fake.journal().len();
    cloud.observe().await.unwrap();
    let new: Vec<String> = env.fake.journal()[before..]
        .iter()
        .map(|l| l.action.clone())
        .collect();
    assert_eq!(new, [ACTION_SHOW]);
    // Disabled: the same Task resize proceeds, by v1.1.
    env.fake.set_policies(vec![FakePolicy {
        group: "task_node_analysis_group".into(),
        enabled: false,
        min: 1,
        max: 6,
    }]);
    cloud
        .scale_out(&request(NodeGroup::Task, 2, 1))
        .await
        .unwrap();
    env.finish_operation();
    assert_eq!(env.count("task_node_analysis_group"), 3);
    let puts: Vec<(String, i64)> = v11_puts(&env)
        .into_iter()
        .map(|(_, group, n)| (group, n))
        .collect();
    assert_eq!(
        puts,
        [
            ("core_node_analysis_group".to_string(), 1),
            ("task_node_analysis_group".to_string(), 2)
        ]
    );
    assert!(env.lines(ACTION_EXPAND).is_empty(), "v1.1 only");
    assert_eq!(env.lines(ACTION_POLICY).len(), 5);
}

/// A group the spec names that the cluster does not have is found by the
/// observation itself: UnknownNodeGroup listing the cluster's groups, Degraded
/// with one Warning, nothing written; the same for a custom cluster without
/// spec.huawei.coreNodeGroup.
#[tokio::test]
async fn unknown_node_groups_are_reported_at_observation() {
    let mut env = start("unknown_engine", 3, 1, FakeClusterType::Custom(4), |_| {}).await;
    let cloud = env.client();
    let r = pass(
        &env,
        &engine_spec(&env, 4, 1),
        &Default::default(),
        &cloud,
        1,
    )
    .await;
    let e = r.error.clone().unwrap();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Invalid, "NodeGroupRequired")
    );
    assert!(e.message.contains("spec.huawei.coreNodeGroup"), "{e}");
    env.spec.core_node_group = Some("node_group_2".into());
    let cloud = env.client();
    let spec = engine_spec(&env, 4, 1).with_pool(pool("batch", 2, "node_group_9"));
    let mut status = ScaledClusterStatus::default();
    let mut degraded_warnings = 0;
    for _ in 0..3 {
        let r = pass(&env, &spec, &status, &cloud, 1).await;
        let e = r.error.clone().expect("refused");
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Invalid, "UnknownNodeGroup")
        );
        assert!(
            e.message
                .contains("node_group_9 (spec.taskPools[batch].huawei.nodeGroup)")
                && e.message.contains(
                    "node_group_1 (2), node_group_2 (3), node_group_3 (1), node_group_4 (0)"
                ),
            "{e}"
        );
        let (s, reason, _) = condition(&r, DEGRADED);
        assert_eq!((s.as_str(), reason.as_str()), ("True", "Invalid"));
        degraded_warnings += warnings(&r)
            .iter()
            .filter(|w| w.starts_with("Invalid: "))
            .count();
        assert!(r.started.is_none());
        status = r.status.clone();
        env.clock.advance(r.requeue_after.unwrap());
    }
    assert_eq!(degraded_warnings, 1, "one Warning per change");
    let actions: std::collections::BTreeSet<String> =
        env.fake.journal().into_iter().map(|l| l.action).collect();
    assert_eq!(actions.into_iter().collect::<Vec<_>>(), [ACTION_SHOW]);
    assert_eq!(env.model.write_count(), 0);
}
