# Sourced by the scripts that build a tool from the Go module proxy into the
# cache (hack/build-helm.sh, tests/argocd/build-evaluator.sh,
# tests/kube/build-apiserver.sh, tests/helm/prometheus-crds.sh):
#   BUILD_NAME=build-helm; source .../hack/lib/build-cache.sh
# sets CACHE (CLUSTERSCALE_CACHE, or ${XDG_CACHE_HOME:-~/.cache}/clusterscale)
# and defines log, die, need_go, lock_dir, exit_if_cached and exit_if_built.

CACHE=${CLUSTERSCALE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterscale}

log() { echo "${BUILD_NAME}: $*" >&2; }
die() { echo "${BUILD_NAME}: ERROR: $*" >&2; exit 1; }

# need_go [HINT]: fail unless `go` is on PATH.
need_go() { command -v go >/dev/null 2>&1 || die "'go' not found in PATH${1:+ ($1)}"; }

# lock_dir DIR: create DIR and hold its lock (fd 9) until the script exits,
# so that concurrent builds of the same tool wait for each other.
lock_dir() {
	mkdir -p "$1"
	exec 9>"$1/.lock"
	flock 9
}

# exit_if_cached BIN FORCE: print BIN and exit when it is already built,
# unless FORCE is 1.
exit_if_cached() {
	if [ -x "$1" ] && [ "${2:-0}" != 1 ]; then
		log "cached: $1"
		echo "$1"
		exit 0
	fi
}

# exit_if_built DIR FORCE CHECK...: print DIR and exit when the command
# CHECK... succeeds (everything is built), unless FORCE is 1.
exit_if_built() {
	local dir=$1 force=$2
	shift 2
	if [ "$force" != 1 ] && "$@"; then
		log "cached: $dir"
		echo "$dir"
		exit 0
	fi
}
