//! The chart's alerts (`prometheusRule.enabled`), with real tools: helm
//! (`hack/build-helm.sh`) renders the PrometheusRule, and promtool, built from
//! Prometheus' Go module by `hack/build-prometheus.sh` (cached), checks its
//! groups (`promtool check rules`) and runs `tests/prometheus/rules_test.yaml`
//! on them (`promtool test rules`): each alert fires when it should, with its
//! labels and annotations, and stays silent when it should not.
//!
//! Both tools are built on first use; the tests fail, never skip, when they
//! cannot be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const CHART: &str = "charts/clusterscale";
/// The release name and namespace rules_test.yaml expects: the job is
/// `<release>-metrics`, the chart's metrics Service.
const RELEASE: &str = "clusterscale";
const NAMESPACE: &str = "clusterscale-system";
const UNIT_TESTS: &str = "tests/prometheus/rules_test.yaml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a build script of the repository and returns the one line it prints.
fn built(script: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join(script))
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed (it needs Go and the module proxy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn helm_bin() -> &'static PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| built("hack/build-helm.sh"))
}

fn promtool_bin() -> &'static PathBuf {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        let bin = built("hack/build-prometheus.sh").join("promtool");
        assert!(bin.is_file(), "no {}", bin.display());
        bin
    })
}

/// The chart's PrometheusRule with `prometheusRule.enabled=true` and
/// otherwise the default values.
fn prometheus_rule() -> &'static Value {
    static RULE: OnceLock<Value> = OnceLock::new();
    RULE.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let out = Command::new(helm_bin())
            .args([
                "template",
                RELEASE,
                CHART,
                "--namespace",
                NAMESPACE,
                "--set",
                "prometheusRule.enabled=true",
                "--show-only",
                "templates/prometheusrule.yaml",
            ])
            .current_dir(repo())
            .env("HELM_CACHE_HOME", tmp.join("clusterscale-helm-cache"))
            .env("HELM_CONFIG_HOME", tmp.join("clusterscale-helm-config"))
            .env("HELM_DATA_HOME", tmp.join("clusterscale-helm-data"))
            .output()
            .expect("running helm");
        assert!(out.status.success(), "helm template: {}", text(&out));
        let rule: Value = serde_yaml_ng::from_slice(&out.stdout).expect("the render is YAML");
        assert_eq!(rule["kind"], "PrometheusRule");
        rule
    })
}

fn rules() -> &'static [Value] {
    prometheus_rule()["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
}

fn alert_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .map(str::to_string)
        .collect()
}

/// A temporary directory with `rules.yaml` (the PrometheusRule's groups, as
/// a Prometheus rule file) and a copy of the unit tests, which name it
/// relative to themselves.
fn rule_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = serde_json::json!({"groups": prometheus_rule()["spec"]["groups"]});
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&file).unwrap(),
    )
    .unwrap();
    std::fs::copy(repo().join(UNIT_TESTS), dir.path().join("rules_test.yaml")).unwrap();
    dir
}

fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {}:\n{}",
        args.join(" "),
        text(&out)
    );
    text(&out)
}

/// The seven alerts of the issue, in one group, each with a severity and the
/// three annotations.
#[test]
fn the_rule_has_the_seven_alerts_with_severity_and_annotations() {
    let groups = prometheus_rule()["spec"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "clusterscale");
    let want: BTreeSet<String> = [
        "ClusterScaleDegraded",
        "ClusterScaleNotReady",
        "ClusterScaleCloudThrottled",
        "ClusterScaleNoLeader",
        "ClusterScaleReconcileErrors",
        "ClusterScaleObservationStale",
        "ClusterScaleOperatorAbsent",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(alert_names(), want);
    for r in rules() {
        let name = r["alert"].as_str().unwrap();
        let critical = ["ClusterScaleNoLeader", "ClusterScaleOperatorAbsent"].contains(&name);
        assert_eq!(
            r["labels"]["severity"],
            if critical { "critical" } else { "warning" },
            "{name}"
        );
        for a in ["summary", "description", "runbook_url"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| !s.is_empty()),
                "{name} has no {a}"
            );
        }
        assert!(r["for"].is_string(), "{name} has no for:");
    }
}

#[test]
fn promtool_check_rules_accepts_the_rendered_rule() {
    let dir = rule_dir();
    let out = promtool(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules().len())),
        "{out}"
    );
}

#[test]
fn promtool_test_rules_passes() {
    let dir = rule_dir();
    let out = promtool(dir.path(), &["test", "rules", "rules_test.yaml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The unit tests cover every alert both ways: at least one evaluation where
/// it fires and one where it stays silent.
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join(UNIT_TESTS)).expect("the unit tests"),
    )
    .expect("the unit tests are YAML");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().expect("tests") {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_string();
            match case["exp_alerts"].as_array() {
                Some(a) if !a.is_empty() => fires.insert(name),
                _ => silent.insert(name),
            };
        }
    }
    assert_eq!(fires, alert_names(), "alerts with a firing case");
    assert_eq!(silent, alert_names(), "alerts with a silent case");
}

/// Each `runbook_url` points at a heading of the README's "Alerts" section:
/// `### <alert>`, whose GitHub anchor is the name in lower case.
#[test]
fn every_runbook_url_is_a_readme_heading() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let alerts = readme
        .split("\n## Alerts\n")
        .nth(1)
        .expect("the README has an Alerts section");
    let alerts = alerts.split("\n## ").next().unwrap();
    let headings: BTreeSet<String> = alerts
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_string())
        .collect();
    assert_eq!(headings, alert_names(), "the README's runbooks");
    let base = "https://github.com/clusterscale/clusterscale/blob/main/README.md#";
    for r in rules() {
        let name = r["alert"].as_str().unwrap();
        assert_eq!(
            r["annotations"]["runbook_url"],
            format!("{base}{}", name.to_lowercase()),
            "{name}"
        );
    }
}
