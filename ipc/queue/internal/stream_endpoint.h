// Addresses and sockets of the stream-socket queues (stream_queue.h): the
// checks on a unix path or a tcp host and port, binding a listener (with
// the stale-socket-file rule), starting a connection, and naming a peer.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_STREAM_ENDPOINT_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_STREAM_ENDPOINT_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::internal {

enum class StreamTransport { kUnix, kTcp };

// The longest unix socket path: sockaddr_un::sun_path less the terminating
// NUL (a filesystem path) or less the leading NUL (an abstract name).
size_t MaxUnixPathBytes();

struct StreamEndpoint {
  StreamTransport transport = StreamTransport::kUnix;
  sockaddr_storage addr = {};
  socklen_t addr_len = 0;
  // unix: the absolute path, or "@name" for the abstract namespace.
  std::string path = {};
  // tcp: the host as given and the port (after a bind to port 0, the one
  // the kernel chose).
  std::string host = {};
  uint16_t port = 0;

  bool abstract() const { return !path.empty() && path[0] == '@'; }
  // "/run/app/q", "@shmkit-...", "127.0.0.1:5000", "[::1]:5000".
  std::string ToString() const;
};

// InvalidArgument when `path` is neither absolute nor "@name", or does not
// fit sun_path; the message says what is wrong with it (callers prefix the
// key or the spec).
absl::Status CheckUnixPath(absl::string_view path);
absl::StatusOr<StreamEndpoint> UnixEndpoint(absl::string_view path);
// A fresh abstract name, "@shmkit-<pid>-<n>-<nanoseconds>".
StreamEndpoint PrivateUnixEndpoint();
// Resolves `host` (a numeric address, or a name through getaddrinfo; the
// first answer wins). InvalidArgument when it does not resolve, Unavailable
// when the resolver failed for now.
absl::StatusOr<StreamEndpoint> TcpEndpoint(absl::string_view host,
                                           uint16_t port);

// A non-blocking, close-on-exec stream socket for `ep`'s family.
absl::StatusOr<UniqueFd> StreamSocket(const StreamEndpoint& ep);

// A bound, listening socket. For a unix filesystem path, the device and
// inode of the socket file, so that Remove() unlinks our file and never
// one a later listener put there.
struct StreamListener {
  UniqueFd fd;
  dev_t dev = 0;
  ino_t ino = 0;
};
// Binds `ep` and listens. unix path already taken: a socket file nobody
// listens on (connect refused) is stale and replaced; a live listener, or
// a file that is not a socket, is AlreadyExists. tcp: the port is filled in
// when it was 0; an address in use is AlreadyExists. `mode` is applied to a
// unix socket file before listen().
absl::StatusOr<StreamListener> Listen(StreamEndpoint& ep, int backlog,
                                      mode_t mode);

// Starts connecting `fd` (non-blocking) to `ep`: 0 when connected,
// EINPROGRESS while a tcp handshake runs (wait for POLLOUT, then
// ConnectResult), or the errno of the failure (EAGAIN: a unix listener's
// backlog is full, try again later).
int StartConnect(int fd, const StreamEndpoint& ep);
// The outcome of an EINPROGRESS connect once the socket is writable: 0 or
// an errno.
int ConnectResult(int fd);

// Who is at the other end of an accepted connection, for error messages:
// "pid 123 (uid 1000)" (unix, from SO_PEERCRED) or "10.0.0.5:41234".
std::string PeerName(int fd, StreamTransport transport);

// net.core.somaxconn, read at run time: listen() silently lowers a larger
// backlog to it, so a larger request is refused instead.
absl::StatusOr<uint64_t> ReadSomaxconn();

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_STREAM_ENDPOINT_H_
