pub mod admin;
pub mod lease;
pub mod metrics;
