//! Reading `ScaledCluster` manifests from files, for the CLI.

use std::path::Path;

use crate::api::validate::{describe, validate_spec};
use crate::api::ScaledCluster;
use kube::Resource;

/// Bad input: the CLI exits 2 with this message.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a valid ScaledCluster manifest: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid spec: {message}")]
    Invalid { path: String, message: String },
}

/// Read the first `ScaledCluster` document of a YAML file and check every rule.
pub fn load(path: &Path) -> Result<ScaledCluster, InputError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: shown.clone(),
        source,
    })?;
    let cluster = parse(&text).map_err(|message| InputError::Parse {
        path: shown.clone(),
        message,
    })?;
    let violations = validate_spec(&cluster.spec);
    if !violations.is_empty() {
        return Err(InputError::Invalid {
            path: shown,
            message: describe(&violations),
        });
    }
    Ok(cluster)
}

/// Parse the first document whose kind is ScaledCluster.
pub fn parse(text: &str) -> Result<ScaledCluster, String> {
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != ScaledCluster::kind(&()) {
            continue;
        }
        // Name the offending field: `spec.core.count: invalid type: ...`.
        return serde_path_to_error::deserialize::<_, ScaledCluster>(value).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        });
    }
    Err("no document with kind: ScaledCluster".into())
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_field() {
        let bad = "apiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {name: x}\nspec:\n  simulated: {}\n  core: {count: many}\n";
        let e = parse(bad).unwrap_err();
        assert!(e.starts_with("spec.core.count: "), "{e}");
        let missing = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        assert!(parse(missing).unwrap_err().contains("kind: ScaledCluster"));
    }

    #[test]
    fn picks_the_scaledcluster_document() {
        let text = "kind: Secret\n---\napiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {name: a}\nspec:\n  simulated: {}\n  core: {count: 4}\n";
        let c = parse(text).unwrap();
        assert_eq!(c.spec.core.count, 4);
        assert_eq!(c.spec.task.max, 500, "defaults apply");
        assert!(c.spec.scale_in.allowed);
    }
}
