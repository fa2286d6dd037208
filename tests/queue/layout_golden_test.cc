// Golden layout tests for the queues' shared memory and stream formats: each
// restates a struct field by field. If one fails, the layout changed: bump
// the version that guards it (named in each test) so that old and new builds
// refuse to share a queue.
#include <cstddef>

#include "gtest/gtest.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/queue/internal/pipe_core.h"
#include "shmkit/ipc/queue/internal/ring_layout.h"

namespace shmkit::internal {
namespace {

TEST(QueueLayoutGolden, RingIsLayoutVersion2) {
  EXPECT_EQ(kRingLayoutVersion, 2u);
  EXPECT_EQ(sizeof(RingControl), 384u);
  EXPECT_EQ(alignof(RingControl), 64u);
  EXPECT_EQ(offsetof(RingControl, slots), 0u);
  EXPECT_EQ(offsetof(RingControl, slot_bytes), 4u);
  EXPECT_EQ(offsetof(RingControl, slot_stride), 8u);
  EXPECT_EQ(offsetof(RingControl, registry_slots), 12u);
  EXPECT_EQ(offsetof(RingControl, slots_offset), 16u);
  EXPECT_EQ(offsetof(RingControl, registry_offset), 24u);
  EXPECT_EQ(offsetof(RingControl, removed), 32u);
  EXPECT_EQ(offsetof(RingControl, tail), 64u);
  EXPECT_EQ(offsetof(RingControl, head), 128u);
  EXPECT_EQ(offsetof(RingControl, not_empty_seq), 192u);
  EXPECT_EQ(offsetof(RingControl, not_empty_waiters), 196u);
  EXPECT_EQ(offsetof(RingControl, not_full_seq), 256u);
  EXPECT_EQ(offsetof(RingControl, not_full_waiters), 260u);
  EXPECT_EQ(offsetof(RingControl, reclaimed_slots), 320u);
  EXPECT_EQ(offsetof(RingControl, abandoned_messages), 328u);
  EXPECT_EQ(offsetof(RingControl, redelivered_messages), 336u);
  EXPECT_EQ(sizeof(RingSlot), 32u);
  EXPECT_EQ(offsetof(RingSlot, state), 0u);
  EXPECT_EQ(offsetof(RingSlot, type), 8u);
  EXPECT_EQ(offsetof(RingSlot, length), 16u);
  EXPECT_EQ(kRingControlOffset, 128u);
  EXPECT_EQ(kRingSlotsOffset, 512u);
  EXPECT_EQ(RingSlotStride(0), 64u);
  EXPECT_EQ(RingSlotStride(32), 64u);
  EXPECT_EQ(RingSlotStride(33), 128u);
  EXPECT_EQ(RingSlotStride(256), 320u);
  // State word: owner bits 0..23, generation bits 24..31, sequence 32..63.
  EXPECT_EQ(RingState(5, 3, 0x1ff), (uint64_t{5} << 32) | (0xffu << 24) | 3u);
  EXPECT_EQ(kRingTombstone, 0xffffffu);
  EXPECT_EQ(RingSeqOf(RingState(7, 9, 2)), 7u);
  EXPECT_EQ(RingOwnerOf(RingState(7, 9, 2)), 9u);
  EXPECT_EQ(RingGenOf(RingState(7, 9, 2)), 2u);
}

TEST(QueueLayoutGolden, PipeIsLayoutVersion1) {
  EXPECT_EQ(kPipeLayoutVersion, 1u);
  // The stream format.
  EXPECT_EQ(kPipeFrameMagic, 0x31515053u);
  EXPECT_EQ(sizeof(PipeFrameHeader), 16u);
  EXPECT_EQ(offsetof(PipeFrameHeader, magic), 0u);
  EXPECT_EQ(offsetof(PipeFrameHeader, length), 4u);
  EXPECT_EQ(offsetof(PipeFrameHeader, type), 8u);
  // The control segment.
  EXPECT_EQ(sizeof(PipeControl), 320u);
  EXPECT_EQ(offsetof(PipeControl, max_message_bytes), 0u);
  EXPECT_EQ(offsetof(PipeControl, staging_bytes), 4u);
  EXPECT_EQ(offsetof(PipeControl, staging_offset), 8u);
  EXPECT_EQ(offsetof(PipeControl, registry_offset), 16u);
  EXPECT_EQ(offsetof(PipeControl, registry_slots), 24u);
  EXPECT_EQ(offsetof(PipeControl, writer_lock), 64u);
  EXPECT_EQ(offsetof(PipeControl, writing_bytes), 72u);
  EXPECT_EQ(offsetof(PipeControl, reader_lock), 128u);
  EXPECT_EQ(offsetof(PipeControl, reading), 136u);
  EXPECT_EQ(offsetof(PipeControl, stage_begin), 140u);
  EXPECT_EQ(offsetof(PipeControl, stage_end), 144u);
  EXPECT_EQ(offsetof(PipeControl, data_seq), 192u);
  EXPECT_EQ(offsetof(PipeControl, data_waiters), 196u);
  EXPECT_EQ(offsetof(PipeControl, data_watchers), 200u);
  EXPECT_EQ(offsetof(PipeControl, state), 256u);
  EXPECT_EQ(offsetof(PipeControl, broken_why), 260u);
  EXPECT_EQ(offsetof(PipeControl, broken_pid), 264u);
  EXPECT_EQ(offsetof(PipeControl, broken_bytes), 272u);
}

TEST(QueueLayoutGolden, QueueKindsAreStable) {
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kRingQueue), 4u);
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kPipeLock), 7u);
}

}  // namespace
}  // namespace shmkit::internal
