// SysvQueue: a System V message queue (msgget/msgsnd/msgrcv).
//
//   auto q = shmkit::SysvQueue::Open({.key =
//   shmkit::IpcKey::FromNumber(0x5eed)});
//   (*q)->Send("job", /*type=*/7);
//   auto m = (*q)->Receive(8192, shmkit::TypeFilter::AtMost(10));
//
// The one backend with typed receive: TypeFilter follows msgrcv(2) exactly
// (Any = 0, Exactly(t) = t, AtMost(t) = -t, AnyExcept(t) = t | MSG_EXCEPT).
//
// Interoperability: a message is exactly {long mtype; char mtext[n]}, with
// no header of ours, so raw payloads interoperate with any System V user,
// e.g. PHP's msg_send($q, $type, $data, false) and
// msg_receive($q, 0, $type, $max, $data, false).
//
// Limits, read at run time: a message is at most kernel.msgmax bytes and at
// most the queue's byte limit msg_qbytes (kernel.msgmnb at creation); both
// can change while we run, and a message above the cached limit re-reads
// them before it is refused (InvalidArgument naming the limit, its value and
// the size). `queue_bytes` sets msg_qbytes at open; above kernel.msgmnb that
// needs CAP_SYS_RESOURCE, and without it the open fails with
// PermissionDenied naming msgmnb.
//
// Waiting: Send/Receive block in the kernel. System V has no timed msgsnd
// or msgrcv, so SendFor/ReceiveFor retry with IPC_NOWAIT, sleeping between
// attempts for 50 us, doubling up to 2 ms: a timed call notices a message
// (or room) up to 2 ms late. Try-calls are one IPC_NOWAIT attempt.
//
// Lifetime: a keyed queue persists until Remove() (or ipcrm). A private
// queue (IPC_PRIVATE) is reachable by processes forked after Open() and by
// id; it is removed by Close() (or destruction) in the process that created
// it, and, because the kernel keeps message queues until IPC_RMID even when
// nobody uses them, an orphan reaper (internal/orphan_reaper.h) removes it
// when every process holding it has exited or been killed.
//
// Stats come from IPC_STAT: queued messages and bytes, msg_qbytes, the last
// sender and receiver pids and times.
//
// Errors besides those of queue.h: AlreadyExists / NotFound (open=create /
// attach), FailedPrecondition (owner or mode of an attached queue differ;
// queue removed: EIDRM, or EINVAL for an id that no longer exists),
// ResourceExhausted (kernel.msgmni queues exist), PermissionDenied.
#ifndef SHMKIT_IPC_QUEUE_SYSV_QUEUE_H_
#define SHMKIT_IPC_QUEUE_SYSV_QUEUE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {

struct SysvQueueOptions {
  // IPC_PRIVATE (the default) or a key (spec: key=0x5eed, or the flag
  // "private").
  IpcKey key = IpcKey::Private();
  // For a key (spec: open=auto|create|attach). A private queue is always
  // created.
  OpenMode open = OpenMode::kCreateOrAttach;
  // Permission bits at creation; an attached queue must have exactly these
  // (spec: mode=0600).
  mode_t mode = 0600;
  // msg_qbytes to set at open, 0 to keep the kernel's (spec: queue_bytes).
  uint64_t queue_bytes = 0;
  // Private queues: start the orphan reaper (see the file comment).
  bool remove_when_orphaned = true;
};

class SysvQueue final : public Queue {
 public:
  static absl::StatusOr<std::unique_ptr<SysvQueue>> Open(
      const SysvQueueOptions& options = {});
  // An existing queue by id (as ipcs -q shows), e.g. a private queue of
  // another process. `expected_mode` nullopt accepts any mode; the owner
  // must be our effective uid.
  static absl::StatusOr<std::unique_ptr<SysvQueue>> OpenId(
      int msqid, std::optional<mode_t> expected_mode = 0600);
  // Spec "sysv[:key=K|private|id=N,open=...,mode=0600,queue_bytes=N]".
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~SysvQueue() override;

  int id() const { return id_; }
  IpcKey key() const { return key_; }
  bool created() const { return created_by_ != 0; }
  // Sets msg_qbytes (IPC_SET). PermissionDenied naming kernel.msgmnb when
  // raising it above msgmnb without CAP_SYS_RESOURCE.
  absl::Status SetQueueBytes(uint64_t bytes);

 protected:
  absl::Status SendImpl(absl::string_view bytes, int64_t type,
                        const WaitMode& wait) override;
  absl::Status ReceiveImpl(Message& out, size_t max_bytes, TypeFilter filter,
                           Truncation truncation,
                           const WaitMode& wait) override;
  absl::Status CloseImpl() override;
  absl::Status RemoveImpl() override;
  absl::StatusOr<QueueStats> StatsImpl() const override;
  absl::Status CheckOversize(size_t size) override;
  std::string Describe() const override;

 private:
  SysvQueue(int id, IpcKey key, pid_t created_by, size_t max_message_bytes);
  // The error for a failed msgsnd/msgrcv/msgctl: FailedPrecondition when
  // the queue is gone.
  absl::Status CallError(int err, absl::string_view call) const;
  // Re-reads msgmax and msg_qbytes; updates max_message_bytes.
  absl::Status RefreshLimits(uint64_t* msgmax, uint64_t* qbytes);

  int id_;
  IpcKey key_;
  pid_t created_by_;  // pid of the creating process, 0 if attached
  UniqueFd reaper_guard_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_SYSV_QUEUE_H_
