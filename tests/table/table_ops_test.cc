// Every Table operation, in one process.
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

Schema FullSchema() {
  return *Schema::Builder()
              .Int("hits")
              .Int("small", 1)
              .Float("score")
              .Float32("ratio")
              .String("user", 32)
              .Bytes("blob", 300)
              .Build();
}

Table MakeTable(uint64_t capacity = 64, const Schema& schema = FullSchema()) {
  absl::StatusOr<Table> t = Table::Create(schema, {.capacity = capacity});
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

TEST(TableOps, SetInsertsThenUpdatesOnlyNamedColumns) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Set("k", {{"hits", 5}, {"user", "ana"}}).ok());
  absl::StatusOr<Row> row = t.Get("k");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->key(), "k");
  EXPECT_EQ(*row->GetInt("hits"), 5);
  EXPECT_EQ(*row->GetString("user"), "ana");
  EXPECT_EQ(*row->GetFloat("score"), 0.0);  // unnamed on insert: zero
  EXPECT_EQ(*row->GetString("blob"), "");
  ASSERT_TRUE(t.Set("k", {{"score", 2.5}}).ok());
  row = t.Get("k");
  EXPECT_EQ(*row->GetInt("hits"), 5);  // unnamed on update: kept
  EXPECT_EQ(*row->GetFloat("score"), 2.5);
  EXPECT_EQ(t.Count(), 1u);
}

TEST(TableOps, BinaryKeysAndValuesRoundTrip) {
  Table t = MakeTable();
  const std::string key("a\0b\xff", 4);
  std::string blob(300, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(
      t.Set(key, {{"blob", blob}, {"small", -128}, {"ratio", 0.25}}).ok());
  EXPECT_THAT(t.Get(std::string("a\0b", 3)),
              StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<Row> row = t.Get(key);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->key(), key);
  EXPECT_EQ(*row->GetString("blob"), blob);
  EXPECT_EQ(*row->GetInt("small"), -128);
  EXPECT_EQ(*row->GetFloat("ratio"), 0.25);
}

TEST(TableOps, GetColumnAndExists) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Set("k", {{"user", "bo"}, {"hits", 9}}).ok());
  EXPECT_EQ(t.GetColumn("k", "user")->string_value(), "bo");
  EXPECT_EQ(t.GetColumn("k", 0)->int_value(), 9);
  EXPECT_TRUE(*t.Exists("k"));
  EXPECT_FALSE(*t.Exists("nope"));
  EXPECT_THAT(t.GetColumn("nope", "user"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(TableOps, AddUpdateDel) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Add("k", {{"hits", 1}}).ok());
  EXPECT_THAT(t.Add("k", {{"hits", 2}}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(*t.Get("k")->GetInt("hits"), 1);
  EXPECT_THAT(t.Update("other", {{"hits", 2}}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(*t.Exists("other"));
  ASSERT_TRUE(t.Update("k", {{"hits", 3}}).ok());
  EXPECT_EQ(*t.Get("k")->GetInt("hits"), 3);
  ASSERT_TRUE(t.Del("k").ok());
  EXPECT_THAT(t.Del("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t.Get("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(t.Count(), 0u);
}

TEST(TableOps, IncrDecrAndWidthLimits) {
  Table t = MakeTable();
  EXPECT_THAT(t.Incr("k", "hits", 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*t.Incr("k", "hits", 5, {.create = true}), 5);
  EXPECT_EQ(*t.Incr("k", "hits", 10), 15);
  EXPECT_EQ(*t.Decr("k", "hits", 20), -5);
  EXPECT_EQ(*t.Incr("k", "small", 127), 127);
  EXPECT_THAT(t.Incr("k", "small", 1),
              StatusIsWith(absl::StatusCode::kOutOfRange, "int8"));
  EXPECT_EQ(*t.Get("k")->GetInt("small"), 127);
  ASSERT_TRUE(t.Set("k", {{"hits", INT64_MAX - 1LL}}).ok());
  EXPECT_EQ(*t.Incr("k", "hits", 1), INT64_MAX);
  EXPECT_THAT(t.Incr("k", "hits", 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.Get("k")->GetInt("hits"), INT64_MAX);
  EXPECT_DOUBLE_EQ(*t.IncrFloat("k", "score", 1.25), 1.25);
  EXPECT_DOUBLE_EQ(*t.IncrFloat("k", "ratio", 0.5), 0.5);
  EXPECT_THAT(t.IncrFloat("k", "score", 1e308 * 10),
              StatusIs(absl::StatusCode::kInvalidArgument));  // inf delta
  ASSERT_TRUE(t.Set("k", {{"score", 1.7e308}}).ok());
  EXPECT_THAT(t.IncrFloat("k", "score", 1.7e308),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.Get("k")->GetFloat("score"), 1.7e308);
}

TEST(TableOps, CompareAndSet) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Set("k", {{"hits", 1}, {"user", "a"}, {"score", 2}}).ok());
  EXPECT_FALSE(*t.CompareAndSet("k", "hits", 2, 3));
  EXPECT_EQ(*t.Get("k")->GetInt("hits"), 1);
  EXPECT_TRUE(*t.CompareAndSet("k", "hits", 1, 3));
  EXPECT_EQ(*t.Get("k")->GetInt("hits"), 3);
  EXPECT_TRUE(*t.CompareAndSet("k", "user", "a", "bb"));
  EXPECT_EQ(*t.Get("k")->GetString("user"), "bb");
  EXPECT_TRUE(*t.CompareAndSet("k", "score", 2, 2.5));  // int compares as float
  EXPECT_THAT(t.CompareAndSet("nope", "hits", 1, 2),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(TableOps, GetAndDelete) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Set("k", {{"hits", 7}}).ok());
  absl::StatusOr<Row> row = t.GetAndDelete("k");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row->GetInt("hits"), 7);
  EXPECT_FALSE(*t.Exists("k"));
  EXPECT_THAT(t.GetAndDelete("k"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(TableOps, ClearCountAndStats) {
  Table t = MakeTable(100);
  for (int i = 0; i < 60; ++i)
    ASSERT_TRUE(t.Set(absl::StrCat("k", i), {{"hits", i}}).ok());
  EXPECT_EQ(t.Count(), 60u);
  TableStats st = t.Stats();
  EXPECT_EQ(st.capacity, 100u);
  EXPECT_EQ(st.live_rows, 60u);
  EXPECT_GT(st.memory_bytes, 100u * 8);
  EXPECT_DOUBLE_EQ(st.bytes_per_row,
                   static_cast<double>(st.memory_bytes) / 100);
  EXPECT_EQ(st.buckets, 50u);  // one per two rows
  EXPECT_GE(st.longest_chain, 1u);
  EXPECT_EQ(st.failed_inserts, 0u);
  EXPECT_EQ(st.recoveries, 0u);
  ASSERT_TRUE(t.Clear().ok());
  EXPECT_EQ(t.Count(), 0u);
  EXPECT_TRUE(::shmkit::testing::Snapshot(t).empty());
  EXPECT_TRUE(t.CheckConsistency().ok());
}

TEST(TableOps, GetIntoAReusedRow) {
  Table t = MakeTable();
  ASSERT_TRUE(t.Set("a", {{"hits", 1}}).ok());
  ASSERT_TRUE(t.Set("b", {{"hits", 2}}).ok());
  Row row;
  ASSERT_TRUE(t.Get("a", &row).ok());
  EXPECT_EQ(*row.GetInt("hits"), 1);
  ASSERT_TRUE(t.Get("b", &row).ok());
  EXPECT_EQ(row.key(), "b");
  EXPECT_EQ(*row.GetInt(0), 2);
  EXPECT_THAT(row.GetInt("user"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "string"));
  EXPECT_THAT(Row().GetInt(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  // A miss leaves the row empty, not holding leftovers of another key.
  EXPECT_FALSE(*t.Find("nope", &row));
  EXPECT_THAT(row.GetInt(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(row.key(), "");
  EXPECT_TRUE(*t.Find("a", &row));
  EXPECT_EQ(*row.GetInt(0), 1);
}

TEST(TableOps, ThreadsOfOneProcessKeepExactCounts) {
  Table t = MakeTable(16);
  constexpr int kThreads = 4, kIters = 5000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < kIters; ++j) {
        ASSERT_TRUE(t.Incr("hot", "hits", 1, {.create = true}).ok());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(*t.Get("hot")->GetInt("hits"), kThreads * kIters);
}

TEST(TableOps, PlanIsExactAndCreateMatchesIt) {
  const Schema w = ::shmkit::testing::WSchema();
  absl::StatusOr<TablePlan> plan = Table::Plan(w, {.capacity = 1000});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->row_bytes, 104u);  // 8 + 8 + (4 + 2 + 1 + 1) + 16 + 64
  EXPECT_EQ(plan->buckets, 500u);    // one block per two rows
  EXPECT_EQ(plan->total_bytes, plan->rows_bytes + plan->buckets_bytes +
                                   plan->registry_bytes + plan->header_bytes);
  absl::StatusOr<Table> t = Table::Create(w, {.capacity = 1000});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Stats().memory_bytes, plan->total_bytes);
  EXPECT_EQ(t->segment().size(), plan->total_bytes);
  // Workload W (1,000,000 rows): the bytes-per-row budget of issue 3.
  absl::StatusOr<TablePlan> big = Table::Plan(w, {.capacity = 1'000'000});
  ASSERT_TRUE(big.ok());
  EXPECT_LE(big->bytes_per_row, 120.0) << big->total_bytes;
}

TEST(TableOps, ScanPagesCoverEveryRowOnce) {
  Table t = MakeTable(500);
  for (int i = 0; i < 400; ++i)
    ASSERT_TRUE(t.Set(absl::StrCat("k", i), {{"hits", i}}).ok());
  std::map<std::string, int> seen;
  uint64_t cursor = 0;
  int pages = 0;
  do {
    absl::StatusOr<ScanPage> page = t.Scan(cursor, 50);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Row& r : page->rows) ++seen[std::string(r.key())];
    cursor = page->next_cursor;
    ++pages;
  } while (cursor != 0);
  EXPECT_GT(pages, 5);
  ASSERT_EQ(seen.size(), 400u);
  for (const auto& [k, n] : seen) EXPECT_EQ(n, 1) << k;
  EXPECT_THAT(t.Scan(100000, 10), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(TableOps, ForEachStopsWhenAsked) {
  Table t = MakeTable();
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(t.Set(absl::StrCat("k", i), {{"hits", i}}).ok());
  int calls = 0;
  ASSERT_TRUE(t.ForEach([&](const Row&) { return ++calls < 3; }).ok());
  EXPECT_EQ(calls, 3);
}

TEST(TableOps, DeletingDuringForEachIsAllowed) {
  Table t = MakeTable();
  for (int i = 0; i < 40; ++i)
    ASSERT_TRUE(t.Set(absl::StrCat("k", i), {{"hits", i}}).ok());
  int seen = 0;
  ASSERT_TRUE(t.ForEach([&](const Row& r) {
                 ++seen;
                 EXPECT_TRUE(t.Del(r.key()).ok());
                 return true;
               }).ok());
  EXPECT_EQ(seen, 40);
  EXPECT_EQ(t.Count(), 0u);
  EXPECT_TRUE(t.CheckConsistency().ok());
}

}  // namespace
}  // namespace shmkit
