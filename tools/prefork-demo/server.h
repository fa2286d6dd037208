// The two kinds of worker of the demo server. Both run inside a
// WorkerPool worker process, forked by the master (main.cc) after it created
// the shared state (state.h) and the listening socket.
#ifndef SHMKIT_TOOLS_PREFORK_DEMO_SERVER_H_
#define SHMKIT_TOOLS_PREFORK_DEMO_SERVER_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "tools/prefork-demo/http.h"
#include "tools/prefork-demo/state.h"

namespace shmkit::demo {

struct ServerOptions {
  // Workers [0, request_workers) serve HTTP; the next task_workers run
  // tasks.
  int request_workers = 2;
  int task_workers = 1;
  // false: each request worker keeps its own sessions, rate limits and hit
  // counter (the benchmark baseline; see state.h).
  bool shared = true;
  // GET /hit requests per client address per second; 0 for no limit.
  int64_t rate_limit = 0;
  absl::Duration session_ttl = absl::Minutes(30);
  absl::Duration task_ttl = absl::Hours(1);
  // Open connections per request worker; at the limit it stops accepting.
  size_t max_connections = 1024;
  // After SIGTERM, how long a request worker waits for in-flight requests.
  absl::Duration drain_timeout = absl::Seconds(4);
  HttpLimits http;
  StateOptions state;
};

// Serves HTTP on `listen_fd` (shared with the other request workers) until
// SIGTERM or the master's death; then stops accepting, closes idle
// connections, finishes in-flight requests (up to drain_timeout) and
// returns 0. Returns 1 when it cannot run at all.
int RunRequestWorker(WorkerContext& ctx, int listen_fd, SharedState& state,
                     const ServerOptions& options);

// Runs queued tasks until SIGTERM or the master's death, then runs what is
// still queued and returns 0.
int RunTaskWorker(WorkerContext& ctx, SharedState& state,
                  const ServerOptions& options);

}  // namespace shmkit::demo

#endif  // SHMKIT_TOOLS_PREFORK_DEMO_SERVER_H_
