// Forking a worker (WorkerPoolImpl::Spawn) and what the child does before
// the user function (RunChild): only async-signal-safe calls. See
// worker_pool_impl.h for the design.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/pool/internal/worker_pool_impl.h"

namespace shmkit::internal {
namespace {

// Exit code of a worker whose master died before PR_SET_PDEATHSIG took
// effect (nobody reads it: the master is gone).
constexpr int kExitMasterGone = 1;

}  // namespace

void WorkerPoolImpl::RunChild(const ChildPlan& plan) noexcept {
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

absl::Status WorkerPoolImpl::Spawn(Worker& w) {
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
  absl::Status st = EpollAdd(pidfd.get(), Tag(kTagPidfd, w.index, incarnation));
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

}  // namespace shmkit::internal
