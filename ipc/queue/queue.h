// Queue: one interface over shmkit's message transports.
//
//   backend     header               created            between
//   sysv        sysv_queue.h         key or private     any processes
//   pipe        pipe_queue.h         before fork        parent and children
//   fifo        fifo_queue.h         path (or private)  any processes
//   socketpair  socketpair_queue.h   before fork        parent and children
//   ring        ring_queue.h         key or private     any processes
//   unix        stream_queue.h       path or private    any processes
//   tcp         stream_queue.h       host and port      any processes, hosts
//
// OpenQueue() (factory.h) opens any of them from a spec string such as
// "sysv:key=0x5eed" or "ring:slots=4096,slot_bytes=256". unix and tcp are
// connection-based: each sending process has its own connection to the
// listening handle (see QueueCapabilities::shared_channel).
//
// A message is a byte string (empty allowed) with a positive type (the
// System V `long mtype`); every backend carries the type through. Guarantees
// common to every backend:
//   - a message is delivered whole or not at all, and never twice;
//   - messages from one sender (one thread) are received in the order sent;
//   - a peer that has gone away is an error (FailedPrecondition), never a
//     SIGPIPE death;
//   - try-calls on a full (send) or empty (receive) queue are Unavailable;
//     timed calls that run out of time are DeadlineExceeded;
//   - a queue removed under us is FailedPrecondition, never a hang;
//   - a message larger than Capabilities().max_message_bytes is
//     InvalidArgument and nothing is sent; a message larger than the
//     receiver's `max_bytes` is InvalidArgument and stays queued, unless the
//     receiver asks for Truncation::kAllow.
//
// Threads: Send*/Receive*/Stats/Remove may be called from several threads of
// one process at once (Remove wakes the others' blocked calls). Close() and
// SetRole() must not race with other calls on the same handle.
//
// Fork: a handle created before fork() is usable in the parent and every
// child (each uses its own copy). Backends that hold both ends of a channel
// (pipe, fifo, socketpair) let each process declare its role after fork
// (SetRole), which closes the ends it does not use, so that a reader going
// away becomes an error for the writers and the other way round.
#ifndef SHMKIT_IPC_QUEUE_QUEUE_H_
#define SHMKIT_IPC_QUEUE_QUEUE_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shmkit {

// The type Send() uses when none is given.
inline constexpr int64_t kDefaultMessageType = 1;

struct Message {
  int64_t type = kDefaultMessageType;
  std::string data;
  // True when the message was longer than the receiver's max_bytes and the
  // receiver passed Truncation::kAllow: `data` holds its first max_bytes.
  bool truncated = false;
};

// Which message a receive takes, with System V rules (msgrcv(2)):
//   Any()            the first message            (msgtyp 0)
//   Exactly(t)       the first message of type t  (msgtyp t > 0)
//   AtMost(t)        the first message of the lowest type <= t
//                                                  (msgtyp -t < 0)
//   AnyExcept(t)     the first message whose type is not t
//                                                  (msgtyp t with MSG_EXCEPT)
// Types are positive. Backends without typed receive accept Any() only and
// answer every other filter with InvalidArgument (see
// QueueCapabilities::typed_receive).
class TypeFilter {
 public:
  enum class Kind { kAny, kExactly, kAtMost, kAnyExcept };

  constexpr TypeFilter() = default;  // Any()
  static constexpr TypeFilter Any() { return TypeFilter(); }
  static constexpr TypeFilter Exactly(int64_t type) {
    return TypeFilter(Kind::kExactly, type);
  }
  static constexpr TypeFilter AtMost(int64_t type) {
    return TypeFilter(Kind::kAtMost, type);
  }
  static constexpr TypeFilter AnyExcept(int64_t type) {
    return TypeFilter(Kind::kAnyExcept, type);
  }
  // From msgrcv's arguments: msgtyp 0 (any), > 0 (exactly, or any except
  // with `except`), < 0 (at most |msgtyp|). InvalidArgument for `except`
  // with msgtyp <= 0, as msgrcv does.
  static absl::StatusOr<TypeFilter> FromSysV(int64_t msgtyp, bool except);

  constexpr Kind kind() const { return kind_; }
  constexpr int64_t type() const { return type_; }
  constexpr bool is_any() const { return kind_ == Kind::kAny; }
  // InvalidArgument unless the type of a non-Any filter is positive.
  absl::Status Validate() const;
  // Whether a message of `type` is a candidate. For AtMost the lowest
  // candidate wins; this only says whether `type` is <= the bound.
  bool Matches(int64_t type) const;
  // msgrcv's msgtyp and whether MSG_EXCEPT is needed.
  int64_t SysVType() const;
  bool SysVExcept() const { return kind_ == Kind::kAnyExcept; }
  // "any", "type 7", "lowest type <= 7", "any type except 7".
  std::string ToString() const;

 private:
  constexpr TypeFilter(Kind kind, int64_t type) : kind_(kind), type_(type) {}
  Kind kind_ = Kind::kAny;
  int64_t type_ = 0;
};

// What to do with a message longer than the receiver's max_bytes.
enum class Truncation {
  kError,  // InvalidArgument; the message stays queued (the default)
  kAllow,  // take it, keep its first max_bytes, set Message::truncated
};

// How long a call may block when the queue is full (send) or empty
// (receive). Send/TrySend/SendFor and friends pick one for you; the general
// forms SendWith()/ReceiveInto() take it directly.
class WaitMode {
 public:
  enum class Kind { kForever, kNone, kDeadline };

  static WaitMode Forever() { return WaitMode(Kind::kForever, INT64_MAX, {}); }
  // Never blocks: Unavailable instead.
  static WaitMode None() { return WaitMode(Kind::kNone, 0, {}); }
  // Blocks at most `timeout` from now, then DeadlineExceeded.
  // InfiniteDuration() is Forever(); a negative timeout is zero.
  static WaitMode For(absl::Duration timeout);

  Kind kind() const { return kind_; }
  // The deadline on CLOCK_MONOTONIC in nanoseconds (INT64_MAX: none; 0 for
  // None()).
  int64_t deadline_ns() const { return deadline_ns_; }
  // The timeout as given (for error messages).
  absl::Duration timeout() const { return timeout_; }
  // Time left (InfiniteDuration for Forever, zero for None or once expired).
  absl::Duration Remaining() const;
  bool Expired() const;

 private:
  WaitMode(Kind kind, int64_t deadline_ns, absl::Duration timeout)
      : kind_(kind), deadline_ns_(deadline_ns), timeout_(timeout) {}
  Kind kind_;
  int64_t deadline_ns_;
  absl::Duration timeout_;
};

// What a process does with a queue after fork. Backends that hold both ends
// of a channel close the end the role does not use, so a peer that goes away
// becomes visible (EOF for receivers, EPIPE for senders); on the others the
// role only makes this handle refuse the calls it excludes.
enum class QueueRole {
  kSendAndReceive,  // the default: this process may do both
  kSender,          // sends only; the receive end is closed here
  kReceiver,        // receives only; the send end is closed here
  // Bidirectional backends (socketpair): this process is one end of a
  // conversation: it sends to, and receives from, the process that took the
  // other peer role. Other backends: InvalidArgument.
  kPeerA,
  kPeerB,
};
absl::string_view QueueRoleName(QueueRole role);

// How a named queue (a System V key, a FIFO path) is opened.
enum class OpenMode {
  kCreateOrAttach,  // attach if it exists, else create (the default)
  kCreate,          // create; AlreadyExists if it exists
  kAttach,          // attach; NotFound if it does not exist
};
absl::string_view OpenModeName(OpenMode mode);

// What a backend can do, for this handle. Read at run time (kernel limits,
// socket buffer sizes), never hard-coded.
struct QueueCapabilities {
  // "sysv", "pipe", "fifo", "socketpair", "ring", "unix", "tcp"
  std::string backend;
  // Largest message Send() accepts, in bytes.
  size_t max_message_bytes = 0;
  bool typed_receive = false;  // TypeFilter other than Any()
  bool bidirectional = false;  // QueueRole::kPeerA / kPeerB
  bool attachable = false;     // unrelated processes can open it by name
  bool pollable_fd = false;    // ReceiveFd() / SendFd() are valid
  // Every message passes through one channel that all processes share:
  // any receiving process may take any message, and a message sent after
  // another one was sent (by any process) is received after it. False for
  // the connection-based backends (unix, tcp): each sending process has its
  // own connection, read only by the process that accepted it, and there is
  // no order between connections.
  bool shared_channel = true;
};

struct QueueStats {
  std::string backend;
  // Queued right now, when the backend can tell.
  std::optional<uint64_t> messages;
  std::optional<uint64_t> bytes;
  // How much the queue holds, when bounded by messages or bytes.
  std::optional<uint64_t> capacity_messages;
  std::optional<uint64_t> capacity_bytes;
  // sysv (IPC_STAT): the last processes to send and to receive, and when.
  pid_t last_sender_pid = 0;
  pid_t last_receiver_pid = 0;
  absl::Time last_send = absl::InfinitePast();
  absl::Time last_receive = absl::InfinitePast();
  // Counted by this handle in this process. Exact when one thread at a
  // time uses the handle; threads calling it at once may lose increments
  // (the counters stay off the fast path's locked instructions).
  uint64_t sent = 0;
  uint64_t received = 0;
  // ring: reservations of producers that died between reserving a slot and
  // publishing it, reclaimed by consumers (every process, since creation).
  uint64_t reclaimed_slots = 0;
  // ring: messages dropped because their slot was found corrupt (a length
  // above slot_bytes), every process. A message claimed by a consumer that
  // died before releasing it is not lost but redelivered (below).
  uint64_t abandoned_messages = 0;
  // ring: messages delivered again because the consumer that had claimed
  // them died before releasing them (every process, since creation).
  uint64_t redelivered_messages = 0;
  // ring: messages dropped because max_deliveries consumers had claimed
  // them already (each died holding it), every process, since creation.
  uint64_t poisoned_messages = 0;
  // unix, tcp (this handle, this process): connections open now (accepted
  // ones on a listening handle; 0 or 1 on a connecting one); connections
  // dropped because the peer broke the wire format (a frame longer than
  // max_message_bytes, a bad magic or type), and why the last one was;
  // partial frames discarded because their sender's connection ended in
  // the middle of one (a sender killed mid-frame).
  uint64_t connections = 0;
  uint64_t dropped_connections = 0;
  std::string last_drop_reason;
  uint64_t partial_frames_discarded = 0;
};

class Queue {
 public:
  virtual ~Queue() = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // ---- sending --------------------------------------------------------
  // Errors common to every send: InvalidArgument (type <= 0, message larger
  // than max_message_bytes; nothing is sent), FailedPrecondition (closed,
  // removed, every receiver gone, role excludes sending).

  // Blocks while the queue is full.
  [[nodiscard]] absl::Status Send(absl::string_view bytes,
                                  int64_t type = kDefaultMessageType) {
    return SendWith(bytes, type, WaitMode::Forever());
  }
  // Unavailable when the queue is full.
  [[nodiscard]] absl::Status TrySend(absl::string_view bytes,
                                     int64_t type = kDefaultMessageType) {
    return SendWith(bytes, type, WaitMode::None());
  }
  // DeadlineExceeded when the queue stays full for `timeout`.
  [[nodiscard]] absl::Status SendFor(absl::string_view bytes,
                                     absl::Duration timeout,
                                     int64_t type = kDefaultMessageType) {
    return SendWith(bytes, type, WaitMode::For(timeout));
  }
  // The general form.
  [[nodiscard]] absl::Status SendWith(absl::string_view bytes, int64_t type,
                                      WaitMode wait);

  // ---- receiving ------------------------------------------------------
  // `max_bytes` is the largest message the caller takes; a longer one is
  // InvalidArgument and stays queued, unless `truncation` is kAllow.
  // Errors common to every receive: InvalidArgument (filter not supported
  // or with a type <= 0; message too long), FailedPrecondition (closed,
  // removed, every sender gone and nothing queued, role excludes
  // receiving), DataLoss (a stream backend lost its framing because a peer
  // died in the middle of a frame; see pipe_queue.h).

  // Blocks while no matching message is queued.
  absl::StatusOr<Message> Receive(size_t max_bytes,
                                  TypeFilter filter = TypeFilter::Any(),
                                  Truncation truncation = Truncation::kError) {
    return ReceiveMessage(max_bytes, WaitMode::Forever(), filter, truncation);
  }
  // Unavailable when no matching message is queued.
  absl::StatusOr<Message> TryReceive(
      size_t max_bytes, TypeFilter filter = TypeFilter::Any(),
      Truncation truncation = Truncation::kError) {
    return ReceiveMessage(max_bytes, WaitMode::None(), filter, truncation);
  }
  // DeadlineExceeded when no matching message comes within `timeout`.
  absl::StatusOr<Message> ReceiveFor(
      size_t max_bytes, absl::Duration timeout,
      TypeFilter filter = TypeFilter::Any(),
      Truncation truncation = Truncation::kError) {
    return ReceiveMessage(max_bytes, WaitMode::For(timeout), filter,
                          truncation);
  }
  // The general form, into `out` (whose buffer is reused: no allocation
  // once it has grown). On error `out` is unspecified.
  [[nodiscard]] absl::Status ReceiveInto(
      Message& out, size_t max_bytes, WaitMode wait,
      TypeFilter filter = TypeFilter::Any(),
      Truncation truncation = Truncation::kError);

  // ---- lifetime -------------------------------------------------------

  // Declares what this process does with the queue (see QueueRole).
  // InvalidArgument for a role the backend does not have (peer roles on a
  // one-way backend); FailedPrecondition when an end the role needs was
  // already closed here.
  [[nodiscard]] absl::Status SetRole(QueueRole role);
  QueueRole role() const { return role_; }

  // Releases this handle: closes its descriptors, detaches. When this
  // process created an anonymous object (sysv private queue, private FIFO,
  // private ring), Close() also destroys it for every process, as Remove()
  // does. Later calls on this handle are FailedPrecondition. Idempotent.
  [[nodiscard]] absl::Status Close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // Destroys the queue for every process that has it: their blocked and
  // later calls return FailedPrecondition. sysv: IPC_RMID; ring, pipe, fifo:
  // a "removed" mark in the shared segment (and the key or path is freed);
  // socketpair: shutdown() of both sockets.
  // FailedPrecondition after Close().
  [[nodiscard]] absl::Status Remove();

  // FailedPrecondition after Close().
  absl::StatusOr<QueueStats> Stats() const;
  const QueueCapabilities& Capabilities() const { return capabilities_; }

  // Descriptors for poll()/epoll, or -1 (see Capabilities().pollable_fd and
  // the backend's header for what readiness means).
  virtual int ReceiveFd() const { return -1; }
  virtual int SendFd() const { return -1; }

 protected:
  explicit Queue(QueueCapabilities capabilities)
      : capabilities_(std::move(capabilities)) {}

  // Backends implement each direction once, for every wait mode. The
  // wrappers have already checked: open, role, type > 0, size <=
  // max_message_bytes, filter supported and valid.
  virtual absl::Status SendImpl(absl::string_view bytes, int64_t type,
                                const WaitMode& wait) = 0;
  virtual absl::Status ReceiveImpl(Message& out, size_t max_bytes,
                                   TypeFilter filter, Truncation truncation,
                                   const WaitMode& wait) = 0;
  // Closes the ends `role` does not use. Called by SetRole after checks.
  virtual absl::Status ApplyRole(QueueRole role) {
    (void)role;
    return absl::OkStatus();
  }
  // Releases resources (and destroys anonymous objects this process
  // created). Called once, by Close().
  virtual absl::Status CloseImpl() = 0;
  virtual absl::Status RemoveImpl() = 0;
  // Fills what the backend knows; `backend`, `sent` and `received` are
  // filled by Stats().
  virtual absl::StatusOr<QueueStats> StatsImpl() const = 0;
  // A message of `size` bytes exceeds the cached max_message_bytes. Return
  // OK if it fits after all (a backend whose limit can grow at run time
  // updates it with set_max_message_bytes), else the InvalidArgument error.
  virtual absl::Status CheckOversize(size_t size);
  void set_max_message_bytes(size_t bytes) {
    capabilities_.max_message_bytes = bytes;
  }
  // For receive calls a backend adds beside ReceiveInto (RingQueue::
  // ReceiveAndProcess): the handle is open and this process receives; and
  // one more message received, for Stats().
  [[nodiscard]] absl::Status CheckReceivable() const;
  void CountReceived();
  // Counters for Stats().
  uint64_t sent_count() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t received_count() const {
    return received_.load(std::memory_order_relaxed);
  }
  // "sysv queue key=0x00005eed id=3" etc., for error messages.
  virtual std::string Describe() const = 0;

 private:
  absl::StatusOr<Message> ReceiveMessage(size_t max_bytes, WaitMode wait,
                                         TypeFilter filter,
                                         Truncation truncation);
  absl::Status ClosedError() const;

  QueueCapabilities capabilities_;
  QueueRole role_ = QueueRole::kSendAndReceive;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> received_{0};
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_QUEUE_H_
