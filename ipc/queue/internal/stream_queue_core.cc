#include "shmkit/ipc/queue/internal/stream_queue_core.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/status_macros.h"

namespace shmkit::internal {

StreamQueueCore::StreamQueueCore(StreamEndpoint endpoint,
                                 const StreamQueueOptions& options,
                                 bool private_name)
    : endpoint_(std::move(endpoint)),
      options_(options),
      side_(options.side),
      private_name_(private_name) {
  description_ = absl::StrCat(
      is_tcp() ? "tcp" : "unix", " queue ", endpoint_.ToString(),
      side_ == StreamSide::kListen
          ? (private_name_ ? " (listening, private)" : " (listening)")
          : " (connecting)");
}

int StreamQueueCore::TimeoutMs(const WaitMode& wait) {
  switch (wait.kind()) {
    case WaitMode::Kind::kForever:
      return -1;
    case WaitMode::Kind::kNone:
      return 0;
    case WaitMode::Kind::kDeadline:
      return PollTimeoutMs(wait.deadline_ns());
  }
  return 0;
}

std::string StreamQueueCore::ConnectSpec() const {
  return absl::StrCat(is_tcp() ? absl::StrCat("tcp:host=", endpoint_.host,
                                              ",port=", endpoint_.port)
                               : absl::StrCat("unix:path=", endpoint_.path),
                      ",role=connect,max_bytes=", options_.max_message_bytes,
                      ",window=", options_.window_bytes);
}

// ---- per process -------------------------------------------------------

absl::Status StreamQueueCore::MakeWakeAndEpoll() {
  wake_.reset(eventfd(removed_.load() ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) {
    return ErrnoStatus(errno, absl::StrCat("eventfd(", Describe(), ")"));
  }
  if (!listen_fd_.valid()) return absl::OkStatus();
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) {
    return ErrnoStatus(errno, absl::StrCat("epoll_create1(", Describe(), ")"));
  }
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerKey;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev) != 0) {
    return ErrnoStatus(
        errno, absl::StrCat("epoll_ctl(ADD listener of ", Describe(), ")"));
  }
  ev.data.u64 = kWakeKey;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return ErrnoStatus(
        errno, absl::StrCat("epoll_ctl(ADD eventfd of ", Describe(), ")"));
  }
  return absl::OkStatus();
}

absl::Status StreamQueueCore::EnsureProcess() {
  if (epoch_.load(std::memory_order_acquire) == internal::ForkEpoch()) {
    return absl::OkStatus();
  }
  return Rehome();
}

absl::Status StreamQueueCore::Rehome() {
  std::scoped_lock lock(recv_mu_, send_mu_);
  if (epoch_.load(std::memory_order_acquire) == internal::ForkEpoch()) {
    return absl::OkStatus();
  }
  // Our copies of the parent's descriptors: closed, never shut down, and
  // never removed from the epoll set, which the parent shares.
  send_fd_.reset();
  retired_.clear();
  ForgetSendConnection();
  send_waiters_ = 0;
  conns_.clear();
  ready_.clear();
  ever_connected_ = false;
  deliveries_since_poll_ = 0;
  dropped_connections_ = 0;
  partial_frames_discarded_ = 0;
  last_drop_reason_.clear();
  epoll_.reset();
  wake_.reset();
  SHMKIT_RETURN_IF_ERROR(MakeWakeAndEpoll());
  epoch_.store(internal::ForkEpoch(), std::memory_order_release);
  return absl::OkStatus();
}

absl::Status StreamQueueCore::RemovedError() const {
  return absl::FailedPreconditionError(
      absl::StrCat(Describe(), " was removed"));
}

absl::Status StreamQueueCore::PeerGone(absl::string_view why) const {
  return absl::FailedPreconditionError(absl::StrCat(Describe(), ": ", why));
}

void StreamQueueCore::SignalWake() {
  const uint64_t one = 1;
  if (wake_.valid()) (void)!write(wake_.get(), &one, sizeof(one));
}

// ---- lifetime --------------------------------------------------------------

absl::Status StreamQueueCore::ApplyRole(QueueRole role) {
  SHMKIT_RETURN_IF_ERROR(EnsureProcess());
  switch (role) {
    case QueueRole::kSender: {
      // This process stops receiving: the connections it accepted are shut
      // down (their senders fail instead of writing into the void); its
      // copy of the listening socket is closed, never shut down, so other
      // processes sharing it keep listening.
      std::lock_guard<std::mutex> lock(recv_mu_);
      CloseAllConns(true);
      epoll_.reset();
      listen_fd_.reset();
      return absl::OkStatus();
    }
    case QueueRole::kReceiver: {
      std::lock_guard<std::mutex> lock(send_mu_);
      absl::Status st = FlushForClose();
      if (send_fd_.valid()) {
        if (send_waiters_ > 0) {
          retired_.push_back(std::move(send_fd_));
        } else {
          send_fd_.reset();
        }
      }
      send_state_ = ConnState::kNone;
      ++send_generation_;
      return st;
    }
    default:
      return absl::OkStatus();
  }
}

absl::Status StreamQueueCore::Remove() {
  SHMKIT_RETURN_IF_ERROR(EnsureProcess());
  removed_.store(true, std::memory_order_release);
  SignalWake();
  {
    std::lock_guard<std::mutex> lock(recv_mu_);
    if (listen_fd_.valid()) {
      // Acts on the socket, not on our descriptor: every process sharing
      // it sees the hang-up, and connects are refused from now on.
      shutdown(listen_fd_.get(), SHUT_RDWR);
      // Connections nobody accepted yet: tcp resets them on shutdown; a
      // unix listener keeps them until its last descriptor closes (a child
      // may hold one), so they are taken and shut down here, and their
      // senders fail instead of waiting.
      while (true) {
        UniqueFd fd(RetryOnEintr([&] {
          return accept4(listen_fd_.get(), nullptr, nullptr,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        }));
        if (!fd.valid()) {
          if (errno == ECONNABORTED) continue;
          break;
        }
        shutdown(fd.get(), SHUT_RDWR);
      }
    }
    if (side_ == StreamSide::kListen && !is_tcp() && !endpoint_.abstract()) {
      // Our socket file only: a later listener may have replaced it.
      struct stat st;
      if (lstat(endpoint_.path.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
          st.st_ino == socket_ino_) {
        if (unlink(endpoint_.path.c_str()) != 0 && errno != ENOENT) {
          return ErrnoStatus(
              errno, absl::StrCat("unlink(", endpoint_.path, ") for Remove()"));
        }
      }
    }
    CloseAllConns(true);
  }
  std::lock_guard<std::mutex> lock(send_mu_);
  if (send_fd_.valid()) shutdown(send_fd_.get(), SHUT_RDWR);
  tail_.clear();
  tail_begin_ = 0;
  tail_pending_.store(false, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status StreamQueueCore::Close() {
  if (epoch_.load(std::memory_order_acquire) != internal::ForkEpoch()) {
    // A child that inherited the handle and never used it: its copies go,
    // nothing is shut down and nothing of the parent's is flushed.
    std::scoped_lock lock(recv_mu_, send_mu_);
    conns_.clear();
    ready_.clear();
    epoll_.reset();
    listen_fd_.reset();
    send_fd_.reset();
    retired_.clear();
    wake_.reset();
    return absl::OkStatus();
  }
  // A private listener lives as long as its creating process keeps it.
  if (private_name_ && listen_fd_.valid() &&
      internal::SelfPid() == creator_pid_) {
    (void)Remove();
  }
  {
    // The receiving side first: a rest of a frame that this very process
    // would have had to read then fails at once instead of lingering.
    std::lock_guard<std::mutex> lock(recv_mu_);
    CloseAllConns(true);
    epoll_.reset();
    listen_fd_.reset();
  }
  absl::Status result;
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    if (send_state_ == ConnState::kConnected) result = FlushForClose();
    send_fd_.reset();
    retired_.clear();
    send_state_ = ConnState::kNone;
  }
  wake_.reset();
  return result;
}

absl::StatusOr<QueueStats> StreamQueueCore::Stats() const {
  QueueStats stats;
  // What one sending process may have outstanding (the window).
  stats.capacity_bytes = options_.window_bytes;
  if (epoch_.load(std::memory_order_acquire) != internal::ForkEpoch()) {
    return stats;  // the parent's counters are not ours
  }
  if (side_ == StreamSide::kConnect) {
    std::lock_guard<std::mutex> lock(send_mu_);
    stats.connections = send_state_ == ConnState::kConnected ? 1 : 0;
    return stats;
  }
  std::lock_guard<std::mutex> lock(recv_mu_);
  stats.connections = conns_.size();
  stats.dropped_connections = dropped_connections_;
  stats.last_drop_reason = last_drop_reason_;
  stats.partial_frames_discarded = partial_frames_discarded_;
  return stats;
}

}  // namespace shmkit::internal
