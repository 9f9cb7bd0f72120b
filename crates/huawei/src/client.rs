//! [`HuaweiCloud`]: the MRS v1.1 client behind the [`Cloud`] trait.
//!
//! Calls (cloud-apis.md B1, B2):
//! - observe: `GET /v1.1/{project_id}/cluster_infos/{cluster_id}` (one call;
//!   plus ListHosts while the cluster is `abnormal`, to count the nodes down);
//! - preferred Task scale-in: `GET /v1.1/{project_id}/clusters/{cluster_id}/hosts` (paged);
//! - resize: `PUT /v1.1/{project_id}/cluster_infos/{cluster_id}`.
//!
//! Safety rules enforced here, before any write (the planner enforces them
//! too; this is defence in depth): the cluster must be running and idle,
//! growth is at most 500 minus Core+Task, Core scale-in keeps at least 3
//! Core, and Task growth from 0 needs `spec.huawei.taskNodeSpec`.
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

use super::sign::{self, RequestParts};
use super::token::{TokenSource, AUTH_TOKEN_HEADER};
use super::wire::{
    ClusterDetail, ClusterDetailResponse, ClusterScalingParams, ClusterScalingReq, Host,
    ListHostsResponse, ResultResponse, TaskNodeInfo, NODE_ID_ORDERADD, RESULT_SUCCEEDED, SCALE_IN,
    SCALE_OUT,
};
use super::{errors, iam_endpoint, mrs_endpoint, AkSk, AuthConfig, ConfigError};
use clusterscale_core::api::{
    CloudKind, Direction, HuaweiSpec, NodeGroup, OperationRecord, MAX_TOTAL, MIN_CORE,
};
use clusterscale_core::clock::{Clock, SystemClock};
use clusterscale_core::cloud::credentials::{Credentials, SecretString};
use clusterscale_core::cloud::http::{self, malformed, transport_error, Endpoint, RateLimits};
use clusterscale_core::cloud::provider::CloudProvider;
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ClusterState, ErrorClass, Node, ObservedCluster,
    OperationProgress, ScaleRequest, Submitted,
};

/// Action names used in errors and rate-limit buckets.
pub const ACTION_SHOW: &str = "GET cluster_infos";
pub const ACTION_HOSTS: &str = "GET hosts";
pub const ACTION_RESIZE: &str = "PUT cluster_infos";

/// Requests per second per (account, action). Huawei does not publish a
/// per-action limit for these APIs; this keeps a controller well below any.
pub const REQUESTS_PER_SECOND: u32 = 5;
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
    AkSk(AkSk),
    Token(TokenSource),
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
    http: reqwest::Client,
    limits: RateLimits,
    clock: Arc<dyn Clock>,
    auth_hold_off: Duration,
    hold_off_key: String,
    snapshot: Mutex<Option<Snapshot>>,
    earlier_failure: EarlierFailure,
    requests: AtomicU64,
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
    pub fn new(spec: &HuaweiSpec, creds: &Credentials) -> Result<Self, ConfigError> {
        for (field, value) in [
            ("spec.huawei.region", &spec.region),
            ("spec.huawei.projectId", &spec.project_id),
            ("spec.huawei.clusterId", &spec.cluster_id),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Spec(format!("{field} must not be empty")));
            }
        }
        let endpoint = mrs_endpoint(spec)?;
        let config = AuthConfig::from_credentials(creds)?;
        let (auth, fingerprint) = match config {
            AuthConfig::AkSk(a) => {
                let fp = fingerprint(&[&a.access_key, a.secret_key.expose()]);
                (Auth::AkSk(a), fp)
            }
            AuthConfig::Password(p) => {
                let iam = iam_endpoint(spec)?;
                let fp =
                    fingerprint(&[&iam.base, &p.username, &p.domain_name, p.password.expose()]);
                (
                    Auth::Token(TokenSource::new(iam, p, spec.project_id.clone())),
                    fp,
                )
            }
        };
        Ok(Self {
            spec: spec.clone(),
            hold_off_key: format!("{}|{}", endpoint.base, fingerprint),
            endpoint,
            auth,
            http: http::client(),
            limits: http::shared_rate_limits(REQUESTS_PER_SECOND),
            clock: Arc::new(SystemClock),
            auth_hold_off: DEFAULT_AUTH_HOLD_OFF,
            snapshot: Mutex::new(None),
            earlier_failure: EarlierFailure::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// A client with credentials from the environment ([`super::ENV_VARS`]),
    /// for the CLI.
    pub fn from_env(spec: &HuaweiSpec) -> Result<Self, ConfigError> {
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

    /// Change how long calls are refused after an authentication failure.
    pub fn with_auth_hold_off(mut self, hold_off: Duration) -> Self {
        self.auth_hold_off = hold_off;
        self
    }

    /// `ak-sk` or `token`.
    pub fn auth_mode(&self) -> &'static str {
        match self.auth {
            Auth::AkSk(_) => "ak-sk",
            Auth::Token(_) => "token",
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
            Auth::AkSk(_) => 0,
        }
    }

    fn account(&self) -> String {
        match &self.auth {
            Auth::AkSk(a) => a.access_key.clone(),
            Auth::Token(t) => t.account_key(),
        }
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

    /// Observe (one GET) and remember the result for the pre-checks of the
    /// next resize. The result is the cluster as MRS reports it, including a
    /// `scaling-error` of an earlier resize; see [`Self::observed`].
    async fn view(&self) -> Result<Interpreted, CloudError> {
        let (detail, request_id) = self.cluster_detail_with_id().await?;
        let view =
            interpret(&detail, &self.spec).map_err(|m| malformed(ACTION_SHOW, request_id, m))?;
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
    ) -> Result<PlannedResize, CloudError> {
        let view = self.recent_view().await?;
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

    /// One resize: pre-checks against the latest observation, then one PUT.
    /// Never repeated here; an unclear answer is resolved by observation.
    async fn resize(
        &self,
        req: &ScaleRequest,
        direction: Direction,
    ) -> Result<Submitted, CloudError> {
        let PlannedResize {
            body,
            node_ids,
            shown_failure,
            unmatched,
        } = self.plan_resize(req, direction).await?;
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
        if let Some(e) = HOLD_OFFS.active(&self.hold_off_key, self.clock.now()) {
            return Err(e);
        }
        let body = body.unwrap_or_default();
        let result = self
            .call_authenticated(action, &method, path, query, &body)
            .await;
        match &result {
            Err(e) if e.class == ErrorClass::Auth => self.start_hold_off(e),
            Ok(_) => HOLD_OFFS.clear(&self.hold_off_key),
            Err(_) => {}
        }
        result
    }

    async fn call_authenticated(
        &self,
        action: &'static str,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, CloudError> {
        match &self.auth {
            Auth::AkSk(_) => check(
                action,
                self.exchange(action, method, path, query, body, None)
                    .await?,
            ),
            Auth::Token(source) => {
                let token = source.token(&self.http, self.clock.now()).await?;
                let reply = self
                    .exchange(action, method, path, query, body, Some(&token))
                    .await?;
                if reply.status.is_success() {
                    return Ok(reply);
                }
                let status = reply.status;
                let first = errors::from_response(action, status, reply.request_id, &reply.body);
                if !errors::wants_token_refresh(status, &first.code) {
                    return Err(first);
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
                check(
                    action,
                    self.exchange(action, method, path, query, body, Some(&fresh))
                        .await?,
                )
            }
        }
    }

    /// Send one HTTP request; transport errors only (statuses are checked later).
    async fn exchange(
        &self,
        action: &'static str,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        token: Option<&SecretString>,
    ) -> Result<Reply, CloudError> {
        self.limits.acquire(&self.account(), action).await;
        let query_string = sign::canonical_query(query);
        let url = if query_string.is_empty() {
            format!("{}{path}", self.endpoint.base)
        } else {
            format!("{}{path}?{query_string}", self.endpoint.base)
        };
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Host".into(), self.endpoint.host.clone()),
            ("X-Project-Id".into(), self.spec.project_id.clone()),
        ];
        match (&self.auth, token) {
            (Auth::AkSk(a), _) => {
                headers.push((
                    sign::DATE_HEADER.into(),
                    sign::format_sdk_date(self.clock.now()),
                ));
                if let Some(t) = &a.security_token {
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
                    sign::sign(&a.access_key, a.secret_key.expose(), &parts).map_err(|e| {
                        CloudError::new(
                            ErrorClass::Invalid,
                            action,
                            "SignError",
                            format!("cannot sign the request: {e}"),
                        )
                    })?;
                headers.push(("Authorization".into(), signed.authorization));
            }
            (Auth::Token(_), Some(t)) => {
                headers.push((AUTH_TOKEN_HEADER.into(), t.expose().to_string()))
            }
            (Auth::Token(_), None) => {
                return Err(CloudError::new(
                    ErrorClass::Auth,
                    action,
                    "NoToken",
                    "no IAM token available",
                ));
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

fn precheck_error(class: ErrorClass, code: &str, message: String) -> CloudError {
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

fn distinct(ids: &[String]) -> Vec<String> {
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

#[async_trait]
impl Cloud for HuaweiCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Huawei
    }

    fn capabilities(&self) -> Capabilities {
        <super::HuaweiProvider as CloudProvider>::CAPABILITIES
    }

    async fn observe(&self) -> Result<ObservedCluster, CloudError> {
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

/// Progress of `op` as far as the cluster detail states it; everything else
/// (success by counts, an operation MRS never showed) is left to the engine,
/// which decides by state, counts and [`Capabilities::acceptance_grace`].
///
/// - a failed cluster state: Failed;
/// - busy (scaling, or any other operation): Running;
/// - `abnormal` with `op`'s target reached: Succeeded (the resize is over;
///   some nodes are unhealthy, which the plan waits out);
/// - idle with `scale: scaling-error` and `op`'s target not reached: Failed
///   with MRS's reason. `observed` comes from [`HuaweiCloud`]'s observation,
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
mod tests {
    use super::*;
    use crate::wire::NodeGroupV10;

    fn spec() -> HuaweiSpec {
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

    fn observed(core: i32, task: i32) -> ObservedCluster {
        ObservedCluster {
            state: ClusterState::Running,
            core,
            task,
            nodes: vec![],
            last_resize_failed: None,
            unmanaged: Default::default(),
        }
    }

    fn req(group: NodeGroup, count: i32) -> ScaleRequest {
        ScaleRequest {
            group,
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
