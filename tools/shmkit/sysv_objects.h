// The OBJECT names the tool accepts (see `shmkit --help`), over the listing
// in shmkit/ipc/sysv_objects.h, and how the tool prints owners and modes.
#ifndef SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_
#define SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/sysv_objects.h"

namespace shmkit::cli {

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

// "root", or the number when the uid has no name.
std::string UserName(uid_t uid);
// "0600".
std::string ModeString(mode_t mode);

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_SYSV_OBJECTS_H_
