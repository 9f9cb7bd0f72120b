//! `clusterscale-fake-cloud`: wire-compatible fake Tencent EMR and Huawei MRS
//! (+ IAM) endpoints over the simulated model, verifying signatures, for
//! tests, demos and users' own CI (`clusterscale_fakes::cli`). A binary of its
//! own so that the `clusterscale` binary and its image never contain the fakes.

use clap::Parser;
use clusterscale::telemetry::{self, LogFormat};
use clusterscale_fakes::cli::FakeCloudArgs;

#[derive(Parser, Debug)]
#[command(name = "clusterscale-fake-cloud", version, about)]
struct Cli {
    #[command(flatten)]
    args: FakeCloudArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init(LogFormat::Text);
    if let Err(e) = clusterscale_fakes::cli::run(cli.args).await {
        eprintln!("error: {e}");
        std::process::exit(clusterscale::cli::EXIT_BAD_INPUT);
    }
}
