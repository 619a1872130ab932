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
swift test --skip-build
