//! The per-resource gauges, `clusterscale_nodes`, `clusterscale_condition`
//! and `clusterscale_last_observed_timestamp_seconds`,
//! kept as one small record per ScaledCluster and written out as series only
//! when scraped.
//!
//! A `Family` keeps one hash-map entry per series, each with its own copy of
//! every label value: at 10,000 resources, 40,000 node series and 30,000
//! condition series, about 20 MiB of the operator's peak (docs/benchmarks.md).
//! Here a resource is one record under its namespace (held once) and name:
//! its counts and conditions, with the fixed label values (`group`, `kind`,
//! `type`) as `&'static str` at encode time. The text is that of the two
//! families before (the same names, help, labels and values), in the order
//! of namespace, name, then Core, the default Task pool and the named pools.
//!
//! A scrape holds the read lock while it writes the two families (a few
//! milliseconds at 10,000 resources); an update waits for it.

use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use clusterscale_core::api::NodeGroup;

pub const NODES: &str = "clusterscale_nodes";
pub const NODES_HELP: &str = "Node count per resource and group; kind is desired or observed";
pub const CONDITION: &str = "clusterscale_condition";
pub const LAST_OBSERVED: &str = "clusterscale_last_observed_timestamp_seconds";
pub const LAST_OBSERVED_HELP: &str =
    "Unix time of the ScaledCluster's last successful observation of its cloud cluster";
pub const PAUSED: &str = "clusterscale_paused";
pub const PAUSED_HELP: &str =
    "1 while the ScaledCluster is held by its spec (paused or dryRun: Ready is False by choice); no series otherwise";
pub const CONDITION_HELP: &str =
    "1 while the ScaledCluster's condition (Ready, Progressing, Degraded, ClusterHealthy) is True, else 0";

/// The condition types a ScaledCluster reports, each with a slot in
/// [`Resource::conditions`]; any other type lives in [`Resource::other_conditions`].
pub const CONDITION_TYPES: [&str; 4] = ["Ready", "Progressing", "Degraded", "ClusterHealthy"];

/// Desired and observed nodes of one group or pool; `None`: no series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: Option<i32>,
    pub observed: Option<i32>,
}

/// Everything exported about one resource.
#[derive(Debug, Default)]
pub struct Resource {
    /// Core and the default Task pool, by [`group_index`].
    pub groups: [Counts; 2],
    /// The named pools (`spec.taskPools`), by name.
    pub pools: BTreeMap<Box<str>, Counts>,
    /// By the index of [`CONDITION_TYPES`]: `Some(true)` while True.
    pub conditions: [Option<bool>; 4],
    /// Condition types outside [`CONDITION_TYPES`], in order of arrival
    /// (none today: no allocation).
    pub other_conditions: Vec<(Box<str>, bool)>,
    /// Unix seconds of the last successful observation of the cloud cluster
    /// (`status.observed.at`).
    pub last_observed: Option<i64>,
    /// The user holds it (`spec.paused` or `spec.dryRun`: phase Paused):
    /// a series only while true.
    pub paused: bool,
}

pub fn group_index(group: NodeGroup) -> usize {
    match group {
        NodeGroup::Core => 0,
        NodeGroup::Task => 1,
    }
}

const GROUPS: [NodeGroup; 2] = [NodeGroup::Core, NodeGroup::Task];

/// The value under `key`, inserted if missing; the key is allocated only then.
fn get_or_insert<'m, V: Default>(map: &'m mut BTreeMap<Box<str>, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.into(), V::default());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("{key} was inserted above"))
}

/// namespace -> name -> record.
type Records = BTreeMap<Box<str>, BTreeMap<Box<str>, Resource>>;

/// The records, shared by [`super::Metrics`] (which writes them) and the
/// registry (which encodes them on a scrape).
#[derive(Debug, Default)]
pub struct ResourceGauges {
    records: RwLock<Records>,
}

impl ResourceGauges {
    fn read(&self) -> RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Change the record of `namespace`/`name`, creating it if needed.
    pub fn update<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Resource) -> T) -> T {
        let mut records = self.write();
        f(get_or_insert(get_or_insert(&mut records, namespace), name))
    }

    /// Change the record of `namespace`/`name` if there is one.
    pub fn update_existing(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Resource)) {
        if let Some(r) = self
            .write()
            .get_mut(namespace)
            .and_then(|names| names.get_mut(name))
        {
            f(r);
        }
    }

    /// Drop every record.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Drop the record of `namespace`/`name` (every series of the resource).
    pub fn remove(&self, namespace: &str, name: &str) {
        let mut records = self.write();
        if let Some(names) = records.get_mut(namespace) {
            names.remove(name);
            if names.is_empty() {
                records.remove(namespace);
            }
        }
    }
}

/// The labels of one `clusterscale_nodes` series, borrowed from the record.
struct NodeSeries<'a> {
    namespace: &'a str,
    name: &'a str,
    group: NodeGroup,
    /// A named pool; no label at all for Core and the default Task pool.
    pool: Option<&'a str>,
    kind: &'static str,
}

impl EncodeLabelSet for NodeSeries<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let pool = self.pool.map(|p| ("pool", p));
        let labels = [
            Some(("namespace", self.namespace)),
            Some(("name", self.name)),
            Some(("group", self.group.as_str())),
            pool,
            Some(("kind", self.kind)),
        ];
        for label in labels.iter().flatten() {
            label.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// The desired and observed series of one group or pool, those that exist.
fn node_series<'a>(
    (namespace, name): (&'a str, &'a str),
    group: NodeGroup,
    pool: Option<&'a str>,
    counts: &Counts,
) -> impl Iterator<Item = (NodeSeries<'a>, i32)> + 'a {
    let kinds = [("desired", counts.desired), ("observed", counts.observed)];
    kinds.into_iter().filter_map(move |(kind, value)| {
        let labels = NodeSeries {
            namespace,
            name,
            group,
            pool,
            kind,
        };
        Some((labels, value?))
    })
}

fn encode_gauge(
    encoder: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_family(labels)?)
}

impl Collector for ResourceGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let records = self.read();
        let resources = || {
            records.iter().flat_map(|(namespace, names)| {
                names
                    .iter()
                    .map(move |(name, r)| (&**namespace, &**name, r))
            })
        };
        // As a Family: no descriptor for a family without series. The
        // registry appends a full stop to the help of what it registers.
        let has_nodes = resources().any(|(_, _, r)| {
            r.groups
                .iter()
                .chain(r.pools.values())
                .any(|c| c.desired.is_some() || c.observed.is_some())
        });
        if has_nodes {
            let help = format!("{NODES_HELP}.");
            let mut family = encoder.encode_descriptor(NODES, &help, None, MetricType::Gauge)?;
            for (namespace, name, r) in resources() {
                for (group, counts) in GROUPS.iter().zip(&r.groups) {
                    for (labels, v) in node_series((namespace, name), *group, None, counts) {
                        encode_gauge(&mut family, &labels, i64::from(v))?;
                    }
                }
                for (pool, counts) in &r.pools {
                    let series =
                        node_series((namespace, name), NodeGroup::Task, Some(pool), counts);
                    for (labels, v) in series {
                        encode_gauge(&mut family, &labels, i64::from(v))?;
                    }
                }
            }
        }
        let has_conditions = resources().any(|(_, _, r)| {
            r.conditions.iter().any(Option::is_some) || !r.other_conditions.is_empty()
        });
        if has_conditions {
            let help = format!("{CONDITION_HELP}.");
            let mut family =
                encoder.encode_descriptor(CONDITION, &help, None, MetricType::Gauge)?;
            for (namespace, name, r) in resources() {
                let known = CONDITION_TYPES
                    .iter()
                    .zip(&r.conditions)
                    .filter_map(|(t, s)| Some((*t, (*s)?)));
                let other = r.other_conditions.iter().map(|(t, s)| (&**t, *s));
                for (type_, status) in known.chain(other) {
                    let labels = [("namespace", namespace), ("name", name), ("type", type_)];
                    encode_gauge(&mut family, &labels, i64::from(status))?;
                }
            }
        }
        if resources().any(|(_, _, r)| r.paused) {
            let help = format!("{PAUSED_HELP}.");
            let mut family = encoder.encode_descriptor(PAUSED, &help, None, MetricType::Gauge)?;
            for (namespace, name, _) in resources().filter(|(_, _, r)| r.paused) {
                let labels = [("namespace", namespace), ("name", name)];
                encode_gauge(&mut family, &labels, 1)?;
            }
        }
        if resources().any(|(_, _, r)| r.last_observed.is_some()) {
            // The unit is in the name already; a `# UNIT` line would make
            // the registry append it again.
            let help = format!("{LAST_OBSERVED_HELP}.");
            let mut family =
                encoder.encode_descriptor(LAST_OBSERVED, &help, None, MetricType::Gauge)?;
            for (namespace, name, r) in resources() {
                if let Some(at) = r.last_observed {
                    let labels = [("namespace", namespace), ("name", name)];
                    encode_gauge(&mut family, &labels, at)?;
                }
            }
        }
        Ok(())
    }
}
