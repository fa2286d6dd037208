// Queue spec strings: the grammar, and the factory's answers to bad specs
// (InvalidArgument naming the bad part, nothing created).
#include "shmkit/ipc/queue/spec.h"

#include <sys/msg.h>
#include <sys/shm.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

TEST(QueueSpec, ParsesSchemeKeysValuesAndFlags) {
  absl::StatusOr<QueueSpec> spec =
      ParseQueueSpec("ring:slots=4096,slot_bytes=256,private");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->scheme, "ring");
  ASSERT_EQ(spec->params.size(), 3u);
  EXPECT_EQ(spec->params[0].key, "slots");
  EXPECT_EQ(spec->params[0].value, "4096");
  EXPECT_TRUE(spec->params[0].has_value);
  EXPECT_EQ(spec->params[2].key, "private");
  EXPECT_FALSE(spec->params[2].has_value);

  spec = ParseQueueSpec("pipe");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->scheme, "pipe");
  EXPECT_TRUE(spec->params.empty());

  // Values may hold '=', ':' and '/' (paths, ftok keys).
  spec = ParseQueueSpec("sysv:key=ftok:/etc/hosts:7");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->params[0].value, "ftok:/etc/hosts:7");
}

TEST(QueueSpec, SyntaxErrorsNameTheBadPart) {
  EXPECT_THAT(ParseQueueSpec(""),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "scheme"));
  EXPECT_THAT(ParseQueueSpec(":a=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "scheme"));
  EXPECT_THAT(ParseQueueSpec("Ring"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"Ring\""));
  EXPECT_THAT(ParseQueueSpec("ring:"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "after ':'"));
  EXPECT_THAT(ParseQueueSpec("ring:slots=4,,x=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "empty"));
  EXPECT_THAT(ParseQueueSpec("ring:slots="),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "\"slots\" has no value"));
  EXPECT_THAT(ParseQueueSpec("ring:slots=4,slots=8"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "\"slots\" given twice"));
  EXPECT_THAT(ParseQueueSpec("ring:Slots=4"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"Slots\""));
}

TEST(QueueSpec, TheFactoryNamesUnknownSchemesAndKeys) {
  EXPECT_THAT(OpenQueue("udp:port=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "unknown scheme \"udp\""));
  EXPECT_THAT(OpenQueue("ring:slot=8"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "unknown parameter \"slot\""));
  EXPECT_THAT(OpenQueue("socketpair:x=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "unknown parameter \"x\""));
  EXPECT_THAT(OpenQueue("sysv:kye=0x5eed"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"kye\""));
  EXPECT_THAT(OpenQueue("pipe:max_bytes"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "\"max_bytes\" needs a value"));
}

TEST(QueueSpec, RingMaxDeliveriesReachesTheSegment) {
  absl::StatusOr<std::unique_ptr<Queue>> q =
      OpenQueue("ring:slots=4,max_deliveries=5");
  ASSERT_TRUE(q.ok()) << q.status();
  auto* ring = dynamic_cast<RingQueue*>(q->get());
  ASSERT_NE(ring, nullptr);
  EXPECT_EQ(ring->max_deliveries(), 5u);
  EXPECT_THAT(OpenQueue("ring:max_deliveries=many"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "\"max_deliveries\""));
}

TEST(QueueSpec, BadValuesNameTheKey) {
  EXPECT_THAT(
      OpenQueue("ring:slots=1000"),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "not a power of two"));
  EXPECT_THAT(OpenQueue("ring:slots=abc"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"slots\""));
  EXPECT_THAT(OpenQueue("ring:slots=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "outside"));
  EXPECT_THAT(
      OpenQueue("ring:slot_bytes=-1"),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "\"slot_bytes\""));
  EXPECT_THAT(OpenQueue("sysv:mode=0999"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"mode\""));
  EXPECT_THAT(OpenQueue("sysv:key=banana"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"key\""));
  EXPECT_THAT(OpenQueue("sysv:open=maybe"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "\"open\""));
  EXPECT_THAT(OpenQueue("sysv:private=1"),
              StatusIsWith(absl::StatusCode::kInvalidArgument,
                           "\"private\" is a flag"));
  EXPECT_THAT(OpenQueue("sysv:private,key=0x5eed0001"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenQueue("fifo:role=peer_a"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenQueue("fifo:path=relative/q"),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "absolute"));
}

// Number and key parsers skip surrounding blanks; the spec must not, or
// "sysv:key=0x... " would create a persistent queue under a key the user
// never wrote exactly. Nothing may be created for such a spec.
TEST(QueueSpec, ValuesWithSurroundingWhitespaceAreRefusedAndCreateNothing) {
  const IpcKey key = ::shmkit::testing::UniqueKey();
  const std::string hex = absl::StrFormat("0x%08x", key.value());
  for (const std::string& text :
       {std::string("ring:slots=4 "), std::string("ring:slots= 4"),
        std::string("ring:slots=4\t,slot_bytes=64"),
        absl::StrCat("sysv:key=", hex, " "), absl::StrCat("sysv:key= ", hex),
        absl::StrCat("ring:key=", hex, "\n"),
        std::string("fifo:path=/tmp/q ")}) {
    SCOPED_TRACE(absl::CEscape(text));
    EXPECT_THAT(ParseQueueSpec(text),
                StatusIsWith(absl::StatusCode::kInvalidArgument, "whitespace"));
    EXPECT_THAT(OpenQueue(text),
                StatusIsWith(absl::StatusCode::kInvalidArgument, "whitespace"));
  }
  // Neither a message queue nor a segment exists under the key.
  EXPECT_EQ(msgget(key.value(), 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(shmget(key.value(), 0, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  // Blanks inside a value are the value's business (a path may hold one).
  absl::StatusOr<QueueSpec> spec = ParseQueueSpec("fifo:path=/tmp/a b");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->params[0].value, "/tmp/a b");
}

TEST(QueueSpec, EverySchemeOpensWithItsDefaults) {
  for (const QueueScheme& scheme : QueueSchemes()) {
    absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(scheme.scheme);
    ASSERT_TRUE(q.ok()) << scheme.scheme << ": " << q.status();
    EXPECT_EQ((*q)->Capabilities().backend, scheme.scheme);
    EXPECT_FALSE(scheme.summary.empty());
    EXPECT_TRUE((*q)->Close().ok());
  }
}

TEST(TypeFilter, FromSysVFollowsMsgrcv) {
  EXPECT_TRUE(TypeFilter::FromSysV(0, false)->is_any());
  EXPECT_EQ(TypeFilter::FromSysV(7, false)->kind(), TypeFilter::Kind::kExactly);
  EXPECT_EQ(TypeFilter::FromSysV(-7, false)->kind(), TypeFilter::Kind::kAtMost);
  EXPECT_EQ(TypeFilter::FromSysV(-7, false)->type(), 7);
  EXPECT_EQ(TypeFilter::FromSysV(7, true)->kind(),
            TypeFilter::Kind::kAnyExcept);
  EXPECT_THAT(TypeFilter::FromSysV(0, true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(TypeFilter::AtMost(7).SysVType(), -7);
  EXPECT_TRUE(TypeFilter::AtMost(7).Matches(3));
  EXPECT_FALSE(TypeFilter::AtMost(7).Matches(8));
  EXPECT_TRUE(TypeFilter::AnyExcept(7).Matches(8));
  EXPECT_FALSE(TypeFilter::AnyExcept(7).Matches(7));
}

}  // namespace
}  // namespace shmkit
