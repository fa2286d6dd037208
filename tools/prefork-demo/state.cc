#include "tools/prefork-demo/state.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/queue/factory.h"

namespace shmkit::demo {
namespace {

// Offsets from the base key (state.h).
enum KeyOffset {
  kWorkersKey = 0,
  kTasksKey,
  kTaskIdsKey,
  kDeathsKey,
  kUnconfirmedKey,
  kSessionsKey,
  kRateLimitsKey,
  kHitsKey,
  kKeyCount,
};

// Keyed segments outlive us: when a later step of the set-up fails, the ones
// already made are removed again (anonymous ones vanish by themselves).
class Rollback {
 public:
  template <typename Object>
  Object Keep(Object object) {
    if (!object.segment().key().is_private()) {
      shmids_.push_back(object.segment().id());
    }
    return object;
  }
  absl::Status Fail(absl::Status status) {
    for (int id : shmids_) (void)Segment::RemoveId(id);
    shmids_.clear();
    return status;
  }

 private:
  std::vector<int> shmids_;
};

absl::Status Context(const absl::Status& status, absl::string_view what,
                     IpcKey key) {
  return absl::Status(status.code(),
                      absl::StrCat("creating the ", what, " (key ",
                                   key.ToString(), "): ", status.message()));
}

absl::StatusOr<Table> MakeTable(const Schema::Builder& builder,
                                uint64_t capacity, IpcKey key,
                                absl::string_view what, Rollback& rollback) {
  absl::StatusOr<Schema> schema = builder.Build();
  if (!schema.ok()) return rollback.Fail(schema.status());
  absl::StatusOr<Table> table =
      Table::Create(*schema, {.capacity = capacity, .key = key});
  if (!table.ok()) return rollback.Fail(Context(table.status(), what, key));
  return rollback.Keep(std::move(*table));
}

absl::StatusOr<AtomicCounter> MakeCounter(IpcKey key, absl::string_view what,
                                          Rollback& rollback) {
  absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create({.key = key});
  if (!counter.ok()) return rollback.Fail(Context(counter.status(), what, key));
  return rollback.Keep(std::move(*counter));
}

absl::StatusOr<HitState> MakeHitState(const StateOptions& options, IpcKey key,
                                      Rollback& rollback) {
  // Session ids are 32 hex digits; the rate-limit key is the client's
  // address (an IPv6 address takes at most 45 characters).
  absl::StatusOr<Table> sessions = MakeTable(
      Schema::Builder()
          .String("user", kMaxUserBytes)
          .Int("hits")
          .MaxKeyBytes(32)
          .WithTtl(),
      options.sessions, KeyAt(key, kSessionsKey), "sessions table", rollback);
  if (!sessions.ok()) return sessions.status();
  absl::StatusOr<Table> rate_limits =
      MakeTable(Schema::Builder().Int("requests").MaxKeyBytes(64).WithTtl(),
                options.clients, KeyAt(key, kRateLimitsKey), "rate-limit table",
                rollback);
  if (!rate_limits.ok()) return rate_limits.status();
  absl::StatusOr<AtomicCounter> hits =
      MakeCounter(KeyAt(key, kHitsKey), "hits counter", rollback);
  if (!hits.ok()) return hits.status();
  return HitState{std::move(*sessions), std::move(*rate_limits),
                  std::move(*hits)};
}

}  // namespace

IpcKey KeyAt(IpcKey base, int offset) {
  return base.is_private() ? base : IpcKey::FromNumber(base.value() + offset);
}

absl::StatusOr<HitState> CreateHitState(const StateOptions& options,
                                        IpcKey key) {
  Rollback rollback;
  return MakeHitState(options, key, rollback);
}

absl::StatusOr<SharedState> CreateSharedState(const StateOptions& options,
                                              bool shared_hits) {
  const IpcKey key = options.key;
  if (!key.is_private() && int64_t{key.value()} + kKeyCount > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--key ", key.ToString(), " leaves no room for ",
                     int{kKeyCount}, " consecutive keys"));
  }
  Rollback rollback;
  absl::StatusOr<Table> workers =
      MakeTable(Schema::Builder()
                    .Int("pid")
                    .Int("incarnation")
                    .Int("requests")
                    .Int("connections")
                    .Int("unsent"),
                static_cast<uint64_t>(options.workers), KeyAt(key, kWorkersKey),
                "workers table", rollback);
  if (!workers.ok()) return workers.status();
  // One row per worker from the start, so /stats lists them all.
  for (int i = 0; i < options.workers; ++i) {
    if (absl::Status st = workers->Set(absl::StrCat(i), {{"pid", 0}});
        !st.ok()) {
      return rollback.Fail(st);
    }
  }
  absl::StatusOr<Table> tasks =
      MakeTable(Schema::Builder()
                    .String("status", 8)
                    .String("input", kMaxTaskBytes)
                    .String("result", kMaxTaskBytes)
                    .Int("worker")
                    .MaxKeyBytes(20)
                    .WithTtl(),
                options.tasks, KeyAt(key, kTasksKey), "tasks table", rollback);
  if (!tasks.ok()) return tasks.status();
  absl::StatusOr<AtomicCounter> task_ids =
      MakeCounter(KeyAt(key, kTaskIdsKey), "task-id counter", rollback);
  if (!task_ids.ok()) return task_ids.status();
  absl::StatusOr<AtomicCounter> deaths =
      MakeCounter(KeyAt(key, kDeathsKey), "deaths counter", rollback);
  if (!deaths.ok()) return deaths.status();
  absl::StatusOr<AtomicCounter> unconfirmed =
      MakeCounter(KeyAt(key, kUnconfirmedKey), "unconfirmed counter", rollback);
  if (!unconfirmed.ok()) return unconfirmed.status();
  std::optional<HitState> hit;
  if (shared_hits) {
    absl::StatusOr<HitState> made = MakeHitState(options, key, rollback);
    if (!made.ok()) return made.status();
    hit = std::move(*made);
  }
  // The queue comes last: nothing after it can fail, so it never needs to be
  // rolled back.
  absl::StatusOr<std::unique_ptr<Queue>> queue = OpenQueue(options.queue_spec);
  if (!queue.ok()) {
    return rollback.Fail(absl::Status(
        queue.status().code(),
        absl::StrCat("opening the task queue \"", options.queue_spec,
                     "\": ", queue.status().message())));
  }
  if (const size_t max = (*queue)->Capabilities().max_message_bytes;
      max < kMaxTaskMessageBytes) {
    (void)(*queue)->Remove();
    return rollback.Fail(absl::InvalidArgumentError(absl::StrCat(
        "the task queue \"", options.queue_spec, "\" takes messages of up to ",
        max, " bytes; tasks need ", kMaxTaskMessageBytes)));
  }
  return SharedState{std::move(*workers),     std::move(*tasks),
                     std::move(*task_ids),    std::move(*deaths),
                     std::move(*unconfirmed), std::move(*queue),
                     std::move(hit)};
}

absl::Status RemoveAll(SharedState& state, const StateOptions& options) {
  // The queue goes in every case: a keyed queue would outlive us, and an
  // anonymous one is destroyed by Close() in its creator anyway.
  absl::Status result = state.queue->Remove();
  result.Update(state.queue->Close());
  if (options.key.is_private()) return result;
  result.Update(state.workers.Remove());
  result.Update(state.tasks.Remove());
  result.Update(state.task_ids.Remove());
  result.Update(state.deaths.Remove());
  result.Update(state.unconfirmed.Remove());
  if (state.hit.has_value()) {
    result.Update(state.hit->sessions.Remove());
    result.Update(state.hit->rate_limits.Remove());
    result.Update(state.hit->hits.Remove());
  }
  return result;
}

}  // namespace shmkit::demo
