--TEST--
Shmkit\Table: 4 forked children incr hot keys; the totals are exact
--FILE--
<?php
require __DIR__ . '/util.inc';

$t = w_table(64);
$keys = [];
for ($k = 0; $k < 8; $k++) $keys[] = "hot:$k";
const N = 20000;  // increments per child, spread over the 8 keys

$pids = [];
for ($c = 0; $c < 4; $c++) {
    $pids[] = fork_child(function () use ($t, $keys) {
        for ($i = 0; $i < N; $i++) {
            $k = $keys[$i % 8];
            $t->incr($k, 'hits');
            $t->incr($k, 'score', 0.5);   // exact in binary
        }
        return 0;
    });
}
$codes = array_map('wait_child', $pids);
var_dump($codes);
$ok = true;
foreach ($keys as $k) {
    $row = $t->get($k);
    if ($row['hits'] !== 4 * N / 8 || $row['score'] !== 4 * N / 8 * 0.5) {
        $ok = false;
        echo "$k: ", json_encode($row), "\n";
    }
}
var_dump($ok, count($t));
?>
--EXPECT--
array(4) {
  [0]=>
  int(0)
  [1]=>
  int(0)
  [2]=>
  int(0)
  [3]=>
  int(0)
}
bool(true)
int(8)
