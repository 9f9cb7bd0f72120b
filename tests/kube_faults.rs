//! Faults through the operator: `clusterscale run` on the real kube-apiserver
//! against one multi-instance `clusterscale-fake-cloud` (three Tencent
//! instances, two Huawei clusters) answering with 30% transient failures,
//! throttling, slow answers, refused / lost / proxy-paged writes, and
//! malformed answers (invalid JSON, truncated bodies, unknown fields, wrong
//! types, HTML pages with HTTP 200 and 502) mixed in.
//!
//! From the fake's journals and what the operator wrote it asserts:
//! - every cluster converges (out, then in);
//! - exactly the effective operations needed, none twice;
//! - no second of the Tencent journal holds more requests of one action
//!   than `--tencent-rate-limit`, and any `limit + 1` consecutive requests
//!   of one action span a second;
//! - every failure in `status.lastError` and every Warning Event names the
//!   action, and names the request id when the answer carried one (Huawei
//!   always sends `X-Request-Id`; Tencent envelopes carry `RequestId`);
//! - the operator never panics.
//!
//! `FAULTS_SEED` sets the fakes' seed (printed, so a failure can be replayed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use clusterscale_core::api::ScaledCluster;
use support::*;

const TENCENT: usize = 3;
const HUAWEI: usize = 2;
const RATE_LIMIT: usize = 4;
const CORE: i32 = 3;
const MAX_STEP: i32 = 2;
/// Task targets: 0 -> 2 (one operation), then 2 -> 0 (one).
const TARGETS: [i32; 3] = [0, 2, 0];
const OPERATIONS: usize = 2;

fn tencent_id(i: usize) -> String {
    format!("emr-fault{i:05}")
}

fn huawei_id(i: usize) -> String {
    format!("fa017000-0000-4000-8000-{i:012}")
}

/// Requests per (action, whole second) of a journal.
fn per_second(journal: &[JournalLine]) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for l in journal {
        *out.entry((l.action.clone(), l.at.as_second())).or_insert(0) += 1;
    }
    out
}

/// The instance or cluster a journal line is about.
fn target_of(l: &JournalLine) -> String {
    if let Some(id) = l.params.get("InstanceId").and_then(|v| v.as_str()) {
        return id.to_string();
    }
    if let Some(id) = l.params["InstanceIds"].get(0).and_then(|v| v.as_str()) {
        return id.to_string();
    }
    let path = l.params["path"].as_str().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1.1", _, "cluster_infos", c] | ["v1.1", _, "clusters", c, "hosts"] => c.to_string(),
        _ => String::new(),
    }
}

/// A failure as the operator reported it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Reported {
    cluster: String,
    class: String,
    code: String,
    action: Option<String>,
    request_id: Option<String>,
    message: String,
}

#[tokio::test]
async fn faults_and_malformed_answers_converge_without_duplicates_within_the_rate() {
    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("faults: FAULTS_SEED={seed}");
    let t = TestNs::new("faults").await;
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
    let seed_arg = seed.to_string();
    let fake = FakeCloud::start(
        &t,
        "faults",
        &[
            "--tencent",
            "127.0.0.1:0",
            "--tencent-instances",
            &TENCENT.to_string(),
            "--tencent-instance-prefix",
            "fault",
            "--huawei",
            "127.0.0.1:0",
            "--huawei-clusters",
            &HUAWEI.to_string(),
            "--huawei-cluster-prefix",
            "fa017000",
            "--operation-seconds",
            "1",
            "--transient-failure-rate",
            "0.3",
            // Below the operator's own limit: the fake throttles too.
            "--throttle-per-second",
            "3",
            "--delay-ms",
            "40",
            "--write-refusal-rate",
            "0.1",
            "--lost-answer-rate",
            "0.1",
            "--proxy-error-rate",
            "0.05",
            "--malformed-write-rate",
            "0.25",
            "--malformed-read-rate",
            "0.1",
            "--fault-seed",
            &seed_arg,
        ],
    );
    let tencent = fake.tencent.clone().expect("tencent endpoint");
    let huawei = fake.huawei.clone().expect("huawei endpoint");
    let mut clusters: Vec<(String, String)> = Vec::new();
    for i in 0..TENCENT {
        clusters.push((
            format!("emr-{i}"),
            tencent_block(&tencent_id(i), &tencent, "tc-creds"),
        ));
    }
    for i in 0..HUAWEI {
        clusters.push((
            format!("mrs-{i}"),
            huawei_block(&huawei_id(i), &huawei, "hw-creds"),
        ));
    }
    let start = Instant::now();
    for (name, cloud) in &clusters {
        t.apply_ok(&manifest(
            name,
            cloud,
            CORE,
            TARGETS[1],
            &fast_policy(MAX_STEP),
        ));
    }
    let mut opts = OperatorOpts::new("faults");
    // A backoff cap of 30 s (default 150 s, up to twice that with jitter).
    // About 37% of reads fail here (transient plus malformed), so a run of
    // 8 failed reads for one cluster comes up in a few percent of seeds (it
    // did, in a clean-clone run): at the default cap that run alone takes
    // 15-25 minutes, past this test's wait, though nothing is wrong. How a
    // streak grows (only while the same call keeps failing) is unit-tested in
    // src/controller/reconcile/backoff.rs; this test is about faults,
    // duplicates and the rate.
    opts.extra = vec![
        "--tencent-rate-limit".into(),
        RATE_LIMIT.to_string(),
        "--backoff-cap-seconds".into(),
        "30".into(),
    ];
    let mut op = Operator::start_with(&t, opts);

    // Watch status.lastError while the clusters move.
    let reported = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<Reported>::new()));
    let poller = {
        let reported = reported.clone();
        let api: kube::Api<ScaledCluster> =
            kube::Api::namespaced(apiserver().client().await, &t.ns);
        tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&Default::default()).await {
                    for sc in list.items {
                        let Some(e) = sc.status.as_ref().and_then(|s| s.last_error.clone()) else {
                            continue;
                        };
                        reported.lock().unwrap().insert(Reported {
                            cluster: sc.metadata.name.clone().unwrap_or_default(),
                            class: e.class.to_string(),
                            code: e.code,
                            action: e.action,
                            request_id: e.request_id,
                            message: e.message,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    for (step, &target) in TARGETS.iter().enumerate().skip(1) {
        if step > 1 {
            for (name, _) in &clusters {
                t.kubectl_ok(&[
                    "patch",
                    "scl",
                    name,
                    "--type=merge",
                    "-p",
                    &format!("{{\"spec\":{{\"task\":{{\"count\":{target}}}}}}}"),
                ]);
            }
        }
        for (name, _) in &clusters {
            t.wait_sc(
                name,
                &format!("{name} Ready at {CORE}/{target} through the faults"),
                Duration::from_secs(900),
                |sc| converged_at(sc, CORE, target),
            )
            .await;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // A last look: a few more polls, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    poller.abort();
    t.check(op.try_wait().is_none(), || "the operator exited".into());

    // Exactly the operations needed, per cluster; Tencent tokens distinct.
    let tj = fake.journal("tencent");
    let hj = fake.journal("huawei");
    let mut writes_total = 0;
    for (i, id) in (0..TENCENT)
        .map(|i| (i, tencent_id(i)))
        .chain((0..HUAWEI).map(|i| (i, huawei_id(i))))
    {
        let journal = if id.starts_with("emr-") { &tj } else { &hj };
        let writes: Vec<&JournalLine> = journal
            .iter()
            .filter(|l| l.write && target_of(l) == id)
            .collect();
        writes_total += writes.len();
        t.check(writes.len() == OPERATIONS, || {
            format!(
                "{id} (#{i}): targets {TARGETS:?} need exactly {OPERATIONS} operations; the fake applied {}: {:#?}",
                writes.len(),
                writes
                    .iter()
                    .map(|l| format!("{} {} {} {}", l.at, l.action, l.outcome, l.params))
                    .collect::<Vec<_>>()
            )
        });
        let tokens: Vec<&str> = writes
            .iter()
            .filter(|l| l.action == "ScaleOutInstance")
            .filter_map(|l| l.params.get("ClientToken").and_then(|v| v.as_str()))
            .collect();
        let distinct: BTreeSet<&&str> = tokens.iter().collect();
        t.check(distinct.len() == tokens.len(), || {
            format!("{id}: a ClientToken applied twice: {tokens:?}")
        });
    }

    // The operator's pace: never above --tencent-rate-limit per action.
    let worst = per_second(&tj);
    let (worst_key, worst_n) = worst
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, n)| (k.clone(), *n))
        .unwrap_or_default();
    t.check(worst_n <= RATE_LIMIT, || {
        format!("{worst_key:?}: {worst_n} Tencent requests in one second (limit {RATE_LIMIT})")
    });
    let actions: BTreeSet<&str> = tj.iter().map(|l| l.action.as_str()).collect();
    for action in &actions {
        let mut at: Vec<jiff::Timestamp> = tj
            .iter()
            .filter(|l| l.action == *action)
            .map(|l| l.at)
            .collect();
        at.sort();
        for w in at.windows(RATE_LIMIT + 1) {
            let span = w[w.len() - 1].duration_since(w[0]);
            t.check(span >= jiff::SignedDuration::from_millis(900), || {
                format!("{action}: {} requests in {span:?}", w.len())
            });
        }
    }

    // Every reported failure names the action, and the request id where the
    // answer had one.
    let reported = reported.lock().unwrap().clone();
    let ids: BTreeSet<&str> = tj
        .iter()
        .chain(hj.iter())
        .map(|l| l.request_id.as_str())
        .collect();
    for r in &reported {
        t.check(r.action.as_deref().is_some_and(|a| !a.is_empty()), || {
            format!("status.lastError without the action: {r:?}")
        });
        t.check(
            r.request_id.as_deref().is_none_or(|id| ids.contains(id)),
            || format!("status.lastError names a request id the fake never sent: {r:?}"),
        );
        let envelope = [
            "InternalError",
            "RequestLimitExceeded",
            "MRS.300",
            "APIGW.0308",
            "APIGW.0201",
        ]
        .contains(&r.code.as_str());
        let huawei = r.cluster.starts_with("mrs-");
        if envelope || huawei {
            t.check(r.request_id.is_some(), || {
                format!("status.lastError without the request id its answer carried: {r:?}")
            });
        }
    }
    let mut warnings = 0;
    for (name, _) in &clusters {
        for e in t.events_for(name).await {
            if e.type_.as_deref() != Some("Warning") {
                continue;
            }
            warnings += 1;
            let note = e.note.clone().unwrap_or_default();
            let cloud_failure = note.contains(" failed: ");
            if cloud_failure {
                let named = [
                    "DescribeInstances",
                    "DescribeClusterNodes",
                    "DescribeClusterFlowStatusDetail",
                    "ScaleOutInstance",
                    "TerminateTasks",
                    "TerminateClusterNodes",
                    "ShowClusterDetails",
                    "ListHosts",
                    "UpdateClusterScaling",
                    "KeystoneCreateUserTokenByPassword",
                ]
                .iter()
                .any(|a| note.contains(a))
                    || note.contains("cluster_infos")
                    || note.contains("hosts")
                    || note.contains("tokens");
                t.check(named, || {
                    format!("Warning Event on {name} without the action: {note}")
                });
            }
        }
    }

    // Never a panic, in the operator or the fake.
    let log = op.log_text();
    t.check(!log.contains("panicked"), || "the operator panicked".into());
    let fake_log = std::fs::read_to_string(fake.journal_dir.join("stderr.log")).unwrap_or_default();
    t.check(!fake_log.contains("panicked"), || {
        "the fake panicked".into()
    });
    let error_lines = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    t.assert_no_secrets();

    // The numbers.
    let all: Vec<&JournalLine> = tj.iter().chain(hj.iter()).collect();
    let malformed = all
        .iter()
        .filter(|l| l.outcome.contains(MALFORMED_NOTE))
        .count();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for l in &all {
        if let Some(k) = l.outcome.split(MALFORMED_NOTE).nth(1) {
            *kinds.entry(k.to_string()).or_insert(0) += 1;
        }
    }
    let faulted = all
        .iter()
        .filter(|l| l.outcome != "ok" && !l.outcome.starts_with("ok; "))
        .count();
    let throttled = all
        .iter()
        .filter(|l| {
            l.outcome.starts_with("RequestLimitExceeded") || l.outcome.starts_with("APIGW.0308")
        })
        .count();
    eprintln!(
        "faults: {} clusters ({TENCENT} Tencent, {HUAWEI} Huawei) converged in {elapsed:.0} s; \
         {} requests (Tencent {}, Huawei {}); {} answered with a fault ({} throttled) \
         and {malformed} malformed {kinds:?}; {writes_total} effective writes, {} needed, duplicates: {}; \
         worst Tencent second: {worst_n} of one action (limit {RATE_LIMIT}); \
         {} distinct status.lastError values, {warnings} Warning Events, {error_lines} WARN/ERROR log lines; seed {seed}",
        clusters.len(),
        all.len(),
        tj.len(),
        hj.len(),
        faulted,
        throttled,
        OPERATIONS * clusters.len(),
        writes_total.saturating_sub(OPERATIONS * clusters.len()),
        reported.len(),
    );
    let codes: BTreeSet<(String, Option<String>)> = reported
        .iter()
        .map(|r| (r.code.clone(), r.action.clone()))
        .collect();
    eprintln!("faults: lastError codes and actions seen: {codes:?}");
    drop(op);
}
