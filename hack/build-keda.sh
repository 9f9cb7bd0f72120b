#!/usr/bin/env bash
# Build KEDA's operator and metrics adapter from their Go module
# (github.com/kedacore/keda/v2, cmd/operator and cmd/adapter) and cache them,
# with KEDA's CRDs from the same module, under ${CACHE}/keda-<version>/:
#   keda-operator, keda-adapter, crds/*.yaml
# No git checkout, no Docker.
#
# Usage: hack/build-keda.sh   (stdout: the directory holding both binaries)
#
# Environment:
#   KEDA_VERSION          github.com/kedacore/keda/v2 version (default: pinned below)
#   CLUSTERSCALE_CACHE    cache root (default: ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
#   KEDA_BUILD_FORCE=1    rebuild even if the binaries exist
#
# Idempotent (skips the build when both binaries exist) and serialised with flock.
set -euo pipefail

# v2.21.1 asks for go 1.27.4, newer than any toolchain the proxy serves here;
# v2.21.0 asks for go 1.26.0.
DEFAULT_KEDA_VERSION=v2.21.0
KEDA_VERSION=${KEDA_VERSION:-$DEFAULT_KEDA_VERSION}
BUILD_NAME=build-keda
# shellcheck source=lib/build-cache.sh
source "$(dirname "$0")/lib/build-cache.sh"
OUT_DIR=$CACHE/keda-$KEDA_VERSION
MODULE=github.com/kedacore/keda/v2

have_all() { [ -x "$OUT_DIR/keda-operator" ] && [ -x "$OUT_DIR/keda-adapter" ] && [ -f "$OUT_DIR/crds/keda.sh_scaledobjects.yaml" ]; }

exit_if_built "$OUT_DIR" "${KEDA_BUILD_FORCE:-0}" have_all
need_go
lock_dir "$OUT_DIR"
exit_if_built "$OUT_DIR" "${KEDA_BUILD_FORCE:-0}" have_all

# A Go newer than the local one is fetched from the module proxy when the
# module asks for it (the only one served here is go1.27.3).
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export CGO_ENABLED=0
export GOFLAGS="-buildvcs=false -mod=mod"

# KEDA's go.mod has a replace directive, which `go install module@version`
# refuses: build in a writable copy of the module, as its own main module.
src=$(cd "$OUT_DIR" && GOFLAGS= go mod download -json "$MODULE@$KEDA_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || die "go mod download $MODULE@$KEDA_VERSION gave no directory"
tmp=$(mktemp -d "$OUT_DIR/.build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
ldflags="-s -w -X $MODULE/version.Version=$KEDA_VERSION -X $MODULE/version.GitCommit=module"
log "building keda operator and adapter $KEDA_VERSION with $(go env GOVERSION) (cold: long; it links every scaler's SDK) ..."
start=$(date +%s)
(cd "$tmp/src" && go build -trimpath -ldflags "$ldflags" -o "$tmp/keda-operator" ./cmd/operator >&2)
log "operator built in $(($(date +%s) - start))s"
(cd "$tmp/src" && go build -trimpath -ldflags "$ldflags" -o "$tmp/keda-adapter" ./cmd/adapter >&2)
mkdir -p "$tmp/crds"
cp "$tmp/src"/config/crd/bases/*.yaml "$tmp/crds/"
"$tmp/keda-operator" --help >/dev/null 2>&1 || die "built keda-operator does not run"
rm -rf "$OUT_DIR/crds"
mv -f "$tmp/crds" "$OUT_DIR/crds"
for b in keda-operator keda-adapter; do mv -f "$tmp/$b" "$OUT_DIR/$b"; done
log "built in $(($(date +%s) - start))s: $OUT_DIR"
echo "$OUT_DIR"
