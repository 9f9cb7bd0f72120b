//! Shared by the CLI process tests: the binary with a clean credential
//! environment, and a `clusterscale-fake-cloud` process with its journal.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clusterscale");
#[path = "../support/fake_cloud.rs"]
mod fake_cloud;
/// The fake clouds: `clusterscale-fake-cloud`, a binary of `crates/fakes`,
/// never part of `clusterscale`; built on first use.
pub use fake_cloud::fake_cloud_bin;

/// Every variable either cloud's client reads for credentials; removed before each run.
pub const CREDENTIAL_VARS: &[&str] = &[
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SESSION_TOKEN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN_NAME",
];

/// `clusterscale` with only the credentials in `env`, and quiet logs.
pub fn command(env: &[(&str, &str)]) -> Command {
    command_of(BIN, env)
}

/// `clusterscale-fake-cloud` with only the credentials in `env`, and quiet logs.
pub fn fake_command(env: &[(&str, &str)]) -> Command {
    command_of(fake_cloud_bin(), env)
}

fn command_of(bin: impl AsRef<std::ffi::OsStr>, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin);
    for v in CREDENTIAL_VARS {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Run `cmd` to completion; its stdout and stderr must not contain any of
/// `secrets` (the secret values the test gave it).
pub fn output_without(cmd: &mut Command, secrets: &[&str]) -> std::process::Output {
    let out = cmd.output().expect("clusterscale runs");
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            if let Some(line) = text.lines().find(|l| l.contains(s)) {
                panic!("a secret value appears in clusterscale's {stream}:\n{line}");
            }
        }
    }
    out
}

/// A running `clusterscale-fake-cloud --<cloud> 127.0.0.1:0`, killed when dropped.
pub struct FakeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Holds the journal and the test's manifests.
    pub dir: tempfile::TempDir,
    cloud: &'static str,
}

impl FakeProcess {
    /// Start the fake for `cloud` ("tencent" or "huawei") with `args` after
    /// the address, accepting the credentials in `env`.
    pub fn start(cloud: &'static str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = fake_command(env)
            .args([&format!("--{cloud}"), "127.0.0.1:0"])
            .args(args)
            .arg("--journal-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-cloud starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("listening line");
        let base = line
            .trim()
            .strip_prefix(&format!("{cloud} listening on "))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            base,
            dir,
            cloud,
        }
    }

    /// Every journal line so far.
    pub fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join(format!("{}.jsonl", self.cloud)))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
            .collect()
    }

    /// Journal lines of requests that changed (or started changing) the cluster.
    pub fn writes(&self) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|l| l["write"] == true)
            .collect()
    }

    /// Write a file into the test's directory.
    pub fn write_file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("file written");
        path
    }

    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
