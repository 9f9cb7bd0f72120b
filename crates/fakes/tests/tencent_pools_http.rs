//! Task pools on Tencent EMR: the client's `ScaleOutCluster` against the fake
//! EMR endpoint, over real HTTP on 127.0.0.1 with real TC3 signatures.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::TencentSpec;
use clusterscale_core::clock::ManualClock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::http::RateLimits;
use clusterscale_core::cloud::{Cloud, ErrorClass};
use clusterscale_fakes::tencent::DEFAULT_SPEC;
use clusterscale_fakes::{FakeControl, JournalLine, TencentFake, TencentFakeConfig};
use clusterscale_sim::SimModel;
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
    let model = common::model(INSTANCE, core, task, OP_TIME, clock.clone());
    let fake =
        TencentFake::new(model.clone(), TencentFakeConfig::new(SECRET_ID, SECRET_KEY)).unwrap();
    let control = fake.control();
    let (listener, endpoint) = common::listen().await;
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
    let observed = client.observe_pools(&[spot_pool(2)]).await.unwrap();
    assert_eq!((observed.core, observed.task), (3, 1));
    assert_eq!(observed.pools.get("spot"), Some(&2));
    // Without the pool in the spec, its nodes are in no pool, not the default one.
    let observed = client.observe().await.unwrap();
    assert_eq!((observed.core, observed.task), (3, 1));
    assert!(observed.pools.is_empty());
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
    let o = client
        .observe_pools(&[TaskPoolSpec::named("spot", 2)])
        .await
        .unwrap();
    assert_eq!((o.task, o.pools.get("spot")), (0, Some(&2)));
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

// --- Task pools behind the `Cloud` trait, and through the engine ----------

use clusterscale_core::api::conditions::find;
use clusterscale_core::api::{
    NodeGroup, Phase, PoolNodes, ScaledClusterSpec, ScaledClusterStatus, TaskPoolSpec,
    TencentChargeType, TencentPoolSpec,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::{ScaleRequest, Submitted};
use clusterscale_engine::{reconcile, EngineConfig, EventType, MemoryStore, Report, Target};
use clusterscale_fakes::FakeFaults;
use std::collections::{BTreeMap, BTreeSet};

const SPOT_TYPE: &str = "SA5.2XLARGE32";
const SPEC_REFUSED: &str = "ResourceUnavailable.ResourceSpecNotDefaultSpec";

/// Pool `spot`: SPOTPAID, an instance type and a YARN label.
fn spot_pool(count: i32) -> TaskPoolSpec {
    TaskPoolSpec {
        tencent: Some(TencentPoolSpec {
            charge_type: TencentChargeType::Spotpaid,
            instance_type: Some(SPOT_TYPE.into()),
            yarn_node_label: Some("spot".into()),
        }),
        ..TaskPoolSpec::named("spot", count)
    }
}

/// Pool `ondemand`: POSTPAID_BY_HOUR, the cluster's default spec, no label.
fn ondemand_pool(count: i32) -> TaskPoolSpec {
    TaskPoolSpec {
        tencent: Some(TencentPoolSpec::default()),
        ..TaskPoolSpec::named("ondemand", count)
    }
}

fn pool_request(pool: &TaskPoolSpec, count: i32, token: &str) -> ScaleRequest {
    ScaleRequest {
        group: NodeGroup::Task,
        pool: Some(pool.clone()),
        count,
        from_count: 0,
        token: token.into(),
        prefer_nodes: Vec::new(),
        graceful_timeout_seconds: 0,
    }
}

impl Env {
    fn spec(&self) -> TencentSpec {
        TencentSpec::test()
            .instance(INSTANCE)
            .secret("tencent-credentials")
            .endpoint(&self.endpoint)
    }

    /// Scale `pool` out by `count` through the trait and let it finish.
    async fn grow(&self, client: &TencentCloud, pool: &TaskPoolSpec, count: i32) -> Submitted {
        let token = format!("tok-grow-{}-{}", pool.name, self.model.write_count());
        let s = client
            .scale_out(&pool_request(pool, count, &token))
            .await
            .expect("accepted");
        self.finish_operation();
        s
    }

    /// The CVM ids (`OrderNo`) of the managed Task nodes, by pool tag
    /// (`None`: untagged).
    async fn cvm_ids_by_pool(
        &self,
        client: &TencentCloud,
    ) -> BTreeMap<Option<String>, BTreeSet<String>> {
        let mut out: BTreeMap<Option<String>, BTreeSet<String>> = BTreeMap::new();
        for n in client.describe_nodes().await.unwrap() {
            if n.flag == Some(flag::TASK) && n.auto_flag != Some(1) {
                out.entry(node_tag(&n, POOL_TAG_KEY).map(str::to_string))
                    .or_default()
                    .insert(n.order_no.clone().unwrap());
            }
        }
        out
    }
}

/// Two pools and the default one, plus nodes of EMR's own auto-scaling:
/// each pool counts its tagged nodes, the default pool only the untagged
/// ones, AutoFlag nodes none; the observation is one DescribeInstances and
/// one DescribeClusterNodes, with pools as without.
#[tokio::test]
async fn observe_counts_each_pool_by_its_tag_and_autoflag_nodes_in_none() {
    let env = start(3, 2).await;
    env.fake.add_unmanaged_nodes(NodeGroup::Task, 2, 0);
    let client = env.client();
    let (spot, ondemand) = (spot_pool(2), ondemand_pool(1));
    env.grow(&client, &spot, 2).await;
    env.grow(&client, &ondemand, 1).await;

    let before = env.control.journal().len();
    let o = client
        .observe_pools(&[spot.clone(), ondemand.clone()])
        .await
        .unwrap();
    let calls: Vec<String> = env.control.journal()[before..]
        .iter()
        .map(|l| l.action.clone())
        .collect();
    assert_eq!(calls, ["DescribeInstances", "DescribeClusterNodes"]);
    assert_eq!((o.core, o.task), (3, 2), "the default pool: untagged only");
    assert_eq!(o.pools.get("spot"), Some(&2));
    assert_eq!(o.pools.get("ondemand"), Some(&1));
    assert_eq!(o.unmanaged.auto_scaled_task, 2, "AutoFlag nodes in no pool");
    assert_eq!(o.total(), 8);
    // The same calls without pools.
    let before = env.control.journal().len();
    client.observe().await.unwrap();
    assert_eq!(env.control.journal().len() - before, 2);

    // A pool not in the spec: its nodes are in no pool and not the default one.
    let o = client
        .observe_pools(std::slice::from_ref(&spot))
        .await
        .unwrap();
    assert_eq!((o.task, o.pools.len()), (2, 1));
    assert_eq!(o.pools.get("spot"), Some(&2));
    // Its nodes are not among the nodes counted: Core 3, default 2, spot 2.
    assert_eq!(o.nodes.len(), 7);
    // They are reported by pool, and the 500 limit counts them.
    assert_eq!(
        o.unmanaged.unlisted_pools,
        [("ondemand".to_string(), 1)].into_iter().collect()
    );
    assert_eq!(o.total(), 8);
    // A pool with no node yet is reported at 0.
    let o = client
        .observe_pools(&[spot, ondemand, TaskPoolSpec::named("empty", 3)])
        .await
        .unwrap();
    assert_eq!(o.pools.get("empty"), Some(&0));
}

/// A pool's scale-in names only that pool's CVM ids; the default pool's
/// never names a pool's node, with or without graceful decommission, and
/// refuses rather than take one.
#[tokio::test]
async fn pool_scale_in_names_only_its_own_nodes_and_default_never_takes_a_pools() {
    let env = start(3, 2).await;
    let client = env.client();
    let (spot, ondemand) = (spot_pool(2), ondemand_pool(2));
    env.grow(&client, &spot, 2).await;
    env.grow(&client, &ondemand, 2).await;
    let ids = env.cvm_ids_by_pool(&client).await;
    let of = |p: Option<&str>| ids[&p.map(str::to_string)].clone();
    assert_eq!(
        (
            of(None).len(),
            of(Some("spot")).len(),
            of(Some("ondemand")).len()
        ),
        (2, 2, 2)
    );

    // spot 2 -> 1: TerminateClusterNodes, TASK, one of spot's CVM ids.
    let mut req = pool_request(&spot, 1, "");
    req.from_count = 2;
    let s = client.scale_in(&req).await.expect("accepted");
    assert!(
        s.flow_id.is_some(),
        "TerminateClusterNodes answers a FlowId"
    );
    let line = env.calls("TerminateClusterNodes").pop().unwrap();
    assert_eq!(line.params["NodeFlag"], "TASK");
    assert_eq!(line.params["GraceDownFlag"], false);
    let named: Vec<String> = line.params["CvmInstanceIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(named.len(), 1);
    assert!(of(Some("spot")).contains(&named[0]), "{named:?}");
    env.finish_operation();
    let o = client
        .observe_pools(&[spot.clone(), ondemand.clone()])
        .await
        .unwrap();
    assert_eq!((o.task, o.pools["spot"], o.pools["ondemand"]), (2, 1, 2));

    // The default pool, gracefully: only untagged CVM ids.
    let default_in = |count: i32, graceful: i32| ScaleRequest {
        group: NodeGroup::Task,
        pool: None,
        count,
        from_count: 2,
        token: String::new(),
        prefer_nodes: of(Some("ondemand")).into_iter().collect(),
        graceful_timeout_seconds: graceful,
    };
    let s = client
        .scale_in(&default_in(1, 120))
        .await
        .expect("accepted");
    let line = env.calls("TerminateClusterNodes").pop().unwrap();
    assert_eq!(line.params["GraceDownTime"], 120);
    let named = line.params["CvmInstanceIds"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        of(None).contains(&named),
        "{named} is not the default pool's"
    );
    assert_eq!(s.node_ids.len(), 1);
    env.finish_operation();

    // Without graceful decommission, TerminateTasks with the one untagged node left,
    // never a pool's node (the preferred ondemand nodes are skipped).
    let s = client.scale_in(&default_in(1, 0)).await.expect("accepted");
    let line = env.calls("TerminateTasks").pop().unwrap();
    assert_eq!(line.params["ResourceIds"].as_array().unwrap().len(), 1);
    assert_eq!(s.node_ids.len(), 1);
    env.finish_operation();
    let o = client
        .observe_pools(&[spot.clone(), ondemand.clone()])
        .await
        .unwrap();
    assert_eq!((o.task, o.pools["spot"], o.pools["ondemand"]), (0, 1, 2));

    // Nothing untagged is left: the default pool refuses, it does not take a pool's node.
    let writes = env.model.write_count();
    let e = client.scale_in(&default_in(1, 0)).await.unwrap_err();
    assert_eq!(e.code, "ClusterScale.NotEnoughRemovableNodes", "{e}");
    assert!(e.message.contains("default pool"), "{e}");
    let mut req = pool_request(&spot, 2, "");
    req.from_count = 1;
    let e = client.scale_in(&req).await.unwrap_err();
    assert!(e.message.contains("only 1 nodes of pool spot"), "{e}");
    assert_eq!(env.model.write_count(), writes, "nothing was removed");
    let after = env.cvm_ids_by_pool(&client).await;
    assert_eq!(after[&Some("ondemand".to_string())], of(Some("ondemand")));
}

fn engine_spec(env: &Env, core: i32, task: i32, pools: &[TaskPoolSpec]) -> ScaledClusterSpec {
    let mut spec = ScaledClusterSpec::test()
        .tencent(env.spec())
        .counts(core, task);
    spec.task_pools = pools.to_vec();
    spec
}

async fn pass(
    spec: &ScaledClusterSpec,
    status: &ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
) -> Report {
    reconcile(
        Target {
            uid: "uid-tencent-pools",
            generation: 1,
            spec,
        },
        status,
        cloud,
        clock,
        &mut MemoryStore::default(),
        &EngineConfig::default(),
    )
    .await
    .expect("status saved")
}

/// Passes until converged (or `limit` of clock), the clock advanced by each
/// pass's requeue; every pass's report.
async fn converge(
    spec: &ScaledClusterSpec,
    mut status: ScaledClusterStatus,
    cloud: &dyn Cloud,
    clock: &ManualClock,
    limit: Duration,
) -> Vec<Report> {
    let start = clock.now();
    let mut reports = Vec::new();
    loop {
        let r = pass(spec, &status, cloud, clock).await;
        let elapsed = Duration::try_from(start.duration_until(clock.now())).unwrap();
        let done = r.status.phase == Phase::Converged || elapsed >= limit;
        status = r.status.clone();
        let wait = r.requeue_after.unwrap_or(Duration::from_secs(10));
        reports.push(r);
        if done {
            return reports;
        }
        clock.advance(wait);
    }
}

/// Which writes reached the fake, as `action group/pool count`.
fn writes(env: &Env) -> Vec<String> {
    env.control
        .journal()
        .into_iter()
        .filter(|l| l.write)
        .map(|l| {
            let p = &l.params;
            match l.action.as_str() {
                "ScaleOutInstance" => match p.get("CoreCount") {
                    Some(n) => format!("ScaleOutInstance core {n}"),
                    None => format!("ScaleOutInstance task {}", p["TaskCount"]),
                },
                "ScaleOutCluster" => format!(
                    "ScaleOutCluster {} {}",
                    p["Tags"][0]["TagValue"].as_str().unwrap_or("?"),
                    p["ScaleOutNodeConfig"]["NodeCount"]
                ),
                other => format!(
                    "{other} {}",
                    p.get("CvmInstanceIds")
                        .or(p.get("ResourceIds"))
                        .and_then(|v| v.as_array())
                        .map_or(0, Vec::len)
                ),
            }
        })
        .collect()
}

/// The engine grows Core, the default pool, then the pools in list order,
/// each pool with ScaleOutCluster carrying its tag, spec and charge type;
/// it shrinks the pools in reverse order, then the default pool, each
/// naming only its own nodes.
#[tokio::test]
async fn engine_converges_default_and_two_pools_in_order_with_their_attributes() {
    let env = start(3, 1).await;
    let cloud = env.client();
    let (spot, ondemand) = (spot_pool(2), ondemand_pool(1));
    let spec = engine_spec(&env, 4, 2, &[spot.clone(), ondemand.clone()]);
    let reports = converge(
        &spec,
        Default::default(),
        &cloud,
        &env.clock,
        Duration::from_secs(900),
    )
    .await;
    let last = reports.last().unwrap();
    assert_eq!(
        last.status.phase,
        Phase::Converged,
        "{:?}",
        last.status.message
    );
    assert_eq!(
        writes(&env),
        [
            "ScaleOutInstance core 1",
            "ScaleOutInstance task 1",
            "ScaleOutCluster spot 2",
            "ScaleOutCluster ondemand 1"
        ]
    );
    assert_eq!(last.status.pools_summary.as_deref(), Some("2/2,1/1"));
    // Each pool's request, as the issue lists it.
    let outs = env.calls("ScaleOutCluster");
    let (s, o) = (&outs[0].params, &outs[1].params);
    assert_eq!(s["InstanceChargeType"], "SPOTPAID");
    assert_eq!(s["ResourceSpec"]["InstanceType"], SPOT_TYPE);
    assert_eq!(s["YarnNodeLabel"], "spot");
    assert_eq!(s["EnableStartServiceFlag"], true);
    assert_eq!(s["ScaleOutNodeConfig"]["NodeFlag"], "TASK");
    assert_eq!(o["InstanceChargeType"], "POSTPAID_BY_HOUR");
    assert!(o.get("ResourceSpec").is_none() && o.get("YarnNodeLabel").is_none());
    // The token is the operation's id (its ClientToken).
    let ops: Vec<_> = reports.iter().filter_map(|r| r.started.clone()).collect();
    let spot_op = ops
        .iter()
        .find(|op| op.pool.as_deref() == Some("spot"))
        .unwrap();
    assert_eq!(s["ClientToken"], spot_op.id.as_str());
    assert!(spot_op.flow_id.is_some(), "resolved by its FlowId");
    let finished: Vec<_> = reports.iter().filter_map(|r| r.finished.clone()).collect();
    assert!(finished
        .iter()
        .all(|op| op.outcome == Some(clusterscale_core::api::Outcome::Succeeded)));
    // The nodes the fake made, with the right tags, spec and charge type.
    let attrs = env.fake.node_attributes();
    let of = |pool: &str| -> Vec<_> {
        attrs
            .values()
            .filter(|a| {
                a.tags
                    .contains(&(POOL_TAG_KEY.to_string(), pool.to_string()))
            })
            .collect()
    };
    assert_eq!(of("spot").len(), 2);
    assert!(of("spot")
        .iter()
        .all(|a| a.charge_type == "SPOTPAID" && a.instance_type.as_deref() == Some(SPOT_TYPE)));
    assert_eq!(of("ondemand").len(), 1);
    assert!(of("ondemand")
        .iter()
        .all(|a| a.charge_type == "POSTPAID_BY_HOUR" && a.instance_type.is_none()));
    assert_eq!(
        attrs.len(),
        3,
        "the default pool's node came from ScaleOutInstance"
    );

    // Shrink: ondemand 1 -> 0, spot 2 -> 1, default 2 -> 1, in that order.
    let before = env.cvm_ids_by_pool(&cloud).await;
    let spec = engine_spec(&env, 4, 1, &[spot_pool(1), ondemand_pool(0)]);
    let reports = converge(
        &spec,
        last.status.clone(),
        &cloud,
        &env.clock,
        Duration::from_secs(900),
    )
    .await;
    assert_eq!(reports.last().unwrap().status.phase, Phase::Converged);
    assert_eq!(
        writes(&env)[4..],
        [
            "TerminateClusterNodes 1",
            "TerminateClusterNodes 1",
            "TerminateTasks 1"
        ]
    );
    let named = |i: usize| -> BTreeSet<String> {
        env.calls("TerminateClusterNodes")[i].params["CvmInstanceIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert!(named(0).is_subset(&before[&Some("ondemand".into())]));
    assert!(named(1).is_subset(&before[&Some("spot".into())]));
    let after = env.cvm_ids_by_pool(&cloud).await;
    assert_eq!(after[&None].len(), 1);
    assert!(after[&None].is_subset(&before[&None]));
    assert_eq!(after[&Some("spot".into())].len(), 1);
    assert!(!after.contains_key(&Some("ondemand".into())));
}

/// A pool's scale-out whose answer is lost behind a proxy (HTML 502, the
/// write dropped) is re-sent by the engine with the same ClientToken; a
/// re-send of an applied one adds nothing (EMR deduplicates the token).
#[tokio::test]
async fn pool_scale_out_is_resent_with_its_token_and_deduplicated() {
    let env = start(3, 0).await;
    let cloud = env.client();
    let spot = spot_pool(2);
    let spec = engine_spec(&env, 3, 0, std::slice::from_ref(&spot));
    env.control.set_faults(FakeFaults {
        proxy_error_rate: 1.0,
        proxy_error_drops_write: true,
        ..Default::default()
    });
    let first = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    assert!(first.status.pending_operation.is_some());
    assert_eq!(env.model.write_count(), 0, "dropped behind the proxy");
    env.control.set_faults(FakeFaults::default());
    env.clock.advance(Duration::from_secs(5));
    let reports = converge(
        &spec,
        first.status.clone(),
        &cloud,
        &env.clock,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(reports.last().unwrap().status.phase, Phase::Converged);
    let sends = env.calls("ScaleOutCluster");
    assert_eq!(sends.len(), 2, "the first send and one re-send");
    assert_eq!(
        sends[0].params["ClientToken"],
        sends[1].params["ClientToken"]
    );
    assert_eq!(env.model.write_count(), 1);

    // The same request again, with its token, while EMR still remembers it.
    let token = sends[0].params["ClientToken"].as_str().unwrap().to_string();
    let again = cloud
        .scale_out(&pool_request(&spot, 2, &token))
        .await
        .expect("answered");
    assert!(again.flow_id.is_some());
    assert_eq!(env.model.write_count(), 1, "deduplicated: nothing more");
    let o = cloud.observe_pools(&[spot]).await.unwrap();
    assert_eq!(o.pools.get("spot"), Some(&2));
}

/// An instance type the cluster refuses: a permanent error (Degraded True
/// with the code, a Warning Event once) whose message names the field to
/// change; nothing is applied, the next try waits the Invalid backoff
/// (15 min), and each later try is refused alike without effect.
#[tokio::test]
async fn a_refused_instance_type_is_permanent_through_the_engine() {
    let env = start(3, 0).await;
    env.fake.refuse_instance_types(&[SPOT_TYPE]);
    let cloud = env.client();
    let spec = engine_spec(&env, 3, 0, &[spot_pool(2)]);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    let e = r.error.clone().expect("refused");
    assert_eq!(
        (e.class, e.code.as_str()),
        (
            ErrorClass::Invalid,
            "ResourceUnavailable.ResourceSpecNotDefaultSpec"
        )
    );
    assert!(!e.may_have_applied());
    let last = r.status.last_error.clone().unwrap();
    assert_eq!(last.code, "ResourceUnavailable.ResourceSpecNotDefaultSpec");
    assert!(
        last.message.contains("taskPools[].tencent.instanceType"),
        "{}",
        last.message
    );
    let degraded = find(&r.status.conditions, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "Invalid")
    );
    assert!(
        degraded.message.contains("ResourceSpecNotDefaultSpec"),
        "{}",
        degraded.message
    );
    assert_eq!(r.status.phase, Phase::Failed);
    let wait = r.requeue_after.unwrap();
    assert!(wait >= Duration::from_secs(900), "{wait:?}");
    let warnings = |r: &Report| {
        r.events
            .iter()
            .filter(|e| e.type_ == EventType::Warning)
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    };
    let first_warnings = warnings(&r);
    assert!(
        first_warnings.contains(&"Invalid".to_string()),
        "{first_warnings:?}"
    );

    // Each later try (after the 15-minute backoff) is refused alike.
    let since = degraded.last_transition_time.clone();
    let mut status = r.status.clone();
    let mut later_warnings = Vec::new();
    for _ in 0..3 {
        env.clock.advance(Duration::from_secs(900));
        let r = pass(&spec, &status, &cloud, &env.clock).await;
        later_warnings.extend(warnings(&r));
        assert_eq!(
            r.error.as_ref().map(|e| e.code.as_str()),
            Some(SPEC_REFUSED)
        );
        status = r.status.clone();
        let degraded = find(&status.conditions, "Degraded").unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "Invalid")
        );
        assert_eq!(
            degraded.last_transition_time, since,
            "Degraded did not flip"
        );
    }
    // Each later try is one refused operation (ScaleOutFailed); the Degraded
    // Warning (reason Invalid) is not repeated, and Degraded never flapped.
    assert_eq!(later_warnings, ["ScaleOutFailed"; 3], "{later_warnings:?}");
    assert_eq!(env.model.write_count(), 0, "nothing applied");
    assert!(env.calls("ScaleOutCluster").iter().all(|l| !l.write));
}

/// `InvalidParameter.InvalidInstanceChargeType` from ScaleOutCluster (as EMR
/// answers for a charge type the region or account refuses) reaches status
/// as a permanent error whose message says what to change.
#[tokio::test]
async fn a_refused_charge_type_is_permanent_through_the_engine() {
    let env = start(3, 0).await;
    env.control.inject(clusterscale_fakes::InjectedError {
        action: Some("ScaleOutCluster".into()),
        code: "InvalidParameter.InvalidInstanceChargeType".into(),
        message: "The InstanceChargeType is not supported.".into(),
        http_status: None,
    });
    let cloud = env.client();
    let spec = engine_spec(&env, 3, 0, &[spot_pool(1)]);
    let r = pass(&spec, &Default::default(), &cloud, &env.clock).await;
    let last = r.status.last_error.clone().expect("lastError");
    assert_eq!(last.code, "InvalidParameter.InvalidInstanceChargeType");
    assert!(
        last.message.contains("POSTPAID_BY_HOUR or SPOTPAID"),
        "{}",
        last.message
    );
    let degraded = find(&r.status.conditions, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "Invalid")
    );
    assert_eq!(
        r.events
            .iter()
            .filter(|e| e.type_ == EventType::Warning && e.reason == "Invalid")
            .count(),
        1
    );
    assert_eq!(env.model.write_count(), 0);
}

/// A pool removed from the spec leaves its tagged nodes in no pool: the
/// engine shows them in `status.observed.unlistedPools` with one Warning,
/// and never removes them (the planner counts them toward the 500 limit:
/// `plan::tests`).
#[tokio::test]
async fn a_removed_pools_nodes_are_shown_never_removed_and_counted() {
    let env = start(3, 1).await;
    let client = env.client();
    let clock: &ManualClock = &env.clock;
    let spot = spot_pool(2);
    let r = converge(
        &engine_spec(&env, 3, 1, std::slice::from_ref(&spot)),
        Default::default(),
        &client,
        clock,
        Duration::from_secs(600),
    )
    .await;
    let status = r.last().unwrap().status.clone();
    assert_eq!(status.phase, Phase::Converged);
    let writes_before = writes(&env).len();

    // The pool is removed: its 2 nodes stay, in no pool.
    let spec = engine_spec(&env, 3, 1, &[]);
    let r = pass(&spec, &status, &client, clock).await;
    assert_eq!(r.status.phase, Phase::Converged, "{:?}", r.status.message);
    let observed = r.status.observed.as_ref().unwrap();
    assert_eq!(
        observed.unlisted_pools,
        [PoolNodes {
            name: "spot".into(),
            nodes: 2
        }]
    );
    let warned: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.reason == "UnlistedPoolNodes")
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", r.events);
    assert!(
        warned[0].message.contains("spot (2 node(s))"),
        "{}",
        warned[0].message
    );
    // Once per change: the next pass says nothing new.
    clock.advance(r.requeue_after.unwrap());
    let r2 = pass(&spec, &r.status, &client, clock).await;
    assert!(r2.events.iter().all(|e| e.reason != "UnlistedPoolNodes"));
    assert_eq!(writes(&env).len(), writes_before, "never removed");
}
