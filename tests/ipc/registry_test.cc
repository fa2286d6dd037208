#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;

struct Region {
  Segment segment;
  ProcessRegistry registry;
};

Region MakeRegistry(uint32_t slots, uint32_t extra = 0) {
  const size_t bytes = *ProcessRegistry::BytesFor(slots, extra);
  Segment segment = *Segment::Create({.bytes = bytes});
  ProcessRegistry registry =
      *ProcessRegistry::Format(segment.bytes(), slots, extra);
  return Region{std::move(segment), std::move(registry)};
}

internal::RegistrySlot& RawSlot(Segment& segment, uint32_t i) {
  return reinterpret_cast<internal::RegistrySlot*>(
      static_cast<std::byte*>(segment.data()) +
      sizeof(internal::RegistryHeader))[i];
}

TEST(ProcessRegistry, BytesForRejectsBadSizes) {
  EXPECT_THAT(ProcessRegistry::BytesFor(0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ProcessRegistry::BytesFor(ProcessRegistry::kMaxSlots + 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ProcessRegistry::BytesFor(4, 100), 64u + 4 * 64 + 4 * 128);
}

TEST(ProcessRegistry, SelfIsStablePerThreadAndDistinctAcrossThreads) {
  Region r = MakeRegistry(8);
  absl::StatusOr<OwnerToken> a = r.registry.Self();
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*r.registry.Self(), *a);
  OwnerToken other;
  std::thread t([&] { other = *r.registry.Self(); });
  t.join();
  EXPECT_NE(other.slot, a->slot);
  const SlotInfo info = r.registry.Slot(a->slot);
  EXPECT_EQ(info.status, SlotStatus::kLive);
  EXPECT_EQ(info.pid, getpid());
  EXPECT_EQ(info.generation, a->generation);
  EXPECT_FALSE(r.registry.IsDead(*a));
  // The thread exited: its slot was freed and its token counts as dead.
  EXPECT_EQ(r.registry.Slot(other.slot).status, SlotStatus::kFree);
  EXPECT_TRUE(r.registry.IsDead(other));
  EXPECT_EQ(r.registry.Stats().in_use, 1u);
}

TEST(ProcessRegistry, OpenSeesTheSameSlots) {
  Region r = MakeRegistry(4, 32);
  absl::StatusOr<ProcessRegistry> opened =
      ProcessRegistry::Open(r.segment.bytes());
  ASSERT_TRUE(opened.ok()) << opened.status();
  const OwnerToken me = *r.registry.Self();
  EXPECT_EQ(opened->Slot(me.slot).pid, getpid());
  EXPECT_EQ(opened->Extra(me.slot).size(), 64u);
  // A second handle in the same thread claims its own slot.
  EXPECT_NE(opened->Self()->slot, me.slot);
}

TEST(ProcessRegistry, OpenRejectsGarbage) {
  Segment segment = *Segment::Create({.bytes = 4096});
  EXPECT_THAT(ProcessRegistry::Open(segment.bytes()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  Region r = MakeRegistry(4);
  // Claim more slots than fit.
  reinterpret_cast<internal::RegistryHeader*>(r.segment.data())->slot_count =
      1000;
  EXPECT_THAT(ProcessRegistry::Open(r.segment.bytes()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ProcessRegistry, FullRegistryIsResourceExhausted) {
  Region r = MakeRegistry(1);
  ASSERT_TRUE(r.registry.Self().ok());
  absl::Status other;
  std::thread t([&] { other = r.registry.Self().status(); });
  t.join();
  EXPECT_THAT(other, StatusIs(absl::StatusCode::kResourceExhausted));
  // Releasing ours makes room.
  r.registry.ReleaseSelf();
  std::thread t2([&] { other = r.registry.Self().status(); });
  t2.join();
  EXPECT_TRUE(other.ok()) << other;
}

TEST(ProcessRegistry, ForeignGenerationOrSlotMeansDead) {
  Region r = MakeRegistry(4);
  const OwnerToken me = *r.registry.Self();
  EXPECT_TRUE(r.registry.IsDead({me.slot, me.generation + 1}));
  EXPECT_TRUE(r.registry.IsDead({99, me.generation}));
}

TEST(ProcessRegistry, PidReuseIsDetectedByStartTimeAndIdentity) {
  Region r = MakeRegistry(4);
  const OwnerToken me = *r.registry.Self();
  ASSERT_FALSE(r.registry.IsDead(me));
  // Simulate a reused pid: the slot says our pid started at another time.
  internal::RegistrySlot& slot = RawSlot(r.segment, me.slot);
  const uint64_t real = internal::Load(slot.start_time);
  internal::Store(slot.start_time, real + 12345);
  EXPECT_TRUE(r.registry.IsDead(me));
  internal::Store(slot.start_time, real);
  EXPECT_FALSE(r.registry.IsDead(me));
  // And by identity (pidfs inode), which tells apart a reuse within one
  // clock tick, where the start times are equal.
  const uint64_t identity = internal::Load(slot.identity);
  if (identity != 0) {
    internal::Store(slot.identity, identity + 1);
    EXPECT_TRUE(r.registry.IsDead(me));
    internal::Store(slot.identity, identity);
    EXPECT_FALSE(r.registry.IsDead(me));
  }
}

// A process whose main thread exited (pthread_exit) shows its leader as a
// zombie while its other threads run: it is alive. Once they exit too it is
// dead, before anyone reaps it.
TEST(ProcessRegistry, AnExitedProcessIsDeadBeforeItIsReapedButNotBefore) {
  Region r = MakeRegistry(4);
  int token_pipe[2];
  ASSERT_EQ(pipe(token_pipe), 0);
  SyncPipe release;
  const pid_t child = ForkChild([&] {
    static int out;
    static SyncPipe* go;
    static ProcessRegistry* registry;
    out = token_pipe[1];
    go = &release;
    registry = &r.registry;
    pthread_t worker;
    if (pthread_create(
            &worker, nullptr,
            [](void*) -> void* {
              // This thread's slot, then wait; exits the process when told.
              absl::StatusOr<OwnerToken> me = registry->Self();
              if (!me.ok()) _exit(1);
              if (write(out, &*me, sizeof(*me)) != sizeof(*me)) _exit(2);
              _exit(go->Wait().has_value() ? 5 : 3);
            },
            nullptr) != 0) {
      return 4;
    }
    // The main thread leaves, the worker runs on. The raw exit system call
    // ends only this thread, without pthread_exit's unwinding (which the
    // test framework around ForkChild would catch).
    syscall(SYS_exit, 0);
    return 6;  // not reached
  });
  close(token_pipe[1]);
  OwnerToken token;
  const ssize_t got = read(token_pipe[0], &token, sizeof(token));
  close(token_pipe[0]);
  if (got != static_cast<ssize_t>(sizeof(token))) {
    FAIL() << "no token from the child: " << ExitedWith(child, 5).message();
  }
  // Wait for the leader's exit: its state word in /proc (seconds: a loaded
  // machine).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<internal::ProcStat> stat = internal::ReadProcStat(child);
  while (stat.ok() && stat->state != 'Z' && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
    stat = internal::ReadProcStat(child);
  }
  ASSERT_TRUE(stat.ok()) << stat.status();
  ASSERT_EQ(stat->state, 'Z') << "the main thread never exited";
  EXPECT_EQ(stat->threads, 2);
  EXPECT_FALSE(r.registry.IsDead(token));  // its worker thread still runs
  release.Signal();
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, child, &info, WEXITED | WNOWAIT), 0);
  EXPECT_TRUE(r.registry.IsDead(token));  // exited, not reaped
  EXPECT_TRUE(ExitedWith(child, 5));
  EXPECT_TRUE(r.registry.IsDead(token));  // and reaped
}

TEST(ProcessRegistry, DestructorFreesOnlyItsOwnSlots) {
  Region r = MakeRegistry(4);
  const OwnerToken mine = *r.registry.Self();
  OwnerToken theirs;
  {
    ProcessRegistry second = *ProcessRegistry::Open(r.segment.bytes());
    theirs = *second.Self();
    EXPECT_EQ(r.registry.Stats().in_use, 2u);
  }
  EXPECT_EQ(r.registry.Slot(theirs.slot).status, SlotStatus::kFree);
  EXPECT_EQ(r.registry.Slot(mine.slot).status, SlotStatus::kLive);
  EXPECT_EQ(*r.registry.Self(), mine);
}

TEST(ProcessRegistry, PinnedDeadSlotIsNotReused) {
  Region r = MakeRegistry(1);
  // A slot of a process that does not exist, pinned (holds recovery data).
  internal::RegistrySlot& slot = RawSlot(r.segment, 0);
  internal::Store(slot.state,
                  internal::MakeState(7, 0x3ffffff0, SlotStatus::kLive));
  r.registry.Pin(0);
  EXPECT_TRUE(r.registry.IsDead({0, 7}));
  EXPECT_THAT(r.registry.Self(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  r.registry.Unpin(0);
  absl::StatusOr<OwnerToken> me = r.registry.Self();
  ASSERT_TRUE(me.ok()) << me.status();
  EXPECT_EQ(me->slot, 0u);
  EXPECT_EQ(me->generation, 8u);
  EXPECT_EQ(r.registry.Stats().reclaims, 1u);
}

}  // namespace
}  // namespace shmkit
