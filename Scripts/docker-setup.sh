#!/usr/bin/env bash
# Makes Docker usable for BurstFlare on this machine, doing only what is missing:
#   - installs docker.io and debootstrap,
#   - starts dockerd with no bridge and no iptables rules (containers run with --network none),
#   - builds burstflare/bookworm:base (debootstrap + docker import) and burstflare/session-base.
# Idempotent; safe to run before every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! $sudo docker info >/dev/null 2>&1; then
    echo "starting dockerd (no bridge, no iptables)"
    $sudo mkdir -p /var/log
    $sudo sh -c 'nohup dockerd --bridge=none --iptables=false --ip6tables=false >/var/log/flare-dockerd.log 2>&1 &'
    for _ in $(seq 60); do $sudo docker info >/dev/null 2>&1 && break; sleep 0.5; done
    $sudo docker info >/dev/null 2>&1 || { echo "dockerd did not start: $(tail -5 /var/log/flare-dockerd.log)" >&2; exit 1; }
fi

# The tests and flare-server talk to the engine as this user.
if [ "$(id -u)" -ne 0 ] && ! docker info >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
        $sudo chmod 666 /var/run/docker.sock
    else
        echo "note: $(id -un) cannot use the Docker socket; add it to the docker group (then log in again)" >&2
    fi
fi

if ! $sudo docker image inspect burstflare/bookworm:base >/dev/null 2>&1; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /tmp/flare-rootfs-XXXX)
    trap '$sudo rm -rf "$rootfs"' EXIT
    echo "building burstflare/bookworm:base with debootstrap from $mirror"
    $sudo debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/flare-debootstrap.log 2>&1 \
        || { echo "debootstrap failed: $(tail -5 /tmp/flare-debootstrap.log)" >&2; exit 1; }
    $sudo tar -C "$rootfs" -c . | $sudo docker import - burstflare/bookworm:base >/dev/null
fi

if ! $sudo docker image inspect burstflare/session-base:latest >/dev/null 2>&1; then
    echo "building burstflare/session-base from Containers/session-base"
    # Package installs need the mirror: image builds use the host network (containers never do).
    $sudo docker build -q --network host -t burstflare/session-base:latest Containers/session-base >/dev/null
fi
