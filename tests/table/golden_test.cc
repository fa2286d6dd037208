// Golden tests: the bucket hash and the shared layout, restated value by
// value. If one fails, segments written by another build would be misread:
// bump internal::kTableLayoutVersion (and update these values on purpose).
#include <cstddef>

#include "gtest/gtest.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/internal/layout.h"
#include "table_test_util.h"

namespace shmkit {
namespace {

using internal::BucketOf;
using internal::StableHash;

TEST(HashGolden, StableHashOutputsArePinned) {
  EXPECT_EQ(StableHash("a"), 0x2977f5294607aac4ull);
  EXPECT_EQ(StableHash(""), 0x8cebfdc8a7553616ull);
  EXPECT_EQ(StableHash("key-00000000001"), 0xf5356ffe206d8979ull);
  EXPECT_EQ(StableHash("sess:42"), 0xe5ea1d5abf609fecull);
  EXPECT_EQ(StableHash("0123456789abcdef"), 0xb7315c83b1a72914ull);
  EXPECT_EQ(StableHash("0123456789abcdefX"), 0xd5e2e0eff8e18bd0ull);
  EXPECT_EQ(StableHash(std::string(100, 'z')), 0xd92494972c51057bull);
  EXPECT_EQ(StableHash(std::string("\0\0", 2)), 0x305b2c5da36f6c30ull);
  EXPECT_EQ(BucketOf(StableHash("a"), 1000), 161u);
  EXPECT_EQ(BucketOf(StableHash("sess:42"), 1000), 898u);
}

TEST(HashGolden, TrailingZerosAndLengthMatter) {
  EXPECT_NE(StableHash(std::string("a")), StableHash(std::string("a\0", 2)));
  EXPECT_NE(StableHash(std::string("\0", 1)), StableHash(""));
}

TEST(HashGolden, SequentialKeysSpreadEvenly) {
  // 100,000 sequential keys over 87,500 buckets: a good hash leaves about
  // e^-1.14 = 32% of buckets empty and no long chains.
  constexpr uint32_t kBuckets = 87'500;
  std::vector<uint32_t> counts(kBuckets);
  for (int i = 0; i < 100'000; ++i) {
    ++counts[BucketOf(StableHash(::shmkit::testing::SeqKey(i)), kBuckets)];
  }
  uint32_t empty = 0, longest = 0;
  for (uint32_t c : counts) {
    empty += c == 0;
    longest = std::max(longest, c);
  }
  EXPECT_NEAR(empty / static_cast<double>(kBuckets), 0.319, 0.02);
  EXPECT_LE(longest, 10u);
}

TEST(LayoutGolden, TableLayoutVersion1) {
  EXPECT_EQ(internal::kTableLayoutVersion, 1u);
  // Bucket word: seq in bits 0..31, head (row + 1) in bits 32..63.
  EXPECT_EQ(internal::BucketWord(3, 7), (uint64_t{7} << 32) | 3);
  EXPECT_EQ(internal::SeqOf(0x0000000700000003ull), 3u);
  EXPECT_EQ(internal::HeadOf(0x0000000700000003ull), 7u);
  EXPECT_EQ(internal::kBucketBytes, 16u);
  EXPECT_EQ(sizeof(internal::FreeShard), 64u);
  EXPECT_EQ(offsetof(internal::FreeShard, lock), 0u);
  EXPECT_EQ(offsetof(internal::FreeShard, head), 8u);
  EXPECT_EQ(offsetof(internal::FreeShard, count), 12u);
  EXPECT_EQ(internal::kMaxFreeShards, 64u);
  EXPECT_EQ(sizeof(internal::ColumnDescriptor), 64u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, type), 32u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, len_bytes), 33u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, size), 36u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, offset), 40u);
  EXPECT_EQ(offsetof(internal::ColumnDescriptor, len_offset), 44u);
  EXPECT_EQ(sizeof(internal::SlotArea), 64u);
  EXPECT_EQ(offsetof(internal::SlotArea, token), 0u);
  EXPECT_EQ(offsetof(internal::SlotArea, bucket), 8u);
  EXPECT_EQ(offsetof(internal::SlotArea, op), 12u);
  EXPECT_EQ(offsetof(internal::SlotArea, row), 16u);
  EXPECT_EQ(offsetof(internal::SlotArea, image_offset), 20u);
  EXPECT_EQ(offsetof(internal::SlotArea, image_len), 24u);
  EXPECT_EQ(offsetof(internal::SlotArea, shard), 28u);
  EXPECT_EQ(offsetof(internal::SlotArea, shard_count_before), 32u);
  EXPECT_EQ(sizeof(internal::TableHeader), 192u);
  EXPECT_EQ(offsetof(internal::TableHeader, capacity), 16u);
  EXPECT_EQ(offsetof(internal::TableHeader, bucket_count), 24u);
  EXPECT_EQ(offsetof(internal::TableHeader, row_stride), 28u);
  EXPECT_EQ(offsetof(internal::TableHeader, registry_slots), 32u);
  EXPECT_EQ(offsetof(internal::TableHeader, schema_offset), 40u);
  EXPECT_EQ(offsetof(internal::TableHeader, registry_offset), 48u);
  EXPECT_EQ(offsetof(internal::TableHeader, buckets_offset), 56u);
  EXPECT_EQ(offsetof(internal::TableHeader, rows_offset), 64u);
  EXPECT_EQ(offsetof(internal::TableHeader, total_bytes), 72u);
  EXPECT_EQ(offsetof(internal::TableHeader, key_offset), 80u);
  EXPECT_EQ(offsetof(internal::TableHeader, shard_count), 104u);
  EXPECT_EQ(offsetof(internal::TableHeader, shards_offset), 112u);
  EXPECT_EQ(offsetof(internal::TableHeader, bucket_locks_offset), 120u);
  EXPECT_EQ(offsetof(internal::TableHeader, failed_inserts), 128u);
  EXPECT_EQ(offsetof(internal::TableHeader, read_fallbacks), 168u);
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

}  // namespace
}  // namespace shmkit
