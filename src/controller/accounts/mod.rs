//! CloudAccounts: where a ScaledCluster's keys come from when it names one
//! (`spec.tencent.accountRef` / `spec.huawei.accountRef`) instead of a
//! Secret of its own.
//!
//! - [`Accounts`] resolves a ScaledCluster's keys ([`Accounts::signing`]):
//!   its own Secret, its CloudAccount's Secret (in one namespace, shared by
//!   every cluster that names the account), or the account's workload
//!   identity. For a workload identity it keeps one
//!   [`KeySource`] per account, shared by every cluster of that account:
//!   one exchange at a time, one refresh ahead of expiry, one backoff after a
//!   refusal, and one rate-limit budget ([`KeySource::account`]).
//! - [`status`]: the CloudAccount's own status (Ready, identity, expiry, last
//!   refresh, users), written by the leader.
//!
//! Every failure names the account and what to fix, and is reported before
//! any cloud call: a cluster whose account cannot give keys says
//! `AccountNotReady`, with the cloud's code when the exchange was refused.

pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::{ObjectRef, Store};

use super::watch::ClusterOrInvalid;
use kube::Client;

use super::reconcile::secrets::{self, CredentialsError, SecretScope};
use clusterscale_core::api::account::CloudAccount;
use clusterscale_core::api::{CloudKind, Precondition, ScaledClusterSpec};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::Credentials;
use clusterscale_core::cloud::keys::KeySource;
use clusterscale_core::cloud::provider::ConnectError;

/// How one ScaledCluster's requests are signed.
#[derive(Debug)]
pub struct Signing {
    /// Keys from a Secret (the cluster's or its account's); empty for a
    /// workload identity.
    pub creds: Credentials,
    /// The account's shared temporary keys, for a workload identity.
    pub keys: Option<Arc<KeySource>>,
    /// Who the cloud bills and throttles: the budget key of the backlog.
    pub account_id: Option<String>,
}

/// Why a ScaledCluster has no keys: the precondition it reports, and the
/// message naming the account or Secret at fault.
pub type Unresolved = (Precondition, String);

struct Shared {
    /// The account's spec, as JSON, that the source was built from.
    spec: Vec<u8>,
    keys: Arc<KeySource>,
}

/// The CloudAccounts the operator knows (a reflector store of the
/// cluster-scoped watch) and the key sources of their workload identities.
pub struct Accounts {
    store: Store<CloudAccount>,
    sources: Mutex<HashMap<String, Shared>>,
    scope: SecretScope,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl Accounts {
    pub fn new(
        store: Store<CloudAccount>,
        scope: SecretScope,
        clock: Arc<dyn Clock>,
        http: Option<reqwest::Client>,
    ) -> Self {
        Self {
            store,
            sources: Mutex::default(),
            scope,
            clock,
            http,
        }
    }

    /// Where Secrets may be read.
    pub fn scope(&self) -> &SecretScope {
        &self.scope
    }

    /// The CloudAccount `name`, from the watch cache.
    pub fn get(&self, name: &str) -> Option<Arc<CloudAccount>> {
        self.store.get(&ObjectRef::new(name))
    }

    /// Every CloudAccount in the watch cache.
    pub fn all(&self) -> Vec<Arc<CloudAccount>> {
        self.store.state()
    }

    /// Drop the key source of a deleted account.
    pub fn forget(&self, name: &str) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The shared key source of a workload-identity account: the one made
    /// for this spec of it, or a new one when the spec changed (the clients
    /// holding the old one are rebuilt: their fingerprint names the source).
    /// `None` for a `secretRef` account.
    pub fn key_source(
        &self,
        account: &CloudAccount,
    ) -> Result<Option<Arc<KeySource>>, ConnectError> {
        let name = kube::ResourceExt::name_any(account);
        let spec = serde_json::to_vec(&account.spec).unwrap_or_default();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sources.get(&name) {
            if s.spec == spec {
                return Ok(Some(s.keys.clone()));
            }
        }
        let Some(kind) = account.spec.cloud() else {
            return Ok(None);
        };
        let exchange = crate::cloud::provider(kind).account_exchange(
            &account.spec,
            self.http.clone(),
            self.clock.clone(),
        )?;
        let Some(exchange) = exchange else {
            sources.remove(&name);
            return Ok(None);
        };
        let keys = Arc::new(KeySource::exchanged(exchange, self.clock.clone()));
        sources.insert(
            name,
            Shared {
                spec,
                keys: keys.clone(),
            },
        );
        Ok(Some(keys))
    }

    /// The keys of a ScaledCluster in `namespace` with `spec`: its own
    /// Secret, or its CloudAccount's. For a workload identity the keys are
    /// fetched here (or taken from the shared source, still valid), so that
    /// a refused exchange stops the pass before any cloud call.
    pub async fn signing(
        &self,
        client: &Client,
        namespace: &str,
        spec: &ScaledClusterSpec,
    ) -> Result<Signing, Unresolved> {
        let provider = crate::cloud::of(spec);
        let Some(name) = provider.and_then(|p| p.account_name(spec)) else {
            let creds = secrets::read(client, &self.scope, namespace, spec)
                .await
                .map_err(|e| (Precondition::CredentialsMissing, e.to_string()))?;
            let account_id = provider.and_then(|p| p.account_id(&creds));
            return Ok(Signing {
                creds,
                keys: None,
                account_id,
            });
        };
        let kind = spec.cloud().unwrap_or(CloudKind::Simulated);
        let not_ready = |message: String| (Precondition::AccountNotReady, message);
        let Some(account) = self.get(name) else {
            return Err(not_ready(format!(
                "CloudAccount {name} (spec.{kind}.accountRef.name) does not exist; create it, or fix the name"
            )));
        };
        match account.spec.cloud() {
            Some(k) if k == kind => {}
            other => {
                return Err(not_ready(format!(
                    "CloudAccount {name} (spec.{kind}.accountRef.name) is {} account; a {kind} cluster needs a {kind} account",
                    other.map_or_else(|| "not a valid".to_string(), |k| format!("a {k}"))
                )))
            }
        }
        if let Some(secret) = account.spec.secret_ref() {
            let creds = secrets::read_secret(
                client,
                &self.scope,
                &secret.namespace,
                &secret.name,
                secrets::keys_of(kind),
                &format!("CloudAccount {name}: "),
            )
            .await
            .map_err(|e| not_ready(format!("CloudAccount {name}: {e}")))?;
            let account_id = provider.and_then(|p| p.account_id(&creds));
            return Ok(Signing {
                creds,
                keys: None,
                account_id,
            });
        }
        let keys = self
            .key_source(&account)
            .map_err(|e| not_ready(format!("CloudAccount {name}: {e}")))?
            .ok_or_else(|| {
                not_ready(format!(
                    "CloudAccount {name}: spec.{kind} sets neither secretRef nor workloadIdentity"
                ))
            })?;
        keys.keys()
            .await
            .map_err(|e| not_ready(format!("CloudAccount {name}: {e}")))?;
        Ok(Signing {
            creds: Credentials::new(format!("CloudAccount {name}")),
            account_id: Some(keys.account()),
            keys: Some(keys),
        })
    }
}

/// The names of the ScaledClusters' accounts, for the account's user count
/// and the reconciles an account's change triggers.
pub fn account_of(spec: &ScaledClusterSpec) -> Option<&str> {
    crate::cloud::of(spec)?.account_name(spec)
}

/// The ScaledClusters in `stores` that name CloudAccount `name`: its users.
pub fn clusters_using_account(
    stores: &[Store<ClusterOrInvalid>],
    name: &str,
) -> Vec<ObjectRef<ClusterOrInvalid>> {
    stores
        .iter()
        .flat_map(|s| s.state())
        .filter(|g| {
            g.0.as_ref()
                .ok()
                .and_then(|c| account_of(&c.spec))
                .is_some_and(|a| a == name)
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
}

/// What a Secret error of an account says on its status: the reason.
pub fn secret_reason(e: &CredentialsError) -> &'static str {
    match e {
        CredentialsError::NotFound { .. } => "SecretNotFound",
        CredentialsError::MissingKeys { .. } => "SecretKeysMissing",
        CredentialsError::OutOfScope { .. } => "SecretOutsideOperatorNamespace",
        CredentialsError::Api { .. } => "SecretUnreadable",
    }
}
