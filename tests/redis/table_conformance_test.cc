// The table conformance suite: what table.h promises, checked against both
// backends through the same Table type (shared memory and Redis). The Redis
// tables live in a redis-server this test process starts
// (redis_test_env.h).
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "redis_test_env.h"
#include "shmkit/redis/redis_table.h"
#include "shmkit/table/table.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::SharedRedis;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::UniqueName;

struct ShmTable {
  static constexpr const char* kName = "shm";
  static absl::StatusOr<Table> Make(const Schema& schema, uint64_t capacity) {
    return Table::Create(schema, {.capacity = capacity});
  }
};
struct RedisTable {
  static constexpr const char* kName = "redis";
  static absl::StatusOr<Table> Make(const Schema& schema, uint64_t capacity) {
    return OpenRedisTable(SharedRedis().url(), UniqueName("table"), schema,
                          {.capacity = capacity});
  }
};
struct Names {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// Every column type: n int64, small int8, f float64, f32 float32,
// s string(8), b bytes(4); keys up to 32 bytes.
Schema AllTypes(bool ttl = false) {
  return *Schema::Builder()
              .Int("n")
              .Int("small", 1)
              .Float("f")
              .Float32("f32")
              .String("s", 8)
              .Bytes("b", 4)
              .MaxKeyBytes(32)
              .WithTtl(ttl)
              .Build();
}

template <typename Backend>
class TableConformance : public ::testing::Test {
 protected:
  Table Make(uint64_t capacity = 64, bool ttl = false) {
    absl::StatusOr<Table> t = Backend::Make(AllTypes(ttl), capacity);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) std::abort();
    return *std::move(t);
  }
};
using Backends = ::testing::Types<ShmTable, RedisTable>;
TYPED_TEST_SUITE(TableConformance, Backends, Names);

TYPED_TEST(TableConformance, SetGetKeepsEveryTypeAndBinaryKeys) {
  Table t = this->Make();
  const std::string key("k\0\xff", 3);
  const std::string bytes("\0\x01\xfe", 3);
  ASSERT_TRUE(t.Set(key, {{"n", int64_t{1} << 60},
                          {"small", -128},
                          {"f", 0.1},
                          {"f32", 2.5},
                          {"s", "ana"},
                          {"b", bytes}})
                  .ok());
  absl::StatusOr<Row> row = t.Get(key);
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->key(), key);
  EXPECT_EQ(*row->GetInt("n"), int64_t{1} << 60);
  EXPECT_EQ(*row->GetInt("small"), -128);
  EXPECT_EQ(*row->GetFloat("f"), 0.1);
  EXPECT_EQ(*row->GetFloat("f32"), 2.5);
  EXPECT_EQ(*row->GetString("s"), "ana");
  EXPECT_EQ(*row->GetString("b"), bytes);
  EXPECT_FALSE(row->expires_at().has_value());
  EXPECT_EQ(*t.GetColumn(key, "s"), Value("ana"));
  // Every numeric width, read on its own.
  EXPECT_EQ(*t.GetColumn(key, "n"), Value(int64_t{1} << 60));
  EXPECT_EQ(*t.GetColumn(key, "small"), Value(-128));
  EXPECT_EQ(*t.GetColumn(key, "f"), Value(0.1));
  EXPECT_EQ(*t.GetColumn(key, "f32"), Value(2.5));
  EXPECT_THAT(t.GetColumn("other", "n"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(*t.Exists(key));
  EXPECT_FALSE(*t.Exists("other"));
  Row reuse;
  EXPECT_TRUE(*t.Find(key, &reuse));
  EXPECT_FALSE(*t.Find("other", &reuse));
  EXPECT_THAT(t.Get("other"), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST(TableConformance, FindManyAnswersEachKeyAsFindWould) {
  for (bool ttl : {false, true}) {
    Table t = this->Make(64, ttl);
    for (int i = 0; i < 20; i += 2) {
      ASSERT_TRUE(t.Set(absl::StrCat("k", i), {{"n", i}, {"s", "v"}}).ok());
    }
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) names.push_back(absl::StrCat("k", i));
    std::vector<absl::string_view> keys(names.begin(), names.end());
    std::vector<Row> rows(keys.size());
    std::unique_ptr<bool[]> found(new bool[keys.size()]);
    ASSERT_TRUE(t.FindMany(keys, absl::MakeSpan(rows),
                           absl::MakeSpan(found.get(), keys.size()))
                    .ok());
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(found[i], i % 2 == 0) << i << " ttl " << ttl;
      if (found[i]) {
        EXPECT_EQ(*rows[i].GetInt("n"), i);
        EXPECT_EQ(*rows[i].GetString("s"), "v");
        EXPECT_EQ(rows[i].key(), names[i]);
      }
    }
    // A bad key anywhere: InvalidArgument, nothing read.
    keys[5] = "";
    EXPECT_THAT(t.FindMany(keys, absl::MakeSpan(rows),
                           absl::MakeSpan(found.get(), keys.size())),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TYPED_TEST(TableConformance, InsertZeroesUnnamedColumnsUpdateKeepsThem) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("k", {{"s", "x"}}).ok());
  absl::StatusOr<Row> row = t.Get("k");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row->GetInt("n"), 0);
  EXPECT_EQ(*row->GetFloat("f"), 0.0);
  EXPECT_EQ(*row->GetString("b"), "");
  ASSERT_TRUE(t.Set("k", {{"n", 7}}).ok());
  row = t.Get("k");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row->GetInt("n"), 7);
  EXPECT_EQ(*row->GetString("s"), "x");
  // By column index too.
  ASSERT_TRUE(t.Set("k", {{0, 8}}).ok());
  EXPECT_EQ(*t.GetColumn("k", 0), Value(8));
}

TYPED_TEST(TableConformance, AddUpdateDelGetAndDelete) {
  Table t = this->Make();
  ASSERT_TRUE(t.Add("k", {{"n", 1}}).ok());
  EXPECT_THAT(t.Add("k", {{"n", 2}}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(*t.GetColumn("k", "n"), Value(1));
  EXPECT_THAT(t.Update("absent", {{"n", 2}}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(*t.Exists("absent"));
  ASSERT_TRUE(t.Update("k", {{"n", 3}}).ok());
  absl::StatusOr<Row> gone = t.GetAndDelete("k");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(*gone->GetInt("n"), 3);
  EXPECT_EQ(gone->key(), "k");
  EXPECT_FALSE(*t.Exists("k"));
  EXPECT_THAT(t.GetAndDelete("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t.Del("k"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_TRUE(t.Set("k", {}).ok());
  ASSERT_TRUE(t.Del("k").ok());
  EXPECT_EQ(t.Count(), 0u);
}

TYPED_TEST(TableConformance, IncrChecksTheColumnWidthAndChangesNothing) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("k", {{"small", 126}, {"n", 5}}).ok());
  EXPECT_EQ(*t.Incr("k", "small", 1), 127);
  EXPECT_THAT(t.Incr("k", "small", 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.GetColumn("k", "small"), Value(127));
  EXPECT_EQ(*t.Decr("k", "small", 255), -128);
  EXPECT_THAT(t.Decr("k", "small", 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(t.Incr("k", "small", std::numeric_limits<int64_t>::min()),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.GetColumn("k", "small"), Value(-128));
  // int64: overflow is an error, not a wrap.
  ASSERT_TRUE(t.Set("k", {{"n", std::numeric_limits<int64_t>::max() - 1}}).ok());
  EXPECT_EQ(*t.Incr("k", "n", 1), std::numeric_limits<int64_t>::max());
  EXPECT_THAT(t.Incr("k", "n", 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.GetColumn("k", "n"),
            Value(static_cast<long long>(std::numeric_limits<int64_t>::max())));
  EXPECT_EQ(*t.Incr("k", "n", std::numeric_limits<int64_t>::min()), -1);
  // Absent key, wrong column types.
  EXPECT_THAT(t.Incr("absent", "n", 1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(*t.Exists("absent"));
  EXPECT_THAT(t.Incr("k", "f", 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.Incr("k", "s", 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.IncrFloat("k", "n", 1.0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // create = true inserts a zero row.
  EXPECT_EQ(*t.Incr("new", "n", 5, {.create = true}), 5);
  EXPECT_EQ(*t.GetColumn("new", "s"), Value(""));
  // ... and a create that leaves the range inserts nothing.
  EXPECT_THAT(t.Incr("new2", "small", 200, {.create = true}),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_FALSE(*t.Exists("new2"));
}

TYPED_TEST(TableConformance, IncrFloat) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("k", {{"f", 1.5}, {"f32", 0.5}}).ok());
  EXPECT_EQ(*t.IncrFloat("k", "f", 0.25), 1.75);
  EXPECT_EQ(*t.IncrFloat("k", "f32", 0.1), static_cast<double>(0.5f + 0.1f));
  ASSERT_TRUE(t.Set("k", {{"f", 1e308}}).ok());
  EXPECT_THAT(t.IncrFloat("k", "f", 1e308),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t.GetColumn("k", "f"), Value(1e308));
  EXPECT_THAT(t.IncrFloat("k", "f", std::nan("")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.IncrFloat("absent", "f", 1),
              StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST(TableConformance, CompareAndSet) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("k", {{"n", 1}, {"s", "a"}}).ok());
  EXPECT_FALSE(*t.CompareAndSet("k", "n", 2, 3));
  EXPECT_EQ(*t.GetColumn("k", "n"), Value(1));
  EXPECT_TRUE(*t.CompareAndSet("k", "n", 1, 3));
  EXPECT_EQ(*t.GetColumn("k", "n"), Value(3));
  EXPECT_TRUE(*t.CompareAndSet("k", "s", "a", "bb"));
  EXPECT_EQ(*t.GetColumn("k", "s"), Value("bb"));
  EXPECT_THAT(t.CompareAndSet("absent", "n", 1, 2),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t.CompareAndSet("k", "n", 3, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.CompareAndSet("k", "small", 1, 1000),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*t.GetColumn("k", "n"), Value(3));
}

// The bad-input matrix: each is InvalidArgument, and nothing changes.
TYPED_TEST(TableConformance, BadInputIsInvalidArgumentAndChangesNothing) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("k", {{"n", 1}, {"s", "keep"}}).ok());
  const std::string long_key(33, 'k');
  const std::vector<std::pair<std::string, absl::Status>> cases = {
      {"empty key", t.Set("", {{"n", 1}})},
      {"key too long", t.Set(long_key, {{"n", 1}})},
      {"key too long (add)", t.Add(long_key, {{"n", 1}})},
      {"key too long (get)", t.Get(long_key).status()},
      {"key too long (incr)", t.Incr(long_key, "n", 1).status()},
      {"unknown column", t.Set("k", {{"nope", 1}})},
      {"column index out of range", t.Set("k", {{17, 1}})},
      {"string too long", t.Set("k", {{"s", "123456789"}})},
      {"bytes too long", t.Set("k", {{"b", "12345"}})},
      {"int8 out of range", t.Set("k", {{"small", 128}})},
      {"string into int", t.Set("k", {{"n", "1"}})},
      {"float into int", t.Set("k", {{"n", 1.5}})},
      {"int into string", t.Set("k", {{"s", 1}})},
      {"float32 that does not round-trip", t.Set("k", {{"f32", 0.1}})},
      {"column given twice", t.Set("k", {{"n", 2}, {"n", 3}})},
      {"one bad value among good ones", t.Set("k", {{"n", 2}, {"s", "123456789"}})},
      {"ttl on a table without ttl", t.Set("k", {{"n", 2}}, {.ttl = absl::Seconds(1)})},
      {"unknown column (incr)", t.Incr("k", "nope", 1).status()},
      {"unknown column (get)", t.GetColumn("k", "nope").status()},
  };
  for (const auto& [what, st] : cases) {
    EXPECT_THAT(st, StatusIs(absl::StatusCode::kInvalidArgument)) << what;
  }
  absl::StatusOr<Row> row = t.Get("k");
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(*row->GetInt("n"), 1);
  EXPECT_EQ(*row->GetString("s"), "keep");
  EXPECT_EQ(t.Count(), 1u);
}

TYPED_TEST(TableConformance, ExactlyCapacityRowsFit) {
  constexpr int kCapacity = 50;
  Table t = this->Make(kCapacity);
  for (int i = 0; i < kCapacity; ++i) {
    ASSERT_TRUE(t.Add(absl::StrCat("key-", i), {{"n", i}}).ok()) << i;
  }
  EXPECT_THAT(t.Add("one-more", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(t.Set("one-more", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(t.Incr("one-more", "n", 1, {.create = true}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(*t.Exists("one-more"));
  // Updates of present rows still work.
  ASSERT_TRUE(t.Set("key-3", {{"n", 33}}).ok());
  EXPECT_EQ(t.Count(), static_cast<uint64_t>(kCapacity));
  const TableStats stats = t.Stats();
  EXPECT_EQ(stats.capacity, static_cast<uint64_t>(kCapacity));
  EXPECT_EQ(stats.live_rows, static_cast<uint64_t>(kCapacity));
  EXPECT_GE(stats.failed_inserts, 3u);
  // A delete makes room for exactly one.
  ASSERT_TRUE(t.Del("key-7").ok());
  ASSERT_TRUE(t.Add("one-more", {{"n", 1}}).ok());
  EXPECT_THAT(t.Add("two-more", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

// Waits (bounded) until `key` reads as absent; returns how long it took.
absl::Duration WaitUntilAbsent(const Table& t, absl::string_view key) {
  const absl::Time start = absl::Now();
  while (*t.Exists(key) && absl::Now() - start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::Now() - start;
}

TYPED_TEST(TableConformance, TtlExpiredRowsReadAsAbsentAndFreeCapacity) {
  Table t = this->Make(/*capacity=*/2, /*ttl=*/true);
  const absl::Duration ttl = absl::Seconds(1);
  const absl::Time before = absl::Now();
  ASSERT_TRUE(t.Set("short", {{"n", 1}}, {.ttl = ttl}).ok());
  ASSERT_TRUE(t.Set("keep", {{"n", 2}}).ok());
  absl::StatusOr<Row> row = t.Get("short");
  ASSERT_TRUE(row.ok()) << row.status();
  ASSERT_TRUE(row->expires_at().has_value());
  EXPECT_GT(*row->expires_at(), before);
  EXPECT_LT(*row->expires_at(), absl::Now() + ttl + absl::Seconds(1));
  EXPECT_FALSE(t.Get("keep")->expires_at().has_value());
  // Full now; the expired row makes room once it has expired.
  EXPECT_THAT(t.Add("third", {{"n", 3}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  WaitUntilAbsent(t, "short");
  EXPECT_GE(absl::Now() - before, ttl - absl::Milliseconds(50));
  EXPECT_THAT(t.Get("short"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(t.GetColumn("short", "n"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*t.GetColumn("keep", "n"), Value(2));
  EXPECT_THAT(t.Incr("short", "n", 1), StatusIs(absl::StatusCode::kNotFound));
  int seen = 0;
  ASSERT_TRUE(t.ForEach([&](const Row& r) {
                 EXPECT_EQ(r.key(), "keep");
                 ++seen;
                 return true;
               }).ok());
  EXPECT_EQ(seen, 1);
  ASSERT_TRUE(t.Add("third", {{"n", 3}}).ok());
  EXPECT_EQ(t.Count(), 2u);
  EXPECT_GE(t.Stats().expired_reclaimed, 1u);
  // A rate limiter: Incr creating the row with a TTL.
  ASSERT_TRUE(t.Del("third").ok());
  EXPECT_EQ(*t.Incr("ip", "n", 1, {.create = true, .ttl = ttl}), 1);
  EXPECT_EQ(*t.Incr("ip", "n", 1, {.create = true, .ttl = ttl}), 2);
  EXPECT_TRUE(t.Get("ip")->expires_at().has_value());
}

TYPED_TEST(TableConformance, ForEachSeesEveryRowOnceAndAllowsDeletes) {
  Table t = this->Make(1000);
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(t.Add(absl::StrCat("k", i), {{"n", i}}).ok());
  }
  absl::flat_hash_map<std::string, int> seen;
  int deleted = 0;
  ASSERT_TRUE(t.ForEach([&](const Row& r) {
                 ++seen[std::string(r.key())];
                 EXPECT_EQ(r.key(), absl::StrCat("k", *r.GetInt("n")));
                 // Delete the odd rows as we go (each after it was seen, and
                 // some not yet seen: those may or may not appear).
                 if (*r.GetInt("n") % 2 == 0) {
                   const std::string odd =
                       absl::StrCat("k", *r.GetInt("n") + 1);
                   if (t.Del(odd).ok()) ++deleted;
                 }
                 return true;
               }).ok());
  for (int i = 0; i < 600; i += 2) {
    EXPECT_EQ(seen[absl::StrCat("k", i)], 1) << i;  // present throughout
  }
  for (const auto& [key, count] : seen) EXPECT_EQ(count, 1) << key;
  EXPECT_EQ(deleted, 300);
  EXPECT_EQ(t.Count(), 300u);
  // Stopping early.
  int visits = 0;
  ASSERT_TRUE(t.ForEach([&](const Row&) { return ++visits < 5; }).ok());
  EXPECT_EQ(visits, 5);
  EXPECT_TRUE(t.CheckConsistency().ok());
}

// Scan pages cover every row present throughout (the Redis backend may
// repeat one across pages: see redis_table.h).
TYPED_TEST(TableConformance, ScanPagesCoverEveryRow) {
  Table t = this->Make(1000);
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(t.Add(absl::StrCat("k", i), {{"n", i}}).ok());
  }
  absl::flat_hash_set<std::string> seen;
  uint64_t cursor = 0;
  int pages = 0;
  do {
    absl::StatusOr<ScanPage> page = t.Scan(cursor, 64);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Row& r : page->rows) seen.insert(std::string(r.key()));
    cursor = page->next_cursor;
    ASSERT_LT(++pages, 10000);
  } while (cursor != 0);
  EXPECT_EQ(seen.size(), 500u);
}

TYPED_TEST(TableConformance, ClearAndSweep) {
  Table t = this->Make(100);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(t.Add(absl::StrCat(i), {}).ok());
  EXPECT_EQ(t.Count(), 40u);
  ASSERT_TRUE(t.Clear().ok());
  EXPECT_EQ(t.Count(), 0u);
  EXPECT_FALSE(*t.Exists("3"));
  EXPECT_EQ(*t.Sweep(), 0u);
  ASSERT_TRUE(t.Add("again", {}).ok());
}

// Four processes increment one key; the total is exact.
TYPED_TEST(TableConformance, MultiProcessHotKeyIncrIsExact) {
  Table t = this->Make();
  ASSERT_TRUE(t.Set("hot", {{"n", 0}}).ok());
  constexpr int kProcs = 4, kEach = 300;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(ForkChild([&] {
      for (int i = 0; i < kEach; ++i) {
        if (!t.Incr("hot", "n", 1).ok()) return 1;
      }
      return 0;
    }));
  }
  for (pid_t k : kids) EXPECT_TRUE(ExitedWith(k, 0));
  EXPECT_EQ(*t.GetColumn("hot", "n"), Value(kProcs * kEach));
}

}  // namespace
}  // namespace shmkit
