//! Setup that every test file of this crate needs: a cluster model on the
//! test's manual clock, and a loopback listener for a fake to serve on.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use clusterscale_core::clock::ManualClock;
use clusterscale_sim::{SimConfig, SimModel};

/// A cluster `name` of `core` Core and `task` Task nodes whose operations
/// take `operation_time` on `clock`, with no quota.
pub fn model(
    name: &str,
    core: i32,
    task: i32,
    operation_time: Duration,
    clock: Arc<ManualClock>,
) -> Arc<SimModel> {
    Arc::new(SimModel::new(
        name,
        SimConfig {
            initial_core: core,
            initial_task: task,
            operation_time,
            quota: None,
        },
        clock,
    ))
}

/// A listener on a free loopback port, and its base URL (`http://127.0.0.1:N`).
pub async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    (listener, base)
}
