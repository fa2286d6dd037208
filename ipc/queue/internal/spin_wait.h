// Bounded spinning before a futex sleep, shared by the ring and the pipe
// queues.
//
// A waiter whose peer runs on another CPU usually sees the change it waits
// for within a few hundred nanoseconds, far sooner than a futex sleep and
// wake-up (several microseconds here, tens when the wake-up crosses CPUs).
// A waiter whose peer needs *this* CPU must get out of the way instead:
// unbounded spinning cost 8 ms per round trip in that case (the peer runs
// only when our time slice ends). So: pure CpuRelax() spinning for at most
// kPureSpinNs, then sched_yield() between checks (which runs a peer queued
// on this CPU at once, and costs little when there is none) until the
// budget is spent; the caller then sleeps.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_SPIN_WAIT_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_SPIN_WAIT_H_

#include <sched.h>

#include <algorithm>
#include <cstdint>

#include "shmkit/ipc/internal/cpu_relax.h"
#include "shmkit/ipc/internal/deadline.h"

namespace shmkit::internal {

inline constexpr int64_t kPureSpinNs = 2'000;

// Calls `done()` until it returns true (then returns true), for at most
// `budget_ns` and never past `deadline_ns` (CLOCK_MONOTONIC). False when
// the budget ran out first.
template <typename Done>
bool SpinWait(int64_t budget_ns, int64_t deadline_ns, Done done) {
  if (budget_ns <= 0) return false;
  const int64_t start = MonotonicNanos();
  const int64_t pure_until = start + std::min(budget_ns, kPureSpinNs);
  const int64_t until = std::min(start + budget_ns, deadline_ns);
  for (int64_t now = start; now < until; now = MonotonicNanos()) {
    if (now < pure_until) {
      for (int i = 0; i < 8; ++i) CpuRelax();
    } else {
      sched_yield();
    }
    if (done()) return true;
  }
  return false;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_SPIN_WAIT_H_
