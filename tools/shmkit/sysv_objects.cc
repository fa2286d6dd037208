#include "tools/shmkit/sysv_objects.h"

#include <pwd.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace shmkit::cli {

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

absl::StatusOr<int> ResolveId(const ObjectRef& ref) {
  if (ref.key.has_value()) return SysvIdOfKey(ref.space, *ref.key);
  absl::StatusOr<SysvEntry> e = FindSysvEntry(ref.space, ref.id);
  if (!e.ok()) return e.status();
  return ref.id;
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

}  // namespace shmkit::cli
