// The one place where errno becomes an absl::Status and where EINTR is
// retried. Every system call in shmkit goes through these two helpers.
#ifndef SHMKIT_IPC_INTERNAL_ERRORS_H_
#define SHMKIT_IPC_INTERNAL_ERRORS_H_

#include <cerrno>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shmkit::internal {

// Builds the Status for a failed system call. `call` names the call and its
// arguments, e.g. "shmget(key=0x00005eed, bytes=4096, flags=01600)"; the
// message is "<call>: <strerror>". The code follows absl::ErrnoToStatusCode,
// except that EIDRM (the object was removed under us) is FailedPrecondition,
// as DESIGN.md section 7 asks.
[[nodiscard]] absl::Status ErrnoStatus(int err, absl::string_view call);

// Calls `fn` until it returns something other than -1-with-EINTR. `fn` is a
// system call wrapper returning an integer (or ssize_t) that is -1 on failure
// with errno set. Timed calls pass a lambda that recomputes the remaining time
// from an absolute deadline, so a retry never extends the caller's timeout.
template <typename Fn>
auto RetryOnEintr(Fn&& fn) -> std::invoke_result_t<Fn&> {
  std::invoke_result_t<Fn&> result;
  do {
    result = fn();
  } while (result == -1 && errno == EINTR);
  return result;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_ERRORS_H_
