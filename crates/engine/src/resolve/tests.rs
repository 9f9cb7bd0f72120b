//! Table tests of the crash-recovery decision: one named case per rule and
//! per boundary, each from facts alone (no cloud, no clock, no store).

use std::time::Duration;

use super::*;
use clusterscale_core::api::NodeGroup;
use clusterscale_core::cloud::UnmanagedNodes;

fn cluster(state: ClusterState, task: i32) -> ObservedCluster {
    ObservedCluster {
        state,
        core: 3,
        task,
        pools: Default::default(),
        nodes: vec![],
        last_resize_failed: None,
        unmanaged: UnmanagedNodes::default(),
    }
}

/// Running, the default pool at `task` and pool `batch` at `batch`.
fn pooled(task: i32, batch: i32) -> ObservedCluster {
    let mut o = running(task);
    o.pools.insert("batch".into(), batch);
    o
}

fn running(task: i32) -> ObservedCluster {
    cluster(ClusterState::Running, task)
}

fn busy(task: i32) -> ObservedCluster {
    cluster(ClusterState::Busy("scaling".into()), task)
}

fn failed_resize(task: i32) -> ObservedCluster {
    ObservedCluster {
        last_resize_failed: Some("Cluster expansion failed".into()),
        ..running(task)
    }
}

/// Tokens with Tencent's window; settle 60 s.
fn tokens() -> Capabilities {
    Capabilities::ALL
}

/// No tokens, Huawei's 5 minutes of acceptance grace.
fn no_tokens() -> Capabilities {
    Capabilities {
        idempotent_scale_out: false,
        token_window: Duration::ZERO,
        acceptance_grace: Duration::from_secs(300),
        ..Capabilities::ALL
    }
}

/// Add 2 Task nodes, 0 -> 2.
fn accepted() -> OperationRecord {
    OperationRecord::test().out(0, 2)
}

fn unaccepted() -> OperationRecord {
    accepted().unaccepted()
}

#[derive(Debug, PartialEq)]
enum Want {
    Running,
    Resend,
    Done(Outcome),
}

struct Case {
    name: &'static str,
    pending: OperationRecord,
    observed: ObservedCluster,
    progress: Option<OperationProgress>,
    age_secs: u64,
    caps: Capabilities,
    needs_status: bool,
    want: Want,
}

fn case(
    name: &'static str,
    pending: OperationRecord,
    observed: ObservedCluster,
    progress: Option<OperationProgress>,
    age_secs: u64,
    want: Want,
) -> Case {
    Case {
        name,
        needs_status: pending.accepted,
        pending,
        observed,
        progress,
        age_secs,
        caps: tokens(),
        want,
    }
}

fn caps(mut c: Case, caps: Capabilities) -> Case {
    c.caps = caps;
    c
}

fn asks(mut c: Case, needs_status: bool) -> Case {
    c.needs_status = needs_status;
    c
}

/// One row a rule or a boundary: name, pending record, observation, the
/// cloud's word (when asked), age in seconds, expected resolution.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use OperationProgress as P;
    use Outcome::*;
    let failed = || cluster(ClusterState::Failed("301".into()), 0);
    let abnormal = |task| cluster(ClusterState::Unavailable("abnormal".into()), task);
    let partial = || Some(P::PartiallyCompleted("1 of 2".into()));
    vec![
        // A failed cluster ends any operation, and nobody asks the cloud.
        asks(case("failed cluster, accepted", accepted(), failed(), None, 0, Want::Done(Failed)), false),
        case("failed cluster, unaccepted", unaccepted(), failed(), None, 0, Want::Done(Failed)),
        // Unconfirmed: only the write-ahead record exists.
        case("unaccepted, target reached", unaccepted(), running(2), None, 0, Want::Done(Succeeded)),
        case("unaccepted, past the target", unaccepted(), running(3), None, 0, Want::Done(Succeeded)),
        case("unaccepted, busy", unaccepted(), busy(0), None, 0, Want::Running),
        asks(case("unaccepted, abnormal at the target, cloud says done", unaccepted(), abnormal(2), Some(P::Succeeded), 0, Want::Done(Succeeded)), true),
        asks(case("unaccepted, abnormal at the target, cloud unsure", unaccepted(), abnormal(2), Some(P::Unknown), 0, Want::Running), true),
        case("unaccepted, no trace, inside the token window", unaccepted(), running(0), None, 239, Want::Resend),
        case("unaccepted, no trace, token window over", unaccepted(), running(0), None, 240, Want::Done(NotApplied)),
        case("unaccepted, no trace, sent five times", unaccepted().attempts(5), running(0), None, 10, Want::Running),
        case("unaccepted, no trace, sent five times, settled", unaccepted().attempts(5), running(0), None, 60, Want::Done(NotApplied)),
        case("unaccepted scale-in is never re-sent", unaccepted().scale_in(2, 0), running(2), None, 10, Want::Running),
        case("unaccepted scale-in, settled", unaccepted().scale_in(2, 0), running(2), None, 60, Want::Done(NotApplied)),
        caps(case("no tokens: no re-send, waits the grace", unaccepted(), running(0), None, 299, Want::Running), no_tokens()),
        caps(case("no tokens: not applied after the grace", unaccepted(), running(0), None, 300, Want::Done(NotApplied)), no_tokens()),
        case("unaccepted, neither start nor target", unaccepted(), running(1), None, 0, Want::Done(Failed)),
        // Accepted: the cloud's word first, then state and counts.
        case("accepted, cloud says failed", accepted(), running(2), Some(P::Failed("x".into())), 0, Want::Done(Failed)),
        case("accepted, partial, reached", accepted(), running(2), partial(), 0, Want::Done(Succeeded)),
        case("accepted, partial, idle short", accepted(), running(1), partial(), 0, Want::Done(Failed)),
        case("accepted, partial, still busy", accepted(), busy(1), partial(), 0, Want::Running),
        case("accepted, done though not running", accepted(), abnormal(2), Some(P::Succeeded), 0, Want::Done(Succeeded)),
        case("accepted, busy", accepted(), busy(1), Some(P::Unknown), 0, Want::Running),
        case("accepted, cloud says running", accepted(), running(2), Some(P::Running), 0, Want::Running),
        case("accepted, resize failed short", accepted(), failed_resize(1), Some(P::Unknown), 0, Want::Done(Failed)),
        case("accepted, resize failed but reached", accepted(), failed_resize(2), Some(P::Unknown), 0, Want::Done(Succeeded)),
        case("accepted, reached", accepted(), running(2), Some(P::Unknown), 0, Want::Done(Succeeded)),
        case("accepted, lookup not given: counts decide", accepted(), running(2), None, 0, Want::Done(Succeeded)),
        case("accepted, cloud done but short", accepted(), running(1), Some(P::Succeeded), 0, Want::Done(Failed)),
        case("accepted, idle short, before settle", accepted(), running(0), Some(P::Unknown), 59, Want::Running),
        case("accepted, idle short, settled", accepted(), running(0), Some(P::Unknown), 60, Want::Done(Failed)),
        case("accepted scale-in, reached", accepted().scale_in(4, 2), running(2), Some(P::Unknown), 0, Want::Done(Succeeded)),
        case("accepted scale-in, below the target", accepted().scale_in(4, 2), running(1), Some(P::Unknown), 0, Want::Done(Succeeded)),
        // A pool's operation is judged by the pool's count, never the default pool's.
        case("pool: unaccepted, the pool reached the target", unaccepted().pool("batch"), pooled(0, 2), None, 0, Want::Done(Succeeded)),
        case("pool: unaccepted, only the default pool moved", unaccepted().pool("batch"), pooled(2, 0), None, 10, Want::Resend),
        case("pool: accepted, reached", accepted().pool("batch"), pooled(0, 2), Some(P::Unknown), 0, Want::Done(Succeeded)),
        case("pool: accepted, idle short, settled", accepted().pool("batch"), pooled(2, 0), Some(P::Unknown), 60, Want::Done(Failed)),
        case("pool: a pool no longer reported counts as 0", accepted().pool("gone").scale_in(2, 0), running(5), Some(P::Unknown), 0, Want::Done(Succeeded)),
    ]
}

fn want(r: &Resolution) -> Want {
    match r {
        Resolution::StillRunning(_) => Want::Running,
        Resolution::Resend => Want::Resend,
        Resolution::Finished(outcome, _) => Want::Done(*outcome),
    }
}

#[test]
fn table() {
    for c in cases() {
        assert_eq!(
            needs_operation_status(&c.pending, &c.observed),
            c.needs_status,
            "{}: whether the operation's status is asked",
            c.name
        );
        let got = decide(
            &c.pending,
            &c.observed,
            c.progress.clone(),
            c.age_secs,
            c.caps,
        );
        assert_eq!(want(&got), c.want, "{}: {got:?}", c.name);
    }
}

/// The decision with the engine's default settle time (60 s).
fn decide(
    pending: &OperationRecord,
    observed: &ObservedCluster,
    progress: Option<OperationProgress>,
    age_secs: u64,
    capabilities: Capabilities,
) -> Resolution {
    resolve(&Facts {
        pending,
        observed,
        progress,
        age: Duration::from_secs(age_secs),
        settle: Duration::from_secs(60),
        capabilities,
    })
}

#[test]
fn a_pools_messages_name_the_pool() {
    let r = resolve(&Facts {
        pending: &accepted().pool("batch"),
        observed: &pooled(0, 2),
        progress: None,
        age: Duration::ZERO,
        settle: Duration::from_secs(60),
        capabilities: tokens(),
    });
    assert_eq!(
        r,
        Resolution::Finished(Outcome::Succeeded, "pool batch is now 2".into())
    );
}

#[test]
fn messages_say_what_was_seen() {
    let got = decide(
        &accepted().group(NodeGroup::Task),
        &running(1),
        Some(OperationProgress::Succeeded),
        0,
        tokens(),
    );
    assert_eq!(
        got,
        Resolution::Finished(
            Outcome::Failed,
            "the cluster is idle but task is 1, not 2".into()
        )
    );
    let got = decide(&unaccepted(), &running(0), None, 300, tokens());
    assert_eq!(
        got,
        Resolution::Finished(
            Outcome::NotApplied,
            "no effect observed 300s after the call; the cloud did not apply it".into()
        )
    );
}

#[test]
fn the_settle_floor_lengthens_a_short_grace_only() {
    let short_grace = Capabilities {
        idempotent_scale_out: false,
        acceptance_grace: Duration::from_secs(10),
        ..Capabilities::ALL
    };
    let at = |secs| want(&decide(&unaccepted(), &running(0), None, secs, short_grace));
    assert_eq!(at(59), Want::Running);
    assert_eq!(at(60), Want::Done(Outcome::NotApplied));
}

/// What a restarted operator sees (the observation, the cloud's word, the
/// age), and the decision on the accepted record and on the write-ahead one.
type CrashFacts = (
    &'static str,
    ObservedCluster,
    Option<OperationProgress>,
    u64,
    Want,
    Want,
);

/// The crash points of one scale-out since the acceptance is no longer
/// written on its own ([`crate::StatusWrite::deferrable`]): a crash after
/// the call now leaves the write-ahead record, accepted or not, where it
/// used to leave the accepted record. For every fact a restarted operator
/// can meet, the decision on what survives now is compared with the one on
/// what survived before.
/// - Where the operation took effect, is running, or the cluster failed:
///   the same outcome.
/// - Where nothing is seen to have happened, the write-ahead record gets a
///   re-send with the same token inside its window (the cloud deduplicates
///   it: no second operation), then NotApplied where the accepted record
///   got Failed: over, nothing applied, planned anew either way.
#[test]
fn a_crash_after_the_acceptance_resolves_as_one_before_it() {
    use Outcome::*;
    use Want::*;
    let busy_op = || Some(OperationProgress::Running);
    #[rustfmt::skip]
    let facts: Vec<CrashFacts> = vec![
        // what the restarted operator sees; before (accepted); now (write-ahead)
        ("took effect", running(2), Some(OperationProgress::Succeeded), 30, Done(Succeeded), Done(Succeeded)),
        ("took effect, seen late", running(2), None, 900, Done(Succeeded), Done(Succeeded)),
        ("running", busy(0), busy_op(), 30, Running, Running),
        ("running, half way", busy(1), busy_op(), 30, Running, Running),
        ("the cluster failed", cluster(ClusterState::Failed("301".into()), 0), None, 30, Done(Failed), Done(Failed)),
        ("no trace yet", running(0), Some(OperationProgress::Unknown), 10, Running, Resend),
        ("no trace, settled", running(0), Some(OperationProgress::Unknown), 240, Done(Failed), Done(NotApplied)),
    ];
    for (what, observed, progress, age, before, now) in facts {
        let asked = |p: &OperationRecord| {
            needs_operation_status(p, &observed)
                .then(|| progress.clone())
                .flatten()
        };
        let before_got = want(&decide(
            &accepted(),
            &observed,
            asked(&accepted()),
            age,
            tokens(),
        ));
        let now_got = want(&decide(
            &unaccepted(),
            &observed,
            asked(&unaccepted()),
            age,
            tokens(),
        ));
        assert_eq!(before_got, before, "{what}: the accepted record");
        assert_eq!(now_got, now, "{what}: the write-ahead record");
    }
}
