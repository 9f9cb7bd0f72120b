//! The pure planner: (spec, observed cluster, pending operation, now) -> decision.
//!
//! No I/O, no clock, no randomness: every rule about *whether* and *what* to
//! scale lives here, so that it can be table-tested and property-tested.
//!
//! The groups it sizes: Core, the default Task pool (`spec.task`) and each
//! named pool (`spec.taskPools`). Rules, in the order they are applied:
//! 1. The lock: a pending operation of ours, or a cluster that is not idle and
//!    running, means Wait (or Blocked for a failed/unavailable cluster). One
//!    operation at a time per cluster, across Core and every pool.
//! 2. Desired Task is `task.count` clamped into `[task.min, task.max]`, and
//!    each pool's `count` into its `[min, max]`; each clamp is reported.
//! 3. Converged when every group's observed count equals its desired one.
//! 4. paused and dryRun never act (the plan is still reported).
//! 5. The route, deterministic: grow before shrinking (capacity first);
//!    growing goes Core, the default pool, then the pools in list order;
//!    shrinking goes the other way: the pools in reverse list order, the
//!    default pool, then Core. But shrink first when growing first would take
//!    Core + Task + every pool above 500.
//! 6. Core never below 3, Core + Task + every pool never above 500, in any
//!    single step.
//! 7. scaleIn.allowed=false blocks scale-in; the cloud's capabilities block
//!    what it cannot do (a named pool on a cloud without
//!    [`Capabilities::named_pools`]).
//! 8. A blocked step does not starve the others: the planner takes the first
//!    step of the route that can run, passing over the blocked ones (they are
//!    listed in [`Plan::passed_over`]); only when no step can run is the
//!    decision Blocked, with the reason of the first blocked step. A step
//!    passed over is first again on the next pass, so it runs as soon as
//!    what blocked it changes.
//! 9. maxStep (and the cloud's per-call limit) bounds one operation, of any group.
//! 10. cooldownSeconds after the last finished operation, of any group,
//!     before the next operation, of any group.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::api::{
    nodes_of, Direction, HeldWrite, NodeGroup, OperationRecord, PlanStep, ScaledClusterSpec,
    TaskPoolSpec, MAX_TOTAL, MIN_CORE,
};
use crate::cloud::{Capabilities, ClusterState, ObservedCluster};

/// Why the planner waits or is blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReasonKind {
    /// An operation of ours is still pending.
    OperationPending,
    /// The cloud reports the cluster busy (an operation not ours, or ours finishing).
    ClusterBusy,
    /// The cluster is failed or not in a state we may touch.
    ClusterNotRunning,
    /// cooldownSeconds has not passed since the last operation.
    Cooldown,
    /// spec.paused.
    Paused,
    /// spec.dryRun.
    DryRun,
    /// spec.scaleIn.allowed is false and nodes would have to be removed.
    ScaleInDisallowed,
    /// The cloud cannot perform this operation.
    Unsupported,
    /// The step would take Core below 3.
    CoreMinimum,
    /// The step would take Core + Task + every pool above 500.
    TotalMaximum,
    /// The group is held for this generation (`status.heldWrites`): an
    /// earlier call opened a billing order. Reported with the hold's own
    /// code ([`Reason::code`]).
    Held,
}

impl ReasonKind {
    /// A block the user chose in the spec (paused, dryRun, scaleIn.allowed,
    /// the Core minimum and the total maximum that the spec asks past): it
    /// is reported, but it is not a degradation.
    pub fn users_choice(self) -> bool {
        matches!(
            self,
            ReasonKind::Paused
                | ReasonKind::DryRun
                | ReasonKind::ScaleInDisallowed
                | ReasonKind::CoreMinimum
                | ReasonKind::TotalMaximum
        )
    }

    /// CamelCase reason for conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::OperationPending => "OperationPending",
            ReasonKind::ClusterBusy => "ClusterBusy",
            ReasonKind::ClusterNotRunning => "ClusterNotRunning",
            ReasonKind::Cooldown => "Cooldown",
            ReasonKind::Paused => "Paused",
            ReasonKind::DryRun => "DryRun",
            ReasonKind::ScaleInDisallowed => "ScaleInDisallowed",
            ReasonKind::Unsupported => "Unsupported",
            ReasonKind::CoreMinimum => "CoreMinimum",
            ReasonKind::TotalMaximum => "TotalMaximum",
            ReasonKind::Held => "WriteHeld",
        }
    }
}

/// A reason with a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub kind: ReasonKind,
    pub message: String,
    /// The cloud's code that stands for the kind (a [`ReasonKind::Held`]
    /// group's `PrepaidNodeGroup`), when there is one.
    pub code: Option<String>,
}

impl Reason {
    fn new(kind: ReasonKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
        }
    }

    /// CamelCase reason for conditions and events: the cloud's code when
    /// the reason has one, else the kind's.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or(self.kind.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

/// One operation to execute now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub group: NodeGroup,
    /// The named pool (`spec.taskPools[].name`); `None` for Core and the default Task pool.
    pub pool: Option<String>,
    pub direction: Direction,
    /// Nodes to add or remove (> 0).
    pub count: i32,
    /// Group size now.
    pub from_count: i32,
    /// Group size after the operation.
    pub to_count: i32,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.direction {
            Direction::Out => "add",
            Direction::In => "remove",
        };
        write!(
            f,
            "{verb} {} {}: {} -> {}",
            self.count,
            nodes_of(self.group, self.pool.as_deref()),
            self.from_count,
            self.to_count
        )
    }
}

/// What the planner decides to do next with the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextMove {
    /// Nothing: the counts are reached.
    Converged,
    /// Nothing yet: the reason passes by itself (an operation, a cooldown).
    Wait(Reason),
    /// Nothing until something changes (the spec, the cloud).
    Blocked(Reason),
    /// This operation.
    Execute(Operation),
}

/// The planner's answer: the next move plus what it saw on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub next: NextMove,
    /// The remaining steps to converge, in execution order (before maxStep splitting).
    pub steps: Vec<PlanStep>,
    /// The Core count the plan aims at (at least 3).
    pub desired_core: i32,
    /// The Task count the plan aims at (after clamping).
    pub desired_task: i32,
    /// Set when task.count was clamped into [task.min, task.max].
    pub clamp: Option<String>,
    /// Each pool of `spec.taskPools`, in list order, with the count the plan
    /// aims at (after clamping).
    pub desired_pools: Vec<(String, i32)>,
    /// One note per pool whose count was clamped into its [min, max].
    pub pool_clamps: Vec<String>,
    /// Steps the decision passed over because they are blocked, while a later
    /// step runs (rule 8), with why.
    pub passed_over: Vec<Reason>,
}

impl Plan {
    /// Every clamp note, the default pool's first: `None` when nothing was clamped.
    pub fn clamps(&self) -> Option<String> {
        let notes: Vec<&str> = self
            .clamp
            .iter()
            .chain(&self.pool_clamps)
            .map(String::as_str)
            .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// Everything the planner looks at.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    pub spec: &'a ScaledClusterSpec,
    pub observed: &'a ObservedCluster,
    pub pending: Option<&'a OperationRecord>,
    /// When the last operation finished (for cooldown).
    pub last_finished: Option<Timestamp>,
    pub now: Timestamp,
    pub capabilities: Capabilities,
    /// Groups held for this generation (`status.heldWrites` of the current
    /// generation): their steps are blocked, the others go on.
    pub held: &'a [HeldWrite],
}

/// Desired Task count clamped into [min, max], with a note when clamped.
pub fn desired_task(spec: &ScaledClusterSpec) -> (i32, Option<String>) {
    let t = &spec.task;
    clamp(
        t.count,
        t.min,
        t.max,
        "spec.task.count",
        "task.min",
        "task.max",
    )
}

/// Desired count of pool `p` clamped into its [min, max], with a note when clamped.
pub fn desired_pool(p: &TaskPoolSpec) -> (i32, Option<String>) {
    clamp(
        p.count,
        p.min,
        p.max,
        &format!("spec.taskPools[{}].count", p.name),
        "min",
        "max",
    )
}

fn clamp(count: i32, min: i32, max: i32, what: &str, lo: &str, hi: &str) -> (i32, Option<String>) {
    let (low, high) = (min.max(0), max.max(min.max(0)));
    let clamped = count.clamp(low, high);
    let note = (clamped != count)
        .then(|| format!("{what} {count} is outside [{lo} {min}, {hi} {max}]; using {clamped}"));
    (clamped, note)
}

/// One group the planner sizes, in route order: Core, the default Task
/// pool, then each named pool.
struct Sized<'a> {
    group: NodeGroup,
    pool: Option<&'a str>,
    have: i32,
    want: i32,
}

/// The ordered steps from `observed` to the desired counts of `groups`.
fn steps(observed: &ObservedCluster, groups: &[Sized<'_>]) -> Vec<PlanStep> {
    let step = |g: &Sized<'_>| -> Option<PlanStep> {
        let (direction, count) = match g.want.cmp(&g.have) {
            std::cmp::Ordering::Greater => (Direction::Out, g.want - g.have),
            std::cmp::Ordering::Less => (Direction::In, g.have - g.want),
            std::cmp::Ordering::Equal => return None,
        };
        Some(PlanStep {
            group: g.group,
            pool: g.pool.map(str::to_string),
            direction,
            count,
        })
    };
    let (mut outs, mut ins): (Vec<PlanStep>, Vec<PlanStep>) = groups
        .iter()
        .filter_map(step)
        .partition(|s| s.direction == Direction::Out);
    // Growing: Core, the default pool, the pools in list order (the order of
    // `groups`). Shrinking: the other way round.
    ins.reverse();
    let grow: i32 = outs.iter().map(|s| s.count).sum();
    if observed.total() + grow > MAX_TOTAL && !ins.is_empty() {
        // Growing first would cross the cap: make room first.
        ins.append(&mut outs);
        ins
    } else {
        outs.append(&mut ins);
        outs
    }
}

/// Decide what to do now. Pure.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let spec = input.spec;
    let observed = input.observed;
    let desired_core = spec.core.count.max(MIN_CORE);
    let (desired_task, clamp) = desired_task(spec);
    let mut groups = vec![
        Sized {
            group: NodeGroup::Core,
            pool: None,
            have: observed.core,
            want: desired_core,
        },
        Sized {
            group: NodeGroup::Task,
            pool: None,
            have: observed.task,
            want: desired_task,
        },
    ];
    let mut desired_pools = Vec::new();
    let mut pool_clamps = Vec::new();
    for p in &spec.task_pools {
        let (want, note) = desired_pool(p);
        pool_clamps.extend(note);
        desired_pools.push((p.name.clone(), want));
        groups.push(Sized {
            group: NodeGroup::Task,
            pool: Some(&p.name),
            have: observed.count_of(NodeGroup::Task, Some(&p.name)),
            want,
        });
    }
    let steps = steps(observed, &groups);
    let (next, passed_over) = decide(input, &steps);
    Plan {
        next,
        steps,
        desired_core,
        desired_task,
        clamp,
        desired_pools,
        pool_clamps,
        passed_over,
    }
}

fn decide(input: &PlanInput<'_>, steps: &[PlanStep]) -> (NextMove, Vec<Reason>) {
    let spec = input.spec;
    let observed = input.observed;
    let only = |next: NextMove| (next, Vec::new());

    // 1. The lock.
    if let Some(p) = input.pending {
        return only(NextMove::Wait(Reason::new(
            ReasonKind::OperationPending,
            format!(
                "operation {} ({} {} {}) is still pending",
                p.id,
                nodes_of(p.group, p.pool.as_deref()),
                p.direction.as_str(),
                p.count
            ),
        )));
    }
    // 2. Converged: the counts are reached, whatever the cloud says of the
    // cluster's health (an MRS cluster `abnormal` for one unhealthy node is at
    // its target); that health is reported beside, not as a failure to converge.
    if steps.is_empty() {
        return only(NextMove::Converged);
    }

    // 3. No new operation unless the cluster is running.
    match &observed.state {
        ClusterState::Running => {}
        ClusterState::Busy(d) => {
            return only(NextMove::Wait(Reason::new(
                ReasonKind::ClusterBusy,
                format!("the cloud reports the cluster busy ({d})"),
            )))
        }
        ClusterState::Failed(d) => {
            return only(NextMove::Blocked(Reason::new(
                ReasonKind::ClusterNotRunning,
                format!("the cluster is in a failed state ({d}); fix it in the cloud console"),
            )))
        }
        ClusterState::Unavailable(d) => {
            return only(NextMove::Wait(Reason::new(
                ReasonKind::ClusterNotRunning,
                format!("the cluster is not running ({d})"),
            )))
        }
    }

    // 4. paused / dryRun.
    if spec.paused {
        return only(NextMove::Blocked(Reason::new(
            ReasonKind::Paused,
            format!("spec.paused is true; {} step(s) not taken", steps.len()),
        )));
    }
    if spec.dry_run {
        return only(NextMove::Blocked(Reason::new(
            ReasonKind::DryRun,
            format!(
                "spec.dryRun is true; {} step(s) planned, none taken",
                steps.len()
            ),
        )));
    }

    // 8. The first step that can run; the blocked ones before it are passed over.
    let mut passed_over = Vec::new();
    let mut op = None;
    for step in steps {
        match size(input, step) {
            Ok(o) => {
                op = Some(o);
                break;
            }
            Err(reason) => passed_over.push(reason),
        }
    }
    let Some(op) = op else {
        let first = passed_over.remove(0);
        return (NextMove::Blocked(first), passed_over);
    };

    // 10. Cooldown.
    if let Some(finished) = input.last_finished {
        let cooldown = SignedDuration::from_secs(i64::from(spec.cooldown_seconds.max(0)));
        let ready_at = finished + cooldown;
        if input.now < ready_at {
            let left = input.now.duration_until(ready_at).as_secs();
            return (
                NextMove::Wait(Reason::new(
                    ReasonKind::Cooldown,
                    format!(
                        "cooling down for {left}s more (spec.cooldownSeconds={})",
                        spec.cooldown_seconds
                    ),
                )),
                passed_over,
            );
        }
    }
    (NextMove::Execute(op), passed_over)
}

/// The operation `next` can be now (rules 6, 7 and 9), or why it is blocked.
fn size(input: &PlanInput<'_>, next: &PlanStep) -> Result<Operation, Reason> {
    let spec = input.spec;
    let observed = input.observed;
    let pool = next.pool.as_deref();
    let nodes = nodes_of(next.group, pool);
    let blocked = |kind, message: String| Err(Reason::new(kind, message));

    // 7. Holds, policy and capability.
    if let Some(h) = input.held.iter().find(|h| h.holds(next.group, pool)) {
        return Err(Reason {
            code: Some(h.reason.clone()),
            ..Reason::new(
                ReasonKind::Held,
                format!(
                    "{} {nodes} not {}: {}",
                    next.count,
                    done(next.direction),
                    h.message
                ),
            )
        });
    }
    if next.direction == Direction::In && !spec.scale_in.allowed {
        return blocked(
            ReasonKind::ScaleInDisallowed,
            format!(
                "removing {} {nodes} needs spec.scaleIn.allowed=true",
                next.count
            ),
        );
    }
    if pool.is_some() && !input.capabilities.named_pools {
        return blocked(
            ReasonKind::Unsupported,
            format!(
                "this cloud cannot scale named pools (spec.taskPools) in this version; {} {} not {}",
                next.count,
                nodes,
                done(next.direction)
            ),
        );
    }
    if !input.capabilities.supports(next.group, next.direction) {
        return blocked(
            ReasonKind::Unsupported,
            format!(
                "this cloud cannot scale {} {} by API",
                next.group.as_str(),
                next.direction.as_str()
            ),
        );
    }
    if next.direction == Direction::In
        && spec.scale_in.graceful_timeout_seconds > 0
        && !input.capabilities.graceful_scale_in
    {
        return blocked(
            ReasonKind::Unsupported,
            "spec.scaleIn.gracefulTimeoutSeconds is set but this cloud has no graceful decommission; set it to 0".into(),
        );
    }

    // 6 + 9. Size the step.
    let have = observed.count_of(next.group, pool);
    let mut count = next.count;
    if spec.max_step > 0 {
        count = count.min(spec.max_step);
    }
    match next.direction {
        Direction::Out => {
            if let Some(limit) = input.capabilities.max_out_per_call {
                count = count.min(limit.max(1));
            }
            let total = observed.total();
            let room = MAX_TOTAL - total;
            if room <= 0 {
                return blocked(
                    ReasonKind::TotalMaximum,
                    format!(
                        "Core+Task is already {total} (limit {MAX_TOTAL}, every pool counted); cannot add {nodes}"
                    ),
                );
            }
            count = count.min(room);
        }
        Direction::In => {
            if next.group == NodeGroup::Core {
                let removable = have - MIN_CORE;
                if removable <= 0 {
                    return blocked(
                        ReasonKind::CoreMinimum,
                        format!("Core is {have}; it may never go below {MIN_CORE}"),
                    );
                }
                count = count.min(removable);
            }
            count = count.min(have);
        }
    }
    let to_count = match next.direction {
        Direction::Out => have + count,
        Direction::In => have - count,
    };
    Ok(Operation {
        group: next.group,
        pool: next.pool.clone(),
        direction: next.direction,
        count,
        from_count: have,
        to_count,
    })
}

/// What a step does to its nodes, in the past tense.
fn done(direction: Direction) -> &'static str {
    match direction {
        Direction::Out => "added",
        Direction::In => "removed",
    }
}

#[cfg(test)]
mod tests;
