// FifoQueue: a message queue over a named pipe (FIFO), for unrelated
// processes.
//
//   // any process, in any order:
//   auto q = shmkit::FifoQueue::Open({.path = "/run/app/q"});
//   // or: shmkit::OpenQueue("fifo:path=/run/app/q,role=sender")
//
// Framing, locking, staging, crash behaviour and SIGPIPE handling are those
// of PipeQueue (pipe_queue.h). The writer and reader locks and the staging
// buffer live in a control segment whose System V key is ftok(path, 'q');
// the segment records which FIFO (device and inode) it belongs to, and an
// open that finds another object under that key fails instead of sharing it.
//
// Safety of the path: the FIFO lives in a private directory (owned by us,
// no group or other permission bits), created with mode 0700 if it is
// missing, so no other user can replace the FIFO with something else. The
// FIFO is opened with O_NOFOLLOW and must be a FIFO owned by our effective
// uid with exactly `mode`; otherwise FailedPrecondition names what differs.
//
// Lifetime: a named FIFO (and its control segment) persists until Remove().
// With an empty `path` the queue is private: a FIFO in a new temporary
// directory (path() tells where, for unrelated processes), destroyed when
// the creating process Close()s it, and by an orphan reaper
// (internal/orphan_reaper.h) when every process holding it was killed.
//
// Ends and roles: `role` chooses which ends this process opens. Opening
// only the write end fails (FailedPrecondition) while no process has the
// FIFO open for reading, and a receiver-only process sees "no sender left"
// whenever no process has it open for writing, before the first writer
// opens it too; keep both ends (the default) to wait for peers instead.
#ifndef SHMKIT_IPC_QUEUE_FIFO_QUEUE_H_
#define SHMKIT_IPC_QUEUE_FIFO_QUEUE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {

namespace internal {
class PipeCore;
}  // namespace internal

struct FifoQueueOptions {
  // Absolute path of the FIFO (spec: path). Empty: a private FIFO.
  std::string path = {};
  OpenMode open = OpenMode::kCreateOrAttach;  // spec: open
  mode_t mode = 0600;                         // spec: mode
  // Which ends to open (spec: role=both|sender|receiver). Peer roles are
  // InvalidArgument.
  QueueRole role = QueueRole::kSendAndReceive;
  // When creating (spec: max_bytes, registry_slots); an opener uses the
  // creator's values.
  uint32_t max_message_bytes = 65536;
  uint32_t registry_slots = 128;
  bool ignore_sigpipe = true;  // see pipe_queue.h
  // Busy-wait budget of a receive before it sleeps (spec: spin_us); see
  // internal/spin_wait.h. Zero: sleep at once. Per handle.
  absl::Duration spin = absl::Microseconds(20);
};

class FifoQueue final : public Queue {
 public:
  static absl::StatusOr<std::unique_ptr<FifoQueue>> Open(
      const FifoQueueOptions& options);
  // Spec "fifo[:path=P,open=auto|create|attach,mode=0600,role=...,
  // max_bytes=N,registry_slots=N,spin_us=N]".
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~FifoQueue() override;

  const std::string& path() const { return path_; }
  bool created() const { return created_by_ != 0; }
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
  FifoQueue(internal::PipeCore core, std::string path, std::string dir,
            bool anonymous, pid_t created_by, dev_t dev, ino_t ino,
            bool ignore_sigpipe);
  absl::Status Destroy();

  // Empty after Close() (descriptors closed, segment detached).
  std::unique_ptr<internal::PipeCore> core_;
  std::string path_;
  std::string dir_;  // the private directory of an anonymous FIFO
  bool anonymous_;
  pid_t created_by_;  // pid of the creating process, 0 if attached
  dev_t dev_;
  ino_t ino_;
  bool ignore_sigpipe_;
  UniqueFd reaper_guard_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_FIFO_QUEUE_H_
