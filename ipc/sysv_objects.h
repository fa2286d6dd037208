// The System V objects on this machine, as a monitoring agent or an operator
// tool sees them: every segment, message queue and semaphore set that
// /proc/sysvipc lists, and a look inside a segment that does not trust it.
//
//   absl::StatusOr<std::vector<shmkit::SysvEntry>> all =
//       shmkit::ListSysv(shmkit::IpcSpace::kShm);
//   for (const shmkit::SysvEntry& e : *all) {
//     absl::StatusOr<shmkit::SegmentView> view = shmkit::ViewSegment(e);
//     if (view.ok() && view->info && !view->creator_alive) { ... }
//   }
//
// Everything here reads; nothing is created, changed or removed. Listing
// needs /proc mounted. Viewing attaches the segment read-only for the length
// of the call (any permission bits are accepted; the kernel still refuses a
// segment we may not read) and detaches before returning.
// Thread-safety: every call is safe from any thread.
#ifndef SHMKIT_IPC_SYSV_OBJECTS_H_
#define SHMKIT_IPC_SYSV_OBJECTS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/object.h"

namespace shmkit {

// The three System V id spaces (a number is an id in one of them).
enum class IpcSpace { kShm, kMsg, kSem };
absl::string_view IpcSpaceName(IpcSpace space);  // "shm", "msg", "sem"

// One line of /proc/sysvipc/{shm,msg,sem}. Fields a space does not have
// stay 0.
struct SysvEntry {
  IpcSpace space = IpcSpace::kShm;
  IpcKey key;
  int id = -1;
  mode_t mode = 0;                  // permission bits
  bool marked_for_removal = false;  // shm: IPC_RMID done (SHM_DEST)
  uint64_t bytes = 0;               // shm: size; msg: bytes queued
  uint64_t messages = 0;            // msg: messages queued
  uint64_t nsems = 0;               // sem: semaphores in the set
  uint64_t attached = 0;            // shm: nattch
  pid_t creator_pid = 0;            // shm: cpid
  pid_t last_pid = 0;               // shm: lpid; msg: last sender
  uid_t uid = 0;
  uid_t cuid = 0;
};

// Every object of `space`. Unavailable when the /proc/sysvipc file cannot be
// read, DataLoss when a line of it cannot be parsed (each naming the file).
absl::StatusOr<std::vector<SysvEntry>> ListSysv(IpcSpace space);
// The entry of `id` in `space`; NotFound when no object has that id.
absl::StatusOr<SysvEntry> FindSysvEntry(IpcSpace space, int id);
// The id of the object with `key` in `space` (shmget/msgget/semget without
// IPC_CREAT); NotFound when none has it.
absl::StatusOr<int> SysvIdOfKey(IpcSpace space, IpcKey key);

// A segment looked at without trusting it: its /proc entry and, when it
// carries a shmkit header of this build's format, the header.
struct SegmentView {
  SysvEntry entry;
  std::optional<ObjectInfo> info;  // nullopt: not a shmkit object
  std::string why_not;             // when info is nullopt: why
  // Whether the creator still runs. shmkit objects: the pid and start time
  // in the header (a reused pid is dead); other segments: the kernel's cpid
  // alone.
  bool creator_alive = false;
};

// Looks at segment `shmid`. NotFound when it is gone; a segment that cannot
// be attached (permissions) or is not shmkit's is a view with `why_not`.
absl::StatusOr<SegmentView> ViewSegment(int shmid);
// The same for a segment already listed.
absl::StatusOr<SegmentView> ViewSegment(const SysvEntry& entry);

}  // namespace shmkit

#endif  // SHMKIT_IPC_SYSV_OBJECTS_H_
