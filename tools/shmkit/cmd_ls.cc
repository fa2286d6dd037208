// shmkit ls: shmkit's objects among the machine's System V objects (see
// cmd_objects.cc for how an object is recognised).
#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/ipc/semaphore.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/cmd_objects.h"
#include "tools/shmkit/common_flags.h"
#include "tools/shmkit/objects.h"
#include "tools/shmkit/sysv_objects.h"
#include "tools/shmkit/text.h"

ABSL_FLAG(bool, all, false,
          "Also list objects that are not shmkit's (segments without a shmkit "
          "header, semaphore sets no shmkit counter uses).");

namespace shmkit::cli {

absl::Status RunLs(const Invocation&) {
  SHMKIT_ASSIGN_OR_RETURN(std::vector<Listed> objects,
                          ListObjects(absl::GetFlag(FLAGS_all)));
  if (absl::GetFlag(FLAGS_json)) {
    JsonWriter json;
    json.BeginObject().Key("objects").BeginArray();
    for (const Listed& l : objects) {
      json.BeginObject();
      json.Key("kind").String(l.kind);
      json.Key("shmkit").Bool(l.shmkit);
      WriteEntryJson(l.entry, json);
      if (l.creator_pid.has_value()) {
        json.Key("creator_pid").Int(*l.creator_pid);
        json.Key("creator_alive").Bool(l.creator_alive);
      }
      if (l.created.has_value()) {
        json.Key("created").String(absl::FormatTime(
            absl::RFC3339_sec, *l.created, absl::UTCTimeZone()));
      }
      if (l.capacity) json.Key("capacity").Uint(*l.capacity);
      if (l.live_rows) json.Key("live_rows").Uint(*l.live_rows);
      if (l.value) json.Key("value").Int(*l.value);
      if (l.semid) json.Key("semaphore_set_id").Int(*l.semid);
      if (!l.note.empty()) json.Key("note").Text(l.note);
      json.EndObject();
    }
    json.EndArray().EndObject();
    Print(json.str());
    Print("\n");
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {{"KIND", "KEY", "ID", "OWNER",
                                                 "MODE", "BYTES", "NATTCH",
                                                 "CREATOR", "DETAIL"}};
  for (const Listed& l : objects) {
    const SysvEntry& e = l.entry;
    std::string creator = "-";
    if (l.creator_pid.has_value()) {
      creator =
          absl::StrCat(*l.creator_pid, l.creator_alive ? " alive" : " dead");
    }
    std::string bytes = "-", nattch = "-";
    if (e.space == IpcSpace::kShm) {
      bytes = HumanBytes(e.bytes);
      nattch = absl::StrCat(e.attached, e.marked_for_removal ? " dest" : "");
    }
    rows.push_back({l.kind, e.key.ToString(),
                    absl::StrCat(IpcSpaceName(e.space), ":", e.id),
                    UserName(e.uid), ModeString(e.mode), bytes, nattch, creator,
                    EscapeBytes(l.note)});
  }
  if (objects.empty()) {
    Print(absl::GetFlag(FLAGS_all)
              ? "no System V objects\n"
              : "no shmkit objects (--all lists others)\n");
    return absl::OkStatus();
  }
  Print(FormatTable(rows, {false, false, false, false, false, true, true}));
  return absl::OkStatus();
}

}  // namespace shmkit::cli
