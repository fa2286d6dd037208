// Golden layout tests: each restates a shared-memory struct field by field.
// If one fails, the layout changed: bump the format or layout version that
// guards it (named in each test), so old and new builds refuse to share.
#include <cstddef>

#include "gtest/gtest.h"
#include "shmkit/ipc/internal/counter_layout.h"
#include "shmkit/ipc/internal/event_layout.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/owner_lock.h"

namespace shmkit {
namespace {

TEST(LayoutGolden, ObjectHeaderIsFormatVersion1) {
  EXPECT_EQ(kObjectFormatVersion, 1u);
  EXPECT_EQ(kObjectMagic, 0x0100'5449'4B4D'4853ull);
  EXPECT_EQ(ObjectFormatWord(), 0x6408'0001u);
  EXPECT_EQ(sizeof(ObjectHeader), 128u);
  EXPECT_EQ(alignof(ObjectHeader), 8u);
  EXPECT_EQ(offsetof(ObjectHeader, magic), 0u);
  EXPECT_EQ(offsetof(ObjectHeader, format), 8u);
  EXPECT_EQ(offsetof(ObjectHeader, kind), 12u);
  EXPECT_EQ(offsetof(ObjectHeader, kind_version), 16u);
  EXPECT_EQ(offsetof(ObjectHeader, header_bytes), 20u);
  EXPECT_EQ(offsetof(ObjectHeader, total_bytes), 24u);
  EXPECT_EQ(offsetof(ObjectHeader, fingerprint), 32u);
  EXPECT_EQ(offsetof(ObjectHeader, capacity), 40u);
  EXPECT_EQ(offsetof(ObjectHeader, creator_uid), 48u);
  EXPECT_EQ(offsetof(ObjectHeader, creator_pid), 52u);
  EXPECT_EQ(offsetof(ObjectHeader, creator_start_time), 56u);
  EXPECT_EQ(offsetof(ObjectHeader, created_unix_ns), 64u);
  EXPECT_EQ(offsetof(ObjectHeader, state), 72u);
  EXPECT_EQ(offsetof(ObjectHeader, reserved), 80u);
}

TEST(LayoutGolden, RegistryIsVersion1OfItsMagic) {
  EXPECT_EQ(internal::kRegistryMagic, 0x31474552u);
  EXPECT_EQ(sizeof(internal::RegistryHeader), 64u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, magic), 0u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, slot_count), 4u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, extra_bytes), 8u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, extra_stride), 12u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, claims), 16u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, reclaims), 24u);
  EXPECT_EQ(offsetof(internal::RegistryHeader, marked_dead), 32u);
  EXPECT_EQ(sizeof(internal::RegistrySlot), 64u);
  EXPECT_EQ(offsetof(internal::RegistrySlot, state), 0u);
  EXPECT_EQ(offsetof(internal::RegistrySlot, start_time), 8u);
  EXPECT_EQ(offsetof(internal::RegistrySlot, tid), 16u);
  EXPECT_EQ(offsetof(internal::RegistrySlot, pinned), 20u);
  // identity took the first reserved word, which older builds left zero
  // (read as "unknown"): compatible both ways, so no version bump.
  EXPECT_EQ(offsetof(internal::RegistrySlot, identity), 24u);
  // state word: status bits 0..1, pid bits 2..31, generation bits 32..63.
  EXPECT_EQ(internal::MakeState(3, 1234, SlotStatus::kLive),
            (uint64_t{3} << 32) | (uint64_t{1234} << 2) | 2u);
}

TEST(LayoutGolden, CounterBodyIsLayoutVersion1) {
  EXPECT_EQ(internal::kCounterLayoutVersion, 1u);
  EXPECT_EQ(sizeof(internal::CounterBody), 64u);
  EXPECT_EQ(offsetof(internal::CounterBody, value), 0u);
  EXPECT_EQ(offsetof(internal::CounterBody, seq), 8u);
  EXPECT_EQ(offsetof(internal::CounterBody, wait_flag), 12u);
  EXPECT_EQ(offsetof(internal::CounterBody, held_by), 16u);
  EXPECT_EQ(offsetof(internal::CounterBody, last_dead_pid), 20u);
  EXPECT_EQ(offsetof(internal::CounterBody, dead_holders), 24u);
  EXPECT_EQ(offsetof(internal::CounterBody, semid), 32u);
  EXPECT_EQ(offsetof(internal::CounterSegmentLayout, body), 128u);
}

TEST(LayoutGolden, LockWordBits) {
  // slot+1 in bits 0..23, waiters bit 31, generation in bits 32..63.
  EXPECT_EQ(LockWordOf({0x123456 - 1, 0xabcdef01}), 0xabcdef01'00123456ull);
  EXPECT_EQ(kLockSlotMask, 0xffffffull);
  EXPECT_EQ(kLockWaitersBit, 0x80000000ull);
}

// If this fails, the event layout changed: bump kEventLayoutVersion so old
// and new builds refuse to share an event.
TEST(LayoutGolden, EventBodyIsLayoutVersion1) {
  EXPECT_EQ(internal::kEventLayoutVersion, 1u);
  EXPECT_EQ(sizeof(internal::EventBody), 64u);
  EXPECT_EQ(alignof(internal::EventBody), 64u);
  EXPECT_EQ(offsetof(internal::EventBody, seq), 0u);
  EXPECT_EQ(offsetof(internal::EventBody, wait_flag), 4u);
  EXPECT_EQ(offsetof(internal::EventBody, broadcasts), 8u);
  EXPECT_EQ(offsetof(internal::EventBody, permits), 16u);
  EXPECT_EQ(offsetof(internal::EventBody, notify_one_calls), 24u);
  EXPECT_EQ(offsetof(internal::EventBody, permits_taken), 32u);
  EXPECT_EQ(offsetof(internal::EventBody, reserved), 40u);
  EXPECT_EQ(offsetof(internal::EventSegmentLayout, body), 128u);
  EXPECT_EQ(sizeof(internal::EventSegmentLayout), 192u);
}

}  // namespace
}  // namespace shmkit
