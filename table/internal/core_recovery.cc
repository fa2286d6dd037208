// TableCore recovery: finishing what dead writers left (the rules are in
// table_core.h, "Recovery"), and the consistency check that proves it.
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/table/internal/table_core.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::internal {

bool TableCore::DeadRecord(uint32_t slot, OwnerToken* owner) const {
  if (!registry_.Pinned(slot)) return false;
  const std::optional<OwnerToken> o =
      OwnerOfLockWord(Load(area(slot).token, std::memory_order_acquire));
  // A pin is set only after the record (token included) is complete, so a
  // token naming another slot means a damaged record: leave it alone.
  if (!o.has_value() || o->slot != slot || !registry_.IsDead(*o)) return false;
  *owner = *o;
  return true;
}

bool TableCore::ChainContains(uint32_t b, uint32_t r, int64_t* prev) const {
  *prev = -1;
  uint32_t cur = BucketHead(b);
  for (uint64_t steps = 0; cur != 0 && cur <= capacity_ && steps < capacity_;
       ++steps) {
    if (cur == r + 1) return true;
    *prev = cur - 1;
    cur = RowNext(cur - 1);
  }
  return false;
}

void TableCore::RepairChain(uint32_t b) const {
  // Walk with a bound; cut at the first link that leaves the pool or loops.
  const uint32_t head = BucketHead(b);
  if (head > capacity_) {
    SetBucketHead(b, 0);
    Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint32_t cur = head;
  for (uint64_t steps = 0; cur != 0; ++steps) {
    const uint32_t next = RowNext(cur - 1);
    if (next > capacity_ || (next != 0 && steps + 1 >= capacity_)) {
      SetRowNext(cur - 1, 0);
      Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
      return;
    }
    cur = next;
  }
}

void TableCore::RecoverBucket(uint32_t b, OwnerToken me) const {
  Ref(header_->recoveries).fetch_add(1, std::memory_order_relaxed);
  MaybeCrash(CrashPoint::kRecoveryStarted);
  // Every dead writer's live record that names this bucket: the lock's last
  // owner's, and those of recoverers that died before retiring them.
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    OwnerToken dead;
    if (slot != me.slot && DeadRecord(slot, &dead) &&
        Load(area(slot).bucket, std::memory_order_relaxed) == b) {
      RecoverRecord(slot, b);
    }
  }
  const uint64_t w = Load(seq_head(b), std::memory_order_relaxed);
  if (SeqOf(w) & 1) {
    Store(seq_head(b), SeqHeadWord(SeqOf(w) + 1, HeadOf(w)),
          std::memory_order_release);
  }
  RepairChain(b);
}

void TableCore::RecoverRecord(uint32_t slot, uint32_t b) const {
  SlotArea& a = area(slot);
  const uint32_t op = Load(a.op, std::memory_order_relaxed);
  const uint32_t row = Load(a.row, std::memory_order_relaxed);
  const int64_t before = Load(a.delta_before, std::memory_order_relaxed);
  const uint32_t in_flight = slot + 1;
  const bool row_ok = row != 0 && row <= capacity_;
  const uint32_t r = row - 1;
  auto set_delta = [&](int64_t d) {
    Store(a.live_delta, before + d, std::memory_order_relaxed);
  };
  // Frees row r for good: state, count, hint (each step repeatable).
  auto free_row = [&](int64_t d) {
    FreeRowState(r);
    set_delta(d);
    MaybeCrash(CrashPoint::kRecoveryFreed);
    SetFreeHint(r);
  };
  switch (op) {
    case kRecordUpdate: {
      const uint32_t offset = Load(a.image_offset, std::memory_order_relaxed);
      const uint32_t len = Load(a.image_len, std::memory_order_relaxed);
      // Seq odd: the change may be half done: put the old bytes back. Even:
      // it never started or was published whole.
      if ((SeqOf(Load(seq_head(b), std::memory_order_relaxed)) & 1) != 0 &&
          row_ok && len <= stride_ && offset <= stride_ - len) {
        SharedWrite(row_ptr(r), offset, area_image(slot) + offset, len);
        MaybeCrash(CrashPoint::kRecoveryRestored);
      }
      break;
    }
    case kRecordInsert: {
      if (!row_ok) break;  // no row chosen yet
      int64_t prev;
      const bool linked = ChainContains(b, r, &prev);
      if (RowState(r) == in_flight) {
        if (linked) {
          PublishRowLive(r);  // published: finish the insert
          set_delta(+1);
        } else {
          free_row(0);  // claimed, never linked
        }
      } else {
        // The claim never happened, or the insert is done, or a recoverer
        // already freed the row (it may even be someone else's by now).
        set_delta(linked ? +1 : 0);
        if (!linked && RowStateSeqCst(r) == kRowFree) SetFreeHint(r);
      }
      break;
    }
    case kRecordDelete: {
      if (!row_ok) break;
      int64_t prev;
      const bool linked = ChainContains(b, r, &prev);
      if (RowState(r) == in_flight) {
        if (linked) {
          // Never unlinked: readers still see the row, so the delete did
          // not happen (the unlink is its moment). Undo the mark.
          PublishRowLive(r);
          set_delta(0);
        } else {
          free_row(-1);
        }
      } else if (linked) {
        set_delta(0);  // the delete never started
      } else {
        set_delta(-1);  // done (the row may be someone else's by now)
        if (RowStateSeqCst(r) == kRowFree) SetFreeHint(r);
      }
      break;
    }
    default:
      break;
  }
  MaybeCrash(CrashPoint::kRecoveryBeforeRetire);
  registry_.Unpin(slot);
}

uint64_t TableCore::RecoverCrashedWriters(OwnerToken me) const {
  uint64_t recovered = 0;
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    OwnerToken dead;
    if (slot == me.slot || !DeadRecord(slot, &dead)) continue;
    const uint32_t b = Load(area(slot).bucket, std::memory_order_relaxed);
    if (b >= bucket_count_) {
      // A damaged record: nothing it names can be trusted or repaired.
      registry_.Unpin(slot);
      Ref(header_->chain_repairs).fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    absl::StatusOr<OwnerLockGuard> guard = LockBucket(b, me);
    if (!guard.ok()) continue;  // a live process held it too long: later
    // A takeover recovered the bucket already; otherwise do it now.
    if (!guard->result().took_over && DeadRecord(slot, &dead)) {
      RecoverBucket(b, me);
    }
    ++recovered;
  }
  return recovered;
}

absl::StatusOr<uint64_t> TableCore::Recover() {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  const uint64_t before = Load(header_->recoveries, std::memory_order_relaxed);
  RecoverCrashedWriters(me);
  // Locks of dead owners with nothing to repair: take them over too.
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    if (OwnerLock(lock_word(b), &registry_).DeadHolder().has_value()) {
      SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    }
  }
  // A free row whose hint was lost (a crash between freeing and hinting
  // that nobody recovered) would be invisible to inserts: find them all.
  RebuildHints();
  return Load(header_->recoveries, std::memory_order_relaxed) - before;
}

absl::Status TableCore::CheckConsistency() const {
  SHMKIT_RETURN_IF_ERROR(CheckWritable());  // it locks every bucket
  std::vector<uint8_t> seen(capacity_, 0);
  uint64_t in_chains = 0;
  SHMKIT_ASSIGN_OR_RETURN(OwnerToken me, registry_.Self());
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard guard, LockBucket(b, me));
    if (SeqOf(Load(seq_head(b), std::memory_order_relaxed)) & 1) {
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
      if (const uint32_t state = RowState(idx); state != kRowLive) {
        return absl::DataLossError(absl::StrCat(
            "row ", idx, " is in bucket ", b, " with state ", state,
            state == kRowFree ? " (free)" : " (in flight)"));
      }
      const std::byte* p = row_ptr(idx);
      const uint64_t klen = LoadField(p, key_len_offset_, key_len_bytes_);
      if (klen == 0 || klen > max_key_bytes_) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " has a key length of ", klen));
      }
      std::string key(klen, '\0');
      SharedRead(p, key_offset_, key.data(), klen);
      if (BucketOfKey(key) != b) {
        return absl::DataLossError(
            absl::StrCat("row ", idx, " (key \"", absl::CEscape(key),
                         "\") is in bucket ", b, " but hashes to another"));
      }
      for (const TextColumn& t : text_columns_) {
        if (LoadField(p, t.len_offset, t.len_bytes) > t.max) {
          return absl::DataLossError(absl::StrCat("row ", idx, " column \"",
                                                  schema_.column(t.column).name,
                                                  "\" length exceeds ", t.max));
        }
      }
      r = RowNext(idx);
    }
  }
  uint64_t free_rows = 0;
  for (uint32_t r = 0; r < capacity_; ++r) {
    if (seen[r] != 0) continue;
    if (const uint32_t state = RowState(r); state != kRowFree) {
      return absl::DataLossError(absl::StrCat(
          "row ", r, " is neither in a chain nor free (state ", state,
          "): a writer is still at work or the row was lost"));
    }
    const uint32_t w = r / 64;
    if ((Load(hints_[w], std::memory_order_relaxed) &
         (uint64_t{1} << (r % 64))) == 0 ||
        (Load(summary_[w / 64], std::memory_order_relaxed) &
         (uint64_t{1} << (w % 64))) == 0) {
      return absl::DataLossError(
          absl::StrCat("row ", r,
                       " is free but its free hint is clear: no insert can "
                       "find it (Table::Recover() rebuilds the hints)"));
    }
    ++free_rows;
  }
  int64_t counted = 0;
  for (uint32_t slot = 0; slot < registry_.slot_count(); ++slot) {
    counted += Load(area(slot).live_delta, std::memory_order_relaxed);
  }
  if (counted != static_cast<int64_t>(in_chains)) {
    return absl::DataLossError(
        absl::StrCat("the live count is ", counted, " but ", in_chains,
                     " rows are in chains (", free_rows, " free)"));
  }
  return absl::OkStatus();
}

}  // namespace shmkit::internal
