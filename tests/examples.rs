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

/// Each cloud example ships its Secret (same name and namespace, a complete key
/// set), and the HPA and KEDA examples target a ScaledCluster that exists.
#[test]
fn examples_ship_their_secrets_and_autoscalers_target_scaledclusters() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut clusters = Vec::new();
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
            clusters.push((
                ns.to_string(),
                s(doc, &["metadata", "name"]).unwrap().to_string(),
            ));
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
    let mut autoscalers = 0;
    for entry in std::fs::read_dir(root.join("autoscaling")).unwrap() {
        let path = entry.unwrap().path();
        for doc in documents(&path) {
            let target = doc
                .get("spec")
                .and_then(|s| s.get("scaleTargetRef"))
                .expect("scaleTargetRef");
            assert_eq!(
                s(target, &["apiVersion"]),
                Some("clusterscale.io/v1alpha1"),
                "{}",
                path.display()
            );
            assert_eq!(
                s(target, &["kind"]),
                Some("ScaledCluster"),
                "{}",
                path.display()
            );
            let key = (
                s(&doc, &["metadata", "namespace"]).unwrap().to_string(),
                s(target, &["name"]).unwrap().to_string(),
            );
            assert!(
                clusters.contains(&key),
                "{}: no example ScaledCluster {key:?}",
                path.display()
            );
            autoscalers += 1;
        }
    }
    assert_eq!(autoscalers, 2, "an HPA and a KEDA ScaledObject");
}
