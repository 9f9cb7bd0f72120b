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
BUILD_NAME=build-helm
# shellcheck source=lib/build-cache.sh
source "$(dirname "$0")/lib/build-cache.sh"
OUT_DIR=$CACHE/helm-$HELM_VERSION
BIN=$OUT_DIR/helm

need_go
lock_dir "$OUT_DIR"
exit_if_cached "$BIN" "${HELM_BUILD_FORCE:-0}"

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
