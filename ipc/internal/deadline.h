// Monotonic deadlines for every timed call in shmkit. Timeouts are given as
// absl::Duration; they are turned into an absolute CLOCK_MONOTONIC point once,
// so retries and spurious wake-ups never extend them.
#ifndef SHMKIT_IPC_INTERNAL_DEADLINE_H_
#define SHMKIT_IPC_INTERNAL_DEADLINE_H_

#include <time.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "absl/time/time.h"

namespace shmkit::internal {

// Nanoseconds on CLOCK_MONOTONIC (vDSO: no system call).
inline int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Milliseconds from now to `deadline_ns` (CLOCK_MONOTONIC) for poll() and
// epoll_wait(): rounded up, so that a wait never ends just short of its
// deadline and spins; 0 once it has passed; at most INT_MAX.
inline int PollTimeoutMs(int64_t deadline_ns) {
  const int64_t left = deadline_ns - MonotonicNanos();
  if (left <= 0) return 0;
  const int64_t ms = (left + 999'999) / 1'000'000;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

class Deadline {
 public:
  // A deadline `timeout` from now; absl::InfiniteDuration() never expires,
  // and a negative timeout is treated as zero (already expired).
  static Deadline In(absl::Duration timeout) {
    if (timeout == absl::InfiniteDuration()) return Deadline(INT64_MAX);
    if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
    const int64_t now = MonotonicNanos();
    const int64_t span = absl::ToInt64Nanoseconds(timeout);
    return Deadline(span > INT64_MAX - now ? INT64_MAX : now + span);
  }
  static Deadline Never() { return Deadline(INT64_MAX); }

  bool infinite() const { return at_ns_ == INT64_MAX; }
  bool Expired() const { return !infinite() && MonotonicNanos() >= at_ns_; }
  // Time left, never negative; InfiniteDuration when infinite.
  absl::Duration Remaining() const {
    if (infinite()) return absl::InfiniteDuration();
    const int64_t left = at_ns_ - MonotonicNanos();
    return left <= 0 ? absl::ZeroDuration() : absl::Nanoseconds(left);
  }
  // The remaining time as a relative timespec for calls that take one.
  timespec RemainingTimespec() const {
    const int64_t left = infinite() ? INT64_MAX : at_ns_ - MonotonicNanos();
    if (left <= 0) return timespec{0, 0};
    return timespec{static_cast<time_t>(left / 1'000'000'000),
                    static_cast<long>(left % 1'000'000'000)};
  }
  int64_t at_ns() const { return at_ns_; }
  // The poll()/epoll_wait() timeout: -1 when infinite, else PollTimeoutMs.
  int PollTimeoutMs() const {
    return infinite() ? -1 : ::shmkit::internal::PollTimeoutMs(at_ns_);
  }

 private:
  explicit Deadline(int64_t at_ns) : at_ns_(at_ns) {}
  int64_t at_ns_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_DEADLINE_H_
