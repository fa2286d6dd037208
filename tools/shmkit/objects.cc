// The tool's object model (objects.h): opening a table named on the command
// line, naming an object's kind, writing its identity as JSON.
#include "tools/shmkit/objects.h"

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
#include "tools/shmkit/common_flags.h"
#include "tools/shmkit/sysv_objects.h"
#include "tools/shmkit/text.h"

namespace shmkit::cli {

std::string KindOf(const SegmentView& view) {
  if (!view.info.has_value()) return "segment";
  return std::string(ObjectKindName(view.info->kind));
}

absl::StatusOr<RedisTableRef> ParseRedisTableRef(absl::string_view object) {
  const size_t hash = object.rfind('#');
  if (!absl::StartsWith(object, "redis://") ||
      hash == absl::string_view::npos || hash + 1 == object.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", object, "\": a Redis table is redis://host:port/db#NAME"));
  }
  return RedisTableRef{std::string(object.substr(0, hash)),
                       std::string(object.substr(hash + 1))};
}

absl::StatusOr<Table> OpenTable(absl::string_view object, bool read_only) {
  if (absl::StartsWith(object, "redis://")) {
    // Redis tables have no read-only attach: the tool only reads for
    // get and dump.
    SHMKIT_ASSIGN_OR_RETURN(RedisTableRef ref, ParseRedisTableRef(object));
    return AttachRedisTable(ref.url, ref.name);
  }
  SHMKIT_ASSIGN_OR_RETURN(ObjectRef ref, ParseObjectRef(object));
  if (ref.space != IpcSpace::kShm) {
    return absl::InvalidArgumentError(
        absl::StrCat("object \"", object, "\" is not a segment; tables are"));
  }
  SHMKIT_ASSIGN_OR_RETURN(int id, ResolveId(ref));
  TableAttachOptions options;
  options.read_only = read_only;
  options.expected_mode = std::nullopt;
  absl::StatusOr<Table> table = Table::AttachId(id, options);
  if (!table.ok() &&
      (table.status().code() == absl::StatusCode::kNotFound ||
       table.status().code() == absl::StatusCode::kInvalidArgument)) {
    // The segment went away between the lookup and the attach.
    return absl::NotFoundError(absl::StrCat("object ", object, " is gone (",
                                            table.status().message(), ")"));
  }
  return table;
}

void WriteEntryJson(const SysvEntry& e, JsonWriter& json) {
  json.Key("space").String(IpcSpaceName(e.space));
  json.Key("key").String(e.key.ToString());
  json.Key("id").Int(e.id);
  json.Key("owner").String(UserName(e.uid));
  json.Key("uid").Uint(e.uid);
  json.Key("mode").String(ModeString(e.mode));
  switch (e.space) {
    case IpcSpace::kShm:
      json.Key("bytes").Uint(e.bytes);
      json.Key("attached").Uint(e.attached);
      json.Key("marked_for_removal").Bool(e.marked_for_removal);
      break;
    case IpcSpace::kMsg:
      json.Key("queued_bytes").Uint(e.bytes);
      json.Key("queued_messages").Uint(e.messages);
      json.Key("last_sender_pid").Int(e.last_pid);
      break;
    case IpcSpace::kSem:
      json.Key("semaphores").Uint(e.nsems);
      break;
  }
}

namespace {

// Fills the kind-specific fields of a shmkit segment.
void InspectShmkit(const SegmentView& view, Listed& l) {
  ObjectAttachOptions attach;
  attach.read_only = true;
  attach.expected_mode = std::nullopt;
  attach.init_timeout = absl::ZeroDuration();
  const int id = view.entry.id;
  if (!view.info->ready) {
    l.note = "initializing (not published by its creator)";
    return;
  }
  switch (view.info->kind) {
    case ObjectKind::kTable: {
      TableAttachOptions options;
      options.read_only = true;
      options.expected_mode = std::nullopt;
      options.init_timeout = absl::ZeroDuration();
      absl::StatusOr<Table> table = Table::AttachId(id, options);
      if (!table.ok()) {
        l.note = std::string(table.status().message());
        return;
      }
      const TableStats s = table->Stats();
      l.capacity = s.capacity;
      l.live_rows = s.live_rows;
      l.note = absl::StrFormat(
          "%d/%d rows (%.1f%%)", s.live_rows, s.capacity,
          s.capacity == 0 ? 0.0 : 100.0 * s.live_rows / s.capacity);
      return;
    }
    case ObjectKind::kAtomicCounter: {
      absl::StatusOr<AtomicCounter> c = AtomicCounter::AttachId(id, attach);
      if (!c.ok()) {
        l.note = std::string(c.status().message());
        return;
      }
      if (absl::StatusOr<int64_t> v = c->Get(); v.ok()) l.value = *v;
      l.note = l.value ? absl::StrCat("value ", *l.value) : "";
      return;
    }
    case ObjectKind::kSemCounter: {
      absl::StatusOr<SemCounter> c = SemCounter::AttachId(id, attach);
      if (!c.ok()) {
        l.note = std::string(c.status().message());
        return;
      }
      if (absl::StatusOr<int64_t> v = c->Get(); v.ok()) l.value = *v;
      l.semid = c->semaphores().id();
      l.note = absl::StrCat("value ", l.value.value_or(0), ", semaphore set ",
                            *l.semid);
      if (c->dead_holders() > 0) {
        absl::StrAppend(&l.note, ", ", c->dead_holders(),
                        " holder(s) died holding it");
      }
      return;
    }
    case ObjectKind::kRingQueue:
      l.capacity = view.info->capacity;
      l.note = absl::StrCat(view.info->capacity, " slots");
      return;
    case ObjectKind::kLockArena:
      l.capacity = view.info->capacity;
      l.note = absl::StrCat(view.info->capacity, " locks");
      return;
    default:
      return;
  }
}

}  // namespace

absl::StatusOr<std::vector<Listed>> ListObjects(bool all) {
  std::vector<Listed> out;
  absl::flat_hash_map<int, int> sem_users;  // semid -> shmid of its counter
  SHMKIT_ASSIGN_OR_RETURN(std::vector<SysvEntry> shm, ListSysv(IpcSpace::kShm));
  for (const SysvEntry& e : shm) {
    absl::StatusOr<SegmentView> view = ViewSegment(e);
    if (!view.ok()) continue;  // removed meanwhile
    Listed l;
    l.entry = view->entry;
    l.kind = KindOf(*view);
    l.shmkit = view->info.has_value();
    if (!l.shmkit) {
      if (!all) continue;
      l.creator_pid = e.creator_pid;
      l.creator_alive = view->creator_alive;
      l.note = view->why_not;
      out.push_back(std::move(l));
      continue;
    }
    l.creator_pid = view->info->creator_pid;
    l.creator_alive = view->creator_alive;
    l.created = view->info->created;
    InspectShmkit(*view, l);
    if (l.semid.has_value()) sem_users[*l.semid] = e.id;
    out.push_back(std::move(l));
  }
  SHMKIT_ASSIGN_OR_RETURN(std::vector<SysvEntry> msg, ListSysv(IpcSpace::kMsg));
  for (const SysvEntry& e : msg) {
    Listed l;
    l.entry = e;
    l.kind = "sysv-queue";
    l.note = absl::StrCat(e.messages, " messages, ", e.bytes,
                          " bytes queued (queues carry no header: may not be "
                          "shmkit's)");
    out.push_back(std::move(l));
  }
  SHMKIT_ASSIGN_OR_RETURN(std::vector<SysvEntry> sem, ListSysv(IpcSpace::kSem));
  for (const SysvEntry& e : sem) {
    Listed l;
    l.entry = e;
    auto it = sem_users.find(e.id);
    l.shmkit = it != sem_users.end();
    if (!l.shmkit && !all) continue;
    l.kind = "semaphore-set";
    l.note = l.shmkit ? absl::StrCat("of sem-counter segment ", it->second)
                      : absl::StrCat(e.nsems, " semaphores");
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace shmkit::cli
