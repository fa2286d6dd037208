#!/usr/bin/env bash
# What sharing costs: requests/s on GET /hit with wrk against prefork-demo
# with shared state, and against the same binary with --shared=false (each
# request worker keeps its own sessions, rate limits and hit counter), in
# the same run. Rounds alternate the order of the two servers so a drift of
# the machine hits both alike; the summary gives the median of each and the
# ratio.
#
# Every /hit increments the client's rate-limit row (a limit of 10^9, never
# reached: all workers update the same row when shared) and the global hit
# counter, plus this worker's row of the workers table (in both modes).
#
# usage: tools/prefork-demo/bench.sh [build dir] [rounds] [seconds per run]
#   env: WORKERS (request workers, 2), THREADS (wrk threads, 2),
#        CONNECTIONS (wrk connections, 16)
set -euo pipefail

build="${1:-build/release}"
rounds="${2:-5}"
duration="${3:-5}"
workers="${WORKERS:-2}"
threads="${THREADS:-2}"
connections="${CONNECTIONS:-16}"
bin="$build/tools/prefork-demo/prefork-demo"
if [ ! -x "$bin" ]; then
  echo "no $bin: build the prefork_demo target first" >&2
  exit 1
fi
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

dir="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

# run_one <shared: true|false>: sets rps to the requests/s wrk measured.
run_one() {
  : >"$dir/out"  # now, so the loop below never reads the previous server's
  "$bin" --shared="$1" --request_workers="$workers" --task_workers=1 \
    --rate_limit=1000000000 >"$dir/out" 2>"$dir/log" &
  server=$!
  # The server prints "... listening on http://127.0.0.1:<port>/ ..." once
  # its workers run.
  local port=""
  for _ in $(seq 1 500); do
    port="$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$dir/out")"
    [ -n "$port" ] && break
    sleep 0.01
  done
  if [ -z "$port" ]; then
    echo "prefork-demo did not start:" >&2
    cat "$dir/log" >&2
    exit 1
  fi
  local url="http://127.0.0.1:$port/hit"
  wrk -t"$threads" -c"$connections" -d1s "$url" >/dev/null  # warm-up
  wrk -t"$threads" -c"$connections" -d"${duration}s" "$url" >"$dir/wrk"
  kill -TERM "$server"
  wait "$server"
  server=""
  if grep -q "Non-2xx" "$dir/wrk"; then
    echo "non-2xx answers with --shared=$1:" >&2
    cat "$dir/wrk" >&2
    exit 1
  fi
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$dir/wrk")"
}

echo "prefork-demo /hit: $workers request workers; wrk -t$threads -c$connections -d${duration}s; $rounds rounds"
shared=()
unshared=()
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then
    run_one true; s="$rps"; run_one false; u="$rps"
  else
    run_one false; u="$rps"; run_one true; s="$rps"
  fi
  shared+=("$s")
  unshared+=("$u")
  printf 'round %d: shared %s req/s, per-process %s req/s, ratio %s\n' \
    "$round" "$s" "$u" "$(awk -v a="$s" -v b="$u" 'BEGIN {printf "%.3f", a / b}')"
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ms="$(median "${shared[@]}")"
mu="$(median "${unshared[@]}")"
awk -v s="$ms" -v u="$mu" 'BEGIN {
  printf "median: shared %.0f req/s, per-process %.0f req/s, ratio %.3f (sharing costs %.1f %%)\n",
    s, u, s / u, (1 - s / u) * 100 }'
