//! [`InstrumentedCloud`]: the cloud of one reconcile, timed and counted in
//! the controller's metrics.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::controller::serve::metrics::{action, Metrics, OK};
use clusterscale_core::api::{CloudKind, OperationRecord, TaskPoolSpec};
use clusterscale_core::cloud::{
    Capabilities, Cloud, CloudError, ObservedCluster, OperationProgress, ScaleRequest, Submitted,
};

/// A [`Cloud`] that records `clusterscale_cloud_calls_total` and
/// `clusterscale_cloud_call_duration_seconds` for every call of the cloud it
/// wraps, and otherwise behaves exactly like it.
///
/// A call whose future is dropped before it completes is not recorded.
pub struct InstrumentedCloud {
    inner: Arc<dyn Cloud>,
    metrics: Metrics,
}

impl InstrumentedCloud {
    /// Wraps `inner`; calls are recorded in `metrics`.
    pub fn new(inner: Arc<dyn Cloud>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    /// The wrapped cloud.
    pub fn inner(&self) -> &Arc<dyn Cloud> {
        &self.inner
    }

    fn record<T>(&self, action: &str, started: Instant, result: &Result<T, CloudError>) {
        let outcome = match result {
            Ok(_) => OK,
            Err(e) => e.class.as_str(),
        };
        self.metrics
            .cloud_call(self.inner.kind(), action, outcome, started.elapsed());
    }
}

impl std::fmt::Debug for InstrumentedCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedCloud")
            .field("cloud", &self.inner.kind())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Cloud for InstrumentedCloud {
    fn kind(&self) -> CloudKind {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn observe_pools(&self, pools: &[TaskPoolSpec]) -> Result<ObservedCluster, CloudError> {
        let started = Instant::now();
        let result = self.inner.observe_pools(pools).await;
        self.record(action::OBSERVE, started, &result);
        result
    }

    async fn scale_out(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        let started = Instant::now();
        let result = self.inner.scale_out(req).await;
        self.record(action::SCALE_OUT, started, &result);
        result
    }

    async fn scale_in(&self, req: &ScaleRequest) -> Result<Submitted, CloudError> {
        let started = Instant::now();
        let result = self.inner.scale_in(req).await;
        self.record(action::SCALE_IN, started, &result);
        result
    }

    async fn operation_status(
        &self,
        op: &OperationRecord,
    ) -> Result<OperationProgress, CloudError> {
        let started = Instant::now();
        let result = self.inner.operation_status(op).await;
        self.record(action::OPERATION_STATUS, started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::serve::metrics::sample;
    use clusterscale_core::api::NodeGroup;
    use clusterscale_core::clock::ManualClock;
    use clusterscale_core::cloud::ErrorClass;
    use clusterscale_sim::{SimConfig, SimModel, SimulatedCloud};

    fn sim() -> (Arc<SimModel>, InstrumentedCloud, Metrics) {
        let clock = Arc::new(ManualClock::default());
        let model = Arc::new(SimModel::new("sim-1", SimConfig::default(), clock));
        let metrics = Metrics::new();
        let cloud = InstrumentedCloud::new(
            Arc::new(SimulatedCloud::new(model.clone())),
            metrics.clone(),
        );
        (model, cloud, metrics)
    }

    fn request(group: NodeGroup, count: i32, token: &str) -> ScaleRequest {
        ScaleRequest {
            group,
            pool: None,
            count,
            from_count: 0,
            token: token.into(),
            prefer_nodes: Vec::new(),
            graceful_timeout_seconds: 0,
        }
    }

    fn calls(m: &Metrics, action: &str, outcome: &str) -> Option<f64> {
        sample(
            &m.encode(),
            &format!(
                r#"clusterscale_cloud_calls_total{{cloud="simulated",action="{action}",outcome="{outcome}"}}"#
            ),
        )
    }

    #[tokio::test]
    async fn instrumented_cloud_delegates_and_records_outcomes() {
        let (model, cloud, metrics) = sim();
        assert_eq!(cloud.kind(), CloudKind::Simulated);
        assert_eq!(cloud.capabilities(), Capabilities::ALL);

        let observed = cloud.observe().await.expect("observe");
        assert_eq!(observed.core, 3);
        assert_eq!(calls(&metrics, action::OBSERVE, OK), Some(1.0));

        let submitted = cloud
            .scale_out(&request(NodeGroup::Task, 2, "t-1"))
            .await
            .expect("scale out");
        assert_eq!(calls(&metrics, action::SCALE_OUT, OK), Some(1.0));
        assert_eq!(model.writes().len(), 1, "the call reached the cloud");

        // The cluster is busy with that operation: the next write is refused.
        let busy = cloud
            .scale_in(&request(NodeGroup::Task, 1, "t-2"))
            .await
            .expect_err("busy");
        assert_eq!(busy.class, ErrorClass::Busy);
        assert_eq!(calls(&metrics, action::SCALE_IN, "Busy"), Some(1.0));

        // An injected failure is recorded with its class.
        model.fail_next(
            "observe",
            CloudError::new(
                ErrorClass::Throttled,
                "Describe",
                "RequestLimitExceeded",
                "slow down",
            ),
        );
        let throttled = cloud.observe().await.expect_err("throttled");
        assert_eq!(throttled.class, ErrorClass::Throttled);
        assert_eq!(calls(&metrics, action::OBSERVE, "Throttled"), Some(1.0));
        assert_eq!(calls(&metrics, action::OBSERVE, OK), Some(1.0));

        let op = OperationRecord::test()
            .id("t-1")
            .started_at(jiff::Timestamp::UNIX_EPOCH)
            .submitted(&Submitted {
                trace_id: None,
                node_ids: Vec::new(),
                ..submitted.clone()
            });
        let progress = cloud.operation_status(&op).await.expect("status");
        assert_eq!(progress, OperationProgress::Running);
        assert_eq!(calls(&metrics, action::OPERATION_STATUS, OK), Some(1.0));

        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                r#"clusterscale_cloud_call_duration_seconds_count{cloud="simulated",action="observe"}"#
            ),
            Some(2.0)
        );
    }
}
