//! [`HuaweiCloud`]: the MRS v1.1 client behind the [`Cloud`] trait.
//!
//! Calls (cloud-apis.md B1, B2):
//! - observe: `GET /v1.1/{project_id}/cluster_infos/{cluster_id}` (one call;
//!   plus ListHosts while the cluster is `abnormal`, to count the nodes down);
//! - preferred Task scale-in: `GET /v1.1/{project_id}/clusters/{cluster_id}/hosts` (paged);
//! - resize: `PUT /v1.1/{project_id}/cluster_infos/{cluster_id}`.
//!
//! Node groups and pools (cloud-apis.md C1): the v2 calls
//! [`HuaweiCloud::expand_node_group`] / [`HuaweiCloud::shrink_node_group`]
//! (`POST /v2/{project_id}/clusters/{cluster_id}/expand|shrink`, `count` a
//! delta), [`HuaweiCloud::list_nodes`] (`GET .../nodes`, paged by page number),
//! [`HuaweiCloud::autoscaling_policies`] (`GET
//! /v2/{project_id}/autoscaling-policy/{cluster_id}`) and
//! [`HuaweiCloud::node_groups`] (`clusterType` and `nodeGroups[]` of the
//! detail). They share the rate limiter, fence check, hold-off and request
//! counter of the calls above; the limiter keeps expand, shrink and
//! ListNodes (each page a request) within MRS's per-minute limits per
//! account ([`rate_limits`]), the rest at [`REQUESTS_PER_SECOND`]. What
//! their answers mean is read in [`interpret`](super::interpret) ([`expand_outcome`], [`nodes_by_group`](super::interpret::nodes_by_group), ...).
//!
//! Behind the trait:
//! - an observation is still ONE GET of the detail: Core, the default Task
//!   group and every pool's group are counted from its `nodeGroups[]`
//!   ([`interpret_pools`]); a group the spec names that the cluster lacks is
//!   `UnknownNodeGroup`, found there;
//! - a write goes by v1.1 (`PUT cluster_infos`) when v1.1 can address the
//!   group ([`v11_addresses`]: the standard groups of analysis, streaming and
//!   hybrid clusters; the only API that names healthy Task nodes for
//!   `preferNodes`), else by v2 (every group of a custom cluster, every
//!   named pool). Before a write by either API, and only then, the group's
//!   MRS auto-scaling policy is read (one GET): an enabled policy is
//!   `CloudAutoscalerConflict`, and nothing is written. Before a v2 write,
//!   its nodes' billing is read too (ListNodes of the group, one GET per
//!   page): an `on-period` node is `PrepaidNodeGroup`, and nothing is
//!   written. An expand that still answers an `order_id` is
//!   reported as `PrepaidNodeGroup` with the order
//!   ([`CloudError::opened_order`]), and the engine holds that group for the
//!   rest of the generation (`status.heldWrites`).
//!
//! This module builds, signs and sends those requests; what the answers mean
//! (state, counts, group names, progress, the Task hosts a scale-in names)
//! and the pre-checks of a resize are read in [`interpret`](super::interpret),
//! without I/O.
//!
//! Safety rules enforced here, before any write (the planner enforces them
//! too; this is defence in depth): the cluster must be running and idle,
//! growth is at most 500 minus Core+Task, Core scale-in keeps at least 3
//! Core, and Task growth from 0 needs `spec.huawei.taskNodeSpec`.
//!
//! AK/SK requests are signed with the keys of the client's [`KeySource`],
//! taken for every request after the rate limiter's wait and right before
//! signing: fixed keys (a Secret's, [`HuaweiCloud::new`]) or temporary keys
//! exchanged for a workload identity token and sent (signed) with their
//! `X-Security-Token` ([`HuaweiCloud::with_key_source`],
//! [`crate::federation`]). Every client of one account shares one source,
//! so keys are fetched once, refreshed ahead of expiry by one exchange at a
//! time, and never used expired. When the source has no keys to sign with
//! (a refused exchange, an unreadable token file), that is the request's
//! error and nothing is sent; the source backs off the exchange itself.
//!
//! Authentication failures are never retried quickly: with a token, one
//! refresh and one repeat; then the error is reported, and for
//! [`DEFAULT_AUTH_HOLD_OFF`] every further call with the same credentials
//! fails at once without a request (Huawei locks an AK for 5 minutes after 5
//! bad signatures). The hold-off is process-wide, keyed by endpoint and a
//! hash of the credentials, so corrected credentials are used immediately;
//! it is timed on the client's [`Clock`].
//!
//! MRS has no idempotency token, so the engine never sends the same resize
//! to MRS twice ([`Capabilities::idempotent_scale_out`] is false): a resize
//! whose outcome is unknown ([`Effect::Unknown`](clusterscale_core::cloud::Effect):
//! timeout or reset after sending, the gateway's `504 APIGW.0201` or another
//! gateway 5xx, a proxy's HTML page, an unreadable body) is resolved by
//! observation, and declared not applied when the cluster shows nothing of
//! it for [`ACCEPT_GRACE`] ([`Capabilities::acceptance_grace`]). A resize
//! refused in MRS's own body (`{"error_code": ...}`, HTTP 500 `MRS.300`
//! included) did nothing: it is over at once, and the next one is planned
//! after the class's backoff, without the grace ([`errors::effect_of`]). MRS keeps
//! no per-operation record either: [`Cloud::operation_status`] reads the
//! cluster detail and reports only what it shows (see [`progress`]).
//!
//! A failed resize leaves the cluster `running` with `scale: scaling-error`
//! until the next resize starts. The `scaling-error` the cluster already
//! showed when this client sent a resize belongs to an earlier resize: until
//! the cluster shows anything else (busy, no error, another error), it is
//! not reported as [`ObservedCluster::last_resize_failed`], so it cannot fail
//! the new operation. This knowledge lives in the client; a new process
//! attributes such an error to a pending operation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::interpret::{
    abnormal_detail, choose_task_hosts, cluster_type, describe_groups, distinct, expand_outcome,
    group_counts, interpret_pools, is_abnormal, nodes_by_group, policy_of, precheck,
    precheck_error, progress, shrink_outcome, unmatched_preferred, v11_addresses, GroupCount,
    GroupResizeOutcome, Interpreted, MrsClusterType, ReadError, CLOUD_AUTOSCALER_CONFLICT,
    NODE_GROUP_REQUIRED, PREPAID_NODE_GROUP,
};
use super::sign::{self, RequestParts};
use super::token::{TokenSource, AUTH_TOKEN_HEADER};
use super::wire::{
    AutoScalingPolicyV2, ClusterDetail, ClusterDetailResponse, ClusterNode, ClusterScalingParams,
    ClusterScalingReq, ExpandParam, ExpandResponse, Host, ListHostsResponse, ListNodesResponse,
    ResultResponse, ShrinkParam, ShrinkResponse, TaskNodeInfo, ACTION_EXPAND, ACTION_NODES,
    ACTION_POLICY, ACTION_SHRINK, CONTENT_TYPE_V2_WRITE, NODES_PAGE_LIMIT, NODE_ID_ORDERADD,
    RESULT_SUCCEEDED, SCALE_IN, SCALE_OUT,
};
use super::{errors, iam_endpoint, mrs_endpoint, AuthConfig};
use clusterscale_core::api::{
    CloudKind, Direction, HuaweiSpec, NodeGroup, OperationRecord, TaskPoolSpec,
};
use clusterscale_core::clock::{Clock, SystemClock};
use clusterscale_core::cloud::credentials::{Credentials, SecretString};
use clusterscale_core::cloud::fence;
use clusterscale_core::cloud::http::{
    self, malformed, transport_error, ActionQuota, Endpoint, RateLimits,
};
use clusterscale_core::cloud::keys::{KeySource, Keys};
use clusterscale_core::cloud::provider::{CloudProvider, ConnectError};
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ClusterState, Effect, ErrorClass, ObservedCluster,
    OperationProgress, ScaleRequest, Submitted,
};

use super::wire::{ACTION_HOSTS, ACTION_RESIZE, ACTION_SHOW};

/// `Content-Type` of the v1.1 calls and of the v2 reads.
const CONTENT_TYPE_JSON: &str = "application/json";

/// Requests per second per (account, action), for every action without a
/// published limit (the v1.1 calls, the auto-scaling policy read): this
/// keeps a controller well below any.
pub const REQUESTS_PER_SECOND: u32 = 5;
/// MRS v2's published limits per account (cloud-apis.md C1): expand and
/// shrink 60 a minute each, ListNodes 200 (every page a request). Above
/// them the gateway answers `429 APIGW.0308` (Throttled). [`rate_limits`]
/// keeps to them.
pub const EXPAND_PER_MINUTE: u32 = 60;
pub const SHRINK_PER_MINUTE: u32 = 60;
pub const LIST_NODES_PER_MINUTE: u32 = 200;
/// After an authentication failure, calls with the same credentials fail
/// without a request for this long.
pub const DEFAULT_AUTH_HOLD_OFF: Duration = Duration::from_secs(300);
/// How old the observation behind the pre-checks of a resize may be; older,
/// the cluster is observed again first.
pub const OBSERVATION_MAX_AGE: Duration = Duration::from_secs(60);
/// How long MRS may take to show a resize it accepted (Terraform waits 2
/// minutes before its first poll): [`Capabilities::acceptance_grace`]. The
/// engine declares an unconfirmed resize not applied only after this long.
pub const ACCEPT_GRACE: Duration = Duration::from_secs(120);
/// Hosts per ListHosts page.
pub const HOSTS_PAGE_SIZE: usize = 100;
/// ListHosts pages read at most (500 nodes fit in 5).
const MAX_HOST_PAGES: usize = 20;
/// ListNodes pages read at most (500 nodes fit in 5 of 100).
const MAX_NODE_PAGES: u32 = 20;

/// A limiter for MRS: expand, shrink and ListNodes at MRS's per-minute
/// limits ([`EXPAND_PER_MINUTE`], ...: at most that many in any minute,
/// half of them at once, [`ActionQuota`]), every other action at
/// [`REQUESTS_PER_SECOND`]. Buckets are per (account, action): the AK, or
/// the IAM user.
pub fn rate_limits() -> RateLimits {
    RateLimits::new(REQUESTS_PER_SECOND)
        .with_quota(ACTION_EXPAND, ActionQuota::per_minute(EXPAND_PER_MINUTE))
        .with_quota(ACTION_SHRINK, ActionQuota::per_minute(SHRINK_PER_MINUTE))
        .with_quota(ACTION_NODES, ActionQuota::per_minute(LIST_NODES_PER_MINUTE))
}

/// [`rate_limits`], one for the whole process, so that every client of one
/// account (the clusters of a fleet) shares its budget.
fn shared_rate_limits() -> RateLimits {
    static LIMITS: std::sync::OnceLock<RateLimits> = std::sync::OnceLock::new();
    LIMITS.get_or_init(rate_limits).clone()
}

#[derive(Clone, Debug)]
struct Snapshot {
    taken: Instant,
    view: Interpreted,
}

/// A resize that passed the pre-checks, ready to send.
struct PlannedResize {
    body: ClusterScalingReq,
    /// Task hosts named in `server_ids`, if any.
    node_ids: Vec<String>,
    /// The `scaling-error` the cluster showed before the resize was sent.
    shown_failure: Option<String>,
    /// Preferred nodes this resize does not name ([`Submitted::unmatched_preferred`]).
    unmatched: Vec<String>,
}

/// The `scaling-error` that the cluster already showed when this client sent
/// its latest resize. MRS keeps a failed resize's `scaling-error` until the
/// next resize starts and may take a while to show a resize it accepted, so
/// right after a resize that same error says nothing about it. It is left out
/// of observations until the cluster shows anything else: busy (the resize
/// started; whatever error follows is new), no error, or another error.
#[derive(Debug, Default)]
struct EarlierFailure(Mutex<Option<String>>);

impl EarlierFailure {
    /// A resize is about to be sent; `shown` is the failure the cluster
    /// showed in the observation its pre-checks used.
    fn remember(&self, shown: Option<String>) {
        *self.lock() = shown;
    }

    /// The resize was refused: there is no new resize to tell apart.
    fn forget(&self) {
        *self.lock() = None;
    }

    /// `observed`, without the earlier failure while the cluster still shows
    /// just that; anything else ends the earlier failure for good.
    fn attribute(&self, mut observed: ObservedCluster) -> ObservedCluster {
        let mut earlier = self.lock();
        if earlier.is_none() {
            return observed;
        }
        let unchanged = observed.state.is_running() && observed.last_resize_failed == *earlier;
        if unchanged {
            tracing::debug!(
                failure = ?observed.last_resize_failed,
                "scaling-error shown before the latest resize was sent; not reported for it"
            );
            observed.last_resize_failed = None;
        } else {
            *earlier = None;
        }
        observed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Auth {
    /// AK/SK, fixed (a Secret's) or temporary (exchanged for a workload
    /// identity token), taken from the account's [`KeySource`] for every
    /// request.
    Keys(Arc<KeySource>),
    Token(Box<TokenSource>),
}

/// Why a call failed: the key source had no keys to sign with (nothing was
/// sent), or the call itself failed.
enum Failure {
    Keys(CloudError),
    Call(CloudError),
}

impl From<CloudError> for Failure {
    fn from(e: CloudError) -> Self {
        Failure::Call(e)
    }
}

/// A request body and the `Content-Type` it is sent (and signed) with.
#[derive(Clone, Copy)]
struct Payload<'a> {
    body: &'a [u8],
    content_type: &'static str,
}

/// A raw HTTP answer.
struct Reply {
    status: StatusCode,
    request_id: Option<String>,
    body: Vec<u8>,
}

/// One MRS cluster, reached over HTTPS with AK/SK or an IAM token.
pub struct HuaweiCloud {
    spec: HuaweiSpec,
    endpoint: Endpoint,
    auth: Auth,
    /// The rate-limit budget's account ([`Self::account`]).
    account: String,
    http: reqwest::Client,
    limits: RateLimits,
    clock: Arc<dyn Clock>,
    auth_hold_off: Duration,
    hold_off_key: String,
    snapshot: Mutex<Option<Snapshot>>,
    earlier_failure: EarlierFailure,
    requests: AtomicU64,
    /// The spec's pools of the latest [`Cloud::observe_pools`]: what the
    /// observations behind a write's pre-checks count.
    pools: Mutex<Vec<TaskPoolSpec>>,
}

impl std::fmt::Debug for HuaweiCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiCloud")
            .field("endpoint", &self.endpoint.base)
            .field("project_id", &self.spec.project_id)
            .field("cluster_id", &self.spec.cluster_id)
            .field("auth", &self.auth_mode())
            .finish_non_exhaustive()
    }
}

impl HuaweiCloud {
    /// A client for `spec` with `creds` (a Secret or [`super::credentials_from_env`]).
    /// Checks the endpoints, the required spec fields and the credential keys;
    /// sends nothing.
    pub fn new(spec: &HuaweiSpec, creds: &Credentials) -> Result<Self, ConnectError> {
        check_spec(spec)?;
        // The endpoint before the credentials: a spec error is named first.
        mrs_endpoint(spec)?;
        let auth = match AuthConfig::from_credentials(creds)? {
            AuthConfig::AkSk(a) => {
                let keys = Keys::fixed(
                    SecretString::new(a.access_key),
                    a.secret_key,
                    a.security_token,
                );
                Auth::Keys(Arc::new(KeySource::fixed(keys)))
            }
            AuthConfig::Password(p) => Auth::Token(Box::new(TokenSource::new(
                iam_endpoint(spec)?,
                p,
                spec.project_id.clone(),
            ))),
        };
        Self::build(spec, auth)
    }

    /// A client for `spec` that signs every request with the keys of
    /// `keys`: fixed ones, or temporary ones exchanged for a workload
    /// identity token ([`crate::federation::IdTokenExchange`]). Every client
    /// of one account shares one `Arc<KeySource>`, so that its keys are
    /// fetched and refreshed once for all of them. The rate-limit budget and
    /// the authentication hold-off are keyed by the fixed keys' AK, or by
    /// the exchange's [`identity`](clusterscale_core::cloud::keys::Exchange::identity)
    /// (temporary AKs change at every refresh). Sends nothing.
    pub fn with_key_source(spec: &HuaweiSpec, keys: Arc<KeySource>) -> Result<Self, ConnectError> {
        check_spec(spec)?;
        Self::build(spec, Auth::Keys(keys))
    }

    fn build(spec: &HuaweiSpec, auth: Auth) -> Result<Self, ConnectError> {
        let endpoint = mrs_endpoint(spec)?;
        let (account, fingerprint) = match &auth {
            Auth::Keys(source) => match source.fixed_keys() {
                Some(k) => (
                    source.account(),
                    fingerprint(&[k.id.expose().trim(), k.secret.expose()]),
                ),
                None => {
                    let account = source.account();
                    let fp = fingerprint(&[&account]);
                    (account, fp)
                }
            },
            Auth::Token(t) => {
                let p = t.user();
                (
                    t.account_key(),
                    fingerprint(&[
                        &t.iam().base,
                        &p.username,
                        &p.domain_name,
                        p.password.expose(),
                    ]),
                )
            }
        };
        Ok(Self {
            spec: spec.clone(),
            hold_off_key: format!("{}|{}", endpoint.base, fingerprint),
            endpoint,
            auth,
            account,
            http: http::client(),
            limits: shared_rate_limits(),
            clock: Arc::new(SystemClock),
            auth_hold_off: DEFAULT_AUTH_HOLD_OFF,
            snapshot: Mutex::new(None),
            earlier_failure: EarlierFailure::default(),
            requests: AtomicU64::new(0),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// A client with credentials from the environment ([`super::ENV_VARS`]),
    /// for the CLI.
    pub fn from_env(spec: &HuaweiSpec) -> Result<Self, ConnectError> {
        Self::new(spec, &super::credentials_from_env())
    }

    /// Use another clock (signing dates, token expiry).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Send MRS and IAM requests through `http` (shared with other clients).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Use `limits` instead of the process's shared [`rate_limits`] (tests,
    /// a limiter of other quotas).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Change how long calls are refused after an authentication failure.
    pub fn with_auth_hold_off(mut self, hold_off: Duration) -> Self {
        self.auth_hold_off = hold_off;
        self
    }

    /// `ak-sk` (fixed keys), `workload-identity` (temporary keys from an
    /// exchange) or `token` (an IAM user's password token).
    pub fn auth_mode(&self) -> &'static str {
        match &self.auth {
            Auth::Keys(k) if k.fixed_keys().is_some() => "ak-sk",
            Auth::Keys(_) => "workload-identity",
            Auth::Token(_) => "token",
        }
    }

    /// The key source every request is signed from (`None` with an IAM
    /// user's password token).
    pub fn key_source(&self) -> Option<&Arc<KeySource>> {
        match &self.auth {
            Auth::Keys(k) => Some(k),
            Auth::Token(_) => None,
        }
    }

    /// The MRS endpoint in use.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// HTTP requests sent to MRS so far (not counting IAM).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// IAM tokens fetched so far (0 with AK/SK).
    pub fn tokens_fetched(&self) -> u64 {
        match &self.auth {
            Auth::Token(t) => t.fetches(),
            Auth::Keys(_) => 0,
        }
    }

    /// The account whose rate-limit budget a request draws from: the AK of
    /// fixed keys, the exchange's identity for temporary ones (stable across
    /// refreshes), or the IAM user.
    fn account(&self) -> &str {
        &self.account
    }

    fn cluster_path(&self) -> String {
        format!(
            "/v1.1/{}/cluster_infos/{}",
            self.spec.project_id, self.spec.cluster_id
        )
    }

    fn hosts_path(&self) -> String {
        format!(
            "/v1.1/{}/clusters/{}/hosts",
            self.spec.project_id, self.spec.cluster_id
        )
    }

    /// `GET cluster_infos`: the raw cluster detail.
    pub async fn cluster_detail(&self) -> Result<ClusterDetail, CloudError> {
        Ok(self.cluster_detail_with_id().await?.0)
    }

    /// The cluster detail and the request id it came with.
    async fn cluster_detail_with_id(&self) -> Result<(ClusterDetail, Option<String>), CloudError> {
        let reply = self
            .call(ACTION_SHOW, Method::GET, &self.cluster_path(), &[], None)
            .await?;
        let parsed: ClusterDetailResponse = parse(ACTION_SHOW, &reply)?;
        Ok((parsed.cluster, reply.request_id))
    }

    /// `GET hosts`, every page.
    pub async fn list_hosts(&self) -> Result<Vec<Host>, CloudError> {
        let path = self.hosts_path();
        let mut hosts: Vec<Host> = Vec::new();
        for page in 1..=MAX_HOST_PAGES {
            let query = vec![
                ("pageSize".to_string(), HOSTS_PAGE_SIZE.to_string()),
                ("currentPage".to_string(), page.to_string()),
            ];
            let reply = self
                .call(ACTION_HOSTS, Method::GET, &path, &query, None)
                .await?;
            let parsed: ListHostsResponse = parse(ACTION_HOSTS, &reply)?;
            let got = parsed.hosts.len();
            hosts.extend(parsed.hosts);
            let total = parsed.total.and_then(|t| usize::try_from(t).ok());
            let done = got < HOSTS_PAGE_SIZE || total.is_some_and(|t| hosts.len() >= t);
            if done {
                return Ok(hosts);
            }
        }
        tracing::warn!(
            hosts = hosts.len(),
            "ListHosts: stopped after {MAX_HOST_PAGES} pages"
        );
        Ok(hosts)
    }

    // --- MRS v2: node groups (cloud-apis.md C1) -------------------------
    //
    // Low-level calls, not yet behind the `Cloud` trait. Each request goes
    // through the same rate limiter, fence check, authentication hold-off
    // and request counter as every other call ([`Self::requests_sent`]).

    fn v2_cluster_path(&self, tail: &str) -> String {
        format!(
            "/v2/{}/clusters/{}/{tail}",
            self.spec.project_id, self.spec.cluster_id
        )
    }

    fn policy_path(&self) -> String {
        format!(
            "/v2/{}/autoscaling-policy/{}",
            self.spec.project_id, self.spec.cluster_id
        )
    }

    /// The cluster's type and every node group's `NodeNum` (one GET of
    /// ShowClusterDetails).
    pub async fn node_groups(&self) -> Result<ClusterGroups, CloudError> {
        let detail = self.cluster_detail().await?;
        Ok(ClusterGroups {
            cluster_type: cluster_type(&detail),
            groups: group_counts(&detail),
        })
    }

    /// `POST /v2/{project_id}/clusters/{cluster_id}/expand`: add `count`
    /// nodes to `group`. `skip_bootstrap_scripts` is always sent (v2's
    /// default, when absent, is to skip them). A prepaid group answers
    /// [`GroupResizeOutcome::OrderPending`]: nothing scales until the order
    /// is paid. Never repeated here.
    pub async fn expand_node_group(
        &self,
        group: &str,
        count: i32,
        options: &ExpandOptions,
    ) -> Result<GroupResizeOutcome, CloudError> {
        check_group_request(ACTION_EXPAND, group, count)?;
        let body = ExpandParam {
            node_group_name: group.to_string(),
            count,
            skip_bootstrap_scripts: Some(options.skip_bootstrap_scripts),
            scale_without_start: Some(options.scale_without_start),
            az_code: options.az_code.clone().filter(|a| !a.trim().is_empty()),
        };
        let reply = self.post_v2(ACTION_EXPAND, "expand", &body).await?;
        let parsed: ExpandResponse = parse(ACTION_EXPAND, &reply)?;
        expand_outcome(&parsed, reply.request_id)
    }

    /// `POST /v2/{project_id}/clusters/{cluster_id}/shrink`: remove `count`
    /// nodes of `group`; MRS chooses them unless `options.resource_ids`
    /// names some (abnormal nodes only, removed by force). Never repeated here.
    pub async fn shrink_node_group(
        &self,
        group: &str,
        count: i32,
        options: &ShrinkOptions,
    ) -> Result<GroupResizeOutcome, CloudError> {
        check_group_request(ACTION_SHRINK, group, count)?;
        let body = ShrinkParam {
            node_group_name: group.to_string(),
            count: Some(count),
            resource_ids: (!options.resource_ids.is_empty()).then(|| options.resource_ids.clone()),
            force_delete: options.force_delete,
            az_code: options.az_code.clone().filter(|a| !a.trim().is_empty()),
        };
        let reply = self.post_v2(ACTION_SHRINK, "shrink", &body).await?;
        let parsed: ShrinkResponse = parse(ACTION_SHRINK, &reply)?;
        shrink_outcome(&parsed, reply.request_id)
    }

    /// One v2 write, `POST .../clusters/{cluster_id}/{verb}` with `body`:
    /// the next resize observes again, whatever happens.
    async fn post_v2<T: serde::Serialize>(
        &self,
        action: &'static str,
        verb: &str,
        body: &T,
    ) -> Result<Reply, CloudError> {
        let bytes = encode(action, body)?;
        tracing::info!(cluster = %self.spec.cluster_id, action, "MRS v2 {verb}");
        self.forget_view();
        self.call_as(
            action,
            Method::POST,
            &self.v2_cluster_path(verb),
            &[],
            Some(bytes),
            CONTENT_TYPE_V2_WRITE,
        )
        .await
    }

    /// `GET /v2/{project_id}/clusters/{cluster_id}/nodes`, every page:
    /// `limit` [`NODES_PAGE_LIMIT`], `offset` the page number from 1. Each
    /// page is one request ([`NodeListing::calls`]) and waits for its turn
    /// in the account's ListNodes quota ([`LIST_NODES_PER_MINUTE`]).
    /// `node_group`: only that group's nodes. Paging that brings nothing
    /// new is an error, not an undercount.
    pub async fn list_nodes(&self, node_group: Option<&str>) -> Result<NodeListing, CloudError> {
        let path = self.v2_cluster_path("nodes");
        let mut listing = NodeListing::default();
        let mut seen = std::collections::HashSet::new();
        for page in 1..=MAX_NODE_PAGES {
            let mut query = vec![
                ("limit".to_string(), NODES_PAGE_LIMIT.to_string()),
                ("offset".to_string(), page.to_string()),
            ];
            if let Some(g) = node_group {
                query.push(("node_group".to_string(), g.to_string()));
            }
            let reply = self
                .call(ACTION_NODES, Method::GET, &path, &query, None)
                .await?;
            listing.calls += 1;
            let parsed: ListNodesResponse = parse(ACTION_NODES, &reply)?;
            let got = parsed.nodes.len();
            if parsed.node_total.is_some() {
                listing.total = parsed.node_total;
            }
            let mut added = 0;
            for (i, node) in parsed.nodes.into_iter().enumerate() {
                let key = node
                    .resource_id
                    .clone()
                    .or_else(|| node.node_name.clone())
                    .unwrap_or_else(|| format!("page {page} #{i}"));
                if seen.insert(key) {
                    listing.nodes.push(node);
                    added += 1;
                }
            }
            let short = (got as i64) < NODES_PAGE_LIMIT;
            let complete = listing
                .total
                .is_some_and(|t| listing.nodes.len() as i64 >= t);
            if short || complete {
                return Ok(listing);
            }
            if added == 0 {
                return Err(malformed(
                    ACTION_NODES,
                    reply.request_id,
                    format!(
                        "page {page} brought no new node ({} listed, node_total {:?}): offset is not read as a page number",
                        listing.nodes.len(),
                        listing.total
                    ),
                ));
            }
        }
        Err(malformed(
            ACTION_NODES,
            None,
            format!(
                "stopped after {MAX_NODE_PAGES} pages with {} nodes of node_total {:?}",
                listing.nodes.len(),
                listing.total
            ),
        ))
    }

    /// `GET /v2/{project_id}/autoscaling-policy/{cluster_id}`: every node
    /// group's auto-scaling policy (a JSON array; an empty body is none).
    pub async fn autoscaling_policies(&self) -> Result<Vec<AutoScalingPolicyV2>, CloudError> {
        let reply = self
            .call(ACTION_POLICY, Method::GET, &self.policy_path(), &[], None)
            .await?;
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let parsed: Option<Vec<AutoScalingPolicyV2>> = parse(ACTION_POLICY, &reply)?;
        Ok(parsed.unwrap_or_default())
    }

    /// Observe (one GET) and remember the result for the pre-checks of the
    /// next resize. The result is the cluster as MRS reports it, including a
    /// `scaling-error` of an earlier resize; see [`Self::observed`].
    async fn view(&self) -> Result<Interpreted, CloudError> {
        let (detail, request_id) = self.cluster_detail_with_id().await?;
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let view = interpret_pools(&detail, &self.spec, &pools).map_err(|e| match e {
            ReadError::Malformed(m) => malformed(ACTION_SHOW, request_id, m),
            ReadError::Refused(e) => e.with_request_id(request_id),
        })?;
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Snapshot {
            taken: Instant::now(),
            view: view.clone(),
        });
        Ok(view)
    }

    /// The last observation if recent enough and running, else a new one.
    async fn recent_view(&self) -> Result<Interpreted, CloudError> {
        let cached = self
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            // A cached "not running" is confirmed by a new observation
            // before a resize is refused on its account.
            .filter(|s| {
                s.taken.elapsed() <= OBSERVATION_MAX_AGE && s.view.observed.state.is_running()
            })
            .map(|s| s.view.clone());
        match cached {
            Some(v) => Ok(v),
            None => self.view().await,
        }
    }

    fn forget_view(&self) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Observe (one GET), without a `scaling-error` that the cluster already
    /// showed when this client sent its latest resize ([`EarlierFailure`]).
    ///
    /// While the cluster is `abnormal`, the hosts are listed too (one more
    /// GET), to say how many nodes are not running; without the list the
    /// state still says that some are not.
    async fn observed(&self) -> Result<ObservedCluster, CloudError> {
        let mut view = self.view().await?;
        if is_abnormal(&view.observed.state) {
            match self.list_hosts().await {
                Ok(hosts) => {
                    if let Some(detail) = abnormal_detail(&hosts) {
                        view.observed.state = ClusterState::Unavailable(detail);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cluster abnormal; ListHosts failed"),
            }
        }
        Ok(self.earlier_failure.attribute(view.observed))
    }

    /// Build the resize after the pre-checks; `Err` before any write.
    async fn plan_resize(
        &self,
        req: &ScaleRequest,
        direction: Direction,
        view: Interpreted,
    ) -> Result<PlannedResize, CloudError> {
        precheck(&view.observed, req, direction)?;
        let observed = &view.observed;
        let group_name = view.groups.name(req.group).to_string();
        let mut params = ClusterScalingParams {
            order_id: String::new(),
            scale_type: match direction {
                Direction::Out => SCALE_OUT,
                Direction::In => SCALE_IN,
            }
            .to_string(),
            node_id: NODE_ID_ORDERADD.to_string(),
            node_group: group_name.clone(),
            // Scale-out only, and skip_bootstrap_scripts only when true: the
            // vendor types it inconsistently (string, Boolean), and the seed's
            // scale-in examples carry neither flag.
            skip_bootstrap_scripts: (direction == Direction::Out
                && self.spec.skip_bootstrap_scripts)
                .then_some(true),
            scale_without_start: (direction == Direction::Out)
                .then_some(self.spec.scale_without_start),
            instances: i64::from(req.count),
            task_node_info: None,
            server_ids: None,
        };
        let mut chosen = Vec::new();
        let mut unmatched = Vec::new();
        match (req.group, direction) {
            (NodeGroup::Task, Direction::Out) if observed.task == 0 => {
                let spec = self.spec.task_node_spec.as_ref().ok_or_else(|| {
                    precheck_error(
                        ErrorClass::Invalid,
                        "TaskNodeSpecMissing",
                        format!(
                            "cluster {} has no Task nodes: growing Task from 0 to {} needs spec.huawei.taskNodeSpec \
                             (nodeSize, dataVolumeType, dataVolumeCount, dataVolumeSize)",
                            self.spec.cluster_id, req.count
                        ),
                    )
                })?;
                params.task_node_info = Some(TaskNodeInfo {
                    node_size: spec.node_size.clone(),
                    data_volume_type: spec.data_volume_type.clone(),
                    data_volume_count: i64::from(spec.data_volume_count),
                    data_volume_size: i64::from(spec.data_volume_size),
                });
            }
            (NodeGroup::Task, Direction::In) if !req.prefer_nodes.is_empty() => {
                let hosts = self.list_hosts().await?;
                chosen = choose_task_hosts(&hosts, &group_name, &req.prefer_nodes, req.count);
                unmatched = unmatched_preferred(&hosts, &group_name, &req.prefer_nodes);
                let any_preferred = chosen.iter().any(|id| req.prefer_nodes.contains(id));
                if !any_preferred {
                    // None of the preferred nodes is left: MRS chooses, as without a preference.
                    tracing::warn!(
                        unmatched = ?unmatched,
                        "no preferred node is a Task host of the group; MRS picks the nodes"
                    );
                    chosen.clear();
                } else if chosen.len() < req.count as usize {
                    // Not enough listed Task hosts to name them all: let MRS choose,
                    // so no preferred node is named.
                    tracing::warn!(
                        listed = chosen.len(),
                        count = req.count,
                        "ListHosts shows fewer Task hosts than requested; omitting server_ids"
                    );
                    chosen.clear();
                    unmatched = distinct(&req.prefer_nodes);
                } else {
                    if !unmatched.is_empty() {
                        tracing::warn!(unmatched = ?unmatched, "preferred nodes that are not Task hosts of the group");
                    }
                    params.server_ids = Some(chosen.clone());
                }
            }
            (NodeGroup::Core, Direction::In) if !req.prefer_nodes.is_empty() => {
                tracing::warn!(
                    "MRS takes server_ids for Task scale-in only; preferNodes is not used for Core"
                );
                unmatched = distinct(&req.prefer_nodes);
            }
            _ => {}
        }
        Ok(PlannedResize {
            body: ClusterScalingReq::new(params),
            node_ids: chosen,
            shown_failure: observed.last_resize_failed.clone(),
            unmatched,
        })
    }

    /// One write, by the API that can address the group ([`Route`]).
    async fn resize(
        &self,
        req: &ScaleRequest,
        direction: Direction,
    ) -> Result<Submitted, CloudError> {
        let view = self.recent_view().await?;
        match self.route(&view, req, direction)? {
            Route::V11 => self.resize_v11(req, direction, view).await,
            Route::V2 { group } => self.resize_v2(req, direction, view, &group).await,
        }
    }

    /// Which API writes `req`, and to which group; `Err` (nothing sent)
    /// when the spec does not say which group.
    fn route(
        &self,
        view: &Interpreted,
        req: &ScaleRequest,
        direction: Direction,
    ) -> Result<Route, CloudError> {
        let action = v2_action(direction);
        if let Some(pool) = &req.pool {
            // Every named pool is one node group, resized by v2.
            return match pool.huawei.as_ref().map(|h| h.node_group.trim()) {
                Some(g) if !g.is_empty() => Ok(Route::V2 {
                    group: g.to_string(),
                }),
                _ => Err(CloudError::new(
                    ErrorClass::Invalid,
                    action,
                    NODE_GROUP_REQUIRED,
                    format!(
                        "not sent: pool {} has no spec.taskPools[].huawei.nodeGroup",
                        pool.name
                    ),
                )
                .blocked_by_check()),
            };
        }
        let group = view.groups.name(req.group);
        if group.is_empty() {
            return Err(CloudError::new(
                ErrorClass::Invalid,
                action,
                NODE_GROUP_REQUIRED,
                format!(
                    "not sent: spec.huawei.taskNodeGroup is required to scale the Task nodes of cluster {}, \
                     a {} cluster, whose node groups are named by the user; its node groups: {}",
                    self.spec.cluster_id,
                    view.cluster_type.map(MrsClusterType::name).unwrap_or_default(),
                    describe_groups(&view.group_counts)
                ),
            )
            .blocked_by_check());
        }
        if v11_addresses(view.cluster_type, group) {
            Ok(Route::V11)
        } else {
            Ok(Route::V2 {
                group: group.to_string(),
            })
        }
    }

    /// A v2 expand or shrink of `group`: the seed's pre-checks against the
    /// latest observation, then the group's guards, each a read made only
    /// here (writes are rare), and then one POST. Never repeated here.
    ///
    /// The guards, in order, each an `Err` with nothing written:
    /// - the group's MRS auto-scaling policy enabled
    ///   ([`Self::refuse_if_autoscaled`], as before a v1.1 write;
    ///   `GET autoscaling-policy`);
    /// - a node of the group billed `on-period` ([`PREPAID_NODE_GROUP`];
    ///   ListNodes of the group, one request per page).
    async fn resize_v2(
        &self,
        req: &ScaleRequest,
        direction: Direction,
        view: Interpreted,
        group: &str,
    ) -> Result<Submitted, CloudError> {
        let action = v2_action(direction);
        precheck(&view.observed, req, direction).map_err(|mut e| {
            e.action = action.to_string();
            e
        })?;
        self.refuse_if_autoscaled(action, group).await?;
        let listing = self.list_nodes(Some(group)).await?;
        if let Some(nodes) = nodes_by_group(&listing.nodes)
            .get(group)
            .filter(|g| g.on_period > 0)
        {
            return Err(CloudError::new(
                ErrorClass::Billing,
                action,
                PREPAID_NODE_GROUP,
                format!(
                    "not sent: node group {group} is yearly/monthly (prepaid): {} of its {} nodes are billed \
                     on-period. MRS would open an order that must be paid before anything scales, and the \
                     operator never creates orders. Resize it in the console",
                    nodes.on_period, nodes.total
                ),
            )
            .blocked_by_check());
        }
        // v2 names no healthy node (`resource_ids` force-removes abnormal ones only).
        let unmatched = match direction {
            Direction::In => distinct(&req.prefer_nodes),
            Direction::Out => Vec::new(),
        };
        if !unmatched.is_empty() {
            tracing::warn!(group, unmatched = ?unmatched, "MRS v2 shrink names no healthy node; MRS picks the nodes");
        }
        tracing::info!(
            cluster = %self.spec.cluster_id,
            operation = %req.token,
            group,
            count = req.count,
            direction = direction.as_str(),
            "MRS v2 resize"
        );
        self.earlier_failure
            .remember(view.observed.last_resize_failed.clone());
        let result = match direction {
            Direction::Out => {
                let options = ExpandOptions {
                    skip_bootstrap_scripts: self.spec.skip_bootstrap_scripts,
                    scale_without_start: self.spec.scale_without_start,
                    az_code: None,
                };
                self.expand_node_group(group, req.count, &options).await
            }
            Direction::In => {
                self.shrink_node_group(group, req.count, &ShrinkOptions::default())
                    .await
            }
        };
        match result {
            Ok(GroupResizeOutcome::Accepted { request_id }) => Ok(Submitted {
                request_id,
                unmatched_preferred: unmatched,
                ..Submitted::default()
            }),
            Ok(GroupResizeOutcome::OrderPending {
                order_id,
                request_id,
            }) => {
                // Nothing scales until somebody pays; no new resize started.
                self.earlier_failure.forget();
                tracing::warn!(group, order_id = %order_id, "MRS opened an order for a prepaid node group; the group is held for this generation");
                Err(CloudError::new(
                    ErrorClass::Billing,
                    action,
                    PREPAID_NODE_GROUP,
                    format!(
                        "node group {group} is yearly/monthly (prepaid): MRS opened order {order_id} for {} node(s), \
                         and nothing scales until it is paid. The operator never pays orders and sends nothing \
                         more for this group: pay or cancel the order in the console",
                        req.count
                    ),
                )
                .with_request_id(request_id)
                .with_opened_order(order_id))
            }
            Err(e) => {
                if !e.may_have_applied() {
                    self.earlier_failure.forget();
                }
                Err(e)
            }
        }
    }

    /// Refuse a write of `action` to `group` when the group's MRS
    /// auto-scaling policy is enabled ([`CLOUD_AUTOSCALER_CONFLICT`], naming
    /// the group and the policy's min and max): both would change its count.
    /// One `GET autoscaling-policy`, made before a write (v1.1 or v2) and
    /// never to observe. Its own failure is reported as it is, but as
    /// [`Effect::Refused`]: whatever the read's answer, the write was not
    /// sent, so the engine need not wait to see whether it took effect.
    async fn refuse_if_autoscaled(&self, action: &str, group: &str) -> Result<(), CloudError> {
        let policies = self
            .autoscaling_policies()
            .await
            .map_err(|e| e.with_effect(Effect::Refused))?;
        match policy_of(&policies, group).filter(|p| p.auto_scaling_enable) {
            None => Ok(()),
            Some(p) => Err(CloudError::new(
                ErrorClass::Invalid,
                action,
                CLOUD_AUTOSCALER_CONFLICT,
                format!(
                    "not sent: node group {group} has MRS auto-scaling enabled (min {}, max {}): MRS changes its \
                     count itself and the nodes it adds carry no marker. Disable the group's auto-scaling \
                     policy in MRS, or stop managing the group here",
                    p.min_capacity, p.max_capacity
                ),
            )
            .blocked_by_check()),
        }
    }

    /// One v1.1 resize: pre-checks against the latest observation, the
    /// group's auto-scaling policy ([`Self::refuse_if_autoscaled`]; a read
    /// made only here), then one PUT. Never repeated here; an unclear answer
    /// is resolved by observation.
    async fn resize_v11(
        &self,
        req: &ScaleRequest,
        direction: Direction,
        view: Interpreted,
    ) -> Result<Submitted, CloudError> {
        let PlannedResize {
            body,
            node_ids,
            shown_failure,
            unmatched,
        } = self.plan_resize(req, direction, view).await?;
        // The group the PUT names, after the pre-checks: nothing is read for
        // a resize they refuse.
        self.refuse_if_autoscaled(ACTION_RESIZE, &body.parameters.node_group)
            .await?;
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            CloudError::new(
                ErrorClass::Invalid,
                ACTION_RESIZE,
                "EncodeError",
                format!("cannot encode the resize body: {e}"),
            )
        })?;
        tracing::info!(
            cluster = %self.spec.cluster_id,
            operation = %req.token,
            scale_type = %body.parameters.scale_type,
            node_group = %body.parameters.node_group,
            instances = body.parameters.instances,
            server_ids = ?body.parameters.server_ids,
            "MRS resize"
        );
        // Whatever happens, the next resize observes again.
        self.forget_view();
        // Before the call: if this future is dropped mid-flight, the resize
        // may still have been applied.
        self.earlier_failure.remember(shown_failure);
        let result = self.send_resize(bytes, node_ids, unmatched).await;
        if let Err(e) = &result {
            if !e.may_have_applied() {
                // MRS did not act on it: no new resize to tell an error apart from.
                self.earlier_failure.forget();
            }
        }
        result
    }

    async fn send_resize(
        &self,
        bytes: Vec<u8>,
        node_ids: Vec<String>,
        unmatched_preferred: Vec<String>,
    ) -> Result<Submitted, CloudError> {
        let reply = self
            .call(
                ACTION_RESIZE,
                Method::PUT,
                &self.cluster_path(),
                &[],
                Some(bytes),
            )
            .await?;
        let parsed: ResultResponse = parse(ACTION_RESIZE, &reply)?;
        if parsed.result != RESULT_SUCCEEDED {
            // 2xx but not "succeeded": we cannot tell whether MRS acted.
            return Err(CloudError::new(
                ErrorClass::Transient,
                ACTION_RESIZE,
                "UnexpectedResult",
                format!(
                    "resize answered result={:?}, expected {RESULT_SUCCEEDED:?}",
                    parsed.result
                ),
            )
            .with_request_id(reply.request_id)
            .effect_unknown());
        }
        Ok(Submitted {
            request_id: reply.request_id,
            flow_id: None,
            trace_id: None,
            node_ids,
            unmatched_preferred,
        })
    }

    // --- transport -------------------------------------------------------

    /// One logical call: hold-off check, authentication (with one token
    /// refresh), error mapping.
    async fn call(
        &self,
        action: &'static str,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, CloudError> {
        self.call_as(action, method, path, query, body, CONTENT_TYPE_JSON)
            .await
    }

    /// [`Self::call`] with the `Content-Type` to send (and sign).
    async fn call_as(
        &self,
        action: &'static str,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Reply, CloudError> {
        if let Some(e) = HOLD_OFFS.active(&self.hold_off_key, self.clock.now()) {
            return Err(e);
        }
        let body = body.unwrap_or_default();
        let result = self
            .call_authenticated(action, &method, path, query, &body, content_type)
            .await;
        match result {
            Ok(reply) => {
                HOLD_OFFS.clear(&self.hold_off_key);
                Ok(reply)
            }
            Err(Failure::Call(e)) => {
                if e.class == ErrorClass::Auth {
                    self.start_hold_off(&e);
                }
                Err(e)
            }
            // The key source backs off a refused exchange itself (its
            // own doubling wait, KeySource): no request was signed, so
            // no key can be locked, and the hold-off is for those.
            Err(Failure::Keys(e)) => Err(e),
        }
    }

    async fn call_authenticated(
        &self,
        action: &'static str,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        content_type: &'static str,
    ) -> Result<Reply, Failure> {
        match &self.auth {
            Auth::Keys(_) => Ok(check(
                action,
                self.exchange(
                    action,
                    method,
                    path,
                    query,
                    Payload { body, content_type },
                    None,
                )
                .await?,
            )?),
            Auth::Token(source) => {
                let token = source.token(&self.http, self.clock.now()).await?;
                let reply = self
                    .exchange(
                        action,
                        method,
                        path,
                        query,
                        Payload { body, content_type },
                        Some(&token),
                    )
                    .await?;
                if reply.status.is_success() {
                    return Ok(reply);
                }
                let status = reply.status;
                let first = errors::from_response(action, status, reply.request_id, &reply.body);
                if !errors::wants_token_refresh(status, &first.code) {
                    return Err(first.into());
                }
                // The token was rejected, so the request was not acted on:
                // fetch a new token and repeat the request once.
                tracing::info!(
                    code = %first.code,
                    request_id = ?first.request_id,
                    "MRS rejected the IAM token; fetching a new one and repeating the request once"
                );
                source.invalidate(&token).await;
                let fresh = source.token(&self.http, self.clock.now()).await?;
                Ok(check(
                    action,
                    self.exchange(
                        action,
                        method,
                        path,
                        query,
                        Payload { body, content_type },
                        Some(&fresh),
                    )
                    .await?,
                )?)
            }
        }
    }

    /// Send one HTTP request; transport errors only (statuses are checked
    /// later). With AK/SK, the keys are taken from the key source after the
    /// rate limiter's wait and before the fence check, right before signing:
    /// its error is this request's, and nothing is sent.
    async fn exchange(
        &self,
        action: &'static str,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        payload: Payload<'_>,
        token: Option<&SecretString>,
    ) -> Result<Reply, Failure> {
        let Payload { body, content_type } = payload;
        self.limits.acquire(self.account(), action).await;
        let keys = match &self.auth {
            Auth::Keys(source) => Some(source.keys().await.map_err(|e| {
                // Whatever the exchange's own outcome, this request was not sent.
                Failure::Keys(e.with_effect(Effect::Refused))
            })?),
            Auth::Token(_) => None,
        };
        // After any wait, immediately before the request is signed and sent.
        fence::check(action)?;
        let query_string = sign::canonical_query(query);
        let url = if query_string.is_empty() {
            format!("{}{path}", self.endpoint.base)
        } else {
            format!("{}{path}?{query_string}", self.endpoint.base)
        };
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), content_type.into()),
            ("Host".into(), self.endpoint.host.clone()),
            ("X-Project-Id".into(), self.spec.project_id.clone()),
        ];
        match (keys, token) {
            (Some(k), _) => {
                headers.push((
                    sign::DATE_HEADER.into(),
                    sign::format_sdk_date(self.clock.now()),
                ));
                if let Some(t) = &k.token {
                    // Signed with the rest: the SDK signs every header it sends.
                    headers.push(("X-Security-Token".into(), t.expose().to_string()));
                }
                let parts = RequestParts {
                    method: method.as_str(),
                    path,
                    query,
                    headers: &headers,
                    body,
                };
                let signed =
                    sign::sign(k.id.expose().trim(), k.secret.expose(), &parts).map_err(|e| {
                        CloudError::new(
                            ErrorClass::Invalid,
                            action,
                            "SignError",
                            format!("cannot sign the request: {e}"),
                        )
                    })?;
                headers.push(("Authorization".into(), signed.authorization));
            }
            (None, Some(t)) => headers.push((AUTH_TOKEN_HEADER.into(), t.expose().to_string())),
            (None, None) => {
                return Err(CloudError::new(
                    ErrorClass::Auth,
                    action,
                    "NoToken",
                    "no IAM token available",
                )
                .into());
            }
        }
        let mut request = self.http.request(method.clone(), url);
        for (name, value) in &headers {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                CloudError::new(
                    ErrorClass::Invalid,
                    action,
                    "InvalidHeader",
                    format!("header {name} has a value that cannot be sent"),
                )
            })?;
            // Credentials stay out of any Debug output of the request.
            if matches!(
                name.to_ascii_lowercase().as_str(),
                "authorization" | "x-auth-token" | "x-security-token"
            ) {
                value.set_sensitive(true);
            }
            request = request.header(name.as_str(), value);
        }
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(action, &e))?;
        let status = response.status();
        let request_id = super::errors::request_id(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(action, &e).with_request_id(request_id.clone()))?;
        Ok(Reply {
            status,
            request_id,
            body: body.to_vec(),
        })
    }

    fn start_hold_off(&self, e: &CloudError) {
        let until = self.clock.now()
            + jiff::SignedDuration::try_from(self.auth_hold_off)
                .unwrap_or(jiff::SignedDuration::MAX);
        tracing::warn!(
            code = %e.code,
            request_id = ?e.request_id,
            hold_off_secs = self.auth_hold_off.as_secs(),
            "authentication failed; no request with these credentials until the hold-off ends"
        );
        HOLD_OFFS.start(&self.hold_off_key, until, e);
    }
}

/// Status check: 2xx passes, anything else becomes a classified error.
fn check(action: &str, reply: Reply) -> Result<Reply, CloudError> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(errors::from_response(
            action,
            reply.status,
            reply.request_id,
            &reply.body,
        ))
    }
}

fn parse<T: DeserializeOwned>(action: &str, reply: &Reply) -> Result<T, CloudError> {
    serde_json::from_slice(&reply.body).map_err(|e| malformed(action, reply.request_id.clone(), e))
}

fn encode<T: serde::Serialize>(action: &str, body: &T) -> Result<Vec<u8>, CloudError> {
    serde_json::to_vec(body).map_err(|e| {
        CloudError::new(
            ErrorClass::Invalid,
            action,
            "EncodeError",
            format!("cannot encode the request body: {e}"),
        )
    })
}

/// A v2 expand or shrink's own pre-checks: a positive count and a group name
/// of 1-64 of `[A-Za-z0-9_-]` (the API's rule). `Err` before any request.
fn check_group_request(action: &str, group: &str, count: i32) -> Result<(), CloudError> {
    let refuse = |code: &str, message: String| {
        CloudError::new(
            ErrorClass::Invalid,
            action,
            code,
            format!("not sent: {message}"),
        )
        .blocked_by_check()
    };
    if count <= 0 {
        return Err(refuse(
            "PrecheckCount",
            format!("the node count must be positive, got {count}"),
        ));
    }
    let valid = !group.is_empty()
        && group.len() <= 64
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(refuse(
            "PrecheckNodeGroup",
            format!("node group name {group:?} must be 1-64 letters, digits, '_' or '-'"),
        ));
    }
    Ok(())
}

/// Settings of a v2 expand beyond the group and the count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpandOptions {
    /// Skip the cluster's bootstrap scripts on the new nodes. Sent always;
    /// ours defaults to false (v2's own default, when absent, is true).
    pub skip_bootstrap_scripts: bool,
    /// Leave the components on the new nodes stopped.
    pub scale_without_start: bool,
    /// The AZs of a cross-AZ cluster, comma-separated.
    pub az_code: Option<String>,
}

/// Settings of a v2 shrink beyond the group and the count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShrinkOptions {
    /// Abnormal nodes to remove by force (ListNodes `resource_id`); empty:
    /// MRS chooses.
    pub resource_ids: Vec<String>,
    pub force_delete: Option<bool>,
    pub az_code: Option<String>,
}

/// Which API writes a group.
enum Route {
    /// `PUT cluster_infos`: the standard groups of analysis, streaming and
    /// hybrid clusters ([`v11_addresses`]); the only one that names healthy
    /// Task nodes to remove (`server_ids`).
    V11,
    /// `POST expand|shrink` of the named group: every group of a custom
    /// cluster, every pool, any group v1.1 cannot address.
    V2 { group: String },
}

fn v2_action(direction: Direction) -> &'static str {
    match direction {
        Direction::Out => ACTION_EXPAND,
        Direction::In => ACTION_SHRINK,
    }
}

/// Every node of a ListNodes listing, and what it cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeListing {
    pub nodes: Vec<ClusterNode>,
    /// `node_total` of the last page that had one.
    pub total: Option<i64>,
    /// Requests made (one per page).
    pub calls: u32,
}

/// The cluster's type and node groups, from ShowClusterDetails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterGroups {
    pub cluster_type: Option<MrsClusterType>,
    pub groups: Vec<GroupCount>,
}

/// The spec fields every client needs.
fn check_spec(spec: &HuaweiSpec) -> Result<(), ConnectError> {
    for (field, value) in [
        ("spec.huawei.region", &spec.region),
        ("spec.huawei.projectId", &spec.project_id),
        ("spec.huawei.clusterId", &spec.cluster_id),
    ] {
        if value.trim().is_empty() {
            return Err(ConnectError::Spec(format!("{field} must not be empty")));
        }
    }
    Ok(())
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

/// The authentication hold-offs of the process, keyed by endpoint and
/// credentials hash: until when, and the error that started it. Times come
/// from the clients' [`Clock`].
#[derive(Default)]
struct HoldOffs(Mutex<HashMap<String, (jiff::Timestamp, CloudError)>>);

static HOLD_OFFS: std::sync::LazyLock<HoldOffs> = std::sync::LazyLock::new(HoldOffs::default);

impl HoldOffs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (jiff::Timestamp, CloudError)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, key: &str, until: jiff::Timestamp, e: &CloudError) {
        self.map().insert(key.to_string(), (until, e.clone()));
    }

    /// The error to answer with instead of a request, while a hold-off runs at `now`.
    fn active(&self, key: &str, now: jiff::Timestamp) -> Option<CloudError> {
        let mut map = self.map();
        let (until, e) = map.get(key)?;
        if now >= *until {
            map.remove(key);
            return None;
        }
        let left = now.duration_until(*until).as_secs();
        let mut e = e.clone();
        e.message = format!(
            "not sent: an earlier request with these credentials failed authentication ({}: {}); \
             repeated failures lock credentials (Huawei locks an AK for 5 minutes after 5 bad signatures), \
             so no request is sent for another {left}s. \
             Fix the credentials (a changed Secret is used at once)",
            e.code, e.message
        );
        Some(e)
    }

    fn clear(&self, key: &str) {
        self.map().remove(key);
    }
}

#[async_trait]
impl Cloud for HuaweiCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Huawei
    }

    fn capabilities(&self) -> Capabilities {
        <super::HuaweiProvider as CloudProvider>::CAPABILITIES
    }

    /// One GET of the cluster detail: Core, the default Task group and each
    /// pool's node group from its `nodeGroups[]` (plus ListHosts while the
    /// cluster is `abnormal`). A group the spec names that the cluster does
    /// not have is `UnknownNodeGroup` ([`interpret_pools`]).
    async fn observe_pools(&self, pools: &[TaskPoolSpec]) -> Result<ObservedCluster, CloudError> {
        *self.pools.lock().unwrap_or_else(|e| e.into_inner()) = pools.to_vec();
        self.observed().await
    }

    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        self.resize(req, Direction::Out).await
    }

    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        self.resize(req, Direction::In).await
    }

    /// MRS keeps no per-operation record: one GET of the cluster detail,
    /// judged by [`progress`]. The engine's observation of the same pass is
    /// not reused: nothing tells it apart from an older one.
    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        Ok(progress(&self.observed().await?, op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::tests::{observed, spec};

    #[test]
    fn mrs_v2_limits_are_kept_per_action_and_account() {
        let limits = rate_limits();
        for (action, per_minute) in [
            (ACTION_EXPAND, EXPAND_PER_MINUTE),
            (ACTION_SHRINK, SHRINK_PER_MINUTE),
            (ACTION_NODES, LIST_NODES_PER_MINUTE),
        ] {
            assert_eq!(
                limits.quota_of(action),
                Some(ActionQuota::per_minute(per_minute)),
                "{action}"
            );
            // Half the minute's requests at once, then one every 2 s (0.6 s
            // for ListNodes): one more may have refilled on a slow machine.
            let burst = (0..per_minute)
                .take_while(|_| limits.try_acquire("AK1", action))
                .count() as u32;
            assert!(
                (per_minute / 2..=per_minute / 2 + 1).contains(&burst),
                "{action}: {burst}"
            );
            // Another account has its own budget.
            assert!(limits.try_acquire("AK2", action), "{action}");
        }
        // The other actions keep the per-second rate, apart from these.
        for action in [ACTION_SHOW, ACTION_RESIZE, ACTION_POLICY, ACTION_HOSTS] {
            assert_eq!(limits.quota_of(action), None, "{action}");
            assert!(limits.try_acquire("AK1", action), "{action}");
        }
        // One budget per process: every client shares it.
        assert!(shared_rate_limits().quota_of(ACTION_NODES).is_some());
    }

    #[test]
    fn a_failure_shown_before_a_resize_is_not_reported_for_it() {
        let error = Some("scaling-error: Cluster expansion failed".to_string());
        let with_error = |state: ClusterState| ObservedCluster {
            state,
            last_resize_failed: error.clone(),
            unmanaged: Default::default(),
            ..observed(3, 1)
        };
        let earlier = EarlierFailure::default();
        // Nothing remembered: reported as MRS shows it.
        let o = earlier.attribute(with_error(ClusterState::Running));
        assert_eq!(o.last_resize_failed, error);
        // Shown before the resize: left out for as long as nothing changes.
        earlier.remember(error.clone());
        for _ in 0..3 {
            let o = earlier.attribute(with_error(ClusterState::Running));
            assert_eq!(o.last_resize_failed, None);
            assert_eq!((o.state, o.core, o.task), (ClusterState::Running, 3, 1));
        }
        // The resize started: the same text afterwards is a new failure.
        let o = earlier.attribute(with_error(ClusterState::Busy("scaling-out".into())));
        assert_eq!(o.last_resize_failed, error);
        let o = earlier.attribute(with_error(ClusterState::Running));
        assert_eq!(o.last_resize_failed, error);
        // The error cleared, then came back: new.
        earlier.remember(error.clone());
        earlier.attribute(observed(3, 1));
        assert_eq!(
            earlier
                .attribute(with_error(ClusterState::Running))
                .last_resize_failed,
            error
        );
        // Another error: reported.
        earlier.remember(Some("scaling-error: older".into()));
        assert_eq!(
            earlier
                .attribute(with_error(ClusterState::Running))
                .last_resize_failed,
            error
        );
        // A refused resize forgets it.
        earlier.remember(error.clone());
        earlier.forget();
        assert_eq!(
            earlier
                .attribute(with_error(ClusterState::Running))
                .last_resize_failed,
            error
        );
    }

    #[test]
    fn client_construction_checks_spec_and_keys() {
        let creds = Credentials::new("test")
            .with("accessKey", "AK")
            .with("secretKey", "SK");
        let c = HuaweiCloud::new(&spec(), &creds).unwrap();
        assert_eq!(c.auth_mode(), "ak-sk");
        assert_eq!(
            c.endpoint().base,
            "https://mrs.cn-north-4.myhuaweicloud.com"
        );
        assert!(!format!("{c:?}").contains("SK\""));
        let caps = c.capabilities();
        assert!(
            caps.scale_out_core && caps.scale_out_task && caps.scale_in_core && caps.scale_in_task
        );
        assert!(!caps.graceful_scale_in);
        let mut s = spec();
        s.project_id = " ".into();
        assert!(HuaweiCloud::new(&s, &creds)
            .unwrap_err()
            .to_string()
            .contains("spec.huawei.projectId"));
        let pw = Credentials::new("test")
            .with("username", "u")
            .with("password", "p")
            .with("domainName", "d");
        assert_eq!(HuaweiCloud::new(&spec(), &pw).unwrap().auth_mode(), "token");
    }

    /// Hands out keys `AK<n>` (a new AK at every exchange), or refuses.
    struct Rotating {
        calls: std::sync::atomic::AtomicU32,
        refuse: bool,
    }

    #[async_trait]
    impl clusterscale_core::cloud::keys::Exchange for Rotating {
        async fn exchange(&self) -> Result<Keys, CloudError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.refuse {
                return Err(CloudError::new(
                    ErrorClass::Auth,
                    "CreateTokenWithIdToken",
                    "401",
                    "refused",
                )
                // As a transport error of the exchange would be.
                .effect_unknown());
            }
            Ok(Keys {
                id: SecretString::new(format!("AK{n}")),
                secret: SecretString::new("SK"),
                token: Some(SecretString::new("TOKEN")),
                expires_at: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)),
            })
        }

        fn identity(&self) -> String {
            "IdP test".into()
        }
    }

    #[tokio::test]
    async fn the_budget_account_outlives_key_refreshes() {
        // Fixed keys: the AK, as before.
        let creds = Credentials::new("test")
            .with("accessKey", " AK-fixed ")
            .with("secretKey", "SK");
        let c = HuaweiCloud::new(&spec(), &creds).unwrap();
        assert_eq!(c.account(), "AK-fixed");
        let shared = c.key_source().unwrap().clone();
        let d = HuaweiCloud::with_key_source(&spec(), shared).unwrap();
        assert_eq!((d.account(), d.auth_mode()), ("AK-fixed", "ak-sk"));
        assert_eq!(d.hold_off_key, c.hold_off_key);

        // Exchanged keys: the exchange's identity, whatever the AK.
        let exchange = Arc::new(Rotating {
            calls: Default::default(),
            refuse: false,
        });
        let source = Arc::new(KeySource::exchanged(exchange, Arc::new(SystemClock)));
        let e = HuaweiCloud::with_key_source(&spec(), source.clone()).unwrap();
        assert_eq!(e.account(), "exchanged:IdP test");
        assert_eq!(e.auth_mode(), "workload-identity");
        assert_eq!(e.tokens_fetched(), 0);
        assert_eq!(source.keys().await.unwrap().id.expose(), "AK1");
        assert_eq!(e.account(), "exchanged:IdP test");
        assert!(!format!("{e:?}").contains("AK1"));
    }

    #[tokio::test]
    async fn no_keys_no_request_and_no_hold_off() {
        let exchange = Arc::new(Rotating {
            calls: Default::default(),
            refuse: true,
        });
        let source = Arc::new(KeySource::exchanged(
            exchange.clone(),
            Arc::new(SystemClock),
        ));
        // Nothing listens on port 1: a request that was sent would fail to connect.
        let cloud = HuaweiCloud::with_key_source(&spec().endpoint("http://127.0.0.1:1"), source)
            .unwrap()
            .with_auth_hold_off(Duration::from_secs(300));
        let e = cloud.observe().await.unwrap_err();
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::Auth, "401"));
        assert_eq!(e.effect, Effect::Refused);
        assert_eq!(cloud.requests_sent(), 0);
        assert!(
            HOLD_OFFS
                .active(&cloud.hold_off_key, cloud.clock.now())
                .is_none(),
            "a refused exchange starts no MRS hold-off"
        );
    }

    #[tokio::test]
    async fn the_auth_hold_off_runs_on_the_injected_clock() {
        use clusterscale_core::clock::ManualClock;
        // A port nothing listens on: a request that is sent fails as a
        // transport error; one held off fails as the Auth error that started it.
        let clock = Arc::new(ManualClock::default());
        let creds = Credentials::new("test")
            .with("accessKey", "AK-hold-off-clock")
            .with("secretKey", "SK");
        let cloud = HuaweiCloud::new(&spec().endpoint("http://127.0.0.1:1"), &creds)
            .unwrap()
            .with_clock(clock.clone())
            .with_auth_hold_off(Duration::from_secs(300));
        let refused = CloudError::new(ErrorClass::Auth, ACTION_SHOW, "APIGW.0301", "bad signature");
        cloud.start_hold_off(&refused);

        let held = cloud.observe().await.expect_err("held off");
        assert_eq!(
            (held.class, held.code.as_str()),
            (ErrorClass::Auth, "APIGW.0301")
        );
        assert!(
            held.message.contains("for another 300s"),
            "{}",
            held.message
        );
        assert_eq!(cloud.requests_sent(), 0, "nothing sent while held off");

        clock.advance(Duration::from_secs(299));
        let held = cloud.observe().await.expect_err("still held off");
        assert!(held.message.contains("for another 1s"), "{}", held.message);

        // Real time has not moved; the injected clock has.
        clock.advance(Duration::from_secs(1));
        let sent = cloud.observe().await.expect_err("nothing listens");
        assert_ne!(sent.class, ErrorClass::Auth, "{sent}");
    }
}
