#include "shmkit/ipc/pool/internal/master_pipe.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <mutex>

#include "shmkit/ipc/internal/errors.h"

namespace shmkit::internal {
namespace {

struct PipeState {
  std::mutex mu;
  pid_t owner = 0;  // the process the descriptors belong to
  MasterPipe pipe;
};

PipeState& State() {
  static PipeState* state = [] {
    auto* s = new PipeState;  // never destroyed: pools may outlive statics
    // A fork while another thread holds the mutex must not leave it locked
    // in the child (which may start a pool of its own).
    pthread_atfork([] { State().mu.lock(); }, [] { State().mu.unlock(); },
                   [] { State().mu.unlock(); });
    return s;
  }();
  return *state;
}

}  // namespace

absl::StatusOr<MasterPipe> MasterDeathPipe() {
  PipeState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  const pid_t self = getpid();
  if (s.owner != self) {
    // In a forked child the inherited descriptors belong to the parent's
    // pipe: the read end may be this worker's own master_fd() and the write
    // end was closed by the pool (its number may have been reused since), so
    // neither is touched; the child gets a pipe of its own.
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return ErrnoStatus(errno, "pipe2(master-death pipe, O_CLOEXEC)");
    }
    s.pipe = MasterPipe{fds[0], fds[1]};
    s.owner = self;
  }
  return s.pipe;
}

}  // namespace shmkit::internal
