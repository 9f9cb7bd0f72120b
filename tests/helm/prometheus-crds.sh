#!/usr/bin/env bash
# Fetch prometheus-operator's ServiceMonitor CRD from its Go module (the
# files the project itself publishes, not a hand-written stand-in) and cache it
# under ${CACHE}/prometheus-operator-<version>/.
#
# Usage: tests/helm/prometheus-crds.sh   (stdout: the path of the CRD file)
set -euo pipefail

# Newest version of github.com/prometheus-operator/prometheus-operator the Go
# module proxy serves here (v0.95.x is refused).
VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.94.0}
BUILD_NAME=prometheus-crds
# shellcheck source=../../hack/lib/build-cache.sh
source "$(dirname "$0")/../../hack/lib/build-cache.sh"
OUT=$CACHE/prometheus-operator-$VERSION/monitoring.coreos.com_servicemonitors.yaml

if [ ! -s "$OUT" ]; then
	need_go
	mkdir -p "$(dirname "$OUT")"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod \
		go mod download -json "github.com/prometheus-operator/prometheus-operator@$VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[ -n "$dir" ] || { echo "prometheus-crds: go mod download gave no directory" >&2; exit 1; }
	cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	echo "prometheus-crds: cached $OUT" >&2
fi
echo "$OUT"
