// Event: counters and a futex in one cache line of shared memory.
//
//   struct EventBody {             // internal/event_layout.h
//     uint32 seq;                  // futex word
//     uint32 wait_flag;            // someone may sleep on seq
//     uint64 broadcasts;           // Notify(kAll) calls
//     uint64 permits;              // Notify(kOne) calls not yet taken
//     ...statistics
//   };
//
// A notify changes a counter (broadcasts += 1, or permits += 1), then runs
// NotifyIfWaiting(seq, wait_flag). A waiter runs WaitForCondition over
// "take something pending": each round it reads seq, sets wait_flag, then
// tries to take a broadcast (its handle's cursor lags `broadcasts`: advance
// it by CAS) or a permit (CAS permits to permits - 1), and sleeps on seq only
// when both fail. change_notifier.h explains why this loses no wake-up: a
// notify either sees the flag and moves seq after the waiter read it (so the
// futex wait returns at once or is woken), or its counter change is visible
// to the waiter's take. All of it is sequentially consistent.
//
// Taking is a CAS on a counter, so each kOne permit goes to exactly one
// waiter and each broadcast to exactly one thread per handle.
#include "shmkit/ipc/event.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/change_notifier.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/internal/event_layout.h"

namespace shmkit {

using internal::EventBody;
using internal::EventSegmentLayout;
using internal::kEventLayoutVersion;
using internal::Load;
using internal::Ref;

namespace {

EventBody* BodyOf(const Segment& segment) {
  return &static_cast<EventSegmentLayout*>(segment.data())->body;
}

}  // namespace

Event::Event(Segment segment, uint64_t seen_broadcasts)
    : segment_(std::move(segment)),
      body_(BodyOf(segment_)),
      seen_broadcasts_(seen_broadcasts) {}

Event::Event(Event&& other) noexcept
    : segment_(std::move(other.segment_)),
      body_(std::exchange(other.body_, nullptr)),
      seen_broadcasts_(other.seen_broadcasts_.load()) {}

Event& Event::operator=(Event&& other) noexcept {
  if (this != &other) {
    segment_ = std::move(other.segment_);
    body_ = std::exchange(other.body_, nullptr);
    seen_broadcasts_.store(other.seen_broadcasts_.load());
  }
  return *this;
}

absl::StatusOr<Event> Event::Create(const EventOptions& options) {
  ObjectOptions object;
  object.key = options.key;
  object.mode = options.mode;
  absl::StatusOr<Segment> segment = internal::CreateObjectSegment(
      ObjectKind::kEvent, kEventLayoutVersion, sizeof(EventSegmentLayout),
      /*fingerprint=*/0, /*capacity=*/0, object);
  if (!segment.ok()) return segment.status();
  // The kernel zeroes new segments: every counter starts at 0.
  internal::PublishObject(*segment);
  return Event(*std::move(segment), 0);
}

absl::StatusOr<Event> Event::Attach(IpcKey key,
                                    const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      key, -1, ObjectKind::kEvent, kEventLayoutVersion, options);
  if (!segment.ok()) return segment.status();
  const uint64_t seen =
      Load(BodyOf(*segment)->broadcasts, std::memory_order_seq_cst);
  return Event(*std::move(segment), seen);
}

absl::StatusOr<Event> Event::AttachId(int shmid,
                                      const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      IpcKey::Private(), shmid, ObjectKind::kEvent, kEventLayoutVersion,
      options);
  if (!segment.ok()) return segment.status();
  const uint64_t seen =
      Load(BodyOf(*segment)->broadcasts, std::memory_order_seq_cst);
  return Event(*std::move(segment), seen);
}

absl::Status Event::Notify(NotifyMode mode) {
  if (mode == NotifyMode::kAll) {
    // 2^64 broadcasts cannot happen; cursors compare for inequality, so
    // even a wrap would still wake every handle.
    Ref(body_->broadcasts).fetch_add(1, std::memory_order_seq_cst);
  } else {
    uint64_t permits = Load(body_->permits, std::memory_order_seq_cst);
    do {
      if (permits == UINT64_MAX) {
        return absl::ResourceExhaustedError(
            "event already holds 2^64 - 1 pending kOne notifications");
      }
    } while (!Ref(body_->permits)
                  .compare_exchange_weak(permits, permits + 1,
                                         std::memory_order_seq_cst));
    Ref(body_->notify_one_calls).fetch_add(1, std::memory_order_relaxed);
  }
  internal::NotifyIfWaiting(body_->seq, body_->wait_flag);
  return absl::OkStatus();
}

std::optional<NotifyMode> Event::TakePending() {
  const uint64_t now = Load(body_->broadcasts, std::memory_order_seq_cst);
  uint64_t seen = seen_broadcasts_.load(std::memory_order_seq_cst);
  // Another thread of this handle may advance the cursor first; it then
  // owns that broadcast and this thread looks for a permit instead.
  if (seen != now && seen_broadcasts_.compare_exchange_strong(
                         seen, now, std::memory_order_seq_cst)) {
    return NotifyMode::kAll;
  }
  uint64_t permits = Load(body_->permits, std::memory_order_seq_cst);
  while (permits != 0) {
    if (Ref(body_->permits)
            .compare_exchange_weak(permits, permits - 1,
                                   std::memory_order_seq_cst)) {
      Ref(body_->permits_taken).fetch_add(1, std::memory_order_relaxed);
      return NotifyMode::kOne;
    }
  }
  return std::nullopt;
}

absl::StatusOr<NotifyMode> Event::Wait() {
  return WaitFor(absl::InfiniteDuration());
}

absl::StatusOr<NotifyMode> Event::WaitFor(absl::Duration timeout) {
  // Fast path: something is pending already; no flag store, no futex.
  if (std::optional<NotifyMode> taken = TakePending()) return *taken;
  // The read lambda takes what is pending (or reports nothing); the
  // predicate accepts any take. WaitForCondition returns as soon as a take
  // succeeds, so nothing taken is ever dropped.
  absl::StatusOr<std::optional<NotifyMode>> taken =
      internal::WaitForCondition<std::optional<NotifyMode>>(
          body_->seq, body_->wait_flag, [this] { return TakePending(); },
          [](std::optional<NotifyMode> t) { return t.has_value(); }, timeout);
  if (!taken.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat("no notification on event (segment id=", segment_.id(),
                     ") within ", absl::FormatDuration(timeout)));
  }
  return **taken;
}

absl::StatusOr<NotifyMode> Event::TryWait() {
  if (std::optional<NotifyMode> taken = TakePending()) return *taken;
  return absl::UnavailableError(absl::StrCat(
      "no notification pending on event (segment id=", segment_.id(), ")"));
}

EventStats Event::Stats() const {
  EventStats stats;
  stats.broadcasts = Load(body_->broadcasts, std::memory_order_relaxed);
  stats.notify_one_calls =
      Load(body_->notify_one_calls, std::memory_order_relaxed);
  stats.pending_permits = Load(body_->permits, std::memory_order_relaxed);
  return stats;
}

}  // namespace shmkit
