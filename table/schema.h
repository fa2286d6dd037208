// Schema: the typed columns of a shmkit Table, and the values stored in them.
//
//   absl::StatusOr<shmkit::Schema> schema = shmkit::Schema::Builder()
//       .Int("hits", 8).Float("score").String("user", 32)
//       .MaxKeyBytes(64).WithTtl()
//       .Build();
//
// Column types:
//   Int(name, bytes)     signed integer of 1, 2, 4 or 8 bytes; a value out of
//                        that width is InvalidArgument on write, never wrapped
//   Float(name)          IEEE double; Float32(name) for single precision
//                        (values that do not round-trip are InvalidArgument)
//   String(name, max)    up to `max` bytes (1 .. kMaxStringBytes), binary-safe,
//   Bytes(name, max)     with the length stored; longer is InvalidArgument,
//                        never truncated. Bytes differs only in how tools
//                        print it.
// Keys are binary-safe byte strings of 1 .. MaxKeyBytes (default 64, up to
// kMaxKeyBytes).
//
// A Schema is immutable and cheap to copy (shared). Build() validates
// everything and names the offending column.
#ifndef SHMKIT_TABLE_SCHEMA_H_
#define SHMKIT_TABLE_SCHEMA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit {

enum class ColumnType : uint8_t {
  kInt = 1,
  kFloat = 2,
  kString = 3,
  kBytes = 4,
};
absl::string_view ColumnTypeName(ColumnType type);

struct ColumnSpec {
  std::string name;
  ColumnType type = ColumnType::kInt;
  // kInt: 1, 2, 4 or 8. kFloat: 4 or 8. kString/kBytes: maximum length.
  uint32_t size = 8;

  bool is_integer() const { return type == ColumnType::kInt; }
  bool is_float() const { return type == ColumnType::kFloat; }
  bool is_text() const {
    return type == ColumnType::kString || type == ColumnType::kBytes;
  }
  // "int64", "float64", "string(32)", ...
  std::string TypeString() const;
};

// A value for one column: an integer, a float or a byte string. Implicitly
// constructible from the usual C++ types so writes read naturally:
//   table.Set("k", {{"hits", 1}, {"score", 2.5}, {"user", name}});
//
// Strings. A Value made from an absl::string_view, a `const char*` or an
// lvalue std::string refers to those bytes and copies nothing (a write
// allocates nothing): keep them alive and unchanged while the Value is in
// use, which a Value built inside a Set/Add/Update call always is. A Value
// made from an rvalue std::string, or with Value::Copy, owns its bytes; so do
// the Values a Row returns.
class Value {
 public:
  Value() : v_(int64_t{0}) {}
  Value(int v) : v_(int64_t{v}) {}   // NOLINT(runtime/explicit)
  Value(long v) : v_(int64_t{v}) {}  // NOLINT
  Value(long long v) : v_(static_cast<int64_t>(v)) {}        // NOLINT
  Value(unsigned v) : v_(int64_t{v}) {}                      // NOLINT
  Value(double v) : v_(v) {}                                 // NOLINT
  Value(float v) : v_(double{v}) {}                          // NOLINT
  Value(const char* v) : v_(absl::string_view(v)) {}         // NOLINT
  Value(absl::string_view v) : v_(v) {}                      // NOLINT
  Value(const std::string& v) : v_(absl::string_view(v)) {}  // NOLINT
  Value(std::string&& v) : v_(std::move(v)) {}               // NOLINT
  // Large unsigned values are not representable; refuse them at compile time
  // rather than wrap.
  Value(unsigned long) = delete;
  Value(unsigned long long) = delete;
  // A string Value that owns a copy of `v`.
  static Value Copy(absl::string_view v) { return Value(std::string(v)); }

  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return v_.index() >= 2; }
  int64_t int_value() const { return std::get<int64_t>(v_); }
  double float_value() const { return std::get<double>(v_); }
  absl::string_view string_value() const {
    if (const std::string* s = std::get_if<std::string>(&v_)) return *s;
    return std::get<absl::string_view>(v_);
  }
  // Whether a string Value owns its bytes (false: it refers to the caller's).
  bool owns_string() const { return std::holds_alternative<std::string>(v_); }
  // For messages: 42, 2.5, "ana" (escaped).
  std::string DebugString() const;

  // Equal type and value (an owned and a referring string compare by bytes).
  friend bool operator==(const Value& a, const Value& b) {
    if (a.is_string() && b.is_string()) {
      return a.string_value() == b.string_value();
    }
    return a.v_ == b.v_;
  }

 private:
  std::variant<int64_t, double, std::string, absl::string_view> v_;
};

// Text forms, for tools and configuration files: the inverse of
// ColumnSpec::TypeString and of printing a value.
//
// ParseColumnSpec reads "NAME:TYPE", TYPE one of int8 int16 int32 int64 (or
// int), float32 float64 (or float, double), string(MAX) bytes(MAX), as
// TypeString writes them; "NAME:string:MAX", "NAME:bytes:MAX" and
// "NAME:int:BYTES" give the size as a third field. Type names are
// case-insensitive. Only the shape is checked here: Schema::Builder checks
// the name and the size. A malformed text is InvalidArgument quoting it.
absl::StatusOr<ColumnSpec> ParseColumnSpec(absl::string_view text);

// Reads a value for `column` from text: kInt a decimal int64, kFloat a
// finite decimal number, kString the bytes as they are, kBytes two hex
// digits a byte. Anything else is InvalidArgument naming the column. Width
// and length against the column's size are checked by the write, as for any
// Value. The returned Value owns its bytes.
absl::StatusOr<Value> ParseColumnValue(const ColumnSpec& column,
                                       absl::string_view text);

// Typed handles of a schema's columns, from Schema::Int, Schema::Float and
// Schema::String: the name and type are checked once, and then a write names
// the column without a lookup and a Row reads it with one load
// (Row::operator[]). A handle works with every table and row of the schema
// it came from; used with another schema it is refused (writes) or reads as
// zero / empty (rows).
struct IntColumn {
  int index = -1;
  uint32_t offset = 0;  // in a row's bytes
  uint32_t bytes = 8;   // 1, 2, 4 or 8
  uint64_t schema = 0;  // fingerprint of the schema it belongs to
};
struct FloatColumn {
  int index = -1;
  uint32_t offset = 0;
  uint32_t bytes = 8;  // 4 or 8
  uint64_t schema = 0;
};
struct StringColumn {  // string and bytes columns
  int index = -1;
  uint32_t offset = 0;
  uint32_t len_offset = 0;
  uint32_t len_bytes = 1;
  uint32_t max = 0;  // the column's size: no length read beyond it
  uint64_t schema = 0;
};

class Schema {
 public:
  static constexpr int kMaxColumns = 64;
  static constexpr size_t kMaxColumnNameBytes = 31;
  static constexpr uint32_t kMaxStringBytes = 1u << 20;  // 1 MiB
  static constexpr uint32_t kMaxKeyBytes = 1u << 16;     // 64 KiB
  static constexpr uint32_t kDefaultMaxKeyBytes = 64;

  class Builder {
   public:
    Builder& Int(absl::string_view name, uint32_t bytes = 8);
    Builder& Float(absl::string_view name);
    Builder& Float32(absl::string_view name);
    Builder& String(absl::string_view name, uint32_t max_bytes);
    Builder& Bytes(absl::string_view name, uint32_t max_bytes);
    Builder& Column(ColumnSpec spec);
    Builder& MaxKeyBytes(uint32_t bytes);
    // Rows may carry an expiry time (Table::Set with a TTL); costs 8 bytes
    // per row.
    Builder& WithTtl(bool enabled = true);
    // InvalidArgument naming the column for: no columns, more than
    // kMaxColumns, an empty, too long or duplicate name, an int width other
    // than 1/2/4/8, a float width other than 4/8, a string size of 0 or
    // above kMaxStringBytes; and for MaxKeyBytes outside 1..kMaxKeyBytes.
    absl::StatusOr<Schema> Build() const;

   private:
    std::vector<ColumnSpec> columns_;
    uint32_t max_key_bytes_ = kDefaultMaxKeyBytes;
    bool ttl_ = false;
  };

  // An empty schema: no columns (what an empty Table reports). Build real
  // ones with Builder.
  Schema();

  int column_count() const { return static_cast<int>(rep_->columns.size()); }
  const ColumnSpec& column(int index) const { return rep_->columns[index]; }
  const std::vector<ColumnSpec>& columns() const { return rep_->columns; }
  // The index of column `name`; InvalidArgument naming it when unknown.
  absl::StatusOr<int> ColumnIndex(absl::string_view name) const;
  // Typed handles (see IntColumn). InvalidArgument for an unknown name or a
  // column of another type.
  absl::StatusOr<IntColumn> Int(absl::string_view name) const;
  absl::StatusOr<FloatColumn> Float(absl::string_view name) const;
  absl::StatusOr<StringColumn> String(absl::string_view name) const;
  uint32_t max_key_bytes() const { return rep_->max_key_bytes; }
  bool ttl() const { return rep_->ttl; }

  // A stable 64-bit digest of the schema (names, types, sizes, key size,
  // TTL): what a segment's header stores and Attach compares.
  uint64_t Fingerprint() const { return rep_->fingerprint; }
  // "hits:int64, score:float64, user:string(32); key<=64; ttl"
  std::string DebugString() const;
  // What differs from `other`, for error messages ("" when equal).
  std::string Diff(const Schema& other) const;

  friend bool operator==(const Schema& a, const Schema& b) {
    return a.Fingerprint() == b.Fingerprint() &&
           a.DebugString() == b.DebugString();
  }

 private:
  struct Rep {
    std::vector<ColumnSpec> columns;
    uint32_t max_key_bytes;
    bool ttl;
    uint64_t fingerprint;
  };
  explicit Schema(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}
  std::shared_ptr<const Rep> rep_;
};

// Checks that `value` can be stored in `column` without loss: right type
// (an integer is accepted for a float column when exactly representable),
// int within the column's width, float32 round-trip, string within its
// maximum. InvalidArgument naming the column otherwise.
absl::Status CheckValueFits(const ColumnSpec& column, const Value& value);

}  // namespace shmkit

#endif  // SHMKIT_TABLE_SCHEMA_H_
