//! MRS answers, read without I/O: a cluster detail becomes the observed
//! state, counts and node group names ([`interpret`]), an operation's
//! [`progress`]; a host list the Task hosts a scale-in names
//! ([`choose_task_hosts`]); and [`precheck`] holds a resize to the seed's
//! rules against an observation. [`client`](super::client) sends the
//! requests and calls these.

use super::wire::{
    AutoScalingPolicy, AutoScalingPolicyV2, ClusterDetail, ClusterNode, ExpandResponse, Host,
    ShrinkResponse, ACTION_EXPAND, ACTION_RESIZE, ACTION_SHOW, ACTION_SHRINK, BILLING_ON_PERIOD,
    BILLING_ON_QUANTITY, RESULT_FAILED, RESULT_SUCCESS, RESULT_V2_SUCCEEDED,
};
use clusterscale_core::api::{
    nodes_of, Direction, HuaweiSpec, NodeGroup, OperationRecord, TaskPoolSpec, MAX_TOTAL, MIN_CORE,
};
use clusterscale_core::cloud::{
    CloudError, ClusterState, Effect, ErrorClass, Node, ObservedCluster, OperationProgress,
    ScaleRequest,
};

/// The node group names a resize uses: `spec.huawei.coreNodeGroup` /
/// `taskNodeGroup`, else the names the cluster reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroups {
    pub core: String,
    pub task: String,
}

impl NodeGroups {
    pub fn name(&self, group: NodeGroup) -> &str {
        match group {
            NodeGroup::Core => &self.core,
            NodeGroup::Task => &self.task,
        }
    }
}

/// What an observation yields: the normalised state and the group names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreted {
    pub observed: ObservedCluster,
    pub groups: NodeGroups,
    /// `clusterType`, when the detail says it.
    pub cluster_type: Option<MrsClusterType>,
    /// Every node group and its `NodeNum` ([`group_counts`]).
    pub group_counts: Vec<GroupCount>,
}

pub(crate) fn precheck_error(class: ErrorClass, code: &str, message: String) -> CloudError {
    CloudError::new(class, ACTION_RESIZE, code, format!("not sent: {message}")).blocked_by_check()
}

/// The seed's rules, checked against the latest observation before a resize.
pub fn precheck(
    observed: &ObservedCluster,
    req: &ScaleRequest,
    direction: Direction,
) -> Result<(), CloudError> {
    if req.count <= 0 {
        return Err(precheck_error(
            ErrorClass::Invalid,
            "PrecheckCount",
            format!(
                "the node count to {} must be positive, got {}",
                verb(direction),
                req.count
            ),
        ));
    }
    if !observed.state.is_running() {
        return Err(precheck_error(
            ErrorClass::Busy,
            "PrecheckNotRunning",
            format!(
                "MRS resizes only running, idle clusters; the cluster is {}",
                observed.state
            ),
        ));
    }
    // Every node the operator counts: Core, the default Task pool and every pool.
    let total = observed.total();
    let pool = req.pool.as_ref().map(|p| p.name.as_str());
    match (req.group, direction) {
        (_, Direction::Out) => {
            let room = MAX_TOTAL - total;
            if req.count > room {
                let pools: i32 = observed.pools.values().sum();
                let in_pools = if pools > 0 {
                    format!(" and {pools} in pools")
                } else {
                    String::new()
                };
                return Err(precheck_error(
                    ErrorClass::Invalid,
                    "PrecheckMaxTotal",
                    format!(
                        "adding {} {} would exceed {MAX_TOTAL} Core+Task nodes: the cluster has {} Core and {} Task{in_pools}, \
                         so at most {} can be added",
                        req.count,
                        nodes_of(req.group, pool),
                        observed.core,
                        observed.task,
                        room.max(0)
                    ),
                ));
            }
        }
        (NodeGroup::Core, Direction::In) => {
            if observed.core - req.count < MIN_CORE {
                return Err(precheck_error(
                    ErrorClass::Invalid,
                    "PrecheckMinCore",
                    format!(
                        "removing {} of {} Core nodes would leave {}; MRS keeps at least {MIN_CORE} Core nodes \
                         (at most {} can be removed)",
                        req.count,
                        observed.core,
                        observed.core - req.count,
                        (observed.core - MIN_CORE).max(0)
                    ),
                ));
            }
        }
        (NodeGroup::Task, Direction::In) => {
            let have = observed.count_of(NodeGroup::Task, pool);
            if req.count > have {
                return Err(precheck_error(
                    ErrorClass::Invalid,
                    "PrecheckTaskCount",
                    format!(
                        "cannot remove {} {}: the cluster has {have}",
                        req.count,
                        nodes_of(NodeGroup::Task, pool)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn verb(direction: Direction) -> &'static str {
    match direction {
        Direction::Out => "add",
        Direction::In => "remove",
    }
}

/// Pick `count` Task hosts of `group` to remove: the preferred ones that
/// exist (in the given order), then hosts that are not running, then the
/// rest by name, newest-looking (highest) first. Returns fewer when the
/// group has fewer hosts.
pub fn choose_task_hosts(
    hosts: &[Host],
    group: &str,
    prefer: &[String],
    count: i32,
) -> Vec<String> {
    let count = usize::try_from(count).unwrap_or(0);
    let in_group: Vec<&Host> = hosts.iter().filter(|h| in_task_group(h, group)).collect();
    let mut chosen: Vec<String> = Vec::new();
    for id in prefer {
        if chosen.len() >= count {
            break;
        }
        if in_group.iter().any(|h| &h.id == id) && !chosen.contains(id) {
            chosen.push(id.clone());
        } else if !in_group.iter().any(|h| &h.id == id) {
            tracing::info!(node = %id, group, "preferred node is not a Task host of the group; skipped");
        }
    }
    let mut rest: Vec<&&Host> = in_group
        .iter()
        .filter(|h| !chosen.contains(&h.id))
        .collect();
    rest.sort_by(|a, b| {
        let a_ok = host_is_healthy(&a.status);
        let b_ok = host_is_healthy(&b.status);
        a_ok.cmp(&b_ok).then_with(|| b.name.cmp(&a.name))
    });
    for h in rest {
        if chosen.len() >= count {
            break;
        }
        // A host listed twice (ListHosts pages that moved between requests)
        // is one host: naming it twice would remove fewer nodes than asked.
        if !chosen.contains(&h.id) {
            chosen.push(h.id.clone());
        }
    }
    chosen
}

/// The group of a ListHosts `type`: the SDK's `CoreNode` / `TaskNode` and the
/// reference example's `Core` / `Task` (OTC `querying_a_host_list.rst`), in
/// any case. Master and unknown types are none.
pub fn host_group(host_type: &str) -> Option<NodeGroup> {
    let t = host_type.trim();
    if t.eq_ignore_ascii_case("CoreNode") || t.eq_ignore_ascii_case("Core") {
        Some(NodeGroup::Core)
    } else if t.eq_ignore_ascii_case("TaskNode") || t.eq_ignore_ascii_case("Task") {
        Some(NodeGroup::Task)
    } else {
        None
    }
}

/// A host that runs: `running` (SDK) and `ACTIVE` (the reference example,
/// an ECS status) alike, in any case.
pub fn host_is_healthy(status: &str) -> bool {
    let s = status.trim();
    s.eq_ignore_ascii_case("running") || s.eq_ignore_ascii_case("active")
}

/// A Task host of `group`; a host without `node_group_name` (the reference
/// example has none) counts as one of the group.
fn in_task_group(h: &Host, group: &str) -> bool {
    host_group(&h.host_type) == Some(NodeGroup::Task)
        && h.node_group_name.as_deref().is_none_or(|g| g == group)
}

/// The preferred nodes (distinct, in order) that are not Task hosts of `group`.
pub fn unmatched_preferred(hosts: &[Host], group: &str, prefer: &[String]) -> Vec<String> {
    distinct(prefer)
        .into_iter()
        .filter(|id| !hosts.iter().any(|h| &h.id == id && in_task_group(h, group)))
        .collect()
}

pub(crate) fn distinct(ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// Start of the state detail of an `abnormal` cluster.
pub const ABNORMAL: &str = "abnormal";
/// The detail when the hosts do not say which nodes are not running.
pub const ABNORMAL_SOME: &str = "abnormal: some nodes are not running";

/// True for the state [`interpret`] gives an `abnormal` cluster.
pub fn is_abnormal(state: &ClusterState) -> bool {
    matches!(state, ClusterState::Unavailable(d) if d.starts_with(ABNORMAL))
}

/// "abnormal: N node(s) not running (names)", from the host list; `None`
/// when every listed host runs.
pub fn abnormal_detail(hosts: &[Host]) -> Option<String> {
    let down: Vec<&str> = hosts
        .iter()
        .filter(|h| !host_is_healthy(&h.status))
        .map(|h| {
            if h.name.is_empty() {
                h.id.as_str()
            } else {
                h.name.as_str()
            }
        })
        .collect();
    if down.is_empty() {
        return None;
    }
    const SHOWN: usize = 5;
    let mut names = down
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if down.len() > SHOWN {
        names.push_str(&format!(", and {} more", down.len() - SHOWN));
    }
    Some(format!(
        "{ABNORMAL}: {} node{} not running ({names})",
        down.len(),
        if down.len() == 1 { "" } else { "s" }
    ))
}

/// Normalise a cluster detail: state, Core and Task counts, group names
/// ([`interpret_pools`] with no named pool; a refusal becomes its message).
pub fn interpret(detail: &ClusterDetail, spec: &HuaweiSpec) -> Result<Interpreted, String> {
    interpret_pools(detail, spec, &[]).map_err(|e| match e {
        ReadError::Malformed(m) => m,
        ReadError::Refused(e) => e.message,
    })
}

/// Why a cluster detail could not be read as an observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The answer itself is wrong (no state, no Core count, ...).
    Malformed(String),
    /// The answer is fine, but the spec does not fit the cluster: a group it
    /// names is not there ([`UNKNOWN_NODE_GROUP`]), a custom cluster without
    /// `spec.huawei.coreNodeGroup` ([`NODE_GROUP_REQUIRED`]), a pool on the
    /// Core or default Task group ([`NODE_GROUP_CONFLICT`]). `Invalid`.
    Refused(CloudError),
}

/// Code of a group named in the spec that the cluster does not have.
pub const UNKNOWN_NODE_GROUP: &str = "UnknownNodeGroup";
/// Code of a custom cluster whose spec does not name the group to scale.
pub const NODE_GROUP_REQUIRED: &str = "NodeGroupRequired";
/// Code of a pool whose node group is the Core or the default Task group.
pub const NODE_GROUP_CONFLICT: &str = "NodeGroupConflict";
/// Code of a prepaid (on-period) node group: never written to.
pub const PREPAID_NODE_GROUP: &str = "PrepaidNodeGroup";
/// Code of a managed node group whose MRS auto-scaling policy is enabled.
pub const CLOUD_AUTOSCALER_CONFLICT: &str = "CloudAutoscalerConflict";

/// The cluster's node groups, for messages: `node_group_1 (2), node_group_2 (3)`.
pub fn describe_groups(groups: &[GroupCount]) -> String {
    if groups.is_empty() {
        return "none listed".to_string();
    }
    groups
        .iter()
        .map(|g| match g.count {
            Some(n) => format!("{} ({n})", g.name),
            None => g.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether MRS v1.1's `PUT cluster_infos` can address `group` of a cluster
/// of type `cluster_type`: only analysis, streaming and hybrid clusters (the
/// v1.1 resize page: "not custom clusters"; a detail without `clusterType`
/// is the seed's world, read as one of them), and only their standard
/// groups: the `*_default_group`s the v1.1 reference names, and the
/// `core_node_{analysis,streaming}_group` / `task_node_{analysis,streaming}_group`
/// that Terraform's v1.1 resize sent (cloud-apis.md B2) and whose
/// ShowClusterDetails names they are. A hybrid cluster's
/// `task_node_streaming_group` is one of them.
pub fn v11_addresses(cluster_type: Option<MrsClusterType>, group: &str) -> bool {
    const V11_GROUPS: [&str; 6] = [
        "core_node_default_group",
        "task_node_default_group",
        "core_node_analysis_group",
        "core_node_streaming_group",
        "task_node_analysis_group",
        "task_node_streaming_group",
    ];
    cluster_type.is_none_or(MrsClusterType::v11_resize_applies) && V11_GROUPS.contains(&group)
}

/// [`interpret`], with each pool of `pools` counted by its node group
/// (`spec.taskPools[].huawei.nodeGroup`) into [`ObservedCluster::pools`].
/// Every count comes from this one detail's `nodeGroups[]`.
///
/// - Core: `spec.huawei.coreNodeGroup`, else the cluster's Core group
///   (`core_node_*`); a custom cluster has no such name, so there the spec
///   must name it ([`NODE_GROUP_REQUIRED`]).
/// - The default Task pool: `spec.huawei.taskNodeGroup`, else the cluster's
///   Task group; on a custom cluster without it, none (0 nodes; a write to
///   it is refused naming the field). Never a pool's nodes.
/// - A group the spec names that the detail does not list is
///   [`UNKNOWN_NODE_GROUP`], naming it and the groups the cluster has;
///   except a default Task group of a v1.1 cluster, which v1.1 creates when
///   Task grows from 0 (`task_node_info`).
/// - A pool on the Core or the default Task group is [`NODE_GROUP_CONFLICT`]
///   (its nodes would count twice).
///
/// `abnormal` (some nodes unhealthy) is settled, not failed (Terraform waits
/// for `running` or `abnormal`; only `failed` is an error), but MRS resizes
/// only running clusters: it becomes [`ClusterState::Unavailable`] with
/// [`ABNORMAL_SOME`], so the plan waits, and [`progress`] lets an operation
/// whose counts arrived succeed.
pub fn interpret_pools(
    detail: &ClusterDetail,
    spec: &HuaweiSpec,
    pools: &[TaskPoolSpec],
) -> Result<Interpreted, ReadError> {
    let malformed = ReadError::Malformed;
    let listed = group_counts(detail);
    let kind = cluster_type(detail);
    let refuse = |code: &str, message: String| {
        ReadError::Refused(CloudError::new(
            ErrorClass::Invalid,
            ACTION_SHOW,
            code,
            message,
        ))
    };
    let named = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    // v1.1 cannot resize a custom cluster, and nothing there is named after a role.
    let user_named = kind.is_some_and(|t| !t.v11_resize_applies());
    let task_listed: Vec<&str> = detail
        .task_node_groups
        .iter()
        .map(|g| g.group_name.as_str())
        .collect();
    let core_names: Vec<&str> = listed
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| n.starts_with("core_node"))
        .collect();
    let task_names: Vec<&str> = listed
        .iter()
        .map(|g| g.name.as_str())
        .filter(|n| n.starts_with("task_node") || task_listed.contains(n))
        .collect();
    let core = match named(&spec.core_node_group) {
        Some(c) => c,
        None if user_named => {
            return Err(refuse(
                NODE_GROUP_REQUIRED,
                format!(
                    "spec.huawei.coreNodeGroup is required: cluster {} is a {} cluster, which MRS v1.1 cannot \
                     resize and whose node groups are named by the user; set it to the Core group \
                     (and spec.huawei.taskNodeGroup to the Task group, if Task is managed). \
                     The cluster's node groups: {}",
                    spec.cluster_id,
                    kind.map(MrsClusterType::name).unwrap_or_default(),
                    describe_groups(&listed)
                ),
            ))
        }
        None => pick(
            &core_names,
            &["core_node_default_group", "core_node_analysis_group"],
        )
        .unwrap_or_else(|| "core_node_default_group".to_string()),
    };
    let task = match named(&spec.task_node_group) {
        Some(t) => t,
        // No default Task group: a write to it names the field.
        None if user_named => String::new(),
        None => pick(
            &task_names,
            &["task_node_default_group", "task_node_analysis_group"],
        )
        .unwrap_or_else(|| match core.strip_prefix("core_node") {
            // No Task group yet: MRS names it after the Core group.
            Some(rest) => format!("task_node{rest}"),
            None => "task_node_default_group".to_string(),
        }),
    };
    let has = |name: &str| listed.iter().any(|g| g.name == name);
    if !listed.is_empty() {
        let mut unknown: Vec<String> = Vec::new();
        if (named(&spec.core_node_group).is_some() || user_named) && !has(&core) {
            unknown.push(format!("{core} (spec.huawei.coreNodeGroup)"));
        }
        // v1.1 creates the default Task group when Task grows from 0.
        let creatable = v11_addresses(kind, &task) && task.starts_with("task_node");
        if named(&spec.task_node_group).is_some() && !has(&task) && !creatable {
            unknown.push(format!("{task} (spec.huawei.taskNodeGroup)"));
        }
        for p in pools {
            if let Some(g) = p.huawei.as_ref().map(|h| h.node_group.as_str()) {
                if !has(g) {
                    unknown.push(format!("{g} (spec.taskPools[{}].huawei.nodeGroup)", p.name));
                }
            }
        }
        if !unknown.is_empty() {
            return Err(refuse(
                UNKNOWN_NODE_GROUP,
                format!(
                    "cluster {} has no node group {}; its node groups: {}",
                    spec.cluster_id,
                    unknown.join(", no node group "),
                    describe_groups(&listed)
                ),
            ));
        }
    }
    for p in pools {
        let Some(g) = p.huawei.as_ref().map(|h| h.node_group.as_str()) else {
            continue;
        };
        let role = if g == core {
            Some("the Core group")
        } else if g == task {
            Some("the default Task group")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(refuse(
                NODE_GROUP_CONFLICT,
                format!(
                    "spec.taskPools[{}].huawei.nodeGroup {g} is {role} of cluster {} (spec.task counts it): \
                     a pool needs a node group of its own; its node groups: {}",
                    p.name,
                    spec.cluster_id,
                    describe_groups(&listed)
                ),
            ));
        }
    }
    let group_count = |name: &str| listed.iter().find(|g| g.name == name).and_then(|g| g.count);
    let core_count =
        if user_named || core_names.len() > 1 || named(&spec.core_node_group).is_some() {
            group_count(&core).or(detail.core_node_num)
        } else {
            detail.core_node_num.or_else(|| group_count(&core))
        }
        .ok_or_else(|| {
            malformed(format!(
                "cluster {:?} reports no coreNodeNum and no Core node group",
                detail.cluster_id
            ))
        })?;
    let task_count = group_count(&task).unwrap_or(0);
    let to_i32 = |what: &str, n: i64| {
        i32::try_from(n)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| malformed(format!("{what} count {n} is out of range")))
    };
    let core_count = to_i32("Core", core_count)?;
    let task_count = to_i32("Task", task_count)?;
    let mut pool_counts = std::collections::BTreeMap::new();
    for p in pools {
        if let Some(g) = p.huawei.as_ref().map(|h| h.node_group.as_str()) {
            let n = group_count(g).unwrap_or(0);
            pool_counts.insert(p.name.clone(), to_i32(&format!("pool {}", p.name), n)?);
        }
    }

    let stage = detail.stage_desc.trim();
    let with_stage = |s: &str| {
        if stage.is_empty() {
            s.to_string()
        } else {
            format!("{s}: {stage}")
        }
    };
    let mut last_resize_failed = None;
    let state = match detail.cluster_state.as_str() {
        "running" => match detail.scale.as_str() {
            // scaled-up-success reports a finished spec change (inference).
            "" | "scaled-up-success" => ClusterState::Running,
            "scaling-error" => {
                let reason = [stage, detail.error_info.trim()]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap_or("the last resize failed");
                last_resize_failed = Some(format!("scaling-error: {reason}"));
                ClusterState::Running
            }
            other => ClusterState::Busy(with_stage(other)),
        },
        s @ ("scaling-out" | "scaling-in") => ClusterState::Busy(with_stage(s)),
        "abnormal" => ClusterState::Unavailable(ABNORMAL_SOME.to_string()),
        "failed" => ClusterState::Failed(with_stage("failed")),
        "" => {
            return Err(malformed(format!(
                "cluster {:?} reports no clusterState",
                detail.cluster_id
            )))
        }
        other => ClusterState::Unavailable(with_stage(other)),
    };
    Ok(Interpreted {
        observed: ObservedCluster {
            state,
            core: core_count,
            task: task_count,
            pools: pool_counts,
            nodes: Vec::new(),
            last_resize_failed,
            unmanaged: Default::default(),
        },
        groups: NodeGroups { core, task },
        cluster_type: kind,
        group_counts: listed,
    })
}

fn pick(names: &[&str], preferred: &[&str]) -> Option<String> {
    if names.len() <= 1 {
        return names.first().map(|s| s.to_string());
    }
    preferred
        .iter()
        .find(|p| names.contains(p))
        .map(|s| s.to_string())
        .or_else(|| {
            let mut sorted = names.to_vec();
            sorted.sort();
            sorted.first().map(|s| s.to_string())
        })
}

/// Nodes for the trait's `ObservedCluster.nodes`, from ListHosts.
pub fn hosts_to_nodes(hosts: &[Host]) -> Vec<Node> {
    hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let group = host_group(&h.host_type)?;
            Some(Node {
                id: h.id.clone(),
                group,
                removable: true,
                added_order: i as i64,
            })
        })
        .collect()
}

/// Progress of `op` as far as the cluster detail states it; everything else
/// (success by counts, an operation MRS never showed) is left to the engine,
/// which decides by state, counts and
/// [`Capabilities::acceptance_grace`](clusterscale_core::cloud::Capabilities::acceptance_grace).
///
/// - a failed cluster state: Failed;
/// - busy (scaling, or any other operation): Running;
/// - `abnormal` with `op`'s target reached: Succeeded (the resize is over;
///   some nodes are unhealthy, which the plan waits out);
/// - idle with `scale: scaling-error` and `op`'s target not reached: Failed
///   with MRS's reason. `observed` comes from [`HuaweiCloud`](super::HuaweiCloud)'s observation,
///   which leaves out a `scaling-error` already shown before the resize was
///   sent, so only a failure reported after the operation started counts;
/// - otherwise (idle, reached or not; unavailable): Unknown.
pub fn progress(observed: &ObservedCluster, op: &OperationRecord) -> OperationProgress {
    // A v2 operation on a pool is judged by the pool's group, as v1.1's by Core or Task.
    let count = observed.count_of(op.group, op.pool.as_deref());
    let reached = match op.direction {
        Direction::Out => count >= op.to_count,
        Direction::In => count <= op.to_count,
    };
    match (&observed.state, &observed.last_resize_failed) {
        (ClusterState::Failed(d), _) => OperationProgress::Failed(format!("the cluster is {d}")),
        (ClusterState::Busy(_), _) => OperationProgress::Running,
        (state, _) if reached && is_abnormal(state) => OperationProgress::Succeeded,
        // A reached target wins over a reported failure.
        (ClusterState::Running, Some(reason)) if !reached => {
            OperationProgress::Failed(reason.clone())
        }
        _ => OperationProgress::Unknown,
    }
}

// --- node groups (MRS v2, cloud-apis.md C1) --------------------------------

/// `clusterType` of ShowClusterDetails (an integer in the SDK's
/// `services/mrs/v1/model/model_cluster.go`). The values are the Terraform
/// provider's (`setMrsClsuterType`: ANALYSIS, STREAMING, MIXED, CUSTOM in
/// that order); the SDK's comment only says "集群类型".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MrsClusterType {
    /// 0: groups `core_node_analysis_group`, `task_node_analysis_group`.
    Analysis,
    /// 1: groups `core_node_streaming_group`, `task_node_streaming_group`.
    Streaming,
    /// 2 (MIXED): both kinds of groups.
    Hybrid,
    /// 3: groups named by the user (`node_group_1`, ...), roles per group;
    /// v1.1's resize does not apply ("not custom clusters").
    Custom,
    /// A value none of the above.
    Other(i64),
}

impl MrsClusterType {
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Analysis,
            1 => Self::Streaming,
            2 => Self::Hybrid,
            3 => Self::Custom,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Self::Analysis => 0,
            Self::Streaming => 1,
            Self::Hybrid => 2,
            Self::Custom => 3,
            Self::Other(n) => n,
        }
    }

    /// `analysis`, `streaming`, `hybrid`, `custom` or `type <n>`.
    pub fn name(self) -> String {
        match self {
            Self::Analysis => "analysis".into(),
            Self::Streaming => "streaming".into(),
            Self::Hybrid => "hybrid".into(),
            Self::Custom => "custom".into(),
            Self::Other(n) => format!("type {n}"),
        }
    }

    /// Whether v1.1's `PUT cluster_infos` resize applies: the resize page
    /// says "only streaming, analysis and hybrid clusters".
    pub fn v11_resize_applies(self) -> bool {
        matches!(self, Self::Analysis | Self::Streaming | Self::Hybrid)
    }
}

/// The cluster's type, when the detail says it.
pub fn cluster_type(detail: &ClusterDetail) -> Option<MrsClusterType> {
    detail.cluster_type.map(MrsClusterType::from_code)
}

/// One node group of ShowClusterDetails and its `NodeNum`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCount {
    pub name: String,
    /// `None` when the group reports no `NodeNum`.
    pub count: Option<i64>,
}

/// Every named group of `nodeGroups[]` then `taskNodeGroups[]`, first
/// occurrence wins (a Task group may be listed in both), master included.
pub fn group_counts(detail: &ClusterDetail) -> Vec<GroupCount> {
    let mut out: Vec<GroupCount> = Vec::new();
    for g in detail.node_groups.iter().chain(&detail.task_node_groups) {
        if !g.group_name.is_empty() && !out.iter().any(|c| c.name == g.group_name) {
            out.push(GroupCount {
                name: g.group_name.clone(),
                count: g.node_num,
            });
        }
    }
    out
}

/// What a v2 expand or shrink that MRS accepted led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupResizeOutcome {
    /// The operation started (`result` `succeeded` or `success`).
    Accepted { request_id: Option<String> },
    /// The group is prepaid (on-period): MRS opened order `order_id` and
    /// nothing scales until somebody pays it. We never pay orders.
    OrderPending {
        order_id: String,
        request_id: Option<String>,
    },
}

impl GroupResizeOutcome {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Accepted { request_id } | Self::OrderPending { request_id, .. } => {
                request_id.as_deref()
            }
        }
    }
}

fn v2_result(
    action: &str,
    result: Option<&str>,
    request_id: Option<String>,
) -> Result<GroupResizeOutcome, CloudError> {
    match result.map(str::trim) {
        Some(RESULT_V2_SUCCEEDED | RESULT_SUCCESS) => Ok(GroupResizeOutcome::Accepted { request_id }),
        // MRS handled it and said no: nothing was started. As 12000013/14
        // (the resize itself failed): retried slowly, surfaced.
        Some(RESULT_FAILED) => Err(CloudError::new(
            ErrorClass::Capacity,
            action,
            "ResultFailed",
            format!("{action} answered result=\"failed\""),
        )
        .with_request_id(request_id)
        .with_effect(Effect::Refused)),
        // 2xx but neither: we cannot tell whether MRS acted.
        other => Err(CloudError::new(
            ErrorClass::Transient,
            action,
            "UnexpectedResult",
            format!(
                "{action} answered result={other:?}, expected {RESULT_V2_SUCCEEDED:?} or {RESULT_SUCCESS:?}"
            ),
        )
        .with_request_id(request_id)
        .effect_unknown()),
    }
}

/// Read an expand answer: an `order_id` (prepaid group) first, whatever the
/// `result`; then `succeeded`/`success` accepted, `failed` refused
/// (`Capacity`, [`Effect::Refused`]), anything else unknown (`Transient`,
/// [`Effect::Unknown`]).
pub fn expand_outcome(
    resp: &ExpandResponse,
    request_id: Option<String>,
) -> Result<GroupResizeOutcome, CloudError> {
    if let Some(order_id) = resp
        .order_id
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        return Ok(GroupResizeOutcome::OrderPending {
            order_id: order_id.to_string(),
            request_id,
        });
    }
    v2_result(ACTION_EXPAND, resp.result.as_deref(), request_id)
}

/// Read a shrink answer, as [`expand_outcome`] (a shrink has no order).
pub fn shrink_outcome(
    resp: &ShrinkResponse,
    request_id: Option<String>,
) -> Result<GroupResizeOutcome, CloudError> {
    v2_result(ACTION_SHRINK, resp.result.as_deref(), request_id)
}

/// The nodes of one group in ListNodes, by billing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupNodes {
    pub total: usize,
    /// `billing_type: on-period` (prepaid).
    pub on_period: usize,
    /// `billing_type: on-quantity` (pay-per-use).
    pub on_quantity: usize,
    /// Resource ids, in listing order (nodes without one are left out).
    pub resource_ids: Vec<String>,
}

/// ListNodes' nodes per `node_group_name` (nodes without one under `""`).
pub fn nodes_by_group(nodes: &[ClusterNode]) -> std::collections::BTreeMap<String, GroupNodes> {
    let mut out: std::collections::BTreeMap<String, GroupNodes> = Default::default();
    for n in nodes {
        let g = out
            .entry(n.node_group_name.clone().unwrap_or_default())
            .or_default();
        g.total += 1;
        match n.billing_type.as_deref().map(str::trim) {
            Some(BILLING_ON_PERIOD) => g.on_period += 1,
            Some(BILLING_ON_QUANTITY) => g.on_quantity += 1,
            _ => {}
        }
        if let Some(id) = n.resource_id.as_deref().filter(|i| !i.is_empty()) {
            g.resource_ids.push(id.to_string());
        }
    }
    out
}

/// The policy of `group` (any resource pool; the first listed), on or off.
pub fn policy_of<'a>(
    policies: &'a [AutoScalingPolicyV2],
    group: &str,
) -> Option<&'a AutoScalingPolicy> {
    policies
        .iter()
        .filter(|p| p.node_group_name.as_deref() == Some(group))
        .find_map(|p| p.auto_scaling_policy.as_ref())
}

/// The groups whose auto-scaling policy is enabled (sorted, distinct):
/// MRS itself changes their counts, and the nodes it adds carry no marker.
pub fn autoscaled_groups(policies: &[AutoScalingPolicyV2]) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .filter(|p| {
            p.auto_scaling_policy
                .as_ref()
                .is_some_and(|a| a.auto_scaling_enable)
        })
        .filter_map(|p| p.node_group_name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::NodeGroupV10;

    pub(crate) fn spec() -> HuaweiSpec {
        HuaweiSpec::test()
    }

    fn group(name: &str, n: i64) -> NodeGroupV10 {
        NodeGroupV10 {
            group_name: name.into(),
            node_num: Some(n),
            ..Default::default()
        }
    }

    fn detail(state: &str, scale: &str, core: i64, groups: Vec<NodeGroupV10>) -> ClusterDetail {
        ClusterDetail {
            cluster_id: "c".into(),
            cluster_state: state.into(),
            scale: scale.into(),
            core_node_num: Some(core),
            node_groups: groups,
            ..Default::default()
        }
    }

    #[test]
    fn interpret_reads_counts_and_real_group_names() {
        let d = detail(
            "running",
            "",
            4,
            vec![
                group("master_node_default_group", 2),
                group("core_node_analysis_group", 4),
                group("task_node_analysis_group", 3),
            ],
        );
        let v = interpret(&d, &spec()).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (4, 3));
        assert_eq!(v.observed.state, ClusterState::Running);
        assert_eq!(
            v.groups,
            NodeGroups {
                core: "core_node_analysis_group".into(),
                task: "task_node_analysis_group".into()
            }
        );
        // The same task group listed twice is counted once.
        let mut d2 = d.clone();
        d2.task_node_groups = vec![group("task_node_analysis_group", 3)];
        assert_eq!(interpret(&d2, &spec()).unwrap().observed.task, 3);
    }

    #[test]
    fn interpret_without_task_group_derives_its_name() {
        let d = detail(
            "running",
            "",
            3,
            vec![group("core_node_streaming_group", 3)],
        );
        let v = interpret(&d, &spec()).unwrap();
        assert_eq!(v.observed.task, 0);
        assert_eq!(v.groups.task, "task_node_streaming_group");
        let d = detail("running", "", 3, vec![]);
        let v = interpret(&d, &spec()).unwrap();
        assert_eq!(
            v.groups,
            NodeGroups {
                core: "core_node_default_group".into(),
                task: "task_node_default_group".into()
            }
        );
        let mut s = spec();
        s.core_node_group = Some("my_core".into());
        s.task_node_group = Some("my_task".into());
        let v = interpret(&d, &s).unwrap();
        assert_eq!(
            v.groups,
            NodeGroups {
                core: "my_core".into(),
                task: "my_task".into()
            }
        );
    }

    #[test]
    fn interpret_several_groups_uses_the_chosen_one() {
        let d = detail(
            "running",
            "",
            9,
            vec![
                group("core_node_analysis_group", 5),
                group("core_node_streaming_group", 4),
                group("task_node_analysis_group", 1),
                group("task_node_streaming_group", 2),
            ],
        );
        let v = interpret(&d, &spec()).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (5, 1));
        let mut s = spec();
        s.core_node_group = Some("core_node_streaming_group".into());
        s.task_node_group = Some("task_node_streaming_group".into());
        let v = interpret(&d, &s).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (4, 2));
    }

    #[test]
    fn interpret_states() {
        let g = vec![group("core_node_default_group", 3)];
        let state = |c: &str, s: &str| {
            interpret(&detail(c, s, 3, g.clone()), &spec())
                .unwrap()
                .observed
        };
        assert_eq!(state("running", "").state, ClusterState::Running);
        assert_eq!(
            state("running", "scaled-up-success").state,
            ClusterState::Running
        );
        assert_eq!(
            state("running", "scaling-out").state,
            ClusterState::Busy("scaling-out".into())
        );
        assert_eq!(
            state("scaling-in", "").state,
            ClusterState::Busy("scaling-in".into())
        );
        assert!(matches!(state("failed", "").state, ClusterState::Failed(_)));
        // abnormal is settled, not failed: the plan waits, with the reason.
        let abnormal = state("abnormal", "").state;
        assert_eq!(abnormal, ClusterState::Unavailable(ABNORMAL_SOME.into()));
        assert!(is_abnormal(&abnormal));
        assert!(!is_abnormal(&state("frozen", "").state));
        assert!(matches!(
            state("frozen", "").state,
            ClusterState::Unavailable(_)
        ));
        assert!(matches!(
            state("starting", "").state,
            ClusterState::Unavailable(_)
        ));
        let mut d = detail("running", "scaling-error", 3, g.clone());
        d.stage_desc = "Cluster expansion failed".into();
        let o = interpret(&d, &spec()).unwrap().observed;
        assert_eq!(o.state, ClusterState::Running);
        assert_eq!(
            o.last_resize_failed.as_deref(),
            Some("scaling-error: Cluster expansion failed")
        );
        let mut d = detail("scaling-out", "scaling-out", 3, g.clone());
        d.stage_desc = "Adding node to the cluster".into();
        assert_eq!(
            interpret(&d, &spec()).unwrap().observed.state,
            ClusterState::Busy("scaling-out: Adding node to the cluster".into())
        );
        assert!(interpret(&detail("", "", 3, g.clone()), &spec())
            .unwrap_err()
            .contains("clusterState"));
        let mut d = detail("running", "", 3, vec![]);
        d.core_node_num = None;
        assert!(interpret(&d, &spec()).unwrap_err().contains("coreNodeNum"));
    }

    pub(crate) fn observed(core: i32, task: i32) -> ObservedCluster {
        ObservedCluster {
            state: ClusterState::Running,
            core,
            task,
            pools: Default::default(),
            nodes: vec![],
            last_resize_failed: None,
            unmanaged: Default::default(),
        }
    }

    fn req(group: NodeGroup, count: i32) -> ScaleRequest {
        ScaleRequest {
            group,
            pool: None,
            count,
            from_count: 0,
            token: "t".into(),
            prefer_nodes: vec![],
            graceful_timeout_seconds: 0,
        }
    }

    #[test]
    fn precheck_enforces_the_seed_rules() {
        let o = observed(10, 40);
        assert!(precheck(&o, &req(NodeGroup::Task, 450), Direction::Out).is_ok());
        let e = precheck(&o, &req(NodeGroup::Task, 451), Direction::Out).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Invalid, "PrecheckMaxTotal")
        );
        assert!(e.message.contains("at most 450"), "{}", e.message);
        assert!(precheck(&o, &req(NodeGroup::Core, 7), Direction::In).is_ok());
        let e = precheck(&o, &req(NodeGroup::Core, 8), Direction::In).unwrap_err();
        assert_eq!(e.code, "PrecheckMinCore");
        assert!(e.message.contains("at most 7"), "{}", e.message);
        let e = precheck(&observed(3, 0), &req(NodeGroup::Core, 1), Direction::In).unwrap_err();
        assert_eq!(e.code, "PrecheckMinCore");
        assert!(precheck(&o, &req(NodeGroup::Task, 40), Direction::In).is_ok());
        assert_eq!(
            precheck(&o, &req(NodeGroup::Task, 41), Direction::In)
                .unwrap_err()
                .code,
            "PrecheckTaskCount"
        );
        assert_eq!(
            precheck(&o, &req(NodeGroup::Task, 0), Direction::Out)
                .unwrap_err()
                .code,
            "PrecheckCount"
        );
        let mut busy = o.clone();
        busy.state = ClusterState::Busy("scaling-out".into());
        let e = precheck(&busy, &req(NodeGroup::Task, 1), Direction::Out).unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Busy, "PrecheckNotRunning")
        );
        assert_eq!(e.action, ACTION_RESIZE);
        assert!(e.request_id.is_none());
    }

    fn host(id: &str, name: &str, kind: &str, status: &str, group: &str) -> Host {
        Host {
            id: id.into(),
            name: name.into(),
            status: status.into(),
            host_type: kind.into(),
            node_group_name: Some(group.into()),
            ..Default::default()
        }
    }

    #[test]
    fn task_hosts_preferred_first_then_unhealthy_then_newest() {
        let g = "task_node_analysis_group";
        let hosts = vec![
            host(
                "m1",
                "node-master1",
                "MasterNode",
                "running",
                "master_node_default_group",
            ),
            host(
                "c1",
                "node-core1",
                "CoreNode",
                "running",
                "core_node_analysis_group",
            ),
            host("t1", "node-task0001", "TaskNode", "running", g),
            host("t2", "node-task0002", "TaskNode", "abnormal", g),
            host("t3", "node-task0003", "TaskNode", "running", g),
            host("t4", "node-task0004", "TaskNode", "running", g),
            host(
                "x1",
                "node-task-other",
                "TaskNode",
                "running",
                "task_node_streaming_group",
            ),
        ];
        let prefer = vec![
            "t1".to_string(),
            "c1".to_string(),
            "gone".to_string(),
            "x1".to_string(),
        ];
        assert_eq!(choose_task_hosts(&hosts, g, &prefer, 1), vec!["t1"]);
        assert_eq!(
            choose_task_hosts(&hosts, g, &prefer, 3),
            vec!["t1", "t2", "t4"]
        );
        assert_eq!(
            choose_task_hosts(&hosts, g, &[], 9),
            vec!["t2", "t4", "t3", "t1"]
        );
        let nodes = hosts_to_nodes(&hosts);
        assert_eq!(nodes.len(), 6);
        assert!(nodes.iter().all(|n| n.id != "m1"));
        assert_eq!(
            unmatched_preferred(&hosts, g, &prefer),
            vec!["c1", "gone", "x1"]
        );
    }

    #[test]
    fn otc_host_types_and_active_status_are_understood() {
        // The reference example: "type": "Core"/"Task"/"Master", "status": "ACTIVE",
        // no node_group_name.
        let otc = |id: &str, name: &str, kind: &str, status: &str| Host {
            node_group_name: None,
            ..host(id, name, kind, status, "")
        };
        let g = "task_node_default_group";
        let hosts = vec![
            otc("m1", "node_master1", "Master", "ACTIVE"),
            otc("c1", "node_core_a", "Core", "ACTIVE"),
            otc("t1", "node_task_a", "Task", "ACTIVE"),
            otc("t2", "node_task_b", "Task", "SHUTOFF"),
            otc("t3", "node_task_c", "task", "active"),
        ];
        assert_eq!(host_group("Core"), Some(NodeGroup::Core));
        assert_eq!(host_group("TaskNode"), Some(NodeGroup::Task));
        assert_eq!(host_group("Master"), None);
        assert!(host_is_healthy("ACTIVE") && host_is_healthy("running"));
        assert!(!host_is_healthy("SHUTOFF"));
        // The preferred Task host is matched; the unhealthy one comes next;
        // ACTIVE counts as running, so t3 (newest name) follows.
        let prefer = vec!["t1".to_string(), "c1".to_string()];
        assert_eq!(
            choose_task_hosts(&hosts, g, &prefer, 3),
            vec!["t1", "t2", "t3"]
        );
        assert_eq!(unmatched_preferred(&hosts, g, &prefer), vec!["c1"]);
        let nodes = hosts_to_nodes(&hosts);
        assert_eq!(
            nodes
                .iter()
                .map(|n| (n.id.as_str(), n.group))
                .collect::<Vec<_>>(),
            vec![
                ("c1", NodeGroup::Core),
                ("t1", NodeGroup::Task),
                ("t2", NodeGroup::Task),
                ("t3", NodeGroup::Task)
            ]
        );
    }

    #[test]
    fn abnormal_detail_counts_the_hosts_not_running() {
        let hosts = vec![
            host("c1", "node-core1", "CoreNode", "running", "g"),
            host("c2", "node-core2", "Core", "ACTIVE", "g"),
            host("t1", "node-task1", "TaskNode", "abnormal", "g"),
            host("t2", "", "Task", "SHUTOFF", "g"),
        ];
        assert_eq!(
            abnormal_detail(&hosts).as_deref(),
            Some("abnormal: 2 nodes not running (node-task1, t2)")
        );
        assert_eq!(abnormal_detail(&hosts[..2]), None);
        assert!(is_abnormal(&ClusterState::Unavailable(
            abnormal_detail(&hosts).unwrap()
        )));
    }

    fn task_out(from: i32, to: i32) -> OperationRecord {
        OperationRecord::test().out(from, to)
    }

    #[test]
    fn progress_states_only_what_the_cluster_shows() {
        let op = task_out(1, 3);
        let error = "scaling-error: Cluster expansion failed".to_string();
        // Idle, nothing reported: the engine decides by counts and grace.
        assert_eq!(progress(&observed(3, 1), &op), OperationProgress::Unknown);
        assert_eq!(progress(&observed(3, 3), &op), OperationProgress::Unknown);
        let mut busy = observed(3, 1);
        busy.state = ClusterState::Busy("scaling-out".into());
        assert_eq!(progress(&busy, &op), OperationProgress::Running);
        let mut failed = observed(3, 1);
        failed.state = ClusterState::Failed("failed".into());
        assert_eq!(
            progress(&failed, &op),
            OperationProgress::Failed("the cluster is failed".into())
        );
        // abnormal: succeeded once the counts arrived; until then, unknown.
        let mut abnormal = observed(3, 3);
        abnormal.state = ClusterState::Unavailable(ABNORMAL_SOME.into());
        assert_eq!(progress(&abnormal, &op), OperationProgress::Succeeded);
        abnormal.task = 1;
        assert_eq!(progress(&abnormal, &op), OperationProgress::Unknown);
        let mut frozen = observed(3, 1);
        frozen.state = ClusterState::Unavailable("frozen".into());
        assert_eq!(progress(&frozen, &op), OperationProgress::Unknown);
        // A reported failure fails the operation, unless its target is reached.
        let mut scaling_error = observed(3, 1);
        scaling_error.last_resize_failed = Some(error.clone());
        assert_eq!(
            progress(&scaling_error, &op),
            OperationProgress::Failed(error.clone())
        );
        let mut reached = observed(3, 3);
        reached.last_resize_failed = Some(error);
        assert_eq!(progress(&reached, &op), OperationProgress::Unknown);
    }

    #[test]
    fn cluster_types_and_group_counts() {
        for (code, t, v11) in [
            (0, MrsClusterType::Analysis, true),
            (1, MrsClusterType::Streaming, true),
            (2, MrsClusterType::Hybrid, true),
            (3, MrsClusterType::Custom, false),
            (7, MrsClusterType::Other(7), false),
        ] {
            assert_eq!(MrsClusterType::from_code(code), t);
            assert_eq!(t.code(), code);
            assert_eq!(t.v11_resize_applies(), v11, "{}", t.name());
        }
        let mut d = detail(
            "running",
            "",
            3,
            vec![
                group("master_node_default_group", 2),
                group("core_node_analysis_group", 3),
                group("task_node_analysis_group", 2),
                group("task_node_streaming_group", 4),
            ],
        );
        d.task_node_groups = vec![group("task_node_streaming_group", 4)];
        d.cluster_type = Some(2);
        let counts = group_counts(&d);
        assert_eq!(
            counts
                .iter()
                .map(|c| (c.name.as_str(), c.count))
                .collect::<Vec<_>>(),
            vec![
                ("master_node_default_group", Some(2)),
                ("core_node_analysis_group", Some(3)),
                ("task_node_analysis_group", Some(2)),
                ("task_node_streaming_group", Some(4)),
            ]
        );
        let v = interpret(&d, &spec()).unwrap();
        assert_eq!(v.cluster_type, Some(MrsClusterType::Hybrid));
        assert_eq!(v.group_counts, counts);
        d.cluster_type = None;
        assert_eq!(cluster_type(&d), None);
    }

    #[test]
    fn v2_outcomes_accept_both_spellings_and_carry_the_order() {
        let expand = |result: Option<&str>, order: Option<&str>| {
            expand_outcome(
                &ExpandResponse {
                    result: result.map(str::to_string),
                    order_id: order.map(str::to_string),
                },
                Some("rid".into()),
            )
        };
        for r in ["succeeded", "success"] {
            assert_eq!(
                expand(Some(r), None).unwrap(),
                GroupResizeOutcome::Accepted {
                    request_id: Some("rid".into())
                }
            );
        }
        // A prepaid group: the order id, whatever the result says.
        for r in [Some("succeeded"), None] {
            let o = expand(r, Some("CS24040112345")).unwrap();
            assert_eq!(
                o,
                GroupResizeOutcome::OrderPending {
                    order_id: "CS24040112345".into(),
                    request_id: Some("rid".into())
                }
            );
            assert_eq!(o.request_id(), Some("rid"));
        }
        // An empty order id is none.
        assert!(matches!(
            expand(Some("success"), Some(" ")).unwrap(),
            GroupResizeOutcome::Accepted { .. }
        ));
        let failed = expand(Some("failed"), None).unwrap_err();
        assert_eq!(
            (
                failed.class,
                failed.code.as_str(),
                failed.may_have_applied()
            ),
            (ErrorClass::Capacity, "ResultFailed", false)
        );
        assert_eq!(failed.request_id.as_deref(), Some("rid"));
        let odd = expand(Some("queued"), None).unwrap_err();
        assert_eq!(
            (odd.class, odd.code.as_str(), odd.may_have_applied()),
            (ErrorClass::Transient, "UnexpectedResult", true)
        );
        assert!(expand(None, None).unwrap_err().may_have_applied());
        let shrink = |r: &str| {
            shrink_outcome(
                &ShrinkResponse {
                    result: Some(r.into()),
                },
                None,
            )
        };
        assert!(shrink("succeeded").is_ok());
        assert_eq!(shrink("failed").unwrap_err().action, ACTION_SHRINK);
    }

    #[test]
    fn nodes_are_counted_per_group_and_billing() {
        let node = |group: Option<&str>, billing: Option<&str>, id: Option<&str>| ClusterNode {
            node_group_name: group.map(str::to_string),
            billing_type: billing.map(str::to_string),
            resource_id: id.map(str::to_string),
            ..Default::default()
        };
        let nodes = vec![
            node(
                Some("task_node_analysis_group"),
                Some("on-quantity"),
                Some("r1"),
            ),
            node(
                Some("task_node_analysis_group"),
                Some("on-period"),
                Some("r2"),
            ),
            node(Some("node_group_3"), Some("on-period"), None),
            node(None, None, Some("r4")),
        ];
        let by = nodes_by_group(&nodes);
        assert_eq!(
            by["task_node_analysis_group"],
            GroupNodes {
                total: 2,
                on_period: 1,
                on_quantity: 1,
                resource_ids: vec!["r1".into(), "r2".into()]
            }
        );
        assert_eq!(
            (by["node_group_3"].total, by["node_group_3"].on_period),
            (1, 1)
        );
        assert_eq!(by[""].total, 1);
    }

    #[test]
    fn enabled_policies_name_their_groups() {
        let policy = |group: &str, enabled: bool| AutoScalingPolicyV2 {
            node_group_name: Some(group.into()),
            resource_pool_name: "default".into(),
            auto_scaling_policy: Some(AutoScalingPolicy {
                auto_scaling_enable: enabled,
                min_capacity: 0,
                max_capacity: 10,
                ..Default::default()
            }),
        };
        let policies = vec![
            policy("task_node_streaming_group", true),
            policy("task_node_analysis_group", false),
            policy("task_node_streaming_group", true),
            AutoScalingPolicyV2::default(),
        ];
        assert_eq!(
            autoscaled_groups(&policies),
            vec!["task_node_streaming_group"]
        );
        assert!(
            !policy_of(&policies, "task_node_analysis_group")
                .unwrap()
                .auto_scaling_enable
        );
        assert!(policy_of(&policies, "node_group_9").is_none());
    }

    fn pool(name: &str, group: &str) -> TaskPoolSpec {
        TaskPoolSpec {
            huawei: Some(clusterscale_core::api::HuaweiPoolSpec {
                node_group: group.into(),
            }),
            ..TaskPoolSpec::named(name, 1)
        }
    }

    fn refused(r: Result<Interpreted, ReadError>) -> CloudError {
        match r {
            Err(ReadError::Refused(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn custom() -> ClusterDetail {
        let mut d = detail(
            "running",
            "",
            3,
            vec![
                group("node_group_1", 2),
                group("node_group_2", 3),
                group("node_group_3", 1),
                group("node_group_4", 2),
            ],
        );
        d.cluster_type = Some(3);
        d
    }

    #[test]
    fn custom_clusters_count_the_named_groups_and_each_pool() {
        let d = custom();
        // Without coreNodeGroup: refused, naming the field and the groups.
        let e = refused(interpret_pools(&d, &spec(), &[]));
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Invalid, NODE_GROUP_REQUIRED)
        );
        assert!(
            e.message.contains("spec.huawei.coreNodeGroup"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("node_group_1 (2), node_group_2 (3), node_group_3 (1), node_group_4 (2)"),
            "{}",
            e.message
        );
        let mut s = spec();
        s.core_node_group = Some("node_group_2".into());
        // No taskNodeGroup: no default Task group (0), the pool counted apart.
        let v = interpret_pools(&d, &s, &[pool("batch", "node_group_4")]).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (3, 0));
        assert_eq!(v.observed.pools["batch"], 2);
        assert_eq!(v.groups.task, "");
        s.task_node_group = Some("node_group_3".into());
        let v = interpret_pools(&d, &s, &[pool("batch", "node_group_4")]).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (3, 1));
        assert_eq!(v.observed.total(), 6);
        assert_eq!(v.cluster_type, Some(MrsClusterType::Custom));
        // Every group of a custom cluster is v2's.
        assert!(!v11_addresses(v.cluster_type, "node_group_2"));
        assert!(!v11_addresses(v.cluster_type, "core_node_analysis_group"));
    }

    #[test]
    fn unknown_groups_are_refused_naming_them_and_the_cluster_groups() {
        let d = custom();
        let mut s = spec();
        s.core_node_group = Some("node_group_2".into());
        s.task_node_group = Some("node_group_8".into());
        let e = refused(interpret_pools(&d, &s, &[pool("batch", "node_group_9")]));
        assert_eq!(
            (e.class, e.code.as_str()),
            (ErrorClass::Invalid, UNKNOWN_NODE_GROUP)
        );
        for part in [
            "node_group_8 (spec.huawei.taskNodeGroup)",
            "node_group_9 (spec.taskPools[batch].huawei.nodeGroup)",
            "its node groups: node_group_1 (2), node_group_2 (3)",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
        assert_eq!(e.action, ACTION_SHOW);
        // An analysis cluster's Task group may not exist yet: v1.1 creates it.
        let d = detail("running", "", 3, vec![group("core_node_analysis_group", 3)]);
        let mut s = spec();
        s.task_node_group = Some("task_node_analysis_group".into());
        assert_eq!(interpret_pools(&d, &s, &[]).unwrap().observed.task, 0);
        // A pool's group must exist: v2 does not create groups.
        let e = refused(interpret_pools(
            &d,
            &spec(),
            &[pool("p", "task_node_analysis_group")],
        ));
        assert_eq!(e.code, UNKNOWN_NODE_GROUP);
        // A detail that lists no group at all tells nothing: the seed's reading.
        let bare = detail("running", "", 3, vec![]);
        assert!(interpret_pools(&bare, &s, &[]).is_ok());
    }

    #[test]
    fn a_pool_on_the_core_or_default_task_group_is_refused() {
        let d = detail(
            "running",
            "",
            6,
            vec![
                group("core_node_analysis_group", 3),
                group("core_node_streaming_group", 3),
                group("task_node_analysis_group", 2),
                group("task_node_streaming_group", 4),
            ],
        );
        // The default Task group is the one the cluster chose (analysis).
        let e = refused(interpret_pools(
            &d,
            &spec(),
            &[pool("p", "task_node_analysis_group")],
        ));
        assert_eq!(e.code, NODE_GROUP_CONFLICT);
        assert!(
            e.message.contains("the default Task group"),
            "{}",
            e.message
        );
        let e = refused(interpret_pools(
            &d,
            &spec(),
            &[pool("p", "core_node_analysis_group")],
        ));
        assert!(e.message.contains("the Core group"), "{}", e.message);
        // A hybrid cluster's streaming Task group as a pool: counted apart.
        let mut d = d;
        d.cluster_type = Some(2);
        let v =
            interpret_pools(&d, &spec(), &[pool("stream", "task_node_streaming_group")]).unwrap();
        assert_eq!((v.observed.core, v.observed.task), (3, 2));
        assert_eq!(v.observed.pools["stream"], 4);
        assert!(v11_addresses(v.cluster_type, "task_node_streaming_group"));
    }

    #[test]
    fn v11_addresses_the_standard_groups_of_its_cluster_types() {
        for t in [
            None,
            Some(MrsClusterType::Analysis),
            Some(MrsClusterType::Hybrid),
        ] {
            for g in [
                "core_node_analysis_group",
                "task_node_streaming_group",
                "task_node_default_group",
            ] {
                assert!(v11_addresses(t, g), "{t:?} {g}");
            }
            assert!(!v11_addresses(t, "node_group_3"), "{t:?}");
            assert!(!v11_addresses(t, "task_node_analysis_group_2"), "{t:?}");
        }
        for t in [MrsClusterType::Custom, MrsClusterType::Other(7)] {
            assert!(!v11_addresses(Some(t), "task_node_analysis_group"), "{t:?}");
        }
    }

    #[test]
    fn prechecks_count_every_pool_and_a_pools_own_nodes() {
        let mut o = observed(10, 40);
        o.pools.insert("batch".into(), 50);
        let pooled = |count: i32| ScaleRequest {
            pool: Some(pool("batch", "node_group_4")),
            ..req(NodeGroup::Task, count)
        };
        // 500 minus Core, Task and every pool.
        assert!(precheck(&o, &req(NodeGroup::Task, 400), Direction::Out).is_ok());
        let e = precheck(&o, &req(NodeGroup::Task, 401), Direction::Out).unwrap_err();
        assert!(
            e.message.contains("at most 400") && e.message.contains("50 in pools"),
            "{}",
            e.message
        );
        assert!(precheck(&o, &pooled(50), Direction::In).is_ok());
        let e = precheck(&o, &pooled(51), Direction::In).unwrap_err();
        assert!(
            e.message.contains("of pool batch: the cluster has 50"),
            "{}",
            e.message
        );
        // Progress of a pool's operation reads the pool's count.
        let op = OperationRecord {
            pool: Some("batch".into()),
            ..OperationRecord::test().out(50, 52)
        };
        let mut busy = o.clone();
        busy.state = ClusterState::Busy("scaling-out".into());
        assert_eq!(progress(&busy, &op), OperationProgress::Running);
        o.last_resize_failed = Some("scaling-error: x".into());
        assert!(matches!(progress(&o, &op), OperationProgress::Failed(_)));
        o.pools.insert("batch".into(), 52);
        assert_eq!(progress(&o, &op), OperationProgress::Unknown);
    }
}
