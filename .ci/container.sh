#!/usr/bin/env bash
# Build the image and run it, with no registry: a Debian bookworm base made by debootstrap and
# imported into podman, `podman build --isolation=chroot --format docker`, then the container run
# as production runs it (read-only root, tmpfs /tmp and data dir, lowered ulimits, no capabilities,
# published on 127.0.0.1 only, authentication on) and called: readyz, discovery, a service, /metrics,
# its HEALTHCHECK, then stopped with SIGTERM.
#
#   .ci/container.sh                 # from the repository; needs root and .venv (made by .ci/run)
#
# Environment: CDS_CI_CACHE (default /var/cache/cds-ci) keeps the base tarball between runs;
# PYTHON (default .venv/bin/python) runs the smoke client; DEBIAN_MIRROR overrides the apt mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { echo "[container $(($(date +%s) - started))s] $*"; }

# --- tools -------------------------------------------------------------------------------------
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap newuidmap:uidmap; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]} (and podman's helpers) from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" fuse-overlayfs slirp4netns \
    containernetworking-plugins iptables ca-certificates >/dev/null
fi
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c 'import jwt, requests, cryptography' || { echo "need $PYTHON with the test dependencies (.ci/run makes it)" >&2; exit 1; }

# --- base image: debootstrap (cached as a tarball), podman import -------------------------------
packages=python3,python3-venv,ca-certificates
mirror=${DEBIAN_MIRROR:-$(grep -hoE 'https?://[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
  /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -E '/debian/?$' | head -1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
key=$(echo "bookworm minbase $packages" | sha256sum | cut -c1-12)
cache=${CDS_CI_CACHE:-/var/cache/cds-ci}
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache=$(mktemp -d)
tarball=$cache/debian-bookworm-python3-$key.tar
base=localhost/cds-ci-base:bookworm-$key
work=$(mktemp -d)
name=cds-ci-$$
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! podman image exists "$base"; then
  if [ ! -s "$tarball" ]; then
    step "debootstrap bookworm (minbase + $packages) from $mirror"
    rootfs=$work/rootfs
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  step "podman import $tarball as $base"
  podman import --quiet "$tarball" "$base" >/dev/null
fi

# --- build ---------------------------------------------------------------------------------------
# pip inside the build reaches PyPI with the host's CA bundle, given as a build secret (never stored).
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=localhost/milnacipran-cds:ci
build() {
  podman build --isolation=chroot --format docker --layers \
    --secret "id=pip_cert,src=$ca_bundle" \
    --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$version" \
    --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$image" "$@"
}
step "podman build $image (base $base)"
build . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
grep -E '^(STEP|-->)' "$work/build.log" | cut -c1-110

# A code change must not reinstall the dependencies: rebuild with one changed code file.
step "rebuild after a code change (the dependency layer must come from the cache)"
mkdir "$work/context"
cp -a Dockerfile .dockerignore requirements.lock pyproject.toml README.md cds_service "$work/context/"
echo "# changed by .ci/container.sh $(date +%s%N)" >>"$work/context/cds_service/__init__.py"
build --tag localhost/milnacipran-cds:ci-changed "$work/context" >"$work/rebuild.log" 2>&1 \
  || { tail -40 "$work/rebuild.log"; exit 1; }
grep -A1 -E '^STEP [0-9/]+: RUN --mount=type=secret' "$work/rebuild.log" | grep -q -- '--> Using cache' \
  || { echo "FAIL: the dependency layer was rebuilt after a code change"; cat "$work/rebuild.log"; exit 1; }
grep -A1 -E '^STEP [0-9/]+: RUN pip install .*--no-index' "$work/rebuild.log" | grep -q -- '--> Using cache' \
  && { echo "FAIL: the code layer was not rebuilt after a code change"; exit 1; }
podman rmi localhost/milnacipran-cds:ci-changed >/dev/null
echo "dependency layer reused, code layer rebuilt"

podman image inspect "$image" --format \
  'user={{.Config.User}} healthcheck={{.Config.Healthcheck.Test}} labels={{.Config.Labels}}' | cut -c1-400
[ "$(podman image inspect "$image" --format '{{.Config.User}}')" = "10001:10001" ]
# Lowered limits (runc cannot raise them above this machine's hard limits, nor should the service need more).
limits=(--ulimit nofile=1024:1024 --ulimit nproc=512:512 --ulimit core=0:0 --pids-limit 256)
# The CA bundle given to pip is nowhere in the image (Debian's own bundle under /etc/ssl aside).
bundle_bytes=$(stat -Lc %s "$ca_bundle"); bundle_sum=$(sha256sum <"$ca_bundle" | cut -d' ' -f1)
found=$(podman --runtime runc run --rm --user 0 --no-healthcheck "${limits[@]}" --entrypoint sh "$image" -c \
  "ls /run/secrets/pip_cert 2>/dev/null; find / -xdev -type f -size ${bundle_bytes}c -not -path '/etc/ssl/*' \
   -not -path '/usr/share/ca-certificates/*' -exec sha256sum {} + | grep $bundle_sum; echo searched")
[ "$found" = searched ] || { echo "FAIL: the build's CA bundle was stored in the image: $found"; exit 1; }
echo "pip's CA bundle not in the image"

# --- run -----------------------------------------------------------------------------------------
chmod 755 "$work"
"$PYTHON" .ci/container_smoke.py keys "$work"
chmod 644 "$work/trusted-clients.json"
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "podman run on 127.0.0.1:$port (read-only root, tmpfs /tmp and /var/lib/cds)"
podman --runtime runc run -d --name "$name" --health-interval=disable "${limits[@]}" \
  --read-only --read-only-tmpfs=false \
  --tmpfs /tmp:rw,nosuid,nodev,size=64m,mode=1777 \
  --tmpfs /var/lib/cds:rw,nosuid,nodev,size=64m,mode=0700,U \
  --cap-drop ALL --security-opt no-new-privileges \
  -p "127.0.0.1:$port:8080" \
  -v "$work/trusted-clients.json:/etc/cds/trusted-clients.json:ro" \
  -e CDS_TRUSTED_CLIENTS_FILE=/etc/cds/trusted-clients.json \
  -e "CDS_PUBLIC_BASE_URL=http://127.0.0.1:$port" \
  "$image" >/dev/null 2>"$work/run.err" || { cat "$work/run.err"; exit 1; }
"$PYTHON" .ci/container_smoke.py check "http://127.0.0.1:$port" "$work" \
  || { podman logs "$name" 2>&1 | tail -30; exit 1; }
[ "$(podman exec "$name" id -u)" = 10001 ] && echo "runs as uid 10001"
if podman exec "$name" sh -c 'touch /opt/cds/x' 2>/dev/null; then echo "FAIL: root file system writable"; exit 1; fi
echo "root file system read-only"
podman healthcheck run "$name" 2>"$work/health.err" || { cat "$work/health.err"; exit 1; }
echo "HEALTHCHECK passes"

step "podman stop (SIGTERM)"
stop_started=$(date +%s%N)
podman stop -t 20 "$name" >/dev/null 2>"$work/stop.err" || { cat "$work/stop.err"; exit 1; }
status=$(podman inspect "$name" --format '{{.State.ExitCode}}')
echo "stopped in $(( ($(date +%s%N) - stop_started) / 1000000 )) ms, exit code $status"
podman logs "$name" 2>&1 | tail -3 | cut -c1-200
[ "$status" = 0 ]
# Previous builds' images, untagged by this one (the cached layers stay).
podman image prune -f --filter label=org.opencontainers.image.title=milnacipran-cds >/dev/null 2>&1 || true
step "passed"
