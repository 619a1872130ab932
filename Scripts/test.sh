#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, router, agent against
# OpenSSH, and end to end through flare-server under the host and the docker runtime).
set -euo pipefail
cd "$(dirname "$0")/.."

bash Scripts/install-deps.sh
# The docker runtime's tests need an engine and the session image: install, start and build what
# is missing (once; reused afterwards).
bash Scripts/docker-setup.sh
# The end-to-end tests run the built executables, so build them all first.
swift build --build-tests
# One test at a time: many tests block on child processes, and on a 2-core machine two of them
# fill Swift's cooperative pool and starve the async tests (WebSocket clients, sub-second cut
# measurements) running beside them. Serial takes about 100 s instead of 55 s, without flakes.
swift test --skip-build --no-parallel
