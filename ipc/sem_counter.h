// SemCounter: a 64-bit value in a segment guarded by a System V semaphore.
//
// The pattern many System V programs use, done right:
// - the count lives in shared memory, never in the semaphore's value (which
//   stops at SEMVMX = 32767);
// - the semaphore is taken with SEM_UNDO, so when a holder dies the kernel
//   releases it;
// - a "held by" word, set while holding and cleared before releasing, tells
//   the next holder that the previous one died inside the critical section
//   (Holder::previous_holder_died()), and dead_holders() counts such deaths.
//   The value itself is a single aligned store, so a death never tears it.
//
// Reads (Get, WaitUntil) load the value without the semaphore: every write is
// one atomic store of a complete value, so a read is always some value that
// was stored.
//
// Lifetime: the semaphore set cannot be deferred-removed like a segment, so
// an anonymous SemCounter's set is removed when the creating process
// destroys the counter; if that process is killed, the set leaks until
// `ipcrm -s` (the segment itself never leaks). Keyed counters (segment and
// set share the key) live until Remove().
#ifndef SHMKIT_IPC_SEM_COUNTER_H_
#define SHMKIT_IPC_SEM_COUNTER_H_

#include <sys/types.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/counter.h"
#include "shmkit/ipc/internal/counter_layout.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/ipc/semaphore.h"

namespace shmkit {

class SemCounter final : public Counter {
 public:
  static absl::StatusOr<SemCounter> Create(const CounterOptions& options = {});
  static absl::StatusOr<SemCounter> Attach(
      IpcKey key, const ObjectAttachOptions& options = {});
  static absl::StatusOr<SemCounter> AttachId(
      int shmid, const ObjectAttachOptions& options = {});

  // A moved-from counter answers FailedPrecondition to every call (and 0
  // to dead_holders() / last_dead_holder()). A Holder must not outlive, or
  // see moved, the counter it holds.
  SemCounter(SemCounter&& other) noexcept
      : segment_(std::move(other.segment_)),
        sem_(std::move(other.sem_)),
        body_(std::exchange(other.body_, nullptr)) {}
  SemCounter& operator=(SemCounter&& other) noexcept {
    if (this != &other) {
      segment_ = std::move(other.segment_);
      sem_ = std::move(other.sem_);
      body_ = std::exchange(other.body_, nullptr);
    }
    return *this;
  }

  // Holds the counter's semaphore for a scope (released by the destructor).
  // For read-modify-write sequences longer than one call.
  class Holder {
   public:
    Holder(Holder&& other) noexcept
        : counter_(std::exchange(other.counter_, nullptr)),
          previous_died_(other.previous_died_),
          dead_pid_(other.dead_pid_) {}
    Holder& operator=(Holder&&) = delete;
    Holder(const Holder&) = delete;
    ~Holder();

    int64_t value() const;
    // Stores `value` (nothing else changes until the holder releases).
    void set_value(int64_t value);
    // Whether the previous holder died while holding the semaphore.
    bool previous_holder_died() const { return previous_died_; }
    pid_t dead_holder_pid() const { return dead_pid_; }

   private:
    friend class SemCounter;
    Holder(SemCounter* counter, bool previous_died, pid_t dead_pid)
        : counter_(counter),
          previous_died_(previous_died),
          dead_pid_(dead_pid) {}
    SemCounter* counter_;
    bool previous_died_;
    pid_t dead_pid_;
  };

  // Takes the semaphore (blocking, or at most `timeout`: DeadlineExceeded).
  // FailedPrecondition when the set was removed.
  absl::StatusOr<Holder> Lock();
  absl::StatusOr<Holder> LockFor(absl::Duration timeout);

  absl::StatusOr<int64_t> Add(int64_t delta) override;
  absl::StatusOr<int64_t> Get() const override;
  absl::Status Set(int64_t value) override;
  absl::StatusOr<bool> CompareAndSet(int64_t expected,
                                     int64_t desired) override;
  absl::StatusOr<int64_t> WaitUntil(absl::FunctionRef<bool(int64_t)> pred,
                                    absl::Duration timeout) override;
  absl::Status Wake() override;

  // How many holders died holding the semaphore, and the last one's pid.
  uint64_t dead_holders() const;
  pid_t last_dead_holder() const;

  // Removes a keyed counter's segment and semaphore set.
  absl::Status Remove();
  const Segment& segment() const { return segment_; }
  const SemaphoreSet& semaphores() const { return sem_; }

 private:
  SemCounter(Segment segment, SemaphoreSet sem);
  absl::StatusOr<Holder> Acquired();
  void Release();
  static absl::Status MovedFrom() { return CounterMovedFrom("SemCounter"); }

  Segment segment_;
  SemaphoreSet sem_;
  internal::CounterBody* body_;  // nullptr once moved from
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_SEM_COUNTER_H_
