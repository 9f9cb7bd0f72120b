//! The fleet benchmark: N ScaledClusters in a real kube-apiserver, the
//! operator (this profile's build; release under `cargo bench`) as a separate
//! process, and numbers, never assertions on speed.
//!
//! ```sh
//! cargo bench --bench scale                        # N = 1,000 and 10,000, simulated cloud
//! cargo bench --bench scale -- --n 2000 --quiet-seconds 30
//! cargo bench --bench scale -- --n 1000 --pools 2          # two named Task pools per cluster
//! cargo bench --bench scale -- --n 200 --cloud tencent --delay-ms 100 --quiet-seconds 20
//! ```
//!
//! `--cloud tencent` runs the fleet against one `clusterscale-fake-cloud
//! --tencent 127.0.0.1:0 --tencent-instances N --delay-ms D
//! --throttle-per-second 20` process (one account, EMR's 20 requests/s per
//! action), each ScaledCluster naming its own instance, with the fake's
//! credentials in a Secret of namespace `bench`. It also prints the ceiling
//! that the account's rate limit implies: clusters per account per resync
//! period = 20/s x resync seconds / (calls per observation of the busiest
//! action), from the calls the fake journaled in the quiet window.
//!
//! For each N it prints: seconds from the operator's start to all Ready (every
//! cluster needs one scale-out), the operator's peak RSS, mean and p99
//! reconcile time (from its own histogram; also the mean of the quiet window's
//! reconciles alone, which observe and write nothing), the latency from a spec patch to
//! the write-ahead record at 20 and at 100 patches/s (`--probe-rates`;
//! measured on a watch stream),
//! apiserver requests, status writes and cloud observations per cluster in a
//! quiet window after convergence (resync set to that window), and the
//! takeover time of a follower after the leader is SIGKILLed.
//!
//! Under `cargo test --all-targets` (no `--bench`), it runs once with N = 20
//! and a 5 s quiet window as a smoke test of the harness.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clusterscale_core::api::ScaledCluster;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use support::{fake_cloud_bin, free_addr, Apiserver, Operator, BIN};

const NS: &str = "bench";

struct Args {
    sizes: Vec<usize>,
    /// `simulated` (in the operator) or `tencent` (the fake EMR endpoint).
    cloud: String,
    delay_ms: u64,
    quiet_seconds: u64,
    probe_patches: usize,
    /// Spec patches per second of each probe round (`--probe-rates 20,100`).
    probe_rates: Vec<u32>,
    /// Named Task pools per cluster (`--pools K`), each needing one scale-out.
    pools: usize,
    full: bool,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let full = argv.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    let sizes = value("--n")
        .map(|v| {
            v.split(',')
                .map(|n| n.parse().expect("--n N[,N]"))
                .collect()
        })
        .unwrap_or_else(|| if full { vec![1_000, 10_000] } else { vec![20] });
    let cloud = value("--cloud").unwrap_or_else(|| "simulated".into());
    assert!(
        cloud == "simulated" || cloud == "tencent",
        "--cloud simulated|tencent"
    );
    Args {
        sizes,
        cloud,
        delay_ms: value("--delay-ms")
            .map(|v| v.parse().expect("--delay-ms MS"))
            .unwrap_or(0),
        quiet_seconds: value("--quiet-seconds")
            .map(|v| v.parse().expect("--quiet-seconds S"))
            .unwrap_or(if full { 60 } else { 5 }),
        probe_patches: value("--probe-patches")
            .map(|v| v.parse().expect("--probe-patches K"))
            .unwrap_or(if full { 400 } else { 10 }),
        probe_rates: value("--probe-rates")
            .unwrap_or_else(|| "20,100".into())
            .split(',')
            .map(|r| r.parse().expect("--probe-rates R[,R]"))
            .collect(),
        pools: value("--pools")
            .map(|v| v.parse().expect("--pools K"))
            .unwrap_or(0),
        full,
    }
}

/// EMR's limit per action and SecretId, which the fake enforces in the
/// `--cloud tencent` run.
const TENCENT_LIMIT: u32 = 20;
/// The operator's default resync period, for the ceiling.
const DEFAULT_RESYNC_SECONDS: u64 = 300;

/// The fake EMR endpoint of a `--cloud tencent` run.
struct Fake {
    child: Child,
    endpoint: String,
    journal: std::path::PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fake(a: &Apiserver, n: usize, delay_ms: u64) -> Fake {
    let dir = a.dir.join("fake-cloud");
    std::fs::create_dir_all(&dir).expect("fake dir");
    let out = dir.join("stdout");
    let child = Command::new(fake_cloud_bin())
        .env("RUST_LOG", "warn")
        .args(["--tencent", "127.0.0.1:0"])
        .args(["--tencent-instances", &n.to_string()])
        .args(["--delay-ms", &delay_ms.to_string()])
        .args(["--throttle-per-second", &TENCENT_LIMIT.to_string()])
        .args(["--operation-seconds", "1", "--initial-core", "3"])
        .args(["--tencent-secret-id", support::TENCENT_SECRET_ID])
        .args(["--tencent-secret-key", support::TENCENT_SECRET_KEY])
        .arg("--journal-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&out).expect("stdout")))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).expect("stderr"),
        ))
        .spawn()
        .expect("clusterscale-fake-cloud starts");
    support::register_child(child.id());
    let mut fake = Fake {
        child,
        endpoint: String::new(),
        journal: dir.join("tencent.jsonl"),
    };
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find_map(|l| l.strip_prefix("tencent listening on "))
        {
            fake.endpoint = url.trim().to_string();
            return fake;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "fake-cloud did not listen: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls per action in the fake's journal so far.
fn journal_calls(path: &std::path::Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(action) = v["action"].as_str() {
                *out.entry(action.to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

fn manifest(i: usize, tencent: Option<&str>, pools: usize) -> ScaledCluster {
    let cloud = match tencent {
        Some(endpoint) => serde_json::json!({"tencent": {
            "region": "ap-guangzhou",
            "instanceId": format!("emr-fake{i:05}"),
            "payMode": 0,
            "endpoint": endpoint,
            "credentialsSecretRef": {"name": "tc-creds"},
        }}),
        None => serde_json::json!({
            "simulated": {"initialCore": 3, "initialTask": 0, "operationSeconds": 1}
        }),
    };
    let mut sc = serde_json::json!({
        "apiVersion": "clusterscale.io/v1alpha1",
        "kind": "ScaledCluster",
        "metadata": {"name": format!("sc-{i:05}"), "namespace": NS},
        "spec": {
            "core": {"count": 3},
            "task": {"count": 1, "min": 0, "max": 400},
            "cooldownSeconds": 0,
        }
    });
    if let (Some(spec), Some(cloud)) = (sc["spec"].as_object_mut(), cloud.as_object()) {
        spec.extend(cloud.clone());
    }
    if pools > 0 {
        let pools: Vec<serde_json::Value> = (0..pools)
            .map(|k| match tencent {
                Some(_) => serde_json::json!({"name": format!("p{k}"), "count": 1, "max": 400,
                    "tencent": {"chargeType": "POSTPAID_BY_HOUR"}}),
                None => serde_json::json!({"name": format!("p{k}"), "count": 1, "max": 400,
                    "simulated": {"initialCount": 0}}),
            })
            .collect();
        sc["spec"]["taskPools"] = serde_json::Value::Array(pools);
    }
    serde_json::from_value(sc).expect("a valid ScaledCluster")
}

fn is_ready(sc: &ScaledCluster) -> bool {
    sc.status.as_ref().is_some_and(|s| {
        s.observed_generation == sc.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// `BENCH_LEADER_WRAPPER`: a command line that the leader runs under, for a
/// profile of the operator at scale, e.g. `heaptrack -o /tmp/heap` (then
/// `heaptrack_print -f /tmp/heap.zst`). The bench then measures neither the
/// leader's RSS (the wrapper's pid is not the operator's) nor the takeover.
const WRAPPER_ENV: &str = "BENCH_LEADER_WRAPPER";
const LEADER: &str = "bench-leader";

fn leader_wrapper() -> Vec<String> {
    std::env::var(WRAPPER_ENV)
        .map(|w| w.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The `clusterscale run` of the benchmark: release build, all of namespace
/// `bench`, its Lease there too, JSON logs to a file.
fn operator(a: &Apiserver, identity: &str, resync: u64) -> (Child, SocketAddr) {
    let metrics = free_addr();
    let health = free_addr();
    let log = a.dir.join(format!("operator-{identity}.log"));
    let wrapper = if identity == LEADER {
        leader_wrapper()
    } else {
        Vec::new()
    };
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let child = command
        .env("KUBECONFIG", &a.kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .args(["run", "--namespace", NS, "--lease-namespace", NS])
        .args(["--identity", identity])
        .args(["--metrics-addr", &metrics.to_string()])
        .args(["--health-addr", &health.to_string()])
        .args(["--resync-seconds", &resync.to_string()])
        .args(["--poll-seconds", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
        .spawn()
        .expect("clusterscale run starts");
    support::register_child(child.id());
    (child, metrics)
}

/// Peak resident set (VmHWM) of `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Sum of the samples of `family` (exact name) whose labels contain `filter`.
fn metric_sum(text: &str, family: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(family))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The 0.99 quantile of a histogram, as its bucket's upper bound.
fn p99_bucket(text: &str, family: &str) -> String {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{family}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    buckets
        .iter()
        .find(|(_, c)| *c >= 0.99 * total)
        .map(|(le, _)| format!("<= {:.0} ms", le * 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The operator's `/metrics`, as Prometheus scrapes it (gzip).
async fn get_text(metrics: SocketAddr) -> String {
    Operator::http_get(metrics, "/metrics")
        .await
        .map(|(_, text)| text)
        .unwrap_or_else(|| panic!("metrics endpoint {metrics}"))
}

async fn apiserver_requests(client: &Client) -> HashMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let mut out = HashMap::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |k: &str| {
            l.split(&format!("{k}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry("all".into()).or_insert(0.0) += v;
        let verb = label("verb");
        // Status writes are server-side apply: verb APPLY (PATCH counted too).
        if label("resource") == "scaledclusters"
            && label("subresource") == "status"
            && matches!(verb.as_str(), "APPLY" | "PATCH" | "PUT")
        {
            *out.entry("status writes".into()).or_insert(0.0) += v;
        }
        if label("resource") == "events" && matches!(verb.as_str(), "POST" | "PATCH") {
            *out.entry("event writes".into()).or_insert(0.0) += v;
        }
        if label("resource") == "leases" {
            *out.entry("lease".into()).or_insert(0.0) += v;
        }
    }
    out
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0 // USER_HZ is 100 on Linux
}

/// The pids of this benchmark's etcd and kube-apiserver: the processes
/// whose command line names its data directory.
fn server_pids(dir: &std::path::Path) -> Vec<(String, u32)> {
    let dir = dir.to_string_lossy();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(dir.as_ref()) {
            continue;
        }
        for name in ["kube-apiserver", "etcd"] {
            if cmd.split(' ').next().is_some_and(|c| c.ends_with(name)) {
                out.push((name.to_string(), pid));
            }
        }
    }
    out.sort();
    out
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

struct Row {
    n: usize,
    create_s: f64,
    ready_s: f64,
    rss_mib: f64,
    mean_reconcile_ms: f64,
    /// Mean over the quiet window's reconciles, and how many there were.
    quiet_reconcile: (f64, f64),
    p99_reconcile: String,
    /// Per probe round: its rate, and p50 / p99 / max ms and misses.
    probe: Vec<(u32, f64, f64, f64, usize)>,
    quiet_api_per_cluster: f64,
    quiet_writes: f64,
    quiet_observations_per_cluster: f64,
    takeover_s: f64,
    /// From the operator's start to all Ready: apiserver status writes and
    /// Event writes per cluster, and CPU seconds of the operator, the
    /// kube-apiserver and etcd.
    converge_writes: (f64, f64),
    converge_cpu: Vec<(String, f64)>,
    /// `--cloud tencent`: fake calls per observation in the quiet window,
    /// per action.
    calls_per_observation: Vec<(String, f64)>,
}

async fn run_one(n: usize, a: &Args) -> Row {
    let server = Apiserver::start("clusterscale-bench-").expect("a kube-apiserver");
    let ok = |args: &[&str]| {
        let o = server.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["apply", "-f", "crds/"]);
    ok(&[
        "wait",
        "--for=condition=Established",
        "crd/scaledclusters.clusterscale.io",
        "--timeout=30s",
    ]);
    ok(&["create", "namespace", NS]);
    let client = server.client().await;
    let api: Api<ScaledCluster> = Api::namespaced(client.clone(), NS);
    let fake = (a.cloud == "tencent").then(|| start_fake(&server, n, a.delay_ms));
    if fake.is_some() {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), NS);
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tc-creds", "namespace": NS},
                "stringData": {
                    "secretId": support::TENCENT_SECRET_ID,
                    "secretKey": support::TENCENT_SECRET_KEY,
                }
            }))
            .expect("a Secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the Secret");
    }
    let endpoint = fake.as_ref().map(|f| f.endpoint.clone());

    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let endpoint = endpoint.clone();
            let pools = a.pools;
            async move {
                api.create(
                    &PostParams::default(),
                    &manifest(i, endpoint.as_deref(), pools),
                )
                .await
                .expect("create")
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let create_s = started.elapsed().as_secs_f64();

    // The watch stream: readiness, and the write-ahead records of the probe.
    let ready: Arc<Mutex<HashMap<String, bool>>> = Default::default();
    let wanted: Arc<Mutex<HashMap<String, (i32, Instant)>>> = Default::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Default::default();
    let watch = {
        let (ready, wanted, latencies) = (ready.clone(), wanted.clone(), latencies.clone());
        let api = api.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Ok(Some(sc)) = stream.try_next().await {
                let name = sc.name_any();
                ready.lock().unwrap().insert(name.clone(), is_ready(&sc));
                let pending = sc
                    .status
                    .as_ref()
                    .and_then(|s| s.pending_operation.as_ref());
                if let Some(p) = pending {
                    let mut w = wanted.lock().unwrap();
                    if let Some((to, at)) = w.get(&name).copied() {
                        if p.to_count == to {
                            latencies
                                .lock()
                                .unwrap()
                                .push(at.elapsed().as_secs_f64() * 1000.0);
                            w.remove(&name);
                        }
                    }
                }
            }
        })
    };

    let servers = server_pids(&server.dir);
    let cpu0: Vec<f64> = servers.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let api0 = apiserver_requests(&client).await;
    let (mut leader, metrics) = operator(&server, LEADER, a.quiet_seconds.max(1));
    let t0 = Instant::now();
    let mut progress = 30;
    loop {
        let count = ready.lock().unwrap().values().filter(|r| **r).count();
        if count == n {
            break;
        }
        // Progress, so that a run that stalls (a fleet past its account's
        // ceiling) shows how far it got.
        if t0.elapsed() >= Duration::from_secs(progress) {
            eprintln!("  {progress:>5} s: {count}/{n} Ready");
            progress += 30;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "not all Ready after 30 min: {count}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_s = t0.elapsed().as_secs_f64();
    let mut converge_cpu = vec![("operator".to_string(), cpu_seconds(leader.id()))];
    for ((name, pid), before) in servers.iter().zip(&cpu0) {
        converge_cpu.push((name.clone(), cpu_seconds(*pid) - before));
    }
    let api1 = apiserver_requests(&client).await;
    let grew = |k: &str| {
        (api1.get(k).copied().unwrap_or(0.0) - api0.get(k).copied().unwrap_or(0.0)) / n as f64
    };
    let converge_writes = (grew("status writes"), grew("event writes"));

    // The probe: rounds of spec patches at each rate, each to a cluster no
    // other patch touches. A patch is sent at its slot whether or not the
    // one before it has been answered, so that the rate holds.
    let patches = a.probe_patches.min(n / a.probe_rates.len().max(1));
    let mut probe = Vec::new();
    for (round, &rate) in a.probe_rates.iter().enumerate() {
        latencies.lock().unwrap().clear();
        let start = tokio::time::Instant::now();
        let mut sent = Vec::new();
        for i in 0..patches {
            let name = format!("sc-{:05}", ((round * patches + i) * 7919) % n);
            tokio::time::sleep_until(start + Duration::from_secs(i as u64) / rate.max(1)).await;
            wanted
                .lock()
                .unwrap()
                .insert(name.clone(), (2, Instant::now()));
            let api = api.clone();
            sent.push(tokio::spawn(async move {
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"task": {"count": 2}}})),
                )
                .await
                .expect("patch");
            }));
        }
        for s in sent {
            s.await.expect("patch task");
        }
        let probe_end = Instant::now();
        while !wanted.lock().unwrap().is_empty() && probe_end.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let missed = std::mem::take(&mut *wanted.lock().unwrap()).len();
        let mut lat = latencies.lock().unwrap().clone();
        lat.sort_by(f64::total_cmp);
        probe.push((
            rate,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            missed,
        ));
    }
    // Let the probed clusters finish their operation.
    while ready.lock().unwrap().values().filter(|r| **r).count() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The quiet window, one resync period long.
    let m0 = get_text(metrics).await;
    let r0 = apiserver_requests(&client).await;
    let j0 = fake.as_ref().map(|f| journal_calls(&f.journal));
    tokio::time::sleep(Duration::from_secs(a.quiet_seconds)).await;
    let m1 = get_text(metrics).await;
    let r1 = apiserver_requests(&client).await;
    let j1 = fake.as_ref().map(|f| journal_calls(&f.journal));
    let delta = |k: &str| r1.get(k).copied().unwrap_or(0.0) - r0.get(k).copied().unwrap_or(0.0);
    let observations = metric_sum(&m1, "clusterscale_cloud_calls_total", "action=\"observe\"")
        - metric_sum(&m0, "clusterscale_cloud_calls_total", "action=\"observe\"");
    let sum = metric_sum(&m1, "clusterscale_reconcile_duration_seconds_sum", "");
    let count = metric_sum(&m1, "clusterscale_reconcile_duration_seconds_count", "");
    // The quiet window's reconciles write nothing: observe, compare, requeue.
    let quiet_sum = sum - metric_sum(&m0, "clusterscale_reconcile_duration_seconds_sum", "");
    let quiet_count = count - metric_sum(&m0, "clusterscale_reconcile_duration_seconds_count", "");
    let wrapped = !leader_wrapper().is_empty();
    let rss_mib = if wrapped {
        f64::NAN
    } else {
        peak_rss_mib(leader.id())
    };
    let mut calls_per_observation: Vec<(String, f64)> = match (&j0, &j1) {
        (Some(j0), Some(j1)) if observations > 0.0 => j1
            .iter()
            .map(|(k, v)| {
                let before = j0.get(k).copied().unwrap_or(0);
                (k.clone(), (v - before) as f64 / observations)
            })
            .filter(|(_, v)| *v > 0.0)
            .collect(),
        _ => Vec::new(),
    };
    calls_per_observation.sort_by(|a, b| a.0.cmp(&b.0));

    let takeover_s = if wrapped {
        // Let the wrapped operator exit on its own (a profiler writes its
        // data then); the wrapper's pid is not the operator's, its metrics
        // address names it.
        let _ = Command::new("pkill")
            .args(["-TERM", "-f", "--", &format!("--metrics-addr {metrics} ")])
            .status();
        let stopping = Instant::now();
        while leader.try_wait().ok().flatten().is_none() {
            if stopping.elapsed() > Duration::from_secs(60) {
                let _ = leader.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = leader.wait();
        f64::NAN
    } else {
        takeover(&server, &mut leader, a.quiet_seconds).await
    };
    watch.abort();
    drop(fake);
    server.stop_in_background();

    Row {
        n,
        converge_writes,
        converge_cpu,
        create_s,
        ready_s,
        rss_mib,
        mean_reconcile_ms: if count > 0.0 {
            sum / count * 1000.0
        } else {
            f64::NAN
        },
        quiet_reconcile: (
            if quiet_count > 0.0 {
                quiet_sum / quiet_count * 1000.0
            } else {
                f64::NAN
            },
            quiet_count,
        ),
        p99_reconcile: p99_bucket(&m1, "clusterscale_reconcile_duration_seconds"),
        probe,
        quiet_api_per_cluster: delta("all") / n as f64,
        quiet_writes: delta("status writes"),
        quiet_observations_per_cluster: observations / n as f64,
        takeover_s,
        calls_per_observation,
    }
}

/// Seconds from SIGKILL of `leader` until a follower started now leads.
async fn takeover(server: &Apiserver, leader: &mut Child, resync: u64) -> f64 {
    let (mut follower, follower_metrics) = operator(server, "bench-follower", resync.max(1));
    let ready_probe = Instant::now();
    loop {
        let health = follower_metrics; // metrics and health are separate; /metrics answers once bound
        if let Some((200, _)) = Operator::http_get(health, "/metrics").await {
            break;
        }
        assert!(
            ready_probe.elapsed() < Duration::from_secs(60),
            "the follower did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = leader.kill();
    let _ = leader.wait();
    let killed = Instant::now();
    loop {
        let text = get_text(follower_metrics).await;
        if metric_sum(&text, "clusterscale_leader", "") >= 1.0 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "no takeover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = follower.kill();
    let _ = follower.wait();
    killed.elapsed().as_secs_f64()
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut rows = Vec::new();
    for &n in &a.sizes {
        eprintln!("scale bench: N = {n} ...");
        rows.push(rt.block_on(run_one(n, &a)));
    }
    let cloud = if a.cloud == "tencent" {
        format!(
            "cloud: fake Tencent EMR (one `clusterscale-fake-cloud --tencent-instances N --delay-ms {} --throttle-per-second {TENCENT_LIMIT}` process, one account)",
            a.delay_ms
        )
    } else {
        "cloud: simulated (in the operator)".to_string()
    };
    println!(
        "\nscale benchmark ({} build, {cloud}, {} named Task pool(s) per cluster, quiet window {} s = --resync-seconds, up to {} probe patches per rate)",
        if a.full { "release" } else { "test-profile smoke" },
        a.pools,
        a.quiet_seconds,
        a.probe_patches
    );
    println!("| N | create | all Ready after start | peak RSS | mean reconcile: all, quiet window (count) | p99 reconcile | patch to write-ahead p50 / p99 / max, per rate | quiet window: apiserver requests per cluster, status writes, observations per cluster | takeover after SIGKILL |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} s | {:.1} s | {:.0} MiB | {:.2} ms, {:.3} ms ({:.0}) | {} | {} | {:.2}, {:.0}, {:.2} | {:.1} s |",
            r.n,
            r.create_s,
            r.ready_s,
            r.rss_mib,
            r.mean_reconcile_ms,
            r.quiet_reconcile.0,
            r.quiet_reconcile.1,
            r.p99_reconcile,
            r.probe
                .iter()
                .map(|(rate, p50, p99, max, missed)| format!(
                    "{rate}/s: {p50:.0} / {p99:.0} / {max:.0} ms{}",
                    if *missed > 0 { format!(" ({missed} missed)") } else { String::new() }
                ))
                .collect::<Vec<_>>()
                .join("; "),
            r.quiet_api_per_cluster,
            r.quiet_writes,
            r.quiet_observations_per_cluster,
            r.takeover_s
        );
    }
    println!("\nuntil all Ready (a profile of the convergence):");
    for r in &rows {
        let cpu: Vec<String> = r
            .converge_cpu
            .iter()
            .map(|(k, v)| format!("{k} {v:.1} s"))
            .collect();
        println!(
            "N = {}: per cluster {:.2} status writes and {:.2} Event writes; CPU: {} (of {:.1} s x 2 cores)",
            r.n,
            r.converge_writes.0,
            r.converge_writes.1,
            cpu.join(", "),
            r.ready_s
        );
    }
    if a.cloud == "tencent" {
        for r in &rows {
            let busiest = r
                .calls_per_observation
                .iter()
                .map(|(_, v)| *v)
                .fold(0.0, f64::max);
            let calls: Vec<String> = r
                .calls_per_observation
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            let ceiling = |resync: u64| {
                if busiest > 0.0 {
                    format!("{:.0}", f64::from(TENCENT_LIMIT) * resync as f64 / busiest)
                } else {
                    "-".into()
                }
            };
            println!(
                "N = {}: calls per observation in the quiet window: {} (busiest action: {busiest:.2}); \
                 ceiling = {TENCENT_LIMIT}/s x resync / {busiest:.2} = {} clusters per account per {} s resync, \
                 {} per default {DEFAULT_RESYNC_SECONDS} s resync",
                r.n,
                if calls.is_empty() { "-".to_string() } else { calls.join(", ") },
                ceiling(a.quiet_seconds),
                a.quiet_seconds,
                ceiling(DEFAULT_RESYNC_SECONDS),
            );
        }
    }
}
