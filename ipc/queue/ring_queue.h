// RingQueue: a bounded multi-producer multi-consumer ring of message slots
// in a System V shared-memory segment; the fastest backend.
//
//   auto q = shmkit::RingQueue::Open({.slots = 4096, .slot_bytes = 256});
//   // or: shmkit::OpenQueue("ring:slots=4096,slot_bytes=256")
//
// Each message takes one slot and may be up to slot_bytes long (messages do
// not span slots: a fixed stride keeps every operation one CAS to reserve
// and one to publish). Sending or receiving when nobody waits makes no
// system call. A caller that would block spins for up to `spin` (pure
// spinning for the first 2 us, then spinning with sched_yield, so that a
// peer on the same CPU gets to run), then sleeps on a shared futex; the
// other side wakes it only when someone sleeps (change_notifier.h).
//
// Crashes: a producer killed between reserving a slot and publishing it, or
// a consumer killed between claiming a slot and releasing it, never blocks
// the ring: the process waiting behind that slot checks the owner's
// liveness (internal/ring_layout.h) and reclaims it; Stats() counts both.
// A live owner is never replaced, however slow. A zombie counts as alive
// until its parent reaps it (or calls ProcessRegistry::MarkDeadInAllOpen).
//
// Lifetime: a private ring is marked for removal at creation (the kernel
// frees it when the last process detaches, even if all are killed); Close()
// in the creating process also marks it removed for every process. A keyed
// ring persists until Remove(). Unrelated processes open a keyed ring with
// the same key (open=attach or auto); the geometry is the creator's.
//
// Threads: every thread that uses the ring takes a slot of the segment's
// process registry (registry_slots, across all processes); ResourceExhausted
// when none is free.
//
// The ring has no typed receive and no descriptor to poll.
#ifndef SHMKIT_IPC_QUEUE_RING_QUEUE_H_
#define SHMKIT_IPC_QUEUE_RING_QUEUE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

namespace internal {
struct RingControl;
struct RingSlot;
}  // namespace internal

struct RingQueueOptions {
  // Number of slots: a power of two, 2..2^24 (spec: slots).
  uint32_t slots = 1024;
  // Largest message, 0..16 MiB (spec: slot_bytes). Each slot takes
  // slot_bytes + 32 bytes, rounded up to a cache line.
  uint32_t slot_bytes = 256;
  // IPC_PRIVATE (default) or a key (spec: key=..., or the flag "private").
  IpcKey key = IpcKey::Private();
  OpenMode open = OpenMode::kCreateOrAttach;  // spec: open
  mode_t mode = 0600;                         // spec: mode
  // Threads, across all processes, that may use the ring at once, up to
  // 65535 (spec: registry_slots).
  uint32_t registry_slots = 256;
  // Busy-wait budget before sleeping (spec: spin_us). Zero: sleep at once.
  // Per handle (not stored in the segment).
  absl::Duration spin = absl::Microseconds(20);
  // How long a slot held by another process may block a waiter before the
  // owner's liveness is checked, and the interval between checks (spec:
  // check_us). Per handle.
  absl::Duration dead_owner_check = absl::Milliseconds(1);
  HugePages huge_pages = HugePages::kNo;
};

class RingQueue final : public Queue {
 public:
  // Creates or attaches (see `open`). Errors: InvalidArgument (geometry),
  // AlreadyExists / NotFound (open=create / attach), FailedPrecondition (a
  // segment of another kind, layout, owner or mode under the key).
  static absl::StatusOr<std::unique_ptr<RingQueue>> Open(
      const RingQueueOptions& options = {});
  // Spec "ring[:slots=N,slot_bytes=N,key=K|private,open=...,mode=0600,
  // registry_slots=N,spin_us=N,check_us=N]".
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~RingQueue() override;

  uint32_t slots() const { return slots_; }
  uint32_t slot_bytes() const { return slot_bytes_; }
  bool created() const { return created_by_ != 0; }
  // The segment (for tools and tests); empty after Close().
  const Segment* segment() const {
    return segment_.has_value() ? &*segment_ : nullptr;
  }
  // The ring's process registry (tests use it to mark a reaped child dead).
  ProcessRegistry* registry() {
    return registry_.has_value() ? &*registry_ : nullptr;
  }

 protected:
  absl::Status SendImpl(absl::string_view bytes, int64_t type,
                        const WaitMode& wait) override;
  absl::Status ReceiveImpl(Message& out, size_t max_bytes, TypeFilter filter,
                           Truncation truncation,
                           const WaitMode& wait) override;
  absl::Status CloseImpl() override;
  absl::Status RemoveImpl() override;
  absl::StatusOr<QueueStats> StatsImpl() const override;
  std::string Describe() const override;

 private:
  // What an attempt ran into when it could not complete: the position and
  // the state word of the slot in the way.
  struct Blocker {
    uint64_t pos = 0;
    uint64_t state = 0;
  };
  enum class Outcome { kDone, kWouldBlock };

  RingQueue(Segment segment, ProcessRegistry registry, pid_t created_by,
            const RingQueueOptions& options);
  internal::RingSlot& SlotAt(uint64_t pos) const;
  std::byte* PayloadOf(internal::RingSlot& slot) const;
  // One attempt each; kWouldBlock with the slot in the way in `blocker`.
  absl::StatusOr<Outcome> TryPush(absl::string_view bytes, int64_t type,
                                  OwnerToken me, Blocker* blocker);
  absl::StatusOr<Outcome> TryPop(Message& out, size_t max_bytes,
                                 Truncation truncation, OwnerToken me,
                                 Blocker* blocker);
  // Waits for room (producer) or a message (consumer), spinning then
  // sleeping, and reclaims the blocking slot if its owner is dead.
  template <typename Attempt>
  absl::Status WaitFor(Attempt attempt, bool producer, const WaitMode& wait);
  bool OwnerDead(uint64_t state) const;
  // Reclaims the slot in `blocker` if its owner is dead; true if it did.
  bool ReclaimIfDead(const Blocker& blocker, bool producer);
  absl::Status RemovedError() const;
  bool removed() const;

  std::optional<Segment> segment_;
  std::optional<ProcessRegistry> registry_;
  internal::RingControl* control_ = nullptr;
  std::byte* slots_base_ = nullptr;
  uint32_t slots_ = 0;
  uint32_t mask_ = 0;
  uint32_t slot_bytes_ = 0;
  uint64_t slot_stride_ = 0;
  pid_t created_by_ = 0;  // pid of the creating process, 0 if attached
  IpcKey key_;
  int64_t spin_ns_ = 0;
  int64_t check_ns_ = 0;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_RING_QUEUE_H_
