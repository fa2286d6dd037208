#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/lock_arena.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::WaitChild;

// A child that takes lock 0, says so, and then waits to be killed.
pid_t ForkHolder(LockArena& arena, SyncPipe& holding) {
  return ForkChild([&] {
    absl::StatusOr<OwnerLockGuard> g = arena.Acquire(0, absl::Seconds(5));
    if (!g.ok()) return 1;
    holding.Signal();
    pause();
    return 0;
  });
}

TEST(LockFork, KilledHolderIsTakenOverAtOnceWhenReaped) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok()) << arena.status();
  SyncPipe holding, waiting;
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t holder = ForkHolder(*arena, holding);
  ASSERT_TRUE(holding.Wait().has_value());
  // A waiter in another process, blocked in Lock() when the holder dies.
  const pid_t waiter = ForkChild([&] {
    waiting.Signal();
    absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(30));
    const int64_t got_at = internal::MonotonicNanos();
    if (!g.ok()) return 1;
    if (!g->result().took_over) return 2;
    if (write(report[1], &got_at, sizeof(got_at)) != sizeof(got_at)) return 3;
    return 0;
  });
  ASSERT_TRUE(waiting.Wait().has_value());
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(waiter));
  kill(holder, SIGKILL);
  ASSERT_TRUE(WaitChild(holder).has_value());
  const int64_t reaped_at = internal::MonotonicNanos();
  ASSERT_TRUE(ExitedWith(waiter, 0));
  int64_t got_at = 0;
  ASSERT_EQ(read(report[0], &got_at, sizeof(got_at)),
            static_cast<ssize_t>(sizeof(got_at)));
  close(report[0]);
  close(report[1]);
  // Long before the waiter's 30 s bound (a bound in seconds: a loaded
  // machine delays the waiter's wake-up; the latency is a benchmark's).
  EXPECT_LT(got_at - reaped_at, int64_t{5'000'000'000})
      << "took over " << (got_at - reaped_at) / 1000 << " us after the reap";
}

TEST(LockFork, AHolderThatExitedIsTakenOverBeforeItIsReaped) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  SyncPipe holding;
  const pid_t holder = ForkHolder(*arena, holding);
  ASSERT_TRUE(holding.Wait().has_value());
  kill(holder, SIGKILL);
  // Dead but not reaped: a zombie. It never runs again, so its lock is taken
  // over now (a bound far above the probe's 2 ms slices: a loaded machine).
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, holder, &info, WEXITED | WNOWAIT), 0);
  {
    absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(20));
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_TRUE(g->result().took_over);
  }
  std::optional<::shmkit::testing::ChildExit> e = WaitChild(holder);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->signaled && e->signal == SIGKILL);
}

TEST(LockFork, AnExitedChildHoldsOnlyTheLockItDidNotLetGo) {
  // What a reader that cannot take the lock (a pipe queue's reader, a
  // read-only table) asks of a lock word: the child took locks 0 and 1,
  // let lock 1 go and exited. Both answers hold before it is reaped (an
  // exited process is dead at once) and after.
  absl::StatusOr<LockArena> arena = LockArena::Create({.locks = 2});
  ASSERT_TRUE(arena.ok());
  SyncPipe exiting;
  const pid_t child = ForkChild([&] {
    absl::StatusOr<OwnerToken> me = arena->Self();
    if (!me.ok()) return 1;
    OwnerLock held = *arena->lock(0), let_go = *arena->lock(1);
    if (!held.TryLock(*me) || !let_go.TryLock(*me)) return 2;
    if (!let_go.Unlock(*me).ok()) return 3;
    exiting.Signal();
    return 0;  // exits holding lock 0
  });
  ASSERT_TRUE(exiting.Wait().has_value());
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, child, &info, WEXITED | WNOWAIT), 0);
  const std::optional<OwnerToken> dead = arena->lock(0)->DeadHolder();
  ASSERT_TRUE(dead.has_value());
  EXPECT_EQ(arena->lock(0)->Owner(), dead);
  EXPECT_EQ(arena->lock(1)->DeadHolder(), std::nullopt);
  ASSERT_TRUE(ExitedWith(child, 0));
  EXPECT_EQ(arena->lock(0)->DeadHolder(), dead);
  EXPECT_EQ(arena->lock(1)->DeadHolder(), std::nullopt);
  // A taker is told whose work it was.
  absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(20));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->result().took_over);
  EXPECT_EQ(g->result().dead_owner, *dead);
  EXPECT_EQ(arena->lock(0)->DeadHolder(), std::nullopt);
}

TEST(LockFork, StoppedHolderIsNeverOverridden) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  SyncPipe holding;
  const pid_t holder = ForkChild([&] {
    absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(5));
    if (!g.ok()) return 1;
    holding.Signal();
    absl::SleepFor(absl::Milliseconds(300));  // stopped somewhere in here
    return 0;                                 // the guard releases normally
  });
  ASSERT_TRUE(holding.Wait().has_value());
  ASSERT_EQ(kill(holder, SIGSTOP), 0);
  const absl::Time stopped = absl::Now();
  absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(1));
  EXPECT_THAT(g, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - stopped, absl::Milliseconds(990));
  absl::SleepFor(absl::Seconds(3) - (absl::Now() - stopped));
  ASSERT_EQ(kill(holder, SIGCONT), 0);
  EXPECT_TRUE(ExitedWith(holder, 0));
  absl::StatusOr<OwnerLockGuard> after = arena->Acquire(0, absl::Seconds(5));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->result().took_over);  // released by its live owner
}

TEST(LockFork, ExitedChildsTokenIsDeadAndMarkDeadBumpsTheGeneration) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  SyncPipe go;
  const pid_t child = ForkChild([&] {
    absl::StatusOr<OwnerToken> me = arena->Self();
    if (!me.ok()) return 1;
    if (write(report[1], &*me, sizeof(*me)) != sizeof(*me)) return 2;
    go.Wait();
    return 0;
  });
  OwnerToken token;
  ASSERT_EQ(read(report[0], &token, sizeof(token)),
            static_cast<ssize_t>(sizeof(token)));
  close(report[0]);
  close(report[1]);
  EXPECT_FALSE(arena->registry().IsDead(token));
  // A parent that reaps a child declares its slots dead at once.
  const uint64_t start = *internal::ProcessStartTime(child);
  EXPECT_EQ(arena->registry().MarkDead(child, start + 1), 0);  // not that one
  EXPECT_EQ(arena->registry().MarkDead(child, start), 1);
  EXPECT_TRUE(arena->registry().IsDead(token));
  EXPECT_EQ(arena->registry().Slot(token.slot).status, SlotStatus::kDead);
  go.Signal();
  EXPECT_TRUE(ExitedWith(child, 0));
  EXPECT_EQ(arena->registry().Stats().marked_dead, 1u);
}

TEST(LockFork, MarkDeadInAllOpenFreesTheLocksOfAReapedChildAtOnce) {
  absl::StatusOr<LockArena> a = LockArena::Create({});
  absl::StatusOr<LockArena> b = LockArena::Create({});
  ASSERT_TRUE(a.ok() && b.ok());
  SyncPipe holding;
  const pid_t child = ForkChild([&] {
    absl::StatusOr<OwnerLockGuard> ga = a->Acquire(0, absl::Seconds(5));
    absl::StatusOr<OwnerLockGuard> gb = b->Acquire(0, absl::Seconds(5));
    if (!ga.ok() || !gb.ok()) return 1;
    holding.Signal();
    pause();
    return 0;
  });
  ASSERT_TRUE(holding.Wait().has_value());
  const uint64_t start = *internal::ProcessStartTime(child);
  kill(child, SIGKILL);
  ASSERT_TRUE(WaitChild(child).has_value());
  EXPECT_EQ(ProcessRegistry::MarkDeadInAllOpen(child, start), 2);
  // No liveness probe needed: the generation moved.
  for (LockArena* arena : {&*a, &*b}) {
    const absl::Time t0 = absl::Now();
    absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(5));
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_TRUE(g->result().took_over);
    // At once, not after the 5 s acquire bound; a bound in seconds because
    // 10 ms failed on a loaded machine (10.7 ms at load average 10).
    EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  }
}

// A dead holder's pid given to a new process within the same clock tick:
// pid and start time (in ticks) are the same, only the process identity
// (pidfs inode) tells them apart. Forced through ns_last_pid, which needs
// root; retried because another process on the machine may take the pid, or
// the tick may turn, between the death and the fork.
TEST(LockFork, APidReusedWithinTheSameTickDoesNotKeepTheDeadHoldersLock) {
  const char* kLastPid = "/proc/sys/kernel/ns_last_pid";
  if (geteuid() != 0 || access(kLastPid, W_OK) != 0) {
    GTEST_SKIP() << "needs root to write " << kLastPid;
  }
  if (internal::SelfIdentity() == 0) {
    GTEST_SKIP() << "this kernel has no pidfs: the limit documented in "
                    "process_registry.h applies";
  }
  bool reproduced = false;
  bool pid_reused_later = false;
  for (int attempt = 0; attempt < 200 && !reproduced; ++attempt) {
    absl::StatusOr<LockArena> arena = LockArena::Create({});
    ASSERT_TRUE(arena.ok()) << arena.status();
    const pid_t holder = ForkChild([&] {
      absl::StatusOr<OwnerLockGuard> held = arena->Acquire(0, absl::Seconds(5));
      if (!held.ok()) return 1;
      raise(SIGKILL);  // dies holding lock 0
      return 2;
    });
    // Dead, not yet reaped: its start time and identity are still readable.
    siginfo_t info{};
    ASSERT_EQ(waitid(P_PID, holder, &info, WEXITED | WNOWAIT), 0);
    ASSERT_EQ(info.si_code, CLD_KILLED) << "the holder did not die holding";
    const absl::StatusOr<uint64_t> start = internal::ProcessStartTime(holder);
    const absl::StatusOr<uint64_t> identity =
        internal::ProcessIdentity(holder);
    ASSERT_TRUE(start.ok() && identity.ok());
    ASSERT_TRUE(WaitChild(holder).has_value());
    // The next fork gets the holder's pid, unless someone forks first.
    const int fd = open(kLastPid, O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string last = std::to_string(holder - 1);
    const bool written =
        write(fd, last.data(), last.size()) == static_cast<ssize_t>(last.size());
    close(fd);
    ASSERT_TRUE(written);
    SyncPipe release;
    const pid_t reuser = ForkChild([&] {
      release.Wait(absl::Seconds(60));
      return 0;
    });
    const absl::StatusOr<uint64_t> reuser_start =
        internal::ProcessStartTime(reuser);
    if (reuser == holder && reuser_start.ok() && *reuser_start != *start) {
      // The pid came back, but a tick later. What the same tick would look
      // like to the check is this pid with this start time and the dead
      // holder's identity: the start time alone calls it alive, the
      // identity does not. Keep trying for the real thing.
      pid_reused_later = true;
      EXPECT_TRUE(internal::ProcessAlive(holder, *reuser_start));
      EXPECT_FALSE(internal::ProcessAlive(holder, *reuser_start, *identity));
    }
    if (reuser == holder && reuser_start.ok() && *reuser_start == *start) {
      reproduced = true;
      // The old check is fooled; the identity is not.
      EXPECT_TRUE(internal::ProcessAlive(holder, *start));
      EXPECT_FALSE(internal::ProcessAlive(holder, *start, *identity));
      // A waiter takes the dead holder's lock over (a bound in seconds: it
      // must not wait for its timeout).
      absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(10));
      ASSERT_TRUE(g.ok()) << g.status();
      EXPECT_TRUE(g->result().took_over);
    }
    release.Signal();
    ASSERT_TRUE(ExitedWith(reuser, 0));
  }
  // A slow machine (a sanitizer build, a busy CI host) may never fork the
  // reuser within the holder's tick; then the identity check above, on a
  // really reused pid, is what the test asserts.
  ASSERT_TRUE(reproduced || pid_reused_later)
      << "ns_last_pid never gave the holder's pid back in 200 attempts";
  if (!reproduced) {
    std::printf("same-tick reuse not reproduced on this machine; the "
                "identity check ran on a pid reused a tick later\n");
  }
}

TEST(LockFork, ChildKilledWithoutCleanupLeavesAReclaimableSlot) {
  absl::StatusOr<LockArena> arena = LockArena::Create({.registry_slots = 2});
  ASSERT_TRUE(arena.ok());
  ASSERT_TRUE(arena->Self().ok());  // parent: slot 1 of 2
  SyncPipe claimed;
  const pid_t child = ForkChild([&] {
    if (!arena->Self().ok()) return 1;
    claimed.Signal();
    pause();
    return 0;
  });
  ASSERT_TRUE(claimed.Wait().has_value());
  kill(child, SIGKILL);
  ASSERT_TRUE(WaitChild(child).has_value());
  // Both slots are taken (one by a dead process). A new process reuses the
  // dead one.
  const pid_t second = ForkChild([&] { return arena->Self().ok() ? 0 : 1; });
  EXPECT_TRUE(ExitedWith(second, 0));
  EXPECT_EQ(arena->registry().Stats().reclaims, 1u);
}

}  // namespace
}  // namespace shmkit
