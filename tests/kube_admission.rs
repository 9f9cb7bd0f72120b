//! Admission of ScaledClusters by a real kube-apiserver (tests/kube/apiserver.sh):
//! every CEL rule of the CRD (`x_kube(validation = Rule::new(...))` in
//! crates/core/src/api/mod.rs, generated into crds/scaledcluster.yaml) refuses a
//! violating object with the rule's own message at the field's path, and
//! admits the valid values at the rule's edges.
//!
//! Creates are server-side dry runs (admission runs in full, nothing is
//! stored); the two transition rules (`self == oldSelf`) update a stored
//! object. [`every_cel_rule_of_the_crd_has_a_case`] fails when a rule is
//! added without a case here.

mod support;

use std::collections::BTreeSet;

use clusterscale_core::api::ScaledCluster;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use support::*;

/// One CEL rule: its message, the path the apiserver reports, spec merge
/// patches that break it, and ones at its edges that it admits.
struct Case {
    message: &'static str,
    path: &'static str,
    bad: Vec<Value>,
    good: Vec<Value>,
}

fn tencent_block(pay_mode: i64) -> Value {
    json!({
        "simulated": null,
        "tencent": {
            "region": "ap-guangzhou",
            "instanceId": "emr-admit001",
            "payMode": pay_mode,
            "credentialsSecretRef": {"name": "creds"}
        }
    })
}

/// `spec.tencent` (and the simulated block unset) with its credentials
/// fields replaced by `creds`.
fn tencent_with(creds: Value) -> Value {
    let mut block = tencent_block(0);
    let t = block["tencent"].as_object_mut().expect("object");
    t.remove("credentialsSecretRef");
    t.extend(creds.as_object().expect("object").clone());
    block
}

/// `spec.huawei` (and the simulated block unset) with its credentials
/// fields replaced by `creds`.
fn huawei_with(creds: Value) -> Value {
    let mut h = huawei_block();
    let o = h.as_object_mut().expect("object");
    o.remove("credentialsSecretRef");
    o.extend(creds.as_object().expect("object").clone());
    json!({"simulated": null, "huawei": h})
}

fn huawei_block() -> Value {
    json!({
        "region": "cn-north-4",
        "projectId": "0123456789abcdef0123456789abcdef",
        "clusterId": "0f1e2d3c-4b5a-4968-8776-655443322110",
        "credentialsSecretRef": {"name": "creds"}
    })
}

/// The CEL rules the immutability test covers (they need an update).
const TRANSITION_RULES: &[&str] = &[
    "spec.tencent.instanceId is immutable",
    "spec.huawei.clusterId is immutable",
];

fn cases() -> Vec<Case> {
    vec![
        Case {
            message: "spec: exactly one of tencent, huawei or simulated must be set",
            path: "spec",
            bad: vec![
                json!({"simulated": null}),
                json!({"tencent": tencent_block(0)["tencent"]}),
                json!({"huawei": huawei_block()}),
                json!({"simulated": null, "tencent": tencent_block(0)["tencent"], "huawei": huawei_block()}),
            ],
            good: vec![
                json!({}),
                tencent_block(0),
                json!({"simulated": null, "huawei": huawei_block()}),
            ],
        },
        Case {
            message: "spec.tencent: exactly one of credentialsSecretRef or accountRef must be set",
            path: "spec.tencent",
            bad: vec![
                tencent_with(json!({})),
                tencent_with(json!({"credentialsSecretRef": {"name": "creds"}, "accountRef": {"name": "prod"}})),
            ],
            good: vec![
                tencent_with(json!({"accountRef": {"name": "prod"}})),
                tencent_with(json!({"credentialsSecretRef": {"name": "creds"}})),
            ],
        },
        Case {
            message: "spec.huawei: exactly one of credentialsSecretRef or accountRef must be set",
            path: "spec.huawei",
            bad: vec![
                huawei_with(json!({})),
                huawei_with(json!({"credentialsSecretRef": {"name": "creds"}, "accountRef": {"name": "prod"}})),
            ],
            good: vec![
                huawei_with(json!({"accountRef": {"name": "prod"}})),
                huawei_with(json!({"credentialsSecretRef": {"name": "creds"}})),
            ],
        },
        Case {
            message: "spec.core.count + spec.task.count must be at most 500",
            path: "spec",
            bad: vec![
                json!({"core": {"count": 3}, "task": {"count": 498, "max": 500}}),
                json!({"core": {"count": 400}, "task": {"count": 101, "max": 500}}),
            ],
            good: vec![
                json!({"core": {"count": 3}, "task": {"count": 497, "max": 500}}),
                json!({"core": {"count": 500}, "task": {"count": 0}}),
            ],
        },
        Case {
            message: "spec.maxStep must be >= 0",
            path: "spec.maxStep",
            bad: vec![json!({"maxStep": -1})],
            good: vec![json!({"maxStep": 0}), json!({"maxStep": 1})],
        },
        Case {
            message: "spec.cooldownSeconds must be >= 0",
            path: "spec.cooldownSeconds",
            bad: vec![json!({"cooldownSeconds": -1})],
            good: vec![json!({"cooldownSeconds": 0})],
        },
        Case {
            message: "spec.core.count must be at least 3",
            path: "spec.core.count",
            bad: vec![json!({"core": {"count": 2}}), json!({"core": {"count": 0}})],
            good: vec![json!({"core": {"count": 3}})],
        },
        Case {
            message: "spec.task.min must be <= spec.task.max",
            path: "spec.task",
            bad: vec![json!({"task": {"count": 4, "min": 5, "max": 4}})],
            good: vec![json!({"task": {"count": 4, "min": 4, "max": 4}})],
        },
        Case {
            message: "spec.task.count must be >= 0",
            path: "spec.task.count",
            bad: vec![json!({"task": {"count": -1}})],
            good: vec![json!({"task": {"count": 0}})],
        },
        Case {
            message: "spec.task.min must be >= 0",
            path: "spec.task.min",
            bad: vec![json!({"task": {"min": -1}})],
            good: vec![json!({"task": {"min": 0}})],
        },
        Case {
            message: "spec.task.max must be between 0 and 500",
            path: "spec.task.max",
            bad: vec![
                json!({"task": {"max": 501}}),
                json!({"task": {"count": 0, "min": 0, "max": -1}}),
            ],
            good: vec![
                json!({"task": {"count": 0, "min": 0, "max": 0}}),
                json!({"task": {"max": 500}}),
            ],
        },
        Case {
            message: "spec.scaleIn.gracefulTimeoutSeconds must be 0 or between 60 and 1800",
            path: "spec.scaleIn.gracefulTimeoutSeconds",
            bad: vec![
                json!({"scaleIn": {"gracefulTimeoutSeconds": 59}}),
                json!({"scaleIn": {"gracefulTimeoutSeconds": 1801}}),
                json!({"scaleIn": {"gracefulTimeoutSeconds": -1}}),
                json!({"scaleIn": {"gracefulTimeoutSeconds": 1}}),
            ],
            good: vec![
                json!({"scaleIn": {"gracefulTimeoutSeconds": 0}}),
                json!({"scaleIn": {"gracefulTimeoutSeconds": 60}}),
                json!({"scaleIn": {"gracefulTimeoutSeconds": 1800}}),
            ],
        },
        Case {
            message: "spec.tencent.payMode must be 0 or 1",
            path: "spec.tencent.payMode",
            bad: vec![tencent_block(2), tencent_block(-1)],
            good: vec![tencent_block(0), tencent_block(1)],
        },
        Case {
            message: "spec.core.count + spec.task.count + spec.taskPools[].count must be at most 500",
            path: "spec",
            bad: vec![
                pools(json!([{"name": "a", "count": 498}])),
                json!({"task": {"count": 400, "max": 500}, "taskPools": [{"name": "a", "count": 50}, {"name": "b", "count": 48}]}),
            ],
            good: vec![
                pools(json!([{"name": "a", "count": 497}])),
                json!({"task": {"count": 400, "max": 500}, "taskPools": [{"name": "a", "count": 50}, {"name": "b", "count": 47}]}),
            ],
        },
        Case {
            message: "spec.taskPools[]: a pool may set only the block of the spec's cloud (tencent, huawei or simulated)",
            path: "spec",
            bad: vec![
                pools(json!([{"name": "a", "tencent": {"chargeType": "SPOTPAID"}}])),
                pools(json!([{"name": "a", "simulated": {}}, {"name": "b", "huawei": {"nodeGroup": "node_group_2"}}])),
            ],
            good: vec![
                pools(json!([{"name": "a", "simulated": {"initialCount": 1}}, {"name": "b"}])),
                json!({"simulated": null, "tencent": tencent_block(0)["tencent"], "taskPools": [{"name": "spot", "count": 10, "tencent": {"chargeType": "SPOTPAID", "instanceType": "SA5.2XLARGE32", "yarnNodeLabel": "spot"}}]}),
            ],
        },
        Case {
            message: "spec.taskPools[].huawei.nodeGroup is required for every pool of a huawei cluster",
            path: "spec",
            bad: vec![
                json!({"simulated": null, "huawei": huawei_block(), "taskPools": [{"name": "a", "count": 1}]}),
            ],
            good: vec![
                json!({"simulated": null, "huawei": huawei_block(), "taskPools": [{"name": "a", "count": 1, "huawei": {"nodeGroup": "node_group_3"}}]}),
                json!({"simulated": null, "huawei": huawei_block()}),
            ],
        },
        Case {
            message: "spec.taskPools[].min must be <= spec.taskPools[].max",
            path: "spec.taskPools[0]",
            bad: vec![pools(json!([{"name": "a", "count": 4, "min": 5, "max": 4}]))],
            good: vec![pools(json!([{"name": "a", "count": 4, "min": 4, "max": 4}]))],
        },
        Case {
            message: "spec.taskPools[].name must not be task (the default Task pool's name)",
            path: "spec.taskPools[0].name",
            bad: vec![pools(json!([{"name": "task"}]))],
            good: vec![pools(json!([{"name": "tasks"}])), pools(json!([{"name": "t"}]))],
        },
        Case {
            message: "spec.taskPools[].count must be >= 0",
            path: "spec.taskPools[0].count",
            bad: vec![pools(json!([{"name": "a", "count": -1}]))],
            good: vec![pools(json!([{"name": "a", "count": 0}]))],
        },
        Case {
            message: "spec.taskPools[].min must be >= 0",
            path: "spec.taskPools[0].min",
            bad: vec![pools(json!([{"name": "a", "min": -1}]))],
            good: vec![pools(json!([{"name": "a", "min": 0}]))],
        },
        Case {
            message: "spec.taskPools[].max must be between 0 and 500",
            path: "spec.taskPools[0].max",
            bad: vec![
                pools(json!([{"name": "a", "max": 501}])),
                pools(json!([{"name": "a", "count": 0, "min": 0, "max": -1}])),
            ],
            good: vec![
                pools(json!([{"name": "a", "count": 0, "min": 0, "max": 0}])),
                pools(json!([{"name": "a", "max": 500}])),
            ],
        },
        Case {
            message: "spec.taskPools[].simulated.initialCount must be >= 0",
            path: "spec.taskPools[0].simulated.initialCount",
            bad: vec![pools(json!([{"name": "a", "simulated": {"initialCount": -1}}]))],
            good: vec![pools(json!([{"name": "a", "simulated": {"initialCount": 0}}]))],
        },
    ]
}

/// A spec patch that sets `spec.taskPools` on the simulated cloud.
fn pools(list: Value) -> Value {
    json!({"taskPools": list})
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A valid ScaledCluster `name` with `patch` merged into its spec.
fn object(name: &str, patch: &Value) -> Value {
    let mut spec = json!({
        "simulated": {},
        "core": {"count": 3},
        "task": {"count": 0, "min": 0, "max": 20}
    });
    merge(&mut spec, patch);
    json!({
        "apiVersion": "clusterscale.io/v1alpha1",
        "kind": "ScaledCluster",
        "metadata": {"name": name},
        "spec": spec
    })
}

/// The object as the typed client sends it (a JSON object that does not fit
/// the Rust types would be a bug in the case, not in the CRD).
fn typed(value: &Value) -> ScaledCluster {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("case object does not fit ScaledCluster: {e}: {value}"))
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..PostParams::default()
    }
}

/// The apiserver's message of a refusal, with its HTTP code.
fn refusal(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => (0, other.to_string()),
    }
}

#[tokio::test]
async fn every_cel_rule_refuses_a_violation_and_admits_its_edges() {
    let t = TestNs::new("admission-cel").await;
    let mut failures = Vec::new();
    let mut refused = 0;
    let mut admitted = 0;
    for (i, case) in cases().iter().enumerate() {
        for (j, patch) in case.bad.iter().enumerate() {
            let obj = object(&format!("bad-{i}-{j}"), patch);
            match t.api.create(&dry_run(), &typed(&obj)).await {
                Ok(_) => failures.push(format!(
                    "[{}] admitted a violation: {}",
                    case.message, obj["spec"]
                )),
                Err(e) => {
                    let (code, message) = refusal(e);
                    let at_path = format!("{}: Invalid value", case.path);
                    if code != 422 || !message.contains(case.message) || !message.contains(&at_path)
                    {
                        failures.push(format!(
                            "[{}] {}: want 422 naming {at_path:?} and the rule's message, got {code}: {message}",
                            case.message, obj["spec"]
                        ));
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        for (j, patch) in case.good.iter().enumerate() {
            let obj = object(&format!("good-{i}-{j}"), patch);
            match t.api.create(&dry_run(), &typed(&obj)).await {
                Ok(_) => admitted += 1,
                Err(e) => failures.push(format!(
                    "[{}] refused a valid edge {}: {:?}",
                    case.message,
                    obj["spec"],
                    refusal(e)
                )),
            }
        }
    }
    eprintln!("CEL admission: {refused} violations refused, {admitted} edge values admitted");
    t.check(failures.is_empty(), || failures.join("\n"));
    // Dry runs stored nothing.
    let names = t.kubectl_ok(&["get", "scl", "-o", "name"]);
    t.check(names.trim().is_empty(), || {
        format!("dry runs should store nothing: {names:?}")
    });
}

#[tokio::test]
async fn instance_and_cluster_ids_are_immutable() {
    let t = TestNs::new("admission-immutable").await;
    let pp = PatchParams::default();
    for (name, base, field, changed, message) in [
        (
            "tencent-id",
            tencent_block(0),
            "instanceId",
            "emr-other001",
            "spec.tencent.instanceId is immutable",
        ),
        (
            "huawei-id",
            json!({"simulated": null, "huawei": huawei_block()}),
            "clusterId",
            "11111111-2222-4333-8444-555555555555",
            "spec.huawei.clusterId is immutable",
        ),
    ] {
        let cloud = if base.get("tencent").is_some() {
            "tencent"
        } else {
            "huawei"
        };
        let obj = object(name, &base);
        if let Err(e) = t.api.create(&PostParams::default(), &typed(&obj)).await {
            t.fail(&format!("creating {name}: {:?}", refusal(e)));
        }
        // Another field may change; the id may not.
        let other = json!({"spec": {"core": {"count": 4}}});
        if let Err(e) = t.api.patch(name, &pp, &Patch::Merge(&other)).await {
            t.fail(&format!(
                "{name}: changing core.count refused: {:?}",
                refusal(e)
            ));
        }
        let same = json!({"spec": {cloud: {field: obj["spec"][cloud][field]}}});
        if let Err(e) = t.api.patch(name, &pp, &Patch::Merge(&same)).await {
            t.fail(&format!(
                "{name}: re-sending the same {field} refused: {:?}",
                refusal(e)
            ));
        }
        let change = json!({"spec": {cloud: {field: changed}}});
        match t.api.patch(name, &pp, &Patch::Merge(&change)).await {
            Ok(sc) => t.fail(&format!("{name}: {field} changed to {changed}: {sc:?}")),
            Err(e) => {
                let (code, got) = refusal(e);
                let at_path = format!("spec.{cloud}.{field}: Invalid value");
                t.check(code == 422 && got.contains(message) && got.contains(&at_path), || {
                    format!("{name}: want 422 naming {at_path:?} and {message:?}, got {code}: {got}")
                });
            }
        }
        let stored = t.get_ok(name).await;
        let now = serde_json::to_value(&stored.spec).expect("spec")[cloud][field].clone();
        t.check(now == obj["spec"][cloud][field], || {
            format!("{name}: stored {field} is {now}")
        });
        t.check(stored.spec.core.count == 4, || {
            format!("{name}: core.count {}", stored.spec.core.count)
        });
    }
}

/// Every `x-kubernetes-validations` entry of a schema, recursively.
fn rules(v: &serde_yaml_ng::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, child) in m {
                if k.as_str() == Some("x-kubernetes-validations") {
                    for r in child.as_sequence().into_iter().flatten() {
                        let text = |key: &str| {
                            r.get(key)
                                .and_then(|s| s.as_str())
                                .unwrap_or_default()
                                .to_string()
                        };
                        out.push((text("rule"), text("message")));
                    }
                } else {
                    rules(child, out);
                }
            }
        }
        serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|c| rules(c, out)),
        _ => {}
    }
}

#[test]
fn every_cel_rule_of_the_crd_has_a_case() {
    let crd: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&clusterscale_core::api::crd_yaml()).expect("the CRD parses");
    let mut found = Vec::new();
    rules(&crd, &mut found);
    let in_crd: BTreeSet<&str> = found.iter().map(|(_, m)| m.as_str()).collect();
    let cases = cases();
    let covered: BTreeSet<&str> = cases
        .iter()
        .map(|c| c.message)
        .chain(TRANSITION_RULES.iter().copied())
        .collect();
    assert_eq!(
        in_crd, covered,
        "every CEL rule of the CRD needs a case in tests/kube_admission.rs (and every case a rule)"
    );
    assert!(
        found.iter().all(|(_, m)| !m.is_empty()),
        "a rule without a message: {found:?}"
    );
    // The CRD in the repository is the generated one (tests/crd_drift.rs), and
    // every Rule::new in crates/core/src/api/mod.rs is one of these.
    let source = include_str!("../crates/core/src/api/mod.rs");
    assert_eq!(
        source.matches("Rule::new(").count(),
        found.len(),
        "crates/core/src/api/mod.rs and the generated CRD disagree on the number of CEL rules"
    );
    for case in &cases {
        assert!(
            !case.bad.is_empty() && !case.good.is_empty(),
            "{}",
            case.message
        );
    }
}

/// What the schema itself refuses about pools, before any CEL rule, as
/// `kubectl apply` (strict field validation, its default) sends it: a
/// duplicate pool name (`listType: map` keyed by name), more than 8 pools, a
/// charge type that is not POSTPAID_BY_HOUR or SPOTPAID, and SPOTPAID outside
/// a pool (there is no such field: an unknown field).
#[tokio::test]
async fn the_schema_refuses_duplicate_pools_and_spot_outside_a_pool() {
    let t = TestNs::new("admission-pools").await;
    let tencent = "tencent: {region: ap-guangzhou, instanceId: emr-adm00001, payMode: 0, credentialsSecretRef: {name: tc}}";
    let doc = |name: &str, cloud: &str, extra: &str| {
        format!(
            "apiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {{name: {name}}}\nspec:\n  {cloud}\n  core: {{count: 3}}\n  task: {{count: 0, min: 0, max: 20}}\n{extra}"
        )
    };
    let nine: String = (0..9)
        .map(|i| format!("  - {{name: p{i}, simulated: {{}}}}\n"))
        .collect();
    let cases = [
        (
            "duplicate pool name",
            doc(
                "dup",
                "simulated: {}",
                "  taskPools:\n  - {name: a, count: 1}\n  - {name: a, count: 2}\n",
            ),
            "Duplicate value",
        ),
        (
            "nine pools",
            doc("nine", "simulated: {}", &format!("  taskPools:\n{nine}")),
            "must have at most 8 items",
        ),
        (
            "a charge type of neither kind",
            doc(
                "prepaid",
                tencent,
                "  taskPools:\n  - {name: a, tencent: {chargeType: PREPAID}}\n",
            ),
            "Unsupported value: \"PREPAID\"",
        ),
        (
            "SPOTPAID outside a pool",
            doc(
                "spot",
                "tencent: {region: ap-guangzhou, instanceId: emr-adm00002, payMode: 0, chargeType: SPOTPAID, credentialsSecretRef: {name: tc}}",
                "",
            ),
            "unknown field \"spec.tencent.chargeType\"",
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, want) in &cases {
        let out = apiserver().kubectl_stdin(
            &["apply", "-n", &t.ns, "--dry-run=server", "-f", "-"],
            Some(yaml),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains(want) {
            failures.push(format!(
                "{what}: want a refusal containing {want:?}, got {} {stderr}",
                out.status
            ));
        }
    }
    // The same shapes, valid: admitted.
    let valid = doc(
        "valid",
        tencent,
        "  taskPools:\n  - {name: a, count: 1, tencent: {chargeType: SPOTPAID}}\n  - {name: b, count: 2}\n",
    );
    let out = apiserver().kubectl_stdin(
        &["apply", "-n", &t.ns, "--dry-run=server", "-f", "-"],
        Some(&valid),
    );
    if !out.status.success() {
        failures.push(format!(
            "a valid manifest with two pools was refused: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    t.check(failures.is_empty(), || failures.join("\n"));
}

/// The CloudAccount CRD's rules (crates/core/src/api/account.rs, generated
/// into crds/cloudaccount.yaml), on the real apiserver: each violation is
/// refused with its message, each source of each cloud is admitted.
#[tokio::test]
async fn every_cloudaccount_rule_refuses_a_violation_and_admits_each_source() {
    use clusterscale_core::api::account::CloudAccount;
    let t = TestNs::new("admission-account").await;
    let api: kube::Api<CloudAccount> = kube::Api::all(t.client.clone());
    let secret = json!({"namespace": "clusterscale", "name": "keys"});
    let tencent_wi = json!({
        "roleArn": "qcs::cam::uin/100000000001:roleName/clusterscale",
        "providerId": "tke-oidc",
        "region": "ap-guangzhou"
    });
    let huawei_wi = json!({"idpId": "cce-oidc", "domainName": "example"});
    let with = |base: &Value, patch: Value| {
        let mut v = base.clone();
        merge(&mut v, &patch);
        v
    };
    let bad: Vec<(&str, Value)> = vec![
        (
            "spec: exactly one of tencent or huawei must be set",
            json!({}),
        ),
        (
            "spec: exactly one of tencent or huawei must be set",
            json!({"tencent": {"secretRef": secret}, "huawei": {"secretRef": secret}}),
        ),
        (
            "spec.tencent: exactly one of secretRef or workloadIdentity must be set",
            json!({"tencent": {}}),
        ),
        (
            "spec.tencent: exactly one of secretRef or workloadIdentity must be set",
            json!({"tencent": {"secretRef": secret, "workloadIdentity": tencent_wi}}),
        ),
        (
            "spec.huawei: exactly one of secretRef or workloadIdentity must be set",
            json!({"huawei": {"secretRef": secret, "workloadIdentity": huawei_wi}}),
        ),
        (
            "sessionDurationSeconds must be between 900 and 43200",
            json!({"tencent": {"workloadIdentity": with(&tencent_wi, json!({"sessionDurationSeconds": 899}))}}),
        ),
        (
            "sessionDurationSeconds must be between 900 and 43200",
            json!({"tencent": {"workloadIdentity": with(&tencent_wi, json!({"sessionDurationSeconds": 43201}))}}),
        ),
        (
            "durationSeconds must be between 900 and 86400",
            json!({"huawei": {"workloadIdentity": with(&huawei_wi, json!({"durationSeconds": 86401}))}}),
        ),
        (
            "set domainName or domainId, not both",
            json!({"huawei": {"workloadIdentity": with(&huawei_wi, json!({"domainId": "0123"}))}}),
        ),
    ];
    let good = [
        json!({"tencent": {"secretRef": secret}}),
        json!({"tencent": {"workloadIdentity": with(&tencent_wi, json!({"sessionDurationSeconds": 900}))}}),
        json!({"tencent": {"workloadIdentity": with(&tencent_wi, json!({"sessionDurationSeconds": 43200, "audience": "sts.cloud.tencent.com"}))}}),
        json!({"huawei": {"secretRef": secret}}),
        json!({"huawei": {"workloadIdentity": with(&huawei_wi, json!({"durationSeconds": 86400, "projectId": "p"}))}}),
    ];
    let account = |name: &str, spec: &Value| -> CloudAccount {
        serde_json::from_value(json!({
            "apiVersion": "clusterscale.io/v1alpha1",
            "kind": "CloudAccount",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("does not fit CloudAccount: {e}: {spec}"))
    };
    let mut failures = Vec::new();
    for (i, (message, spec)) in bad.iter().enumerate() {
        match api
            .create(&dry_run(), &account(&format!("bad-{i}"), spec))
            .await
        {
            Ok(_) => failures.push(format!("admitted {spec}")),
            Err(e) => {
                let (code, got) = refusal(e);
                if code != 422 || !got.contains(message) {
                    failures.push(format!(
                        "{spec}: want 422 with {message:?}, got {code}: {got}"
                    ));
                }
            }
        }
    }
    for (i, spec) in good.iter().enumerate() {
        if let Err(e) = api
            .create(&dry_run(), &account(&format!("good-{i}"), spec))
            .await
        {
            failures.push(format!("refused {spec}: {:?}", refusal(e)));
        }
    }
    eprintln!(
        "CloudAccount admission: {} violations, {} valid accounts",
        bad.len(),
        good.len()
    );
    t.check(failures.is_empty(), || failures.join("\n"));
}
