// The queue conformance suite (tests/queue/conformance_suite.h) over the
// "redis:" backend, against the redis-server this test process starts.
#include "conformance_suite.h"
#include "redis_test_env.h"
#include "shmkit/redis/redis_queue.h"

namespace shmkit {
namespace {

struct RedisBackend {
  static constexpr const char* kName = "redis";
  // A private queue (destroyed by Close) small enough to fill quickly.
  static std::string Spec() {
    EXPECT_TRUE(RegisterRedisQueueScheme().ok());
    return absl::StrCat("redis:url=", testing::SharedRedis().url(),
                        ",private,max_messages=256,max_bytes=262144");
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, QueueConformance,
                               ::testing::Types<RedisBackend>,
                               ::shmkit::testing::BackendNames);

}  // namespace
}  // namespace shmkit
