// The body of a counter segment (after the ObjectHeader). Shared by
// AtomicCounter and SemCounter.
#ifndef SHMKIT_IPC_INTERNAL_COUNTER_LAYOUT_H_
#define SHMKIT_IPC_INTERNAL_COUNTER_LAYOUT_H_

#include <cstdint>
#include <type_traits>

#include "shmkit/ipc/object.h"

namespace shmkit::internal {

// Version of this layout; part of the header check on attach.
inline constexpr uint32_t kCounterLayoutVersion = 1;

// One cache line: the value and the words every Add touches travel together.
struct alignas(kCacheLineBytes) CounterBody {
  int64_t value;          // atomic
  uint32_t seq;           // futex word (change_notifier.h)
  uint32_t wait_flag;     // change_notifier.h
  int32_t held_by;        // SemCounter: pid holding the semaphore, 0 if none
  int32_t last_dead_pid;  // SemCounter: last holder found dead
  uint64_t dead_holders;  // SemCounter: holders that died holding it
  int32_t semid;          // SemCounter: its semaphore set
  uint32_t reserved0;
  uint64_t reserved[3];
};
static_assert(sizeof(CounterBody) == kCacheLineBytes &&
                  std::is_trivially_copyable_v<CounterBody>,
              "one cache line of plain fields (atomic access via atomic_ref)");

struct CounterSegmentLayout {
  ObjectHeader header;
  CounterBody body;
};
static_assert(offsetof(CounterSegmentLayout, body) == sizeof(ObjectHeader));

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_COUNTER_LAYOUT_H_
