// The table's bucket hash: fixed and seedless, so every process (and every
// build of this format version) places a key in the same bucket. absl::Hash
// is seeded per process and must never be used for anything in shared
// memory. Outputs are pinned by tests/table/hash_golden_test.cc; changing
// them requires a new table layout version.
//
// Construction: the key is consumed 16 bytes at a time; each step mixes two
// little-endian 64-bit words into the state with a "folded multiply" (the
// 128-bit product of two words, high half xor low half), a standard way to
// get full avalanche from one multiplication. The tail is zero-padded and
// the length is folded in, so keys differing only in trailing zero bytes
// differ. Not a cryptographic hash: a client that chooses keys can make them
// collide; chains then grow but stay correct and bounded.
#ifndef SHMKIT_TABLE_INTERNAL_HASH_H_
#define SHMKIT_TABLE_INTERNAL_HASH_H_

#include <cstdint>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/numeric/int128.h"
#include "absl/strings/string_view.h"

namespace shmkit::internal {

// Odd constants from the hexadecimal digits of pi (no special structure).
inline constexpr uint64_t kHashK0 = 0x243f6a8885a308d3ull;
inline constexpr uint64_t kHashK1 = 0x13198a2e03707345ull;
inline constexpr uint64_t kHashK2 = 0xa4093822299f31d1ull;
inline constexpr uint64_t kHashK3 = 0x082efa98ec4e6c89ull;

inline uint64_t FoldedMultiply(uint64_t a, uint64_t b) {
  const absl::uint128 p = absl::uint128(a) * b;  // one mul on x86-64
  return absl::Uint128Low64(p) ^ absl::Uint128High64(p);
}

inline uint64_t LoadLittle64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // x86-64: little-endian already
  return v;
}

inline uint32_t LoadLittle32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Up to 7 bytes, zero-padded, little-endian: the same value as copying them
// into a zeroed word, without a variable-length copy. Overlapping loads are
// fine: an overlapping byte lands on the same bit positions both times.
inline uint64_t LoadTail(const char* p, size_t n) {
  if (n >= 4) {
    return uint64_t{LoadLittle32(p)} |
           (uint64_t{LoadLittle32(p + n - 4)} << (8 * (n - 4)));
  }
  if (n == 0) return 0;
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint64_t{u[0]} | (uint64_t{u[n / 2]} << (8 * (n / 2))) |
         (uint64_t{u[n - 1]} << (8 * (n - 1)));
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline uint64_t StableHash(absl::string_view key) {
  const char* p = key.data();
  size_t n = key.size();
  uint64_t state = kHashK0 ^ FoldedMultiply(n ^ kHashK1, kHashK2);
  while (n >= 16) {
    state =
        FoldedMultiply(LoadLittle64(p) ^ kHashK1, LoadLittle64(p + 8) ^ state);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = LoadLittle64(p);
    b = LoadTail(p + 8, n - 8);
  } else {
    a = LoadTail(p, n);
  }
  state = FoldedMultiply(a ^ kHashK2, b ^ state ^ kHashK3);
  return FoldedMultiply(state ^ kHashK1, key.size() ^ kHashK0);
}

// Bucket of a hash among `buckets` (any count below 2^32): the high 32 bits
// scaled into range with one multiplication (no modulo, no power-of-two
// restriction).
inline uint32_t BucketOf(uint64_t hash, uint32_t buckets) {
  return static_cast<uint32_t>(((hash >> 32) * uint64_t{buckets}) >> 32);
}

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_HASH_H_
