#!/usr/bin/env bash
# Installs the Debian packages BurstFlare builds and runs with, if any are missing.
set -euo pipefail

packages=(libssh-dev libarchive-dev libsqlite3-dev libssl-dev libzstd-dev zlib1g-dev pkg-config
          openssh-client openssh-server openssh-sftp-server socat rsync curl bsdutils procps
          python3 zstd time bubblewrap util-linux)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "error: the Swift toolchain (6.1 or newer) is not on PATH; install it from swift.org and try again" >&2
    exit 1
fi
