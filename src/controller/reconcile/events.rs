//! Events (events.k8s.io/v1) about ScaledClusters, with repeats folded into
//! a series, as client-go's `tools/events` recorder does.
//!
//! Not kube-runtime's `Recorder`, for three measured reasons (heaptrack and
//! `perf` of `cargo bench --bench scale` at 10,000 resources, see
//! docs/benchmarks.md):
//! - it caches one whole `Event` per series key for 6 minutes, about 1.4 KiB
//!   inline each: 54 MiB of a 157 MiB heap;
//! - its key holds the whole `ObjectReference`, resourceVersion included,
//!   which changes with every status write, so repeats about one of our
//!   objects never folded into a series;
//! - it scans its whole cache for expired entries on every publish, under
//!   one lock (a third of the operator's CPU before it was sharded).
//!
//! Here a series is keyed on (object uid, type, reason, action), like
//! client-go's (regarding, reason, action, reporting controller), and only
//! the Event's name, count and last time are kept (about 200 bytes). Expired
//! series are swept at most once a minute. A repeat patches only `series`;
//! one whose Event the apiserver has already deleted (its `--event-ttl`)
//! starts again with a create.
//!
//! Events are for people, not for recovery, so they are off the reconcile's
//! path: [`Recorder::publish`] never waits. It queues the write for one
//! writer task, folding a repeat of a series already waiting into that
//! write (one more occurrence, the latest note), so a burst of one reason is
//! one apiserver write. At most [`QUEUE_CAPACITY`] series wait; beyond that
//! an Event is dropped. Every Event is counted by outcome in
//! `clusterscale_events_total` (`written`, `folded`, `dropped`, `failed`;
//! and `merged`, counted by the reconciler, see `reconcile::status`),
//! and the waiting writes in `clusterscale_events_queued`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Notify;
use tracing::warn;

use crate::controller::serve::metrics::Metrics;

/// How long after its last occurrence an Event can still grow its series
/// (client-go's and kube-runtime's value).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// How often expired series are dropped from the cache.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);
/// Series whose write may wait at once; an Event of another series beyond
/// it is dropped. A fleet converging at once emits about one Event per
/// cluster: at 10,000 clusters, writes wait for the apiserver, but a
/// reconcile never does.
pub const QUEUE_CAPACITY: usize = 4096;

/// What a series is keyed on. Its strings are shared (`Arc<str>`): the key
/// of a waiting write is held twice, in the queue's order and its map, and
/// then once more in the cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    /// The object's uid (its namespace/name when it has none).
    regarding: Arc<str>,
    warning: bool,
    reason: Arc<str>,
    action: Arc<str>,
}

impl SeriesKey {
    fn of(event: &Event, reference: &ObjectReference) -> Self {
        let regarding = match &reference.uid {
            Some(uid) => Arc::from(uid.as_str()),
            None => Arc::from(format!(
                "{}/{}",
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name.as_deref().unwrap_or_default()
            )),
        };
        Self {
            regarding,
            warning: matches!(event.type_, EventType::Warning),
            reason: Arc::from(event.reason.as_str()),
            action: Arc::from(event.action.as_str()),
        }
    }
}

/// The Event a series lives in.
#[derive(Debug, Clone)]
struct Published {
    name: String,
    /// Occurrences so far (1 for a new Event).
    count: i32,
    last: Timestamp,
}

struct Cache {
    series: HashMap<SeriesKey, Published>,
    swept: Timestamp,
}

/// A write waiting for the writer: the latest Event of its series and how
/// many occurrences it stands for.
struct Waiting {
    event: Event,
    reference: ObjectReference,
    occurrences: i32,
    last: Timestamp,
}

#[derive(Default)]
struct Queue {
    order: VecDeque<SeriesKey>,
    /// Boxed: an Event and its reference are about 450 bytes, and a full
    /// queue's table has up to twice as many slots as writes waiting.
    waiting: HashMap<SeriesKey, Box<Waiting>>,
}

/// What [`Recorder::publish`] did with an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// A write of its own waits for the writer.
    Queued,
    /// Folded into a waiting write of the same series.
    Folded,
    /// The queue was full: not written.
    Dropped,
}

struct Inner {
    client: Client,
    controller: String,
    instance: String,
    metrics: Metrics,
    cache: Mutex<Cache>,
    queue: Mutex<Queue>,
    capacity: usize,
}

/// Publishes Events for the whole fleet. Cheap to share behind the
/// context's `Arc`; its writer task ends when it is dropped.
pub struct Recorder {
    inner: Arc<Inner>,
    wake: Arc<Notify>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The writer holds a weak reference: wake it to see it is gone.
        self.wake.notify_one();
    }
}

impl Recorder {
    /// A recorder and its writer task (spawned on the current runtime).
    pub fn new(client: Client, reporter: Reporter, metrics: Metrics) -> Self {
        Self::with_capacity(client, reporter, metrics, QUEUE_CAPACITY)
    }

    fn with_capacity(
        client: Client,
        reporter: Reporter,
        metrics: Metrics,
        capacity: usize,
    ) -> Self {
        let instance = reporter
            .instance
            .unwrap_or_else(|| reporter.controller.clone());
        let inner = Arc::new(Inner {
            client,
            controller: reporter.controller,
            instance,
            metrics,
            cache: Mutex::new(Cache {
                series: HashMap::new(),
                swept: Timestamp::now(),
            }),
            queue: Mutex::default(),
            capacity,
        });
        let wake = Arc::new(Notify::new());
        tokio::spawn(write_all(Arc::downgrade(&inner), wake.clone()));
        Self { inner, wake }
    }

    /// Series currently cached.
    #[cfg(test)]
    fn cached_series(&self) -> usize {
        self.inner.cache().series.len()
    }

    /// Writes waiting.
    pub fn queued(&self) -> usize {
        self.inner.queue().waiting.len()
    }

    /// Queue `event` about `reference` for the writer, without waiting: a new
    /// Event, or one more occurrence of the same Event within
    /// [`SERIES_TTL`] of its last.
    pub fn publish(&self, event: Event, reference: ObjectReference) -> Queued {
        let key = SeriesKey::of(&event, &reference);
        let now = Timestamp::now();
        let mut queue = self.inner.queue();
        let outcome = if let Some(w) = queue.waiting.get_mut(&key) {
            w.occurrences += 1;
            w.last = now;
            w.event = event;
            w.reference = reference;
            Queued::Folded
        } else if queue.waiting.len() >= self.inner.capacity {
            Queued::Dropped
        } else {
            queue.order.push_back(key.clone());
            queue.waiting.insert(
                key,
                Box::new(Waiting {
                    event,
                    reference,
                    occurrences: 1,
                    last: now,
                }),
            );
            Queued::Queued
        };
        let waiting = queue.waiting.len();
        drop(queue);
        match outcome {
            Queued::Queued => self.wake.notify_one(),
            Queued::Folded => self.inner.metrics.event("folded"),
            Queued::Dropped => {
                self.inner.metrics.event("dropped");
                warn!(
                    capacity = self.inner.capacity,
                    "the Event queue is full; Event dropped"
                );
            }
        }
        self.inner.metrics.set_events_queued(waiting);
        outcome
    }

    /// Wait until no write waits (tests).
    #[cfg(test)]
    async fn flushed(&self) {
        while self.queued() > 0 || self.inner.writing() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// The writer: one write at a time, in the order the series were queued.
async fn write_all(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(recorder) = inner.upgrade() else {
            return;
        };
        match recorder.next() {
            Some((key, waiting)) => {
                if let Err(error) = recorder.write(key, &waiting).await {
                    recorder.metrics.event("failed");
                    warn!(%error, reason = %waiting.event.reason, "publishing an Event failed");
                } else {
                    recorder.metrics.event("written");
                }
                recorder.done();
            }
            None => {
                drop(recorder);
                wake.notified().await;
            }
        }
    }
}

impl Inner {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next write, taken off the queue. Its key stays in `order` until
    /// [`Inner::done`], so that [`Recorder::flushed`] sees it in flight.
    fn next(&self) -> Option<(SeriesKey, Waiting)> {
        let mut queue = self.queue();
        let key = queue.order.front()?.clone();
        let waiting = queue.waiting.remove(&key)?;
        self.metrics.set_events_queued(queue.waiting.len());
        Some((key, *waiting))
    }

    fn done(&self) {
        self.queue().order.pop_front();
    }

    #[cfg(test)]
    fn writing(&self) -> bool {
        let queue = self.queue();
        queue.order.len() > queue.waiting.len()
    }

    /// Write one series' occurrences: patch the live Event's series, or
    /// create the Event (with its series when it stands for several).
    async fn write(&self, key: SeriesKey, waiting: &Waiting) -> Result<(), kube::Error> {
        let now = waiting.last;
        let repeat = self.live_series(&key, now);
        let reference = &waiting.reference;
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let published = match repeat {
            Some(p) => {
                let count = p.count + waiting.occurrences;
                let patch = json!({
                    "series": { "count": count, "lastObservedTime": MicroTime(now) }
                });
                match api
                    .patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Published {
                        name: p.name,
                        count,
                        last: now,
                    },
                    Err(kube::Error::Api(e)) if e.code == 404 => self.create(&api, waiting).await?,
                    Err(e) => return Err(e),
                }
            }
            None => self.create(&api, waiting).await?,
        };
        self.cache().series.insert(key, published);
        Ok(())
    }

    /// The series `key` continues, if it is still live; sweeps expired ones
    /// at most once per [`SWEEP_EVERY`].
    fn live_series(&self, key: &SeriesKey, now: Timestamp) -> Option<Published> {
        let mut cache = self.cache();
        if now.duration_since(cache.swept) >= SWEEP_EVERY {
            cache.series.retain(|_, p| p.last + SERIES_TTL > now);
            cache.swept = now;
        }
        cache
            .series
            .get(key)
            .filter(|p| p.last + SERIES_TTL > now)
            .cloned()
    }

    async fn create(
        &self,
        api: &Api<K8sEvent>,
        waiting: &Waiting,
    ) -> Result<Published, kube::Error> {
        let Waiting {
            event,
            reference,
            occurrences,
            last,
        } = waiting;
        let now = *last;
        let object = reference.name.as_deref().unwrap_or(&self.controller);
        let name = format!("{object}.{:x}", now.as_nanosecond());
        // events/v1 wants a series of at least 2 occurrences, or none.
        let series = (*occurrences > 1).then_some(EventSeries {
            count: *occurrences,
            last_observed_time: MicroTime(now),
        });
        let body = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: reference.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            regarding: Some(reference.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            series,
            ..K8sEvent::default()
        };
        api.create(&PostParams::default(), &body).await?;
        Ok(Published {
            name,
            count: *occurrences,
            last: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use kube::runtime::events::Reporter;

    fn reference() -> ObjectReference {
        ObjectReference {
            api_version: Some("clusterscale.io/v1alpha1".into()),
            kind: Some("ScaledCluster".into()),
            namespace: Some("data".into()),
            name: Some("sc-1".into()),
            uid: Some("uid-1".into()),
            resource_version: Some("1".into()),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some("quota exceeded".into()),
            action: "ScaleOut".into(),
            secondary: None,
        }
    }

    /// Serves `replies` in order and returns (method, path, body) of each request.
    async fn serve(
        mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
        replies: Vec<StatusCode>,
    ) -> Vec<(Method, String, serde_json::Value)> {
        let mut seen = Vec::new();
        for status in replies {
            let (request, send) = handle.next_request().await.expect("a request");
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect_bytes().await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json body");
            let reply = if status.is_success() {
                serde_json::to_vec(&json!({
                    "apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": {"name": "x", "namespace": "data"},
                    "eventTime": "2026-12-03T00:00:00.000000Z"
                }))
                .expect("json")
            } else {
                serde_json::to_vec(&json!({
                    "apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "reason": "NotFound", "code": status.as_u16(), "message": "gone"
                }))
                .expect("json")
            };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(reply))
                    .expect("response"),
            );
            seen.push((method, path, body));
        }
        seen
    }

    #[tokio::test]
    async fn a_repeat_patches_the_series_of_the_same_event_even_after_a_status_write() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let recorder = recorder(Client::new(service, "default"), QUEUE_CAPACITY);
        let server = tokio::spawn(serve(
            handle,
            vec![
                StatusCode::CREATED,
                StatusCode::OK,
                StatusCode::NOT_FOUND,
                StatusCode::CREATED,
                StatusCode::CREATED,
            ],
        ));
        let mut later = reference();
        later.resource_version = Some("2".into());
        // One at a time, each written before the next is published.
        recorder.publish(event("QuotaExceeded"), reference());
        recorder.flushed().await;
        recorder.publish(event("QuotaExceeded"), later.clone());
        recorder.flushed().await;
        // The apiserver dropped the Event (its TTL): the series starts again.
        recorder.publish(event("QuotaExceeded"), later.clone());
        recorder.flushed().await;
        // Another reason is another Event.
        recorder.publish(event("Throttled"), later);
        recorder.flushed().await;
        let seen = server.await.unwrap();

        let (m, path, created) = &seen[0];
        assert_eq!(
            (m, path.as_str()),
            (
                &Method::POST,
                "/apis/events.k8s.io/v1/namespaces/data/events"
            )
        );
        let name = created["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("sc-1."), "{name}");
        assert_eq!(created["reportingController"], "clusterscale");
        assert_eq!(created["reportingInstance"], "clusterscale-0");
        assert_eq!(created["type"], "Warning");
        assert_eq!(created["note"], "quota exceeded");
        assert_eq!(created["regarding"]["uid"], "uid-1");
        assert!(created.get("series").is_none());

        let (m, path, patch) = &seen[1];
        assert_eq!(m, Method::PATCH);
        assert_eq!(
            path,
            &format!("/apis/events.k8s.io/v1/namespaces/data/events/{name}")
        );
        assert_eq!(patch["series"]["count"], 2);
        assert!(patch["series"]["lastObservedTime"].is_string());
        assert_eq!(
            patch.as_object().unwrap().len(),
            1,
            "only the series: {patch}"
        );

        assert_eq!(seen[2].0, Method::PATCH);
        assert_eq!(seen[3].0, Method::POST, "after 404 the series starts anew");
        assert!(seen[3].2.get("series").is_none());
        assert_eq!(seen[4].0, Method::POST);
        assert_eq!(seen[4].2["reason"], "Throttled");
        assert_eq!(recorder.cached_series(), 2);
    }

    fn recorder(client: Client, capacity: usize) -> Recorder {
        Recorder::with_capacity(
            client,
            Reporter {
                controller: "clusterscale".into(),
                instance: Some("clusterscale-0".into()),
            },
            Metrics::new(),
            capacity,
        )
    }

    fn counted(recorder: &Recorder, outcome: &str) -> String {
        let text = recorder.inner.metrics.encode();
        let series = format!("clusterscale_events_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .to_string()
    }

    #[tokio::test]
    async fn publishing_never_waits_for_the_apiserver_repeats_fold_and_a_full_queue_drops() {
        // An apiserver that has not answered yet: the first write hangs.
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let recorder = recorder(Client::new(service, "default"), 2);
        let started = std::time::Instant::now();
        assert_eq!(
            recorder.publish(event("QuotaExceeded"), reference()),
            Queued::Queued
        );
        let (first, reply) = handle.next_request().await.expect("the first write");
        assert_eq!(first.method(), Method::POST);
        // While it is in flight: a new series waits, its repeats fold into
        // it, and beyond the capacity of 2 waiting series Events are dropped.
        let mut other = reference();
        other.uid = Some("uid-2".into());
        other.name = Some("sc-2".into());
        assert_eq!(
            recorder.publish(event("Throttled"), reference()),
            Queued::Queued
        );
        assert_eq!(
            recorder.publish(event("Throttled"), reference()),
            Queued::Folded
        );
        assert_eq!(
            recorder.publish(event("Throttled"), reference()),
            Queued::Folded
        );
        assert_eq!(
            recorder.publish(event("QuotaExceeded"), other.clone()),
            Queued::Queued
        );
        assert_eq!(recorder.publish(event("Stuck"), other), Queued::Dropped);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "publish waited: {:?}",
            started.elapsed()
        );
        assert_eq!(recorder.queued(), 2);
        assert_eq!(counted(&recorder, "folded"), "2");
        assert_eq!(counted(&recorder, "dropped"), "1");
        assert!(
            recorder
                .inner
                .metrics
                .encode()
                .contains("clusterscale_events_queued 2"),
            "{}",
            recorder.inner.metrics.encode()
        );
        reply.send_response(
            Response::builder()
                .status(StatusCode::CREATED)
                .body(Body::from(b"{}".to_vec()))
                .expect("response"),
        );
        // The folded series is one create that carries its 3 occurrences.
        let server = tokio::spawn(serve(
            handle,
            vec![StatusCode::CREATED, StatusCode::CREATED],
        ));
        recorder.flushed().await;
        let seen = server.await.unwrap();
        assert_eq!(seen[0].0, Method::POST);
        assert_eq!(seen[0].2["reason"], "Throttled");
        assert_eq!(seen[0].2["series"]["count"], 3);
        assert!(seen[0].2["series"]["lastObservedTime"].is_string());
        assert_eq!(seen[1].2["reason"], "QuotaExceeded");
        assert_eq!(seen[1].2["regarding"]["uid"], "uid-2");
        assert!(seen[1].2.get("series").is_none());
        assert_eq!(counted(&recorder, "written"), "3");
        assert_eq!(counted(&recorder, "failed"), "0");
        assert_eq!(recorder.queued(), 0);
    }

    #[test]
    fn a_series_is_the_object_the_type_the_reason_and_the_action() {
        let a = SeriesKey::of(&event("QuotaExceeded"), &reference());
        let mut moved = reference();
        moved.resource_version = Some("99".into());
        assert_eq!(a, SeriesKey::of(&event("QuotaExceeded"), &moved));
        let mut other = reference();
        other.uid = Some("uid-2".into());
        assert_ne!(a, SeriesKey::of(&event("QuotaExceeded"), &other));
        let mut normal = event("QuotaExceeded");
        normal.type_ = EventType::Normal;
        assert_ne!(a, SeriesKey::of(&normal, &reference()));
    }
}
