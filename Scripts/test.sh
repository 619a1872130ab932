#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, router, agent against
# OpenSSH, and end to end through flare-server under the host and the docker runtime).
set -euo pipefail
cd "$(dirname "$0")/.."

bash Scripts/install-deps.sh
# The docker runtime's tests need an engine and the session image: install, start and build what
# is missing (once; reused afterwards).
bash Scripts/docker-setup.sh
# Whatever a failing test leaves behind (a server whose fixture never went away, its agents and
# containers) ends with the run: the tests' data directories are /tmp/flt-*.
cleanup() {
    pkill -9 -f -- '--data-dir /tmp/flt-' 2>/dev/null || true
    # A host session's agent is its bwrap's child, and its command line names no test directory.
    for p in $(pgrep -f -- '/tmp/flt-[^ ]*/data/sessions/' 2>/dev/null); do
        kill -9 $(cat "/proc/$p/task/$p/children" 2>/dev/null) "$p" 2>/dev/null || true
    done
    pkill -9 -f -- '--state-dir /tmp/flt-' 2>/dev/null || true
    if command -v docker >/dev/null 2>&1; then
        leftover=$(docker ps -aq --filter label=burstflare.session 2>/dev/null | while read -r id; do
            docker inspect -f '{{index .Config.Labels "burstflare.data"}} {{.Id}}' "$id"; done | awk '$1 ~ /^\/tmp\/flt-/ {print $2}')
        [ -z "$leftover" ] || docker rm -f $leftover >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
# The end-to-end tests run the built executables, so build them all first.
swift build --build-tests
# In parallel: no test blocks Swift's cooperative pool (child processes are waited for on dispatch
# threads, polls sleep), so in-process servers and clients keep running beside the end-to-end tests.
# At most FLARE_TEST_WIDTH tests at once (4 unless set): each starts servers, agents or containers,
# and a 2-core machine running all of them at once would only turn waits into timeouts.
started=$(date +%s)
swift test --skip-build --experimental-maximum-parallelization-width "${FLARE_TEST_WIDTH:-4}"
echo "test suite wall time: $(( $(date +%s) - started )) s (width ${FLARE_TEST_WIDTH:-4})"
