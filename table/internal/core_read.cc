// TableCore reads: one optimistic read loop (ReadBucket) under the bucket's
// seqlock, used by every kind of read; its locked fallback; and what the
// reads copy out.
#include <sched.h>
#include <time.h>

#include <cstring>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/cpu_relax.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/table_core.h"

namespace shmkit::internal {
namespace {

// Optimistic passes before a reader takes the bucket lock.
constexpr int kOptimisticAttempts = 32;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

void Backoff(int attempt) {
  if (attempt < 8) {
    for (int i = 0; i < (1 << attempt); ++i) CpuRelax();
  } else {
    sched_yield();
  }
}

}  // namespace

template <typename Restart, typename VisitFn>
bool TableCore::OptimisticPass(uint32_t b, Restart&& restart,
                               VisitFn&& visit) const {
  const uint64_t& word = seq_head(b);
  const uint64_t w1 = Load(word, std::memory_order_acquire);
  if (ABSL_PREDICT_FALSE((SeqOf(w1) & 1) != 0)) return false;
  restart();
  uint32_t r = HeadOf(w1);
  for (uint64_t steps = 0; r != 0; ++steps) {
    if (ABSL_PREDICT_FALSE(r > capacity_ || steps >= capacity_)) return false;
    const std::byte* p = row_ptr(r - 1);
    if (visit(p, r - 1) == Visit::kStop) break;
    r = static_cast<uint32_t>(LoadField(p, next_offset_, 4));
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  return Load(word, std::memory_order_relaxed) == w1;
}

template <typename Restart, typename VisitFn>
absl::Status TableCore::ReadBucket(uint32_t b, Restart&& restart,
                                   VisitFn&& visit) const {
  for (int attempt = 0; attempt < kOptimisticAttempts; ++attempt) {
    if (ABSL_PREDICT_TRUE(OptimisticPass(b, restart, visit))) {
      return absl::OkStatus();
    }
    Backoff(attempt);
  }
  return ReadBucketLocked(b, restart, visit);
}

absl::Status TableCore::ReadBucketLocked(
    uint32_t b, absl::FunctionRef<void()> restart,
    absl::FunctionRef<Visit(const std::byte*, uint32_t)> visit) const {
  if (read_only_) {
    // A read-only mapping cannot take the lock: keep trying optimistically
    // (sleeping in between) for up to lock_timeout.
    const absl::Time deadline = absl::Now() + lock_timeout_;
    while (absl::Now() < deadline) {
      // A writer that died in this bucket will not finish: say so now
      // rather than after lock_timeout (checking reads the registry only).
      if (const std::optional<OwnerToken> owner =
              OwnerLock(lock_word(b), &registry_).DeadHolder();
          owner.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "bucket ", b,
            " was left busy by a writer that died (registry slot ", owner->slot,
            "); a read-only handle cannot recover it: run "
            "Table::Recover() or `shmkit recover` from a writable handle"));
      }
      absl::SleepFor(absl::Microseconds(200));
      if (OptimisticPass(b, restart, visit)) {
        return absl::OkStatus();
      }
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "bucket ", b, " stayed busy for ", absl::FormatDuration(lock_timeout_),
        " (a writer holds it or died in it; a read-only handle cannot recover "
        "it)"));
  }
  // A writer kept the bucket busy (or died in it): read under the lock.
  Ref(header_->read_fallbacks).fetch_add(1, std::memory_order_relaxed);
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
  restart();
  uint32_t r = BucketHead(b);
  for (uint64_t steps = 0; r != 0; ++steps) {
    if (r > capacity_ || steps >= capacity_) {
      RepairChain(b);  // corrupt link: cut it (counted) rather than follow
      break;
    }
    const std::byte* p = row_ptr(r - 1);
    if (visit(p, r - 1) == Visit::kStop) break;
    r = RowNext(r - 1);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> TableCore::FindRow(absl::string_view key, Row* row) const {
  if (ABSL_PREDICT_FALSE(key.empty() || key.size() > max_key_bytes_)) {
    return CheckKey(key);
  }
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/false);
  return FindInBucket(b, key, row);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline absl::StatusOr<bool>
TableCore::FindInBucket(uint32_t b, absl::string_view key, Row* row) const {
  // The common case is Table::Find's inline path (fast_find.h); it runs
  // here too for Get, FindMany and a Find it left undecided (which then
  // goes on to the full loop).
  if (ABSL_PREDICT_TRUE(fast_hits_ && RowAccess::Shaped(*row, fast_))) {
    const FastRead r = FastFindInBucket(fast_, b, key, row);
    if (ABSL_PREDICT_TRUE(r != FastRead::kUndecided)) {
      return r == FastRead::kFound;
    }
  } else {
    PrepareRow(row);
  }
  return FindInBucketSlow(b, key, row);
}

absl::StatusOr<bool> TableCore::FindInBucketSlow(uint32_t b,
                                                 absl::string_view key,
                                                 Row* row) const {
  std::byte* out = row->bytes_.data();
  row->present_ = false;
  bool found = false;
  auto restart = [&] { found = false; };
  auto visit = [&](const std::byte* p, uint32_t) {
    if (!KeyEquals(p, key)) return Visit::kNext;
    SharedReadRow(p, out, stride_);
    found = true;
    return Visit::kStop;
  };
  SHMKIT_RETURN_IF_ERROR(ReadBucket(b, restart, visit));
  if (!found) return false;
  if (has_expiry_) {
    const int64_t expiry =
        static_cast<int64_t>(PlainField(out, expiry_offset_, 8));
    if (expiry != 0 && expiry <= NowMs()) return false;
  }
  for (const TextColumn& t : text_columns_) {
    if (ABSL_PREDICT_FALSE(PlainField(out, t.len_offset, t.len_bytes) >
                           t.max)) {
      return CheckTextLengths(*row, CopyWhat::kRow, -1);  // names it
    }
  }
  row->present_ = true;
  row->key_in_bytes_ = true;
  if (has_expiry_) FillExpiry(row);
  return true;
}

absl::StatusOr<bool> TableCore::ReadNumber(absl::string_view key, int column,
                                           Value* value) const {
  if (ABSL_PREDICT_FALSE(key.empty() || key.size() > max_key_bytes_)) {
    return CheckKey(key);
  }
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/false);
  const ColumnSpec& spec = schema_.column(column);
  const uint32_t offset = layout_->columns[column].offset;
  bool found = false;
  uint64_t bits = 0;
  int64_t expiry = 0;
  SHMKIT_RETURN_IF_ERROR(ReadBucket(
      b, [&] { found = false; },
      [&](const std::byte* p, uint32_t) {
        if (!KeyEquals(p, key)) return Visit::kNext;
        bits = LoadField(p, offset, spec.size);
        if (has_expiry_) {
          expiry = static_cast<int64_t>(LoadField(p, expiry_offset_, 8));
        }
        found = true;
        return Visit::kStop;
      }));
  if (!found || (expiry != 0 && expiry <= NowMs())) return false;
  *value = spec.is_integer()
               ? Value(static_cast<long long>(SignExtend(bits, spec.size)))
               : Value(FloatFromBits(bits, spec.size));
  return true;
}

absl::Status TableCore::FindMany(absl::Span<const absl::string_view> keys,
                                 absl::Span<Row> rows,
                                 absl::Span<bool> found) const {
  if (rows.size() != keys.size() || found.size() != keys.size()) {
    return absl::InvalidArgumentError(absl::StrCat(keys.size(), " keys but ",
                                                   rows.size(), " rows and ",
                                                   found.size(), " results"));
  }
  // The keys' bytes are requested while checking them: a caller's keys are
  // rarely in cache (strings of a request, or of an array), and the hashing
  // below would otherwise wait for each in turn.
  for (absl::string_view key : keys) {
    SHMKIT_RETURN_IF_ERROR(CheckKey(key));
    __builtin_prefetch(key.data());
  }
  // Hash a group of keys and prefetch every block first, so the group's
  // cache misses overlap; then look each up (its block is on the way),
  // without hashing it again.
  constexpr size_t kGroup = 16;
  uint32_t buckets[kGroup];
  for (size_t start = 0; start < keys.size(); start += kGroup) {
    const size_t end = std::min(keys.size(), start + kGroup);
    for (size_t i = start; i < end; ++i) {
      buckets[i - start] = BucketOfKey(keys[i]);
      PrefetchBlock(buckets[i - start], /*for_write=*/false);
    }
    for (size_t i = start; i < end; ++i) {
      SHMKIT_ASSIGN_OR_RETURN(
          found[i], FindInBucket(buckets[i - start], keys[i], &rows[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> TableCore::Read(absl::string_view key, CopyWhat what,
                                     int column, Row* row) const {
  if (key.empty() || key.size() > max_key_bytes_) return CheckKey(key);
  const uint32_t b = BucketOfKey(key);
  PrefetchBlock(b, /*for_write=*/false);
  const bool copy = row != nullptr && what != CopyWhat::kNothing;
  if (copy) PrepareRow(row);
  const int64_t now_ms = has_expiry_ ? NowMs() : 0;
  bool found = false;
  bool expired = false;
  SHMKIT_RETURN_IF_ERROR(ReadBucket(
      b,
      [&] {
        found = false;
        expired = false;
      },
      [&](const std::byte* p, uint32_t) {
        if (!KeyEquals(p, key)) return Visit::kNext;
        found = true;
        expired = RowExpired(p, now_ms);
        if (!expired && copy) {
          if (what == CopyWhat::kRow) {
            SharedReadRow(p, row->bytes_.data(), stride_);
          } else {
            CopyColumn(p, column, row);
          }
        }
        return Visit::kStop;
      }));
  if (!found || expired) {
    if (copy) row->present_ = false;
    return false;
  }
  if (copy) SHMKIT_RETURN_IF_ERROR(FinishRow(key, what, column, row));
  return true;
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

absl::Status TableCore::FinishRow(absl::string_view key, CopyWhat what,
                                  int column, Row* row) const {
  // Consistent, but still from shared memory: check the lengths.
  SHMKIT_RETURN_IF_ERROR(CheckTextLengths(*row, what, column));
  row->present_ = true;
  // A whole-row copy holds the key (it matched `key`); a column copy does not.
  row->key_in_bytes_ = what == CopyWhat::kRow;
  if (!row->key_in_bytes_) row->key_.assign(key.data(), key.size());
  if (has_expiry_) FillExpiry(row);
  return absl::OkStatus();
}

absl::Status TableCore::CheckTextLengths(const Row& row, CopyWhat what,
                                         int column) const {
  const std::byte* p = row.bytes_.data();
  for (const TextColumn& t : text_columns_) {
    if (what == CopyWhat::kColumn && t.column != column) {
      continue;
    }
    const uint64_t len = PlainField(p, t.len_offset, t.len_bytes);
    if (len > t.max) {
      return absl::DataLossError(
          absl::StrCat("a row's column \"", schema_.column(t.column).name,
                       "\" claims ", len, " bytes, more than its ", t.max));
    }
  }
  return absl::OkStatus();
}

void TableCore::FillExpiry(Row* row) const {
  row->expires_at_.reset();
  if (!has_expiry_) return;
  const int64_t expiry =
      static_cast<int64_t>(PlainField(row->bytes_.data(), expiry_offset_, 8));
  if (expiry == 0) return;
  // Stored on CLOCK_BOOTTIME (immune to wall-clock jumps); shown as wall time.
  row->expires_at_ = absl::Now() + absl::Milliseconds(expiry - NowMs());
}

absl::Status TableCore::SnapshotBucket(uint32_t b, int64_t now_ms,
                                       std::vector<Row>* out) const {
  const size_t base = out->size();
  SHMKIT_RETURN_IF_ERROR(ReadBucket(
      b, [&] { out->resize(base); },
      [&](const std::byte* p, uint32_t) {
        Row& row = out->emplace_back();
        PrepareRow(&row);
        SharedReadRow(p, row.bytes_.data(), stride_);
        return Visit::kNext;
      }));
  // Consistent: check keys and lengths, drop expired rows.
  size_t keep = base;
  for (size_t i = base; i < out->size(); ++i) {
    Row& row = (*out)[i];
    const std::byte* p = row.bytes_.data();
    const uint64_t klen = PlainField(p, key_len_offset_, key_len_bytes_);
    if (klen == 0 || klen > max_key_bytes_) {
      return absl::DataLossError(
          absl::StrCat("bucket ", b, ": a row has a key length of ", klen));
    }
    if (has_expiry_) {
      const int64_t expiry =
          static_cast<int64_t>(PlainField(p, expiry_offset_, 8));
      if (expiry != 0 && expiry <= now_ms) continue;
    }
    SHMKIT_RETURN_IF_ERROR(CheckTextLengths(row, CopyWhat::kRow, -1));
    row.key_in_bytes_ = true;
    row.present_ = true;
    FillExpiry(&row);
    if (keep != i) (*out)[keep] = std::move(row);
    ++keep;
  }
  out->resize(keep);
  return absl::OkStatus();
}

}  // namespace shmkit::internal
