//! A wire-compatible fake Tencent Cloud EMR endpoint (API 2019-01-03) over a
//! [`SimModel`].
//!
//! What it checks and answers, as the real endpoint does (cloud-apis.md A):
//! - `POST /` only; every request's TC3-HMAC-SHA256 signature is recomputed
//!   with [`clusterscale_tencent::sign::verify`] from the configured secret,
//!   and `X-TC-Timestamp` must be within 5 minutes of the fake's clock.
//!   Failures answer `AuthFailure.InvalidAuthorization`,
//!   `AuthFailure.SecretIdNotFound`, `AuthFailure.SignatureExpire`,
//!   `AuthFailure.SignatureFailure` or `AuthFailure.TokenFailure`.
//! - Answers are HTTP 200 `{"Response": {..., "RequestId"}}`; errors are
//!   `Response.Error {Code, Message}` in HTTP 200 bodies.
//! - Actions: `DescribeInstances`, `DescribeClusterNodes` (Limit at most 100;
//!   `Offset` is a page number, as documented; both 0 returns every node),
//!   `ScaleOutInstance` (answers `FlowId: 0` and a `TraceId`, as the current
//!   API does), `ScaleOutCluster` (TASK with POSTPAID_BY_HOUR or SPOTPAID,
//!   CORE with POSTPAID_BY_HOUR; the new nodes list the request's `Tags` and
//!   `ResourceSpec.InstanceType` as `Spec`; instance types set with
//!   [`TencentFake::refuse_instance_types`] or `PUT /_fake/refused-specs`
//!   are refused `ResourceUnavailable.ResourceSpecNotDefaultSpec`), `TerminateTasks` (no flow id), `TerminateClusterNodes`
//!   (`FlowId`), `DescribeClusterFlowStatusDetail` (by `FlowId` or `TraceId`).
//! - Cluster `Status`: 2 running; 4 scaling out; 16 destroying Task nodes
//!   (after `TerminateTasks`); 24 scaling in (after `TerminateClusterNodes`);
//!   302 when the last operation failed.
//! - Model refusals: busy → `ResourceInUse.InstanceInProcess`; quota →
//!   `LimitExceeded`; invalid → `InvalidParameter`; unknown node →
//!   `InvalidParameter.InvalidResourceIds` (`TerminateTasks`) or
//!   `ResourceNotFound.CvmInstanceNotFound` (`TerminateClusterNodes`); cluster
//!   not running → `UnsupportedOperation`. A `ClientToken` repeated within five
//!   minutes returns the first answer and changes nothing (the model's rule).
//! - Validation as the error list documents: one group per scale-out
//!   (`InvalidCountNum`), count > 0 (`InvalidCount`), Task count at most 20
//!   (`InvalidTaskCount`), PayMode/TimeUnit/TimeSpan pairs.
//!
//! STS ([`TencentFakeConfig::sts`], module [`sts`]): the same `POST /`
//! serves `AssumeRoleWithWebIdentity` (unsigned, `Authorization: SKIP`, the
//! only action accepted unsigned), checking the JWT with the configured
//! OIDC provider on the fake's clock, and issuing short-lived keys. An EMR
//! request signed with a temporary SecretId is verified with its temporary
//! SecretKey, must carry its token as `X-TC-Token` and must arrive before
//! the keys expire on the fake's clock, else `AuthFailure.TokenFailure`.
//! Every journal line says which key signed it ([`SignedBy`]: `static`,
//! `sts#<n>`, by fingerprint, never the id), and [`TencentFake::sts_stats`]
//! (`GET /_fake/sts`) counts the exchanges and the most that overlapped.
//!
//! Node ids: a model node with serial `n` is `emr-vm-<n in base 36>` (its
//! `EmrResourceId`) and `ins-<n in base 36>` (its `OrderNo`, the CVM id). One
//! master node (Flag 1, not destroyable) is listed besides the model's nodes.
//!
//! Faults ([`FakeFaults`](super::FakeFaults)): throttle →
//! `RequestLimitExceeded`; transient → `InternalError`; injected errors are
//! answered with their code (or bare `httpStatus`), without touching the
//! model, except code [`RESPONSE_LOST`], which is applied and then answered
//! with HTTP 504 (or its `httpStatus`), like the model's `lose_responses`.
//! Scale writes draw [`WriteFault`]s: refused as `InternalError` in EMR's
//! envelope (HTTP 200, nothing applied), applied and answered by a bare
//! gateway 504, or answered by an nginx-style HTML 502 page (applied unless
//! `proxyErrorDropsWrite`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{
    control_routes, key_fingerprint, malform_json, redact, request_id, Admission, FakeControl,
    FakeOptions, InjectedError, Journal, JournalLine, Malformed, SignedBy, WriteFault,
};
use crate::fleet::{Fleet, Member};
use clusterscale_core::api::{Direction, NodeGroup};
use clusterscale_core::clock::Clock;
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_sim::{FlowState, SimError, SimModel, SimNode};
use clusterscale_tencent::sign::{parse_authorization, verify};
use clusterscale_tencent::wire::{self, flag, flow_status, NodeHardwareInfo};
use clusterscale_tencent::SERVICE;

pub mod sts;

use sts::{StsFakeConfig, StsState, StsStats};

/// How far `X-TC-Timestamp` may be from the fake's clock, seconds.
pub const TIMESTAMP_WINDOW_SECONDS: i64 = 300;
/// Largest `TaskCount` of one `ScaleOutInstance`.
pub const MAX_TASK_COUNT: i64 = 20;
/// The code of an [`InjectedError`] that is applied first and then answered
/// with its `httpStatus` (default 504): an answer lost on the way back. The
/// same code as the model's `lose_responses` fault.
pub const RESPONSE_LOST: &str = "ResponseLost";
/// Largest `ClientToken` length.
pub const MAX_CLIENT_TOKEN_LEN: usize = 64;

const ACTIONS: &[&str] = &[
    "DescribeInstances",
    "DescribeClusterNodes",
    "ScaleOutInstance",
    "ScaleOutCluster",
    "TerminateTasks",
    "TerminateClusterNodes",
    "DescribeClusterFlowStatusDetail",
];

/// What a node added by ScaleOutCluster carries besides the model's node:
/// the request's tags, instance type and charge type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAttributes {
    /// `(TagKey, TagValue)` pairs, listed as the node's `Tags`.
    pub tags: Vec<(String, String)>,
    /// `ResourceSpec.InstanceType`, listed as the node's `Spec`; `None`:
    /// the cluster's default spec.
    pub instance_type: Option<String>,
    /// `InstanceChargeType`. DescribeClusterNodes has no field that says
    /// spot (`ChargeType` is 0 pay-as-you-go / 1 monthly): both are listed
    /// as `ChargeType: 0`.
    pub charge_type: String,
}

/// The spec a node is listed with when the request named none.
pub const DEFAULT_SPEC: &str = "CVM.S5";

/// The accepted credentials and the fake's settings.
#[derive(Clone, Debug)]
pub struct TencentFakeConfig {
    /// The one SecretId the fake accepts.
    pub secret_id: String,
    /// Its SecretKey, to recompute signatures.
    pub secret_key: SecretString,
    /// When set, `X-TC-Token` must equal it (STS credentials).
    pub token: Option<SecretString>,
    /// When set, the cluster exists only in this `X-TC-Region`.
    pub region: Option<String>,
    /// When set, the fake also serves STS `AssumeRoleWithWebIdentity` and
    /// accepts the temporary keys it issues ([`sts`]).
    pub sts: Option<StsFakeConfig>,
    pub options: FakeOptions,
}

impl TencentFakeConfig {
    /// Accept `secret_id` / `secret_key`, any region, no token, default options.
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            secret_id: secret_id.into(),
            secret_key: SecretString::new(secret_key),
            token: None,
            region: None,
            sts: None,
            options: FakeOptions::default(),
        }
    }
}

/// The fake endpoint. Build it, keep its [`control`](Self::control), then
/// [`serve`](Self::serve) it.
pub struct TencentFake {
    inner: Arc<Inner>,
    control_routes: bool,
    /// Multi-instance mode: every instance id of the fleet has its own
    /// model and book; the account (credentials, faults, rate limits,
    /// journal) is shared.
    fleet: Option<Arc<Fleet<Inner>>>,
}

pub use crate::fleet::ModelFactory;

/// The instance a request names: `InstanceId`, or the first of
/// `InstanceIds` (DescribeInstances). Unknown ids go to the fleet's default
/// instance, which answers `ResourceNotFound.InstanceNotFound`.
fn named_instance(body: &[u8]) -> Option<String> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    v.get("InstanceId")
        .and_then(Value::as_str)
        .or_else(|| v.get("InstanceIds")?.get(0)?.as_str())
        .map(str::to_string)
}

/// Serve a fake EMR endpoint for `model` on `listener` until the process ends.
/// The cluster's `InstanceId` is `model.id()`.
pub async fn serve_tencent(
    listener: tokio::net::TcpListener,
    model: Arc<SimModel>,
    config: TencentFakeConfig,
) -> std::io::Result<()> {
    TencentFake::new(model, config)?.serve(listener).await
}

impl TencentFake {
    /// Fails only when the journal file cannot be opened.
    pub fn new(model: Arc<SimModel>, config: TencentFakeConfig) -> std::io::Result<Self> {
        let journal = Journal::open(config.options.journal_path.as_deref())?;
        let control = Arc::new(FakeControl::new(config.options.faults.clone(), journal));
        let started = model.now();
        Ok(Self {
            control_routes: config.options.control_routes,
            fleet: None,
            inner: Arc::new(Inner {
                clock: config.options.clock.clone(),
                secret_id: config.secret_id,
                secret_key: config.secret_key,
                token: config.token,
                region: config.region,
                sts: config.sts.map(|c| Arc::new(StsState::new(c))),
                control,
                book: Mutex::new(Book {
                    started,
                    ..Book::new(&model)
                }),
                model,
                writes: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// A multi-instance fake: one account (these credentials, one set of
    /// faults and throttling windows, one journal) serving every id of
    /// `ids`, each with its own model, made by `make_model` on the first
    /// request naming it. Requests naming any other id are answered
    /// `ResourceNotFound.InstanceNotFound`. `ids` must not be empty.
    pub fn fleet(
        ids: Vec<String>,
        make_model: ModelFactory,
        config: TencentFakeConfig,
    ) -> std::io::Result<Self> {
        let first = Fleet::<Inner>::first(&ids)?;
        let mut fake = Self::new(make_model(&first), config)?;
        fake.fleet = Some(Arc::new(Fleet::new(
            ids,
            make_model,
            first,
            fake.inner.clone(),
        )));
        Ok(fake)
    }

    /// The models of the instances used so far, by id (the one model in
    /// single-instance mode).
    pub fn models(&self) -> Vec<Arc<SimModel>> {
        match &self.fleet {
            Some(f) => f.models(),
            None => vec![self.inner.model.clone()],
        }
    }

    /// The model of cluster `id` (made now in multi-instance mode, as the
    /// first request naming it would), or `None` for an id the fake does not
    /// serve.
    pub fn model_of(&self, id: &str) -> Option<Arc<SimModel>> {
        match &self.fleet {
            Some(f) => f.get(id).map(|m| m.model.clone()),
            None => (self.inner.model.id() == id).then(|| self.inner.model.clone()),
        }
    }

    /// Faults and journal, for in-process tests.
    pub fn control(&self) -> Arc<FakeControl> {
        self.inner.control.clone()
    }

    /// What the fake STS has seen (zeros without [`TencentFakeConfig::sts`]).
    pub fn sts_stats(&self) -> StsStats {
        self.inner
            .sts
            .as_ref()
            .map(|s| s.stats())
            .unwrap_or_default()
    }

    /// The HTTP routes: `POST /`, plus `/_fake/*` when enabled.
    pub fn router(&self) -> Router {
        let api = match &self.fleet {
            Some(fleet) => Router::new()
                .route("/", post(handle_fleet))
                .with_state(fleet.clone()),
            None => Router::new()
                .route("/", post(handle))
                .with_state(self.inner.clone()),
        };
        if self.control_routes {
            api.merge(control_routes(self.inner.control.clone()))
                .merge(refused_specs_route(RefusedSpecs {
                    inner: self.inner.clone(),
                    fleet: self.fleet.clone(),
                }))
                .merge(sts_route(self.inner.sts.clone()))
        } else {
            api
        }
    }

    /// List `auto_scaled` nodes of `group` that EMR's own auto-scaling added
    /// (`AutoFlag` 1) and `pods` pod resources (`HardwareResourceType` pod),
    /// besides the model's nodes. They are newer than every model node and
    /// `Destroyable`, so a client that counts or picks them shows it; the
    /// model knows nothing of them (a removal naming one is refused).
    pub fn add_unmanaged_nodes(&self, group: NodeGroup, auto_scaled: usize, pods: usize) {
        let mut book = lock(&self.inner.book);
        let now = self.inner.model.now() + jiff::SignedDuration::from_hours(1);
        for i in 0..auto_scaled + pods {
            let serial = 900_000 + book.extra.len() as i64;
            let mut n = node_info(
                &SimNode {
                    id: format!("extra-{serial}"),
                    serial,
                    group,
                    removable: true,
                },
                now,
            );
            if i < auto_scaled {
                n.auto_flag = Some(1);
                n.name_tag = Some(format!("auto.{serial}"));
            } else {
                n.hardware_resource_type = Some(wire::HARDWARE_POD.into());
                n.order_no = None;
                n.name_tag = Some(format!("pod.{serial}"));
            }
            book.extra.push(n);
        }
    }

    /// Leave these response fields (e.g. `Status`, `ClusterId`, `Flag`,
    /// `FlowTotalStatus`) out of every answer, at any depth.
    pub fn omit_fields(&self, fields: &[&str]) {
        lock(&self.inner.book).omit = fields.iter().map(|f| f.to_string()).collect();
    }

    /// Report every finished flow's "Apply For Resource" stage as partially
    /// completed (`StageInfoDetail.Status` 3), `FlowTotalStatus` still 2.
    pub fn report_partial_stages(&self, on: bool) {
        lock(&self.inner.book).partial_stages = on;
    }

    /// ScaleOutCluster refuses these instance types with
    /// `ResourceUnavailable.ResourceSpecNotDefaultSpec` (replacing the list;
    /// every instance of a fleet, including those made later).
    pub fn refuse_instance_types(&self, types: &[&str]) {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        lock(&self.inner.book).refused_specs = types.clone();
        if let Some(fleet) = &self.fleet {
            fleet.for_each(|m| lock(&m.book).refused_specs = types.clone());
        }
    }

    /// The attributes of the nodes ScaleOutCluster added (of the one
    /// instance, or the fleet's first), by model node id.
    pub fn node_attributes(&self) -> HashMap<String, NodeAttributes> {
        self.inner.sync_attributes();
        lock(&self.inner.book).attrs.clone()
    }

    /// Serve on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

/// `PUT /_fake/refused-specs` (`{"instanceTypes": ["S5.LARGE8", ...]}`):
/// [`TencentFake::refuse_instance_types`], for a fake run as a process.
fn refused_specs_route(fake: RefusedSpecs) -> Router {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        instance_types: Vec<String>,
    }
    async fn put(State(fake): State<RefusedSpecs>, axum::Json(b): axum::Json<Body>) -> StatusCode {
        let types: Vec<&str> = b.instance_types.iter().map(String::as_str).collect();
        fake.apply(&types);
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/_fake/refused-specs", axum::routing::put(put))
        .with_state(fake)
}

/// `GET /_fake/sts`: [`TencentFake::sts_stats`], for a fake run as a
/// process; `GET /_fake/sts/issued`: the secret halves of every key issued,
/// for a test's secret grep.
fn sts_route(sts: Option<Arc<StsState>>) -> Router {
    async fn get(State(sts): State<Option<Arc<StsState>>>) -> axum::Json<StsStats> {
        axum::Json(sts.map(|s| s.stats()).unwrap_or_default())
    }
    async fn issued(State(sts): State<Option<Arc<StsState>>>) -> axum::Json<Vec<String>> {
        axum::Json(sts.map(|s| s.issued_secrets()).unwrap_or_default())
    }
    Router::new()
        .route("/_fake/sts", axum::routing::get(get))
        .route("/_fake/sts/issued", axum::routing::get(issued))
        .with_state(sts)
}

/// What the refused-specs route needs of the fake.
#[derive(Clone)]
struct RefusedSpecs {
    inner: Arc<Inner>,
    fleet: Option<Arc<Fleet<Inner>>>,
}

impl RefusedSpecs {
    fn apply(&self, types: &[&str]) {
        let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        lock(&self.inner.book).refused_specs = types.clone();
        if let Some(fleet) = &self.fleet {
            fleet.for_each(|m| lock(&m.book).refused_specs = types.clone());
        }
    }
}

struct Inner {
    model: Arc<SimModel>,
    secret_id: String,
    secret_key: SecretString,
    token: Option<SecretString>,
    region: Option<String>,
    /// The account's STS, shared by every instance of a fleet.
    sts: Option<Arc<StsState>>,
    clock: Arc<dyn Clock>,
    control: Arc<FakeControl>,
    book: Mutex<Book>,
    /// Serialises write actions, so that each journal line's `write` is exact.
    writes: tokio::sync::Mutex<()>,
}

/// What the fake remembers beyond the model.
#[derive(Debug, Default)]
struct Book {
    started: Timestamp,
    flows: HashMap<String, FlowInfo>,
    /// TraceId -> flow id.
    traces: HashMap<String, String>,
    /// When each node was first listed (its `ApplyTime`).
    applied: HashMap<String, Timestamp>,
    /// Listed besides the model's nodes, never counted by the model: nodes
    /// EMR's auto-scaling added (`AutoFlag` 1) and pod resources.
    extra: Vec<NodeHardwareInfo>,
    /// Response fields left out of every answer (the SDK makes all optional).
    omit: Vec<String>,
    /// Finished flows report their "Apply For Resource" stage with `Status`
    /// 3 (partially completed).
    partial_stages: bool,
    /// Model nodes already seen (the initial ones, and every one listed or
    /// present before a write): a node not in it is new.
    known: std::collections::HashSet<String>,
    /// The attributes of the accepted ScaleOutCluster whose nodes have not
    /// all arrived yet, and its flow id.
    pending: Option<(String, NodeAttributes)>,
    /// Attributes of the nodes ScaleOutCluster added, by model node id.
    attrs: HashMap<String, NodeAttributes>,
    /// Instance types ScaleOutCluster refuses with
    /// `ResourceUnavailable.ResourceSpecNotDefaultSpec`.
    refused_specs: Vec<String>,
}

impl Book {
    fn new(model: &SimModel) -> Self {
        Self {
            started: model.now(),
            known: model.nodes().into_iter().map(|n| n.id).collect(),
            ..Book::default()
        }
    }
}

#[derive(Clone, Debug)]
struct FlowInfo {
    kind: FlowKind,
    trace_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowKind {
    ScaleOut(NodeGroup),
    TerminateTasks,
    TerminateNodes(NodeGroup),
}

impl FlowKind {
    fn name(self) -> &'static str {
        match self {
            FlowKind::ScaleOut(NodeGroup::Core) => "Scale Out Core",
            FlowKind::ScaleOut(NodeGroup::Task) => "Scale Out Task",
            FlowKind::TerminateTasks => "Terminate Task",
            FlowKind::TerminateNodes(NodeGroup::Core) => "Scale In Core",
            FlowKind::TerminateNodes(NodeGroup::Task) => "Scale In Task",
        }
    }
}

/// A request that passed the common checks.
struct Admitted {
    params: Value,
    /// The cluster exists in the request's region.
    visible: bool,
    /// Apply the request, then answer with this instead (an injected
    /// [`RESPONSE_LOST`], a lost answer or an applied proxy error).
    lose_answer: Option<Reply>,
}

/// The scale writes, which draw [`WriteFault`]s.
const WRITE_ACTIONS: &[&str] = &[
    "ScaleOutInstance",
    "ScaleOutCluster",
    "TerminateTasks",
    "TerminateClusterNodes",
];

/// The fields a [`Malformed::WrongType`] answer spoils, the first present:
/// the error code, the cluster status, the flow's status and trace, the node
/// list, the flow id.
const NEEDED_FIELDS: &[&str] = &[
    "Code",
    "Status",
    "FlowTotalStatus",
    "TraceId",
    "NodeList",
    "FlowId",
    "RequestId",
];

/// A proxy's error page in front of the API (not EMR's envelope).
fn proxy_page(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    )
}

/// A handler's answer, before the envelope.
#[derive(Debug)]
enum Reply {
    Ok(Value),
    Error {
        code: String,
        message: String,
    },
    Status(StatusCode),
    /// A proxy's HTML error page with this status.
    Html(StatusCode),
    /// The connection is cut after the status line: no answer arrives.
    Reset,
}

impl Reply {
    fn error(code: &str, message: impl Into<String>) -> Self {
        Reply::Error {
            code: code.to_string(),
            message: message.into(),
        }
    }

    fn ok(body: impl serde::Serialize) -> Self {
        match serde_json::to_value(body) {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::error(
                "InternalError",
                format!("fake could not encode its answer: {e}"),
            ),
        }
    }
}

async fn handle_fleet(
    State(fleet): State<Arc<Fleet<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = fleet.member(named_instance(&body).as_deref());
    handle(State(inner), headers, body).await
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let at = inner.clock.now();
    let request_id = request_id();
    let action = header_str(&headers, "x-tc-action")
        .unwrap_or_default()
        .to_string();
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let params = parsed.as_ref().map(redact).unwrap_or(Value::Null);
    let delay = inner.control.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let signed_by = inner.signer(&headers);
    let (reply, write) = inner.process(&action, &headers, &body, parsed).await;
    let omit = lock(&inner.book).omit.clone();
    let (status, outcome, answer) = match reply {
        Reply::Ok(mut v) => {
            strip(&mut v, &omit);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("RequestId".into(), Value::String(request_id.clone()));
            }
            (
                StatusCode::OK,
                "ok".to_string(),
                json!({ "Response": v }).to_string(),
            )
        }
        Reply::Error { code, message } => {
            let answer = json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}});
            (StatusCode::OK, code, answer.to_string())
        }
        Reply::Status(s) => (s, format!("HTTP {}", s.as_u16()), String::new()),
        Reply::Html(s) => (
            s,
            format!("HTTP {} (proxy page)", s.as_u16()),
            proxy_page(s),
        ),
        Reply::Reset => (
            StatusCode::OK,
            "connection reset".to_string(),
            String::new(),
        ),
    };
    let (status, outcome, answer) = match inner
        .control
        .malformed(WRITE_ACTIONS.contains(&action.as_str()))
    {
        Some(kind) if !answer.is_empty() && !answer.starts_with('<') => {
            let note = format!("{outcome}; {}", kind.note());
            match kind {
                Malformed::Html200 => (StatusCode::OK, note, proxy_page(StatusCode::BAD_GATEWAY)),
                Malformed::Html502 => (
                    StatusCode::BAD_GATEWAY,
                    note,
                    proxy_page(StatusCode::BAD_GATEWAY),
                ),
                _ => (status, note, malform_json(kind, &answer, NEEDED_FIELDS)),
            }
        }
        _ => (status, outcome, answer),
    };
    let reset = outcome == "connection reset";
    let content_type = if answer.starts_with('<') {
        "text/html"
    } else {
        "application/json"
    };
    inner.control.record(JournalLine {
        at,
        cloud: "tencent".into(),
        action,
        request_id,
        params,
        outcome,
        http_status: status.as_u16(),
        write,
        signed_by,
    });
    if reset {
        return super::reset_response(status);
    }
    (status, [(header::CONTENT_TYPE, content_type)], answer).into_response()
}

/// Remove the keys `omit` from `v`, at any depth.
fn strip(v: &mut Value, omit: &[String]) {
    if omit.is_empty() {
        return;
    }
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !omit.contains(k));
            map.values_mut().for_each(|x| strip(x, omit));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| strip(x, omit)),
        _ => {}
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parse an action's parameters: a missing field is `MissingParameter`, a
/// wrong type `InvalidParameter`.
fn parse<T: DeserializeOwned>(params: &Value) -> Result<T, Reply> {
    T::deserialize(params).map_err(|e| {
        let detail = e.to_string();
        if detail.starts_with("missing field") {
            Reply::error(
                "MissingParameter",
                format!("The request is missing a required parameter: {detail}."),
            )
        } else {
            Reply::error(
                "InvalidParameter",
                format!("Invalid request parameter: {detail}."),
            )
        }
    })
}

/// `emr-vm-…` / `ins-…` suffix of a node serial: base 36, at least 8 digits.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 || out.len() < 8 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn resource_id(serial: i64) -> String {
    format!("emr-vm-{}", base36(serial.max(0) as u64))
}

fn cvm_id(serial: i64) -> String {
    format!("ins-{}", base36(serial.max(0) as u64))
}

fn apply_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn lock(m: &Mutex<Book>) -> MutexGuard<'_, Book> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A model refusal in EMR's words. `node_not_found` is the action's code for
/// an unknown node.
fn sim_reply(e: SimError, node_not_found: &str) -> Reply {
    match e {
        SimError::Busy { flow_id } => Reply::error(
            "ResourceInUse.InstanceInProcess",
            format!("The instance is in a flow (FlowId {flow_id}); retry when it has finished."),
        ),
        SimError::NotRunning(reason) => Reply::error(
            "UnsupportedOperation",
            format!("The operation is not supported in the current cluster status: {reason}."),
        ),
        SimError::Quota { limit, requested } => Reply::error(
            "LimitExceeded",
            format!("Quota exceeded: the cluster would have {requested} nodes, the account allows {limit}."),
        ),
        SimError::Invalid(m) => Reply::error("InvalidParameter", m),
        SimError::NodeNotFound(id) => Reply::error(node_not_found, format!("Node {id} does not exist.")),
        SimError::Injected(e) if e.code == RESPONSE_LOST => Reply::Status(StatusCode::GATEWAY_TIMEOUT),
        SimError::Injected(e) => Reply::Error {
            code: e.code,
            message: e.message,
        },
    }
}

fn injected_reply(e: InjectedError) -> Reply {
    match e.http_status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) => Reply::Status(status),
        None => Reply::Error {
            code: e.code,
            message: if e.message.is_empty() {
                "Injected by the fake.".into()
            } else {
                e.message
            },
        },
    }
}

impl Member for Inner {
    fn model(&self) -> &Arc<SimModel> {
        &self.model
    }

    /// Another instance of the same account: the same credentials, clock
    /// and [`FakeControl`] (faults, throttling windows, journal), its own
    /// model and book.
    fn sibling(&self, _id: &str, model: Arc<SimModel>) -> Inner {
        let refused_specs = lock(&self.book).refused_specs.clone();
        Inner {
            clock: self.clock.clone(),
            secret_id: self.secret_id.clone(),
            secret_key: self.secret_key.clone(),
            token: self.token.clone(),
            region: self.region.clone(),
            sts: self.sts.clone(),
            control: self.control.clone(),
            book: Mutex::new(Book {
                refused_specs,
                ..Book::new(&model)
            }),
            model,
            writes: tokio::sync::Mutex::new(()),
        }
    }
}

impl Inner {
    async fn process(
        &self,
        action: &str,
        headers: &HeaderMap,
        body: &[u8],
        parsed: Option<Value>,
    ) -> (Reply, bool) {
        if action == clusterscale_tencent::sts::ACTION {
            if let Some(sts) = &self.sts {
                let now = self.clock.now();
                return (
                    sts.assume_role(headers, parsed, now, &self.control).await,
                    false,
                );
            }
        }
        let admitted = match self.admit(action, headers, body, parsed) {
            Ok(a) => a,
            Err(reply) => return (reply, false),
        };
        let (params, visible) = (&admitted.params, admitted.visible);
        let (reply, wrote) = match action {
            "DescribeInstances" => (self.describe_instances(params, visible), false),
            "DescribeClusterNodes" => (self.describe_cluster_nodes(params, visible), false),
            "DescribeClusterFlowStatusDetail" => (self.describe_flow(params, visible), false),
            write_action => {
                let _serial = self.writes.lock().await;
                let before = self.model.write_count();
                // Nodes that arrived since the last look belong to the
                // flows before this write.
                self.sync_attributes();
                let reply = match write_action {
                    "ScaleOutInstance" => self.scale_out(params, visible),
                    "ScaleOutCluster" => self.scale_out_cluster(params, visible),
                    "TerminateTasks" => self.terminate_tasks(params, visible),
                    _ => self.terminate_cluster_nodes(params, visible),
                };
                (reply, self.model.write_count() > before)
            }
        };
        match admitted.lose_answer {
            Some(lost) => (lost, wrote),
            None => (reply.unwrap_or_else(|r| r), wrote),
        }
    }

    /// The checks every request goes through, in the real endpoint's order:
    /// signature, version, action, then the injected faults, region and body.
    /// `body` is what was signed; `parsed` is that body as JSON, if it is.
    fn admit(
        &self,
        action: &str,
        headers: &HeaderMap,
        body: &[u8],
        parsed: Option<Value>,
    ) -> Result<Admitted, Reply> {
        self.authenticate(headers, body)?;
        match header_str(headers, "x-tc-version") {
            Some(wire::VERSION) => {}
            Some(v) => {
                return Err(Reply::error(
                    "NoSuchVersion",
                    format!("The API version `{v}` does not exist."),
                ))
            }
            None => {
                return Err(Reply::error(
                    "MissingParameter",
                    "The request is missing the X-TC-Version header.",
                ))
            }
        }
        if !ACTIONS.contains(&action) {
            return Err(Reply::error(
                "InvalidAction",
                format!("The action `{action}` does not exist."),
            ));
        }
        let mut lose_answer = None;
        match self.control.admit(action) {
            Admission::Proceed => {}
            Admission::Inject(e) if e.code == RESPONSE_LOST => {
                let status = e.http_status.and_then(|s| StatusCode::from_u16(s).ok());
                lose_answer = Some(Reply::Status(
                    status.unwrap_or(StatusCode::GATEWAY_TIMEOUT),
                ));
            }
            Admission::Inject(e) => return Err(injected_reply(e)),
            Admission::Throttle { limit } => {
                return Err(Reply::error(
                    "RequestLimitExceeded",
                    format!(
                        "Your current request times exceed the frequency limit `{limit}` per second of `{action}`. \
                         Please reduce the frequency of calls."
                    ),
                ))
            }
            Admission::Transient => {
                return Err(Reply::error("InternalError", "An internal error has occurred (injected). Retry your request."))
            }
        }
        if lose_answer.is_none() && WRITE_ACTIONS.contains(&action) {
            match self.control.write_fault() {
                WriteFault::None => {}
                // EMR handled the request and refused it, in its own envelope.
                WriteFault::Refuse => {
                    return Err(Reply::error(
                        "InternalError",
                        "An internal error has occurred. Retry your request, but if the problem persists, contact us.",
                    ))
                }
                WriteFault::LoseAnswer { reset: false } => {
                    lose_answer = Some(Reply::Status(StatusCode::GATEWAY_TIMEOUT))
                }
                WriteFault::LoseAnswer { reset: true } => lose_answer = Some(Reply::Reset),
                WriteFault::ProxyError { applied: true } => {
                    lose_answer = Some(Reply::Html(StatusCode::BAD_GATEWAY))
                }
                WriteFault::ProxyError { applied: false } => {
                    return Err(Reply::Html(StatusCode::BAD_GATEWAY))
                }
            }
        }
        let region = header_str(headers, "x-tc-region")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Reply::error(
                    "MissingParameter",
                    "The request is missing the X-TC-Region header.",
                )
            })?;
        let params = match parsed {
            Some(v @ Value::Object(_)) => v,
            _ => {
                return Err(Reply::error(
                    "InvalidParameter",
                    "The request body is not a JSON object.",
                ))
            }
        };
        Ok(Admitted {
            params,
            visible: self.region.as_deref().is_none_or(|r| r == region),
            lose_answer,
        })
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Reply> {
        let auth = header_str(headers, "authorization")
            .and_then(parse_authorization)
            .ok_or_else(|| {
                Reply::error(
                    "AuthFailure.InvalidAuthorization",
                    "The Authorization header is missing or is not a TC3-HMAC-SHA256 authorization.",
                )
            })?;
        // The account's own key, or temporary keys its STS issued.
        let issued =
            if auth.secret_id == self.secret_id {
                None
            } else {
                match self.sts.as_ref().and_then(|s| s.lookup(&auth.secret_id)) {
                    Some(k) => Some(k),
                    None => return Err(Reply::error(
                        "AuthFailure.SecretIdNotFound",
                        "The SecretId is not found, please ensure that your SecretId is correct.",
                    )),
                }
            };
        let timestamp: i64 = header_str(headers, "x-tc-timestamp")
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| {
                Reply::error(
                    "MissingParameter",
                    "The request is missing a valid X-TC-Timestamp header.",
                )
            })?;
        let now = self.clock.now().as_second();
        if (now - timestamp).abs() > TIMESTAMP_WINDOW_SECONDS {
            return Err(Reply::error(
                "AuthFailure.SignatureExpire",
                format!(
                    "Signature expired. Timestamp {timestamp} and server time {now} differ by more than {TIMESTAMP_WINDOW_SECONDS} seconds."
                ),
            ));
        }
        if auth.service != SERVICE {
            return Err(Reply::error(
                "AuthFailure.SignatureFailure",
                format!(
                    "The credential scope names service `{}`, expected `{SERVICE}`.",
                    auth.service
                ),
            ));
        }
        if let Some(k) = &issued {
            if self.clock.now() >= k.expires {
                return Err(Reply::error(
                    "AuthFailure.TokenFailure",
                    format!(
                        "Token verification failed: the temporary credentials expired at {}.",
                        k.expires
                    ),
                ));
            }
        }
        let secret_key = issued.as_ref().map_or(&self.secret_key, |k| &k.secret_key);
        verify(&auth, secret_key.expose(), timestamp, |name| header_str(headers, name), body).map_err(|e| {
            Reply::error(
                "AuthFailure.SignatureFailure",
                format!("The provided credentials could not be validated. Please check your signature is correct ({e})."),
            )
        })?;
        if let Some(k) = &issued {
            if header_str(headers, "x-tc-token") != Some(k.token.expose()) {
                return Err(Reply::error(
                    "AuthFailure.TokenFailure",
                    "Token verification failed, please check if your Token is correct.",
                ));
            }
            return Ok(());
        }
        if let Some(token) = &self.token {
            if header_str(headers, "x-tc-token") != Some(token.expose()) {
                return Err(Reply::error(
                    "AuthFailure.TokenFailure",
                    "The token is missing, expired or invalid.",
                ));
            }
        }
        Ok(())
    }

    /// Which key signed the request, for the journal (`None`: no TC3
    /// authorization, e.g. an unsigned STS exchange).
    fn signer(&self, headers: &HeaderMap) -> Option<SignedBy> {
        let auth = header_str(headers, "authorization").and_then(parse_authorization)?;
        let key = if auth.secret_id == self.secret_id {
            "static".to_string()
        } else {
            match self.sts.as_ref().and_then(|s| s.lookup(&auth.secret_id)) {
                Some(k) => format!("sts#{}", k.serial),
                None => "unknown".to_string(),
            }
        };
        Some(SignedBy {
            key,
            fingerprint: key_fingerprint(&auth.secret_id),
        })
    }

    fn instance_ok(&self, instance_id: &str, visible: bool) -> Result<(), Reply> {
        if visible && instance_id == self.model.id() {
            Ok(())
        } else {
            Err(Reply::error(
                "ResourceNotFound.InstanceNotFound",
                format!("The instance `{instance_id}` is not found."),
            ))
        }
    }

    /// The `Status` code of the cluster now.
    fn status_code(&self) -> i64 {
        match self.model.operation() {
            Some(op) => match lock(&self.book).flows.get(&op.flow_id).map(|f| f.kind) {
                Some(FlowKind::ScaleOut(_)) => 4,
                Some(FlowKind::TerminateTasks) => 16,
                Some(FlowKind::TerminateNodes(_)) => 24,
                // Started by a call whose answer was lost: known by direction only.
                None if op.direction == Direction::Out => 4,
                None => 24,
            },
            None if self.model.failure().is_some() => 302,
            None => 2,
        }
    }

    fn describe_instances(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::DescribeInstancesRequest = parse(params)?;
        if req.display_strategy != "clusterList" {
            return Err(Reply::error(
                "InvalidParameter.DisplayStrategyNotMatch",
                format!(
                    "DisplayStrategy `{}` is not supported.",
                    req.display_strategy
                ),
            ));
        }
        let observed = self
            .model
            .observe()
            .map_err(|e| sim_reply(e, "ResourceNotFound.InstanceNotFound"))?;
        let wanted = visible
            && (req.instance_ids.is_empty()
                || req.instance_ids.iter().any(|i| i == self.model.id()));
        let mut clusters = Vec::new();
        if wanted {
            let status = self.status_code();
            clusters.push(wire::ClusterInstancesInfo {
                id: Some(19541),
                cluster_id: Some(self.model.id().to_string()),
                status: Some(status),
                ftitle: Some(wire::cluster_status_name(status).to_string()),
                cluster_name: Some(format!("{} (fake)", self.model.id())),
                charge_type: Some(0),
                add_time: Some(apply_time(lock(&self.book).started)),
                emr_version: Some("EMR-V3.5.0".into()),
                project_id: Some(0),
                config: Some(wire::EmrProductConfigOutter {
                    master_node_size: Some(1),
                    core_node_size: Some(i64::from(observed.core)),
                    task_node_size: Some(i64::from(observed.task)),
                    com_node_size: Some(0),
                    router_node_size: Some(0),
                }),
            });
        }
        Ok(Reply::ok(wire::DescribeInstancesResponse {
            total_cnt: clusters.len() as i64,
            cluster_list: Some(clusters),
        }))
    }

    fn describe_cluster_nodes(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::DescribeClusterNodesRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        let limit = req.limit.unwrap_or(0);
        let page = req.offset.unwrap_or(0);
        if !(0..=wire::PAGE_LIMIT).contains(&limit) || page < 0 {
            return Err(Reply::error(
                "InvalidParameter",
                format!(
                    "Limit must be between 0 and {} and Offset must be >= 0.",
                    wire::PAGE_LIMIT
                ),
            ));
        }
        let flags: &[i64] = match req.node_flag.as_str() {
            "all" => &[flag::MASTER, flag::CORE, flag::TASK],
            "master" => &[flag::MASTER],
            "core" => &[flag::CORE],
            "task" => &[flag::TASK],
            "common" | "router" | "db" | "recyle" | "renew" => &[],
            other => {
                return Err(Reply::error(
                    "InvalidParameter",
                    format!("NodeFlag `{other}` is not supported."),
                ))
            }
        };
        self.sync_attributes();
        let nodes = self.model.nodes();
        let now = self.model.now();
        let mut listed = Vec::with_capacity(nodes.len() + 1);
        let mut book = lock(&self.book);
        let started = book.started;
        listed.push(master_node(started));
        for n in &nodes {
            let applied = *book.applied.entry(n.id.clone()).or_insert(now);
            let mut info = node_info(n, applied);
            if let Some(a) = book.attrs.get(&n.id) {
                info.tags = Some(
                    a.tags
                        .iter()
                        .map(|(k, v)| wire::Tag::new(k.clone(), v.clone()))
                        .collect(),
                );
                if let Some(t) = &a.instance_type {
                    info.spec = Some(t.clone());
                }
            }
            listed.push(info);
        }
        listed.extend(book.extra.iter().cloned());
        drop(book);
        listed.retain(|n| n.flag.is_some_and(|f| flags.contains(&f)));
        let total = listed.len() as i64;
        let page_of = if limit == 0 && page == 0 {
            listed
        } else {
            let size = if limit == 0 { wire::PAGE_LIMIT } else { limit };
            listed
                .into_iter()
                .skip(usize::try_from(page.saturating_mul(size)).unwrap_or(usize::MAX))
                .take(size as usize)
                .collect()
        };
        Ok(Reply::ok(wire::DescribeClusterNodesResponse {
            total_cnt: Some(total),
            node_list: Some(page_of),
        }))
    }

    fn scale_out(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::ScaleOutInstanceRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        match (req.pay_mode, req.time_unit.as_str()) {
            (0, "s") if req.time_span == 3600 => {}
            (0, "s") => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidTimeSpan",
                    "TimeSpan must be 3600 when TimeUnit is s.",
                ))
            }
            (1, "m") if req.time_span >= 1 => {}
            (1, "m") => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidTimeSpan",
                    "TimeSpan must be at least 1 month.",
                ))
            }
            (0 | 1, unit) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidTimeUnit",
                    format!("TimeUnit `{unit}` does not match PayMode {}.", req.pay_mode),
                ))
            }
            (other, _) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidPaymode",
                    format!("PayMode {other} is invalid."),
                ))
            }
        }
        if req
            .client_token
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_CLIENT_TOKEN_LEN)
        {
            return Err(Reply::error(
                "InvalidParameter.InvalidClientToken",
                format!("ClientToken must be 1 to {MAX_CLIENT_TOKEN_LEN} characters."),
            ));
        }
        let positive = |c: Option<i64>| c.filter(|n| *n != 0);
        let (group, count) = match (positive(req.task_count), positive(req.core_count)) {
            (Some(_), Some(_)) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidCountNum",
                    "Only one of TaskCount and CoreCount may be set in one request.",
                ))
            }
            (Some(n), None) => (NodeGroup::Task, n),
            (None, Some(n)) => (NodeGroup::Core, n),
            (None, None) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidCount",
                    "The scale-out count must be greater than 0.",
                ))
            }
        };
        if count < 0 {
            return Err(Reply::error(
                "InvalidParameter.InvalidCount",
                "The scale-out count must be greater than 0.",
            ));
        }
        if group == NodeGroup::Task && count > MAX_TASK_COUNT {
            return Err(Reply::error(
                "InvalidParameter.InvalidTaskCount",
                format!("The task count cannot exceed {MAX_TASK_COUNT}."),
            ));
        }
        let count = i32::try_from(count).map_err(|_| {
            Reply::error("InvalidParameter.InvalidCount", "The count is too large.")
        })?;
        let submitted = self
            .model
            .scale_out(group, count, req.client_token.as_deref())
            .map_err(|e| sim_reply(e, "InvalidParameter"))?;
        let flow = submitted.flow_id.unwrap_or_default();
        let trace_id = self.remember_flow(&flow, FlowKind::ScaleOut(group));
        let deal = format!(
            "{}{:08}",
            self.model.now().strftime("%Y%m%d"),
            flow.parse::<u64>().unwrap_or(0)
        );
        Ok(Reply::ok(wire::ScaleOutInstanceResponse {
            instance_id: Some(req.instance_id),
            deal_names: Some(vec![deal.clone()]),
            client_token: req.client_token,
            flow_id: Some(0),
            bill_id: Some(deal),
            trace_id: Some(trace_id),
        }))
    }

    /// Give the nodes that arrived since the last look the attributes of the
    /// pending ScaleOutCluster (one operation runs at a time, so every new
    /// node of its group is one of its nodes); every node is known after.
    fn sync_attributes(&self) {
        let nodes = self.model.nodes();
        let running = self.model.operation().map(|op| op.flow_id);
        let mut book = lock(&self.book);
        let pending = book.pending.clone();
        for n in nodes {
            if book.known.insert(n.id.clone()) {
                if let Some((_, a)) = &pending {
                    if n.group == NodeGroup::Task {
                        book.attrs.insert(n.id, a.clone());
                    }
                }
            }
        }
        // Its operation is over: later nodes are another operation's.
        if pending.is_some_and(|(flow, _)| running.as_deref() != Some(flow.as_str())) {
            book.pending = None;
        }
    }

    /// `ScaleOutCluster` (models.go `ScaleOutClusterRequestParams`): TASK
    /// (any charge type but PREPAID) or CORE (POSTPAID_BY_HOUR only), with
    /// the `ClientToken` rule of ScaleOutInstance; the new nodes carry the
    /// tags, the instance type and the charge type.
    fn scale_out_cluster(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::ScaleOutClusterRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        let group = match req.scale_out_node_config.node_flag.as_str() {
            "TASK" => NodeGroup::Task,
            "CORE" => NodeGroup::Core,
            other => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidNodeFlag",
                    format!("NodeFlag `{other}` is not supported (the fake scales TASK and CORE)."),
                ))
            }
        };
        match (req.instance_charge_type.as_str(), group) {
            (wire::CHARGE_POSTPAID_BY_HOUR, _) | (wire::CHARGE_SPOTPAID, NodeGroup::Task) => {}
            (wire::CHARGE_SPOTPAID, NodeGroup::Core) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidInstanceChargeType",
                    "SPOTPAID is supported for TASK nodes only.",
                ))
            }
            (wire::CHARGE_PREPAID, _) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidInstanceChargeType",
                    "PREPAID needs InstanceChargePrepaid, which the fake does not serve.",
                ))
            }
            (other, _) => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidInstanceChargeType",
                    format!("InstanceChargeType `{other}` is invalid."),
                ))
            }
        }
        if req
            .client_token
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_CLIENT_TOKEN_LEN)
        {
            return Err(Reply::error(
                "InvalidParameter.InvalidClientToken",
                format!("ClientToken must be 1 to {MAX_CLIENT_TOKEN_LEN} characters."),
            ));
        }
        let count = i32::try_from(req.scale_out_node_config.node_count)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Reply::error(
                    "InvalidParameter.InvalidCount",
                    "NodeCount must be between 1 and 500.",
                )
            })?;
        let instance_type = req
            .resource_spec
            .as_ref()
            .and_then(|r| r.instance_type.clone())
            .filter(|t| !t.is_empty());
        if let Some(t) = &instance_type {
            if lock(&self.book).refused_specs.contains(t) {
                return Err(Reply::error(
                    "ResourceUnavailable.ResourceSpecNotDefaultSpec",
                    format!("当前资源规格不存在默认规格 (the instance type `{t}` is not a spec of this cluster)."),
                ));
            }
        }
        let mut tags = Vec::new();
        for t in &req.tags {
            match (&t.tag_key, &t.tag_value) {
                (Some(k), v) if !k.is_empty() => {
                    tags.push((k.clone(), v.clone().unwrap_or_default()))
                }
                _ => {
                    return Err(Reply::error(
                        "InvalidParameter",
                        "Every tag needs a TagKey.",
                    ))
                }
            }
        }
        let before = self.model.write_count();
        let submitted = self
            .model
            .scale_out(group, count, req.client_token.as_deref())
            .map_err(|e| sim_reply(e, "InvalidParameter"))?;
        let flow = submitted.flow_id.unwrap_or_default();
        if self.model.write_count() > before {
            lock(&self.book).pending = Some((
                flow.clone(),
                NodeAttributes {
                    tags,
                    instance_type,
                    charge_type: req.instance_charge_type.clone(),
                },
            ));
        }
        let trace_id = self.remember_flow(&flow, FlowKind::ScaleOut(group));
        let deal = format!(
            "{}{:08}",
            self.model.now().strftime("%Y%m%d"),
            flow.parse::<u64>().unwrap_or(0)
        );
        Ok(Reply::ok(wire::ScaleOutClusterResponse {
            instance_id: Some(req.instance_id),
            client_token: req.client_token,
            flow_id: flow.parse::<i64>().ok(),
            trace_id: Some(trace_id),
            deal_names: Some(vec![deal.clone()]),
            bill_id: Some(deal),
        }))
    }

    fn terminate_tasks(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::TerminateTasksRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        let ids = self.resolve(
            &req.resource_ids,
            NodeGroup::Task,
            resource_id,
            "InvalidParameter.InvalidResourceIds",
        )?;
        let submitted = self
            .model
            .scale_in(NodeGroup::Task, ids.len() as i32, &ids, None)
            .map_err(|e| sim_reply(e, "InvalidParameter.InvalidResourceIds"))?;
        self.remember_flow(
            &submitted.flow_id.unwrap_or_default(),
            FlowKind::TerminateTasks,
        );
        Ok(Reply::ok(wire::TerminateTasksResponse {}))
    }

    fn terminate_cluster_nodes(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::TerminateClusterNodesRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        let group = match req.node_flag.as_str() {
            "CORE" => NodeGroup::Core,
            "TASK" => NodeGroup::Task,
            other => {
                return Err(Reply::error(
                    "InvalidParameter.InvalidNodeFlag",
                    format!("NodeFlag `{other}` is not supported by this endpoint (CORE or TASK)."),
                ))
            }
        };
        if let Some(t) = req
            .grace_down_time
            .filter(|t| *t != 0 && !(60..=1800).contains(t))
        {
            return Err(Reply::error(
                "InvalidParameter",
                format!("GraceDownTime must be between 60 and 1800, got {t}."),
            ));
        }
        let ids = self.resolve(
            &req.cvm_instance_ids,
            group,
            cvm_id,
            "ResourceNotFound.CvmInstanceNotFound",
        )?;
        let submitted = self
            .model
            .scale_in(group, ids.len() as i32, &ids, None)
            .map_err(|e| sim_reply(e, "ResourceNotFound.CvmInstanceNotFound"))?;
        let flow = submitted.flow_id.unwrap_or_default();
        self.remember_flow(&flow, FlowKind::TerminateNodes(group));
        Ok(Reply::ok(wire::TerminateClusterNodesResponse {
            flow_id: Some(flow.parse().unwrap_or(0)),
        }))
    }

    fn describe_flow(&self, params: &Value, visible: bool) -> Result<Reply, Reply> {
        let req: wire::DescribeClusterFlowStatusDetailRequest = parse(params)?;
        self.instance_ok(&req.instance_id, visible)?;
        let value = req.flow_param.f_value.trim();
        let flow_id = match req.flow_param.f_key.as_str() {
            "FlowId" => value.to_string(),
            "TraceId" => lock(&self.book)
                .traces
                .get(value)
                .cloned()
                .unwrap_or_default(),
            other => {
                return Err(Reply::error(
                    "InvalidParameter",
                    format!("FlowParam.FKey `{other}` must be FlowId or TraceId."),
                ))
            }
        };
        let unknown = || {
            Reply::error(
                "InvalidParameter.InvalidJobFlow",
                format!("The flow `{value}` does not exist."),
            )
        };
        if flow_id.is_empty() {
            return Err(unknown());
        }
        let state = self.model.flow(&flow_id).ok_or_else(unknown)?;
        let kind = lock(&self.book).flows.get(&flow_id).map(|f| f.kind);
        let name = kind.map(FlowKind::name).unwrap_or("Scale");
        let (status, progress, failed) = match state {
            FlowState::Running => {
                let progress = self
                    .model
                    .operation()
                    .filter(|op| op.flow_id == flow_id)
                    .map(|op| {
                        let total = op
                            .finishes
                            .duration_since(op.started)
                            .as_secs_f64()
                            .max(1e-9);
                        (self.model.now().duration_since(op.started).as_secs_f64() / total)
                            .clamp(0.0, 0.99)
                    });
                (flow_status::RUNNING, progress.unwrap_or(0.0), None)
            }
            FlowState::Succeeded => (flow_status::DONE, 1.0, None),
            FlowState::Failed(reason) => (flow_status::FAILED, 0.5, Some(reason)),
        };
        let stage = |n: &str, s: i64, reason: Option<String>| wire::StageInfoDetail {
            stage: Some(n.to_string()),
            name: Some(n.to_string()),
            status: Some(s),
            desc: Some(String::new()),
            failed_reason: Some(reason.unwrap_or_default()),
        };
        let stages = match (status, failed) {
            (flow_status::DONE, _) if lock(&self.book).partial_stages => vec![
                stage("Create Order", 2, None),
                wire::StageInfoDetail {
                    desc: Some("some resources were not delivered".into()),
                    ..stage(
                        "Apply For Resource",
                        wire::stage_status::PARTIALLY_COMPLETED,
                        None,
                    )
                },
                stage("End task", 2, None),
            ],
            (flow_status::DONE, _) => vec![
                stage("Create Order", 2, None),
                stage("Apply For Resource", 2, None),
                stage("End task", 2, None),
            ],
            (_, Some(reason)) => vec![
                stage("Create Order", 2, None),
                stage("Apply For Resource", -1, Some(reason)),
                stage("End task", 0, None),
            ],
            _ => vec![
                stage("Create Order", 2, None),
                stage("Apply For Resource", 1, None),
                stage("End task", 0, None),
            ],
        };
        let mut body = serde_json::to_value(wire::DescribeClusterFlowStatusDetailResponse {
            flow_total_status: Some(status),
            flow_total_progress: Some((progress * 100.0).round() / 100.0),
            flow_name: Some(name.to_string()),
            stage_details: Some(stages),
        })
        .map_err(|e| Reply::error("InternalError", e.to_string()))?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("FlowDesc".into(), json!([]));
            obj.insert("FlowExtraDetail".into(), Value::Null);
        }
        Ok(Reply::Ok(body))
    }

    /// Model node ids for wire ids of `group`; any unknown id is `code`.
    fn resolve(
        &self,
        wire_ids: &[String],
        group: NodeGroup,
        id_of: fn(i64) -> String,
        code: &str,
    ) -> Result<Vec<String>, Reply> {
        if wire_ids.is_empty() {
            return Err(Reply::error(code, "No node ids were given."));
        }
        let nodes = self.model.nodes();
        wire_ids
            .iter()
            .map(|w| {
                nodes
                    .iter()
                    .find(|n| n.group == group && id_of(n.serial) == *w)
                    .map(|n| n.id.clone())
                    .ok_or_else(|| {
                        Reply::error(
                            code,
                            format!(
                                "The node `{w}` is not a {} node of this cluster.",
                                group.as_str()
                            ),
                        )
                    })
            })
            .collect()
    }

    /// Remember what started `flow_id` and return its TraceId (the same one
    /// when the model answers a repeated ClientToken with the first flow).
    fn remember_flow(&self, flow_id: &str, kind: FlowKind) -> String {
        let mut book = lock(&self.book);
        if let Some(f) = book.flows.get(flow_id) {
            return f.trace_id.clone();
        }
        let trace_id = format!(
            "{}-{:06}-{flow_id}",
            self.model.now().as_second(),
            book.flows.len() + 1
        );
        book.traces.insert(trace_id.clone(), flow_id.to_string());
        book.flows.insert(
            flow_id.to_string(),
            FlowInfo {
                kind,
                trace_id: trace_id.clone(),
            },
        );
        trace_id
    }
}

fn master_node(started: Timestamp) -> NodeHardwareInfo {
    NodeHardwareInfo {
        flag: Some(flag::MASTER),
        emr_resource_id: Some(resource_id(0)),
        order_no: Some(cvm_id(0)),
        destroyable: Some(0),
        apply_time: Some(apply_time(started)),
        auto_flag: Some(0),
        hardware_resource_type: Some("host".into()),
        ip: Some("10.0.0.2".into()),
        spec: Some(DEFAULT_SPEC.into()),
        charge_type: Some(0),
        name_tag: Some("master.0".into()),
        tags: None,
    }
}

fn node_info(n: &SimNode, applied: Timestamp) -> NodeHardwareInfo {
    let serial = n.serial.max(0);
    NodeHardwareInfo {
        flag: Some(match n.group {
            NodeGroup::Core => flag::CORE,
            NodeGroup::Task => flag::TASK,
        }),
        emr_resource_id: Some(resource_id(serial)),
        order_no: Some(cvm_id(serial)),
        destroyable: Some(i64::from(n.removable)),
        apply_time: Some(apply_time(applied)),
        auto_flag: Some(0),
        hardware_resource_type: Some("host".into()),
        ip: Some(format!("10.0.{}.{}", 1 + serial / 250, 3 + serial % 250)),
        spec: Some(DEFAULT_SPEC.into()),
        charge_type: Some(0),
        name_tag: Some(format!("{}.{serial}", n.group.as_str())),
        tags: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterscale_core::cloud::{CloudError, ErrorClass};

    #[test]
    fn node_ids_look_like_emr_and_cvm_ids() {
        assert_eq!(resource_id(1), "emr-vm-00000001");
        assert_eq!(resource_id(36 * 36), "emr-vm-00000100");
        assert_eq!(cvm_id(35), "ins-0000000z");
        assert_eq!(base36(u64::MAX).len(), 13);
    }

    fn code(r: Reply) -> String {
        match r {
            Reply::Error { code, .. } => code,
            Reply::Status(s) | Reply::Html(s) => format!("HTTP {}", s.as_u16()),
            Reply::Reset => "reset".into(),
            Reply::Ok(v) => format!("ok {v}"),
        }
    }

    #[test]
    fn model_refusals_use_emr_codes() {
        let nf = "InvalidParameter.InvalidResourceIds";
        let cases = [
            (
                SimError::Busy {
                    flow_id: "7".into(),
                },
                "ResourceInUse.InstanceInProcess",
            ),
            (
                SimError::NotRunning("failed".into()),
                "UnsupportedOperation",
            ),
            (
                SimError::Quota {
                    limit: 10,
                    requested: 12,
                },
                "LimitExceeded",
            ),
            (SimError::Invalid("count".into()), "InvalidParameter"),
            (SimError::NodeNotFound("n".into()), nf),
        ];
        for (e, expected) in cases {
            assert_eq!(code(sim_reply(e, nf)), expected);
        }
        let lost = CloudError::new(ErrorClass::Transient, "scale_out", RESPONSE_LOST, "lost");
        assert_eq!(code(sim_reply(SimError::Injected(lost), nf)), "HTTP 504");
        let sold_out = CloudError::new(
            ErrorClass::Capacity,
            "scale_out",
            "ResourcesSoldOut.CvmSoldOut",
            "x",
        );
        assert_eq!(
            code(sim_reply(SimError::Injected(sold_out), nf)),
            "ResourcesSoldOut.CvmSoldOut"
        );
    }

    #[test]
    fn injected_errors_render_as_codes_or_bare_statuses() {
        let e = |status: Option<u16>| InjectedError {
            action: None,
            code: "InternalError".into(),
            message: String::new(),
            http_status: status,
        };
        assert_eq!(code(injected_reply(e(None))), "InternalError");
        assert_eq!(code(injected_reply(e(Some(502)))), "HTTP 502");
    }

    /// ScaleOutCluster's own checks: SPOTPAID for TASK only, no PREPAID,
    /// known charge types and node flags, a positive count.
    #[test]
    fn scale_out_cluster_checks_charge_type_and_node_flag() {
        use clusterscale_core::clock::ManualClock;
        let clock = Arc::new(ManualClock::default());
        let model = Arc::new(SimModel::new(
            "emr-unit0001",
            clusterscale_sim::SimConfig::default(),
            clock,
        ));
        let fake = TencentFake::new(model.clone(), TencentFakeConfig::new("id", "key")).unwrap();
        let call = |charge: &str, flag: &str, count: u64| {
            let params = json!({
                "InstanceChargeType": charge,
                "InstanceId": "emr-unit0001",
                "ScaleOutNodeConfig": {"NodeFlag": flag, "NodeCount": count},
                "ClientToken": format!("t-{charge}-{flag}-{count}"),
            });
            match fake.inner.scale_out_cluster(&params, true) {
                Ok(r) | Err(r) => code(r),
            }
        };
        assert_eq!(
            call("SPOTPAID", "CORE", 1),
            "InvalidParameter.InvalidInstanceChargeType"
        );
        assert_eq!(
            call("PREPAID", "TASK", 1),
            "InvalidParameter.InvalidInstanceChargeType"
        );
        assert_eq!(
            call("SPOT", "TASK", 1),
            "InvalidParameter.InvalidInstanceChargeType"
        );
        assert_eq!(
            call("SPOTPAID", "MASTER", 1),
            "InvalidParameter.InvalidNodeFlag"
        );
        assert_eq!(call("SPOTPAID", "TASK", 0), "InvalidParameter.InvalidCount");
        assert_eq!(model.write_count(), 0);
        assert!(call("SPOTPAID", "TASK", 2).starts_with("ok "));
        assert_eq!(model.write_count(), 1);
    }
}
