//! Credentials from the Secret named by `credentialsSecretRef`.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use clusterscale_core::api::{CloudKind, ScaledClusterSpec};
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::provider::SecretKeys;

/// Why credentials could not be read; reported as Degraded/CredentialsMissing.
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
}

/// The Secret a spec refers to, if any.
pub fn secret_name(spec: &ScaledClusterSpec) -> Option<&str> {
    crate::cloud::of(spec)?.secret_name(spec)
}

/// Read the credentials of `spec` from its namespace. Values stay redacted in every output.
pub async fn read(
    client: &Client,
    namespace: &str,
    spec: &ScaledClusterSpec,
) -> Result<Credentials, CredentialsError> {
    let Some(name) = secret_name(spec) else {
        return Ok(Credentials::new("none"));
    };
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
    let mut creds = Credentials::new(format!("Secret {namespace}/{name}"));
    for (key, value) in secret.data.unwrap_or_default() {
        creds.insert(&key, String::from_utf8_lossy(&value.0).into_owned());
    }
    let SecretKeys { sets, expected } =
        crate::cloud::provider(spec.cloud().unwrap_or(CloudKind::Simulated)).secret_keys();
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
