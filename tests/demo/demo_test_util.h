// Helpers for the prefork-demo tests: run the real server binary, drive it
// with curl, wrk and raw sockets, and read what ipcs says.
#ifndef SHMKIT_TESTS_DEMO_DEMO_TEST_UTIL_H_
#define SHMKIT_TESTS_DEMO_DEMO_TEST_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shmkit::testing {

// Whether `program` is an executable in PATH.
bool InPath(const std::string& program);

struct CommandResult {
  int code = -1;  // exit code; -1 when killed or not run
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] looked up in PATH) and waits at most `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(60));

// A process running in the background with its output in files.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  ~BackgroundProcess();  // SIGKILL and reap if still running
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Waits for the exit; nullopt on timeout (the process keeps running).
  // Returns the exit code, or -signal when killed by a signal.
  std::optional<int> Wait(absl::Duration timeout);
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string dir_;
};

struct HttpResult {
  int status = 0;
  std::string headers;  // the header block as received
  std::string body;
  std::string error;  // curl's complaint when status is 0
};

// The prefork-demo server on an ephemeral loopback port.
class DemoServer {
 public:
  // Starts the server with `flags` and waits until it prints its port.
  static absl::StatusOr<std::unique_ptr<DemoServer>> Start(
      const std::vector<std::string>& flags = {});

  int port() const { return port_; }
  pid_t master_pid() const { return process_.pid(); }
  std::string Url(absl::string_view path) const;

  // curl -s -i [extra...] <url>.
  HttpResult Curl(absl::string_view path,
                  const std::vector<std::string>& extra = {}) const;
  // GET /stats (fails the test when it does not answer 200).
  std::string Stats() const;

  // SIGTERM, then waits for the exit code (nullopt on timeout).
  std::optional<int> Terminate(absl::Duration timeout = absl::Seconds(30));
  BackgroundProcess& process() { return process_; }

 private:
  explicit DemoServer(const std::vector<std::string>& argv) : process_(argv) {}
  BackgroundProcess process_;
  int port_ = 0;
};

// Sends `request` on a new loopback connection to `port` and returns what
// comes back until the server closes the connection or `timeout` passes.
std::string RawExchange(int port, absl::string_view request,
                        absl::Duration timeout = absl::Seconds(5));

// A connected loopback socket (-1 on failure).
int ConnectLoopback(int port);
// Reads until EOF or `timeout`.
std::string ReadAll(int fd, absl::Duration timeout);

// The integer after "\"name\":" in `json`, searching from the first
// occurrence of `after` (if given). Enough for the server's flat JSON.
std::optional<int64_t> JsonInt(absl::string_view json, absl::string_view name,
                               absl::string_view after = "");

struct StatsWorker {
  int index = -1;
  std::string role;
  int64_t pid = 0;
  int64_t incarnation = 0;
  int64_t requests = 0;
};
std::vector<StatsWorker> ParseWorkers(absl::string_view stats);

// What the wrk script count_hits.lua printed.
struct WrkCounts {
  int64_t hit_200 = 0;
  int64_t ping_200 = 0;
  int64_t status_429 = 0;
  int64_t other = 0;
  int64_t connect_errors = 0;
  int64_t read_errors = 0;
  int64_t write_errors = 0;
  int64_t timeouts = 0;
};
std::optional<WrkCounts> ParseWrk(absl::string_view out);
// The wrk command line for count_hits.lua: `hit_seconds` of GET /hit, then
// GET /ping until `seconds`.
std::vector<std::string> WrkCommand(int port, int threads, int connections,
                                    int seconds, int hit_seconds);

// Keys ("0x5eed0001") of every System V object ipcs lists, and the ids of
// the segments whose creator (cpid) is in `pids`.
std::set<std::string> IpcKeys();
std::set<std::string> SegmentsCreatedBy(const std::set<int64_t>& pids);

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_DEMO_DEMO_TEST_UTIL_H_
