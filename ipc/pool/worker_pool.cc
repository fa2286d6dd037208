// WorkerPool: fork, supervise, reap, respawn, stop.
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
#include "shmkit/ipc/pool/worker_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/pool/internal/frame.h"
#include "shmkit/ipc/pool/internal/master_pipe.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {

using internal::Deadline;
using internal::ErrnoStatus;
using internal::RetryOnEintr;

namespace {

// Exit code of a worker whose master died before PR_SET_PDEATHSIG took
// effect (nobody reads it: the master is gone).
constexpr int kExitMasterGone = 1;

constexpr uint64_t kTagPidfd = 1;
constexpr uint64_t kTagChannel = 2;
constexpr uint64_t kTagTimer = 3;

uint64_t Tag(uint64_t kind, int index, uint32_t incarnation) {
  return (kind << 62) | (static_cast<uint64_t>(index) << 32) | incarnation;
}
uint64_t TagKind(uint64_t tag) { return tag >> 62; }
int TagIndex(uint64_t tag) {
  return static_cast<int>((tag >> 32) & ((uint64_t{1} << 30) - 1));
}
uint32_t TagIncarnation(uint64_t tag) { return static_cast<uint32_t>(tag); }

int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0u));
}

// epoll_wait's timeout in milliseconds for `deadline`, rounded up so a wait
// never ends just short of the deadline and spins.
int TimeoutMs(const Deadline& deadline) {
  if (deadline.infinite()) return -1;
  const int64_t ns = absl::ToInt64Nanoseconds(deadline.Remaining());
  const int64_t ms = (ns + 999'999) / 1'000'000;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : "unknown";
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus e;
  if (WIFEXITED(status)) {
    e.kind = ExitStatus::Kind::kExited;
    e.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    e.kind = ExitStatus::Kind::kSignaled;
    e.signal = WTERMSIG(status);
    e.core_dumped = WCOREDUMP(status);
  }
  return e;
}

absl::Status CheckDuration(absl::Duration d, absl::string_view name,
                           bool positive) {
  if (d == absl::InfiniteDuration() || d == -absl::InfiniteDuration() ||
      d < absl::ZeroDuration() || (positive && d == absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        absl::StrCat("WorkerPoolOptions.", name, " is ",
                     absl::FormatDuration(d), "; it must be ",
                     positive ? "positive" : "non-negative", " and finite"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const WorkerPoolOptions& o) {
  if (o.workers < 1 || o.workers > WorkerPool::kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("WorkerPoolOptions.workers is ", o.workers,
                     "; it must be in 1..", WorkerPool::kMaxWorkers));
  }
  SHMKIT_RETURN_IF_ERROR(
      CheckDuration(o.backoff_initial, "backoff_initial", false));
  SHMKIT_RETURN_IF_ERROR(CheckDuration(o.backoff_max, "backoff_max", false));
  if (o.backoff_max < o.backoff_initial) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WorkerPoolOptions.backoff_max (", absl::FormatDuration(o.backoff_max),
        ") is less than backoff_initial (",
        absl::FormatDuration(o.backoff_initial), ")"));
  }
  if (o.crash_loop_deaths < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("WorkerPoolOptions.crash_loop_deaths is ",
                     o.crash_loop_deaths, "; it must be >= 0 (0 disables)"));
  }
  SHMKIT_RETURN_IF_ERROR(
      CheckDuration(o.crash_loop_window, "crash_loop_window", true));
  SHMKIT_RETURN_IF_ERROR(CheckDuration(o.stop_grace, "stop_grace", false));
  if (o.master_death_signal < 0 || o.master_death_signal >= NSIG) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WorkerPoolOptions.master_death_signal is ", o.master_death_signal,
        "; it must be 0 (none) or a "
        "signal number below ",
        NSIG));
  }
  if (o.max_message_bytes < 1 ||
      o.max_message_bytes > WorkerPool::kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WorkerPoolOptions.max_message_bytes is ", o.max_message_bytes,
        "; it must be in 1..", WorkerPool::kMaxMessageBytes));
  }
  if (o.max_buffered_bytes < 1) {
    return absl::InvalidArgumentError(
        "WorkerPoolOptions.max_buffered_bytes is 0; it must be >= 1");
  }
  if (o.max_pending_events < 1) {
    return absl::InvalidArgumentError(
        "WorkerPoolOptions.max_pending_events is 0; it must be >= 1");
  }
  return absl::OkStatus();
}

// The kernel reaps children itself when SIGCHLD is ignored or has
// SA_NOCLDWAIT; the pool would then lose every exit status.
absl::Status CheckSigchld() {
  struct sigaction current;
  if (sigaction(SIGCHLD, nullptr, &current) != 0) {
    return ErrnoStatus(errno, "sigaction(SIGCHLD, query)");
  }
  if (current.sa_handler == SIG_IGN) {
    return absl::FailedPreconditionError(
        "SIGCHLD is ignored (SIG_IGN) in this process: the kernel would reap "
        "the workers itself and their exit statuses would be lost; restore "
        "SIG_DFL or a handler before starting a WorkerPool");
  }
  if ((current.sa_flags & SA_NOCLDWAIT) != 0) {
    return absl::FailedPreconditionError(
        "SIGCHLD has SA_NOCLDWAIT in this process: the kernel would reap the "
        "workers itself and their exit statuses would be lost");
  }
  return absl::OkStatus();
}

}  // namespace

// ---- value types ------------------------------------------------------------

std::string ExitStatus::ToString() const {
  switch (kind) {
    case Kind::kExited:
      return absl::StrCat("exit code ", code);
    case Kind::kSignaled:
      return absl::StrCat("signal ", signal, " (", SignalName(signal), ")",
                          core_dumped ? ", core dumped" : "");
    case Kind::kUnknown:
      break;
  }
  return "unknown (reaped outside the pool)";
}

std::string PoolEvent::ToString() const {
  const std::string who = absl::StrCat("worker ", index, " (pid ", pid,
                                       ", incarnation ", incarnation, ")");
  switch (kind) {
    case Kind::kStarted:
      return absl::StrCat(who, " started");
    case Kind::kExited: {
      std::string s = absl::StrCat(who, " exited: ", exit.ToString());
      if (during_stop) absl::StrAppend(&s, " (stopped)");
      if (torn_bytes_discarded > 0) {
        absl::StrAppend(&s, "; discarded a partial result of ",
                        torn_bytes_discarded, " bytes");
      }
      if (respawn_in.has_value()) {
        absl::StrAppend(&s, "; respawn in ", absl::FormatDuration(*respawn_in));
      }
      return s;
    }
    case Kind::kSpawnFailed:
      return absl::StrCat("worker ", index, ": spawn failed: ", detail);
    case Kind::kCrashLoop:
      return absl::StrCat("crash loop: ", detail);
    case Kind::kChannelError:
      return absl::StrCat(who, ": result channel closed: ", detail);
  }
  return "unknown event";
}

// ---- worker side ------------------------------------------------------------

absl::Status WorkerContext::Send(absl::string_view bytes) {
  if (bytes.size() > max_message_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("result of ", bytes.size(),
                                                   " bytes exceeds the pool's "
                                                   "max_message_bytes of ",
                                                   max_message_bytes_,
                                                   "; nothing was sent"));
  }
  internal::FrameHeader header =
      internal::MakeFrameHeader(static_cast<uint32_t>(bytes.size()));
  iovec iov[2] = {{&header, sizeof(header)},
                  {const_cast<char*>(bytes.data()), bytes.size()}};
  const size_t total = sizeof(header) + bytes.size();
  size_t sent = 0;
  std::lock_guard<std::mutex> lock(send_mu_);
  while (sent < total) {
    // Rebuild the vector past what was sent (a partial send or EINTR).
    iovec rest[2];
    int count = 0;
    size_t skip = sent;
    for (const iovec& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      rest[count++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
      skip = 0;
    }
    msghdr msg{};
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<size_t>(count);
    // MSG_NOSIGNAL: a master that has gone yields EPIPE, never SIGPIPE.
    const ssize_t n = sendmsg(channel_fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(
          errno, absl::StrCat("sendmsg(result channel of worker ", index_, ", ",
                              total - sent, " of ", total, " bytes)"));
    }
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

bool WorkerContext::MasterGone() const {
  pollfd p{master_fd_, POLLIN, 0};
  const int r = RetryOnEintr([&] { return poll(&p, 1, 0); });
  return r == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

bool WorkerContext::WaitMasterGoneFor(absl::Duration timeout) const {
  const Deadline deadline = Deadline::In(timeout);
  pollfd p{master_fd_, POLLIN, 0};
  const int r = RetryOnEintr([&] { return poll(&p, 1, TimeoutMs(deadline)); });
  return r == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

// ---- master side ------------------------------------------------------------

namespace internal {

class WorkerPoolImpl {
 public:
  WorkerPoolImpl(const WorkerPoolOptions& options, WorkerFunction function)
      : options_(options),
        function_(std::move(function)),
        master_pid_(getpid()) {
    workers_.resize(static_cast<size_t>(options.workers));
    for (int i = 0; i < options.workers; ++i) workers_[i].index = i;
  }

  ~WorkerPoolImpl() {
    if (getpid() == master_pid_) {
      if (!stopped_) (void)Stop(options_.stop_grace);
      return;
    }
    // A worker (or another child of the master) destroying its inherited
    // copy signals nobody, and leaves the descriptor numbers alone: a worker
    // closed them before the user function ran, so by now they may name the
    // user's own files.
    (void)epoll_.release();
    (void)timer_.release();
    for (Worker& w : workers_) {
      (void)w.pidfd.release();
      (void)w.channel.release();
    }
  }

  absl::Status Init() {
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return ErrnoStatus(errno, "epoll_create1(EPOLL_CLOEXEC)");
    timer_.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_) {
      return ErrnoStatus(errno, "timerfd_create(CLOCK_MONOTONIC)");
    }
    SHMKIT_RETURN_IF_ERROR(EpollAdd(timer_.get(), Tag(kTagTimer, 0, 0)));
    SHMKIT_ASSIGN_OR_RETURN(master_pipe_, MasterDeathPipe());
    return absl::OkStatus();
  }

  absl::Status StartAll() {
    for (Worker& w : workers_) {
      if (absl::Status st = Spawn(w); !st.ok()) {
        // Workers forked so far are killed and reaped before returning.
        (void)Stop(absl::ZeroDuration());
        return st;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<WorkerResult> CollectFor(absl::Duration timeout,
                                          bool try_only) {
    const Deadline deadline = Deadline::In(timeout);
    bool waited = false;
    while (true) {
      if (!results_.empty()) {
        WorkerResult r = std::move(results_.front());
        results_.pop_front();
        result_bytes_ -= r.bytes.size();
        UpdateChannelArming();
        return r;
      }
      if (!HasSources()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "no result buffered and none can come: no worker is running or "
            "scheduled to respawn",
            crash_loop_ ? " (respawning stopped by the crash-loop rule)" : "",
            stopping_ ? " (the pool was stopped)" : ""));
      }
      if (waited && deadline.Expired()) {
        if (try_only) return absl::UnavailableError("no result ready");
        return absl::DeadlineExceededError(absl::StrCat(
            "no worker result within ", absl::FormatDuration(timeout)));
      }
      waited = true;
      SHMKIT_RETURN_IF_ERROR(Pump(deadline));
    }
  }

  absl::StatusOr<PoolEvent> NextEventFor(absl::Duration timeout) {
    const Deadline deadline = Deadline::In(timeout);
    bool waited = false;
    while (true) {
      if (!events_.empty()) {
        PoolEvent e = std::move(events_.front());
        events_.pop_front();
        return e;
      }
      if (!HasSources()) {
        return absl::FailedPreconditionError(
            "no event pending and none can come: no worker is running or "
            "scheduled to respawn");
      }
      if (waited && deadline.Expired()) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no pool event within ", absl::FormatDuration(timeout)));
      }
      waited = true;
      SHMKIT_RETURN_IF_ERROR(Pump(deadline));
    }
  }

  absl::Status Supervise(absl::Duration timeout) {
    return Pump(Deadline::In(timeout));
  }

  absl::StatusOr<StopReport> Stop(absl::Duration grace) {
    if (stopped_) return StopReport{};
    if (getpid() != master_pid_) {
      return absl::FailedPreconditionError(
          absl::StrCat("WorkerPool::Stop called in process ", getpid(),
                       ", not in the pool's master (pid ", master_pid_, ")"));
    }
    stopping_ = true;
    for (Worker& w : workers_) {
      if (w.state == WorkerState::kRespawnPending ||
          w.state == WorkerState::kHeld) {
        w.state = WorkerState::kFinished;
      }
    }
    ArmTimer();
    const int at_start = running_;
    for (Worker& w : workers_) {
      if (w.pidfd.valid()) kill(w.pid, SIGTERM);
    }
    const Deadline deadline = Deadline::In(grace);
    while (running_ > 0 && !deadline.Expired()) {
      if (!Pump(deadline).ok()) break;
    }
    StopReport report;
    report.killed = running_;
    report.stopped = at_start - running_;
    for (Worker& w : workers_) {
      if (w.pidfd.valid()) kill(w.pid, SIGKILL);
    }
    while (running_ > 0) {
      if (!Pump(Deadline::Never()).ok()) break;
    }
    // Only if epoll itself failed: reap the rest directly, blocking (SIGKILL
    // was sent, so this ends unless a process is stuck in the kernel).
    for (Worker& w : workers_) {
      if (w.pidfd.valid()) Reap(w, /*block=*/true);
    }
    stopped_ = true;
    return report;
  }

  absl::Status ResumeRespawning() {
    if (stopping_) {
      return absl::FailedPreconditionError(
          "the pool was stopped; it cannot respawn workers");
    }
    crash_loop_ = false;
    deaths_.clear();
    const int64_t now = MonotonicNanos();
    for (Worker& w : workers_) {
      w.deaths.clear();
      if (w.state == WorkerState::kHeld) {
        w.state = WorkerState::kRespawnPending;
        w.respawn_at_ns = now;
      }
    }
    RespawnDue();
    return absl::OkStatus();
  }

  int fd() const { return epoll_.get(); }
  absl::Duration stop_grace() const { return options_.stop_grace; }
  int size() const { return static_cast<int>(workers_.size()); }

  std::vector<WorkerInfo> Workers() const {
    std::vector<WorkerInfo> out;
    out.reserve(workers_.size());
    for (const Worker& w : workers_) {
      WorkerInfo info;
      info.index = w.index;
      info.state = w.state;
      info.pid = w.pidfd.valid() ? w.pid : 0;
      info.incarnation = w.incarnation;
      info.abnormal_exits = w.abnormal_exits;
      info.last_exit = w.last_exit;
      out.push_back(info);
    }
    return out;
  }

  PoolStats Stats() const {
    PoolStats s = stats_;
    s.buffered_bytes = result_bytes_ + partial_bytes_;
    s.running = running_;
    s.crash_loop = crash_loop_;
    return s;
  }

 private:
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
    std::deque<int64_t> deaths;  // abnormal exits within the window (backoff)
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
  [[noreturn]] static void RunChild(const ChildPlan& plan) noexcept {
    if (plan.death_signal != 0) {
      prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(plan.death_signal));
    }
    // The master may have died between fork() and prctl(): the signal would
    // then never come. Our parent is someone else (init or a subreaper).
    if (getppid() != plan.master_pid) _exit(kExitMasterGone);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTERM, &dfl, nullptr);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGTERM);
    if (plan.death_signal != 0) {
      if (plan.death_signal != SIGKILL && plan.death_signal != SIGSTOP) {
        sigaction(plan.death_signal, &dfl, nullptr);
      }
      sigaddset(&unblock, plan.death_signal);
    }
    sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
    for (size_t i = 0; i < plan.close_count; ++i) close(plan.close_fds[i]);
    WorkerContext context(plan.index, plan.incarnation, plan.master_pid,
                          plan.channel_fd, plan.master_fd,
                          plan.max_message_bytes);
    const int code = (*plan.function)(context);
    fflush(nullptr);
    _exit(code);
  }

  absl::Status EpollAdd(int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoStatus(errno, absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
    }
    return absl::OkStatus();
  }
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
  void UpdateChannelArming() {
    const bool want = !BackPressured();
    if (want == channels_armed_) return;
    channels_armed_ = want;
    for (Worker& w : workers_) {
      if (!w.channel.valid() || w.channel_in_epoll == want) continue;
      if (want) {
        w.channel_in_epoll =
            EpollAdd(w.channel.get(), Tag(kTagChannel, w.index, w.incarnation))
                .ok();
      } else {
        EpollDel(w.channel.get());
        w.channel_in_epoll = false;
      }
    }
  }

  void PushEvent(PoolEvent e) {
    if (e.time == absl::Time()) e.time = absl::Now();
    if (events_.size() >= options_.max_pending_events) {
      events_.pop_front();
      ++stats_.events_dropped;
    }
    events_.push_back(std::move(e));
  }

  absl::Status Spawn(Worker& w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return ErrnoStatus(errno, "socketpair(AF_UNIX, SOCK_STREAM)");
    }
    UniqueFd master_end(sv[0]);
    UniqueFd worker_end(sv[1]);
    if (fcntl(master_end.get(), F_SETFL, O_NONBLOCK) != 0) {
      return ErrnoStatus(errno, "fcntl(result channel, O_NONBLOCK)");
    }
    // Everything of ours the child must not keep: other workers' channels
    // would stay open in it (no EOF for the master), the pipe's write end
    // would hide the master's death from every worker.
    close_in_child_.clear();
    close_in_child_.push_back(epoll_.get());
    close_in_child_.push_back(timer_.get());
    close_in_child_.push_back(master_pipe_.write_fd);
    close_in_child_.push_back(master_end.get());
    for (const Worker& other : workers_) {
      if (other.pidfd.valid()) close_in_child_.push_back(other.pidfd.get());
      if (other.channel.valid()) close_in_child_.push_back(other.channel.get());
    }
    const uint32_t incarnation = w.starts;
    const ChildPlan plan{close_in_child_.data(),
                         close_in_child_.size(),
                         worker_end.get(),
                         master_pipe_.read_fd,
                         master_pid_,
                         options_.master_death_signal,
                         w.index,
                         incarnation,
                         options_.max_message_bytes,
                         &function_};
    fflush(nullptr);  // or the child's final fflush writes our buffers again
    const pid_t pid = fork();
    if (pid < 0) return ErrnoStatus(errno, "fork()");
    if (pid == 0) RunChild(plan);
    worker_end.reset();
    UniqueFd pidfd(PidfdOpen(pid));
    if (!pidfd.valid()) {
      const int err = errno;
      // A child we cannot watch must not run unsupervised.
      kill(pid, SIGKILL);
      RetryOnEintr([&] { return waitpid(pid, nullptr, 0); });
      return ErrnoStatus(err, absl::StrCat("pidfd_open(", pid, ")"));
    }
    // The child is ours and unreaped: its /proc entry exists even if it has
    // already exited. 0 ("unknown") only if /proc is unreadable.
    const uint64_t start_time = ProcessStartTime(pid).value_or(0);
    absl::Status st =
        EpollAdd(pidfd.get(), Tag(kTagPidfd, w.index, incarnation));
    if (st.ok() && channels_armed_) {
      st = EpollAdd(master_end.get(), Tag(kTagChannel, w.index, incarnation));
      if (!st.ok()) EpollDel(pidfd.get());
    }
    if (!st.ok()) {
      kill(pid, SIGKILL);
      RetryOnEintr([&] { return waitpid(pid, nullptr, 0); });
      return st;
    }
    w.pid = pid;
    w.start_time = start_time;
    w.incarnation = incarnation;
    ++w.starts;
    w.pidfd = std::move(pidfd);
    w.channel = std::move(master_end);
    w.channel_in_epoll = channels_armed_;
    w.inbuf.clear();
    w.state = WorkerState::kRunning;
    ++running_;
    ++stats_.started;
    PoolEvent e;
    e.kind = PoolEvent::Kind::kStarted;
    e.index = w.index;
    e.pid = pid;
    e.incarnation = incarnation;
    PushEvent(std::move(e));
    return absl::OkStatus();
  }

  void CloseChannel(Worker& w) {
    if (w.channel_in_epoll) EpollDel(w.channel.get());
    w.channel_in_epoll = false;
    w.channel.reset();
  }

  // Moves complete frames from w.inbuf to results_. False when the stream
  // is corrupt (the caller closes the channel).
  bool ParseFrames(Worker& w) {
    size_t pos = 0;
    bool ok = true;
    while (w.inbuf.size() - pos >= sizeof(FrameHeader)) {
      const std::optional<uint32_t> length =
          ParseFrameHeader(w.inbuf.data() + pos);
      if (!length.has_value() || *length > options_.max_message_bytes) {
        ok = false;
        break;
      }
      const size_t frame = sizeof(FrameHeader) + *length;
      if (w.inbuf.size() - pos < frame) {
        // Make room for the rest of this frame in one allocation.
        w.inbuf.reserve(pos + frame);
        break;
      }
      WorkerResult r;
      r.index = w.index;
      r.pid = w.pid;
      r.incarnation = w.incarnation;
      r.bytes.assign(w.inbuf, pos + sizeof(FrameHeader), *length);
      partial_bytes_ -= frame;
      result_bytes_ += *length;
      results_.push_back(std::move(r));
      ++stats_.results;
      pos += frame;
    }
    w.inbuf.erase(0, pos);
    // Do not keep the capacity of one large frame for the worker's lifetime.
    if (w.inbuf.empty() && w.inbuf.capacity() > (size_t{1} << 20)) {
      w.inbuf.shrink_to_fit();
    }
    return ok;
  }

  // Reads what the channel holds. Stops at EAGAIN, at EOF, or (unless
  // `drain`) when the result buffer is full.
  void ReadChannel(Worker& w, bool drain) {
    constexpr size_t kChunk = 64 * 1024;
    while (w.channel.valid() && (drain || !BackPressured())) {
      const size_t old = w.inbuf.size();
      w.inbuf.resize(old + kChunk);
      const ssize_t n = RetryOnEintr(
          [&] { return read(w.channel.get(), w.inbuf.data() + old, kChunk); });
      w.inbuf.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n > 0) {
        partial_bytes_ += static_cast<size_t>(n);
        if (!ParseFrames(w)) {
          ChannelError(w,
                       "a frame header failed its check (the stream lost "
                       "its framing) or exceeds max_message_bytes");
          return;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) {
        ChannelError(w, ErrnoStatus(errno, "read(result channel)").ToString());
        return;
      }
      // EOF: the worker exited (or closed its end). A partial frame is
      // dropped when the worker is reaped.
      CloseChannel(w);
    }
    UpdateChannelArming();
  }

  void ChannelError(Worker& w, std::string detail) {
    ++stats_.channel_errors;
    partial_bytes_ -= w.inbuf.size();
    w.inbuf.clear();
    CloseChannel(w);
    UpdateChannelArming();
    PoolEvent e;
    e.kind = PoolEvent::Kind::kChannelError;
    e.index = w.index;
    e.pid = w.pid;
    e.incarnation = w.incarnation;
    e.detail = std::move(detail);
    PushEvent(std::move(e));
  }

  // Prunes death times older than the crash-loop window.
  void Prune(std::deque<int64_t>& deaths, int64_t now) const {
    const int64_t window = absl::ToInt64Nanoseconds(options_.crash_loop_window);
    while (!deaths.empty() && now - deaths.front() > window) deaths.pop_front();
  }

  // backoff_initial * 2^(k-1), capped at backoff_max; k = the worker's
  // abnormal exits within the window (this one included).
  absl::Duration Backoff(const Worker& w) const {
    absl::Duration d = options_.backoff_initial;
    for (size_t k = 1; k < w.deaths.size() && d < options_.backoff_max; ++k) {
      d *= 2;
    }
    return std::min(d, options_.backoff_max);
  }

  // Records a failure (abnormal exit or failed spawn) of `w`; true when the
  // crash-loop rule fires.
  bool RecordFailure(Worker& w, int64_t now) {
    w.deaths.push_back(now);
    Prune(w.deaths, now);
    deaths_.push_back(now);
    Prune(deaths_, now);
    return options_.crash_loop_deaths > 0 &&
           deaths_.size() >= static_cast<size_t>(options_.crash_loop_deaths);
  }

  void EnterCrashLoop() {
    crash_loop_ = true;
    for (Worker& w : workers_) {
      if (w.state == WorkerState::kRespawnPending) w.state = WorkerState::kHeld;
    }
    ArmTimer();
    PoolEvent e;
    e.kind = PoolEvent::Kind::kCrashLoop;
    e.detail = absl::StrCat(deaths_.size(), " abnormal exits within ",
                            absl::FormatDuration(options_.crash_loop_window),
                            "; respawning stopped until ResumeRespawning()");
    PushEvent(std::move(e));
  }

  struct AfterExitResult {
    std::optional<absl::Duration> respawn_in;  // when a respawn is scheduled
    bool crash_loop_now = false;  // this failure fired the crash-loop rule
  };

  // Decides what follows an exit (or failed spawn) of `w`: a scheduled
  // respawn, kHeld, or kFinished. The caller reports the exit, then calls
  // EnterCrashLoop() if told to, so the events come in that order.
  AfterExitResult AfterExit(Worker& w, bool abnormal, int64_t now) {
    AfterExitResult result;
    result.crash_loop_now =
        abnormal && !stopping_ && RecordFailure(w, now) && !crash_loop_;
    const bool wants =
        !stopping_ &&
        (options_.respawn == RespawnPolicy::kAlways ||
         (options_.respawn == RespawnPolicy::kOnFailure && abnormal));
    if (!wants) {
      w.state = WorkerState::kFinished;
    } else if (crash_loop_ || result.crash_loop_now) {
      w.state = WorkerState::kHeld;
    } else {
      const absl::Duration delay = abnormal ? Backoff(w) : absl::ZeroDuration();
      w.state = WorkerState::kRespawnPending;
      w.respawn_at_ns = now + absl::ToInt64Nanoseconds(delay);
      result.respawn_in = delay;
    }
    return result;
  }

  void Reap(Worker& w, bool block) {
    // Frames completed before the death are results like any other.
    if (w.channel.valid()) ReadChannel(w, /*drain=*/true);
    int status = 0;
    const pid_t r = RetryOnEintr(
        [&] { return waitpid(w.pid, &status, block ? 0 : WNOHANG); });
    if (r == 0) return;  // not yet (cannot happen once the pidfd is readable)
    const absl::Time reaped_at = absl::Now();
    ExitStatus exit;
    if (r == w.pid) exit = FromWaitStatus(status);  // else ECHILD: kUnknown
    const int64_t now = MonotonicNanos();
    // Locks the worker held in any table or lock arena this process has
    // open are recoverable from this moment.
    ProcessRegistry::MarkDeadInAllOpen(w.pid, w.start_time);

    PoolEvent e;
    e.kind = PoolEvent::Kind::kExited;
    e.index = w.index;
    e.pid = w.pid;
    e.incarnation = w.incarnation;
    e.exit = exit;
    e.time = reaped_at;
    e.during_stop = stopping_;
    e.torn_bytes_discarded = w.inbuf.size();
    if (!w.inbuf.empty()) {
      ++stats_.torn_results_discarded;
      partial_bytes_ -= w.inbuf.size();
      w.inbuf.clear();
      w.inbuf.shrink_to_fit();
    }
    CloseChannel(w);
    EpollDel(w.pidfd.get());
    w.pidfd.reset();
    --running_;
    ++stats_.exited;
    w.last_exit = exit;
    e.abnormal = !exit.clean() && !stopping_;
    if (e.abnormal) {
      ++w.abnormal_exits;
      ++stats_.abnormal_exits;
    }
    const AfterExitResult after = AfterExit(w, e.abnormal, now);
    e.respawn_in = after.respawn_in;
    PushEvent(std::move(e));
    if (after.crash_loop_now) EnterCrashLoop();
    UpdateChannelArming();
  }

  void RespawnDue() {
    if (stopping_ || crash_loop_) return;
    const int64_t now = MonotonicNanos();
    for (Worker& w : workers_) {
      if (w.state != WorkerState::kRespawnPending || w.respawn_at_ns > now) {
        continue;
      }
      if (crash_loop_) break;
      absl::Status st = Spawn(w);
      if (st.ok()) continue;
      ++stats_.spawn_failures;
      PoolEvent e;
      e.kind = PoolEvent::Kind::kSpawnFailed;
      e.index = w.index;
      e.incarnation = w.starts;
      e.detail = std::string(st.message());
      PushEvent(std::move(e));
      // A failed spawn counts like an abnormal exit: retried with backoff,
      // and a master that cannot fork at all ends up in the crash loop.
      if (AfterExit(w, /*abnormal=*/true, now).crash_loop_now) {
        EnterCrashLoop();
      }
    }
    ArmTimer();
  }

  void ArmTimer() {
    int64_t earliest = INT64_MAX;
    if (!stopping_ && !crash_loop_) {
      for (const Worker& w : workers_) {
        if (w.state == WorkerState::kRespawnPending) {
          earliest = std::min(earliest, w.respawn_at_ns);
        }
      }
    }
    itimerspec spec{};
    if (earliest != INT64_MAX) {
      // An absolute time in the past fires at once; 0 would disarm.
      earliest = std::max<int64_t>(earliest, 1);
      spec.it_value.tv_sec = static_cast<time_t>(earliest / 1'000'000'000);
      spec.it_value.tv_nsec = static_cast<long>(earliest % 1'000'000'000);
    }
    // Cannot fail with a valid timerfd and a normalized time.
    timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  void Dispatch(uint64_t tag) {
    const uint64_t kind = TagKind(tag);
    if (kind == kTagTimer) {
      uint64_t expirations;
      (void)!read(timer_.get(), &expirations, sizeof(expirations));
      return;  // RespawnDue runs after every batch
    }
    const int index = TagIndex(tag);
    if (index < 0 || index >= size()) return;
    Worker& w = workers_[static_cast<size_t>(index)];
    if (w.incarnation != TagIncarnation(tag)) return;  // stale
    if (kind == kTagPidfd && w.pidfd.valid()) {
      Reap(w, /*block=*/false);
    } else if (kind == kTagChannel && w.channel.valid()) {
      ReadChannel(w, /*drain=*/false);
    }
  }

  // Waits until `deadline` for at least one event, handles every ready one,
  // then starts due respawns.
  absl::Status Pump(const Deadline& deadline) {
    epoll_event events[64];
    const int n = RetryOnEintr([&] {
      return epoll_wait(epoll_.get(), events, 64, TimeoutMs(deadline));
    });
    if (n < 0) return ErrnoStatus(errno, "epoll_wait(worker pool)");
    for (int i = 0; i < n; ++i) Dispatch(events[i].data.u64);
    RespawnDue();
    return absl::OkStatus();
  }

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
  std::deque<int64_t> deaths_;  // abnormal exits in the window, all workers
  int running_ = 0;
  bool crash_loop_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  PoolStats stats_;
};

}  // namespace internal

// ---- WorkerPool -------------------------------------------------------------

absl::StatusOr<WorkerPool> WorkerPool::Start(const WorkerPoolOptions& options,
                                             WorkerFunction function) {
  SHMKIT_RETURN_IF_ERROR(ValidateOptions(options));
  if (!function) {
    return absl::InvalidArgumentError("WorkerPool::Start: empty function");
  }
  SHMKIT_RETURN_IF_ERROR(CheckSigchld());
  {
    UniqueFd probe(PidfdOpen(getpid()));
    if (!probe.valid()) {
      if (errno == ENOSYS) {
        return absl::UnimplementedError(
            "pidfd_open is not available (Linux >= 5.3 is required)");
      }
      return ErrnoStatus(errno, "pidfd_open(self)");
    }
  }
  auto impl =
      std::make_unique<internal::WorkerPoolImpl>(options, std::move(function));
  SHMKIT_RETURN_IF_ERROR(impl->Init());
  SHMKIT_RETURN_IF_ERROR(impl->StartAll());
  return WorkerPool(std::move(impl));
}

WorkerPool::WorkerPool(std::unique_ptr<internal::WorkerPoolImpl> impl)
    : impl_(std::move(impl)) {}
WorkerPool::WorkerPool(WorkerPool&&) noexcept = default;
WorkerPool& WorkerPool::operator=(WorkerPool&&) noexcept = default;
WorkerPool::~WorkerPool() = default;

absl::StatusOr<WorkerResult> WorkerPool::Collect() {
  return impl_->CollectFor(absl::InfiniteDuration(), false);
}
absl::StatusOr<WorkerResult> WorkerPool::CollectFor(absl::Duration timeout) {
  return impl_->CollectFor(timeout, false);
}
absl::StatusOr<WorkerResult> WorkerPool::TryCollect() {
  return impl_->CollectFor(absl::ZeroDuration(), true);
}
absl::StatusOr<PoolEvent> WorkerPool::NextEventFor(absl::Duration timeout) {
  return impl_->NextEventFor(timeout);
}
absl::Status WorkerPool::Supervise(absl::Duration timeout) {
  return impl_->Supervise(timeout);
}
int WorkerPool::fd() const { return impl_->fd(); }
absl::StatusOr<StopReport> WorkerPool::Stop(absl::Duration grace) {
  return impl_->Stop(grace);
}
absl::StatusOr<StopReport> WorkerPool::Stop() {
  return impl_->Stop(impl_->stop_grace());
}
absl::Status WorkerPool::ResumeRespawning() {
  return impl_->ResumeRespawning();
}
int WorkerPool::size() const { return impl_->size(); }
std::vector<WorkerInfo> WorkerPool::workers() const { return impl_->Workers(); }
PoolStats WorkerPool::stats() const { return impl_->Stats(); }

}  // namespace shmkit
