// The System V objects on this machine, as /proc/sysvipc lists them, and the
// OBJECT names the tool accepts (see `shmkit --help`).
#ifndef SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_
#define SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/key.h"

namespace shmkit::cli {

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

// Every object of `space`. An unreadable /proc/sysvipc file is an error
// naming it.
absl::StatusOr<std::vector<SysvEntry>> ListSysv(IpcSpace space);

// An OBJECT argument: a key or an id in one space.
struct ObjectRef {
  IpcSpace space = IpcSpace::kShm;
  std::optional<IpcKey> key;  // set: by key
  int id = -1;                // otherwise: by id
  std::string text;           // as given
};
// Parses "0x5eed", "key:N", "ftok:PATH:PROJ", "884746", "id:884746",
// "msg:...", "sem:..." (the space prefix takes a key or id as above).
// InvalidArgument naming the text otherwise.
absl::StatusOr<ObjectRef> ParseObjectRef(absl::string_view text);

// The id `ref` names now: NotFound when no object has the key or id.
absl::StatusOr<int> ResolveId(const ObjectRef& ref);
// The /proc/sysvipc entry of `id` in `space`; NotFound when gone.
absl::StatusOr<SysvEntry> FindEntry(IpcSpace space, int id);

// "root", or the number when the uid has no name.
std::string UserName(uid_t uid);
// "0600".
std::string ModeString(mode_t mode);
// Whether `pid` exists (kill(pid, 0) succeeds or says EPERM).
bool PidAlive(pid_t pid);

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_
