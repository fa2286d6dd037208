// WorkerPool's supervision: the master's event loop, reaping, stopping, and
// the public class's forwarders. The design note and the map of the other
// files are in internal/worker_pool_impl.h.
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
#include "shmkit/ipc/pool/internal/respawn_rules.h"
#include "shmkit/ipc/pool/internal/worker_pool_impl.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {

using internal::Deadline;
using internal::ErrnoStatus;
using internal::RetryOnEintr;

namespace {

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

// ---- master side ------------------------------------------------------------

namespace internal {

WorkerPoolImpl::WorkerPoolImpl(const WorkerPoolOptions& options,
                               WorkerFunction function)
    : options_(options),
      function_(std::move(function)),
      master_pid_(getpid()),
      rules_(options) {
  workers_.resize(static_cast<size_t>(options.workers));
  for (int i = 0; i < options.workers; ++i) workers_[i].index = i;
}

WorkerPoolImpl::~WorkerPoolImpl() {
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

absl::Status WorkerPoolImpl::Init() {
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

absl::Status WorkerPoolImpl::StartAll() {
  for (Worker& w : workers_) {
    if (absl::Status st = Spawn(w); !st.ok()) {
      // Workers forked so far are killed and reaped before returning.
      (void)Stop(absl::ZeroDuration());
      return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkerResult> WorkerPoolImpl::CollectFor(absl::Duration timeout,
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

absl::StatusOr<PoolEvent> WorkerPoolImpl::NextEventFor(absl::Duration timeout) {
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
      return absl::DeadlineExceededError(
          absl::StrCat("no pool event within ", absl::FormatDuration(timeout)));
    }
    waited = true;
    SHMKIT_RETURN_IF_ERROR(Pump(deadline));
  }
}

absl::Status WorkerPoolImpl::Supervise(absl::Duration timeout) {
  return Pump(Deadline::In(timeout));
}

absl::StatusOr<StopReport> WorkerPoolImpl::Stop(absl::Duration grace) {
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

absl::Status WorkerPoolImpl::ResumeRespawning() {
  if (stopping_) {
    return absl::FailedPreconditionError(
        "the pool was stopped; it cannot respawn workers");
  }
  crash_loop_ = false;
  rules_.Forget();
  const int64_t now = MonotonicNanos();
  for (Worker& w : workers_) {
    if (w.state == WorkerState::kHeld) {
      w.state = WorkerState::kRespawnPending;
      w.respawn_at_ns = now;
    }
  }
  RespawnDue();
  return absl::OkStatus();
}

std::vector<WorkerInfo> WorkerPoolImpl::Workers() const {
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

PoolStats WorkerPoolImpl::Stats() const {
  PoolStats s = stats_;
  s.buffered_bytes = result_bytes_ + partial_bytes_;
  s.running = running_;
  s.crash_loop = crash_loop_;
  return s;
}

absl::Status WorkerPoolImpl::EpollAdd(int fd, uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(errno, absl::StrCat("epoll_ctl(ADD, fd ", fd, ")"));
  }
  return absl::OkStatus();
}

void WorkerPoolImpl::EnterCrashLoop() {
  crash_loop_ = true;
  for (Worker& w : workers_) {
    if (w.state == WorkerState::kRespawnPending) w.state = WorkerState::kHeld;
  }
  ArmTimer();
  PoolEvent e;
  e.kind = PoolEvent::Kind::kCrashLoop;
  e.detail = absl::StrCat(rules_.recent_deaths(), " abnormal exits within ",
                          absl::FormatDuration(options_.crash_loop_window),
                          "; respawning stopped until ResumeRespawning()");
  PushEvent(std::move(e));
}

RespawnRules::Decision WorkerPoolImpl::AfterExit(Worker& w, bool abnormal,
                                                 int64_t now) {
  const RespawnRules::Decision d =
      rules_.AfterExit(w.index, abnormal, stopping_, crash_loop_, now);
  w.state = d.state;
  if (d.respawn_in.has_value()) {
    w.respawn_at_ns = now + absl::ToInt64Nanoseconds(*d.respawn_in);
  }
  return d;
}

void WorkerPoolImpl::Reap(Worker& w, bool block) {
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
  const RespawnRules::Decision after = AfterExit(w, e.abnormal, now);
  e.respawn_in = after.respawn_in;
  PushEvent(std::move(e));
  if (after.crash_loop_now) EnterCrashLoop();
  UpdateChannelArming();
}

void WorkerPoolImpl::RespawnDue() {
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

void WorkerPoolImpl::ArmTimer() {
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

void WorkerPoolImpl::Dispatch(uint64_t tag) {
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

absl::Status WorkerPoolImpl::Pump(const Deadline& deadline) {
  epoll_event events[64];
  const int n = RetryOnEintr([&] {
    return epoll_wait(epoll_.get(), events, 64, deadline.PollTimeoutMs());
  });
  if (n < 0) return ErrnoStatus(errno, "epoll_wait(worker pool)");
  for (int i = 0; i < n; ++i) Dispatch(events[i].data.u64);
  RespawnDue();
  return absl::OkStatus();
}

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
    UniqueFd probe(internal::PidfdOpen(getpid()));
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
