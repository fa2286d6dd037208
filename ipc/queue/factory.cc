#include "shmkit/ipc/queue/factory.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "shmkit/ipc/queue/fifo_queue.h"
#include "shmkit/ipc/queue/pipe_queue.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/queue/socketpair_queue.h"
#include "shmkit/ipc/queue/stream_queue.h"
#include "shmkit/ipc/queue/sysv_queue.h"

namespace shmkit {
namespace {

using OpenFn = absl::StatusOr<std::unique_ptr<Queue>> (*)(const QueueSpec&);

struct Backend {
  absl::string_view scheme;
  OpenFn open;
  absl::string_view summary;
};

// The one place that maps a scheme to a backend: a new backend is one line
// here plus its FromSpec().
constexpr Backend kBackends[] = {
    {"sysv", &SysvQueue::FromSpec,
     "System V message queue: key=K | private | id=N, open=auto|create|"
     "attach, mode=0600, queue_bytes=N"},
    {"pipe", &PipeQueue::FromSpec,
     "anonymous pipe, shared through fork: max_bytes=N, registry_slots=N, "
     "spin_us=N"},
    {"fifo", &FifoQueue::FromSpec,
     "named pipe for unrelated processes: path=/abs/path (none: private), "
     "open=..., mode=0600, role=both|sender|receiver, max_bytes=N, "
     "registry_slots=N, spin_us=N"},
    {"socketpair", &SocketPairQueue::FromSpec,
     "AF_UNIX SOCK_SEQPACKET pair, shared through fork, bidirectional"},
    {"ring", &RingQueue::FromSpec,
     "shared-memory MPMC ring: slots=N (power of two), slot_bytes=N, key=K "
     "| private, open=..., mode=0600, registry_slots=N, spin_us=N, "
     "check_us=N"},
    {"unix", &StreamQueue::FromSpec,
     "AF_UNIX stream socket, listener and connecting senders: path=/abs/path "
     "| @abstract (none: private), role=listen|connect, max_bytes=N, "
     "backlog=N, mode=0600, connect_ms=N, linger_ms=N"},
    {"tcp", &StreamQueue::FromSpec,
     "TCP stream socket, listener and connecting senders: host=127.0.0.1, "
     "port=N (0: any free, listen only), role=listen|connect, max_bytes=N, "
     "backlog=N, connect_ms=N, linger_ms=N"},
};

// Schemes added at run time (RegisterQueueScheme). Read on every open,
// which is not a hot path.
struct Registered {
  QueueScheme scheme;
  OpenFn open;
};
std::mutex& RegistryMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::vector<Registered>& Registry() {
  static std::vector<Registered>* r = new std::vector<Registered>;
  return *r;
}

}  // namespace

absl::Status RegisterQueueScheme(QueueScheme scheme, QueueOpenFn open) {
  if (open == nullptr) {
    return absl::InvalidArgumentError("RegisterQueueScheme: null opener");
  }
  if (scheme.scheme.empty() ||
      scheme.scheme.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
          std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "queue scheme \"", scheme.scheme, "\" must be [a-z0-9_]+"));
  }
  for (const Backend& backend : kBackends) {
    if (backend.scheme == scheme.scheme) {
      return absl::AlreadyExistsError(absl::StrCat(
          "queue scheme \"", scheme.scheme, "\" is built in"));
    }
  }
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (const Registered& r : Registry()) {
    if (r.scheme.scheme == scheme.scheme) {
      return absl::AlreadyExistsError(absl::StrCat(
          "queue scheme \"", scheme.scheme, "\" is already registered"));
    }
  }
  Registry().push_back({std::move(scheme), open});
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Queue>> OpenQueue(const QueueSpec& spec) {
  for (const Backend& backend : kBackends) {
    if (backend.scheme == spec.scheme) return backend.open(spec);
  }
  OpenFn open = nullptr;
  std::vector<std::string> known;
  for (const Backend& backend : kBackends) {
    known.push_back(std::string(backend.scheme));
  }
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    for (const Registered& r : Registry()) {
      if (r.scheme.scheme == spec.scheme) open = r.open;
      known.push_back(r.scheme.scheme);
    }
  }
  if (open != nullptr) return open(spec);
  return absl::InvalidArgumentError(absl::StrCat(
      "queue spec \"", spec.text, "\": unknown scheme \"", spec.scheme,
      "\" (known: ", absl::StrJoin(known, ", "), ")",
      spec.scheme == "redis"
          ? "; redis queues need shmkit::RegisterRedisQueueScheme() "
            "(shmkit::redis)"
          : ""));
}

absl::StatusOr<std::unique_ptr<Queue>> OpenQueue(absl::string_view spec) {
  absl::StatusOr<QueueSpec> parsed = ParseQueueSpec(spec);
  if (!parsed.ok()) return parsed.status();
  return OpenQueue(*parsed);
}

std::vector<QueueScheme> QueueSchemes() {
  std::vector<QueueScheme> out;
  for (const Backend& backend : kBackends) {
    out.push_back({std::string(backend.scheme), std::string(backend.summary)});
  }
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (const Registered& r : Registry()) out.push_back(r.scheme);
  return out;
}

}  // namespace shmkit
