//! A CloudAccount's status, written by the leader: whether it can give
//! keys now (`Ready`, with a reason and, for a refusal, the cloud's code),
//! the identity in use (never a key), when the current temporary keys expire
//! and when they were last refreshed, and how many ScaledClusters name it.
//!
//! A workload-identity account is checked by fetching its keys through the
//! same shared source its clusters sign with, so the check is also what
//! keeps the keys fresh while no cluster needs a call. A `secretRef` account
//! is checked by reading its Secret (within the operator's Secret scope).
//! The status is written only when it changed: a steady account costs no
//! write between refreshes.
//!
//! CloudAccounts are cluster-scoped, but an operator may watch only some
//! namespaces (`--namespace`, the chart's `watchNamespaces`), and several
//! such installs may share one Kubernetes cluster. Such an operator looks
//! only at the accounts its own clusters name ([`Scope::Namespaces`]): it
//! neither exchanges keys for nor writes the status of an account it does
//! not use, which another install owns. An operator watching every
//! namespace looks at every account.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{clusters_using_account, secret_reason, Accounts};
use crate::controller::reconcile::secrets;
use crate::controller::reconcile::status::FIELD_MANAGER;
use crate::controller::watch::ClusterOrInvalid;
use clusterscale_core::api::account::{CloudAccount, CloudAccountStatus};
use clusterscale_core::clock::Clock;

/// How often a workload-identity account is looked at: often enough that
/// keys are refreshed ahead of expiry (at the earliest 5 minutes before it)
/// even when no cluster makes a call.
pub const WORKLOAD_RECHECK: Duration = Duration::from_secs(60);
/// How often a `secretRef` account (and the user counts) are looked at.
pub const SECRET_RECHECK: Duration = Duration::from_secs(300);

/// What the CloudAccount reconciler shares.
pub struct AccountContext {
    pub client: Client,
    pub accounts: Arc<Accounts>,
    /// The ScaledCluster watch caches: the users are counted there.
    pub clusters: Vec<Store<ClusterOrInvalid>>,
    pub leading: Arc<AtomicBool>,
    pub clock: Arc<dyn Clock>,
    /// Which accounts this operator looks after ([module docs](self)).
    pub scope: Scope,
}

/// Which CloudAccounts an operator checks and reports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// It watches every namespace: every account.
    AllNamespaces,
    /// It watches some namespaces: only the accounts its clusters name.
    Namespaces,
}

impl Scope {
    /// Whether an account with `users` clusters in this operator's view is
    /// this operator's to check: an unused account may belong to another
    /// install, whose exchanges and status writes this one must not double.
    pub fn looks_after(self, users: i32) -> bool {
        self == Scope::AllNamespaces || users > 0
    }
}

/// Why a CloudAccount's status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of CloudAccount {name}: {source}")]
pub struct WriteError {
    name: String,
    source: kube::Error,
}

/// One pass over one CloudAccount.
pub async fn reconcile(
    account: Arc<CloudAccount>,
    ctx: Arc<AccountContext>,
) -> Result<Action, WriteError> {
    if !ctx.leading.load(Ordering::SeqCst) {
        // A follower: the takeover trigger reconciles it later.
        return Ok(Action::await_change());
    }
    let users = users(&ctx.clusters, &account.name_any());
    if !ctx.scope.looks_after(users) {
        // Another install's account: a cluster of ours naming it
        // reconciles it again (the ScaledCluster watch's fan-out).
        return Ok(Action::await_change());
    }
    let (status, recheck) = observe(&account, users, &ctx).await;
    let status = keep_transition_times(status, account.status.as_ref());
    if account.status.as_ref() != Some(&status) {
        let name = account.name_any();
        let api: Api<CloudAccount> = Api::all(ctx.client.clone());
        let body = json!({
            "apiVersion": "clusterscale.io/v1alpha1",
            "kind": "CloudAccount",
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| WriteError { name, source })?;
    }
    Ok(Action::requeue(recheck))
}

/// A failed status write is retried soon.
pub fn error_policy(_: Arc<CloudAccount>, error: &WriteError, _: Arc<AccountContext>) -> Action {
    tracing::warn!(error = %error, "CloudAccount status not written");
    Action::requeue(Duration::from_secs(15))
}

/// The status the account has now, with `users` ScaledClusters naming it,
/// and when to look again.
pub async fn observe(
    account: &CloudAccount,
    users: i32,
    ctx: &AccountContext,
) -> (CloudAccountStatus, Duration) {
    let now = ctx.clock.now();
    let mut status = CloudAccountStatus {
        observed_generation: account.metadata.generation,
        cloud: account.spec.cloud().map(|k| k.to_string()),
        source: Some(account.spec.source().to_string()),
        users,
        ..CloudAccountStatus::default()
    };
    let Some(kind) = account.spec.cloud() else {
        status.conditions = vec![ready(
            now,
            account,
            false,
            "InvalidSpec",
            "exactly one of spec.tencent or spec.huawei must be set",
        )];
        return (status, SECRET_RECHECK);
    };
    if let Some(secret) = account.spec.secret_ref() {
        status.identity = Some(format!("Secret {}/{}", secret.namespace, secret.name));
        let read = secrets::read_secret(
            &ctx.client,
            ctx.accounts.scope(),
            &secret.namespace,
            &secret.name,
            secrets::keys_of(kind),
            "",
        )
        .await;
        status.conditions = vec![match read {
            Ok(_) => ready(
                now,
                account,
                true,
                "SecretFound",
                &format!(
                    "Secret {}/{} has the {kind} keys",
                    secret.namespace, secret.name
                ),
            ),
            Err(e) => ready(now, account, false, secret_reason(&e), &e.to_string()),
        }];
        return (status, SECRET_RECHECK);
    }
    let keys = match ctx.accounts.key_source(account) {
        Ok(Some(keys)) => keys,
        Ok(None) => {
            status.conditions = vec![ready(
                now,
                account,
                false,
                "InvalidSpec",
                &format!("spec.{kind}: exactly one of secretRef or workloadIdentity must be set"),
            )];
            return (status, SECRET_RECHECK);
        }
        Err(e) => {
            status.conditions = vec![ready(now, account, false, "InvalidSpec", &e.to_string())];
            return (status, SECRET_RECHECK);
        }
    };
    let fetched = keys.keys().await;
    let report = keys.report();
    status.identity = Some(report.identity.clone());
    status.keys_expire_at = report.expires_at.map(Time);
    status.last_refresh = report.refreshed_at.map(Time);
    status.conditions = vec![match fetched {
        Ok(k) => ready(
            now,
            account,
            true,
            "KeysIssued",
            &format!(
                "temporary keys for {} expire at {}",
                report.identity,
                k.expires_at
                    .map_or_else(|| "an unknown time".to_string(), |t| t.to_string())
            ),
        ),
        Err(e) => {
            let reason = if e.code.ends_with("TokenFileUnreadable") {
                "TokenFileUnreadable"
            } else {
                "ExchangeRefused"
            };
            ready(now, account, false, reason, &e.to_string())
        }
    }];
    (status, WORKLOAD_RECHECK)
}

/// How many ScaledClusters in `clusters` name account `name`.
pub fn users(clusters: &[Store<ClusterOrInvalid>], name: &str) -> i32 {
    i32::try_from(clusters_using_account(clusters, name).len()).unwrap_or(i32::MAX)
}

fn ready(
    now: Timestamp,
    account: &CloudAccount,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.chars().take(1024).collect(),
        last_transition_time: Time(now),
        observed_generation: account.metadata.generation,
    }
}

/// A condition whose status and reason did not change keeps its transition
/// time, and one whose message alone changed (an expiry) is rewritten.
fn keep_transition_times(
    mut status: CloudAccountStatus,
    old: Option<&CloudAccountStatus>,
) -> CloudAccountStatus {
    let Some(old) = old else { return status };
    for c in &mut status.conditions {
        if let Some(o) = old.conditions.iter().find(|o| o.type_ == c.type_) {
            if o.status == c.status && o.reason == c.reason {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str, at: i64) -> CloudAccountStatus {
        CloudAccountStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(Timestamp::from_second(at).unwrap()),
                observed_generation: Some(1),
            }],
            ..CloudAccountStatus::default()
        }
    }

    #[test]
    fn an_operator_of_some_namespaces_looks_after_the_accounts_it_uses_only() {
        assert!(Scope::AllNamespaces.looks_after(0));
        assert!(Scope::AllNamespaces.looks_after(2));
        assert!(!Scope::Namespaces.looks_after(0));
        assert!(Scope::Namespaces.looks_after(1));
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let old = status("KeysIssued", 100);
        let kept = keep_transition_times(status("KeysIssued", 200), Some(&old));
        assert_eq!(kept, old, "no change: no write");
        let moved = keep_transition_times(status("SecretFound", 200), Some(&old));
        assert_eq!(
            moved.conditions[0].last_transition_time,
            Time(Timestamp::from_second(200).unwrap())
        );
    }
}
