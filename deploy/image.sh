#!/usr/bin/env bash
# Build the tokend container image without pulling anything: static
# binaries (CGO_ENABLED=0, -trimpath) built on this host, put into a
# FROM scratch image by deploy/Containerfile. Used by `make image`.
#
#   IMAGE      tag to build (default tokend:latest; podman stores it as
#              localhost/tokend:latest)
#   VERSION    version stamped into the binaries and the image label
#              (default: git describe)
#   GO         go command (default go)
#   ENGINE     podman (default) or docker
#   CA_CERTS   CA bundle to copy in (default the host's
#              /etc/ssl/certs/ca-certificates.crt, Debian's ca-certificates)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-tokend:latest}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
go=${GO:-go}
engine=${ENGINE:-podman}
ca_certs=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}

command -v "$engine" >/dev/null || { echo "image.sh: $engine not found (apt-get install podman)" >&2; exit 1; }
[ -s "$ca_certs" ] || { echo "image.sh: no CA bundle at $ca_certs (apt-get install ca-certificates, or set CA_CERTS)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/userfs/data"

CGO_ENABLED=0 "$go" build -trimpath -ldflags "-X main.version=$version" -o "$ctx/bin/" ./cmd/tokend ./cmd/tokend-bench

# The users of distroless, root and nonroot (65532), with no home and no
# login shell.
cat >"$ctx/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
PASSWD
cat >"$ctx/rootfs/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
cp "$ca_certs" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
# Modes are set here, whatever the caller's umask: the build copies them.
find "$ctx/rootfs" -type d -exec chmod 0755 {} +
chmod 0644 "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0755 "$ctx/bin/tokend" "$ctx/bin/tokend-bench"
chmod 0700 "$ctx/userfs/data"

# --layers=false: every build starts from scratch anyway, so keep no
# intermediate images around.
layers=()
[ "$(basename "$engine")" = podman ] && layers=(--layers=false)
"$engine" build "${layers[@]}" --file deploy/Containerfile --build-arg VERSION="$version" --tag "$image" "$ctx"
