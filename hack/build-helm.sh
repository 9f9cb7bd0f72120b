#!/usr/bin/env bash
# Build real helm from its Go module (helm.sh/helm/v3/cmd/helm) and cache it
# under ${CACHE}/helm-<version>/helm. No git checkout, no Docker.
#
# Usage: hack/build-helm.sh        (stdout: the path of the helm binary)
#
# Environment:
#   HELM_VERSION        helm.sh/helm/v3 version (default: pinned below)
#   CLUSTERSCALE_CACHE  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
#   HELM_BUILD_FORCE=1  rebuild even if the binary exists
#
# Idempotent (skips the build when the binary exists) and serialised with flock.
set -euo pipefail

DEFAULT_HELM_VERSION=v3.22.0
HELM_VERSION=${HELM_VERSION:-$DEFAULT_HELM_VERSION}
CACHE=${CLUSTERSCALE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterscale}
OUT_DIR=$CACHE/helm-$HELM_VERSION
BIN=$OUT_DIR/helm

log() { echo "build-helm: $*" >&2; }
die() { echo "build-helm: ERROR: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "'go' not found in PATH"
mkdir -p "$OUT_DIR"
exec 9>"$OUT_DIR/.lock"
flock 9

if [ -x "$BIN" ] && [ "${HELM_BUILD_FORCE:-0}" != 1 ]; then
	log "cached: $BIN"
	echo "$BIN"
	exit 0
fi

# helm v3.22's go.mod is satisfied by the local toolchain; never fetch another.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
log "building helm.sh/helm/v3/cmd/helm@$HELM_VERSION with $(go env GOVERSION) ..."
start=$(date +%s)
GOBIN=$OUT_DIR go install \
	-ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
	"helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
log "built in $(( $(date +%s) - start ))s: $("$BIN" version --short)"
echo "$BIN"
