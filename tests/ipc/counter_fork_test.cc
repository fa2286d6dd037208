#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/sem_counter.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::WaitChild;

constexpr int kProcesses = 4;
constexpr int kIncrements = 1'000'000;

template <typename T>
void HammerAndCheck() {
  absl::StatusOr<T> counter = T::Create({});
  ASSERT_TRUE(counter.ok()) << counter.status();
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(ForkChild([&] {
      for (int i = 0; i < kIncrements; ++i) {
        if (!counter->Add(1).ok()) return 1;
      }
      return 0;
    }));
  }
  for (pid_t c : children) EXPECT_TRUE(ExitedWith(c, 0, absl::Minutes(4)));
  EXPECT_EQ(*counter->Get(), int64_t{kProcesses} * kIncrements);
}

TEST(CounterFork, AtomicCounterFourProcessesExactTotal) {
  HammerAndCheck<AtomicCounter>();
}

TEST(CounterFork, SemCounterFourProcessesExactTotal) {
  HammerAndCheck<SemCounter>();
}

TEST(CounterFork, WaitUntilIsWokenFromAnotherProcess) {
  absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create({});
  ASSERT_TRUE(counter.ok());
  SyncPipe waiting;
  const pid_t child = ForkChild([&] {
    waiting.Signal();
    absl::StatusOr<int64_t> v = counter->WaitUntilAtLeast(3, absl::Seconds(20));
    return v.ok() && *v == 3 ? 0 : 1;
  });
  ASSERT_TRUE(waiting.Wait().has_value());
  for (int i = 0; i < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(counter->Add(1).ok());
  }
  EXPECT_TRUE(ExitedWith(child, 0));
}

TEST(CounterFork, SemCounterHolderKilledIsReleasedAndTheNextHolderIsTold) {
  absl::StatusOr<SemCounter> counter = SemCounter::Create({.initial_value = 5});
  ASSERT_TRUE(counter.ok()) << counter.status();
  SyncPipe holding;
  const pid_t child = ForkChild([&] {
    absl::StatusOr<SemCounter::Holder> h = counter->Lock();
    if (!h.ok()) return 1;
    h->set_value(6);
    holding.Signal();
    pause();
    return 0;
  });
  ASSERT_TRUE(holding.Wait().has_value());
  // Held by the child: a bounded attempt fails.
  EXPECT_FALSE(counter->LockFor(absl::Milliseconds(50)).ok());
  kill(child, SIGKILL);
  ASSERT_TRUE(WaitChild(child).has_value());
  // The kernel undid the child's acquire (SEM_UNDO); we are told it died.
  absl::StatusOr<SemCounter::Holder> h = counter->LockFor(absl::Seconds(5));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->previous_holder_died());
  EXPECT_EQ(h->dead_holder_pid(), child);
  EXPECT_EQ(h->value(), 6);  // its complete store survives
  EXPECT_EQ(counter->dead_holders(), 1u);
  EXPECT_EQ(counter->last_dead_holder(), child);
}

TEST(CounterFork, AtomicCounterSurvivesAKilledAdder) {
  absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create({});
  ASSERT_TRUE(counter.ok());
  SyncPipe started;
  const pid_t child = ForkChild([&] {
    started.Signal();
    while (true) (void)counter->Add(1);
    return 0;
  });
  ASSERT_TRUE(started.Wait().has_value());
  // Killed while adding: wait until it has added a good many times.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (*counter->Get() < 100'000 && absl::Now() < deadline) sched_yield();
  kill(child, SIGKILL);
  ASSERT_TRUE(WaitChild(child).has_value());
  const int64_t before = *counter->Get();
  EXPECT_EQ(*counter->Add(1), before + 1);  // no lock left behind
}

}  // namespace
}  // namespace shmkit
