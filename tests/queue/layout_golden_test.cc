// Golden layout tests for the queues' shared memory and stream formats: each
// restates a struct field by field. If one fails, the layout changed: bump
// the version that guards it (named in each test) so that old and new builds
// refuse to share a queue.
#include <cstddef>
#include <cstring>

#include "gtest/gtest.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/queue/internal/pipe_core.h"
#include "shmkit/ipc/queue/internal/ring_layout.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"

namespace shmkit::internal {
namespace {

TEST(LayoutGolden, RingIsLayoutVersion3) {
  EXPECT_EQ(kRingLayoutVersion, 3u);
  EXPECT_EQ(sizeof(RingControl), 384u);
  EXPECT_EQ(alignof(RingControl), 64u);
  EXPECT_EQ(offsetof(RingControl, slots), 0u);
  EXPECT_EQ(offsetof(RingControl, slot_bytes), 4u);
  EXPECT_EQ(offsetof(RingControl, slot_stride), 8u);
  EXPECT_EQ(offsetof(RingControl, registry_slots), 12u);
  EXPECT_EQ(offsetof(RingControl, slots_offset), 16u);
  EXPECT_EQ(offsetof(RingControl, registry_offset), 24u);
  EXPECT_EQ(offsetof(RingControl, removed), 32u);
  EXPECT_EQ(offsetof(RingControl, max_deliveries), 36u);
  EXPECT_EQ(offsetof(RingControl, tail), 64u);
  EXPECT_EQ(offsetof(RingControl, head), 128u);
  EXPECT_EQ(offsetof(RingControl, not_empty_seq), 192u);
  EXPECT_EQ(offsetof(RingControl, not_empty_waiters), 196u);
  EXPECT_EQ(offsetof(RingControl, not_full_seq), 256u);
  EXPECT_EQ(offsetof(RingControl, not_full_waiters), 260u);
  EXPECT_EQ(offsetof(RingControl, reclaimed_slots), 320u);
  EXPECT_EQ(offsetof(RingControl, abandoned_messages), 328u);
  EXPECT_EQ(offsetof(RingControl, redelivered_messages), 336u);
  EXPECT_EQ(offsetof(RingControl, poisoned_messages), 344u);
  EXPECT_EQ(sizeof(RingSlot), 32u);
  EXPECT_EQ(offsetof(RingSlot, state), 0u);
  EXPECT_EQ(offsetof(RingSlot, type), 8u);
  EXPECT_EQ(offsetof(RingSlot, length), 16u);
  EXPECT_EQ(offsetof(RingSlot, claims), 20u);
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

TEST(LayoutGolden, PipeIsLayoutVersion1) {
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

TEST(LayoutGolden, QueueKindsAreStable) {
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kRingQueue), 4u);
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kPipeLock), 7u);
}

// If this fails, the bytes on the wire changed: give the new format new
// magics (internal/stream_frame.h) so old and new peers refuse each other.
TEST(LayoutGolden, StreamWireIsVersion1) {
  EXPECT_EQ(internal::kStreamFrameHeaderBytes, 16u);
  EXPECT_EQ(internal::kStreamReportBytes, 16u);
  EXPECT_EQ(internal::kStreamFrameMagic, 0x31465353u);
  EXPECT_EQ(internal::kStreamQueryMagic, 0x31515353u);
  EXPECT_EQ(internal::kStreamReportMagic, 0x31435353u);
  EXPECT_EQ(internal::kStreamMaxMessageBytes, size_t{1} << 30);

  unsigned char bytes[16];
  internal::EncodeStreamFrameHeader(0x01020304, 0x1112131415161718, bytes);
  const unsigned char frame[16] = {'S',  'S',  'F',  '1',  0x04, 0x03,
                                   0x02, 0x01, 0x18, 0x17, 0x16, 0x15,
                                   0x14, 0x13, 0x12, 0x11};
  EXPECT_EQ(std::memcmp(bytes, frame, 16), 0);
  const internal::StreamFrameHeader h =
      internal::DecodeStreamFrameHeader(bytes);
  EXPECT_EQ(h.magic, internal::kStreamFrameMagic);
  EXPECT_EQ(h.length, 0x01020304u);
  EXPECT_EQ(h.type, 0x1112131415161718);

  internal::EncodeStreamQuery(bytes);
  const unsigned char query[16] = {'S', 'S', 'Q', '1'};
  EXPECT_EQ(std::memcmp(bytes, query, 16), 0);

  internal::EncodeStreamReport(0x0102, bytes);
  const unsigned char report[16] = {'S', 'S', 'C', '1', 0, 0, 0, 0, 0x02, 0x01};
  EXPECT_EQ(std::memcmp(bytes, report, 16), 0);
}

}  // namespace
}  // namespace shmkit::internal
