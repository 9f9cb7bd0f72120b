//! Credentials from a Secret: the one named by `credentialsSecretRef` (in
//! the ScaledCluster's namespace), or by a CloudAccount's `secretRef`.
//!
//! Where the operator may read Secrets is [`SecretScope`]: everywhere it
//! watches (`--secrets=cluster-wide`), or only in its own namespace
//! (`--secrets=namespaced`, the chart's `rbac.secrets: namespaced`). A
//! Secret outside the scope is never requested: the RBAC would refuse it
//! anyway, and the refusal says less than [`CredentialsError::OutOfScope`].

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use clusterscale_core::api::{CloudKind, ScaledClusterSpec};
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::provider::SecretKeys;

/// Which Secrets the operator reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretScope {
    /// Any namespace its RBAC allows (the namespaces it watches).
    ClusterWide,
    /// Only this namespace: the operator's own.
    Namespaced(String),
}

impl SecretScope {
    /// Whether a Secret in `namespace` may be read.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            SecretScope::ClusterWide => true,
            SecretScope::Namespaced(own) => own == namespace,
        }
    }
}

/// Why credentials could not be read; reported as Degraded/CredentialsMissing
/// (or AccountNotReady, for a CloudAccount's Secret).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} lacks key(s) {missing}; expected {expected}")]
    MissingKeys {
        namespace: String,
        name: String,
        missing: String,
        expected: &'static str,
    },
    #[error("reading Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "Secret {namespace}/{name} is not read: the operator reads Secrets only in its own namespace {own} (--secrets=namespaced, the chart's rbac.secrets: namespaced); keep the keys in a Secret there and name it from a CloudAccount (spec.*.accountRef), or install with rbac.secrets=clusterWide"
    )]
    OutOfScope {
        namespace: String,
        name: String,
        own: String,
    },
}

/// The Secret a spec refers to, if any.
pub fn secret_name(spec: &ScaledClusterSpec) -> Option<&str> {
    crate::cloud::of(spec)?.secret_name(spec)
}

/// The Secret keys of `kind`'s credentials.
pub fn keys_of(kind: CloudKind) -> SecretKeys {
    crate::cloud::provider(kind).secret_keys()
}

/// Read the credentials of `spec` from its namespace (none when it names no
/// Secret). Values stay redacted in every output.
pub async fn read(
    client: &Client,
    scope: &SecretScope,
    namespace: &str,
    spec: &ScaledClusterSpec,
) -> Result<Credentials, CredentialsError> {
    let Some(name) = secret_name(spec) else {
        return Ok(Credentials::new("none"));
    };
    let keys = keys_of(spec.cloud().unwrap_or(CloudKind::Simulated));
    read_secret(client, scope, namespace, name, keys, "").await
}

/// Read Secret `namespace/name` as credentials with one complete set of
/// `keys`; `origin` goes before the Secret in the credentials' source (a
/// CloudAccount's name).
pub async fn read_secret(
    client: &Client,
    scope: &SecretScope,
    namespace: &str,
    name: &str,
    keys: SecretKeys,
    origin: &str,
) -> Result<Credentials, CredentialsError> {
    if let (false, SecretScope::Namespaced(own)) = (scope.allows(namespace), scope) {
        return Err(CredentialsError::OutOfScope {
            namespace: namespace.into(),
            name: name.into(),
            own: own.clone(),
        });
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(CredentialsError::NotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        }
        Err(source) => {
            return Err(CredentialsError::Api {
                namespace: namespace.into(),
                name: name.into(),
                source,
            })
        }
    };
    let mut creds = Credentials::new(format!("{origin}Secret {namespace}/{name}"));
    for (key, value) in secret.data.unwrap_or_default() {
        creds.insert(&key, String::from_utf8_lossy(&value.0).into_owned());
    }
    let SecretKeys { sets, expected } = keys;
    if !sets.is_empty() && !sets.iter().any(|set| set.iter().all(|k| creds.has(k))) {
        let first = sets[0];
        let missing: Vec<&str> = first.iter().copied().filter(|k| !creds.has(k)).collect();
        return Err(CredentialsError::MissingKeys {
            namespace: namespace.into(),
            name: name.into(),
            missing: missing.join(", "),
            expected,
        });
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_scope_allows_only_its_own_namespace() {
        let scope = SecretScope::Namespaced("clusterscale-system".into());
        assert!(scope.allows("clusterscale-system"));
        assert!(!scope.allows("data"));
        assert!(SecretScope::ClusterWide.allows("data"));
    }
}
