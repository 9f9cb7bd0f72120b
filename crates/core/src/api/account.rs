//! The `CloudAccount` API (group `clusterscale.io`, version `v1alpha1`,
//! cluster-scoped): where the keys of one cloud account come from, for every
//! `ScaledCluster` that names it (`spec.tencent.accountRef` /
//! `spec.huawei.accountRef`). Either a Secret that lives in one namespace
//! (`secretRef`), or a workload identity: the operator's projected
//! ServiceAccount token, exchanged for temporary keys (Tencent STS
//! `AssumeRoleWithWebIdentity`; Huawei IAM id-token, then `securitytokens`).
//! See `docs/credentials-design.md` for both exchanges.
//!
//! The CRD in `crds/cloudaccount.yaml` is generated from these types
//! (`clusterscale crd`); never edit it by hand.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::validate::Violation;

/// Where the projected ServiceAccount token is read, unless `tokenFile`
/// says otherwise: the path the chart mounts it at.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/clusterscale.io/serviceaccount/token";

/// The keys of one cloud account, shared by every ScaledCluster that names it.
// Several printcolumn(...) entries share keys; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "clusterscale.io",
    version = "v1alpha1",
    kind = "CloudAccount",
    shortname = "ca",
    status = "CloudAccountStatus",
    derive = "PartialEq",
    doc = "The keys of a Tencent Cloud or Huawei Cloud account: a Secret in one namespace, or a workload identity exchanged for temporary keys",
    printcolumn(name = "Cloud", type_ = "string", json_path = ".status.cloud"),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".status.source",
        description = "secretRef or workloadIdentity"
    ),
    printcolumn(
        name = "Users",
        type_ = "integer",
        json_path = ".status.users",
        description = "ScaledClusters that name this account"
    ),
    printcolumn(
        name = "Expires",
        type_ = "date",
        json_path = ".status.keysExpireAt",
        description = "when the current temporary keys expire"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("(has(self.tencent) ? 1 : 0) + (has(self.huawei) ? 1 : 0) == 1")
        .message("spec: exactly one of tencent or huawei must be set"),
)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccountSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tencent: Option<TencentAccount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huawei: Option<HuaweiAccount>,
}

/// A Secret in a namespace of its own; the ScaledClusters that use the
/// account may live in any namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSecretRef {
    /// The Secret's namespace (with the chart's `rbac.secrets: namespaced`,
    /// the operator's own namespace).
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A Tencent Cloud account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.secretRef) ? 1 : 0) + (has(self.workloadIdentity) ? 1 : 0) == 1")
        .message("spec.tencent: exactly one of secretRef or workloadIdentity must be set"),
)]
pub struct TencentAccount {
    /// A Secret with the keys of today's ScaledCluster Secrets: secretId,
    /// secretKey and optional token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NamespacedSecretRef>,
    /// TKE workload identity: STS AssumeRoleWithWebIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<TencentWorkloadIdentity>,
}

/// TKE workload identity (OIDC): the projected token is exchanged for a
/// role's temporary keys with STS `AssumeRoleWithWebIdentity`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TencentWorkloadIdentity {
    /// The CAM role to assume, e.g. qcs::cam::uin/100000000001:roleName/clusterscale.
    #[schemars(length(min = 1))]
    pub role_arn: String,
    /// The CAM OIDC identity provider's id (ProviderId).
    #[schemars(length(min = 1))]
    pub provider_id: String,
    /// The STS region (X-TC-Region), e.g. ap-guangzhou.
    #[schemars(length(min = 1))]
    pub region: String,
    /// How long the temporary keys last, 900 to 43200 seconds.
    #[serde(default = "default_tencent_duration")]
    #[x_kube(validation = Rule::new("self >= 900 && self <= 43200")
        .message("spec.tencent.workloadIdentity.sessionDurationSeconds must be between 900 and 43200"))]
    pub session_duration_seconds: i32,
    /// The projected ServiceAccount token; default /var/run/secrets/clusterscale.io/serviceaccount/token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// The audience the token is issued for: the OIDC provider's client id
    /// (Tencent's default: sts.cloud.tencent.com). The chart's projected
    /// token volume must use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// STS endpoint; default https://sts.tencentcloudapi.com. http:// only for loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

fn default_tencent_duration() -> i32 {
    7200
}

/// A Huawei Cloud account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.secretRef) ? 1 : 0) + (has(self.workloadIdentity) ? 1 : 0) == 1")
        .message("spec.huawei: exactly one of secretRef or workloadIdentity must be set"),
)]
pub struct HuaweiAccount {
    /// A Secret with the keys of today's ScaledCluster Secrets: accessKey +
    /// secretKey (+ securityToken), or the IAM password keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NamespacedSecretRef>,
    /// CCE workload identity: IAM OIDC federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<HuaweiWorkloadIdentity>,
}

/// CCE workload identity (IAM OIDC federation): the projected token buys an
/// IAM token (`POST /v3.0/OS-AUTH/id-token/tokens`, header `X-Idp-Id`),
/// which buys temporary keys (`POST /v3.0/OS-CREDENTIAL/securitytokens`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.domainName) && has(self.domainId))")
        .message("spec.huawei.workloadIdentity: set domainName or domainId, not both"),
)]
pub struct HuaweiWorkloadIdentity {
    /// The IAM identity provider (X-Idp-Id).
    #[schemars(length(min = 1))]
    pub idp_id: String,
    /// The account (domain) name; or domainId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// The account (domain) id; or domainName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    /// The IAM project to scope the token to, e.g. the MRS clusters' project id; default: unscoped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// How long the temporary keys last, 900 to 86400 seconds.
    #[serde(default = "default_huawei_duration")]
    #[x_kube(validation = Rule::new("self >= 900 && self <= 86400")
        .message("spec.huawei.workloadIdentity.durationSeconds must be between 900 and 86400"))]
    pub duration_seconds: i32,
    /// The projected ServiceAccount token; default /var/run/secrets/clusterscale.io/serviceaccount/token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// The audience the token is issued for: the identity provider's client
    /// id. The chart's projected token volume must use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// IAM endpoint; default https://iam.myhuaweicloud.com. http:// only for loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_endpoint: Option<String>,
}

fn default_huawei_duration() -> i32 {
    3600
}

/// What the operator knows of the account. Never a key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccountStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// tencent or huawei.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// secretRef or workloadIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who the keys are for: the Secret, or the role and provider, the IdP
    /// and domain. Never key material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// When the current temporary keys expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_expire_at: Option<Time>,
    /// When temporary keys were last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<Time>,
    /// How many ScaledClusters name this account.
    #[serde(default)]
    pub users: i32,
    /// Ready: the keys can be had (reason: the cloud's code when an exchange is refused).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The CRD as YAML, exactly as `clusterscale crd` prints it and `crds/cloudaccount.yaml` holds it.
impl CloudAccountSpec {
    /// The cloud whose block is set; `None` when none is (the CRD refuses
    /// that, and two).
    pub fn cloud(&self) -> Option<super::CloudKind> {
        match (&self.tencent, &self.huawei) {
            (Some(_), None) => Some(super::CloudKind::Tencent),
            (None, Some(_)) => Some(super::CloudKind::Huawei),
            _ => None,
        }
    }

    /// The Secret of a `secretRef` account.
    pub fn secret_ref(&self) -> Option<&NamespacedSecretRef> {
        match (&self.tencent, &self.huawei) {
            (Some(t), None) => t.secret_ref.as_ref(),
            (None, Some(h)) => h.secret_ref.as_ref(),
            _ => None,
        }
    }

    /// `secretRef` or `workloadIdentity`, as status shows it.
    pub fn source(&self) -> &'static str {
        let workload = self
            .tencent
            .as_ref()
            .is_some_and(|t| t.workload_identity.is_some())
            || self
                .huawei
                .as_ref()
                .is_some_and(|h| h.workload_identity.is_some());
        if workload {
            "workloadIdentity"
        } else {
            "secretRef"
        }
    }
}

/// The rules the CRD's schema and CEL check (the same words), for a
/// manifest that no apiserver has seen: the CLI's `--account FILE`.
pub fn validate(spec: &CloudAccountSpec) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut required = |field: &'static str, value: &str| {
        if value.trim().is_empty() {
            v.push(Violation::new(field, "must not be empty"));
        }
    };
    if let Some(r) = spec.tencent.as_ref().and_then(|t| t.secret_ref.as_ref()) {
        required("spec.tencent.secretRef.namespace", &r.namespace);
        required("spec.tencent.secretRef.name", &r.name);
    }
    if let Some(r) = spec.huawei.as_ref().and_then(|h| h.secret_ref.as_ref()) {
        required("spec.huawei.secretRef.namespace", &r.namespace);
        required("spec.huawei.secretRef.name", &r.name);
    }
    if let Some(w) = spec
        .tencent
        .as_ref()
        .and_then(|t| t.workload_identity.as_ref())
    {
        required("spec.tencent.workloadIdentity.roleArn", &w.role_arn);
        required("spec.tencent.workloadIdentity.providerId", &w.provider_id);
        required("spec.tencent.workloadIdentity.region", &w.region);
    }
    if let Some(w) = spec
        .huawei
        .as_ref()
        .and_then(|h| h.workload_identity.as_ref())
    {
        required("spec.huawei.workloadIdentity.idpId", &w.idp_id);
    }
    if spec.cloud().is_none() {
        v.push(Violation::new(
            "spec",
            "exactly one of tencent or huawei must be set",
        ));
    }
    if let Some(t) = &spec.tencent {
        if t.secret_ref.is_some() == t.workload_identity.is_some() {
            v.push(Violation::new(
                "spec.tencent",
                "exactly one of secretRef or workloadIdentity must be set",
            ));
        }
        if let Some(w) = &t.workload_identity {
            if !(900..=43200).contains(&w.session_duration_seconds) {
                v.push(Violation::new(
                    "spec.tencent.workloadIdentity.sessionDurationSeconds",
                    "must be between 900 and 43200",
                ));
            }
        }
    }
    if let Some(h) = &spec.huawei {
        if h.secret_ref.is_some() == h.workload_identity.is_some() {
            v.push(Violation::new(
                "spec.huawei",
                "exactly one of secretRef or workloadIdentity must be set",
            ));
        }
        if let Some(w) = &h.workload_identity {
            if !(900..=86400).contains(&w.duration_seconds) {
                v.push(Violation::new(
                    "spec.huawei.workloadIdentity.durationSeconds",
                    "must be between 900 and 86400",
                ));
            }
            if w.domain_name.is_some() && w.domain_id.is_some() {
                v.push(Violation::new(
                    "spec.huawei.workloadIdentity",
                    "set domainName or domainId, not both",
                ));
            }
        }
    }
    v
}

pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let yaml = serde_yaml_ng::to_string(&CloudAccount::crd()).expect("the CRD serialises");
    format!("# Generated by `clusterscale crd` from crates/core/src/api/account.rs. Do not edit by hand.\n---\n{yaml}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_of_each_source_parses() {
        let a: CloudAccount = serde_yaml_ng::from_str(
            r#"
apiVersion: clusterscale.io/v1alpha1
kind: CloudAccount
metadata: {name: tencent-prod}
spec:
  tencent:
    workloadIdentity:
      roleArn: qcs::cam::uin/100000000001:roleName/clusterscale
      providerId: tke-oidc
      region: ap-guangzhou
"#,
        )
        .unwrap();
        let wi = a.spec.tencent.unwrap().workload_identity.unwrap();
        assert_eq!(wi.session_duration_seconds, 7200);
        assert_eq!(wi.token_file, None);
        let b: CloudAccount = serde_yaml_ng::from_str(
            r#"
apiVersion: clusterscale.io/v1alpha1
kind: CloudAccount
metadata: {name: huawei-prod}
spec:
  huawei:
    secretRef: {namespace: clusterscale, name: huawei-keys}
"#,
        )
        .unwrap();
        assert_eq!(
            b.spec.huawei.unwrap().secret_ref.unwrap().namespace,
            "clusterscale"
        );
    }

    /// Each CEL rule of the CRD has its twin in [`validate`], in the same words.
    #[test]
    fn validate_refuses_what_the_crd_refuses() {
        use crate::api::validate::describe;
        let parse = |spec: &str| -> CloudAccountSpec { serde_yaml_ng::from_str(spec).unwrap() };
        let crd = crd_yaml();
        for (spec, field, words) in [
            ("{}", "spec", "exactly one of tencent or huawei must be set"),
            (
                "{tencent: {}}",
                "spec.tencent",
                "exactly one of secretRef or workloadIdentity must be set",
            ),
            (
                "{huawei: {secretRef: {namespace: a, name: b}, workloadIdentity: {idpId: i}}}",
                "spec.huawei",
                "exactly one of secretRef or workloadIdentity must be set",
            ),
            (
                "{tencent: {workloadIdentity: {roleArn: r, providerId: p, region: x, sessionDurationSeconds: 60}}}",
                "spec.tencent.workloadIdentity.sessionDurationSeconds",
                "must be between 900 and 43200",
            ),
            (
                "{huawei: {workloadIdentity: {idpId: i, durationSeconds: 90000}}}",
                "spec.huawei.workloadIdentity.durationSeconds",
                "must be between 900 and 86400",
            ),
            (
                "{huawei: {workloadIdentity: {idpId: i, domainName: n, domainId: d}}}",
                "spec.huawei.workloadIdentity",
                "set domainName or domainId, not both",
            ),
            (
                "{tencent: {secretRef: {namespace: '', name: b}}}",
                "spec.tencent.secretRef.namespace",
                "must not be empty",
            ),
        ] {
            let v = validate(&parse(spec));
            assert_eq!(v.len(), 1, "{spec}: {v:?}");
            assert_eq!((v[0].field, v[0].message.as_str()), (field, words), "{spec}");
            if words != "must not be empty" {
                assert!(crd.contains(words), "the CRD lacks {words:?}");
            }
            assert!(describe(&v).starts_with(field));
        }
        assert!(validate(&parse(
            "{huawei: {workloadIdentity: {idpId: i, domainName: n}}}"
        ))
        .is_empty());
    }

    #[test]
    fn the_crd_is_cluster_scoped_and_carries_its_rules() {
        let crd = crd_yaml();
        for needle in [
            "scope: Cluster",
            "shortNames:\n    - ca",
            "exactly one of tencent or huawei must be set",
            "spec.tencent: exactly one of secretRef or workloadIdentity must be set",
            "spec.huawei: exactly one of secretRef or workloadIdentity must be set",
            "sessionDurationSeconds must be between 900 and 43200",
            "durationSeconds must be between 900 and 86400",
            "set domainName or domainId, not both",
            "status: {}",
        ] {
            assert!(crd.contains(needle), "CRD lacks {needle:?}");
        }
    }
}
