#!/usr/bin/env bash
# The whole user story, end to end, with real tools:
#   1. start a real kube-apiserver (RBAC on)            tests/kube/apiserver.sh
#   2. helm install the chart                           real helm (hack/build-helm.sh)
#   3. start the fake clouds, and the operator with the Deployment's own args,
#      authenticated as the chart's ServiceAccount     kubectl create token
#   4. kubectl apply the Tencent and Huawei examples, wait for Ready
#   5. kubectl scale, wait for the new count
#   6. check the Events and the scale subresource
#   7. check the ServiceAccount's rights with kubectl auth can-i
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
SA=system:serviceaccount:$SYSTEM_NS:$RELEASE
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

TOKEN=$(kubectl create token "$RELEASE" -n "$SYSTEM_NS" --duration=1h)
SA_KUBECONFIG=$WORK/sa.kubeconfig
SERVER=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
CA=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat >"$SA_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$SERVER", certificate-authority-data: "$CA"}}]
users: [{name: sa, user: {token: "$TOKEN"}}]
contexts: [{name: sa, context: {cluster: e2e, user: sa}}]
current-context: sa
EOF
[ "$(KUBECONFIG=$SA_KUBECONFIG kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" = "$SA" ] ||
	fail "the token is not the ServiceAccount's"

# The operator runs with the rendered Deployment's own arguments, out of cluster,
# with free loopback ports for metrics and health and a 1 s poll.
mapfile -t ARGS < <(kubectl get deploy "$RELEASE" -n "$SYSTEM_NS" \
	-o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}')
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
METRICS=127.0.0.1:$(port)
HEALTH=127.0.0.1:$(port)
RUN_ARGS=()
for a in "${ARGS[@]}"; do
	case $a in
	--metrics-addr=*) RUN_ARGS+=("--metrics-addr=$METRICS") ;;
	--health-addr=*) RUN_ARGS+=("--health-addr=$HEALTH") ;;
	--poll-seconds=*) RUN_ARGS+=("--poll-seconds=1") ;;
	*) RUN_ARGS+=("$a") ;;
	esac
done
log "clusterscale ${RUN_ARGS[*]}"
KUBECONFIG=$SA_KUBECONFIG POD_NAMESPACE=$SYSTEM_NS POD_NAME=e2e-operator-0 RUST_LOG=info \
	"$BIN" "${RUN_ARGS[@]}" >"$WORK/operator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
	curl -fsS "http://$HEALTH/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://$HEALTH/readyz" >/dev/null || fail "the operator is not Ready"
log "operator Ready as $SA"

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
for want in ScaleOutStarted ScaleOutCompleted; do
	grep -q "^$want clusterscale$" <<<"$events" || fail "no $want Event from clusterscale on analytics: $events"
done
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
