// TableCore writes: the bucket lock, the one write protocol (record, change,
// retire; see table_core.h) and the operations built on it.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/base/optimization.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/fast_incr.h"
#include "shmkit/table/internal/table_core.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::internal {
namespace {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// Expiry (CLOCK_BOOTTIME ms) for a TTL; -1 when none was given.
int64_t ExpiryFor(const std::optional<absl::Duration>& ttl) {
  if (!ttl.has_value()) return -1;
  return NowMs() + std::max<int64_t>(1, absl::ToInt64Milliseconds(*ttl));
}

absl::Status KeyNotFound(absl::string_view key) {
  return absl::NotFoundError(
      absl::StrCat("key \"", absl::CEscape(key), "\" not found"));
}

// The stored bits of a numeric value in `spec` (checked by CheckValueFits).
uint64_t NumericBits(const ColumnSpec& spec, const Value& value) {
  if (spec.is_integer()) return static_cast<uint64_t>(value.int_value());
  const double d = value.is_float() ? value.float_value()
                                    : static_cast<double>(value.int_value());
  if (spec.size == 8) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    return bits;
  }
  const float f = static_cast<float>(d);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

thread_local std::vector<std::byte> tls_row_buffer;

}  // namespace

// ---------------------------------------------------------------------------
// The bucket lock

absl::StatusOr<OwnerLockGuard> TableCore::LockBucket(uint32_t b,
                                                     OwnerToken me) const {
  OwnerLock lock(lock_word(b), &registry_);
  // Uncontended: one CAS, nothing else.
  if (ABSL_PREDICT_TRUE(lock.TryLock(me))) {
    return OwnerLockGuard::Adopt(lock, me);
  }
  absl::StatusOr<OwnerLockGuard> guard =
      OwnerLockGuard::Acquire(lock, me, lock_timeout_);
  // Counted whether the wait ended in the lock or in DeadlineExceeded.
  Ref(header_->lock_waits).fetch_add(1, std::memory_order_relaxed);
  if (!guard.ok()) {
    return absl::Status(
        guard.status().code(),
        absl::StrCat("bucket ", b, ": ", guard.status().message()));
  }
  if (guard->result().took_over) RecoverBucket(b, me);
  return guard;
}

// ---------------------------------------------------------------------------
// The write protocol

void TableCore::SeqBegin(uint32_t b) const {
  uint64_t& word = seq_head(b);
  const uint64_t w = Load(word, std::memory_order_relaxed);
  Store(word, SeqHeadWord(SeqOf(w) + 1, HeadOf(w)), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void TableCore::SeqEnd(uint32_t b) const {
  uint64_t& word = seq_head(b);
  const uint64_t w = Load(word, std::memory_order_relaxed);
  Store(word, SeqHeadWord(SeqOf(w) + 1, HeadOf(w)), std::memory_order_release);
}

void TableCore::BeginRecord(OwnerToken me, RecordOp op, uint32_t b,
                            uint32_t row_plus_one, uint32_t image_offset,
                            uint32_t image_len) const {
  SlotArea& a = area(me.slot);
  // Fields that recoverers and tools read go through atomic_ref; the image
  // is read only once the writer is dead.
  Store(a.token, LockWordOf(me), std::memory_order_relaxed);
  Store(a.op, static_cast<uint32_t>(op), std::memory_order_relaxed);
  Store(a.bucket, b, std::memory_order_relaxed);
  Store(a.row, row_plus_one, std::memory_order_relaxed);
  Store(a.image_offset, image_offset, std::memory_order_relaxed);
  Store(a.image_len, image_len, std::memory_order_relaxed);
  Store(a.delta_before, Load(a.live_delta, std::memory_order_relaxed),
        std::memory_order_relaxed);
  if (image_len > 0) {
    SharedRead(row_ptr(row_plus_one - 1), image_offset,
               area_image(me.slot) + image_offset, image_len);
  }
  registry_.Pin(me.slot);  // release: the record is complete before this
}

template <typename Change>
void TableCore::RewriteInPlace(OwnerToken me, uint32_t b, uint32_t r,
                               uint32_t image_offset, uint32_t image_len,
                               Change&& change) const {
  BeginRecord(me, kRecordUpdate, b, r + 1, image_offset, image_len);
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  SeqBegin(b);
  change(row_ptr(r));
  MaybeCrash(CrashPoint::kWrittenBeforeSeqEven);
  SeqEnd(b);
  MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
  RetireRecord(me);
}

void TableCore::StoreOneField(uint32_t r, uint32_t offset, uint32_t bytes,
                              uint64_t value) const {
  // One aligned word changes with one store: readers copying whole words see
  // the old or the new value, and a crash leaves one of the two.
  StoreField(row_ptr(r), offset, bytes, value);
  MaybeCrash(CrashPoint::kAfterSingleStore);
}

TableCore::Found TableCore::FindLocked(uint32_t b, absl::string_view key,
                                       int64_t now_ms) const {
  Found f;
  int64_t prev = -1;
  uint32_t r = BucketHead(b);
  for (uint64_t steps = 0; r != 0 && r <= capacity_ && steps < capacity_;
       ++steps) {
    const uint32_t idx = r - 1;
    const std::byte* p = row_ptr(idx);
    if (KeyEquals(p, key)) {
      if (RowExpired(p, now_ms)) {
        f.expired = idx;
      } else {
        f.row = idx;
        f.prev = prev;
      }
      return f;
    }
    if (f.expired < 0 && RowExpired(p, now_ms)) f.expired = idx;
    prev = idx;
    r = RowNext(idx);
  }
  return f;
}

void TableCore::EncodeField(std::byte* row, int column,
                            const Value& value) const {
  const ColumnSpec& spec = schema_.column(column);
  const RowLayout::Column& lc = layout_->columns[column];
  if (!spec.is_text()) {
    StoreField(row, lc.offset, spec.size, NumericBits(spec, value));
    return;
  }
  const absl::string_view s = value.string_value();
  StoreField(row, lc.len_offset, lc.len_bytes, s.size());
  SharedWrite(row, lc.offset, s.data(), s.size());
}

void TableCore::UpdateRowLocked(OwnerToken me, uint32_t b, uint32_t r,
                                absl::string_view key,
                                absl::Span<const ResolvedField> fields,
                                int64_t expiry_ms, bool whole_row) const {
  if (!whole_row && expiry_ms < 0 && fields.size() == 1 &&
      !schema_.column(fields[0].column).is_text()) {
    const ColumnSpec& spec = schema_.column(fields[0].column);
    StoreOneField(r, layout_->columns[fields[0].column].offset, spec.size,
                  NumericBits(spec, *fields[0].value));
    return;
  }
  // The image covers exactly what changes.
  uint32_t lo = stride_, hi = 0;
  auto cover = [&](uint32_t offset, uint32_t bytes) {
    lo = std::min(lo, offset);
    hi = std::max(hi, offset + bytes);
  };
  if (whole_row) {
    cover(0, stride_);
  } else {
    for (const ResolvedField& f : fields) {
      const ColumnSpec& spec = schema_.column(f.column);
      const RowLayout::Column& lc = layout_->columns[f.column];
      cover(lc.offset, spec.size);
      if (spec.is_text()) cover(lc.len_offset, lc.len_bytes);
    }
    if (has_expiry_ && expiry_ms >= 0) cover(expiry_offset_, 8);
  }
  if (hi <= lo) return;  // nothing to change
  RewriteInPlace(me, b, r, lo, hi - lo, [&](std::byte* p) {
    if (whole_row) {
      // Reusing an expired row for a new key: clear all but next and state.
      const uint32_t next = RowNext(r);
      const uint32_t state = RowState(r);
      SharedZero(p, 0, stride_);
      StoreField(p, next_offset_, 4, next);
      StoreField(p, state_offset_, 2, state);
      StoreField(p, key_len_offset_, key_len_bytes_, key.size());
      SharedWrite(p, key_offset_, key.data(), key.size());
    }
    bool first = true;
    for (const ResolvedField& f : fields) {
      EncodeField(p, f.column, *f.value);
      if (first) MaybeCrash(CrashPoint::kMidRowWrite);
      first = false;
    }
    if (has_expiry_ && expiry_ms >= 0) {
      StoreField(p, expiry_offset_, 8, static_cast<uint64_t>(expiry_ms));
    }
  });
}

absl::Status TableCore::InsertLocked(OwnerToken me, uint32_t b,
                                     absl::string_view key,
                                     absl::Span<const ResolvedField> fields,
                                     int64_t expiry_ms) const {
  BeginRecord(me, kRecordInsert, b, 0, 0, 0);
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  absl::StatusOr<uint32_t> claimed = ClaimRow(me, b);
  if (!claimed.ok()) {
    RetireRecord(me);
    return claimed.status();
  }
  const uint32_t r = *claimed;
  MaybeCrash(CrashPoint::kClaimedBeforeFill);
  // Where it goes: a home row at the head; any other row right after the
  // home rows at the front of the chain, so lookups of the bucket's other
  // keys still find them in the block.
  int64_t prev = -1;
  uint32_t next = BucketHead(b);
  if (!IsHomeRow(b, r)) {
    for (int i = 0; i < static_cast<int>(kRowsPerBlock) && next != 0 &&
                    next <= capacity_ && IsHomeRow(b, next - 1);
         ++i) {
      prev = next - 1;
      next = RowNext(next - 1);
    }
  }
  // Build the whole row privately, then copy it in while it is unreachable.
  std::vector<std::byte>& buf = tls_row_buffer;
  buf.assign(stride_, std::byte{0});
  std::byte* p = buf.data();
  StoreField(p, state_offset_, 2, me.slot + 1);
  StoreField(p, next_offset_, 4, next);
  StoreField(p, key_len_offset_, key_len_bytes_, key.size());
  SharedWrite(p, key_offset_, key.data(), key.size());
  for (const ResolvedField& f : fields) EncodeField(p, f.column, *f.value);
  if (has_expiry_ && expiry_ms > 0) {
    StoreField(p, expiry_offset_, 8, static_cast<uint64_t>(expiry_ms));
  }
  SharedWrite(row_ptr(r), 0, p, stride_);
  MaybeCrash(CrashPoint::kAllocatedBeforeLink);
  SeqBegin(b);
  if (prev < 0) {
    SetBucketHead(b, r + 1);
  } else {
    SetRowNext(static_cast<uint32_t>(prev), r + 1);
  }
  MaybeCrash(CrashPoint::kLinkedBeforeSeqEven);
  SeqEnd(b);
  MaybeCrash(CrashPoint::kLinkedBeforeLive);
  PublishRowLive(r);
  MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
  RetireRecord(me);
  return absl::OkStatus();
}

void TableCore::DeleteLocked(OwnerToken me, uint32_t b, uint32_t r,
                             int64_t prev) const {
  BeginRecord(me, kRecordDelete, b, r + 1, 0, 0);
  MaybeCrash(CrashPoint::kRecordedBeforeWrite);
  SetRowState(r, me.slot + 1);  // in flight: ours until freed
  MaybeCrash(CrashPoint::kMarkedBeforeUnlink);
  const uint32_t next = RowNext(r);
  SeqBegin(b);
  if (prev < 0) {
    SetBucketHead(b, next);
  } else {
    SetRowNext(static_cast<uint32_t>(prev), next);
  }
  SeqEnd(b);
  MaybeCrash(CrashPoint::kUnlinkedBeforeFree);
  SlotArea& a = area(me.slot);
  FreeRowState(r);
  Store(a.live_delta, Load(a.delta_before, std::memory_order_relaxed) - 1,
        std::memory_order_relaxed);
  MaybeCrash(CrashPoint::kFreedBeforeHint);
  SetFreeHint(r);
  MaybeCrash(CrashPoint::kAfterSeqEvenPinned);
  RetireRecord(me);
}

namespace {

uint64_t CoarseNowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

bool TableCore::ReclaimDue() const {
  const uint64_t now = CoarseNowMs();
  uint64_t after = Load(header_->reclaim_after_ms, std::memory_order_relaxed);
  if (now < after) return false;
  return Ref(header_->reclaim_after_ms)
      .compare_exchange_strong(after, now + 1, std::memory_order_relaxed);
}

bool TableCore::RefuseWithoutLock(uint32_t b, absl::string_view key) const {
  // Only a table already found full (the flag, read again below), without
  // TTL (an expired row in the chain would be reused), and not when a
  // reclaim is due: the locked path does that first (RetryWhenFull), so a
  // table kept full by a crashed writer's rows still gets them back.
  if (ABSL_PREDICT_TRUE(
          Load(header_->no_free_rows, std::memory_order_relaxed) == 0) ||
      has_expiry_ ||
      CoarseNowMs() >=
          Load(header_->reclaim_after_ms, std::memory_order_relaxed)) {
    return false;
  }
  // One optimistic pass over the chain, as a reader makes: the key is
  // absent if the pass is consistent, and the flag is read inside the
  // seqlock's window, so there is a moment when the key was absent and the
  // table full (the flag set: what ClaimRow refuses on under the lock).
  const uint64_t& word = seq_head(b);
  const uint64_t w1 = Load(word, std::memory_order_acquire);
  if ((SeqOf(w1) & 1) != 0) return false;
  bool bad = false;
  if (WalkChain(HeadOf(w1), key, &bad) != nullptr || bad) return false;
  const bool full = Load(header_->no_free_rows, std::memory_order_seq_cst) != 0;
  std::atomic_thread_fence(std::memory_order_acquire);
  if (!full || Load(word, std::memory_order_relaxed) != w1) return false;
  Ref(header_->failed_inserts).fetch_add(1, std::memory_order_relaxed);
  return true;
}

// ---------------------------------------------------------------------------
// Operations

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
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/true);
  // A full table refuses an absent key without the lock (an update of an
  // absent key is NotFound either way: the locked path says so).
  if (mode != WriteMode::kUpdate && RefuseWithoutLock(b, key)) return full_;
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (int attempt = 0;; ++attempt) {
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    MaybeCrash(CrashPoint::kLockedBeforeRecord);
    const int64_t expiry = ExpiryFor(options.ttl);  // -1: none given
    const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
    if (f.row >= 0) {
      if (mode == WriteMode::kAdd) {
        return absl::AlreadyExistsError(
            absl::StrCat("key \"", absl::CEscape(key), "\" already exists"));
      }
      UpdateRowLocked(me, b, static_cast<uint32_t>(f.row), key, fields, expiry,
                      /*whole_row=*/false);
      return absl::OkStatus();
    }
    if (mode == WriteMode::kUpdate) return KeyNotFound(key);
    absl::Status st = InsertNewLocked(me, b, key, fields, expiry, f);
    if (RetryWhenFull(st, attempt, guard, me)) continue;
    return st;
  }
}

absl::Status TableCore::InsertNewLocked(OwnerToken me, uint32_t b,
                                        absl::string_view key,
                                        absl::Span<const ResolvedField> fields,
                                        int64_t expiry, const Found& f) const {
  if (f.expired >= 0) {
    // Reuse the expired row in place: it is already in this chain.
    UpdateRowLocked(me, b, static_cast<uint32_t>(f.expired), key, fields,
                    expiry < 0 ? 0 : expiry, /*whole_row=*/true);
    Ref(header_->expired_reclaimed).fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  return InsertLocked(me, b, key, fields, expiry < 0 ? 0 : expiry);
}

bool TableCore::RetryWhenFull(const absl::Status& st, int attempt,
                              OwnerLockGuard& guard, OwnerToken me) {
  if (ABSL_PREDICT_TRUE(!absl::IsResourceExhausted(st))) return false;
  if (attempt == 0 && ReclaimDue()) {
    // Full: before saying so, recover crashed writers (their rows come
    // back) and free expired rows, outside this bucket's lock; then the
    // caller tries once more.
    guard.Unlock();
    RecoverCrashedWriters(me);
    if (schema_.ttl()) (void)Sweep();
    return true;
  }
  Ref(header_->failed_inserts).fetch_add(1, std::memory_order_relaxed);
  return false;
}

absl::Status TableCore::Delete(absl::string_view key, Row* removed) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/true);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
  if (f.row < 0) return KeyNotFound(key);
  const uint32_t r = static_cast<uint32_t>(f.row);
  if (removed != nullptr) {
    PrepareRow(removed);
    SharedReadWords(row_ptr(r), removed->bytes_.data(), stride_words_);
    SHMKIT_RETURN_IF_ERROR(FinishRow(key, CopyWhat::kRow, -1, removed));
  }
  DeleteLocked(me, b, r, f.prev);
  return absl::OkStatus();
}

template <typename Existing>
absl::Status TableCore::IncrementRow(absl::string_view key, int column,
                                     absl::FunctionRef<Value()> initial,
                                     const IncrOptions& options,
                                     Existing&& existing) {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_RETURN_IF_ERROR(CheckKey(key));
  if (options.ttl.has_value() && (!schema_.ttl() || !options.create ||
                                  *options.ttl <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        "IncrOptions::ttl needs create = true, a positive duration and a "
        "schema WithTtl");
  }
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/true);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (int attempt = 0;; ++attempt) {
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    MaybeCrash(CrashPoint::kLockedBeforeRecord);
    const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
    if (f.row >= 0) return existing(static_cast<uint32_t>(f.row));
    if (!options.create) return KeyNotFound(key);
    // Create with the column at the delta (other columns zero).
    const Value value = initial();
    if (absl::Status st = CheckValueFits(schema_.column(column), value);
        !st.ok()) {
      return absl::OutOfRangeError(st.message());
    }
    const ResolvedField field{column, &value};
    absl::Status st = InsertNewLocked(
        me, b, key, absl::MakeConstSpan(&field, 1), ExpiryFor(options.ttl), f);
    if (RetryWhenFull(st, attempt, guard, me)) continue;
    return st;
  }
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
  const uint32_t offset = layout_->columns[column].offset;
  int64_t result;
  if (!options.ttl.has_value() &&
      IncrRemembered(incr_, key, column, offset, spec.size, delta, &result)) {
    return result;
  }
  return IncrementIntAt(key, column, offset, spec.size, delta, options);
}

// Incr's short path: a key that exists, whose bucket lock is free (or
// freed within kIncrSpinPauses), and a sum that fits. The chain walk (as a
// reader's), one CAS, the check that the chain did not change, one store,
// the unlock; the same crash points as the general path, which handles
// everything else (and says what went wrong). Remembers the key in this
// thread's memo (fast_incr.h) when it succeeds.
// False: nothing changed, take the general path.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool TableCore::IncrementShort(
    absl::string_view key, int column, uint32_t offset, uint32_t width,
    int64_t delta, int64_t* result) {
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/true);
  absl::StatusOr<OwnerToken> me = registry_.Self();
  if (ABSL_PREDICT_FALSE(!me.ok())) return false;
  // The row is found before the lock is taken, as a reader finds it, so the
  // lock is held only for the add: a hot key's other contenders wait for
  // one load and one store, not a chain walk. Under the lock the chain
  // cannot change, and it has not changed since the walk when the bucket's
  // seq_head word is still the one read before it (every change of a
  // chain or a row's key moves the sequence).
  const uint64_t& word = seq_head(b);
  const uint64_t w1 = Load(word, std::memory_order_acquire);
  if (ABSL_PREDICT_FALSE((SeqOf(w1) & 1) != 0)) return false;
  bool bad = false;
  auto* p = const_cast<std::byte*>(WalkChain(HeadOf(w1), key, &bad));
  if (ABSL_PREDICT_FALSE(p == nullptr)) return false;
  OwnerLock lock(lock_word(b), &registry_);
  if (ABSL_PREDICT_FALSE(!lock.TryLockSpinning(*me, kIncrSpinPauses))) {
    return false;
  }
  const bool done =
      ABSL_PREDICT_TRUE(Load(word, std::memory_order_relaxed) == w1) &&
      AddToField(p, offset, width, delta, result);
  (void)lock.Unlock(*me);  // dropped status: see IncrRemembered (fast_incr.h)
  if (done) {
    RememberIncr(incr_, key, column, offset, width, lock_word(b), &word, p, w1,
                 *me);
  }
  return done;
}

absl::StatusOr<int64_t> TableCore::IncrementIntAt(absl::string_view key,
                                                  int column, uint32_t offset,
                                                  uint32_t width, int64_t delta,
                                                  const IncrOptions& options) {
  // Kept short (see FindRow); the general path is a separate function so
  // this one keeps few values live.
  int64_t result;
  if (ABSL_PREDICT_TRUE(!has_expiry_ && !read_only_ &&
                        !options.ttl.has_value() && !key.empty() &&
                        key.size() <= max_key_bytes_ &&
                        IncrementShort(key, column, offset, width, delta,
                                       &result))) {
    return result;
  }
  return IncrementIntSlow(key, column, offset, width, delta, options);
}

absl::StatusOr<int64_t> TableCore::IncrementIntSlow(
    absl::string_view key, int column, uint32_t offset, uint32_t width,
    int64_t delta, const IncrOptions& options) {
  const int64_t hi = IntMax(width);
  const int64_t lo = -hi - 1;
  const ColumnSpec& spec = schema_.column(column);
  int64_t result = delta;
  SHMKIT_RETURN_IF_ERROR(IncrementRow(
      key, column, [delta] { return Value(static_cast<long long>(delta)); },
      options,
      [&](uint32_t r) -> absl::Status {
        const int64_t now =
            SignExtend(LoadField(row_ptr(r), offset, width), width);
        if (__builtin_add_overflow(now, delta, &result) || result < lo ||
            result > hi) {
          return absl::OutOfRangeError(
              absl::StrCat("column \"", spec.name, "\" (", spec.TypeString(),
                           "): ", now, " + ", delta, " is out of range"));
        }
        StoreOneField(r, offset, width, static_cast<uint64_t>(result));
        return absl::OkStatus();
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
  const uint32_t offset = layout_->columns[column].offset;
  double result = delta;
  SHMKIT_RETURN_IF_ERROR(IncrementRow(
      key, column, [delta] { return Value(delta); }, options,
      [&](uint32_t r) -> absl::Status {
        const double now =
            FloatFromBits(LoadField(row_ptr(r), offset, spec.size), spec.size);
        result = now + delta;
        if (spec.size == 4) result = static_cast<float>(result);
        if (!std::isfinite(result)) {
          return absl::OutOfRangeError(absl::StrCat("column \"", spec.name,
                                                    "\": ", now, " + ", delta,
                                                    " is not finite"));
        }
        StoreOneField(r, offset, spec.size, NumericBits(spec, Value(result)));
        return absl::OkStatus();
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
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/true);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  const Found f = FindLocked(b, key, has_expiry_ ? NowMs() : 0);
  if (f.row < 0) return KeyNotFound(key);
  const uint32_t r = static_cast<uint32_t>(f.row);
  Row current;
  PrepareRow(&current);
  CopyColumn(row_ptr(r), column, &current);
  SHMKIT_RETURN_IF_ERROR(FinishRow(key, CopyWhat::kColumn, column, &current));
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
  const ResolvedField field{column, &desired};
  UpdateRowLocked(me, b, r, key, absl::MakeConstSpan(&field, 1), -1,
                  /*whole_row=*/false);
  return true;
}

absl::Status TableCore::Clear() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    if (BucketHead(b) == 0) continue;
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    for (uint64_t steps = 0; steps < capacity_; ++steps) {
      const uint32_t head = BucketHead(b);
      if (head == 0 || head > capacity_) break;
      DeleteLocked(me, b, head - 1, -1);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TableCore::Sweep() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  if (!has_expiry_) return 0;
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
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    int64_t prev = -1;
    r = BucketHead(b);
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

}  // namespace shmkit::internal
