// Reading and writing row bytes in shared memory without data races.
//
// Readers copy rows while a writer may be changing them (the seqlock then
// tells them to retry). By the C++ memory model, a plain memcpy racing with a
// write is undefined behaviour; so both sides move row bytes with relaxed
// 8-byte atomic accesses on aligned words (rows are 8-aligned and their
// stride is a multiple of 8), and the seqlock's fences order them (Boehm,
// "Can Seqlocks Get Along With Programming Language Memory Models?", 2012).
// On x86-64 a relaxed aligned 8-byte load or store is an ordinary mov, so
// this costs about what memcpy does for row-sized copies.
//
// Only the holder of a bucket's lock writes that bucket's rows; partial
// words are therefore written read-merge-store without a race on the merge.
#ifndef SHMKIT_TABLE_INTERNAL_ROW_IO_H_
#define SHMKIT_TABLE_INTERNAL_ROW_IO_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace shmkit::internal {

inline uint64_t LoadWord(const std::byte* aligned) {
  return std::atomic_ref<uint64_t>(
             *reinterpret_cast<uint64_t*>(const_cast<std::byte*>(aligned)))
      .load(std::memory_order_relaxed);
}

inline void StoreWord(std::byte* aligned, uint64_t value) {
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(aligned))
      .store(value, std::memory_order_relaxed);
}

// Copies `n` bytes starting at `row + offset` into `dst`. `row` is 8-aligned.
// Whole words move with one load and one (inlined) 8-byte copy each; only
// the partial words at either end go byte by byte.
inline void SharedRead(const std::byte* row, uint32_t offset, void* dst,
                       size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  size_t pos = offset;
  const size_t end = offset + n;
  if ((pos & 7) != 0 && pos < end) {
    const size_t word_start = pos & ~size_t{7};
    const uint64_t w = LoadWord(row + word_start);
    const auto* src = reinterpret_cast<const unsigned char*>(&w);
    for (size_t i = pos - word_start; i < 8 && pos < end; ++i, ++pos)
      *out++ = src[i];
  }
  for (; pos + 32 <= end; pos += 32, out += 32) {
    const uint64_t w0 = LoadWord(row + pos), w1 = LoadWord(row + pos + 8),
                   w2 = LoadWord(row + pos + 16), w3 = LoadWord(row + pos + 24);
    std::memcpy(out, &w0, 8);
    std::memcpy(out + 8, &w1, 8);
    std::memcpy(out + 16, &w2, 8);
    std::memcpy(out + 24, &w3, 8);
  }
  for (; pos + 8 <= end; pos += 8, out += 8) {
    const uint64_t w = LoadWord(row + pos);
    std::memcpy(out, &w, 8);
  }
  if (pos < end) {
    const uint64_t w = LoadWord(row + pos);
    const auto* src = reinterpret_cast<const unsigned char*>(&w);
    for (size_t i = 0; pos < end; ++i, ++pos) *out++ = src[i];
  }
}

// Writes `n` bytes from `src` at `row + offset`. Caller holds the lock, so
// partial words can be merged (load, patch, store) without a race.
inline void SharedWrite(std::byte* row, uint32_t offset, const void* src,
                        size_t n) {
  const auto* in = static_cast<const unsigned char*>(src);
  size_t pos = offset;
  const size_t end = offset + n;
  if ((pos & 7) != 0 && pos < end) {
    const size_t word_start = pos & ~size_t{7};
    uint64_t w = LoadWord(row + word_start);
    auto* dst = reinterpret_cast<unsigned char*>(&w);
    for (size_t i = pos - word_start; i < 8 && pos < end; ++i, ++pos)
      dst[i] = *in++;
    StoreWord(row + word_start, w);
  }
  for (; pos + 8 <= end; pos += 8, in += 8) {
    uint64_t w;
    std::memcpy(&w, in, 8);
    StoreWord(row + pos, w);
  }
  if (pos < end) {
    const size_t tail = pos;  // 8-aligned here
    uint64_t w = LoadWord(row + tail);
    auto* dst = reinterpret_cast<unsigned char*>(&w);
    for (size_t i = 0; pos < end; ++i, ++pos) dst[i] = *in++;
    StoreWord(row + tail, w);
  }
}

// Zeroes `n` bytes at `row + offset`. Caller holds the lock.
inline void SharedZero(std::byte* row, uint32_t offset, size_t n) {
  static constexpr unsigned char kZeros[64] = {};
  while (n > 0) {
    const size_t take = std::min<size_t>(n, sizeof(kZeros));
    SharedWrite(row, offset, kZeros, take);
    offset += static_cast<uint32_t>(take);
    n -= take;
  }
}

// Whether the `n` bytes at `row + offset` equal `data` (racy: confirm with
// the seqlock before trusting a match).
inline bool SharedEquals(const std::byte* row, uint32_t offset,
                         const void* data, size_t n) {
  const auto* in = static_cast<const unsigned char*>(data);
  size_t pos = offset;
  const size_t end = offset + n;
  if ((pos & 7) != 0 && pos < end) {
    const size_t word_start = pos & ~size_t{7};
    const uint64_t w = LoadWord(row + word_start);
    const auto* src = reinterpret_cast<const unsigned char*>(&w);
    for (size_t i = pos - word_start; i < 8 && pos < end; ++i, ++pos) {
      if (src[i] != *in++) return false;
    }
  }
  for (; pos + 8 <= end; pos += 8, in += 8) {
    uint64_t want;
    std::memcpy(&want, in, 8);
    if (LoadWord(row + pos) != want) return false;
  }
  if (pos < end) {
    const uint64_t w = LoadWord(row + pos);
    const auto* src = reinterpret_cast<const unsigned char*>(&w);
    for (size_t i = 0; pos < end; ++i, ++pos) {
      if (src[i] != *in++) return false;
    }
  }
  return true;
}

// Copies `words` aligned 8-byte words from shared `src` to private `dst`.
// Rows of up to 16 words (the common ones) go straight down an unrolled
// sequence, two instructions a word: lookups copy a row each.
inline void SharedReadWords(const std::byte* src, std::byte* dst,
                            size_t words) {
  if (words <= 16) {
    auto copy = [&](size_t i) {
      const uint64_t w = LoadWord(src + 8 * i);
      std::memcpy(dst + 8 * i, &w, 8);
    };
    switch (words) {
      case 16: copy(15); [[fallthrough]];
      case 15: copy(14); [[fallthrough]];
      case 14: copy(13); [[fallthrough]];
      case 13: copy(12); [[fallthrough]];
      case 12: copy(11); [[fallthrough]];
      case 11: copy(10); [[fallthrough]];
      case 10: copy(9); [[fallthrough]];
      case 9: copy(8); [[fallthrough]];
      case 8: copy(7); [[fallthrough]];
      case 7: copy(6); [[fallthrough]];
      case 6: copy(5); [[fallthrough]];
      case 5: copy(4); [[fallthrough]];
      case 4: copy(3); [[fallthrough]];
      case 3: copy(2); [[fallthrough]];
      case 2: copy(1); [[fallthrough]];
      case 1: copy(0); [[fallthrough]];
      default: return;
    }
  }
  size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    const uint64_t w0 = LoadWord(src + 8 * i), w1 = LoadWord(src + 8 * i + 8),
                   w2 = LoadWord(src + 8 * i + 16),
                   w3 = LoadWord(src + 8 * i + 24);
    std::memcpy(dst + 8 * i, &w0, 8);
    std::memcpy(dst + 8 * i + 8, &w1, 8);
    std::memcpy(dst + 8 * i + 16, &w2, 8);
    std::memcpy(dst + 8 * i + 24, &w3, 8);
  }
  for (; i < words; ++i) {
    const uint64_t w = LoadWord(src + 8 * i);
    std::memcpy(dst + 8 * i, &w, 8);
  }
}

// Copies a whole row (`bytes`: a multiple of 8) from shared `src` to private
// `dst`: the bulk copy of every seqlock read (a lookup's one copy). On
// x86-64 it moves 16 bytes per instruction, loaded by inline assembly: the
// compiler sees an opaque read of those bytes, so the C++ memory model's
// rule against racing non-atomic reads (the reason for SharedReadWords) is
// not in play, and the compiler barriers on both sides keep it between the
// seqlock's two loads of its word. The hardware keeps loads in program
// order (x86-64 TSO), which is what the seqlock needs; a copy torn by a
// writer is thrown away when the word is loaded again. Half the instructions
// of the word-by-word copy: about 50 ns of a 280 ns lookup of workload W
// (bench/README.md, "Fifth session"). Elsewhere, and for rows under 16
// bytes, SharedReadWords.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void SharedReadRow(const std::byte* src,
                                                       std::byte* dst,
                                                       size_t bytes) {
#if defined(__x86_64__)
  if (bytes >= 16) {
    asm volatile("" ::: "memory");
    auto copy16 = [&](size_t at) {
      __m128i v;
      asm volatile("movdqu %1, %0"
                   : "=x"(v)
                   : "m"(*reinterpret_cast<const __m128i*>(src + at)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + at), v);
    };
    // The last 16 bytes first (overlapping the one before when `bytes` is
    // not a multiple of 16), then the others, unrolled for rows up to 256.
    const size_t chunks = (bytes + 15) / 16;
    copy16(bytes - 16);
    if (chunks <= 16) {
      // clang-format off
      switch (chunks) {
        case 16: copy16(224); [[fallthrough]];
        case 15: copy16(208); [[fallthrough]];
        case 14: copy16(192); [[fallthrough]];
        case 13: copy16(176); [[fallthrough]];
        case 12: copy16(160); [[fallthrough]];
        case 11: copy16(144); [[fallthrough]];
        case 10: copy16(128); [[fallthrough]];
        case 9: copy16(112); [[fallthrough]];
        case 8: copy16(96); [[fallthrough]];
        case 7: copy16(80); [[fallthrough]];
        case 6: copy16(64); [[fallthrough]];
        case 5: copy16(48); [[fallthrough]];
        case 4: copy16(32); [[fallthrough]];
        case 3: copy16(16); [[fallthrough]];
        case 2: copy16(0); [[fallthrough]];
        default: break;
      }
      // clang-format on
    } else {
      for (size_t at = 0; at + 16 < bytes; at += 16) copy16(at);
    }
    asm volatile("" ::: "memory");
    return;
  }
#endif
  SharedReadWords(src, dst, bytes / 8);
}

// Plain (private memory) byte comparison, 8 bytes at a time.
inline bool BytesEqual(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (; n >= 8; n -= 8, x += 8, y += 8) {
    uint64_t u, v;
    std::memcpy(&u, x, 8);
    std::memcpy(&v, y, 8);
    if (u != v) return false;
  }
  for (; n > 0; --n) {
    if (*x++ != *y++) return false;
  }
  return true;
}

// A little-endian field read from private memory (a row copy).
inline uint64_t PlainField(const std::byte* row, uint32_t offset,
                           uint32_t bytes) {
  const uint32_t word_start = offset & ~uint32_t{7};
  uint64_t w;
  std::memcpy(&w, row + word_start, 8);
  const uint64_t mask =
      bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (bytes * 8)) - 1;
  return (w >> ((offset - word_start) * 8)) & mask;
}

// Little-endian unsigned field of 1, 2, 4 or 8 bytes at an offset aligned
// to its size (so it never crosses a word). Accessed through its containing
// 8-byte word, like everything else in a row: all atomic accesses to row
// memory have the same size and alignment.
inline uint64_t FieldMask(uint32_t bytes) {
  return bytes >= 8 ? ~uint64_t{0} : (uint64_t{1} << (bytes * 8)) - 1;
}

inline uint64_t LoadField(const std::byte* row, uint32_t offset,
                          uint32_t bytes) {
  const uint32_t word_start = offset & ~uint32_t{7};
  const uint32_t shift = (offset - word_start) * 8;
  return (LoadWord(row + word_start) >> shift) & FieldMask(bytes);
}

// The largest value of a two's-complement integer `bytes` bytes wide (the
// smallest is -IntMax(bytes) - 1).
inline int64_t IntMax(uint32_t bytes) {
  return bytes >= 8 ? INT64_MAX : (int64_t{1} << (bytes * 8 - 1)) - 1;
}

// A two's-complement integer stored in `bytes` bytes, widened.
inline int64_t SignExtend(uint64_t raw, uint32_t bytes) {
  const int shift = 64 - static_cast<int>(bytes) * 8;
  return shift <= 0 ? static_cast<int64_t>(raw)
                    : static_cast<int64_t>(raw << shift) >> shift;
}

// A float column's value from its stored bits (`bytes`: 4 or 8).
inline double FloatFromBits(uint64_t bits, uint32_t bytes) {
  if (bytes == 8) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  const uint32_t b32 = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b32, 4);
  return static_cast<double>(f);
}

// Caller holds the lock that makes it the row's only writer.
inline void StoreField(std::byte* row, uint32_t offset, uint32_t bytes,
                       uint64_t value) {
  const uint32_t word_start = offset & ~uint32_t{7};
  const uint32_t shift = (offset - word_start) * 8;
  const uint64_t mask = FieldMask(bytes) << shift;
  const uint64_t w = LoadWord(row + word_start);
  StoreWord(row + word_start, (w & ~mask) | ((value << shift) & mask));
}

// Atomically sets the field at `offset` from `expected` to `desired` if it
// holds `expected` (the rest of the word is left as it is). For the row
// state, which allocators race for.
inline bool CasField(std::byte* row, uint32_t offset, uint32_t bytes,
                     uint64_t expected, uint64_t desired) {
  const uint32_t word_start = offset & ~uint32_t{7};
  const uint32_t shift = (offset - word_start) * 8;
  const uint64_t mask = FieldMask(bytes) << shift;
  std::atomic_ref<uint64_t> word(
      *reinterpret_cast<uint64_t*>(row + word_start));
  uint64_t w = word.load(std::memory_order_relaxed);
  while (true) {
    if (((w & mask) >> shift) != expected) return false;
    const uint64_t next = (w & ~mask) | ((desired << shift) & mask);
    if (word.compare_exchange_weak(w, next, std::memory_order_acq_rel,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_ROW_IO_H_
