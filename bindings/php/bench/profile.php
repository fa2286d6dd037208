<?php
// One process, one operation in a loop, for a profiler:
//   perf record -g php -d extension=build/release/bindings/php/shmkit.so \
//       bindings/php/bench/profile.php incr 3000000
// Same shape as bench.php: 100,000 rows of int + float + string(64) in a
// table of capacity 200,000, 16-byte keys drawn at random.
[$op, $n] = [$argv[1] ?? 'incr', (int)($argv[2] ?? 3000000)];
$t = new Shmkit\Table(200000);
$t->column('hits', Shmkit\Table::TYPE_INT);
$t->column('score', Shmkit\Table::TYPE_FLOAT);
$t->column('user', Shmkit\Table::TYPE_STRING, 64);
$t->create();
$user = str_repeat('u', 64);
for ($i = 0; $i < 100000; $i++) {
    $t->set(sprintf('k%015d', $i), ['hits' => $i, 'score' => $i / 2, 'user' => $user]);
}
mt_srand(1);
$keys = [];
for ($i = 0; $i < 65536; $i++) $keys[] = sprintf('k%015d', mt_rand(0, 99999));
$row = ['hits' => 1, 'score' => 0.5, 'user' => $user];
switch ($op) {
    case 'get': for ($i = 0; $i < $n; $i++) $t->get($keys[$i & 65535]); break;
    case 'set': for ($i = 0; $i < $n; $i++) $t->set($keys[$i & 65535], $row); break;
    case 'incr': for ($i = 0; $i < $n; $i++) $t->incr($keys[$i & 65535], 'hits'); break;
    default: fwrite(STDERR, "profile.php get|set|incr [count]\n"); exit(2);
}
