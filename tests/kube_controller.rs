//! `clusterscale run` against a real kube-apiserver (tests/kube/apiserver.sh),
//! with the simulated cloud and with `clusterscale-fake-cloud` as processes.
//!
//! Every test has its own namespace, and its operator(s) watch only that
//! namespace and keep their Lease there, so the tests run concurrently
//! against the one apiserver of this binary. Operations are short
//! (`operationSeconds: 3`, `--poll-seconds 1`); every wait polls with a
//! generous timeout and fails with the namespace's objects, events and logs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clusterscale_core::api::{Outcome, ScaledCluster};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use support::*;

const CONVERGE: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(30);
const TENCENT_INSTANCE: &str = "emr-kube0001";
const HUAWEI_CLUSTER: &str = "0f1e2d3c-4b5a-4968-8776-655443322110";

fn simulated(name: &str, core: i32, task: i32, operation_seconds: i32) -> String {
    manifest(name, &simulated_block(operation_seconds), core, task, &[])
}

fn tencent(
    name: &str,
    endpoint: &str,
    instance: &str,
    secret: &str,
    core: i32,
    task: i32,
) -> String {
    manifest(
        name,
        &tencent_block(instance, endpoint, secret),
        core,
        task,
        &[],
    )
}

fn huawei(name: &str, endpoint: &str, secret: &str, core: i32, task: i32) -> String {
    manifest(
        name,
        &huawei_block(HUAWEI_CLUSTER, endpoint, secret),
        core,
        task,
        &[],
    )
}

fn tencent_secret(t: &TestNs, name: &str) {
    t.secret(
        name,
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", TENCENT_SECRET_KEY),
        ],
    );
}

/// A fake Tencent endpoint serving TENCENT_INSTANCE, starting at 3/0.
fn fake_tencent(t: &TestNs, operation_seconds: u64) -> FakeCloud {
    fake_tencent_with(t, &["--operation-seconds", &operation_seconds.to_string()])
}

/// A fake Tencent endpoint serving TENCENT_INSTANCE, with `args` (initial
/// counts, operation time, faults).
fn fake_tencent_with(t: &TestNs, args: &[&str]) -> FakeCloud {
    let mut all = vec![
        "--tencent",
        "127.0.0.1:0",
        "--tencent-instance-id",
        TENCENT_INSTANCE,
    ];
    all.extend_from_slice(args);
    FakeCloud::start(t, "tencent", &all)
}

/// A fake Huawei endpoint serving HUAWEI_CLUSTER, starting at 3/0, whose
/// operations take 2 s.
fn fake_huawei(t: &TestNs) -> FakeCloud {
    FakeCloud::start(
        t,
        "huawei",
        &[
            "--huawei",
            "127.0.0.1:0",
            "--huawei-cluster-id",
            HUAWEI_CLUSTER,
            "--operation-seconds",
            "2",
        ],
    )
}

/// A fake Tencent endpoint serving `n` instances, `emr-fake00000`..., each at 3/0.
fn fake_tencent_fleet(t: &TestNs, n: usize) -> (FakeCloud, String, Vec<String>) {
    let fake = FakeCloud::start(
        t,
        "tencent",
        &[
            "--tencent",
            "127.0.0.1:0",
            "--tencent-instances",
            &n.to_string(),
            "--operation-seconds",
            "1",
        ],
    );
    let endpoint = fake.tencent.clone().expect("tencent");
    let ids = (0..n).map(|i| format!("emr-fake{i:05}")).collect();
    (fake, endpoint, ids)
}

/// `DescribeInstances` requests for instance `id` in the fake's journal.
fn describes(fake: &FakeCloud, id: &str) -> usize {
    fake.journal("tencent")
        .iter()
        .filter(|l| l.action == "DescribeInstances" && l.params.to_string().contains(id))
        .count()
}

/// Replace the fake's faults (`{}`: none).
async fn put_faults(t: &TestNs, endpoint: &str, body: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/_fake/faults"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("PUT /_fake/faults");
    t.check(resp.status().is_success(), || {
        format!("PUT /_fake/faults: {}", resp.status())
    });
}

fn param<'a>(line: &'a JournalLine, key: &str) -> Option<&'a serde_json::Value> {
    line.params.get(key)
}

fn client_token(line: &JournalLine) -> String {
    param(line, "ClientToken")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The fake Tencent journal's ScaleOutInstance requests, checked: each
/// request that changed the cluster has its own ClientToken, and a token sent
/// again was deduplicated (not a write). Returns the tokens of the writes.
fn check_tencent_writes(t: &TestNs, fake: &FakeCloud, operations: usize) -> Vec<String> {
    let journal = fake.journal("tencent");
    let writes: Vec<&JournalLine> = journal.iter().filter(|l| l.write).collect();
    let mut seen = BTreeSet::new();
    for l in &journal {
        if l.action != "ScaleOutInstance" {
            t.check(!l.write, || {
                format!("unexpected write {} in the journal: {l:?}", l.action)
            });
            continue;
        }
        let token = client_token(l);
        t.check(!token.is_empty(), || {
            format!("ScaleOutInstance without a ClientToken: {l:?}")
        });
        if seen.contains(&token) {
            t.check(!l.write, || {
                format!("ClientToken {token} was sent again and changed the cluster again: {l:?}")
            });
        } else if l.write {
            seen.insert(token);
        }
    }
    let tokens: Vec<String> = writes.iter().map(|l| client_token(l)).collect();
    t.check(writes.len() == operations, || {
        format!(
            "expected exactly {operations} scale write(s) in the fake's journal, found {}: {writes:#?}",
            writes.len()
        )
    });
    tokens
}

#[tokio::test]
async fn crd_applies() {
    let t = TestNs::new("crd-applies").await;
    let out = apiserver().kubectl(&["apply", "-f", "crds/"]);
    t.check(out.status.success(), || {
        format!(
            "kubectl apply -f crds/ failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd = crds.get(CRD_NAME).await.expect("the CRD exists");
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    for type_ in ["Established", "NamesAccepted"] {
        t.check(
            conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True"),
            || format!("CRD condition {type_} is not True: {conditions:?}"),
        );
    }
    t.check(
        crd.spec.names.short_names.as_deref() == Some(&["scl".to_string()][..]),
        || format!("short names: {:?}", crd.spec.names.short_names),
    );
    let out = t.kubectl(&["get", "scl"]);
    t.check(out.status.success(), || {
        format!(
            "kubectl get scl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    t.check(
        String::from_utf8_lossy(&out.stderr).contains("No resources found"),
        || {
            format!(
                "kubectl get scl in an empty namespace: {:?}",
                String::from_utf8_lossy(&out.stderr)
            )
        },
    );
}

/// Two named Task pools on the real apiserver: the cluster converges in the
/// documented order (Core, the default pool, then the pools in list order;
/// shrinking the other way round), `status.pools` and the `Pools` printer
/// column say each pool's observed/desired, and every operation's Events name
/// its pool.
#[tokio::test]
async fn two_pools_converge_and_status_pools_is_right() {
    let t = TestNs::new("pools").await;
    let _op = Operator::start(&t, "pools");
    let spec = |batch: i32, spot: i32| {
        manifest(
            "pools",
            &simulated_block(1),
            3,
            1,
            &[
                "cooldownSeconds: 0".to_string(),
                "scaleIn: {allowed: true}".to_string(),
                format!(
                    "taskPools: [{{name: batch, count: {batch}, min: 0, max: 10, simulated: {{initialCount: 0}}}}, {{name: spot, count: {spot}, simulated: {{initialCount: 0}}}}]"
                ),
            ],
        )
    };
    let pools_are = |sc: &ScaledCluster, want: &[(&str, i32)]| {
        sc.status.as_ref().is_some_and(|s| {
            s.pools.len() == want.len()
                && s.pools.iter().zip(want).all(|(p, (name, n))| {
                    p.name == *name && p.desired == *n && p.observed == Some(*n)
                })
        })
    };
    t.apply_ok(&spec(2, 1));
    let sc = t
        .wait_sc(
            "pools",
            "Ready with batch 2/2 and spot 1/1",
            CONVERGE,
            |sc| converged_at(sc, 3, 1) && pools_are(sc, &[("batch", 2), ("spot", 1)]),
        )
        .await;
    let summary = sc.status.as_ref().and_then(|s| s.pools_summary.clone());
    t.check(summary.as_deref() == Some("2/2,1/1"), || {
        format!("status.poolsSummary: {summary:?}")
    });
    let printed = t.kubectl_ok(&["get", "scl", "pools", "--no-headers", "-o", "wide"]);
    t.check(printed.contains("2/2,1/1"), || {
        format!("the Pools column should show 2/2,1/1: {printed}")
    });
    // Scale-outs in order: the default pool, then batch, then spot.
    // Each operation ends within seconds: its one Event is the outcome.
    let started = t.wait_events("pools", "ScaleOutCompleted", 3, SHORT).await;
    let order = |events: &[k8s_openapi::api::events::v1::Event]| -> Vec<String> {
        let mut events: Vec<_> = events.to_vec();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
            .iter()
            .map(|e| {
                let note = e.note.clone().unwrap_or_default();
                ["batch", "spot"]
                    .iter()
                    .find(|p| {
                        note.contains(&format!("pool {p}")) || note.contains(&format!("{p} pool"))
                    })
                    .map_or("default".to_string(), |p| p.to_string())
            })
            .collect()
    };
    let out = order(&started);
    t.check(out == ["default", "batch", "spot"], || {
        format!("scale-outs should go default, batch, spot; the Events say {out:?}: {started:#?}")
    });
    // Shrink both pools: spot first, then batch.
    t.apply_ok(&spec(1, 0));
    let sc = t
        .wait_sc(
            "pools",
            "Ready with batch 1/1 and spot 0/0",
            CONVERGE,
            |sc| converged_at(sc, 3, 1) && pools_are(sc, &[("batch", 1), ("spot", 0)]),
        )
        .await;
    let last = sc.status.as_ref().and_then(|s| s.last_operation.clone());
    t.check(
        last.as_ref()
            .is_some_and(|o| o.pool.as_deref() == Some("batch")),
        || format!("the last operation should be batch's scale-in: {last:?}"),
    );
    let shrunk = t.wait_events("pools", "ScaleInCompleted", 2, SHORT).await;
    let out = order(&shrunk);
    t.check(out == ["spot", "batch"], || {
        format!("scale-ins should go spot, batch; the Events say {out:?}: {shrunk:#?}")
    });
}

#[tokio::test]
async fn simulated_cluster_converges() {
    let t = TestNs::new("simulated-converges").await;
    let _op = Operator::start(&t, "sim");
    t.apply_ok(&simulated("demo", 6, 4, 3));
    let sc = t
        .wait_sc("demo", "demo Ready at 6/4", CONVERGE, |sc| {
            is_ready(sc) && observed(sc) == Some((6, 4))
        })
        .await;
    let status = sc.status.clone().expect("status");
    let generation = sc.metadata.generation;
    t.check(status.observed_generation == generation, || {
        format!(
            "observedGeneration {:?} != generation {generation:?}",
            status.observed_generation
        )
    });
    for (type_, want, reason) in [
        ("Ready", "True", "Converged"),
        ("Progressing", "False", "Idle"),
        ("Degraded", "False", "AsExpected"),
    ] {
        let c = condition(&sc, type_);
        t.check(
            c.is_some_and(|c| c.status == want && c.reason == reason),
            || format!("condition {type_}: want {want}/{reason}, got {c:?}"),
        );
        t.check(
            c.is_some_and(|c| c.observed_generation == generation),
            || format!("condition {type_} observedGeneration != {generation:?}: {c:?}"),
        );
    }
    t.check(status.cloud.as_deref() == Some("simulated"), || {
        format!("status.cloud {:?}", status.cloud)
    });
    t.check(
        status.pending_operation.is_none() && status.plan.is_empty(),
        || format!("converged but pending/plan left: {status:?}"),
    );
    let last = status.last_operation.clone();
    t.check(
        last.as_ref().is_some_and(|o| {
            o.outcome == Some(Outcome::Succeeded) && o.to_count == 4 && o.from_count == 0
        }),
        || format!("lastOperation should be the Task 0 -> 4 scale-out: {last:?}"),
    );

    // Core 3 -> 6, then Task 0 -> 4: two operations of 3 s each, so one
    // Event each, the outcome, naming the cloud's request id; no
    // ScaleOutStarted (its acceptance was never written on its own).
    let completed = t.wait_events("demo", "ScaleOutCompleted", 2, SHORT).await;
    let started = t.events_for("demo").await;
    let started: Vec<_> = started
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ScaleOutStarted"))
        .collect();
    t.check(started.is_empty(), || {
        format!("operations of 3 s should have no ScaleOutStarted Event: {started:#?}")
    });
    for e in &completed {
        let note = e.note.clone().unwrap_or_default();
        t.check(note.contains("(request id sim-req-"), || {
            format!("a ScaleOutCompleted should name the request id: {note}")
        });
    }
    for (reason, events) in [("ScaleOutCompleted", &completed)] {
        t.check(events.len() == 2, || {
            format!("expected 2 {reason} events (one per operation), got {events:#?}")
        });
        for e in events.iter() {
            t.check(
                e.type_.as_deref() == Some("Normal")
                    && e.reporting_controller.as_deref() == Some("clusterscale"),
                || format!("{reason} event: {e:?}"),
            );
        }
        let notes: Vec<String> = events.iter().filter_map(|e| e.note.clone()).collect();
        for group in ["core", "task"] {
            t.check(
                notes.iter().any(|n| n.contains(&format!(" {group} "))),
                || format!("no {reason} event for the {group} operation: {notes:?}"),
            );
        }
    }
    let warnings: Vec<_> = t
        .events_for("demo")
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    t.check(warnings.is_empty(), || {
        format!("unexpected Warning events: {warnings:#?}")
    });
}

/// `kubectl get scl NAME` as header -> value. kubectl left-aligns each value
/// under its header, and a column may be empty (`POOLS` without pools), so
/// the row is cut at the headers' offsets, not split on whitespace.
fn printed_columns(t: &TestNs, name: &str) -> BTreeMap<String, String> {
    let out = t.kubectl_ok(&["get", "scl", name]);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let row = lines.next().unwrap_or_default();
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for word in header.split_whitespace() {
        let offset = at + header[at..].find(word).unwrap_or(0);
        starts.push((offset, word));
        at = offset + word.len();
    }
    t.check(
        !starts.is_empty() && row.len() >= starts[starts.len() - 1].0,
        || format!("cannot read kubectl get scl output:\n{out}"),
    );
    starts
        .iter()
        .enumerate()
        .map(|(i, (start, h))| {
            let end = starts.get(i + 1).map_or(row.len(), |(next, _)| *next);
            let value = row.get(*start..end.min(row.len())).unwrap_or_default();
            (h.to_string(), value.trim().to_string())
        })
        .collect()
}

#[tokio::test]
async fn kubectl_scale_changes_task() {
    let t = TestNs::new("kubectl-scale").await;
    let _op = Operator::start(&t, "scale");
    t.apply_ok(&simulated("sc", 3, 0, 3));
    t.wait_sc("sc", "sc Ready at 3/0", CONVERGE, |sc| {
        is_ready(sc) && observed(sc) == Some((3, 0))
    })
    .await;

    let out = t.kubectl_ok(&["scale", "scaledcluster/sc", "--replicas=3"]);
    t.check(out.contains("scaled"), || {
        format!("kubectl scale said {out:?}")
    });
    let sc = t.get_ok("sc").await;
    t.check(sc.spec.task.count == 3 && sc.spec.core.count == 3, || {
        format!(
            "kubectl scale should set spec.task.count only: {:?}",
            sc.spec
        )
    });
    t.check(sc.metadata.generation == Some(2), || {
        format!(
            "generation after kubectl scale: {:?}",
            sc.metadata.generation
        )
    });
    t.wait_sc("sc", "sc Ready at 3/3 at generation 2", CONVERGE, |sc| {
        is_ready(sc) && observed(sc) == Some((3, 3))
    })
    .await;

    let columns = printed_columns(&t, "sc");
    for (column, want) in [
        ("CLOUD", "simulated"),
        ("CORE", "3"),
        ("OBS-CORE", "3"),
        ("TASK", "3"),
        ("OBS-TASK", "3"),
        ("PHASE", "Converged"),
        ("READY", "True"),
    ] {
        t.check(
            columns.get(column).map(String::as_str) == Some(want),
            || format!("kubectl get scl column {column}: want {want}, got {columns:?}"),
        );
    }
    // The scale subresource reads the same numbers.
    let raw = t.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/apis/clusterscale.io/v1alpha1/namespaces/{}/scaledclusters/sc/scale",
            t.ns
        ),
    ]);
    let scale: serde_json::Value = serde_json::from_str(&raw).expect("scale JSON");
    t.check(
        scale["spec"]["replicas"] == 3 && scale["status"]["replicas"] == 3,
        || format!("/scale: {scale}"),
    );
}

#[tokio::test]
async fn invalid_spec_rejected_by_cel() {
    let t = TestNs::new("cel").await;
    let rejected = |yaml: &str, wants: &[&str]| {
        let out = t.apply(yaml);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        t.check(!out.status.success(), || {
            format!("apiserver accepted an invalid object:\n{yaml}")
        });
        for want in wants {
            t.check(stderr.contains(want), || {
                format!("rejection should mention {want:?}; kubectl said: {stderr}")
            });
        }
    };
    rejected(
        &simulated("core-two", 2, 0, 3),
        &["spec.core.count", "spec.core.count must be at least 3"],
    );
    let mut too_big = simulated("too-big", 3, 498, 3);
    too_big = too_big.replace("max: 20", "max: 500");
    rejected(
        &too_big,
        &["spec.core.count + spec.task.count must be at most 500"],
    );
    let two_clouds = tencent("two-clouds", "http://127.0.0.1:1", "emr-a", "creds", 3, 0)
        .replace("spec:\n", "spec:\n  simulated: {initialCore: 3}\n");
    rejected(
        &two_clouds,
        &["exactly one of tencent, huawei or simulated must be set"],
    );

    t.apply_ok(&tencent(
        "immutable",
        "http://127.0.0.1:1",
        "emr-first001",
        "creds",
        3,
        0,
    ));
    rejected(
        &tencent(
            "immutable",
            "http://127.0.0.1:1",
            "emr-other001",
            "creds",
            3,
            0,
        ),
        &["spec.tencent.instanceId is immutable"],
    );
    let stored = t.get_ok("immutable").await;
    let instance = stored.spec.tencent.as_ref().map(|t| t.instance_id.clone());
    t.check(instance.as_deref() == Some("emr-first001"), || {
        format!("instanceId changed to {instance:?}")
    });
    let names = t.kubectl_ok(&["get", "scl", "-o", "name"]);
    t.check(
        names.trim() == "scaledcluster.clusterscale.io/immutable",
        || format!("only the valid object should be stored: {names:?}"),
    );
}

#[tokio::test]
async fn invalid_object_stored_anyway_is_degraded() {
    // The CRD has no CEL rule for simulated.operationSeconds >= 0; only the
    // controller's validation (crates/sim/src/validate.rs) enforces it. So this
    // object is stored, as an object breaking any rule would be on an
    // apiserver that drops x-kubernetes-validations (1.20).
    let t = TestNs::new("invalid-stored").await;
    let _op = Operator::start(&t, "invalid");
    let out = t.apply(&simulated("bad", 4, 0, -1));
    t.check(out.status.success(), || {
        format!(
            "the apiserver now rejects operationSeconds -1 ({}); this test needs a rule only the controller enforces",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (sc, degraded) = t.wait_degraded("bad", "InvalidSpec", SHORT).await;
    t.check(
        degraded.message.contains("spec.simulated.operationSeconds"),
        || format!("Degraded should name the field: {degraded:?}"),
    );
    t.check(has_condition(&sc, "Ready", "False"), || {
        format!("Ready should be False: {:?}", condition(&sc, "Ready"))
    });
    let status = sc.status.clone().expect("status");
    t.check(
        status.pending_operation.is_none() && status.last_operation.is_none(),
        || format!("an invalid spec must not act: {status:?}"),
    );
    let warnings = t.wait_events("bad", "InvalidSpec", 1, SHORT).await;
    t.check(
        warnings.iter().all(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("spec.simulated.operationSeconds"))
        }),
        || format!("InvalidSpec events: {warnings:#?}"),
    );

    t.kubectl_ok(&[
        "patch",
        "scaledcluster",
        "bad",
        "--type=merge",
        "-p",
        r#"{"spec":{"simulated":{"operationSeconds":3}}}"#,
    ]);
    let sc = t
        .wait_sc(
            "bad",
            "bad fixed: Ready at 4/0, not Degraded",
            CONVERGE,
            |sc| {
                is_ready(sc)
                    && has_condition(sc, "Degraded", "False")
                    && observed(sc) == Some((4, 0))
            },
        )
        .await;
    let last_error = sc.status.as_ref().and_then(|s| s.last_error.clone());
    t.check(last_error.is_none(), || {
        format!("lastError should clear once fixed: {last_error:?}")
    });
}

#[tokio::test]
async fn missing_secret_then_created() {
    let t = TestNs::new("missing-secret").await;
    let fake = fake_tencent(&t, 2);
    let _op = Operator::start(&t, "secret");
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        0,
    ));
    let (_, degraded) = t.wait_degraded("emr", "CredentialsMissing", SHORT).await;
    t.check(
        degraded
            .message
            .contains(&format!("Secret {}/tc-creds", t.ns)),
        || format!("Degraded should name the Secret: {degraded:?}"),
    );
    t.wait_events("emr", "CredentialsMissing", 1, SHORT).await;
    let journal = fake.journal("tencent");
    t.check(journal.is_empty(), || {
        format!("no cloud call without credentials, got {journal:#?}")
    });

    // The Secret watch requeues the resource (the resync is 5 minutes away).
    tencent_secret(&t, "tc-creds");
    t.wait_sc(
        "emr",
        "emr Ready at 4/0 after the Secret appeared",
        CONVERGE,
        |sc| is_ready(sc) && has_condition(sc, "Degraded", "False") && observed(sc) == Some((4, 0)),
    )
    .await;
    check_tencent_writes(&t, &fake, 1);
}

#[tokio::test]
async fn fake_clouds_converge() {
    let t = TestNs::new("fake-clouds").await;
    let fake = FakeCloud::start(
        &t,
        "both",
        &[
            "--tencent",
            "127.0.0.1:0",
            "--tencent-instance-id",
            TENCENT_INSTANCE,
            "--huawei",
            "127.0.0.1:0",
            "--huawei-cluster-id",
            HUAWEI_CLUSTER,
            "--operation-seconds",
            "2",
        ],
    );
    tencent_secret(&t, "tc-creds");
    t.secret(
        "hw-creds",
        &[("accessKey", HUAWEI_AK), ("secretKey", HUAWEI_SK)],
    );
    let _op = Operator::start(&t, "clouds");
    t.apply_ok(&tencent(
        "emr",
        fake.tencent.as_deref().expect("tencent"),
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        2,
    ));
    t.apply_ok(&huawei(
        "mrs",
        fake.huawei.as_deref().expect("huawei"),
        "hw-creds",
        4,
        2,
    ));
    for (name, cloud) in [("emr", "tencent"), ("mrs", "huawei")] {
        let sc = t
            .wait_sc(name, &format!("{name} Ready at 4/2"), CONVERGE, |sc| {
                is_ready(sc) && observed(sc) == Some((4, 2))
            })
            .await;
        let status = sc.status.expect("status");
        t.check(status.cloud.as_deref() == Some(cloud), || {
            format!("{name}: status.cloud {:?}", status.cloud)
        });
        t.check(has_condition_in(&status, "Degraded", "False"), || {
            format!("{name} is Degraded: {:?}", status.conditions)
        });
    }
    // Core 3 -> 4 and Task 0 -> 2 on each: two writes per cloud.
    check_tencent_writes(&t, &fake, 2);
    let hw = fake.writes("huawei");
    t.check(hw.len() == 2, || {
        format!("expected 2 Huawei resize writes, got {hw:#?}")
    });
}

fn has_condition_in(
    status: &clusterscale_core::api::ScaledClusterStatus,
    type_: &str,
    want: &str,
) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == want)
}

#[tokio::test]
async fn sigkill_mid_operation_no_duplicate_write() {
    let t = TestNs::new("sigkill").await;
    let fake = fake_tencent(&t, 8);
    tencent_secret(&t, "tc-creds");
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    // The restarted process keeps the identity (a StatefulSet pod keeps its
    // name), so it takes the Lease at once instead of waiting 15 s for the
    // dead holder's lease to expire.
    let mut first = Operator::start(&t, "crashy");
    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        2,
    ));
    // The write-ahead record is stored, and the cloud accepted the call,
    // whose acceptance is not written on its own: the crash comes after the
    // acceptance, with only the write-ahead record stored.
    let sc = t
        .wait_sc(
            "emr",
            "the first operation's write-ahead record (pendingOperation)",
            SHORT,
            |sc| {
                sc.status
                    .as_ref()
                    .is_some_and(|s| s.pending_operation.is_some())
            },
        )
        .await;
    let pending = sc
        .status
        .and_then(|s| s.pending_operation)
        .expect("pending operation");
    t.wait_for("the cloud accepted the call", SHORT, || async {
        (!fake.writes("tencent").is_empty()).then_some(())
    })
    .await;
    let killed = first.sigkill();
    t.check(!killed.success(), || {
        format!("the operator should have died of SIGKILL, got {killed}")
    });
    // Still mid-operation: the fake takes 8 s.
    let writes = fake.writes("tencent");
    t.check(
        writes.len() == 1 && client_token(&writes[0]) == pending.id,
        || {
            format!(
                "expected the one write of {} before the kill: {writes:#?}",
                pending.id
            )
        },
    );

    let _second = Operator::start(&t, "crashy");
    let sc = t
        .wait_sc(
            "emr",
            "emr Ready at 4/2 after the restart",
            CONVERGE,
            |sc| is_ready(sc) && observed(sc) == Some((4, 2)),
        )
        .await;
    let tokens = check_tencent_writes(&t, &fake, 2);
    t.check(tokens[0] == pending.id, || {
        format!(
            "the first write should be the operation pending at the kill ({}): {tokens:?}",
            pending.id
        )
    });
    t.check(tokens[0] != tokens[1], || {
        format!("two operations need two tokens: {tokens:?}")
    });
    let last = sc.status.and_then(|s| s.last_operation);
    t.check(
        last.as_ref()
            .is_some_and(|o| o.outcome == Some(Outcome::Succeeded) && o.id == tokens[1]),
        || format!("lastOperation: {last:?}"),
    );
    // The pending operation was resolved by observation: completed once, not failed.
    let completed = t.wait_events("emr", "ScaleOutCompleted", 2, SHORT).await;
    t.check(
        completed
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains(&pending.id))),
        || format!("no ScaleOutCompleted for {}: {completed:#?}", pending.id),
    );
    let failed: Vec<_> = t
        .events_for("emr")
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    t.check(failed.is_empty(), || format!("Warning events: {failed:#?}"));
}

async fn lease_holder(t: &TestNs, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(t.client.clone(), &t.ns);
    api.get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// Two replicas on one Lease, as (leader, follower) once one holds it.
async fn two_replicas(t: &TestNs) -> (Operator, Operator) {
    let a = Operator::start(t, "replica-a");
    let b = Operator::start(t, "replica-b");
    let holder = t
        .wait_for("a Lease holder", SHORT, || {
            lease_holder(t, "clusterscale-leader")
        })
        .await;
    match holder.as_str() {
        "replica-a" => (a, b),
        "replica-b" => (b, a),
        other => t.fail(&format!("unexpected Lease holder {other:?}")),
    }
}

/// The value of a sample line `name` in Prometheus text, if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

fn scale_out_calls(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("clusterscale_cloud_calls_total{") && l.contains("scale_out"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn only_the_leader_writes() {
    let t = TestNs::new("leader").await;
    let fake = fake_tencent(&t, 3);
    tencent_secret(&t, "tc-creds");
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    let (mut leader, mut follower) = two_replicas(&t).await;
    let (leader, follower) = (&mut leader, &mut follower);
    // Readiness does not depend on leadership: both replicas are Ready
    // (watches synced, warm standby) within 30 s, so a rolling update of a
    // two-replica Deployment can finish while the old leader lives.
    for (who, health) in [("leader", leader.health), ("follower", follower.health)] {
        t.wait_for(
            &format!("the {who}'s /readyz 200"),
            Duration::from_secs(30),
            || async move {
                Operator::http_get(health, "/readyz")
                    .await
                    .filter(|(code, _)| *code == 200)
            },
        )
        .await;
    }
    let leader_metrics_addr = leader.metrics;
    let leader_gauge = t
        .wait_for(
            "the leader's clusterscale_leader gauge",
            SHORT,
            || async move {
                let (_, body) = Operator::http_get(leader_metrics_addr, "/metrics").await?;
                sample(&body, "clusterscale_leader")
            },
        )
        .await;
    t.check(leader_gauge == 1.0, || {
        format!("the Lease holder should report clusterscale_leader 1, got {leader_gauge}")
    });

    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        0,
    ));
    t.wait_sc("emr", "emr Ready at 4/0", CONVERGE, |sc| {
        is_ready(sc) && observed(sc) == Some((4, 0))
    })
    .await;
    let first = check_tencent_writes(&t, &fake, 1);
    let started = t.wait_events("emr", "ScaleOutCompleted", 1, SHORT).await;
    t.check(
        started
            .iter()
            .all(|e| e.reporting_instance.as_deref() == Some(leader.identity.as_str())),
        || {
            format!(
                "events should come from the leader {}: {started:#?}",
                leader.identity
            )
        },
    );
    let leader_metrics = Operator::http_get(leader.metrics, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let follower_metrics = Operator::http_get(follower.metrics, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    t.check(scale_out_calls(&leader_metrics) == 1.0, || {
        format!("the leader's scale_out calls:\n{leader_metrics}")
    });
    t.check(
        scale_out_calls(&follower_metrics) == 0.0
            && sample(&follower_metrics, "clusterscale_leader") == Some(0.0),
        || format!("the follower must not call the cloud:\n{follower_metrics}"),
    );

    // Kill the leader without a chance to release the Lease: the follower
    // takes over once it expires, and keeps reconciling.
    let old = leader.identity.clone();
    let new = follower.identity.clone();
    leader.sigkill();
    let killed = std::time::Instant::now();
    // A spec change made after the kill, before any takeover.
    t.kubectl_ok(&["scale", "scaledcluster/emr", "--replicas=2"]);
    t.wait_for(
        &format!("{new} to take the Lease from {old}"),
        CONVERGE,
        || {
            let new = new.clone();
            let t = &t;
            async move {
                lease_holder(t, "clusterscale-leader")
                    .await
                    .filter(|h| *h == new)
            }
        },
    )
    .await;
    let took_lease = killed.elapsed();
    t.wait_sc(
        "emr",
        "emr Ready at 4/2 under the new leader",
        CONVERGE,
        |sc| is_ready(sc) && observed(sc) == Some((4, 2)),
    )
    .await;
    eprintln!(
        "takeover: the follower held the Lease {:.1} s after SIGKILL of the leader; \
         the spec change made after the kill was reconciled (Ready at 4/2) {:.1} s after it",
        took_lease.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    let tokens = check_tencent_writes(&t, &fake, 2);
    t.check(tokens[0] == first[0], || format!("{tokens:?} vs {first:?}"));
    let started = t.wait_events("emr", "ScaleOutCompleted", 2, SHORT).await;
    let by_new = started
        .iter()
        .filter(|e| e.reporting_instance.as_deref() == Some(new.as_str()))
        .count();
    t.check(by_new == 1, || {
        format!("the second operation should be started by {new}: {started:#?}")
    });
    t.check(follower.try_wait().is_none(), || {
        "the new leader exited".to_string()
    });
}

#[tokio::test]
async fn duplicate_target_older_wins() {
    let t = TestNs::new("duplicate").await;
    let fake = fake_tencent(&t, 2);
    tencent_secret(&t, "tc-creds");
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    let _op = Operator::start(&t, "dup");
    t.apply_ok(&tencent(
        "older",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        0,
    ));
    t.wait_sc("older", "older to start its operation", SHORT, |sc| {
        sc.status
            .as_ref()
            .is_some_and(|s| s.pending_operation.is_some() || s.last_operation.is_some())
    })
    .await;
    t.apply_ok(&tencent(
        "younger",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        5,
        1,
    ));
    let (_, degraded) = t.wait_degraded("younger", "DuplicateTarget", SHORT).await;
    let message = degraded.message;
    t.check(message.contains(&format!("{}/older", t.ns)), || {
        format!("DuplicateTarget should name the older resource: {message}")
    });
    t.wait_events("younger", "DuplicateTarget", 1, SHORT).await;
    t.wait_sc(
        "older",
        "older Ready at 4/0, not Degraded",
        CONVERGE,
        |sc| is_ready(sc) && observed(sc) == Some((4, 0)) && has_condition(sc, "Degraded", "False"),
    )
    .await;

    // The older resource's operation, as it recorded it (the id is the ClientToken).
    let older_now = t.get_ok("older").await;
    let ours: BTreeSet<String> = older_now
        .status
        .as_ref()
        .and_then(|s| s.last_operation.as_ref())
        .map(|op| op.id.clone())
        .into_iter()
        .collect();
    let tokens = check_tencent_writes(&t, &fake, 1);
    t.check(tokens.iter().all(|tok| ours.contains(tok)), || {
        format!("a write that is not the older resource's: {tokens:?}")
    });
    let younger = t.get_ok("younger").await;
    let status = younger.status.clone().expect("status");
    t.check(
        status.pending_operation.is_none()
            && status.last_operation.is_none()
            && status.observed.is_none(),
        || format!("the younger resource acted or observed: {status:?}"),
    );
}

#[tokio::test]
async fn metrics_and_health() {
    let t = TestNs::new("metrics").await;
    let op = Operator::start(&t, "metrics");
    let (health, metrics) = (op.health, op.metrics);
    t.wait_for("/healthz 200", SHORT, || async move {
        Operator::http_get(health, "/healthz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    t.wait_for("/readyz 200 after the watch synced", SHORT, || async move {
        Operator::http_get(health, "/readyz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;

    t.apply_ok(&simulated("measured", 4, 0, 3));
    t.wait_sc("measured", "measured Ready at 4/0", CONVERGE, |sc| {
        is_ready(sc) && observed(sc) == Some((4, 0))
    })
    .await;
    let ns = t.ns.clone();
    let observed_core = format!(
        r#"clusterscale_nodes{{namespace="{ns}",name="measured",group="core",kind="observed"}}"#
    );
    let body = t
        .wait_for("metrics after the reconcile", SHORT, || {
            let observed_core = observed_core.clone();
            async move {
                let (code, body) = Operator::http_get(metrics, "/metrics").await?;
                (code == 200 && sample(&body, &observed_core) == Some(4.0)).then_some(body)
            }
        })
        .await;
    let ok = sample(&body, r#"clusterscale_reconciles_total{outcome="ok"}"#);
    t.check(ok.is_some_and(|n| n >= 1.0), || {
        format!("clusterscale_reconciles_total{{outcome=\"ok\"}}: {ok:?}\n{body}")
    });
    t.check(sample(&body, "clusterscale_leader") == Some(1.0), || {
        format!("clusterscale_leader should be 1:\n{body}")
    });
    let desired = format!(
        r#"clusterscale_nodes{{namespace="{ns}",name="measured",group="core",kind="desired"}}"#
    );
    t.check(sample(&body, &desired) == Some(4.0), || {
        format!("{desired} should be 4:\n{body}")
    });
}

#[tokio::test]
async fn crd_missing_exits_with_hint() {
    // A second, empty apiserver (a few seconds to start): the CRD is not
    // installed there.
    let t = TestNs::new("crd-missing").await;
    let bare = Apiserver::start("clusterscale-kube-nocrd-")
        .unwrap_or_else(|e| panic!("starting a second apiserver: {e}"));
    struct Stop<'a>(&'a Apiserver);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.stop_in_background();
        }
    }
    let _stop = Stop(&bare);
    let mut opts = OperatorOpts::new("nocrd");
    opts.kubeconfig = Some(bare.kubeconfig.clone());
    let log = t.dir.join("operator-nocrd.log");
    let mut child = operator_command(&opts, None, free_addr(), free_addr(), &log)
        .spawn()
        .expect("clusterscale run starts");
    register_child(child.id());
    t.register_log("operator nocrd", log.clone());
    let status = t
        .wait_for("clusterscale run to exit", SHORT, || {
            let exited = child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    t.check(status.code() == Some(1), || {
        format!("exit status {status}, want 1; output:\n{output}")
    });
    let hints: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("kubectl apply -f crds/"))
        .collect();
    t.check(
        hints.len() == 1 && hints[0].contains("CRD is not installed"),
        || format!("want one line with the install hint; output:\n{output}"),
    );
}

/// The secrets grep that every kube test runs when it ends (TestNs's Drop)
/// is not vacuous: a secret value planted in a log, or in a status message,
/// is found.
#[tokio::test]
async fn secrets_grep_finds_a_planted_secret() {
    let t = TestNs::new("secrets-grep").await;
    t.secret("planted", &[("secretKey", "plantedSecretValue0001")]);
    let log = t.dir.join("planted.log");
    std::fs::write(&log, "a clean line\n").unwrap();
    t.register_log("planted log", log.clone());
    let scanned = t.assert_no_secrets();
    t.check(scanned > 0, || "the grep scanned nothing".into());
    std::fs::write(&log, "oops: key=plantedSecretValue0001\n").unwrap();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.assert_no_secrets()));
    t.check(found.is_err(), || {
        "a planted secret in a log was not found".into()
    });
    std::fs::write(&log, "a clean line\n").unwrap();
    t.apply_ok(&simulated("leaky", 3, 0, 1));
    t.kubectl_ok(&[
        "patch",
        "scl",
        "leaky",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"message":"plantedSecretValue0001"}}"#,
    ]);
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.assert_no_secrets()));
    t.check(found.is_err(), || {
        "a planted secret in a status was not found".into()
    });
    t.kubectl_ok(&["delete", "scl", "leaky"]);
}

/// The operator's `backing off` log lines, oldest first: (streak, retry in ms).
fn backoff_lines(op: &Operator) -> Vec<(u64, u64)> {
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.trim_matches('"').parse().ok())
    };
    op.log_text()
        .lines()
        .filter(|l| l.contains("backing off"))
        .filter_map(|l| Some((field(l, "streak=")?, field(l, "retry_in_ms=")?)))
        .collect()
}

/// Issue 10's report: a spec patch seemingly unreconciled for minutes while a
/// backoff requeue was scheduled. The resource fails on every call (the fake
/// answers every request with InternalError: Transient, 10 s floor) until its
/// backoff is at the 150 s cap; then the spec is patched. The watch event
/// must be reconciled at once (kube-runtime's scheduler keeps the earlier of
/// two requests for one object), and that pass, which fails too, must retry
/// at the floor: a new generation starts a new streak. Then the cloud
/// recovers and the change is made, well within the old streak's 150 s.
#[tokio::test]
async fn spec_change_during_a_long_backoff_is_reconciled_at_once() {
    let t = TestNs::new("backoff").await;
    let fake = fake_tencent_with(
        &t,
        &["--operation-seconds", "1", "--transient-failure-rate", "1"],
    );
    let endpoint = fake.tencent.clone().expect("tencent");
    tencent_secret(&t, "tc-creds");
    // The default backoff cap (150 s).
    let op = Operator::start(&t, "backoff");
    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        3,
        1,
    ));
    // Every pass fails on its first call: one journal line per pass. Each
    // change of the Secret reconciles at once, so the streak grows without
    // waiting out its delays: 10, 20, 40, 80, then 150 s (plus jitter).
    let passes = || fake.journal("tencent").len();
    let mut touches = 0;
    while passes() < 6 {
        let seen = passes();
        if seen > 0 {
            touches += 1;
            t.kubectl_ok(&[
                "label",
                "secret",
                "tc-creds",
                &format!("touch=n{touches}"),
                "--overwrite",
            ]);
        }
        t.wait_for("a pass after the Secret changed", SHORT, || async {
            (passes() > seen).then_some(())
        })
        .await;
        t.check(touches <= 20, || {
            format!("{touches} Secret changes, {} passes", passes())
        });
    }
    // Let the last pass finish (its status write and its requeue).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = t.get_ok("emr").await;
    let generation = before.metadata.generation.expect("generation");
    let logged_before = backoff_lines(&op).len();
    let passes_before = passes();

    let patched = std::time::Instant::now();
    t.kubectl_ok(&[
        "patch",
        "scl",
        "emr",
        "--type=merge",
        "-p",
        r#"{"spec":{"task":{"count":2}}}"#,
    ]);
    t.wait_sc(
        "emr",
        "the patched generation observed while a 150 s+ backoff was scheduled",
        SHORT,
        |sc| sc.status.as_ref().and_then(|s| s.observed_generation) > Some(generation),
    )
    .await;
    let observed_in = patched.elapsed();
    t.check(passes() > passes_before, || {
        "the patched generation was recorded without a call to the cloud".into()
    });
    // The cloud recovers: the change is made after the floor's delay, not
    // after the old streak's 150 s or more.
    put_faults(&t, &endpoint, "{}").await;
    let recovered = std::time::Instant::now();
    t.wait_sc(
        "emr",
        "Ready at 3/2 once the cloud answers again (well before the old streak's 150 s)",
        Duration::from_secs(90),
        |sc| is_ready(sc) && observed(sc) == Some((3, 2)),
    )
    .await;
    let converged_in = recovered.elapsed();

    // The pass of the patched generation failed too (the cloud still failed
    // then): it started a new streak, at the floor.
    let lines = backoff_lines(&op);
    let last_before = lines[..logged_before].last().copied();
    let after = lines.get(logged_before).copied();
    eprintln!(
        "backoff: {touches} Secret changes, {passes_before} failed passes; last backoff before the patch \
         {last_before:?} (streak, ms); patched generation observed in {observed_in:?}; its pass's backoff \
         {after:?}; converged {converged_in:?} after the cloud recovered"
    );
    t.check(
        last_before.is_some_and(|(streak, ms)| streak >= 5 && ms >= 150_000),
        || format!("the backoff before the patch was not at the cap: {lines:?}"),
    );
    t.check(after.is_some_and(|(streak, ms)| streak == 1 && ms < 20_000), || {
        format!("the patched generation's failed pass did not start a new streak at the 10 s floor: {after:?}")
    });
    check_tencent_writes(&t, &fake, 1);
}

/// The status store's compare-and-swap on the real apiserver: the first write
/// creates `status` (a new object has none), a write from the resourceVersion
/// it returned succeeds and replaces the status whole, and a write from a
/// stale resourceVersion is refused with a conflict and changes nothing. A
/// deferrable write (an accepted call) is kept, not written, and the next
/// pass starts from it on the status the apiserver stored and returns.
#[tokio::test]
async fn status_writes_are_a_compare_and_swap() {
    use clusterscale::controller::reconcile::status::{Deferred, KubeStatusStore};
    use clusterscale_core::api::{Phase, ScaledClusterStatus};
    use clusterscale_engine::{StatusStore, StatusWrite};

    let t = TestNs::new("status-cas").await;
    t.apply_ok(&simulated("cas", 3, 0, 3));
    let created = t.get_ok("cas").await;
    let deferred = std::sync::Arc::new(Deferred::default());
    let mut store = KubeStatusStore::new(t.api.clone(), &created, deferred.clone());
    let first = ScaledClusterStatus {
        phase: Phase::Pending,
        message: Some("first".into()),
        cloud: Some("simulated".into()),
        ..Default::default()
    };
    store
        .save(&first, StatusWrite::WriteAhead)
        .await
        .expect("a write from the object's resourceVersion");
    let second = ScaledClusterStatus {
        phase: Phase::Converged,
        ..Default::default()
    };
    store
        .save(&second, StatusWrite::Plan)
        .await
        .expect("a write from the returned resourceVersion");
    let now = t.get_ok("cas").await;
    // An accepted call: kept, not written; taken up by the next pass, whose
    // object (the status as the apiserver stored it) is the one it was made on.
    let accepted = ScaledClusterStatus {
        message: Some("accepted".into()),
        ..second.clone()
    };
    store
        .save(&accepted, StatusWrite::Accepted)
        .await
        .expect("kept");
    let unchanged = t.get_ok("cas").await;
    t.check(
        unchanged.metadata.resource_version == now.metadata.resource_version,
        || "a deferrable write reached the apiserver".to_string(),
    );
    let uid = now.metadata.uid.clone().unwrap_or_default();
    let taken = deferred.current(&uid, &now.status.clone().unwrap_or_default());
    t.check(taken.message.as_deref() == Some("accepted"), || {
        format!("the next pass does not start from the kept status: {taken:?}")
    });
    let status = now.status.clone().expect("a status");
    t.check(status.phase == Phase::Converged, || format!("{status:?}"));
    t.check(status.message.is_none() && status.cloud.is_none(), || {
        format!("the status is replaced whole, not merged: {status:?}")
    });
    t.check(
        status.selector.as_deref() == Some("clusterscale.io/scaledcluster=cas"),
        || format!("every write carries the scale selector: {status:?}"),
    );

    let mut late = KubeStatusStore::new(t.api.clone(), &created, deferred);
    let refused = late
        .save(&first, StatusWrite::WriteAhead)
        .await
        .expect_err("a stale write is refused");
    t.check(refused.conflict, || format!("409 Conflict, got: {refused}"));
    let after = t.get_ok("cas").await;
    t.check(
        after.metadata.resource_version == now.metadata.resource_version,
        || "the refused write changed the object".to_string(),
    );
}

/// While a new resource of an account waits for its first reconcile, the
/// account's converged resources do not resync: their passes are deferred
/// without a cloud call, and resume once the new one has been observed.
#[tokio::test]
async fn new_resources_come_before_resyncs() {
    let t = TestNs::new("backlog").await;
    let (fake, endpoint, ids) = fake_tencent_fleet(&t, 2);
    let (steady, late) = (ids[0].as_str(), ids[1].as_str());
    tencent_secret(&t, "tc-creds");
    let mut opts = OperatorOpts::new("backlog");
    opts.extra = vec!["--resync-seconds".into(), "2".into()];
    let op = Operator::start_with(&t, opts);
    let metrics = op.metrics;
    let scrape = |name: &'static str| async move {
        let (_, body) = Operator::http_get(metrics, "/metrics").await?;
        sample(&body, name)
    };

    t.apply_ok(&tencent("steady", &endpoint, steady, "tc-creds", 3, 0));
    t.wait_sc("steady", "steady Ready at 3/0", CONVERGE, |sc| {
        converged_at(sc, 3, 0)
    })
    .await;
    let first = describes(&fake, steady);
    t.wait_for("steady resyncing every 2 s", SHORT, || async {
        (describes(&fake, steady) >= first + 2).then_some(())
    })
    .await;

    // Slow answers: the new resource's first observation takes 2 x 8 s.
    put_faults(&t, &endpoint, r#"{"delayMs": 8000}"#).await;
    let before = describes(&fake, steady);
    t.apply_ok(&tencent("late", &endpoint, late, "tc-creds", 3, 0));
    t.wait_for("clusterscale_backlog 1 while late waits", SHORT, || async {
        (scrape("clusterscale_backlog").await == Some(1.0)).then_some(())
    })
    .await;
    t.wait_sc("late", "late's first generation observed", CONVERGE, |sc| {
        sc.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
    })
    .await;
    let during = describes(&fake, steady) - before;
    let deferred = scrape(r#"clusterscale_reconciles_total{outcome="deferred_backlog"}"#).await;
    put_faults(&t, &endpoint, "{}").await;
    eprintln!(
        "backlog: while late waited (~16 s, resync 2 s), steady made {during} DescribeInstances call(s); \
         deferred passes: {deferred:?}"
    );
    // One resync may have been on its way when late appeared.
    t.check(during <= 1, || {
        format!("steady resynced {during} times while late waited for its first observation")
    });
    t.check(deferred.is_some_and(|n| n >= 1.0), || {
        format!("no deferred pass counted: {deferred:?}")
    });

    // The backlog drained: steady resyncs again, late is Ready.
    t.wait_for("clusterscale_backlog 0", SHORT, || async {
        (scrape("clusterscale_backlog").await == Some(0.0)).then_some(())
    })
    .await;
    let after = describes(&fake, steady);
    t.wait_for("steady resyncing again", SHORT, || async {
        (describes(&fake, steady) >= after + 2).then_some(())
    })
    .await;
    t.wait_sc("late", "late Ready at 3/0", CONVERGE, |sc| {
        converged_at(sc, 3, 0)
    })
    .await;
    check_tencent_writes(&t, &fake, 0);
}

/// Past the account's budget, resyncs are admitted at its rate and spread
/// over every resource: six converged resources resynced every second on an
/// account of 2 observations/s are each observed several times in 15 s,
/// and the account's rate is kept.
#[tokio::test]
async fn resyncs_past_the_budget_are_spread_evenly() {
    const N: usize = 6;
    const WINDOW: Duration = Duration::from_secs(15);
    let t = TestNs::new("budget").await;
    let (fake, endpoint, ids) = fake_tencent_fleet(&t, N);
    tencent_secret(&t, "tc-creds");
    let mut opts = OperatorOpts::new("budget");
    opts.extra = ["--resync-seconds", "1", "--tencent-rate-limit", "2"]
        .map(String::from)
        .to_vec();
    let op = Operator::start_with(&t, opts);
    for (i, id) in ids.iter().enumerate() {
        t.apply_ok(&tencent(
            &format!("sc-{i}"),
            &endpoint,
            id,
            "tc-creds",
            3,
            0,
        ));
    }
    for i in 0..N {
        t.wait_sc(&format!("sc-{i}"), "Ready at 3/0", CONVERGE, |sc| {
            converged_at(sc, 3, 0)
        })
        .await;
    }
    let counts = || {
        ids.iter()
            .map(|id| describes(&fake, id))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = counts();
    tokio::time::sleep(WINDOW).await;
    let after = counts();
    let per: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: usize = per.iter().sum();
    let body = Operator::http_get(op.metrics, "/metrics")
        .await
        .map(|(_, b)| b)
        .unwrap_or_default();
    let deferred = sample(
        &body,
        r#"clusterscale_reconciles_total{outcome="deferred_budget"}"#,
    );
    eprintln!(
        "budget: {N} resources, resync 1 s, 2 observations/s: {total} observations in {WINDOW:?}, \
         per resource {per:?}; deferred for the budget: {deferred:?}"
    );
    // Slots are handed out in the order resyncs ask: a round robin, about 5 each.
    t.check(per.iter().all(|n| *n >= 3), || {
        format!("some resource was resynced less than 3 times in {WINDOW:?}: {per:?}")
    });
    t.check(total <= 2 * WINDOW.as_secs() as usize + 4, || {
        format!("{total} observations in {WINDOW:?} exceed 2/s")
    });
    t.check(deferred.is_some_and(|n| n >= 1.0), || {
        format!("no resync was deferred for the budget: {deferred:?}")
    });
    check_tencent_writes(&t, &fake, 0);
}

/// README "What the conditions say", on the real apiserver, one row each:
/// - half of the writes refused before effect (Tencent `InternalError`):
///   converges, and Degraded is never True on the way;
/// - a scale-in the spec blocks: Ready False naming it, Degraded False, a
///   Normal Event and no Warning;
/// - paused with a new count: no Warning Event;
/// - a wrong secret key: Degraded True within a minute, naming
///   authentication.
#[tokio::test]
async fn conditions_tell_the_truth() {
    let t = TestNs::new("conditions").await;
    let (fake, endpoint, ids) = fake_tencent_fleet(&t, 2);
    put_faults(&t, &endpoint, r#"{"writeRefusalRate": 0.5, "seed": 5}"#).await;
    tencent_secret(&t, "tc-creds");
    t.secret(
        "tc-wrong",
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", "not-the-key-the-cloud-knows"),
        ],
    );
    let _op = Operator::start(&t, "conditions");
    let mut policy = fast_policy(5);
    policy.push("scaleIn: {allowed: false}".into());
    policy.retain(|l| !l.starts_with("scaleIn: {allowed: true"));
    t.apply_ok(&manifest(
        "refused",
        &tencent_block(&ids[0], &endpoint, "tc-creds"),
        5,
        0,
        &fast_policy(5),
    ));
    t.apply_ok(&manifest(
        "wrong-key",
        &tencent_block(&ids[1], &endpoint, "tc-wrong"),
        4,
        0,
        &[],
    ));
    t.apply_ok(&manifest(
        "blocked",
        "simulated: {initialCore: 3, initialTask: 2, operationSeconds: 1}",
        3,
        0,
        &policy,
    ));
    t.apply_ok(&manifest(
        "paused",
        &simulated_block(1),
        3,
        4,
        &["paused: true".to_string()],
    ));

    // Row: refused writes. Watch every status until converged.
    let mut degraded_seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(sc) = t.get("refused").await {
            if let Some(c) = condition(&sc, "Degraded").filter(|c| c.status == "True") {
                degraded_seen.push(format!("{}: {}", c.reason, c.message));
            }
            if converged_at(&sc, 5, 0) {
                break;
            }
        }
        if std::time::Instant::now() > deadline {
            t.fail("refused: not converged at 5/0 within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.check(degraded_seen.is_empty(), || {
        format!("Degraded was True on the way: {degraded_seen:?}")
    });
    let refusals = fake
        .journal("tencent")
        .iter()
        .filter(|l| l.action == "ScaleOutInstance" && l.outcome != "ok")
        .count();
    t.check(refusals > 0, || {
        "the fake refused no write: the row was not exercised".into()
    });

    // Row: a wrong secret key.
    let (_, degraded) = t.wait_degraded("wrong-key", "Auth", CONVERGE).await;
    t.check(degraded.message.contains("AuthFailure"), || {
        format!("Degraded should name the authentication failure: {degraded:?}")
    });

    // Row: a scale-in the spec blocks.
    let sc = t
        .wait_sc(
            "blocked",
            "blocked: Ready False, ScaleInDisallowed",
            SHORT,
            |sc| {
                condition(sc, "Ready")
                    .is_some_and(|c| c.status == "False" && c.reason == "ScaleInDisallowed")
            },
        )
        .await;
    t.check(has_condition(&sc, "Degraded", "False"), || {
        format!("a block the spec chose is not Degraded: {:?}", sc.status)
    });
    t.wait_events("blocked", "ScaleInDisallowed", 1, SHORT)
        .await;

    // Row: paused with a new count.
    t.wait_sc("paused", "paused: Ready False, Paused", SHORT, |sc| {
        condition(sc, "Ready").is_some_and(|c| c.reason == "Paused")
    })
    .await;
    // Give a few more passes a chance to misbehave.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["blocked", "paused", "refused"] {
        let warnings: Vec<String> = t
            .events_for(name)
            .await
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .map(|e| format!("{:?}: {:?}", e.reason, e.note))
            .collect();
        t.check(warnings.is_empty(), || {
            format!("{name}: no Warning Event expected, got {warnings:?}")
        });
    }
}

/// A TCP relay between the operator and the apiserver that can freeze
/// connections: a frozen connection stays open both ways but forwards
/// nothing more (what a NAT or load balancer that dropped its state, or a
/// relay that stopped serving, looks like from the operator). TLS goes
/// through untouched: the relay only copies bytes.
mod relay {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Once `pattern` passes from a client to the server, set `flag`.
    struct Cue {
        pattern: Vec<u8>,
        flag: Arc<AtomicBool>,
    }

    #[derive(Default)]
    struct Shared {
        /// One flag per connection, in the order they were opened.
        connections: Mutex<Vec<Arc<AtomicBool>>>,
        opened: AtomicUsize,
        /// While set, nothing passes from the server to any client: the
        /// bytes wait in the relay, unread, and pass on release.
        hold: Arc<AtomicBool>,
        cue: Mutex<Option<Cue>>,
    }

    /// A TCP relay (TLS passes through untouched) with faults: freeze
    /// connections for good (a half-open connection), or hold the server's
    /// answers for a while.
    pub struct Relay {
        pub addr: SocketAddr,
        shared: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Relay {
        pub async fn start(upstream: SocketAddr) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
            let addr = listener.local_addr().expect("relay addr");
            let shared = Arc::new(Shared::default());
            let s = shared.clone();
            let task = tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let frozen = Arc::new(AtomicBool::new(false));
                    s.connections
                        .lock()
                        .expect("relay lock")
                        .push(frozen.clone());
                    s.opened.fetch_add(1, Ordering::SeqCst);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, frozen.clone(), s.clone(), Way::Up));
                    tokio::spawn(pump(sr, cw, frozen, s.clone(), Way::Down));
                }
            });
            Relay { addr, shared, task }
        }

        /// Freeze every connection open now; later ones pass. Returns how many.
        pub fn freeze_open_connections(&self) -> usize {
            let connections = self.shared.connections.lock().expect("relay lock");
            for c in connections.iter() {
                c.store(true, Ordering::SeqCst);
            }
            connections.len()
        }

        /// Connections opened so far.
        pub fn opened(&self) -> usize {
            self.shared.opened.load(Ordering::SeqCst)
        }

        /// The switch that holds every answer of the server while set.
        pub fn hold(&self) -> Arc<AtomicBool> {
            self.shared.hold.clone()
        }

        /// Set `flag` as soon as `pattern` next passes to the server (once).
        pub fn cue(&self, pattern: &str, flag: Arc<AtomicBool>) {
            *self.shared.cue.lock().expect("relay lock") = Some(Cue {
                pattern: pattern.as_bytes().to_vec(),
                flag,
            });
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Way {
        /// Client to server.
        Up,
        /// Server to client.
        Down,
    }

    /// Copy `from` to `to` until EOF, with the relay's faults: answers wait
    /// while held; a cue fires on the way up; once `frozen`, swallow
    /// everything and keep both ends open (never close, never answer).
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
        shared: Arc<Shared>,
        way: Way,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if frozen.load(Ordering::SeqCst) {
                        break;
                    }
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) {
                break;
            }
            match way {
                Way::Up => {
                    let mut cue = shared.cue.lock().expect("relay lock");
                    let hit = cue.as_ref().is_some_and(|c| {
                        buf[..n]
                            .windows(c.pattern.len())
                            .any(|w| w == c.pattern.as_slice())
                    });
                    if hit {
                        if let Some(c) = cue.take() {
                            c.flag.store(true, Ordering::SeqCst);
                        }
                    }
                }
                Way::Down => {
                    while shared.hold.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
        // Frozen: hold the write half open for good, and keep reading (and
        // dropping) so that the peer's writes do not fail either.
        let _hold = to;
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                std::future::pending::<()>().await;
            }
        }
        std::future::pending::<()>().await;
    }
}

/// The operator's kubeconfig, pointing at `relay` instead of the apiserver;
/// and the apiserver's address.
fn kubeconfig_through(
    t: &TestNs,
    relay: std::net::SocketAddr,
) -> (std::path::PathBuf, std::net::SocketAddr) {
    let original = std::fs::read_to_string(&apiserver().kubeconfig).expect("kubeconfig");
    let server = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("a server: line in the kubeconfig")
        .trim()
        .to_string();
    let upstream: std::net::SocketAddr = server.parse().expect("the server is ip:port");
    let path = t.dir.join(format!("kubeconfig-relay-{}", relay.port()));
    std::fs::write(
        &path,
        original.replace(
            &format!("server: https://{server}"),
            &format!("server: https://{relay}"),
        ),
    )
    .expect("writing the relay kubeconfig");
    (path, upstream)
}

/// The bug: the leader's watch connection went silent (half-open) and it
/// never saw a spec change. Now every connection open at one moment is
/// frozen (the watch of ScaledClusters among them: it is always open, and
/// which pooled connection carries it is unknowable from outside TLS, so
/// freezing them all is the reliable way to catch it, and what a NAT that
/// drops its state does), and the spec is changed at once. Leader election is
/// off (see below): the replica leads from the start.
///
/// Timeouts for the test: `--watch-timeout-seconds 5` (the watcher drops a
/// stream silent for 5 + 5 = 10 s) and `--kube-request-timeout-seconds 3`
/// (a request on a frozen pooled connection fails after 3 s). The bound:
/// 10 s until the frozen watch is dropped, then at most a few requests lost on
/// the other frozen connections (3 s each, plus the watcher's backoff, which
/// starts at 0.8 s), then the pass, the scale-out and its poll (the fake's
/// operation takes 2 s, polls every 1 s): 60 s is generous. Without the
/// fix's timeouts kube's own idle timeout is 295 s and a request on a frozen
/// connection waits forever.
#[tokio::test]
async fn half_open_watch_recovers_and_reconciles_the_change() {
    let t = TestNs::new("half-open").await;
    let fake = FakeCloud::start(
        &t,
        "tencent",
        &[
            "--tencent",
            "127.0.0.1:0",
            "--tencent-instance-id",
            TENCENT_INSTANCE,
            "--operation-seconds",
            "2",
        ],
    );
    tencent_secret(&t, "tc-creds");
    let (_, upstream) = kubeconfig_through(&t, "127.0.0.1:1".parse().expect("addr"));
    let relay = relay::Relay::start(upstream).await;
    let (kubeconfig, _) = kubeconfig_through(&t, relay.addr);
    let mut opts = OperatorOpts::new("half-open");
    opts.kubeconfig = Some(kubeconfig);
    // One replica, without leader election: with a Lease, its renewals would
    // also land on frozen pooled connections and it would (rightly) step down
    // after the 10 s renew deadline and exit, which is another way out (a
    // follower takes over) than the one under test: this replica recovering
    // by itself.
    opts.extra = [
        "--leader-elect=false",
        "--kube-request-timeout-seconds",
        "3",
        "--watch-timeout-seconds",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut op = Operator::start_with(&t, opts);
    let endpoint = fake.tencent.clone().expect("tencent");
    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        2,
    ));
    t.wait_sc("emr", "emr Ready at 4/2", CONVERGE, |sc| {
        is_ready(sc) && observed(sc) == Some((4, 2))
    })
    .await;
    // Core 3 -> 4, task 0 -> 2.
    check_tencent_writes(&t, &fake, 2);
    // Let the operator's own last status write come back through its watch.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let frozen = relay.freeze_open_connections();
    let opened_before = relay.opened();
    let frozen_at = std::time::Instant::now();
    t.apply_ok(&tencent(
        "emr",
        &endpoint,
        TENCENT_INSTANCE,
        "tc-creds",
        4,
        3,
    ));
    let generation = t.get_ok("emr").await.metadata.generation;
    const RECOVERY: Duration = Duration::from_secs(60);
    t.wait_sc("emr", "emr Ready at 4/3 after the freeze", RECOVERY, |sc| {
        is_ready(sc)
            && observed(sc) == Some((4, 3))
            && sc.status.as_ref().and_then(|s| s.observed_generation) == generation
    })
    .await;
    let took = frozen_at.elapsed();
    eprintln!(
        "half-open: froze {frozen} connection(s); the change was reconciled {:.1} s later over {} new connection(s)",
        took.as_secs_f64(),
        relay.opened() - opened_before
    );
    t.check(frozen >= 2, || {
        format!("expected at least the two watches frozen, froze {frozen}")
    });
    t.check(relay.opened() > opened_before, || {
        "recovered without a new connection: nothing was frozen that mattered".into()
    });
    // Exactly one more operation (task 2 -> 3): no duplicate, none lost.
    check_tencent_writes(&t, &fake, 3);
    t.check(op.try_wait().is_none(), || "the operator exited".into());
    let livez = Operator::http_get(op.health, "/livez").await;
    t.check(matches!(&livez, Some((200, _))), || {
        format!("/livez: {livez:?}")
    });
    let metrics = Operator::http_get(op.metrics, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let since_epoch = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let frozen_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
        - frozen_at.elapsed().as_secs_f64();
    for name in [
        "clusterscale_last_watch_event_timestamp_seconds",
        "clusterscale_last_reconcile_timestamp_seconds",
    ] {
        let at = since_epoch(name);
        t.check(at > frozen_unix, || {
            format!("{name} = {at}, not after the freeze at {frozen_unix}")
        });
    }
}

/// Send `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(t: &TestNs, pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    t.check(ok, || format!("kill -{signal} {pid}"));
}

/// A replica whose apiserver traffic passes a relay that the test controls.
struct Relayed {
    op: Operator,
    relay: relay::Relay,
}

/// Start replica `identity` through a relay of its own. Its apiserver
/// requests wait up to 300 s (`--kube-request-timeout-seconds`), so that an
/// answer that reached it while it was frozen is still read when it wakes,
/// as with the default 30 s and a shorter freeze.
async fn relayed_replica(t: &TestNs, identity: &str) -> Relayed {
    let (_, upstream) = kubeconfig_through(t, "127.0.0.1:1".parse().expect("addr"));
    let relay = relay::Relay::start(upstream).await;
    let (kubeconfig, _) = kubeconfig_through(t, relay.addr);
    let mut opts = OperatorOpts::new(identity);
    opts.kubeconfig = Some(kubeconfig);
    opts.extra = vec!["--kube-request-timeout-seconds".into(), "300".into()];
    Relayed {
        op: Operator::start_with(t, opts),
        relay,
    }
}

/// One change of the frozen-leader test.
struct FenceCycle {
    /// The ScaledCluster, and the cloud ("tencent" or "huawei").
    name: &'static str,
    cloud: &'static str,
    /// The new Task count.
    task: i32,
    /// The journal action of the scale call.
    write: &'static str,
}

/// The fence, for real, on the real apiserver, four changes on both clouds
/// (scale-out and scale-in on each). Two replicas; each reaches the
/// apiserver through a relay of its own. For each change:
///
/// - the leader's first cloud request of the pass (its observation) cues its
///   relay to hold every apiserver answer; so the answer to its write-ahead
///   record waits in the relay, with the leader waiting for it and its scale
///   call next;
/// - once the record shows in the apiserver, the leader is frozen (SIGSTOP)
///   and the relay lets the answer through: it lies in the frozen leader's
///   socket, which is the race of the issue (a paused VM, a stopped process);
/// - the other replica takes the Lease, resolves the record (Tencent
///   scale-out: re-sent with its ClientToken; otherwise declared not applied
///   after 60 s, MRS 120 s, then planned anew) and converges;
/// - then the old leader wakes (SIGCONT). Its renewal task exits the process,
///   while its reconcile reads the record's answer and would go straight to
///   the cloud: the fence closes that path. No scale call reaches the cloud
///   after the wake, the cloud saw exactly one effective write for the
///   change, and the old leader exits non-zero. A new replica joins as the
///   next follower.
#[tokio::test]
async fn a_frozen_leader_wakes_to_a_closed_fence() {
    let t = TestNs::new("frozen").await;
    let tencent_fake = fake_tencent_with(&t, &["--operation-seconds", "2"]);
    let huawei_fake = fake_huawei(&t);
    let upstream = |fake: &FakeCloud, cloud: &str| -> std::net::SocketAddr {
        let endpoint = match cloud {
            "tencent" => fake.tencent.clone(),
            _ => fake.huawei.clone(),
        };
        endpoint
            .and_then(|e| e.strip_prefix("http://").and_then(|a| a.parse().ok()))
            .expect("the fake's address")
    };
    let tencent_relay = relay::Relay::start(upstream(&tencent_fake, "tencent")).await;
    let huawei_relay = relay::Relay::start(upstream(&huawei_fake, "huawei")).await;
    tencent_secret(&t, "tc-creds");
    t.secret(
        "hw-creds",
        &[("accessKey", HUAWEI_AK), ("secretKey", HUAWEI_SK)],
    );
    let spec = |cycle_name: &str, task: i32| match cycle_name {
        "emr" => manifest(
            "emr",
            &tencent_block(
                TENCENT_INSTANCE,
                &format!("http://{}", tencent_relay.addr),
                "tc-creds",
            ),
            3,
            task,
            &fast_policy(5),
        ),
        _ => manifest(
            "mrs",
            &huawei_block(
                HUAWEI_CLUSTER,
                &format!("http://{}", huawei_relay.addr),
                "hw-creds",
            ),
            3,
            task,
            &fast_policy(5),
        ),
    };
    let mut replicas = vec![
        relayed_replica(&t, "replica-0").await,
        relayed_replica(&t, "replica-1").await,
    ];
    let holder = t
        .wait_for("a Lease holder", SHORT, || {
            lease_holder(&t, "clusterscale-leader")
        })
        .await;
    if replicas[1].op.identity == holder {
        replicas.swap(0, 1);
    }
    for name in ["emr", "mrs"] {
        t.apply_ok(&spec(name, 0));
        t.wait_sc(name, &format!("{name} Ready at 3/0"), CONVERGE, |sc| {
            converged_at(sc, 3, 0)
        })
        .await;
    }
    let cycles = [
        FenceCycle {
            name: "emr",
            cloud: "tencent",
            task: 2,
            write: "ScaleOutInstance",
        },
        FenceCycle {
            name: "mrs",
            cloud: "huawei",
            task: 2,
            write: "UpdateClusterScaling",
        },
        FenceCycle {
            name: "emr",
            cloud: "tencent",
            task: 0,
            write: "TerminateTasks",
        },
        FenceCycle {
            name: "mrs",
            cloud: "huawei",
            task: 0,
            write: "UpdateClusterScaling",
        },
    ];
    for (n, cycle) in cycles.iter().enumerate() {
        let (fake, cloud_relay) = match cycle.cloud {
            "tencent" => (&tencent_fake, &tencent_relay),
            _ => (&huawei_fake, &huawei_relay),
        };
        let effective = |fake: &FakeCloud| {
            fake.writes(cycle.cloud)
                .iter()
                .filter(|l| l.action == cycle.write)
                .count()
        };
        let effective_before = effective(fake);
        let mut leader = replicas.remove(0);
        let follower_identity = replicas[0].op.identity.clone();
        let hold = leader.relay.hold();
        // Every cloud request of a pass starts with the observation: the
        // first one after the change cues the hold.
        cloud_relay.cue(
            if cycle.cloud == "tencent" {
                "POST / "
            } else {
                "GET /v1.1/"
            },
            hold.clone(),
        );
        t.apply_ok(&spec(cycle.name, cycle.task));
        let what = format!(
            "cycle {n}: {}'s write-ahead record of Task -> {}",
            cycle.name, cycle.task
        );
        t.wait_sc(cycle.name, &what, SHORT, |sc| {
            sc.status
                .as_ref()
                .and_then(|s| s.pending_operation.as_ref())
                .is_some_and(|p| !p.accepted && p.to_count == cycle.task)
        })
        .await;
        signal(&t, leader.op.pid(), "STOP");
        let frozen = std::time::Instant::now();
        hold.store(false, std::sync::atomic::Ordering::SeqCst);
        t.wait_for("the follower holds the Lease", CONVERGE, || async {
            lease_holder(&t, "clusterscale-leader")
                .await
                .filter(|h| *h == follower_identity)
        })
        .await;
        t.wait_sc(
            cycle.name,
            &format!(
                "cycle {n}: {} converged at 3/{} by the new leader",
                cycle.name, cycle.task
            ),
            Duration::from_secs(240),
            |sc| converged_at(sc, 3, cycle.task),
        )
        .await;
        eprintln!(
            "cycle {n} ({} {} -> {}): settled {:.1} s after the freeze",
            cycle.cloud,
            cycle.write,
            cycle.task,
            frozen.elapsed().as_secs_f64()
        );
        // Frozen past the Lease (15 s) in any case.
        tokio::time::sleep(Duration::from_secs(20).saturating_sub(frozen.elapsed())).await;
        let woken = jiff::Timestamp::now();
        signal(&t, leader.op.pid(), "CONT");
        let exited = t
            .wait_for("the woken leader exits", SHORT, || {
                let status = leader.op.try_wait();
                async move { status }
            })
            .await;
        t.check(!exited.success(), || {
            format!("cycle {n}: the woken leader should exit as on lease loss: {exited:?}")
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after_wake: Vec<String> = fake
            .journal(cycle.cloud)
            .iter()
            .filter(|l| l.action == cycle.write && l.at >= woken)
            .map(|l| format!("{} {} write={}", l.action, l.outcome, l.write))
            .collect();
        t.check(after_wake.is_empty(), || {
            format!("cycle {n}: the woken leader sent a scale call: {after_wake:?}")
        });
        let writes = effective(fake) - effective_before;
        t.check(writes == 1, || {
            format!(
                "cycle {n}: exactly one effective {} for the change, got {writes}",
                cycle.write
            )
        });
        replicas.push(relayed_replica(&t, &format!("replica-{}", n + 2)).await);
    }
}

/// An MRS resize that ends `abnormal` (one host down) at its counts, through
/// the controller: converged and Ready, the cloud's view apart (ClusterHealthy
/// False, Abnormal, naming the host count; one Warning Event), and no second
/// resize.
#[tokio::test]
async fn abnormal_mrs_cluster_at_its_counts_is_ready() {
    let t = TestNs::new("abnormal").await;
    let fake = fake_huawei(&t);
    let endpoint = fake.huawei.clone().expect("huawei");
    let armed = reqwest::Client::new()
        .put(format!("{endpoint}/_fake/abnormal"))
        .json(&serde_json::json!({"hostsDown": 1}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    t.check(armed, || "PUT /_fake/abnormal".into());
    t.secret(
        "hw-creds",
        &[("accessKey", HUAWEI_AK), ("secretKey", HUAWEI_SK)],
    );
    let _op = Operator::start(&t, "abnormal");
    t.apply_ok(&huawei("mrs", &endpoint, "hw-creds", 4, 0));
    let sc = t
        .wait_sc("mrs", "mrs Ready at 4/0 while abnormal", CONVERGE, |sc| {
            is_ready(sc)
                && observed(sc) == Some((4, 0))
                && condition(sc, "ClusterHealthy")
                    .is_some_and(|c| c.status == "False" && c.reason == "Abnormal")
        })
        .await;
    let healthy = condition(&sc, "ClusterHealthy").expect("ClusterHealthy");
    t.check(healthy.message.contains("not running"), || {
        format!("ClusterHealthy should say how many nodes are down: {healthy:?}")
    });
    t.check(has_condition(&sc, "Degraded", "False"), || {
        format!("at its counts, not Degraded: {:?}", sc.status)
    });
    t.wait_events("mrs", "Abnormal", 1, SHORT).await;
    // A few more passes: no second resize, no second Warning.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let abnormal_warnings = t
        .events_for("mrs")
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Abnormal"))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum::<i32>();
    t.check(abnormal_warnings == 1, || {
        format!("one Abnormal Warning, got {abnormal_warnings}")
    });
    let writes = fake.writes("huawei");
    t.check(writes.len() == 1, || {
        format!("exactly one resize, got {writes:#?}")
    });
}
