//! Tencent EMR answers, read without I/O: a response body becomes its
//! `Response` or a classified error; `DescribeInstances` `Status` becomes a
//! [`ClusterState`], a flow's status an [`OperationProgress`]; the node list
//! gives the Core/Task counts and the nodes a scale-in removes. Pure
//! functions of response bytes and bodies; [`client`](super::client) sends the
//! requests, calls these, and lists the rules they apply.

use serde::de::DeserializeOwned;

use super::errors;
use super::wire::{self, flag, flow_status, NodeHardwareInfo};
use clusterscale_core::api::NodeGroup;
use clusterscale_core::cloud::http::malformed;
use clusterscale_core::cloud::{
    CloudError, ClusterState, Effect, ErrorClass, Node, OperationProgress, UnmanagedNodes,
};

/// A node the operator manages: a machine (not a pod resource) that EMR's
/// own auto-scaling did not add. Only these are counted and chosen.
pub(crate) fn managed(n: &NodeHardwareInfo) -> bool {
    n.auto_flag != Some(1) && !is_pod(n)
}

fn is_pod(n: &NodeHardwareInfo) -> bool {
    n.hardware_resource_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(wire::HARDWARE_POD))
}

/// The nodes that are listed but not the operator's (see [`managed`]).
pub(crate) fn unmanaged_nodes(raw: &[NodeHardwareInfo]) -> UnmanagedNodes {
    let mut u = UnmanagedNodes::default();
    for n in raw {
        if is_pod(n) {
            u.pods += 1;
        } else if n.auto_flag == Some(1) {
            match n.flag {
                Some(flag::CORE) => u.auto_scaled_core += 1,
                Some(flag::TASK) => u.auto_scaled_task += 1,
                _ => {}
            }
        }
    }
    u
}

pub(crate) fn clamp_count(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

/// `DescribeInstances` `Status` as a [`ClusterState`]; the detail keeps the code.
pub fn cluster_state(status: i64) -> ClusterState {
    let detail = format!("{status} {}", wire::cluster_status_name(status));
    match status {
        2 => ClusterState::Running,
        4 | 15 | 16 | 24 => ClusterState::Busy(detail),
        301 | 302 => ClusterState::Failed(detail),
        _ => ClusterState::Unavailable(detail),
    }
}

/// `FlowTotalStatus` as progress: 0, 1 running; 2, 3 done; -1, -3 failed;
/// missing: unknown. A done flow with a stage whose `Status` is 3 (partially
/// completed) is [`OperationProgress::PartiallyCompleted`], naming the stages:
/// the counts then decide whether the operation reached its target.
pub fn flow_progress(resp: &wire::DescribeClusterFlowStatusDetailResponse) -> OperationProgress {
    let Some(total) = resp.flow_total_status else {
        return OperationProgress::Unknown;
    };
    match total {
        flow_status::INIT | flow_status::RUNNING => OperationProgress::Running,
        flow_status::DONE | flow_status::DONE_WITH_SKIPPED => {
            let partial: Vec<String> = resp
                .stage_details
                .iter()
                .flatten()
                .filter(|st| st.status == Some(wire::stage_status::PARTIALLY_COMPLETED))
                .map(|st| {
                    let stage = st
                        .name
                        .as_deref()
                        .or(st.stage.as_deref())
                        .unwrap_or("stage");
                    match st
                        .desc
                        .as_deref()
                        .or(st.failed_reason.as_deref())
                        .filter(|d| !d.is_empty())
                    {
                        Some(d) => format!("{stage}: {d}"),
                        None => stage.to_string(),
                    }
                })
                .collect();
            if partial.is_empty() {
                OperationProgress::Succeeded
            } else {
                OperationProgress::PartiallyCompleted(format!(
                    "{} partially completed (FlowTotalStatus {total}): {}",
                    resp.flow_name.as_deref().unwrap_or("flow"),
                    partial.join("; ")
                ))
            }
        }
        s @ (flow_status::FAILED | flow_status::BLOCKED) => {
            let what = if s == flow_status::BLOCKED {
                "blocked"
            } else {
                "failed"
            };
            let name = resp.flow_name.as_deref().unwrap_or("flow");
            let reasons: Vec<String> = resp
                .stage_details
                .iter()
                .flatten()
                .filter_map(|st| {
                    let reason = st.failed_reason.as_deref().filter(|r| !r.is_empty())?;
                    let stage = st
                        .name
                        .as_deref()
                        .or(st.stage.as_deref())
                        .unwrap_or("stage");
                    Some(format!("{stage}: {reason}"))
                })
                .collect();
            if reasons.is_empty() {
                OperationProgress::Failed(format!("{name} {what} (FlowTotalStatus {s})"))
            } else {
                OperationProgress::Failed(format!(
                    "{name} {what} (FlowTotalStatus {s}): {}",
                    reasons.join("; ")
                ))
            }
        }
        _ => OperationProgress::Unknown,
    }
}

/// Parse a 200 body: `Response.Error` becomes a classified error; otherwise
/// `Response` is parsed as `Resp`. Anything else names the action and request id.
///
/// Public only as the entry point of the fuzz targets (`fuzz/`); the client
/// is its one caller.
pub fn parse_envelope<Resp: DeserializeOwned>(
    action: &str,
    bytes: &[u8],
) -> Result<(Resp, Option<String>), CloudError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        malformed(
            action,
            salvage_request_id(bytes),
            format!("body is not JSON: {e}"),
        )
    })?;
    let Some(response) = value.get("Response").filter(|r| r.is_object()) else {
        return Err(malformed(action, None, "no Response object in the body"));
    };
    let request_id = response
        .get("RequestId")
        .and_then(|r| r.as_str())
        .map(str::to_string);
    if let Some(error) = response.get("Error") {
        let error: wire::ApiError = serde_json::from_value(error.clone()).map_err(|e| {
            malformed(
                action,
                request_id.clone(),
                format!("unreadable Response.Error: {e}"),
            )
        })?;
        return Err(errors::cloud_error(
            action,
            &error.code,
            &error.message,
            request_id,
        ));
    }
    let body = Resp::deserialize(response).map_err(|e| malformed(action, request_id.clone(), e))?;
    Ok((body, request_id))
}

/// The `"RequestId":"..."` of a body that is not JSON (cut short, or
/// spoiled after it), so that the error still names the request.
fn salvage_request_id(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = &text[text.find("\"RequestId\"")? + "\"RequestId\"".len()..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let id = &rest[..rest.find('"')?];
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| id.to_string())
}

/// Any HTTP status but 200: the SDK's `ServerNetworkError` (429 is Throttled).
///
/// Its [`Effect`]: when the body is still EMR's own `Response.Error`
/// envelope, the service refused the request (the error is that code's, as
/// in a 200). Without the envelope, a 5xx (a gateway's or proxy's 502/503/504
/// page, an answer cut short) leaves the outcome unknown; a 4xx or 429 from
/// something in front of the API refused it before it was forwarded.
///
/// Public only for the fuzz targets (`fuzz/`), like [`parse_envelope`].
pub fn http_status_error(action: &str, status: reqwest::StatusCode, body: &[u8]) -> CloudError {
    status_error(action, status, body, "the EMR endpoint", true)
}

/// [`http_status_error`] for the endpoint called `endpoint` in the message,
/// which quotes the start of the body only when `quote_body` (never for an
/// exchange of a secret: whatever is in front of the API might echo it).
pub(crate) fn status_error(
    action: &str,
    status: reqwest::StatusCode,
    body: &[u8],
    endpoint: &str,
    quote_body: bool,
) -> CloudError {
    if let Err(e) = parse_envelope::<serde_json::Value>(action, body) {
        if e.effect == Effect::Refused {
            return e;
        }
    }
    let effect = if status.is_server_error() {
        Effect::Unknown
    } else {
        Effect::Refused
    };
    let class = if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        ErrorClass::Throttled
    } else {
        ErrorClass::Transient
    };
    let snippet: String = if quote_body {
        String::from_utf8_lossy(body).chars().take(200).collect()
    } else {
        String::new()
    };
    let snippet = snippet.trim();
    let message = if snippet.is_empty() {
        format!("HTTP {status} from {endpoint}")
    } else {
        format!("HTTP {status} from {endpoint}: {snippet}")
    };
    CloudError::new(class, action, "ServerNetworkError", message).with_effect(effect)
}

/// A node as the scale-in choice sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedNode {
    pub(crate) group: Option<NodeGroup>,
    /// `EmrResourceId` (empty when the cloud gave none).
    pub(crate) resource_id: String,
    /// `OrderNo`, the CVM id.
    pub(crate) cvm_id: Option<String>,
    /// A Task node's [`POOL_TAG_KEY`] tag value: the named pool that created
    /// it (`None`: the default pool's, or not a Task node).
    pub(crate) pool: Option<String>,
    destroyable: bool,
    /// Larger is newer.
    added_order: i64,
}

impl ListedNode {
    pub(crate) fn to_node(&self) -> Option<Node> {
        let group = self.group?;
        (!self.resource_id.is_empty()).then(|| Node {
            id: self.resource_id.clone(),
            group,
            removable: self.destroyable,
            added_order: self.added_order,
        })
    }

    fn matches(&self, id: &str) -> bool {
        (!self.resource_id.is_empty() && self.resource_id == id)
            || self.cvm_id.as_deref() == Some(id)
    }
}

/// Core/Task membership, ids, and the "most recently added" rank.
pub(crate) fn index_nodes(raw: &[NodeHardwareInfo]) -> Vec<ListedNode> {
    let applied: Vec<Option<jiff::civil::DateTime>> = raw
        .iter()
        .map(|n| {
            n.apply_time
                .as_deref()
                .and_then(|t| jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t.trim()).ok())
        })
        .collect();
    let mut by_age: Vec<usize> = (0..raw.len()).collect();
    by_age.sort_by_key(|&i| (applied[i], i));
    let mut rank = vec![0i64; raw.len()];
    for (r, &i) in by_age.iter().enumerate() {
        rank[i] = r as i64;
    }
    raw.iter()
        .zip(rank)
        .map(|(n, added_order)| ListedNode {
            // EMR's own auto-scaling nodes (AutoFlag 1) and pod resources are
            // never ours to count or remove.
            group: match n.flag {
                _ if !managed(n) => None,
                Some(flag::CORE) => Some(NodeGroup::Core),
                Some(flag::TASK) => Some(NodeGroup::Task),
                _ => None,
            },
            resource_id: n.emr_resource_id.clone().unwrap_or_default(),
            cvm_id: n.order_no.clone().filter(|c| !c.is_empty()),
            pool: (n.flag == Some(flag::TASK))
                .then(|| node_tag(n, POOL_TAG_KEY).map(str::to_string))
                .flatten(),
            destroyable: n.destroyable == Some(1),
            added_order,
        })
        .collect()
}

/// Which nodes a scale-in removes.
#[derive(Debug)]
pub(crate) struct Choice<'a> {
    pub(crate) chosen: Vec<&'a ListedNode>,
    /// `preferNodes` entries that are not eligible nodes of the group.
    pub(crate) skipped_preferred: Vec<String>,
}

/// Eligible: in `group` and, for Task, in the Task pool `pool` exactly
/// (`None`: the default pool, whose nodes carry no [`POOL_TAG_KEY`] tag, so
/// that it never picks a node of a named pool, listed in the spec or not),
/// `Destroyable == 1`, with an `EmrResourceId` (and a CVM id when
/// `needs_cvm_id`). `prefer` first, in order; then newest first.
pub(crate) fn choose_nodes<'a>(
    listed: &'a [ListedNode],
    group: NodeGroup,
    pool: Option<&str>,
    count: usize,
    prefer: &[String],
    needs_cvm_id: bool,
) -> Choice<'a> {
    let eligible: Vec<&ListedNode> = listed
        .iter()
        // Core goes through TerminateClusterNodes, which has no Destroyable
        // precondition: the cloud refuses with its own code if it must.
        .filter(|n| {
            n.group == Some(group)
                && (group == NodeGroup::Core || (n.destroyable && n.pool.as_deref() == pool))
                && !n.resource_id.is_empty()
        })
        .filter(|n| !needs_cvm_id || n.cvm_id.is_some())
        .collect();
    let mut chosen: Vec<&ListedNode> = Vec::new();
    let mut skipped_preferred = Vec::new();
    for id in prefer {
        match eligible.iter().find(|n| n.matches(id)) {
            Some(n) if !chosen.contains(n) => {
                if chosen.len() < count {
                    chosen.push(n);
                }
            }
            Some(_) => {}
            None => skipped_preferred.push(id.clone()),
        }
    }
    let mut rest: Vec<&ListedNode> = eligible
        .into_iter()
        .filter(|n| !chosen.contains(n))
        .collect();
    rest.sort_by_key(|n| std::cmp::Reverse(n.added_order));
    chosen.extend(rest.into_iter().take(count.saturating_sub(chosen.len())));
    Choice {
        chosen,
        skipped_preferred,
    }
}

/// The tag key that names a node's Task pool (set at ScaleOutCluster).
pub const POOL_TAG_KEY: &str = "clusterscale.io/pool";

/// Core and Task counts of one node listing, Task split by pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolCounts {
    pub(crate) core: i32,
    /// The default pool: managed Task nodes without a [`POOL_TAG_KEY`] tag.
    pub(crate) task: i32,
    /// Each pool of the spec, by name (0 when it has no node).
    pub(crate) pools: std::collections::BTreeMap<String, i32>,
    /// Managed Task nodes tagged with a pool the spec does not list (removed
    /// from `spec.taskPools`, or renamed), by tag value: in no pool, never
    /// counted, never chosen for removal; reported.
    pub(crate) unlisted: std::collections::BTreeMap<String, i32>,
}

/// Count `listed` (see [`index_nodes`]) for the spec's pools `pools`.
pub(crate) fn count_pools(listed: &[ListedNode], pools: &[&str]) -> PoolCounts {
    let mut c = PoolCounts {
        pools: pools.iter().map(|p| (p.to_string(), 0)).collect(),
        ..PoolCounts::default()
    };
    for n in listed {
        match (n.group, n.pool.as_deref()) {
            (Some(NodeGroup::Core), _) => c.core += 1,
            (Some(NodeGroup::Task), None) => c.task += 1,
            (Some(NodeGroup::Task), Some(p)) => match c.pools.get_mut(p) {
                Some(count) => *count += 1,
                None => *c.unlisted.entry(p.to_string()).or_insert(0) += 1,
            },
            (None, _) => {}
        }
    }
    c
}

/// The value of tag `key` on `node`, if it has one.
pub fn node_tag<'a>(node: &'a NodeHardwareInfo, key: &str) -> Option<&'a str> {
    node.tags
        .iter()
        .flatten()
        .find(|t| t.tag_key.as_deref() == Some(key))
        .map(|t| t.tag_value.as_deref().unwrap_or(""))
}

/// Managed Task nodes (machines EMR's own auto-scaling did not add) per value of tag `key`; Task nodes
/// without the tag are counted under `None` (the cluster's own Task nodes,
/// or another tool's).
pub fn task_nodes_by_tag(
    nodes: &[NodeHardwareInfo],
    key: &str,
) -> std::collections::BTreeMap<Option<String>, i32> {
    let mut out = std::collections::BTreeMap::new();
    for n in nodes
        .iter()
        .filter(|n| n.flag == Some(flag::TASK) && managed(n))
    {
        *out.entry(node_tag(n, key).map(str::to_string)).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn node(
        flag: i64,
        id: &str,
        cvm: &str,
        destroyable: i64,
        apply: &str,
    ) -> NodeHardwareInfo {
        NodeHardwareInfo {
            flag: Some(flag),
            emr_resource_id: Some(id.into()),
            order_no: Some(cvm.into()).filter(|c: &String| !c.is_empty()),
            destroyable: Some(destroyable),
            apply_time: Some(apply.into()),
            ..Default::default()
        }
    }

    #[test]
    fn status_codes_map_to_states() {
        assert_eq!(cluster_state(2), ClusterState::Running);
        for busy in [4, 15, 16, 24] {
            assert!(
                matches!(cluster_state(busy), ClusterState::Busy(_)),
                "{busy}"
            );
        }
        for failed in [301, 302] {
            assert!(
                matches!(cluster_state(failed), ClusterState::Failed(_)),
                "{failed}"
            );
        }
        for other in [3, 5, 14, 23, 201, 999] {
            assert!(
                matches!(cluster_state(other), ClusterState::Unavailable(_)),
                "{other}"
            );
        }
        assert_eq!(cluster_state(302).detail(), "302 scale-out failed");
    }

    #[test]
    fn flow_statuses_map_to_progress() {
        let flow = |s: i64| wire::DescribeClusterFlowStatusDetailResponse {
            flow_total_status: Some(s),
            flow_name: Some("Scale Out Task".into()),
            stage_details: Some(vec![wire::StageInfoDetail {
                name: Some("Apply For Resource".into()),
                status: Some(-1),
                failed_reason: Some("CVM sold out".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(flow_progress(&flow(0)), OperationProgress::Running);
        assert_eq!(flow_progress(&flow(1)), OperationProgress::Running);
        assert_eq!(flow_progress(&flow(2)), OperationProgress::Succeeded);
        assert_eq!(flow_progress(&flow(3)), OperationProgress::Succeeded);
        match flow_progress(&flow(-1)) {
            OperationProgress::Failed(m) => {
                assert!(m.contains("Apply For Resource: CVM sold out"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(flow_progress(&flow(-3)), OperationProgress::Failed(m) if m.contains("blocked"))
        );
        assert_eq!(flow_progress(&flow(7)), OperationProgress::Unknown);
        // StageInfoDetail.Status 3 is "partially completed", not "skipped".
        let mut partial = flow(2);
        partial.stage_details = Some(vec![wire::StageInfoDetail {
            name: Some("Apply For Resource".into()),
            status: Some(wire::stage_status::PARTIALLY_COMPLETED),
            desc: Some("2 of 3 nodes".into()),
            ..Default::default()
        }]);
        match flow_progress(&partial) {
            OperationProgress::PartiallyCompleted(m) => {
                assert!(m.contains("Apply For Resource: 2 of 3 nodes"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let mut missing = flow(2);
        missing.flow_total_status = None;
        assert_eq!(flow_progress(&missing), OperationProgress::Unknown);
    }

    #[test]
    fn newest_first_by_apply_time_then_listing_position() {
        let raw = vec![
            node(flag::MASTER, "emr-vm-m", "ins-m", 0, "2024-01-01 00:00:00"),
            node(flag::TASK, "emr-vm-a", "ins-a", 1, "2024-01-03 00:00:00"),
            node(flag::TASK, "emr-vm-b", "ins-b", 1, "2024-01-02 00:00:00"),
            node(flag::TASK, "emr-vm-c", "ins-c", 1, "2024-01-03 00:00:00"),
            node(flag::TASK, "emr-vm-d", "ins-d", 1, "0000-00-00 00:00:00"),
            node(flag::TASK, "emr-vm-e", "ins-e", 0, "2025-01-01 00:00:00"),
        ];
        let listed = index_nodes(&raw);
        let ids = |c: Choice<'_>| {
            c.chosen
                .iter()
                .map(|n| n.resource_id.clone())
                .collect::<Vec<_>>()
        };
        // e is newest but not destroyable; c and a tie on time, c is listed later.
        assert_eq!(
            ids(choose_nodes(&listed, NodeGroup::Task, None, 4, &[], false)),
            ["emr-vm-c", "emr-vm-a", "emr-vm-b", "emr-vm-d"]
        );
        // preferNodes first, by EmrResourceId or CVM id; ineligible entries are skipped.
        let prefer = vec![
            "ins-d".to_string(),
            "emr-vm-e".into(),
            "gone".into(),
            "emr-vm-d".into(),
        ];
        let choice = choose_nodes(&listed, NodeGroup::Task, None, 2, &prefer, false);
        assert_eq!(choice.skipped_preferred, ["emr-vm-e", "gone"]);
        assert_eq!(ids(choice), ["emr-vm-d", "emr-vm-c"]);
        // Never more than asked, even when preferred nodes alone exceed it.
        assert_eq!(
            ids(choose_nodes(
                &listed,
                NodeGroup::Task,
                None,
                1,
                &["emr-vm-b".into(), "emr-vm-a".into()],
                false
            )),
            ["emr-vm-b"]
        );
        // Masters never count, never get chosen.
        assert!(choose_nodes(
            &listed,
            NodeGroup::Core,
            None,
            1,
            &["emr-vm-m".into()],
            false
        )
        .chosen
        .is_empty());
        let nodes: Vec<Node> = listed.iter().filter_map(ListedNode::to_node).collect();
        assert_eq!(nodes.len(), 5);
        assert!(nodes.iter().all(|n| n.group == NodeGroup::Task));
    }

    #[test]
    fn terminate_cluster_nodes_needs_a_cvm_id() {
        let raw = vec![
            node(flag::CORE, "emr-vm-1", "", 1, "2024-01-01 00:00:00"),
            node(flag::CORE, "emr-vm-2", "ins-2", 1, "2024-01-01 00:00:00"),
        ];
        let listed = index_nodes(&raw);
        let c = choose_nodes(&listed, NodeGroup::Core, None, 2, &[], true);
        assert_eq!(c.chosen.len(), 1);
        assert_eq!(c.chosen[0].cvm_id.as_deref(), Some("ins-2"));
    }

    #[test]
    fn core_ignores_destroyable_task_keeps_it_and_auto_scaled_nodes_are_never_ours() {
        let mut auto = node(
            flag::TASK,
            "emr-vm-auto",
            "ins-auto",
            1,
            "2025-01-01 00:00:00",
        );
        auto.auto_flag = Some(1);
        let mut auto_core = node(flag::CORE, "emr-vm-ac", "ins-ac", 1, "2025-01-01 00:00:00");
        auto_core.auto_flag = Some(1);
        let raw = vec![
            node(flag::CORE, "emr-vm-c0", "ins-c0", 0, "2024-01-01 00:00:00"),
            node(flag::TASK, "emr-vm-t0", "ins-t0", 0, "2024-01-01 00:00:00"),
            node(flag::TASK, "emr-vm-t1", "ins-t1", 1, "2024-01-01 00:00:00"),
            auto,
            auto_core,
        ];
        let listed = index_nodes(&raw);
        let core = choose_nodes(&listed, NodeGroup::Core, None, 5, &[], true);
        assert_eq!(core.chosen.len(), 1, "Destroyable 0 Core is eligible");
        assert_eq!(core.chosen[0].resource_id, "emr-vm-c0");
        let task = choose_nodes(
            &listed,
            NodeGroup::Task,
            None,
            5,
            &["emr-vm-auto".into()],
            false,
        );
        assert_eq!(task.chosen.len(), 1);
        assert_eq!(task.chosen[0].resource_id, "emr-vm-t1");
        assert_eq!(task.skipped_preferred, ["emr-vm-auto"]);
        let counted = listed.iter().filter(|n| n.group.is_some()).count();
        assert_eq!(counted, 3, "AutoFlag 1 nodes are not counted");
        let u = unmanaged_nodes(&raw);
        assert_eq!((u.auto_scaled_core, u.auto_scaled_task, u.pods), (1, 1, 0));
    }

    #[test]
    fn pod_nodes_are_never_counted_nor_chosen() {
        let mut pod = node(flag::TASK, "emr-vm-pod", "", 1, "2026-01-01 00:00:00");
        pod.hardware_resource_type = Some("pod".into());
        let mut host = node(flag::TASK, "emr-vm-h", "ins-h", 1, "2024-01-01 00:00:00");
        host.hardware_resource_type = Some("host".into());
        let mut pod_core = node(flag::CORE, "emr-vm-pc", "ins-pc", 1, "2026-01-01 00:00:00");
        pod_core.hardware_resource_type = Some("POD".into());
        let raw = vec![pod, host, pod_core];
        let listed = index_nodes(&raw);
        let task = choose_nodes(
            &listed,
            NodeGroup::Task,
            None,
            2,
            &["emr-vm-pod".into()],
            false,
        );
        assert_eq!(task.chosen.len(), 1);
        assert_eq!(task.chosen[0].resource_id, "emr-vm-h");
        assert_eq!(task.skipped_preferred, ["emr-vm-pod"]);
        assert!(choose_nodes(&listed, NodeGroup::Core, None, 1, &[], true)
            .chosen
            .is_empty());
        assert_eq!(unmanaged_nodes(&raw).pods, 2);
    }

    #[test]
    fn request_id_is_salvaged_from_a_body_that_is_not_json() {
        let cut = br#"{"Response":{"RequestId":"6f1c-ab","TotalCnt":1,"Clus"#;
        let e = parse_envelope::<serde_json::Value>("DescribeInstances", cut).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("MalformedResponse", Some("6f1c-ab"))
        );
        assert_eq!(salvage_request_id(br#"{"RequestId": "x\"y"}"#), None);
        assert_eq!(salvage_request_id(b"<html>502</html>"), None);
    }

    #[test]
    fn envelope_errors_and_malformed_bodies() {
        let ok: (wire::TerminateClusterNodesResponse, _) = parse_envelope(
            "TerminateClusterNodes",
            br#"{"Response":{"FlowId":1000,"RequestId":"r-1"}}"#,
        )
        .unwrap();
        assert_eq!((ok.0.flow_id, ok.1.as_deref()), (Some(1000), Some("r-1")));
        let e = parse_envelope::<wire::TerminateTasksResponse>(
            "TerminateTasks",
            br#"{"Response":{"Error":{"Code":"ResourceInUse.InstanceInProcess","Message":"instance is in a flow"},"RequestId":"r-2"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.class, e.code.as_str(), e.request_id.as_deref()),
            (
                ErrorClass::Busy,
                "ResourceInUse.InstanceInProcess",
                Some("r-2")
            )
        );
        let e = parse_envelope::<wire::DescribeInstancesResponse>(
            "DescribeInstances",
            br#"{"Response":{"ClusterList":[{"ClusterId":"emr-1","Status":"two"}],"RequestId":"r-3"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.request_id.as_deref()),
            ("MalformedResponse", Some("r-3"))
        );
        let shown = e.to_string();
        assert!(
            shown.contains("DescribeInstances") && shown.contains("r-3"),
            "{shown}"
        );
        for body in [&b"<html>"[..], b"{}", br#"{"Response":[]}"#] {
            let e =
                parse_envelope::<wire::TerminateTasksResponse>("TerminateTasks", body).unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (ErrorClass::Transient, "MalformedResponse")
            );
        }
        let e = http_status_error(
            "ScaleOutInstance",
            reqwest::StatusCode::BAD_GATEWAY,
            b"bad gateway",
        );
        assert_eq!(
            (e.class, e.code.as_str(), e.effect),
            (ErrorClass::Transient, "ServerNetworkError", Effect::Unknown)
        );
        assert!(e.message.contains("502"), "{}", e.message);
        // EMR's own envelope, in a 200 or not: a refusal, whatever its class.
        let internal =
            br#"{"Response":{"Error":{"Code":"InternalError","Message":"x"},"RequestId":"r-5"}}"#;
        let e = parse_envelope::<wire::ScaleOutInstanceResponse>("ScaleOutInstance", internal)
            .unwrap_err();
        assert_eq!(
            (e.class, e.effect, e.request_id.as_deref()),
            (ErrorClass::Transient, Effect::Refused, Some("r-5"))
        );
        let e = http_status_error(
            "ScaleOutInstance",
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            internal,
        );
        assert_eq!(
            (e.code.as_str(), e.effect),
            ("InternalError", Effect::Refused)
        );
        // Unreadable bodies and gateway pages: unknown; a 4xx/429 page: refused.
        for body in [&b"<html>"[..], b"{}"] {
            let e =
                parse_envelope::<wire::TerminateTasksResponse>("TerminateTasks", body).unwrap_err();
            assert_eq!(e.effect, Effect::Unknown);
        }
        for (status, effect) in [
            (reqwest::StatusCode::GATEWAY_TIMEOUT, Effect::Unknown),
            (reqwest::StatusCode::SERVICE_UNAVAILABLE, Effect::Unknown),
            (reqwest::StatusCode::TOO_MANY_REQUESTS, Effect::Refused),
            (reqwest::StatusCode::FORBIDDEN, Effect::Refused),
        ] {
            assert_eq!(
                http_status_error("TerminateTasks", status, b"<html>proxy</html>").effect,
                effect,
                "{status}"
            );
        }
    }

    #[test]
    fn pools_are_counted_and_chosen_by_tag_and_never_mixed() {
        let tagged = |id: &str, cvm: &str, pool: Option<&str>, apply: &str| NodeHardwareInfo {
            tags: pool.map(|p| vec![wire::Tag::new(POOL_TAG_KEY, p)]),
            ..node(flag::TASK, id, cvm, 1, apply)
        };
        let mut auto = tagged("auto", "ins-auto", Some("spot"), "2026-01-01 00:00:00");
        auto.auto_flag = Some(1);
        let raw = vec![
            node(flag::CORE, "c1", "ins-c1", 1, "2024-01-01 00:00:00"),
            // A Core node with the tag is Core, never a pool's.
            NodeHardwareInfo {
                tags: Some(vec![wire::Tag::new(POOL_TAG_KEY, "spot")]),
                ..node(flag::CORE, "c2", "ins-c2", 1, "2024-01-01 00:00:00")
            },
            tagged("d1", "ins-d1", None, "2024-01-01 00:00:00"),
            tagged("s1", "ins-s1", Some("spot"), "2025-01-01 00:00:00"),
            tagged("s2", "ins-s2", Some("spot"), "2025-01-02 00:00:00"),
            tagged("o1", "ins-o1", Some("ondemand"), "2025-01-03 00:00:00"),
            // A pool no longer in the spec: newest of all, never picked.
            tagged("g1", "ins-g1", Some("gone"), "2025-06-01 00:00:00"),
            auto,
        ];
        let listed = index_nodes(&raw);
        let c = count_pools(&listed, &["spot", "ondemand", "empty"]);
        assert_eq!((c.core, c.task), (2, 1));
        assert_eq!(
            c.pools.into_iter().collect::<Vec<_>>(),
            [
                ("empty".to_string(), 0),
                ("ondemand".to_string(), 1),
                ("spot".to_string(), 2)
            ]
        );
        assert_eq!(c.unlisted.get("gone"), Some(&1));
        assert_eq!(c.unlisted.len(), 1, "AutoFlag nodes are in no pool");
        let ids = |pool: Option<&str>, n: usize| {
            choose_nodes(&listed, NodeGroup::Task, pool, n, &[], true)
                .chosen
                .iter()
                .map(|n| n.resource_id.clone())
                .collect::<Vec<_>>()
        };
        // The default pool never picks a pool's node, even the newest.
        assert_eq!(ids(None, 10), ["d1"]);
        assert_eq!(ids(Some("spot"), 1), ["s2"]);
        assert_eq!(ids(Some("spot"), 10), ["s2", "s1"]);
        assert_eq!(ids(Some("ondemand"), 10), ["o1"]);
        assert!(ids(Some("empty"), 10).is_empty());
        // A preferred node of another pool is skipped, not taken.
        let c = choose_nodes(&listed, NodeGroup::Task, None, 1, &["s1".into()], false);
        assert_eq!(c.skipped_preferred, ["s1"]);
        // Without pools in the spec, every tagged node is unlisted.
        let c = count_pools(&listed, &[]);
        assert_eq!((c.task, c.unlisted.values().sum::<i32>()), (1, 4));
    }

    #[test]
    fn task_nodes_are_counted_by_pool_tag() {
        let tagged = |id: &str, pool: Option<&str>, auto: i64| NodeHardwareInfo {
            tags: pool.map(|p| {
                vec![
                    wire::Tag::new("team", "data"),
                    wire::Tag::new(POOL_TAG_KEY, p),
                ]
            }),
            auto_flag: Some(auto),
            ..node(flag::TASK, id, "", 1, "")
        };
        let nodes = vec![
            tagged("a", Some("spot"), 0),
            tagged("b", Some("spot"), 0),
            tagged("c", Some("ondemand"), 0),
            tagged("d", None, 0),
            // EMR's own auto-scaling: not ours, not counted.
            tagged("e", Some("spot"), 1),
            // Core nodes are never a pool's.
            NodeHardwareInfo {
                tags: Some(vec![wire::Tag::new(POOL_TAG_KEY, "spot")]),
                ..node(flag::CORE, "f", "", 1, "")
            },
        ];
        let by = task_nodes_by_tag(&nodes, POOL_TAG_KEY);
        assert_eq!(by.get(&Some("spot".to_string())), Some(&2));
        assert_eq!(by.get(&Some("ondemand".to_string())), Some(&1));
        assert_eq!(by.get(&None), Some(&1));
        assert_eq!(node_tag(&nodes[0], "team"), Some("data"));
        assert_eq!(node_tag(&nodes[3], POOL_TAG_KEY), None);
        // A tag without a value reads as the empty value.
        let bare = NodeHardwareInfo {
            tags: Some(vec![wire::Tag {
                tag_key: Some(POOL_TAG_KEY.into()),
                tag_value: None,
            }]),
            ..Default::default()
        };
        assert_eq!(node_tag(&bare, POOL_TAG_KEY), Some(""));
    }
}
