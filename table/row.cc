#include "shmkit/table/row.h"

#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/internal/row_io.h"

namespace shmkit {

using internal::SignExtend;

Row::Row(Row&& other) noexcept
    : schema_(std::exchange(other.schema_, std::nullopt)),
      layout_(std::exchange(other.layout_, nullptr)),
      fingerprint_(std::exchange(other.fingerprint_, 0)),
      layout_owner_(std::move(other.layout_owner_)),
      present_(std::exchange(other.present_, false)),
      key_in_bytes_(std::exchange(other.key_in_bytes_, false)),
      key_(std::move(other.key_)),
      bytes_(std::move(other.bytes_)),
      expires_at_(std::exchange(other.expires_at_, std::nullopt)) {
  other.key_.clear();
  other.bytes_.clear();
}

Row& Row::operator=(Row&& other) noexcept {
  if (this != &other) {
    schema_ = std::exchange(other.schema_, std::nullopt);
    layout_ = std::exchange(other.layout_, nullptr);
    fingerprint_ = std::exchange(other.fingerprint_, 0);
    layout_owner_ = std::move(other.layout_owner_);
    present_ = std::exchange(other.present_, false);
    key_in_bytes_ = std::exchange(other.key_in_bytes_, false);
    key_ = std::move(other.key_);
    bytes_ = std::move(other.bytes_);
    expires_at_ = std::exchange(other.expires_at_, std::nullopt);
    other.layout_owner_.reset();
    other.key_.clear();
    other.bytes_.clear();
  }
  return *this;
}

absl::string_view Row::key() const {
  if (!present_) return {};
  if (!key_in_bytes_) return key_;
  // Validated when the row was read: the length fits MaxKeyBytes.
  const uint64_t len = internal::LoadField(
      bytes_.data(), layout_->key_len_offset, layout_->key_len_bytes);
  return {reinterpret_cast<const char*>(bytes_.data()) + layout_->key_offset,
          len};
}

absl::StatusOr<int> Row::Check(int column, ColumnType want,
                               ColumnType also) const {
  if (!present_ || !schema_.has_value() || layout_ == nullptr) {
    return absl::FailedPreconditionError(
        "empty Row (nothing was read into it)");
  }
  if (column < 0 || column >= schema_->column_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column index ", column, " outside 0..", schema_->column_count() - 1));
  }
  const ColumnSpec& spec = schema_->column(column);
  if (spec.type != want && spec.type != also) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", spec.name, "\" is ", spec.TypeString(),
                     ", not ", ColumnTypeName(want)));
  }
  return column;
}

absl::StatusOr<int64_t> Row::GetInt(int column) const {
  absl::StatusOr<int> c = Check(column, ColumnType::kInt, ColumnType::kInt);
  if (!c.ok()) return c.status();
  const ColumnSpec& spec = schema_->column(*c);
  return SignExtend(internal::LoadField(bytes_.data(),
                                        layout_->columns[*c].offset, spec.size),
                    spec.size);
}

absl::StatusOr<double> Row::GetFloat(int column) const {
  absl::StatusOr<int> c = Check(column, ColumnType::kFloat, ColumnType::kFloat);
  if (!c.ok()) return c.status();
  const ColumnSpec& spec = schema_->column(*c);
  return internal::FloatFromBits(
      internal::LoadField(bytes_.data(), layout_->columns[*c].offset,
                          spec.size),
      spec.size);
}

absl::StatusOr<absl::string_view> Row::GetString(int column) const {
  absl::StatusOr<int> c =
      Check(column, ColumnType::kString, ColumnType::kBytes);
  if (!c.ok()) return c.status();
  const internal::RowLayout::Column& lc = layout_->columns[*c];
  const uint64_t len =
      internal::LoadField(bytes_.data(), lc.len_offset, lc.len_bytes);
  // Validated when read; checked again so a Row can never point outside its
  // own buffer.
  if (len > schema_->column(*c).size || lc.offset + len > bytes_.size()) {
    return absl::DataLossError("string length exceeds its column");
  }
  return absl::string_view(
      reinterpret_cast<const char*>(bytes_.data()) + lc.offset, len);
}

absl::StatusOr<Value> Row::Get(int column) const {
  if (!present_ || !schema_.has_value()) {
    return absl::FailedPreconditionError(
        "empty Row (nothing was read into it)");
  }
  if (column < 0 || column >= schema_->column_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column index ", column, " outside 0..", schema_->column_count() - 1));
  }
  switch (schema_->column(column).type) {
    case ColumnType::kInt: {
      absl::StatusOr<int64_t> v = GetInt(column);
      if (!v.ok()) return v.status();
      return Value(static_cast<long long>(*v));
    }
    case ColumnType::kFloat: {
      absl::StatusOr<double> v = GetFloat(column);
      if (!v.ok()) return v.status();
      return Value(*v);
    }
    case ColumnType::kString:
    case ColumnType::kBytes: {
      absl::StatusOr<absl::string_view> v = GetString(column);
      if (!v.ok()) return v.status();
      return Value::Copy(*v);  // outlives the Row
    }
  }
  return absl::InternalError("unknown column type");
}

#define SHMKIT_ROW_BY_NAME(Type, Method)                             \
  absl::StatusOr<Type> Row::Method(absl::string_view column) const { \
    if (!present_ || !schema_.has_value()) {                         \
      return absl::FailedPreconditionError("empty Row");             \
    }                                                                \
    absl::StatusOr<int> index = schema_->ColumnIndex(column);        \
    if (!index.ok()) return index.status();                          \
    return Method(*index);                                           \
  }
SHMKIT_ROW_BY_NAME(int64_t, GetInt)
SHMKIT_ROW_BY_NAME(double, GetFloat)
SHMKIT_ROW_BY_NAME(absl::string_view, GetString)
SHMKIT_ROW_BY_NAME(Value, Get)
#undef SHMKIT_ROW_BY_NAME

std::string Row::DebugString() const {
  if (!present_ || !schema_.has_value()) return "(empty row)";
  std::string out = absl::StrCat("key=\"", absl::CEscape(key()), "\"");
  for (int c = 0; c < schema_->column_count(); ++c) {
    absl::StatusOr<Value> v = Get(c);
    absl::StrAppend(&out, " ", schema_->column(c).name, "=",
                    v.ok() ? v->DebugString() : v.status().ToString());
  }
  return out;
}

}  // namespace shmkit
