#include "test_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"

namespace shmkit::testing {

IpcKey UniqueKey() {
  static std::atomic<uint32_t> counter{0};
  const uint32_t n = counter.fetch_add(1);
  // 0x5e | 16 bits of pid | 8 bits of counter. Pids above 2^16 or more than
  // 256 keys per process may collide with another test; creation uses
  // IPC_EXCL, so a collision fails loudly (AlreadyExists), never silently.
  const uint32_t value = (0x5eu << 24) |
                         ((static_cast<uint32_t>(getpid()) & 0xffff) << 8) |
                         (n & 0xff);
  return IpcKey::FromNumber(static_cast<key_t>(value));
}

pid_t ForkChild(const std::function<int()>& body) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 99;
    code = body();
    _exit(code);
  }
  return pid;
}

std::optional<ChildExit> WaitChild(pid_t pid, absl::Duration timeout) {
  const internal::Deadline deadline = internal::Deadline::In(timeout);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      ChildExit e;
      e.exited = WIFEXITED(status);
      e.code = e.exited ? WEXITSTATUS(status) : -1;
      e.signaled = WIFSIGNALED(status);
      e.signal = e.signaled ? WTERMSIG(status) : 0;
      return e;
    }
    if (r == -1 && errno != EINTR) return std::nullopt;
    if (deadline.Expired()) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return std::nullopt;
    }
    usleep(1000);
  }
}

::testing::AssertionResult ExitedWith(pid_t pid, int code,
                                      absl::Duration timeout) {
  std::optional<ChildExit> e = WaitChild(pid, timeout);
  if (!e.has_value()) {
    return ::testing::AssertionFailure()
           << "child " << pid << " did not exit within "
           << absl::FormatDuration(timeout) << " (killed)";
  }
  if (e->signaled) {
    return ::testing::AssertionFailure()
           << "child " << pid << " was killed by signal " << e->signal;
  }
  if (!e->exited || e->code != code) {
    return ::testing::AssertionFailure() << "child " << pid << " exited with "
                                         << e->code << ", expected " << code;
  }
  return ::testing::AssertionSuccess();
}

SyncPipe::SyncPipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) abort();
  read_.reset(fds[0]);
  write_.reset(fds[1]);
}

void SyncPipe::Signal(char byte) {
  while (write(write_.get(), &byte, 1) == -1 && errno == EINTR) {
  }
}

std::optional<char> SyncPipe::Wait(absl::Duration timeout) {
  pollfd p{read_.get(), POLLIN, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  int r;
  do {
    r = poll(&p, 1, ms);
  } while (r == -1 && errno == EINTR);
  if (r != 1) return std::nullopt;
  char byte;
  if (read(read_.get(), &byte, 1) != 1) return std::nullopt;
  return byte;
}

bool WaitUntilAsleep(pid_t tid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string path = absl::StrCat("/proc/", tid, "/stat");
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return false;  // gone
    // Field 3 (state) follows the last ')' (comm may hold anything).
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() &&
        line[paren + 2] == 'S') {
      return true;
    }
    sched_yield();
  }
  return false;
}

}  // namespace shmkit::testing
