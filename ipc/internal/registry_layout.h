// The shared-memory layout of a ProcessRegistry. Internal: exposed for the
// golden layout test (tests/ipc/layout_golden_test.cc) and for tests that
// simulate pid reuse.
#ifndef SHMKIT_IPC_INTERNAL_REGISTRY_LAYOUT_H_
#define SHMKIT_IPC_INTERNAL_REGISTRY_LAYOUT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmkit/ipc/object.h"
#include "shmkit/ipc/process_registry.h"

namespace shmkit {
namespace internal {

// Registry layout, at a 64-byte aligned offset inside a segment:
//
//   RegistryHeader                 64 bytes
//   RegistrySlot[slot_count]       64 bytes each (one cache line per slot, so
//                                  threads claiming neighbours do not share)
//   extra[slot_count]              extra_stride bytes each (user area)
//
// RegistrySlot::state, the word every liveness decision reads:
//   bits  0..1   SlotStatus
//   bits  2..31  pid (30 bits; Linux pids are below 2^22)
//   bits 32..63  generation: bumped by every claim and by MarkDead, so a
//                token (slot, generation) names one occupancy of the slot
// Claiming a slot is one CAS that writes pid and generation together, so a
// claimer that dies right after it is still identifiable by its pid.
struct RegistryHeader {
  uint32_t magic;  // kRegistryMagic
  uint32_t slot_count;
  uint32_t extra_bytes;
  uint32_t extra_stride;
  uint64_t claims;       // atomic
  uint64_t reclaims;     // atomic
  uint64_t marked_dead;  // atomic
  uint64_t reserved[3];
};

struct RegistrySlot {
  uint64_t state;       // atomic; see above
  uint64_t start_time;  // atomic; valid once status is kLive
  uint32_t tid;         // atomic; diagnostics
  uint32_t pinned;      // atomic; user's "extra area holds recovery data"
  // atomic; the owner's internal::ProcessIdentity (0: unknown), valid once
  // status is kLive. Was reserved (zero) before: a slot written by an older
  // build reads as "unknown" and the start time decides, as it did then.
  uint64_t identity;
  uint64_t reserved[4];
};

static_assert(sizeof(RegistryHeader) == kCacheLineBytes &&
                  std::is_trivially_copyable_v<RegistryHeader>,
              "the registry header is one cache line of plain fields");
static_assert(sizeof(RegistrySlot) == kCacheLineBytes &&
                  std::is_trivially_copyable_v<RegistrySlot>,
              "one slot per cache line: neighbouring claimers never share a "
              "line; plain fields with atomic_ref access");

inline constexpr uint32_t kRegistryMagic = 0x31474552;  // "REG1"

inline constexpr uint64_t kStatusMask = 0x3;
inline constexpr uint64_t kPidMask = (uint64_t{1} << 30) - 1;

constexpr uint64_t MakeState(uint32_t generation, pid_t pid, SlotStatus st) {
  return (uint64_t{generation} << 32) |
         ((static_cast<uint64_t>(pid) & kPidMask) << 2) |
         static_cast<uint64_t>(st);
}
constexpr SlotStatus StatusOf(uint64_t state) {
  return static_cast<SlotStatus>(state & kStatusMask);
}
constexpr pid_t PidOf(uint64_t state) {
  return static_cast<pid_t>((state >> 2) & kPidMask);
}
constexpr uint32_t GenerationOf(uint64_t state) {
  return static_cast<uint32_t>(state >> 32);
}

inline size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace internal

}  // namespace shmkit

#endif  // SHMKIT_IPC_INTERNAL_REGISTRY_LAYOUT_H_
