#include "shmkit/table/schema.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

TEST(Schema, BuildsAndDescribesColumns) {
  absl::StatusOr<Schema> s = Schema::Builder()
                                 .Int("hits", 8)
                                 .Int("small", 1)
                                 .Float("score")
                                 .Float32("ratio")
                                 .String("user", 32)
                                 .Bytes("blob", 300)
                                 .MaxKeyBytes(1024)
                                 .WithTtl()
                                 .Build();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->column_count(), 6);
  EXPECT_EQ(*s->ColumnIndex("user"), 4);
  EXPECT_EQ(s->column(1).TypeString(), "int8");
  EXPECT_EQ(s->column(3).TypeString(), "float32");
  EXPECT_EQ(s->max_key_bytes(), 1024u);
  EXPECT_TRUE(s->ttl());
  EXPECT_EQ(s->DebugString(),
            "hits:int64, small:int8, score:float64, ratio:float32, "
            "user:string(32), blob:bytes(300); key<=1024; ttl");
  EXPECT_THAT(s->ColumnIndex("nope"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"nope\""));
}

TEST(Schema, InvalidSchemasNameTheColumn) {
  struct Case {
    Schema::Builder builder;
    std::string fragment;
  };
  std::vector<Case> cases;
  cases.push_back({Schema::Builder(), "at least one column"});
  cases.push_back({Schema::Builder().Int("a").Int("a"), "\"a\": duplicate"});
  cases.push_back({Schema::Builder().Int(""), "empty name"});
  cases.push_back({Schema::Builder().Int(std::string(32, 'n')), "at most 31"});
  cases.push_back(
      {Schema::Builder().Int("w", 3), "\"w\": an int column is 1, 2, 4 or 8"});
  cases.push_back(
      {Schema::Builder().String("s", 0), "\"s\": a string column holds"});
  cases.push_back(
      {Schema::Builder().Bytes("b", Schema::kMaxStringBytes + 1), "\"b\""});
  cases.push_back({Schema::Builder().Column({"f", ColumnType::kFloat, 2}),
                   "\"f\": a float"});
  cases.push_back({Schema::Builder().Int("k").MaxKeyBytes(0), "MaxKeyBytes 0"});
  cases.push_back(
      {Schema::Builder().Int("k").MaxKeyBytes(Schema::kMaxKeyBytes + 1),
       "MaxKeyBytes"});
  Schema::Builder many;
  for (int i = 0; i <= Schema::kMaxColumns; ++i) many.Int(absl::StrCat("c", i));
  cases.push_back({many, "too many columns"});
  for (const Case& c : cases) {
    EXPECT_THAT(c.builder.Build(),
                StatusIsWith(absl::StatusCode::kInvalidArgument, c.fragment));
  }
}

TEST(Schema, FingerprintTracksEveryAttribute) {
  const Schema a = *Schema::Builder().Int("n").String("s", 8).Build();
  EXPECT_EQ(a.Fingerprint(),
            Schema::Builder().Int("n").String("s", 8).Build()->Fingerprint());
  for (const Schema& b :
       {*Schema::Builder().Int("n").String("s", 9).Build(),
        *Schema::Builder().Int("n", 4).String("s", 8).Build(),
        *Schema::Builder().Int("m").String("s", 8).Build(),
        *Schema::Builder().Int("n").Bytes("s", 8).Build(),
        *Schema::Builder().Int("n").String("s", 8).MaxKeyBytes(65).Build(),
        *Schema::Builder().Int("n").String("s", 8).WithTtl().Build(),
        *Schema::Builder().String("s", 8).Int("n").Build()}) {
    EXPECT_NE(a.Fingerprint(), b.Fingerprint()) << b.DebugString();
    EXPECT_FALSE(a.Diff(b).empty());
  }
  EXPECT_EQ(a.Diff(a), "");
}

TEST(Schema, CheckValueFitsWidthsTypesAndLengths) {
  const Schema s = *Schema::Builder()
                        .Int("i8", 1)
                        .Int("i16", 2)
                        .Int("i32", 4)
                        .Int("i64", 8)
                        .Float("f64")
                        .Float32("f32")
                        .String("s", 4)
                        .Build();
  auto fits = [&](int c, Value v) { return CheckValueFits(s.column(c), v); };
  EXPECT_TRUE(fits(0, 127).ok());
  EXPECT_TRUE(fits(0, -128).ok());
  EXPECT_THAT(fits(0, 128), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(fits(1, -32769), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(fits(2, 2147483647).ok());
  EXPECT_THAT(fits(2, 2147483648LL),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(fits(3, INT64_MIN + 0LL).ok());
  EXPECT_TRUE(fits(4, 3).ok());  // an exact int is a fine double
  EXPECT_THAT(fits(4, (1LL << 53) + 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(fits(5, 0.5).ok());
  EXPECT_THAT(fits(5, 0.1),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "float32"));
  EXPECT_TRUE(fits(6, "abcd").ok());
  EXPECT_THAT(fits(6, "abcde"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "too long"));
  EXPECT_THAT(fits(6, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(fits(3, 1.5), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(fits(3, "1"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Every spec TypeString can describe reads back from "NAME:" + TypeString().
TEST(ColumnText, ParseColumnSpecIsTheInverseOfTypeString) {
  const std::vector<ColumnSpec> specs = {
      {"a", ColumnType::kInt, 1},     {"b", ColumnType::kInt, 2},
      {"c", ColumnType::kInt, 4},     {"d", ColumnType::kInt, 8},
      {"e", ColumnType::kFloat, 4},   {"f", ColumnType::kFloat, 8},
      {"g", ColumnType::kString, 32}, {"h", ColumnType::kBytes, 1024}};
  for (const ColumnSpec& spec : specs) {
    const std::string text = spec.name + ":" + spec.TypeString();
    absl::StatusOr<ColumnSpec> back = ParseColumnSpec(text);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status();
    EXPECT_EQ(back->name, spec.name) << text;
    EXPECT_EQ(back->type, spec.type) << text;
    EXPECT_EQ(back->size, spec.size) << text;
  }
}

TEST(ColumnText, ParseColumnSpecTakesTheToolsForms) {
  absl::StatusOr<ColumnSpec> c = ParseColumnSpec("user:STRING:16");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->type, ColumnType::kString);
  EXPECT_EQ(c->size, 16u);
  c = ParseColumnSpec("n:int:2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->type, ColumnType::kInt);
  EXPECT_EQ(c->size, 2u);
  c = ParseColumnSpec("x:double");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->type, ColumnType::kFloat);
  EXPECT_EQ(c->size, 8u);
  c = ParseColumnSpec("hits:int");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->size, 8u);
}

TEST(ColumnText, ParseColumnSpecNamesWhatIsWrong) {
  EXPECT_THAT(ParseColumnSpec("hits"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "wrong shape"));
  EXPECT_THAT(ParseColumnSpec("a:intt"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "unknown type \"intt\""));
  EXPECT_THAT(
      ParseColumnSpec("a:string"),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "needs a maximum size"));
  EXPECT_THAT(ParseColumnSpec("a:string(8):8"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "twice"));
  EXPECT_THAT(ParseColumnSpec("a:int32:4"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "width is in the type name"));
  EXPECT_THAT(
      ParseColumnSpec("a:float:4"),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "float takes no size"));
}

TEST(ColumnText, ParseColumnValueReadsEachType) {
  const ColumnSpec i{"i", ColumnType::kInt, 8};
  const ColumnSpec f{"f", ColumnType::kFloat, 8};
  const ColumnSpec s{"s", ColumnType::kString, 8};
  const ColumnSpec b{"b", ColumnType::kBytes, 8};
  absl::StatusOr<Value> v = ParseColumnValue(i, "-9223372036854775808");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, Value(static_cast<long long>(INT64_MIN)));
  v = ParseColumnValue(f, "2.5");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, Value(2.5));
  const std::string text = "a:b";
  v = ParseColumnValue(s, text);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->owns_string());
  EXPECT_EQ(v->string_value(), "a:b");
  v = ParseColumnValue(b, "00fFa0");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->string_value(), std::string("\x00\xff\xa0", 3));
}

TEST(ColumnText, ParseColumnValueRefusesWhatIsNotOfTheType) {
  const ColumnSpec i{"i", ColumnType::kInt, 8};
  const ColumnSpec f{"f", ColumnType::kFloat, 8};
  const ColumnSpec b{"b", ColumnType::kBytes, 8};
  EXPECT_THAT(ParseColumnValue(i, "9223372036854775808"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "int64 range"));
  EXPECT_THAT(ParseColumnValue(i, "1.5"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "column \"i\""));
  EXPECT_THAT(ParseColumnValue(f, "inf"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "finite"));
  EXPECT_THAT(ParseColumnValue(b, "abc"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "two digits"));
  EXPECT_THAT(ParseColumnValue(b, "zz"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "not hex"));
}

}  // namespace
}  // namespace shmkit
