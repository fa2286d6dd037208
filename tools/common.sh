# Shared by tools/run.sh and tools/test.sh: install what is missing, then
# configure and build. Sourced, not run.

SHMKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages shmkit needs to build, test and benchmark. Boost is for
# comparison benchmarks only; php, curl and wrk are test tools, and python3
# checks the JSON and SVG the shmkit tool prints (tests/tools). hiredis is the
# Redis backend's client; redis-server is started by its tests on a loopback
# port in a temporary directory (never the system service).
SHMKIT_PACKAGES=(
  g++ cmake ninja-build pkg-config
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libboost-dev
  php8.2-cli curl wrk procps python3
  libhiredis-dev redis-server
)
# The PHP extension (bindings/php): headers and run-tests.php, PHP-FPM and a
# FastCGI client for its FPM test, APCu as its benchmark baseline.
SHMKIT_PACKAGES+=(php8.2-dev php8.2-fpm php8.2-apcu libfcgi-bin util-linux)

shmkit_log() { printf '\n==> %s\n' "$*" >&2; }

# Installs whichever packages are missing (apt-get update first only when
# an install fails for want of package lists).
shmkit_install_deps() {
  local missing=() pkg
  for pkg in "${SHMKIT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  shmkit_log "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    shmkit_log "apt-get install failed; updating package lists and retrying"
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# shmkit_build <dir> <cmake build type> [sanitizers] [extra cmake args...]
shmkit_build() {
  local dir="$1" type="$2" sanitize="${3:-}"
  shift 3 || shift $#
  shmkit_log "configuring $dir ($type${sanitize:+, sanitizers: $sanitize})"
  cmake -S "$SHMKIT_ROOT" -B "$dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="$type" -DSHMKIT_SANITIZE="$sanitize" "$@" >/dev/null
  shmkit_log "building $dir"
  cmake --build "$dir" -- -j"$(nproc)"
}
