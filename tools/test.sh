#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test twice: a normal
# build and an AddressSanitizer + UndefinedBehaviorSanitizer build. Warnings
# in shmkit's own code fail the build (-Werror). Finally checks that the
# tests left no System V object behind.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

shmkit_install_deps

# Snapshot of the System V objects that exist before the tests (ids).
ipc_ids() { ipcs -a 2>/dev/null | awk '$1 ~ /^0x/ {print $2}' | sort; }
before="$(ipc_ids)"

jobs="$(nproc)"
shmkit_build "$SHMKIT_ROOT/build/release" RelWithDebInfo ""
shmkit_log "tests (normal build, stress included)"
ctest --test-dir "$SHMKIT_ROOT/build/release" -j"$jobs" --output-on-failure \
  --timeout 600

shmkit_log "PHP extension tests (.phpt via run-tests.php, PHP-FPM; normal build)"
"$SHMKIT_ROOT/bindings/php/tests/run.sh" "$SHMKIT_ROOT/build/release"

# The PHP extension is tested once, against the normal build: an ASan-built
# shmkit.so would need the ASan runtime preloaded into Debian's
# uninstrumented php, whose own allocations ASan would then report.
shmkit_build "$SHMKIT_ROOT/build/asan" Debug "address,undefined" \
  -DSHMKIT_BUILD_BENCH=OFF -DSHMKIT_BUILD_PHP=OFF
shmkit_log "tests (AddressSanitizer + UndefinedBehaviorSanitizer, stress excluded)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$SHMKIT_ROOT/build/asan" -j"$jobs" --output-on-failure \
  --timeout 600 -LE stress

after="$(ipc_ids)"
leaked="$(comm -13 <(echo "$before") <(echo "$after"))"
if [ -n "$leaked" ]; then
  shmkit_log "the tests left System V objects behind (ids: $(echo $leaked))"
  ipcs -a
  exit 1
fi
shmkit_log "all tests passed; no System V objects left behind"
