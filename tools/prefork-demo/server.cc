// Request and task workers.
//
// A request worker is a single-threaded epoll loop over the shared listening
// socket, its connections, a signalfd for SIGTERM and the pool's master-death
// descriptor. The kernel wakes every idle worker for a new connection and
// the quickest one wins, which tends to be the same one each time; so the
// workers publish their open connections in the shared workers table, and a
// worker that holds more than another live worker lets the connection go
// (once) to even things out. Each connection has at most one response in
// flight: it either reads (and parses) or writes, never both, so a pipelining
// client cannot make us buffer without bound, and each connection holds at most
// one /hit answer that is counted and not yet sent.
//
// Counting /hit
// -------------
// The global hits counter must equal the number of 200 answers clients
// received, even when a worker is killed with -9 at any instruction. A
// counter update and a send() can never be one atomic step, so we order them
// and account for the gap:
//
//   1. workers[me].unsent += 1      "an answer may be counted and unsent"
//   2. hits += 1                    the count
//   3. send() the complete answer   (nothing but formatting between 2 and 3)
//   4. workers[me].unsent -= 1      once send() took the last byte
//
// So an answer that reached the client was always counted (the count comes
// first), and never twice (one increment per request, no retry). The only
// gap is "counted, not sent": a worker killed between 2 and the end of 3.
// Each such answer is covered by a 1 in the dead worker's `unsent`, which
// the master moves into the `unconfirmed` counter when it reaps the worker
// (main.cc); `unsent` is an upper bound, since a kill between 1 and 2, or
// between 3 and 4, leaves a 1 for an answer that was not counted or was
// delivered. Hence, for any run:
//
//   answers received by clients <= hits <= that + unconfirmed
//
// and unconfirmed is at most one per connection the dead worker had open
// (each holds at most one unsent answer); in practice it is almost always 0
// because the gap is a few hundred nanoseconds. Once send() has returned,
// the bytes are in the kernel's socket buffer and the kernel delivers them
// even if the worker dies next (the client reads them before it sees the
// reset). A send() that fails (the client went away) retracts the count.
#include "tools/prefork-demo/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::demo {
namespace {

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  std::fprintf(stderr, "[prefork-demo %d] %s\n", static_cast<int>(getpid()),
               absl::StrFormat(format, args...).c_str());
}

// SIGTERM as a descriptor: the signal is blocked and read from a signalfd,
// so the event loop waits for it together with the sockets, with no handler
// and no window between checking a flag and going to sleep.
class StopSignal {
 public:
  StopSignal() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) == 0) {
      fd_.reset(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    }
  }
  bool ok() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  bool Pending() const {
    pollfd p{fd_.get(), POLLIN, 0};
    return poll(&p, 1, 0) > 0;
  }

 private:
  UniqueFd fd_;
};

std::string Json(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body.push_back('\n');
  return r;
}

HttpResponse JsonError(int status, absl::string_view message) {
  return JsonResponse(status, absl::StrCat("{\"error\":", Json(message), "}"));
}

// 503 for a shared-state call that failed (table full, lock timeout...).
HttpResponse Unavailable(const absl::Status& status) {
  return JsonError(503, status.ToString());
}

HttpResponse NotAllowed(absl::string_view allow) {
  HttpResponse r = JsonError(405, absl::StrCat("use ", allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

bool IsPrintableAscii(absl::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::optional<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (getrandom(raw.data(), raw.size(), 0) != static_cast<ssize_t>(bytes)) {
    return std::nullopt;
  }
  return absl::BytesToHexString(raw);
}

std::string AddressText(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr,
              text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr,
              text, sizeof(text));
  }
  return text;
}

std::string TableStatsJson(const TableStats& s) {
  return absl::StrCat(
      "{\"capacity\":", s.capacity, ",\"live_rows\":", s.live_rows,
      ",\"memory_bytes\":", s.memory_bytes,
      ",\"failed_inserts\":", s.failed_inserts,
      ",\"lock_waits\":", s.lock_waits, ",\"recoveries\":", s.recoveries,
      ",\"expired_reclaimed\":", s.expired_reclaimed, "}");
}

class RequestWorker {
 public:
  RequestWorker(WorkerContext& ctx, int listen_fd, SharedState& state,
                HitState& hit, const ServerOptions& options)
      : ctx_(ctx),
        listen_fd_(listen_fd),
        state_(state),
        hit_(hit),
        options_(options),
        row_(absl::StrCat(ctx.index())) {}

  int Run();

 private:
  struct Connection {
    UniqueFd fd;
    std::string client;  // peer address: the rate-limit key
    std::string in;      // received, not yet parsed
    std::string out;     // the response being sent
    size_t out_sent = 0;
    int counted_hits = 0;      // /hit answers in `out`: counted, not yet sent
    bool peer_closed = false;  // the client sent EOF
    bool close_after_write = false;  // close once `out` is sent
    uint32_t interest = 0;           // EPOLLIN or EPOLLOUT, as registered
  };

  void SetAccepting(bool on);
  bool HasMostConnections();
  void AcceptOne();
  void CountConnection(int delta);
  void BeginDrain();
  // Reads, serves and writes as `events` allow; false when the connection
  // is finished and must be closed.
  bool OnEvent(Connection& c, uint32_t events);
  bool Serve(Connection& c);
  bool Flush(Connection& c);
  void Close(int fd);
  // The counted answers of `c` were sent (or, when !sent, never will be).
  void SettleHits(Connection& c, bool sent);

  HttpResponse Handle(const HttpRequest& request, Connection& c);
  HttpResponse Login(const HttpRequest& request);
  HttpResponse Hit(const HttpRequest& request, Connection& c);
  HttpResponse PostTask(const HttpRequest& request);
  HttpResponse GetTask(absl::string_view id);
  HttpResponse Stats();

  WorkerContext& ctx_;
  int listen_fd_;
  SharedState& state_;
  HitState& hit_;
  const ServerOptions& options_;
  const std::string row_;  // this worker's key in the workers table
  StopSignal stop_;
  UniqueFd epoll_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  bool accepting_ = false;
  // Accepting is paused until then, to let a less busy worker take the
  // pending connection; the next one is taken whatever the others hold.
  std::optional<absl::Time> deferred_until_;
  bool deferred_ = false;
  bool draining_ = false;
  Row scratch_;  // reused by HasMostConnections
  absl::Time drain_deadline_ = absl::InfiniteFuture();
};

int RequestWorker::Run() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!stop_.ok() || !epoll_.valid()) {
    Log("request worker %d: signalfd/epoll: %s", ctx_.index(),
        std::strerror(errno));
    return 1;
  }
  for (int fd : {stop_.fd(), ctx_.master_fd()}) {
    epoll_event ev{.events = EPOLLIN, .data = {.fd = fd}};
    epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  // Pipe-like queue backends close the read end here; the ring ignores it.
  if (absl::Status st = state_.queue->SetRole(QueueRole::kSender); !st.ok()) {
    Log("request worker %d: %s", ctx_.index(), st.ToString());
    return 1;
  }
  (void)state_.workers.Update(
      row_, {{"pid", static_cast<int64_t>(getpid())},
             {"incarnation", static_cast<int64_t>(ctx_.incarnation())}});
  SetAccepting(true);

  epoll_event events[64];
  while (!draining_ || !connections_.empty()) {
    int timeout_ms = -1;
    if (draining_) {
      const absl::Duration left = drain_deadline_ - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    } else if (deferred_until_.has_value()) {
      if (absl::Now() >= *deferred_until_) {
        deferred_until_.reset();
        if (connections_.size() < options_.max_connections) {
          SetAccepting(true);
        }
      } else {
        timeout_ms = 1;
      }
    }
    const int n = epoll_wait(epoll_.get(), events, 64, timeout_ms);
    if (n < 0 && errno != EINTR) {
      Log("epoll_wait: %s", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_.fd() || fd == ctx_.master_fd()) {
        BeginDrain();
      } else if (fd == listen_fd_) {
        if (accepting_) AcceptOne();
      } else if (auto it = connections_.find(fd); it != connections_.end()) {
        if (!OnEvent(*it->second, events[i].events)) Close(fd);
      }
    }
  }
  if (!connections_.empty()) {
    Log("drain timeout: closing %zu connections", connections_.size());
    while (!connections_.empty()) Close(connections_.begin()->first);
  }
  return 0;
}

void RequestWorker::SetAccepting(bool on) {
  if (on == accepting_ || listen_fd_ < 0) return;
  // Not EPOLLEXCLUSIVE: it wakes the worker that waited first, which is
  // then soon waiting first again, so one worker would take almost every
  // connection. Waking every idle worker costs a little per connection
  // (the losers get EAGAIN) but spreads keep-alive connections out.
  epoll_event ev{.events = EPOLLIN, .data = {.fd = listen_fd_}};
  epoll_ctl(epoll_.get(), on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listen_fd_, &ev);
  accepting_ = on;
}

bool RequestWorker::HasMostConnections() {
  const int64_t mine = static_cast<int64_t>(connections_.size());
  for (int i = 0; i < options_.request_workers; ++i) {
    if (i == ctx_.index()) continue;
    if (!state_.workers.Get(absl::StrCat(i), &scratch_).ok()) continue;
    // pid 0: not running (the master clears it when a worker exits).
    if (scratch_.GetInt("pid").value_or(0) != 0 &&
        scratch_.GetInt("connections").value_or(0) < mine) {
      return true;
    }
  }
  return false;
}

void RequestWorker::AcceptOne() {
  if (!deferred_ && HasMostConnections()) {
    deferred_ = true;
    deferred_until_ = absl::Now() + absl::Milliseconds(1);
    SetAccepting(false);
    return;
  }
  deferred_ = false;
  // One connection per wake-up: with level-triggered readiness the others
  // stay pending and may go to another worker.
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE) {
      Log("accept4: %s; pausing accepts", std::strerror(errno));
      if (!connections_.empty()) SetAccepting(false);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
               errno != ECONNABORTED) {
      Log("accept4: %s", std::strerror(errno));
    }
    return;
  }
  // Each response is one send(): nothing to gain from Nagle's delay.
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto c = std::make_unique<Connection>();
  c->fd.reset(fd);
  c->client = AddressText(addr);
  c->interest = EPOLLIN;
  epoll_event ev{.events = EPOLLIN, .data = {.fd = fd}};
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
  connections_.emplace(fd, std::move(c));
  CountConnection(1);
  if (connections_.size() >= options_.max_connections) SetAccepting(false);
}

void RequestWorker::BeginDrain() {
  if (draining_) return;
  draining_ = true;
  drain_deadline_ = absl::Now() + options_.drain_timeout;
  SetAccepting(false);
  close(listen_fd_);  // our copy; the master closes its own
  listen_fd_ = -1;
  // Idle keep-alive connections go now; a connection with a partial request
  // or an unsent response stays until it is answered (with Connection:
  // close) or the drain times out.
  std::vector<int> idle;
  for (const auto& [fd, c] : connections_) {
    if (c->in.empty() && c->out.empty()) idle.push_back(fd);
  }
  for (int fd : idle) Close(fd);
  Log("request worker %d draining: %zu connections in flight", ctx_.index(),
      connections_.size());
}

bool RequestWorker::OnEvent(Connection& c, uint32_t events) {
  if (events & EPOLLERR) return false;
  if ((events & EPOLLOUT) && !Flush(c)) return false;
  if (events & (EPOLLIN | EPOLLHUP)) {
    // Read what is there, up to one maximal request (the parser decides
    // about it before we read more).
    const size_t cap =
        options_.http.max_header_bytes + options_.http.max_body_bytes;
    char buf[16384];
    while (c.in.size() <= cap) {
      const ssize_t n = read(c.fd.get(), buf, sizeof(buf));
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        // A short read drained the socket: skip the read that would say
        // EAGAIN (epoll is level-triggered and reports what comes next).
        if (static_cast<size_t>(n) < sizeof(buf)) break;
      } else if (n == 0) {
        // The client is done sending; answer what it sent, then close.
        c.peer_closed = true;
        break;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        return false;
      }
    }
  }
  return Serve(c);
}

bool RequestWorker::Serve(Connection& c) {
  // One request at a time: parse, answer, send; the next request is parsed
  // only once the previous answer is out.
  while (c.out.empty() && !c.close_after_write) {
    HttpRequest request;
    const ParseResult parsed = ParseRequest(c.in, options_.http, &request);
    if (parsed.state == ParseResult::State::kNeedMore) {
      if (c.peer_closed || (draining_ && c.in.empty())) return false;
      break;
    }
    (void)state_.workers.Incr(row_, "requests", 1);
    HttpResponse response;
    bool keep_alive = false;
    if (parsed.state == ParseResult::State::kError) {
      response = JsonError(parsed.error_status, parsed.error);
      c.in.clear();
    } else {
      c.in.erase(0, parsed.consumed);
      keep_alive = request.keep_alive && !draining_ && !c.peer_closed;
      response = Handle(request, c);
    }
    c.close_after_write = !keep_alive;
    AppendResponse(response, keep_alive, request.minor_version, &c.out);
    if (!Flush(c)) return false;
  }
  if (c.out.empty() && c.close_after_write) return false;
  const uint32_t want = c.out.empty() ? EPOLLIN : EPOLLOUT;
  if (want != c.interest) {
    epoll_event ev{.events = want, .data = {.fd = c.fd.get()}};
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    c.interest = want;
  }
  return true;
}

bool RequestWorker::Flush(Connection& c) {
  while (c.out_sent < c.out.size()) {
    const ssize_t n = send(c.fd.get(), c.out.data() + c.out_sent,
                           c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return true;  // the rest when EPOLLOUT says so
    } else if (errno != EINTR) {
      return false;  // EPIPE, ECONNRESET: the client is gone
    }
  }
  c.out.clear();
  c.out_sent = 0;
  SettleHits(c, /*sent=*/true);
  return true;
}

void RequestWorker::Close(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  SettleHits(*it->second, /*sent=*/false);
  connections_.erase(it);  // closes the socket (and drops it from epoll)
  CountConnection(-1);
  if (!draining_ && !deferred_until_.has_value() &&
      connections_.size() < options_.max_connections) {
    SetAccepting(true);
  }
}

void RequestWorker::CountConnection(int delta) {
  (void)state_.workers.Incr(row_, "connections", delta);
}

void RequestWorker::SettleHits(Connection& c, bool sent) {
  if (c.counted_hits == 0) return;
  if (!sent) (void)hit_.hits.Add(-c.counted_hits);  // never delivered
  (void)state_.workers.Incr(row_, "unsent", -c.counted_hits);
  c.counted_hits = 0;
}

HttpResponse RequestWorker::Handle(const HttpRequest& request, Connection& c) {
  absl::string_view path = request.path();
  const absl::string_view method = request.method;
  if (path == "/hit") {
    return method == "GET" ? Hit(request, c) : NotAllowed("GET");
  }
  if (path == "/login") {
    return method == "POST" ? Login(request) : NotAllowed("POST");
  }
  if (path == "/task") {
    return method == "POST" ? PostTask(request) : NotAllowed("POST");
  }
  if (absl::ConsumePrefix(&path, "/task/")) {
    return method == "GET" ? GetTask(path) : NotAllowed("GET");
  }
  if (path == "/stats") return method == "GET" ? Stats() : NotAllowed("GET");
  if (path == "/ping") {
    if (method != "GET") return NotAllowed("GET");
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = "pong\n";
    return r;
  }
  return JsonError(404, absl::StrCat("no endpoint ", path));
}

HttpResponse RequestWorker::Login(const HttpRequest& request) {
  absl::string_view user = absl::StripTrailingAsciiWhitespace(request.body);
  const bool valid =
      absl::ConsumePrefix(&user, "user=") && !user.empty() &&
      user.size() <= kMaxUserBytes &&
      user.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyz"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == absl::string_view::npos;
  if (!valid) {
    return JsonError(400, absl::StrCat("send user=<name>: 1 to ", kMaxUserBytes,
                                       " letters, digits, '.', '_' or '-'"));
  }
  const std::optional<std::string> sid = RandomHex(16);
  if (!sid.has_value()) return JsonError(500, "getrandom failed");
  if (absl::Status st = hit_.sessions.Add(*sid, {{"user", user}, {"hits", 0}},
                                          {.ttl = options_.session_ttl});
      !st.ok()) {
    return Unavailable(st);
  }
  HttpResponse r = JsonResponse(
      200,
      absl::StrCat("{\"session\":", Json(*sid), ",\"user\":", Json(user), "}"));
  r.headers.emplace_back(
      "Set-Cookie",
      absl::StrCat("sid=", *sid, "; Path=/; HttpOnly; SameSite=Strict; ",
                   "Max-Age=", absl::ToInt64Seconds(options_.session_ttl)));
  return r;
}

HttpResponse RequestWorker::Hit(const HttpRequest& request, Connection& c) {
  if (options_.rate_limit > 0) {
    // A one-second window per client: the row is created with the first
    // request and expires a second later, when the next one starts anew.
    absl::StatusOr<int64_t> n = hit_.rate_limits.Incr(
        c.client, "requests", 1, {.create = true, .ttl = absl::Seconds(1)});
    if (!n.ok()) return Unavailable(n.status());
    if (*n > options_.rate_limit) {
      HttpResponse r = JsonError(
          429, absl::StrCat("more than ", options_.rate_limit,
                            " requests in one second from ", c.client));
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
  }
  std::string session;
  if (std::optional<absl::string_view> sid = request.Cookie("sid")) {
    absl::StatusOr<int64_t> n = hit_.sessions.Incr(*sid, "hits", 1);
    if (absl::IsNotFound(n.status()) || absl::IsInvalidArgument(n.status())) {
      return JsonError(401, "unknown or expired session: POST /login");
    }
    if (!n.ok()) return Unavailable(n.status());
    session = absl::StrCat(",\"session_hits\":", *n);
  }
  // Count, then answer at once (steps 1 and 2 of "Counting /hit"; Serve()
  // sends the answer right after we return).
  if (absl::Status st = state_.workers.Incr(row_, "unsent", 1).status();
      !st.ok()) {
    return Unavailable(st);
  }
  ++c.counted_hits;
  const absl::StatusOr<int64_t> total = hit_.hits.Add(1);
  if (!total.ok()) {
    SettleHits(c, /*sent=*/true);  // nothing was counted: just clear
    return Unavailable(total.status());
  }
  return JsonResponse(200, absl::StrCat("{\"hits\":", *total, session, "}"));
}

HttpResponse RequestWorker::PostTask(const HttpRequest& request) {
  const absl::string_view input = request.body;
  if (input.size() > kMaxTaskBytes) {
    return JsonError(
        413, absl::StrCat("a task takes at most ", kMaxTaskBytes, " bytes"));
  }
  if (input.empty() || !IsPrintableAscii(input)) {
    return JsonError(400, "a task is 1 or more printable ASCII characters");
  }
  const absl::StatusOr<int64_t> id = state_.task_ids.Add(1);
  if (!id.ok()) return Unavailable(id.status());
  const std::string key = absl::StrCat(*id);
  if (absl::Status st =
          state_.tasks.Set(key, {{"status", "queued"}, {"input", input}},
                           {.ttl = options_.task_ttl});
      !st.ok()) {
    return Unavailable(st);
  }
  if (absl::Status st = state_.queue->TrySend(absl::StrCat(key, " ", input));
      !st.ok()) {
    (void)state_.tasks.Del(key);
    return Unavailable(st);  // Unavailable: the queue is full
  }
  HttpResponse r = JsonResponse(
      202, absl::StrCat("{\"id\":", *id, ",\"status\":\"queued\"}"));
  r.headers.emplace_back("Location", absl::StrCat("/task/", *id));
  return r;
}

HttpResponse RequestWorker::GetTask(absl::string_view id) {
  int64_t n = 0;
  if (id.empty() || id.size() > 19 ||
      id.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(id, &n)) {
    return JsonError(404, "no such task");
  }
  const absl::StatusOr<Row> row = state_.tasks.Get(absl::StrCat(n));
  if (absl::IsNotFound(row.status())) return JsonError(404, "no such task");
  if (!row.ok()) return Unavailable(row.status());
  return JsonResponse(
      200,
      absl::StrCat("{\"id\":", n,
                   ",\"status\":", Json(row->GetString("status").value_or("")),
                   ",\"input\":", Json(row->GetString("input").value_or("")),
                   ",\"result\":", Json(row->GetString("result").value_or("")),
                   ",\"worker\":", row->GetInt("worker").value_or(-1), "}"));
}

HttpResponse RequestWorker::Stats() {
  const int total_workers = options_.request_workers + options_.task_workers;
  std::string workers;
  for (int i = 0; i < total_workers; ++i) {
    const absl::StatusOr<Row> row = state_.workers.Get(absl::StrCat(i));
    if (!row.ok()) continue;
    absl::StrAppend(
        &workers, workers.empty() ? "" : ",", "{\"index\":", i,
        ",\"role\":", i < options_.request_workers ? "\"request\"" : "\"task\"",
        ",\"pid\":", row->GetInt("pid").value_or(0),
        ",\"incarnation\":", row->GetInt("incarnation").value_or(0),
        ",\"requests\":", row->GetInt("requests").value_or(0),
        ",\"connections\":", row->GetInt("connections").value_or(0),
        ",\"unsent\":", row->GetInt("unsent").value_or(0), "}");
  }
  const TableStats sessions = hit_.sessions.Stats();
  const TableStats rate_limits = hit_.rate_limits.Stats();
  const TableStats tasks = state_.tasks.Stats();
  const TableStats worker_rows = state_.workers.Stats();
  std::string queue = "null";
  uint64_t queue_recoveries = 0;
  if (const absl::StatusOr<QueueStats> q = state_.queue->Stats(); q.ok()) {
    const auto optional = [](std::optional<uint64_t> v) {
      return v.has_value() ? absl::StrCat(*v) : "null";
    };
    queue_recoveries = q->reclaimed_slots + q->abandoned_messages;
    queue =
        absl::StrCat("{\"backend\":", Json(q->backend),
                     ",\"messages\":", optional(q->messages),
                     ",\"capacity_messages\":", optional(q->capacity_messages),
                     ",\"reclaimed_slots\":", q->reclaimed_slots,
                     ",\"abandoned_messages\":", q->abandoned_messages, "}");
  }
  return JsonResponse(
      200,
      absl::StrCat(
          "{\"shared\":", options_.shared ? "true" : "false",
          ",\"served_by\":{\"index\":", ctx_.index(), ",\"pid\":", getpid(),
          "},\"counters\":{\"hits\":", hit_.hits.Get().value_or(-1),
          ",\"tasks_created\":", state_.task_ids.Get().value_or(-1),
          ",\"unconfirmed_hits\":", state_.unconfirmed.Get().value_or(-1),
          "},\"workers\":[", workers,
          "],\"tables\":{\"sessions\":", TableStatsJson(sessions),
          ",\"rate_limits\":", TableStatsJson(rate_limits), ",\"tasks\":",
          TableStatsJson(tasks), ",\"workers\":", TableStatsJson(worker_rows),
          "},\"queue\":", queue, ",\"recoveries\":{\"table_locks\":",
          sessions.recoveries + rate_limits.recoveries + tasks.recoveries +
              worker_rows.recoveries,
          ",\"queue_slots\":", queue_recoveries,
          ",\"workers_replaced\":", state_.deaths.Get().value_or(-1), "}}"));
}

}  // namespace

int RunRequestWorker(WorkerContext& ctx, int listen_fd, SharedState& state,
                     const ServerOptions& options) {
  // --shared=false: this worker's own sessions, rate limits and counter,
  // created after fork, so nobody else sees them.
  std::optional<HitState> own;
  if (!state.hit.has_value()) {
    absl::StatusOr<HitState> made =
        CreateHitState(options.state, IpcKey::Private());
    if (!made.ok()) {
      Log("request worker %d: %s", ctx.index(), made.status().ToString());
      return 1;
    }
    own = std::move(*made);
  }
  HitState& hit = state.hit.has_value() ? *state.hit : *own;
  return RequestWorker(ctx, listen_fd, state, hit, options).Run();
}

int RunTaskWorker(WorkerContext& ctx, SharedState& state,
                  const ServerOptions& options) {
  (void)options;
  StopSignal stop;
  if (!stop.ok()) {
    Log("task worker %d: signalfd: %s", ctx.index(), std::strerror(errno));
    return 1;
  }
  if (absl::Status st = state.queue->SetRole(QueueRole::kReceiver); !st.ok()) {
    Log("task worker %d: %s", ctx.index(), st.ToString());
    return 1;
  }
  const std::string row = absl::StrCat(ctx.index());
  (void)state.workers.Update(
      row, {{"pid", static_cast<int64_t>(getpid())},
            {"incarnation", static_cast<int64_t>(ctx.incarnation())}});
  Message message;
  while (true) {
    // After SIGTERM, run what is queued without waiting, then leave.
    const bool stopping = stop.Pending() || ctx.MasterGone();
    const absl::Status st = state.queue->ReceiveInto(
        message, kMaxTaskMessageBytes,
        stopping ? WaitMode::None() : WaitMode::For(absl::Milliseconds(200)));
    if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
      if (stopping) return 0;
      continue;
    }
    if (!st.ok()) {
      Log("task worker %d: receive: %s", ctx.index(), st.ToString());
      return absl::IsFailedPrecondition(st) ? 0 : 1;  // removed: we are done
    }
    // "<id> <input>". The "work" is upper-casing the input.
    const absl::string_view data = message.data;
    const size_t space = data.find(' ');
    const std::string id(data.substr(0, space));
    const absl::string_view input =
        space == absl::string_view::npos ? "" : data.substr(space + 1);
    absl::Status done = state.tasks.Update(
        id, {{"status", "running"}, {"worker", ctx.index()}});
    if (done.ok()) {
      done = state.tasks.Update(
          id, {{"status", "done"}, {"result", absl::AsciiStrToUpper(input)}});
    }
    if (!done.ok() && !absl::IsNotFound(done)) {  // NotFound: expired
      Log("task worker %d: task %s: %s", ctx.index(), id, done.ToString());
    }
    (void)state.workers.Incr(row, "requests", 1);
  }
}

}  // namespace shmkit::demo
