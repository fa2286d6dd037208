// shmkit rm and recover: removing an object, repairing a table whose
// writer died.
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

ABSL_FLAG(bool, force, false,
          "Remove the object even if it is not a shmkit object.");

namespace shmkit::cli {

absl::Status RunRm(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(ObjectRef ref, ParseObjectRef(inv.args[0]));
  SHMKIT_ASSIGN_OR_RETURN(int id, ResolveId(ref));
  const bool force = absl::GetFlag(FLAGS_force);
  std::string kind;
  std::string detail;
  switch (ref.space) {
    case IpcSpace::kShm: {
      SHMKIT_ASSIGN_OR_RETURN(SegmentView view, ViewSegment(id));
      kind = KindOf(view);
      if (!view.info.has_value() && !force) {
        return absl::FailedPreconditionError(
            absl::StrCat("segment ", id, " is not a shmkit object (",
                         view.why_not, "); use --force to remove it anyway"));
      }
      if (view.info.has_value() && view.info->kind == ObjectKind::kSemCounter) {
        // A SemCounter is a segment plus a semaphore set: remove both.
        ObjectAttachOptions attach;
        attach.expected_mode = std::nullopt;
        SHMKIT_ASSIGN_OR_RETURN(SemCounter counter,
                                SemCounter::AttachId(id, attach));
        detail =
            absl::StrCat(" and its semaphore set ", counter.semaphores().id());
        SHMKIT_RETURN_IF_ERROR(counter.Remove());
      } else {
        SHMKIT_RETURN_IF_ERROR(Segment::RemoveId(id));
      }
      if (view.entry.attached > 0) {
        absl::StrAppend(&detail, "; freed when its ", view.entry.attached,
                        " attachment(s) detach");
      }
      break;
    }
    case IpcSpace::kMsg:
      kind = "sysv-queue";
      if (msgctl(id, IPC_RMID, nullptr) != 0) {
        return internal::ErrnoStatus(
            errno, absl::StrCat("msgctl(", id, ", IPC_RMID)"));
      }
      break;
    case IpcSpace::kSem: {
      kind = "semaphore-set";
      SHMKIT_ASSIGN_OR_RETURN(std::vector<Listed> objects, ListObjects(true));
      bool ours = false;
      for (const Listed& l : objects) {
        if (l.entry.space == IpcSpace::kSem && l.entry.id == id) {
          ours = l.shmkit;
        }
      }
      if (ours && !force) {
        return absl::FailedPreconditionError(absl::StrCat(
            "semaphore set ", id,
            " belongs to a sem-counter: remove the counter's segment instead "
            "(or use --force)"));
      }
      if (!ours && !force) {
        return absl::FailedPreconditionError(
            absl::StrCat("semaphore set ", id,
                         " is not used by a shmkit counter; use --force to "
                         "remove it anyway"));
      }
      SHMKIT_RETURN_IF_ERROR(SemaphoreSet::RemoveId(id));
      break;
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    JsonWriter json;
    json.BeginObject();
    json.Key("removed").String(kind);
    json.Key("space").String(IpcSpaceName(ref.space));
    json.Key("id").Int(id);
    json.EndObject();
    Print(json.str());
    Print("\n");
  } else {
    Print(absl::StrCat("removed ", kind, " ", IpcSpaceName(ref.space), ":", id,
                       detail, "\n"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// recover

absl::Status RunRecover(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(ObjectRef ref, ParseObjectRef(inv.args[0]));
  SHMKIT_ASSIGN_OR_RETURN(int id, ResolveId(ref));
  if (ref.space != IpcSpace::kShm) {
    return absl::FailedPreconditionError(
        "recover repairs tables; message queues and semaphore sets have "
        "nothing to repair");
  }
  SHMKIT_ASSIGN_OR_RETURN(SegmentView view, ViewSegment(id));
  if (!view.info.has_value() || view.info->kind != ObjectKind::kTable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "recover repairs tables; segment ", id, " is a ", KindOf(view),
        view.info.has_value() ? " (its locks are taken over by their next user)"
                              : ""));
  }
  TableAttachOptions options;
  options.expected_mode = std::nullopt;
  SHMKIT_ASSIGN_OR_RETURN(Table table, Table::AttachId(id, options));
  const TableInspection before = table.Inspect();
  std::vector<pid_t> dead;
  for (const TableInspection::HeldLock& h : before.held_locks) {
    if (!h.owner_alive) dead.push_back(h.pid);
  }
  SHMKIT_ASSIGN_OR_RETURN(uint64_t recovered, table.Recover());
  const TableInspection after = table.Inspect();
  if (absl::GetFlag(FLAGS_json)) {
    JsonWriter json;
    json.BeginObject();
    json.Key("id").Int(id);
    json.Key("recoveries").Uint(recovered);
    json.Key("dead_lock_owner_pids").BeginArray();
    for (pid_t p : dead) json.Int(p);
    json.EndArray();
    json.Key("dead_writers_awaiting_recovery").Uint(after.dead_pinned_slots);
    json.EndObject();
    Print(json.str());
    Print("\n");
  } else {
    Print(absl::StrCat("recovered ", recovered, " bucket(s)",
                       dead.empty() ? ""
                                    : absl::StrCat(" held by dead pid(s) ",
                                                   absl::StrJoin(dead, ", ")),
                       "; ", after.dead_pinned_slots,
                       " dead writer(s) still awaiting recovery\n"));
  }
  return absl::OkStatus();
}

}  // namespace shmkit::cli
