// RedisOptions: where a Redis-backed shmkit object lives and how long a call
// may take. Shared by RedisTable (redis_table.h), RedisCounter
// (redis_counter.h) and the "redis:" queue (redis_queue.h).
//
// The URL:  redis://[[user]:password@]host[:port][/db]
//   host     an IPv4 address or a name (no IPv6 literal); port 6379 by
//            default; db 0 by default (SELECT after connecting).
//   password AUTH after connecting (with `user`: AUTH user password).
//            Percent-escapes (%40 for '@', ...) are decoded.
//
// Reconnection: every handle keeps a small pool of connections, opened on
// demand. A connection that fails (reset, refused, timed out) is dropped;
// the call that saw the failure returns Unavailable or DeadlineExceeded and
// is NOT re-sent, because the server may have run it (an Incr must never
// count twice). The next call opens a new connection by itself. A call made
// while the server is down returns Unavailable naming the address.
#ifndef SHMKIT_REDIS_REDIS_OPTIONS_H_
#define SHMKIT_REDIS_REDIS_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shmkit {

struct RedisOptions {
  // redis://host:port/db (see above).
  std::string url = "redis://127.0.0.1:6379/0";
  // Opening a TCP connection (and AUTH, SELECT) gives up after this:
  // Unavailable.
  absl::Duration connect_timeout = absl::Seconds(2);
  // A command whose reply has not come after this is DeadlineExceeded (the
  // connection is then dropped: its reply stream can no longer be trusted).
  // Blocking receives and waits add their own wait to it.
  absl::Duration command_timeout = absl::Seconds(2);
};

// The parts of a redis:// URL.
struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user;      // empty: AUTH with the password alone
  std::string password;  // empty: no AUTH
  bool has_password = false;
  // "host:port/db", never the password (for messages).
  std::string ToString() const;
};

// InvalidArgument naming what is wrong with `url`.
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

}  // namespace shmkit

#endif  // SHMKIT_REDIS_REDIS_OPTIONS_H_
