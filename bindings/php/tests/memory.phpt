--TEST--
Shmkit: a million calls do not grow the process's memory
--FILE--
<?php
require __DIR__ . '/util.inc';

function rss_kb(): int {
    preg_match('/^VmRSS:\s+(\d+) kB/m', file_get_contents('/proc/self/status'), $m);
    return (int)$m[1];
}

$t = w_table(1024, ['ttl' => true]);
$a = new Shmkit\Atomic();
$q = new Shmkit\Queue('pipe');
$user = str_repeat('u', 64);
$round = function (int $n) use ($t, $a, $q, $user) {
    for ($i = 0; $i < $n; $i++) {
        $k = 'key:' . ($i & 1023);
        $t->set($k, ['hits' => $i, 'score' => 0.5, 'user' => $user], 60);
        $t->get($k);
        $t->get($k, 'user');
        $t->incr($k, 'hits');
        $t->exists($k);
        $a->add(1);
        if (($i & 15) === 0) {
            // The rarer paths: misses, errors, deletes, queues, iteration.
            $t->get('missing');
            try { $t->get($k, 'nope'); } catch (Shmkit\Exception $e) {}
            try { $t->set($k, ['user' => $user . 'x']); } catch (Shmkit\Exception $e) {}
            $t->getAndDelete($k);
            $q->send($user);
            $q->receive(0, 0);
        }
        if (($i & 16383) === 0) {
            foreach ($t as $row) {}
            $t->stats();
        }
    }
};
// Warm up (the table's row buffers, PHP's allocator), then measure.
$round(50000);
$mem0 = memory_get_usage();
$rss0 = rss_kb();
$round(200000);   // 200,000 rounds of 6 calls + extras: over a million calls
$mem1 = memory_get_usage();
$rss1 = rss_kb();
echo "calls > 1e6: ", var_export(200000 * 6 > 1000000, true), "\n";
echo "PHP heap growth < 64 KiB: ", var_export($mem1 - $mem0 < 65536, true), "\n";
echo "RSS growth < 1 MiB: ", var_export($rss1 - $rss0 < 1024, true), "\n";
if ($mem1 - $mem0 >= 65536 || $rss1 - $rss0 >= 1024) {
    echo "heap $mem0 -> $mem1, rss $rss0 -> $rss1 kB\n";
}
?>
--EXPECT--
calls > 1e6: true
PHP heap growth < 64 KiB: true
RSS growth < 1 MiB: true
