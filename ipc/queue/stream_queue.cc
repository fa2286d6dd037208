#include "shmkit/ipc/queue/stream_queue.h"

#include <climits>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"
#include "shmkit/ipc/queue/internal/stream_endpoint.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"
#include "shmkit/ipc/queue/internal/stream_queue_core.h"

// The mechanism (and its design note) is internal::StreamQueueCore
// (internal/stream_queue_core.h): its sending role is in
// internal/stream_sender.cc, its listening role in
// internal/stream_listener.cc. This file opens queues and forwards.
namespace shmkit {
namespace {

using internal::ErrnoStatus;
using internal::ErrnoText;
using internal::kMinStreamWindowBytes;
using internal::NobodyListens;
using internal::StreamEndpoint;

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

absl::Status WithSpec(const QueueSpec& spec, const absl::Status& st) {
  return absl::Status(st.code(), absl::StrCat("queue spec \"", spec.text,
                                              "\": ", st.message()));
}

}  // namespace

// ---- opening -------------------------------------------------------------

StreamQueue::StreamQueue(std::unique_ptr<internal::StreamQueueCore> core)
    : Queue(StreamCapabilities(core->is_tcp(),
                               core->options().max_message_bytes)),
      core_(std::move(core)) {}

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
  if (options.window_bytes < kMinStreamWindowBytes ||
      options.window_bytes > internal::kStreamMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "window_bytes ", options.window_bytes, " is outside ",
        kMinStreamWindowBytes, "..", internal::kStreamMaxMessageBytes));
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
      new StreamQueue(std::make_unique<internal::StreamQueueCore>(
          std::move(endpoint), options, private_name)));
  internal::StreamQueueCore& c = *q->core_;
  c.listen_fd_ = std::move(listener.fd);
  c.socket_dev_ = listener.dev;
  c.socket_ino_ = listener.ino;
  c.creator_pid_ = internal::SelfPid();
  c.epoch_.store(internal::ForkEpoch(), std::memory_order_release);
  if (absl::Status st = c.MakeWakeAndEpoll(); !st.ok()) {
    (void)q->Remove();  // frees the path this handle bound
    return st;
  }
  if (options.side == StreamSide::kListen) return q;

  // The connecting side connects now, so that a missing listener is an
  // error of the open, not of the first send.
  const WaitMode wait = WaitMode::For(options.connect_timeout);
  std::unique_lock<std::mutex> lock(c.send_mu_);
  while (true) {
    int err = 0;
    const internal::StreamQueueCore::Step step = c.Connect(err);
    if (step == internal::StreamQueueCore::Step::kDone) break;
    if (step == internal::StreamQueueCore::Step::kError) {
      const std::string where =
          absl::StrCat(c.is_tcp() ? "tcp " : "unix ", c.endpoint_.ToString());
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
          "no connection to ", c.endpoint_.ToString(), " within ",
          absl::FormatDuration(options.connect_timeout), " (connect_ms)"));
    }
    bool peer_event = false;
    const int fd = c.send_fd_.get();
    const bool retry =
        c.send_state_ == internal::StreamQueueCore::ConnState::kNone;
    lock.unlock();
    absl::Status st = c.WaitSendable(fd, retry, true, wait, peer_event);
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
  SHMKIT_ASSIGN_OR_RETURN(std::optional<uint64_t> window,
                          reader.Uint("window", kMinStreamWindowBytes,
                                      internal::kStreamMaxMessageBytes));
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

StreamQueue::~StreamQueue() { (void)Close(); }

StreamSide StreamQueue::side() const { return core_->side(); }
bool StreamQueue::is_tcp() const { return core_->is_tcp(); }
const std::string& StreamQueue::path() const { return core_->endpoint().path; }
const std::string& StreamQueue::host() const { return core_->endpoint().host; }
uint16_t StreamQueue::port() const { return core_->endpoint().port; }
std::string StreamQueue::ConnectSpec() const { return core_->ConnectSpec(); }
std::string StreamQueue::Describe() const { return core_->Describe(); }

absl::Status StreamQueue::SendImpl(absl::string_view bytes, int64_t type,
                                   const WaitMode& wait) {
  return core_->Send(bytes, type, wait);
}

absl::Status StreamQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                      TypeFilter filter, Truncation truncation,
                                      const WaitMode& wait) {
  (void)filter;  // Any() only: the wrapper refused the others
  return core_->Receive(out, max_bytes, truncation, wait, role());
}

absl::Status StreamQueue::ApplyRole(QueueRole role) {
  return core_->ApplyRole(role);
}
absl::Status StreamQueue::RemoveImpl() { return core_->Remove(); }
absl::Status StreamQueue::CloseImpl() { return core_->Close(); }
absl::StatusOr<QueueStats> StreamQueue::StatsImpl() const {
  return core_->Stats();
}

}  // namespace shmkit
