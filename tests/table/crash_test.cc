// Crash-atomic rows: a writer SIGKILLs itself at a chosen point inside each
// write path. The survivor (this process) must find each row entirely old or
// entirely new, proceed without hanging, see the recovery counted, and at the
// end the whole table must pass its consistency check with no row lost.
//
// SHMKIT_CRASH_KILLS sets the number of kills (default 240; the stress label
// runs thousands).
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmkit/table/internal/fast_incr.h"
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

enum class Op {
  kUpdate,
  kInsert,
  kAdd,
  kDel,
  kGetAndDelete,
  kIncr,
  kIncrRemembered,  // an Incr that takes the memo's path
  kIncrCreate,
  kCas
};

const char* OpName(Op op) {
  switch (op) {
    case Op::kUpdate:
      return "update";
    case Op::kInsert:
      return "insert";
    case Op::kAdd:
      return "add";
    case Op::kDel:
      return "del";
    case Op::kGetAndDelete:
      return "get-and-delete";
    case Op::kIncr:
      return "incr";
    case Op::kIncrRemembered:
      return "incr-remembered";
    case Op::kIncrCreate:
      return "incr-create";
    case Op::kCas:
      return "cas";
  }
  return "?";
}

struct Scenario {
  CrashPoint point;
  Op op;
};

// Every crash point with every write path that passes through it.
std::vector<Scenario> Scenarios() {
  std::vector<Scenario> out;
  auto add = [&](CrashPoint p, std::initializer_list<Op> ops) {
    for (Op op : ops) out.push_back({p, op});
  };
  const auto all = {Op::kUpdate,       Op::kInsert, Op::kAdd,        Op::kDel,
                    Op::kGetAndDelete, Op::kIncr,   Op::kIncrCreate, Op::kCas};
  const auto inserts = {Op::kInsert, Op::kAdd, Op::kIncrCreate};
  const auto deletes = {Op::kDel, Op::kGetAndDelete};
  add(CrashPoint::kLockedBeforeRecord, all);
  add(CrashPoint::kLockedBeforeRecord, {Op::kIncrRemembered});
  add(CrashPoint::kAfterSingleStore, {Op::kIncrRemembered});
  // Updates of several columns go through a record; an increment or a
  // numeric compare-and-set of an existing row is one store.
  add(CrashPoint::kRecordedBeforeWrite,
      {Op::kUpdate, Op::kInsert, Op::kAdd, Op::kIncrCreate, Op::kDel,
       Op::kGetAndDelete});
  add(CrashPoint::kMidRowWrite, {Op::kUpdate});
  add(CrashPoint::kWrittenBeforeSeqEven, {Op::kUpdate});
  add(CrashPoint::kAfterSeqEvenPinned,
      {Op::kUpdate, Op::kInsert, Op::kIncrCreate, Op::kDel});
  add(CrashPoint::kAfterSingleStore, {Op::kIncr, Op::kCas});
  for (CrashPoint p :
       {CrashPoint::kClaimedBeforeFill, CrashPoint::kAllocatedBeforeLink,
        CrashPoint::kLinkedBeforeSeqEven, CrashPoint::kLinkedBeforeLive}) {
    add(p, inserts);
  }
  for (CrashPoint p :
       {CrashPoint::kMarkedBeforeUnlink, CrashPoint::kUnlinkedBeforeFree,
        CrashPoint::kFreedBeforeHint}) {
    add(p, deletes);
  }
  return out;
}

int Kills() {
  const char* env = std::getenv("SHMKIT_CRASH_KILLS");
  return env != nullptr ? std::atoi(env) : 240;
}

TEST(Crash, EveryWritePathSurvivesAKillAtEveryPoint) {
  constexpr uint64_t kCapacity = 512;
  constexpr int kKeys = 300;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = kCapacity});
  ASSERT_TRUE(t.ok()) << t.status();
  // The model: each present key's version (versioned keys) or count (ctr).
  std::map<std::string, int64_t> model;
  // Versioned keys "k<i>" (every column derives from one version) and
  // counter keys "c<i>" (only n changes), half of each present at first.
  for (int i = 0; i < kKeys; i += 2) {
    const std::string key = absl::StrCat("k", i);
    ASSERT_TRUE(t->Set(key, VersionedFields(i)).ok());
    model[key] = i;
    const std::string ctr = absl::StrCat("c", i);
    ASSERT_TRUE(t->Set(ctr, {{"n", i}}).ok());
    model[ctr] = i;
  }
  const std::vector<Scenario> scenarios = Scenarios();
  std::mt19937_64 rng(42);
  int64_t next_version = 1'000'000;
  const int kills = Kills();
  int killed = 0;
  for (int iter = 0; iter < kills; ++iter) {
    const Scenario sc = scenarios[iter % scenarios.size()];
    // Pick a key that makes the op meaningful: present for updates and
    // deletes, absent for inserts.
    const bool want_present =
        sc.op != Op::kInsert && sc.op != Op::kAdd && sc.op != Op::kIncrCreate;
    const bool counter_op = sc.op == Op::kIncr ||
                            sc.op == Op::kIncrRemembered ||
                            sc.op == Op::kCas || sc.op == Op::kIncrCreate;
    // Deletes take either kind of key; the others their own kind.
    const bool counter_key =
        counter_op ||
        ((sc.op == Op::kDel || sc.op == Op::kGetAndDelete) && (rng() & 1));
    // Pick among the keys of that kind in the wanted state. Over thousands
    // of kills the mix of inserts and deletes can drift until none is left
    // (every "c" key present, say); the parent then makes one suitable with
    // a plain write, so any kill count runs.
    const char* kind = counter_key ? "c" : "k";
    std::vector<std::string> candidates;
    for (int i = 0; i < kKeys; ++i) {
      std::string k = absl::StrCat(kind, i);
      if ((model.count(k) != 0) == want_present) candidates.push_back(k);
    }
    std::string key;
    if (candidates.empty()) {
      key = absl::StrCat(kind, rng() % kKeys);
      if (want_present) {
        ASSERT_TRUE((counter_key ? t->Set(key, {{"n", 0}})
                                 : t->Set(key, VersionedFields(0)))
                        .ok());
        model[key] = 0;
      } else {
        ASSERT_TRUE(t->Del(key).ok());
        model.erase(key);
      }
    } else {
      key = candidates[rng() % candidates.size()];
    }
    ASSERT_EQ(model.count(key) != 0, want_present);
    const int64_t old_v = want_present ? model[key] : -1;
    const int64_t new_v =
        counter_op ? (want_present ? old_v + 1 : 1) : ++next_version;
    const uint64_t recoveries_before = t->Stats().recoveries;

    const pid_t child = ForkChild([&] {
      if (sc.op != Op::kIncrRemembered) internal::ArmCrashPoint(sc.point);
      absl::Status st;
      switch (sc.op) {
        case Op::kUpdate:
          st = t->Update(key, VersionedFields(new_v));
          break;
        case Op::kInsert:
          st = t->Set(key, VersionedFields(new_v));
          break;
        case Op::kAdd:
          st = t->Add(key, VersionedFields(new_v));
          break;
        case Op::kDel:
          st = t->Del(key);
          break;
        case Op::kGetAndDelete:
          st = t->GetAndDelete(key).status();
          break;
        case Op::kIncr:
          st = t->Incr(key, "n", 1).status();
          break;
        case Op::kIncrRemembered: {
          // Two increments by 0 (nothing changes) put the key in this
          // thread's memo and prove it is there; then the one that dies.
          const uint64_t hits = internal::IncrMemoHits();
          if (!t->Incr(key, "n", 0).ok() || !t->Incr(key, "n", 0).ok()) {
            return 2;
          }
          if (internal::IncrMemoHits() == hits) return 3;
          internal::ArmCrashPoint(sc.point);
          st = t->Incr(key, "n", 1).status();
          break;
        }
        case Op::kIncrCreate:
          st = t->Incr(key, "n", 1, {.create = true}).status();
          break;
        case Op::kCas:
          st = t->CompareAndSet(key, "n", old_v, old_v + 1).status();
          break;
      }
      return st.ok() ? 0 : 1;  // reaching here means the point was missed
    });
    std::optional<::shmkit::testing::ChildExit> e = WaitChild(child);
    ASSERT_TRUE(e.has_value());
    ASSERT_TRUE(e->signaled && e->signal == SIGKILL)
        << OpName(sc.op) << " at point " << static_cast<int>(sc.point)
        << " was not killed (exit " << e->code << ")";
    ++killed;

    // The row is entirely old or entirely new, and the survivor proceeds.
    absl::StatusOr<Row> row = t->Get(key);
    int64_t seen = -1;
    if (row.ok()) {
      if (counter_key) {
        seen = *row->GetInt("n");
      } else {
        ASSERT_TRUE(RowIsVersioned(*row, &seen))
            << OpName(sc.op) << " at point " << static_cast<int>(sc.point);
      }
      ASSERT_TRUE(seen == old_v || seen == new_v)
          << OpName(sc.op) << " at " << static_cast<int>(sc.point) << ": saw "
          << seen << ", old " << old_v << ", new " << new_v;
      model[key] = seen;
    } else {
      ASSERT_TRUE(absl::IsNotFound(row.status())) << row.status();
      ASSERT_TRUE(!want_present || sc.op == Op::kDel ||
                  sc.op == Op::kGetAndDelete)
          << OpName(sc.op) << ": a present key vanished";
      model.erase(key);
    }
    // A write through the same bucket takes the dead writer's lock over and
    // recovers it (reads alone need not: they saw a consistent bucket).
    if (model.count(key) != 0 && !counter_key) {
      ASSERT_TRUE(t->Set(key, VersionedFields(model[key])).ok());
    } else if (model.count(key) != 0) {
      ASSERT_TRUE(t->Incr(key, "n", 0).ok()) << t->Incr(key, "n", 0).status();
    } else {
      ASSERT_THAT(t->Del(key).code(), absl::StatusCode::kNotFound);
    }
    ASSERT_GT(t->Stats().recoveries, recoveries_before)
        << OpName(sc.op) << " at point " << static_cast<int>(sc.point)
        << ": the dead writer's lock was not recovered";
    if (iter % 40 == 39) {
      ASSERT_TRUE(t->CheckConsistency().ok()) << t->CheckConsistency();
    }
  }
  EXPECT_EQ(killed, kills);
  // Whole-table check: every row accounted for, nothing lost to the kills.
  absl::Status consistent = t->CheckConsistency();
  ASSERT_TRUE(consistent.ok()) << consistent;
  EXPECT_EQ(t->Count(), model.size());
  std::map<std::string, int64_t> seen;
  ASSERT_TRUE(t->ForEach([&](const Row& r) {
                 seen[std::string(r.key())] = *r.GetInt("n");
                 return true;
               }).ok());
  EXPECT_EQ(seen.size(), model.size());
  for (const auto& [k, v] : model) EXPECT_EQ(seen[k], v) << k;
  // The capacity promise survived: every free row can be used.
  uint64_t inserted = 0;
  for (uint64_t i = 0; t->Count() < kCapacity; ++i) {
    ASSERT_TRUE(t->Set(absl::StrCat("fill", i), {{"n", 1}}).ok()) << i;
    ++inserted;
  }
  EXPECT_EQ(t->Count(), kCapacity);
  EXPECT_TRUE(absl::IsResourceExhausted(t->Set("one-too-many", {{"n", 1}})));
  std::printf("crash test: %d kills, %llu recoveries, %llu rows refilled\n",
              killed, static_cast<unsigned long long>(t->Stats().recoveries),
              static_cast<unsigned long long>(inserted));
}

TEST(Crash, RecoverFreesAWriterThatNobodyFollows) {
  // A writer dies having allocated a row it never linked; no one touches its
  // bucket again. Recover() (or a full table) brings the row back.
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 4});
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(t->Set(absl::StrCat("k", i), {{"n", i}}).ok());
  const pid_t child = ForkChild([&] {
    internal::ArmCrashPoint(CrashPoint::kAllocatedBeforeLink);
    return t->Set("lost", {{"n", 9}}).ok() ? 0 : 1;
  });
  std::optional<::shmkit::testing::ChildExit> e = WaitChild(child);
  ASSERT_TRUE(e.has_value() && e->signaled);
  EXPECT_EQ(t->Count(), 4u);  // the dead writer's row is still allocated
  EXPECT_EQ(t->Inspect().dead_pinned_slots, 1u);
  // Inserting into the full table recovers it first, then succeeds.
  ASSERT_TRUE(t->Set("fourth", {{"n", 4}}).ok());
  EXPECT_FALSE(*t->Exists("lost"));
  EXPECT_EQ(t->Count(), 4u);
  EXPECT_EQ(t->Inspect().dead_pinned_slots, 0u);
  EXPECT_TRUE(t->CheckConsistency().ok());
  // And Recover() on a table with nothing dead recovers nothing.
  EXPECT_EQ(*t->Recover(), 0u);
}

}  // namespace
}  // namespace shmkit
