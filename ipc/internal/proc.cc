#include "shmkit/ipc/internal/proc.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit::internal {
namespace {

std::atomic<pid_t> g_self_pid{0};
std::atomic<uint64_t> g_self_start{0};

void ResetAfterFork() {
  g_self_pid.store(0, std::memory_order_relaxed);
  g_self_start.store(0, std::memory_order_relaxed);
  fork_epoch.fetch_add(1, std::memory_order_relaxed);
}

// Registered once, before main, so every fork of a process that links shmkit
// refreshes the cached identity.
const int kAtForkRegistered = pthread_atfork(nullptr, nullptr, &ResetAfterFork);

}  // namespace

absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/stat");
  const int fd =
      RetryOnEintr([&] { return open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH) {
      return absl::NotFoundError(absl::StrCat("no process with pid ", pid));
    }
    return ErrnoStatus(err, absl::StrCat("open(", path, ")"));
  }
  // /proc/<pid>/stat is one line well under 1 KiB (comm is at most 16 bytes).
  char buffer[1024];
  const ssize_t n =
      RetryOnEintr([&] { return read(fd, buffer, sizeof(buffer) - 1); });
  const int read_err = errno;
  close(fd);
  if (n < 0) {
    if (read_err == ESRCH) {
      return absl::NotFoundError(absl::StrCat("no process with pid ", pid));
    }
    return ErrnoStatus(read_err, absl::StrCat("read(", path, ")"));
  }
  absl::string_view line(buffer, static_cast<size_t>(n));
  // Field 2 (comm) is in parentheses and may itself contain spaces and ')':
  // fields after it start after the last ')'.
  const size_t close_paren = line.rfind(')');
  if (close_paren == absl::string_view::npos) {
    return absl::InternalError(absl::StrCat("unparsable ", path));
  }
  // After ") " come field 3 (state) onwards; field 22 is the 20th of those.
  std::vector<absl::string_view> fields =
      absl::StrSplit(line.substr(close_paren + 1), ' ', absl::SkipEmpty());
  uint64_t start = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &start)) {
    return absl::InternalError(absl::StrCat("unparsable field 22 in ", path));
  }
  return start;
}

pid_t SelfPid() {
  (void)kAtForkRegistered;
  pid_t pid = g_self_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = getpid();
    g_self_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

uint64_t SelfStartTime() {
  uint64_t start = g_self_start.load(std::memory_order_relaxed);
  if (start == 0) {
    // Reading our own /proc entry cannot fail short of /proc being absent,
    // in which case 0 ("unknown") makes liveness checks fall back to pids.
    start = ProcessStartTime(SelfPid()).value_or(0);
    g_self_start.store(start, std::memory_order_relaxed);
  }
  return start;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  if (kill(pid, 0) == -1 && errno == ESRCH) return false;
  // Alive, or EPERM (exists, not ours). A different start time means the pid
  // was reused by another process after the one we knew died.
  if (start_time == 0) return true;
  absl::StatusOr<uint64_t> now = ProcessStartTime(pid);
  if (absl::IsNotFound(now.status())) return false;
  if (!now.ok()) return true;  // cannot tell: never declare a live owner dead
  return *now == start_time;
}

}  // namespace shmkit::internal
