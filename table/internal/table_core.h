// TableCore: the process-local handle behind shmkit::Table. See the design
// block at the top of table_core.cc.
#ifndef SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_
#define SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/owner_lock.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/internal/row_io.h"
#include "shmkit/table/row.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"

namespace shmkit::internal {

// A write's column, resolved and checked before any lock is taken.
struct ResolvedField {
  int column;
  const Value* value;
};

enum class WriteMode { kSet, kAdd, kUpdate };

class TableCore {
 public:
  static absl::StatusOr<std::unique_ptr<TableCore>> Create(
      const Schema& schema, const TableOptions& options);
  static absl::StatusOr<std::unique_ptr<TableCore>> Open(
      Segment segment, const TableAttachOptions& options);

  const Schema& schema() const { return schema_; }
  Segment& segment() { return segment_; }
  const Segment& segment() const { return segment_; }

  // What a read copies into the Row.
  enum class CopyWhat { kNothing, kRow, kColumn };
  // Finds `key`; when found (and not expired) copies what was asked into
  // `row` and returns true. Never writes shared memory unless the optimistic
  // attempts fail (then it locks the bucket, which may recover it).
  absl::StatusOr<bool> Read(absl::string_view key, CopyWhat what, int column,
                            Row* row) const;

  // The hot path of Table::Get / Table::Find: the whole row into `row`.
  // Returns false when absent (no Status allocated for a miss).
  absl::StatusOr<bool> FindRow(absl::string_view key, Row* row) const;

  absl::Status Write(absl::string_view key,
                     absl::Span<const ResolvedField> fields, WriteMode mode,
                     const SetOptions& options);
  absl::Status Delete(absl::string_view key, Row* removed);
  // Incr on an int or a float column; returns the new value. OutOfRange
  // when it would leave the column's width (or be infinite).
  absl::StatusOr<int64_t> IncrementInt(absl::string_view key, int column,
                                       int64_t delta,
                                       const IncrOptions& options);
  // The common case of IncrementInt, straight-line: an existing row, an
  // uncontended bucket, a result in range, nothing pending. nullopt means
  // "take the general path" (nothing was changed).
  std::optional<int64_t> TryFastIncrement(absl::string_view key, int column,
                                          int64_t delta);
  absl::StatusOr<double> IncrementFloat(absl::string_view key, int column,
                                        double delta,
                                        const IncrOptions& options);
  absl::StatusOr<bool> CompareAndSet(absl::string_view key, int column,
                                     const Value& expected,
                                     const Value& desired);

  absl::Status Clear();
  absl::StatusOr<uint64_t> Sweep();
  uint64_t Count() const;
  // Snapshots the rows of buckets [cursor, ...) into `out` until about
  // `max_rows` rows; returns the next cursor (0 at the end).
  absl::StatusOr<uint64_t> ScanBuckets(uint64_t cursor, size_t max_rows,
                                       std::vector<Row>* out) const;
  TableStats Stats() const;
  TableInspection Inspect() const;
  absl::StatusOr<uint64_t> Recover();
  absl::Status CheckConsistency() const;

  void PrepareRow(Row* row) const;

 private:
  TableCore(Segment segment, ProcessRegistry registry, Schema schema,
            absl::Duration lock_timeout, bool read_only);
  void Bind(const SegmentPlan& plan);
  // Recovers every dead writer whose record is still pinned (what an insert
  // into a full table does before giving up: their rows come back).
  void RecoverCrashedWriters(OwnerToken me) const;

  // Geometry accessors.
  // Bucket b's reader word (seq | head) and its lock word.
  uint64_t& bucket_word(uint32_t b) const { return bucket_words_[b]; }
  uint64_t* bucket_lock(uint32_t b) const { return &bucket_locks_[b]; }
  uint32_t BucketHead(uint32_t b) const {
    return HeadOf(Load(bucket_words_[b], std::memory_order_relaxed));
  }
  // Lock holder only.
  void SetBucketHead(uint32_t b, uint32_t head) const {
    const uint64_t w = Load(bucket_words_[b], std::memory_order_relaxed);
    Store(bucket_words_[b], BucketWord(SeqOf(w), head),
          std::memory_order_relaxed);
  }
  FreeShard& shard(uint32_t s) const { return shards_[s]; }
  std::byte* row_ptr(uint32_t r) const {
    return rows_ + static_cast<size_t>(r) * stride_;
  }
  SlotArea& area(uint32_t slot) const;
  std::byte* area_image(uint32_t slot) const;

  // Row fields.
  uint32_t RowNext(uint32_t r) const;
  void SetRowNext(uint32_t r, uint32_t next_plus_one) const;
  uint32_t RowState(uint32_t r) const;
  void SetRowState(uint32_t r, uint32_t state) const;
  bool RowKeyEquals(const std::byte* row, absl::string_view key) const {
    return LoadField(row, key_len_offset_, key_len_bytes_) == key.size() &&
           SharedEquals(row, key_offset_, key.data(), key.size());
  }
  bool RowExpired(const std::byte* row, int64_t now_ms) const {
    if (!has_expiry_) return false;
    const int64_t expiry =
        static_cast<int64_t>(LoadField(row, expiry_offset_, 8));
    return expiry != 0 && expiry <= now_ms;
  }

  absl::Status CheckKey(absl::string_view key) const;
  absl::Status CheckWritable() const;

  // Locks (RAII) and recovery.
  class Guard;
  absl::StatusOr<Guard> LockWord(uint64_t* word, absl::string_view what,
                                 uint32_t index, OwnerToken me,
                                 LockResult* result) const;
  absl::StatusOr<Guard> LockBucket(uint32_t b, OwnerToken me) const;
  absl::StatusOr<Guard> LockShard(uint32_t s, OwnerToken me) const;
  void RecoverBucket(uint32_t b, OwnerToken dead, OwnerToken me) const;
  void RecoverShard(uint32_t s, OwnerToken dead) const;
  bool RecordValid(OwnerToken dead) const;
  void RepairChain(uint32_t b) const;
  bool ChainContains(uint32_t b, uint32_t r) const;

  // Write steps (the caller holds the bucket lock).
  // Writes the undo record and pins the slot. First settles a row our last
  // delete could not free (DeadlineExceeded if it still cannot).
  absl::Status BeginRecord(OwnerToken me, uint32_t b, UndoOp op, uint32_t r,
                           uint32_t image_offset, uint32_t image_len) const;
  void EndRecord(OwnerToken me) const;
  void SeqBegin(uint32_t b) const;
  void SeqEnd(uint32_t b) const;
  // Finds `key` in bucket b's chain under the lock: the row, its
  // predecessor (or -1) and an expired row (for reuse), each or -1.
  struct Found {
    int64_t row = -1;
    int64_t prev = -1;
    int64_t expired = -1;
    int64_t expired_prev = -1;
  };
  Found FindLocked(uint32_t b, absl::string_view key, int64_t now_ms) const;
  absl::StatusOr<uint32_t> AllocateRow(OwnerToken me) const;
  bool FreeRow(OwnerToken me, uint32_t r) const;
  absl::Status InsertLocked(OwnerToken me, uint32_t b, absl::string_view key,
                            absl::Span<const ResolvedField> fields,
                            int64_t expiry_ms) const;
  absl::Status RewriteRowLocked(OwnerToken me, uint32_t b, uint32_t r,
                                absl::string_view key,
                                absl::Span<const ResolvedField> fields,
                                int64_t expiry_ms, bool whole_row) const;
  template <typename Compute>
  absl::Status RewriteColumnLocked(OwnerToken me, uint32_t b, uint32_t r,
                                   int column, Compute&& next_bits) const;
  template <typename Compute>
  absl::Status IncrementRow(absl::string_view key, int column,
                            absl::FunctionRef<Value()> make_initial,
                            const IncrOptions& options, Compute&& next_bits);
  absl::Status DeleteLocked(OwnerToken me, uint32_t b, uint32_t r,
                            int64_t prev) const;
  void EncodeField(std::byte* row, int column, const Value& value) const;

  // Copies a locked or validated row into `row`.
  absl::Status CopyOut(const std::byte* shared_row, absl::string_view key,
                       CopyWhat what, int column, Row* row) const;
  // DataLoss when a copied text length exceeds its column.
  absl::Status CheckTextLengths(const Row& row, CopyWhat what,
                                int column) const;
  enum class Probe { kFound, kAbsent, kBroken };
  // Walks the chain from `head` for `key` without locking, copying what was
  // asked into `row` on a match. kBroken: a link out of range (a racing
  // writer, or corruption): the caller retries.
  Probe ProbeChain(uint32_t head, absl::string_view key, int64_t now_ms,
                   CopyWhat what, int column, Row* row) const;
  void CopyColumn(const std::byte* p, int column, Row* row) const;
  void FinishRow(absl::string_view key, CopyWhat what, Row* row) const;
  // Sets row->expires_at_ from the expiry in its copied bytes.
  void FillExpiry(Row* row) const;
  // Reads bucket b's rows consistently into `out`.
  absl::Status SnapshotBucket(uint32_t b, int64_t now_ms,
                              std::vector<Row>* out) const;

  Segment segment_;
  // Mutable: claiming this thread's slot on first use changes only
  // process-local caches and the slot itself.
  mutable ProcessRegistry registry_;
  Schema schema_;
  std::shared_ptr<const RowLayout> layout_;
  absl::Duration lock_timeout_;
  bool read_only_;

  // Bound from the segment (validated in Bind()).
  TableHeader* header_ = nullptr;
  uint64_t* bucket_words_ = nullptr;
  uint64_t* bucket_locks_ = nullptr;
  FreeShard* shards_ = nullptr;
  std::byte* rows_ = nullptr;
  uint64_t capacity_ = 0;
  uint32_t bucket_count_ = 0;
  uint32_t shard_count_ = 0;
  uint32_t stride_ = 0;
  uint32_t stride_words_ = 0;
  std::byte* areas_ = nullptr;  // the registry's per-slot areas
  size_t area_stride_ = 0;
  // Hot layout facts, copied out of layout_ for the fast paths.
  uint32_t max_key_bytes_ = 0;
  uint32_t key_offset_ = 0;
  uint32_t key_len_offset_ = 0;
  uint32_t key_len_bytes_ = 0;
  uint32_t next_offset_ = 0;
  uint32_t expiry_offset_ = 0;
  bool has_expiry_ = false;
  struct TextColumn {
    int column;
    uint32_t len_offset;
    uint32_t len_bytes;
    uint32_t max;
  };
  std::vector<TextColumn> text_columns_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_
