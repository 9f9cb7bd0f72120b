//! Node groups on Huawei MRS: the client's v2 calls (expand, shrink,
//! ListNodes, auto-scaling policies) and ShowClusterDetails' `clusterType`
//! and `nodeGroups`, against the in-process fake over real HTTP on
//! 127.0.0.1 with real AK/SK signatures. The model runs on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::{HuaweiSpec, NodeGroup};
use clusterscale_core::clock::ManualClock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::{Cloud, ClusterState, ErrorClass, ScaleRequest};
use clusterscale_fakes::huawei::{
    FakeAccessKey, FakeClusterType, FakePolicy, HuaweiFake, HuaweiFakeConfig, ACTION_EXPAND,
    ACTION_NODES, ACTION_SHRINK, CUSTOM_V11_REFUSAL,
};
use clusterscale_fakes::{FakeFaults, JournalLine};
use clusterscale_huawei::interpret::{autoscaled_groups, nodes_by_group, policy_of};
use clusterscale_huawei::{
    ExpandOptions, GroupResizeOutcome, HuaweiCloud, MrsClusterType, ShrinkOptions,
};
use clusterscale_sim::{SimConfig, SimModel};

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
    let model = Arc::new(SimModel::new(
        "mrs-groups",
        SimConfig {
            initial_core: core,
            initial_task: task,
            operation_time: OP_TIME,
            quota: None,
        },
        clock.clone(),
    ));
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
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
    // v1.1 resize: refused, as MRS refuses custom clusters.
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
        (ErrorClass::Invalid, CUSTOM_V11_REFUSAL)
    );
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
