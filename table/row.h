// Row: a consistent copy of one table row (its key and every column),
// decoded on demand. Owns its bytes; valid after the table is gone.
// Reusable: Table::Get(key, &row) overwrites it without allocating once its
// buffers have grown to the row size. After a read that found nothing, the
// accessors return FailedPrecondition.
#ifndef SHMKIT_TABLE_ROW_H_
#define SHMKIT_TABLE_ROW_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/table/schema.h"

namespace shmkit {

namespace internal {
struct RowLayout;
class RowAccess;
class RowMaker;
class TableCore;
}  // namespace internal

class Row {
 public:
  Row() = default;
  Row(const Row&) = default;
  Row& operator=(const Row&) = default;
  // A moved-from Row holds nothing (present() is false, the accessors read
  // 0 / empty: its buffer went with the move) and is shaped for no table;
  // the next lookup into it shapes it again.
  Row(Row&& other) noexcept;
  Row& operator=(Row&& other) noexcept;

  absl::string_view key() const;
  const Schema& schema() const { return *schema_; }

  // Whether the last read into this Row found a row.
  bool present() const { return present_; }

  // The fast way: a column by its typed handle (Schema::Int, ::Float,
  // ::String), inline and unchecked beyond one comparison: a handle of
  // another schema, or a Row that holds nothing, reads as 0 / empty.
  //   if (*table.Find(key, &row)) total += row[hits];
  // A string whose stored length exceeds its column (only a corrupted
  // segment holds one: Table::Find does not look, GetString says DataLoss)
  // reads as empty, never past the Row's buffer.
  int64_t operator[](IntColumn c) const {
    if (!Holds(c.schema)) return 0;
    const std::byte* p = bytes_.data() + c.offset;
    switch (c.bytes) {
      case 1:
        return Load<int8_t>(p);
      case 2:
        return Load<int16_t>(p);
      case 4:
        return Load<int32_t>(p);
      default:
        return Load<int64_t>(p);
    }
  }
  double operator[](FloatColumn c) const {
    if (!Holds(c.schema)) return 0;
    const std::byte* p = bytes_.data() + c.offset;
    return c.bytes == 4 ? static_cast<double>(Load<float>(p)) : Load<double>(p);
  }
  absl::string_view operator[](StringColumn c) const {
    if (!Holds(c.schema)) return {};
    const std::byte* p = bytes_.data();
    const uint32_t len = c.len_bytes == 1   ? Load<uint8_t>(p + c.len_offset)
                         : c.len_bytes == 2 ? Load<uint16_t>(p + c.len_offset)
                                            : Load<uint32_t>(p + c.len_offset);
    if (ABSL_PREDICT_FALSE(len > c.max)) return {};
    return {reinterpret_cast<const char*>(p) + c.offset, len};
  }

  // Column values by index (from Schema::ColumnIndex) or by name, checked:
  // InvalidArgument for an unknown column or a type mismatch (GetInt on a
  // float column, ...). GetFloat on a float32 column widens to double.
  absl::StatusOr<int64_t> GetInt(int column) const;
  absl::StatusOr<double> GetFloat(int column) const;
  absl::StatusOr<absl::string_view> GetString(int column) const;
  absl::StatusOr<Value> Get(int column) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view column) const;
  absl::StatusOr<double> GetFloat(absl::string_view column) const;
  absl::StatusOr<absl::string_view> GetString(absl::string_view column) const;
  absl::StatusOr<Value> Get(absl::string_view column) const;

  // When the row expires (tables with TTL), nullopt when it never does, and
  // for a Row a lookup left empty (a miss leaves nothing of an earlier hit).
  std::optional<absl::Time> expires_at() const {
    return present_ ? expires_at_ : std::nullopt;
  }

  // "key=... hits=1 score=2.5 user=\"ana\"" (escaped), for logs and tests.
  std::string DebugString() const;

 private:
  friend class internal::RowAccess;
  friend class internal::TableCore;
  friend class internal::RowMaker;
  bool Holds(uint64_t schema) const {
    return present_ && schema == fingerprint_;
  }
  template <typename T>
  static T Load(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));  // rows are little-endian, like x86/arm64
    return v;
  }
  absl::StatusOr<int> Check(int column, ColumnType want, ColumnType also) const;

  std::optional<Schema> schema_;
  const internal::RowLayout* layout_ = nullptr;
  uint64_t fingerprint_ = 0;  // of schema_, for the typed accessors
  std::shared_ptr<const internal::RowLayout> layout_owner_;  // keeps it alive
  // Whether the last read found a row (accessors refuse otherwise: after a
  // miss the buffer holds leftovers).
  bool present_ = false;
  // The key: inside bytes_ (whole-row copies: no separate copy) or in key_
  // (single-column reads, which copy only that column).
  bool key_in_bytes_ = false;
  std::string key_;
  std::vector<std::byte> bytes_;  // the row's bytes, 8-aligned copy
  std::optional<absl::Time> expires_at_;
};

}  // namespace shmkit

#endif  // SHMKIT_TABLE_ROW_H_
