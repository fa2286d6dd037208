// shmkit stat: an object's header and, for a table, what is inside it.
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

namespace shmkit::cli {
namespace {

absl::Status StatTable(const SegmentView& view, JsonWriter* json) {
  TableAttachOptions options;
  options.read_only = true;
  options.expected_mode = std::nullopt;
  SHMKIT_ASSIGN_OR_RETURN(Table table, Table::AttachId(view.entry.id, options));
  // Inspect() first: it reads every bucket block, so this process's mapping
  // is populated and Stats() can tell which pages back the table (a huge
  // page of shared memory is mapped whole only once touched).
  const TableInspection in = table.Inspect();
  const TableStats s = table.Stats();
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
    json->Key("page_bytes").Uint(s.page_bytes);
    json->Key("huge_page_bytes").Uint(s.huge_page_bytes);
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
  absl::StrAppendFormat(&out,
                        "pages        %s pages; %s of %s on huge pages "
                        "(transparent ones need shmem_enabled = advise: see "
                        "the README)\n",
                        HumanBytes(s.page_bytes), HumanBytes(s.huge_page_bytes),
                        HumanBytes(s.memory_bytes));
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

}  // namespace

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

}  // namespace shmkit::cli
