//! `clusterscale-fake-cloud`: wire-compatible fake Tencent EMR and Huawei MRS
//! endpoints over the simulated cluster model, verifying signatures, and a
//! fake YARN ResourceManager over one of their clusters. For tests, demos
//! and users' own CI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::huawei::{
    FakeClusterType, FakeFederation, FakePolicy, GroupSettings, HuaweiFake, HuaweiFakeConfig,
    V2RateLimits,
};
use crate::oidc::OidcProvider;
use crate::tencent::sts::{StsFakeConfig, DEFAULT_AUDIENCE};
use crate::tencent::{TencentFake, TencentFakeConfig};
use crate::yarn::{YarnConfig, YarnFake};
use crate::{FakeFaults, FakeOptions, Malformed};
use clusterscale_core::clock::SystemClock;
use clusterscale_sim::{SimConfig, SimModel};

/// Options of `clusterscale-fake-cloud`.
#[derive(clap::Args, Debug, Clone)]
pub struct FakeCloudArgs {
    /// Serve a fake Tencent EMR endpoint on this address (port 0 picks a free port).
    #[arg(long)]
    pub tencent: Option<SocketAddr>,
    /// Serve a fake Huawei MRS (and IAM) endpoint on this address.
    #[arg(long)]
    pub huawei: Option<SocketAddr>,
    /// Serve a fake YARN ResourceManager (`GET /ws/v1/cluster/metrics`) on
    /// this address, whose NodeManagers are the nodes of a cluster served by
    /// --tencent or --huawei (see --yarn-cluster); `PUT /_fake/yarn/demand`
    /// (`{"memoryMB": N}`) sets its load.
    #[arg(long, value_name = "ADDR")]
    pub yarn: Option<SocketAddr>,
    /// The cluster whose nodes the fake ResourceManager's NodeManagers are:
    /// a Tencent instance id or a Huawei cluster id this process serves.
    /// Default: the first served (Tencent's, when both are).
    #[arg(long, value_name = "ID", requires = "yarn")]
    pub yarn_cluster: Option<String>,
    /// Memory of each NodeManager, in MB.
    #[arg(long, default_value_t = 65536, value_name = "MB")]
    pub yarn_node_mb: u64,
    /// Vcores of each NodeManager.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub yarn_node_vcores: u64,
    /// Memory of one container, in MB (containers are counted in it).
    #[arg(long, default_value_t = 4096, value_name = "MB")]
    pub yarn_container_mb: u64,
    /// Tencent cluster id (InstanceId) served.
    #[arg(long, default_value = "emr-fake0001")]
    pub tencent_instance_id: String,
    /// Huawei cluster id served.
    #[arg(long, default_value = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d")]
    pub huawei_cluster_id: String,
    /// Multi-instance mode: serve N Tencent instances, `emr-<prefix>00000`
    /// to `emr-<prefix><N-1, 5 digits>`, each with its own simulated
    /// cluster (made on first use), instead of --tencent-instance-id. They
    /// share one account: credentials, faults, --throttle-per-second
    /// windows (per action, across instances) and the journal.
    #[arg(long, value_name = "N", conflicts_with = "tencent_instance_id")]
    pub tencent_instances: Option<usize>,
    /// The <prefix> of --tencent-instances ids (lowercase letters and digits).
    #[arg(long, default_value = "fake", value_name = "PREFIX")]
    pub tencent_instance_prefix: String,
    /// Multi-instance mode: serve N Huawei clusters, UUID-shaped ids
    /// `<prefix>-0000-4000-8000-000000000000` to `...-<N-1, 12 digits>`,
    /// each with its own simulated cluster, instead of --huawei-cluster-id.
    /// They share one account: IAM users, access keys, tokens, faults,
    /// throttling windows and the journal.
    #[arg(long, value_name = "N", conflicts_with = "huawei_cluster_id")]
    pub huawei_clusters: Option<usize>,
    /// The <prefix> of --huawei-clusters ids (8 lowercase hex digits).
    #[arg(long, default_value = "c1a55ca1", value_name = "HEX8")]
    pub huawei_cluster_prefix: String,
    /// SecretId the Tencent fake accepts (default: $TENCENTCLOUD_SECRET_ID).
    #[arg(long, env = "TENCENTCLOUD_SECRET_ID", hide_env_values = true)]
    pub tencent_secret_id: Option<String>,
    /// SecretKey the Tencent fake verifies signatures with (default: $TENCENTCLOUD_SECRET_KEY).
    #[arg(long, env = "TENCENTCLOUD_SECRET_KEY", hide_env_values = true)]
    pub tencent_secret_key: Option<String>,
    /// Core nodes each fake cluster starts with.
    #[arg(long, default_value_t = 3)]
    pub initial_core: i32,
    /// Task nodes each fake cluster starts with.
    #[arg(long, default_value_t = 0)]
    pub initial_task: i32,
    /// Seconds one scale operation takes.
    #[arg(long, default_value_t = 5)]
    pub operation_seconds: u64,
    /// Account quota on Core+Task (besides the 500 cap).
    #[arg(long)]
    pub quota: Option<i32>,
    /// Fraction of requests (0-1) answered with the cloud's internal error.
    #[arg(long, default_value_t = 0.0)]
    pub transient_failure_rate: f64,
    /// Throttle each action above this many requests per second (per
    /// account: across every instance of a multi-instance fake), with the
    /// cloud's throttling error (Tencent `RequestLimitExceeded`, Huawei
    /// HTTP 429 `APIGW.0308`). Tencent EMR allows 20.
    #[arg(long)]
    pub throttle_per_second: Option<u32>,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Fraction of scale writes (0-1) refused with the cloud's own error body
    /// (Tencent `InternalError`, Huawei HTTP 500 `MRS.300`); nothing applied.
    #[arg(long, default_value_t = 0.0)]
    pub write_refusal_rate: f64,
    /// Fraction of scale writes applied whose answer is lost (HTTP 504).
    #[arg(long, default_value_t = 0.0)]
    pub lost_answer_rate: f64,
    /// A lost answer is a connection reset after the status line, not a 504.
    #[arg(long)]
    pub lost_answer_reset: bool,
    /// Fraction of scale writes answered by a proxy's HTML 502 page.
    #[arg(long, default_value_t = 0.0)]
    pub proxy_error_rate: f64,
    /// Whether the write behind a proxy error page is applied.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub proxy_error_applies: bool,
    /// Fraction of scale writes (0-1) whose answer, after the write was
    /// handled (and maybe applied), is replaced by a malformed one (see
    /// --malformed-kinds).
    #[arg(long, default_value_t = 0.0)]
    pub malformed_write_rate: f64,
    /// Fraction of other requests (reads, IAM tokens) answered with a
    /// malformed answer after being handled.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_read_rate: f64,
    /// The malformed answers drawn from, comma-separated: invalid-json,
    /// truncated, unknown-fields (valid, with fields the client does not
    /// know: it must accept them), wrong-type (a needed field of the wrong
    /// type), html-200 and html-502 (a proxy's HTML page). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub malformed_kinds: Vec<String>,
    /// Seed of the write faults and of the malformed answers (same seed,
    /// same faults); default random.
    #[arg(long)]
    pub fault_seed: Option<u64>,
    /// Huawei cluster type, which sets its node groups: analysis,
    /// streaming, hybrid (both Core and both Task groups) or custom
    /// (`node_group_1` master, `node_group_2` Core, the rest Task; see
    /// --huawei-custom-groups). v1.1's resize refuses custom clusters.
    #[arg(long, default_value = "analysis", value_name = "TYPE")]
    pub huawei_cluster_type: String,
    /// Node groups of a custom Huawei cluster (3 to 9).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub huawei_custom_groups: u8,
    /// A prepaid (on-period) Huawei node group: its nodes list
    /// `billing_type: on-period`, an expand answers an `order_id` and adds
    /// nothing, a shrink is refused. Repeatable; `PUT /_fake/prepaid` changes it.
    #[arg(long = "huawei-prepaid-group", value_name = "GROUP")]
    pub huawei_prepaid_groups: Vec<String>,
    /// An enabled Huawei auto-scaling policy, `GROUP:MIN:MAX`. Repeatable;
    /// `PUT /_fake/autoscaling` changes them.
    #[arg(long = "huawei-autoscaling", value_name = "GROUP:MIN:MAX")]
    pub huawei_autoscaling: Vec<String>,
    /// MRS v2's limits the Huawei fake keeps per account,
    /// `EXPAND:SHRINK:LISTNODES[:WINDOW_SECONDS]` (default MRS's own,
    /// `60:60:200:60`), or `off`: a request over one is answered HTTP 429
    /// `APIGW.0308`, nothing applied.
    #[arg(long, default_value = "60:60:200:60", value_name = "E:S:N[:SECS]|off")]
    pub huawei_v2_limits: String,
    /// An instance type the Tencent fake's ScaleOutCluster refuses with
    /// `ResourceUnavailable.ResourceSpecNotDefaultSpec`. Repeatable;
    /// `PUT /_fake/refused-specs` changes them.
    #[arg(long = "tencent-refused-instance-type", value_name = "TYPE")]
    pub tencent_refused_instance_types: Vec<String>,
    /// Directory for the JSON-lines journals (tencent.jsonl, huawei.jsonl).
    #[arg(long)]
    pub journal_dir: Option<PathBuf>,
    /// Serve Tencent STS `AssumeRoleWithWebIdentity` on the Tencent address
    /// too, verifying tokens with this PEM public key (PKCS#1 or
    /// SubjectPublicKeyInfo), e.g. the apiserver's `sa.pub`. Needs
    /// --tencent-sts-issuer, --tencent-sts-provider-id and
    /// --tencent-sts-role-arn. `GET /_fake/sts` counts the exchanges.
    #[arg(long, value_name = "PEM_FILE")]
    pub tencent_sts_public_key: Option<PathBuf>,
    /// The `iss` the tokens must carry (the apiserver's --service-account-issuer).
    #[arg(long, value_name = "URL")]
    pub tencent_sts_issuer: Option<String>,
    /// The audience the tokens must carry (the CAM OIDC provider's client id).
    #[arg(long, default_value = DEFAULT_AUDIENCE, value_name = "AUDIENCE")]
    pub tencent_sts_audience: String,
    /// The one `ProviderId` the fake STS accepts.
    #[arg(long, value_name = "ID")]
    pub tencent_sts_provider_id: Option<String>,
    /// The one `RoleArn` the fake STS accepts.
    #[arg(long, value_name = "ARN")]
    pub tencent_sts_role_arn: Option<String>,
    /// When set, the only token `sub` the role trusts
    /// (`system:serviceaccount:<namespace>:<name>`).
    #[arg(long, value_name = "SUB")]
    pub tencent_sts_subject: Option<String>,
    /// How long the temporary keys the fake STS issues live.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub tencent_sts_key_lifetime_seconds: u64,
    /// Serve IAM's OIDC federation on the Huawei fake (workload identity):
    /// the PEM public key its ID tokens are signed with (an apiserver's
    /// `sa.pub`). Needs --huawei-oidc-issuer, --huawei-oidc-audience and
    /// --huawei-idp-id.
    #[arg(long, value_name = "PEM_FILE")]
    pub huawei_oidc_public_key: Option<PathBuf>,
    /// The ID tokens' issuer (`iss`), e.g. `https://kubernetes.default.svc.cluster.local`.
    #[arg(long, value_name = "URL")]
    pub huawei_oidc_issuer: Option<String>,
    /// The audience the ID tokens must carry (the identity provider's client id).
    #[arg(long, value_name = "AUDIENCE")]
    pub huawei_oidc_audience: Option<String>,
    /// The identity provider id (`X-Idp-Id`) the fake IAM accepts.
    #[arg(long, value_name = "ID")]
    pub huawei_idp_id: Option<String>,
    /// Lifetime of the temporary keys handed out, whatever
    /// `duration_seconds` asks (default: what it asks, else 900).
    #[arg(long, value_name = "SECONDS")]
    pub huawei_key_lifetime_seconds: Option<u64>,
    /// A subject (`system:serviceaccount:NS:SA`) the identity provider's
    /// mapping admits; repeatable; default any.
    #[arg(long = "huawei-oidc-subject", value_name = "SUB")]
    pub huawei_oidc_subjects: Vec<String>,
}

/// The fake STS of the `--tencent-sts-*` flags: `None` without
/// `--tencent-sts-public-key`; an error naming the flag when one is missing
/// or the key file cannot be used.
pub fn sts_config(args: &FakeCloudArgs) -> Result<Option<StsFakeConfig>, String> {
    let Some(path) = &args.tencent_sts_public_key else {
        let given = [
            ("--tencent-sts-issuer", args.tencent_sts_issuer.is_some()),
            (
                "--tencent-sts-provider-id",
                args.tencent_sts_provider_id.is_some(),
            ),
            (
                "--tencent-sts-role-arn",
                args.tencent_sts_role_arn.is_some(),
            ),
            ("--tencent-sts-subject", args.tencent_sts_subject.is_some()),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((flag, _)) => Err(format!("{flag} needs --tencent-sts-public-key")),
            None => Ok(None),
        };
    };
    let need = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("--tencent-sts-public-key needs {flag}"))
    };
    let issuer = need("--tencent-sts-issuer", &args.tencent_sts_issuer)?;
    let provider_id = need("--tencent-sts-provider-id", &args.tencent_sts_provider_id)?;
    let role_arn = need("--tencent-sts-role-arn", &args.tencent_sts_role_arn)?;
    if args.tencent_sts_key_lifetime_seconds == 0 {
        return Err("--tencent-sts-key-lifetime-seconds must be at least 1".into());
    }
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("--tencent-sts-public-key {}: {e}", path.display()))?;
    let provider = OidcProvider::from_pem(&issuer, &pem)
        .map_err(|e| format!("--tencent-sts-public-key {}: {e}", path.display()))?;
    let mut config = StsFakeConfig::new(provider, provider_id, role_arn);
    config.audience = args.tencent_sts_audience.trim().to_string();
    config.subject = args.tencent_sts_subject.clone().filter(|s| !s.is_empty());
    config.key_lifetime = Duration::from_secs(args.tencent_sts_key_lifetime_seconds);
    Ok(Some(config))
}

/// Run until killed. Prints one `<cloud> listening on http://ADDR` line per
/// endpoint (`tencent`, `huawei`, `yarn`).
pub async fn run(args: FakeCloudArgs) -> Result<(), String> {
    if args.tencent.is_none() && args.huawei.is_none() {
        return Err(if args.yarn.is_some() {
            "--yarn needs --tencent ADDR or --huawei ADDR: the fake ResourceManager's NodeManagers are the nodes of a cluster they serve".into()
        } else {
            "give --tencent ADDR and/or --huawei ADDR".into()
        });
    }
    let yarn_config = YarnConfig {
        node_mb: args.yarn_node_mb,
        node_vcores: args.yarn_node_vcores,
        container_mb: args.yarn_container_mb,
    };
    yarn_config
        .check()
        .map_err(|e| format!("--yarn-node-mb, --yarn-node-vcores, --yarn-container-mb: {e}"))?;
    // The cluster the fake ResourceManager follows, found while each fake is
    // built (it is moved into its server task after), and the ids served,
    // for the error when --yarn-cluster names none of them.
    let mut yarn_model: Option<Arc<SimModel>> = None;
    let mut served: Vec<String> = Vec::new();
    for (flag, rate) in [
        ("--transient-failure-rate", args.transient_failure_rate),
        ("--write-refusal-rate", args.write_refusal_rate),
        ("--lost-answer-rate", args.lost_answer_rate),
        ("--proxy-error-rate", args.proxy_error_rate),
        ("--malformed-write-rate", args.malformed_write_rate),
        ("--malformed-read-rate", args.malformed_read_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{flag} must be between 0 and 1"));
        }
    }
    if args.write_refusal_rate + args.lost_answer_rate + args.proxy_error_rate > 1.0 {
        return Err(
            "--write-refusal-rate, --lost-answer-rate and --proxy-error-rate must add up to at most 1"
                .into(),
        );
    }
    let malformed_kinds = args
        .malformed_kinds
        .iter()
        .map(|k| {
            Malformed::from_name(k).ok_or_else(|| {
                format!(
                    "--malformed-kinds: unknown kind `{k}` (one of {})",
                    Malformed::ALL.map(Malformed::name).join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let faults = FakeFaults {
        transient_failure_rate: args.transient_failure_rate,
        throttle_per_second: args.throttle_per_second,
        delay_ms: args.delay_ms,
        write_refusal_rate: args.write_refusal_rate,
        lost_answer_rate: args.lost_answer_rate,
        lost_answer_reset: args.lost_answer_reset,
        proxy_error_rate: args.proxy_error_rate,
        proxy_error_drops_write: !args.proxy_error_applies,
        seed: args.fault_seed,
        malformed_write_rate: args.malformed_write_rate,
        malformed_read_rate: args.malformed_read_rate,
        malformed_kinds,
    };
    let options = |file: &str| FakeOptions {
        faults: faults.clone(),
        journal_path: args.journal_dir.as_ref().map(|d| d.join(file)),
        ..FakeOptions::default()
    };
    let sim = SimConfig {
        initial_core: args.initial_core,
        initial_task: args.initial_task,
        operation_time: Duration::from_secs(args.operation_seconds),
        quota: args.quota,
    };
    // The account's wire journal (`/_fake/journal`) records every request; the
    // models' own journals would only grow with every observation.
    let model: crate::tencent::ModelFactory = Arc::new(move |id: &str| {
        Arc::new(SimModel::new(id, sim.clone(), Arc::new(SystemClock)).with_journal_limit(0))
    });
    if let Some(dir) = &args.journal_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--journal-dir {}: {e}", dir.display()))?;
    }
    let mut servers = Vec::new();
    let sts = sts_config(&args)?;
    if sts.is_some() && args.tencent.is_none() {
        return Err("--tencent-sts-public-key needs --tencent ADDR".into());
    }
    if let Some(addr) = args.tencent {
        let (Some(id), Some(key)) = (&args.tencent_secret_id, &args.tencent_secret_key) else {
            return Err("the Tencent fake needs the credentials it accepts: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY (or --tencent-secret-id/--tencent-secret-key)".into());
        };
        let mut config = TencentFakeConfig::new(id.clone(), key.clone());
        config.options = options("tencent.jsonl");
        if let Some(sts) = &sts {
            println!(
                "tencent STS serving AssumeRoleWithWebIdentity for {} via {} (audience {}, keys of {}s)",
                sts.role_arn,
                sts.provider_id,
                sts.audience,
                sts.key_lifetime.as_secs()
            );
        }
        config.sts = sts;
        let listener = bind(addr).await?;
        let ids = match args.tencent_instances {
            Some(n) => tencent_fleet_ids(&args.tencent_instance_prefix, n)?,
            None => vec![args.tencent_instance_id.clone()],
        };
        let fake = match args.tencent_instances {
            Some(n) => {
                println!("tencent serving {n} instances {}..{}", ids[0], ids[n - 1]);
                TencentFake::fleet(ids.clone(), model.clone(), config)
            }
            None => TencentFake::new(model(&args.tencent_instance_id), config),
        }
        .map_err(|e| format!("the Tencent fake: {e}"))?;
        if args.yarn.is_some() && yarn_model.is_none() {
            yarn_model = yarn_cluster(&args, &ids, |id| fake.model_of(id));
            served.push(format!("tencent {}", id_range(&ids)));
        }
        let refused: Vec<&str> = args
            .tencent_refused_instance_types
            .iter()
            .map(String::as_str)
            .collect();
        fake.refuse_instance_types(&refused);
        println!("tencent listening on http://{}", local(&listener));
        servers.push(tokio::spawn(fake.serve(listener)));
    }
    if let Some(addr) = args.huawei {
        let mut config = HuaweiFakeConfig::from_env();
        config.options = options("huawei.jsonl");
        config.cluster_type =
            FakeClusterType::parse(&args.huawei_cluster_type, args.huawei_custom_groups)
                .map_err(|e| format!("--huawei-cluster-type: {e}"))?;
        config.groups = GroupSettings {
            prepaid: args.huawei_prepaid_groups.clone(),
            policies: args
                .huawei_autoscaling
                .iter()
                .map(|p| parse_policy(p))
                .collect::<Result<_, _>>()?,
        };
        config.v2_rate_limits = parse_v2_limits(&args.huawei_v2_limits)?;
        config.federation = huawei_federation(&args)?;
        let listener = bind(addr).await?;
        let ids = match args.huawei_clusters {
            Some(n) => huawei_fleet_ids(&args.huawei_cluster_prefix, n)?,
            None => vec![args.huawei_cluster_id.clone()],
        };
        let fake = match args.huawei_clusters {
            Some(n) => {
                println!("huawei serving {n} clusters {}..{}", ids[0], ids[n - 1]);
                HuaweiFake::fleet(ids.clone(), model.clone(), config)
            }
            None => {
                config.cluster_id = Some(args.huawei_cluster_id.clone());
                HuaweiFake::new(model(&args.huawei_cluster_id), config)
            }
        }
        .map_err(|e| format!("the Huawei fake: {e}"))?;
        if args.yarn.is_some() && yarn_model.is_none() {
            yarn_model = yarn_cluster(&args, &ids, |id| fake.model_of(id));
            served.push(format!("huawei {}", id_range(&ids)));
        }
        println!("huawei listening on http://{}", local(&listener));
        servers.push(tokio::spawn(fake.serve(listener)));
    }
    if let Some(addr) = args.yarn {
        let Some(model) = yarn_model else {
            return Err(format!(
                "--yarn-cluster {}: not a cluster this process serves ({})",
                args.yarn_cluster.as_deref().unwrap_or_default(),
                served.join("; ")
            ));
        };
        let fake = YarnFake::new(model, yarn_config).map_err(|e| format!("--yarn: {e}"))?;
        let listener = bind(addr).await?;
        println!(
            "yarn serving the nodes of {} as NodeManagers of {} MB and {} vcores",
            fake.model().id(),
            fake.config().node_mb,
            fake.config().node_vcores
        );
        println!("yarn listening on http://{}", local(&listener));
        servers.push(tokio::spawn(fake.serve(listener)));
    }
    for s in servers {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("fake server stopped: {e}")),
            Err(e) => return Err(format!("fake server task: {e}")),
        }
    }
    Ok(())
}

/// The model of the cluster `--yarn-cluster` names among `ids` (served by
/// one fake, looked up with `model_of`), or of the first of `ids` without
/// the flag; `None` when the flag names another id.
fn yarn_cluster(
    args: &FakeCloudArgs,
    ids: &[String],
    model_of: impl Fn(&str) -> Option<Arc<SimModel>>,
) -> Option<Arc<SimModel>> {
    match &args.yarn_cluster {
        Some(id) => model_of(id),
        None => model_of(ids.first()?),
    }
}

/// `a` for one id, `a..z` for a fleet's.
fn id_range(ids: &[String]) -> String {
    match ids {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] => format!("{first}..{last}"),
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the fake cloud listens beyond loopback; it accepts only its configured credentials");
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn local(l: &tokio::net::TcpListener) -> String {
    l.local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The Huawei fake's OIDC federation from the `--huawei-oidc-*`,
/// `--huawei-idp-id` and `--huawei-key-lifetime-seconds` flags: `None`
/// without `--huawei-oidc-public-key`.
pub fn huawei_federation(args: &FakeCloudArgs) -> Result<Option<FakeFederation>, String> {
    let Some(pem_file) = &args.huawei_oidc_public_key else {
        let set = args.huawei_oidc_issuer.is_some()
            || args.huawei_oidc_audience.is_some()
            || args.huawei_idp_id.is_some()
            || args.huawei_key_lifetime_seconds.is_some()
            || !args.huawei_oidc_subjects.is_empty();
        return if set {
            Err("the --huawei-oidc-* flags, --huawei-idp-id and --huawei-key-lifetime-seconds need --huawei-oidc-public-key".into())
        } else {
            Ok(None)
        };
    };
    let need = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("--huawei-oidc-public-key needs {flag}"))
    };
    let issuer = need("--huawei-oidc-issuer", &args.huawei_oidc_issuer)?;
    let audience = need("--huawei-oidc-audience", &args.huawei_oidc_audience)?;
    let idp_id = need("--huawei-idp-id", &args.huawei_idp_id)?;
    let pem = std::fs::read_to_string(pem_file)
        .map_err(|e| format!("--huawei-oidc-public-key {}: {e}", pem_file.display()))?;
    let provider = OidcProvider::from_pem(&issuer, &pem)
        .map_err(|e| format!("--huawei-oidc-public-key {}: {e}", pem_file.display()))?;
    let mut federation = FakeFederation::new(provider, idp_id, audience);
    if let Some(secs) = args.huawei_key_lifetime_seconds {
        if secs == 0 {
            return Err("--huawei-key-lifetime-seconds must be above 0".into());
        }
        federation.key_lifetime = Some(Duration::from_secs(secs));
    }
    federation.subjects = args.huawei_oidc_subjects.clone();
    Ok(Some(federation))
}

/// `--huawei-autoscaling GROUP:MIN:MAX`: an enabled policy.
pub fn parse_policy(text: &str) -> Result<FakePolicy, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || {
        format!("--huawei-autoscaling {text:?}: expected GROUP:MIN:MAX (0 <= MIN <= MAX <= 500)")
    };
    let [group, min, max] = parts.as_slice() else {
        return Err(bad());
    };
    let (min, max) = match (min.parse::<i32>(), max.parse::<i32>()) {
        (Ok(a), Ok(b)) if 0 <= a && a <= b && b <= 500 => (a, b),
        _ => return Err(bad()),
    };
    if group.is_empty() {
        return Err(bad());
    }
    Ok(FakePolicy {
        group: group.to_string(),
        enabled: true,
        min,
        max,
    })
}

/// `--huawei-v2-limits EXPAND:SHRINK:LISTNODES[:WINDOW_SECONDS]`, or `off`.
pub fn parse_v2_limits(text: &str) -> Result<Option<V2RateLimits>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "--huawei-v2-limits {text:?}: expected EXPAND:SHRINK:LISTNODES[:WINDOW_SECONDS] \
             (numbers, a window above 0) or off"
        )
    };
    let numbers = text
        .split(':')
        .map(|n| n.trim().parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    let (expand, shrink, list_nodes, secs) = match numbers.as_slice() {
        [e, s, n] => (*e, *s, *n, 60),
        [e, s, n, w] if *w > 0 => (*e, *s, *n, *w),
        _ => return Err(bad()),
    };
    Ok(Some(V2RateLimits {
        expand,
        shrink,
        list_nodes,
        window: std::time::Duration::from_secs(u64::from(secs)),
    }))
}

/// The instance ids of `--tencent-instances N`: `emr-<prefix>00000`...
pub fn tencent_fleet_ids(prefix: &str, n: usize) -> Result<Vec<String>, String> {
    if n == 0 {
        return Err("--tencent-instances must be at least 1".into());
    }
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("--tencent-instance-prefix must be lowercase letters and digits".into());
    }
    Ok((0..n).map(|i| format!("emr-{prefix}{i:05}")).collect())
}

/// The cluster ids of `--huawei-clusters N`: `<prefix>-0000-4000-8000-<i, 12 digits>`.
pub fn huawei_fleet_ids(prefix: &str, n: usize) -> Result<Vec<String>, String> {
    if n == 0 {
        return Err("--huawei-clusters must be at least 1".into());
    }
    if prefix.len() != 8
        || !prefix
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err("--huawei-cluster-prefix must be 8 lowercase hex digits".into());
    }
    if n > 1_000_000_000_000 {
        return Err("--huawei-clusters is too large".into());
    }
    Ok((0..n)
        .map(|i| format!("{prefix}-0000-4000-8000-{i:012}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_ids_are_shaped_like_the_clouds_ids() {
        let t = tencent_fleet_ids("fake", 3).unwrap();
        assert_eq!(t, ["emr-fake00000", "emr-fake00001", "emr-fake00002"]);
        let h = huawei_fleet_ids("c1a55ca1", 2).unwrap();
        assert_eq!(h[1], "c1a55ca1-0000-4000-8000-000000000001");
        assert_eq!(h[1].len(), 36);
        assert!(tencent_fleet_ids("Fake", 1).is_err());
        assert!(tencent_fleet_ids("fake", 0).is_err());
        assert!(huawei_fleet_ids("xyz", 1).is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: FakeCloudArgs,
    }

    fn parse(flags: &[&str]) -> FakeCloudArgs {
        use clap::Parser;
        let mut argv = vec!["clusterscale-fake-cloud"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").args
    }

    #[test]
    fn sts_flags_enable_the_fake_sts() {
        assert!(sts_config(&parse(&[])).unwrap().is_none());
        let e = sts_config(&parse(&[
            "--tencent-sts-role-arn",
            "qcs::cam::uin/1:roleName/r",
        ]))
        .unwrap_err();
        assert!(e.contains("--tencent-sts-public-key"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("sa.pub");
        std::fs::write(&pem, crate::oidc::testing::PUBLIC_KEY_PEM).unwrap();
        let pem = pem.to_str().unwrap();
        let e = sts_config(&parse(&["--tencent-sts-public-key", pem])).unwrap_err();
        assert!(e.contains("--tencent-sts-issuer"), "{e}");
        let full = [
            "--tencent-sts-public-key",
            pem,
            "--tencent-sts-issuer",
            crate::oidc::testing::ISSUER,
            "--tencent-sts-provider-id",
            "cls-fake",
            "--tencent-sts-role-arn",
            "qcs::cam::uin/1:roleName/r",
            "--tencent-sts-key-lifetime-seconds",
            "60",
        ];
        let c = sts_config(&parse(&full)).unwrap().unwrap();
        assert_eq!(
            (
                c.provider_id.as_str(),
                c.role_arn.as_str(),
                c.audience.as_str(),
                c.key_lifetime
            ),
            (
                "cls-fake",
                "qcs::cam::uin/1:roleName/r",
                DEFAULT_AUDIENCE,
                Duration::from_secs(60)
            )
        );
        assert_eq!(c.provider.issuer, crate::oidc::testing::ISSUER);
        let mut bad = full.to_vec();
        bad[1] = "/nonexistent/sa.pub";
        let e = sts_config(&parse(&bad)).unwrap_err();
        assert!(e.contains("/nonexistent/sa.pub"), "{e}");
    }

    #[test]
    fn federation_flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: FakeCloudArgs,
        }
        let args = |extra: &[&str]| {
            let mut v = vec!["fake", "--huawei", "127.0.0.1:0"];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v).expect("flags parse").args
        };
        assert!(huawei_federation(&args(&[])).unwrap().is_none());
        let e = huawei_federation(&args(&["--huawei-idp-id", "x"])).unwrap_err();
        assert!(e.contains("--huawei-oidc-public-key"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("sa.pub");
        std::fs::write(&pem, crate::oidc::testing::PUBLIC_KEY_PEM).unwrap();
        let pem = pem.to_str().unwrap();
        let e = huawei_federation(&args(&["--huawei-oidc-public-key", pem])).unwrap_err();
        assert!(e.contains("--huawei-oidc-issuer"), "{e}");
        let f = huawei_federation(&args(&[
            "--huawei-oidc-public-key",
            pem,
            "--huawei-oidc-issuer",
            crate::oidc::testing::ISSUER,
            "--huawei-oidc-audience",
            "iam.myhuaweicloud.com",
            "--huawei-idp-id",
            "cce-idp",
            "--huawei-key-lifetime-seconds",
            "60",
            "--huawei-oidc-subject",
            "system:serviceaccount:ops:clusterscale",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                f.idp_id.as_str(),
                f.audience.as_str(),
                f.key_lifetime,
                f.subjects.len()
            ),
            (
                "cce-idp",
                "iam.myhuaweicloud.com",
                Some(Duration::from_secs(60)),
                1
            )
        );
        assert_eq!(f.provider.issuer, crate::oidc::testing::ISSUER);
        let e = huawei_federation(&args(&[
            "--huawei-oidc-public-key",
            "/nonexistent/sa.pub",
            "--huawei-oidc-issuer",
            "i",
            "--huawei-oidc-audience",
            "a",
            "--huawei-idp-id",
            "d",
        ]))
        .unwrap_err();
        assert!(e.contains("/nonexistent/sa.pub"), "{e}");
    }

    #[tokio::test]
    async fn yarn_flags_are_checked() {
        use clap::Parser;
        assert!(
            Cli::try_parse_from(["fake", "--tencent", "127.0.0.1:0", "--yarn-cluster", "x"])
                .is_err(),
            "--yarn-cluster needs --yarn"
        );
        let e = run(parse(&["--yarn", "127.0.0.1:0"])).await.unwrap_err();
        assert!(
            e.contains("--yarn needs --tencent ADDR or --huawei ADDR"),
            "{e}"
        );
        let e = run(parse(&[
            "--huawei",
            "127.0.0.1:0",
            "--yarn",
            "127.0.0.1:0",
            "--yarn-container-mb",
            "0",
        ]))
        .await
        .unwrap_err();
        assert!(
            e.contains("--yarn-container-mb") && e.contains("above 0"),
            "{e}"
        );
        assert_eq!(id_range(&["a".into()]), "a");
        assert_eq!(id_range(&["a".into(), "b".into(), "c".into()]), "a..c");
    }

    #[test]
    fn node_group_flags_parse() {
        let p = parse_policy("task_node_streaming_group:1:5").unwrap();
        assert_eq!(
            (p.group.as_str(), p.min, p.max, p.enabled),
            ("task_node_streaming_group", 1, 5, true)
        );
        for bad in ["g:5:1", "g:1", ":0:1", "g:x:2", "g:0:501"] {
            assert!(parse_policy(bad).is_err(), "{bad}");
        }
        assert_eq!(
            FakeClusterType::parse("custom", 5).unwrap(),
            FakeClusterType::Custom(5)
        );
        assert!(FakeClusterType::parse("custom", 10).is_err());
        assert_eq!(
            FakeClusterType::parse("hybrid", 3).unwrap(),
            FakeClusterType::Hybrid
        );
        assert!(FakeClusterType::parse("batch", 3).is_err());
        assert_eq!(
            parse_v2_limits("60:60:200:60").unwrap(),
            Some(V2RateLimits::MRS)
        );
        assert_eq!(
            parse_v2_limits("1:2:3").unwrap(),
            Some(V2RateLimits {
                expand: 1,
                shrink: 2,
                list_nodes: 3,
                window: std::time::Duration::from_secs(60)
            })
        );
        assert_eq!(parse_v2_limits("off").unwrap(), None);
        for bad in ["1:2", "1:2:3:0", "a:2:3", "1:2:3:4:5", ""] {
            assert!(parse_v2_limits(bad).is_err(), "{bad}");
        }
        let names: Vec<String> = FakeClusterType::Custom(4)
            .groups()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "node_group_1",
                "node_group_2",
                "node_group_3",
                "node_group_4"
            ]
        );
    }
}
