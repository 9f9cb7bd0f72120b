//! What a replica serves: [`metrics`] (the Prometheus registry) and
//! [`admin`] (`/metrics`, `/healthz`, `/readyz`).

pub mod admin;
pub mod liveness;
pub mod metrics;
