--TEST--
Shmkit\Table: a live process holding a row lock is never overridden; the waiter gets DeadlineExceededException
--FILE--
<?php
require __DIR__ . '/util.inc';

// A wide row keeps the writer inside its critical section (saving the undo
// image, copying the row) for most of each loop.
$t = new Shmkit\Table(16);
$t->column('hits', Shmkit\Table::TYPE_INT);
$t->column('blob', Shmkit\Table::TYPE_STRING, 65536);
$t->create(['lock_timeout' => 0.2]);
$blob = str_repeat('b', 65536);
$t->set('hot', ['hits' => 1]);   // what every attempt below writes too
[$r, $w] = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
$child = fork_child(function () use ($t, $w, $blob) {
    fwrite($w, "x");
    for (;;) $t->set('hot', ['blob' => $blob]);
});
$read = [$r];
$none = null;
var_dump(stream_select($read, $none, $none, 60) === 1 && fread($r, 1) === "x");

// Stop the child (a live process) until it is stopped inside its critical
// section; then our incr must time out instead of taking the lock over.
$caught = null;
for ($attempt = 0; $attempt < 20000 && $caught === null; $attempt++) {
    posix_kill($child, SIGSTOP);
    pcntl_waitpid($child, $status, WUNTRACED);
    try {
        $t->set('hot', ['hits' => 1]);
    } catch (Shmkit\DeadlineExceededException $e) {
        $caught = $e;
    }
    if ($caught === null) posix_kill($child, SIGCONT);
}
var_dump($caught !== null);
if ($caught) {
    echo get_class($caught), " code ", $caught->getCode(), "\n";
    var_dump(str_contains($caught->getMessage(), (string)$child));
}
posix_kill($child, SIGKILL);
posix_kill($child, SIGCONT);
var_dump(wait_child($child) === 128 + SIGKILL);
// With the holder dead, the lock is taken over and the write goes through.
var_dump($t->incr('hot', 'hits') === 2);
?>
--EXPECT--
bool(true)
bool(true)
Shmkit\DeadlineExceededException code 4
bool(true)
bool(true)
bool(true)
