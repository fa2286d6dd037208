#include "shmkit/ipc/key.h"

#include <cerrno>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit {

absl::StatusOr<IpcKey> IpcKey::FromPath(const std::string& path,
                                        int project_id) {
  if (project_id < 1 || project_id > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ftok project id ", project_id,
        " is out of range: it must be 1..255 (ftok keeps only 8 bits and 0 "
        "is reserved)"));
  }
  errno = 0;
  const key_t key = ftok(path.c_str(), project_id);
  if (key == -1) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("ftok path \"", path,
                                              "\" does not exist (project id ",
                                              project_id, ")"));
    }
    return internal::ErrnoStatus(
        err,
        absl::StrCat("ftok(path=\"", path, "\", project_id=", project_id, ")"));
  }
  return IpcKey(key);
}

absl::StatusOr<IpcKey> IpcKey::Parse(absl::string_view text) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (trimmed == "private" || trimmed == "IPC_PRIVATE") return Private();
  if (absl::StartsWith(trimmed, "ftok:")) {
    const absl::string_view rest = trimmed.substr(5);
    const size_t colon = rest.rfind(':');
    int project_id = 0;
    if (colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(rest.substr(colon + 1), &project_id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad key \"", text, "\": expected ftok:<path>:<project id>"));
    }
    return FromPath(std::string(rest.substr(0, colon)), project_id);
  }
  uint64_t value = 0;
  bool parsed = false;
  if (absl::StartsWithIgnoreCase(trimmed, "0x")) {
    parsed =
        trimmed.size() > 2 && absl::SimpleHexAtoi(trimmed.substr(2), &value);
  } else {
    parsed = absl::SimpleAtoi(trimmed, &value);
  }
  // key_t is a signed 32-bit int; accept the full unsigned 32-bit range
  // (what `ipcs` prints) and reinterpret it.
  if (!parsed || value > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad key \"", text,
        "\": expected private, a number (decimal or 0x hex, up to 32 bits) or "
        "ftok:<path>:<project id>"));
  }
  return FromNumber(static_cast<key_t>(static_cast<uint32_t>(value)));
}

std::string IpcKey::ToString() const {
  if (is_private()) return "private";
  return absl::StrFormat("0x%08x", static_cast<uint32_t>(value_));
}

}  // namespace shmkit
