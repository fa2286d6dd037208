// Table workloads: shmkit's Table, the floor, and (boost_map.cc) Boost.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/schema.h"
#include "shmkit/redis/redis_table.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/bench/bench_common.h"
#include "tools/shmkit/bench/table_shape.h"
#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {

absl::StatusOr<Schema> ShapeSchema(const TableShape& shape) {
  return Schema::Builder()
      .Int("n")
      .Float("x")
      .String("s", kStringBytes)
      .MaxKeyBytes(shape.key_bytes)
      .WithTtl(shape.shape == Shape::kTtlChurn)
      .Build();
}

absl::Duration PreloadTtl(const TableShape& shape, uint64_t i) {
  return shape.session_ttl * static_cast<double>(i % 997 + 1) / 997.0;
}

uint64_t CapacityQuota(const TableShape& shape, int index) {
  const uint64_t n = static_cast<uint64_t>(shape.workers);
  const uint64_t end = shape.capacity + n;  // exclusive
  const uint64_t w = static_cast<uint64_t>(index);
  return w >= end ? 0 : (end - w + n - 1) / n;
}

KeySource::KeySource(const TableShape& shape, uint64_t seed)
    : keys_(std::max<uint64_t>(1, shape.preload)),
      key_bytes_(shape.key_bytes),
      rng_(seed) {
  if (!shape.permuted_keys) return;
  bytes_.resize(keys_ * key_bytes_);
  for (uint64_t i = 0; i < keys_; ++i) {
    MakeKey(i, key_bytes_, bytes_.data() + i * key_bytes_);
  }
  order_.resize(keys_);
  for (uint64_t i = 0; i < keys_; ++i) order_[i] = static_cast<uint32_t>(i);
  for (uint64_t i = keys_ - 1; i > 0; --i) {
    std::swap(order_[i], order_[rng_.Below(i + 1)]);
  }
}

namespace {

std::string Payload() { return std::string(kStringBytes, 'v'); }

// Notes and checks common to the capacity runs of every variant.
void CapacityNotes(const TableShape& shape, const RunResult& run,
                   VariantResult& out) {
  const uint64_t inserted = run.extra_sum[kExtraInserted];
  const uint64_t refused = run.extra_sum[kExtraRefused];
  const double fill =
      shape.capacity == 0 ? 0 : 100.0 * inserted / shape.capacity;
  out.extra.push_back({"capacity", static_cast<double>(shape.capacity)});
  out.extra.push_back({"inserted", static_cast<double>(inserted)});
  out.extra.push_back({"refused", static_cast<double>(refused)});
  out.extra.push_back({"fill_percent", fill});
  if (refused == 0) {
    out.notes.push_back(absl::StrFormat(
        "all %d inserts succeeded (%.1f%% of capacity %d); never refused",
        inserted, fill, shape.capacity));
  } else if (inserted == shape.capacity) {
    out.notes.push_back(absl::StrFormat(
        "filled all %d rows (100%%); inserts were refused only once full "
        "(%d insert(s) refused)",
        inserted, refused));
  } else {
    const uint64_t first = run.extra_min[kExtraFirstRefused];
    out.extra.push_back({"first_refused_key", static_cast<double>(first)});
    out.notes.push_back(absl::StrFormat(
        "filled %d of %d rows (%.1f%%) before inserts were refused", inserted,
        shape.capacity, fill));
  }
}

// ---------------------------------------------------------------------------
// shmkit

class TableVariant final : public TableShapedVariant {
 public:
  // `open`: how the table is made (null: a shared-memory table).
  TableVariant(TableShape shape, std::string name = "shmkit",
               TableOpener open = nullptr)
      : TableShapedVariant(std::move(shape)),
        name_(std::move(name)),
        open_(std::move(open)) {}
  std::string name() const override { return name_; }

  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(Schema schema, ShapeSchema(shape_));
    if (open_ != nullptr) {
      SHMKIT_ASSIGN_OR_RETURN(Table table, open_(schema, shape_.capacity));
      table_.emplace(std::move(table));
    } else {
      TableOptions options;
      options.capacity = shape_.capacity;
      options.registry_slots =
          static_cast<uint32_t>(std::max(256, shape_.workers + 16));
      SHMKIT_ASSIGN_OR_RETURN(Table table, Table::Create(schema, options));
      table_.emplace(std::move(table));
    }
    const uint64_t preload =
        shape_.shape == Shape::kCapacity ? 0 : shape_.preload;
    std::vector<char> key(shape_.key_bytes);
    const std::string payload = Payload();
    for (uint64_t i = 0; i < preload; ++i) {
      MakeKey(i, shape_.key_bytes, key.data());
      SetOptions set;
      if (shape_.shape == Shape::kTtlChurn) set.ttl = PreloadTtl(shape_, i);
      SHMKIT_RETURN_IF_ERROR(table_->Set(
          absl::string_view(key.data(), key.size()),
          {{0, static_cast<long long>(i)}, {1, 0.5 * i}, {2, payload}}, set));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    if (open_ == nullptr) {
      // Which pages the table really got (random rows pay a TLB miss on
      // 4 KiB pages; see the README's "Huge pages").
      const TableStats stats = table_->Stats();
      out.extra.push_back({"page_bytes", static_cast<double>(stats.page_bytes)});
      out.notes.push_back(absl::StrFormat(
          "pages: %d KiB; %d of %d MiB on huge pages", stats.page_bytes / 1024,
          stats.huge_page_bytes >> 20, stats.memory_bytes >> 20));
    }
    switch (shape_.shape) {
      case Shape::kHotKey: {
        // Every Incr must have landed: the row's counter is the op count.
        char key[kMaxBenchKeyBytes];
        MakeKey(0, shape_.key_bytes, key);
        SHMKIT_ASSIGN_OR_RETURN(
            Value v,
            table_->GetColumn(absl::string_view(key, shape_.key_bytes), 0));
        if (static_cast<uint64_t>(v.int_value()) != run.ops) {
          return absl::DataLossError(
              absl::StrCat("hot-key/shmkit: the counter row holds ",
                           v.int_value(), " after ", run.ops, " Incr calls"));
        }
        out.notes.push_back(
            absl::StrCat("check: counter row = ", run.ops, " = Incr calls"));
        break;
      }
      case Shape::kCapacity: {
        CapacityNotes(shape_, run, out);
        const uint64_t count = table_->Count();
        out.extra.push_back({"live_rows", static_cast<double>(count)});
        if (count != shape_.capacity) {
          return absl::DataLossError(
              absl::StrCat("capacity/shmkit: the table holds ", count,
                           " rows; capacity is ", shape_.capacity));
        }
        break;
      }
      case Shape::kTtlChurn: {
        const uint64_t hits = run.extra_sum[kExtraHits];
        const uint64_t recreated = run.extra_sum[kExtraRecreated];
        out.extra.push_back({"sessions_found", static_cast<double>(hits)});
        out.extra.push_back(
            {"sessions_recreated", static_cast<double>(recreated)});
        out.notes.push_back(absl::StrFormat(
            "%.1f%% of lookups found the session expired and re-created it; "
            "%d expired rows reclaimed",
            hits + recreated == 0 ? 0.0
                                  : 100.0 * recreated / (hits + recreated),
            table_->Stats().expired_reclaimed));
        break;
      }
      case Shape::kReadMix:
      case Shape::kIncr:
        break;
    }
    return absl::OkStatus();
  }

  void Teardown() override {
    // A table opened elsewhere (a Redis server) outlives this process.
    if (open_ != nullptr && table_.has_value()) (void)table_->Remove();
    table_.reset();
  }

 private:
  void Work(WorkerContext& ctx) override {
    Table& table = *table_;
    Rng rng(0x5eed0000 + ctx.index());
    KeySource& source = keys();
    char key_buf[kMaxBenchKeyBytes];
    const absl::string_view key(key_buf, shape_.key_bytes);
    Row row;
    // Built once: a write changes only the int column, so the string value
    // is never reallocated on the hot path.
    std::vector<FieldValue> fields = {{0, 0}, {1, 0.5}, {2, Value(Payload())}};
    SetOptions with_ttl;
    with_ttl.ttl = shape_.session_ttl;
    const uint64_t keys = std::max<uint64_t>(1, shape_.preload);
    const int read_percent = shape_.read_percent;
    switch (shape_.shape) {
      case Shape::kReadMix: {
        const bool one_column = shape_.one_column;
        TimedLoop(ctx, ctx.quota(), [&](uint64_t i) {
          source.Next();
          const absl::string_view k = source.key();
          if (static_cast<int>(rng.Below(100)) < read_percent) {
            if (one_column) {
              absl::StatusOr<Value> v = table.GetColumn(k, 0);
              if (!v.ok()) ctx.Error(v.status());
              KeepAlive(v);
              return 0;
            }
            absl::StatusOr<bool> found = table.Find(k, &row);
            if (!found.ok() || !*found) {
              ctx.Error(found.ok() ? absl::NotFoundError("a preloaded key")
                                   : found.status());
            }
            return 0;
          }
          fields[0].value = Value(static_cast<long long>(i));
          if (absl::Status st = table.Set(k, fields); !st.ok()) {
            ctx.Error(st);
          }
          return 1;
        });
        break;
      }
      case Shape::kIncr:
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          source.Next();
          if (absl::StatusOr<int64_t> v = table.Incr(source.key(), 0, 1);
              !v.ok()) {
            ctx.Error(v.status());
          }
          return 0;
        });
        break;
      case Shape::kHotKey:
        MakeKey(0, shape_.key_bytes, key_buf);
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          if (absl::StatusOr<int64_t> v = table.Incr(key, 0, 1); !v.ok()) {
            ctx.Error(v.status());
          }
          return 0;
        });
        break;
      case Shape::kTtlChurn:
        TimedLoop(ctx, ctx.quota(), [&](uint64_t i) {
          MakeKey(rng.Below(keys), shape_.key_bytes, key_buf);
          fields[0].value = Value(static_cast<long long>(i));
          if (static_cast<int>(rng.Below(100)) < read_percent) {
            absl::Status st = table.Get(key, &row);
            if (st.ok()) {
              ctx.AddExtra(kExtraHits, 1);
              return 0;
            }
            if (!absl::IsNotFound(st)) {
              ctx.Error(st);
              return 0;
            }
            // The session expired: re-create it.
            ctx.AddExtra(kExtraRecreated, 1);
          }
          if (absl::Status st = table.Set(key, fields, with_ttl); !st.ok()) {
            ctx.Error(st);
          }
          return 1;
        });
        break;
      case Shape::kCapacity:
        RunCapacity(ctx, [&](uint64_t index) {
          MakeKey(index, shape_.key_bytes, key_buf);
          absl::Status st = table.Add(key, fields);
          if (st.ok()) return Insert::kDone;
          if (absl::IsResourceExhausted(st)) return Insert::kRefused;
          ctx.Error(st);
          return Insert::kFailed;
        });
        break;
    }
  }

  const std::string name_;
  const TableOpener open_;
  std::optional<Table> table_;
};

// ---------------------------------------------------------------------------
// The floor

class FloorVariant final : public TableShapedVariant {
 public:
  explicit FloorVariant(TableShape shape)
      : TableShapedVariant(std::move(shape)) {}
  std::string name() const override { return "floor"; }
  bool is_baseline() const override { return true; }

  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(Schema schema, ShapeSchema(shape_));
    TableOptions options;
    options.capacity = shape_.capacity;
    SHMKIT_ASSIGN_OR_RETURN(TablePlan plan, Table::Plan(schema, options));
    // Rows as far apart as the table's, in a region of the table's size.
    stride_ = std::max<uint64_t>((plan.row_bytes + 7) / 8 * 8,
                                 sizeof(uint64_t) + kStringBytes);
    const uint64_t bytes =
        std::max<uint64_t>(plan.total_bytes, shape_.capacity * stride_);
    SHMKIT_ASSIGN_OR_RETURN(Segment segment, Segment::Create({.bytes = bytes}));
    segment_.emplace(std::move(segment));
    base_ = static_cast<std::byte*>(segment_->data());
    // Touch every row now (as the table's creation does), so no page fault
    // lands in the measured run.
    const int64_t now = CoarseNowMs();
    for (uint64_t i = 0; i < shape_.capacity; ++i) {
      std::byte* row = Row(i);
      std::memset(row, 0, sizeof(uint64_t) + kStringBytes);
      int64_t head = static_cast<int64_t>(i);
      if (shape_.shape == Shape::kTtlChurn) {
        head = now + absl::ToInt64Milliseconds(PreloadTtl(shape_, i));
      }
      std::memcpy(row + sizeof(uint64_t), &head, sizeof(head));
    }
    if (shape_.shape == Shape::kHotKey) {
      const int64_t zero = 0;
      std::memcpy(Row(0) + sizeof(uint64_t), &zero, sizeof(zero));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    if (shape_.shape == Shape::kHotKey) {
      int64_t n;
      std::memcpy(&n, Row(0) + sizeof(uint64_t), sizeof(n));
      if (static_cast<uint64_t>(n) != run.ops) {
        return absl::DataLossError(
            absl::StrCat("hot-key/floor: the counter holds ", n, " after ",
                         run.ops, " increments"));
      }
    }
    if (shape_.shape == Shape::kCapacity) CapacityNotes(shape_, run, out);
    return absl::OkStatus();
  }

  void Teardown() override {
    segment_.reset();
    base_ = nullptr;
  }

 private:
  std::byte* Row(uint64_t i) const { return base_ + i * stride_; }
  uint64_t& Lock(std::byte* row) const {
    return *reinterpret_cast<uint64_t*>(row);
  }
  void CopyOut(std::byte* row, char* out) const {
    TasLock(Lock(row));
    std::memcpy(out, row + sizeof(uint64_t), kStringBytes);
    TasUnlock(Lock(row));
  }
  // The row's counter (its first word after the lock) plus one.
  void Increment(std::byte* row) const {
    TasLock(Lock(row));
    int64_t n;
    std::memcpy(&n, row + sizeof(uint64_t), sizeof(n));
    ++n;
    std::memcpy(row + sizeof(uint64_t), &n, sizeof(n));
    TasUnlock(Lock(row));
  }
  void CopyIn(std::byte* row, const char* in) const {
    TasLock(Lock(row));
    std::memcpy(row + sizeof(uint64_t), in, kStringBytes);
    TasUnlock(Lock(row));
  }

  void Work(WorkerContext& ctx) override {
    Rng rng(0x5eed0000 + ctx.index());
    KeySource& source = keys();
    alignas(8) char buf[kStringBytes];
    alignas(8) char src[kStringBytes];
    std::memset(src, 'v', sizeof(src));
    const uint64_t keys = std::max<uint64_t>(1, shape_.preload);
    const int read_percent = shape_.read_percent;
    switch (shape_.shape) {
      case Shape::kReadMix:
        TimedLoop(ctx, ctx.quota(), [&](uint64_t i) {
          std::byte* row = Row(source.Next());
          if (static_cast<int>(rng.Below(100)) < read_percent) {
            CopyOut(row, buf);
            KeepAlive(buf);
            return 0;
          }
          std::memcpy(src, &i, sizeof(i));
          CopyIn(row, src);
          return 1;
        });
        break;
      case Shape::kIncr:
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          Increment(Row(source.Next()));
          return 0;
        });
        break;
      case Shape::kHotKey: {
        std::byte* row = Row(0);
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          Increment(row);
          return 0;
        });
        break;
      }
      case Shape::kTtlChurn: {
        const int64_t ttl_ms = absl::ToInt64Milliseconds(shape_.session_ttl);
        TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
          std::byte* row = Row(rng.Below(keys));
          const int64_t now = CoarseNowMs();
          if (static_cast<int>(rng.Below(100)) < read_percent) {
            CopyOut(row, buf);
            int64_t expiry;
            std::memcpy(&expiry, buf, sizeof(expiry));
            if (expiry > now) {
              ctx.AddExtra(kExtraHits, 1);
              return 0;
            }
            ctx.AddExtra(kExtraRecreated, 1);
          }
          const int64_t expiry = now + ttl_ms;
          std::memcpy(src, &expiry, sizeof(expiry));
          CopyIn(row, src);
          return 1;
        });
        break;
      }
      case Shape::kCapacity:
        RunCapacity(ctx, [&](uint64_t index) {
          if (index >= shape_.capacity) return Insert::kRefused;
          std::memcpy(src, &index, sizeof(index));
          CopyIn(Row(index), src);
          return Insert::kDone;
        });
        break;
    }
  }

  std::optional<Segment> segment_;
  std::byte* base_ = nullptr;
  uint64_t stride_ = 0;
};

}  // namespace

absl::StatusOr<Workload> MakeTableWorkload(absl::string_view name,
                                           const BenchOptions& options) {
  TableShape shape;
  shape.name = std::string(name);
  shape.capacity = options.capacity;
  shape.preload = options.preload;
  shape.key_bytes = options.key_bytes;
  shape.session_ttl = options.session_ttl;
  shape.workers = options.workers;
  if (name == "read-heavy" || name == "mixed" || name == "write-heavy") {
    shape.shape = Shape::kReadMix;
    shape.read_percent = name == "read-heavy" ? 99 : name == "mixed" ? 90 : 50;
    shape.kinds = {"get", "set"};
  } else if (name == "get-only" || name == "set-only") {
    shape.shape = Shape::kReadMix;
    shape.read_percent = name == "get-only" ? 100 : 0;
    shape.kinds = {"get", "set"};
  } else if (name == "user-get" || name == "user-get-column" ||
             name == "user-mixed") {
    // The user pattern (issue 12): keys from a pre-built array in a random
    // permutation, a whole row (or one column) per read.
    shape.shape = Shape::kReadMix;
    shape.permuted_keys = true;
    shape.one_column = name == "user-get-column";
    shape.read_percent = name == "user-mixed" ? 90 : 100;
    shape.kinds = {"get", "set"};
  } else if (name == "user-incr") {
    shape.shape = Shape::kIncr;
    shape.permuted_keys = true;
    shape.kinds = {"incr"};
  } else if (name == "hot-key") {
    shape.shape = Shape::kHotKey;
    shape.kinds = {"incr"};
  } else if (name == "ttl-churn") {
    shape.shape = Shape::kTtlChurn;
    shape.read_percent = 90;
    shape.kinds = {"get", "create/refresh"};
  } else if (name == "capacity") {
    shape.shape = Shape::kCapacity;
    shape.kinds = {"insert"};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown table workload \"", name, "\""));
  }
  if (shape.capacity == 0) {
    return absl::InvalidArgumentError("--table-capacity must be positive");
  }
  if (shape.shape != Shape::kCapacity &&
      (shape.preload == 0 || shape.preload > shape.capacity)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--preload must be 1..--table-capacity (", shape.capacity,
                     "), got ", shape.preload));
  }
  if (shape.key_bytes < 8 || shape.key_bytes > kMaxBenchKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--key-bytes must be 8..", kMaxBenchKeyBytes,
                     " (keys are hex key indices), got ", shape.key_bytes));
  }
  if (shape.shape == Shape::kTtlChurn &&
      shape.session_ttl < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("--session-ttl must be at least 1ms");
  }
  Workload w;
  w.name = shape.name;
  w.ratio_base = "floor";
  w.variants.push_back(std::make_unique<TableVariant>(shape));
  w.variants.push_back(std::make_unique<FloorVariant>(shape));
  if (options.backend.empty()) {
    w.variants.push_back(MakeBoostVariant(shape));
    return w;
  }
  // --backend=redis://...: the same table over Redis, and raw hiredis
  // doing the equivalent single command, which the ratios refer to.
  const std::string url = options.backend;
  w.variants.push_back(std::make_unique<TableVariant>(
      shape, "redis", [url](const Schema& schema, uint64_t capacity) {
        return OpenRedisTable(url, UniqueBenchName("table"), schema,
                              {.capacity = capacity,
                               .open = OpenMode::kCreate,
                               .command_timeout = absl::Seconds(10)});
      }));
  w.variants.push_back(MakeHiredisVariant(shape, url));
  w.ratio_base = "hiredis";
  return w;
}

}  // namespace shmkit::cli::bench
