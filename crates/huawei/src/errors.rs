//! Huawei MRS / API gateway / IAM error codes and their classes.
//!
//! Every code of cloud-apis.md B3 has a row in [`CODES`]; the classes there
//! are marked "(inference)" in that document and are ours. Codes not in the
//! table fall back to the HTTP status ([`classify`]).

use reqwest::StatusCode;
use serde_json::Value;

use clusterscale_core::cloud::{CloudError, Effect, ErrorClass};

/// One row of the error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRow {
    pub code: &'static str,
    pub class: ErrorClass,
    /// The vendor's meaning, for logs and docs.
    pub meaning: &'static str,
}

const fn row(code: &'static str, class: ErrorClass, meaning: &'static str) -> CodeRow {
    CodeRow {
        code,
        class,
        meaning,
    }
}

/// The error table (cloud-apis.md B3).
///
/// Choices that are ours:
/// - 12000001 and MRS.102 are `Auth`: with token auth the client first
///   refreshes the token once, and only reports the error if that fails too.
/// - 12000013 / 12000014 (the scale-in / scale-out itself failed, "inspect,
///   then retry slowly") are `Capacity`: retried only after minutes, and
///   surfaced; the cluster is observed before any retry.
/// - 12000028 (Core maximum reached) is `Invalid`: the spec must change.
/// - 12000068 and 12000080 ("some nodes are not running, try again later")
///   and 12000012 (tasks are running) are `Busy`: the cluster refuses until
///   its own state changes, so they wait like "not running" (12000017).
///   cloud-apis.md suggests `Transient` for 12000068; the meaning is the same
///   as 12000080's, so both are `Busy`.
/// - 12000065 (yearly/monthly clusters cannot be resized) is `Billing`: never
///   retried hot, and [`from_response`] says exactly why.
/// - 12000090 (flavor not available in the AZ) is `Capacity`.
///
/// 12000012, 12000065, 12000080 and 12000090 are not in cloud-apis.md B3 nor
/// in the OTC Table 8; they come from the review in issue 9.
pub const CODES: &[CodeRow] = &[
    row(
        "12000001",
        ErrorClass::Auth,
        "identity verification invalid",
    ),
    row("12000002", ErrorClass::Invalid, "parameter invalid"),
    row("12000003", ErrorClass::NotFound, "cluster does not exist"),
    row("12000009", ErrorClass::Invalid, "method parameter invalid"),
    row(
        "12000012",
        ErrorClass::Busy,
        "tasks are running in the cluster, try again later",
    ),
    row(
        "12000013",
        ErrorClass::Capacity,
        "scale-in of the cluster failed",
    ),
    row(
        "12000014",
        ErrorClass::Capacity,
        "scale-out of the cluster failed",
    ),
    row("12000017", ErrorClass::Busy, "cluster is not running"),
    row(
        "12000018",
        ErrorClass::Busy,
        "a scale operation is in progress",
    ),
    row("12000019", ErrorClass::Transient, "failed to obtain hosts"),
    row(
        "12000028",
        ErrorClass::Invalid,
        "maximum number of Core nodes reached",
    ),
    row("12000029", ErrorClass::Transient, "failed to obtain quota"),
    row("12000030", ErrorClass::Quota, "node count exceeds quota"),
    row("12000031", ErrorClass::Quota, "vCPU count exceeds quota"),
    row("12000032", ErrorClass::Quota, "memory exceeds quota"),
    row("12000033", ErrorClass::Quota, "disk count exceeds quota"),
    row("12000034", ErrorClass::Quota, "disk capacity exceeds quota"),
    row("12000054", ErrorClass::Invalid, "operation not supported"),
    row("12000065", ErrorClass::Billing, YEARLY_MONTHLY),
    row("12000067", ErrorClass::Invalid, "cluster version too old"),
    row(
        "12000068",
        ErrorClass::Busy,
        "some nodes are not running, try again later",
    ),
    row(
        "12000080",
        ErrorClass::Busy,
        "some nodes are not running, try again later",
    ),
    row(
        "12000090",
        ErrorClass::Capacity,
        "the flavor is not available in the availability zone",
    ),
    row("12000121", ErrorClass::Billing, "unpaid order"),
    row("MRS.101", ErrorClass::Quota, "quota insufficient"),
    row("MRS.102", ErrorClass::Auth, "token null or invalid"),
    row("MRS.103", ErrorClass::Invalid, "invalid request"),
    row("MRS.104", ErrorClass::Capacity, "insufficient resources"),
    row(
        "MRS.105",
        ErrorClass::Capacity,
        "subnet out of IP addresses",
    ),
    row("MRS.201", ErrorClass::Transient, "ECS error"),
    row("MRS.202", ErrorClass::Transient, "IAM error"),
    row("MRS.203", ErrorClass::Transient, "VPC error"),
    row("MRS.300", ErrorClass::Transient, "system error"),
    row(
        "APIGW.0301",
        ErrorClass::Auth,
        "incorrect IAM authentication information (bad signature or token)",
    ),
    // Not in cloud-apis.md: the API gateway's throttling code (inference).
    row(
        "APIGW.0308",
        ErrorClass::Throttled,
        "request throttled by the API gateway",
    ),
];

/// What 12000065 means, said in every error that carries it.
pub const YEARLY_MONTHLY: &str =
    "yearly/monthly (prepaid) clusters cannot be resized through this API";

/// Codes whose message always starts with the table's meaning, because the
/// cloud's own text alone does not say what to do.
const EXPLAINED: &[&str] = &["12000065"];

/// Codes after which a token is refreshed once and the request repeated.
pub const TOKEN_REFRESH_CODES: &[&str] = &["12000001", "MRS.102"];

/// The table row of `code`, if any.
pub fn lookup(code: &str) -> Option<&'static CodeRow> {
    CODES.iter().find(|r| r.code == code)
}

/// Class of an error response: the table first, then the HTTP status.
pub fn classify(status: StatusCode, code: &str) -> ErrorClass {
    if let Some(row) = lookup(code) {
        return row.class;
    }
    match status.as_u16() {
        429 => ErrorClass::Throttled,
        401 | 403 => ErrorClass::Auth,
        404 => ErrorClass::NotFound,
        409 => ErrorClass::Busy,
        s if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Invalid,
    }
}

/// True when a token should be refreshed once and the request repeated.
pub fn wants_token_refresh(status: StatusCode, code: &str) -> bool {
    status == StatusCode::UNAUTHORIZED || TOKEN_REFRESH_CODES.contains(&code)
}

/// Code and message of an error body. Accepts `error_code`/`error_msg`,
/// `errorCode`/`errorMsg`, `code`/`message`, and IAM's
/// `{"error": {"code": 401, "message": ...}}`. Numbers become strings.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    for (c, m) in [
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ] {
        if let Some(code) = text(obj.get(c)) {
            return Some((code, text(obj.get(m)).unwrap_or_default()));
        }
    }
    let nested = obj.get("error")?.as_object()?;
    for (c, m) in [("code", "message"), ("error_code", "error_msg")] {
        if let Some(code) = text(nested.get(c)) {
            return Some((code, text(nested.get(m)).unwrap_or_default()));
        }
    }
    None
}

/// The request id Huawei returns in the `X-Request-Id` response header.
pub fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Build the [`CloudError`] for an HTTP error response (status >= 400).
pub fn from_response(
    action: &str,
    status: StatusCode,
    request_id: Option<String>,
    body: &[u8],
) -> CloudError {
    let error_body = parse_error_body(body);
    let parsed = error_body.is_some();
    let (code, message) = error_body.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(300).collect();
        let message = if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status}: {text}")
        };
        (format!("HTTP{}", status.as_u16()), message)
    });
    let message = match lookup(&code) {
        Some(row) if EXPLAINED.contains(&row.code) && !message.contains(row.meaning) => {
            if message.trim().is_empty() {
                row.meaning.to_string()
            } else {
                format!("{}: {}", row.meaning, message.trim())
            }
        }
        _ => message,
    };
    let effect = effect_of(status, &code, parsed);
    CloudError::new(classify(status, &code), action, code, message)
        .with_request_id(request_id)
        .with_effect(effect)
}

/// True for a code of the API gateway in front of MRS (`APIGW.0201`, ...;
/// `APIG.` in some regions), as opposed to a code of the service behind it.
pub fn is_gateway_code(code: &str) -> bool {
    code.starts_with("APIGW.") || code.starts_with("APIG.")
}

/// Whether an error answer means the request may have been applied.
///
/// - The service's own body (`{"error_code": "MRS.300", ...}` or a
///   `12000xxx` code), at any status, 500 included: MRS handled the request
///   and refused it. [`Effect::Refused`].
/// - A 5xx from the API gateway, with its own code (`504 APIGW.0201` request
///   timeout, 502/503 backend unavailable) or with no JSON error body at all
///   (a proxy's HTML page): the gateway answered in the service's place and
///   does not know whether the backend acted. [`Effect::Unknown`].
/// - A 4xx from the gateway (`401 APIGW.0301`, `429 APIGW.0308`) or a proxy:
///   refused before it was forwarded. [`Effect::Refused`].
pub fn effect_of(status: StatusCode, code: &str, cloud_body: bool) -> Effect {
    if cloud_body && !is_gateway_code(code) {
        return Effect::Refused;
    }
    if status.is_server_error() {
        Effect::Unknown
    } else {
        Effect::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One named case per row of cloud-apis.md B3 (code, status the gateway
    /// would use, expected class). The test fails naming the row.
    const ROWS: &[(&str, u16, ErrorClass)] = &[
        ("12000001", 401, ErrorClass::Auth),
        ("12000002", 400, ErrorClass::Invalid),
        ("12000009", 400, ErrorClass::Invalid),
        ("12000012", 400, ErrorClass::Busy),
        ("12000003", 404, ErrorClass::NotFound),
        ("12000013", 400, ErrorClass::Capacity),
        ("12000014", 400, ErrorClass::Capacity),
        ("12000017", 400, ErrorClass::Busy),
        ("12000018", 400, ErrorClass::Busy),
        ("12000019", 400, ErrorClass::Transient),
        ("12000028", 400, ErrorClass::Invalid),
        ("12000029", 400, ErrorClass::Transient),
        ("12000030", 400, ErrorClass::Quota),
        ("12000031", 400, ErrorClass::Quota),
        ("12000032", 400, ErrorClass::Quota),
        ("12000033", 400, ErrorClass::Quota),
        ("12000034", 400, ErrorClass::Quota),
        ("12000054", 400, ErrorClass::Invalid),
        ("12000065", 400, ErrorClass::Billing),
        ("12000067", 400, ErrorClass::Invalid),
        ("12000068", 400, ErrorClass::Busy),
        ("12000080", 400, ErrorClass::Busy),
        ("12000090", 400, ErrorClass::Capacity),
        ("12000121", 400, ErrorClass::Billing),
        ("MRS.101", 400, ErrorClass::Quota),
        ("MRS.102", 401, ErrorClass::Auth),
        ("MRS.103", 400, ErrorClass::Invalid),
        ("MRS.104", 400, ErrorClass::Capacity),
        ("MRS.105", 400, ErrorClass::Capacity),
        ("MRS.201", 500, ErrorClass::Transient),
        ("MRS.202", 500, ErrorClass::Transient),
        ("MRS.203", 500, ErrorClass::Transient),
        ("MRS.300", 500, ErrorClass::Transient),
        ("APIGW.0301", 401, ErrorClass::Auth),
        ("APIGW.0308", 429, ErrorClass::Throttled),
        // HTTP-level rows: unknown code, class from the status.
        ("HTTP429", 429, ErrorClass::Throttled),
        ("HTTP500", 500, ErrorClass::Transient),
        ("HTTP502", 502, ErrorClass::Transient),
        ("HTTP503", 503, ErrorClass::Transient),
        ("HTTP504", 504, ErrorClass::Transient),
    ];

    fn check(code: &str, status: u16, expected: ErrorClass) {
        let status = StatusCode::from_u16(status).unwrap();
        let body = format!(r#"{{"error_code":"{code}","error_msg":"text of {code}"}}"#);
        let e = from_response(
            "PUT cluster_infos",
            status,
            Some("req-1".into()),
            body.as_bytes(),
        );
        assert_eq!(e.class, expected, "row {code}");
        assert_eq!(e.code, code, "row {code}");
        if EXPLAINED.contains(&code) {
            let meaning = lookup(code).expect("row").meaning;
            assert_eq!(
                e.message,
                format!("{meaning}: text of {code}"),
                "row {code}"
            );
        } else {
            assert_eq!(e.message, format!("text of {code}"), "row {code}");
        }
        assert_eq!(e.request_id.as_deref(), Some("req-1"), "row {code}");
        assert_eq!(e.action, "PUT cluster_infos");
    }

    macro_rules! row_tests {
        ($($name:ident => $code:literal),* $(,)?) => {
            $(
                #[test]
                fn $name() {
                    let (code, status, class) = *ROWS.iter().find(|r| r.0 == $code).expect("row exists");
                    check(code, status, class);
                }
            )*
        };
    }

    row_tests! {
        code_12000001_identity_invalid_is_auth => "12000001",
        code_12000002_parameter_invalid => "12000002",
        code_12000009_parameter_invalid => "12000009",
        code_12000012_tasks_running_is_busy => "12000012",
        code_12000003_cluster_not_found => "12000003",
        code_12000013_scale_in_failed_is_capacity => "12000013",
        code_12000014_scale_out_failed_is_capacity => "12000014",
        code_12000017_not_running_is_busy => "12000017",
        code_12000018_scaling_is_busy => "12000018",
        code_12000019_hosts_unavailable_is_transient => "12000019",
        code_12000028_core_max_is_invalid => "12000028",
        code_12000029_quota_unavailable_is_transient => "12000029",
        code_12000030_node_quota => "12000030",
        code_12000031_vcpu_quota => "12000031",
        code_12000032_memory_quota => "12000032",
        code_12000033_disk_count_quota => "12000033",
        code_12000034_disk_capacity_quota => "12000034",
        code_12000054_unsupported_is_invalid => "12000054",
        code_12000065_yearly_monthly_is_billing => "12000065",
        code_12000067_version_too_old_is_invalid => "12000067",
        code_12000068_nodes_not_running_is_busy => "12000068",
        code_12000080_nodes_not_running_is_busy => "12000080",
        code_12000090_flavor_not_in_az_is_capacity => "12000090",
        code_12000121_unpaid_is_billing => "12000121",
        code_mrs_101_quota => "MRS.101",
        code_mrs_102_token_invalid_is_auth => "MRS.102",
        code_mrs_103_invalid_request => "MRS.103",
        code_mrs_104_resources_is_capacity => "MRS.104",
        code_mrs_105_subnet_is_capacity => "MRS.105",
        code_mrs_201_ecs_is_transient => "MRS.201",
        code_mrs_202_iam_is_transient => "MRS.202",
        code_mrs_203_vpc_is_transient => "MRS.203",
        code_mrs_300_system_is_transient => "MRS.300",
        code_apigw_0301_bad_signature_is_auth => "APIGW.0301",
        code_apigw_0308_throttled => "APIGW.0308",
        http_429_is_throttled => "HTTP429",
        http_500_is_transient => "HTTP500",
        http_502_is_transient => "HTTP502",
        http_503_is_transient => "HTTP503",
        http_504_is_transient => "HTTP504",
    }

    #[test]
    fn every_table_code_has_a_test_row() {
        for r in CODES {
            assert!(
                ROWS.iter()
                    .any(|(c, _, class)| *c == r.code && *class == r.class),
                "no row for {}",
                r.code
            );
        }
    }

    #[test]
    fn yearly_monthly_says_so_and_is_never_retried_hot() {
        let e = from_response(
            "PUT cluster_infos",
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error_code":"12000065","error_msg":"Operation not allowed."}"#,
        );
        assert_eq!(e.class, ErrorClass::Billing);
        assert_eq!(
            e.message,
            "yearly/monthly (prepaid) clusters cannot be resized through this API: Operation not allowed."
        );
        assert!(e.retry_after() >= std::time::Duration::from_secs(900));
        // An empty message still says it, once.
        let e = from_response(
            "a",
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error_code":"12000065","error_msg":""}"#,
        );
        assert_eq!(e.message, YEARLY_MONTHLY);
    }

    #[test]
    fn alternative_body_shapes() {
        let s = StatusCode::BAD_REQUEST;
        for body in [
            r#"{"errorCode":"12000018","errorMsg":"busy"}"#,
            r#"{"code":"12000018","message":"busy"}"#,
            r#"{"error":{"code":"12000018","message":"busy"}}"#,
        ] {
            let e = from_response("a", s, None, body.as_bytes());
            assert_eq!(
                (e.code.as_str(), e.message.as_str(), e.class),
                ("12000018", "busy", ErrorClass::Busy),
                "{body}"
            );
        }
        // IAM: numeric code inside "error"; class from the status.
        let e = from_response(
            "a",
            StatusCode::UNAUTHORIZED,
            None,
            br#"{"error":{"code":401,"message":"bad password","title":"Unauthorized"}}"#,
        );
        assert_eq!((e.code.as_str(), e.class), ("401", ErrorClass::Auth));
    }

    #[test]
    fn unparsable_body_keeps_status_and_text() {
        let e = from_response(
            "GET cluster_infos",
            StatusCode::BAD_GATEWAY,
            Some("r".into()),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.code, "HTTP502");
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(e.message.contains("bad gateway"), "{}", e.message);
        let e = from_response("x", StatusCode::FORBIDDEN, None, b"");
        assert_eq!((e.code.as_str(), e.class), ("HTTP403", ErrorClass::Auth));
        assert!(e.message.contains("empty body"));
    }

    /// Refused (MRS's own body, any status) versus unknown (the gateway's
    /// 5xx, or no JSON error body at a 5xx).
    #[test]
    fn effect_tells_a_refusal_from_a_lost_answer() {
        let effect = |status: u16, body: &str| {
            from_response(
                "PUT cluster_infos",
                StatusCode::from_u16(status).unwrap(),
                None,
                body.as_bytes(),
            )
            .effect
        };
        let mrs = |code: &str| format!(r#"{{"error_code":"{code}","error_msg":"x"}}"#);
        // The service's own refusals, 500 included.
        for (status, code) in [
            (500, "MRS.300"),
            (500, "MRS.201"),
            (503, "MRS.300"),
            (400, "12000018"),
            (400, "12000002"),
        ] {
            assert_eq!(
                effect(status, &mrs(code)),
                Effect::Refused,
                "{status} {code}"
            );
        }
        // The gateway answered for the backend: it does not know.
        for (status, code) in [(504, "APIGW.0201"), (502, "APIGW.0202"), (503, "APIG.0203")] {
            assert_eq!(
                effect(status, &mrs(code)),
                Effect::Unknown,
                "{status} {code}"
            );
        }
        // The gateway refused before forwarding.
        assert_eq!(effect(401, &mrs("APIGW.0301")), Effect::Refused);
        assert_eq!(effect(429, &mrs("APIGW.0308")), Effect::Refused);
        // No error body: a proxy page, an empty 5xx.
        let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        assert_eq!(effect(502, html), Effect::Unknown);
        assert_eq!(effect(504, ""), Effect::Unknown);
        assert_eq!(effect(500, html), Effect::Unknown);
        assert_eq!(effect(403, html), Effect::Refused);
        // The class stays what it was: retryable either way.
        let e = from_response(
            "a",
            StatusCode::GATEWAY_TIMEOUT,
            None,
            mrs("APIGW.0201").as_bytes(),
        );
        assert!(e.class.retryable() && e.may_have_applied());
        let e = from_response(
            "a",
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            mrs("MRS.300").as_bytes(),
        );
        assert!(e.class.retryable() && !e.may_have_applied());
    }

    #[test]
    fn token_refresh_triggers() {
        assert!(wants_token_refresh(StatusCode::UNAUTHORIZED, "APIGW.0301"));
        assert!(wants_token_refresh(StatusCode::BAD_REQUEST, "12000001"));
        assert!(wants_token_refresh(StatusCode::BAD_REQUEST, "MRS.102"));
        assert!(!wants_token_refresh(StatusCode::BAD_REQUEST, "12000018"));
        assert!(!wants_token_refresh(StatusCode::FORBIDDEN, "APIGW.0302"));
    }
}
