// The orphan reaper: removes an anonymous object once every process that
// could use it is gone, even when they were all killed.
//
// Why: a System V message queue has no attach count (unlike a segment it
// cannot be "marked for removal" while in use), and a FIFO is a file. An
// anonymous queue of either kind would outlive a server whose processes were
// all killed. The reaper is a small detached process started when such an
// object is created. It holds the read end of a pipe whose write end the
// creator keeps (close-on-exec, so only fork children inherit it; a socket
// pair in fact, so that StandDown cannot raise SIGPIPE); when the
// last process holding the write end exits or closes it, the reaper reads
// EOF, removes what it was told to, and exits. A process that removes the
// object itself through shmkit writes one byte into the guard first
// (StandDown): the reaper then exits without touching anything, so it never
// acts on an id that was freed and reused meanwhile.
//
// The reaper is a grandchild (so it is never the creator's zombie), runs in
// its own session with every catchable signal blocked, closes every other
// descriptor (so it never keeps another pipe's end open) and makes only
// async-signal-safe system calls. Before removing anything it checks that
// the object is still the one it was started for (a message queue's key is
// IPC_PRIVATE and its creator uid matches; a segment's key matches; the
// path is still a FIFO). Ids are reused only after the kernel's id sequence
// wraps, and an object removed through shmkit stands its reaper down first.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_ORPHAN_REAPER_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_ORPHAN_REAPER_H_

#include <sys/ipc.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::internal {

struct ReaperTask {
  // A private message queue created by uid `msq_cuid`.
  int msqid = -1;
  uid_t msq_cuid = 0;
  // A segment whose key is `shm_key`.
  int shmid = -1;
  key_t shm_key = IPC_PRIVATE;
  // A FIFO to unlink and then the (empty) directory that held it.
  std::string fifo_path;
  std::string dir_path;
};

// Starts the reaper for `task` and returns the guard descriptor to keep
// open for as long as this process (or a child forked later) may use the
// object.
absl::StatusOr<UniqueFd> StartOrphanReaper(const ReaperTask& task);

// Tells the reaper behind `guard` that the object was removed on purpose, so
// it exits without removing anything. Harmless if the reaper is gone.
void StandDownOrphanReaper(const UniqueFd& guard);

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_ORPHAN_REAPER_H_
