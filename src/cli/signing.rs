//! Where the keys that sign `plan` and `apply`'s calls come from:
//!
//! 1. `--account FILE`, a CloudAccount manifest: its workload identity (the
//!    token file exchanged for temporary keys), or its `secretRef` (the
//!    Secret read through the user's kubeconfig);
//! 2. else the static keys of the environment variables the vendors' SDKs
//!    read (`TENCENTCLOUD_SECRET_ID`, `HUAWEICLOUD_SDK_AK`, ...): first, as
//!    in the SDKs' default credential chains;
//! 3. else the workload identity those SDKs read from the environment
//!    (`TKE_ROLE_ARN`, `HUAWEICLOUD_SDK_IDP_ID`, ...).
//!
//! Every refusal here is bad input (exit 2) and comes before any cloud
//! call, but an unreachable apiserver (exit 1). A refused exchange is
//! found by [`fetch`], which the CLI calls before its first cloud request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::api::account::NamespacedSecretRef;
use clusterscale_core::api::{CloudKind, ScaledCluster};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::keys::KeySource;
use clusterscale_core::cloud::provider::{ConnectOptions, Provider};
use clusterscale_core::manifest;

use super::EXIT_BAD_INPUT;
use crate::controller::reconcile::secrets::{self, CredentialsError, SecretScope};

/// How long one request to the apiserver (reading a CloudAccount's Secret) may take.
const KUBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's credentials: static keys in `creds`, or the shared `keys`
/// of a workload identity (then `creds` is not read).
pub struct Signing {
    pub creds: Credentials,
    pub keys: Option<Arc<KeySource>>,
}

impl Signing {
    fn fixed(creds: Credentials) -> Self {
        Self { creds, keys: None }
    }

    fn exchanged(origin: String, keys: KeySource) -> Self {
        Self {
            creds: Credentials::new(origin),
            keys: Some(Arc::new(keys)),
        }
    }
}

/// The keys for `cluster` (read from `file`), from `account` or the
/// environment; `Err` is the exit code, the reason printed.
pub async fn resolve(
    cluster: &ScaledCluster,
    file: &Path,
    account: Option<&Path>,
    clock: &Arc<dyn Clock>,
    options: &ConnectOptions,
) -> Result<Signing, i32> {
    let Some(provider) = crate::cloud::of(&cluster.spec) else {
        // No cloud block: the client's own error says so.
        return Ok(Signing::fixed(Credentials::new("none")));
    };
    if let Some(account) = account {
        return from_account(cluster, provider, account, clock, options).await;
    }
    let creds = provider.credentials_from_env();
    if creds.keys().next().is_some() {
        return Ok(Signing::fixed(creds));
    }
    let bad = |message: String| {
        eprintln!("error: {message}");
        EXIT_BAD_INPUT
    };
    let kind = provider.kind();
    match provider.exchange_from_env(options.http.clone(), clock.clone()) {
        Err(e) => Err(bad(format!("{kind} workload identity from the environment: {e}"))),
        Ok(Some(exchange)) => Ok(Signing::exchanged(
            "workload identity from the environment".into(),
            KeySource::exchanged(exchange, clock.clone()),
        )),
        Ok(None) => match provider.account_name(&cluster.spec) {
            // The CLI reads no CloudAccount from a cluster: it must be given one.
            Some(name) => Err(bad(format!(
                "{}: spec.{kind}.accountRef names CloudAccount {name}, and no credentials are set: pass its manifest with --account FILE, or set {}",
                file.display(),
                provider.environment_help()
            ))),
            // The client names the missing key.
            None => Ok(Signing::fixed(creds)),
        },
    }
}

async fn from_account(
    cluster: &ScaledCluster,
    provider: &dyn Provider,
    file: &Path,
    clock: &Arc<dyn Clock>,
    options: &ConnectOptions,
) -> Result<Signing, i32> {
    let bad = |message: String| {
        eprintln!("error: {message}");
        EXIT_BAD_INPUT
    };
    let account = manifest::load_account(file).map_err(|e| bad(e.to_string()))?;
    let shown = file.display();
    let name = account.metadata.name.as_deref().unwrap_or_default();
    let kind = provider.kind();
    match account.spec.cloud() {
        Some(k) if k == kind => {}
        other => {
            return Err(bad(format!(
                "{shown}: CloudAccount {name} is {} account (spec.{}); the manifest's cluster is on {kind} (spec.{kind}) and needs a {kind} account",
                other.map_or_else(|| "not a valid".to_string(), |k| format!("a {k}")),
                other.map_or_else(|| "tencent or spec.huawei".to_string(), |k| k.to_string()),
            )))
        }
    }
    if let Some(wanted) = provider.account_name(&cluster.spec) {
        if wanted != name {
            return Err(bad(format!(
                "{shown}: CloudAccount {name:?} (metadata.name) is not the one the manifest names (spec.{kind}.accountRef.name: {wanted:?})"
            )));
        }
    }
    if let Some(secret) = account.spec.secret_ref() {
        let creds = read_secret(&shown.to_string(), name, kind, secret).await?;
        return Ok(Signing::fixed(creds));
    }
    match provider.account_exchange(&account.spec, options.http.clone(), clock.clone()) {
        Ok(Some(exchange)) => Ok(Signing::exchanged(
            format!("CloudAccount {name}"),
            KeySource::exchanged(exchange, clock.clone()),
        )),
        Ok(None) => Err(bad(format!(
            "{shown}: CloudAccount {name}: spec.{kind} sets neither secretRef nor workloadIdentity"
        ))),
        Err(e) => Err(bad(format!(
            "{shown}: CloudAccount {name} (spec.{kind}.workloadIdentity): {e}"
        ))),
    }
}

/// The Secret of a `secretRef` account, through the user's kubeconfig (or
/// in-cluster config), as the operator reads it with `--secrets=cluster-wide`.
async fn read_secret(
    file: &str,
    name: &str,
    kind: CloudKind,
    secret: &NamespacedSecretRef,
) -> Result<Credentials, i32> {
    let what = format!(
        "{file}: CloudAccount {name}: Secret {}/{} (spec.{kind}.secretRef)",
        secret.namespace, secret.name
    );
    let client = crate::controller::client::bounded_client(KUBE_TIMEOUT)
        .await
        .map_err(|e| {
            eprintln!("error: {what} is read through a kubeconfig, and none can be used: {e}");
            EXIT_BAD_INPUT
        })?;
    secrets::read_secret(
        &client,
        &SecretScope::ClusterWide,
        &secret.namespace,
        &secret.name,
        secrets::keys_of(kind),
        &format!("CloudAccount {name}: "),
    )
    .await
    .map_err(|e| {
        eprintln!("error: {file}: CloudAccount {name}: {e} (through the kubeconfig's cluster)");
        match e {
            // The apiserver did not answer: maybe later it will.
            CredentialsError::Api { .. } => 1,
            _ => EXIT_BAD_INPUT,
        }
    })
}

/// The first keys of a workload identity, before any cloud call: a refused
/// exchange (wrong audience, expired token, no token file) is reported as
/// the cloud's error, with its code and request id, and nothing is sent to
/// EMR or MRS. Exit code 1, as other cloud errors.
pub async fn fetch(signing: &Signing) -> Result<(), i32> {
    let Some(keys) = &signing.keys else {
        return Ok(());
    };
    keys.keys().await.map(drop).map_err(|e| {
        eprintln!(
            "error: {} ({}): {}",
            signing.creds.source,
            keys.report().identity,
            super::drive::describe_error(&e)
        );
        1
    })
}
