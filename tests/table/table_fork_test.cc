// The table shared by several processes.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/hash.h"
#include "shmkit/table/internal/fast_incr.h"
#include "shmkit/table/internal/test_hooks.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::RowIsVersioned;
using ::shmkit::testing::SeqKey;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::VersionedFields;
using ::shmkit::testing::WSchema;

// Exit codes of the worker processes.
constexpr int kOk = 0;
constexpr int kTorn = 10;
constexpr int kUnexpected = 11;

// Seconds for the time-based tests: SHMKIT_STRESS_SECONDS (the stress label
// sets it) or the default.
double Seconds(double fallback) {
  const char* env = std::getenv("SHMKIT_STRESS_SECONDS");
  return env != nullptr ? std::atof(env) : fallback;
}

// A small shared array the workers report into.
struct Shared {
  Segment segment;
  int64_t* slots() { return static_cast<int64_t*>(segment.data()); }
};
Shared MakeShared(size_t n) {
  return Shared{*Segment::Create({.bytes = n * sizeof(int64_t)})};
}

TEST(TableFork, RandomOpsKeepPerKeyInvariants) {
  constexpr int kWorkers = 4;
  constexpr int kOps = 20'000;
  constexpr int kCounters = 64;   // group A: only incremented (Incr, CAS)
  constexpr int kVersioned = 64;  // group B: rows always whole versions
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 256});
  ASSERT_TRUE(t.ok()) << t.status();
  Shared counts = MakeShared(kWorkers * kCounters);
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    pids.push_back(ForkChild([&, w] {
      std::mt19937_64 rng(w + 1);
      int64_t* mine = counts.slots() + w * kCounters;
      int64_t version = int64_t{w} << 40;
      for (int i = 0; i < kOps; ++i) {
        const uint64_t dice = rng() % 100;
        if (dice < 40) {
          const std::string key = absl::StrCat("ctr", rng() % kCounters);
          const int idx = std::stoi(key.substr(3));
          if (dice < 30) {
            if (!t->Incr(key, "n", 1, {.create = true}).ok())
              return kUnexpected;
            ++mine[idx];
          } else {
            absl::StatusOr<Value> now = t->GetColumn(key, "n");
            if (absl::IsNotFound(now.status())) continue;
            if (!now.ok()) return kUnexpected;
            absl::StatusOr<bool> swapped =
                t->CompareAndSet(key, "n", *now, now->int_value() + 1);
            if (!swapped.ok()) return kUnexpected;
            if (*swapped) ++mine[idx];
          }
          continue;
        }
        const std::string key = absl::StrCat("ver", rng() % kVersioned);
        const std::vector<FieldValue> fields = VersionedFields(++version);
        absl::Status st;
        switch (dice % 6) {
          case 0:
            st = t->Set(key, fields);
            break;
          case 1:
            st = t->Add(key, fields);
            if (absl::IsAlreadyExists(st)) st = absl::OkStatus();
            break;
          case 2:
            st = t->Update(key, fields);
            if (absl::IsNotFound(st)) st = absl::OkStatus();
            break;
          case 3:
            st = t->Del(key);
            if (absl::IsNotFound(st)) st = absl::OkStatus();
            break;
          case 4: {
            absl::StatusOr<Row> row = t->GetAndDelete(key);
            if (row.ok() && !RowIsVersioned(*row, nullptr)) return kTorn;
            st = absl::IsNotFound(row.status()) ? absl::OkStatus()
                                                : row.status();
            break;
          }
          default: {
            absl::StatusOr<Row> row = t->Get(key);
            if (row.ok() && !RowIsVersioned(*row, nullptr)) return kTorn;
            st = absl::IsNotFound(row.status()) ? absl::OkStatus()
                                                : row.status();
            break;
          }
        }
        if (!st.ok()) return kUnexpected;
      }
      return kOk;
    }));
  }
  for (pid_t p : pids) EXPECT_TRUE(ExitedWith(p, kOk, absl::Minutes(3)));
  for (int k = 0; k < kCounters; ++k) {
    int64_t expected = 0;
    for (int w = 0; w < kWorkers; ++w)
      expected += counts.slots()[w * kCounters + k];
    absl::StatusOr<Value> n = t->GetColumn(absl::StrCat("ctr", k), "n");
    if (expected == 0) {
      EXPECT_THAT(n, StatusIs(absl::StatusCode::kNotFound));
    } else {
      ASSERT_TRUE(n.ok()) << k;
      EXPECT_EQ(n->int_value(), expected) << "counter " << k;
    }
  }
  uint64_t rows = 0;
  ASSERT_TRUE(t->ForEach([&](const Row& row) {
                 ++rows;
                 if (row.key().substr(0, 3) == "ver") {
                   EXPECT_TRUE(RowIsVersioned(row, nullptr));
                 }
                 return true;
               }).ok());
  EXPECT_EQ(rows, t->Count());
  EXPECT_TRUE(t->CheckConsistency().ok());
  EXPECT_EQ(t->Stats().recoveries, 0u);
}

TEST(TableFork, HotKeyIncrementsFromFourProcessesAreExact) {
  constexpr int kWorkers = 4;
  constexpr int kIncrements = 100'000;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 16});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("hot", {{"n", 0}}).ok());
  std::vector<pid_t> pids;
  for (int w = 0; w < kWorkers; ++w) {
    pids.push_back(ForkChild([&] {
      for (int i = 0; i < kIncrements; ++i) {
        if (!t->Incr("hot", "n", 1).ok()) return kUnexpected;
      }
      return kOk;
    }));
  }
  for (pid_t p : pids) EXPECT_TRUE(ExitedWith(p, kOk, absl::Minutes(3)));
  EXPECT_EQ(*t->Get("hot")->GetInt("n"), int64_t{kWorkers} * kIncrements);
}

// Incr's memo is inherited across fork: the child's remembered Incr must
// lock as the child. A child killed on that path holding the lock leaves
// a lock its parent takes over (as a dead process's), not one that looks
// like the parent's own.
TEST(TableFork, AChildIncrementsThroughItsParentsMemoAsItself) {
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 16});
  ASSERT_TRUE(t.ok());
  const IntColumn n = *WSchema().Int("n");
  ASSERT_TRUE(t->Set("hot", {{n, 0}}).ok());
  ASSERT_EQ(*t->Incr("hot", n, 1), 1);
  ASSERT_EQ(*t->Incr("hot", n, 1), 2);  // remembered
  const pid_t counter = ForkChild([&] {
    const uint64_t hits = internal::IncrMemoHits();
    for (int64_t i = 3; i < 1003; ++i) {
      absl::StatusOr<int64_t> v = t->Incr("hot", n, 1);
      if (!v.ok() || *v != i) return kUnexpected;
    }
    // The child's first Incr finds the inherited entry's token is its
    // parent's (another fork epoch): it looks the key up, claims its own
    // registry slot and remembers the key with it; the 999 others take the
    // memo, locking as the child.
    return internal::IncrMemoHits() - hits == 999 ? kOk : kUnexpected;
  });
  EXPECT_TRUE(ExitedWith(counter, kOk, absl::Minutes(1)));
  const pid_t dies = ForkChild([&] {
    const uint64_t hits = internal::IncrMemoHits();
    if (*t->Incr("hot", n, 0) != 1002 || *t->Incr("hot", n, 0) != 1002 ||
        internal::IncrMemoHits() == hits) {
      return kUnexpected;  // not remembered
    }
    internal::ArmCrashPoint(internal::CrashPoint::kAfterSingleStore);
    (void)t->Incr("hot", n, 1);  // killed holding the lock, add stored
    return kUnexpected;
  });
  std::optional<::shmkit::testing::ChildExit> e =
      ::shmkit::testing::WaitChild(dies);
  ASSERT_TRUE(e.has_value() && e->signaled && e->signal == SIGKILL);
  EXPECT_EQ(*t->Incr("hot", n, 1), 1004);
  EXPECT_EQ(t->Stats().recoveries, 1u);
  EXPECT_TRUE(t->CheckConsistency().ok());
}

// Incr finds its row before it takes the bucket lock. A row that changes
// hands in between (its key deleted, another key inserted into the same
// row) must not get the increment. One bucket, two rows: a mover keeps
// deleting "k" and inserting "other" (n = 0) and back, so "other" often
// lands in the row "k" just left, while an incrementer hammers "k"; every
// "other" the mover deletes must still hold 0.
TEST(TableFork, AnIncrementNeverLandsInARowItsKeyHasLeft) {
  constexpr int kRounds = 200'000;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 2});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->Stats().buckets, 1u);
  ASSERT_TRUE(t->Set("k", {{"n", 0}}).ok());
  Shared stop = MakeShared(2);  // [0]: stop, [1]: incrementer started
  const pid_t incrementer = ForkChild([&] {
    std::atomic_ref<int64_t>(stop.slots()[1]).store(1);
    while (std::atomic_ref<int64_t>(stop.slots()[0]).load() == 0) {
      absl::StatusOr<int64_t> v = t->Incr("k", "n", 1, {.create = false});
      if (!v.ok() && !absl::IsNotFound(v.status())) return kUnexpected;
    }
    return kOk;
  });
  const pid_t mover = ForkChild([&] {
    while (std::atomic_ref<int64_t>(stop.slots()[1]).load() == 0) {
      sched_yield();
    }
    int result = kOk;
    for (int i = 0; i < kRounds && result == kOk; ++i) {
      absl::StatusOr<Row> removed;
      if (!t->Del("k").ok() || !t->Set("other", {{"n", 0}}).ok() ||
          !(removed = t->GetAndDelete("other")).ok()) {
        result = kUnexpected;
      } else if (*removed->GetInt("n") != 0) {
        result = kTorn;  // an increment of "k" landed in "other"
      } else if (!t->Set("k", {{"n", 0}}).ok()) {
        result = kUnexpected;
      }
    }
    std::atomic_ref<int64_t>(stop.slots()[0]).store(1);
    return result;
  });
  EXPECT_TRUE(ExitedWith(mover, kOk, absl::Minutes(3)));
  std::atomic_ref<int64_t>(stop.slots()[0]).store(1);
  EXPECT_TRUE(ExitedWith(incrementer, kOk, absl::Minutes(1)));
  EXPECT_TRUE(t->CheckConsistency().ok());
}

// Every column of a row derives from one version number; readers in other
// processes must never see columns of two versions.
void RunTornReadTest(double seconds) {
  constexpr int kKeys = 8;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 64});
  ASSERT_TRUE(t.ok());
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(t->Set(SeqKey(k), VersionedFields(0)).ok());
  }
  Shared reads = MakeShared(4);
  const absl::Time until = absl::Now() + absl::Seconds(seconds);
  std::vector<pid_t> pids;
  for (int w = 0; w < 2; ++w) {  // writers
    pids.push_back(ForkChild([&, w] {
      std::mt19937_64 rng(w);
      int64_t v = w * 1'000'000'000LL;
      while (absl::Now() < until) {
        for (int i = 0; i < 256; ++i) {
          if (!t->Set(SeqKey(rng() % kKeys), VersionedFields(++v)).ok()) {
            return kUnexpected;
          }
        }
      }
      return kOk;
    }));
  }
  for (int r = 0; r < 2; ++r) {  // readers
    pids.push_back(ForkChild([&, r] {
      std::mt19937_64 rng(100 + r);
      Row row;
      int64_t n = 0;
      while (absl::Now() < until) {
        for (int i = 0; i < 256; ++i, ++n) {
          if (!t->Get(SeqKey(rng() % kKeys), &row).ok()) return kUnexpected;
          if (!RowIsVersioned(row, nullptr)) return kTorn;
        }
      }
      reads.slots()[r] = n;
      return kOk;
    }));
  }
  for (pid_t p : pids)
    EXPECT_TRUE(ExitedWith(p, kOk, absl::Seconds(seconds + 60)));
  EXPECT_GT(reads.slots()[0] + reads.slots()[1], 1000);
  std::printf(
      "torn-read test: %.1f s, %lld consistent reads, %llu read fallbacks\n",
      seconds, static_cast<long long>(reads.slots()[0] + reads.slots()[1]),
      static_cast<unsigned long long>(t->Stats().read_fallbacks));
}

TEST(TableFork, ReadersNeverSeeATornRow) { RunTornReadTest(Seconds(2)); }

TEST(TableFork, StoppedWriterIsNeverOverridden) {
  absl::StatusOr<Table> t = Table::Create(
      WSchema(), {.capacity = 16, .lock_timeout = absl::Seconds(1)});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", VersionedFields(1)).ok());
  const pid_t writer = ForkChild([&] {
    // Stops itself holding the bucket lock, the row half rewritten.
    internal::ArmCrashPoint(internal::CrashPoint::kWrittenBeforeSeqEven, 0,
                            internal::CrashAction::kStop);
    return t->Set("k", VersionedFields(2)).ok() ? kOk : kUnexpected;
  });
  int status = 0;
  ASSERT_EQ(waitpid(writer, &status, WUNTRACED), writer);
  ASSERT_TRUE(WIFSTOPPED(status));
  const absl::Time stopped = absl::Now();
  EXPECT_THAT(t->Set("k", VersionedFields(3)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Readers cannot get a consistent copy either; after their optimistic
  // tries they wait for the lock and give up the same way.
  EXPECT_THAT(t->Get("k"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::SleepFor(absl::Seconds(3) - (absl::Now() - stopped));
  ASSERT_EQ(kill(writer, SIGCONT), 0);
  EXPECT_TRUE(ExitedWith(writer, kOk));
  int64_t v = 0;
  absl::StatusOr<Row> row = t->Get("k");
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(RowIsVersioned(*row, &v));
  EXPECT_EQ(v, 2);  // the stopped writer finished its own write
  EXPECT_EQ(t->Stats().recoveries, 0u);
  EXPECT_GE(t->Stats().lock_waits, 1u);
}

// A pre-forking server's master that itself waits for a bucket a worker
// died holding cannot reap that worker meanwhile: the worker is dead once it
// has exited, not once it is reaped, so the master's write recovers the
// bucket instead of waiting out its lock bound.
TEST(TableFork, AWriterKilledMidRowIsTakenOverBeforeItIsReaped) {
  absl::StatusOr<Table> t = Table::Create(
      WSchema(), {.capacity = 16, .lock_timeout = absl::Seconds(20)});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->Set("k", VersionedFields(1)).ok());
  const pid_t writer = ForkChild([&] {
    // Killed holding the bucket lock, the row half rewritten.
    internal::ArmCrashPoint(internal::CrashPoint::kWrittenBeforeSeqEven);
    return t->Set("k", VersionedFields(2)).ok() ? kOk : kUnexpected;
  });
  // Dead, not reaped: a zombie until WaitChild below.
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, writer, &info, WEXITED | WNOWAIT), 0);
  ASSERT_EQ(info.si_code, CLD_KILLED);
  EXPECT_TRUE(t->Set("k", VersionedFields(3)).ok());
  std::optional<::shmkit::testing::ChildExit> e =
      ::shmkit::testing::WaitChild(writer);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->signaled && e->signal == SIGKILL);
  int64_t v = 0;
  absl::StatusOr<Row> row = t->Get("k");
  ASSERT_TRUE(row.ok()) << row.status();
  ASSERT_TRUE(RowIsVersioned(*row, &v));
  EXPECT_EQ(v, 3);
  EXPECT_EQ(t->Stats().recoveries, 1u);
  EXPECT_TRUE(t->CheckConsistency().ok());
}

TEST(TableFork, ReadOnlyHandleReportsADeadWritersBucketAtOnce) {
  const IpcKey key = ::shmkit::testing::UniqueKey();
  absl::StatusOr<Table> t = Table::Create(
      WSchema(),
      {.capacity = 16, .key = key, .lock_timeout = absl::Seconds(5)});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE(t->Set("k", VersionedFields(1)).ok());
  const pid_t writer = ForkChild([&] {
    internal::ArmCrashPoint(internal::CrashPoint::kWrittenBeforeSeqEven);
    return t->Set("k", VersionedFields(2)).ok() ? kOk : kUnexpected;
  });
  std::optional<::shmkit::testing::ChildExit> e =
      ::shmkit::testing::WaitChild(writer);
  ASSERT_TRUE(e.has_value() && e->signaled);
  absl::StatusOr<Table> ro = Table::Attach(key, {.read_only = true});
  ASSERT_TRUE(ro.ok()) << ro.status();
  const absl::Time start = absl::Now();
  EXPECT_THAT(ro->Get("k"), ::shmkit::testing::StatusIsWith(
                                absl::StatusCode::kFailedPrecondition, "died"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // A writable handle recovers it; then the read-only one reads the old row.
  EXPECT_EQ(*t->Recover(), 1u);
  int64_t v = 0;
  absl::StatusOr<Row> row = ro->Get("k");
  ASSERT_TRUE(row.ok()) << row.status();
  ASSERT_TRUE(RowIsVersioned(*row, &v));
  EXPECT_EQ(v, 1);
  ASSERT_TRUE(t->Remove().ok());
}

TEST(TableFork, IterationSeesStableRowsExactlyOnceUnderChurn) {
  constexpr int kStable = 3000;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = 8000});
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < kStable; ++i) {
    ASSERT_TRUE(t->Set(absl::StrCat("stable", i), {{"n", i}}).ok());
  }
  Shared stop = MakeShared(1);
  std::vector<pid_t> churners;
  for (int w = 0; w < 2; ++w) {
    churners.push_back(ForkChild([&, w] {
      std::mt19937_64 rng(w);
      while (stop.slots()[0] == 0) {
        const std::string key = absl::StrCat("churn", w, "-", rng() % 2000);
        absl::Status st = (rng() & 1) ? t->Set(key, {{"n", -1}}) : t->Del(key);
        if (!st.ok() && !absl::IsNotFound(st)) return kUnexpected;
      }
      return kOk;
    }));
  }
  for (int pass = 0; pass < 5; ++pass) {
    std::map<std::string, int> seen;
    ASSERT_TRUE(t->ForEach([&](const Row& row) {
                   ++seen[std::string(row.key())];
                   return true;
                 }).ok());
    int stable_seen = 0;
    for (const auto& [key, times] : seen) {
      ASSERT_EQ(times, 1) << key << " seen " << times << " times in pass "
                          << pass;
      stable_seen += key.rfind("stable", 0) == 0;
    }
    EXPECT_EQ(stable_seen, kStable) << "pass " << pass;
  }
  std::atomic_ref<int64_t>(stop.slots()[0]).store(1);
  for (pid_t p : churners) EXPECT_TRUE(ExitedWith(p, kOk));
  EXPECT_TRUE(t->CheckConsistency().ok());
}

// A full table remembers that it is full (refused inserts then skip the scan
// for a free row); a row freed at the moment another process decides the
// table is full must never be hidden by that. Two movers each delete one of
// their rows and insert a new key (every insert has the row its mover just
// freed); a third process keeps inserting into the full table and gives back
// at once any row it gets. A hidden row would leave a mover refused for good.
TEST(TableFork, ARowFreedWhileAnotherProcessFindsTheTableFullIsFound) {
  constexpr uint64_t kCapacity = 1024;
  constexpr int kMovers = 2;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = kCapacity});
  ASSERT_TRUE(t.ok()) << t.status();
  for (uint64_t i = 0; i < kCapacity; ++i) {
    ASSERT_TRUE(t->Add(absl::StrCat("f", i), {{"n", 1}}).ok()) << i;
  }
  ASSERT_THAT(t->Add("one-too-many", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  constexpr int kStuck = 12;
  Shared stop = MakeShared(2);  // [0]: stop, [1]: rows the refuser got
  const pid_t refuser = ForkChild([&] {
    for (uint64_t j = 0; std::atomic_ref<int64_t>(stop.slots()[0]).load() == 0;
         ++j) {
      const std::string key = absl::StrCat("r", j);
      absl::Status st = t->Add(key, {{"n", 2}});
      if (st.ok()) {
        ++stop.slots()[1];
        if (!t->Del(key).ok()) return kUnexpected;
      } else if (!absl::IsResourceExhausted(st)) {
        return kUnexpected;
      }
    }
    return kOk;
  });
  const double seconds = Seconds(2);
  std::vector<pid_t> movers;
  for (int m = 0; m < kMovers; ++m) {
    movers.push_back(ForkChild([&, m] {
      std::vector<std::string> mine;
      for (uint64_t i = m; i < kCapacity; i += kMovers) {
        mine.push_back(absl::StrCat("f", i));
      }
      std::mt19937_64 rng(m);
      const absl::Time until = absl::Now() + absl::Seconds(seconds);
      for (uint64_t j = 0; absl::Now() < until; ++j) {
        std::string& key = mine[rng() % mine.size()];
        if (!t->Del(key).ok()) return kUnexpected;
        key = absl::StrCat("m", m, "-", j);
        // Refused only while the refuser holds the freed row, for a moment;
        // a row hidden from every insert would never come back.
        const absl::Time give_up = absl::Now() + absl::Seconds(20);
        for (;;) {
          absl::Status st = t->Add(key, {{"n", 3}});
          if (st.ok()) break;
          if (!absl::IsResourceExhausted(st)) return kUnexpected;
          if (absl::Now() > give_up) return kStuck;
        }
      }
      return kOk;
    }));
  }
  for (pid_t p : movers) EXPECT_TRUE(ExitedWith(p, kOk, absl::Seconds(90)));
  std::atomic_ref<int64_t>(stop.slots()[0]).store(1);
  EXPECT_TRUE(ExitedWith(refuser, kOk, absl::Seconds(60)));
  // Full again, exactly.
  EXPECT_EQ(t->Count(), kCapacity);
  EXPECT_THAT(t->Add("one-too-many", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(t->CheckConsistency().ok());
  std::printf("moves for %.1f s; the refuser got a row %lld times\n", seconds,
              static_cast<long long>(stop.slots()[1]));
}

// The narrow case of the above, forced: an insert has scanned the full table
// and found nothing, and stops just before it records that the table is full;
// another process frees a row then; the insert goes on. It must take that
// row (it looks again after recording), not refuse and leave the table
// marked full over a free row.
TEST(TableFork, AnInsertThatFoundTheTableFullLooksAgainAfterSayingSo) {
  constexpr uint64_t kCapacity = 256;
  absl::StatusOr<Table> t = Table::Create(WSchema(), {.capacity = kCapacity});
  ASSERT_TRUE(t.ok()) << t.status();
  for (uint64_t i = 0; i < kCapacity; ++i) {
    ASSERT_TRUE(t->Add(absl::StrCat("f", i), {{"n", 1}}).ok()) << i;
  }
  // The stopped insert holds its bucket's lock: free a row of another one.
  const uint32_t buckets = static_cast<uint32_t>(t->Stats().buckets);
  auto bucket = [&](absl::string_view k) {
    return internal::BucketOf(internal::StableHash(k), buckets);
  };
  std::string victim;
  for (uint64_t i = 0; victim.empty(); ++i) {
    const std::string k = absl::StrCat("f", i);
    if (bucket(k) != bucket("probe")) victim = k;
  }
  const pid_t inserter = ForkChild([&] {
    internal::ArmCrashPoint(internal::CrashPoint::kFullBeforeFlag, 0,
                            internal::CrashAction::kStop);
    absl::Status st = t->Add("probe", {{"n", 2}});
    return st.ok() ? kOk : absl::IsResourceExhausted(st) ? kTorn : kUnexpected;
  });
  // No ASSERT until the child is reaped: a stopped child must not outlive
  // the test.
  int status = 0;
  EXPECT_EQ(waitpid(inserter, &status, WUNTRACED), inserter);
  EXPECT_TRUE(WIFSTOPPED(status));
  EXPECT_TRUE(t->Del(victim).ok());
  EXPECT_EQ(kill(inserter, SIGCONT), 0);
  EXPECT_TRUE(ExitedWith(inserter, kOk));  // kTorn: refused over a free row
  EXPECT_TRUE(*t->Exists("probe"));
  EXPECT_EQ(t->Count(), kCapacity);
  EXPECT_THAT(t->Add("one-too-many", {{"n", 1}}),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Marked full now; a delete clears the mark.
  ASSERT_TRUE(t->Del("probe").ok());
  EXPECT_TRUE(t->Add("one-too-many", {{"n", 1}}).ok());
  EXPECT_TRUE(t->CheckConsistency().ok());
}

}  // namespace
}  // namespace shmkit
