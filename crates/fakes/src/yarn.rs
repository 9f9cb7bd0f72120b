//! A fake YARN ResourceManager REST endpoint whose load follows a
//! [`SimModel`]: one NodeManager per Core or Task node of the simulated
//! cluster, and a memory demand set by the test.
//!
//! It is what an autoscaler that reads YARN (KEDA's `metrics-api` scaler
//! against `GET /ws/v1/cluster/metrics`, for one) is tested against: a
//! scale-out of the cluster the fake cloud serves adds NodeManagers here, and
//! the demand that did not fit is then allocated.
//!
//! Routes:
//! - `GET /ws/v1/cluster/metrics`: `{"clusterMetrics": {...}}`, the
//!   ResourceManager's "Cluster Metrics API". The field names and types are
//!   those of the class the ResourceManager serializes,
//!   `org.apache.hadoop.yarn.server.resourcemanager.webapp.dao.ClusterMetricsInfo`
//!   (hadoop-yarn-server-resourcemanager), checked against the "Cluster
//!   Metrics API" section of the ResourceManager REST API documentation,
//!   whose table lists a subset of them (it leaves out `pendingMB`,
//!   `pendingVirtualCores`, `decommissioningNodes` and `shutdownNodes`, which
//!   Hadoop 3.x serves). The class's cross-partition fields
//!   (`totalUsedResourcesAcrossPartition`, ...) and the fields only newer
//!   releases add are left out: nothing reads them, and a client must
//!   tolerate their absence anyway, since older ResourceManagers lack them.
//!   Answers are JSON, whether the request has no `Accept` header or
//!   `Accept: application/json`; XML, which the real endpoint also serves,
//!   is not: a request accepting only XML is answered 406.
//! - `GET /_fake/yarn/demand`: the demand and what it is served over
//!   ([`DemandState`]); `PUT /_fake/yarn/demand` (`{"memoryMB": N}`, a
//!   whole number at least 0) sets the demand; any other body is answered
//!   400 with `{"error": "..."}` saying what is wrong. Unauthenticated, under
//!   the `/_fake/` prefix like every fake's control routes.
//!
//! The model ([`YarnConfig`]): each node of the cluster (Core nodes run
//! NodeManagers too on EMR and MRS) offers `node_mb` MB and `node_vcores`
//! vcores. Over `n` nodes and a demand of `d` MB:
//! - `totalMB = n × node_mb`, `totalNodes = activeNodes = n`;
//! - `allocatedMB = min(d, totalMB)`, `pendingMB = d − allocatedMB`,
//!   `availableMB = totalMB − allocatedMB`, `reservedMB = 0`;
//! - vcores alike, a number of MB needing vcores at the nodes' own ratio
//!   (`⌈MB × node_vcores / node_mb⌉`, at most the total for the allocated);
//! - `containersAllocated = ⌊allocatedMB / container_mb⌋`,
//!   `containersPending = ⌈pendingMB / container_mb⌉`;
//! - `appsRunning = 1` while `d > 0`, `appsPending = 1` while
//!   `pendingMB > 0`, `appsSubmitted` their sum; the fake keeps no history,
//!   so `appsCompleted`, `appsFailed` and `appsKilled` are 0.
//!
//! So a scale-out of Task nodes visibly relieves `pendingMB`, while
//! `(allocatedMB + pendingMB) / node_mb` (the demand in nodes) stays where
//! it is: that is the signal to scale on. `pendingMB` alone, or
//! `allocatedMB / totalMB`, moves with the cluster's size and makes an
//! autoscaler flap (it falls as soon as the nodes it asked for arrive); the
//! demand in nodes does not, and the nodes the Task group needs are that
//! minus the Core count.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use clusterscale_sim::SimModel;

/// The largest demand the control route accepts, in MB (1 EiB): far beyond
/// any cluster (500 nodes), and small enough that no arithmetic overflows.
pub const MAX_DEMAND_MB: u64 = 1 << 40;

/// The fake's NodeManagers and containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YarnConfig {
    /// Memory each NodeManager offers, in MB
    /// (`yarn.nodemanager.resource.memory-mb`).
    pub node_mb: u64,
    /// Vcores each NodeManager offers (`yarn.nodemanager.resource.cpu-vcores`).
    pub node_vcores: u64,
    /// The size of one container, in MB, to count containers by.
    pub container_mb: u64,
}

impl Default for YarnConfig {
    fn default() -> Self {
        Self {
            node_mb: 65536,
            node_vcores: 16,
            container_mb: 4096,
        }
    }
}

impl YarnConfig {
    /// An error naming the setting that cannot be used: every size must be
    /// above 0 (they divide), and a container must fit on a node.
    pub fn check(&self) -> Result<(), String> {
        if self.node_mb == 0 || self.node_vcores == 0 || self.container_mb == 0 {
            return Err(format!(
                "node memory ({} MB), node vcores ({}) and container memory ({} MB) must each be above 0",
                self.node_mb, self.node_vcores, self.container_mb
            ));
        }
        if self.container_mb > self.node_mb {
            return Err(format!(
                "a container ({} MB) must fit on a node ({} MB)",
                self.container_mb, self.node_mb
            ));
        }
        if self.node_mb > MAX_DEMAND_MB || self.node_vcores > MAX_DEMAND_MB {
            return Err(format!(
                "node memory and vcores must be at most {MAX_DEMAND_MB}"
            ));
        }
        Ok(())
    }
}

/// `clusterMetrics`: the fields of Hadoop's `ClusterMetricsInfo`, in its order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMetrics {
    pub apps_submitted: i32,
    pub apps_completed: i32,
    pub apps_pending: i32,
    pub apps_running: i32,
    pub apps_failed: i32,
    pub apps_killed: i32,
    #[serde(rename = "reservedMB")]
    pub reserved_mb: i64,
    #[serde(rename = "availableMB")]
    pub available_mb: i64,
    #[serde(rename = "allocatedMB")]
    pub allocated_mb: i64,
    #[serde(rename = "pendingMB")]
    pub pending_mb: i64,
    pub reserved_virtual_cores: i64,
    pub available_virtual_cores: i64,
    pub allocated_virtual_cores: i64,
    pub pending_virtual_cores: i64,
    pub containers_allocated: i32,
    pub containers_reserved: i32,
    pub containers_pending: i32,
    #[serde(rename = "totalMB")]
    pub total_mb: i64,
    pub total_virtual_cores: i64,
    pub total_nodes: i32,
    pub lost_nodes: i32,
    pub unhealthy_nodes: i32,
    pub decommissioning_nodes: i32,
    pub decommissioned_nodes: i32,
    pub rebooted_nodes: i32,
    pub active_nodes: i32,
    pub shutdown_nodes: i32,
}

/// The wire answer: `{"clusterMetrics": {...}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricsAnswer {
    cluster_metrics: ClusterMetrics,
}

/// `GET /_fake/yarn/demand`: the demand, and what it is served over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemandState {
    /// The demand, in MB.
    #[serde(rename = "memoryMB")]
    pub memory_mb: u64,
    /// The demand in vcores, at the nodes' MB/vcore ratio.
    pub virtual_cores: u64,
    /// The cluster (model) whose nodes are the NodeManagers.
    pub cluster: String,
    /// Its nodes now (Core and Task, Task pools included).
    pub nodes: u64,
    #[serde(rename = "nodeMB")]
    pub node_mb: u64,
    pub node_vcores: u64,
    #[serde(rename = "containerMB")]
    pub container_mb: u64,
}

/// The fake ResourceManager. Cheap to clone: clones share the demand.
#[derive(Clone)]
pub struct YarnFake {
    model: Arc<SimModel>,
    config: YarnConfig,
    demand_mb: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for YarnFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YarnFake")
            .field("cluster", &self.model.id())
            .field("config", &self.config)
            .field("demand_mb", &self.demand_mb())
            .finish()
    }
}

impl YarnFake {
    /// A ResourceManager over the nodes of `model`, with no demand. Fails
    /// when `config` cannot be used ([`YarnConfig::check`]).
    pub fn new(model: Arc<SimModel>, config: YarnConfig) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            model,
            config,
            demand_mb: Arc::new(Mutex::new(0)),
        })
    }

    pub fn config(&self) -> &YarnConfig {
        &self.config
    }

    /// The cluster whose nodes are the NodeManagers.
    pub fn model(&self) -> &Arc<SimModel> {
        &self.model
    }

    pub fn demand_mb(&self) -> u64 {
        *self.lock()
    }

    /// Set the demand (what `PUT /_fake/yarn/demand` does), at most
    /// [`MAX_DEMAND_MB`].
    pub fn set_demand_mb(&self, mb: u64) -> Result<(), String> {
        if mb > MAX_DEMAND_MB {
            return Err(format!("memoryMB {mb} is above the most, {MAX_DEMAND_MB}"));
        }
        *self.lock() = mb;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        self.demand_mb.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The NodeManagers: every node of the model (Core, Task, Task pools),
    /// as of now on the model's clock (a finished operation's nodes count).
    pub fn nodes(&self) -> u64 {
        let mut n = self.model.nodes().len();
        for pool in self.model.pools() {
            n += self.model.pool_nodes(&pool).len();
        }
        n as u64
    }

    /// Vcores for `mb` MB, at the nodes' ratio, rounded up.
    fn vcores_for(&self, mb: u64) -> u64 {
        // Both factors are at most 2^40 (MAX_DEMAND_MB, YarnConfig::check):
        // the product fits in u128 by far.
        (u128::from(mb) * u128::from(self.config.node_vcores))
            .div_ceil(u128::from(self.config.node_mb)) as u64
    }

    /// The cluster metrics now.
    pub fn metrics(&self) -> ClusterMetrics {
        let demand = self.demand_mb();
        let nodes = self.nodes();
        let c = &self.config;
        let total_mb = nodes * c.node_mb;
        let total_vcores = nodes * c.node_vcores;
        let allocated_mb = demand.min(total_mb);
        let pending_mb = demand - allocated_mb;
        let allocated_vcores = self.vcores_for(allocated_mb).min(total_vcores);
        let pending_vcores = self.vcores_for(demand).saturating_sub(allocated_vcores);
        let apps_running = i32::from(demand > 0);
        let apps_pending = i32::from(pending_mb > 0);
        let int = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let long = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        ClusterMetrics {
            apps_submitted: apps_running + apps_pending,
            apps_completed: 0,
            apps_pending,
            apps_running,
            apps_failed: 0,
            apps_killed: 0,
            reserved_mb: 0,
            available_mb: long(total_mb - allocated_mb),
            allocated_mb: long(allocated_mb),
            pending_mb: long(pending_mb),
            reserved_virtual_cores: 0,
            available_virtual_cores: long(total_vcores - allocated_vcores),
            allocated_virtual_cores: long(allocated_vcores),
            pending_virtual_cores: long(pending_vcores),
            containers_allocated: int(allocated_mb / c.container_mb),
            containers_reserved: 0,
            containers_pending: int(pending_mb.div_ceil(c.container_mb)),
            total_mb: long(total_mb),
            total_virtual_cores: long(total_vcores),
            total_nodes: int(nodes),
            lost_nodes: 0,
            unhealthy_nodes: 0,
            decommissioning_nodes: 0,
            decommissioned_nodes: 0,
            rebooted_nodes: 0,
            active_nodes: int(nodes),
            shutdown_nodes: 0,
        }
    }

    /// What `GET /_fake/yarn/demand` answers.
    pub fn demand(&self) -> DemandState {
        let memory_mb = self.demand_mb();
        DemandState {
            memory_mb,
            virtual_cores: self.vcores_for(memory_mb),
            cluster: self.model.id().to_string(),
            nodes: self.nodes(),
            node_mb: self.config.node_mb,
            node_vcores: self.config.node_vcores,
            container_mb: self.config.container_mb,
        }
    }

    /// The HTTP routes: the metrics, and the demand's control route.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/ws/v1/cluster/metrics", get(metrics))
            .route("/_fake/yarn/demand", get(get_demand).put(put_demand))
            .with_state(self.clone())
    }

    /// Serve on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

/// Whether an `Accept` header admits JSON: absent, empty, `*/*`,
/// `application/*` or `application/json` (parameters and q-values ignored,
/// except `q=0`, which refuses).
fn accepts_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.iter().all(|v| v.trim().is_empty()) {
        return true;
    }
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused && matches!(media.as_str(), "*/*" | "application/*" | "application/json")
    })
}

async fn metrics(State(fake): State<YarnFake>, headers: HeaderMap) -> Response {
    if !accepts_json(&headers) {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::debug!(
            accept,
            "fake ResourceManager: refused a request that does not accept JSON"
        );
        return error(
            StatusCode::NOT_ACCEPTABLE,
            format!("this fake ResourceManager answers application/json only, and the request accepts {accept:?}"),
        );
    }
    let m = fake.metrics();
    tracing::debug!(
        cluster = fake.model.id(),
        nodes = m.total_nodes,
        total_mb = m.total_mb,
        allocated_mb = m.allocated_mb,
        pending_mb = m.pending_mb,
        "fake ResourceManager: cluster metrics"
    );
    Json(MetricsAnswer { cluster_metrics: m }).into_response()
}

async fn get_demand(State(fake): State<YarnFake>) -> Json<DemandState> {
    Json(fake.demand())
}

async fn put_demand(State(fake): State<YarnFake>, body: axum::body::Bytes) -> Response {
    let mb = match parse_demand(&body) {
        Ok(mb) => mb,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if let Err(e) = fake.set_demand_mb(mb) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    tracing::debug!(
        cluster = fake.model.id(),
        memory_mb = mb,
        "fake ResourceManager: demand set"
    );
    Json(fake.demand()).into_response()
}

/// The demand of a `PUT /_fake/yarn/demand` body: a JSON object with one
/// field, `memoryMB`, a whole number at least 0; else what is wrong.
fn parse_demand(body: &[u8]) -> Result<u64, String> {
    use serde_json::Value;
    const SHAPE: &str = r#"expected {"memoryMB": N}, N a whole number of MB at least 0"#;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e}); {SHAPE}"))?;
    let Value::Object(map) = value else {
        return Err(format!("the body is not a JSON object; {SHAPE}"));
    };
    if let Some(other) = map.keys().find(|k| *k != "memoryMB") {
        return Err(format!("unknown field {other:?}; {SHAPE}"));
    }
    match map.get("memoryMB") {
        None => Err(format!("memoryMB is missing; {SHAPE}")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("memoryMB is {v}, not a whole number at least 0; {SHAPE}")),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::clock::SystemClock;
    use clusterscale_sim::SimConfig;

    fn fake(core: i32, task: i32) -> YarnFake {
        let model = SimModel::new(
            "c",
            SimConfig {
                initial_core: core,
                initial_task: task,
                ..SimConfig::default()
            },
            Arc::new(SystemClock),
        );
        YarnFake::new(Arc::new(model), YarnConfig::default()).unwrap()
    }

    #[test]
    fn demand_bodies_are_checked() {
        assert_eq!(parse_demand(br#"{"memoryMB": 0}"#), Ok(0));
        assert_eq!(parse_demand(br#"{"memoryMB": 131072}"#), Ok(131072));
        for (body, says) in [
            (&br#"{"memoryMB": -1}"#[..], "memoryMB is -1"),
            (br#"{"memoryMB": 1.5}"#, "memoryMB is 1.5"),
            (br#"{"memoryMB": "8"}"#, "not a whole number"),
            (br#"{}"#, "memoryMB is missing"),
            (br#"{"memoryMb": 8}"#, "unknown field \"memoryMb\""),
            (br#"[8]"#, "not a JSON object"),
            (b"memoryMB=8", "not JSON"),
        ] {
            let e = parse_demand(body).unwrap_err();
            assert!(e.contains(says), "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn metrics_follow_demand_and_nodes() {
        let f = fake(3, 0);
        let m = f.metrics();
        assert_eq!((m.total_nodes, m.active_nodes), (3, 3));
        assert_eq!((m.total_mb, m.total_virtual_cores), (3 * 65536, 48));
        assert_eq!((m.apps_running, m.apps_pending, m.allocated_mb), (0, 0, 0));
        // 4.5 nodes' worth on 3 nodes.
        f.set_demand_mb(4 * 65536 + 32768).unwrap();
        let m = f.metrics();
        assert_eq!(m.allocated_mb, 3 * 65536);
        assert_eq!(m.pending_mb, 65536 + 32768);
        assert_eq!(m.available_mb, 0);
        assert_eq!(
            (m.allocated_virtual_cores, m.pending_virtual_cores),
            (48, 24)
        );
        assert_eq!((m.containers_allocated, m.containers_pending), (48, 24));
        assert_eq!(
            (m.apps_running, m.apps_pending, m.apps_submitted),
            (1, 1, 2)
        );
        // A container's worth and a bit: containers round the pending up.
        f.set_demand_mb(3 * 65536 + 1).unwrap();
        assert_eq!(f.metrics().containers_pending, 1);
        assert!(f.set_demand_mb(MAX_DEMAND_MB + 1).is_err());
    }

    #[test]
    fn accept_headers() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            accepts_json(&h)
        };
        assert!(accepts_json(&HeaderMap::new()));
        for ok in [
            "application/json",
            "*/*",
            "application/xml, application/json;q=0.5",
            "Application/JSON; charset=utf-8",
        ] {
            assert!(with(ok), "{ok}");
        }
        for refused in ["application/xml", "text/html", "application/json;q=0"] {
            assert!(!with(refused), "{refused}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let bad = |c: YarnConfig| YarnConfig::check(&c).unwrap_err();
        assert!(bad(YarnConfig {
            node_mb: 0,
            ..YarnConfig::default()
        })
        .contains("above 0"));
        assert!(bad(YarnConfig {
            container_mb: 131072,
            ..YarnConfig::default()
        })
        .contains("must fit on a node"));
        assert!(YarnConfig::default().check().is_ok());
    }
}
