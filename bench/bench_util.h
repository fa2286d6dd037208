// Support for shmkit's Google Benchmark binaries: every figure is read as a
// ratio to a baseline measured in the same run (the machines are shared and
// noisy; absolute numbers move, ratios much less).
#ifndef SHMKIT_BENCH_BENCH_UTIL_H_
#define SHMKIT_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "shmkit/ipc/segment.h"

namespace shmkit::bench {

// One ratio to report: `name`'s time over `baseline`'s, with the target it
// should meet (ratio <= max_ratio), or, when `at_least` is set, the
// speed-up baseline/name that should be reached.
struct Ratio {
  std::string name;
  std::string baseline;
  double max_ratio = 0;  // 0: report only
  bool inverse = false;  // report baseline/name (a speed-up) instead
};

// Console output as usual, plus a ratio table at the end. Uses the median
// aggregate when repetitions are on, else the single run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(std::vector<Ratio> ratios)
      : ratios_(std::move(ratios)) {}
  void ReportRuns(const std::vector<Run>& runs) override;
  // Prints the table; returns the number of targets missed.
  int PrintRatios(std::ostream& out) const;

 private:
  std::vector<Ratio> ratios_;
  std::map<std::string, double> ns_per_op_;  // by run name (no aggregate)
};

// Runs `body` in a forked child until Stop(), so a benchmark can measure
// the parent while another process contends. `body` gets a flag to poll.
class Contender {
 public:
  explicit Contender(
      const std::function<void(const std::atomic<bool>& stop)>& body);
  ~Contender();  // stops if needed
  // Stops the child and waits for it; false if it did not exit cleanly.
  bool Stop();

 private:
  Segment flags_;
  pid_t pid_ = -1;
};

// Records the System V objects and /dev/shm entries of this run that exist
// when it is made; Check() reports (on stderr) and returns false when the
// run left new ones behind. Make it first thing in main().
class LeakCheck {
 public:
  LeakCheck();
  bool Check() const;

 private:
  int64_t since_;
  std::vector<std::string> before_;
};

// Runs the benchmarks given on the command line with a RatioReporter over
// `ratios` and returns the process exit code (0; targets are reported, not
// enforced: a benchmark is not a test).
int RunWithRatios(int argc, char** argv, std::vector<Ratio> ratios);

}  // namespace shmkit::bench

#endif  // SHMKIT_BENCH_BENCH_UTIL_H_
