//! MRS v1.1 and IAM v3 wire types, shared by the client and the fake endpoint.
//!
//! Field names follow the official SDK models (cloud-apis.md B1, B2, B4).
//! Reading is lenient where the vendor is inconsistent (counts as strings or
//! numbers, missing lists); writing produces exactly the documented shapes.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Action names used in errors and rate-limit buckets.
pub const ACTION_SHOW: &str = "GET cluster_infos";
pub const ACTION_HOSTS: &str = "GET hosts";
pub const ACTION_RESIZE: &str = "PUT cluster_infos";

/// `node_id` of every resize request.
pub const NODE_ID_ORDERADD: &str = "node_orderadd";
/// `scale_type` values.
pub const SCALE_OUT: &str = "scale_out";
pub const SCALE_IN: &str = "scale_in";
/// The only `result` of an accepted resize.
pub const RESULT_SUCCEEDED: &str = "succeeded";

/// A count the vendor sends as a string (`"5"`) or a number (`5`); null or
/// empty reads as absent.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("count {n} is not an integer"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("count {s:?} is not an integer"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "count {other} is neither a string nor a number"
        ))),
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `GET /v1.1/{project_id}/cluster_infos/{cluster_id}` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterDetailResponse {
    pub cluster: ClusterDetail,
}

/// The fields of ShowClusterDetails that node counting needs (camelCase on
/// the wire; counts are strings).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDetail {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_name: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster_version: String,
    /// `clusterType`, an integer in the SDK (`services/mrs/v1/model/model_cluster.go`,
    /// `ClusterType *int32`): 0 analysis, 1 streaming, 2 hybrid, 3 custom
    /// (the order of the Terraform provider's `setMrsClsuterType`:
    /// ANALYSIS, STREAMING, MIXED, CUSTOM). Read as a number or a string.
    #[serde(
        default,
        deserialize_with = "lenient_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_type: Option<i64>,
    /// starting, running, terminated, failed, abnormal, terminating, frozen, scaling-out, scaling-in.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_state: String,
    /// Empty when nothing changes; scaling-out, scaling-in, scaling-error, scaling-up, ...
    #[serde(default, deserialize_with = "null_as_default")]
    pub scale: String,
    /// Progress text ("Adding node to the cluster", "Cluster expansion failed").
    #[serde(default, deserialize_with = "null_as_default")]
    pub stage_desc: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub error_info: String,
    #[serde(
        default,
        deserialize_with = "lenient_count",
        serialize_with = "count_as_string"
    )]
    pub total_node_num: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient_count",
        serialize_with = "count_as_string"
    )]
    pub master_node_num: Option<i64>,
    #[serde(
        default,
        deserialize_with = "lenient_count",
        serialize_with = "count_as_string"
    )]
    pub core_node_num: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_groups: Vec<NodeGroupV10>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub task_node_groups: Vec<NodeGroupV10>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub update_at: String,
}

fn count_as_string<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&n.to_string()),
        None => s.serialize_none(),
    }
}

/// `NodeGroupV10` (PascalCase on the wire).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeGroupV10 {
    #[serde(rename = "GroupName", default, deserialize_with = "null_as_default")]
    pub group_name: String,
    #[serde(rename = "NodeNum", default, deserialize_with = "lenient_count")]
    pub node_num: Option<i64>,
    #[serde(rename = "NodeSize", default, skip_serializing_if = "Option::is_none")]
    pub node_size: Option<String>,
    #[serde(
        rename = "DataVolumeType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_volume_type: Option<String>,
    #[serde(
        rename = "DataVolumeCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_volume_count: Option<i64>,
    #[serde(
        rename = "DataVolumeSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_volume_size: Option<i64>,
}

/// `GET /v1.1/{project_id}/clusters/{cluster_id}/hosts` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListHostsResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub hosts: Vec<Host>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub total: Option<i64>,
}

/// One host of ListHosts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// The VM id; what `server_ids` takes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ip: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    /// MasterNode, CoreNode or TaskNode.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub host_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group_name: Option<String>,
}

/// `PUT /v1.1/{project_id}/cluster_infos/{cluster_id}` body (ClusterScalingReq).
/// Field order is the SDK's, so the bytes match its serialisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterScalingReq {
    pub service_id: String,
    pub plan_id: String,
    pub parameters: ClusterScalingParams,
    pub previous_values: PreviousValues,
}

/// `previous_values` of a resize; always `{"plan_id": ""}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PreviousValues {
    pub plan_id: String,
}

/// `parameters` of a resize (ClusterScalingParams).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterScalingParams {
    pub order_id: String,
    /// `scale_out` or `scale_in`.
    pub scale_type: String,
    /// Always `node_orderadd`.
    pub node_id: String,
    pub node_group: String,
    /// The vendor types it as a string (Python SDK), a Boolean (reference) and
    /// sends `false` in the seed's examples; the client sends it only as
    /// `true`, on scale-out, and leaves it out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_bootstrap_scripts: Option<bool>,
    /// Scale-out only; left out on scale-in, as the seed's scale-in examples do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_without_start: Option<bool>,
    pub instances: i64,
    /// Only when Task grows from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_node_info: Option<TaskNodeInfo>,
    /// Only for Task scale-in: the hosts to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ids: Option<Vec<String>>,
}

/// `task_node_info` of a resize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNodeInfo {
    pub node_size: String,
    /// SATA, SAS, SSD or GPSSD.
    pub data_volume_type: String,
    pub data_volume_count: i64,
    pub data_volume_size: i64,
}

impl ClusterScalingReq {
    /// A resize request in the seed's exact shape.
    pub fn new(params: ClusterScalingParams) -> Self {
        Self {
            service_id: String::new(),
            plan_id: String::new(),
            parameters: params,
            previous_values: PreviousValues::default(),
        }
    }
}

/// The resize response, `{"result":"succeeded"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub result: String,
}

/// The vendor's error body, `{"error_code": ..., "error_msg": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error_code: String,
    pub error_msg: String,
}

/// IAM `POST /v3/auth/tokens` body (password method, project scope).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub auth: TokenAuth,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenAuth {
    pub identity: Identity,
    pub scope: Scope,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub methods: Vec<String>,
    pub password: PasswordIdentity,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasswordIdentity {
    pub user: PasswordUser,
}

/// The user of a password authentication. `Debug` hides the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordUser {
    pub name: String,
    pub password: String,
    pub domain: NamedRef,
}

impl std::fmt::Debug for PasswordUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("domain", &self.domain)
            .finish()
    }
}

/// `{"name": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedRef {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub project: IdRef,
}

/// `{"id": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

impl TokenRequest {
    /// Password authentication scoped to one project.
    pub fn password(user: &str, password: &str, domain: &str, project_id: &str) -> Self {
        Self {
            auth: TokenAuth {
                identity: Identity {
                    methods: vec!["password".to_string()],
                    password: PasswordIdentity {
                        user: PasswordUser {
                            name: user.to_string(),
                            password: password.to_string(),
                            domain: NamedRef {
                                name: domain.to_string(),
                            },
                        },
                    },
                },
                scope: Scope {
                    project: IdRef {
                        id: project_id.to_string(),
                    },
                },
            },
        }
    }
}

impl std::fmt::Display for TokenRequest {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let u = &self.auth.identity.password.user;
        write!(
            f,
            "password auth for {}@{} scoped to project {}",
            u.name, u.domain.name, self.auth.scope.project.id
        )
    }
}

/// IAM token response body (the token itself is in `X-Subject-Token`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: TokenBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenBody {
    /// RFC 3339, e.g. `2024-01-16T08:30:00.000000Z`.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

// --- IAM OIDC federation (docs/credentials-design.md 2.2, 2.3) ---------------
//
// Field names and order follow huaweicloud-sdk-go-v3 `core/auth/internal/
// iam_model.go` and `services/iam/v3/model/` as that document records them.
// Every type holding a token or a key shows it as `<redacted>` in `Debug`.

/// `POST /v3.0/OS-AUTH/id-token/tokens` body:
/// `{"auth":{"id_token":{"id":"<JWT>"}}}`, with an optional `scope`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenRequest {
    pub auth: IdTokenAuth,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenAuth {
    pub id_token: SecretId,
    /// Absent for an unscoped token (what the SDK sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<IdTokenScope>,
}

/// `{"id": "<secret>"}`: a JWT, or an IAM token. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretId {
    pub id: String,
}

impl std::fmt::Debug for SecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretId(<redacted>)")
    }
}

/// `scope`: one of `project` and `domain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenScope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<IdOrName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<IdOrName>,
}

/// `{"id": ...}` or `{"name": ...}` ("at least one of id and name").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdOrName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /v3.0/OS-CREDENTIAL/securitytokens` body:
/// `{"auth":{"identity":{"methods":["token"],"token":{"id":"<IAM token>","duration_seconds":N}}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityTokenRequest {
    pub auth: SecurityTokenAuth,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityTokenAuth {
    pub identity: SecurityTokenIdentity,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityTokenIdentity {
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<IdentityToken>,
}

/// `token`: the IAM token (which the `X-Auth-Token` header may carry
/// instead) and the keys' lifetime. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 900 to 86400; IAM's default 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("id", &self.id.as_ref().map(|_| "<redacted>"))
            .field("duration_seconds", &self.duration_seconds)
            .finish()
    }
}

impl SecurityTokenRequest {
    /// The body the SDK sends: the token in the body, with a duration.
    pub fn new(iam_token: &str, duration_seconds: i64) -> Self {
        Self {
            auth: SecurityTokenAuth {
                identity: SecurityTokenIdentity {
                    methods: vec!["token".to_string()],
                    token: Some(IdentityToken {
                        id: Some(iam_token.to_string()),
                        duration_seconds: Some(duration_seconds),
                    }),
                },
            },
        }
    }
}

/// The answer of `securitytokens` (HTTP 201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityTokenResponse {
    pub credential: TemporaryCredential,
}

/// Temporary keys. `Debug` shows only their expiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemporaryCredential {
    pub access: String,
    pub secret: String,
    pub securitytoken: String,
    /// RFC 3339 with microseconds, e.g. `2020-01-08T03:50:07.574000Z`.
    pub expires_at: String,
}

impl std::fmt::Debug for TemporaryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredential")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

// --- MRS v2: node groups (cloud-apis.md C1) ---------------------------------
//
// Every struct below follows a model file of huaweicloud-sdk-go-v3
// `services/mrs/v2/model/` (named on each struct); the paths and content
// types follow the same SDK's `services/mrs/v2/mrs_meta.go`.

/// Action names of the v2 calls, in errors and rate-limit buckets.
pub const ACTION_EXPAND: &str = "POST expand";
pub const ACTION_SHRINK: &str = "POST shrink";
pub const ACTION_NODES: &str = "GET nodes";
pub const ACTION_POLICY: &str = "GET autoscaling-policy";

/// `Content-Type` of the v2 writes (`GenReqDefForExpandCluster`,
/// `GenReqDefForShrinkCluster`); reads use `application/json`.
pub const CONTENT_TYPE_V2_WRITE: &str = "application/json;charset=UTF-8";

/// `result` of an accepted v2 expand or shrink (`ExpandClusterResponse`:
/// "succeeded为操作成功，failed为操作失败"); a pay-per-use group's expand
/// answers [`RESULT_SUCCESS`] instead.
pub const RESULT_V2_SUCCEEDED: &str = "succeeded";
/// `result` of an expand of a pay-per-use (non-prepaid) group
/// (`ExpandClusterResponse`: "非包周期节点组扩容请求下发成功时...内容为success").
pub const RESULT_SUCCESS: &str = "success";
/// `result` of a refused v2 expand or shrink.
pub const RESULT_FAILED: &str = "failed";

/// Largest `limit` of ListNodes.
pub const NODES_PAGE_LIMIT: i64 = 100;

/// `billing_type` of a node (`ClusterNode`): prepaid (yearly/monthly).
pub const BILLING_ON_PERIOD: &str = "on-period";
/// `billing_type` of a node (`ClusterNode`): pay-per-use.
pub const BILLING_ON_QUANTITY: &str = "on-quantity";

/// `POST /v2/{project_id}/clusters/{cluster_id}/expand` body
/// (`model_expand_param.go`, `ExpandParam`; the request's `Body`). Field
/// order is the SDK's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpandParam {
    /// 1-64 of `[A-Za-z0-9_-]`.
    pub node_group_name: String,
    /// Nodes to add.
    pub count: i32,
    /// Skip the bootstrap scripts on the new nodes. Optional in the SDK and
    /// **true when absent** in v2 (v1.1: false): the client always sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_bootstrap_scripts: Option<bool>,
    /// Do not start the components on the new nodes (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_without_start: Option<bool>,
    /// Comma-separated AZs of a cross-AZ cluster; absent or empty otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub az_code: Option<String>,
}

/// The expand answer (`model_expand_cluster_response.go`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpandResponse {
    /// `succeeded` / `success` (accepted) or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Only for a prepaid (on-period) group: the order to pay before
    /// anything scales ("需要客户到订单支付页面进行自主支付才能真正触发扩容").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// `POST /v2/{project_id}/clusters/{cluster_id}/shrink` body
/// (`model_shrink_param.go`, `ShrinkParam`). Field order is the SDK's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkParam {
    pub node_group_name: String,
    /// Nodes to remove; optional when `resource_ids` names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Only abnormal ECS nodes, removed by force; absent: MRS chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_ids: Option<Vec<String>>,
    /// Force-delete hosts whose decommission fails or that are abnormal
    /// (SDK default: true with `resource_ids`, false without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub az_code: Option<String>,
}

/// The shrink answer (`model_shrink_cluster_response.go`): `result` only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

/// `GET /v2/{project_id}/clusters/{cluster_id}/nodes` answer
/// (`model_list_nodes_response.go`). The request's query
/// (`model_list_nodes_request.go`): `node_group`, `limit` (default 10),
/// `offset` (a page number, default 1), `node_name`, `sort_key`,
/// `sort_dir`, `query_node_detail`, `query_ecs_detail`, `internal_ip`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListNodesResponse {
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: Vec<ClusterNode>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub node_total: Option<i64>,
}

/// One node of ListNodes (`model_cluster_node.go`, `ClusterNode`; every
/// field but `deployment_type` is optional in the SDK).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// The node's name in MRS Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Unique per node; what shrink's `resource_ids` takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group_name: Option<String>,
    /// `Master`, `Core`, `Task`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    /// [`BILLING_ON_PERIOD`] or [`BILLING_ON_QUANTITY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_type: Option<String>,
    /// `Server` (required in the SDK; read leniently).
    #[serde(default, deserialize_with = "null_as_default")]
    pub deployment_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_info: Option<ServerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<MrsTag>>,
    /// The operation state shown on the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_status: Option<String>,
}

/// `server_info` of a node (`model_server_info.go`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    #[serde(default, deserialize_with = "null_as_default")]
    pub server_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub server_name: String,
    /// `ECS` or `BMS`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server_type: String,
    /// `x86` or `ARM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_ip: Option<String>,
}

/// A node tag (`model_tag.go` of v2: `key`, `value`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrsTag {
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
}

/// `GET /v2/{project_id}/autoscaling-policy/{cluster_id}` answers a
/// top-level JSON array of these (`model_show_auto_scaling_policy_response.go`:
/// the SDK's `Body *[]AutoScalingPolicyV2` is the whole body,
/// `GenReqDefForShowAutoScalingPolicy` maps it with `WithLocationType(def.Body)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoScalingPolicyV2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group_name: Option<String>,
    /// The resource pool (required in the SDK; read leniently).
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_pool_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling_policy: Option<AutoScalingPolicy>,
}

/// `auto_scaling_policy` (`model_auto_scaling_policy.go`). The plans, rules
/// and scripts are kept as raw JSON: only whether the policy is on and its
/// bounds matter to us.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoScalingPolicy {
    #[serde(default)]
    pub auto_scaling_enable: bool,
    /// 0-500.
    #[serde(default)]
    pub min_capacity: i32,
    /// 0-500.
    #[serde(default)]
    pub max_capacity: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_plans: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_scripts: Option<Vec<Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_body_matches_the_sdk_bytes_of_vector_2() {
        // tests/data/huawei_sdk_hmac.json, mrs_put_cluster_scale_out, body_utf8.
        // The vector carries both flags as false; the client itself leaves a
        // false skip_bootstrap_scripts out (see `flags_are_left_out_when_absent`).
        let expected = r#"{"service_id":"","plan_id":"","parameters":{"order_id":"","scale_type":"scale_out","node_id":"node_orderadd","node_group":"task_node_analysis_group","skip_bootstrap_scripts":false,"scale_without_start":false,"instances":2,"task_node_info":{"node_size":"c3.4xlarge.2.linux.bigdata","data_volume_type":"SATA","data_volume_count":1,"data_volume_size":600}},"previous_values":{"plan_id":""}}"#;
        let req = ClusterScalingReq::new(ClusterScalingParams {
            order_id: String::new(),
            scale_type: SCALE_OUT.into(),
            node_id: NODE_ID_ORDERADD.into(),
            node_group: "task_node_analysis_group".into(),
            skip_bootstrap_scripts: Some(false),
            scale_without_start: Some(false),
            instances: 2,
            task_node_info: Some(TaskNodeInfo {
                node_size: "c3.4xlarge.2.linux.bigdata".into(),
                data_volume_type: "SATA".into(),
                data_volume_count: 1,
                data_volume_size: 600,
            }),
            server_ids: None,
        });
        assert_eq!(serde_json::to_string(&req).unwrap(), expected);
    }

    #[test]
    fn flags_are_left_out_when_absent() {
        let req = ClusterScalingReq::new(ClusterScalingParams {
            order_id: String::new(),
            scale_type: SCALE_IN.into(),
            node_id: NODE_ID_ORDERADD.into(),
            node_group: "core_node_default_group".into(),
            skip_bootstrap_scripts: None,
            scale_without_start: None,
            instances: 1,
            task_node_info: None,
            server_ids: None,
        });
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"service_id":"","plan_id":"","parameters":{"order_id":"","scale_type":"scale_in","node_id":"node_orderadd","node_group":"core_node_default_group","instances":1},"previous_values":{"plan_id":""}}"#
        );
    }

    #[test]
    fn cluster_detail_reads_string_counts_and_nulls() {
        let body = r#"{"cluster":{"clusterId":"c1","clusterName":"n","clusterState":"running","scale":null,
            "coreNodeNum":"5","masterNodeNum":"2","totalNodeNum":"9","stageDesc":null,
            "nodeGroups":[{"GroupName":"master_node_default_group","NodeNum":2},
                          {"GroupName":"core_node_analysis_group","NodeNum":"5"},
                          {"GroupName":"task_node_analysis_group","NodeNum":2}],
            "taskNodeGroups":null,"unknownField":{"x":1}}}"#;
        let d: ClusterDetailResponse = serde_json::from_str(body).unwrap();
        assert_eq!(d.cluster.core_node_num, Some(5));
        assert_eq!(d.cluster.scale, "");
        assert_eq!(d.cluster.node_groups[1].node_num, Some(5));
        assert!(d.cluster.task_node_groups.is_empty());
        let out = serde_json::to_value(&d).unwrap();
        assert_eq!(out["cluster"]["coreNodeNum"], "5");
        assert!(serde_json::from_str::<ClusterDetailResponse>(
            r#"{"cluster":{"coreNodeNum":"five"}}"#
        )
        .is_err());
    }

    #[test]
    fn token_request_shape_and_display() {
        let r = TokenRequest::password("ops", "pw-secret", "acme", "p1");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["auth"]["identity"]["methods"][0], "password");
        assert_eq!(
            v["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "acme"
        );
        assert_eq!(v["auth"]["scope"]["project"]["id"], "p1");
        assert!(!r.to_string().contains("pw-secret"));
        assert!(!format!("{r:?}").contains("pw-secret"));
    }

    /// The v2 bodies in the SDK's field order (`ExpandParam`, `ShrinkParam`).
    #[test]
    fn v2_bodies_follow_the_sdk_models() {
        let expand = ExpandParam {
            node_group_name: "task_node_analysis_group".into(),
            count: 2,
            skip_bootstrap_scripts: Some(false),
            scale_without_start: Some(false),
            az_code: None,
        };
        assert_eq!(
            serde_json::to_string(&expand).unwrap(),
            r#"{"node_group_name":"task_node_analysis_group","count":2,"skip_bootstrap_scripts":false,"scale_without_start":false}"#
        );
        let shrink = ShrinkParam {
            node_group_name: "node_group_3".into(),
            count: Some(1),
            resource_ids: Some(vec!["r-1".into()]),
            force_delete: Some(true),
            az_code: Some("cn-north-4a".into()),
        };
        assert_eq!(
            serde_json::to_string(&shrink).unwrap(),
            r#"{"node_group_name":"node_group_3","count":1,"resource_ids":["r-1"],"force_delete":true,"az_code":"cn-north-4a"}"#
        );
        let plain = ShrinkParam {
            node_group_name: "g".into(),
            count: Some(3),
            resource_ids: None,
            force_delete: None,
            az_code: None,
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"node_group_name":"g","count":3}"#
        );
    }

    /// Answers as the SDK models them: ListNodes (`ClusterNode`, `ServerInfo`,
    /// `Tag`), the expand answer with and without `order_id`, the policy
    /// list (a top-level array), and `clusterType` as a number or a string.
    #[test]
    fn v2_answers_parse() {
        let nodes: ListNodesResponse = serde_json::from_str(
            r#"{"nodes":[{"node_name":"node-ana-task0001","resource_id":"r-1","node_group_name":"task_node_analysis_group",
            "node_type":"Task","billing_type":"on-quantity","deployment_type":"Server",
            "server_info":{"server_id":"s-1","server_name":"n1","server_type":"ECS","cpu":"8","mem":"32768","internal_ip":"192.168.0.9"},
            "tags":[{"key":"k","value":"v"}],"node_detail":{"running_status":"ok"},"node_status":"running","component_infos":[]},
            {"node_name":null,"resource_id":"r-2","billing_type":"on-period","deployment_type":null}],"node_total":"2"}"#,
        )
        .unwrap();
        assert_eq!(nodes.node_total, Some(2));
        let n = &nodes.nodes[0];
        assert_eq!(n.billing_type.as_deref(), Some(BILLING_ON_QUANTITY));
        assert_eq!(n.server_info.as_ref().unwrap().server_id, "s-1");
        assert_eq!(
            n.tags.as_ref().unwrap()[0],
            MrsTag {
                key: "k".into(),
                value: "v".into()
            }
        );
        assert_eq!(nodes.nodes[1].deployment_type, "");
        let empty: ListNodesResponse = serde_json::from_str(r#"{"nodes":null}"#).unwrap();
        assert!(empty.nodes.is_empty() && empty.node_total.is_none());

        let prepaid: ExpandResponse =
            serde_json::from_str(r#"{"result":"succeeded","order_id":"CS2404"}"#).unwrap();
        assert_eq!(prepaid.order_id.as_deref(), Some("CS2404"));
        let shrink: ShrinkResponse = serde_json::from_str(r#"{"result":"succeeded"}"#).unwrap();
        assert_eq!(shrink.result.as_deref(), Some(RESULT_V2_SUCCEEDED));

        let policies: Vec<AutoScalingPolicyV2> = serde_json::from_str(
            r#"[{"node_group_name":"task_node_analysis_group","resource_pool_name":"default",
            "auto_scaling_policy":{"auto_scaling_enable":true,"min_capacity":1,"max_capacity":5,
            "resources_plans":[{"period_type":"daily","start_time":"9:00","end_time":"11:00","min_capacity":2,"max_capacity":3}],
            "rules":[],"exec_scripts":null}}]"#,
        )
        .unwrap();
        let p = policies[0].auto_scaling_policy.as_ref().unwrap();
        assert!(p.auto_scaling_enable);
        assert_eq!((p.min_capacity, p.max_capacity), (1, 5));
        assert_eq!(policies[0].resource_pool_name, "default");

        for raw in [
            r#"{"cluster":{"clusterType":3}}"#,
            r#"{"cluster":{"clusterType":"3"}}"#,
        ] {
            let d: ClusterDetailResponse = serde_json::from_str(raw).unwrap();
            assert_eq!(d.cluster.cluster_type, Some(3), "{raw}");
        }
        let d: ClusterDetailResponse = serde_json::from_str(r#"{"cluster":{}}"#).unwrap();
        assert_eq!(d.cluster.cluster_type, None);
        // Written back as a number, and left out when unknown.
        let out = serde_json::to_value(ClusterDetail {
            cluster_type: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(out["clusterType"], 2);
        assert!(serde_json::to_value(ClusterDetail::default())
            .unwrap()
            .get("clusterType")
            .is_none());
    }
}
