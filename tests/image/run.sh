#!/usr/bin/env bash
# The image test: build it twice (same digest), read its config (numeric
# non-root user, entrypoint), unpack the rootfs and run the binary inside it
# with chroot: `--version`, and `crd` byte-equal to crds/scaledcluster.yaml,
# which proves it needs nothing else in the image. Needs root (chroot).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "image test FAILED: $*" >&2; exit 1; }

start=$(date +%s)
d1=$(bash hack/build-image.sh "$tmp/a")
d2=$(bash hack/build-image.sh "$tmp/b")
[ "$d1" = "$d2" ] || fail "two builds gave different digests: $d1 vs $d2"
echo "ok   two builds, one digest: $d1"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
skopeo inspect --config "oci:$tmp/a/oci:$version" > "$tmp/config.json"
python3 - "$tmp/config.json" <<'PY' || fail "image config"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
user = c.get("User", "")
uid, _, gid = user.partition(":")
assert uid.isdigit() and uid != "0" and gid.isdigit(), f"user {user!r} is not numeric non-root"
assert c.get("Entrypoint") == ["/clusterscale"], f"entrypoint {c.get('Entrypoint')!r}"
print(f"ok   config: user {user}, entrypoint {c['Entrypoint']}")
PY
skopeo inspect "docker-archive:$tmp/a/clusterscale-image.tar" >/dev/null || fail "docker-archive unreadable"
echo "ok   docker-archive readable"

umoci unpack --image "$tmp/a/oci:$version" "$tmp/bundle" >/dev/null
rootfs="$tmp/bundle/rootfs"
files=$(cd "$rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$files" = "./clusterscale " ] || fail "rootfs holds more than the binary: $files"
chroot "$rootfs" /clusterscale --version | grep -qx "clusterscale $version" || fail "--version in chroot"
chroot "$rootfs" /clusterscale crd > "$tmp/crd.yaml" || fail "crd in chroot"
cmp -s "$tmp/crd.yaml" crds/scaledcluster.yaml || fail "crd in chroot differs from crds/scaledcluster.yaml"
echo "ok   chroot into the rootfs: --version and crd (byte-equal to crds/) run with nothing else present"

layer=$(du -b "$rootfs/clusterscale" | cut -f1)
tar=$(du -b "$tmp/a/clusterscale-image.tar" | cut -f1)
echo "image: binary $((layer / 1024 / 1024)) MiB, docker-archive $((tar / 1024 / 1024)) MiB; two builds in $(( $(date +%s) - start )) s"
echo "4 passed, 0 failed"
