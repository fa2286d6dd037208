#include "shmkit/ipc/key.h"

#include <unistd.h>

#include <cstdio>

#include "gtest/gtest.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

TEST(IpcKey, PrivateIsTheDefault) {
  EXPECT_TRUE(IpcKey().is_private());
  EXPECT_EQ(IpcKey::Private().value(), IPC_PRIVATE);
  EXPECT_EQ(IpcKey::Private().ToString(), "private");
  EXPECT_FALSE(IpcKey::FromNumber(0x5eed).is_private());
  EXPECT_EQ(IpcKey::FromNumber(0x5eed).ToString(), "0x00005eed");
}

TEST(IpcKey, FromPathMissingIsNotFoundNamingThePath) {
  EXPECT_THAT(
      IpcKey::FromPath("/no/such/shmkit/path", 7),
      StatusIsWith(absl::StatusCode::kNotFound, "/no/such/shmkit/path"));
}

TEST(IpcKey, FromPathIsStableAndDependsOnProjectId) {
  char path[] = "/tmp/shmkit-key-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  absl::StatusOr<IpcKey> a = IpcKey::FromPath(path, 1);
  absl::StatusOr<IpcKey> b = IpcKey::FromPath(path, 1);
  absl::StatusOr<IpcKey> c = IpcKey::FromPath(path, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_FALSE(*a == *c);
  EXPECT_EQ(a->value(), ftok(path, 1));
  unlink(path);
}

TEST(IpcKey, ProjectIdOutOfRange) {
  EXPECT_THAT(IpcKey::FromPath("/tmp", 0),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "project id 0"));
  EXPECT_THAT(IpcKey::FromPath("/tmp", 256),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IpcKey, Parse) {
  EXPECT_TRUE(IpcKey::Parse("private")->is_private());
  EXPECT_EQ(IpcKey::Parse("0x5eed")->value(), 0x5eed);
  EXPECT_EQ(IpcKey::Parse("1234")->value(), 1234);
  EXPECT_EQ(static_cast<uint32_t>(IpcKey::Parse("0xffffffff")->value()),
            0xffffffffu);
  EXPECT_EQ(IpcKey::Parse("ftok:/tmp:3")->value(), ftok("/tmp", 3));
  for (const char* bad : {"", "0x", "0x1g", "-1", "0x100000000", "ftok:/tmp",
                          "ftok::3", "keys"}) {
    EXPECT_THAT(IpcKey::Parse(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace shmkit
