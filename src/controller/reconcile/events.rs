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

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use serde_json::json;

/// How long after its last occurrence an Event can still grow its series
/// (client-go's and kube-runtime's value).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// How often expired series are dropped from the cache.
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

#[derive(Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    /// The object's uid (its namespace/name when it has none).
    regarding: String,
    warning: bool,
    reason: String,
    action: String,
}

impl SeriesKey {
    fn of(event: &Event, reference: &ObjectReference) -> Self {
        let regarding = reference.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name.as_deref().unwrap_or_default()
            )
        });
        Self {
            regarding,
            warning: matches!(event.type_, EventType::Warning),
            reason: event.reason.clone(),
            action: event.action.clone(),
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

/// Publishes Events for the whole fleet. Cheap to share behind the context's `Arc`.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    cache: Mutex<Cache>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        let instance = reporter
            .instance
            .unwrap_or_else(|| reporter.controller.clone());
        Self {
            client,
            controller: reporter.controller,
            instance,
            cache: Mutex::new(Cache {
                series: HashMap::new(),
                swept: Timestamp::now(),
            }),
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Series currently cached.
    #[cfg(test)]
    fn cached_series(&self) -> usize {
        self.cache().series.len()
    }

    /// Publish `event` about `reference`: a new Event, or one more occurrence
    /// of the same Event within [`SERIES_TTL`] of its last.
    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = SeriesKey::of(event, reference);
        let repeat = self.live_series(&key, now);
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let published = match repeat {
            Some(p) => {
                let count = p.count + 1;
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
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.create(&api, event, reference, now).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.create(&api, event, reference, now).await?,
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
        event: &Event,
        reference: &ObjectReference,
        now: Timestamp,
    ) -> Result<Published, kube::Error> {
        let object = reference.name.as_deref().unwrap_or(&self.controller);
        let name = format!("{object}.{:x}", now.as_nanosecond());
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
            ..K8sEvent::default()
        };
        api.create(&PostParams::default(), &body).await?;
        Ok(Published {
            name,
            count: 1,
            last: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;

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
        let recorder = Recorder::new(
            Client::new(service, "default"),
            Reporter {
                controller: "clusterscale".into(),
                instance: Some("clusterscale-0".into()),
            },
        );
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
        recorder
            .publish(&event("QuotaExceeded"), &reference())
            .await
            .unwrap();
        recorder
            .publish(&event("QuotaExceeded"), &later)
            .await
            .unwrap();
        // The apiserver dropped the Event (its TTL): the series starts again.
        recorder
            .publish(&event("QuotaExceeded"), &later)
            .await
            .unwrap();
        // Another reason is another Event.
        recorder.publish(&event("Throttled"), &later).await.unwrap();
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
