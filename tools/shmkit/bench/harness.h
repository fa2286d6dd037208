// The multi-process harness behind `shmkit bench`: forks N workers over
// objects the master created, starts them together, stops them after a
// duration or an op count, and collects what each measured.
//
// How it measures (also printed by `shmkit bench --help`):
//   - Throughput counts every operation over the whole run: ops/s = total ops
//     / elapsed, where elapsed runs from the master's start signal to the
//     moment the last worker finished its last operation. ns/op = workers x
//     elapsed / ops: the time one operation takes one worker, averaged.
//   - Latency is sampled: every `sample_every`-th operation of each worker
//     is timed with two readings of the sample clock and recorded in the
//     worker's own LatencyHistogram. The untimed operations pay only a
//     decrement and a branch. The sample clock is the TSC (rdtsc, calibrated
//     against CLOCK_MONOTONIC at start-up) when the kernel itself trusts it
//     (clocksource "tsc": invariant and synchronized across CPUs), else
//     clock_gettime(CLOCK_MONOTONIC) (vDSO). rdtsc is not serializing, so a
//     reading may move by a few cycles around the operation; figures near
//     the clock's own cost are at its resolution. The clock's cost is
//     measured at start-up and reported with the results: its share of
//     ns/op is 2 x cost / sample_every.
//   - Workers publish their op count every 1024 ops (a relaxed store to
//     their own cache line) for the progress line; the master only reads.
//
// Processes: plain fork() (no respawning: a worker that dies fails the
// run). The master forks after creating every shared object, so workers
// inherit the mappings; a worker ends with _exit() and never runs the
// master's destructors. Workers restore SIGINT and SIGTERM to their default
// action (the master may catch them to clean up: RunConfig::interrupted)
// and die with the master (PR_SET_PDEATHSIG). The control segment is
// IPC_PRIVATE and marked for removal at once, so nothing leaks even if
// everything is killed.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_HARNESS_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_HARNESS_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/shared.h"
#include "tools/shmkit/bench/histogram.h"

namespace shmkit::cli::bench {

// Operation kinds a workload times separately (get/set, send/recv...).
inline constexpr int kMaxKinds = 2;
// Workload-specific counters a worker reports (a workload names them).
inline constexpr int kExtraCounters = 4;

inline int64_t NowNs() { return internal::MonotonicNanos(); }

// The clock latency samples are read with (see the file comment).
struct SampleClock {
  std::string name = "clock_gettime(CLOCK_MONOTONIC)";
  bool tsc = false;
  double ns_per_tick = 1.0;
  double call_ns = 0;  // the cost of one reading, measured
};
// Chooses the sample clock, calibrates it and measures its cost (about
// 50 ms). Call in the master, before any fork.
SampleClock CalibrateSampleClock();

struct RunConfig {
  int workers = 1;
  // Operations over all workers; 0: run for `duration`.
  uint64_t total_ops = 0;
  absl::Duration duration = absl::Seconds(1);
  // Time one operation in this many (0: no latency sampling).
  uint32_t sample_every = 32;
  SampleClock clock;
  // Show a progress line (on stdout, which must be a terminal).
  bool progress = false;
  std::string label;  // "mixed/shmkit", for the progress line
  // How long the master waits, after the planned end, for workers to finish
  // before killing them and failing the run.
  absl::Duration grace = absl::Seconds(60);
  // When set and it becomes true (a signal handler), the run is abandoned:
  // workers are killed and RunWorkers returns Cancelled, so the caller can
  // still remove what it created.
  const std::atomic<bool>* interrupted = nullptr;
};

namespace internal_harness {
struct Runner;
}  // namespace internal_harness

// What a worker sees. One per worker process.
class WorkerContext {
 public:
  int index() const { return index_; }
  int workers() const { return workers_; }
  // The run's total op budget (0: run until StopRequested()).
  uint64_t total_ops() const { return total_ops_; }
  // This worker's share of total_ops (the remainder goes to the first ones).
  uint64_t quota() const;
  uint32_t sample_every() const { return sample_every_; }
  bool StopRequested() const {
    return shmkit::internal::Load(*stop_, std::memory_order_relaxed) != 0;
  }

  // A reading of the sample clock, in its ticks.
  uint64_t Ticks() const {
#if defined(__x86_64__)
    if (tsc_) {
      asm volatile("" ::: "memory");
      const uint64_t t = __builtin_ia32_rdtsc();
      asm volatile("" ::: "memory");
      return t;
    }
#endif
    return static_cast<uint64_t>(NowNs());
  }
  // Latency of one operation of `kind`, from two Ticks() readings.
  void RecordTicks(int kind, uint64_t start, uint64_t end) {
    const double ns =
        end > start ? static_cast<double>(end - start) * ns_per_tick_ : 0.0;
    if (kind >= 0 && kind < kMaxKinds) {
      hist_[kind].Record(static_cast<uint64_t>(ns + 0.5));
    }
  }
  // Ops that count towards throughput (TimedLoop adds them itself unless
  // told otherwise).
  void AddOps(uint64_t n) { ops_ += n; }
  void Progress(uint64_t done);
  // An unexpected failure: counted; the first message is kept.
  void Error(const absl::Status& status);
  void Error(absl::string_view message);
  uint64_t errors() const { return errors_; }
  // Workload counters (see kExtraCounters). Summed over workers unless the
  // workload takes the minimum (SetMin).
  void AddExtra(int i, uint64_t n) { extra_[i] += n; }
  void SetMin(int i, uint64_t v) {
    if (v < extra_[i]) extra_[i] = v;
  }
  void InitExtra(int i, uint64_t v) { extra_[i] = v; }
  // When this worker's measured work ended (default: when TimedLoop
  // returned). Queue consumers set it to their last data message.
  void MarkEnd() { end_ns_ = NowNs(); }

 private:
  friend struct internal_harness::Runner;
  WorkerContext() = default;

  int index_ = 0;
  int workers_ = 1;
  uint64_t total_ops_ = 0;
  uint32_t sample_every_ = 0;
  bool tsc_ = false;
  double ns_per_tick_ = 1.0;
  const uint32_t* stop_ = nullptr;
  uint64_t* progress_ = nullptr;
  uint64_t ops_ = 0;
  uint64_t errors_ = 0;
  int64_t end_ns_ = 0;
  std::string first_error_;
  std::array<uint64_t, kExtraCounters> extra_ = {};
  std::array<LatencyHistogram, kMaxKinds> hist_;
};

// What the run measured, merged over workers.
struct RunResult {
  int workers = 0;
  uint64_t ops = 0;
  uint64_t errors = 0;
  double elapsed_s = 0;
  std::array<LatencyHistogram, kMaxKinds> per_kind;
  std::array<uint64_t, kExtraCounters> extra_sum = {};
  std::array<uint64_t, kExtraCounters> extra_min = {};
  std::string first_error;
};

struct WorkerHooks {
  // Runs in each worker after fork, before the start signal (not timed).
  std::function<absl::Status(WorkerContext&)> prepare;
  // The measured work.
  std::function<void(WorkerContext&)> work;
};

// Forks the workers and runs them. Errors: a worker that could not prepare,
// died or did not finish in time (the message says which and how); the
// workers' per-op failures are counted in RunResult::errors instead.
absl::StatusOr<RunResult> RunWorkers(const RunConfig& config,
                                     const WorkerHooks& hooks);

// Runs `op(i)` (which returns the kind of the operation it did) `quota`
// times, or until the master's stop signal when `quota` is 0 or, also,
// `*local_stop` becomes true. Times every sample_every()-th call. Adds the
// ops done to the throughput count when `count_ops`.
template <typename Op>
void TimedLoop(WorkerContext& ctx, uint64_t quota, Op&& op,
               const bool* local_stop = nullptr, bool count_ops = true) {
  const uint32_t every = ctx.sample_every();
  uint32_t countdown = every;
  uint64_t i = 0;
  for (;; ++i) {
    if (quota != 0 ? i >= quota : ctx.StopRequested()) break;
    if (local_stop != nullptr && *local_stop) break;
    if (every != 0 && --countdown == 0) {
      countdown = every;
      const uint64_t t0 = ctx.Ticks();
      const int kind = op(i);
      const uint64_t t1 = ctx.Ticks();
      ctx.RecordTicks(kind, t0, t1);
    } else {
      op(i);
    }
    if (count_ops && (i & 1023) == 1023) ctx.Progress(i + 1);
  }
  ctx.MarkEnd();
  if (count_ops) {
    ctx.Progress(i);
    ctx.AddOps(i);
  }
}

// sched_getaffinity's CPU count (at least 1).
int OnlineCpus();

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_HARNESS_H_
