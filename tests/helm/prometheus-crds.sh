#!/usr/bin/env bash
# Fetch prometheus-operator's ServiceMonitor and PrometheusRule CRDs from its
# Go module (the files the project itself publishes, not hand-written
# stand-ins) and cache them under ${CACHE}/prometheus-operator-<version>/.
#
# Usage: tests/helm/prometheus-crds.sh   (stdout: the directory of the CRD
# files, each `monitoring.coreos.com_<plural>.yaml`; `kubectl apply -f DIR`)
set -euo pipefail

# Newest version of github.com/prometheus-operator/prometheus-operator the Go
# module proxy serves here (v0.95.x is refused).
VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.94.0}
CRDS=(servicemonitors prometheusrules)
BUILD_NAME=prometheus-crds
# shellcheck source=../../hack/lib/build-cache.sh
source "$(dirname "$0")/../../hack/lib/build-cache.sh"
OUT=$CACHE/prometheus-operator-$VERSION

missing=()
for c in "${CRDS[@]}"; do
	[ -s "$OUT/monitoring.coreos.com_$c.yaml" ] || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	need_go
	mkdir -p "$OUT"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	dir=$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod \
		go mod download -json "github.com/prometheus-operator/prometheus-operator@$VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[ -n "$dir" ] || die "go mod download gave no directory"
	for c in "${missing[@]}"; do
		f=monitoring.coreos.com_$c.yaml
		cp "$dir/example/prometheus-operator-crd/$f" "$OUT/.$f.tmp"
		mv "$OUT/.$f.tmp" "$OUT/$f"
		log "cached $OUT/$f"
	done
fi
echo "$OUT"
