// StreamQueueCore's listening role: accepting connections, reading and
// reassembling frames per connection, answering credit queries, and
// delivering whole messages in turn. See stream_queue_core.h for the design.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"
#include "shmkit/ipc/queue/internal/stream_queue_core.h"

namespace shmkit::internal {

namespace {

enum class FrameState { kPartial, kWhole, kQuery, kBad };

// What `buffer` [begin, end) starts with; `frame_bytes` is the size of that
// frame (or of a header, when not even that is there), `why` what is wrong
// with a bad one.
FrameState InspectFrame(const std::vector<unsigned char>& buffer, size_t begin,
                        size_t end, size_t max_bytes, size_t& frame_bytes,
                        std::string& why) {
  frame_bytes = kStreamFrameHeaderBytes;
  if (end - begin < kStreamFrameHeaderBytes) return FrameState::kPartial;
  const internal::StreamFrameHeader h =
      internal::DecodeStreamFrameHeader(buffer.data() + begin);
  if (h.magic == internal::kStreamQueryMagic) {
    if (h.length == 0 && h.type == 0) return FrameState::kQuery;
    why = "a credit query has non-zero fields";
    return FrameState::kBad;
  }
  if (h.magic != internal::kStreamFrameMagic) {
    why = absl::StrCat("a frame starts with 0x", absl::Hex(h.magic),
                       ", not the magic 0x",
                       absl::Hex(internal::kStreamFrameMagic),
                       " (not a shmkit stream queue peer, or another format "
                       "version)");
    return FrameState::kBad;
  }
  if (h.length > max_bytes) {
    why = absl::StrCat("a frame announces ", h.length,
                       " bytes, more than max_bytes ", max_bytes);
    return FrameState::kBad;
  }
  if (h.type <= 0) {
    why = absl::StrCat("a frame has type ", h.type, " (types are > 0)");
    return FrameState::kBad;
  }
  frame_bytes = kStreamFrameHeaderBytes + h.length;
  return end - begin >= frame_bytes ? FrameState::kWhole : FrameState::kPartial;
}

}  // namespace

void StreamQueueCore::CloseConn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  // Explicitly: a copy in a child (not yet rehomed) would keep the
  // registration alive after close().
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
  conns_.erase(it);
}

void StreamQueueCore::DropConn(Conn& conn, const std::string& why) {
  ++dropped_connections_;
  last_drop_reason_ = absl::StrCat(
      "dropped the connection from ",
      internal::PeerName(conn.fd.get(), endpoint_.transport), ": ", why);
  // The sender learns at once (EPIPE), even if a child holds a copy.
  shutdown(conn.fd.get(), SHUT_RDWR);
  CloseConn(conn.id);
}

void StreamQueueCore::CloseAllConns(bool shutdown_them) {
  for (auto& [id, conn] : conns_) {
    if (shutdown_them) shutdown(conn->fd.get(), SHUT_RDWR);
    if (epoll_.valid()) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn->fd.get(), nullptr);
    }
  }
  conns_.clear();
  ready_.clear();
}

void StreamQueueCore::OnListenerGone() {
  // Another process shut the listening socket down: Remove().
  removed_.store(true, std::memory_order_release);
  SignalWake();
  CloseAllConns(true);
}

absl::Status StreamQueueCore::AcceptAll() {
  for (int i = 0; i < kMaxEvents; ++i) {
    UniqueFd fd(RetryOnEintr([&] {
      return accept4(listen_fd_.get(), nullptr, nullptr,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    }));
    if (!fd.valid()) {
      const int err = errno;
      if (err == EAGAIN) return absl::OkStatus();
      if (err == ECONNABORTED || err == EPROTO) continue;
      if (err == EINVAL) {  // shut down: removed by another process
        OnListenerGone();
        return absl::OkStatus();
      }
      return ErrnoStatus(err, absl::StrCat("accept4(", Describe(), ")"));
    }
    auto conn = std::make_unique<Conn>();
    conn->id = next_conn_id_++;
    epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = conn->id;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
      return ErrnoStatus(
          errno, absl::StrCat("epoll_ctl(ADD connection of ", Describe(), ")"));
    }
    conn->fd = std::move(fd);
    ever_connected_ = true;
    Conn& added = *conns_.emplace(conn->id, std::move(conn)).first->second;
    // What the sender wrote before we accepted is there already; epoll
    // would only report it on the next look.
    ReadConn(added);
  }
  return absl::OkStatus();
}

bool StreamQueueCore::AnswerQueries(Conn& conn) {
  size_t frame_bytes = 0;
  std::string why;
  while (true) {
    switch (InspectFrame(conn.buffer, conn.begin, conn.end,
                         options_.max_message_bytes, frame_bytes, why)) {
      case FrameState::kBad:
        DropConn(conn, why);
        return false;
      case FrameState::kWhole:
        if (!conn.ready) {
          conn.ready = true;
          ready_.push_back(conn.id);
        }
        return true;
      case FrameState::kPartial:
        return true;
      case FrameState::kQuery: {
        conn.begin += kStreamFrameHeaderBytes;
        conn.consumed += kStreamFrameHeaderBytes;
        unsigned char report[internal::kStreamReportBytes];
        internal::EncodeStreamReport(conn.consumed, report);
        const ssize_t n = RetryOnEintr([&] {
          return send(conn.fd.get(), report, sizeof(report),
                      MSG_NOSIGNAL | MSG_DONTWAIT);
        });
        // Full (EAGAIN): the sender does not read its reports, and only
        // it waits for them. Gone (EPIPE...): its end of file comes next.
        if (n > 0 && static_cast<size_t>(n) < sizeof(report)) {
          DropConn(conn, "a credit report could not be written whole");
          return false;
        }
        break;
      }
    }
  }
}

void StreamQueueCore::ReadConn(Conn& conn) {
  if (!AnswerQueries(conn) || conn.ready) return;
  size_t frame_bytes = 0;
  std::string why;
  (void)InspectFrame(conn.buffer, conn.begin, conn.end,
                     options_.max_message_bytes, frame_bytes, why);
  // Room for the rest of this frame, and a chunk more when it is small.
  if (conn.begin > 0) {
    std::memmove(conn.buffer.data(), conn.buffer.data() + conn.begin,
                 conn.end - conn.begin);
    conn.end -= conn.begin;
    conn.begin = 0;
  }
  const size_t capacity = std::max(frame_bytes, kReadChunk);
  if (conn.buffer.size() < capacity) conn.buffer.resize(capacity);
  const ssize_t n = RetryOnEintr([&] {
    return recv(conn.fd.get(), conn.buffer.data() + conn.end,
                conn.buffer.size() - conn.end, MSG_DONTWAIT);
  });
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    const int err = n < 0 ? errno : 0;
    if (n < 0 && err != ECONNRESET) {
      DropConn(conn, absl::StrCat("recv: ", ErrnoText(err)));
      return;
    }
    // End of file (or reset): the sender is gone. A partial frame is
    // what it did not finish; it is never delivered.
    if (conn.end > conn.begin) ++partial_frames_discarded_;
    CloseConn(conn.id);
    return;
  }
  conn.end += static_cast<size_t>(n);
  (void)AnswerQueries(conn);
}

absl::Status StreamQueueCore::Receive(Message& out, size_t max_bytes,
                                      Truncation truncation,
                                      const WaitMode& wait, QueueRole role) {
  SHMKIT_RETURN_IF_ERROR(EnsureProcess());
  std::unique_lock<std::mutex> lock(recv_mu_);
  if (!listen_fd_.valid() || !epoll_.valid()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), " does not listen in this process"));
  }
  std::array<epoll_event, kMaxEvents> events;
  int pending = 0;  // events from a wait, handled under the lock
  bool look = true;
  while (true) {
    if (removed_.load(std::memory_order_acquire)) return RemovedError();
    if (tail_pending_.load(std::memory_order_relaxed)) {
      // Our own process's unfinished frame may be what we are waiting for.
      std::unique_lock<std::mutex> send_lock(send_mu_, std::try_to_lock);
      if (send_lock.owns_lock() && send_state_ == ConnState::kConnected) {
        absl::Status ignored;  // a broken connection: its senders learn
        (void)FlushTail(ignored);
      }
    }
    if (pending == 0 && look &&
        (ready_.empty() || deliveries_since_poll_ >= kPollEvery)) {
      pending = NoEventsOnEintr(
          epoll_wait(epoll_.get(), events.data(), kMaxEvents, 0));
      if (pending < 0) {
        return ErrnoStatus(errno, absl::StrCat("epoll_wait(", Describe(), ")"));
      }
      deliveries_since_poll_ = 0;
    }
    look = false;
    for (int i = 0; i < pending; ++i) {
      const uint64_t key = events[i].data.u64;
      if (key == kWakeKey) continue;  // removed_ says it
      if (key == kListenerKey) {
        if (events[i].events & (EPOLLHUP | EPOLLERR)) {
          OnListenerGone();
          break;
        }
        SHMKIT_RETURN_IF_ERROR(AcceptAll());
        continue;
      }
      auto it = conns_.find(key);
      if (it == conns_.end() || it->second->ready) continue;
      ReadConn(*it->second);
    }
    pending = 0;
    if (removed_.load(std::memory_order_acquire)) return RemovedError();

    // The next whole frame, connections in turn.
    while (!ready_.empty()) {
      const uint64_t id = ready_.front();
      auto it = conns_.find(id);
      if (it == conns_.end()) {
        ready_.pop_front();
        continue;
      }
      Conn& conn = *it->second;
      const internal::StreamFrameHeader h =
          internal::DecodeStreamFrameHeader(conn.buffer.data() + conn.begin);
      if (h.length > max_bytes && truncation == Truncation::kError) {
        return absl::InvalidArgumentError(absl::StrCat(
            "next message in ", Describe(), " is ", h.length,
            " bytes, more than max_bytes ", max_bytes,
            "; it stays queued (pass Truncation::kAllow to take it "
            "truncated)"));
      }
      const size_t keep = std::min<size_t>(h.length, max_bytes);
      const char* payload = reinterpret_cast<const char*>(
          conn.buffer.data() + conn.begin + kStreamFrameHeaderBytes);
      out.type = h.type;
      out.data.assign(payload, keep);
      out.truncated = keep < h.length;
      conn.begin += kStreamFrameHeaderBytes + h.length;
      conn.consumed += kStreamFrameHeaderBytes + h.length;
      ready_.pop_front();
      ++deliveries_since_poll_;
      if (conn.begin == conn.end) {
        conn.begin = conn.end = 0;
        if (conn.buffer.size() > kReadChunk) {
          conn.buffer.resize(kReadChunk);
          conn.buffer.shrink_to_fit();
        }
      }
      // Queued again, at the back, if it holds another whole frame: round
      // robin. A credit query now at its head is answered.
      conn.ready = false;
      (void)AnswerQueries(conn);
      return absl::OkStatus();
    }

    if (role == QueueRole::kReceiver && ever_connected_ && conns_.empty()) {
      SHMKIT_RETURN_IF_ERROR(AcceptAll());
      if (conns_.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            Describe(),
            ": no sender left (every connection has closed and none is "
            "waiting)"));
      }
      look = true;
      continue;
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(Describe(), " is empty"));
    }
    if (wait.Expired()) {
      return absl::DeadlineExceededError(
          absl::StrCat(Describe(), ": no message within ",
                       absl::FormatDuration(wait.timeout())));
    }
    const int epoll_fd = epoll_.get();
    const int timeout = TimeoutMs(wait);
    lock.unlock();
    pending = NoEventsOnEintr(
        epoll_wait(epoll_fd, events.data(), kMaxEvents, timeout));
    const int err = errno;
    lock.lock();
    if (pending < 0) {
      return ErrnoStatus(err, absl::StrCat("epoll_wait(", Describe(), ")"));
    }
  }
}

}  // namespace shmkit::internal
