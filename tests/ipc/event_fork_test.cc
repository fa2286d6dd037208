// Event between processes: no lost wake-up over 1,000 ping-pong rounds of
// each kind, kOne wakes exactly one waiter, kAll wakes all, a waiter killed
// while asleep leaves the event usable, a keyed event works across attach.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/event.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::UniqueKey;
using ::shmkit::testing::WaitChild;

constexpr int kRounds = 1000;

// Each side waits for the other's notification before sending its own, so
// every round crosses the "check, then sleep" window in both directions. A
// lost wake-up shows as a 5 s timeout.
void PingPong(NotifyMode mode) {
  absl::StatusOr<Event> ping = Event::Create();
  absl::StatusOr<Event> pong = Event::Create();
  ASSERT_TRUE(ping.ok() && pong.ok());
  const pid_t child = ForkChild([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::StatusOr<NotifyMode> got = ping->WaitFor(absl::Seconds(5));
      if (!got.ok()) return 1;
      if (*got != mode) return 2;
      if (!pong->Notify(mode).ok()) return 3;
    }
    return 0;
  });
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(ping->Notify(mode).ok());
    absl::StatusOr<NotifyMode> got = pong->WaitFor(absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << "round " << i << ": " << got.status();
    ASSERT_EQ(*got, mode);
  }
  const absl::Duration took = absl::Now() - t0;
  EXPECT_TRUE(ExitedWith(child, 0));
  std::cout << kRounds << " rounds ("
            << (mode == NotifyMode::kOne ? "kOne" : "kAll") << ") in "
            << absl::FormatDuration(took) << "\n";
}

TEST(EventFork, ThousandNotifyOneRoundsLoseNoWakeUp) {
  PingPong(NotifyMode::kOne);
}

TEST(EventFork, ThousandBroadcastRoundsLoseNoWakeUp) {
  PingPong(NotifyMode::kAll);
}

// Forks `n` children that each wait up to `timeout` once on `ev`, after
// signalling `ready`; a child exits 0 when woken, 1 on timeout.
std::vector<pid_t> ForkWaiters(Event& ev, SyncPipe& ready, int n,
                               absl::Duration timeout) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    pids.push_back(ForkChild([&] {
      ready.Signal();
      return ev.WaitFor(timeout).ok() ? 0 : 1;
    }));
  }
  return pids;
}

TEST(EventFork, NotifyOneWakesExactlyOneOfThreeSleepers) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  SyncPipe ready;
  // Two of the three must time out, so the timeout is the test's length;
  // 3 s leaves the parent room to see them asleep and notify on a busy
  // machine (700 ms could pass before the notify, and then none wakes).
  const std::vector<pid_t> pids =
      ForkWaiters(*ev, ready, 3, absl::Seconds(3));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ready.Wait().has_value());
  for (pid_t pid : pids) ASSERT_TRUE(testing::WaitUntilAsleep(pid));
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  int woken = 0, timed_out = 0;
  for (pid_t pid : pids) {
    std::optional<testing::ChildExit> e = WaitChild(pid);
    ASSERT_TRUE(e.has_value() && e->exited);
    woken += e->code == 0;
    timed_out += e->code == 1;
  }
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(timed_out, 2);
  EXPECT_EQ(ev->Stats().pending_permits, 0u);
}

TEST(EventFork, BroadcastWakesEverySleeper) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  SyncPipe ready;
  const std::vector<pid_t> pids = ForkWaiters(*ev, ready, 3, absl::Seconds(10));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ready.Wait().has_value());
  for (pid_t pid : pids) ASSERT_TRUE(testing::WaitUntilAsleep(pid));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(ev->Notify(NotifyMode::kAll).ok());
  for (pid_t pid : pids) EXPECT_TRUE(ExitedWith(pid, 0));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
}

TEST(EventFork, ANotificationSentBeforeTheWaitIsNotLost) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  SyncPipe notified;
  const pid_t child = ForkChild([&] {
    if (!notified.Wait().has_value()) return 2;
    // Both arrived while this process was not waiting.
    absl::StatusOr<NotifyMode> first = ev->WaitFor(absl::Milliseconds(10));
    absl::StatusOr<NotifyMode> second = ev->WaitFor(absl::Milliseconds(10));
    if (!first.ok() || *first != NotifyMode::kAll) return 3;
    if (!second.ok() || *second != NotifyMode::kOne) return 4;
    return 0;
  });
  ASSERT_TRUE(ev->Notify(NotifyMode::kAll).ok());
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  notified.Signal();
  EXPECT_TRUE(ExitedWith(child, 0));
}

TEST(EventFork, AWaiterKilledAsleepLeavesTheEventUsable) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  SyncPipe ready;
  const pid_t doomed = ForkChild([&] {
    ready.Signal();
    (void)ev->Wait();
    return 5;
  });
  ASSERT_TRUE(ready.Wait().has_value());
  ASSERT_TRUE(testing::WaitUntilAsleep(doomed));
  ASSERT_EQ(kill(doomed, SIGKILL), 0);
  ASSERT_TRUE(WaitChild(doomed).has_value());
  // The permit was not eaten by the dead waiter: the next one gets it.
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  const pid_t next =
      ForkChild([&] { return ev->WaitFor(absl::Seconds(5)).ok() ? 0 : 1; });
  EXPECT_TRUE(ExitedWith(next, 0));
}

TEST(EventFork, UnrelatedProcessAttachesAKeyedEventByKey) {
  const IpcKey key = UniqueKey();
  SyncPipe attached;
  // The child attaches by key on its own (it does not use an inherited
  // handle), as an unrelated process would.
  const pid_t child = ForkChild([&] {
    absl::StatusOr<Event> mine = Event::Attach(key);
    for (int tries = 0; !mine.ok() && tries < 500; ++tries) {
      usleep(1000);
      mine = Event::Attach(key);
    }
    if (!mine.ok()) return 1;
    attached.Signal();
    return mine->WaitFor(absl::Seconds(5)).ok() ? 0 : 2;
  });
  absl::StatusOr<Event> ev = Event::Create({.key = key});
  ASSERT_TRUE(ev.ok()) << ev.status();
  ASSERT_TRUE(attached.Wait().has_value());
  ASSERT_TRUE(ev->Notify(NotifyMode::kAll).ok());
  EXPECT_TRUE(ExitedWith(child, 0));
  EXPECT_TRUE(ev->Remove().ok());
}

}  // namespace
}  // namespace shmkit
