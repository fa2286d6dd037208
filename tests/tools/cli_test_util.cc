#include "cli_test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "test_util.h"

#ifndef SHMKIT_CLI_PATH
#error "SHMKIT_CLI_PATH must name the shmkit binary"
#endif

namespace shmkit::testing {

std::string CliResult::Describe() const {
  return absl::StrCat("exit code ", code, "\n--- stdout ---\n", out,
                      "\n--- stderr ---\n", err);
}

TempFile::TempFile(const std::string& content) {
  char name[] = "/tmp/shmkit-cli-test-XXXXXX";
  const int fd = mkstemp(name);
  if (fd >= 0) {
    path_ = name;
    size_t done = 0;
    while (done < content.size()) {
      const ssize_t n = write(fd, content.data() + done, content.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  }
}

TempFile::~TempFile() {
  if (!path_.empty()) unlink(path_.c_str());
}

std::string TempFile::Read() const {
  std::ifstream in(path_, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CliResult RunProgram(const std::string& program,
                     const std::vector<std::string>& args,
                     const std::string& input, absl::Duration timeout) {
  TempFile in(input), out, err;
  std::vector<std::string> argv_storage = {program};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ForkChild([&]() -> int {
    const int i = open(in.path().c_str(), O_RDONLY);
    const int o = open(out.path().c_str(), O_WRONLY | O_TRUNC);
    const int e = open(err.path().c_str(), O_WRONLY | O_TRUNC);
    if (i < 0 || o < 0 || e < 0) return 126;
    dup2(i, STDIN_FILENO);
    dup2(o, STDOUT_FILENO);
    dup2(e, STDERR_FILENO);
    execvp(argv[0], argv.data());
    std::perror(argv[0]);
    return 127;
  });
  CliResult result;
  std::optional<ChildExit> exit = WaitChild(pid, timeout);
  result.out = out.Read();
  result.err = err.Read();
  if (!exit.has_value()) {
    result.err += absl::StrCat("\n[killed: no exit within ",
                               absl::FormatDuration(timeout), "]");
  } else if (exit->exited) {
    result.code = exit->code;
  } else {
    result.err += absl::StrCat("\n[killed by signal ", exit->signal, "]");
  }
  return result;
}

CliResult Shmkit(const std::vector<std::string>& args,
                 const std::string& input) {
  return RunProgram(SHMKIT_CLI_PATH, args, input);
}

CliResult Python(const std::string& script,
                 const std::vector<std::string>& args) {
  std::vector<std::string> all = {"-c", script};
  all.insert(all.end(), args.begin(), args.end());
  return RunProgram("python3", all);
}

}  // namespace shmkit::testing
