// Failure behaviour of the Redis backend against a real server: not
// running, killed and restarted, stopped (slow), foreign data under our
// names, AUTH, racing creators, a consumer killed mid-message. Each test
// starts its own server (some kill it).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "redis_server.h"
#include "redis_test_env.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/redis/redis_counter.h"
#include "shmkit/redis/redis_queue.h"
#include "shmkit/redis/redis_table.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ChildExit;
using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::RedisServer;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::WaitChild;

Schema Counts() {
  return *Schema::Builder().Int("n").String("s", 16).Build();
}

std::unique_ptr<RedisServer> StartServer(RedisServer::Options o = {}) {
  absl::StatusOr<std::unique_ptr<RedisServer>> s = RedisServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) std::abort();
  return *std::move(s);
}

TEST(RedisFault, ServerNotRunningAtOpenIsUnavailableNamingTheAddress) {
  std::unique_ptr<RedisServer> server = StartServer();
  const std::string url = server->url();
  const std::string where = absl::StrCat("127.0.0.1:", server->port());
  ASSERT_TRUE(server->Kill().ok());
  EXPECT_THAT(OpenRedisTable(url, "t", Counts(), {.capacity = 10}),
              StatusIsWith(absl::StatusCode::kUnavailable, where));
  EXPECT_THAT(RedisCounter::Open(url, "c"),
              StatusIsWith(absl::StatusCode::kUnavailable, where));
  ASSERT_TRUE(RegisterRedisQueueScheme().ok());
  EXPECT_THAT(OpenQueue(absl::StrCat("redis:url=", url, ",name=q")),
              StatusIsWith(absl::StatusCode::kUnavailable, where));
}

// kill -9 and restart: calls fail with Unavailable while the server is
// down, the same handle works again afterwards by itself, and what was
// acknowledged before the kill is still there (the server persists with
// appendfsync always).
TEST(RedisFault, KilledAndRestartedServer) {
  std::unique_ptr<RedisServer> server = StartServer({.password = "", .appendonly = true});
  absl::StatusOr<Table> t =
      OpenRedisTable(server->url(), "t", Counts(), {.capacity = 100});
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<RedisCounter> c = RedisCounter::Open(server->url(), "c");
  ASSERT_TRUE(c.ok()) << c.status();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(t->Set(absl::StrCat("k", i), {{"n", i}}).ok());
  }
  ASSERT_TRUE(t->Incr("k1", "n", 10).ok());
  ASSERT_TRUE(c->Add(7).ok());

  ASSERT_TRUE(server->Kill().ok());
  EXPECT_THAT(t->Get("k1"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(t->Incr("k1", "n", 1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(t->Set("k2", {{"n", 0}}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(c->Add(1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(t->Count(), 0u);  // cannot say more: see redis_table.h

  ASSERT_TRUE(server->Restart().ok());
  // The same handles, no reopen.
  absl::StatusOr<Row> row = t->Get("k1");
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(*row->GetInt("n"), 11);
  EXPECT_EQ(*t->Incr("k1", "n", 1), 12);  // scripts are loaded again
  EXPECT_EQ(t->Count(), 20u);
  EXPECT_EQ(*c->Get(), 7);
  EXPECT_EQ(*c->Add(1), 8);
}

// An Incr that may have reached the server is never sent again: the call
// reports the failure, and the caller decides.
TEST(RedisFault, AnIncrInFlightIsNeverResent) {
  std::unique_ptr<RedisServer> server = StartServer({.password = "", .appendonly = true});
  absl::StatusOr<Table> t = OpenRedisTable(
      server->url(), "t", Counts(),
      {.capacity = 10, .command_timeout = absl::Milliseconds(500)});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(t->Set("k", {{"n", 99}}).ok());
  // The server knows the script now (a first call would send SCRIPT LOAD,
  // and the stopped server would never see the Incr itself).
  ASSERT_EQ(*t->Incr("k", "n", 1), 100);

  // 1. Sent to a stopped server: no reply in time. It runs once when the
  // server resumes; the client did not send it twice.
  ASSERT_TRUE(server->Pause().ok());
  EXPECT_THAT(t->Incr("k", "n", 1),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_TRUE(server->Resume().ok());
  EXPECT_EQ(*t->GetColumn("k", "n"), Value(101));

  // 2. Sent to a stopped server that is then killed: it never ran, and the
  // client does not run it after the restart either.
  ASSERT_TRUE(server->Pause().ok());
  absl::Status in_flight;
  std::thread caller([&] { in_flight = t->Incr("k", "n", 1).status(); });
  caller.join();  // DeadlineExceeded after 500 ms
  EXPECT_THAT(in_flight, StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_TRUE(server->Kill().ok());
  ASSERT_TRUE(server->Restart().ok());
  EXPECT_EQ(*t->GetColumn("k", "n"), Value(101));
  EXPECT_EQ(*t->Incr("k", "n", 1), 102);
}

TEST(RedisFault, SlowServerIsDeadlineExceeded) {
  std::unique_ptr<RedisServer> server = StartServer();
  const absl::Duration timeout = absl::Milliseconds(300);
  absl::StatusOr<Table> t = OpenRedisTable(
      server->url(), "t", Counts(), {.capacity = 10, .command_timeout = timeout});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(t->Set("k", {{"n", 1}}).ok());
  ASSERT_TRUE(server->Pause().ok());
  const absl::Time start = absl::Now();
  EXPECT_THAT(t->Get("k"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, timeout);
  EXPECT_LT(took, absl::Seconds(10));
  ASSERT_TRUE(server->Resume().ok());
  EXPECT_EQ(*t->GetColumn("k", "n"), Value(1));
}

TEST(RedisFault, ForeignDataIsFailedPreconditionAndNothingIsOverwritten) {
  std::unique_ptr<RedisServer> server = StartServer();
  const std::string url = server->url();
  // A meta key that is not ours.
  ASSERT_EQ(*server->Run({"SET", "shmkit:t:{a}:meta", "hello"}), "OK");
  EXPECT_THAT(OpenRedisTable(url, "a", Counts(), {.capacity = 10}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*server->Run({"GET", "shmkit:t:{a}:meta"}), "hello");
  ASSERT_EQ(*server->Run({"HSET", "shmkit:t:{b}:meta", "magic", "other"}),
            "(integer) 1");
  EXPECT_THAT(OpenRedisTable(url, "b", Counts(), {.capacity = 10}),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // Keys under an open table's names.
  absl::StatusOr<Table> t = OpenRedisTable(url, "t", Counts(), {.capacity = 10});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(*server->Run({"SET", "shmkit:t:{t}:r:str", "foreign"}), "OK");
  ASSERT_EQ(*server->Run({"HSET", "shmkit:t:{t}:r:hash", "n", "5"}),
            "(integer) 1");
  for (const char* key : {"str", "hash"}) {
    EXPECT_THAT(t->Set(key, {{"n", 1}}),
                StatusIs(absl::StatusCode::kFailedPrecondition))
        << key;
    EXPECT_THAT(t->Add(key, {{"n", 1}}),
                StatusIs(absl::StatusCode::kFailedPrecondition))
        << key;
    EXPECT_THAT(t->Incr(key, "n", 1, {.create = true}),
                StatusIs(absl::StatusCode::kFailedPrecondition))
        << key;
  }
  EXPECT_THAT(t->Get("str"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*server->Run({"GET", "shmkit:t:{t}:r:str"}), "foreign");
  EXPECT_EQ(*server->Run({"HGETALL", "shmkit:t:{t}:r:hash"}), "n\n5");
  EXPECT_EQ(t->Count(), 0u);

  // Counter and queue.
  ASSERT_EQ(*server->Run({"SET", "shmkit:c:{c}:v", "12"}), "OK");
  EXPECT_THAT(RedisCounter::Open(url, "c"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*server->Run({"GET", "shmkit:c:{c}:v"}), "12");
  ASSERT_TRUE(RegisterRedisQueueScheme().ok());
  ASSERT_EQ(*server->Run({"RPUSH", "shmkit:q:{q}:meta", "x"}), "(integer) 1");
  EXPECT_THAT(OpenQueue(absl::StrCat("redis:url=", url, ",name=q")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(RedisFault, SchemaLivesInRedisAndAnotherOneIsRefused) {
  std::unique_ptr<RedisServer> server = StartServer();
  absl::StatusOr<Table> t =
      OpenRedisTable(server->url(), "t", Counts(), {.capacity = 10});
  ASSERT_TRUE(t.ok()) << t.status();
  const Schema other = *Schema::Builder().Int("n").String("s", 32).Build();
  EXPECT_THAT(OpenRedisTable(server->url(), "t", other, {.capacity = 10}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "column 1 is s:string(16) vs s:string(32)"));
  EXPECT_THAT(OpenRedisTable(server->url(), "t", Counts(), {.capacity = 11}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "capacity 10"));
  absl::StatusOr<Table> a = AttachRedisTable(server->url(), "t");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->schema(), Counts());
  ASSERT_TRUE(t->Set("k", {{"s", "shared"}}).ok());
  EXPECT_EQ(*a->GetColumn("k", "s"), Value("shared"));
  EXPECT_THAT(AttachRedisTable(server->url(), "nope"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(OpenRedisTable(server->url(), "t", Counts(),
                             {.capacity = 10, .open = OpenMode::kCreate}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  // Removed under another handle: FailedPrecondition where it matters.
  ASSERT_TRUE(t->Remove().ok());
  EXPECT_THAT(a->Set("k2", {{"n", 1}}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(*server->Run({"KEYS", "shmkit:t:*"}), "");
}

TEST(RedisFault, AuthWithRightAndWrongPassword) {
  std::unique_ptr<RedisServer> server = StartServer({.password = "s3cret"});
  absl::StatusOr<Table> t =
      OpenRedisTable(server->url(), "t", Counts(), {.capacity = 10});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(t->Set("k", {{"n", 1}}).ok());
  EXPECT_THAT(OpenRedisTable(server->url_with_password("wrong"), "t", Counts(),
                             {.capacity = 10}),
              StatusIs(absl::StatusCode::kPermissionDenied));
  const std::string no_password =
      absl::StrCat("redis://127.0.0.1:", server->port(), "/0");
  EXPECT_THAT(OpenRedisTable(no_password, "t", Counts(), {.capacity = 10}),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(RedisCounter::Open(server->url_with_password("wrong"), "c"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// Several processes create the same name at once: exactly one creates it,
// the others attach (auto) or are told it exists (create).
TEST(RedisFault, RacingCreatorsMakeExactlyOneTable) {
  std::unique_ptr<RedisServer> server = StartServer();
  const std::string url = server->url();
  constexpr int kProcs = 6;
  for (OpenMode mode : {OpenMode::kCreate, OpenMode::kCreateOrAttach}) {
    const std::string name =
        mode == OpenMode::kCreate ? "race-create" : "race-auto";
    SyncPipe go;
    std::vector<pid_t> kids;
    for (int p = 0; p < kProcs; ++p) {
      kids.push_back(ForkChild([&, p] {
        go.CloseWrite();
        if (!go.Wait(absl::Seconds(30)).has_value()) return 9;
        absl::StatusOr<Table> t = OpenRedisTable(
            url, name, Counts(), {.capacity = 100, .open = mode});
        if (absl::IsAlreadyExists(t.status())) return 1;
        if (!t.ok()) return 2;
        return t->Add(absl::StrCat("from-", p), {{"n", p}}).ok() ? 0 : 3;
      }));
    }
    for (int p = 0; p < kProcs; ++p) go.Signal();
    int created = 0, exists = 0;
    for (pid_t k : kids) {
      std::optional<ChildExit> e = WaitChild(k);
      ASSERT_TRUE(e.has_value() && e->exited) << name;
      if (e->code == 0) ++created;
      if (e->code == 1) ++exists;
      EXPECT_TRUE(e->code == 0 || e->code == 1) << name << " " << e->code;
    }
    absl::StatusOr<Table> t = AttachRedisTable(url, name);
    ASSERT_TRUE(t.ok()) << t.status();
    if (mode == OpenMode::kCreate) {
      EXPECT_EQ(created, 1);
      EXPECT_EQ(exists, kProcs - 1);
      EXPECT_EQ(t->Count(), 1u);
    } else {
      EXPECT_EQ(created, kProcs);
      EXPECT_EQ(t->Count(), static_cast<uint64_t>(kProcs));
    }
  }
}

// A consumer killed after taking a message, before its next receive: the
// message is delivered again, to another consumer. A live consumer's
// message is left alone.
TEST(RedisFault, ConsumerKilledMidMessageIsRedelivered) {
  std::unique_ptr<RedisServer> server = StartServer();
  ASSERT_TRUE(RegisterRedisQueueScheme().ok());
  const std::string spec = absl::StrCat("redis:url=", server->url(), ",name=tasks");
  absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(spec);
  ASSERT_TRUE(q.ok()) << q.status();
  for (const char* m : {"one", "two", "three"}) ASSERT_TRUE((*q)->Send(m).ok());

  SyncPipe took;
  const pid_t consumer = ForkChild([&] {
    absl::StatusOr<std::unique_ptr<Queue>> mine = OpenQueue(spec);
    if (!mine.ok()) return 1;
    absl::StatusOr<Message> m = (*mine)->Receive(1024);
    if (!m.ok() || m->data != "one") return 2;
    took.Signal();
    pause();  // "processing" until killed
    return 3;
  });
  ASSERT_TRUE(took.Wait().has_value());
  // The consumer is alive: its message is not taken from it.
  absl::StatusOr<Message> m = (*q)->TryReceive(1024);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "two");

  ASSERT_EQ(kill(consumer, SIGKILL), 0);
  std::optional<ChildExit> e = WaitChild(consumer);
  ASSERT_TRUE(e.has_value() && e->signaled);
  // Dead now: "one" comes back (once the queue has nothing new, a receiver
  // looks for dead consumers' messages), within the receive's bound.
  std::vector<std::string> got;
  for (int i = 0; i < 2; ++i) {
    m = (*q)->ReceiveFor(1024, absl::Seconds(20));
    ASSERT_TRUE(m.ok()) << m.status();
    got.push_back(m->data);
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"one", "three"}));
  ASSERT_TRUE(static_cast<RedisQueue&>(**q).Ack().ok());
  EXPECT_THAT((*q)->TryReceive(1024), StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<QueueStats> stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->messages, 0u);
  ASSERT_TRUE((*q)->Remove().ok());
}

// Messages acknowledged or not yet received survive a server restart; the
// queue handle goes on by itself.
TEST(RedisFault, QueueSurvivesARestart) {
  std::unique_ptr<RedisServer> server = StartServer({.password = "", .appendonly = true});
  ASSERT_TRUE(RegisterRedisQueueScheme().ok());
  absl::StatusOr<std::unique_ptr<Queue>> q =
      OpenQueue(absl::StrCat("redis:url=", server->url(), ",name=q"));
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE((*q)->Send("a").ok());
  ASSERT_TRUE((*q)->Send("b").ok());
  ASSERT_TRUE(server->Kill().ok());
  EXPECT_THAT((*q)->TrySend("c"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(server->Restart().ok());
  absl::StatusOr<Message> m = (*q)->ReceiveFor(1024, absl::Seconds(20));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "a");
  m = (*q)->ReceiveFor(1024, absl::Seconds(20));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "b");
}

}  // namespace
}  // namespace shmkit
