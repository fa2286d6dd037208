--TEST--
Shmkit\Queue: the seeds' producer/consumer over a System V queue, shared with the shmkit tool and PHP's msg_* functions
--FILE--
<?php
require __DIR__ . '/util.inc';

$tool = getenv('SHMKIT_TOOL');
var_dump(is_executable($tool));
$key = sprintf('0x%08x', Shmkit\Table::keyOf(unique_name('queue')));
$spec = "sysv:key=$key";
$q = new Shmkit\Queue($spec);
$caps = $q->capabilities();
var_dump($caps['backend'], $caps['typed_receive'], $caps['attachable'], $caps['max_message_bytes'] > 0);

echo "-- PHP producer, shmkit tool consumer (started first, blocking)\n";
$consumer = proc_open([$tool, 'recv', "$spec,open=attach", '--count=100', '--timeout=60s', '--json'],
                      [1 => ['pipe', 'w']], $pipes);
for ($i = 0; $i < 100; $i++) $q->send("job $i", 1 + $i % 3);
$lines = explode("\n", trim(stream_get_contents($pipes[1])));
fclose($pipes[1]);
var_dump(proc_close($consumer));
$got = array_map(fn($l) => json_decode($l, true), $lines);
var_dump(count($got), $got[0]['data'], $got[0]['type'], $got[99]['data'], $got[99]['type']);
$inOrder = true;
foreach ($got as $i => $m) $inOrder = $inOrder && $m['data'] === "job $i";
var_dump($inOrder);

echo "-- shmkit tool producer, PHP consumer\n";
exec(escapeshellarg($tool) . " send --type=7 " . escapeshellarg("$spec,open=attach") . " one two three", $out, $code);
var_dump($code);
var_dump($q->receive(7, 30.0), $q->receiveMessage(0, 30.0), $q->receive(7, 30.0));

echo "-- typed receive (msgrcv rules) and timeouts\n";
$q->send('t3', 3);
$q->send('t1', 1);
$q->send('t2', 2);
var_dump($q->receive(-2), $q->receive(-2), $q->receive(5, 0), $q->receive(3));
var_dump($q->receive(0, 0), $q->receive(0, 0.05), $q->stats()['messages']);

echo "-- PHP's msg_send/msg_receive (unserialized) interoperate\n";
$raw = msg_get_queue(hexdec($key));
var_dump(msg_send($raw, 5, "from msg_send", false));
var_dump($q->receive(5, 30.0));
var_dump($q->send("to msg_receive", 6));
var_dump(msg_receive($raw, 6, $type, 1024, $msg, false), $type, $msg);

echo "-- bad input\n";
throws(fn() => new Shmkit\Queue('nope:x=1'));
throws(fn() => $q->send('x', 0));
throws(fn() => $q->send(str_repeat('x', $caps['max_message_bytes'] + 1)));
$q->send(str_repeat('y', 100));
throws(fn() => $q->receive(0, 0, 10));
var_dump(strlen($q->receive(0, 0, 100)));

echo "-- remove\n";
var_dump($q->remove());
throws(fn() => $q->send('x'));
var_dump($q->close());
throws(fn() => $q->receive());
exec(escapeshellarg($tool) . " recv " . escapeshellarg("$spec,open=attach") . " --timeout=0 2>/dev/null", $out, $code);
var_dump($code);
?>
--EXPECTF--
bool(true)
string(4) "sysv"
bool(true)
bool(true)
bool(true)
-- PHP producer, shmkit tool consumer (started first, blocking)
int(0)
int(100)
string(5) "job 0"
int(1)
string(6) "job 99"
int(1)
bool(true)
-- shmkit tool producer, PHP consumer
int(0)
string(3) "one"
array(2) {
  ["type"]=>
  int(7)
  ["data"]=>
  string(3) "two"
}
string(5) "three"
-- typed receive (msgrcv rules) and timeouts
string(2) "t1"
string(2) "t2"
bool(false)
string(2) "t3"
bool(false)
bool(false)
int(0)
-- PHP's msg_send/msg_receive (unserialized) interoperate
bool(true)
string(13) "from msg_send"
bool(true)
bool(true)
int(6)
string(14) "to msg_receive"
-- bad input
Shmkit\InvalidArgumentException: queue spec "nope:x=1": unknown scheme "nope" %s
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: message type 0 is not positive %s
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: %s: asked for %d bytes but kernel.msgmax = %d %s
  code 3 INVALID_ARGUMENT
Shmkit\InvalidArgumentException: %s is longer than max_bytes 10; it stays queued %s
  code 3 INVALID_ARGUMENT
int(100)
-- remove
bool(true)
Shmkit\FailedPreconditionException: %s
  code 9 FAILED_PRECONDITION
bool(true)
Shmkit\FailedPreconditionException: the queue is not open
  code 9 FAILED_PRECONDITION
int(3)
