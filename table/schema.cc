#include "shmkit/table/schema.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/internal/layout.h"

namespace shmkit {

absl::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kInt:
      return "int";
    case ColumnType::kFloat:
      return "float";
    case ColumnType::kString:
      return "string";
    case ColumnType::kBytes:
      return "bytes";
  }
  return "unknown";
}

std::string ColumnSpec::TypeString() const {
  switch (type) {
    case ColumnType::kInt:
      return absl::StrCat("int", size * 8);
    case ColumnType::kFloat:
      return absl::StrCat("float", size * 8);
    case ColumnType::kString:
      return absl::StrCat("string(", size, ")");
    case ColumnType::kBytes:
      return absl::StrCat("bytes(", size, ")");
  }
  return "unknown";
}

absl::StatusOr<ColumnSpec> ParseColumnSpec(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  const auto bad = [&text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column \"", absl::CHexEscape(text), "\": ", why,
        " (expected NAME:TYPE, TYPE one of int8 int16 int32 int64 int float64 "
        "float float32 string(MAX) bytes(MAX), or string:MAX bytes:MAX)"));
  };
  if (parts.size() < 2 || parts.size() > 3) return bad("wrong shape");
  ColumnSpec c;
  c.name = std::string(parts[0]);
  std::string type = absl::AsciiStrToLower(parts[1]);
  // string(32) is string:32 written the way TypeString writes it.
  std::optional<absl::string_view> size_text;
  if (parts.size() == 3) size_text = parts[2];
  absl::string_view type_view = type;
  if (const size_t open = type_view.find('(');
      open != absl::string_view::npos && absl::EndsWith(type_view, ")")) {
    if (size_text.has_value()) return bad("the size is given twice");
    size_text = type_view.substr(open + 1, type_view.size() - open - 2);
    type_view = type_view.substr(0, open);
  }
  auto size = [&]() -> absl::StatusOr<uint32_t> {
    uint32_t n;
    if (!size_text.has_value() || !absl::SimpleAtoi(*size_text, &n)) {
      return bad(absl::StrCat(type_view, " needs a maximum size in bytes"));
    }
    return n;
  };
  if (type_view == "int" || type_view == "int64" || type_view == "int32" ||
      type_view == "int16" || type_view == "int8") {
    c.type = ColumnType::kInt;
    c.size = type_view == "int8"    ? 1
             : type_view == "int16" ? 2
             : type_view == "int32" ? 4
                                    : 8;
    if (size_text.has_value()) {
      if (type_view != "int") return bad("the int width is in the type name");
      absl::StatusOr<uint32_t> n = size();
      if (!n.ok()) return n.status();
      c.size = *n;
    }
  } else if (type_view == "float" || type_view == "float64" ||
             type_view == "double" || type_view == "float32") {
    if (size_text.has_value()) return bad("float takes no size");
    c.type = ColumnType::kFloat;
    c.size = type_view == "float32" ? 4 : 8;
  } else if (type_view == "string" || type_view == "bytes") {
    c.type = type_view == "string" ? ColumnType::kString : ColumnType::kBytes;
    absl::StatusOr<uint32_t> n = size();
    if (!n.ok()) return n.status();
    c.size = *n;
  } else {
    return bad(
        absl::StrCat("unknown type \"", absl::CHexEscape(parts[1]), "\""));
  }
  return c;
}

absl::StatusOr<Value> ParseColumnValue(const ColumnSpec& column,
                                       absl::string_view text) {
  const auto bad = [&](absl::string_view shown, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", column.name, "\": \"",
                     absl::CHexEscape(shown), "\" ", why));
  };
  switch (column.type) {
    case ColumnType::kInt: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) {
        return bad(text, "is not an integer in the int64 range");
      }
      return Value(static_cast<long long>(v));
    }
    case ColumnType::kFloat: {
      double v;
      if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
        return bad(text, "is not a finite number");
      }
      return Value(v);
    }
    case ColumnType::kString:
      return Value::Copy(text);
    case ColumnType::kBytes: {
      if (text.size() % 2 != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "column \"", column.name, "\": hex needs two digits per byte (got ",
            text.size(), ")"));
      }
      const auto digit = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        return -1;
      };
      std::string out;
      out.reserve(text.size() / 2);
      for (size_t i = 0; i < text.size(); i += 2) {
        const int hi = digit(text[i]), lo = digit(text[i + 1]);
        if (hi < 0 || lo < 0) return bad(text.substr(i, 2), "is not hex");
        out.push_back(static_cast<char>(hi * 16 + lo));
      }
      return Value(std::move(out));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("column \"", column.name, "\": unknown column type ",
                   static_cast<int>(column.type)));
}

std::string Value::DebugString() const {
  if (is_int()) return absl::StrCat(int_value());
  if (is_float()) return absl::StrCat(float_value());
  const absl::string_view s = string_value();
  if (s.size() > 40) {
    return absl::StrCat("\"", absl::CEscape(s.substr(0, 40)), "...\" (",
                        s.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CEscape(s), "\"");
}

Schema::Builder& Schema::Builder::Int(absl::string_view name, uint32_t bytes) {
  return Column({std::string(name), ColumnType::kInt, bytes});
}
Schema::Builder& Schema::Builder::Float(absl::string_view name) {
  return Column({std::string(name), ColumnType::kFloat, 8});
}
Schema::Builder& Schema::Builder::Float32(absl::string_view name) {
  return Column({std::string(name), ColumnType::kFloat, 4});
}
Schema::Builder& Schema::Builder::String(absl::string_view name,
                                         uint32_t max_bytes) {
  return Column({std::string(name), ColumnType::kString, max_bytes});
}
Schema::Builder& Schema::Builder::Bytes(absl::string_view name,
                                        uint32_t max_bytes) {
  return Column({std::string(name), ColumnType::kBytes, max_bytes});
}
Schema::Builder& Schema::Builder::Column(ColumnSpec spec) {
  columns_.push_back(std::move(spec));
  return *this;
}
Schema::Builder& Schema::Builder::MaxKeyBytes(uint32_t bytes) {
  max_key_bytes_ = bytes;
  return *this;
}
Schema::Builder& Schema::Builder::WithTtl(bool enabled) {
  ttl_ = enabled;
  return *this;
}

namespace {

// Canonical text of a schema; its hash is the fingerprint.
std::string Canonical(const std::vector<ColumnSpec>& columns,
                      uint32_t max_key_bytes, bool ttl) {
  std::string out = absl::StrCat("shmkit-schema-v1;key=", max_key_bytes,
                                 ";ttl=", ttl ? 1 : 0);
  for (const ColumnSpec& c : columns) {
    absl::StrAppend(&out, ";", c.name.size(), ":", c.name, "=",
                    static_cast<int>(c.type), "/", c.size);
  }
  return out;
}

}  // namespace

absl::StatusOr<Schema> Schema::Builder::Build() const {
  if (columns_.empty()) {
    return absl::InvalidArgumentError("a schema needs at least one column");
  }
  if (columns_.size() > static_cast<size_t>(kMaxColumns)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "too many columns: ", columns_.size(), " (at most ", kMaxColumns,
        "); the first one over is \"", columns_[kMaxColumns].name, "\""));
  }
  if (max_key_bytes_ < 1 || max_key_bytes_ > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MaxKeyBytes ", max_key_bytes_, " is outside 1..", kMaxKeyBytes));
  }
  absl::flat_hash_set<std::string> names;
  for (size_t i = 0; i < columns_.size(); ++i) {
    const ColumnSpec& c = columns_[i];
    const std::string where =
        absl::StrCat("column ", i, " \"", absl::CEscape(c.name), "\"");
    if (c.name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("column ", i, " has an empty name"));
    }
    if (c.name.size() > kMaxColumnNameBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name is ", c.name.size(), " bytes, at most ",
                       kMaxColumnNameBytes));
    }
    if (c.name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name contains a NUL byte"));
    }
    if (!names.insert(c.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate column name"));
    }
    switch (c.type) {
      case ColumnType::kInt:
        if (c.size != 1 && c.size != 2 && c.size != 4 && c.size != 8) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": an int column is 1, 2, 4 or 8 bytes, not ", c.size));
        }
        break;
      case ColumnType::kFloat:
        if (c.size != 4 && c.size != 8) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": a float column is 4 or 8 bytes, not ", c.size));
        }
        break;
      case ColumnType::kString:
      case ColumnType::kBytes:
        if (c.size == 0 || c.size > kMaxStringBytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": a ", ColumnTypeName(c.type), " column holds 1..",
              kMaxStringBytes, " bytes, not ", c.size));
        }
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": unknown column type ", static_cast<int>(c.type)));
    }
  }
  auto rep = std::make_shared<Rep>();
  rep->columns = columns_;
  rep->max_key_bytes = max_key_bytes_;
  rep->ttl = ttl_;
  rep->fingerprint =
      internal::StableHash(Canonical(columns_, max_key_bytes_, ttl_));
  return Schema(std::move(rep));
}

absl::StatusOr<int> Schema::ColumnIndex(absl::string_view name) const {
  for (int i = 0; i < column_count(); ++i) {
    if (rep_->columns[i].name == name) return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown column \"", absl::CEscape(name), "\" (columns: ",
                   absl::StrJoin(rep_->columns, ", ",
                                 [](std::string* out, const ColumnSpec& c) {
                                   absl::StrAppend(out, c.name);
                                 }),
                   ")"));
}

namespace {

absl::StatusOr<int> TypedIndex(const Schema& schema, absl::string_view name,
                               bool (ColumnSpec::*is)() const,
                               absl::string_view want) {
  absl::StatusOr<int> c = schema.ColumnIndex(name);
  if (!c.ok()) return c.status();
  const ColumnSpec& spec = schema.column(*c);
  if (!(spec.*is)()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "column \"", spec.name, "\" is ", spec.TypeString(), ", not ", want));
  }
  return c;
}

}  // namespace

Schema::Schema()
    : rep_([] {
        static const auto* empty = new std::shared_ptr<const Rep>(
            std::make_shared<Rep>(Rep{{}, kDefaultMaxKeyBytes, false, 0}));
        return *empty;
      }()) {}

absl::StatusOr<IntColumn> Schema::Int(absl::string_view name) const {
  absl::StatusOr<int> c =
      TypedIndex(*this, name, &ColumnSpec::is_integer, "an integer column");
  if (!c.ok()) return c.status();
  const internal::RowLayout layout = internal::ComputeRowLayout(*this);
  return IntColumn{*c, layout.columns[*c].offset, column(*c).size,
                   Fingerprint()};
}

absl::StatusOr<FloatColumn> Schema::Float(absl::string_view name) const {
  absl::StatusOr<int> c =
      TypedIndex(*this, name, &ColumnSpec::is_float, "a float column");
  if (!c.ok()) return c.status();
  const internal::RowLayout layout = internal::ComputeRowLayout(*this);
  return FloatColumn{*c, layout.columns[*c].offset, column(*c).size,
                     Fingerprint()};
}

absl::StatusOr<StringColumn> Schema::String(absl::string_view name) const {
  absl::StatusOr<int> c =
      TypedIndex(*this, name, &ColumnSpec::is_text, "a string column");
  if (!c.ok()) return c.status();
  const internal::RowLayout layout = internal::ComputeRowLayout(*this);
  const internal::RowLayout::Column& lc = layout.columns[*c];
  return StringColumn{*c,           lc.offset,       lc.len_offset,
                      lc.len_bytes, column(*c).size, Fingerprint()};
}

std::string Schema::DebugString() const {
  std::string out = absl::StrJoin(
      rep_->columns, ", ", [](std::string* o, const ColumnSpec& c) {
        absl::StrAppend(o, c.name, ":", c.TypeString());
      });
  absl::StrAppend(&out, "; key<=", rep_->max_key_bytes);
  if (rep_->ttl) absl::StrAppend(&out, "; ttl");
  return out;
}

std::string Schema::Diff(const Schema& other) const {
  std::vector<std::string> diffs;
  if (max_key_bytes() != other.max_key_bytes()) {
    diffs.push_back(absl::StrCat("max key bytes ", max_key_bytes(), " vs ",
                                 other.max_key_bytes()));
  }
  if (ttl() != other.ttl()) {
    diffs.push_back(absl::StrCat("ttl ", ttl() ? "on" : "off", " vs ",
                                 other.ttl() ? "on" : "off"));
  }
  const int n = std::max(column_count(), other.column_count());
  for (int i = 0; i < n; ++i) {
    if (i >= column_count()) {
      diffs.push_back(
          absl::StrCat("extra column \"", other.column(i).name, "\""));
    } else if (i >= other.column_count()) {
      diffs.push_back(absl::StrCat("missing column \"", column(i).name, "\""));
    } else if (column(i).name != other.column(i).name ||
               column(i).type != other.column(i).type ||
               column(i).size != other.column(i).size) {
      diffs.push_back(absl::StrCat(
          "column ", i, " is ", column(i).name, ":", column(i).TypeString(),
          " vs ", other.column(i).name, ":", other.column(i).TypeString()));
    }
  }
  return absl::StrJoin(diffs, "; ");
}

absl::Status CheckValueFits(const ColumnSpec& column, const Value& value) {
  auto mismatch = [&](absl::string_view got) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", column.name, "\" is ", column.TypeString(),
                     "; got ", got, " ", value.DebugString()));
  };
  switch (column.type) {
    case ColumnType::kInt: {
      if (!value.is_int())
        return mismatch(value.is_float() ? "a float" : "a string");
      const int64_t v = value.int_value();
      const int bits = static_cast<int>(column.size) * 8;
      if (bits < 64) {
        const int64_t hi = (int64_t{1} << (bits - 1)) - 1;
        const int64_t lo = -hi - 1;
        if (v < lo || v > hi) {
          return absl::InvalidArgumentError(absl::StrCat(
              "value ", v, " does not fit column \"", column.name, "\" (",
              column.TypeString(), ": ", lo, "..", hi, ")"));
        }
      }
      return absl::OkStatus();
    }
    case ColumnType::kFloat: {
      double d;
      if (value.is_float()) {
        d = value.float_value();
      } else if (value.is_int()) {
        // Accept an integer only when the float holds it exactly.
        d = static_cast<double>(value.int_value());
        if (d >= 0x1p63 || static_cast<int64_t>(d) != value.int_value()) {
          return absl::InvalidArgumentError(
              absl::StrCat("integer ", value.int_value(),
                           " is not exactly representable in ", "column \"",
                           column.name, "\" (", column.TypeString(), ")"));
        }
      } else {
        return mismatch("a string");
      }
      // One rule everywhere (API, CLI, PHP, Redis): float columns hold
      // finite numbers; NaN would also defeat CompareAndSet (NaN != NaN).
      if (!std::isfinite(d)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "value ", d, " for column \"", column.name,
            "\" is not finite (float columns hold finite numbers only)"));
      }
      if (column.size == 4 &&
          static_cast<double>(static_cast<float>(d)) != d) {
        return absl::InvalidArgumentError(absl::StrCat(
            "value ", d, " does not round-trip through float32 column \"",
            column.name, "\""));
      }
      return absl::OkStatus();
    }
    case ColumnType::kString:
    case ColumnType::kBytes:
      if (!value.is_string())
        return mismatch(value.is_int() ? "an integer" : "a float");
      if (value.string_value().size() > column.size) {
        return absl::InvalidArgumentError(
            absl::StrCat("value of ", value.string_value().size(),
                         " bytes is too long for column \"", column.name,
                         "\" (", column.TypeString(), ")"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown column type");
}

}  // namespace shmkit
