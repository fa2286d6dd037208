// The master-death pipe: one per master process, shared by all its pools.
//
// The master holds the write end and never writes; every worker holds the
// read end. When the master dies the kernel closes the write end and the
// read end reports EOF (POLLIN/POLLHUP) in every worker. One pipe per process
// rather than per pool, because a worker of one pool inherits the other
// pools' descriptors: with a pipe per pool, workers of two pools would each
// hold the other pool's write end and neither would ever see EOF.
#ifndef SHMKIT_IPC_POOL_INTERNAL_MASTER_PIPE_H_
#define SHMKIT_IPC_POOL_INTERNAL_MASTER_PIPE_H_

#include "absl/status/statusor.h"

namespace shmkit::internal {

struct MasterPipe {
  int read_fd = -1;
  int write_fd = -1;
};

// The calling process's pipe, created (O_CLOEXEC) on first use in this
// process; a forked child that starts a pool of its own gets a new one. The
// descriptors live as long as the process.
absl::StatusOr<MasterPipe> MasterDeathPipe();

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_POOL_INTERNAL_MASTER_PIPE_H_
