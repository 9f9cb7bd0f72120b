//! An in-process model of a managed Hadoop cluster.
//!
//! [`SimModel`] is the state machine (running / scaling-out / scaling-in /
//! failed), with timed operations, a busy lock, a quota, idempotency tokens,
//! injectable failures and a journal of every call. It backs three things:
//! the `simulated` cloud of the spec ([`SimulatedCloud`]), the wire-compatible
//! fake servers in `clusterscale-fakes`, and the engine's unit tests.

pub mod validate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use clusterscale_core::api::validate::Violation;
use clusterscale_core::api::{
    CloudKind, Direction, NodeGroup, OperationRecord, ScaledClusterSpec, SecretRef, SimulatedSpec,
    TaskPoolSpec, MAX_TOTAL,
};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::provider::{
    CloudProvider, Connect, ConnectError, NoKnobs, SecretKeys,
};
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ClusterState, ErrorClass, Node, ObservedCluster,
    OperationProgress, ScaleRequest, Submitted,
};

/// How long a repeated idempotency token returns the first answer.
pub const TOKEN_WINDOW: Duration = Duration::from_secs(300);

/// Settings of a simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub initial_core: i32,
    pub initial_task: i32,
    /// How long one operation takes.
    pub operation_time: Duration,
    /// Largest Core+Task the account's quota allows (besides the 500 cap).
    pub quota: Option<i32>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            initial_core: 3,
            initial_task: 0,
            operation_time: Duration::from_secs(30),
            quota: None,
        }
    }
}

impl From<&SimulatedSpec> for SimConfig {
    fn from(s: &SimulatedSpec) -> Self {
        Self {
            initial_core: s.initial_core.max(0),
            initial_task: s.initial_task.max(0),
            operation_time: Duration::from_secs(s.operation_seconds.max(0) as u64),
            quota: s.quota,
        }
    }
}

/// Why the model refused a call. The fakes map these to each cloud's codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// An operation is running.
    Busy { flow_id: String },
    /// The cluster is not running (failed or otherwise).
    NotRunning(String),
    /// The quota or the 500 cap would be exceeded.
    Quota { limit: i32, requested: i32 },
    /// Bad parameters (count <= 0, unknown node, below 3 Core, ...).
    Invalid(String),
    /// A node id that the cluster does not have.
    NodeNotFound(String),
    /// An injected failure, returned verbatim.
    Injected(CloudError),
}

/// A node of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNode {
    pub id: String,
    pub group: NodeGroup,
    pub serial: i64,
    pub removable: bool,
}

/// The operation in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOperation {
    pub flow_id: String,
    pub group: NodeGroup,
    /// The named Task pool it scales; `None` for Core and the default Task pool.
    pub pool: Option<String>,
    pub direction: Direction,
    pub count: i32,
    pub node_ids: Vec<String>,
    pub started: Timestamp,
    pub finishes: Timestamp,
    /// The operation will end in failure with this message.
    pub will_fail: Option<String>,
}

/// What became of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowState {
    Running,
    Succeeded,
    Failed(String),
}

/// One journal line: every call the model received.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JournalEntry {
    pub at: Timestamp,
    pub action: String,
    pub detail: String,
    /// ok, or the error.
    pub outcome: String,
    /// True for a call that changed (or started changing) the cluster.
    pub write: bool,
}

/// Failure injection.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Errors returned by the next calls of an action (`observe`, `scale_out`, `scale_in`), in order.
    pub next: HashMap<String, VecDeque<CloudError>>,
    /// The next operations started will fail when they finish.
    pub fail_operations: u32,
    /// Apply the next scale call, but report a transient error to the caller
    /// (the answer is "lost on the way back").
    pub lose_responses: u32,
}

#[derive(Debug)]
struct State {
    /// Core and the default Task pool.
    nodes: Vec<SimNode>,
    /// The nodes of each named Task pool.
    pools: BTreeMap<String, Vec<SimNode>>,
    next_serial: i64,
    next_flow: i64,
    /// Boxed: absent most of the time, and `State` lives in every model.
    operation: Option<Box<SimOperation>>,
    failed: Option<String>,
    flows: Few<FlowState>,
    tokens: Few<(Timestamp, Submitted)>,
    /// The most recent calls, at most `journal_limit` of them.
    journal: VecDeque<JournalEntry>,
    journal_limit: usize,
    /// Every call so far, and those that wrote (the journal may have dropped some).
    calls: u64,
    write_calls: u64,
    faults: Faults,
}

/// The simulated cluster. Cheap to share: wrap it in an `Arc`.
pub struct SimModel {
    id: String,
    config: SimConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for SimModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimModel")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SimModel {
    pub fn new(id: impl Into<String>, config: SimConfig, clock: Arc<dyn Clock>) -> Self {
        let mut state = State {
            nodes: Vec::new(),
            pools: BTreeMap::new(),
            next_serial: 1,
            next_flow: 1000,
            operation: None,
            failed: None,
            flows: Few::default(),
            tokens: Few::default(),
            journal: VecDeque::new(),
            journal_limit: usize::MAX,
            calls: 0,
            write_calls: 0,
            faults: Faults::default(),
        };
        let id: String = id.into();
        for (group, n) in [
            (NodeGroup::Core, config.initial_core),
            (NodeGroup::Task, config.initial_task),
        ] {
            for _ in 0..n {
                add_node(&mut state, &id, group, None);
            }
        }
        Self {
            id,
            config,
            clock,
            state: Mutex::new(state),
        }
    }

    /// Keep only the last `limit` journal lines (none with 0). A model that
    /// serves a long-lived resource (the spec's `simulated` cloud, a fake's
    /// instance) would otherwise grow by one line per observation, forever:
    /// at 10,000 resources that was a third of the operator's heap.
    pub fn with_journal_limit(self, limit: usize) -> Self {
        {
            let mut s = self.lock();
            s.journal_limit = limit;
            while s.journal.len() > limit {
                s.journal.pop_front();
            }
        }
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Complete the running operation if its time has come.
    fn advance(&self, s: &mut State) {
        let now = self.clock.now();
        let due = s.operation.as_ref().is_some_and(|op| now >= op.finishes);
        if !due {
            return;
        }
        let op = s.operation.take().expect("checked above");
        if let Some(reason) = op.will_fail {
            s.failed = Some(reason.clone());
            s.flows.insert(&op.flow_id, FlowState::Failed(reason));
            return;
        }
        match op.direction {
            Direction::Out => {
                for _ in 0..op.count {
                    add_node(s, &self.id, op.group, op.pool.as_deref());
                }
            }
            Direction::In => {
                let nodes = match &op.pool {
                    Some(p) => s.pools.entry(p.clone()).or_default(),
                    None => &mut s.nodes,
                };
                nodes.retain(|n| !op.node_ids.contains(&n.id));
            }
        }
        s.flows.insert(&op.flow_id, FlowState::Succeeded);
    }

    fn record(
        &self,
        s: &mut State,
        action: &str,
        detail: String,
        outcome: &Result<(), String>,
        write: bool,
    ) {
        s.calls += 1;
        s.write_calls += u64::from(write);
        if s.journal_limit == 0 {
            return;
        }
        if s.journal.len() >= s.journal_limit {
            s.journal.pop_front();
        }
        s.journal.push_back(JournalEntry {
            at: self.clock.now(),
            action: action.to_string(),
            detail,
            outcome: match outcome {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            },
            write,
        });
    }

    fn injected(s: &mut State, action: &str) -> Option<CloudError> {
        s.faults.next.get_mut(action).and_then(VecDeque::pop_front)
    }

    /// Current state, counts and nodes.
    pub fn observe(&self) -> Result<ObservedCluster, SimError> {
        let mut s = self.lock();
        self.advance(&mut s);
        if let Some(e) = Self::injected(&mut s, "observe") {
            self.record(
                &mut s,
                "observe",
                String::new(),
                &Err(e.code.clone()),
                false,
            );
            return Err(SimError::Injected(e));
        }
        let state = if let Some(op) = &s.operation {
            ClusterState::Busy(format!("scaling-{}", op.direction.as_str()))
        } else if let Some(reason) = &s.failed {
            ClusterState::Failed(reason.clone())
        } else {
            ClusterState::Running
        };
        let count = |g| s.nodes.iter().filter(|n| n.group == g).count() as i32;
        let observed = ObservedCluster {
            state,
            core: count(NodeGroup::Core),
            task: count(NodeGroup::Task),
            pools: s
                .pools
                .iter()
                .map(|(name, nodes)| (name.clone(), nodes.len() as i32))
                .collect(),
            nodes: s
                .nodes
                .iter()
                .map(|n| Node {
                    id: n.id.clone(),
                    group: n.group,
                    removable: n.removable,
                    added_order: n.serial,
                })
                .collect(),
            last_resize_failed: None,
            unmanaged: Default::default(),
        };
        self.record(&mut s, "observe", String::new(), &Ok(()), false);
        Ok(observed)
    }

    /// The nodes of Core and the default Task pool, for fakes that list them.
    pub fn nodes(&self) -> Vec<SimNode> {
        let mut s = self.lock();
        self.advance(&mut s);
        s.nodes.clone()
    }

    /// Create the named Task pool `name` with `initial` nodes, unless the
    /// model has it already (then nothing changes). Returns whether it was created.
    pub fn add_pool(&self, name: &str, initial: i32) -> bool {
        let mut s = self.lock();
        self.advance(&mut s);
        if s.pools.contains_key(name) {
            return false;
        }
        s.pools.insert(name.to_string(), Vec::new());
        for _ in 0..initial.max(0) {
            add_node(&mut s, &self.id, NodeGroup::Task, Some(name));
        }
        true
    }

    /// The names of the model's named Task pools.
    pub fn pools(&self) -> Vec<String> {
        self.lock().pools.keys().cloned().collect()
    }

    /// The nodes of the named Task pool `name` (empty when there is none).
    pub fn pool_nodes(&self, name: &str) -> Vec<SimNode> {
        let mut s = self.lock();
        self.advance(&mut s);
        s.pools.get(name).cloned().unwrap_or_default()
    }

    /// The running operation, if any.
    pub fn operation(&self) -> Option<SimOperation> {
        let mut s = self.lock();
        self.advance(&mut s);
        s.operation.as_deref().cloned()
    }

    /// The failure reason when the cluster is in a failed state.
    pub fn failure(&self) -> Option<String> {
        let mut s = self.lock();
        self.advance(&mut s);
        s.failed.clone()
    }

    /// Clear a failed state (an operator fixing the cluster by hand).
    pub fn repair(&self) {
        self.lock().failed = None;
    }

    /// Add `count` nodes to `group`. A repeated `token` within five minutes
    /// returns the first answer and changes nothing.
    pub fn scale_out(
        &self,
        group: NodeGroup,
        count: i32,
        token: Option<&str>,
    ) -> Result<Submitted, SimError> {
        self.scale_out_pool(None, group, count, token)
    }

    /// [`Self::scale_out`] of the named Task pool `pool` (`None`: Core or
    /// the default Task pool, by `group`).
    pub fn scale_out_pool(
        &self,
        pool: Option<&str>,
        group: NodeGroup,
        count: i32,
        token: Option<&str>,
    ) -> Result<Submitted, SimError> {
        self.start(
            "scale_out",
            (group, pool),
            Direction::Out,
            count,
            token,
            &[],
        )
    }

    /// Remove `count` nodes of `group`: `prefer` first (all must exist and be
    /// removable), then the most recently added removable nodes.
    pub fn scale_in(
        &self,
        group: NodeGroup,
        count: i32,
        prefer: &[String],
        token: Option<&str>,
    ) -> Result<Submitted, SimError> {
        self.scale_in_pool(None, group, count, prefer, token)
    }

    /// [`Self::scale_in`] of the named Task pool `pool` (`None`: Core or
    /// the default Task pool, by `group`).
    pub fn scale_in_pool(
        &self,
        pool: Option<&str>,
        group: NodeGroup,
        count: i32,
        prefer: &[String],
        token: Option<&str>,
    ) -> Result<Submitted, SimError> {
        self.start(
            "scale_in",
            (group, pool),
            Direction::In,
            count,
            token,
            prefer,
        )
    }

    fn start(
        &self,
        action: &str,
        (group, pool): (NodeGroup, Option<&str>),
        direction: Direction,
        count: i32,
        token: Option<&str>,
        prefer: &[String],
    ) -> Result<Submitted, SimError> {
        let mut s = self.lock();
        self.advance(&mut s);
        let now = self.clock.now();
        let pool_detail = pool.map(|p| format!(" pool={p}")).unwrap_or_default();
        let detail = format!(
            "group={}{pool_detail} count={count} token={} prefer={prefer:?}",
            group.as_str(),
            token.unwrap_or("-")
        );
        let window = SignedDuration::try_from(TOKEN_WINDOW).expect("small duration");
        s.tokens.retain(|(at, _)| now.duration_since(*at) < window);
        if let Some((_, previous)) = token.and_then(|t| s.tokens.get(t)) {
            let previous = previous.clone();
            self.record(
                &mut s,
                action,
                format!("{detail} (repeated token: no new operation)"),
                &Ok(()),
                false,
            );
            return Ok(previous);
        }
        let result = self.try_start(&mut s, (group, pool), direction, count, prefer, now);
        let outcome = result.as_ref().map(|_| ()).map_err(|e| format!("{e:?}"));
        self.record(&mut s, action, detail, &outcome, result.is_ok());
        let submitted = result?;
        if let Some(t) = token {
            s.tokens.insert(t, (now, submitted.clone()));
        }
        if s.faults.lose_responses > 0 {
            s.faults.lose_responses -= 1;
            return Err(SimError::Injected(
                CloudError::new(
                    ErrorClass::Transient,
                    action,
                    "ResponseLost",
                    "the operation was applied but the answer was lost (injected)",
                )
                .effect_unknown(),
            ));
        }
        Ok(submitted)
    }

    fn try_start(
        &self,
        s: &mut State,
        (group, pool): (NodeGroup, Option<&str>),
        direction: Direction,
        count: i32,
        prefer: &[String],
        now: Timestamp,
    ) -> Result<Submitted, SimError> {
        let action = match direction {
            Direction::Out => "scale_out",
            Direction::In => "scale_in",
        };
        if let Some(e) = Self::injected(s, action) {
            return Err(SimError::Injected(e));
        }
        if let Some(op) = &s.operation {
            return Err(SimError::Busy {
                flow_id: op.flow_id.clone(),
            });
        }
        if let Some(reason) = &s.failed {
            return Err(SimError::NotRunning(reason.clone()));
        }
        if count <= 0 {
            return Err(SimError::Invalid(format!(
                "count must be > 0 (got {count})"
            )));
        }
        let members = match pool {
            None => &s.nodes,
            Some(p) => match s.pools.get(p) {
                Some(nodes) if group == NodeGroup::Task => nodes,
                Some(_) => {
                    return Err(SimError::Invalid(format!(
                        "pool {p} is a Task pool, not {}",
                        group.as_str()
                    )))
                }
                None => return Err(SimError::Invalid(format!("no pool {p}"))),
            },
        };
        let in_group: Vec<&SimNode> = members.iter().filter(|n| n.group == group).collect();
        let node_ids = match direction {
            Direction::Out => {
                let in_pools: usize = s.pools.values().map(Vec::len).sum();
                let total = (s.nodes.len() + in_pools) as i32 + count;
                let limit = self.config.quota.unwrap_or(MAX_TOTAL).min(MAX_TOTAL);
                if total > limit {
                    return Err(SimError::Quota {
                        limit,
                        requested: total,
                    });
                }
                Vec::new()
            }
            Direction::In => {
                if group == NodeGroup::Core && in_group.len() as i32 - count < 3 {
                    return Err(SimError::Invalid(format!(
                        "removing {count} of {} Core nodes would leave fewer than 3",
                        in_group.len()
                    )));
                }
                let mut chosen: Vec<String> = Vec::new();
                for id in prefer.iter().take(count as usize) {
                    match in_group.iter().find(|n| &n.id == id) {
                        Some(n) if n.removable => chosen.push(id.clone()),
                        Some(_) => {
                            return Err(SimError::Invalid(format!("node {id} cannot be removed")))
                        }
                        None => return Err(SimError::NodeNotFound(id.clone())),
                    }
                }
                let mut rest: Vec<&&SimNode> = in_group
                    .iter()
                    .filter(|n| n.removable && !chosen.contains(&n.id))
                    .collect();
                rest.sort_by_key(|n| std::cmp::Reverse(n.serial));
                for n in rest {
                    if chosen.len() as i32 >= count {
                        break;
                    }
                    chosen.push(n.id.clone());
                }
                if (chosen.len() as i32) < count {
                    return Err(SimError::Invalid(format!(
                        "only {} removable {} nodes, {count} requested",
                        chosen.len(),
                        group.as_str()
                    )));
                }
                chosen
            }
        };
        let flow_id = s.next_flow.to_string();
        s.next_flow += 1;
        let will_fail = if s.faults.fail_operations > 0 {
            s.faults.fail_operations -= 1;
            Some(format!("simulated failure of flow {flow_id}"))
        } else {
            None
        };
        let duration =
            SignedDuration::try_from(self.config.operation_time).expect("small duration");
        s.operation = Some(Box::new(SimOperation {
            flow_id: flow_id.clone(),
            group,
            pool: pool.map(str::to_string),
            direction,
            count,
            node_ids: node_ids.clone(),
            started: now,
            finishes: now + duration,
            will_fail,
        }));
        s.flows.insert(&flow_id, FlowState::Running);
        Ok(Submitted {
            request_id: Some(format!("sim-req-{}", s.calls + 1)),
            flow_id: Some(flow_id.clone()),
            trace_id: Some(format!("sim-trace-{flow_id}")),
            node_ids,
            unmatched_preferred: Vec::new(),
        })
    }

    /// The state of a flow started by this model.
    pub fn flow(&self, flow_id: &str) -> Option<FlowState> {
        let mut s = self.lock();
        self.advance(&mut s);
        let flow = s.flows.get(flow_id).cloned();
        let outcome = match &flow {
            Some(_) => Ok(()),
            None => Err("unknown flow".to_string()),
        };
        self.record(
            &mut s,
            "flow_status",
            format!("flow={flow_id}"),
            &outcome,
            false,
        );
        flow
    }

    /// Change the fault settings.
    pub fn with_faults<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        f(&mut self.lock().faults)
    }

    /// Queue an error for the next call of `action` (`observe`, `scale_out`, `scale_in`).
    pub fn fail_next(&self, action: &str, error: CloudError) {
        self.with_faults(|f| {
            f.next
                .entry(action.to_string())
                .or_default()
                .push_back(error)
        });
    }

    /// The calls the journal kept: every call so far, unless
    /// [`Self::with_journal_limit`] bounded it.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.lock().journal.iter().cloned().collect()
    }

    /// How many calls started an operation, including any the journal dropped.
    pub fn write_count(&self) -> u64 {
        self.lock().write_calls
    }

    /// Calls that started an operation.
    pub fn writes(&self) -> Vec<JournalEntry> {
        self.lock()
            .journal
            .iter()
            .filter(|e| e.write)
            .cloned()
            .collect()
    }
}

/// A few values by string key, in a vector that grows by one slot while it
/// is small. A model holds one or two flows and tokens at a time, and a hash
/// map's smallest table has four slots: with 10,000 simulated clusters in one
/// operator, the two maps' tables were 8 MiB (docs/benchmarks.md, issue 26).
/// Lookups scan from the newest entry, which is the one asked for: the flow
/// of the running operation, the token just resent.
#[derive(Debug)]
struct Few<V>(Vec<(Box<str>, V)>);

impl<V> Default for Few<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> Few<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    fn insert(&mut self, key: &str, value: V) {
        if let Some((_, slot)) = self.0.iter_mut().rev().find(|(k, _)| &**k == key) {
            *slot = value;
            return;
        }
        if self.0.len() < 8 {
            self.0.reserve_exact(1);
        }
        self.0.push((key.into(), value));
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.0.retain(|(_, v)| keep(v));
    }
}

fn add_node(s: &mut State, cluster: &str, group: NodeGroup, pool: Option<&str>) {
    let serial = s.next_serial;
    s.next_serial += 1;
    let node = SimNode {
        id: format!("{cluster}-{}-{serial:04}", pool.unwrap_or(group.as_str())),
        group,
        serial,
        removable: true,
    };
    match pool {
        None => s.nodes.push(node),
        Some(p) => s.pools.entry(p.to_string()).or_default().push(node),
    }
}

/// Map a model refusal to the simulated cloud's error (codes are the model's own).
pub fn sim_error_to_cloud(action: &str, e: SimError) -> CloudError {
    match e {
        SimError::Busy { flow_id } => CloudError::new(
            ErrorClass::Busy,
            action,
            "Busy",
            format!("an operation (flow {flow_id}) is already running"),
        ),
        SimError::NotRunning(r) => CloudError::new(
            ErrorClass::Busy,
            action,
            "NotRunning",
            format!("cluster is not running: {r}"),
        ),
        SimError::Quota { limit, requested } => CloudError::new(
            ErrorClass::Quota,
            action,
            "QuotaExceeded",
            format!("{requested} nodes requested, quota allows {limit}"),
        ),
        SimError::Invalid(m) => CloudError::new(ErrorClass::Invalid, action, "InvalidParameter", m),
        SimError::NodeNotFound(id) => CloudError::new(
            ErrorClass::Invalid,
            action,
            "NodeNotFound",
            format!("node {id} not found"),
        ),
        SimError::Injected(e) => e,
    }
}

/// The simulated cloud behind the provider seam: no Secret, no target key
/// (each resource has its own model), every capability.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimulatedProvider;

impl CloudProvider for SimulatedProvider {
    const KIND: CloudKind = CloudKind::Simulated;
    type Spec = SimulatedSpec;
    type Knobs = NoKnobs;
    const SECRET_KEYS: SecretKeys = SecretKeys {
        sets: &[],
        expected: "",
    };
    const CAPABILITIES: Capabilities = Capabilities::ALL;

    fn block(spec: &ScaledClusterSpec) -> Option<&SimulatedSpec> {
        spec.simulated.as_ref()
    }

    fn validate(block: &SimulatedSpec, pools: &[TaskPoolSpec]) -> Vec<Violation> {
        validate::validate(block, pools)
    }

    fn secret_ref(_: &SimulatedSpec) -> Option<&SecretRef> {
        None
    }

    fn credentials_from_env() -> Credentials {
        Credentials::new("environment")
    }

    fn target_key(_: &SimulatedSpec) -> Option<String> {
        None
    }

    /// A fresh model named `with.name`, starting from the spec.
    fn connect(block: &SimulatedSpec, with: Connect<'_>) -> Result<Arc<dyn Cloud>, ConnectError> {
        // Nobody reads the journal of the operator's own simulated cloud.
        let model = SimModel::new(with.name.to_string(), SimConfig::from(block), with.clock)
            .with_journal_limit(0);
        Ok(Arc::new(SimulatedCloud::new(Arc::new(model))))
    }

    /// In memory: no limit.
    fn observations_per_second(_: &NoKnobs) -> Option<u32> {
        None
    }
}

/// The `simulated` cloud: the [`Cloud`] trait over a [`SimModel`].
#[derive(Clone, Debug)]
pub struct SimulatedCloud {
    model: Arc<SimModel>,
    capabilities: Capabilities,
}

impl SimulatedCloud {
    pub fn new(model: Arc<SimModel>) -> Self {
        Self {
            model,
            capabilities: Capabilities::ALL,
        }
    }

    /// Restrict what the simulated cloud supports (to test capability rules).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    pub fn model(&self) -> &Arc<SimModel> {
        &self.model
    }
}

fn pool_name(req: &ScaleRequest) -> Option<&str> {
    req.pool.as_ref().map(|p| p.name.as_str())
}

#[async_trait]
impl Cloud for SimulatedCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::Simulated
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The model learns each pool the first time a pass names it, with its
    /// `simulated.initialCount` nodes; it reports the pools asked for.
    async fn observe_pools(&self, pools: &[TaskPoolSpec]) -> Result<ObservedCluster, CloudError> {
        if self.capabilities.named_pools {
            for p in pools {
                let initial = p.simulated.as_ref().map_or(0, |s| s.initial_count);
                self.model.add_pool(&p.name, initial);
            }
        }
        let mut observed = self
            .model
            .observe()
            .map_err(|e| sim_error_to_cloud("observe", e))?;
        observed.pools.retain(|name, _| {
            self.capabilities.named_pools && pools.iter().any(|p| &p.name == name)
        });
        Ok(observed)
    }

    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        self.model
            .scale_out_pool(pool_name(req), req.group, req.count, Some(&req.token))
            .map_err(|e| sim_error_to_cloud("scale_out", e))
    }

    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        self.model
            // Like TerminateTasks / MRS: scale-in calls carry no idempotency token.
            .scale_in_pool(
                pool_name(req),
                req.group,
                req.count,
                &req.prefer_nodes,
                None,
            )
            .map_err(|e| sim_error_to_cloud("scale_in", e))
    }

    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        let Some(flow_id) = &op.flow_id else {
            return Ok(OperationProgress::Unknown);
        };
        Ok(match self.model.flow(flow_id) {
            Some(FlowState::Running) => OperationProgress::Running,
            Some(FlowState::Succeeded) => OperationProgress::Succeeded,
            Some(FlowState::Failed(m)) => OperationProgress::Failed(m),
            None => OperationProgress::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::clock::ManualClock;

    fn model(core: i32, task: i32) -> (Arc<ManualClock>, SimModel) {
        let clock = Arc::new(ManualClock::default());
        let config = SimConfig {
            initial_core: core,
            initial_task: task,
            operation_time: Duration::from_secs(30),
            quota: Some(20),
        };
        (clock.clone(), SimModel::new("sim", config, clock))
    }

    #[test]
    fn pools_scale_on_their_own_and_count_toward_the_quota() {
        let (clock, m) = model(3, 1);
        assert!(m.add_pool("batch", 2));
        assert!(!m.add_pool("batch", 5), "a pool is created once");
        m.add_pool("spot", 0);
        let o = m.observe().unwrap();
        assert_eq!((o.core, o.task), (3, 1));
        assert_eq!(o.pools.get("batch"), Some(&2));
        assert_eq!(o.pools.get("spot"), Some(&0));

        m.scale_out_pool(Some("spot"), NodeGroup::Task, 3, Some("t1"))
            .unwrap();
        clock.advance(Duration::from_secs(30));
        let o = m.observe().unwrap();
        assert_eq!((o.task, o.pools["batch"], o.pools["spot"]), (1, 2, 3));
        assert!(m.pool_nodes("spot").iter().all(|n| n.id.contains("-spot-")));
        assert_eq!(m.nodes().len(), 4, "Core and the default pool only");

        // 3 + 1 + 2 + 3 = 9 of the quota of 20: 12 more is one too many.
        assert!(matches!(
            m.scale_out_pool(Some("batch"), NodeGroup::Task, 12, None),
            Err(SimError::Quota {
                limit: 20,
                requested: 21
            })
        ));
        let sub = m
            .scale_in_pool(Some("batch"), NodeGroup::Task, 1, &[], None)
            .unwrap();
        assert!(sub.node_ids[0].contains("-batch-"), "{sub:?}");
        assert_eq!(m.operation().unwrap().pool.as_deref(), Some("batch"));
        clock.advance(Duration::from_secs(30));
        let o = m.observe().unwrap();
        assert_eq!((o.task, o.pools["batch"]), (1, 1));
        assert!(matches!(
            m.scale_out_pool(Some("gpu"), NodeGroup::Task, 1, None),
            Err(SimError::Invalid(_))
        ));
        assert!(matches!(
            m.scale_out_pool(Some("batch"), NodeGroup::Core, 1, None),
            Err(SimError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_cloud_learns_pools_from_each_observation() {
        let (clock, m) = model(3, 0);
        let cloud = SimulatedCloud::new(Arc::new(m));
        let mut batch = TaskPoolSpec::named("batch", 2);
        batch.simulated = Some(clusterscale_core::api::SimulatedPoolSpec { initial_count: 1 });
        let o = cloud
            .observe_pools(std::slice::from_ref(&batch))
            .await
            .unwrap();
        assert_eq!(o.pools.get("batch"), Some(&1));
        // A pool the pass does not name is not reported.
        assert!(cloud.observe().await.unwrap().pools.is_empty());
        cloud
            .scale_out(&ScaleRequest {
                group: NodeGroup::Task,
                pool: Some(batch.clone()),
                count: 1,
                from_count: 1,
                token: "t".into(),
                prefer_nodes: vec![],
                graceful_timeout_seconds: 0,
            })
            .await
            .unwrap();
        clock.advance(Duration::from_secs(30));
        let o = cloud.observe_pools(&[batch]).await.unwrap();
        assert_eq!((o.task, o.pools["batch"]), (0, 2));
        // Without the capability it reports none.
        let without = SimulatedCloud::new(cloud.model().clone()).with_capabilities(Capabilities {
            named_pools: false,
            ..Capabilities::ALL
        });
        let gpu = TaskPoolSpec::named("gpu", 1);
        assert!(without
            .observe_pools(&[gpu])
            .await
            .unwrap()
            .pools
            .is_empty());
        assert_eq!(cloud.model().pools(), ["batch"]);
    }

    #[test]
    fn operation_takes_time_and_locks_the_cluster() {
        let (clock, m) = model(3, 0);
        m.scale_out(NodeGroup::Task, 2, Some("t1")).unwrap();
        let o = m.observe().unwrap();
        assert_eq!(o.state, ClusterState::Busy("scaling-out".into()));
        assert_eq!(o.task, 0);
        assert!(matches!(
            m.scale_out(NodeGroup::Core, 1, Some("t2")),
            Err(SimError::Busy { .. })
        ));
        clock.advance(Duration::from_secs(30));
        let o = m.observe().unwrap();
        assert_eq!((o.state, o.core, o.task), (ClusterState::Running, 3, 2));
        assert_eq!(m.writes().len(), 1, "the refused call is not a write");
    }

    #[test]
    fn a_bounded_journal_keeps_the_last_lines_and_counts_every_call() {
        let (clock, m) = model(3, 0);
        let m = m.with_journal_limit(2);
        m.observe().unwrap();
        let first = m.scale_out(NodeGroup::Task, 1, Some("t1")).unwrap();
        clock.advance(Duration::from_secs(31));
        m.observe().unwrap();
        m.observe().unwrap();
        let journal = m.journal();
        assert_eq!(journal.len(), 2);
        assert!(journal.iter().all(|l| l.action == "observe"));
        assert!(m.writes().is_empty(), "the write's line was dropped");
        assert_eq!(m.write_count(), 1, "but it is still counted");

        let (_, silent) = model(3, 0);
        let silent = silent.with_journal_limit(0);
        silent.observe().unwrap();
        let second = silent.scale_out(NodeGroup::Task, 1, Some("t1")).unwrap();
        assert!(silent.journal().is_empty());
        assert_eq!(silent.write_count(), 1);
        assert_eq!(
            first.request_id, second.request_id,
            "request ids number the calls, journal or not"
        );
    }

    #[test]
    fn every_flow_keeps_its_outcome() {
        let (clock, m) = model(3, 0);
        let mut flows = Vec::new();
        for _ in 0..3 {
            let s = m.scale_out(NodeGroup::Task, 1, None).unwrap();
            let flow = s.flow_id.unwrap();
            assert_eq!(m.flow(&flow), Some(FlowState::Running));
            clock.advance(Duration::from_secs(31));
            flows.push(flow);
        }
        m.with_faults(|f| f.fail_operations = 1);
        let failing = m.scale_out(NodeGroup::Task, 1, None).unwrap();
        clock.advance(Duration::from_secs(31));
        for flow in &flows {
            assert_eq!(m.flow(flow), Some(FlowState::Succeeded), "{flow}");
        }
        assert!(matches!(
            m.flow(failing.flow_id.as_deref().unwrap()),
            Some(FlowState::Failed(_))
        ));
        assert_eq!(m.flow("no-such-flow"), None);
    }

    #[test]
    fn repeated_token_does_not_scale_twice() {
        let (clock, m) = model(3, 0);
        let a = m.scale_out(NodeGroup::Task, 2, Some("same")).unwrap();
        clock.advance(Duration::from_secs(31));
        let b = m.scale_out(NodeGroup::Task, 2, Some("same")).unwrap();
        assert_eq!(a, b);
        clock.advance(Duration::from_secs(31));
        assert_eq!(m.observe().unwrap().task, 2);
        clock.advance(TOKEN_WINDOW);
        m.scale_out(NodeGroup::Task, 2, Some("same")).unwrap();
        assert_eq!(
            m.writes().len(),
            2,
            "a token older than the window is new again"
        );
    }

    #[test]
    fn quota_core_minimum_and_preferred_nodes() {
        let (clock, m) = model(4, 3);
        assert!(matches!(
            m.scale_out(NodeGroup::Task, 14, None),
            Err(SimError::Quota {
                limit: 20,
                requested: 21
            })
        ));
        assert!(matches!(
            m.scale_in(NodeGroup::Core, 2, &[], None),
            Err(SimError::Invalid(_))
        ));
        let nodes = m.nodes();
        let oldest_task = nodes
            .iter()
            .find(|n| n.group == NodeGroup::Task)
            .unwrap()
            .id
            .clone();
        let newest_task = nodes
            .iter()
            .rev()
            .find(|n| n.group == NodeGroup::Task)
            .unwrap()
            .id
            .clone();
        let s = m
            .scale_in(NodeGroup::Task, 2, std::slice::from_ref(&oldest_task), None)
            .unwrap();
        assert_eq!(s.node_ids, vec![oldest_task.clone(), newest_task]);
        clock.advance(Duration::from_secs(30));
        let left: Vec<_> = m
            .nodes()
            .into_iter()
            .filter(|n| n.group == NodeGroup::Task)
            .collect();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0].id, oldest_task);
        assert!(matches!(
            m.scale_in(NodeGroup::Task, 1, &["nope".into()], None),
            Err(SimError::NodeNotFound(_))
        ));
    }

    #[test]
    fn failed_operation_leaves_cluster_failed() {
        let (clock, m) = model(3, 0);
        m.with_faults(|f| f.fail_operations = 1);
        let s = m.scale_out(NodeGroup::Task, 1, None).unwrap();
        clock.advance(Duration::from_secs(30));
        assert!(matches!(
            m.observe().unwrap().state,
            ClusterState::Failed(_)
        ));
        assert!(matches!(
            m.flow(s.flow_id.as_deref().unwrap()),
            Some(FlowState::Failed(_))
        ));
        assert!(matches!(
            m.scale_out(NodeGroup::Task, 1, None),
            Err(SimError::NotRunning(_))
        ));
    }

    #[test]
    fn injected_errors_come_back_in_order() {
        let (_clock, m) = model(3, 0);
        m.fail_next(
            "scale_out",
            CloudError::new(ErrorClass::Capacity, "scale_out", "SoldOut", "no stock"),
        );
        match m.scale_out(NodeGroup::Task, 1, None) {
            Err(SimError::Injected(e)) => assert_eq!(e.code, "SoldOut"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(m.scale_out(NodeGroup::Task, 1, None).is_ok());
        let journal = m.journal();
        assert_eq!(journal.len(), 2);
        assert!(journal[0].outcome.contains("SoldOut"));
    }
}
