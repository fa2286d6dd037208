#include "shmkit/ipc/internal/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace shmkit::internal {

bool FutexWaitUntil(const void* addr, uint32_t expected, int64_t until_ns) {
  timespec abs_time;
  timespec* timeout = nullptr;
  if (until_ns != INT64_MAX) {
    abs_time.tv_sec = static_cast<time_t>(until_ns / 1'000'000'000);
    abs_time.tv_nsec = static_cast<long>(until_ns % 1'000'000'000);
    timeout = &abs_time;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
  // caller looping on spurious wake-ups never extends its timeout.
  const long rc = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expected, timeout,
                          nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return false;
  // EAGAIN: the value already differed. EINTR: a signal. Both: re-check.
  return true;
}

void FutexWake(const void* addr, int count) {
  syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

}  // namespace shmkit::internal
