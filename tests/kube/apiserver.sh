#!/usr/bin/env bash
# Run a throwaway etcd + kube-apiserver on loopback for the test suite.
#
# Usage:
#   tests/kube/apiserver.sh start DIR   # build (if needed) + start; prints DIR/kubeconfig
#   tests/kube/apiserver.sh stop DIR    # TERM, then KILL, both processes
#   tests/kube/apiserver.sh env DIR     # prints `export ...` lines; use with eval
#
# `start` creates in DIR (made absolute):
#   kubeconfig            admin (group system:masters) via static token, CA embedded
#   operator.kubeconfig   user "clusterscale-operator", no groups (for RBAC tests)
#   admin.token, operator.token, pki/ (CA, serving cert, SA signing key), tokens.csv
#   version               server gitVersion as reported by GET /version
#   etcd.pid, apiserver.pid, etcd.log, apiserver.log, etcd-data/
#   ports                 shell-sourceable ETCD_CLIENT_PORT=.. APISERVER_PORT=..
# Every `start` begins with a fresh etcd data dir (empty cluster); the PKI and
# tokens in DIR are reused if present so existing kubeconfigs stay valid.
#
# Environment:
#   APISERVER_READY_TIMEOUT  seconds to wait for /readyz (default 60)
#   APISERVER_PROFILING      "true" serves Go's /debug/pprof on the secure port
#                            (admin kubeconfig: kubectl get --raw
#                            '/debug/pprof/profile?seconds=30' > cpu.pprof; go tool pprof -top);
#                            off by default, as in a hardened control plane
#   APISERVER_SERVICE_CIDR   the Service ClusterIP range (default 10.0.0.0/24).
#                            A range in 127.0.0.0/8 makes ClusterIPs reachable
#                            on loopback without kube-proxy: the aggregation
#                            layer dials an APIService's Service ClusterIP, so
#                            the autoscaling test serves KEDA's metrics adapter
#                            on one (Endpoints may not be loopback addresses).
#   KUBE_VERSION etc.        passed through to build-apiserver.sh
#
# The aggregation layer is configured as kubeadm does it: a front-proxy CA
# (pki/front-proxy-ca.crt) that the apiserver's proxy client cert
# (CN=front-proxy-client) is signed by, published to extension apiservers in
# kube-system/extension-apiserver-authentication.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
READY_TIMEOUT=${APISERVER_READY_TIMEOUT:-60}
PROFILING=${APISERVER_PROFILING:-false}
# First IP of this range (10.0.0.1) becomes the `kubernetes` Service ClusterIP.
SERVICE_CIDR=${APISERVER_SERVICE_CIDR:-10.0.0.0/24}

log() { echo "apiserver.sh: $*" >&2; }
die() { echo "apiserver.sh: ERROR: $*" >&2; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

# pid_alive PIDFILE: true if the pid in PIDFILE is running *and* is one of our
# processes (its command line mentions DIR) - guards against recycled pids.
pid_alive() {
	local f=$1 pid
	[ -s "$f" ] || return 1
	pid=$(cat "$f")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR" || return 1
}

# stop_pid NAME: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
	local name=$1 f="$DIR/$1.pid" pid _
	if ! pid_alive "$f"; then
		rm -f "$f"
		return 0
	fi
	pid=$(cat "$f")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name did not exit after SIGTERM; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$f"
}

cmd_stop() {
	# apiserver first so it doesn't spam errors about a vanished etcd.
	stop_pid apiserver
	stop_pid etcd
}

# Print N distinct free TCP ports on 127.0.0.1. All sockets are held open until
# every port is chosen so the N ports differ; there is an unavoidable small race
# between closing them and the servers binding.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# spawn NAME CMD...: run CMD detached (own session, survives this script and
# terminal hang-ups), output to DIR/NAME.log, pid to DIR/NAME.pid. The pid is
# written by the process itself right before exec, so it is exactly the pid of
# the server binary.
spawn() {
	local name=$1
	shift
	: >"$DIR/$name.log"
	rm -f "$DIR/$name.pid"
	# shellcheck disable=SC2016 # $$ and $@ are expanded by the inner bash
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$DIR/$name.pid" "$@" \
		</dev/null >>"$DIR/$name.log" 2>&1 &
	local _
	for _ in $(seq 1 50); do
		[ -s "$DIR/$name.pid" ] && return 0
		sleep 0.1
	done
	die "$name did not start (see $DIR/$name.log)"
}

gen_pki() {
	local pki=$DIR/pki
	mkdir -p "$pki"
	chmod 700 "$pki"
	if [ -s "$pki/ca.crt" ] && [ -s "$pki/apiserver.crt" ] && [ -s "$pki/sa.key" ] &&
		[ -s "$pki/front-proxy-client.crt" ] &&
		[ -s "$DIR/admin.token" ] && [ -s "$DIR/operator.token" ]; then
		return 0
	fi
	log "generating CA, serving cert, service-account key and tokens in $pki"
	(
		cd "$pki"
		openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
			-keyout ca.key -out ca.crt -subj "/CN=clusterscale-test-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -sha256 \
			-keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
		# SANs: loopback (how tests connect) plus the in-cluster names/ClusterIP
		# of the `kubernetes` Service, so the cert is also valid for those.
		cat >apiserver.ext <<-EOF
			basicConstraints = critical, CA:FALSE
			keyUsage = critical, digitalSignature, keyEncipherment
			extendedKeyUsage = serverAuth
			subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
		EOF
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-sha256 -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
		# Service-account token signing key pair.
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# The aggregation layer's front proxy: its own CA and client cert.
		openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
			-keyout front-proxy-ca.key -out front-proxy-ca.crt -subj "/CN=front-proxy-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -sha256 \
			-keyout front-proxy-client.key -out front-proxy-client.csr -subj "/CN=front-proxy-client" 2>/dev/null
		printf 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = clientAuth\n' >front-proxy-client.ext
		openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
			-CAcreateserial -sha256 -days 3650 -extfile front-proxy-client.ext -out front-proxy-client.crt 2>/dev/null
		rm -f apiserver.csr ca.srl front-proxy-client.csr front-proxy-ca.srl
	) || die "openssl failed generating certificates"
	openssl rand -hex 24 >"$DIR/admin.token"
	openssl rand -hex 24 >"$DIR/operator.token"
	chmod 600 "$DIR/admin.token" "$DIR/operator.token"
}

write_kubeconfig() { # FILE USER TOKEN
	local ca
	ca=$(base64 -w0 <"$DIR/pki/ca.crt")
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: clusterscale-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@clusterscale-test
  context:
    cluster: clusterscale-test
    user: $2
current-context: $2@clusterscale-test
EOF
	chmod 600 "$1"
}

# GET PATH against the apiserver as admin; prints the body.
api_get() {
	curl -sS --fail --max-time 5 --cacert "$DIR/pki/ca.crt" \
		-H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		"https://127.0.0.1:$APISERVER_PORT$1"
}

fail_start() {
	log "$1"
	for n in etcd apiserver; do
		if [ -s "$DIR/$n.log" ]; then
			echo "----- last lines of $DIR/$n.log -----" >&2
			tail -n 25 "$DIR/$n.log" >&2
		fi
	done
	cmd_stop
	exit 1
}

cmd_start() {
	for t in openssl python3 curl setsid base64; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' is required but not installed"
	done
	if pid_alive "$DIR/apiserver.pid" || pid_alive "$DIR/etcd.pid"; then
		die "already running in $DIR (run: $0 stop $DIR)"
	fi
	mkdir -p "$DIR"

	local bindir
	bindir=$("$HERE/build-apiserver.sh" | tail -n1) || die "build-apiserver.sh failed"
	{ [ -x "$bindir/kube-apiserver" ] && [ -x "$bindir/etcd" ]; } ||
		die "build-apiserver.sh did not produce binaries in '$bindir'"

	gen_pki
	# Static token file: token,user,uid[,"group1,group2"]. The operator user has
	# no groups at all, so it can only do what RBAC bindings grant it.
	printf '%s,admin,admin,"system:masters"\n%s,clusterscale-operator,clusterscale-operator\n' \
		"$(cat "$DIR/admin.token")" "$(cat "$DIR/operator.token")" >"$DIR/tokens.csv"
	chmod 600 "$DIR/tokens.csv"

	read -r ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT <<<"$(free_ports 3)"
	printf 'ETCD_CLIENT_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
		"$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$DIR/ports"

	# Fresh, empty cluster on every start.
	rm -rf "$DIR/etcd-data"
	rm -f "$DIR/version"
	local etcd_url=http://127.0.0.1:$ETCD_CLIENT_PORT
	local peer_url=http://127.0.0.1:$ETCD_PEER_PORT
	# --unsafe-no-fsync: throwaway test data; skipping fsync makes writes much
	# faster on slow CI disks. Metrics are served on the client URL.
	log "starting etcd on $etcd_url"
	spawn etcd "$bindir/etcd" \
		--name=clusterscale-test \
		--data-dir="$DIR/etcd-data" \
		--listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
		--listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
		--initial-cluster="clusterscale-test=$peer_url" \
		--initial-cluster-state=new \
		--unsafe-no-fsync

	# Wait for etcd before starting the apiserver (the apiserver would retry,
	# but a failed etcd gives a much clearer error this way).
	local _
	for _ in $(seq 1 100); do
		curl -sf --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"' && break
		pid_alive "$DIR/etcd.pid" || fail_start "etcd exited during startup"
		sleep 0.2
	done
	curl -sf --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"' ||
		fail_start "etcd did not become healthy"

	log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
	# Notes:
	# - --endpoint-reconciler-type=none: the reconciler would try to publish
	#   127.0.0.1 as the endpoint of the `kubernetes` Service, which the API
	#   rejects (loopback endpoints are invalid); nothing in-cluster needs it.
	# - --cert-dir is only a fallback location (we pass explicit certs) but
	#   defaults to /var/run/kubernetes; keep everything inside DIR.
	# - --client-ca-file enables x509 client-cert auth with the same CA.
	spawn apiserver "$bindir/kube-apiserver" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$APISERVER_PORT" \
		--cert-dir="$DIR/pki" \
		--tls-cert-file="$DIR/pki/apiserver.crt" \
		--tls-private-key-file="$DIR/pki/apiserver.key" \
		--client-ca-file="$DIR/pki/ca.crt" \
		--token-auth-file="$DIR/tokens.csv" \
		--authorization-mode=Node,RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$DIR/pki/sa.pub" \
		--service-account-signing-key-file="$DIR/pki/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--requestheader-client-ca-file="$DIR/pki/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="$DIR/pki/front-proxy-client.crt" \
		--proxy-client-key-file="$DIR/pki/front-proxy-client.key" \
		--etcd-servers="$etcd_url" \
		--endpoint-reconciler-type=none \
		--allow-privileged=true \
		--profiling="$PROFILING"

	write_kubeconfig "$DIR/kubeconfig" admin "$(cat "$DIR/admin.token")"
	write_kubeconfig "$DIR/operator.kubeconfig" clusterscale-operator "$(cat "$DIR/operator.token")"

	local deadline=$((SECONDS + READY_TIMEOUT)) ready=
	while [ "$SECONDS" -lt "$deadline" ]; do
		if [ "$(api_get /readyz 2>/dev/null)" = ok ]; then
			ready=1
			break
		fi
		pid_alive "$DIR/apiserver.pid" || fail_start "kube-apiserver exited during startup"
		pid_alive "$DIR/etcd.pid" || fail_start "etcd exited during startup"
		sleep 0.5
	done
	[ -n "$ready" ] || fail_start "kube-apiserver not ready after ${READY_TIMEOUT}s (APISERVER_READY_TIMEOUT)"

	local version
	version=$(api_get /version | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])') ||
		fail_start "could not read /version"
	printf '%s\n' "$version" >"$DIR/version"
	log "ready: kube-apiserver $version (pids: etcd $(cat "$DIR/etcd.pid"), apiserver $(cat "$DIR/apiserver.pid"))"
	echo "$DIR/kubeconfig"
}

cmd_env() {
	{ [ -s "$DIR/ports" ] && [ -s "$DIR/kubeconfig" ]; } || die "nothing started in $DIR"
	# shellcheck disable=SC1091
	. "$DIR/ports"
	printf 'export KUBECONFIG=%q\n' "$DIR/kubeconfig"
	printf 'export CLUSTERSCALE_KUBE_DIR=%q\n' "$DIR"
	printf 'export CLUSTERSCALE_APISERVER_URL=%q\n' "https://127.0.0.1:$APISERVER_PORT"
	printf 'export CLUSTERSCALE_CA_FILE=%q\n' "$DIR/pki/ca.crt"
	printf 'export CLUSTERSCALE_ADMIN_TOKEN=%q\n' "$(cat "$DIR/admin.token")"
	printf 'export CLUSTERSCALE_OPERATOR_TOKEN=%q\n' "$(cat "$DIR/operator.token")"
	printf 'export CLUSTERSCALE_OPERATOR_KUBECONFIG=%q\n' "$DIR/operator.kubeconfig"
	printf 'export CLUSTERSCALE_ETCD_URL=%q\n' "http://127.0.0.1:$ETCD_CLIENT_PORT"
	[ -s "$DIR/version" ] && printf 'export CLUSTERSCALE_KUBE_VERSION=%q\n' "$(cat "$DIR/version")"
	return 0
}

[ $# -eq 2 ] || usage
if [ "$1" = start ]; then mkdir -p "$2"; fi
if [ ! -d "$2" ]; then
	[ "$1" = stop ] && exit 0 # nothing to stop
	die "no such directory: $2"
fi
DIR=$(cd "$2" && pwd -P)
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*) usage ;;
esac
