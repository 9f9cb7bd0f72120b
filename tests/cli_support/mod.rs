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

/// Every variable either cloud's client reads for credentials (static
/// keys, workload identity, a kubeconfig); removed before each run.
pub const CREDENTIAL_VARS: &[&str] = &[
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SESSION_TOKEN",
    "TKE_REGION",
    "TKE_PROVIDER_ID",
    "TKE_ROLE_ARN",
    "TKE_WEB_IDENTITY_TOKEN_FILE",
    "TKE_IDENTITY_TOKEN_FILE",
    "CLUSTERSCALE_TENCENT_STS_ENDPOINT",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN_NAME",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_DOMAIN_ID",
    "HUAWEICLOUD_SDK_IAM_ENDPOINT",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
];

/// The fakes' checked-in OIDC test key pair (`clusterscale_fakes::oidc::testing`,
/// which this package may not depend on): the fake verifies tokens with the
/// public half, given by path; [`service_account_token`] signs with the other.
pub const OIDC_PUBLIC_KEY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/fakes/src/oidc/test-key.pub.pem"
);
const OIDC_PRIVATE_KEY: &str = include_str!("../../crates/fakes/src/oidc/test-key.pem");
/// The issuer of `clusterscale_fakes::oidc::testing::ISSUER`.
pub const OIDC_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The ServiceAccount the tokens are for.
pub const OIDC_SUBJECT: &str = "system:serviceaccount:clusterscale:clusterscale";

/// A projected ServiceAccount token for `audience`, valid from 10 s ago for
/// `valid_for` seconds, with the claims of `clusterscale_fakes::oidc::testing::token`.
pub fn service_account_token(audience: &str, valid_for: i64) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": OIDC_ISSUER,
        "sub": OIDC_SUBJECT,
        "aud": [audience],
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + valid_for,
    });
    let key = EncodingKey::from_rsa_pem(OIDC_PRIVATE_KEY.as_bytes()).expect("test key");
    encode(&Header::new(Algorithm::RS256), &claims, &key).expect("signed")
}

/// `clusterscale` with only the credentials in `env`, and quiet logs.
/// Rewrite the manifest at `path` to name CloudAccount `account` in place of
/// its `secret_ref` (the `credentialsSecretRef: {...}` text it has).
pub fn use_account(path: &std::path::Path, secret_ref: &str, account: &str) {
    let text = std::fs::read_to_string(path).expect("the manifest");
    assert!(text.contains(secret_ref), "{secret_ref:?} not in {text}");
    let text = text.replace(secret_ref, &format!("accountRef: {{name: {account}}}"));
    std::fs::write(path, text).expect("the manifest");
}

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
        let mut reader = BufReader::new(stdout);
        let listening = format!("{cloud} listening on ");
        // Lines before it describe what is served (the STS, a fleet); it
        // is the last the fake prints.
        let base = loop {
            let mut line = String::new();
            let read = reader.read_line(&mut line).expect("listening line");
            assert!(read > 0, "the fake exited before listening");
            if let Some(base) = line.trim().strip_prefix(&listening) {
                break base.to_string();
            }
        };
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
