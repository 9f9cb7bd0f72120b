//! A Tencent EMR reply body (HTTP 200), parsed as each of the six actions'
//! responses, as the client does (`parse_envelope`), then interpreted.
//!
//! Invariants beyond "no panic":
//! - every error names the action it came from and has a code;
//! - the request id of a body with a `Response.RequestId` string is kept,
//!   on success and on every error alike;
//! - a body without a JSON `Response` object never parses;
//! - `Response.Error` with a string `Code` becomes an error with that code;
//! - the cluster state and flow progress of a parsed reply can be shown;
//! - the same bytes under another HTTP status are a `ServerNetworkError` of
//!   the action, Throttled for 429 and Transient otherwise, whose message
//!   starts with the status and quotes at most 200 characters of the body.
#![no_main]

use clusterscale_tencent::interpret::{
    cluster_state, flow_progress, http_status_error, parse_envelope,
};
use clusterscale_tencent::wire;
use clusterscale_core::cloud::CloudError;
use clusterscale_core::cloud::{Effect, ErrorClass};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn check<T: DeserializeOwned>(action: &str, data: &[u8]) -> Option<T> {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let response = parsed
        .as_ref()
        .and_then(|v| v.get("Response"))
        .filter(|r| r.is_object());
    let request_id = response
        .and_then(|r| r.get("RequestId"))
        .and_then(|r| r.as_str());
    let error_code = response
        .and_then(|r| r.get("Error"))
        .and_then(|e| e.get("Code"))
        .and_then(|c| c.as_str());
    match parse_envelope::<T>(action, data) {
        Ok((body, rid)) => {
            assert!(
                response.is_some(),
                "{action}: parsed a body without a Response object"
            );
            assert!(
                response.and_then(|r| r.get("Error")).is_none(),
                "{action}: a Response.Error was taken for success"
            );
            assert_eq!(rid.as_deref(), request_id, "{action}: request id lost");
            Some(body)
        }
        Err(e) => {
            check_error(&e, action);
            if response.is_some() {
                assert_eq!(
                    e.request_id.as_deref(),
                    request_id,
                    "{action}: error lost the request id: {e:?}"
                );
            }
            if let Some(code) = error_code {
                // A readable Response.Error keeps the cloud's code verbatim.
                let readable = response
                    .and_then(|r| r.get("Error"))
                    .and_then(|e| e.get("Message"))
                    .is_some_and(|m| m.is_string());
                if readable {
                    assert_eq!(e.code, code, "{action}: {e:?}");
                }
            }
            None
        }
    }
}

fn check_error(e: &CloudError, action: &str) {
    assert_eq!(e.action, action, "the error names another action: {e:?}");
    if e.code == "MalformedResponse" {
        assert!(
            e.message.contains(action),
            "malformed without the action: {e:?}"
        );
    }
    let shown = e.to_string();
    assert!(!shown.is_empty());
    let _ = e.retry_after();
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = check::<wire::DescribeInstancesResponse>("DescribeInstances", data) {
        // Status is optional in the SDK; the client names it when it is missing.
        for c in r.cluster_list.iter().flatten() {
            if let Some(status) = c.status {
                let state = cluster_state(status);
                assert!(
                    state.detail().starts_with(&status.to_string()) || state.is_running(),
                    "{state:?}"
                );
            }
        }
    }
    let _ = check::<wire::DescribeClusterNodesResponse>("DescribeClusterNodes", data);
    let _ = check::<wire::ScaleOutInstanceResponse>("ScaleOutInstance", data);
    let _ = check::<wire::TerminateTasksResponse>("TerminateTasks", data);
    let _ = check::<wire::TerminateClusterNodesResponse>("TerminateClusterNodes", data);
    if let Some(flow) = check::<wire::DescribeClusterFlowStatusDetailResponse>(
        "DescribeClusterFlowStatusDetail",
        data,
    ) {
        let progress = flow_progress(&flow);
        let _ = format!("{progress:?}");
    }
    // EMR's own error envelope, as `parse_envelope` reads it: then the
    // status error is that refusal, whatever the HTTP status.
    let envelope_error = parse_envelope::<Value>("ScaleOutInstance", data)
        .err()
        .filter(|e| e.effect == Effect::Refused);
    for code in [403u16, 429, 500, 502, 504] {
        let status = reqwest_status(code);
        let e = http_status_error("ScaleOutInstance", status, data);
        assert_eq!(e.action, "ScaleOutInstance");
        if let Some(refused) = &envelope_error {
            assert_eq!(e.code, refused.code, "{e:?}");
            assert_eq!(e.effect, Effect::Refused, "{e:?}");
            continue;
        }
        assert_eq!(e.code, "ServerNetworkError");
        let want = if code == 429 {
            ErrorClass::Throttled
        } else {
            ErrorClass::Transient
        };
        assert_eq!(e.class, want, "{e:?}");
        // Without the envelope a 5xx leaves the outcome unknown; a 4xx refused it.
        let effect = if code >= 500 { Effect::Unknown } else { Effect::Refused };
        assert_eq!(e.effect, effect, "{e:?}");
        let head = format!("HTTP {status} from the EMR endpoint");
        assert!(e.message.starts_with(&head), "{e:?}");
        assert!(
            e.message.chars().count() <= head.chars().count() + 2 + 200,
            "{e:?}"
        );
    }
});

fn reqwest_status(code: u16) -> http::StatusCode {
    http::StatusCode::from_u16(code).expect("a valid status")
}
