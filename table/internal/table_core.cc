// The shmkit table: how rows, buckets, locks and recovery fit together.
//
// Segment (details in layout.h):
//
//   struct Segment {
//     ObjectHeader object;              // magic, format, kind, fingerprint
//     TableHeader table;                // geometry, statistics
//     ColumnDescriptor columns[n];      // the schema, for attachers
//     ProcessRegistry registry;         // a slot per writing thread, each
//       SlotArea area[slots];           //   with an undo record + row image
//     FreeShard shards[<=64];           // free rows: lock, head, count
//     Bucket buckets[B];                // lock, seq, head
//     Row rows[capacity];               // the pool: exactly capacity rows
//   };
//
// Index. A key's bucket is BucketOf(StableHash(key), B). Each bucket heads a
// chain of rows linked by `next` (row index + 1). New rows go to the head.
// Rows never move between buckets.
//
// Locks. Each bucket has an OwnerLock (ipc/owner_lock.h) that every write
// to the bucket takes: it protects the chain and the rows in it. Each free
// shard has one too. A thread holds at most one bucket lock, and while
// holding it at most one shard lock (order: bucket, then shard), so there is
// no deadlock. No lock covers the whole table.
//
// Reads. A bucket's `seq` is odd while a writer changes the bucket. A reader
// loads seq (acquire), walks the chain and copies the row with relaxed atomic
// word loads (row_io.h), issues an acquire fence and loads seq again; equal
// and even means the copy is consistent. After kOptimisticAttempts failures
// (a writer hogging the bucket, or one that died with seq odd) it takes the
// bucket lock, which also recovers a dead writer. Readers write nothing.
//
// Writes, under the bucket lock, always in this order:
//   1. record what is about to happen in the writer's SlotArea (op, bucket,
//      row, free shard, the bytes of the row about to change), then pin the
//      registry slot (release store): "my record is live";
//   2. seq odd; change the row / the chain; seq even;
//   3. unpin.
// An insert allocates a row from a free shard (under the shard lock, the
// row's state set to the writer's slot before the shard head moves), fills it
// completely while it is still invisible, then publishes it with one store of
// the bucket head. A delete unlinks with one store, then pushes the row on a
// free shard and clears its state under the shard lock, marking its record
// done inside that lock.
//
// Recovery. Whoever takes over a lock from a dead owner (OwnerLock tells it)
// reads the dead owner's record, valid only if the slot is still pinned and
// the record carries the same token:
//   update: seq odd means the row may be half written: copy the saved bytes
//           back. seq even means the change either never started or was
//           published whole: keep the row as it is.
//   insert: the row is in the chain: the insert happened. Not in the chain
//           but its state names the dead slot: it was allocated and not
//           linked: free it.
//   delete: the row is still in the chain: the delete did not happen. Not in
//           the chain and the record not marked done: free it.
//   shard:  the record says which row the dead owner was popping or pushing;
//           the shard head and the row state tell how far it got; finish it.
// Bucket recovery first settles the dead owner's shard (by taking that shard's
// lock), so a row is never in two places. Then it makes seq even, checks the
// chain (bounded walk; a chain broken by memory corruption is cut and
// counted), counts the recovery and unpins the dead slot. A recoverer freeing a
// row records that in its own slot first, so a crash during recovery is
// itself recoverable.
//
// Capacity. The pool holds exactly `capacity` rows; an insert fails only when
// every shard is empty, after one reclaim attempt (recover crashed writers,
// sweep expired rows). The live count is capacity minus the free counts.
//
// Everything read from the segment is untrusted: row indices are checked
// against capacity, chain walks are bounded by capacity, lengths against their
// column before use.
#include "shmkit/table/internal/table_core.h"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/base/optimization.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/internal/row_io.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::internal {
namespace {

// Optimistic read attempts before a reader takes the bucket lock.
constexpr int kOptimisticAttempts = 32;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

inline void CpuRelax() { __builtin_ia32_pause(); }

void Backoff(int attempt) {
  if (attempt < 8) {
    for (int i = 0; i < (1 << attempt); ++i) CpuRelax();
  } else {
    sched_yield();
  }
}

int64_t ExpiryFor(const std::optional<absl::Duration>& ttl) {
  if (!ttl.has_value()) return -1;  // keep / none
  return NowMs() + std::max<int64_t>(1, absl::ToInt64Milliseconds(*ttl));
}

thread_local std::vector<std::byte> tls_row_buffer;

}  // namespace

// ---------------------------------------------------------------------------
// Guards

class TableCore::Guard {
 public:
  Guard(uint64_t* word, const ProcessRegistry* registry, OwnerToken me)
      : word_(word), registry_(registry), me_(me) {}
  Guard(Guard&& other) noexcept
      : word_(std::exchange(other.word_, nullptr)),
        registry_(other.registry_),
        me_(other.me_) {}
  Guard& operator=(Guard&&) = delete;
  ~Guard() { Unlock(); }
  void Unlock() {
    if (word_ != nullptr) {
      (void)OwnerLock(word_, registry_).Unlock(me_);
      word_ = nullptr;
    }
  }

 private:
  uint64_t* word_;
  const ProcessRegistry* registry_;
  OwnerToken me_;
};

absl::StatusOr<TableCore::Guard> TableCore::LockWord(uint64_t* word,
                                                     absl::string_view what,
                                                     uint32_t index,
                                                     OwnerToken me,
                                                     LockResult* result) const {
  absl::StatusOr<LockResult> r =
      OwnerLock(word, &registry_).Lock(me, lock_timeout_);
  // Counted whether the wait ended in the lock or in DeadlineExceeded.
  if (!r.ok() || r->waited) {
    Ref(header_->lock_waits).fetch_add(1, std::memory_order_relaxed);
  }
  if (!r.ok()) {
    return absl::Status(r.status().code(), absl::StrCat(what, " ", index, ": ",
                                                        r.status().message()));
  }
  *result = *r;
  return Guard(word, &registry_, me);
}

absl::StatusOr<TableCore::Guard> TableCore::LockBucket(uint32_t b,
                                                       OwnerToken me) const {
  // Uncontended: one CAS, nothing else.
  if (OwnerLock(bucket_lock(b), &registry_).TryLock(me)) {
    return Guard(bucket_lock(b), &registry_, me);
  }
  LockResult result;
  SHMKIT_ASSIGN_OR_RETURN(Guard guard,
                          LockWord(bucket_lock(b), "bucket", b, me, &result));
  if (result.took_over) RecoverBucket(b, result.dead_owner, me);
  return guard;
}

absl::StatusOr<TableCore::Guard> TableCore::LockShard(uint32_t s,
                                                      OwnerToken me) const {
  LockResult result;
  SHMKIT_ASSIGN_OR_RETURN(
      Guard guard, LockWord(&shard(s).lock, "free shard", s, me, &result));
  if (result.took_over) RecoverShard(s, result.dead_owner);
  return guard;
}

// ---------------------------------------------------------------------------
// Construction and validation

TableCore::TableCore(Segment segment, ProcessRegistry registry, Schema schema,
                     absl::Duration lock_timeout, bool read_only)
    : segment_(std::move(segment)),
      registry_(std::move(registry)),
      schema_(std::move(schema)),
      layout_(std::make_shared<RowLayout>(ComputeRowLayout(schema_))),
      lock_timeout_(lock_timeout),
      read_only_(read_only) {}

absl::StatusOr<std::unique_ptr<TableCore>> TableCore::Create(
    const Schema& schema, const TableOptions& options) {
  absl::StatusOr<SegmentPlan> plan = PlanSegment(
      schema, options.capacity, options.buckets, options.registry_slots);
  if (!plan.ok()) return plan.status();
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
                          plan->total_bytes, schema.Fingerprint(),
                          plan->capacity, object));
  std::byte* base = static_cast<std::byte*>(segment.data());
  auto* h = reinterpret_cast<TableHeader*>(base + sizeof(ObjectHeader));
  const RowLayout& row = plan->row;
  h->layout_version = kTableLayoutVersion;
  h->column_count = static_cast<uint32_t>(schema.column_count());
  h->max_key_bytes = schema.max_key_bytes();
  h->flags = schema.ttl() ? kTableFlagTtl : 0;
  h->capacity = plan->capacity;
  h->bucket_count = plan->bucket_count;
  h->row_stride = row.stride;
  h->registry_slots = plan->registry_slots;
  h->slot_area_bytes = plan->slot_area_bytes;
  h->schema_offset = plan->schema_offset;
  h->registry_offset = plan->registry_offset;
  h->buckets_offset = plan->buckets_offset;
  h->bucket_locks_offset = plan->bucket_locks_offset;
  h->rows_offset = plan->rows_offset;
  h->total_bytes = plan->total_bytes;
  h->key_offset = row.key_offset;
  h->key_len_offset = row.key_len_offset;
  h->key_len_bytes = row.key_len_bytes;
  h->expiry_offset = row.has_expiry ? row.expiry_offset : 0;
  h->next_offset = row.next_offset;
  h->state_offset = row.state_offset;
  h->shard_count = plan->shard_count;
  h->shards_offset = plan->shards_offset;
  auto* columns =
      reinterpret_cast<ColumnDescriptor*>(base + plan->schema_offset);
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
          segment.bytes().subspan(plan->registry_offset, plan->registry_bytes),
          plan->registry_slots, plan->slot_area_bytes));
  // Every row starts free. Shard s gets a contiguous block of rows, its list
  // in increasing order, so the rows one thread inserts (from its home shard)
  // sit together in memory: fewer pages, fewer TLB misses. Touching every
  // row here also commits the memory now rather than at some later insert.
  auto* shards = reinterpret_cast<FreeShard*>(base + plan->shards_offset);
  std::byte* rows = base + plan->rows_offset;
  const uint32_t n_shards = plan->shard_count;
  const uint64_t per_shard = (plan->capacity + n_shards - 1) / n_shards;
  for (uint64_t r = plan->capacity; r-- > 0;) {
    FreeShard& s = shards[r / per_shard];
    StoreField(rows + r * row.stride, row.next_offset, 4, s.head);
    s.head = static_cast<uint32_t>(r + 1);
    ++s.count;
  }
  auto core = std::unique_ptr<TableCore>(
      new TableCore(std::move(segment), std::move(registry), schema,
                    options.lock_timeout, /*read_only=*/false));
  core->Bind(*plan);
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
      PlanSegment(*schema, h.capacity, h.bucket_count, h.registry_slots);
  if (!plan.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where(), " has invalid geometry: ", plan.status().message()));
  }
  const RowLayout& row = plan->row;
  const bool geometry_ok =
      object.capacity == h.capacity && plan->total_bytes == h.total_bytes &&
      h.total_bytes <= segment.size() && row.stride == h.row_stride &&
      plan->slot_area_bytes == h.slot_area_bytes &&
      plan->schema_offset == h.schema_offset &&
      plan->registry_offset == h.registry_offset &&
      plan->shards_offset == h.shards_offset &&
      plan->shard_count == h.shard_count &&
      plan->buckets_offset == h.buckets_offset &&
      plan->bucket_locks_offset == h.bucket_locks_offset &&
      plan->rows_offset == h.rows_offset && row.key_offset == h.key_offset &&
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
  // From the validated plan only: geometry is never re-read from shared
  // memory, where another process could change it.
  std::byte* base = static_cast<std::byte*>(segment_.data());
  header_ = reinterpret_cast<TableHeader*>(base + sizeof(ObjectHeader));
  capacity_ = plan.capacity;
  bucket_count_ = plan.bucket_count;
  shard_count_ = plan.shard_count;
  stride_ = plan.row.stride;
  stride_words_ = plan.row.stride / 8;
  areas_ = registry_.extra_base();
  area_stride_ = registry_.extra_stride();
  bucket_words_ = reinterpret_cast<uint64_t*>(base + plan.buckets_offset);
  bucket_locks_ = reinterpret_cast<uint64_t*>(base + plan.bucket_locks_offset);
  shards_ = reinterpret_cast<FreeShard*>(base + plan.shards_offset);
  rows_ = base + plan.rows_offset;
  const RowLayout& row = plan.row;
  max_key_bytes_ = schema_.max_key_bytes();
  key_offset_ = row.key_offset;
  key_len_offset_ = row.key_len_offset;
  key_len_bytes_ = row.key_len_bytes;
  next_offset_ = row.next_offset;
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
}

void TableCore::PrepareRow(Row* out) const {
  if (out->layout_ != layout_.get()) {
    out->schema_ = schema_;
    out->layout_ = layout_.get();
    out->layout_owner_ = layout_;
  }
  if (out->bytes_.size() != stride_) out->bytes_.resize(stride_);
}

SlotArea& TableCore::area(uint32_t slot) const {
  // Callers pass slots of tokens they hold or read from a record that was
  // checked against the registry's slot count.
  return *reinterpret_cast<SlotArea*>(areas_ + slot * area_stride_);
}

std::byte* TableCore::area_image(uint32_t slot) const {
  return areas_ + slot * area_stride_ + sizeof(SlotArea);
}

// ---------------------------------------------------------------------------
// Row fields

uint32_t TableCore::RowNext(uint32_t r) const {
  return static_cast<uint32_t>(LoadField(row_ptr(r), layout_->next_offset, 4));
}
void TableCore::SetRowNext(uint32_t r, uint32_t next_plus_one) const {
  StoreField(row_ptr(r), layout_->next_offset, 4, next_plus_one);
}
uint32_t TableCore::RowState(uint32_t r) const {
  return static_cast<uint32_t>(LoadField(row_ptr(r), layout_->state_offset, 2));
}
void TableCore::SetRowState(uint32_t r, uint32_t state) const {
  StoreField(row_ptr(r), layout_->state_offset, 2, state);
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

// ---------------------------------------------------------------------------
// Reads

void TableCore::FillExpiry(Row* row) const {
  row->expires_at_.reset();
  if (!layout_->has_expiry) return;
  const int64_t expiry = static_cast<int64_t>(
      LoadField(row->bytes_.data(), layout_->expiry_offset, 8));
  if (expiry == 0) return;
  // Stored on CLOCK_BOOTTIME (immune to wall-clock jumps); shown as wall time.
  row->expires_at_ = absl::Now() + absl::Milliseconds(expiry - NowMs());
}

absl::Status TableCore::CopyOut(const std::byte* shared_row,
                                absl::string_view key, CopyWhat what,
                                int column, Row* row) const {
  if (what == CopyWhat::kNothing || row == nullptr) return absl::OkStatus();
  PrepareRow(row);
  if (what == CopyWhat::kRow) {
    SharedRead(shared_row, 0, row->bytes_.data(), stride_);
  } else {
    CopyColumn(shared_row, column, row);
  }
  FinishRow(key, what, row);
  return absl::OkStatus();
}

TableCore::Probe TableCore::ProbeChain(uint32_t head, absl::string_view key,
                                       int64_t now_ms, CopyWhat what,
                                       int column, Row* row) const {
  uint32_t r = head;
  for (uint64_t steps = 0; r != 0; ++steps) {
    if (r > capacity_ || steps >= capacity_) return Probe::kBroken;
    const std::byte* p = row_ptr(r - 1);
    if (RowKeyEquals(p, key)) {
      if (RowExpired(p, now_ms)) return Probe::kAbsent;
      if (what == CopyWhat::kRow) {
        SharedRead(p, 0, row->bytes_.data(), stride_);
      } else if (what == CopyWhat::kColumn) {
        CopyColumn(p, column, row);
      }
      return Probe::kFound;
    }
    r = static_cast<uint32_t>(LoadField(p, next_offset_, 4));
  }
  return Probe::kAbsent;
}

void TableCore::CopyColumn(const std::byte* p, int column, Row* row) const {
  const RowLayout::Column& lc = layout_->columns[column];
  const ColumnSpec& spec = schema_.column(column);
  std::byte* out = row->bytes_.data();
  if (spec.is_text()) {
    SharedRead(p, lc.len_offset, out + lc.len_offset, lc.len_bytes);
  }
  SharedRead(p, lc.offset, out + lc.offset, spec.size);
  if (has_expiry_) SharedRead(p, expiry_offset_, out + expiry_offset_, 8);
}

void TableCore::FinishRow(absl::string_view key, CopyWhat what,
                          Row* row) const {
  row->present_ = true;
  // A whole-row copy holds the key (it matched `key`); a column copy does not.
  row->key_in_bytes_ = what == CopyWhat::kRow;
  if (!row->key_in_bytes_) row->key_.assign(key.data(), key.size());
  if (has_expiry_) FillExpiry(row);
}

absl::StatusOr<bool> TableCore::FindRow(absl::string_view key, Row* row) const {
  // Read() specialised for whole rows, kept short on purpose: every
  // instruction here delays the next lookup's cache misses, which the CPU
  // overlaps with this one's only if the code between them is small.
  if (ABSL_PREDICT_FALSE(key.empty() || key.size() > max_key_bytes_)) {
    return CheckKey(key);
  }
  if (ABSL_PREDICT_FALSE(row->layout_ != layout_.get() ||
                         row->bytes_.size() != stride_)) {
    PrepareRow(row);
  }
  std::byte* out = row->bytes_.data();
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  const uint64_t& bword = bucket_word(b);
  for (int attempt = 0; attempt < kOptimisticAttempts; ++attempt) {
    const uint64_t w1 = Load(bword, std::memory_order_acquire);
    bool found = false;
    bool broken = (SeqOf(w1) & 1) != 0;
    uint32_t r = broken ? 0 : HeadOf(w1);
    for (uint64_t steps = 0; r != 0; ++steps) {
      if (ABSL_PREDICT_FALSE(r > capacity_ || steps >= capacity_)) {
        broken = true;
        break;
      }
      // Copy the row, then look at the private copy: one pass over shared
      // memory, and the copy is what Get returns when the key matches.
      SharedReadWords(row_ptr(r - 1), out, stride_words_);
      if (PlainField(out, key_len_offset_, key_len_bytes_) == key.size() &&
          BytesEqual(out + key_offset_, key.data(), key.size())) {
        found = true;
        break;
      }
      r = static_cast<uint32_t>(PlainField(out, next_offset_, 4));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (ABSL_PREDICT_TRUE(!broken &&
                          Load(bword, std::memory_order_relaxed) == w1)) {
      row->present_ = found;
      if (!found) return false;
      if (has_expiry_) {
        const int64_t expiry =
            static_cast<int64_t>(PlainField(out, expiry_offset_, 8));
        if (expiry != 0 && expiry <= NowMs()) {
          row->present_ = false;
          return false;
        }
      }
      for (const TextColumn& t : text_columns_) {
        if (ABSL_PREDICT_FALSE(PlainField(out, t.len_offset, t.len_bytes) >
                               t.max)) {
          return CheckTextLengths(*row, CopyWhat::kRow, -1);  // names it
        }
      }
      row->key_in_bytes_ = true;
      if (has_expiry_) FillExpiry(row);
      return true;
    }
    Backoff(attempt);
  }
  // Busy or broken: the general path (which can lock and recover).
  return Read(key, CopyWhat::kRow, -1, row);
}

absl::StatusOr<bool> TableCore::Read(absl::string_view key, CopyWhat what,
                                     int column, Row* row) const {
  if (key.empty() || key.size() > max_key_bytes_) return CheckKey(key);
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  const uint64_t& bword = bucket_word(b);
  const bool copy = row != nullptr && what != CopyWhat::kNothing;
  if (!copy) what = CopyWhat::kNothing;
  if (copy) PrepareRow(row);
  const int64_t now_ms = has_expiry_ ? NowMs() : 0;

  // Optimistic: copy under the bucket's sequence number, never writing.
  for (int attempt = 0;; ++attempt) {
    const uint64_t w1 = Load(bword, std::memory_order_acquire);
    Probe probe = Probe::kBroken;  // odd seq: a writer is at work
    if ((SeqOf(w1) & 1) == 0) {
      probe = ProbeChain(HeadOf(w1), key, now_ms, what, column, row);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (probe != Probe::kBroken &&
        Load(bword, std::memory_order_relaxed) == w1) {
      if (probe == Probe::kAbsent) {
        if (copy) row->present_ = false;
        return false;
      }
      if (copy) {
        // Consistent, but still from shared memory: check the lengths.
        SHMKIT_RETURN_IF_ERROR(CheckTextLengths(*row, what, column));
        FinishRow(key, what, row);
      }
      return true;
    }
    if (attempt + 1 >= kOptimisticAttempts) break;
    Backoff(attempt);
  }
  if (read_only_) {
    // A read-only mapping cannot take the lock: keep trying optimistically
    // (sleeping in between) for up to lock_timeout.
    const absl::Time deadline = absl::Now() + lock_timeout_;
    while (absl::Now() < deadline) {
      // A writer that died in this bucket will not finish: say so now
      // rather than after lock_timeout (checking reads the registry only).
      if (std::optional<OwnerToken> owner =
              OwnerOfLockWord(Load(*bucket_lock(b), std::memory_order_relaxed));
          owner.has_value() && registry_.IsDead(*owner)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "bucket ", b,
            " was left busy by a writer that died (registry slot ", owner->slot,
            "); a read-only handle cannot recover it: run "
            "Table::Recover() or `shmkit recover` from a writable handle"));
      }
      absl::SleepFor(absl::Microseconds(200));
      const uint64_t w1 = Load(bword, std::memory_order_acquire);
      if (SeqOf(w1) & 1) continue;
      const Probe probe =
          ProbeChain(HeadOf(w1), key, now_ms, what, column, row);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (probe == Probe::kBroken ||
          Load(bword, std::memory_order_relaxed) != w1) {
        continue;
      }
      if (probe == Probe::kAbsent) return false;
      if (copy) {
        SHMKIT_RETURN_IF_ERROR(CheckTextLengths(*row, what, column));
        FinishRow(key, what, row);
      }
      return true;
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "bucket ", b, " stayed busy for ", absl::FormatDuration(lock_timeout_),
        " (a writer holds it or died in it; a read-only handle cannot recover "
        "it)"));
  }

  // Fallback: a writer kept the bucket busy (or died in it). Lock it.
  Ref(header_->read_fallbacks).fetch_add(1, std::memory_order_relaxed);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
  const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
  if (f.row < 0) {
    if (copy) row->present_ = false;
    return false;
  }
  if (copy) {
    const std::byte* p = row_ptr(static_cast<uint32_t>(f.row));
    if (what == CopyWhat::kRow) {
      SharedRead(p, 0, row->bytes_.data(), stride_);
    } else {
      CopyColumn(p, column, row);
    }
    SHMKIT_RETURN_IF_ERROR(CheckTextLengths(*row, what, column));
    FinishRow(key, what, row);
  }
  return true;
}

absl::Status TableCore::CheckTextLengths(const Row& row, CopyWhat what,
                                         int column) const {
  const std::byte* p = row.bytes_.data();
  for (const TextColumn& t : text_columns_) {
    if (what == CopyWhat::kColumn && t.column != column) continue;
    const uint64_t len = LoadField(p, t.len_offset, t.len_bytes);
    if (len > t.max) {
      return absl::DataLossError(
          absl::StrCat("a row's column \"", schema_.column(t.column).name,
                       "\" claims ", len, " bytes, more than its ", t.max));
    }
  }
  return absl::OkStatus();
}

TableCore::Found TableCore::FindLocked(uint32_t b, absl::string_view key,
                                       int64_t now_ms) const {
  // Under the bucket lock nobody else writes these rows (readers only read;
  // allocators touch free rows only), so the key can be compared with a
  // plain memcmp: reads racing only with reads are not a data race.
  Found f;
  int64_t prev = -1;
  uint32_t r = BucketHead(b);
  for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
       ++steps) {
    const uint32_t idx = r - 1;
    const std::byte* p = row_ptr(idx);
    const bool expired = RowExpired(p, now_ms);
    if (LoadField(p, key_len_offset_, key_len_bytes_) == key.size() &&
        std::memcmp(p + key_offset_, key.data(), key.size()) == 0) {
      if (expired) {
        f.expired = idx;
        f.expired_prev = prev;
      } else {
        f.row = idx;
        f.prev = prev;
      }
      return f;
    }
    if (expired && f.expired < 0) {
      f.expired = idx;
      f.expired_prev = prev;
    }
    prev = idx;
    r = RowNext(idx);
  }
  return f;
}

// ---------------------------------------------------------------------------
// Write steps

absl::Status TableCore::BeginRecord(OwnerToken me, uint32_t b, UndoOp op,
                                    uint32_t r, uint32_t image_offset,
                                    uint32_t image_len) const {
  SlotArea& a = area(me.slot);
  if (registry_.Pinned(me.slot)) {
    // Our previous write left a row waiting for a free shard: free it first
    // (it must not be overwritten by this record).
    if (Load(a.token, std::memory_order_relaxed) == LockWordOf(me) &&
        a.op == kUndoDelete && a.row != 0 && a.row <= capacity_) {
      if (!FreeRow(me, a.row - 1)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "row ", a.row - 1,
            " deleted earlier is still waiting for a free "
            "shard: every shard stayed locked by a live process for ",
            absl::FormatDuration(lock_timeout_)));
      }
    }
    EndRecord(me);
  }
  a.token = LockWordOf(me);
  a.bucket = b;
  a.op = op;
  a.row = r;  // index + 1, or 0
  a.image_offset = image_offset;
  a.image_len = image_len;
  a.shard = 0;
  a.shard_count_before = 0;
  if (image_len > 0) {
    SharedRead(row_ptr(r - 1), image_offset, area_image(me.slot) + image_offset,
               image_len);
  }
  registry_.Pin(me.slot);  // release: the record is complete before this
  return absl::OkStatus();
}

void TableCore::EndRecord(OwnerToken me) const { registry_.Unpin(me.slot); }

void TableCore::SeqBegin(uint32_t b) const {
  uint64_t& word = bucket_word(b);
  const uint64_t w = Load(word, std::memory_order_relaxed);
  Store(word, BucketWord(SeqOf(w) + 1, HeadOf(w)), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void TableCore::SeqEnd(uint32_t b) const {
  uint64_t& word = bucket_word(b);
  const uint64_t w = Load(word, std::memory_order_relaxed);
  Store(word, BucketWord(SeqOf(w) + 1, HeadOf(w)), std::memory_order_release);
}

void TableCore::EncodeField(std::byte* row, int column,
                            const Value& value) const {
  const ColumnSpec& spec = schema_.column(column);
  const RowLayout::Column& lc = layout_->columns[column];
  switch (spec.type) {
    case ColumnType::kInt:
      StoreField(row, lc.offset, spec.size,
                 static_cast<uint64_t>(value.int_value()));
      break;
    case ColumnType::kFloat: {
      const double d = value.is_float()
                           ? value.float_value()
                           : static_cast<double>(value.int_value());
      if (spec.size == 8) {
        uint64_t bits;
        std::memcpy(&bits, &d, 8);
        StoreField(row, lc.offset, 8, bits);
      } else {
        const float f = static_cast<float>(d);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        StoreField(row, lc.offset, 4, bits);
      }
      break;
    }
    case ColumnType::kString:
    case ColumnType::kBytes: {
      const std::string& s = value.string_value();
      StoreField(row, lc.len_offset, lc.len_bytes, s.size());
      SharedWrite(row, lc.offset, s.data(), s.size());
      break;
    }
  }
}

absl::StatusOr<uint32_t> TableCore::AllocateRow(OwnerToken me) const {
  SlotArea& a = area(me.slot);
  const uint32_t home = me.slot % shard_count_;
  for (uint32_t i = 0; i < shard_count_; ++i) {
    const uint32_t s = (home + i) % shard_count_;
    FreeShard& fs = shard(s);
    if (Load(fs.head, std::memory_order_relaxed) == 0) continue;  // racy skip
    a.row = 0;
    a.shard = s + 1;  // before locking: a crash while holding it is recorded
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockShard(s, me));
    const uint32_t head = Load(fs.head, std::memory_order_relaxed);
    if (head == 0) continue;
    if (head > capacity_) {
      // Corrupt shard: drop its list rather than follow it.
      Store(fs.head, 0u, std::memory_order_relaxed);
      Store(fs.count, 0u, std::memory_order_relaxed);
      Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const uint32_t r = head - 1;
    const uint32_t count = Load(fs.count, std::memory_order_relaxed);
    a.shard_count_before = count;
    a.row = head;
    MaybeCrash(CrashPoint::kShardLockedBeforePop);
    SetRowState(r, me.slot + 1);
    MaybeCrash(CrashPoint::kRowClaimedBeforePop);
    uint32_t next = RowNext(r);
    if (next > capacity_) next = 0;  // corrupt link: cut the list here
    Store(fs.head, next, std::memory_order_relaxed);
    Store(fs.count, count > 0 ? count - 1 : 0, std::memory_order_relaxed);
    a.shard = 0;  // the pop is complete; the row is ours
    return r;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("table is full: all ", capacity_, " rows are in use"));
}

bool TableCore::FreeRow(OwnerToken me, uint32_t r) const {
  // Caller's record: op delete (or recovery's own), row r + 1, pinned; r is
  // out of every chain and its state is not 0. Any shard can take the row:
  // one pass over them all, starting at the home shard. If every one stays
  // held by a live process for lock_timeout, the row stays in the caller's
  // pinned record as a pending free, settled by BeginRecord before the
  // thread's next write; it is never lost and nothing here loops for ever.
  SlotArea& a = area(me.slot);
  for (uint32_t i = 0; i < shard_count_; ++i) {
    const uint32_t s = (me.slot + i) % shard_count_;
    FreeShard& fs = shard(s);
    a.shard = s + 1;
    absl::StatusOr<Guard> guard = LockShard(s, me);
    if (!guard.ok()) continue;
    const uint32_t count = Load(fs.count, std::memory_order_relaxed);
    a.shard_count_before = count;
    SetRowNext(r, Load(fs.head, std::memory_order_relaxed));
    Store(fs.head, r + 1, std::memory_order_relaxed);
    Store(fs.count, count + 1, std::memory_order_relaxed);
    MaybeCrash(CrashPoint::kFreePushedBeforeState);
    SetRowState(r, 0);
    a.op = kUndoNone;  // inside the shard lock: see RecoverShard
    a.shard = 0;
    return true;
  }
  a.shard = 0;
  return false;
}

absl::Status TableCore::InsertLocked(OwnerToken me, uint32_t b,
                                     absl::string_view key,
                                     absl::Span<const ResolvedField> fields,
                                     int64_t expiry_ms) const {
  SHMKIT_RETURN_IF_ERROR(BeginRecord(me, b, kUndoInsert, 0, 0, 0));
  absl::StatusOr<uint32_t> allocated = AllocateRow(me);
  if (!allocated.ok()) {
    EndRecord(me);
    return allocated.status();
  }
  const uint32_t r = *allocated;
  // Build the whole row privately, then copy it in while it is unreachable.
  std::vector<std::byte>& buf = tls_row_buffer;
  buf.assign(stride_, std::byte{0});
  std::byte* p = buf.data();
  // The private buffer is 8-aligned (vector of bytes from operator new), so
  // the shared-memory helpers work on it too.
  StoreField(p, layout_->state_offset, 2, me.slot + 1);
  StoreField(p, layout_->next_offset, 4, BucketHead(b));
  StoreField(p, layout_->key_len_offset, layout_->key_len_bytes, key.size());
  SharedWrite(p, layout_->key_offset, key.data(), key.size());
  for (const ResolvedField& f : fields) EncodeField(p, f.column, *f.value);
  if (layout_->has_expiry && expiry_ms > 0) {
    StoreField(p, layout_->expiry_offset, 8, static_cast<uint64_t>(expiry_ms));
  }
  SharedWrite(row_ptr(r), 0, p, stride_);
  MaybeCrash(CrashPoint::kAllocatedBeforeLink);
  SeqBegin(b);
  SetBucketHead(b, r + 1);
  MaybeCrash(CrashPoint::kLinkedBeforeSeqEven);
  SeqEnd(b);
  EndRecord(me);
  return absl::OkStatus();
}

absl::Status TableCore::RewriteRowLocked(OwnerToken me, uint32_t b, uint32_t r,
                                         absl::string_view key,
                                         absl::Span<const ResolvedField> fields,
                                         int64_t expiry_ms,
                                         bool whole_row) const {
  // Save the whole row (simple, and at most one row per write).
  SHMKIT_RETURN_IF_ERROR(BeginRecord(me, b, kUndoUpdate, r + 1, 0, stride_));
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  SeqBegin(b);
  std::byte* p = row_ptr(r);
  if (whole_row) {
    // Reusing an expired row for a new key: clear all but next and state.
    const uint32_t next = RowNext(r);
    const uint32_t state = RowState(r);
    SharedZero(p, 0, stride_);
    StoreField(p, layout_->next_offset, 4, next);
    StoreField(p, layout_->state_offset, 2, state);
    StoreField(p, layout_->key_len_offset, layout_->key_len_bytes, key.size());
    SharedWrite(p, layout_->key_offset, key.data(), key.size());
  }
  bool first = true;
  for (const ResolvedField& f : fields) {
    EncodeField(p, f.column, *f.value);
    if (first) MaybeCrash(CrashPoint::kMidRowWrite);
    first = false;
  }
  if (layout_->has_expiry && expiry_ms >= 0) {
    StoreField(p, layout_->expiry_offset, 8, static_cast<uint64_t>(expiry_ms));
  }
  MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
  SeqEnd(b);
  MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
  EndRecord(me);
  return absl::OkStatus();
}

absl::Status TableCore::DeleteLocked(OwnerToken me, uint32_t b, uint32_t r,
                                     int64_t prev) const {
  SHMKIT_RETURN_IF_ERROR(BeginRecord(me, b, kUndoDelete, r + 1, 0, 0));
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  const uint32_t next = RowNext(r);
  SeqBegin(b);
  if (prev < 0) {
    SetBucketHead(b, next);
  } else {
    SetRowNext(static_cast<uint32_t>(prev), next);
  }
  SeqEnd(b);
  MaybeCrash(CrashPoint::kUnlinkedBeforeFree);
  // The delete has happened (the row is unlinked). If no shard could take
  // the row now, it stays pending in our record (see FreeRow).
  if (FreeRow(me, r)) EndRecord(me);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Write operations

absl::Status TableCore::Write(absl::string_view key,
                              absl::Span<const ResolvedField> fields,
                              WriteMode mode, const SetOptions& options) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  if (options.ttl.has_value()) {
    if (!schema_.ttl()) {
      return absl::InvalidArgumentError(
          "a TTL was given but the table's schema has no TTL "
          "(Schema::Builder::WithTtl)");
    }
    if (*options.ttl <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TTL must be positive, got ", absl::FormatDuration(*options.ttl)));
    }
  }
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  for (int attempt = 0;; ++attempt) {
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    MaybeCrash(CrashPoint::kLockedBeforeRecord);
    const int64_t now_ms = layout_->has_expiry ? NowMs() : 0;
    const int64_t expiry = ExpiryFor(options.ttl);  // -1: none given
    const Found f = FindLocked(b, key, now_ms);
    if (f.row >= 0) {
      if (mode == WriteMode::kAdd) {
        return absl::AlreadyExistsError(
            absl::StrCat("key \"", absl::CEscape(key), "\" already exists"));
      }
      return RewriteRowLocked(me, b, static_cast<uint32_t>(f.row), key, fields,
                              expiry, /*whole_row=*/false);
    }
    if (mode == WriteMode::kUpdate) {
      return absl::NotFoundError(
          absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
    }
    if (f.expired >= 0) {
      // Reuse the expired row in place: it is already in this chain.
      SHMKIT_RETURN_IF_ERROR(
          RewriteRowLocked(me, b, static_cast<uint32_t>(f.expired), key, fields,
                           expiry < 0 ? 0 : expiry, /*whole_row=*/true));
      Ref(header_->expired_reclaimed).fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    absl::Status st = InsertLocked(me, b, key, fields, expiry < 0 ? 0 : expiry);
    if (!absl::IsResourceExhausted(st) || attempt > 0) {
      if (absl::IsResourceExhausted(st)) {
        Ref(header_->failed_inserts).fetch_add(1, std::memory_order_relaxed);
      }
      return st;
    }
    // Full: before saying so, recover crashed writers (their rows come back)
    // and free expired rows, outside this bucket's lock; then try once more.
    guard.Unlock();
    RecoverCrashedWriters(me);
    if (schema_.ttl()) (void)Sweep();
  }
}

absl::Status TableCore::Delete(absl::string_view key, Row* removed) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  const Found f = FindLocked(b, key, layout_->has_expiry ? NowMs() : 0);
  if (f.row < 0) {
    return absl::NotFoundError(
        absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
  }
  const uint32_t r = static_cast<uint32_t>(f.row);
  if (removed != nullptr) {
    SHMKIT_RETURN_IF_ERROR(
        CopyOut(row_ptr(r), key, CopyWhat::kRow, -1, removed));
    SHMKIT_RETURN_IF_ERROR(CheckTextLengths(*removed, CopyWhat::kRow, -1));
  }
  return DeleteLocked(me, b, r, f.prev);
}

// The increment of an existing row, under the bucket lock: computes the new
// raw column bits from the old (or an OutOfRange error) and rewrites just that
// column behind an undo image. `next_bits` gets the old bits and returns the
// new ones.
template <typename Compute>
absl::Status TableCore::RewriteColumnLocked(OwnerToken me, uint32_t b,
                                            uint32_t r, int column,
                                            Compute&& next_bits) const {
  const RowLayout::Column& lc = layout_->columns[column];
  const uint32_t size = schema_.column(column).size;
  std::byte* p = row_ptr(r);
  SHMKIT_ASSIGN_OR_RETURN(const uint64_t bits,
                          next_bits(LoadField(p, lc.offset, size)));
  SHMKIT_RETURN_IF_ERROR(
      BeginRecord(me, b, kUndoUpdate, r + 1, lc.offset, size));
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  SeqBegin(b);
  StoreField(p, lc.offset, size, bits);
  MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
  SeqEnd(b);
  MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
  EndRecord(me);
  return absl::OkStatus();
}

// Shared by IncrementInt and IncrementFloat: finds the row, creates it when
// asked (with the column set to `initial`), or rewrites the column.
template <typename Compute>
absl::Status TableCore::IncrementRow(absl::string_view key, int column,
                                     absl::FunctionRef<Value()> make_initial,
                                     const IncrOptions& options,
                                     Compute&& next_bits) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  const ColumnSpec& spec = schema_.column(column);
  if (options.ttl.has_value() && (!schema_.ttl() || !options.create ||
                                  *options.ttl <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        "IncrOptions::ttl needs create = true, a positive duration and a "
        "schema WithTtl");
  }
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  for (int attempt = 0;; ++attempt) {
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    MaybeCrash(CrashPoint::kLockedBeforeRecord);
    const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
    if (f.row >= 0) {
      return RewriteColumnLocked(me, b, static_cast<uint32_t>(f.row), column,
                                 next_bits);
    }
    if (!options.create) {
      return absl::NotFoundError(
          absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
    }
    // Create with the column at the delta (other columns zero).
    const Value initial = make_initial();
    if (absl::Status st = CheckValueFits(spec, initial); !st.ok()) {
      return absl::OutOfRangeError(st.message());
    }
    const ResolvedField field{column, &initial};
    const int64_t expiry = ExpiryFor(options.ttl);
    absl::Status st;
    if (f.expired >= 0) {
      st = RewriteRowLocked(me, b, static_cast<uint32_t>(f.expired), key,
                            absl::MakeConstSpan(&field, 1),
                            expiry < 0 ? 0 : expiry,
                            /*whole_row=*/true);
      if (st.ok()) {
        Ref(header_->expired_reclaimed).fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      st = InsertLocked(me, b, key, absl::MakeConstSpan(&field, 1),
                        expiry < 0 ? 0 : expiry);
    }
    if (absl::IsResourceExhausted(st) && attempt == 0) {
      guard.Unlock();
      RecoverCrashedWriters(me);
      if (schema_.ttl()) (void)Sweep();
      continue;
    }
    if (absl::IsResourceExhausted(st)) {
      Ref(header_->failed_inserts).fetch_add(1, std::memory_order_relaxed);
    }
    return st;
  }
}

std::optional<int64_t> TableCore::TryFastIncrement(absl::string_view key,
                                                   int column, int64_t delta) {
  if (read_only_ || key.empty() || key.size() > max_key_bytes_)
    return std::nullopt;
  absl::StatusOr<OwnerToken> token = registry_.Self();
  if (!token.ok()) return std::nullopt;
  const OwnerToken me = *token;
  uint32_t* pin = registry_.pin_word(me.slot);
  if (Load(*pin, std::memory_order_relaxed) != 0)
    return std::nullopt;  // pending
  const ColumnSpec& spec = schema_.column(column);
  const uint32_t offset = layout_->columns[column].offset;
  const uint32_t width = spec.size;
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  OwnerLock lock(bucket_lock(b), &registry_);
  if (!lock.TryLock(me)) return std::nullopt;  // contended: general path
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
  std::optional<int64_t> result;
  if (f.row >= 0) {
    const uint32_t r = static_cast<uint32_t>(f.row);
    std::byte* p = row_ptr(r);
    const int shift = 64 - static_cast<int>(width) * 8;
    const uint64_t raw = LoadField(p, offset, width);
    const int64_t now = shift == 0
                            ? static_cast<int64_t>(raw)
                            : static_cast<int64_t>(raw << shift) >> shift;
    const int64_t hi =
        width >= 8 ? INT64_MAX : (int64_t{1} << (width * 8 - 1)) - 1;
    int64_t next;
    if (!__builtin_add_overflow(now, delta, &next) && next <= hi &&
        next >= -hi - 1) {
      // The record (BeginRecord without the pending check, done above).
      SlotArea& a = area(me.slot);
      a.token = LockWordOf(me);
      a.bucket = b;
      a.op = kUndoUpdate;
      a.row = r + 1;
      a.image_offset = offset;
      a.image_len = width;
      a.shard = 0;
      StoreField(area_image(me.slot), offset, width, raw);
      Store(*pin, 1u);  // release: the record is complete
      MaybeCrash(CrashPoint::kRecordedBeforeWrite);
      SeqBegin(b);
      StoreField(p, offset, width, static_cast<uint64_t>(next));
      MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
      SeqEnd(b);
      MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
      Store(*pin, 0u);
      result = next;
    }
  }
  (void)lock.Unlock(me);
  return result;
}

absl::StatusOr<int64_t> TableCore::IncrementInt(absl::string_view key,
                                                int column, int64_t delta,
                                                const IncrOptions& options) {
  const ColumnSpec& spec = schema_.column(column);
  if (!spec.is_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", spec.name, "\" is ", spec.TypeString(),
                     spec.is_float() ? ": use IncrFloat" : ": not a number"));
  }
  const uint32_t width = spec.size;
  const int shift = 64 - static_cast<int>(width) * 8;
  const int64_t hi =
      width >= 8 ? INT64_MAX : (int64_t{1} << (width * 8 - 1)) - 1;
  const int64_t lo = -hi - 1;
  int64_t result = delta;
  SHMKIT_RETURN_IF_ERROR(IncrementRow(
      key, column, [delta] { return Value(static_cast<long long>(delta)); },
      options,
      [&](uint64_t raw) -> absl::StatusOr<uint64_t> {
        const int64_t now = shift == 0
                                ? static_cast<int64_t>(raw)
                                : static_cast<int64_t>(raw << shift) >> shift;
        if (__builtin_add_overflow(now, delta, &result) || result < lo ||
            result > hi) {
          return absl::OutOfRangeError(
              absl::StrCat("column \"", spec.name, "\" (", spec.TypeString(),
                           "): ", now, " + ", delta, " is out of range"));
        }
        return static_cast<uint64_t>(result);
      }));
  return result;
}

absl::StatusOr<double> TableCore::IncrementFloat(absl::string_view key,
                                                 int column, double delta,
                                                 const IncrOptions& options) {
  const ColumnSpec& spec = schema_.column(column);
  if (!spec.is_float()) {
    return absl::InvalidArgumentError(
        absl::StrCat("column \"", spec.name, "\" is ", spec.TypeString(),
                     spec.is_integer() ? ": use Incr" : ": not a number"));
  }
  double result = delta;
  SHMKIT_RETURN_IF_ERROR(IncrementRow(
      key, column, [delta] { return Value(delta); }, options,
      [&](uint64_t raw) -> absl::StatusOr<uint64_t> {
        double now;
        if (spec.size == 8) {
          std::memcpy(&now, &raw, 8);
        } else {
          const uint32_t bits32 = static_cast<uint32_t>(raw);
          float f;
          std::memcpy(&f, &bits32, 4);
          now = f;
        }
        result = now + delta;
        if (spec.size == 4) result = static_cast<float>(result);
        if (!std::isfinite(result)) {
          return absl::OutOfRangeError(absl::StrCat("column \"", spec.name,
                                                    "\": ", now, " + ", delta,
                                                    " is not finite"));
        }
        if (spec.size == 8) {
          uint64_t bits;
          std::memcpy(&bits, &result, 8);
          return bits;
        }
        const float f = static_cast<float>(result);
        uint32_t bits32;
        std::memcpy(&bits32, &f, 4);
        return uint64_t{bits32};
      }));
  return result;
}

absl::StatusOr<bool> TableCore::CompareAndSet(absl::string_view key, int column,
                                              const Value& expected,
                                              const Value& desired) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  const ColumnSpec& spec = schema_.column(column);
  SHMKIT_RETURN_IF_ERROR(CheckValueFits(spec, expected));
  SHMKIT_RETURN_IF_ERROR(CheckValueFits(spec, desired));
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  const Found f = FindLocked(b, key, layout_->has_expiry ? NowMs() : 0);
  if (f.row < 0) {
    return absl::NotFoundError(
        absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
  }
  const uint32_t r = static_cast<uint32_t>(f.row);
  Row current;
  SHMKIT_RETURN_IF_ERROR(
      CopyOut(row_ptr(r), key, CopyWhat::kColumn, column, &current));
  SHMKIT_RETURN_IF_ERROR(CheckTextLengths(current, CopyWhat::kColumn, column));
  SHMKIT_ASSIGN_OR_RETURN(Value now, current.Get(column));
  // Compare in the column's own representation (an int expected for a float
  // column compares as that float).
  Value want = expected;
  if (spec.is_float() && expected.is_int()) {
    want = Value(static_cast<double>(expected.int_value()));
  }
  if (spec.is_float() && spec.size == 4 && want.is_float()) {
    want = Value(static_cast<double>(static_cast<float>(want.float_value())));
  }
  if (!(now == want)) return false;
  const RowLayout::Column& lc = layout_->columns[column];
  const uint32_t image_offset =
      spec.is_text() ? std::min(lc.offset, lc.len_offset) : lc.offset;
  const uint32_t image_end =
      spec.is_text()
          ? std::max(lc.offset + spec.size, lc.len_offset + lc.len_bytes)
          : lc.offset + spec.size;
  SHMKIT_RETURN_IF_ERROR(BeginRecord(me, b, kUndoUpdate, r + 1, image_offset,
                                     image_end - image_offset));
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  SeqBegin(b);
  EncodeField(row_ptr(r), column, desired);
  MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
  SeqEnd(b);
  EndRecord(me);
  return true;
}

absl::Status TableCore::Clear() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    if (BucketHead(b) == 0) continue;
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    for (uint64_t steps = 0; steps < capacity_; ++steps) {
      const uint32_t head = BucketHead(b);
      if (head == 0 || head > capacity_) break;
      SHMKIT_RETURN_IF_ERROR(DeleteLocked(me, b, head - 1, -1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TableCore::Sweep() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  if (!layout_->has_expiry) return 0;
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  uint64_t freed = 0;
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    // Look without the lock first (racy walk, bounded): most buckets have
    // nothing expired.
    const int64_t now_ms = NowMs();
    bool any = false;
    uint32_t r = BucketHead(b);
    for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
         ++steps) {
      if (RowExpired(row_ptr(r - 1), now_ms)) {
        any = true;
        break;
      }
      r = RowNext(r - 1);
    }
    if (!any) continue;
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    int64_t prev = -1;
    r = BucketHead(b);
    for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
         ++steps) {
      const uint32_t idx = r - 1;
      const uint32_t next = RowNext(idx);
      if (RowExpired(row_ptr(idx), now_ms)) {
        SHMKIT_RETURN_IF_ERROR(DeleteLocked(me, b, idx, prev));
        ++freed;
      } else {
        prev = idx;
      }
      r = next;
    }
  }
  Ref(header_->expired_reclaimed).fetch_add(freed, std::memory_order_relaxed);
  return freed;
}

// ---------------------------------------------------------------------------
// Whole-table views

uint64_t TableCore::Count() const {
  uint64_t free_rows = 0;
  for (uint32_t s = 0; s < shard_count_; ++s) {
    free_rows += Load(shard(s).count, std::memory_order_relaxed);
  }
  return free_rows >= capacity_ ? 0 : capacity_ - free_rows;
}

absl::Status TableCore::SnapshotBucket(uint32_t b, int64_t now_ms,
                                       std::vector<Row>* out) const {
  const uint64_t& bword = bucket_word(b);
  const size_t base = out->size();
  for (int attempt = 0; attempt < kOptimisticAttempts; ++attempt) {
    out->resize(base);
    const uint64_t w1 = Load(bword, std::memory_order_acquire);
    if (SeqOf(w1) & 1) {
      Backoff(attempt);
      continue;
    }
    uint32_t r = HeadOf(w1);
    bool broken = false;
    for (uint64_t steps = 0; r != 0; ++steps) {
      if (r > capacity_ || steps >= capacity_) {
        broken = true;
        break;
      }
      const std::byte* p = row_ptr(r - 1);
      Row row;
      PrepareRow(&row);
      SharedRead(p, 0, row.bytes_.data(), stride_);
      out->push_back(std::move(row));
      r = static_cast<uint32_t>(LoadField(p, layout_->next_offset, 4));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (Load(bword, std::memory_order_relaxed) != w1) {
      Backoff(attempt);
      continue;
    }
    if (broken) break;
    // Consistent: decode keys, drop expired rows, validate lengths.
    size_t keep = base;
    for (size_t i = base; i < out->size(); ++i) {
      Row& row = (*out)[i];
      const std::byte* p = row.bytes_.data();
      const uint64_t klen =
          LoadField(p, layout_->key_len_offset, layout_->key_len_bytes);
      if (klen == 0 || klen > schema_.max_key_bytes()) {
        return absl::DataLossError(
            absl::StrCat("bucket ", b, ": a row has a key length of ", klen));
      }
      row.key_in_bytes_ = true;
      row.present_ = true;
      if (RowExpired(p, now_ms)) continue;
      SHMKIT_RETURN_IF_ERROR(CheckTextLengths(row, CopyWhat::kRow, -1));
      FillExpiry(&row);
      if (keep != i) (*out)[keep] = std::move(row);
      ++keep;
    }
    out->resize(keep);
    return absl::OkStatus();
  }
  // Busy or broken: copy under the lock (recovers a dead writer).
  out->resize(base);
  if (read_only_) {
    return absl::DeadlineExceededError(absl::StrCat(
        "bucket ", b, " stayed busy; a read-only handle cannot lock it"));
  }
  Ref(header_->read_fallbacks).fetch_add(1, std::memory_order_relaxed);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
  uint32_t r = BucketHead(b);
  for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
       ++steps) {
    const std::byte* p = row_ptr(r - 1);
    r = RowNext(r - 1);
    if (RowExpired(p, now_ms)) continue;
    const uint64_t klen =
        LoadField(p, layout_->key_len_offset, layout_->key_len_bytes);
    if (klen == 0 || klen > schema_.max_key_bytes()) {
      return absl::DataLossError(
          absl::StrCat("bucket ", b, ": a row has a key length of ", klen));
    }
    Row row;
    std::string key(klen, '\0');
    SharedRead(p, layout_->key_offset, key.data(), klen);
    SHMKIT_RETURN_IF_ERROR(CopyOut(p, key, CopyWhat::kRow, -1, &row));
    SHMKIT_RETURN_IF_ERROR(CheckTextLengths(row, CopyWhat::kRow, -1));
    out->push_back(std::move(row));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TableCore::ScanBuckets(uint64_t cursor,
                                                size_t max_rows,
                                                std::vector<Row>* out) const {
  if (cursor > bucket_count_) {
    return absl::InvalidArgumentError(absl::StrCat("scan cursor ", cursor,
                                                   " is past the table's ",
                                                   bucket_count_, " buckets"));
  }
  const int64_t now_ms = layout_->has_expiry ? NowMs() : 0;
  uint64_t b = cursor;
  // Whole buckets only, so each row is in exactly one page.
  while (b < bucket_count_ && (out->size() < max_rows || out->empty())) {
    SHMKIT_RETURN_IF_ERROR(
        SnapshotBucket(static_cast<uint32_t>(b), now_ms, out));
    ++b;
  }
  return b >= bucket_count_ ? 0 : b;
}

TableStats TableCore::Stats() const {
  TableStats st;
  st.capacity = capacity_;
  st.live_rows = Count();
  st.memory_bytes = header_->total_bytes;
  st.bytes_per_row = static_cast<double>(st.memory_bytes) / capacity_;
  st.buckets = bucket_count_;
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    uint64_t len = 0;
    uint32_t r = BucketHead(b);
    while (r != 0 && r <= capacity_ && len < capacity_) {
      ++len;
      r = RowNext(r - 1);
    }
    st.longest_chain = std::max(st.longest_chain, len);
  }
  st.failed_inserts = Load(header_->failed_inserts, std::memory_order_relaxed);
  st.lock_waits = Load(header_->lock_waits, std::memory_order_relaxed);
  st.recoveries = Load(header_->recoveries, std::memory_order_relaxed);
  st.expired_reclaimed =
      Load(header_->expired_reclaimed, std::memory_order_relaxed);
  st.chain_repairs = Load(header_->chain_repairs, std::memory_order_relaxed);
  st.read_fallbacks = Load(header_->read_fallbacks, std::memory_order_relaxed);
  return st;
}

TableInspection TableCore::Inspect() const {
  TableInspection in;
  constexpr size_t kHistogram = 16;
  in.chain_histogram.assign(kHistogram + 1, 0);
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    uint64_t len = 0;
    uint32_t r = BucketHead(b);
    while (r != 0 && r <= capacity_ && len < capacity_) {
      ++len;
      r = RowNext(r - 1);
    }
    ++in.chain_histogram[std::min<uint64_t>(len, kHistogram)];
    const uint64_t word = Load(*bucket_lock(b), std::memory_order_relaxed);
    if (std::optional<OwnerToken> owner = OwnerOfLockWord(word)) {
      const SlotInfo info = registry_.Slot(owner->slot);
      in.held_locks.push_back(
          {b, info.pid, owner->slot, !registry_.IsDead(*owner)});
    }
  }
  for (const SlotInfo& s : registry_.Slots()) {
    if (s.pinned && registry_.IsDead({s.slot, s.generation}))
      ++in.dead_pinned_slots;
  }
  return in;
}

// ---------------------------------------------------------------------------
// Recovery

bool TableCore::RecordValid(OwnerToken dead) const {
  if (dead.slot >= registry_.slot_count() || !registry_.Pinned(dead.slot)) {
    return false;
  }
  return Load(area(dead.slot).token, std::memory_order_acquire) ==
         LockWordOf(dead);
}

bool TableCore::ChainContains(uint32_t b, uint32_t r) const {
  uint32_t cur = BucketHead(b);
  for (uint64_t steps = 0; cur != 0 && cur <= capacity_ && steps < capacity_;
       ++steps) {
    if (cur == r + 1) return true;
    cur = RowNext(cur - 1);
  }
  return false;
}

void TableCore::RepairChain(uint32_t b) const {
  // Walk with a bound; cut at the first link that leaves the pool or loops.
  uint32_t head = BucketHead(b);
  if (head > capacity_) {
    SetBucketHead(b, 0);
    Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint32_t cur = head;
  for (uint64_t steps = 0; cur != 0; ++steps) {
    const uint32_t next = RowNext(cur - 1);
    if (next > capacity_ || steps + 1 >= capacity_) {
      if (next != 0) {
        SetRowNext(cur - 1, 0);
        Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    cur = next;
  }
}

void TableCore::RecoverShard(uint32_t s, OwnerToken dead) const {
  FreeShard& fs = shard(s);
  Ref(header_->recoveries).fetch_add(1, std::memory_order_relaxed);
  if (RecordValid(dead)) {
    SlotArea& a = area(dead.slot);
    const uint32_t row = a.row;
    if (a.shard == s + 1 && row != 0 && row <= capacity_) {
      const uint32_t r = row - 1;
      const uint32_t head = Load(fs.head, std::memory_order_relaxed);
      if (a.op == kUndoInsert && RowState(r) == dead.slot + 1) {
        // Claimed: finish the pop (the row belongs to the dead writer; its
        // bucket's recovery frees it).
        if (head == row) {
          uint32_t next = RowNext(r);
          if (next > capacity_) next = 0;
          Store(fs.head, next, std::memory_order_relaxed);
        }
        const uint32_t before = a.shard_count_before;
        Store(fs.count, before > 0 ? before - 1 : 0, std::memory_order_relaxed);
        a.shard = 0;
      } else if ((a.op == kUndoDelete) && head == row) {
        // Pushed: finish it.
        Store(fs.count, a.shard_count_before + 1, std::memory_order_relaxed);
        SetRowState(r, 0);
        a.op = kUndoNone;
        a.shard = 0;
      }
      // Otherwise the dead writer changed nothing in this shard.
      return;
    }
  }
  // No record for this shard: the dead owner left it consistent (its last
  // step, when any, completes the change). Recount to be sure of the count,
  // and cut the list where it leaves the pool.
  uint32_t n = 0;
  uint32_t cur = Load(fs.head, std::memory_order_relaxed);
  if (cur > capacity_) {
    Store(fs.head, 0u, std::memory_order_relaxed);
    cur = 0;
  }
  while (cur != 0 && n < capacity_) {
    ++n;
    const uint32_t next = RowNext(cur - 1);
    if (next > capacity_) {
      SetRowNext(cur - 1, 0);
      break;
    }
    cur = next;
  }
  Store(fs.count, n, std::memory_order_relaxed);
}

void TableCore::RecoverBucket(uint32_t b, OwnerToken dead,
                              OwnerToken me) const {
  Ref(header_->recoveries).fetch_add(1, std::memory_order_relaxed);
  const bool seq_odd =
      (SeqOf(Load(bucket_word(b), std::memory_order_relaxed)) & 1) != 0;
  if (RecordValid(dead) && area(dead.slot).bucket == b) {
    SlotArea& a = area(dead.slot);
    // First settle the dead writer's free-shard change, if it was in one:
    // taking that shard's lock runs RecoverShard if the dead writer holds it.
    if (a.shard != 0 && a.shard <= shard_count_) {
      absl::StatusOr<Guard> g = LockShard(a.shard - 1, me);
      (void)g;  // released at once; a live holder just finished normally
    }
    const uint32_t row = a.row;
    const bool row_ok = row != 0 && row <= capacity_;
    switch (a.op) {
      case kUndoUpdate:
        if (seq_odd && row_ok && a.image_len <= stride_ &&
            a.image_offset <= stride_ - a.image_len) {
          SharedWrite(row_ptr(row - 1), a.image_offset,
                      area_image(dead.slot) + a.image_offset, a.image_len);
        }
        break;
      case kUndoInsert:
        if (row_ok && !ChainContains(b, row - 1) &&
            RowState(row - 1) == dead.slot + 1) {
          // Allocated, never linked: give it back, under our own record.
          // If no shard takes it now, it stays pending in our record.
          if (BeginRecord(me, b, kUndoDelete, row, 0, 0).ok() &&
              FreeRow(me, row - 1)) {
            EndRecord(me);
          }
        }
        break;
      case kUndoDelete:
        if (row_ok && !ChainContains(b, row - 1) && RowState(row - 1) != 0) {
          // Unlinked, not yet freed: finish the delete.
          // If no shard takes it now, it stays pending in our record.
          if (BeginRecord(me, b, kUndoDelete, row, 0, 0).ok() &&
              FreeRow(me, row - 1)) {
            EndRecord(me);
          }
        }
        break;
      default:
        break;
    }
    a.op = kUndoNone;
  }
  {
    const uint64_t w = Load(bucket_word(b), std::memory_order_relaxed);
    if (SeqOf(w) & 1) {
      Store(bucket_word(b), BucketWord(SeqOf(w) + 1, HeadOf(w)),
            std::memory_order_release);
    }
  }
  RepairChain(b);
  if (dead.slot < registry_.slot_count() &&
      Load(area(dead.slot).token, std::memory_order_relaxed) ==
          LockWordOf(dead)) {
    registry_.Unpin(dead.slot);
  }
}

void TableCore::RecoverCrashedWriters(OwnerToken me) const {
  // Dead writers with live records: take over the bucket they held.
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    if (!registry_.Pinned(slot)) continue;
    const uint64_t token = Load(area(slot).token, std::memory_order_acquire);
    std::optional<OwnerToken> dead = OwnerOfLockWord(token);
    if (!dead.has_value() || dead->slot != slot || !registry_.IsDead(*dead)) {
      continue;
    }
    const uint32_t b = area(slot).bucket;
    if (b >= bucket_count_) continue;
    absl::StatusOr<Guard> g = LockBucket(b, me);
    if (!g.ok()) continue;  // a live holder: it is not the dead writer's
    // The takeover (if the dead writer still held the bucket) recovered it.
    // Otherwise its record is stale but pinned: settle it here so the slot
    // is not pinned forever.
    if (RecordValid(*dead)) RecoverBucket(b, *dead, me);
  }
}

absl::StatusOr<uint64_t> TableCore::Recover() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint64_t before = Load(header_->recoveries, std::memory_order_relaxed);
  RecoverCrashedWriters(me);
  // Locks of dead owners with nothing to repair: release them too.
  for (uint32_t s = 0; s < shard_count_; ++s) {
    std::optional<OwnerToken> owner =
        OwnerOfLockWord(Load(shard(s).lock, std::memory_order_relaxed));
    if (owner && registry_.IsDead(*owner)) {
      absl::StatusOr<Guard> g = LockShard(s, me);
      if (!g.ok()) return g.status();
    }
  }
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    std::optional<OwnerToken> owner =
        OwnerOfLockWord(Load(*bucket_lock(b), std::memory_order_relaxed));
    if (owner && registry_.IsDead(*owner)) {
      absl::StatusOr<Guard> g = LockBucket(b, me);
      if (!g.ok()) return g.status();
    }
  }
  return Load(header_->recoveries, std::memory_order_relaxed) - before;
}

absl::Status TableCore::CheckConsistency() const {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());  // it locks every bucket
  std::vector<uint8_t> seen(capacity_, 0);  // 1: in a chain, 2: free
  uint64_t in_chains = 0, in_shards = 0;
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    if (SeqOf(Load(bucket_word(b), std::memory_order_relaxed)) & 1) {
      return absl::DataLossError(absl::StrCat("bucket ", b, " has an odd seq"));
    }
    uint32_t r = BucketHead(b);
    while (r != 0) {
      if (r > capacity_) {
        return absl::DataLossError(absl::StrCat("bucket ", b, " links to row ",
                                                r - 1, " beyond the capacity"));
      }
      const uint32_t idx = r - 1;
      if (seen[idx] != 0) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " is reachable twice (bucket ", b, ")"));
      }
      seen[idx] = 1;
      ++in_chains;
      const std::byte* p = row_ptr(idx);
      if (RowState(idx) == 0) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " is in bucket ", b, " but marked free"));
      }
      const uint64_t klen =
          LoadField(p, layout_->key_len_offset, layout_->key_len_bytes);
      if (klen == 0 || klen > schema_.max_key_bytes()) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " has a key length of ", klen));
      }
      std::string key(klen, '\0');
      SharedRead(p, layout_->key_offset, key.data(), klen);
      if (BucketOf(StableHash(key), bucket_count_) != b) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " (key \"", absl::CEscape(key),
                         "\") is in bucket ", b, " but hashes to another"));
      }
      for (int c = 0; c < schema_.column_count(); ++c) {
        const ColumnSpec& spec = schema_.column(c);
        if (!spec.is_text()) continue;
        const RowLayout::Column& lc = layout_->columns[c];
        if (LoadField(p, lc.len_offset, lc.len_bytes) > spec.size) {
          return absl::DataLossError(
              absl::StrCat("row ", idx, " column \"", spec.name,
                           "\" length exceeds ", spec.size));
        }
      }
      r = RowNext(idx);
    }
  }
  for (uint32_t s = 0; s < shard_count_; ++s) {
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockShard(s, me));
    uint64_t n = 0;
    uint32_t r = Load(shard(s).head, std::memory_order_relaxed);
    while (r != 0) {
      if (r > capacity_ || seen[r - 1] != 0) {
        return absl::DataLossError(
            absl::StrCat("free shard ", s, " links to row ", r - 1,
                         r > capacity_ ? " beyond the capacity"
                                       : " that is already reachable"));
      }
      seen[r - 1] = 2;
      if (RowState(r - 1) != 0) {
        return absl::DataLossError(absl::StrCat(
            "row ", r - 1, " is in free shard ", s, " but marked in use"));
      }
      ++n;
      r = RowNext(r - 1);
    }
    if (n != Load(shard(s).count, std::memory_order_relaxed)) {
      return absl::DataLossError(
          absl::StrCat("free shard ", s, " holds ", n, " rows but counts ",
                       Load(shard(s).count, std::memory_order_relaxed)));
    }
    in_shards += n;
  }
  if (in_chains + in_shards != capacity_) {
    return absl::DataLossError(absl::StrCat(
        capacity_ - in_chains - in_shards, " of ", capacity_,
        " rows are neither in a chain nor free (", in_chains, " in chains, ",
        in_shards, " free): a writer is still at work or rows were lost"));
  }
  return absl::OkStatus();
}

}  // namespace shmkit::internal
