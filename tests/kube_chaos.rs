//! Chaos: SIGKILL `clusterscale run` at random instants while scale
//! operations run on several clusters of both fake clouds, restart it each
//! time, and prove from the fakes' journals that no operation was ever
//! issued twice and that every cluster converges.
//!
//! Each cluster's Task target moves through a sequence (out and in, at most
//! `maxStep` nodes per operation); a target moves on only once the cluster
//! has converged on the previous one, so the exact number of effective
//! operations is known: the sum of ceil(|change| / maxStep). The journals
//! must hold exactly that many writes. Tencent scale-outs must also carry
//! distinct ClientTokens (a token sent again must not change the cluster).
//!
//! `CHAOS_KILLS` (default 50) sets the number of kills; `CHAOS_SEED` the seed
//! of the kill instants (printed, so a failure can be replayed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::*;

/// Task targets each cluster goes through, after its initial 0.
const TARGETS: [i32; 8] = [6, 2, 8, 0, 6, 2, 8, 4];
const MAX_STEP: i32 = 2;
const CORE: i32 = 3;
/// Fake-cloud processes; each serves one Tencent and one Huawei cluster.
const FAKES: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cloud {
    Tencent,
    Huawei,
}

struct Cluster {
    name: String,
    cloud: Cloud,
    fake: usize,
    /// Targets set so far, starting from the initial count 0.
    history: Vec<i32>,
}

fn instance(fake: usize) -> String {
    format!("emr-chaos{fake:03}")
}

fn huawei_id(fake: usize) -> String {
    format!("0c4a05f0-0000-4000-8000-00000000000{fake}")
}

fn cluster_manifest(c: &Cluster, endpoint: &str, task: i32) -> String {
    let cloud = match c.cloud {
        Cloud::Tencent => tencent_block(&instance(c.fake), endpoint, "tc-creds"),
        Cloud::Huawei => huawei_block(&huawei_id(c.fake), endpoint, "hw-creds"),
    };
    manifest(&c.name, &cloud, CORE, task, &fast_policy(MAX_STEP))
}

/// Operations needed to walk `history`: ceil(|change| / maxStep) per change.
fn operations_needed(history: &[i32]) -> usize {
    history
        .windows(2)
        .map(|w| ((w[1] - w[0]).abs() + MAX_STEP - 1) / MAX_STEP)
        .sum::<i32>() as usize
}

#[tokio::test]
async fn random_sigkills_never_duplicate_an_operation() {
    let kills: usize = std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("chaos: {kills} kills, CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let t = TestNs::new("chaos").await;
    t.secret(
        "tc-creds",
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", TENCENT_SECRET_KEY),
        ],
    );
    t.secret(
        "hw-creds",
        &[("accessKey", HUAWEI_AK), ("secretKey", HUAWEI_SK)],
    );
    let fakes: Vec<FakeCloud> = (0..FAKES)
        .map(|i| {
            FakeCloud::start(
                &t,
                &format!("chaos{i}"),
                &[
                    "--tencent",
                    "127.0.0.1:0",
                    "--tencent-instance-id",
                    &instance(i),
                    "--huawei",
                    "127.0.0.1:0",
                    "--huawei-cluster-id",
                    &huawei_id(i),
                    "--operation-seconds",
                    "1",
                ],
            )
        })
        .collect();
    let endpoint = |c: &Cluster| -> String {
        let f = &fakes[c.fake];
        match c.cloud {
            Cloud::Tencent => f.tencent.clone().expect("tencent endpoint"),
            Cloud::Huawei => f.huawei.clone().expect("huawei endpoint"),
        }
    };
    let mut clusters: Vec<Cluster> = (0..FAKES)
        .flat_map(|fake| {
            [Cloud::Tencent, Cloud::Huawei].map(|cloud| Cluster {
                name: format!(
                    "{}-{fake}",
                    if cloud == Cloud::Tencent {
                        "emr"
                    } else {
                        "mrs"
                    }
                ),
                cloud,
                fake,
                history: vec![0, TARGETS[0]],
            })
        })
        .collect();
    for c in &clusters {
        t.apply_ok(&cluster_manifest(c, &endpoint(c), TARGETS[0]));
    }

    // Kill at random instants; between kills, move every converged cluster on.
    let start = Instant::now();
    let mut lifetimes = Vec::new();
    for _ in 0..kills {
        let mut op = Operator::start(&t, "chaos");
        let life = Duration::from_millis(rng.random_range(200..2500));
        lifetimes.push(life);
        tokio::time::sleep(life).await;
        op.sigkill();
        for c in clusters.iter_mut() {
            let current = *c.history.last().expect("history");
            if let Some(sc) = t.get(&c.name).await {
                if converged_at(&sc, CORE, current) {
                    // Cycle through the targets, so operations run until the last kill.
                    let next = TARGETS[(c.history.len() - 1) % TARGETS.len()];
                    c.history.push(next);
                    t.kubectl_ok(&[
                        "patch",
                        "scl",
                        &c.name,
                        "--type=merge",
                        "-p",
                        &format!("{{\"spec\":{{\"task\":{{\"count\":{next}}}}}}}"),
                    ]);
                }
            }
        }
    }
    let chaos_secs = start.elapsed().as_secs_f64();

    // A last, uninterrupted run: everything converges on its last target.
    let _op = Operator::start(&t, "chaos");
    for c in &clusters {
        let target = *c.history.last().expect("history");
        t.wait_sc(
            &c.name,
            &format!("{} Ready at {CORE}/{target} after the kills", c.name),
            // A kill between the write-ahead record and a Huawei call costs
            // the 120 s acceptance grace before the record is dropped.
            Duration::from_secs(300),
            |sc| converged_at(sc, CORE, target),
        )
        .await;
    }

    // The journals: exactly the operations needed, none twice.
    let mut total_writes = 0;
    let mut total_needed = 0;
    let mut report = BTreeMap::new();
    for c in &clusters {
        let f = &fakes[c.fake];
        let (cloud, writes) = match c.cloud {
            Cloud::Tencent => ("tencent", f.writes("tencent")),
            Cloud::Huawei => ("huawei", f.writes("huawei")),
        };
        if c.cloud == Cloud::Tencent {
            // ScaleOutInstance carries a ClientToken; TerminateClusterNodes has none.
            let tokens: Vec<String> = writes
                .iter()
                .filter(|l| l.action == "ScaleOutInstance")
                .map(|l| {
                    l.params
                        .get("ClientToken")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            let distinct: BTreeSet<&String> = tokens.iter().collect();
            t.check(
                distinct.len() == tokens.len() && !distinct.contains(&String::new()),
                || {
                    format!(
                        "{}: Tencent writes with a missing or repeated ClientToken: {tokens:?}",
                        c.name
                    )
                },
            );
        }
        let needed = operations_needed(&c.history);
        t.check(writes.len() == needed, || {
            format!(
                "{} ({cloud}): targets {:?} need exactly {needed} operations; the fake applied {}: {:#?}",
                c.name,
                c.history,
                writes.len(),
                writes
                    .iter()
                    .map(|l| format!("{} {} {}", l.at, l.action, l.params))
                    .collect::<Vec<_>>()
            )
        });
        total_writes += writes.len();
        total_needed += needed;
        report.insert(c.name.clone(), (c.history.clone(), writes.len()));
    }
    let mean_life = lifetimes.iter().map(Duration::as_secs_f64).sum::<f64>() / kills.max(1) as f64;
    eprintln!(
        "chaos: {kills} SIGKILLs over {chaos_secs:.0} s (mean lifetime {mean_life:.2} s, seed {seed}); \
         {} clusters; {total_writes} effective operations, {total_needed} needed, duplicates: {}; \
         converged {:.0} s after the start",
        clusters.len(),
        total_writes.saturating_sub(total_needed),
        start.elapsed().as_secs_f64()
    );
    for (name, (history, writes)) in report {
        eprintln!("chaos:   {name}: targets {history:?}, {writes} operations");
    }
}
