// Shared (cross-process) futex waits and wakes on 32-bit words that live in
// System V shared memory. Never FUTEX_PRIVATE_FLAG: the waiters are in other
// processes, each with its own mapping of the word.
#ifndef SHMKIT_IPC_INTERNAL_FUTEX_H_
#define SHMKIT_IPC_INTERNAL_FUTEX_H_

#include <cstdint>

namespace shmkit::internal {

// Sleeps while the 32-bit word at `addr` equals `expected`, until a wake, the
// absolute CLOCK_MONOTONIC time `until_ns` (INT64_MAX: no limit), or a signal.
// Returns false only when the time ran out; true for a wake, a value that
// already differed or a signal. Callers always re-check their condition in a
// loop, so a spurious return is harmless (this is why EINTR is not retried
// here: the caller's loop is the retry).
bool FutexWaitUntil(const void* addr, uint32_t expected, int64_t until_ns);

// Wakes up to `count` waiters (INT32_MAX for all) sleeping on `addr`.
void FutexWake(const void* addr, int count);

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_FUTEX_H_
