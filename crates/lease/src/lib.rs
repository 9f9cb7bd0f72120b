//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only one replica of the controller may call the clouds at a time: two
//! leaders would plan and submit the same scale operation twice. The replica
//! whose identity is in the Lease's `holderIdentity`, and that renewed it
//! (`renewTime`) less than `leaseDurationSeconds` ago, is the leader.
//!
//! The protocol follows client-go's `leaderelection` package:
//!
//! * [`LeaderElector::acquire`] reads the Lease every `retry_period` (with a
//!   little jitter) and writes itself in as holder when the Lease is absent
//!   (create), free (no holder), expired (`renewTime + leaseDurationSeconds <
//!   now`) or already ours. Every write is a create or a replace carrying the
//!   `resourceVersion` that was read, so when two replicas race, the API server
//!   accepts one write and answers 409 Conflict to the other.
//! * [`LeaderElector::spawn_renewal`] renews every `retry_period`. Leadership
//!   is lost as soon as another holder shows up in the Lease, or when no
//!   renewal has succeeded for `renew_deadline` (which is shorter than
//!   `lease_duration`, so a replica stops acting as leader before anybody else
//!   may take over). Loss is final: the process should stop its controller and
//!   exit, and let Kubernetes restart it as a follower.
//! * [`LeaderElector::release`] clears `holderIdentity` on graceful shutdown,
//!   so that another replica takes over at once instead of waiting for expiry.
//!
//! Expiry is judged from `renewTime`, which the holder writes with its own
//! clock, so the replicas' clocks must agree to well within
//! `lease_duration - renew_deadline` (NTP-synced nodes do).
//!
//! The decision itself ([`lease_state`], [`next_lease`]) is pure and does no
//! I/O, so it is unit-tested without a server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use rand::Rng;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tracing::{debug, error, info, warn};

/// Field manager recorded on the Lease writes.
pub const FIELD_MANAGER: &str = "clusterscale-leader-election";

/// Default `leaseDurationSeconds`: how long a holder's claim is valid after
/// its last renewal (client-go's default).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default time the holder keeps trying to renew before it gives up
/// leadership (client-go's default).
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Default interval between two attempts to acquire or renew.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Where the Lease lives, who we are, and the timings of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease (usually the controller's own namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, unique among the replicas (the pod name).
    pub identity: String,
    /// How long a claim is valid after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the leader keeps failing to renew before it steps down.
    /// Must be shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire or renew. Must be shorter than
    /// `renew_deadline`.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with the default timings (15 s / 10 s / 2 s).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks the same invariants as client-go: non-empty names,
    /// `lease_duration > renew_deadline > retry_period * 1.2`, and a lease
    /// duration of at least one second (the Lease stores whole seconds).
    pub fn validate(&self) -> Result<(), LeaseError> {
        let invalid = |m: String| Err(LeaseError::InvalidConfig(m));
        if self.namespace.is_empty() || self.name.is_empty() {
            return invalid("the Lease namespace and name must not be empty".into());
        }
        if self.identity.is_empty() {
            return invalid("the leader election identity must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return invalid(format!(
                "lease duration {:?} is shorter than one second",
                self.lease_duration
            ));
        }
        if self.lease_duration_seconds().is_none() {
            return invalid(format!(
                "lease duration {:?} is too long",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid(format!(
                "renew deadline {:?} must be shorter than the lease duration {:?}",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period.mul_f64(1.2) >= self.renew_deadline {
            return invalid(format!(
                "retry period {:?} must be positive and shorter than the renew deadline {:?} / 1.2",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// `lease_duration` in whole seconds, rounded up, as the Lease stores it.
    fn lease_duration_seconds(&self) -> Option<i32> {
        let d = self.lease_duration;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        i32::try_from(secs).ok()
    }
}

/// Why leader election could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The [`LeaseConfig`] breaks an invariant; fix the flags.
    #[error("invalid leader election settings: {0}")]
    InvalidConfig(String),
    /// The API server refused or failed a request (RBAC, network, ...).
    #[error("Lease request failed: {0}")]
    Kube(#[from] kube::Error),
    /// A request did not complete in time.
    #[error("Lease request timed out after {0:?}")]
    Timeout(Duration),
}

/// What a Lease says about who leads, as seen by `identity` at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// No Lease object exists yet.
    Absent,
    /// The Lease has no holder (it was released, or never held).
    Free,
    /// We are the holder (possibly expired: we may renew it all the same).
    HeldByUs,
    /// Another replica holds it and its claim is still valid.
    HeldByOther {
        holder: String,
        /// When the claim runs out unless renewed; `None` if it never does
        /// (an unrepresentable time).
        expires_at: Option<Timestamp>,
    },
    /// Another replica held it but did not renew in time.
    Expired { holder: String },
}

impl LeaseState {
    /// True when `identity` may write itself in as holder now.
    pub fn can_acquire(&self) -> bool {
        !matches!(self, LeaseState::HeldByOther { .. })
    }
}

/// When the current claim runs out: last renewal (or acquisition, for a Lease
/// that was never renewed) plus `leaseDurationSeconds` (or `default_duration`
/// when the Lease has no positive duration). `None` when the Lease has no
/// renewal time at all, which makes it expired; `Some(Timestamp::MAX)` when
/// the sum overflows.
pub fn expires_at(spec: &LeaseSpec, default_duration: Duration) -> Option<Timestamp> {
    let MicroTime(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let duration = match spec.lease_duration_seconds {
        Some(s) if s > 0 => SignedDuration::from_secs(i64::from(s)),
        _ => SignedDuration::try_from(default_duration).unwrap_or(SignedDuration::MAX),
    };
    Some(renewed.checked_add(duration).unwrap_or(Timestamp::MAX))
}

/// Classifies `lease` for `identity` at `now`. Pure: no I/O.
///
/// A holder's claim is expired when `renewTime + leaseDurationSeconds < now`.
pub fn lease_state(
    lease: Option<&Lease>,
    identity: &str,
    default_duration: Duration,
    now: Timestamp,
) -> LeaseState {
    let Some(lease) = lease else {
        return LeaseState::Absent;
    };
    let empty = LeaseSpec::default();
    let spec = lease.spec.as_ref().unwrap_or(&empty);
    let holder = match spec.holder_identity.as_deref() {
        None | Some("") => return LeaseState::Free,
        Some(h) => h,
    };
    if holder == identity {
        return LeaseState::HeldByUs;
    }
    match expires_at(spec, default_duration) {
        Some(at) if at >= now => LeaseState::HeldByOther {
            holder: holder.to_string(),
            expires_at: (at != Timestamp::MAX).then_some(at),
        },
        _ => LeaseState::Expired {
            holder: holder.to_string(),
        },
    }
}

/// The Lease to write so that `cfg.identity` holds it from `now`, or `None`
/// when another replica validly holds it. Pure: no I/O.
///
/// * absent: a new Lease, `leaseTransitions` 0;
/// * ours: the same Lease with `renewTime` = now (acquire time and
///   transitions kept);
/// * free or expired: us as holder, `acquireTime` = `renewTime` = now, and
///   `leaseTransitions` + 1 when the holder changes.
///
/// The returned object keeps the metadata (and so the `resourceVersion`) of
/// `current`, which makes the replace conditional on nobody having written
/// since it was read.
pub fn next_lease(current: Option<&Lease>, cfg: &LeaseConfig, now: Timestamp) -> Option<Lease> {
    let state = lease_state(current, &cfg.identity, cfg.lease_duration, now);
    let duration = cfg.lease_duration_seconds();
    match (state, current) {
        (LeaseState::HeldByOther { .. }, _) => None,
        (LeaseState::Absent, _) | (_, None) => Some(Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: duration,
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }),
        (LeaseState::HeldByUs, Some(lease)) => {
            let mut next = lease.clone();
            let spec = next.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = duration;
            if spec.acquire_time.is_none() {
                spec.acquire_time = Some(MicroTime(now));
            }
            Some(next)
        }
        (LeaseState::Free | LeaseState::Expired { .. }, Some(lease)) => {
            let mut next = lease.clone();
            let spec = next.spec.get_or_insert_with(LeaseSpec::default);
            // The holder changes (from nobody or from an expired holder).
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.holder_identity = Some(cfg.identity.clone());
            spec.lease_duration_seconds = duration;
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            Some(next)
        }
    }
}

/// The Lease as left by a graceful release: no holder, and a one-second
/// duration so that electors that ignore an empty holder (older client-go)
/// also take over at once. `None` when `identity` does not hold `current`,
/// in which case there is nothing of ours to release. Pure: no I/O.
pub fn released_lease(current: &Lease, identity: &str, now: Timestamp) -> Option<Lease> {
    let spec = current.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let mut next = current.clone();
    let spec = next.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    Some(next)
}

/// Outcome of one attempt to acquire or renew.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Another replica validly holds it.
    HeldBy(String),
    /// Somebody wrote the Lease between our read and our write (409).
    Conflict,
}

/// Runs leader election for one identity on one Lease.
///
/// Cheap to clone; clones share the record of the last successful renewal.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: Arc<LeaseConfig>,
    /// When the last successful acquire or renew was sent.
    last_renewed: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for `cfg.namespace/cfg.name`. Does no I/O; the settings
    /// are checked by [`acquire`](Self::acquire).
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg: Arc::new(cfg),
            last_renewed: Arc::new(Mutex::new(None)),
        }
    }

    /// The settings this elector runs with.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// The fence in front of this replica's cloud writes ([`LeaseFence`]).
    pub fn fence(&self) -> LeaseFence {
        LeaseFence {
            last_renewed: self.last_renewed.clone(),
            cfg: self.cfg.clone(),
        }
    }

    /// Waits until this identity holds the Lease.
    ///
    /// Retries every `retry_period` (plus up to 20% jitter) for as long as it
    /// takes, logging API errors (missing RBAC shows up here as 403) without
    /// giving up. Cancel it by dropping the future (e.g. in a `select!` with
    /// the shutdown signal). Fails only on invalid settings.
    pub async fn acquire(&self) -> Result<(), LeaseError> {
        self.cfg.validate()?;
        let (ns, name, me) = (&self.cfg.namespace, &self.cfg.name, &self.cfg.identity);
        info!(lease.namespace = %ns, lease.name = %name, identity = %me, "waiting for leadership");
        let mut last_holder: Option<String> = None;
        loop {
            match self.attempt(self.cfg.renew_deadline).await {
                Ok(Attempt::Held) => {
                    info!(lease.namespace = %ns, lease.name = %name, identity = %me, "acquired leadership");
                    return Ok(());
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_deref() != Some(holder.as_str()) {
                        info!(lease.namespace = %ns, lease.name = %name, %holder, "another replica leads; waiting");
                        last_holder = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {
                    debug!(lease.namespace = %ns, lease.name = %name, "lost a race for the Lease; retrying");
                }
                Err(e) => {
                    warn!(lease.namespace = %ns, lease.name = %name, error = %e, "could not acquire the Lease; retrying");
                }
            }
            sleep(jittered(self.cfg.retry_period)).await;
        }
    }

    /// Starts renewing in a background task and returns the handle that
    /// reports whether we still lead.
    ///
    /// Call it right after [`acquire`](Self::acquire) succeeded; on an
    /// elector that does not hold the Lease, the returned handle is already
    /// lost. The task renews every `retry_period` and flips the flag to
    /// `false`, for good, when another holder appears in the Lease or no
    /// renewal succeeded for `renew_deadline`. It also stops (flag `false`)
    /// when the [`Leadership`] handle is dropped.
    pub fn spawn_renewal(self) -> Leadership {
        let held = self.last_renewed().is_some();
        let (tx, rx) = watch::channel(held);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(self.clone().renew_loop(tx, stop_rx));
        Leadership {
            elector: self,
            rx,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Gives up the Lease on graceful shutdown: clears `holderIdentity` if
    /// (and only if) we still hold it, with the usual `resourceVersion`
    /// check so that a new leader's claim is never overwritten.
    ///
    /// Best effort: failures are logged, and the Lease then simply expires.
    /// Stop renewal first ([`Leadership::release`] does both), or the
    /// renewal task would take the freed Lease again.
    pub async fn release(&self) {
        self.set_last_renewed(None);
        let (ns, name) = (&self.cfg.namespace, &self.cfg.name);
        match timeout(self.cfg.renew_deadline, self.try_release()).await {
            Ok(Ok(true)) => info!(lease.namespace = %ns, lease.name = %name, "released leadership"),
            Ok(Ok(false)) => {
                debug!(lease.namespace = %ns, lease.name = %name, "Lease not held by us; nothing to release")
            }
            Ok(Err(e)) => {
                warn!(lease.namespace = %ns, lease.name = %name, error = %e, "could not release the Lease; it will expire")
            }
            Err(_) => {
                warn!(lease.namespace = %ns, lease.name = %name, "releasing the Lease timed out; it will expire")
            }
        }
    }

    /// Clears the holder if it is us. `Ok(true)` when released.
    async fn try_release(&self) -> Result<bool, LeaseError> {
        let Some(current) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(false);
        };
        let Some(next) = released_lease(&current, &self.cfg.identity, Timestamp::now()) else {
            return Ok(false);
        };
        match self
            .api
            .replace(&self.cfg.name, &post_params(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// One read-decide-write round, bounded by `limit`.
    async fn attempt(&self, limit: Duration) -> Result<Attempt, LeaseError> {
        let started = Instant::now();
        let result = timeout(limit, self.try_acquire_or_renew())
            .await
            .map_err(|_| LeaseError::Timeout(limit))?;
        if matches!(result, Ok(Attempt::Held)) {
            // The renewTime we wrote is no earlier than `started`, so the
            // claim is valid at least until `started + lease_duration`.
            self.set_last_renewed(Some(started));
        }
        result
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaseError> {
        let current = self.api.get_opt(&self.cfg.name).await?;
        let now = Timestamp::now();
        let cfg = &self.cfg;
        match lease_state(current.as_ref(), &cfg.identity, cfg.lease_duration, now) {
            LeaseState::HeldByOther { holder, .. } => return Ok(Attempt::HeldBy(holder)),
            LeaseState::Expired { holder } => {
                info!(lease.namespace = %cfg.namespace, lease.name = %cfg.name, previous = %holder, "the Lease expired; taking it over");
            }
            LeaseState::Absent | LeaseState::Free | LeaseState::HeldByUs => {}
        }
        let Some(next) = next_lease(current.as_ref(), cfg, now) else {
            // Unreachable: next_lease refuses only a Lease validly held by
            // another replica, handled above.
            return Ok(Attempt::Conflict);
        };
        let written = match current {
            None => self.api.create(&post_params(), &next).await,
            Some(_) => self.api.replace(&cfg.name, &post_params(), &next).await,
        };
        match written {
            Ok(_) => Ok(Attempt::Held),
            // Create: AlreadyExists; replace: stale resourceVersion.
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn renew_loop(self, tx: watch::Sender<bool>, mut stop: oneshot::Receiver<()>) {
        let (ns, name) = (&self.cfg.namespace, &self.cfg.name);
        let Some(mut last_ok) = self.last_renewed() else {
            warn!(lease.namespace = %ns, lease.name = %name, "renewal started without holding the Lease");
            tx.send_replace(false);
            return;
        };
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = sleep(self.cfg.retry_period) => {}
            }
            let remaining = self.cfg.renew_deadline.saturating_sub(last_ok.elapsed());
            if remaining.is_zero() {
                error!(lease.namespace = %ns, lease.name = %name, deadline = ?self.cfg.renew_deadline, "leadership lost: no renewal within the renew deadline");
                break;
            }
            let outcome = tokio::select! {
                _ = &mut stop => break,
                outcome = self.attempt(remaining) => outcome,
            };
            match outcome {
                Ok(Attempt::Held) => {
                    if let Some(at) = self.last_renewed() {
                        last_ok = at;
                    }
                    debug!(lease.namespace = %ns, lease.name = %name, "renewed the Lease");
                }
                Ok(Attempt::HeldBy(holder)) => {
                    error!(lease.namespace = %ns, lease.name = %name, %holder, "leadership lost: another replica holds the Lease");
                    break;
                }
                Ok(Attempt::Conflict) => {
                    warn!(lease.namespace = %ns, lease.name = %name, "renewal conflicted with another write; retrying");
                }
                Err(e) => {
                    warn!(lease.namespace = %ns, lease.name = %name, error = %e, "renewal failed; retrying");
                }
            }
            if last_ok.elapsed() >= self.cfg.renew_deadline {
                error!(lease.namespace = %ns, lease.name = %name, deadline = ?self.cfg.renew_deadline, "leadership lost: no renewal within the renew deadline");
                break;
            }
        }
        self.set_last_renewed(None);
        tx.send_replace(false);
    }

    fn last_renewed(&self) -> Option<Instant> {
        *self.last_renewed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_last_renewed(&self, at: Option<Instant>) {
        *self.last_renewed.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

/// Whether this replica may still write as the leader, by the monotonic
/// clock, at the moment it asks: checked immediately before each cloud
/// write, in the task that makes it. The renewal task exits the process
/// when the lease is lost, but a replica frozen past its lease (a paused VM
/// or container, SIGSTOP, CPU starvation) wakes with two tasks racing: the
/// renewal task that would exit, and a reconcile whose next step is the
/// cloud call. The fence decides that race where the write happens.
///
/// Shares the elector's record of its last successful renewal; closed before
/// the first acquire and after [`LeaderElector::release`].
#[derive(Clone, Debug)]
pub struct LeaseFence {
    last_renewed: Arc<Mutex<Option<Instant>>>,
    cfg: Arc<LeaseConfig>,
}

impl LeaseFence {
    /// True while the last successful renewal still covers this instant.
    pub fn is_open(&self) -> bool {
        let last = *self.last_renewed.lock().unwrap_or_else(|e| e.into_inner());
        fence_open(last, Instant::now(), &self.cfg)
    }
}

/// The fence's arithmetic: open while `now` is before the last successful
/// renewal's start + `lease_duration` - a safety margin. The margin is the
/// renew deadline's slack (`lease_duration - renew_deadline`): the time the
/// Lease stays ours after this replica has stopped counting on it, which
/// absorbs clock skew between nodes and the call's own time on the wire.
/// So the fence closes at `started + renew_deadline`, when the renewal task
/// gives up too, and never later. Closed when nothing was renewed.
pub fn fence_open(last_renewed: Option<Instant>, now: Instant, cfg: &LeaseConfig) -> bool {
    let Some(started) = last_renewed else {
        return false;
    };
    let margin = cfg.lease_duration.saturating_sub(cfg.renew_deadline);
    let deadline = started + cfg.lease_duration.saturating_sub(margin);
    now < deadline
}

/// Handle on a leadership being renewed in the background.
///
/// Dropping it stops the renewal (the Lease then expires); prefer
/// [`release`](Self::release) on graceful shutdown.
#[derive(Debug)]
pub struct Leadership {
    elector: LeaderElector,
    rx: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Leadership {
    /// True while we lead. Once false, it stays false.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// A receiver that sees `true` while we lead and `false` once lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Resolves when leadership is lost (immediately if it already is).
    pub async fn lost(&self) {
        let mut rx = self.rx.clone();
        // An error means the renewal task ended, which also means lost.
        let _ = rx.wait_for(|leading| !*leading).await;
    }

    /// Stops renewing, then clears our claim on the Lease so that another
    /// replica takes over at once. Best effort; see [`LeaderElector::release`].
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                warn!(error = %e, "the Lease renewal task ended abnormally");
            }
        }
        self.elector.release().await;
    }
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_string()),
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// `period` plus a random 0-20%, so that replicas do not retry in lockstep.
fn jittered(period: Duration) -> Duration {
    let extra = rand::rng().random_range(0.0..=0.2);
    period + period.mul_f64(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};

    #[test]
    fn the_fence_closes_at_the_renew_deadline_after_the_last_renewal() {
        let cfg = LeaseConfig::new("ns", "lease", "me");
        assert!(cfg.lease_duration > cfg.renew_deadline);
        let t = Instant::now();
        let open = |now: Instant| fence_open(Some(t), now, &cfg);
        assert!(open(t), "just renewed");
        assert!(open(t + cfg.renew_deadline - Duration::from_millis(1)));
        assert!(
            !open(t + cfg.renew_deadline),
            "the margin is the renew deadline's slack"
        );
        assert!(
            !open(t + cfg.lease_duration),
            "never up to the lease's own end"
        );
        assert!(
            !fence_open(None, t, &cfg),
            "closed before the first acquire"
        );
        // A replica frozen for longer than its lease wakes to a closed fence.
        assert!(!open(t + cfg.lease_duration + Duration::from_secs(150)));
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
    }

    fn cfg() -> LeaseConfig {
        LeaseConfig::new("ops", "clusterscale-leader", "pod-a")
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>, duration: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("clusterscale-leader".into()),
                namespace: Some("ops".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                acquire_time: renewed.map(|s| MicroTime(t(s - 100))),
                renew_time: renewed.map(|s| MicroTime(t(s))),
                lease_duration_seconds: duration,
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    fn spec(l: &Lease) -> &LeaseSpec {
        l.spec.as_ref().expect("spec")
    }

    #[test]
    fn default_config_is_valid() {
        let c = cfg();
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_configs_are_refused() {
        type Change = fn(&mut LeaseConfig);
        let cases: Vec<(&str, Change)> = vec![
            ("empty identity", |c| c.identity.clear()),
            ("empty name", |c| c.name.clear()),
            ("empty namespace", |c| c.namespace.clear()),
            ("deadline = duration", |c| {
                c.renew_deadline = c.lease_duration
            }),
            ("retry too close to deadline", |c| {
                c.retry_period = Duration::from_millis(8500)
            }),
            ("zero retry", |c| c.retry_period = Duration::ZERO),
            ("sub-second lease", |c| {
                c.lease_duration = Duration::from_millis(900);
                c.renew_deadline = Duration::from_millis(500);
                c.retry_period = Duration::from_millis(100);
            }),
        ];
        for (what, change) in cases {
            let mut c = cfg();
            change(&mut c);
            assert!(
                matches!(c.validate(), Err(LeaseError::InvalidConfig(_))),
                "{what} should be refused"
            );
        }
    }

    #[test]
    fn absent_lease_is_created_with_us_as_holder() {
        let c = cfg();
        assert_eq!(
            lease_state(None, "pod-a", c.lease_duration, t(0)),
            LeaseState::Absent
        );
        let next = next_lease(None, &c, t(0)).expect("create");
        assert_eq!(next.metadata.name.as_deref(), Some("clusterscale-leader"));
        assert_eq!(next.metadata.namespace.as_deref(), Some("ops"));
        assert_eq!(next.metadata.resource_version, None);
        let s = spec(&next);
        assert_eq!(s.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(s.lease_duration_seconds, Some(15));
        assert_eq!(s.acquire_time, Some(MicroTime(t(0))));
        assert_eq!(s.renew_time, Some(MicroTime(t(0))));
        assert_eq!(s.lease_transitions, Some(0));
    }

    #[test]
    fn lease_without_holder_is_free() {
        let c = cfg();
        for holder in [None, Some("")] {
            let l = lease(holder, Some(0), Some(15));
            assert_eq!(
                lease_state(Some(&l), "pod-a", c.lease_duration, t(1)),
                LeaseState::Free
            );
            let next = next_lease(Some(&l), &c, t(1)).expect("take free lease");
            let s = spec(&next);
            assert_eq!(s.holder_identity.as_deref(), Some("pod-a"));
            assert_eq!(s.acquire_time, Some(MicroTime(t(1))));
            assert_eq!(s.lease_transitions, Some(4));
            assert_eq!(next.metadata.resource_version.as_deref(), Some("42"));
        }
        // A Lease with no spec at all is free too.
        let mut bare = lease(None, None, None);
        bare.spec = None;
        assert_eq!(
            lease_state(Some(&bare), "pod-a", c.lease_duration, t(0)),
            LeaseState::Free
        );
        assert!(next_lease(Some(&bare), &c, t(0)).is_some());
    }

    #[test]
    fn valid_claim_of_another_holder_is_respected() {
        let c = cfg();
        let l = lease(Some("pod-b"), Some(0), Some(15));
        assert_eq!(
            lease_state(Some(&l), "pod-a", c.lease_duration, t(5)),
            LeaseState::HeldByOther {
                holder: "pod-b".into(),
                expires_at: Some(t(15)),
            }
        );
        assert!(!lease_state(Some(&l), "pod-a", c.lease_duration, t(5)).can_acquire());
        assert_eq!(next_lease(Some(&l), &c, t(5)), None);
    }

    #[test]
    fn expiry_is_strictly_after_renew_time_plus_duration() {
        let c = cfg();
        let l = lease(Some("pod-b"), Some(0), Some(15));
        // renewTime + 15 s == now: still valid.
        assert!(matches!(
            lease_state(Some(&l), "pod-a", c.lease_duration, t(15)),
            LeaseState::HeldByOther { .. }
        ));
        let just_after = t(15) + SignedDuration::from_micros(1);
        assert_eq!(
            lease_state(Some(&l), "pod-a", c.lease_duration, just_after),
            LeaseState::Expired {
                holder: "pod-b".into()
            }
        );
    }

    #[test]
    fn expired_lease_is_taken_over() {
        let c = cfg();
        let l = lease(Some("pod-b"), Some(0), Some(15));
        let next = next_lease(Some(&l), &c, t(16)).expect("take over");
        let s = spec(&next);
        assert_eq!(s.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(s.acquire_time, Some(MicroTime(t(16))));
        assert_eq!(s.renew_time, Some(MicroTime(t(16))));
        assert_eq!(s.lease_transitions, Some(4));
        assert_eq!(s.lease_duration_seconds, Some(15));
        // Optimistic concurrency: the write carries the version we read.
        assert_eq!(next.metadata.resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn own_lease_is_renewed_even_when_expired() {
        let c = cfg();
        let l = lease(Some("pod-a"), Some(0), Some(15));
        for now in [t(3), t(100)] {
            assert_eq!(
                lease_state(Some(&l), "pod-a", c.lease_duration, now),
                LeaseState::HeldByUs
            );
            let next = next_lease(Some(&l), &c, now).expect("renew");
            let s = spec(&next);
            assert_eq!(s.holder_identity.as_deref(), Some("pod-a"));
            assert_eq!(s.renew_time, Some(MicroTime(now)));
            // Acquisition time and transitions are kept on renewal.
            assert_eq!(s.acquire_time, Some(MicroTime(t(-100))));
            assert_eq!(s.lease_transitions, Some(3));
            assert_eq!(next.metadata.resource_version.as_deref(), Some("42"));
        }
    }

    #[test]
    fn missing_times_and_durations() {
        let d = Duration::from_secs(15);
        // No renewTime: acquireTime counts.
        let mut l = lease(Some("pod-b"), Some(0), Some(15));
        if let Some(s) = l.spec.as_mut() {
            s.renew_time = None;
        }
        assert_eq!(
            expires_at(spec(&l), d),
            Some(t(-100) + SignedDuration::from_secs(15))
        );
        assert!(matches!(
            lease_state(Some(&l), "pod-a", d, t(0)),
            LeaseState::Expired { .. }
        ));
        // No time at all: expired.
        let l = lease(Some("pod-b"), None, Some(15));
        assert_eq!(expires_at(spec(&l), d), None);
        assert!(lease_state(Some(&l), "pod-a", d, t(0)).can_acquire());
        // No or non-positive duration: our own duration applies.
        for duration in [None, Some(0), Some(-5)] {
            let l = lease(Some("pod-b"), Some(0), duration);
            assert_eq!(expires_at(spec(&l), d), Some(t(15)));
        }
        // A duration that overflows never expires.
        let l = lease(Some("pod-b"), Some(0), Some(i32::MAX));
        let far = Timestamp::MAX - SignedDuration::from_secs(1);
        let l2 = Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(far)),
                ..spec(&l).clone()
            }),
            ..l
        };
        assert_eq!(
            lease_state(Some(&l2), "pod-a", d, t(0)),
            LeaseState::HeldByOther {
                holder: "pod-b".into(),
                expires_at: None,
            }
        );
    }

    #[test]
    fn release_clears_only_our_own_claim() {
        let ours = lease(Some("pod-a"), Some(0), Some(15));
        let next = released_lease(&ours, "pod-a", t(1)).expect("release");
        let s = spec(&next);
        assert_eq!(s.holder_identity, None);
        assert_eq!(s.lease_duration_seconds, Some(1));
        assert_eq!(s.lease_transitions, Some(3));
        assert_eq!(next.metadata.resource_version.as_deref(), Some("42"));
        // After release the Lease is free for anybody.
        assert_eq!(
            lease_state(Some(&next), "pod-b", Duration::from_secs(15), t(1)),
            LeaseState::Free
        );
        let theirs = lease(Some("pod-b"), Some(0), Some(15));
        assert_eq!(released_lease(&theirs, "pod-a", t(1)), None);
        assert_eq!(
            released_lease(&lease(None, Some(0), Some(15)), "pod-a", t(1)),
            None
        );
    }

    #[test]
    fn lease_duration_is_rounded_up_to_whole_seconds() {
        let mut c = cfg();
        c.lease_duration = Duration::from_millis(15_500);
        assert_eq!(c.lease_duration_seconds(), Some(16));
    }

    // ---- request flow against a scripted API server (tower-test) ----

    /// One request as the fake API server saw it.
    #[derive(Clone, Debug)]
    struct Seen {
        method: Method,
        path: String,
        body: Option<Value>,
    }

    type Handler = Box<dyn FnMut(&Seen) -> (StatusCode, Value) + Send>;

    /// A client whose requests are answered by `handler`, and the log of
    /// every request received.
    fn fake_api(mut handler: Handler) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let s = Seen {
                    method: parts.method,
                    path: parts.uri.path().to_string(),
                    body: serde_json::from_slice(&bytes).ok(),
                };
                log.lock().expect("log").push(s.clone());
                let (status, value) = handler(&s);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap_or_default()))
                    .expect("response");
                send.send_response(response);
            }
        });
        (kube::Client::new(service, "ops"), seen)
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": reason, "code": code, "message": reason})
    }

    fn lease_json(holder: Option<&str>, renewed: Timestamp, rv: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "clusterscale-leader", "namespace": "ops", "resourceVersion": rv},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 2,
                     "renewTime": renewed.to_string(), "acquireTime": renewed.to_string(),
                     "leaseTransitions": 1}
        })
    }

    /// Short timings so the flow tests run in well under a second each.
    fn fast_cfg() -> LeaseConfig {
        LeaseConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(600),
            retry_period: Duration::from_millis(50),
            ..cfg()
        }
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/clusterscale-leader";

    #[tokio::test]
    async fn acquire_creates_an_absent_lease() {
        let (client, seen) = fake_api(Box::new(|s| match s.method {
            Method::GET => (StatusCode::NOT_FOUND, status(404, "NotFound")),
            _ => (StatusCode::CREATED, s.body.clone().unwrap_or_default()),
        }));
        let elector = LeaderElector::new(client, fast_cfg());
        timeout(Duration::from_secs(5), elector.acquire())
            .await
            .expect("in time")
            .expect("acquired");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (seen[0].method.clone(), seen[0].path.as_str()),
            (Method::GET, PATH)
        );
        assert_eq!(seen[1].method, Method::POST);
        assert_eq!(
            seen[1].path,
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
        );
        let body = seen[1].body.clone().unwrap_or_default();
        assert_eq!(body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 2);
        assert_eq!(body["spec"]["leaseTransitions"], 0);
    }

    #[tokio::test]
    async fn conflict_means_another_replica_won() {
        // The Lease is expired; our takeover gets 409 (someone else took it
        // first); the next read shows the winner, so we keep waiting.
        let mut gets = 0;
        let (client, seen) = fake_api(Box::new(move |s| match s.method {
            Method::GET => {
                gets += 1;
                if gets == 1 {
                    let old = Timestamp::now() - SignedDuration::from_secs(60);
                    (StatusCode::OK, lease_json(Some("pod-old"), old, "5"))
                } else {
                    (
                        StatusCode::OK,
                        lease_json(Some("pod-b"), Timestamp::now(), "6"),
                    )
                }
            }
            _ => (StatusCode::CONFLICT, status(409, "Conflict")),
        }));
        let elector = LeaderElector::new(client, fast_cfg());
        let waited = timeout(Duration::from_millis(500), elector.acquire()).await;
        assert!(
            waited.is_err(),
            "must not acquire a Lease another replica won"
        );
        let seen = seen.lock().expect("log").clone();
        let puts: Vec<_> = seen.iter().filter(|s| s.method == Method::PUT).collect();
        assert_eq!(puts.len(), 1, "only the expired Lease is written: {seen:?}");
        let body = puts[0].body.clone().unwrap_or_default();
        assert_eq!(body["metadata"]["resourceVersion"], "5");
        assert_eq!(body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(body["spec"]["leaseTransitions"], 2);
        assert!(seen.iter().filter(|s| s.method == Method::GET).count() >= 2);
    }

    #[tokio::test]
    async fn renewal_signals_loss_when_another_holder_appears() {
        let mut gets = 0;
        let (client, seen) = fake_api(Box::new(move |s| match s.method {
            Method::GET => {
                gets += 1;
                let holder = if gets <= 3 { "pod-a" } else { "pod-b" };
                (
                    StatusCode::OK,
                    lease_json(Some(holder), Timestamp::now(), &gets.to_string()),
                )
            }
            _ => (StatusCode::OK, s.body.clone().unwrap_or_default()),
        }));
        // A long deadline, so that only the other holder can end leadership.
        let cfg = LeaseConfig {
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(5),
            ..fast_cfg()
        };
        let elector = LeaderElector::new(client, cfg);
        elector.acquire().await.expect("acquired");
        let leadership = elector.spawn_renewal();
        assert!(leadership.is_leader());
        let rx = leadership.subscribe();
        timeout(Duration::from_secs(2), leadership.lost())
            .await
            .expect("loss reported");
        assert!(!leadership.is_leader());
        assert!(!*rx.borrow());
        let seen = seen.lock().expect("log").clone();
        let puts = seen.iter().filter(|s| s.method == Method::PUT).count();
        assert_eq!(puts, 3, "acquire + two renewals, none after the loss");
    }

    #[tokio::test]
    async fn renewal_signals_loss_after_the_renew_deadline() {
        let mut gets = 0;
        let (client, _seen) = fake_api(Box::new(move |s| match s.method {
            Method::GET => {
                gets += 1;
                if gets == 1 {
                    (
                        StatusCode::OK,
                        lease_json(Some("pod-a"), Timestamp::now(), "1"),
                    )
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        status(500, "InternalError"),
                    )
                }
            }
            _ => (StatusCode::OK, s.body.clone().unwrap_or_default()),
        }));
        let cfg = fast_cfg();
        let deadline = cfg.renew_deadline;
        let elector = LeaderElector::new(client, cfg);
        // The deadline runs from the start of the acquiring request.
        let started = Instant::now();
        elector.acquire().await.expect("acquired");
        let leadership = elector.spawn_renewal();
        timeout(Duration::from_secs(3), leadership.lost())
            .await
            .expect("loss reported");
        let after = started.elapsed();
        assert!(after >= deadline, "lost too early: {after:?}");
        assert!(
            after < deadline + Duration::from_millis(1500),
            "lost too late: {after:?}"
        );
    }

    #[tokio::test]
    async fn release_stops_renewal_and_clears_the_holder() {
        let (client, log) = fake_api(Box::new(|s| match s.method {
            Method::GET => (
                StatusCode::OK,
                lease_json(Some("pod-a"), Timestamp::now(), "7"),
            ),
            _ => (StatusCode::OK, s.body.clone().unwrap_or_default()),
        }));
        let elector = LeaderElector::new(client, fast_cfg());
        elector.acquire().await.expect("acquired");
        let leadership = elector.spawn_renewal();
        let rx = leadership.subscribe();
        timeout(Duration::from_secs(2), leadership.release())
            .await
            .expect("released in time");
        assert!(!*rx.borrow());
        let seen = log.lock().expect("log").clone();
        let last = seen.last().expect("requests");
        assert_eq!(last.method, Method::PUT);
        let body = last.body.clone().unwrap_or_default();
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert!(body["spec"]["holderIdentity"].is_null());
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        // Nothing is written once released.
        sleep(Duration::from_millis(200)).await;
        assert_eq!(log.lock().expect("log").len(), seen.len());
    }

    #[tokio::test]
    async fn release_leaves_another_holders_lease_alone() {
        let (client, seen) = fake_api(Box::new(|_| {
            (
                StatusCode::OK,
                lease_json(Some("pod-b"), Timestamp::now(), "9"),
            )
        }));
        LeaderElector::new(client, fast_cfg()).release().await;
        let seen = seen.lock().expect("log").clone();
        assert!(seen.iter().all(|s| s.method == Method::GET), "{seen:?}");
    }

    #[tokio::test]
    async fn renewal_without_acquire_is_already_lost() {
        let (client, _seen) = fake_api(Box::new(|_| {
            (StatusCode::NOT_FOUND, status(404, "NotFound"))
        }));
        let leadership = LeaderElector::new(client, fast_cfg()).spawn_renewal();
        assert!(!leadership.is_leader());
        timeout(Duration::from_secs(1), leadership.lost())
            .await
            .expect("lost at once");
    }
}
