// RawRedis: a bare hiredis connection for the benchmark baselines (one
// command per call, nothing of shmkit's in between).
#ifndef SHMKIT_TOOLS_SHMKIT_BENCH_RAW_REDIS_H_
#define SHMKIT_TOOLS_SHMKIT_BENCH_RAW_REDIS_H_

#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct redisContext;

namespace shmkit::cli::bench {

class RawRedis {
 public:
  // Connects to a redis:// URL (AUTH and SELECT as it says).
  static absl::StatusOr<std::unique_ptr<RawRedis>> Connect(
      absl::string_view url);
  ~RawRedis();
  RawRedis(const RawRedis&) = delete;
  RawRedis& operator=(const RawRedis&) = delete;

  // Runs one command (at most 4 arguments). False on a transport or
  // server error, described in `*error`. The reply, when a string (or the
  // second element of a two-element array, as BLPOP answers), goes to
  // `*reply` if given.
  bool Run(std::initializer_list<absl::string_view> args, std::string* reply,
           std::string* error);
  redisContext* context() { return c_; }

 private:
  explicit RawRedis(redisContext* c) : c_(c) {}
  redisContext* c_;
};

}  // namespace shmkit::cli::bench

#endif  // SHMKIT_TOOLS_SHMKIT_BENCH_RAW_REDIS_H_
