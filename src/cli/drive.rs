//! Running the engine in a loop from the command line, with progress output
//! for a person watching: `simulate` and `apply --wait`.

use std::io::Write;
use std::time::{Duration, Instant};

use clusterscale_core::api::{OperationRecord, Phase, ScaledClusterStatus};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::{Cloud, CloudError};
use clusterscale_engine::{EngineConfig, EngineEvent, EventType, MemoryStore, Target};

/// How the loop ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Converged,
    /// One operation was accepted and `--wait` was not given.
    Accepted(String),
    /// Paused, dry run, or a rule the planner will not break.
    Blocked(String),
    /// A cloud error that retrying will not fix, or a failed operation.
    Failed(String),
    TimedOut(String),
}

impl Ending {
    /// The process exit code: 0 converged/accepted, 1 failed, 3 blocked, 4 timed out (2 is bad input).
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Converged | Ending::Accepted(_) => 0,
            Ending::Failed(_) => 1,
            Ending::Blocked(_) => 3,
            Ending::TimedOut(_) => 4,
        }
    }
}

/// Loop settings.
pub struct DriveOptions {
    /// Stop after the first accepted operation (apply without --wait).
    pub once: bool,
    /// Give up after this much (clock) time.
    pub timeout: Duration,
    /// Clock seconds per real second (simulate --speed); 1 for real clouds.
    pub speed: f64,
    pub engine: EngineConfig,
}

/// What happened, for the summary.
#[derive(Debug)]
pub struct Summary {
    pub ending: Ending,
    pub operations: usize,
    pub elapsed: Duration,
    pub real: Duration,
    pub status: ScaledClusterStatus,
}

/// Reconcile until converged, blocked, failed or timed out.
pub async fn drive(
    target: Target<'_>,
    cloud: &dyn Cloud,
    clock: &dyn Clock,
    options: &DriveOptions,
    out: &mut dyn Write,
) -> Summary {
    let mut store = MemoryStore::default();
    let start = clock.now();
    let real_start = Instant::now();
    let mut operations = 0;
    let mut last_line = String::new();
    let elapsed = |clock: &dyn Clock| {
        Duration::try_from(start.duration_until(clock.now())).unwrap_or_default()
    };
    let ending = loop {
        let current = store.status.clone();
        let report = match clusterscale_engine::reconcile(
            target,
            &current,
            cloud,
            clock,
            &mut store,
            &options.engine,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => break Ending::Failed(e.to_string()),
        };
        let at = stamp(elapsed(clock));
        for event in &report.events {
            print_event(out, &at, event);
        }
        if let Some(op) = &report.started {
            operations += 1;
            let _ = writeln!(
                out,
                "{at} operation {} sent (attempt {})",
                op.id, op.attempts
            );
        }
        let mut line = progress_line(target, &report.status);
        if let Some(p) = &report.status.pending_operation {
            let age =
                Duration::try_from(p.started_at.0.duration_until(clock.now())).unwrap_or_default();
            line.push_str(&format!(" [{}s]", age.as_secs()));
        }
        if line != last_line {
            let _ = writeln!(out, "{at} {line}");
            last_line = line;
        }
        if let Some(ending) = decide_ending(
            &report.status,
            report.error.as_ref(),
            report.started.as_ref(),
            options.once,
        ) {
            break ending;
        }
        if elapsed(clock) >= options.timeout {
            break Ending::TimedOut(format!(
                "not converged after {}s: {}",
                options.timeout.as_secs(),
                report.status.message.clone().unwrap_or_default()
            ));
        }
        let wait = report.requeue_after.unwrap_or(options.engine.poll);
        tokio::time::sleep(wait.div_f64(options.speed.max(0.001))).await;
    };
    Summary {
        ending,
        operations,
        elapsed: elapsed(clock),
        real: real_start.elapsed(),
        status: store.status,
    }
}

fn decide_ending(
    status: &ScaledClusterStatus,
    error: Option<&CloudError>,
    started: Option<&OperationRecord>,
    once: bool,
) -> Option<Ending> {
    if status.phase == Phase::Converged {
        return Some(Ending::Converged);
    }
    if once {
        if let Some(op) = started {
            return Some(Ending::Accepted(format!(
                "operation {} accepted{}",
                op.id,
                op.request_id
                    .as_deref()
                    .map(|r| format!(" (request id {r})"))
                    .unwrap_or_default()
            )));
        }
    }
    if let Some(e) = error {
        if !e.class.retryable() {
            return Some(Ending::Failed(describe_error(e)));
        }
    }
    match status.phase {
        Phase::Blocked | Phase::Paused => {
            Some(Ending::Blocked(status.message.clone().unwrap_or_default()))
        }
        Phase::Failed if error.is_none() => {
            let message = status
                .last_error
                .as_ref()
                .map(|e| format!("{} {}: {}", e.class, e.code, e.message));
            Some(Ending::Failed(message.unwrap_or_else(|| {
                status.message.clone().unwrap_or_default()
            })))
        }
        _ => None,
    }
}

/// `class code: message (action, request id)`: everything the cloud said.
pub fn describe_error(e: &CloudError) -> String {
    format!(
        "{} {}: {} (action {}, request id {})",
        e.class,
        e.code,
        e.message,
        e.action,
        e.request_id.as_deref().unwrap_or("none")
    )
}

fn stamp(d: Duration) -> String {
    let s = d.as_secs();
    format!("[+{:02}:{:02}]", s / 60, s % 60)
}

fn print_event(out: &mut dyn Write, at: &str, e: &EngineEvent) {
    let mark = match e.type_ {
        EventType::Normal => "event",
        EventType::Warning => "WARNING",
    };
    let _ = writeln!(out, "{at} {mark} {}: {}", e.reason, e.message);
}

/// `core 3/6 task 0/4 [####......] ScalingOut: add 3 core node(s), 3 -> 6`
pub fn progress_line(target: Target<'_>, status: &ScaledClusterStatus) -> String {
    let (core, task) = status
        .observed
        .as_ref()
        .map(|o| (o.core, o.task))
        .unwrap_or_default();
    let want_core = target.spec.core.count;
    let (want_task, _) = clusterscale_core::plan::desired_task(target.spec);
    let (pools_have, pools_want) = status.pools.iter().fold((0, 0), |(h, w), p| {
        (h + p.observed.unwrap_or(0).min(p.desired), w + p.desired)
    });
    let bar = bar(
        core.min(want_core) + task.min(want_task) + pools_have,
        want_core + want_task + pools_want,
    );
    let state = status
        .observed
        .as_ref()
        .and_then(|o| o.state.clone())
        .unwrap_or_default();
    let pools = status
        .pools_summary
        .as_deref()
        .map(|s| format!(" pools {s}"))
        .unwrap_or_default();
    format!(
        "core {core}/{want_core} task {task}/{want_task}{pools} {bar} {:?} ({state}): {}",
        status.phase,
        status.message.clone().unwrap_or_default()
    )
}

fn bar(have: i32, want: i32) -> String {
    const WIDTH: i32 = 20;
    let filled = if want <= 0 {
        WIDTH
    } else {
        (have.min(want) * WIDTH / want).clamp(0, WIDTH)
    };
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize)
    )
}

/// Print the final summary.
pub fn print_summary(out: &mut dyn Write, s: &Summary) {
    let (core, task) = s
        .status
        .observed
        .as_ref()
        .map(|o| (o.core, o.task))
        .unwrap_or_default();
    let outcome = match &s.ending {
        Ending::Converged => "converged".to_string(),
        Ending::Accepted(m) => m.clone(),
        Ending::Blocked(m) => format!("blocked: {m}"),
        Ending::Failed(m) => format!("failed: {m}"),
        Ending::TimedOut(m) => format!("timed out: {m}"),
    };
    let pools: Vec<String> = s
        .status
        .pools
        .iter()
        .map(|p| {
            let n = p.observed.map_or_else(|| "?".into(), |n| n.to_string());
            format!(", pool {} {n}", p.name)
        })
        .collect();
    let pools = pools.concat();
    let _ = writeln!(
        out,
        "summary: {outcome}; {} operation(s) issued; {}s elapsed (cloud time), {:.1}s real; final Core {core}, Task {task}{pools}",
        s.operations,
        s.elapsed.as_secs(),
        s.real.as_secs_f64()
    );
}
