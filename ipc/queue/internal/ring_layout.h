// The shared-memory layout of a ring queue (RingQueue, ring_queue.h).
// Internal: exposed for the golden layout test
// (tests/queue/layout_golden_test.cc) and the kill tests.
//
// Segment (kind kRingQueue, layout kRingLayoutVersion):
//
//   ObjectHeader        128 bytes (capacity = slots, fingerprint = slot_bytes)
//   RingControl         6 cache lines: geometry | tail | head |
//                       not-empty wake-ups | not-full wake-ups | counters
//   RingSlot[slots]     slot_stride bytes each: a 32-byte RingSlot header,
//                       then slot_bytes of payload (one message per slot)
//   ProcessRegistry     owner identities (ProcessRegistry::BytesFor)
//
// The algorithm is Vyukov's bounded MPMC queue, with the per-slot sequence
// number extended into a state word that also names the process working on
// the slot, so a slot held by a dead process can be recovered:
//
//   RingSlot::state
//     bits  0..23  owner: registry slot + 1 of the thread writing (reserved)
//                  or reading (claimed) the slot; 0 = none;
//                  kRingTombstone = a dead producer's reservation, skipped
//     bits 24..31  the owner's registry generation, low 8 bits
//     bits 32..63  sequence: the position the slot is at, modulo 2^32
//
//   For the slot of position p (index p mod slots), with S = slots:
//     seq p,     owner 0      free: the producer of position p may reserve it
//     seq p,     owner P      reserved: producer P is writing the message
//     seq p+1,   owner 0      published: a consumer may claim it
//     seq p+1,   owner C      claimed: consumer C is copying the message out
//                             (or running its ReceiveAndProcess callback)
//     seq p+1,   tombstone    P died reserved; a consumer skips it
//     seq p+S,   owner 0      free again, for position p+S
//
// Producer: read tail, find the slot free for that position, reserve it by
// CAS of the state word (free -> reserved by me), advance tail by CAS (any
// producer that sees a reserved slot at tail helps advance it, so a producer
// that dies right after reserving never stalls tail), write type, length and
// payload, publish by CAS (reserved by me -> published). Consumer: the
// mirror image on head: claim by CAS (published -> claimed by me), advance
// head (helped likewise), copy out, free by CAS (claimed by me -> free for
// p+S): the message leaves the ring only at that last CAS, so "received"
// means "released". A tombstone is skipped by one CAS (tombstone -> free for
// p+S), never claimed, so a claim always guards a real message. Sequences compare modulo 2^32, which is safe as long as no thread
// stalls for 2^31 positions between reading and CASing a slot (and even
// then a stale CAS lands on a slot that is free at the lap it names).
//
// Dead owners. A consumer blocked on a reserved slot, or a producer blocked
// on a claimed one, looks at the owner once the slot has stayed the same for
// `dead_owner_check` (1 ms by default), and again at that interval: the
// owner is dead when its registry slot's generation moved (low 8 bits
// compared) or the registry says its process is gone (ProcessRegistry::
// IsDead: pid gone or reused, or the process exited, reaped or not). Only
// then does it CAS the exact state word it saw: a reserved slot becomes a
// tombstone (counted in reclaimed_slots). A claimed slot still holds its
// message (consumers only read), so a dead consumer's claim is redelivered
// (counted in redelivered_messages), by whichever comes first:
//   - a producer that comes round to the slot (position t = p+S, the ring
//     is full behind it) republishes the message in place, for position t:
//     CAS (seq p+1, C) -> (seq t+1, owner 0), then advances tail past t. The
//     message is queued again, behind everything sent meanwhile;
//   - a consumer that finds the ring empty scans the slots (at most once per
//     dead_owner_check per handle) and takes the claim over: CAS (seq p+1,
//     C) -> (seq p+1, me), then copies and frees it as its own.
// abandoned_messages counts only messages dropped because their slot was
// found corrupt (a length above slot_bytes). A live owner, however slow, is
// never replaced, and its own final CAS would fail loudly (Internal) if it
// ever were.
//
// Registry slots of owners. The state word keeps only 8 bits of the owner's
// generation, so if the owner's registry slot could be reused while its
// reservation or claim is still in the ring, the 256th reuse would look like
// the owner itself, and the slot would wait for that live stranger to die.
// So an owner counts a pin on its registry slot (RingQueue::AddOwnPin, on
// the registry's pin word) for each reservation or claim it holds: taken
// after the CAS that makes it the owner, dropped before the CAS that
// publishes or frees, and dropped for it (ProcessRegistry::DropDeadPin) by
// whoever tombstones, requeues or takes over what it left. A dead process's
// registry slot is not reused while its pin count is not zero
// (ProcessRegistry::Claim). What is left: an owner killed in the few
// instructions between its CAS and its pin (or its unpin and its CAS) is
// exposed as before; a consumer killed between taking a dead claim over and
// dropping the dead owner's pin leaves that registry slot pinned for the
// ring's life (dropping before the CAS would instead let every consumer
// that races for the claim drop one). The cost: a dead owner's registry
// slot stays taken until what it held is recovered, which the ring does in
// its normal course.
//
// Poison messages. A message whose processing kills its consumer would be
// redelivered to every consumer in turn, for ever. In a ring created with
// max_deliveries = N, the producer publishes with RingSlot::claims = 0 and
// every consumer that claims the message (first claim or takeover) adds
// one, as its owner, and drops the message (frees the slot, counts it in
// poisoned_messages) at the claim that would be its (N+1)-th delivery, so
// it reaches at most N consumers. With 0 (the default) nobody counts and
// nothing is dropped (N is the creator's, read by every process). The
// count is written without a release: a taker reads it after finding the
// previous owner dead, long after that owner's store.
//
// Layout 1 freed a dead consumer's claim (losing the message); layout 2
// requeued it but counted neither pins nor claims, so a layout-2 process
// that recovered a layout-3 owner's slot would leave its registry slot
// pinned for good (and would not count its claims).
// Processes of different layouts refuse to share a ring.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_RING_LAYOUT_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_RING_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmkit/ipc/object.h"

namespace shmkit::internal {

inline constexpr uint32_t kRingLayoutVersion = 3;

inline constexpr uint32_t kRingOwnerBits = 24;
inline constexpr uint32_t kRingOwnerMask = (1u << kRingOwnerBits) - 1;
inline constexpr uint32_t kRingTombstone = kRingOwnerMask;
// Registry slots a ring may have: slot + 1 must fit the owner field and
// stay below kRingTombstone.
inline constexpr uint32_t kRingMaxRegistrySlots = 65535;
inline constexpr uint32_t kRingMaxSlots = 1u << 24;
inline constexpr uint32_t kRingMaxSlotBytes = 16u << 20;

constexpr uint64_t RingState(uint32_t seq, uint32_t owner, uint32_t gen8) {
  return (uint64_t{seq} << 32) | (uint64_t{gen8 & 0xff} << kRingOwnerBits) |
         (owner & kRingOwnerMask);
}
constexpr uint32_t RingSeqOf(uint64_t state) {
  return static_cast<uint32_t>(state >> 32);
}
constexpr uint32_t RingOwnerOf(uint64_t state) {
  return static_cast<uint32_t>(state) & kRingOwnerMask;
}
constexpr uint32_t RingGenOf(uint64_t state) {
  return static_cast<uint32_t>(state >> kRingOwnerBits) & 0xff;
}

struct alignas(kCacheLineBytes) RingControl {
  // Line 0: geometry (written once by the creator) and the removed mark.
  uint32_t slots;
  uint32_t slot_bytes;
  uint32_t slot_stride;
  uint32_t registry_slots;
  uint64_t slots_offset;     // from the start of the segment
  uint64_t registry_offset;  // from the start of the segment
  uint32_t removed;          // atomic; 1 once Remove()d
  uint32_t max_deliveries;   // 0: no limit (see "Poison messages" above)
  uint64_t reserved1[3];
  // Line 1: producers.
  uint64_t tail;  // atomic; next position to reserve
  uint64_t reserved2[7];
  // Line 2: consumers.
  uint64_t head;  // atomic; next position to claim
  uint64_t reserved3[7];
  // Line 3: consumers waiting for a message (change_notifier.h).
  uint32_t not_empty_seq;
  uint32_t not_empty_waiters;
  uint64_t reserved4[7];
  // Line 4: producers waiting for a free slot.
  uint32_t not_full_seq;
  uint32_t not_full_waiters;
  uint64_t reserved5[7];
  // Line 5: counters (rarely written).
  uint64_t reclaimed_slots;       // atomic
  uint64_t abandoned_messages;    // atomic
  uint64_t redelivered_messages;  // atomic
  uint64_t poisoned_messages;     // atomic
  uint64_t reserved6[4];
};
static_assert(sizeof(RingControl) == 6 * kCacheLineBytes &&
                  std::is_standard_layout_v<RingControl> &&
                  std::is_trivially_copyable_v<RingControl>,
              "six cache lines of plain fields, so producers (tail), "
              "consumers (head) and sleepers never share a line");

struct RingSlot {
  uint64_t state;   // atomic; see the file comment
  int64_t type;     // atomic (relaxed): read before the claim
  uint32_t length;  // atomic (relaxed): read before the claim
  uint32_t claims;  // atomic (relaxed): consumers that claimed this message
  uint64_t reserved1;
  // slot_bytes of payload follow.
};
static_assert(sizeof(RingSlot) == 32 && std::is_standard_layout_v<RingSlot> &&
                  std::is_trivially_copyable_v<RingSlot>,
              "the slot header is 32 bytes of plain fields; state first, so "
              "it shares the payload's first cache line");
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "the slot state word must be a lock-free 64-bit atomic");

constexpr size_t kRingControlOffset = sizeof(ObjectHeader);
constexpr size_t kRingSlotsOffset = kRingControlOffset + sizeof(RingControl);
static_assert(kRingSlotsOffset % kCacheLineBytes == 0);

constexpr uint64_t RingSlotStride(uint32_t slot_bytes) {
  return (sizeof(RingSlot) + uint64_t{slot_bytes} + kCacheLineBytes - 1) /
         kCacheLineBytes * kCacheLineBytes;
}

// Points in the ring's send and receive paths where a test can make the
// calling process die (ring kill tests). Unset (nullptr) in production; the
// check is one relaxed load and a predictable branch.
enum class RingHookPoint {
  kAfterReserve,   // producer: slot reserved, tail not yet advanced
  kBeforePublish,  // producer: tail advanced, payload not yet written
  kAfterClaim,     // consumer: slot claimed, not yet copied and freed
  kBeforeRelease,  // consumer: copied (and processed), not yet freed
};
using RingTestHook = void (*)(RingHookPoint);
inline std::atomic<RingTestHook> ring_test_hook{nullptr};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_RING_LAYOUT_H_
