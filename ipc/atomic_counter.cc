#include "shmkit/ipc/atomic_counter.h"

#include "absl/strings/str_cat.h"

namespace shmkit {

using internal::CounterBody;
using internal::CounterSegmentLayout;
using internal::kCounterLayoutVersion;

AtomicCounter::AtomicCounter(Segment segment)
    : segment_(std::move(segment)),
      body_(&static_cast<CounterSegmentLayout*>(segment_.data())->body) {}

absl::StatusOr<AtomicCounter> AtomicCounter::Create(
    const CounterOptions& options) {
  if (absl::Status st =
          CheckCounterRange(options.initial_value, "initial value");
      !st.ok()) {
    return st;
  }
  ObjectOptions object;
  object.key = options.key;
  object.mode = options.mode;
  absl::StatusOr<Segment> segment = internal::CreateObjectSegment(
      ObjectKind::kAtomicCounter, kCounterLayoutVersion,
      sizeof(CounterSegmentLayout), /*fingerprint=*/0, /*capacity=*/0, object);
  if (!segment.ok()) return segment.status();
  auto* layout = static_cast<CounterSegmentLayout*>(segment->data());
  layout->body.value = options.initial_value;
  internal::PublishObject(*segment);
  return AtomicCounter(*std::move(segment));
}

absl::StatusOr<AtomicCounter> AtomicCounter::Attach(
    IpcKey key, const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      key, -1, ObjectKind::kAtomicCounter, kCounterLayoutVersion, options);
  if (!segment.ok()) return segment.status();
  return AtomicCounter(*std::move(segment));
}

absl::StatusOr<AtomicCounter> AtomicCounter::AttachId(
    int shmid, const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      IpcKey::Private(), shmid, ObjectKind::kAtomicCounter,
      kCounterLayoutVersion, options);
  if (!segment.ok()) return segment.status();
  return AtomicCounter(*std::move(segment));
}

absl::StatusOr<int64_t> AtomicCounter::AddChecked(int64_t delta) {
  int64_t& value = body_->value;
  int64_t seen = internal::Load(value, std::memory_order_relaxed);
  int64_t next;
  do {
    // |seen| < 2^63 - 2^61 even mid-undo of a fast-path overshoot, and
    // |delta| may be anything: check the sum exactly.
    if (__builtin_add_overflow(seen, delta, &next) || next > kCounterMax ||
        next < kCounterMin) {
      return absl::OutOfRangeError(
          absl::StrCat("counter value ", seen, " + ", delta,
                       " is outside the counter range [", kCounterMin, ", ",
                       kCounterMax, "]"));
    }
  } while (!internal::Ref(value).compare_exchange_weak(
      seen, next, std::memory_order_seq_cst, std::memory_order_relaxed));
  internal::NotifyIfWaiting(body_->seq, body_->wait_flag);
  return next;
}

absl::Status AtomicCounter::Set(int64_t value) {
  if (body_ == nullptr) return MovedFrom();
  if (absl::Status st = CheckCounterRange(value, "value"); !st.ok()) return st;
  internal::Store(body_->value, value, std::memory_order_seq_cst);
  internal::NotifyIfWaiting(body_->seq, body_->wait_flag);
  return absl::OkStatus();
}

absl::StatusOr<bool> AtomicCounter::CompareAndSet(int64_t expected,
                                                  int64_t desired) {
  if (body_ == nullptr) return MovedFrom();
  if (absl::Status st = CheckCounterRange(desired, "value"); !st.ok())
    return st;
  const bool swapped = internal::Ref(body_->value)
                           .compare_exchange_strong(expected, desired,
                                                    std::memory_order_seq_cst);
  if (swapped) internal::NotifyIfWaiting(body_->seq, body_->wait_flag);
  return swapped;
}

absl::StatusOr<int64_t> AtomicCounter::WaitUntil(
    absl::FunctionRef<bool(int64_t)> pred, absl::Duration timeout) {
  if (body_ == nullptr) return MovedFrom();
  return internal::WaitForCondition<int64_t>(
      body_->seq, body_->wait_flag,
      [this] {
        return internal::Load(body_->value, std::memory_order_seq_cst);
      },
      pred, timeout);
}

absl::Status AtomicCounter::Wake() {
  if (body_ == nullptr) return MovedFrom();
  internal::WakeAll(body_->seq);
  return absl::OkStatus();
}

}  // namespace shmkit
