#include "shmkit/ipc/internal/errors.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit {
namespace {

TEST(ErrnoStatus, NamesTheCallAndMapsTheCode) {
  absl::Status st = internal::ErrnoStatus(ENOENT, "open(path=/nope)");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("open(path=/nope)"), absl::string_view::npos);
  EXPECT_NE(st.message().find("No such file"), absl::string_view::npos);
  EXPECT_EQ(internal::ErrnoStatus(EEXIST, "x").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(internal::ErrnoStatus(EAGAIN, "x").code(),
            absl::StatusCode::kUnavailable);
}

TEST(ErrnoStatus, RemovedUnderUsIsFailedPrecondition) {
  EXPECT_EQ(internal::ErrnoStatus(EIDRM, "semop").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RetryOnEintr, RetriesOnlyEintr) {
  int calls = 0;
  const int r = internal::RetryOnEintr([&] {
    ++calls;
    if (calls < 3) {
      errno = EINTR;
      return -1;
    }
    return 7;
  });
  EXPECT_EQ(r, 7);
  EXPECT_EQ(calls, 3);
  calls = 0;
  const int failed = internal::RetryOnEintr([&] {
    ++calls;
    errno = EBADF;
    return -1;
  });
  EXPECT_EQ(failed, -1);
  EXPECT_EQ(calls, 1);
}

TEST(RetryOnEintr, ReadSurvivesASignal) {
  // A real EINTR: an interval timer interrupts a blocking read on a pipe
  // that gets data only afterwards.
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  ASSERT_EQ(sigaction(SIGALRM, &sa, nullptr), 0);  // no SA_RESTART
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  const pid_t writer = fork();
  if (writer == 0) {
    usleep(200'000);
    const char c = 'k';
    _exit(write(w.get(), &c, 1) == 1 ? 0 : 1);
  }
  itimerval t{};
  t.it_value.tv_usec = 50'000;
  t.it_interval.tv_usec = 50'000;
  ASSERT_EQ(setitimer(ITIMER_REAL, &t, nullptr), 0);
  char c = 0;
  const ssize_t n =
      internal::RetryOnEintr([&] { return read(r.get(), &c, 1); });
  t = {};
  setitimer(ITIMER_REAL, &t, nullptr);
  int status = 0;
  waitpid(writer, &status, 0);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(c, 'k');
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return absl::InvalidArgumentError("odd");
  return v / 2;
}
absl::StatusOr<int> Quarter(int v) {
  SHMKIT_ASSIGN_OR_RETURN(int half, Half(v));
  SHMKIT_ASSIGN_OR_RETURN(half, Half(half));
  return half;
}
absl::Status CheckEven(int v) {
  SHMKIT_RETURN_IF_ERROR(Half(v).status());
  return absl::OkStatus();
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(2).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

TEST(UniqueFd, ClosesAndMoves) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    UniqueFd a(fds[0]);
    UniqueFd b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), fds[0]);
  }
  // fds[0] is closed now: fcntl on it fails with EBADF.
  EXPECT_EQ(fcntl(fds[0], F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
  UniqueFd w(fds[1]);
  const int raw = w.release();
  EXPECT_FALSE(w.valid());
  EXPECT_NE(fcntl(raw, F_GETFD), -1);
  close(raw);
}

}  // namespace
}  // namespace shmkit
