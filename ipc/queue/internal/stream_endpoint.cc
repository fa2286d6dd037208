#include "shmkit/ipc/queue/internal/stream_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"

namespace shmkit::internal {
namespace {

constexpr size_t kSunPathBytes = sizeof(sockaddr_un::sun_path);

// Fills the sockaddr_un of a checked unix path. Abstract names are exactly
// their bytes after a leading NUL (no terminator counts), filesystem paths
// end with a NUL.
void FillUnixAddress(StreamEndpoint& ep) {
  sockaddr_un un = {};
  un.sun_family = AF_UNIX;
  if (ep.abstract()) {
    un.sun_path[0] = '\0';
    std::memcpy(un.sun_path + 1, ep.path.data() + 1, ep.path.size() - 1);
    ep.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                         ep.path.size());
  } else {
    std::memcpy(un.sun_path, ep.path.data(), ep.path.size());
    ep.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                         ep.path.size() + 1);
  }
  std::memcpy(&ep.addr, &un, sizeof(un));
}

void SetPort(StreamEndpoint& ep, uint16_t port) {
  ep.port = port;
  if (ep.addr.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&ep.addr)->sin_port = htons(port);
  } else if (ep.addr.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&ep.addr)->sin6_port = htons(port);
  }
}

std::string Quoted(const StreamEndpoint& ep) {
  return absl::StrCat(ep.transport == StreamTransport::kUnix ? "unix " : "tcp ",
                      ep.ToString());
}

// Whether some process listens on the unix socket file `ep`: a connect
// that is refused means nobody does (the file is stale).
absl::StatusOr<bool> SomeoneListens(const StreamEndpoint& ep) {
  absl::StatusOr<UniqueFd> probe = StreamSocket(ep);
  if (!probe.ok()) return probe.status();
  const int err = StartConnect(probe->get(), ep);
  if (err == ECONNREFUSED) return false;
  if (err == 0 || err == EAGAIN || err == EINPROGRESS) return true;
  return ErrnoStatus(err, absl::StrCat("connect(", Quoted(ep),
                                       ") to see whether a listener is there"));
}

}  // namespace

size_t MaxUnixPathBytes() { return kSunPathBytes - 1; }

std::string StreamEndpoint::ToString() const {
  if (transport == StreamTransport::kUnix) return path;
  if (addr.ss_family == AF_INET6) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::Status CheckUnixPath(absl::string_view path) {
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("contains a NUL byte");
  }
  if (path.empty() || (path[0] != '/' && path[0] != '@')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", path,
        "\" is not absolute (a unix socket path starts with '/', or with "
        "'@' for a name in the abstract namespace)"));
  }
  if (path == "@") {
    return absl::InvalidArgumentError(
        "\"@\" names nothing (an abstract name needs bytes after the '@')");
  }
  const size_t bytes = path[0] == '@' ? path.size() - 1 : path.size();
  if (bytes > MaxUnixPathBytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", path, "\" is ", bytes,
                     " bytes; sockaddr_un::sun_path holds at most ",
                     MaxUnixPathBytes(), " (", kSunPathBytes, " less the ",
                     path[0] == '@' ? "leading" : "terminating", " NUL)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StreamEndpoint> UnixEndpoint(absl::string_view path) {
  if (absl::Status st = CheckUnixPath(path); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unix socket path ", st.message()));
  }
  StreamEndpoint ep;
  ep.transport = StreamTransport::kUnix;
  ep.path = std::string(path);
  FillUnixAddress(ep);
  return ep;
}

StreamEndpoint PrivateUnixEndpoint() {
  static std::atomic<uint32_t> counter{0};
  StreamEndpoint ep;
  ep.transport = StreamTransport::kUnix;
  ep.path = absl::StrCat("@shmkit-", SelfPid(), "-",
                         counter.fetch_add(1, std::memory_order_relaxed), "-",
                         MonotonicNanos());
  FillUnixAddress(ep);
  return ep;
}

absl::StatusOr<StreamEndpoint> TcpEndpoint(absl::string_view host,
                                           uint16_t port) {
  if (host.empty()) {
    return absl::InvalidArgumentError("tcp host is empty");
  }
  const std::string host_text(host);
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host_text.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    const std::string why = absl::StrCat(
        "tcp host \"", host, "\" does not resolve: getaddrinfo: ",
        rc == EAI_SYSTEM ? ErrnoText(errno) : std::string(gai_strerror(rc)));
    return rc == EAI_AGAIN ? absl::UnavailableError(why)
                           : absl::InvalidArgumentError(why);
  }
  StreamEndpoint ep;
  ep.transport = StreamTransport::kTcp;
  ep.host = host_text;
  std::memcpy(&ep.addr, found->ai_addr, found->ai_addrlen);
  ep.addr_len = found->ai_addrlen;
  freeaddrinfo(found);
  SetPort(ep, port);
  return ep;
}

absl::StatusOr<UniqueFd> StreamSocket(const StreamEndpoint& ep) {
  const int family =
      ep.transport == StreamTransport::kUnix ? AF_UNIX : ep.addr.ss_family;
  UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return ErrnoStatus(errno, absl::StrCat("socket(", Quoted(ep), ")"));
  }
  return fd;
}

absl::StatusOr<StreamListener> Listen(StreamEndpoint& ep, int backlog,
                                      mode_t mode) {
  absl::StatusOr<UniqueFd> fd = StreamSocket(ep);
  if (!fd.ok()) return fd.status();
  StreamListener out;
  out.fd = *std::move(fd);
  const bool unix_file =
      ep.transport == StreamTransport::kUnix && !ep.abstract();
  if (ep.transport == StreamTransport::kTcp) {
    // A listener restarted on its port must not wait for the old
    // connections' TIME_WAIT to end.
    const int one = 1;
    if (setsockopt(out.fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
        0) {
      return ErrnoStatus(
          errno, absl::StrCat("setsockopt(", Quoted(ep), ", SO_REUSEADDR)"));
    }
  }
  for (int attempt = 0;; ++attempt) {
    if (bind(out.fd.get(), reinterpret_cast<const sockaddr*>(&ep.addr),
             ep.addr_len) == 0) {
      break;
    }
    const int err = errno;
    if (err != EADDRINUSE) {
      return ErrnoStatus(err, absl::StrCat("bind(", Quoted(ep), ")"));
    }
    if (!unix_file || attempt > 0) {
      return absl::AlreadyExistsError(absl::StrCat(
          "bind(", Quoted(ep), "): address in use (another listener has it)"));
    }
    // A unix path that exists: replace it only if it is a socket file that
    // nobody listens on, the leftover of a listener that died.
    struct stat st;
    if (lstat(ep.path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // gone meanwhile: bind again
      return ErrnoStatus(errno, absl::StrCat("lstat(", ep.path, ")"));
    }
    if (!S_ISSOCK(st.st_mode)) {
      return absl::AlreadyExistsError(
          absl::StrCat(ep.path,
                       " exists and is not a socket; a unix queue does not "
                       "replace it"));
    }
    absl::StatusOr<bool> live = SomeoneListens(ep);
    if (!live.ok()) return live.status();
    if (*live) {
      return absl::AlreadyExistsError(absl::StrCat(
          "a listener is already on unix ", ep.path,
          " (connect to it with role=connect, or Remove() it first)"));
    }
    if (unlink(ep.path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno,
                         absl::StrCat("unlink(stale socket ", ep.path, ")"));
    }
  }
  if (unix_file) {
    // Before listen(): nobody can connect yet, so the umask's bits never
    // let anyone in.
    if (chmod(ep.path.c_str(), mode) != 0) {
      const absl::Status st = ErrnoStatus(
          errno, absl::StrCat("chmod(", ep.path, ", 0", absl::Hex(mode), ")"));
      unlink(ep.path.c_str());
      return st;
    }
    struct stat st;
    if (stat(ep.path.c_str(), &st) != 0) {
      const absl::Status status =
          ErrnoStatus(errno, absl::StrCat("stat(", ep.path, ")"));
      unlink(ep.path.c_str());
      return status;
    }
    out.dev = st.st_dev;
    out.ino = st.st_ino;
  }
  if (listen(out.fd.get(), backlog) != 0) {
    const absl::Status st = ErrnoStatus(
        errno, absl::StrCat("listen(", Quoted(ep), ", backlog ", backlog, ")"));
    if (unix_file) unlink(ep.path.c_str());
    return st;
  }
  if (ep.transport == StreamTransport::kTcp && ep.port == 0) {
    sockaddr_storage bound = {};
    socklen_t len = sizeof(bound);
    if (getsockname(out.fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) !=
        0) {
      return ErrnoStatus(errno, absl::StrCat("getsockname(", Quoted(ep), ")"));
    }
    const uint16_t port =
        bound.ss_family == AF_INET6
            ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
            : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    SetPort(ep, port);
  }
  return out;
}

int StartConnect(int fd, const StreamEndpoint& ep) {
  const int rc = RetryOnEintr([&] {
    return connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr),
                   ep.addr_len);
  });
  if (rc == 0) return 0;
  // EINTR after the first try: the handshake goes on, as for EINPROGRESS;
  // RetryOnEintr then sees EALREADY.
  if (errno == EALREADY) return EINPROGRESS;
  return errno;
}

int ConnectResult(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

std::string PeerName(int fd, StreamTransport transport) {
  if (transport == StreamTransport::kUnix) {
    ucred cred = {};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      return absl::StrCat("pid ", cred.pid, " (uid ", cred.uid, ")");
    }
    return "an unknown unix peer";
  }
  sockaddr_storage peer = {};
  socklen_t len = sizeof(peer);
  char text[INET6_ADDRSTRLEN] = {0};
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      return absl::StrCat("[", text, "]:", ntohs(in6->sin6_port));
    }
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&peer);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(in4->sin_port));
  }
  return "an unknown tcp peer";
}

absl::StatusOr<uint64_t> ReadSomaxconn() {
  constexpr const char* kPath = "/proc/sys/net/core/somaxconn";
  std::ifstream in(kPath);
  std::string text;
  uint64_t value = 0;
  if (!in || !std::getline(in, text) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) {
    return absl::UnavailableError(absl::StrCat("cannot read ", kPath));
  }
  return value;
}

}  // namespace shmkit::internal
