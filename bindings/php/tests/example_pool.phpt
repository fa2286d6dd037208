--TEST--
The README's example (bindings/php/examples/pool.php) runs as shown
--FILE--
<?php
require __DIR__ . '/../examples/pool.php';
?>
--EXPECTF--
/           10000 (last: worker %d)
/cart       10000 (last: worker %d)
/checkout   10000 (last: worker %d)
/login      10000 (last: worker %d)
requests: 40000, rows: 4
Shmkit\InvalidArgumentException: value of 65 bytes is too long for column "path" (string(64))
