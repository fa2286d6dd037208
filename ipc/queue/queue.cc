#include "shmkit/ipc/queue/queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/deadline.h"

namespace shmkit {

absl::StatusOr<TypeFilter> TypeFilter::FromSysV(int64_t msgtyp, bool except) {
  if (except) {
    if (msgtyp <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MSG_EXCEPT needs a positive message type, got ", msgtyp));
    }
    return AnyExcept(msgtyp);
  }
  if (msgtyp == 0) return Any();
  if (msgtyp > 0) return Exactly(msgtyp);
  if (msgtyp == INT64_MIN) {
    return absl::InvalidArgumentError(
        "msgtyp INT64_MIN has no positive counterpart");
  }
  return AtMost(-msgtyp);
}

absl::Status TypeFilter::Validate() const {
  if (kind_ == Kind::kAny || type_ > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "type filter \"", ToString(), "\" needs a positive message type"));
}

bool TypeFilter::Matches(int64_t type) const {
  switch (kind_) {
    case Kind::kAny:
      return true;
    case Kind::kExactly:
      return type == type_;
    case Kind::kAtMost:
      return type <= type_;
    case Kind::kAnyExcept:
      return type != type_;
  }
  return false;
}

int64_t TypeFilter::SysVType() const {
  switch (kind_) {
    case Kind::kAny:
      return 0;
    case Kind::kExactly:
    case Kind::kAnyExcept:
      return type_;
    case Kind::kAtMost:
      return -type_;
  }
  return 0;
}

std::string TypeFilter::ToString() const {
  switch (kind_) {
    case Kind::kAny:
      return "any";
    case Kind::kExactly:
      return absl::StrCat("type ", type_);
    case Kind::kAtMost:
      return absl::StrCat("lowest type <= ", type_);
    case Kind::kAnyExcept:
      return absl::StrCat("any type except ", type_);
  }
  return "?";
}

WaitMode WaitMode::For(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return Forever();
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  return WaitMode(Kind::kDeadline, internal::Deadline::In(timeout).at_ns(),
                  timeout);
}

absl::Duration WaitMode::Remaining() const {
  switch (kind_) {
    case Kind::kForever:
      return absl::InfiniteDuration();
    case Kind::kNone:
      return absl::ZeroDuration();
    case Kind::kDeadline: {
      const int64_t left = deadline_ns_ - internal::MonotonicNanos();
      return left <= 0 ? absl::ZeroDuration() : absl::Nanoseconds(left);
    }
  }
  return absl::ZeroDuration();
}

bool WaitMode::Expired() const {
  switch (kind_) {
    case Kind::kForever:
      return false;
    case Kind::kNone:
      return true;
    case Kind::kDeadline:
      return internal::MonotonicNanos() >= deadline_ns_;
  }
  return true;
}

absl::string_view QueueRoleName(QueueRole role) {
  switch (role) {
    case QueueRole::kSendAndReceive:
      return "send-and-receive";
    case QueueRole::kSender:
      return "sender";
    case QueueRole::kReceiver:
      return "receiver";
    case QueueRole::kPeerA:
      return "peer-a";
    case QueueRole::kPeerB:
      return "peer-b";
  }
  return "unknown";
}

absl::string_view OpenModeName(OpenMode mode) {
  switch (mode) {
    case OpenMode::kCreateOrAttach:
      return "auto";
    case OpenMode::kCreate:
      return "create";
    case OpenMode::kAttach:
      return "attach";
  }
  return "unknown";
}

namespace {

bool RoleSends(QueueRole role) { return role != QueueRole::kReceiver; }

// A per-handle statistics counter. A load and a store rather than a locked
// fetch_add, which costs about 5% of a ring send or receive: exact for a
// handle used by one thread at a time; threads racing on one handle may
// lose increments (QueueStats says so).
void Bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
}
bool RoleReceives(QueueRole role) { return role != QueueRole::kSender; }

}  // namespace

absl::Status Queue::ClosedError() const {
  return absl::FailedPreconditionError(
      absl::StrCat(Describe(), " is closed in this process"));
}

absl::Status Queue::CheckOversize(size_t size) {
  return absl::InvalidArgumentError(absl::StrCat(
      "message of ", size, " bytes is larger than the largest ",
      capabilities_.max_message_bytes, " bytes ", Describe(),
      " accepts (Capabilities().max_message_bytes); nothing was sent"));
}

absl::Status Queue::SendWith(absl::string_view bytes, int64_t type,
                             WaitMode wait) {
  if (closed()) return ClosedError();
  if (!RoleSends(role_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("this process declared itself ", QueueRoleName(role_),
                     " of ", Describe(), ": it does not send"));
  }
  if (type <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message type ", type, " is not positive (System V types are > 0)"));
  }
  if (bytes.size() > capabilities_.max_message_bytes) {
    if (absl::Status st = CheckOversize(bytes.size()); !st.ok()) return st;
  }
  absl::Status st = SendImpl(bytes, type, wait);
  if (st.ok()) Bump(sent_);
  return st;
}

absl::Status Queue::ReceiveInto(Message& out, size_t max_bytes, WaitMode wait,
                                TypeFilter filter, Truncation truncation) {
  if (absl::Status st = CheckReceivable(); !st.ok()) return st;
  if (absl::Status st = filter.Validate(); !st.ok()) return st;
  if (!filter.is_any() && !capabilities_.typed_receive) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), " has no typed receive (type filter \"",
                     filter.ToString(), "\"); use TypeFilter::Any()"));
  }
  out.truncated = false;
  absl::Status st = ReceiveImpl(out, max_bytes, filter, truncation, wait);
  if (st.ok()) Bump(received_);
  return st;
}

absl::Status Queue::CheckReceivable() const {
  if (closed()) return ClosedError();
  if (!RoleReceives(role_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("this process declared itself ", QueueRoleName(role_),
                     " of ", Describe(), ": it does not receive"));
  }
  return absl::OkStatus();
}

void Queue::CountReceived() { Bump(received_); }

absl::StatusOr<Message> Queue::ReceiveMessage(size_t max_bytes, WaitMode wait,
                                              TypeFilter filter,
                                              Truncation truncation) {
  Message message;
  absl::Status st = ReceiveInto(message, max_bytes, wait, filter, truncation);
  if (!st.ok()) return st;
  return message;
}

absl::Status Queue::SetRole(QueueRole role) {
  if (closed()) return ClosedError();
  if ((role == QueueRole::kPeerA || role == QueueRole::kPeerB) &&
      !capabilities_.bidirectional) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(), " is one-way: role ", QueueRoleName(role),
                     " needs a bidirectional backend (socketpair)"));
  }
  if (role == role_) return absl::OkStatus();
  if (role_ != QueueRole::kSendAndReceive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this process already declared itself ", QueueRoleName(role_), " of ",
        Describe(), "; the ends it closed cannot be reopened"));
  }
  if (absl::Status st = ApplyRole(role); !st.ok()) return st;
  role_ = role;
  return absl::OkStatus();
}

absl::Status Queue::Remove() {
  if (closed()) return ClosedError();
  return RemoveImpl();
}

absl::StatusOr<QueueStats> Queue::Stats() const {
  if (closed()) return ClosedError();
  absl::StatusOr<QueueStats> stats = StatsImpl();
  if (!stats.ok()) return stats;
  stats->backend = capabilities_.backend;
  stats->sent = sent_count();
  stats->received = received_count();
  return stats;
}

absl::Status Queue::Close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) {
    return absl::OkStatus();
  }
  return CloseImpl();
}

}  // namespace shmkit
