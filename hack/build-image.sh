#!/usr/bin/env bash
# Build the clusterscale operator image without a Docker engine.
#
#   hack/build-image.sh OUT
#
# writes an OCI layout to OUT/oci (tag clusterscale:<version>) and a
# docker-archive to OUT/clusterscale-image.tar. The image is the same as the
# Dockerfile's: one static binary (glibc, +crt-static; TLS is rustls with
# built-in webpki roots, so no OpenSSL and no CA bundle), FROM scratch, user
# 65532:65532. Every timestamp is SOURCE_DATE_EPOCH (default: the commit
# time), so two builds of one commit give the same manifest digest.
# umoci and skopeo are Debian packages; they are installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: hack/build-image.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v umoci >/dev/null || ! command -v skopeo >/dev/null; then
  echo "build-image: installing umoci and skopeo (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci skopeo >&2
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
sde=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%SZ)
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}/image

echo "build-image: static release build ($target, +crt-static)" >&2
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" --bin clusterscale --target-dir "$target_dir" >&2
bin="$target_dir/$target/release/clusterscale"
if readelf -d "$bin" | grep -q "(NEEDED)"; then
  echo "build-image: $bin links shared libraries; it must be static" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
install -m 0755 "$bin" "$work/root/clusterscale"
touch -h -d "@$sde" "$work/root/clusterscale" "$work/root"

rm -rf "$out/oci" "$out/clusterscale-image.tar"
image="$out/oci:$version"
umoci init --layout "$out/oci"
umoci new --image "$image"
umoci config --image "$image" --created "$created" \
  --history.created "$created" --history.created_by "clusterscale image config" \
  --os linux --architecture amd64 \
  --config.user 65532:65532 --config.entrypoint /clusterscale --clear=config.cmd \
  --config.label "org.opencontainers.image.title=clusterscale" \
  --config.label "org.opencontainers.image.version=$version"
umoci insert --image "$image" --history.created "$created" \
  --history.created_by "COPY clusterscale /clusterscale" \
  "$work/root/clusterscale" /clusterscale
umoci gc --layout "$out/oci"

skopeo copy --quiet "oci:$image" "docker-archive:$out/clusterscale-image.tar:clusterscale:$version" >&2
digest=$(skopeo inspect --format '{{.Digest}}' "oci:$image")
echo "build-image: $image $digest" >&2
echo "$digest"
