//! New and changed resources, and operations in flight, before resyncs.
//!
//! A cloud account's request budget (Tencent: 20 per second per action)
//! bounds how many resources it can observe per resync period. Past that
//! ceiling the resyncs of converged resources would take the whole budget,
//! and the controller's queue, which releases due items in no fair order
//! once every worker is busy, lets some resources starve behind them: at
//! 10,000 resources on one account, resources never reconciled at all; at
//! 1,000 on a 20 s resync, operations whose polls never came
//! (docs/benchmarks.md).
//!
//! So the controller keeps, per account and from the watch streams like the
//! claims, the resources that come first:
//! - **waiting**: their current generation has not been reconciled yet
//!   (`status.observedGeneration` behind `metadata.generation`: new, or
//!   changed);
//! - **in flight**: an operation is pending; such a resource is *overdue*
//!   when its last pass began longer ago than twice the poll interval plus
//!   10 s.
//!
//! While an account has a waiting or an overdue resource, the pass of one of
//! its resources that would only resync (converged, Ready, nothing pending)
//! is deferred without a cloud call, for a few seconds at a time and for at
//! most [`DEFER_LIMIT`] in a row, so that drift is still found when the
//! backlog never drains (a resource whose status cannot be written). An
//! operation in flight, an error being retried or a new generation is never
//! deferred. An account that is not saturated defers nothing: its new
//! resources are reconciled at once and its polls are on time.
//!
//! And resyncs are admitted within the account's budget
//! ([`Provider::observations_per_second`]): one past it is given the next
//! free slot of the budget and deferred until then, instead of waiting in
//! the cloud client's rate limiter. Waiting there, resyncs would keep every
//! worker busy, and the queue's unfair order would resync some resources
//! every period and others never; with slots, the workers stay free and
//! resyncs run in the order they fell due. A fleet past its ceiling is
//! resynced less often than `--resync-seconds`, evenly, with a warning.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use kube::runtime::watcher::Event;
use kube::ResourceExt;

use super::index::{ClusterOrInvalid, Entries, WatchIndex};
use clusterscale_core::api::conditions::{self, READY};
use clusterscale_core::api::ScaledCluster;
use clusterscale_core::cloud::provider::ConnectOptions;
#[cfg(doc)]
use clusterscale_core::cloud::provider::Provider;

/// The longest a resync waits in a row for its account's backlog.
pub const DEFER_LIMIT: Duration = Duration::from_secs(15 * 60);
/// A deferred pass is tried again after this (or a quarter of the resync
/// period, if shorter), plus a spread of up to as much again: well before the
/// resources just resynced come back, so that admission favours those that
/// waited.
pub const RECHECK: Duration = Duration::from_secs(5);
/// At most one warning per account in this period.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The credentials Secret of a resource, as far as the watch streams tell
/// (they carry no Secret data). Two of them are one request budget when they
/// hold the same credentials, as passes learn ([`Backlog::learn`]): the cloud
/// throttles by key, not by Secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    pub namespace: String,
    /// The cloud's name (`tencent`, ...); empty when the spec names none.
    pub cloud: &'static str,
    /// The credentials Secret's name; empty when the cloud needs none.
    pub secret: String,
}

/// The account of `cluster`.
pub fn account(cluster: &ScaledCluster) -> Account {
    let spec = &cluster.spec;
    let (cloud, secret) = match crate::cloud::of(spec) {
        Some(p) => (
            p.kind().as_str(),
            p.secret_name(spec).unwrap_or_default().to_string(),
        ),
        None => ("", String::new()),
    };
    Account {
        namespace: cluster.namespace().unwrap_or_default(),
        cloud,
        secret,
    }
}

/// Whether `cluster`'s current generation waits for its first reconcile.
pub fn waits(cluster: &ScaledCluster) -> bool {
    let observed = cluster.status.as_ref().and_then(|s| s.observed_generation);
    observed != Some(cluster.metadata.generation.unwrap_or(0))
}

fn in_flight(cluster: &ScaledCluster) -> bool {
    cluster
        .status
        .as_ref()
        .is_some_and(|s| s.pending_operation.is_some())
}

/// Whether `cluster`'s pass would only resync: converged, Ready, nothing pending.
fn only_resyncs(cluster: &ScaledCluster) -> bool {
    let Some(status) = &cluster.status else {
        return false;
    };
    cluster.metadata.deletion_timestamp.is_none()
        && !waits(cluster)
        && !in_flight(cluster)
        && conditions::find(&status.conditions, READY).is_some_and(|c| c.status == "True")
}

/// Why a resource comes before resyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Urgency {
    Waiting,
    InFlight,
}

/// The resources that come first, per account.
#[derive(Default, Debug)]
pub struct Priority {
    by_uid: HashMap<String, (Account, Urgency)>,
    waiting: HashMap<Account, usize>,
    waiting_total: usize,
    in_flight: HashMap<Account, HashSet<String>>,
}

impl Entries for Priority {
    fn insert(&mut self, uid: &str, cluster: &ScaledCluster) -> bool {
        let kind = if waits(cluster) {
            Urgency::Waiting
        } else if in_flight(cluster) {
            Urgency::InFlight
        } else {
            return false;
        };
        let account = account(cluster);
        match kind {
            Urgency::Waiting => {
                *self.waiting.entry(account.clone()).or_default() += 1;
                self.waiting_total += 1;
            }
            Urgency::InFlight => {
                self.in_flight
                    .entry(account.clone())
                    .or_default()
                    .insert(uid.to_string());
            }
        }
        self.by_uid.insert(uid.to_string(), (account, kind));
        true
    }

    fn remove(&mut self, uid: &str) {
        let Some((account, kind)) = self.by_uid.remove(uid) else {
            return;
        };
        match kind {
            Urgency::Waiting => {
                self.waiting_total -= 1;
                if let Some(n) = self.waiting.get_mut(&account) {
                    *n -= 1;
                    if *n == 0 {
                        self.waiting.remove(&account);
                    }
                }
            }
            Urgency::InFlight => {
                if let Some(set) = self.in_flight.get_mut(&account) {
                    set.remove(uid);
                    if set.is_empty() {
                        self.in_flight.remove(&account);
                    }
                }
            }
        }
    }
}

impl Priority {
    /// Resources of `account` that wait, other than `uid`.
    fn waiting_others(&self, account: &Account, uid: &str) -> usize {
        let n = self.waiting.get(account).copied().unwrap_or(0);
        let me = self
            .by_uid
            .get(uid)
            .is_some_and(|(a, k)| a == account && *k == Urgency::Waiting);
        n - usize::from(me)
    }
}

/// DeferReason a resync waits.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum DeferReason {
    /// `waiting` resources of the account wait for their first reconcile
    /// and `overdue` operations for their poll.
    Backlog { waiting: usize, overdue: usize },
    /// The account's resyncs already use its `per_second` observations.
    Budget { per_second: u32 },
}

impl DeferReason {
    /// The `outcome` label of the deferred pass in `clusterscale_reconciles_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DeferReason::Backlog { .. } => "deferred_backlog",
            DeferReason::Budget { .. } => "deferred_budget",
        }
    }
}

/// Whether a pass runs now or waits.
#[derive(Debug, PartialEq, Eq)]
pub enum PassAdmission {
    /// Run it now.
    Run,
    /// Try again after `after`. `warn`: the first deferral on this account
    /// in a while.
    Defer {
        after: Duration,
        reason: DeferReason,
        warn: bool,
    },
}

#[derive(Default, Debug)]
struct Deferrals {
    /// uid -> when its last pass began (in this process).
    served: HashMap<String, Instant>,
    /// uid -> when its resync was first deferred, while it is.
    since: HashMap<String, Instant>,
    /// budget -> when a deferral on it was last logged.
    warned: HashMap<String, Instant>,
    /// budget -> the first free slot of its resyncs.
    next_slot: HashMap<String, Instant>,
    /// uid -> the slot a deferred resync holds.
    reserved: HashMap<String, Instant>,
}

impl Deferrals {
    /// The slot of a resync of `uid` on `account`, whose cloud allows
    /// `per_second` observations: `None` to run now, else when to come back.
    /// Slots are handed out in the order resyncs ask, one per 1/`per_second`
    /// (a virtual-time queue, as GCRA's): first come, first served, and no
    /// share of the budget wasted.
    fn slot(&mut self, budget: &str, uid: &str, per_second: u32, now: Instant) -> Option<Instant> {
        if let Some(at) = self.reserved.get(uid).copied() {
            if at <= now + SLOT_EARLY {
                self.reserved.remove(uid);
                return None;
            }
            return Some(at);
        }
        let interval = Duration::from_secs(1) / per_second.max(1);
        let next = self.next_slot.entry(budget.to_string()).or_insert(now);
        if *next <= now {
            *next = now + interval;
            return None;
        }
        let at = *next;
        *next += interval;
        self.reserved.insert(uid.to_string(), at);
        Some(at)
    }
}

/// Which Secrets hold the same credentials, as the passes that read them
/// tell ([`Backlog::learn`]).
#[derive(Default, Debug)]
struct Identities {
    /// Secret -> the identity of its credentials (a hash of the cloud's
    /// account id: Tencent's SecretId, Huawei's AK).
    of: HashMap<Account, String>,
    /// identity -> the Secrets that hold it.
    holders: HashMap<String, HashSet<Account>>,
}

impl Identities {
    fn learn(&mut self, account: Account, identity: Option<String>) {
        if self.of.get(&account) == identity.as_ref() {
            return;
        }
        if let Some(old) = self.of.remove(&account) {
            if let Some(set) = self.holders.get_mut(&old) {
                set.remove(&account);
                if set.is_empty() {
                    self.holders.remove(&old);
                }
            }
        }
        if let Some(id) = identity {
            self.holders
                .entry(id.clone())
                .or_default()
                .insert(account.clone());
            self.of.insert(account, id);
        }
    }

    /// The Secrets that hold `account`'s credentials, itself included.
    fn peers(&self, account: &Account) -> Vec<Account> {
        match self.of.get(account).and_then(|id| self.holders.get(id)) {
            Some(set) => set.iter().cloned().collect(),
            None => vec![account.clone()],
        }
    }

    /// The key of `account`'s request budget: its credentials' identity
    /// once known, else the Secret.
    fn budget(&self, account: &Account) -> String {
        match self.of.get(account) {
            Some(id) => id.clone(),
            None => format!(
                "secret {}/{} ({})",
                account.namespace, account.secret, account.cloud
            ),
        }
    }
}

/// A pass that comes back this much before its slot is served (timers fire late, not early).
const SLOT_EARLY: Duration = Duration::from_millis(5);

/// The backlog and the resyncs it holds back.
#[derive(Debug)]
pub struct Backlog {
    priority: WatchIndex<Priority>,
    deferrals: Mutex<Deferrals>,
    identities: Mutex<Identities>,
    /// An operation whose last pass began longer ago than this is overdue.
    overdue_after: Duration,
    /// What the clients are built with (the budgets depend on it).
    options: ConnectOptions,
    /// How long a deferred pass waits, before its spread.
    recheck: Duration,
}

impl Default for Backlog {
    fn default() -> Self {
        let engine = clusterscale_engine::EngineConfig::default();
        Self::new(engine.poll, engine.resync, ConnectOptions::default())
    }
}

impl Backlog {
    /// `poll`: the interval between polls of an operation in flight;
    /// `resync`: between resyncs; `options`: those of the cloud clients
    /// (rate limits).
    pub fn new(poll: Duration, resync: Duration, options: ConnectOptions) -> Self {
        Self {
            priority: WatchIndex::new(),
            deferrals: Mutex::default(),
            identities: Mutex::default(),
            overdue_after: poll * 2 + Duration::from_secs(10),
            options,
            recheck: RECHECK.min(resync / 4).max(Duration::from_millis(100)),
        }
    }

    /// Feed one event of watch stream `source`, in stream order.
    pub fn observe(&self, source: usize, event: &Event<ClusterOrInvalid>) {
        self.priority.observe(source, event);
        if let Event::Delete(obj) = event {
            if let Some(uid) = obj.uid() {
                self.forget(&uid);
            }
        }
    }

    /// Record whose credentials `cluster`'s Secret holds: `account_id` is the
    /// cloud's account id of them (`Provider::account_id`), kept only as a
    /// hash. Secrets with the same credentials then share one backlog and one
    /// budget, in any namespace.
    pub fn learn(&self, cluster: &ScaledCluster, account_id: Option<&str>) {
        let account = account(cluster);
        let identity = account_id.map(|id| {
            let digest = Sha256::digest(format!("{}\0{}", account.cloud, id.trim()));
            format!("{} account {}", account.cloud, hex::encode(&digest[..8]))
        });
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn(account, identity);
    }

    /// Resources waiting for the first reconcile of their generation.
    pub fn waiting(&self) -> usize {
        self.priority.with(|p| p.waiting_total)
    }

    /// Whether to run `cluster`'s pass now.
    pub fn decide(&self, cluster: &ScaledCluster, now: Instant) -> PassAdmission {
        let uid = cluster.metadata.uid.clone().unwrap_or_default();
        let account = account(cluster);
        let (peers, budget_key) = {
            let ids = self.identities.lock().unwrap_or_else(|p| p.into_inner());
            (ids.peers(&account), ids.budget(&account))
        };
        let resync = only_resyncs(cluster);
        let (waiting, in_flight) = if resync {
            self.priority.with(|p| {
                let waiting = peers.iter().map(|a| p.waiting_others(a, &uid)).sum();
                // Only needed when nothing waits; usually a handful.
                let in_flight: Vec<String> = match waiting {
                    0 => peers
                        .iter()
                        .filter_map(|a| p.in_flight.get(a))
                        .flatten()
                        .cloned()
                        .collect(),
                    _ => Vec::new(),
                };
                (waiting, in_flight)
            })
        } else {
            (0, Vec::new())
        };
        let mut d = self.deferrals.lock().unwrap_or_else(|p| p.into_inner());
        let overdue = in_flight
            .iter()
            .filter(|u| {
                d.served
                    .get(*u)
                    .is_none_or(|t| now.saturating_duration_since(*t) > self.overdue_after)
            })
            .count();
        let serve = |d: &mut Deferrals| {
            d.since.remove(&uid);
            d.reserved.remove(&uid);
            d.served.insert(uid.clone(), now);
            PassAdmission::Run
        };
        let (reason, after) = if waiting > 0 || overdue > 0 {
            let since = *d.since.entry(uid.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= DEFER_LIMIT {
                return serve(&mut d);
            }
            (
                DeferReason::Backlog { waiting, overdue },
                self.recheck + spread(&uid, self.recheck),
            )
        } else {
            // A streak of deferrals for the backlog, if any, has ended.
            d.since.remove(&uid);
            let budget = crate::cloud::of(&cluster.spec)
                .and_then(|p| p.observations_per_second(&self.options));
            match budget {
                Some(per_second) if resync => match d.slot(&budget_key, &uid, per_second, now) {
                    Some(at) => (DeferReason::Budget { per_second }, at - now),
                    None => return serve(&mut d),
                },
                _ => return serve(&mut d),
            }
        };
        let warn = d
            .warned
            .get(&budget_key)
            .is_none_or(|t| now.saturating_duration_since(*t) >= WARN_EVERY);
        if warn {
            d.warned.insert(budget_key, now);
        }
        PassAdmission::Defer {
            after,
            reason,
            warn,
        }
    }

    /// Drop what is held for a deleted resource.
    pub fn forget(&self, uid: &str) {
        let mut d = self.deferrals.lock().unwrap_or_else(|p| p.into_inner());
        d.since.remove(uid);
        d.served.remove(uid);
        d.reserved.remove(uid);
    }
}

/// A stable per-resource share of `max`, so that deferred passes do not
/// come back all at once.
fn spread(uid: &str, max: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    let max = max.as_millis() as u64;
    Duration::from_millis(h.finish() % max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::DeserializeGuard;

    /// A simulated cluster `uid` in `ns` at `generation`, with its status
    /// observed at `observed` (no status when `None`) and Ready as given.
    fn cluster(
        ns: &str,
        uid: &str,
        generation: i64,
        observed: Option<i64>,
        ready: bool,
    ) -> ScaledCluster {
        let status = observed.map(|g| {
            serde_json::json!({
                "observedGeneration": g,
                "conditions": [{
                    "type": "Ready", "status": if ready { "True" } else { "False" },
                    "reason": "r", "message": "", "lastTransitionTime": "2026-12-03T00:00:00Z"
                }]
            })
        });
        serde_json::from_value(serde_json::json!({
            "apiVersion": "clusterscale.io/v1alpha1",
            "kind": "ScaledCluster",
            "metadata": {"name": uid, "namespace": ns, "uid": uid, "generation": generation},
            "spec": {"simulated": {}, "core": {"count": 3}},
            "status": status,
        }))
        .expect("fixture")
    }

    /// The same on Tencent, with credentials Secret `secret`.
    fn tencent(
        ns: &str,
        uid: &str,
        secret: &str,
        observed: Option<i64>,
        ready: bool,
    ) -> ScaledCluster {
        let mut c = cluster(ns, uid, 1, observed, ready);
        c.spec.simulated = None;
        c.spec.tencent = Some(
            serde_json::from_value(serde_json::json!({
                "region": "ap-guangzhou", "instanceId": uid, "payMode": 0,
                "credentialsSecretRef": {"name": secret}
            }))
            .expect("tencent fixture"),
        );
        c
    }

    /// `c` with an operation pending.
    fn scaling(mut c: ScaledCluster) -> ScaledCluster {
        c.status.as_mut().expect("a status").pending_operation = Some(
            serde_json::from_value(serde_json::json!({
                "id": "t", "group": "task", "direction": "out", "count": 1,
                "fromCount": 0, "toCount": 1, "startedAt": "2026-12-03T00:00:00Z"
            }))
            .expect("operation fixture"),
        );
        c
    }

    /// A backlog with a 10 s poll, a 300 s resync and `options`.
    fn backlog(options: ConnectOptions) -> Backlog {
        Backlog::new(Duration::from_secs(10), Duration::from_secs(300), options)
    }

    fn apply(b: &Backlog, c: &ScaledCluster) {
        b.observe(0, &Event::Apply(DeserializeGuard(Ok(c.clone()))));
    }

    /// The waiting count of a deferral for the backlog.
    fn deferred(d: PassAdmission) -> Option<usize> {
        match d {
            PassAdmission::Defer {
                reason: DeferReason::Backlog { waiting, .. },
                after,
                ..
            } => {
                assert!(after >= RECHECK && after < RECHECK * 2, "{after:?}");
                Some(waiting)
            }
            PassAdmission::Defer { reason, .. } => panic!("deferred for {reason:?}"),
            PassAdmission::Run => None,
        }
    }

    #[test]
    fn a_resync_waits_while_its_account_has_new_or_changed_resources() {
        let b = backlog(ConnectOptions::default());
        let converged = cluster("a", "c1", 1, Some(1), true);
        let new = cluster("a", "n1", 1, None, false);
        let changed = cluster("a", "n2", 3, Some(2), true);
        let elsewhere = cluster("b", "c2", 1, Some(1), true);
        for c in [&converged, &new, &changed, &elsewhere] {
            apply(&b, c);
        }
        assert_eq!(b.waiting(), 2);
        let now = Instant::now();
        assert_eq!(deferred(b.decide(&converged, now)), Some(2));
        // The waiting ones, and another account's resyncs, run.
        assert_eq!(b.decide(&new, now), PassAdmission::Run);
        assert_eq!(b.decide(&changed, now), PassAdmission::Run);
        assert_eq!(b.decide(&elsewhere, now), PassAdmission::Run);

        // Their status catches up: the backlog drains and the resync runs.
        apply(&b, &cluster("a", "n1", 1, Some(1), true));
        assert_eq!(deferred(b.decide(&converged, now)), Some(1));
        b.observe(0, &Event::Delete(DeserializeGuard(Ok(changed.clone()))));
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.decide(&converged, now), PassAdmission::Run);
    }

    #[test]
    fn only_a_pure_resync_is_deferred() {
        let b = backlog(ConnectOptions::default());
        apply(&b, &cluster("a", "new", 1, None, false));
        let now = Instant::now();
        // Not Ready (an error, a precondition): retried on its own schedule.
        assert_eq!(
            b.decide(&cluster("a", "x", 1, Some(1), false), now),
            PassAdmission::Run
        );
        // An operation pending: its poll is never held back.
        let pending = scaling(cluster("a", "y", 1, Some(1), true));
        assert_eq!(b.decide(&pending, now), PassAdmission::Run);
        // Being deleted.
        let mut deleting = cluster("a", "z", 1, Some(1), true);
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(b.decide(&deleting, now), PassAdmission::Run);
    }

    #[test]
    fn an_overdue_operation_holds_resyncs_back_and_an_on_time_one_does_not() {
        let poll = Duration::from_secs(1);
        let b = Backlog::new(poll, Duration::from_secs(300), ConnectOptions::default());
        let converged = cluster("a", "c", 1, Some(1), true);
        let scaling = scaling(cluster("a", "s", 1, Some(1), false));
        apply(&b, &converged);
        apply(&b, &scaling);
        assert_eq!(b.waiting(), 0, "an operation in flight is not waiting");
        let t0 = Instant::now();
        // Not polled yet in this process: overdue.
        assert!(matches!(
            b.decide(&converged, t0),
            PassAdmission::Defer {
                reason: DeferReason::Backlog { overdue: 1, .. },
                ..
            }
        ));
        // Its poll runs; while it keeps its schedule, resyncs run.
        assert_eq!(b.decide(&scaling, t0), PassAdmission::Run);
        let on_time = t0 + poll * 2 + Duration::from_secs(10);
        assert_eq!(b.decide(&converged, on_time), PassAdmission::Run);
        // Its poll is late (the workers are busy with resyncs): they wait.
        let late = on_time + Duration::from_millis(1);
        assert!(matches!(
            b.decide(&converged, late),
            PassAdmission::Defer {
                reason: DeferReason::Backlog {
                    overdue: 1,
                    waiting: 0
                },
                ..
            }
        ));
        // The operation ended: nothing to wait for.
        apply(&b, &cluster("a", "s", 1, Some(1), true));
        assert_eq!(b.decide(&converged, late), PassAdmission::Run);
    }

    #[test]
    fn accounts_are_told_apart_by_secret_and_namespace() {
        let with_secret =
            |ns: &str, uid: &str, secret: &str, observed| tencent(ns, uid, secret, observed, true);
        let b = backlog(ConnectOptions::default());
        apply(&b, &with_secret("a", "w", "one", None));
        let now = Instant::now();
        assert!(deferred(b.decide(&with_secret("a", "c1", "one", Some(1)), now)).is_some());
        assert_eq!(
            b.decide(&with_secret("a", "c2", "two", Some(1)), now),
            PassAdmission::Run
        );
        assert_eq!(
            b.decide(&with_secret("b", "c3", "one", Some(1)), now),
            PassAdmission::Run
        );
    }

    /// Two Secrets with the same keys, in two namespaces, are one account once
    /// a pass has read them: one backlog and one budget (the cloud throttles
    /// by key). Different keys stay apart.
    #[test]
    fn secrets_with_the_same_keys_are_one_account() {
        let with_secret =
            |ns: &str, uid: &str, secret: &str, observed| tencent(ns, uid, secret, observed, true);
        let options = ConnectOptions::default().with_knobs(
            clusterscale_core::api::CloudKind::Tencent,
            clusterscale_tencent::TencentKnobs { rate_limit: 1 },
        );
        let b = backlog(options);
        let (a1, b1, c1) = (
            with_secret("a", "a1", "creds", Some(1)),
            with_secret("b", "b1", "copy", Some(1)),
            with_secret("c", "c1", "other", Some(1)),
        );
        b.learn(&a1, Some("AKIDsame"));
        b.learn(&b1, Some(" AKIDsame "));
        b.learn(&c1, Some("AKIDother"));
        let now = Instant::now();
        // Budget: one resync a second for the shared key, across namespaces.
        assert_eq!(b.decide(&a1, now), PassAdmission::Run);
        assert!(matches!(
            b.decide(&b1, now),
            PassAdmission::Defer {
                reason: DeferReason::Budget { per_second: 1 },
                ..
            }
        ));
        assert_eq!(b.decide(&c1, now), PassAdmission::Run, "another key");
        // Backlog: a new resource on the copy holds back the original's resyncs.
        apply(&b, &with_secret("b", "new", "copy", None));
        let later = now + Duration::from_secs(10);
        assert!(deferred(b.decide(&a1, later)).is_some());
        assert_eq!(b.decide(&c1, later), PassAdmission::Run);
        // Keys rotated apart: two accounts again.
        b.learn(&b1, Some("AKIDrotated"));
        let much_later = now + Duration::from_secs(20);
        b.observe(
            0,
            &Event::Delete(DeserializeGuard(Ok(with_secret("b", "new", "copy", None)))),
        );
        assert_eq!(b.decide(&a1, much_later), PassAdmission::Run);
        assert_eq!(b.decide(&b1, much_later), PassAdmission::Run);
    }

    #[test]
    fn resyncs_are_admitted_within_the_accounts_budget() {
        let tencent = |ns: &str, uid: &str, ready: bool| tencent(ns, uid, "creds", Some(1), ready);
        let options = ConnectOptions::default().with_knobs(
            clusterscale_core::api::CloudKind::Tencent,
            clusterscale_tencent::TencentKnobs { rate_limit: 20 },
        );
        let b = backlog(options);
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let slot = |d: PassAdmission| match d {
            PassAdmission::Defer {
                reason: DeferReason::Budget { per_second: 20 },
                after,
                ..
            } => after,
            d => panic!("not deferred for the budget: {d:?}"),
        };
        assert_eq!(b.decide(&tencent("a", "c1", true), t0), PassAdmission::Run);
        // Past 20/s the next resyncs get the next slots, 50 ms apart, in the
        // order they asked, and are not sent to the client's limiter.
        assert_eq!(slot(b.decide(&tencent("a", "c2", true), t0)), ms(50));
        assert_eq!(slot(b.decide(&tencent("a", "c3", true), t0)), ms(100));
        // Asking again before its slot changes nothing.
        assert_eq!(
            slot(b.decide(&tencent("a", "c2", true), t0 + ms(20))),
            ms(30)
        );
        // Another account has its own budget; a pass that is not a resync has none.
        assert_eq!(b.decide(&tencent("b", "c4", true), t0), PassAdmission::Run);
        assert_eq!(b.decide(&tencent("a", "e1", false), t0), PassAdmission::Run);
        // The simulated cloud has no limit.
        let sim = cluster("a", "s1", 1, Some(1), true);
        assert_eq!(b.decide(&sim, t0), PassAdmission::Run);
        assert_eq!(b.decide(&sim, t0), PassAdmission::Run);
        // At its slot each runs; a newcomer queues behind them.
        assert_eq!(
            b.decide(&tencent("a", "c2", true), t0 + ms(50)),
            PassAdmission::Run
        );
        assert_eq!(
            slot(b.decide(&tencent("a", "c5", true), t0 + ms(60))),
            ms(90)
        );
        assert_eq!(
            b.decide(&tencent("a", "c3", true), t0 + ms(101)),
            PassAdmission::Run
        );
        // Once the queue is empty and a slot has passed, a resync runs at once.
        assert_eq!(
            b.decide(&tencent("a", "c5", true), t0 + ms(150)),
            PassAdmission::Run
        );
        assert_eq!(
            b.decide(&tencent("a", "c1", true), t0 + ms(400)),
            PassAdmission::Run
        );
    }

    #[test]
    fn a_resync_waits_at_most_the_limit_then_runs_once() {
        let b = backlog(ConnectOptions::default());
        apply(&b, &cluster("a", "stuck", 1, None, false));
        let converged = cluster("a", "c", 1, Some(1), true);
        let t0 = Instant::now();
        match b.decide(&converged, t0) {
            PassAdmission::Defer { warn, .. } => assert!(warn, "the first deferral warns"),
            PassAdmission::Run => panic!("not deferred"),
        }
        match b.decide(&converged, t0 + Duration::from_secs(30)) {
            PassAdmission::Defer { warn, .. } => assert!(!warn, "one warning a minute"),
            PassAdmission::Run => panic!("not deferred"),
        }
        assert_eq!(b.decide(&converged, t0 + DEFER_LIMIT), PassAdmission::Run);
        // Served: the next deferral starts a new limit.
        let t1 = t0 + DEFER_LIMIT + Duration::from_secs(1);
        assert!(deferred(b.decide(&converged, t1)).is_some());
        assert!(deferred(b.decide(&converged, t1 + DEFER_LIMIT / 2)).is_some());
    }

    #[test]
    fn a_relist_drops_what_vanished() {
        let b = backlog(ConnectOptions::default());
        apply(&b, &cluster("a", "gone", 1, None, false));
        let kept = cluster("a", "kept", 1, None, false);
        apply(&b, &kept);
        b.observe(0, &Event::Init);
        b.observe(0, &Event::InitApply(DeserializeGuard(Ok(kept))));
        b.observe(0, &Event::InitDone);
        assert_eq!(b.waiting(), 1);
    }
}
