// The prefork-demo server (tools/prefork-demo), run as a real binary on an
// ephemeral loopback port and driven with curl, wrk and raw sockets. Tests
// that need a tool that is not installed skip, saying which.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "demo_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace shmkit::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

#define SKIP_WITHOUT(tool)                                               \
  if (!InPath(tool)) {                                                   \
    GTEST_SKIP() << tool << " is not installed (Debian package " << tool \
                 << "; tools/common.sh lists it): skipping";             \
  }

#define START_SERVER(var, ...)                           \
  absl::StatusOr<std::unique_ptr<DemoServer>> var##_or = \
      DemoServer::Start(__VA_ARGS__);                    \
  ASSERT_TRUE(var##_or.ok()) << var##_or.status();       \
  DemoServer& var = **var##_or

// Stops the server with SIGTERM and checks it exits 0, and that no worker
// died on the way (unless the test killed one) and no sanitizer spoke up.
void ExpectCleanExit(DemoServer& server, bool killed_a_worker = false) {
  const std::optional<int> code = server.Terminate();
  const std::string log = server.process().err();
  EXPECT_EQ(code, 0) << log;
  EXPECT_THAT(log, HasSubstr("IPC objects removed"));
  EXPECT_THAT(log, Not(HasSubstr("Sanitizer")));
  EXPECT_THAT(log, Not(HasSubstr("runtime error")));
  if (!killed_a_worker) {
    EXPECT_THAT(log, Not(HasSubstr("exited: signal")));
  }
}

TEST(PreforkDemo, EveryEndpointWithCurl) {
  SKIP_WITHOUT("curl");
  START_SERVER(server);

  // POST /login: a session row and a cookie.
  HttpResult login = server.Curl("/login", {"-d", "user=ana"});
  ASSERT_EQ(login.status, 200) << login.error << login.body;
  EXPECT_THAT(login.body, HasSubstr("\"user\":\"ana\""));
  const size_t at = login.headers.find("Set-Cookie: sid=");
  ASSERT_NE(at, std::string::npos) << login.headers;
  const std::string sid = login.headers.substr(at + 16, 32);
  const std::string cookie = absl::StrCat("sid=", sid);

  // GET /hit: per-session and global counters.
  HttpResult hit = server.Curl("/hit", {"-b", cookie});
  EXPECT_EQ(hit.status, 200) << hit.body;
  EXPECT_EQ(hit.body, "{\"hits\":1,\"session_hits\":1}\n");
  hit = server.Curl("/hit", {"-b", cookie});
  EXPECT_EQ(hit.body, "{\"hits\":2,\"session_hits\":2}\n");
  hit = server.Curl("/hit");
  EXPECT_EQ(hit.body, "{\"hits\":3}\n");
  hit = server.Curl("/hit", {"-b", "sid=00000000000000000000000000000000"});
  EXPECT_EQ(hit.status, 401) << hit.body;

  // POST /task, then GET /task/<id> until a task worker has run it.
  HttpResult task = server.Curl("/task", {"-d", "make me loud"});
  ASSERT_EQ(task.status, 202) << task.body;
  EXPECT_EQ(task.body, "{\"id\":1,\"status\":\"queued\"}\n");
  EXPECT_THAT(task.headers, HasSubstr("Location: /task/1"));
  HttpResult result;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    result = server.Curl("/task/1");
    if (absl::StrContains(result.body, "\"done\"")) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() < deadline);
  EXPECT_EQ(result.status, 200);
  EXPECT_THAT(result.body, HasSubstr("\"result\":\"MAKE ME LOUD\""));
  EXPECT_THAT(result.body, HasSubstr("\"worker\":2"));  // the task worker

  // Errors: 404, 405 with Allow, 400.
  EXPECT_EQ(server.Curl("/task/999").status, 404);
  EXPECT_EQ(server.Curl("/task/abc").status, 404);
  EXPECT_EQ(server.Curl("/nope").status, 404);
  HttpResult wrong_method = server.Curl("/hit", {"-X", "DELETE"});
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_THAT(wrong_method.headers, HasSubstr("Allow: GET"));
  EXPECT_EQ(server.Curl("/login").status, 405);  // GET
  EXPECT_EQ(server.Curl("/login", {"-d", "user=no spaces"}).status, 400);
  EXPECT_EQ(server.Curl("/task", {"-d", std::string(257, 'x')}).status, 413);

  // GET /stats: counters, per-worker counts, table and queue stats.
  const std::string stats = server.Stats();
  EXPECT_EQ(JsonInt(stats, "hits"), 3) << stats;
  EXPECT_EQ(JsonInt(stats, "tasks_created"), 1) << stats;
  EXPECT_EQ(JsonInt(stats, "live_rows", "\"sessions\":"), 1) << stats;
  EXPECT_THAT(stats, HasSubstr("\"backend\":\"ring\""));
  const std::vector<StatsWorker> workers = ParseWorkers(stats);
  ASSERT_THAT(workers, SizeIs(3)) << stats;
  int64_t requests = 0;
  for (const StatsWorker& w : workers) {
    EXPECT_GT(w.pid, 0) << stats;
    if (w.role == "request") requests += w.requests;
  }
  EXPECT_EQ(workers[2].role, "task");
  EXPECT_EQ(workers[2].requests, 1);  // tasks run
  EXPECT_GE(requests, 15);            // every curl above, this one included
  if (InPath("python3")) {
    const CommandResult json = RunCommand(
        {"python3", "-c", "import json,sys; json.loads(sys.argv[1])", stats});
    EXPECT_EQ(json.code, 0) << "invalid JSON: " << stats << json.err;
  } else {
    std::cout << "python3 not installed: /stats not checked as JSON\n";
  }
  ExpectCleanExit(server);
}

TEST(PreforkDemo, MalformedOversizedAndPipelinedRequests) {
  START_SERVER(server);
  const int port = server.port();
  // Two pipelined requests in one write: two answers, in order, and the
  // connection stays open for more (we close it after the timeout).
  std::string reply = RawExchange(port,
                                  "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                                  "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                                  absl::Milliseconds(500));
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("pong\nHTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(reply, Not(HasSubstr("Connection: close")));

  // Malformed input: 400 and the connection is closed.
  reply = RawExchange(port, "GARBAGE\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(reply, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(RawExchange(port, "GET /ping HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));  // no Host
  EXPECT_THAT(RawExchange(port, "GET /ping HTTP/1.1\nHost: x\n\n"),
              StartsWith("HTTP/1.1 400 "));  // bare LF
  EXPECT_THAT(RawExchange(port, "GET /ping HTTP/2.0\r\nHost: x\r\n\r\n"),
              StartsWith("HTTP/1.1 505 "));
  // Limits: an endless header (431), a body too large (413), chunked (501).
  EXPECT_THAT(RawExchange(port, absl::StrCat("GET /ping HTTP/1.1\r\nX: ",
                                             std::string(9000, 'a'))),
              StartsWith("HTTP/1.1 431 "));
  EXPECT_THAT(RawExchange(port,
                          "POST /task HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 99999\r\n\r\n"),
              StartsWith("HTTP/1.1 413 "));
  EXPECT_THAT(RawExchange(port,
                          "POST /task HTTP/1.1\r\nHost: x\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"),
              StartsWith("HTTP/1.1 501 "));
  // HTTP/1.0 closes unless asked to keep alive.
  reply = RawExchange(port, "GET /ping HTTP/1.0\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(reply, HasSubstr("Connection: close\r\n"));
  ExpectCleanExit(server);
}

// wrk's own request count includes requests in flight when it stops, which
// the server answered and counted but wrk dropped; count_hits.lua ends the
// run with GET /ping so that every /hit is answered before wrk stops.
TEST(PreforkDemo, HitCounterEqualsTheResponsesWrkCounted) {
  SKIP_WITHOUT("wrk");
  SKIP_WITHOUT("curl");
  START_SERVER(server);
  const CommandResult wrk =
      RunCommand(WrkCommand(server.port(), 2, 8, 4, 2), absl::Seconds(60));
  ASSERT_EQ(wrk.code, 0) << wrk.out << wrk.err;
  const std::optional<WrkCounts> counts = ParseWrk(wrk.out);
  ASSERT_TRUE(counts.has_value()) << wrk.out;
  const std::string stats = server.Stats();
  const std::optional<int64_t> hits = JsonInt(stats, "hits");
  std::cout << "wrk: " << counts->hit_200 << " /hit 200s, " << counts->ping_200
            << " /ping 200s; server hits counter " << hits.value_or(-1) << "\n";
  EXPECT_GT(counts->hit_200, 0);
  EXPECT_GT(counts->ping_200, 0);  // the run ended on /ping, as planned
  EXPECT_EQ(counts->other + counts->status_429, 0) << wrk.out;
  EXPECT_EQ(counts->connect_errors + counts->read_errors +
                counts->write_errors + counts->timeouts,
            0)
      << wrk.out;
  EXPECT_EQ(hits, counts->hit_200) << stats;
  // How the requests were spread (informational: depends on scheduling).
  for (const StatsWorker& w : ParseWorkers(stats)) {
    std::cout << w.role << " worker " << w.index << ": " << w.requests
              << " requests\n";
  }
  ExpectCleanExit(server);
}

TEST(PreforkDemo, RateLimitAnswers429AndOnly200sAreCounted) {
  SKIP_WITHOUT("wrk");
  SKIP_WITHOUT("curl");
  constexpr int kLimit = 200;
  START_SERVER(server, {absl::StrCat("--rate_limit=", kLimit)});
  const CommandResult wrk =
      RunCommand(WrkCommand(server.port(), 1, 4, 4, 2), absl::Seconds(60));
  ASSERT_EQ(wrk.code, 0) << wrk.out << wrk.err;
  const std::optional<WrkCounts> counts = ParseWrk(wrk.out);
  ASSERT_TRUE(counts.has_value()) << wrk.out;
  const std::optional<int64_t> hits = JsonInt(server.Stats(), "hits");
  std::cout << "wrk: " << counts->hit_200 << " /hit 200s, "
            << counts->status_429 << " 429s; server hits counter "
            << hits.value_or(-1) << "\n";
  EXPECT_GT(counts->status_429, 0);
  EXPECT_EQ(counts->other, 0) << wrk.out;
  EXPECT_EQ(hits, counts->hit_200);
  // /hit ran for at most 2 s: at most 3 one-second windows of kLimit each
  // (plus one for a window straddling the start), at least one full one.
  EXPECT_GE(counts->hit_200, kLimit);
  EXPECT_LE(counts->hit_200, 4 * kLimit);
  ExpectCleanExit(server);
}

TEST(PreforkDemo, KilledRequestWorkerIsReplacedAndNoAnswerIsCountedTwice) {
  SKIP_WITHOUT("wrk");
  SKIP_WITHOUT("curl");
  START_SERVER(server);
  // 7 s of load: /hit for the first 4 s (3 to 4, os.time() has 1 s steps),
  // /ping after. The kill comes 1 s in.
  BackgroundProcess wrk(WrkCommand(server.port(), 2, 8, 7, 4));
  absl::SleepFor(absl::Seconds(1));
  const std::vector<StatsWorker> before = ParseWorkers(server.Stats());
  ASSERT_THAT(before, SizeIs(3));
  // The request worker that has served more: it holds wrk connections.
  const StatsWorker victim =
      before[0].requests >= before[1].requests ? before[0] : before[1];
  ASSERT_GT(victim.pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(victim.pid), SIGKILL), 0);

  // The master reaps it and starts a replacement.
  std::optional<StatsWorker> replacement;
  int64_t hits_at_replacement = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline && !replacement.has_value()) {
    const std::string stats = server.Stats();
    for (const StatsWorker& w : ParseWorkers(stats)) {
      if (w.index == victim.index && w.incarnation == 1 && w.pid > 0 &&
          w.pid != victim.pid) {
        replacement = w;
        hits_at_replacement = JsonInt(stats, "hits").value_or(-1);
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(replacement.has_value())
      << "no replacement for worker " << victim.index;

  ASSERT_EQ(wrk.Wait(absl::Seconds(60)), 0) << wrk.err();
  const std::optional<WrkCounts> counts = ParseWrk(wrk.out());
  ASSERT_TRUE(counts.has_value()) << wrk.out();
  const std::string stats = server.Stats();
  const int64_t hits = JsonInt(stats, "hits").value_or(-1);
  std::cout << "killed worker " << victim.index << " (pid " << victim.pid
            << ", " << victim.requests
            << " requests served); wrk: " << counts->hit_200 << " /hit 200s, "
            << counts->ping_200 << " /ping 200s, " << counts->read_errors
            << " read errors, " << counts->connect_errors
            << " connect errors; server: hits " << hits
            << ", hits when the replacement was seen " << hits_at_replacement
            << "\n";
  // Every answer wrk received was counted, once. The counter exceeds that
  // only by answers counted and never sent because the worker died between
  // the count and the send: at most one per connection (wrk has 8).
  EXPECT_GE(hits, counts->hit_200) << stats;
  EXPECT_LE(hits, counts->hit_200 + 8) << stats;
  EXPECT_EQ(counts->other + counts->status_429, 0) << wrk.out();
  // The server kept serving /hit after the replacement started.
  EXPECT_GT(hits, hits_at_replacement);
  EXPECT_EQ(JsonInt(stats, "workers_replaced"), 1) << stats;
  EXPECT_THAT(server.process().err(), HasSubstr("signal 9"));
  ExpectCleanExit(server, /*killed_a_worker=*/true);
}

TEST(PreforkDemo, SigtermFinishesInFlightRequestsAndLeavesNoIpcObjects) {
  SKIP_WITHOUT("ipcs");
  START_SERVER(server);
  std::set<int64_t> pids = {server.master_pid()};
  if (InPath("curl")) {
    for (const StatsWorker& w : ParseWorkers(server.Stats())) {
      pids.insert(w.pid);
    }
  }
  // While running, ipcs shows the (anonymous) segments the master created:
  // the check below can see them.
  EXPECT_THAT(SegmentsCreatedBy(pids), Not(IsEmpty()));

  // A request in flight: its head is half sent when SIGTERM arrives.
  const int fd = ConnectLoopback(server.port());
  ASSERT_GE(fd, 0);
  const std::string head = "GET /ping HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(head.size()));
  absl::SleepFor(absl::Milliseconds(300));  // accepted and read
  kill(server.master_pid(), SIGTERM);
  absl::SleepFor(absl::Milliseconds(500));  // the workers are draining
  ASSERT_EQ(send(fd, "\r\n", 2, MSG_NOSIGNAL), 2);
  const std::string reply = ReadAll(fd, absl::Seconds(10));
  close(fd);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Connection: close\r\n"));

  EXPECT_EQ(server.process().Wait(absl::Seconds(30)), 0)
      << server.process().err();
  const std::string log = server.process().err();
  EXPECT_THAT(log, HasSubstr("IPC objects removed"));
  EXPECT_THAT(log, Not(HasSubstr("Sanitizer")));
  EXPECT_THAT(log, Not(HasSubstr("exited: signal")));
  EXPECT_THAT(SegmentsCreatedBy(pids), IsEmpty());
  // New connections are refused: nobody holds the listening socket.
  const int late = ConnectLoopback(server.port());
  EXPECT_LT(late, 0);
  if (late >= 0) close(late);
}

TEST(PreforkDemo, MasterKilledWithSigkillWorkersExitAndNothingIsLeft) {
  SKIP_WITHOUT("ipcs");
  // The workers outlive the master briefly; as a subreaper we inherit them
  // and can check how they exit (and leave no zombies behind).
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  START_SERVER(server);
  // The master logs "worker 0 (pid 123, incarnation 0) started" before it
  // prints its port.
  std::vector<pid_t> workers;
  const std::regex started("\\(pid (\\d+), incarnation 0\\) started");
  const std::string log = server.process().err();
  for (auto it = std::sregex_iterator(log.begin(), log.end(), started);
       it != std::sregex_iterator(); ++it) {
    workers.push_back(static_cast<pid_t>(std::stol((*it)[1])));
  }
  ASSERT_THAT(workers, SizeIs(3)) << log;
  const std::set<int64_t> master = {server.master_pid()};
  EXPECT_THAT(SegmentsCreatedBy(master), Not(IsEmpty()));

  ASSERT_EQ(kill(server.master_pid(), SIGKILL), 0);
  EXPECT_EQ(server.process().Wait(absl::Seconds(10)), -SIGKILL);
  // Each worker sees the master's death (PR_SET_PDEATHSIG = SIGTERM, and
  // the master-death pipe), drains and exits 0.
  for (pid_t pid : workers) {
    EXPECT_TRUE(ExitedWith(pid, 0, absl::Seconds(20))) << "worker " << pid;
  }
  // Every object was anonymous: the kernel freed them with the last process.
  EXPECT_THAT(SegmentsCreatedBy(master), IsEmpty());
}

TEST(PreforkDemo, KeyedQueueIsRemovedOnSigterm) {
  SKIP_WITHOUT("ipcs");
  const std::string key = UniqueKey().ToString();
  START_SERVER(server, {absl::StrCat("--queue=sysv:key=", key)});
  EXPECT_EQ(IpcKeys().count(key), 1u) << "the queue while running";
  if (InPath("curl")) {  // a task through the System V queue
    EXPECT_EQ(server.Curl("/task", {"-d", "via sysv"}).status, 202);
  }
  ExpectCleanExit(server);
  EXPECT_EQ(IpcKeys().count(key), 0u) << key << " left behind";
}

TEST(PreforkDemo, UnsharedBuildKeepsCountsPerWorker) {
  SKIP_WITHOUT("curl");
  START_SERVER(server, {"--shared=false", "--request_workers=1"});
  EXPECT_EQ(server.Curl("/hit").body, "{\"hits\":1}\n");
  EXPECT_EQ(server.Curl("/hit").body, "{\"hits\":2}\n");
  const std::string stats = server.Stats();
  EXPECT_THAT(stats, HasSubstr("\"shared\":false"));
  EXPECT_EQ(JsonInt(stats, "hits"), 2);
  // Tasks still go through the shared queue and table.
  EXPECT_EQ(server.Curl("/task", {"-d", "x"}).status, 202);
  ExpectCleanExit(server);
}

// Every queue backend carries tasks from request workers to task workers.
class PreforkDemoQueue : public ::testing::TestWithParam<std::string> {};

TEST_P(PreforkDemoQueue, RunsTasks) {
  SKIP_WITHOUT("curl");
  START_SERVER(server,
               {absl::StrCat("--queue=", GetParam()), "--task_workers=2"});
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(server.Curl("/task", {"-d", absl::StrCat("task ", i)}).status,
              202);
  }
  for (int i = 1; i <= 3; ++i) {
    HttpResult r;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    do {
      r = server.Curl(absl::StrCat("/task/", i));
      if (absl::StrContains(r.body, "\"done\"")) break;
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    EXPECT_THAT(r.body, HasSubstr(absl::StrCat("\"result\":\"TASK ", i)))
        << GetParam();
  }
  EXPECT_THAT(
      server.Stats(),
      HasSubstr(absl::StrCat(
          "\"backend\":\"", GetParam().substr(0, GetParam().find(':')), "\"")));
  ExpectCleanExit(server);
}

INSTANTIATE_TEST_SUITE_P(Specs, PreforkDemoQueue,
                         ::testing::Values("sysv", "pipe", "socketpair", "fifo",
                                           "ring:slots=64,slot_bytes=300"),
                         [](const auto& param_info) {
                           const std::string& spec = param_info.param;
                           return spec.substr(0, spec.find(':'));
                         });

}  // namespace
}  // namespace shmkit::testing
