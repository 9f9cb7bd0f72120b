//! The autoscaling recipes of `examples/autoscaling/`, run by the real KEDA
//! (operator and metrics adapter, built from `github.com/kedacore/keda/v2`
//! by `hack/build-keda.sh`) and the real HPA controller
//! (`kube-controller-manager`, built from `k8s.io/kubernetes` by
//! `tests/kube/build-apiserver.sh kube-controller-manager`), on the real
//! kube-apiserver with the aggregation layer: KEDA's adapter serves
//! `external.metrics.k8s.io` as an APIService.
//!
//! Every recipe is applied as shipped, with only what names this test's
//! world changed (namespace, target, ResourceManager URL, the cron window's
//! times) and the HPA's windows shortened to fit a test. KEDA writes the
//! Task count through the ScaledCluster's `/scale`, the operator converges
//! the fake cloud to it, and the fake ResourceManager's load follows the
//! fake cluster's nodes:
//! - the cron window opens a minute after the start and closes three
//!   minutes later: Task goes up to the window's count and back down;
//! - load on the ResourceManager scales out; the load gone, the scale-in
//!   waits for the stabilization window and steps down by the policy;
//! - a request above `task.max` is clamped and reported (`TaskClamped`);
//! - on a cluster whose scale-in is not allowed, the window's close is not
//!   applied, and reported (`ScaleInDisallowed`).
//!
//! It fails, never skips, when KEDA or the controller manager cannot be
//! built or started.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;
use support::*;

/// Service ClusterIPs in loopback: the aggregation layer dials the adapter's
/// Service ClusterIP, which no kube-proxy would route here.
const SERVICE_CIDR: &str = "127.77.0.0/24";
/// The ClusterIP of KEDA's metrics adapter, where it listens.
const ADAPTER_IP: &str = "127.77.0.50";
const KEDA_NS: &str = "keda";
/// Memory of one fake NodeManager, in MB: the recipe's `nodeMB`.
const NODE_MB: u64 = 65536;
/// Core nodes: the recipes' examples/tencent.yaml cluster has 5, which the
/// YARN recipe's formula subtracts.
const CORE: i32 = 5;
/// The HPA's stabilization windows, shortened from the recipes' for a test.
const SCALE_DOWN_WINDOW: u64 = 60;

/// Run a build script; its last stdout line is the directory it built into.
fn build(script: &str, args: &[&str]) -> PathBuf {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join(script))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}): KEDA and the HPA controller are required, not optional",
        out.status
    );
    let dir = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    eprintln!(
        "{script} {args:?}: {} in {:.0?}",
        dir.display(),
        started.elapsed()
    );
    dir
}

/// A child process killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(t: &TestNs, name: &'static str, mut cmd: Command) -> Proc {
        let log = t.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        register_child(child.id());
        t.register_log(name, log);
        Proc { name, child }
    }

    /// Fail the test if the process has exited.
    fn check_running(&mut self, t: &TestNs) {
        if let Ok(Some(status)) = self.child.try_wait() {
            t.fail(&format!("{} exited ({status})", self.name));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and one certificate (server and client) for KEDA's operator and
/// adapter: their gRPC link is mutual TLS, and the adapter serves the
/// aggregation layer at [`ADAPTER_IP`] with it. Written as `ca.crt`,
/// `tls.crt` and `tls.key`, the names both read from their `--cert-dir`.
fn keda_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("keda-certs");
    std::fs::create_dir_all(&certs).expect("cert dir");
    let script = format!(
        r#"set -e
cd "$1"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -keyout ca.key -out ca.crt -subj /CN=keda-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout tls.key -out tls.csr -subj /CN=keda 2>/dev/null
printf 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = IP:127.0.0.1, IP:{ADAPTER_IP}, DNS:localhost, DNS:keda-metrics-apiserver.{KEDA_NS}.svc, DNS:keda-operator.{KEDA_NS}.svc.cluster.local\n' > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 2 -extfile tls.ext -out tls.crt 2>/dev/null
rm -f tls.csr ca.srl
"#
    );
    let ok = Command::new("bash")
        .args(["-c", &script, "keda-certs"])
        .arg(&certs)
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl could not make KEDA's certificates");
    certs
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = apiserver().kubectl_stdin(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdin.unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn admin_kubeconfig() -> String {
    apiserver().kubeconfig.display().to_string()
}

/// KEDA's CRDs, its namespace, the adapter's Service (a ClusterIP in
/// loopback, an EndpointSlice so the APIService is Available) and the
/// APIService, then the operator and the adapter. Returns once
/// `external.metrics.k8s.io` answers through the aggregation layer.
async fn start_keda(t: &TestNs, keda: &Path) -> Vec<Proc> {
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "-f",
            keda.join("crds").to_str().expect("utf-8"),
        ],
        None,
    );
    let certs = keda_certs(&t.dir);
    let ca = base64_file(&certs.join("ca.crt"));
    let adapter_port = free_addr().port();
    let grpc = free_addr();
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: {KEDA_NS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: keda-metrics-apiserver, namespace: {KEDA_NS}}}
spec:
  clusterIP: {ADAPTER_IP}
  ports: [{{name: https, port: {adapter_port}, targetPort: {adapter_port}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver-1
  namespace: {KEDA_NS}
  labels: {{kubernetes.io/service-name: keda-metrics-apiserver}}
addressType: IPv4
# Never dialled: the aggregation layer dials the ClusterIP. The
# availability check only wants a ready endpoint (a loopback one is invalid).
endpoints: [{{addresses: [10.77.0.50], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {adapter_port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.external.metrics.k8s.io}}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {{name: keda-metrics-apiserver, namespace: {KEDA_NS}, port: {adapter_port}}}
  caBundle: {ca}
  groupPriorityMinimum: 100
  versionPriority: 100
"#
        )),
    );
    let kubeconfig = admin_kubeconfig();
    let cert_dir = certs.to_str().expect("utf-8");
    let env = |cmd: &mut Command| {
        cmd.env("KUBECONFIG", &kubeconfig)
            .env("WATCH_NAMESPACE", "")
            .env("POD_NAMESPACE", KEDA_NS)
            .env("KEDA_CLUSTER_OBJECT_NAMESPACE", KEDA_NS);
    };
    let mut operator = Command::new(keda.join("keda-operator"));
    env(&mut operator);
    operator.args([
        "--leader-elect=false",
        &format!("--metrics-bind-address={}", free_addr()),
        &format!("--health-probe-bind-address={}", free_addr()),
        &format!("--metrics-service-bind-address={grpc}"),
        &format!("--cert-dir={cert_dir}"),
        "--enable-cert-rotation=false",
        "--enable-webhook-patching=false",
        "--enable-apiservice-patching=false",
        "--zap-log-level=info",
    ]);
    let mut adapter = Command::new(keda.join("keda-adapter"));
    env(&mut adapter);
    adapter.args([
        &format!("--bind-address={ADAPTER_IP}"),
        &format!("--secure-port={adapter_port}"),
        &format!("--cert-dir={cert_dir}"),
        &format!("--tls-cert-file={cert_dir}/tls.crt"),
        &format!("--tls-private-key-file={cert_dir}/tls.key"),
        &format!("--authentication-kubeconfig={kubeconfig}"),
        &format!("--authorization-kubeconfig={kubeconfig}"),
        &format!("--lister-kubeconfig={kubeconfig}"),
        &format!("--metrics-service-address={grpc}"),
        &format!("--port={}", free_addr().port()),
        "--zap-log-level=info",
    ]);
    let mut procs = vec![
        Proc::spawn(t, "keda-operator", operator),
        Proc::spawn(t, "keda-adapter", adapter),
    ];
    let started = Instant::now();
    loop {
        for p in &mut procs {
            p.check_running(t);
        }
        let out = apiserver().kubectl(&["get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"]);
        if out.status.success() {
            eprintln!(
                "external.metrics.k8s.io served by KEDA's adapter after {:.0?}",
                started.elapsed()
            );
            return procs;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let status = apiserver().kubectl(&[
                "get",
                "apiservice",
                "v1beta1.external.metrics.k8s.io",
                "-o",
                "jsonpath={.status}",
            ]);
            t.fail(&format!(
                "external.metrics.k8s.io not served after 120 s: {}; APIService status {}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&status.stdout)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// kube-controller-manager running the HPA controller only, syncing every
/// 5 s (15 s by default).
fn start_hpa_controller(t: &TestNs, bindir: &Path) -> Proc {
    let mut cmd = Command::new(bindir.join("kube-controller-manager"));
    cmd.args([
        &format!("--kubeconfig={}", admin_kubeconfig()),
        "--controllers=horizontal-pod-autoscaler-controller",
        "--leader-elect=false",
        "--secure-port=0",
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--v=2",
    ]);
    Proc::spawn(t, "kube-controller-manager", cmd)
}

/// `base64 -w0 FILE`: the caBundle of the APIService.
fn base64_file(path: &Path) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .expect("base64");
    assert!(out.status.success(), "base64 {}", path.display());
    String::from_utf8(out.stdout).expect("base64 is ASCII")
}

/// The KEDA ScaledObject of `file` in `examples/autoscaling/`, made this
/// test's: in its namespace, targeting `target`, with `adjust` applied.
fn recipe(file: &str, ns: &str, target: &str, adjust: impl FnOnce(&mut Value)) -> String {
    let path = repo().join("examples/autoscaling").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|d: &Value| d.get("kind").and_then(Value::as_str) == Some("ScaledObject"))
        .collect();
    assert_eq!(docs.len(), 1, "{file}: one ScaledObject");
    let mut so = docs.remove(0);
    so["metadata"]["namespace"] = Value::from(ns);
    so["spec"]["scaleTargetRef"]["name"] = Value::from(target);
    adjust(&mut so);
    serde_yaml_ng::to_string(&so).expect("yaml")
}

/// The triggers of a ScaledObject.
fn triggers(so: &mut Value) -> &mut Vec<Value> {
    match &mut so["spec"]["triggers"] {
        Value::Sequence(s) => s,
        other => panic!("spec.triggers is not a list: {other:?}"),
    }
}

/// Point every `metrics-api` trigger at `yarn` (the fake ResourceManager).
fn point_at(so: &mut Value, yarn: &str) {
    let mut pointed = 0;
    for trigger in triggers(so) {
        if trigger.get("type").and_then(Value::as_str) == Some("metrics-api") {
            trigger["metadata"]["url"] = Value::from(format!("{yarn}/ws/v1/cluster/metrics"));
            pointed += 1;
        }
    }
    assert!(pointed > 0, "no metrics-api trigger");
}

/// Shorten the HPA's scale-down stabilization window to `seconds`, keeping
/// the recipe's policies.
fn shorten_scale_down(so: &mut Value, seconds: u64) {
    let behavior =
        &mut so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"];
    assert!(
        behavior.is_mapping(),
        "the recipe damps scale-down: advanced.horizontalPodAutoscalerConfig.behavior.scaleDown"
    );
    behavior["stabilizationWindowSeconds"] = Value::from(seconds);
}

/// Cron triggers: a window from `start` to `end` (minutes of the day in the
/// trigger's own timezone), every day.
fn cron_window(so: &mut Value, start: jiff::Timestamp, end: jiff::Timestamp) {
    let mut set = 0;
    for trigger in triggers(so) {
        if trigger.get("type").and_then(Value::as_str) != Some("cron") {
            continue;
        }
        let tz = trigger["metadata"]["timezone"]
            .as_str()
            .expect("a cron trigger names its timezone")
            .to_string();
        let at = |ts: jiff::Timestamp| {
            let local = ts.in_tz(&tz).expect("a known timezone");
            format!("{} {} * * *", local.minute(), local.hour())
        };
        trigger["metadata"]["start"] = Value::from(at(start));
        trigger["metadata"]["end"] = Value::from(at(end));
        set += 1;
    }
    assert!(set > 0, "no cron trigger");
}

/// The `desiredReplicas` of the first cron trigger.
fn cron_replicas(so: &Value) -> i32 {
    so["spec"]["triggers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|t| t.get("type").and_then(Value::as_str) == Some("cron"))
        .and_then(|t| t["metadata"]["desiredReplicas"].as_str())
        .and_then(|s| s.parse().ok())
        .expect("a cron trigger with desiredReplicas")
}

fn task_count(sc: &clusterscale_core::api::ScaledCluster) -> i32 {
    sc.spec.task.count
}

async fn set_demand(yarn: &str, memory_mb: u64) {
    let status = reqwest::Client::new()
        .put(format!("{yarn}/_fake/yarn/demand"))
        .json(&serde_json::json!({ "memoryMB": memory_mb }))
        .send()
        .await
        .expect("PUT /_fake/yarn/demand")
        .status();
    assert!(status.is_success(), "PUT /_fake/yarn/demand: {status}");
}

/// The fake ResourceManager's `clusterMetrics`.
async fn yarn_metrics(yarn: &str) -> serde_json::Value {
    let body: serde_json::Value = reqwest::get(format!("{yarn}/ws/v1/cluster/metrics"))
        .await
        .expect("GET /ws/v1/cluster/metrics")
        .json()
        .await
        .expect("JSON");
    body["clusterMetrics"].clone()
}

fn scaled_cluster(name: &str, instance: &str, endpoint: &str, task: (i32, i32, i32)) -> String {
    let (count, min, max) = task;
    format!(
        r#"apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {{name: {name}}}
spec:
  {}
  core: {{count: {CORE}}}
  task: {{count: {count}, min: {min}, max: {max}}}
  scaleIn: {{allowed: true, gracefulTimeoutSeconds: 0}}
  maxStep: 10
  cooldownSeconds: 0
"#,
        tencent_block(instance, endpoint, "tc-creds")
    )
}

/// The operator's spec.task.count history, as KEDA's HPA wrote it.
async fn wait_task(t: &TestNs, name: &str, what: &str, timeout: Duration, want: i32) {
    t.wait_sc(name, what, timeout, |sc| {
        task_count(sc) == want && converged_at(sc, CORE, want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keda_and_the_hpa_controller_drive_the_task_count_through_scale() {
    assert!(
        use_service_cidr(SERVICE_CIDR),
        "the apiserver started before its Service range was set"
    );
    let keda = build("hack/build-keda.sh", &[]);
    let kube = build(
        "tests/kube/build-apiserver.sh",
        &["kube-controller-manager"],
    );
    let t = TestNs::new("autoscaling").await;
    let _keda = start_keda(&t, &keda).await;
    // Every recipe, as shipped, is valid for KEDA's CRDs and the HPA API.
    for entry in std::fs::read_dir(repo().join("examples/autoscaling")).expect("recipes") {
        let path = entry.expect("recipe").path();
        let text = std::fs::read_to_string(&path).expect("recipe");
        let text = text.replace("namespace: data", &format!("namespace: {}", t.ns));
        let out = apiserver().kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&text));
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut hpa = start_hpa_controller(&t, &kube);
    t.secret(
        "tc-creds",
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", TENCENT_SECRET_KEY),
        ],
    );
    // One fleet: emr-fake00000 under YARN load, 00001 on a cron window,
    // 00002 capped below what KEDA asks.
    let fake = FakeCloud::start(
        &t,
        "tencent",
        &[
            "--tencent",
            "127.0.0.1:0",
            "--tencent-instances",
            "4",
            "--operation-seconds",
            "2",
            "--initial-core",
            &CORE.to_string(),
            "--yarn",
            "127.0.0.1:0",
            "--yarn-cluster",
            "emr-fake00000",
            "--yarn-node-mb",
            &NODE_MB.to_string(),
        ],
    );
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    let yarn = fake.yarn.clone().expect("yarn endpoint");
    let _op = Operator::start(&t, "autoscaling");
    // The recipes' bounds: KEDA's [minReplicaCount, maxReplicaCount] is
    // [2, 60], as the ScaledCluster's [task.min, task.max]; capped's max is 4.
    let floor = 2;
    for (name, instance, max) in [
        ("load", "emr-fake00000", 60),
        ("nightly", "emr-fake00001", 60),
        ("capped", "emr-fake00002", 4),
    ] {
        t.apply_ok(&scaled_cluster(
            name,
            instance,
            &endpoint,
            (floor, floor, max),
        ));
    }
    // As nightly, but scale-in is not allowed: KEDA's scale-in is not applied.
    t.apply_ok(
        &scaled_cluster("frozen", "emr-fake00003", &endpoint, (floor, floor, 60))
            .replace("allowed: true", "allowed: false"),
    );
    for name in ["load", "nightly", "capped", "frozen"] {
        let what = format!("{name} at {CORE}/{floor}");
        wait_task(&t, name, &what, Duration::from_secs(120), floor).await;
    }
    hpa.check_running(&t);

    // The cron window: opens at the first whole minute at least 60 s from
    // now, closes 3 minutes later.
    let now = jiff::Timestamp::now();
    let open = jiff::Timestamp::from_second((now.as_second() + 60 + 59) / 60 * 60).unwrap();
    let close = open + jiff::SignedDuration::from_secs(180);
    let mut window = 0;
    let cron = recipe("keda-cron.yaml", &t.ns, "nightly", |so| {
        cron_window(so, open, close);
        // Fewer nodes than the recipe's 20, so that one step of its
        // scale-down policy (5 nodes per 10 minutes) brings them back.
        for trigger in triggers(so) {
            trigger["metadata"]["desiredReplicas"] = Value::from("6");
        }
        window = cron_replicas(so);
        shorten_scale_down(so, SCALE_DOWN_WINDOW);
    });
    t.apply_ok(&cron);
    let frozen = recipe("keda-cron.yaml", &t.ns, "frozen", |so| {
        cron_window(so, open, close);
        for trigger in triggers(so) {
            trigger["metadata"]["desiredReplicas"] = Value::from("6");
        }
        shorten_scale_down(so, SCALE_DOWN_WINDOW);
        so["metadata"]["name"] = Value::from("frozen");
    });
    t.apply_ok(&frozen);
    // YARN load: the recipe's metric is the demand in nodes.
    let load = recipe("keda-yarn.yaml", &t.ns, "load", |so| {
        point_at(so, &yarn);
        shorten_scale_down(so, SCALE_DOWN_WINDOW);
    });
    t.apply_ok(&load);
    // Above task.max: a cron window open all day long asking more than 4.
    let capped = recipe("keda-cron.yaml", &t.ns, "capped", |so| {
        for trigger in triggers(so) {
            trigger["metadata"]["timezone"] = Value::from("UTC");
            trigger["metadata"]["start"] = Value::from("0 0 * * *");
            trigger["metadata"]["end"] = Value::from("59 23 * * *");
            trigger["metadata"]["desiredReplicas"] = Value::from("9");
        }
        so["metadata"]["name"] = Value::from("capped");
    });
    t.apply_ok(&capped);

    let load_run = async {
        // 5 Core + 5 Task nodes' worth of memory.
        set_demand(&yarn, 10 * NODE_MB).await;
        wait_task(
            &t,
            "load",
            "load scaled out to 5 Task nodes",
            Duration::from_secs(180),
            5,
        )
        .await;
        // The new nodes took the pending containers: the queue is relieved,
        // and the count holds (the demand in nodes did not move), through
        // four of the HPA's 5 s syncs.
        let metrics = yarn_metrics(&yarn).await;
        assert_eq!(metrics["pendingMB"], 0, "the queue relieved: {metrics}");
        assert_eq!(metrics["allocatedMB"], 10 * NODE_MB, "{metrics}");
        tokio::time::sleep(Duration::from_secs(20)).await;
        let held = t.get_ok("load").await;
        assert_eq!(
            task_count(&held),
            5,
            "no flap once the pending memory is allocated: {:?}",
            held.spec.task
        );
        let relieved = Instant::now();
        set_demand(&yarn, 0).await;
        let sc = t
            .wait_sc(
                "load",
                "load scaled back in",
                Duration::from_secs(300),
                |sc| task_count(sc) < 5,
            )
            .await;
        // The HPA keeps the highest recommendation of the window, and the
        // last high one came at most one 5 s sync before the load went:
        // without the window the scale-in would come within a sync or two.
        let waited = relieved.elapsed();
        assert!(
            waited >= Duration::from_secs(SCALE_DOWN_WINDOW - 10),
            "scale-in after {waited:?}, inside the {SCALE_DOWN_WINDOW} s stabilization window: {:?}",
            sc.spec.task
        );
        wait_task(
            &t,
            "load",
            "load back at the floor",
            Duration::from_secs(300),
            floor,
        )
        .await;
        waited
    };
    let cron_run = async {
        let before = t.get_ok("nightly").await;
        assert_eq!(
            task_count(&before),
            floor,
            "nothing before the window opens"
        );
        wait_task(
            &t,
            "nightly",
            &format!("nightly at {window} Task nodes in the window"),
            Duration::from_secs(240),
            window,
        )
        .await;
        let opened = jiff::Timestamp::now();
        assert!(
            opened >= open,
            "scaled out at {opened}, before the window opened at {open}"
        );
        wait_task(
            &t,
            "nightly",
            "nightly back at the floor after the window",
            Duration::from_secs(420),
            floor,
        )
        .await;
        let closed = jiff::Timestamp::now();
        assert!(closed >= close, "scaled in at {closed}, before {close}");
        // The same window on a cluster whose scale-in is not allowed: KEDA
        // asks for the floor, and the cluster stays at the window's count,
        // saying why.
        t.wait_sc(
            "frozen",
            "frozen asked for the floor, kept at the window's count, ScaleInDisallowed",
            Duration::from_secs(120),
            |sc| {
                sc.spec.task.count == floor
                    && observed(sc) == Some((CORE, window))
                    && condition(sc, "Ready")
                        .is_some_and(|c| c.status == "False" && c.reason == "ScaleInDisallowed")
            },
        )
        .await;
    };
    let capped_run = async {
        let sc = t
            .wait_sc(
                "capped",
                "capped clamped at 4, reported",
                Duration::from_secs(180),
                |sc| {
                    sc.spec.task.count == 9
                        && observed(sc) == Some((CORE, 4))
                        && sc
                            .status
                            .as_ref()
                            .is_some_and(|s| s.pending_operation.is_none())
                        && condition(sc, "Ready")
                            .is_some_and(|c| c.status == "False" && c.reason == "TaskClamped")
                },
            )
            .await;
        condition(&sc, "Ready").expect("Ready").message.clone()
    };
    let (waited, (), clamp) = tokio::join!(load_run, cron_run, capped_run);
    hpa.check_running(&t);
    eprintln!("load: scale-in {waited:?} after the load went; capped: {clamp}");
    // Every scale was one the fake verified: no refused write.
    for line in fake.writes("tencent") {
        assert!(
            !line.outcome.contains("Failure"),
            "{}: {}",
            line.action,
            line.outcome
        );
    }
}
