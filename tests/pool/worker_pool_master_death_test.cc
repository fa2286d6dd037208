// The master of a pool is killed with SIGKILL: every worker must exit within
// 1 s, and no System V object may be left behind.
//
// The test process forks the master and makes itself a child subreaper, so
// the orphaned workers become its children: it can time their exits exactly
// and reap them (no zombie, no stray process after the test).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "pool_test_util.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ForkChild;
using ::shmkit::testing::WaitChild;
using ::shmkit::testing::ZombieChildrenOf;
using ::testing::IsEmpty;

constexpr int kWorkers = 4;
constexpr int kExitOnPipeEof = 7;

bool ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Forks a master that creates an anonymous counter, starts kWorkers workers
// with `death_signal`, and supervises them until killed. Reports the
// counter's segment id, the workers' pids and a ready byte through `fd`.
pid_t ForkMaster(int fd, int death_signal) {
  return ForkChild([fd, death_signal] {
    absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create();
    if (!counter.ok()) return 10;
    const int shmid = counter->segment().id();
    if (write(fd, &shmid, sizeof(shmid)) != sizeof(shmid)) return 11;
    absl::StatusOr<WorkerPool> pool = WorkerPool::Start(
        {.workers = kWorkers, .master_death_signal = death_signal},
        [&](WorkerContext& ctx) {
          const pid_t me = getpid();
          if (write(fd, &me, sizeof(me)) != sizeof(me)) return 1;
          if (!counter->Add(1).ok()) return 2;
          if (death_signal == 0) {
            // No signal: the worker's own loop watches the pipe.
            ctx.WaitMasterGoneFor(absl::InfiniteDuration());
            return kExitOnPipeEof;
          }
          while (true) pause();
        });
    if (!pool.ok()) return 12;
    if (!counter->WaitUntilAtLeast(kWorkers, absl::Seconds(10)).ok()) return 13;
    const char ready = 'r';
    if (write(fd, &ready, 1) != 1) return 14;
    while (true) (void)pool->CollectFor(absl::Seconds(1));
  });
}

struct Exit {
  absl::Duration after_kill;
  int status;
};

// Reaps the given orphans (our children now, as subreaper) as they exit,
// for up to `timeout`; returns when each exited after the kill.
std::map<pid_t, Exit> ReapOrphans(const std::vector<pid_t>& pids,
                                  absl::Time killed_at,
                                  absl::Duration timeout) {
  std::map<pid_t, Exit> exits;
  const absl::Time deadline = killed_at + timeout;
  while (exits.size() < pids.size() && absl::Now() < deadline) {
    bool any = false;
    for (pid_t pid : pids) {
      if (exits.count(pid) != 0) continue;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exits[pid] = Exit{absl::Now() - killed_at, status};
        any = true;
      }
    }
    if (!any) usleep(200);
  }
  // Whatever did not exit in time is killed and reaped, so nothing is left.
  for (pid_t pid : pids) {
    if (exits.count(pid) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  return exits;
}

void KillMasterAndCheckWorkers(int death_signal) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t master = ForkMaster(report[1], death_signal);
  close(report[1]);
  int shmid = -1;
  std::vector<pid_t> workers(kWorkers);
  char ready = 0;
  const bool reported =
      ReadAll(report[0], &shmid, sizeof(shmid)) &&
      ReadAll(report[0], workers.data(), sizeof(pid_t) * workers.size()) &&
      ReadAll(report[0], &ready, 1);
  close(report[0]);
  if (!reported) {
    kill(master, SIGKILL);
    std::optional<testing::ChildExit> e = WaitChild(master);
    FAIL() << "master did not report; exit code "
           << (e.has_value() ? e->code : -1);
  }
  ASSERT_TRUE(Segment::StatId(shmid).ok());  // alive while they run

  ASSERT_EQ(kill(master, SIGKILL), 0);
  const absl::Time killed_at = absl::Now();
  std::optional<testing::ChildExit> master_exit = WaitChild(master);
  ASSERT_TRUE(master_exit.has_value());
  EXPECT_EQ(master_exit->signal, SIGKILL);

  const std::map<pid_t, Exit> exits =
      ReapOrphans(workers, killed_at, absl::Seconds(5));
  ASSERT_EQ(exits.size(), workers.size()) << "some workers outlived 5 s";
  absl::Duration slowest = absl::ZeroDuration();
  for (const auto& [pid, exit] : exits) {
    slowest = std::max(slowest, exit.after_kill);
    EXPECT_LT(exit.after_kill, absl::Seconds(1)) << "worker " << pid;
    if (death_signal != 0) {
      EXPECT_TRUE(WIFSIGNALED(exit.status) &&
                  WTERMSIG(exit.status) == death_signal)
          << "worker " << pid << " status " << exit.status;
    } else {
      EXPECT_TRUE(WIFEXITED(exit.status) &&
                  WEXITSTATUS(exit.status) == kExitOnPipeEof)
          << "worker " << pid << " status " << exit.status;
    }
  }
  std::cout << "slowest worker exit after the master's SIGKILL: "
            << absl::FormatDuration(slowest) << "\n";
  // The anonymous counter went away with the last process that had it.
  EXPECT_FALSE(Segment::StatId(shmid).ok()) << "segment " << shmid << " left";
  EXPECT_THAT(ZombieChildrenOf(getpid()), IsEmpty());
}

TEST(MasterDeath, WorkersExitWithin1sByTheDeathSignal) {
  KillMasterAndCheckWorkers(SIGTERM);
}

TEST(MasterDeath, WorkersExitWithin1sByThePipeAlone) {
  KillMasterAndCheckWorkers(0);
}

}  // namespace
}  // namespace shmkit
