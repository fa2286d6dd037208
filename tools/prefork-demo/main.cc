// prefork-demo: a pre-forking HTTP server whose worker processes share
// sessions, rate limits, counters and a task queue through shmkit. The
// example to read and copy: http.h is a small parser, the rest is here, in
// the order it runs.
//
// The master blocks SIGTERM and SIGINT (it reads them from a signalfd),
// creates every shared object and the loopback listening sockets, and only
// then forks, so the workers inherit all of them: nothing to name or attach.
// One WorkerPool forks R request workers (indices [0, R), an epoll loop each)
// and T task workers ([R, R+T)), then supervises: a worker that dies, even by
// kill -9, is reaped, the table locks it held are freed, and it is respawned.
// On SIGTERM the request workers finish their in-flight requests, then the
// task workers run what is queued, and the master removes the queue.
//
// The shared objects are anonymous (IPC_PRIVATE), marked for removal when
// created: the kernel frees them when the last process using them exits,
// even if every one is killed. Only the queue may be named
// (--queue=sysv:key=...), so the master removes it explicitly.
//
//   object       shmkit type      holds
//   sessions     Table, TTL       session id -> user, hits
//   rate_limits  Table, TTL       client address -> requests this second
//   hits         AtomicCounter    200 answers to GET /hit
//   workers      Table            worker index -> pid, incarnation, requests
//   tasks        Table, TTL       task id -> status, input, result, worker
//   task_ids     AtomicCounter    the last task id handed out
//   replaced     AtomicCounter    workers that died abnormally (respawned)
//   queue        Queue            "<id> <input>", request to task workers
//
// The first three (HitState) are all GET /hit touches. With --shared=false
// each request worker creates its own HitState after fork instead: the same
// code with nothing shared, the baseline of bench.sh.
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

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/unique_fd.h"
#include "shmkit/table/table.h"
#include "tools/prefork-demo/http.h"

ABSL_FLAG(int, port, 0, "TCP port on 127.0.0.1; 0 picks a free one");
ABSL_FLAG(int, request_workers, 2, "processes serving HTTP");
ABSL_FLAG(int, task_workers, 1, "processes running queued tasks");
ABSL_FLAG(std::string, queue, "ring:slots=1024,slot_bytes=320",
          "the task queue: any shmkit::OpenQueue spec (ring, sysv, pipe, "
          "fifo, socketpair)");
ABSL_FLAG(bool, shared, true,
          "false: each request worker has its own sessions, rate limits and "
          "hit counter (bench.sh's baseline)");
ABSL_FLAG(int64_t, rate_limit, 0,
          "GET /hit requests per client per second (429 beyond); 0: no limit");
ABSL_FLAG(absl::Duration, session_ttl, absl::Minutes(30),
          "sessions expire this long after login");

namespace shmkit::demo {
namespace {

constexpr size_t kMaxUserBytes = 32;
constexpr size_t kMaxTaskBytes = 256;  // a task's input and result
// A queued task: "<id> <input>" (an id has at most 19 digits).
constexpr size_t kMaxTaskMessageBytes = 20 + kMaxTaskBytes;
// Table capacities: exactly this many rows fit; one more insert is
// ResourceExhausted (a 503 for the client), never an eviction.
constexpr uint64_t kSessions = 65536;
constexpr uint64_t kClients = 4096;
constexpr uint64_t kTasks = 16384;
// After SIGTERM the master gives the workers kGrace; a request worker gives
// up on unfinished requests after kDrainTimeout, so it exits by itself.
constexpr absl::Duration kGrace = absl::Seconds(5);
constexpr absl::Duration kDrainTimeout = absl::Seconds(4);

template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  std::fprintf(stderr, "[prefork-demo %d] %s\n", static_cast<int>(getpid()),
               absl::StrFormat(format, args...).c_str());
}

// Blocks `signals` and returns a signalfd that reads them (invalid on
// error): an event loop then waits for a signal as for any descriptor, with
// no handler and no race between checking a flag and going to sleep.
UniqueFd BlockSignals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return UniqueFd();
  return UniqueFd(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

// ---------------------------------------------------------------------------
// The shared state, created by the master before it forks.
// ---------------------------------------------------------------------------

struct Options {
  int request_workers = 2;
  int task_workers = 1;
  bool shared = true;      // false: a HitState per request worker
  int64_t rate_limit = 0;  // GET /hit per client per second; 0: no limit
  absl::Duration session_ttl = absl::Minutes(30);
  std::string queue_spec;  // for OpenQueue()
};

struct HitState {
  Table sessions;
  Table rate_limits;
  AtomicCounter hits;
};

struct SharedState {
  Table workers;
  Table tasks;
  AtomicCounter task_ids;
  AtomicCounter replaced;
  std::unique_ptr<Queue> queue;
  std::optional<HitState> hit;  // unset with --shared=false
};

absl::Status Context(const absl::Status& status, absl::string_view what) {
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

// Default TableOptions: an anonymous segment holding `capacity` rows.
absl::StatusOr<Table> MakeTable(absl::string_view name, uint64_t capacity,
                                const Schema::Builder& columns) {
  absl::StatusOr<Schema> schema = columns.Build();
  if (!schema.ok()) return Context(schema.status(), name);
  absl::StatusOr<Table> table = Table::Create(*schema, {.capacity = capacity});
  if (!table.ok()) return Context(table.status(), name);
  return table;
}

absl::StatusOr<HitState> CreateHitState() {
  // WithTtl: a row may carry an expiry, so sessions end by themselves and
  // a rate-limit window resets itself. Session ids are 32 hex digits; a
  // client address at most 15 bytes ("255.255.255.255").
  absl::StatusOr<Table> sessions = MakeTable("sessions", kSessions,
                                             Schema::Builder()
                                                 .String("user", kMaxUserBytes)
                                                 .Int("hits")
                                                 .MaxKeyBytes(32)
                                                 .WithTtl());
  if (!sessions.ok()) return sessions.status();
  absl::StatusOr<Table> rate_limits =
      MakeTable("rate_limits", kClients,
                Schema::Builder().Int("requests").MaxKeyBytes(16).WithTtl());
  if (!rate_limits.ok()) return rate_limits.status();
  // Lock-free: GET /hit adds 1 with one atomic instruction, no system call.
  absl::StatusOr<AtomicCounter> hits = AtomicCounter::Create();
  if (!hits.ok()) return Context(hits.status(), "hits");
  return HitState{std::move(*sessions), std::move(*rate_limits),
                  std::move(*hits)};
}

absl::StatusOr<SharedState> CreateSharedState(const Options& options) {
  const int worker_count = options.request_workers + options.task_workers;
  absl::StatusOr<Table> workers = MakeTable(
      "workers", static_cast<uint64_t>(worker_count),
      Schema::Builder().Int("pid").Int("incarnation").Int("requests"));
  if (!workers.ok()) return workers.status();
  for (int i = 0; i < worker_count; ++i) {  // so /stats lists every worker
    if (absl::Status st = workers->Set(absl::StrCat(i), {{"pid", 0}});
        !st.ok()) {
      return st;
    }
  }
  absl::StatusOr<Table> tasks = MakeTable("tasks", kTasks,
                                          Schema::Builder()
                                              .String("status", 8)
                                              .String("input", kMaxTaskBytes)
                                              .String("result", kMaxTaskBytes)
                                              .Int("worker")
                                              .MaxKeyBytes(20)
                                              .WithTtl());
  if (!tasks.ok()) return tasks.status();
  absl::StatusOr<AtomicCounter> task_ids = AtomicCounter::Create();
  if (!task_ids.ok()) return Context(task_ids.status(), "task_ids");
  absl::StatusOr<AtomicCounter> replaced = AtomicCounter::Create();
  if (!replaced.ok()) return Context(replaced.status(), "replaced");
  std::optional<HitState> hit;
  if (options.shared) {
    absl::StatusOr<HitState> made = CreateHitState();
    if (!made.ok()) return made.status();
    hit = std::move(*made);
  }
  // Last: the only object that may need removing if a later step failed.
  absl::StatusOr<std::unique_ptr<Queue>> queue = OpenQueue(options.queue_spec);
  if (!queue.ok()) return Context(queue.status(), options.queue_spec);
  if (const size_t max = (*queue)->Capabilities().max_message_bytes;
      max < kMaxTaskMessageBytes) {
    (void)(*queue)->Remove();
    return absl::InvalidArgumentError(absl::StrCat(
        "--queue=", options.queue_spec, " takes messages of up to ", max,
        " bytes; a task needs ", kMaxTaskMessageBytes));
  }
  return SharedState{std::move(*workers),  std::move(*tasks),
                     std::move(*task_ids), std::move(*replaced),
                     std::move(*queue),    std::move(hit)};
}

// ---------------------------------------------------------------------------
// Request workers: one thread, one epoll loop over the worker's listening
// socket, its connections, a signalfd for SIGTERM and the pool's
// master-death descriptor. A connection answers one request at a time: a
// pipelined request is parsed once the answer before it is sent, so a client
// that never reads cannot make us buffer without bound.
//
// Counting GET /hit when a worker may be killed with -9 at any instruction:
// the worker adds 1 to `hits`, then sends the answer, with nothing that can
// fail in between. So an answer a client received was counted, exactly once
// (no retry). Once send() returned, the kernel delivers the bytes even if
// the worker dies next. The one gap is a kill between count and send: at
// most one answer counted and never sent per connection the worker had open.
// ---------------------------------------------------------------------------

// A JSON string. What we quote is ASCII; other bytes become \u00XX.
std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c < 0x20 || c >= 0x7f) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

HttpResponse Json(int status, absl::string_view json) {
  return {.status = status, .body = absl::StrCat(json, "\n")};
}
HttpResponse JsonError(int status, absl::string_view message) {
  return Json(status, absl::StrCat("{\"error\":", Quote(message), "}"));
}
// A shared-state call failed (table full, a live process held a lock too
// long, queue full): the client may retry later.
HttpResponse Unavailable(const absl::Status& status) {
  return JsonError(503, status.ToString());
}
HttpResponse NotAllowed(absl::string_view allow) {
  HttpResponse r = JsonError(405, absl::StrCat("use ", allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

class RequestWorker {
 public:
  RequestWorker(WorkerContext& ctx, UniqueFd listener, SharedState& state,
                const Options& options)
      : ctx_(ctx),
        listener_(std::move(listener)),
        state_(state),
        options_(options),
        row_(absl::StrCat(ctx.index())) {}

  int Run() {
    if (!stop_.valid() || !epoll_.valid()) {
      Log("request worker: signalfd/epoll: %s", std::strerror(errno));
      return 1;
    }
    // Pipe-like queues close their read end here; the ring ignores it.
    if (absl::Status st = state_.queue->SetRole(QueueRole::kSender); !st.ok()) {
      Log("request worker: %s", st.ToString());
      return 1;
    }
    (void)state_.workers.Update(
        row_, {{"pid", getpid()}, {"incarnation", ctx_.incarnation()}});
    for (int fd : {stop_.get(), ctx_.master_fd(), listener_.get()}) {
      Watch(EPOLL_CTL_ADD, fd, EPOLLIN);
    }
    epoll_event events[64];
    while (!draining_ ||
           (!connections_.empty() && absl::Now() < drain_deadline_)) {
      const int64_t timeout_ms =
          draining_
              ? absl::ToInt64Milliseconds(drain_deadline_ - absl::Now()) + 1
              : -1;
      const int n =
          epoll_wait(epoll_.get(), events, 64, static_cast<int>(timeout_ms));
      if (n < 0 && errno != EINTR) {
        Log("epoll_wait: %s", std::strerror(errno));
        return 1;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_.get() || fd == ctx_.master_fd()) {
          BeginDrain();
        } else if (fd == listener_.get()) {
          Accept();
        } else if (auto it = connections_.find(fd);
                   it != connections_.end() &&
                   !OnEvent(it->second, events[i].events)) {
          connections_.erase(it);  // closes the socket
        }
      }
    }
    if (!connections_.empty()) {
      Log("drain timeout: closing %zu connections", connections_.size());
    }
    return 0;
  }

 private:
  struct Connection {
    UniqueFd fd;
    std::string client;              // the peer's address: rate-limit key
    std::string in;                  // received, not yet parsed
    std::string out;                 // the answer being sent
    bool writing = false;            // waiting for EPOLLOUT, not EPOLLIN
    bool peer_closed = false;        // the client sent EOF
    bool close_after_write = false;  // no keep-alive
  };

  void Watch(int op, int fd, uint32_t events) {
    epoll_event ev{.events = events, .data = {.fd = fd}};
    epoll_ctl(epoll_.get(), op, fd, &ev);
  }

  void Accept() {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    UniqueFd fd(accept4(listener_.get(), reinterpret_cast<sockaddr*>(&addr),
                        &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    const int one = 1;  // each answer is one send(): Nagle would only delay
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char client[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr.sin_addr, client, sizeof(client));
    Watch(EPOLL_CTL_ADD, fd.get(), EPOLLIN);
    Connection& c = connections_[fd.get()];
    c.fd = std::move(fd);
    c.client = client;
  }

  void BeginDrain() {
    if (draining_) return;
    draining_ = true;
    drain_deadline_ = absl::Now() + kDrainTimeout;
    // All three would stay readable. New connections go to the sockets of
    // the workers still running, and are refused once all have closed.
    for (int fd : {stop_.get(), ctx_.master_fd(), listener_.get()}) {
      Watch(EPOLL_CTL_DEL, fd, 0);
    }
    listener_.reset();
    // Idle connections go now; one with a partial request or an unsent
    // answer stays until it is answered (with "Connection: close").
    for (auto it = connections_.begin(); it != connections_.end();) {
      const Connection& c = it->second;
      it = c.in.empty() && c.out.empty() ? connections_.erase(it) : ++it;
    }
  }

  // Reads or writes as `events` allow, answers what it can; false when the
  // connection is finished.
  bool OnEvent(Connection& c, uint32_t events) {
    if (events & EPOLLERR) return false;
    if (c.writing) {
      if (!Flush(c)) return false;
    } else {
      char buf[16384];  // read up to the largest request the parser accepts
      while (c.in.size() <= kMaxHeadBytes + kMaxBodyBytes) {
        const ssize_t n = read(c.fd.get(), buf, sizeof(buf));
        if (n > 0) {
          c.in.append(buf, static_cast<size_t>(n));
          // Short: the socket is empty; skip the read that would say so.
          if (static_cast<size_t>(n) < sizeof(buf)) break;
        } else if (n == 0) {
          c.peer_closed = true;  // answer what it sent, then close
          break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          break;
        } else if (errno != EINTR) {
          return false;
        }
      }
    }
    while (c.out.empty() && !c.close_after_write) {
      HttpRequest request;
      const ParseResult parsed = ParseRequest(c.in, &request);
      if (parsed.state == ParseResult::State::kNeedMore) {
        if (c.peer_closed || (draining_ && c.in.empty())) return false;
        break;
      }
      (void)state_.workers.Incr(row_, "requests", 1);
      HttpResponse response;
      if (parsed.state == ParseResult::State::kError) {
        response = JsonError(parsed.error_status, parsed.error);
        request.keep_alive = false;
      } else {
        c.in.erase(0, parsed.consumed);
        response = Handle(request, c);
      }
      c.close_after_write = !request.keep_alive || draining_ || c.peer_closed;
      AppendResponse(response, !c.close_after_write, request.minor_version,
                     &c.out);
      if (!Flush(c)) return false;
    }
    if (c.out.empty() && c.close_after_write) return false;
    if (c.writing != !c.out.empty()) {  // wait for room, or the next request
      c.writing = !c.out.empty();
      Watch(EPOLL_CTL_MOD, c.fd.get(), c.writing ? EPOLLOUT : EPOLLIN);
    }
    return true;
  }

  bool Flush(Connection& c) {
    while (!c.out.empty()) {
      const ssize_t n =
          send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return true;  // the rest on EPOLLOUT
      } else if (errno != EINTR) {
        return false;  // EPIPE, ECONNRESET: the client is gone
      }
    }
    return true;
  }

  HttpResponse Handle(const HttpRequest& request, const Connection& c) {
    absl::string_view path = request.path();
    const bool get = request.method == "GET";
    const bool post = request.method == "POST";
    if (path == "/hit") return get ? Hit(request, c) : NotAllowed("GET");
    if (path == "/login") return post ? Login(request) : NotAllowed("POST");
    if (path == "/task") return post ? PostTask(request) : NotAllowed("POST");
    if (path == "/stats") return get ? Stats() : NotAllowed("GET");
    if (path == "/ping") {  // liveness (the tests' wrk script ends on it)
      if (!get) return NotAllowed("GET");
      return {.body = "pong\n", .content_type = "text/plain"};
    }
    if (absl::ConsumePrefix(&path, "/task/")) {
      return get ? GetTask(path) : NotAllowed("GET");
    }
    return JsonError(404, absl::StrCat("no endpoint ", path));
  }

  HttpResponse Login(const HttpRequest& request) {
    absl::string_view user = absl::StripTrailingAsciiWhitespace(request.body);
    if (!absl::ConsumePrefix(&user, "user=") || user.empty() ||
        user.size() > kMaxUserBytes ||
        user.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            user.npos) {
      return JsonError(400, "send user=<name>: 1 to 32 letters, digits, . _ -");
    }
    std::string raw(16, '\0');
    if (getrandom(raw.data(), raw.size(), 0) != 16) {
      return JsonError(500, "getrandom failed");
    }
    const std::string sid = absl::BytesToHexString(raw);
    // Add, not Set: an id already taken is refused, never overwritten. The
    // row expires by itself after the TTL.
    if (absl::Status st = hit_.sessions.Add(sid, {{"user", user}, {"hits", 0}},
                                            {.ttl = options_.session_ttl});
        !st.ok()) {
      return Unavailable(st);
    }
    HttpResponse r = Json(200, absl::StrCat("{\"session\":", Quote(sid),
                                            ",\"user\":", Quote(user), "}"));
    r.headers.emplace_back(
        "Set-Cookie", absl::StrCat("sid=", sid, "; Path=/; HttpOnly; Max-Age=",
                                   absl::ToInt64Seconds(options_.session_ttl)));
    return r;
  }

  HttpResponse Hit(const HttpRequest& request, const Connection& c) {
    if (options_.rate_limit > 0) {
      // A row per client and one-second window: the first request creates
      // it with a 1 s TTL; once it has expired, the next one starts anew.
      // Incr is atomic across processes: the limit holds for all workers.
      absl::StatusOr<int64_t> n = hit_.rate_limits.Incr(
          c.client, "requests", 1, {.create = true, .ttl = absl::Seconds(1)});
      if (!n.ok()) return Unavailable(n.status());
      if (*n > options_.rate_limit) {
        HttpResponse r = JsonError(429, "too many requests: wait a second");
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
    // The count; OnEvent() sends the answer as soon as we return.
    const absl::StatusOr<int64_t> total = hit_.hits.Add(1);
    if (!total.ok()) return Unavailable(total.status());
    return Json(200, absl::StrCat("{\"hits\":", *total, session, "}"));
  }

  HttpResponse PostTask(const HttpRequest& request) {
    const absl::string_view input = request.body;
    if (input.size() > kMaxTaskBytes) {
      return JsonError(413, "a task takes at most 256 bytes");
    }
    if (input.empty() || !std::all_of(input.begin(), input.end(), [](char c) {
          return c >= 0x20 && c < 0x7f;
        })) {
      return JsonError(400, "a task is 1 or more printable ASCII characters");
    }
    // A shared counter hands out the ids: unique across all workers.
    const absl::StatusOr<int64_t> id = state_.task_ids.Add(1);
    if (!id.ok()) return Unavailable(id.status());
    const std::string key = absl::StrCat(*id);
    if (absl::Status st =
            state_.tasks.Set(key, {{"status", "queued"}, {"input", input}},
                             {.ttl = absl::Hours(1)});
        !st.ok()) {
      return Unavailable(st);
    }
    // TrySend: a full queue is a 503 now, not a blocked request worker.
    if (absl::Status st = state_.queue->TrySend(absl::StrCat(key, " ", input));
        !st.ok()) {
      (void)state_.tasks.Del(key);
      return Unavailable(st);
    }
    HttpResponse r =
        Json(202, absl::StrCat("{\"id\":", key, ",\"status\":\"queued\"}"));
    r.headers.emplace_back("Location", absl::StrCat("/task/", key));
    return r;
  }

  HttpResponse GetTask(absl::string_view id) {
    // The keys are the decimal ids handed out: another `id` is not found,
    // or InvalidArgument when longer than the table's keys.
    const absl::StatusOr<Row> row = state_.tasks.Get(id);
    if (absl::IsNotFound(row.status()) ||
        absl::IsInvalidArgument(row.status())) {
      return JsonError(404, "no such task");
    }
    if (!row.ok()) return Unavailable(row.status());
    return Json(
        200, absl::StrFormat(R"({"id":%s,"status":%s,"input":%s,"result":%s,)"
                             R"("worker":%d})",
                             id, Quote(row->GetString("status").value_or("")),
                             Quote(row->GetString("input").value_or("")),
                             Quote(row->GetString("result").value_or("")),
                             row->GetInt("worker").value_or(-1)));
  }

  HttpResponse Stats() {
    std::string workers;
    for (int i = 0; i < options_.request_workers + options_.task_workers; ++i) {
      const absl::StatusOr<Row> row = state_.workers.Get(absl::StrCat(i));
      if (!row.ok()) continue;
      absl::StrAppendFormat(
          &workers,
          R"(%s{"index":%d,"role":"%s","pid":%d,"incarnation":%d,)"
          R"("requests":%d})",
          i == 0 ? "" : ",", i,
          i < options_.request_workers ? "request" : "task",
          row->GetInt("pid").value_or(0),
          row->GetInt("incarnation").value_or(0),
          row->GetInt("requests").value_or(0));
    }
    // Table stats are kept in the shared segment: every process sees the
    // same. A recovery is a lock taken over from a holder that died.
    std::string tables;
    uint64_t lock_recoveries = 0;
    for (const auto& [name, table] :
         {std::pair<const char*, const Table*>{"sessions", &hit_.sessions},
          {"rate_limits", &hit_.rate_limits},
          {"tasks", &state_.tasks},
          {"workers", &state_.workers}}) {
      const TableStats s = table->Stats();
      lock_recoveries += s.recoveries;
      absl::StrAppendFormat(&tables,
                            R"(%s"%s":{"capacity":%d,"live_rows":%d,)"
                            R"("failed_inserts":%d,"recoveries":%d})",
                            tables.empty() ? "" : ",", name, s.capacity,
                            s.live_rows, s.failed_inserts, s.recoveries);
    }
    // Ring slots left behind by senders or receivers killed mid-operation.
    std::string queue = "null";
    uint64_t slot_recoveries = 0;
    if (const absl::StatusOr<QueueStats> q = state_.queue->Stats(); q.ok()) {
      // A receiver's slot is recovered by redelivering its message.
      slot_recoveries = q->reclaimed_slots + q->redelivered_messages;
      queue = absl::StrFormat(
          R"({"backend":"%s","messages":%s,"reclaimed_slots":%d,)"
          R"("abandoned_messages":%d,"redelivered_messages":%d})",
          q->backend,
          q->messages.has_value() ? absl::StrCat(*q->messages) : "null",
          q->reclaimed_slots, q->abandoned_messages, q->redelivered_messages);
    }
    return Json(
        200,
        absl::StrFormat(
            R"({"shared":%s,"counters":{"hits":%d,"tasks_created":%d},)"
            R"("workers":[%s],"tables":{%s},"queue":%s,"recoveries":{)"
            R"("table_locks":%d,"queue_slots":%d,"workers_replaced":%d}})",
            options_.shared ? "true" : "false", hit_.hits.Get().value_or(-1),
            state_.task_ids.Get().value_or(-1), workers, tables, queue,
            lock_recoveries, slot_recoveries,
            state_.replaced.Get().value_or(-1)));
  }

  WorkerContext& ctx_;
  UniqueFd listener_;  // this worker's listening socket
  SharedState& state_;
  const Options& options_;
  HitState& hit_ = *state_.hit;  // shared, or this worker's own
  const std::string row_;        // this worker's key in the workers table
  UniqueFd stop_ = BlockSignals({SIGTERM});
  UniqueFd epoll_{epoll_create1(EPOLL_CLOEXEC)};
  std::unordered_map<int, Connection> connections_;  // by descriptor
  bool draining_ = false;
  absl::Time drain_deadline_ = absl::InfiniteFuture();
};

// ---------------------------------------------------------------------------
// Task workers: take "<id> <input>" from the queue and write the result
// into the task's row. After SIGTERM (or the master's death) they run what
// is still queued, then return 0.
// ---------------------------------------------------------------------------

int RunTaskWorker(WorkerContext& ctx, SharedState& state) {
  const UniqueFd stop = BlockSignals({SIGTERM});
  if (!stop.valid()) {
    Log("task worker: signalfd: %s", std::strerror(errno));
    return 1;
  }
  if (absl::Status st = state.queue->SetRole(QueueRole::kReceiver); !st.ok()) {
    Log("task worker: %s", st.ToString());
    return 1;
  }
  const std::string row = absl::StrCat(ctx.index());
  (void)state.workers.Update(
      row, {{"pid", getpid()}, {"incarnation", ctx.incarnation()}});
  Message message;
  while (true) {
    pollfd p{stop.get(), POLLIN, 0};
    const bool stopping = poll(&p, 1, 0) > 0 || ctx.MasterGone();
    // Wait a little at a time, to notice SIGTERM; once stopping, not at all.
    const absl::Status st = state.queue->ReceiveInto(
        message, kMaxTaskMessageBytes,
        stopping ? WaitMode::None() : WaitMode::For(absl::Milliseconds(200)));
    if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
      if (stopping) return 0;
      continue;
    }
    if (absl::IsFailedPrecondition(st)) return 0;  // the queue was removed
    if (!st.ok()) {
      Log("task worker: receive: %s", st.ToString());
      return 1;
    }
    const std::pair<absl::string_view, absl::string_view> task =
        absl::StrSplit(message.data, absl::MaxSplits(' ', 1));
    const absl::Status done = state.tasks.Update(
        task.first, {{"status", "done"},
                     {"result", absl::AsciiStrToUpper(task.second)},
                     {"worker", ctx.index()}});
    if (!done.ok() && !absl::IsNotFound(done)) {  // NotFound: it expired
      Log("task worker: task %s: %s", task.first, done.ToString());
    }
    (void)state.workers.Incr(row, "requests", 1);
  }
}

// ---------------------------------------------------------------------------
// The master.
// ---------------------------------------------------------------------------

// Binds 127.0.0.1:`*port` (0: a free port, then stored in `*port`).
absl::StatusOr<UniqueFd> ListenOnLoopback(int* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const int one = 1;
  if (!fd.valid() ||
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd.get(), SOMAXCONN) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("listening on 127.0.0.1:", *port));
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Forks and supervises the workers until SIGTERM or SIGINT, then stops them
// in order. Returns the exit code.
int Serve(const Options& options, UniqueFd& signals, SharedState& state) {
  // One listening socket per request worker, all on one port
  // (SO_REUSEPORT): the kernel spreads new connections over them. With a
  // single shared socket, whichever worker wakes first can take a whole
  // burst of them. The master keeps every socket open, so connections for a
  // worker that died wait in its backlog for the replacement.
  int port = absl::GetFlag(FLAGS_port);
  std::vector<UniqueFd> listeners;
  for (int i = 0; i < options.request_workers; ++i) {
    absl::StatusOr<UniqueFd> listener = ListenOnLoopback(&port);
    if (!listener.ok()) {
      Log("%s", listener.status().ToString());
      return 1;
    }
    listeners.push_back(std::move(*listener));
  }
  const auto is_request_worker = [&](int index) {
    return index < options.request_workers;
  };
  // Set when shutdown begins. A worker respawned after that (one that
  // crashed meanwhile) sees it in its copy of our memory and leaves.
  bool stopping = false;
  absl::StatusOr<WorkerPool> pool = WorkerPool::Start(
      {.workers = options.request_workers + options.task_workers,
       .stop_grace = kGrace},
      [&](WorkerContext& ctx) {
        if (stopping) return 0;
        signals.reset();    // the master's
        UniqueFd listener;  // ours; close the others' in this process
        if (is_request_worker(ctx.index())) {
          listener = std::move(listeners[ctx.index()]);
        }
        listeners.clear();
        if (!listener.valid()) return RunTaskWorker(ctx, state);
        if (!state.hit.has_value()) {
          // --shared=false: this worker's own sessions, rate limits and hit
          // counter, created after fork into its copy of `state`, so no
          // other process sees them.
          absl::StatusOr<HitState> own = CreateHitState();
          if (!own.ok()) {
            Log("request worker: %s", own.status().ToString());
            return 1;
          }
          state.hit = std::move(*own);
        }
        return RequestWorker(ctx, std::move(listener), state, options).Run();
      });
  if (!pool.ok()) {
    Log("%s", pool.status().ToString());
    return 1;
  }
  // Logs what the pool did (reaping and respawning happen inside its
  // calls), waiting up to `timeout` for the first event, and counts the
  // abnormal deaths for /stats.
  const auto handle_events = [&](absl::Duration timeout) {
    for (auto e = pool->NextEventFor(timeout); e.ok();
         e = pool->NextEventFor(absl::ZeroDuration())) {
      Log("%s %s", is_request_worker(e->index) ? "request" : "task",
          e->ToString());
      if (e->kind == PoolEvent::Kind::kExited && e->abnormal) {
        (void)state.replaced.Add(1);
      }
    }
  };
  handle_events(absl::ZeroDuration());  // the workers' start
  // One line, flushed at once: scripts (bench.sh, the tests) read the port
  // from it.
  std::printf("prefork-demo: listening on http://127.0.0.1:%d/ (master %d)\n",
              port, static_cast<int>(getpid()));
  std::fflush(stdout);

  // Supervise until SIGTERM or SIGINT. The pool has no thread: its fd() is
  // readable when a worker exited or a respawn is due, then Supervise().
  while (true) {
    pollfd fds[] = {{signals.get(), POLLIN, 0}, {pool->fd(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      Log("poll: %s", std::strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) break;
    if (absl::Status st = pool->Supervise(); !st.ok()) Log("%s", st.ToString());
    handle_events(absl::ZeroDuration());
  }

  Log("shutting down");
  stopping = true;
  listeners.clear();  // the workers close theirs as they drain
  // Request workers first: their in-flight requests may still queue tasks.
  // The pids are safe to signal: the pool reaps only inside its own calls,
  // so each is still our child (at worst a zombie), not a reused pid.
  const absl::Time deadline = absl::Now() + kGrace;
  for (const WorkerInfo& w : pool->workers()) {
    if (is_request_worker(w.index) && w.pid > 0) kill(w.pid, SIGTERM);
  }
  const auto request_workers_running = [&] {
    const std::vector<WorkerInfo> workers = pool->workers();
    return std::any_of(workers.begin(), workers.end(), [&](const auto& w) {
      return is_request_worker(w.index) && w.pid > 0;
    });
  };
  while (request_workers_running() && absl::Now() < deadline) {
    handle_events(deadline - absl::Now());
  }
  // Then the task workers (SIGTERM): they run what is queued and exit.
  const absl::StatusOr<StopReport> report =
      pool->Stop(std::max(deadline - absl::Now(), absl::Seconds(1)));
  handle_events(absl::ZeroDuration());
  if (!report.ok()) {
    Log("stopping the workers: %s", report.status().ToString());
    return 1;
  }
  Log("all workers stopped (%d needed SIGKILL)", report->killed);
  return 0;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A pre-forking HTTP server sharing state through shmkit.\nEndpoints: "
      "POST /login, GET /hit, POST /task, GET /task/<id>, GET /stats.");
  absl::FlagsUsageConfig usage;  // --help lists the flags of this file
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "prefork-demo/");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  const Options options{.request_workers = absl::GetFlag(FLAGS_request_workers),
                        .task_workers = absl::GetFlag(FLAGS_task_workers),
                        .shared = absl::GetFlag(FLAGS_shared),
                        .rate_limit = absl::GetFlag(FLAGS_rate_limit),
                        .session_ttl = absl::GetFlag(FLAGS_session_ttl),
                        .queue_spec = absl::GetFlag(FLAGS_queue)};
  const char* bad = nullptr;
  if (absl::GetFlag(FLAGS_port) < 0 || absl::GetFlag(FLAGS_port) > 65535) {
    bad = "--port must be 0..65535";
  } else if (options.request_workers < 1 || options.task_workers < 1) {
    bad = "--request_workers and --task_workers must be >= 1";
  } else if (options.rate_limit < 0) {
    bad = "--rate_limit must be >= 0";
  } else if (options.session_ttl <= absl::ZeroDuration()) {
    bad = "--session_ttl must be positive";
  }
  if (bad != nullptr) {
    std::fprintf(stderr, "%s\n", bad);
    return 2;
  }
  // Before anything forks, so the workers inherit the mask. The pool gives
  // them SIGTERM back (their graceful stop); SIGINT stays blocked there, so
  // a Ctrl-C reaches only the master, which stops everyone in order.
  UniqueFd signals = BlockSignals({SIGTERM, SIGINT});
  if (!signals.valid()) {
    Log("signalfd: %s", std::strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);  // a client gone away is an error, not a death
  absl::StatusOr<SharedState> state = CreateSharedState(options);
  if (!state.ok()) {
    Log("%s", state.status().ToString());
    return 1;
  }
  const int code = Serve(options, signals, *state);
  // Every worker has exited. The queue may be named, so it is removed; the
  // other objects were marked for removal at creation and go as we exit.
  absl::Status removed = state->queue->Remove();
  removed.Update(state->queue->Close());
  Log("IPC objects %s", removed.ok() ? "removed" : removed.ToString());
  return removed.ok() ? code : 1;
}

}  // namespace
}  // namespace shmkit::demo

int main(int argc, char** argv) { return shmkit::demo::Main(argc, argv); }
