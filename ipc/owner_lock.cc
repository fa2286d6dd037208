#include "shmkit/ipc/owner_lock.h"

#include <sched.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/cpu_relax.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/futex.h"

namespace shmkit {
namespace {

// Spin rounds before yielding, and yields before sleeping. Each spin round
// pauses 2^min(round, 6) times: about 2 us of spinning in all on this
// hardware, enough to cover a row copy or an increment by another core.
constexpr int kSpinRounds = 12;
constexpr int kYieldRounds = 4;
// Longest futex sleep, and the least time between two liveness probes of a
// sleeping waiter (a probe is a kill() and a /proc read when the slot looks
// live; a waiter woken by an unlock and beaten to the lock should not pay
// them every time).
constexpr int64_t kMaxSleepNs = 2'000'000;
constexpr int64_t kProbeIntervalNs = 1'000'000;

inline const void* FutexAddress(const uint64_t* word) {
  return word;  // little-endian: the low 32 bits come first
}

}  // namespace

absl::StatusOr<LockResult> OwnerLock::LockSlow(OwnerToken me,
                                               absl::Duration bound) {
  const uint64_t mine = LockWordOf(me);
  const internal::Deadline deadline = internal::Deadline::In(bound);
  LockResult result;
  result.waited = true;
  int round = 0;
  int64_t next_probe_ns = 0;
  while (true) {
    uint64_t word = internal::Load(*word_, std::memory_order_relaxed);
    if (word == 0) {
      if (internal::Ref(*word_).compare_exchange_weak(
              word, mine, std::memory_order_acquire,
              std::memory_order_relaxed)) {
        return result;
      }
      continue;
    }
    const std::optional<OwnerToken> owner = OwnerOfLockWord(word);
    if (owner == me) {
      return absl::FailedPreconditionError(
          absl::StrCat("lock already held by this thread (registry slot ",
                       me.slot, "): re-acquiring it would deadlock"));
    }
    if (round < kSpinRounds) {
      for (int i = 0, n = 1 << std::min(round, 6); i < n; ++i) {
        internal::CpuRelax();
      }
      ++round;
      continue;
    }
    if (round < kSpinRounds + kYieldRounds) {
      sched_yield();
      ++round;
      continue;
    }
    // Sleeping phase. Is the owner dead? Asked on entering this phase and
    // then at most every kProbeIntervalNs.
    const int64_t now = internal::MonotonicNanos();
    bool dead = !owner.has_value();  // bits set but no owner: corrupt word
    if (!dead && now >= next_probe_ns) {
      dead = registry_->IsDead(*owner);
      next_probe_ns = now + kProbeIntervalNs;
    }
    if (dead) {
      // Keep the waiters bit: others may sleep on this word.
      if (internal::Ref(*word_).compare_exchange_strong(
              word, mine | (word & kLockWaitersBit), std::memory_order_acquire,
              std::memory_order_relaxed)) {
        result.took_over = true;
        if (owner.has_value()) result.dead_owner = *owner;
        return result;
      }
      continue;  // someone else took it over (or the owner unlocked)
    }
    if (deadline.Expired()) {
      const SlotInfo info = registry_->Slot(owner->slot);
      return absl::DeadlineExceededError(absl::StrCat(
          "lock held by live owner pid ", info.pid, " (thread ", info.tid,
          ", registry slot ", owner->slot, ") for longer than the bound of ",
          absl::FormatDuration(bound), "; a live owner is never overridden"));
    }
    if ((word & kLockWaitersBit) == 0) {
      if (!internal::Ref(*word_).compare_exchange_weak(
              word, word | kLockWaitersBit, std::memory_order_relaxed)) {
        continue;
      }
      word |= kLockWaitersBit;
    }
    const int64_t slice_end = now + kMaxSleepNs;
    internal::FutexWaitUntil(FutexAddress(word_), static_cast<uint32_t>(word),
                             std::min(slice_end, deadline.at_ns()));
  }
}

std::optional<OwnerToken> OwnerLock::DeadHolder() const {
  const uint64_t word = internal::Load(*word_, std::memory_order_relaxed);
  const std::optional<OwnerToken> owner = OwnerOfLockWord(word);
  if (!owner.has_value() || !registry_->IsDead(*owner)) return std::nullopt;
  const uint64_t again = internal::Load(*word_, std::memory_order_relaxed);
  if ((again & ~kLockWaitersBit) != (word & ~kLockWaitersBit)) {
    return std::nullopt;
  }
  return owner;
}

absl::Status OwnerLock::NotOwner(OwnerToken me, uint64_t word) const {
  const std::optional<OwnerToken> owner = OwnerOfLockWord(word);
  if (!owner.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unlock of a lock that is not held (caller: registry slot ", me.slot,
        ")"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("unlock by registry slot ", me.slot, " generation ",
                   me.generation, " of a lock held by slot ", owner->slot,
                   " generation ", owner->generation));
}

void OwnerLock::WakeWaiters() {
  internal::FutexWake(FutexAddress(word_), INT32_MAX);
}

}  // namespace shmkit
