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

int64_t SignExtend(uint64_t raw, uint32_t bytes) {
  if (bytes >= 8) return static_cast<int64_t>(raw);
  const int shift = 64 - static_cast<int>(bytes) * 8;
  return static_cast<int64_t>(raw << shift) >> shift;
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

absl::StatusOr<TableCore::Guard> TableCore::LockBucket(uint32_t b,
                                                       OwnerToken me) const {
  OwnerLock lock(&bucket(b).lock, &registry_);
  absl::StatusOr<LockResult> result = lock.Lock(me, lock_timeout_);
  if (!result.ok()) {
    return absl::Status(
        result.status().code(),
        absl::StrCat("bucket ", b, ": ", result.status().message()));
  }
  if (result->waited)
    Ref(header_->lock_waits).fetch_add(1, std::memory_order_relaxed);
  Guard guard(&bucket(b).lock, &registry_, me);
  if (result->took_over) RecoverBucket(b, result->dead_owner, me);
  return guard;
}

absl::StatusOr<TableCore::Guard> TableCore::LockShard(uint32_t s,
                                                      OwnerToken me) const {
  OwnerLock lock(&shard(s).lock, &registry_);
  absl::StatusOr<LockResult> result = lock.Lock(me, lock_timeout_);
  if (!result.ok()) {
    return absl::Status(
        result.status().code(),
        absl::StrCat("free shard ", s, ": ", result.status().message()));
  }
  if (result->waited)
    Ref(header_->lock_waits).fetch_add(1, std::memory_order_relaxed);
  Guard guard(&shard(s).lock, &registry_, me);
  if (result->took_over) RecoverShard(s, result->dead_owner);
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
  // Every row starts free: deal rows to the shards round-robin, each shard's
  // list in increasing row order. Touching every row here also commits the
  // memory now rather than at some later insert.
  auto* shards = reinterpret_cast<FreeShard*>(base + plan->shards_offset);
  std::byte* rows = base + plan->rows_offset;
  const uint32_t n_shards = plan->shard_count;
  for (uint64_t r = plan->capacity; r-- > 0;) {
    FreeShard& s = shards[r % n_shards];
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
      h.schema_offset + uint64_t{h.column_count} * sizeof(ColumnDescriptor) >
          segment.size()) {
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
  buckets_ = reinterpret_cast<Bucket*>(base + plan.buckets_offset);
  shards_ = reinterpret_cast<FreeShard*>(base + plan.shards_offset);
  rows_ = base + plan.rows_offset;
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
  return *reinterpret_cast<SlotArea*>(registry_.Extra(slot).data());
}

std::byte* TableCore::area_image(uint32_t slot) const {
  return registry_.Extra(slot).data() + sizeof(SlotArea);
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

bool TableCore::RowKeyEquals(const std::byte* row,
                             absl::string_view key) const {
  const uint64_t len =
      LoadField(row, layout_->key_len_offset, layout_->key_len_bytes);
  return len == key.size() &&
         SharedEquals(row, layout_->key_offset, key.data(), key.size());
}

bool TableCore::RowExpired(const std::byte* row, int64_t now_ms) const {
  if (!layout_->has_expiry) return false;
  const int64_t expiry =
      static_cast<int64_t>(LoadField(row, layout_->expiry_offset, 8));
  return expiry != 0 && expiry <= now_ms;
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

absl::Status TableCore::ValidateCopy(const Row& row, CopyWhat what,
                                     int column) const {
  // The copy passed the seqlock check, so it is one consistent row; its
  // lengths still come from shared memory and are checked before any use.
  auto check_text = [&](int c) -> absl::Status {
    const ColumnSpec& spec = schema_.column(c);
    if (!spec.is_text()) return absl::OkStatus();
    const RowLayout::Column& lc = layout_->columns[c];
    const uint64_t len =
        LoadField(row.bytes_.data(), lc.len_offset, lc.len_bytes);
    if (len > spec.size) {
      return absl::DataLossError(absl::StrCat(
          "row \"", absl::CEscape(row.key_), "\": column \"", spec.name,
          "\" claims ", len, " bytes, more than its ", spec.size));
    }
    return absl::OkStatus();
  };
  if (what == CopyWhat::kRow) {
    for (int c = 0; c < schema_.column_count(); ++c) {
      SHMKIT_RETURN_IF_ERROR(check_text(c));
    }
  } else if (what == CopyWhat::kColumn) {
    SHMKIT_RETURN_IF_ERROR(check_text(column));
  }
  return absl::OkStatus();
}

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
    const RowLayout::Column& lc = layout_->columns[column];
    const ColumnSpec& spec = schema_.column(column);
    if (spec.is_text()) {
      SharedRead(shared_row, lc.len_offset, row->bytes_.data() + lc.len_offset,
                 lc.len_bytes);
      SharedRead(shared_row, lc.offset, row->bytes_.data() + lc.offset,
                 spec.size);
    } else {
      SharedRead(shared_row, lc.offset, row->bytes_.data() + lc.offset,
                 spec.size);
    }
    if (layout_->has_expiry) {
      SharedRead(shared_row, layout_->expiry_offset,
                 row->bytes_.data() + layout_->expiry_offset, 8);
    }
  }
  row->key_.assign(key.data(), key.size());
  FillExpiry(row);
  return absl::OkStatus();
}

absl::StatusOr<bool> TableCore::Read(absl::string_view key, CopyWhat what,
                                     int column, Row* row) const {
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  const uint32_t b = BucketOf(StableHash(key), bucket_count_);
  const Bucket& bk = bucket(b);
  if (row != nullptr && what != CopyWhat::kNothing) PrepareRow(row);
  const bool copy = row != nullptr && what != CopyWhat::kNothing;

  // One optimistic pass: nullopt when it must be retried.
  auto attempt_read = [&](int attempt) -> std::optional<absl::StatusOr<bool>> {
    const int64_t now_ms = layout_->has_expiry ? NowMs() : 0;
    const uint32_t s1 = Load(bk.seq, std::memory_order_acquire);
    if (s1 & 1) {
      Backoff(attempt);
      return std::nullopt;
    }
    uint32_t r = Load(bk.head, std::memory_order_relaxed);
    bool found = false, expired = false, broken = false;
    for (uint64_t steps = 0; r != 0; ++steps) {
      if (r > capacity_ || steps >= capacity_) {
        broken = true;  // racing a writer, or corrupt: the seq check decides
        break;
      }
      const std::byte* p = row_ptr(r - 1);
      if (RowKeyEquals(p, key)) {
        expired = RowExpired(p, now_ms);
        if (!expired && copy) (void)CopyOut(p, key, what, column, row);
        found = true;
        break;
      }
      r = static_cast<uint32_t>(LoadField(p, layout_->next_offset, 4));
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (Load(bk.seq, std::memory_order_relaxed) != s1 || broken) {
      // Changed under us, or consistent yet broken (let the locked path
      // repair it).
      Backoff(attempt);
      return std::nullopt;
    }
    if (!found || expired) return false;
    if (copy) {
      if (absl::Status st = ValidateCopy(*row, what, column); !st.ok())
        return st;
    }
    return true;
  };

  for (int attempt = 0; attempt < kOptimisticAttempts; ++attempt) {
    if (std::optional<absl::StatusOr<bool>> r = attempt_read(attempt))
      return *r;
  }
  if (read_only_) {
    // A read-only mapping cannot take the lock: keep trying optimistically
    // (sleeping in between) for up to lock_timeout.
    const absl::Time deadline = absl::Now() + lock_timeout_;
    while (absl::Now() < deadline) {
      absl::SleepFor(absl::Microseconds(200));
      if (std::optional<absl::StatusOr<bool>> r =
              attempt_read(kOptimisticAttempts)) {
        return *r;
      }
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
  const Found f = FindLocked(b, key, layout_->has_expiry ? NowMs() : 0);
  if (f.row < 0) return false;
  SHMKIT_RETURN_IF_ERROR(
      CopyOut(row_ptr(static_cast<uint32_t>(f.row)), key, what, column, row));
  if (copy) SHMKIT_RETURN_IF_ERROR(ValidateCopy(*row, what, column));
  return true;
}

TableCore::Found TableCore::FindLocked(uint32_t b, absl::string_view key,
                                       int64_t now_ms) const {
  Found f;
  int64_t prev = -1;
  uint32_t r = Load(bucket(b).head, std::memory_order_relaxed);
  for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
       ++steps) {
    const uint32_t idx = r - 1;
    const std::byte* p = row_ptr(idx);
    const bool expired = RowExpired(p, now_ms);
    if (RowKeyEquals(p, key)) {
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

void TableCore::BeginRecord(OwnerToken me, uint32_t b, UndoOp op, uint32_t r,
                            uint32_t image_offset, uint32_t image_len) const {
  SlotArea& a = area(me.slot);
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
}

void TableCore::EndRecord(OwnerToken me) const { registry_.Unpin(me.slot); }

void TableCore::SeqBegin(uint32_t b) const {
  uint32_t& seq = bucket(b).seq;
  Store(seq, Load(seq, std::memory_order_relaxed) + 1,
        std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void TableCore::SeqEnd(uint32_t b) const {
  uint32_t& seq = bucket(b).seq;
  Store(seq, Load(seq, std::memory_order_relaxed) + 1,
        std::memory_order_release);
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

void TableCore::FreeRow(OwnerToken me, uint32_t r) const {
  // Caller's record: op delete (or recovery's own), row r + 1, pinned; r is
  // out of every chain and its state is not 0. Any shard can take the row:
  // start at the home shard and go round until one is ours. Only if every
  // shard stays held by live (stopped) processes does this keep waiting;
  // giving up would lose the row.
  SlotArea& a = area(me.slot);
  for (uint32_t i = 0;; ++i) {
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
    return;
  }
}

absl::Status TableCore::InsertLocked(OwnerToken me, uint32_t b,
                                     absl::string_view key,
                                     absl::Span<const ResolvedField> fields,
                                     int64_t expiry_ms) const {
  BeginRecord(me, b, kUndoInsert, 0, 0, 0);
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
  StoreField(p, layout_->next_offset, 4,
             Load(bucket(b).head, std::memory_order_relaxed));
  StoreField(p, layout_->key_len_offset, layout_->key_len_bytes, key.size());
  SharedWrite(p, layout_->key_offset, key.data(), key.size());
  for (const ResolvedField& f : fields) EncodeField(p, f.column, *f.value);
  if (layout_->has_expiry && expiry_ms > 0) {
    StoreField(p, layout_->expiry_offset, 8, static_cast<uint64_t>(expiry_ms));
  }
  SharedWrite(row_ptr(r), 0, p, stride_);
  MaybeCrash(CrashPoint::kAllocatedBeforeLink);
  SeqBegin(b);
  Store(bucket(b).head, r + 1, std::memory_order_relaxed);
  MaybeCrash(CrashPoint::kLinkedBeforeSeqEven);
  SeqEnd(b);
  EndRecord(me);
  return absl::OkStatus();
}

void TableCore::RewriteRowLocked(OwnerToken me, uint32_t b, uint32_t r,
                                 absl::string_view key,
                                 absl::Span<const ResolvedField> fields,
                                 int64_t expiry_ms, bool whole_row) const {
  // Save the whole row (simple, and at most one row per write).
  BeginRecord(me, b, kUndoUpdate, r + 1, 0, stride_);
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
}

void TableCore::DeleteLocked(OwnerToken me, uint32_t b, uint32_t r,
                             int64_t prev) const {
  BeginRecord(me, b, kUndoDelete, r + 1, 0, 0);
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  const uint32_t next = RowNext(r);
  SeqBegin(b);
  if (prev < 0) {
    Store(bucket(b).head, next, std::memory_order_relaxed);
  } else {
    SetRowNext(static_cast<uint32_t>(prev), next);
  }
  SeqEnd(b);
  MaybeCrash(CrashPoint::kUnlinkedBeforeFree);
  FreeRow(me, r);
  EndRecord(me);
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
      RewriteRowLocked(me, b, static_cast<uint32_t>(f.row), key, fields, expiry,
                       /*whole_row=*/false);
      return absl::OkStatus();
    }
    if (mode == WriteMode::kUpdate) {
      return absl::NotFoundError(
          absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
    }
    if (f.expired >= 0) {
      // Reuse the expired row in place: it is already in this chain.
      RewriteRowLocked(me, b, static_cast<uint32_t>(f.expired), key, fields,
                       expiry < 0 ? 0 : expiry, /*whole_row=*/true);
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
    SHMKIT_RETURN_IF_ERROR(ValidateCopy(*removed, CopyWhat::kRow, -1));
  }
  DeleteLocked(me, b, r, f.prev);
  return absl::OkStatus();
}

absl::StatusOr<Value> TableCore::Increment(absl::string_view key, int column,
                                           const Value& delta,
                                           const IncrOptions& options) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  const ColumnSpec& spec = schema_.column(column);
  const RowLayout::Column& lc = layout_->columns[column];
  if (spec.is_text() || spec.is_integer() != delta.is_int()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot increment column \"", spec.name, "\" (", spec.TypeString(),
        ") by ", delta.DebugString(),
        spec.is_text()
            ? ""
            : (spec.is_integer() ? ": use Incr" : ": use IncrFloat")));
  }
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
    const int64_t now_ms = layout_->has_expiry ? NowMs() : 0;
    const Found f = FindLocked(b, key, now_ms);
    Value result;
    if (f.row < 0) {
      if (!options.create) {
        return absl::NotFoundError(
            absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
      }
      // Create with the column at `delta` (others zero).
      if (absl::Status st = CheckValueFits(spec, delta); !st.ok()) {
        return absl::OutOfRangeError(st.message());
      }
      const ResolvedField field{column, &delta};
      const int64_t expiry = ExpiryFor(options.ttl);
      absl::Status st;
      if (f.expired >= 0) {
        RewriteRowLocked(me, b, static_cast<uint32_t>(f.expired), key,
                         absl::MakeConstSpan(&field, 1),
                         expiry < 0 ? 0 : expiry,
                         /*whole_row=*/true);
        Ref(header_->expired_reclaimed).fetch_add(1, std::memory_order_relaxed);
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
      if (!st.ok()) return st;
      return delta;
    }
    const uint32_t r = static_cast<uint32_t>(f.row);
    std::byte* p = row_ptr(r);
    if (spec.is_integer()) {
      const int64_t now =
          SignExtend(LoadField(p, lc.offset, spec.size), spec.size);
      int64_t next;
      const Value next_value = [&] {
        return __builtin_add_overflow(now, delta.int_value(), &next)
                   ? Value(std::string())  // marks overflow
                   : Value(static_cast<long long>(next));
      }();
      if (!next_value.is_int() || !CheckValueFits(spec, next_value).ok()) {
        return absl::OutOfRangeError(absl::StrCat(
            "column \"", spec.name, "\" (", spec.TypeString(), "): ", now,
            " + ", delta.int_value(), " is out of range"));
      }
      result = next_value;
    } else {
      double now;
      if (spec.size == 8) {
        const uint64_t bits = LoadField(p, lc.offset, 8);
        std::memcpy(&now, &bits, 8);
      } else {
        const uint32_t bits = static_cast<uint32_t>(LoadField(p, lc.offset, 4));
        float f32;
        std::memcpy(&f32, &bits, 4);
        now = f32;
      }
      const double next =
          spec.size == 8 ? now + delta.float_value()
                         : static_cast<double>(
                               static_cast<float>(now + delta.float_value()));
      if (!std::isfinite(next)) {
        return absl::OutOfRangeError(
            absl::StrCat("column \"", spec.name, "\": ", now, " + ",
                         delta.float_value(), " is not finite"));
      }
      result = Value(next);
    }
    // Save and rewrite just this column.
    BeginRecord(me, b, kUndoUpdate, r + 1, lc.offset, spec.size);
    MaybeCrash(CrashPoint::kRecordedBeforeWrite);
    SeqBegin(b);
    EncodeField(p, column, result);
    MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
    SeqEnd(b);
    MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
    EndRecord(me);
    return result;
  }
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
  SHMKIT_RETURN_IF_ERROR(ValidateCopy(current, CopyWhat::kColumn, column));
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
  BeginRecord(me, b, kUndoUpdate, r + 1, image_offset,
              image_end - image_offset);
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
    if (Load(bucket(b).head, std::memory_order_relaxed) == 0) continue;
    SHMKIT_ASSIGN_OR_RETURN(Guard guard, LockBucket(b, me));
    for (uint64_t steps = 0; steps < capacity_; ++steps) {
      const uint32_t head = Load(bucket(b).head, std::memory_order_relaxed);
      if (head == 0 || head > capacity_) break;
      DeleteLocked(me, b, head - 1, -1);
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
    uint32_t r = Load(bucket(b).head, std::memory_order_relaxed);
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
    r = Load(bucket(b).head, std::memory_order_relaxed);
    for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
         ++steps) {
      const uint32_t idx = r - 1;
      const uint32_t next = RowNext(idx);
      if (RowExpired(row_ptr(idx), now_ms)) {
        DeleteLocked(me, b, idx, prev);
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
  const Bucket& bk = bucket(b);
  const size_t base = out->size();
  for (int attempt = 0; attempt < kOptimisticAttempts; ++attempt) {
    out->resize(base);
    const uint32_t s1 = Load(bk.seq, std::memory_order_acquire);
    if (s1 & 1) {
      Backoff(attempt);
      continue;
    }
    uint32_t r = Load(bk.head, std::memory_order_relaxed);
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
    if (Load(bk.seq, std::memory_order_relaxed) != s1) {
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
      row.key_.resize(klen);
      std::memcpy(row.key_.data(), p + layout_->key_offset, klen);
      if (RowExpired(p, now_ms)) continue;
      SHMKIT_RETURN_IF_ERROR(ValidateCopy(row, CopyWhat::kRow, -1));
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
  uint32_t r = Load(bk.head, std::memory_order_relaxed);
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
    SHMKIT_RETURN_IF_ERROR(ValidateCopy(row, CopyWhat::kRow, -1));
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
    uint32_t r = Load(bucket(b).head, std::memory_order_relaxed);
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
    uint32_t r = Load(bucket(b).head, std::memory_order_relaxed);
    while (r != 0 && r <= capacity_ && len < capacity_) {
      ++len;
      r = RowNext(r - 1);
    }
    ++in.chain_histogram[std::min<uint64_t>(len, kHistogram)];
    const uint64_t word = Load(bucket(b).lock, std::memory_order_relaxed);
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
  uint32_t cur = Load(bucket(b).head, std::memory_order_relaxed);
  for (uint64_t steps = 0; cur != 0 && cur <= capacity_ && steps < capacity_;
       ++steps) {
    if (cur == r + 1) return true;
    cur = RowNext(cur - 1);
  }
  return false;
}

void TableCore::RepairChain(uint32_t b) const {
  // Walk with a bound; cut at the first link that leaves the pool or loops.
  uint32_t head = Load(bucket(b).head, std::memory_order_relaxed);
  if (head > capacity_) {
    Store(bucket(b).head, 0u, std::memory_order_relaxed);
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
  Bucket& bk = bucket(b);
  const bool seq_odd = (Load(bk.seq, std::memory_order_relaxed) & 1) != 0;
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
          BeginRecord(me, b, kUndoDelete, row, 0, 0);
          FreeRow(me, row - 1);
          EndRecord(me);
        }
        break;
      case kUndoDelete:
        if (row_ok && !ChainContains(b, row - 1) && RowState(row - 1) != 0) {
          // Unlinked, not yet freed: finish the delete.
          BeginRecord(me, b, kUndoDelete, row, 0, 0);
          FreeRow(me, row - 1);
          EndRecord(me);
        }
        break;
      default:
        break;
    }
    a.op = kUndoNone;
  }
  if (Load(bk.seq, std::memory_order_relaxed) & 1) {
    Store(bk.seq, Load(bk.seq, std::memory_order_relaxed) + 1,
          std::memory_order_release);
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
        OwnerOfLockWord(Load(bucket(b).lock, std::memory_order_relaxed));
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
    if (Load(bucket(b).seq, std::memory_order_relaxed) & 1) {
      return absl::DataLossError(absl::StrCat("bucket ", b, " has an odd seq"));
    }
    uint32_t r = Load(bucket(b).head, std::memory_order_relaxed);
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
