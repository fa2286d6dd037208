#include "shmkit/ipc/kernel_limits.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "shmkit/ipc/internal/errors.h"

namespace shmkit {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = internal::RetryOnEintr(
      [&] { return open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0)
    return internal::ErrnoStatus(errno, absl::StrCat("open(", path, ")"));
  char buffer[256];
  const ssize_t n =
      internal::RetryOnEintr([&] { return read(fd, buffer, sizeof(buffer)); });
  const int err = errno;
  close(fd);
  if (n < 0)
    return internal::ErrnoStatus(err, absl::StrCat("read(", path, ")"));
  return std::string(buffer, static_cast<size_t>(n));
}

}  // namespace

absl::StatusOr<uint64_t> ReadKernelLimit(absl::string_view name) {
  const std::string path = absl::StrCat("/proc/sys/kernel/", name);
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  uint64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) {
    return absl::InternalError(
        absl::StrCat(path, " does not hold a number: \"", *text, "\""));
  }
  return value;
}

absl::StatusOr<SemLimits> ReadSemLimits() {
  absl::StatusOr<std::string> text = ReadSmallFile("/proc/sys/kernel/sem");
  if (!text.ok()) return text.status();
  std::vector<absl::string_view> parts =
      absl::StrSplit(*text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  SemLimits limits;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &limits.semmsl) ||
      !absl::SimpleAtoi(parts[1], &limits.semmns) ||
      !absl::SimpleAtoi(parts[2], &limits.semopm) ||
      !absl::SimpleAtoi(parts[3], &limits.semmni)) {
    return absl::InternalError(absl::StrCat(
        "/proc/sys/kernel/sem does not hold four numbers: \"", *text, "\""));
  }
  return limits;
}

absl::Status KernelLimitError(absl::string_view what, absl::string_view setting,
                              uint64_t value, absl::string_view asked) {
  // `setting` may carry a field description after the file name, as in
  // "sem (SEMMSL, field 1)"; the file is the first word.
  const absl::string_view file = setting.substr(0, setting.find(' '));
  return absl::ResourceExhaustedError(
      absl::StrCat(what, ": asked for ", asked, " but kernel.", setting, " = ",
                   value, " (read from /proc/sys/kernel/", file,
                   "; raise it with sysctl -w kernel.", file, "=...)"));
}

}  // namespace shmkit
