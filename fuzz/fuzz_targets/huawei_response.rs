//! A Huawei MRS / IAM reply: the first byte picks the HTTP status (low 7
//! bits) and whether a request id came (high bit); the rest
//! is the body. Error statuses go through `errors::from_response`; success
//! bodies are parsed as the client parses them (cluster detail, host list,
//! resize result, IAM token) and interpreted.
//!
//! Invariants beyond "no panic":
//! - an error names the action, keeps the request id, has a code, and keeps
//!   the code of a body `parse_error_body` understands;
//! - `interpret` yields non-negative counts and named groups, or a message;
//! - hosts_to_nodes keeps only Core/Task hosts; choose_task_hosts returns at
//!   most `count` distinct Task hosts of the group; the preferred hosts it
//!   reports unmatched are exactly those it could not choose from;
//! - a token that expires in the future is refreshed after now and no later
//!   than it expires.
#![no_main]

use clusterscale_core::api::{HuaweiSpec, NodeGroup, SecretRef};
use clusterscale_core::cloud::credentials::SecretString;
use clusterscale_huawei::wire::{ACTION_HOSTS, ACTION_RESIZE, ACTION_SHOW};
use clusterscale_huawei::interpret::{
    abnormal_detail, choose_task_hosts, host_group, hosts_to_nodes, interpret, unmatched_preferred,
};
use clusterscale_huawei::errors::{from_response, parse_error_body};
use clusterscale_huawei::token::{CachedToken, ACTION as IAM};
use clusterscale_huawei::wire::{
    ClusterDetailResponse, ListHostsResponse, ResultResponse, TokenResponse,
};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 12] = [200, 202, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503];

fn spec(core: Option<&str>, task: Option<&str>) -> HuaweiSpec {
    HuaweiSpec {
        region: "cn-north-4".into(),
        project_id: "0123456789abcdef0123456789abcdef".into(),
        cluster_id: "0f1e2d3c-4b5a-4968-8776-655443322110".into(),
        credentials_secret_ref: Some(SecretRef { name: "c".into() }),
        account_ref: None,
        endpoint: None,
        iam_endpoint: None,
        core_node_group: core.map(str::to_string),
        task_node_group: task.map(str::to_string),
        task_node_spec: None,
        skip_bootstrap_scripts: false,
        scale_without_start: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status =
        StatusCode::from_u16(STATUSES[usize::from(pick & 0x7f) % STATUSES.len()]).expect("status");
    let rid = (pick & 0x80 != 0).then(|| "req-fuzz-1".to_string());

    if !status.is_success() {
        let parsed = parse_error_body(body);
        for action in [ACTION_SHOW, ACTION_HOSTS, ACTION_RESIZE, IAM] {
            let e = from_response(action, status, rid.clone(), body);
            assert_eq!(e.action, action, "{e:?}");
            assert_eq!(e.request_id, rid, "{e:?}");
            if let Some((code, _)) = &parsed {
                assert_eq!(&e.code, code, "{e:?}");
            } else {
                assert_eq!(e.code, format!("HTTP{}", status.as_u16()), "{e:?}");
                assert!(!e.message.is_empty());
            }
            let _ = e.to_string();
            let _ = e.retry_after();
        }
        return;
    }

    if let Ok(detail) = serde_json::from_slice::<ClusterDetailResponse>(body) {
        let groups = [
            spec(None, None),
            spec(Some("core_node_analysis_group"), Some("task_node_x")),
        ];
        for s in &groups {
            match interpret(&detail.cluster, s) {
                Ok(i) => {
                    assert!(i.observed.core >= 0 && i.observed.task >= 0, "{i:?}");
                    assert!(
                        !i.groups.core.is_empty() && !i.groups.task.is_empty(),
                        "{i:?}"
                    );
                    let _ = i.observed.state.to_string();
                }
                Err(m) => assert!(!m.is_empty()),
            }
        }
    }

    if let Ok(list) = serde_json::from_slice::<ListHostsResponse>(body) {
        let hosts = &list.hosts;
        let nodes = hosts_to_nodes(hosts);
        assert!(nodes.len() <= hosts.len());
        for n in &nodes {
            assert!(hosts
                .iter()
                .any(|h| h.id == n.id && host_group(&h.host_type) == Some(n.group)));
        }
        if let Some(d) = abnormal_detail(hosts) {
            assert!(d.starts_with("abnormal: "), "{d}");
        }
        // The group of the first Task host, as the client's resize names it.
        let group = hosts
            .iter()
            .find(|h| host_group(&h.host_type) == Some(NodeGroup::Task))
            .and_then(|h| h.node_group_name.clone())
            .unwrap_or_else(|| "task_node_default_group".into());
        let prefer: Vec<String> = hosts.iter().rev().take(2).map(|h| h.id.clone()).collect();
        for count in [-1, 0, 1, 3, i32::MAX] {
            let chosen = choose_task_hosts(hosts, &group, &prefer, count);
            assert!(chosen.len() <= usize::try_from(count).unwrap_or(0));
            let mut distinct = chosen.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), chosen.len(), "duplicates in {chosen:?}");
            for id in &chosen {
                assert!(
                    hosts
                        .iter()
                        .any(|h| &h.id == id && host_group(&h.host_type) == Some(NodeGroup::Task)),
                    "{id} is not a Task host"
                );
            }
        }
        let unmatched = unmatched_preferred(hosts, &group, &prefer);
        let all = choose_task_hosts(hosts, &group, &prefer, i32::MAX);
        for id in &unmatched {
            assert!(!all.contains(id), "{id} is unmatched but chosen");
        }
    }

    if let Ok(r) = serde_json::from_slice::<ResultResponse>(body) {
        let _ = r.result.len();
    }

    if let Ok(t) = serde_json::from_slice::<TokenResponse>(body) {
        if let Ok(expires_at) = t.token.expires_at.parse::<jiff::Timestamp>() {
            let now = jiff::Timestamp::from_second(1_700_000_000).expect("now");
            if expires_at > now {
                let cached = CachedToken::new(SecretString::new("t"), expires_at, now);
                assert!(cached.refresh_at > now, "{cached:?}");
                assert!(cached.refresh_at <= cached.expires_at, "{cached:?}");
                assert!(cached.fresh(now));
            }
        }
    }
});
