#!/usr/bin/env bash
# Installs what is missing, builds (release), and starts flare-server on 127.0.0.1:8787 with its
# data in ./.flare. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash Scripts/install-deps.sh
swift build -c release --product flare-server
swift build -c release --product flare-agent
swift build -c release --product flare
bin="$PWD/.build/release"
port="${FLARE_PORT:-8787}"
data="${FLARE_DATA_DIR:-./.flare}"

cat <<MSG

BurstFlare is starting on http://127.0.0.1:$port (data in $data). In another terminal:

  export PATH="$bin:\$PATH" FLARE_URL=http://127.0.0.1:$port
  echo 'a long password' | flare auth register --email you@example.com --password-stdin
  echo '{"image":"debian:bookworm","persistedPaths":["/home/flare"]}' > manifest.json
  flare template create base
  flare template upload base --version 1 --manifest manifest.json
  flare template promote base 1
  flare session up dev --template base
  flare ssh dev

MSG
exec "$bin/flare-server" --data-dir "$data" --port "$port"
