--TEST--
Shmkit\Atomic: every method, Swoole's wait/wakeup, errors, named atomics
--FILE--
<?php
require __DIR__ . '/util.inc';

$a = new Shmkit\Atomic();
var_dump($a->get(), $a->add(), $a->add(10), $a->sub(), $a->sub(3), $a->get());
var_dump($a->set(100), $a->get());
var_dump($a->cmpset(99, 1), $a->get(), $a->cmpset(100, 1), $a->get());
$b = new Shmkit\Atomic(-5);
var_dump($b->get(), $b->add(-5));

echo "-- range: +-2^62, nothing wraps\n";
$max = 1 << 62;
var_dump($b->set($max), $b->get() === $max);
throws(fn() => $b->add(1));
var_dump($b->get() === $max);
throws(fn() => $b->set($max + 1));
throws(fn() => new Shmkit\Atomic(PHP_INT_MAX));
throws(fn() => $b->sub(PHP_INT_MIN));
throws(fn() => $b->add('x'));

echo "-- wait / wakeup (Swoole's cases)\n";
$w = new Shmkit\Atomic(1);
var_dump($w->wakeup(), $w->get());
$w = new Shmkit\Atomic(0);
var_dump($w->wakeup(), $w->get());
$w = new Shmkit\Atomic(0);
var_dump($w->wait(0.05), $w->get());
$w = new Shmkit\Atomic(1);
var_dump($w->wait(1), $w->get());
throws(fn() => $w->wakeup(0));

echo "-- 4 children wait; one wakeup(4) releases all of them\n";
$w = new Shmkit\Atomic(0);
$ready = new Shmkit\Atomic(0);
$pids = [];
for ($i = 0; $i < 4; $i++) {
    $pids[] = fork_child(function () use ($w, $ready) {
        $ready->add(1);
        return $w->wait(60) ? 0 : 1;
    });
}
var_dump($ready->waitUntil(4, 60));
var_dump($w->wakeup(4));
var_dump(array_map('wait_child', $pids), $w->get());
var_dump($ready->waitUntil(5, 0.01));

echo "-- named atomics\n";
$name = unique_name('atomic');
$n1 = new Shmkit\Atomic(7, $name);
$n2 = new Shmkit\Atomic(0, $name);   // attaches: the initial value is ignored
var_dump($n2->get(), $n1->add(1), $n2->get());
var_dump(shm_key_exists(Shmkit\Table::keyOf($name)));
var_dump($n1->destroy(), shm_key_exists(Shmkit\Table::keyOf($name)));
throws(fn() => $n1->get());
unset($n2);
?>
--EXPECT--
int(0)
int(1)
int(11)
int(10)
int(7)
int(7)
NULL
int(100)
bool(false)
int(100)
bool(true)
int(1)
int(-5)
int(-10)
-- range: +-2^62, nothing wraps
NULL
bool(true)
Shmkit\OutOfRangeException: result 4611686018427387905 is outside the counter range [-4611686018427387904, 4611686018427387904]
  code 11 OUT_OF_RANGE
bool(true)
Shmkit\OutOfRangeException: value 4611686018427387905 is outside the counter range [-4611686018427387904, 4611686018427387904]
  code 11 OUT_OF_RANGE
Shmkit\OutOfRangeException: initial value 9223372036854775807 is outside the counter range [-4611686018427387904, 4611686018427387904]
  code 11 OUT_OF_RANGE
Shmkit\OutOfRangeException: cannot subtract -9223372036854775808: its negation overflows
  code 11 OUT_OF_RANGE
TypeError: Shmkit\Atomic::add(): Argument #1 ($value) must be of type int, string given
-- wait / wakeup (Swoole's cases)
bool(true)
int(1)
bool(true)
int(1)
bool(false)
int(0)
bool(true)
int(0)
ValueError: Shmkit\Atomic::wakeup(): Argument #1 ($count) must be at least 1
-- 4 children wait; one wakeup(4) releases all of them
int(4)
bool(true)
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
int(0)
bool(false)
-- named atomics
int(7)
int(8)
int(8)
bool(true)
bool(true)
bool(false)
Shmkit\FailedPreconditionException: the atomic is not open (it was destroyed)
  code 9 FAILED_PRECONDITION
