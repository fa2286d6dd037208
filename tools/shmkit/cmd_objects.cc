// shmkit ls, stat, rm, recover: finding shmkit's objects among the
// machine's System V objects and looking inside them.
//
// A segment is shmkit's when it starts with a shmkit header of this build's
// format (ReadObjectInfo); the segment is attached read-only to read it and
// detached at once. Semaphore sets are shmkit's when a SemCounter segment
// names them. System V message queues carry no header (their messages are
// raw, so they interoperate with other programs), so shmkit cannot tell its
// queues from others': ls lists every message queue and says so.
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
#include "tools/shmkit/objects.h"
#include "tools/shmkit/sysv_objects.h"
#include "tools/shmkit/text.h"

ABSL_FLAG(bool, all, false,
          "Also list objects that are not shmkit's (segments without a shmkit "
          "header, semaphore sets no shmkit counter uses).");
ABSL_FLAG(bool, force, false,
          "Remove the object even if it is not a shmkit object.");

namespace shmkit::cli {

// ---------------------------------------------------------------------------
// objects.h

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

// ---------------------------------------------------------------------------
// ls

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

// ---------------------------------------------------------------------------
// stat

absl::Status StatTable(const SegmentView& view, JsonWriter* json) {
  TableAttachOptions options;
  options.read_only = true;
  options.expected_mode = std::nullopt;
  SHMKIT_ASSIGN_OR_RETURN(Table table, Table::AttachId(view.entry.id, options));
  const TableStats s = table.Stats();
  const TableInspection in = table.Inspect();
  const Schema& schema = table.schema();
  // Rows that expired but are not reclaimed yet: Count() includes them,
  // iteration skips them. Exact only while nobody writes.
  std::optional<uint64_t> expired_pending;
  if (schema.ttl()) {
    uint64_t visible = 0;
    absl::Status st = table.ForEach([&visible](const Row&) {
      ++visible;
      return true;
    });
    if (st.ok()) {
      const uint64_t count = table.Count();
      expired_pending = count > visible ? count - visible : 0;
    }
  }
  if (json != nullptr) {
    json->Key("table").BeginObject();
    json->Key("schema").String(schema.DebugString());
    json->Key("columns").BeginArray();
    for (const ColumnSpec& c : schema.columns()) {
      json->BeginObject();
      json->Key("name").String(c.name);
      json->Key("type").String(c.TypeString());
      json->EndObject();
    }
    json->EndArray();
    json->Key("max_key_bytes").Uint(schema.max_key_bytes());
    json->Key("ttl").Bool(schema.ttl());
    json->Key("capacity").Uint(s.capacity);
    json->Key("live_rows").Uint(s.live_rows);
    json->Key("occupancy")
        .Double(s.capacity == 0
                    ? 0
                    : static_cast<double>(s.live_rows) / s.capacity);
    json->Key("memory_bytes").Uint(s.memory_bytes);
    json->Key("bytes_per_row").Double(s.bytes_per_row);
    json->Key("buckets").Uint(s.buckets);
    json->Key("longest_chain").Uint(s.longest_chain);
    json->Key("chain_histogram").BeginArray();
    for (uint64_t n : in.chain_histogram) json->Uint(n);
    json->EndArray();
    json->Key("held_locks").BeginArray();
    for (const TableInspection::HeldLock& h : in.held_locks) {
      json->BeginObject();
      json->Key("bucket").Uint(h.bucket);
      json->Key("pid").Int(h.pid);
      json->Key("slot").Uint(h.slot);
      json->Key("owner_alive").Bool(h.owner_alive);
      json->EndObject();
    }
    json->EndArray();
    json->Key("dead_writers_awaiting_recovery").Uint(in.dead_pinned_slots);
    json->Key("recoveries").Uint(s.recoveries);
    json->Key("chain_repairs").Uint(s.chain_repairs);
    json->Key("failed_inserts").Uint(s.failed_inserts);
    json->Key("lock_waits").Uint(s.lock_waits);
    json->Key("read_fallbacks").Uint(s.read_fallbacks);
    json->Key("expired_reclaimed").Uint(s.expired_reclaimed);
    if (expired_pending) json->Key("expired_pending").Uint(*expired_pending);
    json->EndObject();
    return absl::OkStatus();
  }
  std::string out;
  absl::StrAppend(&out, "schema       ", schema.DebugString(), "\n");
  absl::StrAppendFormat(
      &out, "occupancy    %d of %d rows (%.1f%%)\n", s.live_rows, s.capacity,
      s.capacity == 0 ? 0.0 : 100.0 * s.live_rows / s.capacity);
  absl::StrAppendFormat(&out,
                        "memory       %s, %.1f bytes per row; %d buckets, "
                        "longest chain %d\n",
                        HumanBytes(s.memory_bytes), s.bytes_per_row, s.buckets,
                        s.longest_chain);
  std::vector<std::string> hist;
  for (size_t n = 0; n < in.chain_histogram.size(); ++n) {
    if (in.chain_histogram[n] == 0) continue;
    hist.push_back(absl::StrCat(n,
                                n + 1 == in.chain_histogram.size() ? "+" : "",
                                ":", in.chain_histogram[n]));
  }
  absl::StrAppend(&out, "chains       rows per bucket -> buckets: ",
                  absl::StrJoin(hist, "  "), "\n");
  if (in.held_locks.empty()) {
    absl::StrAppend(&out, "locks        none held\n");
  } else {
    for (const TableInspection::HeldLock& h : in.held_locks) {
      absl::StrAppend(&out, "locks        bucket ", h.bucket, " held by pid ",
                      h.pid, " (registry slot ", h.slot, ", ",
                      h.owner_alive ? "alive" : "DEAD: run shmkit recover",
                      ")\n");
    }
  }
  absl::StrAppend(&out, "recovery     ", s.recoveries, " recoveries, ",
                  in.dead_pinned_slots, " dead writers awaiting recovery, ",
                  s.chain_repairs, " chain repairs\n");
  absl::StrAppend(&out, "activity     ", s.failed_inserts,
                  " failed inserts (full), ", s.lock_waits, " lock waits, ",
                  s.read_fallbacks, " reads that fell back to the lock\n");
  absl::StrAppend(&out, "expiry       ", s.expired_reclaimed,
                  " expired rows reclaimed");
  if (expired_pending) {
    absl::StrAppend(&out, ", ", *expired_pending,
                    " expired rows not yet reclaimed");
  } else if (!schema.ttl()) {
    absl::StrAppend(&out, " (no TTL)");
  }
  absl::StrAppend(&out, "\n");
  Print(out);
  return absl::OkStatus();
}

absl::Status RunStat(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(ObjectRef ref, ParseObjectRef(inv.args[0]));
  SHMKIT_ASSIGN_OR_RETURN(int id, ResolveId(ref));
  const bool as_json = absl::GetFlag(FLAGS_json);
  JsonWriter json;
  if (ref.space != IpcSpace::kShm) {
    SHMKIT_ASSIGN_OR_RETURN(SysvEntry e, FindSysvEntry(ref.space, id));
    if (as_json) {
      json.BeginObject();
      json.Key("kind").String(ref.space == IpcSpace::kMsg ? "sysv-queue"
                                                          : "semaphore-set");
      WriteEntryJson(e, json);
      json.EndObject();
      Print(json.str());
      Print("\n");
    } else {
      Print(absl::StrCat(
          ref.space == IpcSpace::kMsg ? "sysv-queue" : "semaphore-set", " key ",
          e.key.ToString(), " id ", e.id, " owner ", UserName(e.uid), " mode ",
          ModeString(e.mode), "\n"));
      if (ref.space == IpcSpace::kMsg) {
        Print(absl::StrCat("queued       ", e.messages, " messages, ", e.bytes,
                           " bytes; last sender pid ", e.last_pid, "\n"));
      } else {
        Print(absl::StrCat("semaphores   ", e.nsems, "\n"));
      }
    }
    return absl::OkStatus();
  }
  SHMKIT_ASSIGN_OR_RETURN(SegmentView view, ViewSegment(id));
  const SysvEntry& e = view.entry;
  if (as_json) {
    json.BeginObject();
    json.Key("kind").String(KindOf(view));
    json.Key("shmkit").Bool(view.info.has_value());
    WriteEntryJson(e, json);
    if (view.info.has_value()) {
      const ObjectInfo& i = *view.info;
      json.Key("header").BeginObject();
      json.Key("format").String(absl::StrFormat("0x%08x", ObjectFormatWord()));
      json.Key("kind_version").Uint(i.kind_version);
      json.Key("total_bytes").Uint(i.total_bytes);
      json.Key("fingerprint").String(absl::StrFormat("0x%016x", i.fingerprint));
      json.Key("capacity").Uint(i.capacity);
      json.Key("creator_uid").Uint(i.creator_uid);
      json.Key("creator_pid").Int(i.creator_pid);
      json.Key("creator_alive").Bool(view.creator_alive);
      json.Key("created").String(
          absl::FormatTime(absl::RFC3339_sec, i.created, absl::UTCTimeZone()));
      json.Key("ready").Bool(i.ready);
      json.EndObject();
      if (i.kind == ObjectKind::kTable && i.ready) {
        SHMKIT_RETURN_IF_ERROR(StatTable(view, &json));
      }
    } else {
      json.Key("note").Text(view.why_not);
    }
    json.EndObject();
    Print(json.str());
    Print("\n");
    return absl::OkStatus();
  }
  Print(absl::StrCat(KindOf(view), " key ", e.key.ToString(), " id ", e.id,
                     " owner ", UserName(e.uid), " mode ", ModeString(e.mode),
                     ", ", HumanBytes(e.bytes), ", ", e.attached, " attached",
                     e.marked_for_removal ? ", marked for removal" : "", "\n"));
  if (!view.info.has_value()) {
    Print(
        absl::StrCat("not a shmkit object: ", EscapeBytes(view.why_not), "\n"));
    return absl::OkStatus();
  }
  const ObjectInfo& i = *view.info;
  Print(absl::StrFormat(
      "header       format 0x%08x (this build), %s layout v%d, %d bytes, "
      "fingerprint 0x%016x%s\n",
      ObjectFormatWord(), ObjectKindName(i.kind), i.kind_version, i.total_bytes,
      i.fingerprint, i.ready ? "" : ", NOT READY"));
  Print(absl::StrCat("created      ",
                     absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", i.created,
                                      absl::LocalTimeZone()),
                     " by pid ", i.creator_pid, " (",
                     view.creator_alive ? "alive" : "exited", "), uid ",
                     i.creator_uid, "\n"));
  if (i.kind == ObjectKind::kTable && i.ready) return StatTable(view, nullptr);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// rm

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

}  // namespace

std::vector<Command> ObjectCommands() {
  std::vector<Command> c;
  c.push_back(
      {.name = "ls",
       .args = "",
       .summary = "List shmkit's objects: kind, key, id, owner, mode, size, "
                  "attachments, creator.",
       .details =
           "Segments are recognised by their shmkit header (attached "
           "read-only\nfor a moment). Tables show capacity and live rows, "
           "counters their value.\nSystem V message queues carry no header, "
           "so every one is listed.\nSemaphore sets are listed when a shmkit "
           "counter uses them (others with --all).",
       .flags = {"json", "all"},
       .min_args = 0,
       .max_args = 0,
       .run = RunLs});
  c.push_back(
      {.name = "stat",
       .args = "OBJECT",
       .summary = "Show an object's header and, for tables, occupancy, "
                  "chains, locks, recoveries.",
       .details = "Tables: schema, live rows and capacity, bytes per row, the "
                  "chain-length\nhistogram, bucket locks held (and whether "
                  "their owner is alive),\nrecoveries, failed inserts, expired "
                  "rows (reclaimed, and pending: counted\nby iterating, exact "
                  "only while nobody writes).",
       .flags = {"json"},
       .min_args = 1,
       .max_args = 1,
       .run = RunStat});
  c.push_back({.name = "rm",
               .args = "OBJECT",
               .summary = "Remove an object (segments: freed once the last "
                          "process detaches).",
               .details = "Refuses objects that are not shmkit's unless "
                          "--force. A sem-counter's\nsemaphore set is removed "
                          "with its segment.",
               .flags = {"json", "force"},
               .min_args = 1,
               .max_args = 1,
               .run = RunRm});
  c.push_back({.name = "recover",
               .args = "OBJECT",
               .summary = "Repair the rows of a table whose writer died "
                          "(normally done by the next writer).",
               .details = "Takes over every bucket lock held by a dead "
                          "process, restores the rows it\nwas writing from "
                          "its undo image, and prints how many buckets it "
                          "repaired.",
               .flags = {"json"},
               .min_args = 1,
               .max_args = 1,
               .run = RunRecover});
  return c;
}

}  // namespace shmkit::cli
