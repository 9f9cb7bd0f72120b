//! The pure planner: (spec, observed cluster, pending operation, now) -> decision.
//!
//! No I/O, no clock, no randomness: every rule about *whether* and *what* to
//! scale lives here, so that it can be table-tested and property-tested.
//!
//! Rules, in the order they are applied:
//! 1. The lock: a pending operation of ours, or a cluster that is not idle and
//!    running, means Wait (or Blocked for a failed/unavailable cluster).
//! 2. Desired Task is `task.count` clamped into `[task.min, task.max]`; the
//!    clamp is reported.
//! 3. Converged when observed equals desired.
//! 4. paused and dryRun never act (the plan is still reported).
//! 5. Order: grow before shrinking (capacity first), Core before Task when
//!    growing, Task before Core when shrinking; but shrink first when growing
//!    first would cross the 500-node cap.
//! 6. Core never below 3, Core+Task never above 500, in any single step.
//! 7. scaleIn.allowed=false blocks scale-in; the cloud's capabilities block
//!    what it cannot do.
//! 8. maxStep (and the cloud's per-call limit) bounds one operation.
//! 9. cooldownSeconds after the last finished operation.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::api::{
    Direction, NodeGroup, OperationRecord, PlanStep, ScaledClusterSpec, MAX_TOTAL, MIN_CORE,
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
    /// The step would take Core+Task above 500.
    TotalMaximum,
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
        }
    }
}

/// A reason with a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub kind: ReasonKind,
    pub message: String,
}

impl Reason {
    fn new(kind: ReasonKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// One operation to execute now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub group: NodeGroup,
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
            "{verb} {} {} node(s): {} -> {}",
            self.count,
            self.group.as_str(),
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
    /// The Task count the plan aims at (after clamping).
    pub desired_core: i32,
    pub desired_task: i32,
    /// Set when task.count was clamped into [task.min, task.max].
    pub clamp: Option<String>,
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
}

/// Desired Task count clamped into [min, max], with a note when clamped.
pub fn desired_task(spec: &ScaledClusterSpec) -> (i32, Option<String>) {
    let t = &spec.task;
    let (lo, hi) = (t.min.max(0), t.max.max(t.min.max(0)));
    let clamped = t.count.clamp(lo, hi);
    let note = (clamped != t.count).then(|| {
        format!(
            "spec.task.count {} is outside [task.min {}, task.max {}]; using {clamped}",
            t.count, t.min, t.max
        )
    });
    (clamped, note)
}

/// The ordered steps from `observed` to (core, task).
fn steps(observed: &ObservedCluster, core: i32, task: i32) -> Vec<PlanStep> {
    let step = |group, have: i32, want: i32| -> Option<PlanStep> {
        match want.cmp(&have) {
            std::cmp::Ordering::Greater => Some(PlanStep {
                group,
                direction: Direction::Out,
                count: want - have,
            }),
            std::cmp::Ordering::Less => Some(PlanStep {
                group,
                direction: Direction::In,
                count: have - want,
            }),
            std::cmp::Ordering::Equal => None,
        }
    };
    let core_step = step(NodeGroup::Core, observed.core, core);
    let task_step = step(NodeGroup::Task, observed.task, task);
    let (mut outs, mut ins): (Vec<PlanStep>, Vec<PlanStep>) = [core_step, task_step]
        .into_iter()
        .flatten()
        .partition(|s| s.direction == Direction::Out);
    // Core before Task when growing (the order of `outs` already is);
    // Task before Core when shrinking.
    ins.reverse();
    let grow: i32 = outs.iter().map(|s| s.count).sum();
    if observed.core + observed.task + grow > MAX_TOTAL && !ins.is_empty() {
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
    let steps = steps(observed, desired_core, desired_task);
    let next = decide(input, &steps);
    Plan {
        next,
        steps,
        desired_core,
        desired_task,
        clamp,
    }
}

fn decide(input: &PlanInput<'_>, steps: &[PlanStep]) -> NextMove {
    let spec = input.spec;
    let observed = input.observed;

    // 1. The lock.
    if let Some(p) = input.pending {
        return NextMove::Wait(Reason::new(
            ReasonKind::OperationPending,
            format!(
                "operation {} ({} {} {}) is still pending",
                p.id,
                p.group.as_str(),
                p.direction.as_str(),
                p.count
            ),
        ));
    }
    // 2. Converged: the counts are reached, whatever the cloud says of the
    // cluster's health (an MRS cluster `abnormal` for one unhealthy node is at
    // its target); that health is reported beside, not as a failure to converge.
    let Some(next) = steps.first() else {
        return NextMove::Converged;
    };

    // 3. No new operation unless the cluster is running.
    match &observed.state {
        ClusterState::Running => {}
        ClusterState::Busy(d) => {
            return NextMove::Wait(Reason::new(
                ReasonKind::ClusterBusy,
                format!("the cloud reports the cluster busy ({d})"),
            ))
        }
        ClusterState::Failed(d) => {
            return NextMove::Blocked(Reason::new(
                ReasonKind::ClusterNotRunning,
                format!("the cluster is in a failed state ({d}); fix it in the cloud console"),
            ))
        }
        ClusterState::Unavailable(d) => {
            return NextMove::Wait(Reason::new(
                ReasonKind::ClusterNotRunning,
                format!("the cluster is not running ({d})"),
            ))
        }
    }

    // 4. paused / dryRun.
    if spec.paused {
        return NextMove::Blocked(Reason::new(
            ReasonKind::Paused,
            format!("spec.paused is true; {} step(s) not taken", steps.len()),
        ));
    }
    if spec.dry_run {
        return NextMove::Blocked(Reason::new(
            ReasonKind::DryRun,
            format!(
                "spec.dryRun is true; {} step(s) planned, none taken",
                steps.len()
            ),
        ));
    }

    // 7. Policy and capability.
    if next.direction == Direction::In && !spec.scale_in.allowed {
        return NextMove::Blocked(Reason::new(
            ReasonKind::ScaleInDisallowed,
            format!(
                "removing {} {} node(s) needs spec.scaleIn.allowed=true",
                next.count,
                next.group.as_str()
            ),
        ));
    }
    if !input.capabilities.supports(next.group, next.direction) {
        return NextMove::Blocked(Reason::new(
            ReasonKind::Unsupported,
            format!(
                "this cloud cannot scale {} {} by API",
                next.group.as_str(),
                next.direction.as_str()
            ),
        ));
    }
    if next.direction == Direction::In
        && spec.scale_in.graceful_timeout_seconds > 0
        && !input.capabilities.graceful_scale_in
    {
        return NextMove::Blocked(Reason::new(
            ReasonKind::Unsupported,
            "spec.scaleIn.gracefulTimeoutSeconds is set but this cloud has no graceful decommission; set it to 0",
        ));
    }

    // 9. Cooldown.
    if let Some(finished) = input.last_finished {
        let cooldown = SignedDuration::from_secs(i64::from(spec.cooldown_seconds.max(0)));
        let ready_at = finished + cooldown;
        if input.now < ready_at {
            let left = input.now.duration_until(ready_at).as_secs();
            return NextMove::Wait(Reason::new(
                ReasonKind::Cooldown,
                format!(
                    "cooling down for {left}s more (spec.cooldownSeconds={})",
                    spec.cooldown_seconds
                ),
            ));
        }
    }

    // 6 + 8. Size the step.
    let have = observed.count(next.group);
    let mut count = next.count;
    if spec.max_step > 0 {
        count = count.min(spec.max_step);
    }
    match next.direction {
        Direction::Out => {
            if let Some(limit) = input.capabilities.max_out_per_call {
                count = count.min(limit.max(1));
            }
            let room = MAX_TOTAL - (observed.core + observed.task);
            if room <= 0 {
                return NextMove::Blocked(Reason::new(
                    ReasonKind::TotalMaximum,
                    format!(
                        "Core+Task is already {} (limit {MAX_TOTAL}); cannot add {} node(s)",
                        observed.core + observed.task,
                        next.group.as_str()
                    ),
                ));
            }
            count = count.min(room);
        }
        Direction::In => {
            if next.group == NodeGroup::Core {
                let removable = have - MIN_CORE;
                if removable <= 0 {
                    return NextMove::Blocked(Reason::new(
                        ReasonKind::CoreMinimum,
                        format!("Core is {have}; it may never go below {MIN_CORE}"),
                    ));
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
    NextMove::Execute(Operation {
        group: next.group,
        direction: next.direction,
        count,
        from_count: have,
        to_count,
    })
}

#[cfg(test)]
mod tests;
