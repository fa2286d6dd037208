// What the Redis tests share: one redis-server per test process, started on
// first use and killed when the process exits (and, failing that, by
// PR_SET_PDEATHSIG), and names no other test uses.
#ifndef SHMKIT_TESTS_REDIS_REDIS_TEST_ENV_H_
#define SHMKIT_TESTS_REDIS_REDIS_TEST_ENV_H_

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "redis_server.h"
#include "shmkit/redis/redis_queue.h"

namespace shmkit::testing {

// The process's server. A start failure fails the test (no skip).
inline RedisServer& SharedRedis() {
  static RedisServer* server = [] {
    absl::StatusOr<std::unique_ptr<RedisServer>> s = RedisServer::Start();
    if (!s.ok()) {
      ADD_FAILURE() << "cannot start redis-server: " << s.status();
      std::abort();
    }
    RedisServer* raw = s->release();
    // Killed at exit; a crash is covered by PR_SET_PDEATHSIG.
    static std::unique_ptr<RedisServer> owner(raw);
    return raw;
  }();
  return *server;
}

// "<prefix>-<pid>-<n>": unique per process and call.
inline std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> n{0};
  return absl::StrCat(prefix, "-", getpid(), "-", n.fetch_add(1));
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_REDIS_REDIS_TEST_ENV_H_
