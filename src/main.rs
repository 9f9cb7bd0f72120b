//! `clusterscale`: thin entry point; everything lives in the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = clusterscale::cli::Cli::parse();
    let code = clusterscale::cli::run(cli).await;
    std::process::exit(code);
}
