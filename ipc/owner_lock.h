// OwnerLock: a lock word in shared memory that knows who holds it.
//
// The word (64 bits, little-endian; the futex is its low 32 bits):
//
//   bits  0..23   owner's registry slot + 1; 0 = unheld
//   bits 24..30   always 0
//   bit  31       waiters: some waiter may sleep on the futex, so the
//                 unlocker must wake them
//   bits 32..63   owner's slot generation
//
// Invariant: the word is 0 exactly when the lock is free. Only the owner
// clears it (Unlock); only a waiter that proved the owner dead replaces it.
//
// Lock: one CAS 0 -> token on the fast path (no system call). A waiter spins
// (internal::CpuRelax), then yields, then sleeps on the futex in slices of at
// most 2 ms; after each slice that ended without a wake it asks the registry
// whether the owner is dead (generation moved, slot freed, pid gone, pid
// reused). A live owner is never overridden, however long it holds the lock:
// once the caller's bound has passed, the waiter gets DeadlineExceeded naming
// the owner. When the owner is dead, waiters race one CAS from the token they
// saw to their own; exactly one wins and is told `took_over`, with the dead
// token, so it can repair what the owner was doing before it goes on.
//
// Unlock is a plain load and release store: a waiter that sets the waiters
// bit between the two makes its futex wait fail at once (the word it expects
// no longer matches), so no wake-up is lost without a locked instruction.
#ifndef SHMKIT_IPC_OWNER_LOCK_H_
#define SHMKIT_IPC_OWNER_LOCK_H_

#include <atomic>
#include <bit>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/cpu_relax.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/process_registry.h"

namespace shmkit {

static_assert(std::endian::native == std::endian::little,
              "the futex is the low half of the lock word");

inline constexpr uint64_t kLockWaitersBit = uint64_t{1} << 31;
inline constexpr uint64_t kLockSlotMask = (uint64_t{1} << 24) - 1;

// The lock word for `token`.
constexpr uint64_t LockWordOf(OwnerToken token) {
  return (uint64_t{token.generation} << 32) | (uint64_t{token.slot} + 1);
}
// The owner named by a lock word; nullopt when the word is 0 (unheld).
constexpr std::optional<OwnerToken> OwnerOfLockWord(uint64_t word) {
  const uint64_t slot_plus_one = word & kLockSlotMask;
  if (slot_plus_one == 0) return std::nullopt;
  return OwnerToken{static_cast<uint32_t>(slot_plus_one - 1),
                    static_cast<uint32_t>(word >> 32)};
}

// How a Lock() call went.
struct LockResult {
  bool waited = false;     // the lock was not free on the first try
  bool took_over = false;  // the previous owner was dead
  OwnerToken dead_owner;   // valid when took_over: whose work to repair
};

// A view of one lock word (a uint64_t inside a shared segment) and the
// registry that interprets its tokens. Cheap to copy; owns nothing.
// Safe from any thread of any process that has the word mapped.
class OwnerLock {
 public:
  OwnerLock(uint64_t* word, const ProcessRegistry* registry)
      : word_(word), registry_(registry) {}

  // Acquires the lock for `me`, waiting at most `bound` for a live owner.
  // Errors: DeadlineExceeded (a live owner held it longer than `bound`),
  // FailedPrecondition (`me` already holds it: re-acquiring is an error, not
  // a deadlock).
  absl::StatusOr<LockResult> Lock(OwnerToken me, absl::Duration bound) {
    uint64_t expected = 0;
    if (internal::Ref(*word_).compare_exchange_strong(
            expected, LockWordOf(me), std::memory_order_acquire,
            std::memory_order_relaxed)) {
      return LockResult{};
    }
    return LockSlow(me, bound);
  }

  // One attempt, no waiting and no liveness check.
  bool TryLock(OwnerToken me) {
    uint64_t expected = 0;
    return internal::Ref(*word_).compare_exchange_strong(
        expected, LockWordOf(me), std::memory_order_acquire,
        std::memory_order_relaxed);
  }

  // TryLock, tried again while the word reads held, for at most `pauses`
  // CPU pauses in all; no liveness check. For a caller whose alternative is
  // a longer slow path and whose holders let go within a few dozen
  // instructions (Incr's short path); a holder that does not, dead or
  // descheduled, is left to Lock() once the pauses run out.
  bool TryLockSpinning(OwnerToken me, int pauses) {
    while (!TryLock(me)) {
      do {
        if (--pauses < 0) return false;
        internal::CpuRelax();
      } while (internal::Load(*word_, std::memory_order_relaxed) != 0);
    }
    return true;
  }

  // Releases the lock. FailedPrecondition (and nothing changes) when `me`
  // does not hold it.
  absl::Status Unlock(OwnerToken me) {
    const uint64_t word = internal::Load(*word_, std::memory_order_relaxed);
    if ((word & ~kLockWaitersBit) != LockWordOf(me)) return NotOwner(me, word);
    internal::Store(*word_, uint64_t{0}, std::memory_order_release);
    if (word & kLockWaitersBit) WakeWaiters();
    return absl::OkStatus();
  }

  // The current owner, or nullopt when free.
  std::optional<OwnerToken> Owner() const {
    return OwnerOfLockWord(internal::Load(*word_, std::memory_order_relaxed));
  }

  // The owner, when it is dead and the lock is still the one it held:
  // what a reader that cannot take the lock asks before it reports work
  // left unfinished. nullopt when free, held by a live owner, or let go
  // while the registry was asked. An exited process counts as dead before
  // it is reaped, so an owner that unlocked and then exited between the
  // load and the liveness answer would otherwise read as one that died
  // holding; the word is read again after the answer (the waiters bit
  // aside: a waiter may set it meanwhile), and a dead owner changes nothing
  // any more. Only reads; a waiter may still take the lock over at once.
  std::optional<OwnerToken> DeadHolder() const;
  uint64_t* word() const { return word_; }

 private:
  absl::StatusOr<LockResult> LockSlow(OwnerToken me, absl::Duration bound);
  absl::Status NotOwner(OwnerToken me, uint64_t word) const;
  void WakeWaiters();

  uint64_t* word_;
  const ProcessRegistry* registry_;
};

// Holds an OwnerLock for a scope: the one guard for every owner-aware lock
// (table buckets, lock arenas, the pipe queues' writer lock). Acquire() waits
// for the lock; Adopt() takes charge of one already held (after TryLock);
// the destructor unlocks, or Unlock() does so earlier. Move-only.
class OwnerLockGuard {
 public:
  static absl::StatusOr<OwnerLockGuard> Acquire(OwnerLock lock, OwnerToken me,
                                                absl::Duration bound) {
    absl::StatusOr<LockResult> result = lock.Lock(me, bound);
    if (!result.ok()) return result.status();
    return OwnerLockGuard(lock, me, *result);
  }
  static OwnerLockGuard Adopt(OwnerLock lock, OwnerToken me,
                              LockResult result = {}) {
    return OwnerLockGuard(lock, me, result);
  }
  OwnerLockGuard(OwnerLockGuard&& other) noexcept
      : lock_(other.lock_),
        me_(other.me_),
        result_(other.result_),
        held_(std::exchange(other.held_, false)) {}
  OwnerLockGuard& operator=(OwnerLockGuard&&) = delete;
  OwnerLockGuard(const OwnerLockGuard&) = delete;
  ~OwnerLockGuard() { Unlock(); }
  void Unlock() {
    if (held_) {
      held_ = false;
      (void)lock_.Unlock(me_);
    }
  }
  bool held() const { return held_; }
  const LockResult& result() const { return result_; }

 private:
  OwnerLockGuard(OwnerLock lock, OwnerToken me, LockResult result)
      : lock_(lock), me_(me), result_(result), held_(true) {}
  OwnerLock lock_;
  OwnerToken me_;
  LockResult result_;
  bool held_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_OWNER_LOCK_H_
