// PipeQueue: a message queue over an anonymous pipe, for a parent and the
// children it forks.
//
//   auto q = shmkit::PipeQueue::Create();      // before fork
//   // child (producer):  (void)(*q)->SetRole(shmkit::QueueRole::kSender);
//   //                    (*q)->Send("job");
//   // parent (consumer): (void)(*q)->SetRole(shmkit::QueueRole::kReceiver);
//   //                    auto m = (*q)->Receive(4096);
//
// Messages travel as length-prefixed frames (internal/pipe_core.h). Any
// number of processes may send and receive at once: a writer lock in a
// small shared segment keeps frames of any size from interleaving (frames of
// at most PIPE_BUF bytes are also written atomically), and readers share a
// staging buffer in that segment under a reader lock.
//
// Peers: create before fork, then have each process declare its role
// (SetRole); a process that keeps both ends never sees its peers go away.
// Once every read end is closed, Send is FailedPrecondition (EPIPE); once
// every write end is closed and nothing is queued, Receive is
// FailedPrecondition (EOF).
//
// SIGPIPE: a write to a pipe without readers raises SIGPIPE, whose default
// action kills the process. With `ignore_sigpipe` (the default) Create()
// and SetRole(kSender) set SIGPIPE to SIG_IGN when it is at its default
// disposition (most servers do this anyway; a handler the application
// installed is left alone and the write reports EPIPE). The setting is
// process-wide and survives exec; an application must not restore SIG_DFL
// while it uses pipe queues. With ignore_sigpipe = false, Create() refuses
// (FailedPrecondition) while SIGPIPE is at its default.
//
// Crashes: a writer killed at any point while sending a frame of at most
// PIPE_BUF bytes (the 16-byte header included) leaves the queue intact, and
// so does a reader killed anywhere except inside the read() that moves bytes
// from the pipe into the staging buffer or the memmove() that compacts it
// (a window of one system call or one copy). A writer killed in the middle
// of a larger frame, or a reader killed in that window, may leave bytes
// that can no longer be delimited:
// the next process to notice (the next writer, or a reader left waiting for
// the rest of a frame) marks the queue broken, and every call then returns
// DataLoss, never a spliced message.
//
// Pollable: ReceiveFd() becomes readable when bytes arrive in the pipe; frames
// a reader already moved into the staging buffer do not make it readable,
// so after a wake-up call TryReceive() until it is Unavailable.
//
// Errors besides those of queue.h: FailedPrecondition when this process
// closed the end a call needs.
#ifndef SHMKIT_IPC_QUEUE_PIPE_QUEUE_H_
#define SHMKIT_IPC_QUEUE_PIPE_QUEUE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"

namespace shmkit {

namespace internal {
class PipeCore;
}  // namespace internal

struct PipeQueueOptions {
  // Largest message, in bytes (spec: max_bytes). Up to 64 MiB; the shared
  // staging buffer is about this size plus 64 KiB.
  uint32_t max_message_bytes = 65536;
  // Threads, across all processes, that may use the queue at once (spec:
  // registry_slots). Each gets an owner identity for the two locks.
  uint32_t registry_slots = 128;
  // See the file comment.
  bool ignore_sigpipe = true;
  // Busy-wait budget of a receive before it sleeps (spec: spin_us); see
  // internal/spin_wait.h. Zero: sleep at once. Per handle.
  absl::Duration spin = absl::Microseconds(20);
};

class PipeQueue final : public Queue {
 public:
  static absl::StatusOr<std::unique_ptr<PipeQueue>> Create(
      const PipeQueueOptions& options = {});
  // Spec "pipe[:max_bytes=N,registry_slots=N,spin_us=N]".
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~PipeQueue() override;

  int ReceiveFd() const override;
  int SendFd() const override;

 protected:
  absl::Status SendImpl(absl::string_view bytes, int64_t type,
                        const WaitMode& wait) override;
  absl::Status ReceiveImpl(Message& out, size_t max_bytes, TypeFilter filter,
                           Truncation truncation,
                           const WaitMode& wait) override;
  absl::Status ApplyRole(QueueRole role) override;
  absl::Status CloseImpl() override;
  absl::Status RemoveImpl() override;
  absl::StatusOr<QueueStats> StatsImpl() const override;
  std::string Describe() const override;

 private:
  PipeQueue(internal::PipeCore core, const PipeQueueOptions& options);

  // Empty after Close() (descriptors closed, segment detached).
  std::unique_ptr<internal::PipeCore> core_;
  std::string description_;
  bool ignore_sigpipe_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_PIPE_QUEUE_H_
