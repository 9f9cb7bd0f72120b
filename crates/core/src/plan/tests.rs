//! Table tests: one named case per rule and per boundary; then properties.

use super::*;
use crate::cloud::UnmanagedNodes;
use proptest::prelude::*;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn spec(core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec::simulated(core, task)
}

fn running(core: i32, task: i32) -> ObservedCluster {
    ObservedCluster {
        state: ClusterState::Running,
        core,
        task,
        pools: Default::default(),
        nodes: vec![],
        last_resize_failed: None,
        unmanaged: Default::default(),
    }
}

/// `running(core, task)` with the named pools' counts.
fn with_pools(core: i32, task: i32, pools: &[(&str, i32)]) -> ObservedCluster {
    ObservedCluster {
        pools: pools.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        ..running(core, task)
    }
}

/// `spec(core, task)` with the named pools (simulated blocks, default bounds).
fn pooled(core: i32, task: i32, pools: &[(&str, i32)]) -> ScaledClusterSpec {
    let mut s = spec(core, task);
    s.task_pools = pools
        .iter()
        .map(|(n, c)| TaskPoolSpec::named(*n, *c))
        .collect();
    s
}

fn exec_pool(pool: &str, direction: Direction, count: i32, from: i32) -> NextMove {
    match exec(NodeGroup::Task, direction, count, from) {
        NextMove::Execute(op) => NextMove::Execute(Operation {
            pool: Some(pool.into()),
            ..op
        }),
        other => other,
    }
}

fn pending_op() -> OperationRecord {
    OperationRecord::test().id("op-1").started_at(ts(0))
}

fn exec(group: NodeGroup, direction: Direction, count: i32, from: i32) -> NextMove {
    let to = match direction {
        Direction::Out => from + count,
        Direction::In => from - count,
    };
    NextMove::Execute(Operation {
        group,
        pool: None,
        direction,
        count,
        from_count: from,
        to_count: to,
    })
}

/// The kind of a Wait/Blocked decision, for compact expectations.
#[derive(Debug, PartialEq)]
enum Want {
    Converged,
    Wait(ReasonKind),
    Blocked(ReasonKind),
    Exec(NextMove),
}

fn kind(d: &NextMove) -> Want {
    match d {
        NextMove::Converged => Want::Converged,
        NextMove::Wait(r) => Want::Wait(r.kind),
        NextMove::Blocked(r) => Want::Blocked(r.kind),
        e @ NextMove::Execute(_) => Want::Exec(e.clone()),
    }
}

struct Case {
    name: &'static str,
    spec: ScaledClusterSpec,
    observed: ObservedCluster,
    pending: Option<OperationRecord>,
    last_finished: Option<Timestamp>,
    caps: Capabilities,
    held: Vec<HeldWrite>,
    want: Want,
}

fn case(
    name: &'static str,
    spec: ScaledClusterSpec,
    observed: ObservedCluster,
    want: Want,
) -> Case {
    Case {
        name,
        spec,
        observed,
        pending: None,
        last_finished: None,
        caps: Capabilities::ALL,
        held: Vec::new(),
        want,
    }
}

fn with<F: FnOnce(&mut ScaledClusterSpec)>(mut s: ScaledClusterSpec, f: F) -> ScaledClusterSpec {
    f(&mut s);
    s
}

#[test]
fn planner_rules_table() {
    use Direction::{In, Out};
    use NodeGroup::{Core, Task};
    let no_core_in = Capabilities {
        scale_in_core: false,
        ..Capabilities::ALL
    };
    let no_graceful = Capabilities {
        graceful_scale_in: false,
        ..Capabilities::ALL
    };
    let per_call_20 = Capabilities {
        max_out_per_call: Some(20),
        ..Capabilities::ALL
    };
    let cases = vec![
        case("converged", spec(3, 0), running(3, 0), Want::Converged),
        case(
            "converged at 500 total",
            spec(300, 200),
            running(300, 200),
            Want::Converged,
        ),
        case(
            "grow task",
            spec(3, 4),
            running(3, 0),
            Want::Exec(exec(Task, Out, 4, 0)),
        ),
        case(
            "grow core",
            spec(6, 0),
            running(3, 0),
            Want::Exec(exec(Core, Out, 3, 3)),
        ),
        case(
            "grow core before task",
            spec(6, 4),
            running(3, 0),
            Want::Exec(exec(Core, Out, 3, 3)),
        ),
        case(
            "shrink task before core",
            spec(3, 0),
            running(6, 4),
            Want::Exec(exec(Task, In, 4, 4)),
        ),
        case(
            "grow before shrink",
            spec(6, 0),
            running(3, 4),
            Want::Exec(exec(Core, Out, 3, 3)),
        ),
        case(
            "shrink first when growing would cross 500",
            spec(10, 490),
            running(3, 497),
            Want::Exec(exec(Task, In, 7, 497)),
        ),
        case(
            "shrink core to exactly 3",
            spec(3, 0),
            running(5, 0),
            Want::Exec(exec(Core, In, 2, 5)),
        ),
        case(
            "core 3 -> 2 refused (spec below minimum is raised to 3)",
            spec(2, 0),
            running(3, 0),
            Want::Converged,
        ),
        case(
            "observed core below 3 is grown back",
            spec(3, 0),
            running(2, 0),
            Want::Exec(exec(Core, Out, 1, 2)),
        ),
        case(
            "total 500 exactly allowed",
            spec(3, 497),
            running(3, 400),
            Want::Exec(exec(Task, Out, 97, 400)),
        ),
        case(
            "shrink core first when growing task would cross 500",
            spec(3, 497),
            running(4, 496),
            Want::Exec(exec(Core, In, 1, 4)),
        ),
        case(
            "total 500 reached: a spec over 500 never grows",
            spec(3, 498),
            running(3, 497),
            Want::Blocked(ReasonKind::TotalMaximum),
        ),
        case(
            "near the cap: make room (core in) before growing task",
            spec(3, 497),
            running(100, 395),
            Want::Exec(exec(Core, In, 97, 100)),
        ),
        case(
            "maxStep 1",
            with(spec(3, 4), |s| s.max_step = 1),
            running(3, 0),
            Want::Exec(exec(Task, Out, 1, 0)),
        ),
        case(
            "maxStep larger than the difference",
            with(spec(3, 2), |s| s.max_step = 10),
            running(3, 0),
            Want::Exec(exec(Task, Out, 2, 0)),
        ),
        case(
            "maxStep on scale-in",
            with(spec(3, 0), |s| s.max_step = 3),
            running(3, 10),
            Want::Exec(exec(Task, In, 3, 10)),
        ),
        case(
            "cloud per-call limit",
            spec(3, 50),
            running(3, 0),
            Want::Exec(exec(Task, Out, 20, 0)),
        )
        .caps(per_call_20),
        case(
            "scale-in disallowed",
            with(spec(3, 0), |s| s.scale_in.allowed = false),
            running(3, 4),
            Want::Blocked(ReasonKind::ScaleInDisallowed),
        ),
        case(
            "scale-in disallowed does not block growth",
            with(spec(6, 0), |s| s.scale_in.allowed = false),
            running(3, 4),
            Want::Exec(exec(Core, Out, 3, 3)),
        ),
        case(
            "paused",
            with(spec(3, 4), |s| s.paused = true),
            running(3, 0),
            Want::Blocked(ReasonKind::Paused),
        ),
        case(
            "paused but converged",
            with(spec(3, 0), |s| s.paused = true),
            running(3, 0),
            Want::Converged,
        ),
        case(
            "dry run",
            with(spec(3, 4), |s| s.dry_run = true),
            running(3, 0),
            Want::Blocked(ReasonKind::DryRun),
        ),
        case(
            "cluster busy",
            spec(3, 4),
            ObservedCluster {
                state: ClusterState::Busy("scaling-out".into()),
                ..running(3, 0)
            },
            Want::Wait(ReasonKind::ClusterBusy),
        ),
        case(
            "cluster failed",
            spec(3, 4),
            ObservedCluster {
                state: ClusterState::Failed("302".into()),
                ..running(3, 0)
            },
            Want::Blocked(ReasonKind::ClusterNotRunning),
        ),
        case(
            "cluster unavailable",
            spec(3, 4),
            ObservedCluster {
                state: ClusterState::Unavailable("creating".into()),
                ..running(3, 0)
            },
            Want::Wait(ReasonKind::ClusterNotRunning),
        ),
        case(
            "pending operation",
            spec(3, 4),
            running(3, 0),
            Want::Wait(ReasonKind::OperationPending),
        )
        .pending(pending_op()),
        case(
            "pending operation even when counts match",
            spec(3, 0),
            running(3, 0),
            Want::Wait(ReasonKind::OperationPending),
        )
        .pending(pending_op()),
        case(
            "cooldown not over",
            with(spec(3, 4), |s| s.cooldown_seconds = 60),
            running(3, 0),
            Want::Wait(ReasonKind::Cooldown),
        )
        .finished(ts(-59)),
        case(
            "cooldown over at the boundary",
            with(spec(3, 4), |s| s.cooldown_seconds = 60),
            running(3, 0),
            Want::Exec(exec(Task, Out, 4, 0)),
        )
        .finished(ts(-60)),
        case(
            "task clamped to max",
            with(spec(3, 9), |s| s.task.max = 5),
            running(3, 0),
            Want::Exec(exec(Task, Out, 5, 0)),
        ),
        case(
            "task clamped to min",
            with(spec(3, 0), |s| s.task.min = 2),
            running(3, 0),
            Want::Exec(exec(Task, Out, 2, 0)),
        ),
        case(
            "unsupported core scale-in",
            spec(3, 0),
            running(5, 0),
            Want::Blocked(ReasonKind::Unsupported),
        )
        .caps(no_core_in),
        case(
            "graceful scale-in on a cloud without it",
            with(spec(3, 0), |s| s.scale_in.graceful_timeout_seconds = 120),
            running(3, 2),
            Want::Blocked(ReasonKind::Unsupported),
        )
        .caps(no_graceful),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let got = plan(&PlanInput {
            spec: &c.spec,
            observed: &c.observed,
            pending: c.pending.as_ref(),
            last_finished: c.last_finished,
            now: ts(0),
            capabilities: c.caps,
            held: &c.held,
        });
        if kind(&got.next) != c.want {
            failures.push(format!("{}: want {:?}, got {:?}", c.name, c.want, got.next));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

impl Case {
    fn caps(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }
    fn pending(mut self, p: OperationRecord) -> Self {
        self.pending = Some(p);
        self
    }
    fn finished(mut self, at: Timestamp) -> Self {
        self.last_finished = Some(at);
        self
    }
    /// The group (`pool` of Task, or `Core`) held for the generation.
    fn held(mut self, group: NodeGroup, pool: Option<&str>) -> Self {
        self.held.push(HeldWrite {
            group,
            pool: pool.map(str::to_string),
            generation: 1,
            reason: "PrepaidNodeGroup".into(),
            order_id: Some("CS1".into()),
            request_id: None,
            message: "order CS1 opened".into(),
            since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(0)),
        });
        self
    }
}

#[test]
fn clamp_is_reported() {
    let s = with(spec(3, 9), |s| s.task.max = 5);
    let p = plan(&PlanInput {
        spec: &s,
        observed: &running(3, 5),
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities::ALL,
        held: &[],
    });
    assert_eq!(p.next, NextMove::Converged);
    assert_eq!(p.desired_task, 5);
    let note = p.clamp.expect("clamp reported");
    assert!(
        note.contains("spec.task.count 9") && note.contains("task.max 5"),
        "{note}"
    );
}

#[test]
fn steps_list_the_whole_route_in_order() {
    let p = plan(&PlanInput {
        spec: &spec(6, 1),
        observed: &running(3, 4),
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities::ALL,
        held: &[],
    });
    let route: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.group, s.direction, s.count))
        .collect();
    assert_eq!(
        route,
        vec![
            (NodeGroup::Core, Direction::Out, 3),
            (NodeGroup::Task, Direction::In, 3)
        ]
    );
}

// ---- properties ----

fn arb_state() -> impl Strategy<Value = ClusterState> {
    prop_oneof![
        4 => Just(ClusterState::Running),
        1 => Just(ClusterState::Busy("scaling".into())),
        1 => Just(ClusterState::Failed("failed".into())),
        1 => Just(ClusterState::Unavailable("creating".into())),
    ]
}

prop_compose! {
    fn arb_spec()(core in 0..=520i32, task in 0..=520i32, min in 0..=50i32, span in 0..=500i32,
                  max_step in 0..=30i32, allowed in any::<bool>(), paused in prop::bool::weighted(0.1),
                  dry_run in prop::bool::weighted(0.1)) -> ScaledClusterSpec {
        let mut s = spec(core, task);
        s.task.min = min;
        s.task.max = (min + span).min(MAX_TOTAL);
        s.max_step = max_step;
        s.scale_in.allowed = allowed;
        s.paused = paused;
        s.dry_run = dry_run;
        s
    }
}

prop_compose! {
    fn arb_observed()(core in 0..=500i32, task in 0..=500i32, state in arb_state()) -> ObservedCluster {
        // The cloud itself never holds more than 500 nodes.
        let task = task.min(MAX_TOTAL - core);
        ObservedCluster { state, core, task, pools: Default::default(), nodes: vec![], last_resize_failed: None, unmanaged: Default::default() }
    }
}

proptest! {
    #[test]
    fn never_below_3_core_or_above_500_total(s in arb_spec(), o in arb_observed()) {
        let p = plan(&PlanInput { spec: &s, observed: &o, pending: None, last_finished: None, now: ts(0), capabilities: Capabilities::ALL, held: &[] });
        if let NextMove::Execute(op) = p.next {
            prop_assert!(op.count > 0);
            let (core, task) = match op.group {
                NodeGroup::Core => (op.to_count, o.task),
                NodeGroup::Task => (o.core, op.to_count),
            };
            prop_assert!(task >= 0);
            if op.group == NodeGroup::Core && op.direction == Direction::In {
                prop_assert!(core >= MIN_CORE, "core {} -> {}", o.core, core);
            }
            prop_assert!(core + task <= MAX_TOTAL, "total {} + {}", core, task);
            if s.max_step > 0 { prop_assert!(op.count <= s.max_step); }
            if op.direction == Direction::In { prop_assert!(s.scale_in.allowed); }
            prop_assert!(!s.paused && !s.dry_run);
        }
    }

    #[test]
    fn never_acts_while_busy_or_pending(s in arb_spec(), o in arb_observed(), has_pending in any::<bool>()) {
        let pending = pending_op();
        let p = plan(&PlanInput {
            spec: &s, observed: &o, pending: has_pending.then_some(&pending),
            last_finished: None, now: ts(0), capabilities: Capabilities::ALL,
    held: &[],
        });
        if has_pending || !o.state.is_running() {
            prop_assert!(!matches!(p.next, NextMove::Execute(_)), "{:?}", p.next);
        }
    }

    /// Applying plans step by step (each operation completing as planned)
    /// converges within a bounded number of steps whenever the target is reachable.
    #[test]
    fn repeated_plans_converge(mut s in arb_spec(), o in arb_observed()) {
        s.paused = false;
        s.dry_run = false;
        s.scale_in.allowed = true;
        s.core.count = s.core.count.clamp(MIN_CORE, 400);
        s.task.count = s.task.count.min(MAX_TOTAL - s.core.count);
        let mut o = ObservedCluster { state: ClusterState::Running, ..o };
        let (want_task, _) = desired_task(&s);
        prop_assume!(s.core.count + want_task <= MAX_TOTAL);
        let step = if s.max_step > 0 { s.max_step } else { MAX_TOTAL };
        let bound = 2 + (1000 / step) as usize;
        for _ in 0..=bound {
            let p = plan(&PlanInput { spec: &s, observed: &o, pending: None, last_finished: None, now: ts(0), capabilities: Capabilities::ALL, held: &[] });
            match p.next {
                NextMove::Converged => {
                    prop_assert_eq!((o.core, o.task), (s.core.count, want_task));
                    return Ok(());
                }
                NextMove::Execute(op) => match op.group {
                    NodeGroup::Core => o.core = op.to_count,
                    NodeGroup::Task => o.task = op.to_count,
                },
                other => prop_assert!(false, "unexpected {:?} from {:?}", other, o),
            }
            prop_assert!(o.core + o.task <= MAX_TOTAL);
        }
        prop_assert!(false, "did not converge in {} steps", bound);
    }
}

// ---- named pools ----

#[test]
fn pool_rules_table() {
    use Direction::{In, Out};
    use NodeGroup::{Core, Task};
    let no_pools = Capabilities {
        named_pools: false,
        ..Capabilities::ALL
    };
    let pool_op = OperationRecord::test()
        .id("op-pool")
        .pool("a")
        .started_at(ts(0));
    let cases = vec![
        case(
            "pools at their counts: converged",
            pooled(3, 2, &[("a", 2), ("b", 3)]),
            with_pools(3, 2, &[("a", 2), ("b", 3)]),
            Want::Converged,
        ),
        case(
            "grow Core first",
            pooled(6, 2, &[("a", 2)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec(Core, Out, 3, 3)),
        ),
        case(
            "then the default pool",
            pooled(3, 2, &[("a", 2)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec(Task, Out, 2, 0)),
        ),
        case(
            "then the pools in list order",
            pooled(3, 0, &[("a", 2), ("b", 3)]),
            with_pools(3, 0, &[("a", 0), ("b", 0)]),
            Want::Exec(exec_pool("a", Out, 2, 0)),
        ),
        case(
            "the second pool once the first is at its count",
            pooled(3, 0, &[("a", 2), ("b", 3)]),
            with_pools(3, 0, &[("a", 2), ("b", 0)]),
            Want::Exec(exec_pool("b", Out, 3, 0)),
        ),
        case(
            "a pool the cloud did not report counts as 0",
            pooled(3, 0, &[("a", 2)]),
            running(3, 0),
            Want::Exec(exec_pool("a", Out, 2, 0)),
        ),
        case(
            "shrink the pools in reverse list order",
            pooled(3, 0, &[("a", 0), ("b", 0)]),
            with_pools(3, 0, &[("a", 2), ("b", 3)]),
            Want::Exec(exec_pool("b", In, 3, 3)),
        ),
        case(
            "shrink the pools before the default pool",
            pooled(3, 0, &[("a", 0)]),
            with_pools(3, 4, &[("a", 2)]),
            Want::Exec(exec_pool("a", In, 2, 2)),
        ),
        case(
            "shrink the default pool before Core",
            pooled(3, 0, &[("a", 2)]),
            with_pools(5, 4, &[("a", 2)]),
            Want::Exec(exec(Task, In, 4, 4)),
        ),
        case(
            "grow a pool before shrinking another",
            pooled(3, 0, &[("a", 2), ("b", 0)]),
            with_pools(3, 0, &[("a", 0), ("b", 3)]),
            Want::Exec(exec_pool("a", Out, 2, 0)),
        ),
        case(
            "pools count toward 500: make room first",
            pooled(3, 0, &[("a", 10), ("b", 487)]),
            with_pools(3, 0, &[("a", 497), ("b", 0)]),
            Want::Exec(exec_pool("a", In, 487, 497)),
        ),
        case(
            "growth is capped by the room the pools leave",
            pooled(3, 100, &[("a", 400)]),
            with_pools(3, 0, &[("a", 400)]),
            Want::Exec(exec(Task, Out, 97, 0)),
        ),
        case(
            "a removed pool's nodes count toward 500: growth capped by them",
            pooled(3, 100, &[]),
            ObservedCluster {
                unmanaged: UnmanagedNodes {
                    unlisted_pools: [("gone".to_string(), 450)].into_iter().collect(),
                    ..Default::default()
                },
                ..with_pools(3, 0, &[])
            },
            Want::Exec(exec(Task, Out, 47, 0)),
        ),
        case(
            "500 reached across the pools: growth blocked",
            pooled(3, 11, &[("a", 487)]),
            with_pools(3, 10, &[("a", 487)]),
            Want::Blocked(ReasonKind::TotalMaximum),
        ),
        case(
            "a pool clamped to its max",
            with(pooled(3, 0, &[("a", 9)]), |s| s.task_pools[0].max = 5),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec_pool("a", Out, 5, 0)),
        ),
        case(
            "a pool clamped to its min",
            with(pooled(3, 0, &[("a", 0)]), |s| s.task_pools[0].min = 2),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec_pool("a", Out, 2, 0)),
        ),
        case(
            "maxStep applies to a pool",
            with(pooled(3, 0, &[("a", 4)]), |s| s.max_step = 1),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec_pool("a", Out, 1, 0)),
        ),
        case(
            "the cloud's per-call limit applies to a pool",
            pooled(3, 0, &[("a", 50)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec_pool("a", Out, 20, 0)),
        )
        .caps(Capabilities {
            max_out_per_call: Some(20),
            ..Capabilities::ALL
        }),
        case(
            "scaleIn.allowed applies to a pool",
            with(pooled(3, 0, &[("a", 0)]), |s| s.scale_in.allowed = false),
            with_pools(3, 0, &[("a", 3)]),
            Want::Blocked(ReasonKind::ScaleInDisallowed),
        ),
        case(
            "pools on a cloud without them: blocked, Unsupported",
            pooled(3, 0, &[("a", 2)]),
            running(3, 0),
            Want::Blocked(ReasonKind::Unsupported),
        )
        .caps(no_pools),
        case(
            "a blocked pool does not starve the default pool",
            pooled(3, 0, &[("a", 2)]),
            running(3, 4),
            Want::Exec(exec(Task, In, 4, 4)),
        )
        .caps(no_pools),
        case(
            "a blocked pool does not starve Core",
            pooled(3, 0, &[("a", 2)]),
            running(5, 0),
            Want::Exec(exec(Core, In, 2, 5)),
        )
        .caps(no_pools),
        case(
            "no room to make (scale-in disallowed) and none left: blocked by the first reason",
            with(pooled(3, 0, &[("a", 10), ("b", 487)]), |s| {
                s.scale_in.allowed = false
            }),
            with_pools(3, 0, &[("a", 497), ("b", 0)]),
            Want::Blocked(ReasonKind::ScaleInDisallowed),
        ),
        case(
            "a held pool is blocked with the hold's code",
            pooled(3, 0, &[("a", 2)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Blocked(ReasonKind::Held),
        )
        .held(Task, Some("a")),
        case(
            "a held pool is blocked both ways",
            pooled(3, 0, &[("a", 0)]),
            with_pools(3, 0, &[("a", 2)]),
            Want::Blocked(ReasonKind::Held),
        )
        .held(Task, Some("a")),
        case(
            "a held pool does not starve the next pool",
            pooled(3, 0, &[("a", 2), ("b", 1)]),
            with_pools(3, 0, &[("a", 0), ("b", 0)]),
            Want::Exec(exec_pool("b", Out, 1, 0)),
        )
        .held(Task, Some("a")),
        case(
            "a hold on a pool is not a hold on the default pool",
            pooled(3, 2, &[("a", 0)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Exec(exec(Task, Out, 2, 0)),
        )
        .held(Task, Some("a")),
        case(
            "held Core does not starve the default pool",
            pooled(5, 2, &[]),
            with_pools(3, 0, &[]),
            Want::Exec(exec(Task, Out, 2, 0)),
        )
        .held(Core, None),
        case(
            "an operation pending on a pool holds every group",
            pooled(6, 0, &[("a", 2)]),
            with_pools(3, 0, &[("a", 0)]),
            Want::Wait(ReasonKind::OperationPending),
        )
        .pending(pool_op),
        case(
            "the cooldown after any operation holds the pools",
            with(pooled(3, 0, &[("a", 2)]), |s| s.cooldown_seconds = 60),
            with_pools(3, 0, &[("a", 0)]),
            Want::Wait(ReasonKind::Cooldown),
        )
        .finished(ts(-10)),
        case(
            "paused holds the pools",
            with(pooled(3, 0, &[("a", 2)]), |s| s.paused = true),
            with_pools(3, 0, &[("a", 0)]),
            Want::Blocked(ReasonKind::Paused),
        ),
        case(
            "a busy cluster holds the pools",
            pooled(3, 0, &[("a", 2)]),
            ObservedCluster {
                state: ClusterState::Busy("scaling".into()),
                ..with_pools(3, 0, &[("a", 0)])
            },
            Want::Wait(ReasonKind::ClusterBusy),
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let got = plan(&PlanInput {
            spec: &c.spec,
            observed: &c.observed,
            pending: c.pending.as_ref(),
            last_finished: c.last_finished,
            now: ts(0),
            capabilities: c.caps,
            held: &c.held,
        });
        if kind(&got.next) != c.want {
            failures.push(format!("{}: want {:?}, got {:?}", c.name, c.want, got.next));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_route_over_pools_is_documented_order() {
    let p = plan(&PlanInput {
        spec: &pooled(6, 1, &[("a", 0), ("b", 5), ("c", 1)]),
        observed: &with_pools(3, 4, &[("a", 2), ("b", 0), ("c", 3)]),
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities::ALL,
        held: &[],
    });
    let route: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.group, s.pool.as_deref(), s.direction, s.count))
        .collect();
    use Direction::{In, Out};
    use NodeGroup::{Core, Task};
    assert_eq!(
        route,
        vec![
            (Core, None, Out, 3),
            (Task, Some("b"), Out, 5),
            (Task, Some("c"), In, 2),
            (Task, Some("a"), In, 2),
            (Task, None, In, 3),
        ]
    );
    assert_eq!(
        p.desired_pools,
        vec![("a".into(), 0), ("b".into(), 5), ("c".into(), 1)]
    );
}

#[test]
fn passed_over_steps_are_reported_with_their_reason() {
    let p = plan(&PlanInput {
        spec: &pooled(3, 0, &[("a", 2)]),
        observed: &running(3, 4),
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities {
            named_pools: false,
            ..Capabilities::ALL
        },
        held: &[],
    });
    assert!(matches!(p.next, NextMove::Execute(_)), "{:?}", p.next);
    assert_eq!(p.passed_over.len(), 1, "{:?}", p.passed_over);
    assert_eq!(p.passed_over[0].kind, ReasonKind::Unsupported);
    assert!(
        p.passed_over[0].message.contains("of pool a"),
        "{}",
        p.passed_over[0]
    );
}

#[test]
fn pool_clamps_are_reported() {
    let mut s = pooled(3, 9, &[("a", 9), ("b", 1)]);
    s.task.max = 5;
    s.task_pools[0].max = 4;
    s.task_pools[1].min = 2;
    let p = plan(&PlanInput {
        spec: &s,
        observed: &with_pools(3, 5, &[("a", 4), ("b", 2)]),
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities::ALL,
        held: &[],
    });
    assert_eq!(p.next, NextMove::Converged);
    assert_eq!(p.pool_clamps.len(), 2, "{:?}", p.pool_clamps);
    assert!(
        p.pool_clamps[0].contains("spec.taskPools[a].count 9")
            && p.pool_clamps[0].contains("max 4"),
        "{:?}",
        p.pool_clamps
    );
    let all = p.clamps().expect("clamps");
    assert!(all.starts_with("spec.task.count 9"), "{all}");
    assert_eq!(all.matches("; spec.").count(), 2, "{all}");
}

prop_compose! {
    fn arb_pools()(pools in prop::collection::vec((0..=200i32, 0..=20i32, 0..=300i32), 0..=3))
        -> Vec<TaskPoolSpec> {
        pools.into_iter().enumerate().map(|(i, (count, min, span))| {
            let mut p = TaskPoolSpec::named(format!("p{i}"), count);
            p.min = min;
            p.max = (min + span).min(MAX_TOTAL);
            p
        }).collect()
    }
}

prop_compose! {
    fn arb_pooled_spec()(s in arb_spec(), pools in arb_pools()) -> ScaledClusterSpec {
        ScaledClusterSpec { task_pools: pools, ..s }
    }
}

prop_compose! {
    /// An observation of a cluster with up to 3 pools, at most 500 nodes in all.
    fn arb_pooled_observed()(o in arb_observed(), counts in prop::collection::vec(0..=200i32, 3))
        -> ObservedCluster {
        let mut o = o;
        let mut room = MAX_TOTAL - o.total();
        for (i, c) in counts.into_iter().enumerate() {
            let c = c.min(room);
            room -= c;
            o.pools.insert(format!("p{i}"), c);
        }
        o
    }
}

/// Apply `op` to `o` as if it completed.
fn complete(o: &mut ObservedCluster, op: &Operation) {
    match (&op.pool, op.group) {
        (Some(p), _) => {
            o.pools.insert(p.clone(), op.to_count);
        }
        (None, NodeGroup::Core) => o.core = op.to_count,
        (None, NodeGroup::Task) => o.task = op.to_count,
    }
}

fn record_of(op: &Operation) -> OperationRecord {
    let mut r = pending_op();
    r.group = op.group;
    r.pool = op.pool.clone();
    r.direction = op.direction;
    r.count = op.count;
    r.from_count = op.from_count;
    r.to_count = op.to_count;
    r
}

proptest! {
    #[test]
    fn pools_never_below_3_core_or_above_500_total(s in arb_pooled_spec(), o in arb_pooled_observed(),
                                                   named in any::<bool>()) {
        let caps = Capabilities { named_pools: named, ..Capabilities::ALL };
        let p = plan(&PlanInput { spec: &s, observed: &o, pending: None, last_finished: None, now: ts(0), capabilities: caps, held: &[] });
        if let NextMove::Execute(op) = p.next {
            prop_assert!(op.count > 0);
            prop_assert!(named || op.pool.is_none(), "{:?}", op);
            let mut after = o.clone();
            complete(&mut after, &op);
            prop_assert!(op.to_count >= 0);
            if op.group == NodeGroup::Core && op.direction == Direction::In {
                prop_assert!(after.core >= MIN_CORE, "core {} -> {}", o.core, after.core);
            }
            if op.direction == Direction::Out {
                prop_assert!(after.total() <= MAX_TOTAL, "total {} -> {}", o.total(), after.total());
            }
            if s.max_step > 0 { prop_assert!(op.count <= s.max_step); }
            if op.direction == Direction::In { prop_assert!(s.scale_in.allowed); }
        }
    }

    /// A sequence of passes over a cluster whose operations take a while:
    /// each pass plans with the operation in flight (if any), and `done`
    /// says whether the operation in flight completes before the pass. No
    /// plan ever starts a second operation while one is in flight, and no
    /// completed operation ever takes Core below 3 or the total above 500.
    #[test]
    fn sequences_of_plans_keep_every_rule(mut s in arb_pooled_spec(), o in arb_pooled_observed(),
                                          done in prop::collection::vec(any::<bool>(), 1..60)) {
        s.paused = false;
        s.dry_run = false;
        let mut o = ObservedCluster { state: ClusterState::Running, ..o };
        o.core = o.core.max(MIN_CORE);
        prop_assume!(o.total() <= MAX_TOTAL);
        let mut in_flight: Option<Operation> = None;
        for finish in done {
            if finish {
                if let Some(op) = in_flight.take() {
                    complete(&mut o, &op);
                }
            }
            let pending = in_flight.as_ref().map(record_of);
            let p = plan(&PlanInput { spec: &s, observed: &o, pending: pending.as_ref(), last_finished: None, now: ts(0), capabilities: Capabilities::ALL, held: &[] });
            if let NextMove::Execute(op) = p.next {
                prop_assert!(in_flight.is_none(), "a second operation {:?} while {:?} is in flight", op, in_flight);
                in_flight = Some(op);
            }
            prop_assert!(o.core >= MIN_CORE, "core {}", o.core);
            prop_assert!(o.total() <= MAX_TOTAL, "total {}", o.total());
        }
    }

    /// Passes whose operations complete at once converge, pools included,
    /// whenever the target is reachable.
    #[test]
    fn repeated_plans_converge_with_pools(mut s in arb_pooled_spec(), o in arb_pooled_observed()) {
        s.paused = false;
        s.dry_run = false;
        s.scale_in.allowed = true;
        s.core.count = s.core.count.clamp(MIN_CORE, 400);
        let mut o = ObservedCluster { state: ClusterState::Running, ..o };
        // The cloud reports the spec's pools only (`Cloud::observe_pools`).
        o.pools.retain(|name, _| s.pool(name).is_some());
        let (want_task, _) = desired_task(&s);
        let want_pools: i32 = s.task_pools.iter().map(|p| desired_pool(p).0).sum();
        prop_assume!(s.core.count + want_task + want_pools <= MAX_TOTAL);
        let step = if s.max_step > 0 { s.max_step } else { MAX_TOTAL };
        let bound = 2 + (2000 / step) as usize * 2;
        for _ in 0..=bound {
            let p = plan(&PlanInput { spec: &s, observed: &o, pending: None, last_finished: None, now: ts(0), capabilities: Capabilities::ALL, held: &[] });
            match p.next {
                NextMove::Converged => {
                    prop_assert_eq!((o.core, o.task), (s.core.count, want_task));
                    for (name, want) in &p.desired_pools {
                        prop_assert_eq!(o.count_of(NodeGroup::Task, Some(name)), *want);
                    }
                    return Ok(());
                }
                NextMove::Execute(op) => complete(&mut o, &op),
                other => prop_assert!(false, "unexpected {:?} from {:?}", other, o),
            }
            prop_assert!(o.total() <= MAX_TOTAL);
        }
        prop_assert!(false, "did not converge in {} steps", bound);
    }
}

#[test]
fn a_held_step_says_the_holds_code_and_message() {
    let c = case(
        "held",
        pooled(3, 0, &[("a", 2)]),
        with_pools(3, 0, &[("a", 0)]),
        Want::Converged,
    )
    .held(NodeGroup::Task, Some("a"));
    let p = plan(&PlanInput {
        spec: &c.spec,
        observed: &c.observed,
        pending: None,
        last_finished: None,
        now: ts(0),
        capabilities: Capabilities::ALL,
        held: &c.held,
    });
    let NextMove::Blocked(r) = p.next else {
        panic!("{:?}", p.next)
    };
    assert_eq!(r.code(), "PrepaidNodeGroup");
    assert_eq!(
        r.to_string(),
        "PrepaidNodeGroup: 2 task node(s) of pool a not added: order CS1 opened"
    );
}
