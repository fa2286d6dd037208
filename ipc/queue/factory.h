// OpenQueue: any queue backend from a spec string (spec.h), so tools,
// benchmarks and configuration files take a queue as one flag:
//
//   sysv:key=0x5eed               sysv:private         sysv:id=32769
//   pipe                          pipe:max_bytes=1048576
//   fifo:path=/run/app/q          fifo                 (private FIFO)
//   socketpair
//   ring:slots=4096,slot_bytes=256                     ring:key=0x5eed
//   unix:path=/run/app/q          unix:path=/run/app/q,role=connect
//   tcp:port=0                    tcp:host=127.0.0.1,port=7000,role=connect
//
// Each backend's header lists its keys. A bad spec (unknown scheme,
// unknown or malformed key, bad value) is InvalidArgument naming the bad
// part, and nothing is created.
//
// Backends that live outside ipc/ (and would pull their dependencies into
// it) add their scheme at run time with RegisterQueueScheme(): for example
// shmkit::RegisterRedisQueueScheme() (redis/redis_queue.h) makes every
// OpenQueue() caller, tools included, understand "redis:..." specs.
#ifndef SHMKIT_IPC_QUEUE_FACTORY_H_
#define SHMKIT_IPC_QUEUE_FACTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/spec.h"

namespace shmkit {

absl::StatusOr<std::unique_ptr<Queue>> OpenQueue(absl::string_view spec);
absl::StatusOr<std::unique_ptr<Queue>> OpenQueue(const QueueSpec& spec);

// The schemes OpenQueue knows, with a one-line summary each (for --help).
struct QueueScheme {
  std::string scheme;
  std::string summary;
};
std::vector<QueueScheme> QueueSchemes();

// Adds a scheme that OpenQueue() dispatches to `open`, and QueueSchemes()
// lists. AlreadyExists for a scheme already known (built in or added);
// InvalidArgument for a name outside [a-z0-9_] or a null `open`.
// Thread-safe.
using QueueOpenFn =
    absl::StatusOr<std::unique_ptr<Queue>> (*)(const QueueSpec& spec);
absl::Status RegisterQueueScheme(QueueScheme scheme, QueueOpenFn open);

}  // namespace shmkit

#endif  // SHMKIT_IPC_QUEUE_FACTORY_H_
