// LatencyHistogram: a log-bucketed histogram of nanosecond latencies.
//
// Buckets: values 0..15 exactly, then 16 linear sub-buckets per power of two
// up to 2^40 ns (about 18 minutes; larger values land in the last bucket).
// A value's bucket is found with one count-leading-zeros and two shifts, so
// recording costs a few nanoseconds; a percentile is reported as the middle
// of its bucket, within 1/32 (3.2 %) of the true value. The maximum, the
// count and the sum are kept exactly.
//
// Trivially copyable (plain counters) so a worker can copy its histogram
// into shared memory for the master to merge.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_HISTOGRAM_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_HISTOGRAM_H_

#include <bit>
#include <cstdint>
#include <type_traits>

namespace shmkit::cli::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kSub = 1 << kSubBits;  // 16 sub-buckets
  static constexpr int kMaxExponent = 40;
  static constexpr int kBuckets = kSub + (kMaxExponent - kSubBits + 1) * kSub;

  static int BucketOf(uint64_t ns) {
    if (ns < kSub) return static_cast<int>(ns);
    const int e = 63 - std::countl_zero(ns);  // 2^e <= ns < 2^(e+1)
    if (e > kMaxExponent) return kBuckets - 1;
    const int sub = static_cast<int>((ns >> (e - kSubBits)) & (kSub - 1));
    return kSub + (e - kSubBits) * kSub + sub;
  }
  // The smallest value in bucket `b` and the bucket's width.
  static uint64_t BucketLow(int b) {
    if (b < kSub) return static_cast<uint64_t>(b);
    const int e = (b - kSub) / kSub + kSubBits;
    const uint64_t sub = static_cast<uint64_t>((b - kSub) % kSub);
    return (uint64_t{1} << e) + (sub << (e - kSubBits));
  }
  static uint64_t BucketWidth(int b) {
    if (b < kSub) return 1;
    const int e = (b - kSub) / kSub + kSubBits;
    return uint64_t{1} << (e - kSubBits);
  }

  void Record(uint64_t ns) {
    ++counts_[BucketOf(ns)];
    ++count_;
    sum_ += ns;
    if (ns > max_) max_ = ns;
  }
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const {
    return count_ == 0 ? 0 : static_cast<double>(sum_) / count_;
  }
  // The value below which a fraction `q` (0..1) of the samples lie: the
  // middle of that bucket (exact below 16 ns), never above max(). 0 when
  // empty.
  double Percentile(double q) const;

 private:
  uint64_t counts_[kBuckets] = {};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};
static_assert(std::is_trivially_copyable_v<LatencyHistogram>,
              "workers copy their histograms into shared memory");

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_HISTOGRAM_H_
