#include "tools/shmkit/sysv_objects.h"

#include <pwd.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit::cli {

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

absl::StatusOr<ObjectRef> ParseObjectRef(absl::string_view text) {
  ObjectRef ref;
  ref.text = std::string(text);
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "msg:")) {
    ref.space = IpcSpace::kMsg;
  } else if (absl::ConsumePrefix(&rest, "sem:")) {
    ref.space = IpcSpace::kSem;
  } else {
    absl::ConsumePrefix(&rest, "shm:");
  }
  const auto bad = [&text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "object \"", text, "\": ", why,
        " (expected 0xKEY, key:N, ftok:PATH:PROJ, ID or id:ID, optionally "
        "prefixed by msg: or sem:)"));
  };
  if (rest.empty()) return bad("empty");
  const bool explicit_id = absl::ConsumePrefix(&rest, "id:");
  if (explicit_id || absl::ascii_isdigit(static_cast<unsigned char>(rest[0]))) {
    if (!explicit_id &&
        (absl::StartsWith(rest, "0x") || absl::StartsWith(rest, "0X"))) {
      absl::StatusOr<IpcKey> key = IpcKey::Parse(rest);
      if (!key.ok()) return bad(key.status().message());
      ref.key = *key;
      return ref;
    }
    int id;
    if (!absl::SimpleAtoi(rest, &id) || id < 0) return bad("not an id");
    ref.id = id;
    return ref;
  }
  absl::ConsumePrefix(&rest, "key:");
  absl::StatusOr<IpcKey> key = IpcKey::Parse(rest);
  if (!key.ok()) return bad(key.status().message());
  if (key->is_private()) {
    return bad("the private key names no object; use its id");
  }
  ref.key = *key;
  return ref;
}

absl::StatusOr<SysvEntry> FindEntry(IpcSpace space, int id) {
  absl::StatusOr<std::vector<SysvEntry>> all = ListSysv(space);
  if (!all.ok()) return all.status();
  for (const SysvEntry& e : *all) {
    if (e.id == id) return e;
  }
  return absl::NotFoundError(
      absl::StrCat("no ", IpcSpaceName(space), " object with id ", id));
}

absl::StatusOr<int> ResolveId(const ObjectRef& ref) {
  if (!ref.key.has_value()) {
    absl::StatusOr<SysvEntry> e = FindEntry(ref.space, ref.id);
    if (!e.ok()) return e.status();
    return ref.id;
  }
  const key_t key = ref.key->value();
  int id = -1;
  const char* call = "";
  switch (ref.space) {
    case IpcSpace::kShm:
      id = shmget(key, 0, 0);
      call = "shmget";
      break;
    case IpcSpace::kMsg:
      id = msgget(key, 0);
      call = "msgget";
      break;
    case IpcSpace::kSem:
      id = semget(key, 0, 0);
      call = "semget";
      break;
  }
  if (id >= 0) return id;
  if (errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("no ", IpcSpaceName(ref.space),
                                            " object with key ",
                                            ref.key->ToString()));
  }
  return internal::ErrnoStatus(
      errno, absl::StrCat(call, "(key=", ref.key->ToString(), ")"));
}

std::string UserName(uid_t uid) {
  passwd pw;
  passwd* result = nullptr;
  char buffer[1024];
  if (getpwuid_r(uid, &pw, buffer, sizeof(buffer), &result) == 0 &&
      result != nullptr) {
    return pw.pw_name;
  }
  return absl::StrCat(uid);
}

std::string ModeString(mode_t mode) {
  return absl::StrFormat("%04o", mode & 07777);
}

bool PidAlive(pid_t pid) {
  if (pid <= 0) return false;
  return kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace shmkit::cli
