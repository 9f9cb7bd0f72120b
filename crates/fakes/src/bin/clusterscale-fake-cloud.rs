//! `clusterscale-fake-cloud`: wire-compatible fake Tencent EMR and Huawei MRS
//! (+ IAM) endpoints over the simulated model, verifying signatures, for
//! tests, demos and users' own CI (`clusterscale_fakes::cli`). A binary of
//! this crate, not of the operator's, so that the `clusterscale` binary and
//! its image never contain the fakes (see `Cargo.toml`).

use std::io::IsTerminal;

use clap::Parser;
use clusterscale_fakes::cli::FakeCloudArgs;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Registry};

/// Exit code for bad flags, as `clusterscale`'s (`clusterscale::cli::EXIT_BAD_INPUT`).
const EXIT_BAD_INPUT: i32 = 2;

/// Log filter when `RUST_LOG` is unset or invalid, as `clusterscale`'s
/// (`clusterscale::telemetry::DEFAULT_FILTER`).
const DEFAULT_FILTER: &str = "info,kube=warn,tower=warn,hyper=warn";

#[derive(Parser, Debug)]
#[command(name = "clusterscale-fake-cloud", version, about)]
struct Cli {
    #[command(flatten)]
    args: FakeCloudArgs,
}

/// Human-readable log lines on stderr; the filter from `RUST_LOG`, else
/// [`DEFAULT_FILTER`].
fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = Registry::default()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(true),
        )
        .try_init();
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging();
    if let Err(e) = clusterscale_fakes::cli::run(cli.args).await {
        eprintln!("error: {e}");
        std::process::exit(EXIT_BAD_INPUT);
    }
}
