// What a table workload does, shared by its three variants (shmkit, floor,
// Boost) so they do the same work.
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_TABLE_SHAPE_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_TABLE_SHAPE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/bench/bench_common.h"
#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {

// kIncr: Incr of a preloaded key's int column, the key drawn like a read's.
enum class Shape { kReadMix, kHotKey, kTtlChurn, kCapacity, kIncr };

struct TableShape {
  std::string name;
  Shape shape = Shape::kReadMix;
  int read_percent = 0;  // kReadMix: Get share; kTtlChurn: Get share
  // The user-* workloads: keys come from a pre-built array in a random
  // permutation (KeySource), and `one_column` reads only the int column.
  bool permuted_keys = false;
  bool one_column = false;
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

// Where a worker's keys come from (kReadMix and kIncr). Generated (the
// default workloads): an index drawn at random, its bytes written in the
// loop. Permuted (the user-* workloads): every preloaded key is built once
// into an array before the timed loop and the worker visits them through a
// random permutation of its own, the way a server looks up keys it did not
// generate (the key bytes are a cache miss, as they are for a server).
class KeySource {
 public:
  KeySource(const TableShape& shape, uint64_t seed);
  // Moves to the next key and returns its index (0..preload-1).
  uint64_t Next() {
    if (order_.empty()) {
      const uint64_t index = rng_.Below(keys_);
      MakeKey(index, key_bytes_, buf_);
      key_ = buf_;
      return index;
    }
    const uint64_t index = order_[pos_];
    pos_ = pos_ + 1 == order_.size() ? 0 : pos_ + 1;
    key_ = bytes_.data() + index * key_bytes_;
    return index;
  }
  // The bytes of the key Next() moved to.
  absl::string_view key() const { return {key_, key_bytes_}; }

 private:
  const uint64_t keys_;
  const uint32_t key_bytes_;
  Rng rng_;
  std::vector<char> bytes_;
  std::vector<uint32_t> order_;
  size_t pos_ = 0;
  const char* key_ = nullptr;
  char buf_[kMaxBenchKeyBytes];
};

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
    // The key array of the user-* workloads is built here, after fork and
    // before the start signal, so building it is not timed.
    hooks.prepare = [this](WorkerContext& ctx) {
      keys_.emplace(shape_, 0x5eed0000 + static_cast<uint64_t>(ctx.index()));
      return absl::OkStatus();
    };
    hooks.work = [this](WorkerContext& ctx) { Work(ctx); };
    return hooks;
  }

 protected:
  virtual void Work(WorkerContext& ctx) = 0;
  // This worker's keys (kReadMix, kIncr), made by the prepare hook.
  KeySource& keys() { return *keys_; }

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

 private:
  std::optional<KeySource> keys_;
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
