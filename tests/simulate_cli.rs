//! `clusterscale simulate` as a process: what a new user runs first.

use std::process::{Command, Output};

fn clusterscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterscale"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run clusterscale")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write_manifest(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

const HEADER: &str = "apiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {name: t, namespace: default}\n";

#[test]
fn converges_on_the_quickstart_example() {
    let o = clusterscale(&[
        "simulate",
        "-f",
        "examples/quickstart.yaml",
        "--speed",
        "200",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("ScaleOutStarted: add 3 core node(s)"), "{out}");
    assert!(out.contains("ScaleOutStarted: add 4 task node(s)"), "{out}");
    let core_at = out.find("add 3 core").unwrap();
    let task_at = out.find("add 4 task").unwrap();
    assert!(core_at < task_at, "Core grows before Task");
    assert!(
        out.contains("summary: converged; 2 operation(s) issued"),
        "{out}"
    );
    assert!(out.contains("final Core 6, Task 4"), "{out}");
}

#[test]
fn invalid_spec_exits_2_naming_the_field_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(
        &dir,
        &format!("{HEADER}spec:\n  simulated: {{}}\n  core: {{count: 2}}\n"),
    );
    let o = clusterscale(&["simulate", "-f", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("spec.core.count") && err.contains("at least 3"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing runs on bad input: {out}");
}

#[test]
fn over_500_and_two_clouds_are_both_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(
        &dir,
        &format!(
            "{HEADER}spec:\n  simulated: {{}}\n  huawei: {{region: r, projectId: p, clusterId: c, credentialsSecretRef: {{name: s}}}}\n  core: {{count: 300}}\n  task: {{count: 201}}\n"
        ),
    );
    let o = clusterscale(&["simulate", "-f", &f]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("spec.core.count + spec.task.count") && err.contains("at most 500"),
        "{err}"
    );
    assert!(
        err.contains("exactly one of tencent, huawei or simulated"),
        "{err}"
    );
}

#[test]
fn unreadable_yaml_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(&dir, "spec: [unclosed\n");
    let o = clusterscale(&["simulate", "-f", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("not a valid ScaledCluster manifest"),
        "{}",
        text(&o).1
    );
    let o = clusterscale(&["simulate", "-f", "/nonexistent/cluster.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("cannot read /nonexistent/cluster.yaml"));
}

#[test]
fn blocked_scale_in_exits_3_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(
        &dir,
        &format!("{HEADER}spec:\n  simulated: {{initialCore: 3, initialTask: 5}}\n  core: {{count: 3}}\n  task: {{count: 2}}\n  scaleIn: {{allowed: false}}\n"),
    );
    let o = clusterscale(&["simulate", "-f", &f, "--speed", "100"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("spec.scaleIn.allowed"), "{err}");
    assert!(out.contains("0 operation(s) issued"), "{out}");
}

#[test]
fn quota_failure_exits_1_with_class_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(&dir, &format!("{HEADER}spec:\n  simulated: {{quota: 5}}\n  core: {{count: 3}}\n  task: {{count: 4}}\n"));
    let o = clusterscale(&["simulate", "-f", &f, "--speed", "100"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Quota QuotaExceeded"), "{err}");
}

#[test]
fn converges_on_the_pools_example_in_the_documented_order() {
    let o = clusterscale(&["simulate", "-f", "examples/pools.yaml", "--speed", "200"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let started: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("event ScaleOutStarted: ").nth(1))
        .collect();
    assert_eq!(started.len(), 4, "{out}");
    // Core, the default pool, then the pools in list order.
    assert!(started[0].starts_with("add 1 core node(s)"), "{out}");
    assert!(
        started[1].starts_with("add 2 task node(s), 0 -> 2"),
        "{out}"
    );
    assert!(
        started[2].starts_with("add 2 task node(s) of pool batch, 1 -> 3"),
        "{out}"
    );
    assert!(
        started[3].starts_with("add 2 task node(s) of pool spot, 0 -> 2"),
        "{out}"
    );
    assert!(out.contains("pools 3/3,2/2"), "{out}");
    assert!(
        out.contains("final Core 4, Task 2, pool batch 3, pool spot 2"),
        "{out}"
    );
}

#[test]
fn a_pool_breaking_a_rule_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(
        &dir,
        &format!(
            "{HEADER}spec:\n  simulated: {{}}\n  core: {{count: 3}}\n  taskPools:\n  - {{name: task, count: 1}}\n"
        ),
    );
    let o = clusterscale(&["simulate", "-f", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("spec.taskPools[].name") && err.contains("must not be task"),
        "{err}"
    );
}

/// A Huawei pool on the Core group would be counted twice and written by two
/// owners: refused before any call, exit 2, naming the field.
#[test]
fn a_huawei_pool_on_the_core_group_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_manifest(
        &dir,
        &format!(
            "{HEADER}spec:\n  huawei: {{region: r, projectId: p, clusterId: c, coreNodeGroup: node_group_1, credentialsSecretRef: {{name: s}}}}\n  core: {{count: 3}}\n  taskPools:\n  - {{name: batch, count: 1, huawei: {{nodeGroup: node_group_1}}}}\n"
        ),
    );
    let o = clusterscale(&["plan", "-f", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("spec.taskPools[].huawei.nodeGroup")
            && err.contains("node group node_group_1 is spec.huawei.coreNodeGroup"),
        "{err}"
    );
}
