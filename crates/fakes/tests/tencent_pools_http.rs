//! Task pools on Tencent EMR: the client's `ScaleOutCluster` against the fake
//! EMR endpoint, over real HTTP on 127.0.0.1 with real TC3 signatures.

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::TencentSpec;
use clusterscale_core::clock::ManualClock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::{Cloud, ErrorClass};
use clusterscale_fakes::tencent::DEFAULT_SPEC;
use clusterscale_fakes::{FakeControl, JournalLine, TencentFake, TencentFakeConfig};
use clusterscale_sim::{SimConfig, SimModel};
use clusterscale_tencent::interpret::{node_tag, task_nodes_by_tag, POOL_TAG_KEY};
use clusterscale_tencent::wire::flag;
use clusterscale_tencent::{PoolChargeType, PoolScaleOut, TencentCloud, TencentOptions};
use jiff::Timestamp;

const SECRET_ID: &str = "AKIDfakePoolsSecretId00000000000000";
const SECRET_KEY: &str = "fakePoolsSecretKey000000000000000";
const INSTANCE: &str = "emr-pools001";
const OP_TIME: Duration = Duration::from_secs(60);

struct Env {
    fake: TencentFake,
    model: Arc<SimModel>,
    clock: Arc<ManualClock>,
    control: Arc<FakeControl>,
    endpoint: String,
}

async fn start(core: i32, task: i32) -> Env {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let model = Arc::new(SimModel::new(
        INSTANCE,
        SimConfig {
            initial_core: core,
            initial_task: task,
            operation_time: OP_TIME,
            quota: None,
        },
        clock.clone(),
    ));
    let fake =
        TencentFake::new(model.clone(), TencentFakeConfig::new(SECRET_ID, SECRET_KEY)).unwrap();
    let control = fake.control();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let router = fake.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Env {
        fake,
        model,
        clock,
        control,
        endpoint,
    }
}

impl Env {
    fn client_with(&self, key: &str) -> TencentCloud {
        let spec = TencentSpec::test()
            .instance(INSTANCE)
            .secret("tencent-credentials")
            .endpoint(&self.endpoint);
        let creds = Credentials::new("test")
            .with("secretId", SECRET_ID)
            .with("secretKey", key);
        let options = TencentOptions {
            rate_limit_per_second: 20,
            rate_limits: Some(RateLimits::new(20)),
            ..TencentOptions::default()
        };
        TencentCloud::new(&spec, &creds, options).unwrap()
    }

    fn client(&self) -> TencentCloud {
        self.client_with(SECRET_KEY)
    }

    fn calls(&self, action: &str) -> Vec<JournalLine> {
        self.control
            .journal()
            .into_iter()
            .filter(|l| l.action == action)
            .collect()
    }

    fn finish_operation(&self) {
        self.clock.advance(OP_TIME + Duration::from_secs(1));
    }
}

fn pool(name: &str, count: i32, token: &str) -> PoolScaleOut {
    PoolScaleOut {
        count,
        charge_type: PoolChargeType::Spotpaid,
        instance_type: Some("SA2.2XLARGE16".into()),
        yarn_node_label: Some(name.into()),
        tags: vec![(POOL_TAG_KEY.into(), name.into())],
        client_token: token.into(),
    }
}

#[tokio::test]
async fn pool_nodes_carry_their_tags_spec_and_charge_type() {
    let env = start(3, 1).await;
    let client = env.client();
    let submitted = client
        .scale_out_cluster(&pool("spot", 2, "tok-pool-1"))
        .await
        .expect("accepted");
    assert!(submitted.flow_id.is_some() && submitted.trace_id.is_some());
    assert!(submitted.request_id.is_some());
    // The wire request, as the SDK models it.
    let line = &env.calls("ScaleOutCluster")[0];
    assert!(line.write, "{line:?}");
    let p = &line.params;
    assert_eq!(p["InstanceChargeType"], "SPOTPAID");
    assert_eq!(p["ScaleOutNodeConfig"]["NodeFlag"], "TASK");
    assert_eq!(p["ScaleOutNodeConfig"]["NodeCount"], 2);
    assert_eq!(p["ResourceSpec"]["InstanceType"], "SA2.2XLARGE16");
    assert_eq!(p["YarnNodeLabel"], "spot");
    assert_eq!(p["EnableStartServiceFlag"], true);
    assert_eq!(p["ClientToken"], "tok-pool-1");
    assert_eq!(p["Tags"][0]["TagKey"], POOL_TAG_KEY);
    assert_eq!(p["Tags"][0]["TagValue"], "spot");

    // Scaling out, then the nodes are there, tagged.
    let busy = client.observe().await.unwrap();
    assert!(!busy.state.is_running(), "{:?}", busy.state);
    env.finish_operation();
    let observed = client.observe().await.unwrap();
    assert_eq!((observed.core, observed.task), (3, 3));
    let nodes = client.describe_nodes().await.unwrap();
    let by_pool = task_nodes_by_tag(&nodes, POOL_TAG_KEY);
    assert_eq!(by_pool.get(&Some("spot".to_string())), Some(&2));
    assert_eq!(by_pool.get(&None), Some(&1), "the cluster's own Task node");
    let tagged: Vec<_> = nodes
        .iter()
        .filter(|n| node_tag(n, POOL_TAG_KEY).is_some())
        .collect();
    assert!(tagged
        .iter()
        .all(|n| n.spec.as_deref() == Some("SA2.2XLARGE16") && n.flag == Some(flag::TASK)));
    let untagged_task = nodes
        .iter()
        .find(|n| n.flag == Some(flag::TASK) && n.tags.is_none())
        .unwrap();
    assert_eq!(untagged_task.spec.as_deref(), Some(DEFAULT_SPEC));
    let attrs = env.fake.node_attributes();
    assert_eq!(attrs.len(), 2);
    assert!(attrs.values().all(|a| a.charge_type == "SPOTPAID"));

    // A second pool, on demand, after it: its nodes are its own.
    let mut ondemand = pool("ondemand", 1, "tok-pool-2");
    ondemand.charge_type = PoolChargeType::PostpaidByHour;
    ondemand.instance_type = None;
    ondemand.yarn_node_label = None;
    client.scale_out_cluster(&ondemand).await.unwrap();
    let line = env.calls("ScaleOutCluster").pop().unwrap();
    assert_eq!(line.params["InstanceChargeType"], "POSTPAID_BY_HOUR");
    assert!(
        line.params.get("ResourceSpec").is_none() && line.params.get("YarnNodeLabel").is_none()
    );
    env.finish_operation();
    let by_pool = task_nodes_by_tag(&client.describe_nodes().await.unwrap(), POOL_TAG_KEY);
    assert_eq!(by_pool.get(&Some("spot".to_string())), Some(&2));
    assert_eq!(by_pool.get(&Some("ondemand".to_string())), Some(&1));
    let attrs = env.fake.node_attributes();
    assert_eq!(
        attrs
            .values()
            .filter(|a| a.charge_type == "POSTPAID_BY_HOUR")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_repeated_client_token_adds_nothing() {
    let env = start(3, 0).await;
    let client = env.client();
    let first = client
        .scale_out_cluster(&pool("spot", 2, "tok-repeat"))
        .await
        .unwrap();
    let again = client
        .scale_out_cluster(&pool("spot", 2, "tok-repeat"))
        .await
        .unwrap();
    assert_eq!(first.flow_id, again.flow_id);
    assert_eq!(first.trace_id, again.trace_id);
    let calls = env.calls("ScaleOutCluster");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls.iter().filter(|l| l.write).count(),
        1,
        "only the first started an operation"
    );
    assert_eq!(env.model.write_count(), 1);
    env.finish_operation();
    assert_eq!(client.observe().await.unwrap().task, 2);
    // Another token while idle starts another operation.
    client
        .scale_out_cluster(&pool("spot", 1, "tok-other"))
        .await
        .unwrap();
    assert_eq!(env.model.write_count(), 2);
}

#[tokio::test]
async fn a_spec_the_cluster_refuses_is_permanent_and_says_what_to_change() {
    let env = start(3, 0).await;
    env.fake.refuse_instance_types(&["SA2.2XLARGE16"]);
    let client = env.client();
    let err = client
        .scale_out_cluster(&pool("spot", 2, "tok-spec"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (
            ErrorClass::Invalid,
            "ResourceUnavailable.ResourceSpecNotDefaultSpec"
        )
    );
    assert!(
        err.message.contains("taskPools[].tencent.instanceType"),
        "{}",
        err.message
    );
    assert!(!err.may_have_applied());
    assert_eq!(env.model.write_count(), 0);
    // Without an instance type the cluster's default spec is used.
    let mut plain = pool("spot", 1, "tok-spec-2");
    plain.instance_type = None;
    client.scale_out_cluster(&plain).await.unwrap();
    assert_eq!(env.model.write_count(), 1);
}

#[tokio::test]
async fn refused_specs_can_be_set_through_the_control_route() {
    let env = start(3, 0).await;
    let http = reqwest::Client::new();
    let status = http
        .put(format!("{}/_fake/refused-specs", env.endpoint))
        .json(&serde_json::json!({"instanceTypes": ["S5.LARGE8"]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let mut p = pool("spot", 1, "tok-route");
    p.instance_type = Some("S5.LARGE8".into());
    let err = env.client().scale_out_cluster(&p).await.unwrap_err();
    assert_eq!(err.code, "ResourceUnavailable.ResourceSpecNotDefaultSpec");
}

#[tokio::test]
async fn scale_out_cluster_needs_a_valid_signature_and_a_token() {
    let env = start(3, 0).await;
    let err = env
        .client_with("not-the-secret-key")
        .scale_out_cluster(&pool("spot", 1, "tok-sig"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.code.as_str()),
        (ErrorClass::Auth, "AuthFailure.SignatureFailure")
    );
    assert_eq!(env.model.write_count(), 0);
    // Refused before any request: no token, no count, a tag without a key.
    let client = env.client();
    let before = env.control.journal().len();
    for bad in [
        pool("spot", 1, " "),
        pool("spot", 0, "t"),
        PoolScaleOut {
            tags: vec![(String::new(), "x".into())],
            ..pool("spot", 1, "t")
        },
    ] {
        let err = client.scale_out_cluster(&bad).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid, "{err}");
    }
    assert_eq!(env.control.journal().len(), before, "nothing was sent");
    // A busy cluster answers ResourceInUse.InstanceInProcess.
    client
        .scale_out_cluster(&pool("spot", 1, "tok-a"))
        .await
        .unwrap();
    let busy = client
        .scale_out_cluster(&pool("spot", 1, "tok-b"))
        .await
        .unwrap_err();
    assert_eq!(
        (busy.class, busy.code.as_str()),
        (ErrorClass::Busy, "ResourceInUse.InstanceInProcess")
    );
}
