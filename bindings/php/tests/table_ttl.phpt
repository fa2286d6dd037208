--TEST--
Shmkit\Table: TTL on set, add and incr; expired rows read as absent; sweep
--FILE--
<?php
require __DIR__ . '/util.inc';

$t = w_table(8, ['ttl' => true]);
$start = microtime(true);
var_dump($t->set('forever', ['hits' => 1]));
var_dump($t->set('long', ['hits' => 2], 3600));
var_dump($t->set('short', ['hits' => 3], 2.0));
var_dump($t->add('short2', ['hits' => 4], 2.0));
var_dump($t->incr('short3', 'hits', 5, 2.0));
// An incr of a present row keeps its expiry (the ttl applies to a row the
// call creates).
var_dump($t->incr('long', 'hits', 1, 2.0));
var_dump($t->get('short', 'hits'), $t->exists('short2'), count($t));
throws(fn() => $t->set('bad', ['hits' => 1], 0));
throws(fn() => $t->set('bad', ['hits' => 1], -1));
throws(fn() => $t->set('bad', ['hits' => 1], INF));

// Wait (in seconds) until the short rows are past their expiry.
while (microtime(true) < $start + 2.2) usleep(100000);
var_dump($t->get('short'), $t->exists('short2'), $t->get('short3', 'hits'));
var_dump($t->get('long', 'hits'), $t->get('forever', 'hits'));
foreach ($t as $k => $row) echo "iterated: $k\n";
// Expired rows still hold slots until reused or swept.
var_dump($t->sweep(), count($t), $t->stats()['expired_reclaimed'] >= 3);
// An incr of an expired (here: swept) key starts from zero again.
var_dump($t->incr('short3', 'hits'));
?>
--EXPECTF--
bool(true)
bool(true)
bool(true)
bool(true)
int(5)
int(3)
int(3)
bool(true)
int(5)
Shmkit\InvalidArgumentException: %s
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: %s
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: ttl inf is not a finite number of seconds
  code 3 INVALID_ARGUMENT
bool(false)
bool(false)
bool(false)
int(3)
int(1)
iterated: %s
iterated: %s
%Aint(%d)
int(2)
bool(true)
int(1)
