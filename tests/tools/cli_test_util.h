// Running the real `shmkit` binary (and python3, for JSON and XML checks)
// from tests.
#ifndef SHMKIT_TESTS_TOOLS_CLI_TEST_UTIL_H_
#define SHMKIT_TESTS_TOOLS_CLI_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace shmkit::testing {

struct CliResult {
  int code = -1;                 // exit code; -1 when killed or not run
  std::string out;               // standard output
  std::string err;               // standard error
  std::string Describe() const;  // for failure messages
};

// Runs `program` (a path, or a name looked up in PATH) with `args`, feeding
// `input` on standard input, and waits at most `timeout` (then SIGKILL).
CliResult RunProgram(const std::string& program,
                     const std::vector<std::string>& args,
                     const std::string& input = "",
                     absl::Duration timeout = absl::Seconds(120));

// The shmkit binary under test (SHMKIT_CLI_PATH, set by CMake).
CliResult Shmkit(const std::vector<std::string>& args,
                 const std::string& input = "");

// Runs a python3 script with `args` (sys.argv[1:]); the scripts exit 0 when
// their checks pass and print what failed otherwise.
CliResult Python(const std::string& script,
                 const std::vector<std::string>& args);

// A temporary file holding `content`, removed by the destructor.
class TempFile {
 public:
  explicit TempFile(const std::string& content = "");
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  std::string Read() const;

 private:
  std::string path_;
};

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_TOOLS_CLI_TEST_UTIL_H_
