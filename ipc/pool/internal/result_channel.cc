// The result channel between a worker and the master: a socketpair per
// worker carrying length-prefixed frames (internal/frame.h). The worker
// side is WorkerContext::Send; the master side reads, frames and buffers
// results, and stops reading (back pressure) while its buffer is full. See
// worker_pool_impl.h for the design.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/pool/internal/frame.h"
#include "shmkit/ipc/pool/internal/worker_pool_impl.h"

namespace shmkit {

using internal::Deadline;
using internal::ErrnoStatus;
using internal::RetryOnEintr;

// ---- worker side ------------------------------------------------------------

absl::Status WorkerContext::Send(absl::string_view bytes) {
  if (bytes.size() > max_message_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("result of ", bytes.size(),
                                                   " bytes exceeds the pool's "
                                                   "max_message_bytes of ",
                                                   max_message_bytes_,
                                                   "; nothing was sent"));
  }
  internal::FrameHeader header =
      internal::MakeFrameHeader(static_cast<uint32_t>(bytes.size()));
  iovec iov[2] = {{&header, sizeof(header)},
                  {const_cast<char*>(bytes.data()), bytes.size()}};
  const size_t total = sizeof(header) + bytes.size();
  size_t sent = 0;
  std::lock_guard<std::mutex> lock(send_mu_);
  while (sent < total) {
    // Rebuild the vector past what was sent (a partial send).
    iovec rest[2];
    int count = 0;
    size_t skip = sent;
    for (const iovec& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      rest[count++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
      skip = 0;
    }
    msghdr msg{};
    msg.msg_iov = rest;
    msg.msg_iovlen = static_cast<size_t>(count);
    // MSG_NOSIGNAL: a master that has gone yields EPIPE, never SIGPIPE.
    const ssize_t n =
        RetryOnEintr([&] { return sendmsg(channel_fd_, &msg, MSG_NOSIGNAL); });
    if (n < 0) {
      return ErrnoStatus(
          errno, absl::StrCat("sendmsg(result channel of worker ", index_, ", ",
                              total - sent, " of ", total, " bytes)"));
    }
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

bool WorkerContext::MasterGone() const {
  pollfd p{master_fd_, POLLIN, 0};
  const int r = RetryOnEintr([&] { return poll(&p, 1, 0); });
  return r == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

bool WorkerContext::WaitMasterGoneFor(absl::Duration timeout) const {
  const Deadline deadline = Deadline::In(timeout);
  pollfd p{master_fd_, POLLIN, 0};
  const int r =
      RetryOnEintr([&] { return poll(&p, 1, deadline.PollTimeoutMs()); });
  return r == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

namespace internal {

void WorkerPoolImpl::UpdateChannelArming() {
  const bool want = !BackPressured();
  if (want == channels_armed_) return;
  channels_armed_ = want;
  for (Worker& w : workers_) {
    if (!w.channel.valid() || w.channel_in_epoll == want) continue;
    if (want) {
      w.channel_in_epoll =
          EpollAdd(w.channel.get(), Tag(kTagChannel, w.index, w.incarnation))
              .ok();
    } else {
      EpollDel(w.channel.get());
      w.channel_in_epoll = false;
    }
  }
}

void WorkerPoolImpl::CloseChannel(Worker& w) {
  if (w.channel_in_epoll) EpollDel(w.channel.get());
  w.channel_in_epoll = false;
  w.channel.reset();
}

bool WorkerPoolImpl::ParseFrames(Worker& w) {
  size_t pos = 0;
  bool ok = true;
  while (w.inbuf.size() - pos >= sizeof(FrameHeader)) {
    const std::optional<uint32_t> length =
        ParseFrameHeader(w.inbuf.data() + pos);
    if (!length.has_value() || *length > options_.max_message_bytes) {
      ok = false;
      break;
    }
    const size_t frame = sizeof(FrameHeader) + *length;
    if (w.inbuf.size() - pos < frame) {
      // Make room for the rest of this frame in one allocation.
      w.inbuf.reserve(pos + frame);
      break;
    }
    WorkerResult r;
    r.index = w.index;
    r.pid = w.pid;
    r.incarnation = w.incarnation;
    r.bytes.assign(w.inbuf, pos + sizeof(FrameHeader), *length);
    partial_bytes_ -= frame;
    result_bytes_ += *length;
    results_.push_back(std::move(r));
    ++stats_.results;
    pos += frame;
  }
  w.inbuf.erase(0, pos);
  // Do not keep the capacity of one large frame for the worker's lifetime.
  if (w.inbuf.empty() && w.inbuf.capacity() > (size_t{1} << 20)) {
    w.inbuf.shrink_to_fit();
  }
  return ok;
}

void WorkerPoolImpl::ReadChannel(Worker& w, bool drain) {
  constexpr size_t kChunk = 64 * 1024;
  while (w.channel.valid() && (drain || !BackPressured())) {
    const size_t old = w.inbuf.size();
    w.inbuf.resize(old + kChunk);
    const ssize_t n = RetryOnEintr(
        [&] { return read(w.channel.get(), w.inbuf.data() + old, kChunk); });
    w.inbuf.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n > 0) {
      partial_bytes_ += static_cast<size_t>(n);
      if (!ParseFrames(w)) {
        ChannelError(w,
                     "a frame header failed its check (the stream lost "
                     "its framing) or exceeds max_message_bytes");
        return;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) {
      ChannelError(w, ErrnoStatus(errno, "read(result channel)").ToString());
      return;
    }
    // EOF: the worker exited (or closed its end). A partial frame is
    // dropped when the worker is reaped.
    CloseChannel(w);
  }
  UpdateChannelArming();
}

void WorkerPoolImpl::ChannelError(Worker& w, std::string detail) {
  ++stats_.channel_errors;
  partial_bytes_ -= w.inbuf.size();
  w.inbuf.clear();
  CloseChannel(w);
  UpdateChannelArming();
  PoolEvent e;
  e.kind = PoolEvent::Kind::kChannelError;
  e.index = w.index;
  e.pid = w.pid;
  e.incarnation = w.incarnation;
  e.detail = std::move(detail);
  PushEvent(std::move(e));
}

}  // namespace internal
}  // namespace shmkit
