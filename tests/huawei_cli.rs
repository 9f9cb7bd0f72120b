//! `clusterscale` as a process against `clusterscale-fake-cloud --huawei`,
//! also a process: plan and apply with AK/SK and with an IAM token, over real
//! HTTP on 127.0.0.1. The fake's JSON-lines journal shows what reached it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

mod cli_support;
use cli_support::{command, FakeProcess};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const CLUSTER: &str = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d";
const AK: &str = "HWCLITESTAK000000001";
const SK: &str = "HwCliTestSecretKey00000000000000000000001";
const USER: &str = "cli-ops";
const PASSWORD: &str = "cli test password";
const DOMAIN: &str = "cli-domain";

fn aksk_env() -> Vec<(&'static str, &'static str)> {
    vec![("HUAWEICLOUD_SDK_AK", AK), ("HUAWEICLOUD_SDK_SK", SK)]
}

fn token_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HUAWEICLOUD_USERNAME", USER),
        ("HUAWEICLOUD_PASSWORD", PASSWORD),
        ("HUAWEICLOUD_DOMAIN_NAME", DOMAIN),
    ]
}

/// A running `clusterscale-fake-cloud --huawei`, killed when dropped.
struct FakeCloud(FakeProcess);

impl std::ops::Deref for FakeCloud {
    type Target = FakeProcess;
    fn deref(&self) -> &FakeProcess {
        &self.0
    }
}

impl FakeCloud {
    fn start(core: i32, task: i32, operation_seconds: u64) -> Self {
        Self::start_with(core, task, operation_seconds, &[])
    }

    fn start_with(core: i32, task: i32, operation_seconds: u64, extra: &[&str]) -> Self {
        let mut env = aksk_env();
        env.extend(token_env());
        let (core, task, seconds) = (
            core.to_string(),
            task.to_string(),
            operation_seconds.to_string(),
        );
        let mut args = vec![
            "--huawei-cluster-id",
            CLUSTER,
            "--initial-core",
            &core,
            "--initial-task",
            &task,
            "--operation-seconds",
            &seconds,
        ];
        args.extend_from_slice(extra);
        Self(FakeProcess::start("huawei", &env, &args))
    }

    fn manifest(&self, core: i32, task: i32, extra_spec: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("m-{core}-{task}-{}.yaml", extra_spec.len()));
        let text = format!(
            "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: analytics, namespace: data, uid: cli-test-uid, generation: {gen}}}
spec:
  huawei:
    region: cn-north-4
    projectId: {PROJECT}
    clusterId: {CLUSTER}
    credentialsSecretRef: {{name: hw}}
    endpoint: {base}
    iamEndpoint: {base}
    taskNodeSpec: {{nodeSize: c6.2xlarge.4.linux.bigdata, dataVolumeType: SAS, dataVolumeCount: 1, dataVolumeSize: 600}}
  core: {{count: {core}}}
  task: {{count: {task}, min: 0, max: 500}}
{extra_spec}",
            base = self.base,
            gen = core * 1000 + task,
        );
        std::fs::write(&path, text).expect("manifest written");
        path
    }
}

/// Run the CLI; no secret value of `env` (SK, password, token) may show in its output.
fn run(env: &[(&str, &str)], args: &[&str], manifest: &Path) -> Output {
    let secrets: Vec<&str> = env
        .iter()
        .filter(|(k, v)| {
            (k.ends_with("_SK") || k.ends_with("PASSWORD") || k.ends_with("TOKEN")) && v.len() >= 6
        })
        .map(|(_, v)| *v)
        .chain([SK])
        .collect();
    cli_support::output_without(command(env).args(args).arg("-f").arg(manifest), &secrets)
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn apply_wait(env: &[(&str, &str)], manifest: &Path) -> Output {
    run(
        env,
        &["apply", "--wait", "--poll", "1", "--timeout", "90"],
        manifest,
    )
}

fn params(line: &Value) -> &Value {
    &line["params"]["body"]["parameters"]
}

/// Task node ids, read with the library client (same credentials).
async fn task_ids(fake: &FakeCloud) -> Vec<String> {
    use clusterscale_core::api::HuaweiSpec;
    use clusterscale_core::cloud::credentials::Credentials;
    use clusterscale_huawei::HuaweiCloud;
    let spec = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(fake.base.clone());
    let creds = Credentials::new("test")
        .with("accessKey", AK)
        .with("secretKey", SK);
    let cloud = HuaweiCloud::new(&spec, &creds).expect("client");
    cloud
        .list_hosts()
        .await
        .expect("hosts")
        .into_iter()
        .filter(|h| h.host_type == "TaskNode")
        .map(|h| h.id)
        .collect()
}

#[tokio::test]
async fn cli_aksk_scale_out_and_in_core_and_task() {
    let fake = FakeCloud::start(3, 0, 1);
    let env = aksk_env();

    let plan = run(&env, &["plan"], &fake.manifest(5, 2, ""));
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("observed: state running, Core 3, Task 0"),
        "{}",
        text(&plan)
    );
    assert!(
        out.contains("plan step 1: core out 2") && out.contains("plan step 2: task out 2"),
        "{}",
        text(&plan)
    );
    assert!(fake.writes().is_empty(), "plan changes nothing");

    // Out: Core 3 -> 5, then Task 0 -> 2 (with task_node_info).
    let o = apply_wait(&env, &fake.manifest(5, 2, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{}", text(&o));
    assert_eq!(params(&writes[0])["scale_type"], "scale_out");
    assert_eq!(params(&writes[0])["node_group"], "core_node_analysis_group");
    assert_eq!(params(&writes[0])["instances"], 2);
    assert_eq!(params(&writes[1])["node_group"], "task_node_analysis_group");
    assert_eq!(
        params(&writes[1])["task_node_info"]["node_size"],
        "c6.2xlarge.4.linux.bigdata"
    );

    // In: Task 2 -> 1 removing the preferred node, then Core 5 -> 4.
    let ids = task_ids(&fake).await;
    assert_eq!(ids.len(), 2);
    let prefer = format!("  scaleIn: {{allowed: true, preferNodes: [{}]}}\n", ids[1]);
    let o = apply_wait(&env, &fake.manifest(4, 1, &prefer));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let writes = fake.writes();
    assert_eq!(writes.len(), 4, "{}", text(&o));
    assert_eq!(params(&writes[2])["scale_type"], "scale_in");
    assert_eq!(
        params(&writes[2])["server_ids"],
        serde_json::json!([ids[1]]),
        "server_ids honoured"
    );
    assert_eq!(params(&writes[3])["node_group"], "core_node_analysis_group");
    assert_eq!(task_ids(&fake).await, vec![ids[0].clone()]);
    // Every request was signed with the AK; no token was ever needed.
    let journal = fake.journal();
    assert!(journal
        .iter()
        .all(|l| l["action"] != "KeystoneCreateUserTokenByPassword"));
    assert!(journal
        .iter()
        .all(|l| l["params"]["principal"] == format!("ak:{AK}")));
}

/// The real engine, as `clusterscale apply --wait` runs it (`cli::drive`, in
/// this process), against the fake: Core 3 -> 5 and Task 0 -> 2, one
/// operation at a time, then Task 2 -> 1 and Core 5 -> 4 with a preferred node.
#[tokio::test]
async fn engine_converges_against_the_fake() {
    use clusterscale::cli::drive::{drive, DriveOptions, Ending};
    use clusterscale_core::api::{HuaweiSpec, HuaweiTaskNodeSpec, ScaledClusterSpec};
    use clusterscale_core::clock::SystemClock;
    use clusterscale_core::cloud::credentials::Credentials;
    use clusterscale_engine::{EngineConfig, Target};
    use clusterscale_huawei::HuaweiCloud;

    let clock = SystemClock;
    let fake = FakeCloud::start(3, 0, 1);
    let mut huawei = HuaweiSpec::test()
        .cluster(PROJECT, CLUSTER)
        .endpoint(fake.base.clone())
        .iam_endpoint(fake.base.clone());
    huawei.task_node_spec = Some(HuaweiTaskNodeSpec {
        node_size: "c6.2xlarge.4.linux.bigdata".into(),
        data_volume_type: "SAS".into(),
        data_volume_count: 1,
        data_volume_size: 600,
    });
    let mut spec = ScaledClusterSpec::test()
        .huawei(huawei.clone())
        .counts(5, 2);
    let creds = Credentials::new("test secret")
        .with("accessKey", AK)
        .with("secretKey", SK);
    let cloud = HuaweiCloud::new(&huawei, &creds).unwrap();
    let options = DriveOptions {
        once: false,
        timeout: Duration::from_secs(60),
        speed: 1.0,
        engine: EngineConfig {
            poll: Duration::from_millis(200),
            ..EngineConfig::default()
        },
    };
    let mut out = Vec::new();
    let target = Target {
        uid: "uid-engine",
        generation: 1,
        spec: &spec,
    };
    let summary = drive(target, &cloud, &clock, &options, &mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(summary.ending, Ending::Converged, "{text}");
    assert_eq!(summary.operations, 2, "{text}");
    let writes = fake.writes();
    assert_eq!(writes.len(), 2);
    assert_eq!(params(&writes[0])["node_group"], "core_node_analysis_group");
    assert_eq!(
        params(&writes[1])["task_node_info"]["node_size"],
        "c6.2xlarge.4.linux.bigdata"
    );

    // Scale in: Task first, with a preferred node, then Core.
    let ids = task_ids(&fake).await;
    assert_eq!(ids.len(), 2);
    spec.core.count = 4;
    spec.task.count = 1;
    spec.scale_in.prefer_nodes = vec![ids[0].clone()];
    let target = Target {
        uid: "uid-engine",
        generation: 2,
        spec: &spec,
    };
    let summary = drive(target, &cloud, &clock, &options, &mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(summary.ending, Ending::Converged, "{text}");
    let writes = fake.writes();
    assert_eq!(writes.len(), 4, "{text}");
    assert_eq!(
        params(&writes[2])["server_ids"],
        serde_json::json!([ids[0]])
    );
    assert_eq!(params(&writes[3])["node_group"], "core_node_analysis_group");
    assert!(task_ids(&fake).await.iter().all(|id| *id != ids[0]));
    // Never two writes while one ran: every write found the cluster idle.
    assert!(
        fake.journal().iter().all(|l| l["outcome"] != "12000018"),
        "{text}"
    );
}

#[tokio::test]
async fn cli_token_scale_out_and_in() {
    let fake = FakeCloud::start(3, 0, 1);
    let env = token_env();
    let o = apply_wait(&env, &fake.manifest(4, 3, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = apply_wait(&env, &fake.manifest(3, 1, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let writes = fake.writes();
    let shape: Vec<(String, String, i64)> = writes
        .iter()
        .map(|w| {
            let p = params(w);
            (
                p["scale_type"].as_str().unwrap().into(),
                p["node_group"].as_str().unwrap().into(),
                p["instances"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            ("scale_out".into(), "core_node_analysis_group".into(), 1),
            ("scale_out".into(), "task_node_analysis_group".into(), 3),
            ("scale_in".into(), "task_node_analysis_group".into(), 2),
            ("scale_in".into(), "core_node_analysis_group".into(), 1),
        ]
    );
    let journal = fake.journal();
    let tokens = journal
        .iter()
        .filter(|l| l["action"] == "KeystoneCreateUserTokenByPassword")
        .count();
    assert_eq!(tokens, 2, "one token per process, cached for every call");
    assert!(journal
        .iter()
        .filter(|l| l["action"] != "KeystoneCreateUserTokenByPassword")
        .all(|l| l["params"]["principal"] == "token"));
    assert!(
        !std::fs::read_to_string(fake.dir.path().join("huawei.jsonl"))
            .unwrap()
            .contains(PASSWORD)
    );
}

#[tokio::test]
async fn cli_bad_signature_is_reported_without_hot_retries() {
    let fake = FakeCloud::start(3, 0, 1);
    let env = vec![
        ("HUAWEICLOUD_SDK_AK", AK),
        ("HUAWEICLOUD_SDK_SK", "not-the-secret-key"),
    ];
    let o = run(
        &env,
        &["apply", "--wait", "--poll", "1", "--timeout", "30"],
        &fake.manifest(4, 0, ""),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("APIGW.0301"), "{}", text(&o));
    let journal = fake.journal();
    assert_eq!(journal.len(), 1, "exactly one request: {journal:?}");
    assert_eq!(journal[0]["httpStatus"], 401);
}

#[tokio::test]
async fn cli_bounds_are_checked_before_any_call() {
    let fake = FakeCloud::start(3, 0, 1);
    // Core below 3: refused before any request.
    let o = run(&aksk_env(), &["apply"], &fake.manifest(2, 0, ""));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("core"),
        "{}",
        text(&o)
    );
    // More than 500 in all: the spec itself is invalid (the live counts are
    // checked in cli_near_500_nodes_makes_room_before_growing).
    let o = run(&aksk_env(), &["apply"], &fake.manifest(3, 498, ""));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "invalid spec: spec.core.count + spec.task.count: must be at most 500 (got 501)"
        ),
        "{}",
        text(&o)
    );
    // A plain-http endpoint off loopback.
    let path = fake.manifest(4, 0, "");
    let text_off = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&fake.base, "http://10.1.2.3:80");
    std::fs::write(&path, text_off).unwrap();
    let o = run(&aksk_env(), &["plan"], &path);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loopback"),
        "{}",
        text(&o)
    );
    assert!(
        fake.journal().is_empty(),
        "no request reached the endpoint: {:?}",
        fake.journal()
    );
}

/// A valid spec (Core+Task <= 500) against a cluster near the cap: from Core 3
/// / Task 495 to Core 6 / Task 494, adding the 3 Core nodes first would make
/// 501, which MRS refuses (growth at most 500 minus Core+Task). The planner
/// removes the Task node first, or, when scale-in is not allowed, passes
/// it over, grows Core only into the room left (3 -> 5) and is then blocked.
/// It never plans growth beyond the room left, so the
/// client's own pre-check is tested in crates/fakes/tests/huawei_http.rs
/// (scale_out_beyond_the_room_left_is_refused_without_a_put).
#[tokio::test]
async fn cli_near_500_nodes_makes_room_before_growing() {
    let fake = FakeCloud::start(3, 495, 1);
    let env = aksk_env();
    let no_scale_in = "  scaleIn: {allowed: false}\n";
    let blocked = "removing 1 task node(s) needs spec.scaleIn.allowed=true";

    // The blocked Task scale-in is passed over (README "A blocked pool does
    // not starve the others"): Core grows into the room left, then the
    // plan is blocked on the scale-in.
    let plan = run(&env, &["plan"], &fake.manifest(6, 494, no_scale_in));
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("observed: state running, Core 3, Task 495")
            && out.contains("plan step 1: task in 1\nplan step 2: core out 3")
            && out.contains(&format!("passed over: ScaleInDisallowed: {blocked}"))
            && out.contains("next: add 2 core node(s): 3 -> 5"),
        "{}",
        text(&plan)
    );

    let o = apply_wait(&env, &fake.manifest(6, 494, no_scale_in));
    assert_eq!(o.status.code(), Some(3), "blocked: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("error: {blocked}")),
        "{}",
        text(&o)
    );
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.journal());

    let o = apply_wait(&env, &fake.manifest(6, 494, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let shape: Vec<(Value, Value, Value)> = fake
        .writes()
        .iter()
        .map(|w| {
            let p = params(w);
            (
                p["scale_type"].clone(),
                p["node_group"].clone(),
                p["instances"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                "scale_out".into(),
                "core_node_analysis_group".into(),
                2.into()
            ),
            (
                "scale_in".into(),
                "task_node_analysis_group".into(),
                1.into()
            ),
            (
                "scale_out".into(),
                "core_node_analysis_group".into(),
                1.into()
            ),
        ],
        "{}",
        text(&o)
    );
    let journal = fake.journal();
    assert!(
        journal
            .iter()
            .all(|l| l["outcome"] == "ok" && l["httpStatus"] == 200),
        "MRS refused nothing: {journal:?}"
    );
    let plan = run(&env, &["plan"], &fake.manifest(6, 494, ""));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("observed: state running, Core 6, Task 494"),
        "{}",
        text(&plan)
    );
}

#[tokio::test]
async fn cli_busy_cluster_gets_no_second_write() {
    let fake = FakeCloud::start(3, 0, 20);
    let env = aksk_env();
    // One operation accepted (apply without --wait returns once it is).
    let o = run(
        &env,
        &["apply", "--timeout", "30"],
        &fake.manifest(5, 0, ""),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 1);
    // While it runs, another apply waits instead of writing.
    let o = run(
        &env,
        &["apply", "--poll", "1", "--timeout", "3"],
        &fake.manifest(6, 2, ""),
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(100));
    let journal = fake.journal();
    assert_eq!(fake.writes().len(), 1, "{journal:?}");
    assert!(
        journal
            .iter()
            .all(|l| l["action"] != "UpdateClusterScaling" || l["write"] == true),
        "{journal:?}"
    );
}

/// §1 as a user sees it: `clusterscale-fake-cloud --huawei` refuses 30% of
/// resizes with MRS's own body (HTTP 500 `MRS.300`, seeded). `plan` shows
/// the steps; `apply --wait` converges well within 120 s (no 120 s grace per
/// refusal) with exactly the two resizes needed.
#[tokio::test]
async fn cli_apply_wait_converges_with_30_percent_refusals() {
    let mut env = aksk_env();
    env.extend(token_env());
    let fake = FakeCloud(FakeProcess::start(
        "huawei",
        &env,
        &[
            "--huawei-cluster-id",
            CLUSTER,
            "--initial-core",
            "3",
            "--initial-task",
            "0",
            "--operation-seconds",
            "2",
            "--write-refusal-rate",
            "0.3",
            "--fault-seed",
            "11",
        ],
    ));
    let env = aksk_env();
    let manifest = fake.manifest(5, 2, "");
    let plan = run(&env, &["plan"], &manifest);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("plan step 1: core out 2"),
        "{}",
        text(&plan)
    );
    let started = std::time::Instant::now();
    let o = run(
        &env,
        &["apply", "--wait", "--poll", "1", "--timeout", "120"],
        &manifest,
    );
    let elapsed = started.elapsed();
    let resizes: Vec<Value> = fake
        .journal()
        .into_iter()
        .filter(|l| l["action"] == "UpdateClusterScaling")
        .collect();
    let refused = resizes.iter().filter(|l| l["outcome"] == "MRS.300").count();
    println!(
        "huawei cli: apply --wait with 30% refusals: {:.1}s, {} resizes sent, {refused} refused, {} applied",
        elapsed.as_secs_f64(),
        resizes.len(),
        fake.writes().len()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(refused >= 1, "the seed refuses at least one: {resizes:?}");
    assert!(
        elapsed < Duration::from_secs(120),
        "{elapsed:?}\n{}",
        text(&o)
    );
    assert_eq!(fake.writes().len(), 2, "exactly the resizes needed");
    assert_eq!(resizes.len(), 2 + refused);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("MRS.300"),
        "the refusal is reported: {}",
        text(&o)
    );
}

/// A resize that leaves the MRS cluster `abnormal` (one host down) at its
/// counts: `apply --wait` converges and exits 0, and says what the cloud
/// reports of the cluster (the Abnormal Event), with exactly one resize.
#[tokio::test]
async fn cli_apply_wait_converges_on_an_abnormal_cluster_at_its_counts() {
    let fake = FakeCloud::start(3, 0, 2);
    reqwest::Client::new()
        .put(format!("{}/_fake/abnormal", fake.base))
        .json(&serde_json::json!({"hostsDown": 1}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the fake takes the abnormal end");
    let env = aksk_env();
    let o = apply_wait(&env, &fake.manifest(4, 0, ""));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("summary: converged"), "{}", text(&o));
    assert!(
        out.contains("Abnormal") && out.contains("not running"),
        "{}",
        text(&o)
    );
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.journal());
}

/// A custom MRS cluster (`--huawei-cluster-type custom`): `plan -f` shows a
/// step per group and pool, `apply --wait` converges Core, Task and the pool
/// through v2 expand, and no v1.1 resize is sent.
#[test]
fn cli_custom_cluster_with_a_pool_converges_by_v2() {
    let mut env = aksk_env();
    env.extend(token_env());
    let fake = FakeCloud(FakeProcess::start(
        "huawei",
        &env,
        &[
            "--huawei-cluster-id",
            CLUSTER,
            "--huawei-cluster-type",
            "custom",
            "--huawei-custom-groups",
            "4",
            "--initial-core",
            "3",
            "--initial-task",
            "2",
            "--operation-seconds",
            "1",
        ],
    ));
    let manifest = fake.write_file(
        "custom.yaml",
        &format!(
            "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: custom, namespace: data, uid: cli-custom-uid, generation: 1}}
spec:
  huawei:
    region: cn-north-4
    projectId: {PROJECT}
    clusterId: {CLUSTER}
    credentialsSecretRef: {{name: hw}}
    endpoint: {base}
    coreNodeGroup: node_group_2
    taskNodeGroup: node_group_3
  core: {{count: 4}}
  task: {{count: 2}}
  taskPools:
    - name: batch
      count: 3
      huawei: {{nodeGroup: node_group_4}}
",
            base = fake.base
        ),
    );
    let plan = run(&aksk_env(), &["plan"], &manifest);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    for line in [
        "observed: state running, Core 3, Task 1, pool batch 1",
        "plan step 1: core out 1",
        "plan step 2: task out 1",
        "plan step 3: task (pool batch) out 2",
    ] {
        assert!(out.contains(line), "{line}\n{}", text(&plan));
    }
    assert!(fake.writes().is_empty(), "plan writes nothing");

    let o = apply_wait(&aksk_env(), &manifest);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expands: Vec<(String, i64)> = fake
        .writes()
        .iter()
        .map(|l| {
            assert_eq!(l["action"], "ExpandCluster", "{l}");
            let b = &l["params"]["body"];
            assert_eq!(b["skip_bootstrap_scripts"], false, "{l}");
            (
                b["node_group_name"].as_str().unwrap().to_string(),
                b["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        expands,
        [
            ("node_group_2".to_string(), 1),
            ("node_group_3".to_string(), 1),
            ("node_group_4".to_string(), 2)
        ]
    );
    assert!(
        fake.journal()
            .iter()
            .all(|l| l["action"] != "UpdateClusterScaling"),
        "no v1.1 resize"
    );
    let plan = run(&aksk_env(), &["plan"], &manifest);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("observed: state running, Core 4, Task 2, pool batch 3")
            && out.contains("plan: nothing to do"),
        "{}",
        text(&plan)
    );
}

// Workload identity: the fake serves IAM's OIDC federation (id-token, then
// securitytokens) and checks that each MRS request is signed with a
// temporary AK it issued, with its security token.

const IDP: &str = "cce-cli";
const AUDIENCE: &str = "clusterscale-cli";
const ID_TOKEN: &str = "CreateTokenWithIdToken";
const SECURITY_TOKEN: &str = "CreateTemporaryAccessKeyByToken";

impl FakeCloud {
    /// The fake with IAM federation, trusting the test key's tokens for [`AUDIENCE`].
    fn with_federation(core: i32, task: i32) -> Self {
        Self::start_with(
            core,
            task,
            1,
            &[
                "--huawei-oidc-public-key",
                cli_support::OIDC_PUBLIC_KEY_FILE,
                "--huawei-oidc-issuer",
                cli_support::OIDC_ISSUER,
                "--huawei-oidc-audience",
                AUDIENCE,
                "--huawei-idp-id",
                IDP,
                "--huawei-oidc-subject",
                cli_support::OIDC_SUBJECT,
            ],
        )
    }

    /// The manifest, naming CloudAccount `account` instead of a Secret.
    fn account_manifest(&self, core: i32, task: i32, account: &str) -> PathBuf {
        let path = self.manifest(core, task, "");
        cli_support::use_account(&path, "credentialsSecretRef: {name: hw}", account);
        path
    }

    /// A token for `audience` in the token file; returns (path, token).
    fn token_file(&self, audience: &str) -> (PathBuf, String) {
        let jwt = cli_support::service_account_token(audience, 3600);
        (self.write_file("token", &jwt), jwt)
    }

    /// A CloudAccount manifest with this fake's workload identity.
    fn wi_account(&self, name: &str, token_file: &Path) -> PathBuf {
        self.write_file(
            &format!("account-{name}.yaml"),
            &format!(
                "apiVersion: clusterscale.io/v1alpha1
kind: CloudAccount
metadata: {{name: {name}}}
spec:
  huawei:
    workloadIdentity:
      idpId: {IDP}
      projectId: {PROJECT}
      durationSeconds: 900
      tokenFile: {}
      iamEndpoint: {}
",
                token_file.display(),
                self.base
            ),
        )
    }

    /// Every MRS request was accepted, signed by a temporary AK the fake's
    /// IAM issued (the journal names the AK, never its SK or token).
    fn assert_signed_by_temporary_keys(&self) {
        let journal = self.journal();
        let issued: Vec<String> = journal
            .iter()
            .filter(|l| l["action"] == SECURITY_TOKEN && l["outcome"] == "ok")
            .filter_map(|l| {
                let detail = l["params"]["detail"].as_str()?;
                let ak = detail.strip_prefix("temporary keys ")?.split(' ').next()?;
                Some(format!("ak:{ak}"))
            })
            .collect();
        assert!(!issued.is_empty(), "no temporary keys issued: {journal:?}");
        let mrs: Vec<&Value> = journal
            .iter()
            .filter(|l| l["action"] != ID_TOKEN && l["action"] != SECURITY_TOKEN)
            .collect();
        assert!(!mrs.is_empty());
        for l in mrs {
            let principal = l["params"]["principal"].as_str().unwrap_or_default();
            assert!(
                issued.iter().any(|ak| ak == principal),
                "not a temporary key: {l}"
            );
            assert_eq!(l["outcome"], "ok", "{l}");
        }
    }
}

const WAIT: &[&str] = &["apply", "--wait", "--poll", "1", "--timeout", "90"];

/// Run with `env` only; neither the JWT nor any JWT shows in the output.
fn run_wi(env: &[(&str, &str)], args: &[&str], manifest: &Path, jwt: &str) -> Output {
    cli_support::output_without(
        command(env).args(args).arg("-f").arg(manifest),
        &[jwt, "eyJ", SK],
    )
}

#[tokio::test]
async fn cli_account_of_a_workload_identity_plans_and_applies_with_temporary_keys() {
    let fake = FakeCloud::with_federation(3, 0);
    let (token, jwt) = fake.token_file(AUDIENCE);
    let account = fake.wi_account("huawei-wi", &token);
    let account = account.to_str().unwrap();
    let manifest = fake.account_manifest(4, 2, "huawei-wi");

    let plan = run_wi(&[], &["plan", "--account", account], &manifest, &jwt);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("Core 3, Task 0"),
        "{}",
        text(&plan)
    );
    assert!(fake.writes().is_empty());

    let wait = [WAIT, &["--account", account]].concat();
    let o = run_wi(&[], &wait, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!fake.writes().is_empty(), "{}", text(&o));
    fake.assert_signed_by_temporary_keys();
    let scoped = &fake.journal()[0]["params"]["body"]["auth"]["scope"]["project"]["id"];
    assert_eq!(
        scoped, PROJECT,
        "the IAM token is scoped to the account's project"
    );
    assert_eq!(task_ids(&fake).await.len(), 2);
}

#[tokio::test]
async fn cli_workload_identity_from_the_environment() {
    let fake = FakeCloud::with_federation(3, 0);
    let (token, jwt) = fake.token_file(AUDIENCE);
    let env = [
        ("HUAWEICLOUD_SDK_IDP_ID", IDP),
        ("HUAWEICLOUD_SDK_ID_TOKEN_FILE", token.to_str().unwrap()),
        ("HUAWEICLOUD_SDK_PROJECT_ID", PROJECT),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", fake.base.as_str()),
    ];
    let manifest = fake.account_manifest(4, 0, "huawei-wi");
    let o = run_wi(&env, WAIT, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 1, "{}", text(&o));
    fake.assert_signed_by_temporary_keys();

    // Only one of the pair: both are named.
    let o = run_wi(&env[..1], &["plan"], &manifest, &jwt);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HUAWEICLOUD_SDK_IDP_ID") && err.contains("HUAWEICLOUD_SDK_ID_TOKEN_FILE"),
        "{}",
        text(&o)
    );
    // Neither, nor static keys, nor --account.
    let o = run_wi(&[], &["plan"], &manifest, &jwt);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--account FILE")
            && err.contains("HUAWEICLOUD_SDK_AK")
            && err.contains("HUAWEICLOUD_SDK_IDP_ID"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn cli_refused_exchange_is_a_cloud_error_and_nothing_reaches_mrs() {
    let fake = FakeCloud::with_federation(3, 0);
    let (token, jwt) = fake.token_file("someone-else");
    let account = fake.wi_account("huawei-wi", &token);
    let manifest = fake.account_manifest(5, 0, "huawei-wi");
    for args in [&["plan"][..], WAIT] {
        let args = [args, &["--account", account.to_str().unwrap()]].concat();
        let o = run_wi(&[], &args, &manifest, &jwt);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("Auth") && err.contains(ID_TOKEN) && err.contains("request id"),
            "{}",
            text(&o)
        );
        assert!(!err.contains("request id none"), "{}", text(&o));
    }
    let journal = fake.journal();
    assert_eq!(journal.len(), 2, "two refused exchanges only: {journal:?}");
    assert!(journal.iter().all(|l| l["action"] == ID_TOKEN));

    // A Tencent account for a Huawei cluster: bad input, nothing sent.
    let tencent = fake.write_file(
        "tencent.yaml",
        "apiVersion: clusterscale.io/v1alpha1
kind: CloudAccount
metadata: {name: huawei-wi}
spec:
  tencent:
    secretRef: {namespace: clusterscale, name: keys}
",
    );
    let args = ["plan", "--account", tencent.to_str().unwrap()];
    let o = run_wi(&[], &args, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a tencent account"),
        "{}",
        text(&o)
    );
    assert_eq!(fake.journal().len(), 2);
}
