#!/usr/bin/env bash
# The whole user story, end to end, with real tools:
#   1. start a real kube-apiserver (RBAC on)            tests/kube/apiserver.sh
#   2. helm install the chart                           real helm (hack/build-helm.sh)
#   3. start the fake clouds, and the operator with the Deployment's own args,
#      authenticated as the chart's ServiceAccount     kubectl create token
#   4. kubectl apply the Tencent and Huawei examples, wait for Ready
#   5. kubectl scale, wait for the new count
#   6. check the Events and the scale subresource
#   6b. a real Prometheus scrapes the operator (the ServiceMonitor's endpoint
#      as a static config); every dashboard query answers, the namespace filter holds
#   7. check the ServiceAccount's rights with kubectl auth can-i
#   7b. a second release with rbac.secrets=namespaced converges a cluster through a CloudAccount
#   8. helm uninstall: the CRDs and the ScaledClusters are kept
#
# Usage: tests/e2e/run.sh        (needs target/debug/clusterscale and clusterscale-fake-cloud; builds them if missing)
# Environment: E2E_KEEP=1 keeps the work directory; E2E_TIMEOUT (seconds, default 120) per wait.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
TIMEOUT=${E2E_TIMEOUT:-120}
RELEASE=clusterscale
SYSTEM_NS=clusterscale-system
DATA_NS=data # the namespace of examples/tencent.yaml and examples/huawei.yaml
T0=$(date +%s)

log() { printf 'e2e [%3ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
fail() {
	log "FAILED: $*"
	diagnostics
	exit 1
}

BIN=$ROOT/target/debug/clusterscale
FAKE=$ROOT/target/debug/clusterscale-fake-cloud
# The fake clouds are a binary of crates/fakes; a plain `cargo build` builds both.
[ -x "$BIN" ] && [ -x "$FAKE" ] || cargo build --quiet --bin clusterscale --bin clusterscale-fake-cloud
HELM=$(bash hack/build-helm.sh)
bash tests/kube/build-apiserver.sh >/dev/null

WORK=$(mktemp -d /tmp/clusterscale-e2e.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	bash tests/kube/apiserver.sh stop "$WORK/kube" >/dev/null 2>&1 || true
	if [ "${E2E_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

diagnostics() {
	for f in "$WORK"/operator.log "$WORK"/fake.err; do
		[ -f "$f" ] && { echo "--- tail of $f"; tail -n 40 "$f"; } >&2
	done
	[ -n "${KUBECONFIG:-}" ] && kubectl get scl -A -o yaml 2>&1 | tail -n 80 >&2 || true
}

# --- 1. the apiserver -------------------------------------------------------
mkdir -p "$WORK/kube"
export KUBECONFIG
KUBECONFIG=$(bash tests/kube/apiserver.sh start "$WORK/kube")
log "kube-apiserver $(cat "$WORK/kube/version") is up"

# --- 2. helm install --------------------------------------------------------
# The watched namespace exists first: the chart puts its Role there. The
# examples keep their credentials in a Secret next to each ScaledCluster
# (credentialsSecretRef), which needs rbac.secrets=clusterWide: the default,
# namespaced, reads Secrets in the release namespace only.
kubectl create namespace "$DATA_NS" >/dev/null
"$HELM" install "$RELEASE" charts/clusterscale --namespace "$SYSTEM_NS" --create-namespace \
	--set "watchNamespaces={$DATA_NS}" --set rbac.secrets=clusterWide --wait=false >"$WORK/helm-install.out" ||
	fail "helm install: $(cat "$WORK/helm-install.out")"
log "helm install: $("$HELM" list -n "$SYSTEM_NS" -o json | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["name"], r["status"], r["app_version"])')"
kubectl wait --for=condition=Established crd/scaledclusters.clusterscale.io crd/cloudaccounts.clusterscale.io --timeout=30s >/dev/null

# --- 3. fake clouds and the operator, as the ServiceAccount ----------------
# The fakes accept exactly the examples' placeholder credentials and cluster ids.
secret_value() { sed -n "s/^  $2: //p" "examples/$1"; }
TENCENT_ID=$(sed -n 's/^    instanceId: \([^ ]*\).*/\1/p' examples/tencent.yaml)
HUAWEI_ID=$(sed -n 's/^    clusterId: \([^ ]*\).*/\1/p' examples/huawei.yaml)
TENCENTCLOUD_SECRET_ID=$(secret_value tencent.yaml secretId) \
	TENCENTCLOUD_SECRET_KEY=$(secret_value tencent.yaml secretKey) \
	HUAWEICLOUD_SDK_AK=$(secret_value huawei.yaml accessKey) \
	HUAWEICLOUD_SDK_SK=$(secret_value huawei.yaml secretKey) \
	"$FAKE" --tencent 127.0.0.1:0 --huawei 127.0.0.1:0 \
	--tencent-instance-id "$TENCENT_ID" --huawei-cluster-id "$HUAWEI_ID" \
	--operation-seconds 2 --journal-dir "$WORK/journal" >"$WORK/fake.out" 2>"$WORK/fake.err" &
PIDS+=($!)
for _ in $(seq 1 100); do
	grep -q "^huawei listening" "$WORK/fake.out" 2>/dev/null && grep -q "^tencent listening" "$WORK/fake.out" && break
	sleep 0.1
done
TENCENT_URL=$(sed -n 's/^tencent listening on //p' "$WORK/fake.out")
HUAWEI_URL=$(sed -n 's/^huawei listening on //p' "$WORK/fake.out")
[ -n "$TENCENT_URL" ] && [ -n "$HUAWEI_URL" ] || fail "fake clouds did not start"
log "fake clouds: tencent $TENCENT_URL, huawei $HUAWEI_URL"

# sa_kubeconfig RELEASE NAMESPACE FILE: a kubeconfig with a token of the
# release's ServiceAccount.
sa_kubeconfig() {
	local token server ca
	token=$(kubectl create token "$1" -n "$2" --duration=1h)
	server=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
	ca=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
	cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: sa, user: {token: "$token"}}]
contexts: [{name: sa, context: {cluster: e2e, user: sa}}]
current-context: sa
EOF
	[ "$(KUBECONFIG=$3 kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" = "system:serviceaccount:$2:$1" ] ||
		fail "the token is not the ServiceAccount's"
}

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_operator RELEASE NAMESPACE KUBECONFIG LOG: the operator with the
# rendered Deployment's own arguments, out of cluster, with free loopback
# ports for metrics and health and a 1 s poll; waits until it is Ready, and
# leaves its metrics address in OPERATOR_METRICS.
start_operator() {
	local args run_args metrics health a
	mapfile -t args < <(kubectl get deploy "$1" -n "$2" \
		-o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}')
	metrics=127.0.0.1:$(port)
	health=127.0.0.1:$(port)
	run_args=()
	for a in "${args[@]}"; do
		case $a in
		--metrics-addr=*) run_args+=("--metrics-addr=$metrics") ;;
		--health-addr=*) run_args+=("--health-addr=$health") ;;
		--poll-seconds=*) run_args+=("--poll-seconds=1") ;;
		*) run_args+=("$a") ;;
		esac
	done
	log "clusterscale ${run_args[*]}"
	KUBECONFIG=$3 POD_NAMESPACE=$2 POD_NAME=$1-e2e-0 RUST_LOG=info \
		"$BIN" "${run_args[@]}" >"$4" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 300); do
		curl -fsS "http://$health/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "http://$health/readyz" >/dev/null || fail "the operator of $1 is not Ready"
	OPERATOR_METRICS=$metrics
	log "operator of $1 Ready as system:serviceaccount:$2:$1"
}

SA_KUBECONFIG=$WORK/sa.kubeconfig
sa_kubeconfig "$RELEASE" "$SYSTEM_NS" "$SA_KUBECONFIG"
start_operator "$RELEASE" "$SYSTEM_NS" "$SA_KUBECONFIG" "$WORK/operator.log"

# --- 4. the examples ---------------------------------------------------------
# Each example as shipped, pointed at its fake endpoint, with no cooldown so
# that the test does not wait 120 s between operations.
apply_example() { # FILE ENDPOINT
	sed -e "s|^\(    region: .*\)$|\1\n    endpoint: $2|" -e 's|^  cooldownSeconds: .*|  cooldownSeconds: 0|' \
		"examples/$1" | kubectl apply -f - >/dev/null || fail "kubectl apply examples/$1"
}
apply_example tencent.yaml "$TENCENT_URL"
apply_example huawei.yaml "$HUAWEI_URL"
start=$(date +%s)
kubectl wait -n "$DATA_NS" --for=condition=Ready scl/analytics scl/warehouse --timeout="${TIMEOUT}s" >/dev/null ||
	fail "the examples did not become Ready"
log "examples Ready in $(($(date +%s) - start)) s: $(kubectl get scl -n "$DATA_NS" --no-headers | tr -s ' ' | tr '\n' ';')"

# --- 5. kubectl scale ----------------------------------------------------------
start=$(date +%s)
kubectl scale -n "$DATA_NS" scl/analytics --replicas=11 >/dev/null
kubectl wait -n "$DATA_NS" --for=jsonpath='{.status.observed.task}'=11 scl/analytics --timeout="${TIMEOUT}s" >/dev/null ||
	fail "kubectl scale to 11 was not reconciled"
kubectl wait -n "$DATA_NS" --for=condition=Ready scl/analytics --timeout="${TIMEOUT}s" >/dev/null
log "kubectl scale --replicas=11 reconciled in $(($(date +%s) - start)) s"

# --- 6. Events and the scale subresource ---------------------------------------
events=$(kubectl get events.events.k8s.io -n "$DATA_NS" --field-selector regarding.name=analytics \
	-o go-template='{{range .items}}{{.reason}} {{.reportingController}}{{"\n"}}{{end}}')
# Operations of seconds: one Event each, the outcome (a Started only past 30 s).
grep -q "^ScaleOutCompleted clusterscale$" <<<"$events" || fail "no ScaleOutCompleted Event from clusterscale on analytics: $events"
grep -q "^ScaleOutCompleted" <<<"$(kubectl get events.events.k8s.io -n "$DATA_NS" --field-selector regarding.name=warehouse -o go-template='{{range .items}}{{.reason}}{{"\n"}}{{end}}')" ||
	fail "no ScaleOutCompleted Event on warehouse"
# The examples put the Secret first, so the operator never finds it missing.
grep -q "^CredentialsMissing" <<<"$events" && fail "a CredentialsMissing Event on analytics: $events"
log "Events: $(sort <<<"$events" | uniq -c | tr -s ' ' | tr '\n' ';')"
scale=$(kubectl get --raw "/apis/clusterscale.io/v1alpha1/namespaces/$DATA_NS/scaledclusters/analytics/scale")
python3 - "$scale" <<'EOF' || fail "the scale subresource: $scale"
import json, sys
s = json.loads(sys.argv[1])
assert s["spec"]["replicas"] == 11, s
assert s["status"]["replicas"] == 11, s
assert s["status"]["selector"] == "clusterscale.io/scaledcluster=analytics", s
EOF
log "scale subresource: replicas 11/11, selector clusterscale.io/scaledcluster=analytics"
writes=$(grep -c '"action":"ScaleOutInstance"' "$WORK/journal/tencent.jsonl" || true)
# Core 3->5 and Task 0->8 for the example, then Task 8->11: three writes, no duplicate.
[ "$writes" = 3 ] || fail "expected 3 ScaleOutInstance writes in the fake's journal, found $writes"
log "fake Tencent journal: $writes ScaleOutInstance writes (Core 3->5, Task 0->8, Task 8->11), no duplicate"

# --- 6b. a real Prometheus scrapes the operator: every dashboard query answers --
# The scrape config is the chart's ServiceMonitor endpoint (path, honorLabels)
# as a static config, with the target labels prometheus-operator gives a pod
# behind the Service (job = the Service, namespace, pod, service, endpoint).
PROM_DIR=$(bash hack/build-prometheus.sh)
"$HELM" template "$RELEASE" charts/clusterscale --namespace "$SYSTEM_NS" \
	--set metrics.serviceMonitor.enabled=true --show-only templates/servicemonitor.yaml >"$WORK/servicemonitor.yaml" ||
	fail "helm template of the ServiceMonitor"
SM_PATH=$(sed -n 's/^ *path: *//p' "$WORK/servicemonitor.yaml" | head -n 1)
SM_HONOR=$(sed -n 's/^ *honorLabels: *//p' "$WORK/servicemonitor.yaml" | head -n 1)
[ "$SM_HONOR" = true ] || fail "the ServiceMonitor does not honor the operator's namespace label"
PROM_ADDR=127.0.0.1:$(port)
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: $RELEASE-metrics # the Service's name, as prometheus-operator names the job
    metrics_path: $SM_PATH
    honor_labels: $SM_HONOR
    static_configs:
      - targets: ["$OPERATOR_METRICS"]
        labels: {namespace: $SYSTEM_NS, pod: $RELEASE-e2e-0, service: $RELEASE-metrics, endpoint: metrics}
EOF
"$PROM_DIR/prometheus" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
	--web.listen-address="$PROM_ADDR" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
	curl -fsS "http://$PROM_ADDR/-/ready" >/dev/null 2>&1 && break
	sleep 0.2
done
curl -fsS "http://$PROM_ADDR/-/ready" >/dev/null || fail "Prometheus is not ready: $(tail -n 20 "$WORK/prometheus.log")"
sleep 12 # six scrapes: every rate() has two samples in its window
python3 - "http://$PROM_ADDR" charts/clusterscale/files/dashboard.json "$DATA_NS" <<'EOF' || fail "the dashboard against a real Prometheus"
import json, sys, urllib.parse, urllib.request
base, path, data_ns = sys.argv[1:]
def query(expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = json.load(urllib.request.urlopen(url, timeout=10))
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]
dashboard = json.load(open(path))
# Grafana's variables as a user picks them: the data namespace, every cluster.
values = {"$namespace": data_ns, "$name": ".*", "$__rate_interval": "30s"}
checked = 0
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"]
        for k, v in values.items():
            expr = expr.replace(k, v)
        result = query(expr)
        assert result, f"panel {panel['title']!r}: no series for {expr}"
        checked += 1
# The namespace filter: the ScaledClusters of the data namespace, under their
# own namespace label (honorLabels), and nothing of the operator's.
names = {r["metric"]["name"] for r in query(f'clusterscale_condition{{namespace=~"{data_ns}"}}')}
assert names == {"analytics", "warehouse"}, names
assert not query('clusterscale_condition{namespace="clusterscale-system"}'), "the per-resource namespace was overwritten"
assert not query('{exported_namespace!=""}'), "a label was renamed exported_namespace"
only = query(f'clusterscale_nodes{{namespace=~"{data_ns}", name=~"analytics"}}')
assert only and {r["metric"]["name"] for r in only} == {"analytics"}, only
print(f"{checked} dashboard queries answered; namespace filter {data_ns}: {sorted(names)}")
EOF
log "Prometheus $("$PROM_DIR/prometheus" --version 2>&1 | head -n 1 | cut -d' ' -f3) scraped the operator: every dashboard query answered, the namespace filter holds"

# --- 7. RBAC: enough (it converged above) and not too much ----------------------
can() { KUBECONFIG=$SA_KUBECONFIG kubectl auth can-i "$@" 2>/dev/null; }
expect_yes() { [ "$(can "$@")" = yes ] || fail "the ServiceAccount should be allowed: can-i $*"; }
expect_no() { [ "$(can "$@")" = no ] || fail "the ServiceAccount must be refused: can-i $*"; }
expect_yes get secrets/tencent-credentials -n "$DATA_NS"
expect_yes patch scaledclusters.clusterscale.io/analytics --subresource=status -n "$DATA_NS"
expect_yes create events.events.k8s.io -n "$DATA_NS"
expect_yes update leases.coordination.k8s.io/clusterscale-leader -n "$SYSTEM_NS"
expect_yes watch cloudaccounts.clusterscale.io
expect_yes patch cloudaccounts.clusterscale.io/any --subresource=status
expect_no get secrets -n default
expect_no get secrets -n kube-system
expect_no list secrets --all-namespaces
# clusterWide with watchNamespaces: Secrets in the watched namespaces only, not
# even in the release namespace.
expect_no get secrets -n "$SYSTEM_NS"
expect_no update scaledclusters.clusterscale.io/analytics -n "$DATA_NS"
expect_no patch scaledclusters.clusterscale.io/analytics -n "$DATA_NS"
expect_no delete scaledclusters.clusterscale.io/analytics -n "$DATA_NS"
expect_no create scaledclusters.clusterscale.io -n "$DATA_NS"
expect_no create cloudaccounts.clusterscale.io
expect_no patch cloudaccounts.clusterscale.io/any
expect_no update secrets/tencent-credentials -n "$DATA_NS"
expect_no create pods -n "$DATA_NS"
expect_no create configmaps -n "$SYSTEM_NS"
expect_no update leases.coordination.k8s.io/some-other-lease -n "$SYSTEM_NS"
expect_no create leases.coordination.k8s.io -n "$DATA_NS"
expect_no delete customresourcedefinitions.apiextensions.k8s.io/scaledclusters.clusterscale.io
log "auth can-i: 6 allowed, 16 refused, as intended"

# --- 7b. rbac.secrets=namespaced and a CloudAccount ------------------------------
# A second release with the chart's defaults (Secrets readable in its own
# namespace only), watching its own data namespace, the CRDs left to the first
# release. The keys live only in the release namespace; the ScaledCluster names
# a CloudAccount instead of a Secret. Its own fake cloud: the first release
# still manages the first fake's cluster.
ACC_NS=clusterscale-accounts
ACC_DATA=accounts-data
ACC_RELEASE=clusterscale-accounts # the full name: it contains "clusterscale"
kubectl create namespace "$ACC_DATA" >/dev/null
"$HELM" install "$ACC_RELEASE" charts/clusterscale --namespace "$ACC_NS" --create-namespace \
	--set "watchNamespaces={$ACC_DATA}" --set crds.install=false --wait=false >"$WORK/helm-install-accounts.out" ||
	fail "helm install (namespaced): $(cat "$WORK/helm-install-accounts.out")"
kubectl get deploy "$ACC_RELEASE" -n "$ACC_NS" -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q -- '--secrets=namespaced' ||
	fail "the default install does not pass --secrets=namespaced"
TENCENTCLOUD_SECRET_ID=$(secret_value tencent.yaml secretId) \
	TENCENTCLOUD_SECRET_KEY=$(secret_value tencent.yaml secretKey) \
	"$FAKE" --tencent 127.0.0.1:0 --tencent-instance-id "$TENCENT_ID" \
	--operation-seconds 2 --journal-dir "$WORK/journal-accounts" >"$WORK/fake-accounts.out" 2>"$WORK/fake-accounts.err" &
PIDS+=($!)
for _ in $(seq 1 100); do
	grep -q "^tencent listening" "$WORK/fake-accounts.out" 2>/dev/null && break
	sleep 0.1
done
ACC_URL=$(sed -n 's/^tencent listening on //p' "$WORK/fake-accounts.out")
[ -n "$ACC_URL" ] || fail "the second fake cloud did not start"
kubectl create secret generic tencent-keys -n "$ACC_NS" \
	--from-literal=secretId="$(secret_value tencent.yaml secretId)" \
	--from-literal=secretKey="$(secret_value tencent.yaml secretKey)" >/dev/null
kubectl apply -f - >/dev/null <<EOF || fail "kubectl apply the CloudAccount"
apiVersion: clusterscale.io/v1alpha1
kind: CloudAccount
metadata: {name: e2e-tencent}
spec:
  tencent:
    secretRef: {namespace: $ACC_NS, name: tencent-keys}
EOF
ACC_KUBECONFIG=$WORK/sa-accounts.kubeconfig
sa_kubeconfig "$ACC_RELEASE" "$ACC_NS" "$ACC_KUBECONFIG"
start_operator "$ACC_RELEASE" "$ACC_NS" "$ACC_KUBECONFIG" "$WORK/operator-accounts.log"
kubectl apply -f - >/dev/null <<EOF || fail "kubectl apply the ScaledCluster on the CloudAccount"
apiVersion: clusterscale.io/v1alpha1
kind: ScaledCluster
metadata: {name: shared, namespace: $ACC_DATA}
spec:
  tencent:
    region: ap-guangzhou
    instanceId: $TENCENT_ID
    endpoint: $ACC_URL
    accountRef: {name: e2e-tencent}
  core: {count: 4}
  task: {count: 3, min: 0, max: 20}
  cooldownSeconds: 0
EOF
start=$(date +%s)
kubectl wait -n "$ACC_DATA" --for=condition=Ready scl/shared --timeout="${TIMEOUT}s" >/dev/null ||
	fail "the ScaledCluster on the CloudAccount did not become Ready"
[ "$(kubectl get scl shared -n "$ACC_DATA" -o jsonpath='{.status.observed.core}/{.status.observed.task}')" = 4/3 ] ||
	fail "shared is not at 4/3: $(kubectl get scl shared -n "$ACC_DATA" -o yaml)"
kubectl wait --for=jsonpath='{.status.users}'=1 cloudaccount/e2e-tencent --timeout=60s >/dev/null ||
	fail "the CloudAccount does not count its user: $(kubectl get cloudaccount e2e-tencent -o yaml)"
kubectl wait --for=condition=Ready cloudaccount/e2e-tencent --timeout=30s >/dev/null ||
	fail "the CloudAccount is not Ready: $(kubectl get cloudaccount e2e-tencent -o yaml)"
log "rbac.secrets=namespaced: shared Ready at 4/3 in $(($(date +%s) - start)) s through CloudAccount e2e-tencent ($(kubectl get ca e2e-tencent --no-headers | tr -s ' '))"
can_acc() { KUBECONFIG=$ACC_KUBECONFIG kubectl auth can-i "$@" 2>/dev/null; }
[ "$(can_acc get secrets/tencent-keys -n "$ACC_NS")" = yes ] || fail "namespaced: cannot read the release namespace's Secret"
for where in "-n $ACC_DATA" "-n default" "--all-namespaces"; do
	# shellcheck disable=SC2086
	[ "$(can_acc list secrets $where)" = no ] || fail "namespaced: may list secrets $where"
done
log "rbac.secrets=namespaced: Secrets readable in $ACC_NS only"
"$HELM" uninstall "$ACC_RELEASE" -n "$ACC_NS" >/dev/null || fail "helm uninstall $ACC_RELEASE"

# --- 8. helm uninstall keeps the CRD and the resources ---------------------------
"$HELM" uninstall "$RELEASE" -n "$SYSTEM_NS" >"$WORK/helm-uninstall.out" ||
	fail "helm uninstall: $(cat "$WORK/helm-uninstall.out")"
kubectl get deploy "$RELEASE" -n "$SYSTEM_NS" >/dev/null 2>&1 && fail "the Deployment survived helm uninstall"
kubectl get crd scaledclusters.clusterscale.io >/dev/null || fail "helm uninstall deleted the CRD"
kubectl get crd cloudaccounts.clusterscale.io >/dev/null || fail "helm uninstall deleted the CloudAccount CRD"
[ "$(kubectl get scl -n "$DATA_NS" --no-headers | wc -l)" = 2 ] || fail "helm uninstall lost ScaledClusters"
[ "$(kubectl get scl analytics -n "$DATA_NS" -o jsonpath='{.spec.task.count}')" = 11 ] || fail "analytics changed"
log "helm uninstall: Deployment gone; both CRDs and both ScaledClusters kept"
log "PASSED in $(($(date +%s) - T0)) s"
