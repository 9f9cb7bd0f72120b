//! [`TencentCloud`]: the [`Cloud`] trait over EMR's `DescribeInstances`,
//! `DescribeClusterNodes`, `ScaleOutInstance`, `TerminateTasks`,
//! `TerminateClusterNodes` and `DescribeClusterFlowStatusDetail`.
//!
//! Every call is a signed `POST /` with a JSON body; business errors arrive in
//! HTTP 200 bodies as `Response.Error` and are classified by
//! [`errors::classify`](super::errors::classify). The client never retries on
//! its own: the engine owns retries, and reuses the operation's `ClientToken`
//! when it retries a scale-out.
//!
//! # Rules this client applies (and documents)
//!
//! - **State** (`DescribeInstances` `Status`): 2 running; 4, 15, 16, 24 busy;
//!   301, 302 failed; anything else unavailable.
//! - **Counts**: `DescribeClusterNodes` nodes with `Flag` 2 (Core) and 3
//!   (Task) that the operator manages: not added by EMR's own auto-scaling
//!   (`AutoFlag == 1`) and not pod resources (`HardwareResourceType == pod`;
//!   the listing includes them unless the request asks for `host` only).
//!   Those are counted apart ([`UnmanagedNodes`], `status.observed`), never
//!   toward `core`/`task`, and never chosen for removal.
//! - **Optional fields**: the SDK makes every response field optional. What
//!   is there is parsed; a missing field the decision needs (`ClusterId` to
//!   find the entry, `Status` for the state, a managed node's `Flag`,
//!   `FlowTotalStatus` for progress) is an error naming the field, the action
//!   and the request id.
//! - **Paging** of `DescribeClusterNodes`: `Offset` is documented as a "page
//!   number" but is a row offset in most Tencent APIs. The pager asks for row
//!   offset 100 after the first page; if that adds no new node while
//!   `TotalCnt` is not reached, it switches to page numbers (1, 2, ...). Nodes
//!   are de-duplicated by `EmrResourceId`, and paging that makes no progress is
//!   an error rather than an undercount.
//! - **"Most recently added first"**: nodes are ordered by `ApplyTime`
//!   (unparseable or zero times count as oldest), ties by their position in
//!   the listing (later = newer). **(inference)**
//! - **Scale-in choice**: Task: only `Destroyable == 1` nodes; Core: any
//!   (TerminateClusterNodes has no such precondition; the cloud's refusal is
//!   reported with its code). Nodes with `AutoFlag == 1` are never counted
//!   nor chosen; entries of
//!   `preferNodes` first (matched against `EmrResourceId` or the CVM id
//!   `OrderNo`; entries not eligible are skipped and logged), then the most
//!   recently added.
//! - **Scale-in call**: Task without graceful decommission: `TerminateTasks`
//!   with `EmrResourceId`s (no flow id: progress is `Unknown`). Core, or any
//!   graceful scale-in: `TerminateClusterNodes` with CVM ids from
//!   `NodeHardwareInfo.OrderNo` **(inference)**, `NodeFlag` `CORE`/`TASK`,
//!   `GraceDownFlag` and `GraceDownTime` (60-1800 s). A Core scale-in that
//!   would leave fewer than 3 Core nodes is refused before any call.
//! - **Per-call limit**: EMR documents `InvalidParameter.InvalidTaskCount`
//!   "task count cannot exceed 20". We read it as a per-request cap and
//!   advertise `max_out_per_call = 20` so the planner splits larger scale-outs
//!   (for Core too, conservatively). If the cap does not exist, the cost is
//!   only more, smaller operations. **(inference)**
//! - **Progress**: `DescribeClusterFlowStatusDetail` by `FlowId`, or by `TraceId`
//!   when there is no flow id (`ScaleOutInstance` currently answers `FlowId: 0`).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::errors;
use super::sign::{sign, SigningInput};
use super::wire::{self, flag, flow_status, NodeHardwareInfo};
use super::{
    endpoint, ConfigError, DEFAULT_RATE_LIMIT, KEY_SECRET_ID, KEY_SECRET_KEY, KEY_TOKEN, SERVICE,
};
use clusterscale_core::api::{CloudKind, NodeGroup, OperationRecord, TencentSpec, MIN_CORE};
use clusterscale_core::clock::{Clock, SystemClock};
use clusterscale_core::cloud::credentials::{Credentials, SecretString};
use clusterscale_core::cloud::http::{self, malformed, transport_error, Endpoint, RateLimits};
use clusterscale_core::cloud::provider::CloudProvider;
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ClusterState, Effect, ErrorClass, Node, ObservedCluster,
    OperationProgress, ScaleRequest, Submitted, UnmanagedNodes,
};

/// Largest `TaskCount` one `ScaleOutInstance` accepts **(inference** from
/// `InvalidParameter.InvalidTaskCount`).
pub const MAX_OUT_PER_CALL: i32 = 20;

/// How long after the first send an unconfirmed `ScaleOutInstance` may be
/// re-sent with the same `ClientToken`: EMR deduplicates a token for 5
/// minutes; stay well inside ([`Capabilities::token_window`]).
pub const CLIENT_TOKEN_WINDOW: Duration = Duration::from_secs(240);
/// Bounds of `GraceDownTime`, seconds.
pub const GRACE_DOWN_RANGE: std::ops::RangeInclusive<i32> = 60..=1800;
/// Safety stop for `DescribeClusterNodes` paging (500 nodes need 5 pages).
const MAX_PAGES: usize = 20;

const DESCRIBE_INSTANCES: &str = "DescribeInstances";
const DESCRIBE_CLUSTER_NODES: &str = "DescribeClusterNodes";
const SCALE_OUT_INSTANCE: &str = "ScaleOutInstance";
const TERMINATE_TASKS: &str = "TerminateTasks";
const TERMINATE_CLUSTER_NODES: &str = "TerminateClusterNodes";
const DESCRIBE_FLOW: &str = "DescribeClusterFlowStatusDetail";

/// Client settings beyond the spec and the credentials.
#[derive(Clone)]
pub struct TencentOptions {
    /// Requests per second per (SecretId, action); default 20.
    pub rate_limit_per_second: u32,
    /// The token buckets to use; default: the process-wide buckets for
    /// `rate_limit_per_second` ([`http::shared_rate_limits`]), so that every
    /// resource using one SecretId shares its budget.
    pub rate_limits: Option<RateLimits>,
    /// Source of `X-TC-Timestamp`; default the system clock.
    pub clock: Arc<dyn Clock>,
    /// The HTTP client; default [`http::client`].
    pub http: Option<reqwest::Client>,
}

impl Default for TencentOptions {
    fn default() -> Self {
        Self {
            rate_limit_per_second: DEFAULT_RATE_LIMIT,
            rate_limits: None,
            clock: Arc::new(SystemClock),
            http: None,
        }
    }
}

impl fmt::Debug for TencentOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TencentOptions")
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("rate_limits", &self.rate_limits)
            .finish_non_exhaustive()
    }
}

/// One EMR cluster, reached with one set of credentials.
pub struct TencentCloud {
    endpoint: Endpoint,
    region: String,
    instance_id: String,
    pay_mode: i64,
    time_unit: String,
    time_span: i64,
    pre_executed_file_settings: Option<Vec<serde_json::Value>>,
    secret_id: SecretString,
    secret_key: SecretString,
    token: Option<SecretString>,
    http: reqwest::Client,
    limits: RateLimits,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TencentCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TencentCloud")
            .field("endpoint", &self.endpoint.base)
            .field("region", &self.region)
            .field("instance_id", &self.instance_id)
            .field("pay_mode", &self.pay_mode)
            .field("time_unit", &self.time_unit)
            .field("time_span", &self.time_span)
            .field("secret_id", &self.secret_id)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl TencentCloud {
    /// A client for `spec`. Credentials need `secretId` and `secretKey`, and
    /// may have `token` (STS). Fails on a missing key, a bad endpoint or an
    /// out-of-range spec field; makes no call.
    pub fn new(
        spec: &TencentSpec,
        credentials: &Credentials,
        options: TencentOptions,
    ) -> Result<Self, ConfigError> {
        // An identifier, never containing blanks: forgive copy-paste whitespace.
        let secret_id = SecretString::new(credentials.require(KEY_SECRET_ID)?.expose().trim());
        let secret_key = credentials.require(KEY_SECRET_KEY)?.clone();
        let token = credentials.get(KEY_TOKEN).cloned();
        let region = spec.region.trim();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError::Spec(format!(
                "spec.tencent.region: {region:?} is not a region name (e.g. ap-guangzhou)"
            )));
        }
        let instance_id = spec.instance_id.trim();
        if instance_id.is_empty() {
            return Err(ConfigError::Spec(
                "spec.tencent.instanceId must not be empty".into(),
            ));
        }
        let (default_unit, default_span) = match spec.pay_mode {
            0 => ("s", 3600),
            1 => ("m", 1),
            other => {
                return Err(ConfigError::Spec(format!(
                    "spec.tencent.payMode must be 0 (pay-as-you-go) or 1 (monthly), got {other}"
                )))
            }
        };
        let time_unit = match spec.time_unit.as_deref().map(str::trim) {
            None | Some("") => default_unit.to_string(),
            Some(u) => u.to_string(),
        };
        let time_span = spec.time_span.unwrap_or(default_span);
        if time_span <= 0 {
            return Err(ConfigError::Spec(format!(
                "spec.tencent.timeSpan must be > 0, got {time_span}"
            )));
        }
        let endpoint = endpoint(spec)?;
        if endpoint.insecure {
            tracing::warn!(endpoint = %endpoint.base, "Tencent endpoint uses plain http:// (loopback only: fakes and tests)");
        }
        let limits = options
            .rate_limits
            .unwrap_or_else(|| http::shared_rate_limits(options.rate_limit_per_second));
        Ok(Self {
            endpoint,
            region: region.to_string(),
            instance_id: instance_id.to_string(),
            pay_mode: i64::from(spec.pay_mode),
            time_unit,
            time_span,
            pre_executed_file_settings: spec.pre_executed_file_settings.clone(),
            secret_id,
            secret_key,
            token,
            http: options.http.unwrap_or_else(http::client),
            limits,
            clock: options.clock,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The cluster's entry in `DescribeInstances`.
    pub async fn describe_cluster(&self) -> Result<wire::ClusterInstancesInfo, CloudError> {
        self.describe_cluster_with_id().await.map(|(c, _)| c)
    }

    /// The cluster's entry and the answer's request id.
    async fn describe_cluster_with_id(
        &self,
    ) -> Result<(wire::ClusterInstancesInfo, Option<String>), CloudError> {
        let req = wire::DescribeInstancesRequest {
            instance_ids: vec![self.instance_id.clone()],
            display_strategy: "clusterList".into(),
            offset: Some(0),
            limit: Some(10),
            project_id: Some(-1),
        };
        let (resp, request_id): (wire::DescribeInstancesResponse, _) =
            self.call(DESCRIBE_INSTANCES, &req).await?;
        let list = resp.cluster_list.unwrap_or_default();
        let unnamed = list.iter().filter(|c| c.cluster_id.is_none()).count();
        if let Some(found) = list
            .into_iter()
            .find(|c| c.cluster_id.as_deref() == Some(self.instance_id.as_str()))
        {
            return Ok((found, request_id));
        }
        if unnamed > 0 {
            // We cannot tell whether one of them is ours: say so, not "not found".
            return Err(missing_field(
                DESCRIBE_INSTANCES,
                "ClusterInstancesInfo.ClusterId",
                request_id,
                format!(
                    "{unnamed} entr{} without it, so none can be matched to {}",
                    if unnamed == 1 { "y" } else { "ies" },
                    self.instance_id
                ),
            ));
        }
        Err({
            CloudError::new(
                    ErrorClass::NotFound,
                    DESCRIBE_INSTANCES,
                    "ClusterScale.InstanceNotListed",
                    format!(
                        "DescribeInstances in region {} does not list {} (TotalCnt {}); check spec.tencent.instanceId, \
                         the region and the credentials' permissions",
                        self.region, self.instance_id, resp.total_cnt
                    ),
                )
                .with_request_id(request_id)
        })
    }

    /// Every node of the cluster (`DescribeClusterNodes`, all pages).
    pub async fn describe_nodes(&self) -> Result<Vec<NodeHardwareInfo>, CloudError> {
        let mut pager = NodePager::default();
        while let Some(offset) = pager.next_offset() {
            let req = wire::DescribeClusterNodesRequest {
                instance_id: self.instance_id.clone(),
                node_flag: "all".into(),
                offset: Some(offset),
                limit: Some(wire::PAGE_LIMIT),
            };
            let (page, request_id): (wire::DescribeClusterNodesResponse, _) =
                self.call(DESCRIBE_CLUSTER_NODES, &req).await?;
            // A machine node we would count must say which group it is in.
            if let Some(n) = page
                .node_list
                .iter()
                .flatten()
                .find(|n| n.flag.is_none() && managed(n))
            {
                return Err(missing_field(
                    DESCRIBE_CLUSTER_NODES,
                    "NodeHardwareInfo.Flag",
                    request_id,
                    format!(
                        "node {} has none, so it cannot be counted as Core or Task",
                        n.emr_resource_id
                            .as_deref()
                            .or(n.order_no.as_deref())
                            .unwrap_or("(no id)")
                    ),
                ));
            }
            pager
                .absorb(page)
                .map_err(|detail| malformed(DESCRIBE_CLUSTER_NODES, request_id, detail))?;
        }
        Ok(pager.nodes)
    }

    /// Send one signed call and parse its `Response`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        action: &'static str,
        req: &Req,
    ) -> Result<(Resp, Option<String>), CloudError> {
        let body = serde_json::to_vec(req).map_err(|e| {
            CloudError::new(
                ErrorClass::Invalid,
                action,
                "ClusterScale.EncodeError",
                e.to_string(),
            )
        })?;
        self.limits.acquire(self.secret_id.expose(), action).await;
        let timestamp = self.clock.now().as_second();
        let signature = sign(&SigningInput {
            secret_id: self.secret_id.expose(),
            secret_key: self.secret_key.expose(),
            service: SERVICE,
            host: &self.endpoint.host,
            content_type: wire::CONTENT_TYPE,
            timestamp,
            payload: &body,
        })
        .map_err(|e| {
            CloudError::new(
                ErrorClass::Invalid,
                action,
                "ClusterScale.ClockError",
                e.to_string(),
            )
        })?;
        let mut request = self
            .http
            .post(format!("{}/", self.endpoint.base))
            .header(HOST, &self.endpoint.host)
            .header(CONTENT_TYPE, wire::CONTENT_TYPE)
            .header(AUTHORIZATION, sensitive(&signature.authorization, action)?)
            .header("X-TC-Action", action)
            .header("X-TC-Version", wire::VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Region", &self.region);
        if let Some(token) = &self.token {
            request = request.header("X-TC-Token", sensitive(token.expose(), action)?);
        }
        let started = Instant::now();
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(action, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(action, &e))?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if status != reqwest::StatusCode::OK {
            tracing::debug!(action, %status, elapsed_ms, "Tencent call failed at the HTTP level");
            return Err(http_status_error(action, status, &bytes));
        }
        let result = parse_envelope(action, &bytes);
        match &result {
            Ok((_, request_id)) => tracing::debug!(
                action,
                request_id = request_id.as_deref(),
                elapsed_ms,
                "Tencent call"
            ),
            Err(e) => {
                tracing::debug!(action, code = %e.code, request_id = e.request_id.as_deref(), elapsed_ms, "Tencent call refused")
            }
        }
        result
    }

    async fn terminate_tasks(&self, chosen: &[&ListedNode]) -> Result<Submitted, CloudError> {
        let resource_ids: Vec<String> = chosen.iter().map(|n| n.resource_id.clone()).collect();
        let req = wire::TerminateTasksRequest {
            instance_id: self.instance_id.clone(),
            resource_ids: resource_ids.clone(),
        };
        let (_, request_id): (wire::TerminateTasksResponse, _) =
            self.call(TERMINATE_TASKS, &req).await?;
        Ok(Submitted {
            request_id,
            flow_id: None,
            trace_id: None,
            node_ids: resource_ids,
            unmatched_preferred: Vec::new(),
        })
    }

    async fn terminate_cluster_nodes(
        &self,
        group: NodeGroup,
        chosen: &[&ListedNode],
        graceful_seconds: i32,
    ) -> Result<Submitted, CloudError> {
        let cvm_ids: Vec<String> = chosen.iter().filter_map(|n| n.cvm_id.clone()).collect();
        let graceful = graceful_seconds > 0;
        let req = wire::TerminateClusterNodesRequest {
            instance_id: self.instance_id.clone(),
            cvm_instance_ids: cvm_ids,
            node_flag: match group {
                NodeGroup::Core => "CORE",
                NodeGroup::Task => "TASK",
            }
            .into(),
            grace_down_flag: Some(graceful),
            grace_down_time: graceful.then_some(i64::from(graceful_seconds)),
        };
        let (resp, request_id): (wire::TerminateClusterNodesResponse, _) =
            self.call(TERMINATE_CLUSTER_NODES, &req).await?;
        Ok(Submitted {
            request_id,
            flow_id: resp.flow_id.filter(|f| *f != 0).map(|f| f.to_string()),
            trace_id: None,
            node_ids: chosen.iter().map(|n| n.resource_id.clone()).collect(),
            unmatched_preferred: Vec::new(),
        })
    }
}

#[async_trait]
impl Cloud for TencentCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Tencent
    }

    fn capabilities(&self) -> Capabilities {
        <super::TencentProvider as CloudProvider>::CAPABILITIES
    }

    async fn observe(&self) -> Result<ObservedCluster, CloudError> {
        let (cluster, request_id) = self.describe_cluster_with_id().await?;
        let Some(status) = cluster.status else {
            return Err(missing_field(
                DESCRIBE_INSTANCES,
                "ClusterInstancesInfo.Status",
                request_id,
                format!(
                    "the entry of {} has none, so whether it can be scaled is unknown",
                    self.instance_id
                ),
            ));
        };
        let state = cluster_state(status);
        let raw = match self.describe_nodes().await {
            Ok(raw) => raw,
            // A cluster we will not act on may refuse to list its nodes
            // (creating, isolated, ...): report its state with the counts
            // DescribeInstances gave.
            Err(e) if !state.is_running() && !matches!(state, ClusterState::Busy(_)) => {
                tracing::debug!(error = %e, state = %state, "node list unavailable; using DescribeInstances counts");
                let config = cluster.config.unwrap_or_default();
                return Ok(ObservedCluster {
                    state,
                    core: clamp_count(config.core_node_size.unwrap_or(0)),
                    task: clamp_count(config.task_node_size.unwrap_or(0)),
                    nodes: Vec::new(),
                    last_resize_failed: None,
                    unmanaged: Default::default(),
                });
            }
            Err(e) => return Err(e),
        };
        let listed = index_nodes(&raw);
        let count = |g| listed.iter().filter(|n| n.group == Some(g)).count() as i32;
        Ok(ObservedCluster {
            state,
            core: count(NodeGroup::Core),
            task: count(NodeGroup::Task),
            nodes: listed.iter().filter_map(ListedNode::to_node).collect(),
            last_resize_failed: None,
            unmanaged: unmanaged_nodes(&raw),
        })
    }

    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        if req.count <= 0 {
            return Err(refused(
                SCALE_OUT_INSTANCE,
                "ClusterScale.InvalidCount",
                format!("count must be > 0, got {}", req.count),
            ));
        }
        let count = Some(i64::from(req.count));
        let (task_count, core_count) = match req.group {
            NodeGroup::Task => (count, None),
            NodeGroup::Core => (None, count),
        };
        let body = wire::ScaleOutInstanceRequest {
            client_token: Some(req.token.clone()).filter(|t| !t.is_empty()),
            time_unit: self.time_unit.clone(),
            time_span: self.time_span,
            instance_id: self.instance_id.clone(),
            pay_mode: self.pay_mode,
            task_count,
            core_count,
            pre_executed_file_settings: self.pre_executed_file_settings.clone(),
        };
        let (resp, request_id): (wire::ScaleOutInstanceResponse, _) =
            self.call(SCALE_OUT_INSTANCE, &body).await?;
        Ok(Submitted {
            request_id,
            flow_id: resp.flow_id.filter(|f| *f != 0).map(|f| f.to_string()),
            trace_id: resp.trace_id.filter(|t| !t.is_empty()),
            node_ids: Vec::new(),
            unmatched_preferred: Vec::new(),
        })
    }

    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        let graceful = req.graceful_timeout_seconds > 0;
        let action = if req.group == NodeGroup::Task && !graceful {
            TERMINATE_TASKS
        } else {
            TERMINATE_CLUSTER_NODES
        };
        if req.count <= 0 {
            return Err(refused(
                action,
                "ClusterScale.InvalidCount",
                format!("count must be > 0, got {}", req.count),
            ));
        }
        if graceful && !GRACE_DOWN_RANGE.contains(&req.graceful_timeout_seconds) {
            return Err(refused(
                action,
                "ClusterScale.InvalidGraceDownTime",
                format!(
                    "gracefulTimeoutSeconds must be between {} and {} for TerminateClusterNodes, got {}",
                    GRACE_DOWN_RANGE.start(),
                    GRACE_DOWN_RANGE.end(),
                    req.graceful_timeout_seconds
                ),
            ));
        }
        let listed = index_nodes(&self.describe_nodes().await?);
        if req.group == NodeGroup::Core {
            let core = listed
                .iter()
                .filter(|n| n.group == Some(NodeGroup::Core))
                .count() as i32;
            if core - req.count < MIN_CORE {
                return Err(refused(
                    action,
                    "ClusterScale.BelowMinimumCore",
                    format!(
                        "removing {} of {core} Core nodes would leave fewer than {MIN_CORE}",
                        req.count
                    ),
                ));
            }
        }
        let needs_cvm_id = action == TERMINATE_CLUSTER_NODES;
        let choice = choose_nodes(
            &listed,
            req.group,
            req.count as usize,
            &req.prefer_nodes,
            needs_cvm_id,
        );
        if !choice.skipped_preferred.is_empty() {
            tracing::info!(
                skipped = ?choice.skipped_preferred,
                "preferNodes entries that are not removable {} nodes of this cluster were skipped",
                req.group.as_str()
            );
        }
        if choice.chosen.len() < req.count as usize {
            return Err(refused(
                action,
                "ClusterScale.NotEnoughRemovableNodes",
                format!(
                    "only {} {} nodes can be removed ({}), {} requested",
                    choice.chosen.len(),
                    req.group.as_str(),
                    match (req.group, needs_cvm_id) {
                        (NodeGroup::Core, _) => "a CVM id",
                        (NodeGroup::Task, true) => "Destroyable=1 and a CVM id",
                        (NodeGroup::Task, false) => "Destroyable=1",
                    },
                    req.count
                ),
            ));
        }
        if action == TERMINATE_TASKS {
            self.terminate_tasks(&choice.chosen).await
        } else {
            self.terminate_cluster_nodes(req.group, &choice.chosen, req.graceful_timeout_seconds)
                .await
        }
    }

    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        let non_empty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty() && v != "0");
        let (key, value) = match (non_empty(&op.flow_id), non_empty(&op.trace_id)) {
            (Some(flow), _) => ("FlowId", flow),
            (None, Some(trace)) => ("TraceId", trace),
            // TerminateTasks has neither: decide from state and counts.
            (None, None) => return Ok(OperationProgress::Unknown),
        };
        let req = wire::DescribeClusterFlowStatusDetailRequest {
            instance_id: self.instance_id.clone(),
            flow_param: wire::FlowParam {
                f_key: key.into(),
                f_value: value,
            },
            need_extra_detail: Some(false),
        };
        let (resp, request_id): (wire::DescribeClusterFlowStatusDetailResponse, _) =
            self.call(DESCRIBE_FLOW, &req).await?;
        if resp.flow_total_status.is_none() {
            return Err(missing_field(
                DESCRIBE_FLOW,
                "FlowTotalStatus",
                request_id,
                format!("the progress of operation {} is unknown", op.id),
            ));
        }
        Ok(flow_progress(&resp))
    }
}

/// An answer without a field the decision needs: names the field, the
/// action and (in its Display) the request id.
fn missing_field(
    action: &str,
    field: &str,
    request_id: Option<String>,
    detail: String,
) -> CloudError {
    malformed(
        action,
        request_id,
        format!("the answer has no {field}: {detail}"),
    )
}

/// A node the operator manages: a machine (not a pod resource) that EMR's
/// own auto-scaling did not add. Only these are counted and chosen.
fn managed(n: &NodeHardwareInfo) -> bool {
    n.auto_flag != Some(1) && !is_pod(n)
}

fn is_pod(n: &NodeHardwareInfo) -> bool {
    n.hardware_resource_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(wire::HARDWARE_POD))
}

/// The nodes that are listed but not the operator's (see [`managed`]).
fn unmanaged_nodes(raw: &[NodeHardwareInfo]) -> UnmanagedNodes {
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

/// A cloud refusal decided before calling: our own `ClusterScale.*` code, class Invalid.
fn refused(action: &str, code: &str, message: String) -> CloudError {
    CloudError::new(ErrorClass::Invalid, action, code, message)
}

/// A header value the HTTP stack must never print.
fn sensitive(value: &str, action: &str) -> Result<HeaderValue, CloudError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        CloudError::new(
            ErrorClass::Auth,
            action,
            "ClusterScale.InvalidCredentials",
            "a credential contains characters that cannot be sent in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn clamp_count(n: i64) -> i32 {
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
    let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let snippet = snippet.trim();
    let message = if snippet.is_empty() {
        format!("HTTP {status} from the EMR endpoint")
    } else {
        format!("HTTP {status} from the EMR endpoint: {snippet}")
    };
    CloudError::new(class, action, "ServerNetworkError", message).with_effect(effect)
}

/// Pages through `DescribeClusterNodes` (see the module docs for the rule).
#[derive(Debug, Default)]
struct NodePager {
    nodes: Vec<NodeHardwareInfo>,
    seen: HashSet<String>,
    total: Option<i64>,
    page_numbers: bool,
    next_page: i64,
    requests: usize,
    done: bool,
}

impl NodePager {
    /// The `Offset` of the next request, or `None` when every node is in.
    fn next_offset(&self) -> Option<i64> {
        match (self.done, self.total) {
            (true, _) => None,
            (false, None) => Some(0),
            (false, Some(_)) if self.page_numbers => Some(self.next_page),
            (false, Some(_)) => Some(self.nodes.len() as i64),
        }
    }

    fn absorb(&mut self, page: wire::DescribeClusterNodesResponse) -> Result<(), String> {
        let first = self.total.is_none();
        self.requests += 1;
        let listed = page.node_list.as_ref().map_or(0, Vec::len) as i64;
        // TotalCnt is optional in the SDK. Without it, paging goes on until a
        // page brings nothing new or is short (see below).
        let known = page.total_cnt.is_some();
        let total = page.total_cnt.map_or(i64::MAX, |t| t.max(0));
        self.total = Some(total);
        let mut added = 0;
        for node in page.node_list.unwrap_or_default() {
            if self.seen.insert(node_key(&node)) {
                self.nodes.push(node);
                added += 1;
            }
        }
        if !known {
            let short = listed < wire::PAGE_LIMIT;
            if (added > 0 && short) || (added == 0 && (first || self.page_numbers)) {
                // A short page of new nodes is the last; nothing new after
                // both offset readings have been tried is the end.
                self.done = true;
                return Ok(());
            }
            if self.requests >= MAX_PAGES {
                return Err(format!(
                    "paging without TotalCnt stopped at {} nodes after {} requests",
                    self.nodes.len(),
                    self.requests
                ));
            }
            if added == 0 {
                // An empty row offset: maybe the end, maybe page numbers.
                self.page_numbers = true;
                self.next_page = 1;
            } else if self.page_numbers {
                self.next_page += 1;
            }
            return Ok(());
        }
        if self.nodes.len() as i64 >= total {
            self.done = true;
            return Ok(());
        }
        let stuck = || {
            format!(
                "paging stopped at {} of TotalCnt {total} nodes after {} requests",
                self.nodes.len(),
                self.requests
            )
        };
        if self.requests >= MAX_PAGES || (first && added == 0) {
            return Err(stuck());
        }
        if added == 0 {
            if self.page_numbers {
                return Err(stuck());
            }
            // A row offset answered nothing new: Offset is a page number.
            self.page_numbers = true;
            self.next_page = 1;
        } else if self.page_numbers {
            self.next_page += 1;
        }
        Ok(())
    }
}

fn node_key(n: &NodeHardwareInfo) -> String {
    match (&n.emr_resource_id, &n.order_no) {
        (Some(id), _) if !id.is_empty() => id.clone(),
        (_, Some(cvm)) if !cvm.is_empty() => format!("cvm:{cvm}"),
        _ => format!("anon:{:?}:{:?}:{:?}", n.flag, n.ip, n.name_tag),
    }
}

/// A node as the scale-in choice sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListedNode {
    group: Option<NodeGroup>,
    /// `EmrResourceId` (empty when the cloud gave none).
    resource_id: String,
    /// `OrderNo`, the CVM id.
    cvm_id: Option<String>,
    destroyable: bool,
    /// Larger is newer.
    added_order: i64,
}

impl ListedNode {
    fn to_node(&self) -> Option<Node> {
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
fn index_nodes(raw: &[NodeHardwareInfo]) -> Vec<ListedNode> {
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
            destroyable: n.destroyable == Some(1),
            added_order,
        })
        .collect()
}

/// Which nodes a scale-in removes.
#[derive(Debug)]
struct Choice<'a> {
    chosen: Vec<&'a ListedNode>,
    /// `preferNodes` entries that are not eligible nodes of the group.
    skipped_preferred: Vec<String>,
}

/// Eligible: in `group`, `Destroyable == 1`, with an `EmrResourceId` (and a
/// CVM id when `needs_cvm_id`). `prefer` first, in order; then newest first.
fn choose_nodes<'a>(
    listed: &'a [ListedNode],
    group: NodeGroup,
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
                && (group == NodeGroup::Core || n.destroyable)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(flag: i64, id: &str, cvm: &str, destroyable: i64, apply: &str) -> NodeHardwareInfo {
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
            ids(choose_nodes(&listed, NodeGroup::Task, 4, &[], false)),
            ["emr-vm-c", "emr-vm-a", "emr-vm-b", "emr-vm-d"]
        );
        // preferNodes first, by EmrResourceId or CVM id; ineligible entries are skipped.
        let prefer = vec![
            "ins-d".to_string(),
            "emr-vm-e".into(),
            "gone".into(),
            "emr-vm-d".into(),
        ];
        let choice = choose_nodes(&listed, NodeGroup::Task, 2, &prefer, false);
        assert_eq!(choice.skipped_preferred, ["emr-vm-e", "gone"]);
        assert_eq!(ids(choice), ["emr-vm-d", "emr-vm-c"]);
        // Never more than asked, even when preferred nodes alone exceed it.
        assert_eq!(
            ids(choose_nodes(
                &listed,
                NodeGroup::Task,
                1,
                &["emr-vm-b".into(), "emr-vm-a".into()],
                false
            )),
            ["emr-vm-b"]
        );
        // Masters never count, never get chosen.
        assert!(
            choose_nodes(&listed, NodeGroup::Core, 1, &["emr-vm-m".into()], false)
                .chosen
                .is_empty()
        );
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
        let c = choose_nodes(&listed, NodeGroup::Core, 2, &[], true);
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
        let core = choose_nodes(&listed, NodeGroup::Core, 5, &[], true);
        assert_eq!(core.chosen.len(), 1, "Destroyable 0 Core is eligible");
        assert_eq!(core.chosen[0].resource_id, "emr-vm-c0");
        let task = choose_nodes(&listed, NodeGroup::Task, 5, &["emr-vm-auto".into()], false);
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
        let task = choose_nodes(&listed, NodeGroup::Task, 2, &["emr-vm-pod".into()], false);
        assert_eq!(task.chosen.len(), 1);
        assert_eq!(task.chosen[0].resource_id, "emr-vm-h");
        assert_eq!(task.skipped_preferred, ["emr-vm-pod"]);
        assert!(choose_nodes(&listed, NodeGroup::Core, 1, &[], true)
            .chosen
            .is_empty());
        assert_eq!(unmanaged_nodes(&raw).pods, 2);
    }

    fn page(total: i64, ids: std::ops::Range<usize>) -> wire::DescribeClusterNodesResponse {
        wire::DescribeClusterNodesResponse {
            total_cnt: Some(total),
            node_list: Some(
                ids.map(|i| node(flag::TASK, &format!("emr-vm-{i}"), "", 1, ""))
                    .collect(),
            ),
        }
    }

    /// A server whose `Offset` is a row offset, or a page number.
    fn serve(rows: bool, total: usize, offset: i64) -> wire::DescribeClusterNodesResponse {
        let start = if rows {
            offset as usize
        } else {
            offset as usize * 100
        };
        page(total as i64, start.min(total)..(start + 100).min(total))
    }

    #[test]
    fn pager_handles_row_offsets_and_page_numbers() {
        for rows in [true, false] {
            for total in [0usize, 1, 100, 101, 250, 500] {
                let mut pager = NodePager::default();
                let mut offsets = Vec::new();
                while let Some(offset) = pager.next_offset() {
                    offsets.push(offset);
                    pager
                        .absorb(serve(rows, total, offset))
                        .unwrap_or_else(|e| panic!("rows={rows} total={total}: {e}"));
                }
                assert_eq!(
                    pager.nodes.len(),
                    total,
                    "rows={rows} total={total} offsets={offsets:?}"
                );
                let distinct: HashSet<_> = pager.nodes.iter().map(node_key).collect();
                assert_eq!(distinct.len(), total);
            }
        }
    }

    #[test]
    fn pager_without_total_cnt_reads_until_nothing_new() {
        for rows in [true, false] {
            for total in [0usize, 1, 99, 100, 101, 250] {
                let mut pager = NodePager::default();
                while let Some(offset) = pager.next_offset() {
                    let mut page = serve(rows, total, offset);
                    page.total_cnt = None;
                    pager
                        .absorb(page)
                        .unwrap_or_else(|e| panic!("rows={rows} total={total}: {e}"));
                }
                assert_eq!(pager.nodes.len(), total, "rows={rows} total={total}");
            }
        }
    }

    #[test]
    fn pager_reports_no_progress_instead_of_undercounting() {
        let mut pager = NodePager::default();
        let mut err = None;
        while let Some(_offset) = pager.next_offset() {
            // A server that always returns the first page.
            if let Err(e) = pager.absorb(page(150, 0..100)) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("must fail");
        assert!(err.contains("100 of TotalCnt 150"), "{err}");
        let mut pager = NodePager::default();
        assert!(
            pager.absorb(page(5, 0..0)).is_err(),
            "an empty first page with TotalCnt > 0"
        );
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
}
