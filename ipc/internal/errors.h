// The one place where errno becomes an absl::Status or a message, and where
// EINTR is handled. Every failed system call in ipc/ and table/ is reported
// through ErrnoStatus (or, inside a longer message, ErrnoText), and every
// EINTR in the libraries (ipc/, table/, redis/) is either retried
// (RetryOnEintr) or, for a wait whose caller looks again at what it waits for
// anyway, taken as "nothing happened" (NoEventsOnEintr). The exceptions are
// deliberate and say so where they are: close() is never retried
// (unique_fd.h), and a futex wait returns on EINTR by design (futex.h).
#ifndef SHMKIT_IPC_INTERNAL_ERRORS_H_
#define SHMKIT_IPC_INTERNAL_ERRORS_H_

#include <cerrno>
#include <string>
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

// strerror(err), thread-safe: for a message that is more than a call's
// failure ("the listener went away (send: Broken pipe)").
std::string ErrnoText(int err);

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

// For poll(), ppoll(), epoll_wait() and the like inside a loop that checks
// its condition after every return: a signal (-1 with EINTR) becomes 0,
// "no events", so the loop looks again and recomputes its timeout. Any
// other result, -1 with errno included, is returned as it is.
inline int NoEventsOnEintr(int result) {
  return result == -1 && errno == EINTR ? 0 : result;
}

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_INTERNAL_ERRORS_H_
