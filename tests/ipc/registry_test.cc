#include <unistd.h>

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;

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
