#!/usr/bin/env bash
# Build Argo CD's Lua health evaluator (tests/argocd/evaluator, a small program
# over github.com/argoproj/argo-cd/v3/util/lua) from the Go module proxy and
# cache it under ${CACHE}/argocd-lua-<version>/.
#
# Usage: tests/argocd/build-evaluator.sh
#
# Environment:
#   ARGOCD_VERSION        argo-cd module version (default: pinned below)
#   ARGOCD_GOTOOLCHAIN    Go toolchain argo-cd's go.mod needs (default below;
#                         the Go module proxy serves it)
#   CLUSTERSCALE_CACHE    cache root (default: ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
#   ARGOCD_BUILD_FORCE=1  rebuild even if the binary exists
#
# Output: stdout gets exactly one line, the path of the binary; progress goes
# to stderr. Idempotent and serialised with flock. The binary is keyed by the
# argo-cd version and a hash of main.go, so editing the program rebuilds it.
set -euo pipefail

DEFAULT_ARGOCD_VERSION=v3.6.1
ARGOCD_VERSION=${ARGOCD_VERSION:-$DEFAULT_ARGOCD_VERSION}
# argo-cd v3.6.x says `go 1.27.0`; the local Go is older, so name the toolchain.
export GOTOOLCHAIN=${ARGOCD_GOTOOLCHAIN:-go1.27.3}
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GO111MODULE=on

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_NAME=build-evaluator
# shellcheck source=../../hack/lib/build-cache.sh
source "$HERE/../../hack/lib/build-cache.sh"
OUT_DIR=$CACHE/argocd-lua-$ARGOCD_VERSION
SRC_HASH=$(sha256sum "$HERE/evaluator/main.go" | cut -c1-12)
BIN=$OUT_DIR/argocd-health-eval-$SRC_HASH

need_go
lock_dir "$OUT_DIR"
exit_if_cached "$BIN" "${ARGOCD_BUILD_FORCE:-0}"

WORK=$OUT_DIR/build
rm -rf "$WORK"
mkdir -p "$WORK"
cp "$HERE/evaluator/main.go" "$WORK/main.go"

log "fetching github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION go.mod (toolchain $GOTOOLCHAIN)"
gomod=$(cd "$WORK" && go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$gomod" ] || die "could not download argo-cd's go.mod"
goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -n1)

# The wrapper module: argo-cd plus the same `replace` directives its go.mod has
# (they pin k8s.io/* and friends; without them the build does not resolve).
# Local-path replaces (=> ./gitops-engine) are dropped: that module is
# published on the proxy under the same version.
{
	echo "module clusterscale.io/argocd-health-eval"
	echo
	echo "go $goline"
	echo
	echo "require github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION"
	echo
	awk '
		/^replace \(/ { inblock = 1; print; next }
		inblock && /^\)/ { inblock = 0; print; next }
		inblock { if ($0 !~ /=> \.\.?\//) print; next }
		/^replace / { if ($0 !~ /=> \.\.?\//) print }
	' "$gomod"
} >"$WORK/go.mod"

start=$(date +%s)
log "resolving modules (go mod tidy)"
(cd "$WORK" && go mod tidy) >&2
log "building (this takes several minutes the first time)"
(cd "$WORK" && go build -trimpath -o "$BIN.tmp" .) >&2
mv "$BIN.tmp" "$BIN"
log "built $BIN in $(( $(date +%s) - start ))s"
rm -rf "$WORK"
echo "$BIN"
