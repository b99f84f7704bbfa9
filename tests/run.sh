#!/usr/bin/env bash
# The whole test suite from a clean clone: installs dependencies, builds (Release), runs ctest.
#   tests/run.sh              everything
#   tests/run.sh -L model     only the tests with a label (ctest arguments pass through)
# BUILD_DIR (default build) and JOBS (default nproc) can be set.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
jobs=${JOBS:-$(nproc)}
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 900 "$@"
