// The respawn policy as pure logic: no process is forked, times are given.
#include "shmkit/ipc/pool/internal/respawn_rules.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace shmkit::internal {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

WorkerPoolOptions Options(RespawnPolicy policy) {
  WorkerPoolOptions o;
  o.workers = 3;
  o.respawn = policy;
  o.backoff_initial = absl::Milliseconds(100);
  o.backoff_max = absl::Milliseconds(350);
  o.crash_loop_deaths = 4;
  o.crash_loop_window = absl::Seconds(10);
  return o;
}

TEST(RespawnRules, ThePolicyDecidesWhichExitsComeBack) {
  RespawnRules on_failure(Options(RespawnPolicy::kOnFailure));
  EXPECT_EQ(on_failure.AfterExit(0, false, false, false, 0).state,
            WorkerState::kFinished);
  EXPECT_EQ(on_failure.AfterExit(0, true, false, false, 0).state,
            WorkerState::kRespawnPending);

  RespawnRules always(Options(RespawnPolicy::kAlways));
  const RespawnRules::Decision clean =
      always.AfterExit(1, false, false, false, 0);
  EXPECT_EQ(clean.state, WorkerState::kRespawnPending);
  ASSERT_TRUE(clean.respawn_in.has_value());
  EXPECT_EQ(*clean.respawn_in, absl::ZeroDuration());  // no backoff

  RespawnRules never(Options(RespawnPolicy::kNever));
  const RespawnRules::Decision d = never.AfterExit(2, true, false, false, 0);
  EXPECT_EQ(d.state, WorkerState::kFinished);
  EXPECT_FALSE(d.respawn_in.has_value());
}

TEST(RespawnRules, NothingComesBackWhileThePoolStops) {
  RespawnRules rules(Options(RespawnPolicy::kAlways));
  for (int i = 0; i < 10; ++i) {
    const RespawnRules::Decision d = rules.AfterExit(0, true, true, false, i);
    EXPECT_EQ(d.state, WorkerState::kFinished);
    EXPECT_FALSE(d.crash_loop_now);
  }
  EXPECT_EQ(rules.recent_deaths(), 0u);  // exits while stopping do not count
}

TEST(RespawnRules, BackoffDoublesPerWorkerUpToTheCap) {
  RespawnRules rules(Options(RespawnPolicy::kOnFailure));
  // Worker 0 fails three times (below the crash-loop count of 4).
  EXPECT_EQ(*rules.AfterExit(0, true, false, false, 0).respawn_in,
            absl::Milliseconds(100));
  EXPECT_EQ(*rules.AfterExit(0, true, false, false, 1).respawn_in,
            absl::Milliseconds(200));
  EXPECT_EQ(*rules.AfterExit(0, true, false, false, 2).respawn_in,
            absl::Milliseconds(350));  // 400 capped
  // Forget() (ResumeRespawning) starts every backoff afresh.
  rules.Forget();
  EXPECT_EQ(*rules.AfterExit(1, true, false, false, 3).respawn_in,
            absl::Milliseconds(100));
}

TEST(RespawnRules, DeathsOutsideTheWindowAreForgotten) {
  RespawnRules rules(Options(RespawnPolicy::kOnFailure));
  EXPECT_EQ(*rules.AfterExit(0, true, false, false, 0).respawn_in,
            absl::Milliseconds(100));
  // 11 s later the first death is out of the 10 s window.
  EXPECT_EQ(*rules.AfterExit(0, true, false, false, 11 * kSecond).respawn_in,
            absl::Milliseconds(100));
  EXPECT_EQ(rules.recent_deaths(), 1u);
}

TEST(RespawnRules, TheCrashLoopRuleFiresOnceAndHoldsEveryone) {
  RespawnRules rules(Options(RespawnPolicy::kOnFailure));
  for (int i = 0; i < 3; ++i) {
    const RespawnRules::Decision d =
        rules.AfterExit(i % 3, true, false, false, i * kSecond);
    EXPECT_FALSE(d.crash_loop_now);
    EXPECT_EQ(d.state, WorkerState::kRespawnPending);
  }
  const RespawnRules::Decision fourth =
      rules.AfterExit(0, true, false, false, 3 * kSecond);
  EXPECT_TRUE(fourth.crash_loop_now);
  EXPECT_EQ(fourth.state, WorkerState::kHeld);
  EXPECT_FALSE(fourth.respawn_in.has_value());
  EXPECT_EQ(rules.recent_deaths(), 4u);
  // Already in force: a later exit is held, and does not fire it again.
  const RespawnRules::Decision fifth =
      rules.AfterExit(1, true, false, true, 4 * kSecond);
  EXPECT_FALSE(fifth.crash_loop_now);
  EXPECT_EQ(fifth.state, WorkerState::kHeld);
  // After Forget() (ResumeRespawning), counting starts again.
  rules.Forget();
  EXPECT_EQ(rules.recent_deaths(), 0u);
  EXPECT_EQ(rules.AfterExit(2, true, false, false, 5 * kSecond).state,
            WorkerState::kRespawnPending);
}

TEST(RespawnRules, ZeroCrashLoopDeathsDisablesTheRule) {
  WorkerPoolOptions o = Options(RespawnPolicy::kOnFailure);
  o.crash_loop_deaths = 0;
  RespawnRules rules(o);
  for (int i = 0; i < 50; ++i) {
    const RespawnRules::Decision d = rules.AfterExit(0, true, false, false, i);
    EXPECT_FALSE(d.crash_loop_now);
    EXPECT_EQ(d.state, WorkerState::kRespawnPending);
  }
}

}  // namespace
}  // namespace shmkit::internal
