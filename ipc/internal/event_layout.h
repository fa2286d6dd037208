// The body of an Event segment (after the ObjectHeader). See event.h for the
// semantics and event.cc for the protocol.
#ifndef SHMKIT_IPC_INTERNAL_EVENT_LAYOUT_H_
#define SHMKIT_IPC_INTERNAL_EVENT_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "shmkit/ipc/object.h"

namespace shmkit::internal {

// Version of this layout; part of the header check on attach. Bump it when
// EventBody changes (tests/ipc/layout_golden_test.cc says so).
inline constexpr uint32_t kEventLayoutVersion = 1;

// One cache line: every Notify and every Wait touches these words together.
struct alignas(kCacheLineBytes) EventBody {
  uint32_t seq;         // futex word; bumped when a notify finds wait_flag set
  uint32_t wait_flag;   // "a waiter may sleep on seq" (change_notifier.h)
  uint64_t broadcasts;  // Notify(kAll) calls so far; handles keep a cursor
  uint64_t permits;     // Notify(kOne) calls not yet taken by a waiter
  uint64_t notify_one_calls;  // statistics
  uint64_t permits_taken;     // statistics
  uint64_t reserved[3];
};
static_assert(sizeof(EventBody) == kCacheLineBytes,
              "one cache line, because a notify and a wait touch every word");
static_assert(std::is_trivially_copyable_v<EventBody> &&
                  std::is_standard_layout_v<EventBody>,
              "plain fields with one layout in every process, because the "
              "body is shared memory accessed through std::atomic_ref");
static_assert(offsetof(EventBody, seq) % 4 == 0,
              "the futex word must be 4-byte aligned, because FUTEX_WAIT "
              "rejects unaligned addresses");

struct EventSegmentLayout {
  ObjectHeader header;
  EventBody body;
};
static_assert(offsetof(EventSegmentLayout, body) == sizeof(ObjectHeader),
              "the body follows the common header directly");

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_EVENT_LAYOUT_H_
