#include "shmkit/ipc/internal/errors.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace shmkit::internal {

std::string ErrnoText(int err) {
  // strerror_r (GNU variant) is thread-safe, unlike strerror.
  char buffer[128];
  return strerror_r(err, buffer, sizeof(buffer));
}

absl::Status ErrnoStatus(int err, absl::string_view call) {
  std::string message =
      absl::StrCat(call, ": ", ErrnoText(err), " (errno ", err, ")");
  if (err == EIDRM) {
    return absl::FailedPreconditionError(std::move(message));
  }
  return absl::Status(absl::ErrnoToStatusCode(err), std::move(message));
}

}  // namespace shmkit::internal
