#!/usr/bin/env bash
# Runs the PHP extension's tests against BUILD_DIR/bindings/php/shmkit.so:
# the .phpt suite through PHP's own run-tests.php (from php8.2-dev), then the
# PHP-FPM test (fpm_test.sh). A skipped test counts as a failure, and so does
# a System V object left behind.
#
# Where it may (root, or CAP_SYS_ADMIN), it runs in a private System V IPC
# namespace (unshare --ipc): the leak check then sees exactly what these
# tests made, not what other programs on the machine create meanwhile.
#
#   bindings/php/tests/run.sh build/release [test.phpt...]
set -euo pipefail
if [ -z "${SHMKIT_PHP_IPCNS:-}" ] && unshare --ipc true 2>/dev/null; then
  SHMKIT_PHP_IPCNS=1 exec unshare --ipc "$0" "$@"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:?usage: run.sh BUILD_DIR [TEST.phpt...]}" && pwd)"
shift
ext="$build/bindings/php/shmkit.so"
tool="$build/tools/shmkit/shmkit"
php_bin="$(command -v php8.2 || command -v php)"
runtests="$(php-config8.2 --extension-dir 2>/dev/null || php-config --extension-dir)/build/run-tests.php"
for f in "$ext" "$tool" "$runtests"; do
  [ -e "$f" ] || { echo "run.sh: $f is missing (build first; php8.2-dev has run-tests.php)" >&2; exit 1; }
done

ipc_ids() { ipcs -a 2>/dev/null | awk '$1 ~ /^0x/ {print $2}' | sort; }
before="$(ipc_ids)"

work="$(mktemp -d /tmp/shmkit-phpt.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# run-tests.php writes its .out/.diff files beside the tests: run copies.
mkdir "$work/tests"
cp "$here"/*.phpt "$here"/*.inc "$work/tests/"
cp -r "$here/../examples" "$work/examples"
tests=("$work/tests")
if [ "$#" -gt 0 ]; then
  tests=()
  for t in "$@"; do tests+=("$work/tests/$(basename "$t")"); done
fi

status=0
# The tests' php reads the system's php.ini and conf.d (posix, sysvmsg,
# sysvsem, sysvshm and shmop are loaded there by Debian's php8.2-cli) and
# loads shmkit.so from the build tree.
SHMKIT_TOOL="$tool" SHMKIT_EXT="$ext" TEST_PHP_EXECUTABLE="$php_bin" NO_INTERACTION=1 \
  "$php_bin" -n "$runtests" -q -j2 --show-diff -p "$php_bin" \
  -d "extension=$ext" "${tests[@]}" | tee "$work/summary.txt" || status=${PIPESTATUS[0]}

skipped="$(awk -F: '/^Tests skipped/ {print $2+0}' "$work/summary.txt")"
failed="$(awk -F: '/^Tests failed/ {print $2+0}' "$work/summary.txt")"
passed="$(awk -F: '/^Tests passed/ {print $2+0}' "$work/summary.txt")"
if [ "${skipped:-1}" != 0 ]; then
  echo "run.sh: $skipped test(s) skipped: a skip is a failure here" >&2
  status=1
fi

if [ "$#" -eq 0 ]; then
  if "$here/fpm_test.sh" "$build"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi

after="$(ipc_ids)"
leaked="$(comm -13 <(echo "$before") <(echo "$after"))"
if [ -n "$leaked" ]; then
  echo "run.sh: the PHP tests left System V objects behind (ids: $(echo $leaked))" >&2
  ipcs -a >&2
  status=1
fi
echo "php: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
