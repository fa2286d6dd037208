// queue:<spec>: producers send, consumers receive, through one queue.
//
// Workers: max(1, N/2) producers and max(1, N - producers) consumers (so
// --workers 1 still runs two processes). An op is one message delivered:
// ops/s counts messages received; ns/op is (producers + consumers) x
// elapsed / messages. Latency is timed per call on both sides: "send" on
// the producers, "recv" on the consumers.
//
// End of a run: each producer stops (its share of --ops sent, or the stop
// signal), then bumps a shared "producers done" word; the last producer to
// finish sends one end marker (type 2, empty) per consumer. Every backend
// is FIFO, so the markers come after every data message, and each consumer
// leaves at its first marker. A consumer's end time is its marker's
// arrival, so the run's elapsed time overstates the last data message by
// one message's latency at most.
//
// Baselines, in the same run: the raw system calls of the same transport
// (sysv: msgsnd/msgrcv; pipe and fifo: write/read of fixed-size frames of at
// most PIPE_BUF bytes; socketpair: send/recv on SOCK_SEQPACKET). The ring
// has no system-call equivalent; its baseline is the raw pipe, the cheapest
// transport a ring replaces.
//
// Raw baseline objects are removed at the end of their run; a raw System V
// queue would outlive a harness killed in the middle (shmkit's own private
// queues have an orphan reaper; the raw baseline deliberately has nothing).
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/ipc/unique_fd.h"
#include "tools/shmkit/bench/bench_common.h"
#include "tools/shmkit/bench/raw_redis.h"
#include "tools/shmkit/bench/table_shape.h"
#include "tools/shmkit/bench/workload.h"

#if __has_include("shmkit/ipc/queue/factory.h")
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"
#define SHMKIT_BENCH_HAVE_QUEUES 1
#endif

namespace shmkit::cli::bench {

#if defined(SHMKIT_BENCH_HAVE_QUEUES)

bool QueuesAvailable() { return true; }

namespace {

using shmkit::internal::ErrnoStatus;
using shmkit::internal::RetryOnEintr;

constexpr int64_t kDataType = 1;
constexpr int64_t kMarkerType = 2;

struct Roles {
  int producers = 1;
  int consumers = 1;
};

Roles RolesFor(int workers) {
  Roles r;
  r.producers = std::max(1, workers / 2);
  r.consumers = std::max(1, workers - r.producers);
  return r;
}

// This producer's share of the run's messages (0 in duration mode).
uint64_t ProducerShare(const WorkerContext& ctx, const Roles& roles) {
  const uint64_t total = ctx.total_ops();
  if (total == 0) return 0;
  const uint64_t p = static_cast<uint64_t>(roles.producers);
  const uint64_t i = static_cast<uint64_t>(ctx.index());
  return total / p + (i < total % p ? 1 : 0);
}

// The word producers count themselves done in (its own small segment).
class DoneWord {
 public:
  absl::Status Create() {
    SHMKIT_ASSIGN_OR_RETURN(Segment s, Segment::Create({.bytes = 64}));
    segment_.emplace(std::move(s));
    return absl::OkStatus();
  }
  // True for the last of `producers` callers.
  bool ArriveLast(int producers) {
    return shmkit::internal::Ref(*word()).fetch_add(1) + 1 ==
           static_cast<uint32_t>(producers);
  }
  void Reset() { segment_.reset(); }

 private:
  uint32_t* word() { return static_cast<uint32_t*>(segment_->data()); }
  std::optional<Segment> segment_;
};

// The producer and consumer loops every variant shares; `send(type)` and
// `receive(&type)` return false after recording an error.
template <typename Send, typename Receive>
void QueueWork(WorkerContext& ctx, const Roles& roles, DoneWord& done,
               Send&& send, Receive&& receive) {
  if (ctx.index() < roles.producers) {
    const uint64_t share = ProducerShare(ctx, roles);
    if (ctx.total_ops() == 0 || share > 0) {
      bool failed = false;
      TimedLoop(
          ctx, share,
          [&](uint64_t) {
            if (!send(kDataType)) failed = true;
            return 0;
          },
          &failed, /*count_ops=*/false);
    }
    if (done.ArriveLast(roles.producers)) {
      for (int c = 0; c < roles.consumers; ++c) {
        if (!send(kMarkerType)) break;
      }
    }
    return;
  }
  const uint32_t every = ctx.sample_every();
  uint32_t countdown = every;
  uint64_t received = 0;
  while (true) {
    int64_t type = 0;
    bool ok;
    if (every != 0 && --countdown == 0) {
      countdown = every;
      const uint64_t t0 = ctx.Ticks();
      ok = receive(&type);
      ctx.RecordTicks(1, t0, ctx.Ticks());
    } else {
      ok = receive(&type);
    }
    if (!ok || type == kMarkerType) break;
    ++received;
    if ((received & 1023) == 0) ctx.Progress(received);
  }
  ctx.MarkEnd();
  ctx.Progress(received);
  ctx.AddOps(received);
}

// ---------------------------------------------------------------------------
// shmkit's queue

class ShmkitQueue final : public Variant {
 public:
  ShmkitQueue(std::string spec, const BenchOptions& options)
      : spec_(std::move(spec)),
        roles_(RolesFor(options.workers)),
        msg_bytes_(options.msg_bytes) {}
  std::string name() const override { return "shmkit"; }
  std::vector<std::string> kinds() const override { return {"send", "recv"}; }

  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(queue_, OpenQueue(spec_));
    const size_t max = queue_->Capabilities().max_message_bytes;
    if (msg_bytes_ > max) {
      const std::string backend = queue_->Capabilities().backend;
      (void)queue_->Close();
      queue_.reset();
      return absl::InvalidArgumentError(
          absl::StrCat("--msg-bytes ", msg_bytes_, " exceeds what queue \"",
                       spec_, "\" carries (", max, " bytes, ", backend, ")"));
    }
    return done_.Create();
  }
  void Adjust(RunConfig& config) override {
    config.workers = roles_.producers + roles_.consumers;
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.prepare = [this](WorkerContext& ctx) {
      return queue_->SetRole(ctx.index() < roles_.producers
                                 ? QueueRole::kSender
                                 : QueueRole::kReceiver);
    };
    hooks.work = [this](WorkerContext& ctx) {
      Queue& q = *queue_;
      const std::string payload(msg_bytes_, 'm');
      Message message;
      message.data.reserve(msg_bytes_);
      QueueWork(
          ctx, roles_, done_,
          [&](int64_t type) {
            absl::Status st =
                q.Send(type == kDataType ? absl::string_view(payload)
                                         : absl::string_view(),
                       type);
            if (!st.ok()) ctx.Error(st);
            return st.ok();
          },
          [&](int64_t* type) {
            absl::Status st =
                q.ReceiveInto(message, msg_bytes_, WaitMode::Forever());
            if (!st.ok()) {
              ctx.Error(st);
              return false;
            }
            *type = message.type;
            return true;
          });
    };
    return hooks;
  }
  absl::Status Finish(const RunResult&, VariantResult& out) override {
    out.notes.push_back(absl::StrCat(roles_.producers, " producer(s), ",
                                     roles_.consumers, " consumer(s), ",
                                     msg_bytes_, "-byte messages, backend ",
                                     queue_->Capabilities().backend));
    return absl::OkStatus();
  }
  void Teardown() override {
    if (queue_ != nullptr) (void)queue_->Close();
    queue_.reset();
    done_.Reset();
  }

 private:
  std::string spec_;
  Roles roles_;
  uint32_t msg_bytes_;
  std::unique_ptr<Queue> queue_;
  DoneWord done_;
};

// ---------------------------------------------------------------------------
// Raw system calls

enum class RawKind { kSysv, kPipe, kFifo, kSocketPair };

class RawQueue final : public Variant {
 public:
  RawQueue(RawKind kind, const BenchOptions& options)
      : kind_(kind),
        roles_(RolesFor(options.workers)),
        msg_bytes_(options.msg_bytes) {}

  static std::string NameOf(RawKind kind) {
    switch (kind) {
      case RawKind::kSysv:
        return "raw msgsnd/msgrcv";
      case RawKind::kPipe:
        return "raw pipe";
      case RawKind::kFifo:
        return "raw fifo";
      case RawKind::kSocketPair:
        return "raw socketpair";
    }
    return "raw";
  }
  std::string name() const override { return NameOf(kind_); }
  bool is_baseline() const override { return true; }
  std::vector<std::string> kinds() const override { return {"send", "recv"}; }
  std::string unavailable() const override {
    if (kind_ != RawKind::kSysv && kind_ != RawKind::kSocketPair &&
        Frame() > PIPE_BUF) {
      return absl::StrCat("a raw pipe frame (8 + --msg-bytes = ", Frame(),
                          " bytes) above PIPE_BUF (", PIPE_BUF,
                          ") would not be atomic");
    }
    return "";
  }

  absl::Status Setup() override {
    switch (kind_) {
      case RawKind::kSysv: {
        const int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (id < 0) return ErrnoStatus(errno, "msgget(IPC_PRIVATE)");
        msqid_ = id;
        break;
      }
      case RawKind::kPipe: {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
        read_ = UniqueFd(fds[0]);
        write_ = UniqueFd(fds[1]);
        break;
      }
      case RawKind::kFifo: {
        char dir[] = "/tmp/shmkit-bench-XXXXXX";
        if (mkdtemp(dir) == nullptr) return ErrnoStatus(errno, "mkdtemp");
        dir_ = dir;
        fifo_ = dir_ + "/q";
        if (mkfifo(fifo_.c_str(), 0600) != 0) {
          return ErrnoStatus(errno, absl::StrCat("mkfifo(", fifo_, ")"));
        }
        // O_RDWR on a FIFO (Linux) opens both ends without waiting for a
        // peer; readers and writers share it.
        const int fd = open(fifo_.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0)
          return ErrnoStatus(errno, absl::StrCat("open(", fifo_, ")"));
        read_ = UniqueFd(fd);
        break;
      }
      case RawKind::kSocketPair: {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
          return ErrnoStatus(errno, "socketpair(AF_UNIX, SOCK_SEQPACKET)");
        }
        write_ = UniqueFd(fds[0]);
        read_ = UniqueFd(fds[1]);
        break;
      }
    }
    return done_.Create();
  }
  void Adjust(RunConfig& config) override {
    config.workers = roles_.producers + roles_.consumers;
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.work = [this](WorkerContext& ctx) { Work(ctx); };
    return hooks;
  }
  absl::Status Finish(const RunResult&, VariantResult& out) override {
    out.notes.push_back(absl::StrCat(roles_.producers, " producer(s), ",
                                     roles_.consumers, " consumer(s), ",
                                     msg_bytes_, "-byte messages"));
    return absl::OkStatus();
  }
  void Teardown() override {
    if (msqid_ >= 0) msgctl(msqid_, IPC_RMID, nullptr);
    msqid_ = -1;
    read_.reset();
    write_.reset();
    if (!fifo_.empty()) unlink(fifo_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
    fifo_.clear();
    dir_.clear();
    done_.Reset();
  }

 private:
  size_t Frame() const { return sizeof(int64_t) + msg_bytes_; }

  void Work(WorkerContext& ctx) {
    std::vector<char> out(sizeof(long) + Frame(), 'm');
    std::vector<char> in(sizeof(long) + Frame());
    if (kind_ == RawKind::kSysv) {
      const int id = msqid_;
      QueueWork(
          ctx, roles_, done_,
          [&](int64_t type) {
            const long mtype = static_cast<long>(type);
            std::memcpy(out.data(), &mtype, sizeof(mtype));
            const size_t len = type == kDataType ? msg_bytes_ : 0;
            if (RetryOnEintr([&] { return msgsnd(id, out.data(), len, 0); }) !=
                0) {
              ctx.Error(ErrnoStatus(errno, "msgsnd"));
              return false;
            }
            return true;
          },
          [&](int64_t* type) {
            const ssize_t n = RetryOnEintr(
                [&] { return msgrcv(id, in.data(), msg_bytes_, 0, 0); });
            if (n < 0) {
              ctx.Error(ErrnoStatus(errno, "msgrcv"));
              return false;
            }
            long mtype;
            std::memcpy(&mtype, in.data(), sizeof(mtype));
            *type = mtype;
            return true;
          });
      return;
    }
    // Stream transports: fixed frames of an 8-byte type and the payload.
    const int send_fd = write_.valid() ? write_.get() : read_.get();
    const int recv_fd = read_.get();
    const bool socket = kind_ == RawKind::kSocketPair;
    const size_t frame = Frame();
    QueueWork(
        ctx, roles_, done_,
        [&](int64_t type) {
          std::memcpy(out.data(), &type, sizeof(type));
          const ssize_t n = RetryOnEintr([&] {
            return socket ? send(send_fd, out.data(), frame, MSG_NOSIGNAL)
                          : write(send_fd, out.data(), frame);
          });
          if (n != static_cast<ssize_t>(frame)) {
            ctx.Error(n < 0 ? ErrnoStatus(errno, socket ? "send" : "write")
                            : absl::DataLossError("short write"));
            return false;
          }
          return true;
        },
        [&](int64_t* type) {
          const ssize_t n = RetryOnEintr([&] {
            return socket ? recv(recv_fd, in.data(), frame, 0)
                          : read(recv_fd, in.data(), frame);
          });
          if (n != static_cast<ssize_t>(frame)) {
            ctx.Error(n < 0 ? ErrnoStatus(errno, socket ? "recv" : "read")
                            : absl::DataLossError("short read"));
            return false;
          }
          std::memcpy(type, in.data(), sizeof(*type));
          return true;
        });
  }

  RawKind kind_;
  Roles roles_;
  uint32_t msg_bytes_;
  int msqid_ = -1;
  UniqueFd read_;
  UniqueFd write_;
  std::string dir_;
  std::string fifo_;
  DoneWord done_;
};

// ---------------------------------------------------------------------------
// Raw Redis: RPUSH / BLPOP on a plain list, the message type in the first
// byte. The baseline of "queue:redis:...".

class RawRedisQueue final : public Variant {
 public:
  RawRedisQueue(std::string url, const BenchOptions& options)
      : url_(std::move(url)),
        roles_(RolesFor(options.workers)),
        msg_bytes_(options.msg_bytes) {}
  std::string name() const override { return "hiredis"; }
  bool is_baseline() const override { return true; }
  std::vector<std::string> kinds() const override { return {"send", "recv"}; }
  absl::Status Setup() override {
    list_ = UniqueBenchName("rawq");
    return done_.Create();
  }
  void Adjust(RunConfig& config) override {
    config.workers = roles_.producers + roles_.consumers;
  }
  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.prepare = [this](WorkerContext&) -> absl::Status {
      SHMKIT_ASSIGN_OR_RETURN(conn_, RawRedis::Connect(url_));
      return absl::OkStatus();
    };
    hooks.work = [this](WorkerContext& ctx) {
      std::string frame(msg_bytes_ + 1, 'm');
      std::string got, error;
      QueueWork(
          ctx, roles_, done_,
          [&](int64_t type) {
            frame[0] = static_cast<char>(type);
            const absl::string_view body =
                type == kDataType ? absl::string_view(frame)
                                  : absl::string_view(frame).substr(0, 1);
            if (!conn_->Run({"RPUSH", list_, body}, nullptr, &error)) {
              ctx.Error(error);
              return false;
            }
            return true;
          },
          [&](int64_t* type) {
            if (!conn_->Run({"BLPOP", list_, "0"}, &got, &error) ||
                got.empty()) {
              ctx.Error(error.empty() ? "BLPOP: empty reply" : error);
              return false;
            }
            *type = static_cast<unsigned char>(got[0]);
            return true;
          });
    };
    return hooks;
  }
  void Teardown() override {
    absl::StatusOr<std::unique_ptr<RawRedis>> c = RawRedis::Connect(url_);
    std::string error;
    if (c.ok()) (void)(*c)->Run({"DEL", list_}, nullptr, &error);
    done_.Reset();
  }

 private:
  const std::string url_;
  Roles roles_;
  uint32_t msg_bytes_;
  std::string list_;
  std::unique_ptr<RawRedis> conn_;  // a worker's own (after fork)
  DoneWord done_;
};

}  // namespace

absl::StatusOr<Workload> MakeQueueWorkload(absl::string_view spec,
                                           const BenchOptions& options) {
  SHMKIT_ASSIGN_OR_RETURN(QueueSpec parsed, ParseQueueSpec(spec));
  for (const QueueSpecParam& p : parsed.params) {
    if (p.key == "key" || p.key == "id" || p.key == "path" ||
        (parsed.scheme == "redis" && p.key == "name")) {
      return absl::InvalidArgumentError(
          absl::StrCat("queue:", spec,
                       ": shmkit bench runs on fresh anonymous objects; "
                       "drop ",
                       p.key, "= from the spec"));
    }
  }
  if (options.msg_bytes == 0) {
    return absl::InvalidArgumentError("--msg-bytes must be positive");
  }
  // Open (and at once close) one queue of this spec now, so that a bad
  // scheme or parameter is a usage error before anything runs. A private
  // queue is destroyed by Close().
  {
    absl::StatusOr<std::unique_ptr<Queue>> probe = OpenQueue(parsed);
    if (!probe.ok()) return probe.status();
    const size_t max = (*probe)->Capabilities().max_message_bytes;
    (void)(*probe)->Close();
    if (options.msg_bytes > max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--msg-bytes ", options.msg_bytes, " exceeds what queue:", spec,
          " carries (", max, " bytes)"));
    }
  }
  if (parsed.scheme == "redis") {
    std::string url = "redis://127.0.0.1:6379/0";
    for (const QueueSpecParam& p : parsed.params) {
      if (p.key == "url") url = p.value;
    }
    Workload w;
    w.name = absl::StrCat("queue:", spec);
    w.variants.push_back(
        std::make_unique<ShmkitQueue>(std::string(spec), options));
    w.variants.push_back(std::make_unique<RawRedisQueue>(url, options));
    w.ratio_base = "hiredis";
    return w;
  }
  RawKind raw;
  if (parsed.scheme == "sysv") {
    raw = RawKind::kSysv;
  } else if (parsed.scheme == "fifo") {
    raw = RawKind::kFifo;
  } else if (parsed.scheme == "socketpair") {
    raw = RawKind::kSocketPair;
  } else {
    raw = RawKind::kPipe;  // pipe, and the ring (see the file comment)
  }
  Workload w;
  w.name = absl::StrCat("queue:", spec);
  w.variants.push_back(
      std::make_unique<ShmkitQueue>(std::string(spec), options));
  w.variants.push_back(std::make_unique<RawQueue>(raw, options));
  w.ratio_base = RawQueue::NameOf(raw);
  return w;
}

#else  // !SHMKIT_BENCH_HAVE_QUEUES

bool QueuesAvailable() { return false; }

absl::StatusOr<Workload> MakeQueueWorkload(absl::string_view spec,
                                           const BenchOptions&) {
  return absl::UnimplementedError(absl::StrCat(
      "queue:", spec, ": not available: this build has no ipc/queue module"));
}

#endif  // SHMKIT_BENCH_HAVE_QUEUES

}  // namespace shmkit::cli::bench
