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

using ::shmkit::testing::ExitedWith;
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

}  // namespace
}  // namespace shmkit
