--TEST--
Shmkit\Queue: a pipe queue shared through pcntl_fork, with roles; every message once, whole
--FILE--
<?php
require __DIR__ . '/util.inc';

$q = new Shmkit\Queue('pipe');
$pids = [];
for ($c = 1; $c <= 3; $c++) {
    $pids[] = fork_child(function () use ($q, $c) {
        $q->setRole(Shmkit\Queue::ROLE_SENDER);
        for ($i = 0; $i < 200; $i++) $q->send(str_repeat(chr(64 + $c), 100 + $i), $c);
        return 0;
    });
}
$q->setRole(Shmkit\Queue::ROLE_RECEIVER);
$count = [1 => 0, 2 => 0, 3 => 0];
$whole = true;
for ($n = 0; $n < 600; $n++) {
    $m = $q->receiveMessage(0, 60.0);
    if ($m === false) break;
    $t = $m['type'];
    $whole = $whole && $m['data'] === str_repeat(chr(64 + $t), 100 + $count[$t]);
    $count[$t]++;
}
var_dump($count, $whole);
var_dump(array_map('wait_child', $pids));
// Every sender is gone and nothing is queued: an error, not a hang.
throws(fn() => $q->receive(0, 10.0));
throws(fn() => $q->send('x'));
throws(fn() => $q->setRole(7));
?>
--EXPECTF--
array(3) {
  [1]=>
  int(200)
  [2]=>
  int(200)
  [3]=>
  int(200)
}
bool(true)
array(3) {
  [0]=>
  int(0)
  [1]=>
  int(0)
  [2]=>
  int(0)
}
Shmkit\FailedPreconditionException: pipe queue: no sender left (every write end is closed)
  code 9 FAILED_PRECONDITION
Shmkit\FailedPreconditionException: this process declared itself receiver of pipe queue %s: it does not send
  code 9 FAILED_PRECONDITION
ValueError: Shmkit\Queue::setRole(): Argument #1 ($role) must be Shmkit\Queue::ROLE_BOTH, ROLE_SENDER or ROLE_RECEIVER
