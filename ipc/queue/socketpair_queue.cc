#include "shmkit/ipc/queue/socketpair_queue.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;
using internal::RetryOnEintr;

// What unix_dgram_sendmsg keeps out of SO_SNDBUF for one message ("len >
// sk_sndbuf - 32" is EMSGSIZE), and our type prefix.
constexpr size_t kKernelOverhead = 32;
constexpr size_t kPrefixBytes = sizeof(int64_t);

QueueCapabilities SocketPairCapabilities(size_t max_message_bytes) {
  QueueCapabilities caps;
  caps.backend = "socketpair";
  caps.max_message_bytes = max_message_bytes;
  caps.typed_receive = false;
  caps.bidirectional = true;
  caps.attachable = false;
  caps.pollable_fd = true;
  return caps;
}

// Messages up to this size are sent from one contiguous buffer.
constexpr size_t kCopyLimit = 64 * 1024;

// Per-thread buffers for the prefix and the message in one piece.
std::vector<char>& ReceiveBuffer(size_t bytes) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer;
}
std::vector<char>& SendBuffer(size_t bytes) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer;
}

}  // namespace

SocketPairQueue::SocketPairQueue(UniqueFd a, UniqueFd b,
                                 size_t max_message_bytes)
    : Queue(SocketPairCapabilities(max_message_bytes)),
      a_(std::move(a)),
      b_(std::move(b)),
      description_(absl::StrCat("socketpair queue (fds ", a_.get(), ", ",
                                b_.get(), ")")) {
  send_fd_ = a_.get();
  receive_fd_ = b_.get();
}

SocketPairQueue::~SocketPairQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<SocketPairQueue>> SocketPairQueue::Create() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoStatus(errno, "socketpair(AF_UNIX, SOCK_SEQPACKET)");
  }
  UniqueFd a(fds[0]), b(fds[1]);
  // Both ends send (peer roles), so the smaller buffer bounds a message.
  size_t max = SIZE_MAX;
  for (int fd : {a.get(), b.get()}) {
    int sndbuf = 0;
    socklen_t len = sizeof(sndbuf);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0) {
      return ErrnoStatus(errno, "getsockopt(SO_SNDBUF)");
    }
    const size_t usable = static_cast<size_t>(std::max(sndbuf, 0));
    max = std::min(max, usable > kKernelOverhead + kPrefixBytes
                            ? usable - kKernelOverhead - kPrefixBytes
                            : 0);
  }
  return std::unique_ptr<SocketPairQueue>(
      new SocketPairQueue(std::move(a), std::move(b), max));
}

absl::StatusOr<std::unique_ptr<Queue>> SocketPairQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader reader(spec);
  SHMKIT_RETURN_IF_ERROR(reader.Finish());
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<SocketPairQueue> q, Create());
  return std::unique_ptr<Queue>(std::move(q));
}

std::string SocketPairQueue::Describe() const { return description_; }

absl::Status SocketPairQueue::PeerGone(absl::string_view what) const {
  return absl::FailedPreconditionError(
      absl::StrCat(Describe(), ": ", what,
                   " (every process holding the other end closed it, or the "
                   "queue was removed)"));
}

absl::Status SocketPairQueue::WaitReady(int fd, short events,
                                        const WaitMode& wait,
                                        absl::string_view what) const {
  const int64_t now = internal::MonotonicNanos();
  if (wait.kind() == WaitMode::Kind::kDeadline && now >= wait.deadline_ns()) {
    return absl::DeadlineExceededError(
        absl::StrCat(Describe(), ": ", what, " within ",
                     absl::FormatDuration(wait.timeout())));
  }
  pollfd p{fd, events, 0};
  timespec ts;
  timespec* timeout = nullptr;
  if (wait.kind() == WaitMode::Kind::kDeadline) {
    const int64_t left = wait.deadline_ns() - now;
    ts = {static_cast<time_t>(left / 1'000'000'000),
          static_cast<long>(left % 1'000'000'000)};
    timeout = &ts;
  }
  if (internal::NoEventsOnEintr(ppoll(&p, 1, timeout, nullptr)) == -1) {
    return ErrnoStatus(errno, absl::StrCat("ppoll(", Describe(), ")"));
  }
  return absl::OkStatus();
}

absl::Status SocketPairQueue::SendImpl(absl::string_view bytes, int64_t type,
                                       const WaitMode& wait) {
  if (send_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), ": this process closed its sending end"));
  }
  // Up to kCopyLimit bytes, prefix and payload are copied into one buffer
  // and sent with send(), which the kernel handles faster than a two-piece
  // sendmsg(); larger messages go as two pieces, without the copy.
  const bool copy = bytes.size() <= kCopyLimit;
  char* contiguous = nullptr;
  if (copy) {
    contiguous = SendBuffer(kPrefixBytes + bytes.size()).data();
    std::memcpy(contiguous, &type, kPrefixBytes);
    if (!bytes.empty()) {
      std::memcpy(contiguous + kPrefixBytes, bytes.data(), bytes.size());
    }
  }
  iovec iov[2] = {{&type, kPrefixBytes},
                  {const_cast<char*>(bytes.data()), bytes.size()}};
  msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = bytes.empty() ? 1 : 2;
  const int flags =
      MSG_NOSIGNAL |
      (wait.kind() == WaitMode::Kind::kForever ? 0 : MSG_DONTWAIT);
  while (true) {
    const ssize_t r = RetryOnEintr([&] {
      return copy ? send(send_fd_, contiguous, kPrefixBytes + bytes.size(),
                         flags)
                  : sendmsg(send_fd_, &msg, flags);
    });
    if (r >= 0) return absl::OkStatus();
    const int err = errno;
    if (err == EAGAIN) {
      if (wait.kind() == WaitMode::Kind::kNone) {
        return absl::UnavailableError(absl::StrCat(Describe(), " is full"));
      }
      SHMKIT_RETURN_IF_ERROR(WaitReady(send_fd_, POLLOUT, wait, "still full"));
      continue;
    }
    if (err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
      return PeerGone("no receiver left");
    }
    if (err == EMSGSIZE) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(), ": message of ", bytes.size(),
          " bytes does not fit the socket send buffer (SO_SNDBUF)"));
    }
    return ErrnoStatus(err,
                       absl::StrCat("sendmsg(", Describe(), ", ",
                                    bytes.size() + kPrefixBytes, " bytes)"));
  }
}

absl::Status SocketPairQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                          TypeFilter filter,
                                          Truncation truncation,
                                          const WaitMode& wait) {
  (void)filter;
  if (receive_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), ": this process closed its receiving end"));
  }
  auto too_long = [&](size_t length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "next message in ", Describe(), " is ", length,
        " bytes, more than max_bytes ", max_bytes,
        "; it stays queued (pass Truncation::kAllow to take it truncated)"));
  };
  auto deliver = [&](int64_t type, const char* data, size_t length) {
    const size_t keep = std::min(length, max_bytes);
    out.type = type;
    out.data.assign(data, keep);
    out.truncated = keep < length;
  };
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    if (pending_.has_value()) {
      if (pending_->data.size() > max_bytes &&
          truncation == Truncation::kError) {
        return too_long(pending_->data.size());
      }
      deliver(pending_->type, pending_->data.data(), pending_->data.size());
      pending_.reset();
      return absl::OkStatus();
    }
  }
  const size_t cap = Capabilities().max_message_bytes;
  const bool peek_first = max_bytes < cap && truncation == Truncation::kError;
  const bool block = wait.kind() == WaitMode::Kind::kForever;
  // One contiguous buffer, prefix first: every message arrives by one
  // recv() (cheaper in the kernel than a two-piece recvmsg()).
  std::vector<char>& buffer = ReceiveBuffer(kPrefixBytes + cap);
  char* const text = buffer.data() + kPrefixBytes;
  while (true) {
    if (peek_first) {
      int64_t peeked = 0;
      const int flags = MSG_PEEK | MSG_TRUNC | (block ? 0 : MSG_DONTWAIT);
      const ssize_t r = RetryOnEintr(
          [&] { return recv(receive_fd_, &peeked, kPrefixBytes, flags); });
      if (r == 0) return PeerGone("no sender left");
      if (r < 0) {
        const int err = errno;
        if (err != EAGAIN) {
          return ErrnoStatus(err,
                             absl::StrCat("recv(", Describe(), ", MSG_PEEK)"));
        }
        if (wait.kind() == WaitMode::Kind::kNone) {
          return absl::UnavailableError(absl::StrCat(Describe(), " is empty"));
        }
        SHMKIT_RETURN_IF_ERROR(
            WaitReady(receive_fd_, POLLIN, wait, "no message"));
        continue;
      }
      const size_t length = static_cast<size_t>(r) - kPrefixBytes;
      if (static_cast<size_t>(r) >= kPrefixBytes && length > max_bytes) {
        return too_long(length);
      }
    }
    // After a peek the message is there (unless another receiver took it:
    // then look again rather than block on the next one unannounced).
    // MSG_TRUNC: the packet's real length, to tell a foreign oversize packet.
    const int flags = MSG_TRUNC | (block && !peek_first ? 0 : MSG_DONTWAIT);
    const ssize_t r = RetryOnEintr([&] {
      return recv(receive_fd_, buffer.data(), kPrefixBytes + cap, flags);
    });
    if (r == 0) return PeerGone("no sender left");
    if (r < 0) {
      const int err = errno;
      if (err != EAGAIN) {
        return ErrnoStatus(err, absl::StrCat("recv(", Describe(), ")"));
      }
      if (peek_first) continue;
      if (wait.kind() == WaitMode::Kind::kNone) {
        return absl::UnavailableError(absl::StrCat(Describe(), " is empty"));
      }
      SHMKIT_RETURN_IF_ERROR(
          WaitReady(receive_fd_, POLLIN, wait, "no message"));
      continue;
    }
    const size_t total = static_cast<size_t>(r);
    int64_t type = 0;
    if (total >= kPrefixBytes) std::memcpy(&type, buffer.data(), kPrefixBytes);
    if (total < kPrefixBytes || total > kPrefixBytes + cap || type <= 0) {
      return absl::DataLossError(absl::StrCat(
          Describe(), ": received a ", total,
          "-byte packet that is not a shmkit message (another program on "
          "the socket?)"));
    }
    const size_t length = total - kPrefixBytes;
    if (length > max_bytes && truncation == Truncation::kError) {
      // Only after a peek raced with another receiver: keep it.
      std::lock_guard<std::mutex> lock(pending_mu_);
      pending_ = Message{type, std::string(text, length), false};
      return too_long(length);
    }
    deliver(type, text, length);
    return absl::OkStatus();
  }
}

absl::Status SocketPairQueue::ApplyRole(QueueRole role) {
  switch (role) {
    case QueueRole::kSendAndReceive:
      return absl::OkStatus();
    case QueueRole::kSender:
      b_.reset();
      send_fd_ = a_.get();
      receive_fd_ = -1;
      return absl::OkStatus();
    case QueueRole::kReceiver:
      a_.reset();
      send_fd_ = -1;
      receive_fd_ = b_.get();
      return absl::OkStatus();
    case QueueRole::kPeerA:
      b_.reset();
      send_fd_ = receive_fd_ = a_.get();
      return absl::OkStatus();
    case QueueRole::kPeerB:
      a_.reset();
      send_fd_ = receive_fd_ = b_.get();
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status SocketPairQueue::CloseImpl() {
  send_fd_ = receive_fd_ = -1;
  a_.reset();
  b_.reset();
  return absl::OkStatus();
}

absl::Status SocketPairQueue::RemoveImpl() {
  // shutdown() acts on the socket, not on this process's descriptor: every
  // process holding either end sees EOF and EPIPE from now on.
  for (const UniqueFd* fd : {&a_, &b_}) {
    if (fd->valid() && shutdown(fd->get(), SHUT_RDWR) != 0 &&
        errno != ENOTCONN) {
      return ErrnoStatus(errno, absl::StrCat("shutdown(", Describe(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<QueueStats> SocketPairQueue::StatsImpl() const {
  QueueStats stats;
  int queued = 0;
  if (receive_fd_ >= 0 && ioctl(receive_fd_, SIOCINQ, &queued) == 0) {
    stats.bytes = static_cast<uint64_t>(queued);
  }
  return stats;
}

}  // namespace shmkit
