// The Boost baseline of the table workloads: what a server gets from the
// usual off-the-shelf answer, a boost::unordered_map allocated by
// Boost.Interprocess in shared memory, under one interprocess_mutex.
//
// The map lives in a managed_external_buffer over an IPC_PRIVATE System V
// segment (marked for removal at once) rather than in a named
// managed_shared_memory object: the memory and the fork-shared mapping are
// the same, and nothing is left in /dev/shm if the run is killed. It is
// reserve()d for the table's capacity up front (its best case). For the
// capacity workload the buffer gets exactly the bytes the shmkit table of
// that capacity takes, and the report says how full the map got before
// its allocator gave out.
//
// Compiled only when CMake found Boost (SHMKIT_BENCH_WITH_BOOST); otherwise
// the variant reports "not built with Boost".
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/shmkit/bench/table_shape.h"

#if defined(SHMKIT_BENCH_WITH_BOOST)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <optional>

#include "absl/strings/str_format.h"
#include "boost/interprocess/allocators/allocator.hpp"
#include "boost/interprocess/exceptions.hpp"
#include "boost/interprocess/managed_external_buffer.hpp"
#include "boost/interprocess/sync/interprocess_mutex.hpp"
#include "boost/interprocess/sync/scoped_lock.hpp"
#include "boost/unordered_map.hpp"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/bench/bench_common.h"
#endif

namespace shmkit::cli::bench {

#if defined(SHMKIT_BENCH_WITH_BOOST)
namespace {

namespace bip = boost::interprocess;

template <size_t kCap>
struct BoostKey {
  uint32_t len = 0;
  char bytes[kCap] = {};
  friend bool operator==(const BoostKey& a, const BoostKey& b) {
    return a.len == b.len && std::memcmp(a.bytes, b.bytes, a.len) == 0;
  }
};

// A word-at-a-time multiplicative hash (two rounds for a 16-byte key).
size_t HashBytes(const char* bytes, uint32_t len) {
  uint64_t h = len;
  uint32_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 32;
  }
  for (; i < len; ++i) {
    h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001B3ull;
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

template <size_t kCap>
struct BoostKeyHash {
  size_t operator()(const BoostKey<kCap>& k) const {
    return HashBytes(k.bytes, std::min<uint32_t>(k.len, kCap));
  }
};

struct BoostValue {
  int64_t n = 0;
  double x = 0;
  int64_t expiry_ms = 0;
  uint32_t len = 0;
  char s[kStringBytes] = {};
};

template <size_t kCap>
class BoostVariant final : public TableShapedVariant {
 public:
  using Key = BoostKey<kCap>;
  using Manager = bip::managed_external_buffer::segment_manager;
  using Alloc = bip::allocator<std::pair<const Key, BoostValue>, Manager>;
  using Map = boost::unordered_map<Key, BoostValue, BoostKeyHash<kCap>,
                                   std::equal_to<Key>, Alloc>;

  explicit BoostVariant(TableShape shape)
      : TableShapedVariant(std::move(shape)) {}
  std::string name() const override { return "boost"; }
  bool is_baseline() const override { return true; }

  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(Schema schema, ShapeSchema(shape_));
    TableOptions options;
    options.capacity = shape_.capacity;
    SHMKIT_ASSIGN_OR_RETURN(TablePlan plan, Table::Plan(schema, options));
    // Capacity: the same memory as the shmkit table. Otherwise room for
    // every row with a generous allowance for nodes and buckets.
    uint64_t bytes = plan.total_bytes;
    if (shape_.shape != Shape::kCapacity) {
      bytes = std::max<uint64_t>(
          bytes, shape_.capacity * (sizeof(typename Map::value_type) + 96) +
                     (uint64_t{16} << 20));
    }
    SHMKIT_ASSIGN_OR_RETURN(Segment segment, Segment::Create({.bytes = bytes}));
    segment_.emplace(std::move(segment));
    try {
      buffer_.emplace(bip::create_only, segment_->data(), bytes);
      mutex_ = buffer_->template construct<bip::interprocess_mutex>(
          bip::anonymous_instance)();
      map_ = buffer_->template construct<Map>(bip::anonymous_instance)(
          0, BoostKeyHash<kCap>(), std::equal_to<Key>(),
          Alloc(buffer_->get_segment_manager()));
      map_->reserve(shape_.capacity);
      const uint64_t preload =
          shape_.shape == Shape::kCapacity ? 0 : shape_.preload;
      const int64_t now = CoarseNowMs();
      for (uint64_t i = 0; i < preload; ++i) {
        BoostValue v = MakeValue(static_cast<int64_t>(i));
        if (shape_.shape == Shape::kTtlChurn) {
          v.expiry_ms = now + absl::ToInt64Milliseconds(PreloadTtl(shape_, i));
        }
        map_->emplace(KeyOf(i), v);
      }
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("boost baseline: could not build the map in ", bytes,
                       " bytes: ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    if (shape_.shape == Shape::kHotKey) {
      auto it = map_->find(KeyOf(0));
      if (it == map_->end() || static_cast<uint64_t>(it->second.n) != run.ops) {
        return absl::DataLossError(
            absl::StrCat("hot-key/boost: the counter does not equal the ",
                         run.ops, " increments"));
      }
    }
    if (shape_.shape == Shape::kCapacity) {
      const uint64_t inserted = run.extra_sum[kExtraInserted];
      const uint64_t refused = run.extra_sum[kExtraRefused];
      const double fill = 100.0 * inserted / shape_.capacity;
      out.extra.push_back({"capacity", static_cast<double>(shape_.capacity)});
      out.extra.push_back({"inserted", static_cast<double>(inserted)});
      out.extra.push_back({"refused", static_cast<double>(refused)});
      out.extra.push_back({"fill_percent", fill});
      out.extra.push_back(
          {"memory_bytes", static_cast<double>(segment_->size())});
      if (inserted == shape_.capacity) {
        out.notes.push_back(
            absl::StrFormat("fitted all %d rows in the table's %d bytes",
                            inserted, segment_->size()));
      } else {
        out.notes.push_back(absl::StrFormat(
            "in the table's %d bytes: filled %d of %d rows (%.1f%%) before "
            "the allocator ran out",
            segment_->size(), inserted, shape_.capacity, fill));
      }
    }
    return absl::OkStatus();
  }

  void Teardown() override {
    map_ = nullptr;
    mutex_ = nullptr;
    buffer_.reset();
    segment_.reset();
  }

 private:
  Key KeyOf(absl::string_view bytes) const {
    Key k;
    k.len = static_cast<uint32_t>(bytes.size());
    std::memcpy(k.bytes, bytes.data(), bytes.size());
    return k;
  }
  Key KeyOf(uint64_t i) const {
    Key k;
    k.len = shape_.key_bytes;
    MakeKey(i, shape_.key_bytes, k.bytes);
    return k;
  }
  static BoostValue MakeValue(int64_t n) {
    BoostValue v;
    v.n = n;
    v.x = 0.5 * static_cast<double>(n);
    v.len = kStringBytes;
    std::memset(v.s, 'v', sizeof(v.s));
    return v;
  }

  void Work(WorkerContext& ctx) override {
    Rng rng(0x5eed0000 + ctx.index());
    KeySource& source = keys();
    Map& map = *map_;
    bip::interprocess_mutex& mutex = *mutex_;
    const uint64_t keys = std::max<uint64_t>(1, shape_.preload);
    const int read_percent = shape_.read_percent;
    BoostValue copy;
    BoostValue fresh = MakeValue(0);
    using Lock = bip::scoped_lock<bip::interprocess_mutex>;
    switch (shape_.shape) {
      case Shape::kReadMix: {
        const bool one_column = shape_.one_column;
        TimedLoop(ctx, ctx.quota(), [&](uint64_t i) {
          source.Next();
          const Key k = KeyOf(source.key());
          const bool read = static_cast<int>(rng.Below(100)) < read_percent;
          Lock lock(mutex);
          auto it = map.find(k);
          if (it == map.end()) {
            ctx.Error("boost: a preloaded key is missing");
            return read ? 0 : 1;
          }
          if (read && one_column) {
            KeepAlive(it->second.n);
            return 0;
          }
          if (read) {
            std::memcpy(&copy, &it->second, sizeof(copy));
            KeepAlive(copy);
            return 0;
          }
          it->second.n = static_cast<int64_t>(i);
          std::memcpy(it->second.s, fresh.s, sizeof(fresh.s));
          return 1;
        });
        break;
      }
      case Shape::kIncr:
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          source.Next();
          const Key k = KeyOf(source.key());
          Lock lock(mutex);
          auto it = map.find(k);
          if (it == map.end()) {
            ctx.Error("boost: a preloaded key is missing");
          } else {
            ++it->second.n;
          }
          return 0;
        });
        break;
      case Shape::kHotKey: {
        const Key k = KeyOf(0);
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          Lock lock(mutex);
          auto it = map.find(k);
          if (it == map.end()) {
            ctx.Error("boost: the hot key is missing");
          } else {
            ++it->second.n;
          }
          return 0;
        });
        break;
      }
      case Shape::kTtlChurn: {
        const int64_t ttl_ms = absl::ToInt64Milliseconds(shape_.session_ttl);
        TimedLoop(ctx, ctx.quota(), [&](uint64_t i) {
          const Key k = KeyOf(rng.Below(keys));
          const bool read = static_cast<int>(rng.Below(100)) < read_percent;
          const int64_t now = CoarseNowMs();
          Lock lock(mutex);
          auto it = map.find(k);
          if (read && it != map.end() && it->second.expiry_ms > now) {
            std::memcpy(&copy, &it->second, sizeof(copy));
            KeepAlive(copy);
            ctx.AddExtra(kExtraHits, 1);
            return 0;
          }
          if (read) ctx.AddExtra(kExtraRecreated, 1);
          fresh.n = static_cast<int64_t>(i);
          fresh.expiry_ms = now + ttl_ms;
          if (it == map.end()) {
            try {
              map.emplace(k, fresh);
            } catch (const std::exception& e) {
              ctx.Error(e.what());
            }
          } else {
            it->second = fresh;
          }
          return 1;
        });
        break;
      }
      case Shape::kCapacity:
        RunCapacity(ctx, [&](uint64_t index) {
          const Key k = KeyOf(index);
          Lock lock(mutex);
          // A table of `capacity` rows refuses the rows past it; the map
          // has no such bound, only its memory.
          if (map.size() >= shape_.capacity) return Insert::kRefused;
          try {
            if (map.emplace(k, fresh).second) return Insert::kDone;
          } catch (const bip::bad_alloc&) {
            return Insert::kRefused;
          } catch (const std::bad_alloc&) {
            return Insert::kRefused;
          }
          ctx.Error("boost: a sequential key was already present");
          return Insert::kFailed;
        });
        break;
    }
  }

  std::optional<Segment> segment_;
  std::optional<bip::managed_external_buffer> buffer_;
  bip::interprocess_mutex* mutex_ = nullptr;
  Map* map_ = nullptr;
};

}  // namespace

std::unique_ptr<Variant> MakeBoostVariant(const TableShape& shape) {
  if (shape.key_bytes <= 16) return std::make_unique<BoostVariant<16>>(shape);
  if (shape.key_bytes <= 32) return std::make_unique<BoostVariant<32>>(shape);
  return std::make_unique<BoostVariant<64>>(shape);
}

#else  // !SHMKIT_BENCH_WITH_BOOST

namespace {

class NoBoost final : public Variant {
 public:
  explicit NoBoost(TableShape shape) : shape_(std::move(shape)) {}
  std::string name() const override { return "boost"; }
  bool is_baseline() const override { return true; }
  std::vector<std::string> kinds() const override { return shape_.kinds; }
  std::string unavailable() const override {
    return "not built with Boost (Boost.Interprocess was not found when "
           "this build was configured)";
  }
  absl::Status Setup() override {
    return absl::UnimplementedError("not built with Boost");
  }
  WorkerHooks Hooks() override { return {}; }

 private:
  TableShape shape_;
};

}  // namespace

std::unique_ptr<Variant> MakeBoostVariant(const TableShape& shape) {
  return std::make_unique<NoBoost>(shape);
}

#endif  // SHMKIT_BENCH_WITH_BOOST

}  // namespace shmkit::cli::bench
