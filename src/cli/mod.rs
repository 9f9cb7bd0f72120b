//! The command line: argument parsing and the subcommands that need no
//! Kubernetes (`crd`, `simulate`, `plan`, `apply`). The fake clouds are the
//! separate `clusterscale-fake-cloud` binary.

pub mod drive;
pub mod signing;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cloud::CloudArgs;
use clusterscale_core::api::validate::describe;
use clusterscale_core::api::{self, ScaledCluster};
use clusterscale_core::clock::{Clock, ScaledClock, SystemClock};
use clusterscale_core::cloud::provider::{ConnectError, ConnectOptions};
use clusterscale_core::cloud::Cloud;
use clusterscale_core::manifest::{self, InputError};
use clusterscale_core::plan::{self, NextMove, PlanInput};
use clusterscale_engine::{EngineConfig, Target};
use clusterscale_sim::{SimConfig, SimModel, SimulatedCloud};

use drive::{drive, print_summary, DriveOptions};

/// Exit code for bad input (unreadable file, invalid spec, bad flags).
pub const EXIT_BAD_INPUT: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "clusterscale",
    version,
    about = "Declarative Core/Task node counts for Tencent Cloud EMR and Huawei Cloud MRS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The CRDs `clusterscale crd` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CrdKind {
    /// crds/scaledcluster.yaml
    Scaledcluster,
    /// crds/cloudaccount.yaml
    Cloudaccount,
}

// Parsed once per process: the size of its largest variant (the controller's
// flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller (in-cluster, or with a kubeconfig).
    Run(crate::controller::run::RunArgs),
    /// Print a CRD (YAML) generated from the Rust types: ScaledCluster, or CloudAccount.
    Crd {
        /// Which CRD.
        #[arg(long, value_enum, default_value = "scaledcluster")]
        kind: CrdKind,
    },
    /// Run the engine against the in-process simulated cloud until converged: a demo that needs no account.
    Simulate {
        /// ScaledCluster manifest with spec.simulated.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 10.0)]
        speed: f64,
        /// Give up after this many simulated seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Observe the real cluster and print its state and the plan; changes nothing.
    Plan {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        account: AccountArg,
        #[command(flatten)]
        clouds: CloudArgs,
    },
    /// Execute the plan: one operation, or with --wait until converged.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Keep reconciling until converged.
        #[arg(long)]
        wait: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Poll interval in seconds while an operation runs.
        #[arg(long, default_value_t = 10)]
        poll: u64,
        #[command(flatten)]
        account: AccountArg,
        #[command(flatten)]
        clouds: CloudArgs,
    },
}

/// `--account FILE` of `plan` and `apply`.
#[derive(clap::Args, Clone, Debug, Default)]
#[group(skip)]
pub struct AccountArg {
    /// A CloudAccount manifest whose keys sign the calls: its workload
    /// identity (the token file exchanged for temporary keys) or its
    /// secretRef (the Secret read through your kubeconfig). Without it: the
    /// SDKs' environment variables, static keys first.
    #[arg(long = "account", value_name = "FILE")]
    pub account: Option<PathBuf>,
}

/// Run a CLI subcommand; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let mut out = std::io::stdout();
    match cli.command {
        Command::Run(args) => match crate::controller::run::run(args).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Command::Crd { kind } => {
            print!(
                "{}",
                match kind {
                    CrdKind::Scaledcluster => api::crd_yaml(),
                    CrdKind::Cloudaccount => api::account::crd_yaml(),
                }
            );
            0
        }
        Command::Simulate {
            file,
            speed,
            timeout,
        } => simulate(&file, speed, timeout, &mut out).await,
        Command::Plan {
            file,
            account,
            clouds,
        } => {
            let input = Input {
                file: &file,
                account: account.account.as_deref(),
                options: clouds.options(None),
            };
            plan_cmd(input, &mut out).await
        }
        Command::Apply {
            file,
            wait,
            timeout,
            poll,
            account,
            clouds,
        } => {
            let timing = ApplyTiming {
                wait,
                timeout,
                poll,
            };
            let input = Input {
                file: &file,
                account: account.account.as_deref(),
                options: clouds.options(None),
            };
            apply(input, timing, &mut out).await
        }
    }
}

/// The manifest in `file`, parsed and checked against every rule (the
/// cloud-neutral ones by the manifest reader, the cloud's own here).
fn load(file: &Path) -> Result<ScaledCluster, i32> {
    let cluster = manifest::load(file).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_BAD_INPUT
    })?;
    // The cloud-neutral rules were checked by the reader; the block's here.
    let violations = crate::cloud::of(&cluster.spec)
        .map(|p| p.validate(&cluster.spec))
        .unwrap_or_default();
    if !violations.is_empty() {
        eprintln!(
            "error: {}",
            InputError::Invalid {
                path: file.display().to_string(),
                message: describe(&violations),
            }
        );
        return Err(EXIT_BAD_INPUT);
    }
    Ok(cluster)
}

/// The identity that operation tokens derive from. A manifest file has no
/// uid, and the CLI keeps no state between runs: each run gets its own
/// random one, so that a later run's operation never carries an earlier run's
/// token (the cloud would drop it as a duplicate). Within one run, a retry
/// reuses the token recorded with the operation.
fn identity(c: &ScaledCluster) -> (String, i64) {
    let uid = c.metadata.uid.clone().unwrap_or_else(|| {
        format!(
            "cli/{}/{}/{:016x}",
            c.metadata.namespace.as_deref().unwrap_or("default"),
            c.metadata.name.as_deref().unwrap_or("unnamed"),
            rand::random::<u64>()
        )
    });
    (uid, c.metadata.generation.unwrap_or(1))
}

async fn simulate(file: &Path, speed: f64, timeout: u64, out: &mut dyn Write) -> i32 {
    let cluster = match load(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(sim) = cluster.spec.simulated.clone() else {
        eprintln!("error: {}: spec.simulated is required for simulate (use plan/apply for tencent or huawei)", file.display());
        return EXIT_BAD_INPUT;
    };
    if !(speed.is_finite() && speed > 0.0) {
        eprintln!("error: --speed must be a positive number");
        return EXIT_BAD_INPUT;
    }
    let clock = Arc::new(ScaledClock::new(speed));
    let config = SimConfig::from(&sim);
    let model = Arc::new(SimModel::new(
        cluster
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "sim".into()),
        config.clone(),
        clock.clone(),
    ));
    let cloud = SimulatedCloud::new(model.clone());
    let (uid, generation) = identity(&cluster);
    let target = Target {
        uid: &uid,
        generation,
        spec: &cluster.spec,
    };
    let pools = &cluster.spec.task_pools;
    let start_pools: String = pools
        .iter()
        .map(|p| {
            let initial = p.simulated.as_ref().map_or(0, |s| s.initial_count);
            format!(", pool {} {initial}", p.name)
        })
        .collect();
    let desired_pools: String = pools
        .iter()
        .map(|p| format!(", pool {} {}", p.name, plan::desired_pool(p).0))
        .collect();
    let _ = writeln!(
        out,
        "clusterscale simulate: {} (x{speed} speed; one operation takes {}s simulated)\nstart: Core {}, Task {}{start_pools}; desired: Core {}, Task {}{desired_pools}",
        file.display(),
        config.operation_time.as_secs(),
        config.initial_core,
        config.initial_task,
        cluster.spec.core.count,
        plan::desired_task(&cluster.spec).0
    );
    let poll = (config.operation_time / 6).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let options = DriveOptions {
        once: false,
        timeout: Duration::from_secs(timeout),
        speed,
        engine: EngineConfig {
            poll,
            ..EngineConfig::default()
        },
    };
    let summary = drive(target, &cloud, clock.as_ref(), &options, out).await;
    print_summary(out, &summary);
    let code = summary.ending.exit_code();
    if code != 0 {
        eprintln!("error: {}", ending_reason(&summary.ending));
    }
    code
}

fn ending_reason(e: &drive::Ending) -> String {
    match e {
        drive::Ending::Converged => "converged".into(),
        drive::Ending::Accepted(m)
        | drive::Ending::Blocked(m)
        | drive::Ending::Failed(m)
        | drive::Ending::TimedOut(m) => m.clone(),
    }
}

/// How `apply` runs.
struct ApplyTiming {
    wait: bool,
    timeout: u64,
    poll: u64,
}

/// What `plan` and `apply` read: the manifest, the CloudAccount of
/// `--account`, and the clouds' knobs.
struct Input<'a> {
    file: &'a Path,
    account: Option<&'a Path>,
    options: ConnectOptions,
}

/// The client of the manifest's cloud, signing as [`signing::resolve`] says.
pub fn connect(
    cluster: &ScaledCluster,
    signing: &signing::Signing,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, ConnectError> {
    let spec = &cluster.spec;
    let name = cluster.metadata.name.as_deref().unwrap_or("sim");
    let keys = signing.keys.clone();
    crate::cloud::connect(spec, name, &signing.creds, keys, clock, options)
}

/// The manifest, the wall clock and the cloud client.
type Loaded = (ScaledCluster, Arc<dyn Clock>, Arc<dyn Cloud>);

/// Load the manifest, find its keys and build its client; or return the
/// exit code (bad input, or a refused key exchange).
async fn load_and_connect(input: Input<'_>) -> Result<Loaded, i32> {
    let cluster = load(input.file)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let signing =
        signing::resolve(&cluster, input.file, input.account, &clock, &input.options).await?;
    let cloud = connect(&cluster, &signing, clock.clone(), input.options).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_BAD_INPUT
    })?;
    signing::fetch(&signing).await?;
    Ok((cluster, clock, cloud))
}

async fn plan_cmd(input: Input<'_>, out: &mut dyn Write) -> i32 {
    let (cluster, clock, cloud) = match load_and_connect(input).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let observed = match cloud.observe_pools(&cluster.spec.task_pools).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}", drive::describe_error(&e));
            return 1;
        }
    };
    let p = plan::plan(&PlanInput {
        spec: &cluster.spec,
        observed: &observed,
        pending: None,
        last_finished: None,
        now: clock.now(),
        capabilities: cloud.capabilities(),
        held: &[],
    });
    let _ = writeln!(out, "cloud: {}", cloud.kind());
    let observed_pools: String = cluster
        .spec
        .task_pools
        .iter()
        .map(|pool| match observed.pools.get(&pool.name) {
            Some(n) => format!(", pool {} {n}", pool.name),
            None => format!(", pool {} not reported", pool.name),
        })
        .collect();
    let desired_pools: String = p
        .desired_pools
        .iter()
        .map(|(name, n)| format!(", pool {name} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "observed: state {}, Core {}, Task {}{observed_pools}",
        observed.state, observed.core, observed.task
    );
    let _ = writeln!(
        out,
        "desired:  Core {}, Task {}{desired_pools}",
        p.desired_core, p.desired_task
    );
    for c in p.clamp.iter().chain(&p.pool_clamps) {
        let _ = writeln!(out, "note: {c}");
    }
    if p.steps.is_empty() {
        let _ = writeln!(out, "plan: nothing to do");
    }
    for (i, s) in p.steps.iter().enumerate() {
        let pool = s
            .pool
            .as_deref()
            .map(|name| format!(" (pool {name})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "plan step {}: {}{pool} {} {}",
            i + 1,
            s.group.as_str(),
            s.direction.as_str(),
            s.count
        );
    }
    for r in &p.passed_over {
        let _ = writeln!(out, "passed over: {r}");
    }
    let _ = match &p.next {
        NextMove::Converged => writeln!(out, "next: none (converged)"),
        NextMove::Execute(op) => writeln!(out, "next: {op}"),
        NextMove::Wait(r) => writeln!(out, "next: wait ({r})"),
        NextMove::Blocked(r) => writeln!(out, "next: blocked ({r})"),
    };
    0
}

async fn apply(input: Input<'_>, timing: ApplyTiming, out: &mut dyn Write) -> i32 {
    let ApplyTiming {
        wait,
        timeout,
        poll,
    } = timing;
    let (cluster, clock, cloud) = match load_and_connect(input).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (uid, generation) = identity(&cluster);
    let target = Target {
        uid: &uid,
        generation,
        spec: &cluster.spec,
    };
    let options = DriveOptions {
        once: !wait,
        timeout: Duration::from_secs(timeout),
        speed: 1.0,
        engine: EngineConfig {
            poll: Duration::from_secs(poll.max(1)),
            ..EngineConfig::default()
        },
    };
    let summary = drive(target, cloud.as_ref(), clock.as_ref(), &options, out).await;
    print_summary(out, &summary);
    let code = summary.ending.exit_code();
    if code != 0 {
        eprintln!("error: {}", ending_reason(&summary.ending));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand (unique ids and
    /// groups: each cloud's flattened knobs among them).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn plan_and_apply_take_an_account_file() {
        for sub in ["plan", "apply"] {
            let cli = Cli::try_parse_from([
                "clusterscale",
                sub,
                "-f",
                "x.yaml",
                "--account",
                "prod.yaml",
            ])
            .expect("parses");
            let account = match cli.command {
                Command::Plan { account, .. } | Command::Apply { account, .. } => account,
                _ => panic!("not {sub}"),
            };
            assert_eq!(account.account, Some(PathBuf::from("prod.yaml")));
        }
        let cli = Cli::try_parse_from(["clusterscale", "plan", "-f", "x.yaml"]).expect("parses");
        let Command::Plan { account, .. } = cli.command else {
            panic!("not plan");
        };
        assert_eq!(account.account, None, "optional");
    }

    #[test]
    fn each_clouds_knobs_reach_its_provider() {
        let cli = Cli::try_parse_from([
            "clusterscale",
            "plan",
            "-f",
            "x.yaml",
            "--tencent-rate-limit",
            "7",
        ])
        .expect("parses");
        let Command::Plan { clouds, .. } = cli.command else {
            panic!("not plan");
        };
        let options = clouds.options(None);
        let tencent = crate::cloud::provider(api::CloudKind::Tencent);
        assert_eq!(tencent.observations_per_second(&options), Some(7));
        let defaults = CloudArgs::default().options(None);
        assert_eq!(
            tencent.observations_per_second(&defaults),
            Some(clusterscale_tencent::DEFAULT_RATE_LIMIT)
        );
        assert_eq!(
            crate::cloud::provider(api::CloudKind::Huawei).observations_per_second(&options),
            Some(5)
        );
    }
}
