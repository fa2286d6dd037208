--TEST--
Shmkit\Table: iteration sees each row once, allows deletes, restarts on rewind
--FILE--
<?php
require __DIR__ . '/util.inc';

$t = w_table(1000);
foreach ($t as $k => $row) echo "empty table yields nothing\n";
var_dump($t->valid(), $t->current(), $t->key());
for ($i = 0; $i < 1000; $i++) {
    $t->set(sprintf('key%04d', $i), ['hits' => $i, 'user' => "u$i"]);
}
$seen = [];
$ok = true;
foreach ($t as $k => $row) {
    $seen[$k] = ($seen[$k] ?? 0) + 1;
    $ok = $ok && $row['hits'] === (int)substr($k, 3) && $row['user'] === 'u' . (int)substr($k, 3);
}
var_dump(count($seen), max($seen), $ok);

// Deleting during iteration: every row still visited exactly once.
$seen = [];
foreach ($t as $k => $row) {
    $seen[$k] = ($seen[$k] ?? 0) + 1;
    if ($row['hits'] % 2 === 0) $t->del($k);
}
var_dump(count($seen), max($seen), count($t));

// The Iterator methods by hand; rewind starts over.
$t->rewind();
$n = 0;
while ($t->valid()) {
    $n++;
    $t->next();
}
var_dump($n, $t->valid(), $t->current());
$t->rewind();
var_dump($t->valid(), is_string($t->key()), is_array($t->current()));
var_dump(iterator_count($t));
?>
--EXPECT--
bool(false)
NULL
NULL
int(1000)
int(1)
bool(true)
int(1000)
int(1)
int(500)
int(500)
bool(false)
NULL
bool(true)
bool(true)
bool(true)
int(500)
