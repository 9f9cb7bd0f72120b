//! The Kubernetes client of `clusterscale run`, with bounded requests.
//!
//! What kube 5.0 does on its own (read in its source, not guessed):
//!
//! * `kube::Config` (kube-client-5.0.0/src/config/mod.rs): `connect_timeout`
//!   30 s, `write_timeout` 295 s, `read_timeout` **none**. The three are
//!   socket-level timeouts of `hyper_timeout::TimeoutConnector`
//!   (kube-client-5.0.0/src/client/builder.rs, `make_generic_builder`), so a
//!   read timeout would apply to every connection, watches included (no
//!   exemption): it would have to be longer than a watch's quiet time, and a
//!   pooled idle connection would count its idle time against it.
//! * So with the defaults a request whose connection went silent after it was
//!   sent (a half-open connection: a NAT or load balancer that dropped its
//!   state, a relay that stopped serving) waits for an answer **forever**.
//! * Watches (kube-runtime-5.0.0/src/watcher.rs): `watcher::Config::timeout`
//!   defaults to 290 s (sent as `timeoutSeconds`, kube-core-5.0.0/src/params.rs),
//!   and the watcher drops a stream that delivered nothing for that timeout
//!   plus 5 s (`WATCH_IDLE_TIMEOUT_MARGIN`, `next_with_idle_timeout`), then
//!   resumes from its last resourceVersion on a new request. That covers a
//!   silent watch *stream*, not the list or the watch *request* before its
//!   response starts, which go through the client above.
//!
//! What this adds ([`BoundedLayer`]): every request is bounded by
//! `--kube-request-timeout-seconds` (default [`REQUEST_TIMEOUT`]) until its
//! response headers, and a request that is not a watch also until its whole
//! body has arrived (it is buffered here; kube reads such a body whole
//! anyway). A watch's stream after its headers is left to the watcher's idle
//! timeout: `--watch-timeout-seconds` (default [`WATCH_TIMEOUT_SECONDS`], as
//! kube's), so a silent watch is dropped after 295 s. The apiserver sends a
//! watch's headers at once (and bookmarks about once a minute).
//!
//! A request that times out drops its connection (hyper never pools a
//! connection with a request in flight), so the retry goes out on a new one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kube::client::{Body, ClientBuilder, DynBody};
use kube::Client;
use tower::{BoxError, Layer, Service};

/// Default bound of one request that is not a watch, and of a watch request
/// until its response starts. The apiserver answers in milliseconds, and gives
/// up on a non-watch request itself after 60 s (its `--request-timeout`); a
/// request unanswered for 30 s is most likely on a dead connection, and a
/// retry on a new one is cheaper than waiting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default server-side timeout of a watch (`timeoutSeconds`), kube's own
/// default made explicit. The watcher gives up on a stream that was silent
/// for this plus 5 s.
pub const WATCH_TIMEOUT_SECONDS: u32 = 290;

/// kube-runtime 5.0's `WATCH_IDLE_TIMEOUT_MARGIN` (not public).
pub const WATCH_IDLE_MARGIN: Duration = Duration::from_secs(5);

/// How long a watch stream may be silent before the watcher drops it.
pub fn watch_idle_timeout(watch_timeout_seconds: u32) -> Duration {
    Duration::from_secs(u64::from(watch_timeout_seconds)) + WATCH_IDLE_MARGIN
}

/// A client from the environment (`KUBECONFIG`, in-cluster), as
/// `Client::try_default`, with every request bounded by `request_timeout`.
pub async fn bounded_client(request_timeout: Duration) -> Result<Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&BoundedLayer::new(request_timeout))
        .build())
}

/// Bounds each request (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct BoundedLayer {
    limit: Duration,
}

impl BoundedLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BoundedLayer {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BoundedLayer`].
#[derive(Clone, Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: Duration,
}

/// The error of a request that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("no complete answer from the Kubernetes API within {0:?}; the connection is dropped")]
pub struct RequestTimedOut(pub Duration);

/// Whether `request` is a watch (`?watch=true`, as kube-core writes it).
pub fn is_watch<B>(request: &Request<B>) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

type BoxedBody = Box<DynBody>;

impl<S> Service<Request<Body>> for Bounded<S>
where
    S: Service<Request<Body>, Response = Response<BoxedBody>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<BoxedBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let watch = is_watch(&request);
        let limit = self.limit;
        let response = self.inner.call(request);
        Box::pin(async move {
            let whole = async move {
                let response = response.await.map_err(Into::into)?;
                if watch {
                    return Ok::<_, BoxError>(response);
                }
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await?.to_bytes();
                let body: BoxedBody = Box::new(Full::new(bytes).map_err(|never| match never {}));
                Ok(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(limit, whole).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(RequestTimedOut(limit)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_apart_by_their_query() {
        let req = |uri: &str| Request::get(uri).body(()).expect("request");
        assert!(is_watch(&req(
            "/apis/clusterscale.io/v1alpha1/namespaces/a/scaledclusters?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=12"
        )));
        assert!(!is_watch(&req(
            "/apis/clusterscale.io/v1alpha1/namespaces/a/scaledclusters?&limit=500"
        )));
        assert!(!is_watch(&req("/api/v1/namespaces/a/secrets/watch-creds")));
        assert!(!is_watch(&req(
            "/api/v1/secrets?labelSelector=watch%3Dtrue"
        )));
    }

    #[test]
    fn the_idle_timeout_is_the_watch_timeout_plus_kubes_margin() {
        assert_eq!(
            watch_idle_timeout(WATCH_TIMEOUT_SECONDS),
            Duration::from_secs(295)
        );
    }

    /// A request that gets no answer fails after the limit, for watches too
    /// (no response headers); one answered in time passes, its body whole.
    #[tokio::test]
    async fn a_request_without_an_answer_times_out() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<BoxedBody>>();
        let mut bounded = BoundedLayer::new(Duration::from_millis(200)).layer(service);
        handle.allow(3);
        for uri in [
            "/api/v1/namespaces/a/secrets/s",
            "/api/v1/secrets?&watch=true",
        ] {
            std::future::poll_fn(|cx| bounded.poll_ready(cx))
                .await
                .expect("ready");
            let call = bounded.call(Request::get(uri).body(Body::empty()).expect("request"));
            let (_request, _send) = handle.next_request().await.expect("the request");
            let Err(error) = call.await else {
                panic!("{uri}: answered, but nothing was sent");
            };
            assert!(
                error.downcast_ref::<RequestTimedOut>().is_some(),
                "{uri}: {error}"
            );
        }
        std::future::poll_fn(|cx| bounded.poll_ready(cx))
            .await
            .expect("ready");
        let call = bounded.call(
            Request::get("/api/v1/namespaces/a/secrets/s")
                .body(Body::empty())
                .expect("request"),
        );
        let (_request, send) = handle.next_request().await.expect("the request");
        let body: BoxedBody =
            Box::new(Full::new(bytes::Bytes::from_static(b"{}")).map_err(|never| match never {}));
        send.send_response(Response::new(body));
        let response = call.await.expect("answered");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&bytes[..], b"{}");
    }
}
