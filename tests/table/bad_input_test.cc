// The bad-input matrix: each case gets its exact status code and leaves the
// table exactly as it was.
#include <functional>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::Snapshot;
using ::shmkit::testing::UniqueKey;

struct Case {
  std::string name;
  absl::StatusCode code;
  std::function<absl::Status(Table&)> call;
};

TEST(BadInput, MatrixOfErrorsChangesNothing) {
  const Schema schema = *Schema::Builder()
                             .Int("i64")
                             .Int("i8", 1)
                             .Int("i16", 2)
                             .Int("i32", 4)
                             .Float("f64")
                             .Float32("f32")
                             .String("s", 8)
                             .MaxKeyBytes(16)
                             .Build();
  const IpcKey key = UniqueKey();
  absl::StatusOr<Table> table =
      Table::Create(schema, {.capacity = 4, .key = key});
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE(table->Set("a", {{"i64", 1}, {"i8", 100}, {"s", "x"}}).ok());
  ASSERT_TRUE(
      table->Set("b", {{"i64", INT64_MAX + 0LL}, {"f64", 1.5e308}}).ok());
  ASSERT_TRUE(table->Set("c", {{"i16", 7}}).ok());
  absl::StatusOr<Table> read_only = Table::Attach(key, {.read_only = true});
  ASSERT_TRUE(read_only.ok()) << read_only.status();

  using C = absl::StatusCode;
  const std::vector<Case> cases = {
      {"key too long", C::kInvalidArgument,
       [](Table& t) {
         return t.Set(std::string(17, 'k'), {{"i64", 1}});
       }},
      {"empty key", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("", {{"i64", 1}});
       }},
      {"get key too long", C::kInvalidArgument,
       [](Table& t) { return t.Get(std::string(17, 'k')).status(); }},
      {"unknown column", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"nope", 1}});
       }},
      {"column index out of range", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{99, 1}});
       }},
      {"column given twice", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i64", 1}, {"i64", 2}});
       }},
      {"string too long", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"s", "123456789"}});
       }},
      {"int8 overflow", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i8", 128}});
       }},
      {"int16 underflow", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i16", -32769}});
       }},
      {"int32 overflow", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i32", 2147483648LL}});
       }},
      {"string into int", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i64", "1"}});
       }},
      {"int into string", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"s", 1}});
       }},
      {"float into int", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i64", 1.5}});
       }},
      {"float32 loses precision", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"f32", 0.1}});
       }},
      {"int not exact in float64", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"f64", (1LL << 53) + 1}});
       }},
      {"ttl on a table without ttl", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("a", {{"i64", 2}}, {.ttl = absl::Seconds(1)});
       }},
      {"bad column in a new key", C::kInvalidArgument,
       [](Table& t) {
         return t.Set("new", {{"i8", 1000}});
       }},
      {"add existing", C::kAlreadyExists,
       [](Table& t) {
         return t.Add("a", {{"i64", 5}});
       }},
      {"update absent", C::kNotFound,
       [](Table& t) {
         return t.Update("zz", {{"i64", 5}});
       }},
      {"del absent", C::kNotFound, [](Table& t) { return t.Del("zz"); }},
      {"get-and-delete absent", C::kNotFound,
       [](Table& t) { return t.GetAndDelete("zz").status(); }},
      {"incr absent", C::kNotFound,
       [](Table& t) { return t.Incr("zz", "i64", 1).status(); }},
      {"incr string column", C::kInvalidArgument,
       [](Table& t) { return t.Incr("a", "s", 1).status(); }},
      {"incr float column as int", C::kInvalidArgument,
       [](Table& t) { return t.Incr("a", "f64", 1).status(); }},
      {"incr int column as float", C::kInvalidArgument,
       [](Table& t) { return t.IncrFloat("a", "i64", 1.0).status(); }},
      {"incr int8 past its width", C::kOutOfRange,
       [](Table& t) { return t.Incr("a", "i8", 28).status(); }},
      {"incr int64 overflow", C::kOutOfRange,
       [](Table& t) { return t.Incr("b", "i64", 1).status(); }},
      {"decr by INT64_MIN", C::kOutOfRange,
       [](Table& t) { return t.Decr("a", "i64", INT64_MIN + 0LL).status(); }},
      {"incr float to infinity", C::kOutOfRange,
       [](Table& t) { return t.IncrFloat("b", "f64", 1.5e308).status(); }},
      {"incr float by NaN", C::kInvalidArgument,
       [](Table& t) { return t.IncrFloat("b", "f64", std::nan("")).status(); }},
      {"incr with ttl but no create", C::kInvalidArgument,
       [](Table& t) {
         return t.Incr("a", "i64", 1, {.ttl = absl::Seconds(1)}).status();
       }},
      {"cas wrong expected type", C::kInvalidArgument,
       [](Table& t) { return t.CompareAndSet("a", "i64", "x", 2).status(); }},
      {"cas desired out of width", C::kInvalidArgument,
       [](Table& t) { return t.CompareAndSet("a", "i8", 100, 300).status(); }},
      {"cas absent", C::kNotFound,
       [](Table& t) { return t.CompareAndSet("zz", "i64", 1, 2).status(); }},
      {"insert into a full table", C::kResourceExhausted,
       [](Table& t) {
         absl::Status st = t.Set("d", {{"i64", 4}});  // the 4th row fits
         if (!st.ok()) return st;
         st = t.Set("e", {{"i64", 5}});
         (void)t.Del("d");  // restore the table for the next cases
         return st;
       }},
      {"scan cursor past the end", C::kInvalidArgument,
       [](Table& t) { return t.Scan(1'000'000, 10).status(); }},
  };
  ASSERT_GE(cases.size(), 25u);
  const auto before = Snapshot(*table);
  ASSERT_EQ(before.size(), 3u);
  for (const Case& c : cases) {
    const absl::Status st = c.call(*table);
    EXPECT_EQ(st.code(), c.code) << c.name << ": " << st;
    EXPECT_EQ(Snapshot(*table), before) << c.name << " changed the table";
  }
  // Writes through a read-only handle.
  EXPECT_EQ(read_only->Set("a", {{"i64", 9}}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(read_only->Del("a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Snapshot(*table), before);
  EXPECT_EQ(table->Stats().failed_inserts, 1u);
  ASSERT_TRUE(table->Remove().ok());
}

// One rule for float columns, through every call that writes one: values
// and deltas that are not finite are InvalidArgument, results of IncrFloat
// that overflow to infinity are OutOfRange, and nothing changes.
TEST(BadInput, FloatColumnsHoldFiniteNumbersOnly) {
  const Schema schema =
      *Schema::Builder().Float("f64").Float32("f32").Build();
  absl::StatusOr<Table> table = Table::Create(schema, {.capacity = 4});
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE(table
                  ->Set("max", {{"f64", std::numeric_limits<double>::max()},
                                {"f32", std::numeric_limits<float>::max()}})
                  .ok());
  const auto before = Snapshot(*table);
  using C = absl::StatusCode;
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()}) {
    for (const char* column : {"f64", "f32"}) {
      SCOPED_TRACE(absl::StrCat(column, " = ", bad));
      EXPECT_EQ(table->Set("max", {{column, bad}}).code(), C::kInvalidArgument);
      EXPECT_EQ(table->Set("new", {{column, bad}}).code(), C::kInvalidArgument);
      EXPECT_EQ(table->Add("new", {{column, bad}}).code(), C::kInvalidArgument);
      EXPECT_EQ(table->Update("max", {{column, bad}}).code(),
                C::kInvalidArgument);
      EXPECT_EQ(table->CompareAndSet("max", column, 0.0, bad).status().code(),
                C::kInvalidArgument);
      EXPECT_EQ(table->CompareAndSet("max", column, bad, 0.0).status().code(),
                C::kInvalidArgument);
      EXPECT_EQ(table->IncrFloat("max", column, bad).status().code(),
                C::kInvalidArgument);
      EXPECT_EQ(table->IncrFloat("new", column, bad).status().code(),
                C::kInvalidArgument);
      EXPECT_EQ(Snapshot(*table), before);
    }
  }
  // Finite deltas whose result is not finite: past double's and float's
  // largest values.
  EXPECT_EQ(table->IncrFloat("max", "f64", std::numeric_limits<double>::max())
                .status()
                .code(),
            C::kOutOfRange);
  EXPECT_EQ(table->IncrFloat("max", "f32", std::numeric_limits<float>::max())
                .status()
                .code(),
            C::kOutOfRange);
  // A finite double beyond float's range does not fit a float32 column.
  EXPECT_EQ(table->Set("max", {{"f32", 1e300}}).code(), C::kInvalidArgument);
  EXPECT_EQ(Snapshot(*table), before);
}

}  // namespace
}  // namespace shmkit
