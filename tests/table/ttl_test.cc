#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::SeqKey;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::WSchema;

constexpr absl::Duration kShort = absl::Milliseconds(60);
void WaitPast(absl::Duration d) { absl::SleepFor(d + absl::Milliseconds(40)); }

TEST(Ttl, ExpiredRowReadsAsAbsent) {
  absl::StatusOr<Table> t = Table::Create(WSchema(true), {.capacity = 16});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", {{"n", 1}}, {.ttl = kShort}).ok());
  ASSERT_TRUE(t->Set("keep", {{"n", 2}}).ok());
  absl::StatusOr<Row> row = t->Get("k");
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(row->expires_at().has_value());
  EXPECT_LT(*row->expires_at(), absl::Now() + kShort + absl::Milliseconds(5));
  WaitPast(kShort);
  EXPECT_THAT(t->Get("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(*t->Exists("k"));
  EXPECT_THAT(t->Update("k", {{"n", 3}}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t->Incr("k", "n", 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t->Del("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(*t->Exists("keep"));
  int seen = 0;
  ASSERT_TRUE(t->ForEach([&](const Row& r) {
                 EXPECT_EQ(r.key(), "keep");
                 ++seen;
                 return true;
               }).ok());
  EXPECT_EQ(seen, 1);
  // Not reclaimed yet: it still holds its row until reused or swept.
  EXPECT_EQ(t->Count(), 2u);
  EXPECT_EQ(*t->Sweep(), 1u);
  EXPECT_EQ(t->Count(), 1u);
  EXPECT_EQ(t->Stats().expired_reclaimed, 1u);
  EXPECT_EQ(*t->Sweep(), 0u);
  EXPECT_TRUE(t->CheckConsistency().ok());
}

TEST(Ttl, AReusedRowKeepsNoExpiryFromAnEarlierLookup) {
  absl::StatusOr<Table> ttl = Table::Create(WSchema(true), {.capacity = 16});
  absl::StatusOr<Table> plain = Table::Create(WSchema(), {.capacity = 16});
  ASSERT_TRUE(ttl.ok() && plain.ok());
  ASSERT_TRUE(ttl->Set("k", {{"n", 1}}, {.ttl = absl::Minutes(5)}).ok());
  ASSERT_TRUE(plain->Set("k", {{"n", 2}}).ok());
  Row row;
  ASSERT_TRUE(*ttl->Find("k", &row));
  ASSERT_TRUE(row.expires_at().has_value());
  // A miss in the same table, then a hit in a table without TTL: neither
  // answers with the first row's expiry.
  ASSERT_FALSE(*ttl->Find("absent", &row));
  EXPECT_FALSE(row.expires_at().has_value());
  ASSERT_TRUE(*ttl->Find("k", &row));
  ASSERT_TRUE(row.expires_at().has_value());
  ASSERT_TRUE(*plain->Find("k", &row));
  EXPECT_FALSE(row.expires_at().has_value());
}

TEST(Ttl, AddAfterExpiryReusesTheRow) {
  absl::StatusOr<Table> t = Table::Create(WSchema(true), {.capacity = 4});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", {{"n", 1}, {"s", "old"}}, {.ttl = kShort}).ok());
  WaitPast(kShort);
  ASSERT_TRUE(t->Add("k", {{"n", 2}}).ok());
  absl::StatusOr<Row> row = t->Get("k");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row->GetInt("n"), 2);
  EXPECT_EQ(*row->GetString("s"), "");  // a fresh row, not the old one
  EXPECT_FALSE(row->expires_at().has_value());
  EXPECT_EQ(t->Count(), 1u);
  EXPECT_EQ(t->Stats().expired_reclaimed, 1u);
}

TEST(Ttl, FullTableReclaimsExpiredRowsForInserts) {
  absl::StatusOr<Table> t = Table::Create(WSchema(true), {.capacity = 32});
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 32; ++i) {
    ASSERT_TRUE(t->Set(SeqKey(i), {{"n", i}}, {.ttl = kShort}).ok());
  }
  EXPECT_THAT(t->Set("more", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  WaitPast(kShort);
  for (int i = 0; i < 32; ++i) {
    ASSERT_TRUE(t->Set(absl::StrCat("new", i), {{"n", i}}).ok()) << i;
  }
  EXPECT_EQ(t->Count(), 32u);
  EXPECT_TRUE(t->CheckConsistency().ok());
}

TEST(Ttl, UpdateKeepsOrReplacesTheExpiry) {
  absl::StatusOr<Table> t = Table::Create(WSchema(true), {.capacity = 4});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", {{"n", 1}}, {.ttl = absl::Hours(1)}).ok());
  const std::optional<absl::Time> first = t->Get("k")->expires_at();
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(*first, absl::Now() + absl::Minutes(59));
  ASSERT_TRUE(t->Set("k", {{"n", 2}}).ok());  // no ttl: keep it
  EXPECT_TRUE(t->Get("k")->expires_at().has_value());
  ASSERT_TRUE(t->Set("k", {{"n", 3}}, {.ttl = kShort}).ok());
  WaitPast(kShort);
  EXPECT_FALSE(*t->Exists("k"));
  EXPECT_THAT(t->Set("k", {{"n", 1}}, {.ttl = -absl::Seconds(1)}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ttl, IncrCreateWithTtlIsARateLimiter) {
  absl::StatusOr<Table> t = Table::Create(WSchema(true), {.capacity = 8});
  ASSERT_TRUE(t.ok());
  const IncrOptions window{.create = true, .ttl = kShort};
  EXPECT_EQ(*t->Incr("client", "n", 1, window), 1);
  EXPECT_EQ(*t->Incr("client", "n", 1, window), 2);  // ttl not extended
  EXPECT_EQ(*t->Incr("client", "n", 1, window), 3);
  WaitPast(kShort);
  EXPECT_EQ(*t->Incr("client", "n", 1, window), 1);  // a new window
}

}  // namespace
}  // namespace shmkit
