#include "demo_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#ifndef PREFORK_DEMO_PATH
#error "PREFORK_DEMO_PATH must name the prefork-demo binary"
#endif
#ifndef DEMO_LUA_PATH
#error "DEMO_LUA_PATH must name count_hits.lua"
#endif

namespace shmkit::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string MakeTempDir() {
  char name[] = "/tmp/prefork-demo-test-XXXXXX";
  return mkdtemp(name) != nullptr ? name : "";
}

// Forks and execs `argv` with stdout/stderr redirected to the given files.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out,
            const std::string& err) {
  std::vector<std::string> args = argv;
  std::vector<char*> raw;
  for (std::string& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int i = open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || i < 0) _exit(126);
    dup2(i, STDIN_FILENO);
    dup2(o, STDOUT_FILENO);
    dup2(e, STDERR_FILENO);
    execvp(raw[0], raw.data());
    std::perror(raw[0]);
    _exit(127);
  }
  return pid;
}

}  // namespace

bool InPath(const std::string& program) {
  const char* path = getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    const std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv)
    : dir_(MakeTempDir()) {
  pid_ = Spawn(argv, dir_ + "/out", dir_ + "/err");
}

BackgroundProcess::~BackgroundProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    (void)Wait(absl::Seconds(10));
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

bool BackgroundProcess::running() {
  if (status_.has_value() || pid_ <= 0) return false;
  return !Wait(absl::ZeroDuration()).has_value();
}

std::optional<int> BackgroundProcess::Wait(absl::Duration timeout) {
  if (status_.has_value()) return status_;
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return status_;
    }
    if (r < 0 || absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string BackgroundProcess::out() const { return ReadFile(dir_ + "/out"); }
std::string BackgroundProcess::err() const { return ReadFile(dir_ + "/err"); }

CommandResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout) {
  BackgroundProcess p(argv);
  CommandResult result;
  const std::optional<int> code = p.Wait(timeout);
  result.code = code.has_value() && *code >= 0 ? *code : -1;
  result.out = p.out();
  result.err = p.err();
  if (!code.has_value()) result.err += "\n[timed out; killed]";
  return result;
}

absl::StatusOr<std::unique_ptr<DemoServer>> DemoServer::Start(
    const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {PREFORK_DEMO_PATH};
  argv.insert(argv.end(), flags.begin(), flags.end());
  std::unique_ptr<DemoServer> server(new DemoServer(argv));
  // The server prints "... listening on http://127.0.0.1:<port>/ ..." in
  // one flushed line once its workers run. Generous: the sanitizer build on
  // a busy 2-core machine is slow.
  const std::regex listening("http://127\\.0\\.0\\.1:(\\d+)/");
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    const std::string out = server->process_.out();
    std::smatch m;
    if (std::regex_search(out, m, listening)) {
      server->port_ = std::stoi(m[1]);
      return server;
    }
    if (!server->process_.running()) {
      return absl::InternalError(absl::StrCat(
          "the server exited before listening:\n", server->process_.err()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no \"listening\" line after 30 s:\n", server->process_.err()));
}

std::string DemoServer::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

HttpResult DemoServer::Curl(absl::string_view path,
                            const std::vector<std::string>& extra) const {
  std::vector<std::string> argv = {"curl", "-s",         "-S",
                                   "-i",   "--max-time", "20"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(Url(path));
  const CommandResult r = RunCommand(argv);
  HttpResult result;
  if (r.code != 0) {
    result.error = absl::StrCat("curl exit ", r.code, ": ", r.err);
    return result;
  }
  const size_t end = r.out.find("\r\n\r\n");
  result.headers = r.out.substr(0, end);
  result.body = end == std::string::npos ? "" : r.out.substr(end + 4);
  const std::string status_line =
      result.headers.substr(0, result.headers.find("\r\n"));
  const std::vector<absl::string_view> first =
      absl::StrSplit(status_line, absl::MaxSplits(' ', 2));
  if (first.size() < 2 || !absl::SimpleAtoi(first[1], &result.status)) {
    result.error = absl::StrCat("no status line in: ", r.out);
  }
  return result;
}

std::string DemoServer::Stats() const {
  const HttpResult r = Curl("/stats");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  return r.body;
}

std::optional<int> DemoServer::Terminate(absl::Duration timeout) {
  kill(process_.pid(), SIGTERM);
  return process_.Wait(timeout);
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string ReadAll(int fd, absl::Duration timeout) {
  std::string data;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) break;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

std::string RawExchange(int port, absl::string_view request,
                        absl::Duration timeout) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "[connect failed]";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (e.g. after a 431)
    sent += static_cast<size_t>(n);
  }
  std::string reply = ReadAll(fd, timeout);
  close(fd);
  return reply;
}

std::optional<int64_t> JsonInt(absl::string_view json, absl::string_view name,
                               absl::string_view after) {
  size_t from = 0;
  if (!after.empty()) {
    from = json.find(after);
    if (from == absl::string_view::npos) return std::nullopt;
  }
  const std::string needle = absl::StrCat("\"", name, "\":");
  const size_t at = json.find(needle, from);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = json.substr(at + needle.size());
  const size_t end = rest.find_first_not_of("-0123456789");
  int64_t value = 0;
  if (!absl::SimpleAtoi(rest.substr(0, end), &value)) return std::nullopt;
  return value;
}

std::vector<StatsWorker> ParseWorkers(absl::string_view stats) {
  std::vector<StatsWorker> workers;
  const std::regex re(
      "\\{\"index\":(\\d+),\"role\":\"(\\w+)\",\"pid\":(\\d+),"
      "\"incarnation\":(\\d+),\"requests\":(\\d+)\\}");
  const std::string text(stats);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re);
       it != std::sregex_iterator(); ++it) {
    StatsWorker w;
    w.index = std::stoi((*it)[1]);
    w.role = (*it)[2];
    w.pid = std::stoll((*it)[3]);
    w.incarnation = std::stoll((*it)[4]);
    w.requests = std::stoll((*it)[5]);
    workers.push_back(w);
  }
  return workers;
}

std::optional<WrkCounts> ParseWrk(absl::string_view out) {
  const std::regex re(
      "DEMO hit_200=(\\d+) ping_200=(\\d+) status_429=(\\d+) other=(\\d+) "
      "connect_errors=(\\d+) read_errors=(\\d+) write_errors=(\\d+) "
      "timeouts=(\\d+)");
  std::smatch m;
  const std::string text(out);
  if (!std::regex_search(text, m, re)) return std::nullopt;
  WrkCounts c;
  int64_t* fields[] = {&c.hit_200,      &c.ping_200,       &c.status_429,
                       &c.other,        &c.connect_errors, &c.read_errors,
                       &c.write_errors, &c.timeouts};
  for (int i = 0; i < 8; ++i) *fields[i] = std::stoll(m[i + 1]);
  return c;
}

std::vector<std::string> WrkCommand(int port, int threads, int connections,
                                    int seconds, int hit_seconds) {
  return {"wrk",
          absl::StrCat("-t", threads),
          absl::StrCat("-c", connections),
          absl::StrCat("-d", seconds, "s"),
          "--timeout",
          "20s",
          "-s",
          DEMO_LUA_PATH,
          absl::StrCat("http://127.0.0.1:", port, "/"),
          "--",
          absl::StrCat(hit_seconds)};
}

std::set<std::string> IpcKeys() {
  std::set<std::string> keys;
  for (const char* kind : {"-m", "-q", "-s"}) {
    const CommandResult r = RunCommand({"ipcs", kind});
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (absl::StartsWith(line, "0x")) {
        keys.insert(std::string(line.substr(0, line.find(' '))));
      }
    }
  }
  return keys;
}

std::set<std::string> SegmentsCreatedBy(const std::set<int64_t>& pids) {
  // `ipcs -m -p` lines: shmid owner cpid lpid.
  std::set<std::string> ids;
  const CommandResult r = RunCommand({"ipcs", "-m", "-p"});
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    const std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t cpid = 0;
    if (f.size() >= 4 && absl::SimpleAtoi(f[2], &cpid) && pids.count(cpid)) {
      ids.insert(std::string(f[0]));
    }
  }
  return ids;
}

}  // namespace shmkit::testing
