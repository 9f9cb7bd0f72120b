//! `clusterscale run --selector`: a malformed selector is refused at start,
//! and two operators with `--selector shard=a` / `shard=b` (each with its own
//! Lease) split the ScaledClusters of one namespace between them, against a
//! real kube-apiserver with the simulated cloud.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const CONVERGE: Duration = Duration::from_secs(90);

#[test]
fn a_malformed_selector_exits_2_before_connecting() {
    // A kubeconfig that does not exist: had the operator got as far as
    // connecting (or watching), it would fail with exit 1 and "cannot
    // connect"; the selector check comes first.
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-kubeconfig");
    for (selector, why) in [
        ("shard in (a", "closing ')'"),
        ("shard=a,", "followed by another requirement"),
        ("Shard.Example/x=a", "DNS subdomain"),
        ("shard==-a", "label value \"-a\""),
    ] {
        let started = Instant::now();
        let out = std::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &missing)
            .args(["run", "--selector", selector])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("clusterscale run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{selector:?}: want exit 2 (usage error), got {}; stderr:\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("--selector") && stderr.contains(selector) && stderr.contains(why),
            "{selector:?}: the error should name --selector, the value and {why:?}:\n{stderr}"
        );
        assert!(
            !stderr.contains("cannot connect") && !stderr.contains("kubeconfig"),
            "{selector:?}: refused only after trying to connect:\n{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{selector:?}: stdout {:?}",
            out.stdout
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{selector:?}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_valid_selector_gets_past_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-kubeconfig");
    let out = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", &missing)
        .args(["run", "--selector", "shard in (a, b),!legacy"])
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--health-addr",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("clusterscale run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "want the connect error:\n{stderr}"
    );
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

fn labelled(name: &str, shard: Option<&str>, task: i32) -> String {
    let labels = match shard {
        Some(s) => format!("{{name: {name}, labels: {{shard: {s}}}}}"),
        None => format!("{{name: {name}}}"),
    };
    format!(
        r#"
apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {labels}
spec:
  simulated: {{initialCore: 3, initialTask: 0, operationSeconds: 1}}
  core: {{count: 3}}
  task: {{count: {task}, min: 0, max: 20}}
"#
    )
}

#[tokio::test]
async fn two_shards_each_reconcile_only_their_own() {
    let t = TestNs::new("selector-shards").await;
    let mut a = OperatorOpts::new("shard-a");
    a.lease_name = "clusterscale-shard-a".into();
    a.extra = vec!["--selector".into(), "shard=a".into()];
    let mut b = OperatorOpts::new("shard-b");
    b.lease_name = "clusterscale-shard-b".into();
    b.extra = vec!["--selector".into(), "shard=b".into()];
    let _op_a = Operator::start_with(&t, a);
    let _op_b = Operator::start_with(&t, b);

    let clusters = [
        ("a-1", Some("a"), 1),
        ("a-2", Some("a"), 2),
        ("b-1", Some("b"), 3),
        ("b-2", Some("b"), 4),
    ];
    for (name, shard, task) in clusters {
        t.apply_ok(&labelled(name, shard, task));
    }
    t.apply_ok(&labelled("unsharded", None, 5));
    t.apply_ok(&labelled("shard-c", Some("c"), 6));

    for (name, shard, task) in clusters {
        t.wait_sc(name, &format!("{name} Ready at 3/{task}"), CONVERGE, |sc| {
            is_ready(sc) && observed(sc) == Some((3, task))
        })
        .await;
        let owner = format!("shard-{}", shard.unwrap_or_default());
        let events = t.wait_events(name, "ScaleOutCompleted", 1, CONVERGE).await;
        let all = t.events_for(name).await;
        t.check(!events.is_empty(), || {
            format!("no ScaleOutCompleted for {name}")
        });
        for e in &all {
            t.check(e.reporting_instance.as_deref() == Some(owner.as_str()), || {
                format!("{name} has labels shard={shard:?}: every Event should come from {owner}, got {e:#?}")
            });
        }
    }
    // Both Leases exist, each held by its own shard.
    for (lease, holder) in [
        ("clusterscale-shard-a", "shard-a"),
        ("clusterscale-shard-b", "shard-b"),
    ] {
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(t.client.clone(), &t.ns);
        let got = leases
            .get_opt(lease)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        t.check(got.as_deref() == Some(holder), || {
            format!("Lease {lease} held by {got:?}, want {holder}")
        });
    }
    // The two selected by neither shard are never touched: a few resync
    // polls after every shard's cluster converged, still no status, no Event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["unsharded", "shard-c"] {
        let sc = t.get_ok(name).await;
        t.check(sc.status.is_none(), || {
            format!(
                "{name} matches neither selector but has a status: {:?}",
                sc.status
            )
        });
        let events = t.events_for(name).await;
        t.check(events.is_empty(), || {
            format!("{name} matches neither selector but has Events: {events:#?}")
        });
    }
}
