// Helpers for the table tests.
#ifndef SHMKIT_TESTS_TABLE_TABLE_TEST_UTIL_H_
#define SHMKIT_TESTS_TABLE_TABLE_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "shmkit/table/table.h"

namespace shmkit::testing {

// Workload W's row: int64 + double + string(64), 16-byte keys.
inline Schema WSchema(bool ttl = false) {
  return *Schema::Builder()
              .Int("n", 8)
              .Float("x")
              .String("s", 64)
              .MaxKeyBytes(16)
              .WithTtl(ttl)
              .Build();
}

// A row whose every column derives from one version number `v`: a reader
// that sees columns from two versions has seen a torn row.
inline std::vector<FieldValue> VersionedFields(int64_t v) {
  return {{"n", static_cast<long long>(v)},
          {"x", static_cast<double>(v) * 0.5},
          {"s", absl::StrFormat("v=%020d|%020d", v, v)}};
}
// OK when `row` is consistent; sets *v to its version.
inline ::testing::AssertionResult RowIsVersioned(const Row& row, int64_t* v) {
  absl::StatusOr<int64_t> n = row.GetInt("n");
  absl::StatusOr<double> x = row.GetFloat("x");
  absl::StatusOr<absl::string_view> s = row.GetString("s");
  if (!n.ok() || !x.ok() || !s.ok()) {
    return ::testing::AssertionFailure()
           << "unreadable row " << row.DebugString();
  }
  if (*x != static_cast<double>(*n) * 0.5 ||
      *s != absl::StrFormat("v=%020d|%020d", *n, *n)) {
    return ::testing::AssertionFailure() << "torn row " << row.DebugString();
  }
  if (v != nullptr) *v = *n;
  return ::testing::AssertionSuccess();
}

inline std::string SeqKey(uint64_t i) {
  return absl::StrFormat("key-%011d", i);
}

// Everything in the table, by key, for "nothing changed" checks.
inline std::map<std::string, std::string> Snapshot(const Table& table) {
  std::map<std::string, std::string> out;
  absl::Status st = table.ForEach([&](const Row& row) {
    out[std::string(row.key())] = row.DebugString();
    return true;
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_TABLE_TABLE_TEST_UTIL_H_
