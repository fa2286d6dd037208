// Incr's memo, written in a header so that Table::Incr's common case (a key
// this thread incremented before) inlines into the caller.
//
// Why: a thread that increments one key over and over (a global request
// counter, a busy client's rate limit) would hash the key and walk its
// chain every time before the lock's compare-and-swap can start, and on a
// hot key that chain of dependent steps, not the lock, is most of the call:
// 40 ns of work around a 3 ns lock on this project's test host, which is
// what two processes on one key then queue behind (bench/README.md, "Tenth
// session" and "Eleventh session").
//
// So each thread keeps the last kIncrMemoEntries keys whose Incr took the
// short path (core_write.cc): the table, the column, the key's bytes, its
// bucket's lock and seq_head words, its row, the seq_head word as it was,
// and the owner token the thread locks with (with the fork epoch it was
// claimed in). An Incr that finds its key here goes straight to that row
// and trusts it only if
//   - the row is live and holds the key (read as a reader reads, before the
//     lock). The state is read with acquire before the key (a writer stores
//     the key, then makes the row live with a release store:
//     TableCore::PublishRowLive), so a row that reads live shows the key it
//     was made live with;
//   - under the bucket lock, the bucket's seq_head word is still the one
//     remembered: no chain and no key of the bucket changed since the key
//     was looked up (every such change moves the sequence), so the row was
//     in the key's chain when it was read above and still is. The key check
//     stays although the sequence would do alone: it keeps a sequence that
//     wrapped round (2^32 changes of one bucket) from sending the add to
//     another key's row.
// The seq_head word is not read before the lock: it shares a cache line
// with the lock word, and on a key two processes increment, reading that
// line before the compare-and-swap would fetch it twice (shared, then
// owned) instead of once.
// Anything else returns false, nothing changed: the caller then takes the
// short path, which looks the key up afresh and remembers it again. The add
// itself is the short path's (AddToField below): one store of an aligned
// word, with the same crash points.
//
// The memo is process-local (thread_local), constant-initialized and
// trivially destructible, never in shared memory. A table is named in it by
// its core's id (never reused within a process), so a closed table's
// entries never match again; a forked child inherits entries that name the
// same mapped rows, and finds the remembered token's fork epoch is not its
// own: it looks the key up once and remembers it with its own token.
#ifndef SHMKIT_TABLE_INTERNAL_FAST_INCR_H_
#define SHMKIT_TABLE_INTERNAL_FAST_INCR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/owner_lock.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/table/internal/fast_find.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/internal/row_io.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::internal {

inline constexpr int kIncrMemoEntries = 4;
// Longer keys are not remembered (they take the short path every time).
inline constexpr size_t kIncrMemoKeyBytes = 40;
// How long an Incr waits for a held bucket lock before taking the general
// path: a holder on the memo's or the short path is a few dozen
// instructions from letting go, so under a hot key (two processes on one
// row) waiting a little keeps both on the fast paths. Bounded: a holder
// that was descheduled costs at most this many CPU pauses.
inline constexpr int kIncrSpinPauses = 128;

// A key's first and last 8 bytes (overlapping for keys under 16 bytes;
// under 8, its bytes and its size): equal for equal keys and, for keys of
// one size up to 16 bytes, only for equal keys. Reads only the key's own
// bytes.
struct KeyWords {
  uint64_t first = 0;
  uint64_t last = 0;
};
ABSL_ATTRIBUTE_ALWAYS_INLINE inline KeyWords WordsOf(absl::string_view key) {
  const char* p = key.data();
  const size_t n = key.size();
  KeyWords w{0, n};
  if (n >= 8) {
    std::memcpy(&w.first, p, 8);
    std::memcpy(&w.last, p + n - 8, 8);
  } else if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    w.first = lo | (uint64_t{hi} << 32);
  } else {
    for (size_t i = 0; i < n; ++i) {
      w.first = (w.first << 8) | static_cast<uint8_t>(p[i]);
    }
  }
  return w;
}

// The key's size and the int column (index, offset, width) in one word.
inline constexpr uint64_t IncrShape(size_t key_size, int column,
                                    uint32_t offset, uint32_t width) {
  return (uint64_t{offset} << 32) | (uint64_t{width} << 24) |
         (static_cast<uint64_t>(static_cast<uint32_t>(column) & 0xffff)
          << 8) |
         key_size;
}
static_assert(kIncrMemoKeyBytes < 256);

struct IncrMemoEntry {
  KeyWords words;
  uint64_t shape = 0;    // IncrShape
  uint64_t core_id = 0;  // 0: empty (ids start at 1)
  uint64_t epoch = 0;    // ForkEpoch() when `token` was this thread's
  uint64_t* lock = nullptr;
  const uint64_t* seq_head = nullptr;
  std::byte* row = nullptr;
  uint64_t seq_word = 0;
  OwnerToken token;                  // registry_.Self() in this thread
  // For a key of 9 to 16 bytes in a table whose key bytes start on a word:
  // the row's second key word under `tail_mask` reads `row_tail` (the key's
  // bytes 8 .. size-1), so the row's key is checked with two word compares
  // and no loop (RememberedKeyIs). tail_mask 0 for other keys: the general
  // compare runs.
  uint64_t tail_mask = 0;
  uint64_t row_tail = 0;
  char key[kIncrMemoKeyBytes] = {};  // the whole key (compared past 16)
};

struct IncrMemo {
  IncrMemoEntry entries[kIncrMemoEntries];
  uint32_t next = 0;      // the entry the next Remember overwrites
  uint32_t last_hit = 0;  // probed first; spared by that
  uint64_t hits = 0;      // IncrMemoHits()
};

inline constinit thread_local IncrMemo tls_incr_memo;

// How many of this thread's Incr calls took the memo's path, for the tests
// that must know which path ran.
inline uint64_t IncrMemoHits() { return tls_incr_memo.hits; }

// What the memo's path needs of a table: made by the core when it is
// opened, held by value in Table. Points into the core (its registry), so
// it lives exactly as long as the core. core_id 0: nothing is remembered
// (no core, a read-only handle, a table with TTLs).
struct FastIncrView {
  uint64_t core_id = 0;
  uint64_t fingerprint = 0;  // the schema's: what an IntColumn must carry
  ProcessRegistry* registry = nullptr;
  uint32_t state_offset = 0;
  uint32_t key_offset = 0;
  uint32_t key_len_word = 0;
  uint32_t key_len_shift = 0;
  uint64_t key_len_mask = 0;
  bool key_words_aligned = false;  // the key's bytes start on a word
};

// Whether `row` holds `key` (TableCore::KeyEquals, from the view).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool RowKeyIs(const FastIncrView& v,
                                                  const std::byte* row,
                                                  absl::string_view key) {
  if (ABSL_PREDICT_TRUE(v.key_words_aligned)) {
    return KeyWordsEqual(row, key, v.key_offset, v.key_len_word,
                         v.key_len_shift, v.key_len_mask);
  }
  return KeyLengthIs(row, key.size(), v.key_len_word, v.key_len_shift,
                     v.key_len_mask) &&
         SharedEquals(row, v.key_offset, key.data(), key.size());
}

// Under the bucket lock, on a row known to hold the key: adds `delta` to
// the int field at `offset` (`width` bytes) and stores it. False (nothing
// stored) when the sum leaves the column's width. The short path's add too.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool AddToField(std::byte* p,
                                                    uint32_t offset,
                                                    uint32_t width,
                                                    int64_t delta,
                                                    int64_t* result) {
  MaybeCrash(CrashPoint::kLockedBeforeRecord);
  if (ABSL_PREDICT_TRUE(width == 8 && (offset & 7) == 0)) {
    // A whole aligned word: readers copy it whole, so one store publishes.
    if (ABSL_PREDICT_FALSE(__builtin_add_overflow(
            static_cast<int64_t>(LoadWord(p + offset)), delta, result))) {
      return false;
    }
    StoreWord(p + offset, static_cast<uint64_t>(*result));
  } else {
    const int64_t now = SignExtend(LoadField(p, offset, width), width);
    const int64_t hi = IntMax(width);
    if (ABSL_PREDICT_FALSE(__builtin_add_overflow(now, delta, result) ||
                           *result < -hi - 1 || *result > hi)) {
      return false;
    }
    StoreField(p, offset, width, static_cast<uint64_t>(*result));
  }
  MaybeCrash(CrashPoint::kAfterSingleStore);
  return true;
}

// Whether `row` holds `key`, the key of memo entry `e`: RowKeyIs, with a
// key of 9 to 16 bytes compared as the two words the entry keeps for it.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool RememberedKeyIs(
    const FastIncrView& v, const IncrMemoEntry& e, const std::byte* row,
    absl::string_view key) {
  if (ABSL_PREDICT_TRUE(e.tail_mask != 0)) {
    const std::byte* k = row + v.key_offset;
    return LoadWord(k) == e.words.first &&
           (LoadWord(k + 8) & e.tail_mask) == e.row_tail &&
           KeyLengthIs(row, key.size(), v.key_len_word, v.key_len_shift,
                       v.key_len_mask);
  }
  return RowKeyIs(v, row, key);
}

// Whether memo entry `e` is `key` (with `words` and `shape`) in the table
// `core_id` names.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool EntryIs(const IncrMemoEntry& e,
                                                 uint64_t core_id,
                                                 absl::string_view key,
                                                 const KeyWords& words,
                                                 uint64_t shape) {
  return e.words.first == words.first && e.words.last == words.last &&
         e.shape == shape && e.core_id == core_id &&
         (key.size() <= 16 ||
          std::memcmp(e.key, key.data(), key.size()) == 0);
}

// The entry other than the last hit that is `key` (EntryIs), made the last
// hit; kIncrMemoEntries when there is none.
ABSL_ATTRIBUTE_NOINLINE inline uint32_t FindIncrMemoEntry(
    uint64_t core_id, absl::string_view key, const KeyWords& words,
    uint64_t shape) {
  IncrMemo& memo = tls_incr_memo;
  for (uint32_t i = 0; i < kIncrMemoEntries; ++i) {
    if (i != memo.last_hit && EntryIs(memo.entries[i], core_id, key, words,
                                      shape)) {
      memo.last_hit = i;
      return i;
    }
  }
  return kIncrMemoEntries;
}

// The memo's path for an Incr without a TTL of int column `column` (at
// `offset`, `width` bytes: fields that passed IsIntColumn, or the memo
// would not hold them). True once the add is stored (*result is the new
// value); false when nothing changed: take the short path.
//
// The protocol is the short path's, with the memo's row in place of the
// chain walk: the row, read as a reader reads, must be live and hold the
// key; then the lock, and under it the bucket's seq_head word must still be
// the one the key's lookup read (so the row was and still is in the key's
// chain). The row's state and key, which nobody writes while the key stays,
// are read before the lock, and the lock's cache line (lock, seq_head) is
// first touched by the compare-and-swap: under the lock only that line and
// the counter's are touched, which is what two processes on one key pass
// between them.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool IncrRemembered(
    const FastIncrView& v, absl::string_view key, int column, uint32_t offset,
    uint32_t width, int64_t delta, int64_t* result) {
  if (v.core_id == 0 || key.size() > kIncrMemoKeyBytes) return false;
  IncrMemo& memo = tls_incr_memo;
  const KeyWords words = WordsOf(key);
  const uint64_t shape = IncrShape(key.size(), column, offset, width);
  // The last hit first: a hot key is found at the first probe; the other
  // entries are searched out of line, keeping what a caller's loop inlines
  // short.
  uint32_t i = memo.last_hit;
  if (ABSL_PREDICT_FALSE(
          !EntryIs(memo.entries[i], v.core_id, key, words, shape))) {
    i = FindIncrMemoEntry(v.core_id, key, words, shape);
    if (i == kIncrMemoEntries) return false;
  }
  IncrMemoEntry& e = memo.entries[i];
  const uint32_t state_word = v.state_offset & ~uint32_t{7};
  if (ABSL_PREDICT_FALSE(
          e.epoch != ForkEpoch() ||
          ((std::atomic_ref<uint64_t>(
                *reinterpret_cast<uint64_t*>(e.row + state_word))
                .load(std::memory_order_acquire) >>
            ((v.state_offset - state_word) * 8)) &
           0xffff) != kRowLive ||
          !RememberedKeyIs(v, e, e.row, key))) {
    // Another process's token (a forked child), or the key left the row:
    // the short path looks it up again and remembers it here.
    e.core_id = 0;
    return false;
  }
  OwnerLock lock(e.lock, v.registry);
  if (ABSL_PREDICT_FALSE(!lock.TryLockSpinning(e.token, kIncrSpinPauses))) {
    return false;
  }
  bool done = false;
  if (ABSL_PREDICT_TRUE(Load(*e.seq_head, std::memory_order_relaxed) ==
                        e.seq_word)) {
    done = AddToField(e.row, offset, width, delta, result);
    memo.hits += done;
  } else {
    e.core_id = 0;
  }
  // Unlock fails only when the word no longer holds our token, and only a
  // waiter that found this process dead replaces it (owner_lock.h): never
  // while we run, unless a supervisor misused MarkDead on a live pid (it is
  // for reaped children). The add is stored either way and no record
  // exists to undo it, so the status is dropped, as OwnerLockGuard drops it.
  (void)lock.Unlock(e.token);
  return done;
}

// Puts an Incr that took the short path into this thread's memo, `token`
// being this thread's (registry Self()) in this process. Takes the key's
// own entry if it has one (a hit that found the lock busy falls back to
// the short path with its entry intact), else an empty entry (never used,
// or found stale), else the oldest one other than the last hit; the key
// becomes the last hit.
inline void RememberIncr(const FastIncrView& v, absl::string_view key,
                         int column, uint32_t offset, uint32_t width,
                         uint64_t* lock, const uint64_t* seq_head,
                         std::byte* row, uint64_t seq_word,
                         OwnerToken token) {
  if (v.core_id == 0 || key.size() > kIncrMemoKeyBytes) return;
  IncrMemo& memo = tls_incr_memo;
  const KeyWords words = WordsOf(key);
  const uint64_t shape = IncrShape(key.size(), column, offset, width);
  uint32_t i = 0;
  while (i < kIncrMemoEntries &&
         !EntryIs(memo.entries[i], v.core_id, key, words, shape)) {
    ++i;
  }
  if (i == kIncrMemoEntries) {
    i = 0;
    while (i < kIncrMemoEntries && memo.entries[i].core_id != 0) ++i;
  }
  if (i == kIncrMemoEntries) {
    if (memo.next == memo.last_hit) {
      memo.next = (memo.next + 1) % kIncrMemoEntries;
    }
    i = memo.next;
    memo.next = (memo.next + 1) % kIncrMemoEntries;
  }
  IncrMemoEntry& e = memo.entries[i];
  e.words = words;
  e.shape = shape;
  e.core_id = v.core_id;
  e.epoch = ForkEpoch();
  e.lock = lock;
  e.seq_head = seq_head;
  e.row = row;
  e.seq_word = seq_word;
  e.token = token;
  if (v.key_words_aligned && key.size() > 8 && key.size() <= 16) {
    // The key's bytes 8 .. size-1 as the row's second key word holds them
    // (little-endian, as LoadWord reads on the hosts this builds for): the
    // last 8 bytes shifted past the ones the first word already covers.
    const size_t shift = 8 * (16 - key.size());
    e.tail_mask = ~uint64_t{0} >> shift;
    e.row_tail = words.last >> shift;
  } else {
    e.tail_mask = 0;
    e.row_tail = 0;
  }
  std::memcpy(e.key, key.data(), key.size());
  memo.last_hit = i;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_FAST_INCR_H_
