//! What became of the pending operation: a pure decision, like the planner.
//!
//! Facts in (the write-ahead record, the observation, the cloud's word on
//! the operation when it was asked, how long ago the operation started, the
//! cloud's capabilities), a [`Resolution`] out. The engine does the I/O
//! around it: it observes, asks [`needs_operation_status`] whether the
//! operation's progress is wanted, fetches it if so, then calls [`resolve`].

use std::time::Duration;

use clusterscale_core::api::{Direction, OperationRecord, Outcome};
use clusterscale_core::cloud::{Capabilities, ClusterState, ObservedCluster, OperationProgress};

use super::{describe_op, MAX_SENDS};

/// Everything the decision depends on.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The pending (write-ahead) record.
    pub pending: &'a OperationRecord,
    pub observed: &'a ObservedCluster,
    /// The cloud's word on the operation: `Some` when
    /// [`needs_operation_status`] asked for it (a failed lookup is
    /// [`OperationProgress::Unknown`]), `None` when it was not asked.
    pub progress: Option<OperationProgress>,
    /// Time since the operation was first sent (its `startedAt`).
    pub age: Duration,
    /// The engine's floor for how long an unconfirmed call may show no
    /// effect (`EngineConfig::settle`); the cloud's acceptance grace can
    /// only lengthen it.
    pub settle: Duration,
    pub capabilities: Capabilities,
}

/// What the pending operation became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Not over yet: poll again.
    StillRunning(String),
    /// An unconfirmed scale-out with no trace: re-send it with the same token.
    Resend,
    /// Over: the record is finished with this outcome and message.
    Finished(Outcome, String),
}

/// True when [`resolve`] needs the operation's progress for these facts: an
/// accepted operation on a cluster that has not failed, or an unconfirmed
/// one whose counts moved to the target while the cluster is not running.
pub fn needs_operation_status(p: &OperationRecord, o: &ObservedCluster) -> bool {
    if matches!(o.state, ClusterState::Failed(_)) {
        return false;
    }
    if p.accepted {
        return true;
    }
    let have = o.count_of(p.group, p.pool.as_deref());
    !o.state.is_running() && reached(p, have) && have != p.from_count
}

fn reached(p: &OperationRecord, have: i32) -> bool {
    match p.direction {
        Direction::Out => have >= p.to_count,
        Direction::In => have <= p.to_count,
    }
}

/// Decide what became of the pending operation.
pub fn resolve(f: &Facts<'_>) -> Resolution {
    let (p, o) = (f.pending, f.observed);
    let have = o.count_of(p.group, p.pool.as_deref());
    // `core`, `task` (the default pool) or `pool batch`, for "{group} is 3".
    let group = match &p.pool {
        Some(name) => format!("pool {name}"),
        None => p.group.as_str().to_string(),
    };
    let group = group.as_str();
    let reached = reached(p, have);
    let age = f.age;
    let caps = &f.capabilities;
    // An unconfirmed call is "not applied" only after the cloud had time to show it.
    let settle = f.settle.max(caps.acceptance_grace);
    let done = |outcome: Outcome, message: String| Resolution::Finished(outcome, message);
    if let ClusterState::Failed(detail) = &o.state {
        return done(
            Outcome::Failed,
            format!("the cluster entered a failed state ({detail})"),
        );
    }

    if !p.accepted {
        // Only the write-ahead record exists: the call may or may not have reached the cloud.
        if !o.state.is_running() && reached && have != p.from_count {
            // Settled but not running (MRS `abnormal`): the cloud's word decides.
            if let Some(OperationProgress::Succeeded) = f.progress {
                return done(
                    Outcome::Succeeded,
                    format!(
                        "{} node(s) confirmed by observation; the cluster is {}",
                        group, o.state
                    ),
                );
            }
        }
        if !o.state.is_running() {
            return Resolution::StillRunning(format!(
                "cluster {}; waiting to see whether {} took effect",
                o.state, p.id
            ));
        }
        if reached && have != p.from_count {
            return done(
                Outcome::Succeeded,
                format!("{} node(s) confirmed by observation", group),
            );
        }
        if have == p.from_count {
            if caps.idempotent_scale_out
                && p.direction == Direction::Out
                && p.attempts < MAX_SENDS
                && age < caps.token_window
            {
                // Same request, same token: the cloud deduplicates it.
                return Resolution::Resend;
            }
            if age >= settle {
                return done(
                    Outcome::NotApplied,
                    format!(
                        "no effect observed {}s after the call; the cloud did not apply it",
                        age.as_secs()
                    ),
                );
            }
            return Resolution::StillRunning("waiting for the cloud to show the operation".into());
        }
        return done(
            Outcome::Failed,
            format!(
                "{} is {have}, neither the start {} nor the target {}",
                group, p.from_count, p.to_count
            ),
        );
    }

    // The flow lookup is a refinement; state and counts decide without it.
    let progress = f.progress.clone().unwrap_or(OperationProgress::Unknown);
    if let OperationProgress::Failed(m) = progress {
        return done(Outcome::Failed, m);
    }
    if let OperationProgress::PartiallyCompleted(m) = &progress {
        // Over, but only partly done: the counts say how far it got. The
        // rest is planned afresh from the next observation.
        if reached {
            return done(Outcome::Succeeded, format!("{} is now {have} ({m})", group));
        }
        if o.state.is_running() {
            return done(
                Outcome::Failed,
                format!("{m}; {} is {have}, not {}", group, p.to_count),
            );
        }
        return Resolution::StillRunning(format!(
            "{} partially completed; waiting for the cluster ({})",
            describe_op(p),
            o.state
        ));
    }
    if progress == OperationProgress::Succeeded && reached && !o.state.is_running() {
        // The cloud says it is over although the cluster is not running
        // (MRS `abnormal`: some nodes unhealthy; the plan waits that out).
        return done(
            Outcome::Succeeded,
            format!("{} is now {have}; the cluster is {}", group, o.state),
        );
    }
    if !o.state.is_running() || progress == OperationProgress::Running {
        return Resolution::StillRunning(format!("{} in progress", describe_op(p)));
    }
    if let Some(failure) = &o.last_resize_failed {
        if !reached {
            return done(
                Outcome::Failed,
                format!("the cloud reports the resize failed: {failure}"),
            );
        }
    }
    if reached {
        return done(Outcome::Succeeded, format!("{} is now {have}", group));
    }
    if progress == OperationProgress::Succeeded || age >= settle {
        return done(
            Outcome::Failed,
            format!(
                "the cluster is idle but {} is {have}, not {}",
                group, p.to_count
            ),
        );
    }
    Resolution::StillRunning("waiting for the cloud to start the operation".into())
}

#[cfg(test)]
mod tests;
