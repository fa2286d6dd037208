// Event: a notification between processes, in shared memory, that replaces
// the signals (SIGUSR1 and friends) pre-forking servers send their workers,
// without signal-handler hazards.
//
//   auto reload = shmkit::Event::Create();        // master, before fork
//   // worker:
//   while (true) {
//     if (reload->WaitFor(absl::Seconds(1)).ok()) ReloadConfig();
//     ServeSomeRequests();
//   }
//   // master, later:
//   reload->Notify(shmkit::NotifyMode::kAll);
//
// Semantics. No notification is ever lost between a waiter's check and its
// sleep, and none is lost because nobody was waiting when it was sent:
//
//   - Notify(kAll) is a broadcast. Every Event handle (one per process, as a
//     rule: the one it created, attached or inherited across fork) sees each
//     broadcast once: a handle whose Wait is asleep returns, and a handle
//     that was not waiting returns at once from its next Wait. Broadcasts a
//     handle missed coalesce into one, like a pending signal. When several
//     threads wait on one handle, one of them takes the broadcast (again like
//     a process-directed signal); threads that each need every broadcast use
//     handles of their own (Attach/AttachId).
//   - Notify(kOne) lets exactly one Wait return, across all handles and
//     processes: one that is asleep now or, if none is, the next one to come.
//     Notifications of this kind count (they do not coalesce): n calls let n
//     Waits return.
//
// A Wait takes a pending broadcast before a pending kOne permit.
//
// Mechanism (event.cc): counters plus a shared futex with a sequence
// number, following the protocol of internal/change_notifier.h. A Notify
// costs one atomic read-modify-write, plus one futex wake only when some
// process is asleep in Wait. A waiter killed while asleep leaves nothing
// behind. A notify wakes every sleeper; those that find nothing for them go
// back to sleep. (Waking them all is what makes a waiter killed right after
// its wake-up unable to strand a kOne notification.)
//
// Lifetime: an anonymous Event (the default) is shared with processes forked
// after Create() and vanishes with the last of them; a keyed one is
// attachable by unrelated processes and persists until Remove().
// Thread-safety: every call is safe from any thread of any process.
#ifndef SHMKIT_IPC_EVENT_H_
#define SHMKIT_IPC_EVENT_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

namespace internal {
struct EventBody;
}  // namespace internal

enum class NotifyMode {
  kOne,  // exactly one Wait returns (now or later)
  kAll,  // every handle's next (or current) Wait returns
};

struct EventOptions {
  // IPC_PRIVATE (default): shared with processes forked after Create().
  // A key: attachable by unrelated processes, persists until Remove().
  IpcKey key = IpcKey::Private();
  // Permission bits of the segment.
  mode_t mode = 0600;
};

struct EventStats {
  uint64_t broadcasts = 0;        // Notify(kAll) calls
  uint64_t notify_one_calls = 0;  // Notify(kOne) calls
  uint64_t pending_permits = 0;   // Notify(kOne) not yet taken
};

class Event {
 public:
  // Creates an event. Errors are those of Segment::Create (AlreadyExists for
  // a key in use, ResourceExhausted naming a kernel limit, ...).
  static absl::StatusOr<Event> Create(const EventOptions& options = {});
  // Attaches a keyed event (NotFound when absent; FailedPrecondition when
  // the segment is not an event of this build's layout, or its owner or
  // mode differ). The new handle has seen every broadcast made so far.
  static absl::StatusOr<Event> Attach(IpcKey key,
                                      const ObjectAttachOptions& options = {});
  static absl::StatusOr<Event> AttachId(
      int shmid, const ObjectAttachOptions& options = {});

  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() = default;

  // Sends a notification (see the file comment). Never blocks. The only
  // error is ResourceExhausted when 2^64 - 1 kOne notifications are pending.
  absl::Status Notify(NotifyMode mode = NotifyMode::kAll);

  // Blocks until a notification for this handle is pending, takes it and
  // returns its kind. Wait() has no time limit; WaitFor() returns
  // DeadlineExceeded after `timeout` (a negative timeout acts as zero).
  // A signal delivered to the caller does not end the wait.
  absl::StatusOr<NotifyMode> Wait();
  absl::StatusOr<NotifyMode> WaitFor(absl::Duration timeout);
  // Takes a pending notification without waiting; Unavailable when none is.
  absl::StatusOr<NotifyMode> TryWait();

  EventStats Stats() const;

  // Removes a keyed event: processes that have it keep using it.
  absl::Status Remove() { return segment_.Remove(); }
  const Segment& segment() const { return segment_; }

 private:
  Event(Segment segment, uint64_t seen_broadcasts);
  // Takes one pending notification, if any.
  std::optional<NotifyMode> TakePending();

  Segment segment_;
  internal::EventBody* body_;
  // The last broadcast this handle has taken (compared to body_->broadcasts).
  std::atomic<uint64_t> seen_broadcasts_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_EVENT_H_
