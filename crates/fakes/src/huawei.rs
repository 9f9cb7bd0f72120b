//! A wire-compatible fake Huawei Cloud MRS (v1.1) and IAM token endpoint
//! over a [`SimModel`], for tests, demos and users' own CI.
//!
//! One listener serves both:
//! - `POST /v3/auth/tokens`: IAM password tokens (201, `X-Subject-Token`);
//! - with [`HuaweiFakeConfig::federation`], IAM's OIDC federation:
//!   `POST /v3.0/OS-AUTH/id-token/tokens` and
//!   `POST /v3.0/OS-CREDENTIAL/securitytokens`, a JWT checked and traded for
//!   short-lived temporary keys, which MRS requests must then be signed
//!   with, with their security token ([`federation`]);
//! - `GET|PUT /v1.1/{project_id}/cluster_infos/{cluster_id}`: cluster detail, resize;
//! - `GET /v1.1/{project_id}/clusters/{cluster_id}/hosts`: hosts, paged;
//! - MRS v2 (cloud-apis.md C1; bodies per huaweicloud-sdk-go-v3
//!   `services/mrs/v2/model/`): `POST /v2/{project_id}/clusters/{cluster_id}/expand`
//!   and `/shrink` (one node group; the group's count changes after the
//!   operation time, the cluster `scaling-out`/`scaling-in` meanwhile),
//!   `GET .../nodes` (`limit` 1-100, `offset` a page number from 1,
//!   `node_group`; `billing_type` per group), `GET
//!   /v2/{project_id}/autoscaling-policy/{cluster_id}` (a JSON array).
//!
//! Node groups follow the cluster type ([`FakeClusterType`], `clusterType` 0-3
//! in the detail): analysis, streaming, hybrid (two Core and two Task groups)
//! or custom (`node_group_1..n`). Each model node belongs to one group; the
//! initial nodes are spread over their role's groups. v1.1's resize refuses a
//! custom cluster with [`CUSTOM_V11_REFUSAL`]. Prepaid groups
//! ([`GroupSettings::prepaid`], `PUT /_fake/prepaid`) answer an expand with
//! an `order_id` and add nothing; auto-scaling policies
//! ([`GroupSettings::policies`], `PUT /_fake/autoscaling`) are reported.
//!
//! Like the real service it
//! - verifies `SDK-HMAC-SHA256` signatures by recomputing them with the known
//!   SK (or checks `X-Auth-Token` against the tokens it issued), answers
//!   `401 APIGW.0301` otherwise, and locks an AK for 5 minutes after 5
//!   consecutive failures;
//! - answers `12000017` when the cluster is not running, `12000018` while a
//!   resize runs, `12000002` on bad parameters (including the 500-node and
//!   3-Core limits), `12000003` for another cluster id;
//! - uses the real shapes: camelCase detail with string counts,
//!   `{"result":"succeeded"}`, `{"error_code","error_msg"}`, `X-Request-Id`;
//! - keeps a failed resize as `clusterState: running, scale: scaling-error`;
//! - can end an operation in `clusterState: abnormal` with some hosts not
//!   running ([`HuaweiFake::end_next_operation_abnormal`]), and then answers
//!   resizes with `12000080` until [`HuaweiFake::clear_abnormal`];
//! - lists hosts in the SDK's spelling (`CoreNode`, `running`) or the
//!   reference example's (`Core`, `ACTIVE`, no `node_group_name`):
//!   [`HuaweiFake::set_host_style`].
//!
//! Faults and the journal are the shared ones of [`crate`]
//! ([`FakeControl`]; the `/_fake/` control routes when enabled): injected
//! errors are rendered in Huawei's envelope, throttling as `429 APIGW.0308`,
//! transient failures as `500 MRS.300`. The model's own faults
//! ([`SimModel::fail_next`], `Faults::lose_responses`, `fail_operations`)
//! apply too; a lost answer becomes `504 APIGW.0201` after the resize was
//! applied. Resizes draw [`WriteFault`]s: refused with `500 MRS.300`
//! (nothing applied), applied and answered `504 APIGW.0201`, or answered by
//! an nginx-style HTML 502 page (applied unless `proxyErrorDropsWrite`).
//! Journal actions are the SDK's operation names: [`ACTION_TOKEN`],
//! [`ACTION_SHOW`], [`ACTION_HOSTS`], [`ACTION_RESIZE`], [`ACTION_EXPAND`],
//! [`ACTION_SHRINK`], [`ACTION_NODES`], [`ACTION_POLICY`]; each has its own
//! throttling window (`429 APIGW.0308`).
//!
//! Besides those injected faults, the fake keeps MRS v2's own limits per
//! account ([`V2RateLimits`], [`HuaweiFakeConfig::v2_rate_limits`]): expand
//! and shrink 60 a minute each, ListNodes 200 (every page a request); a
//! request over one is answered `429 APIGW.0308` with the gateway's body
//! (`error_code`, `error_msg`, `request_id`), and nothing is applied.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::{
    control_routes, malform_json, redact, request_id, Admission, FakeControl, FakeOptions,
    InjectedError, Journal, JournalLine, Malformed, WriteFault,
};
use crate::fleet::{Fleet, Member};
use clusterscale_core::api::{NodeGroup, MAX_TOTAL, MIN_CORE};
use clusterscale_core::cloud::{CloudError, ErrorClass};
use clusterscale_huawei::sign::{self, RequestParts};
use clusterscale_huawei::token::{AUTH_TOKEN_HEADER, SUBJECT_TOKEN_HEADER, TOKEN_PATH};
use clusterscale_huawei::wire::{
    AutoScalingPolicy, AutoScalingPolicyV2, ClusterDetail, ClusterDetailResponse, ClusterNode,
    Host, ListHostsResponse, ListNodesResponse, NodeGroupV10, ServerInfo, TokenRequest,
    BILLING_ON_PERIOD, BILLING_ON_QUANTITY, NODE_ID_ORDERADD, RESULT_SUCCEEDED, SCALE_IN,
    SCALE_OUT,
};
use clusterscale_huawei::{errors as hw_errors, ENV_VARS};
use clusterscale_sim::{SimError, SimModel, SimNode};

pub mod federation;
pub use federation::{
    ExchangeStats, FakeFederation, IssuedKey, ACTION_ID_TOKEN, ACTION_SECURITY_TOKEN,
};

/// Actions (the SDK's operation names), as journaled and as matched by
/// [`InjectedError::action`].
pub const ACTION_TOKEN: &str = "KeystoneCreateUserTokenByPassword";
pub const ACTION_SHOW: &str = "ShowClusterDetails";
pub const ACTION_HOSTS: &str = "ListHosts";
pub const ACTION_RESIZE: &str = "UpdateClusterScaling";
/// MRS v2 (cloud-apis.md C1): the SDK's operation names.
pub const ACTION_EXPAND: &str = "ExpandCluster";
pub const ACTION_SHRINK: &str = "ShrinkCluster";
pub const ACTION_NODES: &str = "ListNodes";
pub const ACTION_POLICY: &str = "ShowAutoScalingPolicy";

/// The actions that change the cluster (write faults, malformed write answers).
const WRITE_ACTIONS: &[&str] = &[ACTION_RESIZE, ACTION_EXPAND, ACTION_SHRINK];

/// The code a v1.1 resize of a custom cluster is refused with. The real
/// code is not documented anywhere we could read (the v1.1 resize page only
/// says "not custom clusters"); 12000054 "operation not supported" of the
/// MRS error table is our choice **(inference)**.
pub const CUSTOM_V11_REFUSAL: &str = "12000054";

/// A cluster type the fake serves, with its node groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FakeClusterType {
    /// `clusterType` 0: `core_node_analysis_group`, `task_node_analysis_group`.
    #[default]
    Analysis,
    /// 1: `core_node_streaming_group`, `task_node_streaming_group`.
    Streaming,
    /// 2: both Core groups and both Task groups.
    Hybrid,
    /// 3: `node_group_1` (master), `node_group_2` (Core, DataNode and
    /// NodeManager), `node_group_3` .. `node_group_<n>` (NodeManager only:
    /// Task); `n` is 3 to 9.
    Custom(u8),
}

/// The role of a node group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupRole {
    Master,
    Core,
    Task,
}

impl GroupRole {
    fn node_group(self) -> Option<NodeGroup> {
        match self {
            GroupRole::Master => None,
            GroupRole::Core => Some(NodeGroup::Core),
            GroupRole::Task => Some(NodeGroup::Task),
        }
    }

    /// ListNodes' `node_type`.
    fn node_type(self) -> &'static str {
        match self {
            GroupRole::Master => "Master",
            GroupRole::Core => "Core",
            GroupRole::Task => "Task",
        }
    }
}

impl FakeClusterType {
    /// `clusterType` of ShowClusterDetails.
    pub fn code(self) -> i64 {
        match self {
            FakeClusterType::Analysis => 0,
            FakeClusterType::Streaming => 1,
            FakeClusterType::Hybrid => 2,
            FakeClusterType::Custom(_) => 3,
        }
    }

    /// Parse `analysis`, `streaming`, `hybrid` or `custom` (with `groups`
    /// node groups, 3 to 9).
    pub fn parse(name: &str, groups: u8) -> Result<Self, String> {
        match name.trim() {
            "analysis" => Ok(FakeClusterType::Analysis),
            "streaming" => Ok(FakeClusterType::Streaming),
            "hybrid" | "mixed" => Ok(FakeClusterType::Hybrid),
            "custom" if (3..=9).contains(&groups) => Ok(FakeClusterType::Custom(groups)),
            "custom" => Err(format!(
                "a custom cluster has 3 to 9 node groups, got {groups}"
            )),
            other => Err(format!(
                "unknown cluster type {other:?} (analysis, streaming, hybrid or custom)"
            )),
        }
    }

    /// The node groups, in the order ShowClusterDetails lists them.
    pub fn groups(self) -> Vec<(String, GroupRole)> {
        let named = |v: &[(&str, GroupRole)]| {
            v.iter()
                .map(|(n, r)| (n.to_string(), *r))
                .collect::<Vec<_>>()
        };
        let master = ("master_node_default_group", GroupRole::Master);
        match self {
            FakeClusterType::Analysis => named(&[
                master,
                ("core_node_analysis_group", GroupRole::Core),
                ("task_node_analysis_group", GroupRole::Task),
            ]),
            FakeClusterType::Streaming => named(&[
                master,
                ("core_node_streaming_group", GroupRole::Core),
                ("task_node_streaming_group", GroupRole::Task),
            ]),
            FakeClusterType::Hybrid => named(&[
                master,
                ("core_node_analysis_group", GroupRole::Core),
                ("core_node_streaming_group", GroupRole::Core),
                ("task_node_analysis_group", GroupRole::Task),
                ("task_node_streaming_group", GroupRole::Task),
            ]),
            FakeClusterType::Custom(n) => (1..=n.clamp(3, 9))
                .map(|i| {
                    let role = match i {
                        1 => GroupRole::Master,
                        2 => GroupRole::Core,
                        _ => GroupRole::Task,
                    };
                    (format!("node_group_{i}"), role)
                })
                .collect(),
        }
    }
}

/// An auto-scaling policy the fake reports for a node group
/// (`GET /v2/{project_id}/autoscaling-policy/{cluster_id}`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FakePolicy {
    pub group: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub min: i32,
    #[serde(default)]
    pub max: i32,
}

fn enabled() -> bool {
    true
}

/// The node-group settings an account's clusters share, changeable while
/// the fake runs (`PUT /_fake/prepaid`, `PUT /_fake/autoscaling`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSettings {
    /// Prepaid (on-period) groups: their nodes list `billing_type:
    /// on-period`; an expand answers an `order_id` and adds nothing; a
    /// shrink is refused with `12000065` (our choice, **inference**).
    pub prepaid: Vec<String>,
    pub policies: Vec<FakePolicy>,
}

/// MRS v2's per-action limits as the fake keeps them (cloud-apis.md C1:
/// expand 60 a minute, shrink 60, ListNodes 200, per tenant). The fake is
/// one account: every access key, IAM user and cluster of a fleet counts
/// against the same windows. A request of one of these actions beyond its
/// limit in the sliding `window` is answered `429 APIGW.0308` with the API
/// gateway's body, after authentication and before anything else (nothing
/// applied). Refused requests do not count; every other authenticated
/// request of the action does, whatever its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2RateLimits {
    pub expand: u32,
    pub shrink: u32,
    pub list_nodes: u32,
    pub window: Duration,
}

impl V2RateLimits {
    /// MRS's own: 60, 60 and 200 a minute.
    pub const MRS: V2RateLimits = V2RateLimits {
        expand: 60,
        shrink: 60,
        list_nodes: 200,
        window: Duration::from_secs(60),
    };

    /// The limit of `action` (one of the `ACTION_*` names), if it has one.
    pub fn limit(&self, action: &str) -> Option<u32> {
        match action {
            ACTION_EXPAND => Some(self.expand),
            ACTION_SHRINK => Some(self.shrink),
            ACTION_NODES => Some(self.list_nodes),
            _ => None,
        }
    }
}

impl Default for V2RateLimits {
    fn default() -> Self {
        Self::MRS
    }
}

/// Consecutive signature failures after which an AK is locked.
pub const LOCK_AFTER_FAILURES: u32 = 5;
/// How long a locked AK stays locked.
pub const LOCK_DURATION: Duration = Duration::from_secs(300);
/// Largest accepted difference between `X-Sdk-Date` and the fake's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// An AK/SK pair the fake accepts. `Debug` hides the SK and token.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeAccessKey {
    pub access_key: String,
    pub secret_key: String,
    /// When set, requests must carry (and sign) this `X-Security-Token`.
    pub security_token: Option<String>,
}

/// An IAM user the fake issues tokens to. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub username: String,
    pub password: String,
    pub domain_name: String,
}

impl std::fmt::Debug for FakeAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAccessKey")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("temporary", &self.security_token.is_some())
            .finish()
    }
}

impl std::fmt::Debug for FakeUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("domain_name", &self.domain_name)
            .finish()
    }
}

/// `PUT /_fake/abnormal` (`{"hostsDown": N}`): the next accepted resize
/// ends `abnormal` with N hosts down ([`HuaweiFake::end_next_operation_abnormal`]);
/// `DELETE /_fake/abnormal`: healthy again ([`HuaweiFake::clear_abnormal`]).
/// For a fake run as a process (the CLI tests).
fn abnormal_routes(fake: HuaweiFake) -> Router {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Arm {
        hosts_down: usize,
    }
    async fn arm(State(fake): State<HuaweiFake>, axum::Json(a): axum::Json<Arm>) -> StatusCode {
        fake.end_next_operation_abnormal(a.hosts_down);
        StatusCode::NO_CONTENT
    }
    async fn clear(State(fake): State<HuaweiFake>) -> StatusCode {
        fake.clear_abnormal();
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/_fake/abnormal", axum::routing::put(arm).delete(clear))
        .with_state(fake)
}

/// `GET /_fake/federation/issued`: the secret halves (SK, security token)
/// of every temporary key the fake IAM issued, for a test's secret grep.
fn issued_routes(fake: HuaweiFake) -> Router {
    async fn issued(State(fake): State<HuaweiFake>) -> axum::Json<Vec<String>> {
        axum::Json(fake.inner.account().federation.issued_secrets())
    }
    Router::new()
        .route("/_fake/federation/issued", axum::routing::get(issued))
        .with_state(fake)
}

/// Settings of the fake: Huawei's, and the shared [`FakeOptions`].
#[derive(Clone, Debug)]
pub struct HuaweiFakeConfig {
    /// Faults, journal file, clock, control routes.
    pub options: FakeOptions,
    /// Project id served; `None` serves any.
    pub project_id: Option<String>,
    /// Cluster id served (the model); `None` serves any id.
    pub cluster_id: Option<String>,
    pub access_keys: Vec<FakeAccessKey>,
    pub users: Vec<FakeUser>,
    /// The cluster type, and so its node groups.
    pub cluster_type: FakeClusterType,
    /// Task node groups added to the type's own (as MRS 3.x lets one add
    /// Task groups to any cluster), listed after them, empty at the start.
    /// v1.1 addresses none of them by the client's reading; v2 does.
    pub extra_task_groups: Vec<String>,
    /// Prepaid groups and auto-scaling policies at the start.
    pub groups: GroupSettings,
    /// MRS v2's per-minute limits of expand, shrink and ListNodes
    /// ([`V2RateLimits::MRS`] by default); `None`: no limit.
    pub v2_rate_limits: Option<V2RateLimits>,
    /// Master nodes shown (not part of the model).
    pub master_nodes: i32,
    /// Lifetime of issued tokens (IAM: 24 h), password and federated.
    pub token_ttl: Duration,
    /// IAM's OIDC federation ([`federation`]); `None`: not served.
    pub federation: Option<FakeFederation>,
}

/// Demo credentials used when the environment has none.
pub const DEMO_ACCESS_KEY: &str = "HWFAKEACCESSKEY00001";
pub const DEMO_SECRET_KEY: &str = "HwFakeSecretKey0000000000000000000000001";
pub const DEMO_USERNAME: &str = "clusterscale";
pub const DEMO_PASSWORD: &str = "fake-password";
pub const DEMO_DOMAIN: &str = "clusterscale-demo";

impl Default for HuaweiFakeConfig {
    fn default() -> Self {
        Self {
            options: FakeOptions::default(),
            project_id: None,
            cluster_id: None,
            access_keys: vec![FakeAccessKey {
                access_key: DEMO_ACCESS_KEY.into(),
                secret_key: DEMO_SECRET_KEY.into(),
                security_token: None,
            }],
            users: vec![FakeUser {
                username: DEMO_USERNAME.into(),
                password: DEMO_PASSWORD.into(),
                domain_name: DEMO_DOMAIN.into(),
            }],
            cluster_type: FakeClusterType::Analysis,
            extra_task_groups: Vec::new(),
            groups: GroupSettings::default(),
            v2_rate_limits: Some(V2RateLimits::MRS),
            master_nodes: 2,
            token_ttl: Duration::from_secs(24 * 3600),
            federation: None,
        }
    }
}

impl HuaweiFakeConfig {
    /// Every node group, in the order ShowClusterDetails lists them: the
    /// type's, then [`Self::extra_task_groups`].
    pub fn layout(&self) -> Vec<(String, GroupRole)> {
        let mut groups = self.cluster_type.groups();
        for g in &self.extra_task_groups {
            if !groups.iter().any(|(n, _)| n == g) {
                groups.push((g.clone(), GroupRole::Task));
            }
        }
        groups
    }

    /// Accept the credentials of the environment the client reads
    /// (`HUAWEICLOUD_SDK_AK` / `_SK` / `_SECURITY_TOKEN`, `HUAWEICLOUD_USERNAME`
    /// / `_PASSWORD` / `_DOMAIN_NAME`); where a set is absent, the demo
    /// credentials ([`DEMO_ACCESS_KEY`], [`DEMO_USERNAME`], ...).
    pub fn from_env() -> Self {
        let var = |key: &str| {
            ENV_VARS
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| std::env::var(v).ok())
                .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
                .filter(|v| !v.is_empty())
        };
        let mut o = Self::default();
        if let (Some(ak), Some(sk)) = (var("accessKey"), var("secretKey")) {
            o.access_keys = vec![FakeAccessKey {
                access_key: ak,
                secret_key: sk,
                security_token: var("securityToken"),
            }];
        }
        if let (Some(u), Some(p), Some(d)) = (var("username"), var("password"), var("domainName")) {
            o.users = vec![FakeUser {
                username: u,
                password: p,
                domain_name: d,
            }];
        }
        o
    }
}

/// How ListHosts spells host types and states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostStyle {
    /// The SDK's comment: `MasterNode` / `CoreNode` / `TaskNode`, `running`,
    /// with `node_group_name`.
    #[default]
    Sdk,
    /// The reference's example reply (OTC `querying_a_host_list.rst`):
    /// `Master` / `Core` / `Task`, `ACTIVE`, no `node_group_name`.
    Otc,
}

impl HostStyle {
    fn host_type(self, group: Option<NodeGroup>) -> &'static str {
        match (self, group) {
            (HostStyle::Sdk, None) => "MasterNode",
            (HostStyle::Sdk, Some(NodeGroup::Core)) => "CoreNode",
            (HostStyle::Sdk, Some(NodeGroup::Task)) => "TaskNode",
            (HostStyle::Otc, None) => "Master",
            (HostStyle::Otc, Some(NodeGroup::Core)) => "Core",
            (HostStyle::Otc, Some(NodeGroup::Task)) => "Task",
        }
    }

    fn status(self, healthy: bool) -> &'static str {
        match (self, healthy) {
            (HostStyle::Sdk, true) => "running",
            (HostStyle::Sdk, false) => "abnormal",
            (HostStyle::Otc, true) => "ACTIVE",
            (HostStyle::Otc, false) => "SHUTOFF",
        }
    }
}

#[derive(Debug, Default)]
struct AkState {
    consecutive_failures: u32,
    locked_until: Option<Instant>,
}

#[derive(Clone, Debug)]
struct IssuedToken {
    expires_at: Timestamp,
    project_id: String,
}

/// What the account shares across the clusters of a fleet.
#[derive(Debug, Default)]
struct Account {
    ak: HashMap<String, AkState>,
    tokens: HashMap<String, IssuedToken>,
    /// The admitted requests of each action with a [`V2RateLimits`] limit,
    /// within its window.
    v2_windows: HashMap<&'static str, VecDeque<Instant>>,
    /// IAM tokens and temporary keys of the OIDC federation.
    federation: federation::FederationState,
}

#[derive(Debug, Default)]
struct FakeState {
    /// `clusterState` forced by a test (e.g. `frozen`); resizes get 12000017.
    state_override: Option<String>,
    /// The last resize failed: `(stageDesc, errorInfo)`; cleared by the next accepted resize.
    scale_error: Option<(String, String)>,
    last_direction_out: bool,
    /// The Task group exists (has had nodes) and its spec.
    task_group_spec: Option<Value>,
    host_style: HostStyle,
    /// The next accepted resize ends `abnormal` with this many hosts down.
    abnormal_armed: Option<usize>,
    /// An accepted resize runs that ends `abnormal` with this many hosts down.
    abnormal_when_done: Option<usize>,
    /// The cluster is `abnormal`, with this many Core/Task hosts not running.
    abnormal: Option<usize>,
    /// The node group of every model node seen so far.
    node_group: HashMap<String, String>,
    /// The group whose expand runs (flow id, group): its new nodes are that
    /// group's.
    pending_group: Option<(String, String)>,
    /// Orders opened by expands of prepaid groups.
    orders: u32,
}

struct Inner {
    model: Arc<SimModel>,
    opts: HuaweiFakeConfig,
    options: FakeOptions,
    control: Arc<FakeControl>,
    state: Mutex<FakeState>,
    account: Arc<Mutex<Account>>,
    requests: Arc<AtomicU64>,
    /// Prepaid groups and policies, shared by the account's clusters.
    settings: Arc<Mutex<GroupSettings>>,
}

pub use crate::fleet::ModelFactory;

/// The cluster a request's path names (`/v1.1/{project}/cluster_infos/{id}`,
/// `/v1.1/{project}/clusters/{id}/hosts`); anything else (IAM, unknown ids)
/// goes to the fleet's default cluster.
fn named_cluster(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1.1", _, "cluster_infos", c]
        | ["v1.1", _, "clusters", c, "hosts"]
        | ["v2", _, "clusters", c, _]
        | ["v2", _, "autoscaling-policy", c] => Some(*c),
        _ => None,
    }
}

/// The fake. Cheap to clone; every clone serves the same state.
#[derive(Clone)]
pub struct HuaweiFake {
    inner: Arc<Inner>,
    fleet: Option<Arc<Fleet<Inner>>>,
}

impl std::fmt::Debug for HuaweiFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiFake")
            .field("model", &self.inner.model.id())
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

/// Serve the fake MRS and IAM on `listener` until the task is dropped.
/// This is what `clusterscale-fake-cloud --huawei ADDR` runs.
pub async fn serve_huawei(
    listener: tokio::net::TcpListener,
    model: Arc<SimModel>,
    config: HuaweiFakeConfig,
) -> std::io::Result<()> {
    HuaweiFake::new(model, config)?.serve(listener).await
}

impl HuaweiFake {
    /// A fake over `model`. Fails only when the journal file cannot be opened.
    pub fn new(model: Arc<SimModel>, config: HuaweiFakeConfig) -> std::io::Result<Self> {
        let options = config.options.clone();
        let state = initial_state(&model, config.cluster_type);
        let settings = Arc::new(Mutex::new(config.groups.clone()));
        let journal = Journal::open(options.journal_path.as_deref())?;
        let control = Arc::new(FakeControl::new(options.faults.clone(), journal));
        Ok(Self {
            inner: Arc::new(Inner {
                model,
                opts: config,
                options,
                control,
                state: Mutex::new(state),
                account: Arc::default(),
                requests: Arc::default(),
                settings,
            }),
            fleet: None,
        })
    }

    /// A multi-instance fake: one account (IAM users, access keys and
    /// their lockouts, issued tokens, faults and throttling windows, one
    /// journal) serving every cluster id of `ids`, each with its own model,
    /// made by `make_model` on the first request naming it. Other ids are
    /// answered `12000003` (not found). `ids` must not be empty.
    pub fn fleet(
        ids: Vec<String>,
        make_model: ModelFactory,
        mut config: HuaweiFakeConfig,
    ) -> std::io::Result<Self> {
        let first = Fleet::<Inner>::first(&ids)?;
        config.cluster_id = Some(first.clone());
        let mut fake = Self::new(make_model(&first), config)?;
        fake.fleet = Some(Arc::new(Fleet::new(
            ids,
            make_model,
            first,
            fake.inner.clone(),
        )));
        Ok(fake)
    }

    /// The models of the clusters used so far, by id (the one model in
    /// single-instance mode).
    pub fn models(&self) -> Vec<Arc<SimModel>> {
        match &self.fleet {
            Some(f) => f.models(),
            None => vec![self.inner.model.clone()],
        }
    }

    /// The model of cluster `id` (made now in multi-instance mode, as the
    /// first request naming it would), or `None` for an id the fake does not
    /// serve.
    pub fn model_of(&self, id: &str) -> Option<Arc<SimModel>> {
        match &self.fleet {
            Some(f) => f.get(id).map(|m| m.model.clone()),
            None => (self.inner.model.id() == id).then(|| self.inner.model.clone()),
        }
    }

    /// The axum router: MRS and IAM, plus the `/_fake/` control routes
    /// when [`FakeOptions::control_routes`] is set.
    pub fn router(&self) -> Router {
        let api = match &self.fleet {
            Some(fleet) => Router::new()
                .fallback(handle_fleet)
                .with_state(fleet.clone()),
            None => Router::new()
                .fallback(handle)
                .with_state(self.inner.clone()),
        };
        if self.inner.options.control_routes {
            let api = match &self.fleet {
                Some(_) => api,
                None => api
                    .merge(abnormal_routes(self.clone()))
                    .merge(issued_routes(self.clone())),
            };
            control_routes(self.inner.control.clone())
                .merge(group_routes(self.inner.settings.clone()))
                .merge(api)
        } else {
            api
        }
    }

    /// The shared fault state and journal.
    pub fn control(&self) -> &Arc<FakeControl> {
        &self.inner.control
    }

    /// Serve on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "fake Huawei MRS + IAM listening");
        }
        axum::serve(listener, self.router()).await
    }

    pub fn model(&self) -> &Arc<SimModel> {
        &self.inner.model
    }

    /// Requests received so far (all routes).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Every request so far.
    pub fn journal(&self) -> Vec<JournalLine> {
        self.inner.control.journal()
    }

    /// Requests that changed (or started changing) the cluster.
    pub fn writes(&self) -> Vec<JournalLine> {
        self.journal().into_iter().filter(|l| l.write).collect()
    }

    /// Answer the next authenticated request of `action` (one of the
    /// `ACTION_*` names) with Huawei error `code`.
    pub fn inject(&self, action: &str, code: &str, message: &str) {
        self.inner.control.inject(InjectedError {
            action: Some(action.to_string()),
            code: code.to_string(),
            message: message.to_string(),
            http_status: None,
        });
    }

    /// Invalidate every issued token (as IAM does when a user changes).
    pub fn revoke_tokens(&self) {
        self.inner.account().tokens.clear();
    }

    /// Tokens issued and still valid.
    pub fn tokens_issued(&self) -> usize {
        self.inner.account().tokens.len()
    }

    /// The OIDC federation's calls, keys issued, and the most calls
    /// handled at once.
    pub fn exchange_stats(&self) -> ExchangeStats {
        self.inner.account().federation.stats()
    }

    /// The temporary keys handed out (AK, subject, issue and expiry),
    /// oldest first.
    pub fn temporary_keys(&self) -> Vec<IssuedKey> {
        self.inner.account().federation.issued()
    }

    /// Force `clusterState` (e.g. `frozen`, `abnormal`); `None` restores the model's.
    pub fn set_cluster_state(&self, state: Option<&str>) {
        self.lock().state_override = state.map(str::to_string);
    }

    /// Spell ListHosts types and states the SDK's way or the reference's (OTC).
    pub fn set_host_style(&self, style: HostStyle) {
        self.lock().host_style = style;
    }

    /// The next accepted resize, once done, leaves the cluster `abnormal`
    /// with the last `hosts_down` Core/Task hosts not running (the counts
    /// are the operation's target).
    pub fn end_next_operation_abnormal(&self, hosts_down: usize) {
        self.lock().abnormal_armed = Some(hosts_down);
    }

    /// The cluster is healthy (`running`) again.
    pub fn clear_abnormal(&self) {
        let mut s = self.lock();
        s.abnormal = None;
        s.abnormal_when_done = None;
        s.abnormal_armed = None;
    }

    /// Prepaid (on-period) groups, replacing the list (the whole account).
    pub fn set_prepaid_groups(&self, groups: &[&str]) {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .prepaid = groups.iter().map(|g| g.to_string()).collect();
    }

    /// Auto-scaling policies, replacing the list (the whole account).
    pub fn set_policies(&self, policies: Vec<FakePolicy>) {
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .policies = policies;
    }

    /// Every node group of the (single, or first) cluster and its nodes now.
    pub fn group_counts(&self) -> Vec<(String, i32)> {
        listed_groups(&self.inner)
            .into_iter()
            .map(|(name, role, n)| {
                let n = if role == GroupRole::Master {
                    self.inner.opts.master_nodes
                } else {
                    n
                };
                (name, n)
            })
            .collect()
    }

    /// Whether `access_key` is locked after repeated signature failures.
    pub fn is_locked(&self, access_key: &str) -> bool {
        self.inner
            .account()
            .ak
            .get(access_key)
            .and_then(|a| a.locked_until)
            .is_some_and(|t| t > Instant::now())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.inner.lock()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Member for Inner {
    fn model(&self) -> &Arc<SimModel> {
        &self.model
    }

    /// Another cluster `id` of the same account: the same settings,
    /// [`FakeControl`] and [`Account`], its own model and state.
    fn sibling(&self, id: &str, model: Arc<SimModel>) -> Inner {
        let mut opts = self.opts.clone();
        opts.cluster_id = Some(id.to_string());
        Inner {
            state: Mutex::new(initial_state(&model, opts.cluster_type)),
            model,
            opts,
            options: self.options.clone(),
            control: self.control.clone(),
            account: self.account.clone(),
            requests: self.requests.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// The initial state: each role's nodes spread over its groups in turn.
fn initial_state(model: &SimModel, cluster_type: FakeClusterType) -> FakeState {
    let layout = cluster_type.groups();
    let mut node_group = HashMap::new();
    for role in [GroupRole::Core, GroupRole::Task] {
        let names: Vec<&String> = layout
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(n, _)| n)
            .collect();
        let nodes = model
            .nodes()
            .into_iter()
            .filter(|n| Some(n.group) == role.node_group());
        for (i, n) in nodes.enumerate() {
            if let Some(name) = names.get(i % names.len().max(1)) {
                node_group.insert(n.id, (*name).clone());
            }
        }
    }
    FakeState {
        task_group_spec: (model.config().initial_task > 0).then(default_task_spec),
        node_group,
        ..FakeState::default()
    }
}

async fn handle_fleet(State(fleet): State<Arc<Fleet<Inner>>>, request: Request) -> Response {
    let inner = fleet.member(named_cluster(request.uri().path()));
    handle(State(inner), request).await
}

fn default_task_spec() -> Value {
    json!({"node_size": "c6.2xlarge.4.linux.bigdata", "data_volume_type": "SAS", "data_volume_count": 1, "data_volume_size": 600})
}

/// An answer before journaling.
struct Answer {
    status: StatusCode,
    body: Value,
    code: Option<String>,
    write: bool,
    detail: String,
    extra_header: Option<(&'static str, String)>,
    /// A non-JSON body (a gateway's HTML page).
    raw: Option<String>,
    /// Cut the connection after the status line (a lost answer).
    reset: bool,
}

impl Answer {
    fn ok(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            code: None,
            write: false,
            detail: String::new(),
            extra_header: None,
            raw: None,
            reset: false,
        }
    }

    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status,
            body: json!({"error_code": code, "error_msg": message}),
            code: Some(code.to_string()),
            write: false,
            detail: message,
            extra_header: None,
            raw: None,
            reset: false,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            "12000002",
            format!("Invalid parameter: {}", message.into()),
        )
    }

    fn apigw(message: impl Into<String>) -> Self {
        Self::error(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            format!(
                "Incorrect IAM authentication information: {}",
                message.into()
            ),
        )
    }
}

/// How a request authenticated.
enum Principal {
    AkSk(String),
    Token,
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = request_id();
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let bytes = to_bytes(body, MAX_BODY).await;
    // An exchange call counts while it is handled, delay included.
    let _running = match &inner.opts.federation {
        Some(fed) if federation::is_federation_path(&path) => {
            let running = federation::Running::start(&inner.account);
            if !fed.delay.is_zero() {
                tokio::time::sleep(fed.delay).await;
            }
            Some(running)
        }
        _ => None,
    };
    let (mut answer, action, principal, body_value) = match &bytes {
        Ok(bytes) => {
            let (answer, action, principal) =
                route(&inner, &method, &path, &raw_query, &parts.headers, bytes);
            let mut body = body_for_journal(bytes);
            federation::redact_token_ids(&mut body);
            (answer, action, principal, body)
        }
        Err(e) => (
            Answer::invalid(format!("cannot read the body: {e}")),
            "unknown",
            String::new(),
            Value::Null,
        ),
    };
    // The API gateway's own bodies carry the request id too.
    if answer
        .code
        .as_deref()
        .is_some_and(hw_errors::is_gateway_code)
    {
        if let Some(body) = answer.body.as_object_mut() {
            body.insert("request_id".into(), Value::String(request_id.clone()));
        }
    }
    let delay = inner.control.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let query: serde_json::Map<String, Value> = parse_query(&raw_query)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let outcome = if answer.reset {
        "connection reset".to_string()
    } else if answer.status.is_success() {
        "ok".to_string()
    } else {
        answer
            .code
            .clone()
            .unwrap_or_else(|| format!("HTTP {}", answer.status.as_u16()))
    };
    // A malformed answer in place of a JSON one (the request was handled).
    let malformed = if answer.reset || answer.raw.is_some() {
        None
    } else {
        inner.control.malformed(WRITE_ACTIONS.contains(&action))
    };
    let outcome = match malformed {
        Some(kind) => format!("{outcome}; {}", kind.note()),
        None => outcome,
    };
    let status = match malformed {
        Some(Malformed::Html200) => StatusCode::OK,
        Some(Malformed::Html502) => StatusCode::BAD_GATEWAY,
        _ => answer.status,
    };
    inner.control.record(JournalLine {
        at: inner.options.clock.now(),
        cloud: "huawei".into(),
        action: action.to_string(),
        request_id: request_id.clone(),
        params: redact(&json!({
            "method": method.as_str(),
            "path": path,
            "query": query,
            "principal": principal,
            "body": body_value,
            "detail": answer.detail,
        })),
        outcome,
        http_status: status.as_u16(),
        write: answer.write,
        signed_by: None,
    });
    if answer.reset {
        return super::reset_response(answer.status);
    }
    let (content_type, text) = match (&answer.raw, malformed) {
        (Some(raw), _) => ("text/html", raw.clone()),
        (None, Some(Malformed::Html200 | Malformed::Html502)) => (
            "text/html",
            proxy_page(StatusCode::BAD_GATEWAY).raw.unwrap_or_default(),
        ),
        (None, Some(kind)) => (
            "application/json;charset=UTF-8",
            malform_json(kind, &answer.body.to_string(), NEEDED_FIELDS),
        ),
        (None, None) => ("application/json;charset=UTF-8", answer.body.to_string()),
    };
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    if let Some((name, value)) = answer.extra_header {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

/// The request body as journaled: JSON when it is JSON, else a short text.
fn body_for_journal(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(bytes).chars().take(200).collect())
    })
}

/// The fields a [`Malformed::WrongType`] answer spoils, the first present:
/// the error code, the cluster's state, the host list, the resize result,
/// the token.
const NEEDED_FIELDS: &[&str] = &[
    "error_code",
    "clusterState",
    "hosts",
    "nodes",
    "result",
    "expires_at",
    "auto_scaling_enable",
];

/// The route of a request: `(answer, action, principal)`.
fn route(
    inner: &Inner,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (Answer, &'static str, String) {
    if let Some(answer) = federation::route(inner, method, path, headers, body) {
        return answer;
    }
    if path.trim_end_matches('/') == TOKEN_PATH {
        if method != Method::POST {
            return (
                Answer::error(StatusCode::METHOD_NOT_ALLOWED, "IAM.0001", "use POST"),
                ACTION_TOKEN,
                String::new(),
            );
        }
        if let Some(a) = injected(inner, ACTION_TOKEN) {
            return (a, ACTION_TOKEN, String::new());
        }
        let (answer, who) = issue_token(inner, body);
        return (answer, ACTION_TOKEN, who);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (action, project, cluster) = match (method, segments.as_slice()) {
        (&Method::GET, ["v1.1", p, "cluster_infos", c]) => (ACTION_SHOW, *p, *c),
        (&Method::PUT, ["v1.1", p, "cluster_infos", c]) => (ACTION_RESIZE, *p, *c),
        (&Method::GET, ["v1.1", p, "clusters", c, "hosts"]) => (ACTION_HOSTS, *p, *c),
        (&Method::POST, ["v2", p, "clusters", c, "expand"]) => (ACTION_EXPAND, *p, *c),
        (&Method::POST, ["v2", p, "clusters", c, "shrink"]) => (ACTION_SHRINK, *p, *c),
        (&Method::GET, ["v2", p, "clusters", c, "nodes"]) => (ACTION_NODES, *p, *c),
        (&Method::GET, ["v2", p, "autoscaling-policy", c]) => (ACTION_POLICY, *p, *c),
        _ => {
            return (
                Answer::error(
                    StatusCode::NOT_FOUND,
                    "APIGW.0101",
                    format!("The API does not exist: {method} {path}"),
                ),
                "unknown",
                String::new(),
            )
        }
    };
    let query = parse_query(raw_query);
    let principal = match authenticate(inner, method, path, &query, headers, body, project) {
        Ok(p) => p,
        Err((answer, who)) => return (*answer, action, who),
    };
    let who = match &principal {
        Principal::AkSk(ak) => format!("ak:{ak}"),
        Principal::Token => "token".to_string(),
    };
    if let Some(a) = over_v2_limit(inner, action) {
        return (a, action, who);
    }
    if let Some(a) = injected(inner, action) {
        return (a, action, who);
    }
    if inner
        .opts
        .project_id
        .as_deref()
        .is_some_and(|p| p != project)
    {
        return (
            Answer::error(
                StatusCode::FORBIDDEN,
                "12000001",
                format!("project {project} is not accessible"),
            ),
            action,
            who,
        );
    }
    if inner
        .opts
        .cluster_id
        .as_deref()
        .is_some_and(|c| c != cluster)
    {
        return (
            Answer::error(
                StatusCode::NOT_FOUND,
                "12000003",
                format!("The cluster does not exist: {cluster}"),
            ),
            action,
            who,
        );
    }
    let answer = match action {
        ACTION_SHOW => show(inner, cluster),
        ACTION_HOSTS => hosts(inner, &query),
        ACTION_NODES => list_nodes(inner, &query),
        ACTION_POLICY => policies(inner),
        ACTION_EXPAND => with_write_faults(inner, body, expand),
        ACTION_SHRINK => with_write_faults(inner, body, shrink),
        _ => with_write_faults(inner, body, resize),
    };
    (answer, action, who)
}

/// A write (v1.1 resize, v2 expand or shrink) under the write faults
/// ([`FakeControl::write_fault`]).
fn with_write_faults(inner: &Inner, body: &[u8], resize: fn(&Inner, &[u8]) -> Answer) -> Answer {
    match inner.control.write_fault() {
        WriteFault::None => resize(inner, body),
        // MRS handled it and refused: its own body, HTTP 500, nothing applied.
        WriteFault::Refuse => {
            let mut a = Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "MRS.300",
                "System error.",
            );
            a.detail = "write fault: refused, not applied".into();
            a
        }
        WriteFault::LoseAnswer { reset: true } => {
            let applied = resize(inner, body);
            let mut a = Answer::ok(StatusCode::OK, Value::Null);
            a.reset = true;
            a.code = Some("connection reset".into());
            a.write = applied.write;
            a.detail = "write fault: connection reset after the answer's status line".into();
            a
        }
        WriteFault::LoseAnswer { reset: false } => {
            let applied = resize(inner, body);
            let mut a = Answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                "APIGW.0201",
                "Request timeout.",
            );
            a.write = applied.write;
            a.detail = format!(
                "write fault: answer lost after {}",
                if applied.write {
                    "applying"
                } else {
                    "a refusal"
                }
            );
            a
        }
        WriteFault::ProxyError { applied } => {
            let write = applied && resize(inner, body).write;
            let mut a = proxy_page(StatusCode::BAD_GATEWAY);
            a.write = write;
            a.detail = format!(
                "write fault: proxy 502 page, {}",
                if write { "applied" } else { "not applied" }
            );
            a
        }
    }
}

/// A proxy's HTML error page (no MRS or gateway body).
fn proxy_page(status: StatusCode) -> Answer {
    let mut a = Answer::error(status, "", "");
    a.code = None;
    let reason = status.canonical_reason().unwrap_or("Error");
    a.raw = Some(format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    ));
    a
}

/// `429 APIGW.0308` when a request of `action` is over its
/// [`V2RateLimits`] limit; else the request counts, and `None`.
fn over_v2_limit(inner: &Inner, action: &'static str) -> Option<Answer> {
    let limits = inner.opts.v2_rate_limits?;
    let limit = limits.limit(action)?;
    let now = Instant::now();
    let mut account = inner.account();
    let window = account.v2_windows.entry(action).or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= limits.window)
    {
        window.pop_front();
    }
    if window.len() < limit as usize {
        window.push_back(now);
        return None;
    }
    let mut a = Answer::error(
        StatusCode::TOO_MANY_REQUESTS,
        "APIGW.0308",
        format!(
            "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:{}",
            window_text(limits.window)
        ),
    );
    a.detail = format!(
        "over MRS's limit of {limit} {action} per {}",
        window_text(limits.window)
    );
    Some(a)
}

/// A window as the gateway's message spells it: `1 minute`, `10 second`.
fn window_text(window: Duration) -> String {
    let (secs, millis) = (window.as_secs(), window.subsec_millis());
    match (secs, millis) {
        (s, 0) if s > 0 && s % 60 == 0 => format!("{} minute", s / 60),
        (s, 0) => format!("{s} second"),
        _ => format!("{} millisecond", window.as_millis()),
    }
}

/// The shared faults, rendered the way Huawei answers.
fn injected(inner: &Inner, action: &str) -> Option<Answer> {
    let mut a = match inner.control.admit(action) {
        Admission::Proceed => return None,
        Admission::Inject(e) => match e.http_status {
            Some(status) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                let mut a = Answer::error(status, "", e.message.clone());
                a.code = None;
                a.raw = Some(format!("<html><body><h1>{status}</h1></body></html>"));
                a
            }
            None => {
                let class = hw_errors::lookup(&e.code).map(|r| r.class).unwrap_or(ErrorClass::Invalid);
                let message = if e.message.is_empty() {
                    hw_errors::lookup(&e.code).map(|r| r.meaning.to_string()).unwrap_or_default()
                } else {
                    e.message.clone()
                };
                Answer::error(status_for(class), &e.code, message)
            }
        },
        Admission::Throttle { limit } => Answer::error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0308",
            format!("The throttling threshold has been reached: policy user over ratelimit, limit:{limit}, time:1 second"),
        ),
        Admission::Transient => Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "MRS.300", "System error."),
    };
    a.detail = format!("injected: {}", a.detail);
    Some(a)
}

/// The HTTP status Huawei uses for an error class.
fn status_for(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Auth => StatusCode::UNAUTHORIZED,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Transient => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                String::from_utf8_lossy(&sign::percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&sign::percent_decode(v)).into_owned(),
            )
        })
        .collect()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A refusal and who was refused.
fn deny(answer: Answer, who: &str) -> (Box<Answer>, String) {
    (Box::new(answer), who.to_string())
}

/// Check AK/SK or token. `Err((answer, principal))` on failure.
fn authenticate(
    inner: &Inner,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
    project: &str,
) -> Result<Principal, (Box<Answer>, String)> {
    if let Some(token) = header(headers, AUTH_TOKEN_HEADER) {
        let now = inner.options.clock.now();
        let mut s = inner.account();
        s.tokens.retain(|_, t| t.expires_at > now);
        return match s.tokens.get(token) {
            Some(t) if t.project_id == project => Ok(Principal::Token),
            Some(_) => Err(deny(
                Answer::apigw("the token is scoped to another project"),
                "token",
            )),
            None => Err(deny(
                Answer::apigw("the token is invalid or expired"),
                "token",
            )),
        };
    }
    let Some(authorization) = header(headers, "authorization") else {
        return Err(deny(
            Answer::apigw("no Authorization or X-Auth-Token header"),
            "",
        ));
    };
    let auth = sign::parse_authorization(authorization)
        .map_err(|e| deny(Answer::apigw(e.to_string()), ""))?;
    let who = format!("ak:{}", auth.access_key);
    let locked = {
        let mut s = inner.account();
        let entry = s.ak.entry(auth.access_key.clone()).or_default();
        match entry.locked_until {
            Some(t) if t > Instant::now() => true,
            Some(_) => {
                entry.locked_until = None;
                entry.consecutive_failures = 0;
                false
            }
            None => false,
        }
    };
    if locked {
        return Err(deny(
            Answer::apigw(format!(
                "the access key is locked for {}s after {LOCK_AFTER_FAILURES} consecutive authentication failures",
                LOCK_DURATION.as_secs()
            )),
            &who,
        ));
    }
    match verify_signature(inner, &auth, method, path, query, headers, body) {
        Ok(()) => {
            if let Some(a) = inner.account().ak.get_mut(&auth.access_key) {
                a.consecutive_failures = 0;
            }
            Ok(Principal::AkSk(auth.access_key))
        }
        Err(reason) => {
            let mut s = inner.account();
            let entry = s.ak.entry(auth.access_key.clone()).or_default();
            entry.consecutive_failures += 1;
            if entry.consecutive_failures >= LOCK_AFTER_FAILURES {
                entry.locked_until = Some(Instant::now() + LOCK_DURATION);
                tracing::warn!(access_key = %auth.access_key, "fake MRS: access key locked");
            }
            Err(deny(Answer::apigw(reason), &who))
        }
    }
}

fn verify_signature(
    inner: &Inner,
    auth: &sign::Authorization,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let permanent = inner
        .opts
        .access_keys
        .iter()
        .find(|k| k.access_key == auth.access_key);
    let (secret_key, security_token) = match permanent {
        Some(k) => (k.secret_key.clone(), k.security_token.clone()),
        // Temporary keys of the OIDC federation: their security token is
        // checked here, their expiry too.
        None => match federation::temporary_secret(inner, &auth.access_key, headers) {
            Some(sk) => (sk?, None),
            None => return Err(format!("access key {} not found", auth.access_key)),
        },
    };
    let signed = &auth.signed_headers;
    for required in ["host", "x-sdk-date"] {
        if !signed.iter().any(|h| h == required) {
            return Err(format!("header {required} must be signed"));
        }
    }
    // Headers the SDK always signs when it sends them.
    for name in ["x-project-id", "x-security-token", "content-type"] {
        if headers.contains_key(name) && !signed.iter().any(|h| h == name) {
            return Err(format!("header {name} is sent but not signed"));
        }
    }
    if let Some(expected) = &security_token {
        if header(headers, "x-security-token") != Some(expected.as_str()) {
            return Err("temporary credentials need their X-Security-Token".into());
        }
    }
    let date = header(headers, "x-sdk-date").ok_or("no X-Sdk-Date header")?;
    let at = sign::parse_sdk_date(date).map_err(|e| e.to_string())?;
    let skew = inner.options.clock.now().duration_since(at).abs();
    if skew > SignedDuration::try_from(MAX_CLOCK_SKEW).unwrap_or(SignedDuration::MAX) {
        return Err(format!(
            "the signature expired: X-Sdk-Date {date} is {}s away",
            skew.as_secs()
        ));
    }
    let received: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let parts = RequestParts {
        method: method.as_str(),
        path,
        query,
        headers: &received,
        body,
    };
    let expected = sign::sign_with_headers(&auth.access_key, &secret_key, &parts, signed)
        .map_err(|e| e.to_string())?;
    if sign::signatures_equal(&expected.signature, &auth.signature) {
        Ok(())
    } else {
        Err("verify aksk signature fail".into())
    }
}

fn issue_token(inner: &Inner, body: &[u8]) -> (Answer, String) {
    let request: TokenRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                Answer::error(
                    StatusCode::BAD_REQUEST,
                    "IAM.0011",
                    format!("Request body is invalid: {e}"),
                ),
                String::new(),
            )
        }
    };
    let user = &request.auth.identity.password.user;
    let who = format!("user:{}@{}", user.name, user.domain.name);
    if !request
        .auth
        .identity
        .methods
        .iter()
        .any(|m| m == "password")
    {
        return (
            Answer::error(
                StatusCode::BAD_REQUEST,
                "IAM.0011",
                "only the password method is supported",
            ),
            who,
        );
    }
    let known = inner.opts.users.iter().any(|u| {
        u.username == user.name && u.password == user.password && u.domain_name == user.domain.name
    });
    if !known {
        let mut a = Answer::error(
            StatusCode::UNAUTHORIZED,
            "401",
            "The username or password is wrong.",
        );
        a.body = json!({"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}});
        return (a, who);
    }
    let project = request.auth.scope.project.id.clone();
    if inner
        .opts
        .project_id
        .as_deref()
        .is_some_and(|p| p != project)
        || project.is_empty()
    {
        let mut a = Answer::error(
            StatusCode::BAD_REQUEST,
            "IAM.0011",
            format!("project {project:?} not found"),
        );
        a.detail = format!("unknown project {project:?}");
        return (a, who);
    }
    let now = inner.options.clock.now();
    let ttl =
        SignedDuration::try_from(inner.opts.token_ttl).unwrap_or(SignedDuration::from_hours(24));
    let expires_at = now + ttl;
    let token = format!(
        "MIIFAKE{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    inner.account().tokens.insert(
        token.clone(),
        IssuedToken {
            expires_at,
            project_id: project.clone(),
        },
    );
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut a = Answer::ok(
        StatusCode::CREATED,
        json!({"token": {
            "expires_at": fmt(expires_at),
            "issued_at": fmt(now),
            "methods": ["password"],
            "project": {"id": project, "name": "cn-north-4"},
            "user": {"name": user.name, "domain": {"name": user.domain.name}}
        }}),
    );
    a.extra_header = Some((SUBJECT_TOKEN_HEADER, token));
    a.detail = format!("token for {who}, expires {expires_at}");
    (a, who)
}

/// An operation armed to end `abnormal` has ended: the cluster is abnormal.
fn settle_abnormal(inner: &Inner) {
    let done = inner.model.operation().is_none();
    let mut s = inner.lock();
    if done {
        if let Some(n) = s.abnormal_when_done.take() {
            s.abnormal = Some(n);
        }
    }
}

/// A failed model operation becomes Huawei's `running` + `scaling-error`.
fn sync_failure(inner: &Inner) {
    if let Some(reason) = inner.model.failure() {
        inner.model.repair();
        let mut s = inner.lock();
        let stage = if s.last_direction_out {
            "Cluster expansion failed"
        } else {
            "Cluster shrink failed"
        };
        s.scale_error = Some((stage.to_string(), reason));
    }
}

struct Counts {
    core: i32,
    task: i32,
}

fn counts(inner: &Inner) -> Result<Counts, Box<Answer>> {
    let observed = inner
        .model
        .observe()
        .map_err(|e| Box::new(model_error(e)))?;
    Ok(Counts {
        core: observed.core,
        task: observed.task,
    })
}

fn show(inner: &Inner, cluster: &str) -> Answer {
    sync_failure(inner);
    settle_abnormal(inner);
    let c = match counts(inner) {
        Ok(c) => c,
        Err(a) => return *a,
    };
    let listed = listed_groups(inner);
    let operation = inner.model.operation();
    let s = inner.lock();
    let (state, scale, stage, error_info) = if let Some(forced) = &s.state_override {
        (forced.clone(), String::new(), String::new(), String::new())
    } else if s.abnormal.is_some() && operation.is_none() {
        (
            "abnormal".into(),
            String::new(),
            String::new(),
            String::new(),
        )
    } else if let Some(op) = &operation {
        let (v, stage) = match op.direction {
            clusterscale_core::api::Direction::Out => ("scaling-out", "Adding node to the cluster"),
            clusterscale_core::api::Direction::In => {
                ("scaling-in", "Removing node from the cluster")
            }
        };
        (
            v.to_string(),
            v.to_string(),
            stage.to_string(),
            String::new(),
        )
    } else if let Some((stage, info)) = &s.scale_error {
        (
            "running".into(),
            "scaling-error".into(),
            stage.clone(),
            info.clone(),
        )
    } else {
        (
            "running".into(),
            String::new(),
            String::new(),
            String::new(),
        )
    };
    let master = inner.opts.master_nodes.max(0);
    let task_size = s
        .task_group_spec
        .as_ref()
        .and_then(|v| v["node_size"].as_str())
        .unwrap_or("c6.2xlarge.4.linux.bigdata")
        .to_string();
    let mut node_groups = Vec::new();
    let mut task_groups = Vec::new();
    for (name, role, n) in &listed {
        let g = match role {
            GroupRole::Master => group(name, master, "c6.4xlarge.4.linux.bigdata"),
            GroupRole::Core => group(name, *n, "c6.2xlarge.4.linux.bigdata"),
            GroupRole::Task => group(name, *n, &task_size),
        };
        if *role == GroupRole::Task {
            task_groups.push(g.clone());
        }
        node_groups.push(g);
    }
    let detail = ClusterDetail {
        cluster_id: cluster.to_string(),
        cluster_name: inner.model.id().to_string(),
        cluster_version: "MRS 3.1.0".into(),
        cluster_type: Some(inner.opts.cluster_type.code()),
        cluster_state: state,
        scale,
        stage_desc: stage,
        error_info,
        total_node_num: Some(i64::from(master + c.core + c.task)),
        master_node_num: Some(i64::from(master)),
        core_node_num: Some(i64::from(c.core)),
        node_groups,
        task_node_groups: task_groups,
        update_at: inner.options.clock.now().as_second().to_string(),
    };
    match serde_json::to_value(ClusterDetailResponse { cluster: detail }) {
        Ok(v) => Answer::ok(StatusCode::OK, v),
        Err(e) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MRS.300",
            format!("System error: {e}"),
        ),
    }
}

fn group(name: &str, n: i32, size: &str) -> NodeGroupV10 {
    NodeGroupV10 {
        group_name: name.to_string(),
        node_num: Some(i64::from(n)),
        node_size: Some(size.to_string()),
        data_volume_type: Some("SAS".into()),
        data_volume_count: Some(1),
        data_volume_size: Some(600),
    }
}

fn hosts(inner: &Inner, query: &[(String, String)]) -> Answer {
    let number = |name: &str, default: usize| -> Result<usize, Box<Answer>> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Box::new(Answer::invalid(format!(
                    "{name} must be a positive integer, got {v:?}"
                )))
            }),
        }
    };
    let (size, page) = match (number("pageSize", 10), number("currentPage", 1)) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(a), _) | (_, Err(a)) => return *a,
    };
    settle_abnormal(inner);
    let (style, down) = {
        let s = inner.lock();
        (s.host_style, s.abnormal.unwrap_or(0))
    };
    let group_name = |name: &str| (style == HostStyle::Sdk).then(|| name.to_string());
    let mut all: Vec<Host> = (1..=inner.opts.master_nodes.max(0))
        .map(|i| Host {
            id: format!("{}-master-{i:04}", inner.model.id()),
            name: format!("node-master{i}"),
            ip: format!("192.168.0.{i}"),
            status: style.status(true).into(),
            host_type: style.host_type(None).into(),
            resource_id: Some(format!("res-master-{i}")),
            flavor: Some("c6.4xlarge.4.linux.bigdata".into()),
            node_group_name: group_name("master_node_default_group"),
        })
        .collect();
    let groups = assign_groups(inner);
    let nodes = inner.model.nodes();
    let first_down = nodes.len().saturating_sub(down);
    for (i, n) in nodes.into_iter().enumerate() {
        let short = match n.group {
            NodeGroup::Core => "core",
            NodeGroup::Task => "task",
        };
        let group = groups.get(&n.id).cloned().unwrap_or_default();
        all.push(Host {
            id: n.id.clone(),
            name: format!("node-ana-{short}{:04}", n.serial),
            ip: format!("192.168.{}.{}", 1 + n.serial / 250, 1 + n.serial % 250),
            status: style.status(i < first_down).into(),
            host_type: style.host_type(Some(n.group)).into(),
            resource_id: Some(format!("res-{}", n.id)),
            flavor: Some("c6.2xlarge.4.linux.bigdata".into()),
            node_group_name: group_name(&group),
        });
    }
    let total = all.len();
    let pick: Vec<Host> = all
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect();
    let mut a = match serde_json::to_value(ListHostsResponse {
        hosts: pick,
        total: Some(total as i64),
    }) {
        Ok(v) => Answer::ok(StatusCode::OK, v),
        Err(e) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MRS.300",
            format!("System error: {e}"),
        ),
    };
    a.detail = format!("page {page} of size {size}, {total} hosts");
    a
}

/// A model refusal as Huawei's code.
fn model_error(e: SimError) -> Answer {
    match e {
        SimError::Busy { flow_id } => Answer::error(
            StatusCode::BAD_REQUEST,
            "12000018",
            format!("The cluster is being scaled (operation {flow_id}); try again later"),
        ),
        SimError::NotRunning(r) => Answer::error(
            StatusCode::BAD_REQUEST,
            "12000017",
            format!("The cluster is not in the running state: {r}"),
        ),
        SimError::Quota { limit, requested } => Answer::error(
            StatusCode::BAD_REQUEST,
            "12000030",
            format!(
                "The number of nodes exceeds the quota: {requested} requested, {limit} allowed"
            ),
        ),
        SimError::Invalid(m) => Answer::invalid(m),
        SimError::NodeNotFound(id) => Answer::invalid(format!(
            "server_ids: {id} is not a Task node of the cluster"
        )),
        SimError::Injected(e) => injected_cloud_error(&e),
    }
}

fn injected_cloud_error(e: &CloudError) -> Answer {
    let mut a = Answer::error(status_for(e.class), &e.code, e.message.clone());
    a.detail = format!("injected: {}", e.message);
    a
}

/// `PUT cluster_infos`: validate like MRS, then start the model operation.
fn resize(inner: &Inner, body: &[u8]) -> Answer {
    sync_failure(inner);
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Answer::invalid(format!("the body is not JSON: {e}")),
    };
    for field in ["service_id", "plan_id"] {
        if !v.get(field).is_some_and(Value::is_string) {
            return Answer::invalid(format!("{field} is required (a string)"));
        }
    }
    if !v.get("previous_values").is_some_and(Value::is_object) {
        return Answer::invalid("previous_values is required (an object)");
    }
    let Some(p) = v.get("parameters").and_then(Value::as_object) else {
        return Answer::invalid("parameters is required (an object)");
    };
    if p.get("node_id").and_then(Value::as_str) != Some(NODE_ID_ORDERADD) {
        return Answer::invalid(format!("parameters.node_id must be {NODE_ID_ORDERADD}"));
    }
    let out = match p.get("scale_type").and_then(Value::as_str) {
        Some(SCALE_OUT) => true,
        Some(SCALE_IN) => false,
        other => {
            return Answer::invalid(format!(
                "parameters.scale_type must be scale_out or scale_in, got {other:?}"
            ))
        }
    };
    if let FakeClusterType::Custom(_) = inner.opts.cluster_type {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            CUSTOM_V11_REFUSAL,
            "The operation is not supported: custom clusters cannot be resized through this API; \
             use POST /v2/{project_id}/clusters/{cluster_id}/expand or /shrink",
        );
    }
    let group_name = p
        .get("node_group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = match role_of(inner, group_name).and_then(GroupRole::node_group) {
        Some(g) => g,
        None => {
            return Answer::invalid(format!(
                "parameters.node_group {group_name:?} is not a Core or Task node group of the cluster ({})",
                resizable_names(inner)
            ))
        }
    };
    let group_listed = listed_groups(inner).iter().any(|(n, _, _)| n == group_name);
    let instances = match p.get("instances") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        _ => None,
    };
    let Some(instances) = instances.filter(|n| *n > 0 && *n <= i64::from(MAX_TOTAL)) else {
        return Answer::invalid("parameters.instances must be a positive integer");
    };
    let instances = instances as i32;
    for flag in ["skip_bootstrap_scripts", "scale_without_start"] {
        match p.get(flag) {
            None | Some(Value::Bool(_)) => {}
            Some(Value::String(s)) if s == "true" || s == "false" => {}
            Some(other) => {
                return Answer::invalid(format!("parameters.{flag} must be a boolean, got {other}"))
            }
        }
    }
    let server_ids: Option<Vec<String>> = match p.get("server_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let ids: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if ids.len() != a.len() {
                return Answer::invalid("parameters.server_ids must be a list of strings");
            }
            Some(ids)
        }
        Some(_) => return Answer::invalid("parameters.server_ids must be a list"),
    };

    // State first: a busy or stopped cluster refuses any resize.
    if inner.model.operation().is_some() {
        let flow = inner
            .model
            .operation()
            .map(|o| o.flow_id)
            .unwrap_or_default();
        return model_error(SimError::Busy { flow_id: flow });
    }
    if let Some(state) = inner.lock().state_override.clone() {
        return model_error(SimError::NotRunning(state));
    }
    settle_abnormal(inner);
    if let Some(down) = inner.lock().abnormal {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "12000080",
            format!("{down} nodes in the cluster are not running. Try again later."),
        );
    }
    let c = match counts(inner) {
        Ok(c) => c,
        Err(a) => return *a,
    };
    let mut task_spec = None;
    if out {
        let room = MAX_TOTAL - c.core - c.task;
        if instances > room {
            return Answer::invalid(format!(
                "instances {instances} exceeds the limit: at most {room} nodes can be added (500 minus {} Core and Task nodes)",
                c.core + c.task
            ));
        }
        if server_ids.is_some() {
            return Answer::invalid("server_ids applies to Task scale-in only");
        }
        if group == NodeGroup::Task && !group_listed {
            match validate_task_node_info(p.get("task_node_info")) {
                Ok(spec) => task_spec = Some(spec),
                Err(a) => return *a,
            }
        }
    } else {
        match group {
            NodeGroup::Core => {
                if server_ids.is_some() {
                    return Answer::invalid("server_ids applies to Task scale-in only");
                }
                if c.core - instances < MIN_CORE {
                    return Answer::invalid(format!(
                        "scale-in needs more than {MIN_CORE} Core nodes to remain: {} Core nodes, {instances} requested",
                        c.core
                    ));
                }
            }
            NodeGroup::Task => {
                if instances > c.task {
                    return Answer::invalid(format!(
                        "instances {instances} exceeds the {} Task nodes",
                        c.task
                    ));
                }
                if let Some(ids) = &server_ids {
                    let mut unique = ids.clone();
                    unique.sort();
                    unique.dedup();
                    if ids.len() != instances as usize || unique.len() != ids.len() {
                        return Answer::invalid(format!(
                            "server_ids must list {instances} distinct nodes, got {}",
                            ids.len()
                        ));
                    }
                }
            }
        }
    }
    let result = if out {
        inner.model.scale_out(group, instances, None)
    } else {
        // Named nodes, else (when the role has several groups) the group's
        // newest, so that only this group shrinks.
        let prefer = match &server_ids {
            Some(ids) => ids.clone(),
            None if role_groups(inner, group) > 1 => newest_of_group(inner, group_name),
            None => Vec::new(),
        };
        inner.model.scale_in(group, instances, &prefer, None)
    };
    match result {
        Ok(sub) => {
            let mut s = inner.lock();
            s.scale_error = None;
            s.last_direction_out = out;
            if out {
                s.pending_group = sub.flow_id.clone().map(|f| (f, group_name.to_string()));
            }
            s.abnormal_when_done = s.abnormal_armed.take();
            if let Some(spec) = task_spec {
                s.task_group_spec = Some(spec);
            }
            let mut a = Answer::ok(StatusCode::OK, json!({"result": RESULT_SUCCEEDED}));
            a.write = true;
            a.detail = format!(
                "{} {group_name} {instances}{}",
                if out { SCALE_OUT } else { SCALE_IN },
                if sub.node_ids.is_empty() {
                    String::new()
                } else {
                    format!(" nodes {}", sub.node_ids.join(","))
                }
            );
            a
        }
        Err(SimError::Injected(e)) if e.code == "ResponseLost" => {
            // Applied, but the answer is "lost": a gateway timeout.
            let flow = inner.model.operation().map(|op| op.flow_id);
            let mut s = inner.lock();
            s.scale_error = None;
            s.last_direction_out = out;
            if out {
                s.pending_group = flow.map(|f| (f, group_name.to_string()));
            }
            s.abnormal_when_done = s.abnormal_armed.take();
            let mut a = Answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                "APIGW.0201",
                "Request timeout (injected: the resize was applied)",
            );
            a.write = true;
            a
        }
        Err(e) => model_error(e),
    }
}

fn validate_task_node_info(v: Option<&Value>) -> Result<Value, Box<Answer>> {
    let refuse = |m: String| Box::new(Answer::invalid(m));
    let Some(info) = v.and_then(Value::as_object) else {
        return Err(refuse(
            "task_node_info is required when the cluster has no Task nodes".into(),
        ));
    };
    let size = info
        .get("node_size")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if size.is_empty() {
        return Err(refuse("task_node_info.node_size is required".into()));
    }
    let kind = info
        .get("data_volume_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !["SATA", "SAS", "SSD", "GPSSD"].contains(&kind) {
        return Err(refuse(format!(
            "task_node_info.data_volume_type must be SATA, SAS, SSD or GPSSD, got {kind:?}"
        )));
    }
    for field in ["data_volume_count", "data_volume_size"] {
        let n = info.get(field).and_then(Value::as_i64).unwrap_or(0);
        if n <= 0 {
            return Err(refuse(format!(
                "task_node_info.{field} must be a positive integer"
            )));
        }
    }
    Ok(Value::Object(info.clone()))
}

// --- node groups and MRS v2 (cloud-apis.md C1) -----------------------------

/// The role of group `name` in the cluster's layout.
fn role_of(inner: &Inner, name: &str) -> Option<GroupRole> {
    inner
        .opts
        .layout()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r)
}

/// How many groups have `group`'s role.
fn role_groups(inner: &Inner, group: NodeGroup) -> usize {
    inner
        .opts
        .layout()
        .iter()
        .filter(|(_, r)| r.node_group() == Some(group))
        .count()
}

/// The Core and Task group names, for messages.
fn resizable_names(inner: &Inner) -> String {
    inner
        .opts
        .layout()
        .into_iter()
        .filter(|(_, r)| *r != GroupRole::Master)
        .map(|(n, _)| n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every model node's group. A node not seen before belongs to the group
/// whose expand runs (or ran: one operation at a time) when its role is that
/// group's, else to the first group of its role.
fn assign_groups(inner: &Inner) -> HashMap<String, String> {
    let layout = inner.opts.layout();
    let nodes = inner.model.nodes();
    let running = inner.model.operation().map(|op| op.flow_id);
    let mut s = inner.lock();
    let pending = s.pending_group.clone();
    for n in &nodes {
        if s.node_group.contains_key(&n.id) {
            continue;
        }
        let role_of = |g: &str| layout.iter().find(|(x, _)| x == g).map(|(_, r)| *r);
        let group = match &pending {
            Some((_, g)) if role_of(g).and_then(GroupRole::node_group) == Some(n.group) => {
                g.clone()
            }
            _ => layout
                .iter()
                .find(|(_, r)| r.node_group() == Some(n.group))
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
        };
        s.node_group.insert(n.id.clone(), group);
    }
    if pending.is_some_and(|(flow, _)| running.as_deref() != Some(flow.as_str())) {
        s.pending_group = None;
    }
    s.node_group
        .retain(|id, _| nodes.iter().any(|n| &n.id == id));
    s.node_group.clone()
}

/// The groups ShowClusterDetails lists, with their roles and node counts
/// (master: 0 here; shown with `master_nodes`). An analysis cluster's Task
/// group exists once it has had nodes (v1.1 creates it with
/// `task_node_info`); every other group exists from the start.
fn listed_groups(inner: &Inner) -> Vec<(String, GroupRole, i32)> {
    let groups = assign_groups(inner);
    let task_spec = inner.lock().task_group_spec.is_some();
    let analysis = inner.opts.cluster_type == FakeClusterType::Analysis;
    inner
        .opts
        .layout()
        .into_iter()
        .map(|(name, role)| {
            let n = groups.values().filter(|g| **g == name).count() as i32;
            (name, role, n)
        })
        .filter(|(name, role, n)| {
            let own = !inner.opts.extra_task_groups.contains(name);
            !(analysis && own && *role == GroupRole::Task && *n == 0 && !task_spec)
        })
        .collect()
}

/// The model ids of `group`'s nodes, newest first.
fn newest_of_group(inner: &Inner, group: &str) -> Vec<String> {
    let groups = assign_groups(inner);
    let mut nodes: Vec<SimNode> = inner
        .model
        .nodes()
        .into_iter()
        .filter(|n| groups.get(&n.id).map(String::as_str) == Some(group))
        .collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(n.serial));
    nodes.into_iter().map(|n| n.id).collect()
}

/// The model nodes an `abnormal` cluster shows as not running (the last ones listed).
fn down_nodes(inner: &Inner) -> Vec<String> {
    settle_abnormal(inner);
    let down = inner.lock().abnormal.unwrap_or(0);
    let nodes = inner.model.nodes();
    let first_down = nodes.len().saturating_sub(down);
    nodes.into_iter().skip(first_down).map(|n| n.id).collect()
}

fn is_prepaid(inner: &Inner, group: &str) -> bool {
    inner
        .settings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .prepaid
        .iter()
        .any(|g| g == group)
}

/// The refusals of a busy, stopped or (unless `abnormal_ok`) abnormal cluster.
fn refuse_unless_ready(inner: &Inner, abnormal_ok: bool) -> Option<Answer> {
    if let Some(op) = inner.model.operation() {
        return Some(model_error(SimError::Busy {
            flow_id: op.flow_id,
        }));
    }
    if let Some(state) = inner.lock().state_override.clone() {
        return Some(model_error(SimError::NotRunning(state)));
    }
    settle_abnormal(inner);
    if let Some(down) = inner.lock().abnormal {
        if !abnormal_ok {
            return Some(Answer::error(
                StatusCode::BAD_REQUEST,
                "12000080",
                format!("{down} nodes in the cluster are not running. Try again later."),
            ));
        }
    }
    None
}

/// A v2 body's `node_group_name`: a Core or Task group the cluster lists.
fn v2_group(inner: &Inner, v: &Value) -> Result<(String, NodeGroup), Box<Answer>> {
    let name = v
        .get("node_group_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(Box::new(Answer::invalid(format!(
            "node_group_name {name:?} must be 1-64 letters, digits, '_' or '-'"
        ))));
    }
    let role = role_of(inner, &name);
    match role {
        Some(GroupRole::Master) => Err(Box::new(Answer::invalid(format!(
            "node group {name} holds the master nodes and cannot be resized"
        )))),
        Some(role) if listed_groups(inner).iter().any(|(n, _, _)| *n == name) => {
            Ok((name, role.node_group().unwrap_or(NodeGroup::Task)))
        }
        _ => Err(Box::new(Answer::invalid(format!(
            "node_group_name {name:?} is not a node group of the cluster ({})",
            resizable_names(inner)
        )))),
    }
}

/// An optional Boolean of a v2 body (the reference types them Boolean).
fn v2_flag(v: &Value, field: &str) -> Result<Option<bool>, Box<Answer>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Box::new(Answer::invalid(format!(
            "{field} must be a boolean, got {other}"
        )))),
    }
}

/// `POST /v2/{project_id}/clusters/{cluster_id}/expand` (`ExpandParam`).
fn expand(inner: &Inner, body: &[u8]) -> Answer {
    sync_failure(inner);
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Answer::invalid("the body is not a JSON object"),
        Err(e) => return Answer::invalid(format!("the body is not JSON: {e}")),
    };
    let (name, group) = match v2_group(inner, &v) {
        Ok(g) => g,
        Err(a) => return *a,
    };
    let Some(count) = v
        .get("count")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0 && *n <= i64::from(MAX_TOTAL))
    else {
        return Answer::invalid("count must be a positive integer");
    };
    let count = count as i32;
    let (skip, without_start) = match (
        v2_flag(&v, "skip_bootstrap_scripts"),
        v2_flag(&v, "scale_without_start"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), _) | (_, Err(a)) => return *a,
    };
    if v.get("az_code")
        .is_some_and(|a| !a.is_string() && !a.is_null())
    {
        return Answer::invalid("az_code must be a string");
    }
    if let Some(a) = refuse_unless_ready(inner, false) {
        return a;
    }
    let c = match counts(inner) {
        Ok(c) => c,
        Err(a) => return *a,
    };
    let room = MAX_TOTAL - c.core - c.task;
    if count > room {
        return Answer::invalid(format!(
            "count {count} exceeds the limit: at most {room} nodes can be added (500 minus {} Core and Task nodes)",
            c.core + c.task
        ));
    }
    // v2's defaults when the flags are absent: skip the scripts, start the components.
    let flags = format!(
        "skip_bootstrap_scripts={} scale_without_start={}",
        skip.map_or("absent (true)".to_string(), |b| b.to_string()),
        without_start.map_or("absent (false)".to_string(), |b| b.to_string())
    );
    if is_prepaid(inner, &name) {
        let seq = {
            let mut s = inner.lock();
            s.orders += 1;
            s.orders
        };
        let order_id = format!(
            "CS{}{:05}",
            inner.options.clock.now().strftime("%y%m%d%H%M"),
            seq
        );
        let mut a = Answer::ok(
            StatusCode::OK,
            json!({"result": RESULT_SUCCEEDED, "order_id": order_id}),
        );
        a.detail = format!(
            "expand {name} {count} ({flags}): prepaid group, order {order_id} opened, nothing scales until it is paid"
        );
        return a;
    }
    match inner.model.scale_out(group, count, None) {
        Ok(sub) => {
            let mut s = inner.lock();
            s.scale_error = None;
            s.last_direction_out = true;
            s.abnormal_when_done = s.abnormal_armed.take();
            s.pending_group = sub.flow_id.map(|f| (f, name.clone()));
            let mut a = Answer::ok(
                StatusCode::OK,
                json!({"result": RESULT_SUCCESS_PAY_PER_USE}),
            );
            a.write = true;
            a.detail = format!("expand {name} {count} ({flags})");
            a
        }
        Err(SimError::Injected(e)) if e.code == "ResponseLost" => {
            let flow = inner.model.operation().map(|op| op.flow_id);
            let mut s = inner.lock();
            s.scale_error = None;
            s.last_direction_out = true;
            s.pending_group = flow.map(|f| (f, name.clone()));
            let mut a = Answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                "APIGW.0201",
                "Request timeout (injected: the expand was applied)",
            );
            a.write = true;
            a
        }
        Err(e) => model_error(e),
    }
}

/// What a pay-per-use group's accepted expand answers (`ExpandClusterResponse`).
const RESULT_SUCCESS_PAY_PER_USE: &str = "success";

/// `POST /v2/{project_id}/clusters/{cluster_id}/shrink` (`ShrinkParam`).
fn shrink(inner: &Inner, body: &[u8]) -> Answer {
    sync_failure(inner);
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Answer::invalid("the body is not a JSON object"),
        Err(e) => return Answer::invalid(format!("the body is not JSON: {e}")),
    };
    let (name, group) = match v2_group(inner, &v) {
        Ok(g) => g,
        Err(a) => return *a,
    };
    let resource_ids: Vec<String> = match v.get("resource_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let ids: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if ids.len() != a.len() {
                return Answer::invalid("resource_ids must be a list of strings");
            }
            ids
        }
        Some(_) => return Answer::invalid("resource_ids must be a list"),
    };
    let count = match v.get("count") {
        None | Some(Value::Null) if !resource_ids.is_empty() => resource_ids.len() as i64,
        None | Some(Value::Null) => {
            return Answer::invalid("count is required when resource_ids is empty")
        }
        Some(n) => match n.as_i64() {
            Some(n) if n > 0 => n,
            _ => return Answer::invalid("count must be a positive integer"),
        },
    };
    if let Err(a) = v2_flag(&v, "force_delete") {
        return *a;
    }
    if let Some(a) = refuse_unless_ready(inner, !resource_ids.is_empty()) {
        return a;
    }
    if is_prepaid(inner, &name) {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "12000065",
            format!("Operation not allowed: node group {name} is yearly/monthly (prepaid)"),
        );
    }
    let in_group = newest_of_group(inner, &name);
    if count > in_group.len() as i64 {
        return Answer::invalid(format!(
            "count {count} exceeds the {} nodes of node group {name}",
            in_group.len()
        ));
    }
    let count = count as i32;
    if group == NodeGroup::Core {
        let c = match counts(inner) {
            Ok(c) => c,
            Err(a) => return *a,
        };
        if c.core - count < MIN_CORE {
            return Answer::invalid(format!(
                "scale-in needs more than {MIN_CORE} Core nodes to remain: {} Core nodes, {count} requested",
                c.core
            ));
        }
    }
    // Named nodes: of this group, abnormal only, removed by force.
    let down = down_nodes(inner);
    let mut prefer = Vec::new();
    for rid in &resource_ids {
        let Some(id) = in_group.iter().find(|id| resource_id_of(id) == *rid) else {
            return Answer::invalid(format!(
                "resource_ids: {rid} is not a node of node group {name}"
            ));
        };
        if !down.contains(id) {
            return Answer::invalid(format!(
                "resource_ids: {rid} is running; only abnormal nodes can be named"
            ));
        }
        if !prefer.contains(id) {
            prefer.push(id.clone());
        }
    }
    let named = prefer.len();
    prefer.extend(
        in_group
            .iter()
            .filter(|id| !prefer.contains(id))
            .cloned()
            .collect::<Vec<_>>(),
    );
    match inner.model.scale_in(group, count, &prefer, None) {
        Ok(sub) => {
            let mut s = inner.lock();
            s.scale_error = None;
            s.last_direction_out = false;
            s.abnormal_when_done = s.abnormal_armed.take();
            if named > 0 {
                // The abnormal nodes named go; the cluster heals when none is left.
                s.abnormal = s
                    .abnormal
                    .and_then(|d| d.checked_sub(named))
                    .filter(|d| *d > 0);
            }
            let mut a = Answer::ok(StatusCode::OK, json!({"result": RESULT_SUCCEEDED}));
            a.write = true;
            a.detail = format!("shrink {name} {count} nodes {}", sub.node_ids.join(","));
            a
        }
        Err(e) => model_error(e),
    }
}

/// ListNodes' and ListHosts' `resource_id` of a model node.
fn resource_id_of(id: &str) -> String {
    format!("res-{id}")
}

/// `GET /v2/{project_id}/clusters/{cluster_id}/nodes` (`ListNodesRequest`,
/// `ListNodesResponse`): `limit` 1-100 (default 10), `offset` a page number
/// from 1 (default 1), `node_group` a filter.
fn list_nodes(inner: &Inner, query: &[(String, String)]) -> Answer {
    let number = |name: &str, default: usize, max: usize| -> Result<usize, Box<Answer>> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    Box::new(Answer::invalid(format!(
                        "{name} must be an integer from 1 to {max}, got {v:?}"
                    )))
                }),
        }
    };
    let (limit, page) = match (number("limit", 10, 100), number("offset", 1, usize::MAX)) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(a), _) | (_, Err(a)) => return *a,
    };
    let filter = query
        .iter()
        .find(|(k, _)| k == "node_group")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty());
    let groups = assign_groups(inner);
    let down = down_nodes(inner);
    let prepaid = inner
        .settings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .prepaid
        .clone();
    let layout = inner.opts.layout();
    let master_group = layout
        .iter()
        .find(|(_, r)| *r == GroupRole::Master)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let node = |id: String, name: String, group: &str, role: GroupRole, ip: String, ok: bool| {
        let billing = if prepaid.iter().any(|g| g == group) {
            BILLING_ON_PERIOD
        } else {
            BILLING_ON_QUANTITY
        };
        ClusterNode {
            node_name: Some(name.clone()),
            resource_id: Some(resource_id_of(&id)),
            node_group_name: Some(group.to_string()),
            node_type: Some(role.node_type().to_string()),
            billing_type: Some(billing.to_string()),
            deployment_type: "Server".into(),
            server_info: Some(ServerInfo {
                server_id: id,
                server_name: name,
                server_type: "ECS".into(),
                cpu_type: Some("x86".into()),
                cpu: Some("8".into()),
                mem: Some("32768".into()),
                internal_ip: Some(ip),
            }),
            tags: Some(Vec::new()),
            node_status: Some(if ok { "running" } else { "abnormal" }.into()),
        }
    };
    let mut all: Vec<ClusterNode> = (1..=inner.opts.master_nodes.max(0))
        .map(|i| {
            node(
                format!("{}-master-{i:04}", inner.model.id()),
                format!("node-master{i}"),
                &master_group,
                GroupRole::Master,
                format!("192.168.0.{i}"),
                true,
            )
        })
        .collect();
    for n in inner.model.nodes() {
        let group = groups.get(&n.id).cloned().unwrap_or_default();
        let role = role_of(inner, &group).unwrap_or(GroupRole::Task);
        let ok = !down.contains(&n.id);
        all.push(node(
            n.id.clone(),
            format!("node-{group}-{:04}", n.serial),
            &group,
            role,
            format!("192.168.{}.{}", 1 + n.serial / 250, 1 + n.serial % 250),
            ok,
        ));
    }
    if let Some(g) = &filter {
        all.retain(|n| n.node_group_name.as_deref() == Some(g.as_str()));
    }
    let total = all.len();
    let pick: Vec<ClusterNode> = all
        .into_iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .collect();
    let mut a = match serde_json::to_value(ListNodesResponse {
        nodes: pick,
        node_total: Some(total as i64),
    }) {
        Ok(v) => Answer::ok(StatusCode::OK, v),
        Err(e) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MRS.300",
            format!("System error: {e}"),
        ),
    };
    a.detail = format!(
        "page {page} of limit {limit}, {total} nodes{}",
        filter.map(|g| format!(" of {g}")).unwrap_or_default()
    );
    a
}

/// `GET /v2/{project_id}/autoscaling-policy/{cluster_id}`: a JSON array of
/// `AutoScalingPolicyV2`, one per configured policy.
fn policies(inner: &Inner) -> Answer {
    let settings = inner
        .settings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let list: Vec<AutoScalingPolicyV2> = settings
        .policies
        .iter()
        .map(|p| AutoScalingPolicyV2 {
            node_group_name: Some(p.group.clone()),
            resource_pool_name: "default".into(),
            auto_scaling_policy: Some(AutoScalingPolicy {
                auto_scaling_enable: p.enabled,
                min_capacity: p.min,
                max_capacity: p.max,
                resources_plans: Some(Vec::new()),
                rules: Some(vec![json!({
                    "name": "default-expand-1",
                    "adjustment_type": "scale_out",
                    "cool_down_minutes": 5,
                    "scaling_adjustment": 1,
                    "trigger": {"metric_name": "YARNAppPending", "metric_value": "10",
                                "comparison_operator": "GT", "evaluation_periods": 10}
                })]),
                exec_scripts: None,
            }),
        })
        .collect();
    match serde_json::to_value(list) {
        Ok(v) => Answer::ok(StatusCode::OK, v),
        Err(e) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MRS.300",
            format!("System error: {e}"),
        ),
    }
}

/// `PUT /_fake/prepaid` (`{"groups": [...]}`) and `PUT /_fake/autoscaling`
/// (`{"policies": [{"group", "enabled", "min", "max"}]}`): the account's
/// [`GroupSettings`], for a fake run as a process.
fn group_routes(settings: Arc<Mutex<GroupSettings>>) -> Router {
    #[derive(serde::Deserialize)]
    struct Prepaid {
        groups: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Policies {
        policies: Vec<FakePolicy>,
    }
    async fn prepaid(
        State(s): State<Arc<Mutex<GroupSettings>>>,
        axum::Json(b): axum::Json<Prepaid>,
    ) -> StatusCode {
        s.lock().unwrap_or_else(|e| e.into_inner()).prepaid = b.groups;
        StatusCode::NO_CONTENT
    }
    async fn autoscaling(
        State(s): State<Arc<Mutex<GroupSettings>>>,
        axum::Json(b): axum::Json<Policies>,
    ) -> StatusCode {
        s.lock().unwrap_or_else(|e| e.into_inner()).policies = b.policies;
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/_fake/prepaid", axum::routing::put(prepaid))
        .route("/_fake/autoscaling", axum::routing::put(autoscaling))
        .with_state(settings)
}
