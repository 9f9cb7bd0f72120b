//! The standard process metrics (the names and meanings of the Go and Java
//! clients' process collectors, which dashboards and alerts expect):
//!
//! | metric | type |
//! | --- | --- |
//! | `process_cpu_seconds_total` | counter |
//! | `process_resident_memory_bytes` | gauge |
//! | `process_virtual_memory_bytes` | gauge |
//! | `process_open_fds` | gauge |
//! | `process_max_fds` | gauge |
//! | `process_threads` | gauge |
//! | `process_start_time_seconds` | gauge |
//!
//! Read from `/proc/self` at each scrape (the `procfs` crate); on a system
//! without it, or when a read fails, the metric is left out of that scrape
//! rather than reported as 0.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One reading of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub threads: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// This process, now.
#[cfg(target_os = "linux")]
pub fn read() -> Reading {
    use procfs::process::{LimitValue, Process};
    let Ok(me) = Process::myself() else {
        return Reading::default();
    };
    let mut r = Reading::default();
    let ticks = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        r.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        r.resident_bytes = Some(stat.rss.saturating_mul(procfs::page_size()));
        r.virtual_bytes = Some(stat.vsize);
        r.threads = u64::try_from(stat.num_threads).ok();
        if let Ok(boot) = procfs::boot_time_secs() {
            r.start_time_seconds = Some(boot as f64 + stat.starttime as f64 / ticks);
        }
    }
    r.open_fds = me.fd_count().ok().and_then(|n| u64::try_from(n).ok());
    if let Ok(limits) = me.limits() {
        r.max_fds = match limits.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        };
    }
    r
}

/// Not Linux: no reading.
#[cfg(not(target_os = "linux"))]
pub fn read() -> Reading {
    Reading::default()
}

/// The collector the registry calls at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = value else { return Ok(()) };
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    let metric = ConstGauge::new(v);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = read();
        if let Some(cpu) = r.cpu_seconds {
            let metric = ConstCounter::new(cpu);
            // The counter's `_total` suffix is added by the encoder.
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                r.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                r.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                r.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                r.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                r.threads,
            ),
        ];
        for (name, help, value) in gauges {
            gauge(&mut encoder, name, help, value)?;
        }
        if let Some(start) = r.start_time_seconds {
            let metric = ConstGauge::<f64>::new(start);
            metric.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read() {
        let r = read();
        assert!(r.cpu_seconds.is_some_and(|c| c >= 0.0), "{r:?}");
        assert!(r.resident_bytes.is_some_and(|b| b > 1 << 20), "{r:?}");
        assert!(r.virtual_bytes >= r.resident_bytes, "{r:?}");
        assert!(r.open_fds.is_some_and(|n| n >= 3), "{r:?}");
        assert!(r.max_fds >= r.open_fds, "{r:?}");
        assert!(r.threads.is_some_and(|n| n >= 1), "{r:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let start = r.start_time_seconds.expect("start time");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
