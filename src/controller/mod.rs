pub mod admin;
pub mod backlog;
pub mod backoff;
pub mod claims;
pub mod clouds;
pub mod events;
pub mod index;
pub use clusterscale_lease as lease;
pub mod metrics;
pub mod reconciler;
pub mod run;
pub mod secrets;
pub mod selector;
pub mod status;

#[cfg(test)]
mod tests;
