// WorkerPoolImpl: the master side of WorkerPool (worker_pool.h), and its
// design: fork, supervise, reap, respawn, stop. Where each part lives:
//
//   ipc/pool/worker_pool.cc              supervision: the event loop, reaping,
//                                        stopping, the public forwarders
//   ipc/pool/internal/worker_spawn.cc    forking a worker, the child side
//   ipc/pool/internal/result_channel.cc  results: the worker's Send and the
//                                        master's reading and framing
//   ipc/pool/internal/respawn_rules.*    the respawn policy, pure logic
//
// Descriptors the master holds:
//
//   epoll_         level-triggered set the master waits on (fd())
//     pidfd[i]     readable once worker i's process exited   tag (1, i, inc)
//     channel[i]   master end of worker i's socketpair        tag (2, i, inc)
//                  (left out of the set while the result buffer is full)
//     timer_       timerfd, due at the earliest pending respawn  tag (3)
//   master pipe    write end of the process-wide master-death pipe
//
// A tag is (kind << 62) | (index << 32) | incarnation. A worker's descriptors
// are removed from the set before they are closed, and every event is checked
// against the worker's current incarnation, so an event that was already in
// a batch when its worker was reaped (and maybe respawned) is ignored.
//
// Why pidfds rather than SIGCHLD + signalfd: a signalfd only sees SIGCHLD if
// every thread of the master blocks it (any thread that does not would take
// the signal), the mask would leak into everything the master forks or
// execs, and SIGCHLD is process-wide, so the pool would see (and could be
// tempted to reap) children that are not its own. A pidfd is per child, needs
// no signal state, and lives in an ordinary poll set. pidfd_open() right
// after fork() is race-free: the child cannot be reaped (so its pid cannot
// be reused) before we call waitpid on it.
//
// Reaping worker i (its pidfd is readable):
//   1. read everything the channel still holds (frames completed before the
//      death are results like any other);
//   2. waitpid(pid): the zombie is gone;
//   3. ProcessRegistry::MarkDeadInAllOpen(pid, start time captured right
//      after fork): its locks in every table/arena this process has open
//      are recoverable at once, not after a liveness probe;
//   4. discard a partial frame (never deliver a torn result), close the
//      channel and the pidfd;
//   5. report kExited, count the death, apply the respawn policy, the
//      crash-loop rule and the backoff (a due time for the timer).
//
// Respawns happen after each batch of events, for every worker whose due
// time has come; the timer is then re-armed for the next one.
//
// The child, between fork() and the user function, makes only
// async-signal-safe calls: prctl(PR_SET_PDEATHSIG), getppid() (the master may
// have died before prctl took effect), sigaction/sigprocmask (SIGTERM and the
// death signal back to default and unblocked), and close() over a list of
// descriptors prepared in the parent before fork. It never returns into the
// code that forked it: it _exit()s with the user function's value.
#ifndef SHMKIT_IPC_POOL_INTERNAL_WORKER_POOL_IMPL_H_
#define SHMKIT_IPC_POOL_INTERNAL_WORKER_POOL_IMPL_H_

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/pool/internal/master_pipe.h"
#include "shmkit/ipc/pool/internal/respawn_rules.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::internal {

inline int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0u));
}

class WorkerPoolImpl {
 public:
  WorkerPoolImpl(const WorkerPoolOptions& options, WorkerFunction function);

  ~WorkerPoolImpl();

  absl::Status Init();

  absl::Status StartAll();

  absl::StatusOr<WorkerResult> CollectFor(absl::Duration timeout,
                                          bool try_only);

  absl::StatusOr<PoolEvent> NextEventFor(absl::Duration timeout);

  absl::Status Supervise(absl::Duration timeout);

  absl::StatusOr<StopReport> Stop(absl::Duration grace);

  absl::Status ResumeRespawning();

  int fd() const { return epoll_.get(); }
  absl::Duration stop_grace() const { return options_.stop_grace; }
  int size() const { return static_cast<int>(workers_.size()); }

  std::vector<WorkerInfo> Workers() const;

  PoolStats Stats() const;

 private:
  // epoll tags: (kind << 62) | (index << 32) | incarnation.
  static constexpr uint64_t kTagPidfd = 1;
  static constexpr uint64_t kTagChannel = 2;
  static constexpr uint64_t kTagTimer = 3;
  static uint64_t Tag(uint64_t kind, int index, uint32_t incarnation) {
    return (kind << 62) | (static_cast<uint64_t>(index) << 32) | incarnation;
  }
  static uint64_t TagKind(uint64_t tag) { return tag >> 62; }
  static int TagIndex(uint64_t tag) {
    return static_cast<int>((tag >> 32) & ((uint64_t{1} << 30) - 1));
  }
  static uint32_t TagIncarnation(uint64_t tag) {
    return static_cast<uint32_t>(tag);
  }

  struct Worker {
    int index = 0;
    WorkerState state = WorkerState::kFinished;
    pid_t pid = 0;
    uint64_t start_time = 0;  // /proc start time, captured right after fork
    uint32_t incarnation = 0;
    uint32_t starts = 0;
    UniqueFd pidfd;    // valid exactly while a process is unreaped
    UniqueFd channel;  // master end; closed at EOF, error or reap
    bool channel_in_epoll = false;
    std::string inbuf;  // bytes of frames not yet complete
    int64_t respawn_at_ns = 0;
    uint64_t abnormal_exits = 0;
    std::optional<ExitStatus> last_exit;
  };

  // What the child needs, prepared before fork so the child reads memory
  // and makes no allocation before the user function.
  struct ChildPlan {
    const int* close_fds;
    size_t close_count;
    int channel_fd;
    int master_fd;
    pid_t master_pid;
    int death_signal;
    int index;
    uint32_t incarnation;
    size_t max_message_bytes;
    const WorkerFunction* function;
  };

  // Runs in the child. noexcept: an exception escaping the user function
  // ends the worker with std::terminate, never unwinds into the master's
  // code that forked it.
  [[noreturn]] static void RunChild(const ChildPlan& plan) noexcept;

  absl::Status EpollAdd(int fd, uint64_t tag);
  void EpollDel(int fd) {
    // Cannot fail for a descriptor we added; and if it did, the tag check
    // in Dispatch ignores whatever it reports later.
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  }

  // Only complete results count: a partial frame must always be read to
  // its end, or a frame larger than the bound would never complete and
  // nothing could be collected to make room.
  bool BackPressured() const {
    return result_bytes_ >= options_.max_buffered_bytes;
  }

  // Channels are in the epoll set exactly when the buffer has room.
  void UpdateChannelArming();

  void PushEvent(PoolEvent e) {
    if (e.time == absl::Time()) e.time = absl::Now();
    if (events_.size() >= options_.max_pending_events) {
      events_.pop_front();
      ++stats_.events_dropped;
    }
    events_.push_back(std::move(e));
  }

  absl::Status Spawn(Worker& w);

  void CloseChannel(Worker& w);

  // Moves complete frames from w.inbuf to results_. False when the stream
  // is corrupt (the caller closes the channel).
  bool ParseFrames(Worker& w);

  // Reads what the channel holds. Stops at EAGAIN, at EOF, or (unless
  // `drain`) when the result buffer is full.
  void ReadChannel(Worker& w, bool drain);

  void ChannelError(Worker& w, std::string detail);

  void EnterCrashLoop();

  // Applies the respawn rules to an exit (or failed spawn) of `w`: a
  // scheduled respawn, kHeld, or kFinished. The caller reports the exit,
  // then calls EnterCrashLoop() if told to, so the events come in that order.
  RespawnRules::Decision AfterExit(Worker& w, bool abnormal, int64_t now);

  void Reap(Worker& w, bool block);

  void RespawnDue();

  void ArmTimer();

  void Dispatch(uint64_t tag);

  // Waits until `deadline` for at least one event, handles every ready one,
  // then starts due respawns.
  absl::Status Pump(const Deadline& deadline);

  bool HasSources() const {
    if (running_ > 0) return true;
    if (stopping_ || crash_loop_) return false;
    return std::any_of(workers_.begin(), workers_.end(), [](const Worker& w) {
      return w.state == WorkerState::kRespawnPending;
    });
  }

  const WorkerPoolOptions options_;
  const WorkerFunction function_;
  const pid_t master_pid_;
  UniqueFd epoll_;
  UniqueFd timer_;
  MasterPipe master_pipe_;
  std::vector<Worker> workers_;
  std::vector<int> close_in_child_;
  std::deque<WorkerResult> results_;
  bool channels_armed_ = true;  // == !BackPressured() as last applied
  size_t result_bytes_ = 0;     // payloads in results_
  size_t partial_bytes_ = 0;    // bytes in the workers' inbufs
  std::deque<PoolEvent> events_;
  RespawnRules rules_;
  int running_ = 0;
  bool crash_loop_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  PoolStats stats_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_POOL_INTERNAL_WORKER_POOL_IMPL_H_
