// prefork-demo: a pre-forking HTTP server whose workers share sessions, rate
// limits, counters and a task queue through shmkit. The example to copy.
//
//   prefork-demo --port=8080 --request_workers=4 --task_workers=2
//   curl -c jar -d user=ana localhost:8080/login
//   curl -b jar localhost:8080/hit
//   curl -d 'make me loud' localhost:8080/task   ->  {"id":1,...}
//   curl localhost:8080/task/1
//   curl localhost:8080/stats
//
// The master (this file):
//   1. blocks SIGTERM/SIGINT and reads them from a signalfd;
//   2. creates every shared object (state.h) and the listening socket;
//   3. forks the workers with one WorkerPool: indices [0, R) are request
//      workers, [R, R+T) task workers (server.h). One pool rather than two
//      gives one event stream and one descriptor to watch, and no worker
//      inherits another pool's descriptors (a pool closes only its own in
//      the children it forks);
//   4. supervises: the pool reaps, logs and replaces dead workers (and frees
//      the table locks they held); the master moves a dead request worker's
//      `unsent` count into `unconfirmed` (server.cc, "Counting /hit");
//   5. on SIGTERM: stops accepting, lets request workers finish in-flight
//      requests, then task workers finish the queue, removes every IPC
//      object it made, and exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/unique_fd.h"
#include "tools/prefork-demo/server.h"
#include "tools/prefork-demo/state.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "IPv4 or IPv6 address to listen on (loopback by default)");
ABSL_FLAG(int, port, 0, "TCP port; 0 picks a free one (printed on stdout)");
ABSL_FLAG(std::string, port_file, "",
          "if set, the chosen port is written to this file once the workers "
          "are running");
ABSL_FLAG(int, request_workers, 2, "processes serving HTTP");
ABSL_FLAG(int, task_workers, 1, "processes running queued tasks");
ABSL_FLAG(std::string, queue, "ring:slots=1024,slot_bytes=320",
          "task queue spec (shmkit::OpenQueue): ring:..., sysv:..., pipe, "
          "fifo, socketpair");
ABSL_FLAG(bool, shared, true,
          "share sessions, rate limits and the hit counter between workers; "
          "false gives each request worker its own (benchmark baseline)");
ABSL_FLAG(int64_t, rate_limit, 0,
          "GET /hit requests allowed per client address per second (429 "
          "beyond); 0 for no limit");
ABSL_FLAG(absl::Duration, session_ttl, absl::Minutes(30),
          "sessions expire this long after login");
ABSL_FLAG(absl::Duration, task_ttl, absl::Hours(1),
          "tasks (and their results) expire this long after creation");
ABSL_FLAG(uint64_t, sessions, 65536, "capacity of the sessions table");
ABSL_FLAG(uint64_t, tasks, 16384, "capacity of the tasks table");
ABSL_FLAG(std::string, key, "",
          "base System V key (e.g. 0x5eed0000) for the shared objects, so "
          "`shmkit stat` can attach them; they use the 8 keys from it. "
          "Empty: anonymous objects");
ABSL_FLAG(absl::Duration, grace, absl::Seconds(5),
          "on SIGTERM, how long request workers get to finish in-flight "
          "requests; task workers then get what is left (at least 1s)");
ABSL_FLAG(int, max_connections, 1024, "open connections per request worker");

namespace shmkit::demo {
namespace {

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  std::fprintf(stderr, "[prefork-demo master %d] %s\n",
               static_cast<int>(getpid()),
               absl::StrFormat(format, args...).c_str());
}

absl::Status Errno(absl::string_view call) {
  return absl::ErrnoToStatus(errno, call);
}

// A loopback (or any) TCP listening socket, opened before the fork so every
// request worker accepts on the same socket.
absl::StatusOr<UniqueFd> Listen(const std::string& host, int port,
                                int* bound_port) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--host=", host, " is not an IPv4 or IPv6 address"));
  }
  UniqueFd fd(
      socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Errno("socket");
  const int one = 1;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return Errno("setsockopt(SO_REUSEADDR)");
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return Errno(absl::StrCat("bind(", host, ":", port, ")"));
  }
  if (listen(fd.get(), SOMAXCONN) != 0) return Errno("listen");
  len = sizeof(addr);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("getsockname");
  }
  *bound_port = ntohs(addr.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  return fd;
}

// Written to a temporary name and renamed, so a reader never sees half.
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) return absl::UnknownError(absl::StrCat("writing ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return Errno(absl::StrCat("rename(", tmp, ", ", path, ")"));
  }
  return absl::OkStatus();
}

class Master {
 public:
  explicit Master(ServerOptions options) : options_(std::move(options)) {}
  int Run();

 private:
  absl::Status Start();
  // Handles what the pool reports (reaps and respawns happen inside).
  void Supervise();
  void OnEvent(const PoolEvent& event);
  bool IsRequestWorker(int index) const {
    return index < options_.request_workers;
  }
  absl::Status Shutdown();

  ServerOptions options_;
  UniqueFd signals_;
  UniqueFd epoll_;
  UniqueFd listener_;
  std::optional<SharedState> state_;
  std::optional<WorkerPool> pool_;
  // Set once shutdown begins. A worker forked after that (a respawn of one
  // that crashed meanwhile) sees it in its copy of our memory and exits.
  bool stopping_ = false;
};

int Master::Run() {
  if (absl::Status st = Start(); !st.ok()) {
    Log("%s", st.ToString());
    if (pool_.has_value()) (void)pool_->Stop(absl::ZeroDuration());
    if (state_.has_value()) (void)RemoveAll(*state_, options_.state);
    return 1;
  }
  epoll_event events[2];
  while (true) {
    const int n = epoll_wait(epoll_.get(), events, 2, -1);
    if (n < 0 && errno != EINTR) {
      Log("epoll_wait: %s", std::strerror(errno));
      break;
    }
    bool stop = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == signals_.get()) {
        signalfd_siginfo info{};
        if (read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
          Log("got signal %d (%s): shutting down",
              static_cast<int>(info.ssi_signo), strsignal(info.ssi_signo));
        }
        stop = true;
      } else {
        Supervise();
      }
    }
    if (stop) break;
  }
  const absl::Status st = Shutdown();
  if (!st.ok()) Log("shutdown: %s", st.ToString());
  return st.ok() ? 0 : 1;
}

absl::Status Master::Start() {
  // Before anything forks: workers inherit this mask. The pool gives them
  // SIGTERM back (their graceful stop); SIGINT stays blocked there, so a
  // Ctrl-C reaches only the master, which then stops everyone in order.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return Errno("sigprocmask");
  signals_.reset(signalfd(-1, &set, SFD_CLOEXEC));
  if (!signals_.valid()) return Errno("signalfd");
  signal(SIGPIPE, SIG_IGN);  // a client gone away is an error, not a death

  absl::StatusOr<SharedState> state =
      CreateSharedState(options_.state, options_.shared);
  if (!state.ok()) return state.status();
  state_ = std::move(*state);
  int port = 0;
  absl::StatusOr<UniqueFd> listener =
      Listen(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port), &port);
  if (!listener.ok()) return listener.status();
  listener_ = std::move(*listener);

  const int workers = options_.request_workers + options_.task_workers;
  absl::StatusOr<WorkerPool> pool = WorkerPool::Start(
      {.workers = workers, .stop_grace = absl::GetFlag(FLAGS_grace)},
      [this](WorkerContext& ctx) -> int {
        if (stopping_) return 0;
        // Descriptors only the master uses.
        signals_.reset();
        epoll_.reset();
        if (IsRequestWorker(ctx.index())) {
          return RunRequestWorker(ctx, listener_.get(), *state_, options_);
        }
        listener_.reset();
        return RunTaskWorker(ctx, *state_, options_);
      });
  if (!pool.ok()) return pool.status();
  pool_ = std::move(*pool);

  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return Errno("epoll_create1");
  for (int fd : {signals_.get(), pool_->fd()}) {
    epoll_event ev{.events = EPOLLIN, .data = {.fd = fd}};
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Errno("epoll_ctl");
    }
  }
  Supervise();  // logs the workers' start
  std::printf(
      "prefork-demo: listening on http://%s:%d/ (master pid %d, %d request "
      "and %d task workers, %s state, queue %s)\n",
      absl::GetFlag(FLAGS_host).c_str(), port, static_cast<int>(getpid()),
      options_.request_workers, options_.task_workers,
      options_.shared ? "shared" : "per-process",
      options_.state.queue_spec.c_str());
  std::fflush(stdout);
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    return WritePortFile(path, port);
  }
  return absl::OkStatus();
}

void Master::Supervise() {
  if (absl::Status st = pool_->Supervise(); !st.ok()) {
    Log("supervise: %s", st.ToString());
  }
  while (true) {
    absl::StatusOr<PoolEvent> event = pool_->NextEventFor(absl::ZeroDuration());
    if (!event.ok()) break;
    OnEvent(*event);
  }
}

void Master::OnEvent(const PoolEvent& event) {
  const char* role = IsRequestWorker(event.index) ? "request" : "task";
  Log("%s worker: %s", event.index >= 0 ? role : "pool", event.ToString());
  if (event.kind != PoolEvent::Kind::kExited) return;
  if (event.abnormal) (void)state_->deaths.Add(1);
  if (!IsRequestWorker(event.index)) return;
  // The dead worker's connections died with it, and so may have its
  // counted-but-unsent /hit answers (server.cc): move those into
  // `unconfirmed` and clear its row. The replacement cannot have started:
  // respawns happen only inside pool calls, at least backoff_initial
  // (100 ms) after the reap, and we handle each event as soon as the pool
  // returns it. The pid check guards that reasoning.
  const std::string row = absl::StrCat(event.index);
  const absl::StatusOr<Row> dead = state_->workers.Get(row);
  if (!dead.ok()) return;
  if (const int64_t pid = dead->GetInt("pid").value_or(0); pid != event.pid) {
    // 0: it died before it served anything.
    if (pid != 0) {
      Log("request worker %d: row already taken by its replacement; its "
          "counts are not settled",
          event.index);
    }
    return;
  }
  const int64_t unsent = dead->GetInt("unsent").value_or(0);
  const int64_t connections = dead->GetInt("connections").value_or(0);
  (void)state_->workers.Update(row,
                               {{"pid", 0}, {"connections", 0}, {"unsent", 0}});
  if (unsent != 0) (void)state_->unconfirmed.Add(unsent);
  if (event.abnormal) {
    Log("request worker %d died with %d connection(s) open and %d /hit "
        "answer(s) counted but perhaps not sent",
        event.index, connections, unsent);
  }
}

absl::Status Master::Shutdown() {
  stopping_ = true;
  // Stop accepting: once the request workers close their copies too, the
  // socket is gone and new connections are refused.
  listener_.reset();
  // Request workers first: they finish in-flight requests, which may still
  // queue tasks; then the task workers run what is queued. The pool has no
  // "stop these workers" call, so we signal them ourselves. The pids are
  // safe to signal: the pool reaps only inside its own calls, so each is
  // still our child (at worst a zombie) and cannot have been reused.
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_grace);
  for (const WorkerInfo& w : pool_->workers()) {
    if (IsRequestWorker(w.index) && w.pid > 0) kill(w.pid, SIGTERM);
  }
  const auto request_workers_left = [this] {
    for (const WorkerInfo& w : pool_->workers()) {
      if (IsRequestWorker(w.index) &&
          (w.state == WorkerState::kRunning ||
           w.state == WorkerState::kRespawnPending)) {
        return true;
      }
    }
    return false;
  };
  while (request_workers_left() && absl::Now() < deadline) {
    absl::StatusOr<PoolEvent> event =
        pool_->NextEventFor(deadline - absl::Now());
    if (event.ok()) OnEvent(*event);
  }
  const absl::StatusOr<StopReport> report =
      pool_->Stop(std::max(deadline - absl::Now(), absl::Seconds(1)));
  while (true) {
    absl::StatusOr<PoolEvent> event = pool_->NextEventFor(absl::ZeroDuration());
    if (!event.ok()) break;
    OnEvent(*event);
  }
  const int64_t hits =
      state_->hit.has_value() ? state_->hit->hits.Get().value_or(-1) : -1;
  absl::Status st = report.status();
  st.Update(RemoveAll(*state_, options_.state));
  Log("stopped (%d worker(s) needed SIGKILL); hits=%d unconfirmed=%d; "
      "IPC objects %s",
      report.ok() ? report->killed : -1, hits,
      state_->unconfirmed.Get().value_or(-1),
      st.ok() ? "removed" : "NOT all removed");
  return st;
}

}  // namespace
}  // namespace shmkit::demo

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A pre-forking HTTP server sharing state through shmkit.\n"
      "Endpoints: POST /login, GET /hit, POST /task, GET /task/<id>, "
      "GET /stats, GET /ping.");
  absl::FlagsUsageConfig usage;  // --help lists this program's flags
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "prefork-demo/");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  using shmkit::demo::ServerOptions;
  ServerOptions options;
  options.request_workers = absl::GetFlag(FLAGS_request_workers);
  options.task_workers = absl::GetFlag(FLAGS_task_workers);
  options.shared = absl::GetFlag(FLAGS_shared);
  options.rate_limit = absl::GetFlag(FLAGS_rate_limit);
  options.session_ttl = absl::GetFlag(FLAGS_session_ttl);
  options.task_ttl = absl::GetFlag(FLAGS_task_ttl);
  options.max_connections =
      static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_max_connections)));
  // Request workers finish before the master's deadline, so they exit on
  // their own rather than by SIGKILL.
  options.drain_timeout = absl::GetFlag(FLAGS_grace) * 0.8;
  options.state.workers = options.request_workers + options.task_workers;
  options.state.sessions = absl::GetFlag(FLAGS_sessions);
  options.state.tasks = absl::GetFlag(FLAGS_tasks);
  options.state.queue_spec = absl::GetFlag(FLAGS_queue);
  if (const std::string key = absl::GetFlag(FLAGS_key); !key.empty()) {
    absl::StatusOr<shmkit::IpcKey> parsed = shmkit::IpcKey::Parse(key);
    if (!parsed.ok()) {
      std::fprintf(stderr, "--key: %s\n", parsed.status().ToString().c_str());
      return 2;
    }
    options.state.key = *parsed;
  }
  std::string bad;
  if (absl::GetFlag(FLAGS_port) < 0 || absl::GetFlag(FLAGS_port) > 65535) {
    bad = "--port must be 0..65535";
  }
  if (options.request_workers < 1) bad = "--request_workers must be >= 1";
  if (options.task_workers < 1) bad = "--task_workers must be >= 1";
  if (options.rate_limit < 0) bad = "--rate_limit must be >= 0";
  if (options.session_ttl <= absl::ZeroDuration() ||
      options.task_ttl <= absl::ZeroDuration()) {
    bad = "--session_ttl and --task_ttl must be positive";
  }
  if (absl::GetFlag(FLAGS_grace) < absl::ZeroDuration()) {
    bad = "--grace must be >= 0";
  }
  if (!bad.empty()) {
    std::fprintf(stderr, "%s\n", bad.c_str());
    return 2;
  }
  return shmkit::demo::Master(std::move(options)).Run();
}
