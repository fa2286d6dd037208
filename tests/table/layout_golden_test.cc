// Golden test of the table's shared-memory layout (table/internal/layout.h),
// restated field by field. If one fails, a segment written by another build
// would be misread: bump internal::kTableLayoutVersion (and update these
// values on purpose).
#include <cstddef>

#include "gtest/gtest.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"

namespace shmkit {
namespace {

TEST(LayoutGolden, TableLayoutVersion3) {
  EXPECT_EQ(internal::kTableLayoutVersion, 3u);
  // seq_head: seq in bits 0..31, head (row + 1) in bits 32..63.
  EXPECT_EQ(internal::SeqHeadWord(3, 7), (uint64_t{7} << 32) | 3);
  EXPECT_EQ(internal::SeqOf(0x0000000700000003ull), 3u);
  EXPECT_EQ(internal::HeadOf(0x0000000700000003ull), 7u);
  // Block: lock word, seq_head, then two home rows.
  EXPECT_EQ(internal::kRowsPerBlock, 2u);
  EXPECT_EQ(internal::kBlockHeaderBytes, 16u);
  EXPECT_EQ(internal::kBlockLockOffset, 0u);
  EXPECT_EQ(internal::kBlockSeqHeadOffset, 8u);
  // Row states.
  EXPECT_EQ(internal::kRowFree, 0u);
  EXPECT_EQ(internal::kRowLive, 0xffffu);
  EXPECT_EQ(internal::kMaxTableRegistrySlots, 0xfffeu);
  EXPECT_EQ(sizeof(internal::ColumnDescriptor), 64u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, type), 32u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, len_bytes), 33u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, size), 36u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, offset), 40u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, len_offset), 44u);
  EXPECT_EQ(sizeof(internal::SlotArea), 64u);
  EXPECT_EQ(offsetof(internal::SlotArea, token), 0u);
  EXPECT_EQ(offsetof(internal::SlotArea, op), 8u);
  EXPECT_EQ(offsetof(internal::SlotArea, bucket), 12u);
  EXPECT_EQ(offsetof(internal::SlotArea, row), 16u);
  EXPECT_EQ(offsetof(internal::SlotArea, image_offset), 20u);
  EXPECT_EQ(offsetof(internal::SlotArea, image_len), 24u);
  EXPECT_EQ(offsetof(internal::SlotArea, live_delta), 32u);
  EXPECT_EQ(offsetof(internal::SlotArea, delta_before), 40u);
  EXPECT_EQ(internal::kRecordUpdate, 1u);
  EXPECT_EQ(internal::kRecordInsert, 2u);
  EXPECT_EQ(internal::kRecordDelete, 3u);
  EXPECT_EQ(sizeof(internal::TableHeader), 192u);
  EXPECT_EQ(offsetof(internal::TableHeader, capacity), 16u);
  EXPECT_EQ(offsetof(internal::TableHeader, bucket_count), 24u);
  EXPECT_EQ(offsetof(internal::TableHeader, row_stride), 28u);
  EXPECT_EQ(offsetof(internal::TableHeader, block_stride), 32u);
  EXPECT_EQ(offsetof(internal::TableHeader, registry_slots), 36u);
  EXPECT_EQ(offsetof(internal::TableHeader, slot_area_bytes), 40u);
  EXPECT_EQ(offsetof(internal::TableHeader, hint_words), 44u);
  EXPECT_EQ(offsetof(internal::TableHeader, schema_offset), 48u);
  EXPECT_EQ(offsetof(internal::TableHeader, registry_offset), 56u);
  EXPECT_EQ(offsetof(internal::TableHeader, hints_offset), 64u);
  EXPECT_EQ(offsetof(internal::TableHeader, summary_offset), 72u);
  EXPECT_EQ(offsetof(internal::TableHeader, blocks_offset), 80u);
  EXPECT_EQ(offsetof(internal::TableHeader, total_bytes), 88u);
  EXPECT_EQ(offsetof(internal::TableHeader, key_offset), 96u);
  EXPECT_EQ(offsetof(internal::TableHeader, state_offset), 116u);
  EXPECT_EQ(offsetof(internal::TableHeader, no_free_rows), 120u);
  EXPECT_EQ(offsetof(internal::TableHeader, failed_inserts), 128u);
  EXPECT_EQ(offsetof(internal::TableHeader, read_fallbacks), 168u);
  EXPECT_EQ(offsetof(internal::TableHeader, reclaim_after_ms), 176u);
}

TEST(LayoutGolden, RowLayoutOfWorkloadW) {
  const internal::RowLayout w =
      internal::ComputeRowLayout(::shmkit::testing::WSchema());
  EXPECT_EQ(w.stride, 104u);
  EXPECT_EQ(w.columns[0].offset, 0u);  // n: int64
  EXPECT_EQ(w.columns[1].offset, 8u);  // x: float64
  EXPECT_EQ(w.next_offset, 16u);
  EXPECT_EQ(w.state_offset, 20u);
  EXPECT_EQ(w.key_len_offset, 22u);
  EXPECT_EQ(w.key_len_bytes, 1u);
  EXPECT_EQ(w.columns[2].len_offset, 23u);  // s: length
  EXPECT_EQ(w.columns[2].len_bytes, 1u);
  EXPECT_EQ(w.key_offset, 24u);
  EXPECT_EQ(w.columns[2].offset, 40u);  // s: bytes
  EXPECT_FALSE(w.has_expiry);
  const internal::RowLayout t =
      internal::ComputeRowLayout(::shmkit::testing::WSchema(true));
  EXPECT_EQ(t.stride, 112u);
  EXPECT_TRUE(t.has_expiry);
  EXPECT_EQ(t.expiry_offset, 0u);
  EXPECT_EQ(::shmkit::testing::WSchema().Fingerprint(), 0x01426ccd4e7dad2bull);
}

TEST(LayoutGolden, SegmentOfWorkloadW) {
  // Capacity 2^20: 2^19 blocks of 16 + 2 * 104 bytes.
  const absl::StatusOr<internal::SegmentPlan> plan = internal::PlanSegment(
      ::shmkit::testing::WSchema(), uint64_t{1} << 20, 256);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->bucket_count, 1u << 19);
  EXPECT_EQ(plan->block_stride, 224u);
  EXPECT_EQ(plan->hint_words, 1u << 14);
  EXPECT_EQ(plan->total_bytes - plan->blocks_offset, uint64_t{224} << 19);
  const absl::StatusOr<TablePlan> table = Table::Plan(
      ::shmkit::testing::WSchema(), {.capacity = uint64_t{1} << 20});
  ASSERT_TRUE(table.ok());
  EXPECT_LE(table->bytes_per_row, 112.5);
}

}  // namespace
}  // namespace shmkit
