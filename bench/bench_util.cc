#include "bench_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shmkit::bench {

void RatioReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    if (run.error_occurred) continue;
    const bool median =
        run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
    if (run.run_type == Run::RT_Aggregate && !median) continue;
    const std::string name = run.run_name.str();
    // A median overrides a single run's figure; the first single run
    // otherwise stands (repetitions each report one).
    if (median || ns_per_op_.count(name) == 0) {
      // A benchmark that measures something other than one iteration (an
      // aggregate over processes, a cost per key of a batch) reports it as
      // the counter "ns_per_op".
      const auto counter = run.counters.find("ns_per_op");
      if (counter != run.counters.end()) {
        ns_per_op_[name] = counter->second.value;
      } else {
        const double per_iter = run.GetAdjustedRealTime();  // run.time_unit
        ns_per_op_[name] =
            per_iter * 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
      }
    }
  }
  ConsoleReporter::ReportRuns(runs);
}

int RatioReporter::PrintRatios(std::ostream& out) const {
  int missed = 0;
  out << "\nRatios (same run; median when repeated):\n";
  out << absl::StrFormat("%-52s %12s %12s %8s %8s  %s\n", "benchmark", "ns/op",
                         "baseline", "ratio", "target", "");
  for (const Ratio& r : ratios_) {
    auto a = ns_per_op_.find(r.name);
    auto b = ns_per_op_.find(r.baseline);
    if (a == ns_per_op_.end() || b == ns_per_op_.end()) continue;
    const double ratio =
        r.inverse ? b->second / a->second : a->second / b->second;
    std::string verdict;
    if (r.max_ratio > 0) {
      const bool ok = r.inverse ? ratio >= r.max_ratio : ratio <= r.max_ratio;
      verdict = ok ? "ok" : "MISSED";
      if (!ok) ++missed;
    }
    out << absl::StrFormat(
        "%-52s %12.1f %12.1f %7.2f%s %8s  %s\n", r.name, a->second, b->second,
        ratio, r.inverse ? "x" : " ",
        r.max_ratio > 0
            ? absl::StrFormat("%s%.2f", r.inverse ? ">=" : "<=", r.max_ratio)
            : "-",
        verdict);
    out << absl::StrFormat("  %s\n", "vs " + r.baseline);
  }
  return missed;
}

Contender::Contender(
    const std::function<void(const std::atomic<bool>& stop)>& body)
    : flags_(*Segment::Create({.bytes = 4096})) {
  auto* flags = static_cast<std::atomic<bool>*>(flags_.data());
  new (&flags[0]) std::atomic<bool>(false);  // stop
  new (&flags[1]) std::atomic<bool>(false);  // started
  fflush(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    flags[1].store(true);
    body(flags[0]);
    _exit(0);
  }
  while (!flags[1].load()) sched_yield();
}

bool Contender::Stop() {
  if (pid_ <= 0) return true;
  static_cast<std::atomic<bool>*>(flags_.data())[0].store(true);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Contender::~Contender() { Stop(); }

int RunWithRatios(int argc, char** argv, std::vector<Ratio> ratios) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter(std::move(ratios));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios(std::cout);
  benchmark::Shutdown();
  return 0;
}

namespace {

// What this process may have made and not removed: System V segments it
// created (their creator pid), semaphore sets and queues created since
// `since` (their ctime; those record no creator pid), and the benchmarks'
// own /dev/shm objects (the Boost baselines).
std::vector<std::string> IpcObjects(int64_t since) {
  std::vector<std::string> out;
  const std::string self = std::to_string(getpid());
  for (const char* kind : {"shm", "sem", "msg"}) {
    std::ifstream in(absl::StrCat("/proc/sysvipc/", kind));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::istringstream words(line);
      for (std::string w; words >> w;) f.push_back(w);
      if (f.size() < 2) continue;
      bool ours = false;
      if (std::string_view(kind) == "shm") {
        ours = f.size() > 4 && f[4] == self;  // cpid
      } else {
        // ctime: the last column for sem and msg.
        int64_t ctime = 0;
        ours = absl::SimpleAtoi(f.back(), &ctime) && ctime >= since;
      }
      if (ours) out.push_back(absl::StrCat(kind, " id ", f[1]));
    }
  }
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/dev/shm", ec)) {
    if (absl::StrContains(entry.path().filename().string(), "shmkit-bench")) {
      out.push_back(entry.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

LeakCheck::LeakCheck()
    : since_(static_cast<int64_t>(time(nullptr))),
      before_(IpcObjects(since_)) {}

bool LeakCheck::Check() const {
  const std::vector<std::string> after = IpcObjects(since_);
  std::vector<std::string> left;
  std::set_difference(after.begin(), after.end(), before_.begin(),
                      before_.end(), std::back_inserter(left));
  if (left.empty()) {
    std::printf("\nleft behind: nothing (System V objects and /dev/shm)\n");
    return true;
  }
  std::fprintf(stderr, "\nleft behind by this run:\n");
  for (const std::string& o : left) std::fprintf(stderr, "  %s\n", o.c_str());
  return false;
}

}  // namespace shmkit::bench
