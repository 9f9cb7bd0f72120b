//! Reading `ScaledCluster` manifests from files, for the CLI.
//!
//! Strict, as `kubectl apply --validate=strict`: a field this clusterscale
//! does not know (a misspelling, or a field of a newer clusterscale) is an
//! error that names every such field by its full path, never silently
//! dropped. Planning as if a block were absent can remove nodes the user
//! meant to keep. The controller is not strict here: the apiserver prunes
//! unknown fields by the CRD's structural schema before it sees them.

use std::path::Path;

use serde::Deserialize;

use crate::api::account::{self, CloudAccount};
use crate::api::validate::{describe, validate_spec};
use crate::api::ScaledCluster;
use kube::Resource;
use serde::de::DeserializeOwned;

/// Bad input: the CLI exits 2 with this message.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a valid {kind} manifest: {message}")]
    Parse {
        path: String,
        /// `ScaledCluster`, `CloudAccount`.
        kind: &'static str,
        message: String,
    },
    /// Fields this clusterscale does not know, by full path (`spec.taskPool`,
    /// `spec.tencent.instanceID`), in document order; `also` is the type
    /// error met as well, if any (a misspelled required field is both).
    #[error("{path}: {}", unknown_fields_message(.fields, .also.as_deref()))]
    UnknownFields {
        path: String,
        fields: Vec<String>,
        also: Option<String>,
    },
    #[error("{path}: invalid spec: {message}")]
    Invalid { path: String, message: String },
}

/// Why [`parse`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not YAML, no document of the kind sought, or a value of the wrong
    /// type, with its path: `spec.core.count: invalid type: ...`.
    #[error("{0}")]
    Invalid(String),
    /// See [`InputError::UnknownFields`]. `fields` is never empty. When a
    /// type error stopped the reading too, `fields` lists the unknown fields
    /// met before it.
    #[error("{}", unknown_fields_message(.fields, .also.as_deref()))]
    UnknownFields {
        fields: Vec<String>,
        also: Option<String>,
    },
}

impl ParseError {
    /// The [`InputError`] of this parse error in the ScaledCluster file `path`.
    pub fn in_file(self, path: String) -> InputError {
        self.in_file_of("ScaledCluster", path)
    }

    /// The [`InputError`] of this parse error in the `kind` file `path`.
    pub fn in_file_of(self, kind: &'static str, path: String) -> InputError {
        match self {
            ParseError::Invalid(message) => InputError::Parse {
                path,
                kind,
                message,
            },
            ParseError::UnknownFields { fields, also } => {
                InputError::UnknownFields { path, fields, also }
            }
        }
    }
}

fn unknown_fields_message(fields: &[String], also: Option<&str>) -> String {
    let mut message = format!(
        "unknown field(s) {} (this clusterscale does not know them; a newer one may; remove them or upgrade)",
        fields.join(", ")
    );
    if let Some(also) = also {
        message.push_str("; also ");
        message.push_str(also);
    }
    message
}

/// Read the first `ScaledCluster` document of a YAML file and check every rule.
pub fn load(path: &Path) -> Result<ScaledCluster, InputError> {
    let shown = path.display().to_string();
    let text = read(path)?;
    let cluster = parse(&text).map_err(|e| e.in_file(shown.clone()))?;
    let violations = validate_spec(&cluster.spec);
    if !violations.is_empty() {
        return Err(InputError::Invalid {
            path: shown,
            message: describe(&violations),
        });
    }
    Ok(cluster)
}

/// Read the first `CloudAccount` document of a YAML file (as strictly as a
/// ScaledCluster's) and check the rules the CRD's CEL would
/// ([`account::validate`]).
pub fn load_account(path: &Path) -> Result<CloudAccount, InputError> {
    let shown = path.display().to_string();
    let text = read(path)?;
    let account = parse_account(&text).map_err(|e| e.in_file_of("CloudAccount", shown.clone()))?;
    let violations = account::validate(&account.spec);
    if !violations.is_empty() {
        return Err(InputError::Invalid {
            path: shown,
            message: describe(&violations),
        });
    }
    Ok(account)
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Parse the first document whose kind is ScaledCluster, refusing fields
/// this clusterscale does not know.
pub fn parse(text: &str) -> Result<ScaledCluster, ParseError> {
    parse_kind(text)
}

/// Parse the first document whose kind is CloudAccount, as strictly.
pub fn parse_account(text: &str) -> Result<CloudAccount, ParseError> {
    parse_kind(text)
}

fn parse_kind<K>(text: &str) -> Result<K, ParseError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| ParseError::Invalid(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind != K::kind(&()) {
            continue;
        }
        return parse_strict(value);
    }
    Err(ParseError::Invalid(format!(
        "no document with kind: {}",
        K::kind(&())
    )))
}

/// `serde_ignored` reports every key a `Deserialize` impl skipped, our
/// derived structs' and k8s-openapi's `ObjectMeta`'s alike (both skip through
/// `IgnoredAny`); `serde_path_to_error` names the path of a type error.
fn parse_strict<K: DeserializeOwned>(value: serde_yaml_ng::Value) -> Result<K, ParseError> {
    let mut unknown = Vec::new();
    let mut ignored = |path: serde_ignored::Path| {
        if refused(&path) {
            unknown.push(field_path(&path));
        }
    };
    let de = serde_ignored::Deserializer::new(value, &mut ignored);
    // Name the offending field: `spec.core.count: invalid type: ...`.
    let parsed = serde_path_to_error::deserialize::<_, K>(de).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    });
    match parsed {
        Ok(cluster) if unknown.is_empty() => Ok(cluster),
        Err(message) if unknown.is_empty() => Err(ParseError::Invalid(message)),
        // Unknown fields first: they are the likely cause of a type error
        // (`instanceID` for `instanceId` is also "missing field instanceId").
        parsed => Err(ParseError::UnknownFields {
            fields: unknown,
            also: parsed.err(),
        }),
    }
}

/// Whether a key that the types skipped is an error.
///
/// - `apiVersion` and `kind` are known: the root type's derived
///   `Deserialize` has no field for them. ([`parse`] picks the document by
///   `kind`; `apiVersion` is not checked, as before.)
/// - Anything under `status` is accepted: the CLI never acts on status, and
///   users paste `kubectl get -o yaml` output, whose status a newer
///   controller may have written with fields this one does not know. Status
///   is still parsed, so a value of the wrong type there is an error.
fn refused(path: &serde_ignored::Path) -> bool {
    !matches!(top_key(path), Some("apiVersion" | "kind" | "status"))
}

/// The first key of `path`, the top-level field it is under.
fn top_key<'p>(path: &'p serde_ignored::Path<'_>) -> Option<&'p str> {
    use serde_ignored::Path;
    match path {
        Path::Root => None,
        Path::Map {
            parent: Path::Root,
            key,
        } => Some(key),
        Path::Map { parent, .. }
        | Path::Seq { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => top_key(parent),
    }
}

/// The path as kubectl writes one: `spec.tencent.instanceID`,
/// `metadata.ownerReferences[0].kindd`. (`serde_ignored`'s own `Display`
/// shows an `Option` as a `?` step: `spec.tencent.?.instanceID`.)
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            let key = if key.is_empty() { "\"\"" } else { key.as_str() };
            if parent.is_empty() {
                key.to_string()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\n";

    /// A valid Tencent manifest with `extra` appended to its `spec`.
    fn tencent(extra_spec: &str) -> String {
        format!(
            "{HEAD}metadata: {{name: a, namespace: data}}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: emr-abc
    credentialsSecretRef: {{name: creds}}
  core: {{count: 3}}
{extra_spec}"
        )
    }

    fn unknown(text: &str) -> (Vec<String>, Option<String>) {
        match parse(text) {
            Err(ParseError::UnknownFields { fields, also }) => (fields, also),
            other => panic!("expected unknown fields, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        let bad = format!(
            "{HEAD}metadata: {{name: x}}\nspec:\n  simulated: {{}}\n  core: {{count: many}}\n"
        );
        let e = parse(&bad).unwrap_err();
        assert!(matches!(e, ParseError::Invalid(_)), "{e:?}");
        assert!(e.to_string().starts_with("spec.core.count: "), "{e}");
        let missing = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        assert!(parse(missing)
            .unwrap_err()
            .to_string()
            .contains("kind: ScaledCluster"));
    }

    #[test]
    fn picks_the_scaledcluster_document() {
        let text = format!("kind: Secret\nsurplus: ignored, not ours\n---\n{HEAD}metadata: {{name: a}}\nspec:\n  simulated: {{}}\n  core: {{count: 4}}\n");
        let c = parse(&text).unwrap();
        assert_eq!(c.spec.core.count, 4);
        assert_eq!(c.spec.task.max, 500, "defaults apply");
        assert!(c.spec.scale_in.allowed);
    }

    #[test]
    fn a_valid_manifest_still_parses() {
        let c = parse(&tencent(
            "  task: {count: 2, min: 0, max: 10}\n  scaleIn: {allowed: false, preferNodes: [a]}\n  maxStep: 2\n",
        ))
        .unwrap();
        assert_eq!(c.spec.tencent.as_ref().unwrap().instance_id, "emr-abc");
        assert_eq!(c.spec.task.max, 10);
        assert_eq!(c.spec.scale_in.prefer_nodes, ["a"]);
    }

    #[test]
    fn an_unknown_spec_field_is_refused_with_its_path() {
        let (fields, also) = unknown(&tencent("  nodePools:\n    - {name: gpu, count: 4}\n"));
        assert_eq!(fields, ["spec.nodePools"]);
        assert_eq!(also, None);
        // Inside a pool, too.
        let (fields, also) = unknown(&tencent(
            "  taskPools:\n    - {name: gpu, count: 4, tencent: {chargeType: SPOTPAID, spot: true}}\n",
        ));
        assert_eq!(fields, ["spec.taskPools[0].tencent.spot"]);
        assert_eq!(also, None);
    }

    #[test]
    fn a_misspelled_nested_field_is_named_before_the_missing_one() {
        let text = tencent("").replace("instanceId", "instanceID");
        let (fields, also) = unknown(&text);
        assert_eq!(fields, ["spec.tencent.instanceID"]);
        assert_eq!(
            also.as_deref(),
            Some("spec.tencent: missing field `instanceId`")
        );
        // Beside a correct one, the stray is refused all the same.
        let text = tencent("").replace(
            "instanceId: emr-abc",
            "instanceId: emr-abc\n    instanceID: emr-other",
        );
        assert_eq!(
            unknown(&text),
            (vec!["spec.tencent.instanceID".into()], None)
        );
    }

    #[test]
    fn unknown_metadata_fields_are_refused() {
        // k8s-openapi's ObjectMeta skips unknown keys through IgnoredAny.
        let text = tencent("").replace(
            "metadata: {name: a, namespace: data}",
            "metadata:\n  name: a\n  lables: {app: x}\n  ownerReferences:\n    - {apiVersion: v1, kind: X, name: o, uid: u, kindd: Y}",
        );
        let (fields, _) = unknown(&text);
        assert_eq!(
            fields,
            ["metadata.lables", "metadata.ownerReferences[0].kindd"]
        );
    }

    #[test]
    fn every_unknown_field_is_named_with_the_file() {
        let text = tencent("  taskPool: {count: 4}\n").replace(
            "instanceId: emr-abc",
            "instanceId: emr-abc\n    instanceID: emr-other",
        );
        let e = parse(&text).unwrap_err().in_file("examples/x.yaml".into());
        assert!(
            matches!(&e, InputError::UnknownFields { fields, also: None, .. }
                if fields == &["spec.tencent.instanceID", "spec.taskPool"]),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "examples/x.yaml: unknown field(s) spec.tencent.instanceID, spec.taskPool \
             (this clusterscale does not know them; a newer one may; remove them or upgrade)"
        );
        // With a type error as well, both are told.
        let e = parse(&text.replace("count: 3", "count: three")).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "upgrade); also spec.core.count: invalid type: string \"three\", expected i32"
            ),
            "{e}"
        );
    }

    #[test]
    fn kubectl_get_output_with_unknown_status_keys_parses() {
        // What `kubectl get scl a -o yaml` prints, from a newer controller:
        // every metadata field the apiserver sets, and status keys this
        // clusterscale does not know (accepted: the CLI ignores status).
        let text = format!(
            "{HEAD}metadata:
  name: a
  namespace: data
  uid: 6b0e6f0e-0000-4000-8000-000000000001
  resourceVersion: \"4242\"
  generation: 3
  creationTimestamp: \"2025-01-02T03:04:05Z\"
  labels: {{team: data}}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{\"spec\":{{}}}}'
  finalizers: [clusterscale.io/finalizer]
  managedFields:
    - manager: kubectl
      operation: Apply
      apiVersion: clusterscale.io/v1alpha1
      time: \"2025-01-02T03:04:05Z\"
      fieldsType: FieldsV1
      fieldsV1: {{\"f:spec\": {{\"f:core\": {{}}}}}}
spec:
  simulated: {{}}
  core: {{count: 3}}
status:
  phase: Converged
  observedGeneration: 3
  futureField: {{anything: 1}}
  observed: {{core: 3, task: 0, newerCount: 2}}
  conditions: []
"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.metadata.generation, Some(3));
        let status = c.status.unwrap();
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.observed.unwrap().core, 3);
    }

    #[test]
    fn a_cloud_account_is_read_as_strictly() {
        let head =
            "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {name: prod}\n";
        let a = parse_account(&format!(
            "{}spec:\n  huawei:\n    workloadIdentity: {{idpId: cce, projectId: p}}\n",
            head
        ))
        .unwrap();
        assert_eq!(a.metadata.name.as_deref(), Some("prod"));
        let e = parse_account(&format!(
            "{}spec:\n  tencent:\n    workloadIdentity: {{roleArn: r, providerId: p, region: x, roleARN: y}}\n",
            head
        ))
        .unwrap_err();
        assert_eq!(
            e,
            ParseError::UnknownFields {
                fields: vec!["spec.tencent.workloadIdentity.roleARN".into()],
                also: None
            }
        );
        let e = parse_account(&tencent("")).unwrap_err();
        assert_eq!(
            e,
            ParseError::Invalid("no document with kind: CloudAccount".into())
        );
        let shown = e.in_file_of("CloudAccount", "a.yaml".into()).to_string();
        assert!(
            shown.starts_with("a.yaml: not a valid CloudAccount manifest: "),
            "{shown}"
        );
    }
}
