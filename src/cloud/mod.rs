//! The clouds, as the operator sees them: the trait and types of
//! `clusterscale-core`, one crate per cloud, and the one `match` that lists
//! them ([`provider::provider`]).

pub mod connect;
pub mod provider;

pub use clusterscale_core::cloud::*;
pub use clusterscale_huawei as huawei;
pub use clusterscale_sim as simulated;
pub use clusterscale_tencent as tencent;
pub use connect::connect;
