// RedisCounter: the Counter interface (ipc/counter.h) over a Redis server,
// so a counter shared by the workers of one host can become one shared by
// several hosts by changing the line that opens it:
//
//   auto hits = shmkit::AtomicCounter::Create({});
//   auto hits = shmkit::RedisCounter::Open("redis://10.0.0.7:6379/0", "hits");
//
// Keys (hash tag {name}): shmkit:c:{name}:v (the value, a Redis integer),
// :meta (magic and instance id), :w (waiters) and :n:<waiter> (wake-ups).
//
// Same promises as the shared-memory counters: the range is
// [kCounterMin, kCounterMax] and every operation is atomic on the server (a
// Lua script: Add checks the range there and undoes an overshoot before
// anyone can see it); Add is never re-sent after a lost connection
// (Unavailable instead: it may or may not have counted). WaitUntil blocks on
// the server (BLPOP on a per-waiter list that every change pushes to), so a
// change wakes waiters on any host without polling; a waiter also re-reads
// the value once a second.
//
// Errors: those of Counter, plus Unavailable (server unreachable),
// DeadlineExceeded (no reply within command_timeout), PermissionDenied
// (AUTH refused), FailedPrecondition (foreign data under the name; the
// counter was removed).
#ifndef SHMKIT_REDIS_REDIS_COUNTER_H_
#define SHMKIT_REDIS_REDIS_COUNTER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/counter.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/redis/redis_options.h"

namespace shmkit {

namespace redis_internal {
class Client;
}

struct RedisCounterOptions {
  // Set when this call creates the counter; OutOfRange outside the range.
  int64_t initial_value = 0;
  OpenMode open = OpenMode::kCreateOrAttach;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration command_timeout = absl::Seconds(2);
};

class RedisCounter final : public Counter {
 public:
  // `name`: 1..200 bytes, no space, control character or brace.
  static absl::StatusOr<RedisCounter> Open(
      absl::string_view url, absl::string_view name,
      const RedisCounterOptions& options = {});

  RedisCounter(RedisCounter&&) noexcept;
  RedisCounter& operator=(RedisCounter&&) noexcept;
  ~RedisCounter() override;

  absl::StatusOr<int64_t> Add(int64_t delta) override;
  absl::StatusOr<int64_t> Get() const override;
  absl::Status Set(int64_t value) override;
  absl::StatusOr<bool> CompareAndSet(int64_t expected,
                                     int64_t desired) override;
  absl::StatusOr<int64_t> WaitUntil(absl::FunctionRef<bool(int64_t)> pred,
                                    absl::Duration timeout) override;
  absl::Status Wake() override;

  // Deletes the counter's keys; other handles then get FailedPrecondition.
  absl::Status Remove();

 private:
  struct Rep;
  explicit RedisCounter(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace shmkit

#endif  // SHMKIT_REDIS_REDIS_COUNTER_H_
