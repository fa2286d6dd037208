// StreamQueue: a message queue over stream sockets, AF_UNIX ("unix") or
// TCP ("tcp"), for unrelated processes and, with tcp, other machines.
//
//   // the receiving side listens:
//   auto q = shmkit::OpenQueue("unix:path=/run/app/q");
//   auto q = shmkit::OpenQueue("tcp:port=0");      // loopback, a free port
//   // senders connect (by name, from any process):
//   auto s = shmkit::OpenQueue("unix:path=/run/app/q,role=connect");
//   auto s = shmkit::OpenQueue(
//       absl::StrCat("tcp:port=", listener->port(), ",role=connect"));
//
// Sides. A handle is one of two sides (spec: role=listen|connect):
//   - listen (the default) binds the address and receives what every
//     connected sender sends: it accepts connections, reads them all
//     (epoll), reassembles frames per connection and delivers whole
//     messages, taking connections with a complete message in turn (round
//     robin). Its process may also send through it (QueueRole
//     kSendAndReceive, the default): the handle then connects to its own
//     address, as any sender does, so one handle is a working queue.
//   - connect only sends (its role is QueueRole::kSender from the start).
//     It connects when opened: a unix path that does not exist is NotFound,
//     an address nobody listens on (connect refused) is Unavailable, and no
//     answer within connect_timeout is Unavailable too.
//
// Addresses. unix: an absolute path (spec: path=/run/app/q), or "@name" for
// Linux's abstract namespace; without a path a listener takes a fresh
// abstract name (path() tells it). A path fits sockaddr_un::sun_path: at
// most MaxUnixPathBytes() (107) bytes. tcp: host (a numeric address or a
// name; default 127.0.0.1) and port; port 0 makes a listener take a free
// port, which port(), ToString() and ConnectSpec() report.
//
// Wire format (internal/stream_frame.h): each message is a 16-byte
// little-endian header (magic "SSF1", length, type) and the payload; the
// listener writes back only 16-byte credit reports, when asked.
//
// Flow control. A sender keeps at most `window_bytes` (spec: window;
// default 256 KiB, headers included) on its connection that the listener's
// application has not taken yet; one message larger than that goes alone.
// When the window is spent, the sender puts a credit query in the stream
// and waits (or, for TrySend, returns Unavailable); the listener answers
// when it reaches the query in a receive call, having taken everything
// before it. So "full" means the listener has not taken `window_bytes` of
// this sender's messages, and it stays full until the listener receives
// (kernel buffers alone would not do: TCP keeps moving bytes and widening
// windows on its own for a while), unless the kernel's buffers fill up
// first (many tiny unix messages). The listener writes only such answers,
// and only to a sender that asked and wrote nothing since, so a tcp sender
// that exits with an answer unread (which resets the connection) loses
// nothing.
//
// Guarantees (queue.h) and how they are kept:
//   - Whole or not at all, never twice: a connection is read by exactly one
//     process, which delivers a frame only once it holds all of it. A
//     sender that dies, or closes, in the middle of a frame leaves a partial
//     frame that the listener discards at end of file (counted in
//     QueueStats::partial_frames_discarded); the other connections go on.
//   - Per-sender order: a sender's frames go through one connection, in
//     order; frames of the threads of one process never interleave (a
//     mutex), and a forked child never writes on its parent's connection
//     (below). There is NO order between different senders: a message sent
//     after another process's message may be received first
//     (QueueCapabilities::shared_channel is false).
//   - Peer gone: sends use MSG_NOSIGNAL (never SIGPIPE); a listener that
//     went away (closed, removed) is FailedPrecondition for the sender; the
//     next send after that tries a new connection, which is again
//     FailedPrecondition while nobody listens. tcp: a sender reads what the
//     listener wrote (reports, or its end of file) before each message; a
//     message the kernel accepted just before the listener closed is lost
//     with it, as messages queued in any removed queue are.
//   - A listener in role kReceiver whose senders have all gone (it had
//     connections, none is open or waiting) gets FailedPrecondition, like a
//     FIFO reader at end of file, until a new sender connects. In the
//     default role it waits instead: its own process may still send.
//   - Full and empty: TrySend on a full connection (above) is Unavailable,
//     SendFor DeadlineExceeded, and nothing was written. A send that has
//     written part of its frame has committed it: if the socket filled up in
//     the middle, the rest is kept in this handle and written before anything
//     else by the next call on the handle (send or receive, any thread), while
//     Send waits until the frame is out and TrySend/SendFor return OK. Close()
//     waits up to close_linger for such a rest, then returns DataLoss (the
//     listener discards the partial frame). A process that exits without
//     Close() loses it the same way.
//   - max_message_bytes comes from the options (spec: max_bytes): a sender
//     refuses a larger message (InvalidArgument, nothing sent); a listener
//     that reads a header announcing more than its own max_bytes (a hostile
//     or misconfigured peer), a bad magic or a type <= 0 drops that
//     connection only, never allocating more than one max-sized frame per
//     connection, and counts it in QueueStats (dropped_connections,
//     last_drop_reason). Give both sides the same max_bytes (ConnectSpec()
//     carries the listener's).
//   - Typed receive is not supported (Any() only: InvalidArgument).
//   - Remove() in a listening process shuts the listening socket and the
//     connections it accepted down (senders then fail), unlinks the unix
//     socket file (if it is still the one this handle bound), and wakes
//     this handle's blocked calls in every thread (an eventfd). Listening
//     processes that share the socket (fork, below) notice the shutdown and
//     fail their calls too. On a connect handle, Remove() ends this
//     handle's connection and wakes its blocked calls; the listener, which
//     belongs to another process, is not touched.
//
// Fork. Every descriptor is close-on-exec. Connections are per process:
//   - a handle that sends, in a child, notices it is in a new process
//     (internal::ForkEpoch()) at its first call, closes its copy of the
//     parent's connection (without shutdown) and opens its own; bytes of
//     two processes never share a connection. The rest of a frame the
//     parent had pending stays the parent's.
//   - a listening handle inherited by a child shares the listening socket:
//     the child may receive too, from the connections it accepts itself
//     (every process that receives competes in accept(); each connection is
//     read by the one process that accepted it). Connections the parent had
//     accepted stay the parent's (the child closes its copies, without
//     shutdown). SetRole(kSender) in a child closes its copy of the
//     listening socket and leaves the others listening.
//   - fork() while another thread is inside a call on the handle is not
//     supported.
//   - A child that holds a copy of a connection and never calls the handle
//     keeps that connection open until it exits (Linux has no close-on-fork).
//
// Lifetime. A named unix path persists until Remove(); Close() leaves the
// socket file, which the next listener on that path replaces when nobody
// listens on it (stale). A listener without a path (a private abstract
// name) is destroyed, as by Remove(), when its creating process Close()s
// it; an abstract name vanishes with the last descriptor. tcp: Close()
// closes this process's descriptors; the port is free once every process
// has closed its copy.
//
// Threads: as queue.h says. Sends of several threads of one process share
// the process's connection; receives share the accepted connections.
#ifndef SHMKIT_IPC_QUEUE_STREAM_QUEUE_H_
#define SHMKIT_IPC_QUEUE_STREAM_QUEUE_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"

namespace shmkit {

namespace internal {
class StreamQueueCore;
struct StreamEndpoint;
}  // namespace internal

enum class StreamSide {
  kListen,   // binds the address, receives (and may send to itself)
  kConnect,  // connects to a listener, sends only
};

struct StreamQueueOptions {
  StreamSide side = StreamSide::kListen;  // spec: role=listen|connect
  // The largest message, in bytes (spec: max_bytes), 1 .. 1 GiB. A
  // listener buffers at most one frame of this size per connection.
  size_t max_message_bytes = size_t{1} << 20;
  // listen: connections the kernel keeps waiting for accept() (spec:
  // backlog); more than net.core.somaxconn is refused (listen() would lower
  // it silently).
  int backlog = 128;
  // listen on a unix filesystem path: the socket file's permission bits
  // (spec: mode). Whoever may write the file may connect.
  mode_t mode = 0600;
  // Sending: the bytes of messages (with their 16-byte headers) this
  // handle may have on its connection that the listener has not taken
  // (spec: window), 1 KiB .. 1 GiB. See "Flow control".
  size_t window_bytes = size_t{256} << 10;
  // connect: how long opening waits for the connection (spec: connect_ms).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Close(): how long it waits to write the rest of a message that a
  // TrySend/SendFor left pending (spec: linger_ms).
  absl::Duration close_linger = absl::Seconds(1);
};

class StreamQueue final : public Queue {
 public:
  // AF_UNIX. `path` is absolute, "@name" (abstract), or empty to listen on
  // a fresh private abstract name (connect needs a path). InvalidArgument
  // for a bad path or option; AlreadyExists when a live listener, or a file
  // that is not a socket, has the path; for connect see above.
  static absl::StatusOr<std::unique_ptr<StreamQueue>> OpenUnix(
      absl::string_view path, const StreamQueueOptions& options = {});
  // TCP to or on `host`:`port` (connect needs a port other than 0).
  // AlreadyExists when the address is in use.
  static absl::StatusOr<std::unique_ptr<StreamQueue>> OpenTcp(
      absl::string_view host, uint16_t port,
      const StreamQueueOptions& options = {});
  // Specs:
  //   unix[:path=/abs|@name,role=listen|connect,max_bytes=N,window=N,
  //         backlog=N,mode=0600,connect_ms=N,linger_ms=N]
  //   tcp[:host=H,port=N,role=listen|connect,max_bytes=N,window=N,
  //        backlog=N,connect_ms=N,linger_ms=N]
  // role=connect needs path= (unix) or a port other than 0 (tcp).
  static absl::StatusOr<std::unique_ptr<Queue>> FromSpec(const QueueSpec& spec);

  ~StreamQueue() override;

  StreamSide side() const;
  bool is_tcp() const;
  // unix: the path or "@name" (the chosen one for a private listener).
  const std::string& path() const;
  // tcp: the host as given, and the port (the one bound, for port 0).
  const std::string& host() const;
  uint16_t port() const;
  // "unix /run/app/q (listening)", "tcp 127.0.0.1:40123 (connecting)".
  std::string ToString() const { return Describe(); }
  // The spec another process opens to send here, e.g.
  // "tcp:host=127.0.0.1,port=40123,role=connect,max_bytes=1048576,
  // window=262144".
  std::string ConnectSpec() const;

 protected:
  absl::Status SendImpl(absl::string_view bytes, int64_t type,
                        const WaitMode& wait) override;
  absl::Status ReceiveImpl(Message& out, size_t max_bytes, TypeFilter filter,
                           Truncation truncation,
                           const WaitMode& wait) override;
  absl::Status ApplyRole(QueueRole role) override;
  absl::Status CloseImpl() override;
  absl::Status RemoveImpl() override;
  absl::StatusOr<QueueStats> StatsImpl() const override;
  std::string Describe() const override;

 private:
  explicit StreamQueue(std::unique_ptr<internal::StreamQueueCore> core);
  static absl::StatusOr<std::unique_ptr<StreamQueue>> Open(
      internal::StreamEndpoint endpoint, const StreamQueueOptions& options,
      bool private_name);

  // The sockets, the per-process state and both roles' mechanics
  // (internal/stream_queue_core.h).
  std::unique_ptr<internal::StreamQueueCore> core_;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_STREAM_QUEUE_H_
