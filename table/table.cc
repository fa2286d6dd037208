// The public Table API: argument checks and column resolution, then the core
// (internal/table_core.cc holds the design and the mechanics).
#include "shmkit/table/table.h"

#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/internal/table_backend.h"
#include "shmkit/table/internal/table_core.h"

namespace shmkit {

using internal::ResolvedField;
using internal::TableCore;
using internal::WriteMode;

absl::StatusOr<int> ColumnRef::Resolve(const Schema& schema) const {
  if (schema_ != 0 && schema_ != schema.Fingerprint()) {
    return absl::InvalidArgumentError(
        absl::StrCat("column handle (index ", index_,
                     ") belongs to another schema than the table's {",
                     schema.DebugString(), "}"));
  }
  if (index_ >= 0) {
    if (index_ >= schema.column_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "column index ", index_, " outside 0..", schema.column_count() - 1));
    }
    return index_;
  }
  if (index_ < -1) {
    return absl::InvalidArgumentError(absl::StrCat("column index ", index_));
  }
  return schema.ColumnIndex(name_);
}

namespace {

absl::Status KeyNotFound(absl::string_view key) {
  return absl::NotFoundError(
      absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
}

absl::Status NotOpen() {
  return absl::FailedPreconditionError(
      "the Table is empty (default-constructed or moved from): open it with "
      "Table::Create or Table::Attach");
}

using Fields = absl::InlinedVector<ResolvedField, 8>;

// Resolves and checks every value before anything is locked: a bad field
// changes nothing.
absl::StatusOr<Fields> Resolve(const Schema& schema,
                               absl::Span<const FieldValue> values) {
  Fields fields;
  fields.reserve(values.size());
  for (const FieldValue& v : values) {
    SHMKIT_ASSIGN_OR_RETURN(int column, v.column.Resolve(schema));
    for (const ResolvedField& f : fields) {
      if (f.column == column) {
        return absl::InvalidArgumentError(absl::StrCat(
            "column \"", schema.column(column).name, "\" is given twice"));
      }
    }
    SHMKIT_RETURN_IF_ERROR(CheckValueFits(schema.column(column), v.value));
    fields.push_back({column, &v.value});
  }
  return fields;
}

}  // namespace

absl::StatusOr<TablePlan> Table::Plan(const Schema& schema,
                                      const TableOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(
      internal::SegmentPlan plan,
      internal::PlanSegment(schema, options.capacity, options.registry_slots));
  TablePlan out;
  out.total_bytes = plan.total_bytes;
  out.capacity = plan.capacity;
  out.buckets = plan.bucket_count;
  out.row_bytes = plan.row.stride;
  out.rows_bytes =
      uint64_t{plan.bucket_count} * internal::kRowsPerBlock * plan.row.stride;
  out.buckets_bytes =
      uint64_t{plan.bucket_count} * internal::kBlockHeaderBytes +
      (plan.blocks_offset - plan.hints_offset);
  out.registry_bytes = plan.registry_bytes;
  out.header_bytes = plan.total_bytes - out.rows_bytes - out.buckets_bytes -
                     out.registry_bytes;
  out.bytes_per_row = static_cast<double>(plan.total_bytes) / plan.capacity;
  return out;
}

absl::StatusOr<Table> Table::Create(const Schema& schema,
                                    const TableOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<TableCore> core,
                          TableCore::Create(schema, options));
  return Table(std::move(core));
}

absl::StatusOr<Table> Table::Attach(IpcKey key,
                                    const TableAttachOptions& options) {
  ObjectAttachOptions attach;
  attach.read_only = options.read_only;
  attach.expected_mode = options.expected_mode;
  attach.init_timeout = options.init_timeout;
  SHMKIT_ASSIGN_OR_RETURN(
      Segment segment,
      internal::AttachObjectSegment(key, -1, ObjectKind::kTable,
                                    internal::kTableLayoutVersion, attach));
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<TableCore> core,
                          TableCore::Open(std::move(segment), options));
  return Table(std::move(core));
}

absl::StatusOr<Table> Table::AttachId(int shmid,
                                      const TableAttachOptions& options) {
  ObjectAttachOptions attach;
  attach.read_only = options.read_only;
  attach.expected_mode = options.expected_mode;
  attach.init_timeout = options.init_timeout;
  SHMKIT_ASSIGN_OR_RETURN(Segment segment,
                          internal::AttachObjectSegment(
                              IpcKey::Private(), shmid, ObjectKind::kTable,
                              internal::kTableLayoutVersion, attach));
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<TableCore> core,
                          TableCore::Open(std::move(segment), options));
  return Table(std::move(core));
}

Table::Table() = default;
Table::Table(std::unique_ptr<TableCore> core)
    : core_(std::move(core)),
      fast_(core_->fast_view()),
      incr_(core_->incr_view()) {}
Table::Table(std::unique_ptr<internal::TableBackend> backend)
    : backend_(std::move(backend)) {}
Table Table::FromBackend(std::unique_ptr<internal::TableBackend> backend) {
  return Table(std::move(backend));
}
Table::Table(Table&& other) noexcept
    : core_(std::move(other.core_)),
      backend_(std::move(other.backend_)),
      fast_(std::exchange(other.fast_, {})),
      incr_(std::exchange(other.incr_, {})) {}
Table& Table::operator=(Table&& other) noexcept {
  if (this != &other) {
    core_ = std::move(other.core_);
    backend_ = std::move(other.backend_);
    fast_ = std::exchange(other.fast_, {});
    incr_ = std::exchange(other.incr_, {});
  }
  return *this;
}
Table::~Table() = default;

const Schema& Table::schema() const {
  static const Schema* const kEmpty = new Schema();
  if (core_ != nullptr) return core_->schema();
  return backend_ != nullptr ? backend_->schema() : *kEmpty;
}
const Segment& Table::segment() const {
  static const Segment* const kEmpty = new Segment();
  return core_ != nullptr ? core_->segment() : *kEmpty;
}

absl::StatusOr<Row> Table::Get(absl::string_view key) const {
  Row row;
  SHMKIT_RETURN_IF_ERROR(Get(key, &row));
  return row;
}

absl::StatusOr<bool> Table::FindSlow(absl::string_view key, Row* row) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Find(key, row);
  }
  return core_->FindRow(key, row);
}

absl::Status Table::Get(absl::string_view key, Row* row) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    SHMKIT_ASSIGN_OR_RETURN(bool found, backend_->Find(key, row));
    if (!found) return KeyNotFound(key);
    return absl::OkStatus();
  }
  SHMKIT_ASSIGN_OR_RETURN(bool found, core_->FindRow(key, row));
  if (!found) return KeyNotFound(key);
  return absl::OkStatus();
}

absl::StatusOr<Value> Table::GetColumn(absl::string_view key,
                                       ColumnRef column) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->GetColumn(key, column);
  }
  SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(core_->schema()));
  if (!core_->schema().column(c).is_text()) {
    Value value;
    SHMKIT_ASSIGN_OR_RETURN(bool found, core_->ReadNumber(key, c, &value));
    if (!found) return KeyNotFound(key);
    return value;
  }
  Row row;
  SHMKIT_ASSIGN_OR_RETURN(
      bool found, core_->Read(key, TableCore::CopyWhat::kColumn, c, &row));
  if (!found) return KeyNotFound(key);
  return row.Get(c);
}

absl::Status Table::FindMany(absl::Span<const absl::string_view> keys,
                             absl::Span<Row> rows,
                             absl::Span<bool> found) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    if (rows.size() != keys.size() || found.size() != keys.size()) {
      return absl::InvalidArgumentError(absl::StrCat(keys.size(), " keys but ",
                                                     rows.size(), " rows and ",
                                                     found.size(), " results"));
    }
    return backend_->FindMany(keys, rows, found);
  }
  return core_->FindMany(keys, rows, found);
}

absl::StatusOr<bool> Table::Exists(absl::string_view key) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Exists(key);
  }
  return core_->Read(key, TableCore::CopyWhat::kNothing, -1, nullptr);
}

absl::Status Table::Set(absl::string_view key,
                        std::initializer_list<FieldValue> values,
                        const SetOptions& options) {
  return Set(key, absl::MakeConstSpan(values.begin(), values.size()), options);
}
absl::Status Table::Set(absl::string_view key,
                        absl::Span<const FieldValue> values,
                        const SetOptions& options) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Write(key, values, internal::BackendWrite::kSet, options);
  }
  SHMKIT_ASSIGN_OR_RETURN(Fields fields, Resolve(core_->schema(), values));
  return core_->Write(key, fields, WriteMode::kSet, options);
}
absl::Status Table::Add(absl::string_view key,
                        std::initializer_list<FieldValue> values,
                        const SetOptions& options) {
  return Add(key, absl::MakeConstSpan(values.begin(), values.size()), options);
}
absl::Status Table::Add(absl::string_view key,
                        absl::Span<const FieldValue> values,
                        const SetOptions& options) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Write(key, values, internal::BackendWrite::kAdd, options);
  }
  SHMKIT_ASSIGN_OR_RETURN(Fields fields, Resolve(core_->schema(), values));
  return core_->Write(key, fields, WriteMode::kAdd, options);
}
absl::Status Table::Update(absl::string_view key,
                           std::initializer_list<FieldValue> values,
                           const SetOptions& options) {
  return Update(key, absl::MakeConstSpan(values.begin(), values.size()),
                options);
}
absl::Status Table::Update(absl::string_view key,
                           absl::Span<const FieldValue> values,
                           const SetOptions& options) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Write(key, values, internal::BackendWrite::kUpdate,
                           options);
  }
  SHMKIT_ASSIGN_OR_RETURN(Fields fields, Resolve(core_->schema(), values));
  return core_->Write(key, fields, WriteMode::kUpdate, options);
}

absl::Status Table::Del(absl::string_view key) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Delete(key, nullptr);
  }
  return core_->Delete(key, nullptr);
}

absl::StatusOr<Row> Table::GetAndDelete(absl::string_view key) {
  Row row;
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    SHMKIT_RETURN_IF_ERROR(backend_->Delete(key, &row));
    return row;
  }
  SHMKIT_RETURN_IF_ERROR(core_->Delete(key, &row));
  return row;
}

absl::StatusOr<int64_t> Table::Incr(absl::string_view key, ColumnRef column,
                                    int64_t delta, const IncrOptions& options) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Incr(key, column, delta, options);
  }
  SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(core_->schema()));
  return core_->IncrementInt(key, c, delta, options);
}

absl::StatusOr<int64_t> Table::IncrLookedUp(absl::string_view key,
                                            IntColumn column, int64_t delta,
                                            const IncrOptions& options) {
  // The handle's own fields are checked against the table's column table:
  // a hand-made IntColumn must not reach a row at a wrong offset (the memo
  // holds only fields that passed this check on this table).
  if (ABSL_PREDICT_TRUE(
          core_ != nullptr && column.schema == core_->schema().Fingerprint() &&
          core_->IsIntColumn(column.index, column.offset, column.bytes))) {
    return core_->IncrementIntAt(key, column.index, column.offset, column.bytes,
                                 delta, options);
  }
  return Incr(key, ColumnRef(column), delta, options);
}

namespace {

// Decr(delta) is Incr(-delta); INT64_MIN has no negation in int64_t.
absl::StatusOr<int64_t> DecrDelta(int64_t delta) {
  if (delta == std::numeric_limits<int64_t>::min()) {
    return absl::OutOfRangeError("cannot decrement by INT64_MIN");
  }
  return -delta;
}

}  // namespace

absl::StatusOr<int64_t> Table::Decr(absl::string_view key, ColumnRef column,
                                    int64_t delta, const IncrOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(const int64_t up, DecrDelta(delta));
  return Incr(key, column, up, options);
}

absl::StatusOr<int64_t> Table::Decr(absl::string_view key, IntColumn column,
                                    int64_t delta, const IncrOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(const int64_t up, DecrDelta(delta));
  return Incr(key, column, up, options);
}

absl::StatusOr<double> Table::IncrFloat(absl::string_view key, ColumnRef column,
                                        double delta,
                                        const IncrOptions& options) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->IncrFloat(key, column, delta, options);
  }
  SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(core_->schema()));
  if (!std::isfinite(delta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("delta ", delta, " is not finite"));
  }
  return core_->IncrementFloat(key, c, delta, options);
}

absl::StatusOr<bool> Table::CompareAndSet(absl::string_view key,
                                          ColumnRef column,
                                          const Value& expected,
                                          const Value& desired) {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->CompareAndSet(key, column, expected, desired);
  }
  SHMKIT_ASSIGN_OR_RETURN(int c, column.Resolve(core_->schema()));
  return core_->CompareAndSet(key, c, expected, desired);
}

absl::Status Table::Clear() {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Clear();
  }
  return core_->Clear();
}
absl::StatusOr<uint64_t> Table::Sweep() {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Sweep();
  }
  return core_->Sweep();
}
uint64_t Table::Count() const {
  if (core_ != nullptr) return core_->Count();
  return backend_ != nullptr ? backend_->Count() : 0;
}

absl::Status Table::ForEach(absl::FunctionRef<bool(const Row&)> fn) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->ForEach(fn);
  }
  uint64_t cursor = 0;
  std::vector<Row> rows;
  do {
    rows.clear();
    SHMKIT_ASSIGN_OR_RETURN(cursor, core_->ScanBuckets(cursor, 256, &rows));
    for (const Row& row : rows) {
      if (!fn(row)) return absl::OkStatus();
    }
  } while (cursor != 0);
  return absl::OkStatus();
}

absl::StatusOr<ScanPage> Table::Scan(uint64_t cursor, size_t max_rows) const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Scan(cursor, max_rows);
  }
  ScanPage page;
  SHMKIT_ASSIGN_OR_RETURN(page.next_cursor,
                          core_->ScanBuckets(cursor, max_rows, &page.rows));
  return page;
}

TableStats Table::Stats() const {
  if (core_ != nullptr) return core_->Stats();
  return backend_ != nullptr ? backend_->Stats() : TableStats{};
}
TableInspection Table::Inspect() const {
  return core_ != nullptr ? core_->Inspect() : TableInspection{};
}
absl::StatusOr<uint64_t> Table::Recover() {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return uint64_t{0};  // the server applies each call whole
  }
  return core_->Recover();
}
absl::Status Table::CheckConsistency() const {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->CheckConsistency();
  }
  return core_->CheckConsistency();
}
absl::Status Table::Remove() {
  if (ABSL_PREDICT_FALSE(core_ == nullptr)) {
    if (backend_ == nullptr) return NotOpen();
    return backend_->Remove();
  }
  return core_->segment().Remove();
}

}  // namespace shmkit
