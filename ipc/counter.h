// Counter: a 64-bit signed counter shared between processes, with two
// implementations behind this one interface so a user can switch:
//
//   AtomicCounter  a lock-free atomic in a segment (atomic_counter.h)
//   SemCounter     a value guarded by a System V semaphore (sem_counter.h)
//
// Every operation is atomic with respect to every other on the same counter,
// from any thread of any process that has it.
//
// Range: a counter holds values in [kCounterMin, kCounterMax] = +-2^62
// (about 4.6e18). Add, Sub, Set, CompareAndSet and the initial value outside
// it are OutOfRange and leave the counter as it was; nothing wraps. The range
// is narrower than int64_t so that AtomicCounter::Add can be a single
// fetch_add checked afterwards (no load before it, which costs about 2x
// under contention): within +-2^62, no sum of concurrent increments of up to
// 2^32 each can overflow. One consequence, only at the edge: while an Add
// that overshoots the range is being undone (a few instructions), a
// concurrent reader may see, and a concurrent Add may return, a value that
// includes the undone delta.
#ifndef SHMKIT_IPC_COUNTER_H_
#define SHMKIT_IPC_COUNTER_H_

#include <cstdint>
#include <limits>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"

namespace shmkit {

inline constexpr int64_t kCounterMax = int64_t{1} << 62;
inline constexpr int64_t kCounterMin = -kCounterMax;

// OutOfRange naming `value` and the range, or OK.
inline absl::Status CheckCounterRange(int64_t value, absl::string_view what) {
  if (value >= kCounterMin && value <= kCounterMax) return absl::OkStatus();
  return absl::OutOfRangeError(
      absl::StrCat(what, " ", value, " is outside the counter range [",
                   kCounterMin, ", ", kCounterMax, "]"));
}

// What every call on a counter that was moved from answers.
inline absl::Status CounterMovedFrom(absl::string_view kind) {
  return absl::FailedPreconditionError(
      absl::StrCat(kind, " is empty (it was moved from)"));
}

struct CounterOptions {
  // IPC_PRIVATE (default): shared with processes forked after Create().
  // A key: attachable by unrelated processes, persists until Remove().
  IpcKey key = IpcKey::Private();
  mode_t mode = 0600;
  int64_t initial_value = 0;
};

class Counter {
 public:
  virtual ~Counter() = default;

  // Adds `delta` and returns the new value. OutOfRange when the result
  // would leave the range.
  virtual absl::StatusOr<int64_t> Add(int64_t delta) = 0;
  // Subtracts `delta` and returns the new value. OutOfRange when the result
  // would leave the range.
  absl::StatusOr<int64_t> Sub(int64_t delta) {
    if (delta == std::numeric_limits<int64_t>::min()) {
      return absl::OutOfRangeError(
          absl::StrCat("cannot subtract ", delta, ": its negation overflows"));
    }
    return Add(-delta);
  }
  virtual absl::StatusOr<int64_t> Get() const = 0;
  // OutOfRange (nothing changes) for a value outside the range.
  virtual absl::Status Set(int64_t value) = 0;
  // Sets `desired` if the value is `expected`; returns whether it did.
  // OutOfRange for a `desired` outside the range.
  virtual absl::StatusOr<bool> CompareAndSet(int64_t expected,
                                             int64_t desired) = 0;

  // Blocks until pred(value) holds and returns that value; DeadlineExceeded
  // after `timeout`. Woken by every change (on a shared futex: no polling,
  // and no system call in Add when nobody waits).
  virtual absl::StatusOr<int64_t> WaitUntil(
      absl::FunctionRef<bool(int64_t)> pred, absl::Duration timeout) = 0;
  // Wakes every waiter so it re-checks its predicate.
  virtual absl::Status Wake() = 0;

  // Waits until the value is at least `threshold`.
  absl::StatusOr<int64_t> WaitUntilAtLeast(int64_t threshold,
                                           absl::Duration timeout) {
    return WaitUntil([threshold](int64_t v) { return v >= threshold; },
                     timeout);
  }
  // Waits until the value differs from `from`.
  absl::StatusOr<int64_t> WaitForChange(int64_t from, absl::Duration timeout) {
    return WaitUntil([from](int64_t v) { return v != from; }, timeout);
  }
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_COUNTER_H_
