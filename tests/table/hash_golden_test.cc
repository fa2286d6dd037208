// Golden test of the bucket hash: its outputs restated value by value. If
// one fails, every table segment written by another build would put keys in
// other buckets: bump internal::kTableLayoutVersion (and update these values
// on purpose).
#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "shmkit/table/internal/hash.h"
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

}  // namespace
}  // namespace shmkit
