// StreamQueueCore: the mechanism of StreamQueue, and its design in brief
// (the contract is in stream_queue.h). Its sending role is in
// stream_sender.cc, its listening role in stream_listener.cc, the per-process
// state and the lifetime in stream_queue_core.cc.
//
// Per handle, per process:
//
//   wake_        eventfd; written once by Remove() (or when another process
//                removed the queue) and never drained, so every wait of
//                every thread includes it and returns
//   send side    (send_mu_) one connection to the listener, its state
//                (none / connecting / connected), `tail_` (the unwritten
//                rest of the last frame committed to it) and the flow
//                control counters (committed, reported taken, last query)
//   listen side  (recv_mu_) the listening socket (shared across fork), an
//                epoll set (listening socket, wake_, every accepted
//                connection, keyed by a never-reused id), the accepted
//                connections with their reassembly buffers and counts of
//                bytes taken, and `ready_`, the ids of connections holding
//                a whole frame, in turn
//
// The state belongs to the process whose ForkEpoch() is in `epoch_`. Every
// entry point checks it; a child rebuilds its own (Rehome): it closes its
// copies of the parent's connections, epoll set and eventfd without
// shutdown() (which would act on the parent's sockets too) and without
// epoll_ctl() (the epoll set is the parent's too), and makes new ones. Only
// the listening socket is kept: it is the one thing processes may share,
// since accept() hands each connection to one of them.
//
// Sending. All descriptors are non-blocking; no thread blocks while holding
// send_mu_. Under the lock a sender (1) connects if needed, (2) writes the
// pending tail, (3) checks the window (committed - reported taken), and
// only then (4) writes its own frame with one sendmsg(header, payload
// [, credit query]). Whatever the kernel did not take becomes the tail.
// Frames thus never interleave, and a frame that has started is finished
// before the next one starts, by whichever call comes next. A caller waits
// (poll) without the lock: for POLLOUT when the kernel is full, for POLLIN
// (a report, or the listener's end of file) when the window is spent, and
// always for the eventfd. It knows its frame is out once `send_written_`
// reaches the frame's end; a connection that breaks meanwhile bumps
// `send_generation_`, so the waiter learns its frame was lost with it.
// Credit queries: one at a time, written only when the window is spent,
// and the last thing written until the report comes back. A listener thus
// writes only to a sender that is waiting for it, and when a sender exits
// with a report unread (tcp then resets the connection, dropping whatever
// the sender had not transmitted yet), the report says the listener took
// everything the sender wrote: nothing is lost.
//
// Receiving. Under recv_mu_ a receiver takes the next whole frame from
// `ready_` (round robin: a connection that still holds a whole frame goes
// to the back). When none is ready it looks at epoll without waiting:
// accepts new connections and reads connections that hold no whole frame
// (at most one frame plus 64 KiB each), checking each header as soon as it
// is complete, so that a length above max_message_bytes drops the
// connection before anything is allocated for it. A credit query at the
// head of a buffer is answered at once (everything before it was taken).
// Then it waits in epoll_wait without the lock and handles what that
// returns under the lock again; ids of connections closed meanwhile are
// ignored. A receive in a process whose own send left a tail writes that
// tail first (this very process may be the one that has to read it).
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_STREAM_QUEUE_CORE_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_STREAM_QUEUE_CORE_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/queue/internal/stream_endpoint.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/stream_queue.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::internal {

// The smallest window: room for a few headers besides the message.
inline constexpr uint64_t kMinStreamWindowBytes = 1024;

// connect() errors that mean nobody is there to talk to.
inline bool NobodyListens(int err) {
  return err == ENOENT || err == ECONNREFUSED || err == ECONNRESET ||
         err == ECONNABORTED || err == ETIMEDOUT || err == EHOSTUNREACH ||
         err == ENETUNREACH || err == EPIPE || err == ENOTCONN;
}

class StreamQueueCore {
 public:
  StreamQueueCore(StreamEndpoint endpoint, const StreamQueueOptions& options,
                  bool private_name);
  StreamQueueCore(const StreamQueueCore&) = delete;
  StreamQueueCore& operator=(const StreamQueueCore&) = delete;

  // What StreamQueue's overrides do (see queue.h for each contract).
  absl::Status Send(absl::string_view bytes, int64_t type,
                    const WaitMode& wait);
  // `role` is the handle's current role (a receiver with no sender left
  // fails instead of waiting).
  absl::Status Receive(Message& out, size_t max_bytes, Truncation truncation,
                       const WaitMode& wait, QueueRole role);
  absl::Status ApplyRole(QueueRole role);
  absl::Status Remove();
  absl::Status Close();
  absl::StatusOr<QueueStats> Stats() const;

  const StreamEndpoint& endpoint() const { return endpoint_; }
  const StreamQueueOptions& options() const { return options_; }
  StreamSide side() const { return side_; }
  bool is_tcp() const { return endpoint_.transport == StreamTransport::kTcp; }
  const std::string& Describe() const { return description_; }
  std::string ConnectSpec() const;

 private:
  // StreamQueue::Open sets up the listening socket and the first
  // connection.
  friend class shmkit::StreamQueue;

  // Bytes a receiver reads from one connection at a time beyond the frame
  // it completes: enough to bring many small frames per read().
  static constexpr size_t kReadChunk = 64 * 1024;
  static constexpr int kMaxEvents = 64;
  // Deliveries from `ready_` between two looks at epoll, so connections
  // that became readable meanwhile get their turn.
  static constexpr int kPollEvery = 16;
  // epoll keys besides connection ids (which start at 1).
  static constexpr uint64_t kListenerKey = 0;
  static constexpr uint64_t kWakeKey = UINT64_MAX;
  // A unix listener's backlog was full (connect: EAGAIN): try again after
  // this long; no descriptor tells when there is room.
  static constexpr int kConnectRetryMs = 5;

  // The time left in `wait` for poll()/epoll_wait(): -1 forever, rounded
  // up to whole milliseconds so that a wait never ends before its deadline.
  static int TimeoutMs(const WaitMode& wait);

  // One accepted connection, read by this process only.
  struct Conn {
    uint64_t id = 0;
    UniqueFd fd;
    // Bytes read and not yet delivered: [begin, end) of `buffer`.
    std::vector<unsigned char> buffer;
    size_t begin = 0;
    size_t end = 0;
    // Bytes of the stream taken: frames delivered, queries answered.
    uint64_t consumed = 0;
    bool ready = false;  // in ready_: a whole frame is buffered
  };
  // How a step of a send or connect ended.
  enum class Step { kDone, kWait, kError };

  // ---- per process ----
  // Rebuilds the per-process state after fork (see the .cc's design note).
  absl::Status EnsureProcess();
  absl::Status Rehome();
  absl::Status MakeWakeAndEpoll();
  absl::Status RemovedError() const;
  absl::Status PeerGone(absl::string_view why) const;
  void SignalWake();

  // ---- sending (send_mu_ held) ----
  Step Connect(int& err);
  Step FlushTail(absl::Status& error);
  // Writes a frame; `frame_end` is the stream offset just past it.
  Step WriteFrame(const unsigned char* header, absl::string_view bytes,
                  uint64_t& frame_end, absl::Status& error);
  Step WriteQuery(absl::Status& error);
  Step WriteCommitted(const iovec* iov, int count, size_t total,
                      absl::Status& error);
  // Reads the listener's reports; FailedPrecondition at its end of file.
  absl::Status ReadReports();
  bool HasCredit(uint64_t frame_bytes) const;
  bool QueryOutstanding() const { return query_end_ > credit_consumed_; }
  void BreakConnection();
  // Breaks the connection after `call` failed with `err`: FailedPrecondition
  // when the listener went away.
  absl::Status SendError(int err, absl::string_view call);
  absl::Status FlushForClose();
  // Without the lock: waits for room on `fd` (POLLOUT when `want_out`), a
  // report or end of file (POLLIN), or Remove().
  absl::Status WaitSendable(int fd, bool connect_retry, bool want_out,
                            const WaitMode& wait, bool& peer_event);

  // ---- receiving (recv_mu_ held) ----
  absl::Status AcceptAll();
  void ReadConn(Conn& conn);
  // Answers the credit queries at the head of `conn`'s buffer; false when
  // that dropped the connection.
  bool AnswerQueries(Conn& conn);
  void DropConn(Conn& conn, const std::string& why);
  void ForgetSendConnection();
  void CloseConn(uint64_t id);
  void CloseAllConns(bool shutdown_them);
  void OnListenerGone();

  const StreamEndpoint endpoint_;
  const StreamQueueOptions options_;
  const StreamSide side_;
  const bool private_name_;
  pid_t creator_pid_ = 0;
  dev_t socket_dev_ = 0;  // the unix socket file this handle bound
  ino_t socket_ino_ = 0;
  std::string description_;

  std::atomic<bool> removed_{false};
  // The process whose state below this is (ForkEpoch()).
  std::atomic<uint64_t> epoch_{0};
  // eventfd, readable once the queue is removed: wakes every wait.
  UniqueFd wake_;

  // Sending side of this process.
  mutable std::mutex send_mu_;
  enum class ConnState { kNone, kConnecting, kConnected };
  ConnState send_state_ = ConnState::kNone;  // guarded by send_mu_
  UniqueFd send_fd_;                         // guarded by send_mu_
  // Bumped for every new connection: a waiter whose frame was on an older
  // one knows it broke.
  uint64_t send_generation_ = 0;  // guarded by send_mu_
  // Bytes of the current connection handed to the kernel, and the end of
  // the last frame or query committed to it; their difference is `tail_`.
  uint64_t send_written_ = 0;    // guarded by send_mu_
  uint64_t send_committed_ = 0;  // guarded by send_mu_
  // Flow control: what the listener reported taken, and where the last
  // credit query ends (outstanding while no report has reached it).
  uint64_t credit_consumed_ = 0;  // guarded by send_mu_
  uint64_t query_end_ = 0;        // guarded by send_mu_
  // A report read in part (guarded by send_mu_).
  unsigned char report_[16] = {};
  size_t report_bytes_ = 0;
  std::vector<unsigned char> tail_;  // guarded by send_mu_
  size_t tail_begin_ = 0;            // guarded by send_mu_
  // Whether tail_ holds bytes: lets a receive skip send_mu_ when not.
  std::atomic<bool> tail_pending_{false};
  // Threads polling send_fd_ without the lock: a broken descriptor is kept
  // open (in retired_) until they are gone, so its number is never reused
  // under them.
  int send_waiters_ = 0;           // guarded by send_mu_
  std::vector<UniqueFd> retired_;  // guarded by send_mu_

  // Receiving side of this process.
  UniqueFd listen_fd_;  // shared across fork; -1 when this process does not
                        // listen (connect side, or role kSender)
  mutable std::mutex recv_mu_;
  UniqueFd epoll_;
  // Everything below is guarded by recv_mu_.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::deque<uint64_t> ready_;  // ids, in turn (round robin)
  uint64_t next_conn_id_ = 1;   // epoll key; never reused
  bool ever_connected_ = false;
  int deliveries_since_poll_ = 0;
  uint64_t dropped_connections_ = 0;
  uint64_t partial_frames_discarded_ = 0;
  std::string last_drop_reason_;
};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_STREAM_QUEUE_CORE_H_
