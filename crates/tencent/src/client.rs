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
//! This module builds, signs, sends and pages the requests; what the answers
//! mean (state, progress, counts, the scale-in choice, error envelopes) is
//! read in [`interpret`](super::interpret), without I/O.
//!
//! # Rules this client applies (and documents)
//!
//! - **State** (`DescribeInstances` `Status`): 2 running; 4, 15, 16, 24 busy;
//!   301, 302 failed; anything else unavailable.
//! - **Counts**: `DescribeClusterNodes` nodes with `Flag` 2 (Core) and 3
//!   (Task) that the operator manages: not added by EMR's own auto-scaling
//!   (`AutoFlag == 1`) and not pod resources (`HardwareResourceType == pod`;
//!   the listing includes them unless the request asks for `host` only).
//!   Those are counted apart
//!   ([`UnmanagedNodes`](clusterscale_core::cloud::UnmanagedNodes),
//!   `status.observed`), never toward `core`/`task`, and never chosen for
//!   removal.
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
//! - **Task pools** (`spec.taskPools`, [`Capabilities::named_pools`]): EMR
//!   has no named Task groups in its manual scaling API, so a pool is the
//!   Task nodes that carry the tag
//!   [`POOL_TAG_KEY`](super::interpret::POOL_TAG_KEY)`=<pool name>`, set by
//!   the pool's `ScaleOutCluster` (`NodeFlag` TASK, `InstanceChargeType`
//!   from `chargeType`, `ResourceSpec.InstanceType` and `YarnNodeLabel`
//!   when set, `EnableStartServiceFlag: true`, the operation's token as
//!   `ClientToken`). They are counted from the `Tags` of the same
//!   `DescribeClusterNodes` listing, so an observation with pools makes the
//!   same calls as one without: one `DescribeInstances` and one
//!   `DescribeClusterNodes` per 100 nodes. Managed Task nodes without the
//!   tag are the default pool (`spec.task`); Core keeps its nodes whatever
//!   their tags; AutoFlag and pod nodes are in no pool (above).
//! - **Nodes of a pool no longer in the spec** (its tag names no pool of
//!   `spec.taskPools`: removed or renamed) are unmanaged, like AutoFlag
//!   nodes: in no pool and not in the default pool, never counted toward
//!   500, never chosen for removal, and reported by a warning each
//!   observation (pool name and count). Put the pool back in the spec (same
//!   name) to manage them again, or remove them in the console.
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
//! - **Scale-in of a pool**: only nodes of that pool (Task, tagged with its
//!   name, `Destroyable == 1`, with a CVM id), newest first; the default
//!   pool's scale-in only untagged Task nodes, so it never removes a node of
//!   a named pool, listed in the spec or not.
//! - **Scale-in call**: the default pool without graceful decommission:
//!   `TerminateTasks` with `EmrResourceId`s (no flow id: progress is
//!   `Unknown`). Core, a named pool, or any graceful scale-in:
//!   `TerminateClusterNodes` with CVM ids from
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
//!   A pool's operation is resolved the same way: `ScaleOutCluster` and
//!   `TerminateClusterNodes` both answer a `FlowId`, which the record keeps;
//!   the flow decides running, failed or done, and the engine checks the
//!   pool's own count (`ObservedCluster::pools`, by the tag) against the
//!   operation's target, as it checks Core's or the default pool's.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::interpret::{
    choose_nodes, clamp_count, cluster_state, count_pools, flow_progress, http_status_error,
    index_nodes, managed, parse_envelope, unmanaged_nodes, ListedNode, POOL_TAG_KEY,
};
use super::sign::{sign, SigningInput};
use super::wire::{self, NodeHardwareInfo};
use super::{endpoint, DEFAULT_RATE_LIMIT, KEY_SECRET_ID, KEY_SECRET_KEY, KEY_TOKEN, SERVICE};
use clusterscale_core::api::{
    CloudKind, NodeGroup, OperationRecord, TaskPoolSpec, TencentChargeType, TencentSpec, MIN_CORE,
};
use clusterscale_core::clock::{Clock, SystemClock};
use clusterscale_core::cloud::credentials::{Credentials, SecretString};
use clusterscale_core::cloud::fence;
use clusterscale_core::cloud::http::{self, malformed, transport_error, Endpoint, RateLimits};
use clusterscale_core::cloud::keys::{KeySource, Keys};
use clusterscale_core::cloud::provider::{CloudProvider, ConnectError};
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ClusterState, Effect, ErrorClass, ObservedCluster,
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
/// The action of [`TencentCloud::scale_out_cluster`].
pub const SCALE_OUT_CLUSTER: &str = "ScaleOutCluster";
const TERMINATE_TASKS: &str = "TerminateTasks";
const TERMINATE_CLUSTER_NODES: &str = "TerminateClusterNodes";
const DESCRIBE_FLOW: &str = "DescribeClusterFlowStatusDetail";

/// `InstanceChargeType` of a pool's ScaleOutCluster. PREPAID is not offered:
/// it needs `InstanceChargePrepaid` and an order to pay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolChargeType {
    /// `POSTPAID_BY_HOUR`.
    #[default]
    PostpaidByHour,
    /// `SPOTPAID` (Task nodes only).
    Spotpaid,
}

impl PoolChargeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostpaidByHour => wire::CHARGE_POSTPAID_BY_HOUR,
            Self::Spotpaid => wire::CHARGE_SPOTPAID,
        }
    }
}

impl From<TencentChargeType> for PoolChargeType {
    fn from(c: TencentChargeType) -> Self {
        match c {
            TencentChargeType::PostpaidByHour => Self::PostpaidByHour,
            TencentChargeType::Spotpaid => Self::Spotpaid,
        }
    }
}

impl PoolScaleOut {
    /// The ScaleOutCluster of `count` nodes for the named pool `pool`: its
    /// `tencent` block (none: POSTPAID_BY_HOUR, the cluster's default spec,
    /// no YARN label), the tag [`POOL_TAG_KEY`]`=<name>` by which its nodes
    /// are counted, and `token` as the `ClientToken`.
    pub fn for_pool(pool: &TaskPoolSpec, count: i32, token: &str) -> Self {
        let block = pool.tencent.clone().unwrap_or_default();
        Self {
            count,
            charge_type: block.charge_type.into(),
            instance_type: block.instance_type,
            yarn_node_label: block.yarn_node_label,
            tags: vec![(POOL_TAG_KEY.to_string(), pool.name.clone())],
            client_token: token.to_string(),
        }
    }
}

/// One ScaleOutCluster of a Task pool ([`TencentCloud::scale_out_cluster`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolScaleOut {
    /// Task nodes to add.
    pub count: i32,
    pub charge_type: PoolChargeType,
    /// `ResourceSpec.InstanceType`, when set (else the cluster's default spec).
    pub instance_type: Option<String>,
    /// `YarnNodeLabel`, when set.
    pub yarn_node_label: Option<String>,
    /// `Tags`, as (key, value); the caller passes
    /// ([`POOL_TAG_KEY`](super::interpret::POOL_TAG_KEY), pool name).
    pub tags: Vec<(String, String)>,
    /// `ClientToken`: the same token within five minutes adds nothing more.
    pub client_token: String,
}

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

/// One EMR cluster, reached with the keys of one account.
///
/// Every request takes its signing keys from the client's [`KeySource`]
/// (after the rate limiter's wait, right before signing): fixed keys of a
/// Secret ([`new`](Self::new)), or temporary keys that an exchange trades a
/// workload identity for ([`with_key_source`](Self::with_key_source)), sent
/// with their session token as `X-TC-Token`. A `KeySource` error is the
/// request's error, and nothing is sent.
pub struct TencentCloud {
    endpoint: Endpoint,
    region: String,
    instance_id: String,
    pay_mode: i64,
    time_unit: String,
    time_span: i64,
    pre_executed_file_settings: Option<Vec<serde_json::Value>>,
    keys: Arc<KeySource>,
    /// The account whose rate-limit buckets the requests draw from (see
    /// [`with_key_source`](Self::with_key_source)). Never logged.
    limit_account: String,
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
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl TencentCloud {
    /// A client for `spec`. Credentials need `secretId` and `secretKey`, and
    /// may have `token` (STS). Fails on a missing key, a bad endpoint or an
    /// out-of-range spec field; makes no call.
    ///
    /// The keys become a [`KeySource::fixed`] of this client's own; clients
    /// of one SecretId share its rate-limit budget.
    pub fn new(
        spec: &TencentSpec,
        credentials: &Credentials,
        options: TencentOptions,
    ) -> Result<Self, ConnectError> {
        // An identifier, never containing blanks: forgive copy-paste whitespace.
        let secret_id = credentials
            .require(KEY_SECRET_ID)?
            .expose()
            .trim()
            .to_string();
        let secret_key = credentials.require(KEY_SECRET_KEY)?.clone();
        let token = credentials.get(KEY_TOKEN).cloned();
        let keys = KeySource::fixed(Keys::fixed(
            SecretString::new(secret_id.clone()),
            secret_key,
            token,
        ));
        Self::build(spec, Arc::new(keys), options)
    }

    /// A client for `spec` that signs with the keys of `keys`, shared with
    /// every other client of the same account: build one [`KeySource`] per
    /// account (e.g. [`KeySource::exchanged`] over a
    /// [`WebIdentityExchange`](crate::sts::WebIdentityExchange)), wrap it in
    /// an `Arc`, and pass a clone of that `Arc` to each client. The clients
    /// then share one set of keys, one refresh at a time, one backoff after
    /// a refusal, and one rate-limit budget ([`KeySource::account`]: the
    /// SecretId of fixed keys, the exchange's identity for temporary ones,
    /// whose SecretIds change at every refresh). Makes no call: the keys
    /// are fetched on the first request.
    pub fn with_key_source(
        spec: &TencentSpec,
        keys: Arc<KeySource>,
        options: TencentOptions,
    ) -> Result<Self, ConnectError> {
        Self::build(spec, keys, options)
    }

    fn build(
        spec: &TencentSpec,
        keys: Arc<KeySource>,
        options: TencentOptions,
    ) -> Result<Self, ConnectError> {
        let limit_account = keys.account();
        let region = spec.region.trim();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConnectError::Spec(format!(
                "spec.tencent.region: {region:?} is not a region name (e.g. ap-guangzhou)"
            )));
        }
        let instance_id = spec.instance_id.trim();
        if instance_id.is_empty() {
            return Err(ConnectError::Spec(
                "spec.tencent.instanceId must not be empty".into(),
            ));
        }
        let (default_unit, default_span) = match spec.pay_mode {
            0 => ("s", 3600),
            1 => ("m", 1),
            other => {
                return Err(ConnectError::Spec(format!(
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
            return Err(ConnectError::Spec(format!(
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
            keys,
            limit_account,
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

    /// `ScaleOutCluster` (the newer scale-out, tencentcloud-sdk-go
    /// `tencentcloud/emr/v20190103/models.go` `ScaleOutClusterRequestParams`):
    /// add `pool.count` TASK nodes with the pool's charge type, instance type,
    /// YARN label and tags, services started (`EnableStartServiceFlag: true`),
    /// deduplicated by `ClientToken` for five minutes. Behind the [`Cloud`]
    /// trait, a named pool's scale-out ([`PoolScaleOut::for_pool`]).
    /// Refused before any request: a count <= 0, an empty token, a tag
    /// without a key.
    pub async fn scale_out_cluster(&self, pool: &PoolScaleOut) -> Result<Submitted, CloudError> {
        if pool.count <= 0 {
            return Err(refused(
                SCALE_OUT_CLUSTER,
                "ClusterScale.InvalidCount",
                format!("count must be > 0, got {}", pool.count),
            ));
        }
        if pool.client_token.trim().is_empty() {
            return Err(refused(
                SCALE_OUT_CLUSTER,
                "ClusterScale.MissingClientToken",
                "ScaleOutCluster needs a ClientToken, so that a repeated request adds nothing"
                    .into(),
            ));
        }
        if let Some((k, _)) = pool.tags.iter().find(|(k, _)| k.trim().is_empty()) {
            return Err(refused(
                SCALE_OUT_CLUSTER,
                "ClusterScale.InvalidTag",
                format!("a tag key must not be empty (got {k:?})"),
            ));
        }
        let non_empty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let body = wire::ScaleOutClusterRequest {
            instance_charge_type: pool.charge_type.as_str().to_string(),
            instance_id: self.instance_id.clone(),
            scale_out_node_config: wire::ScaleOutNodeConfig {
                node_flag: "TASK".into(),
                node_count: pool.count as u64,
            },
            client_token: Some(pool.client_token.clone()),
            tags: pool
                .tags
                .iter()
                .map(|(k, v)| wire::Tag::new(k.clone(), v.clone()))
                .collect(),
            hardware_source_type: None,
            yarn_node_label: non_empty(&pool.yarn_node_label),
            enable_start_service_flag: Some(true),
            resource_spec: non_empty(&pool.instance_type).map(|t| wire::NodeResourceSpec {
                instance_type: Some(t),
                ..Default::default()
            }),
            zone: None,
            subnet_id: None,
        };
        let (resp, request_id): (wire::ScaleOutClusterResponse, _) =
            self.call(SCALE_OUT_CLUSTER, &body).await?;
        Ok(Submitted {
            request_id,
            flow_id: resp.flow_id.filter(|f| *f != 0).map(|f| f.to_string()),
            trace_id: resp.trace_id.filter(|t| !t.is_empty()),
            node_ids: Vec::new(),
            unmatched_preferred: Vec::new(),
        })
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
        self.limits.acquire(&self.limit_account, action).await;
        // After the rate limiter's wait, so that keys due for a refresh are
        // refreshed before they sign. An exchange that failed sent nothing
        // to EMR, whatever became of the exchange itself.
        let keys = self
            .keys
            .keys()
            .await
            .map_err(|e| e.with_effect(Effect::Refused))?;
        // After any wait, immediately before the request is signed and sent.
        fence::check(action)?;
        let timestamp = self.clock.now().as_second();
        let signature = sign(&SigningInput {
            secret_id: keys.id.expose(),
            secret_key: keys.secret.expose(),
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
        if let Some(token) = &keys.token {
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

    /// One `DescribeInstances` (state) and one `DescribeClusterNodes` (one
    /// request per 100 nodes): two calls for a cluster of up to 100 nodes,
    /// with or without `pools`, which are counted from the same listing by
    /// the [`POOL_TAG_KEY`] tag of each Task node. Task nodes tagged with a
    /// pool that `pools` does not list are in no pool: not counted, never
    /// removed, logged (see the module docs).
    async fn observe_pools(&self, pools: &[TaskPoolSpec]) -> Result<ObservedCluster, CloudError> {
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
                // Without the node list the pools cannot be told apart:
                // every Task node is reported in the default pool and no
                // pool is reported (`status.pools` shows them as unknown).
                return Ok(ObservedCluster {
                    state,
                    core: clamp_count(config.core_node_size.unwrap_or(0)),
                    task: clamp_count(config.task_node_size.unwrap_or(0)),
                    pools: Default::default(),
                    nodes: Vec::new(),
                    last_resize_failed: None,
                    unmanaged: Default::default(),
                });
            }
            Err(e) => return Err(e),
        };
        let listed = index_nodes(&raw);
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        let counts = count_pools(&listed, &names);
        if !counts.unlisted.is_empty() {
            tracing::warn!(
                instance_id = %self.instance_id,
                unlisted_pools = ?counts.unlisted,
                "Task nodes tagged {POOL_TAG_KEY} with a pool that spec.taskPools does not list: \
                 not counted in any pool, never removed; add the pool back to manage them, \
                 or remove them in the EMR console"
            );
        }
        Ok(ObservedCluster {
            state,
            core: counts.core,
            task: counts.task,
            pools: counts.pools,
            // The nodes counted: Core, the default pool and the spec's pools.
            nodes: listed
                .iter()
                .filter(|n| n.pool.as_ref().is_none_or(|p| names.contains(&p.as_str())))
                .filter_map(ListedNode::to_node)
                .collect(),
            last_resize_failed: None,
            unmanaged: UnmanagedNodes {
                unlisted_pools: counts.unlisted,
                ..unmanaged_nodes(&raw)
            },
        })
    }

    /// Core and the default pool: `ScaleOutInstance`. A named pool:
    /// `ScaleOutCluster` ([`TencentCloud::scale_out_cluster`],
    /// [`PoolScaleOut::for_pool`]) with the request's token as `ClientToken`.
    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        if let Some(pool) = &req.pool {
            if req.group != NodeGroup::Task {
                return Err(refused(
                    SCALE_OUT_CLUSTER,
                    "ClusterScale.InvalidPool",
                    format!(
                        "pool {} is a Task pool, not {}",
                        pool.name,
                        req.group.as_str()
                    ),
                ));
            }
            return self
                .scale_out_cluster(&PoolScaleOut::for_pool(pool, req.count, &req.token))
                .await;
        }
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

    /// Core, or any graceful scale-in: `TerminateClusterNodes`; the default
    /// pool without graceful decommission: `TerminateTasks`; a named pool:
    /// always `TerminateClusterNodes` with `NodeFlag` TASK and the CVM ids of
    /// that pool's nodes only (tagged [`POOL_TAG_KEY`]`=<name>`). The default
    /// pool only ever names untagged Task nodes.
    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        let graceful = req.graceful_timeout_seconds > 0;
        let pool = req.pool.as_ref().map(|p| p.name.as_str());
        let action = if req.group == NodeGroup::Task && !graceful && pool.is_none() {
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
        if pool.is_some() && req.group != NodeGroup::Task {
            return Err(refused(
                action,
                "ClusterScale.InvalidPool",
                format!("a named pool is a Task pool, not {}", req.group.as_str()),
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
            pool,
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
            let whose = match pool {
                Some(p) => format!("nodes of pool {p}"),
                None if req.group == NodeGroup::Task => "task nodes of the default pool".into(),
                None => format!("{} nodes", req.group.as_str()),
            };
            return Err(refused(
                action,
                "ClusterScale.NotEnoughRemovableNodes",
                format!(
                    "only {} {whose} can be removed ({}), {} requested",
                    choice.chosen.len(),
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

    /// By the record's `FlowId` (TerminateClusterNodes, ScaleOutCluster:
    /// Core, a named pool, any graceful scale-in), else its `TraceId`
    /// (ScaleOutInstance), else `Unknown` (TerminateTasks): the engine then
    /// decides from the state and the count of the operation's group or
    /// pool.
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

/// A cloud refusal decided before calling: our own `ClusterScale.*` code, class Invalid.
fn refused(action: &str, code: &str, message: String) -> CloudError {
    CloudError::new(ErrorClass::Invalid, action, code, message).blocked_by_check()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::tests::node;
    use crate::wire::flag;

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
}
