// TableCore: the process-local handle behind shmkit::Table, and the design
// of the table's shared memory (the format itself is in layout.h).
//
// Index. A key's bucket is b = BucketOf(StableHash(key), B) with B =
// ceil(capacity / 2). Bucket b is block b: its lock word, its seqlock word
// (seq | head) and its two home rows, 2b and 2b + 1, side by side. A bucket's
// chain links rows by `next` (row index + 1). An insert takes a free home row
// of its own bucket when there is one and links it at the head; otherwise it
// takes a free row near the bucket (through the free hints) and links it
// right after the bucket's home rows. So the chain starts with the rows that
// live in the block, and a lookup of most keys touches one block: one
// dependent cache miss. Rows never move between buckets.
//
// Capacity. The pool is exactly `capacity` rows. A row is free (state
// kRowFree), in a chain (kRowLive), or in flight in one writer's insert or
// delete (state = that writer's registry slot + 1). Free rows are found
// through a hint bitmap (bit set: may be free) and its summary (bit set: hint
// word may be non-zero); the state decides, by CAS, who gets a row. An insert
// fails with ResourceExhausted only when no free row exists (after, once per
// millisecond at most, recovering crashed writers and sweeping expired rows).
// A table found full says so in TableHeader::no_free_rows until the next free,
// so further refusals skip the scan (the protocol is in core_alloc.cc), and
// while it says so an insert of an absent key is refused without the bucket
// lock: one optimistic pass finds the key absent with the flag read inside
// its seqlock window (RefuseWithoutLock; not for TTL tables, whose expired
// rows an insert may reuse, nor when a reclaim is due).
// Count() is the sum of the per-slot counters `live_delta` (rows claimed
// minus rows freed), so it includes rows in flight.
//
// Locks. Each bucket has an OwnerLock (ipc/owner_lock.h): every write to the
// bucket's chain or rows takes it; a thread holds at most one, so there is no
// deadlock and no lock covers the whole table. Free rows need no lock: a
// claim is one CAS of the row's state.
//
// Reads. A reader loads seq_head (acquire), walks the chain comparing keys
// and copies what it needs with relaxed atomic word loads (row_io.h), issues
// an acquire fence and loads seq_head again: equal and even means the copy
// is consistent. Readers write nothing. After kOptimisticAttempts failures (a
// writer hogging the bucket, or one that died with seq odd) a reader takes
// the bucket lock, which also recovers a dead writer. One loop does this for
// every kind of read (ReadBucket in core_read.cc).
//
// Writes, under the bucket lock. A change of one aligned word (an increment,
// a numeric column set or compare-and-set) is one store: a reader copying
// whole words sees the old or the new value, a crash leaves one of the two,
// so it needs neither the seqlock nor a record. (Incr's short path finds its
// row as a reader does, then takes the lock and keeps the row only if the
// bucket's seq_head word has not moved since: the lock is held for one load
// and one store. A key the same thread incremented before is found in its
// memo instead: the row's state and key read before the lock, the same
// word, as the key's lookup read it, checked under it: fast_incr.h.) Every
// other change follows one protocol (core_write.cc), in this order:
//   1. record what is about to happen in the writer's SlotArea (op, bucket,
//      row, the bytes about to change, live_delta) and pin the registry slot
//      (release store): "my record is live";
//   2. the change itself:
//        update: seq odd; rewrite the row; seq even;
//        insert: claim a row (record.row is written before the CAS, so the
//                state proves the claim), fill it while unreachable, seq odd,
//                link it with one store, seq even, state kRowLive;
//        delete: state = my slot + 1, seq odd, unlink with one store, seq
//                even, state kRowFree (seq_cst), hint bit set;
//   3. unpin ("retire"). A record is retired only once its effects are
//      complete, and before the bucket lock is released.
// While a record is live, the rows it names are untouchable by others: a row
// in flight is neither free nor linked, and the bucket's chain changes only
// under its lock, held by the writer or by whoever recovers it.
//
// Recovery (core_recovery.cc). Whoever takes over a bucket lock from a dead
// owner (OwnerLock tells exactly one waiter) recovers every live record of a
// dead writer that names that bucket, not only the lock owner's, so a
// recovery that was itself killed is finished by the next taker. Every step
// is decided from the shared state and is idempotent:
//   update: seq odd (the change may be half done): copy the image back; seq
//           even: keep the row (the change never started or is published).
//   insert: state == writer + 1 and linked: finish (kRowLive); not linked:
//           free it. Any other state: the claim never happened (or a previous
//           recoverer already freed the row).
//   delete: state == writer + 1 and still linked: the delete has not
//           happened (the unlink is its moment): back to kRowLive; unlinked:
//           free it. Any other state: linked means the delete never started;
//           unlinked means it is done.
// `live_delta` is set to delta_before plus the outcome (an assignment, so
// repeating it is harmless). Then seq is made even, the chain is checked
// (bounded walk; a link out of range is cut and counted) and the record is
// retired. The recoverer writes no record of its own: if it dies, the dead
// writer's record is still live and the next taker does it all again.
//
// A dead writer whose bucket nobody touches keeps its record until one of:
// a later lock of that bucket (writer or falling-back reader), an insert that
// finds the table full, Table::Recover() (`shmkit recover`), or a supervisor
// reaping the process (ProcessRegistry::MarkDeadInAllOpen).
//
// Everything read from the segment is untrusted: row and bucket indices are
// checked against the geometry, chain walks are bounded by capacity, lengths
// are checked against their column before use.
#ifndef SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_
#define SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
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
#include "shmkit/table/internal/fast_find.h"
#include "shmkit/table/internal/fast_incr.h"
#include "shmkit/table/internal/hash.h"
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

  // --- reads (core_read.cc) -------------------------------------------
  // What a read copies into the Row.
  enum class CopyWhat { kNothing, kRow, kColumn };
  // Finds `key`; when found (and not expired) copies what was asked into
  // `row` and returns true. Never writes shared memory unless the optimistic
  // attempts fail (then it locks the bucket, which may recover it).
  absl::StatusOr<bool> Read(absl::string_view key, CopyWhat what, int column,
                            Row* row) const;
  // Read(key, kRow, ...), kept short: the hot path of Get and Find.
  absl::StatusOr<bool> FindRow(absl::string_view key, Row* row) const;
  // GetColumn of a numeric column, kept as short as FindRow: the column's
  // word is read straight out of the row (no Row, no allocation) into
  // `value`. False when absent or expired.
  absl::StatusOr<bool> ReadNumber(absl::string_view key, int column,
                                  Value* value) const;
  // FindRow for many keys: hashes them all and prefetches their blocks
  // before looking any up. found[i] says whether rows[i] holds keys[i].
  absl::Status FindMany(absl::Span<const absl::string_view> keys,
                        absl::Span<Row> rows, absl::Span<bool> found) const;

  // --- writes (core_write.cc) -----------------------------------------
  absl::Status Write(absl::string_view key,
                     absl::Span<const ResolvedField> fields, WriteMode mode,
                     const SetOptions& options);
  absl::Status Delete(absl::string_view key, Row* removed);
  // Incr on an int or a float column; returns the new value. OutOfRange
  // when it would leave the column's width (or be infinite).
  absl::StatusOr<int64_t> IncrementInt(absl::string_view key, int column,
                                       int64_t delta,
                                       const IncrOptions& options);
  // Whether an IntColumn handle (index, offset, width) names an int column
  // of this table as it is: what IncrementIntAt needs before it trusts one.
  bool IsIntColumn(int index, uint32_t offset, uint32_t width) const {
    if (index < 0 || index >= schema_.column_count()) return false;
    const ColumnSpec& spec = schema_.column(index);
    return spec.is_integer() && spec.size == width &&
           layout_->columns[index].offset == offset;
  }
  // IncrementInt for an int column known to be `column`, at `offset` in the
  // row, `width` bytes wide (IsIntColumn).
  absl::StatusOr<int64_t> IncrementIntAt(absl::string_view key, int column,
                                         uint32_t offset, uint32_t width,
                                         int64_t delta,
                                         const IncrOptions& options);
  // IncrementIntAt's two halves (core_write.cc).
  bool IncrementShort(absl::string_view key, int column, uint32_t offset,
                      uint32_t width, int64_t delta, int64_t* result);
  absl::StatusOr<int64_t> IncrementIntSlow(absl::string_view key, int column,
                                           uint32_t offset, uint32_t width,
                                           int64_t delta,
                                           const IncrOptions& options);
  absl::StatusOr<double> IncrementFloat(absl::string_view key, int column,
                                        double delta,
                                        const IncrOptions& options);
  absl::StatusOr<bool> CompareAndSet(absl::string_view key, int column,
                                     const Value& expected,
                                     const Value& desired);
  absl::Status Clear();
  absl::StatusOr<uint64_t> Sweep();

  // --- whole-table views (core_views.cc) ------------------------------
  uint64_t Count() const;
  // Snapshots the rows of buckets [cursor, ...) into `out` until about
  // `max_rows` rows; returns the next cursor (0 at the end).
  absl::StatusOr<uint64_t> ScanBuckets(uint64_t cursor, size_t max_rows,
                                       std::vector<Row>* out) const;
  TableStats Stats() const;
  TableInspection Inspect() const;

  // --- recovery (core_recovery.cc) ------------------------------------
  absl::StatusOr<uint64_t> Recover();
  absl::Status CheckConsistency() const;

  void PrepareRow(Row* row) const;
  // What Table::Find inlines (fast_find.h): valid while this core lives.
  const FastFindView& fast_view() const { return fast_; }
  // What Table::Incr inlines (fast_incr.h): valid while this core lives.
  const FastIncrView& incr_view() const { return incr_; }

 private:
  TableCore(Segment segment, ProcessRegistry registry, Schema schema,
            absl::Duration lock_timeout, bool read_only);
  void Bind(const SegmentPlan& plan);

  // ---- geometry ------------------------------------------------------
  std::byte* block(uint32_t b) const {
    return blocks_ + static_cast<size_t>(b) * block_stride_;
  }
  // Starts loading every cache line of block `b` (lock, seq_head, home
  // rows) at once (PrefetchLines). Writers call it before the lock's CAS: a
  // locked instruction lets no later load start before it completes, so
  // without it the rows' lines would be fetched only after the lock's.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PrefetchBlock(uint32_t b,
                                                  bool for_write) const {
    if (for_write) {
      PrefetchLines</*kForWrite=*/true>(block(b), prefetch_lines_);
    } else {
      PrefetchLines</*kForWrite=*/false>(block(b), prefetch_lines_);
    }
  }
  uint64_t* lock_word(uint32_t b) const {
    return reinterpret_cast<uint64_t*>(block(b) + kBlockLockOffset);
  }
  uint64_t& seq_head(uint32_t b) const {
    return *reinterpret_cast<uint64_t*>(block(b) + kBlockSeqHeadOffset);
  }
  std::byte* row_ptr(uint32_t r) const {
    return block(r / kRowsPerBlock) + kBlockHeaderBytes +
           static_cast<size_t>(r % kRowsPerBlock) * stride_;
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE uint32_t
  BucketOfKey(absl::string_view key) const {
    return BucketOf(StableHash(key), bucket_count_);
  }
  bool IsHomeRow(uint32_t b, uint32_t r) const {
    return r / kRowsPerBlock == b;
  }
  uint32_t BucketHead(uint32_t b) const {
    return HeadOf(Load(seq_head(b), std::memory_order_relaxed));
  }
  // Lock holder only.
  void SetBucketHead(uint32_t b, uint32_t head) const {
    const uint64_t w = Load(seq_head(b), std::memory_order_relaxed);
    Store(seq_head(b), SeqHeadWord(SeqOf(w), head), std::memory_order_relaxed);
  }
  void SeqBegin(uint32_t b) const;
  void SeqEnd(uint32_t b) const;
  SlotArea& area(uint32_t slot) const {
    return *reinterpret_cast<SlotArea*>(areas_ + slot * area_stride_);
  }
  std::byte* area_image(uint32_t slot) const {
    return areas_ + slot * area_stride_ + sizeof(SlotArea);
  }

  // ---- row fields ----------------------------------------------------
  uint32_t RowNext(uint32_t r) const {
    return static_cast<uint32_t>(LoadField(row_ptr(r), next_offset_, 4));
  }
  void SetRowNext(uint32_t r, uint32_t next_plus_one) const {
    StoreField(row_ptr(r), next_offset_, 4, next_plus_one);
  }
  uint32_t RowState(uint32_t r) const {
    return static_cast<uint32_t>(LoadField(row_ptr(r), state_offset_, 2));
  }
  void SetRowState(uint32_t r, uint32_t state) const {
    StoreField(row_ptr(r), state_offset_, 2, state);
  }
  // SetRowState(r, kRowLive) with a release store: a reader that loads the
  // state with acquire and sees the row live also sees the key it was made
  // live with (Incr's memo, fast_incr.h, reads a row outside its bucket's
  // seqlock that way). Lock holder only.
  void PublishRowLive(uint32_t r) const {
    std::byte* p = row_ptr(r);
    const uint32_t word_start = state_offset_ & ~uint32_t{7};
    const uint32_t shift = (state_offset_ - word_start) * 8;
    uint64_t& word = *reinterpret_cast<uint64_t*>(p + word_start);
    const uint64_t w = Load(word, std::memory_order_relaxed);
    Store(word,
          (w & ~(FieldMask(2) << shift)) | (uint64_t{kRowLive} << shift),
          std::memory_order_release);
  }
  // The one key comparison (racy outside the lock: confirm with the
  // seqlock). Key bytes start on a word in every layout the planner makes
  // today: KeyWordsEqual (fast_find.h); otherwise byte by byte.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool KeyEquals(const std::byte* row,
                                              absl::string_view key) const {
    if (ABSL_PREDICT_FALSE(!key_words_aligned_)) {
      return KeyLengthIs(row, key.size(), key_len_word_, key_len_shift_,
                         key_len_mask_) &&
             SharedEquals(row, key_offset_, key.data(), key.size());
    }
    return KeyWordsEqual(row, key, key_offset_, key_len_word_, key_len_shift_,
                         key_len_mask_);
  }
  // The row holding `key` in the chain that starts at `head` (row + 1), as
  // the chain is now: racy outside the bucket lock (confirm with the
  // seqlock). nullptr when absent; *bad when a link is out of range or the
  // walk runs longer than the table (then nothing it found counts).
  ABSL_ATTRIBUTE_ALWAYS_INLINE const std::byte* WalkChain(uint32_t head,
                                                          absl::string_view key,
                                                          bool* bad) const {
    uint32_t r = head;
    for (uint64_t steps = 0; r != 0; ++steps) {
      if (ABSL_PREDICT_FALSE(r > capacity_ || steps >= capacity_)) {
        *bad = true;
        return nullptr;
      }
      const std::byte* p = row_ptr(r - 1);
      if (KeyEquals(p, key)) return p;
      r = static_cast<uint32_t>(LoadField(p, next_offset_, 4));
    }
    return nullptr;
  }
  bool RowExpired(const std::byte* row, int64_t now_ms) const {
    if (!has_expiry_) return false;
    const int64_t expiry =
        static_cast<int64_t>(LoadField(row, expiry_offset_, 8));
    return expiry != 0 && expiry <= now_ms;
  }
  absl::Status CheckKey(absl::string_view key) const;
  absl::Status CheckWritable() const;

  // ---- reads (core_read.cc) ------------------------------------------
  // FindRow once the key is checked and its bucket known (and prefetched).
  absl::StatusOr<bool> FindInBucket(uint32_t b, absl::string_view key,
                                    Row* row) const;
  // Everything FastFindInBucket leaves undecided: the whole read loop.
  absl::StatusOr<bool> FindInBucketSlow(uint32_t b, absl::string_view key,
                                        Row* row) const;
  enum class Visit { kNext, kStop };
  // The read loop: calls restart() then visit(row pointer, row index) for
  // each row of bucket b's chain until visit says kStop, and returns once a
  // pass was consistent (seqlock), or after kOptimisticAttempts passes from
  // under the bucket lock. Errors: the fallback's (DeadlineExceeded,
  // FailedPrecondition for a read-only handle facing a dead writer).
  template <typename Restart, typename VisitFn>
  absl::Status ReadBucket(uint32_t b, Restart&& restart, VisitFn&& visit) const;
  // One pass of it: true when the pass was consistent (seq even and
  // unchanged, every link in range).
  template <typename Restart, typename VisitFn>
  bool OptimisticPass(uint32_t b, Restart&& restart, VisitFn&& visit) const;
  // ReadBucket's slow path: the same walk, under the lock (or, read-only,
  // optimistic retries until lock_timeout).
  absl::Status ReadBucketLocked(
      uint32_t b, absl::FunctionRef<void()> restart,
      absl::FunctionRef<Visit(const std::byte*, uint32_t)> visit) const;
  // Copies column `column` (and the expiry) of a shared row into `row`.
  void CopyColumn(const std::byte* p, int column, Row* row) const;
  // After a consistent copy: checks lengths, sets the key and expiry.
  absl::Status FinishRow(absl::string_view key, CopyWhat what, int column,
                         Row* row) const;
  // DataLoss when a copied text length exceeds its column.
  absl::Status CheckTextLengths(const Row& row, CopyWhat what,
                                int column) const;
  // Sets row->expires_at_ from the expiry in its copied bytes.
  void FillExpiry(Row* row) const;
  // Reads bucket b's live rows consistently, appended to `out`.
  absl::Status SnapshotBucket(uint32_t b, int64_t now_ms,
                              std::vector<Row>* out) const;

  // ---- locks ---------------------------------------------------------
  // Takes bucket b's lock; a takeover from a dead owner recovers the bucket
  // before returning.
  absl::StatusOr<OwnerLockGuard> LockBucket(uint32_t b, OwnerToken me) const;

  // ---- the write protocol (core_write.cc) ----------------------------
  // Writes the record and pins the slot (step 1).
  void BeginRecord(OwnerToken me, RecordOp op, uint32_t b,
                   uint32_t row_plus_one, uint32_t image_offset,
                   uint32_t image_len) const;
  void RetireRecord(OwnerToken me) const { registry_.Unpin(me.slot); }
  // Finds `key` in bucket b's chain under the lock: the row, its
  // predecessor (or -1) and an expired row (for reuse), each or -1.
  struct Found {
    int64_t row = -1;
    int64_t prev = -1;
    int64_t expired = -1;
  };
  Found FindLocked(uint32_t b, absl::string_view key, int64_t now_ms) const;
  // The in-place write step: record (image of [image_offset, +image_len)),
  // seq odd, change(row), seq even, retire.
  template <typename Change>
  void RewriteInPlace(OwnerToken me, uint32_t b, uint32_t r,
                      uint32_t image_offset, uint32_t image_len,
                      Change&& change) const;
  // One aligned word of row r changed with one store (see the essay).
  void StoreOneField(uint32_t r, uint32_t offset, uint32_t bytes,
                     uint64_t value) const;
  // Rewrites `fields` (and the expiry, when expiry_ms >= 0) of row r, which
  // holds `key`; whole_row: the row is reused for `key` (an expired row).
  void UpdateRowLocked(OwnerToken me, uint32_t b, uint32_t r,
                       absl::string_view key,
                       absl::Span<const ResolvedField> fields,
                       int64_t expiry_ms, bool whole_row) const;
  absl::Status InsertLocked(OwnerToken me, uint32_t b, absl::string_view key,
                            absl::Span<const ResolvedField> fields,
                            int64_t expiry_ms) const;
  // An absent key's new row: the expired row `f` found reused in place, or
  // a row claimed and linked (expiry -1: none given).
  absl::Status InsertNewLocked(OwnerToken me, uint32_t b, absl::string_view key,
                               absl::Span<const ResolvedField> fields,
                               int64_t expiry, const Found& f) const;
  // After an insert: when `st` says the table is full and this is the
  // call's first attempt and a reclaim is due, unlocks, gives back what
  // crashed writers and expired rows hold, and returns true (try again);
  // otherwise counts a refusal (if any) and returns false.
  bool RetryWhenFull(const absl::Status& st, int attempt, OwnerLockGuard& guard,
                     OwnerToken me);
  void DeleteLocked(OwnerToken me, uint32_t b, uint32_t r, int64_t prev) const;
  // Insert or increment: finds the row and calls `existing(r)` under the
  // lock, or creates it with the column at `initial`.
  template <typename Existing>
  absl::Status IncrementRow(absl::string_view key, int column,
                            absl::FunctionRef<Value()> initial,
                            const IncrOptions& options, Existing&& existing);
  void EncodeField(std::byte* row, int column, const Value& value) const;
  // Whether the table may reclaim now (at most once per millisecond over
  // all processes): what an insert that finds the table full asks.
  bool ReclaimDue() const;
  // True when `key` may be refused without the bucket lock: the table is
  // flagged full, has no TTL, no reclaim is due, and one consistent pass
  // of bucket b's chain saw the key absent while the flag was set. Counts
  // the refusal. False leaves the decision to the locked path.
  bool RefuseWithoutLock(uint32_t b, absl::string_view key) const;

  // ---- free rows (core_alloc.cc) -------------------------------------
  // Claims a free row for bucket b (home rows first, then near them): sets
  // record.row, CASes the state to me.slot + 1, counts it in live_delta.
  // ResourceExhausted when no row is free.
  absl::StatusOr<uint32_t> ClaimRow(OwnerToken me, uint32_t b) const;
  bool TryClaim(OwnerToken me, uint32_t r) const;
  // Marks row r free (state kRowFree, seq_cst) / publishes its hint.
  void FreeRowState(uint32_t r) const;
  // The state, read seq_cst (the hint protocol's re-check).
  uint32_t RowStateSeqCst(uint32_t r) const;
  void SetFreeHint(uint32_t r) const;
  void ClearFreeHint(uint32_t r) const;
  // Rebuilds the hints from the row states (Recover()).
  void RebuildHints() const;

  // ---- recovery (core_recovery.cc) -----------------------------------
  // Under bucket b's lock: finishes every dead writer's live record naming
  // b, makes seq even and checks the chain.
  void RecoverBucket(uint32_t b, OwnerToken me) const;
  void RecoverRecord(uint32_t slot, uint32_t b) const;
  // Locks the bucket of every dead writer whose record is still live and
  // recovers it. Returns how many records were recovered.
  uint64_t RecoverCrashedWriters(OwnerToken me) const;
  bool ChainContains(uint32_t b, uint32_t r, int64_t* prev) const;
  void RepairChain(uint32_t b) const;
  // Whether `slot` holds the live record of a dead writer.
  bool DeadRecord(uint32_t slot, OwnerToken* owner) const;

  Segment segment_;
  // Mutable: claiming this thread's slot on first use changes only
  // process-local caches and the slot itself.
  mutable ProcessRegistry registry_;
  Schema schema_;
  std::shared_ptr<const RowLayout> layout_;
  absl::Duration lock_timeout_;
  bool read_only_;
  // Never given to another TableCore of this process: what Incr's memo
  // (fast_incr.h) knows this one by (an address can be reused, this
  // cannot).
  const uint64_t id_;

  // Bound from the validated plan (never re-read from shared memory).
  TableHeader* header_ = nullptr;
  std::byte* blocks_ = nullptr;
  uint64_t* hints_ = nullptr;
  uint64_t* summary_ = nullptr;
  uint64_t capacity_ = 0;
  // ClaimRow's answer when no row is free, made once by Bind.
  absl::Status full_;
  uint32_t bucket_count_ = 0;
  uint32_t block_stride_ = 0;
  // Cache lines PrefetchBlock loads: those of the block's first 256 bytes.
  uint32_t prefetch_lines_ = 1;
  uint32_t hint_words_ = 0;
  uint32_t summary_words_ = 0;
  uint32_t stride_ = 0;
  uint32_t stride_words_ = 0;
  std::byte* areas_ = nullptr;  // the registry's per-slot areas
  size_t area_stride_ = 0;
  // Hot layout facts, copied out of layout_ for the fast paths.
  uint32_t max_key_bytes_ = 0;
  uint32_t key_offset_ = 0;
  uint32_t key_len_offset_ = 0;
  uint32_t key_len_bytes_ = 0;
  uint32_t key_len_word_ = 0;   // the key length's 8-byte word
  uint32_t key_len_shift_ = 0;  // its bit position in that word
  uint64_t key_len_mask_ = 0;
  bool key_words_aligned_ = false;  // key bytes start on a word
  // The fast path (fast_find.h) applies: key words aligned, no TTL.
  bool fast_hits_ = false;
  uint32_t next_offset_ = 0;
  uint32_t state_offset_ = 0;
  uint32_t expiry_offset_ = 0;
  bool has_expiry_ = false;
  struct TextColumn {
    int column;
    uint32_t len_offset;
    uint32_t len_bytes;
    uint32_t max;
  };
  std::vector<TextColumn> text_columns_;
  // The common lookup's geometry (fast_find.h); Table holds a copy.
  FastFindView fast_;
  // What Incr's memo needs (fast_incr.h); Table holds a copy.
  FastIncrView incr_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_TABLE_CORE_H_
