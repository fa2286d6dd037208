// StreamQueue: the design in brief (the contract is in stream_queue.h).
//
// Per handle, per process:
//
//   wake_        eventfd; written once by Remove() (or when another process
//                removed the queue) and never drained, so every wait of
//                every thread includes it and returns
//   send side    (send_mu_) one connection to the listener, its state
//                (none / connecting / connected), `tail_` (the unwritten
//                rest of the last frame committed to it) and the flow
//                control counters (committed, reported taken, last query)
//   listen side  (recv_mu_) the listening socket (shared across fork), an
//                epoll set (listening socket, wake_, every accepted
//                connection, keyed by a never-reused id), the accepted
//                connections with their reassembly buffers and counts of
//                bytes taken, and `ready_`, the ids of connections holding
//                a whole frame, in turn
//
// The state belongs to the process whose ForkEpoch() is in `epoch_`. Every
// entry point checks it; a child rebuilds its own (Rehome): it closes its
// copies of the parent's connections, epoll set and eventfd without
// shutdown() (which would act on the parent's sockets too) and without
// epoll_ctl() (the epoll set is the parent's too), and makes new ones. Only
// the listening socket is kept: it is the one thing processes may share,
// since accept() hands each connection to one of them.
//
// Sending. All descriptors are non-blocking; no thread blocks while holding
// send_mu_. Under the lock a sender (1) connects if needed, (2) writes the
// pending tail, (3) checks the window (committed - reported taken), and
// only then (4) writes its own frame with one sendmsg(header, payload
// [, credit query]). Whatever the kernel did not take becomes the tail.
// Frames thus never interleave, and a frame that has started is finished
// before the next one starts, by whichever call comes next. A caller waits
// (poll) without the lock: for POLLOUT when the kernel is full, for POLLIN
// (a report, or the listener's end of file) when the window is spent, and
// always for the eventfd. It knows its frame is out once `send_written_`
// reaches the frame's end; a connection that breaks meanwhile bumps
// `send_generation_`, so the waiter learns its frame was lost with it.
// Credit queries: one at a time, written only when the window is spent,
// and the last thing written until the report comes back. A listener thus
// writes only to a sender that is waiting for it, and when a sender exits
// with a report unread (tcp then resets the connection, dropping whatever
// the sender had not transmitted yet), the report says the listener took
// everything the sender wrote: nothing is lost.
//
// Receiving. Under recv_mu_ a receiver takes the next whole frame from
// `ready_` (round robin: a connection that still holds a whole frame goes
// to the back). When none is ready it looks at epoll without waiting:
// accepts new connections and reads connections that hold no whole frame
// (at most one frame plus 64 KiB each), checking each header as soon as it
// is complete, so that a length above max_message_bytes drops the
// connection before anything is allocated for it. A credit query at the
// head of a buffer is answered at once (everything before it was taken).
// Then it waits in epoll_wait without the lock and handles what that
// returns under the lock again; ids of connections closed meanwhile are
// ignored. A receive in a process whose own send left a tail writes that
// tail first (this very process may be the one that has to read it).
#include "shmkit/ipc/queue/stream_queue.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;
using internal::kStreamFrameHeaderBytes;
using internal::RetryOnEintr;
using internal::StreamEndpoint;
using internal::StreamTransport;

// Bytes a receiver reads from one connection at a time beyond the frame it
// completes: enough to bring many small frames per read().
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxEvents = 64;
// Deliveries from `ready_` between two looks at epoll, so connections that
// became readable meanwhile get their turn.
constexpr int kPollEvery = 16;
// epoll keys besides connection ids (which start at 1).
constexpr uint64_t kListenerKey = 0;
constexpr uint64_t kWakeKey = UINT64_MAX;
// A unix listener's backlog was full (connect: EAGAIN): try again after
// this long; no descriptor tells when there is room.
constexpr int kConnectRetryMs = 5;
// The smallest window: room for a few headers besides the message.
constexpr uint64_t kMinWindowBytes = 1024;

QueueCapabilities StreamCapabilities(bool tcp, size_t max_message_bytes) {
  QueueCapabilities caps;
  caps.backend = tcp ? "tcp" : "unix";
  caps.max_message_bytes = max_message_bytes;
  caps.typed_receive = false;
  caps.bidirectional = false;
  caps.attachable = true;
  caps.pollable_fd = false;
  caps.shared_channel = false;
  return caps;
}

// The time left in `wait` for poll()/epoll_wait(): -1 forever, rounded up
// to whole milliseconds so that a wait never ends before its deadline.
int TimeoutMs(const WaitMode& wait) {
  switch (wait.kind()) {
    case WaitMode::Kind::kForever:
      return -1;
    case WaitMode::Kind::kNone:
      return 0;
    case WaitMode::Kind::kDeadline: {
      const int64_t left = wait.deadline_ns() - internal::MonotonicNanos();
      if (left <= 0) return 0;
      return static_cast<int>(
          std::min<int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    }
  }
  return 0;
}

// connect() errors that mean nobody is there to talk to.
bool NobodyListens(int err) {
  return err == ENOENT || err == ECONNREFUSED || err == ECONNRESET ||
         err == ECONNABORTED || err == ETIMEDOUT || err == EHOSTUNREACH ||
         err == ENETUNREACH || err == EPIPE || err == ENOTCONN;
}

std::string ErrnoText(int err) {
  char buffer[128];
  return strerror_r(err, buffer, sizeof(buffer));
}

absl::Status WithSpec(const QueueSpec& spec, const absl::Status& st) {
  return absl::Status(st.code(), absl::StrCat("queue spec \"", spec.text,
                                              "\": ", st.message()));
}

}  // namespace

// ---- opening -------------------------------------------------------------

StreamQueue::StreamQueue(StreamEndpoint endpoint,
                         const StreamQueueOptions& options, bool private_name)
    : Queue(StreamCapabilities(endpoint.transport == StreamTransport::kTcp,
                               options.max_message_bytes)),
      endpoint_(std::move(endpoint)),
      options_(options),
      side_(options.side),
      private_name_(private_name) {
  description_ = absl::StrCat(
      is_tcp() ? "tcp" : "unix", " queue ", endpoint_.ToString(),
      side_ == StreamSide::kListen
          ? (private_name_ ? " (listening, private)" : " (listening)")
          : " (connecting)");
}

StreamQueue::~StreamQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<StreamQueue>> StreamQueue::OpenUnix(
    absl::string_view path, const StreamQueueOptions& options) {
  if (path.empty()) {
    if (options.side == StreamSide::kConnect) {
      return absl::InvalidArgumentError(
          "a connecting unix queue needs the listener's path");
    }
    // A fresh name can only clash with a socket of another process that
    // picked the same pid, counter and nanosecond: try a few.
    absl::Status last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      absl::StatusOr<std::unique_ptr<StreamQueue>> q =
          Open(internal::PrivateUnixEndpoint(), options, true);
      if (q.ok() || !absl::IsAlreadyExists(q.status())) return q;
      last = q.status();
    }
    return last;
  }
  SHMKIT_ASSIGN_OR_RETURN(StreamEndpoint ep, internal::UnixEndpoint(path));
  return Open(std::move(ep), options, false);
}

absl::StatusOr<std::unique_ptr<StreamQueue>> StreamQueue::OpenTcp(
    absl::string_view host, uint16_t port, const StreamQueueOptions& options) {
  if (options.side == StreamSide::kConnect && port == 0) {
    return absl::InvalidArgumentError(
        "a connecting tcp queue needs the listener's port (not 0)");
  }
  SHMKIT_ASSIGN_OR_RETURN(StreamEndpoint ep, internal::TcpEndpoint(host, port));
  return Open(std::move(ep), options, false);
}

absl::StatusOr<std::unique_ptr<StreamQueue>> StreamQueue::Open(
    StreamEndpoint endpoint, const StreamQueueOptions& options,
    bool private_name) {
  if (options.max_message_bytes < 1 ||
      options.max_message_bytes > internal::kStreamMaxMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes ", options.max_message_bytes,
                     " is outside 1..", internal::kStreamMaxMessageBytes));
  }
  if (options.window_bytes < kMinWindowBytes ||
      options.window_bytes > internal::kStreamMaxMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("window_bytes ", options.window_bytes, " is outside ",
                     kMinWindowBytes, "..", internal::kStreamMaxMessageBytes));
  }
  if (options.connect_timeout < absl::ZeroDuration() ||
      options.close_linger < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "connect_timeout and close_linger must not be negative");
  }
  internal::StreamListener listener;
  if (options.side == StreamSide::kListen) {
    if (options.backlog < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("backlog ", options.backlog, " is not positive"));
    }
    absl::StatusOr<uint64_t> somaxconn = internal::ReadSomaxconn();
    if (somaxconn.ok() && static_cast<uint64_t>(options.backlog) > *somaxconn) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "listen backlog: asked for ", options.backlog,
          " but net.core.somaxconn = ", *somaxconn,
          " (read from /proc/sys/net/core/somaxconn; raise it with sysctl -w "
          "net.core.somaxconn=...)"));
    }
    SHMKIT_ASSIGN_OR_RETURN(
        listener, internal::Listen(endpoint, options.backlog, options.mode));
  }
  std::unique_ptr<StreamQueue> q(
      new StreamQueue(std::move(endpoint), options, private_name));
  q->listen_fd_ = std::move(listener.fd);
  q->socket_dev_ = listener.dev;
  q->socket_ino_ = listener.ino;
  q->creator_pid_ = internal::SelfPid();
  q->epoch_.store(internal::ForkEpoch(), std::memory_order_release);
  if (absl::Status st = q->MakeWakeAndEpoll(); !st.ok()) {
    (void)q->Remove();  // frees the path this handle bound
    return st;
  }
  if (options.side == StreamSide::kListen) return q;

  // The connecting side connects now, so that a missing listener is an
  // error of the open, not of the first send.
  const WaitMode wait = WaitMode::For(options.connect_timeout);
  std::unique_lock<std::mutex> lock(q->send_mu_);
  while (true) {
    int err = 0;
    const Step step = q->Connect(err);
    if (step == Step::kDone) break;
    if (step == Step::kError) {
      const std::string where =
          absl::StrCat(q->is_tcp() ? "tcp " : "unix ", q->endpoint_.ToString());
      if (err == ENOENT) {
        return absl::NotFoundError(absl::StrCat(
            "no socket at ", where, " (connect: ", ErrnoText(err), ")"));
      }
      if (NobodyListens(err)) {
        return absl::UnavailableError(absl::StrCat(
            "nobody listens on ", where, " (connect: ", ErrnoText(err), ")"));
      }
      return ErrnoStatus(err, absl::StrCat("connect(", where, ")"));
    }
    if (wait.Expired()) {
      return absl::UnavailableError(absl::StrCat(
          "no connection to ", q->endpoint_.ToString(), " within ",
          absl::FormatDuration(options.connect_timeout), " (connect_ms)"));
    }
    bool peer_event = false;
    const int fd = q->send_fd_.get();
    const bool retry = q->send_state_ == ConnState::kNone;
    lock.unlock();
    absl::Status st = q->WaitSendable(fd, retry, true, wait, peer_event);
    lock.lock();
    SHMKIT_RETURN_IF_ERROR(st);
  }
  lock.unlock();
  SHMKIT_RETURN_IF_ERROR(q->SetRole(QueueRole::kSender));
  return q;
}

absl::StatusOr<std::unique_ptr<Queue>> StreamQueue::FromSpec(
    const QueueSpec& spec) {
  const bool tcp = spec.scheme == "tcp";
  internal::SpecReader reader(spec);
  std::optional<std::string> path, host;
  std::optional<uint64_t> port;
  std::optional<mode_t> mode;
  if (tcp) {
    SHMKIT_ASSIGN_OR_RETURN(host, reader.String("host"));
    SHMKIT_ASSIGN_OR_RETURN(port, reader.Uint("port", 0, 65535));
  } else {
    SHMKIT_ASSIGN_OR_RETURN(path, reader.String("path"));
  }
  SHMKIT_ASSIGN_OR_RETURN(std::optional<std::string> role,
                          reader.Choice("role", {"listen", "connect"}));
  SHMKIT_ASSIGN_OR_RETURN(
      std::optional<uint64_t> max_bytes,
      reader.Uint("max_bytes", 1, internal::kStreamMaxMessageBytes));
  SHMKIT_ASSIGN_OR_RETURN(
      std::optional<uint64_t> window,
      reader.Uint("window", kMinWindowBytes, internal::kStreamMaxMessageBytes));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> backlog,
                          reader.Uint("backlog", 1, INT_MAX));
  if (!tcp) {
    SHMKIT_ASSIGN_OR_RETURN(mode, reader.Mode("mode"));
  }
  constexpr uint64_t kDayMs = 24 * 3600 * 1000;
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> connect_ms,
                          reader.Uint("connect_ms", 0, kDayMs));
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> linger_ms,
                          reader.Uint("linger_ms", 0, kDayMs));
  SHMKIT_RETURN_IF_ERROR(reader.Finish());

  StreamQueueOptions options;
  const bool connect = role.has_value() && *role == "connect";
  options.side = connect ? StreamSide::kConnect : StreamSide::kListen;
  if (max_bytes.has_value()) options.max_message_bytes = *max_bytes;
  if (window.has_value()) options.window_bytes = *window;
  if (connect_ms.has_value()) {
    options.connect_timeout = absl::Milliseconds(*connect_ms);
  }
  if (linger_ms.has_value()) {
    options.close_linger = absl::Milliseconds(*linger_ms);
  }
  if (backlog.has_value()) {
    if (connect) {
      return reader.Error("backlog", "applies to role=listen only");
    }
    options.backlog = static_cast<int>(*backlog);
  }
  if (connect_ms.has_value() && !connect) {
    return reader.Error("connect_ms", "applies to role=connect only");
  }
  if (path.has_value()) {
    if (absl::Status st = internal::CheckUnixPath(*path); !st.ok()) {
      return reader.Error("path", st.message());
    }
  }
  if (mode.has_value()) {
    if (connect || !path.has_value() || (*path)[0] == '@') {
      return reader.Error("mode",
                          "applies only to a listener's socket file (a path "
                          "starting with '/')");
    }
    options.mode = *mode;
  }

  absl::StatusOr<std::unique_ptr<StreamQueue>> q;
  if (tcp) {
    if (connect && port.value_or(0) == 0) {
      return reader.Error("port",
                          "is required with role=connect: the listener's port "
                          "(1..65535)");
    }
    q = OpenTcp(host.value_or("127.0.0.1"),
                static_cast<uint16_t>(port.value_or(0)), options);
  } else {
    if (connect && !path.has_value()) {
      return reader.Error("path",
                          "is required with role=connect: the listener's path");
    }
    q = OpenUnix(path.value_or(""), options);
  }
  if (!q.ok()) return WithSpec(spec, q.status());
  return std::unique_ptr<Queue>(*std::move(q));
}

std::string StreamQueue::Describe() const { return description_; }

std::string StreamQueue::ConnectSpec() const {
  return absl::StrCat(is_tcp() ? absl::StrCat("tcp:host=", endpoint_.host,
                                              ",port=", endpoint_.port)
                               : absl::StrCat("unix:path=", endpoint_.path),
                      ",role=connect,max_bytes=", options_.max_message_bytes,
                      ",window=", options_.window_bytes);
}

// ---- per process -------------------------------------------------------

absl::Status StreamQueue::MakeWakeAndEpoll() {
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

absl::Status StreamQueue::EnsureProcess() {
  if (epoch_.load(std::memory_order_acquire) == internal::ForkEpoch()) {
    return absl::OkStatus();
  }
  return Rehome();
}

absl::Status StreamQueue::Rehome() {
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

absl::Status StreamQueue::RemovedError() const {
  return absl::FailedPreconditionError(
      absl::StrCat(Describe(), " was removed"));
}

absl::Status StreamQueue::PeerGone(absl::string_view why) const {
  return absl::FailedPreconditionError(absl::StrCat(Describe(), ": ", why));
}

void StreamQueue::SignalWake() {
  const uint64_t one = 1;
  if (wake_.valid()) (void)!write(wake_.get(), &one, sizeof(one));
}

// ---- sending -------------------------------------------------------------

StreamQueue::Step StreamQueue::Connect(int& err) {
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
void StreamQueue::ForgetSendConnection() {
  send_state_ = ConnState::kNone;
  ++send_generation_;
  send_written_ = send_committed_ = 0;
  credit_consumed_ = query_end_ = 0;
  report_bytes_ = 0;
  tail_.clear();
  tail_begin_ = 0;
  tail_pending_.store(false, std::memory_order_relaxed);
}

void StreamQueue::BreakConnection() {
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

absl::Status StreamQueue::SendError(int err, absl::string_view call) {
  BreakConnection();
  if (NobodyListens(err)) {
    return PeerGone(absl::StrCat("the listener went away (", call, ": ",
                                 ErrnoText(err), ")"));
  }
  return ErrnoStatus(err, absl::StrCat(call, "(", Describe(), ")"));
}

StreamQueue::Step StreamQueue::FlushTail(absl::Status& error) {
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

StreamQueue::Step StreamQueue::WriteCommitted(const iovec* iov, int count,
                                              size_t total,
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

bool StreamQueue::HasCredit(uint64_t frame_bytes) const {
  const uint64_t outstanding = send_committed_ - credit_consumed_;
  return outstanding == 0 || outstanding + frame_bytes <= options_.window_bytes;
}

StreamQueue::Step StreamQueue::WriteFrame(const unsigned char* header,
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

StreamQueue::Step StreamQueue::WriteQuery(absl::Status& error) {
  unsigned char query[kStreamFrameHeaderBytes];
  internal::EncodeStreamQuery(query);
  const iovec iov = {query, kStreamFrameHeaderBytes};
  const Step step = WriteCommitted(&iov, 1, kStreamFrameHeaderBytes, error);
  if (step == Step::kDone) query_end_ = send_committed_;
  return step;
}

absl::Status StreamQueue::ReadReports() {
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

absl::Status StreamQueue::WaitSendable(int fd, bool connect_retry,
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
  if (poll(p, n, timeout) < 0 && errno != EINTR) {
    return ErrnoStatus(errno, absl::StrCat("poll(", Describe(), ")"));
  }
  peer_event =
      n == 2 &&
      (p[1].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  return absl::OkStatus();
}

absl::Status StreamQueue::SendImpl(absl::string_view bytes, int64_t type,
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

absl::Status StreamQueue::FlushForClose() {
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

// ---- receiving -----------------------------------------------------------

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

void StreamQueue::CloseConn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  // Explicitly: a copy in a child (not yet rehomed) would keep the
  // registration alive after close().
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
  conns_.erase(it);
}

void StreamQueue::DropConn(Conn& conn, const std::string& why) {
  ++dropped_connections_;
  last_drop_reason_ = absl::StrCat(
      "dropped the connection from ",
      internal::PeerName(conn.fd.get(), endpoint_.transport), ": ", why);
  // The sender learns at once (EPIPE), even if a child holds a copy.
  shutdown(conn.fd.get(), SHUT_RDWR);
  CloseConn(conn.id);
}

void StreamQueue::CloseAllConns(bool shutdown_them) {
  for (auto& [id, conn] : conns_) {
    if (shutdown_them) shutdown(conn->fd.get(), SHUT_RDWR);
    if (epoll_.valid()) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn->fd.get(), nullptr);
    }
  }
  conns_.clear();
  ready_.clear();
}

void StreamQueue::OnListenerGone() {
  // Another process shut the listening socket down: Remove().
  removed_.store(true, std::memory_order_release);
  SignalWake();
  CloseAllConns(true);
}

absl::Status StreamQueue::AcceptAll() {
  for (int i = 0; i < kMaxEvents; ++i) {
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      const int err = errno;
      if (err == EAGAIN) return absl::OkStatus();
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
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

bool StreamQueue::AnswerQueries(Conn& conn) {
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

void StreamQueue::ReadConn(Conn& conn) {
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

absl::Status StreamQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                      TypeFilter filter, Truncation truncation,
                                      const WaitMode& wait) {
  (void)filter;  // Any() only: the wrapper refused the others
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
      pending = epoll_wait(epoll_.get(), events.data(), kMaxEvents, 0);
      if (pending < 0) {
        if (errno != EINTR) {
          return ErrnoStatus(errno,
                             absl::StrCat("epoll_wait(", Describe(), ")"));
        }
        pending = 0;
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

    if (role() == QueueRole::kReceiver && ever_connected_ && conns_.empty()) {
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
    pending = epoll_wait(epoll_fd, events.data(), kMaxEvents, timeout);
    const int err = errno;
    lock.lock();
    if (pending < 0) {
      if (err != EINTR) {
        return ErrnoStatus(err, absl::StrCat("epoll_wait(", Describe(), ")"));
      }
      pending = 0;
    }
  }
}

// ---- lifetime --------------------------------------------------------------

absl::Status StreamQueue::ApplyRole(QueueRole role) {
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

absl::Status StreamQueue::RemoveImpl() {
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
        UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr,
                            SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
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

absl::Status StreamQueue::CloseImpl() {
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
    (void)RemoveImpl();
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

absl::StatusOr<QueueStats> StreamQueue::StatsImpl() const {
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

}  // namespace shmkit
