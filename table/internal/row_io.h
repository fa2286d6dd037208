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
inline void SharedRead(const std::byte* row, uint32_t offset, void* dst,
                       size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  size_t pos = offset;
  const size_t end = offset + n;
  while (pos < end) {
    const size_t word_start = pos & ~size_t{7};
    const uint64_t w = LoadWord(row + word_start);
    const size_t from = pos - word_start;
    const size_t take = std::min<size_t>(8 - from, end - pos);
    std::memcpy(out, reinterpret_cast<const unsigned char*>(&w) + from, take);
    out += take;
    pos += take;
  }
}

// Writes `n` bytes from `src` at `row + offset`. Caller holds the lock.
inline void SharedWrite(std::byte* row, uint32_t offset, const void* src,
                        size_t n) {
  auto* in = static_cast<const unsigned char*>(src);
  size_t pos = offset;
  const size_t end = offset + n;
  while (pos < end) {
    const size_t word_start = pos & ~size_t{7};
    const size_t from = pos - word_start;
    const size_t take = std::min<size_t>(8 - from, end - pos);
    uint64_t w;
    if (take == 8) {
      std::memcpy(&w, in, 8);
    } else {
      w = LoadWord(row + word_start);
      std::memcpy(reinterpret_cast<unsigned char*>(&w) + from, in, take);
    }
    StoreWord(row + word_start, w);
    in += take;
    pos += take;
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
  while (pos < end) {
    const size_t word_start = pos & ~size_t{7};
    const uint64_t w = LoadWord(row + word_start);
    const size_t from = pos - word_start;
    const size_t take = std::min<size_t>(8 - from, end - pos);
    if (std::memcmp(reinterpret_cast<const unsigned char*>(&w) + from, in,
                    take) != 0) {
      return false;
    }
    in += take;
    pos += take;
  }
  return true;
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
