#include "redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace shmkit::testing {
namespace {

// A port nobody listens on right now (the kernel's pick for port 0).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    close(fd);
    return absl::ErrnoToStatus(e, "bind 127.0.0.1:0");
  }
  close(fd);
  return ntohs(a.sin_port);
}

std::string ReplyText(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_INTEGER:
      return absl::StrCat("(integer) ", r->integer);
    case REDIS_REPLY_ERROR:
      return absl::StrCat("(error) ", std::string(r->str, r->len));
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < r->elements; ++i) {
        parts.push_back(ReplyText(r->element[i]));
      }
      return absl::StrJoin(parts, "\n");
    }
    default:
      return std::string(r->str, r->len);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    Options options) {
  if (access("/usr/bin/redis-server", X_OK) != 0) {
    return absl::FailedPreconditionError(
        "redis-server is not installed (tools/common.sh installs Debian's "
        "redis-server); the Redis tests need it and do not skip");
  }
  auto server = std::unique_ptr<RedisServer>(new RedisServer());
  server->options_ = std::move(options);
  char tmpl[] = "/tmp/shmkit-redis-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
  server->dir_ = tmpl;
  absl::Status last;
  // Another process may take the port between our pick and the bind.
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<int> port = FreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    last = server->Spawn();
    if (last.ok()) return server;
  }
  return last;
}

absl::Status RedisServer::Spawn() {
  const std::string conf = dir_ + "/redis.conf";
  {
    std::ofstream f(conf);
    f << "port " << port_ << "\n"
      << "bind 127.0.0.1\n"
      << "dir " << dir_ << "\n"
      << "logfile " << dir_ << "/redis.log\n"
      << "daemonize no\n"
      << "save \"\"\n"
      << "enable-debug-command local\n"
      << "appendonly " << (options_.appendonly ? "yes" : "no") << "\n"
      << "appendfsync always\n";
    if (!options_.password.empty()) {
      f << "requirepass " << options_.password << "\n";
    }
    if (!f) return absl::InternalError("cannot write " + conf);
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Dies with the test, whatever happens to it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    execl("/usr/bin/redis-server", "redis-server", conf.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
  return WaitReady();
}

absl::Status RedisServer::WaitReady() {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream log(dir_ + "/redis.log");
      std::stringstream text;
      text << log.rdbuf();
      return absl::UnavailableError(
          absl::StrCat("redis-server exited at start (status ", status,
                       "); its log:\n", text.str()));
    }
    absl::StatusOr<std::string> pong = Run({"PING"});
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    // Not accepting yet: it is loading. Look again shortly.
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError("redis-server did not answer PING in 20 s");
}

RedisServer::~RedisServer() {
  (void)Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url() const {
  if (options_.password.empty()) {
    return absl::StrCat("redis://127.0.0.1:", port_, "/0");
  }
  return url_with_password(options_.password);
}

std::string RedisServer::url_with_password(absl::string_view password) const {
  return absl::StrCat("redis://:", password, "@127.0.0.1:", port_, "/0");
}

absl::Status RedisServer::Kill() {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  return Spawn();
}

absl::Status RedisServer::Pause() {
  if (kill(pid_, SIGSTOP) != 0) return absl::ErrnoToStatus(errno, "SIGSTOP");
  // Wait until it is really stopped (state T in /proc/<pid>/stat).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    std::ifstream stat(absl::StrCat("/proc/", pid_, "/stat"));
    std::string text((std::istreambuf_iterator<char>(stat)),
                     std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (paren != std::string::npos && paren + 2 < text.size() &&
        text[paren + 2] == 'T') {
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::DeadlineExceededError("redis-server did not stop");
}

absl::Status RedisServer::Resume() {
  if (kill(pid_, SIGCONT) != 0) return absl::ErrnoToStatus(errno, "SIGCONT");
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisServer::Run(
    std::initializer_list<absl::string_view> args) {
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err) {
    std::string err = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return absl::UnavailableError(err);
  }
  redisSetTimeout(c, tv);
  if (!options_.password.empty()) {
    redisReply* r = static_cast<redisReply*>(
        redisCommand(c, "AUTH %s", options_.password.c_str()));
    if (r != nullptr) freeReplyObject(r);
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (absl::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisReply* r = static_cast<redisReply*>(redisCommandArgv(
      c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) {
    std::string err = c->errstr;
    redisFree(c);
    return absl::UnavailableError(err);
  }
  std::string text = ReplyText(r);
  freeReplyObject(r);
  redisFree(c);
  return text;
}

}  // namespace shmkit::testing
