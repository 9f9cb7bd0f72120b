//! `CLUSTERSCALE_REVISION`, the commit the binary is built from, for
//! `clusterscale_build_info{revision}`: the variable of that name when set
//! (an image build from a tarball), else `git rev-parse --short=12 HEAD`,
//! else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CLUSTERSCALE_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("CLUSTERSCALE_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CLUSTERSCALE_REVISION={revision}");
}
