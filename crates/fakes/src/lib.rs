//! Wire-compatible fake cloud endpoints over the simulated model
//! ([`SimModel`](clusterscale_sim::SimModel)), for tests, demos and
//! users' own CI.
//!
//! This module holds what every fake shares and knows nothing of any cloud:
//! - [`FakeOptions`]: faults, journal file, clock.
//! - [`FakeFaults`] and [`InjectedError`]: injectable failures (a transient
//!   failure rate, a throttle above N requests per second per action, slow
//!   responses, and a queue of errors for the next requests).
//! - [`FakeControl`]: the shared fault state and the [`Journal`], used by
//!   each fake's handler, by in-process tests, and by [`control_routes`].
//! - [`control_routes`]: an **unauthenticated** HTTP control API under
//!   `/_fake/` (a prefix no cloud API uses), so that a fake running as a
//!   separate process (`clusterscale-fake-cloud`) can be driven by tests:
//!   - `GET /_fake/journal`: every request so far, as a JSON array;
//!   - `GET /_fake/faults`, `PUT /_fake/faults` (a [`FakeFaults`] body);
//!   - `POST /_fake/inject` (an [`InjectedError`] body): fail a next request;
//!   - Huawei only: `PUT /_fake/abnormal` (`{"hostsDown": N}`) and
//!     `DELETE /_fake/abnormal`, the next resize ending `abnormal`;
//!     `PUT /_fake/prepaid` (`{"groups": [...]}`) and `PUT /_fake/autoscaling`
//!     (`{"policies": [{"group", "enabled", "min", "max"}]}`);
//!   - Tencent only: `PUT /_fake/refused-specs` (`{"instanceTypes": [...]}`).
//!   - The fake YARN ResourceManager ([`yarn`]), on an address of its own:
//!     `GET` and `PUT /_fake/yarn/demand` (`{"memoryMB": N}`).
//!
//! Scale writes also draw from a seeded sequence ([`FakeFaults::seed`]):
//! refused with the cloud's own error body, applied with the answer lost
//! (504), or answered by a proxy's HTML 502 page ([`WriteFault`]).
//!
//! Answers can also be replaced, per write or per read, by [`Malformed`]
//! ones (`malformedWriteRate`, `malformedReadRate`, `malformedKinds`): invalid
//! JSON, a truncated body, unknown extra fields (which a client must accept),
//! a needed field of the wrong type, or a proxy's HTML page with HTTP 200 or
//! 502. The request was handled first, so a write may have been applied.
//! The journal line's outcome then ends in `; malformed answer: <kind>`.
//!
//! Each fake can serve one cluster or, in multi-instance mode
//! ([`TencentFake::fleet`], [`huawei::HuaweiFake::fleet`]), many clusters
//! of one account: each has its own model, while the faults, the throttling
//! windows (per action, across clusters) and the journal are the account's.
//!
//! Each cloud's fake renders faults with its own codes and envelopes: see
//! [`tencent`].
//!
//! Besides the clouds, [`yarn`] is a fake YARN ResourceManager whose
//! NodeManagers are the nodes of one of these clusters, for autoscalers that
//! read YARN's load; it has no faults or journal.

pub mod cli;
pub mod fleet;
pub mod huawei;
pub mod oidc;
pub mod tencent;
pub mod yarn;

pub use tencent::sts::{StsFakeConfig, StsStats};
pub use tencent::{serve_tencent, TencentFake, TencentFakeConfig};

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use clusterscale_core::clock::{Clock, SystemClock};

/// Settings every fake takes.
#[derive(Clone)]
pub struct FakeOptions {
    /// Faults active from the start (changeable later through [`FakeControl`]).
    pub faults: FakeFaults,
    /// Append every journal line to this file (JSON lines) as well.
    pub journal_path: Option<PathBuf>,
    /// The clock request timestamps are checked against, and journal lines
    /// are stamped with. Default: the system clock (what a real endpoint uses),
    /// independent of the model's clock.
    pub clock: Arc<dyn Clock>,
    /// Serve [`control_routes`] under `/_fake/`. Default true.
    pub control_routes: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            faults: FakeFaults::default(),
            journal_path: None,
            clock: Arc::new(SystemClock),
            control_routes: true,
        }
    }
}

impl std::fmt::Debug for FakeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOptions")
            .field("faults", &self.faults)
            .field("journal_path", &self.journal_path)
            .field("control_routes", &self.control_routes)
            .finish_non_exhaustive()
    }
}

/// Injectable failures that apply to every request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FakeFaults {
    /// Fraction of requests (0.0-1.0) that fail with the cloud's internal
    /// error before reaching the model (so nothing is applied).
    pub transient_failure_rate: f64,
    /// Refuse requests of one action beyond this many in any sliding second,
    /// with the cloud's throttling error. Refused requests do not count.
    pub throttle_per_second: Option<u32>,
    /// Delay before every answer, in milliseconds.
    pub delay_ms: u64,
    /// Fraction of scale writes (0.0-1.0) refused with the cloud's own error
    /// body, nothing applied: Tencent `InternalError` in a `Response.Error`
    /// envelope (HTTP 200), Huawei HTTP 500 `{"error_code": "MRS.300", ...}`.
    pub write_refusal_rate: f64,
    /// Fraction of scale writes applied whose answer is then lost: HTTP 504
    /// from the gateway (Tencent: no body; Huawei: `APIGW.0201`), or with
    /// [`lost_answer_reset`](Self::lost_answer_reset) a connection cut in
    /// the middle of the answer.
    pub lost_answer_rate: f64,
    /// A lost answer is a connection reset after the status line (the body
    /// never arrives) instead of a gateway 504.
    pub lost_answer_reset: bool,
    /// Fraction of scale writes answered by a proxy's HTML 502 page.
    pub proxy_error_rate: f64,
    /// Whether the write behind a proxy error is dropped (not applied). The
    /// default, applied, is the harder case for a client.
    pub proxy_error_drops_write: bool,
    /// Seed of the faults' random sequences: the same seed and the same
    /// sequence of writes give the same write faults (reads draw from a
    /// sequence of their own, for `transientFailureRate`). `None`: random.
    pub seed: Option<u64>,
    /// Fraction of scale writes (0.0-1.0) whose answer is replaced by a
    /// [`Malformed`] one after the write was handled (so it may have been
    /// applied). Drawn from a seeded sequence of its own.
    pub malformed_write_rate: f64,
    /// Fraction of other requests (reads, IAM) answered with a [`Malformed`]
    /// answer after being handled. Drawn from a seeded sequence of its own.
    pub malformed_read_rate: f64,
    /// The kinds of malformed answers drawn from (evenly); empty: all.
    pub malformed_kinds: Vec<Malformed>,
}

/// A malformed answer, in place of the answer the fake would have sent
/// ([`FakeControl::malformed`]). Each cloud's fake renders it in its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Malformed {
    /// The status of the real answer, and a body that is not JSON
    /// (`{"Response": {"RequestId": ...,,`).
    InvalidJson,
    /// The real answer cut in the middle (`Content-Length` matching the cut body).
    Truncated,
    /// The real answer with unknown fields added to every object: a client
    /// must accept it as the real answer.
    UnknownFields,
    /// The real answer with a field the client needs given a value of the
    /// wrong type (a string for a number, a number for a string or list).
    WrongType,
    /// A proxy's HTML error page, with HTTP 200.
    Html200,
    /// A proxy's HTML error page, with HTTP 502.
    Html502,
}

impl Malformed {
    pub const ALL: [Malformed; 6] = [
        Malformed::InvalidJson,
        Malformed::Truncated,
        Malformed::UnknownFields,
        Malformed::WrongType,
        Malformed::Html200,
        Malformed::Html502,
    ];

    /// The kebab-case name (flags, journal).
    pub fn name(self) -> &'static str {
        match self {
            Malformed::InvalidJson => "invalid-json",
            Malformed::Truncated => "truncated",
            Malformed::UnknownFields => "unknown-fields",
            Malformed::WrongType => "wrong-type",
            Malformed::Html200 => "html-200",
            Malformed::Html502 => "html-502",
        }
    }

    /// Parse [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Malformed> {
        Self::ALL.into_iter().find(|m| m.name() == name.trim())
    }

    /// The journal's note appended to a line's outcome.
    pub fn note(self) -> String {
        format!("{MALFORMED_NOTE}{}", self.name())
    }
}

/// What a journal line's `outcome` carries after `; ` when its answer was
/// replaced by a [`Malformed`] one: `ok; malformed answer: truncated`.
pub const MALFORMED_NOTE: &str = "malformed answer: ";

/// A JSON answer made malformed as `kind` (for the JSON kinds; the HTML
/// kinds are each fake's proxy page). `needed` are the fields the client
/// needs, in order of preference, for [`Malformed::WrongType`]. Returns the
/// new body.
pub fn malform_json(kind: Malformed, body: &str, needed: &[&str]) -> String {
    use serde_json::Value;
    match kind {
        Malformed::InvalidJson => {
            // The first third, then a stray double comma and no closing braces.
            let cut = body.len() / 3;
            let cut = (0..=cut)
                .rev()
                .find(|i| body.is_char_boundary(*i))
                .unwrap_or(0);
            format!("{},,\"", &body[..cut])
        }
        Malformed::Truncated => {
            let cut = body.len() / 2;
            let cut = (0..=cut)
                .rev()
                .find(|i| body.is_char_boundary(*i))
                .unwrap_or(0);
            body[..cut].to_string()
        }
        Malformed::UnknownFields => {
            fn add(v: &mut Value) {
                match v {
                    Value::Object(map) => {
                        map.values_mut().for_each(add);
                        map.insert(
                            "FakeUnknownField".into(),
                            serde_json::json!({"added_by": "fake", "n": [1, 2.5, null, "x"]}),
                        );
                        map.insert("fake_unknown_flag".into(), Value::Bool(true));
                    }
                    Value::Array(items) => items.iter_mut().for_each(add),
                    _ => {}
                }
            }
            match serde_json::from_str::<Value>(body) {
                Ok(mut v) => {
                    add(&mut v);
                    v.to_string()
                }
                Err(_) => body.to_string(),
            }
        }
        Malformed::WrongType => {
            fn wrong(v: &mut Value, key: &str) -> bool {
                match v {
                    Value::Object(map) => {
                        if let Some(x) = map.get_mut(key) {
                            *x = match x {
                                Value::String(_) | Value::Array(_) | Value::Object(_) => {
                                    serde_json::json!(12345)
                                }
                                _ => Value::String("not-a-number".into()),
                            };
                            return true;
                        }
                        map.values_mut().any(|x| wrong(x, key))
                    }
                    Value::Array(items) => items.iter_mut().any(|x| wrong(x, key)),
                    _ => false,
                }
            }
            match serde_json::from_str::<Value>(body) {
                Ok(mut v) => {
                    needed.iter().any(|k| wrong(&mut v, k));
                    v.to_string()
                }
                Err(_) => body.to_string(),
            }
        }
        Malformed::Html200 | Malformed::Html502 => body.to_string(),
    }
}

/// What becomes of one scale write ([`FakeControl::write_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// Handle it.
    None,
    /// Refuse it with the cloud's own error body; apply nothing.
    Refuse,
    /// Apply it, then answer HTTP 504 from the gateway, or cut the
    /// connection in the middle of the answer when `reset`.
    LoseAnswer { reset: bool },
    /// Answer with a proxy's HTML 502 page, after applying the write when
    /// `applied`.
    ProxyError { applied: bool },
}

/// An error to answer a next request with, instead of handling it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectedError {
    /// Only a request of this action; `None`: the next request of any action.
    #[serde(default)]
    pub action: Option<String>,
    /// The cloud's error code, rendered in the cloud's error envelope.
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// Answer with this bare HTTP status instead (e.g. 502: a lost answer).
    #[serde(default)]
    pub http_status: Option<u16>,
}

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalLine {
    /// When the request arrived (the fake's clock).
    pub at: Timestamp,
    /// `tencent`, `huawei`.
    pub cloud: String,
    /// The cloud's action or API name.
    pub action: String,
    /// The request id the fake answered with.
    pub request_id: String,
    /// The request parameters (values of keys naming secrets or passwords redacted).
    pub params: serde_json::Value,
    /// `ok`, the cloud's error code, or `HTTP <status>`.
    pub outcome: String,
    pub http_status: u16,
    /// True when the request started a change of the cluster.
    pub write: bool,
    /// Which key signed the request (`None`: unsigned, e.g. an STS exchange,
    /// or a fake that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<SignedBy>,
}

/// Which key signed a request, without the key id itself: the journal
/// holds no key material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedBy {
    /// `static` (the account's configured SecretId), `sts#<n>` (the
    /// temporary keys of the fake STS's n-th accepted exchange), or
    /// `unknown` (a SecretId the fake does not know).
    pub key: String,
    /// The first 16 hex digits of the SHA-256 of the SecretId
    /// ([`key_fingerprint`]): tells keys apart, and lets a test match the
    /// keys it holds, without showing them.
    pub fingerprint: String,
}

/// [`SignedBy::fingerprint`] of a SecretId (or AK).
pub fn key_fingerprint(secret_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret_id.as_bytes()))[..16].to_string()
}

/// A response whose status line and headers go out and whose body then
/// breaks off: to the client, a connection reset after the request was sent.
pub fn reset_response(status: axum::http::StatusCode) -> axum::response::Response {
    let body = axum::body::Body::from_stream(futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by the fake (lost answer)",
        ))
    }));
    let mut response = axum::response::Response::new(body);
    *response.status_mut() = status;
    response
}

/// Every request, in memory and optionally appended to a JSON-lines file.
#[derive(Debug, Default)]
pub struct Journal {
    lines: Mutex<Vec<JournalLine>>,
    file: Mutex<Option<std::fs::File>>,
}

impl Journal {
    /// A journal that also appends to `path` (created if absent).
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Self {
            lines: Mutex::default(),
            file: Mutex::new(file),
        })
    }

    pub fn record(&self, line: JournalLine) {
        {
            let mut file = lock(&self.file);
            if let Some(f) = file.as_mut() {
                let written = serde_json::to_vec(&line)
                    .map_err(std::io::Error::from)
                    .and_then(|mut bytes| {
                        bytes.push(b'\n');
                        f.write_all(&bytes)
                    });
                if let Err(e) = written {
                    tracing::warn!(error = %e, "fake journal file write failed; keeping the journal in memory only");
                    *file = None;
                }
            }
        }
        lock(&self.lines).push(line);
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<JournalLine> {
        lock(&self.lines).clone()
    }
}

/// What a fake does with a request before handling it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Handle it.
    Proceed,
    /// Answer with this error.
    Inject(InjectedError),
    /// Answer with the cloud's throttling error (`limit` per second).
    Throttle { limit: u32 },
    /// Answer with the cloud's internal error.
    Transient,
}

/// Fault state and journal of one fake; shared by its handler, tests and the
/// control routes.
#[derive(Debug)]
pub struct FakeControl {
    faults: Mutex<FakeFaults>,
    injected: Mutex<VecDeque<InjectedError>>,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Draws only for scale writes, so that reads (whose number depends on
    /// timing) never shift the sequence of write faults.
    write_rng: Mutex<StdRng>,
    /// Draws for the transient-failure rate of every request.
    request_rng: Mutex<StdRng>,
    /// Draws for malformed answers to writes, and to the other requests.
    malformed_write_rng: Mutex<StdRng>,
    malformed_read_rng: Mutex<StdRng>,
    journal: Journal,
}

/// Keeps the request sequence apart from the write sequence of one seed.
const REQUEST_SEED_MIX: u64 = 0x9e37_79b9_7f4a_7c15;
/// Keep the malformed-answer sequences apart from the others.
const MALFORMED_WRITE_SEED_MIX: u64 = 0x5851_f42d_4c95_7f2d;
const MALFORMED_READ_SEED_MIX: u64 = 0x1405_7b7e_f767_814f;

fn seeded_rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_rng(&mut rand::rng()),
    }
}

impl FakeControl {
    pub fn new(faults: FakeFaults, journal: Journal) -> Self {
        Self {
            write_rng: Mutex::new(seeded_rng(faults.seed)),
            request_rng: Mutex::new(seeded_rng(faults.seed.map(|s| s ^ REQUEST_SEED_MIX))),
            malformed_write_rng: Mutex::new(seeded_rng(
                faults.seed.map(|s| s ^ MALFORMED_WRITE_SEED_MIX),
            )),
            malformed_read_rng: Mutex::new(seeded_rng(
                faults.seed.map(|s| s ^ MALFORMED_READ_SEED_MIX),
            )),
            faults: Mutex::new(faults),
            injected: Mutex::default(),
            windows: Mutex::default(),
            journal,
        }
    }

    pub fn faults(&self) -> FakeFaults {
        lock(&self.faults).clone()
    }

    /// Replace the faults; a `seed` restarts the write faults' sequence.
    pub fn set_faults(&self, faults: FakeFaults) {
        if faults.seed.is_some() {
            *lock(&self.write_rng) = seeded_rng(faults.seed);
            *lock(&self.request_rng) = seeded_rng(faults.seed.map(|s| s ^ REQUEST_SEED_MIX));
            *lock(&self.malformed_write_rng) =
                seeded_rng(faults.seed.map(|s| s ^ MALFORMED_WRITE_SEED_MIX));
            *lock(&self.malformed_read_rng) =
                seeded_rng(faults.seed.map(|s| s ^ MALFORMED_READ_SEED_MIX));
        }
        *lock(&self.faults) = faults;
    }

    /// The fate of one scale write that passed [`admit`](Self::admit): one
    /// draw from the seeded sequence, against the refusal, lost-answer and
    /// proxy-error rates in that order.
    pub fn write_fault(&self) -> WriteFault {
        let faults = self.faults();
        let total = faults.write_refusal_rate + faults.lost_answer_rate + faults.proxy_error_rate;
        if total <= 0.0 {
            return WriteFault::None;
        }
        let draw: f64 = lock(&self.write_rng).random();
        if draw < faults.write_refusal_rate {
            WriteFault::Refuse
        } else if draw < faults.write_refusal_rate + faults.lost_answer_rate {
            WriteFault::LoseAnswer {
                reset: faults.lost_answer_reset,
            }
        } else if draw < total {
            WriteFault::ProxyError {
                applied: !faults.proxy_error_drops_write,
            }
        } else {
            WriteFault::None
        }
    }

    /// Whether the answer to a handled request (a scale write when `write`)
    /// is replaced by a malformed one, and which: one draw from the write
    /// or the read sequence, only when that rate is above 0.
    pub fn malformed(&self, write: bool) -> Option<Malformed> {
        let faults = self.faults();
        let (rate, rng) = if write {
            (faults.malformed_write_rate, &self.malformed_write_rng)
        } else {
            (faults.malformed_read_rate, &self.malformed_read_rng)
        };
        if rate <= 0.0 {
            return None;
        }
        let kinds: &[Malformed] = if faults.malformed_kinds.is_empty() {
            &Malformed::ALL
        } else {
            &faults.malformed_kinds
        };
        let mut rng = lock(rng);
        if rng.random::<f64>() >= rate {
            return None;
        }
        Some(kinds[rng.random_range(0..kinds.len())])
    }

    /// Queue an error for a next request.
    pub fn inject(&self, error: InjectedError) {
        lock(&self.injected).push_back(error);
    }

    pub fn journal(&self) -> Vec<JournalLine> {
        self.journal.lines()
    }

    pub fn record(&self, line: JournalLine) {
        self.journal.record(line);
    }

    /// The configured answer delay.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(lock(&self.faults).delay_ms)
    }

    /// Decide a request's fate: a queued error for its action first, then
    /// the throttle, then the transient-failure rate.
    pub fn admit(&self, action: &str) -> Admission {
        {
            let mut queue = lock(&self.injected);
            let pos = queue
                .iter()
                .position(|e| e.action.as_deref().is_none_or(|a| a == action));
            if let Some(e) = pos.and_then(|p| queue.remove(p)) {
                return Admission::Inject(e);
            }
        }
        let faults = self.faults();
        if let Some(limit) = faults.throttle_per_second {
            let now = Instant::now();
            let mut windows = lock(&self.windows);
            let window = windows.entry(action.to_string()).or_default();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                window.pop_front();
            }
            if window.len() >= limit as usize {
                return Admission::Throttle { limit };
            }
            window.push_back(now);
        }
        if faults.transient_failure_rate > 0.0
            && lock(&self.request_rng).random::<f64>() < faults.transient_failure_rate
        {
            return Admission::Transient;
        }
        Admission::Proceed
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request id in the clouds' UUID format (random, version 4).
pub fn request_id() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(
        [
            &b[..6],
            &[0x40 | (b[6] & 0x0f)],
            &b[7..8],
            &[0x80 | (b[8] & 0x3f)],
            &b[9..],
        ]
        .concat(),
    );
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `params` with the values of keys that name a secret or a password replaced
/// (bootstrap-script settings, for one, may carry COS keys).
pub fn redact(params: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    if key.contains("secret")
                        || key.contains("password")
                        || key.contains("identitytoken")
                    {
                        (k.clone(), Value::String("<redacted>".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The `/_fake/` control API over `control` (see the module docs).
pub fn control_routes(control: Arc<FakeControl>) -> Router {
    async fn journal(State(c): State<Arc<FakeControl>>) -> Json<Vec<JournalLine>> {
        Json(c.journal())
    }
    async fn get_faults(State(c): State<Arc<FakeControl>>) -> Json<FakeFaults> {
        Json(c.faults())
    }
    async fn put_faults(
        State(c): State<Arc<FakeControl>>,
        Json(f): Json<FakeFaults>,
    ) -> Json<FakeFaults> {
        c.set_faults(f);
        Json(c.faults())
    }
    async fn inject(State(c): State<Arc<FakeControl>>, Json(e): Json<InjectedError>) -> StatusCode {
        c.inject(e);
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/_fake/journal", get(journal))
        .route("/_fake/faults", get(get_faults).put(put_faults))
        .route("/_fake/inject", post(inject))
        .with_state(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(faults: FakeFaults) -> FakeControl {
        FakeControl::new(faults, Journal::default())
    }

    #[test]
    fn injected_errors_match_their_action_in_order() {
        let c = control(FakeFaults::default());
        let err = |action: Option<&str>, code: &str| InjectedError {
            action: action.map(str::to_string),
            code: code.into(),
            message: String::new(),
            http_status: None,
        };
        c.inject(err(Some("ScaleOut"), "A"));
        c.inject(err(None, "B"));
        c.inject(err(Some("ScaleOut"), "C"));
        assert_eq!(c.admit("Describe"), Admission::Inject(err(None, "B")));
        assert_eq!(
            c.admit("ScaleOut"),
            Admission::Inject(err(Some("ScaleOut"), "A"))
        );
        assert_eq!(c.admit("Describe"), Admission::Proceed);
        assert_eq!(
            c.admit("ScaleOut"),
            Admission::Inject(err(Some("ScaleOut"), "C"))
        );
        assert_eq!(c.admit("ScaleOut"), Admission::Proceed);
    }

    #[test]
    fn throttle_counts_admitted_requests_per_action_per_second() {
        let c = control(FakeFaults {
            throttle_per_second: Some(3),
            ..Default::default()
        });
        let got: Vec<Admission> = (0..5).map(|_| c.admit("A")).collect();
        assert_eq!(
            got[..3],
            [Admission::Proceed, Admission::Proceed, Admission::Proceed]
        );
        assert_eq!(
            got[3..],
            [
                Admission::Throttle { limit: 3 },
                Admission::Throttle { limit: 3 }
            ]
        );
        assert_eq!(
            c.admit("B"),
            Admission::Proceed,
            "another action has its own window"
        );
    }

    #[test]
    fn transient_rate_extremes() {
        let always = control(FakeFaults {
            transient_failure_rate: 1.0,
            ..Default::default()
        });
        assert!((0..20).all(|_| always.admit("A") == Admission::Transient));
        let never = control(FakeFaults::default());
        assert!((0..20).all(|_| never.admit("A") == Admission::Proceed));
    }

    #[test]
    fn write_faults_follow_the_seed_and_the_rates() {
        let faults = FakeFaults {
            write_refusal_rate: 0.3,
            lost_answer_rate: 0.1,
            proxy_error_rate: 0.1,
            seed: Some(7),
            ..Default::default()
        };
        let a = control(faults.clone());
        let b = control(faults.clone());
        let seq_a: Vec<WriteFault> = (0..400).map(|_| a.write_fault()).collect();
        // Reads in between draw nothing from the write sequence.
        let seq_b: Vec<WriteFault> = (0..400)
            .map(|_| {
                b.admit("Describe");
                b.write_fault()
            })
            .collect();
        assert_eq!(seq_a, seq_b, "same seed, same faults");
        let share = |f: WriteFault| seq_a.iter().filter(|x| **x == f).count();
        let refused = share(WriteFault::Refuse);
        assert!((80..160).contains(&refused), "{refused} of 400 refused");
        assert!(share(WriteFault::LoseAnswer { reset: false }) > 10);
        assert!(share(WriteFault::ProxyError { applied: true }) > 10);
        assert_eq!(share(WriteFault::ProxyError { applied: false }), 0);
        // Setting the faults with a seed restarts the sequence.
        a.set_faults(faults);
        assert_eq!(a.write_fault(), seq_a[0]);
        let quiet = control(FakeFaults::default());
        assert!((0..50).all(|_| quiet.write_fault() == WriteFault::None));
    }

    #[test]
    fn journal_appends_json_lines_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let journal = Journal::open(Some(&path)).unwrap();
        for outcome in ["ok", "ResourceInUse.InstanceInProcess"] {
            journal.record(JournalLine {
                at: Timestamp::from_second(1_700_000_000).unwrap(),
                cloud: "tencent".into(),
                action: "ScaleOutInstance".into(),
                request_id: request_id(),
                params: serde_json::json!({"TaskCount": 2}),
                outcome: outcome.into(),
                http_status: 200,
                write: outcome == "ok",
                signed_by: None,
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: Vec<JournalLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, journal.lines());
        assert_eq!(parsed[1].outcome, "ResourceInUse.InstanceInProcess");
    }

    #[test]
    fn request_ids_look_like_uuids_and_secrets_are_redacted() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
        let shown = redact(&serde_json::json!({
            "ClientToken": "tok",
            "PreExecutedFileSettings": [{"Path": "cos://x", "CosSecretKey": "k", "CosSecretId": "i"}],
            "Password": "p",
            "WebIdentityToken": "eyJhbGciOiJSUzI1NiJ9.e30.sig"
        }));
        let text = shown.to_string();
        assert!(text.contains("tok") && text.contains("cos://x"), "{text}");
        assert!(
            !text.contains("\"k\"")
                && !text.contains("\"i\"")
                && !text.contains("\"p\"")
                && !text.contains("eyJ"),
            "{text}"
        );
    }
}
