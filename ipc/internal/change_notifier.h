// Wait-for-a-condition over a value in shared memory, with wake-ups that
// cost nothing when nobody waits.
//
// Two 32-bit words sit next to the watched value: `seq` (the futex) and
// `flag` ("someone may be asleep"). The protocol:
//
//   waiter, each round:  s = seq; flag = 1; v = value;
//                        if pred(v) done; else futex_wait(seq, s)
//   writer, after every change of value:
//                        if flag != 0 and exchange(flag, 0) != 0:
//                            seq += 1; futex_wake(seq, all)
//
// All accesses are sequentially consistent. Either the writer sees the flag
// (and bumps seq after the waiter read it, so the wait returns at once or is
// woken), or the waiter's flag store comes after the writer's exchange, in
// which case its read of `value` sees the change. A writer clearing another
// waiter's flag is harmless for the same reason: that waiter read `seq`
// before setting the flag, so the bump makes its wait return. A waiter killed
// while asleep leaves the flag set; the next writer clears it (one wasted
// wake), so nothing stays degraded.
#ifndef SHMKIT_IPC_INTERNAL_CHANGE_NOTIFIER_H_
#define SHMKIT_IPC_INTERNAL_CHANGE_NOTIFIER_H_

#include <climits>
#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/futex.h"
#include "shmkit/ipc/internal/shared.h"

namespace shmkit::internal {

// After a change of the watched value: wakes sleepers, if any.
inline void NotifyIfWaiting(uint32_t& seq, uint32_t& flag) {
  if (Load(flag, std::memory_order_seq_cst) != 0 &&
      Ref(flag).exchange(0, std::memory_order_seq_cst) != 0) {
    Ref(seq).fetch_add(1, std::memory_order_seq_cst);
    FutexWake(&seq, INT_MAX);
  }
}

// Wakes every sleeper unconditionally (they re-check their predicate).
inline void WakeAll(uint32_t& seq) {
  Ref(seq).fetch_add(1, std::memory_order_seq_cst);
  FutexWake(&seq, INT_MAX);
}

// Blocks until pred(read()) holds (returning that value) or `timeout`
// passes (DeadlineExceeded). `read` loads the watched value.
template <typename T>
absl::StatusOr<T> WaitForCondition(uint32_t& seq, uint32_t& flag,
                                   absl::FunctionRef<T()> read,
                                   absl::FunctionRef<bool(T)> pred,
                                   absl::Duration timeout) {
  const Deadline deadline = Deadline::In(timeout);
  while (true) {
    const uint32_t s = Load(seq, std::memory_order_seq_cst);
    Store(flag, 1u, std::memory_order_seq_cst);
    const T value = read();
    if (pred(value)) return value;
    if (deadline.Expired() || !FutexWaitUntil(&seq, s, deadline.at_ns())) {
      // One last look: the change may have raced with the timeout.
      const T last = read();
      if (pred(last)) return last;
      return absl::DeadlineExceededError(absl::StrCat(
          "condition not met within ", absl::FormatDuration(timeout)));
    }
  }
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_CHANGE_NOTIFIER_H_
