// Facts about processes read from the kernel: start times (to tell a process
// from a later one that reused its pid) and liveness.
#ifndef SHMKIT_IPC_INTERNAL_PROC_H_
#define SHMKIT_IPC_INTERNAL_PROC_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace shmkit::internal {

// Start time of `pid` in clock ticks after boot: field 22 of /proc/<pid>/stat.
// NotFound when the process does not exist. A zombie still has one.
absl::StatusOr<uint64_t> ProcessStartTime(pid_t pid);

// The calling process's pid and start time, cached per process (refreshed in
// the child after fork), so hot paths do not make system calls.
pid_t SelfPid();
uint64_t SelfStartTime();

// A counter bumped in every fork child (pthread_atfork, registered by
// proc.cc). Per-thread caches of per-process state compare it to know they
// were inherited across fork. Inline: it is on the lock fast path.
inline std::atomic<uint64_t> fork_epoch{1};
inline uint64_t ForkEpoch() {
  return fork_epoch.load(std::memory_order_relaxed);
}

// Whether the process `pid` that started at `start_time` still exists.
// Dead: kill(pid, 0) says ESRCH, or the pid now belongs to a process with a
// different start time (pid reuse). Alive: kill succeeds or gives EPERM (it
// exists but belongs to someone else). A zombie is alive until reaped.
// `start_time` 0 means "unknown": only the pid is checked.
bool ProcessAlive(pid_t pid, uint64_t start_time);

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_PROC_H_
