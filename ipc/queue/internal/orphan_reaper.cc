#include "shmkit/ipc/queue/internal/orphan_reaper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit::internal {
namespace {

// Runs in the reaper process: only async-signal-safe calls from here on (the
// parent may have had other threads when it forked).
[[noreturn]] void RunReaper(int guard, const ReaperTask& task,
                            const char* fifo_path, const char* dir_path) {
  setsid();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);
  if (guard > 0) close_range(0, static_cast<unsigned>(guard) - 1, 0);
  close_range(static_cast<unsigned>(guard) + 1, ~0u, 0);
  if (chdir("/") != 0) {
    // Not fatal: the working directory only pins a mount.
  }
  // Tell the creator we hold nothing of its any more (until now we had a
  // copy of every descriptor it had, e.g. other pipes' read ends).
  const char ready = 'r';
  if (write(guard, &ready, 1) != 1) _exit(1);
  char byte;
  const ssize_t r =
      internal::RetryOnEintr([&] { return read(guard, &byte, 1); });
  if (r == 1) _exit(0);  // removed on purpose: stand down
  // 0: every holder is gone; -1: cannot wait. Either way: clean up now.
  if (task.msqid >= 0) {
    msqid_ds ds;
    if (msgctl(task.msqid, IPC_STAT, &ds) == 0 &&
        ds.msg_perm.__key == IPC_PRIVATE && ds.msg_perm.cuid == task.msq_cuid) {
      msgctl(task.msqid, IPC_RMID, nullptr);
    }
  }
  if (fifo_path != nullptr) {
    struct stat st;
    if (lstat(fifo_path, &st) == 0 && S_ISFIFO(st.st_mode)) unlink(fifo_path);
  }
  if (dir_path != nullptr) rmdir(dir_path);
  if (task.shmid >= 0) {
    shmid_ds ds;
    if (shmctl(task.shmid, IPC_STAT, &ds) == 0 &&
        ds.shm_perm.__key == task.shm_key) {
      shmctl(task.shmid, IPC_RMID, nullptr);
    }
  }
  _exit(0);
}

}  // namespace

absl::StatusOr<UniqueFd> StartOrphanReaper(const ReaperTask& task) {
  // A socket pair rather than a pipe: StandDown sends with MSG_NOSIGNAL, so
  // a reaper that is already gone can never raise SIGPIPE here.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoStatus(errno, "socketpair(orphan reaper guard)");
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  // Everything the reaper needs, prepared before fork (no allocation after).
  const char* fifo = task.fifo_path.empty() ? nullptr : task.fifo_path.c_str();
  const char* dir = task.dir_path.empty() ? nullptr : task.dir_path.c_str();
  // _Fork: no atfork handlers, async-signal-safe, so a multi-threaded caller
  // is fine.
  const pid_t child = _Fork();
  if (child < 0) return ErrnoStatus(errno, "fork(orphan reaper)");
  if (child == 0) {
    const pid_t reaper = _Fork();
    if (reaper != 0) _exit(reaper < 0 ? 1 : 0);
    close(write_end.get());
    RunReaper(read_end.get(), task, fifo, dir);
  }
  int status = 0;
  (void)internal::RetryOnEintr([&] { return waitpid(child, &status, 0); });
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        "could not start the orphan reaper (its fork failed)");
  }
  // Wait until the reaper has closed its copies of our descriptors, so a
  // caller that closes an end right after this returns is not fooled by a
  // copy still open in the reaper.
  read_end.reset();
  pollfd p{write_end.get(), POLLIN, 0};
  char ready = 0;
  if (RetryOnEintr([&] { return poll(&p, 1, 10'000); }) != 1 ||
      RetryOnEintr([&] { return read(write_end.get(), &ready, 1); }) != 1 ||
      ready != 'r') {
    return absl::InternalError(
        "the orphan reaper did not report ready within 10 s");
  }
  return write_end;
}

void StandDownOrphanReaper(const UniqueFd& guard) {
  if (!guard.valid()) return;
  const char byte = 'x';
  // Nobody else writes to the guard, so one byte never blocks.
  (void)RetryOnEintr(
      [&] { return send(guard.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT); });
}

}  // namespace shmkit::internal
