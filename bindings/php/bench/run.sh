#!/usr/bin/env bash
# Runs bench.php against BUILD_DIR's shmkit.so (default build/release) with
# APCu enabled for the CLI and room for its rows. Arguments after the build
# directory go to bench.php (--rows, --ops, --runs, --seed-ops, --seed-keys).
#
#   bindings/php/bench/run.sh [BUILD_DIR] [--runs=5 ...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
build="$root/build/release"
if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; fi
ext="$build/bindings/php/shmkit.so"
[ -f "$ext" ] || { echo "run.sh: $ext is missing: build first (tools/run.sh)" >&2; exit 1; }
exec php -d "extension=$ext" -d apc.enable_cli=1 -d apc.shm_size=256M -d apc.entries_hint=524288 \
  -d memory_limit=1G "$root/bindings/php/bench/bench.php" "$@"
