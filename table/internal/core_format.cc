// TableCore: formatting a new segment and validating an attached one.
// Geometry is decided once, from a validated plan; nothing the segment says
// is used before it has been checked against what this build computes.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/table_core.h"

namespace shmkit::internal {
namespace {

uint64_t NextCoreId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

TableCore::TableCore(Segment segment, ProcessRegistry registry, Schema schema,
                     absl::Duration lock_timeout, bool read_only)
    : segment_(std::move(segment)),
      registry_(std::move(registry)),
      schema_(std::move(schema)),
      layout_(std::make_shared<RowLayout>(ComputeRowLayout(schema_))),
      lock_timeout_(lock_timeout),
      read_only_(read_only),
      id_(NextCoreId()) {}

absl::StatusOr<std::unique_ptr<TableCore>> TableCore::Create(
    const Schema& schema, const TableOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(
      SegmentPlan plan,
      PlanSegment(schema, options.capacity, options.registry_slots));
  if (options.lock_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lock_timeout must be positive");
  }
  ObjectOptions object;
  object.key = options.key;
  object.mode = options.mode;
  object.huge_pages = options.huge_pages;
  SHMKIT_ASSIGN_OR_RETURN(
      Segment segment,
      CreateObjectSegment(ObjectKind::kTable, kTableLayoutVersion,
                          plan.total_bytes, schema.Fingerprint(), plan.capacity,
                          object));
  std::byte* base = static_cast<std::byte*>(segment.data());
  auto* h = reinterpret_cast<TableHeader*>(base + sizeof(ObjectHeader));
  const RowLayout& row = plan.row;
  h->layout_version = kTableLayoutVersion;
  h->column_count = static_cast<uint32_t>(schema.column_count());
  h->max_key_bytes = schema.max_key_bytes();
  h->flags = schema.ttl() ? kTableFlagTtl : 0;
  h->capacity = plan.capacity;
  h->bucket_count = plan.bucket_count;
  h->row_stride = row.stride;
  h->block_stride = plan.block_stride;
  h->registry_slots = plan.registry_slots;
  h->slot_area_bytes = plan.slot_area_bytes;
  h->hint_words = plan.hint_words;
  h->schema_offset = plan.schema_offset;
  h->registry_offset = plan.registry_offset;
  h->hints_offset = plan.hints_offset;
  h->summary_offset = plan.summary_offset;
  h->blocks_offset = plan.blocks_offset;
  h->total_bytes = plan.total_bytes;
  h->key_offset = row.key_offset;
  h->key_len_offset = row.key_len_offset;
  h->key_len_bytes = row.key_len_bytes;
  h->expiry_offset = row.has_expiry ? row.expiry_offset : 0;
  h->next_offset = row.next_offset;
  h->state_offset = row.state_offset;
  auto* columns =
      reinterpret_cast<ColumnDescriptor*>(base + plan.schema_offset);
  for (int i = 0; i < schema.column_count(); ++i) {
    const ColumnSpec& c = schema.column(i);
    ColumnDescriptor& d = columns[i];
    std::memcpy(d.name, c.name.data(), c.name.size());
    d.type = static_cast<uint8_t>(c.type);
    d.size = c.size;
    d.offset = row.columns[i].offset;
    d.len_offset = row.columns[i].len_offset;
    d.len_bytes = static_cast<uint8_t>(row.columns[i].len_bytes);
  }
  SHMKIT_ASSIGN_OR_RETURN(
      ProcessRegistry registry,
      ProcessRegistry::Format(
          segment.bytes().subspan(plan.registry_offset, plan.registry_bytes),
          plan.registry_slots, plan.slot_area_bytes));
  // Every row starts free (state 0: the segment is zeroed) with its hint
  // set. Touching one word of every page commits the memory now (a table
  // that cannot be backed fails here, not with SIGBUS at some later insert).
  for (uint64_t off = plan.blocks_offset; off < plan.total_bytes; off += 4096) {
    *reinterpret_cast<volatile uint64_t*>(base + (off & ~uint64_t{7})) = 0;
  }
  auto* hints = reinterpret_cast<uint64_t*>(base + plan.hints_offset);
  auto* summary = reinterpret_cast<uint64_t*>(base + plan.summary_offset);
  for (uint32_t w = 0; w < plan.hint_words; ++w) {
    const uint64_t rows_here =
        std::min<uint64_t>(64, plan.capacity - uint64_t{w} * 64);
    hints[w] = rows_here == 64 ? ~uint64_t{0} : (uint64_t{1} << rows_here) - 1;
    summary[w / 64] |= uint64_t{1} << (w % 64);
  }
  auto core = std::unique_ptr<TableCore>(
      new TableCore(std::move(segment), std::move(registry), schema,
                    options.lock_timeout, /*read_only=*/false));
  core->Bind(plan);
  PublishObject(core->segment_);
  return core;
}

absl::StatusOr<std::unique_ptr<TableCore>> TableCore::Open(
    Segment segment, const TableAttachOptions& options) {
  if (options.lock_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lock_timeout must be positive");
  }
  const std::byte* base = static_cast<const std::byte*>(segment.data());
  const ObjectHeader& object = HeaderOf(segment);
  auto where = [&] {
    return absl::StrCat("table in segment id=", segment.id(),
                        " key=", segment.key().ToString());
  };
  if (segment.size() < sizeof(ObjectHeader) + sizeof(TableHeader)) {
    return absl::FailedPreconditionError(
        absl::StrCat(where(), " is too small for a table header"));
  }
  // Copy the header once: another process could scribble on it; we decide
  // on this copy and check every derived offset against the segment size.
  TableHeader h;
  std::memcpy(&h, base + sizeof(ObjectHeader), sizeof(h));
  if (h.layout_version != kTableLayoutVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(where(), " has table layout version ", h.layout_version,
                     "; this build reads ", kTableLayoutVersion));
  }
  if (h.column_count < 1 || h.column_count > Schema::kMaxColumns ||
      h.schema_offset > segment.size() ||
      uint64_t{h.column_count} * sizeof(ColumnDescriptor) >
          segment.size() - h.schema_offset) {
    return absl::FailedPreconditionError(
        absl::StrCat(where(), " has a corrupt schema block (", h.column_count,
                     " columns at ", h.schema_offset, ")"));
  }
  // Rebuild the schema from the descriptors.
  Schema::Builder builder;
  const auto* columns =
      reinterpret_cast<const ColumnDescriptor*>(base + h.schema_offset);
  for (uint32_t i = 0; i < h.column_count; ++i) {
    ColumnDescriptor d;
    std::memcpy(&d, &columns[i], sizeof(d));
    const size_t len = strnlen(d.name, sizeof(d.name));
    builder.Column(
        {std::string(d.name, len), static_cast<ColumnType>(d.type), d.size});
  }
  builder.MaxKeyBytes(h.max_key_bytes).WithTtl((h.flags & kTableFlagTtl) != 0);
  absl::StatusOr<Schema> schema = builder.Build();
  if (!schema.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where(), " holds an invalid schema: ", schema.status().message()));
  }
  if (schema->Fingerprint() != object.fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat(
        where(), " schema fingerprint ", object.fingerprint,
        " does not match its own schema block (", schema->Fingerprint(),
        "): the segment is corrupt or from an incompatible build"));
  }
  if (options.expected_schema.has_value() &&
      options.expected_schema->Fingerprint() != schema->Fingerprint()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where(), " has schema {", schema->DebugString(),
                     "}, expected {", options.expected_schema->DebugString(),
                     "}: ", schema->Diff(*options.expected_schema)));
  }
  // The geometry must be exactly what this build computes for that schema.
  absl::StatusOr<SegmentPlan> plan =
      PlanSegment(*schema, h.capacity, h.registry_slots);
  if (!plan.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where(), " has invalid geometry: ", plan.status().message()));
  }
  const RowLayout& row = plan->row;
  const bool geometry_ok =
      object.capacity == h.capacity && plan->total_bytes == h.total_bytes &&
      h.total_bytes <= segment.size() && row.stride == h.row_stride &&
      plan->bucket_count == h.bucket_count &&
      plan->block_stride == h.block_stride &&
      plan->slot_area_bytes == h.slot_area_bytes &&
      plan->hint_words == h.hint_words &&
      plan->schema_offset == h.schema_offset &&
      plan->registry_offset == h.registry_offset &&
      plan->hints_offset == h.hints_offset &&
      plan->summary_offset == h.summary_offset &&
      plan->blocks_offset == h.blocks_offset &&
      row.key_offset == h.key_offset &&
      row.key_len_offset == h.key_len_offset &&
      row.key_len_bytes == h.key_len_bytes &&
      (row.has_expiry ? row.expiry_offset : 0) == h.expiry_offset &&
      row.next_offset == h.next_offset && row.state_offset == h.state_offset;
  bool columns_ok = geometry_ok;
  for (uint32_t i = 0; columns_ok && i < h.column_count; ++i) {
    ColumnDescriptor d;
    std::memcpy(&d, &columns[i], sizeof(d));
    columns_ok = d.offset == row.columns[i].offset &&
                 d.len_offset == row.columns[i].len_offset &&
                 d.len_bytes == row.columns[i].len_bytes;
  }
  if (!columns_ok) {
    return absl::FailedPreconditionError(absl::StrCat(
        where(),
        " has a row or segment layout that differs from what this "
        "build computes for its schema (stride ",
        h.row_stride, " vs ", row.stride, ", total ", h.total_bytes, " vs ",
        plan->total_bytes, ", segment ", segment.size(),
        " bytes): built by an incompatible version"));
  }
  if (options.transparent_huge_pages) {
    // The creator asked before touching the memory; each mapping asks for
    // itself (TableOptions::huge_pages). A host without them says no.
    (void)segment.AdviseHugePages();
  }
  SHMKIT_ASSIGN_OR_RETURN(ProcessRegistry registry,
                          ProcessRegistry::Open(segment.bytes().subspan(
                              plan->registry_offset, plan->registry_bytes)));
  if (registry.slot_count() != h.registry_slots) {
    return absl::FailedPreconditionError(
        absl::StrCat(where(), " registry slot count differs from its header"));
  }
  auto core = std::unique_ptr<TableCore>(
      new TableCore(std::move(segment), std::move(registry), *std::move(schema),
                    options.lock_timeout, options.read_only));
  core->Bind(*plan);
  return core;
}

void TableCore::Bind(const SegmentPlan& plan) {
  if (!read_only_) {
    // A supervisor that reaps a worker (ProcessRegistry::MarkDeadInAllOpen)
    // finishes what the worker left in this table at once, so Count() and
    // iteration agree without waiting for someone to touch its bucket.
    registry_.OnMarkedDead([this] {
      if (absl::StatusOr<OwnerToken> me = registry_.Self(); me.ok()) {
        RecoverCrashedWriters(*me);
      }
    });
  }
  // From the validated plan only: geometry is never re-read from shared
  // memory, where another process could change it.
  std::byte* base = static_cast<std::byte*>(segment_.data());
  header_ = reinterpret_cast<TableHeader*>(base + sizeof(ObjectHeader));
  capacity_ = plan.capacity;
  full_ = absl::ResourceExhaustedError(
      absl::StrCat("table is full: all ", capacity_, " rows are in use"));
  bucket_count_ = plan.bucket_count;
  block_stride_ = plan.block_stride;
  hint_words_ = plan.hint_words;
  summary_words_ = (plan.hint_words + 63) / 64;
  stride_ = plan.row.stride;
  stride_words_ = plan.row.stride / 8;
  areas_ = registry_.extra_base();
  area_stride_ = registry_.extra_stride();
  blocks_ = base + plan.blocks_offset;
  hints_ = reinterpret_cast<uint64_t*>(base + plan.hints_offset);
  summary_ = reinterpret_cast<uint64_t*>(base + plan.summary_offset);
  const RowLayout& row = plan.row;
  max_key_bytes_ = schema_.max_key_bytes();
  key_offset_ = row.key_offset;
  key_len_offset_ = row.key_len_offset;
  key_len_bytes_ = row.key_len_bytes;
  key_len_word_ = row.key_len_offset & ~uint32_t{7};
  key_len_shift_ = (row.key_len_offset - key_len_word_) * 8;
  key_len_mask_ = FieldMask(row.key_len_bytes);
  key_words_aligned_ = row.key_offset % 8 == 0;
  fast_hits_ = key_words_aligned_ && !row.has_expiry;
  prefetch_lines_ = std::clamp<uint32_t>((plan.block_stride + 63) / 64, 1, 4);
  next_offset_ = row.next_offset;
  state_offset_ = row.state_offset;
  has_expiry_ = row.has_expiry;
  expiry_offset_ = row.has_expiry ? row.expiry_offset : 0;
  text_columns_.clear();
  for (int c = 0; c < schema_.column_count(); ++c) {
    const ColumnSpec& spec = schema_.column(c);
    if (spec.is_text()) {
      text_columns_.push_back(
          {c, row.columns[c].len_offset, row.columns[c].len_bytes, spec.size});
    }
  }
  fast_ = FastFindView{
      .blocks = blocks_,
      .layout = layout_.get(),
      .capacity = capacity_,
      .bucket_count = bucket_count_,
      .block_stride = block_stride_,
      .stride = stride_,
      .max_key_bytes = fast_hits_ ? max_key_bytes_ : 0,
      .prefetch_lines = prefetch_lines_,
      .key_offset = key_offset_,
      .key_len_word = key_len_word_,
      .key_len_shift = key_len_shift_,
      .key_len_mask = key_len_mask_,
      .next_offset = next_offset_,
  };
  // The memo's path is the short path's (fast_incr.h): the same conditions.
  incr_ = FastIncrView{
      .core_id = !has_expiry_ && !read_only_ ? id_ : 0,
      .fingerprint = schema_.Fingerprint(),
      .registry = &registry_,
      .state_offset = state_offset_,
      .key_offset = key_offset_,
      .key_len_word = key_len_word_,
      .key_len_shift = key_len_shift_,
      .key_len_mask = key_len_mask_,
      .key_words_aligned = key_words_aligned_,
  };
}

void TableCore::PrepareRow(Row* out) const {
  if (out->layout_ != layout_.get()) {
    out->expires_at_.reset();  // a TTL table's expiry means nothing here
    out->schema_ = schema_;
    out->layout_ = layout_.get();
    out->layout_owner_ = layout_;
    out->fingerprint_ = schema_.Fingerprint();
  }
  if (out->bytes_.size() != stride_) out->bytes_.resize(stride_);
}

absl::Status TableCore::CheckKey(absl::string_view key) const {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  if (key.size() > schema_.max_key_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key of ", key.size(), " bytes is longer than the table's MaxKeyBytes ",
        schema_.max_key_bytes()));
  }
  return absl::OkStatus();
}

absl::Status TableCore::CheckWritable() const {
  if (read_only_) {
    return absl::FailedPreconditionError("table was attached read-only");
  }
  return absl::OkStatus();
}

}  // namespace shmkit::internal
