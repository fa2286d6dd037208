#include "shmkit/ipc/internal/proc.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit::internal {
namespace {

std::atomic<pid_t> g_self_pid{0};
std::atomic<uint64_t> g_self_start{0};
// UINT64_MAX: not read yet (0 is a valid answer: "no pidfs").
std::atomic<uint64_t> g_self_identity{UINT64_MAX};

// statfs f_type of pidfs (linux/magic.h PID_FS_MAGIC; spelled out so that
// older kernel headers build).
constexpr int64_t kPidFsMagic = 0x50494446;

void ResetAfterFork() {
  g_self_pid.store(0, std::memory_order_relaxed);
  g_self_start.store(0, std::memory_order_relaxed);
  g_self_identity.store(UINT64_MAX, std::memory_order_relaxed);
  fork_epoch.fetch_add(1, std::memory_order_relaxed);
}

// Registered once, before main, so every fork of a process that links shmkit
// refreshes the cached identity.
const int kAtForkRegistered = pthread_atfork(nullptr, nullptr, &ResetAfterFork);

}  // namespace

absl::StatusOr<ProcStat> ReadProcStat(pid_t pid) {
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
  // After ") " come field 3 (state) onwards: field k is fields[k - 3].
  std::vector<absl::string_view> fields =
      absl::StrSplit(line.substr(close_paren + 1), ' ', absl::SkipEmpty());
  ProcStat stat;
  if (fields.size() < 20 || fields[0].size() != 1 ||
      !absl::SimpleAtoi(fields[17], &stat.threads) ||
      !absl::SimpleAtoi(fields[19], &stat.start_time)) {
    return absl::InternalError(
        absl::StrCat("unparsable fields 3, 20 or 22 in ", path));
  }
  stat.state = fields[0][0];
  return stat;
}

absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) return stat.status();
  return stat->start_time;
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

absl::StatusOr<uint64_t> ProcessIdentity(pid_t pid) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    const int err = errno;
    if (err == ESRCH) {
      return absl::NotFoundError(absl::StrCat("no process with pid ", pid));
    }
    if (err == ENOSYS) return 0;  // no pidfds at all
    return ErrnoStatus(err, absl::StrCat("pidfd_open(", pid, ")"));
  }
  struct statfs fs;
  struct stat st;
  const bool pidfs = fstatfs(fd, &fs) == 0 &&
                     static_cast<int64_t>(fs.f_type) == kPidFsMagic;
  const bool stated = pidfs && fstat(fd, &st) == 0;
  close(fd);
  return stated ? static_cast<uint64_t>(st.st_ino) : 0;
}

uint64_t SelfIdentity() {
  uint64_t id = g_self_identity.load(std::memory_order_relaxed);
  if (id == UINT64_MAX) {
    // Our own pid exists; on an error 0 ("unknown") falls back to the
    // start time.
    id = ProcessIdentity(SelfPid()).value_or(0);
    g_self_identity.store(id, std::memory_order_relaxed);
  }
  return id;
}

bool ProcessAlive(pid_t pid, uint64_t start_time, uint64_t identity) {
  if (pid <= 0) return false;
  if (kill(pid, 0) == -1 && errno == ESRCH) return false;
  // It exists (kill succeeded or gave EPERM: not ours), maybe as a zombie.
  const absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  // No /proc entry: it was reaped since the kill, or /proc hides it from us
  // (mounted with hidepid, another user's process). Only kill can tell
  // which; hidden is "cannot tell" below.
  if (absl::IsNotFound(stat.status()) && kill(pid, 0) == -1 &&
      errno == ESRCH) {
    return false;
  }
  // Exited: every thread has left (the leader is a zombie and the only one
  // counted) and only the parent's wait remains; it never runs again. A
  // zombie leader with threads still counted is a process whose main thread
  // called pthread_exit: alive.
  if (stat.ok() && (stat->state == 'Z' || stat->state == 'X') &&
      stat->threads <= 1) {
    return false;
  }
  // Another identity or another start time means the pid was reused by
  // another process after the one we knew died (either fact of a live
  // process never changes).
  if (identity != 0) {
    absl::StatusOr<uint64_t> now = ProcessIdentity(pid);
    if (absl::IsNotFound(now.status())) return false;
    if (now.ok() && *now != 0 && *now != identity) return false;
    // Same identity, or cannot tell this way: the start time has its say.
  }
  if (start_time == 0) return true;
  if (!stat.ok()) return true;  // cannot tell: never declare a live owner dead
  return stat->start_time == start_time;
}

}  // namespace shmkit::internal
