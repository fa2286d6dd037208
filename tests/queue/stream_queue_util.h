// Helpers for the stream-socket queue tests (stream_queue_test.cc,
// stream_queue_fork_test.cc): listeners on a private name or a free port,
// raw connections that write whatever bytes a test wants, and a temporary
// directory for unix socket files.
#ifndef SHMKIT_TESTS_QUEUE_STREAM_QUEUE_UTIL_H_
#define SHMKIT_TESTS_QUEUE_STREAM_QUEUE_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/queue/internal/stream_endpoint.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"
#include "shmkit/ipc/queue/stream_queue.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::testing {

// A listener for `scheme` ("unix": a private abstract name; "tcp": a free
// loopback port).
inline absl::StatusOr<std::unique_ptr<StreamQueue>> Listener(
    absl::string_view scheme, const StreamQueueOptions& options = {}) {
  if (scheme == "tcp") return StreamQueue::OpenTcp("127.0.0.1", 0, options);
  return StreamQueue::OpenUnix("", options);
}

// A connecting handle to `listener`, opened by address as an unrelated
// process would.
inline absl::StatusOr<std::unique_ptr<StreamQueue>> Connector(
    const StreamQueue& listener, StreamQueueOptions options = {}) {
  options.side = StreamSide::kConnect;
  options.max_message_bytes = listener.Capabilities().max_message_bytes;
  if (listener.is_tcp()) {
    return StreamQueue::OpenTcp(listener.host(), listener.port(), options);
  }
  return StreamQueue::OpenUnix(listener.path(), options);
}

// A blocking socket connected to `listener`, or an invalid one.
inline UniqueFd RawConnect(const StreamQueue& listener) {
  absl::StatusOr<internal::StreamEndpoint> ep =
      listener.is_tcp()
          ? internal::TcpEndpoint(listener.host(), listener.port())
          : internal::UnixEndpoint(listener.path());
  if (!ep.ok()) return UniqueFd();
  absl::StatusOr<UniqueFd> fd = internal::StreamSocket(*ep);
  if (!fd.ok()) return UniqueFd();
  const int rc = internal::StartConnect(fd->get(), *ep);
  if (rc == EINPROGRESS) {
    pollfd p = {fd->get(), POLLOUT, 0};
    if (poll(&p, 1, 5000) != 1 || internal::ConnectResult(fd->get()) != 0) {
      return UniqueFd();
    }
  } else if (rc != 0) {
    return UniqueFd();
  }
  fcntl(fd->get(), F_SETFL, fcntl(fd->get(), F_GETFL) & ~O_NONBLOCK);
  return *std::move(fd);
}

// The bytes of a data frame as a sender writes them.
inline std::string Frame(absl::string_view payload, int64_t type,
                         uint32_t length_field) {
  std::string out(internal::kStreamFrameHeaderBytes, '\0');
  internal::EncodeStreamFrameHeader(
      length_field, type, reinterpret_cast<unsigned char*>(out.data()));
  out.append(payload.data(), payload.size());
  return out;
}
inline std::string Frame(absl::string_view payload, int64_t type = 1) {
  return Frame(payload, type, static_cast<uint32_t>(payload.size()));
}

inline bool WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A temporary directory, removed with what is left in it when destroyed.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/shmkit-stream-test-XXXXXX";
    if (mkdtemp(name) != nullptr) path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_QUEUE_STREAM_QUEUE_UTIL_H_
