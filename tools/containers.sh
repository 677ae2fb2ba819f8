#!/usr/bin/env bash
# The container-engine lane: the fork's images built and a `nvflare deploy prepare`
# docker deployment run for real, on rootful podman serving the Docker Engine API.
#
#   bash tools/containers.sh [pytest args...]
#
# 1. installs podman, runc and debootstrap with apt when they are missing (root only);
# 2. sets the engine up in its own state folder (NVFLARE_FORK_ENGINE_STATE, default
#    /var/tmp/nvflare-fork-engine): containers.conf (runc, bounded ulimits) and storage
#    (overlay) of its own, so nothing of another podman user is touched;
# 3. makes the base image with debootstrap when no registry is reachable (kept in the
#    state folder's storage: the next run reuses it), a python:3.11-slim look-alike
#    (/usr/local/bin/python with pip) that trusts this host's CA bundle;
# 4. serves the Docker Engine API (`podman system service`) on a unix socket that the
#    test's non-root deployment user may use;
# 5. runs tests/containers (builds of docker/Dockerfile and docker/job-image.Dockerfile,
#    the deployment, its faults) with tools/test.sh.
# Where no engine can run (no root, no apt, no podman, a kernel that refuses its
# containers) it prints ONE line saying why and exits 0. See docs/containers.md.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
STATE="${NVFLARE_FORK_ENGINE_STATE:-/var/tmp/nvflare-fork-engine}"
BASE_IMAGE="localhost/nvflare-fork-base:bookworm"
SOCKET_GID=2375 # the "docker" group of the socket: the deployment user gets it, job containers do not

skip() {
  echo "containers lane skipped: $*"
  exit 0
}
step() { printf '\n== containers lane: %s\n' "$*"; }

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v docker >/dev/null 2>&1 || missing+=(docker.io) # start_docker.sh of the kits calls the Docker CLI
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "no container engine here (${missing[*]} missing; installing them needs root and apt-get)"
  fi
  step "installing ${missing[*]} with apt"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
    >"${TMPDIR:-/tmp}/nvflare-containers-apt.log" 2>&1; then
    skip "apt-get could not install ${missing[*]} (see ${TMPDIR:-/tmp}/nvflare-containers-apt.log)"
  fi
fi
[ "$(id -u)" = 0 ] || skip "rootful podman needs root (this lane runs as $(id -un))"

step "engine state in $STATE"
mkdir -p "$STATE"
# crun fails on cgroup v1 hybrid hosts without CAP_SYS_RESOURCE; runc works. Bounded
# ulimits: the engine's defaults (the host's hard limits) can exceed what runc may set.
cat >"$STATE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
events_logger = "file"
EOF
cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
podman info >"$STATE/podman-info.txt" 2>&1 || skip "podman cannot start here: $(tail -1 "$STATE/podman-info.txt")"

if ! podman image exists "$BASE_IMAGE"; then
  step "base image $BASE_IMAGE (debootstrap bookworm, no registry)"
  rootfs="$STATE/rootfs"
  rm -rf "$rootfs"
  t0=$SECONDS
  if ! debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,patch,ca-certificates \
    bookworm "$rootfs" >"$STATE/debootstrap.log" 2>&1; then
    skip "debootstrap could not make a base image (see $STATE/debootstrap.log)"
  fi
  # python:3.11-slim's layout: a Python with pip at /usr/local/bin (a venv there), so the
  # launchers' /usr/local/bin/python and `pip install` work as in the official image
  chroot "$rootfs" /usr/bin/python3 -m venv /usr/local
  rm -f "$rootfs"/usr/local/bin/activate* "$rootfs"/usr/local/bin/Activate.ps1
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # HTTPS from builds goes through this machine's proxy: trust what the host trusts
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  changes=(--change "ENV LANG=C.UTF-8" --change "CMD [\"/usr/local/bin/python3\"]")
  for var in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE; do
    changes+=(--change "ENV $var=/etc/ssl/certs/ca-certificates.crt")
  done
  if [ -n "${PIP_INDEX_URL:-}" ]; then changes+=(--change "ENV PIP_INDEX_URL=$PIP_INDEX_URL"); fi
  tar -C "$rootfs" -c . | podman import "${changes[@]}" - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  echo "base image made in $((SECONDS - t0)) s"
fi
if ! podman run --rm --network none "$BASE_IMAGE" /usr/local/bin/python -c "" >"$STATE/probe.log" 2>&1; then
  skip "the engine cannot run a container here: $(tail -1 "$STATE/probe.log")"
fi

step "Docker Engine API (podman system service)"
socket="$STATE/docker.sock"
rm -f "$socket"
podman system service --time=0 "unix://$socket" >"$STATE/service.log" 2>&1 &
service_pid=$!
cleanup() {
  # build containers of Docker-API builds are only listed with --external
  podman ps -a --external --format '{{.ID}}' 2>/dev/null | xargs -r podman rm -f >/dev/null 2>&1 || true
  kill "$service_pid" 2>/dev/null || true
  wait "$service_pid" 2>/dev/null || true
  podman image prune -f >/dev/null 2>&1 || true
  echo "containers lane: $((SECONDS - start)) s"
}
trap cleanup EXIT
for _ in $(seq 100); do
  [ -S "$socket" ] && break
  sleep 0.1
done
[ -S "$socket" ] || {
  echo "podman system service did not create $socket:" >&2
  cat "$STATE/service.log" >&2
  exit 1
}
chgrp "$SOCKET_GID" "$socket"
chmod 660 "$socket"

step "tests/containers"
export NVFLARE_FORK_ENGINE_STATE="$STATE" NVFLARE_FORK_ENGINE_SOCKET="$socket" \
  NVFLARE_FORK_ENGINE_SOCKET_GID="$SOCKET_GID" NVFLARE_FORK_ENGINE_BASE="$BASE_IMAGE"
tests=(tests/containers)
for arg in "$@"; do
  case "$arg" in tests/*) tests=() ;; esac # the caller names the tests
done
bash tools/test.sh "${tests[@]}" "$@"
