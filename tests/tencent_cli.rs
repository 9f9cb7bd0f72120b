//! `clusterscale plan` / `apply` as a process against
//! `clusterscale-fake-cloud --tencent`, also a process, over real HTTP on
//! 127.0.0.1 with real TC3 signatures. The fake's JSON-lines journal shows
//! what reached it; faults are injected through its `/_fake/` control API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

mod cli_support;
use cli_support::FakeProcess;

const INSTANCE: &str = "emr-cli00001";
const SECRET_ID: &str = "AKIDcliTestSecretId0000000000000001";
const SECRET_KEY: &str = "cliTestSecretKey0000000000000001";

fn command(secret_key: &str) -> Command {
    cli_support::command(&[
        ("TENCENTCLOUD_SECRET_ID", SECRET_ID),
        ("TENCENTCLOUD_SECRET_KEY", secret_key),
    ])
}

/// A running `clusterscale-fake-cloud --tencent`, killed when dropped.
struct FakeCloud(FakeProcess);

impl std::ops::Deref for FakeCloud {
    type Target = FakeProcess;
    fn deref(&self) -> &FakeProcess {
        &self.0
    }
}

impl FakeCloud {
    fn start(core: i32, task: i32, operation_seconds: u64, extra: &[&str]) -> Self {
        let (core, task, seconds) = (
            core.to_string(),
            task.to_string(),
            operation_seconds.to_string(),
        );
        let mut args = vec![
            "--tencent-instance-id",
            INSTANCE,
            "--initial-core",
            &core,
            "--initial-task",
            &task,
            "--operation-seconds",
            &seconds,
        ];
        args.extend_from_slice(extra);
        Self(FakeProcess::start(
            "tencent",
            &[
                ("TENCENTCLOUD_SECRET_ID", SECRET_ID),
                ("TENCENTCLOUD_SECRET_KEY", SECRET_KEY),
            ],
            &args,
        ))
    }

    fn calls(&self, action: &str) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|l| l["action"] == action)
            .collect()
    }

    /// Queue an error through the control API.
    async fn inject(&self, error: Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/_fake/inject", self.base))
            .json(&error)
            .send()
            .await
            .expect("control API")
            .status();
        assert_eq!(status, 204);
    }

    fn manifest(&self, core: i32, task: i32, extra_spec: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("m-{core}-{task}-{}.yaml", extra_spec.len()));
        let text = format!(
            "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: analytics, namespace: data, uid: tencent-cli-uid, generation: {gen}}}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: {INSTANCE}
    payMode: 0
    credentialsSecretRef: {{name: tencent-credentials}}
    endpoint: {base}
  core: {{count: {core}}}
  task: {{count: {task}, min: 0, max: 100}}
{extra_spec}",
            base = self.base,
            gen = core * 1000 + task * 10 + extra_spec.len() as i32 % 10,
        );
        std::fs::write(&path, text).expect("manifest written");
        path
    }
}

/// Run the CLI; neither the key it was given nor the fake's may show in its output.
fn run(secret_key: &str, args: &[&str], manifest: &Path) -> Output {
    cli_support::output_without(
        command(secret_key).args(args).arg("-f").arg(manifest),
        &[secret_key, SECRET_KEY],
    )
}

fn apply_wait(manifest: &Path) -> Output {
    run(
        SECRET_KEY,
        &["apply", "--wait", "--poll", "1", "--timeout", "90"],
        manifest,
    )
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Task nodes, oldest first, read with the library client (same credentials).
async fn task_ids(fake: &FakeCloud) -> Vec<String> {
    use clusterscale_core::api::{NodeGroup, TencentSpec};
    use clusterscale_core::cloud::credentials::Credentials;
    use clusterscale_core::cloud::Cloud;
    use clusterscale_tencent::{TencentCloud, TencentOptions};
    let spec = TencentSpec::test()
        .instance(INSTANCE)
        .secret("c")
        .endpoint(fake.base.clone());
    let creds = Credentials::new("test")
        .with("secretId", SECRET_ID)
        .with("secretKey", SECRET_KEY);
    let cloud = TencentCloud::new(&spec, &creds, TencentOptions::default()).expect("client");
    let mut tasks: Vec<_> = cloud
        .observe()
        .await
        .expect("observe")
        .nodes
        .into_iter()
        .filter(|n| n.group == NodeGroup::Task)
        .collect();
    tasks.sort_by_key(|n| n.added_order);
    tasks.into_iter().map(|n| n.id).collect()
}

#[tokio::test]
async fn cli_plan_then_apply_scales_core_and_task_out_and_in() {
    let fake = FakeCloud::start(3, 0, 1, &["--throttle-per-second", "20"]);

    let plan = run(SECRET_KEY, &["plan"], &fake.manifest(5, 3, ""));
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(out.contains("cloud: tencent"), "{}", text(&plan));
    assert!(
        out.contains("observed: state running, Core 3, Task 0"),
        "{}",
        text(&plan)
    );
    assert!(
        out.contains("plan step 1: core out 2") && out.contains("plan step 2: task out 3"),
        "{}",
        text(&plan)
    );
    assert!(fake.writes().is_empty(), "plan changes nothing");

    // Out: Core 3 -> 5, then Task 0 -> 3, one group per ScaleOutInstance.
    let o = apply_wait(&fake.manifest(5, 3, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{}", text(&o));
    let p = |i: usize| writes[i]["params"].clone();
    assert_eq!(
        (p(0)["CoreCount"].clone(), p(0).get("TaskCount").cloned()),
        (json!(2), None)
    );
    assert_eq!(
        (p(1)["TaskCount"].clone(), p(1).get("CoreCount").cloned()),
        (json!(3), None)
    );
    for i in 0..2 {
        assert_eq!(
            (
                p(i)["PayMode"].clone(),
                p(i)["TimeUnit"].clone(),
                p(i)["TimeSpan"].clone()
            ),
            (json!(0), json!("s"), json!(3600))
        );
        assert!(p(i)["ClientToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.len() <= 64));
    }
    assert_ne!(p(0)["ClientToken"], p(1)["ClientToken"]);

    // In: Task 3 -> 1 with the oldest node preferred (TerminateTasks), then Core 5 -> 4 (TerminateClusterNodes).
    let ids = task_ids(&fake).await;
    assert_eq!(ids.len(), 3);
    let prefer = format!("  scaleIn: {{allowed: true, preferNodes: [{}]}}\n", ids[0]);
    let o = apply_wait(&fake.manifest(4, 1, &prefer));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let terminate = fake.calls("TerminateTasks");
    assert_eq!(terminate.len(), 1, "{}", text(&o));
    assert_eq!(
        terminate[0]["params"]["ResourceIds"],
        json!([ids[0], ids[2]]),
        "preferred first, then the newest"
    );
    let core_in = fake.calls("TerminateClusterNodes");
    assert_eq!(core_in.len(), 1, "{}", text(&o));
    assert_eq!(core_in[0]["params"]["NodeFlag"], "CORE");
    assert_eq!(
        core_in[0]["params"]["CvmInstanceIds"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(task_ids(&fake).await, [ids[1].clone()]);
    let converged = run(SECRET_KEY, &["plan"], &fake.manifest(4, 1, ""));
    assert!(
        String::from_utf8_lossy(&converged.stdout).contains("Core 4, Task 1"),
        "{}",
        text(&converged)
    );
}

/// `apply --tencent-rate-limit 1` against a fake that throttles above 2
/// requests of one action per second. Without the limit the CLI sends
/// DescribeClusterNodes twice within milliseconds when it removes Task
/// nodes (the observation, then the choice of nodes), so this checks that
/// the flag reaches the client and paces every action. The client's pacing
/// itself is tested in crates/fakes/tests/tencent_http.rs
/// (client_rate_limit_keeps_every_second_under_the_fake_throttle).
#[tokio::test]
async fn cli_tencent_rate_limit_paces_every_action() {
    let fake = FakeCloud::start(3, 3, 1, &["--throttle-per-second", "2", "--delay-ms", "0"]);
    let o = run(
        SECRET_KEY,
        &[
            "apply",
            "--wait",
            "--poll",
            "1",
            "--timeout",
            "90",
            "--tencent-rate-limit",
            "1",
        ],
        &fake.manifest(4, 1, ""),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.calls("ScaleOutInstance").len(), 1, "{}", text(&o));
    assert_eq!(fake.calls("TerminateTasks").len(), 1, "{}", text(&o));
    let journal = fake.journal();
    assert!(
        journal
            .iter()
            .all(|l| l["outcome"] != "RequestLimitExceeded"),
        "{journal:#?}"
    );
    // At most one request of an action in any second: consecutive requests
    // of one action are a second apart (less 50 ms of transport jitter).
    let mut arrivals: BTreeMap<String, Vec<jiff::Timestamp>> = BTreeMap::new();
    for l in &journal {
        let at = l["at"].as_str().expect("at").parse().expect("timestamp");
        arrivals
            .entry(l["action"].as_str().expect("action").to_string())
            .or_default()
            .push(at);
    }
    assert!(arrivals["DescribeClusterNodes"].len() >= 3, "{arrivals:?}");
    for (action, at) in &mut arrivals {
        at.sort();
        for pair in at.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= jiff::SignedDuration::from_millis(950),
                "{action}: two requests {gap:?} apart: {journal:#?}"
            );
        }
    }
}

#[tokio::test]
async fn cli_busy_cluster_gets_no_second_write() {
    let fake = FakeCloud::start(3, 0, 20, &[]);
    // One operation accepted (apply without --wait returns once it is).
    let o = run(
        SECRET_KEY,
        &["apply", "--timeout", "30"],
        &fake.manifest(5, 0, ""),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 1);
    // While it runs (Status 4), another apply waits instead of writing.
    let o = run(
        SECRET_KEY,
        &["apply", "--poll", "1", "--timeout", "3"],
        &fake.manifest(6, 2, ""),
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.journal());
    assert_eq!(
        fake.calls("ScaleOutInstance").len(),
        1,
        "no second write was even attempted"
    );
}

/// A bare HTTP 502 (no EMR envelope; the write did not reach EMR, but the
/// client cannot know): the outcome is unknown, so the same request is
/// re-sent with the same ClientToken.
#[tokio::test]
async fn cli_unknown_outcome_is_resent_with_the_same_client_token() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    fake.inject(json!({"action": "ScaleOutInstance", "code": "BadGateway", "httpStatus": 502}))
        .await;
    let o = apply_wait(&fake.manifest(3, 2, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let calls = fake.calls("ScaleOutInstance");
    assert_eq!(calls.len(), 2, "{}", text(&o));
    assert_eq!(calls[0]["outcome"], "HTTP 502");
    assert_eq!(calls[1]["outcome"], "ok");
    assert_eq!(
        calls[0]["params"]["ClientToken"], calls[1]["params"]["ClientToken"],
        "same token on retry"
    );
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(task_ids(&fake).await.len(), 2, "grew exactly once");
}

/// An error in EMR's own envelope (`InternalError.CvmError`): EMR handled the
/// request and refused it. The operation is over; the next one is planned
/// from a fresh observation with a new ClientToken, never the refused one.
#[tokio::test]
async fn cli_refused_write_is_replanned_with_a_new_client_token() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    fake.inject(json!({"action": "ScaleOutInstance", "code": "InternalError.CvmError", "message": "cvm backend down"}))
        .await;
    let o = apply_wait(&fake.manifest(3, 2, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let calls = fake.calls("ScaleOutInstance");
    assert_eq!(calls.len(), 2, "{}", text(&o));
    assert_eq!(calls[0]["outcome"], "InternalError.CvmError");
    assert_eq!(calls[1]["outcome"], "ok");
    assert_ne!(
        calls[0]["params"]["ClientToken"], calls[1]["params"]["ClientToken"],
        "a new operation, not a re-send of the refused one"
    );
    assert_eq!(fake.writes().len(), 1);
    assert_eq!(task_ids(&fake).await.len(), 2, "grew exactly once");
}

#[tokio::test]
async fn cli_lost_answer_grows_the_cluster_exactly_once() {
    let fake = FakeCloud::start(3, 0, 2, &[]);
    fake.inject(json!({"action": "ScaleOutInstance", "code": "ResponseLost"}))
        .await;
    let o = apply_wait(&fake.manifest(3, 4, ""));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let calls = fake.calls("ScaleOutInstance");
    assert!(!calls.is_empty());
    assert_eq!(
        (calls[0]["outcome"].clone(), calls[0]["write"].clone()),
        (json!("HTTP 504"), json!(true))
    );
    assert!(calls
        .iter()
        .all(|c| c["params"]["ClientToken"] == calls[0]["params"]["ClientToken"]));
    assert_eq!(fake.writes().len(), 1, "{:?}", fake.journal());
    assert_eq!(task_ids(&fake).await.len(), 4, "grew exactly once");
}

#[tokio::test]
async fn cli_wrong_secret_is_reported_and_not_hot_retried() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    let o = run(
        "not-the-secret-key",
        &["apply", "--wait", "--poll", "1", "--timeout", "30"],
        &fake.manifest(4, 0, ""),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Auth") && err.contains("AuthFailure.SignatureFailure"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("request id") && !err.contains("not-the-secret-key"),
        "{}",
        text(&o)
    );
    let journal = fake.journal();
    assert_eq!(journal.len(), 1, "exactly one request: {journal:?}");
    assert_eq!(journal[0]["outcome"], "AuthFailure.SignatureFailure");
}

#[tokio::test]
async fn cli_bad_input_exits_2_before_any_call() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    let o = run(SECRET_KEY, &["apply"], &fake.manifest(2, 0, ""));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let path = fake.manifest(4, 0, "");
    let off_loopback = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&fake.base, "http://10.1.2.3:80");
    std::fs::write(&path, off_loopback).unwrap();
    let o = run(SECRET_KEY, &["plan"], &path);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loopback"),
        "{}",
        text(&o)
    );
    let o = command(SECRET_KEY)
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .args(["plan", "-f"])
        .arg(fake.manifest(4, 0, ""))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("secretKey"),
        "{}",
        text(&o)
    );
    assert!(fake.journal().is_empty(), "{:?}", fake.journal());
}

/// A field this clusterscale does not know (a misspelling, or a block of a
/// newer release) is refused with exit 2 and every such field named by its
/// path, by `plan`, `apply` and `simulate` alike, and before anything else:
/// here there are no credentials at all, which the same manifest without the
/// unknown fields is refused for instead. Planning without the block would
/// have removed nodes the user meant to keep.
#[test]
fn cli_refuses_unknown_fields_before_anything_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let known = format!(
        "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: analytics, namespace: data}}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: {INSTANCE}
    credentialsSecretRef: {{name: tencent-credentials}}
  core: {{count: 3}}
  task: {{count: 2}}
"
    );
    let unknown = known.replace(
        &format!("instanceId: {INSTANCE}"),
        &format!("instanceId: {INSTANCE}\n    instanceID: emr-other"),
    ) + "  taskPoolz:\n    - {name: keep-me, count: 4}\n";
    let known_path = dir.path().join("known.yaml");
    let unknown_path = dir.path().join("unknown.yaml");
    std::fs::write(&known_path, &known).expect("manifest written");
    std::fs::write(&unknown_path, &unknown).expect("manifest written");

    let o = cli_support::command(&[])
        .args(["plan", "-f"])
        .arg(&known_path)
        .output()
        .expect("clusterscale runs");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("credential \"secretId\" missing") && !err.contains("unknown field"),
        "{}",
        text(&o)
    );

    for subcommand in ["plan", "apply", "simulate"] {
        let o = cli_support::command(&[])
            .args([subcommand, "-f"])
            .arg(&unknown_path)
            .output()
            .expect("clusterscale runs");
        assert_eq!(o.status.code(), Some(2), "{subcommand}: {}", text(&o));
        assert!(o.stdout.is_empty(), "{subcommand}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim_end(),
            format!(
                "error: {}: unknown field(s) spec.tencent.instanceID, spec.taskPoolz \
                 (this clusterscale does not know them; a newer one may; remove them or upgrade)",
                unknown_path.display()
            ),
            "{subcommand}: {}",
            text(&o)
        );
    }
}

/// Two `apply` runs of manifests without a uid (what users keep in Git):
/// the second run's operation must not carry the first run's ClientToken,
/// or Tencent would drop it as a duplicate and the run would report success
/// without scaling.
#[tokio::test]
async fn cli_consecutive_applies_without_uid_each_scale() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    let manifest = |task: i32| {
        let path = fake.dir.path().join(format!("no-uid-{task}.yaml"));
        let text = format!(
            "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: analytics, namespace: data}}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: {INSTANCE}
    credentialsSecretRef: {{name: tencent-credentials}}
    endpoint: {base}
  core: {{count: 3}}
  task: {{count: {task}}}
",
            base = fake.base
        );
        std::fs::write(&path, text).expect("manifest written");
        path
    };
    let first = apply_wait(&manifest(2));
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = apply_wait(&manifest(4));
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let writes = fake.writes();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    assert_eq!(task_ids(&fake).await.len(), 4, "the second run scaled");
    // Same shape (one scale-out of 2 Task nodes per run), different tokens.
    let again = apply_wait(&manifest(4));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(fake.writes().len(), 2, "a converged cluster gets no write");
}

/// §1 as a user sees it: `clusterscale-fake-cloud --tencent` refuses 30% of
/// scale writes with EMR's `InternalError` envelope (seeded). `plan` shows
/// the steps; `apply --wait` converges within 120 s with exactly the two
/// effective operations, each refused one replaced by a new operation (its
/// own ClientToken), never re-sent.
#[tokio::test]
async fn cli_apply_wait_converges_with_30_percent_refusals() {
    let fake = FakeCloud::start(
        3,
        4,
        2,
        &["--write-refusal-rate", "0.3", "--fault-seed", "11"],
    );
    let manifest = fake.manifest(5, 2, "  scaleIn: {allowed: true}\n");
    let plan = run(SECRET_KEY, &["plan"], &manifest);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("plan step"),
        "{}",
        text(&plan)
    );
    let started = std::time::Instant::now();
    let o = run(
        SECRET_KEY,
        &["apply", "--wait", "--poll", "1", "--timeout", "120"],
        &manifest,
    );
    let elapsed = started.elapsed();
    let writes: Vec<Value> = fake
        .journal()
        .into_iter()
        .filter(|l| {
            [
                "ScaleOutInstance",
                "TerminateTasks",
                "TerminateClusterNodes",
            ]
            .contains(&l["action"].as_str().unwrap_or_default())
        })
        .collect();
    let refused = writes
        .iter()
        .filter(|l| l["outcome"] == "InternalError")
        .count();
    let applied = writes.iter().filter(|l| l["write"] == true).count();
    println!(
        "tencent cli: apply --wait with 30% refusals: {:.1}s, {} writes sent, {refused} refused, {applied} applied",
        elapsed.as_secs_f64(),
        writes.len()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(refused >= 1, "the seed refuses at least one: {writes:?}");
    assert!(
        elapsed < Duration::from_secs(120),
        "{elapsed:?}\n{}",
        text(&o)
    );
    assert_eq!(applied, 2, "exactly the operations needed: {writes:?}");
    assert_eq!(writes.len(), 2 + refused);
    let tokens: Vec<&str> = writes
        .iter()
        .filter_map(|l| l["params"]["ClientToken"].as_str())
        .collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        tokens.len(),
        distinct.len(),
        "no same-token re-send: {tokens:?}"
    );
}

/// The fault flags of `clusterscale-fake-cloud` are checked before it listens.
#[test]
fn fake_cloud_refuses_fault_rates_out_of_range() {
    for args in [
        &["--write-refusal-rate", "1.5"][..],
        &["--lost-answer-rate=-0.1"],
        &["--write-refusal-rate", "0.6", "--proxy-error-rate", "0.6"],
    ] {
        let o = cli_support::fake_command(&[
            ("TENCENTCLOUD_SECRET_ID", SECRET_ID),
            ("TENCENTCLOUD_SECRET_KEY", SECRET_KEY),
        ])
        .args(["--tencent", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("runs");
        assert_ne!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("rate"), "{args:?}: {err}");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("listening"),
            "{args:?}"
        );
    }
}

/// A cluster with a spot pool: `plan` shows the pool's step, and `apply
/// --wait` grows the default pool with ScaleOutInstance and the pool with
/// ScaleOutCluster (SPOTPAID, its instance type, YARN label and tag), then
/// shrinks the pool with TerminateClusterNodes naming only its nodes.
#[tokio::test]
async fn cli_plan_and_apply_a_spot_pool() {
    let fake = FakeCloud::start(3, 0, 1, &[]);
    let pool = |count: i32| {
        format!(
            "  taskPools:
    - name: spot
      count: {count}
      max: 20
      tencent: {{chargeType: SPOTPAID, instanceType: SA5.2XLARGE32, yarnNodeLabel: spot}}
"
        )
    };
    let grow = fake.manifest(3, 1, &pool(2));

    let plan = run(SECRET_KEY, &["plan"], &grow);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("observed: state running, Core 3, Task 0, pool spot 0"),
        "{}",
        text(&plan)
    );
    assert!(
        out.contains("desired:  Core 3, Task 1, pool spot 2"),
        "{}",
        text(&plan)
    );
    assert!(
        out.contains("plan step 1: task out 1")
            && out.contains("plan step 2: task (pool spot) out 2"),
        "{}",
        text(&plan)
    );
    assert!(fake.writes().is_empty(), "plan changes nothing");

    let o = apply_wait(&grow);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let writes = fake.writes();
    let actions: Vec<&str> = writes
        .iter()
        .map(|w| w["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["ScaleOutInstance", "ScaleOutCluster"],
        "{}",
        text(&o)
    );
    let p = &writes[1]["params"];
    assert_eq!(p["InstanceChargeType"], "SPOTPAID");
    assert_eq!(
        p["ScaleOutNodeConfig"],
        json!({"NodeFlag": "TASK", "NodeCount": 2})
    );
    assert_eq!(p["ResourceSpec"]["InstanceType"], "SA5.2XLARGE32");
    assert_eq!(p["YarnNodeLabel"], "spot");
    assert_eq!(p["EnableStartServiceFlag"], true);
    assert_eq!(
        p["Tags"],
        json!([{"TagKey": "clusterscale.io/pool", "TagValue": "spot"}])
    );
    assert!(p["ClientToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && t.len() <= 64));
    let converged = run(SECRET_KEY, &["plan"], &grow);
    assert!(
        String::from_utf8_lossy(&converged.stdout)
            .contains("observed: state running, Core 3, Task 1, pool spot 2"),
        "{}",
        text(&converged)
    );

    // The pool 2 -> 1, the default pool kept: one TerminateClusterNodes of
    // one spot node, never the default pool's.
    let default_node = task_ids(&fake).await;
    let o = apply_wait(&fake.manifest(3, 1, &pool(1)));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let terminate = fake.calls("TerminateClusterNodes");
    assert_eq!(terminate.len(), 1, "{}", text(&o));
    assert_eq!(terminate[0]["params"]["NodeFlag"], "TASK");
    assert_eq!(
        terminate[0]["params"]["CvmInstanceIds"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(fake.calls("TerminateTasks").is_empty());
    let converged = run(SECRET_KEY, &["plan"], &fake.manifest(3, 1, &pool(1)));
    assert!(
        String::from_utf8_lossy(&converged.stdout)
            .contains("observed: state running, Core 3, Task 1, pool spot 1"),
        "{}",
        text(&converged)
    );
    // The default pool's node is the one it had (task_ids lists the untagged ones).
    assert_eq!(task_ids(&fake).await, default_node);
}

// Workload identity: the fake serves STS AssumeRoleWithWebIdentity on the
// EMR address and checks that each EMR request is signed with temporary keys
// it issued (journal `signedBy.key`: `sts#<n>`, or `static`).

const PROVIDER_ID: &str = "cls-cli00001";
const ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/clusterscale";
/// The fake STS's default audience, Tencent's.
const AUDIENCE: &str = "sts.cloud.tencent.com";
const STS_ACTION: &str = "AssumeRoleWithWebIdentity";

impl FakeCloud {
    /// The fake with its STS, trusting the test key's tokens for [`AUDIENCE`].
    fn with_sts(core: i32, task: i32) -> Self {
        Self::start(
            core,
            task,
            1,
            &[
                "--tencent-sts-public-key",
                cli_support::OIDC_PUBLIC_KEY_FILE,
                "--tencent-sts-issuer",
                cli_support::OIDC_ISSUER,
                "--tencent-sts-provider-id",
                PROVIDER_ID,
                "--tencent-sts-role-arn",
                ROLE_ARN,
                "--tencent-sts-subject",
                cli_support::OIDC_SUBJECT,
            ],
        )
    }

    /// The manifest, naming CloudAccount `account` instead of a Secret.
    fn account_manifest(&self, core: i32, task: i32, account: &str) -> PathBuf {
        let path = self.manifest(core, task, "");
        cli_support::use_account(
            &path,
            "credentialsSecretRef: {name: tencent-credentials}",
            account,
        );
        path
    }

    /// A token for `audience` in the token file; returns (path, token).
    fn token_file(&self, audience: &str, valid_for: i64) -> (PathBuf, String) {
        let jwt = cli_support::service_account_token(audience, valid_for);
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
  tencent:
    workloadIdentity:
      roleArn: {ROLE_ARN}
      providerId: {PROVIDER_ID}
      region: ap-guangzhou
      sessionDurationSeconds: 900
      tokenFile: {}
      endpoint: {}
",
                token_file.display(),
                self.base
            ),
        )
    }

    /// Every EMR request (all but the exchanges) was signed by the keys of
    /// an accepted exchange, and accepted; the exchanges were unsigned.
    fn assert_signed_by_temporary_keys(&self) {
        let journal = self.journal();
        let (sts, emr): (Vec<_>, Vec<_>) = journal.iter().partition(|l| l["action"] == STS_ACTION);
        assert!(!sts.is_empty() && !emr.is_empty(), "{journal:?}");
        for l in &sts {
            assert_eq!((&l["outcome"], l.get("signedBy")), (&json!("ok"), None));
        }
        for l in &emr {
            let key = l["signedBy"]["key"].as_str().unwrap_or_default();
            assert!(key.starts_with("sts#"), "not temporary keys: {l}");
            assert_eq!(l["outcome"], "ok", "{l}");
        }
    }
}

/// Run the CLI with only `env`; no secret (the JWT, static keys) in its output.
fn run_env(env: &[(&str, &str)], args: &[&str], manifest: &Path, jwt: &str) -> Output {
    let mut secrets = vec![SECRET_KEY, "eyJ"];
    if !jwt.is_empty() {
        secrets.push(jwt);
    }
    cli_support::output_without(
        cli_support::command(env).args(args).arg("-f").arg(manifest),
        &secrets,
    )
}

const WAIT: &[&str] = &["apply", "--wait", "--poll", "1", "--timeout", "90"];

#[tokio::test]
async fn cli_account_of_a_workload_identity_plans_and_applies_with_temporary_keys() {
    let fake = FakeCloud::with_sts(3, 0);
    let (token, jwt) = fake.token_file(AUDIENCE, 3600);
    let account = fake.wi_account("tencent-wi", &token);
    let account = account.to_str().unwrap();
    let manifest = fake.account_manifest(4, 2, "tencent-wi");

    let plan = run_env(&[], &["plan", "--account", account], &manifest, &jwt);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("observed: state running, Core 3, Task 0"),
        "{}",
        text(&plan)
    );
    assert!(fake.writes().is_empty());

    let wait = [WAIT, &["--account", account]].concat();
    let o = run_env(&[], &wait, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 2, "{}", text(&o));
    fake.assert_signed_by_temporary_keys();
    // One exchange per run: the keys last the whole run.
    assert_eq!(fake.calls(STS_ACTION).len(), 2);
    // (Read with the fake's static keys.)
    assert_eq!(task_ids(&fake).await.len(), 2);
}

#[tokio::test]
async fn cli_workload_identity_from_the_environment_after_static_keys() {
    let fake = FakeCloud::with_sts(3, 0);
    let (token, jwt) = fake.token_file(AUDIENCE, 3600);
    let token = token.to_str().unwrap();
    let wi = [
        ("TKE_REGION", "ap-guangzhou"),
        ("TKE_PROVIDER_ID", PROVIDER_ID),
        ("TKE_ROLE_ARN", ROLE_ARN),
        ("TKE_WEB_IDENTITY_TOKEN_FILE", token),
        ("CLUSTERSCALE_TENCENT_STS_ENDPOINT", fake.base.as_str()),
    ];
    // A manifest naming a CloudAccount is served by the environment's identity too.
    let manifest = fake.account_manifest(4, 0, "tencent-wi");
    let o = run_env(&wi, WAIT, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.writes().len(), 1, "{}", text(&o));
    fake.assert_signed_by_temporary_keys();

    // Static keys come first, as in the SDKs' credential chains: no exchange.
    let exchanges = fake.calls(STS_ACTION).len();
    let both = [
        &wi[..],
        &[
            ("TENCENTCLOUD_SECRET_ID", SECRET_ID),
            ("TENCENTCLOUD_SECRET_KEY", SECRET_KEY),
        ],
    ]
    .concat();
    let o = run_env(&both, &["plan"], &manifest, &jwt);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fake.calls(STS_ACTION).len(), exchanges);
    let last = fake.journal().pop().unwrap();
    assert_eq!(last["signedBy"]["key"], "static", "{last}");

    // Some of TKE's variables but not all: the missing one is named.
    let o = run_env(&wi[..2], &["plan"], &manifest, &jwt);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("TKE_WEB_IDENTITY_TOKEN_FILE"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn cli_refused_exchange_is_a_cloud_error_and_nothing_reaches_emr() {
    let fake = FakeCloud::with_sts(3, 0);
    let (token, jwt) = fake.token_file("not-sts.cloud.tencent.com", 3600);
    let account = fake.wi_account("tencent-wi", &token);
    let manifest = fake.account_manifest(5, 0, "tencent-wi");
    for args in [&["plan"][..], WAIT] {
        let args = [args, &["--account", account.to_str().unwrap()]].concat();
        let o = run_env(&[], &args, &manifest, &jwt);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("InvalidParameter.WebIdentityTokenError")
                && err.contains("request id")
                && err.contains(STS_ACTION)
                && err.contains(ROLE_ARN),
            "{}",
            text(&o)
        );
    }
    // A missing token file: refused before anything is sent.
    std::fs::remove_file(&token).unwrap();
    let args = ["plan", "--account", account.to_str().unwrap()];
    let o = run_env(&[], &args, &manifest, &jwt);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("TokenFileUnreadable"),
        "{}",
        text(&o)
    );
    let journal = fake.journal();
    assert_eq!(
        journal.len(),
        2,
        "two refused exchanges, nothing else: {journal:?}"
    );
    assert!(journal.iter().all(|l| l["action"] == STS_ACTION));
}

#[test]
fn cli_account_must_fit_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Nothing listens there: every refusal comes before any call.
    let manifest = write(
        "m.yaml",
        "apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {name: analytics, namespace: data}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: emr-cli00001
    accountRef: {name: tencent-prod}
    endpoint: http://127.0.0.1:9
  core: {count: 3}
",
    );
    let account = |name: &str, spec: &str| {
        write(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {{name: {name}}}\nspec:\n{spec}"
            ),
        )
    };
    let plan = |account: Option<&Path>, env: &[(&str, &str)]| {
        let mut c = cli_support::command(env);
        c.args(["plan", "-f"]).arg(&manifest);
        if let Some(a) = account {
            c.arg("--account").arg(a);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let wi = "    workloadIdentity: {roleArn: 'qcs::cam::uin/1:roleName/r', providerId: p, region: ap-guangzhou}\n";

    let huawei = account(
        "tencent-prod",
        "  huawei:\n    workloadIdentity: {idpId: cce}\n",
    );
    let err = plan(Some(&huawei), &[]);
    assert!(
        err.contains("is a huawei account") && err.contains("needs a tencent account"),
        "{err}"
    );

    let other = account("tencent-dev", &format!("  tencent:\n{wi}"));
    let err = plan(Some(&other), &[]);
    assert!(
        err.contains("\"tencent-dev\"") && err.contains("\"tencent-prod\""),
        "{err}"
    );

    let misspelt = account(
        "tencent-prod",
        &format!("  tencent:\n{}", wi.replace("roleArn", "roleARN")),
    );
    let err = plan(Some(&misspelt), &[]);
    assert!(
        err.contains(&misspelt.display().to_string())
            && err.contains("spec.tencent.workloadIdentity.roleARN"),
        "{err}"
    );
    let err = plan(Some(&dir.path().join("absent.yaml")), &[]);
    assert!(err.contains("absent.yaml"), "{err}");

    // The Secret of a secretRef account is read through a kubeconfig; with
    // none usable, the error names the Secret and says so.
    let secret = account(
        "tencent-prod",
        "  tencent:\n    secretRef: {namespace: clusterscale, name: tencent-keys}\n",
    );
    let home = dir.path().to_str().unwrap();
    let absent = dir.path().join("no-kubeconfig");
    let err = plan(
        Some(&secret),
        &[("HOME", home), ("KUBECONFIG", absent.to_str().unwrap())],
    );
    assert!(
        err.contains("Secret clusterscale/tencent-keys") && err.contains("kubeconfig"),
        "{err}"
    );
    // A kubeconfig whose apiserver does not answer (nothing listens on
    // port 9): the Secret is named, exit 1 (it may answer later).
    let kubeconfig = write(
        "kubeconfig",
        "apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users: [{name: u, user: {token: not-a-real-token}}]
",
    );
    let o = cli_support::command(&[("HOME", home), ("KUBECONFIG", kubeconfig.to_str().unwrap())])
        .args(["plan", "-f"])
        .arg(&manifest)
        .arg("--account")
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reading Secret clusterscale/tencent-keys")
            && !err.contains("not-a-real-token"),
        "{err}"
    );

    // accountRef without --account or any credentials in the environment.
    let err = plan(None, &[]);
    assert!(
        err.contains("--account FILE")
            && err.contains("TENCENTCLOUD_SECRET_ID")
            && err.contains("TKE_ROLE_ARN")
            && err.contains("tencent-prod"),
        "{err}"
    );
}
