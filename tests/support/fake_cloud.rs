//! The `clusterscale-fake-cloud` binary, for the root's tests and benches.
//!
//! It is a binary of `crates/fakes`, not of this package (which does not
//! depend on the fakes at all), so Cargo gives no `CARGO_BIN_EXE_` path for
//! it. [`fake_cloud_bin`] builds it, once per process, with the cargo that
//! runs the tests, into the target directory and profile of the running test
//! (or bench) executable, and returns its path.
//!
//! Included with `#[path]` by `tests/support/mod.rs` (and so by
//! `benches/scale.rs`), `tests/cli_support/mod.rs` and `tests/fakes_apart.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fakes' package and binary names.
pub const FAKES_PACKAGE: &str = "clusterscale-fakes";
pub const FAKE_CLOUD: &str = "clusterscale-fake-cloud";

/// The workspace root (this package's directory).
pub const WORKSPACE: &str = env!("CARGO_MANIFEST_DIR");

/// The cargo running the tests (`$CARGO`), else `cargo` from `PATH`, without
/// the variables Cargo sets for the test process itself (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_NAME`, ...): build scripts that watch them (ring's does) would
/// see them change and rebuild half the dependency graph, here and again in
/// the next plain `cargo build`.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_for_this_process = matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        ) || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_");
        if set_for_this_process {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Path of `clusterscale-fake-cloud`, built on first call (`cargo build -p
/// clusterscale-fakes --bin clusterscale-fake-cloud`, with the running
/// executable's profile and target directory); panics if it cannot be built.
pub fn fake_cloud_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build)
}

/// `(target dir, profile dir name)` of the running executable: tests and
/// benches live in `<target dir>/<profile>/deps/`.
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe.parent().expect("the test executable's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().expect("the profile directory");
    }
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_else(|| panic!("no profile directory in {}", exe.display()))
        .to_string();
    let target = dir
        .parent()
        .unwrap_or_else(|| panic!("no target directory in {}", exe.display()))
        .to_path_buf();
    (target, profile)
}

fn build() -> PathBuf {
    let (target, profile) = target_and_profile();
    let mut cmd = cargo();
    cmd.current_dir(WORKSPACE)
        .args(["build", "--quiet", "-p", FAKES_PACKAGE, "--bin", FAKE_CLOUD])
        .arg("--target-dir")
        .arg(&target);
    // `debug` is the `dev` profile's directory (tests); `release` is the
    // `release` and `bench` profiles' (`cargo bench`); any other is its profile's name.
    if profile != "debug" {
        cmd.args(["--profile", &profile]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {FAKE_CLOUD}: {e}"));
    assert!(
        status.success(),
        "building {FAKE_CLOUD} failed ({status}): {cmd:?} (run it by hand to see why)"
    );
    let bin = target
        .join(&profile)
        .join(format!("{FAKE_CLOUD}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{cmd:?} succeeded but {} does not exist",
        bin.display()
    );
    bin
}
