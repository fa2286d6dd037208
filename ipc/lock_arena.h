// LockArena: a segment of OwnerLocks plus the process registry that gives
// their owners identities. Cross-process mutexes that survive crashes: a lock
// whose owner died is taken over by exactly one waiter, which is told so;
// a live owner is never overridden.
//
//   auto arena = shmkit::LockArena::Create({.locks = 16});   // before fork
//   // in any worker:
//   auto guard = arena->Acquire(3, absl::Seconds(1));
//   if (!guard.ok()) ...;                        // DeadlineExceeded etc.
//   if (guard->result().took_over) RepairWhatTheDeadOwnerLeft();
//
// Each lock word has a cache line of its own.
#ifndef SHMKIT_IPC_LOCK_ARENA_H_
#define SHMKIT_IPC_LOCK_ARENA_H_

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/owner_lock.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

struct LockArenaOptions {
  uint32_t locks = 1;
  // Threads (across all processes) that may use the arena at once.
  uint32_t registry_slots = 256;
  IpcKey key = IpcKey::Private();
  mode_t mode = 0600;
};

class LockArena {
 public:
  static absl::StatusOr<LockArena> Create(const LockArenaOptions& options);
  static absl::StatusOr<LockArena> Attach(
      IpcKey key, const ObjectAttachOptions& options = {});
  static absl::StatusOr<LockArena> AttachId(
      int shmid, const ObjectAttachOptions& options = {});

  // A moved-from arena has no locks: lock() and Acquire() answer
  // FailedPrecondition, count() is 0.
  LockArena(LockArena&& other) noexcept
      : segment_(std::move(other.segment_)),
        registry_(std::move(other.registry_)),
        count_(std::exchange(other.count_, 0)) {}
  LockArena& operator=(LockArena&& other) noexcept {
    if (this != &other) {
      segment_ = std::move(other.segment_);
      registry_ = std::move(other.registry_);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }

  // Lock `index` (< count()). InvalidArgument for an index out of range.
  absl::StatusOr<OwnerLock> lock(uint32_t index);
  // Takes lock `index` for the calling thread, waiting at most `bound` for a
  // live owner.
  absl::StatusOr<OwnerLockGuard> Acquire(uint32_t index, absl::Duration bound);

  ProcessRegistry& registry() { return registry_; }
  absl::StatusOr<OwnerToken> Self() { return registry_.Self(); }
  uint32_t count() const { return count_; }
  absl::Status Remove() { return segment_.Remove(); }
  const Segment& segment() const { return segment_; }

 private:
  LockArena(Segment segment, ProcessRegistry registry, uint32_t count);
  static absl::StatusOr<LockArena> Open(Segment segment);

  Segment segment_;
  ProcessRegistry registry_;
  uint32_t count_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_LOCK_ARENA_H_
