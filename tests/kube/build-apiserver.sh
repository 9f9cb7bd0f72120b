#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from Go modules (no git checkout, no
# Docker) and cache them under ${CACHE}/<k8s-version>/.
#
# Usage: tests/kube/build-apiserver.sh [kube-controller-manager]
#
# With `kube-controller-manager` it also builds the controller manager (the
# HPA controller, for the autoscaling test) from the same module, into the
# same directory; with the apiserver already cached only that one is built.
#
# Environment:
#   KUBE_VERSION        k8s.io/kubernetes version to build (default: pinned
#                       below; "latest" = newest stable release on the Go proxy
#                       whose go.mod is satisfied by the local Go toolchain).
#   CLUSTERSCALE_CACHE  cache root (default: ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
#   KUBE_BUILD_FORCE=1  rebuild even if the binaries already exist.
#
# Output: stdout gets exactly one line, the directory holding `kube-apiserver`
# and `etcd`; progress goes to stderr. The version is also recorded in
# ${CACHE}/current so other scripts can find the binaries without rebuilding.
#
# Idempotent: when both binaries already exist the build is skipped (no network
# access needed). Concurrent callers are serialised with flock.
set -euo pipefail

# Newest stable k8s.io/kubernetes release on the Go proxy when this was written
# (requires go >= 1.26.0). Pinned so test runs are reproducible.
DEFAULT_KUBE_VERSION=v1.37.2

BUILD_NAME=build-apiserver
# shellcheck source=../../hack/lib/build-cache.sh
source "$(dirname "$0")/../../hack/lib/build-cache.sh"
KUBE_VERSION=${KUBE_VERSION:-$DEFAULT_KUBE_VERSION}

need_go "need Go >= the version k8s.io/kubernetes requires"

# Never let `go` silently download a different toolchain: we want to know if
# the local one is too old.
export GOTOOLCHAIN=local
# The wrapper module is not a VCS checkout; don't try to stamp VCS info.
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GO111MODULE=on

# --- version resolution -----------------------------------------------------

local_go=$(go env GOVERSION)          # e.g. go1.26.8
local_go=${local_go#go}

# version_le A B: true if dotted version A <= B.
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# go directive of k8s.io/kubernetes@$1 (only fetches the .mod, not the zip).
kube_go_version() { go list -m -json "k8s.io/kubernetes@$1" | sed -n 's/^[[:space:]]*"GoVersion": "\(.*\)",\{0,1\}$/\1/p'; }

if [ "$KUBE_VERSION" = latest ]; then
	mkdir -p "$CACHE"
	log "resolving newest stable k8s.io/kubernetes buildable with go$local_go ..."
	# `go list -m -versions` is semver-sorted ascending; drop pre-releases.
	candidates=$(cd "$CACHE" && go list -m -versions k8s.io/kubernetes | tr ' ' '\n' |
		grep -E '^v1\.[0-9]+\.[0-9]+$' | sort -rV | head -n 6)
	resolved=
	for v in $candidates; do
		need=$(cd "$CACHE" && kube_go_version "$v")
		if [ -n "$need" ] && version_le "$need" "$local_go"; then resolved=$v; break; fi
		log "  skipping $v (needs go $need)"
	done
	[ -n "$resolved" ] || die "no recent k8s.io/kubernetes release builds with go$local_go"
	KUBE_VERSION=$resolved
fi

[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] ||
	die "KUBE_VERSION must look like v1.MINOR.PATCH (got '$KUBE_VERSION')"
KUBE_MINOR=${BASH_REMATCH[1]}
KUBE_PATCH=${BASH_REMATCH[2]}
# Staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as
# v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
STAGING_VERSION=v0.${KUBE_MINOR}.${KUBE_PATCH}

OUT=$CACHE/$KUBE_VERSION
BUILD=$CACHE/build-$KUBE_VERSION

EXTRAS=()
for extra in "$@"; do
	case $extra in
	kube-controller-manager) EXTRAS+=("$extra") ;;
	*) die "unknown binary '$extra' (only kube-controller-manager)" ;;
	esac
done
have_core() { [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ]; }
have_binaries() {
	have_core || return 1
	for b in "${EXTRAS[@]}"; do [ -x "$OUT/$b" ] || return 1; done
}

record_current() {
	printf '%s\n' "$KUBE_VERSION" >"$CACHE/current.tmp.$$"
	mv -f "$CACHE/current.tmp.$$" "$CACHE/current"
}

if [ "${KUBE_BUILD_FORCE:-0}" != 1 ] && have_binaries; then
	record_current
	log "using cached $OUT"
	echo "$OUT"
	exit 0
fi

mkdir -p "$CACHE" "$OUT"
# Serialise concurrent builds of the same version (e.g. parallel test jobs).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE/.build-$KUBE_VERSION.lock"
	log "waiting for build lock ..."
	flock 9
	if [ "${KUBE_BUILD_FORCE:-0}" != 1 ] && have_binaries; then
		record_current
		log "built by a concurrent run: $OUT"
		echo "$OUT"
		exit 0
	fi
fi

# --- wrapper module -----------------------------------------------------------

need_go=$(cd "$CACHE" && kube_go_version "$KUBE_VERSION") ||
	die "k8s.io/kubernetes@$KUBE_VERSION not found on the Go proxy ($(go env GOPROXY))"
[ -n "$need_go" ] || die "could not read the go directive of k8s.io/kubernetes@$KUBE_VERSION"
version_le "$need_go" "$local_go" ||
	die "k8s.io/kubernetes@$KUBE_VERSION needs go >= $need_go but local go is $local_go; set KUBE_VERSION to an older release (or KUBE_VERSION=latest)"

start_ts=$(date +%s)
# Version stamping: without these, /version reports v0.0.0-master.
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
# CGO off: static binaries, no C toolchain needed (upstream builds them
# this way too).
export CGO_ENABLED=0

# build_extras: the extra binaries asked for, from the wrapper module in
# $BUILD (cwd), published like the others.
build_extras() {
	for b in "${EXTRAS[@]}"; do
		[ "${KUBE_BUILD_FORCE:-0}" != 1 ] && [ -x "$OUT/$b" ] && continue
		log "go build $b (cold: ~6 min on 2 cores after the apiserver) ..."
		local t0
		t0=$(date +%s)
		# -mod=mod: a wrapper made before $b was asked for lacks some go.sum lines.
		go build -mod=mod -trimpath -ldflags "$ldflags" -o "$BUILD/$b" "k8s.io/kubernetes/cmd/$b" >&2
		"$BUILD/$b" --version >&2 || die "built $b does not run"
		cp -f "$BUILD/$b" "$OUT/.$b.tmp"
		mv -f "$OUT/.$b.tmp" "$OUT/$b"
		rm -f "$BUILD/$b"
		log "$b built in $(($(date +%s) - t0))s"
	done
}

if [ "${KUBE_BUILD_FORCE:-0}" != 1 ] && have_core && [ -f "$BUILD/go.mod" ]; then
	# Only extras are missing: reuse the wrapper module.
	cd "$BUILD"
	build_extras
	record_current
	echo "$OUT"
	exit 0
fi

log "building kubernetes $KUBE_VERSION (staging $STAGING_VERSION) with go$local_go in $BUILD"
rm -rf "$BUILD"
mkdir -p "$BUILD"
cd "$BUILD"

go mod init apiserver-build >/dev/null 2>&1
# Use the same language version / GODEBUG defaults as kubernetes itself
# (its go.mod says `go 1.NN.0` + `godebug default=go1.NN`); GODEBUG defaults
# come from the *main* module, which is this wrapper.
go mod edit -go="$need_go"

# kubernetes' go.mod requires the staging modules at v0.0.0 and replaces them
# with ./staging/src/k8s.io/X. Replace directives of dependencies are ignored,
# so re-create them here pointing at the published versions.
kube_mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$kube_mod" ] || die "go mod download k8s.io/kubernetes@$KUBE_VERSION gave no go.mod"
staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$kube_mod")
[ -n "$staging" ] || die "no staging replace directives in $kube_mod (layout changed?)"
edits=()
for m in $staging; do edits+=("-replace=$m=$m@$STAGING_VERSION"); done
go mod edit "${edits[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION"

# Blank-import the two main packages so `go mod tidy` keeps (and resolves)
# everything they need. The build tag keeps this file out of real builds.
cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF

log "go mod tidy (downloads a few hundred modules the first time) ..."
go mod tidy >&2

etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
log "etcd resolves to go.etcd.io/etcd/server/v3@$etcd_version"

log "go build kube-apiserver (cold: ~8 min on 2 cores; seconds with a warm GOCACHE) ..."
go build -trimpath -ldflags "$ldflags" -o "$BUILD/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2

log "go build etcd $etcd_version ..."
go build -trimpath -ldflags "-s -w" -o "$BUILD/etcd" go.etcd.io/etcd/server/v3 >&2

# Sanity check before publishing into the cache.
"$BUILD/kube-apiserver" --version >&2 || die "built kube-apiserver does not run"
"$BUILD/etcd" --version >&2 || die "built etcd does not run"

# Publish atomically: a half-written binary must never look "cached".
for b in kube-apiserver etcd; do
	cp -f "$BUILD/$b" "$OUT/.$b.tmp"
	mv -f "$OUT/.$b.tmp" "$OUT/$b"
done
printf '%s\n' "$etcd_version" >"$OUT/etcd.version"
build_extras
record_current

# Keep the small wrapper module (go.mod/go.sum/tools.go) for debugging; drop
# the duplicate binaries. Module/build caches live in GOMODCACHE/GOCACHE.
rm -f "$BUILD/kube-apiserver" "$BUILD/etcd"

log "done in $(( ($(date +%s) - start_ts) / 60 )) min: $(du -h "$OUT/kube-apiserver" | cut -f1) kube-apiserver, $(du -h "$OUT/etcd" | cut -f1) etcd"
echo "$OUT"
