// StreamQueueCore's sending role: the connection to the listener, the
// unwritten tail of a committed frame, and flow control (credit queries and
// the listener's reports). See stream_queue_core.h for the design.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"
#include "shmkit/ipc/queue/internal/stream_queue_core.h"

namespace shmkit::internal {

StreamQueueCore::Step StreamQueueCore::Connect(int& err) {
  if (send_state_ == ConnState::kConnected) return Step::kDone;
  if (send_state_ == ConnState::kNone) {
    if (send_fd_.valid()) {
      if (send_waiters_ > 0) {
        retired_.push_back(std::move(send_fd_));
      } else {
        send_fd_.reset();
      }
    }
    absl::StatusOr<UniqueFd> fd = internal::StreamSocket(endpoint_);
    if (!fd.ok()) {
      err = errno != 0 ? errno : EMFILE;
      return Step::kError;
    }
    if (is_tcp()) {
      // Frames go out whole in one sendmsg(); Nagle would only hold small
      // ones back while an acknowledgement is due.
      const int one = 1;
      (void)setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    const int rc = internal::StartConnect(fd->get(), endpoint_);
    if (rc == EAGAIN) return Step::kWait;  // backlog full: retry later
    if (rc != 0 && rc != EINPROGRESS) {
      err = rc;
      return Step::kError;
    }
    send_fd_ = *std::move(fd);
    send_state_ = rc == 0 ? ConnState::kConnected : ConnState::kConnecting;
  }
  if (send_state_ == ConnState::kConnecting) {
    pollfd p = {send_fd_.get(), POLLOUT, 0};
    if (poll(&p, 1, 0) <= 0 || p.revents == 0) return Step::kWait;
    const int result = internal::ConnectResult(send_fd_.get());
    if (result != 0) {
      send_fd_.reset();
      send_state_ = ConnState::kNone;
      err = result;
      return Step::kError;
    }
    send_state_ = ConnState::kConnected;
  }
  ++send_generation_;
  send_written_ = send_committed_ = 0;
  credit_consumed_ = query_end_ = 0;
  report_bytes_ = 0;
  return Step::kDone;
}

// The sending connection's bookkeeping back to "not connected"; the next
// send connects afresh.
void StreamQueueCore::ForgetSendConnection() {
  send_state_ = ConnState::kNone;
  ++send_generation_;
  send_written_ = send_committed_ = 0;
  credit_consumed_ = query_end_ = 0;
  report_bytes_ = 0;
  tail_.clear();
  tail_begin_ = 0;
  tail_pending_.store(false, std::memory_order_relaxed);
}

void StreamQueueCore::BreakConnection() {
  if (send_fd_.valid()) {
    // Wakes threads polling it; kept open while they do.
    shutdown(send_fd_.get(), SHUT_RDWR);
    if (send_waiters_ > 0) {
      retired_.push_back(std::move(send_fd_));
    } else {
      send_fd_.reset();
    }
  }
  ForgetSendConnection();
}

absl::Status StreamQueueCore::SendError(int err, absl::string_view call) {
  BreakConnection();
  if (NobodyListens(err)) {
    return PeerGone(absl::StrCat("the listener went away (", call, ": ",
                                 ErrnoText(err), ")"));
  }
  return ErrnoStatus(err, absl::StrCat(call, "(", Describe(), ")"));
}

StreamQueueCore::Step StreamQueueCore::FlushTail(absl::Status& error) {
  while (tail_begin_ < tail_.size()) {
    const ssize_t n = RetryOnEintr([&] {
      return send(send_fd_.get(), tail_.data() + tail_begin_,
                  tail_.size() - tail_begin_, MSG_NOSIGNAL | MSG_DONTWAIT);
    });
    if (n < 0) {
      if (errno == EAGAIN) return Step::kWait;
      error = SendError(errno, "send");
      return Step::kError;
    }
    tail_begin_ += static_cast<size_t>(n);
    send_written_ += static_cast<uint64_t>(n);
  }
  if (!tail_.empty()) {
    tail_.clear();
    if (tail_.capacity() > kReadChunk) tail_.shrink_to_fit();
    tail_begin_ = 0;
    tail_pending_.store(false, std::memory_order_relaxed);
  }
  return Step::kDone;
}

StreamQueueCore::Step StreamQueueCore::WriteCommitted(const iovec* iov,
                                                      int count, size_t total,
                                                      absl::Status& error) {
  msghdr msg = {};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = static_cast<size_t>(count);
  const ssize_t n = RetryOnEintr([&] {
    return sendmsg(send_fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  });
  if (n < 0) {
    if (errno == EAGAIN) return Step::kWait;
    error = SendError(errno, "sendmsg");
    return Step::kError;
  }
  size_t written = static_cast<size_t>(n);
  send_written_ += written;
  send_committed_ += total;
  if (written < total) {
    // Committed all the same: the rest is written before anything else.
    tail_.clear();
    tail_begin_ = 0;
    for (int i = 0; i < count; ++i) {
      const auto* base = static_cast<const unsigned char*>(iov[i].iov_base);
      const size_t skip = std::min(written, iov[i].iov_len);
      tail_.insert(tail_.end(), base + skip, base + iov[i].iov_len);
      written -= skip;
    }
    tail_pending_.store(true, std::memory_order_relaxed);
  }
  return Step::kDone;
}

bool StreamQueueCore::HasCredit(uint64_t frame_bytes) const {
  const uint64_t outstanding = send_committed_ - credit_consumed_;
  return outstanding == 0 || outstanding + frame_bytes <= options_.window_bytes;
}

StreamQueueCore::Step StreamQueueCore::WriteFrame(const unsigned char* header,
                                                  absl::string_view bytes,
                                                  uint64_t& frame_end,
                                                  absl::Status& error) {
  iovec iov[2];
  int count = 0;
  iov[count++] = {const_cast<unsigned char*>(header), kStreamFrameHeaderBytes};
  if (!bytes.empty()) {
    iov[count++] = {const_cast<char*>(bytes.data()), bytes.size()};
  }
  const size_t total = kStreamFrameHeaderBytes + bytes.size();
  const uint64_t start = send_committed_;
  const Step step = WriteCommitted(iov, count, total, error);
  if (step == Step::kDone) frame_end = start + total;
  return step;
}

StreamQueueCore::Step StreamQueueCore::WriteQuery(absl::Status& error) {
  unsigned char query[kStreamFrameHeaderBytes];
  internal::EncodeStreamQuery(query);
  const iovec iov = {query, kStreamFrameHeaderBytes};
  const Step step = WriteCommitted(&iov, 1, kStreamFrameHeaderBytes, error);
  if (step == Step::kDone) query_end_ = send_committed_;
  return step;
}

absl::Status StreamQueueCore::ReadReports() {
  unsigned char buffer[256];
  while (true) {
    const ssize_t n = RetryOnEintr([&] {
      return recv(send_fd_.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    });
    if (n < 0) {
      if (errno == EAGAIN) return absl::OkStatus();
      return SendError(errno, "recv");
    }
    if (n == 0) {
      BreakConnection();
      return PeerGone("the listener closed the connection");
    }
    for (ssize_t i = 0; i < n; ++i) {
      report_[report_bytes_++] = buffer[i];
      if (report_bytes_ < internal::kStreamReportBytes) continue;
      report_bytes_ = 0;
      const internal::StreamFrameHeader r =
          internal::DecodeStreamFrameHeader(report_);
      const uint64_t consumed = static_cast<uint64_t>(r.type);
      if (r.magic != internal::kStreamReportMagic || r.length != 0 ||
          consumed < credit_consumed_ || consumed > send_committed_) {
        BreakConnection();
        return PeerGone(absl::StrCat(
            "the listener wrote something that is not a credit report "
            "(magic 0x",
            absl::Hex(r.magic), ", ", consumed,
            " bytes taken); not a shmkit stream queue? Connection closed"));
      }
      credit_consumed_ = consumed;
    }
    if (static_cast<size_t>(n) < sizeof(buffer)) return absl::OkStatus();
  }
}

absl::Status StreamQueueCore::WaitSendable(int fd, bool connect_retry,
                                           bool want_out, const WaitMode& wait,
                                           bool& peer_event) {
  pollfd p[2] = {
      {wake_.get(), POLLIN, 0},
      {fd, static_cast<short>(POLLIN | POLLRDHUP | (want_out ? POLLOUT : 0)),
       0}};
  if (fd < 0) connect_retry = true;  // nothing to poll: look again soon
  const nfds_t n = connect_retry ? 1 : 2;
  int timeout = TimeoutMs(wait);
  if (connect_retry) {
    timeout =
        timeout < 0 ? kConnectRetryMs : std::min(timeout, kConnectRetryMs);
  }
  if (NoEventsOnEintr(poll(p, n, timeout)) < 0) {
    return ErrnoStatus(errno, absl::StrCat("poll(", Describe(), ")"));
  }
  peer_event =
      n == 2 &&
      (p[1].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  return absl::OkStatus();
}

absl::Status StreamQueueCore::Send(absl::string_view bytes, int64_t type,
                                   const WaitMode& wait) {
  SHMKIT_RETURN_IF_ERROR(EnsureProcess());
  unsigned char header[kStreamFrameHeaderBytes];
  internal::EncodeStreamFrameHeader(static_cast<uint32_t>(bytes.size()), type,
                                    header);
  const uint64_t frame_bytes = kStreamFrameHeaderBytes + bytes.size();
  std::unique_lock<std::mutex> lock(send_mu_);
  bool committed = false;
  uint64_t frame_end = 0;
  uint64_t generation = 0;
  // tcp reads what the listener wrote before every message: its end of
  // file shows there, where unix has EPIPE at once.
  bool read_reports = is_tcp();
  while (true) {
    if (send_waiters_ == 0 && !retired_.empty()) retired_.clear();
    if (removed_.load(std::memory_order_acquire)) {
      if (!committed) return RemovedError();
      return absl::FailedPreconditionError(absl::StrCat(
          Describe(), " was removed before the message was written whole"));
    }
    if (committed && generation != send_generation_) {
      return PeerGone(
          "the connection broke before the whole message was written");
    }
    if (read_reports && send_state_ == ConnState::kConnected) {
      SHMKIT_RETURN_IF_ERROR(ReadReports());
      if (committed && generation != send_generation_) continue;
    }
    absl::Status error;
    bool want_out = true;  // waiting for room in the kernel, or a report
    bool credit_full = false;
    if (committed) {
      if (FlushTail(error) == Step::kError) return error;
      if (send_written_ >= frame_end) return absl::OkStatus();
      // Try and timed sends have committed the message: the rest goes out
      // with the next call on this handle.
      if (wait.kind() != WaitMode::Kind::kForever && wait.Expired()) {
        return absl::OkStatus();
      }
    } else {
      int err = 0;
      const Step connected = Connect(err);
      if (connected == Step::kError) {
        if (NobodyListens(err)) {
          return PeerGone(
              absl::StrCat("no listener (connect: ", ErrnoText(err), ")"));
        }
        return ErrnoStatus(err, absl::StrCat("connect(", Describe(), ")"));
      }
      if (connected == Step::kDone) {
        const Step flushed = FlushTail(error);
        if (flushed == Step::kError) return error;
        if (flushed == Step::kDone) {
          if (!HasCredit(frame_bytes) && !read_reports) {
            SHMKIT_RETURN_IF_ERROR(ReadReports());
          }
          if (HasCredit(frame_bytes)) {
            const Step wrote = WriteFrame(header, bytes, frame_end, error);
            if (wrote == Step::kError) return error;
            if (wrote == Step::kDone) {
              committed = true;
              generation = send_generation_;
              if (send_written_ >= frame_end) return absl::OkStatus();
              if (wait.kind() != WaitMode::Kind::kForever && wait.Expired()) {
                return absl::OkStatus();
              }
            }
          } else {
            // The window is spent: make sure a report is on its way. The
            // query is the last thing written until the report is read.
            credit_full = true;
            if (!QueryOutstanding()) {
              const Step asked = WriteQuery(error);
              if (asked == Step::kError) return error;
            }
            // Room in the kernel matters only for a query not yet out.
            want_out = tail_begin_ < tail_.size() || !QueryOutstanding();
          }
        }
      }
      if (!committed) {
        const char* why =
            send_state_ != ConnState::kConnected
                ? ": the connection is still being set up"
                : (credit_full ? " is full (the listener has not taken the "
                                 "window's worth of messages sent)"
                               : " is full (the socket buffers are)");
        if (wait.kind() == WaitMode::Kind::kNone) {
          return absl::UnavailableError(absl::StrCat(Describe(), why));
        }
        if (wait.Expired()) {
          return absl::DeadlineExceededError(absl::StrCat(
              Describe(), why, " for ", absl::FormatDuration(wait.timeout())));
        }
      }
    }
    // Wait without the lock for room, a report, the connection, or
    // Remove().
    const int fd = send_fd_.get();
    const bool retry = send_state_ == ConnState::kNone;
    bool peer_event = false;
    ++send_waiters_;
    lock.unlock();
    const absl::Status waited =
        WaitSendable(fd, retry, want_out, wait, peer_event);
    lock.lock();
    --send_waiters_;
    SHMKIT_RETURN_IF_ERROR(waited);
    read_reports = is_tcp() || peer_event;
  }
}

absl::Status StreamQueueCore::FlushForClose() {
  if (tail_begin_ >= tail_.size()) return absl::OkStatus();
  if (removed_.load(std::memory_order_acquire)) {
    BreakConnection();
    return absl::OkStatus();
  }
  const size_t left = tail_.size() - tail_begin_;
  const WaitMode wait = WaitMode::For(options_.close_linger);
  while (true) {
    absl::Status error;
    const Step step = FlushTail(error);
    // The listener went away: the message is lost with the rest of what
    // was queued to it, as in any queue removed before it was read.
    if (step != Step::kWait) return absl::OkStatus();
    if (wait.Expired()) {
      BreakConnection();
      return absl::DataLossError(absl::StrCat(
          Describe(), ": the last ", left,
          " bytes of a message could not be written within ",
          absl::FormatDuration(options_.close_linger),
          " (linger_ms); the listener discards the partial frame"));
    }
    bool peer_event = false;
    SHMKIT_RETURN_IF_ERROR(
        WaitSendable(send_fd_.get(), false, true, wait, peer_event));
    if (peer_event && !ReadReports().ok()) return absl::OkStatus();
  }
}

}  // namespace shmkit::internal
