//! Wire types of EMR API 2019-01-03, field names and JSON types exactly as the
//! official SDK models declare them (`tencentcloud/emr/v20190103/models.py`).
//!
//! Request structs serialise in the field order the SDK vectors use, so that
//! the client's bodies are byte-identical to the vectors' payloads. Every
//! response field the SDK marks "may return null" is an `Option`, and unknown
//! response fields are ignored. Requests and responses derive both directions:
//! the client serialises requests and parses responses; the fake endpoint
//! does the opposite.

use serde::{Deserialize, Serialize};

/// `X-TC-Version`.
pub const VERSION: &str = "2019-01-03";
/// `Content-Type` sent and signed (the SDKs' value).
pub const CONTENT_TYPE: &str = "application/json";
/// Largest `Limit` of the paged describe calls.
pub const PAGE_LIMIT: i64 = 100;

/// `DescribeInstances` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstancesRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_ids: Vec<String>,
    /// `clusterList`: every cluster except destroyed ones.
    pub display_strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// -1: all projects (the default 0 is the default project only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
}

/// `DescribeInstances` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstancesResponse {
    #[serde(default)]
    pub total_cnt: i64,
    #[serde(default)]
    pub cluster_list: Option<Vec<ClusterInstancesInfo>>,
}

/// `ClusterInstancesInfo` (the fields the reconciler reads, plus a few that
/// make the fake's answers look like the real ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterInstancesInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Optional in the SDK, like every field: an entry without it cannot be
    /// told apart from another cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// See [`cluster_status_name`]. Optional in the SDK; the client needs it
    /// to decide anything and says so when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Status text, e.g. "集群运行中".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftitle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emr_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    #[serde(default)]
    pub config: Option<EmrProductConfigOutter>,
}

/// `EmrProductConfigOutter`: node counts per group, all nullable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmrProductConfigOutter {
    #[serde(default)]
    pub master_node_size: Option<i64>,
    #[serde(default)]
    pub core_node_size: Option<i64>,
    #[serde(default)]
    pub task_node_size: Option<i64>,
    #[serde(default)]
    pub com_node_size: Option<i64>,
    #[serde(default)]
    pub router_node_size: Option<i64>,
}

/// `DescribeClusterNodes` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeClusterNodesRequest {
    pub instance_id: String,
    /// `all|master|core|task|common|router|db|recyle|renew`.
    pub node_flag: String,
    /// Documented as "page number, default 0"; see the client's pager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// At most 100; both 0 or both omitted returns every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// `DescribeClusterNodes` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeClusterNodesResponse {
    /// Optional in the SDK; the pager needs it only when a page is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cnt: Option<i64>,
    #[serde(default)]
    pub node_list: Option<Vec<NodeHardwareInfo>>,
}

/// Node flag values of `NodeHardwareInfo.Flag`.
pub mod flag {
    pub const COMMON: i64 = 0;
    pub const MASTER: i64 = 1;
    pub const CORE: i64 = 2;
    pub const TASK: i64 = 3;
}

/// `NodeHardwareInfo` (the fields the reconciler reads, plus a few for realism).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeHardwareInfo {
    /// 0 common, 1 master, 2 core, 3 task ([`flag`]). Optional in the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<i64>,
    /// `emr-vm-xxxxxxxx`: the id TerminateTasks takes.
    #[serde(default)]
    pub emr_resource_id: Option<String>,
    /// "Machine instance id", a CVM id `ins-xxxxxxxx`: the id
    /// TerminateClusterNodes takes **(inference)**.
    #[serde(default)]
    pub order_no: Option<String>,
    /// 1: the node can be destroyed.
    #[serde(default)]
    pub destroyable: Option<i64>,
    /// When the node was bought, `YYYY-MM-DD HH:MM:SS` (region-local time;
    /// only its order is used).
    #[serde(default)]
    pub apply_time: Option<String>,
    /// 1: added by EMR's own auto-scaling.
    #[serde(default)]
    pub auto_flag: Option<i64>,
    /// `host` or `pod` (a pod resource of a container-based cluster; listed
    /// unless the request's `HardwareResourceType` is `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_resource_type: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    pub charge_type: Option<i64>,
    #[serde(default)]
    pub name_tag: Option<String>,
    /// Tags bound to the node (`NodeHardwareInfo.Tags []*Tag` in
    /// tencentcloud-sdk-go `tencentcloud/emr/v20190103/models.go`; may be
    /// null). A pool's nodes carry the tag set at ScaleOutCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// `Tag` (models.go: `TagKey`, `TagValue`, both optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_value: Option<String>,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            tag_key: Some(key.into()),
            tag_value: Some(value.into()),
        }
    }
}

/// `InstanceChargeType` of ScaleOutCluster (models.go
/// `ScaleOutClusterRequestParams`): prepaid (needs `InstanceChargePrepaid`).
pub const CHARGE_PREPAID: &str = "PREPAID";
/// Pay-as-you-go by the hour.
pub const CHARGE_POSTPAID_BY_HOUR: &str = "POSTPAID_BY_HOUR";
/// Spot ("竞价付费（仅支持TASK节点）": Task nodes only).
pub const CHARGE_SPOTPAID: &str = "SPOTPAID";

/// `ScaleOutCluster` request (models.go `ScaleOutClusterRequestParams`), the
/// fields we send, in the SDK's order. Fields we never send
/// (`InstanceChargePrepaid`, `ScriptBootstrapActionConfig`, `SoftDeployInfo`,
/// `ServiceNodeInfo`, `DisasterRecoverGroupIds`, `PodSpecInfo`,
/// ClickHouse, `ScaleOutServiceConfGroupsInfo`, `NodeMarks`,
/// `WarehouseName`, `PartitionNumber`) are left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaleOutClusterRequest {
    /// [`CHARGE_POSTPAID_BY_HOUR`] or [`CHARGE_SPOTPAID`] (or [`CHARGE_PREPAID`]).
    pub instance_charge_type: String,
    pub instance_id: String,
    pub scale_out_node_config: ScaleOutNodeConfig,
    /// Idempotency token, valid for five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Tags bound to the new nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// `HOST`, `POD` or `MNode` (`HardwareSourceType`); absent: HOST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yarn_node_label: Option<String>,
    /// Start the services on the new nodes (the SDK's default is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_start_service_flag: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_spec: Option<NodeResourceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
}

/// `ScaleOutNodeConfig` (models.go): `NodeFlag` MASTER|TASK|CORE|ROUTER and
/// `NodeCount` (uint64).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaleOutNodeConfig {
    pub node_flag: String,
    pub node_count: u64,
}

/// `NodeResourceSpec` (models.go): `InstanceType` (e.g. `S2.MEDIUM8`) and
/// the disks and tags, kept raw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeResourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_disk: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_disk: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_data_disk: Option<Vec<serde_json::Value>>,
}

/// `ScaleOutCluster` response (models.go `ScaleOutClusterResponseParams`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaleOutClusterResponse {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub client_token: Option<String>,
    #[serde(default)]
    pub flow_id: Option<i64>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub deal_names: Option<Vec<String>>,
    #[serde(default)]
    pub bill_id: Option<String>,
}

/// `ScaleOutInstance` request. One group per request: `TaskCount` or `CoreCount`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaleOutInstanceRequest {
    /// Idempotency token, valid for five minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// `s` (PayMode 0) or `m` (PayMode 1).
    pub time_unit: String,
    /// 3600 for pay-as-you-go, else months.
    pub time_span: i64,
    pub instance_id: String,
    /// 0 pay-as-you-go, 1 monthly.
    pub pay_mode: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_count: Option<i64>,
    /// Bootstrap scripts for the new nodes, passed through from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_executed_file_settings: Option<Vec<serde_json::Value>>,
}

/// `ScaleOutInstance` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaleOutInstanceResponse {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub deal_names: Option<Vec<String>>,
    #[serde(default)]
    pub client_token: Option<String>,
    /// 0 when the scale-out is tracked by `TraceId` only (current behaviour).
    #[serde(default)]
    pub flow_id: Option<i64>,
    #[serde(default)]
    pub bill_id: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// `TerminateTasks` request: Task nodes by `EmrResourceId`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminateTasksRequest {
    pub instance_id: String,
    pub resource_ids: Vec<String>,
}

/// `TerminateTasks` response: nothing but the request id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminateTasksResponse {}

/// `TerminateClusterNodes` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminateClusterNodesRequest {
    pub instance_id: String,
    /// CVM ids (`NodeHardwareInfo.OrderNo`, **inference**).
    pub cvm_instance_ids: Vec<String>,
    /// `MASTER|TASK|CORE|ROUTER`.
    pub node_flag: String,
    /// Graceful decommission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_down_flag: Option<bool>,
    /// 60-1800 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_down_time: Option<i64>,
}

/// `TerminateClusterNodes` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminateClusterNodesResponse {
    #[serde(default)]
    pub flow_id: Option<i64>,
}

/// `DescribeClusterFlowStatusDetail` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeClusterFlowStatusDetailRequest {
    pub instance_id: String,
    pub flow_param: FlowParam,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_extra_detail: Option<bool>,
}

/// `FlowParam`: which flow to describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowParam {
    /// `FlowId` or `TraceId`.
    #[serde(rename = "FKey")]
    pub f_key: String,
    /// The id, as a string.
    #[serde(rename = "FValue")]
    pub f_value: String,
}

/// `DescribeClusterFlowStatusDetail` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeClusterFlowStatusDetailResponse {
    /// See [`flow_status`]. Optional in the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_total_status: Option<i64>,
    #[serde(default)]
    pub flow_total_progress: Option<f64>,
    #[serde(default)]
    pub flow_name: Option<String>,
    #[serde(default)]
    pub stage_details: Option<Vec<StageInfoDetail>>,
}

/// `FlowTotalStatus` values.
pub mod flow_status {
    pub const INIT: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const DONE: i64 = 2;
    /// Completed, with skipped steps (SDK: "完成（存在跳过步骤）").
    pub const DONE_WITH_SKIPPED: i64 = 3;
    pub const FAILED: i64 = -1;
    pub const BLOCKED: i64 = -3;
}

/// One stage of a flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StageInfoDetail {
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// [`stage_status`]: -1 failed, 0 not started, 1 running, 2 done, 3
    /// partially completed (SDK: "部分完成", not "skipped").
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(default)]
    pub failed_reason: Option<String>,
}

/// `StageInfoDetail.Status` values.
pub mod stage_status {
    pub const FAILED: i64 = -1;
    pub const NOT_STARTED: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const DONE: i64 = 2;
    /// Partially completed: some of the stage's work (say, some of the nodes)
    /// was done, the rest was not.
    pub const PARTIALLY_COMPLETED: i64 = 3;
}

/// The value of `NodeHardwareInfo.HardwareResourceType` for pod resources.
pub const HARDWARE_POD: &str = "pod";

/// `Response.Error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// The name of a `ClusterInstancesInfo.Status` code (SDK model list, plus
/// 201 "deleted" which the Terraform provider uses).
pub fn cluster_status_name(status: i64) -> &'static str {
    match status {
        2 => "running",
        3 => "creating",
        4 => "scaling out",
        5 => "adding router",
        6 => "installing component",
        7 => "executing command",
        8 => "restarting service",
        9 => "entering maintenance",
        10 => "service paused",
        11 => "leaving maintenance",
        12 => "leaving pause",
        13 => "pushing config",
        14 => "destroying cluster",
        15 => "destroying core nodes",
        16 => "destroying task nodes",
        17 => "destroying router nodes",
        18 => "changing webproxy password",
        19 => "isolating",
        20 => "reversing",
        21 => "reclaiming",
        22 => "waiting for spec change",
        23 => "isolated",
        24 => "scaling in",
        33 => "waiting for refund",
        34 => "refunded",
        201 => "deleted",
        301 => "create failed",
        302 => "scale-out failed",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialise_like_the_sdk_vectors() {
        let describe = DescribeInstancesRequest {
            instance_ids: vec!["emr-abcd1234".into()],
            display_strategy: "clusterList".into(),
            offset: Some(0),
            limit: Some(10),
            project_id: Some(-1),
        };
        assert_eq!(
            serde_json::to_string(&describe).unwrap(),
            r#"{"InstanceIds":["emr-abcd1234"],"DisplayStrategy":"clusterList","Offset":0,"Limit":10,"ProjectId":-1}"#
        );
        let scale_out = ScaleOutInstanceRequest {
            client_token: Some("6f1c2a9e-3b7d-4c55-9a0e-2d8f4b1c7e90".into()),
            time_unit: "s".into(),
            time_span: 3600,
            instance_id: "emr-abcd1234".into(),
            pay_mode: 0,
            task_count: Some(2),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&scale_out).unwrap(),
            r#"{"ClientToken":"6f1c2a9e-3b7d-4c55-9a0e-2d8f4b1c7e90","TimeUnit":"s","TimeSpan":3600,"InstanceId":"emr-abcd1234","PayMode":0,"TaskCount":2}"#
        );
        let flow = DescribeClusterFlowStatusDetailRequest {
            instance_id: "emr-1".into(),
            flow_param: FlowParam {
                f_key: "TraceId".into(),
                f_value: "t".into(),
            },
            need_extra_detail: Some(false),
        };
        assert_eq!(
            serde_json::to_string(&flow).unwrap(),
            r#"{"InstanceId":"emr-1","FlowParam":{"FKey":"TraceId","FValue":"t"},"NeedExtraDetail":false}"#
        );
        let terminate = TerminateClusterNodesRequest {
            instance_id: "emr-1".into(),
            cvm_instance_ids: vec!["ins-1".into()],
            node_flag: "CORE".into(),
            grace_down_flag: Some(true),
            grace_down_time: Some(600),
        };
        assert_eq!(
            serde_json::to_string(&terminate).unwrap(),
            r#"{"InstanceId":"emr-1","CvmInstanceIds":["ins-1"],"NodeFlag":"CORE","GraceDownFlag":true,"GraceDownTime":600}"#
        );
    }

    /// The documented example answers (tccli examples) parse, nulls included.
    #[test]
    fn documented_responses_parse() {
        let nodes: DescribeClusterNodesResponse = serde_json::from_str(
            r#"{"HardwareResourceTypeList":["all"],"NodeList":[{"AppId":1,"ApplyTime":"2020-02-24 20:31:07",
            "CdbNodeInfo":null,"Destroyable":0,"EmrResourceId":"emr-vm-cinlo2wc","Flag":2,"Ip":"10.0.0.33",
            "OrderNo":"ins-20224gpk","Spec":"CVM.S2","Tags":[]}],"TotalCnt":1}"#,
        )
        .unwrap();
        let node = &nodes.node_list.as_ref().unwrap()[0];
        assert_eq!(
            (node.flag, node.order_no.as_deref(), node.destroyable),
            (Some(2), Some("ins-20224gpk"), Some(0))
        );
        let out: ScaleOutInstanceResponse = serde_json::from_str(
            r#"{"BillId":"2026","ClientToken":"k-1","DealNames":["2026"],"FlowId":0,"InstanceId":"emr-4hf4h9np","TraceId":"1788433513-296027-78000019"}"#,
        )
        .unwrap();
        assert_eq!(
            (out.flow_id, out.trace_id.as_deref()),
            (Some(0), Some("1788433513-296027-78000019"))
        );
        let flow: DescribeClusterFlowStatusDetailResponse = serde_json::from_str(
            r#"{"FlowDesc":[],"FlowExtraDetail":null,"FlowName":"Scale Out Core","FlowTotalProgress":0.38,
            "FlowTotalStatus":1,"StageDetails":[{"Desc":"done","FailedReason":"","Name":"Create Order","Status":2}]}"#,
        )
        .unwrap();
        assert_eq!(flow.flow_total_status, Some(flow_status::RUNNING));
        let instances: DescribeInstancesResponse = serde_json::from_str(
            r#"{"ClusterList":[{"ClusterId":"emr-p9f700x8","Status":2,"Config":{"CoreNodeSize":2,"TaskNodeSize":null}}],"TotalCnt":1}"#,
        )
        .unwrap();
        let config = instances.cluster_list.unwrap()[0].config.clone().unwrap();
        assert_eq!(
            (config.core_node_size, config.task_node_size),
            (Some(2), None)
        );
        let empty: DescribeInstancesResponse =
            serde_json::from_str(r#"{"ClusterList":null,"TotalCnt":0}"#).unwrap();
        assert_eq!(empty.cluster_list, None);
        // The SDK makes every field optional: answers without them still parse.
        let bare: DescribeInstancesResponse =
            serde_json::from_str(r#"{"ClusterList":[{"Config":null}],"TotalCnt":1}"#).unwrap();
        let entry = &bare.cluster_list.unwrap()[0];
        assert_eq!((entry.cluster_id.as_deref(), entry.status), (None, None));
        let pod: DescribeClusterNodesResponse = serde_json::from_str(
            r#"{"NodeList":[{"EmrResourceId":"emr-vm-p","HardwareResourceType":"pod","AutoFlag":1}],"TotalCnt":1}"#,
        )
        .unwrap();
        let node = &pod.node_list.unwrap()[0];
        assert_eq!(
            (node.flag, node.hardware_resource_type.as_deref()),
            (None, Some(HARDWARE_POD))
        );
        let flow: DescribeClusterFlowStatusDetailResponse =
            serde_json::from_str(r#"{"FlowName":"x","StageDetails":null}"#).unwrap();
        assert_eq!(flow.flow_total_status, None);
    }

    /// ScaleOutCluster in the SDK's field order, and the node tags as
    /// DescribeClusterNodes answers them.
    #[test]
    fn scale_out_cluster_and_node_tags() {
        let req = ScaleOutClusterRequest {
            instance_charge_type: CHARGE_SPOTPAID.into(),
            instance_id: "emr-1".into(),
            scale_out_node_config: ScaleOutNodeConfig {
                node_flag: "TASK".into(),
                node_count: 3,
            },
            client_token: Some("tok".into()),
            tags: vec![Tag::new("clusterscale.io/pool", "spot")],
            yarn_node_label: Some("spot".into()),
            enable_start_service_flag: Some(true),
            resource_spec: Some(NodeResourceSpec {
                instance_type: Some("SA2.2XLARGE16".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"InstanceChargeType":"SPOTPAID","InstanceId":"emr-1","ScaleOutNodeConfig":{"NodeFlag":"TASK","NodeCount":3},"ClientToken":"tok","Tags":[{"TagKey":"clusterscale.io/pool","TagValue":"spot"}],"YarnNodeLabel":"spot","EnableStartServiceFlag":true,"ResourceSpec":{"InstanceType":"SA2.2XLARGE16"}}"#
        );
        let out: ScaleOutClusterResponse = serde_json::from_str(
            r#"{"InstanceId":"emr-1","ClientToken":"tok","FlowId":123,"TraceId":"t-1","DealNames":null,"BillId":"b","RequestId":"r"}"#,
        )
        .unwrap();
        assert_eq!(
            (out.flow_id, out.trace_id.as_deref()),
            (Some(123), Some("t-1"))
        );
        let nodes: DescribeClusterNodesResponse = serde_json::from_str(
            r#"{"NodeList":[{"Flag":3,"EmrResourceId":"emr-vm-1","Tags":[{"TagKey":"clusterscale.io/pool","TagValue":"spot"}]},
            {"Flag":3,"EmrResourceId":"emr-vm-2","Tags":null}],"TotalCnt":2}"#,
        )
        .unwrap();
        let list = nodes.node_list.unwrap();
        assert_eq!(
            list[0].tags.as_deref(),
            Some(&[Tag::new("clusterscale.io/pool", "spot")][..])
        );
        assert_eq!(list[1].tags, None);
    }
}
