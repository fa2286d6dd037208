#include "tools/shmkit/bench/workload.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "tools/shmkit/cli.h"

namespace shmkit::cli::bench {

std::vector<std::pair<std::string, std::string>> WorkloadNames() {
  return {
      {"read-heavy", "99 % Get, 1 % Set of preloaded keys"},
      {"mixed", "90 % Get, 10 % Set"},
      {"write-heavy", "50 % Get, 50 % Set"},
      {"get-only", "100 % Get of preloaded keys"},
      {"set-only", "100 % Set (update) of preloaded keys"},
      {"hot-key", "every worker increments one row"},
      {"user-get",
       "100 % whole-row Get of preloaded keys taken from a pre-built array "
       "in a random permutation (as a server looks up keys)"},
      {"user-get-column", "user-get reading the int column only"},
      {"user-incr", "Incr of preloaded keys in user-get's order"},
      {"user-mixed", "user-get's keys: 90 % Get, 10 % Set"},
      {"ttl-churn",
       "sessions with a TTL (--session-ttl): 90 % Get, re-created when "
       "expired; 10 % refresh"},
      {"capacity",
       "insert sequential keys until refused (--table-capacity rows); "
       "reports the fill reached"},
      {"counter:atomic", "AtomicCounter::Add(1) vs a raw fetch_add"},
      {"counter:sem", "SemCounter::Add(1) vs a raw semop pair around an add"},
      {"queue:<spec>",
       "half the workers send, half receive, through the queue of <spec> "
       "(e.g. queue:sysv, queue:ring:slots=4096,slot_bytes=256, "
       "queue:redis:url=redis://127.0.0.1:6379/0,private), vs the "
       "transport's raw system calls (redis: RPUSH / BLPOP)"},
  };
}

std::vector<std::string> DefaultSuite() {
  std::vector<std::string> suite = {
      "read-heavy", "mixed",     "write-heavy", "user-get",
      "user-incr",  "hot-key",   "ttl-churn",   "capacity",
      "counter:atomic", "counter:sem"};
  if (QueuesAvailable()) {
    suite.push_back("queue:sysv");
    suite.push_back("queue:ring");
  }
  return suite;
}

absl::StatusOr<Workload> MakeWorkload(absl::string_view name,
                                      const BenchOptions& options) {
  absl::string_view rest = name;
  if (absl::ConsumePrefix(&rest, "counter:")) {
    return MakeCounterWorkload(rest, options);
  }
  if (absl::ConsumePrefix(&rest, "queue:")) {
    return MakeQueueWorkload(rest, options);
  }
  for (const auto& [known, summary] : WorkloadNames()) {
    if (known == name) return MakeTableWorkload(name, options);
  }
  std::vector<std::string> names;
  for (const auto& [known, summary] : WorkloadNames()) names.push_back(known);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown workload \"", name,
                   "\" (known: ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<std::vector<VariantResult>> RunWorkload(
    Workload& workload, const BenchOptions& options) {
  std::vector<VariantResult> results;
  for (std::unique_ptr<Variant>& variant : workload.variants) {
    VariantResult r;
    r.workload = workload.name;
    r.variant = variant->name();
    r.baseline = variant->is_baseline();
    r.ratio_base = workload.ratio_base;
    if (!options.baselines && variant->is_baseline()) continue;
    if (std::string why = variant->unavailable(); !why.empty()) {
      r.skipped = true;
      r.skip_reason = why;
      results.push_back(std::move(r));
      continue;
    }
    if (options.progress) {
      // Creating and preloading a table takes a moment: say so.
      Print(absl::StrCat("\r\033[K  ", workload.name, "/", r.variant,
                         ": setting up"));
      std::fflush(stdout);
    }
    SHMKIT_RETURN_IF_ERROR(variant->Setup());
    RunConfig config;
    config.workers = options.workers;
    config.total_ops = options.total_ops;
    config.duration = options.duration;
    config.sample_every = options.sample_every;
    config.clock = options.clock;
    config.interrupted = options.interrupted;
    config.progress = options.progress;
    config.label = absl::StrCat(workload.name, "/", r.variant);
    variant->Adjust(config);
    absl::StatusOr<RunResult> run = RunWorkers(config, variant->Hooks());
    if (!run.ok()) {
      variant->Teardown();
      return run.status();
    }
    r.workers = run->workers;
    r.ops = run->ops;
    r.errors = run->errors;
    r.elapsed_s = run->elapsed_s;
    r.first_error = run->first_error;
    r.ops_per_s = static_cast<double>(run->ops) / run->elapsed_s;
    r.ns_per_op = run->ops == 0 ? 0
                                : run->elapsed_s * 1e9 * run->workers /
                                      static_cast<double>(run->ops);
    const std::vector<std::string> kinds = variant->kinds();
    for (size_t k = 0; k < kinds.size() && k < kMaxKinds; ++k) {
      r.kinds.push_back({kinds[k], run->per_kind[k]});
      r.latency.Merge(run->per_kind[k]);
    }
    absl::Status finished = variant->Finish(*run, r);
    variant->Teardown();
    SHMKIT_RETURN_IF_ERROR(finished);
    results.push_back(std::move(r));
  }
  // Ratios: each row's time per op over the base's.
  const VariantResult* base = nullptr;
  for (const VariantResult& r : results) {
    if (r.variant == workload.ratio_base && !r.skipped && r.ns_per_op > 0) {
      base = &r;
    }
  }
  for (VariantResult& r : results) {
    if (base != nullptr && !r.skipped && r.ns_per_op > 0) {
      r.ratio = r.ns_per_op / base->ns_per_op;
    }
  }
  return results;
}

}  // namespace shmkit::cli::bench
