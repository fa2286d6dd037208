// Capacity is a promise: exactly `capacity` live rows fit, whatever the keys;
// the next insert is ResourceExhausted and changes nothing.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::SeqKey;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::WSchema;

enum class Keys { kSequential, kRandom, kColliding };

std::vector<std::string> MakeKeys(Keys kind, uint64_t n, uint32_t buckets) {
  std::vector<std::string> keys;
  keys.reserve(n);
  std::mt19937_64 rng(n * 31 + static_cast<int>(kind));
  switch (kind) {
    case Keys::kSequential:
      for (uint64_t i = 0; i < n; ++i) keys.push_back(SeqKey(i));
      break;
    case Keys::kRandom:
      // 16 random bytes: binary keys, distinct with overwhelming odds.
      for (uint64_t i = 0; i < n; ++i) {
        std::string k(16, '\0');
        for (char& c : k) c = static_cast<char>(rng());
        keys.push_back(std::move(k));
      }
      break;
    case Keys::kColliding: {
      // Only keys whose bucket is a multiple of 16: 1/16 of the buckets hold
      // every row, in chains about 16 * 7/8 = 14 long, while 15/16 of the
      // index stays empty.
      char buf[16] = "c";
      for (uint64_t i = 0; keys.size() < n; ++i) {
        const int len = 1 + snprintf(buf + 1, sizeof(buf) - 1, "%llu",
                                     static_cast<unsigned long long>(i));
        const absl::string_view k(buf, len);
        if (internal::BucketOf(internal::StableHash(k), buckets) % 16 == 0) {
          keys.emplace_back(k);
        }
      }
      break;
    }
  }
  return keys;
}

class CapacityTest
    : public ::testing::TestWithParam<std::tuple<uint64_t, Keys>> {};

TEST_P(CapacityTest, ExactlyCapacityRowsFit) {
  const auto [capacity, kind] = GetParam();
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = capacity});
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<std::string> keys =
      MakeKeys(kind, capacity + 1, static_cast<uint32_t>(t->Stats().buckets));
  for (uint64_t i = 0; i < capacity; ++i) {
    absl::Status st = t->Add(keys[i], {{"n", static_cast<long long>(i)}});
    ASSERT_TRUE(st.ok()) << "insert " << i << " of " << capacity << ": " << st;
  }
  EXPECT_EQ(t->Count(), capacity);
  EXPECT_THAT(t->Add(keys[capacity], {{"n", -1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(*t->Exists(keys[capacity]));
  EXPECT_EQ(t->Count(), capacity);
  const TableStats st = t->Stats();
  EXPECT_EQ(st.live_rows, capacity);
  EXPECT_EQ(st.failed_inserts, 1u);
  if (kind == Keys::kColliding) {
    EXPECT_GE(st.longest_chain, 20u);
  }
  // Full, a present key is still written (a refusal is for absent keys
  // only), and each kind of write says what it always says.
  ASSERT_TRUE(t->Set(keys[1], {{"n", 7}}).ok());
  EXPECT_EQ(*t->Get(keys[1])->GetInt("n"), 7);
  ASSERT_TRUE(t->Set(keys[1], {{"n", 1}}).ok());
  EXPECT_THAT(t->Add(keys[1], {{"n", 1}}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(t->Update(keys[capacity], {{"n", 1}}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t->Set(keys[capacity], {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(t->Stats().failed_inserts, 2u);
  // Every row is there with its value.
  for (uint64_t i = 0; i < capacity; i += capacity / 1024 + 1) {
    absl::StatusOr<Row> row = t->Get(keys[i]);
    ASSERT_TRUE(row.ok()) << i;
    EXPECT_EQ(*row->GetInt("n"), static_cast<int64_t>(i));
  }
  // A delete makes room for exactly one more.
  ASSERT_TRUE(t->Del(keys[0]).ok());
  ASSERT_TRUE(t->Add(keys[capacity], {{"n", 1}}).ok());
  EXPECT_THAT(t->Add(keys[0], {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(t->CheckConsistency().ok());
}

std::string CapacityName(
    const ::testing::TestParamInfo<std::tuple<uint64_t, Keys>>& param) {
  static const char* const kNames[] = {"Sequential", "Random", "Colliding"};
  return absl::StrCat("Rows", std::get<0>(param.param), "_",
                      kNames[static_cast<int>(std::get<1>(param.param))]);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, CapacityTest,
    ::testing::Combine(::testing::Values(uint64_t{1} << 16, uint64_t{1} << 20),
                       ::testing::Values(Keys::kSequential, Keys::kRandom)),
    CapacityName);
// Colliding keys make every insert walk a chain of ~32 rows: the small size
// proves the point (a million such inserts only cost time).
INSTANTIATE_TEST_SUITE_P(
    Colliding, CapacityTest,
    ::testing::Combine(::testing::Values(uint64_t{1} << 16),
                       ::testing::Values(Keys::kColliding)),
    CapacityName);

TEST(Capacity, TinyTablesAndOneChain) {
  for (uint64_t capacity : {1, 2, 3, 65, 200}) {
    absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = capacity});
    ASSERT_TRUE(t.ok()) << t.status();
    // Every key in bucket 0: one chain holds every row, most of them far
    // from their bucket's block.
    const uint32_t buckets = static_cast<uint32_t>(t->Stats().buckets);
    std::vector<std::string> keys;
    for (uint64_t i = 0; keys.size() <= capacity; ++i) {
      std::string k = SeqKey(i);
      if (internal::BucketOf(internal::StableHash(k), buckets) == 0) {
        keys.push_back(std::move(k));
      }
    }
    for (uint64_t i = 0; i < capacity; ++i) {
      ASSERT_TRUE(t->Set(keys[i], {{"n", static_cast<long long>(i)}}).ok())
          << capacity << "/" << i;
    }
    EXPECT_THAT(t->Set(keys[capacity], {{"n", 1}}),
                StatusIs(absl::StatusCode::kResourceExhausted));
    EXPECT_EQ(t->Stats().longest_chain, capacity);
    for (uint64_t i = 0; i < capacity; ++i) {
      EXPECT_EQ(*t->GetColumn(keys[i], "n"), Value(static_cast<long long>(i)));
    }
    // Whole-row lookups reach every place in the chain (Find's short path
    // takes the first few rows, the full walk the rest), and a key that is
    // not there is absent, not misread.
    const IntColumn n = *WSchema().Int("n");
    Row row;
    for (uint64_t i = 0; i < capacity; ++i) {
      ASSERT_TRUE(*t->Find(keys[i], &row)) << capacity << "/" << i;
      EXPECT_EQ(row[n], static_cast<int64_t>(i));
      EXPECT_EQ(row.key(), keys[i]);
    }
    EXPECT_FALSE(*t->Find(keys[capacity], &row));
    EXPECT_FALSE(row.present());
    std::vector<absl::string_view> views(keys.begin(), keys.end());
    std::vector<Row> rows(views.size());
    std::unique_ptr<bool[]> found(new bool[views.size()]);
    ASSERT_TRUE(t->FindMany(views, absl::MakeSpan(rows),
                            absl::MakeSpan(found.get(), views.size()))
                    .ok());
    for (uint64_t i = 0; i < capacity; ++i) {
      EXPECT_TRUE(found[i]);
      EXPECT_EQ(rows[i][n], static_cast<int64_t>(i));
    }
    EXPECT_FALSE(found[capacity]);
    EXPECT_TRUE(t->CheckConsistency().ok()) << t->CheckConsistency();
  }
}

TEST(Capacity, BadOptions) {
  EXPECT_THAT(Table::Create(WSchema(), {.capacity = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Table::Plan(WSchema(), {.capacity = 1ull << 33}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Table::Create(WSchema(), {.capacity = 8, .registry_slots = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      Table::Create(WSchema(), {.capacity = 8, .registry_slots = 70000}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Table::Create(WSchema(), {.capacity = 8,
                                        .lock_timeout = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace shmkit
