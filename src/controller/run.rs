//! `clusterscale run`: wire the watch, the reconciler, leader election and the
//! admin server together.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, reflector, watcher, Controller, PredicateConfig, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tracing::{error, info, warn};

use clusterscale_lease::{LeaderElector, LeaseConfig, LeaseFence};

use super::accounts::status::{self as account_status, AccountContext, Scope as AccountScope};
use super::accounts::{account_of, clusters_using_account, Accounts};
use super::reconcile::backoff::{self, Backoffs};
use super::reconcile::clouds::CloudCache;
use super::reconcile::events::Recorder;
use super::reconcile::reconciler::{self, clusters_using_secret, Context};
use super::reconcile::secrets::SecretScope;
use super::serve::admin;
use super::serve::liveness::{self, Liveness};
use super::serve::metrics::Metrics;
use super::watch::backlog::Backlog;
use super::watch::claims::ClaimIndex;
use super::watch::ClusterOrInvalid;
use crate::cloud::CloudArgs;
use crate::telemetry::LogFormat;
use clusterscale_core::api::account::CloudAccount;
use clusterscale_core::api::ScaledCluster;
use clusterscale_core::clock::SystemClock;
use clusterscale_core::cloud::fence::{AlwaysOpen, Fence};
use clusterscale_engine::EngineConfig;

/// Options of `clusterscale run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace to watch (repeatable); all namespaces when absent.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// Label selector of the ScaledClusters to reconcile (e.g. `shard=a`), to split a
    /// fleet between Deployments; give each its own --lease-name. Checked at start: a
    /// malformed selector is a usage error (exit 2), not a watch retried forever.
    #[arg(long, value_parser = super::selector::parse_label_selector)]
    pub selector: Option<String>,
    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Only the holder of a coordination.k8s.io Lease reconciles (`--leader-elect=false` to disable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "clusterscale-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease and in Events (default: $POD_NAME, else hostname-pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Resources reconciled in parallel (one operation per resource at any time regardless).
    /// Cloud reads take 50-300 ms and the per-account rate limiters are the real bound:
    /// 32 keeps ~100 reconciles/s in flight at 300 ms each.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Seconds between resyncs of a converged resource, to catch drift made outside the operator.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between polls while an operation runs.
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
    /// Largest delay, before jitter, of the per-resource exponential backoff
    /// while one call keeps failing with Transient, Throttled or Busy.
    #[arg(long, default_value_t = backoff::CAP.as_secs())]
    pub backoff_cap_seconds: u64,
    /// Seconds that errors which retrying gets past (Transient, Throttled,
    /// Busy, Capacity) may persist before a ScaledCluster reports Degraded.
    #[arg(long, alias = "degraded-after", default_value_t = clusterscale_engine::DEGRADED_AFTER.as_secs())]
    pub degraded_after_seconds: u64,
    /// Bound of one Kubernetes API request that is not a watch, and of a
    /// watch request until its response starts (see `controller::client`).
    #[arg(long, default_value_t = super::client::REQUEST_TIMEOUT.as_secs(), hide = true)]
    pub kube_request_timeout_seconds: u64,
    /// Server-side timeout of each watch (`timeoutSeconds`); the watcher drops a
    /// stream that was silent for this plus 5 s and resumes on a new connection.
    #[arg(long, default_value_t = super::client::WATCH_TIMEOUT_SECONDS, hide = true)]
    pub watch_timeout_seconds: u32,
    /// The watchdog's bound: `/livez` fails when this replica leads, passes
    /// fail or resources wait, and neither a watch event nor a completed pass
    /// came for this long (see `controller::serve::liveness`).
    #[arg(long, default_value_t = liveness::DEFAULT_STALL.as_secs(), hide = true)]
    pub livez_stall_seconds: u64,
    /// Where Secrets are read: `namespaced` reads them only in the
    /// operator's own namespace (POD_NAMESPACE, `--lease-namespace`), where
    /// CloudAccounts' `secretRef`s point, and needs no cluster-wide read of
    /// Secrets; `cluster-wide` also reads each ScaledCluster's
    /// `credentialsSecretRef` in its own namespace.
    #[arg(long, value_enum, default_value = "cluster-wide")]
    pub secrets: SecretsArg,
    /// Export the per-resource series (clusterscale_nodes,
    /// clusterscale_condition, clusterscale_last_observed_timestamp_seconds):
    /// about ten per ScaledCluster. Turn off for fleets whose Prometheus
    /// series budget or scrape time they strain (docs/benchmarks.md has the
    /// size at 10,000); the fleet-wide metrics stay.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub per_resource_metrics: bool,
    #[command(flatten)]
    pub clouds: CloudArgs,
}

/// `--secrets`: the chart's `rbac.secrets`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsArg {
    Namespaced,
    ClusterWide,
}

impl RunArgs {
    /// The Secret scope `--secrets` asks for.
    pub fn secret_scope(&self) -> SecretScope {
        match self.secrets {
            SecretsArg::Namespaced => SecretScope::Namespaced(self.lease_namespace.clone()),
            SecretsArg::ClusterWide => SecretScope::ClusterWide,
        }
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to Kubernetes: {0}")]
    Connect(kube::Error),
    #[error(
        "the ScaledCluster CRD is not installed (scaledclusters.clusterscale.io not found); install it with: kubectl apply -f crds/"
    )]
    CrdMissing,
    #[error("checking the ScaledCluster CRD: {0}")]
    CrdCheck(kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Lease(String),
    #[error("lost the leader lease; exiting so that only one replica writes")]
    LeaseLost,
}

/// Run the controller until SIGTERM/SIGINT, or until the lease is lost.
///
/// Warm standby: every replica starts its watches at once and is Ready when
/// its caches are synced, leader or not, so that a Deployment's rolling
/// update can make a new pod Ready while the old leader lives. Only the
/// holder of the Lease reconciles (and so writes): until then each reconcile
/// is a no-op, and on becoming leader every cached object is reconciled at
/// once (`reconcile_all_on`), with no fresh list.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    crate::telemetry::init(args.log_format);
    let client = super::client::bounded_client(Duration::from_secs(
        args.kube_request_timeout_seconds.max(1),
    ))
    .await
    .map_err(RunError::Connect)?;
    check_crd(&client, args.namespaces.first().map(String::as_str)).await?;
    let metrics = Metrics::default();
    metrics.set_per_resource(args.per_resource_metrics);
    let ready = Arc::new(AtomicBool::new(false));
    let liveness = Liveness::new(Duration::from_secs(args.livez_stall_seconds.max(1)));
    spawn_admin(&args, metrics.clone(), ready.clone(), liveness.clone()).await?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let leading = Arc::new(AtomicBool::new(!args.leader_elect));
    metrics.set_leader(!args.leader_elect);
    liveness.set_leading(!args.leader_elect, std::time::Instant::now());

    let elector = args.leader_elect.then(|| {
        LeaderElector::new(
            client.clone(),
            LeaseConfig::new(
                args.lease_namespace.clone(),
                args.lease_name.clone(),
                identity.clone(),
            ),
        )
    });
    let fence: Arc<dyn Fence> = match &elector {
        Some(elector) => Arc::new(LeaderFence(elector.fence())),
        None => Arc::new(AlwaysOpen),
    };
    let (account_store, account_writer) = reflector::store::<CloudAccount>();
    let ctx = context(
        &args,
        &client,
        &identity,
        &metrics,
        fence,
        &liveness,
        account_store,
    );
    let mut watched = watch(&args, &client, &ctx);
    let stores: Vec<_> = watched.controllers.iter().map(Controller::store).collect();
    let mut runs = drive(
        std::mem::take(&mut watched.controllers),
        &args,
        &client,
        &stores,
        &ctx,
        &leading,
    );
    runs.push(watch_accounts(
        &args,
        &client,
        &ctx,
        &stores,
        account_writer,
        &mut watched,
        &leading,
    ));
    let all = until_stopped(runs, stores, ready);
    let Some(elector) = elector else {
        all.await;
        info!("controller stopped");
        return Ok(());
    };
    let state = LeaderState {
        flag: &leading,
        metrics: &metrics,
        liveness: &liveness,
    };
    lead(&args, elector, all, &watched.takeover, &state).await
}

/// The engine's fence: the leader lease, by the monotonic clock.
#[derive(Debug)]
struct LeaderFence(LeaseFence);

impl Fence for LeaderFence {
    fn is_open(&self) -> bool {
        self.0.is_open()
    }
}

/// The namespaces to watch, one watch stream each; `None`: all of them.
fn namespaces(args: &RunArgs) -> Vec<Option<String>> {
    if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    }
}

/// The state every reconcile shares.
fn context(
    args: &RunArgs,
    client: &Client,
    identity: &str,
    metrics: &Metrics,
    fence: Arc<dyn Fence>,
    liveness: &Liveness,
    accounts: Store<CloudAccount>,
) -> Arc<Context> {
    let options = args
        .clouds
        .options(Some(clusterscale_core::cloud::http::client()));
    let engine = EngineConfig {
        poll: Duration::from_secs(args.poll_seconds.max(1)),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        degraded_after: Duration::from_secs(args.degraded_after_seconds.max(1)),
        fence,
        ..EngineConfig::default()
    };
    Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "clusterscale".into(),
                instance: Some(identity.to_string()),
            },
            metrics.clone(),
        ),
        metrics: metrics.clone(),
        backlog: Arc::new(Backlog::new(engine.poll, engine.resync, options.clone())),
        deferred: Arc::default(),
        accounts: Arc::new(Accounts::new(
            accounts,
            args.secret_scope(),
            Arc::new(SystemClock),
            options.http.clone(),
        )),
        clouds: CloudCache::new(options),
        clock: Arc::new(SystemClock),
        engine,
        claims: Arc::new(ClaimIndex::new()),
        backoffs: Backoffs::new(Duration::from_secs(args.backoff_cap_seconds.max(1))),
        liveness: liveness.clone(),
    })
}

/// One controller per watched namespace, and the triggers that make each
/// reconcile everything it caches when this replica becomes the leader.
struct Watched {
    controllers: Vec<Controller<ClusterOrInvalid>>,
    takeover: Vec<futures::channel::mpsc::UnboundedSender<()>>,
    /// Per controller: the users of a CloudAccount that changed.
    account_users: Vec<futures::channel::mpsc::UnboundedSender<ObjectRef<ClusterOrInvalid>>>,
    /// The accounts named by a ScaledCluster that changed (its user count).
    accounts_named: Option<futures::channel::mpsc::UnboundedReceiver<ObjectRef<CloudAccount>>>,
}

/// Start watching: the ScaledClusters of each namespace feed the claims and
/// the backlog (before the reflector), then the cache and the controller.
fn watch(args: &RunArgs, client: &Client, ctx: &Context) -> Watched {
    let (named, accounts_named) = futures::channel::mpsc::unbounded();
    let mut watched = Watched {
        controllers: Vec::new(),
        takeover: Vec::new(),
        account_users: Vec::new(),
        accounts_named: Some(accounts_named),
    };
    for (source, ns) in namespaces(args).into_iter().enumerate() {
        let api: Api<ClusterOrInvalid> = match &ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // Our own status writes would otherwise trigger a reconcile (and a
        // cloud read) each: react to spec changes (generation, which
        // `kubectl scale` bumps too), and let the requeue schedule poll.
        let (reader, writer) = reflector::store();
        let mut config = watcher_config(args);
        if let Some(selector) = &args.selector {
            config = config.labels(selector);
        }
        let (claims, backlog, metrics, liveness, named) = (
            ctx.claims.clone(),
            ctx.backlog.clone(),
            ctx.metrics.clone(),
            ctx.liveness.clone(),
            named.clone(),
        );
        let changes = watcher(api, config)
            .default_backoff()
            .modify(strip_bookkeeping)
            .inspect_ok(move |event| {
                metrics.watch_event_at(std::time::SystemTime::now());
                liveness.watch_event(std::time::Instant::now());
                claims.observe(source, event);
                backlog.observe(source, event);
                metrics.set_backlog(backlog.waiting());
                liveness.set_waiting(backlog.waiting());
                if let watcher::Event::Apply(obj)
                | watcher::Event::InitApply(obj)
                | watcher::Event::Delete(obj) = event
                {
                    if let Some(account) = obj.0.as_ref().ok().and_then(|c| account_of(&c.spec)) {
                        let _ = named.unbounded_send(ObjectRef::new(account));
                    }
                }
            })
            .reflect(writer)
            .applied_objects()
            .predicate_filter(predicates::generation, PredicateConfig::default());
        let (trigger, on_takeover) = futures::channel::mpsc::unbounded::<()>();
        watched.takeover.push(trigger);
        let (users, account_changed) = futures::channel::mpsc::unbounded();
        watched.account_users.push(users);
        watched.controllers.push(
            Controller::for_stream(changes, reader)
                .with_config(
                    kube::runtime::controller::Config::default().concurrency(args.concurrency),
                )
                .reconcile_all_on(on_takeover)
                .reconcile_on(account_changed),
        );
    }
    watched
}

/// Run each controller: reconcile while `leading`, and again when a Secret
/// that a ScaledCluster uses changes.
fn drive(
    controllers: Vec<Controller<ClusterOrInvalid>>,
    args: &RunArgs,
    client: &Client,
    stores: &[Store<ClusterOrInvalid>],
    ctx: &Arc<Context>,
    leading: &Arc<AtomicBool>,
) -> Vec<BoxFuture<'static, ()>> {
    let mut runs = Vec::new();
    for (controller, ns) in controllers.into_iter().zip(namespaces(args)) {
        let secrets: Api<PartialObjectMeta<Secret>> = match (args.secret_scope(), &ns) {
            (SecretScope::Namespaced(own), _) => Api::namespaced(client.clone(), &own),
            (SecretScope::ClusterWide, Some(ns)) => Api::namespaced(client.clone(), ns),
            (SecretScope::ClusterWide, None) => Api::all(client.clone()),
        };
        // Metadata only: the operator never holds every Secret's data in memory.
        let secret_changes = watcher(secrets, watcher_config(args)).touched_objects();
        let mapper_stores = stores.to_vec();
        let accounts = ctx.accounts.clone();
        let leading = leading.clone();
        let reconcile = move |obj: Arc<ClusterOrInvalid>, ctx: Arc<Context>| {
            let leading = leading.load(Ordering::SeqCst);
            async move {
                if leading {
                    reconciler::reconcile(obj, ctx).await
                } else {
                    // A follower: the takeover trigger reconciles it later.
                    Ok(Action::await_change())
                }
            }
        };
        let run = controller
            .watches_stream(secret_changes, move |secret| {
                let namespace = secret.metadata.namespace.clone().unwrap_or_default();
                let name = secret.metadata.name.clone().unwrap_or_default();
                clusters_using_secret(&mapper_stores, &accounts, &namespace, &name)
            })
            .shutdown_on_signal()
            .run(reconcile, reconciler::error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    warn!(error = %e, "reconcile error");
                }
            });
        runs.push(run.boxed());
    }
    runs
}

/// The CloudAccount watch (cluster-scoped): it fills the accounts' cache,
/// reconciles the users of an account that changed (a new Secret, a new
/// role: at once, not at their next resync), drops the key source of a
/// deleted account, and drives the accounts' own status (leader only).
fn watch_accounts(
    args: &RunArgs,
    client: &Client,
    ctx: &Arc<Context>,
    stores: &[Store<ClusterOrInvalid>],
    writer: reflector::store::Writer<CloudAccount>,
    watched: &mut Watched,
    leading: &Arc<AtomicBool>,
) -> BoxFuture<'static, ()> {
    let api: Api<CloudAccount> = Api::all(client.clone());
    let reader = writer.as_reader();
    let users = std::mem::take(&mut watched.account_users);
    let (fan_stores, accounts) = (stores.to_vec(), ctx.accounts.clone());
    let changes = watcher(api, watcher_config(args))
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| {
            let changed = match event {
                watcher::Event::Apply(a) | watcher::Event::InitApply(a) => a,
                watcher::Event::Delete(a) => {
                    accounts.forget(&a.name_any());
                    a
                }
                watcher::Event::Init | watcher::Event::InitDone => return,
            };
            let name = changed.name_any();
            for (store, tx) in fan_stores.iter().zip(&users) {
                for user in clusters_using_account(std::slice::from_ref(store), &name) {
                    let _ = tx.unbounded_send(user);
                }
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let (trigger, on_takeover) = futures::channel::mpsc::unbounded::<()>();
    watched.takeover.push(trigger);
    let actx = Arc::new(AccountContext {
        client: client.clone(),
        accounts: ctx.accounts.clone(),
        clusters: stores.to_vec(),
        leading: leading.clone(),
        clock: ctx.clock.clone(),
        scope: if args.namespaces.is_empty() {
            AccountScope::AllNamespaces
        } else {
            AccountScope::Namespaces
        },
    });
    let mut controller = Controller::for_stream(changes, reader).reconcile_all_on(on_takeover);
    if let Some(named) = watched.accounts_named.take() {
        controller = controller.reconcile_on(named);
    }
    controller
        .shutdown_on_signal()
        .run(
            account_status::reconcile,
            account_status::error_policy,
            actx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "CloudAccount reconcile error");
            }
        })
        .boxed()
}

/// Every controller until they stop (on a signal), and Ready once every
/// watch cache has its first list.
///
/// The readiness wait is polled in the same task as the controllers, never
/// in a task of its own: a store's readiness is a oneshot channel that keeps
/// only the waker of the last poll, so a waiter in another task either loses
/// the wake-up (and /readyz stays 503 for good) or steals it from the
/// controller's runner.
async fn until_stopped(
    runs: Vec<BoxFuture<'static, ()>>,
    stores: Vec<Store<ClusterOrInvalid>>,
    ready: Arc<AtomicBool>,
) {
    let readiness = async move {
        for s in stores {
            let _ = s.wait_until_ready().await;
        }
        ready.store(true, Ordering::SeqCst);
        info!("watch caches synced; ready");
    };
    let controllers = futures::future::join_all(runs);
    tokio::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => return,
        _ = readiness => {}
    }
    controllers.await;
}

/// Where this replica's leadership shows: the flag the reconciles read, the
/// `clusterscale_leader` gauge, and the watchdog.
struct LeaderState<'a> {
    flag: &'a AtomicBool,
    metrics: &'a Metrics,
    liveness: &'a Liveness,
}

impl LeaderState<'_> {
    fn set(&self, leading: bool) {
        self.flag.store(leading, Ordering::SeqCst);
        self.metrics.set_leader(leading);
        self.liveness
            .set_leading(leading, std::time::Instant::now());
    }
}

/// Follow until this replica holds the Lease, then lead: reconcile every
/// cached object, renew, and exit when the lease is lost.
async fn lead(
    args: &RunArgs,
    elector: LeaderElector,
    all: impl Future<Output = ()>,
    takeover: &[futures::channel::mpsc::UnboundedSender<()>],
    state: &LeaderState<'_>,
) -> Result<(), RunError> {
    let identity = elector.config().identity.clone();
    tokio::pin!(all);
    info!(identity = %identity, lease = %args.lease_name, "following: watching and Ready, waiting for the leader lease");
    tokio::select! {
        _ = &mut all => {
            info!("controller stopped before it led");
            return Ok(());
        }
        acquired = elector.acquire() => acquired.map_err(|e| RunError::Lease(e.to_string()))?,
    }
    state.set(true);
    info!(identity = %identity, lease = %args.lease_name, "became the leader; reconciling every ScaledCluster");
    for trigger in takeover {
        let _ = trigger.unbounded_send(());
    }
    let leadership = elector.spawn_renewal();
    tokio::select! {
        _ = &mut all => {
            leadership.release().await;
        }
        _ = leadership.lost() => {
            error!(identity = %identity, "lost the leader lease; exiting");
            state.set(false);
            return Err(RunError::LeaseLost);
        }
    }
    info!("controller stopped");
    Ok(())
}

/// Both watches' settings: kube's defaults with the server-side timeout from
/// `--watch-timeout-seconds`, which also sets the watcher's idle timeout (that
/// plus 5 s).
fn watcher_config(args: &RunArgs) -> watcher::Config {
    watcher::Config::default().timeout(args.watch_timeout_seconds.max(1))
}

/// Drop what the controller never reads before an object enters the cache:
/// managedFields and kubectl's last-applied copy are most of a small object's size.
fn strip_bookkeeping(obj: &mut ClusterOrInvalid) {
    let meta = kube::Resource::meta_mut(obj);
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Fail fast when the CRD is not installed. With `--namespace` the list is
/// made in the first watched namespace, so that an operator with only
/// namespaced Roles (the chart's `watchNamespaces`) needs no cluster-wide read.
async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), RunError> {
    let api: Api<ScaledCluster> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(RunError::CrdMissing),
        Err(e) => Err(RunError::CrdCheck(e)),
    }
}

async fn spawn_admin(
    args: &RunArgs,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    liveness: Liveness,
) -> Result<(), RunError> {
    let listen = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })
    };
    if args.metrics_addr == args.health_addr {
        let l = listen(args.metrics_addr).await?;
        spawn_server(
            l,
            admin::router(Some(metrics), Some(ready)).merge(liveness::router(liveness)),
        );
    } else {
        let m = listen(args.metrics_addr).await?;
        let h = listen(args.health_addr).await?;
        spawn_server(m, admin::router(Some(metrics), None));
        spawn_server(
            h,
            admin::router(None, Some(ready)).merge(liveness::router(liveness)),
        );
    }
    Ok(())
}

fn spawn_server(listener: tokio::net::TcpListener, router: axum::Router) {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            error!(error = %e, "admin server stopped");
        }
    });
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "clusterscale".into());
    format!("{host}-{}", std::process::id())
}
