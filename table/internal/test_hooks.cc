#include "shmkit/table/internal/test_hooks.h"

#include <signal.h>
#include <unistd.h>

namespace shmkit::internal {

void ArmedPointReached() {
  if (crash_countdown.fetch_sub(1, std::memory_order_relaxed) <= 0) {
    CrashNow();
  }
}

void CrashNow() {
  if (armed_crash_action.load(std::memory_order_relaxed) ==
      static_cast<int>(CrashAction::kStop)) {
    armed_crash_point.store(0, std::memory_order_relaxed);
    kill(getpid(), SIGSTOP);  // returns after SIGCONT
    return;
  }
  kill(getpid(), SIGKILL);
  // SIGKILL cannot be caught; the process is gone before this returns.
  _exit(137);
}

}  // namespace shmkit::internal
