#!/usr/bin/env bash
# The main job: install what is missing, build, and run the shmkit benchmark
# on its embedded default suite (no server, no configuration).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

shmkit_install_deps
shmkit_build "$SHMKIT_ROOT/build/release" Release "" -DSHMKIT_BUILD_TESTS=OFF
shmkit_log "running the default benchmark suite"
exec "$SHMKIT_ROOT/build/release/bench/ipc_bench" --benchmark_min_time=0.2 "$@"
