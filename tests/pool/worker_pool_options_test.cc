// WorkerPool::Start refusals (none of these forks) and the text forms of
// exit statuses and events.
#include <signal.h>

#include "gtest/gtest.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIsWith;

int Never(WorkerContext&) { return 0; }

absl::Status StartWith(const WorkerPoolOptions& options) {
  absl::StatusOr<WorkerPool> pool = WorkerPool::Start(options, Never);
  return pool.status();
}

TEST(WorkerPoolOptions, OutOfRangeValuesAreRefusedByName) {
  const auto bad = [](auto mutate) {
    WorkerPoolOptions o;
    mutate(o);
    return StartWith(o);
  };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(bad([](auto& o) { o.workers = 0; }),
              StatusIsWith(kInvalid, "workers is 0"));
  EXPECT_THAT(bad([](auto& o) { o.workers = WorkerPool::kMaxWorkers + 1; }),
              StatusIsWith(kInvalid, "workers"));
  EXPECT_THAT(bad([](auto& o) { o.backoff_initial = -absl::Seconds(1); }),
              StatusIsWith(kInvalid, "backoff_initial"));
  EXPECT_THAT(bad([](auto& o) { o.backoff_max = absl::InfiniteDuration(); }),
              StatusIsWith(kInvalid, "backoff_max"));
  EXPECT_THAT(bad([](auto& o) {
                o.backoff_initial = absl::Seconds(2);
                o.backoff_max = absl::Seconds(1);
              }),
              StatusIsWith(kInvalid, "less than backoff_initial"));
  EXPECT_THAT(bad([](auto& o) { o.crash_loop_deaths = -1; }),
              StatusIsWith(kInvalid, "crash_loop_deaths"));
  EXPECT_THAT(bad([](auto& o) { o.crash_loop_window = absl::ZeroDuration(); }),
              StatusIsWith(kInvalid, "crash_loop_window"));
  EXPECT_THAT(bad([](auto& o) { o.stop_grace = -absl::Milliseconds(1); }),
              StatusIsWith(kInvalid, "stop_grace"));
  EXPECT_THAT(bad([](auto& o) { o.master_death_signal = NSIG; }),
              StatusIsWith(kInvalid, "master_death_signal"));
  EXPECT_THAT(bad([](auto& o) { o.max_message_bytes = 0; }),
              StatusIsWith(kInvalid, "max_message_bytes"));
  EXPECT_THAT(bad([](auto& o) {
                o.max_message_bytes = WorkerPool::kMaxMessageBytes + 1;
              }),
              StatusIsWith(kInvalid, "max_message_bytes"));
  EXPECT_THAT(bad([](auto& o) { o.max_buffered_bytes = 0; }),
              StatusIsWith(kInvalid, "max_buffered_bytes"));
  EXPECT_THAT(bad([](auto& o) { o.max_pending_events = 0; }),
              StatusIsWith(kInvalid, "max_pending_events"));
  EXPECT_THAT(WorkerPool::Start({}, WorkerFunction()).status(),
              StatusIsWith(kInvalid, "empty function"));
}

// Restores SIGCHLD's disposition at the end of a test.
class SigchldRestorer {
 public:
  SigchldRestorer() { sigaction(SIGCHLD, nullptr, &saved_); }
  ~SigchldRestorer() { sigaction(SIGCHLD, &saved_, nullptr); }

 private:
  struct sigaction saved_;
};

TEST(WorkerPoolOptions, IgnoredSigchldIsRefusedBecauseStatusesWouldBeLost) {
  SigchldRestorer restore;
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGCHLD, &ign, nullptr), 0);
  EXPECT_THAT(StartWith({}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "SIG_IGN"));
  struct sigaction nocldwait {};
  nocldwait.sa_handler = SIG_DFL;
  nocldwait.sa_flags = SA_NOCLDWAIT;
  ASSERT_EQ(sigaction(SIGCHLD, &nocldwait, nullptr), 0);
  EXPECT_THAT(StartWith({}), StatusIsWith(absl::StatusCode::kFailedPrecondition,
                                          "SA_NOCLDWAIT"));
}

TEST(WorkerPoolText, ExitStatusesAndEventsReadWell) {
  ExitStatus killed;
  killed.kind = ExitStatus::Kind::kSignaled;
  killed.signal = SIGKILL;
  EXPECT_EQ(killed.ToString(), "signal 9 (SIGKILL)");
  EXPECT_FALSE(killed.clean());
  ExitStatus code;
  code.kind = ExitStatus::Kind::kExited;
  code.code = 3;
  EXPECT_EQ(code.ToString(), "exit code 3");
  code.code = 0;
  EXPECT_TRUE(code.clean());
  EXPECT_FALSE(ExitStatus().clean());  // unknown is not clean

  PoolEvent e;
  e.kind = PoolEvent::Kind::kExited;
  e.index = 2;
  e.pid = 1234;
  e.incarnation = 5;
  e.exit = killed;
  e.torn_bytes_discarded = 10;
  e.respawn_in = absl::Milliseconds(20);
  EXPECT_EQ(e.ToString(),
            "worker 2 (pid 1234, incarnation 5) exited: signal 9 (SIGKILL); "
            "discarded a partial result of 10 bytes; respawn in 20ms");
}

}  // namespace
}  // namespace shmkit
