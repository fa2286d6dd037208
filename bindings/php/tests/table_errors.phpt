--TEST--
Shmkit\Table: bad input throws a named exception and changes nothing
--FILE--
<?php
require __DIR__ . '/util.inc';

echo "-- declaring\n";
throws(fn() => new Shmkit\Table(0));
$t = new Shmkit\Table(2);
throws(fn() => $t->column('x', 7));
throws(fn() => $t->column('x', Shmkit\Table::TYPE_INT, 3));
throws(fn() => $t->column('x', Shmkit\Table::TYPE_FLOAT, 2));
throws(fn() => $t->column('x', Shmkit\Table::TYPE_STRING));
throws(fn() => $t->column('', Shmkit\Table::TYPE_INT));
throws(fn() => $t->column('x', Shmkit\Table::TYPE_INT, -1));
throws(fn() => $t->get('a'));
$t->column('n', Shmkit\Table::TYPE_INT, 1);
$t->column('f', Shmkit\Table::TYPE_FLOAT);
$t->column('s', Shmkit\Table::TYPE_STRING, 4);
$dup = new Shmkit\Table(2);
$dup->column('n', Shmkit\Table::TYPE_INT);
$dup->column('n', Shmkit\Table::TYPE_FLOAT);
throws(fn() => $dup->create());
throws(fn() => $t->create(['nope' => 1]));
throws(fn() => $t->create(['ttl' => 'yes']));
throws(fn() => $t->create(['max_key_bytes' => 0]));
$t->create(['max_key_bytes' => 8]);
throws(fn() => $t->create());
throws(fn() => $t->column('late', Shmkit\Table::TYPE_INT));

echo "-- keys\n";
throws(fn() => $t->set('123456789', ['n' => 1]));
throws(fn() => $t->get(''));
throws(fn() => $t->incr('123456789', 'n'));
var_dump(count($t));

echo "-- columns and values\n";
$t->set('k', ['n' => 1, 'f' => 1.5, 's' => 'abcd']);
throws(fn() => $t->set('k', ['nope' => 1]));
throws(fn() => $t->set('k', [0 => 1]));
throws(fn() => $t->get('k', 'nope'));
throws(fn() => $t->incr('k', 'nope'));
throws(fn() => $t->set('k', ['s' => 'abcde']));
throws(fn() => $t->set('k', ['n' => 128]));
throws(fn() => $t->set('k', ['n' => -129]));
throws(fn() => $t->set('k', ['n' => 1.5]));
throws(fn() => $t->set('k', ['n' => '1']));
throws(fn() => $t->set('k', ['s' => 12]));
throws(fn() => $t->set('k', ['f' => 'x']));
throws(fn() => $t->set('k', ['f' => true]));
throws(fn() => $t->incr('k', 'n', 1.5));
throws(fn() => $t->incr('k', 's'));
throws(fn() => $t->cas('k', 'n', 'a', 2));
// A half-valid row changes nothing: the bad column is checked first.
throws(fn() => $t->set('k', ['n' => 5, 's' => 'too long']));
echo "-- out of range\n";
var_dump($t->incr('k', 'n', 126));
throws(fn() => $t->incr('k', 'n'));
throws(fn() => $t->decr('k', 'n', 256));
throws(fn() => $t->incr('k', 'f', INF));
var_dump($t->get('k'));
echo "-- ttl on a table without ttl\n";
throws(fn() => $t->set('k', ['n' => 1], 10));
echo "-- full\n";
var_dump($t->set('k2', ['n' => 2]));
throws(fn() => $t->set('k3', ['n' => 3]));
throws(fn() => $t->incr('k3', 'n'));
throws(fn() => $t->add('k3', ['n' => 3]));
var_dump(count($t), $t->stats()['failed_inserts']);
// Capacity is exact: freeing a row makes room for exactly one.
var_dump($t->del('k2'), $t->add('k3', ['n' => 3]), count($t));
?>
--EXPECT--
-- declaring
ValueError: Shmkit\Table::__construct(): Argument #1 ($size) must be at least 1 (rows), 0 given
ValueError: Shmkit\Table::column(): Argument #2 ($type) must be Shmkit\Table::TYPE_INT, TYPE_FLOAT or TYPE_STRING, 7 given
Shmkit\InvalidArgumentException: column 0 "x": an int column is 1, 2, 4 or 8 bytes, not 3
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: column 0 "x": a float column is 4 or 8 bytes, not 2
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: column 0 "x": a string column holds 1..1048576 bytes, not 0
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: column 0 has an empty name
  code 3 INVALID_ARGUMENT
ValueError: Shmkit\Table::column(): Argument #3 ($size) must be 0..1048576, -1 given
Shmkit\FailedPreconditionException: the table is not open: call create() or open() first (or it was destroyed)
  code 9 FAILED_PRECONDITION
Shmkit\InvalidArgumentException: column 1 "n": duplicate column name
  code 3 INVALID_ARGUMENT
ValueError: Shmkit\Table::create(): Argument #1 ($options) has an unknown option "nope" (known: ttl, max_key_bytes, lock_timeout, mode)
TypeError: Shmkit\Table::create(): Argument #1 ($options) option "ttl" must be bool, string given
ValueError: Shmkit\Table::create(): Argument #1 ($options) option "max_key_bytes" must be 1..65536, 0 given
Shmkit\FailedPreconditionException: the table is already open
  code 9 FAILED_PRECONDITION
Shmkit\FailedPreconditionException: cannot add a column to a table that is open
  code 9 FAILED_PRECONDITION
-- keys
Shmkit\InvalidArgumentException: key of 9 bytes is longer than the table's MaxKeyBytes 8
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: empty key
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: key of 9 bytes is longer than the table's MaxKeyBytes 8
  code 3 INVALID_ARGUMENT
int(0)
-- columns and values
Shmkit\InvalidArgumentException: unknown column "nope" (columns: n, f, s)
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: row key 0 is not a column name (columns are named)
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: unknown column "nope" (columns: n, f, s)
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: unknown column "nope" (columns: n, f, s)
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: value of 5 bytes is too long for column "s" (string(4))
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: value 128 does not fit column "n" (int8: -128..127)
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: value -129 does not fit column "n" (int8: -128..127)
  code 3 INVALID_ARGUMENT
TypeError: column "n" is int8; got float
TypeError: column "n" is int8; got string
TypeError: column "s" is string(4); got int
TypeError: column "f" is float64; got string
TypeError: column "f" is float64; got bool
TypeError: Shmkit\Table::incr(): Argument #3 ($incrby) must be int for int column "n", float given
Shmkit\InvalidArgumentException: incr needs an int or float column; "s" is string(4)
  code 3 INVALID_ARGUMENT
TypeError: column "n" is int8; got string
Shmkit\InvalidArgumentException: value of 8 bytes is too long for column "s" (string(4))
  code 3 INVALID_ARGUMENT
-- out of range
int(127)
Shmkit\OutOfRangeException: column "n" (int8): 127 + 1 is out of range
  code 11 OUT_OF_RANGE
Shmkit\OutOfRangeException: column "n" (int8): 127 + -256 is out of range
  code 11 OUT_OF_RANGE
Shmkit\InvalidArgumentException: delta inf is not finite
  code 3 INVALID_ARGUMENT
array(3) {
  ["n"]=>
  int(127)
  ["f"]=>
  float(1.5)
  ["s"]=>
  string(4) "abcd"
}
-- ttl on a table without ttl
Shmkit\InvalidArgumentException: a TTL was given but the table's schema has no TTL (Schema::Builder::WithTtl)
  code 3 INVALID_ARGUMENT
-- full
bool(true)
Shmkit\ResourceExhaustedException: table is full: all 2 rows are in use
  code 8 RESOURCE_EXHAUSTED
Shmkit\ResourceExhaustedException: table is full: all 2 rows are in use
  code 8 RESOURCE_EXHAUSTED
Shmkit\ResourceExhaustedException: table is full: all 2 rows are in use
  code 8 RESOURCE_EXHAUSTED
int(2)
int(3)
bool(true)
bool(true)
int(2)
