// Helpers shared by the queue tests: one traits type per backend, so the
// same typed tests run against all seven.
#ifndef SHMKIT_TESTS_QUEUE_QUEUE_TEST_UTIL_H_
#define SHMKIT_TESTS_QUEUE_QUEUE_TEST_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/queue.h"

namespace shmkit::testing {

// Each backend: a name and the spec the tests open it with. Every spec is
// anonymous (nothing outlives the test); the ring is small enough to fill
// quickly and its slots hold 4 KiB.
struct SysvBackend {
  static constexpr const char* kName = "sysv";
  static constexpr const char* kSpec = "sysv:private";
};
struct PipeBackend {
  static constexpr const char* kName = "pipe";
  static constexpr const char* kSpec = "pipe";
};
struct FifoBackend {
  static constexpr const char* kName = "fifo";
  static constexpr const char* kSpec = "fifo";
};
struct SocketPairBackend {
  static constexpr const char* kName = "socketpair";
  static constexpr const char* kSpec = "socketpair";
};
struct RingBackend {
  static constexpr const char* kName = "ring";
  static constexpr const char* kSpec = "ring:slots=256,slot_bytes=4096";
};
// Stream sockets: a listener on a private abstract name, and one on a free
// loopback port. The handle sends by connecting to itself.
struct UnixBackend {
  static constexpr const char* kName = "unix";
  static constexpr const char* kSpec = "unix";
};
struct TcpBackend {
  static constexpr const char* kName = "tcp";
  static constexpr const char* kSpec = "tcp";
};

using AllBackends =
    ::testing::Types<SysvBackend, PipeBackend, FifoBackend, SocketPairBackend,
                     RingBackend, UnixBackend, TcpBackend>;

struct BackendNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// A payload of `n` bytes that differs at every position and per `seed`, so
// a spliced, shifted or truncated message never compares equal.
inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_QUEUE_QUEUE_TEST_UTIL_H_
