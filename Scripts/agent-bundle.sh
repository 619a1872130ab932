#!/usr/bin/env bash
# Makes a self-contained flare-agent bundle that runs in any Linux container image:
#   OUT/bin/flare-agent, OUT/lib/<every shared library it links>, OUT/lib/ld-linux-x86-64.so.2
# Run it as OUT/lib/ld-linux-x86-64.so.2 --library-path OUT/lib OUT/bin/flare-agent …; the
# programs the agent starts (shells, sftp-server) use the image's own libraries.
#
# Usage: Scripts/agent-bundle.sh AGENT_BINARY OUT_DIR
set -euo pipefail
agent=$1
out=$2
rm -rf "$out.tmp"
mkdir -p "$out.tmp/bin" "$out.tmp/lib"
cp "$agent" "$out.tmp/bin/flare-agent"
ldd "$agent" | awk '/=> \// {print $3} /^\s*\/.*ld-linux/ {print $1}' | sort -u | while read -r lib; do
    cp -L "$lib" "$out.tmp/lib/"
done
loader=$(ldd "$agent" | awk '/ld-linux/ {print ($3 ? $3 : $1)}' | head -1)
cp -L "$loader" "$out.tmp/lib/ld-linux-x86-64.so.2"
chmod -R a+rX "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
