// WorkerPool: a pre-forked pool of worker processes, supervised.
//
//   auto hits = shmkit::AtomicCounter::Create();       // shared objects first
//   auto pool = shmkit::WorkerPool::Start(
//       {.workers = 4},
//       [&](shmkit::WorkerContext& ctx) {
//         while (!ctx.MasterGone()) { ServeOneRequest(*hits); }
//         return 0;
//       });
//   while (running) {
//     auto result = pool->CollectFor(absl::Seconds(1));  // reaps, respawns
//     ...
//   }
//   auto report = pool->Stop(absl::Seconds(5));  // SIGTERM, then SIGKILL
//
// What the pool does:
//   - forks `workers` processes; each runs the user function with a
//     WorkerContext (its index, a framed result channel to the master, and a
//     descriptor that reports the master's death), then _exit()s with the
//     function's return value;
//   - reaps every child (no zombie outlives the master's next call into the
//     pool), reports each exit with its status, marks the dead worker's
//     registry slots dead in every table and lock arena the master has open
//     (ProcessRegistry::MarkDeadInAllOpen), so locks it held are taken over at
//     once, and respawns it with a bounded exponential backoff;
//   - stops respawning when `crash_loop_deaths` abnormal exits happen within
//     `crash_loop_window` (a kCrashLoop event, stats().crash_loop) until
//     ResumeRespawning();
//   - Stop(): SIGTERM to every worker, waits until the grace deadline,
//     SIGKILL to the rest, returns once every child is reaped.
//
// ---------------------------------------------------------------------------
// Contract for the embedding application (the master)
// ---------------------------------------------------------------------------
// Supervision uses pidfds (pidfd_open, Linux >= 5.3), not SIGCHLD: the pool
// changes no signal mask and installs no signal handler, and it reaps only
// its own children (waitpid on each worker's pid), never waitpid(-1).
// Therefore:
//   - SIGCHLD must not be ignored (SIG_IGN) nor carry SA_NOCLDWAIT: the kernel
//     would reap the workers itself and their exit statuses would be lost.
//     Start() checks and fails with FailedPrecondition.
//   - The master must not reap children it did not fork itself (wait(),
//     waitpid(-1), a SIGCHLD handler that reaps everything). If it does, the
//     pool still notices the exit but reports the status as kUnknown.
//   - Other children of the master (system(), popen(), its own fork()s) are
//     none of the pool's business and are not disturbed.
//
// Threads. A WorkerPool is not thread-safe: call it from one thread at a
// time. Workers are forked by the thread that calls Start() and by whichever
// thread later runs the pool (Collect*, NextEventFor, Supervise, Resume...),
// which respawns. PR_SET_PDEATHSIG is bound to the *thread* that forked: if
// that thread exits while the master lives on, its workers receive
// `master_death_signal`. Run the pool from a thread that lives as long as
// the pool (normally the main thread), or set master_death_signal to 0 and
// rely on the pipe (below).
//
// Progress. The pool has no thread of its own: it supervises while the
// master is inside one of its calls. A worker that dies while the master is
// elsewhere stays a zombie until the next call. Masters with their own event
// loop add fd() to their poll set and call Supervise() (and TryCollect())
// whenever it is readable; others simply sit in Collect()/CollectFor().
//
// Fork safety. Between fork() and the user function the child makes only
// async-signal-safe calls (prctl, getppid, sigaction, sigprocmask, close),
// so forking from a multi-threaded master is safe up to the user function.
// (fork() itself first runs the pthread_atfork child handlers: glibc's, the
// application's, and shmkit's, which only reset per-process caches and
// unlock mutexes their prepare handlers took.)
// What the user function may do afterwards is the usual rule for a child of
// a multi-threaded process: locks other master threads held at fork time
// stay held in the child (glibc resets malloc's and stdio's own locks). The
// pool calls fflush(nullptr) before every fork (so buffered output is not
// written twice) and after the user function returns.
//
// The worker's process state, in the child:
//   - the signal mask and dispositions of the forking thread, except that
//     SIGTERM and `master_death_signal` are reset to SIG_DFL and unblocked
//     (so Stop() and the master's death work even if the master handles or
//     blocks SIGTERM itself); install your own SIGTERM handler in the worker
//     for a graceful stop;
//   - PR_SET_PDEATHSIG(master_death_signal); if the master died before that
//     call took effect, the child exits at once (getppid() check);
//   - every descriptor the pool owns in the master is closed (the other
//     workers' channels, pidfds, the epoll and timer descriptors, the write
//     end of the master-death pipe); the application's own descriptors are
//     inherited as fork() does;
//   - an exception escaping the user function terminates the worker
//     (std::terminate, SIGABRT), as it would a thread;
//   - the pool's descriptors in the worker (result channel, master-death
//     pipe) are O_CLOEXEC: a worker that exec()s keeps only the death
//     signal.
//
// Master death. Besides the signal, every worker holds the read end of a
// pipe whose only writer is the master (one pipe per master process, shared
// by all its pools; O_CLOEXEC). When the master dies the pipe reports EOF:
// WorkerContext::MasterGone(), WaitMasterGoneFor() and master_fd() (for the
// worker's own poll set) expose it. Caveat: a process the master forks
// outside the pool (without exec) inherits the write end and delays that EOF
// until it exits; the signal is not affected.
//
// Results. Each worker has a SOCK_STREAM socketpair to the master carrying
// length-prefixed frames. The master reads complete results into a buffer
// and stops reading once it holds `max_buffered_bytes` of them (it can
// overshoot by the frames one 64 KiB read completes); a frame in progress is
// always read to its end, whatever its size. Workers' Send() blocks
// (back-pressure) while the master is not reading. A worker that dies in the
// middle of a Send never yields a torn result: the master delivers the
// frames completed before the death and discards the partial one
// (stats().torn_results_discarded).
//
// Objects. Shared objects the workers use (counters, tables, lock arenas,
// events) are created before Start() and inherited. The pool itself creates
// no System V object.
#ifndef SHMKIT_IPC_POOL_WORKER_POOL_H_
#define SHMKIT_IPC_POOL_WORKER_POOL_H_

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shmkit {

namespace internal {
class WorkerPoolImpl;
}  // namespace internal

// When a worker that exited is started again.
enum class RespawnPolicy {
  kOnFailure,  // after a death by signal or a non-zero exit code (default)
  kAlways,     // also after exit code 0 (workers that recycle themselves);
               // a clean exit is respawned at once, without backoff
  kNever,      // never: each worker runs once
};

struct WorkerPoolOptions {
  // Number of workers, 1..WorkerPool::kMaxWorkers.
  int workers = 1;
  RespawnPolicy respawn = RespawnPolicy::kOnFailure;
  // Delay before respawning a worker after an abnormal exit: backoff_initial
  // times 2^(k-1), where k counts that worker's abnormal exits within
  // crash_loop_window, capped at backoff_max. 0 <= initial <= max, finite.
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
  // Crash-loop rule: this many abnormal exits (all workers together) within
  // `crash_loop_window` stop all respawning (0 disables the rule). Deaths
  // caused by Stop() do not count. The window must be positive and finite.
  int crash_loop_deaths = 5;
  absl::Duration crash_loop_window = absl::Seconds(10);
  // Grace period the destructor gives Stop() when the pool was not stopped
  // explicitly. >= 0, finite.
  absl::Duration stop_grace = absl::Seconds(5);
  // Signal each worker gets when the master's forking thread dies
  // (PR_SET_PDEATHSIG); 0 for none (the master-death pipe still works).
  // SIGTERM by default, so a worker's own SIGTERM handler sees the same
  // graceful path as a Stop().
  int master_death_signal = SIGTERM;
  // Largest result a worker may Send, in bytes (1..kMaxMessageBytes).
  size_t max_message_bytes = size_t{1} << 20;
  // Bytes of complete results the master buffers before it stops reading
  // the channels (workers then block in Send until results are collected).
  // Frames in progress are always read to their end, whatever their size.
  // >= 1.
  size_t max_buffered_bytes = size_t{16} << 20;
  // Lifecycle events kept for NextEventFor(); past this the oldest is
  // dropped and counted in stats().events_dropped. >= 1.
  size_t max_pending_events = 4096;
};

// How a worker process ended.
struct ExitStatus {
  enum class Kind {
    kExited,    // exit code in `code`
    kSignaled,  // killed by `signal`
    kUnknown,   // reaped by someone else (the master called waitpid(-1)?);
                // counted as abnormal
  };
  Kind kind = Kind::kUnknown;
  int code = 0;
  int signal = 0;
  bool core_dumped = false;

  // Exit code 0.
  bool clean() const { return kind == Kind::kExited && code == 0; }
  std::string ToString() const;  // "exit code 3", "signal 9 (Killed)"...
};

// Something that happened to the pool. Read with NextEventFor().
struct PoolEvent {
  enum class Kind {
    kStarted,       // a worker process was forked (first start or respawn)
    kExited,        // a worker process was reaped
    kSpawnFailed,   // fork (or setting up a worker) failed; `detail` says why
    kCrashLoop,     // the crash-loop rule stopped all respawning
    kChannelError,  // a worker's result stream was corrupt; channel closed
  };
  Kind kind = Kind::kStarted;
  int index = -1;  // the worker; -1 for kCrashLoop
  pid_t pid = 0;
  uint32_t incarnation = 0;  // 0 for a worker's first start, then 1, 2...
  ExitStatus exit;           // kExited
  bool abnormal = false;     // kExited: counted as a failure
  bool during_stop = false;  // kExited: the worker was stopped by Stop()
  // kExited: when a respawn was scheduled, after how long.
  std::optional<absl::Duration> respawn_in;
  // kExited: bytes of a partial result frame discarded at the exit.
  uint64_t torn_bytes_discarded = 0;
  std::string detail;  // kSpawnFailed, kChannelError, kCrashLoop
  absl::Time time;     // when the pool observed it (for kExited: the reap)

  std::string ToString() const;
};

// One result a worker sent.
struct WorkerResult {
  int index = -1;
  pid_t pid = 0;
  uint32_t incarnation = 0;
  std::string bytes;
};

enum class WorkerState {
  kRunning,         // a process is running (or dead and not yet reaped)
  kRespawnPending,  // exited; a respawn is scheduled
  kHeld,            // exited; respawning stopped by the crash-loop rule
  kFinished,        // exited and will not be respawned (policy, or Stop())
};

struct WorkerInfo {
  int index = -1;
  WorkerState state = WorkerState::kRunning;
  pid_t pid = 0;  // the running process; 0 when none
  uint32_t incarnation = 0;
  uint64_t abnormal_exits = 0;
  std::optional<ExitStatus> last_exit;
};

struct PoolStats {
  uint64_t started = 0;  // forks, first starts included
  uint64_t exited = 0;
  uint64_t abnormal_exits = 0;  // not counting Stop()
  uint64_t spawn_failures = 0;
  uint64_t results = 0;  // complete results received
  uint64_t torn_results_discarded = 0;
  uint64_t channel_errors = 0;
  uint64_t events_dropped = 0;
  size_t buffered_bytes = 0;  // results and partial frames held
  int running = 0;
  bool crash_loop = false;
};

struct StopReport {
  int stopped = 0;  // workers that exited before the deadline
  int killed = 0;   // workers that needed SIGKILL
};

// The worker's side: given to the user function in each worker process.
// Lives in the worker only; Send() is safe from any thread of the worker.
class WorkerContext {
 public:
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  int index() const { return index_; }
  // 0 for the first process of this index, then 1, 2... for respawns.
  uint32_t incarnation() const { return incarnation_; }
  pid_t master_pid() const { return master_pid_; }
  size_t max_message_bytes() const { return max_message_bytes_; }

  // Sends one result to the master, whole (the master never sees a part of
  // it). Blocks while the master's buffer is full. Errors: InvalidArgument
  // when `bytes` exceeds max_message_bytes (nothing is sent); an errno
  // status (EPIPE: FailedPrecondition) when the master has gone or closed
  // the channel.
  absl::Status Send(absl::string_view bytes);

  // Whether the master has died (its end of the master-death pipe closed).
  // One poll() call; never blocks.
  bool MasterGone() const;
  // Waits up to `timeout` for the master's death; true when it died.
  bool WaitMasterGoneFor(absl::Duration timeout) const;
  // The read end of the master-death pipe, for the worker's own poll set:
  // POLLIN/POLLHUP means the master is gone. Never carries data; do not
  // read or close it.
  int master_fd() const { return master_fd_; }

 private:
  friend class internal::WorkerPoolImpl;
  WorkerContext(int index, uint32_t incarnation, pid_t master_pid,
                int channel_fd, int master_fd, size_t max_message_bytes)
      : index_(index),
        incarnation_(incarnation),
        master_pid_(master_pid),
        channel_fd_(channel_fd),
        master_fd_(master_fd),
        max_message_bytes_(max_message_bytes) {}

  const int index_;
  const uint32_t incarnation_;
  const pid_t master_pid_;
  const int channel_fd_;
  const int master_fd_;
  const size_t max_message_bytes_;
  std::mutex send_mu_;  // frames from concurrent threads never interleave
};

// The user function: runs in each worker; its return value is the worker's
// exit code (0..255).
using WorkerFunction = std::function<int(WorkerContext&)>;

class WorkerPool {
 public:
  static constexpr int kMaxWorkers = 4096;
  static constexpr size_t kMaxMessageBytes = size_t{1} << 30;

  // Forks the workers. Errors: InvalidArgument (an option out of range,
  // naming it; nothing is forked), FailedPrecondition (SIGCHLD ignored or
  // SA_NOCLDWAIT set), Unimplemented (no pidfd_open: Linux < 5.3), an errno
  // status when a descriptor or fork fails (workers already forked are
  // killed and reaped before it returns).
  static absl::StatusOr<WorkerPool> Start(const WorkerPoolOptions& options,
                                          WorkerFunction function);

  // A moved-from pool may only be destroyed or assigned to.
  WorkerPool(WorkerPool&&) noexcept;
  WorkerPool& operator=(WorkerPool&&) noexcept;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  // Stop(options.stop_grace) unless stopped already. In any process other
  // than the master (a worker, a child the master forked itself) it only
  // frees memory and closes descriptors: it never signals anybody.
  ~WorkerPool();

  // Returns the next result, supervising (reaping, respawning) while it
  // waits. Collect() waits without limit; CollectFor() returns
  // DeadlineExceeded after `timeout`; TryCollect() reads what is ready and
  // returns Unavailable when no result is. FailedPrecondition when no result
  // is buffered and none can come: no worker is running or scheduled to
  // respawn (all finished, stopped, or held by the crash-loop rule).
  absl::StatusOr<WorkerResult> Collect();
  absl::StatusOr<WorkerResult> CollectFor(absl::Duration timeout);
  absl::StatusOr<WorkerResult> TryCollect();

  // Returns the next lifecycle event (oldest first), supervising while it
  // waits; DeadlineExceeded after `timeout` (zero: only what is ready);
  // FailedPrecondition when none is pending and no worker is running or
  // scheduled to respawn.
  absl::StatusOr<PoolEvent> NextEventFor(absl::Duration timeout);

  // Handles whatever is ready (exits, result bytes, due respawns), waiting
  // up to `timeout` for something to happen first. For masters that run
  // their own loop over fd(): after it, drain TryCollect() and
  // NextEventFor(absl::ZeroDuration()) as they need.
  absl::Status Supervise(absl::Duration timeout = absl::ZeroDuration());
  // A descriptor (epoll, level-triggered) that is readable when Supervise()
  // has work. Owned by the pool; do not read or close it.
  int fd() const;

  // Stops the pool: no more respawns; SIGTERM to every running worker;
  // waits up to `grace`; SIGKILL to those still running; returns once every
  // worker is reaped. Results received before the workers exited stay
  // collectable. Idempotent (a second call returns an empty report).
  // FailedPrecondition when called in a process other than the master.
  absl::StatusOr<StopReport> Stop(absl::Duration grace);
  absl::StatusOr<StopReport> Stop();  // with options.stop_grace

  // Clears the crash-loop state (and the death history it counts) and
  // respawns the held workers now. FailedPrecondition after Stop().
  absl::Status ResumeRespawning();

  int size() const;
  std::vector<WorkerInfo> workers() const;
  PoolStats stats() const;

 private:
  explicit WorkerPool(std::unique_ptr<internal::WorkerPoolImpl> impl);
  std::unique_ptr<internal::WorkerPoolImpl> impl_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_POOL_WORKER_POOL_H_
