// Workloads of `shmkit bench`: each is run on shmkit and on its baselines
// (the variants), one after the other, each on fresh objects, so every
// figure reads as a ratio to a baseline measured in the same run.
//
//   workload        shmkit op mix                  baselines
//   read-heavy      99 % Get / 1 % Set (update)    floor, boost
//   mixed           90 % Get / 10 % Set            floor, boost
//   write-heavy     50 % Get / 50 % Set            floor, boost
//   hot-key         Incr of one row by every worker floor, boost
//   user-get        100 % whole-row Get, keys from  floor, boost
//                   a pre-built array in a random
//                   permutation (KeySource)
//   user-get-column user-get reading one column    floor, boost
//   user-incr       Incr of user-get's keys        floor, boost
//   user-mixed      user-get's keys, 90 % Get /    floor, boost
//                   10 % Set
//   ttl-churn       90 % Get (a miss re-creates     floor, boost
//                   the session with a TTL) /
//                   10 % Set refreshing the TTL
//   capacity        Add of sequential keys until   floor, boost (in the
//                   refused; reports the fill       same memory as the
//                                                   table)
//   counter:atomic  AtomicCounter::Add(1)          raw fetch_add
//   counter:sem     SemCounter::Add(1)             raw semop pair + add
//   queue:<spec>    producers Send, consumers      raw syscalls of the
//                   Receive                        same transport (redis:
//                                                  RPUSH / BLPOP)
//   get-only,       100 % Get, 100 % Set           floor, boost
//   set-only
//
// With --backend=redis://URL, each table workload also runs on a Redis
// table ("redis") and on raw hiredis ("hiredis": GET / SET / INCRBY on plain
// keys), and the ratios refer to hiredis; Boost is left out.
//
// Table workloads use workload W's shape: 16-byte keys (hex of the key
// index), rows of int64 + float64 + string(64), capacity 1,000,000 with
// 500,000 keys preloaded; keys are drawn uniformly from the preloaded ones.
//
// The floor is the least any shared table must do for an operation: a
// 64-byte copy out of (Get) or into (Set) a row at a known index, under a
// test-and-set spinlock in the row, in a region the size of the table (Incr
// on the floor: the same lock around an add). The Boost baseline is a
// boost::unordered_map in a Boost.Interprocess managed buffer under one
// interprocess_mutex, doing the same operations.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_WORKLOAD_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tools/shmkit/bench/harness.h"
#include "tools/shmkit/bench/histogram.h"

namespace shmkit::cli::bench {

struct BenchOptions {
  int workers = 1;
  uint64_t total_ops = 0;  // 0: run each variant for `duration`
  absl::Duration duration = absl::Seconds(2);
  uint32_t sample_every = 32;
  SampleClock clock;
  bool progress = false;
  uint64_t capacity = 1'000'000;
  uint64_t preload = 500'000;
  uint32_t key_bytes = 16;
  absl::Duration session_ttl = absl::Milliseconds(200);
  uint32_t msg_bytes = 64;
  bool baselines = true;
  // --backend: empty, or a redis:// URL whose server the table workloads
  // also run on (with a raw hiredis baseline) and queue workloads may name.
  std::string backend;
  // Set by a signal handler to abandon the run (see RunConfig).
  const std::atomic<bool>* interrupted = nullptr;
};

struct KindResult {
  std::string name;
  LatencyHistogram hist;
};

// One row of the report.
struct VariantResult {
  std::string workload;
  std::string variant;
  bool baseline = false;
  std::string ratio_base;  // the variant ratios are taken against
  bool skipped = false;
  std::string skip_reason;
  int workers = 0;
  uint64_t ops = 0;
  uint64_t errors = 0;
  double elapsed_s = 0;
  double ops_per_s = 0;
  double ns_per_op = 0;
  double ratio = 0;          // ns_per_op / the base's ns_per_op; 0 when none
  LatencyHistogram latency;  // every kind merged
  std::vector<KindResult> kinds;
  std::vector<std::string> notes;
  std::vector<std::pair<std::string, double>> extra;
  std::string first_error;
};

class Variant {
 public:
  virtual ~Variant() = default;
  virtual std::string name() const = 0;
  virtual bool is_baseline() const { return false; }
  // Names of the op kinds it times (index = the kind TimedLoop records).
  virtual std::vector<std::string> kinds() const = 0;
  // Why it cannot run in this build or with these options; "" when it can.
  virtual std::string unavailable() const { return ""; }
  // Master, before fork: create and fill the objects (not timed).
  virtual absl::Status Setup() = 0;
  virtual WorkerHooks Hooks() = 0;
  // Lets the variant override the run's op budget (capacity fills the
  // table whatever --ops says).
  virtual void Adjust(RunConfig& config) { (void)config; }
  // Master, after the run: invariant checks and notes. A failed invariant
  // is an error (the run's figures are then not trustworthy).
  virtual absl::Status Finish(const RunResult& run, VariantResult& out) {
    (void)run;
    (void)out;
    return absl::OkStatus();
  }
  // Master: release the objects (before the next variant is set up).
  virtual void Teardown() {}
};

struct Workload {
  std::string name;
  std::vector<std::unique_ptr<Variant>> variants;
  std::string ratio_base;  // name of the variant the ratios refer to
};

// "read-heavy", ..., "counter:atomic", "queue:ring:slots=4096". Unknown
// names and bad specs are InvalidArgument.
absl::StatusOr<Workload> MakeWorkload(absl::string_view name,
                                      const BenchOptions& options);

// Every workload name (for --help), with a line each.
std::vector<std::pair<std::string, std::string>> WorkloadNames();
// The default suite.
std::vector<std::string> DefaultSuite();

// Runs every variant of `workload` in turn.
absl::StatusOr<std::vector<VariantResult>> RunWorkload(
    Workload& workload, const BenchOptions& options);

// Builders (table_workloads.cc, counter_workloads.cc, queue_workloads.cc).
absl::StatusOr<Workload> MakeTableWorkload(absl::string_view name,
                                           const BenchOptions& options);
absl::StatusOr<Workload> MakeCounterWorkload(absl::string_view kind,
                                             const BenchOptions& options);
absl::StatusOr<Workload> MakeQueueWorkload(absl::string_view spec,
                                           const BenchOptions& options);
// The raw baseline of "queue:redis:..." (redis_workloads.cc): RPUSH / BLPOP
// of the same messages on a plain list in the same server.
std::unique_ptr<Variant> MakeRawRedisQueue(std::string url,
                                           const BenchOptions& options);
// Whether this build has queues (ipc/queue); queue workloads say why not.
bool QueuesAvailable();

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_WORKLOAD_H_
