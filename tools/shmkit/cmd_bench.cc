// shmkit bench: the multi-process benchmark harness (tools/shmkit/bench/).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "tools/shmkit/bench/harness.h"
#include "tools/shmkit/bench/report.h"
#include "tools/shmkit/bench/workload.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/common_flags.h"

ABSL_FLAG(int32_t, workers, 0,
          "Worker processes; 0: one per CPU this process may run on (faults: "
          "at least 4).");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(2),
          "bench: how long each variant of each workload runs; faults: how "
          "long the campaign runs (instead of --kills).");
ABSL_FLAG(uint64_t, ops, 0,
          "Run each variant for this many operations over all workers "
          "instead of --duration (0: use --duration).");
ABSL_FLAG(uint64_t, table_capacity, 1'000'000,
          "Capacity of the table (and of the baselines' regions).");
ABSL_FLAG(uint64_t, preload, 500'000,
          "Keys present before a table workload starts (drawn from "
          "uniformly).");
ABSL_FLAG(uint32_t, key_bytes, 16, "Key length (8..64).");
ABSL_FLAG(absl::Duration, session_ttl, absl::Milliseconds(200),
          "ttl-churn: how long a session lives after its last write.");
ABSL_FLAG(uint32_t, msg_bytes, 64, "queue workloads: message size.");
ABSL_FLAG(uint32_t, sample_every, 32,
          "Time one operation in this many for the latency figures (0: no "
          "latency).");
ABSL_FLAG(bool, baselines, true,
          "Run the baselines too (--nobaselines: shmkit only, no ratios).");
ABSL_FLAG(std::string, svg, "",
          "Also write a self-contained SVG chart of ops/s per workload to "
          "this file.");
ABSL_FLAG(std::string, backend, "",
          "A redis:// URL: the table workloads also run on a Redis table in "
          "that server, beside the shared-memory one, with raw hiredis "
          "(GET / SET / INCRBY) as the baseline the ratios refer to.");
ABSL_FLAG(bool, detail, false,
          "Text output: add one latency row per operation kind (get/set, "
          "send/recv).");

namespace shmkit::cli {
namespace {

using bench::BenchOptions;

// Set by SIGINT/SIGTERM: the bench stops, removes what it created (a raw
// System V queue or semaphore set would otherwise outlive it) and exits 1.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free,
              "set from a signal handler");

extern "C" void OnInterrupt(int) {
  interrupted.store(true, std::memory_order_relaxed);
}

// Installs OnInterrupt for the bench and restores the previous handlers.
class InterruptScope {
 public:
  InterruptScope() {
    struct sigaction sa = {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  struct sigaction old_int_ = {};
  struct sigaction old_term_ = {};
};
using bench::VariantResult;

absl::Status RunBench(const Invocation& inv) {
  BenchOptions o;
  const int cpus = bench::OnlineCpus();
  const int32_t workers = absl::GetFlag(FLAGS_workers);
  if (workers < 0 || workers > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers ", workers, ": expected 0..1024"));
  }
  o.workers = workers == 0 ? cpus : workers;
  if (inv.Given("ops") && inv.Given("duration")) {
    return absl::InvalidArgumentError(
        "--ops and --duration exclude each other");
  }
  o.total_ops = absl::GetFlag(FLAGS_ops);
  if (inv.Given("ops") && o.total_ops == 0) {
    return absl::InvalidArgumentError("--ops must be positive");
  }
  o.duration = absl::GetFlag(FLAGS_duration);
  if (o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration must be positive");
  }
  o.capacity = absl::GetFlag(FLAGS_table_capacity);
  o.preload = absl::GetFlag(FLAGS_preload);
  o.key_bytes = absl::GetFlag(FLAGS_key_bytes);
  o.session_ttl = absl::GetFlag(FLAGS_session_ttl);
  o.msg_bytes = absl::GetFlag(FLAGS_msg_bytes);
  o.sample_every = absl::GetFlag(FLAGS_sample_every);
  o.baselines = absl::GetFlag(FLAGS_baselines);
  o.backend = absl::GetFlag(FLAGS_backend);
  if (!o.backend.empty() && !absl::StartsWith(o.backend, "redis://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--backend \"", o.backend, "\": expected a redis:// URL"));
  }
  o.progress = isatty(STDOUT_FILENO) == 1;

  std::vector<std::string> names = inv.args;
  if (names.empty()) names = bench::DefaultSuite();
  // Build every workload first: a bad name or spec is a usage error before
  // anything runs.
  std::vector<bench::Workload> workloads;
  for (const std::string& name : names) {
    SHMKIT_ASSIGN_OR_RETURN(bench::Workload w, bench::MakeWorkload(name, o));
    workloads.push_back(std::move(w));
  }

  o.clock = bench::CalibrateSampleClock();
  bench::ReportContext context;
  context.options = o;
  context.cpus = cpus;
  context.workloads = names;
#if defined(SHMKIT_BENCH_WITH_BOOST)
  context.boost = true;
#endif
  const bool as_json = absl::GetFlag(FLAGS_json);
  if (!as_json) {
    Print(bench::TextHeader(context));
    Print("\n");
    std::fflush(stdout);
  }

  const absl::Time start = absl::Now();
  std::vector<VariantResult> results;
  std::vector<std::string> failures;
  InterruptScope interrupt_scope;
  o.interrupted = &interrupted;
  for (bench::Workload& w : workloads) {
    if (interrupted.load()) {
      failures.push_back("interrupted: the remaining workloads did not run");
      break;
    }
    absl::StatusOr<std::vector<VariantResult>> r = bench::RunWorkload(w, o);
    if (!r.ok()) {
      failures.push_back(absl::StrCat(w.name, ": ", r.status().ToString()));
      if (!as_json) {
        PrintErr(absl::StrCat("shmkit bench: ", failures.back(), "\n"));
      }
      continue;
    }
    for (VariantResult& v : *r) results.push_back(std::move(v));
  }
  context.total_seconds = absl::ToDoubleSeconds(absl::Now() - start);

  if (as_json) {
    Print(bench::Json(context, results));
    Print("\n");
  } else {
    Print(bench::TextTable(results, absl::GetFlag(FLAGS_detail)));
    Print(absl::StrFormat("\n%d workloads in %.1f s\n", workloads.size(),
                          context.total_seconds));
  }
  if (const std::string path = absl::GetFlag(FLAGS_svg); !path.empty()) {
    const std::string svg = bench::Svg(context, results);
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
      return internal::ErrnoStatus(errno, absl::StrCat("fopen(", path, ")"));
    }
    const bool written =
        std::fwrite(svg.data(), 1, svg.size(), f) == svg.size();
    if (std::fclose(f) != 0 || !written) {
      return internal::ErrnoStatus(errno, absl::StrCat("writing ", path));
    }
  }
  uint64_t failed_ops = 0;
  for (const VariantResult& v : results) failed_ops += v.errors;
  if (!failures.empty()) {
    return absl::InternalError(
        absl::StrCat(failures.size(),
                     " workload(s) failed: ", absl::StrJoin(failures, "; ")));
  }
  if (failed_ops > 0) {
    return absl::InternalError(
        absl::StrCat(failed_ops, " operations failed (see the notes)"));
  }
  return absl::OkStatus();
}

std::string BenchDetails() {
  std::string out =
      "Forks --workers processes over fresh anonymous objects and runs each "
      "named\nworkload (default: the suite below) on shmkit and on its "
      "baselines, one\nvariant after the other, each for --duration or --ops. "
      "Prints ops/s, ns/op,\np50/p99/max latency and the ratio to the "
      "baseline; a live progress line\nwhen stdout is a terminal.\n\n"
      "workloads:\n";
  for (const auto& [name, summary] : bench::WorkloadNames()) {
    absl::StrAppend(&out, "  ", name,
                    std::string(16 - std::min<size_t>(15, name.size()), ' '),
                    Wrap(summary, 18, 79), "\n");
  }
  absl::StrAppend(
      &out,
      Wrap(absl::StrCat("default suite: ",
                        absl::StrJoin(bench::DefaultSuite(), " ")),
           0, 79),
      "\n\n",
      "baselines: floor = a 64-byte copy out of / into a row at a known "
      "index, under\na test-and-set spinlock in the row, in a region the "
      "table's size (the least a\nshared table can do); boost = "
      "boost::unordered_map in a Boost.Interprocess\nbuffer under one "
      "interprocess_mutex (when built with Boost); counters: a raw\n"
      "fetch_add, a raw semop pair around an add; queues: the transport's "
      "raw system\ncalls (the ring's baseline is a raw pipe).\n\n"
      "measuring: throughput counts every op over the whole run (ops/s = ops "
      "/ elapsed,\nns/op = workers x elapsed / ops). Latency is sampled: one "
      "op in --sample-every\nis timed with two readings of rdtsc "
      "(calibrated against CLOCK_MONOTONIC; used\nwhen the kernel's "
      "clocksource is tsc) or else clock_gettime(CLOCK_MONOTONIC),\ninto a "
      "log-bucketed histogram per worker (3 % resolution), merged by the\n"
      "master. The clock's measured cost is printed with the results: each "
      "latency\nincludes about one reading, and ns/op includes 2 x reading "
      "/ sample_every.\n\n"
      "Exit code 1 when a workload failed or any operation failed "
      "unexpectedly.");
  return out;
}

}  // namespace

std::vector<Command> BenchCommands() {
  std::vector<Command> c;
  c.push_back({.name = "bench",
               .args = "[WORKLOAD...]",
               .summary = "Benchmark shmkit with several processes, against "
                          "baselines measured in the same run.",
               .details = BenchDetails(),
               .flags = {"workers", "duration", "ops", "table_capacity",
                         "preload", "key_bytes", "session_ttl", "msg_bytes",
                         "sample_every", "baselines", "json", "svg", "detail",
                         "backend"},
               .min_args = 0,
               .max_args = -1,
               .run = RunBench});
  return c;
}

}  // namespace shmkit::cli
