--TEST--
Shmkit\Table: every method on an anonymous table
--FILE--
<?php
require __DIR__ . '/util.inc';

$t = new Shmkit\Table(8);
var_dump($t->column('hits', Shmkit\Table::TYPE_INT));
var_dump($t->column('small', Shmkit\Table::TYPE_INT, 1));
var_dump($t->column('score', Shmkit\Table::TYPE_FLOAT));
var_dump($t->column('user', Shmkit\Table::TYPE_STRING, 16));
$planned = $t->getMemorySize();
var_dump($planned > 0);
var_dump($t->create());
var_dump($t->getMemorySize() === $planned);
var_dump($t instanceof Iterator, $t instanceof Countable);

echo "-- set / get / exists\n";
var_dump($t->set('ana', ['hits' => 1, 'score' => 2.5, 'user' => 'Ana']));
var_dump($t->get('ana'));
var_dump($t->get('ana', 'user'), $t->get('ana', 'score'), $t->get('ana', 'small'));
var_dump($t->get('bob'), $t->get('bob', 'hits'));
var_dump($t->exists('ana'), $t->exist('ana'), $t->exists('bob'));
// An update keeps the columns it does not name; an int is fine for a float.
var_dump($t->set('ana', ['score' => 3]), $t->get('ana'));
// Binary-safe keys and values.
var_dump($t->set("a\0b", ['user' => "x\0y"]), $t->get("a\0b", 'user') === "x\0y");

echo "-- incr / decr\n";
var_dump($t->incr('ana', 'hits'), $t->incr('ana', 'hits', 10), $t->decr('ana', 'hits', 2));
var_dump($t->decr('ana', 'hits'));
var_dump($t->incr('ana', 'score', 0.25), $t->decr('ana', 'score', 1), $t->incr('ana', 'score', 2));
// Swoole's rule: incr of an absent key creates the row.
var_dump($t->incr('carl', 'hits', 5), $t->get('carl'));
var_dump($t->decr('dan', 'score', 1.5), $t->get('dan', 'score'));

echo "-- add / update / cas / getAndDelete / del\n";
var_dump($t->add('ana', ['hits' => 100]), $t->get('ana', 'hits'));
var_dump($t->add('eve', ['hits' => 7]), $t->get('eve', 'hits'));
var_dump($t->update('zed', ['hits' => 1]), $t->exists('zed'));
var_dump($t->update('eve', ['hits' => 8]), $t->get('eve', 'hits'));
var_dump($t->cas('eve', 'hits', 7, 9), $t->get('eve', 'hits'));
var_dump($t->cas('eve', 'hits', 8, 9), $t->get('eve', 'hits'));
var_dump($t->cas('eve', 'user', '', 'Eve'), $t->get('eve', 'user'));
var_dump($t->cas('nobody', 'hits', 0, 1));
var_dump($t->getAndDelete('eve'), $t->exists('eve'), $t->getAndDelete('eve'));
var_dump($t->del('carl'), $t->del('carl'), $t->exists('carl'));

echo "-- count / stats / clear / sweep\n";
var_dump(count($t), $t->count());
$s = $t->stats();
var_dump($s['capacity'], $s['num'], $s['memory_bytes'] === $planned, $s['recoveries']);
var_dump($t->sweep());
var_dump($t->clear(), count($t), $t->get('ana'));

echo "-- destroy\n";
$id = $t->stats()['shmid'];
var_dump(shm_id_exists($id));
var_dump($t->destroy());
throws(fn() => $t->get('ana'));
var_dump(shm_id_exists($id));

echo "-- keyOf\n";
var_dump(Shmkit\Table::keyOf('0x5eed') === 0x5eed);
var_dump(Shmkit\Table::keyOf('sessions') === Shmkit\Table::keyOf('sessions'));
var_dump(Shmkit\Table::keyOf('sessions') !== Shmkit\Table::keyOf('sessions2'));
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
-- set / get / exists
bool(true)
array(4) {
  ["hits"]=>
  int(1)
  ["small"]=>
  int(0)
  ["score"]=>
  float(2.5)
  ["user"]=>
  string(3) "Ana"
}
string(3) "Ana"
float(2.5)
int(0)
bool(false)
bool(false)
bool(true)
bool(true)
bool(false)
bool(true)
array(4) {
  ["hits"]=>
  int(1)
  ["small"]=>
  int(0)
  ["score"]=>
  float(3)
  ["user"]=>
  string(3) "Ana"
}
bool(true)
bool(true)
-- incr / decr
int(2)
int(12)
int(10)
int(9)
float(3.25)
float(2.25)
float(4.25)
int(5)
array(4) {
  ["hits"]=>
  int(5)
  ["small"]=>
  int(0)
  ["score"]=>
  float(0)
  ["user"]=>
  string(0) ""
}
float(-1.5)
float(-1.5)
-- add / update / cas / getAndDelete / del
bool(false)
int(9)
bool(true)
int(7)
bool(false)
bool(false)
bool(true)
int(8)
bool(false)
int(8)
bool(true)
int(9)
bool(true)
string(3) "Eve"
bool(false)
array(4) {
  ["hits"]=>
  int(9)
  ["small"]=>
  int(0)
  ["score"]=>
  float(0)
  ["user"]=>
  string(3) "Eve"
}
bool(false)
bool(false)
bool(true)
bool(false)
bool(false)
-- count / stats / clear / sweep
int(3)
int(3)
int(8)
int(3)
bool(true)
int(0)
int(0)
bool(true)
int(0)
bool(false)
-- destroy
bool(true)
bool(true)
Shmkit\FailedPreconditionException: the table is not open: call create() or open() first (or it was destroyed)
  code 9 FAILED_PRECONDITION
bool(false)
-- keyOf
bool(true)
bool(true)
bool(true)
