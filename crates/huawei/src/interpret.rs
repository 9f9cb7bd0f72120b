//! MRS answers, read without I/O: a cluster detail becomes the observed
//! state, counts and node group names ([`interpret`]), an operation's
//! [`progress`]; a host list the Task hosts a scale-in names
//! ([`choose_task_hosts`]); and [`precheck`] holds a resize to the seed's
//! rules against an observation. [`client`](super::client) sends the
//! requests and calls these.

use super::wire::{ClusterDetail, Host, ACTION_RESIZE};
use clusterscale_core::api::{
    Direction, HuaweiSpec, NodeGroup, OperationRecord, MAX_TOTAL, MIN_CORE,
};
use clusterscale_core::cloud::{
    CloudError, ClusterState, ErrorClass, Node, ObservedCluster, OperationProgress, ScaleRequest,
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
}

pub(crate) fn precheck_error(class: ErrorClass, code: &str, message: String) -> CloudError {
    CloudError::new(class, ACTION_RESIZE, code, format!("not sent: {message}"))
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
    let total = observed.core + observed.task;
    match (req.group, direction) {
        (_, Direction::Out) => {
            let room = MAX_TOTAL - total;
            if req.count > room {
                return Err(precheck_error(
                    ErrorClass::Invalid,
                    "PrecheckMaxTotal",
                    format!(
                        "adding {} {} nodes would exceed {MAX_TOTAL} Core+Task nodes: the cluster has {} Core and {} Task, \
                         so at most {} can be added",
                        req.count,
                        req.group.as_str(),
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
            if req.count > observed.task {
                return Err(precheck_error(
                    ErrorClass::Invalid,
                    "PrecheckTaskCount",
                    format!(
                        "cannot remove {} Task nodes: the cluster has {}",
                        req.count, observed.task
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

/// Normalise a cluster detail: state, Core and Task counts, group names.
///
/// `abnormal` (some nodes unhealthy) is settled, not failed (Terraform waits
/// for `running` or `abnormal`; only `failed` is an error), but MRS resizes
/// only running clusters: it becomes [`ClusterState::Unavailable`] with
/// [`ABNORMAL_SOME`], so the plan waits, and [`progress`] lets an operation
/// whose counts arrived succeed.
pub fn interpret(detail: &ClusterDetail, spec: &HuaweiSpec) -> Result<Interpreted, String> {
    // Every group, from both lists, first occurrence wins.
    let mut groups: Vec<(String, Option<i64>)> = Vec::new();
    for g in detail.node_groups.iter().chain(&detail.task_node_groups) {
        if !g.group_name.is_empty() && !groups.iter().any(|(n, _)| n == &g.group_name) {
            groups.push((g.group_name.clone(), g.node_num));
        }
    }
    let task_listed: Vec<&str> = detail
        .task_node_groups
        .iter()
        .map(|g| g.group_name.as_str())
        .collect();
    let core_names: Vec<&str> = groups
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("core_node"))
        .collect();
    let task_names: Vec<&str> = groups
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("task_node") || task_listed.contains(n))
        .collect();
    let core = spec
        .core_node_group
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            pick(
                &core_names,
                &["core_node_default_group", "core_node_analysis_group"],
            )
        })
        .unwrap_or_else(|| "core_node_default_group".to_string());
    let task = spec
        .task_node_group
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            pick(
                &task_names,
                &["task_node_default_group", "task_node_analysis_group"],
            )
        })
        .unwrap_or_else(|| match core.strip_prefix("core_node") {
            // No Task group yet: MRS names it after the Core group.
            Some(rest) => format!("task_node{rest}"),
            None => "task_node_default_group".to_string(),
        });
    let group_count = |name: &str| groups.iter().find(|(n, _)| n == name).and_then(|(_, c)| *c);
    let core_count = if core_names.len() > 1 {
        group_count(&core).or(detail.core_node_num)
    } else {
        detail.core_node_num.or_else(|| group_count(&core))
    }
    .ok_or_else(|| {
        format!(
            "cluster {:?} reports no coreNodeNum and no Core node group",
            detail.cluster_id
        )
    })?;
    let task_count = group_count(&task).unwrap_or(0);
    let to_i32 = |what: &str, n: i64| {
        i32::try_from(n).map_err(|_| format!("{what} count {n} is out of range"))
    };
    let core_count = to_i32("Core", core_count)?;
    let task_count = to_i32("Task", task_count)?;
    if core_count < 0 || task_count < 0 {
        return Err(format!(
            "negative node count (Core {core_count}, Task {task_count})"
        ));
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
            return Err(format!(
                "cluster {:?} reports no clusterState",
                detail.cluster_id
            ))
        }
        other => ClusterState::Unavailable(with_stage(other)),
    };
    Ok(Interpreted {
        observed: ObservedCluster {
            state,
            core: core_count,
            task: task_count,
            pools: Default::default(),
            nodes: Vec::new(),
            last_resize_failed,
            unmanaged: Default::default(),
        },
        groups: NodeGroups { core, task },
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
    let count = observed.count(op.group);
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
}
