//! CloudAccounts on a real kube-apiserver, with `clusterscale run` as a
//! process and the fake Tencent cloud (EMR and STS) as another:
//!
//! - two ScaledClusters share one CloudAccount whose Secret lives only in
//!   the operator's namespace, the operator reading Secrets only there
//!   (`--secrets namespaced`); a cluster that names its own Secret in its own
//!   namespace is told why it is not read;
//! - a workload-identity CloudAccount end to end: a token from the
//!   apiserver's TokenRequest API (`kubectl create token --audience`), the
//!   fake STS verifying it with the apiserver's own `sa.pub`, keys of 60 s
//!   refreshed while two clusters converge, every EMR request signed with
//!   temporary keys, and never two exchanges at once;
//! - bad input: an account that does not exist, the other cloud's account,
//!   a missing token file, a token of the wrong audience, both refs: each a
//!   clear condition (and CloudAccount status), and no cloud write.
//!
//! The secret grep at the end of each test covers the Secret's key, the JWT
//! and every temporary key the fake STS issued.

mod support;

use std::time::Duration;

use kube::api::Api;
use serde_json::Value;

use clusterscale_core::api::account::CloudAccount;
use support::{
    apiserver, condition, converged_at, fast_policy, manifest, FakeCloud, Operator, OperatorOpts,
    TestNs, TENCENT_SECRET_ID, TENCENT_SECRET_KEY,
};

const WAIT: Duration = Duration::from_secs(90);
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "sts.cloud.tencent.com";
const PROVIDER_ID: &str = "cls-kube0001";
const ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/clusterscale";

/// `spec.tencent` of instance `instance` behind `endpoint`, keys from
/// CloudAccount `account`.
fn tencent_on_account(instance: &str, endpoint: &str, account: &str) -> String {
    format!(
        "tencent: {{region: ap-guangzhou, instanceId: {instance}, payMode: 0, endpoint: \"{endpoint}\", accountRef: {{name: {account}}}}}"
    )
}

/// A fake Tencent endpoint serving `n` instances (`emr-fake00000`...),
/// each at 3/0, with `extra` flags (operations of 1 s unless they say).
fn fake_fleet(t: &TestNs, n: usize, extra: &[&str]) -> (FakeCloud, String) {
    let n = n.to_string();
    let mut args = vec!["--tencent", "127.0.0.1:0", "--tencent-instances", &n];
    if !extra.contains(&"--operation-seconds") {
        args.extend(["--operation-seconds", "1"]);
    }
    args.extend_from_slice(extra);
    let fake = FakeCloud::start(t, "tencent", &args);
    let endpoint = fake.tencent.clone().expect("tencent endpoint");
    (fake, endpoint)
}

fn apply_account(t: &TestNs, yaml: &str) {
    let out = apiserver().kubectl_stdin(&["apply", "-f", "-"], Some(yaml));
    if !out.status.success() {
        t.fail(&format!(
            "kubectl apply of a CloudAccount failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

async fn wait_account(
    t: &TestNs,
    name: &str,
    what: &str,
    pred: impl Fn(&CloudAccount) -> bool,
) -> CloudAccount {
    let api: Api<CloudAccount> = Api::all(t.client.clone());
    let name = name.to_string();
    t.wait_for(what, WAIT, || {
        let api = api.clone();
        let name = name.clone();
        let pred = &pred;
        async move { api.get_opt(&name).await.ok().flatten().filter(|a| pred(a)) }
    })
    .await
}

fn account_ready(a: &CloudAccount) -> Option<(String, String, String)> {
    let c = a
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The fake STS's counters, and the secret halves of every key it issued.
async fn sts(endpoint: &str) -> (Value, Vec<String>) {
    let get = |path: &str| {
        let url = format!("{endpoint}{path}");
        async move {
            reqwest::get(&url)
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"))
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let stats = get("/_fake/sts").await;
    let issued = get("/_fake/sts/issued").await;
    let issued = issued
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (stats, issued)
}

#[tokio::test]
async fn two_clusters_share_one_cloudaccount_whose_secret_lives_in_the_operators_namespace() {
    let own = TestNs::new("accounts-operator").await;
    let t = TestNs::new("accounts-data").await;
    // The keys exist only in the operator's namespace.
    own.secret(
        "tencent-keys",
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", TENCENT_SECRET_KEY),
        ],
    );
    let account = format!("shared-{}", t.ns);
    apply_account(
        &t,
        &format!(
            "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {{name: {account}}}\nspec:\n  tencent:\n    secretRef: {{namespace: {}, name: tencent-keys}}\n",
            own.ns
        ),
    );
    let (fake, endpoint) = fake_fleet(&t, 3, &[]);
    // A cluster with its own Secret in its own namespace: not read.
    t.secret(
        "local-keys",
        &[
            ("secretId", TENCENT_SECRET_ID),
            ("secretKey", TENCENT_SECRET_KEY),
        ],
    );
    let mut opts = OperatorOpts::new("accounts-0");
    opts.own_namespace = Some(own.ns.clone());
    opts.extra = vec!["--secrets".into(), "namespaced".into()];
    let _op = Operator::start_with(&t, opts);
    for (name, instance) in [("a", "emr-fake00000"), ("b", "emr-fake00001")] {
        t.apply_ok(&manifest(
            name,
            &tencent_on_account(instance, &endpoint, &account),
            4,
            2,
            &fast_policy(5),
        ));
    }
    t.apply_ok(&manifest(
        "local",
        &format!(
            "tencent: {{region: ap-guangzhou, instanceId: emr-fake00002, payMode: 0, endpoint: \"{endpoint}\", credentialsSecretRef: {{name: local-keys}}}}"
        ),
        4,
        2,
        &fast_policy(5),
    ));
    for name in ["a", "b"] {
        t.wait_sc(name, &format!("{name} converged at 4/2"), WAIT, |sc| {
            converged_at(sc, 4, 2)
        })
        .await;
    }
    let (_, degraded) = t.wait_degraded("local", "CredentialsMissing", WAIT).await;
    for words in ["only in its own namespace", &own.ns, "accountRef"] {
        t.check(degraded.message.contains(words), || {
            format!("local: Degraded should say {words:?}: {}", degraded.message)
        });
    }
    // No request for the third instance: its keys were never read.
    let journal = fake.journal("tencent");
    t.check(
        !journal
            .iter()
            .any(|l| l.params.to_string().contains("emr-fake00002")),
        || "a request for the cluster whose Secret is out of scope".into(),
    );
    let a = wait_account(&t, &account, "the account Ready with 2 users", |a| {
        a.status.as_ref().is_some_and(|s| s.users == 2)
            && account_ready(a).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let status = a.status.expect("status");
    assert_eq!(status.cloud.as_deref(), Some("tencent"));
    assert_eq!(status.source.as_deref(), Some("secretRef"));
    assert_eq!(
        status.identity.as_deref(),
        Some(format!("Secret {}/tencent-keys", own.ns).as_str())
    );
    assert_eq!(
        account_ready(&apiserver_account(&t, &account).await)
            .unwrap()
            .1,
        "SecretFound"
    );
    drop(own);
}

async fn apiserver_account(t: &TestNs, name: &str) -> CloudAccount {
    Api::<CloudAccount>::all(t.client.clone())
        .get(name)
        .await
        .expect("the CloudAccount")
}

/// The workload-identity flags of the fake STS, trusting the apiserver's
/// service-account key and issuer; keys of `lifetime` seconds.
fn sts_flags(lifetime: &str) -> Vec<String> {
    let key = apiserver().dir.join("pki/sa.pub");
    [
        "--tencent-sts-public-key",
        key.to_str().expect("utf-8 path"),
        "--tencent-sts-issuer",
        ISSUER,
        "--tencent-sts-audience",
        AUDIENCE,
        "--tencent-sts-provider-id",
        PROVIDER_ID,
        "--tencent-sts-role-arn",
        ROLE_ARN,
        "--tencent-sts-key-lifetime-seconds",
        lifetime,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A TokenRequest token for ServiceAccount `clusterscale` of `t`'s
/// namespace, for `audience`, written to a file in the test's directory.
fn token_file(t: &TestNs, audience: &str, file: &str) -> std::path::PathBuf {
    t.kubectl(&["create", "serviceaccount", "clusterscale"]);
    let jwt = t.kubectl_ok(&[
        "create",
        "token",
        "clusterscale",
        "--audience",
        audience,
        "--duration",
        "1h",
    ]);
    let jwt = jwt.trim().to_string();
    t.check(jwt.split('.').count() == 3, || {
        format!("not a JWT: {jwt:.20}...")
    });
    t.add_secret(jwt.clone());
    let path = t.dir.join(file);
    std::fs::write(&path, &jwt).expect("token file");
    path
}

fn workload_account(name: &str, endpoint: &str, token_file: &std::path::Path) -> String {
    format!(
        "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {{name: {name}}}\nspec:\n  tencent:\n    workloadIdentity:\n      roleArn: \"{ROLE_ARN}\"\n      providerId: {PROVIDER_ID}\n      region: ap-guangzhou\n      sessionDurationSeconds: 900\n      tokenFile: \"{}\"\n      audience: {AUDIENCE}\n      endpoint: \"{endpoint}\"\n",
        token_file.display()
    )
}

#[tokio::test]
async fn a_workload_identity_account_signs_every_request_with_refreshed_temporary_keys() {
    let t = TestNs::new("accounts-workload").await;
    let flags = sts_flags("60");
    let mut extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    // Slow operations: the clusters keep calling across several key lifetimes.
    extra.extend(["--operation-seconds", "20"]);
    let (fake, endpoint) = fake_fleet(&t, 2, &extra);
    let token = token_file(&t, AUDIENCE, "token");
    let account = format!("wi-{}", t.ns);
    apply_account(&t, &workload_account(&account, &endpoint, &token));
    let _op = Operator::start(&t, "accounts-wi");
    for (name, instance) in [("a", "emr-fake00000"), ("b", "emr-fake00001")] {
        t.apply_ok(&manifest(
            name,
            &tencent_on_account(instance, &endpoint, &account),
            5,
            4,
            &fast_policy(1),
        ));
    }
    // 2 + 4 one-node steps of 20 s each: about two minutes, two key lifetimes.
    for name in ["a", "b"] {
        t.wait_sc(
            name,
            &format!("{name} converged at 5/4"),
            Duration::from_secs(240),
            |sc| converged_at(sc, 5, 4),
        )
        .await;
    }
    let a = wait_account(&t, &account, "the account Ready, 2 users", |a| {
        a.status.as_ref().is_some_and(|s| s.users == 2)
            && account_ready(a).is_some_and(|(s, r, _)| s == "True" && r == "KeysIssued")
    })
    .await;
    let status = a.status.expect("status");
    assert_eq!(status.source.as_deref(), Some("workloadIdentity"));
    let identity = status.identity.unwrap_or_default();
    assert!(
        identity.contains(ROLE_ARN) || identity.contains("clusterscale"),
        "{identity}"
    );
    assert!(status.keys_expire_at.is_some() && status.last_refresh.is_some());
    let (stats, issued) = sts(&endpoint).await;
    for secret in &issued {
        t.add_secret(secret.clone());
    }
    let exchanges = stats["issued"].as_u64().unwrap_or(0);
    assert!(
        exchanges >= 2,
        "keys of 60 s over minutes are refreshed: {stats}"
    );
    assert_eq!(
        stats["mostConcurrent"].as_u64(),
        Some(1),
        "one exchange at a time: {stats}"
    );
    assert_eq!(stats["refused"].as_u64(), Some(0), "{stats}");
    // Every EMR request was signed with temporary keys, and accepted.
    let journal = fake.journal("tencent");
    let emr: Vec<_> = journal
        .iter()
        .filter(|l| l.action != "AssumeRoleWithWebIdentity")
        .collect();
    assert!(!emr.is_empty());
    for l in &emr {
        let key = l
            .signed_by
            .as_ref()
            .and_then(|s| s["key"].as_str())
            .unwrap_or("none");
        assert!(
            key.starts_with("sts#"),
            "{} signed by {key}: {l:?}",
            l.action
        );
        assert!(
            !l.outcome.starts_with("AuthFailure"),
            "{} refused: {}",
            l.action,
            l.outcome
        );
    }
    let signers: std::collections::BTreeSet<&str> = emr
        .iter()
        .filter_map(|l| l.signed_by.as_ref().and_then(|s| s["key"].as_str()))
        .collect();
    assert!(
        signers.len() >= 2,
        "requests signed by refreshed keys: {signers:?}"
    );
}

#[tokio::test]
async fn bad_account_references_are_clear_conditions_and_no_cloud_write() {
    let t = TestNs::new("accounts-bad").await;
    let flags = sts_flags("900");
    let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (fake, endpoint) = fake_fleet(&t, 4, &extra);
    let huawei = format!("hw-{}", t.ns);
    apply_account(
        &t,
        &format!(
            "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {{name: {huawei}}}\nspec:\n  huawei:\n    secretRef: {{namespace: {}, name: nothing}}\n",
            t.ns
        ),
    );
    let no_file = format!("nofile-{}", t.ns);
    apply_account(
        &t,
        &workload_account(&no_file, &endpoint, &t.dir.join("no-such-token")),
    );
    let wrong_audience = format!("aud-{}", t.ns);
    let token = token_file(&t, "someone-else", "wrong-audience-token");
    apply_account(&t, &workload_account(&wrong_audience, &endpoint, &token));
    let _op = Operator::start(&t, "accounts-bad");
    let cases = [
        (
            "missing",
            "emr-fake00000",
            format!("absent-{}", t.ns),
            vec!["does not exist"],
        ),
        (
            "other-cloud",
            "emr-fake00001",
            huawei.clone(),
            vec!["is a huawei account", "needs a tencent account"],
        ),
        (
            "no-token",
            "emr-fake00002",
            no_file.clone(),
            vec!["TokenFileUnreadable", "no-such-token"],
        ),
        (
            "wrong-audience",
            "emr-fake00003",
            wrong_audience.clone(),
            vec!["InvalidParameter.WebIdentityTokenError"],
        ),
    ];
    for (name, instance, account, _) in &cases {
        t.apply_ok(&manifest(
            name,
            &tencent_on_account(instance, &endpoint, account),
            4,
            2,
            &fast_policy(5),
        ));
    }
    for (name, _, account, words) in &cases {
        let (sc, degraded) = t.wait_degraded(name, "AccountNotReady", WAIT).await;
        for w in words.iter().chain([&account.as_str()]) {
            t.check(degraded.message.contains(w), || {
                format!("{name}: Degraded should say {w:?}: {}", degraded.message)
            });
        }
        let ready = condition(&sc, "Ready").expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "AccountNotReady")
        );
    }
    for (account, reason) in [
        (&no_file, "TokenFileUnreadable"),
        (&wrong_audience, "ExchangeRefused"),
    ] {
        let a = wait_account(
            &t,
            account,
            &format!("{account} Ready False/{reason}"),
            |a| account_ready(a).is_some_and(|(s, r, _)| s == "False" && r == reason),
        )
        .await;
        assert_eq!(a.status.expect("status").users, 1);
    }
    // Both refs: refused by the CRD's rule, never stored.
    let both = t.apply(&manifest(
        "both",
        &format!(
            "tencent: {{region: ap-guangzhou, instanceId: emr-fake00000, endpoint: \"{endpoint}\", accountRef: {{name: {no_file}}}, credentialsSecretRef: {{name: x}}}}"
        ),
        4,
        2,
        &[],
    ));
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        !both.status.success()
            && err.contains(
                "spec.tencent: exactly one of credentialsSecretRef or accountRef must be set"
            ),
        "{err}"
    );
    let journal = fake.journal("tencent");
    let emr: Vec<_> = journal
        .iter()
        .filter(|l| l.action != "AssumeRoleWithWebIdentity")
        .collect();
    assert!(emr.is_empty(), "no EMR request without keys: {emr:?}");
    let (stats, _) = sts(&endpoint).await;
    assert_eq!(stats["issued"].as_u64(), Some(0), "{stats}");
}

const HUAWEI_CLUSTER: &str = "0f1e2d3c-4b5a-4968-8776-655443322110";
const HUAWEI_AUDIENCE: &str = "clusterscale-cce";
const HUAWEI_IDP: &str = "cce-idp";

#[tokio::test]
async fn a_huawei_workload_identity_account_converges_a_cluster_with_temporary_keys() {
    let t = TestNs::new("accounts-huawei").await;
    let key = apiserver().dir.join("pki/sa.pub");
    let subject = format!("system:serviceaccount:{}:clusterscale", t.ns);
    let fake = FakeCloud::start(
        &t,
        "huawei",
        &[
            "--huawei",
            "127.0.0.1:0",
            "--huawei-cluster-id",
            HUAWEI_CLUSTER,
            "--operation-seconds",
            "2",
            "--huawei-oidc-public-key",
            key.to_str().expect("utf-8 path"),
            "--huawei-oidc-issuer",
            ISSUER,
            "--huawei-oidc-audience",
            HUAWEI_AUDIENCE,
            "--huawei-idp-id",
            HUAWEI_IDP,
            "--huawei-oidc-subject",
            &subject,
        ],
    );
    let endpoint = fake.huawei.clone().expect("huawei endpoint");
    let token = token_file(&t, HUAWEI_AUDIENCE, "token");
    let account = format!("hwi-{}", t.ns);
    apply_account(
        &t,
        &format!(
            "apiVersion: clusterscale.io/v1alpha1\nkind: CloudAccount\nmetadata: {{name: {account}}}\nspec:\n  huawei:\n    workloadIdentity:\n      idpId: {HUAWEI_IDP}\n      projectId: \"{}\"\n      durationSeconds: 900\n      tokenFile: \"{}\"\n      audience: {HUAWEI_AUDIENCE}\n      iamEndpoint: \"{endpoint}\"\n",
            support::HUAWEI_PROJECT,
            token.display()
        ),
    );
    let _op = Operator::start(&t, "accounts-hwi");
    t.apply_ok(&manifest(
        "warehouse",
        &format!(
            "huawei: {{region: cn-north-4, projectId: \"{}\", clusterId: {HUAWEI_CLUSTER}, endpoint: \"{endpoint}\", accountRef: {{name: {account}}}, taskNodeSpec: {{nodeSize: c6.4xlarge.4.linux.bigdata, dataVolumeType: SATA, dataVolumeCount: 1, dataVolumeSize: 600}}}}",
            support::HUAWEI_PROJECT
        ),
        4,
        2,
        &fast_policy(5),
    ));
    t.wait_sc("warehouse", "warehouse converged at 4/2", WAIT, |sc| {
        converged_at(sc, 4, 2)
    })
    .await;
    let a = wait_account(&t, &account, "the account Ready, 1 user", |a| {
        a.status.as_ref().is_some_and(|s| s.users == 1)
            && account_ready(a).is_some_and(|(s, r, _)| s == "True" && r == "KeysIssued")
    })
    .await;
    let status = a.status.expect("status");
    assert_eq!(status.cloud.as_deref(), Some("huawei"));
    assert!(status.keys_expire_at.is_some(), "{status:?}");
    // Every MRS request was signed by a temporary AK the fake's IAM issued
    // (the journal names the AK, never its SK or security token).
    let journal = fake.journal("huawei");
    let issued: Vec<String> = journal
        .iter()
        .filter(|l| l.action == "CreateTemporaryAccessKeyByToken" && l.outcome == "ok")
        .filter_map(|l| {
            let detail = l.params["detail"].as_str()?;
            let ak = detail.strip_prefix("temporary keys ")?.split(' ').next()?;
            Some(format!("ak:{ak}"))
        })
        .collect();
    assert!(!issued.is_empty(), "no temporary keys issued: {journal:?}");
    let mrs: Vec<_> = journal
        .iter()
        .filter(|l| {
            l.action != "CreateTokenWithIdToken" && l.action != "CreateTemporaryAccessKeyByToken"
        })
        .collect();
    assert!(!mrs.is_empty());
    // The SKs and security tokens IAM handed out join the secret grep.
    let url = format!("{endpoint}/_fake/federation/issued");
    let secrets: Vec<String> = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("json");
    assert!(!secrets.is_empty(), "no temporary keys issued");
    for secret in secrets {
        t.add_secret(secret);
    }
    for l in mrs {
        let principal = l.params["principal"].as_str().unwrap_or_default();
        assert!(
            issued.iter().any(|ak| ak == principal),
            "not a temporary key: {l:?}"
        );
        assert_eq!(l.outcome, "ok", "{l:?}");
    }
}
