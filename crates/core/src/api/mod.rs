//! The `ScaledCluster` API (group `clusterscale.io`, version `v1alpha1`).
//!
//! The CRD in `crds/scaledcluster.yaml` is generated from these types
//! (`clusterscale crd`); never edit it by hand. Every rule is enforced twice:
//! as a CEL rule in the CRD (admission) and by [`validate::validate_spec`]
//! (the controller, for old apiservers and objects stored before a rule existed).

pub mod account;
pub mod class;
pub mod conditions;
pub mod validate;

pub use class::{ErrorClass, FailureClass, Precondition};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Core nodes may never drop below this many (both clouds require it for HDFS).
pub const MIN_CORE: i32 = 3;
/// Core + Task may never exceed this many.
pub const MAX_TOTAL: i32 = 500;

/// Desired node counts of one managed Hadoop/Spark cluster.
// Several printcolumn(...) entries share keys; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "clusterscale.io",
    version = "v1alpha1",
    kind = "ScaledCluster",
    namespaced,
    shortname = "scl",
    status = "ScaledClusterStatus",
    derive = "PartialEq",
    doc = "Desired Core and Task node counts of a Tencent Cloud EMR or Huawei Cloud MRS cluster",
    scale(
        spec_replicas_path = ".spec.task.count",
        status_replicas_path = ".status.observed.task",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Cloud", type_ = "string", json_path = ".status.cloud"),
    printcolumn(
        name = "Core",
        type_ = "integer",
        json_path = ".spec.core.count",
        description = "desired Core nodes"
    ),
    printcolumn(
        name = "Obs-Core",
        type_ = "integer",
        json_path = ".status.observed.core",
        description = "observed Core nodes"
    ),
    printcolumn(
        name = "Task",
        type_ = "integer",
        json_path = ".spec.task.count",
        description = "desired Task nodes"
    ),
    printcolumn(
        name = "Obs-Task",
        type_ = "integer",
        json_path = ".status.observed.task",
        description = "observed Task nodes"
    ),
    printcolumn(
        name = "Pools",
        type_ = "string",
        json_path = ".status.poolsSummary",
        description = "observed/desired nodes of each spec.taskPools entry, in list order"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
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
    validation = Rule::new(CloudKind::exactly_one_rule()).message(CloudKind::exactly_one_message().as_str()),
    validation = Rule::new("self.core.count + self.task.count <= 500")
        .message("spec.core.count + spec.task.count must be at most 500"),
    validation = Rule::new("!has(self.taskPools) || self.core.count + self.task.count + self.taskPools.map(p, p.count).sum() <= 500")
        .message("spec.core.count + spec.task.count + spec.taskPools[].count must be at most 500"),
    validation = Rule::new(CloudKind::pool_blocks_rule()).message(CloudKind::pool_blocks_message().as_str()),
    validation = Rule::new("!has(self.huawei) || !has(self.taskPools) || self.taskPools.all(p, has(p.huawei))")
        .message("spec.taskPools[].huawei.nodeGroup is required for every pool of a huawei cluster"),
)]
#[serde(rename_all = "camelCase")]
pub struct ScaledClusterSpec {
    // The cloud blocks are boxed: one at most is set, and the others would
    // otherwise take their whole size (192 and 280 bytes) in every cached
    // object (docs/benchmarks.md, issue 26).
    /// Tencent Cloud EMR cluster (API 2019-01-03).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tencent: Option<Box<TencentSpec>>,
    /// Huawei Cloud MRS cluster (API v1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huawei: Option<Box<HuaweiSpec>>,
    /// An in-process simulated cluster: no cloud account needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedSpec>,
    /// Core node group (HDFS data nodes).
    pub core: CoreSpec,
    /// Task node group (compute only): the default Task pool. `kubectl scale` writes `task.count`.
    #[serde(default)]
    pub task: TaskSpec,
    /// Further Task pools, each scaled on its own (an MRS node group, an EMR set of Task
    /// nodes of one instance and charge type), at most 8, keyed by name. Core, the default
    /// pool and every pool count toward the 500-node limit. Growth goes Core, the default
    /// pool, then these in list order; shrinking goes the other way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub task_pools: Vec<TaskPoolSpec>,
    /// Scale-in policy.
    #[serde(default)]
    pub scale_in: ScaleInSpec,
    /// Largest number of nodes one operation may add or remove; 0 means the whole difference.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.maxStep must be >= 0"))]
    pub max_step: i32,
    /// Seconds to wait after an operation finishes before starting the next.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.cooldownSeconds must be >= 0"))]
    pub cooldown_seconds: i32,
    /// Observe and report, never act.
    #[serde(default)]
    pub paused: bool,
    /// Plan and record the plan in status, never act.
    #[serde(default)]
    pub dry_run: bool,
}

/// Core node group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CoreSpec {
    /// Desired Core nodes; at least 3.
    #[x_kube(validation = Rule::new("self >= 3").message("spec.core.count must be at least 3"))]
    pub count: i32,
}

/// Task node group. `count` is clamped into `[min, max]` by the planner, which
/// reports the clamp; an autoscaler writing through `/scale` cannot push it out.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("spec.task.min must be <= spec.task.max"))]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Desired Task nodes.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.task.count must be >= 0"))]
    pub count: i32,
    /// Lower bound for `count`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.task.min must be >= 0"))]
    pub min: i32,
    /// Upper bound for `count`.
    #[serde(default = "default_task_max")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 500").message("spec.task.max must be between 0 and 500"))]
    pub max: i32,
}

fn default_task_max() -> i32 {
    MAX_TOTAL
}

impl Default for TaskSpec {
    fn default() -> Self {
        Self {
            count: 0,
            min: 0,
            max: MAX_TOTAL,
        }
    }
}

/// A further Task pool (`spec.taskPools[]`). `count` is clamped into `[min, max]`
/// as `spec.task.count` is; the operator scales it one operation at a time,
/// like Core and the default Task pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("spec.taskPools[].min must be <= spec.taskPools[].max"))]
#[serde(rename_all = "camelCase")]
pub struct TaskPoolSpec {
    /// The pool's name: a DNS label (lowercase letters, digits and '-', at most 63
    /// characters), unique in the list, and not `task` (the default pool's). Events,
    /// operations, metrics (`pool` label) and `status.pools` name the pool by it.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self != 'task'").message("spec.taskPools[].name must not be task (the default Task pool's name)"))]
    pub name: String,
    /// Desired nodes of this pool.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.taskPools[].count must be >= 0"))]
    pub count: i32,
    /// Lower bound for `count`.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.taskPools[].min must be >= 0"))]
    pub min: i32,
    /// Upper bound for `count`.
    #[serde(default = "default_task_max")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 500").message("spec.taskPools[].max must be between 0 and 500"))]
    pub max: i32,
    /// The pool on Tencent Cloud EMR: the Task nodes of one charge type, instance type
    /// and YARN node label. Only on a `spec.tencent` cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tencent: Option<TencentPoolSpec>,
    /// The pool on Huawei Cloud MRS: one node group. Required on a `spec.huawei` cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huawei: Option<HuaweiPoolSpec>,
    /// The pool on the simulated cloud. Only on a `spec.simulated` cluster; optional there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedPoolSpec>,
}

impl TaskPoolSpec {
    /// A pool `name` of `count` nodes, default bounds, no cloud block.
    pub fn named(name: impl Into<String>, count: i32) -> Self {
        Self {
            name: name.into(),
            count,
            min: 0,
            max: MAX_TOTAL,
            tencent: None,
            huawei: None,
            simulated: None,
        }
    }
}

/// A Task pool on Tencent Cloud EMR (`spec.taskPools[].tencent`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TencentPoolSpec {
    /// How the pool's nodes are billed: POSTPAID_BY_HOUR (the default) or SPOTPAID
    /// (spot instances; EMR allows them for Task nodes only, so only a pool can ask for them).
    #[serde(default)]
    pub charge_type: TencentChargeType,
    /// CVM instance type of the pool's nodes, e.g. SA5.2XLARGE32; default: the cluster's Task spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// YARN node label given to the pool's nodes, e.g. spot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yarn_node_label: Option<String>,
}

/// EMR `InstanceChargeType` of a Task pool.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TencentChargeType {
    // Pay-as-you-go, by the hour.
    #[default]
    #[serde(rename = "POSTPAID_BY_HOUR")]
    PostpaidByHour,
    // Spot instances: cheaper, and the cloud may reclaim them.
    #[serde(rename = "SPOTPAID")]
    Spotpaid,
}

impl TencentChargeType {
    /// The value EMR takes: POSTPAID_BY_HOUR or SPOTPAID.
    pub fn as_str(self) -> &'static str {
        match self {
            TencentChargeType::PostpaidByHour => "POSTPAID_BY_HOUR",
            TencentChargeType::Spotpaid => "SPOTPAID",
        }
    }
}

/// A Task pool on Huawei Cloud MRS (`spec.taskPools[].huawei`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HuaweiPoolSpec {
    /// The MRS node group of the pool, e.g. node_group_3 (1-64 letters, digits, '_' or '-').
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z0-9_-]+$"))]
    pub node_group: String,
}

/// A Task pool on the simulated cloud (`spec.taskPools[].simulated`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedPoolSpec {
    /// Nodes the pool has when the simulation first sees it.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.taskPools[].simulated.initialCount must be >= 0"))]
    pub initial_count: i32,
}

/// How nodes are removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleInSpec {
    /// false: never remove nodes; a scale-in is reported as Blocked.
    #[serde(default = "default_true")]
    pub allowed: bool,
    /// Node ids to remove first (Tencent EmrResourceId, Huawei host id).
    #[serde(default)]
    pub prefer_nodes: Vec<String>,
    /// Graceful decommission timeout, where the cloud supports it (Tencent: 60-1800 s). 0 = off.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 0 || (self >= 60 && self <= 1800)").message("spec.scaleIn.gracefulTimeoutSeconds must be 0 or between 60 and 1800"))]
    pub graceful_timeout_seconds: i32,
}

fn default_true() -> bool {
    true
}

impl Default for ScaleInSpec {
    fn default() -> Self {
        Self {
            allowed: true,
            prefer_nodes: Vec::new(),
            graceful_timeout_seconds: 0,
        }
    }
}

/// Reference to a Secret in the resource's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Reference to a cluster-scoped `CloudAccount` ([`account`]).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// CloudAccount name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Tencent Cloud EMR.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.credentialsSecretRef) ? 1 : 0) + (has(self.accountRef) ? 1 : 0) == 1")
        .message("spec.tencent: exactly one of credentialsSecretRef or accountRef must be set"),
)]
pub struct TencentSpec {
    /// Region, e.g. ap-guangzhou (sent as X-TC-Region).
    #[schemars(length(min = 1))]
    pub region: String,
    /// EMR instance id, e.g. emr-b3zor8nr. Immutable.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.tencent.instanceId is immutable"))]
    pub instance_id: String,
    /// 0 pay-as-you-go, 1 monthly.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 0 || self == 1").message("spec.tencent.payMode must be 0 or 1"))]
    pub pay_mode: i32,
    /// ScaleOutInstance TimeUnit; default `s` for pay-as-you-go, `m` for monthly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<String>,
    /// ScaleOutInstance TimeSpan; default 3600 for pay-as-you-go, 1 for monthly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_span: Option<i64>,
    /// Secret in this namespace with keys secretId, secretKey and optional
    /// token. Exactly one of this and `accountRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The CloudAccount whose keys sign this cluster's calls (a Secret in one
    /// namespace, or a workload identity). Exactly one of this and
    /// `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// API endpoint; default https://emr.tencentcloudapi.com. http:// only for loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Bootstrap scripts for new nodes, passed through to ScaleOutInstance as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json_list")]
    pub pre_executed_file_settings: Option<Vec<serde_json::Value>>,
}

/// Huawei Cloud MRS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.credentialsSecretRef) ? 1 : 0) + (has(self.accountRef) ? 1 : 0) == 1")
        .message("spec.huawei: exactly one of credentialsSecretRef or accountRef must be set"),
)]
pub struct HuaweiSpec {
    /// Region, e.g. cn-north-4.
    #[schemars(length(min = 1))]
    pub region: String,
    /// IAM project id.
    #[schemars(length(min = 1))]
    pub project_id: String,
    /// MRS cluster id. Immutable.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.huawei.clusterId is immutable"))]
    pub cluster_id: String,
    /// Secret in this namespace with keys accessKey + secretKey (+
    /// securityToken), or the IAM password keys. Exactly one of this and
    /// `accountRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The CloudAccount whose keys sign this cluster's calls. Exactly one of
    /// this and `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
    /// MRS endpoint; default https://mrs.{region}.myhuaweicloud.com. http:// only for loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// IAM endpoint for token auth; default https://iam.{region}.myhuaweicloud.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_endpoint: Option<String>,
    /// Core node group name; default: discovered from the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_node_group: Option<String>,
    /// Task node group name; default: discovered from the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_node_group: Option<String>,
    /// Task node spec, required when Task grows from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_node_spec: Option<HuaweiTaskNodeSpec>,
    /// Skip bootstrap scripts on new nodes.
    #[serde(default)]
    pub skip_bootstrap_scripts: bool,
    /// Do not start components on new nodes.
    #[serde(default)]
    pub scale_without_start: bool,
}

/// MRS `task_node_info`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HuaweiTaskNodeSpec {
    /// Flavor, e.g. c6.4xlarge.4.linux.bigdata.
    pub node_size: String,
    /// SATA, SAS, SSD or GPSSD.
    pub data_volume_type: String,
    /// Data disks per node.
    pub data_volume_count: i32,
    /// Data disk size in GB.
    pub data_volume_size: i32,
}

/// The in-process simulated cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedSpec {
    /// Core nodes when the simulation starts.
    #[serde(default = "default_initial_core")]
    pub initial_core: i32,
    /// Task nodes when the simulation starts.
    #[serde(default)]
    pub initial_task: i32,
    /// Simulated seconds one operation takes.
    #[serde(default = "default_operation_seconds")]
    pub operation_seconds: i32,
    /// Largest Core+Task count the simulated account's quota allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i32>,
}

fn default_initial_core() -> i32 {
    MIN_CORE
}

fn default_operation_seconds() -> i32 {
    30
}

impl Default for SimulatedSpec {
    fn default() -> Self {
        Self {
            initial_core: MIN_CORE,
            initial_task: 0,
            operation_seconds: default_operation_seconds(),
            quota: None,
        }
    }
}

fn any_json_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// The one list of clouds. Each entry is a [`CloudKind`] variant and the
/// `ScaledClusterSpec` field that holds its block; the enum, [`CloudKind::ALL`],
/// the names, [`ScaledClusterSpec::has_block`] and the CRD's "exactly one of"
/// rule are all generated from it, so none can miss a cloud.
macro_rules! clouds {
    ($($variant:ident => $field:ident),+ $(,)?) => {
        /// Which cloud a spec targets.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CloudKind {
            $($variant),+
        }

        impl CloudKind {
            pub const ALL: [CloudKind; [$(stringify!($variant)),+].len()] =
                [$(CloudKind::$variant),+];

            /// The spec field of the cloud's block: `tencent`, ...
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CloudKind::$variant => stringify!($field)),+
                }
            }
        }

        impl ScaledClusterSpec {
            /// True when the block of cloud `kind` (`spec.tencent`, ...) is set.
            pub fn has_block(&self, kind: CloudKind) -> bool {
                match kind {
                    $(CloudKind::$variant => self.$field.is_some()),+
                }
            }
        }

        impl TaskPoolSpec {
            /// True when the pool's block of cloud `kind` (`spec.taskPools[].tencent`, ...) is set.
            pub fn has_block(&self, kind: CloudKind) -> bool {
                match kind {
                    $(CloudKind::$variant => self.$field.is_some()),+
                }
            }
        }
    };
}

clouds! {
    Tencent => tencent,
    Huawei => huawei,
    Simulated => simulated,
}

impl CloudKind {
    /// "tencent, huawei or simulated": the spec's cloud blocks, for messages.
    pub fn choices() -> String {
        let names: Vec<&str> = CloudKind::ALL.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The CRD's CEL rule on `spec`: exactly one cloud block is set.
    pub fn exactly_one_rule() -> String {
        let terms: Vec<String> = CloudKind::ALL
            .iter()
            .map(|k| format!("(has(self.{k}) ? 1 : 0)"))
            .collect();
        format!("{} == 1", terms.join(" + "))
    }

    /// The CRD's CEL rule on `spec`: a pool sets only the block of the spec's cloud.
    pub fn pool_blocks_rule() -> String {
        let terms: Vec<String> = CloudKind::ALL
            .iter()
            .map(|k| format!("(!has(p.{k}) || has(self.{k}))"))
            .collect();
        format!(
            "!has(self.taskPools) || self.taskPools.all(p, {})",
            terms.join(" && ")
        )
    }

    /// The message of [`CloudKind::pool_blocks_rule`].
    pub fn pool_blocks_message() -> String {
        format!(
            "spec.taskPools[]: a pool may set only the block of the spec's cloud ({})",
            CloudKind::choices()
        )
    }

    /// The message of [`CloudKind::exactly_one_rule`].
    pub fn exactly_one_message() -> String {
        format!("spec: exactly one of {} must be set", CloudKind::choices())
    }
}

impl std::fmt::Display for CloudKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ScaledClusterSpec {
    /// A spec for the simulated cloud with the default policy: every scale-in
    /// allowed, whole differences, no cooldown. Handy in tests and examples.
    pub fn simulated(core: i32, task: i32) -> Self {
        Self {
            tencent: None,
            huawei: None,
            simulated: Some(SimulatedSpec::default()),
            core: CoreSpec { count: core },
            task: TaskSpec {
                count: task,
                ..TaskSpec::default()
            },
            task_pools: Vec::new(),
            scale_in: ScaleInSpec::default(),
            max_step: 0,
            cooldown_seconds: 0,
            paused: false,
            dry_run: false,
        }
    }

    /// The cloud this spec targets, when exactly one block is set.
    pub fn cloud(&self) -> Option<CloudKind> {
        let mut set = CloudKind::ALL.into_iter().filter(|k| self.has_block(*k));
        match (set.next(), set.next()) {
            (Some(kind), None) => Some(kind),
            _ => None,
        }
    }

    /// The pool `name` of `spec.taskPools`.
    pub fn pool(&self, name: &str) -> Option<&TaskPoolSpec> {
        self.task_pools.iter().find(|p| p.name == name)
    }
}

/// How messages, Events and operations name a group of nodes: `core node(s)`,
/// `task node(s)` (the default Task pool) or `task node(s) of pool batch`.
pub fn nodes_of(group: NodeGroup, pool: Option<&str>) -> String {
    match pool {
        None => format!("{} node(s)", group.as_str()),
        Some(p) => format!("{} node(s) of pool {p}", group.as_str()),
    }
}

/// Node group of a cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum NodeGroup {
    Core,
    Task,
}

impl NodeGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeGroup::Core => "core",
            NodeGroup::Task => "task",
        }
    }
}

/// Scale direction.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// Phase shown in `kubectl get`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Pending,
    Converged,
    ScalingOut,
    ScalingIn,
    Waiting,
    Blocked,
    Paused,
    Failed,
}

/// What the controller last saw of the remote cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObservedStatus {
    /// The cloud's own state, normalised: running, busy, failed, unavailable, plus the raw value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Core nodes.
    pub core: i32,
    /// Task nodes.
    pub task: i32,
    /// Core nodes the cloud's own autoscaler added (Tencent `AutoFlag = 1`):
    /// not in `core`, never removed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaled_core: Option<i32>,
    /// Task nodes the cloud's own autoscaler added (Tencent `AutoFlag = 1`):
    /// not in `task`, never removed by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaled_task: Option<i32>,
    /// Pod resources the cloud lists among the nodes (Tencent
    /// `HardwareResourceType = pod`): not counted, never removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_nodes: Option<i32>,
    /// Task nodes the operator added to pools that `spec.taskPools` no longer
    /// lists (removed or renamed), by pool: in no pool and never removed,
    /// but counted toward the 500 limit. Add the pool back to manage them,
    /// or remove them in the cloud's console.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted_pools: Vec<PoolNodes>,
    /// When it was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}

/// A pool's name and its nodes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolNodes {
    pub name: String,
    pub nodes: i32,
}

/// One planned step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub group: NodeGroup,
    /// The `spec.taskPools` entry the step scales; absent for Core and the default Task pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub direction: Direction,
    pub count: i32,
}

/// How an operation ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The cloud reported it done and the counts moved.
    Succeeded,
    /// The cloud rejected it or reported it failed.
    Failed,
    /// The cloud never accepted it (resolved by observation after a crash or an ambiguous error).
    NotApplied,
}

/// A scale operation: the write-ahead record in `pendingOperation`, then `lastOperation`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    /// Deterministic id (from uid, generation and step); also the idempotency token (Tencent ClientToken).
    pub id: String,
    pub group: NodeGroup,
    /// The `spec.taskPools` entry the operation scales; absent for Core and the default Task pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub direction: Direction,
    /// Nodes to add or remove.
    pub count: i32,
    /// Group size when the operation was planned.
    pub from_count: i32,
    /// Group size the operation should reach.
    pub to_count: i32,
    pub started_at: Time,
    /// True once the cloud accepted the call; false while only the write-ahead record exists.
    #[serde(default)]
    pub accepted: bool,
    /// How many times the call was sent (retries reuse the same token).
    #[serde(default)]
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Nodes chosen for removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<String>,
    /// Preferred nodes (spec.scaleIn.preferNodes) that the scale-in call could not name for removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_preferred_nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The last error, with the cloud's own code and request id.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRecord {
    /// The cloud's code (e.g. ResourceInUse.InstanceInProcess, 12000018) or ours (InvalidSpec).
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Throttled, Busy, Transient, Capacity, Quota, Auth, Invalid, NotFound, Billing, InvalidSpec, CredentialsMissing, ...
    #[schemars(with = "String")]
    pub class: FailureClass,
    /// The cloud action that failed, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub at: Time,
}

/// Observed state of a ScaledCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScaledClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub phase: Phase,
    /// tencent, huawei or simulated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Why the resource is in this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedStatus>,
    /// The remaining steps to converge, in the order they will run.
    #[serde(default)]
    pub plan: Vec<PlanStep>,
    // Boxed, as is `last_error`: absent from most statuses, they would
    // otherwise take their whole size (about 380 bytes) in every cached
    // object (docs/benchmarks.md, issue 26).
    /// Written before the cloud call (write-ahead); resolved by observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<Box<OperationRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<OperationRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Box<ErrorRecord>>,
    /// Operations issued for the current generation; part of the idempotency token.
    #[serde(default)]
    pub step: i64,
    /// Ready, Progressing, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Each `spec.taskPools` entry, in list order: its desired (clamped) and observed nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolStatus>,
    /// `observed/desired` of each pool of `pools`, comma-separated (`2/2,7/10`), for the
    /// Pools printer column; `?` for a pool the cloud did not report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools_summary: Option<String>,
    /// Groups that are never written to again in this generation, and why:
    /// a call that opened a billing order in the cloud (an MRS expand of a
    /// yearly/monthly node group answers an `order_id`). Sending again would
    /// open another order; a new generation (any spec change) clears them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_writes: Vec<HeldWrite>,
    /// Label selector of the scale subresource (`labelSelectorPath`), which an
    /// HPA or KEDA needs before it will scale: it names this ScaledCluster and
    /// selects no pod, as the metrics that drive a Task count are external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A group the controller writes no more in this generation (`status.heldWrites[]`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeldWrite {
    pub group: NodeGroup,
    /// The `spec.taskPools` entry; absent for Core and the default Task pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The `metadata.generation` the hold belongs to.
    pub generation: i64,
    /// The cloud's code for the refusal (e.g. PrepaidNodeGroup).
    pub reason: String,
    /// The billing order the call opened, to pay or cancel in the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The request that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub message: String,
    pub since: Time,
}

impl HeldWrite {
    /// Whether the hold is on `group` / `pool`.
    pub fn holds(&self, group: NodeGroup, pool: Option<&str>) -> bool {
        self.group == group && self.pool.as_deref() == pool
    }
}

/// One Task pool in status (`status.pools[]`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// The pool's name (`spec.taskPools[].name`).
    pub name: String,
    /// The nodes the pool should have: its `count` clamped into `[min, max]`.
    pub desired: i32,
    /// The nodes the cloud reports in the pool; absent when it did not report the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<i32>,
}

impl PoolStatus {
    /// `observed/desired` of each pool (`2/2,7/10`, `?` for an unreported pool); `None` without pools.
    pub fn summary(pools: &[PoolStatus]) -> Option<String> {
        (!pools.is_empty()).then(|| {
            pools
                .iter()
                .map(|p| {
                    let observed = p
                        .observed
                        .map_or_else(|| "?".to_string(), |n| n.to_string());
                    format!("{observed}/{}", p.desired)
                })
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// The label key of [`scale_selector`].
pub const SCALE_SELECTOR_LABEL: &str = "clusterscale.io/scaledcluster";

/// The `status.selector` the operator writes for the ScaledCluster `name`.
pub fn scale_selector(name: &str) -> String {
    format!("{SCALE_SELECTOR_LABEL}={name}")
}

/// The CRD as YAML, exactly as `clusterscale crd` prints it and `crds/scaledcluster.yaml` holds it.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let yaml = serde_yaml_ng::to_string(&ScaledCluster::crd()).expect("the CRD serialises");
    format!("# Generated by `clusterscale crd` from crates/core/src/api. Do not edit by hand.\n---\n{yaml}")
}
