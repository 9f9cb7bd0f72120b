#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets, fuzz/corpus/<target>/.

The seeds are the sample replies the tests already use: the documented
answers in src/cloud/*/wire.rs tests, the replies the fakes (src/fake/) build,
the error bodies of tests/tencent_http.rs and tests/huawei_http.rs, and the
manifests of examples/. Rerun after changing it: python3 tests/fuzz/make-seeds.py
"""
import hashlib
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def tc(resp, rid="9a5a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"):
    r = dict(resp)
    if rid is not None:
        r["RequestId"] = rid
    return json.dumps({"Response": r}, separators=(",", ":"))


def node(flag, serial, destroyable=1, applied="2026-01-05 10:00:00"):
    return {
        "Flag": flag, "EmrResourceId": f"emr-vm-{serial:08d}", "OrderNo": f"ins-{serial:08d}",
        "Destroyable": destroyable, "ApplyTime": applied, "AutoFlag": 0,
        "Ip": f"10.0.1.{serial}", "Spec": "CVM.S5", "ChargeType": 0, "NameTag": f"node.{serial}",
    }


def tencent():
    t = "tencent_response"
    # src/cloud/tencent/wire.rs documented_responses_parse (tccli examples).
    write(t, tc({"HardwareResourceTypeList": ["all"], "NodeList": [{"AppId": 1, "ApplyTime": "2020-02-24 20:31:07",
              "CdbNodeInfo": None, "Destroyable": 0, "EmrResourceId": "emr-vm-cinlo2wc", "Flag": 2, "Ip": "10.0.0.33",
              "OrderNo": "ins-20224gpk", "Spec": "CVM.S2", "Tags": []}], "TotalCnt": 1}))
    write(t, tc({"BillId": "2026", "ClientToken": "k-1", "DealNames": ["2026"], "FlowId": 0,
                 "InstanceId": "emr-4hf4h9np", "TraceId": "1788433513-296027-78000019"}))
    write(t, tc({"FlowDesc": [], "FlowExtraDetail": None, "FlowName": "Scale Out Core", "FlowTotalProgress": 0.38,
                 "FlowTotalStatus": 1, "StageDetails": [{"Desc": "done", "FailedReason": "", "Name": "Create Order", "Status": 2}]}))
    write(t, tc({"FlowName": "Scale Out Task", "FlowTotalStatus": -1, "FlowTotalProgress": 0.5,
                 "StageDetails": [{"Name": "Apply For Resource", "Stage": "apply", "FailedReason": "insufficient stock", "Status": -1}]}))
    write(t, tc({"ClusterList": [{"ClusterId": "emr-p9f700x8", "Status": 2, "Config": {"CoreNodeSize": 2, "TaskNodeSize": None}}], "TotalCnt": 1}))
    write(t, tc({"ClusterList": None, "TotalCnt": 0}))
    # The fake's DescribeInstances (src/fake/tencent.rs).
    write(t, tc({"TotalCnt": 1, "ClusterList": [{"Id": 19541, "ClusterId": "emr-kube0001", "Status": 4, "Ftitle": "scaling",
                 "ClusterName": "emr-kube0001 (fake)", "ChargeType": 0, "AddTime": "2026-01-05 10:00:00",
                 "EmrVersion": "EMR-V3.5.0", "ProjectId": 0,
                 "Config": {"MasterNodeSize": 1, "CoreNodeSize": 3, "TaskNodeSize": 2, "ComNodeSize": 0, "RouterNodeSize": 0}}]}))
    # The fake's DescribeClusterNodes: master, cores, tasks.
    nodes = [node(1, 0, 0)] + [node(2, i) for i in (1, 2, 3)] + [node(3, i, applied=f"2026-01-05 10:0{i}:00") for i in (4, 5)]
    write(t, tc({"TotalCnt": len(nodes), "NodeList": nodes}))
    write(t, tc({"TotalCnt": 9, "NodeList": nodes[:2]}))
    write(t, tc({"FlowId": 424242}))
    write(t, tc({}))
    # Errors: tests/tencent_http.rs and the fake's Response.Error.
    for code, msg in [("ResourceInUse.InstanceInProcess", "the instance is in process"),
                      ("AuthFailure.SignatureExpire", "Signature expired"),
                      ("RequestLimitExceeded", "request limit exceeded"),
                      ("InternalError.CvmError", "cvm down"),
                      ("FailedOperation.SomethingNew", "new text")]:
        write(t, tc({"Error": {"Code": code, "Message": msg}}))
    write(t, r'{"Response":{"TotalCnt":1,"ClusterList":"not a list","RequestId":"req-malformed-1"}}')
    write(t, r'{"Response":{"TotalCnt":0,"ClusterList":[],"RequestId":"r"}}')
    write(t, '<html><body><h1>502 Bad Gateway</h1></body></html>')
    write(t, '{"Response":{"Error":{"Code":"X"},"RequestId":"r"}}')
    write(t, '{"Response": ')


def hw(status_index, body, rid=True):
    prefix = bytes([status_index | (0x80 if rid else 0)])
    if not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"))
    return prefix + body.encode()


def hw_group(name, n, size="c6.2xlarge.4.linux.bigdata"):
    return {"GroupName": name, "NodeNum": str(n), "NodeSize": size, "DataVolumeType": "SAS",
            "DataVolumeCount": 1, "DataVolumeSize": 600}


def huawei():
    t = "huawei_response"
    # 200 (index 0): the fake's ShowClusterDetails (src/fake/huawei.rs).
    for state, scale, task in [("running", "", 2), ("scaling-out", "scaling-out", 2), ("running", "scaling-error", 0),
                               ("abnormal", "", 1), ("frozen", None, 0)]:
        groups = [hw_group("master_node_default_group", 2, "c6.4xlarge.4.linux.bigdata"),
                  hw_group("core_node_analysis_group", 3)]
        tasks = [hw_group("task_node_analysis_group", task)] if task else []
        write(t, hw(0, {"cluster": {
            "clusterId": "0f1e2d3c-4b5a-4968-8776-655443322110", "clusterName": "mrs-fake", "clusterVersion": "MRS 3.1.0",
            "clusterState": state, "scale": scale, "stageDesc": "Resizing" if scale else None,
            "errorInfo": "insufficient resources" if scale == "scaling-error" else "",
            "totalNodeNum": str(5 + task), "masterNodeNum": "2", "coreNodeNum": "3",
            "nodeGroups": groups + tasks, "taskNodeGroups": tasks, "updateAt": "1767607200"}}))
    # src/cloud/huawei/wire.rs tests.
    write(t, hw(0, '{"cluster":{"clusterId":"c1","clusterName":"n","clusterState":"running","scale":null,'
                   '"coreNodeNum":"5","nodeGroups":[{"GroupName":"core_node_default_group","NodeNum":"5"}],"taskNodeGroups":null}}'))
    write(t, hw(0, '{"cluster":{"coreNodeNum":"five"}}'))
    # ListHosts, SDK style and reference style.
    hosts = [{"id": "mrs-master-0001", "name": "node-master1", "ip": "192.168.0.1", "status": "running",
              "type": "MasterNode", "resource_id": "res-master-1", "flavor": "c6.4xlarge.4.linux.bigdata",
              "node_group_name": "master_node_default_group"}]
    for i, (typ, group) in enumerate([("CoreNode", "core_node_analysis_group")] * 3 + [("TaskNode", "task_node_analysis_group")] * 3):
        hosts.append({"id": f"vm-{i:04d}", "name": f"node-ana-{i:04d}", "ip": f"192.168.1.{i + 1}",
                      "status": "running" if i != 5 else "stopped", "type": typ, "resource_id": f"res-vm-{i}",
                      "flavor": "c6.2xlarge.4.linux.bigdata", "node_group_name": group})
    write(t, hw(0, {"hosts": hosts, "total": len(hosts)}))
    ref = [{"id": h["id"], "name": h["name"], "ip": h["ip"], "status": "ACTIVE", "type": h["type"].replace("Node", "")}
           for h in hosts]
    write(t, hw(0, {"hosts": ref, "total": str(len(ref))}))
    write(t, hw(0, {"hosts": hosts[4:], "total": 20}))
    # A Task group of five: the scale-in choice has non-preferred hosts to order.
    five = [{"id": f"vm-task-{i}", "name": f"node-ana-task{i:04d}", "status": "running" if i % 2 else "stopped",
             "type": "TaskNode", "node_group_name": "task_node_analysis_group"} for i in range(5)]
    write(t, hw(0, {"hosts": five, "total": 5}))
    # Resize result and IAM token.
    write(t, hw(0, {"result": "succeeded"}))
    write(t, hw(1, {"result": "succeeded"}))
    write(t, hw(0, {"token": {"expires_at": "2026-01-06T08:30:00.000000Z", "issued_at": "2026-01-05T08:30:00.000000Z",
                              "methods": ["password"]}}))
    write(t, hw(0, {"token": {"expires_at": "2023-11-14T22:20:00Z"}}))
    # Errors (400 = index 2, 401 = 3, 404 = 5, 409 = 6, 429 = 8, 500 = 9, 503 = 11).
    for idx, body in [(2, {"error_code": "12000018", "error_msg": "The cluster is being scaled"}),
                      (2, {"error_code": "12000065", "error_msg": ""}),
                      (3, {"error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}}),
                      (3, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information"}),
                      (5, {"errorCode": "MRS.102", "errorMsg": "token expired"}),
                      (6, {"code": "12000012", "message": "busy"}),
                      (8, {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}),
                      (9, {"error_code": "MRS.300", "error_msg": "System error"}),
                      (11, "<html><head><title>503 Service Unavailable</title></head></html>"),
                      (9, ""),
                      (2, {"error_code": 12000030, "error_msg": None})]:
        write(t, hw(idx, body))


def manifests():
    t = "manifest"
    for p in sorted((ROOT / "examples").glob("*.yaml")):
        write(t, p.read_bytes())
    write(t, "apiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {name: x}\nspec:\n  simulated: {}\n  core: {count: many}\n")
    write(t, "kind: Secret\n---\napiVersion: clusterscale.io/v1alpha1\nkind: ScaledCluster\nmetadata: {name: a}\nspec:\n  simulated: {}\n  core: {count: 4}\n")
    write(t, """apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {name: demo, namespace: analytics, labels: {shard: a}}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: emr-b3zor8nr
    payMode: 1
    timeUnit: m
    timeSpan: 1
    credentialsSecretRef: {name: emr-creds}
    preExecutedFileSettings:
      - {Path: "cos://bucket/init.sh", WhenRun: resourceAfter, Args: [a, "1"], CosFileName: init.sh}
  core: {count: 3}
  task: {count: 498, min: 5, max: 4}
  scaleIn: {allowed: false, preferNodes: [emr-vm-1, ins-2], gracefulTimeoutSeconds: 59}
  maxStep: -1
  cooldownSeconds: 300
  paused: true
  dryRun: true
""")
    write(t, """apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {name: mrs}
spec:
  huawei:
    region: cn-north-4
    projectId: "0123456789abcdef0123456789abcdef"
    clusterId: 0f1e2d3c-4b5a-4968-8776-655443322110
    credentialsSecretRef: {name: creds}
    coreNodeGroup: core_node_analysis_group
    taskNodeSpec: {nodeSize: c6.4xlarge.4.linux.bigdata, dataVolumeType: SATA, dataVolumeCount: 1, dataVolumeSize: 600}
    skipBootstrapScripts: true
  simulated: {initialCore: -1, operationSeconds: -1, quota: 10}
  core: {count: 2}
""")


if __name__ == "__main__":
    for t in ("tencent_response", "huawei_response", "manifest"):
        shutil.rmtree(CORPUS / t, ignore_errors=True)
    tencent()
    huawei()
    manifests()
    for t in sorted(p.name for p in CORPUS.iterdir()):
        files = list((CORPUS / t).iterdir())
        print(f"{t}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
