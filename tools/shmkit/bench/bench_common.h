// Small pieces every workload uses: a fast PRNG, key formatting, a
// test-and-set spinlock for the floor, a compiler barrier.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_BENCH_COMMON_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_BENCH_COMMON_H_

#include <time.h>

#include <atomic>
#include <cstdint>

#include "absl/numeric/int128.h"
#include "shmkit/ipc/internal/cpu_relax.h"

namespace shmkit::cli::bench {

// xorshift64*: a few cycles per number, plenty for choosing keys.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull | 1) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [0, n) (multiply-shift: no division).
  uint64_t Below(uint64_t n) {
    return absl::Uint128High64(absl::uint128(Next()) * n);
  }

 private:
  uint64_t s_;
};

// The key of index `i`: `len` lower-case hex digits, zero-padded (so keys
// are fixed-size and printable, and `len` >= 16 covers every 64-bit index).
inline void MakeKey(uint64_t i, uint32_t len, char* out) {
  static constexpr char kPairs[] =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
      "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
      "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
      "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
      "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
      "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
      "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
  int p = static_cast<int>(len);
  while (p >= 2) {
    const unsigned b = static_cast<unsigned>(i & 0xff);
    out[p - 2] = kPairs[2 * b];
    out[p - 1] = kPairs[2 * b + 1];
    i >>= 8;
    p -= 2;
  }
  if (p == 1) out[0] = kPairs[2 * (i & 0xf) + 1];
}

// Keeps the compiler from dropping a computation whose result is unused.
template <typename T>
inline void KeepAlive(const T& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

// A test-and-set spinlock on a word in shared memory: the floor's lock.
// No owner, no recovery: the least a lock can be.
inline void TasLock(uint64_t& word) {
  std::atomic_ref<uint64_t> w(word);
  while (w.exchange(1, std::memory_order_acquire) != 0) {
    while (w.load(std::memory_order_relaxed) != 0) internal::CpuRelax();
  }
}
inline void TasUnlock(uint64_t& word) {
  std::atomic_ref<uint64_t>(word).store(0, std::memory_order_release);
}

// Milliseconds on CLOCK_MONOTONIC_COARSE (a few ns, tick resolution): the
// baselines' clock for TTLs.
inline int64_t CoarseNowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_BENCH_COMMON_H_
