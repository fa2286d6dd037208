// Opening and describing shmkit objects for the subcommands.
#ifndef SHMKIT_TOOLS_SHMKIT_OBJECTS_H_
#define SHMKIT_TOOLS_SHMKIT_OBJECTS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/object.h"
#include "shmkit/redis/redis_table.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/sysv_objects.h"
#include "tools/shmkit/text.h"

namespace shmkit::cli {

// Attaches the table named by OBJECT (a segment key or id), accepting any
// permission bits (the owner must still be us). FailedPrecondition when the
// segment is not a table. OBJECT may also name a Redis table:
// redis://host:port/db#NAME (redis/redis_table.h).
absl::StatusOr<Table> OpenTable(absl::string_view object, bool read_only);

// A Redis table named on the command line: redis://host:port/db#NAME.
struct RedisTableRef {
  std::string url;
  std::string name;
};
absl::StatusOr<RedisTableRef> ParseRedisTableRef(absl::string_view object);

// "table", "atomic-counter"... or "segment" for non-shmkit segments.
std::string KindOf(const SegmentView& view);

// Writes the identity fields every object has (kind, key, id, owner, mode,
// ...) as JSON members of the object being written.
void WriteEntryJson(const SysvEntry& entry, JsonWriter& json);

// One object as ls shows it: its /proc entry, its kind and, for shmkit's
// objects, what their header and contents say.
struct Listed {
  SysvEntry entry;
  std::string kind;
  bool shmkit = false;
  std::optional<pid_t> creator_pid;
  bool creator_alive = false;
  std::optional<absl::Time> created;
  std::optional<uint64_t> capacity;
  std::optional<uint64_t> live_rows;
  std::optional<int64_t> value;
  std::optional<int> semid;
  std::string note;
};

// Every shmkit object on the machine (segments with a shmkit header, System
// V message queues, semaphore sets a SemCounter uses); with `all`, also
// segments and semaphore sets that are not shmkit's.
absl::StatusOr<std::vector<Listed>> ListObjects(bool all);

}  // namespace shmkit::cli

#endif  // SHMKIT_TOOLS_SHMKIT_OBJECTS_H_
