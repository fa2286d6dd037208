// SocketPairQueue: a message queue over an AF_UNIX SOCK_SEQPACKET socket
// pair, for a parent and the children it forks; the one bidirectional
// backend.
//
//   auto q = shmkit::SocketPairQueue::Create();   // before fork
//   // one-way, like a pipe: SetRole(kSender) / SetRole(kReceiver)
//   // a conversation:       SetRole(kPeerA) in one process, kPeerB in the
//   //                        other; each sends to and receives from the other
//
// The pair has ends A and B. A process that keeps both (the default role)
// sends on A and receives on B, so the queue works like a pipe shared by
// every process. kSender keeps A, kReceiver keeps B; kPeerA keeps A and
// both sends and receives on it (what B sent), kPeerB the mirror image.
//
// SOCK_SEQPACKET keeps message boundaries, and each message is one
// sendmsg(): a message is delivered whole by one recvmsg(), to exactly one
// receiver, however many processes send and receive at once. The type
// travels as an 8-byte prefix. Sends use MSG_NOSIGNAL: a peer that has gone
// away is FailedPrecondition (EPIPE), never SIGPIPE. The descriptors stay
// blocking; try and timed calls use MSG_DONTWAIT per call (and poll()), so
// processes sharing a descriptor never change each other's mode.
//
// max_message_bytes is read at run time from the socket's send buffer
// (SO_SNDBUF less the kernel's per-message overhead and our 8-byte prefix).
// A receive whose max_bytes is below that looks at the next message first
// (MSG_PEEK) so that a message too long for the caller stays queued. With
// several receivers on one end, another process can take that message
// between the look and the receive; if the one received instead is too
// long, this handle keeps it, answers InvalidArgument, and returns it from
// its next receive with a large enough max_bytes (or Truncation::kAllow).
//
// Pollable: ReceiveFd() is readable exactly when a message is queued.
#ifndef SHMKIT_IPC_QUEUE_SOCKETPAIR_QUEUE_H_
#define SHMKIT_IPC_QUEUE_SOCKETPAIR_QUEUE_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {

class SocketPairQueue final : public Queue {
 public:
  static absl::StatusOr<std::unique_ptr<SocketPairQueue>> Create();
  // Spec "socketpair" (no parameters).
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~SocketPairQueue() override;

  int ReceiveFd() const override { return receive_fd_; }
  int SendFd() const override { return send_fd_; }

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
  SocketPairQueue(UniqueFd a, UniqueFd b, size_t max_message_bytes);
  absl::Status WaitReady(int fd, short events, const WaitMode& wait,
                         absl::string_view what) const;
  absl::Status PeerGone(absl::string_view what) const;

  // The two ends this process still holds, and which one each direction
  // uses (-1: none; both name the same end for the peer roles).
  UniqueFd a_;
  UniqueFd b_;
  int send_fd_ = -1;
  int receive_fd_ = -1;
  std::string description_;
  // A message received for a caller whose max_bytes it exceeded (see the
  // file comment); returned first by the next receive that can take it.
  // Process-local (never in shared memory).
  std::mutex pending_mu_;
  std::optional<Message> pending_;  // guarded by pending_mu_
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_SOCKETPAIR_QUEUE_H_
