// The shmkit command line, run as a real binary: exit codes, usage errors,
// a keyed table created, written, read, dumped, listed, repaired and removed
// through it, and queues sent to and received from. JSON output is parsed
// back with python3.
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/test_hooks.h"
#include "shmkit/table/table.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::CliResult;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::Python;
using ::shmkit::testing::Shmkit;
using ::shmkit::testing::TempFile;
using ::shmkit::testing::UniqueKey;
using ::shmkit::testing::WaitChild;
using ::testing::HasSubstr;

constexpr int kUsage = 2;
constexpr int kNotFound = 3;

std::string Hex(IpcKey key) {
  return absl::StrFormat("0x%x", static_cast<uint32_t>(key.value()));
}

// Runs `script` on `json` (as sys.argv[1], a file); the script asserts.
CliResult CheckJson(const std::string& json, const std::string& script,
                    std::vector<std::string> args = {}) {
  TempFile file(json);
  args.insert(args.begin(), file.path());
  return Python(absl::StrCat("import json, sys\n", script), args);
}

// ---------------------------------------------------------------------------
// Usage

TEST(ShmkitCli, HelpForEveryCommandExitsZero) {
  CliResult top = Shmkit({"--help"});
  ASSERT_EQ(top.code, 0) << top.Describe();
  EXPECT_THAT(top.out, HasSubstr("exit codes"));
  for (const char* command : {"ls", "stat", "rm", "recover", "create", "get",
                              "set", "del", "dump", "send", "recv", "bench"}) {
    CliResult r = Shmkit({command, "--help"});
    EXPECT_EQ(r.code, 0) << command << ": " << r.Describe();
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("usage: shmkit ", command)));
    EXPECT_THAT(r.out, HasSubstr("exit codes"));
  }
}

TEST(ShmkitCli, UsageErrorsExitTwoAndSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "usage: shmkit COMMAND"},
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"ls", "--capacity=5"}, "unknown flag --capacity for 'shmkit ls'"},
      {{"get", "0x5e5e5e5e"}, "expected 2 arguments"},
      {{"create", "--key=0x5e5e5e5e", "--capacity=abc", "--column=a:int64"},
       "--capacity"},
      {{"create", "--key=0x5e5e5e5e", "--capacity=10", "--column=a:intt"},
       "unknown type \"intt\""},
      {{"create", "--capacity=10", "--column=a:int64"}, "--key is required"},
      {{"ls", "--json", "--json"}, "given twice"},
      {{"stat", "not-an-object"}, "object \"not-an-object\""},
      {{"bench", "--workers=-1"}, "--workers"},
      {{"bench", "no-such-workload"}, "unknown workload"},
      {{"bench", "--ops=5", "--duration=1s"}, "exclude each other"},
      {{"send", "sysv", "hello"}, "anonymous"},
  };
  for (const Case& c : cases) {
    CliResult r = Shmkit(c.args);
    EXPECT_EQ(r.code, kUsage)
        << ::testing::PrintToString(c.args) << ": " << r.Describe();
    EXPECT_THAT(r.err, HasSubstr(c.message))
        << ::testing::PrintToString(c.args);
  }
}

TEST(ShmkitCli, MissingObjectsExitThree) {
  const std::string key = Hex(UniqueKey());
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"stat", key},
                                             {"get", key, "k"},
                                             {"rm", key},
                                             {"stat", "msg:" + key}}) {
    CliResult r = Shmkit(args);
    EXPECT_EQ(r.code, kNotFound) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  }
}

// ---------------------------------------------------------------------------
// A keyed table through the CLI

class TableCli : public ::testing::Test {
 protected:
  void TearDown() override {
    // Whatever a failed test left behind.
    const int id = shmget(key_.value(), 0, 0);
    if (id >= 0) shmctl(id, IPC_RMID, nullptr);
  }
  void CreateTable() {
    CliResult r =
        Shmkit({"create", "--key", key_text_, "--capacity", "100", "--column",
                "hits:int64", "--column", "user:string:16", "--column",
                "blob:bytes:4", "--json"});
    ASSERT_EQ(r.code, 0) << r.Describe();
    CliResult check = CheckJson(r.out, R"(
d = json.load(open(sys.argv[1]))
assert d["kind"] == "table", d
assert d["capacity"] == 100, d
assert d["key"] == sys.argv[2], d
)",
                                {key_.ToString()});
    ASSERT_EQ(check.code, 0) << check.Describe();
  }
  CliResult Get(const std::string& row, const std::string& column) {
    return Shmkit({"get", "--get-column", column, key_text_, row});
  }

  IpcKey key_ = UniqueKey();
  std::string key_text_ = Hex(key_);
};

TEST_F(TableCli, CreateSetGetDelDumpLsRm) {
  ASSERT_NO_FATAL_FAILURE(CreateTable());
  ASSERT_EQ(Shmkit({"set", key_text_, "a", "hits=1", "user=ana"}).code, 0);
  ASSERT_EQ(Shmkit({"set", key_text_, "b", "hits=2", "user=x,\"y\""}).code, 0);
  ASSERT_EQ(Shmkit({"set", "--escaped", key_text_, "bin\\x00\\xff", "hits=3",
                    "blob=00ff"})
                .code,
            0);

  CliResult hits = Get("a", "hits");
  ASSERT_EQ(hits.code, 0) << hits.Describe();
  EXPECT_EQ(hits.out, "1\n");

  // Refused values are usage errors and change nothing.
  EXPECT_EQ(Shmkit({"set", key_text_, "a", "hits=abc"}).code, kUsage);
  EXPECT_EQ(Shmkit({"set", key_text_, "a", "user=seventeen-bytes!!"}).code,
            kUsage);
  EXPECT_EQ(Shmkit({"set", key_text_, "a", "nosuch=1"}).code, kUsage);
  EXPECT_EQ(Shmkit({"set", key_text_, "a", "blob=0g"}).code, kUsage);
  EXPECT_EQ(Get("a", "hits").out, "1\n");
  EXPECT_EQ(Get("a", "user").out, "ana\n");

  CliResult row = Shmkit({"get", "--json", key_text_, "a"});
  ASSERT_EQ(row.code, 0) << row.Describe();
  CliResult check = CheckJson(row.out, R"(
d = json.load(open(sys.argv[1]))
assert d["key"] == "a", d
assert d["columns"] == {"hits": 1, "user": "ana", "blob": {"hex": ""}}, d
)");
  EXPECT_EQ(check.code, 0) << check.Describe();

  // dump --json: one object per line, the binary key as hex.
  CliResult dump = Shmkit({"dump", "--json", key_text_});
  ASSERT_EQ(dump.code, 0) << dump.Describe();
  check = CheckJson(dump.out, R"(
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
assert len(rows) == 3, rows
by_key = {json.dumps(r["key"], sort_keys=True): r for r in rows}
a = by_key[json.dumps("a")]
assert a["columns"]["hits"] == 1 and a["columns"]["user"] == "ana", a
b = by_key[json.dumps("b")]
assert b["columns"]["user"] == 'x,"y"', b
binary = by_key[json.dumps({"hex": "62696e00ff"})]
assert binary["columns"]["hits"] == 3, binary
assert binary["columns"]["blob"] == {"hex": "00ff"}, binary
)");
  EXPECT_EQ(check.code, 0) << check.Describe();

  // dump as CSV: RFC 4180 quoting, C escapes for the binary key.
  CliResult csv = Shmkit({"dump", key_text_});
  ASSERT_EQ(csv.code, 0) << csv.Describe();
  check = Python(R"(
import csv, io, sys
rows = list(csv.reader(io.StringIO(sys.argv[1])))
assert rows[0] == ["key", "hits", "user", "blob"], rows[0]
body = sorted(rows[1:])
assert body == sorted([["a", "1", "ana", ""], ["b", "2", 'x,"y"', ""],
                       ["bin\\x00\\xff", "3", "", "00ff"]]), body
)",
                 {csv.out});
  EXPECT_EQ(check.code, 0) << check.Describe();

  // del: present, then absent (not found).
  EXPECT_EQ(Shmkit({"del", key_text_, "b"}).code, 0);
  CliResult again = Shmkit({"del", key_text_, "b"});
  EXPECT_EQ(again.code, kNotFound) << again.Describe();
  EXPECT_EQ(Get("b", "hits").code, kNotFound);

  // ls shows the table with its live rows; stat agrees.
  CliResult ls = Shmkit({"ls", "--json"});
  ASSERT_EQ(ls.code, 0) << ls.Describe();
  check = CheckJson(ls.out, R"(
objects = json.load(open(sys.argv[1]))["objects"]
mine = [o for o in objects if o["key"] == sys.argv[2]]
assert len(mine) == 1, objects
t = mine[0]
assert t["kind"] == "table" and t["shmkit"], t
assert t["capacity"] == 100 and t["live_rows"] == 2, t
assert t["creator_alive"] is False, t
)",
                    {key_.ToString()});
  EXPECT_EQ(check.code, 0) << check.Describe();
  CliResult ls_text = Shmkit({"ls"});
  EXPECT_THAT(ls_text.out, HasSubstr(key_.ToString()));

  CliResult stat = Shmkit({"stat", "--json", key_text_});
  ASSERT_EQ(stat.code, 0) << stat.Describe();
  check = CheckJson(stat.out, R"(
d = json.load(open(sys.argv[1]))
t = d["table"]
assert t["capacity"] == 100 and t["live_rows"] == 2, t
assert sum(t["chain_histogram"]) == t["buckets"], t
assert t["held_locks"] == [] and t["recoveries"] == 0, t
)");
  EXPECT_EQ(check.code, 0) << check.Describe();

  // rm removes it: ls no longer lists it, get finds nothing.
  CliResult rm = Shmkit({"rm", key_text_});
  ASSERT_EQ(rm.code, 0) << rm.Describe();
  EXPECT_LT(shmget(key_.value(), 0, 0), 0);
  EXPECT_THAT(Shmkit({"ls"}).out, ::testing::Not(HasSubstr(key_.ToString())));
  EXPECT_EQ(Get("a", "hits").code, kNotFound);
}

TEST_F(TableCli, StatShowsADeadWriterAndRecoverRepairsItsRow) {
  ASSERT_NO_FATAL_FAILURE(CreateTable());
  ASSERT_EQ(Shmkit({"set", key_text_, "a", "hits=1", "user=before"}).code, 0);
  // A writer killed in the middle of rewriting row "a".
  const pid_t child = ForkChild([&]() -> int {
    TableAttachOptions options;
    options.expected_mode = std::nullopt;
    absl::StatusOr<Table> table = Table::Attach(key_, options);
    if (!table.ok()) return 10;
    internal::ArmCrashPoint(internal::CrashPoint::kMidRowWrite);
    (void)table->Set("a", {{"hits", 99}, {"user", "after"}});
    return 11;  // not reached: the crash point kills the process
  });
  std::optional<testing::ChildExit> exit = WaitChild(child);
  ASSERT_TRUE(exit.has_value());
  ASSERT_TRUE(exit->signaled) << "child exited with " << exit->code;
  ASSERT_EQ(exit->signal, SIGKILL);

  CliResult stat = Shmkit({"stat", "--json", key_text_});
  ASSERT_EQ(stat.code, 0) << stat.Describe();
  CliResult check = CheckJson(stat.out, R"(
t = json.load(open(sys.argv[1]))["table"]
assert len(t["held_locks"]) == 1, t
assert t["held_locks"][0]["owner_alive"] is False, t
assert t["held_locks"][0]["pid"] == int(sys.argv[2]), t
)",
                              {absl::StrCat(child)});
  EXPECT_EQ(check.code, 0) << check.Describe();
  EXPECT_THAT(Shmkit({"stat", key_text_}).out, HasSubstr("DEAD"));

  CliResult recover = Shmkit({"recover", "--json", key_text_});
  ASSERT_EQ(recover.code, 0) << recover.Describe();
  check = CheckJson(recover.out, R"(
d = json.load(open(sys.argv[1]))
assert d["recoveries"] >= 1, d
assert int(sys.argv[2]) in d["dead_lock_owner_pids"], d
)",
                    {absl::StrCat(child)});
  EXPECT_EQ(check.code, 0) << check.Describe();
  // The half-written row was rolled back to its old image.
  EXPECT_EQ(Get("a", "hits").out, "1\n");
  EXPECT_EQ(Get("a", "user").out, "before\n");
  stat = Shmkit({"stat", "--json", key_text_});
  check = CheckJson(stat.out, R"(
t = json.load(open(sys.argv[1]))["table"]
assert t["held_locks"] == [] and t["recoveries"] >= 1, t
)");
  EXPECT_EQ(check.code, 0) << check.Describe();
  EXPECT_EQ(Shmkit({"rm", key_text_}).code, 0);
}

TEST_F(TableCli, RmRefusesSegmentsThatAreNotShmkits) {
  absl::StatusOr<Segment> foreign =
      Segment::Create({.bytes = 4096, .key = key_});
  ASSERT_TRUE(foreign.ok()) << foreign.status();
  CliResult rm = Shmkit({"rm", key_text_});
  EXPECT_EQ(rm.code, 1) << rm.Describe();
  EXPECT_THAT(rm.err, HasSubstr("not a shmkit object"));
  // Not listed by default; listed with --all.
  EXPECT_THAT(Shmkit({"ls"}).out, ::testing::Not(HasSubstr(key_.ToString())));
  EXPECT_THAT(Shmkit({"ls", "--all"}).out, HasSubstr(key_.ToString()));
  EXPECT_EQ(Shmkit({"rm", "--force", key_text_}).code, 0);
  EXPECT_LT(shmget(key_.value(), 0, 0), 0);
}

// ---------------------------------------------------------------------------
// Queues

class QueueCli : public ::testing::Test {
 protected:
  void TearDown() override {
    const int q = msgget(key_.value(), 0);
    if (q >= 0) msgctl(q, IPC_RMID, nullptr);
    const int id = shmget(key_.value(), 0, 0);
    if (id >= 0) shmctl(id, IPC_RMID, nullptr);
  }
  IpcKey key_ = UniqueKey();
  std::string key_text_ = Hex(key_);
};

TEST_F(QueueCli, SysvSendThenReceiveThenRemove) {
  const std::string spec = absl::StrCat("sysv:key=", key_text_);
  CliResult sent =
      Shmkit({"send", spec + ",open=create", "hello", "two words"});
  ASSERT_EQ(sent.code, 0) << sent.Describe();
  ASSERT_EQ(Shmkit({"send", "--type=7", "--escaped", spec, "bin\\x00"}).code,
            0);
  EXPECT_EQ(Shmkit({"send", "--type=0", spec, "x"}).code, kUsage);

  // Typed receive takes the type-7 message first.
  CliResult typed = Shmkit({"recv", "--json", "--type=7", spec});
  ASSERT_EQ(typed.code, 0) << typed.Describe();
  CliResult check = CheckJson(typed.out, R"(
m = json.loads(open(sys.argv[1]).read())
assert m == {"type": 7, "bytes": 4, "data": "bin\u0000", "truncated": False}, m
)");
  EXPECT_EQ(check.code, 0) << check.Describe();

  CliResult two = Shmkit({"recv", "--json", "--count=2", spec});
  ASSERT_EQ(two.code, 0) << two.Describe();
  check = CheckJson(two.out, R"(
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [m["data"] for m in msgs] == ["hello", "two words"], msgs
assert all(m["type"] == 1 for m in msgs), msgs
)");
  EXPECT_EQ(check.code, 0) << check.Describe();

  CliResult empty = Shmkit({"recv", "--timeout=0", spec});
  EXPECT_EQ(empty.code, kNotFound) << empty.Describe();

  CliResult ls = Shmkit({"ls", "--json"});
  check = CheckJson(ls.out, R"(
objects = json.load(open(sys.argv[1]))["objects"]
assert any(o["kind"] == "sysv-queue" and o["key"] == sys.argv[2]
           for o in objects), objects
)",
                    {key_.ToString()});
  EXPECT_EQ(check.code, 0) << check.Describe();

  EXPECT_EQ(Shmkit({"rm", "msg:" + key_text_}).code, 0);
  EXPECT_LT(msgget(key_.value(), 0), 0);
  EXPECT_EQ(Shmkit({"recv", "--timeout=0", spec + ",open=attach"}).code,
            kNotFound);
}

TEST_F(QueueCli, RingSendThenReceive) {
  const std::string spec =
      absl::StrCat("ring:key=", key_text_, ",slots=8,slot_bytes=64");
  CliResult sent = Shmkit({"send", spec, "first", "second"});
  ASSERT_EQ(sent.code, 0) << sent.Describe();
  CliResult got = Shmkit({"recv", "--count=2", spec});
  ASSERT_EQ(got.code, 0) << got.Describe();
  EXPECT_EQ(got.out, "first\nsecond\n");
  // The ring is a shmkit segment: ls knows its kind, rm removes it.
  EXPECT_THAT(Shmkit({"ls"}).out, HasSubstr("ring-queue"));
  EXPECT_EQ(Shmkit({"rm", key_text_}).code, 0);
  EXPECT_LT(shmget(key_.value(), 0, 0), 0);
}

// A message too long for the queue is a usage error that leaves nothing
// behind: no new queue (sysv, ring), and an existing one untouched.
TEST_F(QueueCli, SendOfATooLongMessageCreatesNothing) {
  uint64_t msgmax = 0;
  std::ifstream("/proc/sys/kernel/msgmax") >> msgmax;
  ASSERT_GT(msgmax, 0u);
  const std::string sysv = absl::StrCat("sysv:key=", key_text_);
  CliResult big = Shmkit({"send", sysv, std::string(msgmax + 1, 'x')});
  EXPECT_EQ(big.code, kUsage) << big.Describe();
  EXPECT_THAT(big.err, HasSubstr("no queue was created"));
  EXPECT_LT(msgget(key_.value(), 0), 0) << "send left a queue behind";

  const std::string ring =
      absl::StrCat("ring:key=", key_text_, ",slot_bytes=64");
  big = Shmkit({"send", ring, "short", std::string(65, 'x')});
  EXPECT_EQ(big.code, kUsage) << big.Describe();
  EXPECT_LT(shmget(key_.value(), 0, 0), 0) << "send left a ring behind";

  // An existing ring: refused against its own geometry, nothing sent.
  ASSERT_EQ(Shmkit({"send", ring, "kept"}).code, 0);
  big = Shmkit({"send", absl::StrCat("ring:key=", key_text_), "a",
                std::string(65, 'x')});
  EXPECT_EQ(big.code, kUsage) << big.Describe();
  CliResult got = Shmkit({"recv", "--count=1", ring});
  EXPECT_EQ(got.out, "kept\n");
  EXPECT_EQ(Shmkit({"recv", "--timeout=0", ring}).code, kNotFound);
  EXPECT_EQ(Shmkit({"rm", key_text_}).code, 0);
}

}  // namespace
}  // namespace shmkit
