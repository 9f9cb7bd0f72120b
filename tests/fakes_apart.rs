//! The operator's binary (and so its image) never contains the fake clouds:
//! they are the separate `clusterscale-fake-cloud` binary of `crates/fakes`,
//! and the operator's package does not depend on `clusterscale-fakes` at all.
//! Checked on the bytes of both binaries, with markers only
//! `clusterscale-fakes` has: its control route, its demo secret key and its
//! listening message; and on the package's declared dependencies.

#[path = "support/fake_cloud.rs"]
mod fake_cloud;

use fake_cloud::{fake_cloud_bin, FAKES_PACKAGE};

const OPERATOR: &str = env!("CARGO_BIN_EXE_clusterscale");

fn markers() -> [&'static str; 3] {
    [
        "/_fake/journal",
        // `clusterscale_fakes::huawei::DEMO_SECRET_KEY` (this package does not
        // link the fakes; the second test shows the fake binary holds it).
        "HwFakeSecretKey0000000000000000000000001",
        "fake Huawei MRS + IAM listening",
    ]
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_operator_binary_holds_no_fake_cloud() {
    let operator = std::fs::read(OPERATOR).expect("the operator binary");
    for m in markers() {
        assert!(
            !contains(&operator, m),
            "{OPERATOR} contains {m:?}: the fakes were linked into the operator"
        );
    }
}

#[test]
fn the_fake_cloud_binary_holds_them() {
    // The markers are real: the binary that should have them does.
    let path = fake_cloud_bin();
    let fakes = std::fs::read(path).expect("the fake-cloud binary");
    for m in markers() {
        assert!(contains(&fakes, m), "{} lacks {m:?}", path.display());
    }
}

#[test]
fn the_operator_package_does_not_depend_on_the_fakes() {
    let out = fake_cloud::cargo()
        .current_dir(fake_cloud::WORKSPACE)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let operator = packages
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME"))
        .expect("the operator's package in the metadata");
    let deps: Vec<(&str, &str)> = operator["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default(),
                d["kind"].as_str().unwrap_or("normal"),
            )
        })
        .collect();
    assert!(
        deps.iter().any(|(name, _)| *name == "clusterscale-core"),
        "the metadata lists the operator's dependencies: {deps:?}"
    );
    let fakes: Vec<_> = deps.iter().filter(|(n, _)| *n == FAKES_PACKAGE).collect();
    assert!(
        fakes.is_empty(),
        "`clusterscale` depends on {FAKES_PACKAGE} ({fakes:?}); run the fakes as the {} process instead",
        fake_cloud::FAKE_CLOUD
    );
    assert!(
        packages.iter().any(|p| p["name"] == FAKES_PACKAGE),
        "{FAKES_PACKAGE} is in the workspace"
    );
}
