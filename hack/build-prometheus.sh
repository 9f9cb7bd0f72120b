#!/usr/bin/env bash
# Build real prometheus and promtool from their Go module
# (github.com/prometheus/prometheus/cmd/{prometheus,promtool}) and cache them
# under ${CACHE}/prometheus-<version>/. No git checkout, no Docker, no web UI
# assets (the tests only need the rule engine and promtool).
#
# Usage: hack/build-prometheus.sh   (stdout: the directory holding both binaries)
#
# Environment:
#   PROMETHEUS_VERSION        github.com/prometheus/prometheus module version
#                             (default: pinned below; module v0.3XX.Y is
#                             Prometheus 3.XX.Y)
#   CLUSTERSCALE_CACHE        cache root (default: ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
#   PROMETHEUS_BUILD_FORCE=1  rebuild even if the binaries exist
#
# Idempotent (skips the build when both binaries exist) and serialised with flock.
set -euo pipefail

DEFAULT_PROMETHEUS_VERSION=v0.316.0
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-$DEFAULT_PROMETHEUS_VERSION}
BUILD_NAME=build-prometheus
# shellcheck source=lib/build-cache.sh
source "$(dirname "$0")/lib/build-cache.sh"
OUT_DIR=$CACHE/prometheus-$PROMETHEUS_VERSION

[[ $PROMETHEUS_VERSION =~ ^v0\.([0-9]+)([0-9]{2})\.([0-9]+)$ ]] ||
	die "PROMETHEUS_VERSION must look like v0.3XX.Y (got '$PROMETHEUS_VERSION')"
# The Go module is versioned v0.<major><minor>.<patch>; the release it was cut
# from (what `--version` should say) is <major>.<minor>.<patch>.
RELEASE=${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}

have_binaries() { [ -x "$OUT_DIR/prometheus" ] && [ -x "$OUT_DIR/promtool" ]; }

exit_if_built "$OUT_DIR" "${PROMETHEUS_BUILD_FORCE:-0}" have_binaries
need_go
lock_dir "$OUT_DIR"
# A concurrent run may have built it while we waited for the lock.
exit_if_built "$OUT_DIR" "${PROMETHEUS_BUILD_FORCE:-0}" have_binaries

# v0.316.0's go.mod (go 1.26.7) has no replace directives, so `go install
# module@version` works as is. A newer release may ask for a newer Go: set
# GOTOOLCHAIN (e.g. go1.27.3) in the environment to let go fetch it.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
# Without these, --version reports an empty version.
pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$RELEASE -X $pkg.Revision=$PROMETHEUS_VERSION -X $pkg.Branch=module"
ldflags+=" -X $pkg.BuildUser=clusterscale -X $pkg.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"

# Install into a scratch GOBIN and publish atomically: a half-written binary
# must never look cached.
tmp=$(mktemp -d "$OUT_DIR/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building prometheus and promtool $RELEASE (module $PROMETHEUS_VERSION) with $(go env GOVERSION) (cold: ~12 min on 2 cores) ..."
start=$(date +%s)
GOBIN=$tmp go install -trimpath -ldflags "$ldflags" \
	"github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
	"github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2
"$tmp/prometheus" --version >&2 || die "built prometheus does not run"
"$tmp/promtool" --version >&2 || die "built promtool does not run"
for b in prometheus promtool; do mv -f "$tmp/$b" "$OUT_DIR/$b"; done
log "built in $(( $(date +%s) - start ))s: $OUT_DIR"
echo "$OUT_DIR"
