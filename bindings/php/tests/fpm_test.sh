#!/usr/bin/env bash
# A real PHP-FPM pool: php-fpm8.2 with 4 static workers on a unix socket in a
# temporary directory, driven by cgi-fcgi (libfcgi-bin). Checks that a named
# Shmkit\Table's counters are exact across the workers (4 requests meet at a
# barrier, so 4 different workers must share the table), and that a
# restarted FPM re-attaches to the same table. FPM is stopped and the named
# objects removed even when the test fails. Nothing outside the temporary
# directory is touched (no /etc).
#
#   bindings/php/tests/fpm_test.sh BUILD_DIR
set -euo pipefail
build="$(cd "${1:?usage: fpm_test.sh BUILD_DIR}" && pwd)"
ext="$build/bindings/php/shmkit.so"
fpm="$(command -v php-fpm8.2 || echo /usr/sbin/php-fpm8.2)"
cgi="$(command -v cgi-fcgi || true)"
php_bin="$(command -v php8.2 || command -v php)"
for f in "$ext" "$fpm" "$cgi"; do
  [ -n "$f" ] && [ -x "$f" -o -f "$f" ] || { echo "fpm_test: missing $f (php8.2-fpm, libfcgi-bin)" >&2; exit 1; }
done

tmp="$(mktemp -d /tmp/shmkit-fpm.XXXXXX)"
name="fpm-test-$$-$RANDOM"
fpm_pid=""

fail() { echo "fpm_test: FAIL: $*" >&2; [ -f "$tmp/fpm.log" ] && tail -20 "$tmp/fpm.log" >&2; exit 1; }

stop_fpm() {
  if [ -n "$fpm_pid" ] && kill -0 "$fpm_pid" 2>/dev/null; then
    kill -QUIT "$fpm_pid" 2>/dev/null || true
    # Graceful stop; SIGKILL to the master's process group after 30 s.
    for _ in $(seq 300); do kill -0 "$fpm_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$fpm_pid" 2>/dev/null; then
      kill -KILL "$fpm_pid" 2>/dev/null || true
      pkill -KILL -P "$fpm_pid" 2>/dev/null || true
    fi
    wait "$fpm_pid" 2>/dev/null || true
  fi
  fpm_pid=""
}

cleanup() {
  stop_fpm
  "$php_bin" -n -d "extension=$ext" -r '
    Shmkit\Table::remove($argv[1]);
    (new Shmkit\Atomic(0, $argv[1] . "-barrier"))->destroy();' "$name" || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/www"
cat > "$tmp/www/counter.php" <<'PHP'
<?php
// One request of the FPM test: opens the named table (the first worker
// creates it, the others attach and check the schema) and does `op`.
$name = $_GET['name'];
$t = new Shmkit\Table(1024);
$t->column('hits', Shmkit\Table::TYPE_INT);
$t->open($name);
switch ($_GET['op']) {
    case 'hit':
        $n = $t->incr('total', 'hits');
        $t->incr('pid:' . getmypid(), 'hits');
        echo "ok $n ", getmypid();
        break;
    case 'barrier':
        // Meet the other requests: returns only once `n` requests, each in
        // its own worker, have arrived (a futex wait, no polling).
        $a = new Shmkit\Atomic(0, $name . '-barrier');
        $a->add(1);
        $met = $a->waitUntil((int)$_GET['n'], 30.0);
        $t->incr('total', 'hits');
        $t->incr('pid:' . getmypid(), 'hits');
        echo $met === false ? 'timeout' : 'ok', ' ', getmypid();
        break;
    case 'stats':
        $sum = 0;
        $pids = 0;
        foreach ($t as $k => $row) {
            if (str_starts_with($k, 'pid:')) { $sum += $row['hits']; $pids++; }
        }
        echo 'total=', $t->get('total', 'hits'), " sum=$sum workers=$pids";
        break;
    case 'wrong-schema':
        $w = new Shmkit\Table(1024);
        $w->column('hits', Shmkit\Table::TYPE_FLOAT);
        try { $w->open($name); echo 'opened'; }
        catch (Shmkit\Exception $e) { echo get_class($e); }
        break;
    case 'destroy':
        $t->destroy();
        (new Shmkit\Atomic(0, $name . '-barrier'))->destroy();
        echo 'ok';
        break;
}
PHP

user_lines=""
run_as_root=()
if [ "$(id -u)" -eq 0 ]; then
  user_lines="user = root
group = root"
  run_as_root=(-R)
fi
cat > "$tmp/php-fpm.conf" <<EOF2
[global]
pid = $tmp/fpm.pid
error_log = $tmp/fpm.log
daemonize = no

[shmkit]
$user_lines
listen = $tmp/fpm.sock
listen.mode = 0600
pm = static
pm.max_children = 4
catch_workers_output = yes
EOF2

start_fpm() {
  "$fpm" -F "${run_as_root[@]}" -y "$tmp/php-fpm.conf" -d "extension=$ext" \
    >>"$tmp/fpm.out" 2>&1 &
  fpm_pid=$!
  # Wait (up to 60 s) until the socket answers a request.
  for _ in $(seq 600); do
    kill -0 "$fpm_pid" 2>/dev/null || fail "php-fpm exited: $(cat "$tmp/fpm.out")"
    if [ -S "$tmp/fpm.sock" ] && [ "$(request "op=stats&name=$name" 2>/dev/null | head -c 6)" = "total=" ]; then
      return 0
    fi
    sleep 0.1
  done
  fail "php-fpm did not answer within 60 s"
}

# One FastCGI request; prints the response body.
request() {
  SCRIPT_FILENAME="$tmp/www/counter.php" SCRIPT_NAME=/counter.php \
  REQUEST_METHOD=GET QUERY_STRING="$1" \
    "$cgi" -bind -connect "$tmp/fpm.sock" </dev/null | sed '1,/^\r\{0,1\}$/d'
}

start_fpm
echo "fpm_test: php-fpm (4 static workers) answers on $tmp/fpm.sock"

# 1. Four requests meet at a barrier: four workers share the table.
clients=()
for i in 1 2 3 4; do request "op=barrier&n=4&name=$name" > "$tmp/barrier.$i" & clients+=($!); done
wait "${clients[@]}" || true
pids=""
for i in 1 2 3 4; do
  reply="$(cat "$tmp/barrier.$i")"
  set -- $reply
  [ "${1:-}" = ok ] || fail "barrier request $i: '$reply'"
  pids="$pids ${2:-}"
done
distinct=$(echo $pids | tr ' ' '\n' | sort -u | wc -l)
[ "$distinct" -eq 4 ] || fail "barrier requests ran in $distinct workers, expected 4"
echo "fpm_test: 4 requests met at the barrier in 4 workers:$pids"

# 2. Exact counters: 4 concurrent clients x 125 requests.
clients=()
for c in 1 2 3 4; do
  ( for _ in $(seq 125); do request "op=hit&name=$name"; echo; done > "$tmp/hits.$c" ) &
  clients+=($!)
done
wait "${clients[@]}" || true
oks=$(cat "$tmp"/hits.* | grep -c '^ok ' || true)
[ "$oks" -eq 500 ] || fail "$oks of 500 requests answered ok"
stats="$(request "op=stats&name=$name")"
[ "$stats" = "total=504 sum=504 workers=4" ] || fail "after 504 requests: $stats"
echo "fpm_test: 504 requests over 4 workers: $stats"

# 3. Restart FPM: the new workers attach to the same table.
old_pids="$pids"
stop_fpm
start_fpm
reply="$(request "op=hit&name=$name")"
set -- $reply
[ "${1:-}" = ok ] && [ "${2:-}" = 505 ] || fail "after the restart: $reply"
case " $old_pids " in *" ${3:-} "*) fail "pid ${3:-} served before the restart too" ;; esac
echo "fpm_test: after the restart, worker ${3:-} continued at 505"

# 4. A worker with another schema is refused.
reply="$(request "op=wrong-schema&name=$name")"
[ "$reply" = "Shmkit\\FailedPreconditionException" ] || fail "wrong schema: $reply"

# 5. destroy() removes the table and the barrier.
[ "$(request "op=destroy&name=$name")" = ok ] || fail "destroy"
stop_fpm
for obj in "$name" "$name-barrier"; do
  key=$("$php_bin" -n -d "extension=$ext" -r 'printf("0x%08x", Shmkit\Table::keyOf($argv[1]));' "$obj")
  if ipcs -m | grep -q "^$key "; then fail "segment $key ($obj) is still there"; fi
done
echo "fpm_test: PASS"
