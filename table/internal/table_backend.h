// TableBackend: the seam between the public Table and storage other than
// the shared-memory segment (the Redis backend in redis/ is the first).
//
// A Table holds either a TableCore (shared memory, the default) or a
// TableBackend. Each public method tests the backend pointer first, one
// predictable branch, and forwards the call unchanged: arguments arrive as
// the user passed them, so a backend does its own checks and must answer
// with the same status codes as the shared-memory table (table.h). Nothing in
// table/ knows which backends exist; a backend library builds its Table with
// Table::FromBackend().
//
// MakeRow() fills a Row from decoded values, so that rows read from any
// backend decode through the same accessors as shared-memory rows.
#ifndef SHMKIT_TABLE_INTERNAL_TABLE_BACKEND_H_
#define SHMKIT_TABLE_INTERNAL_TABLE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shmkit/table/row.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"

namespace shmkit::internal {

enum class BackendWrite { kSet, kAdd, kUpdate };

class TableBackend {
 public:
  virtual ~TableBackend() = default;

  virtual const Schema& schema() const = 0;
  // Whether `key` is present; when it is and `row` is not null, its copy.
  virtual absl::StatusOr<bool> Find(absl::string_view key, Row* row) const = 0;
  // Find for each key (the spans have equal sizes, checked by Table). The
  // default asks one key at a time; a backend with round trips batches.
  virtual absl::Status FindMany(absl::Span<const absl::string_view> keys,
                                absl::Span<Row> rows,
                                absl::Span<bool> found) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<bool> f = Find(keys[i], &rows[i]);
      if (!f.ok()) return f.status();
      found[i] = *f;
    }
    return absl::OkStatus();
  }
  virtual absl::StatusOr<Value> GetColumn(absl::string_view key,
                                          ColumnRef column) const = 0;
  virtual absl::StatusOr<bool> Exists(absl::string_view key) const = 0;
  virtual absl::Status Write(absl::string_view key,
                             absl::Span<const FieldValue> values,
                             BackendWrite mode, const SetOptions& options) = 0;
  // Deletes `key`; with `row` not null, returns the deleted row in it.
  virtual absl::Status Delete(absl::string_view key, Row* row) = 0;
  virtual absl::StatusOr<int64_t> Incr(absl::string_view key, ColumnRef column,
                                       int64_t delta,
                                       const IncrOptions& options) = 0;
  virtual absl::StatusOr<double> IncrFloat(absl::string_view key,
                                           ColumnRef column, double delta,
                                           const IncrOptions& options) = 0;
  virtual absl::StatusOr<bool> CompareAndSet(absl::string_view key,
                                             ColumnRef column,
                                             const Value& expected,
                                             const Value& desired) = 0;
  virtual absl::Status Clear() = 0;
  virtual absl::StatusOr<uint64_t> Sweep() = 0;
  virtual uint64_t Count() const = 0;
  // Visits every row (Table::ForEach's guarantee is the backend's to keep
  // or to document).
  virtual absl::Status ForEach(absl::FunctionRef<bool(const Row&)> fn) const = 0;
  virtual absl::StatusOr<ScanPage> Scan(uint64_t cursor,
                                        size_t max_rows) const = 0;
  virtual TableStats Stats() const = 0;
  virtual absl::Status CheckConsistency() const = 0;
  virtual absl::Status Remove() = 0;
};

struct RowLayout;

// Fills Rows from decoded values, so a row read from any backend decodes
// through the same accessors as one copied out of a segment. Built once per
// schema (it holds the row layout); Fill() reuses the Row's buffers.
class RowMaker {
 public:
  explicit RowMaker(const Schema& schema);
  // `values` holds one value per column, each already checked against its
  // column (CheckValueFits).
  void Fill(absl::string_view key, absl::Span<const Value> values,
            std::optional<absl::Time> expires_at, Row* row) const;

 private:
  Schema schema_;
  std::shared_ptr<const RowLayout> layout_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_TABLE_BACKEND_H_
