//! Every manifest in examples/ is one users can copy: it parses and passes every rule.

#[test]
fn every_example_is_a_valid_scaledcluster() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let cluster = clusterscale_core::manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(cluster.spec.cloud().is_some(), "{}", path.display());
        assert_eq!(
            clusterscale::cloud::validate(&cluster.spec),
            [],
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(
        seen >= 6,
        "expected the quickstart, pools, tencent, tencent-spot-pool, huawei and huawei-custom examples, found {seen}"
    );
}

/// The EMR spot-pool example is a Tencent cluster with a SPOTPAID pool that
/// names its instance type and YARN label, and the Tencent rules accept it.
#[test]
fn tencent_spot_pool_example_has_a_spotpaid_pool() {
    use clusterscale_core::api::TencentChargeType;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tencent-spot-pool.yaml");
    let cluster = clusterscale_core::manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(cluster.spec.tencent.is_some());
    let spot = cluster.spec.pool("spot").expect("pool spot");
    let block = spot.tencent.as_ref().expect("its tencent block");
    assert_eq!(block.charge_type, TencentChargeType::Spotpaid);
    assert!(block.instance_type.is_some() && block.yarn_node_label.is_some());
}

/// The custom MRS example names its groups and a pool on a group of its own.
#[test]
fn the_huawei_custom_example_names_its_node_groups() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/huawei-custom.yaml");
    let cluster = clusterscale_core::manifest::load(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("{e}"));
    let huawei = cluster.spec.huawei.as_ref().expect("a huawei cluster");
    assert_eq!(huawei.core_node_group.as_deref(), Some("node_group_2"));
    assert_eq!(huawei.task_node_group.as_deref(), Some("node_group_3"));
    let pool = &cluster.spec.task_pools[0];
    assert_eq!(
        pool.huawei.as_ref().map(|h| h.node_group.as_str()),
        Some("node_group_4")
    );
    assert_eq!(clusterscale::cloud::validate(&cluster.spec), []);
}

fn documents(path: &std::path::Path) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).expect("readable example");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml_ng::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a serde_yaml_ng::Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(*p)?;
    }
    v.as_str()
}

/// Every ScaledCluster of examples/*.yaml, by (namespace, name), with its
/// `[task.min, task.max]`.
fn example_clusters() -> std::collections::BTreeMap<(String, String), (i32, i32)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut clusters = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in documents(&path)
            .into_iter()
            .filter(|d| s(d, &["kind"]) == Some("ScaledCluster"))
        {
            let cluster: clusterscale_core::api::ScaledCluster =
                serde_yaml_ng::from_value(doc.clone()).expect("a ScaledCluster");
            let key = (
                s(&doc, &["metadata", "namespace"]).unwrap().to_string(),
                s(&doc, &["metadata", "name"]).unwrap().to_string(),
            );
            clusters.insert(key, (cluster.spec.task.min, cluster.spec.task.max));
        }
    }
    clusters
}

/// Each cloud example ships its Secret (same name and namespace, a complete key
/// set).
#[test]
fn examples_ship_their_secrets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let docs = documents(&path);
        for doc in docs
            .iter()
            .filter(|d| s(d, &["kind"]) == Some("ScaledCluster"))
        {
            let ns = s(doc, &["metadata", "namespace"]).unwrap();
            // The keys are the provider's own: the ones the controller reads.
            let cluster: clusterscale_core::api::ScaledCluster =
                serde_yaml_ng::from_value(doc.clone()).expect("a ScaledCluster");
            let provider = clusterscale::cloud::of(&cluster.spec).expect("one cloud");
            if let Some(name) = provider.secret_name(&cluster.spec) {
                let sets = provider.secret_keys().sets;
                let secret = docs
                    .iter()
                    .find(|d| {
                        s(d, &["kind"]) == Some("Secret")
                            && s(d, &["metadata", "name"]) == Some(name)
                            && s(d, &["metadata", "namespace"]) == Some(ns)
                    })
                    .unwrap_or_else(|| panic!("{}: no Secret {ns}/{name}", path.display()));
                let data = secret.get("stringData").expect("stringData");
                assert!(
                    sets.iter().any(|set| set
                        .iter()
                        .all(|k| data.get(*k).and_then(|v| v.as_str()).is_some())),
                    "{}: Secret {name} has no complete key set",
                    path.display()
                );
            }
        }
    }
}

fn int(v: &serde_yaml_ng::Value, key: &str) -> Option<i64> {
    v.get(key).map(|n| {
        n.as_i64()
            .unwrap_or_else(|| panic!("{key} is not a whole number: {n:?}"))
    })
}

/// The trigger names a KEDA `scalingModifiers.formula` reads: its identifiers
/// that are neither a function called (`max(`), a member (`.x`), a keyword
/// of the expression language, nor a variable the formula binds with `let`.
fn formula_names(formula: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "not",
        "in",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
        "let",
        "nil",
        "true",
        "false",
        "if",
        "else",
    ];
    let chars: Vec<char> = formula.chars().collect();
    let mut names = Vec::new();
    let mut bound = Vec::new();
    let mut previous = ' ';
    let mut after_let = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string literal: skip to its closing quote.
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            previous = c;
            continue;
        }
        if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "._".contains(chars[i])) {
                i += 1;
            }
            previous = '0';
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let begin = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[begin..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if after_let {
                bound.push(word.clone());
                after_let = false;
            } else if word == "let" {
                after_let = true;
            } else if next != Some('(')
                && previous != '.'
                && !KEYWORDS.contains(&word.as_str())
                && !bound.contains(&word)
                && !names.contains(&word)
            {
                names.push(word);
            }
            previous = 'a';
            continue;
        }
        if !c.is_whitespace() {
            previous = c;
        }
        i += 1;
    }
    names
}

#[test]
fn formula_names_are_the_variables_only() {
    assert_eq!(
        formula_names("max(business_hours, (allocated_mb + pending_mb) / 65536 - 5, 0)"),
        ["business_hours", "allocated_mb", "pending_mb"]
    );
    assert_eq!(
        formula_names("float(a > 1.5e3 ? b : c.d) + 'x y' + len(\"e\")"),
        ["a", "b", "c"]
    );
    assert_eq!(
        formula_names("let v = (q ?? 0); v == nil ? nil : v * 2"),
        ["q"]
    );
}

/// Every recipe in examples/autoscaling/ is an HPA or a KEDA ScaledObject
/// that targets an example ScaledCluster through its scale subresource,
/// within that cluster's `[task.min, task.max]` (else the cluster would
/// clamp), and each ScaledObject is one KEDA would act on as its comments
/// say: no cooldownPeriod where it does nothing, and a formula that reads
/// exactly the object's own triggers.
#[test]
fn autoscaling_recipes_target_example_scaledclusters() {
    let clusters = example_clusters();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/autoscaling");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.display().to_string();
        assert_eq!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml"),
            "{file}: only YAML recipes here"
        );
        for doc in documents(&path) {
            let kind = s(&doc, &["kind"]).unwrap_or_else(|| panic!("{file}: no kind"));
            let api_version = s(&doc, &["apiVersion"]);
            match kind {
                "HorizontalPodAutoscaler" => {
                    assert_eq!(api_version, Some("autoscaling/v2"), "{file}")
                }
                "ScaledObject" => assert_eq!(api_version, Some("keda.sh/v1alpha1"), "{file}"),
                other => panic!("{file}: {other} is not an autoscaler"),
            }
            let spec = doc.get("spec").unwrap_or_else(|| panic!("{file}: no spec"));
            let target = spec
                .get("scaleTargetRef")
                .unwrap_or_else(|| panic!("{file}: no scaleTargetRef"));
            assert_eq!(
                s(target, &["apiVersion"]),
                Some("clusterscale.io/v1alpha1"),
                "{file}"
            );
            assert_eq!(s(target, &["kind"]), Some("ScaledCluster"), "{file}");
            let ns = s(&doc, &["metadata", "namespace"])
                .unwrap_or_else(|| panic!("{file}: no namespace"));
            let key = (ns.to_string(), s(target, &["name"]).unwrap().to_string());
            let &(task_min, task_max) = clusters
                .get(&key)
                .unwrap_or_else(|| panic!("{file}: no example ScaledCluster {key:?}"));
            let name = s(&doc, &["metadata", "name"]).unwrap_or_else(|| panic!("{file}: no name"));
            assert!(
                !names.contains(&name.to_string()),
                "{file}: {name} is the name of another recipe"
            );
            names.push(name.to_string());

            // The bounds, with KEDA's defaults (min 0, max 100).
            let (min, max) = if kind == "HorizontalPodAutoscaler" {
                (
                    int(spec, "minReplicas").unwrap_or(1),
                    int(spec, "maxReplicas").unwrap(),
                )
            } else {
                (
                    int(spec, "minReplicaCount").unwrap_or(0),
                    int(spec, "maxReplicaCount").unwrap_or(100),
                )
            };
            assert!(
                i64::from(task_min) <= min && max <= i64::from(task_max),
                "{file}: [{min}, {max}] is not within the ScaledCluster's [task.min {task_min}, task.max {task_max}]"
            );
            if kind == "ScaledObject" {
                check_scaled_object(&file, spec, min);
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "analytics-task-cron",
            "analytics-task-cron-and-load",
            "analytics-task-external",
            "analytics-task-prometheus",
            "analytics-task-yarn",
        ],
        "the cron, YARN (metrics-api), Prometheus, cron-and-load and plain-HPA recipes"
    );
}

fn check_scaled_object(file: &str, spec: &serde_yaml_ng::Value, min: i64) {
    // KEDA applies cooldownPeriod only to scaling to zero (or to the idle
    // count): with minReplicaCount > 0 and no idleReplicaCount it is inert.
    if min > 0 && spec.get("idleReplicaCount").is_none() {
        assert!(
            spec.get("cooldownPeriod").is_none(),
            "{file}: cooldownPeriod does nothing with minReplicaCount {min} > 0"
        );
    }
    let triggers = spec
        .get("triggers")
        .and_then(|t| t.as_sequence())
        .unwrap_or_else(|| panic!("{file}: no triggers"));
    assert!(!triggers.is_empty(), "{file}: no triggers");
    let mut trigger_names = Vec::new();
    for t in triggers {
        let kind = s(t, &["type"]).unwrap_or_else(|| panic!("{file}: a trigger without type"));
        let metadata = t
            .get("metadata")
            .and_then(|m| m.as_mapping())
            .unwrap_or_else(|| panic!("{file}: {kind} trigger without metadata"));
        // The CRD's metadata is a map of strings: "20", not 20.
        for (k, v) in metadata {
            assert!(
                v.as_str().is_some(),
                "{file}: {kind} metadata {k:?} is not a string"
            );
        }
        if let Some(name) = s(t, &["name"]) {
            assert!(
                !trigger_names.contains(&name),
                "{file}: trigger name {name} twice"
            );
            trigger_names.push(name);
        }
    }
    let Some(modifiers) = spec.get("advanced").and_then(|a| a.get("scalingModifiers")) else {
        return;
    };
    let formula = s(modifiers, &["formula"]).unwrap_or_else(|| panic!("{file}: no formula"));
    let target: f64 = s(modifiers, &["target"])
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{file}: scalingModifiers.target is not a number"));
    assert!(
        target > 0.0,
        "{file}: scalingModifiers.target must be above 0"
    );
    assert!(
        matches!(
            s(modifiers, &["metricType"]),
            None | Some("AverageValue") | Some("Value")
        ),
        "{file}: scalingModifiers.metricType"
    );
    let read = formula_names(formula);
    for name in &read {
        assert!(
            trigger_names.contains(&name.as_str()),
            "{file}: the formula reads {name}, which is no trigger's name ({trigger_names:?})"
        );
    }
    // Every trigger feeds the formula: one it does not read would still be
    // queried, and its failure would still fail the composite metric.
    for name in &trigger_names {
        assert!(
            read.iter().any(|r| r == name),
            "{file}: trigger {name} is not in the formula {formula:?}"
        );
    }
    assert_eq!(
        trigger_names.len(),
        triggers.len(),
        "{file}: with a formula, every trigger needs a name"
    );
}
