//! The fake YARN ResourceManager over real HTTP on 127.0.0.1: the Cluster
//! Metrics API's fields, the load following the simulated cluster's nodes,
//! the demand's control route, and `clusterscale-fake-cloud --yarn`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::NodeGroup;
use clusterscale_core::clock::ManualClock;
use clusterscale_fakes::yarn::{YarnConfig, YarnFake};
use clusterscale_sim::SimModel;
use jiff::Timestamp;
use serde_json::{json, Value};

const OP_TIME: Duration = Duration::from_secs(60);
const NODE_MB: i64 = 65536;

/// The fields of Hadoop's `ClusterMetricsInfo` the fake serves, each a number.
const FIELDS: [&str; 27] = [
    "appsSubmitted",
    "appsCompleted",
    "appsPending",
    "appsRunning",
    "appsFailed",
    "appsKilled",
    "reservedMB",
    "availableMB",
    "allocatedMB",
    "pendingMB",
    "reservedVirtualCores",
    "availableVirtualCores",
    "allocatedVirtualCores",
    "pendingVirtualCores",
    "containersAllocated",
    "containersReserved",
    "containersPending",
    "totalMB",
    "totalVirtualCores",
    "totalNodes",
    "lostNodes",
    "unhealthyNodes",
    "decommissioningNodes",
    "decommissionedNodes",
    "rebootedNodes",
    "activeNodes",
    "shutdownNodes",
];

struct Env {
    model: Arc<SimModel>,
    clock: Arc<ManualClock>,
    base: String,
    http: reqwest::Client,
}

async fn start(core: i32, task: i32) -> Env {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let model = common::model("emr-yarn0001", core, task, OP_TIME, clock.clone());
    let fake = YarnFake::new(model.clone(), YarnConfig::default()).unwrap();
    let (listener, base) = common::listen().await;
    tokio::spawn(fake.serve(listener));
    Env {
        model,
        clock,
        base,
        http: reqwest::Client::new(),
    }
}

impl Env {
    /// `clusterMetrics`, asked for as JSON.
    async fn metrics(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/ws/v1/cluster/metrics", self.base))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["clusterMetrics"].clone()
    }

    async fn put_demand(&self, body: &str) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/_fake/yarn/demand", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn set_demand(&self, mb: i64) {
        let (status, body) = self
            .put_demand(&json!({ "memoryMB": mb }).to_string())
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["memoryMB"], mb);
    }
}

fn n(m: &Value, field: &str) -> i64 {
    m[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not a whole number: {m}"))
}

#[tokio::test]
async fn cluster_metrics_has_the_resource_managers_fields_as_numbers() {
    let env = start(3, 1).await;
    let r = env
        .http
        .get(format!("{}/ws/v1/cluster/metrics", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no Accept header: JSON, as the real one");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = r.json().await.unwrap();
    let m = body["clusterMetrics"]
        .as_object()
        .unwrap_or_else(|| panic!("no clusterMetrics object: {body}"));
    for field in FIELDS {
        assert!(
            m.get(field).is_some_and(Value::is_i64),
            "{field} missing or not a number: {body}"
        );
    }
    assert_eq!(m.len(), FIELDS.len(), "only these fields: {body}");
    let m = &body["clusterMetrics"];
    // Core nodes run NodeManagers too.
    assert_eq!((n(m, "totalNodes"), n(m, "activeNodes")), (4, 4));
    assert_eq!(n(m, "totalMB"), 4 * NODE_MB);
    assert_eq!(n(m, "totalVirtualCores"), 4 * 16);
    assert_eq!(n(m, "availableMB"), 4 * NODE_MB);

    let xml_only = env
        .http
        .get(format!("{}/ws/v1/cluster/metrics", env.base))
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(xml_only.status(), 406);
    let e: Value = xml_only.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("application/json"),
        "{e}"
    );
}

#[tokio::test]
async fn a_task_scale_out_relieves_pending_and_the_demand_stays() {
    let env = start(3, 0).await;
    // Five nodes' worth on three.
    env.set_demand(5 * NODE_MB).await;
    let before = env.metrics().await;
    assert_eq!(n(&before, "allocatedMB"), 3 * NODE_MB);
    assert_eq!(n(&before, "pendingMB"), 2 * NODE_MB);
    assert_eq!(n(&before, "availableMB"), 0);
    assert_eq!(n(&before, "containersAllocated"), 3 * 16);
    assert_eq!(n(&before, "containersPending"), 2 * 16);
    assert_eq!(n(&before, "pendingVirtualCores"), 2 * 16);
    assert!(n(&before, "appsRunning") >= 1 && n(&before, "appsPending") > 0);

    // One Task node, then two more: pending falls with each, the demand in
    // nodes does not move.
    env.model.scale_out(NodeGroup::Task, 1, None).unwrap();
    assert_eq!(
        n(&env.metrics().await, "pendingMB"),
        2 * NODE_MB,
        "nodes count once the operation is done"
    );
    env.clock.advance(OP_TIME);
    let one = env.metrics().await;
    assert_eq!(n(&one, "totalNodes"), 4);
    assert_eq!(n(&one, "pendingMB"), NODE_MB);
    env.model.scale_out(NodeGroup::Task, 2, None).unwrap();
    env.clock.advance(OP_TIME);
    let after = env.metrics().await;
    assert_eq!(n(&after, "totalNodes"), 6);
    assert_eq!(n(&after, "pendingMB"), 0);
    assert_eq!(n(&after, "containersPending"), 0);
    assert_eq!(n(&after, "appsPending"), 0);
    assert_eq!(n(&after, "appsRunning"), 1);
    assert_eq!(n(&after, "availableMB"), NODE_MB);
    for m in [&before, &one, &after] {
        assert_eq!(
            n(m, "allocatedMB") + n(m, "pendingMB"),
            5 * NODE_MB,
            "the demand is steady across the scale-out: {m}"
        );
    }

    // A Task pool's nodes are NodeManagers too.
    env.model.add_pool("spot", 2);
    assert_eq!(n(&env.metrics().await, "totalNodes"), 8);
}

#[tokio::test]
async fn no_demand_no_apps() {
    let env = start(3, 2).await;
    env.set_demand(2 * NODE_MB).await;
    assert_eq!(n(&env.metrics().await, "appsRunning"), 1);
    env.set_demand(0).await;
    let m = env.metrics().await;
    for field in [
        "appsSubmitted",
        "appsPending",
        "appsRunning",
        "allocatedMB",
        "pendingMB",
        "allocatedVirtualCores",
        "containersAllocated",
        "containersPending",
    ] {
        assert_eq!(n(&m, field), 0, "{field}: {m}");
    }
    assert_eq!(n(&m, "availableMB"), 5 * NODE_MB);
}

#[tokio::test]
async fn the_demand_route_checks_its_body() {
    let env = start(3, 0).await;
    for (body, says) in [
        (r#"{"memoryMB": -4096}"#, "memoryMB is -4096"),
        (r#"{"memoryMB": "4096"}"#, "not a whole number"),
        (r#"{"memoryMB": 1e3}"#, "not a whole number"),
        (r#"{}"#, "memoryMB is missing"),
        (
            r#"{"memoryMB": 1, "vcores": 2}"#,
            "unknown field \"vcores\"",
        ),
        ("memoryMB: 4096", "not JSON"),
        (r#"{"memoryMB": 1099511627777}"#, "above the most"),
    ] {
        let (status, e) = env.put_demand(body).await;
        assert_eq!(status, 400, "{body}: {e}");
        let message = e["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {e}");
    }
    env.set_demand(3 * NODE_MB).await;
    let state: Value = env
        .http
        .get(format!("{}/_fake/yarn/demand", env.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state,
        json!({
            "memoryMB": 3 * NODE_MB,
            "virtualCores": 48,
            "cluster": "emr-yarn0001",
            "nodes": 3,
            "nodeMB": NODE_MB,
            "nodeVcores": 16,
            "containerMB": 4096
        })
    );
}

/// A `clusterscale-fake-cloud` process, killed when dropped, and its stdout
/// lines as they come.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clusterscale-fake-cloud"))
            .args([
                "--tencent-secret-id",
                "AKIDfakeYarnSecretId000000000000000",
                "--tencent-secret-key",
                "fakeYarnSecretKey0000000000000000",
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clusterscale-fake-cloud starts");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    /// The URL of the first `<what> listening on URL` line, within 20 s.
    fn listening(&self, what: &str) -> String {
        let prefix = format!("{what} listening on ");
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(&prefix) {
                        return url.trim().to_string();
                    }
                    seen.push(line);
                }
                Err(e) => panic!("no `{prefix}` line ({e}); printed: {seen:?}"),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_fake_cloud_serves_a_resource_manager_over_the_cluster_it_names() {
    let p = Process::start(&[
        "--tencent",
        "127.0.0.1:0",
        "--tencent-instances",
        "2",
        "--initial-task",
        "1",
        "--yarn",
        "127.0.0.1:0",
        "--yarn-cluster",
        "emr-fake00001",
        "--yarn-node-mb",
        "8192",
    ]);
    p.listening("tencent");
    let yarn = p.listening("yarn");
    assert!(yarn.starts_with("http://127.0.0.1:"), "{yarn}");
    let http = reqwest::Client::new();
    let state: Value = http
        .put(format!("{yarn}/_fake/yarn/demand"))
        .json(&json!({"memoryMB": 40960}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["cluster"], "emr-fake00001");
    assert_eq!(state["nodes"], 4, "3 Core and 1 Task: {state}");
    let body: Value = http
        .get(format!("{yarn}/ws/v1/cluster/metrics"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &body["clusterMetrics"];
    assert_eq!(n(m, "totalMB"), 4 * 8192);
    assert_eq!(n(m, "pendingMB"), 40960 - 4 * 8192);
}

#[test]
fn the_fake_cloud_refuses_a_yarn_cluster_it_does_not_serve() {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterscale-fake-cloud"))
        .args([
            "--huawei",
            "127.0.0.1:0",
            "--yarn",
            "127.0.0.1:0",
            "--yarn-cluster",
            "emr-nowhere",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("clusterscale-fake-cloud runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--yarn-cluster emr-nowhere")
            && stderr.contains("a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d"),
        "{stderr}"
    );
}
