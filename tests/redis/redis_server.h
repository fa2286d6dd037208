// RedisServer: a real redis-server for one test, on a free loopback port in
// a private temporary directory (its config, log and any persistence files
// live there and are deleted with it). The server dies with the test
// process (PR_SET_PDEATHSIG) and is killed and reaped by the destructor, so
// a failing test leaves nothing running. Start() fails (never skips) when
// redis-server is missing.
#ifndef SHMKIT_TESTS_REDIS_REDIS_SERVER_H_
#define SHMKIT_TESTS_REDIS_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shmkit::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;     // requirepass when not empty
    bool appendonly = false;  // AOF with appendfsync always
  };
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start() {
    return Start(Options{});
  }
  ~RedisServer();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // redis://127.0.0.1:<port>/0, with the password when one is set (or
  // with `password` instead when given).
  std::string url() const;
  std::string url_with_password(absl::string_view password) const;

  // SIGKILL and reap.
  absl::Status Kill();
  // Starts it again on the same port and directory; waits until it answers.
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a server that accepts connections but never answers.
  absl::Status Pause();
  absl::Status Resume();

  // Runs one command on a fresh connection (AUTH included) and returns the
  // reply as text ("(nil)", "(integer) 3", "(error) ...", or the string;
  // arrays as their elements joined by '\n').
  absl::StatusOr<std::string> Run(std::initializer_list<absl::string_view> args);

 private:
  RedisServer() = default;
  absl::Status Spawn();
  absl::Status WaitReady();

  Options options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_REDIS_REDIS_SERVER_H_
