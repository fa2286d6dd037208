#!/usr/bin/env bash
# The main job: install what is missing, build, and run `shmkit bench` on its
# default suite (every workload against its baselines, one worker process per
# CPU, about a minute on 2 cores), printing the summary table. Arguments go to
# `shmkit bench` (e.g. --json, --svg bench.svg, a list of workloads).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

shmkit_install_deps
shmkit_build "$SHMKIT_ROOT/build/release" Release "" -DSHMKIT_BUILD_TESTS=OFF
shmkit_log "running the default benchmark suite (shmkit bench)"
exec "$SHMKIT_ROOT/build/release/tools/shmkit/shmkit" bench "$@"
