--TEST--
Shmkit\Table: named tables: unrelated processes create or attach, the schema is checked, destroy removes
--FILE--
<?php
require __DIR__ . '/util.inc';

$name = unique_name('named');
$key = Shmkit\Table::keyOf($name);
// Four unrelated PHP processes (not forked from us: nothing inherited) race
// to open the table by name; each adds 1000 to one counter.
$script = <<<'PHP'
$t = new Shmkit\Table(100);
$t->column('hits', Shmkit\Table::TYPE_INT);
$t->column('user', Shmkit\Table::TYPE_STRING, 16);
$t->open($argv[1]);
for ($i = 0; $i < 1000; $i++) $t->incr('counter', 'hits');
$t->set('pid:' . getmypid(), ['user' => 'worker']);
PHP;
$cmd = escapeshellarg(PHP_BINARY) . ' -d extension=' . escapeshellarg(getenv('SHMKIT_EXT')) .
       ' -r ' . escapeshellarg($script) . ' ' . escapeshellarg($name);
$procs = [];
for ($i = 0; $i < 4; $i++) $procs[] = proc_open($cmd, [], $pipes);
$codes = array_map('proc_close', $procs);
var_dump($codes);

$t = new Shmkit\Table(100);
$t->column('hits', Shmkit\Table::TYPE_INT);
$t->column('user', Shmkit\Table::TYPE_STRING, 16);
var_dump($t->open($name));
var_dump($t->get('counter', 'hits'), count($t), $t->stats()['key'] === $key);
var_dump(shm_key_exists($key));

echo "-- another schema under the same name\n";
$other = new Shmkit\Table(100);
$other->column('hits', Shmkit\Table::TYPE_FLOAT);
throws(fn() => $other->open($name));
$other2 = new Shmkit\Table(100);
$other2->column('hits', Shmkit\Table::TYPE_INT);
$other2->column('user', Shmkit\Table::TYPE_STRING, 16);
throws(fn() => $other2->open($name, ['ttl' => true]));
$bigger = new Shmkit\Table(200);
$bigger->column('hits', Shmkit\Table::TYPE_INT);
$bigger->column('user', Shmkit\Table::TYPE_STRING, 16);
throws(fn() => $bigger->open($name));
// Another process (nothing cached) gets the same answers from the attach.
$check = '$t = new Shmkit\Table((int)$argv[2]); $t->column("hits", Shmkit\Table::TYPE_FLOAT);' .
         'try { $t->open($argv[1]); } catch (Shmkit\Exception $e) { echo get_class($e), ": ", $e->getMessage(), "\n"; }';
passthru(escapeshellarg(PHP_BINARY) . ' -d extension=' . escapeshellarg(getenv('SHMKIT_EXT')) .
         ' -r ' . escapeshellarg($check) . ' ' . escapeshellarg($name) . ' 100');
$check = str_replace('Shmkit\Table::TYPE_FLOAT);', 'Shmkit\Table::TYPE_INT); $t->column("user", Shmkit\Table::TYPE_STRING, 16);', $check);
passthru(escapeshellarg(PHP_BINARY) . ' -d extension=' . escapeshellarg(getenv('SHMKIT_EXT')) .
         ' -r ' . escapeshellarg($check) . ' ' . escapeshellarg($name) . ' 200');

echo "-- a segment that is not a shmkit table\n";
$foreign = unique_name('foreign');
$shm = shmop_open(Shmkit\Table::keyOf($foreign), "n", 0600, 4096);
var_dump($shm !== false && shmop_write($shm, str_repeat("not a shmkit table ", 100), 0) > 0);
$f = new Shmkit\Table(10);
$f->column('hits', Shmkit\Table::TYPE_INT);
throws(fn() => $f->open($foreign));
shmop_delete($shm);
var_dump(Shmkit\Table::remove($foreign));

echo "-- bad names\n";
throws(fn() => $f->open(''));
throws(fn() => $f->open('private'));

echo "-- destroy removes the segment; remove() of a missing name is false\n";
var_dump($t->destroy(), shm_key_exists($key), Shmkit\Table::remove($name));
// A new open() after the removal creates a fresh, empty table.
$t2 = new Shmkit\Table(100);
$t2->column('hits', Shmkit\Table::TYPE_INT);
$t2->column('user', Shmkit\Table::TYPE_STRING, 16);
var_dump($t2->open($name), count($t2));
var_dump(Shmkit\Table::remove($name), shm_key_exists($key));
?>
--EXPECTF--
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
int(4000)
int(5)
bool(true)
bool(true)
-- another schema under the same name
Shmkit\FailedPreconditionException: table 0x%x has another schema: column 0 is hits:float64 vs hits:int64; extra column "user"
  code 9 FAILED_PRECONDITION
Shmkit\FailedPreconditionException: table 0x%x has another schema: ttl on vs off
  code 9 FAILED_PRECONDITION
Shmkit\FailedPreconditionException: table 0x%x has capacity 100; this process asked for 200
  code 9 FAILED_PRECONDITION
Shmkit\FailedPreconditionException: table in segment id=%d key=0x%x has schema {hits:int64, user:string(16); key<=64}, expected {hits:float64; key<=64}: %s
Shmkit\FailedPreconditionException: table 0x%x has capacity 100; this process asked for 200
-- a segment that is not a shmkit table
bool(true)
Shmkit\FailedPreconditionException: %s
  code 9 FAILED_PRECONDITION
bool(false)
-- bad names
Shmkit\InvalidArgumentException: the name of a shared object is empty
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: name "private" is the private key; named objects need a key other processes can find
  code 3 INVALID_ARGUMENT
-- destroy removes the segment; remove() of a missing name is false
bool(true)
bool(false)
bool(false)
bool(true)
int(0)
bool(true)
bool(false)
