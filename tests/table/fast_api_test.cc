// The hot path as a user writes it: typed column handles, rows read without
// Status per column, string values that copy nothing, batch lookups, and a
// Table that can be empty.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmkit/table/internal/fast_incr.h"
#include "shmkit/table/internal/test_hooks.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

Schema Sessions() {
  return *Schema::Builder()
              .Int("hits")
              .Int("small", 2)
              .Float("score")
              .Float32("ratio")
              .String("user", 32)
              .Build();
}

TEST(FastApi, TypedHandlesCheckNameAndTypeOnce) {
  const Schema s = Sessions();
  EXPECT_TRUE(s.Int("hits").ok());
  EXPECT_TRUE(s.Float("score").ok());
  EXPECT_TRUE(s.String("user").ok());
  EXPECT_THAT(s.Int("score"), StatusIsWith(absl::StatusCode::kInvalidArgument,
                                           "not an integer"));
  EXPECT_THAT(s.String("hits"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "not a string"));
  EXPECT_THAT(s.Float("nope"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FastApi, RowsReadByHandleWithoutAStatusPerColumn) {
  const Schema s = Sessions();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
  ASSERT_TRUE(t.ok()) << t.status();
  const IntColumn hits = *s.Int("hits");
  const IntColumn small = *s.Int("small");
  const FloatColumn score = *s.Float("score");
  const FloatColumn ratio = *s.Float("ratio");
  const StringColumn user = *s.String("user");
  ASSERT_TRUE(t->Set("k", {{hits, -7},
                           {small, -300},
                           {score, 2.5},
                           {ratio, 0.5},
                           {user, "ana"}})
                  .ok());
  ASSERT_TRUE(t->Incr("k", hits, 10).ok());
  Row row;
  ASSERT_TRUE(*t->Find("k", &row));
  EXPECT_TRUE(row.present());
  EXPECT_EQ(row[hits], 3);
  EXPECT_EQ(row[small], -300);
  EXPECT_EQ(row[score], 2.5);
  EXPECT_EQ(row[ratio], 0.5);
  EXPECT_EQ(row[user], "ana");
  // A miss leaves a Row that reads as zero / empty, never stale values.
  ASSERT_FALSE(*t->Find("absent", &row));
  EXPECT_FALSE(row.present());
  EXPECT_EQ(row[hits], 0);
  EXPECT_EQ(row[user], "");
}

// A Row moved away (its buffer with it) holds nothing: it must not say it
// is present and read columns out of a buffer it no longer has (it did,
// until Row had its own move operations). Reading into it again works, and
// the Row it moved to reads as before.
TEST(FastApi, ARowMovedAwayCanBeReadIntoAgain) {
  const Schema s = Sessions();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
  ASSERT_TRUE(t.ok()) << t.status();
  const IntColumn hits = *s.Int("hits");
  const StringColumn user = *s.String("user");
  ASSERT_TRUE(t->Set("k", {{hits, 5}, {user, "ana"}}).ok());
  ASSERT_TRUE(t->Set("j", {{hits, 6}, {user, "bo"}}).ok());
  Row row;
  ASSERT_TRUE(*t->Find("k", &row));
  Row moved = std::move(row);
  EXPECT_TRUE(moved.present());
  EXPECT_EQ(moved[hits], 5);
  EXPECT_EQ(moved[user], "ana");
  EXPECT_EQ(moved.key(), "k");
  EXPECT_FALSE(row.present());  // NOLINT(bugprone-use-after-move): on purpose
  EXPECT_EQ(row[hits], 0);
  ASSERT_TRUE(*t->Find("j", &row));
  EXPECT_EQ(row[hits], 6);
  EXPECT_EQ(row[user], "bo");
  // Move assignment, into a Row shaped for the table, leaves the same.
  Row other;
  ASSERT_TRUE(*t->Find("k", &other));
  other = std::move(row);
  EXPECT_EQ(other[user], "bo");
  ASSERT_TRUE(*t->Find("k", &row));
  EXPECT_EQ(row[user], "ana");
  EXPECT_EQ(other[hits], 6);
}

TEST(FastApi, AHandleOfAnotherSchemaIsRefused) {
  const Schema s = Sessions();
  const Schema other = *Schema::Builder().Int("hits").Int("x").Build();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", {{"hits", 1}}).ok());
  const IntColumn foreign = *other.Int("x");  // index 1: "small" in `s`
  EXPECT_THAT(
      t->Set("k", {{foreign, 5}}),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "another schema"));
  EXPECT_THAT(t->Incr("k", foreign, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Row row;
  ASSERT_TRUE(*t->Find("k", &row));
  EXPECT_EQ(row[*s.Int("small")], 0);  // nothing changed
  EXPECT_EQ(row[foreign], 0);          // reads as zero, not as "small"
}

TEST(FastApi, IncrThroughAHandleKeepsTheColumnsWidthAndTrustsNoOffset) {
  const Schema s = Sessions();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
  ASSERT_TRUE(t.ok());
  const IntColumn hits = *s.Int("hits");
  const IntColumn small = *s.Int("small");  // 2 bytes
  ASSERT_TRUE(t->Set("k", {{small, 32760}}).ok());
  EXPECT_EQ(*t->Incr("k", small, 7), 32767);
  EXPECT_THAT(t->Incr("k", small, 1),
              StatusIsWith(absl::StatusCode::kOutOfRange, "out of range"));
  EXPECT_EQ(*t->Incr("k", small, -32767 - 32768), -32768);
  EXPECT_THAT(t->Decr("k", small, 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(t->Decr("k", small, INT64_MIN),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*t->Decr("k", small, -2), -32766);
  EXPECT_EQ(*t->Decr("k", small, 2), -32768);
  EXPECT_THAT(t->Incr("absent", small, 1),
              StatusIs(absl::StatusCode::kNotFound));
  // A hand-made handle: hits' index and schema, small's offset. The table
  // goes by what it knows of column 0 and leaves small's bytes alone.
  IntColumn forged = hits;
  forged.offset = small.offset;
  forged.bytes = small.bytes;
  EXPECT_EQ(*t->Incr("k", forged, 5), 5);
  Row row;
  ASSERT_TRUE(*t->Find("k", &row));
  EXPECT_EQ(row[hits], 5);
  EXPECT_EQ(row[small], -32768);
}

// Incr's memo: a thread's repeated Incr of one key skips the hash and the
// chain walk. It must answer exactly what the full lookup would.
TEST(FastApi, ARepeatedIncrTakesTheMemoAndCountsExactly) {
  const Schema s = Sessions();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
  ASSERT_TRUE(t.ok());
  const IntColumn hits = *s.Int("hits");
  ASSERT_TRUE(t->Set("k", {{hits, 0}}).ok());
  const uint64_t before = internal::IncrMemoHits();
  for (int i = 1; i <= 100; ++i) ASSERT_EQ(*t->Incr("k", hits, 1), i);
  // The first call looked the key up; the 99 others took the memo.
  EXPECT_EQ(internal::IncrMemoHits() - before, 99u);
  // By name too (the same column), and an overflow still says so.
  EXPECT_EQ(*t->Incr("k", "hits", 1), 101);
  EXPECT_EQ(internal::IncrMemoHits() - before, 100u);
  EXPECT_THAT(t->Incr("k", hits, INT64_MAX),
              StatusIsWith(absl::StatusCode::kOutOfRange, "out of range"));
  EXPECT_EQ(*t->Get("k")->GetInt("hits"), 101);
  // A table with expiry takes the general path (a row may have expired),
  // memo or not.
  const Schema with_ttl =
      *Schema::Builder().Int("hits").String("user", 32).WithTtl().Build();
  absl::StatusOr<Table> ttl = Table::Create(with_ttl, {.capacity = 16});
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  const IntColumn ttl_hits = *with_ttl.Int("hits");
  ASSERT_TRUE(ttl->Set("k", {{ttl_hits, 0}}).ok());
  const uint64_t ttl_before = internal::IncrMemoHits();
  for (int i = 1; i <= 3; ++i) ASSERT_EQ(*ttl->Incr("k", ttl_hits, 1), i);
  // An Incr that names a TTL goes to the general path, which refuses one in
  // a table without expiry, memo or not.
  const uint64_t hits_before = internal::IncrMemoHits();
  EXPECT_THAT(t->Incr("k", hits, 1, {.ttl = absl::Seconds(5)}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(internal::IncrMemoHits(), hits_before);
  EXPECT_EQ(*t->Get("k")->GetInt("hits"), 101);
  EXPECT_EQ(internal::IncrMemoHits(), ttl_before);
}

TEST(FastApi, TheMemoFollowsAKeyThatMovedToAnotherRow) {
  const Schema s = Sessions();
  // Capacity 2: one bucket, two rows, so a freed row is the next one used.
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 2});
  ASSERT_TRUE(t.ok());
  const IntColumn hits = *s.Int("hits");
  ASSERT_TRUE(t->Set("k", {{hits, 0}}).ok());
  for (int round = 0; round < 20; ++round) {
    ASSERT_EQ(*t->Incr("k", hits, 1), 1);
    ASSERT_EQ(*t->Incr("k", hits, 1), 2);  // remembered
    // "k" leaves its row and "other" takes it; "k" comes back elsewhere.
    ASSERT_TRUE(t->Del("k").ok());
    ASSERT_TRUE(t->Set("other", {{hits, 0}}).ok());
    ASSERT_TRUE(t->Set("k", {{hits, 0}}).ok());
    ASSERT_EQ(*t->Incr("k", hits, 0), 0) << round;
    EXPECT_EQ(*t->Get("other")->GetInt("hits"), 0) << round;
    ASSERT_TRUE(t->Del("other").ok());
  }
  // A deleted key is not found, memo or not (and not created).
  ASSERT_EQ(*t->Incr("k", hits, 1), 1);
  ASSERT_TRUE(t->Del("k").ok());
  EXPECT_THAT(t->Incr("k", hits, 1, {.create = false}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(t->Count(), 0u);
}

// A thread's memo holds four keys. One found stale (its bucket changed) is
// looked up again and takes back its own entry: the three others stay
// remembered and keep hitting.
TEST(FastApi, AKeyFoundStaleTakesBackItsOwnMemoEntry) {
  const Schema s = Sessions();
  absl::StatusOr<Table> t = Table::Create(s, {.capacity = 64});
  ASSERT_TRUE(t.ok());
  const IntColumn hits = *s.Int("hits");
  const std::vector<std::string> keys = {"rate:a", "rate:b", "rate:c",
                                         "rate:d"};
  for (const std::string& k : keys) {
    ASSERT_TRUE(t->Set(k, {{hits, 0}}).ok());
    ASSERT_EQ(*t->Incr(k, hits, 1), 1);  // looked up, remembered
  }
  uint64_t before = internal::IncrMemoHits();
  for (const std::string& k : keys) ASSERT_EQ(*t->Incr(k, hits, 1), 2);
  ASSERT_EQ(internal::IncrMemoHits() - before, 4u);
  for (int round = 0; round < 8; ++round) {
    const std::string& stale = keys[(round * 3) % 4];
    // The key is deleted and set again: its bucket's sequence moves.
    ASSERT_TRUE(t->Del(stale).ok());
    ASSERT_TRUE(t->Set(stale, {{hits, 2 + round}}).ok());
    before = internal::IncrMemoHits();
    ASSERT_EQ(*t->Incr(stale, hits, 1), 3 + round);  // looked up again
    EXPECT_EQ(internal::IncrMemoHits(), before) << round;
    for (const std::string& k : keys) {
      if (k != stale) {
        ASSERT_TRUE(t->Incr(k, hits, 0).ok());
      }
    }
    ASSERT_EQ(*t->Incr(stale, hits, -1), 2 + round);
    EXPECT_EQ(internal::IncrMemoHits() - before, 4u) << round;
  }
}

TEST(FastApi, TheMemoTellsTablesColumnsAndKeysApart) {
  const Schema s = Sessions();
  const IntColumn hits = *s.Int("hits");
  const IntColumn small = *s.Int("small");
  absl::StatusOr<Table> a = Table::Create(s, {.capacity = 64});
  absl::StatusOr<Table> b = Table::Create(s, {.capacity = 64});
  ASSERT_TRUE(a.ok() && b.ok());
  // Keys the memo's cheap test cannot tell apart: same size, same first
  // and last 8 bytes (20 and 40 bytes); a 41-byte key, never remembered;
  // short keys of 1 to 7 bytes.
  const std::vector<std::string> keys = {
      "session-000001-abcde", "session-000002-abcde",
      std::string(16, 'x') + "0" + std::string(23, 'y'),
      std::string(16, 'x') + "1" + std::string(23, 'y'),
      std::string(41, 'z'), "a", "ab", "abc", "abcd", "abcde", "abcdefg",
      "abcdefgh"};
  for (const std::string& k : keys) {
    ASSERT_TRUE(a->Set(k, {{hits, 0}, {small, 0}}).ok());
    ASSERT_TRUE(b->Set(k, {{hits, 0}, {small, 0}}).ok());
  }
  const uint64_t before = internal::IncrMemoHits();
  for (int64_t i = 1; i <= 5; ++i) {
    for (size_t k = 0; k < keys.size(); ++k) {
      const int64_t d = static_cast<int64_t>(k) + 1;
      ASSERT_EQ(*a->Incr(keys[k], hits, d), (2 * i - 1) * d) << keys[k];
      ASSERT_EQ(*a->Incr(keys[k], hits, d), 2 * i * d) << keys[k];
      ASSERT_EQ(*a->Incr(keys[k], small, 1), i) << keys[k];
      ASSERT_EQ(*b->Incr(keys[k], hits, 100), 100 * i) << keys[k];
    }
  }
  EXPECT_GT(internal::IncrMemoHits(), before);
  for (size_t k = 0; k < keys.size(); ++k) {
    const int64_t d = static_cast<int64_t>(k) + 1;
    EXPECT_EQ(*a->Get(keys[k])->GetInt("hits"), 10 * d) << keys[k];
    EXPECT_EQ(*a->Get(keys[k])->GetInt("small"), 5) << keys[k];
    EXPECT_EQ(*b->Get(keys[k])->GetInt("hits"), 500) << keys[k];
    EXPECT_EQ(*b->Get(keys[k])->GetInt("small"), 0) << keys[k];
  }
}

// The memo checks a remembered row's key before the lock (the bucket's
// sequence, checked under it, is what makes the row trustworthy; the key
// check keeps a sequence that wrapped round from sending the add to another
// key). A key of 9 to 16 bytes is compared as two words the entry keeps;
// this checks that compare against rows that differ from the key in one
// byte anywhere, or in length, for every key size around that range.
TEST(FastApi, TheMemosRowKeyCheckTellsEveryByteAndLengthApart) {
  // A row as the view describes it: the key's length in the low 16 bits of
  // word 0, the key's bytes from byte 8 (on a word), zero-padded.
  internal::FastIncrView v;
  v.core_id = ~uint64_t{0};  // no table's: never matches a real Incr
  v.key_offset = 8;
  v.key_len_word = 0;
  v.key_len_shift = 0;
  v.key_len_mask = 0xffff;
  v.key_words_aligned = true;
  alignas(8) std::byte row[8 + 32] = {};
  const auto write_row = [&](const std::string& k) {
    std::memset(row, 0, sizeof(row));
    const uint64_t len = k.size();
    std::memcpy(row, &len, 8);
    std::memcpy(row + 8, k.data(), k.size());
  };
  uint64_t lock = 0, seq = 0;
  for (size_t n = 1; n <= 24; ++n) {
    std::string key(n, 'k');
    for (size_t i = 0; i < n; ++i) key[i] = static_cast<char>('a' + i);
    internal::RememberIncr(v, key, 0, 0, 8, &lock, &seq, row, 0,
                           OwnerToken{1, 1});
    internal::IncrMemo& memo = internal::tls_incr_memo;
    internal::IncrMemoEntry& e = memo.entries[memo.last_hit];
    ASSERT_EQ(e.core_id, v.core_id);
    write_row(key);
    EXPECT_TRUE(internal::RememberedKeyIs(v, e, row, key)) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string other = key;
      other[i] = 'Z';
      write_row(other);
      EXPECT_FALSE(internal::RememberedKeyIs(v, e, row, key)) << n << " " << i;
    }
    // One byte shorter or longer (the row's bytes past its length are 0).
    write_row(key.substr(0, n - 1));
    EXPECT_FALSE(internal::RememberedKeyIs(v, e, row, key)) << n;
    write_row(key + std::string(1, '\0'));
    EXPECT_FALSE(internal::RememberedKeyIs(v, e, row, key)) << n;
    e.core_id = 0;  // leave the thread's memo as a real Incr would find it
  }
}

TEST(FastApi, AClosedTablesMemoNeverReachesTheNextTable) {
  const Schema s = Sessions();
  const IntColumn hits = *s.Int("hits");
  // Tables made and closed one after another are often given the same
  // addresses (the core's, the segment's); each must count on its own.
  for (int64_t round = 0; round < 20; ++round) {
    absl::StatusOr<Table> t = Table::Create(s, {.capacity = 16});
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(t->Set("k", {{hits, round * 100}}).ok());
    ASSERT_EQ(*t->Incr("k", hits, 1), round * 100 + 1);
    ASSERT_EQ(*t->Incr("k", hits, 1), round * 100 + 2);
  }
}

TEST(FastApi, StringValuesReferToTheCallersBytesUnlessOwned) {
  std::string name = "bo";
  const Value view = name;  // an lvalue: refers to it
  EXPECT_FALSE(view.owns_string());
  EXPECT_EQ(view.string_value().data(), name.data());
  const Value owned = std::string("bo");  // an rvalue: owns it
  EXPECT_TRUE(owned.owns_string());
  EXPECT_TRUE(Value::Copy(name).owns_string());
  EXPECT_EQ(view, owned);
  EXPECT_FALSE(Value("b") == owned);
  // A write through a view stores the bytes.
  absl::StatusOr<Table> t = Table::Create(Sessions(), {.capacity = 4});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", {{"user", name}}).ok());
  name = "changed after the write";
  EXPECT_EQ(*t->GetColumn("k", "user"), Value("bo"));
  // Values a Row returns own their bytes: they outlive the Row.
  Value kept;
  {
    absl::StatusOr<Row> row = t->Get("k");
    ASSERT_TRUE(row.ok());
    kept = *row->Get("user");
  }
  EXPECT_TRUE(kept.owns_string());
  EXPECT_EQ(kept.string_value(), "bo");
}

TEST(FastApi, FindManyFindsEachKeyAsFindWould) {
  absl::StatusOr<Table> t = Table::Create(Sessions(), {.capacity = 256});
  ASSERT_TRUE(t.ok());
  const IntColumn hits = *t->schema().Int("hits");
  for (int i = 0; i < 100; i += 2) {
    ASSERT_TRUE(t->Set(absl::StrCat("key", i), {{hits, i}}).ok());
  }
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) names.push_back(absl::StrCat("key", i));
  std::vector<absl::string_view> keys(names.begin(), names.end());
  std::vector<Row> rows(keys.size());
  std::unique_ptr<bool[]> found(new bool[keys.size()]);
  ASSERT_TRUE(t->FindMany(keys, absl::MakeSpan(rows),
                          absl::MakeSpan(found.get(), keys.size()))
                  .ok());
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(found[i], i % 2 == 0) << i;
    EXPECT_EQ(rows[i][hits], i % 2 == 0 ? i : 0) << i;
  }
  // Bad input: nothing is read.
  EXPECT_THAT(t->FindMany(keys, absl::MakeSpan(rows).subspan(1),
                          absl::MakeSpan(found.get(), keys.size())),
              StatusIs(absl::StatusCode::kInvalidArgument));
  keys[3] = "";
  EXPECT_THAT(t->FindMany(keys, absl::MakeSpan(rows),
                          absl::MakeSpan(found.get(), keys.size())),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "empty key"));
}

TEST(FastApi, AnEmptyTableRefusesEveryCall) {
  Table t;
  EXPECT_FALSE(t.is_open());
  EXPECT_EQ(t.schema().column_count(), 0);
  EXPECT_EQ(t.Count(), 0u);
  EXPECT_THAT(t.Get("k"), StatusIs(absl::StatusCode::kFailedPrecondition));
  Row row;
  EXPECT_THAT(t.Find("k", &row),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Set("k", {{"n", 1}}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Incr("k", "n", 1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.ForEach([](const Row&) { return true; }),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Remove(), StatusIs(absl::StatusCode::kFailedPrecondition));
  // A member that is opened later, and a moved-from handle.
  absl::StatusOr<Table> opened = Table::Create(Sessions(), {.capacity = 4});
  ASSERT_TRUE(opened.ok());
  t = *std::move(opened);
  EXPECT_TRUE(t.is_open());
  ASSERT_TRUE(t.Set("k", {{"hits", 1}}).ok());
  Row shaped;  // shaped for t's rows: Find's inline path would take it
  ASSERT_TRUE(*t.Find("k", &shaped));
  Table moved = std::move(t);
  EXPECT_FALSE(t.is_open());  // NOLINT(bugprone-use-after-move)
  EXPECT_THAT(t.Get("k"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(t.Find("k", &shaped),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*moved.GetColumn("k", "hits"), Value(1));
  EXPECT_TRUE(*moved.Find("k", &shaped));
  // Moved back by assignment: the inline path goes with the table.
  t = std::move(moved);
  EXPECT_TRUE(*t.Find("k", &shaped));
  EXPECT_THAT(moved.Find("k", &shaped),  // NOLINT(bugprone-use-after-move)
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(FastApi, StatsSayWhichPagesBackTheTable) {
  absl::StatusOr<Table> t = Table::Create(Sessions(), {.capacity = 1000});
  ASSERT_TRUE(t.ok());
  const TableStats st = t->Stats();
  EXPECT_TRUE(st.page_bytes == 4096 || st.page_bytes == (2u << 20))
      << st.page_bytes;
  EXPECT_LE(st.huge_page_bytes, t->segment().size() + (2u << 20));
}

}  // namespace
}  // namespace shmkit
