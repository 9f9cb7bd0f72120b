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
        let cluster = clusterscale::manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(cluster.spec.cloud().is_some(), "{}", path.display());
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected the quickstart, tencent and huawei examples, found {seen}"
    );
}
