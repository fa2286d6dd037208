// Helpers shared by shmkit's tests: unique IPC keys, forked children that
// report through exit codes, and a pipe to synchronize with them.
#ifndef SHMKIT_TESTS_UTIL_TEST_UTIL_H_
#define SHMKIT_TESTS_UTIL_TEST_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::testing {

// A System V key no other test (or concurrent test process) uses: derived
// from the pid, a per-process counter and a tag byte. Keys start with 0x5e.
IpcKey UniqueKey();

// Forks a child that runs `body` and _exits with its return value (never
// returns into the test framework). Returns the child's pid.
pid_t ForkChild(const std::function<int()>& body);

// How a child ended.
struct ChildExit {
  bool exited = false;    // normal exit
  int code = -1;          // exit code when exited
  bool signaled = false;  // killed by a signal
  int signal = 0;
};
// Waits for `pid` up to `timeout`; on timeout kills it with SIGKILL, reaps
// it and returns nullopt.
std::optional<ChildExit> WaitChild(pid_t pid,
                                   absl::Duration timeout = absl::Seconds(60));

// Waits until thread or process `tid` sleeps in the kernel (state S in
// /proc/<tid>/stat: blocked in a futex, a pipe, a semop...), up to
// `timeout`; false if it never did. Tests use it, not "sleep and hope it is
// blocked by now", before acting on a blocked waiter.
bool WaitUntilAsleep(pid_t tid, absl::Duration timeout = absl::Seconds(30));

// gtest assertion: the child exited normally with `code`.
::testing::AssertionResult ExitedWith(
    pid_t pid, int code, absl::Duration timeout = absl::Seconds(60));

// A one-way pipe for "I am ready" style messages between processes.
class SyncPipe {
 public:
  SyncPipe();
  // Writes one byte (from either process).
  void Signal(char byte = 'x');
  // Reads one byte; nullopt on timeout or EOF.
  std::optional<char> Wait(absl::Duration timeout = absl::Seconds(30));
  // Closes the read end (in the writer) or the write end (in the reader).
  void CloseRead() { read_.reset(); }
  void CloseWrite() { write_.reset(); }

 private:
  UniqueFd read_;
  UniqueFd write_;
};

inline const absl::Status& internal_status(const absl::Status& st) {
  return st;
}
template <typename T>
const absl::Status& internal_status(const absl::StatusOr<T>& st) {
  return st.status();
}

// StatusIs(code): an absl::Status (or StatusOr) with that code.
// StatusIsWith(code, fragment): ... whose message also contains `fragment`.
MATCHER_P(StatusIs, code, "") {
  const absl::Status& st = ::shmkit::testing::internal_status(arg);
  if (st.code() != code) {
    *result_listener << "status is " << st;
    return false;
  }
  return true;
}
MATCHER_P2(StatusIsWith, code, fragment, "") {
  const absl::Status& st = ::shmkit::testing::internal_status(arg);
  if (st.code() != code ||
      st.message().find(std::string(fragment)) == absl::string_view::npos) {
    *result_listener << "status is " << st;
    return false;
  }
  return true;
}

// Asserts `expr` (a Status or StatusOr) is OK, printing the status if not.
#define SHMKIT_ASSERT_OK(expr) \
  ASSERT_TRUE((expr).ok()) << ::shmkit::testing::internal_status(expr)
#define SHMKIT_EXPECT_OK(expr) \
  EXPECT_TRUE((expr).ok()) << ::shmkit::testing::internal_status(expr)

// Assigns the value of a StatusOr expression or fails the test.
#define SHMKIT_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  SHMKIT_ASSERT_OK_AND_ASSIGN_IMPL_(            \
      SHMKIT_TEST_CONCAT_(shmkit_test_statusor_, __LINE__), lhs, rexpr)
#define SHMKIT_ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, rexpr) \
  auto so = (rexpr);                                      \
  ASSERT_TRUE(so.ok()) << so.status();                    \
  lhs = std::move(so).value()
#define SHMKIT_TEST_CONCAT_INNER_(a, b) a##b
#define SHMKIT_TEST_CONCAT_(a, b) SHMKIT_TEST_CONCAT_INNER_(a, b)

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_UTIL_TEST_UTIL_H_
