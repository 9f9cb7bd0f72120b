//! The provider seam: everything the rest of the operator needs to know
//! about one cloud, in one trait.
//!
//! A cloud implements [`CloudProvider`] in its own crate (the spec type it
//! reads and its rules, its Secret keys, its environment credentials, its
//! target key, its capabilities, its command-line knobs and how its client
//! is built); [`Provider`] is the same seen
//! through a spec, for callers that do not know which cloud they hold. The
//! one exhaustive `match` on [`CloudKind`] that lists the providers is
//! `clusterscale::cloud::provider`, in the operator crate, the only
//! crate that depends on every cloud.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::credentials::{Credentials, MissingCredential};
use super::keys::{Exchange, KeySource};
use super::{Capabilities, Cloud};
use crate::api::account::CloudAccountSpec;
use crate::api::validate::Violation;
use crate::api::{AccountRef, CloudKind, Precondition, ScaledClusterSpec, SecretRef, TaskPoolSpec};
use crate::clock::Clock;

/// The Secret keys a cloud accepts: any one complete set will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretKeys {
    pub sets: &'static [&'static [&'static str]],
    /// How an error names them.
    pub expected: &'static str,
}

/// Client settings that come from the command line rather than the spec.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Each cloud's own command-line knobs ([`CloudProvider::Knobs`]), by
    /// kind; a cloud absent here uses its knobs' defaults.
    pub knobs: KnobsByKind,
    /// The HTTP client that every cloud client built with these options
    /// shares: one connection pool per endpoint host and one TLS
    /// configuration, rather than one per ScaledCluster (each rustls
    /// configuration holds its own copy of the webpki roots: at 1,000
    /// Tencent clusters that was half the operator's memory). `None`: each
    /// client makes its own ([`super::http::client`]).
    pub http: Option<reqwest::Client>,
}

/// Each cloud's knobs, by kind: a cloud's [`CloudProvider::Knobs`] value,
/// which only that cloud reads ([`CloudProvider::knobs`]).
#[derive(Clone, Default)]
pub struct KnobsByKind(BTreeMap<CloudKind, Arc<dyn Any + Send + Sync>>);

impl KnobsByKind {
    /// Set the knobs of cloud `kind`.
    pub fn set<K: Any + Send + Sync>(&mut self, kind: CloudKind, knobs: K) {
        self.0.insert(kind, Arc::new(knobs));
    }

    /// Set the knobs of cloud `kind`, already type-erased.
    pub fn set_erased(&mut self, kind: CloudKind, knobs: Arc<dyn Any + Send + Sync>) {
        self.0.insert(kind, knobs);
    }

    /// The knobs of cloud `kind`, when they are set and of type `K`.
    pub fn get<K: Any>(&self, kind: CloudKind) -> Option<&K> {
        self.0.get(&kind)?.downcast_ref()
    }
}

impl fmt::Debug for KnobsByKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl ConnectOptions {
    /// These options with cloud `kind`'s knobs set to `knobs`.
    pub fn with_knobs<K: Any + Send + Sync>(mut self, kind: CloudKind, knobs: K) -> Self {
        self.knobs.set(kind, knobs);
        self
    }
}

/// The knobs of a cloud that has none.
#[derive(clap::Args, Clone, Copy, Debug, Default, PartialEq, Eq)]
// No argument group: several clouds' knobs are flattened into one command.
#[group(skip)]
pub struct NoKnobs {}

/// What a client is built with, beyond the spec's block.
pub struct Connect<'a> {
    /// A name for in-process state (the simulated model).
    pub name: &'a str,
    pub creds: &'a Credentials,
    /// The keys of a CloudAccount's workload identity, shared by every
    /// client of that account (one refresh at a time, one budget); when
    /// set, the client signs with these and `creds` is not read.
    pub keys: Option<Arc<KeySource>>,
    pub clock: Arc<dyn Clock>,
    pub options: ConnectOptions,
}

/// Why a cloud's client could not be built. Each names what is wrong and
/// so where to fix it: the spec, or the credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The spec sets no cloud's block, or several.
    #[error("spec: exactly one of {choices} must be set")]
    NoCloud { choices: String },
    /// A spec field cannot be used (the message names it: an endpoint that
    /// is not a URL, an empty id).
    #[error("{0}")]
    Spec(String),
    /// A required credential is absent.
    #[error(transparent)]
    MissingCredential(#[from] MissingCredential),
    /// A credential is present but unusable (the message names the key).
    #[error("{0}")]
    Credential(String),
}

impl ConnectError {
    /// The precondition a resource that cannot connect reports.
    pub fn precondition(&self) -> Precondition {
        match self {
            ConnectError::NoCloud { .. } | ConnectError::Spec(_) => Precondition::InvalidSpec,
            ConnectError::MissingCredential(_) | ConnectError::Credential(_) => {
                Precondition::CredentialsMissing
            }
        }
    }
}

/// One cloud, as the operator outside its module sees it.
pub trait CloudProvider: Sync + 'static {
    const KIND: CloudKind;
    /// The spec's block for this cloud (`spec.tencent`, ...).
    type Spec: Serialize;
    /// The cloud's own command-line knobs (flags of `run`, `plan` and
    /// `apply`; their names start with the cloud's, `--tencent-...`), or
    /// [`NoKnobs`]. Their `Default` is the flags' defaults.
    type Knobs: clap::Args + Clone + Default + fmt::Debug + Send + Sync + 'static;
    const SECRET_KEYS: SecretKeys;
    /// What the planner may ask of it (the client reports the same).
    const CAPABILITIES: Capabilities;

    fn block(spec: &ScaledClusterSpec) -> Option<&Self::Spec>;
    /// The block's own rules, beyond the CRD's cloud-neutral ones
    /// ([`crate::api::validate::validate_spec`]), and the rules of this
    /// cloud's pools (`spec.taskPools`, with their blocks of this cloud, or
    /// a refusal of pools the cloud cannot scale): each broken rule names
    /// its field (`spec.tencent.region`), in the same words as the CRD's CEL rule.
    fn validate(block: &Self::Spec, pools: &[TaskPoolSpec]) -> Vec<Violation>;
    /// The Secret the block names, when the cloud needs credentials.
    fn secret_ref(block: &Self::Spec) -> Option<&SecretRef>;
    /// The CloudAccount the block names (`accountRef`), instead of a Secret.
    fn account_ref(block: &Self::Spec) -> Option<&AccountRef> {
        let _ = block;
        None
    }
    /// Credentials from the environment variables the vendor's SDKs read (the CLI).
    fn credentials_from_env() -> Credentials;
    /// A stable key for the remote cluster, to find two resources aimed at
    /// the same one; `None` when it cannot be shared.
    fn target_key(block: &Self::Spec) -> Option<String>;
    /// Who the cloud bills and throttles these credentials as (Tencent's
    /// SecretId, Huawei's AK or IAM user): two Secrets with the same keys
    /// are one account. `None`: no credentials, or none that name an account.
    fn account_id(creds: &Credentials) -> Option<String> {
        let _ = creds;
        None
    }
    /// Build the client.
    fn connect(block: &Self::Spec, with: Connect<'_>) -> Result<Arc<dyn Cloud>, ConnectError>;
    /// The exchange of a CloudAccount's `workloadIdentity` of this cloud
    /// (its token file for temporary keys); `None` when the account has no
    /// such block. Sends nothing: the first exchange runs on first use.
    fn account_exchange(
        account: &CloudAccountSpec,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let _ = (account, http, clock);
        Ok(None)
    }
    /// The environment variables the CLI takes credentials from, in words
    /// for an error message (static keys, then a workload identity); empty
    /// when the cloud needs none.
    fn environment_help() -> String {
        String::new()
    }
    /// The exchange of a workload identity described by the environment
    /// variables the vendor's SDK reads for one (the CLI, when no static
    /// keys are set); `None` when none of them is set, an error naming the
    /// missing one when only some are. Sends nothing.
    fn exchange_from_env(
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        let _ = (http, clock);
        Ok(None)
    }
    /// Observations per second one account allows (its per-action request
    /// rate, each action being called about once per observation); `None`:
    /// no limit. The controller admits resyncs within it.
    fn observations_per_second(knobs: &Self::Knobs) -> Option<u32>;

    /// This cloud's knobs in `options`, or their defaults.
    fn knobs(options: &ConnectOptions) -> Self::Knobs {
        options
            .knobs
            .get::<Self::Knobs>(Self::KIND)
            .cloned()
            .unwrap_or_default()
    }
}

/// A [`CloudProvider`] seen through a whole spec.
pub trait Provider: Sync {
    fn kind(&self) -> CloudKind;
    /// The block the client is built from, as JSON (a cache fingerprint);
    /// `None` when the spec has no block for this cloud.
    fn block_json(&self, spec: &ScaledClusterSpec) -> Option<Vec<u8>>;
    /// The rules of the spec's block for this cloud ([`CloudProvider::validate`]);
    /// none when the spec has no such block.
    fn validate(&self, spec: &ScaledClusterSpec) -> Vec<Violation>;
    fn secret_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str>;
    /// The CloudAccount the spec's block names.
    fn account_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str>;
    fn secret_keys(&self) -> SecretKeys;
    fn credentials_from_env(&self) -> Credentials;
    fn target_key(&self, spec: &ScaledClusterSpec) -> Option<String>;
    fn account_id(&self, creds: &Credentials) -> Option<String>;
    fn capabilities(&self) -> Capabilities;
    fn observations_per_second(&self, options: &ConnectOptions) -> Option<u32>;
    /// Add this cloud's knobs to a command's flags.
    fn augment_args(&self, cmd: clap::Command) -> clap::Command;
    /// This cloud's knobs, read from parsed flags.
    fn knobs_from(
        &self,
        matches: &clap::ArgMatches,
    ) -> Result<Arc<dyn Any + Send + Sync>, clap::Error>;
    fn connect(
        &self,
        spec: &ScaledClusterSpec,
        with: Connect<'_>,
    ) -> Result<Arc<dyn Cloud>, ConnectError>;
    fn account_exchange(
        &self,
        account: &CloudAccountSpec,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError>;
    fn environment_help(&self) -> String;
    fn exchange_from_env(
        &self,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError>;
}

impl<P: CloudProvider> Provider for P {
    fn kind(&self) -> CloudKind {
        P::KIND
    }

    fn block_json(&self, spec: &ScaledClusterSpec) -> Option<Vec<u8>> {
        P::block(spec).map(|b| serde_json::to_vec(b).unwrap_or_default())
    }

    fn validate(&self, spec: &ScaledClusterSpec) -> Vec<Violation> {
        P::block(spec)
            .map(|b| P::validate(b, &spec.task_pools))
            .unwrap_or_default()
    }

    fn secret_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str> {
        P::block(spec)
            .and_then(P::secret_ref)
            .map(|r| r.name.as_str())
    }

    fn account_name<'a>(&self, spec: &'a ScaledClusterSpec) -> Option<&'a str> {
        P::block(spec)
            .and_then(P::account_ref)
            .map(|r| r.name.as_str())
    }

    fn secret_keys(&self) -> SecretKeys {
        P::SECRET_KEYS
    }

    fn credentials_from_env(&self) -> Credentials {
        P::credentials_from_env()
    }

    fn target_key(&self, spec: &ScaledClusterSpec) -> Option<String> {
        P::block(spec).and_then(P::target_key)
    }

    fn account_id(&self, creds: &Credentials) -> Option<String> {
        P::account_id(creds)
    }

    fn capabilities(&self) -> Capabilities {
        P::CAPABILITIES
    }

    fn observations_per_second(&self, options: &ConnectOptions) -> Option<u32> {
        P::observations_per_second(&P::knobs(options))
    }

    fn augment_args(&self, cmd: clap::Command) -> clap::Command {
        <P::Knobs as clap::Args>::augment_args(cmd)
    }

    fn knobs_from(
        &self,
        matches: &clap::ArgMatches,
    ) -> Result<Arc<dyn Any + Send + Sync>, clap::Error> {
        let knobs = <P::Knobs as clap::FromArgMatches>::from_arg_matches(matches)?;
        Ok(Arc::new(knobs))
    }

    fn connect(
        &self,
        spec: &ScaledClusterSpec,
        with: Connect<'_>,
    ) -> Result<Arc<dyn Cloud>, ConnectError> {
        match P::block(spec) {
            Some(block) => P::connect(block, with),
            None => Err(ConnectError::Spec(format!("spec.{} is not set", P::KIND))),
        }
    }

    fn account_exchange(
        &self,
        account: &CloudAccountSpec,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        P::account_exchange(account, http, clock)
    }

    fn environment_help(&self) -> String {
        P::environment_help()
    }

    fn exchange_from_env(
        &self,
        http: Option<reqwest::Client>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<dyn Exchange>>, ConnectError> {
        P::exchange_from_env(http, clock)
    }
}
