#include "shmkit/table/internal/table_backend.h"

#include <cstring>

#include "shmkit/table/internal/layout.h"

namespace shmkit::internal {

RowMaker::RowMaker(const Schema& schema)
    : schema_(schema),
      layout_(std::make_shared<RowLayout>(ComputeRowLayout(schema))) {}

void RowMaker::Fill(absl::string_view key, absl::Span<const Value> values,
                    std::optional<absl::Time> expires_at, Row* row) const {
  if (row->layout_ != layout_.get()) {
    row->schema_ = schema_;
    row->layout_ = layout_.get();
    row->layout_owner_ = layout_;
    row->fingerprint_ = schema_.Fingerprint();
  }
  row->bytes_.assign(layout_->stride, std::byte{0});
  std::byte* out = row->bytes_.data();
  // Little-endian fields at the layout's offsets, as a segment holds them
  // (Row reads them back with LoadField).
  auto store = [out](uint32_t offset, uint64_t v, uint32_t bytes) {
    std::memcpy(out + offset, &v, bytes);
  };
  for (int c = 0; c < schema_.column_count() && c < int(values.size()); ++c) {
    const ColumnSpec& spec = schema_.column(c);
    const RowLayout::Column& lc = layout_->columns[c];
    const Value& v = values[c];
    switch (spec.type) {
      case ColumnType::kInt:
        store(lc.offset, static_cast<uint64_t>(v.is_int() ? v.int_value() : 0),
              spec.size);
        break;
      case ColumnType::kFloat: {
        const double d = v.is_float() ? v.float_value()
                         : v.is_int() ? static_cast<double>(v.int_value())
                                      : 0.0;
        if (spec.size == 8) {
          uint64_t bits;
          std::memcpy(&bits, &d, 8);
          store(lc.offset, bits, 8);
        } else {
          const float f = static_cast<float>(d);
          uint32_t bits;
          std::memcpy(&bits, &f, 4);
          store(lc.offset, bits, 4);
        }
        break;
      }
      case ColumnType::kString:
      case ColumnType::kBytes: {
        const absl::string_view s =
            v.is_string() ? v.string_value() : absl::string_view();
        const size_t n = std::min<size_t>(s.size(), spec.size);
        store(lc.len_offset, n, lc.len_bytes);
        if (n != 0) std::memcpy(out + lc.offset, s.data(), n);  // data() may be null
        break;
      }
    }
  }
  row->present_ = true;
  row->key_in_bytes_ = false;
  row->key_.assign(key.data(), key.size());
  row->expires_at_ = expires_at;
}

}  // namespace shmkit::internal
