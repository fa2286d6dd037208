// The user-pattern table benchmarks (table_user_bench.cc), run by
// table_bench's main().
#ifndef SHMKIT_BENCH_TABLE_USER_BENCH_H_
#define SHMKIT_BENCH_TABLE_USER_BENCH_H_

#include <vector>

#include "bench_util.h"

namespace shmkit::bench {

// Decides (and, as root, allows for this run) transparent huge pages.
void SetUpUserBenchmarks();
// Destroys the tables and the Boost map, removing their segments.
void ReleaseUserFixtures();
// The issue 12 targets, as ratios.
std::vector<Ratio> UserRatios();

}  // namespace shmkit::bench

#endif  // SHMKIT_BENCH_TABLE_USER_BENCH_H_
