// counter:atomic and counter:sem: every worker adds 1 to one shared counter.
// Baselines: a raw fetch_add on an int64 in a segment, and a raw semop pair
// (SEM_UNDO) around a plain add. Each run checks the sum invariant: the
// counter ends at the number of adds.
#include <sys/sem.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/ipc/semaphore.h"
#include "tools/shmkit/bench/bench_common.h"
#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {
namespace {

absl::Status CheckSum(absl::string_view label, int64_t value, uint64_t ops,
                      VariantResult& out) {
  if (value < 0 || static_cast<uint64_t>(value) != ops) {
    return absl::DataLossError(absl::StrCat(label, ": the counter holds ",
                                            value, " after ", ops, " adds"));
  }
  out.notes.push_back(absl::StrCat("check: counter = ", ops, " = adds"));
  return absl::OkStatus();
}

template <typename CounterT>
class CounterVariant final : public Variant {
 public:
  explicit CounterVariant(std::string workload)
      : workload_(std::move(workload)) {}
  std::string name() const override { return "shmkit"; }
  std::vector<std::string> kinds() const override { return {"add"}; }
  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(CounterT counter, CounterT::Create());
    counter_.emplace(std::move(counter));
    return absl::OkStatus();
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.work = [this](WorkerContext& ctx) {
      CounterT& counter = *counter_;
      TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
        absl::StatusOr<int64_t> v = counter.Add(1);
        if (!v.ok()) ctx.Error(v.status());
        return 0;
      });
    };
    return hooks;
  }
  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    SHMKIT_ASSIGN_OR_RETURN(int64_t value, counter_->Get());
    return CheckSum(absl::StrCat(workload_, "/shmkit"), value, run.ops, out);
  }
  void Teardown() override { counter_.reset(); }

 private:
  std::string workload_;
  std::optional<CounterT> counter_;
};

class RawFetchAdd final : public Variant {
 public:
  std::string name() const override { return "raw fetch_add"; }
  bool is_baseline() const override { return true; }
  std::vector<std::string> kinds() const override { return {"add"}; }
  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(Segment segment, Segment::Create({.bytes = 64}));
    segment_.emplace(std::move(segment));
    return absl::OkStatus();
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.work = [this](WorkerContext& ctx) {
      std::atomic_ref<int64_t> value(*Value());
      TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
        KeepAlive(value.fetch_add(1, std::memory_order_seq_cst) + 1);
        return 0;
      });
    };
    return hooks;
  }
  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    return CheckSum("counter:atomic/raw", *Value(), run.ops, out);
  }
  void Teardown() override { segment_.reset(); }

 private:
  int64_t* Value() const { return static_cast<int64_t*>(segment_->data()); }
  std::optional<Segment> segment_;
};

class RawSemop final : public Variant {
 public:
  std::string name() const override { return "raw semop"; }
  bool is_baseline() const override { return true; }
  std::vector<std::string> kinds() const override { return {"add"}; }
  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(Segment segment, Segment::Create({.bytes = 64}));
    segment_.emplace(std::move(segment));
    SHMKIT_ASSIGN_OR_RETURN(SemaphoreSet sem,
                            SemaphoreSet::Create({.initial_values = {1}}));
    sem_.emplace(std::move(sem));
    return absl::OkStatus();
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.work = [this](WorkerContext& ctx) {
      const int id = sem_->id();
      volatile int64_t* value = Value();
      TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
        sembuf down{0, -1, SEM_UNDO};
        if (semop(id, &down, 1) != 0) {
          ctx.Error(shmkit::internal::ErrnoStatus(errno, "semop(-1)"));
          return 0;
        }
        *value = *value + 1;
        sembuf up{0, 1, SEM_UNDO};
        if (semop(id, &up, 1) != 0) {
          ctx.Error(shmkit::internal::ErrnoStatus(errno, "semop(+1)"));
        }
        return 0;
      });
    };
    return hooks;
  }
  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    return CheckSum("counter:sem/raw", *Value(), run.ops, out);
  }
  void Teardown() override {
    sem_.reset();
    segment_.reset();
  }

 private:
  int64_t* Value() const { return static_cast<int64_t*>(segment_->data()); }
  std::optional<Segment> segment_;
  std::optional<SemaphoreSet> sem_;
};

}  // namespace

absl::StatusOr<Workload> MakeCounterWorkload(absl::string_view kind,
                                             const BenchOptions&) {
  Workload w;
  w.name = absl::StrCat("counter:", kind);
  if (kind == "atomic") {
    w.variants.push_back(
        std::make_unique<CounterVariant<AtomicCounter>>(w.name));
    w.variants.push_back(std::make_unique<RawFetchAdd>());
    w.ratio_base = "raw fetch_add";
  } else if (kind == "sem") {
    w.variants.push_back(std::make_unique<CounterVariant<SemCounter>>(w.name));
    w.variants.push_back(std::make_unique<RawSemop>());
    w.ratio_base = "raw semop";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown counter workload \"counter:", kind,
                     "\" (known: counter:atomic, counter:sem)"));
  }
  return w;
}

}  // namespace shmkit::cli::bench
