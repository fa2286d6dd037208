// Ring queue crash tests: processes killed (kill -9, at test hooks) in the
// middle of a send or a receive never block the ring, and a live process
// that is merely slow never loses its slot.
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ring_kill_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::DiedOfSigkill;
using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkConsumerKilledInCallback;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::StatusIs;

// A positive integer from the environment (the stress runs set them), or
// `fallback`.
int FromEnv(const char* name, int fallback) {
  const char* text = getenv(name);
  int value = 0;
  return text != nullptr && absl::SimpleAtoi(text, &value) && value > 0
             ? value
             : fallback;
}

// 100 kills by default; queue.stress.ring_1000_producer_kills runs 1000
// with more processes.
TEST(RingKill, ProducersKilledBetweenReserveAndPublish) {
  ::shmkit::testing::RunProducerKills(FromEnv("SHMKIT_RING_KILLS", 100),
                                      FromEnv("SHMKIT_RING_STEADY", 2),
                                      FromEnv("SHMKIT_RING_CONSUMERS", 2));
}

TEST(RingKill, AKilledConsumerDoesNotStopTheOthers) {
  const int rounds = FromEnv("SHMKIT_RING_CONSUMER_ROUNDS", 1);
  for (int round = 0; round < rounds; ++round) {
    ::shmkit::testing::RunConsumerKill(/*survivors=*/2 + round % 3);
    if (::testing::Test::HasFailure()) break;
  }
}

// Hundreds of consumer kills (at random moments and at every point of the
// two-phase receive) while 2 producers and 2 consumers run: every
// acknowledged message is processed at least once, and sent == released +
// abandoned + queued holds exactly. SHMKIT_RING_STORM_KILLS and
// SHMKIT_RING_STORM_SEED change the run (the seed is printed on failure).
TEST(RingKill, AConsumerKillStormLosesNoAcknowledgedMessage) {
  const int kills = FromEnv("SHMKIT_RING_STORM_KILLS", 300);
  const auto seed =
      static_cast<uint32_t>(FromEnv("SHMKIT_RING_STORM_SEED", 20261202));
  SCOPED_TRACE(absl::StrCat("seed ", seed, ", ", kills, " kills"));
  ::shmkit::testing::RunConsumerKillStorm(kills, seed);
}

void StopAtHook(internal::RingHookPoint point) {
  if (point == internal::RingHookPoint::kBeforePublish) {
    internal::ring_test_hook.store(nullptr);
    raise(SIGSTOP);
  }
}

TEST(RingKill, AStoppedProducerKeepsItsSlot) {
  absl::StatusOr<std::unique_ptr<RingQueue>> q =
      RingQueue::Open({.slots = 4,
                       .slot_bytes = 64,
                       .dead_owner_check = absl::Microseconds(200)});
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t producer = ForkChild([&] {
    internal::ring_test_hook.store(&StopAtHook);
    return (*q)->Send("held").ok() ? 0 : 1;
  });
  int status = 0;
  ASSERT_EQ(waitpid(producer, &status, WUNTRACED), producer);
  ASSERT_TRUE(WIFSTOPPED(status)) << "the producer did not stop at its hook";
  // Its slot is reserved and it is alive (stopped): waiters wait, checking
  // its liveness every 200 us, and never take the slot.
  EXPECT_THAT((*q)->ReceiveFor(1024, absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT((*q)->TryReceive(1024), StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<QueueStats> stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->reclaimed_slots, 0u);
  ASSERT_EQ(kill(producer, SIGCONT), 0);
  absl::StatusOr<Message> m = (*q)->ReceiveFor(1024, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "held");
  EXPECT_TRUE(ExitedWith(producer, 0));
}

// A consumer killed inside ReceiveAndProcess leaves its claim in the ring,
// and the claim names the consumer by registry slot and 8 bits of that
// slot's generation. If the slot were handed to new processes meanwhile, the
// 256th would pass for the dead consumer, and the message would wait for
// that live process to end. Children claim registry slots one after another
// until one gets the dead consumer's slot with a generation equal in those 8
// bits (it stays alive), or finds the registry full (the slot is held for
// the claim); either way the parent must then receive the message.
TEST(RingKill, ADeadConsumersRegistrySlotIsKeptUntilItsClaimIsRedelivered) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      RingQueue::Open({.slots = 4,
                       .slot_bytes = 64,
                       .registry_slots = 2,
                       .dead_owner_check = absl::Microseconds(200)});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  ProcessRegistry& registry = *q.registry();
  ASSERT_TRUE(q.Send("held").ok());  // the parent takes one registry slot
  absl::StatusOr<OwnerToken> parent = registry.Self();
  ASSERT_TRUE(parent.ok()) << parent.status();
  ASSERT_TRUE(DiedOfSigkill(ForkConsumerKilledInCallback(q)));
  const OwnerToken dead = registry.CurrentToken(1 - parent->slot);

  constexpr int kFull = 2, kAlias = 3;
  pid_t alias = -1;
  ::shmkit::testing::SyncPipe release;
  bool full = false;
  for (int i = 0; i < 600 && alias < 0 && !full; ++i) {
    ::shmkit::testing::SyncPipe said;
    const pid_t child = ForkChild([&] {
      absl::StatusOr<OwnerToken> me = registry.Self();
      if (absl::IsResourceExhausted(me.status())) {
        said.Signal('f');
        return kFull;
      }
      if (!me.ok()) return 1;
      if (me->slot == dead.slot &&
          (me->generation & 0xff) == (dead.generation & 0xff)) {
        said.Signal('a');
        return release.Wait().has_value() ? kAlias : 1;
      }
      said.Signal('n');
      return 0;
    });
    const std::optional<char> what = said.Wait();
    if (what == 'a') {
      alias = child;
    } else {
      EXPECT_TRUE(ExitedWith(child, what == 'f' ? kFull : 0));
      full = what == 'f';
    }
  }
  EXPECT_TRUE(full) << "the dead consumer's registry slot was handed on";
  // The message comes back, whoever holds a slot now.
  absl::StatusOr<Message> m = q.ReceiveFor(1024, absl::Seconds(10));
  if (alias > 0) {
    release.Signal();
    EXPECT_TRUE(ExitedWith(alias, kAlias));
  }
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "held");
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->redelivered_messages, 1u);
  // Redelivered: the dead consumer's registry slot is free for others again.
  const pid_t after =
      ForkChild([&] { return registry.Self().ok() ? 0 : 1; });
  EXPECT_TRUE(ExitedWith(after, 0));
}

// A message whose processing kills every consumer that takes it: with
// max_deliveries = 3 it reaches three consumers, then the next claim drops
// it (counted), and the message behind it is not held up.
TEST(RingKill, APoisonMessageReachesAtMostMaxDeliveriesConsumers) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      RingQueue::Open({.slots = 4,
                       .slot_bytes = 64,
                       .dead_owner_check = absl::Microseconds(200),
                       .max_deliveries = 3});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  ASSERT_TRUE(q.Send("poison").ok());
  ASSERT_TRUE(q.Send("fine").ok());
  // Each consumer takes one message; "poison" kills it, "fine" exits 7.
  // When the ring has nothing for it (the poison dropped), it exits 8 once
  // `wait` has passed (the drop itself happens at its first look).
  auto consume = [&](absl::Duration wait = absl::Seconds(30)) {
    return ForkChild([&q, wait] {
      Message m;
      absl::Status st = q.ReceiveAndProcess(
          m, 64, WaitMode::For(wait), [](const Message& got) {
            if (got.data == "poison") raise(SIGKILL);
            return absl::OkStatus();
          });
      if (absl::IsDeadlineExceeded(st)) return 8;
      return st.ok() && m.data == "fine" ? 7 : 1;
    });
  };
  EXPECT_TRUE(DiedOfSigkill(consume()));  // first delivery
  EXPECT_TRUE(ExitedWith(consume(), 7));  // "fine" is not held up
  EXPECT_TRUE(DiedOfSigkill(consume()));  // second (taken over)
  EXPECT_TRUE(DiedOfSigkill(consume()));  // third
  EXPECT_TRUE(ExitedWith(consume(absl::Seconds(3)), 8));  // dropped
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->redelivered_messages, 2u);
  EXPECT_EQ(stats->poisoned_messages, 1u);
  EXPECT_EQ(*stats->messages, 0u);
  // The ring goes on.
  ASSERT_TRUE(q.Send("after").ok());
  absl::StatusOr<Message> m = q.ReceiveFor(64, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "after");
}

// Without max_deliveries (the default), a message is never dropped however
// many consumers die on it.
TEST(RingKill, WithoutMaxDeliveriesAPoisonMessageIsKeptForEver) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      ::shmkit::testing::OpenKillRing(4);
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  ASSERT_TRUE(q.Send("poison").ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(DiedOfSigkill(ForkConsumerKilledInCallback(q))) << i;
  }
  absl::StatusOr<Message> m = q.ReceiveFor(64, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "poison");
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->redelivered_messages, 5u);
  EXPECT_EQ(stats->poisoned_messages, 0u);
}

}  // namespace
}  // namespace shmkit
