//! Harness for the tests against a real kube-apiserver (`mod support;`).
//!
//! - One etcd + kube-apiserver per test binary, started on first use by
//!   `tests/kube/apiserver.sh start DIR` (which builds the binaries when they
//!   are not cached yet), with the CRD installed once. A detached watchdog
//!   stops both, kills every process a test started, and removes DIR when
//!   the test process exits, however it exits. If the apiserver cannot start,
//!   every test that needs it fails with the script's output.
//! - The server version goes to stderr (uncaptured, so it shows in every run)
//!   and to `target/kube-apiserver-version.txt`.
//! - [`TestNs`]: a namespace per test, with helpers to run `kubectl`, start
//!   `clusterscale run` ([`Operator`]) and `clusterscale-fake-cloud`
//!   ([`FakeCloud`]) as processes, and to poll for a condition with a failure
//!   message that dumps the namespace's ScaledClusters, Events, operator logs
//!   and fake-cloud journals.
#![allow(dead_code, unused_imports)]

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use clusterscale_core::api::ScaledCluster;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

/// The `clusterscale` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_clusterscale");
#[path = "fake_cloud.rs"]
mod fake_cloud;
/// The fake clouds: `clusterscale-fake-cloud`, a binary of `crates/fakes`,
/// never part of `clusterscale`; built on first use.
pub use fake_cloud::fake_cloud_bin;
/// The CRD's name.
pub const CRD_NAME: &str = "scaledclusters.clusterscale.io";
/// Credentials the fake Tencent endpoint accepts (test values, not secrets).
pub const TENCENT_SECRET_ID: &str = "AKIDclusterscaleKubeTest0001";
pub const TENCENT_SECRET_KEY: &str = "clusterscaleKubeTestSecretKey0001";
/// Credentials the fake Huawei endpoint accepts when its environment has none
/// (`clusterscale_fakes::huawei::DEMO_ACCESS_KEY` and `DEMO_SECRET_KEY`, as
/// literals: this package does not link the fakes).
pub const HUAWEI_AK: &str = "HWFAKEACCESSKEY00001";
pub const HUAWEI_SK: &str = "HwFakeSecretKey0000000000000000000000001";

/// One request as a fake saw it: a line of its JSON-lines journal, as
/// `clusterscale_fakes::JournalLine` writes it (this package does not link
/// the fakes, so it reads the file).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalLine {
    /// When the request arrived (the fake's clock).
    pub at: jiff::Timestamp,
    /// `tencent`, `huawei`.
    pub cloud: String,
    /// The cloud's action or API name.
    pub action: String,
    /// The request id the fake answered with.
    pub request_id: String,
    /// The request parameters (values of keys naming secrets or passwords redacted).
    pub params: serde_json::Value,
    /// `ok`, the cloud's error code, or `HTTP <status>`.
    pub outcome: String,
    pub http_status: u16,
    /// True when the request started a change of the cluster.
    pub write: bool,
    /// Which keys signed it: `{key: static | sts#<n> | unknown, fingerprint}`.
    #[serde(default)]
    pub signed_by: Option<serde_json::Value>,
}

/// What a journal line's `outcome` carries after `; ` when its answer was
/// replaced by a malformed one (`clusterscale_fakes::MALFORMED_NOTE`).
pub const MALFORMED_NOTE: &str = "malformed answer: ";

/// Environment variables the binaries read for credentials or identity;
/// removed from every child so that the developer's own never leak in.
const SCRUBBED_ENV: &[&str] = &[
    "KUBECONFIG",
    "POD_NAMESPACE",
    "POD_NAME",
    "RUST_LOG",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN_NAME",
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SESSION_TOKEN",
];

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("tests/kube/apiserver.sh")
}

/// A running etcd + kube-apiserver.
#[derive(Debug)]
pub struct Apiserver {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub version: String,
}

static MAIN: OnceLock<Result<Apiserver, String>> = OnceLock::new();
static SERVICE_CIDR: OnceLock<&'static str> = OnceLock::new();

/// Give this test binary's apiserver (started by the first [`apiserver`]
/// call after this) the Service ClusterIP range `cidr`: a range in
/// 127.0.0.0/8 makes ClusterIPs reachable on loopback, where the
/// aggregation layer dials an APIService's Service (see
/// tests/kube/apiserver.sh). Returns false when the apiserver is already up
/// with another range.
pub fn use_service_cidr(cidr: &'static str) -> bool {
    SERVICE_CIDR.get_or_init(|| cidr) == &cidr && MAIN.get().is_none()
}

/// The apiserver of this test binary, with the CRD installed. Panics (the
/// test fails, it is never skipped) when it cannot be started.
pub fn apiserver() -> &'static Apiserver {
    let started = MAIN.get_or_init(|| {
        let a = Apiserver::start("clusterscale-kube-")?;
        record_version(&a.version);
        install_crd(&a.kubeconfig)?;
        Ok(a)
    });
    match started {
        Ok(a) => a,
        Err(e) => panic!(
            "the kube-apiserver for the integration tests is not available: {e}\n\
             (build it with `bash tests/kube/build-apiserver.sh`; it needs Go)"
        ),
    }
}

impl Apiserver {
    /// Start a fresh etcd + kube-apiserver in a new temporary directory, with
    /// a watchdog that stops them (and the test's child processes) and removes
    /// the directory once this process has exited.
    pub fn start(prefix: &str) -> Result<Apiserver, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?
            .keep();
        spawn_watchdog(&dir)?;
        let mut command = Command::new("bash");
        if let Some(cidr) = SERVICE_CIDR.get() {
            command.env("APISERVER_SERVICE_CIDR", cidr);
        }
        let mut child = command
            .arg(script())
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running bash {}: {e}", script().display()))?;
        // Relay the script's progress live (a first build takes minutes),
        // bypassing the test harness's capture, and keep it for the error.
        let stderr = child.stderr.take().expect("piped stderr");
        let relay = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(std::io::stderr(), "{line}");
                kept.push(line);
            }
            kept
        });
        let mut stdout = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
        }
        let status = child.wait().map_err(|e| format!("waiting for {e}"))?;
        let log = relay.join().unwrap_or_default();
        if !status.success() {
            let tail: Vec<_> = log.iter().rev().take(40).rev().cloned().collect();
            return Err(format!(
                "`bash tests/kube/apiserver.sh start {}` failed ({status}):\n{}",
                dir.display(),
                tail.join("\n")
            ));
        }
        let kubeconfig = PathBuf::from(stdout.trim().lines().last().unwrap_or_default());
        if !kubeconfig.is_file() {
            return Err(format!(
                "apiserver.sh printed {stdout:?}, not the path of a kubeconfig"
            ));
        }
        let version = std::fs::read_to_string(dir.join("version"))
            .map_err(|e| format!("reading {}/version: {e}", dir.display()))?
            .trim()
            .to_string();
        Ok(Apiserver {
            dir,
            kubeconfig,
            version,
        })
    }

    /// Stop it now (the watchdog would do it at exit anyway).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Start stopping it and return at once (stopping takes seconds; the
    /// watchdog would also do it at exit).
    pub fn stop_in_background(&self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A kube client as the admin user.
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", self.kubeconfig.display()));
        Client::try_from(config).expect("kube client")
    }

    /// Run kubectl against this apiserver.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Run kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        scrub(&mut cmd);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .current_dir(repo())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running kubectl (is it installed?): {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input.as_bytes())
                .expect("writing kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }
}

/// The watchdog: once `TESTPID` is gone, SIGKILL the processes registered in
/// DIR/children.pids (if they are still ours), stop etcd and the apiserver,
/// and remove DIR.
fn spawn_watchdog(dir: &Path) -> Result<(), String> {
    const WATCH: &str = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        if [ -f "$2/children.pids" ]; then
            while read -r p; do
                if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$4"; then
                    kill -KILL "$p" 2>/dev/null
                fi
            done <"$2/children.pids"
        fi
        bash "$3" stop "$2"
        rm -rf "$2"
    "#;
    Command::new("setsid")
        .args(["bash", "-c", WATCH, "clusterscale-kube-watchdog"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(script())
        .arg(BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("starting the watchdog with setsid: {e}"))
}

/// Remember a child process so that the watchdog kills it if this test
/// process dies without dropping its guard.
pub fn register_child(pid: u32) {
    let Some(Ok(a)) = MAIN.get() else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.dir.join("children.pids"))
    {
        let _ = writeln!(f, "{pid}");
    }
}

fn record_version(version: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "kube integration tests: running against kube-apiserver {version}"
    );
    eprintln!("kube-apiserver {version}");
    // CARGO_TARGET_TMPDIR is target/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"));
    let _ = std::fs::write(
        target.join("kube-apiserver-version.txt"),
        format!("{version}\n"),
    );
}

fn install_crd(kubeconfig: &Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let mut cmd = Command::new("kubectl");
        scrub(&mut cmd);
        let out = cmd
            .env("KUBECONFIG", kubeconfig)
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running kubectl (is it installed?): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "kubectl {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    run(&["apply", "-f", "crds/"])?;
    // kubectl wait fails at once, instead of waiting, on a CRD that exists but
    // has no conditions yet (".status.conditions accessor error: <nil>"); the
    // apiserver sets them moments later, so that answer is retried.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match run(&[
            "wait",
            "--for",
            "condition=Established",
            "--timeout=60s",
            &format!("crd/{CRD_NAME}"),
            "crd/cloudaccounts.clusterscale.io",
        ]) {
            Err(e) if e.contains("accessor error") && attempts < 50 => {
                std::thread::sleep(Duration::from_millis(100))
            }
            done => return done,
        }
    }
}

fn scrub(cmd: &mut Command) {
    for v in SCRUBBED_ENV {
        cmd.env_remove(v);
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A fresh namespace for one test, and everything that test started.
pub struct TestNs {
    pub ns: String,
    pub client: Client,
    pub api: Api<ScaledCluster>,
    /// Logs and journals of this test's processes.
    pub dir: PathBuf,
    logs: Mutex<Vec<(String, PathBuf)>>,
    /// Secret values this test handed out (Secret data, test keys): none may
    /// appear in a log, an Event or a status (checked when the test ends).
    secrets: Mutex<Vec<String>>,
}

/// Keys of Secret data whose values are secret (ids such as secretId and
/// accessKey are not).
const SECRET_DATA_KEYS: &[&str] = &["secretKey", "token", "securityToken", "password"];

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl TestNs {
    /// Create namespace `<prefix>-<n>` (prefix shortened and made DNS-safe).
    pub async fn new(prefix: &str) -> TestNs {
        let a = apiserver();
        let client = a.client().await;
        let mut base: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        base = base.trim_matches('-').to_string();
        let ns = format!(
            "{base}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": ns}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
        let dir = a.dir.join("tests").join(&ns);
        std::fs::create_dir_all(&dir).expect("test directory");
        TestNs {
            api: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            dir,
            logs: Mutex::new(Vec::new()),
            secrets: Mutex::new(vec![TENCENT_SECRET_KEY.to_string(), HUAWEI_SK.to_string()]),
        }
    }

    /// kubectl, with `-n <ns>` appended.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-n", &self.ns]);
        apiserver().kubectl(&all)
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            self.fail(&format!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml` into this namespace.
    pub fn apply(&self, yaml: &str) -> Output {
        apiserver().kubectl_stdin(&["apply", "-n", &self.ns, "-f", "-"], Some(yaml))
    }

    /// `kubectl apply` that must succeed.
    pub fn apply_ok(&self, yaml: &str) {
        let out = self.apply(yaml);
        if !out.status.success() {
            self.fail(&format!(
                "kubectl apply failed ({}): {}\n--- manifest ---\n{yaml}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }

    /// Create a Secret from string data.
    pub fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let mut args = vec![
            "create".to_string(),
            "secret".into(),
            "generic".into(),
            name.into(),
        ];
        for (k, v) in data {
            args.push(format!("--from-literal={k}={v}"));
            if SECRET_DATA_KEYS.contains(k) && v.len() >= 6 {
                self.secrets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(v.to_string());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl_ok(&args);
    }

    /// A secret value this test handed out other than through
    /// [`Self::secret`] (a JWT, temporary keys): the grep looks for it too.
    pub fn add_secret(&self, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= 6 {
            self.secrets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(value);
        }
    }

    pub fn register_log(&self, label: impl Into<String>, path: PathBuf) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((label.into(), path));
    }

    /// Fetch a ScaledCluster; `None` if it does not exist (yet).
    pub async fn get(&self, name: &str) -> Option<ScaledCluster> {
        self.api.get_opt(name).await.ok().flatten()
    }

    /// Fetch a ScaledCluster that must exist.
    pub async fn get_ok(&self, name: &str) -> ScaledCluster {
        match self.api.get(name).await {
            Ok(sc) => sc,
            Err(e) => self.fail(&format!("getting ScaledCluster {name}: {e}")),
        }
    }

    /// Wait until `name` is Degraded=True with `reason`; returns the object and
    /// the Degraded condition.
    pub async fn wait_degraded(
        &self,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> (ScaledCluster, Condition) {
        let sc = self
            .wait_sc(name, &format!("{name} Degraded/{reason}"), timeout, |sc| {
                condition(sc, "Degraded").is_some_and(|c| c.status == "True" && c.reason == reason)
            })
            .await;
        let degraded = condition(&sc, "Degraded").cloned().expect("Degraded");
        (sc, degraded)
    }

    /// Poll ScaledCluster `name` until `pred` holds; fail with diagnostics
    /// after `timeout`.
    pub async fn wait_sc(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ScaledCluster) -> bool,
    ) -> ScaledCluster {
        let api = self.api.clone();
        let name = name.to_string();
        self.wait_for(what, timeout, || {
            let api = api.clone();
            let name = name.clone();
            let found = async move { api.get_opt(&name).await.ok().flatten() };
            let pred = &pred;
            async move { found.await.filter(|sc| pred(sc)) }
        })
        .await
    }

    /// Poll `probe` every 250 ms until it returns `Some`; fail with the
    /// namespace's diagnostics after `timeout`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if start.elapsed() >= timeout {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Events (events.k8s.io/v1) about object `name` in this namespace.
    pub async fn events_for(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.as_deref())
                        .is_some_and(|n| n == name)
                })
                .collect(),
            Err(e) => self.fail(&format!("listing events in {}: {e}", self.ns)),
        }
    }

    /// Wait until object `name` has at least `n` events with `reason`; returns them.
    pub async fn wait_events(
        &self,
        name: &str,
        reason: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Event> {
        self.wait_for(
            &format!("{n} {reason} event(s) about {name}"),
            timeout,
            || async move {
                let found: Vec<Event> = self
                    .events_for(name)
                    .await
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some(reason))
                    .collect();
                (found.len() >= n).then_some(found)
            },
        )
        .await
    }

    /// Everything worth seeing when a test fails.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let show = |args: &[&str]| {
            let o = self.kubectl(args);
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        out.push_str(&format!(
            "\n===== ScaledClusters in {} =====\n{}",
            self.ns,
            show(&["get", "scaledclusters", "-o", "yaml"])
        ));
        out.push_str(&format!(
            "\n===== Events in {} =====\n{}",
            self.ns,
            show(&[
                "get",
                "events.v1.events.k8s.io",
                "-o",
                "custom-columns=TIME:.eventTime,OBJECT:.regarding.name,TYPE:.type,REASON:.reason,ACTION:.action,BY:.reportingInstance,NOTE:.note",
            ])
        ));
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (label, path) in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(80);
            out.push_str(&format!(
                "\n===== {label} ({}; last {} of {} lines) =====\n{}\n",
                path.display(),
                lines.len() - from,
                lines.len(),
                lines[from..].join("\n")
            ));
        }
        out
    }

    /// Every log line this test's processes wrote (operators, fake clouds,
    /// journals), every Event and every ScaledCluster status in its
    /// namespace, grepped for the secret values it used. Run when the test
    /// ends (`Drop`); returns the number of bytes scanned.
    pub fn assert_no_secrets(&self) -> usize {
        let mut sources: Vec<(String, String)> = Vec::new();
        for (label, args) in [
            (
                "ScaledClusters",
                &["get", "scaledclusters", "-o", "yaml"][..],
            ),
            (
                "Events",
                &["get", "events.v1.events.k8s.io", "-o", "yaml"][..],
            ),
            // Cluster-scoped: every test's, which is more than needed.
            ("CloudAccounts", &["get", "cloudaccounts", "-o", "yaml"][..]),
        ] {
            let o = self.kubectl(args);
            sources.push((
                label.to_string(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            ));
        }
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (label, path) in logs {
            sources.push((label, std::fs::read_to_string(&path).unwrap_or_default()));
        }
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut scanned = 0;
        for (label, text) in &sources {
            scanned += text.len();
            for secret in &secrets {
                if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
                    panic!(
                        "a secret value used by this test appears in {label} ({}):\n{line}",
                        self.ns
                    );
                }
            }
        }
        scanned
    }

    /// Fail the test with `msg` and the diagnostics.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.diagnostics())
    }

    /// Assert with diagnostics.
    pub fn check(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(&msg());
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_secrets();
        }
    }
}

/// The condition `type_` of a ScaledCluster.
pub fn condition<'a>(sc: &'a ScaledCluster, type_: &str) -> Option<&'a Condition> {
    sc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// True when condition `type_` has `status` ("True"/"False").
pub fn has_condition(sc: &ScaledCluster, type_: &str, status: &str) -> bool {
    condition(sc, type_).is_some_and(|c| c.status == status)
}

/// Ready=True at the current generation.
pub fn is_ready(sc: &ScaledCluster) -> bool {
    let status = sc.status.as_ref();
    has_condition(sc, "Ready", "True")
        && status.and_then(|s| s.observed_generation) == sc.metadata.generation
}

/// Observed (core, task), if any.
pub fn observed(sc: &ScaledCluster) -> Option<(i32, i32)> {
    sc.status
        .as_ref()?
        .observed
        .as_ref()
        .map(|o| (o.core, o.task))
}

/// Ready at `(core, task)` with no operation pending.
pub fn converged_at(sc: &ScaledCluster, core: i32, task: i32) -> bool {
    is_ready(sc)
        && observed(sc) == Some((core, task))
        && sc
            .status
            .as_ref()
            .is_some_and(|s| s.pending_operation.is_none())
}

/// The Huawei project id the kube tests' specs use.
pub const HUAWEI_PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// A `ScaledCluster` manifest for `kubectl apply`: `cloud` is the spec's
/// cloud block (YAML, one or more lines, unindented), then `core`, `task`
/// (with min 0 and max 20) and `more`: further spec fields, one per entry.
pub fn manifest(name: &str, cloud: &str, core: i32, task: i32, more: &[String]) -> String {
    let mut spec: Vec<String> = cloud.lines().map(str::to_string).collect();
    spec.push(format!("core: {{count: {core}}}"));
    spec.push(format!("task: {{count: {task}, min: 0, max: 20}}"));
    spec.extend(more.iter().cloned());
    let spec: String = spec.iter().map(|l| format!("  {l}\n")).collect();
    format!(
        "\napiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

/// Spec fields for tests that walk many targets fast: every scale-in
/// allowed at once, at most `max_step` nodes per operation, no cooldown.
pub fn fast_policy(max_step: i32) -> Vec<String> {
    vec![
        "scaleIn: {allowed: true, gracefulTimeoutSeconds: 0}".to_string(),
        format!("maxStep: {max_step}"),
        "cooldownSeconds: 0".to_string(),
    ]
}

/// `spec.simulated`, starting at 3 Core and 0 Task nodes.
pub fn simulated_block(operation_seconds: i32) -> String {
    format!("simulated: {{initialCore: 3, initialTask: 0, operationSeconds: {operation_seconds}}}")
}

/// `spec.tencent` for instance `instance` behind `endpoint`, credentials in Secret `secret`.
pub fn tencent_block(instance: &str, endpoint: &str, secret: &str) -> String {
    format!(
        "tencent: {{region: ap-guangzhou, instanceId: {instance}, payMode: 0, endpoint: \"{endpoint}\", credentialsSecretRef: {{name: {secret}}}}}"
    )
}

/// `spec.huawei` for cluster `cluster` of [`HUAWEI_PROJECT`] behind
/// `endpoint`, credentials in Secret `secret`, with a Task node spec.
pub fn huawei_block(cluster: &str, endpoint: &str, secret: &str) -> String {
    format!(
        "huawei: {{region: cn-north-4, projectId: \"{HUAWEI_PROJECT}\", clusterId: {cluster}, endpoint: \"{endpoint}\", credentialsSecretRef: {{name: {secret}}}, taskNodeSpec: {{nodeSize: c6.4xlarge.4.linux.bigdata, dataVolumeType: SATA, dataVolumeCount: 1, dataVolumeSize: 600}}}}"
    )
}

/// Options of one `clusterscale run`.
#[derive(Clone, Debug)]
pub struct OperatorOpts {
    pub identity: String,
    pub lease_name: String,
    pub kubeconfig: Option<PathBuf>,
    /// The operator's own namespace (its Lease, POD_NAMESPACE, and with
    /// `--secrets namespaced` its Secrets); default the watched one.
    pub own_namespace: Option<String>,
    pub extra: Vec<String>,
}

impl OperatorOpts {
    pub fn new(identity: &str) -> Self {
        Self {
            identity: identity.into(),
            lease_name: "clusterscale-leader".into(),
            kubeconfig: None,
            own_namespace: None,
            extra: Vec::new(),
        }
    }
}

/// A `clusterscale run` process watching one test namespace (its Lease in
/// that namespace too), killed when dropped.
pub struct Operator {
    child: Child,
    pub identity: String,
    pub log: PathBuf,
    pub metrics: SocketAddr,
    pub health: SocketAddr,
}

impl Operator {
    pub fn start(t: &TestNs, identity: &str) -> Operator {
        Self::start_with(t, OperatorOpts::new(identity))
    }

    pub fn start_with(t: &TestNs, opts: OperatorOpts) -> Operator {
        let metrics = free_addr();
        let health = free_addr();
        let log = t.dir.join(format!("operator-{}.log", opts.identity));
        let child = operator_command(&opts, Some(&t.ns), metrics, health, &log)
            .spawn()
            .expect("clusterscale run starts");
        register_child(child.id());
        t.register_log(format!("operator {}", opts.identity), log.clone());
        Operator {
            child,
            identity: opts.identity,
            log,
            metrics,
            health,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn sigkill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reaping the operator")
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET http://health-or-metrics-addr/path: (status code, body).
    /// Asks for gzip, as Prometheus does, and decodes it.
    pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let code = resp.status().as_u16();
        let gzip = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let body = resp.bytes().await.unwrap_or_default();
        let text = if gzip {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
                .ok()?;
            text
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        Some((code, text))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `clusterscale run` command line used by the tests.
pub fn operator_command(
    opts: &OperatorOpts,
    namespace: Option<&str>,
    metrics: SocketAddr,
    health: SocketAddr,
    log: &Path,
) -> Command {
    let kubeconfig = opts
        .kubeconfig
        .clone()
        .unwrap_or_else(|| apiserver().kubeconfig.clone());
    let mut cmd = Command::new(BIN);
    scrub(&mut cmd);
    cmd.env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn,tower=warn,hyper=warn")
        .arg("run")
        .args(["--metrics-addr", &metrics.to_string()])
        .args(["--health-addr", &health.to_string()])
        .args(["--poll-seconds", "1"])
        .args(["--log-format", "text"])
        .args(["--identity", &opts.identity])
        .args(["--lease-name", &opts.lease_name]);
    if let Some(ns) = namespace {
        let own = opts.own_namespace.as_deref().unwrap_or(ns);
        cmd.args(["--namespace", ns, "--lease-namespace", own]);
    }
    cmd.args(&opts.extra);
    let file = std::fs::File::create(log).expect("operator log file");
    let err = file.try_clone().expect("operator log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err));
    cmd
}

/// A `clusterscale-fake-cloud` process, killed when dropped.
pub struct FakeCloud {
    child: Child,
    /// `http://127.0.0.1:PORT` of each endpoint served.
    pub tencent: Option<String>,
    pub huawei: Option<String>,
    /// `http://127.0.0.1:PORT` of the fake YARN ResourceManager (`--yarn`).
    pub yarn: Option<String>,
    pub journal_dir: PathBuf,
}

impl FakeCloud {
    /// Start `clusterscale-fake-cloud ARGS --journal-dir <test dir>/<label>`
    /// with the Tencent test credentials; wait for its listening lines.
    pub fn start(t: &TestNs, label: &str, args: &[&str]) -> FakeCloud {
        let journal_dir = t.dir.join(format!("fake-{label}"));
        std::fs::create_dir_all(&journal_dir).expect("journal dir");
        let out_path = journal_dir.join("stdout");
        let log = journal_dir.join("stderr.log");
        let mut cmd = Command::new(fake_cloud_bin());
        scrub(&mut cmd);
        let child = cmd
            .args(["--tencent-secret-id", TENCENT_SECRET_ID])
            .args(["--tencent-secret-key", TENCENT_SECRET_KEY])
            .args(args)
            .arg("--journal-dir")
            .arg(&journal_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(&out_path).expect("fake stdout file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&log).expect("fake log file"),
            ))
            .spawn()
            .expect("clusterscale-fake-cloud starts");
        register_child(child.id());
        t.register_log(format!("fake-cloud {label} stderr"), log);
        t.register_log(
            format!("fake-cloud {label} tencent journal"),
            journal_dir.join("tencent.jsonl"),
        );
        t.register_log(
            format!("fake-cloud {label} huawei journal"),
            journal_dir.join("huawei.jsonl"),
        );
        let mut fake = FakeCloud {
            child,
            tencent: None,
            huawei: None,
            yarn: None,
            journal_dir,
        };
        let want_tencent = args.contains(&"--tencent");
        let want_huawei = args.contains(&"--huawei");
        let want_yarn = args.contains(&"--yarn");
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            for line in text.lines() {
                if let Some(url) = line.strip_prefix("tencent listening on ") {
                    fake.tencent = Some(url.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("huawei listening on ") {
                    fake.huawei = Some(url.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("yarn listening on ") {
                    fake.yarn = Some(url.trim().to_string());
                }
            }
            if fake.tencent.is_some() == want_tencent
                && fake.huawei.is_some() == want_huawei
                && fake.yarn.is_some() == want_yarn
            {
                return fake;
            }
            if let Ok(Some(status)) = fake.child.try_wait() {
                t.fail(&format!(
                    "clusterscale-fake-cloud {args:?} exited ({status}) before listening"
                ));
            }
            if start.elapsed() > Duration::from_secs(20) {
                t.fail(&format!(
                    "clusterscale-fake-cloud {args:?} printed no listening line(s) in 20s: {text:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The journal of `cloud` (`tencent`, `huawei`), as JSON lines.
    pub fn journal(&self, cloud: &str) -> Vec<JournalLine> {
        let path = self.journal_dir.join(format!("{cloud}.jsonl"));
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: bad journal line {l:?}: {e}", path.display()))
            })
            .collect()
    }

    /// The journal lines that started a change of the cluster.
    pub fn writes(&self, cloud: &str) -> Vec<JournalLine> {
        self.journal(cloud)
            .into_iter()
            .filter(|l| l.write)
            .collect()
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
