--TEST--
Shmkit\Atomic: the seeds' pcntl_fork process pool, counting with an atomic instead of sem_acquire + shm_put_var
--FILE--
<?php
require __DIR__ . '/util.inc';

// The classic: a master forks a pool of workers that take numbered jobs
// from a shared counter and count what they did. With System V this is
// sem_acquire + shm_get_var + shm_put_var + sem_release per job; here each
// is one lock-free add.
const JOBS = 20000;
const WORKERS = 4;
$next = new Shmkit\Atomic(0);   // the next job number
$done = new Shmkit\Atomic(0);   // jobs finished
$sum = new Shmkit\Atomic(0);    // sum of the job numbers, to check each ran once

$pids = [];
for ($w = 0; $w < WORKERS; $w++) {
    $pids[] = fork_child(function () use ($next, $done, $sum) {
        while (($job = $next->add(1)) <= JOBS) {
            $sum->add($job);
            $done->add(1);
        }
        return 0;
    });
}
// The master waits for the event (the counter reaching JOBS), not for time.
var_dump($done->waitUntil(JOBS, 60));
var_dump(array_map('wait_child', $pids) === array_fill(0, WORKERS, 0));
var_dump($done->get(), $sum->get() === JOBS * (JOBS + 1) / 2, $next->get() === JOBS + WORKERS);
?>
--EXPECT--
int(20000)
bool(true)
int(20000)
bool(true)
bool(true)
