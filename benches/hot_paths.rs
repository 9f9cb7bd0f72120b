//! Numbers for the hot paths: `cargo bench --bench hot_paths`.
//!
//! Prints nanoseconds per call for the planner, both request signers and one
//! engine pass over the simulated cloud. Under `cargo test` (no `--bench`
//! argument) it runs a few iterations only, as a smoke test.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterscale_core::api::ScaledClusterSpec;
use clusterscale_core::clock::{Clock, ManualClock};
use clusterscale_core::cloud::{Capabilities, ClusterState, ObservedCluster};
use clusterscale_core::plan::{plan, PlanInput};
use clusterscale_engine::{EngineConfig, MemoryStore, Target};
use clusterscale_sim::{SimConfig, SimModel, SimulatedCloud};

fn spec(core: i32, task: i32) -> ScaledClusterSpec {
    ScaledClusterSpec {
        max_step: 7,
        ..ScaledClusterSpec::simulated(core, task)
    }
}

fn measure(name: &str, iterations: u32, mut f: impl FnMut(u32)) {
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    let elapsed = start.elapsed();
    println!(
        "{name:<40} {:>10.0} ns/op  ({iterations} iterations, {:.3} s)",
        elapsed.as_nanos() as f64 / f64::from(iterations),
        elapsed.as_secs_f64()
    );
}

/// The `/metrics` text at 1,000 and 10,000 ScaledClusters (each with Core
/// and Task counts, four conditions and a last observation: the series a
/// converged resource has), with and without the per-resource series:
/// its size, and the time to encode it (what a scrape costs the operator,
/// before HTTP).
fn scrape_at_fleet_sizes(full: bool) {
    use clusterscale::controller::serve::metrics::Metrics;
    use clusterscale_core::api::NodeGroup;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let at = jiff::Timestamp::from_second(1_700_000_000).expect("valid");
    let conditions: Vec<Condition> = ["Ready", "Progressing", "Degraded", "ClusterHealthy"]
        .iter()
        .map(|t| Condition {
            type_: (*t).into(),
            status: if *t == "Ready" { "True" } else { "False" }.into(),
            reason: "r".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(at),
        })
        .collect();
    for fleet in [1_000u32, 10_000] {
        for per_resource in [true, false] {
            let m = Metrics::new();
            m.set_per_resource(per_resource);
            for i in 0..fleet {
                let (ns, name) = (format!("team-{:03}", i % 200), format!("cluster-{i:05}"));
                m.conditions(&ns, &name, &conditions);
                m.nodes(&ns, &name, NodeGroup::Core, 5, Some(5));
                m.nodes(&ns, &name, NodeGroup::Task, 20, Some(20));
                m.observed_at(&ns, &name, Some(at));
            }
            let first = m.encode();
            let iterations = if full { 20 } else { 2 };
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(m.encode());
            }
            let per = start.elapsed() / iterations;
            println!(
                "/metrics at {fleet:>6} resources{:<22} {:>8.2} MB {:>6} lines {:>8.1} ms/scrape",
                if per_resource {
                    ""
                } else {
                    " (--per-resource-metrics=false)"
                },
                first.len() as f64 / 1e6,
                first.lines().count(),
                per.as_secs_f64() * 1e3
            );
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = |count: u32| if full { count } else { 10 };

    let specs: Vec<_> = (0..64).map(|i| spec(3 + i % 50, (i * 7) % 400)).collect();
    let observed: Vec<_> = (0..64)
        .map(|i| ObservedCluster {
            state: ClusterState::Running,
            core: 3 + (i * 3) % 60,
            task: (i * 11) % 400,
            pools: Default::default(),
            nodes: vec![],
            last_resize_failed: None,
            unmanaged: Default::default(),
        })
        .collect();
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("valid");
    measure("plan (pure planner)", n(2_000_000), |i| {
        let i = i as usize;
        black_box(plan(&PlanInput {
            spec: &specs[i % 64],
            observed: &observed[(i / 64) % 64],
            pending: None,
            last_finished: None,
            now,
            capabilities: Capabilities::ALL,
            held: &[],
        }));
    });

    let body = br#"{"InstanceId":"emr-abcd1234","PayMode":0,"TimeUnit":"s","TimeSpan":3600,"ClientToken":"cs-0123456789abcdef01234567-1","TaskCount":2}"#;
    measure("TC3-HMAC-SHA256 sign (Tencent)", n(200_000), |i| {
        let input = clusterscale_tencent::sign::SigningInput {
            secret_id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            secret_key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service: "emr",
            host: "emr.tencentcloudapi.com",
            content_type: "application/json",
            timestamp: 1_700_000_000 + i64::from(i),
            payload: body,
        };
        black_box(clusterscale_tencent::sign::sign(&input).expect("signs"));
    });

    let headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        (
            "Host".to_string(),
            "mrs.cn-north-4.myhuaweicloud.com".to_string(),
        ),
        (
            "X-Project-Id".to_string(),
            "0123456789abcdef0123456789abcdef".to_string(),
        ),
        ("X-Sdk-Date".to_string(), "20240115T083000Z".to_string()),
    ];
    measure("SDK-HMAC-SHA256 sign (Huawei)", n(200_000), |_| {
        let parts = clusterscale_huawei::sign::RequestParts {
            method: "PUT",
            path: "/v1.1/0123456789abcdef0123456789abcdef/cluster_infos/a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d",
            query: &[],
            headers: &headers,
            body,
        };
        black_box(
            clusterscale_huawei::sign::sign(
                "HWEXAMPLEAK0000MRS01",
                "HwExampleSecretKey0000000000000000000MRS01",
                &parts,
            )
            .expect("signs"),
        );
    });

    scrape_at_fleet_sizes(full);

    // One engine pass against the simulated cloud: converge 3/0 -> 53/447 in steps of 7.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = n(20);
    let mut passes = 0u32;
    let target_spec = spec(53, 447);
    let start = Instant::now();
    for _ in 0..rounds {
        let clock = Arc::new(ManualClock::default());
        let model = Arc::new(SimModel::new(
            "bench",
            SimConfig {
                operation_time: Duration::from_secs(10),
                ..SimConfig::default()
            },
            clock.clone(),
        ));
        let cloud = SimulatedCloud::new(model);
        let mut store = MemoryStore::default();
        let target = Target {
            uid: "bench",
            generation: 1,
            spec: &target_spec,
        };
        runtime.block_on(async {
            loop {
                let current = store.status.clone();
                let report = clusterscale_engine::reconcile(
                    target,
                    &current,
                    &cloud,
                    clock.as_ref() as &dyn Clock,
                    &mut store,
                    &EngineConfig::default(),
                )
                .await
                .expect("memory store");
                passes += 1;
                if report.status.phase == clusterscale_core::api::Phase::Converged {
                    break;
                }
                clock.advance(report.requeue_after.unwrap_or(Duration::from_secs(10)));
            }
        });
    }
    let elapsed = start.elapsed();
    println!(
        "{:<40} {:>10.0} ns/op  ({passes} passes in {rounds} convergences of 3/0 -> 53/447, {:.3} s)",
        "engine pass (simulated cloud)",
        elapsed.as_nanos() as f64 / f64::from(passes),
        elapsed.as_secs_f64()
    );
}
