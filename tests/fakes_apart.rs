//! The operator's binary (and so its image) never contains the fake clouds:
//! they are the separate `clusterscale-fake-cloud` binary. Checked on the
//! bytes of both binaries, with markers only `clusterscale-fakes` has: its
//! control route, its demo secret key and its listening message.

const OPERATOR: &str = env!("CARGO_BIN_EXE_clusterscale");
const FAKES: &str = env!("CARGO_BIN_EXE_clusterscale-fake-cloud");

fn markers() -> [&'static str; 3] {
    [
        "/_fake/journal",
        clusterscale_fakes::huawei::DEMO_SECRET_KEY,
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
    let fakes = std::fs::read(FAKES).expect("the fake-cloud binary");
    for m in markers() {
        assert!(contains(&fakes, m), "{FAKES} lacks {m:?}");
    }
}
