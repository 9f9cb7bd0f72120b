//! Building the client for a spec's cloud: one place for the CLI and the controller.

use std::sync::Arc;

use super::credentials::Credentials;
use super::huawei::HuaweiCloud;
use super::tencent::{TencentCloud, TencentOptions};
use super::Cloud;
use crate::api::ScaledClusterSpec;
use crate::clock::Clock;

/// Client settings that come from the command line rather than the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Tencent requests per second per (SecretId, action); EMR allows 20.
    pub tencent_rate_limit: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            tencent_rate_limit: super::tencent::DEFAULT_RATE_LIMIT,
        }
    }
}

/// The client for a Tencent or Huawei spec, with `creds` from a Secret or the
/// environment. The simulated cloud is built by its callers (its model is
/// in-process state they own). Errors name the spec field or credential key.
pub fn connect(
    spec: &ScaledClusterSpec,
    creds: &Credentials,
    clock: Arc<dyn Clock>,
    options: ConnectOptions,
) -> Result<Arc<dyn Cloud>, String> {
    if let Some(t) = &spec.tencent {
        let options = TencentOptions {
            clock,
            rate_limit_per_second: options.tencent_rate_limit.max(1),
            ..TencentOptions::default()
        };
        return TencentCloud::new(t, creds, options)
            .map(|c| Arc::new(c) as Arc<dyn Cloud>)
            .map_err(|e| e.to_string());
    }
    if let Some(h) = &spec.huawei {
        return HuaweiCloud::new(h, creds)
            .map(|c| Arc::new(c.with_clock(clock)) as Arc<dyn Cloud>)
            .map_err(|e| e.to_string());
    }
    Err("spec: exactly one of tencent or huawei must be set".into())
}

/// Credentials for `spec` from the environment variables the vendors' SDKs use.
pub fn credentials_from_env(spec: &ScaledClusterSpec) -> Credentials {
    if spec.tencent.is_some() {
        super::tencent::credentials_from_env()
    } else if spec.huawei.is_some() {
        super::huawei::credentials_from_env()
    } else {
        Credentials::new("environment")
    }
}
