// TableCore whole-table views: count, scan, statistics, inspection.
#include <time.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/table_core.h"

namespace shmkit::internal {

uint64_t TableCore::Count() const {
  int64_t live = 0;
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    live += Load(area(slot).live_delta, std::memory_order_relaxed);
  }
  // Counters of different slots are read at slightly different times; a
  // sum caught mid-way between a claim and a free can be one off.
  return static_cast<uint64_t>(
      std::clamp<int64_t>(live, 0, static_cast<int64_t>(capacity_)));
}

absl::StatusOr<uint64_t> TableCore::ScanBuckets(uint64_t cursor,
                                                size_t max_rows,
                                                std::vector<Row>* out) const {
  if (cursor > bucket_count_) {
    return absl::InvalidArgumentError(absl::StrCat("scan cursor ", cursor,
                                                   " is past the table's ",
                                                   bucket_count_, " buckets"));
  }
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  const int64_t now_ms = int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
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
  st.memory_bytes = Load(header_->total_bytes, std::memory_order_relaxed);
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
  if (absl::StatusOr<PageUsage> pages = segment_.Pages(); pages.ok()) {
    st.page_bytes = pages->page_bytes;
    st.huge_page_bytes = pages->huge_bytes;
  }
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
    const uint64_t word = Load(*lock_word(b), std::memory_order_relaxed);
    if (std::optional<OwnerToken> owner = OwnerOfLockWord(word)) {
      const SlotInfo info = registry_.Slot(owner->slot);
      in.held_locks.push_back(
          {b, info.pid, owner->slot, !registry_.IsDead(*owner)});
    }
  }
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    OwnerToken dead;
    if (DeadRecord(slot, &dead)) ++in.dead_pinned_slots;
  }
  return in;
}

}  // namespace shmkit::internal
