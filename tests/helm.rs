//! The Helm chart (`charts/clusterscale`) and the plain manifests (`deploy/`),
//! with real tools: helm built from its Go module (`hack/build-helm.sh`,
//! cached) and the real kube-apiserver of tests/kube.
//!
//! What is checked here: the chart's metadata against the crate, its CRDs
//! against `crds/`, its README against its values, `helm lint --strict`, the
//! rendered objects with default and non-default values (RBAC on Secrets
//! against the `--secrets` flag, the workload identity token), `kubectl apply
//! --dry-run=server` of every rendered object, `deploy/` against a fresh
//! render, and `kubectl apply -k deploy/` on a fresh apiserver. The install as
//! a ServiceAccount, the operator run with its token and `kubectl auth can-i`
//! are the end-to-end test's (tests/e2e/run.sh).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use support::*;

const CHART: &str = "charts/clusterscale";
const RELEASE: &str = "clusterscale";
const SYSTEM_NS: &str = "clusterscale-system";
const CUSTOM_VALUES: &str = "tests/helm/values-custom.yaml";
const ACCOUNT_CRD_NAME: &str = "cloudaccounts.clusterscale.io";
/// The chart's copies of the generated CRDs: (file in the chart, file in crds/, CRD name).
const CRD_FILES: [(&str, &str, &str); 2] = [
    (
        "files/scaledcluster.yaml",
        "crds/scaledcluster.yaml",
        CRD_NAME,
    ),
    (
        "files/cloudaccount.yaml",
        "crds/cloudaccount.yaml",
        ACCOUNT_CRD_NAME,
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The helm binary, built on first use (the test fails, never skips, when it cannot be).
fn helm_bin() -> &'static PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("hack/build-helm.sh"))
            .current_dir(repo())
            .output()
            .expect("running hack/build-helm.sh");
        assert!(
            out.status.success(),
            "hack/build-helm.sh failed (it needs Go and the module proxy):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// helm that must succeed.
fn helm_ok(args: &[&str]) -> Output {
    let out = helm(args);
    assert!(
        out.status.success(),
        "helm {}: {}",
        args.join(" "),
        text(&out)
    );
    out
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .current_dir(repo())
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("clusterscale-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("clusterscale-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("clusterscale-helm-data"),
        )
        .output()
        .expect("running helm")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template` of the chart, with `values` files and `--set` pairs.
fn render(values: &[&str], sets: &[&str]) -> String {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", SYSTEM_NS];
    for v in values {
        args.extend(["-f", v]);
    }
    for s in sets {
        args.extend(["--set", s]);
    }
    String::from_utf8(helm_ok(&args).stdout).expect("utf-8")
}

/// The objects of a multi-document YAML stream (empty documents skipped).
fn objects(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(objs: &[Value]) -> Vec<(String, String, String)> {
    let mut k: Vec<_> = objs
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    k.sort();
    k
}

fn find<'a>(objs: &'a [Value], kind: &str, ns: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or("") == ns
        })
        .unwrap_or_else(|| panic!("no {kind} {ns}/{name} in {:#?}", kinds(objs)))
}

fn container(objs: &[Value]) -> &Value {
    &find(objs, "Deployment", SYSTEM_NS, RELEASE)["spec"]["template"]["spec"]["containers"][0]
}

fn args(objs: &[Value]) -> Vec<String> {
    container(objs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// (apiGroup, resource, verbs) of each rule, sorted.
fn rules(role: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for r in role["rules"].as_array().expect("rules") {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        for g in strings(&r["apiGroups"]) {
            for res in strings(&r["resources"]) {
                out.push((g.clone(), res, strings(&r["verbs"])));
            }
        }
    }
    out.sort();
    out
}

type Rule = (String, String, Vec<String>);

fn rule(group: &str, resource: &str, verbs: &[&str]) -> Rule {
    (
        group.to_string(),
        resource.to_string(),
        verbs.iter().map(|v| v.to_string()).collect(),
    )
}

fn secrets_rule() -> Rule {
    rule("", "secrets", &["get", "list", "watch"])
}

/// The rules of the ClusterRole, or of each watched namespace's Role; the
/// rule on Secrets only with `rbac.secrets=clusterWide`.
fn watch_rules(secrets: bool) -> Vec<Rule> {
    let r = rule;
    let mut v = vec![
        r(
            "clusterscale.io",
            "scaledclusters",
            &["get", "list", "watch"],
        ),
        r(
            "clusterscale.io",
            "scaledclusters/status",
            &["get", "patch"],
        ),
        r("events.k8s.io", "events", &["create", "patch"]),
    ];
    if secrets {
        v.push(secrets_rule());
    }
    v.sort();
    v
}

/// The rules of the `<fullname>-cloudaccounts` ClusterRole, whatever watchNamespaces says.
fn account_rules() -> Vec<Rule> {
    vec![
        rule(
            "clusterscale.io",
            "cloudaccounts",
            &["get", "list", "watch"],
        ),
        rule("clusterscale.io", "cloudaccounts/status", &["get", "patch"]),
    ]
}

/// (kind, namespace, name) of every Role and ClusterRole with a rule on Secrets.
fn roles_on_secrets(objs: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = objs
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .filter(|o| {
            rules(o)
                .iter()
                .any(|(g, res, _)| g.is_empty() && res == "secrets")
        })
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn volumes(objs: &[Value]) -> &Value {
    &find(objs, "Deployment", SYSTEM_NS, RELEASE)["spec"]["template"]["spec"]["volumes"]
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_yaml_ng::from_str(&read(&format!("{CHART}/Chart.yaml"))).unwrap();
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must equal the version in Cargo.toml"
    );
    assert_eq!(chart["apiVersion"], "v2");
}

/// Both CRDs: the ScaledCluster's and the CloudAccount's.
#[test]
fn chart_crd_is_the_generated_file() {
    for (copy, generated, _) in CRD_FILES {
        assert!(
            read(&format!("{CHART}/{copy}")) == read(generated),
            "{CHART}/{copy} differs from {generated}; run: cp {generated} {CHART}/files/"
        );
    }
}

/// Every value is in the chart README's table: a key is documented when its
/// dotted path appears in backquotes, else each of its children must be.
#[test]
fn chart_readme_lists_every_value() {
    fn walk(prefix: &str, v: &Value, readme: &str, missing: &mut Vec<String>) {
        if !prefix.is_empty() && readme.contains(&format!("`{prefix}`")) {
            return;
        }
        match v.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, child, readme, missing);
                }
            }
            _ => missing.push(prefix.to_string()),
        }
    }
    let values: Value = serde_yaml_ng::from_str(&read(&format!("{CHART}/values.yaml"))).unwrap();
    let readme = read(&format!("{CHART}/README.md"));
    let mut missing = Vec::new();
    walk("", &values, &readme, &mut missing);
    assert!(
        missing.is_empty(),
        "values not in the chart README: {missing:?}"
    );
    // And the schema knows every top-level key (it forbids unknown ones).
    let schema: Value =
        serde_json::from_str(&read(&format!("{CHART}/values.schema.json"))).unwrap();
    for k in values.as_object().unwrap().keys() {
        assert!(
            schema["properties"].get(k).is_some(),
            "values.schema.json has no property {k}"
        );
    }
}

#[test]
fn helm_lint_strict_passes() {
    for values in [None, Some(CUSTOM_VALUES)] {
        let mut args = vec!["lint", "--strict", CHART];
        if let Some(v) = values {
            args.extend(["-f", v]);
        }
        let out = helm_ok(&args);
        assert!(text(&out).contains("0 chart(s) failed"), "{}", text(&out));
    }
}

#[test]
fn the_schema_refuses_bad_values() {
    for (set, needle) in [
        ("replicasCount=2", "replicasCount"),
        ("replicaCount=0", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("image.digest=latest", "digest"),
        ("watchNamespaces[0]=Team_A", "watchNamespaces"),
        ("metrics.serviceMonitor.interval=often", "interval"),
        ("rbac.secrets=all", "secrets"),
        // Enabled without an audience: no token the cloud would accept.
        ("workloadIdentity.enabled=true", "audience"),
        (
            "workloadIdentity.expirationSeconds=599",
            "expirationSeconds",
        ),
        ("workloadIdentity.tokenPath=/token", "tokenPath"),
        ("prometheusRule.degradedFor=soon", "degradedFor"),
        ("prometheusRule.throttledRatio=2", "throttledRatio"),
        ("prometheusRule.staleAfterResyncs=0", "staleAfterResyncs"),
        ("prometheusRule.runbookUrl=x", "runbookUrl"),
    ] {
        let out = helm(&["template", RELEASE, CHART, "--set", set]);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            text(&out).contains(needle),
            "--set {set}: the error does not name {needle}: {}",
            text(&out)
        );
    }
}

#[test]
fn default_values_render_a_least_privilege_two_replica_operator() {
    let objs = objects(&render(&[], &[]));
    let ns = SYSTEM_NS.to_string();
    let want: Vec<(String, String, String)> = {
        let mut w = vec![
            ("ClusterRole", "", RELEASE),
            ("ClusterRole", "", "clusterscale-cloudaccounts"),
            ("ClusterRoleBinding", "", RELEASE),
            ("ClusterRoleBinding", "", "clusterscale-cloudaccounts"),
            ("CustomResourceDefinition", "", CRD_NAME),
            ("CustomResourceDefinition", "", ACCOUNT_CRD_NAME),
            ("Deployment", &ns, RELEASE),
            ("PodDisruptionBudget", &ns, RELEASE),
            ("Role", &ns, "clusterscale-leader-election"),
            ("Role", &ns, "clusterscale-secrets"),
            ("RoleBinding", &ns, "clusterscale-leader-election"),
            ("RoleBinding", &ns, "clusterscale-secrets"),
            ("Service", &ns, "clusterscale-metrics"),
            ("ServiceAccount", &ns, RELEASE),
        ]
        .into_iter()
        .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
        .collect::<Vec<_>>();
        w.sort();
        w
    };
    assert_eq!(kinds(&objs), want);

    // Each CRD is the generated file, plus labels and the keep policy.
    for (_, generated, name) in CRD_FILES {
        let crd = find(&objs, "CustomResourceDefinition", "", name);
        let file: Value = serde_yaml_ng::from_str(
            read(generated)
                .split("\n---\n")
                .nth(1)
                .expect("the CRD document"),
        )
        .unwrap();
        assert_eq!(
            crd["spec"], file["spec"],
            "the chart's {name} spec differs from {generated}"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/name"],
            "clusterscale"
        );
    }

    let deploy = find(&objs, "Deployment", SYSTEM_NS, RELEASE);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&objs);
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/clusterscale/clusterscale:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].clone())
    };
    assert_eq!(port("health"), Some(8081.into()));
    assert_eq!(port("metrics"), Some(8080.into()));
    let env = c["env"].as_array().unwrap();
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert!(
            env.iter()
                .any(|e| e["name"] == var && e["valueFrom"]["fieldRef"]["fieldPath"] == field),
            "{var} is not from the downward API: {env:?}"
        );
    }
    assert_eq!(
        args(&objs),
        [
            "run",
            "--secrets=namespaced",
            "--leader-elect=true",
            "--lease-name=clusterscale-leader",
            "--metrics-addr=0.0.0.0:8080",
            "--health-addr=0.0.0.0:8081",
            "--log-format=json",
            "--resync-seconds=300",
            "--poll-seconds=10",
            "--concurrency=32",
            "--tencent-rate-limit=20",
            "--backoff-cap-seconds=150",
            "--degraded-after-seconds=600",
        ]
    );
    // Every rendered flag is one `clusterscale run` accepts.
    let help = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    for a in args(&objs).iter().skip(1) {
        let flag = a.split('=').next().unwrap();
        assert!(help.contains(flag), "`clusterscale run` has no {flag}");
    }
    // And every cloud's knob (a flag named after its cloud) has a chart value.
    let rendered = args(&objs);
    for kind in clusterscale_core::api::CloudKind::ALL {
        let prefix = format!("--{kind}-");
        for flag in help
            .split_whitespace()
            .filter(|w| w.starts_with(&prefix))
            .map(|w| w.trim_end_matches(','))
        {
            assert!(
                rendered.iter().any(|a| a.starts_with(&format!("{flag}="))),
                "the chart sets no value for {flag}"
            );
        }
    }

    // Secrets in the release namespace only; CloudAccounts cluster-wide.
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", RELEASE)),
        watch_rules(false)
    );
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", "clusterscale-cloudaccounts")),
        account_rules()
    );
    assert_eq!(
        roles_on_secrets(&objs),
        [(
            "Role".to_string(),
            ns.clone(),
            "clusterscale-secrets".to_string()
        )]
    );
    assert_eq!(
        rules(find(&objs, "Role", SYSTEM_NS, "clusterscale-secrets")),
        [secrets_rule()]
    );
    for (kind, name, role_kind) in [
        (
            "ClusterRoleBinding",
            "clusterscale-cloudaccounts",
            "ClusterRole",
        ),
        ("RoleBinding", "clusterscale-secrets", "Role"),
    ] {
        let ns = if kind == "RoleBinding" { SYSTEM_NS } else { "" };
        let b = find(&objs, kind, ns, name);
        assert_eq!(b["roleRef"]["kind"], role_kind);
        assert_eq!(b["roleRef"]["name"], name);
        assert_eq!(
            b["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": SYSTEM_NS}])
        );
    }
    // No workload identity token unless asked for.
    assert!(volumes(&objs).is_null(), "{}", volumes(&objs));
    assert!(c["volumeMounts"].is_null(), "{}", c["volumeMounts"]);
    let lease = find(&objs, "Role", SYSTEM_NS, "clusterscale-leader-election");
    assert_eq!(
        lease["rules"],
        serde_json::json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["clusterscale-leader"], "verbs": ["get", "update"]},
        ])
    );
    let pdb = find(&objs, "PodDisruptionBudget", SYSTEM_NS, RELEASE);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let svc = find(&objs, "Service", SYSTEM_NS, "clusterscale-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn non_default_values_render_namespaced_rbac_and_the_optional_objects() {
    let objs = objects(&render(&[CUSTOM_VALUES], &[]));
    let k = kinds(&objs);
    let cluster_wide: Vec<_> = k
        .iter()
        .filter(|(kind, _, _)| kind == "ClusterRole" || kind == "ClusterRoleBinding")
        .map(|(kind, _, name)| format!("{kind}/{name}"))
        .collect();
    assert_eq!(
        cluster_wide,
        [
            "ClusterRole/clusterscale-cloudaccounts",
            "ClusterRoleBinding/clusterscale-cloudaccounts"
        ],
        "watchNamespaces gives no ClusterRole but the CloudAccounts' (cluster-scoped)"
    );
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", "clusterscale-cloudaccounts")),
        account_rules()
    );
    assert!(
        !k.iter().any(|(kind, _, _)| kind == "PodDisruptionBudget"),
        "no PodDisruptionBudget with one replica"
    );
    // rbac.secrets=clusterWide: Secrets in each watched namespace, and not in
    // the release namespace.
    for ns in ["team-a", "team-b"] {
        assert_eq!(rules(find(&objs, "Role", ns, RELEASE)), watch_rules(true));
        let rb = find(&objs, "RoleBinding", ns, RELEASE);
        assert_eq!(rb["subjects"][0]["namespace"], SYSTEM_NS);
        assert_eq!(rb["roleRef"]["kind"], "Role");
    }
    assert_eq!(
        roles_on_secrets(&objs),
        [
            (
                "Role".to_string(),
                "team-a".to_string(),
                RELEASE.to_string()
            ),
            (
                "Role".to_string(),
                "team-b".to_string(),
                RELEASE.to_string()
            ),
        ]
    );
    assert_eq!(
        volumes(&objs)[0]["projected"]["sources"][0]["serviceAccountToken"],
        serde_json::json!({"audience": "sts.cloud.tencent.com", "expirationSeconds": 7200, "path": "token"})
    );
    let lease = find(&objs, "Role", SYSTEM_NS, "clusterscale-leader-election");
    assert_eq!(
        lease["rules"][1]["resourceNames"],
        serde_json::json!(["clusterscale-shard-a"])
    );

    let a = args(&objs);
    for want in [
        "--secrets=cluster-wide",
        "--namespace=team-a",
        "--namespace=team-b",
        "--selector=shard=a",
        "--lease-name=clusterscale-shard-a",
        "--log-format=text",
        "--resync-seconds=600",
        "--poll-seconds=20",
        "--concurrency=8",
        "--tencent-rate-limit=10",
        "--backoff-cap-seconds=600",
        "--per-resource-metrics=false",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
    }
    let c = container(&objs);
    assert_eq!(
        c["image"],
        "registry.example.com/platform/clusterscale@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    let env = c["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "RUST_LOG" && e["value"] == "clusterscale=debug,info"));
    assert!(env.iter().any(|e| e["name"] == "HTTPS_PROXY"));
    let pod = &find(&objs, "Deployment", SYSTEM_NS, RELEASE)["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "data-platform"
    );
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");

    for (_, _, name) in CRD_FILES {
        let crd = find(&objs, "CustomResourceDefinition", "", name);
        assert!(
            crd["metadata"]["annotations"].is_null(),
            "crds.keep=false keeps no CRD: {name}"
        );
    }

    let sm = find(&objs, "ServiceMonitor", SYSTEM_NS, RELEASE);
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    // The ScaledClusters' own `namespace` label survives the scrape.
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);

    // The PrometheusRule: its labels, the values that shape the alerts, the
    // extra rule last. What the alerts do is tests/prometheus_rules.rs'.
    let pr = find(&objs, "PrometheusRule", SYSTEM_NS, RELEASE);
    assert_eq!(pr["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        pr["metadata"]["labels"]["app.kubernetes.io/name"],
        "clusterscale"
    );
    let groups = pr["spec"]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "clusterscale");
    let rules = groups[0]["rules"].as_array().expect("rules");
    let alert = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    let not_ready = alert("ClusterScaleNotReady");
    assert_eq!(not_ready["for"], "1h");
    assert_eq!(
        not_ready["annotations"]["runbook_url"],
        "https://wiki.example.com/clusterscale/runbooks#clusterscalenotready"
    );
    // staleAfterResyncs (2) periods of resyncSeconds (600).
    let stale = alert("ClusterScaleObservationStale")["expr"]
        .as_str()
        .unwrap();
    assert!(stale.trim_end().ends_with("> 1200"), "{stale}");
    let throttled = alert("ClusterScaleCloudThrottled")["expr"]
        .as_str()
        .unwrap();
    assert!(throttled.trim_end().ends_with("> 0.25"), "{throttled}");
    assert_eq!(
        rules.last().unwrap()["record"],
        "clusterscale:reconciles:rate5m"
    );
    assert_eq!(rules.len(), 8, "seven alerts and the extra rule");
    let np = find(&objs, "NetworkPolicy", SYSTEM_NS, RELEASE);
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], "metrics");
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let dash = find(&objs, "ConfigMap", SYSTEM_NS, "clusterscale-dashboard");
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dash["data"]["clusterscale.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    assert_eq!(
        json,
        serde_json::from_str::<Value>(&read(&format!("{CHART}/files/dashboard.json"))).unwrap()
    );
    assert!(json["panels"].as_array().unwrap().len() >= 6);
}

/// Every alert is limited to the operator's scrape job: by default the job
/// prometheus-operator names after the Service the chart's ServiceMonitor
/// selects, else `prometheusRule.jobSelector`.
#[test]
fn prometheus_rule_alerts_on_the_service_monitors_job() {
    fn exprs(objs: &[Value]) -> Vec<(String, String)> {
        let pr = find(objs, "PrometheusRule", SYSTEM_NS, "shard-a");
        pr["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["alert"].as_str().unwrap().to_string(),
                    r["expr"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
    let objs = objects(&render(
        &[],
        &[
            "fullnameOverride=shard-a",
            "prometheusRule.enabled=true",
            "metrics.serviceMonitor.enabled=true",
        ],
    ));
    // The ServiceMonitor selects the metrics Service, whose name is the job's.
    let svc = find(&objs, "Service", SYSTEM_NS, "shard-a-metrics");
    let sm = find(&objs, "ServiceMonitor", SYSTEM_NS, "shard-a");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "{k}");
    }
    assert!(
        sm["spec"]["jobLabel"].is_null(),
        "the job is the Service's name"
    );
    let rules = exprs(&objs);
    assert_eq!(rules.len(), 7);
    for (alert, expr) in &rules {
        assert!(
            expr.contains(r#"job="shard-a-metrics""#),
            "{alert} is not limited to the job: {expr}"
        );
    }
    let objs = objects(&render(
        &[],
        &[
            "fullnameOverride=shard-a",
            "prometheusRule.enabled=true",
            r#"prometheusRule.jobSelector=service="ops-metrics"\,job="clusterscale""#,
        ],
    ));
    for (alert, expr) in exprs(&objs) {
        assert!(
            expr.contains(r#"{service="ops-metrics",job="clusterscale""#)
                && !expr.contains("shard-a-metrics"),
            "{alert} does not use the jobSelector: {expr}"
        );
    }
}

#[test]
fn deploy_is_the_default_render() {
    let out = Command::new("bash")
        .args(["hack/render-deploy.sh", "--stdout"])
        .env("HELM", helm_bin())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout) == read("deploy/clusterscale.yaml"),
        "deploy/clusterscale.yaml differs from the chart's default render; run hack/render-deploy.sh"
    );
    let k: Value = serde_yaml_ng::from_str(&read("deploy/kustomization.yaml")).unwrap();
    assert_eq!(
        k["resources"],
        serde_json::json!(["namespace.yaml", "clusterscale.yaml"])
    );
}

/// `kubectl wait --for=condition=Established` on CRDs just applied. kubectl
/// fails at once, instead of waiting, on a CRD that has no conditions yet
/// (".status.conditions accessor error: <nil>"), so that answer is retried.
fn wait_established(a: &Apiserver, crds: &[&str]) {
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=30s"];
    let names: Vec<String> = crds.iter().map(|c| format!("crd/{c}")).collect();
    args.extend(names.iter().map(String::as_str));
    for attempt in 1..=50 {
        let out = a.kubectl(&args);
        if out.status.success() {
            return;
        }
        assert!(
            text(&out).contains("accessor error") && attempt < 50,
            "kubectl {}: {}",
            args.join(" "),
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Every object of both renders passes the real apiserver's validation,
/// admission included (`kubectl apply --dry-run=server`), with the
/// ServiceMonitor and PrometheusRule CRDs from prometheus-operator's own
/// module (the custom values render both).
#[test]
fn rendered_objects_pass_server_side_dry_run() {
    let a = apiserver();
    let crds = Command::new("bash")
        .arg(repo().join("tests/helm/prometheus-crds.sh"))
        .output()
        .unwrap();
    assert!(crds.status.success(), "{}", text(&crds));
    let crds = String::from_utf8_lossy(&crds.stdout).trim().to_string();
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = a.kubectl_stdin(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            text(&out)
        );
        text(&out)
    };
    ok(&["apply", "--server-side", "-f", &crds], None);
    wait_established(
        a,
        &[
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ],
    );
    for ns in [SYSTEM_NS, "team-a", "team-b"] {
        let _ = a.kubectl(&["create", "namespace", ns]);
    }
    for (label, yaml) in [
        ("default", render(&[], &[])),
        ("custom", render(&[CUSTOM_VALUES], &[])),
    ] {
        let n = objects(&yaml).len();
        let out = ok(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
        let accepted = out
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(
            accepted, n,
            "{label}: {n} objects, {accepted} accepted:\n{out}"
        );
    }
}

/// `kubectl apply -k deploy/` on a fresh apiserver (no CRD yet) installs everything.
#[test]
fn kubectl_apply_k_deploy_on_a_fresh_apiserver() {
    let a = Apiserver::start("clusterscale-deploy-").expect("a fresh apiserver");
    let run = |args: &[&str]| {
        let out = a.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            text(&out)
        );
        text(&out)
    };
    let out = run(&["apply", "-k", "deploy/"]);
    let expected: BTreeSet<&str> = [
        "namespace/clusterscale-system",
        "serviceaccount/clusterscale",
        "customresourcedefinition.apiextensions.k8s.io/scaledclusters.clusterscale.io",
        "customresourcedefinition.apiextensions.k8s.io/cloudaccounts.clusterscale.io",
        "clusterrole.rbac.authorization.k8s.io/clusterscale",
        "clusterrole.rbac.authorization.k8s.io/clusterscale-cloudaccounts",
        "clusterrolebinding.rbac.authorization.k8s.io/clusterscale",
        "clusterrolebinding.rbac.authorization.k8s.io/clusterscale-cloudaccounts",
        "role.rbac.authorization.k8s.io/clusterscale-leader-election",
        "role.rbac.authorization.k8s.io/clusterscale-secrets",
        "rolebinding.rbac.authorization.k8s.io/clusterscale-leader-election",
        "rolebinding.rbac.authorization.k8s.io/clusterscale-secrets",
        "service/clusterscale-metrics",
        "deployment.apps/clusterscale",
        "poddisruptionbudget.policy/clusterscale",
    ]
    .into_iter()
    .collect();
    let created: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_suffix(" created"))
        .collect();
    assert_eq!(created, expected, "{out}");
    wait_established(&a, &[CRD_NAME, ACCOUNT_CRD_NAME]);
    // The installed CRDs serve the examples, and a CloudAccount whose Secret
    // is in the operator's namespace, as the default rbac.secrets=namespaced
    // wants it.
    run(&["create", "namespace", "data"]);
    run(&["apply", "--dry-run=server", "-f", "examples/tencent.yaml"]);
    let account = format!(
        "apiVersion: clusterscale.io/v1alpha1\n\
         kind: CloudAccount\n\
         metadata: {{name: tencent-prod}}\n\
         spec:\n  tencent:\n    secretRef: {{namespace: {SYSTEM_NS}, name: tencent-credentials}}\n"
    );
    let out = a.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], Some(&account));
    assert!(
        out.status.success()
            && text(&out)
                .contains("cloudaccount.clusterscale.io/tencent-prod created (server dry run)"),
        "{}",
        text(&out)
    );
    a.stop_in_background();
}

/// `rbac.secrets` in each combination with `watchNamespaces` (the custom
/// values cover clusterWide with watchNamespaces) and without RBAC: the rules
/// on Secrets are where the flag says the operator reads them.
#[test]
fn rbac_secrets_grants_what_the_secrets_flag_reads() {
    // Every namespace, clusterWide: the rule on Secrets is back in the
    // ClusterRole, and the release namespace has no Role of its own.
    let objs = objects(&render(&[], &["rbac.secrets=clusterWide"]));
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", RELEASE)),
        watch_rules(true)
    );
    assert_eq!(
        roles_on_secrets(&objs),
        [(
            "ClusterRole".to_string(),
            String::new(),
            RELEASE.to_string()
        )]
    );
    assert!(
        !kinds(&objs)
            .iter()
            .any(|(_, _, name)| name == "clusterscale-secrets"),
        "{:#?}",
        kinds(&objs)
    );
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", "clusterscale-cloudaccounts")),
        account_rules()
    );
    let a = args(&objs);
    assert!(a.iter().any(|x| x == "--secrets=cluster-wide"), "{a:?}");
    assert!(!a.iter().any(|x| x == "--secrets=namespaced"), "{a:?}");

    // Watched namespaces (the release namespace among them), namespaced: their
    // Roles have no rule on Secrets; the release namespace's Secrets Role does.
    let objs = objects(&render(
        &[],
        &[&format!("watchNamespaces={{team-a,{SYSTEM_NS}}}")],
    ));
    for ns in ["team-a", SYSTEM_NS] {
        assert_eq!(rules(find(&objs, "Role", ns, RELEASE)), watch_rules(false));
    }
    assert_eq!(
        roles_on_secrets(&objs),
        [(
            "Role".to_string(),
            SYSTEM_NS.to_string(),
            "clusterscale-secrets".to_string()
        )]
    );
    assert_eq!(
        rules(find(&objs, "ClusterRole", "", "clusterscale-cloudaccounts")),
        account_rules()
    );
    assert!(args(&objs).iter().any(|x| x == "--secrets=namespaced"));

    // RBAC managed elsewhere: no rule at all, and the flag is still explicit.
    for (value, flag) in [
        ("namespaced", "--secrets=namespaced"),
        ("clusterWide", "--secrets=cluster-wide"),
    ] {
        let objs = objects(&render(
            &[],
            &["rbac.create=false", &format!("rbac.secrets={value}")],
        ));
        assert!(
            !kinds(&objs)
                .iter()
                .any(|(kind, _, _)| kind.contains("Role")),
            "{:#?}",
            kinds(&objs)
        );
        let a = args(&objs);
        assert_eq!(
            a.iter()
                .filter(|x| x.starts_with("--secrets="))
                .collect::<Vec<_>>(),
            [flag],
            "rbac.secrets={value}"
        );
    }
}

/// `workloadIdentity`: a projected ServiceAccount token with the audience and
/// lifetime asked for, mounted read-only where a CloudAccount's workloadIdentity
/// reads it by default; the root filesystem stays read-only.
#[test]
fn workload_identity_mounts_a_projected_token_at_the_default_token_file() {
    let objs = objects(&render(
        &[],
        &[
            "workloadIdentity.enabled=true",
            "workloadIdentity.audience=sts.cloud.tencent.com",
            "workloadIdentity.expirationSeconds=86400",
        ],
    ));
    let vols = volumes(&objs);
    assert_eq!(
        vols,
        &serde_json::json!([{
            "name": "cloud-identity-token",
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": "sts.cloud.tencent.com",
                "expirationSeconds": 86400,
                "path": "token",
            }}]},
        }])
    );
    let c = container(&objs);
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["name"], "cloud-identity-token");
    assert_eq!(mounts[0]["readOnly"], true);
    assert_eq!(
        format!(
            "{}/{}",
            mounts[0]["mountPath"].as_str().unwrap(),
            vols[0]["projected"]["sources"][0]["serviceAccountToken"]["path"]
                .as_str()
                .unwrap()
        ),
        clusterscale_core::api::account::DEFAULT_TOKEN_FILE
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The default lifetime, and a CCE client id (any string is an audience).
    let objs = objects(&render(
        &[],
        &[
            "workloadIdentity.enabled=true",
            "workloadIdentity.audience=clusterscale-idp-client",
        ],
    ));
    assert_eq!(
        volumes(&objs)[0]["projected"]["sources"][0]["serviceAccountToken"],
        serde_json::json!({"audience": "clusterscale-idp-client", "expirationSeconds": 3600, "path": "token"})
    );
    // Enabled without an audience is refused before rendering (values.schema.json,
    // and the template's `required` behind it); see the_schema_refuses_bad_values.
}
