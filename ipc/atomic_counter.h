// AtomicCounter: a lock-free 64-bit counter in its own shared segment.
//
// Add is one locked instruction (no system call) unless a process is
// blocked in WaitUntil. A process killed in the middle of any
// operation leaves nothing behind: there is no lock to release.
//
// Create() before fork and use the object in every child, or create it with a
// key and Attach() from unrelated processes. An anonymous counter disappears
// when the last process that has it exits; a keyed one lives until Remove().
#ifndef SHMKIT_IPC_ATOMIC_COUNTER_H_
#define SHMKIT_IPC_ATOMIC_COUNTER_H_

#include <cstdint>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shmkit/ipc/counter.h"
#include "shmkit/ipc/internal/change_notifier.h"
#include "shmkit/ipc/internal/counter_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

class AtomicCounter final : public Counter {
 public:
  static absl::StatusOr<AtomicCounter> Create(
      const CounterOptions& options = {});
  static absl::StatusOr<AtomicCounter> Attach(
      IpcKey key, const ObjectAttachOptions& options = {});
  static absl::StatusOr<AtomicCounter> AttachId(
      int shmid, const ObjectAttachOptions& options = {});

  // A moved-from counter answers FailedPrecondition to every call.
  AtomicCounter(AtomicCounter&& other) noexcept
      : segment_(std::move(other.segment_)),
        body_(std::exchange(other.body_, nullptr)) {}
  AtomicCounter& operator=(AtomicCounter&& other) noexcept {
    if (this != &other) {
      segment_ = std::move(other.segment_);
      body_ = std::exchange(other.body_, nullptr);
    }
    return *this;
  }

  absl::StatusOr<int64_t> Add(int64_t delta) override {
    if (ABSL_PREDICT_FALSE(body_ == nullptr)) return MovedFrom();
    // Fast path: one fetch_add, checked afterwards (see the range note in
    // counter.h for why this cannot overflow). A result outside the range
    // is undone; a large delta takes the exact CAS loop.
    constexpr int64_t kSmallDelta = int64_t{1} << 32;
    if (delta <= kSmallDelta && delta >= -kSmallDelta) {
      const int64_t now = internal::Ref(body_->value)
                              .fetch_add(delta, std::memory_order_seq_cst) +
                          delta;
      if (now <= kCounterMax && now >= kCounterMin) {
        internal::NotifyIfWaiting(body_->seq, body_->wait_flag);
        return now;
      }
      internal::Ref(body_->value).fetch_sub(delta, std::memory_order_seq_cst);
      return CheckCounterRange(now, "result");
    }
    return AddChecked(delta);
  }
  absl::StatusOr<int64_t> Get() const override {
    if (ABSL_PREDICT_FALSE(body_ == nullptr)) return MovedFrom();
    return internal::Load(body_->value, std::memory_order_seq_cst);
  }
  absl::Status Set(int64_t value) override;
  absl::StatusOr<bool> CompareAndSet(int64_t expected,
                                     int64_t desired) override;
  absl::StatusOr<int64_t> WaitUntil(absl::FunctionRef<bool(int64_t)> pred,
                                    absl::Duration timeout) override;
  absl::Status Wake() override;

  // Removes a keyed counter (processes that have it keep using it).
  absl::Status Remove() { return segment_.Remove(); }
  const Segment& segment() const { return segment_; }

 private:
  explicit AtomicCounter(Segment segment);
  absl::StatusOr<int64_t> AddChecked(int64_t delta);
  static absl::Status MovedFrom() { return CounterMovedFrom("AtomicCounter"); }

  Segment segment_;
  internal::CounterBody* body_;  // nullptr once moved from
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_ATOMIC_COUNTER_H_
