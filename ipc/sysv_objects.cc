#include "shmkit/ipc/sysv_objects.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

absl::string_view IpcSpaceName(IpcSpace space) {
  switch (space) {
    case IpcSpace::kShm:
      return "shm";
    case IpcSpace::kMsg:
      return "msg";
    case IpcSpace::kSem:
      return "sem";
  }
  return "?";
}

namespace {

const char* ProcPath(IpcSpace space) {
  switch (space) {
    case IpcSpace::kShm:
      return "/proc/sysvipc/shm";
    case IpcSpace::kMsg:
      return "/proc/sysvipc/msg";
    case IpcSpace::kSem:
      return "/proc/sysvipc/sem";
  }
  return "";
}

// Reads column `name` of a whitespace-split line as an unsigned number.
template <typename T>
bool Field(const absl::flat_hash_map<std::string, size_t>& columns,
           const std::vector<absl::string_view>& cells, absl::string_view name,
           T* out, int base = 10) {
  auto it = columns.find(name);
  if (it == columns.end() || it->second >= cells.size()) return false;
  const std::string cell(cells[it->second]);
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(cell.c_str(), &end, base);
  if (errno != 0 || end == cell.c_str() || *end != '\0') return false;
  *out = static_cast<T>(v);
  return true;
}

}  // namespace

absl::StatusOr<std::vector<SysvEntry>> ListSysv(IpcSpace space) {
  std::ifstream in(ProcPath(space));
  if (!in) {
    return absl::UnavailableError(
        absl::StrCat("cannot read ", ProcPath(space),
                     " (is /proc mounted and System V IPC enabled?)"));
  }
  std::string header;
  std::getline(in, header);
  absl::flat_hash_map<std::string, size_t> columns;
  {
    std::vector<absl::string_view> names =
        absl::StrSplit(header, ' ', absl::SkipEmpty());
    for (size_t i = 0; i < names.size(); ++i) {
      columns[std::string(names[i])] = i;
    }
  }
  const char* id_column = space == IpcSpace::kShm   ? "shmid"
                          : space == IpcSpace::kMsg ? "msqid"
                                                    : "semid";
  std::vector<SysvEntry> out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> cells =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cells.empty()) continue;
    SysvEntry e;
    e.space = space;
    int64_t key = 0;
    unsigned perms = 0;
    if (!Field(columns, cells, "key", &key) ||
        !Field(columns, cells, id_column, &e.id) ||
        !Field(columns, cells, "perms", &perms, 8)) {
      return absl::DataLossError(absl::StrCat("cannot parse ", ProcPath(space),
                                              " line \"", line, "\""));
    }
    e.key = IpcKey::FromNumber(static_cast<key_t>(key));
    e.mode = perms & 0777;
    e.marked_for_removal = space == IpcSpace::kShm && (perms & SHM_DEST) != 0;
    Field(columns, cells, "uid", &e.uid);
    Field(columns, cells, "cuid", &e.cuid);
    switch (space) {
      case IpcSpace::kShm:
        Field(columns, cells, "size", &e.bytes);
        Field(columns, cells, "nattch", &e.attached);
        Field(columns, cells, "cpid", &e.creator_pid);
        Field(columns, cells, "lpid", &e.last_pid);
        break;
      case IpcSpace::kMsg:
        Field(columns, cells, "cbytes", &e.bytes);
        Field(columns, cells, "qnum", &e.messages);
        Field(columns, cells, "lspid", &e.last_pid);
        break;
      case IpcSpace::kSem:
        Field(columns, cells, "nsems", &e.nsems);
        break;
    }
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<SysvEntry> FindSysvEntry(IpcSpace space, int id) {
  absl::StatusOr<std::vector<SysvEntry>> all = ListSysv(space);
  if (!all.ok()) return all.status();
  for (const SysvEntry& e : *all) {
    if (e.id == id) return e;
  }
  return absl::NotFoundError(
      absl::StrCat("no ", IpcSpaceName(space), " object with id ", id));
}

absl::StatusOr<int> SysvIdOfKey(IpcSpace space, IpcKey key) {
  int id = -1;
  const char* call = "";
  switch (space) {
    case IpcSpace::kShm:
      id = shmget(key.value(), 0, 0);
      call = "shmget";
      break;
    case IpcSpace::kMsg:
      id = msgget(key.value(), 0);
      call = "msgget";
      break;
    case IpcSpace::kSem:
      id = semget(key.value(), 0, 0);
      call = "semget";
      break;
  }
  if (id >= 0) return id;
  if (errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat(
        "no ", IpcSpaceName(space), " object with key ", key.ToString()));
  }
  return internal::ErrnoStatus(
      errno, absl::StrCat(call, "(key=", key.ToString(), ")"));
}

absl::StatusOr<SegmentView> ViewSegment(int shmid) {
  absl::StatusOr<SysvEntry> entry = FindSysvEntry(IpcSpace::kShm, shmid);
  if (!entry.ok()) return entry.status();
  return ViewSegment(*entry);
}

absl::StatusOr<SegmentView> ViewSegment(const SysvEntry& entry) {
  SegmentView view;
  view.entry = entry;
  view.creator_alive =
      internal::ProcessAlive(entry.creator_pid, /*start_time=*/0);
  const int id = entry.id;
  absl::StatusOr<Segment> segment =
      Segment::AttachId(id, {.read_only = true, .expected_mode = std::nullopt});
  if (!segment.ok()) {
    if (segment.status().code() == absl::StatusCode::kNotFound ||
        segment.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::NotFoundError(absl::StrCat("segment id ", id, " is gone"));
    }
    view.why_not = absl::StrCat("cannot attach: ", segment.status().message());
    return view;
  }
  absl::StatusOr<ObjectInfo> info = ReadObjectInfo(*segment);
  if (!info.ok()) {
    view.why_not = std::string(info.status().message());
    return view;
  }
  view.info = *info;
  view.creator_alive =
      internal::ProcessAlive(info->creator_pid, info->creator_start_time);
  return view;
}

}  // namespace shmkit
