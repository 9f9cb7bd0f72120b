//! The admin HTTP server: `/metrics`, `/healthz` and `/readyz` (and `/livez`).
//!
//! * `/metrics`: every metric in the OpenMetrics text format.
//! * `/healthz`: 200 as long as the process serves HTTP.
//! * `/livez` (`super::liveness`, merged in by `run` on the probes' listener):
//!   the liveness probe, 200 unless this replica leads and has made no
//!   progress for `--livez-stall-seconds` while there is work.
//! * `/readyz`: 200 once the readiness flag is set, 503 before (and after it
//!   is cleared again). The controller sets the flag once its watch caches
//!   have synced, whether or not it leads: a follower is a warm standby and
//!   Ready, so a rolling update of a two-replica Deployment can finish while
//!   the old leader lives. Leadership shows in the `clusterscale_leader`
//!   gauge, not in readiness.
//!
//! Metrics and probes may be served on one listener ([`serve`]) or on two
//! (`--metrics-addr`, `--health-addr`), each with its own [`router`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::metrics::{Metrics, CONTENT_TYPE};

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the
/// process ends or the listener fails.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(Some(metrics), Some(ready))).await
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting connections and lets in-flight requests finish.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The admin routes: `/healthz` always, `/metrics` when `metrics` is given,
/// `/readyz` when `ready` is given. Anything else is 404.
pub fn router(metrics: Option<Metrics>, ready: Option<Arc<AtomicBool>>) -> Router {
    let mut app = Router::new().route("/healthz", get(healthz));
    if let Some(metrics) = metrics {
        app = app.merge(
            Router::new()
                .route("/metrics", get(metrics_handler))
                .with_state(metrics),
        );
    }
    if let Some(ready) = ready {
        app = app.merge(
            Router::new()
                .route("/readyz", get(readyz))
                .with_state(ready),
        );
    }
    app
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> Response {
    if ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics_handler(State(metrics): State<Metrics>, headers: HeaderMap) -> Response {
    let gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_gzip);
    let headers = [
        (header::CONTENT_TYPE, CONTENT_TYPE),
        (header::VARY, "accept-encoding"),
    ];
    if gzip {
        let encoding = [(header::CONTENT_ENCODING, "gzip")];
        (StatusCode::OK, headers, encoding, metrics.encode_gzip()).into_response()
    } else {
        (StatusCode::OK, headers, metrics.encode()).into_response()
    }
}

/// Whether an `Accept-Encoding` value takes gzip: a `gzip` coding (or `*`)
/// without `q=0` (RFC 9110, 12.5.3).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;
    use std::time::Duration;

    async fn start(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with_shutdown(listener, app, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("client")
    }

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, Option<String>, String) {
        let response = http()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, content_type, response.text().await.expect("body"))
    }

    #[tokio::test]
    async fn serve_answers_all_three_endpoints() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Metrics::new();
        metrics.set_leader(true);
        metrics.reconcile("ok", Duration::from_millis(5));
        let ready = Arc::new(AtomicBool::new(false));
        let server = tokio::spawn(serve(listener, metrics, ready.clone()));

        let (status, _, body) = get_text(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));

        let (status, _, body) = get_text(addr, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready\n"));
        ready.store(true, Ordering::Release);
        assert_eq!(get_text(addr, "/readyz").await.0, 200);
        ready.store(false, Ordering::Release);
        assert_eq!(get_text(addr, "/readyz").await.0, 503);

        let (status, content_type, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
        assert!(body.contains("clusterscale_leader 1"), "{body}");
        assert!(body.contains(r#"clusterscale_reconciles_total{outcome="ok"} 1"#));
        assert!(body.ends_with("# EOF\n"));

        assert_eq!(get_text(addr, "/nope").await.0, 404);
        let post = http()
            .post(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("request");
        assert_eq!(post.status().as_u16(), 405);
        server.abort();
    }

    /// Prometheus asks for gzip: the same text, compressed; a scraper that
    /// does not ask, or refuses it, gets the plain text.
    #[tokio::test]
    async fn metrics_are_gzipped_for_a_scraper_that_asks() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        let (addr, stop) = start(router(Some(metrics), None)).await;
        let get = |accept: &'static str| async move {
            let response = http()
                .get(format!("http://{addr}/metrics"))
                .header(reqwest::header::ACCEPT_ENCODING, accept)
                .send()
                .await
                .expect("request");
            let encoding = response
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (encoding, response.bytes().await.expect("body"))
        };
        for accept in ["gzip", "deflate, gzip;q=0.5", "*"] {
            let (encoding, body) = get(accept).await;
            assert_eq!(encoding.as_deref(), Some("gzip"), "{accept}");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
                .expect("a gzip stream");
            assert!(text.contains("clusterscale_leader 1"), "{text}");
            assert!(text.ends_with("# EOF\n"), "{text}");
        }
        for accept in ["identity", "gzip;q=0", "br"] {
            let (encoding, body) = get(accept).await;
            assert_eq!(encoding, None, "{accept}");
            assert!(body.ends_with(b"# EOF\n"), "{accept}");
        }
        let _ = stop.send(());
    }

    #[tokio::test]
    async fn metrics_and_probes_on_separate_listeners() {
        let ready = Arc::new(AtomicBool::new(true));
        let (metrics_addr, stop_metrics) = start(router(Some(Metrics::new()), None)).await;
        let (health_addr, stop_health) = start(router(None, Some(ready))).await;

        assert_eq!(get_text(metrics_addr, "/metrics").await.0, 200);
        assert_eq!(get_text(metrics_addr, "/healthz").await.0, 200);
        assert_eq!(get_text(metrics_addr, "/readyz").await.0, 404);

        assert_eq!(get_text(health_addr, "/readyz").await.0, 200);
        assert_eq!(get_text(health_addr, "/healthz").await.0, 200);
        assert_eq!(get_text(health_addr, "/metrics").await.0, 404);

        let _ = stop_metrics.send(());
        let _ = stop_health.send(());
    }

    #[tokio::test]
    async fn graceful_shutdown_stops_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with_shutdown(listener, router(None, None), async {
            let _ = stopped.await;
        }));
        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        let _ = stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stops in time")
            .expect("task");
        assert!(result.is_ok());
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}
