<?php
// A forked PHP worker pool sharing one Shmkit\Table and one Shmkit\Atomic.
//   php -d extension=build/release/bindings/php/shmkit.so bindings/php/examples/pool.php

// 1. The master creates the shared objects before forking.
$hits = new Shmkit\Table(1024);                 // exactly 1024 rows
$hits->column('count', Shmkit\Table::TYPE_INT);
$hits->column('last_worker', Shmkit\Table::TYPE_INT, 4);
$hits->column('path', Shmkit\Table::TYPE_STRING, 64);
$hits->create();
$requests = new Shmkit\Atomic(0);

// 2. Fork 4 workers; each inherits both objects and uses them directly.
$paths = ['/', '/login', '/cart', '/checkout'];
$workers = [];
for ($w = 0; $w < 4; $w++) {
    $pid = pcntl_fork();
    if ($pid === 0) {
        for ($i = 0; $i < 10000; $i++) {
            $path = $paths[$i % 4];
            $hits->incr($path, 'count');             // atomic across processes
            $hits->set($path, ['path' => $path, 'last_worker' => $w]);
            $requests->add(1);
        }
        exit(0);
    }
    $workers[] = $pid;
}

// 3. The master waits for its workers and reads the totals.
foreach ($workers as $pid) pcntl_waitpid($pid, $status);
$rows = iterator_to_array($hits);                // [key => row], a copy
ksort($rows);
foreach ($rows as $key => $row) {
    printf("%-10s %6d (last: worker %d)\n", $key, $row['count'], $row['last_worker']);
}
printf("requests: %d, rows: %d\n", $requests->get(), count($hits));
// Bad input throws instead of truncating:
try {
    $hits->set('/', ['path' => str_repeat('x', 65)]);
} catch (Shmkit\InvalidArgumentException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
// Anonymous objects disappear when the last process holding them exits.
