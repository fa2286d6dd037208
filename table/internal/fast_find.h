// The common lookup, written in a header so that Table::Find inlines into the
// caller's loop.
//
// Why a header: a server looks up keys it did not generate, one after the
// other, and each lookup's cost is one dependent cache miss (its block).
// The CPU overlaps that miss with the next lookup's only when both fit in
// its reorder window; two out-of-line calls (Table::Find, then the core)
// and their entry checks pushed the next lookup's loads out of it. Measured
// with a scratch loop over workload W (bench/README.md, "Sixth session"):
// the same lookup written inline took 229-254 ns where the out-of-line one
// took 296-326; in the user benchmark, with string lengths no longer
// re-read (below), the get went from 1.51x to 1.67x Boost's speed (six
// alternating pairs, "Seventh session").
//
// What it covers: a key of a valid length, a Row already shaped for the
// table, no writer in the bucket, the key in the first kFastChainSteps rows
// of its chain (or absent), a table without TTL whose key bytes start on a
// word. Everything else is kUndecided and goes to the full read loop
// (TableCore::FindRow), which starts over. An empty or closed table has a
// view that decides nothing (max_key_bytes 0).
//
// The view is a copy of the table's geometry, made when the table is opened
// and held by value in Table; the core holds the same one. It points into
// the mapping the core owns, so it lives exactly as long as the core.
#ifndef SHMKIT_TABLE_INTERNAL_FAST_FIND_H_
#define SHMKIT_TABLE_INTERNAL_FAST_FIND_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/strings/string_view.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/internal/row_io.h"
#include "shmkit/table/row.h"

namespace shmkit::internal {

// Rows the fast path visits before it hands over to the full read loop. At
// workload W's load (0.95 keys per bucket) 98 % of keys are in their chain's
// first three rows.
inline constexpr int kFastChainSteps = 4;

struct FastFindView {
  const std::byte* blocks = nullptr;
  // The Rows it fills are shaped for this layout (Row::layout_).
  const RowLayout* layout = nullptr;
  uint64_t capacity = 0;
  uint32_t bucket_count = 0;
  uint32_t block_stride = 0;
  uint32_t stride = 0;
  // 0 when the fast path does not apply (every key is then undecided).
  uint32_t max_key_bytes = 0;
  uint32_t prefetch_lines = 1;  // lines of the block's first 256 bytes
  uint32_t key_offset = 0;
  uint32_t key_len_word = 0;   // the key length's 8-byte word
  uint32_t key_len_shift = 0;  // its bit position in that word
  uint64_t key_len_mask = 0;
  uint32_t next_offset = 0;

  const std::byte* block(uint32_t b) const {
    return blocks + static_cast<size_t>(b) * block_stride;
  }
  const std::byte* row_ptr(uint32_t r) const {
    return block(r / kRowsPerBlock) + kBlockHeaderBytes +
           static_cast<size_t>(r % kRowsPerBlock) * stride;
  }
};

// Starts loading every cache line of a block (lock, seq_head, home rows) at
// once, so they arrive together instead of one after another. `lines` is
// 1..4 (unrolled: it runs on every lookup). kForWrite is only a hint: built
// for x86-64's baseline instruction set (no -mprfchw), GCC emits the same
// read prefetch (prefetcht0) for both. A hand-written PREFETCHW measured no
// different on a key two processes increment (bench/README.md, "Tenth
// session"), so none is emitted; on other lines the line comes from memory
// in the exclusive state anyway when no other core holds it.
template <bool kForWrite>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PrefetchLines(const std::byte* blk,
                                                       uint32_t lines) {
  constexpr int kRw = kForWrite ? 1 : 0;
  switch (lines) {
    case 4:
      __builtin_prefetch(blk + 192, kRw);
      [[fallthrough]];
    case 3:
      __builtin_prefetch(blk + 128, kRw);
      [[fallthrough]];
    case 2:
      __builtin_prefetch(blk + 64, kRw);
      [[fallthrough]];
    default:
      __builtin_prefetch(blk, kRw);
  }
}

// Whether the row's key length field holds `n` (an atomic word load: racy
// outside the bucket lock, like every read here).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool KeyLengthIs(const std::byte* row,
                                                     size_t n,
                                                     uint32_t key_len_word,
                                                     uint32_t key_len_shift,
                                                     uint64_t key_len_mask) {
  return ((LoadWord(row + key_len_word) >> key_len_shift) & key_len_mask) == n;
}

// Whether the row's key is `key`: length field and bytes, read with atomic
// word loads (racy outside the bucket lock: confirm with the seqlock). The
// key bytes start on a word: whole words are compared and the last one
// under a mask (the bytes after the key in that word belong to the row,
// never to the caller's key).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool KeyWordsEqual(
    const std::byte* row, absl::string_view key, uint32_t key_offset,
    uint32_t key_len_word, uint32_t key_len_shift, uint64_t key_len_mask) {
  const size_t n = key.size();
  if (!KeyLengthIs(row, n, key_len_word, key_len_shift, key_len_mask)) {
    return false;
  }
  const std::byte* k = row + key_offset;
  const char* d = key.data();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (LoadWord(k + i) != LoadLittle64(d + i)) return false;
  }
  if (i == n) return true;
  const size_t tail = n - i;
  return (LoadWord(k + i) & ((uint64_t{1} << (8 * tail)) - 1)) ==
         LoadTail(d + i, tail);
}

inline uint64_t LoadSeqHead(const std::byte* blk, std::memory_order order) {
  return std::atomic_ref<uint64_t>(
             *reinterpret_cast<uint64_t*>(
                 const_cast<std::byte*>(blk + kBlockSeqHeadOffset)))
      .load(order);
}

// The Row internals the fast path fills.
class RowAccess {
 public:
  static bool Shaped(const Row& row, const FastFindView& v) {
    return row.layout_ == v.layout && row.bytes_.size() == v.stride;
  }
  static std::byte* Bytes(Row* row) { return row->bytes_.data(); }
  static void SetFound(Row* row) {
    row->present_ = true;
    row->key_in_bytes_ = true;
  }
  static void SetAbsent(Row* row) { row->present_ = false; }
};

enum class FastRead { kAbsent, kFound, kUndecided };

// The lookup of `key` in bucket `b` (prefetched), the key's length and the
// Row's shape already checked.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FastRead FastFindInBucket(
    const FastFindView& v, uint32_t b, absl::string_view key, Row* row) {
  const std::byte* blk = v.block(b);
  const uint64_t w1 = LoadSeqHead(blk, std::memory_order_acquire);
  uint32_t r = HeadOf(w1);
  // Unrolled: straight-line code, no step counter.
#pragma GCC unroll 4
  for (int steps = 0; steps < kFastChainSteps; ++steps) {
    if (r == 0) {  // absent, if the pass was consistent
      std::atomic_thread_fence(std::memory_order_acquire);
      if (ABSL_PREDICT_FALSE((SeqOf(w1) & 1) != 0 ||
                             LoadSeqHead(blk, std::memory_order_relaxed) !=
                                 w1)) {
        return FastRead::kUndecided;
      }
      RowAccess::SetAbsent(row);
      return FastRead::kAbsent;
    }
    if (ABSL_PREDICT_FALSE(r > v.capacity)) return FastRead::kUndecided;
    const std::byte* p = v.row_ptr(r - 1);
    if (!KeyWordsEqual(p, key, v.key_offset, v.key_len_word, v.key_len_shift,
                       v.key_len_mask)) {
      r = static_cast<uint32_t>(LoadField(p, v.next_offset, 4));
      continue;
    }
    SharedReadRow(p, RowAccess::Bytes(row), v.stride);
    std::atomic_thread_fence(std::memory_order_acquire);
    // String lengths are not checked here: one more load of the row, from
    // the copy or the shared row, cost 50 ns a lookup (bench/README.md,
    // "Seventh session"). A length over its column exists only in a
    // corrupted segment; Row's accessors bound every length they read
    // (operator[] reads it as empty, GetString answers DataLoss).
    const bool bad = (SeqOf(w1) & 1) != 0 ||
                     LoadSeqHead(blk, std::memory_order_relaxed) != w1;
    if (ABSL_PREDICT_FALSE(bad)) return FastRead::kUndecided;
    RowAccess::SetFound(row);
    return FastRead::kFound;
  }
  return FastRead::kUndecided;
}

// The whole common lookup: key length, Row shape, bucket, prefetch, chain.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline FastRead FastFind(const FastFindView& v,
                                                      absl::string_view key,
                                                      Row* row) {
  // One test for an empty key, a key too long and a view that decides
  // nothing (max_key_bytes 0): size - 1 wraps for an empty key.
  if (ABSL_PREDICT_FALSE(key.size() - 1 >= v.max_key_bytes ||
                         !RowAccess::Shaped(*row, v))) {
    return FastRead::kUndecided;
  }
  const uint32_t b = BucketOf(StableHash(key), v.bucket_count);
  PrefetchLines</*kForWrite=*/false>(v.block(b), v.prefetch_lines);
  return FastFindInBucket(v, b, key, row);
}

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_FAST_FIND_H_
