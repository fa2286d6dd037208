// System V limits, read from /proc/sys/kernel at run time (never hard-coded:
// they differ between machines and can change while we run).
#ifndef SHMKIT_IPC_KERNEL_LIMITS_H_
#define SHMKIT_IPC_KERNEL_LIMITS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit {

// Reads the single-number limit /proc/sys/kernel/<name>, e.g. "shmmax",
// "shmall", "shmmni", "msgmax", "msgmnb", "msgmni".
absl::StatusOr<uint64_t> ReadKernelLimit(absl::string_view name);

// The four numbers of /proc/sys/kernel/sem.
struct SemLimits {
  uint64_t semmsl = 0;  // max semaphores per set
  uint64_t semmns = 0;  // max semaphores system-wide
  uint64_t semopm = 0;  // max operations per semop call
  uint64_t semmni = 0;  // max semaphore sets system-wide
};
absl::StatusOr<SemLimits> ReadSemLimits();

// The largest value a System V semaphore can hold. Unlike the limits above it
// is a constant compiled into the kernel (SEMVMX in linux/sem.h), not a
// tunable, so it has no /proc entry.
inline constexpr int kSemaphoreValueMax = 32767;

// The error for a request refused because of a kernel limit: names the
// setting, its current value and what was asked, e.g.
// "segment of 9000 bytes exceeds kernel.shmmax = 4096 (raise it with sysctl
// kernel.shmmax=...)". Code ResourceExhausted.
absl::Status KernelLimitError(absl::string_view what, absl::string_view setting,
                              uint64_t value, absl::string_view asked);

}  // namespace shmkit

#endif  // SHMKIT_IPC_KERNEL_LIMITS_H_
