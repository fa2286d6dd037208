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
// Delivery guarantee. A receive is two-phase: claim the slot at head, copy
// the message out (and, for ReceiveAndProcess, run the caller's callback on
// it), then release the slot. The message leaves the ring at the release,
// and only then does the call return it: "received" means "released" (the
// handle's QueueStats::received counts releases it made).
//   - A consumer killed anywhere before the release (between the claim and
//     the copy, during the copy, inside a ReceiveAndProcess callback) took
//     nothing out: its message is redelivered to another consumer, counted
//     in QueueStats::redelivered_messages. A message is never lost to a
//     consumer's death, unless the ring was created with max_deliveries = N
//     and N consumers have died holding it: then the next claim drops it
//     (QueueStats::poisoned_messages), so one poison message cannot kill
//     every worker for ever.
//   - Receive/TryReceive/ReceiveFor/ReceiveInto: exactly once. Each message
//     is returned by exactly one call; a call whose process was killed
//     before it returned never handed its message to anyone. What the
//     caller does after the call returns is beyond the ring: a process
//     killed then has the message and loses it.
//   - ReceiveAndProcess: at least once. The callback runs while the message
//     is still claimed, so a process killed inside the callback (or after it
//     and before the release) has its message processed again by another
//     consumer; the callback may run more than once for one message, never
//     zero times.
// So after any number of consumer kills, with no send in progress and no
// live consumer inside a receive:
//   messages sent == received (released) + abandoned_messages +
//                    poisoned_messages + queued
// where queued is Stats().messages, which includes the messages of dead
// consumers that wait for redelivery. abandoned_messages counts only
// messages dropped because their slot was corrupt (DataLoss).
// Order: messages from one producer are received in order, except that a
// redelivered message comes after messages sent later than it.
//
// Crashes: a producer killed between reserving a slot and publishing it
// never blocks the ring: the consumer waiting behind that slot checks the
// owner's liveness (internal/ring_layout.h) and skips the slot (counted in
// reclaimed_slots; nothing was sent). A consumer killed with a claim never
// blocks it either: a producer that comes round to the slot requeues the
// message there, and a consumer that finds the ring empty takes the claim
// over (at most once per dead_owner_check; a blocked consumer notices within
// 200 ms, at once when woken). A live owner is never replaced, however
// slow. A process that has exited counts as dead before its parent reaps
// it (process_registry.h).
//
// Lifetime: a private ring is marked for removal at creation (the kernel
// frees it when the last process detaches, even if all are killed); Close()
// in the creating process also marks it removed for every process. A keyed
// ring persists until Remove(). Unrelated processes open a keyed ring with
// the same key (open=attach or auto); the geometry is the creator's.
//
// Threads: every thread that uses the ring takes a slot of the segment's
// process registry (registry_slots, across all processes); ResourceExhausted
// when none is free. The slot of a process killed while it held a slot of
// the ring stays taken until the ring has recovered what it held.
//
// The ring has no typed receive and no descriptor to poll.
#ifndef SHMKIT_IPC_QUEUE_RING_QUEUE_H_
#define SHMKIT_IPC_QUEUE_RING_QUEUE_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
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
  // owner's liveness is checked, and the interval between checks; also the
  // least interval between two scans of an empty ring for dead consumers'
  // claims (spec: check_us). Per handle.
  absl::Duration dead_owner_check = absl::Milliseconds(1);
  HugePages huge_pages = HugePages::kNo;
  // A message whose consumers keep dying while they hold it (a poison
  // message) is delivered to at most this many consumers, then dropped and
  // counted in QueueStats::poisoned_messages; 0: no limit, every such
  // message is redelivered for as long as consumers die on it (spec:
  // max_deliveries). Stored in the segment by its creator: an attaching
  // handle's value is ignored.
  uint32_t max_deliveries = 0;
};

class RingQueue final : public Queue {
 public:
  // Creates or attaches (see `open`). Errors: InvalidArgument (geometry),
  // AlreadyExists / NotFound (open=create / attach), FailedPrecondition (a
  // segment of another kind, layout, owner or mode under the key).
  static absl::StatusOr<std::unique_ptr<RingQueue>> Open(
      const RingQueueOptions& options = {});
  // Spec "ring[:slots=N,slot_bytes=N,key=K|private,open=...,mode=0600,
  // registry_slots=N,spin_us=N,check_us=N,max_deliveries=N]".
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~RingQueue() override;

  uint32_t slots() const { return slots_; }
  uint32_t slot_bytes() const { return slot_bytes_; }
  // The creator's max_deliveries (0: no limit).
  uint32_t max_deliveries() const { return max_deliveries_; }
  bool created() const { return created_by_ != 0; }
  // The segment (for tools and tests); empty after Close().
  const Segment* segment() const {
    return segment_.has_value() ? &*segment_ : nullptr;
  }
  // Receives one message and runs `process` on it before releasing its slot
  // (see "Delivery guarantee" above: at least once). `out` holds the message
  // while `process` runs (its buffer is reused across calls). The slot stays
  // claimed for as long as `process` runs, so producers that come round to it
  // wait: keep the callback short. The message is released whatever
  // `process` returns, and its status is returned; the errors of
  // ReceiveInto come back without `process` being called. A callback that
  // throws is treated as one that returned an error: the message is
  // released (and counted as received, not redelivered), then the
  // exception goes on to the caller.
  using Process = absl::FunctionRef<absl::Status(const Message&)>;
  [[nodiscard]] absl::Status ReceiveAndProcess(
      Message& out, size_t max_bytes, WaitMode wait, Process process,
      Truncation truncation = Truncation::kError);

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
                                 const Process* process,
                                 absl::Status* processed, Blocker* blocker);
  // Takes over a claim of a dead consumer, if a scan finds one (at most one
  // scan per check interval per handle).
  absl::StatusOr<Outcome> TryTakeOverDeadClaim(Message& out, size_t max_bytes,
                                               Truncation truncation,
                                               OwnerToken me,
                                               const Process* process,
                                               absl::Status* processed);
  // Copies out the message of a slot this thread claimed (state `claimed`),
  // runs `process` on it if given (its answer in *processed), and releases
  // the slot for the next lap.
  absl::Status DeliverClaimed(internal::RingSlot& slot, uint64_t pos,
                              uint64_t claimed, Message& out, size_t max_bytes,
                              const Process* process, absl::Status* processed);
  absl::Status ReceiveWith(Message& out, size_t max_bytes,
                           Truncation truncation, const WaitMode& wait,
                           const Process* process, absl::Status* processed);
  absl::Status TooLongError(uint32_t length, size_t max_bytes) const;
  // Slot `index` holds a claim whose consumer is dead.
  bool DeadClaim(uint32_t index, uint64_t state) const;
  // Waits for room (producer) or a message (consumer), spinning then
  // sleeping, and reclaims the blocking slot if its owner is dead.
  template <typename Attempt>
  absl::Status WaitFor(Attempt attempt, bool producer, const WaitMode& wait);
  bool OwnerDead(uint64_t state) const;
  // Counts the claim of `slot` (ours: `claimed`, position `pos`) and, when
  // it is one past max_deliveries, drops the message: true (the slot is
  // free again, nothing to deliver). Only for a ring with max_deliveries:
  // without one nobody counts claims.
  absl::StatusOr<bool> DropIfPoisoned(internal::RingSlot& slot, uint64_t pos,
                                      uint64_t claimed);
  // Frees our claim `claimed` of `slot` (position `pos`) for the next lap.
  // Internal when it was not ours any more.
  absl::Status ReleaseClaim(internal::RingSlot& slot, uint64_t pos,
                            uint64_t claimed);
  void AddOwnPin(uint32_t slot);
  void DropOwnPin(uint32_t slot);
  // Reclaims the slot in `blocker` if its owner is dead; true if it did.
  bool ReclaimIfDead(const Blocker& blocker, bool producer);
  absl::Status RemovedError() const;
  bool removed() const;

  std::optional<Segment> segment_;
  std::optional<ProcessRegistry> registry_;
  internal::RingControl* control_ = nullptr;
  std::byte* slots_base_ = nullptr;
  std::byte* pin_words_ = nullptr;  // registry slot 0's pin word
  uint32_t slots_ = 0;
  uint32_t mask_ = 0;
  uint32_t slot_bytes_ = 0;
  uint64_t slot_stride_ = 0;
  uint32_t max_deliveries_ = 0;  // the creator's, read at open
  pid_t created_by_ = 0;  // pid of the creating process, 0 if attached
  IpcKey key_;
  int64_t spin_ns_ = 0;
  int64_t check_ns_ = 0;
  std::atomic<int64_t> last_scan_ns_{0};  // TryTakeOverDeadClaim's last scan
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_RING_QUEUE_H_
