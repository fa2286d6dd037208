// Facts about processes read from the kernel: start times (to tell a process
// from a later one that reused its pid) and liveness.
#ifndef SHMKIT_IPC_INTERNAL_PROC_H_
#define SHMKIT_IPC_INTERNAL_PROC_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace shmkit::internal {

// What /proc/<pid>/stat says of a process, the fields liveness needs.
struct ProcStat {
  char state = '?';         // field 3: R, S, D, T, Z (zombie), X (dead)...
  int64_t threads = 0;      // field 20: threads counted, a zombie leader too
  uint64_t start_time = 0;  // field 22: clock ticks after boot
};
// NotFound when the process does not exist (a zombie still exists).
absl::StatusOr<ProcStat> ReadProcStat(pid_t pid);

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

// The identity of process `pid` for the life of the system: the inode number
// of a pidfd for it on pidfs (Linux 6.9 and later), which the kernel draws
// from a 64-bit counter for every new process and never gives to another
// process before reboot. Unlike the start time, which counts clock ticks
// (10 ms at CLK_TCK 100), it tells apart two processes that had the same pid
// within one tick. 0 when the kernel has no pidfs (pidfd_open missing, or
// pidfds that are anonymous inodes: every one has the same number). NotFound
// when no process `pid` exists. A zombie still has its identity.
absl::StatusOr<uint64_t> ProcessIdentity(pid_t pid);
// The calling process's, cached like SelfStartTime.
uint64_t SelfIdentity();

// Whether the process `pid` that started at `start_time`, with identity
// `identity` (ProcessIdentity), is still alive. Dead: kill(pid, 0) says
// ESRCH; or the process has exited and awaits only its parent's wait (a
// zombie whose threads have all exited: it never runs again, so what it
// held can be taken over without waiting for the reap); or the pid now
// belongs to another process: a different identity (when both are known)
// or a different start time. Alive otherwise: kill succeeds or gives EPERM
// (it exists but belongs to someone else), including a stopped process, one
// whose main thread exited while others run, and one whose /proc entry is
// hidden from us (hidepid) when its identity cannot tell. `start_time` 0 means
// "unknown" too: with both unknown only the pid and the zombie state are
// checked, and a pid reused within one clock tick of the death reads as the
// same process (see process_registry.h).
bool ProcessAlive(pid_t pid, uint64_t start_time, uint64_t identity = 0);

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_PROC_H_
