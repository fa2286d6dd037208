// What a table workload does, shared by its three variants (shmkit, floor,
// Boost) so they do the same work.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_TABLE_SHAPE_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_TABLE_SHAPE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {

enum class Shape { kReadMix, kHotKey, kTtlChurn, kCapacity };

struct TableShape {
  std::string name;
  Shape shape = Shape::kReadMix;
  int read_percent = 0;  // kReadMix: Get share; kTtlChurn: Get share
  std::vector<std::string> kinds;
  // From the options.
  uint64_t capacity = 0;
  uint64_t preload = 0;  // keys 0..preload-1 exist at the start
  uint32_t key_bytes = 16;
  absl::Duration session_ttl;
  int workers = 1;
};

// The longest key the table workloads use (--key-bytes).
inline constexpr uint32_t kMaxBenchKeyBytes = 64;
// The string column's size and the bytes every write stores in it.
inline constexpr uint32_t kStringBytes = 64;
// Workload counters (WorkerContext extra slots).
inline constexpr int kExtraFirstRefused = 0;  // capacity: min key index
inline constexpr int kExtraRefused = 1;       // capacity: refused inserts
inline constexpr int kExtraInserted = 2;      // capacity: inserts done
inline constexpr int kExtraRecreated = 1;     // ttl-churn: misses re-created
inline constexpr int kExtraHits = 0;          // ttl-churn: sessions found

// Workload W's schema (plus a TTL for ttl-churn).
absl::StatusOr<Schema> ShapeSchema(const TableShape& shape);
// The initial TTL of preloaded session `i`: spread over (0, session_ttl] so
// the sessions do not all expire at once.
absl::Duration PreloadTtl(const TableShape& shape, uint64_t i);
// The keys a capacity worker inserts: index, index + workers, ... below
// capacity + workers (so every worker tries at least once past capacity).
uint64_t CapacityQuota(const TableShape& shape, int index);

// What the three table variants share: the shape and its kinds, the op
// budget of the capacity workload (every key up to capacity, plus one
// refused insert per worker), and a worker that runs Work().
class TableShapedVariant : public Variant {
 public:
  explicit TableShapedVariant(TableShape shape) : shape_(std::move(shape)) {}
  std::vector<std::string> kinds() const override { return shape_.kinds; }
  void Adjust(RunConfig& config) override {
    if (shape_.shape == Shape::kCapacity) {
      config.total_ops = shape_.capacity + shape_.workers;
    }
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.work = [this](WorkerContext& ctx) { Work(ctx); };
    return hooks;
  }

 protected:
  virtual void Work(WorkerContext& ctx) = 0;

  enum class Insert { kDone, kRefused, kFailed };
  // The capacity workload: inserts this worker's sequential keys (index,
  // index + workers, ...) with `insert(index)` until the first refusal,
  // counting inserts and refusals and the lowest refused index. `insert`
  // reports a failure itself (ctx.Error) and returns kFailed.
  template <typename InsertFn>
  void RunCapacity(WorkerContext& ctx, InsertFn insert) {
    const uint64_t quota = CapacityQuota(shape_, ctx.index());
    const uint64_t stride = static_cast<uint64_t>(shape_.workers);
    const uint64_t first = static_cast<uint64_t>(ctx.index());
    bool refused = false;
    ctx.InitExtra(kExtraFirstRefused, UINT64_MAX);
    TimedLoop(
        ctx, quota,
        [&](uint64_t i) {
          const uint64_t index = first + i * stride;
          switch (insert(index)) {
            case Insert::kDone:
              ctx.AddExtra(kExtraInserted, 1);
              break;
            case Insert::kRefused:
              ctx.SetMin(kExtraFirstRefused, index);
              ctx.AddExtra(kExtraRefused, 1);
              refused = true;
              break;
            case Insert::kFailed:
              break;
          }
          return 0;
        },
        &refused);
  }

  const TableShape shape_;
};

// How a table variant makes its table (the shared-memory one: Table::Create).
using TableOpener =
    std::function<absl::StatusOr<Table>(const Schema& schema, uint64_t capacity)>;

// "shmkit-bench-<what>-<pid>-<n>": a name no other run uses, for objects in
// a Redis server.
std::string UniqueBenchName(absl::string_view what);

// The raw hiredis baseline of --backend=redis://... (redis_workloads.cc):
// GET / SET / INCRBY on plain keys, one command per operation, doing what
// the table workload's Get / Set / Incr do. Read mixes and hot-key only.
std::unique_ptr<Variant> MakeHiredisVariant(const TableShape& shape,
                                            std::string url);

// The Boost variant (boost_map.cc): a boost::unordered_map in a
// Boost.Interprocess managed buffer under one interprocess_mutex. Without
// Boost in the build its unavailable() says so.
std::unique_ptr<Variant> MakeBoostVariant(const TableShape& shape);

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_TABLE_SHAPE_H_
