// TableCore free rows: claiming one by CAS of its state, and the free hints
// that say where to look.
//
// The row state decides; the hints only guide. A hint bit may be set for a
// row that is taken (a claimer clears it after its CAS; a crash in between
// leaves it set): whoever meets such a bit clears it. A free row must never
// be left without its bit, or an insert could not find it and the capacity
// promise would break. Two races could do that, and both are closed by
// ordering with seq_cst:
//   - a freer stores state 0 and then sets the bit; a claimer that found the
//     bit stale clears it and then re-reads the state, setting the bit again
//     if the row is free by then. Whichever order the four operations take,
//     the bit ends up set for a free row.
//   - the summary bit of a hint word is cleared only by someone who then
//     re-reads the hint word and sets the summary again if it is non-zero;
//     a setter sets the hint bit before it looks at the summary bit.
//
// A full table is remembered in TableHeader::no_free_rows, so that a refused
// insert costs its lookup and not a scan of every hint word (nor the bucket
// lock: TableCore::RefuseWithoutLock reads the flag inside a consistent
// read of the key's chain, and refuses only when it is set). Same pattern:
//   - a freer sets the row's hint (and summary) bit, then clears the flag if
//     it is set;
//   - an insert that scanned and found nothing sets the flag, then scans
//     once more; if that finds a row it takes it and clears the flag.
// In the seq_cst order, either the freer's bit comes before the flag is set
// (the second scan sees it) or its look at the flag comes after (it clears
// it). So once a free has returned, the flag is clear or a scan that began
// after it found nothing: a set flag never hides a freed row. A freer that
// dies between its bit and the flag is recovered like any dead writer, and
// recovery frees (so clears) again.
#include <bit>

#include "absl/strings/str_cat.h"
#include "shmkit/table/internal/table_core.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::internal {
namespace {

uint64_t LoadSeqCst(const uint64_t& word) {
  return Load(word, std::memory_order_seq_cst);
}

}  // namespace

void TableCore::FreeRowState(uint32_t r) const {
  // The caller has the row in flight (its state names the caller), so no
  // one else writes this word now: a plain merge, stored seq_cst.
  std::byte* p = row_ptr(r);
  const uint32_t word_start = state_offset_ & ~uint32_t{7};
  const uint32_t shift = (state_offset_ - word_start) * 8;
  std::atomic_ref<uint64_t> word(*reinterpret_cast<uint64_t*>(p + word_start));
  const uint64_t w = word.load(std::memory_order_relaxed);
  word.store(w & ~(uint64_t{0xffff} << shift), std::memory_order_seq_cst);
}

uint32_t TableCore::RowStateSeqCst(uint32_t r) const {
  const uint32_t word_start = state_offset_ & ~uint32_t{7};
  const uint64_t w =
      Load(*reinterpret_cast<const uint64_t*>(row_ptr(r) + word_start),
           std::memory_order_seq_cst);
  return static_cast<uint32_t>(w >> ((state_offset_ - word_start) * 8)) &
         0xffff;
}

void TableCore::SetFreeHint(uint32_t r) const {
  const uint32_t w = r / 64;
  Ref(hints_[w]).fetch_or(uint64_t{1} << (r % 64), std::memory_order_seq_cst);
  uint64_t& s = summary_[w / 64];
  const uint64_t bit = uint64_t{1} << (w % 64);
  if ((LoadSeqCst(s) & bit) == 0) {
    Ref(s).fetch_or(bit, std::memory_order_seq_cst);
  }
  if (LoadSeqCst(header_->no_free_rows) != 0) {
    Ref(header_->no_free_rows).store(0, std::memory_order_seq_cst);
  }
}

void TableCore::ClearFreeHint(uint32_t r) const {
  const uint64_t bit = uint64_t{1} << (r % 64);
  uint64_t& h = hints_[r / 64];
  if ((LoadSeqCst(h) & bit) != 0) {
    Ref(h).fetch_and(~bit, std::memory_order_seq_cst);
  }
}

bool TableCore::TryClaim(OwnerToken me, uint32_t r) const {
  if (RowState(r) != kRowFree) return false;
  SlotArea& a = area(me.slot);
  // Recorded before the CAS: after a crash, a state naming this slot proves
  // the claim happened, and the record says which row to look at.
  Store(a.row, r + 1, std::memory_order_relaxed);
  if (!CasField(row_ptr(r), state_offset_, 2, kRowFree, me.slot + 1)) {
    return false;
  }
  ClearFreeHint(r);
  Store(a.live_delta, Load(a.delta_before, std::memory_order_relaxed) + 1,
        std::memory_order_relaxed);
  return true;
}

absl::StatusOr<uint32_t> TableCore::ClaimRow(OwnerToken me, uint32_t b) const {
  // A home row keeps the key in its bucket's block.
  for (uint32_t i = 0; i < kRowsPerBlock; ++i) {
    const uint64_t r = uint64_t{b} * kRowsPerBlock + i;
    if (r < capacity_ && TryClaim(me, static_cast<uint32_t>(r))) {
      return static_cast<uint32_t>(r);
    }
  }
  // The table was full at the last look, and nothing has been freed since.
  if (LoadSeqCst(header_->no_free_rows) != 0) return full_;
  // Then the free row nearest the block, through the hints: first the hint
  // word of the home rows, then the words the summary points at, from there
  // on round the table.
  auto claim_from_word = [&](uint32_t w) -> std::optional<uint32_t> {
    uint64_t bits = LoadSeqCst(hints_[w]);
    while (bits != 0) {
      const uint32_t r = w * 64 + static_cast<uint32_t>(std::countr_zero(bits));
      bits &= bits - 1;
      if (r >= capacity_) {
        ClearFreeHint(r);
        continue;
      }
      if (TryClaim(me, r)) return r;
      // Taken by someone else: drop the stale bit, unless the row was
      // freed meanwhile (see the file comment).
      ClearFreeHint(r);
      if (RowStateSeqCst(r) == kRowFree) {
        SetFreeHint(r);
      }
    }
    return std::nullopt;
  };
  const uint32_t home_word =
      static_cast<uint32_t>(uint64_t{b} * kRowsPerBlock / 64);
  auto scan = [&]() -> std::optional<uint32_t> {
    if (std::optional<uint32_t> r = claim_from_word(home_word)) return r;
    // A full table scans every summary word (256 for a million rows): the
    // loop wraps by comparison, not by a division per word.
    uint32_t sw = home_word / 64;
    for (uint32_t i = 0; i <= summary_words_;
         ++i, sw = sw + 1 == summary_words_ ? 0 : sw + 1) {
      uint64_t bits = LoadSeqCst(summary_[sw]);
      while (bits != 0) {
        const uint32_t bit = static_cast<uint32_t>(std::countr_zero(bits));
        bits &= bits - 1;
        const uint32_t w = sw * 64 + bit;
        if (w >= hint_words_) continue;
        if (LoadSeqCst(hints_[w]) == 0) {
          Ref(summary_[sw])
              .fetch_and(~(uint64_t{1} << bit), std::memory_order_seq_cst);
          if (LoadSeqCst(hints_[w]) != 0) {
            Ref(summary_[sw])
                .fetch_or(uint64_t{1} << bit, std::memory_order_seq_cst);
          }
          continue;
        }
        if (std::optional<uint32_t> r = claim_from_word(w)) return r;
      }
    }
    return std::nullopt;
  };
  if (std::optional<uint32_t> r = scan()) return *r;
  MaybeCrash(CrashPoint::kFullBeforeFlag);
  // Nothing free: remember it, then look once more (see the file comment).
  Ref(header_->no_free_rows).store(1, std::memory_order_seq_cst);
  if (std::optional<uint32_t> r = scan()) {
    Ref(header_->no_free_rows).store(0, std::memory_order_seq_cst);
    return *r;
  }
  return full_;  // made once: a refusal allocates nothing
}

void TableCore::RebuildHints() const {
  for (uint32_t r = 0; r < capacity_; ++r) {
    if (RowState(r) == kRowFree) SetFreeHint(r);
  }
}

}  // namespace shmkit::internal
