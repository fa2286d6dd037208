// System V queues interoperate with PHP's sysvmsg extension, both ways,
// with raw (unserialized) payloads: msg_send($q, $type, $data, false) and
// msg_receive($q, 0, $type, $max, $data, false). Runs `php` through the
// shell; skipped (visibly) when php or its sysvmsg extension is missing.
// Nothing is installed here: tools/common.sh installs php8.2-cli.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/queue/sysv_queue.h"
#include "test_util.h"

namespace shmkit {
namespace {

// What `php -r <code>` printed and its exit code.
struct PhpResult {
  int exit_code = -1;
  std::string output;
};

class PhpInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (system("command -v php >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "php is not installed (Debian: php8.2-cli, installed by "
                      "tools/common.sh); PHP interop NOT tested";
    }
    // Built in (Debian's php8.2-cli) or loadable: try both ways.
    for (const char* flags : {"", "-n -d extension=sysvmsg.so"}) {
      const std::string probe = absl::StrCat(
          "php ", flags,
          " -r 'exit(function_exists(\"msg_send\") ? 0 : 3);' >/dev/null "
          "2>&1");
      if (system(probe.c_str()) == 0) {
        php_flags_ = flags;
        break;
      }
    }
    if (!php_flags_.has_value()) {
      GTEST_SKIP() << "php has no sysvmsg extension (msg_send); PHP interop "
                      "NOT tested";
    }
    key_ = ::shmkit::testing::UniqueKey();
    absl::StatusOr<std::unique_ptr<SysvQueue>> q =
        SysvQueue::Open({.key = key_, .open = OpenMode::kCreate});
    ASSERT_TRUE(q.ok()) << q.status();
    queue_ = *std::move(q);
  }
  void TearDown() override {
    if (queue_ != nullptr) {
      EXPECT_TRUE(queue_->Remove().ok());
    }
  }

  // Runs `php -r <code>` through the shell. The code is single-quoted for
  // the shell, so it must not contain a single quote.
  PhpResult Php(const std::string& code) {
    const std::string command =
        absl::StrCat("php ", *php_flags_, " -r '", code, "' 2>&1");
    PhpResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
      result.output.append(buffer, n);
    }
    const int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

  // PHP code that opens our queue as $q.
  std::string OpenInPhp() const {
    return absl::StrCat("$q = msg_get_queue(", key_.value(),
                        ", 0600); if ($q === false) exit(2);");
  }

  std::optional<std::string> php_flags_;
  IpcKey key_;
  std::unique_ptr<SysvQueue> queue_;
};

// Binary payloads: NUL bytes, high bytes, and a large one.
std::vector<std::string> Payloads() {
  return {std::string("a\0b\xff\x80z", 6), std::string(),
          ::shmkit::testing::Pattern(5000, 7)};
}

TEST_F(PhpInterop, PhpSendsShmkitReceives) {
  int64_t type = 7;
  for (const std::string& payload : Payloads()) {
    const PhpResult r =
        Php(absl::StrCat(OpenInPhp(), "if (!msg_send($q, ", type,
                         ", hex2bin(\"", absl::BytesToHexString(payload),
                         "\"), false, true, $err)) exit(3); echo \"sent\";"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_EQ(r.output, "sent");
    absl::StatusOr<Message> m = queue_->ReceiveFor(65536, absl::Seconds(5));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->type, type);
    EXPECT_EQ(m->data.size(), payload.size());
    EXPECT_TRUE(m->data == payload);
    ++type;
  }
}

TEST_F(PhpInterop, ShmkitSendsPhpReceives) {
  int64_t type = 11;
  for (const std::string& payload : Payloads()) {
    ASSERT_TRUE(queue_->Send(payload, type).ok());
    const PhpResult r = Php(absl::StrCat(
        OpenInPhp(),
        "if (!msg_receive($q, 0, $type, 65536, $data, false, 0, $err)) "
        "exit(3); echo $type, \":\", bin2hex($data);"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output,
              absl::StrCat(type, ":", absl::BytesToHexString(payload)));
    ++type;
  }
}

TEST_F(PhpInterop, PhpTypedReceiveSeesShmkitTypes) {
  ASSERT_TRUE(queue_->Send("low", 2).ok());
  ASSERT_TRUE(queue_->Send("high", 9).ok());
  // msgtyp 9: the first message of type 9, skipping the earlier type 2.
  PhpResult r = Php(absl::StrCat(
      OpenInPhp(),
      "if (!msg_receive($q, 9, $type, 100, $data, false, 0, $err)) exit(3); "
      "echo $type, \":\", $data;"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "9:high");
  absl::StatusOr<Message> m = queue_->TryReceive(100);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "low");
}

}  // namespace
}  // namespace shmkit
