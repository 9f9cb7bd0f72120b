//! Building the client for a spec's cloud: one place for the CLI and the controller.

use std::sync::Arc;

use super::credentials::Credentials;
pub use super::provider::ConnectOptions;
use super::provider::{self, Connect};
use super::Cloud;
use crate::api::{CloudKind, ScaledClusterSpec};
use crate::clock::Clock;

/// The client for the spec's cloud, with `creds` from a Secret or the
/// environment; `name` names in-process state (the simulated model, which
/// starts afresh with each client). Errors name the spec field or credential key.
pub fn connect(
    spec: &ScaledClusterSpec,
    name: &str,
    creds: &Credentials,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, String> {
    let Some(provider) = provider::of(spec) else {
        return Err(format!(
            "spec: exactly one of {} must be set",
            CloudKind::choices()
        ));
    };
    provider.connect(
        spec,
        Connect {
            name,
            creds,
            clock,
            options,
        },
    )
}

/// Credentials for `spec` from the environment variables the vendors' SDKs use.
pub fn credentials_from_env(spec: &ScaledClusterSpec) -> Credentials {
    match provider::of(spec) {
        Some(p) => p.credentials_from_env(),
        None => Credentials::new("environment"),
    }
}
