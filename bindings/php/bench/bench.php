<?php
// Shmkit\Table against what PHP programmers use today, in one run:
//   apcu   APCu (apcu_fetch / apcu_store / apcu_inc), apc.enable_cli=1
//   seeds  the seed documents' pattern: sem_acquire + shm_get_var
//          (+ shm_put_var) + sem_release on one System V segment
//   array  a plain PHP array in one process (the floor: PHP's own call and
//          loop overhead)
// on workload W's shape: 16-byte keys, rows of int + float + string(64),
// with 1 and 2 forked processes (distinct keys per process), per operation
// get / set / incr. Every figure is the median over --runs runs of the mean
// ns per operation of the processes, wall-clock and CPU time; ratios are
// taken within this run, whose cases are interleaved run by run. APCu gets
// apc.entries_hint sized for the rows (bench/run.sh): with the default 4096
// slots its chains grow to ~50 entries and every lookup walks them.
//
//   bindings/php/bench/run.sh [--rows=100000] [--ops=300000] [--runs=5]
//
// Shapes per backend: shmkit incr adds to the row's int column; APCu keeps
// rows as arrays, so its incr is apcu_inc on a separate integer entry per
// key (how APCu users count); the seeds' pattern keeps the rows as
// shm_put_var variables (serialized), over --seed-keys keys because each
// shm_get_var scans the segment's variable list; `shmkit64` is shmkit over
// those same few keys, the like-for-like comparison with the seeds.

const SEED_KEYS_DEFAULT = 64;

$opt = getopt('', ['rows:', 'ops:', 'runs:', 'seed-ops:', 'seed-keys:', 'json']);
$ROWS = (int)($opt['rows'] ?? 100000);
$OPS = (int)($opt['ops'] ?? 300000);
$RUNS = (int)($opt['runs'] ?? 5);
$SEED_OPS = (int)($opt['seed-ops'] ?? 10000);
$SEED_KEYS = (int)($opt['seed-keys'] ?? SEED_KEYS_DEFAULT);

foreach (['shmkit', 'apcu', 'sysvsem', 'sysvshm', 'pcntl', 'posix'] as $ext) {
    if (!extension_loaded($ext)) {
        fwrite(STDERR, "bench.php: extension $ext is not loaded (use bindings/php/bench/run.sh)\n");
        exit(1);
    }
}
if (!ini_get('apc.enable_cli')) {
    fwrite(STDERR, "bench.php: needs apc.enable_cli=1\n");
    exit(1);
}

function key_of(int $i): string { return sprintf('k%015d', $i); }   // 16 bytes
$USER = str_repeat('u', 64);

// ---- the data, loaded before fork so every process shares it -------------
$capacity = 2 * $ROWS;   // load factor 0.5, as in workload W
$table = new Shmkit\Table($capacity);
$table->column('hits', Shmkit\Table::TYPE_INT);
$table->column('score', Shmkit\Table::TYPE_FLOAT);
$table->column('user', Shmkit\Table::TYPE_STRING, 64);
$table->create();

apcu_clear_cache();
$sma0 = apcu_sma_info(true);
$apcu_used0 = $sma0['seg_size'] * $sma0['num_seg'] - $sma0['avail_mem'];

$array = [];
for ($i = 0; $i < $ROWS; $i++) {
    $k = key_of($i);
    $row = ['hits' => $i, 'score' => $i / 2, 'user' => $USER];
    $table->set($k, $row);
    apcu_store($k, $row);
    $array[$k] = $row;
}
$sma1 = apcu_sma_info(true);
$apcu_row_bytes = ($sma1['seg_size'] * $sma1['num_seg'] - $sma1['avail_mem'] - $apcu_used0) / $ROWS;
for ($i = 0; $i < $ROWS; $i++) apcu_store(key_of($i) . ':hits', $i);
$sma2 = apcu_sma_info(true);
$apcu_counter_bytes = ($sma1['avail_mem'] - $sma2['avail_mem']) / $ROWS;
$shmkit_bytes = $table->getMemorySize();

$seed_key = 0x5ee00000 | (getmypid() & 0xffff);
$seed_sem = sem_get($seed_key, 1, 0600, false);
$seed_shm = shm_attach($seed_key, 1024 * 1024, 0600);
for ($i = 0; $i < $SEED_KEYS; $i++) {
    shm_put_var($seed_shm, $i + 1, ['hits' => $i, 'score' => $i / 2, 'user' => $USER]);
    shm_put_var($seed_shm, 1000000 + $i + 1, $i);
}

// ---- one measurement -------------------------------------------------------

// The operations, each a closure running $n ops over this process's keys.
function make_op(string $backend, string $op, array $keys, int $n): Closure {
    global $table, $array, $seed_sem, $seed_shm, $USER;
    if ($backend === 'shmkit64') $backend = 'shmkit';   // same ops, fewer keys
    $mask = count($keys) - 1;   // count is a power of two
    $row = ['hits' => 1, 'score' => 0.5, 'user' => $USER];
    switch ("$backend/$op") {
        case 'shmkit/get':
            return function () use ($table, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) $table->get($keys[$i & $mask]);
            };
        case 'shmkit/set':
            return function () use ($table, $keys, $mask, $n, $row) {
                for ($i = 0; $i < $n; $i++) $table->set($keys[$i & $mask], $row);
            };
        case 'shmkit/incr':
            return function () use ($table, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) $table->incr($keys[$i & $mask], 'hits');
            };
        case 'apcu/get':
            return function () use ($keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) apcu_fetch($keys[$i & $mask]);
            };
        case 'apcu/set':
            return function () use ($keys, $mask, $n, $row) {
                for ($i = 0; $i < $n; $i++) apcu_store($keys[$i & $mask], $row);
            };
        case 'apcu/incr':
            $ckeys = array_map(fn($k) => "$k:hits", $keys);
            return function () use ($ckeys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) apcu_inc($ckeys[$i & $mask]);
            };
        case 'array/get':
            return function () use (&$array, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) $x = $array[$keys[$i & $mask]];
            };
        case 'array/set':
            return function () use (&$array, $keys, $mask, $n, $row) {
                for ($i = 0; $i < $n; $i++) $array[$keys[$i & $mask]] = $row;
            };
        case 'array/incr':
            return function () use (&$array, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) $array[$keys[$i & $mask]]['hits']++;
            };
        case 'seeds/get':
            return function () use ($seed_sem, $seed_shm, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) {
                    sem_acquire($seed_sem);
                    $x = shm_get_var($seed_shm, $keys[$i & $mask]);
                    sem_release($seed_sem);
                }
            };
        case 'seeds/set':
            return function () use ($seed_sem, $seed_shm, $keys, $mask, $n, $row) {
                for ($i = 0; $i < $n; $i++) {
                    sem_acquire($seed_sem);
                    shm_put_var($seed_shm, $keys[$i & $mask], $row);
                    sem_release($seed_sem);
                }
            };
        case 'seeds/incr':
            return function () use ($seed_sem, $seed_shm, $keys, $mask, $n) {
                for ($i = 0; $i < $n; $i++) {
                    $k = 1000000 + $keys[$i & $mask];
                    sem_acquire($seed_sem);
                    shm_put_var($seed_shm, $k, shm_get_var($seed_shm, $k) + 1);
                    sem_release($seed_sem);
                }
            };
    }
    throw new LogicException("no $backend/$op");
}

// This process's keys: a random sequence (power-of-two long) over the keys
// i with i % procs == p, so processes never touch the same key.
function keys_for(string $backend, int $p, int $procs): array {
    global $ROWS, $SEED_KEYS;
    $small = $backend === 'seeds' || $backend === 'shmkit64';
    $n = $small ? $SEED_KEYS : $ROWS;
    mt_srand(1234 + $p);
    $out = [];
    for ($i = 0; $i < 65536; $i++) {
        $j = mt_rand(0, intdiv($n - 1 - $p, $procs)) * $procs + $p;
        $out[] = $backend === 'seeds' ? $j + 1 : key_of($j);
    }
    return $out;
}

// CPU time (user + system) of this process, in ns.
function cpu_ns(): int {
    $r = getrusage();
    return ($r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec']) * 1000000000 +
           ($r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec']) * 1000;
}

// Forks `procs` processes that run the op at the same time; returns the
// mean over the processes of [wall-clock ns per op, CPU ns per op].
function measure(string $backend, string $op, int $procs, int $n): array {
    $children = [];
    for ($p = 0; $p < $procs; $p++) {
        [$parent_end, $child_end] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        $pid = pcntl_fork();
        if ($pid === 0) {
            fclose($parent_end);
            $warm = make_op($backend, $op, keys_for($backend, $p, $procs), min($n, 20000));
            $warm();
            $run = make_op($backend, $op, keys_for($backend, $p, $procs), $n);
            fwrite($child_end, "r");             // ready
            fread($child_end, 1);                // go
            $c0 = cpu_ns();
            $t0 = hrtime(true);
            $run();
            $ns = hrtime(true) - $t0;
            $cpu = cpu_ns() - $c0;
            fwrite($child_end, pack('qq', $ns, $cpu));
            exit(0);
        }
        fclose($child_end);
        $children[] = [$pid, $parent_end];
    }
    foreach ($children as [$pid, $s]) fread($s, 1);
    foreach ($children as [$pid, $s]) fwrite($s, "g");
    $wall = 0;
    $cpu = 0;
    foreach ($children as [$pid, $s]) {
        $buf = '';
        while (strlen($buf) < 16 && !feof($s)) $buf .= fread($s, 16 - strlen($buf));
        pcntl_waitpid($pid, $status);
        if (strlen($buf) !== 16 || !pcntl_wifexited($status) || pcntl_wexitstatus($status) !== 0) {
            fwrite(STDERR, "bench.php: $backend/$op child failed\n");
            exit(1);
        }
        [, $w, $c] = unpack('q2', $buf);
        $wall += $w / $n;
        $cpu += $c / $n;
    }
    return [$wall / $procs, $cpu / $procs];
}

function median(array $v): float {
    sort($v);
    $c = count($v);
    return $c % 2 ? $v[intdiv($c, 2)] : ($v[$c / 2 - 1] + $v[$c / 2]) / 2;
}

// ---- the run ----------------------------------------------------------------

$cases = [];
foreach (['get', 'set', 'incr'] as $op) {
    foreach ([1, 2] as $procs) {
        foreach (['shmkit', 'apcu', 'seeds', 'shmkit64', 'array'] as $backend) {
            if ($backend === 'array' && $procs > 1) continue;   // not shared
            $cases[] = [$backend, $op, $procs];
        }
    }
}
$samples = [];
$cpu_samples = [];
for ($r = 0; $r < $RUNS; $r++) {
    // Interleaved: each run measures every case once, so drift in the
    // machine's load spreads over all of them alike.
    foreach ($cases as [$backend, $op, $procs]) {
        $n = $backend === 'seeds' ? $SEED_OPS : $OPS;
        [$wall, $cpu] = measure($backend, $op, $procs, $n);
        $samples["$backend/$op/$procs"][] = $wall;
        $cpu_samples["$backend/$op/$procs"][] = $cpu;
    }
    fwrite(STDERR, "run " . ($r + 1) . "/$RUNS done\n");
}
$med = array_map('median', $samples);
$cpu_med = array_map('median', $cpu_samples);
$load = sys_getloadavg();

printf("PHP %s, shmkit %s, APCu %s; rows %d (capacity %d), %d ops per process (seeds: %d over %d keys), median of %d runs; load average at the end %.2f\n",
       PHP_VERSION, phpversion('shmkit'), phpversion('apcu'), $ROWS, $capacity, $OPS, $SEED_OPS, $SEED_KEYS, $RUNS, $load[0]);
echo "shmkit, apcu, array: random keys over all rows; seeds, shmkit64: random keys over $SEED_KEYS rows\n";
foreach (['wall-clock' => $med, 'CPU time (user + system; time asleep, e.g. in semop, not counted)' => $cpu_med] as $what => $m) {
    printf("\nns per operation, %s:\n", $what);
    printf("%-5s %5s %10s %10s %10s %10s %10s %9s %9s %9s\n", 'op', 'procs', 'shmkit', 'apcu', 'array',
           'seeds', 'shmkit64', 'apcu/shm', 'seeds/shm', 'seeds/64');
    foreach (['get', 'set', 'incr'] as $op) {
        foreach ([1, 2] as $procs) {
            $s = $m["shmkit/$op/$procs"];
            $a = $m["apcu/$op/$procs"];
            $q = $m["seeds/$op/$procs"];
            $s64 = $m["shmkit64/$op/$procs"];
            $arr = $m["array/$op/$procs"] ?? null;
            printf("%-5s %5d %10.1f %10.1f %10s %10.1f %10.1f %9.2f %9.1f %9.1f\n", $op, $procs, $s, $a,
                   $arr === null ? '-' : sprintf('%.1f', $arr), $q, $s64, $a / $s, $q / $s, $q / $s64);
        }
    }
}
printf("\nmemory per row: shmkit %.1f B per slot (%d B for %d slots; %.1f B per live row at load 0.5); " .
       "APCu %.1f B per row array + %.1f B per counter entry\n",
       $shmkit_bytes / $capacity, $shmkit_bytes, $capacity, $shmkit_bytes / $ROWS,
       $apcu_row_bytes, $apcu_counter_bytes);

$targets = [
    ['get, 1 process: shmkit no slower than APCu', $med['apcu/get/1'] / $med['shmkit/get/1'], 1.0],
    ['incr, 1 process: shmkit no slower than APCu', $med['apcu/incr/1'] / $med['shmkit/incr/1'], 1.0],
    ['incr, 2 processes: shmkit >= 2x faster than APCu', $med['apcu/incr/2'] / $med['shmkit/incr/2'], 2.0],
    ['incr, 2 processes: shmkit >= 100x the seeds\' pattern (same 64 keys)', $med['seeds/incr/2'] / $med['shmkit64/incr/2'], 100.0],
    ['incr, 2 processes: shmkit (100k keys) >= 100x the seeds\' (64 keys)', $med['seeds/incr/2'] / $med['shmkit/incr/2'], 100.0],
];
echo "\ntargets, on wall-clock medians (ratio = baseline ns / shmkit ns):\n";
foreach ($targets as [$what, $ratio, $want]) {
    printf("  %-68s %8.2fx  (>= %.0fx) %s\n", $what, $ratio, $want, $ratio >= $want ? 'ok' : 'MISSED');
}

sem_remove($seed_sem);
shm_remove($seed_shm);
