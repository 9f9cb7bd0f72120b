//! Logging: `tracing` events to stderr, as JSON lines (for log pipelines) or
//! human-readable text.
//!
//! The filter comes from `RUST_LOG` (e.g. `RUST_LOG=clusterscale=debug,info`)
//! and defaults to [`DEFAULT_FILTER`].
//!
//! A JSON line is tracing-subscriber's stock JSON format: the event's fields,
//! the innermost span (`span`) and every enclosing span from the root
//! (`spans`), each with its fields and its name under `name`. So every event
//! logged inside a `reconcile` span shows the resource's namespace and name:
//!
//! ```text
//! {"timestamp":"2025-01-01T00:00:00.000000Z","level":"INFO",
//!  "fields":{"message":"scaled out","count":2},"target":"clusterscale_engine",
//!  "span":{"namespace":"ops","scaledcluster":"emr-a","name":"reconcile"},
//!  "spans":[{"namespace":"ops","scaledcluster":"emr-a","name":"reconcile"}]}
//! ```
//!
//! The span's resource field is `scaledcluster`, not `name`: the stock format
//! keeps the span's own name under `name`, and a field of that name would give
//! the object two `name` keys.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Registry};

/// Filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info,kube=warn,tower=warn,hyper=warn";

/// Format of the log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with span fields.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// The filter from `RUST_LOG`, or [`DEFAULT_FILTER`] when it is unset, empty
/// or invalid (the error is returned so that it can be logged once logging
/// works).
pub fn env_filter() -> (EnvFilter, Option<String>) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!("ignoring invalid RUST_LOG {spec:?}: {e}")),
            ),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    }
}

/// Installs the global subscriber. Returns false (and changes nothing) when
/// one is already installed, so calling it twice is harmless.
pub fn init(format: LogFormat) -> bool {
    let (filter, warning) = env_filter();
    let installed = install(format, filter);
    if installed {
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
    }
    installed
}

/// Installs the global subscriber with `filter`, unless one is installed.
fn install(format: LogFormat, filter: EnvFilter) -> bool {
    match format {
        LogFormat::Json => Registry::default()
            .with(filter)
            .with(json_layer(std::io::stderr))
            .try_init()
            .is_ok(),
        LogFormat::Text => Registry::default()
            .with(filter)
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(true),
            )
            .try_init()
            .is_ok(),
    }
}

/// The JSON formatting layer (the stock one, with the span list), writing to `writer`.
fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps everything written, for inspection.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_carry_the_reconcile_span_fields() {
        let out = Captured::default();
        let subscriber = Registry::default()
            .with(EnvFilter::new("info"))
            .with(json_layer(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", namespace = "ops", scaledcluster = "emr-a");
            let _entered = span.enter();
            tracing::info!(core = 3, "observed");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(out.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "observed");
        assert_eq!(line["fields"]["core"], 3);
        assert_eq!(line["target"], "clusterscale::telemetry::tests");
        assert_eq!(line["span"]["namespace"], "ops");
        assert_eq!(line["span"]["scaledcluster"], "emr-a");
        assert_eq!(line["span"]["name"], "reconcile");
        assert_eq!(line["spans"][0], line["span"]);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn nested_spans_are_listed_from_the_root_and_fields_keep_their_types() {
        let out = Captured::default();
        let subscriber = Registry::default()
            .with(EnvFilter::new("info"))
            .with(json_layer(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer =
                tracing::info_span!("reconcile", namespace = "ops", scaledcluster = "emr-a");
            let _outer = outer.enter();
            let inner = tracing::info_span!(
                "cloud_call",
                action = "observe",
                attempt = tracing::field::Empty
            );
            inner.record("attempt", 2);
            let _inner = inner.enter();
            let err = std::io::Error::other("boom");
            tracing::warn!(ok = false, ratio = 0.5, count = 7u64, delta = -3, error = &err as &dyn std::error::Error, who = ?"pod-a", "failed");
        });
        let text = String::from_utf8(out.0.lock().expect("buffer").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(line["level"], "WARN");
        let f = &line["fields"];
        assert_eq!(f["message"], "failed");
        assert_eq!(f["ok"], false);
        assert_eq!(f["ratio"], 0.5);
        assert_eq!(f["count"], 7);
        assert_eq!(f["delta"], -3);
        assert_eq!(f["error"], "boom");
        assert_eq!(f["who"], "\"pod-a\"");
        assert_eq!(line["span"]["name"], "cloud_call");
        assert_eq!(line["span"]["action"], "observe");
        assert_eq!(line["span"]["attempt"], 2);
        assert_eq!(line["spans"][0]["name"], "reconcile");
        assert_eq!(line["spans"][0]["scaledcluster"], "emr-a");
        assert_eq!(line["spans"][1]["name"], "cloud_call");
    }

    #[test]
    fn events_outside_spans_have_no_span_keys() {
        let out = Captured::default();
        let subscriber = Registry::default()
            .with(EnvFilter::new("info"))
            .with(json_layer(out.clone()));
        tracing::subscriber::with_default(subscriber, || tracing::info!("starting"));
        let text = String::from_utf8(out.0.lock().expect("buffer").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(line["fields"]["message"], "starting");
        assert!(
            line.get("span").is_none() && line.get("spans").is_none(),
            "{line}"
        );
    }

    #[test]
    fn installing_twice_does_not_panic() {
        // The filter is "off" so that the other tests' events stay quiet.
        let first = install(LogFormat::Text, EnvFilter::new("off"));
        let second = install(LogFormat::Json, EnvFilter::new("off"));
        // Another test may have installed one first; the second call never
        // replaces it, whatever the first did.
        let _ = first;
        assert!(
            !second,
            "the second call leaves the first subscriber in place"
        );
    }

    #[test]
    fn default_filter_parses() {
        assert!(EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }

    #[test]
    fn log_format_parses_from_the_command_line() {
        use clap::ValueEnum;
        assert_eq!(LogFormat::from_str("json", true), Ok(LogFormat::Json));
        assert_eq!(LogFormat::from_str("text", true), Ok(LogFormat::Text));
        assert!(LogFormat::from_str("xml", true).is_err());
    }
}
