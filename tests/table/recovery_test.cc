// Recovery that survives its own crash. A writer is SIGKILLed at every crash
// point of its write; the process that recovers it is SIGKILLed at every
// point of the recovery; and (chains) so is the process that recovers the
// recoverer. After each case, whoever comes next must leave a table that is
// consistent, whose Count() equals what iteration finds, that takes exactly
// `capacity` rows when filled, and that holds no dead writer's record.
#include <signal.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmkit/table/internal/test_hooks.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using internal::CrashPoint;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::RowIsVersioned;
using ::shmkit::testing::VersionedFields;
using ::shmkit::testing::WaitChild;
using ::shmkit::testing::WSchema;

constexpr uint64_t kCapacity = 64;
constexpr int kOthers = 32;

enum class Op { kUpdate, kInsert, kDelete, kIncr, kIncrCreate };

const char* OpName(Op op) {
  switch (op) {
    case Op::kUpdate:
      return "update";
    case Op::kInsert:
      return "insert";
    case Op::kDelete:
      return "delete";
    case Op::kIncr:
      return "incr";
    case Op::kIncrCreate:
      return "incr-create";
  }
  return "?";
}

struct WriterCase {
  CrashPoint point;
  Op op;
};

// Every writer crash point with a write that reaches it.
std::vector<WriterCase> WriterCases() {
  return {
      {CrashPoint::kLockedBeforeRecord, Op::kUpdate},
      {CrashPoint::kRecordedBeforeWrite, Op::kUpdate},
      {CrashPoint::kMidRowWrite, Op::kUpdate},
      {CrashPoint::kWrittenBeforeSeqEven, Op::kUpdate},
      {CrashPoint::kAfterSeqEvenPinned, Op::kUpdate},
      {CrashPoint::kAfterSingleStore, Op::kIncr},
      {CrashPoint::kRecordedBeforeWrite, Op::kInsert},
      {CrashPoint::kClaimedBeforeFill, Op::kInsert},
      {CrashPoint::kAllocatedBeforeLink, Op::kInsert},
      {CrashPoint::kLinkedBeforeSeqEven, Op::kInsert},
      {CrashPoint::kLinkedBeforeLive, Op::kInsert},
      {CrashPoint::kAfterSeqEvenPinned, Op::kInsert},
      {CrashPoint::kAllocatedBeforeLink, Op::kIncrCreate},
      {CrashPoint::kRecordedBeforeWrite, Op::kDelete},
      {CrashPoint::kMarkedBeforeUnlink, Op::kDelete},
      {CrashPoint::kUnlinkedBeforeFree, Op::kDelete},
      {CrashPoint::kFreedBeforeHint, Op::kDelete},
      {CrashPoint::kAfterSeqEvenPinned, Op::kDelete},
  };
}

const std::vector<CrashPoint>& RecoveryPoints() {
  static const auto* points = new std::vector<CrashPoint>{
      CrashPoint::kRecoveryStarted, CrashPoint::kRecoveryRestored,
      CrashPoint::kRecoveryFreed, CrashPoint::kRecoveryBeforeRetire};
  return *points;
}

// Runs `op` on "victim" in a child armed to die at `point`. Returns whether
// the child was killed there (false: it finished its write and exited 0).
::testing::AssertionResult RunArmed(Table& t, CrashPoint point, Op op,
                                    int64_t version, bool must_die,
                                    bool* died) {
  const pid_t child = ForkChild([&] {
    internal::ArmCrashPoint(point);
    absl::Status st;
    switch (op) {
      case Op::kUpdate:
        st = t.Set("victim", VersionedFields(version));
        break;
      case Op::kInsert:
        st = t.Set("victim", VersionedFields(version));
        break;
      case Op::kDelete:
        st = t.Del("victim");
        if (absl::IsNotFound(st)) st = absl::OkStatus();
        break;
      case Op::kIncr:
      case Op::kIncrCreate:
        st = t.Incr("victim", "n", 2, {.create = true}).status();
        break;
    }
    return st.ok() ? 0 : 1;
  });
  const std::optional<::shmkit::testing::ChildExit> e = WaitChild(child);
  if (!e.has_value()) return ::testing::AssertionFailure() << "child hung";
  *died = e->signaled && e->signal == SIGKILL;
  if (*died) return ::testing::AssertionSuccess();
  if (must_die) {
    return ::testing::AssertionFailure()
           << OpName(op) << " never reached crash point "
           << static_cast<int>(point);
  }
  if (!e->exited || e->code != 0) {
    return ::testing::AssertionFailure()
           << OpName(op) << " failed (exit " << e->code << ", signal "
           << e->signal << ")";
  }
  return ::testing::AssertionSuccess();
}

// A fresh table: kOthers versioned rows, plus "victim" unless `op` inserts.
Table NewTable(Op op) {
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = kCapacity});
  EXPECT_TRUE(t.ok()) << t.status();
  for (int i = 0; i < kOthers; ++i) {
    EXPECT_TRUE(t->Set(absl::StrCat("k", i), VersionedFields(i)).ok());
  }
  if (op != Op::kInsert && op != Op::kIncrCreate) {
    EXPECT_TRUE(t->Set("victim", VersionedFields(1000)).ok());
  }
  return *std::move(t);
}

// What the process that comes last checks: its own write of the victim
// recovers whatever is left; then every promise holds.
::testing::AssertionResult Settles(Table& t, const std::string& what) {
  absl::StatusOr<Row> victim = t.Get("victim");
  if (victim.ok()) {
    int64_t v;
    // An increment leaves a versioned row with n changed: check the rest.
    if (victim->GetString("s")->size() > 0 && !RowIsVersioned(*victim, &v) &&
        *victim->GetInt("n") != 2 && *victim->GetInt("n") != 1002) {
      return ::testing::AssertionFailure()
             << what << ": torn victim " << victim->DebugString();
    }
  } else if (!absl::IsNotFound(victim.status())) {
    return ::testing::AssertionFailure() << what << ": " << victim.status();
  }
  if (absl::Status st = t.Set("victim", VersionedFields(7)); !st.ok()) {
    return ::testing::AssertionFailure() << what << ": " << st;
  }
  auto count_rows = [&] {
    uint64_t n = 0;
    EXPECT_TRUE(t.ForEach([&](const Row&) {
                   ++n;
                   return true;
                 }).ok());
    return n;
  };
  if (t.Count() != count_rows()) {
    return ::testing::AssertionFailure()
           << what << ": Count() " << t.Count() << " but iteration finds "
           << count_rows();
  }
  if (absl::Status st = t.CheckConsistency(); !st.ok()) {
    return ::testing::AssertionFailure() << what << ": " << st;
  }
  if (t.Inspect().dead_pinned_slots != 0) {
    return ::testing::AssertionFailure()
           << what << ": a dead writer's record is still live";
  }
  // The capacity promise: exactly kCapacity rows fit, no more.
  for (int i = 0; t.Count() < kCapacity; ++i) {
    if (absl::Status st = t.Add(absl::StrCat("fill", i), {{"n", i}});
        !st.ok()) {
      return ::testing::AssertionFailure()
             << what << ": fill " << i << " at count " << t.Count() << ": "
             << st;
    }
  }
  if (absl::Status st = t.Add("one-too-many", {{"n", 1}});
      !absl::IsResourceExhausted(st)) {
    return ::testing::AssertionFailure()
           << what << ": insert into a full table: " << st;
  }
  if (count_rows() != kCapacity) {
    return ::testing::AssertionFailure()
           << what << ": full table iterates " << count_rows() << " rows";
  }
  if (absl::Status st = t.CheckConsistency(); !st.ok()) {
    return ::testing::AssertionFailure() << what << " (full): " << st;
  }
  return ::testing::AssertionSuccess();
}

std::string Describe(const WriterCase& w, std::initializer_list<int> points) {
  std::string out =
      absl::StrCat(OpName(w.op), " killed at ", static_cast<int>(w.point));
  for (int p : points) absl::StrAppend(&out, ", recoverer killed at ", p);
  return out;
}

// The case found by hand (issue 10): a delete killed after unlinking, its
// recoverer killed after freeing the row, a third process deletes the key.
// Before recovery became crash-safe, the first writer's record stayed live,
// a later recovery freed the row again under its new owner, and the table
// took 65 keys at capacity 64 with a row reachable twice.
TEST(Recovery, ADeleteWhoseRecovererDiesIsFinishedByTheNextProcess) {
  Table t = NewTable(Op::kDelete);
  bool died = false;
  ASSERT_TRUE(RunArmed(t, CrashPoint::kUnlinkedBeforeFree, Op::kDelete, 0, true,
                       &died));
  ASSERT_TRUE(
      RunArmed(t, CrashPoint::kRecoveryFreed, Op::kUpdate, 2000, true, &died));
  ASSERT_TRUE(RunArmed(t, CrashPoint::kNone, Op::kDelete, 0, false, &died));
  EXPECT_FALSE(*t.Exists("victim"));
  EXPECT_EQ(*t.Recover(), 0u) << "nothing should be left to recover";
  EXPECT_TRUE(Settles(t, "delete / recovery freed / delete"));
}

// Every writer crash point x every recovery crash point.
TEST(Recovery, EveryWriterPointTimesEveryRecovererPoint) {
  std::set<int> recovery_points_hit;
  int cases = 0, kills = 0;
  for (const WriterCase& w : WriterCases()) {
    for (CrashPoint r : RecoveryPoints()) {
      Table t = NewTable(w.op);
      bool died = false;
      ASSERT_TRUE(RunArmed(t, w.point, w.op, 2000, true, &died));
      ++kills;
      // The recoverer writes the victim too: its lock takeover recovers.
      ASSERT_TRUE(RunArmed(t, r, (cases & 1) ? Op::kDelete : Op::kUpdate, 3000,
                           false, &died));
      if (died) {
        recovery_points_hit.insert(static_cast<int>(r));
        ++kills;
      }
      ASSERT_TRUE(Settles(t, Describe(w, {static_cast<int>(r)})));
      ++cases;
    }
  }
  // Each recovery point was reached by some writer's leftovers.
  for (CrashPoint r : RecoveryPoints()) {
    EXPECT_EQ(recovery_points_hit.count(static_cast<int>(r)), 1u)
        << "recovery point " << static_cast<int>(r) << " never reached";
  }
  std::printf("recovery pairs: %d cases, %d kills\n", cases, kills);
}

// Chains three deep: the writer, a recoverer and the recoverer's recoverer
// are killed, each at its own point; the next process settles everything.
TEST(Recovery, ChainsOfThreeCrashes) {
  int cases = 0, kills = 0, deep = 0;
  for (const WriterCase& w : WriterCases()) {
    for (CrashPoint r1 : RecoveryPoints()) {
      for (CrashPoint r2 : RecoveryPoints()) {
        Table t = NewTable(w.op);
        bool died1 = false, died2 = false;
        ASSERT_TRUE(RunArmed(t, w.point, w.op, 2000, true, &died1));
        ASSERT_TRUE(RunArmed(t, r1, Op::kUpdate, 3000, false, &died1));
        ASSERT_TRUE(RunArmed(t, r2, (cases & 1) ? Op::kDelete : Op::kUpdate,
                             4000, false, &died2));
        kills += 1 + died1 + died2;
        deep += died1 && died2;
        ASSERT_TRUE(Settles(
            t, Describe(w, {static_cast<int>(r1), static_cast<int>(r2)})));
        ++cases;
      }
    }
  }
  EXPECT_GT(deep, 0) << "no chain had both recoverers killed";
  std::printf("recovery chains: %d cases, %d kills, %d three deep\n", cases,
              kills, deep);
}

// A dead writer's record is finished by the next process that locks its
// bucket, with no Recover(): Count() and iteration agree right after.
TEST(Recovery, ALockTakeoverRetiresEveryDeadRecordOfTheBucket) {
  for (const WriterCase& w : WriterCases()) {
    Table t = NewTable(w.op);
    bool died = false;
    ASSERT_TRUE(RunArmed(t, w.point, w.op, 2000, true, &died));
    // A read that finds the bucket consistent does not recover (readers
    // write nothing); a write does.
    ASSERT_TRUE(t.Set("victim", VersionedFields(5)).ok());
    EXPECT_EQ(t.Inspect().dead_pinned_slots, 0u) << Describe(w, {});
    uint64_t seen = 0;
    ASSERT_TRUE(t.ForEach([&](const Row&) {
                   ++seen;
                   return true;
                 }).ok());
    EXPECT_EQ(t.Count(), seen) << Describe(w, {});
  }
}

}  // namespace
}  // namespace shmkit
