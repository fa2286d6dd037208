// The conformance suite: what queue.h promises, checked against every
// backend. A type-parameterized suite, instantiated over AllBackends by
// conformance_test.cc and over the Redis queue by
// tests/redis/queue_conformance_test.cc (which starts its server). A backend
// traits type gives its spec as `kSpec`, or as `Spec()` when it is only
// known at run time. In-process only; the multi-process checks are in
// queue_fork_test.cc.
#ifndef SHMKIT_TESTS_QUEUE_CONFORMANCE_SUITE_H_
#define SHMKIT_TESTS_QUEUE_CONFORMANCE_SUITE_H_

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/queue.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::Pattern;
using ::shmkit::testing::StatusIs;
using ::testing::Optional;

constexpr size_t kBig = size_t{1} << 30;  // "any size" for max_bytes

// Backends with no ends to close: the receivers' side goes away only with
// the queue itself.
inline bool HasNoEnds(const QueueCapabilities& caps) {
  return caps.backend == "sysv" || caps.backend == "ring" ||
         caps.backend == "redis";
}

template <typename Backend>
std::string SpecOf() {
  if constexpr (requires { Backend::Spec(); }) {
    return Backend::Spec();
  } else {
    return Backend::kSpec;
  }
}

template <typename Backend>
class QueueConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(SpecOf<Backend>());
    ASSERT_TRUE(q.ok()) << q.status();
    queue_ = *std::move(q);
  }
  void TearDown() override {
    if (queue_ != nullptr) {
      EXPECT_TRUE(queue_->Close().ok());
    }
  }

  // Fills the queue with TrySend until Unavailable; returns the count.
  size_t Fill(absl::string_view payload) {
    size_t sent = 0;
    while (sent < 1'000'000) {
      absl::Status st = queue_->TrySend(payload);
      if (absl::IsUnavailable(st)) break;
      EXPECT_TRUE(st.ok()) << st;
      if (!st.ok()) break;
      ++sent;
    }
    return sent;
  }

  std::unique_ptr<Queue> queue_;
};
TYPED_TEST_SUITE_P(QueueConformance);

TYPED_TEST_P(QueueConformance, RoundTripKeepsBytesAndType) {
  Queue& q = *this->queue_;
  const std::string payload("he\0llo\xff", 7);
  ASSERT_TRUE(q.Send(payload, 42).ok());
  absl::StatusOr<Message> m = q.Receive(kBig);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, payload);
  EXPECT_EQ(m->type, 42);
  EXPECT_FALSE(m->truncated);
  // The default type.
  ASSERT_TRUE(q.Send("x").ok());
  m = q.Receive(kBig);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type, kDefaultMessageType);
}

TYPED_TEST_P(QueueConformance, CapabilitiesDescribeTheBackend) {
  const QueueCapabilities& caps = this->queue_->Capabilities();
  EXPECT_EQ(caps.backend, TypeParam::kName);
  EXPECT_GT(caps.max_message_bytes, 0u);
  EXPECT_EQ(caps.typed_receive, caps.backend == "sysv");
  EXPECT_EQ(caps.bidirectional, caps.backend == "socketpair");
  EXPECT_EQ(caps.pollable_fd, this->queue_->ReceiveFd() >= 0);
}

TYPED_TEST_P(QueueConformance, SizesZeroOneMaxAndMaxPlusOne) {
  Queue& q = *this->queue_;
  const size_t max = q.Capabilities().max_message_bytes;
  for (size_t size : {size_t{0}, size_t{1}, max}) {
    const std::string payload = Pattern(size, static_cast<uint32_t>(size));
    // A separate sender: a maximal message may be larger than what the
    // queue buffers (a pipe holds 64 KiB), so it is received while sent.
    absl::Status sent;
    std::thread sender([&] { sent = q.Send(payload, 3); });
    absl::StatusOr<Message> m = q.ReceiveFor(kBig, absl::Seconds(20));
    sender.join();
    ASSERT_TRUE(sent.ok()) << "size " << size << ": " << sent;
    ASSERT_TRUE(m.ok()) << "size " << size << ": " << m.status();
    EXPECT_EQ(m->data.size(), size);
    EXPECT_TRUE(m->data == payload) << "size " << size;
    EXPECT_EQ(m->type, 3);
  }
  // One byte more is refused, and nothing is sent.
  EXPECT_THAT(q.TrySend(std::string(max + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.Send(std::string(max + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

TYPED_TEST_P(QueueConformance, KeepsOrder) {
  Queue& q = *this->queue_;
  constexpr int kCount = 100;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(q.Send(absl::StrCat("message ", i), i + 1).ok()) << i;
  }
  for (int i = 0; i < kCount; ++i) {
    absl::StatusOr<Message> m = q.TryReceive(kBig);
    ASSERT_TRUE(m.ok()) << i << ": " << m.status();
    EXPECT_EQ(m->data, absl::StrCat("message ", i));
    EXPECT_EQ(m->type, i + 1);
  }
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

TYPED_TEST_P(QueueConformance, TryCallsOnFullAndEmptyAreUnavailable) {
  Queue& q = *this->queue_;
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
  const std::string payload(1000, 'f');
  const size_t sent = this->Fill(payload);
  ASSERT_GT(sent, 0u);
  EXPECT_THAT(q.TrySend(payload), StatusIs(absl::StatusCode::kUnavailable));
  // Draining one makes room again (a socket may need a few).
  size_t received = 0;
  absl::Status st;
  do {
    ASSERT_TRUE(q.TryReceive(kBig).ok());
    ++received;
    st = q.TrySend(payload);
  } while (absl::IsUnavailable(st) && received < sent);
  ASSERT_TRUE(st.ok()) << st;
  size_t left = 0;
  while (true) {
    absl::StatusOr<Message> m = q.TryReceive(kBig);
    if (absl::IsUnavailable(m.status())) break;
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, payload);
    ++left;
  }
  EXPECT_EQ(received + left, sent + 1);
}

TYPED_TEST_P(QueueConformance, TimeoutsAreDeadlineExceeded) {
  Queue& q = *this->queue_;
  const absl::Duration timeout = absl::Milliseconds(50);
  absl::Time start = absl::Now();
  EXPECT_THAT(q.ReceiveFor(kBig, timeout),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, timeout);
  EXPECT_LT(took, absl::Seconds(5));

  const std::string payload(1000, 't');
  ASSERT_GT(this->Fill(payload), 0u);
  start = absl::Now();
  EXPECT_THAT(q.SendFor(payload, timeout),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  took = absl::Now() - start;
  EXPECT_GE(took, timeout);
  EXPECT_LT(took, absl::Seconds(5));
  // A zero timeout is a deadline too, not a try.
  EXPECT_THAT(q.SendFor(payload, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TYPED_TEST_P(QueueConformance, TimedReceiveGetsAMessageSentMeanwhile) {
  Queue& q = *this->queue_;
  std::thread sender([&] {
    absl::SleepFor(absl::Milliseconds(30));
    EXPECT_TRUE(q.Send("late", 9).ok());
  });
  absl::StatusOr<Message> m = q.ReceiveFor(kBig, absl::Seconds(10));
  sender.join();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "late");
}

TYPED_TEST_P(QueueConformance, TypedReceiveFollowsSystemVRules) {
  Queue& q = *this->queue_;
  if (!q.Capabilities().typed_receive) {
    ASSERT_TRUE(q.Send("a", 3).ok());
    for (TypeFilter f : {TypeFilter::Exactly(3), TypeFilter::AtMost(3),
                         TypeFilter::AnyExcept(2)}) {
      EXPECT_THAT(q.TryReceive(kBig, f),
                  StatusIs(absl::StatusCode::kInvalidArgument))
          << f.ToString();
    }
    absl::StatusOr<Message> m = q.TryReceive(kBig, TypeFilter::Any());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, "a");
    return;
  }
  for (auto [type, text] :
       std::vector<std::pair<int64_t, std::string>>{{5, "five"},
                                                    {3, "three-a"},
                                                    {9, "nine"},
                                                    {3, "three-b"},
                                                    {1, "one"}}) {
    ASSERT_TRUE(q.Send(text, type).ok());
  }
  auto take = [&](TypeFilter f) -> std::string {
    absl::StatusOr<Message> m = q.TryReceive(kBig, f);
    if (!m.ok()) return m.status().ToString();
    return absl::StrCat(m->type, ":", m->data);
  };
  EXPECT_EQ(take(TypeFilter::Exactly(3)), "3:three-a");
  EXPECT_EQ(take(TypeFilter::AtMost(4)), "1:one");  // lowest type <= 4
  // Left: 5, 9, 3 (in that order).
  EXPECT_EQ(take(TypeFilter::AnyExcept(5)), "9:nine");
  EXPECT_EQ(take(TypeFilter::Any()), "5:five");
  EXPECT_THAT(q.TryReceive(kBig, TypeFilter::Exactly(5)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(take(TypeFilter::AtMost(100)), "3:three-b");
}

TYPED_TEST_P(QueueConformance, BadTypesAreInvalidArgument) {
  Queue& q = *this->queue_;
  EXPECT_THAT(q.Send("x", 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.TrySend("x", -4), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.TryReceive(kBig, TypeFilter::Exactly(0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.TryReceive(kBig, TypeFilter::AtMost(-1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

TYPED_TEST_P(QueueConformance, TooLongForTheCallerStaysQueuedUnlessTruncated) {
  Queue& q = *this->queue_;
  const std::string a = Pattern(100, 1), b = Pattern(5, 2), c = Pattern(100, 3);
  ASSERT_TRUE(q.Send(a, 1).ok());
  ASSERT_TRUE(q.Send(b, 2).ok());
  ASSERT_TRUE(q.Send(c, 3).ok());
  EXPECT_THAT(q.TryReceive(10), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(q.Receive(99), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<Message> m = q.TryReceive(100);  // exactly fits
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, a);
  EXPECT_FALSE(m->truncated);
  m = q.TryReceive(10);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, b);
  m = q.TryReceive(10, TypeFilter::Any(), Truncation::kAllow);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->truncated);
  EXPECT_EQ(m->data, c.substr(0, 10));
  EXPECT_EQ(m->type, 3);
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

TYPED_TEST_P(QueueConformance, ReceiveIntoReusesTheMessage) {
  Queue& q = *this->queue_;
  Message m;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.Send(Pattern(200 - i, i), i + 1).ok());
    ASSERT_TRUE(q.ReceiveInto(m, kBig, WaitMode::Forever()).ok());
    EXPECT_EQ(m.data, Pattern(200 - i, i));
    EXPECT_EQ(m.type, i + 1);
  }
  EXPECT_THAT(q.ReceiveInto(m, kBig, WaitMode::None()),
              StatusIs(absl::StatusCode::kUnavailable));
}

TYPED_TEST_P(QueueConformance, PeerGoneIsAnErrorForTheSender) {
  Queue& q = *this->queue_;
  if (HasNoEnds(q.Capabilities())) {
    // No ends to close: the receivers' side goes away with the queue.
    ASSERT_TRUE(q.Remove().ok());
  } else {
    // This process is the only holder of the receiving end; dropping it
    // leaves the senders alone.
    ASSERT_TRUE(q.SetRole(QueueRole::kSender).ok());
  }
  EXPECT_THAT(q.Send("anyone?"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.TrySend("anyone?"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TYPED_TEST_P(QueueConformance, PeerGoneIsAnErrorForTheReceiver) {
  Queue& q = *this->queue_;
  if (HasNoEnds(q.Capabilities())) {
    ASSERT_TRUE(q.Remove().ok());
    EXPECT_THAT(q.Receive(kBig),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    return;
  }
  // What was sent before the senders went away is still delivered.
  ASSERT_TRUE(q.Send("last words").ok());
  ASSERT_TRUE(q.SetRole(QueueRole::kReceiver).ok());
  absl::StatusOr<Message> m = q.Receive(kBig);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "last words");
  EXPECT_THAT(q.Receive(kBig), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.ReceiveFor(kBig, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TYPED_TEST_P(QueueConformance, RemovedUnderABlockedReceiverIsFailedPrecondition) {
  Queue& q = *this->queue_;
  std::atomic<bool> returned{false};
  std::atomic<pid_t> tid{0};
  absl::Status result;
  std::thread receiver([&] {
    tid = gettid();
    result = q.Receive(kBig).status();
    returned = true;
  });
  while (tid.load() == 0) sched_yield();
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(tid.load()));
  EXPECT_FALSE(returned.load());
  ASSERT_TRUE(q.Remove().ok());
  const absl::Time start = absl::Now();
  while (!returned.load() && absl::Now() - start < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(returned.load()) << "Receive still blocked after Remove()";
  receiver.join();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.TrySend("x"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TYPED_TEST_P(QueueConformance, RemovedUnderABlockedSenderIsFailedPrecondition) {
  Queue& q = *this->queue_;
  const std::string payload(1000, 'r');
  ASSERT_GT(this->Fill(payload), 0u);
  std::atomic<bool> returned{false};
  std::atomic<pid_t> tid{0};
  absl::Status result;
  std::thread sender([&] {
    tid = gettid();
    result = q.Send(payload);
    returned = true;
  });
  while (tid.load() == 0) sched_yield();
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(tid.load()));
  EXPECT_FALSE(returned.load());
  ASSERT_TRUE(q.Remove().ok());
  const absl::Time start = absl::Now();
  while (!returned.load() && absl::Now() - start < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(returned.load()) << "Send still blocked after Remove()";
  sender.join();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kFailedPrecondition));
}

TYPED_TEST_P(QueueConformance, CloseEndsTheHandle) {
  Queue& q = *this->queue_;
  ASSERT_TRUE(q.Send("pending").ok());
  ASSERT_TRUE(q.Close().ok());
  EXPECT_TRUE(q.closed());
  EXPECT_THAT(q.Send("x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.TryReceive(kBig),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.Stats(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.SetRole(QueueRole::kSender),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(q.ReceiveFd(), -1);
  EXPECT_EQ(q.SendFd(), -1);
  EXPECT_TRUE(q.Close().ok());  // idempotent
}

TYPED_TEST_P(QueueConformance, RolesRestrictTheHandle) {
  Queue& q = *this->queue_;
  if (!q.Capabilities().bidirectional) {
    EXPECT_THAT(q.SetRole(QueueRole::kPeerA),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
  ASSERT_TRUE(q.SetRole(QueueRole::kSender).ok());
  EXPECT_TRUE(q.SetRole(QueueRole::kSender).ok());  // same role again
  EXPECT_THAT(q.SetRole(QueueRole::kReceiver),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(q.TryReceive(kBig),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(q.role(), QueueRole::kSender);
}

TYPED_TEST_P(QueueConformance, StatsCountThisHandle) {
  Queue& q = *this->queue_;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.Send("s").ok());
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->backend, TypeParam::kName);
  EXPECT_EQ(stats->sent, 3u);
  EXPECT_EQ(stats->received, 0u);
  if (stats->messages.has_value()) {
    EXPECT_EQ(*stats->messages, 3u);
  }
  ASSERT_TRUE(q.Receive(kBig).ok());
  stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->received, 1u);
  if (stats->messages.has_value()) {
    EXPECT_EQ(*stats->messages, 2u);
  }
}

TYPED_TEST_P(QueueConformance, ManyThreadsLoseAndDuplicateNothing) {
  Queue& q = *this->queue_;
  constexpr int kThreads = 3;
  constexpr int kEach = 2000;
  std::vector<std::thread> threads;
  std::vector<std::vector<int>> seen(kThreads);
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!q.Send(absl::StrCat(i), t + 1).ok()) ++errors;
      }
    });
  }
  std::vector<int> last(kThreads, -1);
  for (int n = 0; n < kThreads * kEach; ++n) {
    absl::StatusOr<Message> m = q.ReceiveFor(kBig, absl::Seconds(20));
    ASSERT_TRUE(m.ok()) << m.status();
    const int t = static_cast<int>(m->type) - 1;
    ASSERT_TRUE(t >= 0 && t < kThreads);
    int i = -1;
    ASSERT_TRUE(absl::SimpleAtoi(m->data, &i));
    EXPECT_EQ(i, last[t] + 1) << "thread " << t << " out of order";
    last[t] = i;
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

REGISTER_TYPED_TEST_SUITE_P(QueueConformance,
                            RoundTripKeepsBytesAndType,
                            CapabilitiesDescribeTheBackend,
                            SizesZeroOneMaxAndMaxPlusOne,
                            KeepsOrder,
                            TryCallsOnFullAndEmptyAreUnavailable,
                            TimeoutsAreDeadlineExceeded,
                            TimedReceiveGetsAMessageSentMeanwhile,
                            TypedReceiveFollowsSystemVRules,
                            BadTypesAreInvalidArgument,
                            TooLongForTheCallerStaysQueuedUnlessTruncated,
                            ReceiveIntoReusesTheMessage,
                            PeerGoneIsAnErrorForTheSender,
                            PeerGoneIsAnErrorForTheReceiver,
                            RemovedUnderABlockedReceiverIsFailedPrecondition,
                            RemovedUnderABlockedSenderIsFailedPrecondition,
                            CloseEndsTheHandle,
                            RolesRestrictTheHandle,
                            StatsCountThisHandle,
                            ManyThreadsLoseAndDuplicateNothing);

}  // namespace
}  // namespace shmkit

#endif  // SHMKIT_TESTS_QUEUE_CONFORMANCE_SUITE_H_
