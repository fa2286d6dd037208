// The outputs of `shmkit bench`: a text table, JSON and a self-contained
// SVG chart.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_REPORT_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {

// How the run was configured and what the clock costs, for every output.
struct ReportContext {
  BenchOptions options;
  int cpus = 0;
  bool boost = false;
  std::vector<std::string> workloads;
  double total_seconds = 0;  // wall time of the whole bench
};

// The measurement method and configuration, a few lines.
std::string TextHeader(const ReportContext& context);
// The summary table (one row per workload and variant; with `detail`, one
// indented row per op kind), then the notes.
std::string TextTable(const std::vector<VariantResult>& results, bool detail);
std::string Json(const ReportContext& context,
                 const std::vector<VariantResult>& results);
// Horizontal bars of ops/s on a log scale, one group per workload, one bar
// per variant; no external resources (inline styles, no fonts to fetch).
std::string Svg(const ReportContext& context,
                const std::vector<VariantResult>& results);

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_REPORT_H_
