//! The cloud boundary: one trait that every cloud implements, the observed
//! state it returns, and one error type that keeps the cloud's own code,
//! message and request id.

pub mod credentials;
pub mod fence;
pub mod http;
pub mod keys;
pub mod provider;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::api::ErrorClass;
use crate::api::{CloudKind, Direction, NodeGroup, OperationRecord, TaskPoolSpec};

/// The cluster's lifecycle state, normalised across clouds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Idle and running: the only state in which we act.
    Running,
    /// An operation (ours or anybody's) is under way.
    Busy(String),
    /// The cluster is in a failed state (e.g. Tencent 301/302).
    Failed(String),
    /// Creating, terminated, frozen, isolated, ...: not ours to touch.
    Unavailable(String),
}

impl ClusterState {
    pub fn is_running(&self) -> bool {
        matches!(self, ClusterState::Running)
    }

    /// Short name for status: running, busy, failed, unavailable.
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterState::Running => "running",
            ClusterState::Busy(_) => "busy",
            ClusterState::Failed(_) => "failed",
            ClusterState::Unavailable(_) => "unavailable",
        }
    }

    /// The cloud's raw state, or the kind when there is none.
    pub fn detail(&self) -> &str {
        match self {
            ClusterState::Running => "running",
            ClusterState::Busy(d) | ClusterState::Failed(d) | ClusterState::Unavailable(d) => d,
        }
    }
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterState::Running => f.write_str("running"),
            other => write!(f, "{} ({})", other.kind(), other.detail()),
        }
    }
}

/// One node of the cluster, as far as scale-in needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The id a scale-in call takes (Tencent EmrResourceId, Huawei host id).
    pub id: String,
    pub group: NodeGroup,
    /// The cloud allows removing it.
    pub removable: bool,
    /// Sort key for "most recently added first"; larger is newer.
    pub added_order: i64,
}

/// What `observe` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedCluster {
    pub state: ClusterState,
    pub core: i32,
    /// The default Task pool (`spec.task`): Task nodes in no named pool.
    pub task: i32,
    /// Nodes of each named pool (`spec.taskPools`) the cloud reported, by
    /// name; a pool it did not report is absent (a cloud without
    /// [`Capabilities::named_pools`] reports none).
    pub pools: BTreeMap<String, i32>,
    /// Nodes, when the cloud lists them (may be empty).
    pub nodes: Vec<Node>,
    /// The cloud reports that the last resize failed while the cluster stays
    /// running (Huawei `scale: scaling-error`).
    pub last_resize_failed: Option<String>,
    /// Nodes the cluster has that the operator does not manage: not in
    /// `core`/`task`, never chosen for removal, reported in status.
    pub unmanaged: UnmanagedNodes,
}

/// Nodes listed by the cloud that are not the operator's to count or remove.
/// The counts in the spec are the nodes the operator manages; these belong
/// to the cloud's own autoscaler, or are pod resources, not machines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnmanagedNodes {
    /// Core nodes the cloud's autoscaler added (Tencent `AutoFlag = 1`).
    pub auto_scaled_core: i32,
    /// Task nodes the cloud's autoscaler added (Tencent `AutoFlag = 1`).
    pub auto_scaled_task: i32,
    /// Pod resources (Tencent `HardwareResourceType = pod`), any group.
    pub pods: i32,
    /// Task nodes the operator added to a pool that `spec.taskPools` no
    /// longer lists (Tencent: tagged `clusterscale.io/pool=<name>`), by pool
    /// name: in no pool, never removed, but counted toward the 500 limit
    /// ([`ObservedCluster::total`]).
    pub unlisted_pools: std::collections::BTreeMap<String, i32>,
}

impl ObservedCluster {
    /// Core, or the default Task pool.
    pub fn count(&self, group: NodeGroup) -> i32 {
        match group {
            NodeGroup::Core => self.core,
            NodeGroup::Task => self.task,
        }
    }

    /// Core, the default Task pool (`pool` None), or the named pool `pool`
    /// (0 when the cloud did not report it).
    pub fn count_of(&self, group: NodeGroup, pool: Option<&str>) -> i32 {
        match pool {
            None => self.count(group),
            Some(name) => self.pools.get(name).copied().unwrap_or(0),
        }
    }

    /// Every node the operator added: Core, the default Task pool, every
    /// named pool, and the pools the spec no longer lists (the 500 limit
    /// counts them all).
    pub fn total(&self) -> i32 {
        self.core
            + self.task
            + self.pools.values().sum::<i32>()
            + self.unmanaged.unlisted_pools.values().sum::<i32>()
    }
}

/// What each cloud can do; the planner refuses (Blocked) anything outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub scale_out_core: bool,
    pub scale_out_task: bool,
    pub scale_in_core: bool,
    pub scale_in_task: bool,
    /// Named Task pools (`spec.taskPools`): the cloud observes each pool
    /// ([`Cloud::observe_pools`]) and scales it ([`ScaleRequest::pool`]).
    /// Without it, a pool's step is Blocked (Unsupported) and the planner
    /// moves on to the other groups.
    pub named_pools: bool,
    /// Graceful decommission with a timeout.
    pub graceful_scale_in: bool,
    /// Largest count one scale-out call accepts, when the cloud limits it.
    pub max_out_per_call: Option<i32>,
    /// Scale-out calls carry an idempotency token that the cloud deduplicates
    /// (Tencent `ScaleOutInstance` `ClientToken`, for 5 minutes): an
    /// unconfirmed scale-out may be re-sent with the same token. Scale-in calls
    /// of both clouds carry none, so an unconfirmed scale-in, like any call to
    /// a cloud without tokens, is only ever resolved by observation.
    pub idempotent_scale_out: bool,
    /// How long after the first send an unconfirmed scale-out may be re-sent
    /// with the same token ([`idempotent_scale_out`](Self::idempotent_scale_out)):
    /// inside the window in which the cloud deduplicates it, well clear of
    /// its end (Tencent keeps a ClientToken for 5 minutes; 240 s). Without
    /// tokens it is never consulted.
    pub token_window: Duration,
    /// How long the cloud may take to show an accepted operation (state or
    /// counts). An unconfirmed call (its effect [`Effect::Unknown`]) with no
    /// visible effect after this long is declared not applied. A refused call
    /// ([`Effect::Refused`]) never waits it.
    pub acceptance_grace: Duration,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities {
        scale_out_core: true,
        scale_out_task: true,
        scale_in_core: true,
        scale_in_task: true,
        named_pools: true,
        graceful_scale_in: true,
        max_out_per_call: None,
        idempotent_scale_out: true,
        token_window: Duration::from_secs(240),
        acceptance_grace: Duration::from_secs(60),
    };

    pub fn supports(&self, group: NodeGroup, direction: Direction) -> bool {
        match (group, direction) {
            (NodeGroup::Core, Direction::Out) => self.scale_out_core,
            (NodeGroup::Task, Direction::Out) => self.scale_out_task,
            (NodeGroup::Core, Direction::In) => self.scale_in_core,
            (NodeGroup::Task, Direction::In) => self.scale_in_task,
        }
    }
}

/// One scale call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleRequest {
    pub group: NodeGroup,
    /// The named Task pool to scale (`group` is Task), with its cloud block
    /// (`tencent.chargeType`, `huawei.nodeGroup`, ...); `None` for Core and
    /// the default Task pool.
    pub pool: Option<TaskPoolSpec>,
    /// Nodes to add or remove.
    pub count: i32,
    /// Group size before the call (as observed when planned).
    pub from_count: i32,
    /// Idempotency token; the same for every retry of one logical operation.
    pub token: String,
    /// Scale-in: node ids to remove first.
    pub prefer_nodes: Vec<String>,
    /// Scale-in: graceful decommission timeout, 0 = off.
    pub graceful_timeout_seconds: i32,
}

/// What the cloud answered to an accepted scale call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submitted {
    pub request_id: Option<String>,
    pub flow_id: Option<String>,
    pub trace_id: Option<String>,
    /// Nodes chosen for removal.
    pub node_ids: Vec<String>,
    /// Scale-in: preferred nodes (`spec.scaleIn.preferNodes`) that this call
    /// could not name for removal (not a node of the group, or the cloud takes
    /// no node ids for it). The engine reports them in status and an Event.
    pub unmatched_preferred: Vec<String>,
}

/// Progress of an accepted operation, as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationProgress {
    Running,
    Succeeded,
    Failed(String),
    /// The cloud keeps no per-operation record; decide from state and counts.
    Unknown,
    /// The cloud reports the operation over but only partly done (a Tencent
    /// stage with `Status` 3): the counts decide whether it reached its target.
    PartiallyCompleted(String),
}

impl ErrorClass {
    /// How long to wait before trying again after this class of error.
    pub fn retry_after(self) -> Duration {
        match self {
            ErrorClass::Throttled => Duration::from_secs(5),
            ErrorClass::Busy => Duration::from_secs(15),
            ErrorClass::Transient => Duration::from_secs(10),
            ErrorClass::Capacity | ErrorClass::Quota => Duration::from_secs(300),
            // Huawei locks an AK for 5 minutes after 5 bad signatures.
            ErrorClass::Auth => Duration::from_secs(600),
            ErrorClass::Invalid | ErrorClass::NotFound | ErrorClass::Billing => {
                Duration::from_secs(900)
            }
        }
    }

    /// True when trying again (after the class's [`retry_after`](Self::retry_after))
    /// can succeed without anybody changing the spec, the credentials or the
    /// account: rate limits, a locked cluster, a transient fault. The others
    /// stop `clusterscale apply --wait` and back off slowly in the controller.
    ///
    /// This says nothing about whether a failed write took effect: that is
    /// [`CloudError::effect`].
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled | ErrorClass::Busy | ErrorClass::Transient
        )
    }
}

/// Whether a failed call could have taken effect in the cloud. A separate
/// property from [`ErrorClass`]: the class says what to do next (retry soon,
/// retry slowly, stop), the effect says whether the write may have happened,
/// and so whether it may be planned again at once or must first be resolved
/// by observation.
///
/// Why the line is drawn here: an answer that carries the cloud's own error
/// envelope and code (Tencent `Response.Error`, Huawei
/// `{"error_code": ...}`, even with HTTP 500 `MRS.300`) was written by the
/// service that handled the request, after it decided not to act. Retrying
/// it is a new request, planned from a fresh observation, with the class's
/// backoff: no acceptance grace, no same-token re-send. Only when the service
/// itself did not answer is the outcome unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Effect {
    /// Nothing was applied: the service refused the request in its own
    /// envelope, or the request never left this process (a check before the
    /// call, a connection that could not be opened, a request that could not
    /// be signed).
    #[default]
    Refused,
    /// The request may have been applied: the answer never came (timeout or
    /// reset after the request was sent), a gateway or proxy answered in its
    /// place (HTTP 502/503/504 without the cloud's envelope, or with an API
    /// gateway's own code such as Huawei `APIGW.0201`: the gateway does not
    /// know what the backend did), or the body could not be read. Resolved by
    /// observation: same-token re-send on Tencent, the acceptance grace on
    /// Huawei.
    Unknown,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Refused => "refused",
            Effect::Unknown => "unknown",
        }
    }
}

/// A failed cloud call, with everything the cloud told us.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{action} failed: {class} {code}: {message}{}", request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
pub struct CloudError {
    pub class: ErrorClass,
    /// The cloud's own code, verbatim (e.g. `ResourceInUse.InstanceInProcess`, `12000018`).
    pub code: String,
    /// The cloud's own message, verbatim.
    pub message: String,
    pub request_id: Option<String>,
    /// The action or API that failed (e.g. `ScaleOutInstance`, `PUT cluster_infos`).
    pub action: String,
    /// Whether the call may have taken effect ([`Effect`]).
    pub effect: Effect,
    /// What few errors carry, boxed: every `Result` of a call has this
    /// error's size.
    rare: Option<Box<Rare>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rare {
    /// Wait this long before trying again, instead of the class's default
    /// (e.g. slow backoff for a code we do not know).
    retry_after: Option<Duration>,
    /// The billing order the refused call opened.
    opened_order: Option<String>,
    /// Refused by the client's own check before any write was sent.
    blocked_by_check: bool,
}

impl CloudError {
    /// An error with a code: a refusal ([`Effect::Refused`]), as every answer
    /// in the cloud's own envelope is, and every check made before a call.
    /// Mark an error whose call may have been applied with
    /// [`effect_unknown`](Self::effect_unknown).
    pub fn new(
        class: ErrorClass,
        action: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
            request_id: None,
            action: action.into(),
            effect: Effect::Refused,
            rare: None,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The call opened billing order `order_id` ([`opened_order`](Self::opened_order)).
    pub fn with_opened_order(mut self, order_id: impl Into<String>) -> Self {
        self.rare().opened_order = Some(order_id.into());
        self
    }

    /// The client's own check refused the call before sending any write
    /// (a prepaid group, an enabled MRS auto-scaling policy, too few
    /// removable nodes, ...): the engine reports the resource `Blocked`, as
    /// the planner's own blocks, not `Failed` (the cloud refused nothing).
    pub fn blocked_by_check(mut self) -> Self {
        self.rare().blocked_by_check = true;
        self
    }

    /// See [`blocked_by_check`](Self::blocked_by_check).
    pub fn is_blocked_by_check(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.blocked_by_check)
    }

    /// The billing order the refused call opened in the cloud (an MRS
    /// expand of a yearly/monthly node group): nothing scales until somebody
    /// pays it, and another call would open another. The engine holds the
    /// group for the rest of the generation (`status.heldWrites`).
    pub fn opened_order(&self) -> Option<&str> {
        self.rare.as_ref()?.opened_order.as_deref()
    }

    /// The same error, with the outcome of the call unknown ([`Effect::Unknown`]).
    pub fn effect_unknown(mut self) -> Self {
        self.effect = Effect::Unknown;
        self
    }

    pub fn with_effect(mut self, effect: Effect) -> Self {
        self.effect = effect;
        self
    }

    /// True when the call may have been applied and must be resolved by
    /// observation before anything is planned again.
    pub fn may_have_applied(&self) -> bool {
        self.effect == Effect::Unknown
    }

    /// Back off this long instead of the class's default.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.rare().retry_after = Some(wait);
        self
    }

    /// How long to wait before trying again.
    pub fn retry_after(&self) -> Duration {
        self.rare
            .as_ref()
            .and_then(|r| r.retry_after)
            .unwrap_or_else(|| self.class.retry_after())
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }
}

/// One managed cluster in one cloud. Implementations hold their own
/// configuration (endpoint, credentials, cluster id) and rate limits.
#[async_trait]
pub trait Cloud: Send + Sync {
    fn kind(&self) -> CloudKind;

    fn capabilities(&self) -> Capabilities;

    /// Read state and node counts, with as few calls as possible: Core, the
    /// default Task pool (Task nodes in none of `pools`) and, in
    /// [`ObservedCluster::pools`], each of `pools` by name. `pools` is the
    /// spec's `taskPools` of this pass: clients outlive spec edits, so they
    /// learn the pools from each call, never from `connect`. A cloud without
    /// [`Capabilities::named_pools`] reports no pool.
    async fn observe_pools(&self, pools: &[TaskPoolSpec]) -> Result<ObservedCluster, CloudError>;

    /// [`observe_pools`](Self::observe_pools) with no named pool. Not to be
    /// overridden: implement `observe_pools`.
    async fn observe(&self) -> Result<ObservedCluster, CloudError> {
        self.observe_pools(&[]).await
    }

    /// Add `req.count` nodes to `req.group` (to the pool `req.pool`, when set).
    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError>;

    /// Remove `req.count` nodes from `req.group` (from the pool `req.pool`,
    /// when set), `req.prefer_nodes` first (empty for a named pool).
    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError>;

    /// Progress of an accepted operation.
    async fn operation_status(&self, op: &OperationRecord)
        -> Result<OperationProgress, CloudError>;
}
